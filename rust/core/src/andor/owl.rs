//! The penalty of one subset's interactions across m jointly decomposed models, its dual norm and
//! the projection onto the dual unit ball.
//!
//! g(u) = (1 − α)·max_i |u_i| + α·Σ_i |u_i| (Chen et al., ICLR 2024) is an ordered weighted ℓ1
//! norm with weights w = (1, α, …, α) on |u| sorted in decreasing order; for one model it is |u|.
//! Its dual norm is max_k (Σ_{j≤k} |u|_(j)) / (Σ_{j≤k} w_j), and the projection onto the dual ball
//! is z − prox_g(z) (Moreau), where prox_g sorts, subtracts the weights, fits a non-increasing
//! sequence by pool-adjacent-violators and clips at zero (Bogdan et al. 2015, SLOPE).

/// The joint penalty for m models with weight `alpha` on the sum.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Owl {
    pub alpha: f64,
}

impl Owl {
    fn weight(self, j: usize) -> f64 {
        if j == 0 {
            1.0
        } else {
            self.alpha
        }
    }

    /// g(u).
    pub fn value(self, u: &[f64]) -> f64 {
        if u.len() == 1 {
            return u[0].abs();
        }
        let (mut max, mut sum) = (0.0f64, 0.0);
        for x in u {
            max = max.max(x.abs());
            sum += x.abs();
        }
        (1.0 - self.alpha) * max + self.alpha * sum
    }

    /// The dual norm of u.
    pub fn dual_norm(self, u: &[f64]) -> f64 {
        if u.len() == 1 {
            return u[0].abs();
        }
        if u.len() == 2 {
            let (a, b) = (u[0].abs(), u[1].abs());
            return a.max(b).max((a + b) / (1.0 + self.alpha));
        }
        let mut a: Vec<f64> = u.iter().map(|x| x.abs()).collect();
        a.sort_by(|x, y| y.total_cmp(x));
        let (mut num, mut den, mut best) = (0.0, 0.0, 0.0f64);
        for (j, x) in a.iter().enumerate() {
            num += x;
            den += self.weight(j);
            best = best.max(num / den);
        }
        best
    }

    /// A subgradient of g at u, written into `out` (the argmax takes the first largest entry).
    pub fn subgradient(self, u: &[f64], out: &mut [f64]) {
        let sign = |x: f64| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        };
        if u.len() == 1 {
            out[0] = sign(u[0]);
            return;
        }
        let mut arg = 0;
        for (i, x) in u.iter().enumerate() {
            if x.abs() > u[arg].abs() {
                arg = i;
            }
        }
        for (o, x) in out.iter_mut().zip(u) {
            *o = self.alpha * sign(*x);
        }
        out[arg] += (1.0 - self.alpha) * sign(u[arg]);
    }

    /// Projects z onto the dual unit ball {u : dual_norm(u) ≤ 1}, in place.
    pub fn project_dual(self, z: &mut [f64]) {
        if z.len() == 1 {
            z[0] = z[0].clamp(-1.0, 1.0);
            return;
        }
        if self.dual_norm(z) <= 1.0 {
            return;
        }
        if z.len() == 2 {
            // Two models: pool-adjacent-violators on two values, in closed form.
            let (hi, lo) = if z[0].abs() >= z[1].abs() {
                (0, 1)
            } else {
                (1, 0)
            };
            let (d1, d2) = (z[hi].abs() - 1.0, z[lo].abs() - self.alpha);
            let (p1, p2) = if d1 >= d2 {
                (d1, d2)
            } else {
                ((d1 + d2) / 2.0, (d1 + d2) / 2.0)
            };
            let (s1, s2) = (z[hi].signum(), z[lo].signum());
            z[hi] -= s1 * p1.max(0.0);
            z[lo] -= s2 * p2.max(0.0);
            return;
        }
        let m = z.len();
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by(|&i, &j| z[j].abs().total_cmp(&z[i].abs()));
        // Pool adjacent violators on d_j = |z|_(j) − w_j for a non-increasing fit.
        let mut blocks: Vec<(f64, usize)> = Vec::with_capacity(m); // (mean, length)
        for (j, &i) in order.iter().enumerate() {
            let mut mean = z[i].abs() - self.weight(j);
            let mut len = 1;
            while let Some(&(pm, pl)) = blocks.last() {
                if pm > mean {
                    break;
                }
                mean = (pm * pl as f64 + mean * len as f64) / (pl + len) as f64;
                len += pl;
                blocks.pop();
            }
            blocks.push((mean, len));
        }
        let mut j = 0;
        for (mean, len) in blocks {
            let shrunk = mean.max(0.0);
            for &i in &order[j..j + len] {
                let prox = z[i].signum() * shrunk;
                z[i] -= prox;
            }
            j += len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_model_is_the_absolute_value() {
        let g = Owl { alpha: 0.1 };
        assert_eq!(g.value(&[-2.5]), 2.5);
        assert_eq!(g.dual_norm(&[-0.5]), 0.5);
        let mut z = [3.0];
        g.project_dual(&mut z);
        assert_eq!(z, [1.0]);
    }

    #[test]
    fn projection_lands_on_the_ball_and_is_closest() {
        let g = Owl { alpha: 0.1 };
        for z0 in [
            [2.0, 0.5, -0.1],
            [0.3, 0.2, 0.1],
            [-5.0, 4.0, 3.0],
            [1.0, 1.0, 1.0],
        ] {
            let mut z = z0;
            g.project_dual(&mut z);
            let norm = g.dual_norm(&z);
            assert!(norm <= 1.0 + 1e-12, "{z0:?} -> {z:?}: dual norm {norm}");
            // Optimality of a projection onto a convex set: (z0 − z)·(u − z) ≤ 0 for u in the ball.
            let d: Vec<f64> = z0.iter().zip(&z).map(|(a, b)| a - b).collect();
            for u in [
                [1.0, 0.0, 0.0],
                [0.0, -1.0, 0.0],
                [0.5, 0.5, 0.0],
                [0.55, 0.55, -0.55],
                [0.0, 0.0, 0.0],
            ] {
                if g.dual_norm(&u) > 1.0 {
                    continue;
                }
                let dot: f64 = d
                    .iter()
                    .zip(u.iter().zip(&z))
                    .map(|(a, (b, c))| a * (b - c))
                    .sum();
                assert!(dot <= 1e-12, "{z0:?}: not the closest point (dot {dot})");
            }
            // Duality: u·z ≤ g(u)·dual_norm(z).
            let u = [0.7, -0.2, 0.4];
            let dot: f64 = u.iter().zip(&z).map(|(a, b)| a * b).sum();
            assert!(dot <= g.value(&u) * norm + 1e-12);
        }
    }

    #[test]
    fn two_models_take_the_closed_form_of_the_general_path() {
        let g = Owl { alpha: 0.1 };
        for z0 in [[2.0, 0.5], [-0.3, 3.0], [1.2, 1.1], [0.9, -0.9], [0.2, 0.1]] {
            let mut fast = z0;
            g.project_dual(&mut fast);
            let mut slow = [z0[0], z0[1], 0.0];
            g.project_dual(&mut slow);
            assert!(
                (fast[0] - slow[0]).abs() < 1e-12 && (fast[1] - slow[1]).abs() < 1e-12,
                "{z0:?}: {fast:?} vs {slow:?}"
            );
            assert!((g.dual_norm(&z0) - g.dual_norm(&[z0[0], z0[1], 0.0])).abs() < 1e-12);
        }
    }

    #[test]
    fn value_and_subgradient() {
        let g = Owl { alpha: 0.25 };
        assert!((g.value(&[1.0, -3.0]) - (0.75 * 3.0 + 0.25 * 4.0)).abs() < 1e-15);
        let mut s = [0.0; 2];
        g.subgradient(&[1.0, -3.0], &mut s);
        assert_eq!(s, [0.25, -1.0]);
    }
}
