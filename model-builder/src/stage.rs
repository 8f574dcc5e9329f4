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
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
