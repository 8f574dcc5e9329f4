//! The stage fit the blob ships is the estimator `eval-stage` measures:
//! each item's lift bytes are its category's Bayes lift ([`StageLift`]),
//! moved by the item's own purchases, or its age range where it has one.

use model_builder::build::family_section;
use model_builder::data::Dataset;
use model_builder::rows::BadRowPolicy;
use model_builder::stage::{bucket_of, AgeFit, StageLift, BUCKETS, KAPPAS};
use nestrank::stage::quantize_lift;

const DAY: i64 = 86_400;

#[test]
fn the_blob_carries_the_bayes_lift_chosen_on_earlier_days() {
    let dir = std::env::temp_dir().join(format!("nestrank-stage-fit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Newborn families buy n1/n2, toddler families t1, over ten days; n3
    // (newborn) is never bought; r1 is in the toddler category with a
    // 0-2 month range.
    std::fs::write(
        dir.join("items.csv"),
        "item_id,category,top_category,age_min_months,age_max_months\n\
         n1,newborn,baby,,\nn2,newborn,baby,,\nn3,newborn,baby,,\nt1,toddler,baby,,\n\
         r1,toddler,baby,0,2\nw1,wipes,care,,\n",
    )
    .unwrap();
    let mut events = String::from("user_id,item_id,event,ts\n");
    let mut users = String::from("user_id,baby_birthday,baby_gender\n");
    let day0 = 20_000i64;
    for u in 0..60 {
        let toddler = u % 2 == 1;
        let born = if toddler { day0 - 600 } else { day0 - 15 };
        users.push_str(&format!(
            "u{u},{},F\n",
            nestrank::calendar::format_date(born as i32)
        ));
        let item = match (toddler, u % 4) {
            (true, _) => "t1",
            (false, 0) => "n1",
            _ => "n2",
        };
        let day = day0 + (u % 10) as i64;
        events.push_str(&format!("u{u},{item},purchase,{}\n", day * DAY + 3600));
        // Everyone buys wipes, whatever the age.
        events.push_str(&format!("u{u},w1,purchase,{}\n", day * DAY + 7200));
    }
    std::fs::write(dir.join("events.csv"), events).unwrap();
    std::fs::write(dir.join("users.csv"), users).unwrap();
    let ds = Dataset::load(&dir, BadRowPolicy { max_bad_rows: 0 }).unwrap();
    let cutoff = (day0 + 10) * DAY;
    let fit = AgeFit::estimate(&ds, cutoff);
    let shipped = StageLift::estimate(&ds, &fit, cutoff);
    // Ten days of purchases: κ is chosen on the last two.
    assert!(shipped.tuned && KAPPAS.contains(&shipped.kappa));

    let items: Vec<u32> = (0..ds.items.len() as u32).collect();
    let cats: Vec<u32> = (0..ds.categories.len() as u32).collect();
    let section = family_section(&ds, cutoff, &items, &cats).unwrap();
    let idx = |id: &str| ds.items.get(id).unwrap() as usize;
    let cat = |name: &str| ds.categories.get(name).unwrap() as usize;
    let bytes = |id: &str| &section.lifts[idx(id) * BUCKETS..(idx(id) + 1) * BUCKETS];
    // Never bought: the category's Bayes lift, byte for byte.
    let newborn_lift: Vec<u8> = shipped.category[cat("newborn")]
        .iter()
        .map(|&l| quantize_lift(l))
        .collect();
    assert_eq!(bytes("n3"), &newborn_lift[..]);
    let (newborn, toddler) = (bucket_of(0.5), bucket_of(19.7));
    assert!(bytes("n3")[newborn] > 128 && bytes("n3")[toddler] < 128);
    // Bought: moved by its own purchases as the fit moves it.
    for b in 0..BUCKETS {
        let t = cat("toddler");
        let own = fit.item[idx("t1")][b] / fit.category[t][b];
        assert_eq!(bytes("t1")[b], quantize_lift(shipped.category[t][b] * own));
    }
    // A range wins over the category.
    assert!(bytes("r1")[newborn] > 128 && bytes("r1")[toddler] < 128);
    // What every family buys is near 1 at every age with a purchase.
    for b in [newborn, toddler] {
        assert!((120..=136).contains(&bytes("w1")[b]), "{:?}", bytes("w1"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
