//! The query engine of the nightly build: Apache DataFusion in the process
//! (`--engine embedded`, the default), or the same plans on an Apache
//! Ballista cluster (`--engine df://HOST:PORT`) whose scheduler and
//! executors are this binary (`model-builder cluster ...`, see
//! [`cluster`]). The engine owns scans, joins, aggregation, spilling,
//! scheduling and shuffle; the builder owns the recommender logic and the
//! blob.

pub mod cluster;
pub mod family;
pub mod functions;
pub mod lists;
pub mod memory;
pub mod neighbours;
pub mod parquet;
pub mod plans;

use crate::runtime::block_on;

use anyhow::{bail, Context, Result};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use std::path::PathBuf;
use std::time::Duration;

/// Where the build's plans run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// DataFusion in this process.
    Embedded {
        /// Bytes the engine's operators may hold before they spill to disk
        /// (`None`: no limit).
        memory_limit: Option<usize>,
        /// Where spills go (`None`: the OS's temporary folder).
        spill_dir: Option<PathBuf>,
    },
    /// A Ballista scheduler.
    Cluster {
        /// Its host.
        host: String,
        /// Its gRPC port.
        port: u16,
    },
}

impl Default for Engine {
    fn default() -> Self {
        Engine::Embedded {
            memory_limit: None,
            spill_dir: None,
        }
    }
}

/// The largest message a cluster's tasks accept from each other (1 GiB).
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// How long a build waits for a scheduler to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Engine {
    /// Parses `--engine`: `embedded`, or `df://HOST:PORT` for a Ballista
    /// scheduler.
    pub fn parse(
        spec: &str,
        memory_limit: Option<usize>,
        spill_dir: Option<PathBuf>,
    ) -> Result<Engine> {
        if spec == "embedded" {
            return Ok(Engine::Embedded {
                memory_limit,
                spill_dir,
            });
        }
        let Some(rest) = spec.strip_prefix("df://") else {
            bail!(
                "--engine `{spec}`: expected `embedded` or `df://HOST:PORT` (a Ballista scheduler)"
            );
        };
        let (host, port) = rest.rsplit_once(':').with_context(|| {
            format!("--engine `{spec}`: expected df://HOST:PORT, with the port")
        })?;
        let port: u16 = port
            .trim_end_matches('/')
            .parse()
            .with_context(|| format!("--engine `{spec}`: `{port}` is not a port number"))?;
        if host.is_empty() {
            bail!("--engine `{spec}`: the host is missing");
        }
        Ok(Engine::Cluster {
            host: host.to_string(),
            port,
        })
    }

    /// A session on this engine. For a cluster, the scheduler must accept a
    /// connection within [`CONNECT_TIMEOUT`], so that a wrong address fails
    /// at once, naming it, and not at the first query.
    pub fn context(&self) -> Result<SessionContext> {
        match self {
            Engine::Embedded {
                memory_limit,
                spill_dir,
            } => {
                let mut runtime = RuntimeEnvBuilder::new();
                if let Some(limit) = memory_limit {
                    // A fair pool: operators that can spill share what the
                    // others (a sort's final merge) leave, so two large
                    // aggregations cannot starve a merge that cannot spill
                    // (DataFusion's default greedy pool failed at 10 M
                    // events under 4 GB that way).
                    let pool = datafusion::execution::memory_pool::FairSpillPool::new(*limit);
                    // Wrapped to tell the query log each query's peak.
                    runtime = runtime.with_memory_pool(std::sync::Arc::new(memory::PeakPool::new(
                        std::sync::Arc::new(
                            datafusion::execution::memory_pool::TrackConsumersPool::new(
                                pool,
                                std::num::NonZeroUsize::new(5).expect("5 is not zero"),
                            ),
                        ),
                    )));
                }
                if let Some(dir) = spill_dir {
                    std::fs::create_dir_all(dir).with_context(|| {
                        format!("cannot create the spill folder {}", dir.display())
                    })?;
                    runtime = runtime.with_disk_manager_builder(
                        DiskManagerBuilder::default()
                            .with_mode(DiskManagerMode::Directories(vec![dir.clone()])),
                    );
                }
                let runtime = runtime
                    .build_arc()
                    .context("the embedded engine does not start")?;
                // Under a memory limit, joins sort and merge: DataFusion's
                // hash join holds its build side in memory and fails past
                // the limit, where sorts spill to disk.
                let config = SessionConfig::new().set_bool(
                    "datafusion.optimizer.prefer_hash_join",
                    memory_limit.is_none(),
                );
                let ctx = SessionContext::new_with_config_rt(config, runtime);
                functions::register(&ctx);
                Ok(ctx)
            }
            Engine::Cluster { host, port } => {
                let url = format!("df://{host}:{port}");
                reachable(host, *port)
                    .with_context(|| format!("cannot reach the Ballista scheduler at {url}"))?;
                use ballista::prelude::{SessionConfigExt, SessionContextExt};
                // ALS's partial sums travel as one row per partition (up to
                // 4.4 KB per item: 220 MB for 50,000 items), past gRPC's
                // default 16 MB per message.
                let config = SessionConfig::new_with_ballista()
                    .with_ballista_grpc_client_max_message_size(MAX_MESSAGE_BYTES);
                let state = datafusion::execution::SessionStateBuilder::new()
                    .with_config(config)
                    .with_default_features()
                    .build();
                let ctx = block_on(SessionContext::remote_with_state(&url, state)).with_context(
                    || format!("cannot open a session on the Ballista scheduler at {url}"),
                )?;
                functions::register(&ctx);
                Ok(ctx)
            }
        }
    }

    /// How the engine is named in messages.
    pub fn describe(&self) -> String {
        match self {
            Engine::Embedded { memory_limit, .. } => match memory_limit {
                Some(m) => format!("embedded DataFusion, memory limit {m} bytes"),
                None => "embedded DataFusion".to_string(),
            },
            Engine::Cluster { host, port } => format!("Ballista at df://{host}:{port}"),
        }
    }
}

/// Whether `host:port` accepts a TCP connection within [`CONNECT_TIMEOUT`].
fn reachable(host: &str, port: u16) -> Result<()> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("`{host}` does not resolve"))?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match std::net::TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Err(e.into()),
        None => bail!("`{host}` resolves to no address"),
    }
}

/// Parses a byte size: `4GB`, `512MB`, `1.5GiB`, or plain bytes.
pub fn parse_bytes(s: &str) -> Result<usize> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .with_context(|| format!("`{s}` is not a size such as 4GB or 512MB"))?;
    let scale = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" | "K" => 1e3,
        "MB" | "M" => 1e6,
        "GB" | "G" => 1e9,
        "KIB" => 1024.0,
        "MIB" => 1024.0 * 1024.0,
        "GIB" => 1024.0 * 1024.0 * 1024.0,
        other => bail!("`{s}`: unknown unit `{other}` (B, KB, MB, GB, KiB, MiB, GiB)"),
    };
    Ok((n * scale) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_specs_parse_or_say_what_is_wrong() {
        assert_eq!(
            Engine::parse("embedded", None, None).unwrap(),
            Engine::default()
        );
        assert_eq!(
            Engine::parse("df://10.0.0.7:50050", None, None).unwrap(),
            Engine::Cluster {
                host: "10.0.0.7".into(),
                port: 50050
            }
        );
        let err = |s: &str| Engine::parse(s, None, None).unwrap_err().to_string();
        assert!(err("spark://x:1").contains("expected `embedded` or `df://HOST:PORT`"));
        assert!(err("df://host").contains("with the port"));
        assert!(err("df://host:port").contains("`port` is not a port number"));
        assert!(err("df://:50050").contains("the host is missing"));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("4GB").unwrap(), 4_000_000_000);
        assert_eq!(parse_bytes("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1000").unwrap(), 1000);
        assert!(parse_bytes("4 parsecs").is_err());
    }

    #[test]
    fn an_unreachable_scheduler_fails_fast_naming_it() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = std::time::Instant::now();
        let Err(e) = Engine::parse(&format!("df://127.0.0.1:{port}"), None, None)
            .unwrap()
            .context()
        else {
            panic!("a session on a port nobody listens on");
        };
        let msg = format!("{e:#}");
        assert!(
            msg.contains(&format!(
                "cannot reach the Ballista scheduler at df://127.0.0.1:{port}"
            )),
            "{msg}"
        );
        assert!(t.elapsed() < CONNECT_TIMEOUT, "{:?}", t.elapsed());
    }
}
