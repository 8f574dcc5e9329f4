//! What a nightly build reads, wherever its stages run.
//!
//! In memory, the whole log is loaded. On the query engine, the builder
//! holds only what the engine's tables do not cover: every purchase (the
//! stage fit and re-purchase gaps), the candidate training days' carts and
//! purchases (the replay's specials and cases), and the earlier events of
//! the users behind the cases the ranker fits (at most `--train-max-cases`). The
//! item statistics, both neighbour tables and the ALS matrix come from the
//! engine's plans, so the builder's memory grows with the items (it numbers
//! them) and the purchases, not with the views and carts nor with the
//! users who only viewed.

use crate::build::{build_parts_on, recent_items, restrict, Restriction, StageTimes, Stages};
use crate::data::Dataset;
use crate::options::{BuildOptions, DAY};
use crate::publish::{publish, Manifest};
use crate::push::{PushOptions, PushReport};
use crate::rows::BadRowPolicy;
use crate::train::{ShippedRanker, TrainOptions, TrainStages, Trainer};
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a nightly build makes.
pub struct BuildRequest<'a> {
    /// The shop's data directory.
    pub data: &'a Path,
    /// Its bad-row policy.
    pub policy: BadRowPolicy,
    /// The model's as-of day (days since 1970-01-01).
    pub as_of: i32,
    /// The model's settings.
    pub build: &'a BuildOptions,
    /// How its ranker is learned.
    pub train: &'a TrainOptions,
    /// Cut to a daily blob: the specials and the most recently active
    /// items (`None`: every item).
    pub daily: Option<Restriction>,
    /// Where the blob and its manifest are published.
    pub out: &'a Path,
    /// How many older blobs stay beside it.
    pub keep: usize,
}

/// What a nightly build did, and where its time went.
pub struct BuildReport {
    /// The published blob.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Seconds reading the data.
    pub load_s: f64,
    /// Seconds building the model's tables.
    pub build_s: f64,
    /// Seconds learning the ranker.
    pub train_s: f64,
    /// The tables' stages.
    pub stages: StageTimes,
    /// The ranker that shipped.
    pub ranker: ShippedRanker,
    /// The ranker training's stages.
    pub training: TrainStages,
    /// A daily blob's kept and full item counts.
    pub daily: Option<(usize, usize)>,
    /// The events and users the builder held (on an engine, a selection:
    /// the purchases, the training days' conversions and the fitted cases'
    /// users' events, and their users).
    pub held: (usize, usize),
}

/// The nightly build: reads the data, builds the model's tables on
/// `stages`, learns its ranker, cuts a daily blob if asked, and publishes.
pub fn build(req: BuildRequest<'_>, stages: Stages) -> Result<BuildReport> {
    let day = req.as_of;
    let t = Instant::now();
    let ds = load_for_build(req.data, req.policy, day, req.train, stages)?;
    let load_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (mut parts, times) = build_parts_on(&ds, day, req.build, stages)?;
    let build_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut trainer = Trainer::new(&ds, req.build, req.train, stages);
    let ranker = trainer.ranker_for(day)?;
    parts.ranker = ranker.params.clone();
    let train_s = t.elapsed().as_secs_f64();
    let mut daily = None;
    if let Some(r) = req.daily {
        let full = parts.items.ids.len();
        let recent = recent(&ds, day, r.max_items + r.specials.len(), stages)?;
        parts = restrict(&parts, &recent, &r);
        daily = Some((parts.items.ids.len(), full));
    }
    let (path, manifest) = publish(&parts, req.out, req.keep)?;
    Ok(BuildReport {
        path,
        manifest,
        load_s,
        build_s,
        train_s,
        stages: times,
        ranker,
        training: trainer.times,
        daily,
        held: (ds.events.len(), ds.users.len()),
    })
}

/// The data a build as of `as_of` (days since 1970-01-01) reads from
/// `dir`, its ranker trained with `train`.
#[cfg_attr(not(feature = "engine"), allow(unused_variables))]
pub fn load_for_build(
    dir: &Path,
    policy: BadRowPolicy,
    as_of: i32,
    train: &TrainOptions,
    stages: Stages,
) -> Result<Dataset> {
    match stages {
        Stages::InMemory => Dataset::load(dir, policy),
        #[cfg(feature = "engine")]
        Stages::Engine(session) => {
            let (log_start, days) = session.log_days()?;
            let days = crate::train::without_first_day(days, log_start);
            // Only the cases the ranker will fit need their users' earlier
            // events: choose them from the candidate days' conversions
            // first (the trainer makes the same choice from the loaded
            // data, which holds those conversions too).
            let candidates = crate::train::training_days(&days, as_of, train);
            use crate::engine::plans::Learners;
            let learners = if candidates.is_empty() {
                Learners::Named(Vec::new())
            } else {
                let probe =
                    Dataset::from_events(|f| session.for_each_conversion_on(&candidates, f))?;
                let learn = crate::train::days_to_learn(&days, as_of, train, |d| {
                    crate::replay::case_count(&probe, d)
                });
                let users = crate::train::fitted_case_users(&probe, &learn, train);
                if users.len() <= MAX_NAMED_LEARNERS {
                    Learners::Named(users)
                } else {
                    Learners::ConvertedOn(learn)
                }
            };
            let items = session.items()?;
            Dataset::load_selected(dir, policy, row_check(session)?, &items, log_start, |f| {
                session.for_each_selected_event(i64::from(as_of) * DAY, &candidates, &learners, f)
            })
        }
        #[cfg(not(feature = "engine"))]
        Stages::Never(_, never) => match never {},
    }
}

/// At most this many fitted cases' users are named in the plan that
/// selects the builder's events (10,000 at the default
/// `--train-max-cases`); past it (a larger cap, or none), the builder
/// loads every user who converted on a day it learns from instead.
#[cfg(feature = "engine")]
const MAX_NAMED_LEARNERS: usize = 50_000;

/// How a build checks the rows of a log on `session`: a Parquet log in
/// which the engine kept every row is not read again (at 10 M events, a
/// pass of about 1.6 s on the development VM, linear in events);
/// otherwise every row is read, and each bad one reported by file, row
/// and column. (`push` and `users` read every row: the count needs the
/// numbered events, which only a build writes, and which cost more than
/// the pass.)
#[cfg(feature = "engine")]
fn row_check(session: &crate::engine::plans::Session) -> Result<crate::data::RowCheck> {
    Ok(match session.bad_event_rows()? {
        Some(0) => crate::data::RowCheck::CountedClean,
        _ => crate::data::RowCheck::Read,
    })
}

/// Up to `limit` items with an event before `as_of`, most recently active
/// first.
pub fn recent(ds: &Dataset, as_of: i32, limit: usize, stages: Stages) -> Result<Vec<String>> {
    let cutoff = i64::from(as_of) * DAY;
    match stages {
        Stages::InMemory => Ok(recent_items(ds, cutoff, limit)),
        #[cfg(feature = "engine")]
        Stages::Engine(session) => session.recent_items(cutoff, limit),
        #[cfg(not(feature = "engine"))]
        Stages::Never(_, never) => match never {},
    }
}

/// [`crate::push::push`], its window's events selected by `stages`. On an
/// engine, the builder still reads and checks every row (bad rows are
/// reported as in memory) but keeps none; the engine hands it the
/// window's events.
pub fn push(
    data: &Path,
    rec: &nestrank::Recommender,
    specials: &[String],
    opts: &PushOptions,
    policy: BadRowPolicy,
    out: &mut dyn std::io::Write,
    stages: Stages,
) -> Result<PushReport> {
    match stages {
        Stages::InMemory => crate::push::push(data, rec, specials, opts, policy, out),
        #[cfg(feature = "engine")]
        Stages::Engine(session) => {
            let mut bad = crate::rows::BadRows::new(policy);
            let events = crate::rows::Table::open(data, "events")?;
            crate::data::for_each_event(events, &mut bad, |_, _, _, _| {})?;
            let end = i64::from(opts.as_of_day) * DAY;
            let start = end - i64::from(opts.window_days) * DAY;
            let mut report = crate::push::push_from(data, rec, specials, opts, policy, out, |f| {
                session.for_each_event_between(start, end, f)
            })?;
            report.bad_rows = bad.rows().len();
            Ok(report)
        }
        #[cfg(not(feature = "engine"))]
        Stages::Never(_, never) => match never {},
    }
}

/// `users`: every active family's nightly record for `model` (the decoded
/// blob and its bytes), written into `out` ([`crate::users`]).
#[cfg_attr(not(feature = "engine"), allow(unused_variables))]
pub fn users(
    dir: &Path,
    policy: BadRowPolicy,
    (model, model_bytes): (&nestrank::Model, &[u8]),
    opts: &crate::users::UsersOptions,
    out: &Path,
    stages: Stages,
) -> Result<crate::users::UsersWritten> {
    match stages {
        Stages::InMemory => {
            crate::users::write_users(&Dataset::load(dir, policy)?, model, opts, out)
        }
        #[cfg(feature = "engine")]
        Stages::Engine(session) => {
            // The catalog and `users`; the events stay on the engine (each
            // row is still read and checked, as every command does).
            let check = crate::data::RowCheck::Read;
            let ds = Dataset::load_selected(dir, policy, check, &[], None, |_| Ok(()))?;
            crate::users::write_users_on(session, &ds, model, model_bytes, opts, out)
        }
        #[cfg(not(feature = "engine"))]
        Stages::Never(_, never) => match never {},
    }
}
