//! Reading the shop's tables row by row, and what a bad row is.
//!
//! The shop's tables (`events`, `items`, `users`) in a data directory, as
//! the shop keeps them: `NAME.csv`, `NAME.parquet`, or a folder `NAME/` of
//! Parquet files (Hive-style partitions such as `NAME/dt=2017-12-03/` are
//! walked; the partition values themselves are not read: every row carries
//! its own columns).
//!
//! Both formats are read row by row as text fields, so that one piece of
//! code validates a row whatever its format, and every bad row is reported
//! with its file and its line (CSV) or row (Parquet, 1-based per file).

use anyhow::{bail, Context, Result};
use std::fmt;
use std::path::{Path, PathBuf};

#[cfg(feature = "engine")]
pub(crate) mod parquet;

/// Where a row is.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    /// The file.
    pub file: &'a Path,
    /// 1-based line (CSV, counting the header) or row (Parquet).
    pub line: u64,
}

impl At<'_> {
    /// A bad row here, in `column`.
    pub fn bad(&self, column: &str, problem: impl Into<String>) -> BadRow {
        BadRow {
            file: self.file.to_path_buf(),
            line: self.line,
            column: Some(column.to_string()),
            problem: problem.into(),
        }
    }
}

/// One table of a data directory.
pub enum Table {
    /// `NAME.csv`.
    Csv(CsvFile),
    /// `NAME.parquet` or `NAME/`.
    #[cfg(feature = "engine")]
    Parquet(parquet::ParquetTable),
}

impl Table {
    /// Table `name` in `dir`, or `None` when it has none. Two forms of one
    /// table (`events.csv` beside `events/`) are an error: which to read
    /// would be a guess.
    pub fn find(dir: &Path, name: &str) -> Result<Option<Table>> {
        let forms: Vec<PathBuf> = [
            dir.join(format!("{name}.csv")),
            dir.join(format!("{name}.parquet")),
            dir.join(name),
        ]
        .into_iter()
        .filter(|p| p.exists())
        .collect();
        match forms.as_slice() {
            [] => Ok(None),
            [one] if one.extension().is_some_and(|e| e == "csv") => {
                Ok(Some(Table::Csv(CsvFile::open(one)?)))
            }
            [one] => Self::parquet(one),
            _ => bail!(
                "{}: the table `{name}` is there in more than one form ({}); keep one",
                dir.display(),
                forms
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Table `name` in `dir`, which must be there.
    pub fn open(dir: &Path, name: &str) -> Result<Table> {
        match Self::find(dir, name)? {
            Some(t) => Ok(t),
            None => bail!(
                "{}: no `{name}` table: expected {name}.csv, {name}.parquet or a folder {name}/ of Parquet files",
                dir.display()
            ),
        }
    }

    #[cfg(feature = "engine")]
    fn parquet(path: &Path) -> Result<Option<Table>> {
        Ok(Some(Table::Parquet(parquet::ParquetTable::open(path)?)))
    }

    #[cfg(not(feature = "engine"))]
    fn parquet(path: &Path) -> Result<Option<Table>> {
        bail!(
            "{}: Parquet needs model-builder built with its `engine` feature (the default)",
            path.display()
        )
    }

    /// The column names.
    pub fn header(&self) -> &[String] {
        match self {
            Table::Csv(c) => c.header(),
            #[cfg(feature = "engine")]
            Table::Parquet(p) => p.header(),
        }
    }

    /// The table's path (a file, or the Parquet folder).
    pub fn path(&self) -> &Path {
        match self {
            Table::Csv(c) => c.path(),
            #[cfg(feature = "engine")]
            Table::Parquet(p) => p.path(),
        }
    }

    /// The index of column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header().iter().position(|h| h == name)
    }

    /// The index of required column `name`, or an error naming the table
    /// (for CSV, at its header's line).
    pub fn require(&self, name: &str) -> Result<usize> {
        match self {
            Table::Csv(c) => c.require(name),
            #[cfg(feature = "engine")]
            Table::Parquet(p) => self.column(name).with_context(|| {
                format!(
                    "{}: required column `{name}` is missing (columns: {})",
                    p.path().display(),
                    p.header().join(",")
                )
            }),
        }
    }

    /// Calls `f(at, fields)` for every row, fields in header order (a
    /// Parquet null is an empty field); `f` returns `Err(BadRow)` to reject
    /// a row, which goes to `bad`.
    pub fn for_each_row(
        &mut self,
        bad: &mut BadRows,
        mut f: impl FnMut(&At, &[&str]) -> std::result::Result<(), BadRow>,
    ) -> Result<()> {
        match self {
            Table::Csv(c) => {
                let path = c.path().to_path_buf();
                c.for_each_row(bad, |line, fields| f(&At { file: &path, line }, fields))
            }
            #[cfg(feature = "engine")]
            Table::Parquet(p) => p.for_each_row(bad, f),
        }
    }
}

/// A row that could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// The file.
    pub file: PathBuf,
    /// 1-based line number (CSV, counting the header) or row number
    /// (Parquet, per file).
    pub line: u64,
    /// The column name, where one column is at fault.
    pub column: Option<String>,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.file.extension().is_some_and(|e| e == "parquet") {
            write!(f, "{}: row {}", self.file.display(), self.line)?;
        } else {
            write!(f, "{}:{}", self.file.display(), self.line)?;
        }
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

    /// The column names.
    pub fn header(&self) -> &[String] {
        &self.header
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

/// A bad row of `path` at `line`, in `column`.
pub fn csv_bad(path: &Path, line: u64, column: &str, problem: String) -> BadRow {
    BadRow {
        file: path.to_path_buf(),
        line,
        column: Some(column.to_string()),
        problem,
    }
}
