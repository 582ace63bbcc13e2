//! Chapter section 4, weight initialization: a 10-layer tanh network and a 10-layer ReLU
//! network, each started four ways — weights too small (N(0, 0.01²)), too large (N(0, 1)),
//! Xavier and He. At the first step we look at every hidden layer's activations (mean and
//! standard deviation) and at the gradient of every layer's weights; then we train each one.
//!
//! Why the scale matters: with `n` inputs per unit and weights of standard deviation `s`, a
//! layer multiplies the standard deviation of its input by about `sqrt(n) * s` (`sqrt(n / 2) * s`
//! after a ReLU, which zeroes half its inputs). Over ten layers any factor other than about 1
//! is raised to the ninth power: the signal vanishes or explodes. Xavier (`s² = 2 / (n_in +
//! n_out)`, so `sqrt(n) * s = 1` for equal widths) and He (`s² = 2 / n`, so `sqrt(n / 2) * s =
//! 1`) choose the one scale that keeps it steady.
//!
//! The backward pass multiplies the same factors the other way: the chapter's product of local
//! Jacobians `W[l]ᵀ · diag(f'(z[l-1]))`, one per layer. Each case measures, at the first step,
//! `||dL/dz[l-1]|| / ||dL/dz[l]||` for every hidden layer (`z[l]` is the output of the dense
//! layer `hidden{l}`) next to its prediction `sqrt(n · s² · E[f'(z[l-1])²])`: `sqrt(n / 2) · s`
//! for ReLU, `sqrt(n) · s · sqrt(mean (1 - a²)²)` for tanh from the layer's own activations.
//!
//! Symmetry: a network whose weights all start at the same value (biases 0) computes the same
//! function in every unit of a layer, receives the same gradient for every unit, and so keeps
//! its units identical through any amount of training: it is a network of one unit per layer,
//! however wide. [`Symmetry`] trains one next to the same shape under Xavier.
//!
//! For plots, each [`Case`] keeps a sample of every hidden layer's activations
//! ([`Case::activation_samples`]) and the predicted standard deviation of every layer
//! ([`Case::predicted_std`]): histograms of layers 1, 4, 7 and 10 show the spread narrowing
//! towards a spike at 0 (too small), piling up at ±1 (tanh, too large), or keeping its width
//! (Xavier, He); the predicted line drawn over the measured per-layer std shows that the
//! mechanism above accounts for it.

use std::fmt;
use std::path::PathBuf;

use autograd::{Tape, Var};
use nn::{Activation, Context, Init, LayerStatistics, Mode};
use tensor::Tensor;

use crate::claims::{Claim, Unit, write_claims};
use crate::data::{Split, digits_split};
use crate::model::{Mlp, MlpSpec, squared_norm};
use crate::plot::{Chart, Legend, Series, write_svg, write_svg_grid};
use crate::report::{Table, number, percent, scientific};
use crate::train::{History, Objective, Progress, TrainSpec, train};
use crate::{Config, Result, Size};

/// The sizes of the run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Training samples (the other digits are the test set).
    pub train_count: usize,
    /// Units per hidden layer.
    pub width: usize,
    /// Hidden layers.
    pub depth: usize,
    /// Samples in the first mini-batch, on which the first-step statistics are measured.
    pub batch_size: usize,
    /// Training epochs after the first step.
    pub epochs: usize,
    /// Seeds the split, the weights and the batch order.
    pub seed: u64,
    /// Hidden layers of the symmetric network (and of its Xavier control).
    pub symmetric_depth: usize,
    /// Units per hidden layer of the symmetric network (and of its Xavier control).
    pub symmetric_width: usize,
    /// Training epochs of the symmetric network and its control: small networks, so they get
    /// long enough to converge at both sizes, and what they reach shows their capacity.
    pub symmetric_epochs: usize,
}

impl Settings {
    /// The settings for the configuration's size, seeded by its seed (or this example's
    /// default seed).
    pub fn for_config(config: &Config) -> Self {
        let mut settings = Settings::for_size(config.size);
        settings.seed = config.seed_or(settings.seed);
        settings
    }

    /// The settings for a run size, at this example's default seed.
    pub fn for_size(size: Size) -> Self {
        match size {
            Size::Full => Settings {
                train_count: 1000,
                width: 128,
                depth: 10,
                batch_size: 100,
                epochs: 30,
                seed: 3,
                symmetric_depth: 3,
                symmetric_width: 32,
                symmetric_epochs: 30,
            },
            Size::Quick => Settings {
                train_count: 500,
                width: 128,
                depth: 10,
                batch_size: 100,
                epochs: 5,
                seed: 3,
                symmetric_depth: 3,
                symmetric_width: 32,
                symmetric_epochs: 30,
            },
        }
    }

    fn training(&self) -> TrainSpec {
        self.training_for(self.epochs)
    }

    /// The training of every network here (same step size, momentum and batch order), for
    /// `epochs` epochs.
    fn training_for(&self, epochs: usize) -> TrainSpec {
        TrainSpec {
            epochs,
            batch_size: self.batch_size,
            learning_rate: 0.01,
            momentum: 0.9,
            l2: 0.0,
            objective: Objective::Classes,
            seed: self.seed,
        }
    }
}

/// How the weights are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// N(0, 0.01²) whatever the layer's size.
    TooSmall,
    /// N(0, 1) whatever the layer's size.
    TooLarge,
    /// Xavier (Glorot) normal: variance 2 / (fan_in + fan_out), for tanh.
    Xavier,
    /// He (Kaiming) normal: variance 2 / fan_in, for ReLU.
    He,
}

impl Scheme {
    /// All four, in the order they are shown.
    pub const ALL: [Scheme; 4] = [
        Scheme::TooSmall,
        Scheme::TooLarge,
        Scheme::Xavier,
        Scheme::He,
    ];

    /// The library's initializer.
    pub fn init(self) -> Init {
        match self {
            Scheme::TooSmall => Init::Normal { std: 0.01 },
            Scheme::TooLarge => Init::Normal { std: 1.0 },
            Scheme::Xavier => Init::XavierNormal,
            Scheme::He => Init::HeNormal,
        }
    }

    /// The standard deviation of one weight of a layer with `fan_in` inputs and `fan_out`
    /// units under this scheme: the `s` of the per-layer gains.
    pub fn weight_std(self, fan_in: usize, fan_out: usize) -> f64 {
        self.init().variance(fan_in, fan_out).sqrt()
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::TooSmall => "N(0, 0.01²)",
            Scheme::TooLarge => "N(0, 1)",
            Scheme::Xavier => "Xavier",
            Scheme::He => "He",
        })
    }
}

/// One hidden layer at the first step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerStats {
    /// 1-based hidden layer number.
    pub layer: usize,
    /// Mean of the layer's activations over the batch and its units.
    pub mean: f64,
    /// Standard deviation of the activations over the batch and its units.
    pub std: f64,
    /// Fraction of activations with |a| > 0.99. For tanh these are saturated units, whose
    /// derivative 1 - a² is below 0.02, so almost no gradient passes them.
    pub saturated: f64,
    /// Frobenius norm of the loss's gradient with respect to the layer's weights (the weight
    /// matrix alone, not its bias): the chapter's ||dL/dW\[l\]||.
    pub gradient_norm: f64,
    /// Frobenius norm, over the batch and the units, of the loss's gradient with respect to
    /// the layer's pre-activation z\[l\] (the output of the dense layer `hidden{l}`).
    pub pre_activation_gradient_norm: f64,
    /// Mean over the batch and the units of f'(z\[l\])²: (1 - a²)² for tanh, the fraction of
    /// active units (f' = 1) for ReLU. It is what the backward step into this layer keeps.
    pub mean_squared_derivative: f64,
    /// ||dL/dz\[l-1\]|| / ||dL/dz\[l\]||: the factor by which the backward step through this
    /// layer, W\[l\]ᵀ then diag(f'(z\[l-1\])), multiplies the gradient. `None` for layer 1,
    /// below which there is no hidden layer.
    pub backward_gain: Option<f64>,
    /// The prediction of `backward_gain`: [`predicted_backward_gain`] for this layer's weight
    /// scale, with the measured f' of layer l-1 for tanh and the mechanism's 1/2 for ReLU.
    pub predicted_backward_gain: Option<f64>,
}

/// One network under one initialization.
#[derive(Clone, Debug)]
pub struct Case {
    /// tanh or ReLU.
    pub activation: Activation,
    /// How the weights were drawn.
    pub scheme: Scheme,
    /// Every hidden layer at the first step.
    pub layers: Vec<LayerStats>,
    /// The library's per-layer statistics of the first step (every layer, as a printable table).
    pub first_step: LayerStatistics,
    /// The training that followed.
    pub history: History,
    /// A sample of each hidden layer's activations a\[l\] at the first step (`[l - 1]` holds
    /// layer l): every k-th of the batch's values in row-major order, k chosen so that at most
    /// [`HISTOGRAM_SAMPLES`] remain; for histograms of the per-layer distribution.
    pub activation_samples: Vec<Vec<f64>>,
    /// The predicted standard deviation of each hidden layer's activations (`[l - 1]` holds
    /// layer l), from layer 1's measured statistics: layer 1's std times the forward gain
    /// ([`predicted_layer_gain`]) to the power l - 1 for ReLU; for tanh the same recurrence
    /// with tanh's compression, E\[a²\] -> E\[tanh(sqrt(n s² E\[a²\]) Z)²\] for Z ~ N(0, 1),
    /// which is that power while tanh is linear (tiny weights) and levels off where it
    /// saturates. To overlay on the measured [`LayerStats::std`].
    pub predicted_std: Vec<f64>,
}

/// At most this many activation values are kept per hidden layer and case, for histograms.
pub const HISTOGRAM_SAMPLES: usize = 2000;

impl Case {
    /// "tanh, Xavier" and the like.
    pub fn label(&self) -> String {
        format!("{}, {}", activation_name(self.activation), self.scheme)
    }

    /// Activation standard deviation of the last hidden layer divided by that of the first.
    pub fn std_ratio(&self) -> f64 {
        let (first, last) = (self.layers[0], self.layers[self.layers.len() - 1]);
        last.std / first.std
    }

    /// Weight-gradient norm of the first hidden layer divided by that of the last.
    pub fn gradient_ratio(&self) -> f64 {
        let (first, last) = (self.layers[0], self.layers[self.layers.len() - 1]);
        first.gradient_norm / last.gradient_norm
    }

    /// The product of the backward gains of layers 2 to the last: ||dL/dz\[1\]|| divided by
    /// ||dL/dz\[last\]||, what the whole backward pass through the hidden layers multiplies.
    pub fn backward_product(&self) -> f64 {
        self.layers.iter().filter_map(|s| s.backward_gain).product()
    }

    /// The product of the predicted backward gains.
    pub fn predicted_backward_product(&self) -> f64 {
        self.layers
            .iter()
            .filter_map(|s| s.predicted_backward_gain)
            .product()
    }

    /// The median over layers 2 to the last of measured / predicted backward gain.
    pub fn median_gain_ratio(&self) -> f64 {
        let mut ratios: Vec<f64> = self
            .layers
            .iter()
            .filter_map(|s| Some(s.backward_gain? / s.predicted_backward_gain?))
            .collect();
        ratios.sort_by(f64::total_cmp);
        match ratios.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => ratios[n / 2],
            n => (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0,
        }
    }

    /// The largest distance, in decades, between a layer's measured activation std and
    /// [`Case::predicted_std`].
    pub fn std_line_error(&self) -> f64 {
        self.layers
            .iter()
            .zip(&self.predicted_std)
            .map(|(s, p)| (s.std / p).log10().abs())
            .fold(0.0, f64::max)
    }
}

/// A tanh network whose weights all start at one value, and the same shape under Xavier.
#[derive(Clone, Debug)]
pub struct Symmetry {
    /// Hidden layers.
    pub depth: usize,
    /// Units per hidden layer.
    pub width: usize,
    /// The value every weight starts at (biases start at 0).
    pub value: f64,
    /// After training: the largest |W\[l\]\[i, j\] - W\[l\]\[i, 0\]| and |b\[l\]\[j\] - b\[l\]\[0\]| over
    /// the hidden layers l, their units j and inputs i: how far any unit's incoming weights
    /// and bias moved from unit 0's.
    pub max_unit_difference: f64,
    /// After training: the largest |w| over the hidden layers' weights, the scale the
    /// difference is measured against.
    pub weight_scale: f64,
    /// The symmetric network's training.
    pub history: History,
    /// The same shape started with Xavier normal weights, trained the same way.
    pub control: History,
    /// [`Symmetry::max_unit_difference`] of the Xavier control after training, for contrast:
    /// units that started different.
    pub control_unit_difference: f64,
    /// [`Symmetry::weight_scale`] of the Xavier control after training.
    pub control_weight_scale: f64,
}

impl Symmetry {
    /// [`Symmetry::max_unit_difference`] relative to [`Symmetry::weight_scale`].
    pub fn relative_difference(&self) -> f64 {
        self.max_unit_difference / self.weight_scale
    }

    /// The symmetric network's test accuracy after training.
    pub fn accuracy(&self) -> f64 {
        final_accuracy(&self.history)
    }

    /// The Xavier control's test accuracy after training.
    pub fn control_accuracy(&self) -> f64 {
        final_accuracy(&self.control)
    }
}

/// The test accuracy of the last epoch, 0 if the run diverged (it classifies nothing).
fn final_accuracy(history: &History) -> f64 {
    match (history.diverged_at, history.last()) {
        (None, Some(last)) => last.test.accuracy,
        _ => 0.0,
    }
}

/// The name the library gives the activation layer (how observed layers are recognised).
fn activation_name(activation: Activation) -> &'static str {
    match activation {
        Activation::Tanh => "tanh",
        Activation::Relu => "relu",
        _ => "other",
    }
}

/// What happened.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The sizes used.
    pub settings: Settings,
    /// tanh under the four schemes, then ReLU under the four.
    pub cases: Vec<Case>,
    /// The network started with every weight equal.
    pub symmetry: Symmetry,
    /// The plot files written.
    pub plots: Vec<PathBuf>,
}

/// The factor by which a hidden layer multiplies the standard deviation of its input's
/// activations at initialization, for weights N(0, std²) and `fan_in` inputs per unit:
/// `sqrt(fan_in) * std` for tanh in its linear region (tiny weights), `sqrt(fan_in / 2) * std`
/// for ReLU (it zeroes half of its zero-mean inputs).
pub fn predicted_layer_gain(activation: Activation, fan_in: usize, std: f64) -> f64 {
    let fan_in = fan_in as f64;
    match activation {
        Activation::Relu => (fan_in / 2.0).sqrt() * std,
        _ => fan_in.sqrt() * std,
    }
}

/// The factor by which one backward step through a hidden layer multiplies ||dL/dz||, for
/// weights N(0, std²) with `fan_in` inputs per unit: `sqrt(fan_in · std² · d)`, where `d` is the
/// mean of f'(z\[l-1\])² over the layer below. W\[l\]ᵀ maps each sample's gradient g to g W\[l\]ᵀ,
/// whose `fan_in` entries each have variance std² ||g||², so it multiplies the squared norm by
/// `fan_in · std²` in expectation; diag(f'(z\[l-1\])) then multiplies it by `d` (independent
/// of g at initialization): 1/2 for ReLU, which passes half its inputs, and
/// mean (1 - a²)² for tanh.
pub fn predicted_backward_gain(fan_in: usize, std: f64, mean_squared_derivative: f64) -> f64 {
    (fan_in as f64 * std * std * mean_squared_derivative).sqrt()
}

/// The predicted std of every hidden layer of `depth`, from layer 1's measured `first`
/// statistics (see [`Case::predicted_std`]); `fan_in` and `std` are those of layers 2 on.
pub fn predicted_std_line(
    activation: Activation,
    fan_in: usize,
    std: f64,
    first: &LayerStats,
    depth: usize,
) -> Vec<f64> {
    match activation {
        // A ReLU layer's output is relu of a zero-mean Gaussian whose variance is proportional
        // to the second moment of its input, so mean, std and second moment all scale by the
        // same factor per layer: the gain, exactly.
        Activation::Relu => {
            let gain = predicted_layer_gain(activation, fan_in, std);
            (0..depth)
                .map(|l| first.std * gain.powi(l as i32))
                .collect()
        }
        // tanh keeps the mean near 0, so its std is the root of its second moment q; the next
        // z has variance fan_in · std² · q, and the next q is E[tanh(z)²].
        _ => {
            let gain_squared = fan_in as f64 * std * std;
            let mut q = first.std * first.std + first.mean * first.mean;
            let mut line = vec![first.std];
            for _ in 1..depth {
                let z_std = (gain_squared * q).sqrt();
                q = gaussian_expectation(|z| (z_std * z).tanh().powi(2));
                line.push(q.sqrt());
            }
            line
        }
    }
}

/// E[f(Z)] for Z ~ N(0, 1), by the midpoint rule on [-10, 10] (error far below 1e-9 for the
/// bounded functions used here).
pub fn gaussian_expectation(f: impl Fn(f64) -> f64) -> f64 {
    let steps = 20_000;
    let h = 20.0 / steps as f64;
    (0..steps)
        .map(|i| {
            let z = -10.0 + (i as f64 + 0.5) * h;
            f(z) * (-z * z / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt() * h
        })
        .sum()
}

/// The factor between `x` and 1, whichever side: `max(x, 1 / x)`.
fn factor_from_one(x: f64) -> f64 {
    x.max(1.0 / x)
}

impl Summary {
    /// What this example claims, checked on this run.
    pub fn claims(&self) -> Vec<Claim> {
        let width = self.settings.width;
        let transitions = (self.settings.depth - 1) as i32;
        let mut claims = Vec::new();
        // Too small (both) and too large (ReLU): the ratio last/first is the per-layer gain
        // raised to the number of layer-to-layer transitions; each layer's factor varies by a
        // few % with the random weights, so nine of them stay well inside a decade of it.
        // Measured, decades from the prediction (20 quick seeds / 5 full seeds): tanh 0.00 to
        // 0.06 / 0.00 to 0.05; ReLU small and large 0.01 to 0.21 / 0.01 to 0.13 (the same two
        // numbers: ReLU is positively homogeneous and both schemes scale the same standard
        // normal draws, so the two networks are one network up to a factor 100 per layer).
        for (id, activation, scheme, std) in [
            ("tanh_small", Activation::Tanh, Scheme::TooSmall, 0.01),
            ("relu_small", Activation::Relu, Scheme::TooSmall, 0.01),
            ("relu_large", Activation::Relu, Scheme::TooLarge, 1.0),
        ] {
            let case = self.case(activation, scheme);
            let predicted = predicted_layer_gain(activation, width, std).powi(transitions);
            let verb = if predicted < 1.0 { "vanish" } else { "explode" };
            claims.push(Claim::below(
                id,
                format!(
                    "{}: activations {verb} as (per-layer gain)^{transitions} predicts ({})",
                    case.label(),
                    crate::report::scientific(predicted)
                ),
                "std ratio last/first, decades from the prediction",
                (case.std_ratio().log10() - predicted.log10()).abs(),
                1.0,
                Unit::Decimals(2),
            ));
        }
        // tanh with std 1 cannot explode (tanh is bounded): it saturates. z has std about
        // sqrt(width) ~ 11, so |a| > 0.99 for about 81% of the units; and the backward pass
        // gains sqrt(width * E[sech^4(z)]) ~ 2.5 per layer: the gradient explodes towards the
        // input. Measured: saturated 80.0% to 81.4% (20 quick seeds), 80.5% to 81.3% (5 full);
        // gradient ratio 2.2e3 to 3.6e3 / 2.2e3 to 3.5e3, over a decade above its bound.
        let tanh_large = self.case(Activation::Tanh, Scheme::TooLarge);
        claims.push(Claim::above(
            "tanh_large_saturates",
            format!(
                "{}: most units of the last layer are saturated (|a| > 0.99)",
                tanh_large.label()
            ),
            "saturated",
            tanh_large.layers[tanh_large.layers.len() - 1].saturated,
            0.5,
            Unit::Percent,
        ));
        claims.push(Claim::above(
            "tanh_large_gradient",
            format!(
                "{}: the weight gradient grows towards the input",
                tanh_large.label()
            ),
            "||dL/dW|| first/last",
            tanh_large.gradient_ratio(),
            1e2,
            Unit::Scientific,
        ));
        // He with ReLU: sqrt(fan_in / 2) * sqrt(2 / fan_in) = 1, a steady std; a factor of 2
        // allows for the random weights of nine layers (each layer's gain spreads by about 6.7%,
        // see `std_line` below, 0.09 decades over nine: a factor 2 is 3.5 of those). Measured
        // 1.03x to 1.62x (20 quick seeds), 1.03x to 1.34x (5 full).
        claims.push(Claim::below(
            "relu_he_steady",
            "relu, He: the activation std stays steady across the layers",
            "std ratio last/first, factor from 1",
            factor_from_one(self.case(Activation::Relu, Scheme::He).std_ratio()),
            2.0,
            Unit::Ratio,
        ));
        // Xavier with tanh: gain 1, but tanh compresses the variance a little at each layer:
        // q' = E[tanh(sqrt(q) Z)^2], which decays like 1 / (2 l). From the measured first
        // layer that recurrence (the case's predicted std line) predicts the last layer's
        // ratio. Measured off by 0.1% to 8.5% (20 quick seeds), 0.1% to 8.2% (5 full).
        let xavier = self.case(Activation::Tanh, Scheme::Xavier);
        let predicted = xavier.predicted_std[xavier.predicted_std.len() - 1] / xavier.layers[0].std;
        claims.push(Claim::below(
            "tanh_xavier_compression",
            "tanh, Xavier: the std shrinks only as tanh's compression of the variance predicts",
            "std ratio / predicted, off by",
            (xavier.std_ratio() / predicted - 1.0).abs(),
            0.25,
            Unit::Percent,
        ));
        self.std_line_claims(&mut claims);
        self.backward_claims(&mut claims);
        self.symmetry_claims(&mut claims);
        claims
    }

    /// The predicted std line against the measured one, in all eight networks.
    fn std_line_claims(&self, claims: &mut Vec<Claim>) {
        // The predicted line is deterministic given layer 1; the measured one multiplies a
        // random factor per layer. A ReLU layer's activations share one large direction (their
        // positive mean), along which z = a W has, per unit, one Gaussian: the layer's squared
        // gain is an average of n = 128 chi-squared(1) values, spread sqrt(2 / n) = 12.5%, so
        // about 6% in the gain (measured over 6 quick seeds: 6.7%, 0.029 decades; tanh's
        // 0.7% to 5%) and 0.09 decades after nine layers. The worst of 80 (network, layer)
        // pairs is then about 2.5 of those, 0.2 decades; the bound of 0.5 decades (a factor
        // 3) is between 5 and 6 of them. Measured worst: 0.03 to 0.21 decades (20 quick
        // seeds), 0.05 to 0.13 (5 full).
        let worst = self
            .cases
            .iter()
            .map(Case::std_line_error)
            .fold(0.0, f64::max);
        claims.push(Claim::below(
            "std_line",
            "every network: each layer's activation std is what the forward gain (with tanh's compression) predicts from layer 1",
            "worst layer, decades from the predicted line",
            worst,
            0.5,
            Unit::Decimals(2),
        ));
    }

    /// The backward product W[l]ᵀ · diag(f'(z[l-1])), layer by layer.
    fn backward_claims(&self, claims: &mut Vec<Claim>) {
        for (id, activation, statement) in [
            (
                "relu_backward_gain",
                Activation::Relu,
                "relu: each backward step multiplies ||dL/dz|| by sqrt(n / 2) · s, weights of std s (W[l]ᵀ gives sqrt(n) · s, relu' keeps half)",
            ),
            (
                "tanh_backward_gain",
                Activation::Tanh,
                "tanh: each backward step multiplies ||dL/dz|| by sqrt(n) · s · sqrt(mean (1 - a²)²), weights of std s, a the layer below",
            ),
        ] {
            // Each layer's measured gain is ||G W[l]ᵀ|| / ||G|| (then the mask) for the batch's
            // gradients G: the norm of a random matrix along the few directions G spans
            // (dL/dz[last] comes from the 10 logits), whose square spreads by sqrt(2 / (n r))
            // for r effective directions, so the gain by 1 / sqrt(2 n r): 3% for r ~ 4.
            // Measured spread of one layer's measured/predicted over 6 quick seeds: 3.1% to
            // 3.4% (ReLU), 2.0% to 5.0% (tanh, by scheme). The median of nine layers spreads
            // by about 1.25 · 3% / 3 ~ 1.3%, the worst of four schemes about twice that. The
            // bound, 10%, is about 7 of those spreads, while a wrong mechanism (forgetting
            // ReLU's half, or tanh's derivative) is off by 30% (ReLU) to 60% (tanh, N(0, 1)).
            // Measured worst: ReLU 0.2% to 3.9% (20 quick seeds), 0.6% to 3.8% (5 full); tanh
            // 0.6% to 3.8% (20 quick), 1.6% to 3.2% (5 full).
            let worst = Scheme::ALL
                .iter()
                .map(|&scheme| (self.case(activation, scheme).median_gain_ratio() - 1.0).abs())
                .fold(0.0, f64::max);
            claims.push(Claim::below(
                id,
                statement,
                "worst of the 4 inits, median layer's measured/predicted off by",
                worst,
                0.1,
                Unit::Percent,
            ));
        }
        // Over the nine backward steps the per-layer spreads (about 3%, 0.013 decades) would
        // add up to 0.04 decades if independent; the largest measured, 0.16, says they are
        // not quite (consecutive layers see the same gradient's directions). A prediction
        // eight to ten decades from 1 is checked to half a decade (a factor 3.2), three times
        // the largest measured. Measured, decades from the prediction (20 quick seeds / 5
        // full): tanh small 0.00 to 0.09 / 0.00 to 0.07; ReLU small 0.00 to 0.12 / 0.01 to
        // 0.09; ReLU large 0.00 to 0.16 / 0.00 to 0.14.
        for (id, activation, scheme) in [
            ("tanh_small_backward", Activation::Tanh, Scheme::TooSmall),
            ("relu_small_backward", Activation::Relu, Scheme::TooSmall),
            ("relu_large_backward", Activation::Relu, Scheme::TooLarge),
        ] {
            let case = self.case(activation, scheme);
            let predicted = case.predicted_backward_product();
            let verb = if predicted < 1.0 {
                "vanishes"
            } else {
                "explodes"
            };
            claims.push(Claim::below(
                id,
                format!(
                    "{}: the gradient {verb} from the last hidden layer to the first as the product of the gains predicts ({})",
                    case.label(),
                    scientific(predicted)
                ),
                "||dL/dz[1]|| / ||dL/dz[last]||, decades from the prediction",
                (case.backward_product().log10() - predicted.log10()).abs(),
                0.5,
                Unit::Decimals(2),
            ));
        }
        // He: predicted 1 exactly, so only the nine per-layer spreads remain: up to 0.16
        // decades (1.45x) measured, as for the products above; a factor 2 (0.3 decades) is
        // about twice that. Measured 1.01x to 1.45x (20 quick seeds), 1.01x to 1.37x (5 full).
        // ReLU under Xavier, for contrast, loses sqrt(2) per layer: 0.044 over nine.
        claims.push(Claim::below(
            "relu_he_backward",
            "relu, He: the gradient keeps its size from the last hidden layer to the first (gain sqrt(n / 2) · sqrt(2 / n) = 1)",
            "||dL/dz[1]|| / ||dL/dz[last]||, factor from 1",
            factor_from_one(self.case(Activation::Relu, Scheme::He).backward_product()),
            2.0,
            Unit::Ratio,
        ));
    }

    /// The network started with every weight equal.
    fn symmetry_claims(&self, claims: &mut Vec<Claim>) {
        let symmetry = &self.symmetry;
        // Every weight equal: all units of a layer compute the same z from the same inputs,
        // so they get the same dL/dz, hence the same update to their incoming weights (the
        // columns of W) and bias; with the next layer's weights equal too, they send back the
        // same gradient, and the argument repeats at every step. In floating point it holds
        // exactly if every unit's number is computed by the same operations in the same
        // order: matrixmultiply packs B into panels of NR columns (zero-padded at the edge)
        // and runs one kernel, summing over k in one order for every output element, also
        // for the edge tiles (through a masked copy); the bias gradient sums the batch column
        // by column the same way. So the difference is 0.0 exactly, and a bitwise difference
        // would be a rounding event of ~1 ulp (1.2e-7 relative in f32), growing only slowly.
        // The bound, 1e-6 of the weight scale (about 8 ulps), would allow such rounding yet
        // catch any real breaking of the symmetry, which is of order 1 relative. Measured
        // 0.0 exactly at all 20 quick seeds and all 5 full seeds.
        claims.push(Claim::below(
            "symmetric_units_identical",
            "every weight equal at the start: the units of a hidden layer get identical gradients and stay identical",
            "max |w_j - w_0| / max |w| after training",
            symmetry.relative_difference(),
            1e-6,
            Unit::Scientific,
        ));
        // One distinct unit per layer: the network maps each image to a single number
        // (64 -> 1 -> 1 -> 1, then 10 logits linear in it), and ten digit classes along one
        // line overlap heavily; it also learns slowly (its loss is still falling at the end:
        // one gradient direction per layer; its largest weight grows from 1/32 to only about
        // 0.1, measured 0.07 to 0.13 over the seeds). The same
        // shape with Xavier (32 distinct units) fits the digits (> 90%). Measured test
        // accuracy: constant 18.4% to 22.4% (20 quick seeds), 20.5% to 28.6% (5 full);
        // Xavier 91.1% to 93.8% / 94.1% to 95.9%; the gap 68.8% to 73.9% (quick), 65.6% to
        // 75.2% (full). The bound, 30 points, is less than half the smallest gap: it states
        // "far below", not the exact capacity of a one-unit network.
        claims.push(Claim::above(
            "symmetric_accuracy",
            "every weight equal: the network has in effect one unit per layer and classifies far worse than the same shape under Xavier",
            "test accuracy, Xavier minus constant",
            symmetry.control_accuracy() - symmetry.accuracy(),
            0.3,
            Unit::Percent,
        ));
    }

    /// The case of `activation` under `scheme`.
    pub fn case(&self, activation: Activation, scheme: Scheme) -> &Case {
        self.cases
            .iter()
            .find(|c| c.activation == activation && c.scheme == scheme)
            .expect("every activation and scheme is run")
    }
}

/// Measures the first step of all eight networks, trains them, trains the symmetric network
/// and its control, and plots.
pub fn run(config: &Config) -> Result<Summary> {
    let settings = Settings::for_config(config);
    let split = digits_split(&config.data_dir, settings.train_count, settings.seed)?;
    let mut cases = Vec::new();
    for activation in [Activation::Tanh, Activation::Relu] {
        for scheme in Scheme::ALL {
            cases.push(run_case(config, &settings, &split, activation, scheme)?);
        }
    }
    let symmetry = run_symmetry(config, &settings, &split)?;
    let mut summary = Summary {
        settings,
        cases,
        symmetry,
        plots: Vec::new(),
    };
    summary.plots = plot(config, &summary)?;
    Ok(summary)
}

fn run_case(
    config: &Config,
    settings: &Settings,
    split: &Split,
    activation: Activation,
    scheme: Scheme,
) -> Result<Case> {
    let spec = MlpSpec::uniform(
        64,
        settings.width,
        settings.depth,
        10,
        activation,
        scheme.init(),
    );
    let mut model = spec.build(settings.seed)?;
    // The split is already shuffled: its first samples are a random batch.
    let first_batch = split
        .train
        .select(&(0..settings.batch_size).collect::<Vec<_>>());
    let first = first_step_statistics(&mut model, &first_batch, activation)?;
    // Layers 2 on are width x width: their fan-in and weight scale set every gain.
    let (fan_in, std) = (
        settings.width,
        scheme.weight_std(settings.width, settings.width),
    );
    let mut layers = first.layers;
    for l in 1..layers.len() {
        // The backward step through layer l + 1 ends in diag(f'(z[l])) of the layer below.
        let derivative = match activation {
            Activation::Relu => 0.5,
            _ => layers[l - 1].mean_squared_derivative,
        };
        layers[l].predicted_backward_gain = Some(predicted_backward_gain(fan_in, std, derivative));
    }
    let predicted_std = predicted_std_line(activation, fan_in, std, &layers[0], layers.len());
    let label = format!("{}, {scheme}", activation_name(activation));
    let progress = Progress::new(label, config.progress, settings.epochs, 1);
    let history = train(&mut model, split, &settings.training(), &progress)?;
    Ok(Case {
        activation,
        scheme,
        layers,
        first_step: first.statistics,
        history,
        activation_samples: first.samples,
        predicted_std,
    })
}

/// Trains a tanh network whose weights all start at 1 / width (biases 0), then measures how
/// far its units drifted apart; and trains the same shape under Xavier as the control.
fn run_symmetry(config: &Config, settings: &Settings, split: &Split) -> Result<Symmetry> {
    let (depth, width) = (settings.symmetric_depth, settings.symmetric_width);
    // A layer whose weights are all c sums its n identical inputs: z = n · c · a. c = 1 / n
    // keeps the hidden signal at its scale (neither vanishing nor saturating), so what fails
    // here is the symmetry alone, not the scale.
    let value = 1.0 / width as f64;
    let spec = |init| MlpSpec::uniform(64, width, depth, 10, Activation::Tanh, init);
    let training = settings.training_for(settings.symmetric_epochs);
    let mut model = spec(Init::Constant(value)).build(settings.seed)?;
    let progress = Progress::new("tanh, constant", config.progress, training.epochs, 1);
    let history = train(&mut model, split, &training, &progress)?;
    let (max_unit_difference, weight_scale) = unit_spread(&model);
    let mut control = spec(Init::XavierNormal).build(settings.seed)?;
    let progress = Progress::new(
        "tanh, Xavier (control)",
        config.progress,
        training.epochs,
        1,
    );
    let control_history = train(&mut control, split, &training, &progress)?;
    let (control_unit_difference, control_weight_scale) = unit_spread(&control);
    Ok(Symmetry {
        depth,
        width,
        value,
        max_unit_difference,
        weight_scale,
        history,
        control: control_history,
        control_unit_difference,
        control_weight_scale,
    })
}

/// Over the hidden dense layers of `model`: the largest difference between a unit's incoming
/// weights (a column of W, which is `[inputs, units]`) or bias and unit 0's, and the largest
/// |w|.
fn unit_spread(model: &Mlp) -> (f64, f64) {
    let hidden = &model.dense_layers[..model.dense_layers.len() - 1];
    let (mut difference, mut scale) = (0.0_f64, 0.0_f64);
    for dense in hidden {
        let units = dense.outputs();
        let weights = model.store.value(dense.weight()).to_vec();
        for row in weights.chunks(units) {
            for &w in row {
                difference = difference.max(f64::from(w - row[0]).abs());
                scale = scale.max(f64::from(w).abs());
            }
        }
        let bias = model.store.value(dense.bias()).to_vec();
        for &b in &bias {
            difference = difference.max(f64::from(b - bias[0]).abs());
        }
    }
    (difference, scale)
}

/// What the first-step pass measures.
struct FirstStep {
    layers: Vec<LayerStats>,
    statistics: LayerStatistics,
    samples: Vec<Vec<f64>>,
}

/// Every k-th of `values`, k the smallest step that leaves at most `count`.
fn every_kth(values: &[f64], count: usize) -> Vec<f64> {
    let step = values.len().div_ceil(count.max(1)).max(1);
    values.iter().step_by(step).copied().collect()
}

/// The Frobenius norm of a tensor, accumulated in f64.
fn frobenius(tensor: &Tensor<f32>) -> f64 {
    squared_norm(&tensor.to_vec()).sqrt()
}

/// One forward and backward pass on `batch` with the initial weights — the computation of a
/// first training step — recorded by the library's per-layer statistics: each layer's output on
/// the way forward, each layer's weight gradient on the way back. The backward pass also keeps
/// the gradient of every hidden pre-activation z[l], for the backward gains. Nothing is
/// updated. The predicted gains are left to the caller, which knows the weight scale.
fn first_step_statistics(
    model: &mut Mlp,
    batch: &nn::Dataset<f32>,
    activation: Activation,
) -> Result<FirstStep> {
    let tape = Tape::new();
    let mut context = Context::new(&tape, &mut model.store, Mode::Train);
    let x = tape.constant(batch.features().clone());
    let name = activation_name(activation);
    let mut statistics = LayerStatistics::new();
    // Per hidden layer: the fraction saturated, the mean of f'(z)^2, the activation sample.
    let mut saturated = Vec::new();
    let mut derivatives = Vec::new();
    let mut samples = Vec::new();
    let mut pre_activations: Vec<Var<'_, f32>> = Vec::new();
    let logits = model
        .network
        .try_forward_observed(&mut context, x, |layer, output| {
            let value = output.value();
            statistics.record_activation(layer.name(), &value);
            // The activation layers' outputs are the a[l] of the chapter; |a| > 0.99 is a
            // saturated tanh unit, whose derivative 1 - a^2 is below 0.02.
            if layer.name() == name {
                let values: Vec<f64> = value.to_vec().into_iter().map(f64::from).collect();
                let count = values.len() as f64;
                saturated.push(values.iter().filter(|a| a.abs() > 0.99).count() as f64 / count);
                // f'(z) from the output alone: 1 - a^2 for tanh, 1[a > 0] for ReLU.
                derivatives.push(match activation {
                    Activation::Relu => values.iter().filter(|&&a| a > 0.0).count() as f64 / count,
                    _ => values.iter().map(|a| (1.0 - a * a).powi(2)).sum::<f64>() / count,
                });
                samples.push(every_kth(&values, HISTOGRAM_SAMPLES));
            } else if layer.name().starts_with("hidden") {
                pre_activations.push(output);
            }
        })?;
    let loss = nn::try_cross_entropy(logits, batch.labels())?;
    // The ordinary backward pass frees every intermediate gradient once used; this one keeps
    // those of the z[l] (and of the leaves, as always).
    let gradients = loss.try_backward_keeping(Tensor::ones(loss.shape()), &pre_activations)?;
    let z_norms: Vec<f64> = pre_activations
        .iter()
        .map(|&z| gradients.of_node(z).map_or(0.0, frobenius))
        .collect();
    statistics.record_gradients(context.store(), &context.gradients(&gradients));
    // Hidden layer l is the dense layer `hidden{l}` followed by the activation, whose rows the
    // statistics name `tanh`, `tanh#2`, ... in order.
    let row = |layer: &str| {
        statistics
            .rows()
            .iter()
            .find(|r| r.layer == layer)
            .expect("every layer is recorded")
    };
    let layers = saturated
        .iter()
        .enumerate()
        .map(|(i, &saturated)| {
            let l = i + 1;
            let activation_row = if l == 1 {
                name.to_string()
            } else {
                format!("{name}#{l}")
            };
            let a = row(&activation_row)
                .activation
                .expect("recorded on the way forward");
            LayerStats {
                layer: l,
                mean: a.mean,
                std: a.std,
                saturated,
                gradient_norm: row(&format!("hidden{l}"))
                    .weight_gradient_norm
                    .expect("recorded on the way back"),
                pre_activation_gradient_norm: z_norms[i],
                mean_squared_derivative: derivatives[i],
                backward_gain: (i > 0).then(|| z_norms[i - 1] / z_norms[i]),
                predicted_backward_gain: None,
            }
        })
        .collect();
    Ok(FirstStep {
        layers,
        statistics,
        samples,
    })
}

fn plot(config: &Config, summary: &Summary) -> Result<Vec<PathBuf>> {
    let layers_path = config.output_file("initialization_layers.svg")?;
    let training_path = config.output_file("initialization_training.svg")?;
    let backward_path = config.output_file("initialization_backward.svg")?;
    let histograms_path = config.output_file("initialization_histograms.svg")?;
    let mut layer_charts = Vec::new();
    let mut training_charts = Vec::new();
    let mut backward_charts = Vec::new();
    let mut histogram_charts = Vec::new();
    for activation in [Activation::Tanh, Activation::Relu] {
        let name = activation_name(activation);
        let mut std = Chart::new(
            format!("{name}: activation std per layer"),
            "hidden layer",
            "std of a[l] (log scale)",
        )
        .legend(Legend::LowerLeft);
        // The prediction from layer 1 and the gain (with tanh's compression), dashed in each
        // scheme's colour; one legend entry names them all.
        for (color, scheme) in Scheme::ALL.into_iter().enumerate() {
            let case = summary.case(activation, scheme);
            let predicted = case
                .predicted_std
                .iter()
                .enumerate()
                .map(|(i, &p)| ((i + 1) as f64, p))
                .collect();
            std = std.with(Series::new("", predicted, color).dashed());
        }
        std = std.with(Series::new("predicted (dashed)", Vec::new(), 6).dashed());
        // Same colours as the activation panel beside it, which carries the legend.
        let gradients = Chart::new(
            format!("{name}: weight-gradient norm per layer (colours as left)"),
            "hidden layer",
            "||dL/dW[l]|| (log scale)",
        )
        .legend(Legend::Hidden);
        layer_charts.push(per_layer_chart(summary, activation, std, |s| s.std));
        layer_charts.push(per_layer_chart(summary, activation, gradients, |s| {
            s.gradient_norm
        }));
        training_charts.push(training_chart(summary, activation));
        backward_charts.push(backward_chart(summary, activation));
        for scheme in Scheme::ALL {
            histogram_charts.push(histogram_chart(summary.case(activation, scheme)));
        }
    }
    // Rows: tanh, ReLU; columns: activations, gradients.
    write_svg_grid(&layers_path, &layer_charts, 2)?;
    write_svg(&training_path, &training_charts)?;
    write_svg(&backward_path, &backward_charts)?;
    // Rows: tanh's four schemes, then ReLU's.
    write_svg_grid(&histograms_path, &histogram_charts, 2)?;
    Ok(vec![
        layers_path,
        training_path,
        backward_path,
        histograms_path,
    ])
}

/// The backward product W[l]ᵀ diag(f'(z[l-1])) of each layer, as the factor it multiplies
/// the gradient's norm by, measured (solid, dots) and predicted (dashed), per scheme.
fn backward_chart(summary: &Summary, activation: Activation) -> Chart {
    let mut chart = Chart::new(
        format!(
            "{}: ||dL/dz[l-1]|| / ||dL/dz[l]|| per layer",
            activation_name(activation)
        ),
        "hidden layer l",
        "backward gain (log scale)",
    )
    .log_y()
    .legend(Legend::LowerLeft);
    for (color, scheme) in Scheme::ALL.into_iter().enumerate() {
        let case = summary.case(activation, scheme);
        let measured = case
            .layers
            .iter()
            .filter_map(|s| s.backward_gain.map(|g| (s.layer as f64, g)))
            .collect();
        let predicted = case
            .layers
            .iter()
            .filter_map(|s| s.predicted_backward_gain.map(|g| (s.layer as f64, g)))
            .collect();
        chart = chart
            .with(Series::new(scheme.to_string(), measured, color).with_markers())
            .with(Series::new("", predicted, color).dashed());
    }
    chart.with(Series::new("predicted (dashed)", Vec::new(), 6).dashed())
}

/// Histograms of the activations of layers 1, 4, 7 and 10 of one network at the first step.
fn histogram_chart(case: &Case) -> Chart {
    // tanh's outputs lie in (-1, 1); ReLU's are >= 0, and beyond 3 only for weights too large.
    let range = match case.activation {
        Activation::Relu => (0.0, 3.0),
        _ => (-1.0, 1.0),
    };
    let shown = [1, 4, 7, 10];
    let mut beyond = Vec::new();
    let mut chart = Chart::new(
        format!("{}: a[l] at the first step", case.label()),
        "activation",
        "density",
    );
    for (color, &layer) in shown.iter().enumerate() {
        let Some(values) = case.activation_samples.get(layer - 1) else {
            continue;
        };
        let outside = values
            .iter()
            .filter(|v| !(range.0..=range.1).contains(*v))
            .count();
        if 1000 * outside >= values.len() {
            beyond.push(format!(
                "{:.1}% of layer {layer}",
                100.0 * outside as f64 / values.len().max(1) as f64
            ));
        }
        chart = chart.with(Series::histogram(
            format!("layer {layer}"),
            values,
            40,
            range,
            color,
        ));
    }
    if !beyond.is_empty() {
        chart.title = format!("{} (beyond the axis: {})", chart.title, beyond.join(", "));
    }
    chart
}

/// `chart` (log scale) with one line per scheme: `metric` of each hidden layer.
fn per_layer_chart(
    summary: &Summary,
    activation: Activation,
    mut chart: Chart,
    metric: fn(&LayerStats) -> f64,
) -> Chart {
    chart = chart.log_y();
    for (color, scheme) in Scheme::ALL.into_iter().enumerate() {
        let case = summary.case(activation, scheme);
        let points = case
            .layers
            .iter()
            .map(|s| (s.layer as f64, metric(s)))
            .collect();
        chart = chart.with(Series::new(scheme.to_string(), points, color).with_markers());
    }
    chart
}

/// The training loss per epoch of each scheme.
fn training_chart(summary: &Summary, activation: Activation) -> Chart {
    let mut chart = Chart::new(
        format!("{}: training loss", activation_name(activation)),
        "epoch",
        "cross-entropy (log scale)",
    )
    .log_y()
    .legend(Legend::LowerLeft)
    .with_legend_room();
    for (color, scheme) in Scheme::ALL.into_iter().enumerate() {
        let history = &summary.case(activation, scheme).history;
        // A diverged run has only its initial loss: named in the legend but not drawn, so
        // that its huge value does not squash the other curves.
        let (label, points) = match history.diverged_at {
            Some(epoch) => {
                let initial = history.epochs[0].train.loss;
                let label =
                    format!("{scheme} (initial loss {initial:.0e}, diverged in epoch {epoch})");
                (label, Vec::new())
            }
            None => (scheme.to_string(), history.points(|r| r.train.loss)),
        };
        chart = chart.with(Series::new(label, points, color));
    }
    chart
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        writeln!(
            f,
            "Initialization: {} hidden layers of {} units, first step on {} digits, then {} epochs of SGD",
            s.depth, s.width, s.batch_size, s.epochs
        )?;
        for activation in [Activation::Tanh, Activation::Relu] {
            self.layer_table(f, activation)?;
        }
        for activation in [Activation::Tanh, Activation::Relu] {
            self.gain_table(f, activation)?;
        }
        // The library's own per-layer table (nn::LayerStatistics) for the two tanh networks that
        // differ most: the signal dying out, and the signal kept. Its "grad norm" groups all of
        // a layer's parameters, so it is not the weights-only ||dL/dW[l]|| of the tables above.
        writeln!(
            f,
            "In nn::LayerStatistics, \"grad norm\" is ||(dL/dW[l], dL/db[l])||, weights and bias together;"
        )?;
        writeln!(
            f,
            "the ||dL/dW[l]|| tables above are the weights alone (for hidden layer l, row hidden{{l}})."
        )?;
        for scheme in [Scheme::TooSmall, Scheme::Xavier] {
            let case = self.case(Activation::Tanh, scheme);
            writeln!(
                f,
                "First step of {}, per layer (nn::LayerStatistics):",
                case.label()
            )?;
            writeln!(f, "{}", case.first_step)?;
        }
        let mut table = Table::new(&[
            "network, init",
            "std last/first",
            "||dL/dW|| first/last",
            "saturated (last)",
            "train loss",
            "test acc",
        ]);
        for case in &self.cases {
            let last = case.history.last();
            let (loss, accuracy) = match case.history.diverged_at {
                Some(epoch) => (format!("diverged (epoch {epoch})"), "-".to_string()),
                None => (
                    number(last.map(|r| r.train.loss), 4),
                    last.map_or("-".to_string(), |r| percent(r.test.accuracy)),
                ),
            };
            table.row(vec![
                case.label(),
                scientific(case.std_ratio()),
                scientific(case.gradient_ratio()),
                // |a| > 0.99 means saturation only for a bounded activation.
                match case.activation {
                    Activation::Tanh => percent(case.layers[case.layers.len() - 1].saturated),
                    _ => "-".to_string(),
                },
                loss,
                accuracy,
            ]);
        }
        write!(f, "{table}")?;
        self.symmetry_table(f)?;
        write_claims(f, &self.claims())
    }
}

impl Summary {
    /// Per-layer mean ± std of the activations, then weight-gradient norms, one column per
    /// scheme.
    fn layer_table(&self, f: &mut fmt::Formatter<'_>, activation: Activation) -> fmt::Result {
        let name = activation_name(activation);
        let layer = |i: usize, scheme: Scheme| self.case(activation, scheme).layers[i];
        let mut header = vec![format!("{name}: a[l] mean ± std")];
        header.extend(Scheme::ALL.iter().map(ToString::to_string));
        let mut activations = Table::new(&header);
        header[0] = format!("{name}: ||dL/dW[l]|| (weights only)");
        let mut gradients = Table::new(&header);
        for i in 0..self.settings.depth {
            let mut a_row = vec![format!("layer {}", i + 1)];
            let mut g_row = a_row.clone();
            for scheme in Scheme::ALL {
                let stats = layer(i, scheme);
                a_row.push(format!("{:+.1e} ± {}", stats.mean, scientific(stats.std)));
                g_row.push(scientific(stats.gradient_norm));
            }
            activations.row(a_row);
            gradients.row(g_row);
        }
        write!(f, "{activations}{gradients}")
    }

    /// Per layer and scheme, the measured backward gain and (in parentheses) its prediction,
    /// then their products over the layers.
    fn gain_table(&self, f: &mut fmt::Formatter<'_>, activation: Activation) -> fmt::Result {
        let name = activation_name(activation);
        let mut header = vec![format!("{name}: ||dL/dz[l-1]|| / ||dL/dz[l]|| (predicted)")];
        header.extend(Scheme::ALL.iter().map(ToString::to_string));
        let mut table = Table::new(&header);
        let cell = |measured: f64, predicted: f64| {
            format!("{} ({})", scientific(measured), scientific(predicted))
        };
        for i in 1..self.settings.depth {
            let mut row = vec![format!("layer {}", i + 1)];
            for scheme in Scheme::ALL {
                let stats = self.case(activation, scheme).layers[i];
                row.push(cell(
                    stats.backward_gain.unwrap_or(f64::NAN),
                    stats.predicted_backward_gain.unwrap_or(f64::NAN),
                ));
            }
            table.row(row);
        }
        let mut row = vec![format!("product, layers 2-{}", self.settings.depth)];
        for scheme in Scheme::ALL {
            let case = self.case(activation, scheme);
            row.push(cell(
                case.backward_product(),
                case.predicted_backward_product(),
            ));
        }
        table.row(row);
        write!(f, "{table}")
    }

    /// The symmetric network next to its Xavier control.
    fn symmetry_table(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.symmetry;
        writeln!(
            f,
            "Symmetric start: tanh, {} hidden layers of {} units, every weight {} (= 1/{}), biases 0; {} epochs of the same SGD",
            s.depth, s.width, s.value, s.width, self.settings.symmetric_epochs
        )?;
        let mut table = Table::new(&[
            "init",
            "max |w_j - w_0| (after)",
            "max |w| (after)",
            "train loss",
            "test acc",
        ]);
        for (label, history, difference, scale) in [
            (
                "constant",
                &s.history,
                s.max_unit_difference,
                s.weight_scale,
            ),
            (
                "Xavier",
                &s.control,
                s.control_unit_difference,
                s.control_weight_scale,
            ),
        ] {
            let last = history.last();
            table.row(vec![
                label.to_string(),
                scientific(difference),
                scientific(scale),
                number(last.map(|r| r.train.loss), 4),
                percent(final_accuracy(history)),
            ]);
        }
        write!(f, "{table}")
    }
}
