//! Experiments in the recommender: each variant serves what it declares,
//! the visitor's variant is sticky, and a malformed experiment leaves the
//! last good one in force.
#![cfg(not(target_arch = "wasm32"))]

use nestrank::experiment::{Experiment, ExperimentError};
use nestrank::rules::{Pin, RuleSet};
use nestrank::{Recommender, Signals};

const NOW: f64 = 1.0 * 86_400.0 + 3_600.0;

fn rec() -> Recommender {
    Recommender::from_bytes(&nestrank::testing::tiny_model().to_bytes()).unwrap()
}

fn experiment(json: &str) -> Experiment {
    serde_json::from_str(json).expect("the test experiment parses")
}

const AB: &str = r#"{"name": "launch", "variants": [
    {"name": "control", "share": 50, "order": "shop"},
    {"name": "nestrank", "share": 25},
    {"name": "pinned", "share": 25, "rules": {"pins": [{"item": "d", "slot": 1}]}}]}"#;

/// A visitor id that falls in variant `name`.
fn visitor_in(e: &Experiment, name: &str) -> String {
    let k = e.variants.iter().position(|v| v.name == name).unwrap();
    (0..)
        .map(|v| format!("visitor-{v}"))
        .find(|v| e.assign(v) == Some(k))
        .unwrap()
}

/// The page's order (candidate positions) for a user who viewed `a`.
fn page(rec: &mut Recommender) -> Vec<u32> {
    let sig = Signals::new(&[0], &[0], &[NOW - 60.0]).unwrap();
    rec.rerank_indices(&[3, 2, 1, 0], sig, NOW, true)
        .unwrap()
        .order
        .clone()
}

#[test]
fn each_variant_serves_what_it_declares() {
    let e = experiment(AB);
    let mut r = rec();
    let plain = page(&mut r);
    assert_ne!(plain, vec![0, 1, 2, 3], "the test needs a reordering");
    r.set_experiment(Some(e.clone())).unwrap();
    assert_eq!(r.variant(), None, "no visitor yet: no variant");
    assert_eq!(page(&mut r), plain, "no visitor: the shipped ranking");

    assert_eq!(r.set_visitor(&visitor_in(&e, "control")), Some("control"));
    assert_eq!(r.variant_order(), Some(nestrank::experiment::Order::Shop));
    let shop = r
        .rerank_indices(
            &[3, 2, 1, 0],
            Signals::new(&[], &[], &[]).unwrap(),
            NOW,
            true,
        )
        .unwrap();
    assert_eq!(shop.order, vec![0, 1, 2, 3], "the shop's order, as given");
    assert_eq!(shop.scores, vec![0.0; 4]);
    assert_eq!(shop.reasons.len(), 4);
    assert_eq!(page(&mut r), vec![0, 1, 2, 3], "signals do not move it");

    assert_eq!(r.set_visitor(&visitor_in(&e, "nestrank")), Some("nestrank"));
    assert_eq!(page(&mut r), plain);

    assert_eq!(r.set_visitor(&visitor_in(&e, "pinned")), Some("pinned"));
    let pinned = page(&mut r);
    assert_eq!(pinned[0], 0, "d (candidate position 0) pinned to slot 1");

    r.set_experiment(None).unwrap();
    assert_eq!(r.variant(), None);
    assert_eq!(page(&mut r), plain);
}

#[test]
fn a_variant_can_rank_with_a_hand_set_ranker() {
    let e = experiment(
        r#"{"name": "rankers", "variants": [
            {"name": "shipped", "share": 50, "ranker": "shipped"},
            {"name": "popular", "share": 50, "ranker": "popular"}]}"#,
    );
    let mut r = rec();
    r.set_experiment(Some(e.clone())).unwrap();
    r.set_visitor(&visitor_in(&e, "popular"));
    let order = page(&mut r);
    // `c` (position 1) has the most conversions: first by popularity,
    // although the user viewed `a`.
    assert_eq!(order[0], 1);
    r.set_visitor(&visitor_in(&e, "shipped"));
    assert_eq!(order.len(), page(&mut r).len());
    assert_ne!(page(&mut r)[0], 1);
}

#[test]
fn a_bad_experiment_is_refused_and_the_last_good_one_stays() {
    let e = experiment(AB);
    let mut r = rec();
    r.set_experiment(Some(e.clone())).unwrap();
    let v = visitor_in(&e, "control");
    r.set_visitor(&v);
    let mut bad = e.clone();
    bad.variants[1].share = 30.0;
    let err = r.set_experiment(Some(bad)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "experiment: variants: the shares add up to 105%; they must add up to 100%"
    );
    let mut bad_rules = e.clone();
    bad_rules.variants[2].rules = Some(RuleSet {
        pins: vec![Pin {
            item: "d".into(),
            slot: 0,
        }],
        ..RuleSet::default()
    });
    assert!(matches!(
        r.set_experiment(Some(bad_rules)),
        Err(ExperimentError::Rules { variant: 2, .. })
    ));
    assert_eq!(r.experiment(), Some(&e));
    assert_eq!(r.variant(), Some("control"));
}

#[test]
fn sold_out_items_leave_every_variant() {
    let e = experiment(AB);
    let mut r = rec();
    r.set_experiment(Some(e.clone())).unwrap();
    r.set_visitor(&visitor_in(&e, "pinned"));
    r.set_sold_out(&["d"]).unwrap();
    let order = page(&mut r);
    assert_eq!(order.len(), 3);
    assert!(!order.contains(&0));
    // The control too: the shop's order, less what is sold out.
    r.set_visitor(&visitor_in(&e, "control"));
    assert_eq!(page(&mut r), vec![1, 2, 3]);
}

#[test]
fn the_documented_json_parses_and_typos_are_named() {
    let typo: Result<Experiment, _> =
        serde_json::from_str(r#"{"name": "x", "variants": [{"name": "a", "shares": 100}]}"#);
    assert!(typo
        .unwrap_err()
        .to_string()
        .contains("unknown field `shares`"));
    let order: Result<Experiment, _> = serde_json::from_str(
        r#"{"name": "x", "variants": [{"name": "a", "share": 100, "order": "random"}]}"#,
    );
    assert!(order
        .unwrap_err()
        .to_string()
        .contains("unknown variant `random`"));
}
