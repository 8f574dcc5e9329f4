//! The blob container: header, section table, bincode-encoded sections, CRC-32 trailer.
//!
//! FORMAT.md at the repository root is the specification; this module is its
//! one implementation. Every length read from the input is checked against
//! the bytes actually present and against a cap before anything is allocated.

mod crc32;
mod error;

pub use crc32::crc32;
pub use error::DecodeError;

/// The four bytes every nestrank blob starts with.
pub const MAGIC: [u8; 4] = *b"NRNK";

/// The format version this build writes and reads.
///
/// A blob with another version is rejected with [`DecodeError::Version`]
/// naming both versions: the reader never guesses at a layout it does not
/// know. Rebuild the model with a model-builder of the same release as the
/// wasm module to fix a mismatch. Every released version keeps a golden blob
/// under `tests/data/`.
pub const VERSION: u16 = 4;

/// The oldest format version this build still reads: version 1 blobs (no
/// `family` section) load as they always did.
pub const MIN_VERSION: u16 = 1;

/// The largest blob accepted, in bytes (256 MiB).
pub const MAX_BLOB_BYTES: usize = 256 << 20;

/// The largest number of sections a blob may hold.
pub const MAX_SECTIONS: usize = 16;

/// The size of the fixed header, in bytes.
pub const HEADER_BYTES: usize = 24;

/// The size of one section-table entry, in bytes.
pub const SECTION_ENTRY_BYTES: usize = 12;

/// The size of the CRC-32 trailer, in bytes.
pub const TRAILER_BYTES: usize = 4;

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum BlobKind {
    /// A daily model: item table, neighbours, ranker.
    Model = 1,
    /// A family's profile (`crate::profile`).
    Profile = 2,
    /// One shard of the edge's table of profiles (`crate::usertable`).
    UserTable = 3,
}

/// The fixed header of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The format version written.
    pub version: u16,
    /// The blob kind.
    pub kind: u16,
    /// The model id: the FNV-1a 64 hash of every section's id and payload,
    /// in order (see [`seal`] and FORMAT.md), so the same inputs always
    /// give the same id.
    pub model_id: u64,
    /// The model's date: the as-of day, in days since 1970-01-01 (UTC).
    pub as_of_day: i32,
}

/// A parsed container: the header and the raw bytes of each section, in order.
#[derive(Debug)]
pub struct Container<'a> {
    /// The header.
    pub header: Header,
    /// `(section id, bytes)` in blob order.
    pub sections: Vec<(u16, &'a [u8])>,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<'a> Container<'a> {
    /// Checks magic, size, checksum, version, kind and the section table, in
    /// that order, and returns the sections' bytes. Section contents are not
    /// looked at here.
    pub fn parse(bytes: &'a [u8], kind: BlobKind) -> Result<Self, DecodeError> {
        if bytes.len() < MAGIC.len() {
            return Err(DecodeError::Truncated { what: "header" });
        }
        if bytes[..4] != MAGIC {
            return Err(DecodeError::BadMagic {
                got: [bytes[0], bytes[1], bytes[2], bytes[3]],
            });
        }
        if bytes.len() > MAX_BLOB_BYTES {
            return Err(DecodeError::TooLarge {
                what: "blob size",
                got: bytes.len() as u64,
                limit: MAX_BLOB_BYTES as u64,
            });
        }
        if bytes.len() < HEADER_BYTES + TRAILER_BYTES {
            return Err(DecodeError::Truncated { what: "header" });
        }
        // The checksum comes before the version so that a flipped bit in the
        // version field reads as corruption, not as a blob from the future.
        let body_end = bytes.len() - TRAILER_BYTES;
        let stored = u32_at(bytes, body_end);
        let computed = crc32(&bytes[..body_end]);
        if stored != computed {
            return Err(DecodeError::ChecksumMismatch { stored, computed });
        }
        let version = u16_at(bytes, 4);
        if !(MIN_VERSION..=VERSION).contains(&version) {
            return Err(DecodeError::Version {
                expected: VERSION,
                got: version,
            });
        }
        let header = Header {
            version,
            kind: u16_at(bytes, 6),
            model_id: u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
            as_of_day: i32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes")),
        };
        if header.kind != kind as u16 {
            return Err(DecodeError::WrongKind {
                expected: kind as u16,
                got: header.kind,
            });
        }
        let count = usize::from(u16_at(bytes, 20));
        if count > MAX_SECTIONS {
            return Err(DecodeError::TooLarge {
                what: "section count",
                got: count as u64,
                limit: MAX_SECTIONS as u64,
            });
        }
        if u16_at(bytes, 22) != 0 {
            return Err(DecodeError::OutOfRange {
                what: "header reserved field",
            });
        }
        let table_end = HEADER_BYTES + count * SECTION_ENTRY_BYTES;
        if table_end > body_end {
            return Err(DecodeError::Truncated {
                what: "section table",
            });
        }
        let mut sections = Vec::with_capacity(count);
        let mut expected_offset = table_end;
        for i in 0..count {
            let at = HEADER_BYTES + i * SECTION_ENTRY_BYTES;
            let id = u16_at(bytes, at);
            if u16_at(bytes, at + 2) != 0 {
                return Err(DecodeError::OutOfRange {
                    what: "section entry reserved field",
                });
            }
            let offset = u32_at(bytes, at + 4) as usize;
            let len = u32_at(bytes, at + 8) as usize;
            if offset != expected_offset {
                return Err(DecodeError::Layout {
                    what: "sections must follow the table and each other with no hole or overlap",
                });
            }
            let end = offset.checked_add(len).filter(|&e| e <= body_end).ok_or(
                DecodeError::Truncated {
                    what: "section data",
                },
            )?;
            sections.push((id, &bytes[offset..end]));
            expected_offset = end;
        }
        if expected_offset != body_end {
            return Err(DecodeError::Layout {
                what: "bytes between the last section and the checksum",
            });
        }
        Ok(Container { header, sections })
    }
}

/// Lays out a blob: header, section table, sections, CRC-32 trailer.
///
/// Panics only on a programming error (more than [`MAX_SECTIONS`] sections or
/// a section over 4 GiB), never on data read from outside.
pub fn write_container(header: &Header, sections: &[(u16, Vec<u8>)]) -> Vec<u8> {
    assert!(sections.len() <= MAX_SECTIONS, "too many sections");
    let table_end = HEADER_BYTES + sections.len() * SECTION_ENTRY_BYTES;
    let total = table_end + sections.iter().map(|s| s.1.len()).sum::<usize>() + TRAILER_BYTES;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&header.version.to_le_bytes());
    out.extend_from_slice(&header.kind.to_le_bytes());
    out.extend_from_slice(&header.model_id.to_le_bytes());
    out.extend_from_slice(&header.as_of_day.to_le_bytes());
    out.extend_from_slice(&(sections.len() as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    let mut offset = table_end;
    for (id, data) in sections {
        let len = u32::try_from(data.len()).expect("section under 4 GiB");
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(offset as u32).to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        offset += data.len();
    }
    for (_, data) in sections {
        out.extend_from_slice(data);
    }
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Writes a blob of `kind` whose id is the FNV-1a 64 hash of its encoded
/// sections, so equal contents always give byte-identical blobs.
pub fn seal(kind: BlobKind, as_of_day: i32, sections: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut hashed = Vec::new();
    for (id, data) in sections {
        hashed.extend_from_slice(&id.to_le_bytes());
        hashed.extend_from_slice(data);
    }
    let header = Header {
        version: VERSION,
        kind: kind as u16,
        model_id: crate::hash::fnv1a64(&hashed),
        as_of_day,
    };
    write_container(&header, sections)
}

/// The wincode configuration of section payloads: bincode 1.x layout
/// (little-endian fixed-width integers, u64 lengths) with a 64 MiB cap on
/// any one sequence's preallocation.
pub type WireConfig = wincode::config::Configuration<true, { 64 << 20 }>;

/// Encodes a section payload in the bincode wire format.
pub fn encode_section<T>(value: &T) -> Vec<u8>
where
    T: wincode::SchemaWrite<WireConfig, Src = T>,
{
    wincode::config::serialize(value, WireConfig::new())
        .expect("in-memory model sections always encode")
}

/// Decodes one section payload, which must be consumed exactly.
pub fn decode_section<T>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError>
where
    T: for<'de> wincode::SchemaRead<'de, WireConfig, Dst = T>,
{
    use wincode::ReadError as E;
    wincode::config::deserialize_exact(bytes, WireConfig::new()).map_err(|e| match e {
        E::Io(_) => DecodeError::Truncated { what },
        E::TrailingBytes => DecodeError::TrailingBytes { what },
        E::PreallocationSizeLimit { needed, limit } => DecodeError::TooLarge {
            what,
            got: needed as u64,
            limit: limit as u64,
        },
        other => DecodeError::Malformed {
            what,
            detail: other.to_string(),
        },
    })
}

/// `Ok` when two lengths a section ties together agree, else
/// [`DecodeError::LengthMismatch`] naming them (`what`).
pub(crate) fn check_len(what: &'static str, left: usize, right: usize) -> Result<(), DecodeError> {
    if left == right {
        Ok(())
    } else {
        Err(DecodeError::LengthMismatch {
            what,
            left: left as u64,
            right: right as u64,
        })
    }
}

/// A field schema that reads and writes `T` out of line: wincode inlines
/// every field's reader into its struct's, so each `Vec<f32>` field of
/// each section carried its own copy in the wasm. Fields of one type
/// marked `#[wincode(with = "OutOfLine<Vec<f32>>")]` share one. The bytes
/// are `T`'s.
pub struct OutOfLine<T>(std::marker::PhantomData<T>);

// SAFETY: every item delegates to `T`'s, so `T`'s guarantees (the bytes
// read and written, the type metadata, `dst` initialized exactly on `Ok`)
// are this schema's.
unsafe impl<'de, C: wincode::config::ConfigCore, T: wincode::SchemaRead<'de, C>>
    wincode::SchemaRead<'de, C> for OutOfLine<T>
{
    type Dst = T::Dst;
    const TYPE_META: wincode::TypeMeta = T::TYPE_META;

    #[inline(never)]
    fn read(
        reader: impl wincode::io::Reader<'de>,
        dst: &mut std::mem::MaybeUninit<T::Dst>,
    ) -> wincode::ReadResult<()> {
        T::read(reader, dst)
    }
}

// SAFETY: as for `SchemaRead`.
unsafe impl<C: wincode::config::ConfigCore, T: wincode::SchemaWrite<C>> wincode::SchemaWrite<C>
    for OutOfLine<T>
{
    type Src = T::Src;
    const TYPE_META: wincode::TypeMeta = T::TYPE_META;

    fn size_of(src: &T::Src) -> wincode::WriteResult<usize> {
        T::size_of(src)
    }

    fn write(writer: impl wincode::io::Writer, src: &T::Src) -> wincode::WriteResult<()> {
        T::write(writer, src)
    }
}
