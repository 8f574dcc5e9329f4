//! `model-builder cluster scheduler` and `model-builder cluster executor`:
//! Apache Ballista's own scheduler and executor, started from this binary so
//! that an operator installs one program on every machine. Scheduling,
//! shuffle, retries and the RPC between them are Ballista's.

use super::functions;
use crate::runtime::block_on;
use anyhow::{anyhow, Context, Result};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::utils::default_session_builder;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::FunctionRegistry;
use datafusion::prelude::SessionConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Runs a scheduler on `bind` until the process is stopped. `external_host`
/// is the name executors and clients reach it by (default: the bind
/// address). An executor silent for `executor_timeout_s` seconds is taken
/// for dead, and its tasks run elsewhere.
pub fn scheduler(
    bind: SocketAddr,
    external_host: Option<String>,
    executor_timeout_s: u64,
) -> Result<()> {
    let mut config = SchedulerConfig::default()
        .with_hostname(external_host.unwrap_or_else(|| bind.ip().to_string()))
        .with_port(bind.port());
    config.bind_host = bind.ip().to_string();
    // Executors beat every 2 s (see `executor`); checked three times a timeout.
    let timeout = executor_timeout_s.max(3 * EXECUTOR_HEARTBEAT_S);
    config.executor_timeout_seconds = timeout;
    config.expire_dead_executor_interval_seconds = (timeout / 3).max(1);
    config.no_executors_grace_period_seconds = timeout;
    // The scheduler plans the builder's queries, so it must know the
    // project's functions by name.
    config.override_session_builder = Some(Arc::new(|session: SessionConfig| {
        let mut state = default_session_builder(session)?;
        for f in functions::aggregates() {
            state.register_udaf(f)?;
        }
        for f in functions::scalars() {
            state.register_udf(f)?;
        }
        Ok(state)
    }));
    println!(
        "Ballista scheduler listening on {bind}; builds reach it with --engine df://{}",
        config.scheduler_endpoint()
    );
    block_on(async move {
        let cluster = BallistaCluster::new_from_config(&config).await?;
        start_server(cluster, bind, Arc::new(config)).await
    })
    .map_err(|e| anyhow!("the Ballista scheduler on {bind} stopped: {e}"))
}

/// Ballista's own functions and the project's.
fn registry() -> BallistaFunctionRegistry {
    let mut registry = BallistaFunctionRegistry::default();
    for f in functions::aggregates() {
        registry.aggregate_functions.insert(f.name().to_string(), f);
    }
    for f in functions::scalars() {
        registry.scalar_functions.insert(f.name().to_string(), f);
    }
    registry
}

/// Seconds between an executor's heartbeats (Ballista's default is 60).
pub const EXECUTOR_HEARTBEAT_S: u64 = 2;

/// An executor's settings.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's host and port.
    pub scheduler: (String, u16),
    /// Where the executor serves shuffle data (Arrow Flight).
    pub bind: SocketAddr,
    /// Its gRPC port (default: the Flight port + 1).
    pub grpc_port: Option<u16>,
    /// The name the scheduler and other executors reach it by.
    pub external_host: Option<String>,
    /// Tasks run at once (0: every core).
    pub cores: usize,
    /// Where shuffle files go (default: a temporary folder).
    pub work_dir: Option<PathBuf>,
}

/// Runs an executor until the process is stopped.
pub fn executor(o: ExecutorOptions) -> Result<()> {
    let grpc_port = match o.grpc_port {
        Some(p) => p,
        None => o
            .bind
            .port()
            .checked_add(1)
            .context("--bind's port is 65535: give --grpc-port")?,
    };
    if let Some(dir) = &o.work_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the work folder {}", dir.display()))?;
    }
    let defaults = ExecutorProcessConfig::default();
    let config = ExecutorProcessConfig {
        bind_host: o.bind.ip().to_string(),
        external_host: o.external_host.clone(),
        port: o.bind.port(),
        grpc_port,
        scheduler_host: o.scheduler.0.clone(),
        scheduler_port: o.scheduler.1,
        scheduler_connect_timeout_seconds: 10,
        vcores: if o.cores == 0 {
            defaults.vcores
        } else {
            o.cores
        },
        work_dir: o
            .work_dir
            .as_ref()
            .map(|d| d.to_string_lossy().into_owned()),
        // Often, so that a killed executor is noticed within seconds.
        executor_heartbeat_interval_seconds: EXECUTOR_HEARTBEAT_S,
        // Tasks name the project's functions; the executor looks them up here.
        override_function_registry: Some(Arc::new(registry())),
        ..defaults
    };
    println!(
        "Ballista executor on {} (gRPC port {grpc_port}), scheduler {}:{}",
        o.bind, o.scheduler.0, o.scheduler.1
    );
    block_on(start_executor_process(Arc::new(config))).map_err(|e| {
        anyhow!(
            "the Ballista executor on {} stopped: {e} (scheduler {}:{})",
            o.bind,
            o.scheduler.0,
            o.scheduler.1
        )
    })
}
