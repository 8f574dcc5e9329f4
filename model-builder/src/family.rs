//! A family's nightly record, from its own events alone: the long-term
//! affinities (brands, categories, price band), the user embedding of a
//! model, and the salted key the edge finds the record by (issue #20).
//!
//! These are pure functions of one family's events, so that the in-memory
//! `users` ([`crate::profiles`]) and the query engine's per-family function
//! (`nr_family`, [`crate::engine`]) compute the same bytes: both hand the
//! events in the same order, by time, then item id (bytes), then event.

use crate::options::DAY;
use nestrank::Event;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The most brands and categories a nightly record keeps, so that a
/// record with its embedding stays within 256 bytes.
pub const NIGHTLY_AFFINITIES: usize = 2;

/// The most re-buy categories a nightly record keeps (the most recently
/// bought).
pub const MAX_REBUYS: usize = 8;

/// One of a family's events, with what the catalog says of its item.
#[derive(Debug, Clone, Copy)]
pub struct FamilyEvent<'a> {
    /// The item's id.
    pub item: &'a str,
    /// Its brand, if the catalog names one.
    pub brand: Option<&'a str>,
    /// Its category, if the catalog names one.
    pub category: Option<&'a str>,
    /// Its price (NaN when unknown).
    pub price: f32,
    /// What happened.
    pub event: Event,
    /// Unix seconds.
    pub ts: i64,
}

/// The affinities of a family's events before `cutoff`: brands and
/// categories by event-weighted signals (view 1 to purchase 4, halved every
/// 30 days before `cutoff`), the strongest `keep` of each, and the price
/// band (20th to 80th percentile) of what it carted or bought.
pub fn affinities<'a>(
    events: impl IntoIterator<Item = FamilyEvent<'a>>,
    cutoff: i64,
    keep: usize,
) -> nestrank::profile::AffinitiesSection {
    let mut brands: HashMap<&str, f32> = HashMap::new();
    let mut cats: HashMap<&str, f32> = HashMap::new();
    let mut prices: Vec<f32> = Vec::new();
    for e in events.into_iter().filter(|e| e.ts < cutoff) {
        let w = [1.0f32, 2.0, 3.0, 4.0][e.event as usize]
            * 0.5f32.powf((cutoff - e.ts) as f32 / (30.0 * DAY as f32));
        if let Some(b) = e.brand {
            *brands.entry(b).or_insert(0.0) += w;
        }
        if let Some(c) = e.category {
            *cats.entry(c).or_insert(0.0) += w;
        }
        if e.event.is_conversion() && e.price.is_finite() && e.price > 0.0 {
            prices.push(e.price);
        }
    }
    prices.sort_by(f32::total_cmp);
    let band = if prices.is_empty() {
        (0.0, 0.0)
    } else {
        let at = |q: f32| prices[((prices.len() - 1) as f32 * q).round() as usize];
        (at(0.2), at(0.8))
    };
    // The strongest few: a profile stays a few hundred bytes.
    let strongest = |m: HashMap<&str, f32>| -> Vec<(String, f32)> {
        let mut v: Vec<(String, f32)> = m.into_iter().map(|(k, w)| (k.to_string(), w)).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(keep);
        v
    };
    nestrank::profile::affinities_from(&strongest(brands), &strongest(cats), band)
}

/// The family's long-term vector for `model`, from its events before
/// `cutoff`: the exact fold-in of the whole history with the model's own
/// factors and event weights, which is the family's factor of the model's
/// factorization, and the weight `μ` of the history's confidence terms,
/// `Σᵢ (cᵢ − 1) ‖yᵢ‖² / f`. `None` when the model has no factors or the
/// family no event on an item it knows.
pub fn embedding<'a>(
    events: impl IntoIterator<Item = FamilyEvent<'a>>,
    model: &nestrank::Model,
    cutoff: i64,
) -> Option<nestrank::profile::EmbeddingSection> {
    let f = model.factors()?;
    let mut w: HashMap<u32, f32> = HashMap::new();
    let mut count = 0u32;
    for e in events.into_iter().filter(|e| e.ts < cutoff) {
        count = count.saturating_add(1);
        if let Some(i) = model.index_of(e.item) {
            *w.entry(i).or_default() += f.event_weights[e.event as usize];
        }
    }
    let mut items: Vec<(u32, f32)> = w.into_iter().filter(|x| x.1 > 0.0).collect();
    if items.is_empty() {
        return None;
    }
    items.sort_unstable_by_key(|x| x.0);
    let x = f.fold_in_exact(&items, None);
    let dim = f.dim as usize;
    let mut row = vec![0f32; dim];
    let mut confidence = 0f64;
    for &(i, wi) in &items {
        f.row_into(i as usize, &mut row);
        let norm2: f32 = row.iter().map(|v| v * v).sum();
        confidence += f64::from(f.alpha * wi * norm2);
    }
    x.iter().all(|v| v.is_finite()).then(|| {
        nestrank::profile::EmbeddingSection::quantize(
            model.header().model_id,
            &x,
            (confidence / dim as f64) as f32,
            count,
        )
    })
}

/// The re-buy categories of `model` (consumables: its family section gives
/// them a re-purchase interval), by name: those a family's record keeps
/// its last purchase day for.
#[derive(Debug, Clone, Default)]
pub struct Restocked(std::collections::HashSet<String>);

impl Restocked {
    /// The re-buy categories of `model` (none without a family section).
    pub fn of(model: &nestrank::Model) -> Restocked {
        let Some(fam) = model.family() else {
            return Restocked::default();
        };
        Restocked(
            (0..model.category_count() as u32)
                .filter(|&c| fam.restock_days_of(c) > 0.0)
                .map(|c| model.category_name(c).to_string())
                .collect(),
        )
    }
}

/// The last day (days since 1970-01-01) the family bought in each of the
/// `restocked` categories, from its purchases before `cutoff`, for the
/// [`MAX_REBUYS`] most recently bought: what the scorer's restock feature
/// reads on a phone that never saw those purchases.
pub fn rebuys<'a>(
    events: impl IntoIterator<Item = FamilyEvent<'a>>,
    restocked: &Restocked,
    cutoff: i64,
) -> nestrank::profile::RebuysSection {
    let mut last: HashMap<&str, i32> = HashMap::new();
    for e in events
        .into_iter()
        .filter(|e| e.ts < cutoff && e.event == Event::Purchase)
    {
        if let Some(c) = e.category.filter(|c| restocked.0.contains(*c)) {
            let day = e.ts.div_euclid(DAY) as i32;
            let d = last.entry(c).or_insert(day);
            *d = (*d).max(day);
        }
    }
    // The most recent few: a record stays small.
    let mut pairs: Vec<(&str, i32)> = last.into_iter().collect();
    pairs.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    pairs.truncate(MAX_REBUYS);
    nestrank::profile::RebuysSection::from_days(&pairs)
}

/// A family's nightly record for `model` from its `events` (in the
/// dataset's order: time, item id, event) before `cutoff`: the strongest
/// [`NIGHTLY_AFFINITIES`] brands and categories (fewer where their names
/// would take the record past [`MAX_RECORD_BYTES`]) and the price band,
/// the embedding, and the rebuys. The baby is left unknown (it comes from
/// `users.csv`, not from the events).
pub fn record(
    events: &[FamilyEvent<'_>],
    model: &nestrank::Model,
    restocked: &Restocked,
    cutoff: i64,
) -> nestrank::profile::Profile {
    let mut p = nestrank::profile::Profile {
        birth_day: None,
        gender: nestrank::profile::Gender::Unknown,
        affinities: affinities(events.iter().copied(), cutoff, NIGHTLY_AFFINITIES),
        as_of_day: (cutoff / DAY) as i32,
        embedding: embedding(events.iter().copied(), model, cutoff),
        rebuys: Default::default(),
    };
    // Long brand or category names: fewer of them, so that the embedding
    // and the affinities stay within MAX_RECORD_BYTES (the baby section
    // added later has a fixed size).
    let mut keep = NIGHTLY_AFFINITIES;
    while keep > 0 && p.to_bytes().len() > MAX_RECORD_BYTES {
        keep -= 1;
        p.affinities = affinities(events.iter().copied(), cutoff, keep);
    }
    p.rebuys = rebuys(events.iter().copied(), restocked, cutoff);
    p
}

/// The most bytes of a nightly record without its rebuys: the embedding
/// and the affinities (issue #20's target).
pub const MAX_RECORD_BYTES: usize = 256;

/// Whether a user id may name a file: ASCII letters, digits, `_` and `-`.
pub fn safe_name(user: &str) -> bool {
    user.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Bytes from hex digits (an even count, at least one byte): an edge salt
/// as `users --salt` and the engine's `nr_edge_key` take it.
pub fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    if t.is_empty() || !t.len().is_multiple_of(2) {
        return None;
    }
    (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The edge key of `user` under `salt`: the first 8 bytes (little-endian)
/// of HMAC-SHA256(salt, user id).
pub fn edge_key(salt: &[u8], user: &str) -> u64 {
    nestrank::usertable::key_from_mac(&hmac_sha256(salt, user.as_bytes())).expect("32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 2 and 6 (a key longer than a block).
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn long_names_leave_fewer_affinities_within_the_record_bytes() {
        let model = nestrank::Model::from_parts(nestrank::testing::tiny_model()).unwrap();
        let names: Vec<String> = (0..4).map(|k| format!("{k}{}", "x".repeat(60))).collect();
        fn ev<'a>(brand: &'a str, category: &'a str, days: i64) -> FamilyEvent<'a> {
            FamilyEvent {
                item: "a",
                brand: Some(brand),
                category: Some(category),
                price: 10.0,
                event: Event::Purchase,
                ts: 100 * DAY - days * DAY,
            }
        }
        let long = [ev(&names[0], &names[2], 1), ev(&names[1], &names[3], 2)];
        let p = record(&long, &model, &Restocked::default(), 100 * DAY);
        assert!(
            p.to_bytes().len() <= MAX_RECORD_BYTES,
            "{}",
            p.to_bytes().len()
        );
        assert!(p.affinities.brands.len() < 2, "{:?}", p.affinities);
        assert_eq!(p.affinities.brands.len(), p.affinities.categories.len());
        let short = [ev("b1", "c", 1), ev("b2", "d", 2)];
        let p = record(&short, &model, &Restocked::default(), 100 * DAY);
        assert_eq!(p.affinities.brands.len(), NIGHTLY_AFFINITIES);
    }

    #[test]
    fn affinities_weigh_events_by_kind_and_age_and_band_conversions() {
        let ev = |brand, price, event, days: i64| FamilyEvent {
            item: "i",
            brand: Some(brand),
            category: None,
            price,
            event,
            ts: 100 * DAY - days * DAY,
        };
        let a = affinities(
            [
                ev("old", 10.0, Event::Purchase, 60),
                ev("new", 30.0, Event::View, 0),
                ev("new", 20.0, Event::Cart, 1),
                ev("later", 99.0, Event::Purchase, -1),
            ],
            100 * DAY,
            2,
        );
        // new: 1 + 3 * 0.5^(1/30) ≈ 3.93 beats old: 4 * 0.25 = 1; `later`
        // is after the cutoff.
        assert_eq!(a.brands.len(), 2);
        assert_eq!(a.brand_weights.iter().cloned().fold(0.0, f32::max), 1.0);
        assert_eq!((a.price_low, a.price_high), (10.0, 20.0));
    }
}
