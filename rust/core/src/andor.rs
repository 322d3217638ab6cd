//! The AND–OR decomposition of symbolic interactions with its sparsity objective (Li & Zhang
//! 2023; Chen et al. 2024), solved with the fast subset transforms for every linear map.
//!
//! A model's values v(x_T) over the 2^n coalitions are split as v_and = ½(v + q) + p and
//! v_or = ½(v + q) − p, with a free p and a bounded noise |q| ≤ b (elementwise); the AND
//! interactions are I_and = μ v_and (Möbius) and the OR interactions I_or = Ω v_or (the `Or`
//! transform of [`crate::subsets`]). The decomposition minimises
//!
//!   Σ_S g(I_and(S)) + Σ_S g(I_or(S)),
//!
//! where for one model g = |·| (the L1 norm of the literature's loss), and for m models decomposed
//! jointly (each with its own p, q and bound) g(u) = (1 − α)·max_i |u_i| + α·Σ_i |u_i| over the
//! models' interactions on S, which rewards the models for using the same subsets.
//!
//! Writing w = p + q/2 and z = q/2 − p, so that v_and = v/2 + w, v_or = v/2 + z and q = w + z,
//! the problem is min ‖μ(v/2 + w)‖ + ‖Ω(v/2 + z)‖ subject to |w + z| ≤ b: a linear program whose
//! operator is block diagonal (μ for the AND block, Ω for the OR block) and whose only coupling,
//! the slab |w + z| ≤ b, has an exact projection. Two solvers:
//!
//! - [`Solver::Pdhg`]: primal–dual hybrid gradient (Chambolle–Pock) with the diagonal step sizes of
//!   Pock–Chambolle 2011, iterate averaging and restarts on the certified duality gap; every
//!   `check_every` iterations a feasible dual point is built from the iterates, so each problem
//!   reports a lower bound on the optimum beside its objective (the gap is a certificate).
//! - [`Solver::Sgd`]: the published recipe (SGD with momentum on p and q from zero, the learning
//!   rate decayed log-linearly by 10× over the steps, q clipped to its bound before each step),
//!   kept as the reference to compare against.

mod owl;
mod pdhg;
mod sgd;

use crate::error::{NilError, Result};
use crate::subsets::{transform_serial, Transform, MAX_PLAYERS};
use owl::Owl;
use rayon::prelude::*;

/// How the decomposition is solved.
#[derive(Clone, Copy, Debug)]
pub enum Solver {
    /// Restarted, averaged primal–dual hybrid gradient; stops when the certified relative gap
    /// (objective − lower bound)/objective is at most `tol`, or after `max_iter` iterations.
    Pdhg {
        /// Iteration limit.
        max_iter: usize,
        /// Relative duality gap at which to stop.
        tol: f64,
        /// Iterations between objective/bound evaluations (and restart decisions).
        check_every: usize,
        /// Ratio of primal to dual step sizes (1 balances them).
        primal_weight: f64,
    },
    /// The literature's SGD recipe: `steps` steps, momentum `momentum`, learning rate `lr`
    /// decayed log-linearly to lr/10.
    Sgd {
        /// Initial learning rate.
        lr: f64,
        /// Number of steps (the last iterate is returned).
        steps: usize,
        /// Heavy-ball momentum (0.9 in the literature).
        momentum: f64,
    },
}

/// Options of [`and_or_decompose`].
#[derive(Clone, Copy, Debug)]
pub struct AndOrOptions {
    /// Weight of the sum in the joint penalty (Chen et al.: 0.1); unused for one model.
    pub alpha: f64,
    /// The solver and its settings.
    pub solver: Solver,
}

/// Decompositions of P problems of m models each; arrays are flat, problem-major.
#[derive(Clone, Debug)]
pub struct AndOrResult {
    /// AND interactions, [P, m, 2^n].
    pub i_and: Vec<f64>,
    /// OR interactions, [P, m, 2^n] (I_or(∅) = v_or(∅)).
    pub i_or: Vec<f64>,
    /// The split p, [P, m, 2^n].
    pub p: Vec<f64>,
    /// The noise q, [P, m, 2^n], |q| ≤ the bound.
    pub q: Vec<f64>,
    /// Objective of the returned decomposition, [P].
    pub objective: Vec<f64>,
    /// A certified lower bound on the optimal objective ([`Solver::Pdhg`]); NaN for SGD, [P].
    pub lower_bound: Vec<f64>,
    /// Iterations (steps) taken, [P].
    pub iterations: Vec<usize>,
    /// Whether the relative gap reached `tol` ([`Solver::Pdhg`]); false for SGD, [P].
    pub converged: Vec<bool>,
}

/// One problem: m models' halved values and bounds, and the transforms' scratch.
pub(crate) struct Problem<'a> {
    pub n: usize,
    pub m: usize,
    pub len: usize,
    pub half_v: Vec<f64>,
    pub bounds: &'a [f64],
    pub owl: Owl,
}

impl Problem<'_> {
    /// a = μ(v/2 + w) and o = Ω(v/2 + z).
    pub fn interactions(
        &self,
        w: &[f64],
        z: &[f64],
        a: &mut [f64],
        o: &mut [f64],
        s: &mut Vec<f64>,
    ) {
        for ((ai, wi), hi) in a.iter_mut().zip(w).zip(&self.half_v) {
            *ai = hi + wi;
        }
        for ((oi, zi), hi) in o.iter_mut().zip(z).zip(&self.half_v) {
            *oi = hi + zi;
        }
        transform_serial(a, self.n, Transform::Mobius, false, s);
        transform_serial(o, self.n, Transform::Or, false, s);
    }

    /// Σ_S g(a(S)) + g(o(S)) over the models.
    pub fn objective(&self, a: &[f64], o: &[f64]) -> f64 {
        if self.m == 1 {
            return crate::subsets::pairwise_sum(&a.iter().map(|x| x.abs()).collect::<Vec<_>>())
                + crate::subsets::pairwise_sum(&o.iter().map(|x| x.abs()).collect::<Vec<_>>());
        }
        let mut u = vec![0.0; self.m];
        let mut total = 0.0;
        for x in [a, o] {
            for s in 0..self.len {
                for (i, ui) in u.iter_mut().enumerate() {
                    *ui = x[i * self.len + s];
                }
                total += self.owl.value(&u);
            }
        }
        total
    }

    /// Applies `f` to the models' values of every subset S (a column of the m × 2^n block).
    pub fn per_subset(&self, x: &mut [f64], mut f: impl FnMut(&mut [f64])) {
        if self.m == 1 {
            for v in x.iter_mut() {
                f(std::slice::from_mut(v));
            }
            return;
        }
        let mut u = vec![0.0; self.m];
        for s in 0..self.len {
            for (i, ui) in u.iter_mut().enumerate() {
                *ui = x[i * self.len + s];
            }
            f(&mut u);
            for (i, ui) in u.iter().enumerate() {
                x[i * self.len + s] = *ui;
            }
        }
    }
}

/// One problem's answer, in (w, z) or (p, q) form.
pub(crate) struct Solution {
    pub p: Vec<f64>,
    pub q: Vec<f64>,
    pub i_and: Vec<f64>,
    pub i_or: Vec<f64>,
    pub objective: f64,
    pub lower_bound: f64,
    pub iterations: usize,
    pub converged: bool,
}

fn validate(
    values: &[f64],
    bounds: &[f64],
    n: usize,
    models: usize,
    opts: &AndOrOptions,
) -> Result<usize> {
    if n > MAX_PLAYERS {
        return Err(NilError::Value(format!(
            "and_or_decompose: at most {MAX_PLAYERS} players, found {n}"
        )));
    }
    if models == 0 {
        return Err(NilError::Value(
            "and_or_decompose: at least one model per problem, found 0".into(),
        ));
    }
    let per = models << n;
    if values.len() % per != 0 {
        return Err(NilError::shape(
            "and_or_decompose: values",
            format!("problems × {models} models × 2^{n} values"),
            format!("{} values", values.len()),
        ));
    }
    let problems = values.len() / per;
    if bounds.len() != problems * models {
        return Err(NilError::shape(
            "and_or_decompose: bounds",
            format!(
                "{problems} problems × {models} models = {} bounds",
                problems * models
            ),
            format!("{} bounds", bounds.len()),
        ));
    }
    if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(NilError::NonFinite {
            context: "and_or_decompose: values".into(),
            row: (i / (1usize << n)) as u64,
            value: *v,
        });
    }
    if let Some(b) = bounds.iter().find(|b| !(b.is_finite() && **b >= 0.0)) {
        return Err(NilError::Value(format!(
            "and_or_decompose: noise bounds must be finite and ≥ 0, found {b}"
        )));
    }
    if !(0.0..=1.0).contains(&opts.alpha) {
        return Err(NilError::Value(format!(
            "and_or_decompose: alpha must lie in [0, 1], found {}",
            opts.alpha
        )));
    }
    match opts.solver {
        Solver::Pdhg {
            max_iter,
            tol,
            check_every,
            primal_weight,
        } => {
            if max_iter == 0
                || check_every == 0
                || !(tol >= 0.0)
                || !(primal_weight > 0.0 && primal_weight.is_finite())
            {
                return Err(NilError::Value(format!(
                    "and_or_decompose (pdhg): expected max_iter ≥ 1, check_every ≥ 1, tol ≥ 0 and a positive primal_weight, found {max_iter}, {check_every}, {tol}, {primal_weight}"
                )));
            }
        }
        Solver::Sgd {
            lr,
            steps,
            momentum,
        } => {
            if steps == 0 || !(lr > 0.0 && lr.is_finite()) || !(0.0..1.0).contains(&momentum) {
                return Err(NilError::Value(format!(
                    "and_or_decompose (sgd): expected steps ≥ 1, lr > 0 and momentum in [0, 1), found {steps}, {lr}, {momentum}"
                )));
            }
        }
    }
    Ok(problems)
}

/// Decomposes every problem of `values` ([P, models, 2^n], problem-major) under the noise bounds
/// `bounds` ([P, models]), in parallel over problems on the current rayon pool.
pub fn and_or_decompose(
    values: &[f64],
    bounds: &[f64],
    n: usize,
    models: usize,
    opts: &AndOrOptions,
) -> Result<AndOrResult> {
    let problems = validate(values, bounds, n, models, opts)?;
    let per = models << n;
    let steps = match opts.solver {
        Solver::Pdhg { primal_weight, .. } => Some(pdhg::Steps::new(n, primal_weight)),
        Solver::Sgd { .. } => None,
    };
    let solutions: Vec<Solution> = (0..problems)
        .into_par_iter()
        .map(|k| {
            let pr = Problem {
                n,
                m: models,
                len: 1 << n,
                half_v: values[k * per..(k + 1) * per]
                    .iter()
                    .map(|v| 0.5 * v)
                    .collect(),
                bounds: &bounds[k * models..(k + 1) * models],
                owl: Owl { alpha: opts.alpha },
            };
            match opts.solver {
                Solver::Pdhg {
                    max_iter,
                    tol,
                    check_every,
                    ..
                } => pdhg::solve(
                    &pr,
                    steps.as_ref().expect("pdhg steps"),
                    max_iter,
                    tol,
                    check_every,
                ),
                Solver::Sgd {
                    lr,
                    steps,
                    momentum,
                } => sgd::solve(&pr, lr, steps, momentum),
            }
        })
        .collect();
    let mut out = AndOrResult {
        i_and: Vec::with_capacity(problems * per),
        i_or: Vec::with_capacity(problems * per),
        p: Vec::with_capacity(problems * per),
        q: Vec::with_capacity(problems * per),
        objective: Vec::with_capacity(problems),
        lower_bound: Vec::with_capacity(problems),
        iterations: Vec::with_capacity(problems),
        converged: Vec::with_capacity(problems),
    };
    for s in solutions {
        out.i_and.extend_from_slice(&s.i_and);
        out.i_or.extend_from_slice(&s.i_or);
        out.p.extend_from_slice(&s.p);
        out.q.extend_from_slice(&s.q);
        out.objective.push(s.objective);
        out.lower_bound.push(s.lower_bound);
        out.iterations.push(s.iterations);
        out.converged.push(s.converged);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
