//! Bindings of nil-core's gradient shards: write a shard or manifest, verify, reduce, partial files
//! and their merge. Glue only: arguments in, core call with the interpreter released, dicts out.

use crate::errors::to_py;
use crate::pool::{detached, with_pool};
use crate::PyAgop;
use nil_core::fsutil::atomic_write;
use nil_core::gram::Precision;
use nil_core::shards::{self, manifest::Manifest, shard_file::ShardTensor, Partial};
use nil_core::{NilError, NonFinitePolicy, RowDType};
use numpy::{PyReadonlyArray1, PyReadwriteArray1};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

fn policy(skip: bool) -> NonFinitePolicy {
    if skip {
        NonFinitePolicy::Skip
    } else {
        NonFinitePolicy::Raise
    }
}

fn precision(fast: bool) -> Precision {
    if fast {
        Precision::Fast
    } else {
        Precision::Exact
    }
}

type Accs = Vec<(String, PyAgop)>;

fn wrap(layers: Vec<(String, nil_core::AgopAccumulator)>) -> Accs {
    layers
        .into_iter()
        .map(|(n, a)| (n, PyAgop { inner: a }))
        .collect()
}

/// Writes one shard atomically from (layer, dtype, rows, dim, uint8 bytes) and returns
/// (file size, blake3 hex).
#[pyfunction]
fn shard_write(
    py: Python<'_>,
    path: PathBuf,
    tensors: Vec<(String, String, usize, usize, PyReadonlyArray1<'_, u8>)>,
    metadata: HashMap<String, String>,
) -> PyResult<(u64, String)> {
    let mut parts = Vec::with_capacity(tensors.len());
    for (name, dtype, rows, dim, arr) in &tensors {
        let kind = RowDType::parse(dtype).ok_or_else(|| {
            to_py(NilError::DType {
                context: format!("{}: layer {name}", path.display()),
                expected: "float16, bfloat16 or float32".into(),
                found: dtype.clone(),
            })
        })?;
        parts.push((name.as_str(), kind, *rows, *dim, arr.as_slice()?));
    }
    detached(py, || {
        let ts: Vec<ShardTensor<'_>> = parts
            .iter()
            .map(|(name, dtype, rows, dim, bytes)| ShardTensor {
                name,
                dtype: *dtype,
                rows: *rows,
                dim: *dim,
                bytes,
            })
            .collect();
        shards::write_shard(&path, &ts, &metadata)
    })
    .map_err(to_py)
}

/// Validates manifest JSON text and replaces `dir/manifest.json` with it atomically.
#[pyfunction]
fn manifest_write(py: Python<'_>, dir: PathBuf, text: String) -> PyResult<()> {
    detached(py, || {
        let path = Manifest::path(&dir);
        Manifest::parse(&path, text.as_bytes())?;
        atomic_write(&path, text.as_bytes())
    })
    .map_err(to_py)
}

/// Reads and validates `dir/manifest.json`; returns its text.
#[pyfunction]
fn manifest_read(py: Python<'_>, dir: PathBuf) -> PyResult<String> {
    detached(py, || {
        let path = Manifest::path(&dir);
        let bytes = Manifest::read_bytes(&dir)?;
        Manifest::parse(&path, &bytes)?;
        String::from_utf8(bytes).map_err(|e| NilError::format(&path, e.to_string()))
    })
    .map_err(to_py)
}

/// Checks shard `index` (size, blake3, header, layers) against the manifest; raises on the first problem.
#[pyfunction]
fn shard_verify(py: Python<'_>, dir: PathBuf, index: usize) -> PyResult<()> {
    detached(py, || {
        let m = Manifest::read(&dir)?;
        shards::verify::verify_shard(&dir, &m, index)
    })
    .map_err(to_py)
}

/// A host buffer's address and length, handed to the reader without the interpreter.
#[derive(Clone, Copy)]
struct Slot {
    ptr: usize,
    len: usize,
}

/// Streams the rows of `layers` (name, rows per block) of every shard of `dir`, in shard and file
/// order, into the host buffers `slots`, hashing every byte (the manifest is read once): for each
/// block `acquire()` names a free slot, the block's bytes are copied into it, and
/// `ready(shard, slot, layer, first_row, rows)` hands it on; `verified(shard, blake3)` follows
/// the last block of a shard whose blake3 matched the manifest. A shard that does not match stops
/// the stream with the core's error; an exception raised by a callback stops it and is raised
/// again here.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn shard_stream(
    py: Python<'_>,
    dir: PathBuf,
    layers: Vec<(String, usize)>,
    mut slots: Vec<PyReadwriteArray1<'_, u8>>,
    acquire: Py<PyAny>,
    ready: Py<PyAny>,
    verified: Py<PyAny>,
) -> PyResult<()> {
    let mut bufs = Vec::with_capacity(slots.len());
    for a in slots.iter_mut() {
        let b = a.as_slice_mut()?;
        bufs.push(Slot {
            ptr: b.as_mut_ptr() as usize,
            len: b.len(),
        });
    }
    let mut raised: Option<PyErr> = None;
    let outcome = detached(py, || {
        let m = Manifest::read(&dir)?;
        for (index, shard) in m.shards.iter().enumerate() {
            shards::stream_shard(&dir, &m, index, &layers, &mut |b| {
                let got = Python::attach(|py| acquire.bind(py).call0()?.extract::<usize>());
                let slot = match got {
                    Ok(k) => k,
                    Err(e) => {
                        raised = Some(e);
                        return Ok(false);
                    }
                };
                let Some(dst) = bufs.get(slot).copied() else {
                    return Err(NilError::Value(format!(
                        "acquire() returned slot {slot}; there are {} buffers",
                        bufs.len()
                    )));
                };
                if b.bytes.len() > dst.len {
                    return Err(NilError::Value(format!(
                        "layer {}: a block of {} bytes does not fit a {}-byte host buffer",
                        b.layer,
                        b.bytes.len(),
                        dst.len
                    )));
                }
                // SAFETY: `dst` is the memory of a writable, C-contiguous numpy array kept alive (and
                // borrowed) by `slots` for this call; the caller's protocol hands a slot out only while
                // nothing else reads or writes it, and the length is checked above.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        b.bytes.as_ptr(),
                        dst.ptr as *mut u8,
                        b.bytes.len(),
                    );
                }
                let handed = Python::attach(|py| {
                    ready
                        .bind(py)
                        .call1((index, slot, b.layer, b.first_row, b.rows))
                        .map(|_| ())
                });
                if let Err(e) = handed {
                    raised = Some(e);
                    return Ok(false);
                }
                Ok(true)
            })?;
            let done =
                Python::attach(|py| verified.bind(py).call1((index, &shard.blake3)).map(|_| ()));
            if let Err(e) = done {
                raised = Some(e);
                return Err(NilError::Value(shards::reduce::INTERRUPTED.into()));
            }
        }
        Ok(())
    });
    if let Some(e) = raised {
        return Err(e);
    }
    outcome.map_err(to_py)
}

/// blake3 hex digest of a file.
#[pyfunction]
fn file_blake3(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    detached(py, || shards::file_blake3(&path)).map_err(to_py)
}

/// Every problem of a capture, as a dict (problems, notes, shards, bytes, rows).
#[pyfunction]
fn verify_capture<'py>(py: Python<'py>, dir: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let r = detached(py, || with_pool(|| shards::verify_capture(&dir)));
    let d = PyDict::new(py);
    let problems = PyList::empty(py);
    for p in &r.problems {
        let e = PyDict::new(py);
        e.set_item("file", &p.file)?;
        e.set_item("layer", &p.layer)?;
        e.set_item("kind", &p.kind)?;
        e.set_item("message", &p.message)?;
        problems.append(e)?;
    }
    d.set_item("problems", problems)?;
    d.set_item("notes", &r.notes)?;
    d.set_item("shards", r.shards)?;
    d.set_item("bytes", r.bytes)?;
    d.set_item("rows", &r.rows)?;
    Ok(d)
}

/// A Python progress callback as the core's `progress(bytes) -> keep going`: called from worker
/// threads; the first exception it raises stops the work and is kept to be re-raised.
struct Progress {
    callback: Option<Py<PyAny>>,
    error: Mutex<Option<PyErr>>,
}

impl Progress {
    fn new(callback: Option<Py<PyAny>>) -> Self {
        Self {
            callback,
            error: Mutex::new(None),
        }
    }

    fn report(&self, n: u64) -> bool {
        let Some(cb) = self.callback.as_ref() else {
            return true;
        };
        Python::attach(|py| match cb.call1(py, (n,)) {
            Ok(v) => v.is_truthy(py).unwrap_or(true),
            Err(e) => {
                *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                false
            }
        })
    }

    /// The callback's exception if it raised one, else `result` with core errors mapped.
    fn finish<T>(self, result: nil_core::Result<T>) -> PyResult<T> {
        if let Some(e) = self.error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        result.map_err(to_py)
    }
}

/// Reduces a capture into per-layer accumulators; returns (accumulators, shard digests).
/// `progress(nbytes)` is called from worker threads and stops the work when it returns False.
#[pyfunction]
#[pyo3(signature = (dir, layers=None, skip_nonfinite=false, fast=true, progress=None, shards=None))]
fn reduce_capture(
    py: Python<'_>,
    dir: PathBuf,
    layers: Option<Vec<String>>,
    skip_nonfinite: bool,
    fast: bool,
    progress: Option<Py<PyAny>>,
    shards: Option<(usize, usize)>,
) -> PyResult<(Accs, Vec<String>)> {
    let p = Progress::new(progress);
    let report = |n: u64| p.report(n);
    let result = detached(py, || {
        with_pool(|| {
            shards::reduce_capture_shards(
                &dir,
                layers.as_deref(),
                policy(skip_nonfinite),
                precision(fast),
                &report,
                shards.map(|(lo, hi)| lo..hi),
            )
        })
    });
    let r = p.finish(result)?;
    Ok((wrap(r.layers), r.sources))
}

/// What a path given to analyze or merge is: "capture" (a directory) or "partial" (a regular
/// file); anything else (missing, FIFO, device, symbolic-link loop) raises, naming it.
#[pyfunction]
fn input_kind(py: Python<'_>, path: PathBuf) -> PyResult<&'static str> {
    let k = detached(py, || shards::input_kind(&path)).map_err(to_py)?;
    Ok(match k {
        shards::InputKind::Capture => "capture",
        shards::InputKind::PartialFile => "partial",
    })
}

/// Writes accumulators and the shard digests they count to a partial file atomically.
#[pyfunction]
fn partial_write(
    py: Python<'_>,
    path: PathBuf,
    entries: Vec<(String, PyRef<'_, PyAgop>)>,
    sources: Vec<String>,
    metadata: HashMap<String, String>,
) -> PyResult<()> {
    let p = Partial {
        layers: entries
            .iter()
            .map(|(n, a)| (n.clone(), a.inner.clone()))
            .collect(),
        sources,
    };
    detached(py, || shards::write_partial(&path, &p, &metadata)).map_err(to_py)
}

/// Reads a partial file: (accumulators, shard digests).
#[pyfunction]
fn partial_read(py: Python<'_>, path: PathBuf) -> PyResult<(Accs, Vec<String>)> {
    let p = detached(py, || shards::read_partial(&path)).map_err(to_py)?;
    Ok((wrap(p.layers), p.sources))
}

/// Merges capture directories and partial files exactly; returns (accumulators, shard digests).
/// `progress(nbytes)` as in `reduce_capture` (it is also called with 0 before each input), so
/// that Ctrl-C stops a merge within a block.
#[pyfunction]
#[pyo3(signature = (inputs, skip_nonfinite=false, fast=true, progress=None))]
fn partial_merge(
    py: Python<'_>,
    inputs: Vec<PathBuf>,
    skip_nonfinite: bool,
    fast: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Accs, Vec<String>)> {
    let p = Progress::new(progress);
    let report = |n: u64| p.report(n);
    let merged = detached(py, || {
        with_pool(|| {
            let mut parts = Vec::with_capacity(inputs.len());
            for path in &inputs {
                if !report(0) {
                    return Err(NilError::Value(shards::reduce::INTERRUPTED.into()));
                }
                let part =
                    shards::load_partial(path, policy(skip_nonfinite), precision(fast), &report)?;
                parts.push((path.clone(), part));
            }
            shards::merge_partials(&parts)
        })
    });
    let merged = p.finish(merged)?;
    Ok((wrap(merged.layers), merged.sources))
}

/// Adds the shard functions and the format's limits to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("MAX_DIM", nil_core::limits::MAX_DIM)?;
    m.add("MAX_LAYERS", nil_core::limits::MAX_LAYERS)?;
    m.add("MAX_NAME_BYTES", nil_core::limits::MAX_NAME_BYTES)?;
    m.add(
        "RESERVED_NAMES",
        nil_core::limits::RESERVED_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    )?;
    m.add_function(wrap_pyfunction!(input_kind, m)?)?;
    m.add_function(wrap_pyfunction!(shard_write, m)?)?;
    m.add_function(wrap_pyfunction!(manifest_write, m)?)?;
    m.add_function(wrap_pyfunction!(manifest_read, m)?)?;
    m.add_function(wrap_pyfunction!(shard_verify, m)?)?;
    m.add_function(wrap_pyfunction!(shard_stream, m)?)?;
    m.add_function(wrap_pyfunction!(file_blake3, m)?)?;
    m.add_function(wrap_pyfunction!(verify_capture, m)?)?;
    m.add_function(wrap_pyfunction!(reduce_capture, m)?)?;
    m.add_function(wrap_pyfunction!(partial_write, m)?)?;
    m.add_function(wrap_pyfunction!(partial_read, m)?)?;
    m.add_function(wrap_pyfunction!(partial_merge, m)?)?;
    Ok(())
}
