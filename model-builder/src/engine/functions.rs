//! The project's own engine functions, where SQL cannot say what the build
//! needs as cheaply: `nr_top_k(j, s, k)` keeps a group's `k` best `(j, s)`
//! pairs (highest `s` first, ties to the smaller `j`), as a list of
//! `{j, s}` structs. It replaces a window's sort of every scored pair with
//! a bounded heap per group, and it runs in two phases (a partial top `k`
//! per partition, merged after the shuffle), so on a cluster it cuts the
//! shuffle to `k` pairs per item and partition.
//!
//! Every place a plan runs must know the function by name: the embedded
//! session and a cluster client ([`register`]), a Ballista scheduler
//! (its session builder) and its executors (their function registry), see
//! [`super::cluster`].

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, ListArray, StructArray, UInt64Array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float32Type, UInt64Type};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;
use datafusion::prelude::SessionContext;
use std::cmp::Ordering;
use std::sync::Arc;

/// The name SQL calls the top-`k` aggregate by.
pub const TOP_K: &str = "nr_top_k";

/// Every aggregate the project adds to the engine.
pub fn aggregates() -> Vec<Arc<AggregateUDF>> {
    vec![Arc::new(AggregateUDF::from(TopK::new()))]
}

/// Makes the project's functions known to `ctx`.
pub fn register(ctx: &SessionContext) {
    for f in aggregates() {
        ctx.register_udaf(f.as_ref().clone());
    }
}

/// `nr_top_k(j UBIGINT, s REAL, k BIGINT literal)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TopK {
    signature: Signature,
}

impl TopK {
    fn new() -> Self {
        TopK {
            signature: Signature::exact(
                vec![DataType::UInt64, DataType::Float32, DataType::Int64],
                Volatility::Immutable,
            ),
        }
    }

    /// `k`, which must be a positive integer literal.
    fn k(args: &AccumulatorArgs) -> Result<usize> {
        let value = args.exprs.get(2).and_then(|e| e.downcast_ref::<Literal>());
        match value.map(Literal::value) {
            Some(ScalarValue::Int64(Some(k))) if *k > 0 => Ok(*k as usize),
            other => plan_err!("{TOP_K}: k must be a positive integer literal, not {other:?}"),
        }
    }
}

/// A pair's struct: the kept item `j` and its score `s`.
fn pair_fields() -> Fields {
    Fields::from(vec![
        Field::new("j", DataType::UInt64, false),
        Field::new("s", DataType::Float32, false),
    ])
}

fn list_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(pair_fields()),
        false,
    )))
}

impl AggregateUDFImpl for TopK {
    fn name(&self) -> &str {
        TOP_K
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(list_type())
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        // The partial result is itself a best-first list of at most k pairs.
        Ok(vec![Arc::new(Field::new(
            format!("{}[top]", args.name),
            list_type(),
            false,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(One {
            k: Self::k(&args)?,
            pairs: Vec::new(),
        }))
    }

    fn groups_accumulator_supported(&self, _: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups {
            k: Self::k(&args)?,
            groups: Vec::new(),
            held: 0,
        }))
    }
}

/// `(s, j)`, best first: the higher score, then the smaller item.
type Pair = (f32, u64);

fn better(a: &Pair, b: &Pair) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// Cuts `pairs` to its `k` best, in any order; returns how many it dropped.
fn prune(pairs: &mut Vec<Pair>, k: usize) -> usize {
    if pairs.len() <= k {
        return 0;
    }
    pairs.select_nth_unstable_by(k - 1, better);
    let dropped = pairs.len() - k;
    pairs.truncate(k);
    dropped
}

/// Adds one pair, pruning once the list holds twice `k`; returns the change
/// in pairs held.
fn push(pairs: &mut Vec<Pair>, pair: Pair, k: usize) -> isize {
    pairs.push(pair);
    if pairs.len() >= 2 * k {
        1 - prune(pairs, k) as isize
    } else {
        1
    }
}

/// One list per group, best first, cut to `k`.
fn lists(groups: impl Iterator<Item = Vec<Pair>>, k: usize) -> ListArray {
    let mut offsets = vec![0i32];
    let (mut js, mut ss) = (Vec::new(), Vec::new());
    for mut pairs in groups {
        prune(&mut pairs, k);
        pairs.sort_unstable_by(better);
        for (s, j) in pairs {
            js.push(j);
            ss.push(s);
        }
        offsets.push(js.len() as i32);
    }
    let pairs = StructArray::new(
        pair_fields(),
        vec![
            Arc::new(UInt64Array::from(js)) as ArrayRef,
            Arc::new(Float32Array::from(ss)),
        ],
        None,
    );
    ListArray::new(
        Arc::new(Field::new_list_field(
            DataType::Struct(pair_fields()),
            false,
        )),
        OffsetBuffer::new(offsets.into()),
        Arc::new(pairs),
        None,
    )
}

/// The pairs of row `r` of a partial-result list.
fn list_row(lists: &ListArray, r: usize) -> Result<impl Iterator<Item = Pair> + '_> {
    if lists.is_null(r) {
        return exec_err!("{TOP_K}: a partial result is null");
    }
    let (start, end) = (
        lists.value_offsets()[r] as usize,
        lists.value_offsets()[r + 1] as usize,
    );
    let pairs = lists.values().as_struct();
    let (js, ss) = (
        pairs.column(0).as_primitive::<UInt64Type>(),
        pairs.column(1).as_primitive::<Float32Type>(),
    );
    Ok((start..end).map(move |p| (ss.value(p), js.value(p))))
}

/// The `(j, s)` input columns.
fn inputs(values: &[ArrayRef]) -> (&UInt64Array, &Float32Array) {
    (
        values[0].as_primitive::<UInt64Type>(),
        values[1].as_primitive::<Float32Type>(),
    )
}

/// The top `k` of every group, for DataFusion's hash aggregation.
struct Groups {
    k: usize,
    groups: Vec<Vec<Pair>>,
    /// Pairs held over all groups, for [`GroupsAccumulator::size`].
    held: usize,
}

impl Groups {
    fn add(&mut self, g: usize, pair: Pair) {
        self.held = self
            .held
            .saturating_add_signed(push(&mut self.groups[g], pair, self.k));
    }

    fn emit(&mut self, emit_to: EmitTo) -> ArrayRef {
        let taken = emit_to.take_needed(&mut self.groups);
        self.held = self.groups.iter().map(Vec::len).sum();
        Arc::new(lists(taken.into_iter(), self.k))
    }
}

impl GroupsAccumulator for Groups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Vec::new);
        let (js, ss) = inputs(values);
        for (r, &g) in group_indices.iter().enumerate() {
            let skip = js.is_null(r)
                || ss.is_null(r)
                || opt_filter.is_some_and(|f| !f.is_valid(r) || !f.value(r));
            if !skip {
                self.add(g, (ss.value(r), js.value(r)));
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(self.emit(emit_to))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.emit(emit_to)])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Vec::new);
        let partial = values[0].as_list::<i32>();
        for (r, &g) in group_indices.iter().enumerate() {
            for pair in list_row(partial, r)? {
                self.add(g, pair);
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let (js, ss) = inputs(values);
        let rows = (0..js.len()).map(|r| {
            let keep = !js.is_null(r)
                && !ss.is_null(r)
                && opt_filter.is_none_or(|f| f.is_valid(r) && f.value(r));
            if keep {
                vec![(ss.value(r), js.value(r))]
            } else {
                Vec::new()
            }
        });
        Ok(vec![Arc::new(lists(rows, self.k))])
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<Vec<Pair>>()
            + self.held * std::mem::size_of::<Pair>()
    }
}

/// The top `k` of one group, where DataFusion cannot use [`Groups`].
#[derive(Debug)]
struct One {
    k: usize,
    pairs: Vec<Pair>,
}

impl One {
    fn list(&self) -> ScalarValue {
        ScalarValue::List(Arc::new(lists(std::iter::once(self.pairs.clone()), self.k)))
    }
}

impl Accumulator for One {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (js, ss) = inputs(values);
        for r in 0..js.len() {
            if !js.is_null(r) && !ss.is_null(r) {
                push(&mut self.pairs, (ss.value(r), js.value(r)), self.k);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.list())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.pairs.capacity() * std::mem::size_of::<Pair>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.list()])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let partial = states[0].as_list::<i32>();
        for r in 0..partial.len() {
            for pair in list_row(partial, r)? {
                push(&mut self.pairs, pair, self.k);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::block_on;
    use datafusion::arrow::array::RecordBatch;

    /// Runs `sql` on a session with the functions registered and a table
    /// `t(i, j, s)` of `rows`, split into `partitions` batches so that the
    /// partial and final phases both run.
    fn run(rows: &[(u64, u64, f32)], sql: &str) -> Vec<(u64, Vec<(u64, f32)>)> {
        let ctx = SessionContext::new();
        register(&ctx);
        let batches: Vec<RecordBatch> = rows
            .chunks(3)
            .map(|c| {
                RecordBatch::try_from_iter(vec![
                    (
                        "i",
                        Arc::new(UInt64Array::from_iter_values(c.iter().map(|r| r.0))) as ArrayRef,
                    ),
                    (
                        "j",
                        Arc::new(UInt64Array::from_iter_values(c.iter().map(|r| r.1))),
                    ),
                    (
                        "s",
                        Arc::new(Float32Array::from_iter_values(c.iter().map(|r| r.2))),
                    ),
                ])
                .unwrap()
            })
            .collect();
        let table = datafusion::datasource::MemTable::try_new(
            batches[0].schema(),
            batches.into_iter().map(|b| vec![b]).collect(),
        )
        .unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let out = block_on(async { ctx.sql(sql).await?.collect().await }).unwrap();
        let mut got = Vec::new();
        for b in out {
            let (i, l) = (
                b.column(0).as_primitive::<UInt64Type>(),
                b.column(1).as_list::<i32>(),
            );
            for r in 0..b.num_rows() {
                got.push((
                    i.value(r),
                    list_row(l, r).unwrap().map(|(s, j)| (j, s)).collect(),
                ));
            }
        }
        got.sort_by_key(|g| g.0);
        got
    }

    #[test]
    fn keeps_the_k_best_with_ties_to_the_smaller_item_across_partitions() {
        let rows = [
            (1, 10, 0.5),
            (1, 11, 0.9),
            (2, 20, 1.0),
            (1, 12, 0.5),
            (1, 9, 0.5),
            (1, 13, 0.1),
            (2, 21, 2.0),
            (1, 14, 0.7),
        ];
        let got = run(&rows, "SELECT i, nr_top_k(j, s, 3) FROM t GROUP BY i");
        assert_eq!(
            got,
            vec![
                (1, vec![(11, 0.9), (14, 0.7), (9, 0.5)]),
                (2, vec![(21, 2.0), (20, 1.0)]),
            ]
        );
    }

    #[test]
    fn agrees_with_a_sort_on_many_rows() {
        // Enough rows per group to prune many times, scores with ties.
        let mut state = 7u64;
        let rows: Vec<(u64, u64, f32)> = (0..3000)
            .map(|n| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 60) % 4, n, ((state >> 33) % 17) as f32)
            })
            .collect();
        let got = run(&rows, "SELECT i, nr_top_k(j, s, 5) FROM t GROUP BY i");
        for (i, top) in got {
            let mut all: Vec<(f32, u64)> = rows
                .iter()
                .filter(|r| r.0 == i)
                .map(|r| (r.2, r.1))
                .collect();
            all.sort_by(better);
            let want: Vec<(u64, f32)> = all.iter().take(5).map(|&(s, j)| (j, s)).collect();
            assert_eq!(top, want, "group {i}");
        }
    }

    #[test]
    fn k_must_be_a_positive_literal() {
        let ctx = SessionContext::new();
        register(&ctx);
        for sql in [
            "SELECT nr_top_k(CAST(1 AS BIGINT UNSIGNED), CAST(1 AS REAL), 0)",
            "SELECT nr_top_k(CAST(x AS BIGINT UNSIGNED), CAST(1 AS REAL), x) FROM (VALUES (1)) AS v(x)",
        ] {
            let err = block_on(async { ctx.sql(sql).await?.collect().await }).unwrap_err();
            assert!(err.to_string().contains("k must be a positive integer literal"), "{err}");
        }
    }
}
