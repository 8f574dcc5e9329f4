//! Stage fit, learned from who buys what: for each item, the distribution
//! of the baby's age at purchase, estimated from the purchases of families
//! whose baby's birthday is known and smoothed up the category tree (item ->
//! leaf category -> top category -> all purchases) so a sparse item borrows
//! strength from its category. An `age_min_months`/`age_max_months` range
//! from `items.csv` takes precedence. The scorer's feature is the lift
//! `P(age bucket | item) / P(age bucket)`, stored as a quantized log2.
//!
//! `eval-stage` checks it on the Tianchi "Mum Baby" sample: for each held-out
//! purchase by a family with a known baby, rank every leaf category for the
//! baby's age on that day.

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
fn spread(c: &Dist) -> Dist {
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
        test_from: nestrank::util::format_date(split as i32),
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

/// Purchases before `cutoff` by families whose baby's birthday is known,
/// each with the baby's age bucket on the day.
fn labeled_purchases(
    ds: &Dataset,
    cutoff: i64,
) -> impl Iterator<Item = (&crate::data::Ev, usize)> + '_ {
    ds.events
        .iter()
        .filter(move |e| e.ts < cutoff && e.event == Event::Purchase)
        .filter_map(|e| {
            let (Some(born), _) = ds.babies.get(&e.user)? else {
                return None;
            };
            let months = (e.ts as f64 / DAY as f64 - f64::from(*born)) / DAYS_PER_MONTH;
            Some((e, bucket_of(months)))
        })
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

/// The most brands and categories a built profile keeps.
pub const PROFILE_AFFINITIES: usize = 12;

/// A family's profile as the builder sees it before `cutoff`: birthday or
/// due date and gender from `users.csv`, brand and category affinities
/// from the family's own event-weighted signals (30-day half-life), and
/// the price band (20th to 80th percentile) of what it carted or bought.
/// The strongest [`PROFILE_AFFINITIES`] brands and categories are kept.
///
/// `events` are the indices of the user's own events in `ds.events`
/// ([`crate::replay::events_by_user`]).
pub fn profile_of(
    ds: &Dataset,
    user: u32,
    events: &[usize],
    cutoff: i64,
) -> nestrank::profile::Profile {
    use nestrank::profile::{affinities_from, AffinitiesSection, Gender, Profile};
    let (birth_day, gender) = ds
        .babies
        .get(&user)
        .copied()
        .unwrap_or((None, Gender::Unknown));
    let mut brands: HashMap<u32, f32> = HashMap::new();
    let mut cats: HashMap<u32, f32> = HashMap::new();
    let mut prices: Vec<f32> = Vec::new();
    for e in events
        .iter()
        .map(|&k| &ds.events[k])
        .filter(|e| e.ts < cutoff)
    {
        let w = [1.0f32, 2.0, 3.0, 4.0][e.event as usize]
            * 0.5f32.powf((cutoff - e.ts) as f32 / (30.0 * DAY as f32));
        let a = &ds.attrs[e.item as usize];
        if a.brand != u32::MAX {
            *brands.entry(a.brand).or_insert(0.0) += w;
        }
        let c = ds.item_category[e.item as usize];
        if c != u32::MAX {
            *cats.entry(c).or_insert(0.0) += w;
        }
        if e.event.is_conversion() && a.price.is_finite() && a.price > 0.0 {
            prices.push(a.price);
        }
    }
    prices.sort_by(f32::total_cmp);
    let band = if prices.is_empty() {
        (0.0, 0.0)
    } else {
        let at = |q: f32| prices[((prices.len() - 1) as f32 * q).round() as usize];
        (at(0.2), at(0.8))
    };
    // The strongest few: a profile stays a few hundred bytes.
    let named = |m: HashMap<u32, f32>, names: &crate::data::Interner| -> Vec<(String, f32)> {
        let mut v: Vec<(String, f32)> = m
            .into_iter()
            .map(|(k, w)| (names.name(k).to_string(), w))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(PROFILE_AFFINITIES);
        v
    };
    let affinities: AffinitiesSection = affinities_from(
        &named(brands, &ds.brands),
        &named(cats, &ds.categories),
        band,
    );
    Profile {
        birth_day,
        gender,
        affinities,
        as_of_day: (cutoff / DAY) as i32,
    }
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
                nestrank::util::format_date(born as i32)
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
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
