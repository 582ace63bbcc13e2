//! Saving and loading a `ParamStore` in the safetensors format; the conventions are in the
//! crate docs (`lib.rs`, "Parameter files").

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use safetensors::tensor::{Dtype, View};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use tensor::{DType, Float, Shape, Tensor, TensorError};

use crate::error::{NnError, Result};
use crate::params::{FileLayout, ParamStore, Role};

/// The largest header accepted, as the safetensors library's own limit.
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// The header key under which the store's training step is saved.
const TRAINING_STEP_KEY: &str = "training_step";

/// How to load a parameter file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Accept `F32` tensors into an `f64` store and `F64` tensors into an `f32` store,
    /// converting each value (rounding to nearest when narrowing). Off by default, so a dtype
    /// mismatch is reported.
    pub cast: bool,
}

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
fn file_shape(layout: FileLayout, shape: &Shape) -> Vec<usize> {
    match (layout, shape.dims()) {
        (FileLayout::Transposed, &[inputs, outputs]) => vec![outputs, inputs],
        (_, dims) => dims.to_vec(),
    }
}

fn encode<T: Float>(role: Role, layout: FileLayout, value: &Tensor<T>) -> Encoded {
    let stored = match (layout, value.rank()) {
        (FileLayout::Transposed, 2) => value.t(),
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
        shape: file_shape(layout, value.shape()),
        bytes,
    }
}

/// The bytes of the safetensors file [`save_safetensors`] writes (for keeping a file in memory,
/// or sending it elsewhere).
pub fn safetensors_bytes<T: Float>(store: &ParamStore<T>) -> Result<Vec<u8>> {
    let encoded: Vec<(String, Encoded)> = store
        .iter()
        .map(|(id, name, role, value)| {
            let layout = store.options(id).layout;
            (name.to_string(), encode(role, layout, value))
        })
        .collect();
    let metadata = HashMap::from([(
        TRAINING_STEP_KEY.to_string(),
        store.training_step().to_string(),
    )]);
    safetensors::serialize(
        encoded.iter().map(|(name, e)| (name.as_str(), e)),
        Some(metadata),
    )
    .map_err(|e| {
        NnError::Tensor(TensorError::InvalidArgument {
            op: "safetensors_bytes",
            message: e.to_string(),
        })
    })
}

/// Writes every entry of `store` to `path` (the conventions are in the
/// [crate docs](crate#parameter-files)). The file
/// is written next to `path` first and renamed into place, so an interrupted save never leaves
/// a truncated file under the real name.
pub fn save_safetensors<T: Float>(store: &ParamStore<T>, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let bytes = safetensors_bytes(store)?;
    let io_error = |e: std::io::Error| NnError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    std::fs::write(&partial, bytes).map_err(io_error)?;
    std::fs::rename(&partial, path).map_err(io_error)
}

/// Reads `path` into `store`, replacing every entry, or changes nothing and reports every
/// problem (the checks are in the [crate docs](crate#parameter-files)). Dtypes must match
/// exactly; see [`load_safetensors_with`] for converting between `F32` and `F64`.
pub fn load_safetensors<T: Float>(store: &mut ParamStore<T>, path: impl AsRef<Path>) -> Result<()> {
    load_safetensors_with(store, path, LoadOptions::default())
}

/// [`load_safetensors`] with options: `cast` converts `F32` tensors into an `f64` model and
/// back.
///
/// ```no_run
/// use nn::{LoadOptions, ParamStore, load_safetensors_with};
/// let mut store = ParamStore::<f64>::new();
/// // ... add the model's layers ...
/// load_safetensors_with(&mut store, "trained_in_f32.safetensors", LoadOptions { cast: true })?;
/// # Ok::<(), nn::NnError>(())
/// ```
pub fn load_safetensors_with<T: Float>(
    store: &mut ParamStore<T>,
    path: impl AsRef<Path>,
    options: LoadOptions,
) -> Result<()> {
    let path = path.as_ref();
    let io_error = |e: std::io::Error| NnError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut file = std::fs::File::open(path).map_err(io_error)?;
    let metadata = file.metadata().map_err(io_error)?;
    if !metadata.is_file() {
        return Err(NnError::ParameterFile {
            path: path.to_path_buf(),
            tensor: None,
            message: "not a regular file".to_string(),
        });
    }
    read_safetensors(store, &mut file, metadata.len(), path, options)
}

/// Loads from any seekable reader of `len` bytes (`path` names it in errors): the body of
/// [`load_safetensors_with`], also used on in-memory bytes.
pub fn read_safetensors<T: Float, R: Read + Seek>(
    store: &mut ParamStore<T>,
    reader: &mut R,
    len: u64,
    path: &Path,
    options: LoadOptions,
) -> Result<()> {
    let file_error = |message: String| NnError::ParameterFile {
        path: path.to_path_buf(),
        tensor: None,
        message,
    };
    let read_error = |e: std::io::Error| NnError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if len < 8 {
        return Err(file_error(format!(
            "not a safetensors file: {len} bytes, shorter than the 8-byte header length"
        )));
    }
    let mut prefix = [0u8; 8];
    reader.seek(SeekFrom::Start(0)).map_err(read_error)?;
    reader.read_exact(&mut prefix).map_err(read_error)?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_HEADER_BYTES || header_len > len - 8 {
        return Err(file_error(format!(
            "not a safetensors file: its header claims {header_len} bytes, the file holds {} after the length (and headers are at most {MAX_HEADER_BYTES})",
            len - 8
        )));
    }
    let mut header_bytes = vec![0u8; header_len as usize];
    reader.read_exact(&mut header_bytes).map_err(read_error)?;
    let header = parse_header(&header_bytes)
        .map_err(|message| file_error(format!("not a safetensors file: {message}")))?;
    let data_len = len - 8 - header_len;
    let mut problems = header.check_layout(data_len);
    let plan = plan_reads(store, &header, options, &mut problems);
    let training_step = match header.metadata.get(TRAINING_STEP_KEY) {
        None => None,
        Some(step) => match step.parse::<u64>() {
            Ok(step) => Some(step),
            Err(_) => {
                problems.push(Problem::file(format!(
                    "metadata {TRAINING_STEP_KEY} is '{}', not a step number",
                    step.escape_debug()
                )));
                None
            }
        },
    };
    if !problems.is_empty() {
        problems.sort();
        return Err(NnError::ParameterFileProblems {
            path: path.to_path_buf(),
            problems: problems
                .into_iter()
                .map(|p| (p.tensor, p.message))
                .collect(),
        });
    }
    // Everything is known to fit: read what the model uses, one tensor at a time.
    let data_start = 8 + header_len;
    let mut values = Vec::with_capacity(plan.len());
    for read in plan {
        let mut bytes = vec![0u8; read.bytes];
        reader
            .seek(SeekFrom::Start(data_start + read.offset))
            .map_err(read_error)?;
        reader.read_exact(&mut bytes).map_err(read_error)?;
        let numbers: Vec<T> = match read.dtype {
            Dtype::I64 => bytes
                .chunks_exact(8)
                .map(|c| T::from_f64(i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64))
                .collect(),
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|c| T::from_f64(f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64))
                .collect(),
            _ => bytes
                .chunks_exact(8)
                .map(|c| T::from_f64(f64::from_le_bytes(c.try_into().expect("8 bytes"))))
                .collect(),
        };
        let tensor = Tensor::from_vec(numbers, read.file_shape)?;
        values.push(if read.transposed {
            tensor.t().contiguous()
        } else {
            tensor
        });
    }
    store.replace_all(values);
    if let Some(step) = training_step {
        store.set_training_step(step);
    }
    Ok(())
}

/// One problem with a file, for the tensor it concerns (none: the file as a whole).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Problem {
    tensor: Option<String>,
    message: String,
}

impl Problem {
    fn tensor(name: &str, message: String) -> Self {
        Problem {
            tensor: Some(name.to_string()),
            message,
        }
    }

    fn file(message: String) -> Self {
        Problem {
            tensor: None,
            message,
        }
    }
}

/// One tensor as the header describes it.
#[derive(Debug)]
struct TensorInfo {
    dtype: String,
    shape: Vec<usize>,
    offsets: [u64; 2],
}

/// The parsed header: tensors by name (sorted, so problems come out in a stable order) and the
/// metadata.
#[derive(Debug, Default)]
struct Header {
    tensors: BTreeMap<String, TensorInfo>,
    metadata: HashMap<String, String>,
}

fn dtype_of(name: &str) -> Option<(Dtype, u64)> {
    Some(match name {
        "F32" => (Dtype::F32, 4),
        "F64" => (Dtype::F64, 8),
        "I64" => (Dtype::I64, 8),
        "BOOL" => (Dtype::BOOL, 1),
        "U8" => (Dtype::U8, 1),
        "I8" => (Dtype::I8, 1),
        "U16" => (Dtype::U16, 2),
        "I16" => (Dtype::I16, 2),
        "F16" => (Dtype::F16, 2),
        "BF16" => (Dtype::BF16, 2),
        "U32" => (Dtype::U32, 4),
        "I32" => (Dtype::I32, 4),
        "U64" => (Dtype::U64, 8),
        _ => return None,
    })
}

impl Header {
    /// Checks every tensor's dtype and byte range, and that the ranges tile the data section.
    fn check_layout(&self, data_len: u64) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut ranges = Vec::new();
        for (name, info) in &self.tensors {
            let Some((_, size)) = dtype_of(&info.dtype) else {
                problems.push(Problem::tensor(
                    name,
                    format!("has the unknown dtype '{}'", info.dtype.escape_debug()),
                ));
                continue;
            };
            let [begin, end] = info.offsets;
            let expected = info
                .shape
                .iter()
                .try_fold(size, |bytes, &d| bytes.checked_mul(d as u64));
            if begin > end || end > data_len {
                problems.push(Problem::tensor(
                    name,
                    format!(
                        "has bytes {begin}..{end}, outside the data section of {data_len} bytes"
                    ),
                ));
                continue;
            }
            if expected != Some(end - begin) {
                problems.push(Problem::tensor(
                    name,
                    format!(
                        "has shape {} of {}, which needs {} bytes, but its range holds {}",
                        Shape::from(info.shape.clone()),
                        info.dtype,
                        expected.map_or("more than 2^64".to_string(), |b| b.to_string()),
                        end - begin
                    ),
                ));
                continue;
            }
            ranges.push((begin, end, name));
        }
        if problems.is_empty() {
            // The format requires the ranges to cover the data section exactly, in some order.
            ranges.sort();
            let mut next = 0;
            for &(begin, end, name) in &ranges {
                if begin != next {
                    let what = if begin < next {
                        "overlaps"
                    } else {
                        "leaves a gap after"
                    };
                    problems.push(Problem::tensor(
                        name,
                        format!(
                            "has bytes {begin}..{end}, which {what} the previous tensor's bytes (ending at {next})"
                        ),
                    ));
                }
                next = next.max(end);
            }
            if next != data_len {
                problems.push(Problem::file(format!(
                    "the tensors end at byte {next} of a data section of {data_len} bytes"
                )));
            }
        }
        problems
    }
}

/// What to read for one store entry, in store order.
struct PlannedRead {
    offset: u64,
    bytes: usize,
    dtype: Dtype,
    file_shape: Vec<usize>,
    transposed: bool,
}

/// Matches the header against the model, adding a problem for every mismatch, and returns what
/// to read for each entry (complete only when no problem was found).
fn plan_reads<T: Float>(
    store: &ParamStore<T>,
    header: &Header,
    options: LoadOptions,
    problems: &mut Vec<Problem>,
) -> Vec<PlannedRead> {
    let known: HashSet<&str> = store.iter().map(|(_, name, ..)| name).collect();
    for name in header.tensors.keys() {
        if !known.contains(name.as_str()) {
            problems.push(Problem::tensor(
                name,
                "is in the file but not a parameter of this model".to_string(),
            ));
        }
    }
    let mut plan = Vec::with_capacity(store.len());
    for (id, name, role, current) in store.iter() {
        let layout = store.options(id).layout;
        let Some(info) = header.tensors.get(name) else {
            problems.push(Problem::tensor(
                name,
                "is missing from the file".to_string(),
            ));
            continue;
        };
        let (wanted, shape) = (file_dtype::<T>(role), file_shape(layout, current.shape()));
        let Some((dtype, _)) = dtype_of(&info.dtype) else {
            continue; // reported by the layout check
        };
        let castable =
            options.cast && role != Role::Counter && matches!(dtype, Dtype::F32 | Dtype::F64);
        if dtype != wanted && !castable {
            let hint = if matches!(
                (dtype, wanted),
                (Dtype::F32, Dtype::F64) | (Dtype::F64, Dtype::F32)
            ) {
                " (LoadOptions { cast: true } converts it)"
            } else {
                ""
            };
            problems.push(Problem::tensor(
                name,
                format!("has dtype {dtype:?}, the model needs {wanted:?}{hint}"),
            ));
        }
        if info.shape != shape {
            problems.push(Problem::tensor(
                name,
                format!(
                    "has shape {}, the model needs {}",
                    Shape::from(info.shape.clone()),
                    Shape::from(shape.clone())
                ),
            ));
        }
        plan.push(PlannedRead {
            offset: info.offsets[0],
            // Only read when the layout check found no problem (so begin <= end); a reversed
            // range is reported there, and must not underflow here (found by fuzzing).
            bytes: usize::try_from(info.offsets[1].saturating_sub(info.offsets[0]))
                .unwrap_or(usize::MAX),
            dtype,
            file_shape: shape,
            transposed: layout == FileLayout::Transposed && current.rank() == 2,
        });
    }
    plan
}

/// Parses a safetensors header, refusing duplicate names (which JSON maps would silently
/// collapse to the last one) and anything malformed, with the reason.
fn parse_header(bytes: &[u8]) -> std::result::Result<Header, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("its header is not UTF-8 ({e})"))?;
    let mut deserializer = serde_json::Deserializer::from_str(text.trim_end_matches(' '));
    let header = deserializer
        .deserialize_map(HeaderVisitor)
        .map_err(|e| format!("its header is not valid: {e}"))?;
    deserializer
        .end()
        .map_err(|e| format!("its header has trailing data: {e}"))?;
    Ok(header)
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = Header;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of tensors")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Header, A::Error> {
        let mut header = Header::default();
        let mut seen_metadata = false;
        while let Some(name) = map.next_key::<String>()? {
            if name == "__metadata__" {
                if seen_metadata {
                    return Err(de::Error::custom("__metadata__ appears twice"));
                }
                seen_metadata = true;
                header.metadata = map.next_value::<HashMap<String, String>>()?;
                continue;
            }
            let value: serde_json::Value = map.next_value()?;
            let info = tensor_info(&value).ok_or_else(|| {
                de::Error::custom(format!(
                    "tensor '{}' is malformed: {value}",
                    name.escape_debug()
                ))
            })?;
            if header.tensors.insert(name.clone(), info).is_some() {
                return Err(de::Error::custom(format!(
                    "tensor '{}' appears twice (the format forbids duplicate names)",
                    name.escape_debug()
                )));
            }
        }
        Ok(header)
    }
}

/// `{"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}`.
fn tensor_info(value: &serde_json::Value) -> Option<TensorInfo> {
    let object = value.as_object()?;
    let dtype = object.get("dtype")?.as_str()?.to_string();
    let shape = object
        .get("shape")?
        .as_array()?
        .iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
        .collect::<Option<Vec<usize>>>()?;
    let offsets = object.get("data_offsets")?.as_array()?;
    let [begin, end] = offsets.as_slice() else {
        return None;
    };
    Some(TensorInfo {
        dtype,
        shape,
        offsets: [begin.as_u64()?, end.as_u64()?],
    })
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
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
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

    /// The error's problems as `tensor: message` lines.
    fn problems(error: NnError) -> Vec<String> {
        match error {
            NnError::ParameterFileProblems { problems, .. } => problems
                .into_iter()
                .map(|(tensor, message)| match tensor {
                    Some(tensor) => format!("{tensor}: {message}"),
                    None => message,
                })
                .collect(),
            other => panic!("expected a list of problems, got {other}"),
        }
    }

    #[test]
    fn every_mismatch_is_reported_and_nothing_is_loaded() {
        let path = temporary("mismatch");
        let original = model(3);
        // A wider hidden layer and no batch norm: three shapes wrong, five tensors missing.
        let mut other = ParamStore::<f32>::new();
        Dense::new(&mut other, "hidden1", 3, 5, Init::HeNormal, &mut rng(0)).unwrap();
        Dense::new(&mut other, "output", 5, 2, Init::HeNormal, &mut rng(0)).unwrap();
        save_safetensors(&other, &path).unwrap();
        let mut store = original.clone();
        let error = load_safetensors(&mut store, &path).unwrap_err();
        assert!(
            error
                .to_string()
                .contains(": 8 problems\n  tensor 'bn1.bias': is missing from the file\n"),
            "{error}"
        );
        assert_eq!(
            problems(error),
            vec![
                "bn1.bias: is missing from the file",
                "bn1.num_batches_tracked: is missing from the file",
                "bn1.running_mean: is missing from the file",
                "bn1.running_var: is missing from the file",
                "bn1.weight: is missing from the file",
                "hidden1.bias: has shape [5], the model needs [4]",
                "hidden1.weight: has shape [5, 3], the model needs [4, 3]",
                "output.weight: has shape [2, 5], the model needs [2, 4]",
            ]
        );
        assert!(same(&store, &original));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn an_extra_tensor_is_refused_and_leaves_the_model_unchanged() {
        // The surviving mutant of the old loader: moving the extra-tensor check after the model
        // was overwritten failed no test, because the extra tensor's file held the model's own
        // values. Here the file's values differ, so "unchanged" means something.
        let path = temporary("extra");
        let mut larger = model(7);
        Dense::new(&mut larger, "extra", 2, 2, Init::HeNormal, &mut rng(0)).unwrap();
        save_safetensors(&larger, &path).unwrap();
        let original = model(3);
        let mut store = original.clone();
        assert!(!same(&store, &model(7)));
        let error = load_safetensors(&mut store, &path).unwrap_err();
        assert_eq!(
            problems(error),
            vec![
                "extra.bias: is in the file but not a parameter of this model",
                "extra.weight: is in the file but not a parameter of this model",
            ]
        );
        assert!(same(&store, &original));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn dtypes_must_match_unless_a_cast_is_asked_for() {
        let path = temporary("dtype");
        let mut double = ParamStore::<f64>::new();
        Dense::new(&mut double, "hidden1", 3, 4, Init::HeNormal, &mut rng(5)).unwrap();
        BatchNorm1d::new(&mut double, "bn1", 4).unwrap();
        Dense::new(&mut double, "output", 4, 2, Init::HeNormal, &mut rng(6)).unwrap();
        save_safetensors(&double, &path).unwrap();
        let original = model(3);
        let mut store = original.clone();
        let found = problems(load_safetensors(&mut store, &path).unwrap_err());
        assert_eq!(found.len(), 8, "{found:?}");
        assert_eq!(
            found[0],
            "bn1.bias: has dtype F64, the model needs F32 (LoadOptions { cast: true } converts it)"
        );
        assert!(same(&store, &original));
        // With the cast: every value rounded to f32.
        load_safetensors_with(&mut store, &path, LoadOptions { cast: true }).unwrap();
        for ((_, name, _, a), (_, _, _, b)) in store.iter().zip(double.iter()) {
            assert_eq!(a.to_vec(), b.cast::<f32>().to_vec(), "{name}");
        }
        // And back: an f32 file into an f64 model, exactly.
        save_safetensors(&store, &path).unwrap();
        let mut widened = double.clone();
        load_safetensors_with(&mut widened, &path, LoadOptions { cast: true }).unwrap();
        for ((_, name, _, a), (_, _, _, b)) in widened.iter().zip(store.iter()) {
            assert_eq!(a.to_vec(), b.cast::<f64>().to_vec(), "{name}");
        }
        std::fs::remove_file(path).unwrap();
    }

    /// A hand-made file: `header` JSON (padded to 8 bytes), then `data_len` zero bytes.
    fn handmade(name: &str, header: &str, data_len: usize) -> std::path::PathBuf {
        let path = temporary(name);
        let mut header = header.to_string();
        while header.len() % 8 != 0 {
            header.push(' ');
        }
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        bytes.extend(std::iter::repeat_n(0u8, data_len));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Header entries for every tensor of `model(..)`, laid out from byte 0, as JSON.
    fn model_header(extra: &str) -> (String, usize) {
        let store = model(1);
        let mut entries = Vec::new();
        let mut offset = 0;
        for (id, name, role, value) in store.iter() {
            let dtype = if role == Role::Counter { "I64" } else { "F32" };
            let size = if role == Role::Counter { 8 } else { 4 };
            let shape = file_shape(store.options(id).layout, value.shape());
            let bytes = size * value.numel();
            entries.push(format!(
                "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{offset},{}]}}",
                offset + bytes
            ));
            offset += bytes;
        }
        let header = format!("{{{}{extra}}}", entries.join(","));
        (header, offset)
    }

    #[test]
    fn a_huge_tensor_the_model_does_not_use_is_refused_from_the_header() {
        // The reproduction: a valid model file plus one extra 3 GiB tensor (sparse, 4 KiB on
        // disk) took 3.1 GB and 6.6 s before its error. Its range is checked against the file's
        // length from the header alone.
        let (header, data_len) = model_header(&format!(
            ",\"huge\":{{\"dtype\":\"F32\",\"shape\":[805306368],\"data_offsets\":[{},{}]}}",
            0, 3_221_225_472_u64
        ));
        let path = handmade("huge", &header, data_len);
        let original = model(3);
        let mut store = original.clone();
        let found = problems(load_safetensors(&mut store, &path).unwrap_err());
        assert!(
            found.contains(&format!(
                "huge: has bytes 0..3221225472, outside the data section of {data_len} bytes"
            )),
            "{found:?}"
        );
        assert!(
            found.contains(&"huge: is in the file but not a parameter of this model".to_string())
        );
        assert!(same(&store, &original));
        std::fs::remove_file(path).unwrap();
    }

    /// Peak resident memory of this process so far, in KiB.
    fn peak_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn a_sparse_file_with_a_3_gib_extra_tensor_is_refused_without_reading_it() {
        // The reproduction exactly: a valid model file plus one extra 3 GiB tensor whose bytes
        // are really in the (sparse) file. The old loader read all 3 GiB before its error.
        let gib3: u64 = 3 << 30;
        let (header, data_len) = model_header(&format!(
            ",\"zz_extra\":{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{{}},{{}}]}}",
            gib3 / 4
        ));
        let header = header.replace(
            "[{},{}]",
            &format!("[{data_len},{}]", data_len as u64 + gib3),
        );
        let path = handmade("sparse", &header, data_len);
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.set_len(file.metadata().unwrap().len() + gib3).unwrap(); // a hole, no disk blocks
        drop(file);
        let original = model(3);
        let mut store = original.clone();
        let before = peak_kib();
        let found = problems(load_safetensors(&mut store, &path).unwrap_err());
        assert_eq!(
            found,
            vec!["zz_extra: is in the file but not a parameter of this model"]
        );
        // Nothing near 3 GiB was read into memory (other tests share the process: 1 GiB slack).
        assert!(
            peak_kib() - before < 1 << 20,
            "peak grew by {} KiB",
            peak_kib() - before
        );
        assert!(same(&store, &original));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn duplicate_names_and_broken_layouts_are_refused() {
        let original = model(3);
        let check = |name: &str, header: &str, data_len: usize, expected: &str| {
            let path = handmade(name, header, data_len);
            let mut store = original.clone();
            let message = match load_safetensors(&mut store, &path) {
                Ok(()) => panic!("{name}: the file was accepted"),
                Err(error) => error.to_string(),
            };
            assert!(message.contains(expected), "{name}: {message}");
            assert!(same(&store, &original), "{name}");
            std::fs::remove_file(path).unwrap();
        };
        let (header, data_len) = model_header("");
        // A second entry for a name used to replace the first silently.
        let duplicate = header.replacen(
            "{\"hidden1.weight\"",
            "{\"hidden1.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"hidden1.weight\"",
            1,
        );
        check(
            "duplicate",
            &duplicate,
            data_len,
            "tensor 'hidden1.weight' appears twice (the format forbids duplicate names)",
        );
        check(
            "gap",
            &header,
            data_len + 4,
            &format!(
                "the tensors end at byte {data_len} of a data section of {}",
                data_len + 4
            ),
        );
        let overlap = header.replacen("\"data_offsets\":[48,64]", "\"data_offsets\":[44,60]", 1);
        check(
            "overlap",
            &overlap,
            data_len,
            "tensor 'hidden1.bias': has bytes 44..60, which overlaps the previous tensor's bytes (ending at 48)",
        );
        check(
            "gap",
            &overlap,
            data_len,
            "tensor 'bn1.weight': has bytes 64..80, which leaves a gap after the previous tensor's bytes (ending at 60)",
        );
        let wrong_size = header.replacen("\"shape\":[4, 3]", "\"shape\":[4, 4]", 1);
        check(
            "size",
            &wrong_size,
            data_len,
            "which needs 64 bytes, but its range holds 48",
        );
        let unknown = header.replacen("\"dtype\":\"F32\"", "\"dtype\":\"Q7\"", 1);
        check("unknown", &unknown, data_len, "has the unknown dtype 'Q7'");
        check(
            "not json",
            "{\"a\": [",
            0,
            "not a safetensors file: its header is not valid",
        );
        let step = header.replacen("{", "{\"__metadata__\":{\"training_step\":\"soon\"},", 1);
        check(
            "step",
            &step,
            data_len,
            "metadata training_step is 'soon', not a step number",
        );
    }

    #[test]
    fn files_that_are_not_safetensors_are_refused_without_reading_them() {
        let original = model(3);
        let mut store = original.clone();
        // /dev/zero used to be read until the OOM killer stopped it.
        let error = load_safetensors(&mut store, "/dev/zero")
            .unwrap_err()
            .to_string();
        assert_eq!(error, "/dev/zero: not a regular file");
        let path = temporary("short");
        std::fs::write(&path, b"abc").unwrap();
        let error = load_safetensors(&mut store, &path).unwrap_err().to_string();
        assert!(
            error.ends_with("3 bytes, shorter than the 8-byte header length"),
            "{error}"
        );
        let mut claims = u64::MAX.to_le_bytes().to_vec();
        claims.extend(b"{}");
        std::fs::write(&path, claims).unwrap();
        let error = load_safetensors(&mut store, &path).unwrap_err().to_string();
        assert!(
            error.contains("its header claims 18446744073709551615 bytes, the file holds 2"),
            "{error}"
        );
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

    /// Loads `bytes` from memory into `store`.
    fn read_bytes(store: &mut ParamStore<f32>, bytes: &[u8]) -> Result<()> {
        let mut reader = std::io::Cursor::new(bytes);
        let len = bytes.len() as u64;
        read_safetensors(
            store,
            &mut reader,
            len,
            Path::new("mem"),
            LoadOptions::default(),
        )
    }

    #[test]
    fn an_eight_byte_file_is_judged_by_the_length_it_claims() {
        // Eight bytes hold the header length and nothing else: not "shorter than 8 bytes",
        // and a claim of 5 header bytes is more than the 0 that follow.
        let mut store = ParamStore::new();
        let error = read_bytes(&mut store, &5_u64.to_le_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("its header claims 5 bytes, the file holds 0 after the length"),
            "{error}"
        );
    }

    #[test]
    fn headers_up_to_the_limit_are_read_and_longer_ones_refused() {
        // `{}` padded with spaces to exactly MAX_HEADER_BYTES, in a file just long enough:
        // accepted, as by the safetensors library (which refuses only n > its limit).
        let limit = MAX_HEADER_BYTES as usize;
        let mut bytes = MAX_HEADER_BYTES.to_le_bytes().to_vec();
        bytes.extend(b"{}");
        bytes.resize(8 + limit, b' ');
        let mut store = ParamStore::new();
        read_bytes(&mut store, &bytes).unwrap();
        // One byte more is refused from the length alone, though the file holds it.
        bytes[..8].copy_from_slice(&(MAX_HEADER_BYTES + 1).to_le_bytes());
        bytes.push(b' ');
        let error = read_bytes(&mut store, &bytes).unwrap_err().to_string();
        assert!(
            error.contains(&format!(
                "its header claims {} bytes, the file holds {} after the length (and headers are at most {MAX_HEADER_BYTES})",
                limit + 1,
                limit + 1
            )),
            "{error}"
        );
    }

    #[test]
    fn every_safetensors_dtype_is_known_with_its_size() {
        // The format's dtypes and their sizes in bytes (the safetensors specification). One
        // the model cannot take is a dtype mismatch, not an unknown dtype, and its byte range
        // is checked against its size.
        let sizes = [
            ("BOOL", 1),
            ("U8", 1),
            ("I8", 1),
            ("U16", 2),
            ("I16", 2),
            ("F16", 2),
            ("BF16", 2),
            ("U32", 4),
            ("I32", 4),
            ("U64", 8),
        ];
        for (dtype, size) in sizes {
            let mut store = ParamStore::<f32>::new();
            store.add("w", Role::Bias, Tensor::ones([3])).unwrap();
            let header = format!(
                "{{\"w\":{{\"dtype\":\"{dtype}\",\"shape\":[3],\"data_offsets\":[0,{}]}}}}",
                3 * size
            );
            let path = handmade(&format!("dtype-{dtype}"), &header, 3 * size);
            let found = problems(load_safetensors(&mut store, &path).unwrap_err());
            assert_eq!(
                found,
                vec![format!("w: has dtype {dtype}, the model needs F32")],
                "{dtype}"
            );
            std::fs::remove_file(path).unwrap();
        }
    }

    #[test]
    fn empty_tensors_and_matrices_that_are_not_weights_round_trip() {
        // An empty tensor has the byte range k..k; only a weight matrix is stored transposed.
        let mut saved = model(1);
        saved
            .add("empty", Role::RunningStatistic, Tensor::zeros([0]))
            .unwrap();
        let table = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]).unwrap();
        saved
            .add("table", Role::RunningStatistic, table.clone())
            .unwrap();
        let bytes = safetensors_bytes(&saved).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(file.tensor("empty").unwrap().shape(), &[0]);
        assert_eq!(file.tensor("table").unwrap().shape(), &[2, 3]);
        let mut loaded = model(2);
        loaded
            .add("empty", Role::RunningStatistic, Tensor::zeros([0]))
            .unwrap();
        loaded
            .add("table", Role::RunningStatistic, Tensor::zeros([2, 3]))
            .unwrap();
        read_bytes(&mut loaded, &bytes).unwrap();
        assert!(same(&saved, &loaded));
        assert_eq!(loaded.value(loaded.find("table").unwrap()), &table);
    }

    #[test]
    fn a_header_that_is_not_an_object_says_what_was_expected() {
        let mut store = ParamStore::new();
        let mut bytes = 8_u64.to_le_bytes().to_vec();
        bytes.extend(b"[1, 2]  ");
        let error = read_bytes(&mut store, &bytes).unwrap_err().to_string();
        assert!(
            error.contains("invalid type: sequence, expected a JSON object of tensors"),
            "{error}"
        );
    }

    #[test]
    fn the_training_step_is_saved_and_restored() {
        let path = temporary("step");
        let mut saved = model(1);
        saved.set_training_step(1234);
        save_safetensors(&saved, &path).unwrap();
        let mut loaded = model(2);
        load_safetensors(&mut loaded, &path).unwrap();
        assert_eq!(loaded.training_step(), 1234);
        // A file without the metadata (PyTorch's own) leaves the count alone.
        let (header, data_len) = model_header("");
        let plain = handmade("plain", &header, data_len);
        load_safetensors(&mut loaded, &plain).unwrap();
        assert_eq!(loaded.training_step(), 1234);
        std::fs::remove_file(path).unwrap();
        std::fs::remove_file(plain).unwrap();
    }
}
