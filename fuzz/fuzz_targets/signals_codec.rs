//! Any text as a signals cookie: a typed error or signals, never a panic;
//! what decodes re-encodes to text that decodes to the same signals.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nestrank::codec::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(signals) = decode(text) {
        let again = encode(&signals, None).expect("decoded signals re-encode");
        assert_eq!(decode(&again).expect("re-encoded text decodes"), signals);
    }
});
