//! Stage fit in the model: for each item, how much more (or less) likely a
//! family buys it at each age of the baby than at random, learned by the
//! builder (`model-builder/src/stage.rs`). Stored as the quantized log2 of
//! the lift `P(age bucket | item) / P(age bucket)`, one byte per item and
//! bucket.

/// Age buckets in months: `[EDGES[b], EDGES[b+1])`; negative ages are the
/// pregnancy (three trimesters); the last bucket is open-ended.
pub const EDGES: [f32; 13] = [
    -10.0, -6.0, -3.0, 0.0, 1.0, 3.0, 6.0, 9.0, 12.0, 18.0, 24.0, 36.0, 1.0e6,
];
/// The number of age buckets.
pub const BUCKETS: usize = EDGES.len() - 1;

/// The bucket of an age in months (before -10 months: the first).
pub fn bucket_of(months: f64) -> usize {
    EDGES[1..]
        .iter()
        .position(|&hi| months < f64::from(hi))
        .unwrap_or(BUCKETS - 1)
}

/// A lift as one byte: `round(16 * log2(lift)) + 128`, clamped (lifts from
/// 1/256 to 256 are kept to 1/16 of a doubling).
pub fn quantize_lift(lift: f64) -> u8 {
    if lift.is_nan() || lift <= 0.0 {
        return 0;
    }
    (lift.log2() * 16.0 + 128.0).round().clamp(0.0, 255.0) as u8
}

/// The log2 lift a byte stands for.
pub fn log2_lift(q: u8) -> f32 {
    (f32::from(q) - 128.0) / 16.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantization_round_trips_within_a_sixteenth() {
        for lift in [0.01, 0.5, 1.0, 1.7, 4.0, 100.0] {
            let back = log2_lift(quantize_lift(lift));
            assert!(
                (back - (lift as f32).log2()).abs() <= 1.0 / 32.0 + 1e-6,
                "{lift}"
            );
        }
        assert_eq!(quantize_lift(0.0), 0);
        assert_eq!(quantize_lift(f64::NAN), 0);
        assert_eq!(quantize_lift(1e30), 255);
        assert_eq!(bucket_of(-12.0), 0);
        assert_eq!(bucket_of(0.5), 3);
        assert_eq!(bucket_of(80.0), BUCKETS - 1);
    }
}
