//! The pieces every blob section shares on the wire (FORMAT.md): the
//! limits a reader enforces, string tables, and neighbour lists with their
//! checks. The lowest layer above the container ([`crate::format`]): the
//! model, the profile and the packed tables build on it, and it imports
//! none of them.

use crate::format::{check_len, DecodeError};
use wincode::{SchemaRead, SchemaWrite};

/// The largest number of items a model may hold.
pub const MAX_ITEMS: usize = 1 << 24;
/// The largest number of categories a model may hold.
pub const MAX_CATEGORIES: usize = 1 << 20;
/// The longest item or category id, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// The most neighbours one item may list.
pub const MAX_NEIGHBOURS: usize = 1024;
/// The index that means "no category".
pub const NO_CATEGORY: u32 = u32::MAX;

/// A list of strings stored as one UTF-8 buffer and the end offset of each.
#[derive(Debug, Clone, PartialEq, Default, SchemaWrite, SchemaRead)]
pub struct StringTable {
    /// All strings, concatenated.
    #[wincode(with = "crate::format::OutOfLine<String>")]
    pub bytes: String,
    /// `ends[i]` is the byte offset just past string `i`.
    #[wincode(with = "crate::format::OutOfLine<Vec<u32>>")]
    pub ends: Vec<u32>,
}

impl StringTable {
    /// Builds a table from strings in order.
    pub fn from_strings<S: AsRef<str>>(strings: &[S]) -> Self {
        let mut t = StringTable::default();
        for s in strings {
            t.bytes.push_str(s.as_ref());
            t.ends.push(t.bytes.len() as u32);
        }
        t
    }

    /// The number of strings.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The position of `key` in a table sorted ascending by bytes (item
    /// ids, profile names), by binary search.
    pub fn position_sorted(&self, key: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.get(mid).as_bytes().cmp(key.as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// String `i`; `i` must be in range (validated tables only).
    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    /// String `i`'s bytes (no check that the ends fall on characters:
    /// for comparing).
    pub fn bytes_of(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes.as_bytes()[start..self.ends[i] as usize]
    }

    pub(crate) fn validate(&self, what: &'static str) -> Result<(), DecodeError> {
        let mut start = 0usize;
        for &end in &self.ends {
            let end = end as usize;
            if end < start || end > self.bytes.len() || !self.bytes.is_char_boundary(end) {
                return Err(DecodeError::OutOfRange { what });
            }
            if end - start > MAX_ID_BYTES {
                return Err(DecodeError::TooLarge {
                    what,
                    got: (end - start) as u64,
                    limit: MAX_ID_BYTES as u64,
                });
            }
            start = end;
        }
        if start != self.bytes.len() {
            return Err(DecodeError::Layout {
                what: "string table bytes past the last string",
            });
        }
        Ok(())
    }
}

/// The neighbour section: top-K lists in compressed sparse rows, scores quantized to u16.
#[derive(Debug, Clone, PartialEq, Default, SchemaWrite, SchemaRead)]
pub struct NeighboursSection {
    /// `offsets[i]..offsets[i+1]` is item `i`'s list; `item_count + 1` entries.
    #[wincode(with = "crate::format::OutOfLine<Vec<u32>>")]
    pub offsets: Vec<u32>,
    /// Neighbour item indices.
    #[wincode(with = "crate::format::OutOfLine<Vec<u32>>")]
    pub items: Vec<u32>,
    /// Quantized similarity; the similarity is `score * scale`.
    #[wincode(with = "crate::format::OutOfLine<Vec<u16>>")]
    pub scores: Vec<u16>,
    /// Dequantization factor.
    pub scale: f32,
}

impl NeighboursSection {
    /// The lists of the `kept` items (indices into this table, ascending),
    /// each keeping only the neighbours `j` that are kept
    /// (`new_index[j] != u32::MAX`) and allowed (`target[j]`), renumbered
    /// by `new_index`: a daily blob's table.
    pub fn select_items(&self, kept: &[usize], new_index: &[u32], target: &[bool]) -> Self {
        let mut out = NeighboursSection {
            offsets: vec![0],
            items: Vec::new(),
            scores: Vec::new(),
            scale: self.scale,
        };
        for &i in kept {
            let (a, b) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
            for k in a..b {
                let old = self.items[k] as usize;
                let j = new_index[old];
                if j != u32::MAX && target[old] {
                    out.items.push(j);
                    out.scores.push(self.scores[k]);
                }
            }
            out.offsets.push(out.items.len() as u32);
        }
        out
    }

    /// Row `index` of a validated table: `(neighbour index, score)`.
    pub fn row(&self, index: u32) -> impl Iterator<Item = (u32, f32)> + '_ {
        let i = index as usize;
        let (a, b) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        let scale = self.scale;
        self.items[a..b]
            .iter()
            .zip(&self.scores[a..b])
            .map(move |(&j, &q)| (j, f32::from(q) * scale))
    }

    /// Checks the lists against `n` items; `what` names the table in errors.
    pub(crate) fn validate(&self, n: usize, what: &'static str) -> Result<(), DecodeError> {
        let nb = self;
        // Error names per table, so a bad complements table says so.
        let names = if what == "complements" {
            [
                "complements.offsets vs item count + 1",
                "complements.scores vs complements.items",
                "complements.offsets",
                "complements list length",
                "complements.items",
                "complements.scale",
            ]
        } else {
            [
                "neighbours.offsets vs item count + 1",
                "neighbours.scores vs neighbours.items",
                "neighbours.offsets",
                "neighbour list length",
                "neighbours.items",
                "neighbours.scale",
            ]
        };
        check_len(names[0], nb.offsets.len(), n + 1)?;
        check_len(names[1], nb.scores.len(), nb.items.len())?;
        if nb.offsets[0] != 0 || *nb.offsets.last().expect("n + 1 >= 1") as usize != nb.items.len()
        {
            return Err(DecodeError::OutOfRange { what: names[2] });
        }
        for w in nb.offsets.windows(2) {
            if w[1] < w[0] {
                return Err(DecodeError::OutOfRange { what: names[2] });
            }
            if (w[1] - w[0]) as usize > MAX_NEIGHBOURS {
                return Err(DecodeError::TooLarge {
                    what: names[3],
                    got: u64::from(w[1] - w[0]),
                    limit: MAX_NEIGHBOURS as u64,
                });
            }
        }
        if nb.items.iter().any(|&j| j as usize >= n) {
            return Err(DecodeError::OutOfRange { what: names[4] });
        }
        if !nb.scale.is_finite() || nb.scale < 0.0 {
            return Err(DecodeError::NonFinite { what: names[5] });
        }
        Ok(())
    }
}
