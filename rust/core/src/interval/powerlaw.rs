//! Straight-line fits across budgets: the frontier power law loss* = a·x^b fitted by ordinary
//! least squares of ln loss on ln x with R² on the linear scale, 1 − SS_res/(SS_tot + 1e-12)
//! (the reference's convention, METHOD.md §5, §6.2), and the stability line ln R̂* = a + s·ln N.

/// An ordinary least-squares line y = intercept + slope·x.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Line {
    pub intercept: f64,
    pub slope: f64,
    /// Standard error of the slope (NaN with fewer than 3 points or a perfect fit is fine: 0).
    pub slope_se: f64,
    pub n: usize,
}

/// OLS line through the finite (x, y) pairs; NaN fields with fewer than 2 distinct x.
pub fn ols_line(x: &[f64], y: &[f64]) -> Line {
    let pts: Vec<(f64, f64)> = x
        .iter()
        .zip(y)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(a, b)| (*a, *b))
        .collect();
    let n = pts.len();
    let nan = Line {
        intercept: f64::NAN,
        slope: f64::NAN,
        slope_se: f64::NAN,
        n,
    };
    if n < 2 {
        return nan;
    }
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n as f64;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n as f64;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if !(sxx > 0.0) {
        return nan;
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let slope_se = if n > 2 {
        let ss: f64 = pts
            .iter()
            .map(|p| (p.1 - intercept - slope * p.0).powi(2))
            .sum();
        (ss / (n - 2) as f64 / sxx).sqrt()
    } else {
        f64::NAN
    };
    Line {
        intercept,
        slope,
        slope_se,
        n,
    }
}

/// A power law y = a·x^b.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct PowerLaw {
    pub a: f64,
    pub b: f64,
    /// 1 − SS_res/(SS_tot + 1e-12) on the linear scale of y.
    pub r2: f64,
    /// Points used (x > 0 and y > 0, finite).
    pub n: usize,
}

/// Fits y = a·x^b by OLS of ln y on ln x over the pairs with x > 0 and y > 0; NaN with < 2 points.
pub fn fit_power_law(x: &[f64], y: &[f64]) -> PowerLaw {
    let (lx, ly): (Vec<f64>, Vec<f64>) = x
        .iter()
        .zip(y)
        .filter(|(a, b)| a.is_finite() && b.is_finite() && **a > 0.0 && **b > 0.0)
        .map(|(a, b)| (a.ln(), b.ln()))
        .unzip();
    let line = ols_line(&lx, &ly);
    if !line.slope.is_finite() {
        return PowerLaw {
            a: f64::NAN,
            b: f64::NAN,
            r2: f64::NAN,
            n: lx.len(),
        };
    }
    let a = line.intercept.exp();
    let b = line.slope;
    let ys: Vec<f64> = ly.iter().map(|v| v.exp()).collect();
    let mean = ys.iter().sum::<f64>() / ys.len() as f64;
    let ss_tot: f64 = ys.iter().map(|v| (v - mean).powi(2)).sum();
    let ss_res: f64 = lx
        .iter()
        .zip(&ys)
        .map(|(xl, yv)| (yv - a * (b * xl).exp()).powi(2))
        .sum();
    PowerLaw {
        a,
        b,
        r2: 1.0 - ss_res / (ss_tot + 1e-12),
        n: lx.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_power_law_is_recovered() {
        let x = [1e5, 3e5, 1e6, 3e6];
        let y: Vec<f64> = x.iter().map(|v: &f64| 12.0 * v.powf(-0.2)).collect();
        let p = fit_power_law(&x, &y);
        assert!((p.a - 12.0).abs() < 1e-9 * 12.0);
        assert!((p.b + 0.2).abs() < 1e-12);
        assert!((p.r2 - 1.0).abs() < 1e-9);
        assert_eq!(p.n, 4);
        let q = fit_power_law(&[1.0, -1.0], &[1.0, 2.0]);
        assert!(q.a.is_nan() && q.n == 1);
    }

    #[test]
    fn line_slope_and_se() {
        let l = ols_line(&[0.0, 1.0, 2.0, 3.0], &[1.0, 3.1, 4.9, 7.0]);
        assert!((l.slope - 1.98).abs() < 1e-12);
        assert!(l.slope_se > 0.0);
        assert!(ols_line(&[1.0, 1.0], &[1.0, 2.0]).slope.is_nan());
    }
}
