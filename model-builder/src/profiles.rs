//! Family profiles as the builder writes them (`model-builder profiles`):
//! what a shop's logs say about a family, in the core's profile blob.

use crate::data::Dataset;
use crate::options::DAY;
use std::collections::HashMap;

/// The most brands and categories a built profile keeps.
pub const PROFILE_AFFINITIES: usize = 12;

/// The most brands and categories a nightly record (`users`) keeps, so
/// that a record with its embedding stays within 256 bytes.
pub const NIGHTLY_AFFINITIES: usize = 2;

/// A family's profile as the builder sees it before `cutoff`: birthday or
/// due date and gender from `users.csv`, brand and category affinities
/// from the family's own event-weighted signals (30-day half-life), and
/// the price band (20th to 80th percentile) of what it carted or bought.
/// The strongest `keep` brands and categories are kept.
///
/// `events` are the indices of the user's own events in `ds.events`
/// ([`crate::replay::events_by_user`]).
pub fn profile_of(
    ds: &Dataset,
    user: u32,
    events: &[usize],
    cutoff: i64,
    keep: usize,
) -> nestrank::profile::Profile {
    use nestrank::profile::{affinities_from, AffinitiesSection, Gender, Profile};
    let (birth_day, gender) = ds
        .babies
        .get(&user)
        .copied()
        .unwrap_or((None, Gender::Unknown));
    let mut brands: HashMap<u32, f32> = HashMap::new();
    let mut cats: HashMap<u32, f32> = HashMap::new();
    let mut prices: Vec<f32> = Vec::new();
    for e in events
        .iter()
        .map(|&k| &ds.events[k])
        .filter(|e| e.ts < cutoff)
    {
        let w = [1.0f32, 2.0, 3.0, 4.0][e.event as usize]
            * 0.5f32.powf((cutoff - e.ts) as f32 / (30.0 * DAY as f32));
        let a = &ds.attrs[e.item as usize];
        if a.brand != u32::MAX {
            *brands.entry(a.brand).or_insert(0.0) += w;
        }
        let c = ds.item_category[e.item as usize];
        if c != u32::MAX {
            *cats.entry(c).or_insert(0.0) += w;
        }
        if e.event.is_conversion() && a.price.is_finite() && a.price > 0.0 {
            prices.push(a.price);
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
    let named = |m: HashMap<u32, f32>, names: &crate::data::Interner| -> Vec<(String, f32)> {
        let mut v: Vec<(String, f32)> = m
            .into_iter()
            .map(|(k, w)| (names.name(k).to_string(), w))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(keep);
        v
    };
    let affinities: AffinitiesSection = affinities_from(
        &named(brands, &ds.brands),
        &named(cats, &ds.categories),
        band,
    );
    Profile {
        birth_day,
        gender,
        affinities,
        as_of_day: (cutoff / DAY) as i32,
        embedding: None,
    }
}

/// The user's long-term vector for `model`, from the user's events before
/// `cutoff` (`events` as in [`profile_of`]): the exact fold-in of the whole
/// history with the model's own factors and event weights, which is the
/// user's factor of the model's factorization, and the weight `μ` of the
/// history's confidence terms, `Σᵢ (cᵢ − 1) ‖yᵢ‖² / f`. `None` when the
/// model has no factors or the user no event on an item it knows.
pub fn embedding_of(
    ds: &Dataset,
    model: &nestrank::Model,
    events: &[usize],
    cutoff: i64,
) -> Option<nestrank::profile::EmbeddingSection> {
    let f = model.factors()?;
    let mut w: HashMap<u32, f32> = HashMap::new();
    let mut count = 0u32;
    for e in events
        .iter()
        .map(|&k| &ds.events[k])
        .filter(|e| e.ts < cutoff)
    {
        count = count.saturating_add(1);
        if let Some(i) = model.index_of(ds.items.name(e.item)) {
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

/// A family's nightly record for `model` (`users`, and the replay's
/// `--user-embeddings`): its profile with the strongest
/// [`NIGHTLY_AFFINITIES`] brands and categories, and its embedding.
pub fn nightly_profile(
    ds: &Dataset,
    model: &nestrank::Model,
    user: u32,
    events: &[usize],
    cutoff: i64,
) -> nestrank::profile::Profile {
    let mut p = profile_of(ds, user, events, cutoff, NIGHTLY_AFFINITIES);
    p.embedding = embedding_of(ds, model, events, cutoff);
    p
}

/// What [`write_profiles`] wrote.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProfilesWritten {
    /// Profile blobs written.
    pub written: usize,
    /// Users skipped: an id that is not a safe file name.
    pub skipped: usize,
    /// Bytes written in all.
    pub bytes: usize,
}

/// Writes the profile blob of every family with a known baby, as of `day`,
/// into `out` as `USER.nrp` (atomically, one file each). A user id that
/// is not a safe file name (ASCII letters, digits, `_`, `-`) is skipped
/// with a warning.
pub fn write_profiles(
    ds: &Dataset,
    day: i32,
    out: &std::path::Path,
) -> anyhow::Result<ProfilesWritten> {
    use anyhow::Context;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let by_user = crate::replay::events_by_user(ds);
    let mut users: Vec<u32> = ds.babies.keys().copied().collect();
    users.sort_unstable();
    let mut r = ProfilesWritten::default();
    for u in users {
        let name = ds.users.name(u);
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            eprintln!("warning: skipping user `{name}`: not a safe file name");
            r.skipped += 1;
            continue;
        }
        let own = by_user[u as usize].as_slice();
        let blob = profile_of(ds, u, own, i64::from(day) * DAY, PROFILE_AFFINITIES).to_bytes();
        r.bytes += blob.len();
        crate::publish::write_atomically(&out.join(format!("{name}.nrp")), |w| {
            Ok(w.write_all(&blob)?)
        })?;
        r.written += 1;
    }
    Ok(r)
}
