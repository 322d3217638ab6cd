//! The fast transforms against their definitions, evaluated term by term.

use super::*;

fn rng_row(len: usize, seed: u64) -> Vec<f64> {
    // SplitMix64 mapped to [-1, 1): deterministic, no dependency.
    let mut s = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    (0..len)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

fn sign(k: u32) -> f64 {
    if k % 2 == 0 {
        1.0
    } else {
        -1.0
    }
}

/// The definition of each transform, one output at a time (O(4^n)).
fn brute(x: &[f64], n: usize, t: Transform) -> Vec<f64> {
    let len = 1usize << n;
    let full = len - 1;
    let pc = |s: usize| s.count_ones();
    (0..len)
        .map(|s| {
            (0..len)
                .map(|u| {
                    let sub = u & !s == 0; // u ⊆ s
                    let sup = s & !u == 0; // u ⊇ s
                    match t {
                        Transform::Zeta => f64::from(sub as u8) * x[u],
                        Transform::Mobius => {
                            if sub {
                                sign(pc(s) - pc(u)) * x[u]
                            } else {
                                0.0
                            }
                        }
                        Transform::SupersetZeta => f64::from(sup as u8) * x[u],
                        Transform::SupersetMobius => {
                            if sup {
                                sign(pc(u) - pc(s)) * x[u]
                            } else {
                                0.0
                            }
                        }
                        Transform::CoMobius => {
                            if sub {
                                sign(pc(u)) * x[full & !u]
                            } else {
                                0.0
                            }
                        }
                        // v(T) = Σ_{S ⊆ N∖T} (−1)^{|S|} m(S), here T = s and S = u
                        Transform::CoZeta => {
                            if u & s == 0 {
                                sign(pc(u)) * x[u]
                            } else {
                                0.0
                            }
                        }
                        Transform::Or => {
                            if s == 0 {
                                if u == 0 {
                                    x[0]
                                } else {
                                    0.0
                                }
                            } else if sub {
                                -sign(pc(s) - pc(u)) * x[full & !u]
                            } else {
                                0.0
                            }
                        }
                        // v(T) = o(∅) + Σ_{S∩T≠∅} o(S), here T = s and S = u
                        Transform::OrInverse => {
                            if u == 0 || u & s != 0 {
                                x[u]
                            } else {
                                0.0
                            }
                        }
                    }
                })
                .sum()
        })
        .collect()
}

fn dense(n: usize, t: Transform) -> Vec<Vec<f64>> {
    let len = 1usize << n;
    (0..len)
        .map(|j| {
            let mut e = vec![0.0; len];
            e[j] = 1.0;
            brute(&e, n, t)
        })
        .collect() // column j
}

fn brute_transposed(x: &[f64], n: usize, t: Transform) -> Vec<f64> {
    let cols = dense(n, t);
    cols.iter()
        .map(|c| c.iter().zip(x).map(|(a, b)| a * b).sum())
        .collect()
}

fn max_abs(x: &[f64]) -> f64 {
    x.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = max_abs(b).max(1.0);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * scale,
            "{what}: entry {i}: {x} vs {y} (scale {scale})"
        );
    }
}

const TINY: Tiles = Tiles {
    base: 4,
    scratch: 8,
};
const SMALL: Tiles = Tiles {
    base: 16,
    scratch: 64,
};

#[test]
fn every_transform_matches_its_definition() {
    for n in 0..=7 {
        let x = rng_row(1 << n, n as u64);
        for t in Transform::ALL {
            let want = brute(&x, n, t);
            let want_t = brute_transposed(&x, n, t);
            for tiles in [DEFAULT_TILES, SMALL, TINY] {
                let mut y = x.clone();
                transform_rows_with(&mut y, n, t, false, tiles).unwrap();
                assert_close(&y, &want, 1e-13, &format!("{} n={n}", t.name()));
                let mut y = x.clone();
                transform_rows_with(&mut y, n, t, true, tiles).unwrap();
                assert_close(&y, &want_t, 1e-13, &format!("{}ᵀ n={n}", t.name()));
            }
        }
    }
}

#[test]
fn parallel_single_row_path_matches_the_serial_one() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    for n in [5, 9, 11] {
        let x = rng_row(1 << n, 7 + n as u64);
        for t in Transform::ALL {
            for transpose in [false, true] {
                let mut serial = x.clone();
                apply_row(&mut serial, n, t, transpose, SMALL, &mut Vec::new(), false);
                let mut par = x.clone();
                pool.install(|| apply_row(&mut par, n, t, transpose, TINY, &mut Vec::new(), true));
                assert_close(
                    &par,
                    &serial,
                    1e-12,
                    &format!("parallel {} n={n}", t.name()),
                );
            }
        }
    }
}

#[test]
fn inverses_round_trip_at_larger_sizes() {
    for n in [10, 14, 17] {
        let x = rng_row(1 << n, 100 + n as u64);
        for t in Transform::ALL {
            for transpose in [false, true] {
                let mut y = x.clone();
                transform_rows(&mut y, n, t, transpose).unwrap();
                transform_rows(&mut y, n, t.inverse(), transpose).unwrap();
                let err = y
                    .iter()
                    .zip(&x)
                    .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    err <= 1e-12 * max_abs(&x),
                    "{} round trip n={n}: {err}",
                    t.name()
                );
            }
        }
    }
}

#[test]
fn transposes_are_adjoint() {
    let n = 12;
    let x = rng_row(1 << n, 1);
    let y = rng_row(1 << n, 2);
    for t in Transform::ALL {
        let mut ax = x.clone();
        transform_rows(&mut ax, n, t, false).unwrap();
        let mut aty = y.clone();
        transform_rows(&mut aty, n, t, true).unwrap();
        let lhs: f64 = ax.iter().zip(&y).map(|(a, b)| a * b).sum();
        let rhs: f64 = x.iter().zip(&aty).map(|(a, b)| a * b).sum();
        assert!(
            (lhs - rhs).abs() <= 1e-9 * lhs.abs().max(1.0),
            "{}: {lhs} vs {rhs}",
            t.name()
        );
    }
}

#[test]
fn rows_are_transformed_independently() {
    let n = 6;
    let rows = 5;
    let data = rng_row(rows << n, 3);
    for t in Transform::ALL {
        let mut all = data.clone();
        transform_rows(&mut all, n, t, false).unwrap();
        for r in 0..rows {
            let mut one = data[r << n..(r + 1) << n].to_vec();
            transform_rows(&mut one, n, t, false).unwrap();
            assert_eq!(&all[r << n..(r + 1) << n], &one[..], "{} row {r}", t.name());
        }
    }
}

#[test]
fn bad_shapes_and_names_are_errors() {
    let mut x = vec![0.0; 12];
    let e = transform_rows(&mut x, 3, Transform::Zeta, false).unwrap_err();
    assert!(e.to_string().contains("2^3 = 8"), "{e}");
    assert!(transform_rows(&mut x, 40, Transform::Zeta, false).is_err());
    assert!(Transform::parse("moebius").is_err());
    assert_eq!(Transform::parse("co_mobius").unwrap(), Transform::CoMobius);
    assert!(players_of(12, "v").is_err());
    assert_eq!(players_of(1 << 9, "v").unwrap(), 9);
    for t in Transform::ALL {
        assert_eq!(Transform::parse(t.name()).unwrap(), t);
        assert_eq!(t.inverse().inverse(), t);
    }
}

#[test]
fn low_order_masks_are_graded_colex_and_counted() {
    let masks = low_order_masks(5, 2).unwrap();
    assert_eq!(masks.len(), 1 + 5 + 10);
    assert_eq!(low_order_count(5, 2).unwrap(), 16);
    assert_eq!(&masks[..7], &[0, 1, 2, 4, 8, 16, 3]);
    assert_eq!(&masks[7..], &[5, 6, 9, 10, 12, 17, 18, 20, 24]);
    assert_eq!(low_order_masks(64, 1).unwrap().len(), 65);
    assert_eq!(*low_order_masks(64, 1).unwrap().last().unwrap(), 1u64 << 63);
    assert_eq!(low_order_count(10, 10).unwrap(), 1024);
    assert!(low_order_count(4, 5).is_err());
    assert!(low_order_count(65, 1).is_err());
    assert!(low_order_count(64, 32).is_err());
}

#[test]
fn low_order_transforms_equal_the_full_ones_restricted() {
    for (n, k) in [(6, 0), (6, 1), (6, 3), (6, 6), (11, 3)] {
        let full = rng_row(1 << n, 11 + k as u64);
        let masks = low_order_masks(n, k).unwrap();
        let mut low: Vec<f64> = masks.iter().map(|&m| full[m as usize]).collect();
        let mut low2: Vec<f64> = low.iter().chain(low.iter()).copied().collect();
        low_order_transform(&mut low, n, k, LowOrderKind::Mobius).unwrap();
        let mut mob = full.clone();
        transform_rows(&mut mob, n, Transform::Mobius, false).unwrap();
        let want: Vec<f64> = masks.iter().map(|&m| mob[m as usize]).collect();
        assert_close(&low, &want, 1e-13, &format!("low-order Möbius n={n} k={k}"));
        low_order_transform(&mut low2, n, k, LowOrderKind::Mobius).unwrap();
        assert_close(&low2[..want.len()], &want, 1e-13, "batched row 0");
        assert_close(&low2[want.len()..], &want, 1e-13, "batched row 1");
        low_order_transform(&mut low, n, k, LowOrderKind::Zeta).unwrap();
        let back: Vec<f64> = masks.iter().map(|&m| full[m as usize]).collect();
        assert_close(&low, &back, 1e-13, "low-order zeta inverts");
    }
    let mut bad = vec![0.0; 8];
    assert!(low_order_transform(&mut bad, 3, 2, LowOrderKind::Mobius).is_err());
    assert!(LowOrderKind::parse("or").is_err());
}
