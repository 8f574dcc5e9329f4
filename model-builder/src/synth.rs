//! A deterministic synthetic shop log in the canonical schema, for scale
//! measurements: Zipf-popular items in categories, users with a few
//! favourite categories, sessions of views with some favourites, carts and
//! purchases, spread over a number of days.

use crate::options::DAY;
use crate::publish::write_atomically;
use crate::rng::Rng;
use anyhow::Result;
use std::path::Path;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthOptions {
    /// Events to write.
    pub events: u64,
    /// Users.
    pub users: u32,
    /// Items.
    pub items: u32,
    /// Categories.
    pub categories: u32,
    /// Days the log spans, ending at `end_day` (exclusive).
    pub days: u32,
    /// The day after the last logged day (days since 1970-01-01).
    pub end_day: i32,
    /// Random seed.
    pub seed: u64,
}

/// Draws from a discrete distribution given by cumulative weights.
fn draw(cumulative: &[f64], rng: &mut Rng) -> usize {
    let total = *cumulative.last().expect("non-empty");
    let x = rng.unit() * total;
    cumulative
        .partition_point(|&c| c <= x)
        .min(cumulative.len() - 1)
}

/// Writes `events.csv` and `items.csv` into `out`.
pub fn generate(out: &Path, o: &SynthOptions) -> Result<()> {
    anyhow::ensure!(
        o.users > 0 && o.items > 0 && o.categories > 0 && o.days > 0,
        "users, items, categories and days must be positive"
    );
    std::fs::create_dir_all(out)?;
    let mut rng = Rng::new(o.seed ^ 0x5EED);
    // Items: a category each (Zipf over categories), a Zipf popularity.
    let cat_cum: Vec<f64> = (1..=o.categories)
        .scan(0.0, |acc, k| {
            *acc += 1.0 / f64::from(k);
            Some(*acc)
        })
        .collect();
    let mut by_category: Vec<Vec<u32>> = vec![Vec::new(); o.categories as usize];
    let mut item_category = Vec::with_capacity(o.items as usize);
    for i in 0..o.items {
        let c = draw(&cat_cum, &mut rng) as u32;
        item_category.push(c);
        by_category[c as usize].push(i);
    }
    // Within a category, popularity falls as 1/rank^0.9.
    let cum_of = |items: &[u32]| -> Vec<f64> {
        items
            .iter()
            .enumerate()
            .scan(0.0, |acc, (r, _)| {
                *acc += 1.0 / ((r + 1) as f64).powf(0.9);
                Some(*acc)
            })
            .collect()
    };
    let cat_item_cum: Vec<Vec<f64>> = by_category.iter().map(|v| cum_of(v)).collect();
    let all: Vec<u32> = (0..o.items).collect();
    let all_cum = cum_of(&all);
    write_atomically(&out.join("items.csv"), |w| {
        writeln!(w, "item_id,category")?;
        for (i, c) in item_category.iter().enumerate() {
            writeln!(w, "i{i},c{c}")?;
        }
        Ok(())
    })?;
    let start = i64::from(o.end_day - o.days as i32) * DAY;
    let span = i64::from(o.days) * DAY;
    write_atomically(&out.join("events.csv"), |w| {
        writeln!(w, "user_id,item_id,event,ts")?;
        let mut written = 0u64;
        while written < o.events {
            // One session: a user, a time, a favourite category, 1-20 events.
            let user = rng.below(o.users as usize) as u32;
            let mut ur = Rng::new(o.seed ^ (u64::from(user) << 20) ^ 0xABCD);
            let favourites = [
                draw(&cat_cum, &mut ur),
                draw(&cat_cum, &mut ur),
                draw(&cat_cum, &mut ur),
            ];
            let mut ts = start + rng.below(span as usize) as i64;
            let len = 1 + rng.below(20);
            let mut last = 0u32;
            for _ in 0..len {
                if written == o.events {
                    break;
                }
                let item = if rng.below(10) < 7 {
                    let c = favourites[rng.below(3)];
                    if by_category[c].is_empty() {
                        all[draw(&all_cum, &mut rng)]
                    } else {
                        by_category[c][draw(&cat_item_cum[c], &mut rng)]
                    }
                } else {
                    all[draw(&all_cum, &mut rng)]
                };
                let r = rng.below(100);
                // Carts and purchases mostly follow a view of the same item.
                let (item, event) = match r {
                    0..=89 => (item, "view"),
                    90..=92 => (item, "fav"),
                    93..=97 => (if written > 0 { last } else { item }, "cart"),
                    _ => (if written > 0 { last } else { item }, "purchase"),
                };
                writeln!(w, "u{user},i{item},{event},{ts}")?;
                last = item;
                ts += 5 + rng.below(300) as i64;
                written += 1;
            }
        }
        Ok(())
    })
}
