//! One-input element-wise primitives: add, multiply and power by a scalar; exp, log, sqrt,
//! tanh, sigmoid, relu, abs.
//!
//! Scalar add and multiply are primitives (rather than a broadcast constant) because they
//! save two nodes per use, which the per-op benchmarks (W4, W6) measure directly.
//!
//! Kink conventions: relu'(0) = 0 and abs'(0) = 0, as in PyTorch.

use tensor::{Float, Tensor};

use crate::error::{Result, or_panic};
use crate::operand::Operand;
use crate::ops::{Primitive, present};
use crate::tape::Var;

/// Declares each unary op twice: a `try_` form (which fails only in anomaly mode, when the
/// output holds a NaN or an infinity) and the panicking form.
macro_rules! unary_ops {
    ($($(#[$doc:meta])* $name:ident, $try_name:ident, ($($param:ident: $ty:ty)?) => $op:expr;)*) => {
        impl<'t, T: Float> Var<'t, T> {
            $(
                $(#[$doc])*
                #[track_caller]
                pub fn $name(self $(, $param: $ty)?) -> Var<'t, T> {
                    or_panic(self.$try_name($($param)?))
                }

                #[doc = concat!("Fallible [`", stringify!($name), "`](Var::", stringify!($name), "): errors only in anomaly mode.")]
                #[track_caller]
                pub fn $try_name(self $(, $param: $ty)?) -> Result<Var<'t, T>> {
                    self.tape.apply_primitive($op, [self])
                }
            )*
        }
    };
}

unary_ops! {
    /// x + c.
    add_scalar, try_add_scalar, (c: T) => Primitive::AddScalar { c };
    /// x * c.
    mul_scalar, try_mul_scalar, (c: T) => Primitive::MulScalar { c };
    /// x^p for a scalar exponent p. The gradient p x^(p-1) is taken as 0 when p = 0.
    powf, try_powf, (p: T) => Primitive::PowScalar { p };
    /// e^x.
    exp, try_exp, () => Primitive::Exp {};
    /// Natural logarithm.
    log, try_log, () => Primitive::Log {};
    /// Square root.
    sqrt, try_sqrt, () => Primitive::Sqrt {};
    /// Hyperbolic tangent.
    tanh, try_tanh, () => Primitive::Tanh {};
    /// Logistic sigmoid 1 / (1 + e^-x), finite for every input.
    sigmoid, try_sigmoid, () => Primitive::Sigmoid {};
    /// max(x, 0). Its derivative at exactly 0 is taken as 0.
    relu, try_relu, () => Primitive::Relu {};
    /// |x|. Its derivative at exactly 0 is taken as 0.
    abs, try_abs, () => Primitive::Abs {};
}

/// The forward of a unary primitive: a tensor kernel that cannot fail.
macro_rules! unary_forwards {
    ($($name:ident => |$x:ident $(, $param:ident)?| $body:expr;)*) => {
        $(
            #[inline]
            pub(crate) fn $name<T: Float>([$x]: [&Tensor<T>; 1] $(, $param: &T)?) -> tensor::Result<Tensor<T>> {
                Ok($body)
            }
        )*
    };
}

unary_forwards! {
    add_scalar_forward => |x, c| x.add_scalar(*c);
    mul_scalar_forward => |x, c| x.mul_scalar(*c);
    pow_scalar_forward => |x, p| x.powf(*p);
    exp_forward => |x| x.exp();
    log_forward => |x| x.log();
    sqrt_forward => |x| x.sqrt();
    tanh_forward => |x| x.tanh();
    sigmoid_forward => |x| x.sigmoid();
    relu_forward => |x| x.relu();
    abs_forward => |x| x.abs();
}

/// d(x + c) = g.
pub(crate) fn add_scalar_backward<T: Float, O: Operand<T>>(
    grad: O,
    _: [&O; 1],
    _: &O,
    _: [bool; 1],
    _: &T,
) -> [Option<O>; 1] {
    [Some(grad)]
}

/// d(c x) = c g.
pub(crate) fn mul_scalar_backward<T: Float, O: Operand<T>>(
    grad: O,
    _: [&O; 1],
    _: &O,
    _: [bool; 1],
    c: &T,
) -> [Option<O>; 1] {
    [Some(grad.mul_scalar(*c))]
}

/// d(x^p) = g p x^(p-1), and 0 for p = 0 (where x^-1 at x = 0 would give 0 * inf).
pub(crate) fn pow_scalar_backward<T: Float, O: Operand<T>>(
    grad: O,
    [x]: [&O; 1],
    _: &O,
    _: [bool; 1],
    p: &T,
) -> [Option<O>; 1] {
    let p = *p;
    if p == T::ZERO {
        return [Some(grad.zeros_like())];
    }
    [Some(
        grad.mul(&x.clone().pow_scalar(p - T::ONE).mul_scalar(p)),
    )]
}

/// d(e^x) = g y, with y = e^x.
pub(crate) fn exp_backward<T: Float, O: Operand<T>>(
    grad: O,
    _: [&O; 1],
    y: &O,
    _: [bool; 1],
) -> [Option<O>; 1] {
    [Some(grad.mul(y))]
}

/// d(ln x) = g / x.
pub(crate) fn log_backward<T: Float, O: Operand<T>>(
    grad: O,
    [x]: [&O; 1],
    _: &O,
    _: [bool; 1],
) -> [Option<O>; 1] {
    [Some(grad.div(x))]
}

/// d(sqrt x) = g / (2 y), with y = sqrt x.
pub(crate) fn sqrt_backward<T: Float, O: Operand<T>>(
    grad: O,
    _: [&O; 1],
    y: &O,
    _: [bool; 1],
) -> [Option<O>; 1] {
    [Some(grad.div(y).mul_scalar(T::from_f64(0.5)))]
}

/// d(tanh x) = g (1 - y^2), with y = tanh x.
pub(crate) fn tanh_backward<T: Float, O: Operand<T>>(
    grad: O,
    _: [&O; 1],
    y: &O,
    _: [bool; 1],
) -> [Option<O>; 1] {
    [Some(grad.mul_one_minus_square(y))]
}

/// d(sigmoid x) = g y (1 - y), with y = sigmoid x.
pub(crate) fn sigmoid_backward<T: Float, O: Operand<T>>(
    grad: O,
    _: [&O; 1],
    y: &O,
    _: [bool; 1],
) -> [Option<O>; 1] {
    [Some(grad.mul_y_one_minus_y(y))]
}

/// d(relu x) = g where x > 0, else 0 (so relu'(0) = 0).
pub(crate) fn relu_backward<T: Float, O: Operand<T>>(
    grad: O,
    [x]: [&O; 1],
    _: &O,
    _: [bool; 1],
) -> [Option<O>; 1] {
    [Some(grad.where_positive(x))]
}

/// d|x| = g sign(x) (so abs'(0) = 0); sign(x) is a constant.
pub(crate) fn abs_backward<T: Float, O: Operand<T>>(
    grad: O,
    [x]: [&O; 1],
    _: &O,
    _: [bool; 1],
) -> [Option<O>; 1] {
    let sign = grad.constant(x.value().sign());
    [Some(grad.mul(&sign))]
}

/// t(x + c) = t.
pub(crate) fn add_scalar_tangent<T: Float, O: Operand<T>>(
    t: [Option<O>; 1],
    _: [&O; 1],
    _: &O,
    _: &T,
) -> O {
    present(t)
}

/// t(c x) = c t.
pub(crate) fn mul_scalar_tangent<T: Float, O: Operand<T>>(
    t: [Option<O>; 1],
    _: [&O; 1],
    _: &O,
    c: &T,
) -> O {
    present(t).mul_scalar(*c)
}

/// t(x^p) = p x^(p-1) t, and 0 for p = 0 (as the backward rule).
pub(crate) fn pow_scalar_tangent<T: Float, O: Operand<T>>(
    t: [Option<O>; 1],
    [x]: [&O; 1],
    _: &O,
    p: &T,
) -> O {
    let (t, p) = (present(t), *p);
    if p == T::ZERO {
        return t.zeros_like();
    }
    t.mul(&x.clone().pow_scalar(p - T::ONE).mul_scalar(p))
}

/// t(e^x) = y t.
pub(crate) fn exp_tangent<T: Float, O: Operand<T>>(t: [Option<O>; 1], _: [&O; 1], y: &O) -> O {
    present(t).mul(y)
}

/// t(ln x) = t / x.
pub(crate) fn log_tangent<T: Float, O: Operand<T>>(t: [Option<O>; 1], [x]: [&O; 1], _: &O) -> O {
    present(t).div(x)
}

/// t(sqrt x) = t / (2 y).
pub(crate) fn sqrt_tangent<T: Float, O: Operand<T>>(t: [Option<O>; 1], _: [&O; 1], y: &O) -> O {
    present(t).div(y).mul_scalar(T::from_f64(0.5))
}

/// t(tanh x) = (1 - y^2) t.
pub(crate) fn tanh_tangent<T: Float, O: Operand<T>>(t: [Option<O>; 1], _: [&O; 1], y: &O) -> O {
    present(t).mul_one_minus_square(y)
}

/// t(sigmoid x) = y (1 - y) t.
pub(crate) fn sigmoid_tangent<T: Float, O: Operand<T>>(t: [Option<O>; 1], _: [&O; 1], y: &O) -> O {
    present(t).mul_y_one_minus_y(y)
}

/// t(relu x) = t where x > 0, else 0 (relu'(0) = 0, as the backward rule).
pub(crate) fn relu_tangent<T: Float, O: Operand<T>>(t: [Option<O>; 1], [x]: [&O; 1], _: &O) -> O {
    present(t).where_positive(x)
}

/// t|x| = sign(x) t (abs'(0) = 0).
pub(crate) fn abs_tangent<T: Float, O: Operand<T>>(t: [Option<O>; 1], [x]: [&O; 1], _: &O) -> O {
    let t = present(t);
    let sign = t.constant(x.value().sign());
    t.mul(&sign)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::assert_gradcheck_strict as assert_gradcheck;
    use crate::tape::Tape;

    fn t(values: &[f64]) -> Tensor<f64> {
        Tensor::from_slice(values, [values.len()]).unwrap()
    }

    #[test]
    fn smooth_unary_gradients() {
        let x = t(&[-1.3, -0.2, 0.4, 1.7]);
        let positive = t(&[0.3, 1.1, 2.5, 4.0]);
        assert_gradcheck(|v| v[0].exp(), std::slice::from_ref(&x));
        assert_gradcheck(|v| v[0].tanh(), std::slice::from_ref(&x));
        assert_gradcheck(|v| v[0].sigmoid(), std::slice::from_ref(&x));
        assert_gradcheck(
            |v| v[0].add_scalar(0.7).mul_scalar(-2.0),
            std::slice::from_ref(&x),
        );
        assert_gradcheck(|v| v[0].log(), std::slice::from_ref(&positive));
        assert_gradcheck(|v| v[0].sqrt(), std::slice::from_ref(&positive));
        assert_gradcheck(|v| v[0].powf(2.5), std::slice::from_ref(&positive));
        assert_gradcheck(|v| v[0].powf(-1.5), std::slice::from_ref(&positive));
        assert_gradcheck(|v| v[0].powf(3.0), &[x]);
    }

    #[test]
    fn kinked_unary_gradients_away_from_the_kink() {
        let x = t(&[-1.3, -0.2, 0.4, 1.7]);
        assert_gradcheck(|v| v[0].relu(), std::slice::from_ref(&x));
        assert_gradcheck(|v| v[0].abs(), &[x]);
    }

    #[test]
    fn kink_conventions_relu_and_abs_have_zero_derivative_at_zero() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(t(&[0.0, 0.0]));
        let y = (x.relu() + x.abs()).sum_all();
        assert_eq!(y.backward().wrt(x).to_vec(), vec![0.0, 0.0]);
    }

    #[test]
    fn closed_forms_of_first_derivatives() {
        let tape = Tape::<f64>::new();
        let values = [-2.0, -0.5, 0.3, 1.4];
        let x = tape.leaf(t(&values));
        let tanh = x.tanh().sum_all().backward().wrt(x).to_vec();
        let sigmoid = x.sigmoid().sum_all().backward().wrt(x).to_vec();
        for ((v, dt), ds) in values.iter().zip(tanh).zip(sigmoid) {
            let closed_tanh = 1.0 / v.cosh().powi(2);
            let s = 1.0 / (1.0 + (-v).exp());
            assert!((dt - closed_tanh).abs() < 1e-15, "{dt} vs {closed_tanh}");
            assert!(
                (ds - s * (1.0 - s)).abs() < 1e-15,
                "{ds} vs {}",
                s * (1.0 - s)
            );
        }
    }

    #[test]
    fn power_zero_has_zero_gradient_even_at_zero() {
        let tape = Tape::<f64>::new();
        let x = tape.leaf(t(&[0.0, 2.0]));
        assert_eq!(
            x.powf(0.0).sum_all().backward().wrt(x).to_vec(),
            vec![0.0, 0.0]
        );
    }
}
