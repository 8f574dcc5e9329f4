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
use crate::family;
use crate::options::DAY;
use crate::profiles::nightly_profile;
use anyhow::{Context, Result};
use nestrank::usertable::{shard_of, UserTable};
use serde::Serialize;
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

/// The edge shards of a table of `families` active families when
/// `requested` is not given: a power of two giving about 256 each.
pub fn shard_count(requested: Option<u32>, families: u64) -> u32 {
    requested
        .unwrap_or_else(|| {
            (families
                .div_ceil(256)
                .clamp(1, u64::from(nestrank::usertable::MAX_SHARDS)) as u32)
                .next_power_of_two()
        })
        .clamp(1, nestrank::usertable::MAX_SHARDS)
}

/// Whether `user` gets a record: not opted out, and an id that may name a
/// file; with its number in `ds.users`, if `users.csv` names it. Counts the
/// families skipped in `r`.
fn admit(ds: &Dataset, user: &str, r: &mut UsersWritten) -> Option<Option<u32>> {
    let u = ds.users.get(user);
    if u.is_some_and(|u| ds.opted_out.contains(&u)) {
        r.opted_out += 1;
        return None;
    }
    if !family::safe_name(user) {
        r.unsafe_names += 1;
        return None;
    }
    Some(u)
}

/// Writes the records of every family active in the window before
/// `opts.as_of_day`, for `model`, into `out` (see the module docs), from
/// the log in memory.
pub fn write_users(
    ds: &Dataset,
    model: &nestrank::Model,
    opts: &UsersOptions,
    out: &Path,
) -> Result<UsersWritten> {
    let cutoff = i64::from(opts.as_of_day) * DAY;
    let from = cutoff - i64::from(opts.window_days) * DAY;
    let by_user = crate::replay::events_by_user(ds);
    let active: Vec<u32> = (0..by_user.len() as u32)
        .filter(|&u| {
            by_user[u as usize]
                .iter()
                .any(|&k| (from..cutoff).contains(&ds.events[k].ts))
        })
        .collect();
    let salt = salt_of(opts)?;
    let shards = shard_count(opts.shards, active.len() as u64);
    let mut writer = RecordWriter::new(out, shards, opts.as_of_day)?;
    let mut records = Vec::new();
    for u in active {
        let name = ds.users.name(u);
        if admit(ds, name, &mut writer.written).is_some() {
            let key = family::edge_key(&salt, name);
            records.push((shard_of(key, shards), key, u));
        }
    }
    records.sort_unstable();
    let restocked = family::Restocked::of(model);
    for (_, key, u) in records {
        let own = by_user[u as usize].as_slice();
        let profile = nightly_profile(ds, model, &restocked, u, own, cutoff);
        writer.add(ds.users.name(u), key, &profile)?;
    }
    writer.finish(model, &salt)
}

/// Writes the records on the query engine: the engine reads the log,
/// groups each active family's events and computes its record
/// ([`crate::family`], the same bytes as [`write_users`]), in the order of
/// the edge shards; the builder streams them to files, so it never holds
/// more than a shard. `ds` holds the catalog and `users` (babies and
/// `opt_out`), not the events.
#[cfg(feature = "engine")]
pub fn write_users_on(
    session: &crate::engine::plans::Session,
    ds: &Dataset,
    model: &nestrank::Model,
    model_bytes: &[u8],
    opts: &UsersOptions,
    out: &Path,
) -> Result<UsersWritten> {
    let cutoff = i64::from(opts.as_of_day) * DAY;
    let from = cutoff - i64::from(opts.window_days) * DAY;
    let salt = salt_of(opts)?;
    let shards = shard_count(opts.shards, session.active_families(from, cutoff)?);
    let mut writer = RecordWriter::new(out, shards, opts.as_of_day)?;
    let query = crate::engine::family::FamilyQuery {
        catalog: catalog_of(ds),
        model: model_bytes,
        from,
        cutoff,
        salt: &salt,
        shards,
    };
    session.for_each_family(&query, |name, key, record| {
        let Some(user) = admit(ds, name, &mut writer.written) else {
            return Ok(());
        };
        let mut profile = nestrank::profile::Profile::from_bytes(record)
            .map_err(|e| anyhow::anyhow!("the engine's record of `{name}`: {e}"))?;
        if let Some(u) = user {
            (profile.birth_day, profile.gender) = crate::profiles::baby_of(ds, u);
        }
        writer.add(name, key, &profile)
    })?;
    writer.finish(model, &salt)
}

/// The catalog of `ds` (`items`), for [`FamilyQuery`].
#[cfg(feature = "engine")]
fn catalog_of(ds: &Dataset) -> Vec<crate::engine::family::CatalogItem> {
    (0..ds.items.len() as u32)
        .map(|i| {
            let (brand, category, price) = crate::profiles::catalog_facts(ds, i);
            crate::engine::family::CatalogItem {
                id: ds.items.name(i).to_string(),
                brand: brand.map(str::to_string),
                category: category.map(str::to_string),
                price: price.is_finite().then_some(price),
            }
        })
        .collect()
}

fn salt_of(opts: &UsersOptions) -> Result<Vec<u8>> {
    match &opts.salt {
        Some(s) => Ok(s.clone()),
        None => random_salt(),
    }
}

/// Profiles written per batch of files.
const FILE_BATCH: usize = 4096;

/// Writes records as they come, in the order of their edge shards: each
/// profile to its file (in batches), each shard when the next begins.
struct RecordWriter<'a> {
    out: &'a Path,
    edge: std::path::PathBuf,
    shards: u32,
    as_of_day: i32,
    /// The shard being gathered.
    shard: u32,
    rows: Vec<(u64, Vec<u8>)>,
    files: Vec<(std::path::PathBuf, Vec<u8>)>,
    written: UsersWritten,
}

impl<'a> RecordWriter<'a> {
    fn new(out: &'a Path, shards: u32, as_of_day: i32) -> Result<Self> {
        let edge = out.join("edge");
        std::fs::create_dir_all(&edge)
            .with_context(|| format!("cannot create {}", edge.display()))?;
        Ok(RecordWriter {
            out,
            edge,
            shards,
            as_of_day,
            shard: 0,
            rows: Vec::new(),
            files: Vec::new(),
            written: UsersWritten::default(),
        })
    }

    /// Adds `user`'s record under edge key `key`: keys come in the order of
    /// their shards.
    fn add(&mut self, user: &str, key: u64, profile: &nestrank::profile::Profile) -> Result<()> {
        let shard = shard_of(key, self.shards);
        anyhow::ensure!(
            shard >= self.shard,
            "`{user}` (edge shard {shard}) came after shard {}: the records are not in shard order",
            self.shard
        );
        while self.shard < shard {
            self.write_shard()?;
        }
        let blob = profile.to_bytes();
        let r = &mut self.written;
        r.users += 1;
        r.profile_bytes += blob.len();
        if let Some(e) = &profile.embedding {
            r.with_embedding += 1;
            r.embedding_bytes += nestrank::format::encode_section(e).len();
        }
        // The page's form: one file per family, in two levels of folders.
        let h = format!("{:016x}", nestrank::hash::fnv1a64(user.as_bytes()));
        let path = self
            .out
            .join("profiles")
            .join(&h[..2])
            .join(&h[2..4])
            .join(format!("{user}.nrp"));
        self.files.push((path, blob.clone()));
        self.rows.push((key, blob));
        if self.files.len() >= FILE_BATCH {
            write_files(&std::mem::take(&mut self.files))?;
        }
        Ok(())
    }

    /// Writes the shard being gathered, and moves to the next.
    fn write_shard(&mut self) -> Result<()> {
        let rows = std::mem::take(&mut self.rows);
        let bytes = UserTable::to_bytes(self.shard, self.shards, rows, self.as_of_day);
        self.written.edge_bytes += bytes.len();
        let path = self.edge.join(format!("shard-{:05}.nrt", self.shard));
        crate::publish::write_atomically(&path, |w| Ok(w.write_all(&bytes)?))?;
        self.shard += 1;
        Ok(())
    }

    /// Writes what is left, removes the shards of an earlier, larger
    /// table, and writes `index.json` last.
    fn finish(mut self, model: &nestrank::Model, salt: &[u8]) -> Result<UsersWritten> {
        while self.shard < self.shards {
            self.write_shard()?;
        }
        write_files(&std::mem::take(&mut self.files))?;
        let r = &self.written;
        if r.unsafe_names > 0 {
            eprintln!(
                "warning: skipped {} users whose id is not a safe file name (ASCII letters, digits, `_`, `-`)",
                r.unsafe_names
            );
        }
        for entry in std::fs::read_dir(&self.edge)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let stale = name
                .strip_prefix("shard-")
                .and_then(|n| n.strip_suffix(".nrt"))
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n >= self.shards);
            if stale {
                std::fs::remove_file(self.edge.join(&name))?;
            }
        }
        let index = EdgeIndex {
            format: 1,
            model_id: model.model_id(),
            as_of: nestrank::calendar::format_date(self.as_of_day),
            salt: hex(salt),
            shards: self.shards,
            users: r.users,
        };
        crate::publish::write_atomically(&self.edge.join("index.json"), |w| {
            Ok(serde_json::to_writer_pretty(&mut *w, &index)?)
        })?;
        self.written.shards = self.shards;
        Ok(self.written)
    }
}

/// Writes every file atomically ([`crate::publish::write_atomically`]:
/// synced, renamed, its folder synced) from [`WRITERS`] threads, so that
/// the disk's sync latency overlaps instead of adding up per file.
fn write_files(files: &[(std::path::PathBuf, Vec<u8>)]) -> Result<()> {
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
