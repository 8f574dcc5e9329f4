//! The daily-specials replay of EVAL.md (protocol v1), implemented exactly.
//!
//! Every ranker runs through [`nestrank::Recommender`], the code the wasm
//! module runs, on a model that went through bytes and back.

use crate::build::{build_parts, BuildOptions};
use crate::data::Dataset;
use anyhow::{Context, Result};
use nestrank::rank::{RankerKind, RankerParams};
use nestrank::util::{fnv1a64, format_date};
use nestrank::{Recommender, Signals};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

const DAY: i64 = 86_400;

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
    fn add_rank(&mut self, r: usize) {
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

    fn mean(&self) -> Metrics {
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
struct Case {
    user: u32,
    item: u32,
    ts: i64,
}

/// Runs the replay over the last `days` days with `rankers`.
pub fn replay(
    ds: &Dataset,
    days: usize,
    build: &BuildOptions,
    rankers: &[(String, Option<RankerParams>)],
) -> Result<EvalReport> {
    let eval_days = evaluated_days(ds, days);
    anyhow::ensure!(
        !eval_days.is_empty(),
        "no day to evaluate: the data needs events on at least two days"
    );
    let mut by_user: Vec<Vec<usize>> = vec![Vec::new(); ds.users.len()];
    for (k, e) in ds.events.iter().enumerate() {
        by_user[e.user as usize].push(k);
    }
    let mut totals: BTreeMap<String, Metrics> = BTreeMap::new();
    let mut day_reports = Vec::new();
    let bar = crate::progress::bar(eval_days.len() as u64, "replay days");
    for &day in &eval_days {
        let parts = build_parts(ds, day, build);
        let mut rec = Recommender::from_bytes(&parts.to_bytes())
            .context("the model built for the replay does not load")?;
        let shipped = rec.model().ranker().clone();
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
        let mut candidates: Vec<u32> = specials.iter().map(|s| s.0).collect();
        candidates.sort_by_cached_key(|&i| {
            let name = ds.items.name(i);
            (
                fnv1a64(format!("{date}/{name}").as_bytes()),
                name.to_string(),
            )
        });
        let in_specials: HashSet<u32> = candidates.iter().copied().collect();
        // Items the model does not know get ids past its table, so that a
        // same-day signal on a new item still matches it as a candidate.
        let model = rec.model();
        let n = model.item_count() as u32;
        let to_index =
            |item: u32| -> u32 { model.index_of(ds.items.name(item)).unwrap_or(n + item) };
        let cand_idx: Vec<u32> = candidates.iter().map(|&i| to_index(i)).collect();
        let position: HashMap<u32, usize> = candidates
            .iter()
            .enumerate()
            .map(|(p, &i)| (i, p))
            .collect();

        // Step 4: test cases.
        let mut seen: HashSet<(u32, u32)> = HashSet::new();
        let mut cases = Vec::new();
        for e in today {
            if e.event.is_conversion()
                && in_specials.contains(&e.item)
                && seen.insert((e.user, e.item))
            {
                cases.push(Case {
                    user: e.user,
                    item: e.item,
                    ts: e.ts,
                });
            }
        }
        // Step 5: each case's signals, as the typed API takes them.
        let signals: Vec<(Vec<u32>, Vec<u8>, Vec<f64>)> = cases
            .iter()
            .map(|c| {
                let evs = &by_user[c.user as usize];
                let k = evs.partition_point(|&x| ds.events[x].ts < c.ts);
                let evs = &evs[..k];
                (
                    evs.iter().map(|&x| to_index(ds.events[x].item)).collect(),
                    evs.iter().map(|&x| ds.events[x].event as u8).collect(),
                    evs.iter().map(|&x| ds.events[x].ts as f64).collect(),
                )
            })
            .collect();

        let mut day_metrics = BTreeMap::new();
        for (name, params) in rankers {
            rec.set_ranker(params.clone().unwrap_or_else(|| shipped.clone()))
                .with_context(|| format!("ranker {name} has invalid parameters"))?;
            let mut m = Metrics::default();
            for (case, (items, events, ts)) in cases.iter().zip(&signals) {
                let sig = Signals::new(items, events, ts).expect("equal lengths");
                let ranking = rec.rerank_indices(&cand_idx, sig, case.ts as f64, false)?;
                let target = position[&case.item] as u32;
                let r = ranking
                    .order
                    .iter()
                    .position(|&p| p == target)
                    .expect("the ranking is a permutation")
                    + 1;
                m.add_rank(r);
            }
            totals.entry(name.clone()).or_default().add(&m);
            day_metrics.insert(name.clone(), m.mean());
        }
        day_reports.push(DayReport {
            date,
            cases: cases.len() as u64,
            candidates: candidates.len(),
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
                "\n{} ({} cases, {} specials): ",
                d.date, d.cases, d.candidates
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
