//! The build's data-parallel stages as DataFusion SQL plans, run on
//! whichever [`super::Engine`] the session belongs to: per-item statistics
//! (conversions in the last 7 days, the decayed trend), each user's items
//! listed once per model ([`Session::user_lists`]: the ALS matrix's row
//! and the recent items the co-occurrence counts read), the co-occurrence
//! counts behind both neighbour tables, and ALS: each iteration's pass
//! over the users as one aggregate (`nr_als_sums`, exact sums, see
//! [`crate::als`]).
//!
//! Each plan computes exactly what the in-memory stage in [`crate::build`]
//! computes, with the same arithmetic where it decides the result: an
//! affinity is rounded to `f32`, sums are `f64`, a similarity is rounded to
//! `f32` before lists are ranked, and ties go to the smaller item id (by
//! bytes, the model's item order). So the engine's blob equals the
//! in-memory one, whatever the partitioning of the sums.

use super::functions::{ALS_SUMS, PAIRS, TRIM};
use super::lists::USER_ITEMS;
use super::neighbours::{encode_totals, NEIGHBOURS};
use crate::als::{AlsOptions, ItemSums, Step};
use crate::options::{BuildOptions, Similarity, DAY};
use crate::rows::Table;
use crate::runtime::block_on;
use anyhow::{Context, Result};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Int64Type, Schema, UInt32Type, UInt64Type,
};
use datafusion::execution::FunctionRegistry;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{
    col, lit, CsvReadOptions, DataFrame, ParquetReadOptions, SessionContext,
};
use futures::StreamExt;
use nestrank::Event;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A session with the data directory's `events` table registered (as
/// `events_raw`, read as the shop wrote it).
pub struct Session {
    ctx: SessionContext,
    /// The `clean` CTE for this log ([`clean_sql`]).
    clean: String,
    engine: String,
    timeout: Option<std::time::Duration>,
    query_log: Option<std::sync::Mutex<std::fs::File>>,
    /// Where intermediate tables are written ([`Session::with_shared_dir`]).
    shared_dir: PathBuf,
    /// The events with users and items numbered, written on first use
    /// ([`Session::numbered`]).
    numbered: std::sync::OnceLock<Numbered>,
    /// Whether `events` is Parquet, whose files' footers count its rows.
    parquet: bool,
    /// What one pass of the neighbours ([`Session::neighbours`]) or of
    /// the users' lists ([`Session::user_lists`]) may hold.
    pass_memory: PassMemory,
}

/// What one pass may hold.
#[derive(Clone, Copy, Debug)]
enum PassMemory {
    /// Under an embedded engine's memory limit: the limit less what the
    /// process holds as the pass is sized (never less than a quarter of
    /// the limit), so that the builder's own rows, which grow with the
    /// log, come out of the passes and not on top of them.
    Limit(usize),
    /// A set number of bytes (`--pass-memory`, or [`DEFAULT_PASS_BYTES`]
    /// on a cluster, whose executors hold the passes).
    Fixed(usize),
}

impl PassMemory {
    fn bytes(self) -> usize {
        match self {
            PassMemory::Fixed(bytes) => bytes.max(1),
            PassMemory::Limit(limit) => {
                let held = super::memory::rss().unwrap_or(0);
                let held = usize::try_from(held).unwrap_or(usize::MAX);
                limit.saturating_sub(held).max(limit / 4).max(1)
            }
        }
    }
}

/// What one pass may hold where the engine has no memory limit (a
/// cluster's executors have their own).
pub const DEFAULT_PASS_BYTES: usize = 4 << 30;

/// What one directed pair of a user's items costs a neighbours query, for
/// the count of passes. A distinct pair is 16 bytes (its partner and summed
/// weight), held in the partial sums of each partition that met it and in
/// the final ones, each vector up to twice full; a pair recurs across
/// users. Measured on the synthetic Parquet logs under `--memory-limit
/// 4GB`: 174.5 M pairs at 10 M events in 2 passes peaked at 3.45 GB, in 4
/// at 2.22 GB (the same time); 1,745 M at 100 M in 12 passes at 3.94 GB
/// (sampled each second; 4.64 GB at the kernel's count).
const BYTES_PER_PAIR: usize = 32;

/// The log's events as the per-model plans read them, written once under
/// the shared folder: tables `nr_items (item_id, g)` and `nr_users
/// (user_id, u)`, which number the items and users from 0 in the byte
/// order of their ids, and `nr_events (u, g, ts, e)`, every clean event
/// with its user and item numbers and its type as a code (0 view, 1 fav,
/// 2 cart, 3 purchase). Grouping and joining on these integers instead of
/// the ids' text took about 40% less time (at 10 M events, each user's
/// kept items: 54.6 s against 33.7 s over 4 queries; the ALS rows: 38.2 s
/// against 23.9 s over 3), and the text is trimmed and checked once, not
/// in every plan. The numbers keep the ids' order, so a tie broken on an
/// id is broken alike on its number.
struct Numbered {
    /// Holds the three tables; removed with them.
    _folder: SharedFolder,
    /// The items' ids, by number.
    items: Vec<String>,
    /// The rows of `nr_events` and of `nr_users`.
    events: u64,
    users: u64,
}

/// The code of a cart or a purchase in `nr_events`, as SQL.
const CONVERSION_CODE: &str = "e >= 2";

/// Numbers the shared tables of this process.
static SHARED_TABLES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Numbers the items' totals files of this process.
static TOTALS_FILES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A file under the shared folder, removed when dropped.
struct SharedFile(PathBuf);

impl Drop for SharedFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            eprintln!("warning: cannot remove {}: {e}", self.0.display());
        }
    }
}

/// A folder under the shared folder, removed with its files when dropped.
pub(super) struct SharedFolder(PathBuf);

impl SharedFolder {
    /// Where it is.
    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SharedFolder {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("warning: cannot remove {}: {e}", self.0.display());
        }
    }
}

/// A table the engine wrote as Parquet under the shared folder and reads
/// back, for as long as the value lives (deregistered and removed when
/// dropped): an intermediate result that several queries read, computed
/// once.
struct SharedTable<'a> {
    session: &'a Session,
    table: String,
    dir: PathBuf,
}

impl Drop for SharedTable<'_> {
    fn drop(&mut self) {
        let _ = self.session.ctx.deregister_table(self.table.as_str());
        if self.dir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                eprintln!("warning: cannot remove {}: {e}", self.dir.display());
            }
        }
    }
}

/// Each user's items before a cutoff, on the engine, for as long as the
/// value lives ([`Session::user_lists`]): one row per user, with the row of
/// the ALS matrix (`als`, `{m, w}`) and the items the co-occurrence counts
/// read (`kept`, `{m, a}`).
pub struct UserLists<'a> {
    rows: SharedTable<'a>,
    items: Vec<String>,
}

impl UserLists<'_> {
    /// The items, by their number `m` in the lists.
    pub fn items(&self) -> &[String] {
        &self.items
    }

    /// One iteration's pass over the users, as one aggregate: each user's
    /// factor solved against the item factors `y` (in the rows' item
    /// numbering; rows past those the rows name may follow), and the sums
    /// of the item half-step.
    pub fn sums(&self, y: &[f32], o: &AlsOptions) -> Result<ItemSums> {
        let s = self.rows.session;
        let udaf = s
            .ctx
            .udaf(ALS_SUMS)
            .with_context(|| format!("{ALS_SUMS} is not registered on {}", s.engine))?;
        // The factors go in a file beside the rows, which every executor
        // reads, and not in the plan.
        let factors = self.rows.dir.join("factors.bin");
        std::fs::write(&factors, Step::encode(y, o))
            .with_context(|| format!("cannot write the ALS factors to {}", factors.display()))?;
        let path = factors
            .to_str()
            .with_context(|| format!("{}: the path is not UTF-8", factors.display()))?;
        let frame = block_on(s.ctx.table(self.rows.table.as_str())).and_then(|t| {
            t.aggregate(
                vec![],
                vec![udaf.call(vec![col("als"), lit(path)]).alias("sums")],
            )
        });
        let items = y.len() / o.factors.max(1);
        let mut out = None;
        s.for_each_frame(frame, "the ALS sums", |b| {
            let sums = b.column(0).as_binary::<i64>();
            for r in 0..b.num_rows() {
                let decoded = ItemSums::decode(sums.value(r), o.factors, items)
                    .map_err(|e| anyhow::anyhow!("the engine's ALS sums: {e}"))?;
                out = Some(decoded);
            }
            Ok(())
        })?;
        // No users at all: no row, or an empty aggregate.
        Ok(out.unwrap_or_else(|| ItemSums::new(items, o.factors)))
    }
}

/// The events as every plan reads them: text trimmed by the row reader's
/// own trim (`nr_trim`), `ts` as an integer, and exactly the rows the
/// builder's reader accepts (a bad row is reported when the data is
/// loaded, and skipped here alike). `ts` is the column's text
/// parsed, as a CSV gives it, or, where a Parquet log stores it as an
/// integer, the integer itself (the same value, without formatting and
/// parsing every row).
fn clean_sql(integer_ts: bool) -> String {
    let ts = if integer_ts {
        "TRY_CAST(ts AS BIGINT)".to_string()
    } else {
        format!("TRY_CAST({TRIM}(CAST(ts AS VARCHAR)) AS BIGINT)")
    };
    format!(
        "clean AS (
    SELECT user_id, item_id, event, ts FROM (
        SELECT {TRIM}(CAST(user_id AS VARCHAR)) AS user_id,
               {TRIM}(CAST(item_id AS VARCHAR)) AS item_id,
               {TRIM}(CAST(event AS VARCHAR)) AS event,
               {ts} AS ts
        FROM events_raw)
    WHERE user_id <> '' AND item_id <> '' AND octet_length(user_id) <= 256 AND octet_length(item_id) <= 256
      AND event IN ('view', 'fav', 'cart', 'purchase')
      AND ts BETWEEN 0 AND 4102444800)"
    )
}

/// Hands back to the system the memory that a finished query freed.
/// glibc's allocator keeps the freed pages of its arenas resident, so
/// after each large grouping the builder's RSS stayed above what it held
/// and the next query's peak came on top (sampled each second through a
/// 100 M build: 1.8 GB before the first large grouping, 3.4 GB before the
/// last; docs/nightly-build.md). The executors of a cluster are other
/// processes, and do not call it.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free pages to the kernel; it
    // touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Milliseconds since the Unix epoch.
fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// A cart or a purchase, as SQL.
const CONVERSION: &str = "event IN ('cart', 'purchase')";

/// A cart or a purchase on one of `days` (days since 1970-01-01), as SQL
/// (`FALSE` for no day).
fn converted_on(days: &[i32]) -> String {
    if days.is_empty() {
        return "FALSE".to_string();
    }
    let days: Vec<String> = days.iter().map(i32::to_string).collect();
    format!("{CONVERSION} AND ts / {DAY} IN ({})", days.join(", "))
}

/// The users whose every earlier event a build loads: the users behind
/// the cases its ranker fits.
pub enum Learners {
    /// Named one by one in the plan.
    Named(Vec<String>),
    /// Every user with a cart or purchase on one of these days: a superset,
    /// for more users than a plan should name.
    ConvertedOn(Vec<i32>),
}

impl Session {
    /// Registers `data`'s events on a session of `engine`; a query that
    /// runs longer than `timeout` fails (an executor lost mid-job can leave
    /// a cluster's job waiting forever: better a clear error, and
    /// yesterday's model live).
    pub fn new(
        engine: &super::Engine,
        data: &Path,
        timeout: Option<std::time::Duration>,
    ) -> Result<Session> {
        let ctx = engine.context()?;
        let table = Table::open(data, "events")?;
        let parquet = matches!(table, Table::Parquet(_));
        // Absolute: on a cluster, the executors open the files.
        let path = std::fs::canonicalize(table.path())
            .with_context(|| format!("cannot resolve {}", table.path().display()))?;
        let location = path
            .to_str()
            .with_context(|| format!("{}: the path is not UTF-8", path.display()))?;
        match table {
            Table::Csv(csv) => {
                // Every column as text: the plans cast and check, as the
                // row reader does, instead of failing on one bad field.
                let schema = Schema::new(
                    csv.header()
                        .iter()
                        .map(|h| Field::new(h, DataType::Utf8, true))
                        .collect::<Vec<_>>(),
                );
                // A short row reads as nulls, which CLEAN drops, as the
                // row reader skips it.
                block_on(ctx.register_csv(
                    "events_raw",
                    location,
                    CsvReadOptions::new().schema(&schema).truncated_rows(true),
                ))
            }
            Table::Parquet(_) => block_on(ctx.register_parquet(
                "events_raw",
                location,
                ParquetReadOptions::default(),
            )),
        }
        .with_context(|| format!("cannot register {} with the engine", path.display()))?;
        let schema = block_on(ctx.table_provider("events_raw"))
            .with_context(|| format!("cannot read the columns of {}", path.display()))?
            .schema();
        let integer_ts = schema
            .field_with_name("ts")
            .is_ok_and(|f| f.data_type().is_integer());
        Ok(Session {
            clean: clean_sql(integer_ts),
            ctx,
            engine: engine.describe(),
            timeout,
            query_log: None,
            shared_dir: std::env::temp_dir(),
            numbered: std::sync::OnceLock::new(),
            parquet,
            pass_memory: match engine {
                super::Engine::Embedded {
                    memory_limit: Some(limit),
                    ..
                } => PassMemory::Limit(*limit),
                _ => PassMemory::Fixed(DEFAULT_PASS_BYTES),
            },
        })
    }

    /// Writes intermediate tables (the ALS rows) under `dir`: on a cluster,
    /// a folder that the builder and every executor see at the same path,
    /// as they see the data (default: the OS's temporary folder).
    pub fn with_shared_dir(mut self, dir: &Path) -> Result<Session> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the shared folder {}", dir.display()))?;
        self.shared_dir = std::fs::canonicalize(dir)
            .with_context(|| format!("cannot resolve {}", dir.display()))?;
        Ok(self)
    }

    /// Lets one pass of the neighbours or of the users' lists hold `bytes`
    /// (`--pass-memory`; default: the memory limit less what the process
    /// holds): fewer bytes, more passes.
    pub fn with_pass_bytes(mut self, bytes: usize) -> Session {
        self.pass_memory = PassMemory::Fixed(bytes);
        self
    }

    /// Appends a JSON line per query to `path`: what it computes, when it
    /// started and ended (Unix milliseconds), the rows it returned and
    /// (`plan`) the physical plan it ran, with each operator's metrics. With
    /// the executors' task logs, this says what each of the build's stages
    /// costs a cluster (`bench/cluster.sh`).
    pub fn log_queries_to(mut self, path: &Path) -> Result<Session> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the query log {}", path.display()))?;
        self.query_log = Some(std::sync::Mutex::new(file));
        Ok(self)
    }

    /// The `clean` common table expression: the events as every plan reads
    /// them ([`clean_sql`]).
    pub(super) fn clean(&self) -> &str {
        &self.clean
    }

    /// A new folder under the shared folder, which every executor reads,
    /// removed with what it holds when the value is dropped (`kind` names
    /// it).
    pub(super) fn shared_folder(&self, kind: &str) -> Result<SharedFolder> {
        let nonce = SHARED_TABLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.shared_dir.join(format!(
            "nestrank-{kind}-{}-{}-{nonce}",
            std::process::id(),
            unix_ms()
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(SharedFolder(dir))
    }

    /// Runs `f` with the engine joining by hash, as it does without a
    /// memory limit, then restores the setting. For a plan whose one join
    /// has the item numbering (one row per item) on its left, which is
    /// the side a hash join holds: under a memory limit the engine
    /// otherwise sorts both sides and merges them, and the other side is
    /// every user-item pair of the log.
    fn with_hash_joins<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let set = |on: bool| {
            let state = self.ctx.state_ref();
            let mut state = state.write();
            let options = state.config_mut().options_mut();
            std::mem::replace(&mut options.optimizer.prefer_hash_join, on)
        };
        let before = set(true);
        let out = f();
        set(before);
        out
    }

    /// Runs `sql` and hands each result batch to `f` as it arrives, so a
    /// large result is never held whole.
    pub(super) fn for_each_batch(
        &self,
        sql: &str,
        what: &str,
        f: impl FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<()> {
        self.for_each_frame(block_on(self.ctx.sql(sql)), what, f)
    }

    /// [`Session::for_each_batch`] for a frame built without SQL (or the
    /// error of building it).
    fn for_each_frame(
        &self,
        frame: datafusion::error::Result<DataFrame>,
        what: &str,
        mut f: impl FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let start = unix_ms();
        let pool = self.ctx.runtime_env().memory_pool.clone();
        let pool = pool.downcast_ref::<super::memory::PeakPool>();
        let rss = self.query_log.is_some().then(|| {
            pool.inspect(|p| p.restart());
            super::memory::RssPeak::start()
        });
        let mut rows = 0;
        let mut plan = None;
        let done = self.run_batches(frame, what, &mut plan, |b| {
            rows += b.num_rows();
            f(b)
        });
        if let Some(log) = &self.query_log {
            // The executed plan with each operator's metrics (output rows,
            // compute time, spills): where the query's time went.
            let plan = plan
                .map(|p| {
                    datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(
                        p.as_ref(),
                    )
                    .indent(true)
                    .to_string()
                })
                .unwrap_or_default();
            // The most the engine's pool held (embedded, under a memory
            // limit) and the builder's peak resident set, during this query.
            let json = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
            let line = format!(
                "{{\"query\":{what:?},\"start_ms\":{start},\"end_ms\":{},\"rows\":{rows},\"ok\":{},\"pool_peak_bytes\":{},\"rss_peak_bytes\":{},\"plan\":{}}}\n",
                unix_ms(),
                done.is_ok(),
                json(pool.map(|p| p.peak() as u64)),
                json(rss.as_ref().and_then(super::memory::RssPeak::peak)),
                serde_json::Value::String(plan)
            );
            // A lost line loses a measurement, not the build.
            if let Ok(mut file) = log.lock() {
                if let Err(e) = std::io::Write::write_all(&mut *file, line.as_bytes()) {
                    eprintln!("warning: cannot write the query log: {e}");
                }
            }
        }
        release_free_memory();
        done
    }

    fn run_batches(
        &self,
        frame: datafusion::error::Result<DataFrame>,
        what: &str,
        plan: &mut Option<Arc<dyn ExecutionPlan>>,
        mut f: impl FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let df = frame.with_context(|| format!("planning {what} on {}", self.engine))?;
        let work = async {
            // As `DataFrame::execute_stream` does, keeping the plan, whose
            // operators hold the run's metrics.
            let task = Arc::new(df.task_ctx());
            let physical = df
                .create_physical_plan()
                .await
                .with_context(|| format!("planning {what} on {}", self.engine))?;
            *plan = Some(physical.clone());
            let mut stream = datafusion::physical_plan::execute_stream(physical, task)
                .with_context(|| format!("running {what} on {}", self.engine))?;
            while let Some(batch) = stream.next().await {
                f(&batch.with_context(|| format!("running {what} on {}", self.engine))?)?;
            }
            Ok(())
        };
        let run = block_on(async {
            match self.timeout {
                Some(t) => tokio::time::timeout(t, work).await.ok(),
                None => Some(work.await),
            }
        });
        match run {
            Some(done) => done,
            None => anyhow::bail!(
                "{what} did not finish within --query-timeout-seconds {} on {} (on a cluster: was an executor lost?)",
                self.timeout.map_or(0, |t| t.as_secs()),
                self.engine
            ),
        }
    }

    /// The time of the log's first event, and the days (since 1970-01-01)
    /// holding a conversion, in order.
    pub fn log_days(&self) -> Result<(Option<i64>, Vec<i32>)> {
        let clean = &self.clean;
        let mut first = None;
        let sql = format!("WITH {clean} SELECT MIN(ts) FROM clean");
        self.for_each_batch(&sql, "the log's first event", |b| {
            let ts = b.column(0).as_primitive::<Int64Type>();
            if b.num_rows() > 0 && ts.is_valid(0) {
                first = Some(ts.value(0));
            }
            Ok(())
        })?;
        let mut days = Vec::new();
        let sql =
            format!("WITH {clean} SELECT DISTINCT ts / {DAY} AS day FROM clean WHERE {CONVERSION}");
        self.for_each_batch(&sql, "the days with a conversion", |b| {
            let d = b.column(0).as_primitive::<Int64Type>();
            days.extend(d.values().iter().map(|&d| d as i32));
            Ok(())
        })?;
        days.sort_unstable();
        Ok((first, days))
    }

    /// Every item with an event, at any time, in the byte order of their
    /// ids.
    pub fn items(&self) -> Result<Vec<String>> {
        Ok(self.numbered()?.items.clone())
    }

    /// How many rows of a Parquet log the plans skip as bad, counted
    /// without reading a row: every row (from the files' footers) less
    /// the numbered events (every row the plans keep, from the footers the
    /// engine wrote). `None` for a CSV log, whose rows only a scan counts.
    /// The plans keep a row exactly when the row reader accepts it
    /// ([`clean_sql`]), so with none skipped the builder need not read the
    /// log again to find a bad row to report.
    pub fn bad_event_rows(&self) -> Result<Option<u64>> {
        if !self.parquet {
            return Ok(None);
        }
        let kept = self.numbered()?.events;
        let rows = self.count_rows("events_raw", "the rows of events_raw")?;
        rows.checked_sub(kept)
            .map(Some)
            .with_context(|| format!("the engine kept {kept} events of a log of {rows} rows"))
    }

    /// The rows of `table` (of Parquet files without a filter: from their
    /// footers).
    fn count_rows(&self, table: &str, what: &str) -> Result<u64> {
        let mut n = None;
        self.for_each_batch(&format!("SELECT COUNT(*) FROM {table}"), what, |b| {
            let c = b.column(0).as_primitive::<Int64Type>();
            if b.num_rows() > 0 {
                n = Some(c.value(0));
            }
            Ok(())
        })?;
        let n = n.with_context(|| format!("the engine did not count the rows of {table}"))?;
        u64::try_from(n).with_context(|| format!("the engine counted {n} rows of {table}"))
    }

    /// The numbered events ([`Numbered`]), written on first use.
    fn numbered(&self) -> Result<&Numbered> {
        if let Some(n) = self.numbered.get() {
            return Ok(n);
        }
        let clean = &self.clean;
        let folder = self.shared_folder("events")?;
        let write = |name: &str, select: &str, what: &str| {
            self.write_table(name, &folder.path().join(name), select, what)
        };
        let number = |id: &str, n: &str| {
            format!(
                "WITH {clean} SELECT {id}, CAST(ROW_NUMBER() OVER (ORDER BY {id}) - 1 AS INT UNSIGNED) AS {n}
                 FROM (SELECT DISTINCT {id} FROM clean)"
            )
        };
        write("nr_items", &number("item_id", "g"), "the items' numbers")?;
        write("nr_users", &number("user_id", "u"), "the users' numbers")?;
        let items = self.texts(
            "SELECT item_id FROM nr_items ORDER BY g",
            "the items, by number",
        )?;
        // Both numberings are on the left, the side a hash join holds
        // (the users: 6.1 M at 100 M events, well inside a 4 GB limit).
        self.with_hash_joins(|| {
            write(
                "nr_events",
                &format!(
                    "WITH {clean}
                     SELECT c.u, i.g, c.ts,
                            CAST(CASE c.event WHEN 'view' THEN 0 WHEN 'fav' THEN 1 WHEN 'cart' THEN 2 ELSE 3 END AS TINYINT) AS e
                     FROM nr_items i JOIN (
                         SELECT u.u, c.item_id, c.ts, c.event
                         FROM nr_users u JOIN clean c ON c.user_id = u.user_id) c
                     ON c.item_id = i.item_id"
                ),
                "the numbered events",
            )
        })?;
        let events = self.count_rows("nr_events", "the rows of nr_events")?;
        let users = self.count_rows("nr_users", "the rows of nr_users")?;
        Ok(self.numbered.get_or_init(|| Numbered {
            _folder: folder,
            items,
            events,
            users,
        }))
    }

    /// The ids of items numbered `g` (`nr_items`), in the order of
    /// `numbers`.
    fn item_names(&self, numbers: &[u32]) -> Result<Vec<String>> {
        numbers
            .iter()
            .map(|&g| self.item_name(g).cloned())
            .collect()
    }

    /// The id of the item numbered `g` (`nr_items`).
    fn item_name(&self, g: u32) -> Result<&String> {
        let items = &self.numbered()?.items;
        items.get(g as usize).with_context(|| {
            format!(
                "the engine gave item number {g}, not 0 to {}",
                items.len().saturating_sub(1)
            )
        })
    }

    /// The first column of `sql`'s rows, as item numbers, in the order
    /// they come.
    fn item_numbers(&self, sql: &str, what: &str) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        self.for_each_batch(sql, what, |b| {
            out.extend_from_slice(b.column(0).as_primitive::<UInt32Type>().values());
            Ok(())
        })?;
        Ok(out)
    }

    /// The first column of `sql`'s rows, as text, in the order they come.
    fn texts(&self, sql: &str, what: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        self.for_each_batch(sql, what, |b| {
            let names = b.column(0).as_string_view_or_utf8();
            out.extend((0..b.num_rows()).map(|r| names.value(r)));
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f(user, item, event, ts)` for the events before `cutoff` that
    /// a build reads beside the engine's tables: every purchase (the stage
    /// fit and re-purchase gaps), the carts and purchases on `days` (the
    /// replay's specials and cases), and every event of the `learners`
    /// (the ranker's fitted cases' signals).
    pub fn for_each_selected_event(
        &self,
        cutoff: i64,
        days: &[i32],
        learners: &Learners,
        f: impl FnMut(&str, &str, Event, i64),
    ) -> Result<()> {
        let on_days = converted_on(days);
        let learners = match learners {
            Learners::Named(users) if !users.is_empty() => {
                let users: Vec<String> = users
                    .iter()
                    .map(|u| format!("'{}'", u.replace('\'', "''")))
                    .collect();
                format!("user_id IN ({})", users.join(", "))
            }
            Learners::ConvertedOn(days) => format!(
                "user_id IN (SELECT user_id FROM clean WHERE {})",
                converted_on(days)
            ),
            _ => "FALSE".to_string(),
        };
        self.for_each_event_where(
            &format!("ts < {cutoff} AND (event = 'purchase' OR ({on_days}) OR {learners})"),
            "the purchases, the training days' conversions and the learners' events",
            f,
        )
    }

    /// Calls `f(user, item, event, ts)` for the conversions on `days`.
    pub fn for_each_conversion_on(
        &self,
        days: &[i32],
        f: impl FnMut(&str, &str, Event, i64),
    ) -> Result<()> {
        self.for_each_event_where(&converted_on(days), "the training days' conversions", f)
    }

    /// Calls `f(user, item, event, ts)` for the events from `start` to
    /// just before `end` (a push's window).
    pub fn for_each_event_between(
        &self,
        start: i64,
        end: i64,
        f: impl FnMut(&str, &str, Event, i64),
    ) -> Result<()> {
        self.for_each_event_where(
            &format!("ts >= {start} AND ts < {end}"),
            "the window's events",
            f,
        )
    }

    fn for_each_event_where(
        &self,
        condition: &str,
        what: &str,
        mut f: impl FnMut(&str, &str, Event, i64),
    ) -> Result<()> {
        let clean = &self.clean;
        let sql =
            format!("WITH {clean} SELECT user_id, item_id, event, ts FROM clean WHERE {condition}");
        self.for_each_batch(&sql, what, |b| {
            let (users, items, events, ts) = (
                b.column(0).as_string_view_or_utf8(),
                b.column(1).as_string_view_or_utf8(),
                b.column(2).as_string_view_or_utf8(),
                b.column(3).as_primitive::<Int64Type>(),
            );
            for r in 0..b.num_rows() {
                let event = events.value(r);
                let event = Event::from_name(&event)
                    .with_context(|| format!("the engine returned event `{event}`"))?;
                f(&users.value(r), &items.value(r), event, ts.value(r));
            }
            Ok(())
        })
    }

    /// Each user's items with an event before `cutoff` (only carts and
    /// purchases when `conversions_only`), listed in one grouping of the
    /// numbered events by user (`nr_user_items`, see
    /// [`super::lists`]) and written once as Parquet under the shared
    /// folder, which every ALS iteration and both co-occurrence queries
    /// read. A user's `als` list holds every item with its event-weighted
    /// count, as the in-memory stage sums them; `kept` holds the user's
    /// `max_items_per_user` most recent items with their strongest decayed
    /// weight (the in-memory affinity). Items are numbered in the byte
    /// order of their ids, from 0; [`UserLists::items`] names them.
    pub fn user_lists(
        &self,
        cutoff: i64,
        o: &BuildOptions,
        conversions_only: bool,
    ) -> Result<UserLists<'_>> {
        self.numbered()?;
        let only = if conversions_only {
            format!("AND {CONVERSION_CODE}")
        } else {
            String::new()
        };
        let ids = format!(
            "ids AS (
                 SELECT g, CAST(ROW_NUMBER() OVER (ORDER BY g) - 1 AS BIGINT UNSIGNED) AS m
                 FROM (SELECT DISTINCT g FROM nr_events WHERE ts < {cutoff} {only}))"
        );
        let items = self.item_names(&self.item_numbers(
            &format!("WITH {ids} SELECT g FROM ids ORDER BY m"),
            "the users' item numbers",
        )?)?;
        let (weight, span) = (weight_sql(o), o.cooc_half_life_days * DAY as f64);
        // Past half the pass budget, the users are listed in passes, each
        // over the users whose number is `pass` modulo the passes: one
        // grouping of every user spilled its lists to disk at 100 M events
        // and held as much again outside the pool while it did.
        let listed = self.count_rows(
            &format!("(SELECT 1 FROM nr_events WHERE ts < {cutoff} {only})"),
            "the events to list",
        )?;
        let passes = list_passes(listed, self.pass_memory.bytes(), self.numbered()?.users);
        let parts: Vec<(String, String)> = (0..passes)
            .map(|pass| {
                let (users, what) = if passes == 1 {
                    (String::new(), "each user's items".to_string())
                } else {
                    (
                        format!("AND u % {passes} = {pass}"),
                        format!("each user's items, pass {} of {passes}", pass + 1),
                    )
                };
                let select = format!(
                    "WITH {ids}
                     SELECT l['als'] AS als, l['kept'] AS kept FROM (
                         SELECT {USER_ITEMS}(
                                    ids.m, {weight},
                                    CAST({weight} * power(2.0, CAST(ts - {cutoff} AS DOUBLE) / {span}) AS REAL),
                                    ts, {per_user}) AS l
                         FROM ids JOIN (SELECT u, g, ts, e FROM nr_events WHERE ts < {cutoff} {only} {users}) ev
                         ON ev.g = ids.g
                         GROUP BY ev.u)",
                    per_user = o.max_items_per_user,
                );
                (select, what)
            })
            .collect();
        let rows = self.with_hash_joins(|| self.shared_table("users", &parts))?;
        Ok(UserLists { rows, items })
    }

    /// Runs each `(select, what)` of `parts` once and keeps their rows on
    /// the engine as one table under the shared folder (`kind` names the
    /// folder), which every executor reads.
    fn shared_table(&self, kind: &str, parts: &[(String, String)]) -> Result<SharedTable<'_>> {
        let nonce = SHARED_TABLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let table = SharedTable {
            session: self,
            table: format!("shared_{kind}_{nonce}"),
            dir: self.shared_dir.join(format!(
                "nestrank-{kind}-{}-{}-{nonce}",
                std::process::id(),
                unix_ms()
            )),
        };
        self.write_table_in_parts(&table.table, &table.dir.join("rows"), parts)?;
        Ok(table)
    }

    /// Writes `select`'s rows as Parquet files in the folder `at` and
    /// registers them as `table`.
    fn write_table(&self, table: &str, at: &Path, select: &str, what: &str) -> Result<()> {
        self.write_table_in_parts(table, at, &[(select.to_string(), what.to_string())])
    }

    /// [`Session::write_table`] for a table written in parts: each
    /// `(select, what)` adds its rows' files to the folder `at`.
    fn write_table_in_parts(
        &self,
        table: &str,
        at: &Path,
        parts: &[(String, String)],
    ) -> Result<()> {
        let location = format!(
            "{}/",
            at.to_str()
                .with_context(|| format!("{}: the path is not UTF-8", at.display()))?
        );
        let quoted = location.replace('\'', "''");
        for (select, what) in parts {
            self.for_each_batch(
                &format!("COPY ({select}) TO '{quoted}' STORED AS PARQUET"),
                &format!("{what} (written to the shared folder)"),
                |_| Ok(()),
            )?;
        }
        block_on(
            self.ctx
                .register_parquet(table, &location, ParquetReadOptions::default()),
        )
        .with_context(|| {
            let what = parts.first().map_or("a table", |(_, what)| what.as_str());
            format!("cannot read back {what} from {location}")
        })?;
        Ok(())
    }

    /// Up to `limit` items with an event before `cutoff`, most recently
    /// active first, in the order [`crate::build::recent_items`] gives.
    pub fn recent_items(&self, cutoff: i64, limit: usize) -> Result<Vec<String>> {
        let clean = &self.clean;
        // In-memory, events sorted by (time, user, item, event) are walked
        // backwards: an item comes at its latest time, then by the largest
        // user id at that time, then by the larger item id.
        let sql = format!(
            "WITH {clean},
             latest AS (SELECT item_id, MAX(ts) AS t FROM clean WHERE ts < {cutoff} GROUP BY item_id)
             SELECT c.item_id, MAX(l.t) AS t, MAX(c.user_id) AS u
             FROM clean c JOIN latest l ON c.item_id = l.item_id AND c.ts = l.t
             GROUP BY c.item_id ORDER BY t DESC, u DESC, c.item_id DESC LIMIT {limit}"
        );
        let mut out = Vec::new();
        self.for_each_batch(&sql, "the most recently active items", |b| {
            let items = b.column(0).as_string_view_or_utf8();
            out.extend((0..b.num_rows()).map(|r| items.value(r)));
            Ok(())
        })?;
        Ok(out)
    }

    fn query(&self, sql: &str, what: &str) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        self.for_each_batch(sql, what, |b| {
            out.push(b.clone());
            Ok(())
        })?;
        Ok(out)
    }

    /// Per item with an event before `cutoff`: conversions in the 7 days
    /// before it, and the trend (event weight times a decay of
    /// `trend_half_life_days`, summed).
    pub fn item_stats(&self, cutoff: i64, o: &BuildOptions) -> Result<HashMap<String, (u32, f64)>> {
        self.numbered()?;
        let sql = format!(
            "SELECT g,
                    CAST(SUM(CASE WHEN {CONVERSION_CODE} AND ts >= {week} THEN 1 ELSE 0 END) AS BIGINT) AS conversions,
                    SUM({weight} * power(2.0, CAST(ts - {cutoff} AS DOUBLE) / {span})) AS trend
             FROM nr_events WHERE ts < {cutoff} GROUP BY g",
            week = cutoff - 7 * DAY,
            weight = weight_sql(o),
            span = o.trend_half_life_days * DAY as f64,
        );
        let mut out = HashMap::new();
        for b in self.query(&sql, "the per-item statistics")? {
            let (items, conv, trend) = (
                b.column(0).as_primitive::<UInt32Type>(),
                b.column(1).as_primitive::<Int64Type>(),
                b.column(2).as_primitive::<Float64Type>(),
            );
            for r in 0..b.num_rows() {
                let name = self.item_name(items.value(r))?;
                out.insert(name.clone(), (conv.value(r) as u32, trend.value(r)));
            }
        }
        Ok(out)
    }

    /// The top `k` co-occurrence neighbours of every item of `lists` (made
    /// by [`Session::user_lists`]: the events before its cutoff, only carts
    /// and purchases for the bought-together table), as `item ->
    /// [(neighbour, similarity)]`, best first.
    pub fn neighbours(
        &self,
        lists: &UserLists<'_>,
        o: &BuildOptions,
        k: usize,
    ) -> Result<HashMap<String, Vec<(String, f32)>>> {
        let k = k.min(nestrank::model::MAX_NEIGHBOURS);
        if k == 0 {
            return Ok(HashMap::new());
        }
        let measure = match o.similarity {
            Similarity::Jaccard => "jaccard",
            Similarity::Cosine => "cosine",
            Similarity::Lift => "lift",
        };
        // Items are numbered in the byte order of their ids (as the model
        // orders them), so that the pairs are grouped and ranked on
        // integers; names are looked up in the builder. First the items'
        // total affinities (`d`), written to a file every executor reads,
        // and each item's count of pairs; then the pairs, from `nr_pairs`
        // over each user's kept items (not from a self-join, which sorted
        // and read them twice), grouped by their first item and summed,
        // scored and ranked by `nr_neighbours`. A sum grouped by pair held
        // one hash-table entry per pair of items (245 M at 100 M events),
        // looked up at random once per user pair: grouped by item, the
        // table stays in the CPU's caches. When the pairs would take more
        // than `pair_bytes`, they are ranked in passes, each over the items
        // whose number is `pass` modulo the passes.
        let names = lists.items();
        let name = |m: u64| {
            names.get(m as usize).with_context(|| {
                format!(
                    "the co-occurrence plan gave item number {m}, not 0 to {}",
                    names.len().saturating_sub(1)
                )
            })
        };
        let users_table = &lists.rows.table;
        // The items' total affinities, in a file beside the other shared
        // tables, and the directed pairs they head.
        let mut d = vec![0f64; names.len()];
        let mut pairs = 0u64;
        self.for_each_batch(
            &format!(
                "SELECT it['m'] AS m, SUM(CAST(it['a'] AS DOUBLE)) AS d, SUM(n) AS pairs
                 FROM (SELECT unnest(kept) AS it, CAST(cardinality(kept) AS BIGINT) - 1 AS n
                       FROM {users_table})
                 GROUP BY it['m']"
            ),
            "the co-occurrence items' totals",
            |b| {
                let (m, t, n) = (
                    b.column(0).as_primitive::<UInt64Type>(),
                    b.column(1).as_primitive::<Float64Type>(),
                    b.column(2).as_primitive::<Int64Type>(),
                );
                for r in 0..b.num_rows() {
                    let m = m.value(r);
                    *d.get_mut(m as usize).with_context(|| {
                        format!(
                            "the totals gave item number {m}, not 0 to {}",
                            names.len().saturating_sub(1)
                        )
                    })? = t.value(r);
                    pairs += n.value(r).max(0) as u64;
                }
                Ok(())
            },
        )?;
        let nonce = TOTALS_FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let totals = SharedFile(self.shared_dir.join(format!(
            "nestrank-totals-{}-{}-{nonce}.bin",
            std::process::id(),
            unix_ms()
        )));
        std::fs::write(&totals.0, encode_totals(&d))
            .with_context(|| format!("cannot write the items' totals to {}", totals.0.display()))?;
        let path = totals
            .0
            .to_str()
            .with_context(|| format!("{}: the path is not UTF-8", totals.0.display()))?
            .replace('\'', "''");
        let passes = passes(pairs, self.pass_memory.bytes(), names.len());
        let mut out: HashMap<String, Vec<(String, f32)>> = HashMap::new();
        for pass in 0..passes {
            let sql = format!(
                "SELECT i, unnest(top) FROM (
                     SELECT p['i'] AS i,
                            {NEIGHBOURS}(p['i'], p['j'], p['w'], '{path}', '{measure}', {k}) AS top
                     FROM (SELECT unnest({PAIRS}(kept, {pass}, {passes})) AS p FROM {users_table})
                     GROUP BY p['i'])"
            );
            let what = if passes == 1 {
                "the co-occurrence neighbours".to_string()
            } else {
                format!(
                    "the co-occurrence neighbours, pass {} of {passes}",
                    pass + 1
                )
            };
            for b in self.query(&sql, &what)? {
                let i = b.column(0).as_primitive::<UInt64Type>();
                let pairs = b.column(1).as_struct();
                let (j, s) = (
                    pairs.column(0).as_primitive::<UInt64Type>(),
                    pairs.column(1).as_primitive::<Float32Type>(),
                );
                for r in 0..b.num_rows() {
                    out.entry(name(i.value(r))?.clone())
                        .or_default()
                        .push((name(j.value(r))?.clone(), s.value(r)));
                }
            }
        }
        // Best first, ties to the smaller id (the aggregate's order, kept
        // whatever order the rows arrive in).
        for row in out.values_mut() {
            row.sort_by(|a, b| {
                b.1.total_cmp(&a.1)
                    .then_with(|| a.0.as_bytes().cmp(b.0.as_bytes()))
            });
        }
        Ok(out)
    }
}

/// How many neighbours queries rank `pairs` directed pairs of items
/// with at most `bytes` of them each, and no more than one per item.
fn passes(pairs: u64, bytes: usize, items: usize) -> u64 {
    let need = pairs.saturating_mul(BYTES_PER_PAIR as u64);
    need.div_ceil(bytes.max(1) as u64).min(items as u64).max(1)
}

/// How many passes list the users' items ([`Session::user_lists`]) of a
/// log of `events` numbered events when a pass may take `bytes`: each
/// holds at most half of `bytes` in lists, the other half being for the
/// lists as they are written; never more passes than `users`.
fn list_passes(events: u64, bytes: usize, users: u64) -> u64 {
    let need = events.saturating_mul(BYTES_PER_LISTED_EVENT as u64);
    need.div_ceil((bytes / 2).max(1) as u64).min(users).max(1)
}

/// What one event costs the grouping that lists the users' items, for the
/// count of passes: its entry (24 bytes) in the partial lists of the
/// partition that met it and in the final ones, each vector up to twice
/// full, and the users' hash tables. Measured on the synthetic Parquet
/// logs under `--memory-limit 4GB`: at 10 M events, one grouping of every
/// user peaked at 1.2 GB of the pool (about 120 bytes an event); at 100 M,
/// each of 6 passes over about 16.7 M events at 1.05 GB (about 63).
const BYTES_PER_LISTED_EVENT: usize = 100;

/// The event weight of a row of `nr_events`, as SQL.
fn weight_sql(o: &BuildOptions) -> String {
    let w = |k: usize| format!("CAST({:?} AS DOUBLE)", f64::from(o.event_weights[k]));
    format!(
        "CASE e WHEN 0 THEN {} WHEN 1 THEN {} WHEN 2 THEN {} ELSE {} END",
        w(0),
        w(1),
        w(2),
        w(3)
    )
}

/// A text column as owned strings, whether the engine chose `Utf8` or
/// `Utf8View` for it.
pub(super) trait Text {
    fn as_string_view_or_utf8(&self) -> TextColumn<'_>;
}

impl Text for std::sync::Arc<dyn Array> {
    fn as_string_view_or_utf8(&self) -> TextColumn<'_> {
        match self.data_type() {
            DataType::Utf8View => TextColumn::View(self.as_string_view()),
            DataType::LargeUtf8 => TextColumn::Large(self.as_string::<i64>()),
            _ => TextColumn::Utf8(self.as_string::<i32>()),
        }
    }
}

pub(super) enum TextColumn<'a> {
    Utf8(&'a datafusion::arrow::array::StringArray),
    Large(&'a datafusion::arrow::array::LargeStringArray),
    View(&'a datafusion::arrow::array::StringViewArray),
}

impl TextColumn<'_> {
    fn value(&self, r: usize) -> String {
        self.str(r).to_string()
    }

    /// Row `r`'s text.
    pub(super) fn str(&self, r: usize) -> &str {
        match self {
            TextColumn::Utf8(a) => a.value(r),
            TextColumn::Large(a) => a.value(r),
            TextColumn::View(a) => a.value(r),
        }
    }

    /// Whether row `r` is null.
    pub(super) fn is_null(&self, r: usize) -> bool {
        match self {
            TextColumn::Utf8(a) => a.is_null(r),
            TextColumn::Large(a) => a.is_null(r),
            TextColumn::View(a) => a.is_null(r),
        }
    }

    /// Rows.
    pub(super) fn len(&self) -> usize {
        match self {
            TextColumn::Utf8(a) => a.len(),
            TextColumn::Large(a) => a.len(),
            TextColumn::View(a) => a.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::BadRows;
    use datafusion::arrow::array::StringArray;
    use datafusion::dataframe::DataFrameWriteOptions;

    /// The plans keep exactly the rows the builder's reader accepts, with
    /// the same ids, types and times, whatever blanks surround a field:
    /// that is what lets a build skip reading a Parquet log again when the
    /// engine counts no bad row.
    #[test]
    fn the_plans_keep_the_rows_the_reader_accepts() {
        let long = "x".repeat(256);
        let (id, event, ts) = ("u1", "view", "1600000000");
        let ids = [
            "u1".to_string(),
            "\tu2\n".into(),
            "\u{a0}u3\u{3000}".into(),
            "u\u{a0}4".into(),
            " ".into(),
            "\t\r\n".into(),
            "\u{2003}".into(),
            String::new(),
            long.clone(),
            format!("{long}x"),
            format!(" {long}\t"),
        ];
        let events = ["view", " cart\t", "\u{a0}purchase", "View", "click", ""];
        let times = [
            "1600000000",
            " 1600000001\t",
            "\u{a0}1600000002",
            "+1600000003",
            "-5",
            "0",
            "4102444800",
            "4102444801",
            "1.6e9",
            "1600000004.0",
            "16O0000005",
            "99999999999999999999",
            "",
        ];
        let mut rows: Vec<[Option<String>; 4]> = Vec::new();
        let row = |u: &str, i: &str, e: &str, t: &str| [u, i, e, t].map(|f| Some(f.to_string()));
        for u in &ids {
            rows.push(row(u, "i1", event, ts));
            rows.push(row(id, u, event, ts));
        }
        rows.extend(events.iter().map(|e| row(id, "i1", e, ts)));
        rows.extend(times.iter().map(|t| row(id, "i1", event, t)));
        for k in 0..4 {
            let mut r = row(id, "i1", event, ts);
            r[k] = None;
            rows.push(r);
        }

        let dir = std::env::temp_dir().join(format!("nestrank-clean-rows-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let names = ["user_id", "item_id", "event", "ts"];
        let schema = Arc::new(Schema::new(
            names.map(|n| Field::new(n, DataType::Utf8, true)).to_vec(),
        ));
        let columns = (0..4)
            .map(|k| {
                Arc::new(
                    rows.iter()
                        .map(|r| r[k].as_deref())
                        .collect::<StringArray>(),
                ) as Arc<dyn Array>
            })
            .collect();
        let batch = RecordBatch::try_new(schema, columns).unwrap();
        let ctx = SessionContext::new();
        let file = dir.join("events.parquet");
        block_on(ctx.read_batch(batch).unwrap().write_parquet(
            file.to_str().unwrap(),
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        ))
        .unwrap();

        let mut bad = BadRows::new(crate::rows::BadRowPolicy {
            max_bad_rows: u64::MAX,
        });
        let mut read = Vec::new();
        crate::data::for_each_event(
            Table::open(&dir, "events").unwrap(),
            &mut bad,
            |u, i, e, t| read.push((u.to_string(), i.to_string(), e, t)),
        )
        .unwrap();
        let session = Session::new(&super::super::Engine::default(), &dir, None).unwrap();
        let mut kept = Vec::new();
        session
            .for_each_event_where("TRUE", "every clean event", |u, i, e, t| {
                kept.push((u.to_string(), i.to_string(), e, t))
            })
            .unwrap();
        for rows in [&mut read, &mut kept] {
            rows.sort_by(|a, b| (&a.0, &a.1, a.2 as u8, a.3).cmp(&(&b.0, &b.1, b.2 as u8, b.3)));
        }
        assert_eq!(kept, read);
        // Not every row is good, and not every row is bad: the case can fail.
        let bad = bad.rows().len() as u64;
        assert!(
            bad >= 20 && read.len() >= 10,
            "{bad} bad, {} read",
            read.len()
        );
        assert_eq!(session.bad_event_rows().unwrap(), Some(bad));
        drop(session);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A build's selection holds every purchase before the cutoff, the
    /// carts and purchases of the named days, and every earlier event of
    /// the named users (one with a quote in its id), and nothing else.
    #[test]
    fn the_builder_selects_purchases_the_days_conversions_and_the_learners() {
        let day0 = 20_000i64;
        let names = ["view", "fav", "cart", "purchase"];
        let users = ["a", "b", "o'q", "c"];
        // Every user does everything on each of five days, twice, but `c`
        // buys nothing on day 1.
        let mut rows = Vec::new();
        for d in 0..5 {
            for (u, user) in users.iter().enumerate() {
                for (e, event) in names.iter().enumerate() {
                    if *user == "c" && d == 1 && e >= 2 {
                        continue;
                    }
                    for n in 0..2i64 {
                        let ts = (day0 + d) * DAY + 3600 * (u * 4 + e) as i64 + n;
                        rows.push((user.to_string(), format!("i{e}{u}"), *event, ts));
                    }
                }
            }
        }
        let dir = std::env::temp_dir().join(format!("nestrank-selected-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut csv = String::from("user_id,item_id,event,ts\n");
        for (u, i, e, t) in &rows {
            csv.push_str(&format!("{u},{i},{e},{t}\n"));
        }
        std::fs::write(dir.join("events.csv"), csv).unwrap();
        let session = Session::new(&super::super::Engine::default(), &dir, None).unwrap();
        let (cutoff, days) = ((day0 + 3) * DAY, [day0 as i32 + 1]);
        let selected = |learners: &Learners| {
            let mut kept = Vec::new();
            session
                .for_each_selected_event(cutoff, &days, learners, |u, i, e, t| {
                    kept.push((u.to_string(), i.to_string(), e.name(), t))
                })
                .unwrap();
            kept.sort();
            kept
        };
        let expected = |learner: &dyn Fn(&str) -> bool| {
            let mut rows: Vec<_> = rows
                .iter()
                .filter(|(u, _, e, t)| {
                    *t < cutoff
                        && (*e == "purchase" || (*e == "cart" && t / DAY == day0 + 1) || learner(u))
                })
                .map(|(u, i, e, t)| (u.clone(), i.clone(), *e, *t))
                .collect();
            rows.sort();
            rows
        };
        let named = selected(&Learners::Named(vec!["o'q".to_string()]));
        assert_eq!(named, expected(&|u| u == "o'q"));
        // 3 days' purchases of 4 users (not c's on day 1), day 1's carts of
        // a and b, and the learner's 3 days of views, favourites and
        // carts, twice each.
        assert_eq!(named.len(), 2 * (3 * 4 - 1 + 2 + 3 * 3));
        // Named by the day they converted: a, b and o'q, not c.
        let by_day = selected(&Learners::ConvertedOn(vec![day0 as i32 + 1]));
        assert_eq!(by_day, expected(&|u| u != "c"));
        assert_eq!(by_day.len(), 2 * (3 * 3 * 4 + 2));
        assert_eq!(selected(&Learners::Named(Vec::new())), expected(&|_| false));
        drop(session);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The neighbours are the same whether the pairs are ranked in one
    /// query or in one pass per item.
    #[test]
    fn neighbours_in_passes_are_the_neighbours_in_one_query() {
        let dir = std::env::temp_dir().join(format!("nestrank-passes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut csv = String::from("user_id,item_id,event,ts\n");
        let mut state = 5u64;
        for n in 0..3000u64 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let (user, item) = ((state >> 40) % 150, (state >> 20) % 40 + (state >> 40) % 7);
            let event = ["view", "view", "fav", "cart", "purchase"][((state >> 8) % 5) as usize];
            csv.push_str(&format!(
                "u{user},i{item},{event},{}\n",
                20_000 * DAY + 37 * n as i64
            ));
        }
        std::fs::write(dir.join("events.csv"), csv).unwrap();
        let o = BuildOptions::default();
        let cutoff = 20_002 * DAY;
        let neighbours = |session: Session| {
            let lists = session.user_lists(cutoff, &o, false).unwrap();
            let mut got: Vec<_> = session
                .neighbours(&lists, &o, 10)
                .unwrap()
                .into_iter()
                .collect();
            got.sort_by(|a, b| a.0.cmp(&b.0));
            got
        };
        let engine = super::super::Engine::default();
        let one = neighbours(Session::new(&engine, &dir, None).unwrap());
        let many = neighbours(
            Session::new(&engine, &dir, None)
                .unwrap()
                .with_pass_bytes(1),
        );
        // 120 KB a pass: the 3,000 events' lists in 5 passes.
        let few = neighbours(
            Session::new(&engine, &dir, None)
                .unwrap()
                .with_pass_bytes(120_000),
        );
        assert!(
            one.len() > 30 && one.iter().all(|(_, l)| l.len() == 10),
            "{one:?}"
        );
        assert_eq!(one, many);
        assert_eq!(one, few);
        assert_eq!(list_passes(3000, 120_000, 150), 5);
        assert_eq!(list_passes(3000, 1, 150), 150);
        assert_eq!(list_passes(10_000_000, 4_000_000_000, 1_000_000), 1);
        assert_eq!(list_passes(100_000_000, 4_000_000_000, 10_000_000), 5);
        assert_eq!(list_passes(0, 1, 0), 1);
        assert_eq!(passes(1000, 32_000, 50), 1);
        assert_eq!(passes(1000, 3_200, 50), 10);
        assert_eq!(passes(1000, 1, 50), 50);
        assert_eq!(passes(0, 1, 0), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
