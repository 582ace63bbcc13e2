//! Writing your own layer, two ways, and checking its gradient.
//!
//! 1. [`Swish`], `y = x * sigmoid(beta * x)` with a learnable `beta` per unit, written with
//!    tape ops and implementing [`nn::Layer`]: its gradient is derived by the tape, nothing to
//!    write by hand.
//! 2. [`Softsign`], `y = x / (1 + |x|)`, written as an [`autograd::CustomOp`] with its own
//!    backward rule `dy/dx = 1 / (1 + |x|)^2`, and recorded with `tape.custom_op`; wrapped in
//!    [`SoftsignLayer`] it stacks with the library's layers.
//!
//! Both are checked by [`autograd::gradcheck::gradcheck`] in f64 against central finite
//! differences, alone and inside a small network. A third op, [`BrokenSoftsign`], has a
//! deliberately wrong rule (it forgets the square), to show what a failed check reports.
//!
//! Last, one forward and backward pass of the network is recorded with provenance tracking and
//! every node's gradient kept, and the tape is shown two ways: the summary table (op, shape,
//! bytes held, gradient norm, layer and source line of each node) and a Graphviz file with each
//! node's value and gradient (`custom_layer_tape.dot`; render it with `dot -Tsvg`).

use std::fmt;
use std::path::PathBuf;

use autograd::gradcheck::{
    AuditError, AuditOptions, AuditReport, GradcheckError, GradcheckOptions, Report, audit_tape,
    gradcheck,
};
use autograd::{AutogradError, CustomOp, Tape, Var};
use nn::{Context, Dense, Init, Layer, Mode, NnError, ParamId, ParamStore, Role, Sequential};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tensor::{Float, Shape, Tensor};

use crate::claims::{Claim, Unit, write_claims};
use crate::{Config, Result};

/// `y = x * sigmoid(beta * x)`, one learnable `beta` per unit (Ramachandran et al.'s Swish;
/// beta = 1 is SiLU). Built from tape ops only.
#[derive(Clone, Debug)]
pub struct Swish {
    name: String,
    beta: ParamId,
    units: usize,
}

impl Swish {
    /// A Swish layer over `units` units with every beta starting at 1; its parameter is
    /// `{name}.beta`.
    pub fn new<T: Float>(store: &mut ParamStore<T>, name: &str, units: usize) -> nn::Result<Self> {
        // Role::Scale: trainable, and (unlike Role::Weight) not penalised by l2_penalty.
        let beta = store.add(format!("{name}.beta"), Role::Scale, Tensor::ones([units]))?;
        Ok(Swish {
            name: name.to_string(),
            beta,
            units,
        })
    }

    /// The id of beta in the store.
    pub fn beta(&self) -> ParamId {
        self.beta
    }
}

impl<T: Float> Layer<T> for Swish {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_shape(&self, input: &Shape) -> nn::Result<Shape> {
        match input.dims() {
            [_, units] if *units == self.units => Ok(input.clone()),
            _ => Err(NnError::Shape {
                op: format!("Swish '{}'", self.name),
                message: format!("expected input [batch, {}], got {input}", self.units),
            }),
        }
    }

    fn try_forward<'t>(
        &self,
        context: &mut Context<'t, '_, T>,
        x: Var<'t, T>,
    ) -> nn::Result<Var<'t, T>> {
        Layer::<T>::output_shape(self, &x.shape())?;
        // beta has shape [units] and broadcasts over the batch rows.
        let beta = context.param(self.beta);
        Ok(x * (x * beta).sigmoid())
    }
}

/// `softsign(x) = x / (1 + |x|)`, a custom op with a hand-written backward rule.
#[derive(Clone, Copy, Debug, Default)]
pub struct Softsign;

impl<T: Float> CustomOp<T> for Softsign {
    fn name(&self) -> &str {
        "softsign"
    }

    fn forward(&self, inputs: &[&Tensor<T>]) -> std::result::Result<Tensor<T>, AutogradError> {
        Ok(inputs[0].map(|x| x / (T::ONE + x.abs())))
    }

    /// d softsign / dx = 1 / (1 + |x|)^2, times the incoming gradient.
    fn backward(
        &self,
        grad_output: &Tensor<T>,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
    ) -> Vec<Option<Tensor<T>>> {
        let local = inputs[0].map(|x| T::ONE / ((T::ONE + x.abs()) * (T::ONE + x.abs())));
        vec![Some(grad_output.zip_map(
            &local,
            "softsign backward",
            |g, d| g * d,
        ))]
    }
}

/// Softsign with a wrong rule, `1 / (1 + |x|)` (the square forgotten): gradcheck must catch it.
#[derive(Clone, Copy, Debug, Default)]
pub struct BrokenSoftsign;

impl<T: Float> CustomOp<T> for BrokenSoftsign {
    fn name(&self) -> &str {
        "broken softsign"
    }

    fn forward(&self, inputs: &[&Tensor<T>]) -> std::result::Result<Tensor<T>, AutogradError> {
        CustomOp::<T>::forward(&Softsign, inputs)
    }

    fn backward(
        &self,
        grad_output: &Tensor<T>,
        inputs: &[&Tensor<T>],
        _output: &Tensor<T>,
    ) -> Vec<Option<Tensor<T>>> {
        let wrong = inputs[0].map(|x| T::ONE / (T::ONE + x.abs()));
        vec![Some(grad_output.zip_map(
            &wrong,
            "broken backward",
            |g, d| g * d,
        ))]
    }
}

/// The [`Softsign`] custom op as a layer, so it stacks in a [`Sequential`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SoftsignLayer;

impl<T: Float> Layer<T> for SoftsignLayer {
    fn name(&self) -> &str {
        "softsign"
    }

    fn output_shape(&self, input: &Shape) -> nn::Result<Shape> {
        Ok(input.clone())
    }

    fn try_forward<'t>(
        &self,
        context: &mut Context<'t, '_, T>,
        x: Var<'t, T>,
    ) -> nn::Result<Var<'t, T>> {
        Ok(context.tape().try_custom_op(Softsign, &[x])?)
    }
}

/// The broken softsign as a layer: planted in a network, the audit must find it.
#[derive(Clone, Copy, Debug, Default)]
pub struct BrokenSoftsignLayer;

impl<T: Float> Layer<T> for BrokenSoftsignLayer {
    fn name(&self) -> &str {
        "broken softsign"
    }

    fn output_shape(&self, input: &Shape) -> nn::Result<Shape> {
        Ok(input.clone())
    }

    fn try_forward<'t>(
        &self,
        context: &mut Context<'t, '_, T>,
        x: Var<'t, T>,
    ) -> nn::Result<Var<'t, T>> {
        Ok(context.tape().try_custom_op(BrokenSoftsign, &[x])?)
    }
}

/// The three checks and the failure.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Swish, with respect to its input and beta.
    pub swish: Report,
    /// The softsign custom op, with respect to its input.
    pub softsign: Report,
    /// Dense -> Swish -> Dense -> softsign, with respect to the input and every parameter.
    pub network: Report,
    /// What gradcheck said about the broken rule (it must fail).
    pub broken: std::result::Result<Report, GradcheckError>,
    /// The network's tape after one forward and backward pass, as a table.
    pub tape: String,
    /// Every node of the network's tape, its rule checked on the values it saw.
    pub audit: AuditReport,
    /// The same audit of a network with the broken softsign planted between Swish and the
    /// output layer (it must name that node).
    pub planted: std::result::Result<AuditReport, AuditError>,
    /// The same tape as a Graphviz file.
    pub graph: PathBuf,
}

/// Random f64 values of a shape, from the `stream`-th generator of the run's `seed` (the
/// default seed 0 gives streams 1, 2, ... their own seeds).
fn sample(shape: &[usize], seed: u64, stream: u64) -> Tensor<f64> {
    Tensor::random_normal(shape, 0.0, 1.0, &mut generator(seed, stream))
        .expect("finite mean and std")
}

/// The `stream`-th generator of the run's `seed`.
fn generator(seed: u64, stream: u64) -> StdRng {
    StdRng::seed_from_u64(seed.wrapping_mul(1000).wrapping_add(stream))
}

/// The tolerances used: 1e-6 absolute and relative (see `GradcheckOptions::strict`).
fn options(label: &str) -> GradcheckOptions {
    GradcheckOptions::strict(label)
}

/// Gradchecks a layer whose parameters live in `store`, with respect to its input and every
/// trainable parameter, in training mode ([`nn::gradcheck_layer`]).
fn check_layer(
    layer: &(impl Layer<f64> + ?Sized),
    store: &ParamStore<f64>,
    input: Tensor<f64>,
    label: &str,
) -> std::result::Result<Report, GradcheckError> {
    nn::gradcheck_layer(layer, store, input, Mode::Train, &options(label))
}

/// One forward and backward pass of `network` on a small batch, with provenance tracked and
/// every node's gradient kept; returns the tape's summary table and writes its Graphviz graph.
fn inspect(
    network: &Sequential<f64>,
    store: &ParamStore<f64>,
    config: &Config,
    seed: u64,
) -> Result<(String, PathBuf)> {
    let mut store = store.clone();
    let tape = Tape::new();
    tape.track_provenance(true);
    let mut context = Context::new(&tape, &mut store, Mode::Train);
    let x = tape.constant(sample(&[2, 5], seed, 6));
    let loss = network
        .try_forward(&mut context, x)?
        .try_mean(&[0, 1], false)?;
    let gradients = loss.try_backward_retaining_all(None)?;
    let graph = config.output_file("custom_layer_tape.dot")?;
    std::fs::write(&graph, tape.to_dot(Some(&gradients)))?;
    Ok((tape.summary(Some(&gradients)).to_string(), graph))
}

/// Audits the tape of one forward pass of `network` on a batch, with provenance tracked, so a
/// disagreeing node is named with its layer and source line.
fn audit_network(
    network: &Sequential<f64>,
    store: &ParamStore<f64>,
    seed: u64,
) -> Result<std::result::Result<AuditReport, AuditError>> {
    let mut store = store.clone();
    let tape = Tape::new();
    tape.track_provenance(true);
    let mut context = Context::new(&tape, &mut store, Mode::Train);
    let x = tape.constant(sample(&[8, 5], seed, 7));
    network
        .try_forward(&mut context, x)?
        .try_mean(&[0, 1], false)?;
    Ok(audit_tape(&tape, &AuditOptions::default()))
}

/// Runs the three gradient checks and the broken one, then shows and audits the network's tape.
pub fn run(config: &Config) -> Result<Summary> {
    // Every input, parameter and batch is drawn from this seed.
    let seed = config.seed_or(0);
    // Swish alone, with betas away from 1 so that beta's gradient is not special.
    let mut store = ParamStore::<f64>::new();
    let swish = Swish::new(&mut store, "swish", 3)?;
    store.set_value(swish.beta(), sample(&[3], seed, 1).map(|b| 1.0 + 0.5 * b));
    let swish_report = check_layer(&swish, &store, sample(&[4, 3], seed, 2), "swish")?;

    // The custom op alone.
    let softsign_report = gradcheck(
        |v| v[0].tape().custom_op(Softsign, &[v[0]]),
        &[sample(&[4, 3], seed, 3)],
        &options("softsign"),
    )?;

    // Both inside a network, next to the library's Dense layers.
    let mut rng = generator(seed, 4);
    let mut store = ParamStore::<f64>::new();
    let network = Sequential::new()
        .with(Dense::new(
            &mut store,
            "hidden",
            5,
            4,
            Init::XavierNormal,
            &mut rng,
        )?)
        .with(Swish::new(&mut store, "swish", 4)?)
        .with(Dense::new(
            &mut store,
            "output",
            4,
            2,
            Init::XavierNormal,
            &mut rng,
        )?)
        .with(SoftsignLayer);
    let network_report = check_layer(&network, &store, sample(&[3, 5], seed, 5), "network")?;

    let broken = gradcheck(
        |v| v[0].tape().custom_op(BrokenSoftsign, &[v[0]]),
        &[sample(&[4, 3], seed, 3)],
        &options("broken softsign"),
    );
    let (tape, graph) = inspect(&network, &store, config, seed)?;
    let audit = audit_network(&network, &store, seed)??;

    // The audit finds a wrong rule in a model without a test written for it.
    let mut rng = generator(seed, 4);
    let mut planted_store = ParamStore::<f64>::new();
    let planted_network = Sequential::new()
        .with(Dense::new(
            &mut planted_store,
            "hidden",
            5,
            4,
            Init::XavierNormal,
            &mut rng,
        )?)
        .with(Swish::new(&mut planted_store, "swish", 4)?)
        .with(BrokenSoftsignLayer)
        .with(Dense::new(
            &mut planted_store,
            "output",
            4,
            2,
            Init::XavierNormal,
            &mut rng,
        )?);
    let planted = audit_network(&planted_network, &planted_store, seed)?;
    Ok(Summary {
        swish: swish_report,
        softsign: softsign_report,
        network: network_report,
        broken,
        tape,
        audit,
        planted,
        graph,
    })
}

impl Summary {
    /// What this example claims, checked on this run.
    pub fn claims(&self) -> Vec<Claim> {
        // The strict tolerance is 1e-6 absolute and relative; a correct rule in f64 with
        // central differences is off by ~1e-9 or less (rounding and the step's h^2 term), so
        // the errors sit three decades under the bound at any seed.
        let mut claims: Vec<Claim> = [
            (
                "swish",
                "The Swish layer, written with tape ops, passes gradcheck",
                &self.swish,
            ),
            (
                "softsign",
                "The softsign op with its own backward rule passes gradcheck",
                &self.softsign,
            ),
            (
                "network",
                "A network of Dense, Swish, Dense and softsign passes gradcheck",
                &self.network,
            ),
        ]
        .into_iter()
        .map(|(id, statement, report)| {
            Claim::below(
                id,
                statement,
                "largest error",
                report.max_abs_error,
                1e-6,
                Unit::Scientific,
            )
        })
        .collect();
        // The wrong rule is off by the factor (1 + |x|) >= 1, so its error is of the order of
        // the derivative itself (0.1-1 at x ~ N(0, 1)), far above 1e-3 at any seed.
        let broken_error = match self.broken.as_ref().map_err(|e| &*e.failure) {
            Err(autograd::gradcheck::GradcheckFailure::Mismatch {
                analytical,
                numerical,
                ..
            }) => (analytical - numerical).abs(),
            _ => 0.0,
        };
        claims.push(Claim::above(
            "broken",
            "A rule with its square forgotten fails gradcheck",
            "its error",
            broken_error,
            1e-3,
            Unit::Scientific,
        ));
        // The audit re-checks each node on the values it saw; a pass or a named failure is a
        // yes-or-no outcome, counted as 1 or 0.
        let named = self
            .planted
            .as_ref()
            .err()
            .is_some_and(|e| e.op == "broken softsign");
        claims.push(Claim::above(
            "audit",
            "audit_tape names the planted wrong node in a network",
            "named (1 = yes)",
            f64::from(u8::from(named && self.audit.nodes_checked > 0)),
            0.5,
            Unit::Count,
        ));
        claims
    }
}

/// `text` with every line after the first indented by `indent` (multi-line reports under a
/// heading).
fn indented(text: &dyn fmt::Display, indent: &str) -> String {
    text.to_string().replace('\n', &format!("\n{indent}"))
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Custom layers, gradient-checked in f64 (central differences, tolerance 1e-6 absolute and relative)"
        )?;
        writeln!(f, "  Swish layer (tape ops), w.r.t. x and beta:")?;
        writeln!(f, "    {}", indented(&self.swish, "    "))?;
        writeln!(f, "  softsign custom op (own backward rule), w.r.t. x:")?;
        writeln!(f, "    {}", indented(&self.softsign, "    "))?;
        writeln!(
            f,
            "  Dense -> Swish -> Dense -> softsign, w.r.t. x and all {} parameters:",
            self.network.inputs - 1
        )?;
        writeln!(f, "    {}", indented(&self.network, "    "))?;
        writeln!(
            f,
            "  softsign with a wrong rule (1 / (1 + |x|), square forgotten):"
        )?;
        match &self.broken {
            Ok(report) => writeln!(f, "    unexpectedly passed: {report}")?,
            Err(error) => writeln!(f, "    {}", indented(error, "    "))?,
        }
        writeln!(
            f,
            "  the network's tape, every node's rule checked on the values it saw (audit_tape):"
        )?;
        writeln!(f, "    {}", indented(&self.audit, "    "))?;
        writeln!(
            f,
            "  the same audit, with the broken softsign planted between Swish and the output layer:"
        )?;
        match &self.planted {
            Ok(report) => writeln!(f, "    unexpectedly passed: {report}")?,
            Err(error) => writeln!(f, "    {}", indented(error, "    "))?,
        }
        writeln!(
            f,
            "\nThe network's tape after one forward and backward pass (graph: {}):",
            self.graph.display()
        )?;
        writeln!(f, "{}", self.tape)?;
        write_claims(f, &self.claims())
    }
}
