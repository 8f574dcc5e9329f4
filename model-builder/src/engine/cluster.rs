//! `model-builder cluster scheduler` and `model-builder cluster executor`:
//! Apache Ballista's own scheduler and executor, started from this binary so
//! that an operator installs one program on every machine. Scheduling,
//! shuffle, retries and the RPC between them are Ballista's.

use super::functions;
use crate::runtime::block_on;
use anyhow::{anyhow, Context, Result};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::protobuf::{
    RuntimeStatsReport, ShuffleWritePartition, TaskColumnStats, WindowStateReport,
};
use ballista_core::utils::default_session_builder;
use ballista_core::JobId;
use ballista_executor::execution_engine::{
    DefaultExecutionEngine, ExecutionEngine, QueryStageExecutor,
};
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionConfig;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

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

/// Ballista's own functions, DataFusion's list functions (which Ballista's
/// default registry leaves out: the neighbours plan counts each user's
/// pairs with `cardinality`) and the project's.
fn registry() -> BallistaFunctionRegistry {
    let mut registry = BallistaFunctionRegistry::default();
    for f in datafusion::functions_nested::all_default_nested_functions() {
        registry.scalar_functions.insert(f.name().to_string(), f);
    }
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
    /// Appends a JSON line per finished task here (see [`TaskLog`]).
    pub task_log: Option<PathBuf>,
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
        // ALS's partial sums go to the next stage as one row per partition
        // (see `super::MAX_MESSAGE_BYTES`).
        grpc_max_encoding_message_size: super::MAX_MESSAGE_BYTES as u32,
        grpc_max_decoding_message_size: super::MAX_MESSAGE_BYTES as u32,
        // Tasks name the project's functions; the executor looks them up here.
        override_function_registry: Some(Arc::new(registry())),
        override_execution_engine: match &o.task_log {
            Some(path) => Some(Arc::new(MeteredEngine {
                inner: Arc::new(DefaultExecutionEngine::new()),
                log: Arc::new(TaskLog::create(path)?),
            })),
            None => None,
        },
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

/// Where an executor records what each task did, for sizing a cluster
/// (`bench/cluster.sh`): one JSON line per finished task, with the job,
/// the stage, when it ended (Unix milliseconds), its seconds on one task
/// slot, and the rows and bytes it wrote to shuffle (for a job's last
/// stage, what the client fetches).
pub struct TaskLog {
    file: Mutex<std::fs::File>,
}

impl TaskLog {
    /// Appends to `path`, creating it.
    pub fn create(path: &std::path::Path) -> Result<TaskLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the task log {}", path.display()))?;
        Ok(TaskLog {
            file: Mutex::new(file),
        })
    }

    fn record(&self, task: &Task, secs: f64, written: Option<&[ShuffleWritePartition]>) {
        let end_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let (rows, bytes) = written
            .unwrap_or_default()
            .iter()
            .fold((0, 0), |(r, b), p| (r + p.num_rows, b + p.num_bytes));
        let line = format!(
            "{{\"job\":\"{}\",\"stage\":{},\"task\":{},\"end_ms\":{end_ms},\"secs\":{secs:.6},\"rows\":{rows},\"bytes\":{bytes},\"ok\":{}}}\n",
            task.job,
            task.stage,
            task.task,
            written.is_some()
        );
        // A lost line only loses a measurement, never the task.
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// Which task a stage executor runs.
#[derive(Debug, Clone)]
struct Task {
    job: JobId,
    stage: usize,
    task: usize,
}

/// DataFusion's execution engine for Ballista, each stage's executor
/// wrapped so that its task is timed and its shuffle output counted.
struct MeteredEngine {
    inner: Arc<dyn ExecutionEngine>,
    log: Arc<TaskLog>,
}

impl ExecutionEngine for MeteredEngine {
    fn create_query_stage_exec(
        &self,
        job_id: JobId,
        stage_id: usize,
        task_id: usize,
        global_output_partition_ids: Vec<usize>,
        plan: Arc<dyn ExecutionPlan>,
        work_dir: &str,
        config: &SessionConfig,
    ) -> datafusion::error::Result<Arc<dyn QueryStageExecutor>> {
        let task = Task {
            job: job_id.clone(),
            stage: stage_id,
            task: task_id,
        };
        let inner = self.inner.create_query_stage_exec(
            job_id,
            stage_id,
            task_id,
            global_output_partition_ids,
            plan,
            work_dir,
            config,
        )?;
        Ok(Arc::new(MeteredStage {
            inner,
            task,
            log: self.log.clone(),
        }))
    }
}

struct MeteredStage {
    inner: Arc<dyn QueryStageExecutor>,
    task: Task,
    log: Arc<TaskLog>,
}

impl std::fmt::Debug for MeteredStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl std::fmt::Display for MeteredStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.inner, f)
    }
}

type Written = datafusion::error::Result<Vec<ShuffleWritePartition>>;

impl QueryStageExecutor for MeteredStage {
    // The trait is `async_trait`: this is its expansion, written out.
    fn execute_query_stage<'a, 'b>(
        &'a self,
        task_id: usize,
        context: Arc<TaskContext>,
    ) -> Pin<Box<dyn Future<Output = Written> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move {
            let start = Instant::now();
            let written = self.inner.execute_query_stage(task_id, context).await;
            let secs = start.elapsed().as_secs_f64();
            self.log
                .record(&self.task, secs, written.as_ref().ok().map(|w| &w[..]));
            written
        })
    }

    fn collect_plan_metrics(&self) -> Vec<MetricsSet> {
        self.inner.collect_plan_metrics()
    }

    fn collect_runtime_stats_reports(&self) -> Vec<RuntimeStatsReport> {
        self.inner.collect_runtime_stats_reports()
    }

    fn collect_window_state_reports(&self) -> datafusion::error::Result<Vec<WindowStateReport>> {
        self.inner.collect_window_state_reports()
    }

    fn collect_column_stats(&self) -> Vec<TaskColumnStats> {
        self.inner.collect_column_stats()
    }
}
