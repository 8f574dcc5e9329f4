//! The business layer: rule-set checks, each rule's effect, and the
//! properties the issue asks for (permutation minus the filtered, pins
//! where asked, diversity caps in every window, the same page for the same
//! inputs), checked over random rule sets with proptest.
#![cfg(not(target_arch = "wasm32"))]

use nestrank::model::{FamilySection, ModelParts, NeighboursSection, StringTable};
use nestrank::recommender::NeighbourKind;
use nestrank::rules::{Boost, Diversity, Explore, Pin, RuleNote, RuleSet, RulesError};
use nestrank::{Model, Recommender, Signals};
use proptest::prelude::*;

const N: usize = 40;
const BRANDS: usize = 4;
const CATS: usize = 3;
const NOW: f64 = 10.0 * 86_400.0 + 3_600.0;

fn id(i: usize) -> String {
    format!("i{i:03}")
}

/// 40 items over 4 brands and 3 categories; every 5th item has no activity
/// (new to the catalog); neighbours `i -> i+1, i+2`; complements `i -> i+10`.
fn model_parts() -> ModelParts {
    let mut p = nestrank::testing::tiny_model();
    p.as_of_day = 10;
    let ids: Vec<String> = (0..N).map(id).collect();
    p.items.ids = StringTable::from_strings(&ids);
    p.items.category = (0..N).map(|i| (i % CATS) as u32).collect();
    p.items.conversions_7d = (0..N)
        .map(|i| if i % 5 == 0 { 0 } else { (i % 7) as u32 + 1 })
        .collect();
    p.items.trend = (0..N)
        .map(|i| if i % 5 == 0 { 0.0 } else { i as f32 })
        .collect();
    p.items.conversions_max = 10;
    p.items.trend_max = N as f32;
    p.categories = StringTable::from_strings(&["bath", "diapers", "toys"]);
    let table = |targets: &dyn Fn(usize) -> Vec<usize>| {
        let mut nb = NeighboursSection {
            offsets: vec![0],
            items: vec![],
            scores: vec![],
            scale: 1.0 / 65_535.0,
        };
        for i in 0..N {
            for (r, j) in targets(i).into_iter().enumerate() {
                nb.items.push(j as u32);
                nb.scores.push(60_000 - 10_000 * r as u16);
            }
            nb.offsets.push(nb.items.len() as u32);
        }
        nb
    };
    p.neighbours = table(&|i| vec![(i + 1) % N, (i + 2) % N]);
    p.complements = Some(table(&|i| vec![(i + 10) % N]));
    p.family = Some(FamilySection {
        brands: StringTable::from_strings(&["Acme", "Bloom", "Cosy", "Dune"]),
        brand: (0..N).map(|i| (i % BRANDS) as u32).collect(),
        gender: vec![0; N],
        edges: nestrank::stage::EDGES.to_vec(),
        lifts: Vec::new(),
        price: vec![10.0; N],
        restock_days: vec![0.0; CATS],
    });
    p
}

fn rec_with(rules: Option<RuleSet>) -> Recommender {
    let mut p = model_parts();
    p.rules = rules;
    Recommender::from_bytes(&p.to_bytes()).expect("the test model loads")
}

fn all_candidates() -> Vec<u32> {
    (0..N as u32).collect()
}

/// The page for `candidates` with one viewed item: (candidate positions,
/// notes).
fn page(rec: &mut Recommender, candidates: &[u32]) -> (Vec<u32>, Vec<RuleNote>) {
    let sig = Signals::new(&[7], &[0], &[NOW - 60.0]).unwrap();
    let r = rec.rerank_indices(candidates, sig, NOW, true).unwrap();
    (r.order.clone(), r.rules.clone())
}

#[test]
fn the_blob_carries_its_rules_and_this_reader_reads_them() {
    let rules = RuleSet {
        pins: vec![Pin {
            item: id(3),
            slot: 1,
        }],
        ..RuleSet::default()
    };
    let rec = rec_with(Some(rules.clone()));
    assert_eq!(rec.model().header().version, nestrank::format::VERSION);
    assert_eq!(rec.model().rules(), Some(&rules));
    assert_eq!(rec.rules(), &rules);
}

#[test]
fn a_pin_puts_the_item_in_its_slot_and_says_so() {
    let rules = RuleSet {
        pins: vec![Pin {
            item: id(33),
            slot: 2,
        }],
        ..RuleSet::default()
    };
    let mut rec = rec_with(Some(rules));
    let ids: Vec<String> = (0..N).map(id).collect();
    let cand: Vec<&str> = ids.iter().map(String::as_str).collect();
    let out = rec.rerank_ids(&cand, &[], NOW, true).unwrap();
    assert_eq!(out.items[1], id(33));
    assert!(
        out.reasons[1].contains("pinned to slot 2"),
        "{}",
        out.reasons[1]
    );
    // Run-time rules replace the blob's; None goes back to them.
    rec.set_rules(Some(RuleSet::default())).unwrap();
    let out = rec.rerank_ids(&cand, &[], NOW, true).unwrap();
    assert_ne!(out.items[1], id(33));
    rec.set_rules(None).unwrap();
    let out = rec.rerank_ids(&cand, &[], NOW, true).unwrap();
    assert_eq!(out.items[1], id(33));
}

#[test]
fn a_pin_on_an_item_the_model_does_not_know_still_lands_on_the_string_path() {
    let rules = RuleSet {
        pins: vec![Pin {
            item: "brand-new".into(),
            slot: 1,
        }],
        ..RuleSet::default()
    };
    let mut rec = rec_with(Some(rules));
    let out = rec
        .rerank_ids(&["i001", "i002", "brand-new"], &[], NOW, true)
        .unwrap();
    assert_eq!(out.items[0], "brand-new");
}

#[test]
fn boosts_and_buries_move_a_brand_and_are_explained() {
    let mut rec = rec_with(None);
    let cand = all_candidates();
    let (plain, _) = page(&mut rec, &cand);
    let brand_of = |p: u32| cand[p as usize] as usize % BRANDS;
    let mean_slot = |order: &[u32], b: usize| {
        let slots: Vec<usize> = (0..order.len())
            .filter(|&s| brand_of(order[s]) == b)
            .collect();
        slots.iter().sum::<usize>() as f64 / slots.len() as f64
    };
    rec.set_rules(Some(RuleSet {
        boosts: vec![
            Boost {
                brand: Some("Dune".into()),
                add: Some(5.0),
                ..Boost::default()
            },
            Boost {
                brand: Some("Acme".into()),
                times: Some(0.0),
                ..Boost::default()
            },
        ],
        ..RuleSet::default()
    }))
    .unwrap();
    let (boosted, notes) = page(&mut rec, &cand);
    assert!(mean_slot(&boosted, 3) < mean_slot(&plain, 3) - 5.0);
    // Every Dune item comes before every other item.
    let dune = boosted.iter().take_while(|&&p| brand_of(p) == 3).count();
    assert_eq!(dune, N / BRANDS);
    assert!(notes[0].flags & RuleNote::BOOSTED != 0);
    let r = rec.rerank_ids(&["i003", "i000"], &[], NOW, true).unwrap();
    assert_eq!(r.items[0], "i003");
    assert!(
        r.reasons[0].contains("promoted by the shop (brand Dune)"),
        "{:?}",
        r.reasons
    );
    assert!(
        r.reasons[1].contains("demoted by the shop (brand Acme)"),
        "{:?}",
        r.reasons
    );
}

#[test]
fn times_raises_a_negative_score_too() {
    // With a popularity-only ranker every score is >= 0, so use a negative
    // weight to get negative scores.
    let mut p = model_parts();
    p.ranker.weights = vec![0.0; nestrank::rank::NUM_FEATURES];
    p.ranker.weights[nestrank::rank::F_POPULARITY] = -1.0;
    p.rules = Some(RuleSet {
        boosts: vec![Boost {
            item: Some(id(6)),
            times: Some(3.0),
            ..Boost::default()
        }],
        ..RuleSet::default()
    });
    let mut rec = Recommender::from_bytes(&p.to_bytes()).unwrap();
    let plain_score = {
        let mut q = model_parts();
        q.ranker = p.ranker.clone();
        let mut r0 = Recommender::from_bytes(&q.to_bytes()).unwrap();
        r0.rerank_ids(&["i006"], &[], NOW, false).unwrap().scores[0]
    };
    let boosted = rec.rerank_ids(&["i006"], &[], NOW, false).unwrap().scores[0];
    assert!(plain_score < 0.0);
    assert!((boosted - (plain_score + plain_score.abs() * 2.0)).abs() < 1e-6);
}

#[test]
fn sold_out_and_filtered_items_leave_the_page_and_the_neighbours() {
    let mut rec = rec_with(Some(RuleSet {
        filter: vec![id(2)],
        ..RuleSet::default()
    }));
    rec.set_sold_out(&["i004", "not-in-the-model"]).unwrap();
    let cand = all_candidates();
    let (order, _) = page(&mut rec, &cand);
    assert_eq!(order.len(), N - 2);
    assert!(!order.contains(&2) && !order.contains(&4));
    let sim = rec.similar("i001", NeighbourKind::Similar, 10, None, false);
    assert_eq!(sim.iter().map(|n| n.index).collect::<Vec<_>>(), vec![3]);
    rec.set_sold_out(&[]).unwrap();
    assert_eq!(page(&mut rec, &cand).0.len(), N - 1);
}

#[test]
fn similar_reads_both_tables_and_tolerates_unknown_ids() {
    let rec = rec_with(None);
    let ids = |v: Vec<nestrank::recommender::Neighbour>| -> Vec<u32> {
        v.into_iter().map(|n| n.index).collect()
    };
    assert_eq!(
        ids(rec.similar("i005", NeighbourKind::Similar, 10, None, false)),
        vec![6, 7]
    );
    assert_eq!(
        ids(rec.similar("i005", NeighbourKind::Similar, 1, None, false)),
        vec![6]
    );
    assert_eq!(
        ids(rec.similar(
            "i005",
            NeighbourKind::Similar,
            10,
            Some(&["i007", "zzz"]),
            false
        )),
        vec![7]
    );
    assert_eq!(
        ids(rec.similar("i005", NeighbourKind::Complement, 10, None, false)),
        vec![15]
    );
    assert!(rec
        .similar("nope", NeighbourKind::Similar, 10, None, false)
        .is_empty());
    let scores: Vec<f32> = rec
        .similar("i005", NeighbourKind::Similar, 10, None, false)
        .iter()
        .map(|n| n.score)
        .collect();
    assert!(scores[0] > scores[1]);
    // The texts and link words a page shows and branches on.
    let model = rec.model();
    let text = |kind, fill| -> Vec<(String, &'static str)> {
        rec.similar("i005", kind, 10, None, fill)
            .iter()
            .map(|n| (n.reason(model, "i005", kind), n.link(kind)))
            .collect()
    };
    let similar = text(NeighbourKind::Similar, true);
    assert_eq!(similar[0], ("viewed together with i005".into(), "similar"));
    let fill = similar.last().unwrap();
    assert!(similar.len() > 2 && fill.1 == "category", "{similar:?}");
    assert!(fill.0.starts_with("more from "), "{fill:?}");
    assert_eq!(
        text(NeighbourKind::Complement, false),
        vec![("bought together with i005".into(), "complement")]
    );
}

#[test]
fn exploration_fills_its_slots_with_new_items_stable_per_user_and_day() {
    let rules = RuleSet {
        explore: Some(Explore { slots: vec![2, 5] }),
        ..RuleSet::default()
    };
    let mut rec = rec_with(Some(rules));
    let cand = all_candidates();
    let is_new = |p: u32| cand[p as usize].is_multiple_of(5);
    let mut picks = std::collections::BTreeSet::new();
    for user in ["u1", "u2", "u3", "u4", "u5", "u6"] {
        rec.set_user_key(user);
        let (a, notes) = page(&mut rec, &cand);
        assert!(is_new(a[1]) && is_new(a[4]), "{user}: {a:?}");
        assert!(notes[1].flags & RuleNote::EXPLORED != 0);
        let (b, _) = page(&mut rec, &cand);
        assert_eq!(a, b, "the same user sees the same page within a day");
        picks.insert((a[1], a[4]));
    }
    assert!(picks.len() > 1, "different users see different new items");
    // The propensity each explored item is logged with is the share of
    // visitors who see it there: slot 2 draws from the 8 new items, slot 5
    // from the 7 left.
    let (_, notes) = page(&mut rec, &cand);
    assert_eq!(notes[1].propensity(), 1.0 / 8.0);
    assert_eq!(notes[4].propensity(), 1.0 / 7.0);
    assert_eq!(notes[0].propensity(), 1.0);
    let mut shown = std::collections::BTreeMap::new();
    for user in 0..800 {
        rec.set_user_key(&format!("visitor-{user}"));
        let (a, _) = page(&mut rec, &cand);
        *shown.entry(a[1]).or_insert(0) += 1;
    }
    assert_eq!(shown.len(), 8);
    // 100 each expected; 4 standard deviations are 37.
    assert!(
        shown.values().all(|&n| (63..=137).contains(&n)),
        "{shown:?}"
    );
}

#[test]
fn bad_rule_sets_are_typed_errors_naming_the_rule() {
    let rec_err = |rules: RuleSet| rec_with(None).set_rules(Some(rules)).unwrap_err();
    let cases: Vec<(RuleSet, &str)> = vec![
        (
            RuleSet {
                pins: vec![Pin {
                    item: "x".into(),
                    slot: 0,
                }],
                ..RuleSet::default()
            },
            "rules: pins[0]: slot is 1-based",
        ),
        (
            RuleSet {
                boosts: vec![Boost {
                    times: Some(2.0),
                    ..Boost::default()
                }],
                ..RuleSet::default()
            },
            "rules: boosts[0]: give exactly one of \"item\", \"brand\", \"category\"",
        ),
        (
            RuleSet {
                boosts: vec![Boost {
                    brand: Some("Acme".into()),
                    times: Some(11.0),
                    ..Boost::default()
                }],
                ..RuleSet::default()
            },
            "rules: boosts[0]: times 11 is outside [0, 10]",
        ),
        (
            RuleSet {
                boosts: vec![Boost {
                    brand: Some("Acme".into()),
                    times: Some(f32::NAN),
                    ..Boost::default()
                }],
                ..RuleSet::default()
            },
            "rules: boosts[0]: times NaN is outside",
        ),
        (
            RuleSet {
                boosts: vec![Boost {
                    category: Some("toys".into()),
                    add: Some(1.0),
                    times: Some(1.0),
                    ..Boost::default()
                }],
                ..RuleSet::default()
            },
            "rules: boosts[0]: give exactly one of \"times\", \"add\"",
        ),
        (
            RuleSet {
                diversity: vec![Diversity {
                    by: "colour".into(),
                    max: 1,
                    window: 3,
                }],
                ..RuleSet::default()
            },
            "rules: diversity[0]: by \"colour\" must be",
        ),
        (
            RuleSet {
                diversity: vec![Diversity {
                    by: "brand".into(),
                    max: 3,
                    window: 3,
                }],
                ..RuleSet::default()
            },
            "rules: diversity[0]: max 3 must be in [1, window - 1]",
        ),
        (
            RuleSet {
                explore: Some(Explore { slots: vec![3, 0] }),
                ..RuleSet::default()
            },
            "rules: explore.slots[1]: slot is 1-based",
        ),
    ];
    for (rules, want) in cases {
        let got = rec_err(rules).to_string();
        assert!(got.starts_with(want), "{got:?} should start with {want:?}");
    }
    let too_many = RuleSet {
        filter: vec![String::new(); nestrank::rules::MAX_FILTER + 1],
        ..RuleSet::default()
    };
    assert!(matches!(
        rec_err(too_many),
        RulesError::TooMany { what: "filter", .. }
    ));
}

#[test]
fn a_blob_with_invalid_rules_is_a_decode_error() {
    let mut p = model_parts();
    p.rules = Some(RuleSet {
        pins: vec![Pin {
            item: "x".into(),
            slot: 0,
        }],
        ..RuleSet::default()
    });
    let err = Model::from_bytes(&p.to_bytes()).unwrap_err();
    assert!(err.to_string().contains("pins[0]"), "{err}");
}

#[test]
fn rules_parse_from_the_documented_json() {
    let json = r#"{
        "pins": [{"item": "i033", "slot": 1}],
        "boosts": [{"brand": "Bloom", "times": 1.5}, {"category": "toys", "add": -0.2}],
        "filter": ["i002"],
        "diversity": [{"by": "brand", "max": 2, "window": 5}],
        "explore": {"slots": [4]}
    }"#;
    let rules: RuleSet = serde_json::from_str(json).unwrap();
    rules.validate().unwrap();
    assert_eq!(rules.boosts[1].add, Some(-0.2));
    let typo: Result<RuleSet, _> = serde_json::from_str(r#"{"pin": []}"#);
    assert!(typo
        .unwrap_err()
        .to_string()
        .contains("unknown field `pin`"));
}

// ---- properties ----

fn rules_strategy() -> impl Strategy<Value = RuleSet> {
    let pins = prop::collection::vec((0..N + 5, 1u32..50), 0..5).prop_map(|v| {
        v.into_iter()
            .map(|(i, slot)| Pin { item: id(i), slot })
            .collect::<Vec<_>>()
    });
    let boosts = prop::collection::vec((0..3usize, 0..N, 0.0f32..10.0, any::<bool>()), 0..4)
        .prop_map(|v| {
            v.into_iter()
                .map(|(kind, i, x, times)| {
                    let mut b = Boost::default();
                    match kind {
                        0 => b.item = Some(id(i)),
                        1 => {
                            b.brand = Some(["Acme", "Bloom", "Cosy", "Dune", "Nope"][i % 5].into())
                        }
                        _ => b.category = Some(["bath", "diapers", "toys"][i % 3].into()),
                    }
                    if times {
                        b.times = Some(x);
                    } else {
                        b.add = Some(x - 5.0);
                    }
                    b
                })
                .collect::<Vec<_>>()
        });
    let filter = prop::collection::vec(0..N + 5, 0..6)
        .prop_map(|v| v.into_iter().map(id).collect::<Vec<_>>());
    let diversity = prop::collection::vec((any::<bool>(), 1u32..4, 2u32..8), 0..3).prop_map(|v| {
        v.into_iter()
            .filter(|&(_, max, window)| max < window)
            .map(|(brand, max, window)| Diversity {
                by: if brand { "brand" } else { "category" }.into(),
                max,
                window,
            })
            .collect::<Vec<_>>()
    });
    let explore = prop::option::of(prop::collection::vec(1u32..45, 0..4))
        .prop_map(|o| o.map(|slots| Explore { slots }));
    (pins, boosts, filter, diversity, explore).prop_map(
        |(pins, boosts, filter, diversity, explore)| RuleSet {
            pins,
            boosts,
            filter,
            diversity,
            explore,
        },
    )
}

/// Whether placing candidate position `p` at slot `s`, with `placed`
/// (slot -> candidate position) filled, breaks a cap in a window holding `s`.
fn breaks_caps(rules: &RuleSet, cand: &[u32], placed: &[Option<u32>], s: usize, p: u32) -> bool {
    let group = |p: u32, brand: bool| {
        let i = cand[p as usize] as usize;
        if brand {
            i % BRANDS
        } else {
            i % CATS
        }
    };
    rules.diversity.iter().any(|d| {
        let brand = d.by == "brand";
        let g = group(p, brand);
        let w = d.window as usize;
        (s.saturating_sub(w - 1)..=s).any(|start| {
            let end = (start + w).min(placed.len());
            let same = (start..end)
                .filter(|&t| t != s && placed[t].is_some_and(|q| group(q, brand) == g))
                .count();
            same + 1 > d.max as usize
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn rules_keep_their_promises(
        rules in rules_strategy(),
        subset in prop::collection::btree_set(0..N as u32, 0..N),
        user in "[a-z]{0,4}",
    ) {
        let cand: Vec<u32> = subset.into_iter().collect();
        let mut rec = rec_with(Some(rules.clone()));
        rec.set_user_key(&user);
        let (order, notes) = page(&mut rec, &cand);

        // A permutation of the candidates minus the filtered.
        let filtered = |p: u32| rules.filter.contains(&id(cand[p as usize] as usize));
        let mut want: Vec<u32> = (0..cand.len() as u32).filter(|&p| !filtered(p)).collect();
        let mut got = order.clone();
        got.sort_unstable();
        want.sort_unstable();
        prop_assert_eq!(&got, &want);
        let len = order.len();

        // Pins land where asked; taken slots go by rule order, then to the
        // next free slot below (or the nearest above at the page's end).
        let mut slots: Vec<Option<u32>> = vec![None; len];
        let mut pinned_items = std::collections::BTreeSet::new();
        for pin in &rules.pins {
            let Some(p) = (0..cand.len() as u32)
                .find(|&p| id(cand[p as usize] as usize) == pin.item && !filtered(p))
            else { continue };
            if !pinned_items.insert(p) { continue; }
            let want = (pin.slot as usize - 1).min(len - 1);
            let s = (want..len).find(|&s| slots[s].is_none())
                .or_else(|| (0..want).rev().find(|&s| slots[s].is_none()))
                .unwrap();
            slots[s] = Some(p);
        }
        for (s, p) in slots.iter().enumerate() {
            if let Some(p) = p {
                prop_assert_eq!(order[s], *p, "pin of {} at slot {}", cand[*p as usize], s + 1);
                prop_assert!(notes[s].flags & RuleNote::PINNED != 0);
            }
        }

        // Exploration slots hold new items (when any new one was left).
        let fixed = |s: usize| notes[s].flags & (RuleNote::PINNED | RuleNote::EXPLORED) != 0;
        for s in 0..len {
            if notes[s].flags & RuleNote::EXPLORED != 0 {
                prop_assert_eq!(cand[order[s] as usize] % 5, 0);
            }
        }

        // Diversity: a slot breaks a cap only when every item placed after
        // it (the ones still free then) would break it too.
        let mut placed: Vec<Option<u32>> = (0..len).map(|s| fixed(s).then_some(order[s])).collect();
        for s in 0..len {
            if fixed(s) { continue; }
            if breaks_caps(&rules, &cand, &placed, s, order[s]) {
                for (t, &later) in order.iter().enumerate().skip(s + 1) {
                    if !fixed(t) {
                        prop_assert!(breaks_caps(&rules, &cand, &placed, s, later),
                            "slot {} breaks a cap while slot {}'s item would not", s + 1, t + 1);
                    }
                }
            }
            placed[s] = Some(order[s]);
        }

        // The same inputs give the same page, from a fresh recommender too.
        prop_assert_eq!(&page(&mut rec, &cand).0, &order);
        let mut again = rec_with(Some(rules));
        again.set_user_key(&user);
        prop_assert_eq!(&page(&mut again, &cand).0, &order);
    }
}
