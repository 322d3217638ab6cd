//! Restarted, averaged PDHG for the AND–OR decomposition in (w, z) form (see the parent module).
//!
//! Saddle problem: min over |w + z| ≤ b of max over dual points ya, yo in the dual ball of g of
//! ya·μ(v/2 + w) + yo·Ω(v/2 + z). Iteration (Chambolle–Pock with diagonal steps T, Σ):
//! x' = Π_slab(x − T Kᵀy) in the T⁻¹ metric, x̄ = 2x' − x, y' = Π_ball(y + Σ(K x̄ + c)). Steps are
//! Pock–Chambolle's (α = 1): σ_S = 1/(row sum of |K|), τ_T = 1/(column sum of |K|), so that
//! ‖Σ^½ K T^½‖ ≤ 1.
//!
//! Certificate: for dual points with μᵀya_i = Ωᵀyo_i (the condition for the free p), the dual
//! value Σ_i ya_i·μ(v_i/2) + yo_i·Ω(v_i/2) − b_i‖μᵀya_i‖₁ is a lower bound on the optimum. From
//! the iterates' ya, yo ← Rᵀμᵀya (R = Ω⁻¹) enforces the condition, and scaling both into the
//! dual ball keeps it feasible; the same is tried from yo (ya ← ζᵀΩᵀyo) and the better bound kept.
//! Restarts: every `check_every` iterations the current and the averaged iterates are scored by
//! their certified gap; when the better one has shrunk the gap at the last restart by 5×, the
//! method restarts from it (restarted PDHG, Applegate et al. 2023).

use super::{Problem, Solution};
use crate::subsets::{transform_serial, Transform};

/// Diagonal step sizes for one n.
pub(crate) struct Steps {
    tau_w: Vec<f64>,
    tau_z: Vec<f64>,
    sig_a: Vec<f64>,
    sig_o: Vec<f64>,
}

impl Steps {
    /// Row and column sums of |μ| and |Ω| (their nonzeros are ±1), by the additive transforms
    /// applied to ones; `weight` shifts step from the dual to the primal side.
    pub fn new(n: usize, weight: f64) -> Self {
        let len = 1usize << n;
        let mut s = Vec::new();
        let ones = vec![1.0; len];
        let mut rows_and = ones.clone();
        transform_serial(&mut rows_and, n, Transform::Zeta, false, &mut s);
        let mut cols_and = ones.clone();
        transform_serial(&mut cols_and, n, Transform::SupersetZeta, false, &mut s);
        // |Ω|: rows S ≠ ∅ have the pattern of μ(F·), row ∅ is e_∅.
        let mut rows_or = rows_and.clone();
        rows_or[0] = 1.0;
        // Columns: |Ω|ᵀ1 = F ζᵀ(1 − e_∅) + e_∅.
        let mut cols_or = ones;
        cols_or[0] = 0.0;
        transform_serial(&mut cols_or, n, Transform::SupersetZeta, false, &mut s);
        cols_or.reverse();
        cols_or[0] += 1.0;
        let inv = |v: Vec<f64>, k: f64| v.into_iter().map(|x| k / x).collect();
        Steps {
            tau_w: inv(cols_and, 1.0 / weight),
            tau_z: inv(cols_or, 1.0 / weight),
            sig_a: inv(rows_and, weight),
            sig_o: inv(rows_or, weight),
        }
    }
}

/// The primal and dual iterates of one problem (each m × 2^n).
#[derive(Clone)]
struct Point {
    w: Vec<f64>,
    z: Vec<f64>,
    ya: Vec<f64>,
    yo: Vec<f64>,
}

impl Point {
    fn zeros(size: usize) -> Self {
        Point {
            w: vec![0.0; size],
            z: vec![0.0; size],
            ya: vec![0.0; size],
            yo: vec![0.0; size],
        }
    }

    fn parts_mut(&mut self) -> [&mut Vec<f64>; 4] {
        [&mut self.w, &mut self.z, &mut self.ya, &mut self.yo]
    }
}

struct Work {
    a: Vec<f64>,
    o: Vec<f64>,
    ga: Vec<f64>,
    go: Vec<f64>,
    scratch: Vec<f64>,
}

/// Projects (w, z) onto the slab |w + z| ≤ b in the metric diag(τ_w, τ_z)⁻¹.
fn project_slab(w: &mut [f64], z: &mut [f64], tw: &[f64], tz: &[f64], b: f64) {
    for (((wi, zi), a), c) in w.iter_mut().zip(z.iter_mut()).zip(tw).zip(tz) {
        let s = *wi + *zi;
        let excess = s - s.clamp(-b, b);
        if excess != 0.0 {
            let lam = excess / (a + c);
            *wi -= a * lam;
            *zi -= c * lam;
        }
    }
}

/// Objective of the primal point (w, z); leaves the interactions in `work.a`, `work.o`.
fn primal(pr: &Problem, w: &[f64], z: &[f64], work: &mut Work) -> f64 {
    pr.interactions(w, z, &mut work.a, &mut work.o, &mut work.scratch);
    pr.objective(&work.a, &work.o)
}

/// The dual value of (ya, yo) once made feasible (see the module docs); −∞ if it cannot be.
fn dual_bound(
    pr: &Problem,
    ya: &[f64],
    yo: &[f64],
    c_and: &[f64],
    c_or: &[f64],
    work: &mut Work,
) -> f64 {
    let len = pr.len;
    let mut best = f64::NEG_INFINITY;
    for from_and in [true, false] {
        // g = μᵀya (then yo' = Rᵀg) or g = Ωᵀyo (then ya' = ζᵀg).
        let (g, other) = (&mut work.ga, &mut work.go);
        g.copy_from_slice(if from_and { ya } else { yo });
        let t = if from_and {
            Transform::Mobius
        } else {
            Transform::Or
        };
        transform_serial(g, pr.n, t, true, &mut work.scratch);
        other.copy_from_slice(g);
        let back = if from_and {
            Transform::OrInverse
        } else {
            Transform::Zeta
        };
        transform_serial(other, pr.n, back, true, &mut work.scratch);
        let (da, dor): (&[f64], &[f64]) = if from_and { (ya, other) } else { (other, yo) };
        let mut scale = 1.0f64;
        let mut u = vec![0.0; pr.m];
        for y in [da, dor] {
            for s in 0..len {
                for (i, ui) in u.iter_mut().enumerate() {
                    *ui = y[i * len + s];
                }
                scale = scale.max(pr.owl.dual_norm(&u));
            }
        }
        let mut value = 0.0;
        for i in 0..pr.m {
            let r = i * len..(i + 1) * len;
            let lin: f64 = da[r.clone()]
                .iter()
                .zip(&c_and[r.clone()])
                .map(|(x, c)| x * c)
                .sum::<f64>()
                + dor[r.clone()]
                    .iter()
                    .zip(&c_or[r.clone()])
                    .map(|(x, c)| x * c)
                    .sum::<f64>();
            let l1: f64 = g[r].iter().map(|x| x.abs()).sum();
            value += lin - pr.bounds[i] * l1;
        }
        if scale.is_finite() {
            best = best.max(value / scale);
        }
    }
    best
}

/// Solves one problem.
pub(crate) fn solve(
    pr: &Problem,
    st: &Steps,
    max_iter: usize,
    tol: f64,
    check_every: usize,
) -> Solution {
    let (len, m) = (pr.len, pr.m);
    let size = m * len;
    let mut work = Work {
        a: vec![0.0; size],
        o: vec![0.0; size],
        ga: vec![0.0; size],
        go: vec![0.0; size],
        scratch: Vec::new(),
    };
    let zero = vec![0.0; size];
    primal(pr, &zero, &zero, &mut work);
    let (c_and, c_or) = (work.a.clone(), work.o.clone());
    let mut x = Point::zeros(size);
    let mut avg = Point::zeros(size);
    let mut count = 0usize;
    let (mut wn, mut zn) = (vec![0.0; size], vec![0.0; size]);
    let mut best_obj = pr.objective(&c_and, &c_or);
    let (mut best_w, mut best_z) = (zero.clone(), zero);
    let mut best_lower = 0.0f64;
    let mut restart_gap = f64::INFINITY;
    let mut iterations = 0;
    let mut converged = best_obj <= f64::MIN_POSITIVE;
    while iterations < max_iter && !converged {
        // Primal step: x' = Π_slab(x − T Kᵀy).
        work.ga.copy_from_slice(&x.ya);
        transform_serial(
            &mut work.ga,
            pr.n,
            Transform::Mobius,
            true,
            &mut work.scratch,
        );
        work.go.copy_from_slice(&x.yo);
        transform_serial(&mut work.go, pr.n, Transform::Or, true, &mut work.scratch);
        for i in 0..m {
            let r = i * len..(i + 1) * len;
            for (j, k) in r.clone().enumerate() {
                wn[k] = x.w[k] - st.tau_w[j] * work.ga[k];
                zn[k] = x.z[k] - st.tau_z[j] * work.go[k];
            }
            project_slab(
                &mut wn[r.clone()],
                &mut zn[r],
                &st.tau_w,
                &st.tau_z,
                pr.bounds[i],
            );
        }
        // Dual step at the extrapolated point x̄ = 2x' − x: K x̄ + c = (μ, Ω)(v/2 + x̄).
        for k in 0..size {
            work.a[k] = pr.half_v[k] + 2.0 * wn[k] - x.w[k];
            work.o[k] = pr.half_v[k] + 2.0 * zn[k] - x.z[k];
        }
        transform_serial(
            &mut work.a,
            pr.n,
            Transform::Mobius,
            false,
            &mut work.scratch,
        );
        transform_serial(&mut work.o, pr.n, Transform::Or, false, &mut work.scratch);
        for (y, g, sig) in [
            (&mut x.ya, &work.a, &st.sig_a),
            (&mut x.yo, &work.o, &st.sig_o),
        ] {
            for (yr, gr) in y.chunks_exact_mut(len).zip(g.chunks_exact(len)) {
                if m == 1 {
                    // One model: the dual ball is [−1, 1].
                    for ((yi, gi), si) in yr.iter_mut().zip(gr).zip(sig.iter()) {
                        *yi = (*yi + si * gi).clamp(-1.0, 1.0);
                    }
                } else {
                    for ((yi, gi), si) in yr.iter_mut().zip(gr).zip(sig.iter()) {
                        *yi += si * gi;
                    }
                }
            }
            if m > 1 {
                pr.per_subset(y, |u| pr.owl.project_dual(u));
            }
        }
        std::mem::swap(&mut x.w, &mut wn);
        std::mem::swap(&mut x.z, &mut zn);
        iterations += 1;
        count += 1;
        let step = 1.0 / count as f64;
        for (a, c) in avg.parts_mut().into_iter().zip([&x.w, &x.z, &x.ya, &x.yo]) {
            for (ai, ci) in a.iter_mut().zip(c.iter()) {
                *ai += (ci - *ai) * step;
            }
        }
        if iterations % check_every != 0 && iterations != max_iter {
            continue;
        }
        // Score the current and the averaged iterate by their certified gaps.
        let mut gaps = [0.0; 2];
        for (slot, pt) in [&x, &avg].into_iter().enumerate() {
            let obj = primal(pr, &pt.w, &pt.z, &mut work);
            if obj < best_obj {
                best_obj = obj;
                best_w.copy_from_slice(&pt.w);
                best_z.copy_from_slice(&pt.z);
            }
            let lower = dual_bound(pr, &pt.ya, &pt.yo, &c_and, &c_or, &mut work);
            best_lower = best_lower.max(lower);
            gaps[slot] = obj - lower;
        }
        if best_obj - best_lower <= tol * best_obj || best_obj <= f64::MIN_POSITIVE {
            converged = true;
            break;
        }
        let better = if gaps[1] < gaps[0] { 1 } else { 0 };
        if restart_gap.is_infinite() {
            restart_gap = gaps[better];
        } else if gaps[better] <= 0.2 * restart_gap {
            if better == 1 {
                x = avg.clone();
            }
            restart_gap = gaps[better];
            avg = Point::zeros(size);
            count = 0;
        }
    }
    let lower = best_lower.min(best_obj);
    let objective = primal(pr, &best_w, &best_z, &mut work);
    let p = best_w
        .iter()
        .zip(&best_z)
        .map(|(w, z)| 0.5 * (w - z))
        .collect();
    let q = best_w.iter().zip(&best_z).map(|(w, z)| w + z).collect();
    Solution {
        p,
        q,
        i_and: work.a,
        i_or: work.o,
        objective,
        lower_bound: lower,
        iterations,
        converged,
    }
}
