//! Batch normalization over the batch axis (chapter section 6).

use autograd::Var;
use tensor::{Float, Shape, Tensor, TensorError};

use crate::error::{NnError, Result};
use crate::layer::Layer;
use crate::params::{Context, Mode, ParamId, ParamStore, Role};

/// Batch normalization of `[batch, features]` inputs, with PyTorch's conventions
/// (`torch.nn.BatchNorm1d`):
///
/// - **training**: per feature, over the batch of b samples,
///   `mu = mean(z)`, `var = mean((z - mu)^2)` (biased: divided by b),
///   `z_norm = (z - mu) / sqrt(var + eps)`, output `gamma * z_norm + beta` — all tape ops, so
///   the gradient is derived. Then, off the tape, the running statistics move towards the
///   batch's: `running = (1 - momentum) * running + momentum * batch`, where the batch variance
///   used here is the **unbiased** one (`var * b / (b - 1)`), as PyTorch does.
/// - **evaluation**: `gamma * (z - running_mean) / sqrt(running_var + eps) + beta`.
///
/// Defaults: `eps = 1e-5`, `momentum = 0.1` (weight of the new value), gamma = 1, beta = 0,
/// running mean 0, running variance 1. Training needs b > 1 (as PyTorch).
///
/// Parameters are `{name}.weight` (gamma) and `{name}.bias` (beta); buffers
/// `{name}.running_mean`, `{name}.running_var` and `{name}.num_batches_tracked`: PyTorch's
/// state-dict names, so a parameter file loads into `nn.BatchNorm1d`.
#[derive(Clone, Debug)]
pub struct BatchNorm1d {
    name: String,
    features: usize,
    eps: f64,
    momentum: f64,
    gamma: ParamId,
    beta: ParamId,
    running_mean: ParamId,
    running_var: ParamId,
    batches_tracked: ParamId,
}

impl BatchNorm1d {
    /// A batch-norm layer over `features` features with the default eps and momentum. Errors,
    /// adding nothing, if a name is taken or `features` is 0.
    pub fn new<T: Float>(store: &mut ParamStore<T>, name: &str, features: usize) -> Result<Self> {
        let names = [
            "weight",
            "bias",
            "running_mean",
            "running_var",
            "num_batches_tracked",
        ]
        .map(|n| format!("{name}.{n}"));
        if let Some(taken) = names.iter().find(|n| store.find(n).is_some()) {
            return Err(NnError::DuplicateName {
                name: taken.clone(),
            });
        }
        if features == 0 {
            return Err(NnError::Tensor(TensorError::InvalidArgument {
                op: "BatchNorm1d::new",
                message: format!("'{name}' needs at least one feature, got 0"),
            }));
        }
        let [weight, bias, mean, var, count] = names;
        Ok(BatchNorm1d {
            name: name.to_string(),
            features,
            eps: 1e-5,
            momentum: 0.1,
            gamma: store.add(weight, Role::Scale, Tensor::ones([features]))?,
            beta: store.add(bias, Role::Shift, Tensor::zeros([features]))?,
            running_mean: store.add(mean, Role::RunningStatistic, Tensor::zeros([features]))?,
            running_var: store.add(var, Role::RunningStatistic, Tensor::ones([features]))?,
            batches_tracked: store.add(count, Role::Counter, Tensor::scalar(T::ZERO))?,
        })
    }

    /// The same layer with another eps (added to the variance before the square root). Errors
    /// unless it is finite and > 0 (eps = 0 divides by 0 on a constant feature, eps < 0 takes
    /// the square root of a negative number).
    pub fn with_eps(mut self, eps: f64) -> Result<Self> {
        if !(eps > 0.0 && eps.is_finite()) {
            return Err(NnError::Tensor(TensorError::InvalidArgument {
                op: "BatchNorm1d::with_eps",
                message: format!("eps must be finite and > 0, got {eps}"),
            }));
        }
        self.eps = eps;
        Ok(self)
    }

    /// The same layer with another momentum (the weight of the new batch statistic). Errors
    /// unless it is in [0, 1]: outside it the running variance can go negative.
    pub fn with_momentum(mut self, momentum: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&momentum) {
            return Err(NnError::Tensor(TensorError::InvalidArgument {
                op: "BatchNorm1d::with_momentum",
                message: format!("momentum must be in [0, 1], got {momentum}"),
            }));
        }
        self.momentum = momentum;
        Ok(self)
    }

    /// gamma's id.
    pub fn scale(&self) -> ParamId {
        self.gamma
    }

    /// beta's id.
    pub fn shift(&self) -> ParamId {
        self.beta
    }

    /// The running mean's id.
    pub fn running_mean(&self) -> ParamId {
        self.running_mean
    }

    /// The running variance's id.
    pub fn running_var(&self) -> ParamId {
        self.running_var
    }

    fn shape_error(&self, message: String) -> NnError {
        NnError::Shape {
            op: format!("BatchNorm1d '{}'", self.name),
            message,
        }
    }
}

impl<T: Float> Layer<T> for BatchNorm1d {
    fn name(&self) -> &str {
        &self.name
    }

    /// `[batch, features]`, or `[batch, features, length]` as PyTorch's `BatchNorm1d` (a
    /// sequence of `length` per channel: the statistics of a feature are over the batch and the
    /// length).
    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        match input.dims() {
            &[_, features] | &[_, features, _] if features == self.features => Ok(input.clone()),
            _ => Err(self.shape_error(format!(
                "expected input [batch, {0}] or [batch, {0}, length], got {input}",
                self.features
            ))),
        }
    }

    fn try_forward<'t>(
        &self,
        context: &mut Context<'t, '_, T>,
        x: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        let shape = x.shape();
        Layer::<T>::output_shape(self, &shape)?;
        // [batch, features, length]: per-feature values broadcast along the length as
        // [features, 1], and the statistics taken over the batch and the length.
        let sequence = shape.rank() == 3;
        let per_feature: Shape = if sequence {
            Shape::from([self.features, 1])
        } else {
            Shape::from([self.features])
        };
        let (mut gamma, mut beta) = (context.param(self.gamma), context.param(self.beta));
        if sequence {
            gamma = gamma.try_reshape(per_feature.clone())?;
            beta = beta.try_reshape(per_feature.clone())?;
        }
        let eps = T::from_f64(self.eps);
        if let Mode::Eval = context.mode() {
            let tape = context.tape();
            let mean = tape.constant(
                context
                    .buffer(self.running_mean)
                    .reshape(per_feature.clone()),
            );
            let inverse_std = tape.constant(
                context
                    .buffer(self.running_var)
                    .map(|v| T::ONE / (v + eps).sqrt())
                    .reshape(per_feature),
            );
            return Ok(x
                .try_sub(mean)?
                .try_mul(inverse_std)?
                .try_mul(gamma)?
                .try_add(beta)?);
        }
        let (axes, samples): (&[usize], usize) = if sequence {
            (&[0, 2], shape.dims()[0] * shape.dims()[2])
        } else {
            (&[0], shape.dims()[0])
        };
        if samples < 2 {
            return Err(self.shape_error(format!(
                "training needs more than one sample per feature, got input {shape}"
            )));
        }
        // mean, x - mean, and the biased variance (divide by the samples), written once.
        let (mean, centered, variance) = x.try_moments(axes, false)?;
        let normalized = centered.try_div(variance.try_add_scalar(eps)?.try_sqrt()?)?;
        let output = normalized.try_mul(gamma)?.try_add(beta)?;

        // Running statistics, off the tape, from the batch's values.
        let momentum = T::from_f64(self.momentum);
        let keep = T::ONE - momentum;
        let unbiased = T::from_usize(samples) / T::from_usize(samples - 1);
        let batch_mean = mean.value().reshape([self.features]);
        let batch_var = variance.value().reshape([self.features]);
        let running_mean =
            context
                .buffer(self.running_mean)
                .zip_map(&batch_mean, "running_mean", |r, b| keep * r + momentum * b);
        let running_var =
            context
                .buffer(self.running_var)
                .zip_map(&batch_var, "running_var", |r, b| {
                    keep * r + momentum * b * unbiased
                });
        let count = context.buffer(self.batches_tracked).add_scalar(T::ONE);
        context.set_buffer(self.running_mean, running_mean);
        context.set_buffer(self.running_var, running_var);
        context.set_buffer(self.batches_tracked, count);
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{gradcheck_layer, sample};
    use autograd::Tape;

    fn layer(features: usize) -> (ParamStore<f64>, BatchNorm1d) {
        let mut store = ParamStore::new();
        let bn = BatchNorm1d::new(&mut store, "bn", features).unwrap();
        store.set_value(bn.gamma, sample(&[features], 10).map(|v| v + 1.5));
        store.set_value(bn.beta, sample(&[features], 11));
        store.set_value(bn.running_mean, sample(&[features], 12));
        store.set_value(
            bn.running_var,
            sample(&[features], 13).map(|v| v.abs() + 0.5),
        );
        (store, bn)
    }

    #[test]
    fn batch_norm_gradients_in_both_modes() {
        let (store, bn) = layer(3);
        gradcheck_layer(&bn, &store, sample(&[5, 3], 1), Mode::Train);
        gradcheck_layer(&bn, &store, sample(&[5, 3], 1), Mode::Eval);
    }

    /// The classic closed form of batch norm's input gradient (Ioffe & Szegedy), with
    /// xhat = (x - mu) / sqrt(var + eps) and dxhat = dy * gamma:
    /// dx = (1 / b) / sqrt(var + eps) * (b dxhat - sum(dxhat) - xhat sum(dxhat xhat)).
    #[test]
    fn a_sequence_is_normalized_per_feature_over_batch_and_length() {
        // [batch 2, features 3, length 4] must equal the rank-2 layer on the 8 rows
        // x[n, :, l] (PyTorch's BatchNorm1d on [N, C, L]), outputs and running statistics.
        let (mut store, bn) = layer(3);
        let mut flat_store = store.clone();
        let x = sample(&[2, 3, 4], 12);
        let rows = x.permute(&[0, 2, 1]).reshape([8, 3]);
        for mode in [Mode::Train, Mode::Eval] {
            let tape = Tape::new();
            let mut context = Context::new(&tape, &mut store, mode);
            let y = bn.forward(&mut context, tape.constant(x.clone())).value();
            let mut flat_context = Context::new(&tape, &mut flat_store, mode);
            let expected = bn
                .forward(&mut flat_context, tape.constant(rows.clone()))
                .value();
            let y_rows = y.permute(&[0, 2, 1]).reshape([8, 3]).to_vec();
            for (a, b) in y_rows.iter().zip(expected.to_vec()) {
                assert!((a - b).abs() < 1e-14, "{mode:?}: {a} vs {b}");
            }
        }
        for id in [bn.running_mean(), bn.running_var()] {
            for (a, b) in store
                .value(id)
                .to_vec()
                .iter()
                .zip(flat_store.value(id).to_vec())
            {
                assert!((a - b).abs() < 1e-15);
            }
        }
        for mode in [Mode::Train, Mode::Eval] {
            gradcheck_layer(&bn, &store, x.clone(), mode);
        }
        // One sample per feature (batch 1, length 1) cannot be normalized in training.
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut store, Mode::Train);
        assert!(
            bn.try_forward(&mut context, tape.constant(sample(&[1, 3, 1], 1)))
                .is_err()
        );
    }

    #[test]
    fn input_gradient_matches_the_closed_form() {
        let (mut store, bn) = layer(4);
        let (b, f) = (6, 4);
        let x_value = sample(&[b, f], 2);
        let dy = sample(&[b, f], 3);
        let gamma = store.value(bn.gamma).to_vec();
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut store, Mode::Train);
        let x = tape.leaf(x_value.clone());
        let grads = bn.forward(&mut context, x).backward_with(dy.clone());
        let dx = grads.wrt(x);
        let dgamma = grads.wrt(context.param(bn.gamma)).to_vec();
        let dbeta = grads.wrt(context.param(bn.beta)).to_vec();
        for j in 0..f {
            let column: Vec<f64> = (0..b).map(|i| x_value.get(&[i, j])).collect();
            let mu = column.iter().sum::<f64>() / b as f64;
            let var = column.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / b as f64;
            let inv = 1.0 / (var + 1e-5).sqrt();
            let xhat: Vec<f64> = column.iter().map(|v| (v - mu) * inv).collect();
            let dxhat: Vec<f64> = (0..b).map(|i| dy.get(&[i, j]) * gamma[j]).collect();
            let sum_dxhat: f64 = dxhat.iter().sum();
            let sum_dxhat_xhat: f64 = dxhat.iter().zip(&xhat).map(|(d, x)| d * x).sum();
            for i in 0..b {
                let expected =
                    inv / b as f64 * (b as f64 * dxhat[i] - sum_dxhat - xhat[i] * sum_dxhat_xhat);
                assert!(
                    (dx.get(&[i, j]) - expected).abs() < 1e-12,
                    "dx[{i},{j}] {} vs {expected}",
                    dx.get(&[i, j])
                );
            }
            let expected_dgamma: f64 = (0..b).map(|i| dy.get(&[i, j]) * xhat[i]).sum();
            let expected_dbeta: f64 = (0..b).map(|i| dy.get(&[i, j])).sum();
            assert!((dgamma[j] - expected_dgamma).abs() < 1e-12);
            assert!((dbeta[j] - expected_dbeta).abs() < 1e-12);
        }
    }

    /// The numbers a PyTorch user sees. With gamma = 1, beta = 0 and the batch
    /// x = [[1, 2], [3, 6]] (b = 2): mean [2, 4], biased variance [1, 4], so the output is
    /// ±1 / sqrt(var + 1e-5) * sqrt(var) ~ ±0.999995 and ±0.99999875; the running mean becomes
    /// 0.9 * 0 + 0.1 * [2, 4] = [0.2, 0.4] and the running variance 0.9 * 1 + 0.1 * [2, 8]
    /// (unbiased) = [1.1, 1.7]. These are the values of
    /// `torch.nn.BatchNorm1d(2)(torch.tensor([[1., 2.], [3., 6.]]))` and its buffers.
    #[test]
    fn pytorch_conventions_for_outputs_and_running_statistics() {
        let mut store = ParamStore::<f64>::new();
        let bn = BatchNorm1d::new(&mut store, "bn", 2).unwrap();
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut store, Mode::Train);
        let x = tape.constant(Tensor::from_vec(vec![1.0, 2.0, 3.0, 6.0], [2, 2]).unwrap());
        let y = bn.forward(&mut context, x).value().to_vec();
        let a = 1.0 / (1.0_f64 + 1e-5).sqrt();
        let c = 2.0 / (4.0_f64 + 1e-5).sqrt();
        let expected = [-a, -c, a, c];
        for (got, want) in y.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12);
        }
        assert!(store.value(bn.running_mean).allclose(
            &Tensor::from_vec(vec![0.2, 0.4], [2]).unwrap(),
            1e-12,
            1e-12
        ));
        assert!(store.value(bn.running_var).allclose(
            &Tensor::from_vec(vec![1.1, 1.7], [2]).unwrap(),
            1e-12,
            1e-12
        ));
        assert_eq!(store.value(bn.batches_tracked).item(), 1.0);
        // Evaluation uses the running statistics: (x - 0.2) / sqrt(1.1 + 1e-5) for feature 0.
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut store, Mode::Eval);
        let x = tape.constant(Tensor::from_vec(vec![1.0, 2.0], [1, 2]).unwrap());
        let y = bn.forward(&mut context, x).value().to_vec();
        assert!((y[0] - 0.8 / (1.1_f64 + 1e-5).sqrt()).abs() < 1e-12);
        assert!((y[1] - 1.6 / (1.7_f64 + 1e-5).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn settings_that_give_nan_or_negative_variances_are_refused() {
        let (_, bn) = layer(2);
        // eps -1 used to give NaN outputs, momentum 5 a running variance of -4.
        for eps in [-1.0, 0.0, f64::NAN, f64::INFINITY] {
            assert_eq!(
                bn.clone().with_eps(eps).unwrap_err().to_string(),
                format!("BatchNorm1d::with_eps: eps must be finite and > 0, got {eps}")
            );
        }
        for momentum in [5.0, -0.1, f64::NAN] {
            assert_eq!(
                bn.clone().with_momentum(momentum).unwrap_err().to_string(),
                format!("BatchNorm1d::with_momentum: momentum must be in [0, 1], got {momentum}")
            );
        }
        assert!(bn.clone().with_eps(1e-3).is_ok());
        assert!(bn.with_momentum(1.0).is_ok());
        let mut store = ParamStore::<f32>::new();
        assert!(BatchNorm1d::new(&mut store, "bn", 0).is_err());
        assert!(store.is_empty());
    }

    #[test]
    fn running_statistics_follow_the_momentum_formula_for_any_batch() {
        // batch 5 (unbiased factor 5/4) and running statistics that are not 0 and 1, so that
        // neither the factor nor the decay of the old value can be dropped unnoticed.
        let (mut store, bn) = layer(3);
        let bn = bn.with_momentum(0.3).unwrap();
        let (old_mean, old_var) = (
            store.value(bn.running_mean).to_vec(),
            store.value(bn.running_var).to_vec(),
        );
        let x = sample(&[5, 3], 21);
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut store, Mode::Train);
        bn.forward(&mut context, tape.constant(x.clone()));
        drop(context);
        for j in 0..3 {
            let column: Vec<f64> = (0..5).map(|i| x.get(&[i, j])).collect();
            let mu = column.iter().sum::<f64>() / 5.0;
            let unbiased = column.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / 4.0;
            let mean = store.value(bn.running_mean).to_vec()[j];
            let var = store.value(bn.running_var).to_vec()[j];
            assert!(
                (mean - (0.7 * old_mean[j] + 0.3 * mu)).abs() < 1e-12,
                "mean {j}"
            );
            assert!(
                (var - (0.7 * old_var[j] + 0.3 * unbiased)).abs() < 1e-12,
                "var {j}"
            );
        }
        assert_eq!(Layer::<f64>::name(&bn), "bn");
    }

    #[test]
    fn bad_input_is_named_and_changes_nothing() {
        let (mut store, bn) = layer(3);
        let before = store.clone();
        let tape = Tape::new();
        let mut context = Context::new(&tape, &mut store, Mode::Train);
        let wrong = tape.constant(Tensor::zeros([4, 2]));
        assert_eq!(
            bn.try_forward(&mut context, wrong).unwrap_err().to_string(),
            "BatchNorm1d 'bn': expected input [batch, 3] or [batch, 3, length], got [4, 2]"
        );
        let single = tape.constant(Tensor::zeros([1, 3]));
        assert_eq!(
            bn.try_forward(&mut context, single)
                .unwrap_err()
                .to_string(),
            "BatchNorm1d 'bn': training needs more than one sample per feature, got input [1, 3]"
        );
        for (id, ..) in before.iter() {
            assert_eq!(before.value(id), store.value(id));
        }
    }
}
