//! Plain JS values read field by field: the rule set and the options
//! objects. serde-wasm-bindgen did this before; its visitors and the float
//! formatting its error messages need weighed about 13 KB gzipped in the
//! module (docs/figures.md). Every error names the value's place
//! (`boosts[0].times`) and what it must be; the core checks the values.

use crate::ruleset::{Boost, Diversity, Explore, Pin, RuleSet, FIELDS};
use js_sys::{Array, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

/// A problem with a value, named by its place.
pub(super) type Problem = String;

/// `o[k]`, or undefined.
pub(super) fn get(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &k.into()).unwrap_or(JsValue::UNDEFINED)
}

/// Undefined or null: a field left out.
pub(super) fn absent(v: &JsValue) -> bool {
    v.is_undefined() || v.is_null()
}

/// Names written as a list: `["a", "b"]` (the names are plain words).
fn name_list(names: &[&str]) -> String {
    let mut s = String::from("[");
    for (k, n) in names.iter().enumerate() {
        if k > 0 {
            s.push_str(", ");
        }
        s.push('"');
        s.push_str(n);
        s.push('"');
    }
    s.push(']');
    s
}

/// Checks that `v` is a plain object (not an array or a function); `at`
/// names it (`"top level"`, `"boosts[0]"`).
pub(super) fn plain_object<'v>(v: &'v JsValue, at: &str) -> Result<&'v Object, Problem> {
    match v.dyn_ref::<Object>() {
        Some(o) if !Array::is_array(v) && !v.is_function() => Ok(o),
        _ => Err(format!("{at}: must be an object")),
    }
}

/// [`plain_object`], holding only `allowed` keys.
pub(super) fn object(v: &JsValue, at: &str, allowed: &[&str]) -> Result<(), Problem> {
    let o = plain_object(v, at)?;
    match Object::keys(o)
        .iter()
        .map(|k| k.as_string().unwrap_or_default())
        .find(|k| !allowed.contains(&k.as_str()))
    {
        Some(k) => Err(format!(
            "{at}: unknown field `{k}`, expected one of {}",
            name_list(allowed)
        )),
        None => Ok(()),
    }
}

/// The place of field `k` of the value at `at` (`at` empty: the top).
fn place(at: &str, k: &str) -> String {
    if at.is_empty() {
        k.to_string()
    } else {
        format!("{at}.{k}")
    }
}

/// What a whole-number field must be.
const WHOLE: &str = "a whole number from 0 to 4294967295";

fn whole_of(v: &JsValue) -> Option<u32> {
    v.as_f64()
        .filter(|x| *x >= 0.0 && *x <= f64::from(u32::MAX) && x.fract() == 0.0)
        .map(|x| x as u32)
}

/// An optional field `k`, converted by `convert` (`None`: it must be `what`).
fn field<T>(
    o: &JsValue,
    at: &str,
    k: &str,
    what: &str,
    convert: impl FnOnce(&JsValue) -> Option<T>,
) -> Result<Option<T>, Problem> {
    let v = get(o, k);
    if absent(&v) {
        return Ok(None);
    }
    element(&v, &place(at, k), what, convert).map(Some)
}

/// A value at `at`, converted by `convert` (`None`: it must be `what`).
fn element<T>(
    v: &JsValue,
    at: &str,
    what: &str,
    convert: impl FnOnce(&JsValue) -> Option<T>,
) -> Result<T, Problem> {
    convert(v).ok_or_else(|| format!("{at} must be {what}"))
}

/// An optional string field.
pub(super) fn string(o: &JsValue, at: &str, k: &str) -> Result<Option<String>, Problem> {
    field(o, at, k, "a string", JsValue::as_string)
}

/// An optional whole number in `0..=u32::MAX`.
pub(super) fn whole(o: &JsValue, at: &str, k: &str) -> Result<Option<u32>, Problem> {
    field(o, at, k, WHOLE, whole_of)
}

/// An optional number (any, NaN included: the caller checks its range).
pub(super) fn number(o: &JsValue, at: &str, k: &str) -> Result<Option<f64>, Problem> {
    field(o, at, k, "a number", JsValue::as_f64)
}

/// An optional boolean.
pub(super) fn boolean(o: &JsValue, at: &str, k: &str) -> Result<Option<bool>, Problem> {
    field(o, at, k, "true or false", JsValue::as_bool)
}

/// An optional array, each element read by `each` with its place
/// (`boosts[3]`).
pub(super) fn list<T>(
    o: &JsValue,
    at: &str,
    k: &str,
    mut each: impl FnMut(&JsValue, &str) -> Result<T, Problem>,
) -> Result<Option<Vec<T>>, Problem> {
    let v = get(o, k);
    if absent(&v) {
        return Ok(None);
    }
    let here = place(at, k);
    let a = v
        .dyn_ref::<Array>()
        .ok_or_else(|| format!("{here} must be an array"))?;
    let mut out = Vec::with_capacity(a.length() as usize);
    for (i, x) in a.iter().enumerate() {
        out.push(each(&x, &format!("{here}[{i}]"))?);
    }
    Ok(Some(out))
}

/// A string array element.
pub(super) fn string_at(v: &JsValue, at: &str) -> Result<String, Problem> {
    element(v, at, "a string", JsValue::as_string)
}

/// A whole-number array element.
fn whole_at(v: &JsValue, at: &str) -> Result<u32, Problem> {
    element(v, at, WHOLE, whole_of)
}

/// A field that must be there.
pub(super) fn required<T>(v: Option<T>, at: &str, k: &str) -> Result<T, Problem> {
    v.ok_or_else(|| format!("{} is missing", place(at, k)))
}

/// A rule set (README "Business rules"): every field optional, an
/// unknown one an error, as in the JSON the builder reads.
pub(super) fn rule_set(v: &JsValue) -> Result<RuleSet, Problem> {
    let [(_, top), (_, pin), (_, boost), (_, diversity), (_, explore)] = FIELDS;
    object(v, "top level", top)?;
    let pins = list(v, "", "pins", |x, at| {
        object(x, at, pin)?;
        Ok(Pin {
            item: required(string(x, at, "item")?, at, "item")?,
            slot: required(whole(x, at, "slot")?, at, "slot")?,
        })
    })?;
    let boosts = list(v, "", "boosts", |x, at| {
        object(x, at, boost)?;
        Ok(Boost {
            item: string(x, at, "item")?,
            brand: string(x, at, "brand")?,
            category: string(x, at, "category")?,
            times: number(x, at, "times")?.map(|t| t as f32),
            add: number(x, at, "add")?.map(|a| a as f32),
        })
    })?;
    let diversities = list(v, "", "diversity", |x, at| {
        object(x, at, diversity)?;
        Ok(Diversity {
            by: required(string(x, at, "by")?, at, "by")?,
            max: required(whole(x, at, "max")?, at, "max")?,
            window: required(whole(x, at, "window")?, at, "window")?,
        })
    })?;
    let e = get(v, "explore");
    let explore = if absent(&e) {
        None
    } else {
        object(&e, "explore", explore)?;
        Some(Explore {
            slots: required(list(&e, "explore", "slots", whole_at)?, "explore", "slots")?,
        })
    };
    Ok(RuleSet {
        pins: pins.unwrap_or_default(),
        boosts: boosts.unwrap_or_default(),
        filter: list(v, "", "filter", string_at)?.unwrap_or_default(),
        diversity: diversities.unwrap_or_default(),
        explore,
    })
}

/// A rule set as a plain object, the fields left out as the JSON leaves
/// them out (`rules` reads back what `setRules` took).
pub(super) fn rule_set_to_js(r: &RuleSet) -> Result<JsValue, JsValue> {
    fn object_of(fields: &[(&str, JsValue)]) -> Result<JsValue, JsValue> {
        let o = Object::new();
        for (k, v) in fields {
            if !v.is_undefined() {
                Reflect::set(&o, &(*k).into(), v)?;
            }
        }
        Ok(o.into())
    }
    let opt_str = |s: &Option<String>| s.as_deref().map_or(JsValue::UNDEFINED, JsValue::from);
    let opt_num = |x: Option<f32>| x.map_or(JsValue::UNDEFINED, |x| f64::from(x).into());
    let array = |items: Vec<JsValue>| items.into_iter().collect::<Array>().into();
    let mut pins = Vec::with_capacity(r.pins.len());
    for p in &r.pins {
        pins.push(object_of(&[
            ("item", p.item.as_str().into()),
            ("slot", p.slot.into()),
        ])?);
    }
    let mut boosts = Vec::with_capacity(r.boosts.len());
    for b in &r.boosts {
        boosts.push(object_of(&[
            ("item", opt_str(&b.item)),
            ("brand", opt_str(&b.brand)),
            ("category", opt_str(&b.category)),
            ("times", opt_num(b.times)),
            ("add", opt_num(b.add)),
        ])?);
    }
    let mut diversity = Vec::with_capacity(r.diversity.len());
    for d in &r.diversity {
        diversity.push(object_of(&[
            ("by", d.by.as_str().into()),
            ("max", d.max.into()),
            ("window", d.window.into()),
        ])?);
    }
    let explore = match &r.explore {
        Some(e) => object_of(&[("slots", array(e.slots.iter().map(|&s| s.into()).collect()))])?,
        None => JsValue::UNDEFINED,
    };
    object_of(&[
        ("pins", array(pins)),
        ("boosts", array(boosts)),
        (
            "filter",
            array(r.filter.iter().map(|s| s.as_str().into()).collect()),
        ),
        ("diversity", array(diversity)),
        ("explore", explore),
    ])
}
