//! Any bytes as a profile blob or a user-table shard (as they are, and
//! with the CRC-32 trailer fixed up): a typed error or a value, never a
//! panic. A profile that decodes re-encodes to the same profile, answers
//! its stage, and ranks, its embedding (if any) made to fit a small model
//! with factors so that the fold-in's prior runs on whatever it holds. A
//! shard that decodes answers lookups of its own keys and others.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;
use nestrank::factors::FactorsSection;
use nestrank::profile::Profile;
use nestrank::usertable::UserTable;
use nestrank::{Event, Model, Recommender};

fn ranks(mut p: Profile) {
    let mut parts = nestrank::testing::tiny_model();
    let dim = p.embedding.as_ref().map_or(2, |e| e.codes.len().max(1));
    let y: Vec<f32> = (0..4 * dim).map(|k| ((k % 7) as f32 - 3.0) / 4.0).collect();
    parts.factors = Some(FactorsSection::quantize(
        &y,
        dim,
        0.1,
        10.0,
        [1.0, 2.0, 3.0, 4.0],
    ));
    parts.ranker.weights[nestrank::params::F_FACTOR] = 1.0;
    parts.ranker.weights[nestrank::params::F_RESTOCK] = 1.0;
    // Restock intervals, so that the profile's rebuys reach the scorer.
    parts.family = Some(nestrank::model::FamilySection {
        brands: nestrank::model::StringTable::from_strings(&["Moonbean"]),
        brand: vec![0, 0, u32::MAX, 0],
        gender: vec![0; 4],
        edges: nestrank::stage::EDGES.to_vec(),
        lifts: Vec::new(),
        price: vec![10.0, 20.0, 0.0, 80.0],
        restock_days: vec![10.0, nestrank::model::DURABLE],
    });
    let model = Model::from_parts(parts).expect("a valid model");
    if let Some(e) = p.embedding.as_mut() {
        e.model_id = model.header().model_id;
    }
    let mut rec = Recommender::new(model);
    rec.set_profile(Some(p));
    assert!(rec.embedding_warning().is_none());
    for signals in [
        &[][..],
        &[("a", Event::View, 50.0), ("c", Event::Cart, 90.0)][..],
    ] {
        let out = rec
            .rerank_ids(&["d", "c", "b", "a"], signals, 100_000.0, true)
            .expect("valid arguments");
        assert_eq!(out.items.len(), 4);
    }
}

fn exercise(bytes: &[u8]) {
    if let Ok(p) = Profile::from_bytes(bytes) {
        assert_eq!(Profile::from_bytes(&p.to_bytes()).expect("re-encodes"), p);
        for now in [0.0, 1.7e9, 4.1e9, -1.0e10] {
            let _ = p.stage_at(now);
            let _ = p.age_months_at(now);
        }
        let _ = p.brand_weight("Moonbean");
        let _ = p.category_weight("diapers");
        let _ = p.rebuys.last_day("diapers");
        ranks(p);
    }
    if let Ok(t) = UserTable::from_bytes(bytes) {
        for key in [0u64, 1, u64::from(t.shard().0), u64::MAX] {
            if let Some(Ok(p)) = t.lookup(key) {
                ranks(p);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| common::as_is_and_resealed(data, exercise));
