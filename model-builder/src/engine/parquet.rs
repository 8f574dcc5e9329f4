//! Writing Parquet with DataFusion (`synth --format parquet`): events
//! partitioned by day, as a data lake keeps them.

use crate::rows::parquet::path_str;
use crate::rows::CsvFile;
use crate::runtime::block_on;
use anyhow::{Context, Result};
use datafusion::arrow::datatypes::DataType;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{CsvReadOptions, SessionContext};
use std::path::Path;

/// Rewrites the CSV tables of `dir` as Parquet: `events/` partitioned by
/// UTC day (`events/dt=YYYY-MM-DD/*.parquet`), `items.parquet` and
/// `users.parquet` (and an experiment's `exposures.parquet`); the CSV files are removed. Every column stays text but
/// `ts` (64-bit integer).
pub fn csv_to_parquet(dir: &Path) -> Result<()> {
    let ctx = SessionContext::new();
    for name in ["events", "items", "users", "exposures"] {
        let csv = dir.join(format!("{name}.csv"));
        if !csv.exists() {
            continue;
        }
        let header = CsvFile::open(&csv)?.header().to_vec();
        let schema = datafusion::arrow::datatypes::Schema::new(
            header
                .iter()
                .map(|h| {
                    let t = if h == "ts" {
                        DataType::Int64
                    } else {
                        DataType::Utf8
                    };
                    datafusion::arrow::datatypes::Field::new(h, t, true)
                })
                .collect::<Vec<_>>(),
        );
        let df = block_on(ctx.read_csv(path_str(&csv)?, CsvReadOptions::new().schema(&schema)))?;
        let write = if name == "events" {
            let out = dir.join("events");
            let df = df.with_column(
                "dt",
                datafusion::functions::expr_fn::to_char(
                    datafusion::functions::expr_fn::to_timestamp_seconds(vec![
                        datafusion::prelude::col("ts"),
                    ]),
                    datafusion::prelude::lit("%Y-%m-%d"),
                ),
            )?;
            let options = DataFrameWriteOptions::new().with_partition_by(vec!["dt".into()]);
            block_on(df.write_parquet(path_str(&out)?, options, None))
        } else {
            let out = dir.join(format!("{name}.parquet"));
            let options = DataFrameWriteOptions::new().with_single_file_output(true);
            block_on(df.write_parquet(path_str(&out)?, options, None))
        };
        write.with_context(|| format!("cannot write {name} as Parquet into {}", dir.display()))?;
        std::fs::remove_file(&csv).with_context(|| format!("cannot remove {}", csv.display()))?;
    }
    Ok(())
}
