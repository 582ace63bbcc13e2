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

/// Softmax cross-entropy from logits `[batch, classes]` and integer labels, averaged over the
/// batch: mean over i of `logsumexp(z_i) - z_i[label_i]`. Written with `logsumexp`, so logits
/// of ±1e4 give a finite loss and gradient; the gradient is `(softmax(z) - onehot) / batch`.
///
/// ```
/// use autograd::Tape;
/// use tensor::Tensor;
/// let tape = Tape::<f64>::new();
/// let logits = tape.leaf(Tensor::zeros([2, 4]));
/// let loss = nn::cross_entropy(logits, &[0, 3]);
/// assert!((loss.value().item() - 4.0_f64.ln()).abs() < 1e-15);
/// ```
#[track_caller]
pub fn cross_entropy<'t, T: Float>(logits: Var<'t, T>, labels: &[usize]) -> Var<'t, T> {
    or_panic(try_cross_entropy(logits, labels))
}

/// Fallible [`cross_entropy`]: errors name a label outside `0..classes` or a batch-size
/// mismatch, before anything is recorded.
pub fn try_cross_entropy<'t, T: Float>(logits: Var<'t, T>, labels: &[usize]) -> Result<Var<'t, T>> {
    Ok(try_cross_entropy_per_example(logits, labels)?.try_mean_all()?)
}

/// Softmax cross-entropy of each example, without the batch mean (PyTorch's
/// `reduction='none'`): shape `[batch]`, entry i `logsumexp(z_i) - z_i[label_i]`. The input of
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
    let shape = logits.shape();
    let &[batch, classes] = shape.dims() else {
        return Err(NnError::Shape {
            op: "cross_entropy".to_string(),
            message: format!("expected logits [batch, classes], got {shape}"),
        });
    };
    if labels.len() != batch {
        return Err(NnError::Shape {
            op: "cross_entropy".to_string(),
            message: format!("{} labels for logits {shape}", labels.len()),
        });
    }
    if let Some((position, &label)) = labels.iter().enumerate().find(|(_, l)| **l >= classes) {
        return Err(NnError::Label {
            op: "cross_entropy",
            position,
            label,
            classes,
        });
    }
    let index = Indices::new(labels.to_vec(), [batch, 1])?;
    let picked = logits.try_gather(1, &index)?.try_reshape([batch])?;
    Ok(logits.try_logsumexp(&[1], false)?.try_sub(picked)?)
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
            "cross_entropy: 1 labels for logits [2, 3]"
        );
        let other = tape.constant(Tensor::zeros([3, 2]));
        assert_eq!(
            try_mse(logits, other).unwrap_err().to_string(),
            "mse: prediction [2, 3] and target [3, 2] differ"
        );
        assert_eq!(tape.len(), before + 1);
    }
}
