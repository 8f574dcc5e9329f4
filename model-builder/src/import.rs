//! Converters from public datasets to the canonical schema of EVAL.md.

use crate::data::{csv_bad, parse_id, parse_ts, BadRowPolicy, BadRows, CsvFile};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
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

/// Writes `path` through a temporary file renamed into place, so a failed
/// import never leaves half a file under the final name.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut w = std::io::BufWriter::new(file);
        write(&mut w)?;
        let file = w.into_inner().context("flush failed")?;
        file.sync_all()
            .with_context(|| format!("cannot sync {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
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
