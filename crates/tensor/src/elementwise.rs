//! Element-wise kernels: unary maps, broadcasting binary ops, comparisons, select, and the
//! `+ - * /` operators.
//!
//! Each kernel has two paths. When every operand is contiguous and already of the output shape,
//! the kernel is a single zip over slices that the compiler vectorises. Otherwise a strided
//! walk ([`for_each_row`]) visits the output in row-major order; rows where an operand is
//! contiguous or a broadcast scalar get their own unit-stride inner loops. Both paths apply the
//! same scalar function to the same pairs, so they agree bit for bit.

use std::ops::{Add, Div, Mul, Neg, Sub};
use std::sync::Arc;

use crate::error::{Result, or_panic};
use crate::float::Float;
use crate::layout::for_each_row;
use crate::shape::Shape;
use crate::storage;
use crate::tensor::Tensor;

impl<T: Float> Tensor<T> {
    /// Applies `f` to every element; the result is contiguous.
    ///
    /// ```
    /// use tensor::Tensor;
    /// let t = Tensor::from_vec(vec![1.0_f32, -2.0], [2]).unwrap();
    /// assert_eq!(t.map(|x| x * x + 1.0).to_vec(), vec![2.0, 5.0]);
    /// ```
    pub fn map(&self, f: impl Fn(T) -> T) -> Tensor<T> {
        if let Some(source) = self.as_contiguous_slice() {
            // A recycled buffer if there is one; else a fresh one written in a single pass.
            // The input's layout, moved to offset 0, describes the output too (no strides to
            // recompute).
            let layout = self.layout().at_offset(0);
            let Some(mut data) = storage::recycled(source.len()) else {
                let data: Arc<[T]> = source.iter().map(|&x| f(x)).collect();
                return Tensor::from_parts(data, layout);
            };
            let out = Arc::get_mut(&mut data).expect("a recycled buffer has one owner");
            for (o, &x) in out.iter_mut().zip(source) {
                *o = f(x);
            }
            return Tensor::from_parts(data, layout);
        }
        let storage = self.storage();
        Tensor::from_overwrite(self.shape().clone(), |out| {
            let mut next = 0;
            for_each_row(
                self.dims(),
                [self.strides()],
                [self.layout().offset()],
                |[start], len, [stride]| {
                    let row = &mut out[next..next + len];
                    if stride == 1 {
                        for (o, &x) in row.iter_mut().zip(&storage[start..start + len]) {
                            *o = f(x);
                        }
                    } else {
                        for (i, o) in row.iter_mut().enumerate() {
                            *o = f(storage[start + i * stride]);
                        }
                    }
                    next += len;
                },
            );
        })
    }

    /// Applies `f` pairwise after broadcasting `self` and `other` (NumPy rules). `op` names the
    /// operation in the error.
    ///
    /// ```
    /// use tensor::Tensor;
    /// let a = Tensor::from_vec(vec![1.0_f64, 2.0], [2, 1]).unwrap();
    /// let b = Tensor::from_vec(vec![10.0_f64, 20.0, 30.0], [3]).unwrap();
    /// let c = a.try_zip_map(&b, "hypot", |x, y| (x * x + y * y).sqrt()).unwrap();
    /// assert_eq!(c.dims(), &[2, 3]);
    /// ```
    pub fn try_zip_map(
        &self,
        other: &Tensor<T>,
        op: &'static str,
        f: impl Fn(T, T) -> T,
    ) -> Result<Tensor<T>> {
        let shape = self.shape().broadcast_with(op, other.shape())?;
        crate::storage::check_allocation::<T>(op, shape.checked_numel(op)?)?;
        Ok(zip_kernel(shape, self, other, f))
    }

    /// Like [`try_zip_map`](Tensor::try_zip_map), panicking with the error's message.
    #[track_caller]
    pub fn zip_map(&self, other: &Tensor<T>, op: &'static str, f: impl Fn(T, T) -> T) -> Tensor<T> {
        or_panic(self.try_zip_map(other, op, f))
    }

    /// [`map`](Tensor::map) that writes into `self`'s buffer when `self` is its sole owner and
    /// contiguous (no allocation), and allocates otherwise. Same results, bit for bit.
    ///
    /// ```
    /// use tensor::Tensor;
    /// let t = Tensor::from_vec(vec![1.0_f32, 2.0], [2]).unwrap();
    /// assert_eq!(t.map_owned(|x| x * 10.0).to_vec(), vec![10.0, 20.0]);
    /// ```
    pub fn map_owned(mut self, f: impl Fn(T) -> T) -> Tensor<T> {
        if let Some(out) = self.unique_contiguous_mut() {
            for o in out.iter_mut() {
                *o = f(*o);
            }
            return self;
        }
        self.map(f)
    }

    /// [`try_zip_map`](Tensor::try_zip_map) that writes into `self`'s buffer when `self` is its
    /// sole, contiguous owner and already has the broadcast shape (no allocation), and allocates
    /// otherwise. Same results, bit for bit.
    pub fn try_zip_map_owned(
        mut self,
        other: &Tensor<T>,
        op: &'static str,
        f: impl Fn(T, T) -> T,
    ) -> Result<Tensor<T>> {
        // The common case first: two contiguous operands of one shape, written in place.
        if self.shape() == other.shape() {
            if let Some(source) = other.as_contiguous_slice() {
                if let Some(out) = self.unique_contiguous_mut() {
                    for (o, &x) in out.iter_mut().zip(source) {
                        *o = f(*o, x);
                    }
                    return Ok(self);
                }
            }
        }
        let shape = self.shape().broadcast_with(op, other.shape())?;
        if &shape != self.shape() {
            crate::storage::check_allocation::<T>(op, shape.checked_numel(op)?)?;
            return Ok(zip_kernel(shape, &self, other, f));
        }
        let source = other.layout().broadcast_to(op, &shape)?;
        let Some(out) = self.unique_contiguous_mut() else {
            return Ok(zip_kernel(shape, &self, other, f));
        };
        let storage = other.storage();
        let mut next = 0;
        for_each_row(
            shape.dims(),
            [source.strides()],
            [source.offset()],
            |[start], len, [stride]| {
                let row = &mut out[next..next + len];
                match stride {
                    1 => {
                        for (o, &x) in row.iter_mut().zip(&storage[start..start + len]) {
                            *o = f(*o, x);
                        }
                    }
                    0 => {
                        let x = storage[start];
                        for o in row.iter_mut() {
                            *o = f(*o, x);
                        }
                    }
                    _ => {
                        for (i, o) in row.iter_mut().enumerate() {
                            *o = f(*o, storage[start + i * stride]);
                        }
                    }
                }
                next += len;
            },
        );
        Ok(self)
    }

    /// Like [`try_zip_map_owned`](Tensor::try_zip_map_owned), panicking with the error's message.
    #[track_caller]
    pub fn zip_map_owned(
        self,
        other: &Tensor<T>,
        op: &'static str,
        f: impl Fn(T, T) -> T,
    ) -> Tensor<T> {
        or_panic(self.try_zip_map_owned(other, op, f))
    }

    /// `self + other`, reusing `self`'s buffer when `self` is its sole, contiguous owner and
    /// already has the broadcast shape (the usual case when summing gradients); see
    /// [`zip_map_owned`](Tensor::zip_map_owned). Panics if the shapes do not broadcast.
    #[track_caller]
    pub fn accumulate(self, other: &Tensor<T>) -> Tensor<T> {
        self.zip_map_owned(other, "accumulate", |a, b| a + b)
    }

    /// Chooses `on_true` where `condition` is non-zero and `on_false` elsewhere, broadcasting
    /// all three (NumPy's `where`).
    ///
    /// ```
    /// use tensor::Tensor;
    /// let x = Tensor::from_vec(vec![-1.0_f32, 2.0, -3.0], [3]).unwrap();
    /// let positive = x.greater(&Tensor::scalar(0.0));
    /// assert_eq!(Tensor::select(&positive, &x, &Tensor::scalar(0.0)).to_vec(), vec![0.0, 2.0, 0.0]);
    /// ```
    pub fn select(condition: &Tensor<T>, on_true: &Tensor<T>, on_false: &Tensor<T>) -> Tensor<T> {
        or_panic(Tensor::try_select(condition, on_true, on_false))
    }

    /// Fallible [`select`](Tensor::select).
    pub fn try_select(
        condition: &Tensor<T>,
        on_true: &Tensor<T>,
        on_false: &Tensor<T>,
    ) -> Result<Tensor<T>> {
        let shape = condition
            .shape()
            .broadcast_with("select", on_true.shape())?
            .broadcast_with("select", on_false.shape())?;
        crate::storage::check_allocation::<T>("select", shape.checked_numel("select")?)?;
        let layouts =
            [condition, on_true, on_false].map(|t| t.layout().broadcast_to("select", &shape));
        let [c, a, b] = layouts;
        let (c, a, b) = (c?, a?, b?);
        let (cs, as_, bs) = (condition.storage(), on_true.storage(), on_false.storage());
        Ok(Tensor::from_overwrite(shape.clone(), |out| {
            let mut next = 0;
            for_each_row(
                shape.dims(),
                [c.strides(), a.strides(), b.strides()],
                [c.offset(), a.offset(), b.offset()],
                |[pc, pa, pb], len, [dc, da, db]| {
                    for (i, o) in out[next..next + len].iter_mut().enumerate() {
                        *o = if cs[pc + i * dc] != T::ZERO {
                            as_[pa + i * da]
                        } else {
                            bs[pb + i * db]
                        };
                    }
                    next += len;
                },
            );
        }))
    }
}

/// The binary kernel behind every broadcasting element-wise op.
fn zip_kernel<T: Float>(
    shape: Shape,
    a: &Tensor<T>,
    b: &Tensor<T>,
    f: impl Fn(T, T) -> T,
) -> Tensor<T> {
    if a.shape() == &shape && b.shape() == &shape {
        if let (Some(x), Some(y)) = (a.as_contiguous_slice(), b.as_contiguous_slice()) {
            let Some(mut data) = storage::recycled(x.len()) else {
                let data: Arc<[T]> = x.iter().zip(y).map(|(&x, &y)| f(x, y)).collect();
                return Tensor::from_buffer(data, shape);
            };
            let out = Arc::get_mut(&mut data).expect("a recycled buffer has one owner");
            for ((o, &x), &y) in out.iter_mut().zip(x).zip(y) {
                *o = f(x, y);
            }
            return Tensor::from_buffer(data, shape);
        }
    }
    let la = a
        .layout()
        .broadcast_to("zip", &shape)
        .expect("shape is the broadcast of both");
    let lb = b
        .layout()
        .broadcast_to("zip", &shape)
        .expect("shape is the broadcast of both");
    let (sa, sb) = (a.storage(), b.storage());
    Tensor::from_overwrite(shape.clone(), |out| {
        let mut next = 0;
        for_each_row(
            shape.dims(),
            [la.strides(), lb.strides()],
            [la.offset(), lb.offset()],
            |[pa, pb], len, strides| {
                let row = &mut out[next..next + len];
                match strides {
                    [1, 1] => {
                        for ((o, &x), &y) in
                            row.iter_mut().zip(&sa[pa..pa + len]).zip(&sb[pb..pb + len])
                        {
                            *o = f(x, y);
                        }
                    }
                    [1, 0] => {
                        let y = sb[pb];
                        for (o, &x) in row.iter_mut().zip(&sa[pa..pa + len]) {
                            *o = f(x, y);
                        }
                    }
                    [0, 1] => {
                        let x = sa[pa];
                        for (o, &y) in row.iter_mut().zip(&sb[pb..pb + len]) {
                            *o = f(x, y);
                        }
                    }
                    [da, db] => {
                        for (i, o) in row.iter_mut().enumerate() {
                            *o = f(sa[pa + i * da], sb[pb + i * db]);
                        }
                    }
                }
                next += len;
            },
        );
    })
}

macro_rules! unary_ops {
    ($($(#[$doc:meta])* $name:ident => |$x:ident| $body:expr;)*) => {
        impl<T: Float> Tensor<T> {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> Tensor<T> {
                    self.map(|$x: T| $body)
                }
            )*
        }
    };
}

unary_ops! {
    /// -x.
    neg => |x| -x;
    /// e^x.
    exp => |x| x.exp();
    /// Natural logarithm (NaN below 0, -inf at 0).
    log => |x| x.ln();
    /// Square root (NaN below 0).
    sqrt => |x| x.sqrt();
    /// Hyperbolic tangent.
    tanh => |x| x.tanh();
    /// Logistic sigmoid 1 / (1 + e^-x), finite for every input.
    sigmoid => |x| x.sigmoid();
    /// max(x, 0); NaN stays NaN.
    relu => |x| if x < T::ZERO { T::ZERO } else { x };
    /// |x|.
    abs => |x| x.abs();
    /// -1, 0 or 1 by the sign of x (0 at both zeros).
    sign => |x| x.sign();
    /// x^2.
    square => |x| x * x;
    /// 1 / x.
    recip => |x| T::ONE / x;
}

impl<T: Float> Tensor<T> {
    /// x^exponent for a scalar exponent.
    pub fn powf(&self, exponent: T) -> Tensor<T> {
        self.map(|x| x.powf(exponent))
    }

    /// x + value.
    pub fn add_scalar(&self, value: T) -> Tensor<T> {
        self.map(|x| x + value)
    }

    /// x - value.
    pub fn sub_scalar(&self, value: T) -> Tensor<T> {
        self.map(|x| x - value)
    }

    /// x * value.
    pub fn mul_scalar(&self, value: T) -> Tensor<T> {
        self.map(|x| x * value)
    }

    /// x / value.
    pub fn div_scalar(&self, value: T) -> Tensor<T> {
        self.map(|x| x / value)
    }

    /// Each element limited to `[low, high]` (NaN stays NaN).
    pub fn clamp(&self, low: T, high: T) -> Tensor<T> {
        self.map(|x| {
            if x < low {
                low
            } else if x > high {
                high
            } else {
                x
            }
        })
    }
}

macro_rules! binary_ops {
    ($($(#[$doc:meta])* $name:ident, $try_name:ident, $op:literal => |$a:ident, $b:ident| $body:expr;)*) => {
        impl<T: Float> Tensor<T> {
            $(
                $(#[$doc])*
                ///
                /// Broadcasts by NumPy rules; panics with a message naming the op and both shapes
                /// if they are incompatible.
                #[track_caller]
                pub fn $name(&self, other: &Tensor<T>) -> Tensor<T> {
                    or_panic(self.$try_name(other))
                }

                #[doc = concat!("Fallible [`", stringify!($name), "`](Tensor::", stringify!($name), ").")]
                pub fn $try_name(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
                    self.try_zip_map(other, $op, |$a: T, $b: T| $body)
                }
            )*
        }
    };
}

binary_ops! {
    /// Element-wise sum.
    add, try_add, "add" => |a, b| a + b;
    /// Element-wise difference.
    sub, try_sub, "sub" => |a, b| a - b;
    /// Element-wise product.
    mul, try_mul, "mul" => |a, b| a * b;
    /// Element-wise quotient.
    div, try_div, "div" => |a, b| a / b;
    /// Element-wise atan2(self, other): the angle of the point (other, self), as
    /// `f64::atan2`.
    atan2, try_atan2, "atan2" => |a, b| a.atan2(b);
    /// Element-wise maximum (NaN if either is NaN; the first of two tied values, so
    /// `maximum(-0, +0)` is `-0`).
    maximum, try_maximum, "maximum" => |a, b| a.max_propagate_nan(b);
    /// Element-wise minimum (NaN if either is NaN; the first of two tied values).
    minimum, try_minimum, "minimum" => |a, b| a.min_propagate_nan(b);
    /// 1 where `self == other`, else 0.
    equal, try_equal, "equal" => |a, b| if a == b { T::ONE } else { T::ZERO };
    /// 1 where `self != other`, else 0.
    not_equal, try_not_equal, "not_equal" => |a, b| if a != b { T::ONE } else { T::ZERO };
    /// 1 where `self < other`, else 0.
    less, try_less, "less" => |a, b| if a < b { T::ONE } else { T::ZERO };
    /// 1 where `self <= other`, else 0.
    less_equal, try_less_equal, "less_equal" => |a, b| if a <= b { T::ONE } else { T::ZERO };
    /// 1 where `self > other`, else 0.
    greater, try_greater, "greater" => |a, b| if a > b { T::ONE } else { T::ZERO };
    /// 1 where `self >= other`, else 0.
    greater_equal, try_greater_equal, "greater_equal" => |a, b| if a >= b { T::ONE } else { T::ZERO };
}

macro_rules! operator {
    ($trait:ident, $method:ident, $scalar_method:ident, $scalar_lhs:expr) => {
        impl<T: Float> $trait<&Tensor<T>> for &Tensor<T> {
            type Output = Tensor<T>;
            #[track_caller]
            fn $method(self, rhs: &Tensor<T>) -> Tensor<T> {
                Tensor::$method(self, rhs)
            }
        }
        impl<T: Float> $trait<Tensor<T>> for Tensor<T> {
            type Output = Tensor<T>;
            #[track_caller]
            fn $method(self, rhs: Tensor<T>) -> Tensor<T> {
                Tensor::$method(&self, &rhs)
            }
        }
        impl<T: Float> $trait<&Tensor<T>> for Tensor<T> {
            type Output = Tensor<T>;
            #[track_caller]
            fn $method(self, rhs: &Tensor<T>) -> Tensor<T> {
                Tensor::$method(&self, rhs)
            }
        }
        impl<T: Float> $trait<Tensor<T>> for &Tensor<T> {
            type Output = Tensor<T>;
            #[track_caller]
            fn $method(self, rhs: Tensor<T>) -> Tensor<T> {
                Tensor::$method(self, &rhs)
            }
        }
        impl<T: Float> $trait<T> for &Tensor<T> {
            type Output = Tensor<T>;
            fn $method(self, rhs: T) -> Tensor<T> {
                self.$scalar_method(rhs)
            }
        }
        impl<T: Float> $trait<T> for Tensor<T> {
            type Output = Tensor<T>;
            fn $method(self, rhs: T) -> Tensor<T> {
                self.$scalar_method(rhs)
            }
        }
        operator!(@scalar_lhs f32, $trait, $method, $scalar_lhs);
        operator!(@scalar_lhs f64, $trait, $method, $scalar_lhs);
    };
    (@scalar_lhs $t:ty, $trait:ident, $method:ident, $scalar_lhs:expr) => {
        impl $trait<&Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn $method(self, rhs: &Tensor<$t>) -> Tensor<$t> {
                let f: fn($t, $t) -> $t = $scalar_lhs;
                rhs.map(|x| f(self, x))
            }
        }
        impl $trait<Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn $method(self, rhs: Tensor<$t>) -> Tensor<$t> {
                self.$method(&rhs)
            }
        }
    };
}

operator!(Add, add, add_scalar, |s, x| s + x);
operator!(Sub, sub, sub_scalar, |s, x| s - x);
operator!(Mul, mul, mul_scalar, |s, x| s * x);
operator!(Div, div, div_scalar, |s, x| s / x);

impl<T: Float> Neg for &Tensor<T> {
    type Output = Tensor<T>;
    fn neg(self) -> Tensor<T> {
        Tensor::neg(self)
    }
}

impl<T: Float> Neg for Tensor<T> {
    type Output = Tensor<T>;
    fn neg(self) -> Tensor<T> {
        Tensor::neg(&self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(values: &[f64], dims: &[usize]) -> Tensor<f64> {
        Tensor::from_slice(values, dims).unwrap()
    }

    #[test]
    fn operators_broadcast_and_accept_scalars() {
        let a = t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
        let col = t(&[10.0, 20.0], &[2, 1]);
        assert_eq!((&a + &col).to_vec(), vec![11.0, 12.0, 23.0, 24.0]);
        assert_eq!((&a * 2.0).to_vec(), vec![2.0, 4.0, 6.0, 8.0]);
        assert_eq!((1.0 - &a).to_vec(), vec![0.0, -1.0, -2.0, -3.0]);
        assert_eq!((8.0 / &a).to_vec(), vec![8.0, 4.0, 8.0 / 3.0, 2.0]);
        assert_eq!((-&a).to_vec(), vec![-1.0, -2.0, -3.0, -4.0]);
        assert_eq!((a.clone() - a.clone()).to_vec(), vec![0.0; 4]);
    }

    #[test]
    #[should_panic(expected = "mul: cannot broadcast [2, 3] with [2]")]
    fn operator_panics_with_named_shapes() {
        let _ = Tensor::<f32>::zeros([2, 3]) * Tensor::<f32>::zeros([2]);
    }

    #[test]
    fn comparisons_give_zero_one_masks() {
        let a = t(&[1.0, 2.0, 3.0], &[3]);
        let two = Tensor::scalar(2.0);
        assert_eq!(a.greater(&two).to_vec(), vec![0.0, 0.0, 1.0]);
        assert_eq!(a.greater_equal(&two).to_vec(), vec![0.0, 1.0, 1.0]);
        assert_eq!(a.less(&two).to_vec(), vec![1.0, 0.0, 0.0]);
        assert_eq!(a.less_equal(&two).to_vec(), vec![1.0, 1.0, 0.0]);
        assert_eq!(a.equal(&two).to_vec(), vec![0.0, 1.0, 0.0]);
        assert_eq!(a.not_equal(&two).to_vec(), vec![1.0, 0.0, 1.0]);
    }

    #[test]
    fn unary_ops_match_scalar_functions() {
        let a = t(&[-2.0, 0.0, 0.5], &[3]);
        assert_eq!(a.relu().to_vec(), vec![0.0, 0.0, 0.5]);
        assert_eq!(a.abs().to_vec(), vec![2.0, 0.0, 0.5]);
        assert_eq!(a.sign().to_vec(), vec![-1.0, 0.0, 1.0]);
        assert_eq!(a.square().to_vec(), vec![4.0, 0.0, 0.25]);
        assert_eq!(a.exp().to_vec(), vec![(-2.0f64).exp(), 1.0, 0.5f64.exp()]);
        assert_eq!(a.clamp(-1.0, 0.25).to_vec(), vec![-1.0, 0.0, 0.25]);
        assert_eq!(t(&[4.0], &[1]).powf(1.5).item(), 8.0);
        assert!(t(&[f64::NAN], &[1]).relu().item().is_nan());
    }

    #[test]
    fn accumulate_reuses_a_unique_buffer_and_never_touches_a_shared_one() {
        let a = t(&[1.0, 2.0], &[2]);
        let address = a.storage().as_ptr();
        let sum = a.accumulate(&t(&[10.0], &[1]));
        assert_eq!(sum.to_vec(), vec![11.0, 12.0]);
        assert_eq!(sum.storage().as_ptr(), address);
        let shared = t(&[1.0, 2.0], &[2]);
        let keep = shared.clone();
        let sum = shared.accumulate(&keep);
        assert_eq!(sum.to_vec(), vec![2.0, 4.0]);
        assert_eq!(keep.to_vec(), vec![1.0, 2.0]);
        // The broadcast result is larger than `self`: a new buffer.
        let grown = t(&[1.0], &[1]).accumulate(&t(&[1.0, 2.0], &[2]));
        assert_eq!(grown.to_vec(), vec![2.0, 3.0]);
    }

    #[test]
    fn select_broadcasts_all_three_operands() {
        let condition = t(&[1.0, 0.0], &[2, 1]);
        let on_true = t(&[1.0, 2.0, 3.0], &[3]);
        let chosen = Tensor::select(&condition, &on_true, &Tensor::scalar(-1.0));
        assert_eq!(chosen.to_vec(), vec![1.0, 2.0, 3.0, -1.0, -1.0, -1.0]);
        assert_eq!(
            Tensor::try_select(&t(&[1.0, 0.0], &[2]), &on_true, &on_true)
                .unwrap_err()
                .to_string(),
            "select: cannot broadcast [2] with [3]"
        );
    }
}
