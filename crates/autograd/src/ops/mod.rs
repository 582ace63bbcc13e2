//! The primitive ops: one table, where each is declared once.
//!
//! Each family file holds the forwards (methods on [`Var`](crate::Var) and the tensor-level
//! forward each row names), the backward rules and the family's tests:
//!
//! | file | primitives |
//! |---|---|
//! | `elementwise.rs` | add, sub, mul, div, select, atan2 |
//! | `unary.rs` | add/mul/pow by a scalar, exp, log, sqrt, tanh, sigmoid, relu, abs |
//! | `reduce.rs` | sum and max over axes |
//! | `movement.rs` | expand (broadcast), reshape, permute, narrow, pad |
//! | `matmul.rs` | matmul |
//! | `index.rs` | gather, scatter-add |
//! | `custom.rs` (crate root) | user-defined ops |
//!
//! The table below is the table of contents: one row per primitive with its name, parameters,
//! arity, forward, backward rule and its line of `docs/derivatives.md` (a test keeps that page
//! equal to these rows). `declare.rs` turns it into the `Primitive` enum, `PrimitiveKind`, and
//! the dispatch of every node to its rule; a rule of the wrong arity does not compile.
//!
//! Adding a primitive touches three places: a row here, its forward and rule in its family
//! file, and its entry in `testing::registry` (which matches on every kind, so a missing one
//! does not compile). `CONTRIBUTING.md` has the checklist.

#[macro_use]
mod declare;
pub(crate) mod elementwise;
pub(crate) mod index;
pub(crate) mod matmul;
pub(crate) mod movement;
mod params;
pub(crate) mod reduce;
pub(crate) mod unary;

pub(crate) use params::{AxisIndex, AxisPad, AxisRange, AxisScatter, axes_of};

use tensor::{Dims, Float, Shape, Tensor, TensorError};

use crate::custom::CustomNode;
use crate::error::{AutogradError, Result};
use crate::operand::Operand;
use crate::tape::Var;

use elementwise as e;
use index as i;
use matmul as mm;
use movement as m;
use reduce as r;
use unary as u;

primitives! {
    ($)
    /// a + b
    Add add {} [2] {
        forward: e::add_forward, backward: e::add_backward,
        tangent: e::add_tangent,
        docs: ["a + b", "(g, g)", "ta + tb", "", "elementwise.rs"],
    }
    /// a - b
    Sub sub {} [2] {
        forward: e::sub_forward, backward: e::sub_backward,
        tangent: e::sub_tangent,
        docs: ["a - b", "(g, -g)", "ta - tb", "", "elementwise.rs"],
    }
    /// a * b
    Mul mul {} [2] {
        forward: e::mul_forward, backward: e::mul_backward,
        tangent: e::mul_tangent,
        docs: ["a * b", "(g b, g a)", "ta b + a tb", "a value used twice gets both contributions added", "elementwise.rs"],
    }
    /// a / b
    Div div {} [2] {
        forward: e::div_forward, backward: e::div_backward,
        tangent: e::div_tangent,
        docs: ["a / b", "(g / b, -(g / b) y)", "(ta - y tb) / b", "", "elementwise.rs"],
    }
    /// where(condition, a, b); the condition is already broadcast to the output's shape.
    Select select { condition: Box<Tensor<T>> } [2] {
        forward: e::select_forward, backward: e::select_backward,
        tangent: e::select_tangent,
        docs: ["where(c, a, b)", "(where(c, g, 0), where(c, 0, g))", "where(c, ta, tb)", "selection, not multiplication by a 0/1 mask: an inf in `g` never becomes NaN in the unchosen branch; the condition gets no gradient", "elementwise.rs"],
    }
    /// atan2(y, x), the angle of the point (x, y)
    Atan2 atan2 {} [2] {
        forward: e::atan2_forward, backward: e::atan2_backward,
        tangent: e::atan2_tangent,
        docs: ["atan2(y, x)", "(g x / (x^2 + y^2), -g y / (x^2 + y^2))", "(x ty - y tx) / (x^2 + y^2)", "undefined at the origin (0, 0), where both are NaN", "elementwise.rs"],
    }
    /// x + c
    AddScalar add_scalar { c: T } [1] {
        forward: u::add_scalar_forward, backward: u::add_scalar_backward,
        tangent: u::add_scalar_tangent,
        docs: ["x + c", "g", "t", "", "unary.rs"],
    }
    /// x * c
    MulScalar mul_scalar { c: T } [1] {
        forward: u::mul_scalar_forward, backward: u::mul_scalar_backward,
        tangent: u::mul_scalar_tangent,
        docs: ["x c", "g c", "t c", "", "unary.rs"],
    }
    /// x^p
    PowScalar pow_scalar { p: T } [1] {
        forward: u::pow_scalar_forward, backward: u::pow_scalar_backward,
        tangent: u::pow_scalar_tangent,
        docs: ["x^p", "g p x^(p-1)", "t p x^(p-1)", "p = 0 gives 0 (not 0 * x^-1)", "unary.rs"],
    }
    /// e^x
    Exp exp {} [1] {
        forward: u::exp_forward, backward: u::exp_backward,
        tangent: u::exp_tangent,
        docs: ["e^x", "g y", "t y", "", "unary.rs"],
    }
    /// ln x
    Log log {} [1] {
        forward: u::log_forward, backward: u::log_backward,
        tangent: u::log_tangent,
        docs: ["ln x", "g / x", "t / x", "", "unary.rs"],
    }
    /// sqrt x
    Sqrt sqrt {} [1] {
        forward: u::sqrt_forward, backward: u::sqrt_backward,
        tangent: u::sqrt_tangent,
        docs: ["sqrt x", "g / (2 y)", "t / (2 y)", "", "unary.rs"],
    }
    /// tanh x
    Tanh tanh {} [1] {
        forward: u::tanh_forward, backward: u::tanh_backward,
        tangent: u::tanh_tangent,
        docs: ["tanh x", "g (1 - y^2)", "t (1 - y^2)", "", "unary.rs"],
    }
    /// 1 / (1 + e^-x)
    Sigmoid sigmoid {} [1] {
        forward: u::sigmoid_forward, backward: u::sigmoid_backward,
        tangent: u::sigmoid_tangent,
        docs: ["1 / (1 + e^-x)", "g y (1 - y)", "t y (1 - y)", "forward is evaluated without overflow for any x", "unary.rs"],
    }
    /// max(x, 0)
    Relu relu {} [1] {
        forward: u::relu_forward, backward: u::relu_backward,
        tangent: u::relu_tangent,
        docs: ["max(x, 0)", "where(x > 0, g, 0)", "where(x > 0, t, 0)", "relu'(0) = 0 (as PyTorch; candle uses 1)", "unary.rs"],
    }
    /// |x|
    Abs abs {} [1] {
        forward: u::abs_forward, backward: u::abs_backward,
        tangent: u::abs_tangent,
        docs: ["\\|x\\|", "g sign(x)", "t sign(x)", "abs'(0) = 0 (as PyTorch)", "unary.rs"],
    }
    /// sum over axes (a bit mask), keeping them as size-1 axes or not
    Sum sum { axes: u64, keepdim: bool } [1] {
        forward: r::sum_forward, backward: r::sum_backward,
        tangent: r::sum_tangent,
        docs: ["sum over axes", "g broadcast back over the reduced axes", "sum of t over the axes", "", "reduce.rs"],
    }
    /// max over axes (a bit mask), keeping them as size-1 axes or not
    Max max { axes: u64, keepdim: bool } [1] {
        forward: r::max_forward, backward: r::max_backward,
        tangent: r::max_tangent,
        docs: ["max over axes", "g broadcast back, divided equally among the elements equal to the maximum, 0 elsewhere", "mean of t over the elements equal to the maximum", "ties share the gradient equally (as `torch.amax` and tinygrad; candle gives every tied element the full gradient)", "reduce.rs"],
    }
    /// broadcast to a larger shape (a view)
    Expand expand { shape: Box<Shape> } [1] {
        forward: m::expand_forward, backward: m::expand_backward,
        tangent: m::expand_tangent,
        docs: ["broadcast to a shape (a view)", "g summed over the broadcast axes back to the input's shape", "t broadcast", "the one place broadcasting is undone", "movement.rs"],
    }
    /// the same elements under a new shape
    Reshape reshape { shape: Box<Shape> } [1] {
        forward: m::reshape_forward, backward: m::reshape_backward,
        tangent: m::reshape_tangent,
        docs: ["same elements, new shape", "g reshaped to the input's shape", "t reshaped", "", "movement.rs"],
    }
    /// reorder the axes
    Permute permute { order: Box<Dims> } [1] {
        forward: m::permute_forward, backward: m::permute_backward,
        tangent: m::permute_tangent,
        docs: ["reorder axes by p", "g permuted by the inverse of p", "t permuted by p", "", "movement.rs"],
    }
    /// a range along an axis (a view)
    Narrow narrow { range: Box<AxisRange> } [1] {
        forward: m::narrow_forward, backward: m::narrow_backward,
        tangent: m::narrow_tangent,
        docs: ["elements start..start+len along an axis", "g zero-padded back to the input's extent", "the same range of t", "", "movement.rs"],
    }
    /// zeros before and after the elements along an axis
    Pad pad { padding: Box<AxisPad> } [1] {
        forward: m::pad_forward, backward: m::pad_backward,
        tangent: m::pad_tangent,
        docs: ["zeros, x, zeros along an axis", "the middle of g (a narrow)", "t padded with zeros", "`narrow` and `pad` are each other's transpose", "movement.rs"],
    }
    /// matrix product (rank 2, or batched rank 3)
    Matmul matmul {} [2] {
        forward: mm::matmul_forward, backward: mm::matmul_backward,
        tangent: mm::matmul_tangent,
        docs: ["A B (rank 2, or batched rank 3)", "(G B^T, A^T G), each summed over the batch when its operand was shared by the batch", "tA B + A tB", "", "matmul.rs"],
    }
    /// pick along an axis by index
    Gather gather { arg: Box<AxisIndex> } [1] {
        forward: i::gather_forward, backward: i::gather_backward,
        tangent: i::gather_tangent,
        docs: ["out[.., j, ..] = x[.., idx[.., j, ..], ..]", "g scatter-added into zeros of x's shape", "t gathered at idx", "repeated indices accumulate; indices get no gradient", "index.rs"],
    }
    /// add into zeros along an axis by index
    ScatterAdd scatter_add { arg: Box<AxisScatter> } [1] {
        forward: i::scatter_add_forward, backward: i::scatter_add_backward,
        tangent: i::scatter_add_tangent,
        docs: ["zeros(shape) with x added at idx", "g gathered at idx", "t scatter-added at idx", "`gather` and `scatter_add` are each other's transpose", "index.rs"],
    }
}

impl<T: Float> std::fmt::Debug for Primitive<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl<T: Float> Primitive<T> {
    /// The op's name (a custom op's own name).
    pub(crate) fn name(&self) -> &str {
        match self {
            Primitive::Custom(node) => node.op.name(),
            other => other.kind().name(),
        }
    }
}

/// A node's inputs (or their `needs` flags) as the fixed-size array its rule takes. Inlined,
/// so that where the length is known (recording an op) the check folds away.
#[inline(always)]
fn fixed<X: Copy, const N: usize, T: Float>(items: &[X], op: &Primitive<T>) -> Result<[X; N]> {
    match <[X; N]>::try_from(items) {
        Ok(array) => Ok(array),
        Err(_) => Err(arity_error(op, N, items.len())),
    }
}

/// The first `N` of a node's inputs (or `needs` flags), for the backward dispatch. A node's
/// input list comes from `input_indices`, which takes its length from the same table row as
/// the rule's `N`, so the lengths always agree; indexing (rather than a `Result`) keeps the
/// per-node cost of the sweep at one comparison per input.
#[inline(always)]
fn node_inputs<X: Copy, const N: usize>(items: &[X]) -> [X; N] {
    std::array::from_fn(|i| items[i])
}

#[cold]
#[inline(never)]
fn arity_error<T: Float>(op: &Primitive<T>, arity: usize, given: usize) -> AutogradError {
    AutogradError::Tensor(TensorError::InvalidArgument {
        op: "apply",
        message: format!("{} takes {arity} inputs, got {given}", op.name()),
    })
}

/// Hands each gradient a rule produced to `emit`, with its input's position: written out per
/// arity (a rule returns one or two), so the sweep pays no iterator for it.
trait HandOut<O> {
    fn hand_out(self, emit: &mut impl FnMut(usize, O) -> Result<()>) -> Result<()>;
}

impl<O> HandOut<O> for [Option<O>; 1] {
    #[inline(always)]
    fn hand_out(self, emit: &mut impl FnMut(usize, O) -> Result<()>) -> Result<()> {
        let [first] = self;
        match first {
            Some(gradient) => emit(0, gradient),
            None => Ok(()),
        }
    }
}

impl<O> HandOut<O> for [Option<O>; 2] {
    #[inline(always)]
    fn hand_out(self, emit: &mut impl FnMut(usize, O) -> Result<()>) -> Result<()> {
        let [first, second] = self;
        if let Some(gradient) = first {
            emit(0, gradient)?;
        }
        match second {
            Some(gradient) => emit(1, gradient),
            None => Ok(()),
        }
    }
}

/// A custom op's gradients, any number of them.
fn hand_out_all<O>(
    gradients: impl IntoIterator<Item = Option<O>>,
    emit: &mut impl FnMut(usize, O) -> Result<()>,
) -> Result<()> {
    for (position, gradient) in gradients.into_iter().enumerate() {
        if let Some(gradient) = gradient {
            emit(position, gradient)?;
        }
    }
    Ok(())
}

/// The tangent of a one-input op's input: the tangent dispatch calls a rule only when some
/// input has one, so for one input it is always there.
#[inline]
pub(crate) fn present<O>([tangent]: [Option<O>; 1]) -> O {
    tangent.expect("the tangent dispatch calls a rule only when an input has a tangent")
}

/// The sum of two tangent contributions, either of which may be absent (zero); the dispatch
/// guarantees at least one is present.
#[inline]
pub(crate) fn sum_of<T: Float, O: Operand<T>>(first: Option<O>, second: Option<O>) -> O {
    match (first, second) {
        (Some(a), Some(b)) => a.add(&b),
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => {
            unreachable!("the tangent dispatch calls a rule only when an input has a tangent")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitive_enum_stays_small() {
        assert!(
            std::mem::size_of::<Primitive<f64>>() <= 16,
            "{}",
            std::mem::size_of::<Primitive<f64>>()
        );
        assert!(std::mem::size_of::<Option<Primitive<f32>>>() <= 16);
    }

    #[test]
    fn kind_names_are_unique_and_arities_match_the_rules() {
        let mut names: Vec<&str> = PrimitiveKind::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PrimitiveKind::ALL.len());
        assert_eq!(PrimitiveKind::Add.arity(), Some(2));
        assert_eq!(PrimitiveKind::Exp.arity(), Some(1));
        assert_eq!(PrimitiveKind::Custom.arity(), None);
    }

    #[test]
    fn every_binary_op_keeps_both_inputs() {
        // The old hand-written input list had a catch-all that gave a new two-input op one
        // input; now the slice comes from the declared arity.
        let slots = [3, 7];
        for kind in PrimitiveKind::ALL {
            if kind.arity() == Some(2) {
                let op: Primitive<f64> = match kind {
                    PrimitiveKind::Add => Primitive::Add {},
                    PrimitiveKind::Atan2 => Primitive::Atan2 {},
                    _ => continue,
                };
                assert_eq!(op.input_indices(&slots), &[3, 7]);
            }
        }
    }
}
