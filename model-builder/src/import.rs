//! Converters from public datasets to the canonical schema of EVAL.md.

use crate::options::DAY;
use crate::publish::write_atomically;
use crate::rows::{csv_bad, parse_id, parse_ts, BadRowPolicy, BadRows, CsvFile};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// What an import wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// Events written.
    pub events: u64,
    /// Items written to `items.csv`.
    pub items: u64,
    /// Bad rows skipped (each reported).
    pub bad_rows: u64,
}

/// Converts Tianchi's UserBehavior CSV (`user_id,item_id,category_id,behavior,ts`,
/// behaviours `pv`, `fav`, `cart`, `buy`) into `events.csv` and `items.csv`.
pub fn taobao(input: &Path, out: &Path, policy: BadRowPolicy) -> Result<ImportSummary> {
    let mut csv = CsvFile::open(input)?;
    let cols = (
        csv.require("user_id")?,
        csv.require("item_id")?,
        csv.require("category_id")?,
        csv.require("behavior")?,
        csv.require("ts")?,
    );
    let (c_user, c_item, c_cat, c_beh, c_ts) = cols;
    let mut bad = BadRows::new(policy);
    let mut rows: Vec<(String, String, &'static str, i64)> = Vec::new();
    let mut categories: BTreeMap<String, String> = BTreeMap::new();
    let path = csv.path().to_path_buf();
    let bad_at = |line: u64, column: &str, problem: String| csv_bad(&path, line, column, problem);
    csv.for_each_row(&mut bad, |line, f| {
        let user = parse_id(f[c_user]).map_err(|p| bad_at(line, "user_id", p))?;
        let item = parse_id(f[c_item]).map_err(|p| bad_at(line, "item_id", p))?;
        let cat = parse_id(f[c_cat]).map_err(|p| bad_at(line, "category_id", p))?;
        let event = match f[c_beh].trim() {
            "pv" => "view",
            "fav" => "fav",
            "cart" => "cart",
            "buy" => "purchase",
            other => {
                return Err(bad_at(
                    line,
                    "behavior",
                    format!("unknown behavior `{other}` (expected pv, fav, cart or buy)"),
                ))
            }
        };
        let ts = parse_ts(f[c_ts]).map_err(|p| bad_at(line, "ts", p))?;
        categories
            .entry(item.to_string())
            .or_insert_with(|| cat.to_string());
        rows.push((user.to_string(), item.to_string(), event, ts));
        Ok(())
    })?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    write_atomically(&out.join("events.csv"), |w| {
        let mut cw = csv::Writer::from_writer(w);
        cw.write_record(["user_id", "item_id", "event", "ts"])?;
        for (u, i, e, t) in &rows {
            cw.write_record([u.as_str(), i.as_str(), e, t.to_string().as_str()])?;
        }
        cw.flush()?;
        Ok(())
    })?;
    write_atomically(&out.join("items.csv"), |w| {
        let mut cw = csv::Writer::from_writer(w);
        cw.write_record(["item_id", "category"])?;
        for (i, c) in &categories {
            cw.write_record([i, c])?;
        }
        cw.flush()?;
        Ok(())
    })?;
    Ok(ImportSummary {
        events: rows.len() as u64,
        items: categories.len() as u64,
        bad_rows: bad.rows().len() as u64,
    })
}

/// Parses a Tianchi date `YYYYMMDD` into days since 1970-01-01.
fn tianchi_day(raw: &str) -> std::result::Result<i32, String> {
    let t = raw.trim();
    let bad = || format!("date `{raw}` is not YYYYMMDD");
    if t.len() != 8 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (y, m, d) = (&t[..4], &t[4..6], &t[6..]);
    nestrank::calendar::days_from_civil(
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    )
    .ok_or_else(bad)
}

/// Converts Tianchi's "Mum Baby" sample (dataset 45) in `dir`:
/// `sam_tianchi_mum_baby.csv` (`user_id,birthday,gender`: YYYYMMDD; 0 girl,
/// 1 boy, 2 unknown) and `sam_tianchi_mum_baby_trade_history.csv`
/// (`user_id,auction_id,category_1,category_2,buy_mount,day`) into
/// `users.csv` (`baby_birthday`, `baby_gender`), `events.csv` (one
/// `purchase` per trade, at noon UTC of its day) and `items.csv`
/// (`category` = the leaf `category_1`, `top_category` = `category_2`).
pub fn tianchi_mum_baby(dir: &Path, out: &Path, policy: BadRowPolicy) -> Result<ImportSummary> {
    let mut bad = BadRows::new(policy);
    let babies_path = dir.join("sam_tianchi_mum_baby.csv");
    let mut csv = CsvFile::open(&babies_path)?;
    let (c_user, c_birth, c_gender) = (
        csv.require("user_id")?,
        csv.require("birthday")?,
        csv.require("gender")?,
    );
    let mut users: BTreeMap<String, (String, &'static str)> = BTreeMap::new();
    csv.for_each_row(&mut bad, |line, f| {
        let at = |column: &str, p: String| csv_bad(&babies_path, line, column, p);
        let user = parse_id(f[c_user]).map_err(|p| at("user_id", p))?;
        let day = tianchi_day(f[c_birth]).map_err(|p| at("birthday", p))?;
        let gender = match f[c_gender].trim() {
            "0" => "F",
            "1" => "M",
            "2" => "",
            other => return Err(at("gender", format!("gender `{other}` is not 0, 1 or 2"))),
        };
        users.insert(
            user.to_string(),
            (nestrank::calendar::format_date(day), gender),
        );
        Ok(())
    })?;
    let trades_path = dir.join("sam_tianchi_mum_baby_trade_history.csv");
    let mut csv = CsvFile::open(&trades_path)?;
    let cols = (
        csv.require("user_id")?,
        csv.require("auction_id")?,
        csv.require("category_1")?,
        csv.require("category_2")?,
        csv.require("day")?,
    );
    let (c_user, c_item, c_leaf, c_top, c_day) = cols;
    let mut rows: Vec<(String, String, i64)> = Vec::new();
    let mut items: BTreeMap<String, (String, String)> = BTreeMap::new();
    csv.for_each_row(&mut bad, |line, f| {
        let at = |column: &str, p: String| csv_bad(&trades_path, line, column, p);
        let user = parse_id(f[c_user]).map_err(|p| at("user_id", p))?;
        let item = parse_id(f[c_item]).map_err(|p| at("auction_id", p))?;
        let leaf = parse_id(f[c_leaf]).map_err(|p| at("category_1", p))?;
        let top = parse_id(f[c_top]).map_err(|p| at("category_2", p))?;
        let day = tianchi_day(f[c_day]).map_err(|p| at("day", p))?;
        items
            .entry(item.to_string())
            .or_insert_with(|| (leaf.to_string(), top.to_string()));
        rows.push((
            user.to_string(),
            item.to_string(),
            i64::from(day) * DAY + 43_200,
        ));
        Ok(())
    })?;
    rows.sort_by_key(|r| r.2);
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    write_atomically(&out.join("users.csv"), |w| {
        let mut cw = csv::Writer::from_writer(w);
        cw.write_record(["user_id", "baby_birthday", "baby_gender"])?;
        for (u, (b, g)) in &users {
            cw.write_record([u.as_str(), b.as_str(), g])?;
        }
        cw.flush()?;
        Ok(())
    })?;
    write_atomically(&out.join("events.csv"), |w| {
        let mut cw = csv::Writer::from_writer(w);
        cw.write_record(["user_id", "item_id", "event", "ts"])?;
        for (u, i, t) in &rows {
            cw.write_record([u.as_str(), i.as_str(), "purchase", t.to_string().as_str()])?;
        }
        cw.flush()?;
        Ok(())
    })?;
    write_atomically(&out.join("items.csv"), |w| {
        let mut cw = csv::Writer::from_writer(w);
        cw.write_record(["item_id", "category", "top_category"])?;
        for (i, (leaf, top)) in &items {
            cw.write_record([i, leaf, top])?;
        }
        cw.flush()?;
        Ok(())
    })?;
    Ok(ImportSummary {
        events: rows.len() as u64,
        items: items.len() as u64,
        bad_rows: bad.rows().len() as u64,
    })
}
