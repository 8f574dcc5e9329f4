//! Stage fit, learned from who buys what: for each item, the distribution
//! of the baby's age at purchase, estimated from the purchases of families
//! whose baby's birthday is known and smoothed up the category tree (item ->
//! leaf category -> top category -> all purchases) so a sparse item borrows
//! strength from its category. An `age_min_months`/`age_max_months` range
//! from `items.csv` takes precedence. The scorer's feature is the lift
//! `P(age bucket | item) / P(age bucket)`, stored as a quantized log2.
//!
//! [`crate::stage_eval`] checks it on the Tianchi "Mum Baby" sample.

use crate::data::Dataset;
use crate::options::DAY;
use nestrank::profile::DAYS_PER_MONTH;
use nestrank::Event;
use std::collections::HashMap;

pub use nestrank::stage::{bucket_of, BUCKETS, EDGES};

/// Pseudo-counts a level borrows from its parent.
pub const PRIOR: f64 = 4.0;

/// A distribution over age buckets.
pub type Dist = [f64; BUCKETS];

/// Spreads each count a little to the neighbouring buckets: ages near a
/// bucket edge say something about the next bucket too.
pub(crate) fn spread(c: &Dist) -> Dist {
    let mut out = [0.0; BUCKETS];
    for b in 0..BUCKETS {
        let left = if b > 0 { c[b - 1] } else { 0.0 };
        let right = if b + 1 < BUCKETS { c[b + 1] } else { 0.0 };
        out[b] = 0.7 * c[b] + 0.15 * (left + right);
    }
    out
}

/// `(counts + prior * parent) / (n + prior)`.
fn shrink(counts: &Dist, parent: &Dist, prior: f64) -> Dist {
    let c = spread(counts);
    let n: f64 = c.iter().sum();
    std::array::from_fn(|b| (c[b] + prior * parent[b]) / (n + prior))
}

/// A box distribution for an explicit age range (months), with a month of
/// shopping ahead before it, mixed with a little of the global one.
fn from_range(lo: i16, hi: i16, global: &Dist) -> Dist {
    let (lo, hi) = (f64::from(lo) - 1.0, f64::from(hi));
    let mut d = [0.0; BUCKETS];
    for (b, slot) in d.iter_mut().enumerate() {
        let (a, z) = (f64::from(EDGES[b]), f64::from(EDGES[b + 1]).min(60.0));
        let overlap = (z.min(hi) - a.max(lo)).max(0.0);
        *slot = overlap / (z - a).max(1e-9);
    }
    let total: f64 = d.iter().sum();
    if total <= 0.0 {
        return *global;
    }
    std::array::from_fn(|b| 0.9 * d[b] / total + 0.1 * global[b])
}

/// The learned age distributions.
#[derive(Debug, Clone)]
pub struct AgeFit {
    /// All purchases by families with a known baby.
    pub global: Dist,
    /// Per interned category (leaf), smoothed.
    pub category: Vec<Dist>,
    /// Per interned item, smoothed (or from its range).
    pub item: Vec<Dist>,
    /// Purchases the estimate learned from.
    pub purchases: usize,
}

impl AgeFit {
    /// Learns from purchases before `cutoff` (Unix seconds) by users whose
    /// baby's birthday `ds.babies` knows.
    pub fn estimate(ds: &Dataset, cutoff: i64) -> AgeFit {
        Self::estimate_with(ds, cutoff, PRIOR)
    }

    /// [`AgeFit::estimate`] with `prior` pseudo-counts borrowed from each
    /// level's parent.
    pub fn estimate_with(ds: &Dataset, cutoff: i64, prior: f64) -> AgeFit {
        let n_items = ds.items.len();
        let n_cats = ds.categories.len();
        let mut global = [0.0; BUCKETS];
        let mut by_item: HashMap<u32, Dist> = HashMap::new();
        let mut by_cat = vec![[0.0; BUCKETS]; n_cats];
        let mut by_top: HashMap<u32, Dist> = HashMap::new();
        let mut purchases = 0;
        for (e, b) in labeled_purchases(ds, cutoff) {
            purchases += 1;
            global[b] += 1.0;
            by_item.entry(e.item).or_insert([0.0; BUCKETS])[b] += 1.0;
            let c = ds.item_category[e.item as usize];
            if c != u32::MAX {
                by_cat[c as usize][b] += 1.0;
            }
            let t = ds.attrs[e.item as usize].top;
            if t != u32::MAX {
                by_top.entry(t).or_insert([0.0; BUCKETS])[b] += 1.0;
            }
        }
        let total: f64 = global.iter().sum();
        let global: Dist = std::array::from_fn(|b| (global[b] + 1.0) / (total + BUCKETS as f64));
        let top: HashMap<u32, Dist> = by_top
            .iter()
            .map(|(&t, c)| (t, shrink(c, &global, prior)))
            .collect();
        // A category's parent: the top category most of its items name.
        let mut cat_top: Vec<HashMap<u32, u32>> = vec![HashMap::new(); n_cats];
        for i in 0..n_items {
            let (c, t) = (ds.item_category[i], ds.attrs[i].top);
            if c != u32::MAX && t != u32::MAX {
                *cat_top[c as usize].entry(t).or_insert(0) += 1;
            }
        }
        let parent_of_cat = |c: usize| -> Dist {
            cat_top[c]
                .iter()
                .max_by_key(|(t, n)| (**n, std::cmp::Reverse(**t)))
                .and_then(|(t, _)| top.get(t))
                .copied()
                .unwrap_or(global)
        };
        let category: Vec<Dist> = (0..n_cats)
            .map(|c| shrink(&by_cat[c], &parent_of_cat(c), prior))
            .collect();
        let item = (0..n_items)
            .map(|i| {
                let a = &ds.attrs[i];
                if let Some((lo, hi)) = a.age {
                    return from_range(lo, hi, &global);
                }
                let c = ds.item_category[i];
                let parent = if c != u32::MAX {
                    category[c as usize]
                } else if a.top != u32::MAX {
                    top.get(&a.top).copied().unwrap_or(global)
                } else {
                    global
                };
                match by_item.get(&(i as u32)) {
                    Some(counts) => shrink(counts, &parent, prior),
                    None => parent,
                }
            })
            .collect();
        AgeFit {
            global,
            category,
            item,
            purchases,
        }
    }
}

/// Purchases before `cutoff` by families whose baby's birthday is known,
/// each with the baby's age bucket on the day.
pub(crate) fn labeled_purchases(
    ds: &Dataset,
    cutoff: i64,
) -> impl Iterator<Item = (&crate::data::Ev, usize)> + '_ {
    labeled_purchases_in(ds, i64::MIN, cutoff)
}

/// [`labeled_purchases`] in `[from, to)`.
fn labeled_purchases_in(
    ds: &Dataset,
    from: i64,
    to: i64,
) -> impl Iterator<Item = (&crate::data::Ev, usize)> + '_ {
    ds.events
        .iter()
        .filter(move |e| e.ts >= from && e.ts < to && e.event == Event::Purchase)
        .filter_map(|e| {
            let (Some(born), _) = ds.babies.get(&e.user)? else {
                return None;
            };
            let months = (e.ts as f64 / DAY as f64 - f64::from(*born)) / DAYS_PER_MONTH;
            Some((e, bucket_of(months)))
        })
}

/// One ranker's figures in `eval-stage` (and in choosing κ).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct StageScores {
    /// Hit rate at 10.
    pub hr10: f64,
    /// NDCG at 10.
    pub ndcg10: f64,
    /// Mean reciprocal rank.
    pub mrr: f64,
}

/// Purchases per leaf category and age bucket before `cutoff` by families
/// with a known baby, each spread to the neighbouring buckets like the fit.
pub(crate) fn labeled_counts(ds: &Dataset, cutoff: i64) -> Vec<Dist> {
    let mut out = vec![[0.0; BUCKETS]; ds.categories.len()];
    for (e, b) in labeled_purchases(ds, cutoff) {
        let c = ds.item_category[e.item as usize];
        if c != u32::MAX {
            out[c as usize][b] += 1.0;
        }
    }
    out.iter().map(spread).collect()
}

/// Purchases per leaf category before `cutoff`.
pub(crate) fn category_counts(ds: &Dataset, cutoff: i64) -> Vec<f64> {
    decayed_counts(ds, cutoff, f64::INFINITY)
}

/// Purchases per leaf category before `cutoff`, each weighted
/// `2^(-age / half_life_days)`.
pub(crate) fn decayed_counts(ds: &Dataset, cutoff: i64, half_life_days: f64) -> Vec<f64> {
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

/// The Bayes estimate's score of a leaf category at an age bucket:
/// `P(category | age bucket)` (unnormalized) counted directly from what
/// families at that age bought (`labeled`), under a prior of `kappa`
/// pseudo-purchases whose mean is the blend (`count` x the fit's smoothed
/// `P(age | category)`, i.e. `P(category) P(age | category)`). A category
/// families of that age bought often rises above its overall popularity;
/// one they never bought keeps the blend's estimate.
pub(crate) fn bayes_score<'a>(
    labeled: &'a [Dist],
    count: &'a [f64],
    fit: &'a AgeFit,
    kappa: f64,
) -> impl Fn(usize, usize) -> f64 + 'a {
    let total: f64 = count.iter().sum::<f64>().max(1.0);
    move |c, b| labeled[c][b] + kappa * (count[c] + 0.5) / total * fit.category[c][b]
}

/// The prior strengths κ that [`tune_kappa`] tries (pseudo-purchases).
pub const KAPPAS: [f64; 7] = [3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0];

/// κ where there are no validation purchases to choose it on: the value
/// the Tianchi sample's validation days chose.
pub const DEFAULT_KAPPA: f64 = 300.0;

/// At most this many validation purchases choose κ (evenly spaced in the
/// log): each is ranked against every leaf category once per κ.
pub const MAX_TUNING_CASES: usize = 4_000;

/// The Bayes estimate's prior strength, chosen by NDCG@10 on the
/// validation purchases in `[val_cutoff, cutoff)` with everything learned
/// before `val_cutoff` (later days are never looked at); `None` without a
/// validation purchase.
pub fn tune_kappa(ds: &Dataset, val_cutoff: i64, cutoff: i64) -> Option<f64> {
    let cases = thin(stage_cases(ds, val_cutoff, cutoff), MAX_TUNING_CASES);
    if cases.is_empty() {
        return None;
    }
    let fit = AgeFit::estimate(ds, val_cutoff);
    let count = category_counts(ds, val_cutoff);
    let labeled = labeled_counts(ds, val_cutoff);
    let mut best = (f64::MIN, KAPPAS[0]);
    for kappa in KAPPAS {
        let (m, _) = rank(
            &cases,
            ds.categories.len(),
            bayes_score(&labeled, &count, &fit, kappa),
        );
        if m.ndcg10 > best.0 + 1e-12 {
            best = (m.ndcg10, kappa);
        }
    }
    Some(best.1)
}

/// The validation split for purchases before `cutoff`: the start of the
/// last 20% of the days with a purchase, or `None` with fewer than two.
pub fn validation_cutoff(ds: &Dataset, cutoff: i64) -> Option<i64> {
    let mut days: Vec<i64> = ds
        .events
        .iter()
        .filter(|e| e.event == Event::Purchase && e.ts < cutoff)
        .map(|e| e.ts.div_euclid(DAY))
        .collect();
    days.sort_unstable();
    days.dedup();
    (days.len() >= 2).then(|| days[(days.len() as f64 * 0.8).floor() as usize] * DAY)
}

/// The stage fit the model ships: per leaf category and age bucket the
/// lift `P(category | age) / P(category)` of the Bayes estimate
/// ([`bayes_score`]), κ chosen on the last 20% of the purchase days before
/// `cutoff` (learning from the days before them). Ranking categories by
/// `(purchases + 0.5) x lift` is ranking them by the estimate itself.
#[derive(Debug, Clone)]
pub struct StageLift {
    /// Per interned leaf category.
    pub category: Vec<Dist>,
    /// The prior strength used.
    pub kappa: f64,
    /// Whether κ was chosen on validation purchases (else [`DEFAULT_KAPPA`]).
    pub tuned: bool,
}

impl StageLift {
    /// Learns from purchases before `cutoff`, with the fit `fit` (learned
    /// before the same cutoff) as the prior.
    pub fn estimate(ds: &Dataset, fit: &AgeFit, cutoff: i64) -> StageLift {
        let tuned = validation_cutoff(ds, cutoff).and_then(|v| tune_kappa(ds, v, cutoff));
        let kappa = tuned.unwrap_or(DEFAULT_KAPPA);
        StageLift {
            category: Self::with_kappa(ds, fit, cutoff, kappa),
            kappa,
            tuned: tuned.is_some(),
        }
    }

    /// The lifts for a given κ.
    pub fn with_kappa(ds: &Dataset, fit: &AgeFit, cutoff: i64, kappa: f64) -> Vec<Dist> {
        let count = category_counts(ds, cutoff);
        let labeled = labeled_counts(ds, cutoff);
        let score = bayes_score(&labeled, &count, fit, kappa);
        let n = count.len();
        let popularity: f64 = count.iter().map(|c| c + 0.5).sum();
        let mut lift = vec![[1.0; BUCKETS]; n];
        for b in 0..BUCKETS {
            let at_age: f64 = (0..n).map(|c| score(c, b)).sum();
            if at_age <= 0.0 {
                continue;
            }
            for (c, l) in lift.iter_mut().enumerate() {
                l[b] = (score(c, b) / at_age) / ((count[c] + 0.5) / popularity);
            }
        }
        lift
    }
}

/// Every purchase in `[from, to)` by a family with a known baby, of an
/// item with a leaf category, in the log's order: `(category, age bucket)`.
pub(crate) fn stage_cases(ds: &Dataset, from: i64, to: i64) -> Vec<(usize, usize)> {
    labeled_purchases_in(ds, from, to)
        .filter_map(|(e, b)| {
            let target = ds.item_category[e.item as usize];
            (target != u32::MAX).then_some((target as usize, b))
        })
        .collect()
}

/// At most `max` of `cases`, evenly spaced.
fn thin<T: Copy>(cases: Vec<T>, max: usize) -> Vec<T> {
    if cases.len() <= max {
        return cases;
    }
    (0..max).map(|k| cases[k * cases.len() / max]).collect()
}

/// Ranks every one of `categories` leaf categories for each case by
/// `score(category, age bucket)`; ties keep the category's first-seen
/// order. Returns the mean figures and each case's NDCG@10.
pub(crate) fn rank(
    cases: &[(usize, usize)],
    categories: usize,
    score: impl Fn(usize, usize) -> f64,
) -> (StageScores, Vec<f64>) {
    let mut sums = StageScores::default();
    let mut each = Vec::with_capacity(cases.len());
    for &(target, b) in cases {
        let t = score(target, b);
        let rank = (0..categories)
            .filter(|&c| {
                let s = score(c, b);
                s > t || (s == t && c < target)
            })
            .count();
        let gain = if rank < 10 {
            1.0 / (rank as f64 + 2.0).log2()
        } else {
            0.0
        };
        if rank < 10 {
            sums.hr10 += 1.0;
        }
        sums.ndcg10 += gain;
        each.push(gain);
        sums.mrr += 1.0 / (rank as f64 + 1.0);
    }
    let n = cases.len().max(1) as f64;
    sums.hr10 /= n;
    sums.ndcg10 /= n;
    sums.mrr /= n;
    (sums, each)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unseen_item_gets_its_categorys_fit_and_a_range_wins() {
        let dir = std::env::temp_dir().join(format!("nestrank-stage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Newborn families buy n1/n2 (category newborn); toddler families t1.
        // n3 (newborn, never bought) must get newborn's fit; r1 has a range.
        std::fs::write(
            dir.join("items.csv"),
            "item_id,category,top_category,age_min_months,age_max_months\n\
             n1,newborn,baby,,\nn2,newborn,baby,,\nn3,newborn,baby,,\nt1,toddler,baby,,\nr1,toddler,baby,0,2\n",
        )
        .unwrap();
        let mut events = String::from("user_id,item_id,event,ts\n");
        let mut users = String::from("user_id,baby_birthday,baby_gender\n");
        let day0 = 20_000i64; // 2024-10-04
        for u in 0..20 {
            let toddler = u % 2 == 1;
            let born = if toddler { day0 - 600 } else { day0 - 15 };
            users.push_str(&format!(
                "u{u},{},F\n",
                nestrank::calendar::format_date(born as i32)
            ));
            let item = if toddler {
                "t1"
            } else if u % 4 == 0 {
                "n1"
            } else {
                "n2"
            };
            events.push_str(&format!("u{u},{item},purchase,{}\n", day0 * DAY));
        }
        std::fs::write(dir.join("events.csv"), events).unwrap();
        std::fs::write(dir.join("users.csv"), users).unwrap();
        let ds = Dataset::load(&dir, crate::rows::BadRowPolicy { max_bad_rows: 0 }).unwrap();
        let fit = AgeFit::estimate(&ds, i64::MAX);
        let idx = |id: &str| ds.items.get(id).unwrap() as usize;
        let newborn = bucket_of(0.5);
        let toddler = bucket_of(19.7);
        let lift = |i: usize, b: usize| fit.item[i][b] / fit.global[b];
        assert_eq!(fit.purchases, 20);
        assert!(
            lift(idx("n3"), newborn) > 1.5,
            "unseen n3 borrows newborn's fit"
        );
        assert_eq!(
            fit.item[idx("n3")],
            fit.category[ds.categories.get("newborn").unwrap() as usize]
        );
        assert!(lift(idx("n3"), toddler) < 0.7);
        assert!(lift(idx("t1"), toddler) > 1.5);
        // r1 sits in the toddler category but its range says 0-2 months.
        assert!(lift(idx("r1"), newborn) > 1.5 && lift(idx("r1"), toddler) < 0.5);

        // The Bayes lift the model ships: newborn families' category rises
        // at the newborn age and falls at the toddler's, and ranking by
        // popularity times the lift is ranking by the estimate itself.
        let cat = |name: &str| ds.categories.get(name).unwrap() as usize;
        for kappa in KAPPAS {
            let lift = StageLift::with_kappa(&ds, &fit, i64::MAX, kappa);
            assert!(lift[cat("newborn")][newborn] > 1.0, "κ {kappa}");
            assert!(lift[cat("newborn")][toddler] < 1.0, "κ {kappa}");
            assert!(lift[cat("toddler")][toddler] > 1.0, "κ {kappa}");
            let count = category_counts(&ds, i64::MAX);
            let labeled = labeled_counts(&ds, i64::MAX);
            let score = bayes_score(&labeled, &count, &fit, kappa);
            for (c1, l1) in lift.iter().enumerate() {
                for (c2, l2) in lift.iter().enumerate() {
                    for (b, (x1, x2)) in l1.iter().zip(l2).enumerate() {
                        let (s1, s2) = ((count[c1] + 0.5) * x1, (count[c2] + 0.5) * x2);
                        let (e1, e2) = (score(c1, b), score(c2, b));
                        if (e1 - e2).abs() > 1e-9 * e1.abs().max(e2.abs()) {
                            assert_eq!(s1 > s2, e1 > e2, "κ {kappa}, {c1} {c2} bucket {b}");
                        }
                    }
                }
            }
        }
        // One day of purchases: no validation days, so κ is the default.
        let shipped = StageLift::estimate(&ds, &fit, i64::MAX);
        assert!(!shipped.tuned && shipped.kappa == DEFAULT_KAPPA);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
