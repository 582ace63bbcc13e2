//! Test support (feature `testing`): proptest strategies for shapes, tensors in a domain and
//! non-contiguous views, and two registries: every primitive ([`registry`]) and every
//! composite ([`composites`]), each entry with its arity, input domain and a strategy for test
//! instances (inputs in random shapes and layouts, plus the op's parameters).
//!
//! The crate's own test suite gradchecks every entry over random shapes and layouts, and runs
//! every entry's `try_` form on non-finite and empty inputs in anomaly mode; the same
//! strategies let you property-test a custom op:
//!
//! ```
//! use autograd::gradcheck::{gradcheck, GradcheckOptions};
//! use autograd::testing::{Domain, Sizes, shape_strategy, tensor_strategy};
//! use proptest::prelude::*;
//! use proptest::test_runner::{Config, TestRunner};
//!
//! let mut runner = TestRunner::new(Config::with_cases(16));
//! let inputs = shape_strategy(0..=2, Sizes::NON_EMPTY).prop_flat_map(|shape| tensor_strategy(shape, Domain::Positive));
//! runner
//!     .run(&inputs, |x| {
//!         gradcheck(|v| v[0].sqrt().log(), &[x], &GradcheckOptions::default())
//!             .map(|_| ())
//!             .map_err(|e| TestCaseError::fail(e.to_string()))
//!     })
//!     .unwrap();
//! ```

use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::subsequence;
use tensor::{Indices, Shape, Tensor};

use crate::custom::CustomOp;
use crate::error::AutogradError;
use crate::ops::PrimitiveKind;
use crate::tape::Var;

mod check_op;

pub use check_op::{
    CheckOpOptions, OpCheckFailure, OpCheckReport, OpUnderTest, Stage, StageSummary, Support,
    assert_check_op, catch_panic, check_op, stage_outcome, unsupported_derivative,
};

/// Where an op's inputs must lie for finite differences to be meaningful.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// Anywhere in [-2, 2].
    Any,
    /// In [0.25, 3] (log, sqrt, fractional powers).
    Positive,
    /// |x| in [0.1, 2] (away from the kink at 0 of relu and abs, and from division by 0).
    AwayFromZero,
    /// Pairwise distinct by at least 0.05 (no ties in max).
    Distinct,
}

/// The range of axis sizes a strategy draws: [`Sizes::NON_EMPTY`] for gradient checks,
/// [`Sizes::WITH_EMPTY`] to include tensors with an axis of size 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Smallest axis size.
    pub min: usize,
    /// Largest axis size.
    pub max: usize,
}

impl Sizes {
    /// Axes of 1 to 3 elements.
    pub const NON_EMPTY: Sizes = Sizes { min: 1, max: 3 };
    /// Axes of 0 to 3 elements.
    pub const WITH_EMPTY: Sizes = Sizes { min: 0, max: 3 };

    fn range(self) -> RangeInclusive<usize> {
        self.min..=self.max
    }
}

/// Shapes with rank in `ranks` and every axis size in `sizes`.
pub fn shape_strategy(ranks: RangeInclusive<usize>, sizes: Sizes) -> BoxedStrategy<Shape> {
    let sizes = sizes.range();
    ranks
        .prop_flat_map(move |rank| proptest::collection::vec(sizes.clone(), rank))
        .prop_map(Shape::from)
        .boxed()
}

/// `count` values from `domain`.
pub fn values_strategy(count: usize, domain: Domain) -> BoxedStrategy<Vec<f64>> {
    match domain {
        Domain::Any => proptest::collection::vec(-2.0..2.0, count).boxed(),
        Domain::Positive => proptest::collection::vec(0.25..3.0, count).boxed(),
        Domain::AwayFromZero => proptest::collection::vec((0.1..2.0, any::<bool>()), count)
            .prop_map(|pairs: Vec<(f64, bool)>| {
                pairs
                    .into_iter()
                    .map(|(m, negative)| if negative { -m } else { m })
                    .collect()
            })
            .boxed(),
        Domain::Distinct => (
            Just((0..count).collect::<Vec<usize>>()).prop_shuffle(),
            -1.0..1.0,
        )
            .prop_map(move |(order, offset)| {
                order
                    .into_iter()
                    .map(|i| offset + 0.05 * i as f64 - 0.025 * count as f64)
                    .collect()
            })
            .boxed(),
    }
}

/// How a generated tensor is laid out in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrangement {
    /// Row-major, no gaps.
    Contiguous,
    /// A transposed view of a row-major buffer (last two axes swapped).
    Transposed,
    /// A narrowed view out of a larger buffer.
    Sliced,
    /// A broadcast (stride-0) view of a tensor with a size-1 axis.
    Broadcast,
}

/// The contiguous tensor of `shape` with `values`, arranged in memory as `arrangement`
/// without changing its logical elements (`Broadcast` is handled by [`tensor_strategy`]).
pub fn arrange(
    values: Vec<f64>,
    shape: &Shape,
    arrangement: Arrangement,
    pad_axis: usize,
) -> Tensor<f64> {
    let tensor = Tensor::from_vec(values, shape.clone()).expect("values match the shape");
    match arrangement {
        Arrangement::Transposed if shape.rank() >= 2 => tensor.t().contiguous().t(),
        Arrangement::Sliced if shape.rank() >= 1 => {
            let axis = pad_axis % shape.rank();
            // The padding holds 99s: a kernel that reads outside the view would show them.
            let inside = Tensor::ones(shape.clone()).pad(axis, 1, 2);
            let padded = &tensor.pad(axis, 1, 2) + &((1.0 - &inside) * 99.0);
            padded.narrow(axis, 1, shape.dims()[axis])
        }
        _ => tensor,
    }
}

/// Tensors of `shape` with values in `domain`, in every [`Arrangement`] the shape allows.
pub fn tensor_strategy(shape: Shape, domain: Domain) -> BoxedStrategy<Tensor<f64>> {
    let numel = shape.numel();
    let mut arrangements = vec![Arrangement::Contiguous, Arrangement::Sliced];
    if shape.rank() >= 2 {
        arrangements.push(Arrangement::Transposed);
    }
    let broadcastable: Vec<usize> = (0..shape.rank()).filter(|&a| shape.dims()[a] > 1).collect();
    let direct = {
        let shape = shape.clone();
        (
            values_strategy(numel, domain),
            proptest::sample::select(arrangements),
            0..4usize,
        )
            .prop_map(move |(values, arrangement, pad_axis)| {
                arrange(values, &shape, arrangement, pad_axis)
            })
            .boxed()
    };
    if domain == Domain::Distinct || broadcastable.is_empty() {
        return direct;
    }
    let broadcast = proptest::sample::select(broadcastable)
        .prop_flat_map(move |axis| {
            let mut small = shape.dims().to_vec();
            small[axis] = 1;
            let small = Shape::from(small);
            let target = shape.clone();
            values_strategy(small.numel(), domain).prop_map(move |values| {
                Tensor::from_vec(values, small.clone())
                    .expect("sized")
                    .broadcast_to(&target)
            })
        })
        .boxed();
    prop_oneof![3 => direct, 1 => broadcast].boxed()
}

/// A shape that broadcasts to `shape`: a suffix of its axes, some set to 1.
pub fn broadcastable_to(shape: &Shape) -> BoxedStrategy<Shape> {
    let dims = shape.dims().to_vec();
    let rank = dims.len();
    (0..=rank, proptest::collection::vec(any::<bool>(), rank))
        .prop_map(move |(dropped, ones)| {
            Shape::from(
                (dropped..rank)
                    .map(|a| if ones[a] { 1 } else { dims[a] })
                    .collect::<Vec<_>>(),
            )
        })
        .boxed()
}

/// An op over a set of axes, with a keepdim flag (a reduction's `try_` form).
type AxesOp = for<'t> fn(Var<'t, f64>, &[usize], bool) -> Result<Var<'t, f64>, AutogradError>;

/// A two-input op's `try_` form.
type BinaryOp = for<'t> fn(Var<'t, f64>, Var<'t, f64>) -> Result<Var<'t, f64>, AutogradError>;

/// The fallible function a test instance applies to its input Vars (an op's `try_` form with
/// the instance's parameters).
pub type TryApply =
    Arc<dyn for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>, AutogradError> + Send + Sync>;

/// One generated test case: the inputs, and the op with its parameters.
#[derive(Clone)]
pub struct Instance {
    /// The op and its parameters, for failure messages.
    pub description: String,
    /// The inputs (possibly non-contiguous views).
    pub inputs: Vec<Tensor<f64>>,
    /// Applies the op's `try_` form.
    pub apply: TryApply,
}

impl Instance {
    /// Applies the op, returning its error.
    pub fn try_apply<'t>(&self, inputs: &[Var<'t, f64>]) -> Result<Var<'t, f64>, AutogradError> {
        (self.apply)(inputs)
    }

    /// Applies the op, panicking with the instance's description and the error.
    #[track_caller]
    pub fn apply<'t>(&self, inputs: &[Var<'t, f64>]) -> Var<'t, f64> {
        match (self.apply)(inputs) {
            Ok(output) => output,
            Err(error) => panic!("{}: {error}", self.description),
        }
    }
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layouts: Vec<String> = self
            .inputs
            .iter()
            .map(|x| format!("{} strides {:?}", x.shape(), x.strides()))
            .collect();
        write!(f, "{} on {:?}", self.description, layouts)
    }
}

/// One op of a registry: its name, arity, input domain and a strategy for test instances.
#[derive(Clone)]
pub struct RegistryEntry {
    /// The op's name (a primitive's [`PrimitiveKind::name`], or a composite's method name).
    pub name: &'static str,
    /// Which primitive, for the entries of [`registry`].
    pub kind: Option<PrimitiveKind>,
    /// Number of Var inputs.
    pub arity: usize,
    /// Where its inputs are drawn from.
    pub domain: Domain,
    /// Random shapes (axis sizes in the given range), layouts and parameters.
    pub instances: fn(Sizes) -> BoxedStrategy<Instance>,
}

impl fmt::Debug for RegistryEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (arity {}, {:?})", self.name, self.arity, self.domain)
    }
}

fn instance(description: String, inputs: Vec<Tensor<f64>>, apply: TryApply) -> Instance {
    Instance {
        description,
        inputs,
        apply,
    }
}

/// Shapes of rank 0 to 3.
fn small_shape(sizes: Sizes) -> BoxedStrategy<Shape> {
    shape_strategy(0..=3, sizes)
}

/// One input of any small shape in `domain`.
fn unary(
    sizes: Sizes,
    domain: Domain,
    name: &'static str,
    apply: TryApply,
) -> BoxedStrategy<Instance> {
    small_shape(sizes)
        .prop_flat_map(move |shape| tensor_strategy(shape, domain))
        .prop_map(move |x| instance(name.to_string(), vec![x], apply.clone()))
        .boxed()
}

/// Two inputs whose shapes broadcast together (either side may be the broadcast one).
fn binary(
    sizes: Sizes,
    domain_left: Domain,
    domain_right: Domain,
    name: &'static str,
    apply: TryApply,
) -> BoxedStrategy<Instance> {
    small_shape(sizes)
        .prop_flat_map(|shape| (Just(shape.clone()), broadcastable_to(&shape), any::<bool>()))
        .prop_flat_map(move |(big, small, swap)| {
            let (left, right) = if swap { (small, big) } else { (big, small) };
            (
                tensor_strategy(left, domain_left),
                tensor_strategy(right, domain_right),
            )
        })
        .prop_map(move |(a, b)| instance(name.to_string(), vec![a, b], apply.clone()))
        .boxed()
}

/// An input, any subset of its axes (the empty one, a copy, included) and a keepdim flag.
fn with_axes(sizes: Sizes, domain: Domain) -> BoxedStrategy<(Tensor<f64>, Vec<usize>, bool)> {
    small_shape(sizes)
        .prop_flat_map(move |shape| {
            let rank = shape.rank();
            (
                tensor_strategy(shape, domain),
                subsequence((0..rank).collect::<Vec<_>>(), 0..=rank),
                any::<bool>(),
            )
        })
        .boxed()
}

/// An input of rank at least 1 and one of its axes.
fn with_axis(sizes: Sizes, domain: Domain) -> BoxedStrategy<(Tensor<f64>, usize)> {
    shape_strategy(1..=3, sizes)
        .prop_flat_map(move |shape| {
            let rank = shape.rank();
            (tensor_strategy(shape, domain), 0..rank)
        })
        .boxed()
}

/// A reduction (or a composite of one) over a random subset of the input's axes.
fn reduction(
    sizes: Sizes,
    name: &'static str,
    domain: Domain,
    apply: AxesOp,
) -> BoxedStrategy<Instance> {
    with_axes(sizes, domain)
        .prop_map(move |(x, axes, keepdim)| {
            let description = format!("{name}(axes {axes:?}, keepdim {keepdim})");
            instance(
                description,
                vec![x],
                Arc::new(move |v| apply(v[0], &axes, keepdim)),
            )
        })
        .boxed()
}

fn select_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    small_shape(sizes)
        .prop_flat_map(|shape| {
            (
                broadcastable_to(&shape),
                broadcastable_to(&shape),
                Just(shape),
            )
        })
        .prop_flat_map(|(a, b, condition)| {
            let count = condition.numel();
            (
                tensor_strategy(a, Domain::Any),
                tensor_strategy(b, Domain::Any),
                proptest::collection::vec(any::<bool>(), count),
                Just(condition),
            )
        })
        .prop_map(|(a, b, mask, shape)| {
            let condition = Tensor::from_vec(
                mask.iter().map(|&m| f64::from(u8::from(m))).collect(),
                shape,
            )
            .expect("sized");
            let description = format!("select(condition {:?})", condition.to_vec());
            instance(
                description,
                vec![a, b],
                Arc::new(move |v| Var::try_select(&condition, v[0], v[1])),
            )
        })
        .boxed()
}

fn expand_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    small_shape(sizes)
        .prop_flat_map(|target| (broadcastable_to(&target), Just(target)))
        .prop_flat_map(|(source, target)| (tensor_strategy(source, Domain::Any), Just(target)))
        .prop_map(|(x, target)| {
            let description = format!("expand(to {target})");
            instance(
                description,
                vec![x],
                Arc::new(move |v| v[0].try_broadcast_to(&target)),
            )
        })
        .boxed()
}

fn reshape_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    small_shape(sizes)
        .prop_flat_map(|shape| (tensor_strategy(shape, Domain::Any), 0..3usize))
        .prop_map(|(x, choice)| {
            let dims = x.dims().to_vec();
            let target: Vec<usize> = match choice {
                0 => vec![x.numel()],
                1 => dims.iter().rev().copied().collect(),
                _ => {
                    let mut merged = vec![dims.iter().take(1).product::<usize>()];
                    merged.push(dims.iter().skip(1).product());
                    merged
                }
            };
            let description = format!("reshape(to {target:?})");
            instance(
                description,
                vec![x],
                Arc::new(move |v| v[0].try_reshape(target.clone())),
            )
        })
        .boxed()
}

fn permute_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    small_shape(sizes)
        .prop_flat_map(|shape| {
            let rank = shape.rank();
            (
                tensor_strategy(shape, Domain::Any),
                Just((0..rank).collect::<Vec<usize>>()).prop_shuffle(),
            )
        })
        .prop_map(|(x, order)| {
            let description = format!("permute({order:?})");
            instance(
                description,
                vec![x],
                Arc::new(move |v| v[0].try_permute(&order)),
            )
        })
        .boxed()
}

fn narrow_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    (with_axis(sizes, Domain::Any), 0..4usize, 0..4usize)
        .prop_map(|((x, axis), first, second)| {
            let size = x.dims()[axis];
            // An empty axis allows only the empty range; otherwise at least one element.
            let (start, len) = if size == 0 {
                (0, 0)
            } else {
                let start = first % size;
                (start, 1 + second % (size - start))
            };
            let description = format!("narrow(axis {axis}, start {start}, len {len})");
            instance(
                description,
                vec![x],
                Arc::new(move |v| v[0].try_narrow(axis, start, len)),
            )
        })
        .boxed()
}

fn pad_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    (with_axis(sizes, Domain::Any), 0..4usize, 0..4usize)
        .prop_map(|((x, axis), before, after)| {
            let description = format!("pad(axis {axis}, before {before}, after {after})");
            instance(
                description,
                vec![x],
                Arc::new(move |v| v[0].try_pad(axis, before, after)),
            )
        })
        .boxed()
}

fn matmul_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    let dim = sizes.range();
    (dim.clone(), dim.clone(), dim, 1..=2usize, 0..3usize)
        .prop_flat_map(|(m, k, n, batch, form)| {
            let (left, right) = match form {
                0 => (Shape::from([m, k]), Shape::from([k, n])),
                1 => (Shape::from([batch, m, k]), Shape::from([batch, k, n])),
                _ => (Shape::from([batch, m, k]), Shape::from([k, n])),
            };
            (
                tensor_strategy(left, Domain::Any),
                tensor_strategy(right, Domain::Any),
            )
        })
        .prop_map(|(a, b)| {
            instance(
                "matmul".to_string(),
                vec![a, b],
                Arc::new(|v| v[0].try_matmul(v[1])),
            )
        })
        .boxed()
}

/// Which shape the differentiated input of an index op has.
#[derive(Clone, Copy, Debug)]
enum IndexedInput {
    /// The indexed tensor's (gather reads from it).
    Source,
    /// The index's (scatter_add writes it into the indexed shape).
    IndexShaped,
}

/// An index along `axis` of `shape` (values below the axis size; none when it is empty).
fn index_for(
    sizes: Sizes,
    input: IndexedInput,
) -> BoxedStrategy<(Tensor<f64>, Shape, usize, Indices)> {
    shape_strategy(1..=3, sizes)
        .prop_flat_map(|shape| {
            let rank = shape.rank();
            (Just(shape), 0..rank, 0..=3usize)
        })
        .prop_flat_map(move |(shape, axis, picked)| {
            let bound = shape.dims()[axis];
            let mut index_dims = shape.dims().to_vec();
            // Nothing can be picked from an empty axis.
            index_dims[axis] = if bound == 0 { 0 } else { picked.max(1) };
            let count: usize = index_dims.iter().product();
            let source_shape = match input {
                IndexedInput::IndexShaped => Shape::from(index_dims.clone()),
                IndexedInput::Source => shape.clone(),
            };
            (
                tensor_strategy(source_shape, Domain::Any),
                proptest::collection::vec(0..bound.max(1), count),
                Just((shape, axis, index_dims)),
            )
        })
        .prop_map(|(x, values, (shape, axis, index_dims))| {
            let index = Indices::new(values, index_dims).expect("sized");
            (x, shape, axis, index)
        })
        .boxed()
}

fn gather_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    index_for(sizes, IndexedInput::Source)
        .prop_map(|(x, _, axis, index)| {
            let description = format!("gather(axis {axis}, index {:?})", index.values());
            instance(
                description,
                vec![x],
                Arc::new(move |v| v[0].try_gather(axis, &index)),
            )
        })
        .boxed()
}

fn scatter_add_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    index_for(sizes, IndexedInput::IndexShaped)
        .prop_map(|(x, shape, axis, index)| {
            let description = format!(
                "scatter_add(axis {axis}, index {:?}, into {shape})",
                index.values()
            );
            instance(
                description,
                vec![x],
                Arc::new(move |v| v[0].try_scatter_add_into(&shape, axis, &index)),
            )
        })
        .boxed()
}

/// The registry's sample custom op: x^3 with its own rule 3 x^2 g (and the same rule on Vars),
/// and its tangent rule 3 x^2 t.
#[derive(Clone, Copy, Debug)]
pub struct Cube;

impl CustomOp<f64> for Cube {
    fn name(&self) -> &str {
        "cube"
    }
    fn forward(&self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>, AutogradError> {
        Ok(inputs[0].map(|x| x * x * x))
    }
    fn backward(
        &self,
        grad: &Tensor<f64>,
        inputs: &[&Tensor<f64>],
        _: &Tensor<f64>,
    ) -> Vec<Option<Tensor<f64>>> {
        vec![Some(grad * &inputs[0].square().mul_scalar(3.0))]
    }
    fn backward_on_vars<'t>(
        &self,
        grad: Var<'t, f64>,
        inputs: &[Var<'t, f64>],
        _: Var<'t, f64>,
    ) -> Option<Vec<Option<Var<'t, f64>>>> {
        Some(vec![Some(grad * inputs[0].square() * 3.0)])
    }
    fn tangent<'t>(
        &self,
        tangents: &[Option<Var<'t, f64>>],
        inputs: &[Var<'t, f64>],
        _: Var<'t, f64>,
    ) -> Option<Var<'t, f64>> {
        Some(tangents[0]? * inputs[0].square() * 3.0)
    }
}

/// A one-input op with a scalar parameter drawn from a few values.
fn scalar(
    sizes: Sizes,
    name: &'static str,
    domain: Domain,
    apply: for<'t> fn(Var<'t, f64>, f64) -> Result<Var<'t, f64>, AutogradError>,
) -> BoxedStrategy<Instance> {
    small_shape(sizes)
        .prop_flat_map(move |shape| {
            (
                tensor_strategy(shape, domain),
                proptest::sample::select(vec![-1.5, 0.5, 2.0, 3.0]),
            )
        })
        .prop_map(move |(x, c)| {
            instance(
                format!("{name}({c})"),
                vec![x],
                Arc::new(move |v| apply(v[0], c)),
            )
        })
        .boxed()
}

/// One input in `domain`, with the op applied by method.
fn unary_op(
    sizes: Sizes,
    name: &'static str,
    domain: Domain,
    apply: for<'t> fn(Var<'t, f64>) -> Result<Var<'t, f64>, AutogradError>,
) -> BoxedStrategy<Instance> {
    unary(sizes, domain, name, Arc::new(move |v| apply(v[0])))
}

/// Two broadcasting inputs, with the op applied by method.
fn binary_op(
    sizes: Sizes,
    name: &'static str,
    domains: (Domain, Domain),
    apply: BinaryOp,
) -> BoxedStrategy<Instance> {
    binary(
        sizes,
        domains.0,
        domains.1,
        name,
        Arc::new(move |v| apply(v[0], v[1])),
    )
}

/// Every primitive's registry row: its input domain and its instance strategy. One arm per
/// kind and no wildcard, so a primitive without a row does not compile; its arity comes from
/// the declaration table.
fn row(kind: PrimitiveKind) -> (Domain, fn(Sizes) -> BoxedStrategy<Instance>) {
    use Domain as D;
    use PrimitiveKind as K;
    match kind {
        K::Add => (D::Any, |s| {
            binary_op(s, "add", (D::Any, D::Any), |a, b| a.try_add(b))
        }),
        K::Sub => (D::Any, |s| {
            binary_op(s, "sub", (D::Any, D::Any), |a, b| a.try_sub(b))
        }),
        K::Mul => (D::Any, |s| {
            binary_op(s, "mul", (D::Any, D::Any), |a, b| a.try_mul(b))
        }),
        K::Div => (D::AwayFromZero, |s| {
            binary_op(s, "div", (D::Any, D::AwayFromZero), |a, b| a.try_div(b))
        }),
        K::Select => (D::Any, select_instances),
        // Away from the origin (where it is undefined) and from the branch cut at y = 0.
        K::Atan2 => (D::AwayFromZero, |s| {
            binary_op(s, "atan2", (D::AwayFromZero, D::AwayFromZero), |a, b| {
                a.try_atan2(b)
            })
        }),
        K::AddScalar => (D::Any, |s| {
            scalar(s, "add_scalar", D::Any, |x, c| x.try_add_scalar(c))
        }),
        K::MulScalar => (D::Any, |s| {
            scalar(s, "mul_scalar", D::Any, |x, c| x.try_mul_scalar(c))
        }),
        K::PowScalar => (D::Positive, |s| {
            scalar(s, "pow_scalar", D::Positive, |x, c| x.try_powf(c))
        }),
        K::Exp => (D::Any, |s| unary_op(s, "exp", D::Any, |x| x.try_exp())),
        K::Log => (D::Positive, |s| {
            unary_op(s, "log", D::Positive, |x| x.try_log())
        }),
        K::Sqrt => (D::Positive, |s| {
            unary_op(s, "sqrt", D::Positive, |x| x.try_sqrt())
        }),
        K::Tanh => (D::Any, |s| unary_op(s, "tanh", D::Any, |x| x.try_tanh())),
        K::Sigmoid => (D::Any, |s| {
            unary_op(s, "sigmoid", D::Any, |x| x.try_sigmoid())
        }),
        K::Relu => (D::AwayFromZero, |s| {
            unary_op(s, "relu", D::AwayFromZero, |x| x.try_relu())
        }),
        K::Abs => (D::AwayFromZero, |s| {
            unary_op(s, "abs", D::AwayFromZero, |x| x.try_abs())
        }),
        K::Sum => (D::Any, |s| {
            reduction(s, "sum", D::Any, |x, a, k| x.try_sum(a, k))
        }),
        K::Max => (D::Distinct, |s| {
            reduction(s, "max", D::Distinct, |x, a, k| x.try_max(a, k))
        }),
        K::Expand => (D::Any, expand_instances),
        K::Reshape => (D::Any, reshape_instances),
        K::Permute => (D::Any, permute_instances),
        K::Narrow => (D::Any, narrow_instances),
        K::Pad => (D::Any, pad_instances),
        K::Matmul => (D::Any, matmul_instances),
        K::Gather => (D::Any, gather_instances),
        K::ScatterAdd => (D::Any, scatter_add_instances),
        K::Custom => (D::Any, |s| {
            unary(
                s,
                D::Any,
                "custom cube",
                Arc::new(|v| v[0].tape().try_custom_op(Cube, &[v[0]])),
            )
        }),
    }
}

/// Every primitive with its arity (from the declaration table), domain and instance strategy,
/// in [`PrimitiveKind::ALL`]'s order.
pub fn registry() -> Vec<RegistryEntry> {
    PrimitiveKind::ALL
        .iter()
        .map(|&kind| {
            let (domain, instances) = row(kind);
            RegistryEntry {
                name: kind.name(),
                kind: Some(kind),
                // The registry's custom op (cube) takes one input.
                arity: kind.arity().unwrap_or(1),
                domain,
                instances,
            }
        })
        .collect()
}

fn axis_composite(
    sizes: Sizes,
    name: &'static str,
    apply: for<'t> fn(Var<'t, f64>, usize) -> Result<Var<'t, f64>, AutogradError>,
) -> BoxedStrategy<Instance> {
    with_axis(sizes, Domain::Any)
        .prop_map(move |(x, axis)| {
            instance(
                format!("{name}(axis {axis})"),
                vec![x],
                Arc::new(move |v| apply(v[0], axis)),
            )
        })
        .boxed()
}

fn variance_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    (with_axes(sizes, Domain::Any), any::<bool>())
        .prop_map(move |((x, axes, keepdim), unbiased)| {
            // The unbiased variance of one element is 0/0 (NaN, as in PyTorch): drawn only
            // among the empty-size cases, which test exactly such degenerate inputs.
            let count: usize = axes.iter().map(|&a| x.dims()[a]).product();
            let unbiased = unbiased && (count > 1 || sizes.min == 0);
            let description =
                format!("variance(axes {axes:?}, keepdim {keepdim}, unbiased {unbiased})");
            instance(
                description,
                vec![x],
                Arc::new(move |v| v[0].try_variance(&axes, keepdim, unbiased)),
            )
        })
        .boxed()
}

fn moments_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    (with_axes(sizes, Domain::Any), any::<bool>())
        .prop_map(move |((x, axes, _), unbiased)| {
            let count: usize = axes.iter().map(|&a| x.dims()[a]).product();
            let unbiased = unbiased && (count > 1 || sizes.min == 0);
            let description = format!("moments(axes {axes:?}, unbiased {unbiased})");
            // All three pieces in one output: deviation * (mean + variance).
            let apply: TryApply = Arc::new(move |v| {
                let (mean, deviation, variance) = v[0].try_moments(&axes, unbiased)?;
                deviation.try_mul(mean.try_add(variance)?)
            });
            instance(description, vec![x], apply)
        })
        .boxed()
}

fn concat_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    (shape_strategy(1..=3, sizes), 0..3usize, sizes.range())
        .prop_flat_map(|(shape, axis, other_len)| {
            let axis = axis % shape.rank();
            let mut other = shape.dims().to_vec();
            other[axis] = other_len;
            (
                tensor_strategy(shape, Domain::Any),
                tensor_strategy(Shape::from(other), Domain::Any),
                Just(axis),
            )
        })
        .prop_map(|(a, b, axis)| {
            instance(
                format!("concat(axis {axis})"),
                vec![a, b],
                Arc::new(move |v| Var::try_concat(&[v[0], v[1], v[0]], axis)),
            )
        })
        .boxed()
}

fn sum_to_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    small_shape(sizes)
        .prop_flat_map(|shape| (broadcastable_to(&shape), Just(shape)))
        .prop_flat_map(|(target, shape)| (tensor_strategy(shape, Domain::Any), Just(target)))
        .prop_map(|(x, target)| {
            instance(
                format!("sum_to({target})"),
                vec![x],
                Arc::new(move |v| v[0].try_sum_to(&target)),
            )
        })
        .boxed()
}

fn transpose_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    shape_strategy(1..=3, sizes)
        .prop_flat_map(|shape| {
            let rank = shape.rank();
            (tensor_strategy(shape, Domain::Any), 0..rank, 0..rank)
        })
        .prop_map(|(x, a, b)| {
            instance(
                format!("transpose({a}, {b})"),
                vec![x],
                Arc::new(move |v| v[0].try_transpose(a, b)),
            )
        })
        .boxed()
}

fn slice_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    (with_axis(sizes, Domain::Any), 0..4usize, 0..4usize)
        .prop_map(|((x, axis), first, second)| {
            let size = x.dims()[axis];
            let start = first.min(size);
            let end = (start + second).min(size);
            instance(
                format!("slice(axis {axis}, {start}..{end})"),
                vec![x],
                Arc::new(move |v| v[0].try_slice(axis, start..end)),
            )
        })
        .boxed()
}

fn squeeze_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    (small_shape(sizes), 0..4usize)
        .prop_flat_map(|(shape, at)| {
            // Insert the size-1 axis to remove.
            let at = at % (shape.rank() + 1);
            let mut dims = shape.dims().to_vec();
            dims.insert(at, 1);
            (tensor_strategy(Shape::from(dims), Domain::Any), Just(at))
        })
        .prop_map(|(x, axis)| {
            instance(
                format!("squeeze({axis})"),
                vec![x],
                Arc::new(move |v| v[0].try_squeeze(axis)),
            )
        })
        .boxed()
}

fn unsqueeze_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    (small_shape(sizes), 0..4usize)
        .prop_flat_map(|(shape, at)| {
            let at = at % (shape.rank() + 1);
            (tensor_strategy(shape, Domain::Any), Just(at))
        })
        .prop_map(|(x, axis)| {
            instance(
                format!("unsqueeze({axis})"),
                vec![x],
                Arc::new(move |v| v[0].try_unsqueeze(axis)),
            )
        })
        .boxed()
}

fn index_select_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    with_axis(sizes, Domain::Any)
        .prop_flat_map(|(x, axis)| {
            let bound = x.dims()[axis];
            let picked = if bound == 0 { 0..=0 } else { 1..=3 };
            (
                Just(x),
                Just(axis),
                proptest::collection::vec(0..bound.max(1), picked),
            )
        })
        .prop_map(|(x, axis, indices)| {
            instance(
                format!("index_select(axis {axis}, {indices:?})"),
                vec![x],
                Arc::new(move |v| v[0].try_index_select(axis, &indices)),
            )
        })
        .boxed()
}

fn t_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    shape_strategy(2..=3, sizes)
        .prop_flat_map(|shape| tensor_strategy(shape, Domain::Any))
        .prop_map(|x| instance("t".to_string(), vec![x], Arc::new(|v| v[0].try_t())))
        .boxed()
}

/// A part-weighted concat of `parts` along `axis` (part i times i + 1), so that one output
/// checks every part of a split: its gradient tells the parts apart.
fn weighted_concat<'t>(
    parts: Vec<Var<'t, f64>>,
    axis: usize,
) -> Result<Var<'t, f64>, AutogradError> {
    let weighted = parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| part.try_mul_scalar((i + 1) as f64))
        .collect::<Result<Vec<_>, _>>()?;
    Var::try_concat(&weighted, axis)
}

fn split_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    (
        with_axis(sizes, Domain::Any),
        proptest::collection::vec(0..=3usize, 0..=3),
    )
        .prop_map(|((x, axis), cuts)| {
            // Cut points in 0..=len, sorted: the parts' sizes are the gaps (zeros included).
            let len = x.dims()[axis];
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(len)).collect();
            cuts.sort_unstable();
            let mut parts = Vec::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([len]) {
                parts.push(cut - start);
                start = cut;
            }
            instance(
                format!("split({parts:?}, axis {axis}), weighted and concatenated"),
                vec![x],
                Arc::new(move |v| weighted_concat(v[0].try_split(&parts, axis)?, axis)),
            )
        })
        .boxed()
}

fn chunk_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    (with_axis(sizes, Domain::Any), 1..=4usize)
        .prop_map(|((x, axis), chunks)| {
            instance(
                format!("chunk({chunks}, axis {axis}), weighted and concatenated"),
                vec![x],
                Arc::new(move |v| weighted_concat(v[0].try_chunk(chunks, axis)?, axis)),
            )
        })
        .boxed()
}

fn stack_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    small_shape(sizes)
        .prop_flat_map(|shape| {
            let rank = shape.rank();
            (
                tensor_strategy(shape.clone(), Domain::Any),
                tensor_strategy(shape, Domain::Any),
                0..=rank,
            )
        })
        .prop_map(|(a, b, axis)| {
            instance(
                format!("stack(axis {axis})"),
                vec![a, b],
                Arc::new(move |v| Var::try_stack(&[v[0], v[1], v[0]], axis)),
            )
        })
        .boxed()
}

fn clamp_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    small_shape(sizes)
        .prop_flat_map(|shape| {
            (
                tensor_strategy(shape, Domain::Any),
                proptest::sample::select(vec![(-1.0, 0.5), (-0.5, 1.5), (0.3, 0.3), (-3.0, 3.0)]),
            )
        })
        .prop_map(|(x, (min, max))| {
            instance(
                format!("clamp({min}, {max})"),
                vec![x],
                Arc::new(move |v| v[0].try_clamp(min, max)),
            )
        })
        .boxed()
}

/// A 0/1 tensor of `shape` from `bits`.
fn mask_of(bits: &[bool], shape: Shape) -> Tensor<f64> {
    Tensor::from_vec(
        bits.iter().map(|&m| f64::from(u8::from(m))).collect(),
        shape,
    )
    .expect("sized")
}

fn masked_fill_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    small_shape(sizes)
        .prop_flat_map(|shape| (broadcastable_to(&shape), Just(shape)))
        .prop_flat_map(|(mask, shape)| {
            let count = mask.numel();
            (
                tensor_strategy(shape, Domain::Any),
                proptest::collection::vec(any::<bool>(), count),
                Just(mask),
                proptest::sample::select(vec![-1.5, 0.0, 2.0]),
            )
        })
        .prop_map(|(x, bits, mask, value)| {
            let mask = mask_of(&bits, mask);
            instance(
                format!("masked_fill(mask {:?}, {value})", mask.to_vec()),
                vec![x],
                Arc::new(move |v| v[0].try_masked_fill(&mask, value)),
            )
        })
        .boxed()
}

fn where_scalar_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    small_shape(sizes)
        .prop_flat_map(|shape| (broadcastable_to(&shape), Just(shape), any::<bool>()))
        .prop_flat_map(|(small, big, swap)| {
            // Either the condition or the Var may be the broadcast one.
            let (condition, on_true) = if swap { (small, big) } else { (big, small) };
            let count = condition.numel();
            (
                tensor_strategy(on_true, Domain::Any),
                proptest::collection::vec(any::<bool>(), count),
                Just(condition),
                proptest::sample::select(vec![-1.5, 0.0, 2.0]),
            )
        })
        .prop_map(|(x, bits, condition, value)| {
            let condition = mask_of(&bits, condition);
            instance(
                format!("where_scalar(condition {:?}, {value})", condition.to_vec()),
                vec![x],
                Arc::new(move |v| Var::try_where_scalar(&condition, v[0], value)),
            )
        })
        .boxed()
}

/// The einsum patterns of the registry: the equation, the two inputs' shapes as letters naming
/// drawn sizes ("ab" is [size a, size b]), and which input each operand is.
const EINSUM_PATTERNS: [(&str, [&str; 2], &[usize]); 15] = [
    ("ij,jk->ik", ["ab", "bc"], &[0, 1]),
    ("ij,jk", ["ab", "bc"], &[0, 1]),
    ("bij,bjk->bik", ["abc", "acd"], &[0, 1]),
    ("i,j->ij", ["a", "b"], &[0, 1]),
    ("i,i->", ["a", "a"], &[0, 1]),
    ("bn,bm->nm", ["ab", "ac"], &[0, 1]),
    ("ij,ij->ij", ["ab", "ab"], &[0, 1]),
    ("ii,j->j", ["aa", "b"], &[0, 1]),
    ("ii,i->i", ["aa", "a"], &[0, 1]),
    ("ij,kl->ji", ["ab", "cd"], &[0, 1]),
    ("ijk,jl->lik", ["abc", "bd"], &[0, 1]),
    ("iij,jk", ["aab", "bc"], &[0, 1]),
    ("ba,ca", ["ab", "cb"], &[0, 1]),
    ("ij,jk,kl->il", ["ab", "bb"], &[0, 1, 1]),
    ("ij,ij,ij->j", ["ab", "ab"], &[0, 1, 0]),
];

fn einsum_instances(sizes: Sizes) -> BoxedStrategy<Instance> {
    (
        0..EINSUM_PATTERNS.len(),
        proptest::collection::vec(sizes.range(), 4),
    )
        .prop_flat_map(|(pattern, drawn)| {
            let (_, shapes, _) = EINSUM_PATTERNS[pattern];
            let shape = |letters: &str| {
                Shape::from(
                    letters
                        .bytes()
                        .map(|l| drawn[usize::from(l - b'a')])
                        .collect::<Vec<_>>(),
                )
            };
            (
                Just(pattern),
                tensor_strategy(shape(shapes[0]), Domain::Any),
                tensor_strategy(shape(shapes[1]), Domain::Any),
            )
        })
        .prop_map(|(pattern, a, b)| {
            let (spec, _, operands) = EINSUM_PATTERNS[pattern];
            instance(
                format!("einsum({spec:?}, inputs {operands:?})"),
                vec![a, b],
                Arc::new(move |v| {
                    let vars: Vec<Var<'_, f64>> = operands.iter().map(|&i| v[i]).collect();
                    Var::try_einsum(spec, &vars)
                }),
            )
        })
        .boxed()
}

/// Declares the composites' registry and `for_each_composite!` from one list of rows
/// (name: arity, domain, instances). The first argument is a `$` token (see `ops/declare.rs`).
macro_rules! composites {
    (($d:tt) $($name:ident : $arity:literal, $domain:ident, $instances:expr;)*) => {
        /// Every composite: a public op of [`Var`] built from primitives, by its method name,
        /// with its arity, domain and instance strategy. A test checks that every public
        /// `try_` method of `Var` is in [`registry`] or here.
        pub fn composites() -> Vec<RegistryEntry> {
            vec![
                $(
                    RegistryEntry {
                        name: stringify!($name),
                        kind: None,
                        arity: $arity,
                        domain: Domain::$domain,
                        instances: $instances,
                    },
                )*
            ]
        }

        /// Calls `$m! { square neg ... }` with every composite's name (the test suite makes one
        /// test module per composite from it).
        #[doc(hidden)]
        #[macro_export]
        macro_rules! for_each_composite {
            ($d m:ident) => {
                $d m! { $($name)* }
            };
        }
    };
}

composites! {
    ($)
        sum_of_squares: 1, Any, |s| reduction(s, "sum_of_squares", Domain::Any, |x, a, k| x.try_sum_of_squares(a, k)
        );
        square: 1, Any, |s| unary(
            s,
            Domain::Any,
            "square",
            Arc::new(|v| v[0].try_square())
        );
        neg: 1, Any, |s| unary(
            s,
            Domain::Any,
            "neg",
            Arc::new(|v| v[0].try_neg())
        );
        mean: 1, Any, |s| reduction(s, "mean", Domain::Any, |x, a, k| x.try_mean(a, k)
        );
        mean_all: 1, Any, |s| unary(
            s,
            Domain::Any,
            "mean_all",
            Arc::new(|v| v[0].try_mean_all())
        );
        variance: 1, Any, variance_instances;
        moments: 1, Any, moments_instances;
        min: 1, Distinct, |s| reduction(s, "min", Domain::Distinct, |x, a, k| x.try_min(a, k)
        );
        min_all: 1, Distinct, |s| unary(
            s,
            Domain::Distinct,
            "min_all",
            Arc::new(|v| v[0].try_min_all())
        );
        max_all: 1, Distinct, |s| unary(
            s,
            Domain::Distinct,
            "max_all",
            Arc::new(|v| v[0].try_max_all())
        );
        sum_all: 1, Any, |s| unary(
            s,
            Domain::Any,
            "sum_all",
            Arc::new(|v| v[0].try_sum_all())
        );
        logsumexp: 1, Any, |s| reduction(s, "logsumexp", Domain::Any, |x, a, k| x.try_logsumexp(a, k)
        );
        log_softmax: 1, Any, |s| axis_composite(
            s,
            "log_softmax",
            |x, a| x.try_log_softmax(a)
        );
        softmax: 1, Any, |s| axis_composite(
            s,
            "softmax",
            |x, a| x.try_softmax(a)
        );
        softplus: 1, Any, |s| unary(
            s,
            Domain::Any,
            "softplus",
            Arc::new(|v| v[0].try_softplus())
        );
        maximum: 2, Any, |s| binary(
            s,
            Domain::Any,
            Domain::Any,
            "maximum",
            Arc::new(|v| v[0].try_maximum(v[1]))
        );
        minimum: 2, Any, |s| binary(
            s,
            Domain::Any,
            Domain::Any,
            "minimum",
            Arc::new(|v| v[0].try_minimum(v[1]))
        );
        concat: 2, Any, concat_instances;
        sum_to: 1, Any, sum_to_instances;
        transpose: 1, Any, transpose_instances;
        t: 1, Any, t_instances;
        slice: 1, Any, slice_instances;
        squeeze: 1, Any, squeeze_instances;
        unsqueeze: 1, Any, unsqueeze_instances;
        flatten: 1, Any, |s| unary(
            s,
            Domain::Any,
            "flatten",
            Arc::new(|v| v[0].try_flatten())
        );
        index_select: 1, Any, index_select_instances;
        split: 1, Any, split_instances;
        chunk: 1, Any, chunk_instances;
        stack: 2, Any, stack_instances;
        clamp: 1, Any, clamp_instances;
        clamp_min: 1, Any, |s| scalar(s, "clamp_min", Domain::Any, |x, c| x.try_clamp_min(c));
        clamp_max: 1, Any, |s| scalar(s, "clamp_max", Domain::Any, |x, c| x.try_clamp_max(c));
        masked_fill: 1, Any, masked_fill_instances;
        where_scalar: 1, Any, where_scalar_instances;
        einsum: 2, Any, einsum_instances;
}
