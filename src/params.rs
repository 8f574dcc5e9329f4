//! The scorer's parameters: the feature list, the hand-set rankers the
//! builder compares (random, popular, recent, category, itemcf, hybrid)
//! and the learned ranker section a blob carries. What the numbers mean is
//! [`crate::rank`]'s; this module only holds and checks them, so the model
//! can carry them without importing the scorer.

use crate::format::DecodeError;
use crate::signals::{Event, EVENT_WEIGHTS};
use crate::wire::StringTable;
use wincode::{SchemaRead, SchemaWrite};

/// The number of features per candidate.
pub const NUM_FEATURES: usize = 19;

/// Feature names, in feature order. The blob stores the ranker's weights by
/// name, so a feature added later leaves older blobs readable (their weight
/// for it is zero).
pub const FEATURE_NAMES: [&str; NUM_FEATURES] = [
    "own_recency",
    "own_weight",
    "own_intent",
    "own_session",
    "similarity",
    "similarity_session",
    "category_count",
    "category_share",
    "category_session",
    "popularity",
    "trend",
    "factor",
    "stage_fit",
    "gender_fit",
    "brand_affinity",
    "price_fit",
    "restock",
    "own_weight_session",
    "category_recency",
];

/// `1 / (1 + hours since the user's latest signal on this very item)`; 0 if none.
pub const F_OWN_RECENCY: usize = 0;
/// Event-weighted, decayed sum of the user's signals on this very item.
pub const F_OWN_WEIGHT: usize = 1;
/// Decayed count of favourites, carts and purchases of this very item.
pub const F_OWN_INTENT: usize = 2;
/// `ln(1 + signals on this very item within the session horizon)`.
pub const F_OWN_SESSION: usize = 3;
/// Event-weighted, decayed sum of neighbour similarity to the signal items.
pub const F_SIMILARITY: usize = 4;
/// The same with the session half-life: what the user looks at right now.
pub const F_SIMILARITY_SESSION: usize = 5;
/// `ln(1 + number of signals in the candidate's category)`.
pub const F_CATEGORY_COUNT: usize = 6;
/// Share of the user's decayed signal weight in the candidate's category.
pub const F_CATEGORY_SHARE: usize = 7;
/// The same share with the session half-life.
pub const F_CATEGORY_SESSION: usize = 8;
/// Conversions in the 7 days before as-of, log-scaled to `[0, 1]`.
pub const F_POPULARITY: usize = 9;
/// Decayed activity before as-of, log-scaled to `[0, 1]`.
pub const F_TREND: usize = 10;
/// The folded-in user vector times the item's factors (0 without factors).
pub const F_FACTOR: usize = 11;
/// The item's learned stage lift at the baby's age today: log2 of
/// `P(age | item) / P(age)`, clamped to +-3 (0 without a profile with a
/// birthday, or a model without stage fit).
pub const F_STAGE_FIT: usize = 12;
/// -1 for clothing made for the other gender than the profile's baby; else 0.
pub const F_GENDER_FIT: usize = 13;
/// How much the family favours the item's brand, 0..1: the larger of the
/// profile's affinity and the share of the user's decayed signal weight on
/// that brand.
pub const F_BRAND_AFFINITY: usize = 14;
/// How close the item's price is to the family's: `1 - |ln(price / centre)|
/// / ln 2`, at least 0, the centre being the profile's price band or the
/// weighted geometric mean price of the items the user acted on.
pub const F_PRICE_FIT: usize = 15;
/// Replenishment: +1 when the user bought in this consumable category and
/// is due to again (80% of its typical interval has passed), -1 while still
/// stocked (under 60%) or for a durable category already bought; else 0.
pub const F_RESTOCK: usize = 16;
/// [`F_OWN_WEIGHT`] with the session half-life: how hard the user is
/// looking at this very item right now. With the long half-life beside it,
/// the ranker learns how fast interest in a viewed item fades.
pub const F_OWN_WEIGHT_SESSION: usize = 17;
/// `1 / (1 + hours since the user's latest signal in the candidate's
/// category)`; 0 if none: what the user is shopping for right now, for
/// the items of that category they have not touched yet.
pub const F_CATEGORY_RECENCY: usize = 18;

/// The ranker's parameters: how signals decay and weigh, and one weight per feature.
#[derive(Debug, Clone, PartialEq)]
pub struct RankerParams {
    /// Weight of each event kind (view, fav, cart, purchase), `>= 0`.
    pub event_weights: Vec<f32>,
    /// Half-life, in hours, of a signal's weight for the own-item features.
    pub half_life_own_h: f32,
    /// Half-life, in hours, for the similarity feature.
    pub half_life_sim_h: f32,
    /// Half-life, in hours, for the category-share feature.
    pub half_life_cat_h: f32,
    /// The session horizon and short half-life, in hours.
    pub session_h: f32,
    /// One weight per feature, in [`FEATURE_NAMES`] order.
    pub weights: Vec<f32>,
}

/// The `ranker` section as stored: weights by feature name.
#[derive(Debug, Clone, PartialEq, SchemaWrite, SchemaRead)]
pub struct RankerSection {
    /// See [`RankerParams::event_weights`].
    #[wincode(with = "crate::format::OutOfLine<Vec<f32>>")]
    pub event_weights: Vec<f32>,
    /// See [`RankerParams::half_life_own_h`].
    pub half_life_own_h: f32,
    /// See [`RankerParams::half_life_sim_h`].
    pub half_life_sim_h: f32,
    /// See [`RankerParams::half_life_cat_h`].
    pub half_life_cat_h: f32,
    /// See [`RankerParams::session_h`].
    pub session_h: f32,
    /// Feature names.
    #[wincode(with = "crate::format::OutOfLine<StringTable>")]
    pub features: StringTable,
    /// One weight per name.
    #[wincode(with = "crate::format::OutOfLine<Vec<f32>>")]
    pub weights: Vec<f32>,
}

impl RankerSection {
    /// The in-memory parameters; a feature name this build does not know is
    /// an error (a newer builder's blob), a feature not named weighs zero.
    pub fn params(&self) -> Result<RankerParams, DecodeError> {
        if self.weights.len() != self.features.len() {
            return Err(DecodeError::LengthMismatch {
                what: "ranker.weights vs ranker.features",
                left: self.weights.len() as u64,
                right: self.features.len() as u64,
            });
        }
        self.features.validate("ranker.features")?;
        let mut weights = vec![0.0; NUM_FEATURES];
        let mut seen = [false; NUM_FEATURES];
        for (k, &w) in self.weights.iter().enumerate() {
            let name = self.features.get(k);
            let f =
                FEATURE_NAMES
                    .iter()
                    .position(|n| *n == name)
                    .ok_or(DecodeError::OutOfRange {
                        what: "ranker feature name",
                    })?;
            if std::mem::replace(&mut seen[f], true) {
                return Err(DecodeError::OutOfRange {
                    what: "ranker feature name (repeated)",
                });
            }
            weights[f] = w;
        }
        let p = RankerParams {
            event_weights: self.event_weights.clone(),
            half_life_own_h: self.half_life_own_h,
            half_life_sim_h: self.half_life_sim_h,
            half_life_cat_h: self.half_life_cat_h,
            session_h: self.session_h,
            weights,
        };
        p.validate()?;
        Ok(p)
    }
}

/// The features every reader of format version 4 knows. A ranker section
/// always names these; a feature added later is named only when it weighs
/// something, so a blob that does not use it stays byte for byte what an
/// older builder wrote, and readable by an older module.
pub const FEATURES_OF_VERSION_4: usize = 17;

impl From<&RankerParams> for RankerSection {
    fn from(p: &RankerParams) -> Self {
        let kept: Vec<usize> = (0..NUM_FEATURES)
            .filter(|&k| k < FEATURES_OF_VERSION_4 || p.weights[k] != 0.0)
            .collect();
        let names: Vec<&str> = kept.iter().map(|&k| FEATURE_NAMES[k]).collect();
        RankerSection {
            event_weights: p.event_weights.clone(),
            half_life_own_h: p.half_life_own_h,
            half_life_sim_h: p.half_life_sim_h,
            half_life_cat_h: p.half_life_cat_h,
            session_h: p.session_h,
            features: StringTable::from_strings(&names),
            weights: kept.iter().map(|&k| p.weights[k]).collect(),
        }
    }
}

/// The rankers the project ships and evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankerKind {
    /// No personalization: the candidates' given order.
    Random,
    /// Conversions in the last 7 days.
    Popular,
    /// The user's own items, most recent first; the rest by popularity.
    Recent,
    /// The user's signal count in the candidate's category.
    Category,
    /// Item-item similarity to the user's decayed signals.
    ItemCf,
    /// The folded-in implicit-ALS factors alone.
    Factor,
    /// The shipped blend of every feature.
    Hybrid,
}

impl RankerKind {
    /// All kinds, in report order.
    pub const ALL: [RankerKind; 7] = [
        RankerKind::Random,
        RankerKind::Popular,
        RankerKind::Recent,
        RankerKind::Category,
        RankerKind::ItemCf,
        RankerKind::Factor,
        RankerKind::Hybrid,
    ];

    /// The report name.
    pub fn name(self) -> &'static str {
        match self {
            RankerKind::Random => "random",
            RankerKind::Popular => "popular",
            RankerKind::Recent => "recent",
            RankerKind::Category => "category",
            RankerKind::ItemCf => "itemcf",
            RankerKind::Factor => "als",
            RankerKind::Hybrid => "hybrid",
        }
    }

    /// The kind with this report name.
    pub fn from_name(name: &str) -> Option<RankerKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl RankerParams {
    /// The default event weights and half-lives, with all feature weights zero.
    fn base() -> Self {
        RankerParams {
            event_weights: EVENT_WEIGHTS.to_vec(),
            half_life_own_h: 24.0,
            half_life_sim_h: 72.0,
            half_life_cat_h: 6.0,
            session_h: 1.0,
            weights: vec![0.0; NUM_FEATURES],
        }
    }

    /// The parameters of a baseline ranker, or the default hybrid.
    pub fn preset(kind: RankerKind) -> Self {
        let mut p = Self::base();
        let w = &mut p.weights;
        match kind {
            RankerKind::Random => {}
            RankerKind::Popular => w[F_POPULARITY] = 1.0,
            RankerKind::Recent => {
                // Own recency is >= 1/(1+hours) >= 1e-4 for a year-old signal,
                // so 1e5 puts every own item above any popularity in [0, 1e-3].
                w[F_OWN_RECENCY] = 1e5;
                w[F_POPULARITY] = 1e-3;
            }
            RankerKind::Category => w[F_CATEGORY_COUNT] = 1.0,
            RankerKind::ItemCf => {
                // SAR-style: an item is most similar to itself (similarity 1).
                w[F_SIMILARITY] = 1.0;
                w[F_OWN_WEIGHT] = 1.0;
                p.half_life_own_h = p.half_life_sim_h;
            }
            RankerKind::Factor => {
                w[F_FACTOR] = 1.0;
            }
            RankerKind::Hybrid => {
                w[F_OWN_RECENCY] = 2.0;
                w[F_OWN_WEIGHT] = 0.5;
                w[F_SIMILARITY] = 1.0;
                w[F_CATEGORY_COUNT] = 0.1;
                w[F_CATEGORY_SHARE] = 1.0;
                w[F_POPULARITY] = 0.2;
                w[F_TREND] = 0.1;
                w[F_STAGE_FIT] = 0.3;
                w[F_GENDER_FIT] = 1.0;
                w[F_BRAND_AFFINITY] = 0.5;
                w[F_PRICE_FIT] = 0.3;
                w[F_RESTOCK] = 1.0;
            }
        }
        p
    }

    /// These parameters with the user's own items put first, most recent
    /// first (the `recent` rule), and the rest in this ranker's order: where
    /// people buy what they just viewed, no blend beats that rule.
    pub fn recency_first(&self) -> Self {
        let mut p = self.clone();
        // As for the `recent` preset: 1e5 lifts any own item above the rest.
        p.weights[F_OWN_RECENCY] += 1e5;
        p
    }

    /// Checks lengths and that every number is finite and in range.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.event_weights.len() != Event::ALL.len() {
            return Err(DecodeError::LengthMismatch {
                what: "ranker.event_weights vs event kinds",
                left: self.event_weights.len() as u64,
                right: Event::ALL.len() as u64,
            });
        }
        if self.weights.len() != NUM_FEATURES {
            return Err(DecodeError::LengthMismatch {
                what: "ranker.weights vs features",
                left: self.weights.len() as u64,
                right: NUM_FEATURES as u64,
            });
        }
        if self.weights.iter().any(|w| !w.is_finite()) {
            return Err(DecodeError::NonFinite {
                what: "ranker.weights",
            });
        }
        if self
            .event_weights
            .iter()
            .any(|w| !w.is_finite() || *w < 0.0)
        {
            return Err(DecodeError::NonFinite {
                what: "ranker.event_weights",
            });
        }
        for h in [
            self.half_life_own_h,
            self.half_life_sim_h,
            self.half_life_cat_h,
            self.session_h,
        ] {
            if !h.is_finite() || h <= 0.0 {
                return Err(DecodeError::OutOfRange {
                    what: "ranker half-life",
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_feature_is_named_only_when_it_weighs() {
        let mut p = RankerParams::preset(RankerKind::Hybrid);
        let section = RankerSection::from(&p);
        assert_eq!(section.features.len(), FEATURES_OF_VERSION_4);
        assert_eq!(section.params().unwrap(), p);
        p.weights[F_CATEGORY_RECENCY] = 0.25;
        let section = RankerSection::from(&p);
        assert_eq!(section.features.len(), FEATURES_OF_VERSION_4 + 1);
        assert_eq!(
            section.features.get(FEATURES_OF_VERSION_4),
            "category_recency"
        );
        assert_eq!(section.params().unwrap(), p);
        p.weights[F_OWN_WEIGHT_SESSION] = -0.5;
        let section = RankerSection::from(&p);
        assert_eq!(section.features.len(), NUM_FEATURES);
        assert_eq!(section.params().unwrap(), p);
    }
}
