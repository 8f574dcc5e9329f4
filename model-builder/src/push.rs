//! Personalized push lists: for every user with signals, the top of the
//! day's specials from the core scorer and the blob's rules, one JSON line
//! a user.
//!
//! The log is streamed once: only each user's newest signals inside the
//! window (as the phone's `SignalStore` keeps them) stay in memory, as 9
//! bytes a signal, so memory grows with users x window, not with the log.
//! Users are then ranked in parallel (a `Recommender` per thread) and
//! written in the order of user ids, chunk by chunk.
//!
//! Confidence: an item is pushed only when the user's score for it rises
//! above what anyone would get (the same rerank with no signals) by at
//! least `threshold` standard deviations of those anonymous scores. A user
//! with no such item gets no line: no push beats a noisy one.

use crate::data::for_each_event;
use crate::options::DAY;
use crate::rows::{parse_id, BadRowPolicy, BadRows, Table};
use anyhow::{Context, Result};
use nestrank::profile::{Gender, Profile};
use nestrank::{Event, Recommender, Signals};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// Push settings.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Signals before this day (days since 1970) only; `now` is its 00:00 UTC.
    pub as_of_day: i32,
    /// Items a push holds at most.
    pub top: usize,
    /// Minimum lift over the anonymous score, in anonymous standard deviations.
    pub threshold: f32,
    /// Days of signals kept before as-of.
    pub window_days: u32,
    /// Newest signals kept per user.
    pub max_signals: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            as_of_day: 0,
            top: 10,
            threshold: 1.0,
            window_days: 30,
            max_signals: 200,
        }
    }
}

/// What a push run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PushReport {
    /// Users seen in the log window.
    pub users: u64,
    /// Users who got a line.
    pub pushed: u64,
    /// Items pushed in all.
    pub items: u64,
    /// Events read.
    pub events_read: u64,
    /// Signals kept in memory at the peak.
    pub signals_kept: u64,
    /// Seconds reading the log.
    pub read_s: f64,
    /// Seconds ranking and writing.
    pub rank_s: f64,
    /// Users ranked per second (ranking and writing only).
    pub users_per_s: f64,
    /// Bad rows skipped.
    pub bad_rows: usize,
}

#[derive(Clone, Copy)]
struct Sig {
    item: u32,
    event: u8,
    /// Seconds before as-of.
    age: u32,
}

#[derive(Serialize)]
struct Line<'a> {
    user: &'a str,
    items: Vec<PushItem<'a>>,
}

#[derive(Serialize)]
struct PushItem<'a> {
    id: &'a str,
    score: f32,
    reason: String,
}

/// Reads `data`'s `events` (and `users` for babies, when present), ranks
/// `specials` for every user with signals, and writes JSON lines to `out`.
pub fn push(
    data: &Path,
    rec: &Recommender,
    specials: &[String],
    opts: &PushOptions,
    policy: BadRowPolicy,
    out: &mut dyn Write,
) -> Result<PushReport> {
    let mut bad = BadRows::new(policy);
    let table = Table::open(data, "events")?;
    let mut report = push_from(data, rec, specials, opts, policy, out, |f| {
        for_each_event(table, &mut bad, f)
    })?;
    report.bad_rows = bad.rows().len();
    Ok(report)
}

/// [`push`], with the events (at least those of the window, in any order)
/// given by `events`; `data` still gives the babies.
pub fn push_from(
    data: &Path,
    rec: &Recommender,
    specials: &[String],
    opts: &PushOptions,
    policy: BadRowPolicy,
    out: &mut dyn Write,
    events: impl FnOnce(&mut dyn FnMut(&str, &str, Event, i64)) -> Result<()>,
) -> Result<PushReport> {
    let t = std::time::Instant::now();
    let model = rec.model();
    let cutoff = i64::from(opts.as_of_day) * DAY;
    let window_start = cutoff - i64::from(opts.window_days) * DAY;

    // 1. Stream the log into per-user newest signals.
    let mut user_ids: HashMap<String, u32> = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    let mut signals: Vec<Vec<Sig>> = Vec::new();
    // Every item each user bought in the window, with the age of the newest
    // purchase: a push skips them all, not only those among the newest
    // `max_signals` signals, unless the model says a re-buy is due.
    let mut bought: Vec<HashMap<u32, u32>> = Vec::new();
    let mut events_read = 0u64;
    let cap = opts.max_signals.max(1);
    events(&mut |user, item, event, ts| {
        events_read += 1;
        if ts < window_start || ts >= cutoff {
            return;
        }
        let Some(item) = model.index_of(item) else {
            return; // an item the blob does not know cannot move a special
        };
        let u = match user_ids.get(user) {
            Some(&u) => u,
            None => {
                let u = names.len() as u32;
                user_ids.insert(user.to_string(), u);
                names.push(user.to_string());
                signals.push(Vec::new());
                bought.push(HashMap::new());
                u
            }
        };
        let age = (cutoff - ts) as u32;
        if event == Event::Purchase {
            let newest = bought[u as usize].entry(item).or_insert(age);
            *newest = (*newest).min(age);
        }
        let list = &mut signals[u as usize];
        list.push(Sig {
            item,
            event: event as u8,
            age,
        });
        // Keep the newest `cap` (the log is in any order: sort by age when trimming).
        if list.len() >= 2 * cap {
            list.sort_by_key(|s| s.age);
            list.truncate(cap);
        }
    })?;
    let mut kept = 0u64;
    for list in &mut signals {
        // Oldest first; signals at one time in a fixed order.
        list.sort_unstable_by_key(|s| (std::cmp::Reverse(s.age), s.item, s.event));
        if list.len() > cap {
            list.drain(..list.len() - cap);
        }
        list.shrink_to_fit();
        kept += list.len() as u64;
    }
    drop(user_ids);
    let babies = read_babies(data, policy)?;
    let read_s = t.elapsed().as_secs_f64();

    // 2. The anonymous page: the baseline of the confidence test.
    let t = std::time::Instant::now();
    let now = cutoff as f64;
    let cand_ids: Vec<&str> = specials.iter().map(String::as_str).collect();
    // Specials the model does not know get indices past its table, named
    // for the rules (a pin or a sold-out id still applies to them).
    let n = model.item_count() as u32;
    let mut new_ids: Vec<&str> = Vec::new();
    let candidates: Vec<u32> = cand_ids
        .iter()
        .map(|id| {
            model.index_of(id).unwrap_or_else(|| {
                new_ids.push(id);
                n + new_ids.len() as u32 - 1
            })
        })
        .collect();
    let mut anon = rec.clone();
    let r = anon.rerank_indices_with_new_ids(&candidates, Signals::EMPTY, now, false, &new_ids)?;
    let mut base = vec![0f32; candidates.len()];
    for (k, &p) in r.order.iter().enumerate() {
        base[p as usize] = r.scores[k];
    }
    let mean = base.iter().sum::<f32>() / base.len().max(1) as f32;
    let sd = (base.iter().map(|b| (b - mean) * (b - mean)).sum::<f32>() / base.len().max(1) as f32)
        .sqrt()
        .max(1e-6);
    let min_lift = opts.threshold * sd;

    // 3. Rank users in parallel, chunk by chunk, and write them in order.
    let mut report = PushReport {
        users: names.len() as u64,
        events_read,
        signals_kept: kept,
        read_s,
        ..PushReport::default()
    };
    const CHUNK: usize = 4_096;
    // By user id: the same lines in the same order whatever the order of
    // the log's rows.
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_unstable_by(|&a, &b| names[a].as_bytes().cmp(names[b].as_bytes()));
    for chunk in order.chunks(CHUNK) {
        let lines: Vec<Option<(String, usize)>> = chunk
            .par_iter()
            .map_init(
                || (rec.clone(), Vec::new(), Vec::new(), Vec::new()),
                |(rec, items, events, times), &u| {
                    let list = &signals[u];
                    items.clear();
                    events.clear();
                    times.clear();
                    for s in list {
                        items.push(s.item);
                        events.push(s.event);
                        times.push(now - f64::from(s.age));
                    }
                    let profile = babies.get(names[u].as_str()).and_then(|&(birth, gender)| {
                        birth.map(|b| Profile {
                            birth_day: Some(b),
                            gender,
                            affinities: Default::default(),
                            as_of_day: 0,
                            embedding: None,
                            rebuys: Default::default(),
                        })
                    });
                    let sig = Signals::new(items, events, times)
                        .expect("equal lengths")
                        .with_profile(profile.as_ref());
                    rec.set_user_key(&names[u]);
                    rec.rerank_indices_with_new_ids(&candidates, sig, now, true, &new_ids)
                        .ok()?;
                    let ranking = rec.last_ranking();
                    let mut picked = Vec::new();
                    for (k, &p) in ranking.order.iter().enumerate() {
                        if picked.len() >= opts.top {
                            break;
                        }
                        let index = candidates[p as usize];
                        if !rebuy_allowed(model, &bought[u], index)
                            || ranking.scores[k] - base[p as usize] < min_lift
                        {
                            continue;
                        }
                        picked.push(PushItem {
                            id: cand_ids[p as usize],
                            score: ranking.scores[k],
                            reason: rec.reason_text(&ranking.reasons[k], ranking.rules.get(k)),
                        });
                    }
                    if picked.is_empty() {
                        return None;
                    }
                    let count = picked.len();
                    let line = Line {
                        user: &names[u],
                        items: picked,
                    };
                    serde_json::to_string(&line).ok().map(|l| (l, count))
                },
            )
            .collect();
        for (line, count) in lines.into_iter().flatten() {
            report.pushed += 1;
            report.items += count as u64;
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    report.rank_s = t.elapsed().as_secs_f64();
    report.users_per_s = report.users as f64 / report.rank_s.max(1e-9);
    Ok(report)
}

/// Whether `item` may be pushed to a user who bought `bought` (item ->
/// seconds since the newest purchase): never bought in the window, or a
/// re-buy that the model's replenishment says is due.
fn rebuy_allowed(model: &nestrank::Model, bought: &HashMap<u32, u32>, item: u32) -> bool {
    let Some(&age) = bought.get(&item) else {
        return true;
    };
    let cat = model.category_of(item);
    model.family().is_some_and(|fam| {
        cat != nestrank::model::NO_CATEGORY && fam.restock(cat, f64::from(age) / DAY as f64) > 0
    })
}

/// The `users` table's babies by user id, when the table is there.
fn read_babies(
    data: &Path,
    policy: BadRowPolicy,
) -> Result<HashMap<String, (Option<i32>, Gender)>> {
    let Some(users) = Table::find(data, "users")? else {
        return Ok(HashMap::new());
    };
    let path = users.path().to_path_buf();
    let mut ds = crate::data::Dataset::default();
    ds.read_users(users, policy)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(ds
        .babies
        .iter()
        .map(|(&u, &v)| (ds.users.name(u).to_string(), v))
        .collect())
}

/// The day's specials from the `items` table's `sale_start` and `sale_end`
/// columns (YYYY-MM-DD, inclusive): every item on sale on `day`. An error
/// when the table or the columns are missing (then give `--specials`).
pub fn specials_on_sale(data: &Path, day: i32, policy: BadRowPolicy) -> Result<Vec<String>> {
    let mut csv = Table::open(data, "items").context("no --specials given")?;
    let (c_item, c_start, c_end) = (
        csv.require("item_id")?,
        csv.require("sale_start")
            .context("no --specials given: items.csv needs sale_start and sale_end")?,
        csv.require("sale_end")
            .context("no --specials given: items.csv needs sale_start and sale_end")?,
    );
    let mut bad = BadRows::new(policy);
    let mut out = Vec::new();
    csv.for_each_row(&mut bad, |row, f| {
        let date = |c: usize, name: &str| {
            nestrank::calendar::parse_date(f[c].trim())
                .ok_or_else(|| row.bad(name, format!("`{}` is not a date YYYY-MM-DD", f[c])))
        };
        let item = parse_id(f[c_item]).map_err(|p| row.bad("item_id", p))?;
        if f[c_start].trim().is_empty() {
            return Ok(()); // not a special
        }
        if date(c_start, "sale_start")? <= day && day <= date(c_end, "sale_end")? {
            out.push(item.to_string());
        }
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nestrank::model::{FamilySection, DURABLE};

    /// `tiny_model`'s category 0 restocks every 10 days, category 1 is durable.
    fn model() -> nestrank::Model {
        let mut parts = nestrank::testing::tiny_model();
        let n = parts.items.ids.len();
        parts.family = Some(FamilySection {
            brand: vec![nestrank::model::NO_CATEGORY; n],
            gender: vec![0; n],
            edges: nestrank::stage::EDGES.to_vec(),
            price: vec![0.0; n],
            restock_days: vec![10.0, DURABLE],
            ..FamilySection::default()
        });
        nestrank::Model::from_bytes(&parts.to_bytes()).expect("the test model loads")
    }

    #[test]
    fn bought_items_wait_until_a_rebuy_is_due() {
        let model = model();
        let day = DAY as u32;
        let bought: HashMap<u32, u32> = [(0, 3 * day), (1, 9 * day), (2, 30 * day)].into();
        // Item 0 (restocks every 10 days) bought 3 days ago: stocked.
        assert!(!rebuy_allowed(&model, &bought, 0));
        // Item 1, same category, bought 9 days ago: due.
        assert!(rebuy_allowed(&model, &bought, 1));
        // Item 2 is durable: never again, however long ago.
        assert!(!rebuy_allowed(&model, &bought, 2));
        // Item 3 was not bought.
        assert!(rebuy_allowed(&model, &bought, 3));
    }
}
