//! `model-builder users`: every active family's nightly profile with its
//! user embedding, in the two forms the product reads (issue #20):
//!
//! - `OUT/profiles/HH/HH/USER.nrp`, one profile blob per family for a
//!   signed-in page (`HHHH`: the first four hex digits of the FNV-1a 64 of
//!   the user id, so no folder holds more than a few hundred files at ten
//!   million families);
//! - `OUT/edge/`: the edge worker's table, `shard-NNNNN.nrt` blobs
//!   (`nestrank::usertable`) keyed by a salted hash of the user id, and
//!   `index.json` naming the model, the salt and the shard count. A new
//!   salt with every run rotates every key with the model.
//!
//! A family whose `users.csv` row says `opt_out` gets no record.

use crate::data::Dataset;
use crate::options::DAY;
use crate::profiles::nightly_profile;
use anyhow::{Context, Result};
use nestrank::usertable::{key_from_mac, shard_of, UserTable};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::Path;

/// What `users` writes.
#[derive(Debug, Clone)]
pub struct UsersOptions {
    /// The day the profiles are for; only events before it count.
    pub as_of_day: i32,
    /// A family is active with an event in this many days before it.
    pub window_days: u32,
    /// Edge shards; `None`: a power of two giving about 256 families each.
    pub shards: Option<u32>,
    /// The edge keys' salt; `None`: 16 random bytes.
    pub salt: Option<Vec<u8>>,
}

/// What [`write_users`] wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UsersWritten {
    /// Families with a record.
    pub users: usize,
    /// Of them, with an embedding (the rest had no event on a model item).
    pub with_embedding: usize,
    /// Active families skipped because they opted out.
    pub opted_out: usize,
    /// Active families skipped because the id is not a safe file name.
    pub unsafe_names: usize,
    /// Bytes of all profile blobs.
    pub profile_bytes: usize,
    /// Bytes of the embedding sections alone (payload).
    pub embedding_bytes: usize,
    /// Edge shards written.
    pub shards: u32,
    /// Bytes of all edge shards.
    pub edge_bytes: usize,
}

/// The edge table's `index.json`.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeIndex {
    /// Bumped on an incompatible change of this file.
    pub format: u32,
    /// The model (16 hex digits) the embeddings belong to.
    pub model_id: String,
    /// `YYYY-MM-DD`.
    pub as_of: String,
    /// The salt, hex: the key of a user id is the first 8 bytes
    /// (little-endian) of HMAC-SHA256(salt, user id).
    pub salt: String,
    /// Shard count: a key lives in `shard-{key % shards:05}.nrt`.
    pub shards: u32,
    /// Families in the table.
    pub users: usize,
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The edge key of `user` under `salt`.
pub fn edge_key(salt: &[u8], user: &str) -> u64 {
    key_from_mac(&hmac_sha256(salt, user.as_bytes())).expect("32 bytes")
}

fn random_salt() -> Result<Vec<u8>> {
    use std::io::Read;
    let mut salt = vec![0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut salt))
        .context("cannot read /dev/urandom for the edge salt (give --salt)")?;
    Ok(salt)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes the records of every family active in the window before
/// `opts.as_of_day`, for `model`, into `out` (see the module docs).
pub fn write_users(
    ds: &Dataset,
    model: &nestrank::Model,
    opts: &UsersOptions,
    out: &Path,
) -> Result<UsersWritten> {
    let cutoff = i64::from(opts.as_of_day) * DAY;
    let from = cutoff - i64::from(opts.window_days) * DAY;
    let by_user = crate::replay::events_by_user(ds);
    let mut r = UsersWritten::default();
    let mut records: Vec<(String, Vec<u8>)> = Vec::new();
    for (u, own) in by_user.iter().enumerate() {
        let u = u as u32;
        let active = own
            .iter()
            .any(|&k| (from..cutoff).contains(&ds.events[k].ts));
        if !active {
            continue;
        }
        if ds.opted_out.contains(&u) {
            r.opted_out += 1;
            continue;
        }
        let name = ds.users.name(u);
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            r.unsafe_names += 1;
            continue;
        }
        let profile = nightly_profile(ds, model, u, own, cutoff);
        if let Some(e) = &profile.embedding {
            r.with_embedding += 1;
            r.embedding_bytes += nestrank::format::encode_section(e).len();
        }
        let blob = profile.to_bytes();
        r.profile_bytes += blob.len();
        records.push((name.to_string(), blob));
    }
    if r.unsafe_names > 0 {
        eprintln!(
            "warning: skipped {} users whose id is not a safe file name (ASCII letters, digits, `_`, `-`)",
            r.unsafe_names
        );
    }
    r.users = records.len();

    // The page's form: one file per family, in two levels of folders.
    let files: Vec<(std::path::PathBuf, &[u8])> = records
        .iter()
        .map(|(name, blob)| {
            let h = format!("{:016x}", nestrank::hash::fnv1a64(name.as_bytes()));
            let path = out
                .join("profiles")
                .join(&h[..2])
                .join(&h[2..4])
                .join(format!("{name}.nrp"));
            (path, blob.as_slice())
        })
        .collect();
    write_files(&files)?;

    // The edge's form: shards keyed by the salted hash; index.json last.
    let salt = match &opts.salt {
        Some(s) => s.clone(),
        None => random_salt()?,
    };
    let shards = opts
        .shards
        .unwrap_or_else(|| (records.len().div_ceil(256).max(1) as u32).next_power_of_two())
        .clamp(1, nestrank::usertable::MAX_SHARDS);
    let mut by_shard: Vec<Vec<(u64, Vec<u8>)>> = vec![Vec::new(); shards as usize];
    for (name, blob) in records {
        let key = edge_key(&salt, &name);
        by_shard[shard_of(key, shards) as usize].push((key, blob));
    }
    let edge = out.join("edge");
    std::fs::create_dir_all(&edge).with_context(|| format!("cannot create {}", edge.display()))?;
    for (shard, rows) in by_shard.into_iter().enumerate() {
        let bytes = UserTable::to_bytes(shard as u32, shards, rows, opts.as_of_day);
        r.edge_bytes += bytes.len();
        crate::publish::write_atomically(&edge.join(format!("shard-{shard:05}.nrt")), |w| {
            Ok(w.write_all(&bytes)?)
        })?;
    }
    // Shards of an earlier, larger table.
    for entry in std::fs::read_dir(&edge)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let stale = name
            .strip_prefix("shard-")
            .and_then(|n| n.strip_suffix(".nrt"))
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n >= shards);
        if stale {
            std::fs::remove_file(edge.join(&name))?;
        }
    }
    let index = EdgeIndex {
        format: 1,
        model_id: model.model_id(),
        as_of: nestrank::calendar::format_date(opts.as_of_day),
        salt: hex(&salt),
        shards,
        users: r.users,
    };
    crate::publish::write_atomically(&edge.join("index.json"), |w| {
        Ok(serde_json::to_writer_pretty(&mut *w, &index)?)
    })?;
    r.shards = shards;
    Ok(r)
}

/// Writes every file atomically ([`crate::publish::write_atomically`]:
/// synced, renamed, its folder synced) from [`WRITERS`] threads, so that
/// the disk's sync latency overlaps instead of adding up per file.
fn write_files(files: &[(std::path::PathBuf, &[u8])]) -> Result<()> {
    let mut dirs: Vec<&Path> = files.iter().filter_map(|f| f.0.parent()).collect();
    dirs.sort_unstable();
    dirs.dedup();
    for dir in dirs {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let chunk = files.len().div_ceil(WRITERS).max(1);
    std::thread::scope(|s| {
        let workers: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || -> Result<()> {
                    for (path, bytes) in part {
                        crate::publish::write_atomically(path, |w| Ok(w.write_all(bytes)?))?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("a writer thread panicked"))
    })
}

/// Threads writing the profile files: the work is waiting for the disk.
const WRITERS: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 2 and 6 (a key longer than a block).
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}
