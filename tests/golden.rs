//! Golden test: the committed v1 blob keeps loading, and the native core
//! gives exactly the committed orderings, scores, reasons and the items
//! behind them (`because`) for the
//! committed cases. The wasm module is held to the same file (tests/wasm.rs
//! in wasm under Node and Chromium, tests/node/ through the npm package), so
//! native == wasm. `make golden` rewrites the expected file.
#![cfg(not(target_arch = "wasm32"))]

use nestrank::{Event, Recommender};
use serde_json::{json, Value};

const BLOB: &[u8] = include_bytes!("data/golden-v1.nrk");
const CASES: &str = include_str!("data/golden-cases.json");
const EXPECTED_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/golden-expected.json"
);

/// The cases' candidate ids.
fn candidates(cases: &Value) -> Vec<&str> {
    cases["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

/// A case's signals as the core takes them.
fn signals_of(case: &Value) -> Vec<(&str, Event, f64)> {
    case["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["item"].as_str().unwrap(),
                Event::from_name(s["event"].as_str().unwrap()).unwrap(),
                s["ts"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn run_cases(rec: &mut Recommender, cases: &Value) -> Vec<Value> {
    let candidates = candidates(cases);
    cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| {
            let signals = signals_of(case);
            let out = rec
                .rerank_ids(&candidates, &signals, case["now"].as_f64().unwrap(), true)
                .unwrap();
            json!({
                "name": case["name"],
                "items": out.items,
                "scores": out.scores,
                "reasons": out.reasons,
                "because": out.because,
            })
        })
        .collect()
}

#[test]
fn golden_v1_blob_loads_and_ranks_as_recorded() {
    let mut rec = Recommender::from_bytes(BLOB).expect("the golden v1 blob must keep loading");
    assert_eq!(rec.model().header().version, 1);
    let cases: Value = serde_json::from_str(CASES).unwrap();
    let results = run_cases(&mut rec, &cases);
    let actual = json!({ "model_id": rec.model().model_id(), "results": results });
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(
            EXPECTED_PATH,
            serde_json::to_string_pretty(&actual).unwrap(),
        )
        .unwrap();
        return;
    }
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(EXPECTED_PATH).expect("run `make golden` once to record it"),
    )
    .unwrap();
    assert_eq!(actual["model_id"], expected["model_id"]);
    let (a, e) = (
        actual["results"].as_array().unwrap(),
        expected["results"].as_array().unwrap(),
    );
    assert_eq!(a.len(), e.len());
    for (a, e) in a.iter().zip(e) {
        assert_eq!(a["items"], e["items"], "order differs for {}", e["name"]);
        assert_eq!(
            a["reasons"], e["reasons"],
            "reasons differ for {}",
            e["name"]
        );
        for (x, y) in a["scores"]
            .as_array()
            .unwrap()
            .iter()
            .zip(e["scores"].as_array().unwrap())
        {
            assert!(
                (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() <= 1e-6,
                "score differs for {}",
                e["name"]
            );
        }
    }
}

/// Each part of the scorer gives its reason: the blob's learned weights
/// decide which part wins, so each part is checked with a ranker that
/// weighs it alone.
#[test]
fn every_part_of_the_scorer_gives_its_reason() {
    use nestrank::rank::{RankerKind, RankerParams};
    let cases: Value = serde_json::from_str(CASES).unwrap();
    for (kind, needle) in [
        (RankerKind::Recent, "you viewed this"),
        (RankerKind::ItemCf, "viewed together with"),
        (RankerKind::Category, "you browse"),
        (RankerKind::Popular, "popular this week"),
        (RankerKind::Factor, "picked for your taste"),
    ] {
        let mut rec = Recommender::from_bytes(BLOB).unwrap();
        rec.set_ranker(RankerParams::preset(kind)).unwrap();
        let results = run_cases(&mut rec, &cases);
        let found = results
            .iter()
            .flat_map(|r| r["reasons"].as_array().unwrap().clone())
            .any(|v| v.as_str().unwrap().contains(needle));
        assert!(found, "{kind:?} gives no reason with `{needle}`");
    }
}

#[test]
fn signals_on_new_items_lift_them() {
    let mut rec = Recommender::from_bytes(BLOB).unwrap();
    let cases: Value = serde_json::from_str(CASES).unwrap();
    let results = run_cases(&mut rec, &cases);
    // A same-day signal on an item the model has never seen still lifts it.
    let unknown = results
        .iter()
        .find(|r| r["name"] == "unknown and new items")
        .unwrap();
    let items = unknown["items"].as_array().unwrap();
    let at = items.iter().position(|v| v == "new-special").unwrap();
    assert!(at <= 1, "new-special is at {at}");
    assert_eq!(unknown["reasons"][at], "you viewed this");
    // An unknown id with no signal is scored by nothing at all.
    let at = items.iter().position(|v| v == "unknown-1").unwrap();
    assert_eq!(unknown["scores"][at], 0.0);
    // Every case's signals that count: those on known or candidate items,
    // not from the future.
    let candidates = candidates(&cases);
    let now = 1_512_300_000.0;
    let mut used = |signals: &[(&str, u8, f64)]| {
        rec.rerank_id_positions(&candidates, signals, now, false)
            .unwrap()
            .signals_used
    };
    let known = candidates.iter().find(|c| **c != "new-special").unwrap();
    assert_eq!(
        used(&[(known, 0, now - 60.0), ("new-special", 0, now - 60.0)]),
        2
    );
    assert_eq!(used(&[("not-anywhere", 2, now - 60.0)]), 0);
    assert_eq!(used(&[(known, 0, now + 3_600.0), (known, 9, now)]), 0);
    assert_eq!(used(&[(known, 3, now + 599.0)]), 1);
}

/// The profile a golden profile blob holds: a boy born 2026-05-01, two
/// brands, two categories, a price band, built 2026-11-27.
fn golden_profile() -> nestrank::profile::Profile {
    use nestrank::profile::{affinities_from, Profile};
    let day = nestrank::calendar::parse_date("2026-11-27").unwrap();
    let mut p = Profile::from_birthday("2026-05-01", "boy", f64::from(day) * 86_400.0).unwrap();
    p.as_of_day = day;
    p.affinities = affinities_from(
        &[("Moonbean".into(), 6.0), ("Nestling".into(), 3.0)],
        &[("diapers".into(), 10.0), ("formula".into(), 2.5)],
        (9.5, 31.0),
    );
    p
}

/// The committed version 1 profile blob (frozen, like golden-v1.nrk) keeps
/// loading to the same profile in every later version, and re-encodes (as
/// the current version) to the same profile.
#[test]
fn golden_profile_blob() {
    let bytes = include_bytes!("data/golden-profile-v1.nrp");
    assert_eq!(
        u16::from_le_bytes([bytes[4], bytes[5]]),
        1,
        "a version 1 blob"
    );
    let p = nestrank::profile::Profile::from_bytes(bytes).unwrap();
    assert_eq!(p, golden_profile());
    let again = p.to_bytes();
    assert_eq!(
        u16::from_le_bytes([again[4], again[5]]),
        nestrank::format::VERSION
    );
    assert_eq!(nestrank::profile::Profile::from_bytes(&again).unwrap(), p);
}

/// The committed nightly profile (`model-builder users` for the golden v4
/// model, family f0 of the synthetic shop) and a shard of the edge's table
/// from the same run (salt `676f6c64656e`, 64 shards): frozen, they keep
/// loading, the profile's embedding belongs to the golden v4 model and
/// moves its order with no signal (the golden v4 cases record the order).
#[test]
fn golden_nightly_profile_and_user_table() {
    use nestrank::profile::Profile;
    let p = Profile::from_bytes(include_bytes!("data/golden-profile-embedding.nrp")).unwrap();
    let e = p.embedding.as_ref().expect("an embedding");
    assert_eq!(format!("{:016x}", e.model_id), "d80eef934d9e93b6");
    assert!(e.codes.len() == 32 && e.events > 0 && e.weight > 0.0);
    assert_eq!(Profile::from_bytes(&p.to_bytes()).unwrap(), p);
    let mut rec = Recommender::from_bytes(include_bytes!("data/golden-v4.nrk")).unwrap();
    let ids: Vec<String> = (0..100u32)
        .map(|i| rec.model().id_of(i).to_string())
        .collect();
    let cand: Vec<&str> = ids.iter().map(String::as_str).collect();
    let plain = rec.rerank_ids(&cand, &[], 1_793_556_000.0, false).unwrap();
    rec.set_profile(Some(p));
    assert!(rec.uses_embedding() && rec.embedding_warning().is_none());
    let with = rec.rerank_ids(&cand, &[], 1_793_556_000.0, false).unwrap();
    assert_ne!(plain.items[..10], with.items[..10]);

    let t =
        nestrank::usertable::UserTable::from_bytes(include_bytes!("data/golden-users-shard.nrt"))
            .unwrap();
    assert_eq!((t.shard(), t.len()), ((45, 64), 23));
    assert!(
        t.lookup(45).is_none(),
        "45 is in shard 45 but no family's key"
    );
}

/// The committed version 2 model blob (a daily blob of the synthetic shop,
/// with the `family` section; frozen when version 3 came) keeps loading,
/// with its family section, and ranks.
#[test]
fn golden_v2_blob_loads() {
    let bytes = include_bytes!("data/golden-v2.nrk");
    let mut rec = Recommender::from_bytes(bytes).expect("the golden v2 blob must keep loading");
    assert_eq!(rec.model().header().version, 2);
    assert_eq!(rec.model().item_count(), 100);
    let family = rec.model().family().expect("v2 carries the family section");
    assert!(!family.lifts.is_empty() && family.brands.len() > 3);
    assert!(rec.model().rules().is_none());
    let ids: Vec<&str> = (0..100u32)
        .map(|i| rec.model().id_of(i))
        .collect::<Vec<_>>();
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    let cand: Vec<&str> = ids.iter().map(String::as_str).collect();
    let viewed = cand[10];
    let out = rec
        .rerank_ids(
            &cand,
            &[(viewed, Event::Cart, 1_793_000_000.0)],
            1_793_000_100.0,
            true,
        )
        .unwrap();
    assert_eq!(out.items[0], viewed, "the carted item comes first");
}

/// The committed version 3 model blob (a daily blob of the synthetic shop
/// with rules and the bought-together table, written by the version 3
/// builder; frozen when version 4 packed the neighbour tables) keeps
/// loading, with its plain tables and its rules, and ranks.
#[test]
fn golden_v3_blob_loads() {
    let bytes = include_bytes!("data/golden-v3.nrk");
    let mut rec = Recommender::from_bytes(bytes).expect("the golden v3 blob must keep loading");
    let model = rec.model();
    assert_eq!(model.header().version, 3);
    assert_eq!(model.item_count(), 100);
    let rules = model.rules().expect("v3 carries its rules");
    assert_eq!(rules.pins.len(), 1);
    let pinned = rules.pins[0].item.clone();
    let links: usize = (0..100u32).map(|i| model.neighbours(i).count()).sum();
    let bought: usize = (0..100u32).map(|i| model.complements(i).count()).sum();
    assert!(links > 50 && bought > 10, "{links} {bought}");
    let (carted, out) = rank_after_a_cart(&mut rec, &[&pinned]);
    assert_eq!(out.items[0], pinned, "the blob's pin holds slot 1");
    assert_eq!(out.items[1], carted, "the carted item comes next");
    // The current writer re-encodes it (as version 4) to a blob that loads.
    let again = Recommender::from_bytes(&rec.model().parts().to_bytes()).unwrap();
    assert_eq!(again.model().header().version, nestrank::format::VERSION);
    assert_eq!(again.model().item_count(), 100);
}

/// The committed version 4 model blob: a daily blob of the synthetic shop
/// (the 100 most recently active items as of 2026-11-01, `--k 20
/// --complement-k 5`, rules pinning p12433 to slot 1 and filtering p12443),
/// written by the version 4 builder and frozen with it. It keeps loading,
/// with its packed tables and its rules, and ranks; tests/spec/read_blob.py
/// reads it too.
#[test]
fn golden_v4_blob_loads() {
    let bytes = include_bytes!("data/golden-v4.nrk");
    let mut rec = Recommender::from_bytes(bytes).expect("the golden v4 blob must keep loading");
    let model = rec.model();
    assert_eq!(model.header().version, 4);
    assert_eq!(
        format!("{:016x}", model.header().model_id),
        "d80eef934d9e93b6"
    );
    assert_eq!(model.item_count(), 100);
    assert!(model.family().is_some() && model.factors().is_some());
    let rules = model.rules().expect("v4 carries its rules");
    assert_eq!(rules.pins[0].item, "p12433");
    let links: usize = (0..100u32).map(|i| model.neighbours(i).count()).sum();
    let bought: usize = (0..100u32).map(|i| model.complements(i).count()).sum();
    assert_eq!((links, bought), (217, 35));
    let (carted, out) = rank_after_a_cart(&mut rec, &["p12433", "p12443"]);
    assert_eq!(out.items[0], "p12433", "the blob's pin holds slot 1");
    assert_eq!(out.items[1], carted, "the carted item comes next");
    assert!(!out.items.contains(&"p12443".to_string()), "filtered");
    // The current writer re-encodes it to the very same bytes.
    assert_eq!(&rec.model().parts().to_bytes()[..], &bytes[..]);
}

/// Reranks all of `rec`'s items after one cart of the first item not in
/// `avoid`: that item, and the ranking.
fn rank_after_a_cart(rec: &mut Recommender, avoid: &[&str]) -> (String, nestrank::IdRanking) {
    let model = rec.model();
    let ids: Vec<String> = (0..model.item_count() as u32)
        .map(|i| model.id_of(i).to_string())
        .collect();
    let cand: Vec<&str> = ids.iter().map(String::as_str).collect();
    let carted = cand.iter().copied().find(|c| !avoid.contains(c)).unwrap();
    let out = rec
        .rerank_ids(
            &cand,
            &[(carted, Event::Cart, 1_793_000_000.0)],
            1_793_000_100.0,
            true,
        )
        .unwrap();
    (carted.to_string(), out)
}

/// The version 4 golden cases: the frozen v4 blob with profiles (a baby's
/// stage and gender, a built profile's brands and price band), business
/// rules (the blob's, set at run time, with exploration for one device key,
/// and cleared) and `similar()`. The native core records them
/// (`make golden`); tests/golden/run.js holds Node, Bun, Chromium, WebKit
/// and workerd to the same file.
#[test]
fn golden_v4_cases_rank_as_recorded() {
    use nestrank::profile::Profile;
    use nestrank::recommender::NeighbourKind;
    let blob = include_bytes!("data/golden-v4.nrk");
    let profile_v1 = include_bytes!("data/golden-profile-v1.nrp");
    let profile_embedding = include_bytes!("data/golden-profile-embedding.nrp");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/golden-v4-expected.json"
    );
    let spec: Value = serde_json::from_str(include_str!("data/golden-v4-cases.json")).unwrap();
    let candidates = candidates(&spec);
    let mut results = Vec::new();
    for case in spec["cases"].as_array().unwrap() {
        let mut rec = Recommender::from_bytes(blob).unwrap();
        let now = case["now"].as_f64().unwrap();
        if let Some(rules) = case.get("rules") {
            let rules = (!rules.is_null())
                .then(|| serde_json::from_value::<nestrank::RuleSet>(rules.clone()).unwrap());
            rec.set_rules(rules).unwrap();
        }
        if let Some(key) = case["user_key"].as_str() {
            rec.set_user_key(key);
        }
        let profile = match &case["profile"] {
            Value::Null => None,
            Value::String(name) => {
                let bytes: &[u8] = match name.as_str() {
                    "golden-profile-v1" => profile_v1,
                    "golden-profile-embedding" => profile_embedding,
                    other => panic!("no golden profile {other}"),
                };
                Some(Profile::from_bytes(bytes).unwrap())
            }
            p => Some(
                Profile::from_birthday(
                    p["birthday"].as_str().unwrap(),
                    p["gender"].as_str().unwrap(),
                    now,
                )
                .unwrap(),
            ),
        };
        if profile.is_some() {
            rec.set_profile(profile);
        }
        let signals = signals_of(case);
        let out = rec.rerank_ids(&candidates, &signals, now, true).unwrap();
        let similar: Vec<Value> = case["similar"]
            .as_array()
            .map(|qs| {
                qs.iter()
                    .map(|q| {
                        let id = q["item"].as_str().unwrap();
                        let kind = match q["kind"].as_str().unwrap() {
                            "similar" => NeighbourKind::Similar,
                            _ => NeighbourKind::Complement,
                        };
                        let k = q["k"].as_u64().unwrap() as usize;
                        let found = rec.similar(id, kind, k, None, true);
                        let model = rec.model();
                        json!({
                            "items": found.iter().map(|n| model.id_of(n.index)).collect::<Vec<_>>(),
                            "scores": found.iter().map(|n| n.score).collect::<Vec<_>>(),
                            "reasons": found.iter().map(|n| n.reason(model, id, kind)).collect::<Vec<_>>(),
                            "links": found.iter().map(|n| n.link(kind)).collect::<Vec<_>>(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        results.push(json!({
            "name": case["name"],
            "items": out.items,
            "scores": out.scores,
            "reasons": out.reasons,
            "because": out.because,
            "similar": similar,
        }));
    }
    let model_id = Recommender::from_bytes(blob).unwrap().model().model_id();
    let actual = json!({ "model_id": model_id, "results": results });
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, serde_json::to_string_pretty(&actual).unwrap()).unwrap();
        return;
    }
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(path).expect("run `make golden` once to record it"),
    )
    .unwrap();
    let (a, e) = (
        actual["results"].as_array().unwrap(),
        expected["results"].as_array().unwrap(),
    );
    assert_eq!(a.len(), e.len());
    for (a, e) in a.iter().zip(e) {
        for key in ["items", "reasons", "because", "similar"] {
            if key == "similar" {
                let (sa, se) = (a[key].as_array().unwrap(), e[key].as_array().unwrap());
                assert_eq!(sa.len(), se.len(), "similar lists of {}", e["name"]);
                for (x, y) in sa.iter().zip(se) {
                    for k in ["items", "reasons", "links"] {
                        assert_eq!(x[k], y[k], "similar {k} of {}", e["name"]);
                    }
                    close(&x["scores"], &y["scores"], &e["name"]);
                }
            } else {
                assert_eq!(a[key], e[key], "{key} of {}", e["name"]);
            }
        }
        close(&a["scores"], &e["scores"], &e["name"]);
    }
}

/// Scores within 1e-6 of the recorded ones.
fn close(a: &Value, e: &Value, name: &Value) {
    let (a, e) = (a.as_array().unwrap(), e.as_array().unwrap());
    assert_eq!(a.len(), e.len(), "scores of {name}");
    for (x, y) in a.iter().zip(e) {
        assert!(
            (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() <= 1e-6,
            "score {x} against {y} for {name}"
        );
    }
}
