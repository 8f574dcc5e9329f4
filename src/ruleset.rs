//! Operations' rules as authored (JSON) and stored (the blob's `rules`
//! section, FORMAT.md): the data and its checks. Applying them to a
//! ranking is [`crate::rules`]'s; the model carries a [`RuleSet`] without
//! importing that.

use crate::numeric::decimal;
use serde::{Deserialize, Serialize};
use wincode::{SchemaRead, SchemaWrite};

/// The largest `times` of a boost (and 0 the smallest).
pub const MAX_TIMES: f32 = 10.0;
/// The largest `|add|` of a boost.
pub const MAX_ADD: f32 = 10.0;
/// The widest diversity window.
pub const MAX_WINDOW: u32 = 50;
/// The most pins, boosts or diversity caps a rule set may hold, each.
pub const MAX_RULES: usize = 1_000;
/// The most filtered ids a rule set (or a sold-out list) may hold.
pub const MAX_FILTER: usize = 100_000;
/// The most exploration slots.
pub const MAX_EXPLORE_SLOTS: usize = 20;

/// Operations' rules. Every field may be left out of the JSON.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, SchemaWrite, SchemaRead)]
#[serde(default, deny_unknown_fields)]
pub struct RuleSet {
    /// Items fixed to slots.
    pub pins: Vec<Pin>,
    /// Score changes by item, brand or category.
    pub boosts: Vec<Boost>,
    /// Item ids never shown (on top of the run-time sold-out list).
    pub filter: Vec<String>,
    /// Caps on one brand or category per window of slots.
    pub diversity: Vec<Diversity>,
    /// Slots reserved for items new to the catalog.
    pub explore: Option<Explore>,
}

/// `{"item": "p1", "slot": 1}`: item `p1` first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, SchemaWrite, SchemaRead)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// The item id.
    #[wincode(with = "crate::format::OutOfLine<String>")]
    pub item: String,
    /// The 1-based slot.
    pub slot: u32,
}

/// `{"brand": "Moonbean", "times": 1.5}` or `{"category": "toys", "add": -0.2}`:
/// exactly one of `item`, `brand`, `category` and one of `times`, `add`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, SchemaWrite, SchemaRead)]
#[serde(default, deny_unknown_fields)]
pub struct Boost {
    /// An item id.
    #[wincode(with = "crate::format::OutOfLine<Option<String>>")]
    pub item: Option<String>,
    /// A brand name.
    #[wincode(with = "crate::format::OutOfLine<Option<String>>")]
    pub brand: Option<String>,
    /// A category name.
    #[wincode(with = "crate::format::OutOfLine<Option<String>>")]
    pub category: Option<String>,
    /// Multiplies the score's size, in `[0, MAX_TIMES]`.
    pub times: Option<f32>,
    /// Adds to the score, in `[-MAX_ADD, MAX_ADD]`.
    pub add: Option<f32>,
}

/// `{"by": "brand", "max": 2, "window": 5}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, SchemaWrite, SchemaRead)]
#[serde(deny_unknown_fields)]
pub struct Diversity {
    /// `"brand"` or `"category"`.
    #[wincode(with = "crate::format::OutOfLine<String>")]
    pub by: String,
    /// At most this many of one value...
    pub max: u32,
    /// ...in any this many consecutive slots.
    pub window: u32,
}

/// `{"slots": [4, 12]}`: new items in slots 4 and 12.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, SchemaWrite, SchemaRead)]
#[serde(deny_unknown_fields)]
pub struct Explore {
    /// 1-based slots.
    #[wincode(with = "crate::format::OutOfLine<Vec<u32>>")]
    pub slots: Vec<u32>,
}

/// A rule set that cannot be used, naming the rule and the problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RulesError {
    /// One rule is wrong: `rule` is its place (`boosts[2]`).
    #[error("rules: {rule}: {problem}")]
    Invalid {
        /// Where: `pins[0]`, `boosts[3]`, `diversity[1]`, `explore.slots[0]`.
        rule: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// Too many rules of one kind.
    #[error("rules: {what} holds {got} entries; the limit is {limit}")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// How many it holds.
        got: usize,
        /// The limit.
        limit: usize,
    },
}

fn invalid(rule: String, problem: impl Into<String>) -> RulesError {
    RulesError::Invalid {
        rule,
        problem: problem.into(),
    }
}

pub(crate) fn check_count(what: &'static str, got: usize, limit: usize) -> Result<(), RulesError> {
    if got > limit {
        return Err(RulesError::TooMany { what, got, limit });
    }
    Ok(())
}

impl RuleSet {
    /// Whether the set changes nothing.
    pub fn is_empty(&self) -> bool {
        self.pins.is_empty()
            && self.boosts.is_empty()
            && self.filter.is_empty()
            && self.diversity.is_empty()
            && self.explore.as_ref().is_none_or(|e| e.slots.is_empty())
    }

    /// Checks every rule; the first problem found is the error.
    pub fn validate(&self) -> Result<(), RulesError> {
        check_count("pins", self.pins.len(), MAX_RULES)?;
        check_count("boosts", self.boosts.len(), MAX_RULES)?;
        check_count("diversity", self.diversity.len(), MAX_RULES)?;
        check_count("filter", self.filter.len(), MAX_FILTER)?;
        for (k, p) in self.pins.iter().enumerate() {
            if p.slot == 0 {
                return Err(invalid(
                    format!("pins[{k}]"),
                    "slot is 1-based: 1 is the top",
                ));
            }
        }
        for (k, b) in self.boosts.iter().enumerate() {
            let at = || format!("boosts[{k}]");
            let targets = [&b.item, &b.brand, &b.category]
                .iter()
                .filter(|t| t.is_some())
                .count();
            if targets != 1 {
                return Err(invalid(
                    at(),
                    "give exactly one of \"item\", \"brand\", \"category\"",
                ));
            }
            match (b.times, b.add) {
                (Some(t), None) if (0.0..=MAX_TIMES).contains(&t) => {}
                (Some(t), None) => {
                    return Err(invalid(
                        at(),
                        format!(
                            "times {} is outside [0, {}]",
                            decimal(t),
                            decimal(MAX_TIMES)
                        ),
                    ))
                }
                (None, Some(a)) if (-MAX_ADD..=MAX_ADD).contains(&a) => {}
                (None, Some(a)) => {
                    return Err(invalid(
                        at(),
                        format!(
                            "add {} is outside [{}, {}]",
                            decimal(a),
                            decimal(-MAX_ADD),
                            decimal(MAX_ADD)
                        ),
                    ))
                }
                _ => return Err(invalid(at(), "give exactly one of \"times\", \"add\"")),
            }
        }
        for (k, d) in self.diversity.iter().enumerate() {
            let at = || format!("diversity[{k}]");
            if d.by != "brand" && d.by != "category" {
                return Err(invalid(
                    at(),
                    format!("by {:?} must be \"brand\" or \"category\"", d.by),
                ));
            }
            if d.window < 2 || d.window > MAX_WINDOW {
                return Err(invalid(
                    at(),
                    format!("window {} is outside [2, {MAX_WINDOW}]", d.window),
                ));
            }
            if d.max == 0 || d.max >= d.window {
                return Err(invalid(
                    at(),
                    format!("max {} must be in [1, window - 1]", d.max),
                ));
            }
        }
        if let Some(e) = &self.explore {
            check_count("explore.slots", e.slots.len(), MAX_EXPLORE_SLOTS)?;
            if let Some(k) = e.slots.iter().position(|&s| s == 0) {
                return Err(invalid(
                    format!("explore.slots[{k}]"),
                    "slot is 1-based: 1 is the top",
                ));
            }
        }
        Ok(())
    }
}

/// The JSON fields a rule set and each kind of rule in it may hold:
/// `(where, allowed)`, the rule set's own first, then each list's or
/// object's (`pins`, `boosts`, `diversity`, `explore`). For a reader that
/// sees only the fields it names (the wasm's), so that a typo (`"pin"`) is
/// an error there as it is in JSON. Constants, not read from the derive:
/// that would put serde's deserializer in the wasm (a test keeps them
/// equal to the derive's).
pub const FIELDS: [(&str, &[&str]); 5] = [
    ("", &["pins", "boosts", "filter", "diversity", "explore"]),
    ("pins", &["item", "slot"]),
    ("boosts", &["item", "brand", "category", "times", "add"]),
    ("diversity", &["by", "max", "window"]),
    ("explore", &["slots"]),
];

/// The field names `T`'s derived `Deserialize` passes to
/// `deserialize_struct`.
#[cfg(test)]
pub(crate) fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};
    use std::fmt;

    #[derive(Debug)]
    struct Found(&'static [&'static str]);
    impl fmt::Display for Found {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "fields {:?}", self.0)
        }
    }
    impl std::error::Error for Found {}
    impl de::Error for Found {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Found(&[])
        }
    }
    struct Probe;
    impl<'de> de::Deserializer<'de> for Probe {
        type Error = Found;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
            Err(Found(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Found> {
            Err(Found(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Found(fields)) => fields,
        Ok(_) => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_the_derives_and_name_every_nested_rule() {
        let derived = [
            fields_of::<RuleSet>(),
            fields_of::<Pin>(),
            fields_of::<Boost>(),
            fields_of::<Diversity>(),
            fields_of::<Explore>(),
        ];
        for ((at, allowed), derived) in FIELDS.iter().zip(derived) {
            assert_eq!(*allowed, derived, "{at:?}");
        }
        for (at, allowed) in &FIELDS[1..] {
            assert!(FIELDS[0].1.contains(at), "{at} is not a rule set field");
            assert!(!allowed.is_empty(), "{at}");
        }
    }
}
