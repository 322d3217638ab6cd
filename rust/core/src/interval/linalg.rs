//! Dense solves for the tiny systems of the fits (3×3 normal equations, 5×5 Levenberg–Marquardt
//! steps): Gaussian elimination with partial pivoting, in f64.

/// Solves A·x = b for a row-major n×n `a`; `None` when A is singular to working precision.
pub fn solve(a: &[f64], b: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut m = a.to_vec();
    let mut x = b.to_vec();
    let scale = m.iter().fold(0.0f64, |s, v| s.max(v.abs()));
    if !(scale > 0.0) || !scale.is_finite() {
        return None;
    }
    for col in 0..n {
        let piv =
            (col..n).max_by(|&i, &j| m[i * n + col].abs().total_cmp(&m[j * n + col].abs()))?;
        if m[piv * n + col].abs() <= 1e-14 * scale {
            return None;
        }
        if piv != col {
            for k in 0..n {
                m.swap(piv * n + k, col * n + k);
            }
            x.swap(piv, col);
        }
        for r in col + 1..n {
            let f = m[r * n + col] / m[col * n + col];
            if f != 0.0 {
                for k in col..n {
                    m[r * n + k] -= f * m[col * n + k];
                }
                x[r] -= f * x[col];
            }
        }
    }
    for col in (0..n).rev() {
        let mut s = x[col];
        for k in col + 1..n {
            s -= m[col * n + k] * x[k];
        }
        x[col] = s / m[col * n + col];
    }
    Some(x)
}

/// The inverse of a row-major n×n matrix, column by column; `None` when singular.
pub fn inverse(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut inv = vec![0.0; n * n];
    for c in 0..n {
        let mut e = vec![0.0; n];
        e[c] = 1.0;
        let col = solve(a, &e, n)?;
        for r in 0..n {
            inv[r * n + c] = col[r];
        }
    }
    Some(inv)
}

/// The inverse of a row-major 3×3 matrix by cofactors; `None` when its determinant is zero
/// relative to the product of the row norms (singular to working precision).
pub fn inverse3(a: &[f64; 9]) -> Option<[f64; 9]> {
    let c = [
        a[4] * a[8] - a[5] * a[7],
        a[5] * a[6] - a[3] * a[8],
        a[3] * a[7] - a[4] * a[6],
    ];
    let det = a[0] * c[0] + a[1] * c[1] + a[2] * c[2];
    let norm = |r: usize| (a[3 * r].powi(2) + a[3 * r + 1].powi(2) + a[3 * r + 2].powi(2)).sqrt();
    let scale = norm(0) * norm(1) * norm(2);
    if !(det.abs() > 1e-14 * scale) || !det.is_finite() {
        return None;
    }
    let inv_det = 1.0 / det;
    Some([
        c[0] * inv_det,
        (a[2] * a[7] - a[1] * a[8]) * inv_det,
        (a[1] * a[5] - a[2] * a[4]) * inv_det,
        c[1] * inv_det,
        (a[0] * a[8] - a[2] * a[6]) * inv_det,
        (a[2] * a[3] - a[0] * a[5]) * inv_det,
        c[2] * inv_det,
        (a[1] * a[6] - a[0] * a[7]) * inv_det,
        (a[0] * a[4] - a[1] * a[3]) * inv_det,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_and_inverts() {
        let a = [4.0, 1.0, 2.0, 1.0, 3.0, 0.5, 2.0, 0.5, 5.0];
        let x = solve(&a, &[1.0, 2.0, 3.0], 3).unwrap();
        for r in 0..3 {
            let s: f64 = (0..3).map(|k| a[r * 3 + k] * x[k]).sum();
            assert!((s - [1.0, 2.0, 3.0][r]).abs() < 1e-12);
        }
        let inv = inverse(&a, 3).unwrap();
        for r in 0..3 {
            for c in 0..3 {
                let s: f64 = (0..3).map(|k| a[r * 3 + k] * inv[k * 3 + c]).sum();
                assert!((s - if r == c { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        assert!(solve(&[1.0, 2.0, 2.0, 4.0], &[1.0, 1.0], 2).is_none());
        let i3 = inverse3(&a).unwrap();
        for k in 0..9 {
            assert!((i3[k] - inv[k]).abs() < 1e-13);
        }
        assert!(inverse3(&[1.0, 2.0, 3.0, 2.0, 4.0, 6.0, 0.0, 1.0, 1.0]).is_none());
    }
}
