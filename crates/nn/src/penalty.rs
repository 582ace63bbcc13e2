//! L2 and L1 weight penalties (chapter section 2), as graph expressions added to the loss.

use autograd::Var;
use tensor::{Float, Tensor, TensorError};

use crate::error::{NnError, Result, or_panic};
use crate::params::Context;

/// lambda * sum over every penalized parameter W of ||W||^2 (the squared Frobenius norm).
/// [`ParamOptions::penalized`](crate::ParamOptions::penalized) says which: dense weights by
/// default, not biases, batch-norm parameters or embeddings; frozen parameters are included
/// (their term is a constant). Its gradient, 2 lambda W, comes from the
/// tape.
///
/// ```
/// use autograd::Tape;
/// use nn::{Context, Dense, Init, Mode, ParamStore};
/// use rand::SeedableRng;
/// let mut store = ParamStore::<f64>::new();
/// Dense::new(&mut store, "d", 2, 2, Init::Constant(0.5), &mut rand::rngs::StdRng::seed_from_u64(0)).unwrap();
/// let tape = Tape::new();
/// let context = Context::new(&tape, &mut store, Mode::Train);
/// assert_eq!(nn::l2_penalty(&context, 0.1).value().item(), 0.1 * 4.0 * 0.25);
/// ```
#[track_caller]
pub fn l2_penalty<'t, T: Float>(context: &Context<'t, '_, T>, lambda: f64) -> Var<'t, T> {
    or_panic(try_l2_penalty(context, lambda))
}

/// Fallible [`l2_penalty`]: errors unless `lambda` is finite and >= 0 (a NaN lambda would turn
/// every weight into NaN at the next step), and in anomaly mode.
pub fn try_l2_penalty<'t, T: Float>(
    context: &Context<'t, '_, T>,
    lambda: f64,
) -> Result<Var<'t, T>> {
    penalty("l2_penalty", context, lambda, squared_norm)
}

/// lambda * sum over every penalized parameter W of sum |w| (dense weights by default, as for
/// [`l2_penalty`]). Its gradient is lambda sign(W), with sign(0) = 0.
#[track_caller]
pub fn l1_penalty<'t, T: Float>(context: &Context<'t, '_, T>, lambda: f64) -> Var<'t, T> {
    or_panic(try_l1_penalty(context, lambda))
}

/// Fallible [`l1_penalty`]: errors unless `lambda` is finite and >= 0, and in anomaly mode.
pub fn try_l1_penalty<'t, T: Float>(
    context: &Context<'t, '_, T>,
    lambda: f64,
) -> Result<Var<'t, T>> {
    penalty("l1_penalty", context, lambda, |w| {
        w.try_abs()?.try_sum_all()
    })
}

/// ||w||^2, without keeping w * w on the tape (see [`Var::sum_of_squares`]).
fn squared_norm<T: Float>(w: Var<'_, T>) -> autograd::Result<Var<'_, T>> {
    let axes: Vec<usize> = (0..w.shape().rank()).collect();
    w.try_sum_of_squares(&axes, false)
}

fn penalty<'t, T: Float>(
    op: &'static str,
    context: &Context<'t, '_, T>,
    lambda: f64,
    norm: impl Fn(Var<'t, T>) -> autograd::Result<Var<'t, T>>,
) -> Result<Var<'t, T>> {
    if !(lambda >= 0.0 && lambda.is_finite()) {
        return Err(NnError::Tensor(TensorError::InvalidArgument {
            op,
            message: format!("lambda must be finite and >= 0, got {lambda}"),
        }));
    }
    let mut total: Option<Var<'t, T>> = None;
    for (_, w) in context.penalized() {
        let term = norm(w)?;
        total = Some(match total {
            None => term,
            Some(sum) => sum.try_add(term)?,
        });
    }
    let total = total.unwrap_or_else(|| context.tape().constant(Tensor::scalar(T::ZERO)));
    Ok(total.try_mul_scalar(T::from_f64(lambda))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch_norm::BatchNorm1d;
    use crate::dense::Dense;
    use crate::init::Init;
    use crate::params::{Mode, ParamStore};
    use crate::test_support::{away_from_zero, rng, sample};
    use autograd::Tape;
    use autograd::gradcheck::assert_gradcheck_strict;

    fn model() -> (ParamStore<f64>, Dense, Dense, BatchNorm1d) {
        let mut store = ParamStore::new();
        let a = Dense::new(&mut store, "a", 3, 2, Init::XavierNormal, &mut rng(0)).unwrap();
        let bn = BatchNorm1d::new(&mut store, "bn", 2).unwrap();
        let b = Dense::new(&mut store, "b", 2, 2, Init::XavierNormal, &mut rng(1)).unwrap();
        store.set_value(a.bias(), sample(&[2], 5));
        (store, a, b, bn)
    }

    #[test]
    fn l2_gradient_is_two_lambda_w_on_weights_and_zero_elsewhere() {
        let (mut store, a, b, bn) = model();
        let tape = Tape::new();
        let context = Context::new(&tape, &mut store, Mode::Train);
        let lambda = 0.3;
        let grads = context.gradients(&l2_penalty(&context, lambda).backward());
        for dense in [&a, &b] {
            let w = context.store().value(dense.weight());
            assert!(grads.get(dense.weight()).unwrap().allclose(
                &w.mul_scalar(2.0 * lambda),
                1e-15,
                0.0
            ));
            assert_eq!(grads.get(dense.bias()).unwrap().to_vec(), vec![0.0; 2]);
        }
        assert_eq!(grads.get(bn.scale()).unwrap().to_vec(), vec![0.0; 2]);
        assert_eq!(grads.get(bn.shift()).unwrap().to_vec(), vec![0.0; 2]);
    }

    #[test]
    fn l1_gradient_is_lambda_sign_w() {
        let (mut store, a, ..) = model();
        store.set_value(a.weight(), away_from_zero(&[3, 2], 4));
        let tape = Tape::new();
        let context = Context::new(&tape, &mut store, Mode::Train);
        let grads = context.gradients(&l1_penalty(&context, 0.5).backward());
        let expected = context.store().value(a.weight()).sign().mul_scalar(0.5);
        assert_eq!(grads.get(a.weight()).unwrap(), &expected);
    }

    #[test]
    fn penalties_pass_gradcheck() {
        let (store, ..) = model();
        let params: Vec<_> = store
            .trainable()
            .map(|id| store.value(id).clone())
            .collect();
        for l1 in [false, true] {
            let store = store.clone();
            assert_gradcheck_strict(
                move |v| {
                    let mut store = store.clone();
                    let context =
                        Context::with_vars(v[0].tape(), &mut store, v, Mode::Train).unwrap();
                    if l1 {
                        l1_penalty(&context, 0.7)
                    } else {
                        l2_penalty(&context, 0.7)
                    }
                },
                &params,
            );
        }
    }
}
