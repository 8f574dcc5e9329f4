//! Arbitrary candidates, signals and times against a valid model (the golden
//! blob): rerank never panics, and its order is a permutation of the
//! candidates with finite scores, best first.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nestrank::{Recommender, Signals};
use std::cell::RefCell;

static GOLDEN: &[u8] = include_bytes!("../../tests/data/golden-v1.nrk");

fn read_u32(data: &mut &[u8]) -> Option<u32> {
    let (head, rest) = data.split_first_chunk::<4>()?;
    *data = rest;
    Some(u32::from_le_bytes(*head))
}

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static MODEL: RefCell<Recommender> =
            RefCell::new(Recommender::from_bytes(GOLDEN).expect("the golden blob decodes"));
    }
    MODEL.with_borrow_mut(|rec| run(rec, data));
});

fn run(rec: &mut Recommender, data: &[u8]) {
    let mut data = data;
    let Some(head) = read_u32(&mut data) else {
        return;
    };
    let n = rec.model().item_count() as u32;
    // The first word: candidate count and signal count; then indices (some
    // past the model, some u32::MAX), events and times from the bytes.
    let (n_cand, n_sig) = ((head & 0x3ff) as usize, ((head >> 10) & 0x3ff) as usize);
    let index =
        |d: &mut &[u8]| read_u32(d).map(|x| if x & 1 == 0 { (x >> 1) % (n + 8) } else { x });
    let mut cands = Vec::new();
    for _ in 0..n_cand {
        let Some(c) = index(&mut data) else { break };
        cands.push(c);
    }
    cands.sort_unstable();
    cands.dedup();
    let (mut items, mut events, mut ts) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n_sig {
        let (Some(i), Some(e), Some(t)) =
            (index(&mut data), read_u32(&mut data), read_u32(&mut data))
        else {
            break;
        };
        items.push(i);
        events.push((e % 6) as u8);
        ts.push(match e >> 28 {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => -1.0e300,
            _ => f64::from(t) + 1.5e9,
        });
    }
    let now = read_u32(&mut data).map_or(1.6e9, |t| f64::from(t) + 1.5e9);
    let signals = Signals::new(&items, &events, &ts).expect("equal lengths");
    if let Ok(r) = rec.rerank_indices(&cands, signals, now, true) {
        let mut order = r.order.clone();
        order.sort_unstable();
        assert!(
            order.iter().copied().eq(0..cands.len() as u32),
            "a permutation"
        );
        assert!(r.scores.iter().all(|s| s.is_finite()));
        assert!(r.scores.windows(2).all(|w| w[0] >= w[1]), "best first");
    }
}
