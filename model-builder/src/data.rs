//! The canonical data directory of EVAL.md: `events.csv`, optional
//! `items.csv` and `users.csv`, read with every bad row reported by file,
//! line and column.

use anyhow::{bail, Context, Result};
use nestrank::Event;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Strings to dense ids, in first-seen order.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    map: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    /// The id of `name`, added if new.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.map.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.map.insert(name.to_string(), id);
        self.names.push(name.to_string());
        id
    }

    /// The id of `name`, if known.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.map.get(name).copied()
    }

    /// The name of id `id`.
    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// The number of names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// One event of `events.csv`, with interned user and item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ev {
    /// Interned user.
    pub user: u32,
    /// Interned item.
    pub item: u32,
    /// What happened.
    pub event: Event,
    /// Unix seconds.
    pub ts: i64,
}

/// A row that could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// The file.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: u64,
    /// The column name, where one column is at fault.
    pub column: Option<String>,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)?;
        if let Some(c) = &self.column {
            write!(f, ": column `{c}`")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// How many bad rows a run tolerates before it fails.
#[derive(Debug, Clone, Copy)]
pub struct BadRowPolicy {
    /// The most bad rows accepted (each is still reported).
    pub max_bad_rows: u64,
}

/// Collects bad rows, prints each to stderr, and fails past the policy's limit.
#[derive(Debug)]
pub struct BadRows {
    policy: BadRowPolicy,
    rows: Vec<BadRow>,
}

impl BadRows {
    /// An empty collector.
    pub fn new(policy: BadRowPolicy) -> Self {
        BadRows {
            policy,
            rows: Vec::new(),
        }
    }

    /// Records one bad row; an error once the limit is passed.
    pub fn push(&mut self, row: BadRow) -> Result<()> {
        eprintln!("warning: skipped bad row: {row}");
        self.rows.push(row);
        if self.rows.len() as u64 > self.policy.max_bad_rows {
            bail!(
                "{} bad row(s), more than --max-bad-rows {} allows; the first: {}",
                self.rows.len(),
                self.policy.max_bad_rows,
                self.rows[0]
            );
        }
        Ok(())
    }

    /// The rows recorded.
    pub fn rows(&self) -> &[BadRow] {
        &self.rows
    }
}

/// A CSV file with a header, read row by row with its columns found by name.
pub struct CsvFile {
    path: PathBuf,
    reader: csv::Reader<Box<dyn std::io::Read>>,
    header: Vec<String>,
}

impl CsvFile {
    /// Opens `path` and reads its header (which must be present and have no
    /// duplicate names).
    pub fn open(path: &Path) -> Result<Self> {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Self::from_reader(path, Box::new(std::io::BufReader::new(file)))
    }

    /// Reads CSV from `source`, named `path` in every message.
    pub fn from_reader(path: &Path, source: Box<dyn std::io::Read>) -> Result<Self> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(source);
        let mut record = csv::ByteRecord::new();
        if !reader
            .read_byte_record(&mut record)
            .with_context(|| format!("{}:1: cannot read the header", path.display()))?
        {
            bail!("{}: empty file, a header line is required", path.display());
        }
        let mut header = Vec::new();
        for field in record.iter() {
            let name = std::str::from_utf8(field)
                .with_context(|| format!("{}:1: header is not UTF-8", path.display()))?
                .trim()
                .trim_start_matches('\u{feff}')
                .to_string();
            if header.contains(&name) {
                bail!("{}:1: duplicate column `{name}` in header", path.display());
            }
            header.push(name);
        }
        Ok(CsvFile {
            path: path.to_path_buf(),
            reader,
            header,
        })
    }

    /// The index of column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// The index of required column `name`, or an error naming the file.
    pub fn require(&self, name: &str) -> Result<usize> {
        self.column(name).with_context(|| {
            format!(
                "{}:1: required column `{name}` is missing (header: {})",
                self.path.display(),
                self.header.join(",")
            )
        })
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Calls `f(line, fields)` for each data row; rows that are not UTF-8
    /// or have too few fields go to `bad`. `f` returns `Err(BadRow)` to
    /// reject a row.
    pub fn for_each_row(
        &mut self,
        bad: &mut BadRows,
        mut f: impl FnMut(u64, &[&str]) -> std::result::Result<(), BadRow>,
    ) -> Result<()> {
        let mut record = csv::ByteRecord::new();
        let path = self.path.clone();
        loop {
            let line = self.reader.position().line();
            match self.reader.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    bad.push(BadRow {
                        file: path.clone(),
                        line,
                        column: None,
                        problem: format!("unreadable CSV: {e}"),
                    })?;
                    continue;
                }
            }
            let line = record.position().map_or(line, |p| p.line());
            if record.len() == 1 && record.get(0) == Some(b"") {
                continue; // a blank line
            }
            let mut fields: Vec<&str> = Vec::with_capacity(self.header.len());
            let mut problem = None;
            for (k, field) in record.iter().enumerate() {
                match std::str::from_utf8(field) {
                    Ok(s) => fields.push(s),
                    Err(_) => {
                        problem = Some(BadRow {
                            file: path.clone(),
                            line,
                            column: self.header.get(k).cloned(),
                            problem: "not valid UTF-8".into(),
                        });
                        break;
                    }
                }
            }
            if problem.is_none() && fields.len() < self.header.len() {
                problem = Some(BadRow {
                    file: path.clone(),
                    line,
                    column: self.header.get(fields.len()).cloned(),
                    problem: format!(
                        "{} field(s) where the header has {}",
                        fields.len(),
                        self.header.len()
                    ),
                });
            }
            let result = match problem {
                Some(p) => Err(p),
                None => f(line, &fields),
            };
            if let Err(row) = result {
                bad.push(row)?;
            }
        }
        Ok(())
    }
}

/// A data directory, loaded.
#[derive(Debug, Default)]
pub struct Dataset {
    /// Users.
    pub users: Interner,
    /// Items (from events and the catalog).
    pub items: Interner,
    /// Categories.
    pub categories: Interner,
    /// Category per interned item, `u32::MAX` when unknown.
    pub item_category: Vec<u32>,
    /// Whether each interned item is listed in `items.csv` (the shop's catalog).
    pub in_catalog: Vec<bool>,
    /// Per interned item, what `items.csv` says beyond the category.
    pub attrs: Vec<ItemAttrs>,
    /// Top-level categories (`top_category`).
    pub tops: Interner,
    /// Brands (`brand`).
    pub brands: Interner,
    /// Per interned user with a row in `users.csv`: birthday or due date
    /// (days since 1970) and gender.
    pub babies: std::collections::HashMap<u32, (Option<i32>, nestrank::profile::Gender)>,
    /// Events, sorted by time (stable: equal times keep file order).
    pub events: Vec<Ev>,
    /// Bad rows skipped (each was reported).
    pub bad_rows: usize,
}

/// What `items.csv` may say of an item beyond its category.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ItemAttrs {
    /// Interned top category, `u32::MAX` when unknown.
    pub top: u32,
    /// Interned brand, `u32::MAX` when unknown.
    pub brand: u32,
    /// Price, NaN when unknown.
    pub price: f32,
    /// Suitable ages in months (negative: pregnancy), when given.
    pub age: Option<(i16, i16)>,
    /// Who it is for: 0 anyone, 1 girls, 2 boys.
    pub gender: u8,
}

impl Default for ItemAttrs {
    fn default() -> Self {
        ItemAttrs {
            top: u32::MAX,
            brand: u32::MAX,
            price: f32::NAN,
            age: None,
            gender: 0,
        }
    }
}

/// Parses an item or user id field: non-empty, at most 256 bytes, trimmed.
pub fn parse_id(raw: &str) -> std::result::Result<&str, String> {
    let id = raw.trim();
    if id.is_empty() {
        return Err("empty id".into());
    }
    if id.len() > nestrank::model::MAX_ID_BYTES {
        return Err(format!(
            "id of {} bytes, over the {}-byte limit",
            id.len(),
            nestrank::model::MAX_ID_BYTES
        ));
    }
    Ok(id)
}

/// Parses Unix seconds: an integer in 1970..=2100.
pub fn parse_ts(raw: &str) -> std::result::Result<i64, String> {
    let ts: i64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("timestamp `{raw}` is not an integer number of Unix seconds"))?;
    if !(0..=4_102_444_800).contains(&ts) {
        return Err(format!("timestamp {ts} is outside 1970..2100"));
    }
    Ok(ts)
}

impl Dataset {
    /// Loads `dir/events.csv` and, where present, `dir/items.csv`.
    pub fn load(dir: &Path, policy: BadRowPolicy) -> Result<Self> {
        let items_path = dir.join("items.csv");
        let items = if items_path.exists() {
            Some(CsvFile::open(&items_path)?)
        } else {
            None
        };
        let mut ds = Self::from_csv(items, CsvFile::open(&dir.join("events.csv"))?, policy)?;
        let users_path = dir.join("users.csv");
        if users_path.exists() {
            ds.read_users(CsvFile::open(&users_path)?, policy)?;
        }
        Ok(ds)
    }

    /// Reads `users.csv`: `user_id`, `baby_birthday` (YYYY-MM-DD, a future
    /// day for a due date; empty when unknown), `baby_gender` (F/M/girl/boy,
    /// empty when unknown).
    pub fn read_users(&mut self, mut csv: CsvFile, policy: BadRowPolicy) -> Result<()> {
        let mut bad = BadRows::new(policy);
        let path = csv.path().to_path_buf();
        let c_user = csv.require("user_id")?;
        let (c_birth, c_gender) = (csv.column("baby_birthday"), csv.column("baby_gender"));
        let mut rows = Vec::new();
        csv.for_each_row(&mut bad, |line, f| {
            let at = |column: &str, p: String| csv_bad(&path, line, column, p);
            let user = parse_id(f[c_user]).map_err(|p| at("user_id", p))?;
            let birth = match c_birth.map(|c| f[c].trim()) {
                Some(v) if !v.is_empty() => {
                    Some(nestrank::util::parse_date(v).ok_or_else(|| {
                        at("baby_birthday", format!("`{v}` is not a date YYYY-MM-DD"))
                    })?)
                }
                _ => None,
            };
            let gender = match c_gender.map(|c| f[c].trim()) {
                None => nestrank::profile::Gender::Unknown,
                Some(v) => nestrank::profile::Gender::parse(v).ok_or_else(|| {
                    at(
                        "baby_gender",
                        format!("gender `{v}` is not F, M, girl, boy or empty"),
                    )
                })?,
            };
            rows.push((user.to_string(), birth, gender));
            Ok(())
        })?;
        for (user, birth, gender) in rows {
            let u = self.users.intern(&user);
            self.babies.insert(u, (birth, gender));
        }
        self.bad_rows += bad.rows().len();
        Ok(())
    }

    /// Loads from an open `items.csv` (optional) and `events.csv`.
    pub fn from_csv(items: Option<CsvFile>, events: CsvFile, policy: BadRowPolicy) -> Result<Self> {
        let mut ds = Dataset::default();
        let mut bad = BadRows::new(policy);
        if let Some(mut csv) = items {
            let items_path = csv.path().to_path_buf();
            let c_item = csv.require("item_id")?;
            let col = |name: &str| csv.column(name);
            let (c_cat, c_top, c_brand, c_price, c_min, c_max, c_gender) = (
                col("category"),
                col("top_category"),
                col("brand"),
                col("price"),
                col("age_min_months"),
                col("age_max_months"),
                col("gender"),
            );
            type Row = (
                String,
                Option<String>,
                Option<String>,
                Option<String>,
                f32,
                Option<(i16, i16)>,
                u8,
            );
            let mut rows: Vec<Row> = Vec::new();
            csv.for_each_row(&mut bad, |line, f| {
                let at = |column: &str, p: String| csv_bad(&items_path, line, column, p);
                let item = parse_id(f[c_item]).map_err(|p| at("item_id", p))?;
                let text =
                    |c: Option<usize>, name: &str| -> std::result::Result<Option<String>, BadRow> {
                        match c.map(|c| f[c].trim()) {
                            Some(v) if !v.is_empty() => {
                                Ok(Some(parse_id(v).map_err(|p| at(name, p))?.to_string()))
                            }
                            _ => Ok(None),
                        }
                    };
                let price = match c_price.map(|c| f[c].trim()) {
                    Some(v) if !v.is_empty() => match v.parse::<f32>() {
                        Ok(p) if p.is_finite() && p >= 0.0 => p,
                        _ => {
                            return Err(at(
                                "price",
                                format!("price `{v}` is not a non-negative number"),
                            ))
                        }
                    },
                    _ => f32::NAN,
                };
                let month =
                    |c: Option<usize>, name: &str| -> std::result::Result<Option<i16>, BadRow> {
                        match c.map(|c| f[c].trim()) {
                            Some(v) if !v.is_empty() => match v.parse::<i16>() {
                                Ok(m) if (-10..=240).contains(&m) => Ok(Some(m)),
                                _ => Err(at(
                                    name,
                                    format!("`{v}` is not a month of age in -10..=240"),
                                )),
                            },
                            _ => Ok(None),
                        }
                    };
                let age = match (
                    month(c_min, "age_min_months")?,
                    month(c_max, "age_max_months")?,
                ) {
                    (Some(lo), Some(hi)) if lo <= hi => Some((lo, hi)),
                    (Some(lo), Some(hi)) => {
                        return Err(at(
                            "age_max_months",
                            format!("{hi} is below age_min_months {lo}"),
                        ))
                    }
                    (Some(lo), None) => Some((lo, 240)),
                    (None, Some(hi)) => Some((-10, hi)),
                    (None, None) => None,
                };
                let gender = match c_gender.map(|c| f[c].trim()) {
                    None | Some("" | "any" | "unisex") => 0,
                    Some("girl" | "F") => 1,
                    Some("boy" | "M") => 2,
                    Some(other) => {
                        return Err(at(
                            "gender",
                            format!("gender `{other}` is not any, girl or boy"),
                        ))
                    }
                };
                rows.push((
                    item.to_string(),
                    text(c_cat, "category")?,
                    text(c_top, "top_category")?,
                    text(c_brand, "brand")?,
                    price,
                    age,
                    gender,
                ));
                Ok(())
            })?;
            for (item, cat, top, brand, price, age, gender) in rows {
                let i = ds.items.intern(&item) as usize;
                if ds.item_category.len() <= i {
                    ds.item_category.resize(i + 1, u32::MAX);
                    ds.in_catalog.resize(i + 1, false);
                    ds.attrs.resize(i + 1, ItemAttrs::default());
                }
                ds.in_catalog[i] = true;
                if let Some(c) = cat {
                    ds.item_category[i] = ds.categories.intern(&c);
                }
                ds.attrs[i] = ItemAttrs {
                    top: top.map_or(u32::MAX, |t| ds.tops.intern(&t)),
                    brand: brand.map_or(u32::MAX, |b| ds.brands.intern(&b)),
                    price,
                    age,
                    gender,
                };
            }
        }
        let mut csv = events;
        let events_path = csv.path().to_path_buf();
        let (c_user, c_item, c_event, c_ts) = (
            csv.require("user_id")?,
            csv.require("item_id")?,
            csv.require("event")?,
            csv.require("ts")?,
        );
        let Dataset {
            users,
            items,
            events,
            ..
        } = &mut ds;
        csv.for_each_row(&mut bad, |line, f| {
            let user =
                parse_id(f[c_user]).map_err(|p| csv_bad(&events_path, line, "user_id", p))?;
            let item =
                parse_id(f[c_item]).map_err(|p| csv_bad(&events_path, line, "item_id", p))?;
            let event = Event::from_name(f[c_event].trim()).ok_or_else(|| {
                csv_bad(
                    &events_path,
                    line,
                    "event",
                    format!(
                        "unknown event `{}` (expected view, fav, cart or purchase)",
                        f[c_event]
                    ),
                )
            })?;
            let ts = parse_ts(f[c_ts]).map_err(|p| csv_bad(&events_path, line, "ts", p))?;
            events.push(Ev {
                user: users.intern(user),
                item: items.intern(item),
                event,
                ts,
            });
            Ok(())
        })?;
        ds.item_category.resize(ds.items.len(), u32::MAX);
        ds.in_catalog.resize(ds.items.len(), false);
        ds.attrs.resize(ds.items.len(), ItemAttrs::default());
        ds.events.sort_by_key(|e| e.ts);
        ds.bad_rows = bad.rows().len();
        Ok(ds)
    }
}

/// A bad row of `path` at `line`, in `column`.
pub fn csv_bad(path: &Path, line: u64, column: &str, problem: String) -> BadRow {
    BadRow {
        file: path.to_path_buf(),
        line,
        column: Some(column.to_string()),
        problem,
    }
}
