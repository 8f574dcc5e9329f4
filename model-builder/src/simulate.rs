//! `model-builder simulate`: an A/B experiment run on the synthetic shop's
//! families, whose tastes are known, so that a report's estimate can be
//! checked against the truth.
//!
//! The shop written by `synth --kind mother-baby` carries `shop.json`, the
//! options that regenerate its world: the catalog, and each family's hidden
//! tastes and stock as they are after the log. The simulator carries that
//! world on for `days` more days (new specials launch every day as before):
//!
//! - each family has a random visitor id (drawn from the seed, never from
//!   the family's id), and visits on a day with its usual activity;
//! - its page is the day's specials, served through the real decision
//!   code: [`nestrank::experiment::Experiment::assign`], then
//!   [`nestrank::Recommender`]'s rerank with the family's newest 200
//!   signals (as the phone keeps them) and its baby's profile. The
//!   control shows the shop's own order;
//! - the shopper looks at rank `r` with probability `1 / log2(r + 1)` (the
//!   position bias), taps a looked-at item with probability
//!   `0.5 a / (a + 30)` for its appeal `a` (the same hidden taste the log
//!   was drawn from), and then carts and buys as in the log, at most 12
//!   taps a visit.
//!
//! The experiment's logs go to `out` in the builder's layout: `events.csv`
//! with `variant` and `shown_rank`, `exposures.csv` (one row per page
//! served: `user_id,variant,ts`), `items.csv`, `users.csv` and the
//! `experiment.json` that ran. The truth goes to `truth.json`: the same
//! days run once more per variant with every visitor in it (the same
//! visits, the same random draws per family and day), giving each
//! variant's true conversion rate per visitor. The blob stays the one
//! given: the simulated days are not rebuilt nightly, so items launched
//! after its day are new to it.

use crate::options::DAY;
use crate::publish::write_atomically;
use crate::rng::Rng;
use crate::shop::{self, appeal, Family, ShopOptions, World};
use anyhow::{bail, Context, Result};
use nestrank::experiment::{Experiment, Order, Variant, BUCKETS};
use nestrank::hash::mix64;
use nestrank::profile::Profile;
use nestrank::rank::RankerKind;
use nestrank::{Event, Recommender};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

/// The signals a phone keeps (SignalStore's default).
const DEVICE_SIGNALS: usize = 200;
/// The most items a shopper taps in one visit.
const MAX_TAPS: usize = 12;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Days after the shop's log.
    pub days: u32,
    /// The variants by name: `control` (the shop's order), `nestrank` (the
    /// shipped ranker) or a hand-set ranker (`recent`, `popular`, ...); a
    /// repeated name gets a suffix (`nestrank-2`).
    pub variants: Vec<String>,
    /// The experiment's name (part of the assignment hash).
    pub experiment: String,
    /// Random seed: visitor ids and every draw.
    pub seed: u64,
}

/// What the simulation gave.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Truth {
    /// Per variant: the share of visitors who bought, with every visitor in it.
    pub conversion_rate: BTreeMap<String, f64>,
    /// Per variant: visitors in the experiment run.
    pub visitors: BTreeMap<String, u64>,
    /// Events written.
    pub events: u64,
}

/// The experiment `--variants` describes: equal shares, in the order
/// given, repeated names suffixed.
pub fn experiment_of(name: &str, variants: &[String]) -> Result<Experiment> {
    if variants.is_empty() {
        bail!("--variants: name at least one variant (control, nestrank, or a ranker)");
    }
    let n = variants.len() as u32;
    let mut out: Vec<Variant> = Vec::new();
    for (k, base) in variants.iter().enumerate() {
        let (order, ranker) = match base.as_str() {
            "control" => (Order::Shop, None),
            "nestrank" => (Order::Nestrank, None),
            other if RankerKind::from_name(other).is_some() => {
                (Order::Nestrank, Some(other.to_string()))
            }
            other => bail!(
                "--variants: unknown variant `{other}` (expected control, nestrank, {})",
                RankerKind::ALL.map(RankerKind::name).join(", ")
            ),
        };
        let seen = variants[..k].iter().filter(|v| *v == base).count();
        let name = match seen {
            0 => base.clone(),
            s => format!("{base}-{}", s + 1),
        };
        // Equal shares in buckets; the first variants take the remainder.
        let buckets = BUCKETS / n + u32::from((k as u32) < BUCKETS % n);
        out.push(Variant {
            name,
            share: f64::from(buckets) * 100.0 / f64::from(BUCKETS),
            order,
            ranker,
            rules: None,
        });
    }
    let e = Experiment {
        name: name.to_string(),
        variants: out,
    };
    e.validate()?;
    Ok(e)
}

/// One family's state in one simulated world.
#[derive(Clone)]
struct Shopper {
    family: Family,
    /// The newest signals: (item, event, ts).
    signals: VecDeque<(usize, Event, i64)>,
}

/// What one world's run logged.
#[derive(Default)]
struct Log {
    /// (family, item, event, ts, variant, shown rank)
    events: Vec<(usize, usize, &'static str, i64, usize, u32)>,
    /// (family, variant, ts)
    exposures: Vec<(usize, usize, i64)>,
    /// Per family: visited, bought.
    visited: Vec<bool>,
    bought: Vec<bool>,
}

/// Runs the shop in `shop_dir` on for `o.days` days with the blob `model`
/// and writes the experiment's logs and the truth into `out`.
pub fn simulate(shop_dir: &Path, model: &[u8], o: &SimOptions, out: &Path) -> Result<Truth> {
    let options_file = shop_dir.join("shop.json");
    let text = std::fs::read_to_string(&options_file).with_context(|| {
        format!(
            "cannot read {}: simulate runs a shop written by `synth --kind mother-baby`",
            options_file.display()
        )
    })?;
    let shop = ShopOptions::from_json(&text, &options_file.display().to_string())?;
    anyhow::ensure!(o.days > 0, "--days must be at least 1");
    let experiment = experiment_of(&o.experiment, &o.variants)?;
    let mut world = World::generate(&shop)?;
    // Specials keep launching after the log, from their own generator so
    // that the log's world is untouched.
    let mut launches = Rng::new(o.seed ^ 0x1A0C_4E55);
    for day in shop.today + 1..shop.today + o.days as i32 {
        shop::launch(&shop, day, &mut launches, &mut world.items);
    }
    let rec = Recommender::from_bytes(model).map_err(|e| anyhow::anyhow!("--model: {e}"))?;
    let mut ids = Rng::new(o.seed ^ 0x0715_1708);
    let visitors: Vec<String> = (0..world.families.len())
        .map(|_| format!("v{:016x}", ids.next_u64()))
        .collect();
    let mut start: Vec<Shopper> = world
        .families
        .iter()
        .map(|f| Shopper {
            family: f.clone(),
            signals: VecDeque::new(),
        })
        .collect();
    for &(u, i, e, ts) in &world.events {
        let s = &mut start[u].signals;
        if s.len() == DEVICE_SIGNALS {
            s.pop_front();
        }
        s.push_back((
            i,
            Event::from_name(e).expect("the shop logs known events"),
            ts,
        ));
    }
    let run = |e: &Experiment, log_events: bool| -> Result<Log> {
        let mut rec = rec.clone();
        rec.set_experiment(Some(e.clone()))?;
        run_world(&world, &shop, start.clone(), &visitors, rec, o, log_events)
    };
    let log = run(&experiment, true)?;
    let mut truth = Truth {
        conversion_rate: BTreeMap::new(),
        visitors: BTreeMap::new(),
        events: log.events.len() as u64,
    };
    for (k, v) in experiment.variants.iter().enumerate() {
        let mut alone = v.clone();
        alone.share = 100.0;
        let all_in = Experiment {
            name: experiment.name.clone(),
            variants: vec![alone],
        };
        let t = run(&all_in, false)?;
        let visited = t.visited.iter().filter(|&&v| v).count();
        let bought = t.bought.iter().filter(|&&b| b).count();
        truth
            .conversion_rate
            .insert(v.name.clone(), bought as f64 / visited.max(1) as f64);
        let in_k: std::collections::HashSet<usize> = log
            .exposures
            .iter()
            .filter(|x| x.1 == k)
            .map(|x| x.0)
            .collect();
        truth.visitors.insert(v.name.clone(), in_k.len() as u64);
    }
    write(out, &world, &experiment, &log, &truth)?;
    Ok(truth)
}

fn run_world(
    world: &World,
    shop: &ShopOptions,
    mut shoppers: Vec<Shopper>,
    visitors: &[String],
    mut rec: Recommender,
    o: &SimOptions,
    log_events: bool,
) -> Result<Log> {
    let n = shoppers.len();
    let mut log = Log {
        visited: vec![false; n],
        bought: vec![false; n],
        ..Log::default()
    };
    let variant_index = |rec: &Recommender| -> usize {
        let name = rec.variant().unwrap_or_default();
        rec.experiment()
            .and_then(|e| e.variants.iter().position(|v| v.name == name))
            .unwrap_or(0)
    };
    let users = user_profiles(world);
    for day in shop.today..shop.today + o.days as i32 {
        let page = world.shop_order(day);
        let ids: Vec<&str> = page.iter().map(|&i| world.items[i].id.as_str()).collect();
        for (u, s) in shoppers.iter_mut().enumerate() {
            // One generator per family and day: the same visits and draws
            // in every world, as far as the pages agree.
            let mut rng = Rng::new(mix64(o.seed ^ ((u as u64) << 32) ^ (day as u32 as u64)));
            if !rng.chance(s.family.activity) {
                continue;
            }
            let mut ts = i64::from(day) * DAY + 7 * 3_600 + rng.below(15 * 3_600) as i64;
            rec.set_visitor(&visitors[u]);
            let variant = variant_index(&rec);
            let profile = Profile::from_birthday(&users[u].0, users[u].1, ts as f64).ok();
            rec.set_profile(profile);
            let signals: Vec<(&str, Event, f64)> = s
                .signals
                .iter()
                .map(|&(i, e, t)| (world.items[i].id.as_str(), e, t as f64))
                .collect();
            let coded: Vec<(&str, u8, f64)> =
                signals.iter().map(|x| (x.0, x.1 as u8, x.2)).collect();
            let order: Vec<u32> = rec
                .rerank_id_positions(&ids, &coded, ts as f64, false)
                .map_err(|e| anyhow::anyhow!("rerank on day {day}: {e}"))?
                .order
                .clone();
            log.visited[u] = true;
            log.exposures.push((u, variant, ts));
            let mut taps = 0;
            for (r, &p) in order.iter().enumerate() {
                let rank = r as u32 + 1;
                if !rng.chance(1.0 / f64::from(rank + 1).log2()) {
                    continue;
                }
                let i = page[p as usize];
                let item = &world.items[i];
                let a = appeal(&s.family, item, day);
                if !rng.chance(0.5 * a / (a + 30.0)) {
                    continue;
                }
                let mut event = |e: &'static str, ts: i64, s: &mut Shopper| {
                    if log_events {
                        log.events.push((u, i, e, ts, variant, rank));
                    }
                    if s.signals.len() == DEVICE_SIGNALS {
                        s.signals.pop_front();
                    }
                    s.signals
                        .push_back((i, Event::from_name(e).expect("a known event"), ts));
                };
                event("view", ts, s);
                ts += 20 + rng.below(240) as i64;
                let keen = (a / 30.0).min(1.0);
                if rng.chance(0.25 * keen) {
                    event("cart", ts, s);
                    ts += 30 + rng.below(300) as i64;
                    if rng.chance(0.6) {
                        event("purchase", ts, s);
                        ts += 10;
                        log.bought[u] = true;
                        s.family.bought(item, day, &mut rng);
                    }
                }
                taps += 1;
                if taps == MAX_TAPS {
                    break;
                }
            }
        }
    }
    Ok(log)
}

/// Each family's (birthday, gender) as users.csv holds them.
fn user_profiles(world: &World) -> Vec<(String, &'static str)> {
    world
        .families
        .iter()
        .map(|f| (nestrank::calendar::format_date(f.birthday), f.gender_code()))
        .collect()
}

fn write(
    out: &Path,
    world: &World,
    experiment: &Experiment,
    log: &Log,
    truth: &Truth,
) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    world.write_items(out)?;
    world.write_users(out)?;
    let names: Vec<&str> = experiment
        .variants
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    let mut events = log.events.clone();
    events.sort_by_key(|e| (e.3, e.0));
    write_atomically(&out.join("events.csv"), |w| {
        writeln!(w, "user_id,item_id,event,ts,variant,shown_rank")?;
        for &(u, i, e, ts, v, rank) in &events {
            writeln!(w, "f{u},{},{e},{ts},{},{rank}", world.items[i].id, names[v])?;
        }
        Ok(())
    })?;
    let mut exposures = log.exposures.clone();
    exposures.sort_by_key(|x| (x.2, x.0));
    write_atomically(&out.join("exposures.csv"), |w| {
        writeln!(w, "user_id,variant,ts")?;
        for &(u, v, ts) in &exposures {
            writeln!(w, "f{u},{},{ts}", names[v])?;
        }
        Ok(())
    })?;
    write_atomically(&out.join("experiment.json"), |w| {
        serde_json::to_writer_pretty(&mut *w, experiment)?;
        writeln!(w)?;
        Ok(())
    })?;
    write_atomically(&out.join("truth.json"), |w| {
        serde_json::to_writer_pretty(
            &mut *w,
            &serde_json::json!({ "conversion_rate": truth.conversion_rate }),
        )?;
        writeln!(w)?;
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_get_equal_shares_and_repeated_names_a_suffix() {
        let e = experiment_of(
            "t",
            &["nestrank".into(), "nestrank".into(), "control".into()],
        )
        .unwrap();
        let names: Vec<&str> = e.variants.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["nestrank", "nestrank-2", "control"]);
        let shares: Vec<f64> = e.variants.iter().map(|v| v.share).collect();
        assert_eq!(shares, [33.34, 33.33, 33.33]);
        assert_eq!(e.variants[2].order, Order::Shop);
        let err = experiment_of("t", &["best".into()]).unwrap_err();
        assert!(err.to_string().contains("unknown variant `best`"), "{err}");
    }
}
