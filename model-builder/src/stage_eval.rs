//! `eval-stage`: checks the stage fit ([`crate::stage`]) on the Tianchi
//! "Mum Baby" sample. For each held-out purchase by a family with a known
//! baby, every leaf category is ranked for the baby's age on that day.

use crate::data::Dataset;
use crate::options::DAY;
use crate::stage::{bucket_of, labeled_purchases, spread, AgeFit, Dist, BUCKETS, PRIOR};
use nestrank::profile::DAYS_PER_MONTH;
use nestrank::Event;

/// One ranker's figures in `eval-stage`.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct StageScores {
    /// Hit rate at 10.
    pub hr10: f64,
    /// NDCG at 10.
    pub ndcg10: f64,
    /// Mean reciprocal rank.
    pub mrr: f64,
}

/// The result of `eval-stage`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StageEval {
    /// Test purchases by families with a known baby.
    pub cases: usize,
    /// `popular`, `stage`, `blend`.
    pub rankers: std::collections::BTreeMap<&'static str, StageScores>,
    /// The first test day (`YYYY-MM-DD`).
    pub test_from: String,
    /// Purchases the age fit learned from.
    pub train_purchases: usize,
    /// Leaf categories ranked.
    pub categories: usize,
    /// `blend_tuned`'s lift exponent, chosen on the validation days.
    pub tuned_gamma: f64,
    /// `blend_tuned`'s prior, chosen on the validation days.
    pub tuned_prior: f64,
    /// `blend_tuned`'s popularity half-life in days (infinite: plain counts).
    pub tuned_half_life_days: f64,
    /// `blend_bayes`'s prior strength, chosen on the validation days.
    pub tuned_kappa: f64,
}

/// The stage-fit evaluation: purchases split by date (the last 20% of
/// days are the test); for each test purchase by a user with a known baby,
/// every leaf category is ranked for the baby's age on that day by
/// `popular` (category purchase counts before the test), `stage` (the
/// learned lift of the category at that age) and `blend` (their product:
/// `P(category) * P(age | category) / P(age)`, i.e. `P(category | age)`),
/// `blend_tuned` (the blend's knobs chosen on a validation split) and
/// `blend_bayes` (`P(category | age)` counted directly from what families
/// at that age bought, under the blend as a prior; see [`tune_bayes`]),
/// with `families_popular` (the same counts without the age) beside it.
/// Ties keep the category's first-seen order.
pub fn eval_stage(ds: &Dataset) -> StageEval {
    let mut days: Vec<i64> = ds
        .events
        .iter()
        .filter(|e| e.event == Event::Purchase)
        .map(|e| e.ts.div_euclid(DAY))
        .collect();
    days.sort_unstable();
    days.dedup();
    let split = days[(days.len() as f64 * 0.8).floor() as usize];
    let cutoff = split * DAY;
    // The validation split: the last 20% of the training days.
    let train_days = &days[..days.partition_point(|&d| d < split)];
    let val_cutoff = train_days[(train_days.len() as f64 * 0.8).floor() as usize] * DAY;
    let (gamma, prior, half_life) = tune_blend(ds, val_cutoff, cutoff);

    let fit = AgeFit::estimate(ds, cutoff);
    let tuned_fit = AgeFit::estimate_with(ds, cutoff, prior);
    let count = category_counts(ds, cutoff);
    let mut rankers: std::collections::BTreeMap<&'static str, StageScores> = Default::default();
    let (popular, cases) = rank_cases(ds, cutoff, i64::MAX, |c, _| count[c]);
    rankers.insert("popular", popular);
    let lift = |f: &AgeFit, c: usize, b: usize| f.category[c][b] / f.global[b];
    rankers.insert(
        "stage",
        rank_cases(ds, cutoff, i64::MAX, |c, b| lift(&fit, c, b)).0,
    );
    rankers.insert(
        "blend",
        rank_cases(ds, cutoff, i64::MAX, |c, b| {
            (count[c] + 0.5) * lift(&fit, c, b)
        })
        .0,
    );
    let tuned_count = decayed_counts(ds, cutoff, half_life);
    rankers.insert(
        "blend_tuned",
        rank_cases(ds, cutoff, i64::MAX, |c, b| {
            (tuned_count[c] + 0.5) * lift(&tuned_fit, c, b).powf(gamma)
        })
        .0,
    );
    let kappa = tune_bayes(ds, val_cutoff, cutoff);
    let labeled = labeled_counts(ds, cutoff);
    rankers.insert(
        "blend_bayes",
        rank_cases(
            ds,
            cutoff,
            i64::MAX,
            bayes_score(&labeled, &count, &fit, kappa),
        )
        .0,
    );
    // The same estimate without the age: what families with a baby buy,
    // whatever its age (so the age's share of the gain shows).
    let total = count.iter().sum::<f64>().max(1.0);
    let families: Vec<f64> = (0..count.len())
        .map(|c| labeled[c].iter().sum::<f64>() + kappa * (count[c] + 0.5) / total)
        .collect();
    rankers.insert(
        "families_popular",
        rank_cases(ds, cutoff, i64::MAX, |c, _| families[c]).0,
    );
    // For comparison: the same decayed counts alone (so a gain from the
    // decay is not credited to the stage fit).
    if half_life.is_finite() {
        rankers.insert(
            "popular_decayed",
            rank_cases(ds, cutoff, i64::MAX, |c, _| tuned_count[c]).0,
        );
    }
    StageEval {
        cases,
        rankers,
        test_from: nestrank::calendar::format_date(split as i32),
        train_purchases: fit.purchases,
        categories: ds.categories.len(),
        tuned_gamma: gamma,
        tuned_prior: prior,
        tuned_half_life_days: half_life,
        tuned_kappa: kappa,
    }
}

/// Purchases per leaf category and age bucket before `cutoff` by families
/// with a known baby, each spread to the neighbouring buckets like the fit.
fn labeled_counts(ds: &Dataset, cutoff: i64) -> Vec<Dist> {
    let mut out = vec![[0.0; BUCKETS]; ds.categories.len()];
    for (e, b) in labeled_purchases(ds, cutoff) {
        let c = ds.item_category[e.item as usize];
        if c != u32::MAX {
            out[c as usize][b] += 1.0;
        }
    }
    out.iter().map(spread).collect()
}

/// `blend_bayes`'s score: `P(category | age bucket)` estimated directly
/// from what families at that age bought (`labeled`), under a prior of
/// `kappa` pseudo-purchases whose mean is the blend (`count` x the fit's
/// smoothed `P(age | category)`, i.e. `P(category) P(age | category)`).
/// A category families of that age bought often rises above its overall
/// popularity; one they never bought keeps the blend's estimate.
fn bayes_score<'a>(
    labeled: &'a [Dist],
    count: &'a [f64],
    fit: &'a AgeFit,
    kappa: f64,
) -> impl Fn(usize, usize) -> f64 + 'a {
    let total: f64 = count.iter().sum::<f64>().max(1.0);
    move |c, b| labeled[c][b] + kappa * (count[c] + 0.5) / total * fit.category[c][b]
}

/// The prior strength of `blend_bayes`, chosen by NDCG@10 on the
/// validation purchases in `[val_cutoff, cutoff)` with everything learned
/// before `val_cutoff` (the test days are never looked at).
pub fn tune_bayes(ds: &Dataset, val_cutoff: i64, cutoff: i64) -> f64 {
    let fit = AgeFit::estimate(ds, val_cutoff);
    let count = category_counts(ds, val_cutoff);
    let labeled = labeled_counts(ds, val_cutoff);
    let mut best = (f64::MIN, KAPPAS[0]);
    for kappa in KAPPAS {
        let (m, _) = rank_cases(
            ds,
            val_cutoff,
            cutoff,
            bayes_score(&labeled, &count, &fit, kappa),
        );
        if m.ndcg10 > best.0 + 1e-12 {
            best = (m.ndcg10, kappa);
        }
    }
    best.1
}

/// The prior strengths `tune_bayes` tries (pseudo-purchases).
const KAPPAS: [f64; 7] = [3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0];

/// Purchases per leaf category before `cutoff`.
fn category_counts(ds: &Dataset, cutoff: i64) -> Vec<f64> {
    decayed_counts(ds, cutoff, f64::INFINITY)
}

/// Purchases per leaf category before `cutoff`, each weighted
/// `2^(-age / half_life_days)`.
fn decayed_counts(ds: &Dataset, cutoff: i64, half_life_days: f64) -> Vec<f64> {
    let mut count = vec![0f64; ds.categories.len()];
    for e in ds
        .events
        .iter()
        .filter(|e| e.ts < cutoff && e.event == Event::Purchase)
    {
        let c = ds.item_category[e.item as usize];
        if c != u32::MAX {
            let age_days = (cutoff - e.ts) as f64 / DAY as f64;
            count[c as usize] += (-age_days / half_life_days).exp2();
        }
    }
    count
}

/// Ranks every leaf category for each purchase in `[from, to)` by a family
/// with a known baby, by `score(category, age bucket)`; ties keep the
/// category's first-seen order. Returns the mean figures and the cases.
fn rank_cases(
    ds: &Dataset,
    from: i64,
    to: i64,
    score: impl Fn(usize, usize) -> f64,
) -> (StageScores, usize) {
    let n_cats = ds.categories.len();
    let mut sums = StageScores::default();
    let mut cases = 0usize;
    for e in ds
        .events
        .iter()
        .filter(|e| e.ts >= from && e.ts < to && e.event == Event::Purchase)
    {
        let Some((Some(born), _)) = ds.babies.get(&e.user) else {
            continue;
        };
        let target = ds.item_category[e.item as usize];
        if target == u32::MAX {
            continue;
        }
        let months = (e.ts as f64 / DAY as f64 - f64::from(*born)) / DAYS_PER_MONTH;
        let b = bucket_of(months);
        cases += 1;
        let t = score(target as usize, b);
        let rank = (0..n_cats)
            .filter(|&c| {
                let s = score(c, b);
                s > t || (s == t && c < target as usize)
            })
            .count();
        if rank < 10 {
            sums.hr10 += 1.0;
            sums.ndcg10 += 1.0 / (rank as f64 + 2.0).log2();
        }
        sums.mrr += 1.0 / (rank as f64 + 1.0);
    }
    let n = cases.max(1) as f64;
    sums.hr10 /= n;
    sums.ndcg10 /= n;
    sums.mrr /= n;
    (sums, cases)
}

/// The lift exponent and prior of `blend_tuned`, chosen by NDCG@10 on the
/// validation purchases in `[val_cutoff, cutoff)` with everything learned
/// before `val_cutoff`: the test days are never looked at.
pub fn tune_blend(ds: &Dataset, val_cutoff: i64, cutoff: i64) -> (f64, f64, f64) {
    let mut best = (f64::MIN, 1.0, PRIOR, f64::INFINITY);
    let fits: Vec<(f64, AgeFit)> = [1.0, 2.0, 4.0, 8.0, 16.0]
        .into_iter()
        .map(|p| (p, AgeFit::estimate_with(ds, val_cutoff, p)))
        .collect();
    for half_life in [f64::INFINITY, 365.0, 180.0, 90.0, 45.0] {
        let count = decayed_counts(ds, val_cutoff, half_life);
        for (prior, fit) in &fits {
            for gamma in [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0] {
                let (m, _) = rank_cases(ds, val_cutoff, cutoff, |c, b| {
                    (count[c] + 0.5) * (fit.category[c][b] / fit.global[b]).powf(gamma)
                });
                if m.ndcg10 > best.0 + 1e-12 {
                    best = (m.ndcg10, gamma, *prior, half_life);
                }
            }
        }
    }
    (best.1, best.2, best.3)
}
