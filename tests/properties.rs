//! Property tests: blob round-trips, decoding hostile bytes, rerank invariants.
#![cfg(not(target_arch = "wasm32"))]

use nestrank::factors::FactorsSection;
use nestrank::model::{ItemsSection, ModelParts, NeighboursSection, StringTable, NO_CATEGORY};
use nestrank::rank::{RankerKind, RankerParams, NUM_FEATURES};
use nestrank::score::{rerank, Scratch};
use nestrank::{Model, Signals};
use proptest::prelude::*;
use std::collections::BTreeSet;

fn parts_strategy() -> impl Strategy<Value = ModelParts> {
    (
        prop::collection::btree_set("[a-z0-9]{1,8}", 0..40),
        0usize..6,
        any::<u64>(),
        prop::collection::vec(-5.0f32..5.0, NUM_FEATURES),
        -1000i32..30_000,
    )
        .prop_map(|(ids, categories, seed, weights, as_of_day)| {
            let ids: Vec<String> = ids.into_iter().collect();
            let n = ids.len();
            // A small deterministic generator for the per-item arrays.
            let mut s = seed | 1;
            let mut next = move || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s
            };
            let category = (0..n)
                .map(|_| {
                    let r = next();
                    if categories == 0 || r % 5 == 0 {
                        NO_CATEGORY
                    } else {
                        (r % categories as u64) as u32
                    }
                })
                .collect();
            let conversions_7d: Vec<u32> = (0..n).map(|_| (next() % 50) as u32).collect();
            let trend: Vec<f32> = (0..n).map(|_| (next() % 1000) as f32 / 7.0).collect();
            let mut nb = NeighboursSection {
                offsets: vec![0],
                items: vec![],
                scores: vec![],
                scale: 1.0 / 65_535.0,
            };
            for _ in 0..n {
                let k = next() % 4;
                let mut seen = BTreeSet::new();
                for _ in 0..k {
                    let j = (next() % n as u64) as u32;
                    if seen.insert(j) {
                        nb.items.push(j);
                        // Scores on the one-byte grid version 4 stores
                        // (src/packed.rs tests the grid's error bound).
                        nb.scores
                            .push(nestrank::packed::code_score((next() % 255 + 1) as u8));
                    }
                }
                nb.offsets.push(nb.items.len() as u32);
            }
            let mut ranker = RankerParams::preset(RankerKind::Hybrid);
            ranker.weights = weights;
            let factors = (seed % 2 == 0 && n > 0).then(|| {
                let values: Vec<f32> = (0..n * 4)
                    .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
                    .collect();
                FactorsSection::quantize(&values, 4, 0.05, 5.0, [1.0, 2.0, 3.0, 4.0])
            });
            ModelParts {
                as_of_day,
                items: ItemsSection {
                    ids: StringTable::from_strings(&ids),
                    category,
                    conversions_max: conversions_7d.iter().copied().max().unwrap_or(0)
                        + (seed % 3) as u32,
                    trend_max: trend.iter().copied().fold(0.0, f32::max),
                    conversions_7d,
                    trend,
                },
                categories: StringTable::from_strings(
                    &(0..categories)
                        .map(|c| format!("cat{c}"))
                        .collect::<Vec<_>>(),
                ),
                neighbours: nb,
                ranker,
                factors,
                family: None,
                rules: None,
                complements: None,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn model_round_trips_through_bytes(parts in parts_strategy()) {
        let bytes = parts.to_bytes();
        let model = Model::from_bytes(&bytes).unwrap();
        prop_assert_eq!(model.parts(), &parts);
        // Encoding is deterministic: same parts, same bytes.
        prop_assert_eq!(model.parts().to_bytes(), bytes);
    }

    #[test]
    fn any_flipped_byte_is_rejected_without_panic(parts in parts_strategy(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = parts.to_bytes();
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        prop_assert!(Model::from_bytes(&bytes).is_err());
    }

    #[test]
    fn truncation_is_rejected(parts in parts_strategy(), at in any::<prop::sample::Index>()) {
        let bytes = parts.to_bytes();
        let cut = at.index(bytes.len());
        prop_assert!(Model::from_bytes(&bytes[..cut]).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..400), magic in any::<bool>()) {
        if magic && bytes.len() >= 8 {
            bytes[..4].copy_from_slice(b"NRNK");
            bytes[4] = 1;
            bytes[5] = 0;
        }
        let _ = Model::from_bytes(&bytes);
    }

    #[test]
    fn rerank_is_a_stable_deterministic_permutation(
        parts in parts_strategy(),
        cand in prop::collection::vec(0u32..60, 0..50),
        sig in prop::collection::vec((0u32..60, 0u8..6, -1e6f64..1e6), 0..30),
        unknown_in in any::<bool>(),
    ) {
        let model = Model::from_parts(parts).unwrap();
        let mut candidates = cand;
        if unknown_in {
            candidates.push(u32::MAX);
        }
        let items: Vec<u32> = sig.iter().map(|s| s.0).collect();
        let events: Vec<u8> = sig.iter().map(|s| s.1).collect();
        let ts: Vec<f64> = sig.iter().map(|s| 1e9 + s.2).collect();
        let signals = Signals::new(&items, &events, &ts).unwrap();
        let params = model.ranker().clone();
        let mut scratch = Scratch::new();
        let a = rerank(&model, &params, &mut scratch, &candidates, signals, 1e9, true).unwrap();
        let b = rerank(&model, &params, &mut scratch, &candidates, signals, 1e9, true).unwrap();
        prop_assert_eq!(&a, &b);
        prop_assert!(a.scores.iter().all(|s| s.is_finite()), "{:?}", a.scores);
        let mut sorted = a.order.clone();
        sorted.sort_unstable();
        prop_assert_eq!(sorted, (0..candidates.len() as u32).collect::<Vec<_>>());
        prop_assert_eq!(a.reasons.len(), candidates.len());
        for w in a.order.windows(2).zip(a.scores.windows(2)) {
            let (o, s) = w;
            prop_assert!(s[0] >= s[1]);
            if s[0] == s[1] {
                prop_assert!(o[0] < o[1], "ties keep the given order");
            }
        }
        // Equal candidates get equal scores.
        for (x, &px) in a.order.iter().enumerate() {
            for (y, &py) in a.order.iter().enumerate() {
                if candidates[px as usize] == candidates[py as usize] {
                    prop_assert_eq!(a.scores[x], a.scores[y]);
                }
            }
        }
    }

    #[test]
    fn explanations_are_each_positions_reason_and_because(
        parts in parts_strategy(),
        cand in prop::collection::vec(0u32..60, 0..50),
        sig in prop::collection::vec((0u32..60, 0u8..4, 0i32..20), 0..30),
        shown in 0usize..60,
    ) {
        let ids: Vec<String> = (0..parts.items.ids.len()).map(|i| parts.items.ids.get(i).to_string()).collect();
        // Indices past the table are ids the model lacks.
        let id = |i: u32| ids.get(i as usize).cloned().unwrap_or_else(|| format!("new{i}"));
        let rec = &mut nestrank::Recommender::from_bytes(&parts.to_bytes()).unwrap();
        let cand: Vec<String> = cand.into_iter().map(id).collect();
        let cand: Vec<&str> = cand.iter().map(String::as_str).collect();
        let sig_ids: Vec<String> = sig.iter().map(|s| id(s.0)).collect();
        // Times on a coarse grid, so ties happen; some after `now`.
        let now = 1e9;
        let signals: Vec<(&str, u8, f64)> = sig.iter().zip(&sig_ids)
            .map(|(s, i)| (i.as_str(), s.1, now - 100.0 * f64::from(s.2) + 300.0))
            .collect();
        rec.rerank_id_positions(&cand, &signals, now, true).unwrap();
        let ex = rec.explanations(&signals, now, shown);
        let r = rec.last_ranking();
        let shown = shown.min(r.reasons.len());
        prop_assert_eq!(ex.codes.len(), shown);
        prop_assert_eq!(ex.texts.len(), ex.because.len());
        let model = rec.model();
        for (k, reason) in r.reasons[..shown].iter().enumerate() {
            let c = ex.codes[k] as usize;
            prop_assert_eq!(&ex.texts[c], &rec.reason_text(reason, r.rules.get(k)));
            // Because, by its definition: one scan of the signals per item.
            let want = match *reason {
                nestrank::Reason::SimilarTo(i) => model.id_of(i),
                nestrank::Reason::Category(cat) => (0..signals.len())
                    .filter(|&j| {
                        model.index_of(signals[j].0).is_some_and(|i| model.category_of(i) == cat)
                            && signals[j].2 <= now
                    })
                    .max_by(|&a, &b| signals[a].2.total_cmp(&signals[b].2))
                    .map_or("", |j| signals[j].0),
                _ => "",
            };
            prop_assert_eq!(ex.because[c], want, "position {}", k);
        }
        // Distinct entries: no two the same text and item.
        for x in 0..ex.texts.len() {
            for y in x + 1..ex.texts.len() {
                prop_assert!((&ex.texts[x], ex.because[x]) != (&ex.texts[y], ex.because[y]));
            }
        }
    }
}

/// Regression (found by the proptest above): signals old enough that the
/// session decay underflows made the category share 0/0 = NaN.
#[test]
fn ancient_signals_give_finite_scores() {
    let model = Model::from_parts(nestrank::testing::tiny_model()).unwrap();
    let mut scratch = Scratch::new();
    let (items, events, ts) = ([0u32, 2], [0u8, 0], [1e9 - 980_045.0, 1e9 - 515_884.0]);
    let signals = Signals::new(&items, &events, &ts).unwrap();
    let mut params = model.ranker().clone();
    params.weights = vec![1.0; NUM_FEATURES];
    let r = rerank(
        &model,
        &params,
        &mut scratch,
        &[0, 1, 2, 3],
        signals,
        1e9,
        true,
    )
    .unwrap();
    assert!(r.scores.iter().all(|s| s.is_finite()), "{:?}", r.scores);
}

#[test]
fn non_finite_now_is_an_error() {
    let model = Model::from_parts(nestrank::testing::tiny_model()).unwrap();
    let mut scratch = Scratch::new();
    let r = rerank(
        &model,
        model.ranker(),
        &mut scratch,
        &[0, 1],
        Signals::EMPTY,
        f64::NAN,
        false,
    );
    assert_eq!(r, Err(nestrank::RerankError::BadNow));
}

/// The own-item weight at the session half-life (1 h by default) halves
/// with each half-life, beside the one at the own-item half-life (24 h);
/// a ranker that weighs it puts a view of a minute ago above two views
/// of two hours ago, which the long half-life alone ranks the other way.
#[test]
fn the_session_own_weight_fades_at_the_session_half_life() {
    use nestrank::rank::{F_OWN_WEIGHT, F_OWN_WEIGHT_SESSION, NUM_FEATURES};
    let mut parts = nestrank::testing::tiny_model();
    parts.ranker.weights = vec![0.0; NUM_FEATURES];
    parts.ranker.weights[F_OWN_WEIGHT] = 1.0;
    let long_only = Model::from_parts(parts.clone()).unwrap();
    parts.ranker.weights[F_OWN_WEIGHT_SESSION] = 4.0;
    let both = Model::from_parts(parts).unwrap();
    let mut scratch = Scratch::new();
    let now = 100_000.0;
    // a: viewed a minute ago; b: viewed twice two hours ago.
    let (items, events, ts) = (
        [0u32, 1, 1],
        [0u8; 3],
        [now - 60.0, now - 7_200.0, now - 7_200.0],
    );
    let sig = Signals::new(&items, &events, &ts).unwrap();
    let rank = |model: &Model, scratch: &mut Scratch| {
        rerank(model, model.ranker(), scratch, &[0, 1], sig, now, false)
            .unwrap()
            .order
    };
    assert_eq!(rank(&long_only, &mut scratch), [1, 0]);
    let f = scratch.features();
    let (a, b) = (f[0][F_OWN_WEIGHT_SESSION], f[1][F_OWN_WEIGHT_SESSION]);
    // Two views two half-lives old: 2 x 1/4 of a view's weight.
    let view = a / nestrank::numeric::pow2_neg(60.0 / 3_600.0);
    assert!((b - view / 2.0).abs() < 1e-5 * view, "{a} {b}");
    assert!(f[1][F_OWN_WEIGHT] > f[0][F_OWN_WEIGHT]);
    assert_eq!(rank(&both, &mut scratch), [0, 1]);
}

/// Category recency is `1 / (1 + hours)` since the latest signal in the
/// candidate's category, 0 for a candidate without one: a ranker that
/// weighs it puts the category browsed a minute ago above one browsed
/// more often but a day ago, which the category count ranks the other way.
#[test]
fn category_recency_follows_the_latest_signal_in_the_category() {
    use nestrank::rank::{F_CATEGORY_COUNT, F_CATEGORY_RECENCY, NUM_FEATURES};
    let mut parts = nestrank::testing::tiny_model();
    parts.ranker.weights = vec![0.0; NUM_FEATURES];
    parts.ranker.weights[F_CATEGORY_COUNT] = 1.0;
    let by_count = Model::from_parts(parts.clone()).unwrap();
    parts.ranker.weights[F_CATEGORY_RECENCY] = 10.0;
    let by_recency = Model::from_parts(parts).unwrap();
    let mut scratch = Scratch::new();
    let now = 200_000.0;
    // a (diapers) twice a day ago, c (strollers) a minute ago; candidates
    // b (diapers), c, d (no category).
    let (items, events, ts) = (
        [0u32, 0, 2],
        [0u8; 3],
        [now - 86_400.0, now - 90_000.0, now - 60.0],
    );
    let sig = Signals::new(&items, &events, &ts).unwrap();
    let mut rank = |model: &Model| {
        rerank(
            model,
            model.ranker(),
            &mut scratch,
            &[1, 2, 3],
            sig,
            now,
            false,
        )
        .unwrap()
        .order
    };
    assert_eq!(rank(&by_count)[0], 0, "b: two signals in its category");
    assert_eq!(rank(&by_recency)[0], 1, "c: its category a minute ago");
    let f = scratch.features();
    assert_eq!(f[0][F_CATEGORY_RECENCY], 1.0 / 25.0);
    assert!((f[1][F_CATEGORY_RECENCY] - 60.0 / 61.0).abs() < 1e-6);
    assert_eq!(f[2][F_CATEGORY_RECENCY], 0.0);
    // The reused scratch forgets the last call: strollers a day ago now.
    let ts = [now - 86_400.0];
    let sig = Signals::new(&[2], &[0], &ts).unwrap();
    rerank(
        &by_recency,
        by_recency.ranker(),
        &mut scratch,
        &[2],
        sig,
        now,
        false,
    )
    .unwrap();
    assert_eq!(scratch.features()[0][F_CATEGORY_RECENCY], 1.0 / 25.0);
}

#[test]
fn signals_lift_own_and_neighbour_items() {
    let model = Model::from_parts(nestrank::testing::tiny_model()).unwrap();
    let mut scratch = Scratch::new();
    let now = 100_000.0;
    // No signals: popularity decides, c first.
    let r = rerank(
        &model,
        model.ranker(),
        &mut scratch,
        &[0, 1, 2, 3],
        Signals::EMPTY,
        now,
        true,
    )
    .unwrap();
    assert_eq!(r.order[0], 2);
    // A fresh view of d (no category, no neighbours): d comes first as own item.
    let ts = [now - 60.0];
    let sig = Signals::new(&[3], &[0], &ts).unwrap();
    let r = rerank(
        &model,
        model.ranker(),
        &mut scratch,
        &[0, 1, 2, 3],
        sig,
        now,
        true,
    )
    .unwrap();
    assert_eq!(r.order[0], 3);
    assert_eq!(r.reasons[0].text(&model), "you viewed this");
    // A view of a (neighbour of b) lifts b above c, with a reason naming a.
    let sig = Signals::new(&[0], &[0], &ts).unwrap();
    let r = rerank(
        &model,
        model.ranker(),
        &mut scratch,
        &[1, 2, 3],
        sig,
        now,
        true,
    )
    .unwrap();
    assert_eq!(r.order[0], 0, "b first");
    assert!(scratch.features()[0][nestrank::rank::F_SIMILARITY] > 0.9);
    assert_eq!(scratch.features()[1][nestrank::rank::F_SIMILARITY], 0.0);
    // b shares a's category too; the larger of the two parts names the reason.
    let reason = r.reasons[0].text(&model);
    assert!(
        reason == "viewed together with a" || reason == "from category diapers you browse",
        "{reason}"
    );
}
