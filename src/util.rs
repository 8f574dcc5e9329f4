//! Small shared helpers.

/// FNV-1a, 64-bit: the hash EVAL.md fixes for the candidate order, also used
/// for model ids.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

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

/// Seconds in a day: Unix times to days (`ts.div_euclid(SECONDS_PER_DAY)`).
pub const SECONDS_PER_DAY: i64 = 86_400;

/// [`SECONDS_PER_DAY`] as a float, for times kept in `f64`.
pub const DAY_S: f64 = SECONDS_PER_DAY as f64;

/// The splitmix64 finalizer: a cheap, well-spread 64-bit mix (the
/// exploration draw's hash, and the builder's seeded generator's step).
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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

/// Days since 1970-01-01 of a proleptic Gregorian date, or `None` if the date does not exist.
pub fn days_from_civil(year: i32, month: u32, day: u32) -> Option<i32> {
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    // Howard Hinnant's algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy as i32;
    Some(era * 146_097 + doe - 719_468)
}

/// The `(year, month, day)` of a day number (days since 1970-01-01).
pub fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i32::from(m <= 2);
    (y, m, d)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses `YYYY-MM-DD` into a day number.
pub fn parse_date(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &s[r];
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    days_from_civil(num(0..4)? as i32, num(5..7)?, num(8..10)?)
}

/// Formats a day number as `YYYY-MM-DD`.
pub fn format_date(day: i32) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
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
    fn fnv_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
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
    fn dates_round_trip() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2017-12-03"), Some(17_503));
        assert_eq!(format_date(17_503), "2017-12-03");
        assert_eq!(
            parse_date("2024-02-29").map(format_date).as_deref(),
            Some("2024-02-29")
        );
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2023-13-01"), None);
        assert_eq!(parse_date("2023-1-01"), None);
        assert_eq!(parse_date("+023-01-01"), None);
        for d in [-800_000, -1, 0, 1, 17_000, 60_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), Some(d));
        }
    }
}
