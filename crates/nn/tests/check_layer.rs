//! `nn::testing::check_layer` on the library's layers and on layers with one bug each: every
//! stage catches the bug it exists for.

use autograd::testing::{Domain, tensor_strategy};
use autograd::{AutogradError, CustomOp};
use nn::testing::{CheckLayerOptions, LayerStage, LayerUnderTest, check_layer};
use nn::{
    Activation, BatchNorm1d, Context, Dense, Dropout, Init, Layer, NnError, ParamStore, Sequential,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tensor::{Float, Shape, Tensor};

/// Which layer to build.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Which {
    Dense,
    BatchNorm,
    Dropout,
    Tanh,
    Block,
    WrongRule,
    LyingShape,
    PanicsOnWidth,
    WritesThenFails,
}

struct Case(Which);

const FEATURES: usize = 3;

/// x^2 with the rule 3x (wrong), for any element type.
struct WrongSquare;

impl<T: Float> CustomOp<T> for WrongSquare {
    fn name(&self) -> &str {
        "wrong_square"
    }
    fn forward(&self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>, AutogradError> {
        Ok(inputs[0].square())
    }
    fn backward(
        &self,
        grad: &Tensor<T>,
        inputs: &[&Tensor<T>],
        _: &Tensor<T>,
    ) -> Vec<Option<Tensor<T>>> {
        vec![Some(grad * &inputs[0].mul_scalar(T::from_f64(3.0)))]
    }
}

/// A hand-written layer with one of the bugs.
struct Buggy {
    bug: Which,
    scale: nn::ParamId,
    running: nn::ParamId,
}

impl<T: Float> Layer<T> for Buggy {
    fn name(&self) -> &str {
        "buggy"
    }
    fn output_shape(&self, input: &Shape) -> nn::Result<Shape> {
        if input.rank() != 2 || input.dims()[1] != FEATURES {
            return Err(NnError::Shape {
                op: "buggy".into(),
                message: format!("expected [batch, {FEATURES}], got {input}"),
            });
        }
        if self.bug == Which::LyingShape {
            return Ok(Shape::from([input.dims()[0], FEATURES + 1]));
        }
        Ok(input.clone())
    }
    fn try_forward<'t>(
        &self,
        context: &mut Context<'t, '_, T>,
        x: autograd::Var<'t, T>,
    ) -> nn::Result<autograd::Var<'t, T>> {
        if self.bug == Which::WritesThenFails {
            let value = context.buffer(self.running).add_scalar(T::ONE);
            context.set_buffer(self.running, value);
        }
        if self.bug != Which::PanicsOnWidth {
            Layer::<T>::output_shape(self, &x.shape())?;
        }
        let scale = context.param(self.scale);
        let y = x * scale; // panics on a width that does not broadcast
        Ok(match self.bug {
            Which::WrongRule => context.tape().try_custom_op(WrongSquare, &[y])?,
            _ => y,
        })
    }
}

impl LayerUnderTest for Case {
    fn name(&self) -> String {
        format!("{:?}", self.0)
    }
    fn build<T: Float>(&self, store: &mut ParamStore<T>) -> nn::Result<Box<dyn Layer<T>>> {
        let mut rng = StdRng::seed_from_u64(1);
        let dense = |store: &mut ParamStore<T>, name: &str, rng: &mut StdRng| {
            Dense::new(store, name, FEATURES, FEATURES, Init::XavierNormal, rng)
        };
        Ok(match self.0 {
            Which::Dense => Box::new(dense(store, "dense", &mut rng)?),
            Which::BatchNorm => Box::new(BatchNorm1d::new(store, "bn", FEATURES)?),
            Which::Dropout => Box::new(Dropout::with_keep_probability(0.7, &mut rng)?),
            Which::Tanh => Box::new(Activation::Tanh),
            Which::Block => Box::new(
                Sequential::new()
                    .with(dense(store, "dense1", &mut rng)?)
                    .with(BatchNorm1d::new(store, "bn", FEATURES)?)
                    .with(Activation::Tanh)
                    .with(Dropout::with_keep_probability(0.8, &mut rng)?)
                    .with(dense(store, "dense2", &mut rng)?),
            ),
            bug => {
                let scale = store.add(
                    "scale",
                    nn::Role::Scale,
                    Tensor::from_vec(
                        vec![T::from_f64(0.5), T::from_f64(-1.2), T::from_f64(2.0)],
                        [FEATURES],
                    )
                    .unwrap(),
                )?;
                let running =
                    store.add("running", nn::Role::RunningStatistic, Tensor::zeros([1]))?;
                Box::new(Buggy {
                    bug,
                    scale,
                    running,
                })
            }
        })
    }
    fn inputs(&self) -> BoxedStrategy<Tensor<f64>> {
        // Batch norm needs two rows for a batch variance.
        (2..=4usize)
            .prop_flat_map(|batch| tensor_strategy(Shape::from([batch, FEATURES]), Domain::Any))
            .boxed()
    }
}

fn options() -> CheckLayerOptions {
    CheckLayerOptions {
        cases: 12,
        ..CheckLayerOptions::default()
    }
}

#[test]
fn the_library_s_layers_pass_every_stage() {
    for which in [
        Which::Dense,
        Which::BatchNorm,
        Which::Dropout,
        Which::Tanh,
        Which::Block,
    ] {
        let report = check_layer(&Case(which), &options()).unwrap_or_else(|e| panic!("{e}"));
        for stage in LayerStage::ALL {
            let summary = report.stage(stage);
            assert!(
                summary.runs > 0,
                "{which:?}: {stage:?} did not run\n{report}"
            );
            assert!(summary.not_run.is_none(), "{which:?}\n{report}");
        }
        let parameters = match which {
            Which::Dense | Which::BatchNorm => 2,
            Which::Block => 6,
            _ => 0,
        };
        assert_eq!(report.parameters, parameters, "{which:?}");
        assert!(report.to_string().contains("shape errors"));
    }
}

fn failure(which: Which) -> nn::testing::LayerCheckFailure {
    check_layer(&Case(which), &options()).unwrap_err()
}

#[test]
fn a_wrong_rule_inside_a_layer_fails_gradcheck() {
    let failure = failure(Which::WrongRule);
    assert_eq!(failure.stage, LayerStage::Gradcheck, "{failure}");
    assert!(
        failure.to_string().contains("Jacobian mismatch"),
        "{failure}"
    );
    // Shrunk to the smallest batch the strategy draws.
    assert_eq!(failure.input.unwrap().dims()[0], 2);
}

#[test]
fn an_output_shape_that_disagrees_with_the_forward_fails() {
    let failure = failure(Which::LyingShape);
    assert_eq!(failure.stage, LayerStage::Forward, "{failure}");
    assert!(failure.message.contains("output_shape says"), "{failure}");
}

#[test]
fn a_layer_that_panics_on_a_wrong_width_fails_the_shape_errors_stage() {
    let failure = failure(Which::PanicsOnWidth);
    assert_eq!(failure.stage, LayerStage::Errors, "{failure}");
    assert!(failure.message.contains("panicked"), "{failure}");
}

#[test]
fn a_layer_that_writes_state_before_refusing_its_input_fails() {
    let failure = failure(Which::WritesThenFails);
    assert_eq!(failure.stage, LayerStage::Errors, "{failure}");
    assert!(
        failure
            .message
            .contains("left the tape or the store changed"),
        "{failure}"
    );
}
