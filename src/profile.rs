//! A family's profile: the baby's birthday (or, before the birth, the due
//! date) and gender, and the affinities the builder learned from the
//! family's own behaviour (brands, categories, a price band).
//!
//! The stage is never stored: it is computed from `now` at rerank time
//! (pregnancy by trimester, then age in months), so a week-old profile or
//! model still ranks for the baby's age today.
//!
//! A profile travels as a blob of kind [`BlobKind::Profile`] in the same
//! container as a model (FORMAT.md): magic, version, CRC-32, sections
//! `baby` (1), `affinities` (2, optional), `embedding` (3, optional:
//! the family's long-term factor vector, which the builder compiles from
//! the shop's logs for one model and the fold-in holds the user to) and
//! `rebuys` (4, optional: the last day the family bought in each category
//! the model restocks, so that a phone that never saw those purchases
//! still knows what is due). A few hundred bytes.

use crate::calendar::{days_from_civil, format_date, parse_date, DAY_S};
use crate::format::{decode_section, encode_section, BlobKind, Container, DecodeError};
use crate::wire::StringTable;
use wincode::{SchemaRead, SchemaWrite};

/// Section ids of a profile blob.
pub mod section {
    /// [`super::BabySection`].
    pub const BABY: u16 = 1;
    /// [`super::AffinitiesSection`].
    pub const AFFINITIES: u16 = 2;
    /// [`super::EmbeddingSection`].
    pub const EMBEDDING: u16 = 3;
    /// [`super::RebuysSection`].
    pub const REBUYS: u16 = 4;
}

/// The most brands or categories a profile keeps.
pub const MAX_AFFINITIES: usize = 256;
/// A due date at most this many days ahead (41 weeks and a margin).
pub const MAX_DAYS_BEFORE_BIRTH: i32 = 300;
/// A birthday at most this many days ago (about 12 years).
pub const MAX_DAYS_AFTER_BIRTH: i32 = 12 * 366;
/// Days in an average month, for ages in months.
pub const DAYS_PER_MONTH: f64 = 30.436_875;

/// The baby's gender, as the shop records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Gender {
    /// Not known (or not yet known).
    Unknown = 0,
    /// A girl.
    Girl = 1,
    /// A boy.
    Boy = 2,
}

impl Gender {
    /// Reads `girl`/`boy`/`unknown` (also `F`/`M`/`0`/`1`/`2` as Tianchi
    /// writes them: 0 girl, 1 boy, 2 unknown; and the empty string).
    pub fn parse(s: &str) -> Option<Gender> {
        match s.trim() {
            "girl" | "F" | "f" | "0" => Some(Gender::Girl),
            "boy" | "M" | "m" | "1" => Some(Gender::Boy),
            "" | "unknown" | "2" => Some(Gender::Unknown),
            _ => None,
        }
    }

    /// `girl`, `boy` or `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            Gender::Unknown => "unknown",
            Gender::Girl => "girl",
            Gender::Boy => "boy",
        }
    }

    fn from_code(code: u8) -> Option<Gender> {
        [Gender::Unknown, Gender::Girl, Gender::Boy]
            .get(usize::from(code))
            .copied()
    }
}

/// Where a family is, on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Expecting: trimester 1..=3 and whole weeks until the due date.
    Pregnancy {
        /// 1, 2 or 3.
        trimester: u8,
        /// Weeks to the due date (rounded up).
        weeks_to_go: u16,
    },
    /// Born: age in whole months and days.
    Baby {
        /// Completed months.
        months: u16,
        /// Days since birth.
        days: u32,
    },
}

/// Why a profile could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// Not a `YYYY-MM-DD` date.
    #[error("birthday or due date `{value}` is not a date YYYY-MM-DD")]
    BadDate {
        /// The text given.
        value: String,
    },
    /// A date outside the range a baby's birthday or due date can be.
    #[error(
        "birthday or due date {value} is {why} (allowed: up to 300 days ahead, up to 12 years ago)"
    )]
    DateOutOfRange {
        /// The date.
        value: String,
        /// `too far ahead` or `too long ago`.
        why: &'static str,
    },
    /// An unknown gender.
    #[error("gender `{value}` is not girl, boy or unknown")]
    BadGender {
        /// The text given.
        value: String,
    },
    /// `now` is not a finite number of Unix seconds.
    #[error("`now` must be a finite number of Unix seconds")]
    BadNow,
}

/// The `baby` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, SchemaWrite, SchemaRead)]
pub struct BabySection {
    /// Birthday or due date, days since 1970-01-01; `i32::MIN` when unknown.
    pub birth_day: i32,
    /// [`Gender`] code.
    pub gender: u8,
}

/// The `affinities` section: what the family's behaviour says it prefers.
#[derive(Debug, Clone, PartialEq, Default, SchemaWrite, SchemaRead)]
pub struct AffinitiesSection {
    /// Brand names, ascending by bytes.
    #[wincode(with = "crate::format::OutOfLine<StringTable>")]
    pub brands: StringTable,
    /// Weight per brand, in 0..=1 (1: the family's strongest).
    #[wincode(with = "crate::format::OutOfLine<Vec<f32>>")]
    pub brand_weights: Vec<f32>,
    /// Category names, ascending by bytes.
    #[wincode(with = "crate::format::OutOfLine<StringTable>")]
    pub categories: StringTable,
    /// Weight per category, in 0..=1.
    #[wincode(with = "crate::format::OutOfLine<Vec<f32>>")]
    pub category_weights: Vec<f32>,
    /// The price band the family buys in: low and high, `0 <= low <= high`;
    /// both 0 when unknown.
    pub price_low: f32,
    /// See `price_low`.
    pub price_high: f32,
}

/// The `embedding` section: the family's long-term vector in one model's
/// factor space, int8 with one scale. It holds no item id.
#[derive(Debug, Clone, PartialEq, SchemaWrite, SchemaRead)]
pub struct EmbeddingSection {
    /// The model (header id) whose item factors the vector belongs to; any
    /// other model ignores it.
    pub model_id: u64,
    /// `x₀ = code * scale`, `scale >= 0`.
    pub scale: f32,
    /// One code per factor dimension (1 to 256).
    #[wincode(with = "crate::format::OutOfLine<Vec<i8>>")]
    pub codes: Vec<i8>,
    /// `μ >= 0`, the weight of the history behind it
    /// ([`crate::factors::Prior`]).
    pub weight: f32,
    /// How many events (before the blob's day) it was compiled from.
    pub events: u32,
}

impl EmbeddingSection {
    /// Quantizes `x` (finite values) for `model_id` with weight `weight`,
    /// compiled from `events` events.
    pub fn quantize(model_id: u64, x: &[f32], weight: f32, events: u32) -> EmbeddingSection {
        let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 0.0 };
        EmbeddingSection {
            model_id,
            scale,
            codes: x
                .iter()
                .map(|v| {
                    if scale > 0.0 {
                        (v / scale).round() as i8
                    } else {
                        0
                    }
                })
                .collect(),
            weight,
            events,
        }
    }

    /// The share of its history that `held` signals from before the
    /// blob's day do not already cover, in 0..=1: the device weighs the
    /// embedding by it, so a phone that holds the whole history counts it
    /// once, and a new phone gets all of it.
    pub fn missing_share(&self, held: usize) -> f32 {
        if self.events == 0 {
            return 0.0;
        }
        1.0 - (held as f32 / self.events as f32).min(1.0)
    }

    /// The dequantized vector into `out` (cleared first).
    pub fn vector_into(&self, out: &mut Vec<f32>) {
        out.clear();
        out.extend(self.codes.iter().map(|&c| f32::from(c) * self.scale));
    }

    fn validate(&self) -> Result<(), DecodeError> {
        if self.codes.is_empty() || self.codes.len() > crate::factors::MAX_DIM {
            return Err(DecodeError::OutOfRange {
                what: "embedding.codes",
            });
        }
        if !self.scale.is_finite() || !self.weight.is_finite() {
            return Err(DecodeError::NonFinite { what: "embedding" });
        }
        if self.scale < 0.0 || self.weight < 0.0 {
            return Err(DecodeError::OutOfRange { what: "embedding" });
        }
        Ok(())
    }
}

/// The `rebuys` section: per category the model restocks (a consumable's
/// re-purchase interval, or a durable), the last day the family bought in
/// it. It holds no item id.
#[derive(Debug, Clone, PartialEq, Default, SchemaWrite, SchemaRead)]
pub struct RebuysSection {
    /// Category names, strictly ascending by bytes.
    #[wincode(with = "crate::format::OutOfLine<StringTable>")]
    pub categories: StringTable,
    /// Per category, the last purchase day (days since 1970-01-01).
    pub days: Vec<i32>,
}

impl RebuysSection {
    /// The section of `(category, last purchase day)` pairs (any order; a
    /// repeated category keeps its latest day; empty names are dropped).
    pub fn from_days(pairs: &[(&str, i32)]) -> RebuysSection {
        let v: Vec<(&str, i32)> = pairs
            .iter()
            .copied()
            .filter(|(n, _)| !n.is_empty() && n.len() <= crate::wire::MAX_ID_BYTES)
            .collect();
        let order = crate::numeric::stable_order(v.len(), &|a, b| {
            (v[a].0.as_bytes(), std::cmp::Reverse(v[a].1))
                < (v[b].0.as_bytes(), std::cmp::Reverse(v[b].1))
        });
        let mut v = crate::numeric::permuted(&v, &order);
        v.dedup_by(|a, b| a.0 == b.0);
        v.truncate(MAX_AFFINITIES);
        let names: Vec<&str> = v.iter().map(|x| x.0).collect();
        RebuysSection {
            categories: StringTable::from_strings(&names),
            days: v.iter().map(|x| x.1).collect(),
        }
    }

    /// Whether it names no category.
    pub fn is_empty(&self) -> bool {
        self.categories.is_empty()
    }

    /// The last day the family bought in `category`, if the section says.
    pub fn last_day(&self, category: &str) -> Option<i32> {
        self.categories
            .position_sorted(category)
            .map(|k| self.days[k])
    }

    fn validate(&self) -> Result<(), DecodeError> {
        validate_names(&self.categories, self.days.len(), "rebuys.categories")?;
        let (lo, hi) = day_range();
        if self.days.iter().any(|d| !(lo..hi).contains(d)) {
            return Err(DecodeError::OutOfRange {
                what: "rebuys.days",
            });
        }
        Ok(())
    }
}

/// A family's profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Birthday or due date (days since 1970-01-01), if known.
    pub birth_day: Option<i32>,
    /// The baby's gender.
    pub gender: Gender,
    /// Learned affinities (empty when made on the device).
    pub affinities: AffinitiesSection,
    /// The day the profile was built (the blob header's day), or 0.
    pub as_of_day: i32,
    /// The long-term vector from the builder, if the family has one.
    pub embedding: Option<EmbeddingSection>,
    /// The last purchase day per restocked category, from the builder
    /// (empty when made on the device).
    pub rebuys: RebuysSection,
}

impl Profile {
    /// A profile from a birthday or due date (`YYYY-MM-DD`) and a gender
    /// (`girl`, `boy`, `unknown`, or empty), checked against `now` (Unix
    /// seconds): a due date at most 300 days ahead, a birthday at most 12
    /// years ago.
    pub fn from_birthday(birthday: &str, gender: &str, now: f64) -> Result<Profile, ProfileError> {
        let gender = Gender::parse(gender).ok_or_else(|| ProfileError::BadGender {
            value: gender.chars().take(40).collect(),
        })?;
        let day = parse_date(birthday.trim()).ok_or_else(|| ProfileError::BadDate {
            value: birthday.chars().take(40).collect(),
        })?;
        let today = day_of(now)?;
        if day - today > MAX_DAYS_BEFORE_BIRTH {
            return Err(ProfileError::DateOutOfRange {
                value: format_date(day),
                why: "too far ahead",
            });
        }
        if today - day > MAX_DAYS_AFTER_BIRTH {
            return Err(ProfileError::DateOutOfRange {
                value: format_date(day),
                why: "too long ago",
            });
        }
        Ok(Profile {
            birth_day: Some(day),
            gender,
            affinities: AffinitiesSection::default(),
            as_of_day: 0,
            embedding: None,
            rebuys: RebuysSection::default(),
        })
    }

    /// The baby's age in months at `now` (negative before the birth), if
    /// the birthday is known.
    pub fn age_months_at(&self, now: f64) -> Option<f64> {
        let born = self.birth_day?;
        now.is_finite()
            .then(|| (now / DAY_S - f64::from(born)) / DAYS_PER_MONTH)
    }

    /// The stage at `now`, if the birthday is known.
    pub fn stage_at(&self, now: f64) -> Option<Stage> {
        let born = self.birth_day?;
        let today = day_of(now).ok()?;
        let days = today - born;
        Some(if days < 0 {
            let to_go = -days;
            // 280 days of pregnancy: trimesters end at weeks 13 and 27.
            let week_of_pregnancy = (280 - to_go).max(0) / 7;
            Stage::Pregnancy {
                trimester: match week_of_pregnancy {
                    0..=12 => 1,
                    13..=26 => 2,
                    _ => 3,
                },
                weeks_to_go: ((to_go + 6) / 7).min(i32::from(u16::MAX)) as u16,
            }
        } else {
            Stage::Baby {
                months: (f64::from(days) / DAYS_PER_MONTH)
                    .floor()
                    .min(f64::from(u16::MAX)) as u16,
                days: days as u32,
            }
        })
    }

    /// The weight of `brand` in the family's affinities (0 if absent).
    pub fn brand_weight(&self, brand: &str) -> f32 {
        lookup(
            &self.affinities.brands,
            &self.affinities.brand_weights,
            brand,
        )
    }

    /// The weight of `category` in the family's affinities (0 if absent).
    pub fn category_weight(&self, category: &str) -> f32 {
        lookup(
            &self.affinities.categories,
            &self.affinities.category_weights,
            category,
        )
    }

    /// Serializes to a profile blob (deterministic: equal profiles give
    /// equal bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut sections = vec![(
            section::BABY,
            encode_section(&BabySection {
                birth_day: self.birth_day.unwrap_or(i32::MIN),
                gender: self.gender as u8,
            }),
        )];
        let a = &self.affinities;
        if !a.brands.is_empty() || !a.categories.is_empty() || a.price_high > 0.0 {
            sections.push((section::AFFINITIES, encode_section(a)));
        }
        if let Some(e) = &self.embedding {
            sections.push((section::EMBEDDING, encode_section(e)));
        }
        if !self.rebuys.is_empty() {
            sections.push((section::REBUYS, encode_section(&self.rebuys)));
        }
        crate::format::seal(BlobKind::Profile, self.as_of_day, &sections)
    }

    /// Decodes and validates a profile blob. Never panics.
    pub fn from_bytes(bytes: &[u8]) -> Result<Profile, DecodeError> {
        let container = Container::parse(bytes, BlobKind::Profile)?;
        let mut baby: Option<BabySection> = None;
        let mut affinities: Option<AffinitiesSection> = None;
        let mut embedding: Option<EmbeddingSection> = None;
        let mut rebuys: Option<RebuysSection> = None;
        for (id, data) in &container.sections {
            match *id {
                section::BABY => {
                    if baby.replace(decode_section(data, "baby")?).is_some() {
                        return Err(DecodeError::DuplicateSection { what: "baby" });
                    }
                }
                section::AFFINITIES => {
                    if affinities
                        .replace(decode_section(data, "affinities")?)
                        .is_some()
                    {
                        return Err(DecodeError::DuplicateSection { what: "affinities" });
                    }
                }
                section::EMBEDDING => {
                    if embedding
                        .replace(decode_section(data, "embedding")?)
                        .is_some()
                    {
                        return Err(DecodeError::DuplicateSection { what: "embedding" });
                    }
                }
                section::REBUYS => {
                    if rebuys.replace(decode_section(data, "rebuys")?).is_some() {
                        return Err(DecodeError::DuplicateSection { what: "rebuys" });
                    }
                }
                _ => return Err(DecodeError::OutOfRange { what: "section id" }),
            }
        }
        let baby = baby.ok_or(DecodeError::MissingSection { what: "baby" })?;
        let gender = Gender::from_code(baby.gender).ok_or(DecodeError::OutOfRange {
            what: "baby.gender",
        })?;
        let birth_day = (baby.birth_day != i32::MIN).then_some(baby.birth_day);
        if let Some(d) = birth_day {
            let (lo, hi) = day_range();
            if !(lo..hi).contains(&d) {
                return Err(DecodeError::OutOfRange {
                    what: "baby.birth_day",
                });
            }
        }
        let affinities = affinities.unwrap_or_default();
        validate_affinities(&affinities)?;
        if let Some(e) = &embedding {
            e.validate()?;
        }
        let rebuys = rebuys.unwrap_or_default();
        rebuys.validate()?;
        Ok(Profile {
            birth_day,
            gender,
            affinities,
            as_of_day: container.header.as_of_day,
            embedding,
            rebuys,
        })
    }
}

/// The days a profile's dates may fall on, 1900 to 2200: beyond that a
/// date is garbage, not a baby or a purchase.
fn day_range() -> (i32, i32) {
    (
        days_from_civil(1900, 1, 1).expect("a valid date"),
        days_from_civil(2200, 1, 1).expect("a valid date"),
    )
}

fn day_of(now: f64) -> Result<i32, ProfileError> {
    if !now.is_finite() || now.abs() > 1.0e11 {
        return Err(ProfileError::BadNow);
    }
    Ok((now / DAY_S).floor() as i32)
}

fn lookup(names: &StringTable, weights: &[f32], key: &str) -> f32 {
    names.position_sorted(key).map_or(0.0, |k| weights[k])
}

/// Checks a table of names, strictly ascending by bytes, with `values`
/// values beside it.
fn validate_names(
    names: &StringTable,
    values: usize,
    what: &'static str,
) -> Result<(), DecodeError> {
    if names.len() > MAX_AFFINITIES {
        return Err(DecodeError::TooLarge {
            what,
            got: names.len() as u64,
            limit: MAX_AFFINITIES as u64,
        });
    }
    names.validate(what)?;
    if values != names.len() {
        return Err(DecodeError::LengthMismatch {
            what,
            left: names.len() as u64,
            right: values as u64,
        });
    }
    for i in 1..names.len() {
        if names.get(i - 1).as_bytes() >= names.get(i).as_bytes() {
            return Err(DecodeError::UnsortedIds {
                what,
                index: i as u32,
            });
        }
    }
    Ok(())
}

fn validate_table(
    names: &StringTable,
    weights: &[f32],
    what: &'static str,
) -> Result<(), DecodeError> {
    validate_names(names, weights.len(), what)?;
    if weights.iter().any(|w| !w.is_finite()) {
        return Err(DecodeError::NonFinite { what });
    }
    if weights.iter().any(|w| !(0.0..=1.0).contains(w)) {
        return Err(DecodeError::OutOfRange { what });
    }
    Ok(())
}

fn validate_affinities(a: &AffinitiesSection) -> Result<(), DecodeError> {
    validate_table(&a.brands, &a.brand_weights, "affinities.brands")?;
    validate_table(&a.categories, &a.category_weights, "affinities.categories")?;
    if !a.price_low.is_finite() || !a.price_high.is_finite() {
        return Err(DecodeError::NonFinite {
            what: "affinities.price band",
        });
    }
    if a.price_low < 0.0 || a.price_low > a.price_high {
        return Err(DecodeError::OutOfRange {
            what: "affinities.price band",
        });
    }
    Ok(())
}

/// Builds the affinities section from unsorted `(name, weight)` pairs:
/// sorted, the strongest [`MAX_AFFINITIES`] kept, weights scaled so the
/// strongest is 1.
pub fn affinities_from(
    brands: &[(String, f32)],
    categories: &[(String, f32)],
    price_band: (f32, f32),
) -> AffinitiesSection {
    fn table(pairs: &[(String, f32)]) -> (StringTable, Vec<f32>) {
        let v: Vec<(String, f32)> = pairs
            .iter()
            .filter(|(n, w)| {
                !n.is_empty() && n.len() <= crate::wire::MAX_ID_BYTES && *w > 0.0 && w.is_finite()
            })
            .cloned()
            .collect();
        let order = crate::numeric::stable_order(v.len(), &|a, b| {
            v[b].1
                .total_cmp(&v[a].1)
                .then_with(|| v[a].0.cmp(&v[b].0))
                .is_lt()
        });
        let mut v = crate::numeric::permuted(&v, &order);
        v.dedup_by(|a, b| a.0 == b.0);
        v.truncate(MAX_AFFINITIES);
        let top = v.first().map_or(1.0, |x| x.1);
        let order =
            crate::numeric::stable_order(v.len(), &|a, b| v[a].0.as_bytes() < v[b].0.as_bytes());
        let v = crate::numeric::permuted(&v, &order);
        let names: Vec<&str> = v.iter().map(|x| x.0.as_str()).collect();
        (
            StringTable::from_strings(&names),
            v.iter().map(|x| (x.1 / top).clamp(0.0, 1.0)).collect(),
        )
    }
    let (brands, brand_weights) = table(brands);
    let (categories, category_weights) = table(categories);
    let (lo, hi) = price_band;
    let (price_low, price_high) = if lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi {
        (lo, hi)
    } else {
        (0.0, 0.0)
    };
    AffinitiesSection {
        brands,
        brand_weights,
        categories,
        category_weights,
        price_low,
        price_high,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{write_container, Header, VERSION};

    const DAY: f64 = 86_400.0;

    fn noon(date: &str) -> f64 {
        f64::from(parse_date(date).unwrap()) * DAY + 43_200.0
    }

    #[test]
    fn the_stage_advances_with_now_across_a_birthday() {
        let p = Profile::from_birthday("2026-03-15", "girl", noon("2026-11-27")).unwrap();
        assert_eq!(p.gender, Gender::Girl);
        assert_eq!(
            p.stage_at(noon("2026-11-27")),
            Some(Stage::Baby {
                months: 8,
                days: 257
            })
        );
        // The same profile (no new blob) a day before and after the month turns.
        let before = p.stage_at(noon("2026-12-13")).unwrap();
        let after = p.stage_at(noon("2026-12-16")).unwrap();
        assert!(
            matches!(before, Stage::Baby { months: 8, .. }),
            "{before:?}"
        );
        assert!(matches!(after, Stage::Baby { months: 9, .. }), "{after:?}");
        let age = p.age_months_at(noon("2027-03-15")).unwrap();
        assert!((age - 12.0).abs() < 0.1, "{age}");
    }

    #[test]
    fn a_due_date_in_the_future_is_a_pregnancy_by_trimester() {
        let now = noon("2026-11-27");
        let stage = |due: &str| {
            Profile::from_birthday(due, "", now)
                .unwrap()
                .stage_at(now)
                .unwrap()
        };
        assert_eq!(
            stage("2026-12-25"),
            Stage::Pregnancy {
                trimester: 3,
                weeks_to_go: 4
            }
        );
        assert!(matches!(
            stage("2027-03-01"),
            Stage::Pregnancy { trimester: 2, .. }
        ));
        assert!(matches!(
            stage("2027-08-20"),
            Stage::Pregnancy { trimester: 1, .. }
        ));
        // Born on the due date: the stage moves on without a new profile.
        let p = Profile::from_birthday("2026-12-25", "boy", now).unwrap();
        assert!(matches!(
            p.stage_at(noon("2026-12-26")),
            Some(Stage::Baby { months: 0, days: 1 })
        ));
        assert!(p.age_months_at(now).unwrap() < 0.0);
    }

    #[test]
    fn invalid_input_is_a_typed_error() {
        let now = noon("2026-11-27");
        assert_eq!(
            Profile::from_birthday("2026-02-30", "girl", now),
            Err(ProfileError::BadDate {
                value: "2026-02-30".into()
            })
        );
        assert!(matches!(
            Profile::from_birthday("next spring", "", now),
            Err(ProfileError::BadDate { .. })
        ));
        assert_eq!(
            Profile::from_birthday("2028-01-01", "", now),
            Err(ProfileError::DateOutOfRange {
                value: "2028-01-01".into(),
                why: "too far ahead"
            })
        );
        assert!(matches!(
            Profile::from_birthday("1990-01-01", "", now),
            Err(ProfileError::DateOutOfRange {
                why: "too long ago",
                ..
            })
        ));
        assert!(matches!(
            Profile::from_birthday("2026-01-01", "cat", now),
            Err(ProfileError::BadGender { .. })
        ));
        assert_eq!(
            Profile::from_birthday("2026-01-01", "", f64::NAN),
            Err(ProfileError::BadNow)
        );
    }

    fn full() -> Profile {
        let mut p = Profile::from_birthday("2026-05-01", "boy", noon("2026-11-27")).unwrap();
        p.as_of_day = parse_date("2026-11-27").unwrap();
        p.affinities = affinities_from(
            &[
                ("Moonbean".into(), 6.0),
                ("Nestling".into(), 3.0),
                ("".into(), 9.0),
            ],
            &[("diapers".into(), 10.0), ("formula".into(), 2.5)],
            (9.5, 31.0),
        );
        p
    }

    #[test]
    fn round_trip_and_lookups() {
        let p = full();
        let bytes = p.to_bytes();
        assert!(bytes.len() < 400, "{} bytes", bytes.len());
        let back = Profile::from_bytes(&bytes).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.brand_weight("Moonbean"), 1.0);
        assert_eq!(back.brand_weight("Nestling"), 0.5);
        assert_eq!(back.brand_weight("Nobody"), 0.0);
        assert_eq!(back.category_weight("formula"), 0.25);
        assert_eq!(p.to_bytes(), bytes, "deterministic");
        // With a 32-dimensional embedding: 60 bytes more (id, scale, the
        // codes' length and codes, weight, events).
        let mut e = p.clone();
        let x: Vec<f32> = (0..32).map(|k| (k as f32 - 15.5) / 40.0).collect();
        e.embedding = Some(EmbeddingSection::quantize(0xfeed, &x, 2.5, 300));
        let with = e.to_bytes();
        assert_eq!(
            with.len() - bytes.len(),
            60 + 12,
            "the section and its table entry"
        );
        let back = Profile::from_bytes(&with).unwrap();
        assert_eq!(back, e);
        let mut v = Vec::new();
        back.embedding.as_ref().unwrap().vector_into(&mut v);
        let step = 15.5 / 40.0 / 127.0;
        assert!(v
            .iter()
            .zip(&x)
            .all(|(a, b)| (a - b).abs() <= step / 2.0 + 1e-7));
        // A device-made profile (no affinities) is smaller still.
        let bare = Profile::from_birthday("2026-05-01", "", noon("2026-11-27")).unwrap();
        assert_eq!(Profile::from_bytes(&bare.to_bytes()).unwrap(), bare);
    }

    fn with_sections(sections: &[(u16, Vec<u8>)]) -> Vec<u8> {
        write_container(
            &Header {
                version: VERSION,
                kind: BlobKind::Profile as u16,
                model_id: 0,
                as_of_day: 0,
            },
            sections,
        )
    }

    #[test]
    fn decode_errors_like_the_models() {
        let good = full().to_bytes();
        // The container's checks are the model's: each variant once.
        let mut flipped = good.clone();
        flipped[30] ^= 1;
        assert!(matches!(
            Profile::from_bytes(&flipped),
            Err(DecodeError::ChecksumMismatch { .. })
        ));
        assert!(matches!(
            Profile::from_bytes(&good[..20]),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            Profile::from_bytes(b"PNG!...................."),
            Err(DecodeError::BadMagic { .. })
        ));
        let model = crate::testing::tiny_model().to_bytes();
        assert!(matches!(
            Profile::from_bytes(&model),
            Err(DecodeError::WrongKind { .. })
        ));
        assert!(matches!(
            crate::Model::from_bytes(&good),
            Err(DecodeError::WrongKind { .. })
        ));
        // Section contents.
        let baby = |birth_day: i32, gender: u8| encode_section(&BabySection { birth_day, gender });
        assert_eq!(
            Profile::from_bytes(&with_sections(&[])),
            Err(DecodeError::MissingSection { what: "baby" })
        );
        assert_eq!(
            Profile::from_bytes(&with_sections(&[(1, baby(20_000, 3))])),
            Err(DecodeError::OutOfRange {
                what: "baby.gender"
            })
        );
        assert_eq!(
            Profile::from_bytes(&with_sections(&[(1, baby(900_000, 1))])),
            Err(DecodeError::OutOfRange {
                what: "baby.birth_day"
            })
        );
        assert_eq!(
            Profile::from_bytes(&with_sections(&[
                (1, baby(20_000, 1)),
                (1, baby(20_000, 1))
            ])),
            Err(DecodeError::DuplicateSection { what: "baby" })
        );
        assert_eq!(
            Profile::from_bytes(&with_sections(&[(1, baby(20_000, 1)), (9, vec![])])),
            Err(DecodeError::OutOfRange { what: "section id" })
        );
        assert!(matches!(
            Profile::from_bytes(&with_sections(&[(1, vec![1, 2, 3])])),
            Err(DecodeError::Truncated { what: "baby" })
        ));
        let aff = |f: &dyn Fn(&mut AffinitiesSection)| {
            let mut a = full().affinities;
            f(&mut a);
            Profile::from_bytes(&with_sections(&[
                (1, baby(20_000, 1)),
                (2, encode_section(&a)),
            ]))
        };
        assert!(matches!(
            aff(&|a| a.brand_weights[0] = f32::NAN),
            Err(DecodeError::NonFinite { .. })
        ));
        assert!(matches!(
            aff(&|a| a.brand_weights[0] = 2.0),
            Err(DecodeError::OutOfRange { .. })
        ));
        assert!(matches!(
            aff(&|a| {
                a.brand_weights.pop();
            }),
            Err(DecodeError::LengthMismatch { .. })
        ));
        assert!(matches!(
            aff(&|a| a.brands = StringTable::from_strings(&["b", "a"])),
            Err(DecodeError::UnsortedIds { index: 1, .. })
        ));
        assert!(matches!(
            aff(&|a| a.price_low = 50.0),
            Err(DecodeError::OutOfRange { .. })
        ));
        assert!(matches!(
            aff(&|a| a.price_high = f32::INFINITY),
            Err(DecodeError::NonFinite { .. })
        ));
        assert!(aff(&|_| {}).is_ok());
        let emb = |f: &dyn Fn(&mut EmbeddingSection)| {
            let mut e = EmbeddingSection::quantize(7, &[0.5, -0.25, 1.0], 1.0, 10);
            f(&mut e);
            Profile::from_bytes(&with_sections(&[
                (1, baby(20_000, 1)),
                (3, encode_section(&e)),
            ]))
        };
        assert_eq!(
            emb(&|e| e.codes.clear()),
            Err(DecodeError::OutOfRange {
                what: "embedding.codes"
            })
        );
        assert_eq!(
            emb(&|e| e.codes = vec![1; crate::factors::MAX_DIM + 1]),
            Err(DecodeError::OutOfRange {
                what: "embedding.codes"
            })
        );
        assert_eq!(
            emb(&|e| e.scale = f32::NAN),
            Err(DecodeError::NonFinite { what: "embedding" })
        );
        assert_eq!(
            emb(&|e| e.weight = -1.0),
            Err(DecodeError::OutOfRange { what: "embedding" })
        );
        let e = encode_section(&EmbeddingSection::quantize(7, &[0.5], 1.0, 10));
        assert_eq!(
            Profile::from_bytes(&with_sections(&[
                (1, baby(20_000, 1)),
                (3, e.clone()),
                (3, e)
            ])),
            Err(DecodeError::DuplicateSection { what: "embedding" })
        );
        assert!(emb(&|_| {}).unwrap().embedding.is_some());
    }
}
