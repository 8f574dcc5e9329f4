//! Implicit-feedback item factors and the on-device fold-in of a user.
//!
//! The builder trains item factors `Y` with implicit ALS (Hu, Koren and
//! Volinsky 2008). The blob carries them quantized to int8 with a scale per
//! row, plus the Gram matrix `YᵀY` of the quantized factors, so the device
//! solves for the user's vector in closed form from its local signals:
//!
//! `(YᵀY + Σᵢ (cᵢ − 1) yᵢ yᵢᵀ + λI) x = Σᵢ cᵢ yᵢ`, with `cᵢ = 1 + α wᵢ`
//!
//! where `wᵢ` is the user's event-weighted count on item `i`. The user
//! vector never leaves the device.

use crate::format::{check_len, DecodeError};
use crate::numeric::{dot, dot_f32};
use wincode::{SchemaRead, SchemaWrite};

/// The largest factor dimension a blob may carry.
pub const MAX_DIM: usize = 256;

/// The factors section of a model blob.
#[derive(Debug, Clone, PartialEq, SchemaWrite, SchemaRead)]
pub struct FactorsSection {
    /// Factor dimension `f`.
    pub dim: u32,
    /// `item_count * dim` int8 codes, row-major.
    #[wincode(with = "crate::format::OutOfLine<Vec<i8>>")]
    pub codes: Vec<i8>,
    /// One dequantization scale per item: `y = code * scale`.
    #[wincode(with = "crate::format::OutOfLine<Vec<f32>>")]
    pub scales: Vec<f32>,
    /// `YᵀY` of the dequantized factors, `dim * dim`, row-major.
    #[wincode(with = "crate::format::OutOfLine<Vec<f32>>")]
    pub gram: Vec<f32>,
    /// Ridge `λ`.
    pub regularization: f32,
    /// Confidence slope `α`.
    pub alpha: f32,
    /// Event weights summed into `wᵢ` (view, fav, cart, purchase).
    #[wincode(with = "crate::format::OutOfLine<Vec<f32>>")]
    pub event_weights: Vec<f32>,
}

impl FactorsSection {
    /// The rows of the `kept` items (ascending). The Gram matrix and the
    /// settings stay those of the whole catalog, so a kept item scores
    /// exactly as in the full model.
    pub fn select_items(&self, kept: &[usize]) -> Self {
        let dim = self.dim as usize;
        FactorsSection {
            codes: kept
                .iter()
                .flat_map(|&i| self.codes[i * dim..(i + 1) * dim].iter().copied())
                .collect(),
            scales: kept.iter().map(|&i| self.scales[i]).collect(),
            ..self.clone()
        }
    }

    /// Quantizes f32 factors (row-major, `items * dim`) and computes the Gram
    /// matrix of the quantized values.
    pub fn quantize(
        factors: &[f32],
        dim: usize,
        regularization: f32,
        alpha: f32,
        event_weights: [f32; 4],
    ) -> Self {
        assert!(
            dim > 0 && factors.len().is_multiple_of(dim),
            "factor rows of {dim}"
        );
        let mut codes = Vec::with_capacity(factors.len());
        let mut scales = Vec::with_capacity(factors.len() / dim);
        let mut gram = vec![0f64; dim * dim];
        let mut row = vec![0f32; dim];
        for y in factors.chunks_exact(dim) {
            let max = y.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = if max > 0.0 { max / 127.0 } else { 0.0 };
            for (k, &v) in y.iter().enumerate() {
                let q = if scale > 0.0 {
                    (v / scale).round().clamp(-127.0, 127.0) as i8
                } else {
                    0
                };
                codes.push(q);
                row[k] = f32::from(q) * scale;
            }
            scales.push(scale);
            for a in 0..dim {
                for b in 0..dim {
                    gram[a * dim + b] += f64::from(row[a]) * f64::from(row[b]);
                }
            }
        }
        FactorsSection {
            dim: dim as u32,
            codes,
            scales,
            gram: gram.into_iter().map(|g| g as f32).collect(),
            regularization,
            alpha,
            event_weights: event_weights.to_vec(),
        }
    }

    /// Checks the section against the item count.
    pub fn validate(&self, items: usize) -> Result<(), DecodeError> {
        let dim = self.dim as usize;
        if dim == 0 || dim > MAX_DIM {
            return Err(DecodeError::OutOfRange {
                what: "factors.dim",
            });
        }
        check_len("factors.scales vs item count", self.scales.len(), items)?;
        check_len(
            "factors.codes vs item count * dim",
            self.codes.len(),
            items.saturating_mul(dim),
        )?;
        check_len("factors.gram vs dim * dim", self.gram.len(), dim * dim)?;
        check_len(
            "factors.event_weights vs event kinds",
            self.event_weights.len(),
            4,
        )?;
        let finite = |what, v: &[f32]| {
            if v.iter().all(|x| x.is_finite()) {
                Ok(())
            } else {
                Err(DecodeError::NonFinite { what })
            }
        };
        finite("factors.scales", &self.scales)?;
        finite("factors.gram", &self.gram)?;
        finite("factors.event_weights", &self.event_weights)?;
        if !(self.regularization.is_finite() && self.regularization > 0.0) {
            return Err(DecodeError::OutOfRange {
                what: "factors.regularization",
            });
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0)
            || self.event_weights.iter().any(|w| *w < 0.0)
            || self.scales.iter().any(|s| *s < 0.0)
        {
            return Err(DecodeError::OutOfRange {
                what: "factors.alpha, scales or event weights",
            });
        }
        Ok(())
    }

    /// The dequantized factor row of item `i` into `out`.
    #[inline]
    pub fn row_into(&self, i: usize, out: &mut [f32]) {
        let dim = self.dim as usize;
        let scale = self.scales[i];
        for (o, &c) in out.iter_mut().zip(&self.codes[i * dim..(i + 1) * dim]) {
            *o = f32::from(c) * scale;
        }
    }

    /// `y_i · x` for a user vector `x`.
    #[inline]
    pub fn score(&self, i: usize, x: &[f32]) -> f32 {
        let dim = self.dim as usize;
        crate::numeric::dot_codes(&self.codes[i * dim..(i + 1) * dim], x) * self.scales[i]
    }

    /// Solves for the user vector from `(item, w)` pairs (item indices below
    /// the item count, `w > 0`), into `x`, by conjugate gradient with the
    /// system matrix applied implicitly: each step costs `O(f² + s·f)` for
    /// `s` items instead of the `O(s·f²)` of forming it, which is what makes
    /// a fold-in from 200 signals cost microseconds. `rows` and `work` are
    /// scratch. Returns false (and leaves `x` zero) when there is nothing to
    /// fold in.
    ///
    /// With a [`Prior`] (the user's long-term vector `x₀` from the builder,
    /// and its weight `μ`) the system becomes
    /// `(YᵀY + Σᵢ (cᵢ − 1) yᵢ yᵢᵀ + (λ + μ) I) x = (YᵀY + (λ + μ) I) x₀ + Σᵢ cᵢ yᵢ`:
    /// the history's own terms approximated by `μ I` about `x₀`. So no local
    /// signal gives `x₀` itself, and local signals move the vector away
    /// from it rather than replacing it. The solve starts from `x₀`.
    pub fn fold_in(
        &self,
        items: &[(u32, f32)],
        prior: Option<Prior<'_>>,
        x: &mut Vec<f32>,
        rows: &mut Vec<f32>,
        work: &mut Vec<f32>,
    ) -> bool {
        let dim = self.dim as usize;
        x.clear();
        x.resize(dim, 0.0);
        let prior = prior.filter(|p| p.fits(dim));
        if items.is_empty() && prior.is_none() {
            return false;
        }
        // The items' dequantized rows, once.
        rows.clear();
        rows.resize(items.len() * dim, 0.0);
        for (k, &(i, _)) in items.iter().enumerate() {
            self.row_into(i as usize, &mut rows[k * dim..(k + 1) * dim]);
        }
        work.clear();
        work.resize(3 * dim, 0.0);
        let (r, rest) = work.split_at_mut(dim);
        let (p, ap) = rest.split_at_mut(dim);
        // x = 0, so r = b = Σ c_i y_i.
        for (k, &(_, w)) in items.iter().enumerate() {
            let c = 1.0 + self.alpha * w;
            for (rv, yv) in r.iter_mut().zip(&rows[k * dim..(k + 1) * dim]) {
                *rv += c * yv;
            }
        }
        let mut ridge = self.regularization;
        if let Some(prior) = prior {
            // From x = x₀ the prior's terms cancel: r = b − A x₀
            // = Σ c_i y_i − Σ (c_i − 1)(y_i · x₀) y_i.
            x.copy_from_slice(prior.centre);
            ridge += prior.weight;
            for (k, &(_, w)) in items.iter().enumerate() {
                let y = &rows[k * dim..(k + 1) * dim];
                let t = self.alpha * w * dot_f32(y, prior.centre);
                for (rv, yv) in r.iter_mut().zip(y) {
                    *rv -= t * yv;
                }
            }
        }
        p.copy_from_slice(r);
        let mut rs_old = dot_f32(r, r);
        let tolerance = rs_old * 1e-10;
        for _ in 0..dim.min(FOLD_IN_STEPS) {
            if rs_old <= tolerance || rs_old == 0.0 {
                break;
            }
            // ap = (G + λI) p + Σ (c_i − 1)(y_i · p) y_i
            for (q, apq) in ap.iter_mut().enumerate() {
                let g = &self.gram[q * dim..(q + 1) * dim];
                *apq = dot_f32(g, p) + ridge * p[q];
            }
            for (k, &(_, w)) in items.iter().enumerate() {
                let y = &rows[k * dim..(k + 1) * dim];
                let t = self.alpha * w * dot_f32(y, p);
                for (apq, yq) in ap.iter_mut().zip(y) {
                    *apq += t * yq;
                }
            }
            let pap = dot_f32(p, ap);
            if pap.is_nan() || pap <= 0.0 {
                break;
            }
            let step = rs_old / pap;
            for q in 0..dim {
                x[q] += step * p[q];
                r[q] -= step * ap[q];
            }
            let rs_new = dot_f32(r, r);
            let beta = rs_new / rs_old;
            for q in 0..dim {
                p[q] = r[q] + beta * p[q];
            }
            rs_old = rs_new;
        }
        if x.iter().all(|v| v.is_finite()) {
            true
        } else {
            x.iter_mut().for_each(|v| *v = 0.0);
            false
        }
    }

    /// The exact solution by Cholesky, forming the system matrix: the
    /// reference the conjugate-gradient fold-in is tested against, and the
    /// builder's user embedding (with no prior, from the whole history).
    pub fn fold_in_exact(&self, items: &[(u32, f32)], prior: Option<Prior<'_>>) -> Vec<f32> {
        let dim = self.dim as usize;
        let prior = prior.filter(|p| p.fits(dim));
        let ridge = self.regularization + prior.map_or(0.0, |p| p.weight);
        let mut a = self.gram.clone();
        let mut x = vec![0f32; dim];
        let mut row = vec![0f32; dim];
        for d in 0..dim {
            a[d * dim + d] += ridge;
        }
        if let Some(prior) = prior {
            // b = (YᵀY + (λ + μ) I) x₀, before the items' terms.
            for q in 0..dim {
                x[q] = dot(&a[q * dim..(q + 1) * dim], prior.centre);
            }
        }
        for &(i, w) in items {
            let c = 1.0 + self.alpha * w;
            self.row_into(i as usize, &mut row);
            for p in 0..dim {
                x[p] += c * row[p];
                for q in 0..dim {
                    a[p * dim + q] += (c - 1.0) * row[p] * row[q];
                }
            }
        }
        cholesky_solve(&mut a, &mut x, dim);
        x
    }
}

/// A user's long-term vector, the centre the fold-in holds it to.
#[derive(Debug, Clone, Copy)]
pub struct Prior<'a> {
    /// `x₀`, one value per factor dimension.
    pub centre: &'a [f32],
    /// `μ ≥ 0`: how much history stands behind it.
    pub weight: f32,
}

impl Prior<'_> {
    /// Whether it can be used with factors of dimension `dim`: the right
    /// length and finite values (a decoded profile guarantees the rest).
    fn fits(&self, dim: usize) -> bool {
        self.centre.len() == dim
            && self.weight.is_finite()
            && self.weight >= 0.0
            && self.centre.iter().all(|v| v.is_finite())
    }
}

/// Conjugate-gradient steps of the on-device fold-in (at most the dimension).
pub const FOLD_IN_STEPS: usize = 4;

/// Solves `A x = b` in place (`x` holds `b`) for symmetric positive-definite
/// `A` (row-major, overwritten by its Cholesky factor). On a non-positive
/// pivot (which a ridge `λ > 0` rules out for finite inputs) `x` is zeroed
/// and false returned.
fn cholesky_solve(a: &mut [f32], x: &mut [f32], n: usize) -> bool {
    for j in 0..n {
        let mut d = f64::from(a[j * n + j]);
        for k in 0..j {
            d -= f64::from(a[j * n + k]) * f64::from(a[j * n + k]);
        }
        if d.is_nan() || d <= 0.0 || !d.is_finite() {
            x.iter_mut().for_each(|v| *v = 0.0);
            return false;
        }
        let l = d.sqrt();
        a[j * n + j] = l as f32;
        for i in j + 1..n {
            let mut s = f64::from(a[i * n + j]);
            for k in 0..j {
                s -= f64::from(a[i * n + k]) * f64::from(a[j * n + k]);
            }
            a[i * n + j] = (s / l) as f32;
        }
    }
    // Forward: L z = b.
    for i in 0..n {
        let mut s = f64::from(x[i]);
        for k in 0..i {
            s -= f64::from(a[i * n + k]) * f64::from(x[k]);
        }
        x[i] = (s / f64::from(a[i * n + i])) as f32;
    }
    // Backward: Lᵀ x = z.
    for i in (0..n).rev() {
        let mut s = f64::from(x[i]);
        for k in i + 1..n {
            s -= f64::from(a[k * n + i]) * f64::from(x[k]);
        }
        x[i] = (s / f64::from(a[i * n + i])) as f32;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_known_system() {
        // A = [[4, 2], [2, 3]], b = [2, 1] -> x = [0.5, 0].
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let mut x = vec![2.0, 1.0];
        assert!(cholesky_solve(&mut a, &mut x, 2));
        assert!((x[0] - 0.5).abs() < 1e-6 && x[1].abs() < 1e-6, "{x:?}");
    }

    /// Three items in three dimensions, λ 0.1, α 2.
    fn three_items() -> FactorsSection {
        let factors = [
            0.5, -0.2, 0.1, //
            0.3, 0.4, -0.6, //
            -0.1, 0.2, 0.9, //
        ];
        FactorsSection::quantize(&factors, 3, 0.1, 2.0, [1.0, 2.0, 3.0, 4.0])
    }

    #[test]
    fn fold_in_matches_the_normal_equations() {
        let (dim, f) = (3, three_items());
        let x = f.fold_in_exact(&[(0, 1.0), (2, 3.0)], None);
        // Check A x = b with A, b built directly.
        let ys: Vec<Vec<f32>> = (0..3)
            .map(|i| {
                let mut r = vec![0.0; dim];
                f.row_into(i, &mut r);
                r
            })
            .collect();
        for p in 0..dim {
            let mut lhs = 0.0f64;
            for q in 0..dim {
                let mut apq = f64::from(f.gram[p * dim + q]) + if p == q { 0.1 } else { 0.0 };
                for (i, w) in [(0usize, 1.0f32), (2, 3.0)] {
                    apq += f64::from((2.0 * w) * ys[i][p] * ys[i][q]);
                }
                lhs += apq * f64::from(x[q]);
            }
            let rhs: f64 = [(0usize, 1.0f32), (2, 3.0)]
                .iter()
                .map(|&(i, w)| f64::from((1.0 + 2.0 * w) * ys[i][p]))
                .sum();
            assert!((lhs - rhs).abs() < 1e-4, "row {p}: {lhs} vs {rhs}");
        }
        // In dimension 3, conjugate gradient is exact after 3 steps.
        let (mut cg, mut rows, mut work) = (Vec::new(), Vec::new(), Vec::new());
        assert!(f.fold_in(&[(0, 1.0), (2, 3.0)], None, &mut cg, &mut rows, &mut work));
        for (a, b) in cg.iter().zip(&x) {
            assert!((a - b).abs() < 1e-4, "{cg:?} vs {x:?}");
        }
        assert!(!f.fold_in(&[], None, &mut cg, &mut rows, &mut work));
        assert!(cg.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn conjugate_gradient_fold_in_is_close_to_exact_in_32_dimensions() {
        let (items, dim) = (300usize, 32usize);
        let mut s = 12345u64;
        let factors: Vec<f32> = (0..items * dim)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .map(|v| v * 0.3)
            .collect();
        let f = FactorsSection::quantize(&factors, dim, 0.01, 10.0, [1.0, 2.0, 3.0, 4.0]);
        let user: Vec<(u32, f32)> = (0..150)
            .map(|k| ((k * 2) as u32, 1.0 + (k % 4) as f32))
            .collect();
        let exact = f.fold_in_exact(&user, None);
        let (mut cg, mut rows, mut work) = (Vec::new(), Vec::new(), Vec::new());
        assert!(f.fold_in(&user, None, &mut cg, &mut rows, &mut work));
        // What matters is the ranking: scores of all items agree closely.
        let norm: f32 = exact.iter().map(|v| v * v).sum::<f32>().sqrt();
        let err: f32 = cg
            .iter()
            .zip(&exact)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f32>()
            .sqrt();
        assert!(err / norm < 0.05, "relative error {}", err / norm);
    }

    #[test]
    fn a_prior_is_the_vector_without_signals_and_the_centre_with_them() {
        let f = three_items();
        let centre = [0.4f32, -0.3, 0.2];
        let (mut x, mut rows, mut work) = (Vec::new(), Vec::new(), Vec::new());
        // No local signal: the long-term vector itself, by either solver.
        let prior = Prior {
            centre: &centre,
            weight: 0.5,
        };
        assert!(f.fold_in(&[], Some(prior), &mut x, &mut rows, &mut work));
        assert_eq!(x, centre);
        let exact = f.fold_in_exact(&[], Some(prior));
        for (a, b) in exact.iter().zip(&centre) {
            assert!((a - b).abs() < 1e-5, "{exact:?}");
        }
        // With signals, conjugate gradient (exact in 3 steps) agrees with
        // Cholesky, and the vector lies between the centre and the fold-in
        // without a prior: closer to the centre as the weight grows.
        let items = [(0u32, 1.0f32), (2, 3.0)];
        let free = f.fold_in_exact(&items, None);
        let dist = |a: &[f32], b: &[f32]| -> f32 {
            a.iter()
                .zip(b)
                .map(|(p, q)| (p - q) * (p - q))
                .sum::<f32>()
                .sqrt()
        };
        let mut last = f32::INFINITY;
        for weight in [0.1f32, 1.0, 10.0, 100.0] {
            let prior = Prior {
                centre: &centre,
                weight,
            };
            let exact = f.fold_in_exact(&items, Some(prior));
            assert!(f.fold_in(&items, Some(prior), &mut x, &mut rows, &mut work));
            assert!(dist(&x, &exact) < 1e-4, "{x:?} vs {exact:?}");
            let to_centre = dist(&exact, &centre);
            assert!(to_centre < last, "weight {weight}: {to_centre} >= {last}");
            assert!(dist(&exact, &free) > 1e-3);
            last = to_centre;
        }
        // A prior of the wrong length or with a non-finite value is unused.
        let bad = Prior {
            centre: &centre[..2],
            weight: 1.0,
        };
        assert!(!f.fold_in(&[], Some(bad), &mut x, &mut rows, &mut work));
        let nan = [f32::NAN, 0.0, 0.0];
        let bad = Prior {
            centre: &nan,
            weight: 1.0,
        };
        assert_eq!(f.fold_in_exact(&items, Some(bad)), free);
    }

    #[test]
    fn quantization_keeps_rows_close() {
        let factors = vec![1.0, -0.5, 0.25, 0.0, 0.0, 0.0];
        let f = FactorsSection::quantize(&factors, 3, 0.1, 1.0, [1.0; 4]);
        let mut r = vec![0.0; 3];
        f.row_into(0, &mut r);
        for (a, b) in r.iter().zip(&factors[..3]) {
            assert!((a - b).abs() < 1.0 / 127.0);
        }
        f.row_into(1, &mut r);
        assert_eq!(r, vec![0.0; 3]);
        assert!((f.score(0, &[1.0, 0.0, 0.0]) - 1.0).abs() < 1e-6);
    }
}
