//! Family profiles as the builder writes them (`model-builder profiles`):
//! what a shop's logs say about a family, in the core's profile blob.

use crate::data::Dataset;
use crate::family::{self, FamilyEvent, Restocked};
use crate::options::DAY;

/// The most brands and categories a built profile keeps.
pub const PROFILE_AFFINITIES: usize = 12;

/// A family's events before `cutoff` as [`crate::family`] reads them, in
/// the dataset's order (time, then item id, then event). `events` are the
/// indices of the user's own events in `ds.events`
/// ([`crate::replay::events_by_user`]).
pub fn family_events<'a>(
    ds: &'a Dataset,
    events: &'a [usize],
    cutoff: i64,
) -> impl Iterator<Item = FamilyEvent<'a>> + Clone + 'a {
    events
        .iter()
        .map(|&k| &ds.events[k])
        .filter(move |e| e.ts < cutoff)
        .map(|e| {
            let (brand, category, price) = catalog_facts(ds, e.item);
            FamilyEvent {
                item: ds.items.name(e.item),
                brand,
                category,
                price,
                event: e.event,
                ts: e.ts,
            }
        })
}

/// What the catalog says of interned item `i` that a family's record
/// reads: its brand, its category (if known) and its price (NaN if not).
pub fn catalog_facts(ds: &Dataset, i: u32) -> (Option<&str>, Option<&str>, f32) {
    let a = &ds.attrs[i as usize];
    let c = ds.item_category[i as usize];
    (
        (a.brand != u32::MAX).then(|| ds.brands.name(a.brand)),
        (c != u32::MAX).then(|| ds.categories.name(c)),
        a.price,
    )
}

/// The baby `users.csv` gives interned user `u` (birthday or due date, and
/// gender), or unknown.
pub fn baby_of(ds: &Dataset, u: u32) -> (Option<i32>, nestrank::profile::Gender) {
    ds.babies
        .get(&u)
        .copied()
        .unwrap_or((None, nestrank::profile::Gender::Unknown))
}

/// A family's profile as the builder sees it before `cutoff`: birthday or
/// due date and gender from `users.csv`, and the affinities of
/// [`crate::family::affinities`] with the strongest `keep` brands and
/// categories. `events` as in [`family_events`].
pub fn profile_of(
    ds: &Dataset,
    user: u32,
    events: &[usize],
    cutoff: i64,
    keep: usize,
) -> nestrank::profile::Profile {
    let (birth_day, gender) = baby_of(ds, user);
    nestrank::profile::Profile {
        birth_day,
        gender,
        affinities: family::affinities(family_events(ds, events, cutoff), cutoff, keep),
        as_of_day: (cutoff / DAY) as i32,
        embedding: None,
        rebuys: Default::default(),
    }
}

/// A family's nightly record for `model` (`users`, and the replay's
/// `--user-embeddings`): [`crate::family::record`] of its events, with its
/// baby. `restocked` is [`Restocked::of`] the model.
pub fn nightly_profile(
    ds: &Dataset,
    model: &nestrank::Model,
    restocked: &Restocked,
    user: u32,
    events: &[usize],
    cutoff: i64,
) -> nestrank::profile::Profile {
    let own: Vec<FamilyEvent<'_>> = family_events(ds, events, cutoff).collect();
    let mut p = family::record(&own, model, restocked, cutoff);
    (p.birth_day, p.gender) = baby_of(ds, user);
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
        if !family::safe_name(name) {
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
