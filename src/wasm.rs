//! The JavaScript API: a thin conversion layer over [`crate::Recommender`].
//!
//! Every failure becomes a JS `Error` whose `name` says its kind
//! (`NestrankDecodeError` for a bad blob, `NestrankArgumentError` for bad
//! arguments) and whose message names the problem; nothing here panics on
//! input.

use crate::calendar::format_date;
use crate::codec::{self, OwnedSignal};
use crate::recommender::Recommender as Core;
use crate::signals::Event;
use crate::signals::Signals;
use js_sys::{Array, Float32Array, Object, Reflect, Uint32Array, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

mod read;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** A browsing event: a name, or its code (0 view, 1 fav, 2 cart, 3 purchase). */
export type NestrankEvent = "view" | "fav" | "cart" | "purchase" | 0 | 1 | 2 | 3;
/** One local signal: what the user did to which item, when (Unix seconds). */
export interface Signal { item: string; event: NestrankEvent; ts: number; }
/** Options of `rerank`: `now` in Unix seconds (default: the clock), `limit` items to return, `explain` reasons (default true). */
export interface RerankOptions { now?: number; limit?: number; explain?: boolean; }
/** The reranked candidates, best first, with a score and a short reason each. */
export interface RerankResult {
  items: string[];
  scores: Float32Array;
  reasons: string[];
  /** Per item, the id of the item the user acted on that explains it (viewed together with it, or the latest in its category), or "" (only with `explain`). */
  because: string[];
  /** Per item, the probability it was shown where it is: 1, or 1 / (the new items drawn from) for an exploration slot's item; log it with the item's outcome (only with `explain`). */
  propensities?: Float32Array;
  /** How many signals counted (a known event, a time no later than now + 10 minutes, an item the model knows or a candidate); 0: the order is not personalized. */
  signalsUsed: number;
}
/** A family's stage on a day. */
export type ProfileStage = { kind: "pregnancy"; trimester: 1 | 2 | 3; weeksToGo: number } | { kind: "baby"; months: number; days: number };
/** Operations' rules (README "Business rules"): every field optional. */
export interface RuleSet {
  pins?: { item: string; slot: number }[];
  boosts?: (({ item: string } | { brand: string } | { category: string }) & ({ times: number } | { add: number }))[];
  filter?: string[];
  diversity?: { by: "brand" | "category"; max: number; window: number }[];
  explore?: { slots: number[] };
}
/** Options of `similar`: `k` neighbours (default 10), the table (`similar`: viewed together, the default; `complement`: bought together), a list to stay `within` (today's specials), and whether to `fill` a short `similar` list from the item's category (default true). */
export interface SimilarOptions { k?: number; kind?: "similar" | "complement"; within?: string[]; fill?: boolean; }
/** Neighbours, strongest first, with a score, a reason and a link each: `similar` (viewed together), `complement` (bought together) or `category` (a category fill). */
export interface SimilarResult { items: string[]; scores: Float32Array; reasons: string[]; links: ("similar" | "complement" | "category")[]; }
/** An A/B experiment: variants with traffic shares in percent (adding up to 100), each serving the shop's `order` (the control) or nestrank's, with the shipped or a hand-set `ranker` and its own `rules`. */
export interface Experiment { name: string; variants: { name: string; share: number; order?: "shop" | "nestrank"; ranker?: string; rules?: RuleSet }[]; }
/** A decoded signal: the event by name. */
export interface DecodedSignal { item: string; event: "view" | "fav" | "cart" | "purchase"; ts: number; }
"#;

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

fn error(name: &str, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    e.set_name(name);
    e.into()
}

fn arg_error(message: &str) -> JsValue {
    error("NestrankArgumentError", message)
}

/// An options object (`undefined`/`null`: the defaults), read by `read`;
/// `shape` is the TypeScript shape the error message shows.
fn parse_options<T: Default>(
    value: &JsValue,
    shape: &str,
    allowed: Option<&[&str]>,
    read: impl FnOnce(&JsValue) -> Result<T, read::Problem>,
) -> Result<T, JsValue> {
    if read::absent(value) {
        return Ok(T::default());
    }
    let checked = match allowed {
        Some(allowed) => read::object(value, "options", allowed),
        // `rerank`'s options never refused an unknown key.
        None => read::plain_object(value, "options").map(|_| ()),
    };
    checked
        .and_then(|()| read(value))
        .map_err(|e| arg_error(&format!("options must be {shape}: {e}")))
}

fn rules_error(message: &str) -> JsValue {
    error("NestrankRulesError", message)
}

/// A rule set from page code (an object; `JSON.parse`d text).
fn rules_from_js(value: &JsValue) -> Result<crate::rules::RuleSet, JsValue> {
    read::rule_set(value).map_err(|p| rules_error(&format!("rules: {p}")))
}

fn experiment_error(message: &str) -> JsValue {
    error("NestrankExperimentError", message)
}

/// An `Experiment` object read field by field (serde's derive for it
/// weighed 7 KB gzipped in the module); the core checks the values.
fn experiment_from_js(value: &JsValue) -> Result<crate::experiment::Experiment, JsValue> {
    use crate::experiment::{Experiment, Order, Variant};
    let variant = |v: &JsValue, at: &str| -> Result<Variant, read::Problem> {
        let order = match read::string(v, at, "order")?.as_deref() {
            None | Some("nestrank") => Order::Nestrank,
            Some("shop") => Order::Shop,
            Some(other) => {
                return Err(format!(
                    "{at}.order: {other:?} is not \"shop\" or \"nestrank\""
                ))
            }
        };
        let rules = read::get(v, "rules");
        Ok(Variant {
            name: read::required(read::string(v, at, "name")?, at, "name")?,
            share: read::required(read::number(v, at, "share")?, at, "share")?,
            order,
            ranker: read::string(v, at, "ranker")?,
            rules: if read::absent(&rules) {
                None
            } else {
                Some(read::rule_set(&rules).map_err(|p| format!("{at}.rules: {p}"))?)
            },
        })
    };
    let experiment = || -> Result<Experiment, read::Problem> {
        Ok(Experiment {
            name: read::required(read::string(value, "", "name")?, "", "name")?,
            variants: read::required(read::list(value, "", "variants", variant)?, "", "variants")?,
        })
    };
    experiment().map_err(|p| experiment_error(&format!("experiment: {p}")))
}

/// An experiment's and its variants' keys: `experiment_from_js` reads only
/// the fields it names, so a typo (`"shares"`) is caught here.
fn check_experiment_keys(value: &JsValue) -> Result<(), JsValue> {
    let (top, variant) = crate::experiment::FIELDS;
    let e = |p: read::Problem| experiment_error(&format!("experiment: {p}"));
    read::object(value, "top level", top).map_err(e)?;
    if let Some(a) = read::get(value, "variants").dyn_ref::<Array>() {
        for (k, v) in a.iter().enumerate() {
            read::object(&v, &format!("variants[{k}]"), variant).map_err(e)?;
        }
    }
    Ok(())
}

#[derive(Default)]
struct SimilarOptions {
    k: Option<u32>,
    kind: Option<String>,
    within: Option<Vec<String>>,
    fill: Option<bool>,
}

/// Signals packed by `packSignals`: joined ids, event codes (255 for an
/// unknown event), times (NaN where not a number).
struct PackedSignals {
    ids: String,
    events: Vec<u8>,
    ts: Vec<f64>,
}

/// Reads `[{item, event, ts}]`: `item` a string, `event` a name or a code,
/// `ts` a number. A signal whose event is unknown or whose time is not a
/// finite number is skipped by the scorer (signals come from storage the
/// page does not control); an element that is not such an object is an error.
fn parse_signals(value: &JsValue) -> Result<PackedSignals, JsValue> {
    if read::absent(value) {
        return Ok(PackedSignals {
            ids: String::new(),
            events: Vec::new(),
            ts: Vec::new(),
        });
    }
    let array = value
        .dyn_ref::<Array>()
        .ok_or_else(|| arg_error("signals must be an array of {item, event, ts}"))?;
    let packed = pack_signals(array);
    if let Some(code) = packed.as_f64() {
        return Err(if code >= 0.0 {
            arg_error(&format!(
                "signals must be an array of {{item: string, event, ts: number}}: signals[{}] is not",
                code as u32
            ))
        } else {
            bad_element("signals.item of signals", code)
        });
    }
    // packSignals made these three (`new Uint8Array(x)` would copy them
    // once more in JS before the copy into wasm).
    let field = |name: &str| Reflect::get(&packed, &name.into());
    let ids = utf8(field("ids")?.unchecked_ref(), "signals")?;
    check_separators(&ids, array, Some("item"), "signals.item of signals")?;
    Ok(PackedSignals {
        ids,
        events: field("events")?.unchecked_ref::<Uint8Array>().to_vec(),
        ts: field("ts")?
            .unchecked_ref::<js_sys::Float64Array>()
            .to_vec(),
    })
}

#[derive(Default)]
struct RerankOptions {
    now: Option<f64>,
    limit: Option<u32>,
    explain: Option<bool>,
}

// Crossing the JS/wasm boundary costs per call, so arrays of strings and
// signal objects are packed on the JS side into one joined string and typed
// arrays: one crossing per argument instead of one per element. The joined
// ids cross as UTF-8 bytes from the engine's own TextEncoder: wasm-bindgen
// would copy a string into wasm one character at a time in JS.
#[wasm_bindgen(inline_js = r#"
const SEP = "\x1f";
const UTF8 = new TextEncoder();
const CODES = { view: 0, fav: 1, cart: 2, purchase: 3 };
export function joinIds(a) {
  for (let i = 0; i < a.length; i++) if (typeof a[i] !== "string") return i;
  return UTF8.encode(a.join(SEP));
}
export function sepIndex(a, field) {
  return a.findIndex((x) => (field ? x[field] : x).includes(SEP));
}
export function packSignals(s) {
  const n = s.length, events = new Uint8Array(n), ts = new Float64Array(n), ids = new Array(n);
  for (let i = 0; i < n; i++) {
    const x = s[i];
    if (x === null || typeof x !== "object" || typeof x.item !== "string") return i;
    ids[i] = x.item;
    const e = x.event;
    events[i] = typeof e === "number" ? (Number.isInteger(e) && e >= 0 && e <= 3 ? e : 255) : (CODES[e] ?? 255);
    ts[i] = typeof x.ts === "number" ? x.ts : NaN;
  }
  return { ids: UTF8.encode(ids.join(SEP)), events, ts };
}
export function pick(a, order) {
  const out = new Array(order.length);
  for (let i = 0; i < order.length; i++) out[i] = a[order[i]];
  return out;
}
export function splitJoined(s, n) {
  return n === 0 ? [] : s.split(SEP);
}
const NAMES = ["view", "fav", "cart", "purchase"];
export function unpackSignals(ids, events, ts) {
  const items = events.length === 0 ? [] : ids.split(SEP), out = new Array(events.length);
  for (let i = 0; i < events.length; i++) out[i] = { item: items[i], event: NAMES[events[i]], ts: ts[i] };
  return out;
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = joinIds)]
    fn join_ids(array: &Array) -> JsValue;
    #[wasm_bindgen(js_name = sepIndex)]
    fn sep_index(array: &Array, field: Option<&str>) -> u32;
    #[wasm_bindgen(js_name = packSignals)]
    fn pack_signals(array: &Array) -> JsValue;
    fn pick(array: &Array, order: &[u32]) -> Array;
    #[wasm_bindgen(js_name = splitJoined)]
    fn split_joined(joined: &str, count: u32) -> Array;
    #[wasm_bindgen(js_name = unpackSignals)]
    fn unpack_signals(ids: &str, events: &[u8], ts: &[f64]) -> Array;
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = warn)]
    fn console_warn(message: &str);
}

const SEP: char = '\u{1f}';

/// Strings as a JS array, in one crossing: joined with [`SEP`] (a `SEP`
/// inside one becomes a space) and split on the JS side.
fn strings_to_js(strings: &[impl AsRef<str>]) -> Array {
    let mut joined = String::new();
    for (k, s) in strings.iter().enumerate() {
        if k > 0 {
            joined.push(SEP);
        }
        joined.extend(s.as_ref().chars().map(|c| if c == SEP { ' ' } else { c }));
    }
    split_joined(&joined, strings.len() as u32)
}

/// The `len` ids of a text joined with [`SEP`]. A byte loop: ids are a
/// few bytes long, and `str::split`'s searcher costs more per id than the
/// bytes it skips (7% of a string rerank in a profile). [`SEP`] is one byte
/// that no other UTF-8 sequence holds, so every cut is a char boundary.
fn split_ids(joined: &str, len: u32) -> Vec<&str> {
    if len == 0 {
        return Vec::new();
    }
    let mut ids = Vec::with_capacity(len as usize);
    let mut start = 0;
    for (k, &b) in joined.as_bytes().iter().enumerate() {
        if b == SEP as u8 {
            ids.push(&joined[start..k]);
            start = k + 1;
        }
    }
    ids.push(&joined[start..]);
    ids
}

/// `code` is what the JS helpers return for a bad element: its index, or
/// `-1 - index` for an id holding the separator.
fn bad_element(what: &str, code: f64) -> JsValue {
    // As integers: formatting an f64 would put float printing in the module.
    if code >= 0.0 {
        arg_error(&format!("{what}[{}] is not a string", code as u32))
    } else {
        arg_error(&format!(
            "{what}[{}] contains U+001F, which item ids may not hold",
            (-1.0 - code) as u32
        ))
    }
}

/// The ids of a JS array of strings, joined (see `split_ids`).
fn joined_ids(value: &JsValue, what: &str) -> Result<(String, u32), JsValue> {
    let array = value
        .dyn_ref::<Array>()
        .ok_or_else(|| arg_error(&format!("{what} must be an array of item id strings")))?;
    let joined = join_ids(array);
    if let Some(bytes) = joined.dyn_ref::<Uint8Array>() {
        let s = utf8(bytes, what)?;
        check_separators(&s, array, None, what)?;
        Ok((s, array.length()))
    } else {
        Err(bad_element(what, joined.as_f64().unwrap_or(0.0)))
    }
}

/// The text of the UTF-8 bytes `joinIds` and `packSignals` encode (valid
/// by construction: a `TextEncoder` writes U+FFFD for a lone surrogate, as
/// wasm-bindgen's own string passing does).
fn utf8(bytes: &Uint8Array, what: &str) -> Result<String, JsValue> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| arg_error(&format!("{what}: the ids did not encode as UTF-8")))
}

/// `joined` holds one [`SEP`] fewer than `array` has elements, unless an
/// element holds one itself: then the error names the first that does
/// (found on the JS side: the common case scans no id twice).
fn check_separators(
    joined: &str,
    array: &Array,
    field: Option<&str>,
    what: &str,
) -> Result<(), JsValue> {
    let n = array.length() as usize;
    if n == 0 || joined.bytes().filter(|&b| b == SEP as u8).count() == n - 1 {
        return Ok(());
    }
    Err(bad_element(what, -1.0 - f64::from(sep_index(array, field))))
}

/// The bytes of a `Uint8Array` or `ArrayBuffer` argument holding a `kind` blob.
fn blob_bytes(value: &JsValue, kind: &str) -> Result<Vec<u8>, JsValue> {
    if let Some(a) = value.dyn_ref::<Uint8Array>() {
        Ok(a.to_vec())
    } else if let Some(b) = value.dyn_ref::<js_sys::ArrayBuffer>() {
        Ok(Uint8Array::new(b).to_vec())
    } else {
        Err(arg_error(&format!(
            "fromBytes expects a Uint8Array or ArrayBuffer holding a {kind} blob"
        )))
    }
}

fn now_or_default(now: Option<f64>) -> f64 {
    now.unwrap_or_else(|| js_sys::Date::now() / 1000.0)
}

/// A loaded model that reranks candidates from local signals.
#[wasm_bindgen]
pub struct Recommender {
    inner: Core,
}

#[wasm_bindgen]
impl Recommender {
    /// Decodes and validates a model blob (`Uint8Array` or `ArrayBuffer`).
    /// Throws an `Error` named `NestrankDecodeError` saying what is wrong.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(
        #[wasm_bindgen(unchecked_param_type = "Uint8Array | ArrayBuffer")] bytes: &JsValue,
    ) -> Result<Recommender, JsValue> {
        let data = blob_bytes(bytes, "model")?;
        Core::from_bytes(&data)
            .map(|inner| Recommender { inner })
            .map_err(|e| error("NestrankDecodeError", &format!("invalid model blob: {e}")))
    }

    /// The model id (16 hex digits).
    #[wasm_bindgen(getter, js_name = modelId)]
    pub fn model_id(&self) -> String {
        self.inner.model().model_id()
    }

    /// The blob's format version.
    #[wasm_bindgen(getter, js_name = formatVersion)]
    pub fn format_version(&self) -> u16 {
        self.inner.model().header().version
    }

    /// The number of items the model knows.
    #[wasm_bindgen(getter, js_name = itemCount)]
    pub fn item_count(&self) -> u32 {
        self.inner.model().item_count() as u32
    }

    /// The model's as-of date, `YYYY-MM-DD`.
    #[wasm_bindgen(getter, js_name = asOf)]
    pub fn as_of(&self) -> String {
        format_date(self.inner.model().header().as_of_day)
    }

    /// Reranks `candidateIds` (string ids) for `signals` (`[{item, event, ts}]`,
    /// `event` one of `view`, `fav`, `cart`, `purchase` or its code 0..3, `ts`
    /// Unix seconds). `options`: `{now, limit, explain}`. Returns
    /// `{items, scores, reasons}`. Unknown ids are tolerated; a signal with an
    /// unknown event or a non-finite time is ignored.
    #[wasm_bindgen(unchecked_return_type = "RerankResult")]
    pub fn rerank(
        &mut self,
        #[wasm_bindgen(js_name = candidateIds, unchecked_param_type = "string[]")]
        candidate_ids: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "Signal[] | undefined")] signals: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "RerankOptions | undefined")] options: &JsValue,
    ) -> Result<JsValue, JsValue> {
        let (joined, count) = joined_ids(candidate_ids, "candidateIds")?;
        let cand = split_ids(&joined, count);
        let packed = parse_signals(signals)?;
        let options: RerankOptions = parse_options(
            options,
            "{now?: number, limit?: number, explain?: boolean}",
            None,
            |o| {
                Ok(RerankOptions {
                    now: read::number(o, "", "now")?,
                    limit: read::whole(o, "", "limit")?,
                    explain: read::boolean(o, "", "explain")?,
                })
            },
        )?;
        let now = now_or_default(options.now);
        let sig_ids = split_ids(&packed.ids, packed.events.len() as u32);
        let sig: Vec<(&str, u8, f64)> = sig_ids
            .into_iter()
            .zip(packed.events.iter().zip(&packed.ts))
            .map(|(item, (&event, &ts))| (item, event, ts))
            .collect();
        let explain = options.explain.unwrap_or(true);
        self.inner
            .rerank_id_positions(&cand, &sig, now, explain)
            .map_err(|e| arg_error(&e.to_string()))?;
        let ranking = self.inner.last_ranking();
        let shown = options.limit.map_or(ranking.order.len(), |l| {
            (l as usize).min(ranking.order.len())
        });
        // The ids go back as the very JS strings given, reordered in JS:
        // no string conversion on the way out.
        let items = pick(
            candidate_ids.unchecked_ref::<Array>(),
            &ranking.order[..shown],
        );
        // A dozen distinct reasons for 500 items: each text crosses once,
        // and JS indexes the short tables by the codes.
        let ex = self.inner.explanations(&sig, now, shown);
        let reasons = pick(&strings_to_js(&ex.texts), &ex.codes);
        let because = pick(&strings_to_js(&ex.because), &ex.codes);
        let result = Object::new();
        Reflect::set(&result, &"items".into(), &items)?;
        Reflect::set(
            &result,
            &"scores".into(),
            &Float32Array::from(&ranking.scores[..shown]),
        )?;
        Reflect::set(&result, &"reasons".into(), &reasons)?;
        Reflect::set(&result, &"because".into(), &because)?;
        if explain {
            // What a shop logs with each outcome: 1, or 1 / pool for an
            // item an exploration slot drew.
            let propensities: Vec<f32> = (0..shown)
                .map(|k| ranking.rules.get(k).map_or(1.0, |n| n.propensity()))
                .collect();
            Reflect::set(
                &result,
                &"propensities".into(),
                &Float32Array::from(&propensities[..]),
            )?;
        }
        Reflect::set(
            &result,
            &"signalsUsed".into(),
            &(ranking.signals_used as f64).into(),
        )?;
        Ok(result.into())
    }

    /// The model index of each id (`0xFFFFFFFF` where unknown), for the typed path.
    #[wasm_bindgen(js_name = indexOf)]
    pub fn index_of(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string[]")] ids: &JsValue,
    ) -> Result<Uint32Array, JsValue> {
        let (joined, count) = joined_ids(ids, "ids")?;
        let refs = split_ids(&joined, count);
        Ok(Uint32Array::from(self.inner.index_of(&refs).as_slice()))
    }

    /// The typed hot path. `candidates`: model indices; `sigItems`,
    /// `sigEvents` (0 view, 1 fav, 2 cart, 3 purchase), `sigTs` (Unix
    /// seconds): parallel arrays; `now`: Unix seconds. Returns positions into
    /// `candidates`, best first.
    #[wasm_bindgen(js_name = rerankIndices)]
    pub fn rerank_indices(
        &mut self,
        candidates: &[u32],
        #[wasm_bindgen(js_name = sigItems)] sig_items: &[u32],
        #[wasm_bindgen(js_name = sigEvents)] sig_events: &[u8],
        #[wasm_bindgen(js_name = sigTs)] sig_ts: &[f64],
        now: f64,
    ) -> Result<Vec<u32>, JsValue> {
        let signals = Signals::new(sig_items, sig_events, sig_ts).ok_or_else(|| {
            arg_error(&format!(
                "sigItems, sigEvents and sigTs must have equal lengths (got {}, {}, {})",
                sig_items.len(),
                sig_events.len(),
                sig_ts.len()
            ))
        })?;
        self.inner
            .rerank_indices(candidates, signals, now, false)
            .map(|r| r.order.clone())
            .map_err(|e| arg_error(&e.to_string()))
    }

    /// Uses this family's profile (a `Profile`) in the reranks that follow:
    /// the stage fit at the baby's age today, the gender and brand
    /// features, and its nightly embedding as the fold-in's prior.
    /// `clearProfile()` stops. Returns a warning (also sent to the console)
    /// when the profile's embedding was built for another model and is
    /// ignored; otherwise undefined.
    #[wasm_bindgen(js_name = setProfile)]
    pub fn set_profile(&mut self, profile: &JsProfile) -> Option<String> {
        self.inner.set_profile(Some(profile.inner.clone()));
        let warning = self.inner.embedding_warning()?;
        console_warn(&format!("nestrank: {warning}"));
        Some(warning)
    }

    /// Whether the profile set now carries an embedding this model uses
    /// (so a visitor with no local signal still gets a personal order).
    #[wasm_bindgen(getter, js_name = usesEmbedding)]
    pub fn uses_embedding(&self) -> bool {
        self.inner.uses_embedding()
    }

    /// Replaces the blob's business rules (a `RuleSet` object or its JSON
    /// text) until the next call; `null` goes back to the blob's. A bad rule
    /// set is a `NestrankRulesError` naming the rule, and the rules in force
    /// stay as they were.
    #[wasm_bindgen(js_name = setRules)]
    pub fn set_rules(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "RuleSet | string | null")] rules: &JsValue,
    ) -> Result<(), JsValue> {
        let rules = if read::absent(rules) {
            None
        } else {
            let value = match rules.as_string() {
                Some(text) => js_sys::JSON::parse(&text)
                    .map_err(|_| rules_error("rules: the text is not JSON"))?,
                None => rules.clone(),
            };
            Some(rules_from_js(&value)?)
        };
        self.inner
            .set_rules(rules)
            .map_err(|e| rules_error(&e.to_string()))
    }

    /// Runs an experiment (an `Experiment` object or its JSON text) from
    /// the next rerank on; `null` ends it. A malformed one is a
    /// `NestrankExperimentError` naming the field, and the experiment in
    /// force stays.
    #[wasm_bindgen(js_name = setExperiment)]
    pub fn set_experiment(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Experiment | string | null")] experiment: &JsValue,
    ) -> Result<(), JsValue> {
        let experiment = if read::absent(experiment) {
            None
        } else {
            let value = match experiment.as_string() {
                Some(text) => js_sys::JSON::parse(&text)
                    .map_err(|_| experiment_error("experiment: the text is not JSON"))?,
                None => experiment.clone(),
            };
            check_experiment_keys(&value)?;
            Some(experiment_from_js(&value)?)
        };
        self.inner
            .set_experiment(experiment)
            .map_err(|e| experiment_error(&e.to_string()))
    }

    /// The visitor the following reranks are for (a random first-party
    /// id the page keeps). Returns its variant's name, or undefined when no
    /// experiment runs.
    #[wasm_bindgen(js_name = setVisitor)]
    pub fn set_visitor(&mut self, visitor: &str) -> Option<String> {
        self.inner.set_visitor(visitor).map(str::to_string)
    }

    /// The set visitor's variant (tag shown pages and reported events with
    /// it), or undefined.
    #[wasm_bindgen(getter)]
    pub fn variant(&self) -> Option<String> {
        self.inner.variant().map(str::to_string)
    }

    /// Whose order the visitor's variant shows: `"shop"` (a control: the
    /// candidates come back as given, less sold-out ones) or `"nestrank"`; undefined with no
    /// variant.
    #[wasm_bindgen(getter, js_name = variantOrder, unchecked_return_type = "\"shop\" | \"nestrank\" | undefined")]
    pub fn variant_order(&self) -> Option<String> {
        self.inner.variant_order().map(|o| {
            match o {
                crate::experiment::Order::Shop => "shop",
                crate::experiment::Order::Nestrank => "nestrank",
            }
            .to_string()
        })
    }

    /// The rules in force, as a `RuleSet` object.
    #[wasm_bindgen(getter, unchecked_return_type = "RuleSet")]
    pub fn rules(&self) -> Result<JsValue, JsValue> {
        read::rule_set_to_js(self.inner.rules())
    }

    /// Items sold out right now: they leave every page and neighbour list
    /// until the next call (`[]` clears).
    #[wasm_bindgen(js_name = setSoldOut)]
    pub fn set_sold_out(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string[]")] ids: &JsValue,
    ) -> Result<(), JsValue> {
        let (joined, count) = joined_ids(ids, "ids")?;
        let refs = split_ids(&joined, count);
        self.inner
            .set_sold_out(&refs)
            .map_err(|e| rules_error(&e.to_string()))
    }

    /// The key that seeds the exploration slots' draw (an anonymous device
    /// id): the same key sees the same page all day.
    #[wasm_bindgen(js_name = setUserKey)]
    pub fn set_user_key(&mut self, key: &str) {
        self.inner.set_user_key(key);
    }

    /// Item-to-item: the neighbours of `itemId`, strongest first (`options`:
    /// `{k, kind, within}`). An unknown id has none; sold-out and filtered
    /// items never show.
    #[wasm_bindgen(unchecked_return_type = "SimilarResult")]
    pub fn similar(
        &self,
        #[wasm_bindgen(js_name = itemId, unchecked_param_type = "string")] item_id: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "SimilarOptions | undefined")] options: &JsValue,
    ) -> Result<JsValue, JsValue> {
        let id = item_id
            .as_string()
            .ok_or_else(|| arg_error("itemId must be a string"))?;
        let options: SimilarOptions = parse_options(
            options,
            "{k?: number, kind?: \"similar\" | \"complement\", within?: string[], fill?: boolean}",
            Some(&["k", "kind", "within", "fill"]),
            |o| {
                Ok(SimilarOptions {
                    k: read::whole(o, "", "k")?,
                    kind: read::string(o, "", "kind")?,
                    within: read::list(o, "", "within", read::string_at)?,
                    fill: read::boolean(o, "", "fill")?,
                })
            },
        )?;
        let kind = match options.kind.as_deref() {
            None | Some("similar") => crate::recommender::NeighbourKind::Similar,
            Some("complement") => crate::recommender::NeighbourKind::Complement,
            Some(other) => {
                return Err(arg_error(&format!(
                    "options.kind {other:?} must be \"similar\" or \"complement\""
                )))
            }
        };
        let within: Option<Vec<&str>> = options
            .within
            .as_ref()
            .map(|v| v.iter().map(String::as_str).collect());
        let k = options.k.unwrap_or(10) as usize;
        let fill = options.fill.unwrap_or(true);
        let found = self.inner.similar(&id, kind, k, within.as_deref(), fill);
        let model = self.inner.model();
        let items = Array::new();
        let (reasons, links) = (Array::new(), Array::new());
        for n in &found {
            items.push(&model.id_of(n.index).into());
            reasons.push(&n.reason(model, &id, kind).into());
            links.push(&n.link(kind).into());
        }
        let scores: Vec<f32> = found.iter().map(|n| n.score).collect();
        let result = Object::new();
        Reflect::set(&result, &"items".into(), &items)?;
        Reflect::set(&result, &"scores".into(), &Float32Array::from(&scores[..]))?;
        Reflect::set(&result, &"reasons".into(), &reasons)?;
        Reflect::set(&result, &"links".into(), &links)?;
        Ok(result.into())
    }

    /// Reranks without a profile again.
    #[wasm_bindgen(js_name = clearProfile)]
    pub fn clear_profile(&mut self) {
        self.inner.set_profile(None);
    }

    /// The scores of the last rerank, in display order.
    #[wasm_bindgen(js_name = lastScores)]
    pub fn last_scores(&self) -> Float32Array {
        Float32Array::from(self.inner.last_ranking().scores.as_slice())
    }
}

/// Encodes signals (`[{item, event, ts}]`) into the compact, versioned,
/// cookie-safe text of the core's codec (see FORMAT.md), keeping the newest
/// 1,024 and, with `maxChars`, the newest that fit. Throws
/// `NestrankArgumentError` naming the bad signal.
#[wasm_bindgen(js_name = encodeSignals)]
pub fn encode_signals(
    #[wasm_bindgen(unchecked_param_type = "Signal[]")] signals: &JsValue,
    #[wasm_bindgen(js_name = maxChars)] max_chars: Option<u32>,
) -> Result<String, JsValue> {
    let packed = parse_signals(signals)?;
    let ids = split_ids(&packed.ids, packed.events.len() as u32);
    let mut owned = Vec::with_capacity(ids.len());
    for (k, (item, (&event, &ts))) in ids
        .into_iter()
        .zip(packed.events.iter().zip(&packed.ts))
        .enumerate()
    {
        let event = Event::from_code(event).ok_or_else(|| {
            arg_error(&format!(
                "signals[{k}].event must be view, fav, cart, purchase or 0..3"
            ))
        })?;
        if !ts.is_finite() {
            return Err(arg_error(&format!(
                "signals[{k}].ts must be a finite number of Unix seconds"
            )));
        }
        owned.push(OwnedSignal {
            item: item.to_string(),
            event,
            ts: ts.floor().clamp(-1.0, codec::MAX_TS as f64 + 1.0) as i64,
        });
    }
    codec::encode(&owned, max_chars.map(|m| m as usize))
        .map_err(|e| arg_error(&format!("cannot encode signals: {e}")))
}

/// Decodes a text written by `encodeSignals`: `[{item, event, ts}]`, oldest
/// first, `event` by name. Throws `NestrankSignalsError` naming what is wrong
/// (truncated, altered, another version, ...).
#[wasm_bindgen(js_name = decodeSignals, unchecked_return_type = "DecodedSignal[]")]
pub fn decode_signals(
    #[wasm_bindgen(unchecked_param_type = "string")] text: &JsValue,
) -> Result<Array, JsValue> {
    let text = text
        .as_string()
        .ok_or_else(|| arg_error("decodeSignals expects a string"))?;
    let signals = codec::decode(&text).map_err(|e| {
        error(
            "NestrankSignalsError",
            &format!("invalid signals text: {e}"),
        )
    })?;
    let mut ids = String::new();
    for (k, s) in signals.iter().enumerate() {
        if k > 0 {
            ids.push(SEP);
        }
        ids.push_str(&s.item);
    }
    let events: Vec<u8> = signals.iter().map(|s| s.event as u8).collect();
    let ts: Vec<f64> = signals.iter().map(|s| s.ts as f64).collect();
    Ok(unpack_signals(&ids, &events, &ts))
}

/// One shard of the edge's table of nightly profiles (FORMAT.md, kind 3),
/// written by `model-builder users`. A family's key is HMAC-SHA256 of its
/// user id under the table's salt (`index.json`): the worker computes it
/// with WebCrypto, picks the shard with `UserTable.shardOf`, and looks the
/// family up without a scan.
#[wasm_bindgen(js_name = UserTable)]
pub struct JsUserTable {
    inner: crate::usertable::UserTable,
}

fn mac_key(mac: &[u8]) -> Result<u64, JsValue> {
    crate::usertable::key_from_mac(mac).ok_or_else(|| {
        arg_error("the key must be the HMAC-SHA256 of the user id: at least 8 bytes")
    })
}

#[wasm_bindgen(js_class = UserTable)]
impl JsUserTable {
    /// Decodes and checks a shard; throws `NestrankDecodeError`.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(
        #[wasm_bindgen(unchecked_param_type = "Uint8Array | ArrayBuffer")] bytes: &JsValue,
    ) -> Result<JsUserTable, JsValue> {
        let data = blob_bytes(bytes, "user-table")?;
        crate::usertable::UserTable::from_bytes(&data)
            .map(|inner| JsUserTable { inner })
            .map_err(|e| {
                error(
                    "NestrankDecodeError",
                    &format!("invalid user-table shard: {e}"),
                )
            })
    }

    /// The shard holding the key `mac` (the HMAC-SHA256 bytes) in a table
    /// of `shards` shards.
    #[wasm_bindgen(js_name = shardOf)]
    pub fn shard_of(mac: &[u8], shards: u32) -> Result<u32, JsValue> {
        Ok(crate::usertable::shard_of(mac_key(mac)?, shards))
    }

    /// This shard's number.
    #[wasm_bindgen(getter)]
    pub fn shard(&self) -> u32 {
        self.inner.shard().0
    }

    /// How many families it holds.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> u32 {
        self.inner.len() as u32
    }

    /// The family's profile under the key `mac`, or undefined; a record
    /// that is not a valid profile blob throws `NestrankDecodeError`.
    pub fn lookup(&self, mac: &[u8]) -> Result<Option<JsProfile>, JsValue> {
        match self.inner.lookup(mac_key(mac)?) {
            None => Ok(None),
            Some(Ok(inner)) => Ok(Some(JsProfile { inner })),
            Some(Err(e)) => Err(error(
                "NestrankDecodeError",
                &format!("invalid profile record: {e}"),
            )),
        }
    }
}

/// A family's profile: birthday or due date and gender (kept on the
/// device), plus the affinities a profile blob from the builder carries.
/// The stage is computed from `now`, so it advances by itself.
#[wasm_bindgen(js_name = Profile)]
pub struct JsProfile {
    inner: crate::profile::Profile,
}

fn now_arg(now: Option<f64>) -> Result<f64, JsValue> {
    let now = now_or_default(now);
    if now.is_finite() {
        Ok(now)
    } else {
        Err(arg_error("`now` must be a finite number of Unix seconds"))
    }
}

#[wasm_bindgen(js_class = Profile)]
impl JsProfile {
    /// A profile from a birthday or due date (`YYYY-MM-DD`: at most 300
    /// days ahead, 12 years ago) and a gender (`girl`, `boy`, `unknown` or
    /// empty). Throws `NestrankArgumentError` saying what is wrong.
    #[wasm_bindgen(js_name = fromBirthday)]
    pub fn from_birthday(
        #[wasm_bindgen(unchecked_param_type = "string")] birthday: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "string | undefined")] gender: &JsValue,
        now: Option<f64>,
    ) -> Result<JsProfile, JsValue> {
        let birthday = birthday
            .as_string()
            .ok_or_else(|| arg_error("birthday must be a string YYYY-MM-DD"))?;
        let gender = if read::absent(gender) {
            String::new()
        } else {
            gender
                .as_string()
                .ok_or_else(|| arg_error("gender must be a string: girl, boy or unknown"))?
        };
        crate::profile::Profile::from_birthday(&birthday, &gender, now_arg(now)?)
            .map(|inner| JsProfile { inner })
            .map_err(|e| arg_error(&e.to_string()))
    }

    /// Decodes a profile blob; throws `NestrankDecodeError`.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(
        #[wasm_bindgen(unchecked_param_type = "Uint8Array | ArrayBuffer")] bytes: &JsValue,
    ) -> Result<JsProfile, JsValue> {
        let data = blob_bytes(bytes, "profile")?;
        crate::profile::Profile::from_bytes(&data)
            .map(|inner| JsProfile { inner })
            .map_err(|e| error("NestrankDecodeError", &format!("invalid profile blob: {e}")))
    }

    /// The profile as a blob (what `fromBytes` reads).
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.to_bytes()
    }

    /// The model id (16 hex digits) the profile's nightly embedding was
    /// built for, or undefined when it has none.
    #[wasm_bindgen(getter, js_name = embeddingModelId)]
    pub fn embedding_model_id(&self) -> Option<String> {
        let e = self.inner.embedding.as_ref()?;
        Some(format!("{:016x}", e.model_id))
    }

    /// The birthday or due date, `YYYY-MM-DD`, or undefined.
    #[wasm_bindgen(getter)]
    pub fn birthday(&self) -> Option<String> {
        self.inner.birth_day.map(format_date)
    }

    /// `girl`, `boy` or `unknown`.
    #[wasm_bindgen(getter)]
    pub fn gender(&self) -> String {
        self.inner.gender.name().to_string()
    }

    /// The stage at `now` (default: the clock): `{kind: "pregnancy",
    /// trimester, weeksToGo}` or `{kind: "baby", months, days}`; null
    /// without a birthday.
    #[wasm_bindgen(js_name = stageAt, unchecked_return_type = "ProfileStage | null")]
    pub fn stage_at(&self, now: Option<f64>) -> Result<JsValue, JsValue> {
        let o = Object::new();
        match self.inner.stage_at(now_arg(now)?) {
            None => return Ok(JsValue::NULL),
            Some(crate::profile::Stage::Pregnancy {
                trimester,
                weeks_to_go,
            }) => {
                Reflect::set(&o, &"kind".into(), &"pregnancy".into())?;
                Reflect::set(&o, &"trimester".into(), &trimester.into())?;
                Reflect::set(&o, &"weeksToGo".into(), &weeks_to_go.into())?;
            }
            Some(crate::profile::Stage::Baby { months, days }) => {
                Reflect::set(&o, &"kind".into(), &"baby".into())?;
                Reflect::set(&o, &"months".into(), &months.into())?;
                Reflect::set(&o, &"days".into(), &days.into())?;
            }
        }
        Ok(o.into())
    }

    /// Age in months at `now` (negative before the birth), or undefined.
    #[wasm_bindgen(js_name = ageMonthsAt)]
    pub fn age_months_at(&self, now: Option<f64>) -> Result<Option<f64>, JsValue> {
        Ok(self.inner.age_months_at(now_arg(now)?))
    }

    /// The family's affinity for a brand, 0..1.
    #[wasm_bindgen(js_name = brandWeight)]
    pub fn brand_weight(&self, brand: &str) -> f32 {
        self.inner.brand_weight(brand)
    }

    /// The family's affinity for a category, 0..1.
    #[wasm_bindgen(js_name = categoryWeight)]
    pub fn category_weight(&self, category: &str) -> f32 {
        self.inner.category_weight(category)
    }

    /// The price band `[low, high]` the family buys in (`[0, 0]`: unknown).
    #[wasm_bindgen(getter, js_name = priceBand)]
    pub fn price_band(&self) -> Vec<f32> {
        vec![
            self.inner.affinities.price_low,
            self.inner.affinities.price_high,
        ]
    }
}
