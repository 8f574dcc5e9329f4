//! The one error type of blob decoding.

use thiserror::Error;

/// Why a blob was rejected. Every variant names the problem and, where it
/// helps, the part of the blob it was found in; decoding never panics.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes do not start with the magic label `NRNK`: not a nestrank blob.
    #[error("not a nestrank blob: expected magic \"NRNK\", got {got:02x?}")]
    BadMagic {
        /// The first four bytes found.
        got: [u8; 4],
    },
    /// The blob was written in a format version this build cannot read.
    #[error(
        "blob format version {got} is not supported (this build reads versions 1 to {expected}); \
         rebuild the model with a model-builder of the same release as the wasm module"
    )]
    Version {
        /// The newest version this build reads (it reads 1 to this).
        expected: u16,
        /// The version written in the blob.
        got: u16,
    },
    /// The blob ends before `what` is complete.
    #[error("blob truncated: {what} is incomplete")]
    Truncated {
        /// The part that was cut short.
        what: &'static str,
    },
    /// The CRC-32 trailer does not match the bytes: the blob was corrupted in transit or storage.
    #[error(
        "blob checksum mismatch (stored crc32 {stored:08x}, computed {computed:08x}): \
         the file is corrupt; download or rebuild it"
    )]
    ChecksumMismatch {
        /// The checksum stored in the trailer.
        stored: u32,
        /// The checksum of the bytes as received.
        computed: u32,
    },
    /// The blob is of another kind than the one asked for (a profile blob given as a model).
    #[error("blob kind {got} where kind {expected} was expected")]
    WrongKind {
        /// The kind asked for.
        expected: u16,
        /// The kind written in the blob.
        got: u16,
    },
    /// A length, count or size exceeds the format's cap for `what`.
    #[error("{what} is too large: {got} exceeds the limit of {limit}")]
    TooLarge {
        /// The quantity that is too large.
        what: &'static str,
        /// The value found.
        got: u64,
        /// The largest value allowed.
        limit: u64,
    },
    /// The section table is inconsistent: overlapping, out of order, with holes, or not covering the payload.
    #[error("bad section table: {what}")]
    Layout {
        /// What is wrong with the layout.
        what: &'static str,
    },
    /// A section the blob kind requires is absent.
    #[error("required section `{what}` is missing")]
    MissingSection {
        /// The missing section's name.
        what: &'static str,
    },
    /// A section appears twice.
    #[error("section `{what}` appears more than once")]
    DuplicateSection {
        /// The repeated section's name.
        what: &'static str,
    },
    /// A section's bytes continue past the value it holds.
    #[error("{what}: unexpected trailing bytes")]
    TrailingBytes {
        /// The section with trailing bytes.
        what: &'static str,
    },
    /// A section's bytes are not a valid encoding of its value.
    #[error("{what}: malformed encoding ({detail})")]
    Malformed {
        /// The section or field.
        what: &'static str,
        /// What the decoder found.
        detail: String,
    },
    /// An index, offset or enumerated value lies outside its valid range.
    #[error("{what} is out of range")]
    OutOfRange {
        /// The field holding the bad value.
        what: &'static str,
    },
    /// Two arrays that must have the same length do not.
    #[error("{what}: lengths disagree ({left} vs {right})")]
    LengthMismatch {
        /// The arrays compared.
        what: &'static str,
        /// The first length.
        left: u64,
        /// The second length.
        right: u64,
    },
    /// A float is NaN or infinite where a finite number is required.
    #[error("{what} holds a non-finite number")]
    NonFinite {
        /// The field holding it.
        what: &'static str,
    },
    /// Names that the format stores sorted (item ids, a profile's brand
    /// and category names) must be unique and in ascending byte order.
    #[error("{what} are not strictly ascending at index {index} (duplicate or unsorted): rebuild the blob with model-builder")]
    UnsortedIds {
        /// The table.
        what: &'static str,
        /// The index of the first name out of order.
        index: u32,
    },
}
