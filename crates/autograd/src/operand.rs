//! [`Operand`], the vocabulary backward rules are written in; the docs are on the trait.

use smallvec::SmallVec;
use tensor::{Float, Indices, Shape, Tensor};

use crate::custom::{CustomOp, checked_gradients};
use crate::error::{AutogradError, Result, or_panic};
use crate::ops::Primitive;
use crate::tape::Var;

mod sealed {
    pub trait Sealed {}
    impl<T: tensor::Float> Sealed for tensor::Tensor<T> {}
    impl<T: tensor::Float> Sealed for crate::Var<'_, T> {}
}

/// Values a backward rule can compute with: raw tensors or tape variables. Implemented for
/// [`Tensor`] and [`Var`] only (sealed); write generic code against it to give a custom op one
/// rule for both [`CustomOp::backward`] and [`CustomOp::backward_on_vars`].
///
/// Every rule is a generic function over `O: Operand<T>`. The plain backward pass evaluates the
/// rules on raw [`Tensor`]s; [`Var::backward_create_graph`](crate::Var::backward_create_graph)
/// evaluates the very same functions on [`Var`]s, so the gradients are themselves recorded on
/// the tape and can be differentiated again. One rule, two evaluations: higher-order gradients
/// cannot drift from first-order ones.
///
/// Methods that transform an operand take it by value: the tensor implementation then writes
/// into the operand's own buffer when nothing else holds it (a gradient on its way through the
/// sweep usually is), so most backward rules allocate nothing.
///
/// Methods with a default body are fused helpers: composed from the required methods (that is
/// what the `Var` evaluation uses, and what defines their meaning), and overridden for
/// `Tensor` by a single-pass kernel where a benchmark showed it pays. Tests compare each
/// override against its composed default.
pub trait Operand<T: Float>: Clone + sealed::Sealed {
    /// The forward value.
    fn value(&self) -> Tensor<T>;
    /// The value's shape.
    fn shape(&self) -> Shape;
    /// A constant in the same space as `self` (no gradient flows into it).
    fn constant(&self, value: Tensor<T>) -> Self;

    /// Element-wise sum (equal shapes).
    fn add(self, other: &Self) -> Self;
    /// Element-wise difference (equal shapes).
    fn sub(self, other: &Self) -> Self;
    /// Element-wise product (equal shapes).
    fn mul(self, other: &Self) -> Self;
    /// Element-wise quotient (equal shapes).
    fn div(self, other: &Self) -> Self;
    /// x + c.
    fn add_scalar(self, c: T) -> Self;
    /// x * c.
    fn mul_scalar(self, c: T) -> Self;
    /// x^p.
    fn pow_scalar(self, p: T) -> Self;
    /// Sum over the axes that broadcasting `shape` would repeat (the reverse of broadcast).
    fn sum_to(self, shape: &Shape) -> Self;
    /// Broadcast view to `shape`.
    fn broadcast_to(self, shape: &Shape) -> Self;
    /// Same elements, new shape.
    fn reshape(self, shape: &Shape) -> Self;
    /// Axis `i` of the result is axis `permutation[i]` of `self`.
    fn permute(self, permutation: &[usize]) -> Self;
    /// Elements `start..start + len` along `axis`.
    fn narrow(self, axis: usize, start: usize, len: usize) -> Self;
    /// Zero padding along `axis`.
    fn pad(self, axis: usize, before: usize, after: usize) -> Self;
    /// Matrix product (rank 2 or batched rank 3).
    fn matmul(self, other: &Self) -> Self;
    /// One element along `axis` per index.
    fn gather(self, axis: usize, index: &Indices) -> Self;
    /// `zeros(shape).scatter_add(axis, index, self)`: the transpose of gather.
    fn scatter_add_into(self, shape: &Shape, axis: usize, index: &Indices) -> Self;
    /// `on_true` where `condition` is non-zero, `on_false` elsewhere (equal shapes).
    fn select(condition: &Tensor<T>, on_true: &Self, on_false: &Self) -> Self;

    /// Any primitive applied to `inputs` in this operand space (computed on tensors, recorded
    /// on the tape for Vars): lets a rule use every primitive, not only the methods below.
    /// Panics if the inputs do not fit the op (rules are written for fitting inputs).
    #[doc(hidden)]
    fn apply<const N: usize>(op: Primitive<T>, inputs: [&Self; N]) -> Self;

    /// Runs a custom op's backward rule in this operand space.
    #[doc(hidden)]
    fn custom_backward(
        op: &dyn CustomOp<T>,
        grad: &Self,
        inputs: &[&Self],
        output: &Self,
        needs: &[bool],
    ) -> Result<SmallVec<[Option<Self>; 2]>>;

    /// -x.
    fn neg(self) -> Self {
        self.mul_scalar(-T::ONE)
    }

    /// Zeros of `self`'s shape, as a constant (a broadcast scalar: no buffer of that size).
    fn zeros_like(&self) -> Self {
        self.constant(Tensor::broadcast_to(&Tensor::scalar(T::ZERO), self.shape()))
    }

    /// Swaps the last two axes.
    fn transpose_last(self) -> Self {
        let rank = self.shape().rank();
        let mut order: Vec<usize> = (0..rank).collect();
        order.swap(rank - 2, rank - 1);
        self.permute(&order)
    }

    /// `self` where `condition` is non-zero, 0 elsewhere: the gradient of a selection.
    /// Selecting (not multiplying by a 0/1 mask) keeps a NaN or inf in `self` from leaking into
    /// the unselected positions as NaN.
    fn where_or_zero(self, condition: &Tensor<T>) -> Self {
        let zeros = self.zeros_like();
        Self::select(condition, &self, &zeros)
    }

    /// `self` where `x > 0`, 0 elsewhere: the relu rule (so relu'(0) = 0).
    fn where_positive(self, x: &Self) -> Self {
        self.where_or_zero(&x.value().greater(&Tensor::scalar(T::ZERO)))
    }

    /// g * (1 - y^2): the tanh rule with y = tanh(x).
    fn mul_one_minus_square(self, y: &Self) -> Self {
        let factor = y.clone().mul(y).neg().add_scalar(T::ONE);
        self.mul(&factor)
    }

    /// g * y * (1 - y): the sigmoid rule with y = sigmoid(x).
    fn mul_y_one_minus_y(self, y: &Self) -> Self {
        let factor = y.clone().mul(&y.clone().neg().add_scalar(T::ONE));
        self.mul(&factor)
    }
}

impl<T: Float> Operand<T> for Tensor<T> {
    fn value(&self) -> Tensor<T> {
        self.clone()
    }
    #[track_caller]
    fn apply<const N: usize>(op: Primitive<T>, inputs: [&Self; N]) -> Self {
        match op.forward(&inputs) {
            Ok(value) => value,
            Err(error) => panic!("{error}"),
        }
    }
    fn shape(&self) -> Shape {
        Tensor::shape(self).clone()
    }
    fn constant(&self, value: Tensor<T>) -> Self {
        value
    }
    fn add(self, other: &Self) -> Self {
        self.zip_map_owned(other, "add", |a, b| a + b)
    }
    fn sub(self, other: &Self) -> Self {
        self.zip_map_owned(other, "sub", |a, b| a - b)
    }
    fn mul(self, other: &Self) -> Self {
        self.zip_map_owned(other, "mul", |a, b| a * b)
    }
    fn div(self, other: &Self) -> Self {
        self.zip_map_owned(other, "div", |a, b| a / b)
    }
    fn add_scalar(self, c: T) -> Self {
        self.map_owned(|x| x + c)
    }
    fn mul_scalar(self, c: T) -> Self {
        self.map_owned(|x| x * c)
    }
    fn pow_scalar(self, p: T) -> Self {
        self.map_owned(|x| x.powf(p))
    }
    fn sum_to(self, shape: &Shape) -> Self {
        Tensor::sum_to(&self, shape)
    }
    fn broadcast_to(self, shape: &Shape) -> Self {
        Tensor::broadcast_to(&self, shape)
    }
    fn reshape(self, shape: &Shape) -> Self {
        Tensor::reshape(&self, shape)
    }
    fn permute(self, permutation: &[usize]) -> Self {
        Tensor::permute(&self, permutation)
    }
    fn narrow(self, axis: usize, start: usize, len: usize) -> Self {
        Tensor::narrow(&self, axis, start, len)
    }
    fn pad(self, axis: usize, before: usize, after: usize) -> Self {
        Tensor::pad(&self, axis, before, after)
    }
    fn matmul(self, other: &Self) -> Self {
        Tensor::matmul(&self, other)
    }
    fn gather(self, axis: usize, index: &Indices) -> Self {
        Tensor::gather(&self, axis, index)
    }
    fn scatter_add_into(self, shape: &Shape, axis: usize, index: &Indices) -> Self {
        Tensor::zeros(shape).scatter_add(axis, index, &self)
    }
    fn select(condition: &Tensor<T>, on_true: &Self, on_false: &Self) -> Self {
        Tensor::select(condition, on_true, on_false)
    }
    fn custom_backward(
        op: &dyn CustomOp<T>,
        grad: &Self,
        inputs: &[&Self],
        output: &Self,
        needs: &[bool],
    ) -> Result<SmallVec<[Option<Self>; 2]>> {
        let gradients = op.backward(grad, inputs, output);
        let shapes: Vec<Shape> = inputs.iter().map(|t| Tensor::shape(t).clone()).collect();
        checked_gradients(
            op.name(),
            gradients,
            &shapes,
            |g| Tensor::shape(g).clone(),
            needs,
        )
    }
    fn neg(self) -> Self {
        self.map_owned(|x| -x)
    }
    fn zeros_like(&self) -> Self {
        Tensor::scalar(T::ZERO).broadcast_to(Tensor::shape(self))
    }
    fn transpose_last(self) -> Self {
        self.t()
    }
    fn where_or_zero(self, condition: &Tensor<T>) -> Self {
        self.zip_map_owned(condition, "where_or_zero", |g, c| {
            if c != T::ZERO { g } else { T::ZERO }
        })
    }
    fn where_positive(self, x: &Self) -> Self {
        self.zip_map_owned(
            x,
            "relu_backward",
            |g, x| if x > T::ZERO { g } else { T::ZERO },
        )
    }
    fn mul_one_minus_square(self, y: &Self) -> Self {
        self.zip_map_owned(y, "tanh_backward", |g, y| g * (T::ONE - y * y))
    }
    fn mul_y_one_minus_y(self, y: &Self) -> Self {
        self.zip_map_owned(y, "sigmoid_backward", |g, y| g * (y * (T::ONE - y)))
    }
}

impl<T: Float> Operand<T> for Var<'_, T> {
    fn value(&self) -> Tensor<T> {
        Var::value(self)
    }
    #[track_caller]
    fn apply<const N: usize>(op: Primitive<T>, inputs: [&Self; N]) -> Self {
        let tape = inputs[0].tape;
        or_panic(tape.apply_primitive(op, inputs.map(|v| *v)))
    }
    fn shape(&self) -> Shape {
        Var::shape(self)
    }
    fn constant(&self, value: Tensor<T>) -> Self {
        self.tape.constant(value)
    }
    fn add(self, other: &Self) -> Self {
        self + *other
    }
    fn sub(self, other: &Self) -> Self {
        self - *other
    }
    fn mul(self, other: &Self) -> Self {
        self * *other
    }
    fn div(self, other: &Self) -> Self {
        self / *other
    }
    fn add_scalar(self, c: T) -> Self {
        Var::add_scalar(self, c)
    }
    fn mul_scalar(self, c: T) -> Self {
        Var::mul_scalar(self, c)
    }
    fn pow_scalar(self, p: T) -> Self {
        Var::powf(self, p)
    }
    fn sum_to(self, shape: &Shape) -> Self {
        Var::sum_to(self, shape)
    }
    fn broadcast_to(self, shape: &Shape) -> Self {
        Var::broadcast_to(self, shape)
    }
    fn reshape(self, shape: &Shape) -> Self {
        Var::reshape(self, shape)
    }
    fn permute(self, permutation: &[usize]) -> Self {
        Var::permute(self, permutation)
    }
    fn narrow(self, axis: usize, start: usize, len: usize) -> Self {
        Var::narrow(self, axis, start, len)
    }
    fn pad(self, axis: usize, before: usize, after: usize) -> Self {
        Var::pad(self, axis, before, after)
    }
    fn matmul(self, other: &Self) -> Self {
        Var::matmul(self, *other)
    }
    fn gather(self, axis: usize, index: &Indices) -> Self {
        Var::gather(self, axis, index)
    }
    fn scatter_add_into(self, shape: &Shape, axis: usize, index: &Indices) -> Self {
        Var::scatter_add_into(self, shape, axis, index)
    }
    fn select(condition: &Tensor<T>, on_true: &Self, on_false: &Self) -> Self {
        Var::select(condition, *on_true, *on_false)
    }
    fn custom_backward(
        op: &dyn CustomOp<T>,
        grad: &Self,
        inputs: &[&Self],
        output: &Self,
        needs: &[bool],
    ) -> Result<SmallVec<[Option<Self>; 2]>> {
        let vars: Vec<Self> = inputs.iter().map(|v| **v).collect();
        let gradients = op.backward_on_vars(*grad, &vars, *output).ok_or_else(|| {
            AutogradError::HigherOrderUnsupported {
                op: format!("custom op '{}'", op.name()),
            }
        })?;
        let shapes: Vec<Shape> = vars.iter().map(Var::shape).collect();
        checked_gradients(op.name(), gradients, &shapes, Var::shape, needs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tape;

    fn bits(t: &Tensor<f64>) -> Vec<u64> {
        t.to_vec().iter().map(|x| x.to_bits()).collect()
    }

    /// Each fused tensor override against its composed definition evaluated on a tape, bit for
    /// bit, both when it writes in place (a uniquely owned gradient) and when it must allocate
    /// (a shared one).
    #[test]
    fn fused_tensor_helpers_equal_their_composed_definitions() {
        let tape = Tape::<f64>::new();
        let g = Tensor::from_vec(vec![0.5, -1.5, 2.0, f64::INFINITY], [4]).unwrap();
        let y = Tensor::from_vec(vec![0.3, -0.9, 0.0, 0.7], [4]).unwrap();
        let condition = Tensor::from_vec(vec![1.0, 0.0, 1.0, 0.0], [4]).unwrap();
        let (gv, yv) = (tape.constant(g.clone()), tape.constant(y.clone()));
        type Fused = fn(Tensor<f64>, &Tensor<f64>, &Tensor<f64>) -> Tensor<f64>;
        type Composed = for<'t> fn(Var<'t, f64>, &Var<'t, f64>, &Tensor<f64>) -> Var<'t, f64>;
        let cases: [(&str, Fused, Composed); 5] = [
            (
                "where_or_zero",
                |g, _, c| g.where_or_zero(c),
                |g, _, c| g.where_or_zero(c),
            ),
            (
                "where_positive",
                |g, y, _| g.where_positive(y),
                |g, y, _| g.where_positive(y),
            ),
            (
                "mul_one_minus_square",
                |g, y, _| g.mul_one_minus_square(y),
                |g, y, _| g.mul_one_minus_square(y),
            ),
            (
                "mul_y_one_minus_y",
                |g, y, _| g.mul_y_one_minus_y(y),
                |g, y, _| g.mul_y_one_minus_y(y),
            ),
            ("neg", |g, _, _| Operand::neg(g), |g, _, _| Operand::neg(g)),
        ];
        for (name, fused, composed) in cases {
            let expected = bits(&composed(gv, &yv, &condition).value());
            let shared = fused(g.clone(), &y, &condition);
            let unique = fused(Tensor::from_vec(g.to_vec(), [4]).unwrap(), &y, &condition);
            assert_eq!(bits(&shared), expected, "{name}, allocating");
            assert_eq!(bits(&unique), expected, "{name}, in place");
        }
        assert_eq!(
            g.clone().where_or_zero(&condition).to_vec()[3],
            0.0,
            "no inf leaks into unselected positions"
        );
    }

    #[test]
    fn a_uniquely_owned_gradient_is_transformed_in_place() {
        let g = Tensor::from_vec(vec![1.0_f64, 2.0, 3.0], [3]).unwrap();
        let y = Tensor::from_vec(vec![0.1, 0.2, 0.3], [3]).unwrap();
        let address = g.as_contiguous_slice().unwrap().as_ptr();
        let out = g.mul_one_minus_square(&y).mul_scalar(2.0).neg();
        assert_eq!(out.as_contiguous_slice().unwrap().as_ptr(), address);
        // A shared one is left alone.
        let shared = Tensor::from_vec(vec![1.0_f64, 2.0], [2]).unwrap();
        let keep = shared.clone();
        let _ = shared.mul_scalar(3.0);
        assert_eq!(keep.to_vec(), vec![1.0, 2.0]);
    }
}
