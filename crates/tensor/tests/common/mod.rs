//! Shared strategies and helpers for the tensor crate's property tests.
//!
//! The central piece is [`ViewSpec`]: a recipe (permute / narrow / broadcast steps applied to a
//! contiguous base tensor) that produces a view of a requested logical shape. Every recipe can
//! also compute, without the crate's help, which base element each logical position of the view
//! must show ([`ViewSpec::expected`]), so tests can check the view machinery itself and then use
//! views to check that kernels treat strided and contiguous operands alike.
#![allow(dead_code)]

use proptest::collection::vec;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tensor::{Float, Tensor};

/// Largest rank the strategies produce.
pub const MAX_RANK: usize = 4;

// ----- shapes ----------------------------------------------------------------------------

/// One axis size in 0..=5, with 0 and 1 (the edge cases for broadcasting, reductions and
/// empty tensors) drawn often.
pub fn dim() -> impl Strategy<Value = usize> + Clone {
    prop_oneof![1 => Just(0usize), 3 => Just(1usize), 10 => 2..=5usize]
}

/// An axis size in 1..=5 (for tests that need elements on every axis).
pub fn nonzero_dim() -> impl Strategy<Value = usize> + Clone {
    prop_oneof![1 => Just(1usize), 3 => 2..=5usize]
}

/// A rank in 0..=4, higher ranks (where permutations and broadcasts have room) more often.
pub fn rank() -> impl Strategy<Value = usize> + Clone {
    prop_oneof![1 => Just(0usize), 2 => Just(1usize), 3 => Just(2usize), 3 => Just(3usize), 3 => Just(4usize)]
}

/// A shape of rank 0..=4 with small axes, including size 0 and 1.
pub fn shape() -> impl Strategy<Value = Vec<usize>> + Clone {
    rank().prop_flat_map(|r| vec(dim(), r))
}

/// A shape of rank 0..=4 with no empty axis.
pub fn nonempty_shape() -> impl Strategy<Value = Vec<usize>> + Clone {
    rank().prop_flat_map(|r| vec(nonzero_dim(), r))
}

/// A shape of rank 1..=4 with small axes.
pub fn shape_rank_at_least_one() -> impl Strategy<Value = Vec<usize>> + Clone {
    vec(dim(), 1..=MAX_RANK)
}

/// Number of elements of a shape.
pub fn numel(dims: &[usize]) -> usize {
    dims.iter().product()
}

/// Every multi-index of `dims`, in row-major order (one empty index for a scalar, none when an
/// axis is empty).
pub fn multi_indices(dims: &[usize]) -> Vec<Vec<usize>> {
    if dims.contains(&0) {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(numel(dims));
    let mut index = vec![0usize; dims.len()];
    loop {
        out.push(index.clone());
        let mut axis = dims.len();
        loop {
            if axis == 0 {
                return out;
            }
            axis -= 1;
            index[axis] += 1;
            if index[axis] < dims[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
}

/// Row-major flat position of `index` in `dims`.
pub fn flat(dims: &[usize], index: &[usize]) -> usize {
    assert_eq!(dims.len(), index.len());
    index.iter().zip(dims).fold(0, |acc, (&i, &d)| {
        assert!(i < d);
        acc * d + i
    })
}

/// The NumPy broadcast of two shapes, written out independently of the crate: align trailing
/// axes, missing leading axes count as 1, each pair must be equal or contain a 1.
pub fn numpy_broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let padded = |s: &[usize]| -> Vec<usize> {
        std::iter::repeat_n(1, rank - s.len())
            .chain(s.iter().copied())
            .collect()
    };
    let (a, b) = (padded(a), padded(b));
    a.iter()
        .zip(&b)
        .map(|(&x, &y)| match (x, y) {
            _ if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// Formats dims the way the crate's messages do: `[2, 3]`.
pub fn fmt_dims(dims: &[usize]) -> String {
    format!("{dims:?}")
}

/// A shape `out` can be broadcast from: some leading axes dropped and some axes set to 1.
pub fn broadcast_source(out: Vec<usize>) -> impl Strategy<Value = Vec<usize>> {
    let rank = out.len();
    (0..=rank, vec(prop::bool::weighted(0.35), rank)).prop_map(move |(lead, ones)| {
        (lead..rank)
            .map(|axis| if ones[axis] { 1 } else { out[axis] })
            .collect()
    })
}

/// Two shapes that broadcast together (derived from a common target by dropping leading axes
/// and setting axes to 1; the actual broadcast may be smaller than that target).
pub fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    shape().prop_flat_map(|out| (broadcast_source(out.clone()), broadcast_source(out)))
}

/// A target shape and a source shape that broadcasts to it.
pub fn broadcast_target_and_source() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    shape().prop_flat_map(|out| (Just(out.clone()), broadcast_source(out)))
}

/// A random subset of `0..rank` in random order.
pub fn axes_subset(rank: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::sample::subsequence((0..rank).collect::<Vec<_>>(), 0..=rank).prop_shuffle()
}

// ----- values ----------------------------------------------------------------------------

/// Which values a generated tensor may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Values {
    /// Finite values in about [-10, 10], many of them small integers (so that ties and equal
    /// pairs, which comparisons and argmax care about, are common).
    Finite,
    /// As `Finite`, plus ±0, ±inf, NaN, subnormals and huge magnitudes.
    WithSpecials,
}

/// `n` values drawn from `seed`. Seeded rather than drawn element by element so a base tensor
/// of thousands of elements costs one `u64` of proptest state.
pub fn values(seed: u64, n: usize, kind: Values) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let category = rng.random_range(0..20u32);
            match category {
                0..=7 => f64::from(rng.random_range(-4..=4i32)) * 0.5,
                8..=16 => rng.random_range(-10.0..10.0),
                _ if kind == Values::Finite => rng.random_range(-1.0..1.0),
                _ => match rng.random_range(0..9u32) {
                    0 => 0.0,
                    1 => -0.0,
                    2 => f64::INFINITY,
                    3 => f64::NEG_INFINITY,
                    4 => f64::NAN,
                    5 => 1e-310,
                    6 => -3e-42,
                    7 => 1e30,
                    _ => -2.5e200,
                },
            }
        })
        .collect()
}

/// Converts f64 values to the element type (rounding to nearest for f32).
pub fn cast_values<T: Float>(values: &[f64]) -> Vec<T> {
    values.iter().map(|&x| T::from_f64(x)).collect()
}

/// A contiguous tensor from f64 values.
pub fn tensor<T: Float>(values: &[f64], dims: &[usize]) -> Tensor<T> {
    Tensor::from_vec(cast_values(values), dims).expect("values match the shape")
}

// ----- views -----------------------------------------------------------------------------

/// One step of a view recipe, applied to the tensor built so far.
#[derive(Clone, Debug)]
pub enum Step {
    /// `permute(order)`: axis `i` of the result is axis `order[i]` of the input.
    Permute(Vec<usize>),
    /// `narrow(axis, before[axis], len)` on every axis in turn, where `len` is the axis size
    /// after the step; the input is larger by `before + after` on each axis.
    Narrow {
        /// Elements cut off at the start of each axis.
        before: Vec<usize>,
        /// Elements cut off at the end of each axis.
        after: Vec<usize>,
    },
    /// `broadcast_to(shape after the step)` from an input that lacks `lead` leading axes and has
    /// size 1 where `ones` (one entry per input axis).
    Broadcast {
        /// Leading axes the input lacks.
        lead: usize,
        /// Input axes of size 1 that the broadcast stretches (stride 0).
        ones: Vec<bool>,
    },
}

/// A recipe for a view: a contiguous base of `base_dims` filled from `seed`, then `steps`
/// (each with the shape it produces), in order.
#[derive(Clone, Debug)]
pub struct ViewSpec {
    /// Shape of the contiguous base tensor.
    pub base_dims: Vec<usize>,
    /// The steps, each with the shape it produces; the last shape is the view's shape.
    pub steps: Vec<(Step, Vec<usize>)>,
    /// Seed of the base values.
    pub seed: u64,
    /// Kind of the base values.
    pub kind: Values,
}

impl ViewSpec {
    /// The view's logical shape.
    pub fn dims(&self) -> &[usize] {
        self.steps
            .last()
            .map_or(&self.base_dims, |(_, dims)| dims.as_slice())
    }

    /// The base tensor's values (row-major), as f64.
    pub fn base_values(&self) -> Vec<f64> {
        values(self.seed, numel(&self.base_dims), self.kind)
    }

    /// Builds the view with the crate's view operations.
    pub fn build<T: Float>(&self) -> Tensor<T> {
        let mut t = tensor::<T>(&self.base_values(), &self.base_dims);
        for (step, after) in &self.steps {
            t = match step {
                Step::Permute(order) => t.permute(order),
                Step::Narrow { before, .. } => {
                    let mut narrowed = t;
                    for (axis, (&start, &len)) in before.iter().zip(after).enumerate() {
                        narrowed = narrowed.narrow(axis, start, len);
                    }
                    narrowed
                }
                Step::Broadcast { .. } => t.broadcast_to(after.as_slice()),
            };
        }
        assert_eq!(t.dims(), self.dims());
        t
    }

    /// The view's elements in row-major order, worked out from the recipe alone: each logical
    /// index is mapped back through the steps to a base index.
    pub fn expected<T: Float>(&self) -> Vec<T> {
        let base = cast_values::<T>(&self.base_values());
        multi_indices(self.dims())
            .into_iter()
            .map(|index| base[flat(&self.base_dims, &self.source_index(index))])
            .collect()
    }

    /// The base index that logical `index` of the view reads.
    pub fn source_index(&self, mut index: Vec<usize>) -> Vec<usize> {
        for (step, _) in self.steps.iter().rev() {
            index = match step {
                Step::Permute(order) => {
                    let mut source = vec![0; order.len()];
                    for (i, &p) in order.iter().enumerate() {
                        source[p] = index[i];
                    }
                    source
                }
                Step::Narrow { before, .. } => {
                    index.iter().zip(before).map(|(&i, &b)| i + b).collect()
                }
                Step::Broadcast { lead, ones } => index[*lead..]
                    .iter()
                    .zip(ones)
                    .map(|(&i, &one)| if one { 0 } else { i })
                    .collect(),
            };
        }
        index
    }

    /// True if some step actually changes the layout (the view is not just the base).
    pub fn has_steps(&self) -> bool {
        !self.steps.is_empty()
    }
}

/// Recipes for views of shape `dims`: plain contiguous tensors, permuted (transposed) views,
/// views narrowed out of larger tensors, broadcast (stride-0) views from tensors with size-1 or
/// missing axes, and chains of up to three such steps.
pub fn view_of(dims: Vec<usize>, kind: Values) -> BoxedStrategy<ViewSpec> {
    (steps_back(dims, 3), any::<u64>())
        .prop_map(move |((base_dims, steps), seed)| ViewSpec {
            base_dims,
            steps,
            seed,
            kind,
        })
        .boxed()
}

/// A view of a random shape (see [`shape`]).
pub fn any_view(kind: Values) -> BoxedStrategy<ViewSpec> {
    shape()
        .prop_flat_map(move |dims| view_of(dims, kind))
        .boxed()
}

/// A base shape and the steps, in application order, that turn it into a view.
type Recipe = (Vec<usize>, Vec<(Step, Vec<usize>)>);

/// Chooses the last step producing `dims`, then recursively the steps producing its input.
fn steps_back(dims: Vec<usize>, depth: u32) -> BoxedStrategy<Recipe> {
    if depth == 0 {
        return Just((dims, Vec::new())).boxed();
    }
    let rank = dims.len();
    let stop = Just((dims.clone(), Vec::new()));

    let d = dims.clone();
    let permute = Just((0..rank).collect::<Vec<_>>())
        .prop_shuffle()
        .prop_flat_map(move |order| {
            let mut source = vec![0; rank];
            for (i, &p) in order.iter().enumerate() {
                source[p] = d[i];
            }
            with_step(Step::Permute(order), d.clone(), source, depth)
        });

    let d = dims.clone();
    let narrow =
        (vec(0..=2usize, rank), vec(0..=1usize, rank)).prop_flat_map(move |(before, after)| {
            let source = (0..rank).map(|i| d[i] + before[i] + after[i]).collect();
            with_step(Step::Narrow { before, after }, d.clone(), source, depth)
        });

    let d = dims;
    let broadcast =
        (0..=rank, vec(prop::bool::weighted(0.5), rank)).prop_flat_map(move |(lead, ones)| {
            let ones: Vec<bool> = ones[lead..].to_vec();
            let source = d[lead..]
                .iter()
                .zip(&ones)
                .map(|(&size, &one)| if one { 1 } else { size })
                .collect();
            with_step(Step::Broadcast { lead, ones }, d.clone(), source, depth)
        });

    prop_oneof![1 => stop, 2 => permute, 2 => narrow, 2 => broadcast].boxed()
}

/// The recipes ending in `step` (which turns `source` into `after`).
fn with_step(
    step: Step,
    after: Vec<usize>,
    source: Vec<usize>,
    depth: u32,
) -> BoxedStrategy<Recipe> {
    steps_back(source, depth - 1)
        .prop_map(move |(base, mut steps)| {
            steps.push((step.clone(), after.clone()));
            (base, steps)
        })
        .boxed()
}

// ----- comparisons -----------------------------------------------------------------------

/// The bit pattern of a value, widened to f64 (exact and injective for f32).
pub fn bits<T: Float>(x: T) -> u64 {
    x.to_f64().to_bits()
}

/// Asserts equal shapes and bit-identical elements: -0.0 differs from 0.0, and every finite or
/// infinite value must match exactly.
///
/// NaN matches NaN whatever its bits. The sign and payload of a NaN produced by arithmetic are
/// unspecified (IEEE 754 6.2.3; Rust documents them as non-deterministic), and LLVM may commute
/// the operands of an addition differently in a vectorised and a scalar loop: x86 then
/// propagates a different one of two NaN operands. Both kernel paths do produce a NaN in the
/// same places, which is what is checked.
pub fn assert_same_bits<T: Float>(
    what: &str,
    actual: &Tensor<T>,
    expected: &Tensor<T>,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(actual.dims(), expected.dims(), "{}: shapes differ", what);
    assert_same_bits_vec(what, &actual.to_vec(), &expected.to_vec())
}

/// As [`assert_same_bits`] for element vectors.
pub fn assert_same_bits_vec<T: Float>(
    what: &str,
    actual: &[T],
    expected: &[T],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(actual.len(), expected.len(), "{}: lengths differ", what);
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        prop_assert!(
            bits(a) == bits(e) || (a.is_nan() && e.is_nan()),
            "{}: element {} is {:?} ({:#018x}), expected {:?} ({:#018x})",
            what,
            i,
            a,
            bits(a),
            e,
            bits(e)
        );
    }
    Ok(())
}

/// Asserts equal shapes and elements with identical bits, NaNs included: for operations that
/// only move elements (views, copies, select), which must not touch a NaN's bits.
pub fn assert_identical<T: Float>(
    what: &str,
    actual: &Tensor<T>,
    expected: &Tensor<T>,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(actual.dims(), expected.dims(), "{}: shapes differ", what);
    assert_identical_vec(what, &actual.to_vec(), &expected.to_vec())
}

/// As [`assert_identical`] for element vectors.
pub fn assert_identical_vec<T: Float>(
    what: &str,
    actual: &[T],
    expected: &[T],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(actual.len(), expected.len(), "{}: lengths differ", what);
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        prop_assert!(
            bits(a) == bits(e),
            "{}: element {} is {:?} ({:#018x}), expected {:?} ({:#018x})",
            what,
            i,
            a,
            bits(a),
            e,
            bits(e)
        );
    }
    Ok(())
}

/// Equal as numbers, with NaN equal to NaN (and 0.0 equal to -0.0).
pub fn same_value(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// The message `f` panics with (fails the test if it returns).
pub fn panic_message<R>(f: impl FnOnce() -> R) -> String {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a panic"),
        Err(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    }
}
