//! The edge's table of nightly profiles: every family's profile blob,
//! keyed by a salted hash of the user id, split into shards so that a
//! worker fetches one small blob and finds the family without a scan.
//!
//! A shard is a blob of kind [`BlobKind::UserTable`] in the model's
//! container (FORMAT.md) with two sections:
//! - `keys` (1): the shard's number, the shard count, and its keys,
//!   strictly ascending, each with `key % shards == shard`;
//! - `records` (2): `offsets` (one more than the keys, from 0, not
//!   decreasing, the last the length of `bytes`) and `bytes`: record `k`,
//!   `bytes[offsets[k]..offsets[k + 1]]`, is key `k`'s profile blob.
//!
//! The key is computed outside the core (the builder with SHA-256, the
//! worker with WebCrypto): the first 8 bytes, little-endian, of
//! HMAC-SHA256 with the table's salt as the key and the user id as the
//! message ([`key_from_mac`]). The table never holds a user id, and a
//! new salt with every model rotates every key.

use crate::format::{decode_section, encode_section, BlobKind, Container, DecodeError};
use crate::profile::Profile;
use wincode::{SchemaRead, SchemaWrite};

/// Section ids of a user-table shard.
pub mod section {
    /// [`super::KeysSection`].
    pub const KEYS: u16 = 1;
    /// [`super::RecordsSection`].
    pub const RECORDS: u16 = 2;
}

/// The most shards a table may have.
pub const MAX_SHARDS: u32 = 1 << 20;

/// The `keys` section.
#[derive(Debug, Clone, PartialEq, SchemaWrite, SchemaRead)]
pub struct KeysSection {
    /// This shard's number, below `shards`.
    pub shard: u32,
    /// How many shards the table has.
    pub shards: u32,
    /// The keys, strictly ascending.
    pub keys: Vec<u64>,
}

/// The `records` section.
#[derive(Debug, Clone, PartialEq, SchemaWrite, SchemaRead)]
pub struct RecordsSection {
    /// Where each record starts, and the end of the last.
    #[wincode(with = "crate::format::OutOfLine<Vec<u32>>")]
    pub offsets: Vec<u32>,
    /// The profile blobs, back to back.
    #[wincode(with = "crate::format::OutOfLine<Vec<u8>>")]
    pub bytes: Vec<u8>,
}

/// The shard a key lives in.
pub fn shard_of(key: u64, shards: u32) -> u32 {
    (key % u64::from(shards.max(1))) as u32
}

/// A key from a MAC: its first 8 bytes, little-endian (`None` if shorter).
pub fn key_from_mac(mac: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(mac.get(..8)?.try_into().ok()?))
}

/// One decoded, validated shard.
#[derive(Debug, Clone)]
pub struct UserTable {
    keys: KeysSection,
    records: RecordsSection,
}

impl UserTable {
    /// Writes shard `shard` of `shards` from `(key, profile blob)` records
    /// (any order; every key in this shard, no key twice), as of `as_of_day`.
    ///
    /// # Panics
    /// On a key of another shard or a repeated key: the builder's bug.
    pub fn to_bytes(
        shard: u32,
        shards: u32,
        mut records: Vec<(u64, Vec<u8>)>,
        as_of_day: i32,
    ) -> Vec<u8> {
        records.sort_unstable_by_key(|r| r.0);
        assert!(records.windows(2).all(|w| w[0].0 < w[1].0), "a key twice");
        assert!(
            records.iter().all(|r| shard_of(r.0, shards) == shard),
            "a key of another shard"
        );
        let mut offsets = vec![0u32];
        let mut bytes = Vec::new();
        for (_, blob) in &records {
            bytes.extend_from_slice(blob);
            offsets.push(u32::try_from(bytes.len()).expect("a shard under 4 GiB"));
        }
        let keys = KeysSection {
            shard,
            shards,
            keys: records.iter().map(|r| r.0).collect(),
        };
        crate::format::seal(
            BlobKind::UserTable,
            as_of_day,
            &[
                (section::KEYS, encode_section(&keys)),
                (
                    section::RECORDS,
                    encode_section(&RecordsSection { offsets, bytes }),
                ),
            ],
        )
    }

    /// Decodes and validates a shard. Never panics. The records are checked
    /// when looked up.
    pub fn from_bytes(bytes: &[u8]) -> Result<UserTable, DecodeError> {
        let container = Container::parse(bytes, BlobKind::UserTable)?;
        let (mut keys, mut records) = (None, None);
        for (id, data) in &container.sections {
            match *id {
                section::KEYS => {
                    if keys
                        .replace(decode_section::<KeysSection>(data, "keys")?)
                        .is_some()
                    {
                        return Err(DecodeError::DuplicateSection { what: "keys" });
                    }
                }
                section::RECORDS => {
                    if records
                        .replace(decode_section::<RecordsSection>(data, "records")?)
                        .is_some()
                    {
                        return Err(DecodeError::DuplicateSection { what: "records" });
                    }
                }
                _ => return Err(DecodeError::OutOfRange { what: "section id" }),
            }
        }
        let keys = keys.ok_or(DecodeError::MissingSection { what: "keys" })?;
        let records = records.ok_or(DecodeError::MissingSection { what: "records" })?;
        if keys.shards == 0 || keys.shards > MAX_SHARDS || keys.shard >= keys.shards {
            return Err(DecodeError::OutOfRange { what: "keys.shard" });
        }
        for (i, w) in keys.keys.windows(2).enumerate() {
            if w[0] >= w[1] {
                return Err(DecodeError::UnsortedIds {
                    what: "keys.keys",
                    index: i as u32 + 1,
                });
            }
        }
        if keys
            .keys
            .iter()
            .any(|&k| shard_of(k, keys.shards) != keys.shard)
        {
            return Err(DecodeError::OutOfRange {
                what: "keys.keys (another shard's key)",
            });
        }
        if records.offsets.len() != keys.keys.len() + 1 {
            return Err(DecodeError::LengthMismatch {
                what: "records.offsets",
                left: records.offsets.len() as u64,
                right: keys.keys.len() as u64 + 1,
            });
        }
        let ends_right = records.offsets.last().map(|&o| o as usize) == Some(records.bytes.len());
        if records.offsets[0] != 0 || !ends_right || records.offsets.windows(2).any(|w| w[0] > w[1])
        {
            return Err(DecodeError::OutOfRange {
                what: "records.offsets",
            });
        }
        Ok(UserTable { keys, records })
    }

    /// The shard's number and the table's shard count.
    pub fn shard(&self) -> (u32, u32) {
        (self.keys.shard, self.keys.shards)
    }

    /// How many families the shard holds.
    pub fn len(&self) -> usize {
        self.keys.keys.len()
    }

    /// Whether the shard holds none.
    pub fn is_empty(&self) -> bool {
        self.keys.keys.is_empty()
    }

    /// The profile stored under `key`: `None` if there is none, an error
    /// if its record is not a valid profile blob.
    pub fn lookup(&self, key: u64) -> Option<Result<Profile, DecodeError>> {
        let k = self.keys.keys.binary_search(&key).ok()?;
        let (start, end) = (
            self.records.offsets[k] as usize,
            self.records.offsets[k + 1] as usize,
        );
        Some(Profile::from_bytes(&self.records.bytes[start..end]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{write_container, Header, VERSION};
    use crate::profile::EmbeddingSection;

    fn profile(k: u8) -> Profile {
        let mut p = Profile::from_birthday("2026-01-01", "girl", 1.79e9).unwrap();
        p.embedding = Some(EmbeddingSection::quantize(9, &[f32::from(k), 1.0], 2.0, 30));
        p
    }

    #[test]
    fn a_shard_finds_its_families_and_nobody_else() {
        let shards = 4;
        let keys: Vec<u64> = (0..40u64).map(|k| k * 4 + 1).collect();
        let records = keys
            .iter()
            .rev()
            .map(|&k| (k, profile(k as u8).to_bytes()))
            .collect();
        let bytes = UserTable::to_bytes(1, shards, records, 20_000);
        let t = UserTable::from_bytes(&bytes).unwrap();
        assert_eq!((t.shard(), t.len()), ((1, 4), 40));
        for &k in &keys {
            assert_eq!(t.lookup(k).unwrap().unwrap(), profile(k as u8));
        }
        assert!(t.lookup(2).is_none() && t.lookup(u64::MAX).is_none());
        assert_eq!(shard_of(keys[3], shards), 1);
        assert_eq!(key_from_mac(&[1, 0, 0, 0, 0, 0, 0, 0, 9]), Some(1));
        assert_eq!(key_from_mac(&[1, 2]), None);
        // An empty shard is a valid shard.
        let empty = UserTable::from_bytes(&UserTable::to_bytes(0, 4, vec![], 1)).unwrap();
        assert!(empty.is_empty() && empty.lookup(0).is_none());
    }

    fn with(keys: &KeysSection, records: &RecordsSection) -> Result<UserTable, DecodeError> {
        let bytes = write_container(
            &Header {
                version: VERSION,
                kind: BlobKind::UserTable as u16,
                model_id: 0,
                as_of_day: 0,
            },
            &[(1, encode_section(keys)), (2, encode_section(records))],
        );
        UserTable::from_bytes(&bytes)
    }

    #[test]
    fn a_broken_shard_is_a_typed_error_and_a_broken_record_only_its_own() {
        let keys = KeysSection {
            shard: 0,
            shards: 2,
            keys: vec![2, 4],
        };
        let good = profile(1).to_bytes();
        let n = good.len() as u32;
        let mut bytes = good.clone();
        bytes.extend_from_slice(&good[..n as usize - 1]);
        let records = RecordsSection {
            offsets: vec![0, n, 2 * n - 1],
            bytes,
        };
        let t = with(&keys, &records).unwrap();
        assert!(t.lookup(2).unwrap().is_ok());
        assert!(t.lookup(4).is_some_and(|r| r.is_err()), "the short record");
        let bad_keys = |f: &dyn Fn(&mut KeysSection)| {
            let mut k = keys.clone();
            f(&mut k);
            with(&k, &records).unwrap_err()
        };
        assert!(matches!(
            bad_keys(&|k| k.keys = vec![4, 2]),
            DecodeError::UnsortedIds { index: 1, .. }
        ));
        assert!(matches!(
            bad_keys(&|k| k.keys = vec![2, 3]),
            DecodeError::OutOfRange { .. }
        ));
        assert!(matches!(
            bad_keys(&|k| k.shard = 2),
            DecodeError::OutOfRange { what: "keys.shard" }
        ));
        assert!(matches!(
            bad_keys(&|k| k.shards = 0),
            DecodeError::OutOfRange { what: "keys.shard" }
        ));
        assert!(matches!(
            bad_keys(&|k| k.keys.push(6)),
            DecodeError::LengthMismatch { .. }
        ));
        let bad_offsets = |offsets: Vec<u32>| {
            with(
                &keys,
                &RecordsSection {
                    offsets,
                    bytes: records.bytes.clone(),
                },
            )
            .unwrap_err()
        };
        for offsets in [
            vec![1, n, 2 * n - 1],
            vec![0, n, 2 * n],
            vec![0, 2 * n - 1, n],
        ] {
            assert_eq!(
                bad_offsets(offsets),
                DecodeError::OutOfRange {
                    what: "records.offsets"
                }
            );
        }
        let model = crate::testing::tiny_model().to_bytes();
        assert!(matches!(
            UserTable::from_bytes(&model),
            Err(DecodeError::WrongKind { .. })
        ));
    }
}
