//! Saving and loading a [`ParamStore`] in the safetensors format, readable by PyTorch
//! (`safetensors.torch.load_file`) and loadable into the equivalent `torch.nn` modules with
//! `load_state_dict`.
//!
//! Conventions, chosen so the file is a PyTorch state dict:
//! - names are the store's names (`hidden1.weight`, `bn1.running_var`, ...);
//! - a [`Role::Weight`] matrix, kept here as `[inputs, outputs]`, is written transposed as
//!   `[outputs, inputs]`, the layout of `nn.Linear.weight`, and transposed back on loading;
//! - a [`Role::Counter`] (batch norm's `num_batches_tracked`) is written as an `I64` scalar;
//! - everything else is written as `F32` or `F64`, the store's element type.
//!
//! Loading is strict and atomic: every tensor of the model must be in the file with the right
//! shape and dtype, and the file must hold nothing else; otherwise the error names the tensor
//! and the store is left exactly as it was.

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, View};
use tensor::{DType, Float, Shape, Tensor};

use crate::error::{NnError, Result};
use crate::params::{ParamStore, Role};

/// A tensor's bytes ready for the file.
struct Encoded {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &Encoded {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn file_dtype<T: Float>(role: Role) -> Dtype {
    match (role, T::DTYPE) {
        (Role::Counter, _) => Dtype::I64,
        (_, DType::F32) => Dtype::F32,
        (_, DType::F64) => Dtype::F64,
    }
}

/// The shape a value has in the file.
fn file_shape(role: Role, shape: &Shape) -> Vec<usize> {
    match (role, shape.dims()) {
        (Role::Weight, &[inputs, outputs]) => vec![outputs, inputs],
        (_, dims) => dims.to_vec(),
    }
}

fn encode<T: Float>(role: Role, value: &Tensor<T>) -> Encoded {
    let stored = match (role, value.rank()) {
        (Role::Weight, 2) => value.t(),
        _ => value.clone(),
    };
    let dtype = file_dtype::<T>(role);
    let mut bytes = Vec::with_capacity(stored.numel() * 8);
    for x in stored.to_vec() {
        match dtype {
            Dtype::I64 => bytes.extend((x.to_f64().round() as i64).to_le_bytes()),
            Dtype::F32 => bytes.extend((x.to_f64() as f32).to_le_bytes()),
            _ => bytes.extend(x.to_f64().to_le_bytes()),
        }
    }
    Encoded {
        dtype,
        shape: file_shape(role, value.shape()),
        bytes,
    }
}

/// Writes every entry of `store` to `path` (see the module docs for the conventions).
pub fn save_safetensors<T: Float>(store: &ParamStore<T>, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let encoded: Vec<(String, Encoded)> = store
        .iter()
        .map(|(_, name, role, value)| (name.to_string(), encode(role, value)))
        .collect();
    let bytes = safetensors::serialize(encoded.iter().map(|(name, e)| (name.as_str(), e)), None)
        .map_err(|e| NnError::ParameterFile {
            path: path.to_path_buf(),
            tensor: None,
            message: e.to_string(),
        })?;
    std::fs::write(path, bytes).map_err(|e| NnError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Reads `path` into `store`, replacing every entry, or changes nothing and names the first
/// tensor that is missing, extra, or of the wrong shape or dtype.
pub fn load_safetensors<T: Float>(store: &mut ParamStore<T>, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let file_error = |tensor: Option<&str>, message: String| NnError::ParameterFile {
        path: path.to_path_buf(),
        tensor: tensor.map(str::to_string),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| NnError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| file_error(None, format!("not a safetensors file: {e}")))?;

    let known: HashSet<&str> = store.iter().map(|(_, name, ..)| name).collect();
    let mut extra: Vec<&str> = file
        .names()
        .into_iter()
        .filter(|name| !known.contains(name))
        .collect();
    extra.sort_unstable();
    if let Some(name) = extra.first() {
        return Err(file_error(
            Some(name),
            "is in the file but not a parameter of this model".to_string(),
        ));
    }

    let mut values = Vec::with_capacity(store.len());
    for (_, name, role, current) in store.iter() {
        let view = file
            .tensor(name)
            .map_err(|_| file_error(Some(name), "is missing from the file".to_string()))?;
        let (dtype, shape) = (file_dtype::<T>(role), file_shape(role, current.shape()));
        if view.dtype() != dtype {
            return Err(file_error(
                Some(name),
                format!("has dtype {:?}, the model needs {:?}", view.dtype(), dtype),
            ));
        }
        if view.shape() != shape.as_slice() {
            return Err(file_error(
                Some(name),
                format!(
                    "has shape {}, the model needs {}",
                    Shape::from(view.shape()),
                    Shape::from(shape)
                ),
            ));
        }
        let data = view.data();
        let numbers: Vec<T> = match dtype {
            Dtype::I64 => data
                .chunks_exact(8)
                .map(|c| T::from_f64(i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64))
                .collect(),
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|c| T::from_f64(f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64))
                .collect(),
            _ => data
                .chunks_exact(8)
                .map(|c| T::from_f64(f64::from_le_bytes(c.try_into().expect("8 bytes"))))
                .collect(),
        };
        let tensor = Tensor::from_vec(numbers, shape)?;
        values.push(match (role, current.rank()) {
            (Role::Weight, 2) => tensor.t().contiguous(),
            _ => tensor,
        });
    }
    store.replace_all(values);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch_norm::BatchNorm1d;
    use crate::dense::Dense;
    use crate::init::Init;
    use crate::test_support::rng;

    fn model(seed: u64) -> ParamStore<f32> {
        let mut store = ParamStore::new();
        Dense::new(&mut store, "hidden1", 3, 4, Init::HeNormal, &mut rng(seed)).unwrap();
        BatchNorm1d::new(&mut store, "bn1", 4).unwrap();
        Dense::new(
            &mut store,
            "output",
            4,
            2,
            Init::XavierNormal,
            &mut rng(seed + 1),
        )
        .unwrap();
        store
    }

    fn temporary(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("nn-io-{}-{name}.safetensors", std::process::id()))
    }

    fn same(a: &ParamStore<f32>, b: &ParamStore<f32>) -> bool {
        a.iter()
            .zip(b.iter())
            .all(|((_, na, _, va), (_, nb, _, vb))| na == nb && va == vb)
    }

    #[test]
    fn round_trip_restores_every_value() {
        let mut saved = model(1);
        let running_mean = saved.find("bn1.running_mean").unwrap();
        saved.set_value(
            running_mean,
            Tensor::from_vec(vec![0.5, -1.0, 2.0, 0.25], [4]).unwrap(),
        );
        let counter = saved.find("bn1.num_batches_tracked").unwrap();
        saved.set_value(counter, Tensor::scalar(17.0));
        let path = temporary("round-trip");
        save_safetensors(&saved, &path).unwrap();
        let mut loaded = model(2);
        assert!(!same(&saved, &loaded));
        load_safetensors(&mut loaded, &path).unwrap();
        assert!(same(&saved, &loaded));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn the_file_holds_a_pytorch_state_dict() {
        let store = model(1);
        let path = temporary("layout");
        save_safetensors(&store, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let weight = file.tensor("hidden1.weight").unwrap();
        assert_eq!(
            weight.shape(),
            &[4, 3],
            "nn.Linear(3, 4).weight is [out, in]"
        );
        assert_eq!(weight.dtype(), Dtype::F32);
        // Element [o, i] of the file is element [i, o] of the store.
        let value = store.value(store.find("hidden1.weight").unwrap());
        let first_row: Vec<f32> = weight.data()[..12]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(first_row, value.narrow(1, 0, 1).to_vec());
        let counter = file.tensor("bn1.num_batches_tracked").unwrap();
        assert_eq!((counter.dtype(), counter.shape()), (Dtype::I64, &[][..]));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn mismatched_files_are_named_and_load_nothing() {
        let path = temporary("mismatch");
        let original = model(3);
        // A model with a different layer width: wrong shape.
        let mut wide = ParamStore::<f32>::new();
        Dense::new(&mut wide, "hidden1", 3, 5, Init::HeNormal, &mut rng(0)).unwrap();
        save_safetensors(&wide, &path).unwrap();
        let mut store = original.clone();
        let error = load_safetensors(&mut store, &path).unwrap_err().to_string();
        assert!(
            error.ends_with("tensor 'hidden1.weight': has shape [5, 3], the model needs [4, 3]"),
            "{error}"
        );
        assert!(same(&store, &original));

        // A file missing the batch-norm and output tensors.
        let mut partial = ParamStore::<f32>::new();
        Dense::new(&mut partial, "hidden1", 3, 4, Init::HeNormal, &mut rng(0)).unwrap();
        save_safetensors(&partial, &path).unwrap();
        let error = load_safetensors(&mut store, &path).unwrap_err().to_string();
        assert!(
            error.ends_with("tensor 'bn1.weight': is missing from the file"),
            "{error}"
        );
        assert!(same(&store, &original));

        // f64 values for an f32 model: wrong dtype.
        let mut double = ParamStore::<f64>::new();
        Dense::new(&mut double, "hidden1", 3, 4, Init::HeNormal, &mut rng(0)).unwrap();
        BatchNorm1d::new(&mut double, "bn1", 4).unwrap();
        Dense::new(&mut double, "output", 4, 2, Init::HeNormal, &mut rng(0)).unwrap();
        save_safetensors(&double, &path).unwrap();
        let error = load_safetensors(&mut store, &path).unwrap_err().to_string();
        assert!(
            error.ends_with("tensor 'hidden1.weight': has dtype F64, the model needs F32"),
            "{error}"
        );
        assert!(same(&store, &original));

        // An extra tensor.
        let mut larger = model(3);
        Dense::new(&mut larger, "extra", 2, 2, Init::HeNormal, &mut rng(0)).unwrap();
        save_safetensors(&larger, &path).unwrap();
        let error = load_safetensors(&mut store, &path).unwrap_err().to_string();
        assert!(
            error
                .ends_with("tensor 'extra.bias': is in the file but not a parameter of this model"),
            "{error}"
        );

        // Not a safetensors file at all.
        std::fs::write(&path, b"not a file").unwrap();
        assert!(
            load_safetensors(&mut store, &path)
                .unwrap_err()
                .to_string()
                .contains("not a safetensors file")
        );
        assert!(same(&store, &original));
        std::fs::remove_file(path).unwrap();
    }
}
