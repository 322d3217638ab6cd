//! Non-negative least squares in normal-equation form (Lawson–Hanson active set):
//! minimise ½·zᵀGz − hᵀz subject to z_j ≥ 0 for j ≥ `n_free` (the first `n_free` coordinates are
//! free). The shape-constrained fits of [`super::unimodal`] are tiny (tens of coordinates), so
//! each passive-set subproblem is a dense Cholesky solve.

/// In-place Cholesky solve of the k×k SPD system `a`·x = `b` (row-major, overwritten; `b` holds
/// x on return). Written out because the systems here are tiny (k ≲ 40) and solved hundreds of
/// thousands of times per table: a general dense library's per-call set-up costs more than the
/// O(k³/3) arithmetic itself. False when `a` is not positive definite to working precision.
fn cholesky_solve(a: &mut [f64], b: &mut [f64], k: usize) -> bool {
    for j in 0..k {
        let mut d = a[j * k + j];
        for p in 0..j {
            d -= a[j * k + p] * a[j * k + p];
        }
        if !(d > 0.0) || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        a[j * k + j] = d;
        for i in j + 1..k {
            let mut v = a[i * k + j];
            for p in 0..j {
                v -= a[i * k + p] * a[j * k + p];
            }
            a[i * k + j] = v / d;
        }
    }
    for i in 0..k {
        let mut v = b[i];
        for p in 0..i {
            v -= a[i * k + p] * b[p];
        }
        b[i] = v / a[i * k + i];
    }
    for i in (0..k).rev() {
        let mut v = b[i];
        for p in i + 1..k {
            v -= a[p * k + i] * b[p];
        }
        b[i] = v / a[i * k + i];
    }
    b.iter().all(|v| v.is_finite())
}

/// Solves G_PP·x = h_P for the passive coordinates `p` (a tiny ridge when G_PP is numerically
/// singular). None when even the ridged system cannot be factored.
fn passive_solve(g: &[f64], h: &[f64], n: usize, p: &[usize]) -> Option<Vec<f64>> {
    let k = p.len();
    let scale = p
        .iter()
        .map(|&i| g[i * n + i].abs())
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let mut a = vec![0.0; k * k];
    let mut x = vec![0.0; k];
    for ridge in [0.0, 1e-12, 1e-9] {
        for i in 0..k {
            for j in 0..k {
                a[i * k + j] = g[p[i] * n + p[j]] + if i == j { ridge * scale } else { 0.0 };
            }
            x[i] = h[p[i]];
        }
        if cholesky_solve(&mut a, &mut x, k) {
            return Some(x);
        }
    }
    None
}

/// Solves the symmetric positive-definite n×n system A·x = b (row-major `a`) by Cholesky; None
/// when A is not positive definite to working precision.
pub fn solve_spd(a: &[f64], b: &[f64], n: usize) -> Option<Vec<f64>> {
    let idx: Vec<usize> = (0..n).collect();
    passive_solve(a, b, n, &idx)
}

/// Lawson–Hanson NNLS on (G, h) of dimension `n`; `z` holds a start on entry (any values; its
/// positive coordinates seed the passive set, so the previous solution of a nearby problem is a
/// warm start; zeros are a cold start) and the solution on exit. Returns false when a subproblem
/// could not be solved (z is then left feasible but not optimal).
pub fn nnls(g: &[f64], h: &[f64], n: usize, n_free: usize, z: &mut [f64]) -> bool {
    debug_assert_eq!(g.len(), n * n);
    let tol = 1e-12 * h.iter().fold(0.0f64, |a, v| a.max(v.abs())).max(1e-300);
    for v in z[n_free..].iter_mut() {
        if !(*v > 0.0) {
            *v = 0.0;
        }
    }
    let mut passive: Vec<bool> = (0..n).map(|j| j < n_free || z[j] > 0.0).collect();
    let mut full = vec![0.0; n];
    for _outer in 0..(3 * n + 10) {
        // Optimal on the passive set, staying feasible: step from z towards the passive-set
        // solution as far as feasibility allows and drop the coordinates that reach zero.
        let mut solved = false;
        for _inner in 0..(3 * n + 10) {
            let idx: Vec<usize> = (0..n).filter(|&k| passive[k]).collect();
            let Some(s) = passive_solve(g, h, n, &idx) else {
                return false;
            };
            full.iter_mut().for_each(|v| *v = 0.0);
            for (&k, &v) in idx.iter().zip(&s) {
                full[k] = v;
            }
            let mut alpha = 1.0f64;
            for &k in idx.iter().filter(|&&k| k >= n_free) {
                if full[k] <= 0.0 {
                    let a = if z[k] > 0.0 {
                        z[k] / (z[k] - full[k])
                    } else {
                        0.0
                    };
                    alpha = alpha.min(a);
                }
            }
            if alpha >= 1.0 {
                z.copy_from_slice(&full);
                solved = true;
                break;
            }
            for k in 0..n {
                if passive[k] {
                    z[k] += alpha * (full[k] - z[k]);
                    if k >= n_free && z[k] <= 1e-15 * (1.0 + z[k].abs()) {
                        z[k] = 0.0;
                        passive[k] = false;
                    }
                } else {
                    z[k] = 0.0;
                }
            }
        }
        if !solved {
            return false;
        }
        // The most violated optimality condition among the zero coordinates joins the passive set.
        let mut best = None;
        let mut best_w = tol;
        for j in n_free..n {
            if passive[j] {
                continue;
            }
            let w = h[j] - (0..n).map(|k| g[j * n + k] * z[k]).sum::<f64>();
            if w > best_w {
                best_w = w;
                best = Some(j);
            }
        }
        let Some(j) = best else { return true };
        passive[j] = true;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: the best of all 2^n active sets whose solution is feasible.
    fn brute(g: &[f64], h: &[f64], n: usize, n_free: usize) -> f64 {
        let obj = |z: &[f64]| {
            let mut q = 0.0;
            for i in 0..n {
                for j in 0..n {
                    q += 0.5 * z[i] * g[i * n + j] * z[j];
                }
                q -= h[i] * z[i];
            }
            q
        };
        let mut best = f64::INFINITY;
        for mask in 0u32..(1 << n) {
            let idx: Vec<usize> = (0..n)
                .filter(|&j| j < n_free || mask >> j & 1 == 1)
                .collect();
            if let Some(s) = passive_solve(g, h, n, &idx) {
                if s.iter().zip(&idx).all(|(&v, &j)| j < n_free || v >= 0.0) {
                    let mut z = vec![0.0; n];
                    for (&j, v) in idx.iter().zip(s) {
                        z[j] = v;
                    }
                    best = best.min(obj(&z));
                }
            }
        }
        best
    }

    #[test]
    fn cholesky_matches_faer() {
        use faer::linalg::solvers::Solve;
        let mut rng = super::super::rng::Rng::stream(9, 0);
        for k in 1..12 {
            let m: Vec<f64> = (0..k * (k + 2)).map(|_| rng.normal()).collect();
            let mut a = vec![0.0; k * k];
            for i in 0..k {
                for j in 0..k {
                    a[i * k + j] = (0..k + 2).map(|r| m[r * k + i] * m[r * k + j]).sum();
                }
            }
            let b: Vec<f64> = (0..k).map(|_| rng.normal()).collect();
            let fa = faer::Mat::<f64>::from_fn(k, k, |i, j| a[i * k + j]);
            let fb = faer::Mat::<f64>::from_fn(k, 1, |i, _| b[i]);
            let want = fa.llt(faer::Side::Lower).unwrap().solve(&fb);
            let (mut a2, mut x) = (a.clone(), b.clone());
            assert!(cholesky_solve(&mut a2, &mut x, k));
            for i in 0..k {
                assert!((x[i] - want[(i, 0)]).abs() < 1e-8 * (1.0 + want[(i, 0)].abs()));
            }
        }
        let mut bad = vec![1.0, 2.0, 2.0, 1.0];
        assert!(!cholesky_solve(&mut bad, &mut [1.0, 1.0], 2));
    }

    #[test]
    fn matches_brute_force_on_random_problems() {
        let mut rng = super::super::rng::Rng::stream(7, 0);
        let mut unif = || rng.next_u64() as f64 / u64::MAX as f64 - 0.5;
        for trial in 0..200 {
            let n = 2 + trial % 5;
            let rows = n + 3;
            let a: Vec<f64> = (0..rows * n).map(|_| unif()).collect();
            let b: Vec<f64> = (0..rows).map(|_| unif()).collect();
            let mut g = vec![0.0; n * n];
            let mut h = vec![0.0; n];
            for r in 0..rows {
                for i in 0..n {
                    h[i] += a[r * n + i] * b[r];
                    for j in 0..n {
                        g[i * n + j] += a[r * n + i] * a[r * n + j];
                    }
                }
            }
            let n_free = trial % 2;
            let mut z = vec![0.0; n];
            assert!(nnls(&g, &h, n, n_free, &mut z));
            let q: f64 = (0..n)
                .map(|i| {
                    0.5 * z[i] * (0..n).map(|j| g[i * n + j] * z[j]).sum::<f64>() - h[i] * z[i]
                })
                .sum();
            let best = brute(&g, &h, n, n_free);
            assert!(
                q <= best + 1e-10 * (1.0 + best.abs()),
                "{trial}: {q} vs {best}"
            );
            assert!(z.iter().skip(n_free).all(|&v| v >= 0.0));
            // A warm start from the answer gives the same answer.
            let mut w = z.clone();
            assert!(nnls(&g, &h, n, n_free, &mut w));
            for (x, y) in z.iter().zip(&w) {
                assert!((x - y).abs() < 1e-9 * (1.0 + x.abs()));
            }
        }
    }
}
