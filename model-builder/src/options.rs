//! What a build can be tuned by, read by the build, the engine's plans,
//! training and evaluation alike.

use crate::als::AlsOptions;
use nestrank::rank::{RankerKind, RankerParams};

/// The similarity measure of co-occurrence neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Similarity {
    /// `C(i,j) / (C(i) + C(j) - C(i,j))`.
    Jaccard,
    /// `C(i,j) / sqrt(C(i) C(j))`.
    Cosine,
    /// `C(i,j) / (C(i) C(j))`.
    Lift,
}

/// Everything a build can be tuned by.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Neighbours kept per item.
    pub k: usize,
    /// Bought-together neighbours kept per item (0: no complements table).
    pub complement_k: usize,
    /// Operations' rules shipped in the blob.
    pub rules: Option<nestrank::RuleSet>,
    /// The neighbour similarity.
    pub similarity: Similarity,
    /// Half-life, in days, of a user-item affinity in co-occurrence counts.
    pub cooc_half_life_days: f64,
    /// Half-life, in days, of the trend prior.
    pub trend_half_life_days: f64,
    /// Most recent distinct items per user used for co-occurrence (bounds the pairs).
    pub max_items_per_user: usize,
    /// Event weights of co-occurrence and trend (view, fav, cart, purchase).
    pub event_weights: [f32; 4],
    /// The ranker to ship.
    pub ranker: RankerParams,
    /// Implicit-ALS settings (`factors: 0` trains none).
    pub als: AlsOptions,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            k: 50,
            complement_k: 10,
            rules: None,
            similarity: Similarity::Jaccard,
            cooc_half_life_days: 30.0,
            trend_half_life_days: 3.0,
            max_items_per_user: 500,
            event_weights: nestrank::signals::EVENT_WEIGHTS,
            ranker: RankerParams::preset(RankerKind::Hybrid),
            als: AlsOptions::default(),
        }
    }
}

/// Seconds in a UTC day.
pub const DAY: i64 = nestrank::calendar::SECONDS_PER_DAY;
