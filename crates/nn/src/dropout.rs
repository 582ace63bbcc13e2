//! Inverted dropout (chapter section 3).

use autograd::Var;
use chacha20::ChaCha8Rng;
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
    ///
    /// A fixed function of (the layer's seed, `step`, `shape`), the same on every machine and
    /// for any number of threads: ChaCha8 (`chacha20::ChaCha8Rng`, a counter-based generator)
    /// keyed by the seed, on stream `step`, gives 32-bit words, and unit i (in row-major order)
    /// reads the `k`-bit field i of that word sequence, `k` = [`Dropout::bits_per_unit`]. The unit
    /// is kept when its field is below `keep * 2^k`. Where `keep` is a multiple of `2^-k` for a
    /// `k` of 16 or less (0.5 is one bit, 0.75 two, 0.625 four) that is exactly probability
    /// `keep`, and one word serves `32 / k` units; otherwise `k` is 32 and the threshold is
    /// `keep * 2^32` rounded, within `2^-33` of `keep`. No floating-point uniforms are drawn.
    pub fn mask<T: Float>(&self, shape: &Shape, step: u64) -> Tensor<T> {
        let units = shape.numel();
        let bits = Dropout::bits_per_unit(self.keep);
        let threshold = keep_threshold(self.keep, bits);
        let mut generator = ChaCha8Rng::seed_from_u64(self.seed);
        generator.set_stream(step);
        let units_per_word = 32 / bits as usize;
        let mut words = vec![0_u32; units.div_ceil(units_per_word)];
        generator.fill(&mut words[..]);
        let field_mask = u64::MAX >> (64 - bits);
        let (scale, zero) = (T::from_f64(1.0 / self.keep), T::ZERO);
        let mut values = vec![zero; units];
        for (chunk, &word) in values.chunks_mut(units_per_word).zip(&words) {
            let word = u64::from(word);
            for (field, value) in chunk.iter_mut().enumerate() {
                let draw = (word >> (field as u32 * bits)) & field_mask;
                *value = if draw < threshold { scale } else { zero };
            }
        }
        Tensor::from_vec(values, shape.clone()).expect("one value per unit")
    }

    /// Random bits each unit's draw takes (1, 2, 4, 8, 16 or 32): the fewest, a power of two,
    /// for which `keep * 2^bits` is a whole number, else 32.
    pub fn bits_per_unit(keep: f64) -> u32 {
        [1, 2, 4, 8, 16]
            .into_iter()
            .find(|&bits| (keep * f64::from(1_u32 << bits)).fract() == 0.0)
            .unwrap_or(32)
    }
}

/// A unit is kept when its `bits`-bit draw is below this: `keep * 2^bits`, exact for the
/// dyadic probabilities `bits_per_unit` picks fewer than 32 bits for, rounded otherwise.
fn keep_threshold(keep: f64, bits: u32) -> u64 {
    (keep * (1_u64 << bits) as f64).round() as u64
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

    /// The stream's first `count` 32-bit words for a layer seed and step, drawn the documented
    /// way (ChaCha8 keyed by the seed, on stream `step`), one `next_u32` at a time.
    fn stream_words(seed: u64, step: u64, count: usize) -> Vec<u32> {
        let mut generator = ChaCha8Rng::seed_from_u64(seed);
        generator.set_stream(step);
        (0..count).map(|_| generator.next_u32()).collect()
    }

    fn with_keep(keep: f64, seed: u64) -> Dropout {
        Dropout {
            name: "dropout".to_string(),
            keep,
            seed,
        }
    }

    #[test]
    fn a_unit_is_kept_only_when_its_field_of_the_stream_is_below_the_threshold() {
        let (seed, step) = (21, 5);
        let words = stream_words(seed, step, 40);
        // keep 0.5: one bit per unit, 32 units per word; 33 units reach into the second word.
        let mask: Tensor<f64> = with_keep(0.5, seed).mask(&Shape::from([33]), step);
        for (unit, &m) in mask.to_vec().iter().enumerate() {
            let bit = (words[unit / 32] >> (unit % 32)) & 1;
            assert_eq!(m, if bit == 0 { 2.0 } else { 0.0 }, "unit {unit}");
        }
        // keep 0.75: two bits per unit, kept when the field is 0, 1 or 2.
        let mask: Tensor<f64> = with_keep(0.75, seed).mask(&Shape::from([3, 7]), step);
        for (unit, &m) in mask.to_vec().iter().enumerate() {
            let field = (words[unit / 16] >> (2 * (unit % 16))) & 3;
            assert_eq!(m, if field < 3 { 1.0 / 0.75 } else { 0.0 }, "unit {unit}");
        }
        // keep 0.3 is not dyadic: a whole word per unit against round(0.3 * 2^32).
        let threshold = (0.3 * 4_294_967_296.0_f64).round() as u64;
        let mask: Tensor<f64> = with_keep(0.3, seed).mask(&Shape::from([40]), step);
        for (unit, &m) in mask.to_vec().iter().enumerate() {
            let kept = u64::from(words[unit]) < threshold;
            assert_eq!(m, if kept { 1.0 / 0.3 } else { 0.0 }, "unit {unit}");
        }
    }

    #[test]
    fn each_unit_takes_the_fewest_bits_that_make_its_probability_exact() {
        assert_eq!(Dropout::bits_per_unit(0.5), 1);
        assert_eq!(Dropout::bits_per_unit(0.25), 2);
        assert_eq!(Dropout::bits_per_unit(0.75), 2);
        assert_eq!(Dropout::bits_per_unit(0.625), 4); // 5/8: three bits, rounded up to four
        assert_eq!(Dropout::bits_per_unit(0.1875), 4); // 3/16
        assert_eq!(Dropout::bits_per_unit(1.0 / 256.0), 8);
        assert_eq!(Dropout::bits_per_unit(1.0 / 512.0), 16);
        assert_eq!(Dropout::bits_per_unit(1.0 / 65536.0), 16);
        assert_eq!(Dropout::bits_per_unit(1.0 / 131_072.0), 32);
        assert_eq!(Dropout::bits_per_unit(0.3), 32);
        assert_eq!(Dropout::bits_per_unit(0.9), 32);
        assert_eq!(Dropout::bits_per_unit(1.0), 1);
        // The dyadic thresholds are exact: keep * 2^bits of the 2^bits equally likely fields.
        assert_eq!(keep_threshold(0.75, 2), 3);
        assert_eq!(keep_threshold(0.625, 4), 10);
        assert_eq!(keep_threshold(1.0, 1), 2); // every field (0 or 1) is below 2
        assert_eq!(keep_threshold(0.9, 32), 3_865_470_566);
    }

    #[test]
    fn masks_keep_the_right_share_and_neighbouring_units_are_independent() {
        // Over n units the kept share's standard deviation is sqrt(keep (1 - keep) / n); the
        // share of neighbouring pairs both kept is keep^2, with standard deviation at most
        // sqrt(keep^2 (1 - keep^2) / (n / 2)) over the n / 2 disjoint pairs. Five of each. A
        // field read twice, or fields overlapping, would put the pairs' share at keep, not
        // keep^2.
        let n = 200_000;
        for (keep, seed) in [
            (0.5, 1),
            (0.75, 2),
            (0.625, 3),
            (0.3, 4),
            (0.9, 5),
            (0.0625, 6),
        ] {
            let mask: Tensor<f64> = with_keep(keep, seed).mask(&Shape::from([n]), 9);
            let kept: Vec<bool> = mask.to_vec().iter().map(|&m| m > 0.0).collect();
            let share = kept.iter().filter(|&&k| k).count() as f64 / n as f64;
            let bound = 5.0 * (keep * (1.0 - keep) / n as f64).sqrt();
            assert!((share - keep).abs() < bound, "keep {keep}: share {share}");
            let pairs = n / 2;
            let both = kept.chunks(2).filter(|pair| pair[0] && pair[1]).count() as f64;
            let both = both / pairs as f64;
            let bound = 5.0 * (keep * keep * (1.0 - keep * keep) / pairs as f64).sqrt();
            assert!(
                (both - keep * keep).abs() < bound,
                "keep {keep}: both kept {both}"
            );
        }
    }

    #[test]
    fn different_steps_and_seeds_give_unrelated_masks() {
        // Agreement of two independent keep-0.5 masks over n units is 1/2 +- 5 sqrt(1 / 4n).
        let n = 4096;
        let shape = Shape::from([n]);
        let agreement = |a: &Tensor<f64>, b: &Tensor<f64>| {
            let same = a
                .to_vec()
                .iter()
                .zip(b.to_vec())
                .filter(|(x, y)| **x == *y)
                .count();
            same as f64 / n as f64
        };
        let bound = 5.0 * (0.25 / n as f64).sqrt();
        let layer = with_keep(0.5, 77);
        for (a, b) in [
            (layer.mask(&shape, 0), layer.mask(&shape, 1)),
            (layer.mask(&shape, 1), layer.mask(&shape, 2)),
            (layer.mask(&shape, 3), with_keep(0.5, 78).mask(&shape, 3)),
        ] {
            assert!((agreement(&a, &b) - 0.5).abs() < bound);
        }
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
