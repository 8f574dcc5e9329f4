//! Shared by the blob targets: run `exercise` on the input as it is and
//! with its CRC-32 trailer fixed up, so mutations get past the checksum to
//! the section decoders.

pub fn as_is_and_resealed(data: &[u8], exercise: impl Fn(&[u8])) {
    exercise(data);
    if data.len() >= 8 {
        let mut fixed = data.to_vec();
        let body = fixed.len() - 4;
        let crc = nestrank::format::crc32(&fixed[..body]);
        fixed[body..].copy_from_slice(&crc.to_le_bytes());
        exercise(&fixed);
    }
}
