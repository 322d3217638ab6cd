//! Bindings of the subset transforms and the AND–OR decomposition (nil-core `subsets`, `andor`).
//! Arrays are C-contiguous float64; transforms work in place on the caller's array.

use crate::errors::to_py;
use crate::pool::detached;
use nil_core::andor::{and_or_decompose as core_decompose, AndOrOptions, Solver};
use nil_core::subsets::{
    low_order_masks as core_masks, low_order_transform as core_low, players_of, transform_rows,
    LowOrderKind, Transform, SERIAL_BELOW,
};
use nil_core::NilError;
use numpy::ndarray::{Array1, Array3};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray2, PyReadonlyArray3, PyReadwriteArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;

fn contiguous_mut<'a>(
    x: &'a mut PyReadwriteArray2<'_, f64>,
    what: &str,
) -> PyResult<&'a mut [f64]> {
    x.as_slice_mut().map_err(|_| {
        to_py(NilError::shape(
            what,
            "a C-contiguous float64 array",
            "a strided view",
        ))
    })
}

/// Applies a subset transform in place to every row of x ([rows, 2^n], C-contiguous float64).
#[pyfunction]
fn subset_transform(
    py: Python<'_>,
    mut x: PyReadwriteArray2<'_, f64>,
    kind: &str,
    transpose: bool,
) -> PyResult<()> {
    let t = Transform::parse(kind).map_err(to_py)?;
    let cols = x.as_array().ncols();
    let n = players_of(cols, "subset_transform: x").map_err(to_py)?;
    let data = contiguous_mut(&mut x, "subset_transform: x")?;
    if data.len() < SERIAL_BELOW {
        // Microseconds of work: run it here rather than hand it to the pool.
        return transform_rows(data, n, t, transpose).map_err(to_py);
    }
    detached(py, || transform_rows(data, n, t, transpose)).map_err(to_py)
}

/// Bitmasks of the subsets of size ≤ k of n players, in graded colex order.
#[pyfunction]
fn low_order_masks<'py>(
    py: Python<'py>,
    n: usize,
    k: usize,
) -> PyResult<Bound<'py, PyArray1<u64>>> {
    let masks = core_masks(n, k).map_err(to_py)?;
    Ok(Array1::from_vec(masks).into_pyarray(py))
}

/// The order-≤k Möbius or zeta transform in place on rows of C(n, ≤k) values.
#[pyfunction]
fn low_order_transform(
    py: Python<'_>,
    mut x: PyReadwriteArray2<'_, f64>,
    n: usize,
    k: usize,
    kind: &str,
) -> PyResult<()> {
    let kind = LowOrderKind::parse(kind).map_err(to_py)?;
    let data = contiguous_mut(&mut x, "low_order_transform: x")?;
    detached(py, || core_low(data, n, k, kind)).map_err(to_py)
}

/// AND–OR decompositions of values [P, m, 2^n] under noise bounds [P, m] (raw binding; use
/// nil.symbolic.and_or).
#[pyfunction]
#[pyo3(signature = (values, bounds, *, alpha, solver, max_iter, tol, check_every, primal_weight, lr, steps, momentum))]
#[allow(clippy::too_many_arguments)]
fn and_or_decompose<'py>(
    py: Python<'py>,
    values: PyReadonlyArray3<'py, f64>,
    bounds: PyReadonlyArray2<'py, f64>,
    alpha: f64,
    solver: &str,
    max_iter: usize,
    tol: f64,
    check_every: usize,
    primal_weight: f64,
    lr: f64,
    steps: usize,
    momentum: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let (problems, models, cols) = values.as_array().dim();
    let n = players_of(cols, "and_or_decompose: values").map_err(to_py)?;
    let solver = match solver {
        "pdhg" => Solver::Pdhg {
            max_iter,
            tol,
            check_every,
            primal_weight,
        },
        "sgd" => Solver::Sgd {
            lr,
            steps,
            momentum,
        },
        other => {
            return Err(to_py(NilError::Value(format!(
                "and_or_decompose: solver must be \"pdhg\" or \"sgd\", found {other:?}"
            ))))
        }
    };
    if bounds.as_array().dim() != (problems, models) {
        return Err(to_py(NilError::shape(
            "and_or_decompose: bounds",
            format!("shape ({problems}, {models})"),
            format!("{:?}", bounds.as_array().dim()),
        )));
    }
    let v: Vec<f64> = values.as_array().iter().copied().collect();
    let b: Vec<f64> = bounds.as_array().iter().copied().collect();
    let opts = AndOrOptions { alpha, solver };
    let r = detached(py, || core_decompose(&v, &b, n, models, &opts)).map_err(to_py)?;
    let shape = (problems, models, cols);
    let cube = |x: Vec<f64>| Array3::from_shape_vec(shape, x).expect("P·m·2^n values");
    let d = PyDict::new(py);
    d.set_item("i_and", cube(r.i_and).into_pyarray(py))?;
    d.set_item("i_or", cube(r.i_or).into_pyarray(py))?;
    d.set_item("p", cube(r.p).into_pyarray(py))?;
    d.set_item("q", cube(r.q).into_pyarray(py))?;
    d.set_item("objective", Array1::from_vec(r.objective).into_pyarray(py))?;
    d.set_item(
        "lower_bound",
        Array1::from_vec(r.lower_bound).into_pyarray(py),
    )?;
    let iters: Vec<u64> = r.iterations.iter().map(|&i| i as u64).collect();
    d.set_item("iterations", Array1::from_vec(iters).into_pyarray(py))?;
    d.set_item("converged", Array1::from_vec(r.converged).into_pyarray(py))?;
    Ok(d)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(subset_transform, m)?)?;
    m.add_function(wrap_pyfunction!(low_order_masks, m)?)?;
    m.add_function(wrap_pyfunction!(low_order_transform, m)?)?;
    m.add_function(wrap_pyfunction!(and_or_decompose, m)?)?;
    Ok(())
}
