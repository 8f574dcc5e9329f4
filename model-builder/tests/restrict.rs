//! A daily blob cut down to the specials and the recently active items
//! ranks those items exactly as the full model does, whether its neighbour
//! lists keep every kept target or (the default) only the specials.

use model_builder::als::AlsOptions;
use model_builder::build::{build_parts, recent_items, restrict, Restriction};
use model_builder::data::Dataset;
use model_builder::options::BuildOptions;
use model_builder::rows::BadRowPolicy;
use nestrank::calendar::parse_date;
use nestrank::{Event, Model, Recommender};
use std::path::Path;

#[test]
fn restricted_blob_scores_kept_items_like_the_full_one() {
    let into_specials = check_restricted(false);
    let whole = check_restricted(true);
    assert!(
        into_specials * 2 < whole,
        "links into the specials only: {into_specials}, whole lists: {whole}"
    );
}

/// Checks a restriction and returns its neighbour link count.
fn check_restricted(full_lists: bool) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/golden-data");
    let ds = Dataset::load(&dir, BadRowPolicy { max_bad_rows: 0 }).unwrap();
    let opts = BuildOptions {
        k: 10,
        als: AlsOptions {
            factors: 8,
            ..AlsOptions::default()
        },
        ..BuildOptions::default()
    };
    let day = parse_date("2017-12-03").unwrap();
    let full = build_parts(&ds, day, &opts);
    let full_model = Model::from_parts(full.clone()).unwrap();
    // Specials: every 50th item of the catalog.
    let specials: Vec<String> = (0..full.items.ids.len())
        .step_by(50)
        .map(|i| full.items.ids.get(i).to_string())
        .collect();
    let recent = recent_items(&ds, i64::from(day) * 86_400, 400 + specials.len());
    let small = restrict(
        &full,
        &recent,
        &Restriction {
            specials: specials.clone(),
            max_items: 400,
            full_lists,
        },
    );
    let small_model = Model::from_parts(small.clone()).unwrap();
    assert_eq!(small.items.ids.len(), specials.len() + 400);
    assert!(small.to_bytes().len() * 5 < full.to_bytes().len());
    // Every kept neighbour link is a link of the full model.
    for i in 0..small_model.item_count() as u32 {
        let id = small_model.id_of(i);
        let fi = full_model.index_of(id).unwrap();
        let full_links: Vec<(String, f32)> = full_model
            .neighbours(fi)
            .map(|(j, s)| (full_model.id_of(j).to_string(), s))
            .collect();
        for (j, s) in small_model.neighbours(i) {
            let target = small_model.id_of(j).to_string();
            assert!(full_links.contains(&(target.clone(), s)));
            assert!(full_lists || specials.contains(&target), "{target}");
        }
    }
    // Signals: the 30 most recent events on kept items.
    let cutoff = i64::from(day) * 86_400;
    let signals: Vec<(&str, Event, f64)> = ds
        .events
        .iter()
        .filter(|e| e.ts < cutoff && small_model.index_of(ds.items.name(e.item)).is_some())
        .rev()
        .take(30)
        .map(|e| (ds.items.name(e.item), e.event, e.ts as f64))
        .collect();
    assert_eq!(signals.len(), 30);
    let candidates: Vec<&str> = specials.iter().map(String::as_str).collect();
    let now = cutoff as f64 + 3_600.0;
    let a = Recommender::new(full_model)
        .rerank_ids(&candidates, &signals, now, true)
        .unwrap();
    let b = Recommender::new(small_model)
        .rerank_ids(&candidates, &signals, now, true)
        .unwrap();
    assert_eq!(a.items, b.items);
    assert_eq!(a.reasons, b.reasons);
    for (x, y) in a.scores.iter().zip(&b.scores) {
        assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0), "{x} vs {y}");
    }
    small.neighbours.items.len()
}
