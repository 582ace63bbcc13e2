//! [`Operand`]: the vocabulary backward rules are written in.
//!
//! Every rule is a generic function over `O: Operand<T>`. The plain backward pass evaluates the
//! rules on raw [`Tensor`]s; [`Var::backward_create_graph`](crate::Var::backward_create_graph)
//! evaluates the very same functions on [`Var`]s, so the gradients are themselves recorded on
//! the tape and can be differentiated again. One rule, two evaluations: higher-order gradients
//! cannot drift from first-order ones.
//!
//! Methods with a default body are fused helpers: composed from the required methods (that is
//! what the `Var` evaluation uses, and what defines their meaning), and overridden for
//! `Tensor` by a single-pass kernel where a benchmark showed it pays. Tests compare each
//! override against its composed default.

use smallvec::SmallVec;
use tensor::{Float, Indices, Shape, Tensor};

use crate::custom::{CustomOp, checked_gradients};
use crate::error::{AutogradError, Result};
use crate::tape::Var;

mod sealed {
    pub trait Sealed {}
    impl<T: tensor::Float> Sealed for tensor::Tensor<T> {}
    impl<T: tensor::Float> Sealed for crate::Var<'_, T> {}
}

/// Values a backward rule can compute with: raw tensors or tape variables. Implemented for
/// [`Tensor`] and [`Var`] only (sealed); write generic code against it to give a custom op one
/// rule for both [`CustomOp::backward`] and [`CustomOp::backward_on_vars`].
pub trait Operand<T: Float>: Clone + sealed::Sealed {
    /// The forward value.
    fn value(&self) -> Tensor<T>;
    /// The value's shape.
    fn shape(&self) -> Shape;
    /// A constant in the same space as `self` (no gradient flows into it).
    fn constant(&self, value: Tensor<T>) -> Self;

    /// Element-wise sum (equal shapes).
    fn add(&self, other: &Self) -> Self;
    /// Element-wise difference (equal shapes).
    fn sub(&self, other: &Self) -> Self;
    /// Element-wise product (equal shapes).
    fn mul(&self, other: &Self) -> Self;
    /// Element-wise quotient (equal shapes).
    fn div(&self, other: &Self) -> Self;
    /// x + c.
    fn add_scalar(&self, c: T) -> Self;
    /// x * c.
    fn mul_scalar(&self, c: T) -> Self;
    /// x^p.
    fn pow_scalar(&self, p: T) -> Self;
    /// Sum over the axes that broadcasting `shape` would repeat (the reverse of broadcast).
    fn sum_to(&self, shape: &Shape) -> Self;
    /// Broadcast view to `shape`.
    fn broadcast_to(&self, shape: &Shape) -> Self;
    /// Same elements, new shape.
    fn reshape(&self, shape: &Shape) -> Self;
    /// Axis `i` of the result is axis `permutation[i]` of `self`.
    fn permute(&self, permutation: &[usize]) -> Self;
    /// Elements `start..start + len` along `axis`.
    fn narrow(&self, axis: usize, start: usize, len: usize) -> Self;
    /// Zero padding along `axis`.
    fn pad(&self, axis: usize, before: usize, after: usize) -> Self;
    /// Matrix product (rank 2 or batched rank 3).
    fn matmul(&self, other: &Self) -> Self;
    /// One element along `axis` per index.
    fn gather(&self, axis: usize, index: &Indices) -> Self;
    /// `zeros(shape).scatter_add(axis, index, self)`: the transpose of gather.
    fn scatter_add_into(&self, shape: &Shape, axis: usize, index: &Indices) -> Self;
    /// `on_true` where `condition` is non-zero, `on_false` elsewhere (equal shapes).
    fn select(condition: &Tensor<T>, on_true: &Self, on_false: &Self) -> Self;

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
    fn neg(&self) -> Self {
        self.mul_scalar(-T::ONE)
    }

    /// Zeros of `self`'s shape, as a constant (a broadcast scalar: no buffer of that size).
    fn zeros_like(&self) -> Self {
        self.constant(Tensor::scalar(T::ZERO).broadcast_to(self.shape()))
    }

    /// Swaps the last two axes.
    fn transpose_last(&self) -> Self {
        let rank = self.shape().rank();
        let mut order: Vec<usize> = (0..rank).collect();
        order.swap(rank - 2, rank - 1);
        self.permute(&order)
    }

    /// `self` where `condition` is non-zero, 0 elsewhere: the gradient of a selection.
    /// Selecting (not multiplying by a 0/1 mask) keeps a NaN or inf in `self` from leaking into
    /// the unselected positions as NaN.
    fn where_or_zero(&self, condition: &Tensor<T>) -> Self {
        Self::select(condition, self, &self.zeros_like())
    }

    /// `self` where `x > 0`, 0 elsewhere: the relu rule (so relu'(0) = 0).
    fn where_positive(&self, x: &Self) -> Self {
        self.where_or_zero(&x.value().greater(&Tensor::scalar(T::ZERO)))
    }

    /// g * (1 - y^2): the tanh rule with y = tanh(x).
    fn mul_one_minus_square(&self, y: &Self) -> Self {
        self.mul(&y.mul(y).neg().add_scalar(T::ONE))
    }

    /// g * y * (1 - y): the sigmoid rule with y = sigmoid(x).
    fn mul_y_one_minus_y(&self, y: &Self) -> Self {
        self.mul(&y.mul(&y.neg().add_scalar(T::ONE)))
    }
}

impl<T: Float> Operand<T> for Tensor<T> {
    fn value(&self) -> Tensor<T> {
        self.clone()
    }
    fn shape(&self) -> Shape {
        Tensor::shape(self).clone()
    }
    fn constant(&self, value: Tensor<T>) -> Self {
        value
    }
    fn add(&self, other: &Self) -> Self {
        Tensor::add(self, other)
    }
    fn sub(&self, other: &Self) -> Self {
        Tensor::sub(self, other)
    }
    fn mul(&self, other: &Self) -> Self {
        Tensor::mul(self, other)
    }
    fn div(&self, other: &Self) -> Self {
        Tensor::div(self, other)
    }
    fn add_scalar(&self, c: T) -> Self {
        Tensor::add_scalar(self, c)
    }
    fn mul_scalar(&self, c: T) -> Self {
        Tensor::mul_scalar(self, c)
    }
    fn pow_scalar(&self, p: T) -> Self {
        Tensor::powf(self, p)
    }
    fn sum_to(&self, shape: &Shape) -> Self {
        Tensor::sum_to(self, shape)
    }
    fn broadcast_to(&self, shape: &Shape) -> Self {
        Tensor::broadcast_to(self, shape)
    }
    fn reshape(&self, shape: &Shape) -> Self {
        Tensor::reshape(self, shape)
    }
    fn permute(&self, permutation: &[usize]) -> Self {
        Tensor::permute(self, permutation)
    }
    fn narrow(&self, axis: usize, start: usize, len: usize) -> Self {
        Tensor::narrow(self, axis, start, len)
    }
    fn pad(&self, axis: usize, before: usize, after: usize) -> Self {
        Tensor::pad(self, axis, before, after)
    }
    fn matmul(&self, other: &Self) -> Self {
        Tensor::matmul(self, other)
    }
    fn gather(&self, axis: usize, index: &Indices) -> Self {
        Tensor::gather(self, axis, index)
    }
    fn scatter_add_into(&self, shape: &Shape, axis: usize, index: &Indices) -> Self {
        Tensor::zeros(shape).scatter_add(axis, index, self)
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
    fn neg(&self) -> Self {
        Tensor::neg(self)
    }
    fn zeros_like(&self) -> Self {
        Tensor::scalar(T::ZERO).broadcast_to(Tensor::shape(self))
    }
    fn transpose_last(&self) -> Self {
        self.t()
    }
    fn where_or_zero(&self, condition: &Tensor<T>) -> Self {
        self.zip_map(condition, "where_or_zero", |g, c| {
            if c != T::ZERO { g } else { T::ZERO }
        })
    }
    fn where_positive(&self, x: &Self) -> Self {
        self.zip_map(
            x,
            "relu_backward",
            |g, x| if x > T::ZERO { g } else { T::ZERO },
        )
    }
    fn mul_one_minus_square(&self, y: &Self) -> Self {
        self.zip_map(y, "tanh_backward", |g, y| g * (T::ONE - y * y))
    }
    fn mul_y_one_minus_y(&self, y: &Self) -> Self {
        self.zip_map(y, "sigmoid_backward", |g, y| g * (y * (T::ONE - y)))
    }
}

impl<T: Float> Operand<T> for Var<'_, T> {
    fn value(&self) -> Tensor<T> {
        Var::value(self)
    }
    fn shape(&self) -> Shape {
        Var::shape(self)
    }
    fn constant(&self, value: Tensor<T>) -> Self {
        self.tape.constant(value)
    }
    fn add(&self, other: &Self) -> Self {
        *self + *other
    }
    fn sub(&self, other: &Self) -> Self {
        *self - *other
    }
    fn mul(&self, other: &Self) -> Self {
        *self * *other
    }
    fn div(&self, other: &Self) -> Self {
        *self / *other
    }
    fn add_scalar(&self, c: T) -> Self {
        Var::add_scalar(*self, c)
    }
    fn mul_scalar(&self, c: T) -> Self {
        Var::mul_scalar(*self, c)
    }
    fn pow_scalar(&self, p: T) -> Self {
        Var::powf(*self, p)
    }
    fn sum_to(&self, shape: &Shape) -> Self {
        Var::sum_to(*self, shape)
    }
    fn broadcast_to(&self, shape: &Shape) -> Self {
        Var::broadcast_to(*self, shape)
    }
    fn reshape(&self, shape: &Shape) -> Self {
        Var::reshape(*self, shape)
    }
    fn permute(&self, permutation: &[usize]) -> Self {
        Var::permute(*self, permutation)
    }
    fn narrow(&self, axis: usize, start: usize, len: usize) -> Self {
        Var::narrow(*self, axis, start, len)
    }
    fn pad(&self, axis: usize, before: usize, after: usize) -> Self {
        Var::pad(*self, axis, before, after)
    }
    fn matmul(&self, other: &Self) -> Self {
        Var::matmul(*self, *other)
    }
    fn gather(&self, axis: usize, index: &Indices) -> Self {
        Var::gather(*self, axis, index)
    }
    fn scatter_add_into(&self, shape: &Shape, axis: usize, index: &Indices) -> Self {
        Var::scatter_add_into(*self, shape, axis, index)
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

    /// The composed defaults, evaluated on a tape, next to the fused tensor overrides.
    #[test]
    fn fused_tensor_helpers_equal_their_composed_definitions() {
        let tape = Tape::<f64>::new();
        let g = Tensor::from_vec(vec![0.5, -1.5, 2.0, f64::INFINITY], [4]).unwrap();
        let y = Tensor::from_vec(vec![0.3, -0.9, 0.0, 0.7], [4]).unwrap();
        let condition = Tensor::from_vec(vec![1.0, 0.0, 1.0, 0.0], [4]).unwrap();
        let gv = tape.constant(g.clone());
        let same = |fused: Tensor<f64>, composed: Var<'_, f64>| {
            let composed = composed.value();
            fused
                .to_vec()
                .iter()
                .zip(composed.to_vec())
                .all(|(a, b)| a.to_bits() == b.to_bits())
        };
        assert!(same(
            g.where_or_zero(&condition),
            gv.where_or_zero(&condition)
        ));
        assert_eq!(
            g.where_or_zero(&condition).to_vec()[3],
            0.0,
            "no inf leaks into unselected positions"
        );
        let finite_g = g.narrow(0, 0, 3);
        let finite_y = y.narrow(0, 0, 3);
        let (fg, fy) = (
            tape.constant(finite_g.clone()),
            tape.constant(finite_y.clone()),
        );
        assert!(finite_g.mul_one_minus_square(&finite_y).allclose(
            &fg.mul_one_minus_square(&fy).value(),
            1e-15,
            0.0
        ));
        assert!(finite_g.mul_y_one_minus_y(&finite_y).allclose(
            &fg.mul_y_one_minus_y(&fy).value(),
            1e-15,
            0.0
        ));
        assert!(same(Operand::neg(&g), Operand::neg(&gv)));
        let x = Tensor::from_vec(vec![1.0, 0.0, -2.0, 3.0], [4]).unwrap();
        assert!(same(
            g.where_positive(&x),
            gv.where_positive(&tape.constant(x.clone()))
        ));
        assert!(same(
            Operand::transpose_last(&Tensor::<f64>::eye(3)).contiguous(),
            tape.constant(Tensor::eye(3)).transpose_last()
        ));
    }
}
