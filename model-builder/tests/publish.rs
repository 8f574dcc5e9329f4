//! The nightly publish under failure: a crash after each step of the
//! publish, and SIGKILL at arbitrary moments, always leave a manifest that
//! names a complete, verifiable blob; history, pruning and rollback.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_model-builder");

fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn data() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/golden-data")
        .to_str()
        .unwrap()
        .to_string()
}

/// A build of the golden data with `k` neighbours (each `k` a different blob).
fn build(out: &Path, k: usize, crash_after: Option<&str>) -> Command {
    let mut c = Command::new(BIN);
    c.args([
        "build",
        "--data",
        &data(),
        "--as-of",
        "2017-12-03",
        "--factors",
        "4",
    ])
    .args(["--train-days", "0", "--keep", "3", "--k", &k.to_string()])
    .args(["--out", out.to_str().unwrap()]);
    if let Some(step) = crash_after {
        c.env("NESTRANK_CRASH_AFTER", step);
    }
    c
}

fn manifest(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

/// The manifest names a blob that exists, has the manifest's sha256 and
/// passes `verify`; returns its file name.
fn assert_consistent(out: &Path) -> String {
    let m = manifest(out);
    let file = m["file"].as_str().unwrap().to_string();
    let blob = out.join(&file);
    let bytes = std::fs::read(&blob).unwrap_or_else(|e| panic!("{file} named but unreadable: {e}"));
    assert_eq!(bytes.len() as u64, m["bytes"].as_u64().unwrap());
    let v = Command::new(BIN)
        .args(["verify", blob.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    file
}

fn publish_ok(out: &Path, k: usize) -> String {
    let o = build(out, k, None).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_consistent(out)
}

#[test]
fn a_crash_after_any_step_leaves_a_manifest_naming_a_good_blob() {
    let out = scratch_dir("publish-crash");
    let first = publish_ok(&out, 5);
    for (n, step) in model_builder::publish::STEPS.iter().enumerate() {
        let o = build(&out, 6 + n, Some(step)).output().unwrap();
        assert!(
            !o.status.success(),
            "the injected crash after {step} happened"
        );
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(&format!("NESTRANK_CRASH_AFTER={step}"))
        );
        let now = assert_consistent(&out);
        let swapped = model_builder::publish::STEPS
            .iter()
            .position(|s| *s == "manifest-renamed")
            .unwrap();
        if n < swapped {
            assert_eq!(
                now, first,
                "before the manifest is renamed, the old model stays ({step})"
            );
        } else {
            assert_ne!(
                now, first,
                "after the manifest is renamed, the new model is live ({step})"
            );
        }
        // Put the first model back for the next step's run.
        publish_ok(&out, 5);
    }
    // A clean publish removes what interrupted ones left behind.
    publish_ok(&out, 20);
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn sigkill_at_any_moment_leaves_a_manifest_naming_a_good_blob() {
    let out = scratch_dir("publish-kill");
    publish_ok(&out, 5);
    // The build takes a few hundred ms here; kill it across that span.
    for (n, delay_ms) in [5u64, 40, 80, 120, 160, 200, 260, 330, 420, 600]
        .into_iter()
        .enumerate()
    {
        let mut child = build(&out, 6 + n, None).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL; it may have finished already
        let _ = child.wait();
        assert_consistent(&out);
    }
}

#[test]
fn history_keeps_the_newest_blobs_and_rollback_walks_back() {
    let out = scratch_dir("publish-rollback");
    let a = publish_ok(&out, 3);
    let b = publish_ok(&out, 4);
    let c = publish_ok(&out, 5);
    // Idempotent: publishing the same model again changes nothing.
    assert_eq!(publish_ok(&out, 5), c);
    let rb = |dir: &Path| {
        Command::new(BIN)
            .args(["rollback", "--out", dir.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let o = rb(&out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(assert_consistent(&out), b);
    assert!(rb(&out).status.success());
    assert_eq!(assert_consistent(&out), a);
    let o = rb(&out);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no earlier good blob"));
    assert_eq!(
        assert_consistent(&out),
        a,
        "a failed rollback changes nothing"
    );

    // --keep 3: after five publishes, three blobs remain.
    let out = scratch_dir("publish-keep");
    for k in 3..8 {
        publish_ok(&out, k);
    }
    let blobs = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .ends_with(".nrk")
        })
        .count();
    assert_eq!(blobs, 3);

    // A damaged earlier blob is skipped by rollback.
    let out = scratch_dir("publish-damaged");
    let a = publish_ok(&out, 3);
    let b = publish_ok(&out, 4);
    publish_ok(&out, 5);
    let path = out.join(&b);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let o = rb(&out);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("skipping {b}")));
    assert_eq!(assert_consistent(&out), a);
}
