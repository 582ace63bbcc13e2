//! Inverted dropout (chapter section 3).

use autograd::Var;
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use tensor::{Float, Shape, Tensor, TensorError};

use crate::error::{NnError, Result};
use crate::layer::Layer;
use crate::params::Context;
#[cfg(doc)]
use crate::params::Mode;

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
/// training step is a function of that seed and the step number only, so it does not depend on
/// what other layers drew. The step number is the store's: every [`Context`] made in
/// [`Mode::Train`] takes the next one, so masks never repeat by accident (a loop that restarts
/// its own counter each epoch cannot make them repeat), and [`Context::at_step`] recomputes a
/// step's masks exactly. For a mask of your own, use [`dropout_with_mask`].
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
            return Err(NnError::Tensor(TensorError::InvalidArgument {
                op: "Dropout::with_keep_probability",
                message: format!("the keep probability must be in (0, 1], got {keep}"),
            }));
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
            return Err(NnError::Tensor(TensorError::InvalidArgument {
                op: "Dropout::with_drop_probability",
                message: format!("the drop probability must be in [0, 1), got {drop}"),
            }));
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
        Tensor::from_fn(shape, |_| {
            if rng.random::<f64>() < self.keep {
                scale
            } else {
                T::ZERO
            }
        })
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
        match context.training_step() {
            Some(step) if self.keep < 1.0 => {
                let mask = context.tape().constant(self.mask(&x.shape(), step));
                Ok(x.try_mul(mask)?)
            }
            _ => Ok(x),
        }
    }
}

/// Inverted dropout with a mask the caller supplies: `x * mask / keep`, where `mask` holds 1
/// for a kept unit and 0 for a dropped one and broadcasts to `x`'s shape (a `[features]` mask
/// drops the same units for every sample). The same arithmetic as the [`Dropout`] layer, for an
/// independent reference check or a mask drawn elsewhere. Panics where
/// [`try_dropout_with_mask`] errors.
///
/// ```
/// use autograd::Tape;
/// use tensor::Tensor;
/// let tape = Tape::<f64>::new();
/// let x = tape.leaf(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [4]).unwrap());
/// let mask = Tensor::from_vec(vec![1.0, 0.0, 1.0, 1.0], [4]).unwrap();
/// let y = nn::dropout_with_mask(x, &mask, 0.75);
/// assert_eq!(y.value().to_vec(), vec![1.0 / 0.75, 0.0, 4.0, 4.0 / 0.75]);
/// ```
#[track_caller]
pub fn dropout_with_mask<'t, T: Float>(x: Var<'t, T>, mask: &Tensor<T>, keep: f64) -> Var<'t, T> {
    crate::error::or_panic(try_dropout_with_mask(x, mask, keep))
}

/// Fallible [`dropout_with_mask`]: errors if `keep` is not in (0, 1], a mask entry is neither
/// 0 nor 1, or the mask does not broadcast to `x`'s shape.
pub fn try_dropout_with_mask<'t, T: Float>(
    x: Var<'t, T>,
    mask: &Tensor<T>,
    keep: f64,
) -> Result<Var<'t, T>> {
    const OP: &str = "dropout_with_mask";
    if !(keep > 0.0 && keep <= 1.0) {
        return Err(NnError::Tensor(TensorError::InvalidArgument {
            op: OP,
            message: format!("the keep probability must be in (0, 1], got {keep}"),
        }));
    }
    if let Some(bad) = mask
        .to_vec()
        .into_iter()
        .find(|&m| m != T::ZERO && m != T::ONE)
    {
        return Err(NnError::Tensor(TensorError::InvalidArgument {
            op: OP,
            message: format!("mask entries must be 0 (drop) or 1 (keep), found {bad}"),
        }));
    }
    let shape = x.shape();
    if mask.shape().broadcast_with(OP, &shape).ok().as_ref() != Some(&shape) {
        return Err(NnError::Shape {
            op: OP.to_string(),
            message: format!("mask {} does not broadcast to input {shape}", mask.shape()),
        });
    }
    let scaled = mask.mul_scalar(T::from_f64(1.0 / keep));
    Ok(x.try_mul(x.tape().constant(scaled))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{Mode, ParamStore};
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
        let mut context = Context::at_step(&tape, &mut store, 7);
        let x = tape.leaf(sample(&[4, 5], 1));
        let grad = dropout.forward(&mut context, x).sum_all().backward().wrt(x);
        let mask: Tensor<f64> = dropout.mask(&x.shape(), 7);
        assert_eq!(grad, mask);
        assert!(mask.to_vec().iter().all(|&m| m == 0.0 || m == 1.0 / 0.6));
        gradcheck_layer(&dropout, &store, sample(&[4, 5], 2), Mode::Train);
        gradcheck_layer(&dropout, &store, sample(&[4, 5], 2), Mode::Eval);
    }

    #[test]
    fn masks_never_repeat_when_the_caller_restarts_its_own_counter() {
        // The reproduction: a loop over epochs whose batch counter restarts at 0 each epoch used
        // to pass the same step, and so the same masks, in every epoch.
        let dropout = Dropout::with_keep_probability(0.5, &mut rng(5)).unwrap();
        let mut store = ParamStore::<f64>::new();
        let mut masks = Vec::new();
        for _epoch in 0..3 {
            for _batch in 0..2 {
                let tape = Tape::new();
                let mut context = Context::new(&tape, &mut store, Mode::Train);
                let x = tape.leaf(Tensor::ones([6, 8]));
                let y = dropout.forward(&mut context, x);
                masks.push(y.value().to_vec());
            }
        }
        assert_eq!(store.training_step(), 6);
        for i in 0..masks.len() {
            for j in 0..i {
                assert_ne!(masks[i], masks[j], "steps {j} and {i} drew the same mask");
            }
        }
        // Evaluation takes no step; an explicit step recomputes one exactly.
        let tape = Tape::new();
        let _ = Context::new(&tape, &mut store, Mode::Eval);
        assert_eq!(store.training_step(), 6);
        let mut context = Context::at_step(&tape, &mut store, 4);
        let x = tape.leaf(Tensor::ones([6, 8]));
        assert_eq!(dropout.forward(&mut context, x).value().to_vec(), masks[4]);
        assert_eq!(store.training_step(), 6);
    }

    #[test]
    fn a_supplied_mask_gives_the_layers_arithmetic() {
        let dropout = Dropout::with_keep_probability(0.7, &mut rng(8)).unwrap();
        let mut store = ParamStore::<f64>::new();
        let x_value = sample(&[5, 4], 3);
        let tape = Tape::new();
        let mut context = Context::at_step(&tape, &mut store, 11);
        let x = tape.leaf(x_value.clone());
        let from_layer = dropout.forward(&mut context, x).value();
        let zero_one: Tensor<f64> = dropout
            .mask(&x.shape(), 11)
            .map(|m| if m > 0.0 { 1.0 } else { 0.0 });
        let functional = dropout_with_mask(x, &zero_one, 0.7);
        assert_eq!(functional.value(), from_layer);
        let grad = functional.sum_all().backward().wrt(x);
        assert_eq!(grad, zero_one.mul_scalar(1.0 / 0.7));
        // A per-feature mask broadcasts over the batch.
        let per_feature = Tensor::from_vec(vec![1.0, 0.0, 1.0, 0.0], [4]).unwrap();
        let y = dropout_with_mask(x, &per_feature, 0.5).value();
        assert_eq!(y.narrow(1, 1, 1).sum_all().item(), 0.0);
        assert_eq!(y.narrow(1, 0, 1), x_value.narrow(1, 0, 1).mul_scalar(2.0));
        let error = |mask: &Tensor<f64>, keep: f64| {
            try_dropout_with_mask(x, mask, keep)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error(&zero_one, 0.0),
            "dropout_with_mask: the keep probability must be in (0, 1], got 0"
        );
        assert_eq!(
            error(&zero_one.mul_scalar(2.0), 0.5),
            "dropout_with_mask: mask entries must be 0 (drop) or 1 (keep), found 2"
        );
        assert_eq!(
            error(&Tensor::ones([5, 3]), 0.5),
            "dropout_with_mask: mask [5, 3] does not broadcast to input [5, 4]"
        );
        assert_eq!(
            error(&Tensor::ones([2, 5, 4]), 0.5),
            "dropout_with_mask: mask [2, 5, 4] does not broadcast to input [5, 4]"
        );
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
    fn drop_probability_is_one_minus_keep() {
        // Values exact in binary, so the subtraction is exact.
        let dropout = Dropout::with_drop_probability(0.25, &mut rng(0)).unwrap();
        assert_eq!(dropout.drop_probability(), 0.25);
        let dropout = Dropout::with_keep_probability(0.625, &mut rng(0)).unwrap();
        assert_eq!(dropout.drop_probability(), 0.375);
        let never = Dropout::with_keep_probability(1.0, &mut rng(0)).unwrap();
        assert_eq!(never.drop_probability(), 0.0);
    }

    #[test]
    fn the_layer_is_named_dropout_unless_renamed() {
        let dropout = Dropout::with_keep_probability(0.5, &mut rng(0)).unwrap();
        assert_eq!(Layer::<f64>::name(&dropout), "dropout");
        assert_eq!(Layer::<f64>::name(&dropout.named("drop2")), "drop2");
    }

    #[test]
    fn keep_one_is_the_identity_in_training_too() {
        // keep = 1 never drops: the input itself comes back, and nothing is recorded.
        let dropout = Dropout::with_keep_probability(1.0, &mut rng(0)).unwrap();
        let mut store = ParamStore::<f64>::new();
        let tape = Tape::new();
        let mut context = Context::at_step(&tape, &mut store, 3);
        let x = tape.leaf(sample(&[4, 5], 1));
        let recorded = tape.len();
        let y = dropout.forward(&mut context, x);
        assert_eq!(y.index(), x.index());
        assert_eq!(tape.len(), recorded);
    }

    #[test]
    fn a_unit_is_kept_only_when_its_draw_is_below_keep() {
        // Draws are multiples of 2^-53 in [0, 1): keeping a unit when `draw < keep` keeps it
        // with probability exactly `keep`, so a draw equal to `keep` drops its unit.
        let (seed, step) = (21, 5);
        let first_draw: f64 = StdRng::seed_from_u64(mix(seed, step)).random();
        assert!(first_draw > 0.0);
        let with_keep = |keep: f64| Dropout {
            name: "dropout".to_string(),
            keep,
            seed,
        };
        let shape = Shape::from([3]);
        let at_the_draw: Tensor<f64> = with_keep(first_draw).mask(&shape, step);
        assert_eq!(at_the_draw.to_vec()[0], 0.0);
        let just_above = f64::from_bits(first_draw.to_bits() + 1);
        let kept: Tensor<f64> = with_keep(just_above).mask(&shape, step);
        assert_eq!(kept.to_vec()[0], 1.0 / just_above);
    }

    #[test]
    fn step_seeds_are_splitmix64_outputs() {
        // The published outputs of SplitMix64 (Vigna's splitmix64.c): seeded with 0, its
        // k-th output finalises k * gamma, which is mix(0, k).
        assert_eq!(mix(0, 1), 0xE220_A839_7B1D_CDAF);
        assert_eq!(mix(0, 2), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(mix(0, 3), 0x06C4_5D18_8009_454F);
        // Seeded with 1234567, its first output finalises 1234567 + gamma. The seed and the
        // step are combined by xor: (1234567 + gamma) xor gamma = 1519241.
        let gamma: u64 = 0x9E37_79B9_7F4A_7C15;
        assert_eq!(1_234_567_u64.wrapping_add(gamma) ^ gamma, 1_519_241);
        assert_eq!(mix(1_519_241, 1), 6_457_827_717_110_365_317);
        assert_eq!(
            mix(1_234_567_u64.wrapping_add(2_u64.wrapping_mul(gamma)), 0),
            3_203_168_211_198_807_973
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
