//! Symmetric eigendecomposition (faer), shared by the spectrum statistics and the NFA power.

use faer::{Mat, Side};

/// Eigenvalues (ascending) and eigenvectors (columns, column-major k×k) of a symmetric row-major matrix.
pub fn sym_eigen(m: &[f64], k: usize) -> Option<(Vec<f64>, Vec<f64>)> {
    let a = Mat::<f64>::from_fn(k, k, |i, j| m[i * k + j]);
    let evd = a.self_adjoint_eigen(Side::Lower).ok()?;
    let vals: Vec<f64> = (0..k).map(|i| evd.S().column_vector()[i]).collect();
    let u = evd.U();
    let mut vecs = vec![0.0; k * k];
    for j in 0..k {
        for i in 0..k {
            vecs[j * k + i] = u[(i, j)];
        }
    }
    Some((vals, vecs))
}

/// Eigenvalues (ascending) of a symmetric row-major matrix.
pub fn sym_eigenvalues(m: &[f64], k: usize) -> Option<Vec<f64>> {
    let a = Mat::<f64>::from_fn(k, k, |i, j| m[i * k + j]);
    a.self_adjoint_eigenvalues(Side::Lower).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagonal_and_rotation() {
        let (vals, vecs) = sym_eigen(&[2.0, 1.0, 1.0, 2.0], 2).unwrap();
        assert!((vals[0] - 1.0).abs() < 1e-14 && (vals[1] - 3.0).abs() < 1e-14);
        let v = &vecs[2..4];
        assert!((v[0].abs() - 0.5f64.sqrt()).abs() < 1e-12 && (v[0] - v[1]).abs() < 1e-12);
        assert_eq!(sym_eigenvalues(&[5.0], 1).unwrap(), vec![5.0]);
    }
}
