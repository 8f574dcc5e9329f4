//! The daily-specials replay of EVAL.md (protocol v1), implemented exactly.
//!
//! Every ranker runs through [`nestrank::Recommender`], the code the wasm
//! module runs, on a model that went through bytes and back.

use crate::build::{build_parts, BuildOptions, DAY};
use crate::data::Dataset;
use crate::train::{Shipped, TrainOptions, Trainer};
use anyhow::{Context, Result};
use nestrank::rank::{RankerKind, RankerParams};
use nestrank::util::{fnv1a64, format_date};
use nestrank::{Model, Recommender, Signals};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

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

    fn add(&mut self, other: &Metrics) {
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

/// One evaluated day.
#[derive(Debug, Clone, Serialize)]
pub struct DayReport {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Test cases that day.
    pub cases: u64,
    /// Candidates (specials) that day.
    pub candidates: usize,
    /// How the day's model got its ranker.
    pub shipped: Shipped,
    /// The cases its ranker was fitted on (0 for the fallback).
    pub train_cases: usize,
    /// Mean metrics per ranker.
    pub rankers: BTreeMap<String, Metrics>,
}

/// The whole replay.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// All test cases.
    pub cases: u64,
    /// Micro-averaged metrics per ranker.
    pub rankers: BTreeMap<String, Metrics>,
    /// Per-day figures.
    pub days: Vec<DayReport>,
    /// Rankers in report order.
    #[serde(skip)]
    pub order: Vec<String>,
}

/// The rankers a replay runs: name and parameters (`None`: the blob's own).
pub fn default_rankers() -> Vec<(String, Option<RankerParams>)> {
    RankerKind::ALL
        .iter()
        .map(|&k| {
            let params = (k != RankerKind::Hybrid).then(|| RankerParams::preset(k));
            (k.name().to_string(), params)
        })
        .collect()
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
}

impl Case {
    /// The signals in the typed API's shape.
    pub fn signals(&self) -> Signals<'_> {
        Signals::new(&self.items, &self.events, &self.times).expect("equal lengths")
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

/// Steps 2 to 5 of EVAL.md for `day`, against `model` (built as of `day`).
pub fn replay_day(ds: &Dataset, by_user: &[Vec<usize>], day: i32, model: &Model) -> ReplayDay {
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
    // Items the model does not know get ids past its table, so that a
    // same-day signal on a new item still matches it as a candidate.
    let n = model.item_count() as u32;
    let to_index = |item: u32| -> u32 { model.index_of(ds.items.name(item)).unwrap_or(n + item) };
    let position: HashMap<u32, u32> = specials
        .iter()
        .enumerate()
        .map(|(p, &i)| (i, p as u32))
        .collect();

    // Steps 4 and 5: test cases, each with the user's earlier signals.
    let mut seen: HashSet<(u32, u32)> = HashSet::new();
    let mut cases = Vec::new();
    for e in today {
        let Some(&target) = position.get(&e.item) else {
            continue;
        };
        if e.event.is_conversion() && seen.insert((e.user, e.item)) {
            let evs = &by_user[e.user as usize];
            let evs = &evs[..evs.partition_point(|&x| ds.events[x].ts < e.ts)];
            cases.push(Case {
                user: e.user,
                target,
                ts: e.ts,
                items: evs.iter().map(|&x| to_index(ds.events[x].item)).collect(),
                events: evs.iter().map(|&x| ds.events[x].event as u8).collect(),
                times: evs.iter().map(|&x| ds.events[x].ts as f64).collect(),
            });
        }
    }
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

/// Runs the replay over the last `days` days with `rankers`; the shipped
/// ranker of each day's model is trained (per `train`) on earlier days only.
pub fn replay(
    ds: &Dataset,
    days: usize,
    build: &BuildOptions,
    train: &TrainOptions,
    rankers: &[(String, Option<RankerParams>)],
) -> Result<EvalReport> {
    let eval_days = evaluated_days(ds, days);
    anyhow::ensure!(
        !eval_days.is_empty(),
        "no day to evaluate: the data needs events on at least two days"
    );
    let by_user = events_by_user(ds);
    let mut trainer = Trainer::new(ds, build, train);
    let mut totals: BTreeMap<String, Metrics> = BTreeMap::new();
    let mut day_reports = Vec::new();
    let bar = crate::progress::bar(eval_days.len() as u64, "replay days");
    for &day in &eval_days {
        let mut parts = build_parts(ds, day, build);
        let ranker = trainer.ranker_for(day)?;
        parts.ranker = ranker.params;
        let mut rec = Recommender::from_bytes(&parts.to_bytes())
            .context("the model built for the replay does not load")?;
        let shipped = rec.model().ranker().clone();
        let replay = replay_day(ds, &by_user, day, rec.model());
        let mut day_metrics = BTreeMap::new();
        for (name, params) in rankers {
            rec.set_ranker(params.clone().unwrap_or_else(|| shipped.clone()))
                .with_context(|| format!("ranker {name} has invalid parameters"))?;
            let mut m = Metrics::default();
            for r in ranks(&mut rec, &replay)? {
                m.add_rank(r);
            }
            totals.entry(name.clone()).or_default().add(&m);
            day_metrics.insert(name.clone(), m.mean());
        }
        day_reports.push(DayReport {
            date: format_date(day),
            cases: replay.cases.len() as u64,
            candidates: replay.candidates.len(),
            shipped: ranker.shipped,
            train_cases: ranker.train_cases,
            rankers: day_metrics,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let rankers_mean: BTreeMap<String, Metrics> =
        totals.iter().map(|(k, v)| (k.clone(), v.mean())).collect();
    Ok(EvalReport {
        cases: day_reports.iter().map(|d| d.cases).sum(),
        rankers: rankers_mean,
        days: day_reports,
        order: rankers.iter().map(|r| r.0.clone()).collect(),
    })
}

impl EvalReport {
    /// The report as a plain-text table, with a line per day.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<10} {:>6} {:>8} {:>8} {:>8}\n",
            "ranker", "cases", "HR@10", "NDCG@10", "MRR"
        );
        for name in &self.order {
            let m = &self.rankers[name];
            s += &format!(
                "{:<10} {:>6} {:>8.4} {:>8.4} {:>8.4}\n",
                name, m.cases, m.hr10, m.ndcg10, m.mrr
            );
        }
        for d in &self.days {
            s += &format!(
                "\n{} ({} cases, {} specials; ranker {} on {} training cases): ",
                d.date,
                d.cases,
                d.candidates,
                d.shipped.name(),
                d.train_cases
            );
            let parts: Vec<String> = self
                .order
                .iter()
                .map(|name| format!("{name} {:.4}", d.rankers[name].ndcg10))
                .collect();
            s += &format!("NDCG@10 {}", parts.join(", "));
        }
        s.push('\n');
        s
    }
}
