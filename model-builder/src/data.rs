//! The canonical data directory of EVAL.md: `events`, optional `items`
//! and `users`, each as CSV or Parquet ([`crate::rows`]), read with every
//! bad row reported by file, line (or row) and column.
//!
//! A loaded [`Dataset`] does not depend on how the rows were laid out:
//! users and items are numbered in the order of their ids, and events are
//! sorted by time, then user, item and event. So the same rows give the same
//! model whether they come as one CSV file or as day partitions of Parquet.

use crate::rows::{parse_id, parse_ts, At, BadRow, BadRowPolicy, BadRows, CsvFile, Table};
use anyhow::Result;
use nestrank::Event;
use std::path::Path;

/// Strings to dense ids, in first-seen order.
///
/// Each name is kept once, in one buffer, and found through a table of
/// ids hashed by name: about 25 bytes a short id, where a map of owned
/// strings beside a list of them took about 130 (an engine build of a
/// 100 M-event log holds 1.9 M users' ids).
#[derive(Debug, Default, Clone)]
pub struct Interner {
    /// Every name, one after another.
    text: String,
    /// Where each name ends in `text` (it starts where the one before
    /// ends).
    ends: Vec<usize>,
    /// The ids, by their names' hash.
    ids: hashbrown::HashTable<u32>,
    hasher: std::hash::RandomState,
}

impl Interner {
    fn hash(&self, name: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, name)
    }

    /// The id of `name`, added if new.
    pub fn intern(&mut self, name: &str) -> u32 {
        let hash = self.hash(name);
        if let Some(&id) = self.ids.find(hash, |&id| self.name(id) == name) {
            return id;
        }
        let id = self.ends.len() as u32;
        self.text.push_str(name);
        self.ends.push(self.text.len());
        let (text, ends, hasher) = (&self.text, &self.ends, &self.hasher);
        self.ids.insert_unique(hash, id, |&id| {
            std::hash::BuildHasher::hash_one(hasher, name_in(text, ends, id))
        });
        id
    }

    /// The id of `name`, if known.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids
            .find(self.hash(name), |&id| self.name(id) == name)
            .copied()
    }

    /// The name of id `id`.
    pub fn name(&self, id: u32) -> &str {
        name_in(&self.text, &self.ends, id)
    }

    /// Renumbers the names in byte order of the names; returns the new id
    /// of every old one.
    pub fn sort(&mut self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.ends.len() as u32).collect();
        order.sort_by(|&a, &b| self.name(a).cmp(self.name(b)));
        let mut new_id = vec![0u32; order.len()];
        for (new, &old) in order.iter().enumerate() {
            new_id[old as usize] = new as u32;
        }
        let mut text = String::with_capacity(self.text.len());
        let mut ends = Vec::with_capacity(self.ends.len());
        for &old in &order {
            text.push_str(self.name(old));
            ends.push(text.len());
        }
        (self.text, self.ends) = (text, ends);
        // A name's hash does not change with its id.
        for id in self.ids.iter_mut() {
            *id = new_id[*id as usize];
        }
        new_id
    }

    /// The number of names.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// Name `id` of a buffer of names and where each ends.
fn name_in<'a>(text: &'a str, ends: &[usize], id: u32) -> &'a str {
    let id = id as usize;
    let start = if id == 0 { 0 } else { ends[id - 1] };
    &text[start..ends[id]]
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

/// How the rows of an `events` table that another reader (the query
/// engine) selects from are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowCheck {
    /// Every row is read and checked, and a bad one reported.
    Read,
    /// The other reader counted every row and found none bad, by the
    /// rules of [`EventColumns::parse`]: only the columns are checked,
    /// and no row is read again.
    CountedClean,
}

impl RowCheck {
    /// Checks `events` this way; bad rows go to `bad`.
    pub fn events(self, events: Table, bad: &mut BadRows) -> Result<()> {
        match self {
            RowCheck::Read => for_each_event(events, bad, |_, _, _, _| {}),
            RowCheck::CountedClean => EventColumns::of(&events).map(|_| ()),
        }
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
    /// Users whose `users.csv` row says `opt_out` (true/yes/1): no nightly
    /// profile or embedding is compiled for them.
    pub opted_out: std::collections::HashSet<u32>,
    /// Events, sorted by time (stable: equal times keep file order).
    pub events: Vec<Ev>,
    /// The time of the log's first event (`events` may hold a selection
    /// of the log: see [`Dataset::load_selected`]).
    pub log_start: Option<i64>,
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

impl Dataset {
    /// Loads `dir`'s `events` and, where present, `items` and `users`.
    pub fn load(dir: &Path, policy: BadRowPolicy) -> Result<Self> {
        let items = Table::find(dir, "items")?;
        let mut ds = Self::read_tables(items, Table::open(dir, "events")?, policy)?;
        if let Some(users) = Table::find(dir, "users")? {
            ds.read_users(users, policy)?;
        }
        ds.canonicalize();
        Ok(ds)
    }

    /// Numbers users and items in the order of their ids, and sorts events
    /// by (time, user, item, event): the same rows in any file order load
    /// alike.
    pub fn canonicalize(&mut self) {
        let users = self.users.sort();
        let items = self.items.sort();
        for e in &mut self.events {
            e.user = users[e.user as usize];
            e.item = items[e.item as usize];
        }
        self.events
            .sort_unstable_by_key(|e| (e.ts, e.user, e.item, e.event as u8));
        permute(&mut self.item_category, &items);
        permute(&mut self.in_catalog, &items);
        permute(&mut self.attrs, &items);
        self.babies = self
            .babies
            .drain()
            .map(|(u, v)| (users[u as usize], v))
            .collect();
        self.opted_out = self.opted_out.drain().map(|u| users[u as usize]).collect();
    }

    /// Reads `users.csv`: `user_id`, `baby_birthday` (YYYY-MM-DD, a future
    /// day for a due date; empty when unknown), `baby_gender` (F/M/girl/boy,
    /// empty when unknown), and optionally `opt_out` (`true`/`yes`/`1`: the
    /// family declined personalization from its history; `false`/`no`/`0`
    /// or empty otherwise).
    pub fn read_users(&mut self, mut csv: Table, policy: BadRowPolicy) -> Result<()> {
        let mut bad = BadRows::new(policy);
        let c_user = csv.require("user_id")?;
        let (c_birth, c_gender) = (csv.column("baby_birthday"), csv.column("baby_gender"));
        let c_opt_out = csv.column("opt_out");
        let mut rows = Vec::new();
        csv.for_each_row(&mut bad, |row, f| {
            let at = |column: &str, p: String| row.bad(column, p);
            let user = parse_id(f[c_user]).map_err(|p| at("user_id", p))?;
            let birth = match c_birth.map(|c| f[c].trim()) {
                Some(v) if !v.is_empty() => {
                    Some(nestrank::calendar::parse_date(v).ok_or_else(|| {
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
            let opt_out = match c_opt_out.map(|c| f[c].trim().to_ascii_lowercase()) {
                None => false,
                Some(v) => match v.as_str() {
                    "true" | "yes" | "1" => true,
                    "false" | "no" | "0" | "" => false,
                    _ => return Err(at("opt_out", format!("`{v}` is not true, false or empty"))),
                },
            };
            rows.push((user.to_string(), birth, gender, opt_out));
            Ok(())
        })?;
        for (user, birth, gender, opt_out) in rows {
            let u = self.users.intern(&user);
            self.babies.insert(u, (birth, gender));
            if opt_out {
                self.opted_out.insert(u);
            }
        }
        self.bad_rows += bad.rows().len();
        Ok(())
    }

    /// Loads from an open `items.csv` (optional) and `events.csv`.
    pub fn from_csv(items: Option<CsvFile>, events: CsvFile, policy: BadRowPolicy) -> Result<Self> {
        Self::from_tables(items.map(Table::Csv), Table::Csv(events), policy)
    }

    /// Loads from an open `items` table (optional) and `events` table.
    pub fn from_tables(items: Option<Table>, events: Table, policy: BadRowPolicy) -> Result<Self> {
        let mut ds = Self::read_tables(items, events, policy)?;
        ds.canonicalize();
        Ok(ds)
    }

    /// [`Dataset::from_tables`] before [`Dataset::canonicalize`].
    fn read_tables(items: Option<Table>, events: Table, policy: BadRowPolicy) -> Result<Self> {
        let mut ds = Dataset::default();
        let mut bad = BadRows::new(policy);
        if let Some(items) = items {
            ds.read_items(items, &mut bad)?;
        }
        ds.add_events(|f| for_each_event(events, &mut bad, f))?;
        ds.bad_rows = bad.rows().len();
        ds.log_start = ds.events.iter().map(|e| e.ts).min();
        Ok(ds)
    }

    /// Loads `dir`'s `items` and `users`, every item of `items` (so that
    /// items are numbered as [`Dataset::load`] numbers them: an item with
    /// no selected event still has its place in the model), and as events
    /// only those `events` yields: a selection of the log that another
    /// reader (the query engine) made. The rows of the `events` table are
    /// checked as `check` says (each bad one reported, as `load` does); the
    /// log's first event is at `log_start`.
    ///
    /// Users are numbered only where a selected event or `users` names
    /// them: in the order of their ids, as `load` numbers every user, so
    /// that the order of any two (how events and cases are sorted) is the
    /// same, while the builder's memory does not grow with the users who
    /// only viewed (millions, on a large shop's log).
    pub fn load_selected(
        dir: &Path,
        policy: BadRowPolicy,
        check: RowCheck,
        items: &[String],
        log_start: Option<i64>,
        events: impl FnOnce(&mut dyn FnMut(&str, &str, Event, i64)) -> Result<()>,
    ) -> Result<Self> {
        let mut ds = Dataset::default();
        let mut bad = BadRows::new(policy);
        if let Some(table) = Table::find(dir, "items")? {
            ds.read_items(table, &mut bad)?;
        }
        check.events(Table::open(dir, "events")?, &mut bad)?;
        for item in items {
            ds.items.intern(item);
        }
        ds.add_events(events)?;
        ds.bad_rows = bad.rows().len();
        if let Some(users) = Table::find(dir, "users")? {
            ds.read_users(users, policy)?;
        }
        ds.log_start = log_start;
        ds.canonicalize();
        Ok(ds)
    }

    /// A dataset of just the events `events` yields, in canonical order
    /// (no catalogue, no profiles): enough to count a day's replay cases.
    pub fn from_events(
        events: impl FnOnce(&mut dyn FnMut(&str, &str, Event, i64)) -> Result<()>,
    ) -> Result<Self> {
        let mut ds = Dataset::default();
        ds.add_events(events)?;
        ds.canonicalize();
        Ok(ds)
    }

    /// Adds the events `events` yields (interning their users and items),
    /// and sizes the per-item columns to the items.
    fn add_events(
        &mut self,
        events: impl FnOnce(&mut dyn FnMut(&str, &str, Event, i64)) -> Result<()>,
    ) -> Result<()> {
        let Dataset {
            users,
            items,
            events: evs,
            ..
        } = self;
        events(&mut |user, item, event, ts| {
            evs.push(Ev {
                user: users.intern(user),
                item: items.intern(item),
                event,
                ts,
            })
        })?;
        self.item_category.resize(self.items.len(), u32::MAX);
        self.in_catalog.resize(self.items.len(), false);
        self.attrs.resize(self.items.len(), ItemAttrs::default());
        Ok(())
    }

    /// Reads an `items` table: `item_id`, and where present `category`,
    /// `top_category`, `brand`, `price`, `age_min_months`,
    /// `age_max_months`, `gender`.
    fn read_items(&mut self, mut csv: Table, bad: &mut BadRows) -> Result<()> {
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
        csv.for_each_row(bad, |row, f| {
            let at = |column: &str, p: String| row.bad(column, p);
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
            let i = self.items.intern(&item) as usize;
            if self.item_category.len() <= i {
                self.item_category.resize(i + 1, u32::MAX);
                self.in_catalog.resize(i + 1, false);
                self.attrs.resize(i + 1, ItemAttrs::default());
            }
            self.in_catalog[i] = true;
            if let Some(c) = cat {
                self.item_category[i] = self.categories.intern(&c);
            }
            self.attrs[i] = ItemAttrs {
                top: top.map_or(u32::MAX, |t| self.tops.intern(&t)),
                brand: brand.map_or(u32::MAX, |b| self.brands.intern(&b)),
                price,
                age,
                gender,
            };
        }
        Ok(())
    }
}

/// Moves `v[old]` to `v[new_id[old]]`.
fn permute<T: Copy>(v: &mut Vec<T>, new_id: &[u32]) {
    let mut out = v.clone();
    for (old, &new) in new_id.iter().enumerate() {
        out[new as usize] = v[old];
    }
    *v = out;
}

/// Calls `f(user, item, event, ts)` for every valid row of an `events`
/// table; bad rows go to `bad`. The one reader of events, for loading and
/// for push.
pub fn for_each_event(
    mut table: Table,
    bad: &mut BadRows,
    mut f: impl FnMut(&str, &str, Event, i64),
) -> Result<()> {
    let columns = EventColumns::of(&table)?;
    table.for_each_row(bad, |row, fields| {
        let (user, item, event, ts) = columns.parse(row, fields)?;
        f(user, item, event, ts);
        Ok(())
    })
}

/// Where an `events` table keeps the four columns every event has.
pub struct EventColumns {
    user: usize,
    item: usize,
    event: usize,
    ts: usize,
}

impl EventColumns {
    /// The columns of `table`, which must all be there.
    pub fn of(table: &Table) -> Result<Self> {
        Ok(EventColumns {
            user: table.require("user_id")?,
            item: table.require("item_id")?,
            event: table.require("event")?,
            ts: table.require("ts")?,
        })
    }

    /// A row's (user, item, event, ts), or the bad row naming the column.
    pub fn parse<'a>(
        &self,
        row: &At,
        fields: &[&'a str],
    ) -> std::result::Result<(&'a str, &'a str, Event, i64), BadRow> {
        let user = parse_id(fields[self.user]).map_err(|p| row.bad("user_id", p))?;
        let item = parse_id(fields[self.item]).map_err(|p| row.bad("item_id", p))?;
        let event = Event::from_name(fields[self.event].trim()).ok_or_else(|| {
            row.bad(
                "event",
                format!(
                    "unknown event `{}` (expected view, fav, cart or purchase)",
                    fields[self.event]
                ),
            )
        })?;
        let ts = parse_ts(fields[self.ts]).map_err(|p| row.bad("ts", p))?;
        Ok((user, item, event, ts))
    }
}

#[cfg(test)]
mod tests {
    use super::Interner;

    #[test]
    fn the_interner_numbers_names_in_first_seen_order_and_sorts_them() {
        let mut names = Interner::default();
        // Enough names for the table to grow several times.
        let words: Vec<String> = (0..5000)
            .map(|k| format!("u{}", (k * 7919) % 5000))
            .collect();
        for (k, w) in words.iter().enumerate() {
            assert_eq!(names.intern(w), k as u32);
        }
        assert_eq!(names.intern(""), 5000);
        assert_eq!(names.intern("u0"), 0, "a known name keeps its id");
        assert_eq!(names.len(), 5001);
        assert_eq!(names.get("u7919"), None);
        for (k, w) in words.iter().enumerate() {
            assert_eq!(names.name(k as u32), w);
            assert_eq!(names.get(w), Some(k as u32));
        }
        let new_id = names.sort();
        let mut sorted = words.clone();
        sorted.push(String::new());
        sorted.sort();
        for (id, w) in sorted.iter().enumerate() {
            assert_eq!(names.name(id as u32), w);
            assert_eq!(names.get(w), Some(id as u32));
        }
        for (old, w) in words.iter().enumerate() {
            assert_eq!(names.name(new_id[old]), w);
        }
        assert_eq!(
            names.intern("zz"),
            5001,
            "a new name after the sort comes last"
        );
    }
}
