//! The loaded daily model: item table, categories, neighbours, ranker.
//!
//! [`Model::from_bytes`] validates everything once (FORMAT.md lists the
//! checks); after that the scorer indexes the arrays without checks.

use crate::factors::FactorsSection;
use crate::format::{
    check_len, decode_section, encode_section, BlobKind, Container, DecodeError, Header,
};
use crate::hash::table_hash;
use crate::packed::PackedNeighbours;
use crate::params::{RankerParams, RankerSection};
use crate::ruleset::RuleSet;
pub use crate::wire::{
    NeighboursSection, StringTable, MAX_CATEGORIES, MAX_ID_BYTES, MAX_ITEMS, MAX_NEIGHBOURS,
    NO_CATEGORY,
};
use std::sync::OnceLock;
use wincode::{SchemaRead, SchemaWrite};

/// Section ids of a model blob (FORMAT.md, "Sections").
pub mod section {
    /// Item ids, categories, popularity.
    pub const ITEMS: u16 = 1;
    /// Category names.
    pub const CATEGORIES: u16 = 2;
    /// Item-item neighbour lists.
    pub const NEIGHBOURS: u16 = 3;
    /// Ranker parameters.
    pub const RANKER: u16 = 4;
    /// Item factors for the on-device fold-in (optional).
    pub const FACTORS: u16 = 5;
    /// [`super::FamilySection`] (version 2).
    pub const FAMILY: u16 = 6;
    /// [`crate::ruleset::RuleSet`] (version 3, optional).
    pub const RULES: u16 = 7;
    /// Bought-together neighbour lists (version 3, optional).
    pub const COMPLEMENTS: u16 = 8;

    /// A section's name as FORMAT.md gives it, or `None` for an id no
    /// version defines.
    pub fn name(id: u16) -> Option<&'static str> {
        Some(match id {
            ITEMS => "items",
            CATEGORIES => "categories",
            NEIGHBOURS => "neighbours",
            RANKER => "ranker",
            FACTORS => "factors",
            FAMILY => "family",
            RULES => "rules",
            COMPLEMENTS => "complements",
            _ => return None,
        })
    }
}

/// What the profile features need of each item (format version 2,
/// optional): its brand, who it is for, and its learned stage fit.
#[derive(Debug, Clone, PartialEq, Default, SchemaWrite, SchemaRead)]
pub struct FamilySection {
    /// Brand names, ascending by bytes.
    #[wincode(with = "crate::format::OutOfLine<StringTable>")]
    pub brands: StringTable,
    /// Brand index per item, or [`NO_CATEGORY`] (`u32::MAX`) when unknown.
    #[wincode(with = "crate::format::OutOfLine<Vec<u32>>")]
    pub brand: Vec<u32>,
    /// Per item: 0 anyone, 1 girls, 2 boys.
    #[wincode(with = "crate::format::OutOfLine<Vec<u8>>")]
    pub gender: Vec<u8>,
    /// The age buckets' edges in months: must be [`crate::stage::EDGES`].
    #[wincode(with = "crate::format::OutOfLine<Vec<f32>>")]
    pub edges: Vec<f32>,
    /// Per item and bucket (item-major), the quantized log2 stage lift
    /// ([`crate::stage::quantize_lift`]); empty when the build learned none.
    #[wincode(with = "crate::format::OutOfLine<Vec<u8>>")]
    pub lifts: Vec<u8>,
    /// Per item, its price (0: unknown).
    #[wincode(with = "crate::format::OutOfLine<Vec<f32>>")]
    pub price: Vec<f32>,
    /// Per category: a consumable's typical days between re-purchases
    /// (> 0), a durable bought once ([`DURABLE`]), or unknown (0).
    #[wincode(with = "crate::format::OutOfLine<Vec<f32>>")]
    pub restock_days: Vec<f32>,
}

/// [`FamilySection::restock_days`] of a durable category (a stroller).
pub const DURABLE: f32 = -1.0;

/// The item table section.
#[derive(Debug, Clone, PartialEq, Default, SchemaWrite, SchemaRead)]
pub struct ItemsSection {
    /// Item ids, strictly ascending by bytes: the dense index of an item is
    /// its position here.
    #[wincode(with = "crate::format::OutOfLine<StringTable>")]
    pub ids: StringTable,
    /// Category index per item, or [`NO_CATEGORY`].
    #[wincode(with = "crate::format::OutOfLine<Vec<u32>>")]
    pub category: Vec<u32>,
    /// Conversions (cart + purchase events) per item in the 7 days before as-of.
    #[wincode(with = "crate::format::OutOfLine<Vec<u32>>")]
    pub conversions_7d: Vec<u32>,
    /// Event-weighted, time-decayed activity per item before as-of.
    #[wincode(with = "crate::format::OutOfLine<Vec<f32>>")]
    pub trend: Vec<f32>,
    /// The largest conversion count over the whole catalog the builder saw:
    /// the popularity feature is `ln(1+c) / ln(1+max)`, so a daily blob cut
    /// down to fewer items scores exactly like the full one.
    pub conversions_max: u32,
    /// The largest trend over the whole catalog (the same role).
    pub trend_max: f32,
}

impl ItemsSection {
    /// The `kept` items (ascending), their categories renumbered by
    /// `cat_index` (old category -> new, or [`NO_CATEGORY`]). The
    /// catalog-wide maxima stay, so a kept item scores as in the full
    /// model.
    pub fn select_items(&self, kept: &[usize], cat_index: &[u32]) -> Self {
        ItemsSection {
            ids: StringTable::from_strings(
                &kept.iter().map(|&i| self.ids.get(i)).collect::<Vec<_>>(),
            ),
            category: kept
                .iter()
                .map(|&i| match self.category[i] {
                    NO_CATEGORY => NO_CATEGORY,
                    c => cat_index[c as usize],
                })
                .collect(),
            conversions_7d: kept.iter().map(|&i| self.conversions_7d[i]).collect(),
            trend: kept.iter().map(|&i| self.trend[i]).collect(),
            conversions_max: self.conversions_max,
            trend_max: self.trend_max,
        }
    }
}

/// Everything a model is made of, before it is written or after it is read.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelParts {
    /// The as-of day, in days since 1970-01-01.
    pub as_of_day: i32,
    /// The item table.
    pub items: ItemsSection,
    /// Category names.
    pub categories: StringTable,
    /// Neighbour lists.
    pub neighbours: NeighboursSection,
    /// The shipped ranker.
    pub ranker: RankerParams,
    /// Implicit-ALS item factors, if the build trained them.
    pub factors: Option<FactorsSection>,
    /// Brands, genders and stage fit, if the data had them (version 2).
    pub family: Option<FamilySection>,
    /// Operations' rules (version 3).
    pub rules: Option<RuleSet>,
    /// Bought-together (complementary) neighbour lists (version 3); the
    /// `neighbours` section is the viewed-together (similar) table.
    pub complements: Option<NeighboursSection>,
}

/// A validated model, ready to rank.
#[derive(Debug, Clone)]
pub struct Model {
    header: Header,
    parts: ModelParts,
    pop_feature: Vec<f32>,
    trend_feature: Vec<f32>,
    /// Open-addressing hash table from id to index + 1 (0 = empty), built
    /// on the first string lookup so that typed-only callers never pay.
    id_slots: OnceLock<Vec<u32>>,
}

fn log_normalized<T: Copy + Into<f64>>(values: &[T], max: f64) -> Vec<f32> {
    let denom = (1.0 + max).ln();
    values
        .iter()
        .map(|&v| {
            if denom > 0.0 {
                ((1.0 + v.into()).ln() / denom) as f32
            } else {
                0.0
            }
        })
        .collect()
}

impl ModelParts {
    fn sections(&self) -> Vec<(u16, Vec<u8>)> {
        let n = self.items.ids.len();
        let mut sections = vec![
            (section::ITEMS, encode_section(&self.items)),
            (section::CATEGORIES, encode_section(&self.categories)),
            (
                section::NEIGHBOURS,
                encode_section(&PackedNeighbours::pack(&self.neighbours, n)),
            ),
            (
                section::RANKER,
                encode_section(&RankerSection::from(&self.ranker)),
            ),
        ];
        if let Some(f) = &self.factors {
            sections.push((section::FACTORS, encode_section(f)));
        }
        if let Some(f) = &self.family {
            sections.push((section::FAMILY, encode_section(f)));
        }
        if let Some(r) = &self.rules {
            sections.push((section::RULES, encode_section(r)));
        }
        if let Some(c) = &self.complements {
            sections.push((
                section::COMPLEMENTS,
                encode_section(&PackedNeighbours::pack(c, n)),
            ));
        }
        sections
    }

    /// Checks every invariant FORMAT.md states for a model.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let items = &self.items;
        let n = items.ids.len();
        if n > MAX_ITEMS {
            return Err(DecodeError::TooLarge {
                what: "item count",
                got: n as u64,
                limit: MAX_ITEMS as u64,
            });
        }
        items.ids.validate("item ids")?;
        for i in 1..n {
            if items.ids.get(i - 1).as_bytes() >= items.ids.get(i).as_bytes() {
                return Err(DecodeError::UnsortedIds {
                    what: "item ids",
                    index: i as u32,
                });
            }
        }
        check_len("items.category vs item ids", items.category.len(), n)?;
        check_len(
            "items.conversions_7d vs item ids",
            items.conversions_7d.len(),
            n,
        )?;
        check_len("items.trend vs item ids", items.trend.len(), n)?;
        let c = self.categories.len();
        if c > MAX_CATEGORIES {
            return Err(DecodeError::TooLarge {
                what: "category count",
                got: c as u64,
                limit: MAX_CATEGORIES as u64,
            });
        }
        self.categories.validate("category names")?;
        if items
            .category
            .iter()
            .any(|&k| k != NO_CATEGORY && k as usize >= c)
        {
            return Err(DecodeError::OutOfRange {
                what: "items.category",
            });
        }
        if !items.trend_max.is_finite() || items.trend.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(DecodeError::NonFinite {
                what: "items.trend",
            });
        }
        if items.trend.iter().any(|&v| v > items.trend_max)
            || items
                .conversions_7d
                .iter()
                .any(|&c| c > items.conversions_max)
        {
            return Err(DecodeError::OutOfRange {
                what: "items.trend or conversions_7d above its stated maximum",
            });
        }
        self.neighbours.validate(n, "neighbours")?;
        if let Some(c) = &self.complements {
            c.validate(n, "complements")?;
        }
        self.ranker.validate()?;
        if let Some(f) = &self.factors {
            f.validate(n)?;
        }
        if let Some(f) = &self.family {
            f.validate(n, self.categories.len())?;
        }
        if let Some(r) = &self.rules {
            r.validate().map_err(|e| DecodeError::Malformed {
                what: "rules",
                detail: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// Serializes to a blob. The model id is the FNV-1a 64 hash of the
    /// encoded sections, so equal inputs give byte-identical blobs.
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::format::seal(BlobKind::Model, self.as_of_day, &self.sections())
    }
}

impl Model {
    /// Decodes and validates a model blob. Never panics; any problem is a
    /// [`DecodeError`] naming what and where.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let container = Container::parse(bytes, BlobKind::Model)?;
        let version = container.header.version;
        let mut items: Option<ItemsSection> = None;
        let mut categories = None;
        let mut neighbours = None;
        let mut ranker: Option<RankerSection> = None;
        let mut factors = None;
        let mut family = None;
        let mut rules = None;
        let mut complements = None;
        fn put<T>(slot: &mut Option<T>, v: T, what: &'static str) -> Result<(), DecodeError> {
            if slot.replace(v).is_some() {
                return Err(DecodeError::DuplicateSection { what });
            }
            Ok(())
        }
        for (id, data) in &container.sections {
            match *id {
                section::ITEMS => put(&mut items, decode_section(data, "items")?, "items")?,
                section::CATEGORIES => put(
                    &mut categories,
                    decode_section(data, "categories")?,
                    "categories",
                )?,
                section::NEIGHBOURS => put(
                    &mut neighbours,
                    WireTable::decode(data, "neighbours", version)?,
                    "neighbours",
                )?,
                section::RANKER => put(&mut ranker, decode_section(data, "ranker")?, "ranker")?,
                section::FACTORS => put(&mut factors, decode_section(data, "factors")?, "factors")?,
                section::FAMILY if version >= 2 => {
                    put(&mut family, decode_section(data, "family")?, "family")?
                }
                section::RULES if version >= 3 => {
                    put(&mut rules, decode_section(data, "rules")?, "rules")?
                }
                section::COMPLEMENTS if version >= 3 => put(
                    &mut complements,
                    WireTable::decode(data, "complements", version)?,
                    "complements",
                )?,
                _ => return Err(DecodeError::OutOfRange { what: "section id" }),
            }
        }
        let items = items.ok_or(DecodeError::MissingSection { what: "items" })?;
        let n = items.ids.len();
        let parts = ModelParts {
            as_of_day: container.header.as_of_day,
            categories: categories.ok_or(DecodeError::MissingSection { what: "categories" })?,
            neighbours: neighbours
                .ok_or(DecodeError::MissingSection { what: "neighbours" })?
                .into_section(n, "neighbours")?,
            ranker: ranker
                .ok_or(DecodeError::MissingSection { what: "ranker" })?
                .params()?,
            factors,
            family,
            rules,
            complements: complements
                .map(|c| c.into_section(n, "complements"))
                .transpose()?,
            items,
        };
        Self::with_header(container.header, parts)
    }

    /// Validates parts built in memory (the builder's path) and returns the
    /// model exactly as [`Model::from_bytes`] of [`ModelParts::to_bytes`] would.
    pub fn from_parts(parts: ModelParts) -> Result<Self, DecodeError> {
        Self::from_bytes(&parts.to_bytes())
    }

    fn with_header(header: Header, parts: ModelParts) -> Result<Self, DecodeError> {
        parts.validate()?;
        let pop_feature = log_normalized(
            &parts.items.conversions_7d,
            f64::from(parts.items.conversions_max),
        );
        let trend_feature = log_normalized(&parts.items.trend, f64::from(parts.items.trend_max));
        Ok(Model {
            header,
            parts,
            pop_feature,
            trend_feature,
            id_slots: OnceLock::new(),
        })
    }

    /// The header read from the blob.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The model id as 16 lowercase hex digits.
    pub fn model_id(&self) -> String {
        format!("{:016x}", self.header.model_id)
    }

    /// The parts, for inspection and re-encoding.
    pub fn parts(&self) -> &ModelParts {
        &self.parts
    }

    /// The number of items.
    pub fn item_count(&self) -> usize {
        self.parts.items.ids.len()
    }

    /// The number of categories.
    pub fn category_count(&self) -> usize {
        self.parts.categories.len()
    }

    /// The dense index of an item id, if the model knows it.
    pub fn index_of(&self, id: &str) -> Option<u32> {
        let slots = self.id_slots.get_or_init(|| self.build_id_slots());
        let mask = slots.len() - 1;
        let mut at = table_hash(id.as_bytes()) as usize & mask;
        loop {
            match slots[at] {
                0 => return None,
                s if self.parts.items.ids.bytes_of((s - 1) as usize) == id.as_bytes() => {
                    return Some(s - 1)
                }
                _ => at = (at + 1) & mask,
            }
        }
    }

    fn build_id_slots(&self) -> Vec<u32> {
        let n = self.item_count();
        // At most half full, so probes stay short and an empty slot always exists.
        let mut slots = vec![0u32; (2 * n).next_power_of_two().max(2)];
        let mask = slots.len() - 1;
        for i in 0..n as u32 {
            let mut at = table_hash(self.id_of(i).as_bytes()) as usize & mask;
            while slots[at] != 0 {
                at = (at + 1) & mask;
            }
            slots[at] = i + 1;
        }
        slots
    }

    /// The id of item `index`; `index` must be below [`Model::item_count`].
    pub fn id_of(&self, index: u32) -> &str {
        self.parts.items.ids.get(index as usize)
    }

    /// The category index of item `index`, or [`NO_CATEGORY`].
    pub fn category_of(&self, index: u32) -> u32 {
        self.parts.items.category[index as usize]
    }

    /// The name of category `index`.
    pub fn category_name(&self, index: u32) -> &str {
        self.parts.categories.get(index as usize)
    }

    /// The neighbours of item `index`: `(neighbour index, similarity)`.
    pub fn neighbours(&self, index: u32) -> impl Iterator<Item = (u32, f32)> + '_ {
        self.parts.neighbours.row(index)
    }

    /// Raw neighbour arrays for the hot path: `(offsets, items, scores, scale)`.
    pub(crate) fn neighbour_arrays(&self) -> (&[u32], &[u32], &[u16], f32) {
        let nb = &self.parts.neighbours;
        (&nb.offsets, &nb.items, &nb.scores, nb.scale)
    }

    /// The popularity feature of item `index` in `[0, 1]`.
    pub fn popularity(&self, index: u32) -> f32 {
        self.pop_feature[index as usize]
    }

    /// The trend feature of item `index` in `[0, 1]`.
    pub fn trend(&self, index: u32) -> f32 {
        self.trend_feature[index as usize]
    }

    /// The item factors, if the model has them.
    pub fn factors(&self) -> Option<&FactorsSection> {
        self.parts.factors.as_ref()
    }

    /// The ranker shipped in the blob.
    pub fn ranker(&self) -> &RankerParams {
        &self.parts.ranker
    }

    /// Brands, genders and stage fit, if the model has them.
    pub fn family(&self) -> Option<&FamilySection> {
        self.parts.family.as_ref()
    }

    /// The rules shipped in the blob, if any.
    pub fn rules(&self) -> Option<&RuleSet> {
        self.parts.rules.as_ref()
    }

    /// The bought-together neighbours of item `index`, if the model has the
    /// table: `(neighbour index, score)`, strongest first.
    pub fn complements(&self, index: u32) -> impl Iterator<Item = (u32, f32)> + '_ {
        self.parts
            .complements
            .as_ref()
            .into_iter()
            .flat_map(move |nb| nb.row(index))
    }
}

/// A neighbour table as read: plain before version 4, packed from it.
enum WireTable {
    Plain(NeighboursSection),
    Packed(PackedNeighbours),
}

impl WireTable {
    fn decode(data: &[u8], what: &'static str, version: u16) -> Result<Self, DecodeError> {
        Ok(if version >= 4 {
            WireTable::Packed(decode_section(data, what)?)
        } else {
            WireTable::Plain(decode_section(data, what)?)
        })
    }

    fn into_section(self, n: usize, what: &'static str) -> Result<NeighboursSection, DecodeError> {
        match self {
            WireTable::Plain(t) => Ok(t),
            WireTable::Packed(p) => p.unpack(n, what),
        }
    }
}

impl FamilySection {
    /// The `kept` items (ascending) and the categories `cat_index` keeps
    /// (old category -> new, or [`NO_CATEGORY`] for a dropped one).
    pub fn select_items(&self, kept: &[usize], cat_index: &[u32]) -> Self {
        let b = crate::stage::BUCKETS;
        FamilySection {
            brands: self.brands.clone(),
            brand: kept.iter().map(|&i| self.brand[i]).collect(),
            gender: kept.iter().map(|&i| self.gender[i]).collect(),
            edges: self.edges.clone(),
            lifts: if self.lifts.is_empty() {
                Vec::new()
            } else {
                kept.iter()
                    .flat_map(|&i| self.lifts[i * b..(i + 1) * b].iter().copied())
                    .collect()
            },
            price: kept.iter().map(|&i| self.price[i]).collect(),
            restock_days: (0..cat_index.len())
                .filter(|&c| cat_index[c] != NO_CATEGORY)
                .map(|c| self.restock_days[c])
                .collect(),
        }
    }

    /// The brand index of item `i`, if known.
    pub fn brand_of(&self, i: u32) -> Option<u32> {
        let b = self.brand[i as usize];
        (b != NO_CATEGORY).then_some(b)
    }

    /// The restock interval of category `c` (see [`FamilySection::restock_days`]).
    pub fn restock_days_of(&self, c: u32) -> f32 {
        self.restock_days.get(c as usize).copied().unwrap_or(0.0)
    }

    /// Whether a family that last bought in category `c` `since_days` ago
    /// is stocked (-1: a durable, or a consumable bought within 60% of its
    /// interval), due to re-buy (+1: at or past 80% of the interval) or
    /// neither (0, also for a category whose interval is unknown). The
    /// scorer's `restock` feature and push's re-buy exception both read it.
    pub fn restock(&self, c: u32, since_days: f64) -> i8 {
        let days = self.restock_days_of(c);
        if days == DURABLE || (days > 0.0 && since_days < 0.6 * f64::from(days)) {
            -1
        } else if days > 0.0 && since_days >= 0.8 * f64::from(days) {
            1
        } else {
            0
        }
    }

    /// The log2 stage lift of item `i` at age bucket `b` (0 without lifts).
    pub fn log2_lift(&self, i: u32, b: usize) -> f32 {
        if self.lifts.is_empty() {
            0.0
        } else {
            crate::stage::log2_lift(self.lifts[i as usize * crate::stage::BUCKETS + b])
        }
    }

    fn validate(&self, n: usize, categories: usize) -> Result<(), DecodeError> {
        self.brands.validate("family.brands")?;
        check_len("family.brand vs item ids", self.brand.len(), n)?;
        check_len("family.gender vs item ids", self.gender.len(), n)?;
        let nb = self.brands.len() as u32;
        if self.brand.iter().any(|&b| b != NO_CATEGORY && b >= nb) {
            return Err(DecodeError::OutOfRange {
                what: "family.brand",
            });
        }
        if self.gender.iter().any(|&g| g > 2) {
            return Err(DecodeError::OutOfRange {
                what: "family.gender",
            });
        }
        if self.edges.as_slice() != crate::stage::EDGES.as_slice() {
            return Err(DecodeError::OutOfRange {
                what: "family.edges (another age bucketing)",
            });
        }
        check_len("family.price vs item ids", self.price.len(), n)?;
        if self.price.iter().any(|p| !p.is_finite() || *p < 0.0) {
            return Err(DecodeError::NonFinite {
                what: "family.price (finite, >= 0)",
            });
        }
        check_len(
            "family.restock_days vs categories",
            self.restock_days.len(),
            categories,
        )?;
        if self
            .restock_days
            .iter()
            .any(|d| !d.is_finite() || (*d < 0.0 && *d != DURABLE) || *d > 3650.0)
        {
            return Err(DecodeError::OutOfRange {
                what: "family.restock_days",
            });
        }
        if !self.lifts.is_empty() {
            check_len(
                "family.lifts vs items x buckets",
                self.lifts.len(),
                n * crate::stage::BUCKETS,
            )?;
        }
        Ok(())
    }
}
