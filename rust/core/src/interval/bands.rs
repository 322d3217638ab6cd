//! The reference's per-budget answer from seed means (METHOD.md §5): the plain argmin, the ε-band
//! as a span [min R, max R] over every shape with loss ≤ (1 + ε)·min loss (contiguity not checked),
//! and nil's contiguous band, grown from the argmin while neighbours stay under the threshold.

/// Argmin and ε-bands of one budget, as indices into the ratio-sorted shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct Bands {
    pub argmin: usize,
    /// Another shape has exactly the minimal mean loss.
    pub tie: bool,
    pub min_loss: f64,
    pub span: (usize, usize),
    pub contiguous: (usize, usize),
}

/// Argmin (first of equal minima in ratio order) and the span and contiguous ε-bands of `means`.
pub fn bands(means: &[f64], eps: f64) -> Bands {
    let mut argmin = 0;
    for (i, &m) in means.iter().enumerate() {
        if m < means[argmin] {
            argmin = i;
        }
    }
    let min_loss = means[argmin];
    let tie = means
        .iter()
        .enumerate()
        .any(|(i, &m)| i != argmin && m == min_loss);
    let threshold = (1.0 + eps) * min_loss;
    let first = (0..means.len()).find(|&i| means[i] <= threshold);
    let last = (0..means.len()).rev().find(|&i| means[i] <= threshold);
    let span = (first.unwrap_or(argmin), last.unwrap_or(argmin));
    let (mut lo, mut hi) = (argmin, argmin);
    while lo > 0 && means[lo - 1] <= threshold {
        lo -= 1;
    }
    while hi + 1 < means.len() && means[hi + 1] <= threshold {
        hi += 1;
    }
    Bands {
        argmin,
        tie,
        min_loss,
        span,
        contiguous: (lo, hi),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_ignores_gaps_contiguous_does_not() {
        let m = [1.00, 1.01, 1.5, 1.015, 2.0];
        let b = bands(&m, 0.02);
        assert_eq!(b.argmin, 0);
        assert_eq!(b.span, (0, 3));
        assert_eq!(b.contiguous, (0, 1));
        assert!(!b.tie);
        let t = bands(&[2.0, 1.0, 1.0], 0.0);
        assert_eq!(t.argmin, 1);
        assert!(t.tie);
    }
}
