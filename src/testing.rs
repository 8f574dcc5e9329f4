//! Small hand-made models for tests, examples and fuzzing seeds.
#![doc(hidden)]

use crate::model::{ItemsSection, ModelParts, NeighboursSection, StringTable};
use crate::rank::{RankerKind, RankerParams};

/// Four items `a`..`d` in two categories; `a` and `b` are neighbours, `c`
/// is the most popular; as of 1970-01-02.
pub fn tiny_model() -> ModelParts {
    ModelParts {
        as_of_day: 1,
        items: ItemsSection {
            ids: StringTable::from_strings(&["a", "b", "c", "d"]),
            category: vec![0, 0, 1, crate::model::NO_CATEGORY],
            conversions_7d: vec![1, 2, 9, 0],
            trend: vec![1.0, 2.0, 5.0, 0.5],
            conversions_max: 9,
            trend_max: 5.0,
        },
        categories: StringTable::from_strings(&["diapers", "strollers"]),
        neighbours: NeighboursSection {
            offsets: vec![0, 1, 2, 2, 2],
            items: vec![1, 0],
            scores: vec![65_535, 32_768],
            scale: 1.0 / 65_535.0,
        },
        ranker: RankerParams::preset(RankerKind::Hybrid),
        factors: None,
        family: None,
        rules: None,
        complements: None,
    }
}
