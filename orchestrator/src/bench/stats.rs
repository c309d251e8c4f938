//! Spread of one figure over the iterations of a cell: median, quartiles, interquartile range,
//! min and max, with the sample count. Quartiles interpolate linearly between order
//! statistics (the method of R's default `quantile` and numpy's `percentile`): the p-quantile
//! of sorted x₀…xₙ₋₁ is at position h = (n − 1)·p, between x⌊h⌋ and x⌈h⌉.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Number of samples (runs that produced this figure).
    pub n: usize,
    pub min: f64,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for an empty sample; non-finite values are ignored.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Spread {
            n: v.len(),
            min: v[0],
            q1: quantile_sorted(&v, 0.25),
            median: quantile_sorted(&v, 0.5),
            q3: quantile_sorted(&v, 0.75),
            max: v[v.len() - 1],
        })
    }

    /// Interquartile range, q3 − q1.
    pub fn iqr(&self) -> f64 {
        self.q3 - self.q1
    }

    /// Whether the interquartile ranges of the two samples overlap (touching counts).
    pub fn iqr_overlaps(&self, other: &Spread) -> bool {
        self.q1 <= other.q3 && other.q1 <= self.q3
    }
}

/// The p-quantile (0 ≤ p ≤ 1) of an ascending, non-empty slice, interpolated linearly.
pub fn quantile_sorted(v: &[f64], p: f64) -> f64 {
    assert!(!v.is_empty(), "quantile of an empty sample");
    let h = (v.len() - 1) as f64 * p.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    v[lo] + (h - lo as f64) * (v[hi] - v[lo])
}

/// `b / a`, or `None` when `a` is zero (or either is not finite).
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (a != 0.0 && a.is_finite() && b.is_finite()).then(|| b / a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_count() {
        // sorted: 1 2 3 4 5 → h(q1) = 1, h(q3) = 3
        let s = Spread::of(&[5.0, 1.0, 4.0, 2.0, 3.0]).unwrap();
        assert_eq!(
            (s.n, s.min, s.q1, s.median, s.q3, s.max),
            (5, 1.0, 2.0, 3.0, 4.0, 5.0)
        );
        assert_eq!(s.iqr(), 2.0);
    }

    #[test]
    fn even_count_interpolates() {
        // sorted: 1 2 3 4 → q1 at h=0.75: 1.75; median at 1.5: 2.5; q3 at 2.25: 3.25
        let s = Spread::of(&[4.0, 3.0, 2.0, 1.0]).unwrap();
        assert_eq!((s.q1, s.median, s.q3), (1.75, 2.5, 3.25));
        assert_eq!(s.iqr(), 1.5);
    }

    #[test]
    fn fifteen_iterations() {
        // 10, 20, …, 150: h(q1) = 3.5 → 45, median h = 7 → 80, h(q3) = 10.5 → 115
        let v: Vec<f64> = (1..=15).rev().map(|i| i as f64 * 10.0).collect();
        let s = Spread::of(&v).unwrap();
        assert_eq!(
            (s.min, s.q1, s.median, s.q3, s.max),
            (10.0, 45.0, 80.0, 115.0, 150.0)
        );
    }

    #[test]
    fn single_and_empty_and_nan() {
        let s = Spread::of(&[7.0]).unwrap();
        assert_eq!(
            (s.min, s.q1, s.median, s.q3, s.max, s.iqr()),
            (7.0, 7.0, 7.0, 7.0, 7.0, 0.0)
        );
        assert!(Spread::of(&[]).is_none());
        assert!(Spread::of(&[f64::NAN]).is_none());
        assert_eq!(Spread::of(&[f64::NAN, 2.0, 4.0]).unwrap().median, 3.0);
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(2.0, 3.0), Some(1.5));
        assert_eq!(ratio(4.0, 1.0), Some(0.25));
        assert_eq!(ratio(0.0, 1.0), None);
    }

    #[test]
    fn overlap() {
        let a = Spread::of(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap(); // IQR [2, 4]
        let b = Spread::of(&[4.0, 5.0, 6.0, 7.0, 8.0]).unwrap(); // IQR [5, 7]
        let c = Spread::of(&[3.0, 4.0, 5.0, 6.0, 7.0]).unwrap(); // IQR [4, 6]
        assert!(!a.iqr_overlaps(&b));
        assert!(a.iqr_overlaps(&c) && c.iqr_overlaps(&a));
    }
}
