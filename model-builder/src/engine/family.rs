//! `users` on the engine (issues #20 and #15): each active family's
//! nightly record computed where the log is, in the order of the edge
//! shards, so that the builder streams the records to files and never holds
//! the log or the table.
//!
//! `nr_family(events, context, cutoff)` is one family's record: over a
//! family's events as `LIST<STRUCT<i TEXT, e BIGINT, t BIGINT>>` (item id,
//! event code, time), it sorts them as the in-memory dataset orders them
//! (time, item id, event) and returns the profile blob of
//! [`crate::family`]'s affinities and embedding, without the baby (which
//! `users` adds from `users.csv`). `context` names a folder every executor
//! reads: the model's blob and the catalog ([`FamilyQuery`]).
//!
//! `nr_edge_key(user_id, salt)` is [`crate::family::edge_key`] with the
//! salt as hex, so that the engine orders the records by shard.

use super::functions::text_literal;
use super::plans::{Session, Text};
use crate::family::{self, FamilyEvent};
use anyhow::{Context, Result};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Int64Type, UInt64Type};
use datafusion::common::{exec_err, plan_err, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use nestrank::Event;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// The name SQL calls the per-family record by.
pub const FAMILY: &str = "nr_family";

/// The name SQL calls the edge key by.
pub const EDGE_KEY: &str = "nr_edge_key";

/// What the catalog says of an item, as `nr_family` reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatalogItem {
    /// The item's id.
    pub id: String,
    /// Its brand.
    pub brand: Option<String>,
    /// Its category.
    pub category: Option<String>,
    /// Its price.
    pub price: Option<f32>,
}

/// One `users` run on the engine.
pub struct FamilyQuery<'a> {
    /// The catalog.
    pub catalog: Vec<CatalogItem>,
    /// The model's blob.
    pub model: &'a [u8],
    /// A family is active with an event at or after this time...
    pub from: i64,
    /// ...and before this one; only events before it count.
    pub cutoff: i64,
    /// The edge keys' salt.
    pub salt: &'a [u8],
    /// Edge shards.
    pub shards: u32,
}

/// The files of a [`FamilyQuery`]'s context folder.
const MODEL_FILE: &str = "model.nrb";
const CATALOG_FILE: &str = "catalog.json";

impl Session {
    /// Families with an event from `from` to just before `cutoff`.
    pub fn active_families(&self, from: i64, cutoff: i64) -> Result<u64> {
        let mut n = 0;
        self.for_each_batch(
            &format!(
                "WITH {clean} SELECT COUNT(DISTINCT user_id) FROM clean WHERE ts >= {from} AND ts < {cutoff}",
                clean = self.clean()
            ),
            "the active families",
            |b| {
                if b.num_rows() > 0 {
                    n = b.column(0).as_primitive::<Int64Type>().value(0) as u64;
                }
                Ok(())
            },
        )?;
        Ok(n)
    }

    /// Calls `f(user, edge key, record)` for every family active in `q`'s
    /// window, in the order of the edge shards (then keys): `record` is the
    /// family's profile blob without its baby.
    pub fn for_each_family(
        &self,
        q: &FamilyQuery<'_>,
        mut f: impl FnMut(&str, u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let context = self.shared_folder("family")?;
        std::fs::write(context.path().join(MODEL_FILE), q.model)
            .context("cannot write the model to the shared folder")?;
        std::fs::write(
            context.path().join(CATALOG_FILE),
            serde_json::to_vec(&q.catalog)?,
        )
        .context("cannot write the catalog to the shared folder")?;
        let dir = context
            .path()
            .to_str()
            .context("the shared folder's path is not UTF-8")?
            .replace('\'', "''");
        let salt: String = q.salt.iter().map(|b| format!("{b:02x}")).collect();
        let sql = format!(
            "WITH {clean},
             families AS (
                 SELECT user_id,
                        {FAMILY}(array_agg(named_struct(
                            'i', item_id,
                            'e', CAST(CASE event WHEN 'view' THEN 0 WHEN 'fav' THEN 1 WHEN 'cart' THEN 2 ELSE 3 END AS BIGINT),
                            't', ts)), '{dir}', CAST({cutoff} AS BIGINT)) AS record
                 FROM clean WHERE ts < {cutoff}
                 GROUP BY user_id HAVING MAX(ts) >= {from}),
             keyed AS (SELECT user_id, record, {EDGE_KEY}(user_id, '{salt}') AS k FROM families)
             SELECT user_id, record, k FROM keyed
             ORDER BY k % CAST({shards} AS BIGINT UNSIGNED), k",
            clean = self.clean(),
            cutoff = q.cutoff,
            from = q.from,
            shards = q.shards,
        );
        self.for_each_batch(&sql, "the families' records", |b| {
            let users = b.column(0).as_string_view_or_utf8();
            let (records, keys) = (
                b.column(1).as_binary::<i32>(),
                b.column(2).as_primitive::<UInt64Type>(),
            );
            for r in 0..b.num_rows() {
                f(users.str(r), keys.value(r), records.value(r))?;
            }
            Ok(())
        })
    }
}

/// A context folder, decoded: the model and the catalog by item id.
struct FamilyContext {
    model: nestrank::Model,
    restocked: family::Restocked,
    items: HashMap<String, CatalogItem>,
}

/// The context last read, kept while the plan's batches come in.
static CONTEXT: std::sync::Mutex<Option<(String, Arc<FamilyContext>)>> =
    std::sync::Mutex::new(None);

fn read_context(dir: &str) -> datafusion::common::Result<Arc<FamilyContext>> {
    let mut cached = CONTEXT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((d, c)) = cached.as_ref() {
        if d == dir {
            return Ok(Arc::clone(c));
        }
    }
    let read = |file: &str| {
        let path = std::path::Path::new(dir).join(file);
        std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let decoded = read(MODEL_FILE).and_then(|bytes| {
        let model = nestrank::Model::from_bytes(&bytes)
            .map_err(|e| format!("{dir}/{MODEL_FILE}: invalid blob: {e}"))?;
        let catalog: Vec<CatalogItem> = serde_json::from_slice(&read(CATALOG_FILE)?)
            .map_err(|e| format!("{dir}/{CATALOG_FILE}: {e}"))?;
        let items = catalog.into_iter().map(|c| (c.id.clone(), c)).collect();
        Ok(FamilyContext {
            restocked: family::Restocked::of(&model),
            model,
            items,
        })
    });
    match decoded {
        Ok(c) => {
            let c = Arc::new(c);
            *cached = Some((dir.to_string(), Arc::clone(&c)));
            Ok(c)
        }
        Err(e) => exec_err!("{FAMILY}: {e}"),
    }
}

/// A literal argument of `name`.
fn literal<'a>(
    value: &'a ColumnarValue,
    name: &str,
    what: &str,
) -> datafusion::common::Result<&'a ScalarValue> {
    match value {
        ColumnarValue::Scalar(v) => Ok(v),
        _ => exec_err!("{name}: {what} must be a literal"),
    }
}

/// `nr_family(events LIST<STRUCT<i TEXT, e BIGINT, t BIGINT>>, context TEXT
/// literal, cutoff BIGINT literal)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Family {
    signature: Signature,
}

impl Family {
    /// The function.
    pub fn new() -> Self {
        Family {
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

impl Default for Family {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for Family {
    fn name(&self) -> &str {
        FAMILY
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> datafusion::common::Result<DataType> {
        let ok = match &args[0] {
            DataType::List(f) => match f.data_type() {
                DataType::Struct(fields) => {
                    fields.len() == 3
                        && matches!(
                            fields[0].data_type(),
                            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
                        )
                        && fields[1].data_type() == &DataType::Int64
                        && fields[2].data_type() == &DataType::Int64
                }
                _ => false,
            },
            _ => false,
        };
        if !ok {
            return plan_err!(
                "{FAMILY}: expects a list of {{i TEXT, e BIGINT, t BIGINT}} structs, not {}",
                args[0]
            );
        }
        Ok(DataType::Binary)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let context = read_context(text_literal(&args.args[1], FAMILY, "the context folder")?)?;
        let cutoff = match literal(&args.args[2], FAMILY, "the cutoff")? {
            ScalarValue::Int64(Some(c)) => *c,
            v => {
                return exec_err!(
                    "{FAMILY}: the cutoff must be a BIGINT, not {}",
                    v.data_type()
                )
            }
        };
        let lists = args.args[0].to_array(args.number_rows)?;
        let lists = lists.as_list::<i32>();
        let events = lists.values().as_struct();
        let items = events.column(0).as_string_view_or_utf8();
        let (codes, times) = (
            events.column(1).as_primitive::<Int64Type>(),
            events.column(2).as_primitive::<Int64Type>(),
        );
        let unknown = CatalogItem {
            id: String::new(),
            brand: None,
            category: None,
            price: None,
        };
        let mut out = BinaryBuilder::new();
        let mut own: Vec<FamilyEvent<'_>> = Vec::new();
        for r in 0..lists.len() {
            if lists.is_null(r) {
                out.append_null();
                continue;
            }
            own.clear();
            let offsets = lists.value_offsets();
            for p in offsets[r] as usize..offsets[r + 1] as usize {
                if events.is_null(p) || codes.is_null(p) || times.is_null(p) {
                    return exec_err!("{FAMILY}: an event, its code or its time is null");
                }
                let item = items.str(p);
                let code = codes.value(p);
                let Some(event) = u8::try_from(code).ok().and_then(Event::from_code) else {
                    return exec_err!("{FAMILY}: event code {code} is not 0 to 3");
                };
                let c = context.items.get(item).unwrap_or(&unknown);
                own.push(FamilyEvent {
                    item,
                    brand: c.brand.as_deref(),
                    category: c.category.as_deref(),
                    price: c.price.unwrap_or(f32::NAN),
                    event,
                    ts: times.value(p),
                });
            }
            // The dataset's order: time, item id (bytes), event.
            own.sort_by(|a, b| {
                (a.ts, a.item.as_bytes(), a.event as u8).cmp(&(
                    b.ts,
                    b.item.as_bytes(),
                    b.event as u8,
                ))
            });
            let profile = family::record(&own, &context.model, &context.restocked, cutoff);
            out.append_value(profile.to_bytes());
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}

/// `nr_edge_key(user_id TEXT, salt TEXT literal, hex)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct EdgeKey {
    signature: Signature,
}

impl EdgeKey {
    /// The function.
    pub fn new() -> Self {
        EdgeKey {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl Default for EdgeKey {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for EdgeKey {
    fn name(&self) -> &str {
        EDGE_KEY
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> datafusion::common::Result<DataType> {
        match &args[0] {
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => Ok(DataType::UInt64),
            other => plan_err!("{EDGE_KEY}: expects a user id as text, not {other}"),
        }
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let hex = text_literal(&args.args[1], EDGE_KEY, "the salt")?;
        let Some(salt) = family::parse_hex(hex) else {
            return exec_err!("{EDGE_KEY}: the salt is not hex");
        };
        let users = args.args[0].to_array(args.number_rows)?;
        let users = users.as_string_view_or_utf8();
        let keys: UInt64Array = (0..users.len())
            .map(|r| (!users.is_null(r)).then(|| family::edge_key(&salt, users.str(r))))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(keys)))
    }
}
