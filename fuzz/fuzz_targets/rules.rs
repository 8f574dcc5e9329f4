//! Business rules from untrusted input: the bytes are tried as a JSON rule
//! set (as `setRules` gets it) and also read as a rule set directly (pins,
//! boosts, filters, caps, exploration slots with arbitrary values), then
//! applied to arbitrary candidates of the golden v2 blob (it has brands).
//! Never a panic; an accepted rule set always gives a permutation of the
//! unfiltered candidates.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nestrank::rules::{Boost, Diversity, Explore, Pin, RuleSet};
use nestrank::{Recommender, Signals};
use std::cell::RefCell;

static GOLDEN: &[u8] = include_bytes!("../../tests/data/golden-v2.nrk");

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static REC: RefCell<Recommender> =
            RefCell::new(Recommender::from_bytes(GOLDEN).expect("the golden v2 blob decodes"));
    }
    REC.with_borrow_mut(|rec| run(rec, data));
});

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn f32(&mut self) -> f32 {
        f32::from_bits(self.u32())
    }
}

fn run(rec: &mut Recommender, data: &[u8]) {
    if let Ok(rules) = serde_json::from_slice::<RuleSet>(data) {
        let _ = rec.set_rules(Some(rules));
    }
    let n = rec.model().item_count() as u32;
    let mut b = Bytes(data);
    let id = |x: u32| -> String {
        if x % 4 == 0 {
            format!("unknown-{x}")
        } else {
            rec.model().id_of(x % n).to_string()
        }
    };
    let brand = |x: u32| -> String {
        let f = rec.model().family().expect("v2 has brands");
        f.brands.get(x as usize % f.brands.len()).to_string()
    };
    let mut rules = RuleSet::default();
    for _ in 0..b.u8() % 6 {
        let x = b.u32();
        rules.pins.push(Pin {
            item: id(x),
            slot: b.u32() % 120,
        });
    }
    for _ in 0..b.u8() % 6 {
        let (kind, x, v, times) = (b.u8(), b.u32(), b.f32(), b.u8() % 3);
        let mut boost = Boost::default();
        match kind % 4 {
            0 => boost.item = Some(id(x)),
            1 => boost.brand = Some(brand(x)),
            2 => {
                boost.category = Some(
                    rec.model()
                        .category_name(x % rec.model().category_count().max(1) as u32)
                        .to_string(),
                )
            }
            _ => {}
        }
        match times {
            0 => boost.times = Some(v),
            1 => boost.add = Some(v),
            _ => {}
        }
        rules.boosts.push(boost);
    }
    for _ in 0..b.u8() % 6 {
        let x = b.u32();
        rules.filter.push(id(x));
    }
    for _ in 0..b.u8() % 4 {
        rules.diversity.push(Diversity {
            by: ["brand", "category", "other"][b.u8() as usize % 3].into(),
            max: b.u32() % 8,
            window: b.u32() % 60,
        });
    }
    if b.u8() % 2 == 1 {
        let slots = (0..b.u8() % 6).map(|_| b.u32() % 120).collect();
        rules.explore = Some(Explore { slots });
    }
    let accepted = rec.set_rules(Some(rules.clone())).is_ok();
    let mut cands: Vec<u32> = (0..b.u8()).map(|_| b.u32() % (n + 4)).collect();
    cands.sort_unstable();
    cands.dedup();
    let sig_items: Vec<u32> = cands.iter().take(3).copied().collect();
    let events = vec![0u8; sig_items.len()];
    let ts = vec![1.79e9; sig_items.len()];
    let signals = Signals::new(&sig_items, &events, &ts).expect("equal lengths");
    rec.set_user_key(&format!("{}", b.u32()));
    // Which candidates the rules filter, before the rerank borrows `rec`.
    let filtered: Vec<bool> = cands
        .iter()
        .map(|&i| i < n && rules.filter.iter().any(|f| f == rec.model().id_of(i)))
        .collect();
    let Ok(r) = rec.rerank_indices(&cands, signals, 1.7901e9, true) else {
        return;
    };
    if accepted {
        let filtered = |p: u32| filtered[p as usize];
        let mut got = r.order.clone();
        got.sort_unstable();
        let want: Vec<u32> = (0..cands.len() as u32).filter(|&p| !filtered(p)).collect();
        assert_eq!(got, want, "a permutation of the unfiltered candidates");
        assert_eq!(r.rules.len(), r.order.len());
    }
}
