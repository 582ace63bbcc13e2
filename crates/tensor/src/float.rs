//! The element types: [`Float`], implemented for `f32` and `f64`.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use rand::Rng;
use rand_distr::{Distribution, StandardNormal, StandardUniform};

/// The runtime name of an element type, for messages, `Display` and file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
}

impl DType {
    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        })
    }
}

/// What each element type must provide that is not part of the public API: its matrixmultiply
/// kernel and its thread's buffer cache. Private, so `Float` cannot be implemented elsewhere and
/// these never appear in the public interface.
mod sealed {
    use crate::gemm::MatrixView;
    use crate::storage::BufferCache;

    pub trait Sealed: Sized {
        /// Runs `f` on this thread's cache of recycled buffers of this type (`None` while the
        /// thread is shutting down).
        fn with_buffer_cache<R>(f: impl FnOnce(&mut BufferCache<Self>) -> R) -> Option<R>;

        /// C = alpha * A B + beta * C through matrixmultiply's kernel for this type.
        fn gemm(
            alpha: Self,
            a: MatrixView<'_, Self>,
            b: MatrixView<'_, Self>,
            beta: Self,
            c: &mut [Self],
        );
    }

    macro_rules! sealed {
        ($t:ty, $gemm:path) => {
            impl Sealed for $t {
                fn with_buffer_cache<R>(f: impl FnOnce(&mut BufferCache<Self>) -> R) -> Option<R> {
                    thread_local! {
                        static CACHE: std::cell::RefCell<BufferCache<$t>> =
                            std::cell::RefCell::new(BufferCache::default());
                    }
                    CACHE.try_with(|cache| f(&mut cache.borrow_mut())).ok()
                }

                fn gemm(
                    alpha: Self,
                    a: MatrixView<'_, Self>,
                    b: MatrixView<'_, Self>,
                    beta: Self,
                    c: &mut [Self],
                ) {
                    $gemm(alpha, a, b, beta, c)
                }
            }
        };
    }

    sealed!(f32, crate::gemm::sgemm);
    sealed!(f64, crate::gemm::dgemm);
}

/// A floating-point element type. Implemented for `f32` and `f64` only (the trait is sealed,
/// because each type must also name its matrixmultiply kernel).
///
/// Everything in the library is generic over it: training usually runs in `f32`, gradient
/// checks in `f64`.
pub trait Float:
    Copy
    + Send
    + Sync
    + 'static
    + fmt::Debug
    + fmt::Display
    + fmt::LowerExp
    + Default
    + PartialEq
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + sealed::Sealed
{
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// Positive infinity.
    const INFINITY: Self;
    /// Negative infinity.
    const NEG_INFINITY: Self;
    /// Not a number.
    const NAN: Self;
    /// Machine epsilon: the gap between 1 and the next representable value.
    const EPSILON: Self;
    /// The runtime name of the type.
    const DTYPE: DType;

    /// Converts from `f64`, rounding to nearest.
    fn from_f64(value: f64) -> Self;
    /// Converts to `f64` exactly.
    fn to_f64(self) -> f64;
    /// Converts a count to the float type (exact below 2^24 for `f32`).
    fn from_usize(value: usize) -> Self;

    /// e^x.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// `self` raised to a floating-point power.
    fn powf(self, exponent: Self) -> Self;
    /// The angle of the point (`other`, `self`) in radians, in (-pi, pi] (`self` is y).
    fn atan2(self, other: Self) -> Self;
    /// The larger of two values; NaN if either is NaN (unlike `f32::max`).
    fn max_propagate_nan(self, other: Self) -> Self;
    /// The smaller of two values; NaN if either is NaN (unlike `f32::min`).
    fn min_propagate_nan(self, other: Self) -> Self;
    /// True unless infinite or NaN.
    fn is_finite(self) -> bool;
    /// True for NaN.
    fn is_nan(self) -> bool;

    /// The logistic function 1 / (1 + e^-x), evaluated without overflow for any input.
    #[inline]
    fn sigmoid(self) -> Self {
        // For x < 0, e^-x overflows; the algebraically equal e^x / (1 + e^x) does not.
        if self >= Self::ZERO {
            Self::ONE / (Self::ONE + (-self).exp())
        } else {
            let e = self.exp();
            e / (Self::ONE + e)
        }
    }

    /// -1, 0 or 1 by the sign of `self` (0 for both zeros, NaN for NaN).
    #[inline]
    fn sign(self) -> Self {
        if self > Self::ZERO {
            Self::ONE
        } else if self < Self::ZERO {
            -Self::ONE
        } else if self.is_nan() {
            self
        } else {
            Self::ZERO
        }
    }

    /// A draw from the standard normal distribution N(0, 1).
    fn sample_standard_normal<R: Rng + ?Sized>(rng: &mut R) -> Self;
    /// A draw from the uniform distribution on [0, 1).
    fn sample_unit_uniform<R: Rng + ?Sized>(rng: &mut R) -> Self;
}

macro_rules! impl_float {
    ($t:ident, $dtype:ident, $tanh:path) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const INFINITY: Self = $t::INFINITY;
            const NEG_INFINITY: Self = $t::NEG_INFINITY;
            const NAN: Self = $t::NAN;
            const EPSILON: Self = $t::EPSILON;
            const DTYPE: DType = DType::$dtype;

            #[inline]
            fn from_f64(value: f64) -> Self {
                value as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn from_usize(value: usize) -> Self {
                value as $t
            }
            #[inline]
            fn exp(self) -> Self {
                $t::exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                $t::ln(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                $t::sqrt(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                $tanh(self)
            }
            #[inline]
            fn abs(self) -> Self {
                $t::abs(self)
            }
            #[inline]
            fn powf(self, exponent: Self) -> Self {
                $t::powf(self, exponent)
            }
            #[inline]
            fn atan2(self, other: Self) -> Self {
                $t::atan2(self, other)
            }
            #[inline]
            fn max_propagate_nan(self, other: Self) -> Self {
                if self.is_nan() || other.is_nan() {
                    $t::NAN
                } else if other > self {
                    other
                } else {
                    self
                }
            }
            #[inline]
            fn min_propagate_nan(self, other: Self) -> Self {
                if self.is_nan() || other.is_nan() {
                    $t::NAN
                } else if other < self {
                    other
                } else {
                    self
                }
            }
            #[inline]
            fn is_finite(self) -> bool {
                $t::is_finite(self)
            }
            #[inline]
            fn is_nan(self) -> bool {
                $t::is_nan(self)
            }
            fn sample_standard_normal<R: Rng + ?Sized>(rng: &mut R) -> Self {
                StandardNormal.sample(rng)
            }
            fn sample_unit_uniform<R: Rng + ?Sized>(rng: &mut R) -> Self {
                StandardUniform.sample(rng)
            }
        }
    };
}

impl_float!(f32, F32, tanh_f32);
impl_float!(f64, F64, f64::tanh);

/// tanh for `f32` as a branch-free rational function (the minimax approximation Eigen and
/// TensorFlow use), so element-wise loops vectorise: about ten times faster than libm's
/// `tanhf` on 16 elements. Accuracy: at most 8 ulp from the correctly rounded value, the worst
/// case near saturation (|x| ~ 6), measured over every 7th float in [1e-6, 10] by the test below;
/// libm's is 2 ulp. `f64` (where gradients are checked) uses libm.
// The coefficients are kept exactly as published, even where f32 rounds their last digit.
#[allow(clippy::excessive_precision)]
#[inline]
fn tanh_f32(x: f32) -> f32 {
    // Beyond this the rational function's value rounds to +-1, as tanh does.
    const SATURATION: f32 = 7.905_311;
    let x = x.clamp(-SATURATION, SATURATION);
    let x2 = x * x;
    let mut numerator = x2 * -2.760_768_5e-16 + 2.000_187_9e-13;
    numerator = x2 * numerator + -8.604_672e-11;
    numerator = x2 * numerator + 5.122_297e-8;
    numerator = x2 * numerator + 1.485_722_4e-5;
    numerator = x2 * numerator + 6.372_619_3e-4;
    numerator = x2 * numerator + 4.893_524_6e-3;
    let mut denominator = x2 * 1.198_258_4e-6 + 1.185_347_1e-4;
    denominator = x2 * denominator + 2.268_434_6e-3;
    denominator = x2 * denominator + 4.893_525e-3;
    x * numerator / denominator
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_is_finite_and_saturates_at_extremes() {
        assert_eq!(Float::sigmoid(1e4_f32), 1.0);
        assert_eq!(Float::sigmoid(-1e4_f32), 0.0);
        assert_eq!(Float::sigmoid(0.0_f64), 0.5);
        let x = 0.7_f64;
        assert!((Float::sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs() < 1e-15);
        assert!((Float::sigmoid(-x) - 1.0 / (1.0 + x.exp())).abs() < 1e-15);
    }

    #[test]
    fn max_and_min_propagate_nan_from_either_side() {
        assert!(Float::max_propagate_nan(f64::NAN, 1.0).is_nan());
        assert!(Float::max_propagate_nan(1.0, f64::NAN).is_nan());
        assert!(Float::min_propagate_nan(f32::NAN, 1.0).is_nan());
        assert_eq!(Float::max_propagate_nan(1.0_f32, 2.0), 2.0);
        assert_eq!(Float::min_propagate_nan(1.0_f32, 2.0), 1.0);
    }

    /// Distance in units in the last place between two floats of the same sign.
    fn ulps(a: f32, b: f32) -> u32 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn f32_tanh_is_within_8_ulp_of_the_correctly_rounded_value() {
        let mut bits = 1e-6_f32.to_bits();
        let mut worst = 0;
        while f32::from_bits(bits) < 10.0 {
            let x = f32::from_bits(bits);
            for v in [x, -x] {
                let exact = (v as f64).tanh() as f32;
                worst = worst.max(ulps(Float::tanh(v), exact));
            }
            bits += 7;
        }
        assert!(worst <= 8, "worst error {worst} ulp");
        assert_eq!(Float::tanh(0.0_f32), 0.0);
        assert_eq!(Float::tanh(20.0_f32), 1.0);
        assert_eq!(Float::tanh(-1e30_f32), -1.0);
        assert!(Float::tanh(f32::NAN).is_nan());
    }

    #[test]
    fn sign_of_zero_is_zero() {
        assert_eq!(Float::sign(0.0_f64), 0.0);
        assert_eq!(Float::sign(-0.0_f64), 0.0);
        assert_eq!(Float::sign(-3.0_f32), -1.0);
        assert!(Float::sign(f64::NAN).is_nan());
    }
}
