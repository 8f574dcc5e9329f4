//! The daily-specials replay of EVAL.md (protocol v1) as a report: every
//! ranker on every evaluated day, each day's model trained on earlier days
//! only.
//!
//! Every ranker runs through [`nestrank::Recommender`], the code the wasm
//! module runs, on a model that went through bytes and back.

use crate::build::{build_parts_on, Stages};
use crate::data::Dataset;
use crate::options::{BuildOptions, Similarity};
use crate::replay::{
    evaluated_days, events_by_user, ranks, replay_day, Metrics, ReplayDay, SignalWindow,
};
use crate::train::{RankerLoss, Shipped, TrainOptions, Trainer};
use anyhow::{Context, Result};
use nestrank::calendar::format_date;
use nestrank::rank::{RankerKind, RankerParams};
use nestrank::Recommender;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

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
    /// Which earlier events each case's device held.
    pub signals: SignalWindow,
    /// Whether each case had its family's nightly profile and embedding.
    pub user_embeddings: bool,
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

/// What a replay evaluates: the last `days` days, each case's device
/// holding the signals `signals` keeps, with or without its family's
/// nightly profile and embedding.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Evaluated days (EVAL.md: 2).
    pub days: usize,
    /// What the phone holds.
    pub signals: SignalWindow,
    /// Whether each case has its family's nightly profile.
    pub user_embeddings: bool,
}

/// Runs the replay of `scenario` with `rankers`; the shipped ranker of
/// each day's model is trained (per `train`) on earlier days only, and each
/// evaluated day's model is built with its stages on `stages`.
pub fn replay(
    ds: &Dataset,
    scenario: Scenario,
    build: &BuildOptions,
    train: &TrainOptions,
    rankers: &[(String, Option<RankerParams>)],
    stages: Stages,
) -> Result<EvalReport> {
    let Scenario {
        days,
        signals: window,
        user_embeddings,
    } = scenario;
    let eval_days = evaluated_days(ds, days);
    anyhow::ensure!(
        !eval_days.is_empty(),
        "no day to evaluate: the data needs events on at least two days"
    );
    let by_user = events_by_user(ds);
    let mut trainer = Trainer::new(ds, build, train, stages);
    let mut totals: BTreeMap<String, Metrics> = BTreeMap::new();
    let mut day_reports = Vec::new();
    let bar = crate::progress::bar(eval_days.len() as u64, "replay days");
    for &day in &eval_days {
        let (mut parts, _) = build_parts_on(ds, day, build, stages)?;
        let ranker = trainer.ranker_for(day)?;
        parts.ranker = ranker.params;
        let mut rec = Recommender::from_bytes(&parts.to_bytes())
            .context("the model built for the replay does not load")?;
        let shipped = rec.model().ranker().clone();
        let mut replay = replay_day(ds, &by_user, day, rec.model(), window);
        if user_embeddings {
            add_nightly_profiles(ds, &by_user, &mut replay, rec.model());
        }
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
        signals: window,
        user_embeddings,
        cases: day_reports.iter().map(|d| d.cases).sum(),
        rankers: rankers_mean,
        days: day_reports,
        order: rankers.iter().map(|r| r.0.clone()).collect(),
    })
}

/// Gives every case of `day` its user's profile as the nightly build
/// would ship it on the morning of the day: the affinities, the embedding
/// for `model` and the rebuys ([`crate::profiles`]), from the events before
/// the day only.
fn add_nightly_profiles(
    ds: &Dataset,
    by_user: &[Vec<usize>],
    day: &mut ReplayDay,
    model: &nestrank::Model,
) {
    let cutoff = i64::from(day.day) * crate::options::DAY;
    let mut made: HashMap<u32, nestrank::profile::Profile> = HashMap::new();
    let restocked = crate::family::Restocked::of(model);
    for case in &mut day.cases {
        let profile = made.entry(case.user).or_insert_with(|| {
            let own = &by_user[case.user as usize];
            crate::profiles::nightly_profile(ds, model, &restocked, case.user, own, cutoff)
        });
        case.profile = Some(profile.clone());
    }
}

impl EvalReport {
    /// The report as a plain-text table, with a line per day.
    pub fn table(&self) -> String {
        let mut s = format!(
            "signals: {}{}\n",
            self.signals.name(),
            if self.user_embeddings {
                ", with the nightly user embeddings"
            } else {
                ""
            }
        );
        s += &format!(
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

/// The settings `eval --sweep` replays, one changed at a time from `build`
/// and `train` (first, as given), each with its flag as a name. Figures
/// from them are tuned on the evaluated days: optimistic, not held out.
pub fn sweep_points(
    build: &BuildOptions,
    train: &TrainOptions,
) -> Vec<(String, BuildOptions, TrainOptions)> {
    let mut points = vec![("(as given)".to_string(), build.clone(), *train)];
    let mut vary = |name: String, f: &dyn Fn(&mut BuildOptions, &mut TrainOptions)| {
        let (mut b, mut t) = (build.clone(), *train);
        f(&mut b, &mut t);
        points.push((name, b, t));
    };
    for k in [20, 50, 100] {
        vary(format!("--k {k}"), &|b, _| b.k = k);
    }
    for similarity in [Similarity::Jaccard, Similarity::Cosine, Similarity::Lift] {
        let name = format!("--similarity {similarity:?}").to_lowercase();
        vary(name, &|b, _| b.similarity = similarity);
    }
    for h in [7.0, 30.0, 90.0] {
        vary(format!("--cooc-half-life-days {h}"), &|b, _| {
            b.cooc_half_life_days = h
        });
    }
    for factors in [0, 16, 32, 64] {
        vary(format!("--factors {factors}"), &|b, _| {
            b.als.factors = factors
        });
    }
    for alpha in [1.0, 10.0, 40.0] {
        vary(format!("--alpha {alpha}"), &|b, _| b.als.alpha = alpha);
    }
    for days in [0, 1, 3, 5] {
        vary(format!("--train-days {days}"), &|_, t| t.days = days);
    }
    for loss in [RankerLoss::Pairwise, RankerLoss::Lambdarank] {
        let name = format!("--ranker-loss {loss:?}").to_lowercase();
        vary(name, &|_, t| t.loss = loss);
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_changes_one_setting_per_point() {
        let (b, t) = (BuildOptions::default(), TrainOptions::default());
        let points = sweep_points(&b, &t);
        assert_eq!(points[0].0, "(as given)");
        assert_eq!(points.len(), 1 + 3 + 3 + 3 + 4 + 3 + 4 + 2);
        let find = |name: &str| points.iter().find(|p| p.0 == name).unwrap();
        let k = find("--k 20");
        assert_eq!((k.1.k, k.1.als.factors, k.2), (20, b.als.factors, t));
        let f = find("--factors 0");
        assert_eq!((f.1.als.factors, f.1.k), (0, b.k));
        let d = find("--train-days 5");
        assert_eq!((d.2.days, d.2.loss, d.1.k), (5, t.loss, b.k));
        let l = find("--ranker-loss lambdarank");
        assert_eq!((l.2.loss, l.2.days), (RankerLoss::Lambdarank, t.days));
        assert_eq!(find("--similarity cosine").1.similarity, Similarity::Cosine);
    }
}
