//! The primitive ops, and the table of their backward rules.
//!
//! Each family file holds the forward (methods on [`Var`](crate::Var)), the backward rules and
//! the family's tests:
//!
//! | file | primitives |
//! |---|---|
//! | `elementwise.rs` | add, sub, mul, div, select |
//! | `unary.rs` | add/mul/pow by a scalar, exp, log, sqrt, tanh, sigmoid, relu, abs |
//! | `reduce.rs` | sum and max over axes |
//! | `movement.rs` | expand (broadcast), reshape, permute, narrow, pad |
//! | `matmul.rs` | matmul |
//! | `index.rs` | gather, scatter-add |
//! | `custom.rs` (crate root) | user-defined ops |
//!
//! [`backward`] below is the table of contents: one `match` with one line per primitive. The
//! compiler's exhaustiveness check makes a primitive without a rule impossible.
//! `docs/derivatives.md` mirrors it.

pub(crate) mod elementwise;
pub(crate) mod index;
pub(crate) mod matmul;
pub(crate) mod movement;
pub(crate) mod reduce;
pub(crate) mod unary;

use tensor::{Dims, Float, Indices, Tensor};

use crate::custom::CustomNode;
use crate::error::Result;
use crate::operand::Operand;

/// Axes of a reduction, as a bit mask, and whether they are kept as size-1 axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reduction {
    pub(crate) axes: u64,
    pub(crate) keepdim: bool,
}

impl Reduction {
    pub(crate) fn new(axes: u64, keepdim: bool) -> Self {
        Reduction { axes, keepdim }
    }
}

/// The axis and indices of a gather or scatter-add.
#[derive(Clone, Debug)]
pub(crate) struct AxisIndex {
    pub(crate) axis: usize,
    pub(crate) index: Indices,
}

/// One primitive op with its parameters. Large parameters are boxed so a node stays small
/// (16 bytes for this enum).
#[derive(Clone)]
pub(crate) enum Primitive<T: Float> {
    Add,
    Sub,
    Mul,
    Div,
    /// The condition (already broadcast to the output shape); inputs are the two branches.
    Select(Box<Tensor<T>>),
    AddScalar(T),
    MulScalar(T),
    PowScalar(T),
    Exp,
    Log,
    Sqrt,
    Tanh,
    Sigmoid,
    Relu,
    Abs,
    // Fields inline (not a `Reduction`) so the tag packs beside `keepdim` and the enum stays
    // 16 bytes.
    Sum {
        axes: u64,
        keepdim: bool,
    },
    Max {
        axes: u64,
        keepdim: bool,
    },
    /// Broadcast to the output's shape.
    Expand,
    Reshape,
    Permute(Box<Dims>),
    Narrow {
        axis: u32,
        start: usize,
    },
    Pad {
        axis: u32,
        before: usize,
    },
    Matmul,
    Gather(Box<AxisIndex>),
    /// `zeros(output shape).scatter_add(axis, index, input)`.
    ScatterAdd(Box<AxisIndex>),
    Custom(Box<CustomNode<T>>),
}

macro_rules! primitive_kinds {
    ($($(#[$doc:meta])* $kind:ident => $name:literal,)*) => {
        /// The kind of a primitive op, without its parameters: for inspection, anomaly reports
        /// and the gradcheck registry ([`PrimitiveKind::ALL`] lists every one).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum PrimitiveKind {
            $($(#[$doc])* $kind,)*
        }

        impl PrimitiveKind {
            /// Every primitive kind, in declaration order.
            pub const ALL: &'static [PrimitiveKind] = &[$(PrimitiveKind::$kind,)*];

            /// The op's name as it appears in messages and `docs/derivatives.md`.
            pub fn name(self) -> &'static str {
                match self {
                    $(PrimitiveKind::$kind => $name,)*
                }
            }
        }
    };
}

primitive_kinds! {
    /// a + b
    Add => "add",
    /// a - b
    Sub => "sub",
    /// a * b
    Mul => "mul",
    /// a / b
    Div => "div",
    /// where(condition, a, b)
    Select => "select",
    /// x + c
    AddScalar => "add_scalar",
    /// x * c
    MulScalar => "mul_scalar",
    /// x^p
    PowScalar => "pow_scalar",
    /// e^x
    Exp => "exp",
    /// ln x
    Log => "log",
    /// sqrt x
    Sqrt => "sqrt",
    /// tanh x
    Tanh => "tanh",
    /// 1 / (1 + e^-x)
    Sigmoid => "sigmoid",
    /// max(x, 0)
    Relu => "relu",
    /// |x|
    Abs => "abs",
    /// sum over axes
    Sum => "sum",
    /// max over axes
    Max => "max",
    /// broadcast to a larger shape
    Expand => "expand",
    /// same elements, new shape
    Reshape => "reshape",
    /// reorder axes
    Permute => "permute",
    /// a range along an axis
    Narrow => "narrow",
    /// zero padding along an axis
    Pad => "pad",
    /// matrix product
    Matmul => "matmul",
    /// pick along an axis by index
    Gather => "gather",
    /// add into zeros along an axis by index
    ScatterAdd => "scatter_add",
    /// a user-defined op
    Custom => "custom",
}

impl<T: Float> Primitive<T> {
    /// The kind, without parameters.
    pub(crate) fn kind(&self) -> PrimitiveKind {
        use Primitive as P;
        use PrimitiveKind as K;
        match self {
            P::Add => K::Add,
            P::Sub => K::Sub,
            P::Mul => K::Mul,
            P::Div => K::Div,
            P::Select(_) => K::Select,
            P::AddScalar(_) => K::AddScalar,
            P::MulScalar(_) => K::MulScalar,
            P::PowScalar(_) => K::PowScalar,
            P::Exp => K::Exp,
            P::Log => K::Log,
            P::Sqrt => K::Sqrt,
            P::Tanh => K::Tanh,
            P::Sigmoid => K::Sigmoid,
            P::Relu => K::Relu,
            P::Abs => K::Abs,
            P::Sum { .. } => K::Sum,
            P::Max { .. } => K::Max,
            P::Expand => K::Expand,
            P::Reshape => K::Reshape,
            P::Permute(_) => K::Permute,
            P::Narrow { .. } => K::Narrow,
            P::Pad { .. } => K::Pad,
            P::Matmul => K::Matmul,
            P::Gather(_) => K::Gather,
            P::ScatterAdd(_) => K::ScatterAdd,
            P::Custom(_) => K::Custom,
        }
    }

    /// The op's name (a custom op's own name).
    pub(crate) fn name(&self) -> &str {
        match self {
            Primitive::Custom(node) => node.op.name(),
            other => other.kind().name(),
        }
    }

    /// Indices of the input nodes, given the node's two inline input slots.
    #[inline]
    pub(crate) fn input_indices<'a>(&'a self, slots: &'a [u32; 2]) -> &'a [u32] {
        match self {
            Primitive::Add
            | Primitive::Sub
            | Primitive::Mul
            | Primitive::Div
            | Primitive::Select(_)
            | Primitive::Matmul => &slots[..],
            Primitive::Custom(node) => &node.inputs,
            _ => &slots[..1],
        }
    }
}

/// Hands each of a two-input rule's gradients to `emit`, with the input's position.
fn two<O>(grads: [Option<O>; 2], emit: &mut impl FnMut(usize, O) -> Result<()>) -> Result<()> {
    let [first, second] = grads;
    if let Some(first) = first {
        emit(0, first)?;
    }
    if let Some(second) = second {
        emit(1, second)?;
    }
    Ok(())
}

/// The backward table: the gradients of a node's inputs from the gradient of its output, each
/// handed to `emit(input position, gradient)` as soon as it exists (no intermediate list).
///
/// `grad` is moved in, so a rule may transform it in place. `inputs` and `output` are the
/// node's forward values as operands; `needs[i]` says whether input `i` wants a gradient, so
/// rules skip work nobody reads. Every rule returns one `Option` per input in a fixed-size
/// array, so its arity is checked by the compiler.
pub(crate) fn backward<T: Float, O: Operand<T>>(
    op: &Primitive<T>,
    grad: O,
    inputs: &[&O],
    output: &O,
    needs: &[bool],
    mut emit: impl FnMut(usize, O) -> Result<()>,
) -> Result<()> {
    use Primitive as P;
    use elementwise as e;
    use index as i;
    use movement as m;
    use reduce as r;
    use unary as u;
    let x = inputs[0];
    let both = || [needs[0], needs.get(1).copied().unwrap_or(false)];
    if !needs.iter().any(|&n| n) {
        return Ok(());
    }
    let mut one = |gradient: O| emit(0, gradient);
    match op {
        P::Add => two(e::add_backward(grad, both()), &mut emit),
        P::Sub => two(e::sub_backward(grad, both()), &mut emit),
        P::Mul => two(e::mul_backward(grad, [x, inputs[1]], both()), &mut emit),
        P::Div => two(e::div_backward(grad, inputs[1], output, both()), &mut emit),
        P::Select(condition) => two(e::select_backward(grad, condition, both()), &mut emit),
        P::AddScalar(_) => one(grad),
        P::MulScalar(c) => one(u::mul_scalar_backward(grad, *c)),
        P::PowScalar(p) => one(u::pow_scalar_backward(grad, x, *p)),
        P::Exp => one(u::exp_backward(grad, output)),
        P::Log => one(u::log_backward(grad, x)),
        P::Sqrt => one(u::sqrt_backward(grad, output)),
        P::Tanh => one(u::tanh_backward(grad, output)),
        P::Sigmoid => one(u::sigmoid_backward(grad, output)),
        P::Relu => one(u::relu_backward(grad, x)),
        P::Abs => one(u::abs_backward(grad, x)),
        P::Sum { axes, keepdim } => one(r::sum_backward(grad, x, Reduction::new(*axes, *keepdim))),
        P::Max { axes, keepdim } => one(r::max_backward(
            grad,
            x,
            output,
            Reduction::new(*axes, *keepdim),
        )),
        P::Expand => one(m::expand_backward(grad, x)),
        P::Reshape => one(m::reshape_backward(grad, x)),
        P::Permute(order) => one(m::permute_backward(grad, order)),
        P::Narrow { axis, start } => one(m::narrow_backward(grad, x, *axis as usize, *start)),
        P::Pad { axis, before } => one(m::pad_backward(grad, x, *axis as usize, *before)),
        P::Matmul => two(
            matmul::matmul_backward(grad, [x, inputs[1]], both()),
            &mut emit,
        ),
        P::Gather(arg) => one(i::gather_backward(grad, x, arg)),
        P::ScatterAdd(arg) => one(i::scatter_add_backward(grad, arg)),
        P::Custom(node) => {
            let gradients = O::custom_backward(&*node.op, &grad, inputs, output, needs)?;
            for (position, gradient) in gradients.into_iter().enumerate() {
                if let Some(gradient) = gradient {
                    emit(position, gradient)?;
                }
            }
            Ok(())
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
    fn kind_names_are_unique() {
        let mut names: Vec<&str> = PrimitiveKind::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PrimitiveKind::ALL.len());
    }
}
