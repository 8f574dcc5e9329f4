//! `nr_neighbours(i, j, w, totals, measure, k)`: an item's `k` best
//! co-occurrence neighbours, for a `GROUP BY i` over every directed pair
//! `(i, j, w)` that `nr_pairs` makes of the users' kept items.
//!
//! Per group it adds up each partner `j`'s weights `w` (in `f64`), scores
//! every partner from the items' total weights `d_i`, `d_j` (a file every
//! executor can read, written by [`encode_totals`]): Jaccard
//! `c / (d_i + d_j - c)`, cosine `c / sqrt(d_i d_j)` or lift
//! `c / (d_i d_j)`, rounded to `REAL`, and keeps the `k` best (highest
//! score first, ties to the smaller `j`) as a list of `{j, s}` structs.
//! Partners with no similarity (not positive and finite) are dropped.
//!
//! It replaces a sum grouped by pair (one hash-table entry per pair of
//! items: 245 M of them at 100 M events, a table far past the CPU's caches,
//! looked up once per user pair at random), a scalar scorer and a top-`k`
//! aggregate. Here the engine groups by item, a table that stays in the
//! caches, and a group's partners are appended to its own vector, which is
//! folded (sorted by partner, repeats summed) whenever it is full. It runs
//! in two phases (partial sums, merged after the shuffle), reports its
//! bytes to the engine's memory pool and lets the engine spill its state.

use super::lists::{list_array, list_of};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Float64Array, ListArray, UInt64Array,
};
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float32Type, Float64Type};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;
use std::cmp::Ordering;
use std::sync::Arc;

/// The name SQL calls the neighbour lists by.
pub const NEIGHBOURS: &str = "nr_neighbours";

/// The items' total weights as `nr_neighbours` reads them: `d[m]` for item
/// number `m` (numbered from 0), little-endian `f64`s.
pub fn encode_totals(d: &[f64]) -> Vec<u8> {
    d.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The totals file last read, kept while a plan's batches come in.
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
        Err(e) => return exec_err!("{NEIGHBOURS}: cannot read the totals {path}: {e}"),
    };
    if bytes.len() % 8 != 0 {
        return exec_err!(
            "{NEIGHBOURS}: the totals {path} are {} bytes, not whole f64s",
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

/// A similarity from a pair's summed weight `c` and the two items' totals,
/// in `f64` (the in-memory build's arithmetic; symmetric in the totals).
type Measure = fn(f64, f64, f64) -> f64;

fn measure(name: &str) -> Option<Measure> {
    match name {
        "jaccard" => Some(|c, di, dj| c / (di + dj - c).max(f64::MIN_POSITIVE)),
        "cosine" => Some(|c, di, dj| c / (di * dj).sqrt().max(f64::MIN_POSITIVE)),
        "lift" => Some(|c, di, dj| c / (di * dj).max(f64::MIN_POSITIVE)),
        _ => None,
    }
}

/// `nr_neighbours(i UBIGINT, j UBIGINT, w REAL, totals TEXT literal,
/// measure TEXT literal, k BIGINT literal)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Neighbours {
    signature: Signature,
}

impl Neighbours {
    pub fn new() -> Self {
        Neighbours {
            signature: Signature::any(6, Volatility::Immutable),
        }
    }

    fn literal<'a>(args: &'a AccumulatorArgs, at: usize) -> Option<&'a ScalarValue> {
        let e = args.exprs.get(at)?.downcast_ref::<Literal>()?;
        Some(e.value())
    }

    fn text<'a>(args: &'a AccumulatorArgs, at: usize, what: &str) -> Result<&'a str> {
        match Self::literal(args, at) {
            Some(
                ScalarValue::Utf8(Some(t))
                | ScalarValue::Utf8View(Some(t))
                | ScalarValue::LargeUtf8(Some(t)),
            ) => Ok(t),
            other => plan_err!("{NEIGHBOURS}: {what} must be a text literal, not {other:?}"),
        }
    }

    fn setup(args: &AccumulatorArgs) -> Result<Setup> {
        let k = match Self::literal(args, 5) {
            Some(ScalarValue::Int64(Some(k))) if *k > 0 => *k as usize,
            other => {
                return plan_err!(
                    "{NEIGHBOURS}: k must be a positive integer literal, not {other:?}"
                )
            }
        };
        let name = Self::text(args, 4, "the measure")?;
        let Some(score) = measure(name) else {
            return plan_err!("{NEIGHBOURS}: unknown measure {name:?}");
        };
        let totals = read_totals(Self::text(args, 3, "the totals' path")?)?;
        Ok(Setup { k, score, totals })
    }
}

impl Default for Neighbours {
    fn default() -> Self {
        Self::new()
    }
}

/// What every group is scored with.
#[derive(Debug, Clone)]
struct Setup {
    k: usize,
    score: Measure,
    totals: Arc<Vec<f64>>,
}

/// A neighbour's struct: the item `j` and its score `s`.
fn pair_fields() -> Fields {
    Fields::from(vec![
        Field::new("j", DataType::UInt64, false),
        Field::new("s", DataType::Float32, false),
    ])
}

/// A partial sum's struct: the partner `j` and its summed weight `c`.
fn sum_fields() -> Fields {
    Fields::from(vec![
        Field::new("j", DataType::UInt64, false),
        Field::new("c", DataType::Float64, false),
    ])
}

impl AggregateUDFImpl for Neighbours {
    fn name(&self) -> &str {
        NEIGHBOURS
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let want = [DataType::UInt64, DataType::UInt64, DataType::Float32];
        if args.len() != 6 || args[..3] != want {
            return plan_err!(
                "{NEIGHBOURS}: expects (UBIGINT item, UBIGINT partner, REAL weight, totals, measure, k), not {args:?}"
            );
        }
        Ok(list_of(pair_fields()))
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[item]", args.name),
                DataType::UInt64,
                true,
            )),
            Arc::new(Field::new(
                format!("{}[sums]", args.name),
                list_of(sum_fields()),
                false,
            )),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(One {
            setup: Self::setup(&args)?,
            group: Group::default(),
            scratch: Vec::new(),
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
            setup: Self::setup(&args)?,
            groups: Vec::new(),
            held: 0,
            scratch: Vec::new(),
        }))
    }
}

/// `(s, j)`, best first: the higher score, then the smaller item.
type Pair = (f32, u64);

fn better(a: &Pair, b: &Pair) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// A partner and its summed weight.
type Sum = (u32, f64);

/// One item's partners: `sums` sorted by partner, each once, and the rows
/// since the last fold in `tail`.
#[derive(Debug, Default)]
struct Group {
    /// The group's item (`None` before its first row).
    item: Option<u64>,
    sums: Vec<Sum>,
    tail: Vec<Sum>,
}

/// The fewest rows a group's tail takes before it is folded.
const MIN_TAIL: usize = 32;

impl Group {
    /// Entries held (for the memory pool).
    fn capacity(&self) -> usize {
        self.sums.capacity() + self.tail.capacity()
    }

    /// Adds `w` to partner `j` (`scratch`: working space for a fold).
    #[inline]
    fn add(&mut self, item: u64, j: u32, w: f64, scratch: &mut Vec<Sum>) -> Result<()> {
        match self.item {
            Some(i) if i != item => {
                return exec_err!("{NEIGHBOURS}: items {i} and {item} in one group");
            }
            Some(_) => {}
            None => self.item = Some(item),
        }
        self.tail.push((j, w));
        // Folded once the tail is as long as the sums: each fold's merge
        // is paid for by as many new rows.
        if self.tail.len() >= self.sums.len().max(MIN_TAIL) {
            self.fold(scratch);
        }
        Ok(())
    }

    /// Sorts the tail by partner, adds up its repeats and merges it into
    /// the sums, in place.
    fn fold(&mut self, scratch: &mut Vec<Sum>) {
        if self.tail.is_empty() {
            return;
        }
        sort_by_partner(&mut self.tail, scratch);
        self.tail.dedup_by(|later, kept| {
            if later.0 != kept.0 {
                return false;
            }
            kept.1 += later.1;
            true
        });
        // Merged from the back into the sums' free end; a partner in both
        // leaves a gap, closed at the end.
        let (n, m) = (self.sums.len(), self.tail.len());
        self.sums.resize(n + m, (0, 0.0));
        let (mut old, mut new, mut at) = (n, m, n + m);
        while new > 0 {
            let t = self.tail[new - 1];
            at -= 1;
            if old > 0 && self.sums[old - 1].0 > t.0 {
                self.sums[at] = self.sums[old - 1];
                old -= 1;
            } else if old > 0 && self.sums[old - 1].0 == t.0 {
                self.sums[at] = (t.0, self.sums[old - 1].1 + t.1);
                old -= 1;
                new -= 1;
            } else {
                self.sums[at] = t;
                new -= 1;
            }
        }
        if at > old {
            self.sums.copy_within(at..n + m, old);
            self.sums.truncate(old + (n + m - at));
        }
        self.tail.clear();
        // A long tail is not kept for the next, shorter, fold.
        if self.tail.capacity() > 2 * self.sums.len().max(MIN_TAIL) {
            self.tail = Vec::new();
        }
    }

    /// The `k` best scored partners, best first.
    fn best(&mut self, setup: &Setup, scratch: &mut Vec<Sum>) -> Result<Vec<Pair>> {
        self.fold(scratch);
        let Some(i) = self.item else {
            return Ok(Vec::new());
        };
        let total = |m: u64| -> Result<f64> {
            match setup.totals.get(m as usize) {
                Some(&d) => Ok(d),
                None => exec_err!(
                    "{NEIGHBOURS}: item number {m} has no total (0 to {})",
                    setup.totals.len().saturating_sub(1)
                ),
            }
        };
        let di = total(i)?;
        let mut scored = Vec::with_capacity(self.sums.len());
        for &(j, c) in &self.sums {
            let s = (setup.score)(c, di, total(u64::from(j))?) as f32;
            if s > 0.0 && s < f32::INFINITY {
                scored.push((s, u64::from(j)));
            }
        }
        if scored.len() > setup.k {
            scored.select_nth_unstable_by(setup.k - 1, better);
            scored.truncate(setup.k);
        }
        scored.sort_unstable_by(better);
        Ok(scored)
    }
}

/// Sorts `sums` by partner: a radix sort on the partner's bits, a byte at
/// a time (two passes for up to 65,536 items), for all but short vectors.
fn sort_by_partner(sums: &mut Vec<Sum>, scratch: &mut Vec<Sum>) {
    const BITS: u32 = 8;
    if sums.len() < 128 {
        sums.sort_unstable_by_key(|s| s.0);
        return;
    }
    let top = sums.iter().map(|s| s.0).max().unwrap_or(0);
    let bits = u32::BITS - top.leading_zeros();
    scratch.clear();
    scratch.resize(sums.len(), (0, 0.0));
    let mut shift = 0;
    while shift < bits {
        let mut counts = [0usize; 1 << BITS];
        let digit = |s: &Sum| ((s.0 >> shift) & ((1 << BITS) - 1)) as usize;
        for s in sums.iter() {
            counts[digit(s)] += 1;
        }
        let mut start = 0;
        for c in counts.iter_mut() {
            let n = *c;
            *c = start;
            start += n;
        }
        for s in sums.iter() {
            let d = digit(s);
            scratch[counts[d]] = *s;
            counts[d] += 1;
        }
        std::mem::swap(sums, scratch);
        shift += BITS;
    }
}

fn offset(len: usize) -> Result<i32> {
    i32::try_from(len).or_else(|_| exec_err!("{NEIGHBOURS}: more than 2^31 pairs in one batch"))
}

/// The result: each group's best partners.
fn output(groups: Vec<Group>, setup: &Setup, scratch: &mut Vec<Sum>) -> Result<ArrayRef> {
    let mut offsets = vec![0i32];
    let (mut js, mut ss) = (Vec::new(), Vec::new());
    for mut g in groups {
        for (s, j) in g.best(setup, scratch)? {
            js.push(j);
            ss.push(s);
        }
        offsets.push(offset(js.len())?);
    }
    let columns = vec![
        Arc::new(UInt64Array::from(js)) as ArrayRef,
        Arc::new(Float32Array::from(ss)),
    ];
    Ok(Arc::new(list_array(pair_fields(), columns, offsets)))
}

/// The partial result: each group's item and folded sums.
fn state(groups: Vec<Group>, scratch: &mut Vec<Sum>) -> Result<Vec<ArrayRef>> {
    let total: usize = groups.iter().map(|g| g.sums.len() + g.tail.len()).sum();
    let mut offsets = vec![0i32];
    let mut items = Vec::with_capacity(groups.len());
    let (mut js, mut cs) = (Vec::with_capacity(total), Vec::with_capacity(total));
    for mut g in groups {
        g.fold(scratch);
        items.push(g.item);
        for (j, c) in g.sums {
            js.push(u64::from(j));
            cs.push(c);
        }
        offsets.push(offset(js.len())?);
    }
    let columns = vec![
        Arc::new(UInt64Array::from(js)) as ArrayRef,
        Arc::new(Float64Array::from(cs)),
    ];
    Ok(vec![
        Arc::new(UInt64Array::from(items)),
        Arc::new(list_array(sum_fields(), columns, offsets)),
    ])
}

/// A partner's number, which must fit in 32 bits.
fn partner(j: u64) -> Result<u32> {
    match u32::try_from(j) {
        Ok(j) => Ok(j),
        Err(_) => exec_err!("{NEIGHBOURS}: item number {j} does not fit in 32 bits"),
    }
}

/// The input columns `(i, j, w)`, checked once per batch.
struct Inputs<'a> {
    i: &'a UInt64Array,
    j: &'a UInt64Array,
    w: &'a Float32Array,
}

impl<'a> Inputs<'a> {
    fn of(values: &'a [ArrayRef]) -> Result<Self> {
        let (Some(i), Some(j), Some(w)) = (
            values[0].as_primitive_opt::<UInt64Type>(),
            values[1].as_primitive_opt::<UInt64Type>(),
            values[2].as_primitive_opt::<Float32Type>(),
        ) else {
            return exec_err!("{NEIGHBOURS}: expects (UBIGINT, UBIGINT, REAL) columns");
        };
        Ok(Inputs { i, j, w })
    }

    /// Row `r`; `None` where a value is null or the filter drops it.
    fn row(&self, r: usize, filter: Option<&BooleanArray>) -> Result<Option<(u64, u32, f64)>> {
        if self.i.is_null(r)
            || self.j.is_null(r)
            || self.w.is_null(r)
            || filter.is_some_and(|f| !f.is_valid(r) || !f.value(r))
        {
            return Ok(None);
        }
        Ok(Some((
            self.i.value(r),
            partner(self.j.value(r))?,
            f64::from(self.w.value(r)),
        )))
    }
}

/// The rows of a partial result: per row, the group's item and its sums.
struct Partial<'a> {
    items: &'a UInt64Array,
    lists: &'a ListArray,
    js: &'a UInt64Array,
    cs: &'a Float64Array,
}

impl<'a> Partial<'a> {
    fn of(values: &'a [ArrayRef]) -> Result<Self> {
        let (Some(items), Some(lists)) = (
            values[0].as_primitive_opt::<UInt64Type>(),
            values[1].as_list_opt::<i32>(),
        ) else {
            return exec_err!("{NEIGHBOURS}: a partial result of the wrong types");
        };
        let sums = lists.values().as_struct();
        let (Some(js), Some(cs)) = (
            sums.column(0).as_primitive_opt::<UInt64Type>(),
            sums.column(1).as_primitive_opt::<Float64Type>(),
        ) else {
            return exec_err!("{NEIGHBOURS}: partial sums of type {}", sums.data_type());
        };
        Ok(Partial {
            items,
            lists,
            js,
            cs,
        })
    }

    /// Adds row `r` to `group`.
    fn merge_into(&self, r: usize, group: &mut Group, scratch: &mut Vec<Sum>) -> Result<()> {
        if self.items.is_null(r) || self.lists.is_null(r) {
            return Ok(());
        }
        let item = self.items.value(r);
        let (start, end) = (
            self.lists.value_offsets()[r] as usize,
            self.lists.value_offsets()[r + 1] as usize,
        );
        for p in start..end {
            group.add(item, partner(self.js.value(p))?, self.cs.value(p), scratch)?;
        }
        Ok(())
    }
}

/// Every group's partners, for DataFusion's hash aggregation.
struct Groups {
    setup: Setup,
    groups: Vec<Group>,
    /// Entries' capacity over all groups, for [`GroupsAccumulator::size`].
    held: usize,
    /// Working space for folds.
    scratch: Vec<Sum>,
}

impl Groups {
    fn take(&mut self, emit_to: EmitTo) -> Vec<Group> {
        let taken = emit_to.take_needed(&mut self.groups);
        self.held = self.groups.iter().map(Group::capacity).sum();
        taken
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
        self.groups.resize_with(total_num_groups, Group::default);
        let inputs = Inputs::of(values)?;
        for (r, &g) in group_indices.iter().enumerate() {
            if let Some((i, j, w)) = inputs.row(r, opt_filter)? {
                let group = &mut self.groups[g];
                let before = group.capacity();
                group.add(i, j, w, &mut self.scratch)?;
                self.held = self.held + group.capacity() - before;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let taken = self.take(emit_to);
        output(taken, &self.setup, &mut self.scratch)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let taken = self.take(emit_to);
        state(taken, &mut self.scratch)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Group::default);
        let partial = Partial::of(values)?;
        for (r, &g) in group_indices.iter().enumerate() {
            let group = &mut self.groups[g];
            let before = group.capacity();
            partial.merge_into(r, group, &mut self.scratch)?;
            self.held = self.held + group.capacity() - before;
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let inputs = Inputs::of(values)?;
        let rows = (0..values[0].len())
            .map(|r| {
                Ok(match inputs.row(r, opt_filter)? {
                    Some((i, j, w)) => Group {
                        item: Some(i),
                        sums: vec![(j, w)],
                        tail: Vec::new(),
                    },
                    None => Group::default(),
                })
            })
            .collect::<Result<Vec<Group>>>()?;
        state(rows, &mut Vec::new())
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<Group>()
            + (self.held + self.scratch.capacity()) * std::mem::size_of::<Sum>()
    }
}

/// One group, where DataFusion cannot use [`Groups`].
#[derive(Debug)]
struct One {
    setup: Setup,
    group: Group,
    scratch: Vec<Sum>,
}

impl Accumulator for One {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let inputs = Inputs::of(values)?;
        for r in 0..values[0].len() {
            if let Some((i, j, w)) = inputs.row(r, None)? {
                self.group.add(i, j, w, &mut self.scratch)?;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let group = std::mem::take(&mut self.group);
        let list = output(vec![group], &self.setup, &mut self.scratch)?;
        ScalarValue::try_from_array(&list, 0)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + (self.group.capacity() + self.scratch.capacity()) * std::mem::size_of::<Sum>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let group = Group {
            item: self.group.item,
            sums: self.group.sums.clone(),
            tail: self.group.tail.clone(),
        };
        state(vec![group], &mut self.scratch)?
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let partial = Partial::of(states)?;
        for r in 0..states[0].len() {
            partial.merge_into(r, &mut self.group, &mut self.scratch)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::block_on;
    use datafusion::arrow::array::RecordBatch;
    use datafusion::execution::memory_pool::FairSpillPool;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::physical_plan::display::DisplayableExecutionPlan;
    use datafusion::prelude::{SessionConfig, SessionContext};
    use std::collections::HashMap;

    type Lists = Vec<(u64, Vec<(u64, f32)>)>;

    /// A totals file of `d` in a new folder, removed when dropped.
    struct Totals(std::path::PathBuf);

    impl Totals {
        fn new(name: &str, d: &[f64]) -> Totals {
            let dir = std::env::temp_dir()
                .join(format!("nestrank-neighbours-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("totals.bin"), encode_totals(d)).unwrap();
            Totals(dir)
        }

        fn path(&self) -> String {
            self.0.join("totals.bin").to_str().unwrap().to_string()
        }
    }

    impl Drop for Totals {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Runs `nr_neighbours` over `t(i, j, w)` of `rows`, cut into many
    /// partitions (so that the partial and final phases both run), on a
    /// session with `memory` bytes (a pool whose operators spill) or none;
    /// returns the lists and the executed plan with its metrics.
    fn run(
        rows: &[(u64, u64, f32)],
        totals: &str,
        measure: &str,
        k: i64,
        memory: Option<usize>,
    ) -> Result<(Lists, String)> {
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(bytes) = memory {
            runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(bytes)));
        }
        let config = SessionConfig::new()
            .with_target_partitions(4)
            .with_batch_size(64);
        let ctx = SessionContext::new_with_config_rt(config, runtime.build_arc()?);
        super::super::functions::register(&ctx);
        let batches: Vec<Vec<RecordBatch>> = rows
            .chunks(rows.len().div_ceil(8).max(1))
            .map(|c| {
                let batch = RecordBatch::try_from_iter(vec![
                    (
                        "i",
                        Arc::new(UInt64Array::from_iter_values(c.iter().map(|r| r.0))) as ArrayRef,
                    ),
                    (
                        "j",
                        Arc::new(UInt64Array::from_iter_values(c.iter().map(|r| r.1))),
                    ),
                    (
                        "w",
                        Arc::new(Float32Array::from_iter_values(c.iter().map(|r| r.2))),
                    ),
                ])
                .unwrap();
                // Small batches, so that a small pool fills between them.
                (0..batch.num_rows())
                    .step_by(256)
                    .map(|at| batch.slice(at, 256.min(batch.num_rows() - at)))
                    .collect()
            })
            .collect();
        let table =
            datafusion::datasource::MemTable::try_new(batches[0][0].schema(), batches).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let sql = format!(
            "SELECT i, {NEIGHBOURS}(i, j, w, '{totals}', '{measure}', {k}) FROM t GROUP BY i"
        );
        let (out, plan) = block_on(async {
            let df = ctx.sql(&sql).await?;
            let plan = df.create_physical_plan().await?;
            let out = datafusion::physical_plan::collect(Arc::clone(&plan), ctx.task_ctx()).await?;
            let shown = DisplayableExecutionPlan::with_metrics(plan.as_ref())
                .indent(true)
                .to_string();
            Ok::<_, datafusion::error::DataFusionError>((out, shown))
        })?;
        let mut got = Vec::new();
        for b in out {
            let (i, l) = (
                b.column(0).as_primitive::<UInt64Type>(),
                b.column(1).as_list::<i32>(),
            );
            for r in 0..b.num_rows() {
                let pairs = l.value(r);
                let pairs = pairs.as_struct();
                let (j, s) = (
                    pairs.column(0).as_primitive::<UInt64Type>(),
                    pairs.column(1).as_primitive::<Float32Type>(),
                );
                got.push((
                    i.value(r),
                    (0..j.len()).map(|p| (j.value(p), s.value(p))).collect(),
                ));
            }
        }
        got.sort_by_key(|g: &(u64, Vec<(u64, f32)>)| g.0);
        Ok((got, plan))
    }

    /// The same lists by a plain sum, score and sort.
    fn expected(rows: &[(u64, u64, f32)], d: &[f64], measure: &str, k: usize) -> Lists {
        let score = super::measure(measure).unwrap();
        let mut sums: HashMap<u64, HashMap<u64, f64>> = HashMap::new();
        for &(i, j, w) in rows {
            *sums.entry(i).or_default().entry(j).or_default() += f64::from(w);
        }
        let mut out: Lists = sums
            .into_iter()
            .map(|(i, partners)| {
                let mut scored: Vec<Pair> = partners
                    .into_iter()
                    .map(|(j, c)| (score(c, d[i as usize], d[j as usize]) as f32, j))
                    .filter(|p| p.0 > 0.0 && p.0.is_finite())
                    .collect();
                scored.sort_by(better);
                scored.truncate(k);
                (i, scored.into_iter().map(|(s, j)| (j, s)).collect())
            })
            .collect();
        out.sort_by_key(|g| g.0);
        out
    }

    /// Many rows over few items: every group is folded many times, its
    /// partners recur across partitions, weights are on a grid (exact sums,
    /// as the builder's are) and scores tie.
    fn many_rows(n: usize, heads: u64, items: u64) -> Vec<(u64, u64, f32)> {
        let mut state = 7u64;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let i = (state >> 44) % heads;
                let j = (state >> 20) % items;
                let w = ((state >> 40) % 8) as f32 / 4.0;
                (i, if j == i { items } else { j }, w)
            })
            .collect()
    }

    #[test]
    fn agrees_with_a_sum_a_score_and_a_sort_for_every_measure() {
        let items = 300;
        let rows = many_rows(20_000, 5, items);
        let d: Vec<f64> = (0..=items).map(|m| 50.0 + (m % 13) as f64 * 7.0).collect();
        let totals = Totals::new("agree", &d);
        for measure in ["jaccard", "cosine", "lift"] {
            for k in [1, 5, 50, 1000] {
                let (got, _) = run(&rows, &totals.path(), measure, k, None).unwrap();
                assert_eq!(
                    got,
                    expected(&rows, &d, measure, k as usize),
                    "{measure}, k {k}"
                );
            }
        }
    }

    #[test]
    fn the_radix_sort_orders_every_width_of_partner() {
        let mut state = 11u64;
        for (n, top) in [
            (10, 5u64),
            (300, 1000),
            (5000, 1 << 20),
            (5000, u64::from(u32::MAX)),
        ] {
            let sums: Vec<Sum> = (0..n)
                .map(|x| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (((state >> 16) % (top + 1)) as u32, x as f64)
                })
                .collect();
            let (mut got, mut scratch) = (sums.clone(), Vec::new());
            sort_by_partner(&mut got, &mut scratch);
            let mut want = sums;
            // Stable: equal partners keep their order, as a radix sort does.
            want.sort_by_key(|s| s.0);
            if n >= 128 {
                assert_eq!(got, want, "{n} up to {top}");
            } else {
                assert_eq!(
                    got.iter().map(|s| s.0).collect::<Vec<_>>(),
                    want.iter().map(|s| s.0).collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn spills_under_a_small_pool_and_gives_the_same_lists() {
        // Many groups of a few hundred partners, as items are; small
        // batches, so that the partial sums come to the final phase a few
        // groups at a time, as a large log's do relative to its pool.
        let items = 2000;
        let rows = many_rows(300_000, items, items);
        let d: Vec<f64> = (0..=items).map(|m| 20.0 + (m % 11) as f64).collect();
        let totals = Totals::new("spill", &d);
        let (got, plan) = run(&rows, &totals.path(), "jaccard", 20, Some(2_000_000)).unwrap();
        assert_eq!(got, expected(&rows, &d, "jaccard", 20));
        let spilled = plan
            .lines()
            .filter(|l| l.contains("AggregateExec"))
            .any(|l| !l.contains("spill_count=0,"));
        assert!(spilled, "no aggregate spilled:\n{plan}");
    }

    #[test]
    fn drops_partners_without_similarity_and_names_bad_arguments() {
        // Item 2's total is 0 and the pair (0, 3) has no weight: under
        // lift, 0 -> 2 scores infinity and 0 -> 3 scores 0, both dropped.
        let d = [1.0, 2.0, 0.0, 4.0];
        let totals = Totals::new("args", &d);
        let rows = [(0, 1, 1.0), (0, 2, 1.0), (0, 3, 0.0), (1, 0, 1.0)];
        let (got, _) = run(&rows, &totals.path(), "lift", 5, None).unwrap();
        assert_eq!(got, vec![(0, vec![(1, 0.5)]), (1, vec![(0, 0.5)])]);
        let fails = |rows: &[(u64, u64, f32)], measure: &str, k: i64, want: &str| {
            let err = run(rows, &totals.path(), measure, k, None).unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
        };
        fails(&rows, "lift", 0, "k must be a positive integer literal");
        fails(&rows, "overlap", 5, "unknown measure");
        fails(&[(0, 7, 1.0)], "lift", 5, "item number 7 has no total");
        fails(&[(0, 1 << 32, 1.0)], "lift", 5, "does not fit in 32 bits");
    }
}
