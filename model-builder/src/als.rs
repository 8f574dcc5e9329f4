//! Implicit-feedback ALS (Hu, Koren and Volinsky 2008), each row solved
//! exactly (a Cholesky factorization of its `dim x dim` system), so that a
//! user's factor depends only on the item factors and the user's row, never
//! on a previous iteration: an iteration is then one pass over the users
//! that adds up, per item, what the item half-step needs ([`ItemSums`]).
//! That pass is an aggregation, which runs in memory here or as one
//! aggregate on the engine (`nr_als_sums`, [`crate::engine::functions`]),
//! and the item half-step is solved from its result.
//!
//! Confidence is `c = 1 + alpha * w` where `w` is the user's event-weighted
//! count on the item; preference is 1 for every observed pair. Every sum
//! is taken on a fixed grid ([`GRID_BITS`]), so that it is exact and the
//! factors are the same whatever the order, the threads or the engine's
//! partitioning of the users.

use crate::rng::Rng;
use ndarray::Array2;
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
    /// Alternating iterations. The default, 8, was chosen on validation
    /// days (the two days before the replay's evaluated ones, on the Taobao
    /// sample and the synthetic shop): the fewest of 15, 12, 10, 8, 6, 5, 4
    /// and 3 with the hybrid within .002 and `als` alone within .005 of 15
    /// there, as at every count above it (docs/nightly-build.md).
    pub iterations: usize,
    /// Seed of the initial factors.
    pub seed: u64,
}

impl Default for AlsOptions {
    fn default() -> Self {
        AlsOptions {
            factors: 32,
            alpha: 10.0,
            regularization: 0.01,
            iterations: 8,
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
}

/// Small random starting factors in [0, 0.01).
fn init(rows: usize, dim: usize, seed: u64) -> Array2<f32> {
    let mut rng = Rng::new(seed);
    Array2::from_shape_simple_fn((rows, dim), || {
        (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 0.01
    })
}

/// Sums are kept on a grid of `2^-GRID_BITS`: every term is rounded to it
/// before it is added, so a sum of terms is exact, and the same whatever
/// order (and on whatever partitioning or machine) the terms are added
/// in, as long as it stays below [`EXACT_BELOW`].
pub const GRID_BITS: i32 = 20;

/// Adding and then subtracting `1.5 * 2^(52 - GRID_BITS)` rounds a value
/// below `2^(51 - GRID_BITS)` to the grid (to nearest, ties to even), in
/// two plain additions that vectorize.
const ROUND: f64 = 1.5 * (1u64 << (52 - GRID_BITS)) as f64;

/// Sums on the grid are exact below `2^(53 - GRID_BITS)`; a result is
/// checked against half that.
pub const EXACT_BELOW: f64 = (1u64 << (52 - GRID_BITS)) as f64;

#[inline(always)]
fn on_grid(v: f64) -> f64 {
    (v + ROUND) - ROUND
}

/// Entries of a `dim x dim` symmetric matrix kept as its upper triangle,
/// row by row.
fn triangle(dim: usize) -> usize {
    dim * (dim + 1) / 2
}

/// `acc += k x xᵀ` (upper triangle) and, when `b` is given,
/// `b += c x`, every term rounded to the grid when `GRID`. `k x_a` is
/// exact (two `f32`s), so each term is one rounded product: the same
/// everywhere.
#[inline(always)]
fn rank1_body<const GRID: bool>(acc: &mut [f64], b: Option<&mut [f64]>, x: &[f64], k: f64, c: f64) {
    let round = |v: f64| if GRID { on_grid(v) } else { v };
    let d = x.len();
    let mut o = 0;
    for a in 0..d {
        let s = k * x[a];
        let n = d - a;
        for (r, &xb) in acc[o..o + n].iter_mut().zip(&x[a..]) {
            *r += round(s * xb);
        }
        o += n;
    }
    if let Some(b) = b {
        for (r, &xa) in b.iter_mut().zip(x) {
            *r += round(c * xa);
        }
    }
}

/// [`rank1_body`] compiled a second time with AVX2 (chosen at run time):
/// wider registers, the same operations (no FMA), so the same results.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn rank1_avx2<const GRID: bool>(
    acc: &mut [f64],
    b: Option<&mut [f64]>,
    x: &[f64],
    k: f64,
    c: f64,
) {
    rank1_body::<GRID>(acc, b, x, k, c)
}

/// [`rank1_body`], with AVX2 where the CPU has it.
#[inline]
fn rank1_with<const GRID: bool>(acc: &mut [f64], b: Option<&mut [f64]>, x: &[f64], k: f64, c: f64) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { rank1_avx2::<GRID>(acc, b, x, k, c) };
        }
    }
    rank1_body::<GRID>(acc, b, x, k, c)
}

/// [`rank1_body`] on the grid: sums that are exact in any order.
#[inline]
fn rank1(acc: &mut [f64], b: Option<&mut [f64]>, x: &[f64], k: f64, c: f64) {
    rank1_with::<true>(acc, b, x, k, c)
}

/// Users whose terms [`rank4`] adds at once.
const BLOCK: usize = 4;

/// [`rank1_body`] on the grid for four users at once (`x` holds their
/// factors one after another, `c` their confidences, and `k = c - 1` as
/// [`ItemSums::add`] takes it): the
/// same terms added to each entry in the same order, so the same bits as
/// four calls, with `acc` and `b` read and written once.
#[inline(always)]
fn rank4_body(acc: &mut [f64], b: &mut [f64], x: &[f64], c: [f32; BLOCK]) {
    let d = b.len();
    let (x0, rest) = x.split_at(d);
    let (x1, rest) = rest.split_at(d);
    let (x2, x3) = rest.split_at(d);
    let k = c.map(|c| (c - 1.0) as f64);
    let c = c.map(|c| c as f64);
    let mut o = 0;
    for a in 0..d {
        let s = [k[0] * x0[a], k[1] * x1[a], k[2] * x2[a], k[3] * x3[a]];
        let n = d - a;
        let cols = x0[a..].iter().zip(&x1[a..]).zip(&x2[a..]).zip(&x3[a..]);
        for (r, (((&y0, &y1), &y2), &y3)) in acc[o..o + n].iter_mut().zip(cols) {
            *r = *r
                + on_grid(s[0] * y0)
                + on_grid(s[1] * y1)
                + on_grid(s[2] * y2)
                + on_grid(s[3] * y3);
        }
        o += n;
    }
    let cols = x0.iter().zip(x1).zip(x2).zip(x3);
    for (r, (((&y0, &y1), &y2), &y3)) in b.iter_mut().zip(cols) {
        *r = *r + on_grid(c[0] * y0) + on_grid(c[1] * y1) + on_grid(c[2] * y2) + on_grid(c[3] * y3);
    }
}

/// [`rank4_body`] compiled with AVX2, as [`rank1_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn rank4_avx2(acc: &mut [f64], b: &mut [f64], x: &[f64], c: [f32; BLOCK]) {
    rank4_body(acc, b, x, c)
}

/// [`rank4_body`], with AVX2 where the CPU has it.
fn rank4(acc: &mut [f64], b: &mut [f64], x: &[f64], c: [f32; BLOCK]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { rank4_avx2(acc, b, x, c) };
        }
    }
    rank4_body(acc, b, x, c)
}

/// `a · b` in four independent lanes (a fixed order, so the same result
/// everywhere), not one chain of dependent additions.
#[inline]
fn dot4(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..4 {
            lanes[k] += x[k] * y[k];
        }
    }
    let mut s = (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]);
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Factors the symmetric positive definite `d x d` matrix whose lower half
/// is in `l` (row-major) into its Cholesky factor `L`, in place (the upper
/// half is left as it was); `false` when it is not positive definite.
fn cholesky(l: &mut [f64], d: usize) -> bool {
    for j in 0..d {
        let (above, rest) = l.split_at_mut((j + 1) * d);
        let row_j = &mut above[j * d..];
        let s = row_j[j] - dot4(&row_j[..j], &row_j[..j]);
        if !(s > 0.0 && s.is_finite()) {
            return false;
        }
        let pivot = s.sqrt();
        row_j[j] = pivot;
        let row_j = &row_j[..j];
        for row_i in rest.chunks_exact_mut(d) {
            let s = row_i[j] - dot4(&row_i[..j], row_j);
            row_i[j] = s / pivot;
        }
    }
    true
}

/// `z <- L⁻¹ z` for the Cholesky factor `l` of [`cholesky`].
fn forward(l: &[f64], z: &mut [f64]) {
    let d = z.len();
    for i in 0..d {
        let t = dot4(&l[i * d..i * d + i], &z[..i]);
        z[i] = (z[i] - t) / l[i * d + i];
    }
}

/// `z <- L⁻ᵀ z` for the Cholesky factor `l` of [`cholesky`].
fn backward(l: &[f64], z: &mut [f64]) {
    let d = z.len();
    // Row by row of `L` (contiguous), each solved entry taken out of the
    // ones above it.
    for i in (0..d).rev() {
        z[i] /= l[i * d + i];
        let zi = z[i];
        for (z, &l) in z[..i].iter_mut().zip(&l[i * d..i * d + i]) {
            *z -= l * zi;
        }
    }
}

/// Solves `(T + λI) x = b` by Cholesky, where `T` is an upper triangle;
/// `false` (and `x` zero) when the matrix is not positive definite.
fn solve(tri: &[f64], b: &[f64], regularization: f64, l: &mut Vec<f64>, x: &mut [f32]) -> bool {
    let mut z = b.to_vec();
    let solved = solve_in_place(tri, regularization, l, &mut z);
    for (x, z) in x.iter_mut().zip(z) {
        *x = if solved { z as f32 } else { 0.0 };
    }
    solved
}

/// Writes the lower half of `T + λI` into `l` (`d x d`, row-major), where
/// `T` is an upper triangle kept row by row.
fn lower_half(tri: &[f64], regularization: f64, d: usize, l: &mut Vec<f64>) {
    l.clear();
    l.resize(d * d, 0.0);
    let mut o = 0;
    for a in 0..d {
        for c in a..d {
            l[c * d + a] = tri[o];
            o += 1;
        }
        l[a * d + a] += regularization;
    }
}

/// [`solve`] into `z`, which holds `b` (left as it was when the matrix is
/// not positive definite).
fn solve_in_place(tri: &[f64], regularization: f64, l: &mut Vec<f64>, z: &mut [f64]) -> bool {
    let d = z.len();
    lower_half(tri, regularization, d, l);
    if !cholesky(l, d) {
        return false;
    }
    // L z = b, then Lᵀ x = z.
    forward(l, z);
    backward(l, z);
    true
}

/// What a half-step over the users needs, built once per iteration from
/// the item factors `Y` (and, on an engine, once per partition from the
/// factors' bytes, [`Step::encode`]): the Cholesky factor `L` of
/// `YᵀY + λI` and the factors whitened by it, `v = L⁻¹ y`. A user's
/// system `(YᵀY + λI + Σ k y yᵀ) x = Σ c y` is then
/// `(I + Σ k v vᵀ) x' = Σ c v` with `x = L⁻ᵀ x'`, and for a user with
/// fewer items than factors (most users) the Woodbury identity solves it
/// through the `n x n` system of the user's own items,
/// `x' = V (K⁻¹ + VᵀV)⁻¹ K⁻¹ c`, rather than a `dim x dim` one per user.
#[derive(Debug, Clone)]
pub struct Step {
    dim: usize,
    alpha: f32,
    regularization: f32,
    /// `items x dim`, row-major: the whitened factors `v` when `l` is set;
    /// the factors as given when `YᵀY + λI` is not positive definite.
    f: Vec<f32>,
    /// `YᵀY`, on the grid.
    yy: Vec<f64>,
    /// `L`, `dim x dim` row-major (lower half), or empty.
    l: Vec<f64>,
}

/// A user's working space, reused from user to user.
#[derive(Debug, Default)]
pub struct Scratch {
    a: Vec<f64>,
    b: Vec<f64>,
    v: Vec<f64>,
    l: Vec<f64>,
    row: Vec<(u32, f32)>,
    k: Vec<f64>,
    c: Vec<f64>,
    /// The last user's factor.
    pub x: Vec<f32>,
}

impl Step {
    /// The step for item factors `y` (`items x opts.factors`).
    pub fn new(y: Vec<f32>, opts: &AlsOptions) -> Step {
        Step::from_parts(y, opts.factors, opts.alpha, opts.regularization)
    }

    fn from_parts(mut y: Vec<f32>, dim: usize, alpha: f32, regularization: f32) -> Step {
        let mut yy = vec![0f64; triangle(dim)];
        let mut v = vec![0f64; dim];
        for row in y.chunks_exact(dim.max(1)) {
            for (v, &f) in v.iter_mut().zip(row) {
                *v = f as f64;
            }
            rank1(&mut yy, None, &v, 1.0, 0.0);
        }
        let mut l = Vec::new();
        lower_half(&yy, regularization as f64, dim, &mut l);
        if dim > 0 && cholesky(&mut l, dim) {
            for row in y.chunks_exact_mut(dim) {
                for (v, &f) in v.iter_mut().zip(row.iter()) {
                    *v = f as f64;
                }
                forward(&l, &mut v);
                for (f, &v) in row.iter_mut().zip(&v) {
                    *f = v as f32;
                }
            }
        } else {
            l.clear();
        }
        Step {
            dim,
            alpha,
            regularization,
            f: y,
            yy,
            l,
        }
    }

    /// The number of items.
    pub fn items(&self) -> usize {
        self.f.len() / self.dim.max(1)
    }

    /// The factor dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The confidence slope.
    pub fn alpha(&self) -> f32 {
        self.alpha
    }

    /// Solves the factor of the user with `row` (item, weight) into
    /// `s.x`: `(YᵀY + Σ (c-1) y yᵀ + λI) x = Σ c y`, with `c = 1 + α w`.
    /// The factor is the same whatever the order of `row`. An item past
    /// the factors is an error (it names the item).
    pub fn user(&self, row: &[(u32, f32)], s: &mut Scratch) -> Result<(), u32> {
        let d = self.dim;
        s.x.resize(d, 0.0);
        if self.l.is_empty() {
            return self.user_direct(row, s);
        }
        // In item order, so that every sum below is taken in one order.
        s.row.clear();
        s.row.extend_from_slice(row);
        s.row
            .sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let n = s.row.len();
        s.v.clear();
        s.k.clear();
        s.c.clear();
        for &(i, w) in &s.row {
            let vi = self.f.get(i as usize * d..(i as usize + 1) * d).ok_or(i)?;
            s.v.extend(vi.iter().map(|&f| f as f64));
            let c = 1.0 + self.alpha * w;
            s.k.push((c - 1.0) as f64);
            s.c.push(c as f64);
        }
        s.b.clear();
        s.b.resize(d, 0.0);
        let solved = if n < d && s.k.iter().all(|&k| k > 0.0 && k.is_finite()) {
            // S = K⁻¹ + VᵀV, S u = K⁻¹ c, x' = V u.
            s.l.clear();
            s.l.resize(n * n, 0.0);
            for a in 0..n {
                for b in 0..=a {
                    s.l[a * n + b] = dot4(&s.v[a * d..(a + 1) * d], &s.v[b * d..(b + 1) * d]);
                }
                s.l[a * n + a] += 1.0 / s.k[a];
            }
            s.a.clear();
            s.a.extend(s.c.iter().zip(&s.k).map(|(c, k)| c / k));
            let ok = cholesky(&mut s.l, n);
            if ok {
                forward(&s.l, &mut s.a);
                backward(&s.l, &mut s.a);
                for (u, v) in s.a.iter().zip(s.v.chunks_exact(d)) {
                    for (x, &v) in s.b.iter_mut().zip(v) {
                        *x += u * v;
                    }
                }
            }
            ok
        } else {
            // (I + Σ k v vᵀ) x' = Σ c v.
            s.a.clear();
            s.a.resize(triangle(d), 0.0);
            for ((&k, &c), v) in s.k.iter().zip(&s.c).zip(s.v.chunks_exact(d)) {
                // One order (the row's, sorted): no grid needed.
                rank1_with::<false>(&mut s.a, Some(&mut s.b), v, k, c);
            }
            solve_in_place(&s.a, 1.0, &mut s.l, &mut s.b)
        };
        if solved {
            backward(&self.l, &mut s.b);
            for (x, &z) in s.x.iter_mut().zip(&s.b) {
                *x = z as f32;
            }
        } else {
            s.x.fill(0.0);
        }
        Ok(())
    }

    /// [`Step::user`] where `YᵀY + λI` has no Cholesky factor: the user's
    /// whole system, summed on the grid.
    fn user_direct(&self, row: &[(u32, f32)], s: &mut Scratch) -> Result<(), u32> {
        let d = self.dim;
        s.a.clear();
        s.a.extend_from_slice(&self.yy);
        s.b.clear();
        s.b.resize(d, 0.0);
        s.v.resize(d, 0.0);
        for &(i, w) in row {
            let yi = self.f.get(i as usize * d..(i as usize + 1) * d).ok_or(i)?;
            for (v, &f) in s.v.iter_mut().zip(yi) {
                *v = f as f64;
            }
            let c = 1.0 + self.alpha * w;
            rank1(
                &mut s.a,
                Some(&mut s.b),
                &s.v[..d],
                (c - 1.0) as f64,
                c as f64,
            );
        }
        solve(&s.a, &s.b, self.regularization as f64, &mut s.l, &mut s.x);
        Ok(())
    }

    /// The factors and settings as bytes, for an engine's aggregate: the
    /// dimension (`u32`), `alpha` and `λ` (`f32`), then the factors, all
    /// little-endian.
    pub fn encode(y: &[f32], opts: &AlsOptions) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + y.len() * 4);
        out.extend_from_slice(&(opts.factors as u32).to_le_bytes());
        out.extend_from_slice(&opts.alpha.to_le_bytes());
        out.extend_from_slice(&opts.regularization.to_le_bytes());
        for f in y {
            out.extend_from_slice(&f.to_le_bytes());
        }
        out
    }

    /// The step [`Step::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Step, String> {
        let word = |k: usize| -> [u8; 4] { bytes[k..k + 4].try_into().expect("4 bytes") };
        if bytes.len() < 12 || !bytes.len().is_multiple_of(4) {
            return Err(format!("{} bytes of ALS factors", bytes.len()));
        }
        let dim = u32::from_le_bytes(word(0)) as usize;
        let floats = (bytes.len() - 12) / 4;
        if dim == 0 || dim > 256 || !floats.is_multiple_of(dim) {
            return Err(format!("{floats} factor values do not make rows of {dim}"));
        }
        let y = (0..floats)
            .map(|k| f32::from_le_bytes(word(12 + 4 * k)))
            .collect();
        Ok(Step::from_parts(
            y,
            dim,
            f32::from_le_bytes(word(4)),
            f32::from_le_bytes(word(8)),
        ))
    }
}

/// An item with at most this many users keeps their factors and
/// confidences (`dim + 1` floats each) rather than its sums (`dim (dim +
/// 3) / 2` doubles, 4.4 KB at 32 factors): most items of a shop have few
/// users, and the sums of all would cost memory and time out of
/// proportion to the log.
pub const LIST_USERS: usize = 32;

/// One item's part of [`ItemSums`].
#[derive(Debug, Clone, Default)]
enum Slot {
    /// No user.
    #[default]
    Empty,
    /// Each user's factor, then confidence `c`.
    List(Vec<f32>),
    /// `Σ (c-1) x xᵀ` (upper triangle), then `Σ c x`.
    Sums(Box<[f64]>),
}

/// The sums one item half-step needs, over a set of users (with their
/// factors `x`): `XᵀX`, and per item `Σ (c-1) x xᵀ` and `Σ c x` (kept as
/// the users' factors while an item has few, [`LIST_USERS`]). Sums of
/// several sets merge exactly.
#[derive(Debug, Clone)]
pub struct ItemSums {
    dim: usize,
    xx: Vec<f64>,
    items: Vec<Slot>,
}

impl ItemSums {
    /// Empty sums for `items` items.
    pub fn new(items: usize, dim: usize) -> ItemSums {
        ItemSums {
            dim,
            xx: vec![0.0; triangle(dim)],
            items: vec![Slot::Empty; items],
        }
    }

    fn width(&self) -> usize {
        triangle(self.dim) + self.dim
    }

    /// Adds one user's factor `v` with confidence `c` to an item's sums:
    /// `k = c - 1` taken in `f32`, as [`rank4`] takes it.
    fn add_to_sums(sums: &mut [f64], dim: usize, v: &[f64], c: f32) {
        let (g, b) = sums.split_at_mut(triangle(dim));
        rank1(g, Some(b), v, (c - 1.0) as f64, c as f64);
    }

    /// Adds one user's factor `x` (`v` in `f64`) with confidence `c` to
    /// `slot`.
    fn add(slot: &mut Slot, dim: usize, x: &[f32], v: &[f64], c: f32) {
        match slot {
            Slot::Empty => {
                let mut list = Vec::with_capacity(dim + 1);
                list.extend_from_slice(x);
                list.push(c);
                *slot = Slot::List(list);
            }
            Slot::List(list) => {
                list.extend_from_slice(x);
                list.push(c);
                if list.len() > LIST_USERS * (dim + 1) {
                    let mut sums = vec![0f64; triangle(dim) + dim].into_boxed_slice();
                    fold(&mut sums, dim, list);
                    *slot = Slot::Sums(sums);
                }
            }
            Slot::Sums(sums) => Self::add_to_sums(sums, dim, v, c),
        }
    }

    /// Adds `other`'s sums.
    pub fn merge(&mut self, other: &ItemSums) {
        for (a, b) in self.xx.iter_mut().zip(&other.xx) {
            *a += b;
        }
        let d = self.dim;
        for (mine, theirs) in self.items.iter_mut().zip(&other.items) {
            match theirs {
                Slot::Empty => {}
                Slot::List(list) => {
                    let mut v = vec![0f64; d];
                    for entry in list.chunks_exact(d + 1) {
                        for (v, &f) in v.iter_mut().zip(entry) {
                            *v = f as f64;
                        }
                        Self::add(mine, d, &entry[..d], &v, entry[d]);
                    }
                }
                Slot::Sums(sums) => match mine {
                    Slot::Sums(m) => {
                        for (a, b) in m.iter_mut().zip(sums.iter()) {
                            *a += b;
                        }
                    }
                    _ => {
                        let mut s = sums.clone();
                        if let Slot::List(list) = mine {
                            fold(&mut s, d, list);
                        }
                        *mine = Slot::Sums(s);
                    }
                },
            }
        }
    }

    /// Bytes held.
    pub fn size(&self) -> usize {
        self.xx.len() * 8
            + self
                .items
                .iter()
                .map(|s| {
                    std::mem::size_of::<Slot>()
                        + match s {
                            Slot::Empty => 0,
                            Slot::List(l) => l.capacity() * 4,
                            Slot::Sums(s) => s.len() * 8,
                        }
                })
                .sum::<usize>()
    }

    /// Whether every sum held stayed well inside the range where sums on
    /// the grid are exact (and so equal whatever the order they were added
    /// in).
    pub fn exact(&self) -> bool {
        let inside = |v: &f64| v.abs() < EXACT_BELOW / 2.0;
        self.xx.iter().all(inside)
            && self.items.iter().all(|s| match s {
                Slot::Sums(s) => s.iter().all(inside),
                _ => true,
            })
    }

    /// The same sums with every item `i` renamed `to[i]`, for `items`
    /// items (an engine numbers items its own way).
    pub fn renumber(mut self, to: &[u32], items: usize) -> ItemSums {
        let mut out = vec![Slot::Empty; items];
        for (i, slot) in self.items.drain(..).enumerate() {
            if !matches!(slot, Slot::Empty) {
                out[to[i] as usize] = slot;
            }
        }
        self.items = out;
        self
    }

    /// The item factors these sums give, `items x dim` (zero for an item no
    /// user touched): `(XᵀX + Σ (c-1) x xᵀ + λI) y = Σ c x`.
    pub fn solve(&self, regularization: f32) -> Vec<f32> {
        let (d, t) = (self.dim, triangle(self.dim));
        let mut y = vec![0f32; self.items.len() * d];
        y.par_chunks_mut(d.max(1))
            .zip(self.items.par_iter())
            .for_each_init(
                || (vec![0f64; t + d], vec![0f64; t], Vec::new()),
                |(a, m, l), (yi, slot)| {
                    let sums = match slot {
                        Slot::Empty => return,
                        Slot::Sums(s) => &s[..],
                        Slot::List(list) => {
                            a.fill(0.0);
                            fold(a, d, list);
                            &a[..]
                        }
                    };
                    let (g, b) = sums.split_at(t);
                    for ((m, x), g) in m.iter_mut().zip(&self.xx).zip(g) {
                        *m = x + g;
                    }
                    solve(m, b, regularization as f64, l, yi);
                },
            );
        y
    }

    /// The sums as bytes (the engine's partial and final result): the
    /// dimension, the number of items and of touched items (`u32`), `XᵀX`
    /// (`f64`), then per touched item its number (`u32`), and either its
    /// number of users `n <= LIST_USERS` and `n` times the user's factor
    /// and confidence (`f32`), or `u32::MAX` and its sums (`f64`); all
    /// little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let touched = self
            .items
            .iter()
            .filter(|s| !matches!(s, Slot::Empty))
            .count();
        for n in [self.dim, self.items.len(), touched] {
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        for v in &self.xx {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for (i, slot) in self.items.iter().enumerate() {
            match slot {
                Slot::Empty => continue,
                Slot::List(list) => {
                    out.extend_from_slice(&(i as u32).to_le_bytes());
                    out.extend_from_slice(&((list.len() / (self.dim + 1)) as u32).to_le_bytes());
                    for v in list {
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                }
                Slot::Sums(sums) => {
                    out.extend_from_slice(&(i as u32).to_le_bytes());
                    out.extend_from_slice(&u32::MAX.to_le_bytes());
                    for v in sums.iter() {
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                }
            }
        }
        out
    }

    /// The sums [`ItemSums::encode`] wrote, which must be of dimension
    /// `dim` over `items` items.
    pub fn decode(bytes: &[u8], dim: usize, items: usize) -> Result<ItemSums, String> {
        let mut at = 0;
        let mut take = |n: usize| -> Result<&[u8], String> {
            let part = bytes.get(at..at + n).ok_or_else(|| {
                format!(
                    "the ALS sums end at byte {}, before {}",
                    bytes.len(),
                    at + n
                )
            })?;
            at += n;
            Ok(part)
        };
        let u32_ = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
        let (d, n, touched) = (
            u32_(take(4)?) as usize,
            u32_(take(4)?) as usize,
            u32_(take(4)?) as usize,
        );
        if (d, n) != (dim, items) || touched > items {
            return Err(format!(
                "ALS sums of dimension {d} over {n} items ({touched} touched), not {dim} over {items}"
            ));
        }
        let f64s = |b: &[u8]| -> Vec<f64> {
            b.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect()
        };
        let mut out = ItemSums::new(items, dim);
        out.xx = f64s(take(triangle(dim) * 8)?);
        let w = out.width();
        for _ in 0..touched {
            let i = u32_(take(4)?) as usize;
            let users = u32_(take(4)?);
            if i >= items || !matches!(out.items[i], Slot::Empty) {
                return Err(format!("ALS sums name item {i} twice or past {items}"));
            }
            out.items[i] = if users == u32::MAX {
                Slot::Sums(f64s(take(w * 8)?).into_boxed_slice())
            } else if (1..=LIST_USERS).contains(&(users as usize)) {
                Slot::List(
                    take(users as usize * (dim + 1) * 4)?
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                        .collect(),
                )
            } else {
                return Err(format!("ALS sums give item {i} {users} listed users"));
            };
        }
        if at != bytes.len() {
            return Err(format!("{} bytes after the ALS sums", bytes.len() - at));
        }
        Ok(out)
    }
}

/// Pairs a [`Pass`] holds before it adds them to the items' sums.
const PENDING_PAIRS: usize = 1 << 20;

/// How many pairs ahead [`Pass`] asks for a user's factor.
const PREFETCH: usize = 8;

/// Asks the CPU to bring `x` into its caches (a hint: nothing else changes).
#[inline(always)]
fn prefetch(x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in x.chunks(16) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is part of x86_64, and a prefetch reads nothing.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// One pass's users added to [`ItemSums`] in batches: each user's `XᵀX`
/// term at once, and its items' terms held back and then added item by
/// item, so that an item's sums (4.4 KB at 32 factors) are read and
/// written once for all of a batch's users of it rather than once per
/// user. The sums are on the grid, so the order changes nothing.
#[derive(Debug)]
pub struct Pass {
    sums: ItemSums,
    /// The held users' factors, `dim` each.
    x: Vec<f32>,
    /// `(item, user, confidence)`, the user numbered in `x`.
    pairs: Vec<(u32, u32, f32)>,
    /// Pairs held before they are added.
    batch: usize,
}

impl Pass {
    /// A pass over no users yet, for `items` items.
    pub fn new(items: usize, dim: usize) -> Pass {
        Pass::with_batch(items, dim, PENDING_PAIRS)
    }

    fn with_batch(items: usize, dim: usize, batch: usize) -> Pass {
        Pass {
            sums: ItemSums::new(items, dim),
            x: Vec::new(),
            pairs: Vec::new(),
            batch,
        }
    }

    /// Adds a user with `row` and factor `x`. Items must be below the
    /// number the sums were made for (a [`Step::user`] checked them).
    pub fn add_user(&mut self, row: &[(u32, f32)], x: &[f32], alpha: f32) {
        let v: Vec<f64> = x.iter().map(|&f| f as f64).collect();
        rank1(&mut self.sums.xx, None, &v, 1.0, 0.0);
        let user = (self.x.len() / self.sums.dim.max(1)) as u32;
        self.x.extend_from_slice(x);
        self.pairs
            .extend(row.iter().map(|&(i, w)| (i, user, 1.0 + alpha * w)));
        if self.pairs.len() >= self.batch {
            self.flush();
        }
    }

    /// Adds the held pairs to the sums, item by item.
    fn flush(&mut self) {
        let d = self.sums.dim;
        // Users in the order they came within an item: the lists are as
        // if each pair had been added at once.
        self.pairs.sort_unstable_by_key(|p| (p.0, p.1));
        let mut v = vec![0f64; BLOCK * d];
        let mut at = 0;
        while at < self.pairs.len() {
            let item = self.pairs[at].0;
            let end = at + self.pairs[at..].iter().take_while(|p| p.0 == item).count();
            let slot = &mut self.sums.items[item as usize];
            // Users held for one block: their factors in `v`, and `c`.
            let mut held = [0f32; BLOCK];
            let mut n = 0;
            for (k, &(_, u, c)) in self.pairs[at..end].iter().enumerate() {
                // The users are spread over the held factors: ask for a
                // later pair's factor while this one is added.
                if let Some(&(_, later, _)) = self.pairs.get(at + k + PREFETCH) {
                    prefetch(&self.x[later as usize * d..(later as usize + 1) * d]);
                }
                let x = &self.x[u as usize * d..(u as usize + 1) * d];
                for (v, &f) in v[n * d..(n + 1) * d].iter_mut().zip(x) {
                    *v = f as f64;
                }
                // Each user alone until the item has sums, then the
                // item's sums are read and written once per block.
                let Slot::Sums(sums) = slot else {
                    ItemSums::add(slot, d, x, &v[..d], c);
                    continue;
                };
                held[n] = c;
                n += 1;
                if n == BLOCK {
                    let (g, b) = sums.split_at_mut(triangle(d));
                    rank4(g, b, &v, held);
                    n = 0;
                }
            }
            if let Slot::Sums(sums) = slot {
                for (j, &c) in held[..n].iter().enumerate() {
                    ItemSums::add_to_sums(sums, d, &v[j * d..(j + 1) * d], c);
                }
            }
            at = end;
        }
        self.pairs.clear();
        self.x.clear();
    }

    /// Adds `other`'s sums.
    pub fn merge(&mut self, other: &ItemSums) {
        self.flush();
        self.sums.merge(other);
    }

    /// Bytes held.
    pub fn size(&self) -> usize {
        self.sums.size()
            + self.x.capacity() * 4
            + self.pairs.capacity() * std::mem::size_of::<(u32, u32, f32)>()
    }

    /// The sums of every user added so far (the held pairs added first).
    pub fn sums(&mut self) -> &ItemSums {
        self.flush();
        &self.sums
    }

    /// The sums of every user added.
    pub fn finish(mut self) -> ItemSums {
        self.flush();
        self.sums
    }
}

/// Adds list entries (a user's factor, then confidence) to `sums`.
fn fold(sums: &mut [f64], dim: usize, list: &[f32]) {
    let t = triangle(dim);
    let (g, b) = sums.split_at_mut(t);
    let mut v = vec![0f64; dim];
    for entry in list.chunks_exact(dim + 1) {
        for (v, &f) in v.iter_mut().zip(entry) {
            *v = f as f64;
        }
        let c = entry[dim];
        rank1(g, Some(b), &v, (c - 1.0) as f64, c as f64);
    }
}

/// The item sums of every user of `rows` (users in rows), one part per
/// thread, merged; the same whatever the number of threads.
pub fn sums_in_memory(step: &Step, rows: &Csr) -> ItemSums {
    let parts = rayon::current_num_threads().max(1);
    let users = rows.rows();
    (0..parts)
        .into_par_iter()
        .map(|p| {
            let mut sums = Pass::new(step.items(), step.dim());
            let mut s = Scratch::default();
            for u in users * p / parts..users * (p + 1) / parts {
                let row = rows.row(u);
                if row.is_empty() {
                    continue;
                }
                step.user(row, &mut s)
                    .expect("the in-memory rows name the model's items");
                sums.add_user(row, &s.x, step.alpha);
            }
            sums.finish()
        })
        .reduce_with(|mut a, b| {
            a.merge(&b);
            a
        })
        .unwrap_or_else(|| ItemSums::new(step.items(), step.dim()))
}

/// Item factors trained where `sums` runs each iteration's user half-step
/// (given the item factors, the [`ItemSums`] of every user): in memory
/// ([`train`]) or as one aggregate on an engine. Returns the factors,
/// row-major `items x factors`, and whether every iteration's sums were
/// exact ([`ItemSums::exact`]): then the factors are the same wherever
/// the sums ran.
pub fn train_with<E>(
    items: usize,
    opts: &AlsOptions,
    mut sums: impl FnMut(&[f32]) -> Result<ItemSums, E>,
) -> Result<(Vec<f32>, bool), E> {
    let mut y = init(items, opts.factors, opts.seed ^ 0xA5A5)
        .into_raw_vec_and_offset()
        .0;
    let mut exact = true;
    for _ in 0..opts.iterations {
        let s = sums(&y)?;
        exact &= s.exact();
        y = s.solve(opts.regularization);
    }
    Ok((y, exact))
}

/// Trains item factors from a user x item matrix of event-weighted counts,
/// in memory; returns them row-major, `items x factors`.
pub fn train(user_items: &Csr, items: usize, opts: &AlsOptions) -> (Vec<f32>, bool) {
    let run = train_with(items, opts, |y| {
        Ok::<_, std::convert::Infallible>(sums_in_memory(&Step::new(y.to_vec(), opts), user_items))
    });
    match run {
        Ok(done) => done,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_sums_duplicates() {
        let m = Csr::from_triples(2, vec![(1, 0, 1.0), (0, 2, 2.0), (1, 0, 3.0)]);
        assert_eq!(m.row(0), &[(2, 2.0)]);
        assert_eq!(m.row(1), &[(0, 4.0)]);
    }

    /// A user's factor solves its system: the residual is small.
    #[test]
    fn a_user_factor_solves_its_system() {
        let opts = AlsOptions {
            factors: 4,
            ..AlsOptions::default()
        };
        let y = init(6, 4, 7).into_raw_vec_and_offset().0;
        let y: Vec<f32> = y
            .iter()
            .enumerate()
            .map(|(k, v)| v * 100.0 + (k % 5) as f32 * 0.1)
            .collect();
        let step = Step::new(y.clone(), &opts);
        let mut s = Scratch::default();
        // Fewer items than factors (the Woodbury form), then more (the
        // whole system), and a row with a zero weight (no Woodbury form).
        let rows: [&[(u32, f32)]; 3] = [
            &[(1, 1.0), (4, 3.0)],
            &[(0, 2.0), (1, 1.0), (2, 0.5), (4, 3.0), (5, 1.0)],
            &[(3, 0.0), (5, 1.0)],
        ];
        for row in rows {
            step.user(row, &mut s).unwrap();
            // (YᵀY + Σ (c-1) y yᵀ + λI) x - Σ c y, in f64, against |Σ c y|.
            let yi = |i: usize| &y[i * 4..(i + 1) * 4];
            for a in 0..4 {
                let mut r = opts.regularization as f64 * s.x[a] as f64;
                let mut scale = 0f64;
                for i in 0..6 {
                    let listed = row.iter().find(|e| e.0 as usize == i);
                    let extra = listed.map_or(0.0, |e| (opts.alpha * e.1) as f64);
                    let yx: f64 = (0..4).map(|b| yi(i)[b] as f64 * s.x[b] as f64).sum();
                    r += (1.0 + extra) * yi(i)[a] as f64 * yx;
                    if listed.is_some() {
                        r -= (1.0 + extra) * yi(i)[a] as f64;
                        scale += ((1.0 + extra) * yi(i)[a] as f64).abs();
                    }
                }
                assert!(
                    r.abs() < 1e-5 * scale.max(1.0),
                    "residual {r} in row {a} of {row:?}"
                );
            }
            // The same factor, bit for bit, whatever the row's order.
            let x = s.x.clone();
            let reversed: Vec<_> = row.iter().rev().copied().collect();
            step.user(&reversed, &mut s).unwrap();
            assert_eq!(x, s.x);
        }
        // An item past the factors is named.
        assert_eq!(step.user(&[(6, 1.0)], &mut s), Err(6));
    }

    /// Four users' terms added at once give the bits of four single adds.
    #[test]
    fn a_block_of_four_adds_as_four_single_adds() {
        let d = 5;
        let x: Vec<f64> = (0..BLOCK * d)
            .map(|k| ((k * 37 % 23) as f64 - 11.0) * 0.173)
            .collect();
        let c = [1.0f32, 3.7, 21.0, 0.3];
        let start: Vec<f64> = (0..triangle(d) + d).map(|k| k as f64 * 0.5).collect();
        let mut one = start.clone();
        let (g, b) = one.split_at_mut(triangle(d));
        for (j, &c) in c.iter().enumerate() {
            rank1(
                g,
                Some(&mut *b),
                &x[j * d..(j + 1) * d],
                (c - 1.0) as f64,
                c as f64,
            );
        }
        let mut four = start.clone();
        let (g, b) = four.split_at_mut(triangle(d));
        rank4(g, b, &x, c);
        assert_eq!(one, four);
        assert_ne!(one, start);
    }

    /// Sums merged in any grouping equal the sums in one pass, bit for bit,
    /// and survive their bytes; bad bytes are refused.
    #[test]
    fn sums_are_exact_in_any_order_and_round_trip() {
        let opts = AlsOptions {
            factors: 8,
            ..AlsOptions::default()
        };
        let items = 30;
        let y = init(items, 8, 3).into_raw_vec_and_offset().0;
        let y: Vec<f32> = y
            .iter()
            .enumerate()
            .map(|(k, v)| v * 300.0 - (k % 7) as f32 * 0.3)
            .collect();
        let step = Step::decode(&Step::encode(&y, &opts)).unwrap();
        let rows: Vec<Vec<(u32, f32)>> = (0..300u32)
            .map(|u| {
                (0..1 + u % 6)
                    .map(|k| ((u * 7 + k * 11) % items as u32, 1.0 + (k % 4) as f32))
                    .collect()
            })
            .collect();
        let pass_of = |users: &mut dyn Iterator<Item = &Vec<(u32, f32)>>, batch: usize| {
            let mut sums = Pass::with_batch(items, 8, batch);
            let mut s = Scratch::default();
            for row in users {
                step.user(row, &mut s).unwrap();
                sums.add_user(row, &s.x, opts.alpha);
            }
            sums.finish()
        };
        let sums_of = |users: &mut dyn Iterator<Item = &Vec<(u32, f32)>>| pass_of(users, 1 << 20);
        let whole = sums_of(&mut rows.iter());
        let mut parts = sums_of(&mut rows.iter().step_by(2).rev());
        parts.merge(&sums_of(&mut rows.iter().skip(1).step_by(2).rev()));
        let back = ItemSums::decode(&parts.encode(), 8, items).unwrap();
        assert!(whole.exact());
        // Added a few pairs at a time, or one user at a time (so one by
        // one), the same sums as in one batch, where items with more than
        // LIST_USERS + BLOCK users took blocks of four.
        let users_of = |i: u32| rows.iter().filter(|r| r.iter().any(|e| e.0 == i)).count();
        assert!((0..items as u32).any(|i| users_of(i) > LIST_USERS + BLOCK));
        for batch in [1, 7] {
            let other = pass_of(&mut rows.iter(), batch);
            assert_eq!(other.encode(), whole.encode(), "batch {batch}");
        }
        // Both forms of an item's part, and merges across them.
        let forms = |s: &ItemSums, sums: bool| {
            s.items
                .iter()
                .filter(|i| matches!(i, Slot::Sums(_)) == sums && !matches!(i, Slot::Empty))
                .count()
        };
        assert!(forms(&whole, true) > 0 && forms(&whole, false) > 0);
        assert!(forms(&sums_of(&mut rows.iter().step_by(2)), false) > forms(&whole, false));
        // Items are touched in another order; the sums are the same.
        let solved = whole.solve(opts.regularization);
        assert!(solved.iter().any(|&v| v != 0.0));
        assert_eq!(solved, back.solve(opts.regularization));
        assert_eq!(whole.xx, back.xx);
        // Renumbering and back is the identity.
        let flip: Vec<u32> = (0..items as u32).rev().collect();
        assert_eq!(
            back.renumber(&flip, items)
                .renumber(&flip, items)
                .solve(0.01),
            solved
        );
        // Bad bytes.
        let bytes = whole.encode();
        assert!(ItemSums::decode(&bytes[..bytes.len() - 1], 8, items).is_err());
        assert!(ItemSums::decode(&bytes, 8, items + 1)
            .unwrap_err()
            .contains("not 8 over 31"));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(ItemSums::decode(&longer, 8, items)
            .unwrap_err()
            .contains("after the ALS sums"));
        assert!(Step::decode(&[0; 13]).is_err());
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
        let (y, exact) = train(&m, 10, &opts);
        assert!(exact);
        let row = |i: usize| &y[i * 4..(i + 1) * 4];
        let dot = nestrank::numeric::dot::<f32>;
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
        assert_eq!(y, train(&m, 10, &opts).0);
    }
}
