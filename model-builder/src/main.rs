//! `model-builder`: the command line of the nestrank builder.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use model_builder::build::{build_parts, publish, BuildOptions, Similarity};
use model_builder::data::{BadRowPolicy, Dataset};
use model_builder::eval::{default_rankers, replay};
use model_builder::import;
use nestrank::util::{format_date, parse_date};
use nestrank::Model;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "model-builder",
    version,
    about = "Builds, verifies and evaluates nestrank model blobs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone, Copy)]
struct RowArgs {
    /// Bad CSV rows tolerated (each is still reported); past this the run fails.
    #[arg(long, default_value_t = 0)]
    max_bad_rows: u64,
}

#[derive(clap::Args, Clone)]
struct ModelArgs {
    /// Neighbours kept per item.
    #[arg(long, default_value_t = 50)]
    k: usize,
    /// Neighbour similarity measure.
    #[arg(long, value_enum, default_value_t = Similarity::Jaccard)]
    similarity: Similarity,
    /// Half-life of co-occurrence affinities, in days.
    #[arg(long, default_value_t = 30.0)]
    cooc_half_life_days: f64,
}

impl ModelArgs {
    fn options(&self) -> BuildOptions {
        BuildOptions {
            k: self.k,
            similarity: self.similarity,
            cooc_half_life_days: self.cooc_half_life_days,
            ..BuildOptions::default()
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Converts a public dataset into the canonical data directory (events.csv, items.csv).
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
    /// Builds a model as of a date and publishes blob + manifest.json.
    Build {
        /// Data directory (events.csv, optional items.csv).
        #[arg(long)]
        data: PathBuf,
        /// Use events before this day (YYYY-MM-DD, 00:00 UTC) only.
        #[arg(long)]
        as_of: String,
        /// Output directory for model-<hash>.nrk and manifest.json.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        rows: RowArgs,
    },
    /// Checks a blob: exit 0 and a summary, or the typed error and exit 1.
    Verify {
        /// The blob file.
        blob: PathBuf,
    },
    /// Runs the daily-specials replay of EVAL.md.
    Eval {
        /// Data directory.
        #[arg(long)]
        data: PathBuf,
        /// Number of evaluated days.
        #[arg(long, default_value_t = 2)]
        days: usize,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        rows: RowArgs,
    },
}

#[derive(Subcommand)]
enum ImportSource {
    /// Tianchi UserBehavior CSV (user_id,item_id,category_id,behavior,ts).
    Taobao {
        /// The UserBehavior CSV file (with a header line).
        input: PathBuf,
        /// Output data directory.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        rows: RowArgs,
    },
}

fn policy(rows: RowArgs) -> BadRowPolicy {
    BadRowPolicy {
        max_bad_rows: rows.max_bad_rows,
    }
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Import {
            source: ImportSource::Taobao { input, out, rows },
        } => {
            let s = import::taobao(&input, &out, policy(rows))?;
            println!(
                "imported {} events and {} items into {} ({} bad rows skipped)",
                s.events,
                s.items,
                out.display(),
                s.bad_rows
            );
        }
        Command::Build {
            data,
            as_of,
            out,
            model,
            rows,
        } => {
            let day = parse_date(&as_of)
                .with_context(|| format!("--as-of `{as_of}` is not a date YYYY-MM-DD"))?;
            let t = Instant::now();
            let ds = Dataset::load(&data, policy(rows))?;
            let load_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let parts = build_parts(&ds, day, &model.options());
            let build_s = t.elapsed().as_secs_f64();
            let (path, m) = publish(&parts, &out)?;
            println!(
                "built {} (model {}, as of {}, {} items, {} bytes) in {:.2}s load + {:.2}s build",
                path.display(),
                m.model_id,
                format_date(day),
                m.item_count,
                m.bytes,
                load_s,
                build_s
            );
        }
        Command::Verify { blob } => {
            let bytes =
                std::fs::read(&blob).with_context(|| format!("cannot read {}", blob.display()))?;
            let model = Model::from_bytes(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: invalid blob: {e}", blob.display()))?;
            let p = model.parts();
            println!(
                "ok: {} model {} format v{} as of {}: {} items, {} categories, {} neighbour links, {} bytes",
                blob.display(),
                model.model_id(),
                model.header().version,
                format_date(model.header().as_of_day),
                model.item_count(),
                model.category_count(),
                p.neighbours.items.len(),
                bytes.len()
            );
        }
        Command::Eval {
            data,
            days,
            json,
            model,
            rows,
        } => {
            let ds = Dataset::load(&data, policy(rows))?;
            let report = replay(&ds, days, &model.options(), &default_rankers())?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", report.table());
            }
        }
    }
    Ok(())
}
