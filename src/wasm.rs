//! The JavaScript API: a thin conversion layer over [`crate::Recommender`].
//!
//! Every failure becomes a JS `Error` whose `name` says its kind
//! (`NestrankDecodeError` for a bad blob, `NestrankArgumentError` for bad
//! arguments) and whose message names the problem; nothing here panics on
//! input.

use crate::recommender::Recommender as Core;
use crate::signals::{Event, Signals};
use crate::util::format_date;
use js_sys::{Array, Float32Array, Object, Reflect, Uint32Array, Uint8Array};
use serde::Deserialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** A browsing event: a name, or its code (0 view, 1 fav, 2 cart, 3 purchase). */
export type NestrankEvent = "view" | "fav" | "cart" | "purchase" | 0 | 1 | 2 | 3;
/** One local signal: what the user did to which item, when (Unix seconds). */
export interface Signal { item: string; event: NestrankEvent; ts: number; }
/** Options of `rerank`: `now` in Unix seconds (default: the clock), `limit` items to return, `explain` reasons (default true). */
export interface RerankOptions { now?: number; limit?: number; explain?: boolean; }
/** The reranked candidates, best first, with a score and a short reason each. */
export interface RerankResult { items: string[]; scores: Float32Array; reasons: string[]; }
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

/// A signal as JS gives it: `{item, event, ts}`; `event` a name or a code.
#[derive(Deserialize)]
struct JsSignal {
    item: String,
    event: JsEvent,
    ts: f64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsEvent {
    Code(u8),
    Name(String),
}

impl JsEvent {
    fn event(&self) -> Option<Event> {
        match self {
            JsEvent::Code(c) => Event::from_code(*c),
            JsEvent::Name(n) => Event::from_name(n),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RerankOptions {
    now: Option<f64>,
    limit: Option<u32>,
    explain: Option<bool>,
}

fn string_array(value: &JsValue, what: &str) -> Result<Vec<String>, JsValue> {
    let array = value
        .dyn_ref::<Array>()
        .ok_or_else(|| arg_error(&format!("{what} must be an array of item id strings")))?;
    array
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_string()
                .ok_or_else(|| arg_error(&format!("{what}[{i}] is not a string")))
        })
        .collect()
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
        let data = if let Some(a) = bytes.dyn_ref::<Uint8Array>() {
            a.to_vec()
        } else if let Some(b) = bytes.dyn_ref::<js_sys::ArrayBuffer>() {
            Uint8Array::new(b).to_vec()
        } else {
            return Err(arg_error(
                "fromBytes expects a Uint8Array or ArrayBuffer holding a model blob",
            ));
        };
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
        let candidates = string_array(candidate_ids, "candidateIds")?;
        let signals: Vec<JsSignal> = if signals.is_undefined() || signals.is_null() {
            Vec::new()
        } else if Array::is_array(signals) {
            serde_wasm_bindgen::from_value(signals.clone()).map_err(|e| {
                arg_error(&format!(
                    "signals must be an array of {{item: string, event, ts: number}}: {e}"
                ))
            })?
        } else {
            return Err(arg_error("signals must be an array of {item, event, ts}"));
        };
        let options: RerankOptions = if options.is_undefined() || options.is_null() {
            RerankOptions::default()
        } else {
            serde_wasm_bindgen::from_value(options.clone()).map_err(|e| {
                arg_error(&format!(
                    "options must be {{now?: number, limit?: number, explain?: boolean}}: {e}"
                ))
            })?
        };
        let now = now_or_default(options.now);
        let cand: Vec<&str> = candidates.iter().map(String::as_str).collect();
        let sig: Vec<(&str, Event, f64)> = signals
            .iter()
            .filter_map(|s| s.event.event().map(|e| (s.item.as_str(), e, s.ts)))
            .collect();
        let explain = options.explain.unwrap_or(true);
        let mut out = self
            .inner
            .rerank_ids(&cand, &sig, now, explain)
            .map_err(|e| arg_error(&e.to_string()))?;
        if let Some(limit) = options.limit {
            let limit = limit as usize;
            out.items.truncate(limit);
            out.scores.truncate(limit);
            out.reasons.truncate(limit);
        }
        let result = Object::new();
        let items: Array = out.items.iter().map(|s| JsValue::from_str(s)).collect();
        let reasons: Array = out.reasons.iter().map(|s| JsValue::from_str(s)).collect();
        Reflect::set(&result, &"items".into(), &items)?;
        Reflect::set(
            &result,
            &"scores".into(),
            &Float32Array::from(out.scores.as_slice()),
        )?;
        Reflect::set(&result, &"reasons".into(), &reasons)?;
        Ok(result.into())
    }

    /// The model index of each id (`0xFFFFFFFF` where unknown), for the typed path.
    #[wasm_bindgen(js_name = indexOf)]
    pub fn index_of(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string[]")] ids: &JsValue,
    ) -> Result<Uint32Array, JsValue> {
        let ids = string_array(ids, "ids")?;
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
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

    /// The scores of the last rerank, in display order.
    #[wasm_bindgen(js_name = lastScores)]
    pub fn last_scores(&self) -> Float32Array {
        Float32Array::from(self.inner.last_ranking().scores.as_slice())
    }
}
