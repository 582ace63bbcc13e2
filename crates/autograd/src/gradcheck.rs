//! Gradient checking: the tape's gradients against central finite differences, in f64.
//!
//! Modelled on PyTorch's `torch.autograd.gradcheck`, as a diagnostic instrument rather than a
//! yes/no test: a failure says which input, which element, which output element, both values,
//! and the worst absolute and relative errors over the whole check.
//!
//! ```
//! use autograd::gradcheck::{gradcheck, GradcheckOptions};
//! use tensor::Tensor;
//!
//! let x = Tensor::from_vec(vec![0.3, -1.2, 2.0], [3]).unwrap();
//! let report = gradcheck(|v| (v[0].tanh() * v[0]).sum_all(), &[x], &GradcheckOptions::default()).unwrap();
//! assert!(report.max_abs_error < 1e-8);
//! ```
//!
//! What is checked, in order:
//! 1. every input is `f64` (finite differences in `f32` are too noisy to be a test);
//! 2. each gradient has its input's shape;
//! 3. a zero output gradient gives zero input gradients;
//! 4. running backward twice gives bit-identical gradients;
//! 5. every entry of the Jacobian: `|analytical - numerical| <= atol + rtol * |numerical|`,
//!    with numerical = (f(x + eps e) - f(x - eps e)) / (2 eps) for each logical element e.
//!
//! Inputs may be any views. The analytical pass uses them as given (so strided kernels and
//! their backward rules are exercised); perturbations are applied to a materialised copy of
//! the input's logical elements, so a broadcast (stride-0) input is never perturbed through
//! its aliases: each logical element moves alone. [`Report::materialised`] lists such inputs.

use std::fmt;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tensor::{DType, Float, Shape, Tensor};

use crate::error::AutogradError;
use crate::tape::{Tape, Var};

/// Tolerances and switches for [`gradcheck`]. The defaults are PyTorch's.
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckOptions {
    /// Finite-difference step (default 1e-6).
    pub eps: f64,
    /// Absolute tolerance (default 1e-5).
    pub atol: f64,
    /// Relative tolerance, against |numerical| (default 1e-3).
    pub rtol: f64,
    /// Check that a zero output gradient gives zero input gradients (default true).
    pub check_zero_gradient: bool,
    /// Check that backward twice gives identical gradients (default true).
    pub check_determinism: bool,
    /// A name for the function under test, used in messages (default "gradcheck").
    pub label: String,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
            check_zero_gradient: true,
            check_determinism: true,
            label: "gradcheck".to_string(),
        }
    }
}

impl GradcheckOptions {
    /// Default options with a label for messages.
    pub fn labelled(label: impl Into<String>) -> Self {
        GradcheckOptions {
            label: label.into(),
            ..GradcheckOptions::default()
        }
    }

    /// Tolerances of 1e-6 (absolute and relative) instead of PyTorch's 1e-5 and 1e-3. The
    /// default relative tolerance lets a rule that is wrong by 0.1% pass; in f64 with
    /// eps = 1e-6 the finite-difference error of a smooth function at moderate values is near
    /// 1e-9, so these bounds still leave a wide margin. This crate's own tests use them.
    pub fn strict(label: impl Into<String>) -> Self {
        GradcheckOptions {
            atol: 1e-6,
            rtol: 1e-6,
            label: label.into(),
            ..GradcheckOptions::default()
        }
    }
}

/// What a passing check measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Number of inputs.
    pub inputs: usize,
    /// Number of output elements (rows of the Jacobian).
    pub outputs: usize,
    /// Number of Jacobian entries compared.
    pub entries_checked: usize,
    /// Largest |analytical - numerical|.
    pub max_abs_error: f64,
    /// Largest |analytical - numerical| / |numerical| over entries with a non-zero numerical
    /// value.
    pub max_rel_error: f64,
    /// Inputs that were broadcast views, perturbed element-wise on a materialised copy.
    pub materialised: Vec<usize>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gradcheck passed: {} inputs, {} outputs, {} Jacobian entries; worst absolute error {:.3e}, worst relative error {:.3e}",
            self.inputs, self.outputs, self.entries_checked, self.max_abs_error, self.max_rel_error
        )?;
        if !self.materialised.is_empty() {
            write!(
                f,
                "; broadcast inputs materialised for perturbation: {:?}",
                self.materialised
            )?;
        }
        Ok(())
    }
}

/// Why a gradient check failed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum GradcheckError {
    /// An input is not `f64`.
    NotF64 {
        /// The check's label.
        label: String,
        /// The element type given.
        dtype: DType,
    },
    /// Recording or backward failed.
    Autograd {
        /// The check's label.
        label: String,
        /// The underlying error.
        error: Box<AutogradError>,
    },
    /// A gradient does not have its input's shape.
    GradientShape {
        /// The check's label.
        label: String,
        /// The input's position.
        input: usize,
        /// The input's shape.
        expected: Shape,
        /// The gradient's shape.
        actual: Shape,
    },
    /// A zero output gradient gave a non-zero input gradient.
    NonZeroForZeroGradient {
        /// The check's label.
        label: String,
        /// The input's position.
        input: usize,
        /// The element (multi-index into the input).
        element: Vec<usize>,
        /// The value found.
        value: f64,
    },
    /// Two backward passes disagreed.
    Nondeterministic {
        /// The check's label.
        label: String,
        /// The input's position.
        input: usize,
        /// The element.
        element: Vec<usize>,
        /// First pass.
        first: f64,
        /// Second pass.
        second: f64,
    },
    /// An analytical Jacobian entry differs from the numerical one beyond the tolerance.
    Mismatch {
        /// The check's label.
        label: String,
        /// The input's position.
        input: usize,
        /// The element of the input.
        element: Vec<usize>,
        /// The element of the output.
        output_element: Vec<usize>,
        /// The tape's value.
        analytical: f64,
        /// The finite-difference value.
        numerical: f64,
        /// Largest absolute error over the whole check.
        worst_abs: f64,
        /// Largest relative error over the whole check.
        worst_rel: f64,
    },
    /// The first derivative recorded with `backward_create_graph` differs from the ordinary
    /// backward pass's (a custom op's two rules disagree).
    FirstDerivativeMismatch {
        /// The check's label.
        label: String,
        /// Position in the flattened, concatenated first derivative.
        element: usize,
        /// From the ordinary backward pass.
        backward: f64,
        /// From `backward_create_graph`.
        create_graph: f64,
    },
    /// The directional check failed while the full Jacobian check passed.
    DirectionalMismatch {
        /// The check's label.
        label: String,
        /// The direction's number.
        direction: usize,
        /// u^T J v from the tape.
        analytical: f64,
        /// u^T J v from finite differences.
        numerical: f64,
    },
}

impl fmt::Display for GradcheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GradcheckError::NotF64 { label, dtype } => {
                write!(
                    f,
                    "{label}: inputs must be f64 (finite differences in {dtype} are too noisy), got {dtype}"
                )
            }
            GradcheckError::Autograd { label, error } => write!(f, "{label}: {error}"),
            GradcheckError::GradientShape {
                label,
                input,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "{label}: the gradient of input {input} has shape {actual}, but the input has shape {expected}"
                )
            }
            GradcheckError::NonZeroForZeroGradient {
                label,
                input,
                element,
                value,
            } => write!(
                f,
                "{label}: a zero output gradient gave {value:e} at input {input}, element {element:?} (expected 0)"
            ),
            GradcheckError::Nondeterministic {
                label,
                input,
                element,
                first,
                second,
            } => write!(
                f,
                "{label}: backward is not deterministic: input {input}, element {element:?}: {first:e} then {second:e}"
            ),
            GradcheckError::Mismatch {
                label,
                input,
                element,
                output_element,
                analytical,
                numerical,
                worst_abs,
                worst_rel,
            } => write!(
                f,
                "{label}: Jacobian mismatch for input {input}, element {element:?}, output element {output_element:?}: \
                 analytical {analytical:e} vs numerical {numerical:e}; \
                 worst absolute error {worst_abs:.3e}, worst relative error {worst_rel:.3e}"
            ),
            GradcheckError::FirstDerivativeMismatch {
                label,
                element,
                backward,
                create_graph,
            } => write!(
                f,
                "{label}: the first derivative from backward_create_graph ({create_graph:e}) differs from backward's \
                 ({backward:e}) at element {element} of the flattened gradient"
            ),
            GradcheckError::DirectionalMismatch {
                label,
                direction,
                analytical,
                numerical,
            } => write!(
                f,
                "{label}: directional check {direction} failed: u^T J v analytical {analytical:e} vs numerical {numerical:e} \
                 (the full Jacobian check passed; the function may be non-smooth at this point)"
            ),
        }
    }
}

impl std::error::Error for GradcheckError {}

/// The multi-index of flat position `flat` in a row-major `shape`.
fn unravel(shape: &Shape, mut flat: usize) -> Vec<usize> {
    let mut index = vec![0; shape.rank()];
    for (axis, &d) in shape.dims().iter().enumerate().rev() {
        index[axis] = flat % d.max(1);
        flat /= d.max(1);
    }
    index
}

/// True if some element of the layout is addressed twice (a broadcast view).
fn has_aliases<T: Float>(tensor: &Tensor<T>) -> bool {
    tensor
        .dims()
        .iter()
        .zip(tensor.strides())
        .any(|(&d, &s)| d > 1 && s == 0)
}

/// Computes the values whose finite differences give the numerical Jacobian, from the inputs
/// (one of them perturbed). `None` means: evaluate the function under test itself.
type Reference<'a, T> = Option<&'a ReferenceFn<'a, T>>;

/// See [`Reference`].
type ReferenceFn<'a, T> = dyn Fn(&[Tensor<T>]) -> Result<Vec<f64>, AutogradError> + 'a;

struct Checker<'a, T: Float, F> {
    f: F,
    reference: Reference<'a, T>,
    inputs: &'a [Tensor<T>],
    options: &'a GradcheckOptions,
}

/// The function under test may fail (a create-graph backward inside `gradgradcheck` can); a
/// failure becomes [`GradcheckError::Autograd`].
impl<T: Float, F> Checker<'_, T, F>
where
    F: for<'t> Fn(&[Var<'t, T>]) -> Result<Var<'t, T>, AutogradError>,
{
    fn error(&self, error: AutogradError) -> GradcheckError {
        GradcheckError::Autograd {
            label: self.options.label.clone(),
            error: Box::new(error),
        }
    }

    /// f at `inputs` with input `which` replaced by `replacement`, as f64 values.
    fn evaluate(&self, which: usize, replacement: &Tensor<T>) -> Result<Vec<f64>, GradcheckError> {
        if let Some(reference) = self.reference {
            let mut inputs = self.inputs.to_vec();
            inputs[which] = replacement.clone();
            return reference(&inputs).map_err(|e| self.error(e));
        }
        let tape = Tape::new();
        let vars: Vec<Var<'_, T>> = self
            .inputs
            .iter()
            .enumerate()
            .map(|(i, x)| {
                tape.leaf(if i == which {
                    replacement.clone()
                } else {
                    x.clone()
                })
            })
            .collect();
        let output = (self.f)(&vars).map_err(|e| self.error(e))?;
        Ok(output.value().to_vec().iter().map(|v| v.to_f64()).collect())
    }

    /// Per input, the gradient for `seed` as f64 values (zeros where no gradient flows).
    fn gradients(
        &self,
        output: Var<'_, T>,
        leaves: &[Var<'_, T>],
        seed: Tensor<T>,
    ) -> Result<Vec<Vec<f64>>, GradcheckError> {
        let grads = match output.try_backward_with(seed) {
            Ok(grads) => Some(grads),
            // Nothing depends on a leaf: every gradient is zero.
            Err(AutogradError::NoGradientPath) => None,
            Err(error) => return Err(self.error(error)),
        };
        leaves
            .iter()
            .enumerate()
            .map(|(i, &leaf)| {
                let expected = self.inputs[i].shape().clone();
                let gradient = grads.as_ref().and_then(|g| g.get(leaf)).cloned();
                match gradient {
                    None => Ok(vec![0.0; expected.numel()]),
                    Some(g) if g.shape() != &expected => Err(GradcheckError::GradientShape {
                        label: self.options.label.clone(),
                        input: i,
                        expected,
                        actual: g.shape().clone(),
                    }),
                    Some(g) => Ok(g.to_vec().iter().map(|v| v.to_f64()).collect()),
                }
            })
            .collect()
    }

    fn run(&self) -> Result<Report, GradcheckError> {
        let label = &self.options.label;
        if T::DTYPE != DType::F64 {
            return Err(GradcheckError::NotF64 {
                label: label.clone(),
                dtype: T::DTYPE,
            });
        }
        let tape = Tape::new();
        let leaves: Vec<Var<'_, T>> = self.inputs.iter().map(|x| tape.leaf(x.clone())).collect();
        let output = (self.f)(&leaves).map_err(|e| self.error(e))?;
        let output_shape = output.shape();
        let outputs = output_shape.numel();

        if self.options.check_zero_gradient {
            let zero = self.gradients(output, &leaves, Tensor::zeros(output_shape.clone()))?;
            for (input, values) in zero.iter().enumerate() {
                if let Some((flat, &value)) = values.iter().enumerate().find(|(_, v)| **v != 0.0) {
                    return Err(GradcheckError::NonZeroForZeroGradient {
                        label: label.clone(),
                        input,
                        element: unravel(self.inputs[input].shape(), flat),
                        value,
                    });
                }
            }
        }

        // Analytical Jacobian, one backward pass per output element: rows[j][input][element].
        let mut rows = Vec::with_capacity(outputs);
        for j in 0..outputs {
            let mut seed = vec![T::ZERO; outputs];
            seed[j] = T::ONE;
            let seed =
                Tensor::from_vec(seed, output_shape.clone()).expect("seed has the output's size");
            let row = self.gradients(output, &leaves, seed.clone())?;
            if self.options.check_determinism && j == 0 {
                let again = self.gradients(output, &leaves, seed)?;
                for (input, (first, second)) in row.iter().zip(&again).enumerate() {
                    if let Some(flat) = first
                        .iter()
                        .zip(second)
                        .position(|(a, b)| a.to_bits() != b.to_bits())
                    {
                        return Err(GradcheckError::Nondeterministic {
                            label: label.clone(),
                            input,
                            element: unravel(self.inputs[input].shape(), flat),
                            first: first[flat],
                            second: second[flat],
                        });
                    }
                }
            }
            rows.push(row);
        }

        // Numerical Jacobian, column by column, and the comparison.
        let (mut worst_abs, mut worst_rel, mut entries) = (0.0_f64, 0.0_f64, 0usize);
        let mut failure: Option<(f64, GradcheckError)> = None;
        let eps = self.options.eps;
        for (input, x) in self.inputs.iter().enumerate() {
            let base = x.to_vec();
            for flat in 0..base.len() {
                let perturbed = |delta: f64| {
                    let mut values = base.clone();
                    values[flat] = T::from_f64(values[flat].to_f64() + delta);
                    Tensor::from_vec(values, x.shape().clone()).expect("same size")
                };
                let plus = self.evaluate(input, &perturbed(eps))?;
                let minus = self.evaluate(input, &perturbed(-eps))?;
                for j in 0..outputs {
                    let numerical = (plus[j] - minus[j]) / (2.0 * eps);
                    let analytical = rows[j][input][flat];
                    let error = (analytical - numerical).abs();
                    entries += 1;
                    worst_abs = worst_abs.max(error);
                    if numerical != 0.0 {
                        worst_rel = worst_rel.max(error / numerical.abs());
                    }
                    let allowed = self.options.atol + self.options.rtol * numerical.abs();
                    let excess = error - allowed;
                    let fails = error.is_nan() || error > allowed;
                    if fails
                        && failure
                            .as_ref()
                            .is_none_or(|(worst, _)| excess > *worst || excess.is_nan())
                    {
                        failure = Some((
                            excess,
                            GradcheckError::Mismatch {
                                label: label.clone(),
                                input,
                                element: unravel(x.shape(), flat),
                                output_element: unravel(&output_shape, j),
                                analytical,
                                numerical,
                                worst_abs: 0.0,
                                worst_rel: 0.0,
                            },
                        ));
                    }
                }
            }
        }
        if let Some((_, mut error)) = failure {
            if let GradcheckError::Mismatch {
                worst_abs: a,
                worst_rel: r,
                ..
            } = &mut error
            {
                *a = worst_abs;
                *r = worst_rel;
            }
            return Err(error);
        }
        Ok(Report {
            inputs: self.inputs.len(),
            outputs,
            entries_checked: entries,
            max_abs_error: worst_abs,
            max_rel_error: worst_rel,
            materialised: (0..self.inputs.len())
                .filter(|&i| has_aliases(&self.inputs[i]))
                .collect(),
        })
    }
}

/// Checks the tape's gradients of `f` at `inputs` against central finite differences (see the
/// module docs for every check made). `f` receives the inputs as trainable leaves and may
/// return an output of any shape; its full Jacobian is compared.
pub fn gradcheck<T, F>(
    f: F,
    inputs: &[Tensor<T>],
    options: &GradcheckOptions,
) -> Result<Report, GradcheckError>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    run_fallible(infallible(f), inputs, options)
}

/// Wraps an infallible function under test in the fallible form the checker runs.
fn infallible<T: Float, F>(
    f: F,
) -> impl for<'t> Fn(&[Var<'t, T>]) -> Result<Var<'t, T>, AutogradError>
where
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    move |v| Ok(f(v))
}

fn run_fallible<T, F>(
    f: F,
    inputs: &[Tensor<T>],
    options: &GradcheckOptions,
) -> Result<Report, GradcheckError>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Result<Var<'t, T>, AutogradError>,
{
    Checker {
        f,
        reference: None,
        inputs,
        options,
    }
    .run()
}

/// Checks second derivatives, as PyTorch's `gradgradcheck`: the tape's Jacobian of the first
/// derivative — computed with [`Var::backward_create_graph`], so the backward rules run on Vars
/// and are themselves differentiated — against central finite differences of the first
/// derivative computed by the ordinary backward pass (the one [`gradcheck`] verifies), in f64.
/// It also checks that the two first derivatives agree at `inputs`, so a rule on Vars that
/// disagrees with its rule on tensors is caught even when its own derivative is consistent.
///
/// The first derivative is the vector-Jacobian product of `f` with a fixed, seeded random
/// output cotangent u, flattened and concatenated over the inputs:
/// `x -> [d<u, f(x)>/dx_0, d<u, f(x)>/dx_1, ...]`. An op that cannot give higher-order
/// gradients fails with its named error.
///
/// ```
/// use autograd::gradcheck::{gradgradcheck, GradcheckOptions};
/// use tensor::Tensor;
/// let x = Tensor::from_vec(vec![0.3, -1.2, 0.8], [3]).unwrap();
/// gradgradcheck(|v| v[0].tanh().exp(), &[x], &GradcheckOptions::strict("tanh then exp")).unwrap();
/// ```
pub fn gradgradcheck<T, F>(
    f: F,
    inputs: &[Tensor<T>],
    options: &GradcheckOptions,
) -> Result<Report, GradcheckError>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    if T::DTYPE != DType::F64 {
        return Err(GradcheckError::NotF64 {
            label: options.label.clone(),
            dtype: T::DTYPE,
        });
    }
    let output_shape = {
        let tape = Tape::new();
        let leaves: Vec<Var<'_, T>> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
        f(&leaves).shape()
    };
    let cotangent = Tensor::<T>::random_normal(
        output_shape,
        T::ZERO,
        T::ONE,
        &mut StdRng::seed_from_u64(0x5EED),
    )
    .expect("valid parameters");
    // The first derivative from the ordinary backward pass, flattened.
    let plain = |inputs: &[Tensor<T>]| -> Result<Vec<f64>, AutogradError> {
        let tape = Tape::new();
        let leaves: Vec<Var<'_, T>> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
        let gradients = match f(&leaves).try_backward_with(cotangent.clone()) {
            Ok(gradients) => Some(gradients),
            Err(AutogradError::NoGradientPath) => None,
            Err(error) => return Err(error),
        };
        Ok(leaves
            .iter()
            .flat_map(|&x| match &gradients {
                Some(gradients) => gradients.wrt(x).to_vec(),
                None => vec![T::ZERO; x.shape().numel()],
            })
            .map(|g| g.to_f64())
            .collect())
    };
    // At the inputs themselves, both first derivatives must agree.
    let error = |e: AutogradError| GradcheckError::Autograd {
        label: options.label.clone(),
        error: Box::new(e),
    };
    let expected = plain(inputs).map_err(error)?;
    let tape = Tape::new();
    let leaves: Vec<Var<'_, T>> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
    let got: Vec<f64> = recorded(&f, &cotangent, &leaves)
        .map_err(error)?
        .iter()
        .flat_map(|g| g.value().to_vec())
        .map(|g| g.to_f64())
        .collect();
    for (element, (&backward, &create_graph)) in expected.iter().zip(&got).enumerate() {
        let difference = (backward - create_graph).abs();
        if difference.is_nan() || difference > options.atol + options.rtol * backward.abs() {
            return Err(GradcheckError::FirstDerivativeMismatch {
                label: options.label.clone(),
                element,
                backward,
                create_graph,
            });
        }
    }

    let reference = |inputs: &[Tensor<T>]| plain(inputs);
    run_with_reference(
        |v| recorded(&f, &cotangent, v).and_then(|parts| Var::try_concat(&parts, 0)),
        &reference,
        inputs,
        options,
    )
}

/// The first derivative of `f` along `cotangent`, recorded on the tape (flattened per input).
fn recorded<'t, T, F>(
    f: &F,
    cotangent: &Tensor<T>,
    v: &[Var<'t, T>],
) -> Result<Vec<Var<'t, T>>, AutogradError>
where
    T: Float,
    F: for<'s> Fn(&[Var<'s, T>]) -> Var<'s, T>,
{
    let tape = v[0].tape();
    let seed = tape.constant(cotangent.clone());
    let gradients = match f(v).try_backward_create_graph_with(seed) {
        Ok(gradients) => Some(gradients),
        Err(AutogradError::NoGradientPath) => None,
        Err(error) => return Err(error),
    };
    Ok(v.iter()
        .map(|&x| match &gradients {
            Some(gradients) => gradients.wrt(x).flatten(),
            None => tape.constant(Tensor::zeros([x.shape().numel()])),
        })
        .collect())
}

fn run_with_reference<T, F>(
    f: F,
    reference: &ReferenceFn<'_, T>,
    inputs: &[Tensor<T>],
    options: &GradcheckOptions,
) -> Result<Report, GradcheckError>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Result<Var<'t, T>, AutogradError>,
{
    Checker {
        f,
        reference: Some(reference),
        inputs,
        options,
    }
    .run()
}

/// [`gradcheck`] with default options, panicking with the failure's message: for tests.
///
/// ```
/// use autograd::gradcheck::assert_gradcheck;
/// use tensor::Tensor;
/// let a = Tensor::from_vec(vec![0.5, -1.5, 2.0, 0.1], [2, 2]).unwrap();
/// let b = Tensor::from_vec(vec![1.0, 2.0], [2]).unwrap(); // broadcast over rows
/// assert_gradcheck(|v| (v[0] * v[1]).exp().sum(&[1], false), &[a, b]);
/// ```
#[track_caller]
pub fn assert_gradcheck<T, F>(f: F, inputs: &[Tensor<T>])
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    assert_gradcheck_with(f, inputs, &GradcheckOptions::default());
}

/// [`gradcheck`] with [`GradcheckOptions::strict`] tolerances, panicking with the failure's
/// message.
#[track_caller]
pub fn assert_gradcheck_strict<T, F>(f: F, inputs: &[Tensor<T>])
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    assert_gradcheck_with(f, inputs, &GradcheckOptions::strict("gradcheck"));
}

/// [`gradcheck`] with explicit options, panicking with the failure's message.
#[track_caller]
pub fn assert_gradcheck_with<T, F>(f: F, inputs: &[Tensor<T>], options: &GradcheckOptions)
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    if let Err(error) = gradcheck(f, inputs, options) {
        panic!("{error}");
    }
}

/// A cheaper check for inputs too large for a full Jacobian: for `directions` random pairs
/// (u over the output, v over the inputs, seeded by `seed`), compares u^T J v from one
/// backward pass with (u . f(x + eps v) - u . f(x - eps v)) / (2 eps). On failure it reruns the
/// full [`gradcheck`] to produce a report that names the element.
pub fn gradcheck_directional<T, F>(
    f: F,
    inputs: &[Tensor<T>],
    options: &GradcheckOptions,
    directions: usize,
    seed: u64,
) -> Result<Report, GradcheckError>
where
    T: Float,
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    let checker = Checker {
        f: infallible(f),
        reference: None,
        inputs,
        options,
    };
    if T::DTYPE != DType::F64 {
        return Err(GradcheckError::NotF64 {
            label: options.label.clone(),
            dtype: T::DTYPE,
        });
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = |shape: &Shape, rng: &mut StdRng| {
        Tensor::<T>::random_normal(shape.clone(), T::ZERO, T::ONE, rng).expect("valid parameters")
    };
    let tape = Tape::new();
    let leaves: Vec<Var<'_, T>> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
    let output = (checker.f)(&leaves).map_err(|e| checker.error(e))?;
    let output_shape = output.shape();
    let (mut worst_abs, mut worst_rel) = (0.0_f64, 0.0_f64);
    for direction in 0..directions {
        let u = normal(&output_shape, &mut rng);
        let v: Vec<Tensor<T>> = inputs.iter().map(|x| normal(x.shape(), &mut rng)).collect();
        let gradients = checker.gradients(output, &leaves, u.clone())?;
        let analytical: f64 = gradients
            .iter()
            .zip(&v)
            .map(|(g, v)| {
                g.iter()
                    .zip(v.to_vec())
                    .map(|(g, v)| g * v.to_f64())
                    .sum::<f64>()
            })
            .sum();
        let projected = |delta: f64| {
            let tape = Tape::new();
            let moved: Vec<Var<'_, T>> = inputs
                .iter()
                .zip(&v)
                .map(|(x, v)| {
                    tape.leaf(x.zip_map(v, "gradcheck", |x, v| {
                        T::from_f64(x.to_f64() + delta * v.to_f64())
                    }))
                })
                .collect();
            let y = (checker.f)(&moved)
                .expect("an infallible function")
                .value()
                .to_vec();
            y.iter()
                .zip(u.to_vec())
                .map(|(y, u)| y.to_f64() * u.to_f64())
                .sum::<f64>()
        };
        let numerical = (projected(options.eps) - projected(-options.eps)) / (2.0 * options.eps);
        let error = (analytical - numerical).abs();
        worst_abs = worst_abs.max(error);
        if numerical != 0.0 {
            worst_rel = worst_rel.max(error / numerical.abs());
        }
        if error.is_nan() || error > options.atol + options.rtol * numerical.abs() {
            checker.run()?;
            return Err(GradcheckError::DirectionalMismatch {
                label: options.label.clone(),
                direction,
                analytical,
                numerical,
            });
        }
    }
    Ok(Report {
        inputs: inputs.len(),
        outputs: output_shape.numel(),
        entries_checked: directions,
        max_abs_error: worst_abs,
        max_rel_error: worst_rel,
        materialised: (0..inputs.len())
            .filter(|&i| has_aliases(&inputs[i]))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custom::CustomOp;

    /// x^2 with a deliberately wrong rule: 3x instead of 2x.
    struct WrongSquare;

    impl CustomOp<f64> for WrongSquare {
        fn name(&self) -> &str {
            "wrong_square"
        }
        fn forward(&self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>, AutogradError> {
            Ok(inputs[0].square())
        }
        fn backward(
            &self,
            grad: &Tensor<f64>,
            inputs: &[&Tensor<f64>],
            _: &Tensor<f64>,
        ) -> Vec<Option<Tensor<f64>>> {
            vec![Some(grad * &inputs[0].mul_scalar(3.0))]
        }
    }

    /// Returns a gradient even for a zero seed.
    struct LeakyRule;

    impl CustomOp<f64> for LeakyRule {
        fn name(&self) -> &str {
            "leaky"
        }
        fn forward(&self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>, AutogradError> {
            Ok(inputs[0].clone())
        }
        fn backward(
            &self,
            grad: &Tensor<f64>,
            _: &[&Tensor<f64>],
            _: &Tensor<f64>,
        ) -> Vec<Option<Tensor<f64>>> {
            vec![Some(grad.add_scalar(1e-3))]
        }
    }

    fn x() -> Tensor<f64> {
        Tensor::from_vec(vec![0.5, -1.0, 2.0], [3]).unwrap()
    }

    #[test]
    fn a_wrong_rule_is_caught_and_located() {
        let error = gradcheck(
            |v| v[0].tape().custom_op(WrongSquare, &[v[0]]),
            &[x()],
            &GradcheckOptions::labelled("wrong"),
        )
        .unwrap_err();
        let GradcheckError::Mismatch {
            input,
            element,
            output_element,
            analytical,
            numerical,
            worst_abs,
            ..
        } = &error
        else {
            panic!("expected a mismatch, got {error}");
        };
        assert_eq!(*input, 0);
        // The largest excess is at the largest |x| = 2: analytical 3x = 6, numerical 2x = 4.
        assert_eq!(element, &vec![2]);
        assert_eq!(output_element, &vec![2]);
        assert!((analytical - 6.0).abs() < 1e-12);
        assert!((numerical - 4.0).abs() < 1e-6);
        assert!((worst_abs - 2.0).abs() < 1e-6);
        assert!(
            error.to_string().starts_with(
                "wrong: Jacobian mismatch for input 0, element [2], output element [2]"
            )
        );
    }

    #[test]
    fn f32_inputs_are_refused() {
        let error = gradcheck(
            |v| v[0].exp(),
            &[Tensor::<f32>::ones([2])],
            &GradcheckOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            error,
            GradcheckError::NotF64 {
                label: "gradcheck".to_string(),
                dtype: DType::F32
            }
        );
    }

    #[test]
    fn a_rule_that_leaks_under_a_zero_seed_is_caught() {
        let error = gradcheck(
            |v| v[0].tape().custom_op(LeakyRule, &[v[0]]),
            &[x()],
            &GradcheckOptions::default(),
        )
        .unwrap_err();
        assert!(
            matches!(
                error,
                GradcheckError::NonZeroForZeroGradient { input: 0, .. }
            ),
            "{error}"
        );
    }

    #[test]
    fn strided_and_broadcast_inputs_are_checked_on_their_logical_elements() {
        let base =
            Tensor::from_vec((0..12).map(|v| v as f64 * 0.3 - 1.0).collect(), [3, 4]).unwrap();
        let transposed = base.t();
        let broadcast = Tensor::from_vec(vec![0.4, -0.2, 0.9], [3, 1])
            .unwrap()
            .broadcast_to([3, 4]);
        let report = gradcheck(
            |v| (v[0].t() * v[1]).exp(),
            &[transposed, broadcast],
            &GradcheckOptions::default(),
        )
        .unwrap();
        assert_eq!(report.materialised, vec![1]);
        assert_eq!(report.entries_checked, 2 * 12 * 12);
    }

    #[test]
    fn directional_check_passes_correct_rules_and_reports_wrong_ones_in_full() {
        let big =
            Tensor::from_vec((0..64).map(|v| (v as f64 * 0.37).sin()).collect(), [8, 8]).unwrap();
        let report = gradcheck_directional(
            |v| v[0].matmul(v[0]).tanh(),
            &[big],
            &GradcheckOptions::default(),
            4,
            7,
        )
        .unwrap();
        assert_eq!(report.entries_checked, 4);
        let error = gradcheck_directional(
            |v| v[0].tape().custom_op(WrongSquare, &[v[0]]),
            &[x()],
            &GradcheckOptions::default(),
            3,
            7,
        )
        .unwrap_err();
        assert!(matches!(error, GradcheckError::Mismatch { .. }), "{error}");
    }

    #[test]
    fn report_displays_the_errors() {
        let report = gradcheck(|v| v[0].sigmoid(), &[x()], &GradcheckOptions::default()).unwrap();
        assert!(
            report
                .to_string()
                .starts_with("gradcheck passed: 1 inputs, 3 outputs, 9 Jacobian entries")
        );
    }
}
