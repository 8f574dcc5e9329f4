//! The profile features in the scorer: the same model and the same profile
//! rank for the baby's age *today* (a birthday passing changes the order
//! with no new blob), clothing for the other gender sinks, and a brand the
//! family likes rises.
#![cfg(not(target_arch = "wasm32"))]

use nestrank::model::{FamilySection, StringTable};
use nestrank::profile::{affinities_from, Profile};
use nestrank::stage::{bucket_of, quantize_lift, BUCKETS, EDGES};
use nestrank::{Model, Recommender, Signals};

const DAY: f64 = 86_400.0;

/// Items a..d: `a` fits pregnancy (maternity), `b` newborns, `c` is a girls'
/// dress, `d` a Moonbean product; as of 2026-11-27.
fn recommender() -> Recommender {
    let mut parts = nestrank::testing::tiny_model();
    parts.as_of_day = nestrank::util::parse_date("2026-11-27").unwrap();
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
    });
    Recommender::new(Model::from_parts(parts).unwrap())
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
    let due = nestrank::util::parse_date("2026-12-20").unwrap();
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
    let now = f64::from(nestrank::util::parse_date("2026-11-27").unwrap()) * DAY;
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
