//! Weight initialisation; the table is on [`Init`].

use rand::Rng;
use tensor::{Float, Shape, Tensor, TensorError};

use crate::error::{NnError, Result};

/// How to draw a layer's initial weights. Biases always start at zero.
///
/// Weight initialisation (chapter section 4): a named choice per layer.
///
/// | name | distribution | variance | meant for |
/// |---|---|---|---|
/// | [`Init::XavierNormal`] | N(0, σ²) | 2 / (fan_in + fan_out) | tanh, sigmoid (Glorot & Bengio) |
/// | [`Init::XavierUniform`] | U(-a, a), a = sqrt(6 / (fan_in + fan_out)) | 2 / (fan_in + fan_out) | tanh, sigmoid |
/// | [`Init::HeNormal`] | N(0, σ²) | 2 / fan_in | ReLU (Kaiming He) |
/// | [`Init::HeUniform`] | U(-a, a), a = sqrt(6 / fan_in) | 2 / fan_in | ReLU |
/// | [`Init::LecunNormal`] | N(0, σ²) | 1 / fan_in | SELU, linear |
/// | [`Init::Normal`] | N(0, std²) | std² | experiments (too small / too large) |
/// | [`Init::Uniform`] | U(-limit, limit) | limit² / 3 | experiments |
/// | [`Init::Constant`] | every weight equal | 0 | showing the symmetry problem |
///
/// fan_in is the number of inputs of the layer (n\[l-1\] in the chapter), fan_out its number of
/// units (n\[l\]). He normal is PyTorch's `kaiming_normal_(mode="fan_in", nonlinearity="relu")`;
/// Xavier normal is `xavier_normal_` with gain 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Glorot normal: variance 2 / (fan_in + fan_out).
    XavierNormal,
    /// Glorot uniform: variance 2 / (fan_in + fan_out).
    XavierUniform,
    /// He (Kaiming) normal: variance 2 / fan_in.
    HeNormal,
    /// He (Kaiming) uniform: variance 2 / fan_in.
    HeUniform,
    /// LeCun normal: variance 1 / fan_in.
    LecunNormal,
    /// A fixed standard deviation.
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// Uniform on [-limit, limit).
    Uniform {
        /// Half-width.
        limit: f64,
    },
    /// Every weight the same value.
    Constant(f64),
}

impl Init {
    /// The variance of one weight under this scheme.
    ///
    /// ```
    /// use nn::Init;
    /// assert_eq!(Init::HeNormal.variance(50, 10), 2.0 / 50.0);
    /// assert_eq!(Init::XavierUniform.variance(50, 10), 2.0 / 60.0);
    /// ```
    pub fn variance(self, fan_in: usize, fan_out: usize) -> f64 {
        let (fan_in, fan_out) = (fan_in as f64, fan_out as f64);
        match self {
            Init::XavierNormal | Init::XavierUniform => 2.0 / (fan_in + fan_out),
            Init::HeNormal | Init::HeUniform => 2.0 / fan_in,
            Init::LecunNormal => 1.0 / fan_in,
            Init::Normal { std } => std * std,
            Init::Uniform { limit } => limit * limit / 3.0,
            Init::Constant(_) => 0.0,
        }
    }

    /// Checks the choice for a layer with `fan_in` inputs and `fan_out` units: the fan-based
    /// schemes need both to be at least 1, `Normal` a finite `std >= 0`, `Uniform` a finite
    /// `limit > 0`, `Constant` a finite value. Errors name the scheme and the value.
    ///
    /// ```
    /// use nn::Init;
    /// assert!(Init::HeNormal.validate(784, 512).is_ok());
    /// assert_eq!(
    ///     Init::Normal { std: f64::NAN }.validate(3, 2).unwrap_err().to_string(),
    ///     "Init::Normal: the standard deviation must be finite and >= 0, got NaN"
    /// );
    /// ```
    pub fn validate(self, fan_in: usize, fan_out: usize) -> Result<()> {
        let invalid = |op: &'static str, message: String| {
            Err(NnError::Tensor(TensorError::InvalidArgument {
                op,
                message,
            }))
        };
        match self {
            Init::XavierNormal
            | Init::XavierUniform
            | Init::HeNormal
            | Init::HeUniform
            | Init::LecunNormal
                if fan_in == 0 || fan_out == 0 =>
            {
                invalid(
                    "Init",
                    format!("{self:?} needs fan_in and fan_out >= 1, got {fan_in} and {fan_out}"),
                )
            }
            Init::Normal { std } if !(std >= 0.0 && std.is_finite()) => invalid(
                "Init::Normal",
                format!("the standard deviation must be finite and >= 0, got {std}"),
            ),
            Init::Uniform { limit } if !(limit > 0.0 && limit.is_finite()) => invalid(
                "Init::Uniform",
                format!("the limit must be finite and > 0, got {limit}"),
            ),
            Init::Constant(value) if !value.is_finite() => invalid(
                "Init::Constant",
                format!("the value must be finite, got {value}"),
            ),
            _ => Ok(()),
        }
    }

    /// Draws a tensor of `shape` for a layer with `fan_in` inputs and `fan_out` units. Errors
    /// if the choice is invalid for it ([`validate`](Init::validate)) or the shape cannot be
    /// allocated.
    pub fn sample<T: Float, R: Rng + ?Sized>(
        self,
        shape: impl Into<Shape>,
        fan_in: usize,
        fan_out: usize,
        rng: &mut R,
    ) -> Result<Tensor<T>> {
        self.validate(fan_in, fan_out)?;
        let shape = shape.into();
        let variance = self.variance(fan_in, fan_out);
        Ok(match self {
            Init::XavierNormal | Init::HeNormal | Init::LecunNormal | Init::Normal { .. } => {
                Tensor::random_normal(shape, T::ZERO, T::from_f64(variance.sqrt()), rng)?
            }
            // U(-a, a) has variance a^2 / 3.
            Init::XavierUniform | Init::HeUniform | Init::Uniform { .. } => {
                let limit = (3.0 * variance).sqrt();
                Tensor::random_uniform(shape, T::from_f64(-limit), T::from_f64(limit), rng)?
            }
            Init::Constant(value) => Tensor::try_full(shape, T::from_f64(value))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// The sample variance of n i.i.d. draws has standard deviation sigma^2 sqrt(2 / (n - 1))
    /// for a normal and sigma^2 sqrt(4 / (5 n)) for a uniform (kurtosis 9/5); five of those
    /// is a bound a correct sampler breaks with probability below 1e-6.
    fn check(init: Init, fan_in: usize, fan_out: usize) {
        let mut rng = StdRng::seed_from_u64(42);
        let w: Tensor<f64> = init
            .sample([fan_in, fan_out], fan_in, fan_out, &mut rng)
            .unwrap();
        let values = w.to_vec();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let expected = init.variance(fan_in, fan_out);
        let uniform = matches!(
            init,
            Init::XavierUniform | Init::HeUniform | Init::Uniform { .. }
        );
        let sd_of_variance = if uniform {
            expected * (4.0 / (5.0 * n)).sqrt()
        } else {
            expected * (2.0 / (n - 1.0)).sqrt()
        };
        assert!(
            (variance - expected).abs() < 5.0 * sd_of_variance,
            "{init:?}: sample variance {variance} vs {expected} (bound {})",
            5.0 * sd_of_variance
        );
        // The mean's standard deviation is sqrt(expected / n).
        assert!(
            mean.abs() < 5.0 * (expected / n).sqrt(),
            "{init:?}: mean {mean}"
        );
    }

    #[test]
    fn sample_variances_match_the_formulas() {
        for init in [
            Init::XavierNormal,
            Init::XavierUniform,
            Init::HeNormal,
            Init::HeUniform,
            Init::LecunNormal,
        ] {
            check(init, 400, 300);
        }
        check(Init::Normal { std: 0.01 }, 400, 300);
        check(Init::Uniform { limit: 2.0 }, 400, 300);
    }

    #[test]
    fn invalid_choices_are_errors_not_panics() {
        let mut rng = StdRng::seed_from_u64(0);
        let error = |init: Init, fan_in: usize| {
            init.sample::<f32, _>([fan_in.max(1), 2], fan_in, 2, &mut StdRng::seed_from_u64(0))
                .unwrap_err()
                .to_string()
        };
        // These used to panic inside a function that returns Result.
        assert_eq!(
            error(Init::HeNormal, 0),
            "Init: HeNormal needs fan_in and fan_out >= 1, got 0 and 2"
        );
        assert_eq!(
            error(Init::Normal { std: f64::NAN }, 2),
            "Init::Normal: the standard deviation must be finite and >= 0, got NaN"
        );
        assert_eq!(
            error(Init::Uniform { limit: 0.0 }, 2),
            "Init::Uniform: the limit must be finite and > 0, got 0"
        );
        assert_eq!(
            error(Init::Constant(f64::INFINITY), 2),
            "Init::Constant: the value must be finite, got inf"
        );
        assert!(Init::Normal { std: 0.0 }.validate(1, 1).is_ok());
        // A shape too large to allocate is an error too.
        assert!(
            Init::Constant(0.0)
                .sample::<f64, _>([1 << 30, 1 << 30], 1, 1, &mut rng)
                .is_err()
        );
    }

    #[test]
    fn variance_formulas() {
        assert_eq!(Init::XavierNormal.variance(100, 300), 2.0 / 400.0);
        assert_eq!(Init::HeUniform.variance(100, 300), 2.0 / 100.0);
        assert_eq!(Init::LecunNormal.variance(100, 300), 1.0 / 100.0);
        assert_eq!(
            Init::Constant(0.5)
                .sample::<f32, _>([2, 2], 2, 2, &mut StdRng::seed_from_u64(0))
                .unwrap()
                .to_vec(),
            vec![0.5; 4]
        );
    }
}
