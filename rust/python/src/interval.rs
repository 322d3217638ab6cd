//! Bindings of the interval fitting and correlation statistics (nil-core `interval`, `corr`).
//! Columns arrive as float64 arrays; the core's serialisable result is handed back as nested
//! dicts and lists (NaN arrives as None; the `nil.interval` facade restores it).

use crate::errors::to_py;
use crate::pool::{detached, with_pool};
use nil_core::corr::{correlate, CorrConvention};
use nil_core::interval::{fit_interval as core_fit, IntervalOptions, RunsTable};
use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::Value;

fn to_object<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.into_pyobject(py)?.into_any(),
            (None, Some(i)) => i.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => s.into_pyobject(py)?.into_any(),
        Value::Array(a) => {
            let items = a
                .iter()
                .map(|x| to_object(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        Value::Object(o) => {
            let d = PyDict::new(py);
            for (k, x) in o {
                d.set_item(k, to_object(py, x)?)?;
            }
            d.into_any()
        }
    })
}

fn serialised<T: serde::Serialize>(v: &T) -> PyResult<Value> {
    serde_json::to_value(v).map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))
}

/// Efficient interval of a runs table (raw binding; use nil.fit_interval).
#[pyfunction]
#[pyo3(signature = (budget, ratio, loss, metrics, *, eps, bootstrap, seed, ci, interval_budgets,
    frontier_x, permutations, huber=true, anomaly_threshold=4.0, correlation="nil"))]
#[allow(clippy::too_many_arguments)]
fn fit_interval<'py>(
    py: Python<'py>,
    budget: PyReadonlyArray1<'py, f64>,
    ratio: PyReadonlyArray1<'py, f64>,
    loss: PyReadonlyArray1<'py, f64>,
    metrics: Vec<(String, PyReadonlyArray1<'py, f64>)>,
    eps: f64,
    bootstrap: usize,
    seed: u64,
    ci: f64,
    interval_budgets: Option<Vec<f64>>,
    frontier_x: Vec<String>,
    permutations: usize,
    huber: bool,
    anomaly_threshold: f64,
    correlation: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let b = budget.as_array().to_vec();
    let r = ratio.as_array().to_vec();
    let l = loss.as_array().to_vec();
    let m: Vec<(String, Vec<f64>)> = metrics
        .iter()
        .map(|(n, a)| (n.clone(), a.as_array().to_vec()))
        .collect();
    let opts = IntervalOptions {
        eps,
        bootstrap,
        seed,
        ci,
        interval_budgets,
        frontier_x,
        permutations,
        huber,
        anomaly_threshold,
        correlation: CorrConvention::parse(correlation).map_err(to_py)?,
    };
    let result = detached(py, || {
        with_pool(|| {
            let runs = RunsTable {
                budget: &b,
                ratio: &r,
                loss: &l,
                metrics: m.iter().map(|(n, c)| (n.clone(), c.as_slice())).collect(),
            };
            core_fit(&runs, &opts)
        })
    })
    .map_err(to_py)?;
    to_object(py, &serialised(&result)?)
}

/// Pearson, average-rank Spearman and permutation p-values of the finite pairs of x and y.
#[pyfunction]
#[pyo3(signature = (x, y, permutations, seed))]
fn correlation<'py>(
    py: Python<'py>,
    x: PyReadonlyArray1<'py, f64>,
    y: PyReadonlyArray1<'py, f64>,
    permutations: usize,
    seed: u64,
) -> PyResult<Bound<'py, PyAny>> {
    let (xs, ys) = (x.as_array().to_vec(), y.as_array().to_vec());
    if xs.len() != ys.len() {
        return Err(to_py(nil_core::NilError::shape(
            "correlation: y",
            format!("{} values (the length of x)", xs.len()),
            ys.len(),
        )));
    }
    let c = detached(py, || with_pool(|| correlate(&xs, &ys, permutations, seed)));
    to_object(py, &serialised(&c)?)
}

/// Adds this module's functions to `nil._core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fit_interval, m)?)?;
    m.add_function(wrap_pyfunction!(correlation, m)?)?;
    m.add("MIN_SHAPES", nil_core::interval::profile::MIN_SHAPES)?;
    Ok(())
}
