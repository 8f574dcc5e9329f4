//! Steps 2 to 6 of the daily-specials replay (EVAL.md, protocol v1),
//! implemented exactly: a day's specials in their fixed order, its test
//! cases with each user's earlier signals, and the rank of each target.
//! The evaluation (`eval`) and the ranker's training both replay days
//! through this module.

use crate::data::{Dataset, Ev};
use crate::options::DAY;
use anyhow::Result;
use nestrank::calendar::format_date;
use nestrank::hash::fnv1a64;
use nestrank::profile::Profile;
use nestrank::{Model, Recommender, Signals};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// The most candidates a day's specials may have (EVAL.md step 2).
pub const MAX_CANDIDATES: usize = 500;

/// Summed, then averaged, ranking metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Test cases.
    pub cases: u64,
    /// Mean HR@10.
    pub hr10: f64,
    /// Mean NDCG@10.
    pub ndcg10: f64,
    /// Mean reciprocal rank.
    pub mrr: f64,
}

impl Metrics {
    /// Adds a case whose target ranked `r` (1-based; `usize::MAX`: missed).
    pub fn add_rank(&mut self, r: usize) {
        self.cases += 1;
        if r <= 10 {
            self.hr10 += 1.0;
            self.ndcg10 += 1.0 / ((r + 1) as f64).log2();
        }
        self.mrr += 1.0 / r as f64;
    }

    /// Adds another set of sums.
    pub fn add(&mut self, other: &Metrics) {
        self.cases += other.cases;
        self.hr10 += other.hr10;
        self.ndcg10 += other.ndcg10;
        self.mrr += other.mrr;
    }

    /// The means of the sums.
    pub fn mean(&self) -> Metrics {
        let c = self.cases.max(1) as f64;
        Metrics {
            cases: self.cases,
            hr10: self.hr10 / c,
            ndcg10: self.ndcg10 / c,
            mrr: self.mrr / c,
        }
    }
}

/// The evaluated days: the last `n` days holding an event, skipping any day
/// before which no event exists.
pub fn evaluated_days(ds: &Dataset, n: usize) -> Vec<i32> {
    let mut days: Vec<i32> = ds
        .events
        .iter()
        .map(|e| e.ts.div_euclid(DAY) as i32)
        .collect();
    days.dedup(); // events are sorted by time
    let first = days.first().copied();
    let mut last: Vec<i32> = days
        .iter()
        .rev()
        .take(n)
        .copied()
        .filter(|&d| Some(d) != first)
        .collect();
    last.reverse();
    last
}

/// Which of a user's earlier events a case's device holds (`eval --signals`).
///
/// EVAL.md step 5 gives every case all of the user's earlier events
/// ([`SignalWindow::All`]). A phone keeps less: the package's SignalStore
/// keeps the newest [`DEVICE_SIGNALS`], and a new phone (or cleared
/// storage) holds only what happened since.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SignalWindow {
    /// The newest [`DEVICE_SIGNALS`] events, as the phone keeps them.
    #[default]
    Device,
    /// Every earlier event (EVAL.md protocol v1 as written).
    All,
    /// Only the events of the 24 hours before the case: a new phone.
    #[value(name = "last-24h")]
    #[serde(rename = "last-24h")]
    Last24h,
}

/// The newest events the package's SignalStore keeps (its `maxEvents`
/// default, `pkg-template/store.js`).
pub const DEVICE_SIGNALS: usize = 200;

impl SignalWindow {
    /// The signals this window keeps of `earlier` (a user's events before
    /// a case at `ts`, oldest first, as indices into `events`).
    pub fn keep<'a>(self, earlier: &'a [usize], events: &[Ev], ts: i64) -> &'a [usize] {
        match self {
            SignalWindow::All => earlier,
            SignalWindow::Device => &earlier[earlier.len().saturating_sub(DEVICE_SIGNALS)..],
            SignalWindow::Last24h => {
                &earlier[earlier.partition_point(|&x| events[x].ts <= ts - DAY)..]
            }
        }
    }

    /// `device`, `all` or `last-24h`.
    pub fn name(self) -> &'static str {
        match self {
            SignalWindow::Device => "device",
            SignalWindow::All => "all",
            SignalWindow::Last24h => "last-24h",
        }
    }
}

/// One test case: a user's first conversion of a special on the day.
#[derive(Debug, Clone)]
pub struct Case {
    /// Interned user.
    pub user: u32,
    /// Position of the converted item among the day's candidates.
    pub target: u32,
    /// Time of the conversion: the rerank's `now`.
    pub ts: i64,
    /// The user's signals before `ts`, as model indices (items unknown to
    /// the model get indices past its table, consistently with the candidates).
    pub items: Vec<u32>,
    /// Event codes of the signals.
    pub events: Vec<u8>,
    /// Times of the signals.
    pub times: Vec<f64>,
    /// The family's profile from the nightly build, if the replay gives one.
    pub profile: Option<Profile>,
}

impl Case {
    /// The signals in the typed API's shape, with the case's profile.
    pub fn signals(&self) -> Signals<'_> {
        Signals::new(&self.items, &self.events, &self.times)
            .expect("equal lengths")
            .with_profile(self.profile.as_ref())
    }
}

/// One replay day: its specials in the fixed order, and its test cases.
#[derive(Debug, Clone)]
pub struct ReplayDay {
    /// The day (days since 1970-01-01).
    pub day: i32,
    /// The specials as model indices (or past the table when unknown).
    pub candidates: Vec<u32>,
    /// The test cases.
    pub cases: Vec<Case>,
}

/// Each user's events, as indices into `ds.events` (sorted by time).
pub fn events_by_user(ds: &Dataset) -> Vec<Vec<usize>> {
    let mut by_user: Vec<Vec<usize>> = vec![Vec::new(); ds.users.len()];
    for (k, e) in ds.events.iter().enumerate() {
        by_user[e.user as usize].push(k);
    }
    by_user
}

/// Steps 2 and 3 of EVAL.md: the events of `day`, and its specials (item
/// numbers of `ds`) in the fixed order.
fn day_specials(ds: &Dataset, day: i32) -> (&[Ev], Vec<u32>) {
    let (start, end) = (i64::from(day) * DAY, i64::from(day + 1) * DAY);
    let lo = ds.events.partition_point(|e| e.ts < start);
    let hi = ds.events.partition_point(|e| e.ts < end);
    let today = &ds.events[lo..hi];

    // Step 2: the day's specials.
    let mut conversions: HashMap<u32, u32> = HashMap::new();
    for e in today.iter().filter(|e| e.event.is_conversion()) {
        *conversions.entry(e.item).or_default() += 1;
    }
    let mut specials: Vec<(u32, u32)> = conversions.into_iter().collect();
    specials.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| ds.items.name(a.0).cmp(ds.items.name(b.0)))
    });
    specials.truncate(MAX_CANDIDATES);
    // Step 3: the fixed pseudo-random order.
    let date = format_date(day);
    let mut specials: Vec<u32> = specials.iter().map(|s| s.0).collect();
    specials.sort_by_cached_key(|&i| {
        let name = ds.items.name(i);
        (
            fnv1a64(format!("{date}/{name}").as_bytes()),
            name.to_string(),
        )
    });
    (today, specials)
}

/// Step 4 of EVAL.md: the day's test cases, as each case's event and the
/// target's position among `specials` (a user's first conversion on an
/// item, in time order).
fn case_events<'a>(today: &'a [Ev], specials: &[u32]) -> impl Iterator<Item = (&'a Ev, u32)> + 'a {
    let position: HashMap<u32, u32> = specials
        .iter()
        .enumerate()
        .map(|(p, &i)| (i, p as u32))
        .collect();
    let mut seen: HashSet<(u32, u32)> = HashSet::new();
    today.iter().filter_map(move |e| {
        let &target = position.get(&e.item)?;
        (e.event.is_conversion() && seen.insert((e.user, e.item))).then_some((e, target))
    })
}

/// How many test cases `day` has: what [`replay_day`] would give, without
/// a model.
pub fn case_count(ds: &Dataset, day: i32) -> usize {
    let (today, specials) = day_specials(ds, day);
    case_events(today, &specials).count()
}

/// The user of each of `day`'s test cases, in [`replay_day`]'s order:
/// what a trainer needs to know, before any model, of the cases it fits.
pub fn case_users(ds: &Dataset, day: i32) -> Vec<u32> {
    let (today, specials) = day_specials(ds, day);
    case_events(today, &specials).map(|(e, _)| e.user).collect()
}

/// Steps 2 to 5 of EVAL.md for `day`, against `model` (built as of `day`),
/// each case's signals cut to `window`.
pub fn replay_day(
    ds: &Dataset,
    by_user: &[Vec<usize>],
    day: i32,
    model: &Model,
    window: SignalWindow,
) -> ReplayDay {
    replay_cases(ds, by_user, day, model, window, |_| true)
}

/// [`replay_day`] with only the cases whose index (in [`replay_day`]'s
/// order, from 0 to [`case_count`]) `keep` accepts: a trainer that fits a
/// sample of a large day's cases replays only those.
pub fn replay_cases(
    ds: &Dataset,
    by_user: &[Vec<usize>],
    day: i32,
    model: &Model,
    window: SignalWindow,
    keep: impl Fn(usize) -> bool,
) -> ReplayDay {
    let (today, specials) = day_specials(ds, day);
    // Items the model does not know get ids past its table, so that a
    // same-day signal on a new item still matches it as a candidate.
    let n = model.item_count() as u32;
    let to_index = |item: u32| -> u32 { model.index_of(ds.items.name(item)).unwrap_or(n + item) };

    // Step 5: each case with the user's earlier signals.
    let cases = case_events(today, &specials)
        .enumerate()
        .filter(|&(k, _)| keep(k))
        .map(|(_, (e, target))| {
            let evs = &by_user[e.user as usize];
            let evs = &evs[..evs.partition_point(|&x| ds.events[x].ts < e.ts)];
            let evs = window.keep(evs, &ds.events, e.ts);
            Case {
                user: e.user,
                target,
                ts: e.ts,
                items: evs.iter().map(|&x| to_index(ds.events[x].item)).collect(),
                events: evs.iter().map(|&x| ds.events[x].event as u8).collect(),
                times: evs.iter().map(|&x| ds.events[x].ts as f64).collect(),
                profile: None,
            }
        })
        .collect();
    ReplayDay {
        day,
        candidates: specials.iter().map(|&i| to_index(i)).collect(),
        cases,
    }
}

/// The 1-based rank of each case's target under `rec`'s current ranker.
pub fn ranks(rec: &mut Recommender, day: &ReplayDay) -> Result<Vec<usize>> {
    day.cases
        .iter()
        .map(|case| {
            let ranking =
                rec.rerank_indices(&day.candidates, case.signals(), case.ts as f64, false)?;
            Ok(ranking
                .order
                .iter()
                .position(|&p| p == case.target)
                .expect("the ranking is a permutation")
                + 1)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nestrank::Event;

    #[test]
    fn each_window_keeps_what_its_device_holds() {
        // 300 views, one a minute, ending an hour before the case.
        let ts = 1_000_000i64;
        let events: Vec<Ev> = (0..300)
            .map(|k| Ev {
                user: 0,
                item: k,
                event: Event::View,
                ts: ts - 3600 - 60 * (299 - i64::from(k)),
            })
            .collect();
        let earlier: Vec<usize> = (0..300).collect();
        assert_eq!(SignalWindow::All.keep(&earlier, &events, ts).len(), 300);
        let device = SignalWindow::Device.keep(&earlier, &events, ts);
        assert_eq!(device.len(), DEVICE_SIGNALS);
        assert_eq!(device.first(), Some(&100), "the newest are kept");
        // Half of them fall in the last day when the case is 23 h later.
        let later = ts + 23 * 3600 - 150 * 60;
        let new_phone = SignalWindow::Last24h.keep(&earlier, &events, later);
        assert_eq!(new_phone.len(), 150);
        assert!(new_phone
            .iter()
            .all(|&k| events[k].ts > later - DAY && events[k].ts < later));
    }
}
