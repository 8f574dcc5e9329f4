//! `model-builder`: the command line of the nestrank builder.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use model_builder::als::AlsOptions;
use model_builder::build::{Restriction, Stages};
use model_builder::data::Dataset;
use model_builder::eval::{default_rankers, replay, sweep_points, Scenario};
use model_builder::import;
use model_builder::options::{BuildOptions, Similarity};
use model_builder::publish::{rollback, KEEP_DEFAULT};
use model_builder::replay::SignalWindow;
use model_builder::rows::BadRowPolicy;
use model_builder::train::{Fallback, RankerLoss, TrainOptions};
use model_builder::{pipeline, shop, synth};
use nestrank::calendar::{format_date, parse_date};
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

/// The kinds of synthetic data.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum SynthKind {
    /// A log of a given size, for scale measurements.
    Scale,
    /// A mother-and-baby shop with today's specials, for the demo page.
    MotherBaby,
}

/// The formats `synth` and `simulate` write.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// events.csv, items.csv, users.csv.
    Csv,
    /// events/dt=YYYY-MM-DD/*.parquet, items.parquet, users.parquet.
    Parquet,
}

/// Where the build's data-parallel stages run.
#[derive(clap::Args, Clone)]
struct EngineArgs {
    /// `memory` (the loaded data, in this process), `embedded` (Apache
    /// DataFusion in this process) or `df://HOST:PORT` (an Apache Ballista
    /// scheduler; see `model-builder cluster`).
    #[arg(long, default_value = "memory")]
    engine: String,
    /// With `--engine embedded`: what the engine's operators may hold in
    /// memory before they spill to disk (e.g. 4GB).
    #[arg(long)]
    memory_limit: Option<String>,
    /// With `--engine embedded`: where spills go (default: the OS's
    /// temporary folder).
    #[arg(long)]
    spill_dir: Option<PathBuf>,
    /// A plan that runs longer fails the build, which leaves the published
    /// model as it was (0: no limit).
    #[arg(long, default_value_t = 0)]
    query_timeout_seconds: u64,
    /// With an engine: appends a JSON line per query to this file (what it
    /// computes, when it ran, the rows it returned, and the plan it ran
    /// with each operator's metrics).
    #[arg(long)]
    query_log: Option<PathBuf>,
    /// With an engine: where intermediate tables (the ALS matrix's rows
    /// and each iteration's item factors) are written, and removed after;
    /// on a cluster, a folder that the builder and every executor see at
    /// the same path, as they see `--data` (default: the OS's temporary
    /// folder, which only serves a cluster on one machine).
    #[arg(long)]
    shared_dir: Option<PathBuf>,
    /// With an engine: the memory one pass of the co-occurrence neighbours
    /// may fill across the engine (e.g. 64GB). Its item pairs, about 32
    /// bytes each, set how many passes go over the users' items, and each
    /// pass reads them all again. Default: `--memory-limit` on the
    /// embedded engine, 4GB on a cluster; give a cluster what its
    /// executors hold in all.
    #[arg(long)]
    pass_memory: Option<String>,
}

/// The engine a command's stages run on, open for as long as they run.
struct EngineRun {
    #[cfg(feature = "engine")]
    session: Option<model_builder::engine::plans::Session>,
}

impl EngineArgs {
    /// Opens the engine over `data` (nothing to open for `memory`).
    fn open(&self, data: &std::path::Path) -> Result<EngineRun> {
        if self.engine == "memory" {
            anyhow::ensure!(
                self.memory_limit.is_none() && self.spill_dir.is_none(),
                "--memory-limit and --spill-dir go with --engine embedded"
            );
            anyhow::ensure!(
                self.query_log.is_none() && self.shared_dir.is_none() && self.pass_memory.is_none(),
                "--query-log, --shared-dir and --pass-memory go with --engine embedded or df://HOST:PORT"
            );
            return Ok(EngineRun {
                #[cfg(feature = "engine")]
                session: None,
            });
        }
        #[cfg(feature = "engine")]
        {
            use model_builder::engine::{parse_bytes, plans::Session, Engine};
            let limit = self.memory_limit.as_deref().map(parse_bytes).transpose()?;
            let engine = Engine::parse(&self.engine, limit, self.spill_dir.clone())?;
            eprintln!("engine: {}", engine.describe());
            let timeout = (self.query_timeout_seconds > 0)
                .then(|| std::time::Duration::from_secs(self.query_timeout_seconds));
            let mut session = Session::new(&engine, data, timeout)?;
            if let Some(path) = &self.query_log {
                session = session.log_queries_to(path)?;
            }
            if let Some(dir) = &self.shared_dir {
                session = session.with_shared_dir(dir)?;
            }
            if let Some(memory) = &self.pass_memory {
                let bytes = parse_bytes(memory).context("--pass-memory")?;
                session = session.with_pass_bytes(bytes);
            }
            Ok(EngineRun {
                session: Some(session),
            })
        }
        #[cfg(not(feature = "engine"))]
        anyhow::bail!(
            "--engine {} ({}): this model-builder was built without its `engine` feature",
            self.engine,
            data.display()
        )
    }
}

impl EngineRun {
    fn stages(&self) -> Stages<'_> {
        #[cfg(feature = "engine")]
        if let Some(s) = &self.session {
            return Stages::Engine(s);
        }
        Stages::InMemory
    }
}

#[derive(clap::Args, Clone, Copy)]
struct RowArgs {
    /// Bad rows tolerated (each is still reported); past this the run fails.
    #[arg(long, default_value_t = 0)]
    max_bad_rows: u64,
}

/// The data and days a replay-style evaluation (`eval`, `eval-similar`) reads.
#[derive(clap::Args, Clone)]
struct ReplayArgs {
    /// Data directory.
    #[arg(long)]
    data: PathBuf,
    /// Number of evaluated days.
    #[arg(long, default_value_t = 2)]
    days: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Clone)]
struct ModelArgs {
    /// Neighbours kept per item.
    #[arg(long, default_value_t = 50)]
    k: usize,
    /// Bought-together neighbours kept per item (0: no complements table).
    #[arg(long, default_value_t = 10)]
    complement_k: usize,
    /// Neighbour similarity measure.
    #[arg(long, value_enum, default_value_t = Similarity::Jaccard)]
    similarity: Similarity,
    /// Half-life of co-occurrence affinities, in days.
    #[arg(long, default_value_t = 30.0)]
    cooc_half_life_days: f64,
    /// ALS factor dimension (0: no factors).
    #[arg(long, default_value_t = 32)]
    factors: usize,
    /// ALS confidence slope: c = 1 + alpha * w.
    #[arg(long, default_value_t = 10.0)]
    alpha: f32,
    /// ALS ridge.
    #[arg(long, default_value_t = 0.01)]
    regularization: f32,
    /// ALS iterations.
    #[arg(long, default_value_t = AlsOptions::default().iterations)]
    als_iterations: usize,
}

#[derive(clap::Args, Clone, Copy)]
struct TrainArgs {
    /// Days with conversions before as-of that the shipped ranker learns
    /// from (0: ship the fallback).
    #[arg(long, default_value_t = TrainOptions::default().days)]
    train_days: usize,
    /// The most calendar days before as-of that a training day may lie.
    #[arg(long, default_value_t = TrainOptions::default().lookback_days)]
    train_lookback_days: u32,
    /// What ships when no training day holds a case.
    #[arg(long, value_enum, default_value_t = TrainOptions::default().fallback)]
    fallback: Fallback,
    /// The ranker's training loss.
    #[arg(long, value_enum, default_value_t = RankerLoss::Pairwise)]
    ranker_loss: RankerLoss,
    /// ALS iterations of the training days' models (the shipped model
    /// keeps --als-iterations): the replay is the same at 3 as at 15.
    #[arg(long, default_value_t = TrainOptions::default().als_iterations)]
    train_als_iterations: usize,
    /// The most cases (converting user-days) the ranker is fitted on; more
    /// are thinned evenly, so the fit's time stays bounded on big logs
    /// (0: no limit).
    #[arg(long, default_value_t = TrainOptions::default().max_cases)]
    train_max_cases: usize,
}

impl TrainArgs {
    fn options(&self) -> TrainOptions {
        TrainOptions {
            days: self.train_days,
            lookback_days: self.train_lookback_days,
            fallback: self.fallback,
            loss: self.ranker_loss,
            als_iterations: self.train_als_iterations,
            max_cases: self.train_max_cases,
            ..TrainOptions::default()
        }
    }
}

impl ModelArgs {
    fn options(&self) -> BuildOptions {
        BuildOptions {
            k: self.k,
            complement_k: self.complement_k,
            similarity: self.similarity,
            cooc_half_life_days: self.cooc_half_life_days,
            als: AlsOptions {
                factors: self.factors,
                alpha: self.alpha,
                regularization: self.regularization,
                iterations: self.als_iterations,
                ..AlsOptions::default()
            },
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
    Build(BuildArgs),
    /// Runs an Apache Ballista scheduler or executor with this binary's
    /// functions, for `--engine df://HOST:PORT`.
    #[cfg(feature = "engine")]
    Cluster {
        #[command(subcommand)]
        role: ClusterRole,
    },
    /// Reranks candidates for one user's signals with the native core and
    /// prints `{"items": [...], "scores": [...], "reasons": [...]}`: the
    /// reference the wasm module and the edge worker are checked against.
    Rerank(RerankArgs),
    /// The stage-fit evaluation (README): rank leaf categories for each
    /// held-out purchase by a family with a known baby, at the baby's age.
    EvalStage(EvalStageArgs),
    /// Writes a profile blob (kind 2, FORMAT.md) per family in users.csv:
    /// `<out>/<user_id>.nrp` (ids outside [A-Za-z0-9_-] are skipped).
    Profiles(ProfilesArgs),
    /// Compiles every active family's nightly profile with its user
    /// embedding for one model (FORMAT.md, issue #20): profile blobs under
    /// `<out>/profiles/`, and the edge worker's sharded table under
    /// `<out>/edge/`. Families whose users.csv row says `opt_out` get none.
    Users(UsersArgs),
    /// Runs an A/B experiment on the synthetic shop's families (whose
    /// tastes are known) through the page's decision code, and writes its
    /// logs (with `variant` and `shown_rank`) and `truth.json` (issue #19).
    Simulate(SimulateArgs),
    /// Did it sell more? An experiment's figures per variant, the lift
    /// against the baseline with bootstrap intervals and a verdict, as one
    /// self-contained HTML file (`--out`) and/or JSON (`--json`).
    Report(ReportArgs),
    /// Points --out/manifest.json back to the previous good blob.
    Rollback(RollbackArgs),
    /// Checks a blob: exit 0 and a summary, or the typed error and exit 1.
    Verify(VerifyArgs),
    /// Writes a deterministic synthetic shop: `--kind scale` (events.csv,
    /// items.csv of a given size, for scale tests) or `--kind mother-baby`
    /// (a mother-and-baby shop's catalog, families, logs and today's specials).
    Synth(SynthArgs),
    /// The item-to-item next-item test (README): for each user's last
    /// move on an evaluated day, is the next viewed or carted item among
    /// the 10 neighbours of the item viewed before it?
    EvalSimilar(EvalSimilarArgs),
    /// Personalized push: for every user with signals in the window, the
    /// top of the day's specials from the core scorer and the blob's rules,
    /// without items the user bought, one JSON line a user
    /// (`{"user", "items": [{"id", "score", "reason"}]}`); users with no
    /// confident item get no line.
    Push(PushArgs),
    /// Runs the daily-specials replay of EVAL.md.
    Eval(EvalArgs),
}

// The arguments of `build`.
#[derive(clap::Args)]
struct BuildArgs {
    /// Data directory: events, optional items and users, each as
    /// NAME.csv, NAME.parquet or a folder NAME/ of Parquet files.
    #[arg(long)]
    data: PathBuf,
    /// Use events before this day (YYYY-MM-DD, 00:00 UTC) only.
    #[arg(long)]
    as_of: String,
    /// Output directory for model-<hash>.nrk and manifest.json.
    #[arg(long)]
    out: PathBuf,
    /// Publish a daily blob: keep only the specials (see --specials) and
    /// this many most recently active items (0: keep the whole catalog).
    #[arg(long, default_value_t = 0)]
    max_items: usize,
    /// A file with the day's specials, one item id per line (kept in a
    /// daily blob whatever their activity).
    #[arg(long)]
    specials: Option<PathBuf>,
    /// In a daily blob, keep every kept item's whole neighbour lists
    /// instead of only the links into the specials (the scorer reads
    /// only those; this makes `similar()` answer over the whole blob).
    #[arg(long)]
    full_lists: bool,
    /// Blobs kept in --out (the newest publishes; older ones are deleted).
    #[arg(long, default_value_t = KEEP_DEFAULT)]
    keep: usize,
    /// Operations' rules (JSON: pins, boosts, filter, diversity,
    /// explore; README "Business rules") shipped in the blob.
    #[arg(long)]
    rules: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    train: TrainArgs,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    rows: RowArgs,
}

// The arguments of `rerank`.
#[derive(clap::Args)]
struct RerankArgs {
    /// The blob file.
    #[arg(long)]
    model: PathBuf,
    /// Candidate ids, one a line, in default order.
    #[arg(long)]
    candidates: PathBuf,
    /// The signals as the codec's text (a `nr_signals` cookie value); empty: none.
    #[arg(long, default_value = "")]
    signals: String,
    /// Unix seconds.
    #[arg(long)]
    now: f64,
    /// A profile blob (`profiles`, `users`) to rank with: its baby, its
    /// affinities and its embedding.
    #[arg(long)]
    profile: Option<PathBuf>,
}

// The arguments of `eval-stage`.
#[derive(clap::Args)]
struct EvalStageArgs {
    /// Data directory (events.csv, items.csv, users.csv).
    #[arg(long)]
    data: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    rows: RowArgs,
}

// The arguments of `profiles`.
#[derive(clap::Args)]
struct ProfilesArgs {
    /// Data directory (events.csv, items.csv, users.csv).
    #[arg(long)]
    data: PathBuf,
    /// Use events before this day (YYYY-MM-DD).
    #[arg(long)]
    as_of: String,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    rows: RowArgs,
}

// The arguments of `users`.
#[derive(clap::Args)]
struct UsersArgs {
    /// Data directory (events; users for babies and `opt_out`).
    #[arg(long)]
    data: PathBuf,
    /// The model the embeddings are for (the night's build): a blob, or a
    /// `build --out` folder, whose manifest names it.
    #[arg(long)]
    model: PathBuf,
    /// Use events before this day (YYYY-MM-DD); default: the model's day.
    #[arg(long)]
    as_of: Option<String>,
    /// A family is active with an event in this many days before --as-of.
    #[arg(long, default_value_t = 30)]
    window_days: u32,
    /// Edge shards (default: a power of two, about 256 families each).
    #[arg(long)]
    shards: Option<u32>,
    /// The edge keys' salt as hex (default: 16 random bytes, so each run
    /// rotates every key).
    #[arg(long)]
    salt: Option<String>,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    rows: RowArgs,
}

// The arguments of `simulate`.
#[derive(clap::Args)]
struct SimulateArgs {
    /// A shop written by `synth --kind mother-baby` (its `shop.json`).
    #[arg(long)]
    data: PathBuf,
    /// The blob every nestrank variant serves: a blob, or a `build --out`
    /// folder, whose manifest names it.
    #[arg(long)]
    model: PathBuf,
    /// Days to simulate after the shop's log.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// Variants, comma-separated: control (the shop's order), nestrank
    /// (the shipped ranker) or a hand-set ranker (recent, popular, ...).
    #[arg(long, value_delimiter = ',', default_value = "control,nestrank")]
    variants: Vec<String>,
    /// The experiment's name (visitors are assigned by a hash of it).
    #[arg(long, default_value = "simulated")]
    experiment: String,
    /// Random seed (visitor ids and every draw).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output data directory.
    #[arg(long)]
    out: PathBuf,
    /// The logs' format (parquet: events/dt=YYYY-MM-DD/, exposures.parquet, ...).
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
}

// The arguments of `report`.
#[derive(clap::Args)]
struct ReportArgs {
    /// Data directory: events with `variant` (and `shown_rank`), optional
    /// exposures (`user_id,variant,ts`), items (prices), experiment.json.
    #[arg(long)]
    data: PathBuf,
    /// The HTML file to write.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the figures as one JSON object.
    #[arg(long)]
    json: bool,
    /// The blob served (a blob or a `build --out` folder): its learned
    /// weights and its sections in the HTML.
    #[arg(long)]
    model: Option<PathBuf>,
    /// `eval --json`'s output: the offline replay in the HTML.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// The variant lifts are measured against (default: the experiment's first).
    #[arg(long)]
    baseline: Option<String>,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 2_000)]
    bootstrap: u32,
    /// The intervals' confidence.
    #[arg(long, default_value_t = 0.95)]
    confidence: f64,
    /// The resampling's seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    rows: RowArgs,
}

// The arguments of `rollback`.
#[derive(clap::Args)]
struct RollbackArgs {
    /// The directory `build --out` publishes into.
    #[arg(long)]
    out: PathBuf,
}

// The arguments of `verify`.
#[derive(clap::Args)]
struct VerifyArgs {
    /// The blob file.
    blob: PathBuf,
}

// The arguments of `eval-similar`.
#[derive(clap::Args)]
struct EvalSimilarArgs {
    #[command(flatten)]
    replay: ReplayArgs,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    rows: RowArgs,
}

// The arguments of `push`.
#[derive(clap::Args)]
struct PushArgs {
    /// Data directory (events.csv; users.csv for babies, when present).
    #[arg(long)]
    data: PathBuf,
    /// The blob file.
    #[arg(long)]
    model: PathBuf,
    /// Signals before this day (YYYY-MM-DD, 00:00 UTC), which is also `now`.
    #[arg(long)]
    as_of: String,
    /// The day's specials, one item id a line (default: the items on sale
    /// that day by items.csv's sale_start and sale_end).
    #[arg(long)]
    specials: Option<PathBuf>,
    /// Items per push, at most.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Minimum rise of an item's score over the anonymous one, in
    /// standard deviations of the anonymous scores.
    #[arg(long, default_value_t = 1.0)]
    threshold: f32,
    /// Days of signals before as-of.
    #[arg(long, default_value_t = 30)]
    window_days: u32,
    /// Newest signals per user that the scorer sees, as the phone's
    /// SignalStore keeps them (items bought earlier in the window are
    /// still never pushed, unless a re-buy is due).
    #[arg(long, default_value_t = 200)]
    max_signals: usize,
    /// Rules (JSON) replacing the blob's.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Output JSON-lines file.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    rows: RowArgs,
}

// The arguments of `eval`.
#[derive(clap::Args)]
struct EvalArgs {
    #[command(flatten)]
    replay: ReplayArgs,
    /// Sweep the builder's hyperparameters one at a time around the
    /// given values; the figures are tuned on the evaluated days.
    #[arg(long)]
    sweep: bool,
    /// Which of a user's earlier events each case's phone holds: the
    /// newest 200 as the package's SignalStore keeps (`device`), all of
    /// them as EVAL.md step 5 is written (`all`), or only the last 24
    /// hours', a new phone (`last-24h`).
    #[arg(long, value_enum, default_value_t = SignalWindow::Device)]
    signals: SignalWindow,
    /// Give each case its family's profile as the nightly build would ship
    /// it that morning (`users`): the affinities and the embedding, from
    /// the events before the day.
    #[arg(long)]
    user_embeddings: bool,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    train: TrainArgs,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    rows: RowArgs,
}

// The arguments of `synth`.
#[derive(clap::Args)]
struct SynthArgs {
    /// Output data directory.
    #[arg(long)]
    out: PathBuf,
    /// What to generate.
    #[arg(long, value_enum, default_value_t = SynthKind::Scale)]
    kind: SynthKind,
    /// Events (scale).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Users (scale: default 100,000) or families (mother-baby: default 3,000).
    #[arg(long)]
    users: Option<u32>,
    /// New specials a day, each on sale 5-7 days (mother-baby).
    #[arg(long, default_value_t = 85)]
    launches_per_day: u32,
    /// Items.
    #[arg(long, default_value_t = 50_000)]
    items: u32,
    /// Categories.
    #[arg(long, default_value_t = 300)]
    categories: u32,
    /// Days the log spans, ending the day before --end.
    #[arg(long, default_value_t = 28)]
    days: u32,
    /// The first day after the log (YYYY-MM-DD); mother-baby: the day of the specials page.
    #[arg(long, default_value = "2026-11-01")]
    end: String,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The files' format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
}

#[cfg(feature = "engine")]
#[derive(Subcommand)]
enum ClusterRole {
    /// The scheduler: plans jobs into stages and hands tasks to executors.
    Scheduler {
        /// Address to listen on (gRPC), e.g. 0.0.0.0:50050.
        #[arg(long)]
        bind: std::net::SocketAddr,
        /// The host name executors and builds reach it by (default: the
        /// bind address).
        #[arg(long)]
        external_host: Option<String>,
        /// Seconds without a heartbeat after which an executor is taken
        /// for dead and its tasks run elsewhere.
        #[arg(long, default_value_t = 20)]
        executor_timeout_seconds: u64,
    },
    /// An executor: runs tasks and serves their shuffle output.
    Executor {
        /// The scheduler, HOST:PORT.
        #[arg(long)]
        scheduler: String,
        /// Address to serve shuffle data on (Arrow Flight), e.g. 0.0.0.0:50051.
        #[arg(long)]
        bind: std::net::SocketAddr,
        /// The executor's gRPC port (default: the --bind port + 1).
        #[arg(long)]
        grpc_port: Option<u16>,
        /// The host name the scheduler and other executors reach it by.
        #[arg(long)]
        external_host: Option<String>,
        /// Tasks at once (0: one per core).
        #[arg(long, default_value_t = 0)]
        cores: usize,
        /// Where shuffle files go (default: a temporary folder).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Appends a JSON line per finished task to this file: its job,
        /// stage, seconds and the bytes it wrote to shuffle (for sizing a
        /// cluster; see bench/cluster.sh).
        #[arg(long)]
        task_log: Option<PathBuf>,
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
    /// Tianchi "Mum Baby" (dataset 45): the folder with
    /// sam_tianchi_mum_baby.csv and sam_tianchi_mum_baby_trade_history.csv.
    TianchiMumBaby {
        /// The folder holding the two CSV files.
        dir: PathBuf,
        /// Output data directory.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        rows: RowArgs,
    },
}

/// A `--model` path: a blob, or a `build --out` folder whose manifest names one.
fn blob_path(model: PathBuf) -> Result<PathBuf> {
    if !model.is_dir() {
        return Ok(model);
    }
    let manifest = model.join("manifest.json");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let file: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", manifest.display()))?;
    let name = file["file"]
        .as_str()
        .with_context(|| format!("{} names no file", manifest.display()))?;
    Ok(model.join(name))
}

fn simulate(
    SimulateArgs {
        data,
        model,
        days,
        variants,
        experiment,
        seed,
        out,
        format,
    }: SimulateArgs,
) -> Result<()> {
    let model = blob_path(model)?;
    let bytes =
        std::fs::read(&model).with_context(|| format!("cannot read {}", model.display()))?;
    let t = Instant::now();
    let o = model_builder::simulate::SimOptions {
        days,
        variants,
        experiment,
        seed,
    };
    let truth = model_builder::simulate::simulate(&data, &bytes, &o, &out)?;
    write_format(&out, format)?;
    println!(
        "simulated {days} days into {} in {:.1}s: {} events",
        out.display(),
        t.elapsed().as_secs_f64(),
        truth.events
    );
    for (v, rate) in &truth.conversion_rate {
        println!(
            "  {v}: {} visitors in the experiment; true conversion rate {:.4}",
            truth.visitors[v], rate
        );
    }
    Ok(())
}

fn report(a: ReportArgs) -> Result<()> {
    anyhow::ensure!(
        a.out.is_some() || a.json,
        "report: give --out FILE.html, --json, or both"
    );
    anyhow::ensure!(
        a.confidence > 0.0 && a.confidence < 1.0 && a.bootstrap >= 100,
        "report: --confidence must be in (0, 1) and --bootstrap at least 100"
    );
    let mut bad = model_builder::rows::BadRows::new(policy(a.rows));
    let o = model_builder::report::ReportOptions {
        bootstrap: a.bootstrap,
        confidence: a.confidence,
        seed: a.seed,
        baseline: a.baseline,
    };
    let r = model_builder::report::analyze(&a.data, &o, &mut bad)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    }
    let Some(out) = a.out else {
        return Ok(());
    };
    let mut extras = model_builder::report_html::Extras::default();
    if let Some(model) = a.model {
        let path = blob_path(model)?;
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let m = Model::from_bytes(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: invalid blob: {e}", path.display()))?;
        let container =
            nestrank::format::Container::parse(&bytes, nestrank::format::BlobKind::Model)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        extras.model = Some(model_builder::report_html::ModelFacts {
            id: m.model_id(),
            as_of: nestrank::calendar::format_date(m.header().as_of_day),
            weights: nestrank::rank::FEATURE_NAMES
                .iter()
                .zip(&m.ranker().weights)
                .map(|(n, w)| (n.to_string(), *w))
                .collect(),
            sections: container
                .sections
                .iter()
                .map(|(id, data)| {
                    (
                        nestrank::model::section::name(*id)
                            .unwrap_or("?")
                            .to_string(),
                        data.len(),
                    )
                })
                .collect(),
        });
    }
    if let Some(replay) = a.replay {
        let text = std::fs::read_to_string(&replay)
            .with_context(|| format!("cannot read {}", replay.display()))?;
        extras.replay = Some(
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not `eval --json` output", replay.display()))?,
        );
    }
    let title = format!(
        "Experiment report: {}",
        r.experiment.as_deref().unwrap_or("nestrank")
    );
    let html = model_builder::report_html::render(&r, &extras, &title);
    model_builder::publish::write_atomically(&out, |w| {
        w.write_all(html.as_bytes())?;
        Ok(())
    })?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// Reads and decodes a blob file, naming the file in any error.
fn read_model(path: &std::path::Path) -> Result<Model> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Model::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("{}: invalid blob: {e}", path.display()))
}

/// Item ids, one a line (blank lines skipped).
fn read_ids(path: &std::path::Path) -> Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// This process's peak resident set (kB), where /proc says.
fn peak_rss() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Reads and checks a rules file (JSON), naming the file and the rule at fault.
fn read_rules(path: &std::path::Path) -> Result<nestrank::RuleSet> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let rules: nestrank::RuleSet = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a rule set", path.display()))?;
    rules
        .validate()
        .with_context(|| format!("{}: invalid rule set", path.display()))?;
    Ok(rules)
}

/// A `YYYY-MM-DD` flag as days since 1970, or an error naming the flag.
fn date_arg(flag: &str, value: &str) -> Result<i32> {
    parse_date(value).with_context(|| format!("{flag} `{value}` is not a date YYYY-MM-DD"))
}

/// Rewrites a freshly written CSV data directory in `format`.
fn write_format(out: &std::path::Path, format: Format) -> Result<()> {
    match format {
        Format::Csv => Ok(()),
        #[cfg(feature = "engine")]
        Format::Parquet => {
            let t = Instant::now();
            model_builder::engine::parquet::csv_to_parquet(out)?;
            println!(
                "rewrote {} as Parquet (events partitioned by day) in {:.1}s",
                out.display(),
                t.elapsed().as_secs_f64()
            );
            Ok(())
        }
        #[cfg(not(feature = "engine"))]
        Format::Parquet => anyhow::bail!(
            "{}: --format parquet needs model-builder's `engine` feature",
            out.display()
        ),
    }
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
        Command::Import {
            source: ImportSource::TianchiMumBaby { dir, out, rows },
        } => {
            let s = import::tianchi_mum_baby(&dir, &out, policy(rows))?;
            println!(
                "imported {} purchases of {} items, and the babies, into {} ({} bad rows skipped)",
                s.events,
                s.items,
                out.display(),
                s.bad_rows
            );
        }
        Command::Build(args) => build(args)?,
        Command::Synth(args) => match args.kind {
            SynthKind::MotherBaby => synth_shop(args)?,
            SynthKind::Scale => synth_scale(args)?,
        },
        #[cfg(feature = "engine")]
        Command::Cluster { role } => match role {
            ClusterRole::Scheduler {
                bind,
                external_host,
                executor_timeout_seconds,
            } => model_builder::engine::cluster::scheduler(
                bind,
                external_host,
                executor_timeout_seconds,
            )?,
            ClusterRole::Executor {
                scheduler,
                bind,
                grpc_port,
                external_host,
                cores,
                work_dir,
                task_log,
            } => {
                let (host, port) = scheduler
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                    .with_context(|| format!("--scheduler `{scheduler}`: expected HOST:PORT"))?;
                model_builder::engine::cluster::executor(
                    model_builder::engine::cluster::ExecutorOptions {
                        scheduler: (host, port),
                        bind,
                        grpc_port,
                        external_host,
                        cores,
                        work_dir,
                        task_log,
                    },
                )?
            }
        },
        Command::Push(args) => push(args)?,
        Command::EvalSimilar(args) => eval_similar(args)?,
        Command::Rerank(args) => rerank(args)?,
        Command::EvalStage(args) => eval_stage(args)?,
        Command::Profiles(args) => profiles(args)?,
        Command::Users(args) => users(args)?,
        Command::Simulate(args) => simulate(args)?,
        Command::Report(args) => report(args)?,
        Command::Rollback(args) => rollback_cmd(args)?,
        Command::Verify(args) => verify(args)?,
        Command::Eval(args) => eval(args)?,
    }
    Ok(())
}

fn build(
    BuildArgs {
        data,
        as_of,
        out,
        max_items,
        specials,
        full_lists,
        keep,
        rules,
        model,
        train,
        engine,
        rows,
    }: BuildArgs,
) -> Result<()> {
    let day = date_arg("--as-of", &as_of)?;
    let rules = rules.as_deref().map(read_rules).transpose()?;
    let engine = engine.open(&data)?;
    let build = BuildOptions {
        rules,
        ..model.options()
    };
    let daily = (max_items > 0 || specials.is_some())
        .then(|| -> Result<Restriction> {
            Ok(Restriction {
                specials: specials
                    .as_deref()
                    .map(read_ids)
                    .transpose()?
                    .unwrap_or_default(),
                max_items,
                full_lists,
            })
        })
        .transpose()?;
    let r = pipeline::build(
        pipeline::BuildRequest {
            data: &data,
            policy: policy(rows),
            as_of: day,
            build: &build,
            train: &train.options(),
            daily,
            out: &out,
            keep,
        },
        engine.stages(),
    )?;
    if let Some((kept, full)) = r.daily {
        println!(
            "daily blob: kept {kept} of {full} items (specials + {max_items} most recently active)"
        );
    }
    let m = &r.manifest;
    println!(
            "built {} (model {}, as of {}, {} items, {} bytes) in {:.2}s load + {:.2}s build + {:.2}s ranker training on {} day(s)",
            r.path.display(),
            m.model_id,
            format_date(day),
            m.item_count,
            m.bytes,
            r.load_s,
            r.build_s,
            r.train_s,
            r.ranker.train_days.len()
        );
    let days: Vec<String> = r
        .ranker
        .train_days
        .iter()
        .map(|&d| format_date(d))
        .collect();
    println!(
        "ranker: {} ({} training cases on {})",
        r.ranker.shipped.name(),
        r.ranker.train_cases,
        if days.is_empty() {
            "no day".to_string()
        } else {
            days.join(", ")
        }
    );
    println!(
        "stages: items {:.2}s, neighbours {:.2}s, ALS ({} factors, {} iterations) {:.2}s",
        r.stages.items, r.stages.neighbours, build.als.factors, build.als.iterations, r.stages.als
    );
    let t = r.training;
    if t.cases > 0 {
        println!(
            "ranker training: models {:.2}s, features {:.2}s, fit {:.2}s ({} cases)",
            t.models_s, t.features_s, t.fit_s, t.cases
        );
    }
    if !matches!(engine.stages(), Stages::InMemory) {
        println!(
            "the builder held {} events of {} users (the engine kept the rest)",
            r.held.0, r.held.1
        );
    }
    Ok(())
}

fn rerank(
    RerankArgs {
        model,
        candidates,
        signals,
        now,
        profile,
    }: RerankArgs,
) -> Result<()> {
    let mut rec = nestrank::Recommender::new(read_model(&model)?);
    if let Some(path) = profile {
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let p = nestrank::profile::Profile::from_bytes(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: invalid profile blob: {e}", path.display()))?;
        rec.set_profile(Some(p));
        if let Some(warning) = rec.embedding_warning() {
            eprintln!("warning: {warning}");
        }
    }
    let text = std::fs::read_to_string(&candidates)
        .with_context(|| format!("cannot read {}", candidates.display()))?;
    let cand: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let decoded = if signals.is_empty() {
        Vec::new()
    } else {
        nestrank::codec::decode(&signals).context("--signals")?
    };
    let sig: Vec<(&str, nestrank::Event, f64)> = decoded
        .iter()
        .map(|s| (s.item.as_str(), s.event, s.ts as f64))
        .collect();
    let out = rec.rerank_ids(&cand, &sig, now, true)?;
    println!(
        "{}",
        serde_json::json!({ "items": out.items, "scores": out.scores, "reasons": out.reasons, "because": out.because })
    );
    Ok(())
}

fn eval_stage(EvalStageArgs { data, json, rows }: EvalStageArgs) -> Result<()> {
    let ds = Dataset::load(&data, policy(rows))?;
    let r =
        model_builder::stage_eval::eval_stage(&ds).with_context(|| data.display().to_string())?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "cases": r.cases,
                "test_from": r.test_from,
                "rankers": r.rankers,
                "tuned": { "gamma": r.tuned_gamma, "prior": r.tuned_prior, "half_life_days": if r.tuned_half_life_days.is_finite() { serde_json::json!(r.tuned_half_life_days) } else { serde_json::Value::Null }, "kappa": r.tuned_kappa },
                "lift_over_popular": r.lifts,
                "rolling": r.rolling,
            })
        );
    } else {
        println!(
                "stage fit: {} test purchases by families with a known baby (from {}), {} leaf categories; the age fit learned from {} purchases; chosen on the last 20% of the training days: blend_tuned lift^{} with prior {} and popularity half-life {} days, blend_bayes {} pseudo-purchases",
                r.cases, r.test_from, r.categories, r.train_purchases, r.tuned_gamma, r.tuned_prior, r.tuned_half_life_days, r.tuned_kappa
            );
        println!(
            "{:<16} {:>8} {:>8} {:>8}",
            "ranker", "HR@10", "NDCG@10", "MRR"
        );
        for (name, s) in &r.rankers {
            println!(
                "{name:<16} {:>8.4} {:>8.4} {:>8.4}",
                s.hr10, s.ndcg10, s.mrr
            );
        }
        for l in &r.lifts {
            println!(
                "{} over popular in NDCG@10: {:.3}x [{:.3}x, {:.3}x] ({:.0}% bootstrap interval over the cases, {} resamples)",
                l.ranker,
                l.ratio,
                l.low,
                l.high,
                l.confidence * 100.0,
                l.resamples
            );
        }
        println!("the same check at earlier dates (a build as of `from`, tested on the days before `to`):");
        println!(
            "{:<10} {:<10} {:>8} {:>6} {:>6} {:>8} {:>8} {:>7}",
            "from", "to", "learned", "cases", "kappa", "popular", "shipped", "ratio"
        );
        for f in &r.rolling {
            let ratio = if f.popular > 0.0 {
                format!("{:.3}x", f.shipped / f.popular)
            } else {
                "-".to_string()
            };
            println!(
                "{:<10} {:<10} {:>8} {:>6} {:>6} {:>8.4} {:>8.4} {:>7}",
                f.from, f.to, f.learned_from, f.cases, f.kappa, f.popular, f.shipped, ratio
            );
        }
    }
    Ok(())
}

fn profiles(
    ProfilesArgs {
        data,
        as_of,
        out,
        rows,
    }: ProfilesArgs,
) -> Result<()> {
    let day = date_arg("--as-of", &as_of)?;
    let ds = Dataset::load(&data, policy(rows))?;
    let r = model_builder::profiles::write_profiles(&ds, day, &out)?;
    println!(
        "wrote {} profile blobs into {} ({} bytes on average; {} skipped)",
        r.written,
        out.display(),
        r.bytes.checked_div(r.written).unwrap_or(0),
        r.skipped
    );
    Ok(())
}

fn users(
    UsersArgs {
        data,
        model,
        as_of,
        window_days,
        shards,
        salt,
        out,
        json,
        engine,
        rows,
    }: UsersArgs,
) -> Result<()> {
    let model = blob_path(model)?;
    let bytes =
        std::fs::read(&model).with_context(|| format!("cannot read {}", model.display()))?;
    let m = Model::from_bytes(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: invalid blob: {e}", model.display()))?;
    let as_of_day = match &as_of {
        Some(d) => date_arg("--as-of", d)?,
        None => m.header().as_of_day,
    };
    let salt = match salt {
        None => None,
        Some(h) => Some(
            model_builder::family::parse_hex(&h)
                .with_context(|| format!("--salt `{h}` is not hex"))?,
        ),
    };
    anyhow::ensure!(shards != Some(0), "--shards must be at least 1");
    let engine = engine.open(&data)?;
    let opts = model_builder::users::UsersOptions {
        as_of_day,
        window_days,
        shards,
        salt,
    };
    let r = pipeline::users(
        &data,
        policy(rows),
        (&m, &bytes),
        &opts,
        &out,
        engine.stages(),
    )?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "wrote {} families ({} with an embedding; {} opted out) for model {} into {}: profiles {} bytes on average (embedding {}), {} edge shards of {} bytes on average",
            r.users,
            r.with_embedding,
            r.opted_out,
            m.model_id(),
            out.display(),
            r.profile_bytes.checked_div(r.users).unwrap_or(0),
            r.embedding_bytes.checked_div(r.with_embedding).unwrap_or(0),
            r.shards,
            r.edge_bytes / r.shards.max(1) as usize
        );
    }
    Ok(())
}

fn rollback_cmd(RollbackArgs { out }: RollbackArgs) -> Result<()> {
    let m = rollback(&out)?;
    println!(
        "rolled back: {} now names {} (model {}, as of {})",
        out.join("manifest.json").display(),
        m.file,
        m.model_id,
        m.as_of
    );
    Ok(())
}

fn verify(VerifyArgs { blob }: VerifyArgs) -> Result<()> {
    let model = read_model(&blob)?;
    let bytes = std::fs::metadata(&blob)?.len();
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
            bytes
        );
    let weights: Vec<String> = nestrank::rank::FEATURE_NAMES
        .iter()
        .zip(&model.ranker().weights)
        .map(|(n, w)| format!("{n}={w:.4}"))
        .collect();
    println!("ranker: {}", weights.join(" "));
    match model.factors() {
        Some(f) => println!(
            "factors: dim {}, alpha {}, regularization {}",
            f.dim, f.alpha, f.regularization
        ),
        None => println!("factors: none"),
    }
    Ok(())
}

fn eval_similar(
    EvalSimilarArgs {
        replay: ReplayArgs { data, days, json },
        model,
        rows,
    }: EvalSimilarArgs,
) -> Result<()> {
    let ds = Dataset::load(&data, policy(rows))?;
    let mut opts = model.options();
    opts.als.factors = 0; // neighbours only
    let t = Instant::now();
    let report = model_builder::next_item::evaluate(&ds, days, &opts)?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.table());
        println!("({:.1}s)", t.elapsed().as_secs_f64());
    }
    Ok(())
}

fn push(
    PushArgs {
        data,
        model,
        as_of,
        specials,
        top,
        threshold,
        window_days,
        max_signals,
        rules,
        out,
        engine,
        rows,
    }: PushArgs,
) -> Result<()> {
    let day = date_arg("--as-of", &as_of)?;
    let engine = engine.open(&data)?;
    let mut rec = nestrank::Recommender::new(read_model(&model)?);
    if let Some(path) = rules {
        rec.set_rules(Some(read_rules(&path)?))?;
    }
    let specials = match &specials {
        Some(path) => read_ids(path)?,
        None => model_builder::push::specials_on_sale(&data, day, policy(rows))?,
    };
    anyhow::ensure!(!specials.is_empty(), "no specials on {as_of}");
    let file =
        std::fs::File::create(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let opts = model_builder::push::PushOptions {
        as_of_day: day,
        top,
        threshold,
        window_days,
        max_signals,
    };
    let r = pipeline::push(
        &data,
        &rec,
        &specials,
        &opts,
        policy(rows),
        &mut w,
        engine.stages(),
    )?;
    println!(
            "pushed {} of {} users ({} items) into {}: read {} events in {:.2}s, ranked {} specials per user in {:.2}s = {:.0} users/s; {} signals kept; peak RSS {}",
            r.pushed,
            r.users,
            r.items,
            out.display(),
            r.events_read,
            r.read_s,
            specials.len(),
            r.rank_s,
            r.users_per_s,
            r.signals_kept,
            peak_rss().map_or("unknown".into(), |kb| format!("{:.0} MB", kb as f64 / 1024.0))
        );
    Ok(())
}

fn eval(
    EvalArgs {
        replay: ReplayArgs { data, days, json },
        sweep,
        signals,
        user_embeddings,
        model,
        train,
        engine,
        rows,
    }: EvalArgs,
) -> Result<()> {
    let ds = Dataset::load(&data, policy(rows))?;
    let engine = engine.open(&data)?;
    let scenario = Scenario {
        days,
        signals,
        user_embeddings,
    };
    if sweep {
        println!(
            "SWEEP: every figure below is tuned on the evaluated days themselves, so the best\n\
                 row is an optimistic figure, not a held-out one. Report `eval` without --sweep."
        );
        println!(
            "{:<28} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "setting", "hybrid", "HR@10", "itemcf", "als", "seconds"
        );
        let points = sweep_points(&model.options(), &train.options());
        for (name, build, train) in points {
            let t = Instant::now();
            let r = replay(
                &ds,
                scenario,
                &build,
                &train,
                &default_rankers(),
                engine.stages(),
            )?;
            println!(
                "{:<28} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.1}",
                name,
                r.rankers["hybrid"].ndcg10,
                r.rankers["hybrid"].hr10,
                r.rankers["itemcf"].ndcg10,
                r.rankers["als"].ndcg10,
                t.elapsed().as_secs_f64()
            );
        }
        return Ok(());
    }
    let report = replay(
        &ds,
        scenario,
        &model.options(),
        &train.options(),
        &default_rankers(),
        engine.stages(),
    )?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

fn synth_shop(
    SynthArgs {
        out,
        users,
        launches_per_day,
        days,
        end,
        seed,
        format,
        ..
    }: SynthArgs,
) -> Result<()> {
    let today = date_arg("--end", &end)?;
    let t = Instant::now();
    let s = shop::generate(
        &out,
        &shop::ShopOptions {
            families: users.unwrap_or(3_000),
            days,
            today,
            launches_per_day,
            seed,
        },
    )?;
    println!(
            "wrote a mother-and-baby shop into {}: {} items, {} events, {} specials on {end}, in {:.1}s",
            out.display(),
            s.items,
            s.events,
            s.specials_today,
            t.elapsed().as_secs_f64()
        );
    write_format(&out, format)?;
    Ok(())
}

fn synth_scale(
    SynthArgs {
        out,
        events,
        users,
        items,
        categories,
        days,
        end,
        seed,
        format,
        ..
    }: SynthArgs,
) -> Result<()> {
    let users = users.unwrap_or(100_000);
    let end_day = date_arg("--end", &end)?;
    let t = Instant::now();
    synth::generate(
        &out,
        &synth::SynthOptions {
            events,
            users,
            items,
            categories,
            days,
            end_day,
            seed,
        },
    )?;
    println!(
        "wrote {events} events of {users} users on {items} items into {} in {:.1}s",
        out.display(),
        t.elapsed().as_secs_f64()
    );
    write_format(&out, format)?;
    Ok(())
}
