//! Any bytes as a model blob: a typed error or a model, never a panic; a
//! model that decodes answers its accessors and reranks without panicking.
//! Each input is tried twice: as it is, and with its CRC-32 trailer fixed
//! up, so mutations reach the section decoders behind the checksum.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fn exercise(bytes: &[u8]) {
    if let Ok(mut rec) = nestrank::Recommender::from_bytes(bytes) {
        let n = rec.model().item_count() as u32;
        let cands: Vec<u32> = (0..n.min(64)).collect();
        let items: Vec<u32> = (0..n.min(8)).collect();
        let events = vec![0u8; items.len()];
        let ts = vec![1.0e9; items.len()];
        let signals = nestrank::Signals::new(&items, &events, &ts).expect("equal lengths");
        let _ = rec.rerank_indices(&cands, signals, 1.0e9 + 60.0, true);
    }
}

fuzz_target!(|data: &[u8]| common::as_is_and_resealed(data, exercise));
