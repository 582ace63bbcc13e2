//! Inverted dropout (chapter section 3).

use autograd::Var;
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use tensor::{Float, Shape, Tensor};

use crate::error::{NnError, Result};
use crate::layer::Layer;
use crate::params::{Context, Mode};

/// Inverted dropout: in training, each unit is kept with probability `keep` and scaled by
/// `1 / keep`, so the expected activation is unchanged; in evaluation it is the identity.
///
/// Exactly the chapter's recipe: `mask = (uniform < keep) / keep` is drawn with the input's
/// shape and multiplied in as a constant, so the gradient (the mask itself) comes from the
/// tape.
///
/// The two probabilities are easy to confuse, so each constructor names the one it takes:
/// [`with_keep_probability`](Dropout::with_keep_probability) (the chapter's p) or
/// [`with_drop_probability`](Dropout::with_drop_probability) (PyTorch's `nn.Dropout(p)`).
///
/// Reproducibility: the layer draws a seed from the RNG it is built with; the mask of a
/// training step is a function of that seed and the step number in [`Mode::Train`] only, so
/// it does not depend on what other layers drew.
///
/// ```
/// use nn::Dropout;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let dropout = Dropout::with_drop_probability(0.2, &mut rng).unwrap();
/// assert_eq!(dropout.keep_probability(), 0.8);
/// assert!(Dropout::with_keep_probability(0.0, &mut rng).is_err());
/// ```
#[derive(Clone, Debug)]
pub struct Dropout {
    name: String,
    keep: f64,
    seed: u64,
}

impl Dropout {
    /// Keeps each unit with probability `keep`, which must be in (0, 1] (1: never drop).
    pub fn with_keep_probability<R: Rng + ?Sized>(keep: f64, rng: &mut R) -> Result<Self> {
        if !(keep > 0.0 && keep <= 1.0) {
            return Err(NnError::InvalidArgument {
                op: "Dropout::with_keep_probability",
                message: format!("the keep probability must be in (0, 1], got {keep}"),
            });
        }
        Ok(Dropout {
            name: "dropout".to_string(),
            keep,
            seed: rng.random(),
        })
    }

    /// Drops each unit with probability `drop`, which must be in [0, 1).
    pub fn with_drop_probability<R: Rng + ?Sized>(drop: f64, rng: &mut R) -> Result<Self> {
        if !(0.0..1.0).contains(&drop) {
            return Err(NnError::InvalidArgument {
                op: "Dropout::with_drop_probability",
                message: format!("the drop probability must be in [0, 1), got {drop}"),
            });
        }
        Dropout::with_keep_probability(1.0 - drop, rng)
    }

    /// The same layer under another name (for per-layer statistics).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Probability that a unit is kept.
    pub fn keep_probability(&self) -> f64 {
        self.keep
    }

    /// Probability that a unit is dropped.
    pub fn drop_probability(&self) -> f64 {
        1.0 - self.keep
    }

    /// The mask of training step `step` for an input of `shape`: each entry `1 / keep` with
    /// probability `keep`, else 0.
    pub fn mask<T: Float>(&self, shape: &Shape, step: u64) -> Tensor<T> {
        let mut rng = StdRng::seed_from_u64(mix(self.seed, step));
        let scale = T::from_f64(1.0 / self.keep);
        let values: Vec<T> = (0..shape.numel())
            .map(|_| {
                if rng.random::<f64>() < self.keep {
                    scale
                } else {
                    T::ZERO
                }
            })
            .collect();
        Tensor::from_vec(values, shape.clone()).expect("one value per element")
    }
}

/// SplitMix64's finaliser over the seed and step: nearby steps give unrelated streams.
fn mix(seed: u64, step: u64) -> u64 {
    let mut z = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl<T: Float> Layer<T> for Dropout {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        Ok(input.clone())
    }

    fn try_forward<'t>(
        &self,
        context: &mut Context<'t, '_, T>,
        x: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        match context.mode() {
            Mode::Train { step } if self.keep < 1.0 => {
                let mask = context.tape().constant(self.mask(&x.shape(), step));
                Ok(x.try_mul(mask)?)
            }
            _ => Ok(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ParamStore;
    use crate::test_support::{gradcheck_layer, rng, sample};
    use autograd::Tape;

    #[test]
    fn keep_probability_outside_the_unit_interval_is_refused() {
        for keep in [0.0, -0.1, 1.5, f64::NAN] {
            let error = Dropout::with_keep_probability(keep, &mut rng(0)).unwrap_err();
            assert!(error.to_string().starts_with(
                "Dropout::with_keep_probability: the keep probability must be in (0, 1]"
            ));
        }
        assert!(Dropout::with_drop_probability(1.0, &mut rng(0)).is_err());
        assert_eq!(
            Dropout::with_drop_probability(0.0, &mut rng(0))
                .unwrap()
                .keep_probability(),
            1.0
        );
    }

    #[test]
    fn gradient_is_the_mask_divided_by_keep() {
        let dropout = Dropout::with_keep_probability(0.6, &mut rng(3)).unwrap();
        let mut store = ParamStore::<f64>::new();
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut store, Mode::Train { step: 7 });
        let x = tape.leaf(sample(&[4, 5], 1));
        let grad = dropout.forward(&mut context, x).sum_all().backward().wrt(x);
        let mask: Tensor<f64> = dropout.mask(&x.shape(), 7);
        assert_eq!(grad, mask);
        assert!(mask.to_vec().iter().all(|&m| m == 0.0 || m == 1.0 / 0.6));
        gradcheck_layer(
            &dropout,
            &store,
            sample(&[4, 5], 2),
            Mode::Train { step: 7 },
        );
        gradcheck_layer(&dropout, &store, sample(&[4, 5], 2), Mode::Eval);
    }

    #[test]
    fn evaluation_is_the_identity() {
        let dropout = Dropout::with_keep_probability(0.5, &mut rng(0)).unwrap();
        let mut store = ParamStore::<f32>::new();
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut store, Mode::Eval);
        let x = tape.constant(Tensor::ones([10, 10]));
        assert_eq!(dropout.forward(&mut context, x).index(), x.index());
    }

    #[test]
    fn mask_depends_only_on_seed_and_step() {
        let a = Dropout::with_keep_probability(0.5, &mut rng(9)).unwrap();
        let b = Dropout::with_keep_probability(0.5, &mut rng(9)).unwrap();
        let shape = Shape::from([8, 8]);
        assert_eq!(a.mask::<f32>(&shape, 3), b.mask::<f32>(&shape, 3));
        assert_ne!(a.mask::<f32>(&shape, 3), a.mask::<f32>(&shape, 4));
        // The same draws whatever the element type.
        assert_eq!(
            a.mask::<f32>(&shape, 3).cast::<f64>(),
            a.mask::<f64>(&shape, 3).map(|m| m as f32 as f64)
        );
    }

    #[test]
    fn expected_activation_is_preserved() {
        // Each output is x / keep with probability keep, else 0: mean x, variance
        // x^2 (1 - keep) / keep. Over n units the sample mean's standard deviation is
        // sqrt((1 - keep) / (keep n)); we allow five of them.
        let keep = 0.7;
        let n = 100_000;
        let dropout = Dropout::with_keep_probability(keep, &mut rng(11)).unwrap();
        let mask: Tensor<f64> = dropout.mask(&Shape::from([n]), 0);
        let mean = mask.mean_all().item();
        let bound = 5.0 * ((1.0 - keep) / (keep * n as f64)).sqrt();
        assert!((mean - 1.0).abs() < bound, "mean {mean}, bound {bound}");
        let kept = mask.to_vec().iter().filter(|&&m| m > 0.0).count() as f64 / n as f64;
        assert!((kept - keep).abs() < 5.0 * (keep * (1.0 - keep) / n as f64).sqrt());
    }
}
