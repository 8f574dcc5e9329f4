//! `model-builder report`: did it sell more? An experiment's outcome from
//! the shop's own logs, as a figure per variant, a lift against the
//! baseline with a bootstrap interval, and a plain verdict; with the
//! offline replay, the learned weights and the blob's make-up beside it.
//!
//! What it reads, in the builder's usual formats (CSV or Parquet):
//! - `events` with a `variant` column (and `shown_rank`, the 1-based rank
//!   the item was shown at, and `propensity`, the probability an
//!   exploration slot drew it with, where known);
//! - `exposures` (optional): one row per page served, `user_id,variant,ts`.
//!   With it every visitor counts, buyers or not; without it only visitors
//!   with a tagged event do, and the report says so;
//! - `items` (optional): `price`, for revenue;
//! - `experiment.json` (optional): the experiment that ran, for the
//!   variants' order; the first variant is the baseline.
//!
//! The unit is the visitor (the `user_id`), assigned to the variant of its
//! first exposure. A visitor converted if it bought anything from its first
//! exposure on, whatever the page it bought from, so that a variant cannot
//! look better by moving purchases between pages. The lift of variant `v`
//! is `rate(v) / rate(baseline) - 1`; its interval is the percentile
//! bootstrap over visitors, resampled within each variant.

use crate::data::EventColumns;
use crate::rng::Rng;
use crate::rows::{parse_id, parse_ts, BadRows, Table};
use anyhow::{bail, Context, Result};
use nestrank::Event;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Ranks counted one by one in the clicks-by-rank figure; lower ones are
/// counted together.
pub const MAX_RANK: usize = 50;

/// How to report.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Bootstrap resamples.
    pub bootstrap: u32,
    /// The interval's confidence, e.g. 0.95.
    pub confidence: f64,
    /// The resampling's seed.
    pub seed: u64,
    /// The variant lifts are measured against (default: the experiment's
    /// first, or the first seen in the logs).
    pub baseline: Option<String>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            bootstrap: 2_000,
            confidence: 0.95,
            seed: 1,
            baseline: None,
        }
    }
}

/// One variant's figures.
#[derive(Debug, Clone, Serialize)]
pub struct VariantStats {
    /// Visitors assigned to it.
    pub visitors: u64,
    /// Of those, visitors who bought.
    pub converted: u64,
    /// `converted / visitors`.
    pub conversion_rate: f64,
    /// The rate's bootstrap interval.
    pub conversion_interval: [f64; 2],
    /// Purchases by its visitors.
    pub orders: u64,
    /// Revenue per visitor, where every bought item's price is known.
    pub revenue_per_visitor: Option<f64>,
    /// Pages served (exposures).
    pub pages: u64,
    /// Taps (views) by shown rank: `[0]` is rank 1, up to [`MAX_RANK`].
    pub clicks_by_rank: Vec<u64>,
    /// Taps at ranks below [`MAX_RANK`].
    pub clicks_below: u64,
    /// Taps with no shown rank (from another page than the list).
    pub clicks_unranked: u64,
}

/// A variant's lift against the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Lift {
    /// `rate / baseline rate - 1`.
    pub estimate: f64,
    /// The interval's ends.
    pub lo: f64,
    /// The interval's ends.
    pub hi: f64,
    /// Whether the interval leaves out 0.
    pub significant: bool,
    /// In words.
    pub verdict: String,
}

/// The whole report (`report --json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The experiment's name, where `experiment.json` gives it.
    pub experiment: Option<String>,
    /// The variants in order, the baseline first.
    pub order: Vec<String>,
    /// The baseline.
    pub baseline: String,
    /// Per variant.
    pub variants: BTreeMap<String, VariantStats>,
    /// Per variant but the baseline.
    pub lift: BTreeMap<String, Lift>,
    /// The interval's confidence.
    pub confidence: f64,
    /// Bootstrap resamples.
    pub bootstrap: u32,
    /// Where visitors were counted: `exposures`, or `events` (tagged
    /// events only: visitors who never tapped are missing).
    pub visitors_from: &'static str,
    /// Visitors seen in more than one variant (kept in their first).
    pub crossed_visitors: u64,
    /// Rows skipped as bad.
    pub bad_rows: u64,
}

#[derive(Default)]
struct Visitor {
    variant: usize,
    first: i64,
    crossed: bool,
}

/// Reads the logs in `dir` and computes the report.
pub fn analyze(dir: &Path, o: &ReportOptions, bad: &mut BadRows) -> Result<Report> {
    let experiment = read_experiment(dir)?;
    let mut names: Vec<String> = experiment
        .as_ref()
        .map(|e| e.variants.iter().map(|v| v.name.clone()).collect())
        .unwrap_or_default();
    let index_of = |name: &str, names: &mut Vec<String>| -> usize {
        match names.iter().position(|n| n == name) {
            Some(k) => k,
            None => {
                names.push(name.to_string());
                names.len() - 1
            }
        }
    };
    let mut visitors: HashMap<String, Visitor> = HashMap::new();
    let mut pages: Vec<u64> = Vec::new();
    let see =
        |visitors: &mut HashMap<String, Visitor>, user: &str, k: usize, ts: i64| match visitors
            .get_mut(user)
        {
            Some(v) if v.variant != k => v.crossed = true,
            Some(v) => v.first = v.first.min(ts),
            None => {
                visitors.insert(
                    user.to_string(),
                    Visitor {
                        variant: k,
                        first: ts,
                        crossed: false,
                    },
                );
            }
        };
    let exposures = Table::find(dir, "exposures")?;
    let visitors_from = if exposures.is_some() {
        "exposures"
    } else {
        "events"
    };
    if let Some(mut t) = exposures {
        let (c_user, c_variant, c_ts) = (
            t.require("user_id")?,
            t.require("variant")?,
            t.require("ts")?,
        );
        let mut rows: Vec<(String, String, i64)> = Vec::new();
        t.for_each_row(bad, |at, f| {
            let user = parse_id(f[c_user]).map_err(|p| at.bad("user_id", p))?;
            let variant = parse_id(f[c_variant]).map_err(|p| at.bad("variant", p))?;
            let ts = parse_ts(f[c_ts]).map_err(|p| at.bad("ts", p))?;
            rows.push((user.to_string(), variant.to_string(), ts));
            Ok(())
        })?;
        // First exposure first, whatever the file's order.
        rows.sort_by_key(|r| r.2);
        for (user, variant, ts) in rows {
            let k = index_of(&variant, &mut names);
            if pages.len() <= k {
                pages.resize(k + 1, 0);
            }
            pages[k] += 1;
            see(&mut visitors, &user, k, ts);
        }
    }
    // The events: tags, ranks and purchases, in one pass.
    let mut events = Table::open(dir, "events")?;
    let c_variant = events.column("variant").with_context(|| {
        format!(
            "{}: no `variant` column: these logs carry no experiment (the page tags each event with the variant that served it)",
            events.path().display()
        )
    })?;
    let c_rank = events.column("shown_rank");
    let c_propensity = events.column("propensity");
    let columns = EventColumns::of(&events)?;
    let prices = read_prices(dir, bad)?;
    // (variant, shown rank) of every tagged view.
    let mut views: Vec<(usize, Option<u32>)> = Vec::new();
    // (user, item, ts) of every purchase.
    let mut purchases: Vec<(String, String, i64)> = Vec::new();
    events.for_each_row(bad, |at, f| {
        let (user, item, event, ts) = columns.parse(at, f)?;
        let rank = match c_rank.map(|c| f[c].trim()) {
            None | Some("") => None,
            Some(r) => match r.parse::<u32>() {
                Ok(r) if r >= 1 => Some(r),
                _ => {
                    return Err(at.bad("shown_rank", format!("`{r}` is not a rank (1 is the top)")))
                }
            },
        };
        // Read by an inverse-propensity estimate, checked here so that a
        // log that could not feed one is named now.
        if let Some(p) = c_propensity.map(|c| f[c].trim()).filter(|p| !p.is_empty()) {
            if !p.parse::<f64>().is_ok_and(|x| x > 0.0 && x <= 1.0) {
                return Err(at.bad(
                    "propensity",
                    format!("`{p}` is not a probability in (0, 1]"),
                ));
            }
        }
        if event == Event::Purchase {
            purchases.push((user.to_string(), item.to_string(), ts));
        }
        let variant = f[c_variant].trim();
        if !variant.is_empty() {
            let k = index_of(variant, &mut names);
            if event == Event::View {
                views.push((k, rank));
            }
            if visitors_from == "events" {
                see(&mut visitors, user, k, ts);
            }
        }
        Ok(())
    })?;
    if names.is_empty() || visitors.is_empty() {
        bail!(
            "{}: no visitor is tagged with a variant: nothing to report",
            dir.display()
        );
    }
    let baseline = match &o.baseline {
        Some(b) => names
            .iter()
            .position(|n| n == b)
            .with_context(|| format!("--baseline `{b}` is not a variant ({})", names.join(", ")))?,
        None => 0,
    };
    let n = names.len();
    let mut clicks = vec![vec![0u64; MAX_RANK + 2]; n];
    for &(k, rank) in &views {
        let bucket = match rank {
            Some(r) => (r as usize).min(MAX_RANK + 1) - 1,
            None => MAX_RANK + 1,
        };
        clicks[k][bucket] += 1;
    }
    // Per visitor: bought, orders, revenue (None: a price unknown).
    let mut outcome: HashMap<&str, (u64, Option<f64>)> = HashMap::new();
    for (user, item, ts) in &purchases {
        let Some(v) = visitors.get(user.as_str()) else {
            continue;
        };
        if *ts < v.first {
            continue;
        }
        let e = outcome.entry(user.as_str()).or_insert((0, Some(0.0)));
        e.0 += 1;
        e.1 = match (e.1, prices.get(item.as_str())) {
            (Some(r), Some(p)) => Some(r + p),
            _ => None,
        };
    }
    // Per variant: each visitor's (bought, revenue).
    let mut units: Vec<Vec<(bool, Option<f64>)>> = vec![Vec::new(); n];
    let mut orders = vec![0u64; n];
    let mut crossed = 0u64;
    let mut users: Vec<(&String, &Visitor)> = visitors.iter().collect();
    users.sort_by(|a, b| a.0.cmp(b.0));
    for (user, v) in users {
        crossed += u64::from(v.crossed);
        let (o, revenue) = outcome
            .get(user.as_str())
            .copied()
            .unwrap_or((0, Some(0.0)));
        orders[v.variant] += o;
        units[v.variant].push((o > 0, revenue));
    }
    // The order: the baseline first, then as listed.
    let mut order: Vec<usize> = vec![baseline];
    order.extend((0..n).filter(|&k| k != baseline));
    let rates: Vec<f64> = units.iter().map(|u| rate(u)).collect();
    let mut rng = Rng::new(o.seed);
    let mut boot: Vec<Vec<f64>> = vec![Vec::with_capacity(o.bootstrap as usize); n];
    for _ in 0..o.bootstrap {
        for (k, u) in units.iter().enumerate() {
            let bought = (0..u.len()).filter(|_| u[rng.below(u.len())].0).count();
            boot[k].push(bought as f64 / u.len().max(1) as f64);
        }
    }
    let tail = (1.0 - o.confidence) / 2.0;
    let mut variants = BTreeMap::new();
    for k in 0..n {
        let u = &units[k];
        let revenue: Option<f64> = u.iter().map(|x| x.1).sum();
        variants.insert(
            names[k].clone(),
            VariantStats {
                visitors: u.len() as u64,
                converted: u.iter().filter(|x| x.0).count() as u64,
                conversion_rate: rates[k],
                conversion_interval: [quantile(&boot[k], tail), quantile(&boot[k], 1.0 - tail)],
                orders: orders[k],
                revenue_per_visitor: revenue.map(|r| r / u.len().max(1) as f64),
                pages: pages.get(k).copied().unwrap_or(0),
                clicks_by_rank: clicks[k][..MAX_RANK].to_vec(),
                clicks_below: clicks[k][MAX_RANK],
                clicks_unranked: clicks[k][MAX_RANK + 1],
            },
        );
    }
    let mut lift = BTreeMap::new();
    for &k in &order[1..] {
        let b = baseline;
        let draws: Vec<f64> = boot[k]
            .iter()
            .zip(&boot[b])
            .filter(|(_, &base)| base > 0.0)
            .map(|(&x, &base)| x / base - 1.0)
            .collect();
        if rates[b] <= 0.0 || draws.is_empty() {
            continue;
        }
        let estimate = rates[k] / rates[b] - 1.0;
        let (lo, hi) = (quantile(&draws, tail), quantile(&draws, 1.0 - tail));
        let significant = lo > 0.0 || hi < 0.0;
        let pct = |x: f64| format!("{:+.1}%", 100.0 * x);
        let verdict = if !significant {
            format!(
                "not yet significant: {} against {}: {} [{}, {}]",
                names[k],
                names[b],
                pct(estimate),
                pct(lo),
                pct(hi)
            )
        } else {
            format!(
                "{} {} {} by {:.1}% [{}, {}]",
                names[k],
                if estimate > 0.0 { "beats" } else { "trails" },
                names[b],
                100.0 * estimate.abs(),
                pct(lo),
                pct(hi)
            )
        };
        lift.insert(
            names[k].clone(),
            Lift {
                estimate,
                lo,
                hi,
                significant,
                verdict,
            },
        );
    }
    Ok(Report {
        experiment: experiment.map(|e| e.name),
        order: order.iter().map(|&k| names[k].clone()).collect(),
        baseline: names[baseline].clone(),
        variants,
        lift,
        confidence: o.confidence,
        bootstrap: o.bootstrap,
        visitors_from,
        crossed_visitors: crossed,
        bad_rows: bad.rows().len() as u64,
    })
}

fn rate(units: &[(bool, Option<f64>)]) -> f64 {
    units.iter().filter(|x| x.0).count() as f64 / units.len().max(1) as f64
}

/// The `q` quantile of `xs` (linear between order statistics).
fn quantile(xs: &[f64], q: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let at = q * (v.len() - 1) as f64;
    let (i, f) = (at.floor() as usize, at.fract());
    v[i] + (v[(i + 1).min(v.len() - 1)] - v[i]) * f
}

fn read_experiment(dir: &Path) -> Result<Option<nestrank::experiment::Experiment>> {
    let path = dir.join("experiment.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let e: nestrank::experiment::Experiment = serde_json::from_str(&text)
        .with_context(|| format!("{}: not an experiment", path.display()))?;
    e.validate()
        .map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))?;
    Ok(Some(e))
}

/// Item prices from the `items` table, where it has them.
fn read_prices(dir: &Path, bad: &mut BadRows) -> Result<HashMap<String, f64>> {
    let mut prices = HashMap::new();
    let Some(mut t) = Table::find(dir, "items")? else {
        return Ok(prices);
    };
    let (Some(c_price), Ok(c_item)) = (t.column("price"), t.require("item_id")) else {
        return Ok(prices);
    };
    t.for_each_row(bad, |at, f| {
        let item = parse_id(f[c_item]).map_err(|p| at.bad("item_id", p))?;
        let p = f[c_price].trim();
        if !p.is_empty() {
            let price: f64 = p
                .parse()
                .ok()
                .filter(|x: &f64| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| at.bad("price", format!("`{p}` is not a price")))?;
            prices.insert(item.to_string(), price);
        }
        Ok(())
    })?;
    Ok(prices)
}
