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

use std::fmt;
use std::path::PathBuf;

use autograd::Tape;
use nn::{Activation, Context, Init, LayerStatistics, Mode};

use crate::claims::{Claim, Unit, write_claims};
use crate::data::{Split, digits_split};
use crate::model::{Mlp, MlpSpec};
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
            },
            Size::Quick => Settings {
                train_count: 500,
                width: 128,
                depth: 10,
                batch_size: 100,
                epochs: 5,
                seed: 3,
            },
        }
    }

    fn training(&self) -> TrainSpec {
        TrainSpec {
            epochs: self.epochs,
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
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::TooSmall => "std 0.01",
            Scheme::TooLarge => "std 1",
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
    /// Frobenius norm of the loss's gradient with respect to the layer's weights.
    pub gradient_norm: f64,
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
}

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
        // input.
        let tanh_large = self.case(Activation::Tanh, Scheme::TooLarge);
        claims.push(Claim::above(
            "tanh_large_saturates",
            "tanh, std 1: most units of the last layer are saturated (|a| > 0.99)",
            "saturated",
            tanh_large.layers[tanh_large.layers.len() - 1].saturated,
            0.5,
            Unit::Percent,
        ));
        claims.push(Claim::above(
            "tanh_large_gradient",
            "tanh, std 1: the weight gradient grows towards the input",
            "gradient norm first/last",
            tanh_large.gradient_ratio(),
            1e2,
            Unit::Scientific,
        ));
        // He with ReLU: sqrt(fan_in / 2) * sqrt(2 / fan_in) = 1, a steady std; a factor of 2
        // allows for the random weights of nine layers.
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
        // layer that recurrence predicts the last layer's ratio.
        let xavier = self.case(Activation::Tanh, Scheme::Xavier);
        let first_variance = xavier.layers[0].std.powi(2);
        let predicted_variance = (0..transitions).fold(first_variance, |q, _| {
            gaussian_expectation(|z| (q.sqrt() * z).tanh().powi(2))
        });
        let predicted = (predicted_variance / first_variance).sqrt();
        claims.push(Claim::below(
            "tanh_xavier_compression",
            "tanh, Xavier: the std shrinks only as tanh's compression of the variance predicts",
            "std ratio / predicted, off by",
            (xavier.std_ratio() / predicted - 1.0).abs(),
            0.25,
            Unit::Percent,
        ));
        claims
    }

    /// The case of `activation` under `scheme`.
    pub fn case(&self, activation: Activation, scheme: Scheme) -> &Case {
        self.cases
            .iter()
            .find(|c| c.activation == activation && c.scheme == scheme)
            .expect("every activation and scheme is run")
    }
}

/// Measures the first step of all eight networks, trains them, and plots both.
pub fn run(config: &Config) -> Result<Summary> {
    let settings = Settings::for_config(config);
    let split = digits_split(&config.data_dir, settings.train_count, settings.seed)?;
    let mut cases = Vec::new();
    for activation in [Activation::Tanh, Activation::Relu] {
        for scheme in Scheme::ALL {
            cases.push(run_case(config, &settings, &split, activation, scheme)?);
        }
    }
    let mut summary = Summary {
        settings,
        cases,
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
    let (layers, first_step) = first_step_statistics(&mut model, &first_batch, activation)?;
    let label = format!("{}, {scheme}", activation_name(activation));
    let progress = Progress::new(label, config.progress, settings.epochs, 1);
    let history = train(&mut model, split, &settings.training(), &progress)?;
    Ok(Case {
        activation,
        scheme,
        layers,
        first_step,
        history,
    })
}

/// One forward and backward pass on `batch` with the initial weights — the computation of a
/// first training step — recorded by the library's per-layer statistics: each layer's output on
/// the way forward, each layer's weight gradient on the way back. Nothing is updated.
fn first_step_statistics(
    model: &mut Mlp,
    batch: &nn::Dataset<f32>,
    activation: Activation,
) -> Result<(Vec<LayerStats>, LayerStatistics)> {
    let tape = Tape::new();
    let mut context = Context::new(&tape, &mut model.store, Mode::Train);
    let x = tape.constant(batch.features().clone());
    let name = activation_name(activation);
    let mut statistics = LayerStatistics::new();
    let mut saturated = Vec::new();
    let logits = model
        .network
        .try_forward_observed(&mut context, x, |layer, output| {
            let value = output.value();
            statistics.record_activation(layer.name(), &value);
            // The activation layers' outputs are the a[l] of the chapter; |a| > 0.99 is a
            // saturated tanh unit, whose derivative 1 - a^2 is below 0.02.
            if layer.name() == name {
                let values = value.to_vec();
                saturated.push(
                    values.iter().filter(|a| a.abs() > 0.99).count() as f64 / values.len() as f64,
                );
            }
        })?;
    let loss = nn::try_cross_entropy(logits, batch.labels())?;
    let gradients = context.gradients(&loss.try_backward()?);
    statistics.record_gradients(context.store(), &gradients);
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
            }
        })
        .collect();
    Ok((layers, statistics))
}

fn plot(config: &Config, summary: &Summary) -> Result<Vec<PathBuf>> {
    let layers_path = config.output_file("initialization_layers.svg")?;
    let training_path = config.output_file("initialization_training.svg")?;
    let mut layer_charts = Vec::new();
    let mut training_charts = Vec::new();
    for activation in [Activation::Tanh, Activation::Relu] {
        let name = activation_name(activation);
        let std = Chart::new(
            format!("{name}: activation std per layer"),
            "hidden layer",
            "std of a[l] (log scale)",
        )
        .legend(Legend::LowerLeft);
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
    }
    // Rows: tanh, ReLU; columns: activations, gradients.
    write_svg_grid(&layers_path, &layer_charts, 2)?;
    write_svg(&training_path, &training_charts)?;
    Ok(vec![layers_path, training_path])
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
        // The library's own per-layer table (nn::LayerStatistics) for the two tanh networks that
        // differ most: the signal dying out, and the signal kept.
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
            "grad first/last",
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
        header[0] = format!("{name}: ||dL/dW[l]||");
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
}
