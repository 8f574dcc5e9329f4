//! The learned ranker: a linear scorer over the core's features, fitted with
//! a pairwise logistic loss (RankNet-style) on replay days strictly before
//! the model's as-of date, so a model never sees the day it is judged on.
//!
//! For a model as of day `D`, each training day `d < D` is replayed exactly
//! as EVAL.md does it, against a model built as of `d`: the features of every
//! candidate of every case come from `nestrank::score::compute_features`, the
//! code the phone runs. The fit is full-batch Adam on standardized features,
//! with per-chunk gradients summed in a fixed order, so the result does not
//! depend on the number of threads.

use crate::build::{build_parts_on, Stages};
use crate::data::Dataset;
use crate::options::{BuildOptions, DAY};
use crate::replay::{case_count, case_users, events_by_user, replay_cases, SignalWindow};
use anyhow::{Context, Result};
use nestrank::rank::{RankerKind, RankerParams, F_FACTOR, NUM_FEATURES};
use nestrank::score::{compute_features, Scratch};
use nestrank::Recommender;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::rc::Rc;

/// The pairwise loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RankerLoss {
    /// Every (target, other) pair weighs the same.
    Pairwise,
    /// Pairs weighed by the NDCG change of swapping them (LambdaRank).
    Lambdarank,
}

/// What a model ships when it has no training case to learn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fallback {
    /// The user's own items first, most recent first, then the hand-set
    /// blend: never below `recent`, which the blend alone can be.
    RecencyFirst,
    /// The hand-set blend.
    Blend,
}

/// How a model's ranker came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shipped {
    /// Weights fitted on the training days.
    Learned,
    /// The recency-first rule over the fitted weights, which ranked the
    /// training days better than the fit alone.
    Rule,
    /// No training case (or training off): [`TrainOptions::fallback`].
    Fallback,
}

impl Shipped {
    /// The lowercase name, as `eval --json` writes it.
    pub fn name(self) -> &'static str {
        match self {
            Shipped::Learned => "learned",
            Shipped::Rule => "rule",
            Shipped::Fallback => "fallback",
        }
    }
}

/// The ranker a model ships, and what it learned from.
#[derive(Debug, Clone)]
pub struct ShippedRanker {
    /// The parameters.
    pub params: RankerParams,
    /// How they came about.
    pub shipped: Shipped,
    /// The training days used (days since 1970-01-01).
    pub train_days: Vec<i32>,
    /// Cases fitted (after thinning).
    pub train_cases: usize,
}

/// How the shipped ranker is learned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainOptions {
    /// Days with conversions before as-of to train on (0: ship the fallback).
    pub days: usize,
    /// How far back a training day may lie, in calendar days before as-of:
    /// a log with gaps still trains on its latest days with conversions,
    /// but never on behaviour older than this.
    pub lookback_days: u32,
    /// What ships when there is no training case.
    pub fallback: Fallback,
    /// The loss.
    pub loss: RankerLoss,
    /// Full-batch Adam steps.
    pub epochs: usize,
    /// Adam step size.
    pub learning_rate: f32,
    /// L2 penalty on the standardized weights.
    pub l2: f32,
    /// ALS iterations of each training day's model. The features only need
    /// factors of the same kind as the shipped model's, not its last digit:
    /// the Taobao replay's NDCG@10 is .4265 at 3, .4268 at 6 and .4267 at
    /// 15, and ALS is most of a training day's build.
    pub als_iterations: usize,
    /// The most cases fitted; more are thinned evenly (deterministic).
    /// Training days are taken newest first until they hold this many
    /// cases: on a large log one day is enough, and each older day would
    /// cost a whole model build for cases that thinning then drops.
    /// 0: no limit.
    pub max_cases: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            days: 3,
            lookback_days: 28,
            fallback: Fallback::RecencyFirst,
            loss: RankerLoss::Pairwise,
            epochs: 300,
            learning_rate: 0.1,
            l2: 1e-4,
            als_iterations: 3,
            max_cases: 10_000,
        }
    }
}

type Row = [f32; NUM_FEATURES];

/// One case: every candidate's features, and which one was converted.
struct CaseRows {
    rows: Vec<Row>,
    target: usize,
}

/// Where a trainer's time went, in seconds, and how many cases it fitted.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrainStages {
    /// Building the training days' models.
    pub models_s: f64,
    /// Replaying the days and computing every candidate's features.
    pub features_s: f64,
    /// The pairwise fit.
    pub fit_s: f64,
    /// Cases (converting user-days) fitted.
    pub cases: usize,
}

/// Trains rankers, caching each training day's model across calls.
pub struct Trainer<'a> {
    /// Time spent so far, by stage.
    pub times: TrainStages,
    ds: &'a Dataset,
    build: &'a BuildOptions,
    opts: &'a TrainOptions,
    stages: Stages<'a>,
    by_user: Vec<Vec<usize>>,
    conversion_days: Vec<i32>,
    models: BTreeMap<i32, Rc<Recommender>>,
}

impl<'a> Trainer<'a> {
    /// A trainer over `ds`, whose training-day models' data-parallel
    /// stages run on `stages`.
    pub fn new(
        ds: &'a Dataset,
        build: &'a BuildOptions,
        opts: &'a TrainOptions,
        stages: Stages<'a>,
    ) -> Self {
        Trainer {
            ds,
            build,
            opts,
            stages,
            by_user: events_by_user(ds),
            conversion_days: conversion_days(ds),
            models: BTreeMap::new(),
            times: TrainStages::default(),
        }
    }

    /// The training days for a model as of `as_of`: the last `days` days
    /// before it that hold a conversion (so a replay day has test cases)
    /// and could be evaluated, within `lookback_days` calendar days.
    pub fn training_days(&self, as_of: i32) -> Vec<i32> {
        training_days(&self.conversion_days, as_of, self.opts)
    }

    /// The model as of `day` that its cases are replayed against, built
    /// once per trainer.
    fn day_model(&mut self, day: i32) -> Result<Rc<Recommender>> {
        if let Some(rec) = self.models.get(&day) {
            return Ok(rec.clone());
        }
        let t = std::time::Instant::now();
        let mut build = self.build.clone();
        build.als.iterations = build.als.iterations.min(self.opts.als_iterations);
        // The scorer never reads the bought-together table.
        build.complement_k = 0;
        let (parts, _) = build_parts_on(self.ds, day, &build, self.stages)?;
        let rec = Rc::new(
            Recommender::from_bytes(&parts.to_bytes())
                .context("a training-day model does not load")?,
        );
        self.times.models_s += t.elapsed().as_secs_f64();
        self.models.insert(day, rec.clone());
        Ok(rec)
    }

    /// Every candidate's features for the cases of `day` whose indices
    /// (ascending, as [`replay_cases`] numbers them) `keep` holds: only the
    /// cases fitted are replayed and held, not the whole day's.
    fn day_rows(&mut self, day: i32, keep: &[usize]) -> Result<Vec<CaseRows>> {
        let rec = self.day_model(day)?;
        let t = std::time::Instant::now();
        // The ranker learns from what phones hold, whatever `eval` replays.
        let replay = replay_cases(
            self.ds,
            &self.by_user,
            day,
            rec.model(),
            SignalWindow::Device,
            |k| keep.binary_search(&k).is_ok(),
        );
        let mut params = self.build.ranker.clone();
        params.weights[F_FACTOR] = 1.0; // so that the fold-in runs
        let mut scratch = Scratch::new();
        let mut out = Vec::with_capacity(replay.cases.len());
        for case in &replay.cases {
            compute_features(
                rec.model(),
                &params,
                &mut scratch,
                &replay.candidates,
                case.signals(),
                case.ts as f64,
            )?;
            out.push(CaseRows {
                rows: scratch.features().to_vec(),
                target: case.target as usize,
            });
        }
        self.times.features_s += t.elapsed().as_secs_f64();
        Ok(out)
    }

    /// What a model with no training case ships.
    pub fn fallback(&self) -> RankerParams {
        match self.opts.fallback {
            Fallback::RecencyFirst => self.build.ranker.recency_first(),
            Fallback::Blend => self.build.ranker.clone(),
        }
    }

    /// The ranker for a model as of `as_of`: learned on the training days,
    /// or the fallback when training is off or they hold no test case.
    pub fn ranker_for(&mut self, as_of: i32) -> Result<ShippedRanker> {
        let train_days = days_to_learn(&self.conversion_days, as_of, self.opts, |d| {
            case_count(self.ds, d)
        });
        // The cases fitted are chosen before any is replayed: at most
        // `max_cases`, evenly spaced over the days' cases in order.
        let counts: Vec<usize> = train_days.iter().map(|&d| case_count(self.ds, d)).collect();
        let mut cases: Vec<CaseRows> = Vec::new();
        for (&day, keep) in train_days
            .iter()
            .zip(kept_per_day(&counts, self.opts.max_cases))
        {
            if !keep.is_empty() {
                cases.extend(self.day_rows(day, &keep)?);
            }
        }
        let all: Vec<&CaseRows> = cases.iter().collect();
        if all.is_empty() {
            return Ok(ShippedRanker {
                params: self.fallback(),
                shipped: Shipped::Fallback,
                train_days,
                train_cases: 0,
            });
        }
        let t = std::time::Instant::now();
        self.times.cases = all.len();
        let learned = fit(&all, self.opts);
        // Where people buy what they just viewed, "own items by recency
        // first" is the best answer, and a linear fit only approaches it.
        // Offer that composition too and keep whichever ranks the training
        // days better (a tie goes to the simpler rule), so the hybrid never
        // gives up what `recent` knows.
        let mut params = self.build.ranker.clone();
        params.weights = learned.to_vec();
        let rule = params.recency_first();
        let rule_weights: Row = std::array::from_fn(|k| rule.weights[k]);
        let shipped = if ndcg10(&all, &rule_weights) >= ndcg10(&all, &learned) {
            params = rule;
            Shipped::Rule
        } else {
            Shipped::Learned
        };
        self.times.fit_s += t.elapsed().as_secs_f64();
        Ok(ShippedRanker {
            params,
            shipped,
            train_days,
            train_cases: all.len(),
        })
    }
}

/// The days (since 1970-01-01) with at least one conversion, except the
/// log's first day, whose model would be built from nothing.
pub fn conversion_days(ds: &Dataset) -> Vec<i32> {
    let mut days: Vec<i32> = ds
        .events
        .iter()
        .filter(|e| e.event.is_conversion())
        .map(|e| e.ts.div_euclid(DAY) as i32)
        .collect();
    days.dedup(); // events are sorted by time
    without_first_day(days, ds.log_start)
}

/// `days` (in order) without the day of `log_start`.
pub fn without_first_day(mut days: Vec<i32>, log_start: Option<i64>) -> Vec<i32> {
    let first = log_start.map(|t| t.div_euclid(DAY) as i32);
    days.retain(|&d| Some(d) != first);
    days
}

/// The training days for a model as of `as_of`: the last `opts.days` of
/// `conversion_days` before it (so a replay day has test cases), within
/// `opts.lookback_days` calendar days.
pub fn training_days(conversion_days: &[i32], as_of: i32, opts: &TrainOptions) -> Vec<i32> {
    let earliest = as_of - opts.lookback_days as i32;
    let before: Vec<i32> = conversion_days
        .iter()
        .copied()
        .filter(|&d| d < as_of && d >= earliest)
        .collect();
    before[before.len().saturating_sub(opts.days)..].to_vec()
}

/// The days a ranker as of `as_of` learns from: the newest of
/// [`training_days`] that hold `opts.max_cases` cases, counted by `cases`
/// (none when `opts.days` is 0).
pub fn days_to_learn(
    conversion_days: &[i32],
    as_of: i32,
    opts: &TrainOptions,
    cases: impl Fn(i32) -> usize,
) -> Vec<i32> {
    if opts.days == 0 {
        return Vec::new();
    }
    enough_days(
        &training_days(conversion_days, as_of, opts),
        opts.max_cases,
        cases,
    )
}

/// The users, by name (sorted, each once), behind the cases that a ranker
/// learning on `learn` (from [`days_to_learn`]) fits: the same choice as
/// [`Trainer::ranker_for`], made from `ds`, which must hold every
/// conversion of those days (their specials and cases come from them).
/// Only these users' earlier events are replayed.
pub fn fitted_case_users(ds: &Dataset, learn: &[i32], opts: &TrainOptions) -> Vec<String> {
    let users: Vec<Vec<u32>> = learn.iter().map(|&d| case_users(ds, d)).collect();
    let counts: Vec<usize> = users.iter().map(Vec::len).collect();
    let mut names: Vec<String> = users
        .iter()
        .zip(kept_per_day(&counts, opts.max_cases))
        .flat_map(|(day, keep)| {
            keep.into_iter()
                .map(|k| ds.users.name(day[k]).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The newest of `days` (in order) whose cases, counted by `cases`, first
/// reach `max` (all of them if they never do, or if `max` is 0).
fn enough_days(days: &[i32], max: usize, cases: impl Fn(i32) -> usize) -> Vec<i32> {
    let mut held = 0;
    let mut from = days.len();
    while from > 0 && (max == 0 || held < max) {
        from -= 1;
        held += cases(days[from]);
    }
    days[from..].to_vec()
}

/// At most `max` of `cases`, evenly spaced (all of them if they fit, or
/// if `max` is 0).
fn thin<T>(cases: Vec<T>, max: usize) -> Vec<T> {
    let n = cases.len();
    if n <= max || max == 0 {
        return cases;
    }
    let step = n as f64 / max.max(1) as f64;
    let mut next = 0f64;
    cases
        .into_iter()
        .enumerate()
        .filter(|&(i, _)| {
            let take = i as f64 >= next;
            if take {
                next += step;
            }
            take
        })
        .map(|(_, c)| c)
        .collect()
}

/// Which cases of each day [`thin`] keeps of all the days' cases in order
/// (`counts[d]` cases on day `d`), as indices within each day, ascending.
fn kept_per_day(counts: &[usize], max: usize) -> Vec<Vec<usize>> {
    let kept = thin((0..counts.iter().sum()).collect::<Vec<usize>>(), max);
    let mut rest = &kept[..];
    let mut from = 0;
    counts
        .iter()
        .map(|&n| {
            let (day, after) = rest.split_at(rest.partition_point(|&k| k < from + n));
            let local = day.iter().map(|&k| k - from).collect();
            (rest, from) = (after, from + n);
            local
        })
        .collect()
}

/// Mean NDCG@10 of `w` on the cases (stable ranking: ties keep the
/// candidates' replay order, as the scorer does).
fn ndcg10(cases: &[&CaseRows], w: &Row) -> f64 {
    let total: f64 = cases
        .iter()
        .map(|c| {
            let score = |r: &Row| r.iter().zip(w).map(|(a, b)| a * b).sum::<f32>();
            let st = score(&c.rows[c.target]);
            let rank = 1 + c
                .rows
                .iter()
                .enumerate()
                .filter(|&(j, r)| {
                    let sj = score(r);
                    sj > st || (sj == st && j < c.target)
                })
                .count();
            if rank <= 10 {
                1.0 / ((rank + 1) as f64).log2()
            } else {
                0.0
            }
        })
        .sum();
    total / cases.len().max(1) as f64
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The gradient of one case's loss with respect to the standardized weights.
///
/// Standardizing is `z = (r - mean) * inv_std`, so a score is `r . w'` with
/// `w' = w * inv_std` up to a constant that cancels in every pair, and the
/// gradient is `inv_std * sum_j g_j (r_t - r_j)`: the rows are read once,
/// raw, with no copy. `scores` is scratch space.
fn case_gradient(
    case: &CaseRows,
    w: &Row,
    inv_std: &Row,
    loss: RankerLoss,
    scores: &mut Vec<f32>,
) -> Row {
    let wr: Row = std::array::from_fn(|k| w[k] * inv_std[k]);
    let dot = |r: &Row| r.iter().zip(&wr).map(|(a, b)| a * b).sum::<f32>();
    let mut grad = [0f32; NUM_FEATURES];
    let m = case.rows.len();
    if m < 2 {
        return grad;
    }
    scores.clear();
    scores.extend(case.rows.iter().map(dot));
    let t = case.target;
    let st = scores[t];
    // For LambdaRank, the 1-based ranks under the current weights.
    let ranks: Vec<usize> = if loss == RankerLoss::Lambdarank {
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let mut r = vec![0; m];
        for (k, &p) in order.iter().enumerate() {
            r[p] = k + 1;
        }
        r
    } else {
        Vec::new()
    };
    let gain = |r: usize| 1.0 / ((r + 1) as f32).log2();
    let (mut total_weight, mut g_sum) = (0f32, 0f32);
    for (j, row) in case.rows.iter().enumerate() {
        if j == t {
            continue;
        }
        let weight = match loss {
            RankerLoss::Pairwise => 1.0,
            RankerLoss::Lambdarank => (gain(ranks[t]) - gain(ranks[j])).abs(),
        };
        total_weight += weight;
        let g = weight * sigmoid(-(st - scores[j]));
        g_sum += g;
        for k in 0..NUM_FEATURES {
            grad[k] += g * row[k];
        }
    }
    let target = &case.rows[t];
    if total_weight > 0.0 {
        for k in 0..NUM_FEATURES {
            grad[k] = (grad[k] - g_sum * target[k]) * inv_std[k] / total_weight;
        }
    }
    grad
}

/// Fits the weights; returns them for raw (unstandardized) features.
fn fit(cases: &[&CaseRows], opts: &TrainOptions) -> Row {
    let mut mean = [0f64; NUM_FEATURES];
    let mut sq = [0f64; NUM_FEATURES];
    let mut count = 0f64;
    for c in cases {
        for r in &c.rows {
            for k in 0..NUM_FEATURES {
                mean[k] += f64::from(r[k]);
                sq[k] += f64::from(r[k]) * f64::from(r[k]);
            }
            count += 1.0;
        }
    }
    let mean: Row = std::array::from_fn(|k| (mean[k] / count) as f32);
    let inv_std: Row = std::array::from_fn(|k| {
        let var = sq[k] / count - f64::from(mean[k]) * f64::from(mean[k]);
        if var > 1e-12 {
            (1.0 / var.sqrt()) as f32
        } else {
            0.0
        }
    });
    // Start from the hand-set blend, standardized.
    let preset = RankerParams::preset(RankerKind::Hybrid).weights;
    let mut w: Row = std::array::from_fn(|k| {
        if inv_std[k] > 0.0 {
            preset[k] / inv_std[k]
        } else {
            0.0
        }
    });
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let (mut m1, mut m2) = ([0f32; NUM_FEATURES], [0f32; NUM_FEATURES]);
    for step in 1..=opts.epochs {
        let partial: Vec<Row> = cases
            .par_chunks(64)
            .map(|chunk| {
                let mut g = [0f32; NUM_FEATURES];
                let mut scores = Vec::new();
                for c in chunk {
                    let cg = case_gradient(c, &w, &inv_std, opts.loss, &mut scores);
                    for k in 0..NUM_FEATURES {
                        g[k] += cg[k];
                    }
                }
                g
            })
            .collect();
        let mut g = [0f32; NUM_FEATURES];
        for p in &partial {
            for k in 0..NUM_FEATURES {
                g[k] += p[k];
            }
        }
        for k in 0..NUM_FEATURES {
            let gk = g[k] / cases.len() as f32 + opts.l2 * w[k];
            m1[k] = b1 * m1[k] + (1.0 - b1) * gk;
            m2[k] = b2 * m2[k] + (1.0 - b2) * gk * gk;
            let mh = m1[k] / (1.0 - b1.powi(step as i32));
            let vh = m2[k] / (1.0 - b2.powi(step as i32));
            if inv_std[k] > 0.0 {
                w[k] -= opts.learning_rate * mh / (vh.sqrt() + eps);
            }
        }
    }
    // A feature constant over the training cases (no profiles in the logs,
    // say) teaches nothing: it keeps the hand-set weight.
    std::array::from_fn(|k| {
        if inv_std[k] > 0.0 {
            w[k] * inv_std[k]
        } else {
            preset[k]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(own: f32, pop: f32) -> Row {
        let mut r = [0f32; NUM_FEATURES];
        r[nestrank::rank::F_OWN_RECENCY] = own;
        r[nestrank::rank::F_POPULARITY] = pop;
        r
    }

    #[test]
    fn training_days_stop_once_the_newest_hold_enough_cases() {
        let days = [10, 11, 12];
        let cases = |d: i32| match d {
            10 => 5,
            11 => 3,
            _ => 4,
        };
        assert_eq!(enough_days(&days, 4, cases), vec![12]);
        assert_eq!(enough_days(&days, 5, cases), vec![11, 12]);
        assert_eq!(enough_days(&days, 7, cases), vec![11, 12]);
        assert_eq!(enough_days(&days, 8, cases), vec![10, 11, 12]);
        assert_eq!(enough_days(&days, 100, cases), vec![10, 11, 12]);
        assert_eq!(enough_days(&days, 0, cases), vec![10, 11, 12]);
        assert_eq!(enough_days(&[], 4, cases), Vec::<i32>::new());
    }

    #[test]
    fn thin_keeps_evenly_spaced_cases() {
        assert_eq!(thin((0..5).collect(), 10), vec![0, 1, 2, 3, 4]);
        assert_eq!(thin((0..5).collect(), 0), vec![0, 1, 2, 3, 4]);
        assert_eq!(thin((0..10).collect(), 5), vec![0, 2, 4, 6, 8]);
        assert_eq!(thin((0..10).collect(), 3), vec![0, 4, 7]);
        assert_eq!(thin((0..1000).collect::<Vec<_>>(), 300).len(), 300);
    }

    #[test]
    fn each_day_replays_the_cases_thinning_all_days_keeps() {
        for (counts, max) in [
            (vec![5, 3, 4], 4),
            (vec![1, 0, 9], 3),
            (vec![1000, 1, 37], 100),
            (vec![7, 7], 0),
            (vec![7, 7], 100),
            (vec![], 5),
        ] {
            let per_day = kept_per_day(&counts, max);
            assert_eq!(per_day.len(), counts.len());
            let mut joined = Vec::new();
            let mut from = 0;
            for (keep, &n) in per_day.iter().zip(&counts) {
                assert!(keep.windows(2).all(|w| w[0] < w[1]), "{keep:?}");
                assert!(keep.iter().all(|&k| k < n), "{keep:?} of {n}");
                joined.extend(keep.iter().map(|&k| k + from));
                from += n;
            }
            let all: Vec<usize> = (0..counts.iter().sum()).collect();
            assert_eq!(joined, thin(all, max), "{counts:?}, at most {max}");
        }
    }

    #[test]
    fn fit_learns_which_feature_predicts_the_target() {
        // The target is always the one with own recency, never the popular one.
        let cases: Vec<CaseRows> = (0..50)
            .map(|k| CaseRows {
                rows: vec![
                    row(0.0, 0.9),
                    row(0.5 + (k % 5) as f32 / 10.0, 0.1),
                    row(0.0, 0.5),
                ],
                target: 1,
            })
            .collect();
        let refs: Vec<&CaseRows> = cases.iter().collect();
        for loss in [RankerLoss::Pairwise, RankerLoss::Lambdarank] {
            let w = fit(
                &refs,
                &TrainOptions {
                    loss,
                    ..TrainOptions::default()
                },
            );
            assert!(w[nestrank::rank::F_OWN_RECENCY] > 0.0, "{loss:?}: {w:?}");
            let score = |r: &Row| r.iter().zip(&w).map(|(a, b)| a * b).sum::<f32>();
            for c in &cases {
                assert!(score(&c.rows[1]) > score(&c.rows[0]));
                assert!(score(&c.rows[1]) > score(&c.rows[2]));
            }
        }
    }
}
