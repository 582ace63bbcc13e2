//! Binary element-wise primitives (add, sub, mul, div) and select, with NumPy broadcasting.
//!
//! Broadcasting is an explicit step: when shapes differ, the front end records an `expand`
//! node for each operand that grows, so the rules below only ever see equal shapes, and the
//! reduction of a gradient back to a broadcast input's shape is written once, in
//! `movement::expand_backward`.

use std::ops::{Add, Div, Mul, Neg, Sub};

use tensor::{Float, Tensor};

use crate::error::{Result, or_panic};
use crate::operand::Operand;
use crate::ops::{Primitive, sum_of};
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// Records `expand` nodes so both operands have their broadcast shape. Every check runs
    /// before anything is recorded.
    #[track_caller]
    pub(crate) fn broadcast_pair(
        self,
        other: Var<'t, T>,
        op: &'static str,
    ) -> Result<(Var<'t, T>, Var<'t, T>)> {
        self.tape.check_owns(op, &other)?;
        let (a, b) = (self.shape(), other.shape());
        if a == b {
            return Ok((self, other));
        }
        let out = a.broadcast_with(op, &b)?;
        Ok((self.try_expand(&out, &a)?, other.try_expand(&out, &b)?))
    }

    /// Records a binary primitive after broadcasting both operands (every check first).
    #[track_caller]
    fn binary(self, other: Var<'t, T>, op: Primitive<T>) -> Result<Var<'t, T>> {
        self.tape.check_owns(op.kind().name(), &other)?;
        let guard = self.tape.rollback_guard();
        let (a, b) = self.broadcast_pair(other, op.kind().name())?;
        let result = self.tape.apply_primitive(op, [a, b])?;
        Ok(guard.commit(result))
    }

    /// Element-wise sum with broadcasting (also the `+` operator).
    #[track_caller]
    pub fn try_add(self, other: Var<'t, T>) -> Result<Var<'t, T>> {
        self.binary(other, Primitive::Add {})
    }

    /// Element-wise difference with broadcasting (also the `-` operator).
    #[track_caller]
    pub fn try_sub(self, other: Var<'t, T>) -> Result<Var<'t, T>> {
        self.binary(other, Primitive::Sub {})
    }

    /// Element-wise product with broadcasting (also the `*` operator).
    #[track_caller]
    pub fn try_mul(self, other: Var<'t, T>) -> Result<Var<'t, T>> {
        self.binary(other, Primitive::Mul {})
    }

    /// Element-wise quotient with broadcasting (also the `/` operator).
    #[track_caller]
    pub fn try_div(self, other: Var<'t, T>) -> Result<Var<'t, T>> {
        self.binary(other, Primitive::Div {})
    }

    /// The angle of the point (x, y) = (`x`, `self`) in radians, in (-pi, pi], with
    /// broadcasting (as `f64::atan2` and `torch.atan2(self, x)`). Both gradients are NaN at
    /// the origin, where the angle is undefined.
    ///
    /// ```
    /// use autograd::Tape;
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let y = tape.leaf(Tensor::from_vec(vec![1.0, 1.0], [2]).unwrap());
    /// let x = tape.leaf(Tensor::from_vec(vec![1.0, -1.0], [2]).unwrap());
    /// let angle = y.atan2(x);
    /// assert_eq!(angle.value().to_vec(), vec![std::f64::consts::FRAC_PI_4, 3.0 * std::f64::consts::FRAC_PI_4]);
    /// let grads = angle.sum_all().backward();
    /// assert_eq!(grads.wrt(y).to_vec(), vec![0.5, -0.5]); // x / (x^2 + y^2)
    /// ```
    #[track_caller]
    pub fn atan2(self, x: Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_atan2(x))
    }

    /// Fallible [`atan2`](Var::atan2).
    #[track_caller]
    pub fn try_atan2(self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        self.binary(x, Primitive::Atan2 {})
    }

    /// `on_true` where `condition` is non-zero, `on_false` elsewhere; all three broadcast.
    /// The condition is data, not a Var: no gradient flows into it. The gradient of each branch
    /// is the output gradient where that branch was chosen and exactly 0 elsewhere, even if the
    /// unchosen branch held inf or NaN in the forward pass.
    ///
    /// ```
    /// use autograd::{Tape, Var};
    /// use tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(vec![-1.0, 2.0], [2]).unwrap());
    /// let positive = x.value().greater(&Tensor::scalar(0.0));
    /// let y = Var::select(&positive, x * 3.0, x * -1.0).sum_all();
    /// assert_eq!(y.backward().wrt(x).to_vec(), vec![-1.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn select(condition: &Tensor<T>, on_true: Var<'t, T>, on_false: Var<'t, T>) -> Var<'t, T> {
        or_panic(Var::try_select(condition, on_true, on_false))
    }

    /// Fallible [`select`](Var::select).
    #[track_caller]
    pub fn try_select(
        condition: &Tensor<T>,
        on_true: Var<'t, T>,
        on_false: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        let tape = on_true.tape;
        tape.check_owns("select", &on_false)?;
        let (a, b) = (on_true.shape(), on_false.shape());
        let out = condition
            .shape()
            .broadcast_with("select", &a)?
            .broadcast_with("select", &b)?;
        let condition = condition.try_broadcast_to(&out)?;
        let guard = tape.rollback_guard();
        let on_true = on_true.try_expand(&out, &a)?;
        let on_false = on_false.try_expand(&out, &b)?;
        let op = Primitive::Select {
            condition: Box::new(condition),
        };
        let result = tape.apply_primitive(op, [on_true, on_false])?;
        Ok(guard.commit(result))
    }
}

/// Gradients for two inputs from one output gradient, cloning it only when both need one
/// (so a uniquely owned gradient stays unique for the rule that consumes it).
pub(crate) fn for_both<T: Float, O: Operand<T>>(
    grad: O,
    needs: [bool; 2],
    first: impl FnOnce(O) -> O,
    second: impl FnOnce(O) -> O,
) -> [Option<O>; 2] {
    match needs {
        [true, true] => [Some(first(grad.clone())), Some(second(grad))],
        [true, false] => [Some(first(grad)), None],
        [false, true] => [None, Some(second(grad))],
        [false, false] => [None, None],
    }
}

/// a + b.
pub(crate) fn add_forward<T: Float>([a, b]: [&Tensor<T>; 2]) -> tensor::Result<Tensor<T>> {
    a.try_add(b)
}

/// a - b.
pub(crate) fn sub_forward<T: Float>([a, b]: [&Tensor<T>; 2]) -> tensor::Result<Tensor<T>> {
    a.try_sub(b)
}

/// a * b.
pub(crate) fn mul_forward<T: Float>([a, b]: [&Tensor<T>; 2]) -> tensor::Result<Tensor<T>> {
    a.try_mul(b)
}

/// a / b.
pub(crate) fn div_forward<T: Float>([a, b]: [&Tensor<T>; 2]) -> tensor::Result<Tensor<T>> {
    a.try_div(b)
}

/// where(condition, a, b).
pub(crate) fn select_forward<T: Float>(
    [a, b]: [&Tensor<T>; 2],
    condition: &Tensor<T>,
) -> tensor::Result<Tensor<T>> {
    Tensor::try_select(condition, a, b)
}

/// atan2(y, x).
pub(crate) fn atan2_forward<T: Float>([y, x]: [&Tensor<T>; 2]) -> tensor::Result<Tensor<T>> {
    y.try_atan2(x)
}

/// d(a + b) = (g, g).
pub(crate) fn add_backward<T: Float, O: Operand<T>>(
    grad: O,
    _: [&O; 2],
    _: &O,
    needs: [bool; 2],
) -> [Option<O>; 2] {
    for_both(grad, needs, |g| g, |g| g)
}

/// d(a - b) = (g, -g).
pub(crate) fn sub_backward<T: Float, O: Operand<T>>(
    grad: O,
    _: [&O; 2],
    _: &O,
    needs: [bool; 2],
) -> [Option<O>; 2] {
    for_both(grad, needs, |g| g, O::neg)
}

/// d(a * b) = (g b, g a).
pub(crate) fn mul_backward<T: Float, O: Operand<T>>(
    grad: O,
    [a, b]: [&O; 2],
    _: &O,
    needs: [bool; 2],
) -> [Option<O>; 2] {
    for_both(grad, needs, |g| g.mul(b), |g| g.mul(a))
}

/// d(a / b) = (g / b, -g a / b^2), the second written as -(g / b) * y with y = a / b.
pub(crate) fn div_backward<T: Float, O: Operand<T>>(
    grad: O,
    [_, b]: [&O; 2],
    y: &O,
    needs: [bool; 2],
) -> [Option<O>; 2] {
    let grad_over_b = grad.div(b);
    for_both(grad_over_b, needs, |g| g, |g| g.mul(y).neg())
}

/// d where(c, a, b) = (where(c, g, 0), where(c, 0, g)).
pub(crate) fn select_backward<T: Float, O: Operand<T>>(
    grad: O,
    _: [&O; 2],
    _: &O,
    needs: [bool; 2],
    condition: &Tensor<T>,
) -> [Option<O>; 2] {
    for_both(
        grad,
        needs,
        |g| g.where_or_zero(condition),
        |g| g.where_or_zero(&condition.map(|c| if c == T::ZERO { T::ONE } else { T::ZERO })),
    )
}

/// d atan2(y, x) = (g x / r2, -g y / r2) with r2 = x^2 + y^2.
pub(crate) fn atan2_backward<T: Float, O: Operand<T>>(
    grad: O,
    [y, x]: [&O; 2],
    _: &O,
    needs: [bool; 2],
) -> [Option<O>; 2] {
    let r2 = x.clone().mul(x).add(&y.clone().mul(y));
    let grad_over_r2 = grad.div(&r2);
    for_both(grad_over_r2, needs, |g| g.mul(x), |g| g.mul(y).neg())
}

/// t(a + b) = ta + tb.
pub(crate) fn add_tangent<T: Float, O: Operand<T>>(
    [ta, tb]: [Option<O>; 2],
    _: [&O; 2],
    _: &O,
) -> O {
    sum_of(ta, tb)
}

/// t(a - b) = ta - tb.
pub(crate) fn sub_tangent<T: Float, O: Operand<T>>(
    [ta, tb]: [Option<O>; 2],
    _: [&O; 2],
    _: &O,
) -> O {
    sum_of(ta, tb.map(O::neg))
}

/// t(a b) = ta b + a tb.
pub(crate) fn mul_tangent<T: Float, O: Operand<T>>(
    [ta, tb]: [Option<O>; 2],
    [a, b]: [&O; 2],
    _: &O,
) -> O {
    sum_of(ta.map(|t| t.mul(b)), tb.map(|t| t.mul(a)))
}

/// t(a / b) = ta / b - y tb / b, with y = a / b (the transpose of the backward rule).
pub(crate) fn div_tangent<T: Float, O: Operand<T>>(
    [ta, tb]: [Option<O>; 2],
    [_, b]: [&O; 2],
    y: &O,
) -> O {
    sum_of(ta, tb.map(|t| t.mul(y).neg())).div(b)
}

/// t where(c, a, b) = where(c, ta, tb), an absent tangent being 0.
pub(crate) fn select_tangent<T: Float, O: Operand<T>>(
    [ta, tb]: [Option<O>; 2],
    _: [&O; 2],
    y: &O,
    condition: &Tensor<T>,
) -> O {
    let ta = ta.unwrap_or_else(|| y.zeros_like());
    let tb = tb.unwrap_or_else(|| y.zeros_like());
    O::select(condition, &ta, &tb)
}

/// t atan2(y, x) = (x ty - y tx) / r2 with r2 = x^2 + y^2.
pub(crate) fn atan2_tangent<T: Float, O: Operand<T>>(
    [ty, tx]: [Option<O>; 2],
    [y, x]: [&O; 2],
    _: &O,
) -> O {
    let r2 = x.clone().mul(x).add(&y.clone().mul(y));
    sum_of(ty.map(|t| t.mul(x)), tx.map(|t| t.mul(y).neg())).div(&r2)
}

macro_rules! var_operator {
    ($trait:ident, $method:ident, $try:ident, $scalar:expr, $scalar_lhs:expr) => {
        impl<'t, T: Float> $trait<Var<'t, T>> for Var<'t, T> {
            type Output = Var<'t, T>;
            #[track_caller]
            fn $method(self, rhs: Var<'t, T>) -> Var<'t, T> {
                or_panic(self.$try(rhs))
            }
        }
        impl<'t, T: Float> $trait<T> for Var<'t, T> {
            type Output = Var<'t, T>;
            #[track_caller]
            fn $method(self, rhs: T) -> Var<'t, T> {
                let f: fn(Var<'t, T>, T) -> Var<'t, T> = $scalar;
                f(self, rhs)
            }
        }
        var_operator!(@lhs f32, $trait, $method, $scalar_lhs);
        var_operator!(@lhs f64, $trait, $method, $scalar_lhs);
    };
    (@lhs $t:ty, $trait:ident, $method:ident, $scalar_lhs:expr) => {
        impl<'t> $trait<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            #[track_caller]
            fn $method(self, rhs: Var<'t, $t>) -> Var<'t, $t> {
                let f: fn($t, Var<'t, $t>) -> Var<'t, $t> = $scalar_lhs;
                f(self, rhs)
            }
        }
    };
}

var_operator!(Add, add, try_add, |x, c| x.add_scalar(c), |c, x| x
    .add_scalar(c));
var_operator!(Sub, sub, try_sub, |x, c| x.add_scalar(-c), |c, x| x
    .mul_scalar(-1.0)
    .add_scalar(c));
var_operator!(Mul, mul, try_mul, |x, c| x.mul_scalar(c), |c, x| x
    .mul_scalar(c));
var_operator!(
    Div,
    div,
    try_div,
    |x, c| x.mul_scalar(T::ONE / c),
    |c, x| x.powf(-1.0).mul_scalar(c)
);

impl<'t, T: Float> Neg for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn neg(self) -> Var<'t, T> {
        self.mul_scalar(-T::ONE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::assert_gradcheck_strict as assert_gradcheck;
    use crate::tape::Tape;

    fn t(values: &[f64], dims: &[usize]) -> Tensor<f64> {
        Tensor::from_slice(values, dims).unwrap()
    }

    #[test]
    fn arithmetic_gradients_with_broadcasting() {
        let a = t(&[0.5, -1.0, 2.0, 1.5, -0.3, 0.8], &[2, 3]);
        let b = t(&[1.2, -0.7, 2.5], &[3]);
        assert_gradcheck(|x| (x[0] + x[1]).square(), &[a.clone(), b.clone()]);
        assert_gradcheck(|x| x[0] - x[1], &[a.clone(), b.clone()]);
        assert_gradcheck(|x| x[0] * x[1], &[a.clone(), b.clone()]);
        assert_gradcheck(|x| x[0] / x[1], &[a.clone(), b.clone()]);
        assert_gradcheck(|x| x[1] / x[0], &[a, b]);
    }

    #[test]
    fn atan2_gradients_and_quadrants() {
        let y = t(&[0.5, -1.0, 2.0, 1.5, -0.3, 0.8], &[2, 3]);
        let x = t(&[1.2, -0.7, 2.5], &[3]);
        assert_gradcheck(|v| v[0].atan2(v[1]), &[y.clone(), x.clone()]);
        assert_gradcheck(|v| v[1].atan2(v[0]), &[y, x]);
        let tape = Tape::<f64>::new();
        let y = tape.leaf(t(&[1.0, 1.0, -1.0, -1.0], &[4]));
        let x = tape.leaf(t(&[1.0, -1.0, -1.0, 1.0], &[4]));
        let quarter = std::f64::consts::FRAC_PI_4;
        assert_eq!(
            y.atan2(x).value().to_vec(),
            vec![quarter, 3.0 * quarter, -3.0 * quarter, -quarter]
        );
    }

    #[test]
    fn a_value_used_twice_gets_both_contributions() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(t(&[3.0], &[1]));
        let y = (x * x + x).sum_all(); // dy/dx = 2x + 1 = 7
        assert_eq!(y.backward().wrt(x).to_vec(), vec![7.0]);
    }

    #[test]
    fn broadcast_gradient_is_summed_back_to_the_input_shape() {
        let tape = Tape::<f64>::new();
        let row = tape.leaf(t(&[1.0, 2.0, 3.0], &[3]));
        let grid = tape.constant(Tensor::ones([4, 3]));
        let y = (grid * row).sum_all();
        let grads = y.backward();
        assert_eq!(grads.wrt(row).dims(), &[3]);
        assert_eq!(grads.wrt(row).to_vec(), vec![4.0, 4.0, 4.0]);
    }

    #[test]
    fn scalar_operators() {
        let a = t(&[0.5, -1.0, 2.0], &[3]);
        assert_gradcheck(|x| (x[0] + 2.0) * 3.0 - 1.0, std::slice::from_ref(&a));
        assert_gradcheck(|x| 2.0 - x[0], std::slice::from_ref(&a));
        assert_gradcheck(|x| 2.0 / x[0] + x[0] / 4.0, std::slice::from_ref(&a));
        assert_gradcheck(|x| -x[0], &[a]);
    }

    #[test]
    fn select_passes_exact_zeros_to_the_unchosen_branch() {
        let tape = Tape::<f64>::new();
        let a = tape.leaf(t(&[1.0, 2.0], &[2]));
        let b = tape.leaf(t(&[3.0, 4.0], &[2]));
        let chosen = Var::select(&t(&[0.0, 1.0], &[2]), a, b);
        // An infinite upstream gradient must not turn into NaN (inf * 0) where a is unchosen.
        let weights = tape.constant(t(&[f64::INFINITY, 1.0], &[2]));
        let grads = (chosen * weights).sum_all().backward();
        assert_eq!(grads.wrt(a).to_vec(), vec![0.0, 1.0]);
        assert_eq!(grads.wrt(b).to_vec(), vec![f64::INFINITY, 0.0]);
    }

    #[test]
    fn select_over_a_branch_with_nan_derivative_gives_nan_as_pytorch_does() {
        // The "NaN gradient through where" trap: sqrt is evaluated at -1 in the unchosen branch;
        // its local derivative there is NaN, and 0 * NaN = NaN. Anomaly mode reports this.
        let tape = Tape::<f64>::new();
        let x = tape.leaf(t(&[-1.0, 4.0], &[2]));
        let positive = x.value().greater(&Tensor::scalar(0.0));
        let y = Var::select(&positive, x.sqrt(), x * 0.0).sum_all();
        let grad = y.backward().wrt(x).to_vec();
        assert!(grad[0].is_nan());
        assert_eq!(grad[1], 0.25);
    }

    #[test]
    fn select_gradcheck_with_broadcast_condition() {
        let condition = t(&[1.0, 0.0, 1.0], &[3]);
        let a = t(&[0.5, -1.0, 2.0, 1.5, -0.3, 0.8], &[2, 3]);
        let b = t(&[0.1, 0.2], &[2, 1]);
        assert_gradcheck(
            move |x| Var::select(&condition, x[0], x[1]).square(),
            &[a, b],
        );
    }

    #[test]
    fn failed_broadcast_leaves_the_tape_unchanged() {
        let tape = Tape::<f64>::new();
        let a = tape.leaf(Tensor::zeros([3, 4]));
        let b = tape.leaf(Tensor::zeros([5]));
        let before = tape.len();
        let error = a.try_add(b).unwrap_err();
        assert_eq!(error.to_string(), "add: cannot broadcast [3, 4] with [5]");
        assert_eq!(tape.len(), before);
        let condition = Tensor::ones([2]);
        assert!(Var::try_select(&condition, a, a).is_err());
        assert_eq!(tape.len(), before);
    }

    #[test]
    fn vars_from_another_tape_are_refused() {
        let first = Tape::<f32>::new();
        let second = Tape::<f32>::new();
        let a = first.leaf(Tensor::ones([2]));
        let b = second.leaf(Tensor::ones([2]));
        assert_eq!(
            a.try_mul(b).unwrap_err().to_string(),
            "mul: a Var from another tape was used; every Var of an expression must come from the same tape"
        );
        assert_eq!(first.len(), 1);
    }
}
