//! Test support (feature `testing`): proptest strategies for shapes, tensors in a domain and
//! non-contiguous views, and the registry of every primitive with its input domain and
//! argument strategy.
//!
//! The crate's own test suite gradchecks every registry entry over random shapes and layouts;
//! the same strategies let you property-test a custom op:
//!
//! ```
//! use autograd::gradcheck::{gradcheck, GradcheckOptions};
//! use autograd::testing::{Domain, shape_strategy, tensor_strategy};
//! use proptest::prelude::*;
//! use proptest::test_runner::{Config, TestRunner};
//!
//! let mut runner = TestRunner::new(Config::with_cases(16));
//! let inputs = shape_strategy(0..=2, 1..=3).prop_flat_map(|shape| tensor_strategy(shape, Domain::Positive));
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

/// Shapes with rank in `ranks` and every axis size in `sizes`.
pub fn shape_strategy(
    ranks: RangeInclusive<usize>,
    sizes: RangeInclusive<usize>,
) -> BoxedStrategy<Shape> {
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

/// The function a registry instance applies to its input Vars.
pub type Apply = Arc<dyn for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64> + Send + Sync>;

/// One generated test case: the inputs, and the op with its parameters.
#[derive(Clone)]
pub struct Instance {
    /// The op and its parameters, for failure messages.
    pub description: String,
    /// The inputs (possibly non-contiguous views).
    pub inputs: Vec<Tensor<f64>>,
    /// Applies the op.
    pub apply: Apply,
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

/// One primitive: its arity, its input domain, and a strategy for test instances.
#[derive(Clone)]
pub struct RegistryEntry {
    /// Which primitive.
    pub kind: PrimitiveKind,
    /// Number of Var inputs.
    pub arity: usize,
    /// Where its inputs are drawn from.
    pub domain: Domain,
    /// Random shapes, layouts and parameters.
    pub instances: fn() -> BoxedStrategy<Instance>,
}

impl fmt::Debug for RegistryEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (arity {}, {:?})",
            self.kind.name(),
            self.arity,
            self.domain
        )
    }
}

fn instance(description: String, inputs: Vec<Tensor<f64>>, apply: Apply) -> Instance {
    Instance {
        description,
        inputs,
        apply,
    }
}

fn small_shape() -> BoxedStrategy<Shape> {
    shape_strategy(0..=3, 1..=3)
}

fn unary(domain: Domain, name: &'static str, apply: Apply) -> BoxedStrategy<Instance> {
    small_shape()
        .prop_flat_map(move |shape| tensor_strategy(shape, domain))
        .prop_map(move |x| instance(name.to_string(), vec![x], apply.clone()))
        .boxed()
}

fn binary(domain_right: Domain, name: &'static str, apply: Apply) -> BoxedStrategy<Instance> {
    small_shape()
        .prop_flat_map(|shape| (Just(shape.clone()), broadcastable_to(&shape), any::<bool>()))
        .prop_flat_map(move |(big, small, swap)| {
            // Either side may be the broadcast one.
            let (left, right) = if swap { (small, big) } else { (big, small) };
            (
                tensor_strategy(left, Domain::Any),
                tensor_strategy(right, domain_right),
            )
        })
        .prop_map(move |(a, b)| instance(name.to_string(), vec![a, b], apply.clone()))
        .boxed()
}

/// Axes as a subset of `0..rank`, with a keepdim flag.
fn axes_strategy(rank: usize, non_empty: bool) -> BoxedStrategy<(Vec<usize>, bool)> {
    let low = usize::from(non_empty && rank > 0);
    (
        subsequence((0..rank).collect::<Vec<_>>(), low..=rank),
        any::<bool>(),
    )
        .boxed()
}

fn reduction(kind: PrimitiveKind) -> BoxedStrategy<Instance> {
    let domain = if kind == PrimitiveKind::Max {
        Domain::Distinct
    } else {
        Domain::Any
    };
    small_shape()
        .prop_flat_map(move |shape| {
            let rank = shape.rank();
            (
                tensor_strategy(shape, domain),
                axes_strategy(rank, kind == PrimitiveKind::Max),
            )
        })
        .prop_map(move |(x, (axes, keepdim))| {
            let description = format!("{}(axes {axes:?}, keepdim {keepdim})", kind.name());
            let apply: Apply = if kind == PrimitiveKind::Max {
                Arc::new(move |v| v[0].max(&axes, keepdim))
            } else {
                Arc::new(move |v| v[0].sum(&axes, keepdim))
            };
            instance(description, vec![x], apply)
        })
        .boxed()
}

fn select_instances() -> BoxedStrategy<Instance> {
    small_shape()
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
                Arc::new(move |v| Var::select(&condition, v[0], v[1])),
            )
        })
        .boxed()
}

fn expand_instances() -> BoxedStrategy<Instance> {
    small_shape()
        .prop_flat_map(|target| (broadcastable_to(&target), Just(target)))
        .prop_flat_map(|(source, target)| (tensor_strategy(source, Domain::Any), Just(target)))
        .prop_map(|(x, target)| {
            let description = format!("expand(to {target})");
            instance(
                description,
                vec![x],
                Arc::new(move |v| v[0].broadcast_to(&target)),
            )
        })
        .boxed()
}

fn reshape_instances() -> BoxedStrategy<Instance> {
    small_shape()
        .prop_flat_map(|shape| (tensor_strategy(shape.clone(), Domain::Any), 0..3usize))
        .prop_map(|(x, choice)| {
            let dims = x.dims().to_vec();
            let target: Vec<usize> = match choice {
                0 => vec![x.numel()],
                1 => dims.iter().rev().copied().collect(),
                _ => {
                    let mut merged = vec![dims.iter().take(1).product::<usize>().max(1)];
                    merged.push(dims.iter().skip(1).product());
                    merged
                }
            };
            let description = format!("reshape(to {target:?})");
            instance(
                description,
                vec![x],
                Arc::new(move |v| v[0].reshape(target.clone())),
            )
        })
        .boxed()
}

fn permute_instances() -> BoxedStrategy<Instance> {
    small_shape()
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
                Arc::new(move |v| v[0].permute(&order)),
            )
        })
        .boxed()
}

fn narrow_or_pad_instances(pad: bool) -> BoxedStrategy<Instance> {
    shape_strategy(1..=3, 1..=4)
        .prop_flat_map(|shape| {
            let rank = shape.rank();
            (
                tensor_strategy(shape, Domain::Any),
                0..rank,
                0..4usize,
                0..4usize,
            )
        })
        .prop_map(move |(x, axis, first, second)| {
            let size = x.dims()[axis];
            if pad {
                let description = format!("pad(axis {axis}, before {first}, after {second})");
                instance(
                    description,
                    vec![x],
                    Arc::new(move |v| v[0].pad(axis, first, second)),
                )
            } else {
                let start = first % size;
                let len = 1 + second % (size - start);
                let description = format!("narrow(axis {axis}, start {start}, len {len})");
                instance(
                    description,
                    vec![x],
                    Arc::new(move |v| v[0].narrow(axis, start, len)),
                )
            }
        })
        .boxed()
}

fn matmul_instances() -> BoxedStrategy<Instance> {
    (1..=3usize, 1..=3usize, 1..=3usize, 1..=2usize, 0..3usize)
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
                Arc::new(|v| v[0].matmul(v[1])),
            )
        })
        .boxed()
}

fn index_instances(scatter: bool) -> BoxedStrategy<Instance> {
    shape_strategy(1..=3, 1..=3)
        .prop_flat_map(|shape| {
            let rank = shape.rank();
            (Just(shape), 0..rank, 1..=3usize)
        })
        .prop_flat_map(move |(shape, axis, picked)| {
            let mut index_dims = shape.dims().to_vec();
            index_dims[axis] = picked;
            let count: usize = index_dims.iter().product();
            let bound = shape.dims()[axis];
            let source_shape = if scatter {
                Shape::from(index_dims.clone())
            } else {
                shape.clone()
            };
            (
                tensor_strategy(source_shape, Domain::Any),
                proptest::collection::vec(0..bound, count),
                Just((shape, axis, index_dims)),
            )
        })
        .prop_map(move |(x, values, (shape, axis, index_dims))| {
            let index = Indices::new(values, index_dims).expect("sized");
            if scatter {
                let description = format!(
                    "scatter_add(axis {axis}, index {:?}, into {shape})",
                    index.values()
                );
                instance(
                    description,
                    vec![x],
                    Arc::new(move |v| v[0].scatter_add_into(&shape, axis, &index)),
                )
            } else {
                let description = format!("gather(axis {axis}, index {:?})", index.values());
                instance(
                    description,
                    vec![x],
                    Arc::new(move |v| v[0].gather(axis, &index)),
                )
            }
        })
        .boxed()
}

/// The registry's sample custom op: x^3 with its own rule 3 x^2 g (and the same rule on Vars).
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
}

fn scalar_instances(kind: PrimitiveKind) -> BoxedStrategy<Instance> {
    let domain = if kind == PrimitiveKind::PowScalar {
        Domain::Positive
    } else {
        Domain::Any
    };
    small_shape()
        .prop_flat_map(move |shape| {
            (
                tensor_strategy(shape, domain),
                proptest::sample::select(vec![-1.5, 0.5, 2.0, 3.0]),
            )
        })
        .prop_map(move |(x, c)| {
            let description = format!("{}({c})", kind.name());
            let apply: Apply = match kind {
                PrimitiveKind::AddScalar => Arc::new(move |v| v[0].add_scalar(c)),
                PrimitiveKind::MulScalar => Arc::new(move |v| v[0].mul_scalar(c)),
                _ => Arc::new(move |v| v[0].powf(c)),
            };
            instance(description, vec![x], apply)
        })
        .boxed()
}

macro_rules! entry {
    ($kind:ident, $arity:expr, $domain:ident, $instances:expr) => {
        RegistryEntry {
            kind: PrimitiveKind::$kind,
            arity: $arity,
            domain: Domain::$domain,
            instances: || $instances,
        }
    };
}

/// Every primitive with its arity, domain and instance strategy. The test suite checks that
/// [`PrimitiveKind::ALL`] and this list agree, so a new primitive cannot go untested.
pub fn registry() -> Vec<RegistryEntry> {
    use PrimitiveKind as K;
    vec![
        entry!(
            Add,
            2,
            Any,
            binary(Domain::Any, "add", Arc::new(|v| v[0] + v[1]))
        ),
        entry!(
            Sub,
            2,
            Any,
            binary(Domain::Any, "sub", Arc::new(|v| v[0] - v[1]))
        ),
        entry!(
            Mul,
            2,
            Any,
            binary(Domain::Any, "mul", Arc::new(|v| v[0] * v[1]))
        ),
        entry!(
            Div,
            2,
            AwayFromZero,
            binary(Domain::AwayFromZero, "div", Arc::new(|v| v[0] / v[1]))
        ),
        entry!(Select, 2, Any, select_instances()),
        entry!(AddScalar, 1, Any, scalar_instances(K::AddScalar)),
        entry!(MulScalar, 1, Any, scalar_instances(K::MulScalar)),
        entry!(PowScalar, 1, Positive, scalar_instances(K::PowScalar)),
        entry!(
            Exp,
            1,
            Any,
            unary(Domain::Any, "exp", Arc::new(|v| v[0].exp()))
        ),
        entry!(
            Log,
            1,
            Positive,
            unary(Domain::Positive, "log", Arc::new(|v| v[0].log()))
        ),
        entry!(
            Sqrt,
            1,
            Positive,
            unary(Domain::Positive, "sqrt", Arc::new(|v| v[0].sqrt()))
        ),
        entry!(
            Tanh,
            1,
            Any,
            unary(Domain::Any, "tanh", Arc::new(|v| v[0].tanh()))
        ),
        entry!(
            Sigmoid,
            1,
            Any,
            unary(Domain::Any, "sigmoid", Arc::new(|v| v[0].sigmoid()))
        ),
        entry!(
            Relu,
            1,
            AwayFromZero,
            unary(Domain::AwayFromZero, "relu", Arc::new(|v| v[0].relu()))
        ),
        entry!(
            Abs,
            1,
            AwayFromZero,
            unary(Domain::AwayFromZero, "abs", Arc::new(|v| v[0].abs()))
        ),
        entry!(Sum, 1, Any, reduction(K::Sum)),
        entry!(Max, 1, Distinct, reduction(K::Max)),
        entry!(Expand, 1, Any, expand_instances()),
        entry!(Reshape, 1, Any, reshape_instances()),
        entry!(Permute, 1, Any, permute_instances()),
        entry!(Narrow, 1, Any, narrow_or_pad_instances(false)),
        entry!(Pad, 1, Any, narrow_or_pad_instances(true)),
        entry!(Matmul, 2, Any, matmul_instances()),
        entry!(Gather, 1, Any, index_instances(false)),
        entry!(ScatterAdd, 1, Any, index_instances(true)),
        entry!(
            Custom,
            1,
            Any,
            unary(
                Domain::Any,
                "custom cube",
                Arc::new(|v| v[0].tape().custom_op(Cube, &[v[0]]))
            )
        ),
    ]
}
