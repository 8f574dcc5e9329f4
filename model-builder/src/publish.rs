//! The nightly publish: atomic, verified, and reversible.
//!
//! 1. The blob is written under a temporary name (`.model-<sha16>.nrk.tmp`)
//!    and fsynced, then **read back from disk** and verified (sha256 and a
//!    full decode), then renamed to its content address `model-<sha16>.nrk`
//!    and the directory fsynced.
//! 2. Only then is `manifest.json` replaced the same way (temporary file,
//!    fsync, rename, directory fsync): a reader sees the old manifest or the
//!    new one, and whichever it sees names a complete, verified blob.
//! 3. `published.json` keeps the history; the blobs of the newest `keep`
//!    entries stay, older ones are deleted; [`rollback`] points the manifest
//!    back to the previous good blob.
//!
//! Publishing the same model again rewrites nothing (the blob's name is its
//! hash). For the crash tests, `NESTRANK_CRASH_AFTER=<step>` aborts the
//! process right after that step (one of [`STEPS`]).

use anyhow::{bail, Context, Result};
use nestrank::calendar::format_date;
use nestrank::{Model, ModelParts};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The steps after which a crash can be injected, in order.
pub const STEPS: [&str; 6] = [
    "blob-written",
    "blob-verified",
    "blob-renamed",
    "manifest-written",
    "manifest-renamed",
    "history-written",
];

/// Blobs kept by default: the current one and four to roll back to.
pub const KEEP_DEFAULT: usize = 5;

/// The `manifest.json` of a published model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The blob's file name, beside the manifest.
    pub file: String,
    /// SHA-256 of the blob, lowercase hex.
    pub sha256: String,
    /// The blob's size in bytes.
    pub bytes: u64,
    /// The blob's format version.
    pub format_version: u16,
    /// The model id in the blob's header.
    pub model_id: String,
    /// The model's as-of date (`YYYY-MM-DD`).
    pub as_of: String,
    /// When it was built (Unix seconds); kept out of the blob so rebuilds are byte-identical.
    pub built_at: u64,
    /// Items in the model.
    pub item_count: u64,
}

fn crash_point(step: &str) {
    if std::env::var("NESTRANK_CRASH_AFTER").is_ok_and(|s| s == step) {
        eprintln!("NESTRANK_CRASH_AFTER={step}: aborting");
        std::process::abort();
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}

/// Reads `dir/file` and checks it is the blob `manifest` describes.
pub fn verify_blob(dir: &Path, manifest: &Manifest) -> Result<Model> {
    let path = dir.join(&manifest.file);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let sha = sha256_hex(&bytes);
    if sha != manifest.sha256 {
        bail!(
            "{}: sha256 {sha} does not match the manifest's {}",
            path.display(),
            manifest.sha256
        );
    }
    Model::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("{}: invalid blob: {e}", path.display()))
}

/// Writes `path` through a hidden temporary file beside it (`.NAME.tmp`):
/// written, synced, renamed into place, and the folder synced, so a reader
/// finds the old file or the whole new one, never half of it.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    write_checked(path, write, |_| Ok(()))
}

/// [`write_atomically`], with `check` run on the synced temporary file
/// before it is renamed (an error leaves `path` as it was).
fn write_checked(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
    check: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut w = std::io::BufWriter::new(file);
        write(&mut w)?;
        let file = w
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        file.sync_all()
            .with_context(|| format!("cannot sync {}", tmp.display()))?;
    }
    check(&tmp)?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    sync_dir(dir)
}

fn write_json<T: Serialize>(path: &Path, value: &T, crash_after: &str) -> Result<()> {
    write_checked(
        path,
        |w| {
            serde_json::to_writer_pretty(&mut *w, value)?;
            writeln!(w)?;
            Ok(())
        },
        |_| {
            crash_point(crash_after);
            Ok(())
        },
    )
}

/// Reads `dir/manifest.json`, if there is one.
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join("manifest.json");
    match std::fs::read(&path) {
        Ok(b) => {
            Ok(Some(serde_json::from_slice(&b).with_context(|| {
                format!("{}: not a manifest", path.display())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn read_history(dir: &Path) -> Result<Vec<Manifest>> {
    let path = dir.join("published.json");
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .with_context(|| format!("{}: not a publish history", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Deletes leftovers of interrupted publishes and blobs no kept entry names.
fn prune(dir: &Path, history: &[Manifest], current: &Manifest) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale_tmp = name.starts_with('.') && name.ends_with(".tmp");
        let old_blob = name.starts_with("model-")
            && name.ends_with(".nrk")
            && name != current.file
            && !history.iter().any(|m| m.file == name);
        if stale_tmp || old_blob {
            std::fs::remove_file(dir.join(name))
                .with_context(|| format!("cannot remove {}", dir.join(name).display()))?;
        }
    }
    Ok(())
}

/// Publishes `parts` into `out`, keeping the blobs of the newest `keep`
/// publishes. Returns the blob's path and its manifest.
pub fn publish(parts: &ModelParts, out: &Path, keep: usize) -> Result<(PathBuf, Manifest)> {
    let bytes = parts.to_bytes();
    let model = Model::from_bytes(&bytes).context("the freshly built blob does not verify")?;
    let hex = sha256_hex(&bytes);
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let file = format!("model-{}.nrk", &hex[..16]);
    let path = out.join(&file);
    let manifest = Manifest {
        file: file.clone(),
        sha256: hex,
        bytes: bytes.len() as u64,
        format_version: model.header().version,
        model_id: model.model_id(),
        as_of: format_date(parts.as_of_day),
        built_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        item_count: model.item_count() as u64,
    };
    if verify_blob(out, &manifest).is_err() {
        write_checked(
            &path,
            |w| Ok(w.write_all(&bytes)?),
            |tmp| {
                crash_point("blob-written");
                // What is on disk, not what is in memory, is what readers
                // will get.
                let on_disk = std::fs::read(tmp)
                    .with_context(|| format!("cannot read back {}", tmp.display()))?;
                if on_disk != bytes {
                    bail!(
                        "{}: the blob read back differs from the one written",
                        tmp.display()
                    );
                }
                Model::from_bytes(&on_disk).map_err(|e| {
                    anyhow::anyhow!("{}: the written blob does not verify: {e}", tmp.display())
                })?;
                crash_point("blob-verified");
                Ok(())
            },
        )?;
    }
    crash_point("blob-renamed");
    write_json(&out.join("manifest.json"), &manifest, "manifest-written")?;
    crash_point("manifest-renamed");
    let mut history = read_history(out).unwrap_or_default();
    history.retain(|m| m.file != manifest.file);
    history.push(manifest.clone());
    let drop = history.len().saturating_sub(keep.max(1));
    history.drain(..drop);
    write_json(&out.join("published.json"), &history, "history-tmp-written")?;
    crash_point("history-written");
    prune(out, &history, &manifest)?;
    Ok((path, manifest))
}

/// Points `out/manifest.json` back to the newest earlier publish whose blob
/// is still there and verifies; the entries after it leave the history, so
/// a second rollback goes one further back. Returns the manifest now current.
pub fn rollback(out: &Path) -> Result<Manifest> {
    let current = read_manifest(out)?
        .with_context(|| format!("{}: no manifest.json to roll back", out.display()))?;
    let mut history = read_history(out)?;
    if let Some(k) = history.iter().rposition(|m| m.file == current.file) {
        history.truncate(k);
    }
    while let Some(candidate) = history.last().cloned() {
        match verify_blob(out, &candidate) {
            Ok(_) => {
                write_json(
                    &out.join("manifest.json"),
                    &candidate,
                    "rollback-manifest-written",
                )?;
                write_json(
                    &out.join("published.json"),
                    &history,
                    "rollback-history-written",
                )?;
                return Ok(candidate);
            }
            Err(e) => {
                eprintln!("warning: skipping {}: {e:#}", candidate.file);
                history.pop();
            }
        }
    }
    bail!(
        "{}: no earlier good blob to roll back to (the manifest still names {})",
        out.display(),
        current.file
    )
}
