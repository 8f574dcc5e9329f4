//! The JS API compiled to wasm, run by wasm-bindgen-test under Node and in
//! headless Chromium (`make test-wasm`): golden orderings equal the native
//! ones, and bad input gives a named JS Error, never a panic.
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Float32Array, Object, Reflect, Uint32Array, Uint8Array, JSON};
use nestrank::wasm::Recommender;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::wasm_bindgen_test;

const BLOB: &[u8] = include_bytes!("data/golden-v1.nrk");
const CASES: &str = include_str!("data/golden-cases.json");
const EXPECTED: &str = include_str!("data/golden-expected.json");

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &key.into()).unwrap()
}

fn load() -> Recommender {
    Recommender::from_bytes(&Uint8Array::from(BLOB).into()).unwrap()
}

fn error_of(e: JsValue) -> (String, String) {
    let e: js_sys::Error = e.dyn_into().expect("a JS Error");
    (e.name().into(), e.message().into())
}

#[wasm_bindgen_test]
fn golden_cases_match_the_native_core() {
    let mut rec = load();
    let cases = JSON::parse(CASES).unwrap();
    let expected = JSON::parse(EXPECTED).unwrap();
    assert_eq!(
        rec.model_id(),
        get(&expected, "model_id").as_string().unwrap()
    );
    let candidates = get(&cases, "candidates");
    let results: Array = get(&expected, "results").dyn_into().unwrap();
    let cases: Array = get(&cases, "cases").dyn_into().unwrap();
    assert_eq!(cases.length(), results.length());
    for (case, want) in cases.iter().zip(results.iter()) {
        let options = Object::new();
        Reflect::set(&options, &"now".into(), &get(&case, "now")).unwrap();
        Reflect::set(&options, &"explain".into(), &true.into()).unwrap();
        let out = rec
            .rerank(&candidates, &get(&case, "signals"), &options.into())
            .unwrap();
        let name = get(&want, "name").as_string().unwrap();
        assert_eq!(
            JSON::stringify(&get(&out, "items")).unwrap(),
            JSON::stringify(&get(&want, "items")).unwrap(),
            "order differs for {name}"
        );
        assert_eq!(
            JSON::stringify(&get(&out, "reasons")).unwrap(),
            JSON::stringify(&get(&want, "reasons")).unwrap(),
            "reasons differ for {name}"
        );
        assert_eq!(
            JSON::stringify(&get(&out, "because")).unwrap(),
            JSON::stringify(&get(&want, "because")).unwrap(),
            "because differs for {name}"
        );
        let scores: Float32Array = get(&out, "scores").dyn_into().unwrap();
        let want_scores: Array = get(&want, "scores").dyn_into().unwrap();
        assert_eq!(scores.length(), want_scores.length());
        for (k, w) in want_scores.iter().enumerate() {
            let got = f64::from(scores.get_index(k as u32));
            assert!(
                (got - w.as_f64().unwrap()).abs() <= 1e-6,
                "score {k} of {name}"
            );
        }
    }
}

#[wasm_bindgen_test]
fn typed_path_orders_like_the_string_path() {
    let mut rec = load();
    let cases = JSON::parse(CASES).unwrap();
    let candidates = get(&cases, "candidates");
    let case = Array::from(&get(&cases, "cases")).get(0);
    let signals = Array::from(&get(&case, "signals"));
    let now = get(&case, "now").as_f64().unwrap();
    let idx = rec.index_of(&candidates).unwrap().to_vec();
    let ids: Array = signals.iter().map(|s| get(&s, "item")).collect();
    let sig_items = rec.index_of(&ids).unwrap().to_vec();
    let sig_events: Vec<u8> = signals
        .iter()
        .map(|s| match get(&s, "event").as_string().unwrap().as_str() {
            "view" => 0,
            "fav" => 1,
            "cart" => 2,
            _ => 3,
        })
        .collect();
    let sig_ts: Vec<f64> = signals
        .iter()
        .map(|s| get(&s, "ts").as_f64().unwrap())
        .collect();
    let order = rec
        .rerank_indices(&idx, &sig_items, &sig_events, &sig_ts, now)
        .unwrap();
    let typed_scores = rec.last_scores().to_vec();
    let options = Object::new();
    Reflect::set(&options, &"now".into(), &now.into()).unwrap();
    let out = rec
        .rerank(&candidates, &signals.into(), &options.into())
        .unwrap();
    let items = Array::from(&get(&out, "items"));
    let cands = Array::from(&candidates);
    // Candidates unknown to the model are unmatched in the typed path, so
    // compare the known prefix, where both paths see the same signals.
    let known = idx.iter().filter(|&&i| i != u32::MAX).count();
    for (k, &p) in order.iter().enumerate().take(known.min(20)) {
        assert_eq!(cands.get(p), items.get(k as u32), "position {k}");
    }
    assert_eq!(typed_scores.len(), idx.len());
    assert_eq!(Uint32Array::from(&order[..]).length() as usize, idx.len());
}

#[wasm_bindgen_test]
fn bad_blobs_throw_named_errors() {
    let (name, msg) = error_of(
        Recommender::from_bytes(&Uint8Array::from(&b"<html>not found</html>"[..]).into())
            .err()
            .unwrap(),
    );
    assert_eq!(name, "NestrankDecodeError");
    assert!(msg.contains("not a nestrank blob"), "{msg}");

    let mut flipped = BLOB.to_vec();
    flipped[1000] ^= 1;
    let (name, msg) = error_of(
        Recommender::from_bytes(&Uint8Array::from(&flipped[..]).into())
            .err()
            .unwrap(),
    );
    assert_eq!(name, "NestrankDecodeError");
    assert!(msg.contains("checksum mismatch"), "{msg}");

    let (_, msg) = error_of(
        Recommender::from_bytes(&Uint8Array::from(&BLOB[..30]).into())
            .err()
            .unwrap(),
    );
    assert!(
        msg.contains("checksum") || msg.contains("truncated"),
        "{msg}"
    );

    let (name, msg) = error_of(Recommender::from_bytes(&"a string".into()).err().unwrap());
    assert_eq!(name, "NestrankArgumentError");
    assert!(msg.contains("Uint8Array"), "{msg}");

    // An ArrayBuffer works as well as a Uint8Array.
    let buffer = Uint8Array::from(BLOB).buffer();
    assert!(Recommender::from_bytes(&buffer.into()).is_ok());
}

#[wasm_bindgen_test]
fn bad_arguments_throw_and_the_module_keeps_working() {
    let mut rec = load();
    let cands: Array = ["1000", "1001"]
        .iter()
        .map(|s| JsValue::from_str(s))
        .collect();
    let none = JsValue::UNDEFINED;
    let bad_calls: Vec<(JsValue, JsValue, JsValue, &str)> = vec![
        (
            "1000".into(),
            none.clone(),
            none.clone(),
            "candidateIds must be an array",
        ),
        (
            Array::of1(&JsValue::from(5)).into(),
            none.clone(),
            none.clone(),
            "candidateIds[0] is not a string",
        ),
        (
            cands.clone().into(),
            "view".into(),
            none.clone(),
            "signals must be an array",
        ),
        (
            cands.clone().into(),
            Array::of1(&JsValue::from(3)).into(),
            none.clone(),
            "signals must be an array of {item",
        ),
        (
            cands.clone().into(),
            none.clone(),
            JsValue::from(7),
            "options must be",
        ),
    ];
    for (c, s, o, want) in bad_calls {
        let (name, msg) = error_of(rec.rerank(&c, &s, &o).err().unwrap());
        assert_eq!(name, "NestrankArgumentError");
        assert!(msg.contains(want), "{msg} lacks {want}");
    }
    let (_, msg) = error_of(
        rec.rerank_indices(&[0, 1], &[0], &[], &[], 0.0)
            .err()
            .unwrap(),
    );
    assert!(msg.contains("equal lengths"), "{msg}");
    let (_, msg) = error_of(
        rec.rerank_indices(&[0], &[], &[], &[], f64::NAN)
            .err()
            .unwrap(),
    );
    assert!(msg.contains("finite"), "{msg}");

    // Signals with unknown events or bad times are skipped, not fatal.
    let sig = JSON::parse(
        r#"[{"item":"1000","event":"teleport","ts":1},{"item":"1001","event":2,"ts":1e9}]"#,
    )
    .unwrap();
    let out = rec.rerank(&cands.clone().into(), &sig, &none).unwrap();
    assert_eq!(Array::from(&get(&out, "items")).get(0), "1001");

    // Still fine afterwards, limit honoured.
    let options = JSON::parse(r#"{"limit":1,"now":1e9}"#).unwrap();
    let out = rec.rerank(&cands.into(), &none, &options).unwrap();
    assert_eq!(Array::from(&get(&out, "items")).length(), 1);
    assert_eq!(rec.format_version(), 1);
    assert!(rec.item_count() > 1000);
    assert_eq!(rec.as_of(), "2017-12-03");
}

#[wasm_bindgen_test]
fn rules_at_run_time_pin_filter_and_fail_with_a_named_error() {
    let mut rec = load();
    let cases = JSON::parse(CASES).unwrap();
    let candidates: Array = get(&cases, "candidates").dyn_into().unwrap();
    let last = candidates.get(candidates.length() - 1).as_string().unwrap();
    let first = candidates.get(0).as_string().unwrap();
    let top = |rec: &mut Recommender| {
        let out = rec
            .rerank(&candidates, &JsValue::UNDEFINED, &JsValue::UNDEFINED)
            .unwrap();
        let items: Array = get(&out, "items").dyn_into().unwrap();
        let reasons: Array = get(&out, "reasons").dyn_into().unwrap();
        (
            items
                .iter()
                .map(|v| v.as_string().unwrap())
                .collect::<Vec<_>>(),
            reasons.get(0).as_string().unwrap(),
        )
    };
    let pin = format!(r#"{{"pins": [{{"item": "{last}", "slot": 1}}]}}"#);
    rec.set_rules(&pin.into()).unwrap();
    let (items, reason) = top(&mut rec);
    assert_eq!(items[0], last);
    assert!(reason.contains("pinned to slot 1"), "{reason}");
    assert_eq!(items.len() as u32, candidates.length());

    // A bad rule set is a named error and the rules in force stay.
    let (name, message) = error_of(
        rec.set_rules(&r#"{"pins": [{"item": "x", "slot": 0}]}"#.into())
            .unwrap_err(),
    );
    assert_eq!(name, "NestrankRulesError");
    assert_eq!(message, "rules: pins[0]: slot is 1-based: 1 is the top");
    let (name, _) = error_of(rec.set_rules(&"{not json".into()).unwrap_err());
    assert_eq!(name, "NestrankRulesError");
    let (_, message) = error_of(rec.set_rules(&r#"{"pin": []}"#.into()).unwrap_err());
    assert!(message.contains("unknown field `pin`"), "{message}");
    for (rules, want) in [
        (
            r#"{"boosts": [{"item": "x", "tims": 2}]}"#,
            "boosts[0]: unknown field `tims`",
        ),
        (
            r#"{"explore": {"slot": [3]}}"#,
            "explore: unknown field `slot`",
        ),
    ] {
        let (_, message) = error_of(rec.set_rules(&rules.into()).unwrap_err());
        assert!(message.contains(want), "{message}");
    }
    assert_eq!(top(&mut rec).0[0], last);

    // Each field is read by hand: a wrong type or a missing field names its
    // place, and the rules in force stay.
    for (rules, want) in [
        (
            r#"{"pins": [{"item": "x", "slot": 1.5}]}"#,
            "rules: pins[0].slot must be a whole number from 0 to 4294967295",
        ),
        (
            r#"{"pins": [{"slot": 1}]}"#,
            "rules: pins[0].item is missing",
        ),
        (
            r#"{"boosts": [{"brand": "b", "times": "2"}]}"#,
            "rules: boosts[0].times must be a number",
        ),
        (
            r#"{"boosts": [{"brand": "b", "times": 11}]}"#,
            "rules: boosts[0]: times 11 is outside [0, 10]",
        ),
        (
            r#"{"boosts": [{"brand": "b", "add": -10.25}]}"#,
            "rules: boosts[0]: add -10.25 is outside [-10, 10]",
        ),
        (r#"{"explore": {}}"#, "rules: explore.slots is missing"),
        (
            r#"{"explore": {"slots": [2, -1]}}"#,
            "rules: explore.slots[1] must be a whole number from 0 to 4294967295",
        ),
        (r#"{"filter": "x"}"#, "rules: filter must be an array"),
        (
            r#"{"filter": ["a", 2]}"#,
            "rules: filter[1] must be a string",
        ),
        (r#"[]"#, "rules: top level: must be an object"),
        (
            r#"{"diversity": [{"by": "brand", "max": 1}]}"#,
            "rules: diversity[0].window is missing",
        ),
    ] {
        let (name, message) = error_of(rec.set_rules(&rules.into()).unwrap_err());
        assert_eq!(name, "NestrankRulesError");
        assert_eq!(message, want);
    }
    assert_eq!(top(&mut rec).0[0], last);

    // `rules` reads back what `setRules` took, the fields left out left out.
    let full = r#"{"pins":[{"item":"x","slot":2}],"boosts":[{"brand":"b","times":1.5},{"category":"c","add":-0.25}],"filter":["y"],"diversity":[{"by":"brand","max":1,"window":3}],"explore":{"slots":[4,9]}}"#;
    rec.set_rules(&full.into()).unwrap();
    assert_eq!(JSON::stringify(&rec.rules().unwrap()).unwrap(), full);
    rec.set_rules(&"{}".into()).unwrap();
    assert_eq!(
        JSON::stringify(&rec.rules().unwrap()).unwrap(),
        r#"{"pins":[],"boosts":[],"filter":[],"diversity":[]}"#
    );

    // Sold out leaves the page; null goes back to the blob's (no) rules.
    let sold = Array::of1(&first.clone().into());
    rec.set_sold_out(&sold.into()).unwrap();
    let (items, _) = top(&mut rec);
    assert!(!items.contains(&first));
    assert_eq!(items.len() as u32, candidates.length() - 1);
    rec.set_sold_out(&Array::new().into()).unwrap();
    rec.set_rules(&JsValue::NULL).unwrap();
    assert_ne!(top(&mut rec).0[0], last);
}

#[wasm_bindgen_test]
fn similar_lists_neighbours_and_tolerates_unknown_ids() {
    let rec = load();
    let cases = JSON::parse(CASES).unwrap();
    let candidates: Array = get(&cases, "candidates").dyn_into().unwrap();
    // The first candidate with neighbours in the golden blob.
    let table_only = JSON::parse(r#"{"fill": false}"#).unwrap();
    let (id, out) = candidates
        .iter()
        .map(|c| {
            let out = rec.similar(&c, &table_only).unwrap();
            (c.as_string().unwrap(), out)
        })
        .find(|(_, out)| Array::from(&get(out, "items")).length() > 0)
        .expect("some golden candidate has neighbours");
    let reasons: Array = get(&out, "reasons").dyn_into().unwrap();
    assert_eq!(
        reasons.get(0).as_string().unwrap(),
        format!("viewed together with {id}")
    );
    let links: Array = get(&out, "links").dyn_into().unwrap();
    assert_eq!(links.length(), reasons.length());
    assert_eq!(links.get(0).as_string().unwrap(), "similar");
    let scores: Float32Array = get(&out, "scores").dyn_into().unwrap();
    assert!(scores.get_index(0) > 0.0);
    // The default fills a short list up to k from the item's category.
    let filled = rec
        .similar(&id.clone().into(), &JsValue::UNDEFINED)
        .unwrap();
    let filled: Array = get(&filled, "reasons").dyn_into().unwrap();
    assert!(filled.length() >= reasons.length());
    if filled.length() > reasons.length() {
        let last = filled.get(filled.length() - 1).as_string().unwrap();
        assert!(last.starts_with("more from "), "{last}");
    }
    let opts = JSON::parse(r#"{"k": 1}"#).unwrap();
    let one = rec.similar(&id.clone().into(), &opts).unwrap();
    assert_eq!(Array::from(&get(&one, "items")).length(), 1);
    let none = rec
        .similar(&"no-such-item".into(), &JsValue::UNDEFINED)
        .unwrap();
    assert_eq!(Array::from(&get(&none, "items")).length(), 0);
    for (options, want) in [
        (r#"{"k": -1}"#, "k must be a whole number"),
        (r#"{"within": [3]}"#, "within[0] must be a string"),
        (r#"{"fill": 1}"#, "fill must be true or false"),
        (r#"{"top": 3}"#, "options: unknown field `top`"),
    ] {
        let (name, message) = error_of(
            rec.similar(&id.clone().into(), &JSON::parse(options).unwrap())
                .unwrap_err(),
        );
        assert_eq!(name, "NestrankArgumentError");
        assert!(message.contains(want), "{message} lacks {want}");
    }
    let bad = JSON::parse(r#"{"kind": "cheaper"}"#).unwrap();
    let (name, message) = error_of(rec.similar(&id.into(), &bad).unwrap_err());
    assert_eq!(name, "NestrankArgumentError");
    assert!(
        message.contains("\"similar\" or \"complement\""),
        "{message}"
    );
}
