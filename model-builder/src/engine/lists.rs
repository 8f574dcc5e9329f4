//! `nr_user_items(m, w, a, ts, per_user)`: each user's two lists in one
//! grouping of the user's events, for a `GROUP BY` user.
//!
//! Per item number `m` (below 2^32) the user touched, it adds up the
//! events' weights `w` (in `f64`) and keeps the strongest affinity `a` and
//! the latest time `ts`. It gives a struct of two lists, each in item
//! order:
//! - `als`: every item as `{m, w}`, `w` the summed weight rounded to
//!   `REAL` (a row of the ALS matrix);
//! - `kept`: the user's `per_user` most recent items (latest time first,
//!   then the larger `m`) as `{m, a}` (what the co-occurrence counts read).
//!
//! It replaces two groupings of every event by (user, item), a window that
//! sorted every (user, item) pair by recency, and two `array_agg`s, whose
//! per-user lists of scalar values held several times these bytes. A
//! user's entries are 24 bytes, folded (sorted by item, duplicates merged)
//! whenever their vector is full, so a user holds about one entry per item
//! touched. It runs in two phases (partial lists, merged after the
//! shuffle), reports its bytes to the engine's memory pool, and lets the
//! engine spill its state, so a log larger than memory still builds.

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Float64Array, Int64Array, ListArray,
    StructArray, UInt64Array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Fields, Float32Type, Float64Type, Int64Type, UInt64Type,
};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;
use std::sync::Arc;

/// The name SQL calls the per-user lists by.
pub const USER_ITEMS: &str = "nr_user_items";

/// `nr_user_items(m UBIGINT, w DOUBLE, a REAL, ts BIGINT, per_user BIGINT literal)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UserItems {
    signature: Signature,
}

impl UserItems {
    pub fn new() -> Self {
        UserItems {
            signature: Signature::exact(
                vec![
                    DataType::UInt64,
                    DataType::Float64,
                    DataType::Float32,
                    DataType::Int64,
                    DataType::Int64,
                ],
                Volatility::Immutable,
            ),
        }
    }

    /// `per_user`, which must be a non-negative integer literal.
    fn per_user(args: &AccumulatorArgs) -> Result<usize> {
        let value = args.exprs.get(4).and_then(|e| e.downcast_ref::<Literal>());
        match value.map(Literal::value) {
            Some(ScalarValue::Int64(Some(k))) if *k >= 0 => Ok(*k as usize),
            other => plan_err!(
                "{USER_ITEMS}: per_user must be a non-negative integer literal, not {other:?}"
            ),
        }
    }

    fn accumulator_for(args: &AccumulatorArgs) -> Result<Lists> {
        Ok(Lists {
            per_user: Self::per_user(args)?,
            users: Vec::new(),
            held: 0,
        })
    }
}

impl Default for UserItems {
    fn default() -> Self {
        Self::new()
    }
}

/// A list of structs of `fields`.
pub(super) fn list_of(fields: Fields) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(fields),
        false,
    )))
}

fn als_fields() -> Fields {
    Fields::from(vec![
        Field::new("m", DataType::UInt64, false),
        Field::new("w", DataType::Float32, false),
    ])
}

fn kept_fields() -> Fields {
    Fields::from(vec![
        Field::new("m", DataType::UInt64, false),
        Field::new("a", DataType::Float32, false),
    ])
}

fn output_fields() -> Fields {
    Fields::from(vec![
        Field::new("als", list_of(als_fields()), false),
        Field::new("kept", list_of(kept_fields()), false),
    ])
}

fn state_fields() -> Fields {
    Fields::from(vec![
        Field::new("m", DataType::UInt64, false),
        Field::new("w", DataType::Float64, false),
        Field::new("a", DataType::Float32, false),
        Field::new("t", DataType::Int64, false),
    ])
}

impl AggregateUDFImpl for UserItems {
    fn name(&self) -> &str {
        USER_ITEMS
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(output_fields()))
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[items]", args.name),
            list_of(state_fields()),
            false,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(One(Self::accumulator_for(&args)?)))
    }

    fn groups_accumulator_supported(&self, _: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Self::accumulator_for(&args)?))
    }
}

/// One item of a user's: its number, summed weight, strongest affinity and
/// latest time.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    m: u32,
    a: f32,
    w: f64,
    t: i64,
}

/// Sorts `entries` by item and merges each item's entries into one.
fn fold(entries: &mut Vec<Entry>) {
    entries.sort_unstable_by_key(|e| e.m);
    entries.dedup_by(|later, kept| {
        if later.m != kept.m {
            return false;
        }
        kept.w += later.w;
        kept.a = kept.a.max(later.a);
        kept.t = kept.t.max(later.t);
        true
    });
}

/// Every group's entries, and the entries' capacity over all groups.
#[derive(Debug)]
struct Lists {
    per_user: usize,
    users: Vec<Vec<Entry>>,
    held: usize,
}

impl Lists {
    fn add(&mut self, g: usize, e: Entry) {
        let list = &mut self.users[g];
        let before = list.capacity();
        // A full vector is folded before it grows, so that a user who
        // touches few items many times holds few entries.
        if list.len() == before && before >= 4 {
            fold(list);
        }
        list.push(e);
        self.held = self.held + list.capacity() - before;
    }

    fn take(&mut self, emit_to: EmitTo) -> Vec<Vec<Entry>> {
        let taken = emit_to.take_needed(&mut self.users);
        self.held = self.users.iter().map(Vec::capacity).sum();
        taken
    }
}

/// The four input columns, checked.
struct Inputs<'a> {
    m: &'a UInt64Array,
    w: &'a Float64Array,
    a: &'a Float32Array,
    t: &'a Int64Array,
}

impl<'a> Inputs<'a> {
    fn of(values: &'a [ArrayRef]) -> Result<Self> {
        let (Some(m), Some(w), Some(a), Some(t)) = (
            values[0].as_primitive_opt::<UInt64Type>(),
            values[1].as_primitive_opt::<Float64Type>(),
            values[2].as_primitive_opt::<Float32Type>(),
            values[3].as_primitive_opt::<Int64Type>(),
        ) else {
            return exec_err!("{USER_ITEMS}: expects (UBIGINT, DOUBLE, REAL, BIGINT) columns");
        };
        Ok(Inputs { m, w, a, t })
    }

    /// Row `r`'s entry; `None` where a value is null or the filter drops it.
    fn entry(&self, r: usize, filter: Option<&BooleanArray>) -> Result<Option<Entry>> {
        if self.m.is_null(r)
            || self.w.is_null(r)
            || self.a.is_null(r)
            || self.t.is_null(r)
            || filter.is_some_and(|f| !f.is_valid(r) || !f.value(r))
        {
            return Ok(None);
        }
        let m = self.m.value(r);
        let Ok(m) = u32::try_from(m) else {
            return exec_err!("{USER_ITEMS}: item number {m} does not fit in 32 bits");
        };
        Ok(Some(Entry {
            m,
            w: self.w.value(r),
            a: self.a.value(r),
            t: self.t.value(r),
        }))
    }
}

/// The rows of a partial result, checked once per batch.
struct Partial<'a> {
    lists: &'a ListArray,
    m: &'a UInt64Array,
    w: &'a Float64Array,
    a: &'a Float32Array,
    t: &'a Int64Array,
}

impl<'a> Partial<'a> {
    fn of(values: &'a [ArrayRef]) -> Result<Self> {
        let Some(lists) = values[0].as_list_opt::<i32>() else {
            return exec_err!(
                "{USER_ITEMS}: a partial result of type {}",
                values[0].data_type()
            );
        };
        let s = lists.values().as_struct();
        let (Some(m), Some(w), Some(a), Some(t)) = (
            s.column(0).as_primitive_opt::<UInt64Type>(),
            s.column(1).as_primitive_opt::<Float64Type>(),
            s.column(2).as_primitive_opt::<Float32Type>(),
            s.column(3).as_primitive_opt::<Int64Type>(),
        ) else {
            return exec_err!("{USER_ITEMS}: a partial result of type {}", s.data_type());
        };
        Ok(Partial { lists, m, w, a, t })
    }

    /// The entries of row `r`.
    fn row(&self, r: usize) -> Result<impl Iterator<Item = Entry> + '_> {
        if self.lists.is_null(r) {
            return exec_err!("{USER_ITEMS}: a partial result is null");
        }
        let offsets = self.lists.value_offsets();
        let (start, end) = (offsets[r] as usize, offsets[r + 1] as usize);
        Ok((start..end).map(move |p| Entry {
            m: self.m.value(p) as u32,
            w: self.w.value(p),
            a: self.a.value(p),
            t: self.t.value(p),
        }))
    }
}

/// A list array of structs of `fields` with these `columns`.
pub(super) fn list_array(fields: Fields, columns: Vec<ArrayRef>, offsets: Vec<i32>) -> ListArray {
    ListArray::new(
        Arc::new(Field::new_list_field(
            DataType::Struct(fields.clone()),
            false,
        )),
        OffsetBuffer::new(offsets.into()),
        Arc::new(StructArray::new(fields, columns, None)),
        None,
    )
}

fn offset(len: usize) -> Result<i32> {
    i32::try_from(len).or_else(|_| exec_err!("{USER_ITEMS}: more than 2^31 items in one batch"))
}

/// The partial result: each group's entries, folded.
fn state_lists(groups: Vec<Vec<Entry>>) -> Result<ArrayRef> {
    let mut offsets = vec![0i32];
    let total: usize = groups.iter().map(Vec::len).sum();
    let (mut ms, mut ws, mut as_, mut ts) = (
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
    );
    for mut entries in groups {
        fold(&mut entries);
        for e in entries {
            ms.push(u64::from(e.m));
            ws.push(e.w);
            as_.push(e.a);
            ts.push(e.t);
        }
        offsets.push(offset(ms.len())?);
    }
    Ok(state_array(offsets, ms, ws, as_, ts))
}

/// The partial-result list array of these offsets and entry columns.
fn state_array(
    offsets: Vec<i32>,
    ms: Vec<u64>,
    ws: Vec<f64>,
    as_: Vec<f32>,
    ts: Vec<i64>,
) -> ArrayRef {
    Arc::new(list_array(
        state_fields(),
        vec![
            Arc::new(UInt64Array::from(ms)) as ArrayRef,
            Arc::new(Float64Array::from(ws)),
            Arc::new(Float32Array::from(as_)),
            Arc::new(Int64Array::from(ts)),
        ],
        offsets,
    ))
}

/// The result: each group's two lists.
fn output(groups: Vec<Vec<Entry>>, per_user: usize) -> Result<StructArray> {
    let total: usize = groups.iter().map(Vec::len).sum();
    let mut als = (
        vec![0i32],
        Vec::with_capacity(total),
        Vec::with_capacity(total),
    );
    let mut kept = (vec![0i32], Vec::new(), Vec::new());
    let mut recent: Vec<Entry> = Vec::new();
    for mut entries in groups {
        fold(&mut entries);
        for e in &entries {
            als.1.push(u64::from(e.m));
            als.2.push(e.w as f32);
        }
        als.0.push(offset(als.1.len())?);
        // The most recent `per_user`: latest time first, then the larger
        // item (items are numbered in the order of their ids); written
        // back in item order.
        let chosen = if per_user == 0 {
            &[][..]
        } else if entries.len() > per_user {
            recent.clear();
            recent.extend_from_slice(&entries);
            recent.select_nth_unstable_by(per_user - 1, |x, y| y.t.cmp(&x.t).then(y.m.cmp(&x.m)));
            recent.truncate(per_user);
            recent.sort_unstable_by_key(|e| e.m);
            &recent[..]
        } else {
            &entries[..]
        };
        for e in chosen {
            kept.1.push(u64::from(e.m));
            kept.2.push(e.a);
        }
        kept.0.push(offset(kept.1.len())?);
    }
    // Both lists are {item number, REAL} structs.
    let list = |fields: Fields, (offsets, ms, xs): (Vec<i32>, Vec<u64>, Vec<f32>)| {
        let columns = vec![
            Arc::new(UInt64Array::from(ms)) as ArrayRef,
            Arc::new(Float32Array::from(xs)),
        ];
        list_array(fields, columns, offsets)
    };
    let (als, kept) = (list(als_fields(), als), list(kept_fields(), kept));
    Ok(StructArray::new(
        output_fields(),
        vec![Arc::new(als) as ArrayRef, Arc::new(kept)],
        None,
    ))
}

impl GroupsAccumulator for Lists {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.users.resize_with(total_num_groups, Vec::new);
        let inputs = Inputs::of(values)?;
        for (r, &g) in group_indices.iter().enumerate() {
            if let Some(e) = inputs.entry(r, opt_filter)? {
                self.add(g, e);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let taken = self.take(emit_to);
        Ok(Arc::new(output(taken, self.per_user)?))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let taken = self.take(emit_to);
        Ok(vec![state_lists(taken)?])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.users.resize_with(total_num_groups, Vec::new);
        let partial = Partial::of(values)?;
        for (r, &g) in group_indices.iter().enumerate() {
            for e in partial.row(r)? {
                self.add(g, e);
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // Each row becomes a list of its one entry (none where it is null
        // or filtered out), written straight into the arrays: DataFusion
        // takes this path for every row once the partial grouping stops
        // paying (a user's events spread over many batches).
        let inputs = Inputs::of(values)?;
        let rows = inputs.m.len();
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0i32);
        let (mut ms, mut ws, mut as_, mut ts) = (
            Vec::with_capacity(rows),
            Vec::with_capacity(rows),
            Vec::with_capacity(rows),
            Vec::with_capacity(rows),
        );
        for r in 0..rows {
            if let Some(e) = inputs.entry(r, opt_filter)? {
                ms.push(u64::from(e.m));
                ws.push(e.w);
                as_.push(e.a);
                ts.push(e.t);
            }
            offsets.push(offset(ms.len())?);
        }
        Ok(vec![state_array(offsets, ms, ws, as_, ts)])
    }

    fn size(&self) -> usize {
        self.users.capacity() * std::mem::size_of::<Vec<Entry>>()
            + self.held * std::mem::size_of::<Entry>()
    }
}

/// The lists of one group, where DataFusion cannot use [`Lists`].
#[derive(Debug)]
struct One(Lists);

impl One {
    fn entries(&mut self) -> Vec<Vec<Entry>> {
        self.0.users.resize_with(1, Vec::new);
        vec![self.0.users[0].clone()]
    }
}

impl Accumulator for One {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let groups = vec![0; values[0].len()];
        self.0.update_batch(values, &groups, None, 1)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let out = output(self.entries(), self.0.per_user)?;
        ScalarValue::try_from_array(&out, 0)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.0.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let state = state_lists(self.entries())?;
        Ok(vec![ScalarValue::try_from_array(&state, 0)?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let groups = vec![0; states[0].len()];
        self.0.merge_batch(states, &groups, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::block_on;
    use datafusion::arrow::array::{RecordBatch, UInt32Array};
    use datafusion::arrow::datatypes::UInt32Type;
    use datafusion::logical_expr::AggregateUDF;
    use datafusion::prelude::SessionContext;

    /// Runs `nr_user_items` over `(u, m, w, a, ts)` rows, in `partitions`
    /// partitions, and gives each user's two lists.
    #[allow(clippy::type_complexity)]
    fn lists(
        rows: &[(u32, u64, f64, f32, i64)],
        per_user: i64,
        partitions: usize,
    ) -> Vec<(u32, Vec<(u64, f32)>, Vec<(u64, f32)>)> {
        lists_with(rows, per_user, partitions, false)
    }

    /// [`lists`], where `skip` has every partial grouping pass its rows on
    /// as partial results of one entry ([`GroupsAccumulator::convert_to_state`]),
    /// as DataFusion does once the partial grouping stops paying; the
    /// query's metrics must show it did.
    #[allow(clippy::type_complexity)]
    fn lists_with(
        rows: &[(u32, u64, f64, f32, i64)],
        per_user: i64,
        partitions: usize,
        skip: bool,
    ) -> Vec<(u32, Vec<(u64, f32)>, Vec<(u64, f32)>)> {
        let mut config =
            datafusion::prelude::SessionConfig::new().with_target_partitions(partitions);
        if skip {
            let execution = &mut config.options_mut().execution;
            execution.skip_partial_aggregation_probe_rows_threshold = 0;
            execution.skip_partial_aggregation_probe_ratio_threshold = 0.0;
        }
        let ctx = SessionContext::new_with_config(config);
        ctx.register_udaf(AggregateUDF::from(UserItems::new()));
        // Four rows a batch, the batches dealt to the partitions in turn,
        // so that a partial grouping sees several batches and may stop
        // grouping after the first.
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
            Field::new("u", DataType::UInt32, false),
            Field::new("m", DataType::UInt64, false),
            Field::new("w", DataType::Float64, false),
            Field::new("a", DataType::Float32, false),
            Field::new("t", DataType::Int64, false),
        ]));
        let batch = |chunk: &[(u32, u64, f64, f32, i64)]| {
            let columns: Vec<ArrayRef> = vec![
                Arc::new(UInt32Array::from_iter_values(chunk.iter().map(|r| r.0))),
                Arc::new(UInt64Array::from_iter_values(chunk.iter().map(|r| r.1))),
                Arc::new(Float64Array::from_iter_values(chunk.iter().map(|r| r.2))),
                Arc::new(Float32Array::from_iter_values(chunk.iter().map(|r| r.3))),
                Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.4))),
            ];
            RecordBatch::try_new(schema.clone(), columns).unwrap()
        };
        let mut parts = vec![Vec::new(); partitions];
        for (n, chunk) in rows.chunks(4).enumerate() {
            parts[n % partitions].push(batch(chunk));
        }
        let table = datafusion::datasource::MemTable::try_new(schema.clone(), parts).unwrap();
        ctx.register_table("e", Arc::new(table)).unwrap();
        let sql = format!(
            "SELECT u, l['als'] AS als, l['kept'] AS kept FROM (
                 SELECT u, {USER_ITEMS}(m, w, a, t, {per_user}) AS l FROM e GROUP BY u)
             ORDER BY u"
        );
        let (batches, plan) = block_on(async {
            let plan = ctx.sql(&sql).await?.create_physical_plan().await?;
            let batches = datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx()).await?;
            Ok::<_, datafusion::error::DataFusionError>((batches, plan))
        })
        .unwrap();
        let metrics = datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(
            plan.as_ref(),
        )
        .indent(true)
        .to_string();
        let skipped = metrics.contains("skipped_aggregation_rows=")
            && !metrics.contains("skipped_aggregation_rows=0");
        assert_eq!(skipped, skip, "{metrics}");
        let pairs = |l: &ListArray, r: usize| -> Vec<(u64, f32)> {
            let s = l.value(r);
            let s = s.as_struct();
            let (m, x) = (
                s.column(0).as_primitive::<UInt64Type>(),
                s.column(1).as_primitive::<Float32Type>(),
            );
            (0..s.len()).map(|p| (m.value(p), x.value(p))).collect()
        };
        let mut out = Vec::new();
        for b in batches {
            let u = b.column(0).as_primitive::<UInt32Type>();
            let (als, kept) = (b.column(1).as_list::<i32>(), b.column(2).as_list::<i32>());
            for r in 0..b.num_rows() {
                out.push((u.value(r), pairs(als, r), pairs(kept, r)));
            }
        }
        out
    }

    /// Weights add up per item, the affinity is the strongest, and `kept`
    /// is the newest `per_user` items (ties in time to the larger item),
    /// both lists in item order, whatever the partitioning.
    #[test]
    fn each_user_gets_summed_weights_and_the_newest_items() {
        let mut rows = vec![
            (1, 5, 1.0, 0.25, 10),
            (1, 5, 3.0, 0.5, 40),
            (1, 2, 2.0, 0.75, 20),
            (1, 9, 1.0, 0.125, 30),
            (1, 7, 4.0, 1.0, 30),
            (2, 3, 0.5, 0.5, 1),
        ];
        // Enough repeats of one item to fold a vector several times.
        rows.extend((0..50).map(|t| (2, 4, 1.0, 0.0625, 100 + t)));
        for (partitions, skip) in [(1, false), (3, false), (3, true)] {
            let out = lists_with(&rows, 3, partitions, skip);
            assert_eq!(
                out,
                vec![
                    (
                        1,
                        vec![(2, 2.0), (5, 4.0), (7, 4.0), (9, 1.0)],
                        // Newest: 5 (40), then 9 and 7 at 30 (9 first).
                        vec![(5, 0.5), (7, 1.0), (9, 0.125)],
                    ),
                    (2, vec![(3, 0.5), (4, 50.0)], vec![(3, 0.5), (4, 0.0625)]),
                ],
                "{partitions} partitions, partial grouping skipped: {skip}"
            );
        }
        // A cut of 2 drops item 7 (time 30, smaller than 9); a cut of 0
        // keeps nothing, and the ALS rows stay whole.
        let out = lists(&rows, 2, 1);
        assert_eq!(out[0].2, vec![(5, 0.5), (9, 0.125)]);
        let out = lists(&rows, 0, 2);
        assert!(out
            .iter()
            .all(|(_, als, kept)| !als.is_empty() && kept.is_empty()));
    }

    #[test]
    fn a_number_past_32_bits_is_named() {
        let ctx = SessionContext::new();
        ctx.register_udaf(AggregateUDF::from(UserItems::new()));
        let sql = format!(
            "SELECT {USER_ITEMS}(CAST(4294967296 AS BIGINT UNSIGNED), CAST(1 AS DOUBLE), CAST(1 AS REAL), CAST(1 AS BIGINT), 5)"
        );
        let err = block_on(async { ctx.sql(&sql).await?.collect().await })
            .unwrap_err()
            .to_string();
        assert!(err.contains("item number 4294967296 does not fit"), "{err}");
        let sql = format!(
            "SELECT {USER_ITEMS}(CAST(1 AS BIGINT UNSIGNED), CAST(1 AS DOUBLE), CAST(1 AS REAL), CAST(1 AS BIGINT), -1)"
        );
        let err = block_on(async { ctx.sql(&sql).await?.collect().await })
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("per_user must be a non-negative integer literal"),
            "{err}"
        );
    }
}
