//! The project's own engine functions, where SQL cannot say what the build
//! needs as cheaply.
//!
//! `nr_pairs(items, pass, passes)` turns one user's list of `{m, a}`
//! structs (an item number below 2^32 and its affinity) into every ordered
//! pair of two of its items `(i, j)` whose `i % passes == pass`, as
//! `{i, j, w}` structs with the weight `w = min(a_i, a_j)`. It replaces a
//! self-join of the users' items, which sorted both sides and read them
//! twice; a pass keeps the items whose neighbours one query ranks (with
//! `nr_neighbours`, [`super::neighbours`]), so that a large log's pairs
//! are ranked in several queries, each holding a share of them.
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
    Array, ArrayRef, AsArray, Float32Array, ListArray, StringViewBuilder, StructArray, UInt64Array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float32Type, UInt64Type};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;
use datafusion::prelude::SessionContext;
use std::sync::Arc;

/// Every aggregate the project adds to the engine.
pub fn aggregates() -> Vec<Arc<AggregateUDF>> {
    vec![
        Arc::new(AggregateUDF::from(super::neighbours::Neighbours::new())),
        Arc::new(AggregateUDF::from(AlsSums::new())),
        Arc::new(AggregateUDF::from(super::lists::UserItems::new())),
    ]
}

/// Every scalar function the project adds to the engine.
pub fn scalars() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::from(Pairs::new())),
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

/// `nr_pairs(items LIST<STRUCT<m UBIGINT, a REAL>>, pass BIGINT literal,
/// passes BIGINT literal)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Pairs {
    signature: Signature,
}

impl Pairs {
    fn new() -> Self {
        Pairs {
            signature: Signature::any(3, Volatility::Immutable),
        }
    }

    fn output_fields() -> Fields {
        Fields::from(vec![
            Field::new("i", DataType::UInt64, false),
            Field::new("j", DataType::UInt64, false),
            Field::new("w", DataType::Float32, false),
        ])
    }

    fn output_type() -> DataType {
        DataType::List(Arc::new(Field::new_list_field(
            DataType::Struct(Self::output_fields()),
            false,
        )))
    }

    /// `pass` and `passes`: integer literals, `0 <= pass < passes`.
    fn pass(args: &ScalarFunctionArgs) -> Result<(u64, u64)> {
        let int = |v: &ColumnarValue| match v {
            ColumnarValue::Scalar(ScalarValue::Int64(Some(n))) => u64::try_from(*n).ok(),
            _ => None,
        };
        match (int(&args.args[1]), int(&args.args[2])) {
            (Some(pass), Some(passes)) if pass < passes => Ok((pass, passes)),
            _ => exec_err!(
                "{PAIRS}: pass and passes must be integer literals with 0 <= pass < passes, not {:?} and {:?}",
                args.args[1],
                args.args[2]
            ),
        }
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
        let (pass, passes) = Self::pass(&args)?;
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
        let (mut is, mut js, mut ws) = (Vec::new(), Vec::new(), Vec::new());
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
                if let Some(w) = user.windows(2).find(|w| w[0].0 == w[1].0) {
                    return exec_err!("{PAIRS}: item number {} is listed twice", w[0].0);
                }
                for &(i, ai) in user.iter().filter(|x| x.0 % passes == pass) {
                    for &(j, aj) in &user {
                        if j != i {
                            is.push(i);
                            js.push(j);
                            ws.push(ai.min(aj));
                        }
                    }
                }
            }
            let len = i32::try_from(is.len())
                .or_else(|_| exec_err!("{PAIRS}: more than 2^31 pairs in one batch"))?;
            offsets.push(len);
        }
        let pairs = StructArray::new(
            Self::output_fields(),
            vec![
                Arc::new(UInt64Array::from(is)) as ArrayRef,
                Arc::new(UInt64Array::from(js)),
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

    /// `nr_pairs(items, pass, passes)` over the users of `t(u, m, a)`, as
    /// sorted `(i, j, w)`.
    fn pairs_of(rows: &[(u64, u64, f32)], pass: i64, passes: i64) -> Result<Vec<(u64, u64, f32)>> {
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
        let sql = format!(
            "SELECT p['i'], p['j'], p['w'] FROM (
                 SELECT unnest(nr_pairs(array_agg(named_struct('m', m, 'a', a)), {pass}, {passes})) AS p
                 FROM t GROUP BY u)"
        );
        let out = block_on(async { ctx.sql(&sql).await?.collect().await })?;
        let mut got = Vec::new();
        for b in out {
            let (i, j, w) = (
                b.column(0).as_primitive::<UInt64Type>(),
                b.column(1).as_primitive::<UInt64Type>(),
                b.column(2).as_primitive::<Float32Type>(),
            );
            for r in 0..b.num_rows() {
                got.push((i.value(r), j.value(r), w.value(r)));
            }
        }
        got.sort_by(|x, y| (x.0, x.1).cmp(&(y.0, y.1)).then(x.2.total_cmp(&y.2)));
        Ok(got)
    }

    const USERS: [(u64, u64, f32); 6] = [
        (1, 7, 0.5),
        (1, 3, 2.0),
        (1, 5, 1.0),
        (2, 3, 0.25),
        (2, 9, 4.0),
        (3, 4, 1.0), // alone: no pair
    ];

    #[test]
    fn pairs_are_every_two_items_of_a_user_both_ways_with_the_smaller_affinity() {
        assert_eq!(
            pairs_of(&USERS, 0, 1).unwrap(),
            vec![
                (3, 5, 1.0),
                (3, 7, 0.5),
                (3, 9, 0.25),
                (5, 3, 1.0),
                (5, 7, 0.5),
                (7, 3, 0.5),
                (7, 5, 0.5),
                (9, 3, 0.25),
            ]
        );
    }

    #[test]
    fn a_pass_keeps_the_pairs_of_its_items_and_the_passes_keep_them_all() {
        let all = pairs_of(&USERS, 0, 1).unwrap();
        let mut union = Vec::new();
        for pass in 0..3 {
            let got = pairs_of(&USERS, pass, 3).unwrap();
            assert!(got.iter().all(|p| p.0 % 3 == pass as u64), "{got:?}");
            union.extend(got);
        }
        union.sort_by_key(|x| (x.0, x.1));
        assert_eq!(union, all);
        for (pass, passes) in [(3, 3), (-1, 3), (0, 0)] {
            let err = pairs_of(&USERS, pass, passes).unwrap_err();
            assert!(
                err.to_string()
                    .contains("pass and passes must be integer literals"),
                "{err}"
            );
        }
    }

    #[test]
    fn pairs_refuse_an_item_number_past_32_bits_and_a_repeated_item() {
        let err = pairs_of(&[(1, 1 << 32, 1.0), (1, 2, 1.0)], 0, 1).unwrap_err();
        assert!(err.to_string().contains("does not fit in 32 bits"), "{err}");
        let err = pairs_of(&[(1, 2, 1.0), (1, 2, 0.5)], 0, 1).unwrap_err();
        assert!(
            err.to_string().contains("item number 2 is listed twice"),
            "{err}"
        );
        let ctx = SessionContext::new();
        register(&ctx);
        let err = block_on(async {
            ctx.sql("SELECT nr_pairs([1, 2], 0, 1)")
                .await?
                .collect()
                .await
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("expects a list of {m UBIGINT, a REAL} structs"),
            "{err}"
        );
    }
}
