//! The decomposition's solvers on problems whose optimum is known, and their invariants.

use super::*;

fn pdhg(max_iter: usize, tol: f64) -> AndOrOptions {
    AndOrOptions {
        alpha: 0.1,
        solver: Solver::Pdhg {
            max_iter,
            tol,
            check_every: 32,
            primal_weight: 1.0,
        },
    }
}

fn sgd(steps: usize) -> AndOrOptions {
    AndOrOptions {
        alpha: 0.1,
        solver: Solver::Sgd {
            lr: 1e-3,
            steps,
            momentum: 0.9,
        },
    }
}

/// Values of a product-of-features game with a few AND and OR terms (deterministic).
fn game(n: usize, seed: u64) -> Vec<f64> {
    let len = 1usize << n;
    let mut s = seed;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    let terms: Vec<(usize, f64, bool)> = (0..6)
        .map(|_| {
            (
                (next().abs() * len as f64) as usize % len,
                next(),
                next() > 0.0,
            )
        })
        .collect();
    let noise: Vec<f64> = (0..len).map(|_| 0.01 * next()).collect();
    (0..len)
        .map(|t| {
            terms
                .iter()
                .map(|&(s, c, and)| {
                    let on = if and { s & t == s } else { s & t != 0 };
                    if on {
                        c
                    } else {
                        0.0
                    }
                })
                .sum::<f64>()
                + noise[t]
        })
        .collect()
}

fn check_reconstruction(r: &AndOrResult, v: &[f64], n: usize, bound: f64) {
    // v + q = v_and + v_or, rebuilt from the interactions by the inverse transforms.
    let len = 1 << n;
    for k in 0..v.len() / len {
        let rg = k * len..(k + 1) * len;
        let mut va = r.i_and[rg.clone()].to_vec();
        crate::subsets::transform_rows(&mut va, n, Transform::Zeta, false).unwrap();
        let mut vo = r.i_or[rg.clone()].to_vec();
        crate::subsets::transform_rows(&mut vo, n, Transform::OrInverse, false).unwrap();
        for j in 0..len {
            let q = r.q[k * len + j];
            assert!(
                q.abs() <= bound * (1.0 + 1e-12) + 1e-15,
                "q {q} exceeds {bound}"
            );
            let err = (va[j] + vo[j] - v[k * len + j] - q).abs();
            assert!(err < 1e-9, "reconstruction error {err} at {j}");
        }
    }
}

#[test]
fn one_player_optimum_is_known() {
    // For n = 1 and no noise the optimum is |v(∅)| + |v({0}) − v(∅)|.
    let v = [0.7, -1.9];
    let r = and_or_decompose(&v, &[0.0], 1, 1, &pdhg(5000, 1e-9)).unwrap();
    let opt = 0.7 + 2.6;
    assert!((r.objective[0] - opt).abs() < 1e-6, "{}", r.objective[0]);
    assert!(r.lower_bound[0] <= opt + 1e-9 && r.lower_bound[0] >= opt - 1e-6);
    assert!(r.converged[0]);
}

#[test]
fn pdhg_certifies_its_gap_and_beats_the_recipe() {
    let n = 6;
    let v: Vec<f64> = (0..3).flat_map(|s| game(n, s)).collect();
    let bounds = [0.02, 0.0, 0.05];
    let r = and_or_decompose(&v, &bounds, n, 1, &pdhg(20_000, 1e-4)).unwrap();
    let s = and_or_decompose(&v, &bounds, n, 1, &sgd(3000)).unwrap();
    for k in 0..3 {
        assert!(r.lower_bound[k] <= r.objective[k] * (1.0 + 1e-12));
        assert!(
            r.objective[k] <= s.objective[k] * 1.0001,
            "problem {k}: pdhg {} vs sgd {}",
            r.objective[k],
            s.objective[k]
        );
        // the certified bound also holds for the SGD answer
        assert!(r.lower_bound[k] <= s.objective[k] * (1.0 + 1e-12));
    }
    check_reconstruction(&r, &v[..1 << n], n, bounds[0]);
    check_reconstruction(&s, &v[..1 << n], n, bounds[0]);
}

#[test]
fn a_pure_and_game_is_recovered_exactly() {
    // v(T) = 2·[{0,1} ⊆ T] − [{2} ⊆ T]: the optimum uses those two AND terms only, objective 3.
    let n = 4;
    let v: Vec<f64> = (0..16usize)
        .map(|t| 2.0 * f64::from(t & 3 == 3) - f64::from(t & 4 == 4))
        .collect();
    let r = and_or_decompose(&v, &[0.0], n, 1, &pdhg(20_000, 1e-7)).unwrap();
    assert!((r.objective[0] - 3.0).abs() < 1e-5, "{}", r.objective[0]);
    assert!(r.converged[0]);
}

#[test]
fn joint_decomposition_of_identical_models_matches_the_single_one() {
    // With two copies of one game, g(u, u) = (1 − α)|u| + 2α|u| = 1.1·|u|, so the joint optimum
    // is 1.1 times the single optimum.
    let n = 5;
    let one = game(n, 9);
    let two: Vec<f64> = one.iter().chain(one.iter()).copied().collect();
    let single = and_or_decompose(&one, &[0.01], n, 1, &pdhg(30_000, 1e-5)).unwrap();
    let joint = and_or_decompose(&two, &[0.01, 0.01], n, 2, &pdhg(30_000, 1e-5)).unwrap();
    let want = 1.1 * single.objective[0];
    assert!(
        (joint.objective[0] - want).abs() <= 2e-4 * want,
        "{} vs {want}",
        joint.objective[0]
    );
    assert!(joint.lower_bound[0] <= want * (1.0 + 1e-4));
    let sj = and_or_decompose(&two, &[0.01, 0.01], n, 2, &sgd(2000)).unwrap();
    assert!(sj.objective[0] >= joint.lower_bound[0]);
}

#[test]
fn zero_values_and_bad_input() {
    let r = and_or_decompose(&[0.0; 8], &[0.0], 3, 1, &pdhg(100, 1e-6)).unwrap();
    assert_eq!(r.objective[0], 0.0);
    assert!(r.converged[0]);
    assert!(and_or_decompose(&[0.0; 8], &[0.0, 0.0], 3, 1, &pdhg(10, 0.0)).is_err());
    assert!(and_or_decompose(&[0.0; 7], &[0.0], 3, 1, &pdhg(10, 0.0)).is_err());
    assert!(and_or_decompose(&[f64::NAN; 8], &[0.0], 3, 1, &pdhg(10, 0.0)).is_err());
    assert!(and_or_decompose(&[0.0; 8], &[-1.0], 3, 1, &pdhg(10, 0.0)).is_err());
    assert!(and_or_decompose(&[0.0; 8], &[0.0], 3, 1, &sgd(0)).is_err());
    let bad_alpha = AndOrOptions {
        alpha: 2.0,
        ..pdhg(10, 0.0)
    };
    assert!(and_or_decompose(&[0.0; 8], &[0.0], 3, 1, &bad_alpha).is_err());
}
