//! Per-sample parameter gradients; the docs are on [`PerSampleParamGradients`].

use autograd::{PerSampleGradients, Var};
use tensor::{Float, Tensor};

use crate::error::{NnError, Result};
use crate::params::{Context, ParamGradients, ParamId, StoreId};

/// The per-sample gradients of a store's trainable parameters, by [`ParamId`].
///
/// Per-sample gradients of a model's parameters, and differentially private SGD's clipped
/// aggregate, from one backward pass (built on [`autograd::per_sample`], whose docs give the
/// method and the errors).
#[derive(Clone, Debug)]
pub struct PerSampleParamGradients<T: Float = f32> {
    store: StoreId,
    entries: usize,
    ids: Vec<ParamId>,
    gradients: PerSampleGradients<T>,
}

impl<T: Float> PerSampleParamGradients<T> {
    /// The batch size B.
    pub fn batch(&self) -> usize {
        self.gradients.batch()
    }

    fn position(&self, id: ParamId) -> Result<usize> {
        self.ids
            .iter()
            .position(|&known| known == id)
            .ok_or_else(|| NnError::Shape {
                op: "PerSampleParamGradients::get".to_string(),
                message: format!(
                    "parameter #{} is not a trainable parameter of this store",
                    id.index()
                ),
            })
    }

    /// One parameter's per-sample gradients, `[B, ...parameter shape]` (materialised).
    pub fn get(&self, id: ParamId) -> Result<Tensor<T>> {
        Ok(self.gradients.get(self.position(id)?))
    }

    /// Each example's gradient norm over all trainable parameters (`[B]`), from the factors.
    pub fn norms(&self) -> Tensor<T> {
        self.gradients.norms()
    }

    /// Differentially private SGD's aggregate (before noise): the sum over examples of each
    /// example's gradient clipped to norm `max_norm` (Opacus's factor `min(1, C / (norm +
    /// 1e-6))`), as gradients an optimizer takes. Divide by the batch (and add noise) as your
    /// privacy accounting requires.
    pub fn clipped_sum(&self, max_norm: T) -> ParamGradients<T> {
        let mut values: Vec<Option<Tensor<T>>> = vec![None; self.entries];
        for (id, sum) in self.ids.iter().zip(self.gradients.clipped_sum(max_norm)) {
            values[id.index()] = Some(sum);
        }
        ParamGradients::from_parts(self.store, values)
    }
}

impl<'t, T: Float> Context<'t, '_, T> {
    /// The per-sample gradients of every trainable parameter for per-example `losses`
    /// (shape `[batch]`, such as [`cross_entropy_per_example`](crate::cross_entropy_per_example)),
    /// from one backward pass. Dense layers, activations, dropout and per-example losses are
    /// supported; a layer that mixes examples (batch norm in training mode) is a named error.
    ///
    /// ```
    /// use autograd::Tape;
    /// use nn::{Activation, Context, Dense, Init, Layer, Mode, ParamStore, Sequential};
    /// use rand::SeedableRng;
    /// use tensor::Tensor;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let mut store = ParamStore::<f64>::new();
    /// let mut model = Sequential::new();
    /// model.push(Dense::new(&mut store, "hidden", 3, 4, Init::HeNormal, &mut rng).unwrap());
    /// model.push(Activation::Tanh);
    /// model.push(Dense::new(&mut store, "output", 4, 2, Init::HeNormal, &mut rng).unwrap());
    /// let x = Tensor::random_normal([5, 3], 0.0, 1.0, &mut rng).unwrap();
    /// let tape = Tape::new();
    /// let mut context = Context::new(&tape, &mut store, Mode::Eval);
    /// let logits = model.forward(&mut context, tape.constant(x));
    /// let losses = nn::cross_entropy_per_example(logits, &[0, 1, 1, 0, 1]);
    /// let per_sample = context.try_per_sample_gradients(losses).unwrap();
    /// assert_eq!(per_sample.norms().dims(), &[5]);
    /// ```
    pub fn try_per_sample_gradients(
        &self,
        losses: Var<'t, T>,
    ) -> Result<PerSampleParamGradients<T>> {
        let (ids, vars): (Vec<ParamId>, Vec<Var<'t, T>>) =
            self.trainable().map(|(id, _, var)| (id, var)).unzip();
        let gradients = losses.try_per_sample_gradients(&vars)?;
        Ok(PerSampleParamGradients {
            store: self.store().id(),
            entries: self.store().len(),
            ids,
            gradients,
        })
    }
}
