//! The item-to-item evaluation (README "Item-to-item"): a held-out
//! next-item test. For each evaluated day (the last `days` days, as in the
//! replay) a model is built from the events before it; each user's view
//! and cart events on the day, with repeats of the same item collapsed,
//! give one case: the last item is the target and the viewed item just
//! before it the query. A ranker lists 10 items for the query; the case
//! scores HR@10, NDCG@10 and MRR (0 past the 10th). Every list comes from
//! [`nestrank::Recommender::similar`], the code the phone runs.

use crate::build::build_parts;
use crate::data::Dataset;
use crate::options::{BuildOptions, DAY};
use crate::replay::{evaluated_days, Metrics};
use anyhow::Result;
use nestrank::recommender::NeighbourKind;
use nestrank::{Event, Model, Recommender};
use serde::Serialize;
use std::collections::BTreeMap;

/// The report of [`evaluate`].
#[derive(Debug, Clone, Serialize)]
pub struct NextItemReport {
    /// Cases over all days.
    pub cases: u64,
    /// Cases whose query item the model knows (the others are misses for
    /// the neighbour tables).
    pub known_queries: u64,
    /// Metrics per ranker: `similar` (viewed together, topped up from the
    /// query's category: the API's default), `similar_table` (the table
    /// alone), `complement`
    /// (bought together), `category_popular` (the query's category's
    /// trending items), `popular` (trending items).
    pub rankers: BTreeMap<String, Metrics>,
}

/// The rankers in report order.
pub const RANKERS: [&str; 5] = [
    "similar",
    "similar_table",
    "complement",
    "category_popular",
    "popular",
];

/// One case: (query item, target item) as dataset item ids.
fn cases_of_day(ds: &Dataset, day: i32) -> Vec<(u32, u32)> {
    let (start, end) = (i64::from(day) * DAY, i64::from(day + 1) * DAY);
    let lo = ds.events.partition_point(|e| e.ts < start);
    let hi = ds.events.partition_point(|e| e.ts < end);
    // Per user, the collapsed sequence of (item, event) of views and carts.
    let mut seqs: BTreeMap<u32, Vec<(u32, Event)>> = BTreeMap::new();
    for e in &ds.events[lo..hi] {
        if !matches!(e.event, Event::View | Event::Cart) {
            continue;
        }
        let seq = seqs.entry(e.user).or_default();
        match seq.last_mut() {
            Some(last) if last.0 == e.item => {
                if e.event == Event::Cart {
                    last.1 = Event::Cart;
                }
            }
            _ => seq.push((e.item, e.event)),
        }
    }
    seqs.values()
        .filter(|s| s.len() >= 2 && s[s.len() - 2].1 == Event::View)
        .map(|s| (s[s.len() - 2].0, s[s.len() - 1].0))
        .collect()
}

/// The 10 items with the highest trend, best first (ties by index), among
/// those `keep` accepts.
fn top_trending(model: &Model, keep: impl Fn(u32) -> bool) -> Vec<u32> {
    let mut all: Vec<u32> = (0..model.item_count() as u32)
        .filter(|&i| keep(i))
        .collect();
    all.sort_by(|&a, &b| model.trend(b).total_cmp(&model.trend(a)).then(a.cmp(&b)));
    all.truncate(11);
    all
}

/// Runs the next-item test over the last `days` days.
pub fn evaluate(ds: &Dataset, days: usize, opts: &BuildOptions) -> Result<NextItemReport> {
    let eval_days = evaluated_days(ds, days);
    anyhow::ensure!(
        !eval_days.is_empty(),
        "no day to evaluate: the data needs events on at least two days"
    );
    let mut totals: BTreeMap<String, Metrics> = BTreeMap::new();
    let mut known_queries = 0u64;
    let mut cases_total = 0u64;
    for &day in &eval_days {
        let parts = build_parts(ds, day, opts);
        let rec = Recommender::new(Model::from_parts(parts)?);
        let model = rec.model();
        let popular = top_trending(model, |_| true);
        let mut category_top: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (query, target) in cases_of_day(ds, day) {
            cases_total += 1;
            let q = model.index_of(ds.items.name(query));
            let t = model.index_of(ds.items.name(target));
            known_queries += u64::from(q.is_some());
            let mut lists: Vec<(&str, Vec<u32>)> = Vec::new();
            let qid = ds.items.name(query);
            for (name, kind, fill) in [
                ("similar", NeighbourKind::Similar, true),
                ("similar_table", NeighbourKind::Similar, false),
                ("complement", NeighbourKind::Complement, false),
            ] {
                let list = rec.similar(qid, kind, 10, None, fill);
                lists.push((name, list.into_iter().map(|n| n.index).collect()));
            }
            let cat = q.map(|q| model.category_of(q));
            let cat_list = match cat {
                Some(c) if c != nestrank::model::NO_CATEGORY => category_top
                    .entry(c)
                    .or_insert_with(|| top_trending(model, |i| model.category_of(i) == c))
                    .clone(),
                _ => Vec::new(),
            };
            lists.push(("category_popular", cat_list));
            lists.push(("popular", popular.clone()));
            for (name, list) in lists {
                let rank = t.and_then(|t| {
                    list.iter()
                        .filter(|&&i| Some(i) != q)
                        .take(10)
                        .position(|&i| i == t)
                });
                totals
                    .entry(name.to_string())
                    .or_default()
                    .add_rank(rank.map_or(usize::MAX, |r| r + 1));
            }
        }
    }
    Ok(NextItemReport {
        cases: cases_total,
        known_queries,
        rankers: totals.iter().map(|(k, v)| (k.clone(), v.mean())).collect(),
    })
}

impl NextItemReport {
    /// The report as a plain-text table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{} cases, {} with a query the model knows\n{:<17} {:>8} {:>8} {:>8}\n",
            self.cases, self.known_queries, "ranker", "HR@10", "NDCG@10", "MRR"
        );
        for name in RANKERS {
            let m = &self.rankers[name];
            s += &format!(
                "{:<17} {:>8.4} {:>8.4} {:>8.4}\n",
                name, m.hr10, m.ndcg10, m.mrr
            );
        }
        s
    }
}
