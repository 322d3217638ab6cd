//! nil._core: thin PyO3 bindings over nil-core. No math lives here: arrays in, core call with the
//! interpreter released on nil's own thread pool, dicts and arrays out, errors mapped to nil.errors.

mod errors;
mod interval;
mod pool;
mod shards;
mod symbolic;

use errors::to_py;
use nil_core::dtype::{view_as_bf16, view_as_f16};
use nil_core::gram::Precision;
use nil_core::{
    agop_file, nfa, stats, superposition, AgopAccumulator as CoreAcc, Convention, NonFinitePolicy,
    RowDType,
};
use numpy::ndarray::{Array2, ArrayView2};
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray2};
use pool::{detached, with_pool};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::HashMap;
use std::path::PathBuf;

fn precision(fast: bool) -> Precision {
    if fast {
        Precision::Fast
    } else {
        Precision::Exact
    }
}

fn policy(skip_nonfinite: bool) -> NonFinitePolicy {
    if skip_nonfinite {
        NonFinitePolicy::Skip
    } else {
        NonFinitePolicy::Raise
    }
}

fn square_to_py<'py>(py: Python<'py>, d: usize, v: Vec<f64>) -> Bound<'py, PyArray2<f64>> {
    Array2::from_shape_vec((d, d), v)
        .expect("d*d values")
        .into_pyarray(py)
}

/// Streaming (1/n)·GᵀG in f64 (raw binding; use nil.AgopAccumulator).
#[pyclass(module = "nil._core", name = "AgopAccumulator")]
#[derive(Clone)]
struct PyAgop {
    inner: CoreAcc,
}

#[pymethods]
impl PyAgop {
    #[new]
    fn new(dim: usize) -> PyResult<Self> {
        Ok(Self {
            inner: CoreAcc::new(dim).map_err(to_py)?,
        })
    }

    fn update_f32(
        &mut self,
        py: Python<'_>,
        rows: PyReadonlyArray2<'_, f32>,
        skip_nonfinite: bool,
        fast: bool,
    ) -> PyResult<()> {
        let view = rows.as_array();
        let inner = &mut self.inner;
        detached(py, || {
            with_pool(|| inner.update_with(view, policy(skip_nonfinite), precision(fast)))
        })
        .map_err(to_py)
    }

    fn update_f64(
        &mut self,
        py: Python<'_>,
        rows: PyReadonlyArray2<'_, f64>,
        skip_nonfinite: bool,
        fast: bool,
    ) -> PyResult<()> {
        let view = rows.as_array();
        let inner = &mut self.inner;
        detached(py, || {
            with_pool(|| inner.update_with(view, policy(skip_nonfinite), precision(fast)))
        })
        .map_err(to_py)
    }

    /// Rows given as 16-bit words (a uint16 view of float16 or bfloat16 data).
    fn update_bits(
        &mut self,
        py: Python<'_>,
        rows: PyReadonlyArray2<'_, u16>,
        dtype: &str,
        skip_nonfinite: bool,
        fast: bool,
    ) -> PyResult<()> {
        let view = rows.as_array();
        let inner = &mut self.inner;
        let kind = RowDType::parse(dtype);
        detached(py, || {
            with_pool(|| match kind {
                Some(RowDType::F16) => {
                    inner.update_with(view_as_f16(view), policy(skip_nonfinite), precision(fast))
                }
                Some(RowDType::BF16) => {
                    inner.update_with(view_as_bf16(view), policy(skip_nonfinite), precision(fast))
                }
                _ => Err(nil_core::NilError::DType {
                    context: "AgopAccumulator.update".into(),
                    expected: "float16 or bfloat16 for 16-bit words".into(),
                    found: dtype.into(),
                }),
            })
        })
        .map_err(to_py)
    }

    fn merge(slf: &Bound<'_, Self>, other: &Bound<'_, Self>) -> PyResult<()> {
        let o = other.borrow().inner.clone();
        slf.borrow_mut().inner.merge(&o).map_err(to_py)
    }

    fn matrix<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f64>> {
        let inner = &self.inner;
        let m = detached(py, || with_pool(|| inner.matrix()));
        square_to_py(py, inner.dim(), m)
    }

    fn sum<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f64>> {
        let inner = &self.inner;
        let m = detached(py, || with_pool(|| inner.sum_matrix()));
        square_to_py(py, inner.dim(), m)
    }

    #[getter]
    fn count(&self) -> u64 {
        self.inner.count()
    }

    #[getter]
    fn nonfinite(&self) -> u64 {
        self.inner.nonfinite()
    }

    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn copy(&self) -> Self {
        self.clone()
    }

    /// Rebuilds an accumulator from an exact sum GᵀG (d×d, float64) and its row counts.
    #[staticmethod]
    #[pyo3(signature = (sum, count, nonfinite=0))]
    fn from_sum(sum: PyReadonlyArray2<'_, f64>, count: u64, nonfinite: u64) -> PyResult<Self> {
        let view = sum.as_array();
        let (rows, cols) = view.dim();
        if rows != cols {
            return Err(to_py(nil_core::NilError::shape(
                "AgopAccumulator.from_sum: sum",
                "a square d×d matrix",
                format!("{rows}x{cols}"),
            )));
        }
        let flat: Vec<f64> = view.iter().copied().collect();
        Ok(Self {
            inner: CoreAcc::from_parts(rows, &flat, count, nonfinite).map_err(to_py)?,
        })
    }
}

/// Writes named accumulators to one safetensors file atomically.
#[pyfunction]
fn save_accumulators(
    py: Python<'_>,
    path: PathBuf,
    entries: Vec<(String, PyRef<'_, PyAgop>)>,
    metadata: HashMap<String, String>,
) -> PyResult<()> {
    let owned: Vec<(String, CoreAcc)> = entries
        .iter()
        .map(|(n, a)| (n.clone(), a.inner.clone()))
        .collect();
    detached(py, || {
        let refs: Vec<(String, &CoreAcc)> = owned.iter().map(|(n, a)| (n.clone(), a)).collect();
        agop_file::write_accumulators(&path, &refs, &metadata)
    })
    .map_err(to_py)
}

/// Reads every accumulator of a file written by `save_accumulators`, as (name, accumulator) pairs.
#[pyfunction]
fn load_accumulators(py: Python<'_>, path: PathBuf) -> PyResult<Vec<(String, PyAgop)>> {
    let items = detached(py, || agop_file::read_accumulators(&path)).map_err(to_py)?;
    Ok(items
        .into_iter()
        .map(|(n, a)| (n, PyAgop { inner: a }))
        .collect())
}

fn stats_dict<'py>(py: Python<'py>, s: &stats::InteractionStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("k", s.k)?;
    d.set_item("frobenius", s.frobenius)?;
    d.set_item("diagonal", s.diagonal)?;
    d.set_item("aofe", s.aofe)?;
    d.set_item("aofe_ratio", s.aofe_ratio)?;
    d.set_item("weighted_mean_cos2", s.weighted_mean_cos2)?;
    d.set_item("trace", s.trace)?;
    d.set_item("participation_ratio", s.participation_ratio)?;
    d.set_item("effective_rank", s.effective_rank)?;
    d.set_item("top_share", s.top_share)?;
    d.set_item("degenerate", s.degenerate)?;
    d.set_item("spectrum", s.spectrum)?;
    d.set_item("null_rank_one", s.null_rank_one)?;
    d.set_item("null_rotation", s.null_rotation)?;
    d.set_item("excess_over_rotation", s.excess_over_rotation)?;
    d.set_item("gaussian_rank", s.gaussian_rank)?;
    Ok(d)
}

/// Interaction statistics of a square float64 matrix, as a dict.
#[pyfunction]
fn interaction_stats<'py>(
    py: Python<'py>,
    m: PyReadonlyArray2<'py, f64>,
    convention: &str,
    spectrum: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let conv = Convention::parse(convention).map_err(to_py)?;
    let view = m.as_array();
    let s = detached(py, || {
        with_pool(|| stats::interaction_stats(view, conv, spectrum))
    })
    .map_err(to_py)?;
    stats_dict(py, &s)
}

fn summary_dict<'py>(py: Python<'py>, s: &superposition::Summary) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("mean", s.mean)?;
    d.set_item("std", s.std)?;
    d.set_item("min", s.min)?;
    d.set_item("median", s.median)?;
    d.set_item("max", s.max)?;
    Ok(d)
}

fn superposition_dict<'py>(
    py: Python<'py>,
    s: superposition::SuperpositionStats,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("features", s.features)?;
    d.set_item("dim", s.dim)?;
    d.set_item("zero_rows", s.zero_rows)?;
    d.set_item("row_norms", summary_dict(py, &s.row_norms)?)?;
    d.set_item("fraction_represented", s.fraction_represented)?;
    d.set_item("mean_sq_overlap", s.mean_sq_overlap)?;
    d.set_item("dimensionality", summary_dict(py, &s.dimensionality)?)?;
    d.set_item("dimensionality_sum", s.dimensionality_sum)?;
    d.set_item("wtw", stats_dict(py, &s.wtw)?)?;
    d.set_item("wtw_matrix", square_to_py(py, s.dim, s.wtw_matrix))?;
    d.set_item("null_sigma2", s.null_sigma2)?;
    d.set_item("null_row_norm_mean", s.null_row_norm_mean)?;
    d.set_item("null_fraction_represented", s.null_fraction_represented)?;
    d.set_item("null_mean_sq_overlap", s.null_mean_sq_overlap)?;
    d.set_item("null_dimensionality_mean", s.null_dimensionality_mean)?;
    d.set_item("null_wtw_aofe_ratio", s.null_wtw_aofe_ratio)?;
    d.set_item("null_wtw_weighted_mean_cos2", s.null_wtw_weighted_mean_cos2)?;
    d.set_item(
        "null_wtw_participation_ratio",
        s.null_wtw_participation_ratio,
    )?;
    Ok(d)
}

fn run_superposition<T: nil_core::Widen>(
    view: ArrayView2<'_, T>,
    thresholds: &[f64],
    spectrum: bool,
) -> nil_core::Result<superposition::SuperpositionStats> {
    superposition::superposition_stats(view, thresholds, spectrum)
}

/// Superposition statistics of W given as float32/float64, or as 16-bit words with `dtype`.
#[pyfunction]
#[pyo3(signature = (w, thresholds, spectrum, dtype=None))]
fn superposition_stats<'py>(
    py: Python<'py>,
    w: &Bound<'py, PyAny>,
    thresholds: Vec<f64>,
    spectrum: bool,
    dtype: Option<&str>,
) -> PyResult<Bound<'py, PyDict>> {
    let result = if let Ok(a) = w.extract::<PyReadonlyArray2<'py, f32>>() {
        let v = a.as_array();
        detached(py, || {
            with_pool(|| run_superposition(v, &thresholds, spectrum))
        })
    } else if let Ok(a) = w.extract::<PyReadonlyArray2<'py, f64>>() {
        let v = a.as_array();
        detached(py, || {
            with_pool(|| run_superposition(v, &thresholds, spectrum))
        })
    } else if let Ok(a) = w.extract::<PyReadonlyArray2<'py, u16>>() {
        let v = a.as_array();
        match dtype.and_then(RowDType::parse) {
            Some(RowDType::F16) => detached(py, || {
                with_pool(|| run_superposition(view_as_f16(v), &thresholds, spectrum))
            }),
            Some(RowDType::BF16) => detached(py, || {
                with_pool(|| run_superposition(view_as_bf16(v), &thresholds, spectrum))
            }),
            _ => {
                return Err(to_py(nil_core::NilError::DType {
                    context: "superposition_stats: W".into(),
                    expected: "float16 or bfloat16 for 16-bit words".into(),
                    found: format!("{dtype:?}"),
                }))
            }
        }
    } else {
        return Err(to_py(nil_core::NilError::DType {
            context: "superposition_stats: W".into(),
            expected: "a 2-D float64, float32, float16 or bfloat16 array".into(),
            found: w.get_type().name()?.to_string(),
        }));
    };
    superposition_dict(py, result.map_err(to_py)?)
}

fn corr_dict<'py>(py: Python<'py>, c: &nfa::NfaCorrelation) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("gamma", c.gamma)?;
    d.set_item("cosine", c.cosine)?;
    d.set_item("pearson_all", c.pearson_all)?;
    d.set_item("pearson_offdiag", c.pearson_offdiag)?;
    Ok(d)
}

/// NFA correlations of WᵀW with AGOP^power.
#[pyfunction]
fn nfa_correlation<'py>(
    py: Python<'py>,
    wtw: PyReadonlyArray2<'py, f64>,
    agop: PyReadonlyArray2<'py, f64>,
    power: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let (a, g) = (wtw.as_array(), agop.as_array());
    let c = detached(py, || with_pool(|| nfa::nfa_correlation(a, g, power))).map_err(to_py)?;
    corr_dict(py, &c)
}

/// Best NFA exponent γ in [lo, hi] under a criterion, with the spectral estimate.
#[pyfunction]
fn fit_nfa_power<'py>(
    py: Python<'py>,
    wtw: PyReadonlyArray2<'py, f64>,
    agop: PyReadonlyArray2<'py, f64>,
    criterion: &str,
    lo: f64,
    hi: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let crit = nfa::Criterion::parse(criterion).map_err(to_py)?;
    let (a, g) = (wtw.as_array(), agop.as_array());
    let f = detached(py, || with_pool(|| nfa::fit_nfa_power(a, g, crit, lo, hi))).map_err(to_py)?;
    let d = PyDict::new(py);
    d.set_item("gamma", f.gamma)?;
    d.set_item("criterion", criterion)?;
    d.set_item("best", corr_dict(py, &f.best)?)?;
    d.set_item("at_half", corr_dict(py, &f.at_half)?)?;
    d.set_item("at_one", corr_dict(py, &f.at_one)?)?;
    d.set_item("spectral_gamma", f.spectral_gamma)?;
    d.set_item("spectral_points", f.spectral_points)?;
    Ok(d)
}

/// Number of threads nil's pool uses in this process.
#[pyfunction]
fn num_threads() -> usize {
    with_pool(rayon::current_num_threads)
}

#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.setattr(
        "__doc__",
        "Raw bindings of nil's Rust core; use the typed API in `nil` instead.",
    )?;
    m.add_class::<PyAgop>()?;
    m.add_function(wrap_pyfunction!(save_accumulators, m)?)?;
    m.add_function(wrap_pyfunction!(load_accumulators, m)?)?;
    m.add_function(wrap_pyfunction!(interaction_stats, m)?)?;
    m.add_function(wrap_pyfunction!(superposition_stats, m)?)?;
    m.add_function(wrap_pyfunction!(nfa_correlation, m)?)?;
    m.add_function(wrap_pyfunction!(fit_nfa_power, m)?)?;
    m.add_function(wrap_pyfunction!(num_threads, m)?)?;
    shards::register(m)?;
    interval::register(m)?;
    symbolic::register(m)?;
    Ok(())
}
