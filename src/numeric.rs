//! The numeric kernels the scorer and the factors share: a deterministic
//! dot product, a portable `2^(-x)`, and the crate's sorts.
//!
//! The sorts: the standard library's are instantiated once per element type
//! and comparison, and nine of them took 44 KB of the 337 KB wasm. Every
//! sort in the crate is one of two here instead: [`sort_u64`], for keys
//! packed into a `u64` (the scorer's, the rules', the signal codec's), and
//! [`stable_order`], a merge sort through a comparison behind a reference,
//! for the few cold sorts of strings and tuples.
//!
//! And [`decimal`], a float written out for a message without the standard
//! library's float printing (14 KB of the wasm).

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
    finish(lanes, ra, rb)
}

/// The eight lanes added up, then the tail's products: the one order every
/// build of [`dot`] uses (scalar or SIMD, native or wasm).
#[inline(always)]
fn finish<T: Copy + Into<f32>>(lanes: [f32; 8], ra: &[T], rb: &[f32]) -> f32 {
    let mut s = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5]))
        + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for (&x, y) in ra.iter().zip(rb) {
        s += x.into() * y;
    }
    s
}

/// [`dot`] of int8 codes (a factor row against the user), with wasm's
/// 128-bit SIMD where the build has it (`make pkg` builds the package's
/// `.wasm` both ways): the same eight lanes in two vectors, each lane the
/// same products added in the same order, so the same result to the bit.
/// Scoring the 500 candidates' rows was a quarter of a rerank in scalar
/// wasm.
#[inline]
pub fn dot_codes(a: &[i8], b: &[f32]) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::*;
        simd::dot(a, b, |x| {
            // SAFETY: `x` holds the 8 bytes the load reads; wasm loads need
            // no alignment.
            let v = unsafe { i16x8_load_extend_i8x8(x.as_ptr()) };
            (
                f32x4_convert_i32x4(i32x4_extend_low_i16x8(v)),
                f32x4_convert_i32x4(i32x4_extend_high_i16x8(v)),
            )
        })
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    dot(a, b)
}

/// [`dot`] of floats (the fold-in's products), with wasm's SIMD where the
/// build has it, to the same bit as [`dot`].
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        simd::dot(a, b, simd::load8)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    dot(a, b)
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    /// A chunk of 8 floats as lanes 0-3 and 4-7.
    #[inline(always)]
    pub fn load8(x: &[f32; 8]) -> (v128, v128) {
        // SAFETY: `x` holds the 8 floats the two loads read; wasm loads need
        // no alignment.
        unsafe {
            (
                v128_load(x.as_ptr() as *const v128),
                v128_load(x.as_ptr().add(4) as *const v128),
            )
        }
    }

    /// [`super::dot`]'s eight lanes as two vectors: `lanes` widens a chunk
    /// of 8 of `a` into lanes 0-3 and 4-7; the final sum is
    /// [`super::finish`], as in [`super::dot`].
    #[inline(always)]
    pub fn dot<T: Copy + Into<f32>>(
        a: &[T],
        b: &[f32],
        lanes: impl Fn(&[T; 8]) -> (v128, v128),
    ) -> f32 {
        let ((ca, ra), (cb, rb)) = (a.as_chunks::<8>(), b.as_chunks::<8>());
        let (mut lo, mut hi) = (f32x4_splat(0.0), f32x4_splat(0.0));
        for (x, y) in ca.iter().zip(cb) {
            let (xl, xh) = lanes(x);
            let (yl, yh) = load8(y);
            lo = f32x4_add(lo, f32x4_mul(xl, yl));
            hi = f32x4_add(hi, f32x4_mul(xh, yh));
        }
        let lanes = [
            f32x4_extract_lane::<0>(lo),
            f32x4_extract_lane::<1>(lo),
            f32x4_extract_lane::<2>(lo),
            f32x4_extract_lane::<3>(lo),
            f32x4_extract_lane::<0>(hi),
            f32x4_extract_lane::<1>(hi),
            f32x4_extract_lane::<2>(hi),
            f32x4_extract_lane::<3>(hi),
        ];
        super::finish(lanes, ra, rb)
    }
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

/// `x` as an unsigned key in [`f32::total_cmp`]'s order: `a.total_cmp(&b)`
/// is `key(a).cmp(&key(b))` (negatives flipped whole, positives above them).
#[inline]
pub fn ascending_key(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | 1 << 31
    }
}

/// Sorts `keys` ascending: the crate's one instantiation of the standard
/// library's unstable sort. Callers pack what they sort by into the high
/// bits and a tie-break (a position, for a stable order) into the low ones.
#[inline(never)]
pub fn sort_u64(keys: &mut [u64]) {
    keys.sort_unstable();
}

/// Sorts `v` ascending: in place when short (the rules sort a candidate's
/// few boosts), else through [`sort_u64`].
pub fn sort_u32(v: &mut [u32]) {
    if v.len() <= 16 {
        for i in 1..v.len() {
            let x = v[i];
            let mut j = i;
            while j > 0 && v[j - 1] > x {
                v[j] = v[j - 1];
                j -= 1;
            }
            v[j] = x;
        }
        return;
    }
    let mut keys: Vec<u64> = v.iter().map(|&x| u64::from(x)).collect();
    sort_u64(&mut keys);
    for (x, k) in v.iter_mut().zip(keys) {
        *x = k as u32;
    }
}

/// Sorts `order` (indices into `scores`) by score, highest first, stably
/// (equal scores keep their places' order), in [`f32::total_cmp`]'s order.
/// `keys` is a buffer, so a warm caller allocates nothing.
pub fn sort_by_score_desc(order: &mut [u32], scores: &[f32], keys: &mut Vec<u64>) {
    keys.clear();
    keys.extend(
        order
            .iter()
            .enumerate()
            .map(|(p, &i)| u64::from(!ascending_key(scores[i as usize])) << 32 | p as u64),
    );
    sort_u64(keys);
    for k in keys.iter_mut() {
        *k = u64::from(order[*k as u32 as usize]);
    }
    for (o, &k) in order.iter_mut().zip(keys.iter()) {
        *o = k as u32;
    }
}

/// The stable order of `0..n` by `less` (`less(a, b)`: `a` goes before `b`),
/// by a merge sort: for the cold sorts of strings and tuples, which share
/// this one instantiation.
pub fn stable_order(n: usize, less: &dyn Fn(usize, usize) -> bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut buf = order.clone();
    let mut width = 1;
    while width < n {
        let mut start = 0;
        while start < n {
            let (mid, end) = ((start + width).min(n), (start + 2 * width).min(n));
            let (mut a, mut b) = (start, mid);
            for slot in &mut buf[start..end] {
                // Take from the right run only when strictly before: stable.
                if b < end && (a >= mid || less(order[b], order[a])) {
                    *slot = order[b];
                    b += 1;
                } else {
                    *slot = order[a];
                    a += 1;
                }
            }
            start = end;
        }
        std::mem::swap(&mut order, &mut buf);
        width *= 2;
    }
    order
}

/// `v` rearranged in `order` (a permutation of its indices).
pub fn permuted<T: Clone>(v: &[T], order: &[usize]) -> Vec<T> {
    order.iter().map(|&i| v[i].clone()).collect()
}

/// `x` written in decimal for a message: the integer part in full, up to
/// six decimals with trailing zeros dropped (`11`, `-0.25`, `NaN`, `inf`),
/// and from 1e15 up a mantissa and a power of ten (`3.402823e38`). Not
/// `{}`: the standard library's shortest round-trip printing took 14 KB of
/// the wasm, for the two messages that show a float.
pub fn decimal(x: f32) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    let mut out = String::new();
    if x.is_sign_negative() {
        out.push('-');
    }
    if x.is_infinite() {
        out.push_str("inf");
        return out;
    }
    let mut a = f64::from(x).abs();
    let mut exponent = 0;
    while a >= 1e15 {
        a /= 10.0;
        exponent += 1;
    }
    if exponent > 0 {
        // Down to one digit before the point.
        while a >= 10.0 {
            a /= 10.0;
            exponent += 1;
        }
    }
    let mut whole = a.trunc() as u64;
    let mut millionths = ((a - a.trunc()) * 1e6).round() as u32;
    if millionths == 1_000_000 {
        whole += 1;
        millionths = 0;
    }
    out.push_str(&whole.to_string());
    if millionths > 0 {
        let digits = format!(".{millionths:06}");
        out.push_str(digits.trim_end_matches('0'));
    }
    if exponent > 0 {
        out.push_str(&format!("e{exponent}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascending_keys_follow_total_cmp() {
        let xs = [
            f32::NEG_INFINITY,
            -3.5,
            -1e-40,
            -0.0,
            0.0,
            1e-40,
            2.0,
            f32::INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::MAX,
            f32::MIN,
        ];
        // One key per value: the map is a bijection on the bits.
        let back = |k: u32| f32::from_bits(if k >> 31 == 1 { k & !(1 << 31) } else { !k });
        for a in xs {
            assert_eq!(back(ascending_key(a)).to_bits(), a.to_bits());
            for b in xs {
                assert_eq!(
                    ascending_key(a).cmp(&ascending_key(b)),
                    a.total_cmp(&b),
                    "{a} {b}"
                );
            }
        }
    }

    #[test]
    fn the_sorts_agree_with_the_standard_librarys() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        for n in [0, 1, 2, 3, 7, 16, 17, 20, 21, 64, 500, 1000] {
            // Few distinct scores, so ties are common.
            let scores: Vec<f32> = (0..n).map(|_| (next() % 9) as f32 - 4.0).collect();
            let mut order: Vec<u32> = (0..n as u32).rev().collect();
            let mut want = order.clone();
            want.sort_by(|&a, &b| scores[b as usize].total_cmp(&scores[a as usize]));
            sort_by_score_desc(&mut order, &scores, &mut Vec::new());
            assert_eq!(order, want, "n = {n}");
            let mut v: Vec<u32> = (0..n).map(|_| next() % 50).collect();
            let mut want = v.clone();
            want.sort_unstable();
            sort_u32(&mut v);
            assert_eq!(v, want);
            let pairs: Vec<(u32, u32)> = (0..n).map(|k| (next() % 5, k as u32)).collect();
            let order = stable_order(n, &|a, b| pairs[a].0 < pairs[b].0);
            let mut want = pairs.clone();
            want.sort_by_key(|p| p.0);
            assert_eq!(permuted(&pairs, &order), want, "n = {n}");
        }
    }

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

    #[test]
    fn decimal_writes_what_display_writes_for_short_numbers() {
        for x in [
            0.0f32,
            11.0,
            10.0,
            99.0,
            1.5,
            -0.25,
            0.1,
            -10.5,
            2.75,
            123456.5,
            1e-6,
            16_777_216.0,
        ] {
            assert_eq!(decimal(x), format!("{x}"), "{x}");
        }
        assert_eq!(decimal(-0.0), "-0");
        assert_eq!(decimal(1e-7), "0");
        assert_eq!(decimal(0.9999999), "1");
        assert_eq!(decimal(f32::NAN), "NaN");
        assert_eq!(decimal(f32::INFINITY), "inf");
        assert_eq!(decimal(f32::NEG_INFINITY), "-inf");
        assert_eq!(decimal(1e20), "1e20");
        assert_eq!(decimal(f32::MAX), "3.402823e38");
        assert_eq!(decimal(-2.5e15), "-2.5e15");
    }
}
