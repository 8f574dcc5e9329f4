//! The nightly build on the query engine (issue #15): Parquet inputs, the
//! embedded DataFusion engine and a Ballista cluster of this binary's
//! scheduler and executors on 127.0.0.1 all give the blob the in-memory
//! build gives, and faults are survived or named.
#![cfg(feature = "engine")]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// Builds `data` as of `as_of` into `out` with `extra` flags, without
/// ranker training; the model id.
fn build(data: &Path, as_of: &str, out: &Path, extra: &[&str]) -> String {
    build_trained(data, as_of, out, &[&["--train-days", "0"], extra].concat())
}

/// Builds `data` as of `as_of` into `out` with `extra` flags; the model id.
fn build_trained(data: &Path, as_of: &str, out: &Path, extra: &[&str]) -> String {
    run_on("build", data, as_of, out, extra);
    manifest(out)["model_id"].as_str().unwrap().to_string()
}

/// `command --data data --as-of as_of --out out` and `extra` flags.
fn args_on<'a>(
    command: &'a str,
    data: &'a Path,
    as_of: &'a str,
    out: &'a Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let fixed = [
        command,
        "--data",
        data.to_str().unwrap(),
        "--as-of",
        as_of,
        "--out",
        out.to_str().unwrap(),
    ];
    [&fixed[..], extra].concat()
}

/// Runs [`args_on`]; its output.
fn run_on(command: &str, data: &Path, as_of: &str, out: &Path, extra: &[&str]) -> String {
    ok(&args_on(command, data, as_of, out, extra))
}

/// Runs `build` as [`args_on`] and expects it to fail; its error output.
fn build_fails(data: &Path, as_of: &str, out: &Path, extra: &[&str]) -> String {
    fails(&args_on("build", data, as_of, out, extra))
}

/// The Taobao sample, imported once per test that asks.
fn taobao(name: &str) -> PathBuf {
    let data = scratch_dir(name);
    let sample = root().join("data/taobao-userbehavior-sample/UserBehavior_head_with_header.csv");
    ok(&[
        "import",
        "taobao",
        sample.to_str().unwrap(),
        "--out",
        data.to_str().unwrap(),
    ]);
    data
}

/// The synthetic mother-and-baby shop in `format`.
fn shop(name: &str, format: &str) -> PathBuf {
    let data = scratch_dir(name);
    ok(&[
        "synth",
        "--kind",
        "mother-baby",
        "--users",
        "600",
        "--out",
        data.to_str().unwrap(),
        "--format",
        format,
    ]);
    data
}

/// Pass memory that splits the shop's viewed-together pairs (about 4.4 M
/// of them at 32 bytes, 140 MB) into 3 passes.
const PASS_MEMORY: &str = "50MB";
const PASSES: &str = "the co-occurrence neighbours, pass 3 of 3";
const PASSES_ONE_MORE: &str = "of 4";

/// The same shop as CSV, as day partitions of Parquet, and on the embedded
/// engine: one model id.
#[test]
fn parquet_partitions_and_the_embedded_engine_build_the_csv_blob() {
    let csv = shop("shop-csv", "csv");
    let parquet = shop("shop-parquet", "parquet");
    assert!(!parquet.join("events.csv").exists());
    assert!(parquet.join("items.parquet").is_file());
    assert!(parquet.join("users.parquet").is_file());
    let days: Vec<_> = std::fs::read_dir(parquet.join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(days.len() >= 28, "{days:?}");
    assert!(days.iter().all(|d| d.starts_with("dt=20")), "{days:?}");
    let out = scratch_dir("shop-models");
    let day = "2026-11-01";
    let from_csv = build(&csv, day, &out.join("csv"), &[]);
    assert_eq!(build(&parquet, day, &out.join("parquet"), &[]), from_csv);
    assert_eq!(
        build(
            &parquet,
            day,
            &out.join("embedded"),
            &["--engine", "embedded"]
        ),
        from_csv,
        "the engine's plans must give the in-memory blob"
    );
    let queries = out.join("queries.jsonl");
    assert_eq!(
        build(
            &csv,
            day,
            &out.join("embedded-csv"),
            &[
                "--engine",
                "embedded",
                "--memory-limit",
                "256MB",
                "--query-log",
                queries.to_str().unwrap()
            ]
        ),
        from_csv
    );
    // The query log says where each query's time went: the plan it ran,
    // with each operator's rows, time and spills.
    let log = std::fs::read_to_string(&queries).unwrap();
    let neighbours: serde_json::Value = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|q| q["query"] == "the co-occurrence neighbours")
        .expect("the neighbours' query is logged");
    let plan = neighbours["plan"].as_str().unwrap();
    assert!(
        plan.starts_with("ProjectionExec")
            && plan.contains("AggregateExec")
            && plan.contains("metrics=[output_rows=")
            && plan.contains("elapsed_compute=")
            && plan.contains("spill_count="),
        "{plan}"
    );
    // Each query also says the most the engine's pool held, within the
    // limit, and the builder's peak resident set.
    let queries: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for q in &queries {
        let pool = q["pool_peak_bytes"]
            .as_u64()
            .unwrap_or_else(|| panic!("{q}"));
        assert!(pool <= 256_000_000, "{}: {pool}", q["query"]);
        assert!(
            q["rss_peak_bytes"].as_u64().unwrap_or(0) > 1 << 20,
            "{}",
            q["query"]
        );
    }
    assert!(
        queries
            .iter()
            .any(|q| q["pool_peak_bytes"].as_u64() > Some(1 << 20)),
        "some query holds more than a megabyte"
    );
    // --pass-memory sets the neighbours' passes, and they give the same
    // blob; it goes with an engine, and its size is checked.
    let passes = out.join("passes.jsonl");
    assert_eq!(
        build(
            &parquet,
            day,
            &out.join("embedded-passes"),
            &[
                "--engine",
                "embedded",
                "--pass-memory",
                PASS_MEMORY,
                "--query-log",
                passes.to_str().unwrap()
            ]
        ),
        from_csv
    );
    let names = std::fs::read_to_string(&passes).unwrap();
    assert!(
        names.contains(PASSES) && !names.contains(PASSES_ONE_MORE),
        "{PASS_MEMORY} of pairs: {PASSES}"
    );
    assert!(
        !names.contains("each user's items, pass"),
        "{PASS_MEMORY} lists the users in one pass"
    );
    // A budget small enough that each user's items are listed in passes
    // too (about 100 bytes an event in half of it): the same blob.
    let lists = out.join("lists.jsonl");
    assert_eq!(
        build(
            &parquet,
            day,
            &out.join("embedded-list-passes"),
            &[
                "--engine",
                "embedded",
                "--pass-memory",
                "2MB",
                "--query-log",
                lists.to_str().unwrap()
            ]
        ),
        from_csv
    );
    let names = std::fs::read_to_string(&lists).unwrap();
    assert!(
        names.contains("each user's items, pass 2 of"),
        "2MB lists the users in passes"
    );
    let said = build_fails(&csv, day, &out.join("x"), &["--pass-memory", "1GB"]);
    assert!(
        said.contains("--pass-memory go with --engine embedded"),
        "{said}"
    );
    let said = build_fails(
        &csv,
        day,
        &out.join("x"),
        &["--engine", "embedded", "--pass-memory", "lots"],
    );
    assert!(
        said.contains("--pass-memory") && said.contains("`lots` is not a size"),
        "{said}"
    );
    // With the ranker trained on the engine's training-day models, and the
    // phone's daily blob (the most recently active items): the builder
    // then holds only the purchases, the training days' conversions and
    // the fitted cases' users' events, and the blob is still the
    // in-memory one.
    let daily = ["--max-items", "300"];
    let trained = build_trained(&csv, day, &out.join("trained"), &daily);
    assert_ne!(trained, from_csv);
    assert_eq!(
        build_trained(
            &parquet,
            day,
            &out.join("trained-embedded"),
            &[&["--engine", "embedded"], &daily[..]].concat()
        ),
        trained
    );
    // When the newest training day holds enough cases, the engine's load
    // selects only the 20 fitted cases' users, and the blob is still the
    // in-memory one (a case user missed would change its signals, its
    // features and the learned ranker).
    let one_day = ["--train-max-cases", "20"];
    let said = run_on("build", &csv, day, &out.join("one-day"), &one_day);
    assert!(said.contains("training on 1 day(s)"), "{said}");
    let said_embedded = run_on(
        "build",
        &parquet,
        day,
        &out.join("one-day-embedded"),
        &[&["--engine", "embedded"], &one_day[..]].concat(),
    );
    assert!(
        said_embedded.contains("training on 1 day(s)"),
        "{said_embedded}"
    );
    assert_eq!(
        manifest(&out.join("one-day-embedded"))["model_id"],
        manifest(&out.join("one-day"))["model_id"]
    );
    assert_ne!(
        manifest(&out.join("one-day"))["model_id"].as_str().unwrap(),
        trained
    );

    // Push: the engine hands over the window's events, and the lines are
    // the in-memory ones.
    let blob = out
        .join("trained")
        .join(manifest(&out.join("trained"))["file"].as_str().unwrap());
    let push = |data: &Path, name: &str, extra: &[&str]| -> String {
        let lines = out.join(name);
        let model = ["--model", blob.to_str().unwrap()];
        let said = run_on("push", data, day, &lines, &[&model[..], extra].concat());
        assert!(said.contains("pushed "), "{said}");
        std::fs::read_to_string(lines).unwrap()
    };
    let memory = push(&csv, "push-memory.jsonl", &[]);
    assert!(memory.lines().count() > 50, "{memory}");
    assert_eq!(
        push(&parquet, "push-embedded.jsonl", &["--engine", "embedded"]),
        memory
    );

    // The families' nightly records: the engine computes each family's
    // record where the log is, in shard order, and the files are the
    // in-memory ones, byte for byte. Every seventh family opts out.
    let users = std::fs::read_to_string(csv.join("users.csv")).unwrap();
    let mut lines: Vec<String> = users.lines().map(String::from).collect();
    lines[0] += ",opt_out";
    for (n, line) in lines.iter_mut().enumerate().skip(1) {
        line.push_str(if n % 7 == 1 { ",yes" } else { "," });
    }
    std::fs::write(csv.join("users.csv"), lines.join("\n") + "\n").unwrap();
    let records = |data: &Path, name: &str, extra: &[&str]| -> PathBuf {
        let dir = out.join(name);
        let model = [
            "--model",
            blob.to_str().unwrap(),
            "--salt",
            "0123abcd",
            "--json",
        ];
        let said = run_on("users", data, day, &dir, &[&model[..], extra].concat());
        let said: serde_json::Value = serde_json::from_str(said.trim()).unwrap();
        assert!(said["opted_out"].as_u64().unwrap() > 0, "{said}");
        dir
    };
    let memory = records(&csv, "users-memory", &[]);
    let files = same_files(
        &memory,
        &records(
            &csv,
            "users-embedded",
            &["--engine", "embedded", "--memory-limit", "64MB"],
        ),
    );
    assert!(files > 500, "{files} files");
}

/// Asserts that folders `a` and `b` hold the same files, byte for byte;
/// how many.
fn same_files(a: &Path, b: &Path) -> usize {
    fn list(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                list(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let (mut fa, mut fb) = (Vec::new(), Vec::new());
    list(a, a, &mut fa);
    list(b, b, &mut fb);
    fa.sort();
    fb.sort();
    assert_eq!(fa, fb, "the files of {} and {}", a.display(), b.display());
    for f in &fa {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
            "{} differs",
            f.display()
        );
    }
    fa.len()
}

/// The Taobao sample on the embedded engine, its ranker trained on the
/// engine's training-day models: the in-memory blob.
#[test]
fn the_embedded_engine_builds_the_taobao_blob() {
    let data = taobao("engine-taobao");
    let out = scratch_dir("engine-taobao-models");
    let day = "2017-12-03";
    let memory = build_trained(&data, day, &out.join("memory"), &[]);
    assert_eq!(
        build_trained(&data, day, &out.join("embedded"), &["--engine", "embedded"]),
        memory
    );
}

/// A bad row in a Parquet partition is named by file, row and column, and
/// skipped within --max-bad-rows.
#[test]
fn a_bad_parquet_row_is_named_by_file_row_and_column() {
    let data = scratch_dir("bad-parquet");
    std::fs::write(
        data.join("events.csv"),
        "user_id,item_id,event,ts\nu1,i1,view,1600000000\nu1,i2,click,1600000100\nu2,i1,purchase,1600000200\nu2,i2,view,1600100000\n",
    )
    .unwrap();
    model_builder::engine::parquet::csv_to_parquet(&data).unwrap();
    let out = data.join("model");
    let day = "2020-09-16";
    let err = build_fails(&data, day, &out, &[]);
    assert!(err.contains("dt=2020-09-13"), "{err}");
    assert!(
        err.contains(".parquet: row 2: column `event`: unknown event `click`"),
        "{err}"
    );
    assert!(!out.join("manifest.json").exists());
    // On the engine, the builder still reads every row, and says the same.
    let err = build_fails(&data, day, &out, &["--engine", "embedded"]);
    assert!(
        err.contains(".parquet: row 2: column `event`: unknown event `click`"),
        "{err}"
    );
    assert!(!out.join("manifest.json").exists());
    let msg = run_on(
        "build",
        &data,
        day,
        &out,
        &["--max-bad-rows", "1", "--train-days", "0"],
    );
    assert!(msg.contains("built"), "{msg}");
    // A table in two forms is refused, naming both.
    std::fs::write(data.join("events.csv"), "user_id,item_id,event,ts\n").unwrap();
    let err = build_fails(&data, day, &out, &[]);
    assert!(
        err.contains("the table `events` is there in more than one form"),
        "{err}"
    );
}

/// A scheduler nobody listens for fails the build at once, naming its
/// address, and the live model stays.
#[test]
fn an_unreachable_scheduler_fails_fast_and_names_its_address() {
    let data = shop("unreachable-shop", "csv");
    let out = scratch_dir("unreachable-models");
    let day = "2026-11-01";
    let live = build(&data, day, &out, &[]);
    let engine = format!("df://127.0.0.1:{}", free_port());
    let t = Instant::now();
    let err = build_fails(&data, day, &out, &["--engine", &engine]);
    let took = t.elapsed();
    assert!(err.contains(&engine[5..]), "the address: {err}");
    assert!(
        took < Duration::from_secs(30),
        "failed after {took:?}, not at once: {err}"
    );
    assert_eq!(manifest(&out)["model_id"].as_str().unwrap(), live);
}

/// A free port on 127.0.0.1 (free when asked).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Child processes killed when the test ends, however it ends.
struct Cluster {
    scheduler: u16,
    children: Vec<Child>,
    logs: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for_port(port: u16, what: &str) {
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Cluster {
    /// A scheduler and `executors` executors of this binary on 127.0.0.1.
    fn start(name: &str, executors: usize) -> Cluster {
        let logs = scratch_dir(name);
        let scheduler = free_port();
        let log = |n: &str| std::fs::File::create(logs.join(n)).unwrap();
        let mut cluster = Cluster {
            scheduler,
            children: Vec::new(),
            logs: logs.clone(),
        };
        cluster.children.push(
            Command::new(BIN)
                .args([
                    "cluster",
                    "scheduler",
                    "--bind",
                    &format!("127.0.0.1:{scheduler}"),
                    "--executor-timeout-seconds",
                    "6",
                ])
                .stdout(log("scheduler.log"))
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        );
        wait_for_port(scheduler, "the scheduler");
        for k in 0..executors {
            let (flight, grpc) = (free_port(), free_port());
            // The last executor times its tasks (the others run Ballista's
            // engine as it comes).
            let task_log = logs.join("tasks.jsonl");
            let metered = ["--task-log", task_log.to_str().unwrap()];
            cluster.children.push(
                Command::new(BIN)
                    .args([
                        "cluster",
                        "executor",
                        "--scheduler",
                        &format!("127.0.0.1:{scheduler}"),
                        "--bind",
                        &format!("127.0.0.1:{flight}"),
                        "--grpc-port",
                        &grpc.to_string(),
                        "--cores",
                        "1",
                        "--work-dir",
                        logs.join(format!("work-{k}")).to_str().unwrap(),
                    ])
                    .args(if k + 1 == executors {
                        &metered[..]
                    } else {
                        &[]
                    })
                    .stdout(log(&format!("executor-{k}.log")))
                    .stderr(Stdio::inherit())
                    .spawn()
                    .unwrap(),
            );
            wait_for_port(flight, "an executor");
        }
        cluster
    }

    fn engine(&self) -> String {
        format!("df://127.0.0.1:{}", self.scheduler)
    }
}

/// One scheduler and two executors on 127.0.0.1 build the in-memory blob;
/// an executor killed with SIGKILL in the middle of a build leaves the
/// build to the other one, with the same blob, or failing with a clear
/// error while the published manifest stays on the last good model.
#[test]
fn a_cluster_builds_the_same_blob_and_outlives_a_killed_executor() {
    let data = shop("cluster-shop", "parquet");
    let out = scratch_dir("cluster-models");
    let day = "2026-11-01";
    let memory = build(&data, day, &out.join("memory"), &[]);
    let mut cluster = Cluster::start("cluster", 2);
    let engine = cluster.engine();
    let queries = out.join("queries.jsonl");
    let shared = out.join("shared");
    assert_eq!(
        build(
            &data,
            day,
            &out.join("cluster"),
            &[
                "--engine",
                &engine,
                "--query-log",
                queries.to_str().unwrap(),
                "--shared-dir",
                shared.to_str().unwrap(),
            ]
        ),
        memory,
        "the cluster's blob (logs in {})",
        cluster.logs.display()
    );
    // What bench/cluster.sh sizes a cluster from: each query of the build,
    // and each task the (metered) executor ran for it, with its shuffle
    // output.
    let lines = |p: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let queries = lines(&queries);
    assert!(queries.iter().all(|q| q["ok"] == true), "{queries:?}");
    let neighbours = queries
        .iter()
        .find(|q| q["query"] == "the co-occurrence neighbours")
        .expect("the neighbours' query is logged");
    assert!(neighbours["rows"].as_u64().unwrap() > 0);
    // ALS ran on the executors, an aggregate per iteration, from rows
    // written under the shared folder, which the build empties after.
    let passes = queries
        .iter()
        .filter(|q| q["query"] == "the ALS sums")
        .count();
    // At least the as-of model's iterations (the training days' models
    // add theirs).
    let iterations = model_builder::als::AlsOptions::default().iterations;
    assert!(
        passes >= iterations,
        "{passes} ALS passes, fewer than {iterations}"
    );
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0);
    let tasks = lines(&cluster.logs.join("tasks.jsonl"));
    let (first, last) = (
        queries[0]["start_ms"].as_u64().unwrap(),
        queries.last().unwrap()["end_ms"].as_u64().unwrap(),
    );
    assert!(tasks.len() >= queries.len() / 2, "{} tasks", tasks.len());
    for t in &tasks {
        let end = t["end_ms"].as_u64().unwrap();
        assert!(first <= end && end <= last + 1000, "{t} outside the build");
        assert!(t["secs"].as_f64().unwrap() >= 0.0 && t["ok"] == true, "{t}");
    }
    let shuffled: u64 = tasks.iter().map(|t| t["bytes"].as_u64().unwrap()).sum();
    assert!(shuffled > 0, "no shuffle bytes recorded");
    // The families' records, computed on the executors: the in-memory files.
    let blob = out
        .join("memory")
        .join(manifest(&out.join("memory"))["file"].as_str().unwrap());
    let users = |name: &str, extra: &[&str]| -> PathBuf {
        let model = ["--model", blob.to_str().unwrap(), "--salt", "0123abcd"];
        run_on(
            "users",
            &data,
            day,
            &out.join(name),
            &[&model[..], extra].concat(),
        );
        out.join(name)
    };
    let files = same_files(
        &users("users-memory", &[]),
        &users(
            "users-cluster",
            &[
                "--engine",
                &engine,
                "--shared-dir",
                shared.to_str().unwrap(),
            ],
        ),
    );
    assert!(files > 500, "{files} files");
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0);

    // Publish once, then rebuild while an executor is killed.
    let live = out.join("live");
    build(&data, day, &live, &[]);
    let before = std::fs::read_to_string(live.join("manifest.json")).unwrap();
    let mut child = Command::new(BIN)
        .args(args_on(
            "build",
            &data,
            day,
            &live,
            &[
                "--train-days",
                "0",
                "--engine",
                &engine,
                "--query-timeout-seconds",
                "60",
            ],
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the build ended before the executor was killed: make the data larger"
    );
    let victim = &mut cluster.children[1];
    // SIGKILL: no goodbye to the scheduler.
    let status = Command::new("kill")
        .args(["-KILL", &victim.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = victim.wait();
    let t = Instant::now();
    let result = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    if result.status.success() {
        assert_eq!(manifest(&live)["model_id"].as_str().unwrap(), memory);
    } else {
        assert!(stderr.contains("Ballista"), "a clear error: {stderr}");
        assert_eq!(
            std::fs::read_to_string(live.join("manifest.json")).unwrap(),
            before,
            "a failed build leaves yesterday's model live"
        );
    }
    eprintln!(
        "after SIGKILL of an executor the build {} in {:.1}s more",
        if result.status.success() {
            "completed with the same blob"
        } else {
            "failed cleanly"
        },
        t.elapsed().as_secs_f64()
    );
}
