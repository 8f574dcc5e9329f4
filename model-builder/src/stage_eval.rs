//! `eval-stage`: checks the stage fit ([`crate::stage`]) on the Tianchi
//! "Mum Baby" sample. For each held-out purchase by a family with a known
//! baby, every leaf category is ranked for the baby's age on that day.

use crate::data::Dataset;
use crate::options::DAY;
use crate::rng::Rng;
use crate::stage::{
    bayes_score, category_counts, decayed_counts, labeled_counts, rank, stage_cases, tune_kappa,
    validation_cutoff, AgeFit, StageLift, PRIOR,
};
use nestrank::stage::{log2_lift, quantize_lift};
use nestrank::Event;

pub use crate::stage::StageScores;

/// A ranker's NDCG@10 over `popular`'s, with a percentile bootstrap
/// interval over the test cases (resampled in pairs: both rankers on the
/// same draw of cases).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LiftInterval {
    /// The ranker.
    pub ranker: &'static str,
    /// Its NDCG@10 over `popular`'s, on the test cases.
    pub ratio: f64,
    /// The interval's lower end.
    pub low: f64,
    /// The interval's upper end.
    pub high: f64,
    /// The interval's confidence.
    pub confidence: f64,
    /// Bootstrap resamples.
    pub resamples: usize,
}

/// The result of `eval-stage`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StageEval {
    /// Test purchases by families with a known baby.
    pub cases: usize,
    /// `popular`, `stage`, `blend`, ...
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
    /// `shipped` and `blend_bayes` over `popular`, with intervals.
    pub lifts: Vec<LiftInterval>,
    /// The same check at earlier dates, all before the test: what a
    /// nightly build on each would have shipped, scored on the days after.
    pub rolling: Vec<RollingFold>,
}

/// One date of the rolling check: a build as of `from` (its κ chosen on
/// its own validation days, as the nightly build chooses it), its stage
/// fit ranked as the phone ranks, on the purchases in `[from, to)`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RollingFold {
    /// The build's date and the first day it is tested on (`YYYY-MM-DD`).
    pub from: String,
    /// The end of its test days, exclusive: the next build's date.
    pub to: String,
    /// Purchases by families with a known baby the build learned from.
    pub learned_from: usize,
    /// Its test purchases by families with a known baby.
    pub cases: usize,
    /// The κ the build chose.
    pub kappa: f64,
    /// `popular`'s NDCG@10 on them.
    pub popular: f64,
    /// `shipped`'s NDCG@10 on them.
    pub shipped: f64,
}

/// The rolling check's build dates, in tenths of the training days: each
/// is tested on the next tenth of them.
pub const ROLLING_TENTHS: [usize; 5] = [5, 6, 7, 8, 9];

/// Bootstrap resamples of the lift intervals.
pub const RESAMPLES: usize = 2_000;

/// The stage-fit evaluation: purchases split by date (the last 20% of
/// days are the test); for each test purchase by a user with a known baby,
/// every leaf category is ranked for the baby's age on that day by
/// `popular` (category purchase counts before the test), `stage` (the
/// learned lift of the category at that age) and `blend` (their product:
/// `P(category) * P(age | category) / P(age)`, i.e. `P(category | age)`),
/// `blend_tuned` (the blend's knobs chosen on a validation split),
/// `blend_bayes` (`P(category | age)` counted directly from what families
/// at that age bought, under the blend as a prior; see
/// [`crate::stage::bayes_score`]) and `shipped` (the same estimate as the
/// model stores it, a lift quantized to a byte, [`StageLift`], times the
/// counts, as the phone combines them), with `families_popular` (the same
/// counts without the age) beside it. Ties keep the category's first-seen
/// order.
/// Fails on a log with fewer than two days of purchases, which cannot be
/// split into days to learn from and days to test.
pub fn eval_stage(ds: &Dataset) -> anyhow::Result<StageEval> {
    let mut days: Vec<i64> = ds
        .events
        .iter()
        .filter(|e| e.event == Event::Purchase)
        .map(|e| e.ts.div_euclid(DAY))
        .collect();
    days.sort_unstable();
    days.dedup();
    if days.len() < 2 {
        anyhow::bail!(
            "eval-stage needs purchases on at least two days (to learn from the earlier and test on the later ones); the events hold purchases on {} day(s)",
            days.len()
        );
    }
    let split = days[(days.len() as f64 * 0.8).floor() as usize];
    let cutoff = split * DAY;
    // The validation split: the last 20% of the training days, as the
    // build chooses κ.
    let val_cutoff = validation_cutoff(ds, cutoff).unwrap_or(cutoff);
    let (gamma, prior, half_life) = tune_blend(ds, val_cutoff, cutoff);

    let n = ds.categories.len();
    let cases = stage_cases(ds, cutoff, i64::MAX);
    let fit = AgeFit::estimate(ds, cutoff);
    let tuned_fit = AgeFit::estimate_with(ds, cutoff, prior);
    let count = category_counts(ds, cutoff);
    let mut rankers: std::collections::BTreeMap<&'static str, StageScores> = Default::default();
    let mut each: std::collections::BTreeMap<&'static str, Vec<f64>> = Default::default();
    let mut run = |name: &'static str, score: &dyn Fn(usize, usize) -> f64| {
        let (m, e) = rank(&cases, n, score);
        rankers.insert(name, m);
        each.insert(name, e);
    };
    run("popular", &|c, _| count[c]);
    let lift = |f: &AgeFit, c: usize, b: usize| f.category[c][b] / f.global[b];
    run("stage", &|c, b| lift(&fit, c, b));
    run("blend", &|c, b| (count[c] + 0.5) * lift(&fit, c, b));
    let tuned_count = decayed_counts(ds, cutoff, half_life);
    run("blend_tuned", &|c, b| {
        (tuned_count[c] + 0.5) * lift(&tuned_fit, c, b).powf(gamma)
    });
    let kappa = tune_kappa(ds, val_cutoff, cutoff).unwrap_or(crate::stage::DEFAULT_KAPPA);
    let labeled = labeled_counts(ds, cutoff);
    run("blend_bayes", &bayes_score(&labeled, &count, &fit, kappa));
    // What the model ships for the same κ, byte for byte: the phone ranks
    // by popularity and this lift.
    let shipped: Vec<[u8; crate::stage::BUCKETS]> = StageLift::with_kappa(ds, &fit, cutoff, kappa)
        .iter()
        .map(|d| d.map(quantize_lift))
        .collect();
    run("shipped", &|c, b| {
        (count[c] + 0.5) * f64::from(log2_lift(shipped[c][b])).exp2()
    });
    // The same estimate without the age: what families with a baby buy,
    // whatever its age (so the age's share of the gain shows).
    let total = count.iter().sum::<f64>().max(1.0);
    let families: Vec<f64> = (0..n)
        .map(|c| labeled[c].iter().sum::<f64>() + kappa * (count[c] + 0.5) / total)
        .collect();
    run("families_popular", &|c, _| families[c]);
    // For comparison: the same decayed counts alone (so a gain from the
    // decay is not credited to the stage fit).
    if half_life.is_finite() {
        run("popular_decayed", &|c, _| tuned_count[c]);
    }
    let lifts = ["shipped", "blend_bayes"]
        .into_iter()
        .map(|r| lift_interval(r, &each[r], &each["popular"], RESAMPLES, 0.95))
        .collect();
    let train_days: Vec<i64> = days.iter().copied().filter(|&d| d < split).collect();
    let at = |tenths: usize| {
        train_days
            .get(train_days.len() * tenths / 10)
            .map_or(cutoff, |d| d * DAY)
    };
    // A log of few days gives dates that coincide: those are left out.
    let rolling = ROLLING_TENTHS
        .iter()
        .filter(|&&k| at(k) < at(k + 1))
        .map(|&k| rolling_fold(ds, at(k), at(k + 1)))
        .collect();
    Ok(StageEval {
        rolling,
        cases: cases.len(),
        rankers,
        test_from: nestrank::calendar::format_date(split as i32),
        train_purchases: fit.purchases,
        categories: n,
        tuned_gamma: gamma,
        tuned_prior: prior,
        tuned_half_life_days: half_life,
        tuned_kappa: kappa,
        lifts,
    })
}

/// A build as of `from`, as the nightly build makes it, scored on the
/// purchases in `[from, to)` against `popular`.
fn rolling_fold(ds: &Dataset, from: i64, to: i64) -> RollingFold {
    let cases = stage_cases(ds, from, to);
    let fit = AgeFit::estimate(ds, from);
    let lift = StageLift::estimate(ds, &fit, from);
    let bytes: Vec<[u8; crate::stage::BUCKETS]> =
        lift.category.iter().map(|d| d.map(quantize_lift)).collect();
    let count = category_counts(ds, from);
    let n = ds.categories.len();
    let (popular, _) = rank(&cases, n, |c, _| count[c]);
    let (shipped, _) = rank(&cases, n, |c, b| {
        (count[c] + 0.5) * f64::from(log2_lift(bytes[c][b])).exp2()
    });
    RollingFold {
        from: nestrank::calendar::format_date(from.div_euclid(DAY) as i32),
        to: nestrank::calendar::format_date(to.div_euclid(DAY) as i32),
        learned_from: fit.purchases,
        cases: cases.len(),
        kappa: lift.kappa,
        popular: popular.ndcg10,
        shipped: shipped.ndcg10,
    }
}

/// `mean(a) / mean(b)` over the cases, with a percentile bootstrap
/// interval: `resamples` draws of the cases with replacement (a fixed
/// seed, so the figures repeat), the same draw for both.
pub fn lift_interval(
    ranker: &'static str,
    a: &[f64],
    b: &[f64],
    resamples: usize,
    confidence: f64,
) -> LiftInterval {
    let ratio = |ka: f64, kb: f64| if kb > 0.0 { ka / kb } else { f64::NAN };
    let n = a.len().min(b.len());
    let mut rng = Rng::new(0x57a9e);
    let mut draws: Vec<f64> = (0..resamples)
        .map(|_| {
            let (mut sa, mut sb) = (0.0, 0.0);
            for _ in 0..n {
                let k = rng.below(n);
                sa += a[k];
                sb += b[k];
            }
            ratio(sa, sb)
        })
        .filter(|r| r.is_finite())
        .collect();
    draws.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if draws.is_empty() {
            f64::NAN
        } else {
            draws[((draws.len() - 1) as f64 * q).round() as usize]
        }
    };
    let tail = (1.0 - confidence) / 2.0;
    LiftInterval {
        ranker,
        ratio: ratio(a[..n].iter().sum(), b[..n].iter().sum()),
        low: at(tail),
        high: at(1.0 - tail),
        confidence,
        resamples,
    }
}

/// The lift exponent and prior of `blend_tuned`, chosen by NDCG@10 on the
/// validation purchases in `[val_cutoff, cutoff)` with everything learned
/// before `val_cutoff`: the test days are never looked at.
pub fn tune_blend(ds: &Dataset, val_cutoff: i64, cutoff: i64) -> (f64, f64, f64) {
    let cases = stage_cases(ds, val_cutoff, cutoff);
    let mut best = (f64::MIN, 1.0, PRIOR, f64::INFINITY);
    let fits: Vec<(f64, AgeFit)> = [1.0, 2.0, 4.0, 8.0, 16.0]
        .into_iter()
        .map(|p| (p, AgeFit::estimate_with(ds, val_cutoff, p)))
        .collect();
    for half_life in [f64::INFINITY, 365.0, 180.0, 90.0, 45.0] {
        let count = decayed_counts(ds, val_cutoff, half_life);
        for (prior, fit) in &fits {
            for gamma in [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0] {
                let (m, _) = rank(&cases, ds.categories.len(), |c, b| {
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
