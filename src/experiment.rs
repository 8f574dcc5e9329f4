//! Experiments as configuration: variants, their traffic shares and what
//! each serves, with a deterministic, sticky assignment.
//!
//! An [`Experiment`] is authored as JSON and set at run time
//! (`Recommender::set_experiment`, JS `setExperiment`, the edge worker's
//! `EXPERIMENT` variable):
//!
//! ```json
//! {"name": "nestrank-vs-shop",
//!  "variants": [{"name": "control",  "share": 50, "order": "shop"},
//!               {"name": "nestrank", "share": 50}]}
//! ```
//!
//! - **Assignment.** A visitor's bucket is a hash of the experiment's name
//!   and the visitor id, in `0..BUCKETS`; the variants own consecutive
//!   ranges of buckets in the order listed, each as wide as its share. No
//!   server state is needed, the same visitor gets the same variant on
//!   every page view, on the phone and at the edge (one function, here),
//!   and renaming the experiment reshuffles everyone.
//! - **The visitor id** is a random first-party id the page or the worker
//!   draws once and keeps (localStorage, a cookie); never derived from
//!   personal data. An empty id is in no variant.
//! - **What a variant serves.** `order: "shop"` keeps the shop's own order
//!   (the control: no scoring, no rules but that sold-out and filtered
//!   items leave the page, as everywhere); `order: "nestrank"` (the default)
//!   reranks, with the shipped ranker or a hand-set one named by `ranker`
//!   (`recent`, `popular`, `hybrid`, ...), and with the blob's rules or
//!   the variant's own `rules`.
//!
//! A malformed experiment is an [`ExperimentError`] naming the field; the
//! caller keeps the last good one.

use crate::hash::{fnv1a64, mix64};
use crate::params::RankerKind;
use crate::ruleset::{RuleSet, RulesError};
use serde::{Deserialize, Serialize};

/// Buckets a visitor can fall in: shares are in hundredths of a percent.
pub const BUCKETS: u32 = 10_000;
/// The most variants in one experiment.
pub const MAX_VARIANTS: usize = 16;
/// The longest experiment or variant name, in bytes.
pub const MAX_NAME: usize = 64;

/// One experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Its name: part of the assignment hash.
    pub name: String,
    /// The variants, in bucket order; the first is the one lifts are
    /// measured against.
    pub variants: Vec<Variant>,
}

/// One variant of an [`Experiment`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Its name, as tagged on events (`[A-Za-z0-9_.-]`, at most [`MAX_NAME`] bytes).
    pub name: String,
    /// Its share of visitors, in percent, to two decimals; the shares add up to 100.
    pub share: f64,
    /// The shop's order or nestrank's.
    #[serde(default)]
    pub order: Order,
    /// A hand-set ranker by name instead of the shipped one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranker: Option<String>,
    /// Rules instead of the blob's (or the run-time ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<RuleSet>,
}

/// Whose order a variant shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// The candidates as given, less sold-out and filtered items: the shop's own order.
    Shop,
    /// Reranked by nestrank.
    #[default]
    Nestrank,
}

/// An experiment that cannot be used, naming the field and the problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ExperimentError {
    /// One field is wrong: `field` is its place (`variants[1].share`).
    #[error("experiment: {field}: {problem}")]
    Invalid {
        /// Where: `name`, `variants`, `variants[2].ranker`.
        field: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// A variant's rules are wrong.
    #[error("experiment: variants[{variant}].{source}")]
    Rules {
        /// The variant's place.
        variant: usize,
        /// The rules' own error.
        source: RulesError,
    },
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> ExperimentError {
    ExperimentError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

fn check_name(field: String, name: &str) -> Result<(), ExperimentError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(invalid(
            field,
            format!("a name is 1 to {MAX_NAME} bytes; got {}", name.len()),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(invalid(
            field,
            format!("{name:?} holds '{c}'; use letters, digits, '_', '-' and '.'"),
        ));
    }
    Ok(())
}

/// The field names of an experiment and of a variant, for a door whose
/// parser does not reject unknown ones. Constants, not read from the derive
/// as the rules' are: that would put a second deserializer in the wasm (a
/// test keeps them equal).
pub const FIELDS: (&[&str], &[&str]) = (
    &["name", "variants"],
    &["name", "share", "order", "ranker", "rules"],
);

impl Variant {
    /// The hand-set ranker this variant names, if any (`None`: the shipped one).
    pub fn ranker_kind(&self) -> Option<RankerKind> {
        self.ranker.as_deref().and_then(RankerKind::from_name)
    }
}

impl Experiment {
    /// Checks every field; the first problem found is the error.
    pub fn validate(&self) -> Result<(), ExperimentError> {
        check_name("name".into(), &self.name)?;
        if self.variants.is_empty() || self.variants.len() > MAX_VARIANTS {
            return Err(invalid(
                "variants",
                format!(
                    "an experiment has 1 to {MAX_VARIANTS} variants; got {}",
                    self.variants.len()
                ),
            ));
        }
        let mut total: u32 = 0;
        for (k, v) in self.variants.iter().enumerate() {
            check_name(format!("variants[{k}].name"), &v.name)?;
            if let Some(j) = self.variants[..k].iter().position(|w| w.name == v.name) {
                return Err(invalid(
                    format!("variants[{k}].name"),
                    format!("{:?} is also variants[{j}]'s name", v.name),
                ));
            }
            total += Self::buckets_of(v.share)
                .ok_or_else(|| {
                    invalid(
                        format!("variants[{k}].share"),
                        // No float formatting here: it would weigh on the wasm.
                        "not a percentage in (0, 100] with at most two decimals",
                    )
                })?
                .get();
            if let Some(r) = &v.ranker {
                if RankerKind::from_name(r).is_none() && r != "shipped" {
                    return Err(invalid(
                        format!("variants[{k}].ranker"),
                        format!(
                            "unknown ranker {r:?} (expected shipped, {})",
                            RankerKind::ALL.map(RankerKind::name).join(", ")
                        ),
                    ));
                }
            }
            if v.order == Order::Shop && (v.ranker.is_some() || v.rules.is_some()) {
                return Err(invalid(
                    format!("variants[{k}]"),
                    "the shop's order is served as given: drop \"ranker\" and \"rules\"",
                ));
            }
            if let Some(rules) = &v.rules {
                rules
                    .validate()
                    .map_err(|source| ExperimentError::Rules { variant: k, source })?;
            }
        }
        if total != BUCKETS {
            return Err(invalid(
                "variants",
                match total % 100 {
                    0 => format!(
                        "the shares add up to {}%; they must add up to 100%",
                        total / 100
                    ),
                    c => format!(
                        "the shares add up to {}.{c:02}%; they must add up to 100%",
                        total / 100
                    ),
                },
            ));
        }
        Ok(())
    }

    /// A share in buckets, if it is one: in (0, 100], two decimals at most.
    fn buckets_of(share: f64) -> Option<std::num::NonZeroU32> {
        let b = share * f64::from(BUCKETS) / 100.0;
        let r = b.round();
        if !(share > 0.0 && share <= 100.0) || (b - r).abs() > 1e-6 {
            return None;
        }
        std::num::NonZeroU32::new(r as u32)
    }

    /// The visitor's bucket in `0..BUCKETS`: the same on every engine.
    pub fn bucket(&self, visitor: &str) -> u32 {
        let mut key = Vec::with_capacity(self.name.len() + 1 + visitor.len());
        key.extend_from_slice(self.name.as_bytes());
        // A byte no name holds, so that ("ab", "c") and ("a", "bc") differ.
        key.push(0);
        key.extend_from_slice(visitor.as_bytes());
        (mix64(fnv1a64(&key)) % u64::from(BUCKETS)) as u32
    }

    /// The index of the visitor's variant; `None` for an empty visitor id.
    /// The experiment must be valid ([`Experiment::validate`]).
    pub fn assign(&self, visitor: &str) -> Option<usize> {
        if visitor.is_empty() {
            return None;
        }
        let bucket = self.bucket(visitor);
        let mut end = 0;
        for (k, v) in self.variants.iter().enumerate() {
            end += Self::buckets_of(v.share).map_or(0, |b| b.get());
            if bucket < end {
                return Some(k);
            }
        }
        // Unreachable for a valid experiment (the shares fill every bucket).
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ab(shares: [f64; 2]) -> Experiment {
        Experiment {
            name: "launch".into(),
            variants: vec![
                Variant {
                    name: "control".into(),
                    share: shares[0],
                    order: Order::Shop,
                    ranker: None,
                    rules: None,
                },
                Variant {
                    name: "nestrank".into(),
                    share: shares[1],
                    order: Order::Nestrank,
                    ranker: None,
                    rules: None,
                },
            ],
        }
    }

    fn field_of(e: ExperimentError) -> String {
        match e {
            ExperimentError::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn assignment_is_sticky_and_follows_the_shares() {
        let e = ab([10.0, 90.0]);
        e.validate().unwrap();
        let mut counts = [0u32; 2];
        for v in 0..20_000 {
            let id = format!("visitor-{v}");
            let k = e.assign(&id).unwrap();
            assert_eq!(e.assign(&id), Some(k), "sticky");
            counts[k] += 1;
        }
        // 10% of 20,000 is 2,000; 4 standard deviations are 170.
        assert!((1_830..=2_170).contains(&counts[0]), "{counts:?}");
        assert_eq!(e.assign(""), None);
    }

    #[test]
    fn the_name_reshuffles() {
        let a = ab([50.0, 50.0]);
        let mut b = a.clone();
        b.name = "launch-2".into();
        let same = (0..2_000)
            .filter(|v| a.assign(&v.to_string()) == b.assign(&v.to_string()))
            .count();
        assert!(
            (850..=1_150).contains(&same),
            "{same} of 2,000 kept their variant"
        );
    }

    #[test]
    fn the_bucket_is_pinned() {
        // The page and the worker run this same code (wasm); the builder's
        // report and simulator too. This value (computed apart, in Python)
        // pins the hash for good.
        assert_eq!(ab([50.0, 50.0]).bucket("v-1"), 8_724);
    }

    #[test]
    fn bad_experiments_name_the_field() {
        assert_eq!(
            field_of(ab([50.0, 40.0]).validate().unwrap_err()),
            "variants"
        );
        assert_eq!(
            field_of(ab([50.005, 49.995]).validate().unwrap_err()),
            "variants[0].share"
        );
        assert_eq!(
            field_of(ab([0.0, 100.0]).validate().unwrap_err()),
            "variants[0].share"
        );
        assert_eq!(
            field_of(ab([f64::NAN, 100.0]).validate().unwrap_err()),
            "variants[0].share"
        );
        let mut e = ab([50.0, 50.0]);
        e.variants[1].name = "control".into();
        assert_eq!(field_of(e.validate().unwrap_err()), "variants[1].name");
        let mut e = ab([50.0, 50.0]);
        e.name = "a b".into();
        assert_eq!(field_of(e.validate().unwrap_err()), "name");
        let mut e = ab([50.0, 50.0]);
        e.variants[1].ranker = Some("best".into());
        let err = e.validate().unwrap_err();
        assert!(
            err.to_string().contains("expected shipped, random"),
            "{err}"
        );
        let mut e = ab([50.0, 50.0]);
        e.variants[0].ranker = Some("recent".into());
        assert_eq!(field_of(e.validate().unwrap_err()), "variants[0]");
        let mut e = ab([50.0, 50.0]);
        e.variants.clear();
        assert_eq!(field_of(e.validate().unwrap_err()), "variants");
        let mut e = ab([50.0, 50.0]);
        e.variants[1].rules = Some(RuleSet {
            pins: vec![crate::ruleset::Pin {
                item: "p1".into(),
                slot: 0,
            }],
            ..RuleSet::default()
        });
        let err = e.validate().unwrap_err();
        assert!(matches!(err, ExperimentError::Rules { variant: 1, .. }));
        assert_eq!(
            err.to_string(),
            "experiment: variants[1].rules: pins[0]: slot is 1-based: 1 is the top"
        );
    }

    #[test]
    fn the_field_lists_are_the_derives() {
        assert_eq!(FIELDS.0, crate::ruleset::fields_of::<Experiment>());
        assert_eq!(FIELDS.1, crate::ruleset::fields_of::<Variant>());
    }

    #[test]
    fn odd_shares_fill_every_bucket() {
        let mut e = ab([33.33, 66.67]);
        e.validate().unwrap();
        assert!((0..5_000).all(|v| e.assign(&v.to_string()).is_some()));
        e.variants[0].share = 100.0;
        e.variants.pop();
        e.validate().unwrap();
        assert_eq!(e.assign("x"), Some(0));
    }
}
