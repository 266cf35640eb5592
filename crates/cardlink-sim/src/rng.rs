//! Deterministic randomness and math.
//!
//! The generator owns its PRNG (xoshiro256**, seeded through SplitMix64) and
//! its `ln`/`exp` (plain IEEE arithmetic, no platform libm), so a seed gives
//! the same feed with every crate version and on every platform.

/// xoshiro256** by Blackman and Vigna.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    s: [u64; 4],
}

/// SplitMix64: expands a seed into the xoshiro state.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator for `seed`; `stream` separates independent uses of one seed.
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        let mut st = seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let s = [splitmix64(&mut st), splitmix64(&mut st), splitmix64(&mut st), splitmix64(&mut st)];
        Rng { s }
    }

    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    #[inline]
    pub(crate) fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n); 0 when n is 0.
    #[inline]
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform index into a slice of length `n` (> 0).
    #[inline]
    pub(crate) fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    #[inline]
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Uniform in [lo, hi).
    #[inline]
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// Uniform integer in [lo, hi] (inclusive).
    #[inline]
    pub(crate) fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// A uniformly chosen element.
    #[inline]
    pub(crate) fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.index(xs.len())]
    }

    /// Approximately standard normal: Irwin–Hall sum of four 16-bit
    /// uniforms from one draw, rescaled (tails end at ±3.46).
    #[inline]
    pub(crate) fn normal(&mut self) -> f64 {
        let x = self.next_u64();
        let sum = (x & 0xFFFF) + ((x >> 16) & 0xFFFF) + ((x >> 32) & 0xFFFF) + (x >> 48);
        (sum as f64 / 65536.0 - 2.0) * 1.732_050_807_568_877_2
    }

    /// Exponential with mean 1.
    #[inline]
    pub(crate) fn exp1(&mut self) -> f64 {
        -ln(1.0 - self.f64())
    }

    /// An index in [0, n) skewed towards 0 (density ∝ x^(-1/3)): a few
    /// entries take a large share, as heavy spenders and popular shops do.
    #[inline]
    pub(crate) fn skewed(&mut self, n: usize) -> usize {
        let u = self.f64();
        ((n as f64 * u * u.sqrt()) as usize).min(n.saturating_sub(1))
    }

    /// An index chosen with probability proportional to `weights`.
    #[inline]
    pub(crate) fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        // Rounding at the top end: the last entry with weight.
        weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
    }
}

const LN_2: f64 = std::f64::consts::LN_2;

/// Natural logarithm of a positive normal number, with arithmetic only.
pub(crate) fn ln(x: f64) -> f64 {
    debug_assert!(x > 0.0 && x.is_finite());
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7FF) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172: 2(s + s³/3 + s⁵/5 + …).
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut sum = 0.0;
    for c in INV_ODD.iter().rev() {
        sum = sum * s2 + c;
    }
    2.0 * s * sum + e as f64 * LN_2
}

/// 1/1, 1/3, …, 1/23.
const INV_ODD: [f64; 12] = {
    let mut t = [0.0; 12];
    let mut i = 0;
    while i < 12 {
        t[i] = 1.0 / (2 * i + 1) as f64;
        i += 1;
    }
    t
};

/// 1/1, 1/2, …, 1/16.
const INV: [f64; 16] = {
    let mut t = [0.0; 16];
    let mut i = 0;
    while i < 16 {
        t[i] = 1.0 / (i + 1) as f64;
        i += 1;
    }
    t
};

/// e^x, with arithmetic only; x is clamped to ±700.
pub(crate) fn exp(x: f64) -> f64 {
    let x = x.clamp(-700.0, 700.0);
    let k = (x * std::f64::consts::LOG2_E).round();
    let r = x - k * LN_2;
    // Taylor series of e^r, |r| ≤ 0.35, Horner form.
    let mut p = 1.0;
    for c in INV.iter().rev() {
        p = 1.0 + p * r * c;
    }
    p * f64::from_bits(((k as i64 + 1023) as u64) << 52)
}

/// A bijection on u32 (lowbias32 by Chris Wellons): distinct inputs give
/// distinct outputs that look random.
pub(crate) fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^= x >> 16;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn math_is_accurate() {
        for x in [1e-12, 0.001, 0.5, 1.0, 1.5, 2.0, 10.0, 12345.678] {
            let got = ln(x);
            let want = x.ln();
            assert!((got - want).abs() < 1e-12 * want.abs().max(1.0), "ln({x}) = {got}, want {want}");
        }
        for x in [-20.0, -1.0, -0.1, 0.0, 0.3, 1.0, 2.5, 10.0, 40.0] {
            let got = exp(x);
            let want = x.exp();
            assert!((got - want).abs() < 1e-13 * want, "exp({x}) = {got}, want {want}");
        }
    }

    #[test]
    fn rng_is_deterministic_and_spread() {
        let mut a = Rng::new(42, 0);
        let mut b = Rng::new(42, 0);
        let mut c = Rng::new(42, 1);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        assert_eq!(xs, (0..8).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(xs, (0..8).map(|_| c.next_u64()).collect::<Vec<_>>());
        let n = 100_000;
        let mean: f64 = (0..n).map(|_| a.normal()).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02, "{mean}");
        let mut counts = [0u32; 3];
        for _ in 0..n {
            counts[a.weighted(&[1.0, 0.0, 3.0])] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!((counts[2] as f64 / n as f64 - 0.75).abs() < 0.01);
    }

    #[test]
    fn mix32_is_a_bijection_on_a_sample() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..100_000u32 {
            assert!(seen.insert(mix32(i)));
        }
    }
}
