//! Parquet tables, read file by file through DataFusion, in path order, so
//! that every row keeps its file and row number.

use super::{At, BadRow, BadRows};
use crate::runtime::block_on;
use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;
use std::path::{Path, PathBuf};

/// A table stored as one Parquet file or a folder of them.
pub struct ParquetTable {
    path: PathBuf,
    files: Vec<PathBuf>,
    header: Vec<String>,
}

/// Every `*.parquet` file under `dir`, by path.
fn parquet_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name.starts_with('_') {
            continue; // _SUCCESS, .crc and other writers' markers
        }
        if path.is_dir() {
            parquet_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    Ok(())
}

/// The column names of one Parquet file.
fn columns(ctx: &SessionContext, file: &Path) -> Result<Vec<String>> {
    let df = block_on(ctx.read_parquet(path_str(file)?, ParquetReadOptions::default()))
        .with_context(|| format!("{}: not a readable Parquet file", file.display()))?;
    Ok(df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect())
}

pub(crate) fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("{}: the path is not UTF-8", path.display()))
}

impl ParquetTable {
    /// Opens `path`: a `.parquet` file, or a folder searched for them.
    pub fn open(path: &Path) -> Result<Self> {
        let mut files = Vec::new();
        if path.is_dir() {
            parquet_files(path, &mut files)?;
            files.sort();
            if files.is_empty() {
                bail!("{}: the folder holds no .parquet file", path.display());
            }
        } else {
            files.push(path.to_path_buf());
        }
        let header = columns(&SessionContext::new(), &files[0])?;
        Ok(ParquetTable {
            path: path.to_path_buf(),
            files,
            header,
        })
    }

    /// The first file's column names; every file must have them.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The file or folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// See [`super::Table::for_each_row`].
    pub fn for_each_row(
        &mut self,
        bad: &mut BadRows,
        mut f: impl FnMut(&At, &[&str]) -> std::result::Result<(), BadRow>,
    ) -> Result<()> {
        let ctx = SessionContext::new();
        for file in &self.files {
            let df = block_on(ctx.read_parquet(path_str(file)?, ParquetReadOptions::default()))
                .with_context(|| format!("{}: not a readable Parquet file", file.display()))?;
            let names: Vec<String> = df
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            let mut positions = Vec::with_capacity(self.header.len());
            for column in &self.header {
                match names.iter().position(|n| n == column) {
                    Some(k) => positions.push(k),
                    None => bail!(
                        "{}: column `{column}` is missing (it is in {}; columns here: {})",
                        file.display(),
                        self.files[0].display(),
                        names.join(",")
                    ),
                }
            }
            let mut stream = block_on(df.execute_stream())
                .with_context(|| format!("{}: cannot scan", file.display()))?;
            let mut row = 0u64;
            while let Some(batch) = block_on(stream.next()) {
                let batch = batch.with_context(|| format!("{}: cannot read", file.display()))?;
                let text: Vec<_> = positions
                    .iter()
                    .map(|&k| cast(batch.column(k), &DataType::Utf8))
                    .collect::<std::result::Result<_, _>>()
                    .with_context(|| format!("{}: a column is not text", file.display()))?;
                let text: Vec<_> = text.iter().map(|a| a.as_string::<i32>()).collect();
                let mut fields: Vec<&str> = Vec::with_capacity(text.len());
                for r in 0..batch.num_rows() {
                    row += 1;
                    fields.clear();
                    fields.extend(
                        text.iter()
                            .map(|a| if a.is_null(r) { "" } else { a.value(r) }),
                    );
                    if let Err(b) = f(&At { file, line: row }, &fields) {
                        bad.push(b)?;
                    }
                }
            }
        }
        Ok(())
    }
}
