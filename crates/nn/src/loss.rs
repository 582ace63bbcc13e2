//! Losses, composed of autograd ops (their gradients are derived).

use autograd::Var;
use tensor::{Float, Indices};

use crate::error::{NnError, Result, or_panic};

/// Mean squared error, mean((prediction - target)^2) over all elements. The shapes must be
/// equal (no broadcasting, which would hide a transposed target).
///
/// ```
/// use autograd::Tape;
/// use tensor::Tensor;
/// let tape = Tape::<f64>::new();
/// let p = tape.leaf(Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap());
/// let t = tape.constant(Tensor::from_vec(vec![0.0, 4.0], [2]).unwrap());
/// assert_eq!(nn::mse(p, t).value().item(), 2.5);
/// ```
#[track_caller]
pub fn mse<'t, T: Float>(prediction: Var<'t, T>, target: Var<'t, T>) -> Var<'t, T> {
    or_panic(try_mse(prediction, target))
}

/// Fallible [`mse`].
pub fn try_mse<'t, T: Float>(prediction: Var<'t, T>, target: Var<'t, T>) -> Result<Var<'t, T>> {
    let (p, t) = (prediction.shape(), target.shape());
    if p != t {
        return Err(NnError::Shape {
            op: "mse".to_string(),
            message: format!("prediction {p} and target {t} differ"),
        });
    }
    prediction
        .try_sub(target)?
        .try_square()?
        .try_mean_all()
        .map_err(Into::into)
}

/// Softmax cross-entropy from logits `[..., classes]` (classes on the last axis; any leading
/// axes are batch axes, such as `[batch, sequence, classes]`) and one integer label per row,
/// averaged over the rows: mean over i of `logsumexp(z_i) - z_i[label_i]`. Written with
/// `logsumexp`, so logits of ±1e4 give a finite loss and gradient; the gradient is
/// `(softmax(z) - onehot) / rows`. PyTorch's `F.cross_entropy(logits, labels)` for rank 2; for
/// more axes PyTorch puts the classes on axis 1, this on the last axis (as `nn.Linear` and
/// JAX's optax). Label smoothing, class weights and an ignored label: [`CrossEntropy`].
///
/// ```
/// use autograd::Tape;
/// use tensor::Tensor;
/// let tape = Tape::<f64>::new();
/// let logits = tape.leaf(Tensor::zeros([2, 4]));
/// let loss = nn::cross_entropy(logits, &[0, 3]);
/// assert!((loss.value().item() - 4.0_f64.ln()).abs() < 1e-15);
/// let sequence = tape.leaf(Tensor::zeros([2, 3, 4])); // [batch, time, classes]
/// let loss = nn::cross_entropy(sequence, &[0, 1, 2, 3, 0, 1]);
/// assert!((loss.value().item() - 4.0_f64.ln()).abs() < 1e-15);
/// ```
#[track_caller]
pub fn cross_entropy<'t, T: Float>(logits: Var<'t, T>, labels: &[usize]) -> Var<'t, T> {
    or_panic(try_cross_entropy(logits, labels))
}

/// Fallible [`cross_entropy`]: errors name a label outside `0..classes` or a count of labels
/// that is not the number of rows, before anything is recorded.
pub fn try_cross_entropy<'t, T: Float>(logits: Var<'t, T>, labels: &[usize]) -> Result<Var<'t, T>> {
    Ok(try_cross_entropy_per_example(logits, labels)?.try_mean_all()?)
}

/// Softmax cross-entropy of each row, without the mean (PyTorch's `reduction='none'`): shape
/// `[...]` (the logits' leading axes), entry i `logsumexp(z_i) - z_i[label_i]`. The input of
/// per-sample gradients ([`Context::try_per_sample_gradients`](crate::Context::try_per_sample_gradients)).
///
/// ```
/// use autograd::Tape;
/// use tensor::Tensor;
/// let tape = Tape::<f64>::new();
/// let logits = tape.leaf(Tensor::zeros([2, 4]));
/// let losses = nn::cross_entropy_per_example(logits, &[0, 3]);
/// assert_eq!(losses.shape().dims(), &[2]);
/// assert!((losses.value().to_vec()[1] - 4.0_f64.ln()).abs() < 1e-15);
/// ```
#[track_caller]
pub fn cross_entropy_per_example<'t, T: Float>(logits: Var<'t, T>, labels: &[usize]) -> Var<'t, T> {
    or_panic(try_cross_entropy_per_example(logits, labels))
}

/// Fallible [`cross_entropy_per_example`], with [`try_cross_entropy`]'s errors.
pub fn try_cross_entropy_per_example<'t, T: Float>(
    logits: Var<'t, T>,
    labels: &[usize],
) -> Result<Var<'t, T>> {
    let rows = check_labels(&logits, labels, None)?;
    let shape = logits.shape();
    let flat = flatten_rows(logits, rows)?;
    let index = Indices::new(labels.to_vec(), [rows.rows, 1])?;
    let picked = flat.try_gather(1, &index)?.try_reshape([rows.rows])?;
    let per_row = flat.try_logsumexp(&[1], false)?.try_sub(picked)?;
    Ok(per_row.try_reshape(&shape.dims()[..shape.rank() - 1])?)
}

/// The logits' rows: how many, and how many classes.
#[derive(Clone, Copy)]
struct Rows {
    rows: usize,
    classes: usize,
}

/// Checks `[..., classes]` logits against one label per row (`ignore` may stand anywhere).
fn check_labels<T: Float>(
    logits: &Var<'_, T>,
    labels: &[usize],
    ignore: Option<usize>,
) -> Result<Rows> {
    let shape = logits.shape();
    let Some((&classes, leading)) = shape.dims().split_last().filter(|_| shape.rank() >= 2) else {
        return Err(NnError::Shape {
            op: "cross_entropy".to_string(),
            message: format!("expected logits [..., classes] of rank 2 or more, got {shape}"),
        });
    };
    let rows: usize = leading.iter().product();
    if labels.len() != rows {
        return Err(NnError::Shape {
            op: "cross_entropy".to_string(),
            message: format!(
                "{} labels for logits {shape} ({rows} rows of {classes} classes)",
                labels.len()
            ),
        });
    }
    let bad = labels
        .iter()
        .enumerate()
        .find(|(_, l)| **l >= classes && Some(**l) != ignore);
    if let Some((position, &label)) = bad {
        return Err(NnError::Label {
            op: "cross_entropy",
            position,
            label,
            classes,
        });
    }
    Ok(Rows { rows, classes })
}

/// The logits as `[rows, classes]`.
fn flatten_rows<'t, T: Float>(logits: Var<'t, T>, rows: Rows) -> Result<Var<'t, T>> {
    if logits.shape().rank() == 2 {
        return Ok(logits);
    }
    Ok(logits.try_reshape([rows.rows, rows.classes])?)
}

/// How a loss over rows is reduced, as PyTorch's `reduction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Reduction {
    /// The (weighted) mean over the rows that are not ignored.
    #[default]
    Mean,
    /// The sum over the rows.
    Sum,
    /// One loss per row, shape `[...]` (ignored rows give 0).
    None,
}

/// Cross-entropy with PyTorch's options: `F.cross_entropy(logits, labels, weight=...,
/// ignore_index=..., label_smoothing=..., reduction=...)`, classes on the last axis.
///
/// With log-probabilities `l = log_softmax(z)`, smoothing `e`, `C` classes, class weights `w`
/// (all 1 by default) and `a_i = w[y_i]` (0 for an ignored row), row i contributes
///
/// ```text
/// loss_i = (1 - e) * a_i * (-l_i[y_i])  +  (e / C) * [row i not ignored] * sum_c w_c (-l_i[c])
/// ```
///
/// and the mean divides the sum of the `loss_i` by `sum_i a_i`, **the sum of the weights of
/// the labels present, not the number of rows**: PyTorch's weighted mean, under which a batch of
/// rare-class examples is not down-weighted as a whole. Ignored rows count in neither the sum nor
/// the divisor. With every option at its default this is [`cross_entropy`] exactly.
///
/// ```
/// use autograd::Tape;
/// use nn::CrossEntropy;
/// use tensor::Tensor;
/// let tape = Tape::<f64>::new();
/// let logits = tape.leaf(Tensor::from_vec(vec![2.0, 0.0, 0.0, 1.0], [2, 2]).unwrap());
/// let loss = CrossEntropy::new()
///     .class_weights(vec![1.0, 3.0])
///     .unwrap()
///     .loss(logits, &[0, 1]);
/// let (nll0, nll1) = ((1.0 + (-2.0f64).exp()).ln(), (1.0 + (-1.0f64).exp()).ln());
/// assert!((loss.value().item() - (1.0 * nll0 + 3.0 * nll1) / 4.0).abs() < 1e-15);
///
/// // An ignored row (padding) contributes nothing, to the sum or the count.
/// let padded = CrossEntropy::new().ignore_index(9).loss(logits, &[0, 9]);
/// assert!((padded.value().item() - nll0).abs() < 1e-15);
/// ```
#[derive(Clone, Debug, PartialEq, Default)]
pub struct CrossEntropy {
    label_smoothing: f64,
    class_weights: Option<Vec<f64>>,
    ignore_index: Option<usize>,
    reduction: Reduction,
}

impl CrossEntropy {
    /// Plain cross-entropy, mean reduction.
    pub fn new() -> Self {
        CrossEntropy::default()
    }

    /// Mixes the one-hot target with the uniform distribution: `e` in [0, 1]
    /// (PyTorch's `label_smoothing`). Errors otherwise.
    pub fn label_smoothing(mut self, smoothing: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&smoothing) {
            return Err(NnError::Tensor(tensor::TensorError::InvalidArgument {
                op: "CrossEntropy::label_smoothing",
                message: format!("the smoothing must be in [0, 1], got {smoothing}"),
            }));
        }
        self.label_smoothing = smoothing;
        Ok(self)
    }

    /// A weight per class (PyTorch's `weight`); errors unless every weight is finite and >= 0.
    /// The number of weights is checked against the logits when the loss is computed.
    pub fn class_weights(mut self, weights: Vec<f64>) -> Result<Self> {
        if let Some((class, w)) = weights
            .iter()
            .enumerate()
            .find(|(_, w)| !(**w >= 0.0 && w.is_finite()))
        {
            return Err(NnError::Tensor(tensor::TensorError::InvalidArgument {
                op: "CrossEntropy::class_weights",
                message: format!("class weights must be finite and >= 0, class {class} has {w}"),
            }));
        }
        self.class_weights = Some(weights);
        Ok(self)
    }

    /// Rows whose label is `index` are left out (PyTorch's `ignore_index`, -100 there; any
    /// value here, in or out of `0..classes`).
    pub fn ignore_index(mut self, index: usize) -> Self {
        self.ignore_index = Some(index);
        self
    }

    /// The reduction (mean by default).
    pub fn reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// The loss; panics with [`try_loss`](CrossEntropy::try_loss)'s error.
    #[track_caller]
    pub fn loss<'t, T: Float>(&self, logits: Var<'t, T>, labels: &[usize]) -> Var<'t, T> {
        or_panic(self.try_loss(logits, labels))
    }

    /// The loss. Errors, before recording anything, for logits of rank < 2, a number of labels
    /// that is not the number of rows, a label outside `0..classes` that is not the ignored
    /// one, a number of class weights that is not the number of classes, and, for the mean, a
    /// zero divisor (every row ignored, or every present label of weight 0: PyTorch returns
    /// NaN there).
    pub fn try_loss<'t, T: Float>(
        &self,
        logits: Var<'t, T>,
        labels: &[usize],
    ) -> Result<Var<'t, T>> {
        let rows = check_labels(&logits, labels, self.ignore_index)?;
        let plain = self.label_smoothing == 0.0
            && self.class_weights.is_none()
            && !labels.iter().any(|&l| Some(l) == self.ignore_index);
        if plain {
            let per_row = try_cross_entropy_per_example(logits, labels)?;
            return Ok(match self.reduction {
                Reduction::Mean => per_row.try_mean_all()?,
                Reduction::Sum => per_row.try_sum_all()?,
                Reduction::None => per_row,
            });
        }
        let Rows { rows, classes } = rows;
        let weights: Vec<f64> = match &self.class_weights {
            Some(weights) if weights.len() != classes => {
                return Err(NnError::Shape {
                    op: "cross_entropy".to_string(),
                    message: format!(
                        "{} class weights for logits {} ({classes} classes)",
                        weights.len(),
                        logits.shape()
                    ),
                });
            }
            Some(weights) => weights.clone(),
            None => vec![1.0; classes],
        };
        let present: Vec<bool> = labels
            .iter()
            .map(|&l| Some(l) != self.ignore_index)
            .collect();
        // a_i = w[y_i] for a present row, 0 for an ignored one.
        let label_weight: Vec<f64> = labels
            .iter()
            .zip(&present)
            .map(|(&l, &p)| if p { weights[l] } else { 0.0 })
            .collect();
        let divisor: f64 = label_weight.iter().sum();
        if self.reduction == Reduction::Mean && divisor == 0.0 {
            return Err(NnError::Tensor(tensor::TensorError::InvalidArgument {
                op: "cross_entropy",
                message: "the weighted mean divides by the sum of the weights of the labels present, which is 0 (every row ignored, or of weight 0)".to_string(),
            }));
        }
        let shape = logits.shape();
        let tape = logits.tape();
        let e = self.label_smoothing;
        let log_probabilities = flatten_rows(logits, Rows { rows, classes })?.try_log_softmax(1)?;
        // Ignored rows gather class 0 with weight 0.
        let safe_labels: Vec<usize> = labels
            .iter()
            .zip(&present)
            .map(|(&l, &p)| if p { l } else { 0 })
            .collect();
        let index = Indices::new(safe_labels, [rows, 1])?;
        let picked = log_probabilities
            .try_gather(1, &index)?
            .try_reshape([rows])?;
        let constant = |values: Vec<f64>, dims: &[usize]| -> Result<Var<'t, T>> {
            let values = values.into_iter().map(T::from_f64).collect();
            Ok(tape.constant(tensor::Tensor::from_vec(values, dims)?))
        };
        let nll_scale = label_weight.iter().map(|a| -(1.0 - e) * a).collect();
        let mut per_row = picked.try_mul(constant(nll_scale, &[rows])?)?;
        if e > 0.0 {
            let class_row = constant(weights.clone(), &[1, classes])?;
            let weighted_sum = log_probabilities.try_mul(class_row)?.try_sum(&[1], false)?;
            let smooth_scale = present
                .iter()
                .map(|&p| if p { -e / classes as f64 } else { 0.0 })
                .collect();
            per_row = per_row.try_add(weighted_sum.try_mul(constant(smooth_scale, &[rows])?)?)?;
        }
        let result = match self.reduction {
            Reduction::Mean => per_row
                .try_sum_all()?
                .try_mul_scalar(T::from_f64(1.0 / divisor))?,
            Reduction::Sum => per_row.try_sum_all()?,
            Reduction::None => per_row.try_reshape(&shape.dims()[..shape.rank() - 1])?,
        };
        Ok(result)
    }
}

/// The mean cross-entropy of logits already computed (a model's
/// [`predict`](crate::Layer::predict) output), as a number: PyTorch's
/// `F.cross_entropy(logits, labels).item()` under `torch.no_grad()`. The same value as
/// [`cross_entropy`], with its errors.
///
/// ```
/// use tensor::Tensor;
/// let logits = Tensor::<f64>::zeros([2, 4]);
/// assert!((nn::cross_entropy_value(&logits, &[0, 3]).unwrap() - 4.0_f64.ln()).abs() < 1e-15);
/// ```
pub fn cross_entropy_value<T: Float>(logits: &tensor::Tensor<T>, labels: &[usize]) -> Result<f64> {
    let tape = autograd::Tape::new();
    tape.no_grad(|| {
        let loss = try_cross_entropy(tape.constant(logits.clone()), labels)?;
        Ok(loss.value().item().to_f64())
    })
}

/// The fraction of rows whose largest logit (on the last axis; the first of a tie) is at the
/// label: torchmetrics' `Accuracy`, `(logits.argmax(-1) == labels).float().mean()`. Errors if
/// the number of labels is not the number of rows or there are no rows.
///
/// ```
/// use tensor::Tensor;
/// let logits = Tensor::<f32>::from_vec(vec![0.1, 0.9, 0.8, 0.2, 0.3, 0.7], [3, 2]).unwrap();
/// assert_eq!(nn::accuracy(&logits, &[1, 0, 0]).unwrap(), 2.0 / 3.0);
/// ```
pub fn accuracy<T: Float>(logits: &tensor::Tensor<T>, labels: &[usize]) -> Result<f64> {
    let shape = logits.shape();
    let rows = match shape.dims().split_last() {
        Some((_, leading)) if shape.rank() >= 2 => leading.iter().product::<usize>(),
        _ => 0,
    };
    if rows == 0 || labels.len() != rows || shape.dims().last() == Some(&0) {
        return Err(NnError::Shape {
            op: "accuracy".to_string(),
            message: format!(
                "expected logits [..., classes] with one label per row, got {} labels for {shape}",
                labels.len()
            ),
        });
    }
    let classes = shape.dims()[shape.rank() - 1];
    let predicted = logits.reshape([rows, classes]).argmax(1);
    let correct = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
    Ok(correct as f64 / rows as f64)
}

/// Binary cross-entropy from logits and 0/1 targets of the same shape, averaged: mean of
/// `softplus(z) - y z`, the stable form of `-(y log sigmoid(z) + (1 - y) log(1 - sigmoid(z)))`
/// (finite at logits of ±1e4; gradient `(sigmoid(z) - y) / n`).
#[track_caller]
pub fn binary_cross_entropy_with_logits<'t, T: Float>(
    logits: Var<'t, T>,
    targets: Var<'t, T>,
) -> Var<'t, T> {
    or_panic(try_binary_cross_entropy_with_logits(logits, targets))
}

/// Fallible [`binary_cross_entropy_with_logits`].
pub fn try_binary_cross_entropy_with_logits<'t, T: Float>(
    logits: Var<'t, T>,
    targets: Var<'t, T>,
) -> Result<Var<'t, T>> {
    let (z, y) = (logits.shape(), targets.shape());
    if z != y {
        return Err(NnError::Shape {
            op: "binary_cross_entropy_with_logits".to_string(),
            message: format!("logits {z} and targets {y} differ"),
        });
    }
    let per_element = logits.try_softplus()?.try_sub(logits.try_mul(targets)?)?;
    Ok(per_element.try_mean_all()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::sample;
    use autograd::Tape;
    use autograd::gradcheck::assert_gradcheck_strict;
    use tensor::Tensor;

    #[test]
    fn loss_gradients() {
        let targets = sample(&[3, 4], 9);
        assert_gradcheck_strict(
            move |v| mse(v[0], v[0].tape().constant(targets.clone())),
            &[sample(&[3, 4], 1)],
        );
        assert_gradcheck_strict(|v| mse(v[0], v[1]), &[sample(&[5], 1), sample(&[5], 2)]);
        assert_gradcheck_strict(|v| cross_entropy(v[0], &[2, 0, 3]), &[sample(&[3, 4], 3)]);
        let binary = Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0], [2, 3]).unwrap();
        assert_gradcheck_strict(
            move |v| binary_cross_entropy_with_logits(v[0], v[0].tape().constant(binary.clone())),
            &[sample(&[2, 3], 4)],
        );
    }

    #[test]
    fn cross_entropy_gradient_is_softmax_minus_onehot_over_batch() {
        let tape = Tape::<f64>::new();
        let z = sample(&[3, 5], 6);
        let labels = [4, 0, 2];
        let logits = tape.leaf(z.clone());
        let grad = cross_entropy(logits, &labels).backward().wrt(logits);
        for (i, &label) in labels.iter().enumerate() {
            let row: Vec<f64> = (0..5).map(|j| z.get(&[i, j])).collect();
            let total: f64 = row.iter().map(|v| v.exp()).sum();
            for (j, value) in row.iter().enumerate() {
                let onehot = if j == label { 1.0 } else { 0.0 };
                let expected = (value.exp() / total - onehot) / 3.0;
                assert!((grad.get(&[i, j]) - expected).abs() < 1e-15, "[{i},{j}]");
            }
        }
    }

    #[test]
    fn losses_stay_finite_at_huge_logits() {
        let tape = Tape::<f32>::new();
        let logits =
            tape.leaf(Tensor::from_vec(vec![1e4, -1e4, 0.0, -1e4, 1e4, 0.0], [2, 3]).unwrap());
        let ce = cross_entropy(logits, &[1, 1]);
        assert_eq!(ce.value().item(), 0.0 + 2e4 / 2.0);
        let targets =
            tape.constant(Tensor::from_vec(vec![0.0, 1.0, 1.0, 1.0, 0.0, 0.0], [2, 3]).unwrap());
        let bce = binary_cross_entropy_with_logits(logits, targets);
        assert!(bce.value().item().is_finite());
        let total = ce + bce;
        let grad = total.backward().wrt(logits).to_vec();
        assert!(grad.iter().all(|g| g.is_finite()), "{grad:?}");
        // BCE gradient (sigmoid(z) - y) / 6 at z = 1e4, y = 0 is 1/6 exactly in f32.
        assert!(((grad[0] - 1.0 / 2.0) - 1.0 / 6.0).abs() < 1e-6);
    }

    #[test]
    fn bad_labels_and_shapes_are_named() {
        let tape = Tape::<f32>::new();
        let logits = tape.leaf(Tensor::zeros([2, 3]));
        let before = tape.len();
        assert_eq!(
            try_cross_entropy(logits, &[0, 3]).unwrap_err().to_string(),
            "cross_entropy: label 3 at position 1 is out of range for 3 classes (0..3)"
        );
        assert_eq!(
            try_cross_entropy(logits, &[0]).unwrap_err().to_string(),
            "cross_entropy: 1 labels for logits [2, 3] (2 rows of 3 classes)"
        );
        let other = tape.constant(Tensor::zeros([3, 2]));
        assert_eq!(
            try_mse(logits, other).unwrap_err().to_string(),
            "mse: prediction [2, 3] and target [3, 2] differ"
        );
        assert_eq!(tape.len(), before + 1);
    }
}
