//! The two fixed hashes: FNV-1a (model ids, the replay's candidate
//! order) and the splitmix64 mix (the exploration draw, seeded generators);
//! and a faster one for in-memory tables, which nothing stores.

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

/// The splitmix64 finalizer: a cheap, well-spread 64-bit mix (the
/// exploration draw's hash, and the builder's seeded generator's step).
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A hash for in-memory tables (the model's id lookup): eight bytes a
/// step, then [`mix64`] so that the low bits a table masks are spread.
/// No format fixes it (nothing stores it), so it may change.
pub fn table_hash(bytes: &[u8]) -> u64 {
    let mut h = bytes.len() as u64;
    for chunk in bytes.chunks(8) {
        // Little-endian, zero-padded: byte by byte, as a short id's tail
        // would otherwise cost a memory copy.
        let w = chunk
            .iter()
            .rev()
            .fold(0u64, |w, &b| (w << 8) | u64::from(b));
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    mix64(h)
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
    fn table_hash_spreads_short_numeric_ids_over_low_bits() {
        // Ids like the shops' (digits, 1-12 bytes): the low 12 bits of
        // 40,000 of them fill 4,096 buckets evenly (chi-square's 99.9%
        // quantile for 4,095 degrees of freedom is about 4,400).
        let buckets = 4096;
        let mut counts = vec![0u32; buckets];
        let n = 40_000u64;
        for i in 0..n {
            let id = (i * 7919 % 1_000_000_007).to_string();
            counts[(table_hash(id.as_bytes()) as usize) & (buckets - 1)] += 1;
        }
        let expected = n as f64 / buckets as f64;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (f64::from(c) - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 4_400.0, "chi-square {chi2}");
        // Lengths differ in the hash even when the padded words agree.
        assert_ne!(table_hash(b"a"), table_hash(b"a\0"));
    }
}
