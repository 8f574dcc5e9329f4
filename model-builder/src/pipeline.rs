//! What a nightly build reads, wherever its stages run.
//!
//! In memory, the whole log is loaded. On the query engine, the builder
//! holds only what the engine's tables do not cover: every conversion (the
//! stage fit, re-purchase gaps and the replay's specials) and the events of
//! the users who converted on a training day (the ranker's cases). The item
//! statistics, both neighbour tables and the ALS matrix come from the
//! engine's plans, so the builder's memory grows with the users and items
//! (it numbers them) and the conversions, not with the views.

use crate::build::{recent_items, Stages};
use crate::data::Dataset;
use crate::options::DAY;
use crate::push::{PushOptions, PushReport};
use crate::rows::BadRowPolicy;
use crate::train::TrainOptions;
use anyhow::Result;
use std::path::Path;

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
            let learn = crate::train::training_days(&days, as_of, train);
            let (items, users) = (session.items()?, session.users()?);
            Dataset::load_selected(dir, policy, &items, &users, log_start, |f| {
                session.for_each_selected_event(i64::from(as_of) * DAY, &learn, f)
            })
        }
        #[cfg(not(feature = "engine"))]
        Stages::Never(_, never) => match never {},
    }
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
