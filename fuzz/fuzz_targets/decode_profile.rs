//! Any bytes as a profile blob (as they are, and with the CRC-32 trailer
//! fixed up): a typed error or a profile, never a panic; a profile that
//! decodes re-encodes to the same profile and answers its stage.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;
use nestrank::profile::Profile;

fn exercise(bytes: &[u8]) {
    if let Ok(p) = Profile::from_bytes(bytes) {
        assert_eq!(Profile::from_bytes(&p.to_bytes()).expect("re-encodes"), p);
        for now in [0.0, 1.7e9, 4.1e9, -1.0e10] {
            let _ = p.stage_at(now);
            let _ = p.age_months_at(now);
        }
        let _ = p.brand_weight("Moonbean");
        let _ = p.category_weight("diapers");
    }
}

fuzz_target!(|data: &[u8]| common::as_is_and_resealed(data, exercise));
