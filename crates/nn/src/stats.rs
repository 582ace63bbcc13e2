//! Per-layer statistics; the docs are on [`LayerStatistics`].

use std::fmt;

use tensor::{Float, Tensor};

use crate::params::{ParamGradients, ParamStore, Role};

/// Summary of one layer's output on a batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActivationStatistics {
    /// Mean over every element.
    pub mean: f64,
    /// Population standard deviation over every element.
    pub std: f64,
    /// Largest |x|.
    pub max_abs: f64,
    /// Fraction of elements exactly 0 (dead ReLU units give 1 for their column).
    pub zero_fraction: f64,
    /// Fraction of elements that are NaN or infinite.
    pub non_finite_fraction: f64,
}

impl ActivationStatistics {
    /// The statistics of `values` (non-finite elements are counted, and left out of the rest).
    /// Two passes in f64 (the mean, then the squared deviations), so a tiny standard deviation
    /// next to a large mean is still measured accurately.
    pub fn of<T: Float>(values: &Tensor<T>) -> Self {
        let all: Vec<f64> = values.to_vec().iter().map(|x| x.to_f64()).collect();
        let finite: Vec<f64> = all.iter().copied().filter(|x| x.is_finite()).collect();
        let count = finite.len().max(1) as f64;
        let mean = finite.iter().sum::<f64>() / count;
        let variance = finite.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / count;
        let n = all.len().max(1) as f64;
        ActivationStatistics {
            mean,
            std: variance.sqrt(),
            max_abs: finite.iter().fold(0.0, |m, x| m.max(x.abs())),
            zero_fraction: finite.iter().filter(|&&x| x == 0.0).count() as f64 / n,
            non_finite_fraction: (all.len() - finite.len()) as f64 / n,
        }
    }
}

/// Everything recorded about one layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerRow {
    /// The layer's name (for a layer with parameters, their common prefix: `hidden1`).
    pub layer: String,
    /// Its output on the last recorded batch.
    pub activation: Option<ActivationStatistics>,
    /// Norm of the gradient of all its parameters together.
    pub gradient_norm: Option<f64>,
    /// Norm of the gradient of its weight matrix alone (the chapter's ||dL/dW\[l\]||).
    pub weight_gradient_norm: Option<f64>,
    /// ||update|| / ||parameters|| of the last optimizer step (all its parameters together).
    pub update_ratio: Option<f64>,
}

/// Per-layer statistics, recorded on request and printable as a table.
///
/// Opt-in per-layer statistics: what each layer's output looks like (mean, standard deviation,
/// largest magnitude, dead units, non-finite values), how large its parameters' gradients are,
/// and how far the optimizer moved them relative to their size. These are the numbers that show
/// *why* the chapter's techniques work: shrinking or exploding activations under a bad
/// initialization (section 4), dead ReLUs, updates that are too large.
///
/// ```
/// use autograd::Tape;
/// use nn::{Activation, Context, Dense, Init, LayerStatistics, Mode, ParamStore, Sequential};
/// use rand::SeedableRng;
/// use tensor::Tensor;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mut store = ParamStore::<f32>::new();
/// let model = Sequential::new()
///     .with(Dense::new(&mut store, "hidden1", 8, 16, Init::HeNormal, &mut rng).unwrap())
///     .with(Activation::Relu)
///     .with(Dense::new(&mut store, "output", 16, 2, Init::XavierNormal, &mut rng).unwrap());
/// let x = Tensor::<f32>::random_normal([32, 8], 0.0, 1.0, &mut rng).unwrap();
///
/// let mut statistics = LayerStatistics::new();
/// let tape = Tape::new();
/// let mut context = Context::new(&tape, &mut store, Mode::Train);
/// let out = model.forward_with_statistics(&mut context, tape.constant(x), &mut statistics).unwrap();
/// let gradients = context.gradients(&out.square().mean_all().backward());
/// statistics.record_gradients(context.store(), &gradients);
/// println!("{statistics}");
/// let relu = &statistics.rows()[1];
/// assert_eq!(relu.layer, "relu");
/// assert!(relu.activation.unwrap().zero_fraction > 0.2); // about half the units are off
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerStatistics {
    rows: Vec<LayerRow>,
}

impl LayerStatistics {
    /// An empty record.
    pub fn new() -> Self {
        LayerStatistics::default()
    }

    /// The rows, in the order layers were first recorded.
    pub fn rows(&self) -> &[LayerRow] {
        &self.rows
    }

    /// Drops every row (for the next step).
    pub fn clear(&mut self) {
        self.rows.clear();
    }

    fn row(&mut self, layer: &str) -> &mut LayerRow {
        match self.rows.iter().position(|r| r.layer == layer) {
            Some(at) => &mut self.rows[at],
            None => {
                self.rows.push(LayerRow {
                    layer: layer.to_string(),
                    activation: None,
                    gradient_norm: None,
                    weight_gradient_norm: None,
                    update_ratio: None,
                });
                self.rows.last_mut().expect("just pushed")
            }
        }
    }

    /// Records a layer's output. Repeated names (several `relu` layers) get a position suffix
    /// (`relu#2`), so each layer keeps its own row.
    pub fn record_activation<T: Float>(&mut self, layer: &str, output: &Tensor<T>) {
        let mut name = layer.to_string();
        let mut copy = 1;
        while self
            .rows
            .iter()
            .any(|r| r.layer == name && r.activation.is_some())
        {
            copy += 1;
            name = format!("{layer}#{copy}");
        }
        self.row(&name).activation = Some(ActivationStatistics::of(output));
    }

    /// Records each layer's gradient norm: the parameters are grouped by the prefix of their
    /// name before the last `.` (`hidden1.weight` and `hidden1.bias` form `hidden1`).
    pub fn record_gradients<T: Float>(
        &mut self,
        store: &ParamStore<T>,
        gradients: &ParamGradients<T>,
    ) {
        for (layer, total) in grouped(store, |id| gradients.get(id).map(|g| squared_norm(g))) {
            self.row(&layer).gradient_norm = Some(total.sqrt());
        }
        let weights_only = |id| match store.role(id) {
            Role::Weight => gradients.get(id).map(|g| squared_norm(g)),
            _ => None,
        };
        for (layer, total) in grouped(store, weights_only) {
            self.row(&layer).weight_gradient_norm = Some(total.sqrt());
        }
    }

    /// Records each layer's update-to-weight ratio ||after - before|| / ||before|| across one
    /// optimizer step (`before` is a copy of the store taken before the step).
    pub fn record_updates<T: Float>(&mut self, before: &ParamStore<T>, after: &ParamStore<T>) {
        let changes = grouped(after, |id| {
            let difference = after.value(id) - before.value(id);
            Some(squared_norm(&difference))
        });
        let sizes = grouped(before, |id| Some(squared_norm(before.value(id))));
        for ((layer, change), (_, size)) in changes.into_iter().zip(sizes) {
            self.row(&layer).update_ratio = Some(if size > 0.0 {
                (change / size).sqrt()
            } else {
                f64::INFINITY
            });
        }
    }
}

fn squared_norm<T: Float>(tensor: &Tensor<T>) -> f64 {
    tensor
        .to_vec()
        .iter()
        .map(|x| x.to_f64() * x.to_f64())
        .sum()
}

/// Sums `value(id)` over the trainable parameters of each layer, in store order.
fn grouped<T: Float>(
    store: &ParamStore<T>,
    value: impl Fn(crate::ParamId) -> Option<f64>,
) -> Vec<(String, f64)> {
    let mut groups: Vec<(String, f64)> = Vec::new();
    for id in store.trainable() {
        let Some(v) = value(id) else { continue };
        let name = store.name(id);
        let layer = name.rsplit_once('.').map_or(name, |(prefix, _)| prefix);
        match groups.iter_mut().find(|(l, _)| l == layer) {
            Some((_, total)) => *total += v,
            None => groups.push((layer.to_string(), v)),
        }
    }
    groups
}

impl fmt::Display for LayerStatistics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .rows
            .iter()
            .map(|r| r.layer.len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(
            f,
            "{:width$}  {:>10}  {:>10}  {:>10}  {:>7}  {:>9}  {:>10}  {:>12}",
            "layer", "mean", "std", "max |x|", "zeros", "non-fin.", "grad norm", "update/weight"
        )?;
        let number = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3e}"));
        for row in &self.rows {
            let a = row.activation;
            writeln!(
                f,
                "{:width$}  {:>10}  {:>10}  {:>10}  {:>7}  {:>9}  {:>10}  {:>12}",
                row.layer,
                number(a.map(|a| a.mean)),
                number(a.map(|a| a.std)),
                number(a.map(|a| a.max_abs)),
                a.map_or("-".to_string(), |a| format!(
                    "{:.1}%",
                    100.0 * a.zero_fraction
                )),
                a.map_or("-".to_string(), |a| format!(
                    "{:.1}%",
                    100.0 * a.non_finite_fraction
                )),
                number(row.gradient_norm),
                number(row.update_ratio),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dense::Dense;
    use crate::init::Init;
    use crate::optim::{Optimizer, Sgd};
    use crate::test_support::rng;

    #[test]
    fn activation_statistics_match_hand_computation() {
        let values = Tensor::from_vec(vec![0.0_f64, 2.0, -2.0, 4.0, f64::NAN], [5]).unwrap();
        let stats = ActivationStatistics::of(&values);
        assert_eq!(stats.mean, 1.0);
        assert_eq!(stats.std, (24.0_f64 / 4.0 - 1.0).sqrt());
        assert_eq!(stats.max_abs, 4.0);
        assert_eq!(stats.zero_fraction, 0.2);
        assert_eq!(stats.non_finite_fraction, 0.2);
    }

    #[test]
    fn gradient_norms_and_update_ratios_are_per_layer() {
        let mut store = ParamStore::<f64>::new();
        Dense::new(&mut store, "a", 2, 2, Init::Constant(1.0), &mut rng(0)).unwrap();
        Dense::new(&mut store, "b", 2, 1, Init::Constant(2.0), &mut rng(0)).unwrap();
        store.add("free", Role::Shift, Tensor::ones([1])).unwrap();
        let gradient = |value: f64, dims: &[usize]| Some(Tensor::full(dims, value));
        let grads = ParamGradients::from_values(
            &store,
            vec![
                gradient(1.0, &[2, 2]),
                gradient(1.0, &[2]),
                gradient(3.0, &[2, 1]),
                gradient(0.0, &[1]),
                gradient(4.0, &[1]),
            ],
        )
        .unwrap();
        let mut stats = LayerStatistics::new();
        stats.record_gradients(&store, &grads);
        assert_eq!(stats.rows()[0].layer, "a");
        assert_eq!(stats.rows()[0].gradient_norm, Some(6.0_f64.sqrt()));
        assert_eq!(stats.rows()[1].gradient_norm, Some(18.0_f64.sqrt()));
        assert_eq!(stats.rows()[1].weight_gradient_norm, Some(18.0_f64.sqrt()));
        assert_eq!(stats.rows()[0].weight_gradient_norm, Some(4.0_f64.sqrt()));
        assert_eq!(
            stats.rows()[2].weight_gradient_norm,
            None,
            "no weight matrix"
        );
        assert_eq!(stats.rows()[2].layer, "free");
        let before = store.clone();
        Sgd::new(0.1).step(&mut store, &grads).unwrap();
        stats.record_updates(&before, &store);
        // Layer a: update 0.1 on each of 6 entries; weights four 1s and two 0s (bias).
        let expected = (6.0 * 0.01_f64 / 4.0).sqrt();
        assert!((stats.rows()[0].update_ratio.unwrap() - expected).abs() < 1e-12);
        assert_eq!(stats.to_string().lines().count(), 4);
    }

    #[test]
    fn tiny_deviations_around_a_large_mean_are_measured() {
        let values = Tensor::from_vec(vec![1e8 + 1e-3, 1e8 - 1e-3], [2]).unwrap();
        let stats = ActivationStatistics::of(&values);
        assert!((stats.std - 1e-3).abs() < 1e-6, "{}", stats.std);
    }

    #[test]
    fn repeated_layer_names_get_their_own_rows() {
        let mut stats = LayerStatistics::new();
        stats.record_activation("relu", &Tensor::<f32>::ones([2]));
        stats.record_activation("relu", &Tensor::<f32>::zeros([2]));
        assert_eq!(
            stats
                .rows()
                .iter()
                .map(|r| r.layer.as_str())
                .collect::<Vec<_>>(),
            ["relu", "relu#2"]
        );
        assert_eq!(stats.rows()[1].activation.unwrap().zero_fraction, 1.0);
    }
}
