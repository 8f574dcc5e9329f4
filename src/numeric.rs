//! The numeric kernels the scorer and the factors share: a deterministic
//! dot product, a portable `2^(-x)`, and the one sort of scored lists.

/// A dot product in eight independent lanes. A plain float sum is one long
/// dependency chain (and the compiler may not reorder it); eight partial
/// sums run in parallel, scalar or SIMD. The lane order is fixed, so the
/// result is deterministic and identical natively and in wasm.
/// `a` may be `f32` or int8 codes (the packed factors), widened per term.
#[inline]
pub fn dot<T: Copy + Into<f32>>(a: &[T], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            lanes[k] += x[k].into() * y[k];
        }
    }
    let mut s = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5]))
        + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for (&x, y) in ra.iter().zip(rb) {
        s += x.into() * y;
    }
    s
}

/// `2^(-x)` for `x >= 0`, in plain arithmetic: wasm has no exponential
/// instruction and its libm `exp2` costs tens of nanoseconds, called five
/// times per signal. Relative error below 2e-6 (a degree-8 series on the
/// fractional part); 0 when the result would not be a normal f32. Identical
/// natively and in wasm, since it only uses IEEE basic operations.
#[inline]
pub fn pow2_neg(x: f64) -> f32 {
    // NaN and negative inputs count as 0: decays never grow.
    if x.is_nan() || x <= 0.0 {
        return 1.0;
    }
    if x >= 126.0 {
        return 0.0;
    }
    let whole = x as u32; // floor, x >= 0
    let frac = (x - f64::from(whole)) as f32; // [0, 1)
                                              // e^(-t) with t = frac * ln 2 in [0, 0.694), Horner.
    let t = frac * std::f32::consts::LN_2;
    let mut p = 1.0 / 40320.0;
    p = 1.0 / 5040.0 - t * p;
    p = 1.0 / 720.0 - t * p;
    p = 1.0 / 120.0 - t * p;
    p = 1.0 / 24.0 - t * p;
    p = 1.0 / 6.0 - t * p;
    p = 0.5 - t * p;
    p = 1.0 - t * p;
    p = 1.0 - t * p;
    f32::from_bits((127 - whole) << 23) * p
}

/// Sorts `order` (indices into `scores`) by score, highest first, stably.
/// The one sort of scored lists in the crate: every caller shares this one
/// instantiation, which keeps the wasm small.
#[inline(never)]
pub fn sort_by_score_desc(order: &mut [u32], scores: &[f32]) {
    order.sort_by(|&a, &b| scores[b as usize].total_cmp(&scores[a as usize]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow2_neg_is_close_to_exp2() {
        for k in 0..20_000 {
            let x = k as f64 * 0.0061;
            let want = (-x).exp2();
            let got = f64::from(pow2_neg(x));
            assert!((got - want).abs() <= want * 2e-6, "{x}: {got} vs {want}");
        }
        assert_eq!(pow2_neg(0.0), 1.0);
        assert_eq!(pow2_neg(-3.0), 1.0);
        assert_eq!(pow2_neg(f64::NAN), 1.0);
        assert_eq!(pow2_neg(200.0), 0.0);
        assert_eq!(pow2_neg(f64::INFINITY), 0.0);
    }

    #[test]
    fn dot_matches_the_plain_sum() {
        let a: Vec<f32> = (0..37).map(|k| k as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..37).map(|k| 1.0 - k as f32 * 0.25).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-3);
        assert_eq!(dot::<f32>(&[], &[]), 0.0);
        assert_eq!(dot(&[2.0], &[3.0]), 6.0);
    }
}
