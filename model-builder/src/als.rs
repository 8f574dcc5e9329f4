//! Implicit-feedback ALS (Hu, Koren and Volinsky 2008) with the conjugate
//! gradient solver of Takács et al. (2011), as the `implicit` library does
//! it: three CG steps per row, warm-started from the previous iteration.
//!
//! Confidence is `c = 1 + alpha * w` where `w` is the user's event-weighted
//! count on the item; preference is 1 for every observed pair. Rows are
//! solved in parallel with rayon; each row is independent, so the result
//! does not depend on the number of threads.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// ALS settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlsOptions {
    /// Factor dimension (0 disables ALS).
    pub factors: usize,
    /// Confidence slope.
    pub alpha: f32,
    /// Ridge.
    pub regularization: f32,
    /// Alternating iterations.
    pub iterations: usize,
    /// Conjugate-gradient steps per row and iteration.
    pub cg_steps: usize,
    /// Seed of the initial factors.
    pub seed: u64,
}

impl Default for AlsOptions {
    fn default() -> Self {
        AlsOptions {
            factors: 32,
            alpha: 10.0,
            regularization: 0.01,
            iterations: 15,
            cg_steps: 3,
            seed: 42,
        }
    }
}

/// A sparse matrix in compressed rows: row `r` is `entries[offsets[r]..offsets[r+1]]`.
#[derive(Debug, Clone, Default)]
pub struct Csr {
    /// Row starts, `rows + 1` entries.
    pub offsets: Vec<usize>,
    /// `(column, value)` pairs.
    pub entries: Vec<(u32, f32)>,
}

impl Csr {
    /// Builds rows from `(row, column, value)` triples; equal cells are summed.
    pub fn from_triples(rows: usize, mut triples: Vec<(u32, u32, f32)>) -> Self {
        triples.sort_unstable_by_key(|t| (t.0, t.1));
        let mut offsets = vec![0usize; rows + 1];
        let mut entries: Vec<(u32, f32)> = Vec::with_capacity(triples.len());
        let mut last = (u32::MAX, u32::MAX);
        for (r, c, v) in triples {
            if (r, c) == last {
                entries.last_mut().expect("a previous entry").1 += v;
            } else {
                entries.push((c, v));
                offsets[r as usize + 1] += 1;
                last = (r, c);
            }
        }
        for r in 0..rows {
            offsets[r + 1] += offsets[r];
        }
        Csr { offsets, entries }
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Row `r`.
    pub fn row(&self, r: usize) -> &[(u32, f32)] {
        &self.entries[self.offsets[r]..self.offsets[r + 1]]
    }

    /// The transpose, with `cols` rows: a counting sort by column, so it
    /// holds no more than the result (rows come out in increasing order,
    /// as [`Csr::from_triples`] would give them).
    pub fn transpose(&self, cols: usize) -> Csr {
        let mut offsets = vec![0usize; cols + 1];
        for &(c, _) in &self.entries {
            offsets[c as usize + 1] += 1;
        }
        for c in 0..cols {
            offsets[c + 1] += offsets[c];
        }
        let mut next = offsets[..cols].to_vec();
        let mut entries = vec![(0u32, 0f32); self.entries.len()];
        for r in 0..self.rows() {
            for &(c, v) in self.row(r) {
                entries[next[c as usize]] = (r as u32, v);
                next[c as usize] += 1;
            }
        }
        Csr { offsets, entries }
    }
}

fn init(rows: usize, dim: usize, seed: u64) -> Array2<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Array2::from_shape_simple_fn((rows, dim), || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 * 0.01
    })
}

/// The core's eight-lane dot product, compiled a second time with AVX2 so
/// that the eight lanes fit one register where the CPU has it (chosen at
/// run time). Without FMA the operations, and so the results, are the same
/// as the baseline build's: only the register width differs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    nestrank::numeric::dot(a, b)
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { dot_avx2(a, b) };
        }
    }
    nestrank::numeric::dot(a, b)
}

/// `YᵀY + λI`.
fn gram(y: ArrayView2<f32>, regularization: f32) -> Array2<f32> {
    let mut g = y.t().dot(&y);
    for d in 0..g.nrows() {
        g[[d, d]] += regularization;
    }
    g
}

/// One half-step: solves every row of `x` against the fixed `y`.
fn solve_rows(x: &mut Array2<f32>, y: &Array2<f32>, rows: &Csr, opts: &AlsOptions) {
    let dim = opts.factors;
    let yty = gram(y.view(), opts.regularization);
    let yty = yty.as_slice().expect("standard layout");
    let y = y.as_slice().expect("standard layout");
    let alpha = opts.alpha;
    x.as_slice_mut()
        .expect("standard layout")
        .par_chunks_mut(dim)
        .enumerate()
        .for_each_init(
            || (vec![0f32; dim], vec![0f32; dim], vec![0f32; dim]),
            |(r, p, ap), (u, xu)| {
                let row = rows.row(u);
                if row.is_empty() {
                    xu.iter_mut().for_each(|v| *v = 0.0);
                    return;
                }
                // r = b - A x
                for a in 0..dim {
                    r[a] = -dot(&yty[a * dim..(a + 1) * dim], xu);
                }
                for &(i, w) in row {
                    let c = 1.0 + alpha * w;
                    let yi = &y[i as usize * dim..(i as usize + 1) * dim];
                    let k = c - (c - 1.0) * dot(yi, xu);
                    for a in 0..dim {
                        r[a] += k * yi[a];
                    }
                }
                p.copy_from_slice(r);
                let mut rs_old = dot(r, r);
                for _ in 0..opts.cg_steps {
                    if rs_old < 1e-20 {
                        break;
                    }
                    for a in 0..dim {
                        ap[a] = dot(&yty[a * dim..(a + 1) * dim], p);
                    }
                    for &(i, w) in row {
                        let c = 1.0 + alpha * w;
                        let yi = &y[i as usize * dim..(i as usize + 1) * dim];
                        let k = (c - 1.0) * dot(yi, p);
                        for a in 0..dim {
                            ap[a] += k * yi[a];
                        }
                    }
                    let step = rs_old / dot(p, ap);
                    if !step.is_finite() {
                        break;
                    }
                    for a in 0..dim {
                        xu[a] += step * p[a];
                        r[a] -= step * ap[a];
                    }
                    let rs_new = dot(r, r);
                    for a in 0..dim {
                        p[a] = r[a] + rs_new / rs_old * p[a];
                    }
                    rs_old = rs_new;
                }
            },
        );
}

/// Trains item factors from a user x item matrix of event-weighted counts;
/// returns them row-major, `items x factors`.
pub fn train(user_items: &Csr, items: usize, opts: &AlsOptions) -> Vec<f32> {
    let item_users = user_items.transpose(items);
    let mut x = init(user_items.rows(), opts.factors, opts.seed);
    let mut y = init(items, opts.factors, opts.seed ^ 0xA5A5);
    for _ in 0..opts.iterations {
        solve_rows(&mut x, &y, user_items, opts);
        solve_rows(&mut y, &x, &item_users, opts);
    }
    y.into_raw_vec_and_offset().0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_sums_duplicates_and_transposes() {
        let m = Csr::from_triples(2, vec![(1, 0, 1.0), (0, 2, 2.0), (1, 0, 3.0)]);
        assert_eq!(m.row(0), &[(2, 2.0)]);
        assert_eq!(m.row(1), &[(0, 4.0)]);
        let t = m.transpose(3);
        assert_eq!(t.row(0), &[(1, 4.0)]);
        assert_eq!(t.row(1), &[]);
        assert_eq!(t.row(2), &[(0, 2.0)]);
        // A larger matrix: the transpose's rows are those of the
        // transposed triples, and transposing twice gives it back.
        let triples: Vec<(u32, u32, f32)> = (0..500u32)
            .map(|k| ((k * 7919) % 37, (k * 104_729) % 23, k as f32))
            .collect();
        let m = Csr::from_triples(37, triples.clone());
        let flipped = Csr::from_triples(23, triples.iter().map(|&(r, c, v)| (c, r, v)).collect());
        let t = m.transpose(23);
        assert_eq!(
            (t.offsets.clone(), t.entries.clone()),
            (flipped.offsets, flipped.entries)
        );
        let back = t.transpose(37);
        assert_eq!((back.offsets, back.entries), (m.offsets, m.entries));
    }

    #[test]
    fn factors_separate_two_communities() {
        // Users 0..10 use items 0..5, users 10..20 items 5..10.
        let mut triples = Vec::new();
        for u in 0..20u32 {
            for i in 0..5u32 {
                let item = if u < 10 { i } else { i + 5 };
                if (u + i) % 4 != 0 {
                    triples.push((u, item, 1.0));
                }
            }
        }
        let m = Csr::from_triples(20, triples);
        let opts = AlsOptions {
            factors: 4,
            ..AlsOptions::default()
        };
        let y = train(&m, 10, &opts);
        let row = |i: usize| &y[i * 4..(i + 1) * 4];
        let cos = |a: &[f32], b: &[f32]| dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt());
        // Mean cosine within a community well above that across.
        let (mut within, mut across) = (0f32, 0f32);
        for a in 0..10 {
            for b in 0..10 {
                if a != b {
                    let c = cos(row(a), row(b));
                    if (a < 5) == (b < 5) {
                        within += c / 40.0;
                    } else {
                        across += c / 50.0;
                    }
                }
            }
        }
        assert!(within > across + 0.3, "within {within}, across {across}");
        // Deterministic.
        assert_eq!(y, train(&m, 10, &opts));
    }
}
