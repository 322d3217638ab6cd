//! The literature's SGD recipe for the AND–OR decomposition (sjtu-xai-lab's `_train_p_q`), on the
//! fast transforms instead of dense 2^n × 2^n matrices.
//!
//! p = q = 0; for each step t: q ← clip(q, −b, b); I_and = μ(½(v + q) + p), I_or = Ω(½(v + q) − p);
//! unless it is the last step, one heavy-ball step on the subgradient of the objective (torch's
//! SGD: buffer ← momentum·buffer + gradient, the first buffer being the gradient) with learning
//! rate lr·10^(−t/(steps−1)) (numpy's logspace from lr to lr/10). The last iterate is returned.

use super::{Problem, Solution};
use crate::subsets::{transform_serial, Transform};

/// Runs the recipe on one problem.
pub(crate) fn solve(pr: &Problem, lr: f64, steps: usize, momentum: f64) -> Solution {
    let (len, m) = (pr.len, pr.m);
    let size = m * len;
    let (mut p, mut q) = (vec![0.0; size], vec![0.0; size]);
    let (mut bp, mut bq) = (vec![0.0; size], vec![0.0; size]);
    let (mut w, mut z) = (vec![0.0; size], vec![0.0; size]);
    let (mut a, mut o) = (vec![0.0; size], vec![0.0; size]);
    let (mut sa, mut so) = (vec![0.0; size], vec![0.0; size]);
    let mut scratch = Vec::new();
    let mut objective = f64::NAN;
    let mut u = vec![0.0; m];
    let mut g = vec![0.0; m];
    for t in 0..steps {
        for i in 0..m {
            let b = pr.bounds[i];
            q[i * len..(i + 1) * len]
                .iter_mut()
                .for_each(|x: &mut f64| *x = x.clamp(-b, b));
        }
        // In (w, z) form: w = p + q/2, z = q/2 − p.
        for k in 0..size {
            w[k] = p[k] + 0.5 * q[k];
            z[k] = 0.5 * q[k] - p[k];
        }
        pr.interactions(&w, &z, &mut a, &mut o, &mut scratch);
        objective = pr.objective(&a, &o);
        if t + 1 == steps {
            break;
        }
        // Subgradients of the penalty at a and o, pulled back through μᵀ and Ωᵀ.
        for (x, out) in [(&a, &mut sa), (&o, &mut so)] {
            for s in 0..len {
                for (i, ui) in u.iter_mut().enumerate() {
                    *ui = x[i * len + s];
                }
                pr.owl.subgradient(&u, &mut g);
                for (i, gi) in g.iter().enumerate() {
                    out[i * len + s] = *gi;
                }
            }
        }
        transform_serial(&mut sa, pr.n, Transform::Mobius, true, &mut scratch);
        transform_serial(&mut so, pr.n, Transform::Or, true, &mut scratch);
        let eta = if steps > 1 {
            lr * 10f64.powf(-(t as f64) / (steps - 1) as f64)
        } else {
            lr
        };
        for k in 0..size {
            let gp = sa[k] - so[k];
            let gq = 0.5 * (sa[k] + so[k]);
            if t == 0 {
                bp[k] = gp;
                bq[k] = gq;
            } else {
                bp[k] = momentum * bp[k] + gp;
                bq[k] = momentum * bq[k] + gq;
            }
            p[k] -= eta * bp[k];
            q[k] -= eta * bq[k];
        }
    }
    Solution {
        p,
        q,
        i_and: a,
        i_or: o,
        objective,
        lower_bound: f64::NAN,
        iterations: steps,
        converged: false,
    }
}
