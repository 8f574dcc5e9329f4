//! Version 4's compact wire layout of the neighbour tables (FORMAT.md,
//! "Packed neighbour tables").
//!
//! In memory a table stays a [`NeighboursSection`] (CSR offsets, `u32`
//! indices, `u16` scores): the scorer's hot loop is unchanged. On the wire,
//! version 4 stores each list's length instead of running offsets, each
//! neighbour index in 2 bytes (3 above 65,536 items) and each score as one
//! log-scaled byte: about 40% of a daily blob's gzipped size in version 3
//! was the low bytes of `u32` indices and the noise bits of `u16` scores.

use crate::format::DecodeError;
use crate::wire::NeighboursSection;
use wincode::{SchemaRead, SchemaWrite};

/// A neighbour table as version 4 writes it.
#[derive(Debug, Clone, PartialEq, Default, SchemaWrite, SchemaRead)]
pub struct PackedNeighbours {
    /// Each item's list length, one entry per item.
    #[wincode(with = "crate::format::OutOfLine<Vec<u16>>")]
    pub lengths: Vec<u16>,
    /// The neighbour indices, little-endian, [`index_width`] bytes each.
    #[wincode(with = "crate::format::OutOfLine<Vec<u8>>")]
    pub items: Vec<u8>,
    /// One [`score_code`] per neighbour.
    #[wincode(with = "crate::format::OutOfLine<Vec<u8>>")]
    pub scores: Vec<u8>,
    /// The in-memory dequantization factor (a similarity is `q * scale`
    /// for the `u16` score `q` that [`code_score`] gives back).
    pub scale: f32,
}

/// The bytes a packed neighbour index takes in a model of `n` items.
pub fn index_width(n: usize) -> usize {
    if n <= 1 << 16 {
        2
    } else {
        3
    }
}

/// ln(65535): the top of the `u16` score range on the log scale.
const LN_MAX: f64 = 11.090_339_630_053_647;

/// The one-byte code of an in-memory `u16` score: 0 for 0, else
/// `1 + round(254 * ln(q) / ln(65535))`, a 4.5% step at every level.
pub fn score_code(q: u16) -> u8 {
    if q == 0 {
        0
    } else {
        1 + (254.0 * f64::from(q).ln() / LN_MAX).round() as u8
    }
}

/// The `u16` score a code stands for: `round(65535^((c - 1) / 254))`.
pub fn code_score(c: u8) -> u16 {
    if c == 0 {
        0
    } else {
        (f64::from(c - 1) / 254.0 * LN_MAX)
            .exp()
            .round()
            .min(65_535.0) as u16
    }
}

impl PackedNeighbours {
    /// Packs a table of a model of `n` items. Total on any input: a table
    /// that breaks FORMAT.md's invariants packs to one the reader rejects.
    pub fn pack(nb: &NeighboursSection, n: usize) -> Self {
        // An index too wide for the model's width widens the whole table,
        // so the reader rejects it instead of reading a truncated index.
        let widest = nb.items.iter().copied().max().unwrap_or(0);
        let needed = if widest >= 1 << 24 {
            4
        } else if widest >= 1 << 16 {
            3
        } else {
            2
        };
        let width = index_width(n).max(needed);
        let lengths = nb
            .offsets
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0]).min(u32::from(u16::MAX)) as u16)
            .collect();
        let mut items = Vec::with_capacity(nb.items.len() * width);
        for &j in &nb.items {
            items.extend_from_slice(&j.to_le_bytes()[..width]);
        }
        PackedNeighbours {
            lengths,
            items,
            scores: nb.scores.iter().map(|&q| score_code(q)).collect(),
            scale: nb.scale,
        }
    }

    /// Unpacks a table of a model of `n` items; `what` names it in errors
    /// (`"neighbours"` or `"complements"`). The result still goes through
    /// the table's own validation (indices below `n`, list lengths).
    pub fn unpack(self, n: usize, what: &'static str) -> Result<NeighboursSection, DecodeError> {
        let names = if what == "complements" {
            [
                "complements.lengths vs item ids",
                "complements.scores vs the sum of lengths",
                "complements.items vs scores x index width",
            ]
        } else {
            [
                "neighbours.lengths vs item ids",
                "neighbours.scores vs the sum of lengths",
                "neighbours.items vs scores x index width",
            ]
        };
        let mismatch =
            |what, left: u64, right: u64| DecodeError::LengthMismatch { what, left, right };
        if self.lengths.len() != n {
            return Err(mismatch(names[0], self.lengths.len() as u64, n as u64));
        }
        let links: u64 = self.lengths.iter().map(|&l| u64::from(l)).sum();
        if self.scores.len() as u64 != links {
            return Err(mismatch(names[1], self.scores.len() as u64, links));
        }
        let width = index_width(n);
        if self.items.len() as u64 != links * width as u64 {
            return Err(mismatch(
                names[2],
                self.items.len() as u64,
                links * width as u64,
            ));
        }
        let mut offsets = Vec::with_capacity(n + 1);
        let mut end = 0u32;
        offsets.push(0);
        for &l in &self.lengths {
            // links <= scores.len() <= 64 MiB, so the sum fits in u32.
            end += u32::from(l);
            offsets.push(end);
        }
        let items = if width == 2 {
            self.items
                .chunks_exact(2)
                .map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])))
                .collect()
        } else {
            self.items
                .chunks_exact(3)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], 0]))
                .collect()
        };
        let table: Vec<u16> = (0..=255u8).map(code_score).collect();
        Ok(NeighboursSection {
            offsets,
            items,
            scores: self.scores.iter().map(|&c| table[usize::from(c)]).collect(),
            scale: self.scale,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_keep_order() {
        for c in 0..=255u8 {
            let q = code_score(c);
            assert_eq!(code_score(score_code(q)), q, "code {c}");
        }
        assert_eq!(code_score(255), 65_535);
        assert_eq!(score_code(65_535), 255);
        assert_eq!(score_code(1), 1);
        let mut last = 0;
        for q in 1..=65_535u16 {
            let back = code_score(score_code(q));
            assert!(back >= last, "monotone at {q}");
            last = back;
            let err = (f64::from(back) - f64::from(q)).abs() / f64::from(q);
            // Half a 4.5% step, plus the rounding to an integer.
            assert!(err <= 0.0226 + 0.5 / f64::from(q), "q {q} -> {back}: {err}");
        }
    }

    #[test]
    fn pack_unpack_both_widths() {
        for n in [3usize, 70_000] {
            let nb = NeighboursSection {
                offsets: vec![0, 2, 2, 3],
                items: vec![1, 2, 0],
                scores: vec![65_535, 300, 1],
                scale: 0.5,
            };
            let mut offsets = nb.offsets.clone();
            offsets.resize(n + 1, 3);
            let nb = NeighboursSection { offsets, ..nb };
            let packed = PackedNeighbours::pack(&nb, n);
            assert_eq!(packed.items.len(), 3 * index_width(n));
            let back = packed.unpack(n, "neighbours").unwrap();
            assert_eq!(back.offsets, nb.offsets);
            assert_eq!(back.items, nb.items);
            assert_eq!(back.scores[0], 65_535);
            assert_eq!(back.scores[2], 1);
            assert!((f32::from(back.scores[1]) / 300.0 - 1.0).abs() < 0.025);
        }
    }

    #[test]
    fn an_index_too_wide_for_the_model_is_rejected_not_truncated() {
        let nb = NeighboursSection {
            offsets: vec![0, 1, 1],
            items: vec![65_537],
            scores: vec![9],
            scale: 1.0,
        };
        let err = PackedNeighbours::pack(&nb, 2)
            .unpack(2, "neighbours")
            .unwrap_err();
        assert_eq!(
            err,
            DecodeError::LengthMismatch {
                what: "neighbours.items vs scores x index width",
                left: 3,
                right: 2
            }
        );
    }

    #[test]
    fn unpack_names_each_mismatch() {
        let ok = PackedNeighbours {
            lengths: vec![1, 0],
            items: vec![1, 0],
            scores: vec![9],
            scale: 1.0,
        };
        assert!(ok.clone().unpack(2, "neighbours").is_ok());
        let err = |p: PackedNeighbours, what| match p.unpack(2, what).unwrap_err() {
            DecodeError::LengthMismatch { what, .. } => what,
            e => panic!("{e:?}"),
        };
        let short = PackedNeighbours {
            lengths: vec![1],
            ..ok.clone()
        };
        assert_eq!(err(short, "complements"), "complements.lengths vs item ids");
        let scores = PackedNeighbours {
            scores: vec![],
            ..ok.clone()
        };
        assert_eq!(
            err(scores, "neighbours"),
            "neighbours.scores vs the sum of lengths"
        );
        let items = PackedNeighbours {
            items: vec![1, 0, 0],
            ..ok
        };
        assert_eq!(
            err(items, "neighbours"),
            "neighbours.items vs scores x index width"
        );
    }
}
