//! Native benchmarks of the core on a real model: the Taobao sample's
//! last day (500 specials), built as the nightly build would.
//! Run with `make bench` (or `cargo bench -p model-builder --bench core`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use model_builder::build::{build_parts, recent_items, restrict, Restriction};
use model_builder::data::Dataset;
use model_builder::options::BuildOptions;
use model_builder::replay::{events_by_user, replay_day, SignalWindow};
use model_builder::rows::BadRowPolicy;
use nestrank::calendar::parse_date;
use nestrank::rank::{RankerParams, Ranking};
use nestrank::score::{compute_features, Scratch};
use nestrank::{Model, Signals};
use std::hint::black_box;
use std::path::Path;

struct Fixture {
    bytes: Vec<u8>,
    /// The daily blob: the day's 500 specials and the 5,000 most recently
    /// active items, as `make demo-data` publishes it.
    daily: Vec<u8>,
    model: Model,
    candidates: Vec<u32>,
    /// A user's signals, newest last: (items, events, times, now).
    signals: (Vec<u32>, Vec<u8>, Vec<f64>, f64),
}

fn fixture() -> Fixture {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join("nestrank-bench-taobao");
    if !dir.join("events.csv").exists() {
        model_builder::import::taobao(
            &root.join("data/taobao-userbehavior-sample/UserBehavior_head_with_header.csv"),
            &dir,
            BadRowPolicy { max_bad_rows: 0 },
        )
        .unwrap();
    }
    let ds = Dataset::load(&dir, BadRowPolicy { max_bad_rows: 0 }).unwrap();
    let day = parse_date("2017-12-03").unwrap();
    let parts = build_parts(&ds, day, &BuildOptions::default());
    let bytes = parts.to_bytes();
    let model = Model::from_bytes(&bytes).unwrap();
    let replay = replay_day(&ds, &events_by_user(&ds), day, &model, SignalWindow::Device);
    let case = replay
        .cases
        .iter()
        .max_by_key(|c| c.items.len())
        .expect("a case");
    let keep = case.items.len().saturating_sub(200);
    let specials: Vec<String> = replay
        .candidates
        .iter()
        .map(|&i| model.id_of(i).to_string())
        .collect();
    let recent = recent_items(
        &ds,
        i64::from(parts.as_of_day) * 86_400,
        5_000 + specials.len(),
    );
    let daily = restrict(
        &parts,
        &recent,
        &Restriction {
            specials,
            max_items: 5_000,
            full_lists: false,
        },
    )
    .to_bytes();
    Fixture {
        daily,
        candidates: replay.candidates.clone(),
        signals: (
            case.items[keep..].to_vec(),
            case.events[keep..].to_vec(),
            case.times[keep..].to_vec(),
            case.ts as f64,
        ),
        bytes,
        model,
    }
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    c.bench_function("decode (full-catalog blob)", |b| {
        b.iter(|| Model::from_bytes(black_box(&f.bytes)).unwrap())
    });
    c.bench_function("decode (daily blob)", |b| {
        b.iter(|| Model::from_bytes(black_box(&f.daily)).unwrap())
    });
    let params = f.model.ranker().clone();
    let (items, events, ts, now) = &f.signals;
    let mut group = c.benchmark_group("rerank 500 candidates");
    for n in [0usize, 20, 200] {
        let k = items.len().saturating_sub(n);
        let sig = Signals::new(&items[k..], &events[k..], &ts[k..]).unwrap();
        let mut scratch = Scratch::new();
        let mut out = Ranking::default();
        group.bench_with_input(
            BenchmarkId::new("signals", items.len() - k),
            &sig,
            |b, sig| {
                b.iter(|| {
                    nestrank::score::rerank_into(
                        &f.model,
                        &params,
                        &mut scratch,
                        black_box(&f.candidates),
                        *sig,
                        *now,
                        false,
                        &mut out,
                    )
                    .unwrap()
                })
            },
        );
    }
    group.finish();
    let sig = Signals::new(items, events, ts).unwrap();
    let mut no_factor: RankerParams = params.clone();
    no_factor.weights[nestrank::rank::F_FACTOR] = 0.0;
    let mut scratch = Scratch::new();
    c.bench_function("features without fold-in (200 signals)", |b| {
        b.iter(|| compute_features(&f.model, &no_factor, &mut scratch, &f.candidates, sig, *now))
    });
    c.bench_function("fold-in + features (200 signals)", |b| {
        b.iter(|| compute_features(&f.model, &params, &mut scratch, &f.candidates, sig, *now))
    });
    // The business rules on the same page, rule kind by rule kind, then
    // all together.
    let all = r#"{"pins": [{"item": "1", "slot": 1}],
        "boosts": [{"category": "1", "times": 1.5}, {"category": "2", "add": -0.1},
                   {"item": "2", "times": 2}],
        "filter": ["3", "4", "5"],
        "diversity": [{"by": "category", "max": 2, "window": 5},
                      {"by": "category", "max": 4, "window": 20}],
        "explore": {"slots": [4, 12]}}"#;
    let mut group = c.benchmark_group("rerank 500 x 200 signals, with reasons");
    for (name, json) in [
        ("no rules", "{}"),
        (
            "only boosts+filter+pin",
            r#"{"pins": [{"item": "1", "slot": 1}], "boosts": [{"category": "1", "times": 1.5}], "filter": ["3"]}"#,
        ),
        ("only explore", r#"{"explore": {"slots": [4, 12]}}"#),
        (
            "only caps",
            r#"{"diversity": [{"by": "category", "max": 2, "window": 5}, {"by": "category", "max": 4, "window": 20}]}"#,
        ),
        ("rules: pin, boosts, filter, 2 caps, 2 explore slots", all),
    ] {
        let mut r = nestrank::Recommender::new(f.model.clone());
        r.set_rules(Some(serde_json::from_str(json).unwrap()))
            .unwrap();
        r.set_user_key("bench-user");
        group.bench_function(name, |b| {
            b.iter(|| {
                r.rerank_indices(black_box(&f.candidates), sig, *now, true)
                    .unwrap()
                    .order
                    .len()
            })
        });
    }
    group.finish();
    let plain = nestrank::Recommender::new(f.model.clone());
    let ids: Vec<String> = f
        .candidates
        .iter()
        .filter(|&&i| (i as usize) < f.model.item_count())
        .take(100)
        .map(|&i| f.model.id_of(i).to_string())
        .collect();
    let mut group = c.benchmark_group("similar, 100 items, k = 10");
    for (name, kind, fill) in [
        (
            "viewed together, table only",
            nestrank::recommender::NeighbourKind::Similar,
            false,
        ),
        (
            "viewed together + category fill",
            nestrank::recommender::NeighbourKind::Similar,
            true,
        ),
        (
            "bought together",
            nestrank::recommender::NeighbourKind::Complement,
            false,
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                ids.iter()
                    .map(|id| plain.similar(black_box(id), kind, 10, None, fill).len())
                    .sum::<usize>()
            })
        });
    }
    group.finish();
    c.bench_function("neighbour lists of 500 items (top 10 each)", |b| {
        b.iter(|| {
            f.candidates
                .iter()
                .filter(|&&i| (i as usize) < f.model.item_count())
                .map(|&i| f.model.neighbours(i).take(10).count())
                .sum::<usize>()
        })
    });
}

criterion_group! {
    name = core;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = benches
}
criterion_main!(core);
