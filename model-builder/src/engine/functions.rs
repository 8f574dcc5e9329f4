//! The project's own engine functions, where SQL cannot say what the build
//! needs as cheaply: `nr_top_k(j, s, k)` keeps a group's `k` best `(j, s)`
//! pairs (highest `s` first, ties to the smaller `j`), as a list of
//! `{j, s}` structs. It replaces a window's sort of every scored pair with
//! a bounded heap per group, and it runs in two phases (a partial top `k`
//! per partition, merged after the shuffle), so on a cluster it cuts the
//! shuffle to `k` pairs per item and partition.
//!
//!
//! `nr_pairs(items)` turns one user's list of `{m, a}` structs (an item
//! number below 2^32 and its affinity) into every unordered pair of its
//! items, as `{k, w}` structs: the pair's key `k = min(m) << 32 | max(m)`
//! (one integer, which the engine groups on fastest) and its weight
//! `w = min(a)`. It replaces a self-join of the users' items, which sorted
//! both sides and read them twice.
//!
//! `nr_similarity(k, c, totals, measure)` scores a pair `k = i << 32 | j`
//! that co-occurs with weight `c`, from the items' total weights `d_i`,
//! `d_j` (a file every executor can read, written by
//! [`encode_totals`]): Jaccard `c / (d_i + d_j - c)`, cosine
//! `c / sqrt(d_i d_j)` or lift `c / (d_i d_j)`, as `REAL`. It replaces two
//! joins of every pair with the totals, which sorted the pairs twice.
//!
//! `nr_als_sums(items, factors)` is one ALS iteration's pass over the
//! users: over rows of `LIST<STRUCT<m UBIGINT, w REAL>>` (a user's items,
//! numbered from 0, and event-weighted counts) and the item factors (a
//! file that every executor can read, named by a text literal, which keeps
//! the plan small: [`crate::als::Step::encode`]), it solves each user's
//! factor and adds up what the item half-step needs
//! ([`crate::als::ItemSums`], as bytes). It runs in two phases, partial
//! sums per partition merged after the shuffle; the sums are exact, so the
//! result does not depend on the partitioning.
//!
//! `nr_trim(text)` is a text without the blanks at its ends that Rust's
//! `str::trim` removes (tab, line feed, no-break space and every other
//! Unicode White_Space character): the row reader's own trim, so that the
//! plans read every id, event type and time as it does. SQL's `trim`
//! removes spaces only, and `btrim` with the whole set took the plans that
//! read the log about a third longer.
//!
//! Every place a plan runs must know the functions by name: the embedded
//! session and a cluster client ([`register`]), a Ballista scheduler
//! (its session builder) and its executors (their function registry), see
//! [`super::cluster`].

use crate::als::{ItemSums, Pass, Scratch, Step};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, ListArray, StringViewBuilder,
    StructArray, UInt64Array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float32Type, UInt64Type};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, EmitTo, GroupsAccumulator,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;
use datafusion::prelude::SessionContext;
use std::cmp::Ordering;
use std::sync::Arc;

/// The name SQL calls the top-`k` aggregate by.
pub const TOP_K: &str = "nr_top_k";

/// Every aggregate the project adds to the engine.
pub fn aggregates() -> Vec<Arc<AggregateUDF>> {
    vec![
        Arc::new(AggregateUDF::from(TopK::new())),
        Arc::new(AggregateUDF::from(AlsSums::new())),
        Arc::new(AggregateUDF::from(super::lists::UserItems::new())),
    ]
}

/// Every scalar function the project adds to the engine.
pub fn scalars() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::from(Pairs::new())),
        Arc::new(ScalarUDF::from(Similarity::new())),
        Arc::new(ScalarUDF::from(Trim::new())),
        Arc::new(ScalarUDF::from(super::family::Family::new())),
        Arc::new(ScalarUDF::from(super::family::EdgeKey::new())),
    ]
}

/// Makes the project's functions known to `ctx`.
pub fn register(ctx: &SessionContext) {
    for f in aggregates() {
        ctx.register_udaf(f.as_ref().clone());
    }
    for f in scalars() {
        ctx.register_udf(f.as_ref().clone());
    }
}

/// The name SQL calls the ALS pass by.
pub const ALS_SUMS: &str = "nr_als_sums";

/// `nr_als_sums(items LIST<STRUCT<m UBIGINT, w REAL>>, factors TEXT literal)`,
/// `factors` the path of a file of [`Step::encode`]'s bytes.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AlsSums {
    signature: Signature,
}

impl AlsSums {
    fn new() -> Self {
        AlsSums {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for AlsSums {
    fn name(&self) -> &str {
        ALS_SUMS
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::LargeBinary)
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[sums]", args.name),
            DataType::LargeBinary,
            false,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let value = args.exprs.get(1).and_then(|e| e.downcast_ref::<Literal>());
        let Some(path) = value.map(Literal::value).and_then(text).map(str::to_string) else {
            let got = value.map(|l| l.value().data_type());
            return plan_err!("{ALS_SUMS}: the factors' path must be a text literal, not {got:?}");
        };
        let step = match std::fs::read(&path) {
            Ok(bytes) => match Step::decode(&bytes) {
                Ok(step) => step,
                Err(e) => return plan_err!("{ALS_SUMS}: the factors in {path}: {e}"),
            },
            Err(e) => return plan_err!("{ALS_SUMS}: cannot read the factors {path}: {e}"),
        };
        let sums = Pass::new(step.items(), step.dim());
        Ok(Box::new(AlsAccumulator {
            step,
            sums,
            scratch: Scratch::default(),
            row: Vec::new(),
        }))
    }
}

/// One partition's ALS sums.
#[derive(Debug)]
struct AlsAccumulator {
    step: Step,
    sums: Pass,
    scratch: Scratch,
    row: Vec<(u32, f32)>,
}

impl Accumulator for AlsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(lists) = values[0].as_list_opt::<i32>() else {
            return exec_err!(
                "{ALS_SUMS}: expected a list of {{m, w}} structs, got {}",
                values[0].data_type()
            );
        };
        let Some(items) = lists.values().as_struct_opt() else {
            return exec_err!("{ALS_SUMS}: the list's values are not {{m, w}} structs");
        };
        let (Some(ms), Some(ws)) = (
            items
                .column_by_name("m")
                .and_then(|c| c.as_primitive_opt::<UInt64Type>()),
            items
                .column_by_name("w")
                .and_then(|c| c.as_primitive_opt::<Float32Type>()),
        ) else {
            return exec_err!("{ALS_SUMS}: the structs need m UBIGINT and w REAL");
        };
        let offsets = lists.value_offsets();
        for r in 0..lists.len() {
            if lists.is_null(r) {
                continue;
            }
            self.row.clear();
            for k in offsets[r] as usize..offsets[r + 1] as usize {
                let m = ms.value(k);
                if m >= self.step.items() as u64 {
                    return exec_err!(
                        "{ALS_SUMS}: item number {m}, past the {} items of the factors",
                        self.step.items()
                    );
                }
                self.row.push((m as u32, ws.value(k)));
            }
            if self.row.is_empty() {
                continue;
            }
            if let Err(m) = self.step.user(&self.row, &mut self.scratch) {
                return exec_err!("{ALS_SUMS}: item number {m} has no factors");
            }
            self.sums
                .add_user(&self.row, &self.scratch.x, self.step.alpha());
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::LargeBinary(Some(self.sums.sums().encode())))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.sums.size() + self.step.items() * self.step.dim() * 12
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(partial) = states[0].as_binary_opt::<i64>() else {
            return exec_err!("{ALS_SUMS}: partial sums of type {}", states[0].data_type());
        };
        for r in 0..partial.len() {
            if partial.is_null(r) {
                continue;
            }
            match ItemSums::decode(partial.value(r), self.step.dim(), self.step.items()) {
                Ok(other) => self.sums.merge(&other),
                Err(e) => return exec_err!("{ALS_SUMS}: partial sums: {e}"),
            }
        }
        Ok(())
    }
}

/// The name SQL calls the pair generator by.
pub const PAIRS: &str = "nr_pairs";

/// `nr_pairs(items LIST<STRUCT<m UBIGINT, a REAL>>)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Pairs {
    signature: Signature,
}

impl Pairs {
    fn new() -> Self {
        Pairs {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }

    fn output_fields() -> Fields {
        Fields::from(vec![
            Field::new("k", DataType::UInt64, false),
            Field::new("w", DataType::Float32, false),
        ])
    }

    fn output_type() -> DataType {
        DataType::List(Arc::new(Field::new_list_field(
            DataType::Struct(Self::output_fields()),
            false,
        )))
    }
}

impl ScalarUDFImpl for Pairs {
    fn name(&self) -> &str {
        PAIRS
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let ok = match &args[0] {
            DataType::List(f) => match f.data_type() {
                DataType::Struct(fields) => {
                    fields.len() == 2
                        && fields[0].data_type() == &DataType::UInt64
                        && fields[1].data_type() == &DataType::Float32
                }
                _ => false,
            },
            _ => false,
        };
        if !ok {
            return plan_err!(
                "{PAIRS}: expects a list of {{m UBIGINT, a REAL}} structs, not {}",
                args[0]
            );
        }
        Ok(Self::output_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let lists = match &args.args[0] {
            ColumnarValue::Array(a) => Arc::clone(a),
            ColumnarValue::Scalar(s) => s.to_array()?,
        };
        let lists = lists.as_list::<i32>();
        let items = lists.values().as_struct();
        let (ms, as_) = (
            items.column(0).as_primitive::<UInt64Type>(),
            items.column(1).as_primitive::<Float32Type>(),
        );
        let mut offsets = vec![0i32];
        let (mut ks, mut ws) = (Vec::new(), Vec::new());
        let mut user: Vec<(u64, f32)> = Vec::new();
        for r in 0..lists.len() {
            if lists.is_valid(r) {
                let (start, end) = (
                    lists.value_offsets()[r] as usize,
                    lists.value_offsets()[r + 1] as usize,
                );
                user.clear();
                for p in start..end {
                    if items.is_null(p) || ms.is_null(p) || as_.is_null(p) {
                        return exec_err!("{PAIRS}: an item or its affinity is null");
                    }
                    let m = ms.value(p);
                    if m > u64::from(u32::MAX) {
                        return exec_err!("{PAIRS}: item number {m} does not fit in 32 bits");
                    }
                    user.push((m, as_.value(p)));
                }
                user.sort_unstable_by_key(|x| x.0);
                for (x, &(i, ai)) in user.iter().enumerate() {
                    for &(j, aj) in &user[x + 1..] {
                        if i == j {
                            return exec_err!("{PAIRS}: item number {i} is listed twice");
                        }
                        ks.push(i << 32 | j);
                        ws.push(ai.min(aj));
                    }
                }
            }
            let len = i32::try_from(ks.len())
                .or_else(|_| exec_err!("{PAIRS}: more than 2^31 pairs in one batch"))?;
            offsets.push(len);
        }
        let pairs = StructArray::new(
            Self::output_fields(),
            vec![
                Arc::new(UInt64Array::from(ks)) as ArrayRef,
                Arc::new(Float32Array::from(ws)),
            ],
            None,
        );
        Ok(ColumnarValue::Array(Arc::new(ListArray::new(
            Arc::new(Field::new_list_field(
                DataType::Struct(Self::output_fields()),
                false,
            )),
            OffsetBuffer::new(offsets.into()),
            Arc::new(pairs),
            lists.nulls().cloned(),
        ))))
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
            floors: Vec::new(),
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
/// in pairs held and, after a cut, the worst pair kept.
fn push(pairs: &mut Vec<Pair>, pair: Pair, k: usize) -> (isize, Option<Pair>) {
    pairs.push(pair);
    if pairs.len() >= 2 * k {
        let dropped = prune(pairs, k) as isize;
        (1 - dropped, Some(pairs[k - 1]))
    } else {
        (1, None)
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
    /// Per group, once it has been cut to `k`, the worst pair it kept: a
    /// pair worse than it cannot be among the group's `k` best, and is
    /// dropped without touching the group's list (most pairs are, and the
    /// lists are too many to stay in the CPU's caches).
    floors: Vec<Option<Pair>>,
    /// Pairs held over all groups, for [`GroupsAccumulator::size`].
    held: usize,
}

impl Groups {
    fn add(&mut self, g: usize, pair: Pair) {
        if self.floors[g].is_some_and(|f| better(&pair, &f) == Ordering::Greater) {
            return;
        }
        let (added, floor) = push(&mut self.groups[g], pair, self.k);
        self.held = self.held.saturating_add_signed(added);
        if floor.is_some() {
            self.floors[g] = floor;
        }
    }

    fn resize(&mut self, total_num_groups: usize) {
        self.groups.resize_with(total_num_groups, Vec::new);
        self.floors.resize(total_num_groups, None);
    }

    fn emit(&mut self, emit_to: EmitTo) -> ArrayRef {
        let taken = emit_to.take_needed(&mut self.groups);
        emit_to.take_needed(&mut self.floors);
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
        self.resize(total_num_groups);
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
        self.resize(total_num_groups);
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
            + self.floors.capacity() * std::mem::size_of::<Option<Pair>>()
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

/// The name SQL calls the pair scorer by.
pub const SIMILARITY: &str = "nr_similarity";

/// The items' total weights as `nr_similarity` reads them: `d[m]` for item
/// number `m` (numbered from 0), little-endian `f64`s.
pub fn encode_totals(d: &[f64]) -> Vec<u8> {
    d.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The totals file last read, kept while the plan's batches come in.
static TOTALS: std::sync::Mutex<Option<(String, Arc<Vec<f64>>)>> = std::sync::Mutex::new(None);

fn read_totals(path: &str) -> Result<Arc<Vec<f64>>> {
    let mut cached = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((p, d)) = cached.as_ref() {
        if p == path {
            return Ok(Arc::clone(d));
        }
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return exec_err!("{SIMILARITY}: cannot read the totals {path}: {e}"),
    };
    if bytes.len() % 8 != 0 {
        return exec_err!(
            "{SIMILARITY}: the totals {path} are {} bytes, not whole f64s",
            bytes.len()
        );
    }
    let d: Arc<Vec<f64>> = Arc::new(
        bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
    );
    *cached = Some((path.to_string(), Arc::clone(&d)));
    Ok(d)
}

/// `nr_similarity(k UBIGINT, c DOUBLE, totals TEXT literal, measure TEXT literal)`:
/// the pair's score as `REAL`, null where it is not positive and finite.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Similarity {
    signature: Signature,
}

impl Similarity {
    fn new() -> Self {
        Similarity {
            signature: Signature::any(4, Volatility::Immutable),
        }
    }
}

/// The text of a text value, whichever string type the engine chose.
fn text(v: &ScalarValue) -> Option<&str> {
    match v {
        ScalarValue::Utf8(Some(p))
        | ScalarValue::Utf8View(Some(p))
        | ScalarValue::LargeUtf8(Some(p)) => Some(p),
        _ => None,
    }
}

/// A text literal argument of `name`.
pub(super) fn text_literal<'a>(
    value: &'a ColumnarValue,
    name: &str,
    what: &str,
) -> Result<&'a str> {
    if let ColumnarValue::Scalar(v) = value {
        if let Some(p) = text(v) {
            return Ok(p);
        }
    }
    exec_err!(
        "{name}: {what} must be a text literal, not {}",
        value.data_type()
    )
}

impl ScalarUDFImpl for Similarity {
    fn name(&self) -> &str {
        SIMILARITY
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if args[0] != DataType::UInt64 || args[1] != DataType::Float64 {
            return plan_err!(
                "{SIMILARITY}: expects (UBIGINT pair key, DOUBLE weight, totals, measure), not ({}, {})",
                args[0],
                args[1]
            );
        }
        Ok(DataType::Float32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let totals = read_totals(text_literal(&args.args[2], SIMILARITY, "the totals' path")?)?;
        // The same arithmetic as the in-memory build, in f64, then rounded.
        let score: fn(f64, f64, f64) -> f64 =
            match text_literal(&args.args[3], SIMILARITY, "the measure")? {
                "jaccard" => |c, di, dj| c / (di + dj - c).max(f64::MIN_POSITIVE),
                "cosine" => |c, di, dj| c / (di * dj).sqrt().max(f64::MIN_POSITIVE),
                "lift" => |c, di, dj| c / (di * dj).max(f64::MIN_POSITIVE),
                other => return exec_err!("{SIMILARITY}: unknown measure {other:?}"),
            };
        let n = args.number_rows;
        let (keys, weights) = (args.args[0].to_array(n)?, args.args[1].to_array(n)?);
        let (keys, weights) = (
            keys.as_primitive::<UInt64Type>(),
            weights.as_primitive::<datafusion::arrow::datatypes::Float64Type>(),
        );
        let total = |m: u64| -> Result<f64> {
            match totals.get(m as usize) {
                Some(&d) => Ok(d),
                None => exec_err!(
                    "{SIMILARITY}: item number {m} has no total (0 to {})",
                    totals.len().saturating_sub(1)
                ),
            }
        };
        let mut out = Vec::with_capacity(n);
        for r in 0..n {
            if keys.is_null(r) || weights.is_null(r) {
                return exec_err!("{SIMILARITY}: a pair key or weight is null");
            }
            let k = keys.value(r);
            let (di, dj) = (total(k >> 32)?, total(k & u64::from(u32::MAX))?);
            let s = score(weights.value(r), di, dj) as f32;
            // Null where the pair has no similarity (zero, or no finite
            // score), which `nr_top_k` skips: a filter on the score made the
            // engine score every pair twice, once for the filter and once
            // for its output.
            out.push((s > 0.0 && s < f32::INFINITY).then_some(s));
        }
        Ok(ColumnarValue::Array(Arc::new(Float32Array::from(out))))
    }
}

/// The name SQL calls the reader's trim by.
pub const TRIM: &str = "nr_trim";

/// `nr_trim(text)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Trim {
    signature: Signature,
}

impl Trim {
    fn new() -> Self {
        Trim {
            signature: Signature::uniform(
                1,
                vec![DataType::Utf8View, DataType::Utf8, DataType::LargeUtf8],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for Trim {
    fn name(&self) -> &str {
        TRIM
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8View)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let text = args.args[0].to_array(args.number_rows)?;
        let mut out = StringViewBuilder::with_capacity(text.len());
        let mut add = |v: Option<&str>| out.append_option(v.map(str::trim));
        match text.data_type() {
            DataType::Utf8View => text.as_string_view().iter().for_each(&mut add),
            DataType::Utf8 => text.as_string::<i32>().iter().for_each(&mut add),
            DataType::LargeUtf8 => text.as_string::<i64>().iter().for_each(&mut add),
            other => return exec_err!("{TRIM}: expects text, not {other}"),
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
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

    /// `nr_pairs` over the users of `t(u, m, a)`, as sorted `(i, j, w)`.
    fn pairs_of(rows: &[(u64, u64, f32)]) -> Result<Vec<(u64, u64, f32)>> {
        let ctx = SessionContext::new();
        register(&ctx);
        let batch = RecordBatch::try_from_iter(vec![
            (
                "u",
                Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef,
            ),
            (
                "m",
                Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.1))),
            ),
            (
                "a",
                Arc::new(Float32Array::from_iter_values(rows.iter().map(|r| r.2))),
            ),
        ])
        .unwrap();
        ctx.register_batch("t", batch).unwrap();
        let sql = "SELECT p['k'], p['w'] FROM (
                       SELECT unnest(nr_pairs(array_agg(named_struct('m', m, 'a', a)))) AS p
                       FROM t GROUP BY u)";
        let out = block_on(async { ctx.sql(sql).await?.collect().await })?;
        let mut got = Vec::new();
        for b in out {
            let (k, w) = (
                b.column(0).as_primitive::<UInt64Type>(),
                b.column(1).as_primitive::<Float32Type>(),
            );
            for r in 0..b.num_rows() {
                got.push((k.value(r) >> 32, k.value(r) & 0xffff_ffff, w.value(r)));
            }
        }
        got.sort_by_key(|x| (x.0, x.1));
        Ok(got)
    }

    #[test]
    fn pairs_are_every_two_items_of_a_user_smaller_first_with_the_smaller_affinity() {
        let rows = [
            (1, 7, 0.5),
            (1, 3, 2.0),
            (1, 5, 1.0),
            (2, 3, 0.25),
            (2, 9, 4.0),
            (3, 4, 1.0), // alone: no pair
        ];
        assert_eq!(
            pairs_of(&rows).unwrap(),
            vec![(3, 5, 1.0), (3, 7, 0.5), (3, 9, 0.25), (5, 7, 0.5)]
        );
    }

    #[test]
    fn pairs_refuse_an_item_number_past_32_bits_and_a_repeated_item() {
        let err = pairs_of(&[(1, 1 << 32, 1.0), (1, 2, 1.0)]).unwrap_err();
        assert!(err.to_string().contains("does not fit in 32 bits"), "{err}");
        let err = pairs_of(&[(1, 2, 1.0), (1, 2, 0.5)]).unwrap_err();
        assert!(
            err.to_string().contains("item number 2 is listed twice"),
            "{err}"
        );
        let ctx = SessionContext::new();
        register(&ctx);
        let err = block_on(async { ctx.sql("SELECT nr_pairs([1, 2])").await?.collect().await })
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("expects a list of {m UBIGINT, a REAL} structs"),
            "{err}"
        );
    }

    /// `nr_similarity` scores pairs from the totals file as the in-memory
    /// build does, for each measure, and names a missing item or measure.
    #[test]
    fn similarity_scores_pairs_from_the_totals_file() {
        let dir = std::env::temp_dir().join(format!("nestrank-sim-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("totals.bin");
        std::fs::write(&path, encode_totals(&[0.0, 2.0, 3.0, 5.0])).unwrap();
        let path = path.to_str().unwrap().to_string();
        let ctx = SessionContext::new();
        register(&ctx);
        let score = |pair: &str, measure: &str| -> Result<f32> {
            let sql = format!(
                "SELECT {SIMILARITY}(CAST({pair} AS BIGINT UNSIGNED), CAST(1.5 AS DOUBLE), '{path}', '{measure}')"
            );
            let out = block_on(async { ctx.sql(&sql).await?.collect().await })?;
            Ok(out[0].column(0).as_primitive::<Float32Type>().value(0))
        };
        let pair = format!("{}", 1u64 << 32 | 2);
        assert_eq!(
            score(&pair, "jaccard").unwrap(),
            (1.5 / (2.0 + 3.0 - 1.5f64)) as f32
        );
        assert_eq!(
            score(&pair, "cosine").unwrap(),
            (1.5 / (2.0 * 3.0f64).sqrt()) as f32
        );
        assert_eq!(score(&pair, "lift").unwrap(), (1.5 / (2.0 * 3.0f64)) as f32);
        // No similarity (a zero weight): null, which `nr_top_k` skips.
        let sql = format!(
            "SELECT {SIMILARITY}(CAST({pair} AS BIGINT UNSIGNED), CAST(0 AS DOUBLE), '{path}', 'jaccard')"
        );
        let out = block_on(async { ctx.sql(&sql).await?.collect().await }).unwrap();
        assert!(out[0].column(0).is_null(0));
        let got = run(
            &[(1, 10, 0.9), (1, 11, 0.5)],
            "SELECT i, nr_top_k(j, CASE WHEN j = 10 THEN NULL ELSE s END, 3) FROM t GROUP BY i",
        );
        assert_eq!(got, vec![(1, vec![(11, 0.5)])]);
        let far = format!("{}", 1u64 << 32 | 7);
        let err = score(&far, "jaccard").unwrap_err().to_string();
        assert!(err.contains("item number 7 has no total"), "{err}");
        let err = score(&pair, "overlap").unwrap_err().to_string();
        assert!(err.contains("unknown measure"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
