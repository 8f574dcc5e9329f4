//! The profile features in the scorer: the same model and the same profile
//! rank for the baby's age *today* (a birthday passing changes the order
//! with no new blob), clothing for the other gender sinks, and a brand the
//! family likes rises.
#![cfg(not(target_arch = "wasm32"))]

use nestrank::model::{FamilySection, StringTable};
use nestrank::profile::{affinities_from, Profile, RebuysSection};
use nestrank::stage::{bucket_of, quantize_lift, BUCKETS, EDGES};
use nestrank::{Model, Recommender, Signals};

const DAY: f64 = 86_400.0;

/// Items a..d: `a` fits pregnancy (maternity), `b` newborns, `c` is a girls'
/// dress, `d` a Moonbean product; as of 2026-11-27.
fn recommender() -> Recommender {
    let mut parts = nestrank::testing::tiny_model();
    parts.as_of_day = nestrank::calendar::parse_date("2026-11-27").unwrap();
    let lift = |item: usize, b: usize| -> u8 {
        let months = (f64::from(EDGES[b]) + f64::from(EDGES[b + 1]).min(48.0)) / 2.0;
        quantize_lift(match item {
            0 if months < 0.0 => 4.0,
            1 if (0.0..3.0).contains(&months) => 4.0,
            _ => 0.5,
        })
    };
    parts.family = Some(FamilySection {
        brands: StringTable::from_strings(&["Moonbean", "Tot & Co"]),
        brand: vec![1, 1, 1, 0],
        gender: vec![0, 0, 1, 0],
        edges: EDGES.to_vec(),
        lifts: (0..4)
            .flat_map(|i| (0..BUCKETS).map(move |b| lift(i, b)))
            .collect(),
        price: vec![10.0, 20.0, 400.0, 80.0],
        // Category 0 (a, b: diapers) is re-bought every 10 days; 1 (c: a
        // stroller) is bought once.
        restock_days: vec![10.0, nestrank::model::DURABLE],
    });
    Recommender::new(Model::from_parts(parts).unwrap())
}

/// Feature `k` of one candidate.
fn feature(rec: &Recommender, sig: Signals<'_>, cand: u32, now: f64, k: usize) -> f32 {
    let mut s = nestrank::Scratch::new();
    let (model, params) = (rec.model(), rec.model().ranker());
    nestrank::score::compute_features(model, params, &mut s, &[cand], sig, now).unwrap();
    s.features()[0][k]
}

fn order(rec: &mut Recommender, now: f64) -> Vec<u32> {
    let cands = [0u32, 1, 2, 3];
    let r = rec
        .rerank_indices(&cands, Signals::EMPTY, now, true)
        .unwrap();
    r.order.clone()
}

#[test]
fn the_stage_moves_the_order_as_the_baby_arrives_with_no_new_model() {
    let mut rec = recommender();
    let due = nestrank::calendar::parse_date("2026-12-20").unwrap();
    let before_birth = f64::from(due - 20) * DAY;
    let after_birth = f64::from(due + 20) * DAY;
    rec.set_profile(Some(
        Profile::from_birthday("2026-12-20", "", before_birth).unwrap(),
    ));
    assert_eq!(bucket_of(-0.6), 2);
    assert_eq!(
        order(&mut rec, before_birth)[0],
        0,
        "maternity first while expecting"
    );
    let reasons = rec.last_ranking().reasons.clone();
    assert_eq!(reasons[0].text(rec.model()), "right for your baby's age");
    assert_eq!(
        order(&mut rec, after_birth)[0],
        1,
        "newborn items first after the birth"
    );
    rec.set_profile(None);
    assert_eq!(
        order(&mut rec, after_birth)[0],
        2,
        "without a profile: popularity"
    );
}

#[test]
fn gender_and_brand() {
    let mut rec = recommender();
    let now = f64::from(nestrank::calendar::parse_date("2026-11-27").unwrap()) * DAY;
    let mut boy = Profile::from_birthday("2026-01-01", "boy", now).unwrap();
    rec.set_profile(Some(boy.clone()));
    let o = order(&mut rec, now);
    assert_eq!(
        *o.last().unwrap(),
        2,
        "a girls' dress sinks for a boy: {o:?}"
    );
    let mut girl = boy.clone();
    girl.gender = nestrank::profile::Gender::Girl;
    rec.set_profile(Some(girl));
    assert_ne!(*order(&mut rec, now).last().unwrap(), 2);
    boy.affinities = affinities_from(&[("Moonbean".into(), 1.0)], &[], (0.0, 0.0));
    rec.set_profile(Some(boy));
    let o = order(&mut rec, now);
    assert!(
        o.iter().position(|&p| p == 3).unwrap() < 2,
        "Moonbean's d rises: {o:?}"
    );
    let r = rec.last_ranking();
    let k = r.order.iter().position(|&p| p == 3).unwrap();
    assert_eq!(r.reasons[k].text(rec.model()), "Moonbean, a brand you like");
}

#[test]
fn a_brand_the_user_browses_rises_without_a_profile() {
    let mut rec = recommender();
    let now = 1.8e9;
    // Views of c (brand Tot & Co) lift a and b (same brand) over d.
    let items = [2u32, 2, 2];
    let events = [0u8, 0, 0];
    let ts = [now - 60.0, now - 120.0, now - 180.0];
    let sig = Signals::new(&items, &events, &ts).unwrap();
    let r = rec.rerank_indices(&[0, 1, 3], sig, now, false).unwrap();
    assert_eq!(
        *r.order.last().unwrap(),
        2,
        "d (Moonbean) last: {:?}",
        r.order
    );
}

#[test]
fn replenishment_demotes_while_stocked_and_promotes_when_due() {
    let mut rec = recommender();
    let bought = 1.8e9;
    let items = [0u32, 2];
    let events = [3u8, 3]; // bought diapers a and stroller c
    let ts = [bought, bought];
    let sig = Signals::new(&items, &events, &ts).unwrap();
    let f = |rec: &mut Recommender, days: f64, cand: u32| {
        feature(
            rec,
            sig,
            cand,
            bought + days * DAY,
            nestrank::rank::F_RESTOCK,
        )
    };
    assert_eq!(
        f(&mut rec, 2.0, 1),
        -1.0,
        "diapers b: still stocked after 2 days"
    );
    assert_eq!(f(&mut rec, 7.0, 1), 0.0, "after 7 days: neither");
    assert_eq!(f(&mut rec, 9.0, 1), 1.0, "after 9 days: due again");
    assert_eq!(
        f(&mut rec, 9.0, 2),
        -1.0,
        "a stroller already bought stays down"
    );
    assert_eq!(f(&mut rec, 9.0, 3), 0.0, "no category bought: nothing");
    let r = rec
        .rerank_indices(&[1, 3], sig, bought + 9.0 * DAY, true)
        .unwrap()
        .clone();
    assert_eq!(r.order[0], 0, "due diapers first");
    assert_eq!(r.reasons[0].text(rec.model()), "time to stock up again");
}

#[test]
fn the_nightly_rebuys_restock_a_phone_that_never_saw_the_purchase() {
    let rec = recommender();
    let bought_day = nestrank::calendar::parse_date("2026-11-20").unwrap();
    let start = f64::from(bought_day) * DAY;
    let mut p = Profile::from_birthday("2026-01-01", "", start).unwrap();
    p.rebuys = RebuysSection::from_days(&[("diapers", bought_day), ("no such", bought_day)]);
    // The blob round trip keeps it.
    let p = Profile::from_bytes(&p.to_bytes()).unwrap();
    assert_eq!(p.rebuys.last_day("diapers"), Some(bought_day));
    let f = |profile: Option<&Profile>, days: f64, local: &[f64]| {
        let items = vec![0u32; local.len()];
        let events = vec![3u8; local.len()];
        let sig = Signals::new(&items, &events, local)
            .unwrap()
            .with_profile(profile);
        feature(&rec, sig, 1, start + days * DAY, nestrank::rank::F_RESTOCK)
    };
    assert_eq!(f(Some(&p), 2.0, &[]), -1.0, "bought elsewhere 2 days ago");
    assert_eq!(f(Some(&p), 9.0, &[]), 1.0, "due after 9 days");
    assert_eq!(f(None, 9.0, &[]), 0.0, "without the profile: unknown");
    // A newer purchase on the phone wins over the profile's day.
    assert_eq!(f(Some(&p), 9.0, &[start + 8.0 * DAY]), -1.0);
    // Only the restocked category: the stroller (c) is not in the section.
    let sig = Signals::EMPTY.with_profile(Some(&p));
    assert_eq!(
        feature(&rec, sig, 2, start + 9.0 * DAY, nestrank::rank::F_RESTOCK),
        0.0
    );
}

#[test]
fn a_malformed_rebuys_section_is_a_typed_error() {
    use nestrank::format::{encode_section, seal, BlobKind};
    let baby = encode_section(&nestrank::profile::BabySection {
        birth_day: i32::MIN,
        gender: 0,
    });
    let with = |r: &RebuysSection| {
        seal(
            BlobKind::Profile,
            0,
            &[
                (nestrank::profile::section::BABY, baby.clone()),
                (nestrank::profile::section::REBUYS, encode_section(r)),
            ],
        )
    };
    let good = RebuysSection::from_days(&[("b", 20_000), ("a", 20_001)]);
    assert_eq!(Profile::from_bytes(&with(&good)).unwrap().rebuys, good);
    let unsorted = RebuysSection {
        categories: StringTable::from_strings(&["b", "a"]),
        days: vec![1, 2],
    };
    let short = RebuysSection {
        categories: StringTable::from_strings(&["a", "b"]),
        days: vec![1],
    };
    let far = RebuysSection {
        categories: StringTable::from_strings(&["a"]),
        days: vec![i32::MAX],
    };
    for (bad, what) in [
        (unsorted, "rebuys.categories"),
        (short, "rebuys.categories"),
        (far, "rebuys.days"),
    ] {
        let e = Profile::from_bytes(&with(&bad)).unwrap_err().to_string();
        assert!(e.contains(what), "{e}");
    }
}

#[test]
fn price_fit_from_the_profile_band_or_the_signals() {
    let mut rec = recommender();
    let now = 1.8e9;
    let fit = |rec: &Recommender, sig: Signals<'_>, cand: u32| {
        feature(rec, sig, cand, now, nestrank::rank::F_PRICE_FIT)
    };
    // Views of d (80) put the centre at 80: d fits, a (10) does not.
    let items = [3u32];
    let events = [0u8];
    let ts = [now - 60.0];
    let sig = Signals::new(&items, &events, &ts).unwrap();
    assert_eq!(fit(&rec, sig, 3), 1.0);
    assert_eq!(fit(&rec, sig, 0), 0.0);
    assert!(
        (fit(&rec, sig, 2) - 0.0).abs() < 1e-6,
        "400 is over twice 80"
    );
    // A profile band of 8..12 moves the centre to ~10.
    let mut p = Profile::from_birthday("2026-01-01", "", now).unwrap();
    p.affinities = affinities_from(&[], &[], (8.0, 12.0));
    rec.set_profile(Some(p.clone()));
    let with = Signals::EMPTY.with_profile(Some(&p));
    assert!(fit(&rec, with, 0) > 0.9);
    assert_eq!(fit(&rec, with, 3), 0.0);
}

/// The family's nightly embedding (issue #20): with no local signal the
/// fold-in is the embedding itself, so the factor feature scores the
/// candidates by it; an embedding for another model, or one whose whole
/// history the phone already holds, changes nothing.
#[test]
fn an_embedding_for_this_model_is_the_prior_of_the_fold_in() {
    use nestrank::factors::FactorsSection;
    use nestrank::params::F_FACTOR;
    use nestrank::profile::EmbeddingSection;
    let mut parts = nestrank::testing::tiny_model();
    parts.as_of_day = 20_000;
    let y = [1.0f32, 0.0, 0.0, 1.0, 0.7, 0.7, -1.0, 0.0];
    parts.factors = Some(FactorsSection::quantize(
        &y,
        2,
        0.1,
        10.0,
        [1.0, 2.0, 3.0, 4.0],
    ));
    parts.ranker.weights[F_FACTOR] = 1.0;
    let model = Model::from_parts(parts).unwrap();
    let id = model.header().model_id;
    let now = 20_000.5 * DAY;
    let factor = |profile: Option<&Profile>, sig: Signals<'_>| -> Vec<f32> {
        let mut s = nestrank::Scratch::new();
        let sig = sig.with_profile(profile);
        nestrank::score::compute_features(&model, model.ranker(), &mut s, &[0, 1, 2, 3], sig, now)
            .unwrap();
        s.features().iter().map(|f| f[F_FACTOR]).collect()
    };
    let mut p = Profile::from_birthday("2024-01-01", "", now).unwrap();
    p.as_of_day = 20_000;
    p.embedding = Some(EmbeddingSection::quantize(id, &[0.0, 2.0], 1.0, 40));
    assert_eq!(factor(None, Signals::EMPTY), vec![0.0; 4]);
    let with = factor(Some(&p), Signals::EMPTY);
    // x₀ = (0, 2): item b (0, 1) scores 2, c (0.7, 0.7) 1.4, a and d 0.
    assert!(
        (with[1] - 2.0).abs() < 0.02 && (with[2] - 1.4).abs() < 0.02,
        "{with:?}"
    );
    assert!(with[0].abs() < 0.02 && with[3].abs() < 0.02, "{with:?}");

    // Another model's embedding is ignored.
    let mut other = p.clone();
    other.embedding.as_mut().unwrap().model_id = id ^ 1;
    assert_eq!(factor(Some(&other), Signals::EMPTY), vec![0.0; 4]);

    // A phone holding 40 events from before the profile's day holds the
    // whole history: the fold-in is the one without an embedding.
    let items = vec![0u32; 40];
    let events = vec![0u8; 40];
    let times: Vec<f64> = (0..40).map(|k| 19_999.0 * DAY + f64::from(k)).collect();
    let held = Signals::new(&items, &events, &times).unwrap();
    assert_eq!(factor(Some(&p), held), factor(None, held));
    // Holding half of it, the embedding pulls toward b again.
    let half = Signals::new(&items[..20], &events[..20], &times[..20]).unwrap();
    let (a, b) = (factor(None, half), factor(Some(&p), half));
    assert!(b[1] > a[1] + 0.1, "{a:?} vs {b:?}");
}
