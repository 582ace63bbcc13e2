//! [`Embedding`]: a learnable table of vectors looked up by integer index.

use autograd::Var;
use rand::Rng;
use tensor::{Float, Shape, TensorError};

use crate::error::{NnError, Result};
use crate::init::Init;
use crate::layer::Layer;
use crate::params::{Context, ParamId, ParamStore, Role};

/// A table `[vocabulary, dim]` whose rows are looked up by index, as PyTorch's
/// `nn.Embedding(vocabulary, dim)`: indices of any shape `[...]` give `[..., dim]`. The table
/// is `{name}.weight`, drawn from N(0, 1) as PyTorch does; it has [`Role::Embedding`], so it is
/// saved as `[vocabulary, dim]` (not transposed like a dense weight) and is not under the L1/L2
/// penalties unless [`ParamStore::set_penalized`] says so. The lookup is `index_select`, whose
/// gradient adds each row's incoming gradients (a row used twice gets both).
///
/// Indices are integers, so the main entry point is [`lookup`](Embedding::lookup). As a
/// [`Layer`] (first in a [`Sequential`](crate::Sequential)) it takes a Var of whole numbers in
/// `0..vocabulary` and refuses anything else by name.
///
/// ```
/// use autograd::Tape;
/// use nn::{Context, Embedding, Mode, ParamStore};
/// use nn::rand::SeedableRng;
/// let mut rng = nn::rand::rngs::StdRng::seed_from_u64(0);
/// let mut store = ParamStore::<f64>::new();
/// let embedding = Embedding::new(&mut store, "words", 10, 3, &mut rng).unwrap();
/// let tape = Tape::new();
/// let mut context = Context::new(&tape, &mut store, Mode::Train);
/// let vectors = embedding.lookup(&mut context, &[4, 1, 4, 0], [2, 2]).unwrap();
/// assert_eq!(vectors.shape().dims(), &[2, 2, 3]);
/// let gradients = context.gradients(&vectors.sum_all().backward());
/// let table = gradients.get(embedding.weight()).unwrap().to_vec();
/// assert_eq!(&table[12..15], &[2.0, 2.0, 2.0]); // row 4 was used twice
/// assert_eq!(&table[6..9], &[0.0, 0.0, 0.0]); // row 2 not at all
/// ```
#[derive(Clone, Debug)]
pub struct Embedding {
    name: String,
    weight: ParamId,
    vocabulary: usize,
    dim: usize,
}

impl Embedding {
    /// A table of `vocabulary` vectors of `dim`, drawn from N(0, 1). Errors, adding nothing, if
    /// the name is taken or a size is 0.
    pub fn new<T: Float, R: Rng + ?Sized>(
        store: &mut ParamStore<T>,
        name: &str,
        vocabulary: usize,
        dim: usize,
        rng: &mut R,
    ) -> Result<Self> {
        Embedding::with_init(store, name, vocabulary, dim, Init::Normal { std: 1.0 }, rng)
    }

    /// A table drawn by `init` (fan-in `vocabulary`, fan-out `dim`).
    pub fn with_init<T: Float, R: Rng + ?Sized>(
        store: &mut ParamStore<T>,
        name: &str,
        vocabulary: usize,
        dim: usize,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        let weight_name = format!("{name}.weight");
        if store.find(&weight_name).is_some() {
            return Err(NnError::DuplicateName { name: weight_name });
        }
        if vocabulary == 0 || dim == 0 {
            return Err(NnError::Tensor(TensorError::InvalidArgument {
                op: "Embedding::new",
                message: format!(
                    "'{name}' needs a vocabulary and a dimension of at least 1, got {vocabulary} and {dim}"
                ),
            }));
        }
        let table = init.sample([vocabulary, dim], vocabulary, dim, rng)?;
        let weight = store.add(weight_name, Role::Embedding, table)?;
        Ok(Embedding {
            name: name.to_string(),
            weight,
            vocabulary,
            dim,
        })
    }

    /// The table's id.
    pub fn weight(&self) -> ParamId {
        self.weight
    }

    /// Number of vectors.
    pub fn vocabulary(&self) -> usize {
        self.vocabulary
    }

    /// Length of each vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The rows at `indices`, laid out in `shape` (which must hold `indices.len()` elements),
    /// as `[shape..., dim]`. Errors, recording nothing, for an index outside `0..vocabulary` or
    /// a shape of another size.
    pub fn lookup<'t, T: Float>(
        &self,
        context: &mut Context<'t, '_, T>,
        indices: &[usize],
        shape: impl Into<Shape>,
    ) -> Result<Var<'t, T>> {
        let shape = shape.into();
        if shape.numel() != indices.len() {
            return Err(self.error(format!(
                "{} indices do not fill shape {shape}",
                indices.len()
            )));
        }
        if let Some((position, &index)) = indices
            .iter()
            .enumerate()
            .find(|(_, i)| **i >= self.vocabulary)
        {
            return Err(self.error(format!(
                "index {index} at position {position} is outside the vocabulary 0..{}",
                self.vocabulary
            )));
        }
        let rows = context.param(self.weight).try_index_select(0, indices)?;
        let mut dims = shape.dims().to_vec();
        dims.push(self.dim);
        Ok(rows.try_reshape(dims)?)
    }

    fn error(&self, message: String) -> NnError {
        NnError::Shape {
            op: format!("Embedding '{}'", self.name),
            message,
        }
    }
}

impl<T: Float> Layer<T> for Embedding {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        let mut dims = input.dims().to_vec();
        dims.push(self.dim);
        Ok(Shape::from(dims))
    }

    /// Looks up the rows at `x`'s values, which must be whole numbers in `0..vocabulary`.
    fn try_forward<'t>(
        &self,
        context: &mut Context<'t, '_, T>,
        x: Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        let values = x.value().to_vec();
        let mut indices = Vec::with_capacity(values.len());
        for (position, value) in values.iter().enumerate() {
            let v = value.to_f64();
            if !(v >= 0.0 && v.fract() == 0.0 && v < self.vocabulary as f64) {
                return Err(self.error(format!(
                    "the input holds indices, whole numbers in 0..{}; position {position} has {v}",
                    self.vocabulary
                )));
            }
            indices.push(v as usize);
        }
        self.lookup(context, &indices, x.shape())
    }
}
