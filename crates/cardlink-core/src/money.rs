//! Money: ISO 4217 currencies with their minor units, exact decimal amounts,
//! rounding toward zero and the contract's fixed-digit formatting.

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};

/// An ISO 4217 currency, as an index into [`CURRENCIES`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(u16);

/// Active ISO 4217 codes and their minor-unit digits, sorted by code.
/// Codes without a minor unit (precious metals, XDR, XXX, XTS…) are absent:
/// they are not money a card is charged in.
#[rustfmt::skip]
pub const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2), ("AFN", 2), ("ALL", 2), ("AMD", 2), ("ANG", 2), ("AOA", 2), ("ARS", 2),
    ("AUD", 2), ("AWG", 2), ("AZN", 2), ("BAM", 2), ("BBD", 2), ("BDT", 2), ("BGN", 2),
    ("BHD", 3), ("BIF", 0), ("BMD", 2), ("BND", 2), ("BOB", 2), ("BOV", 2), ("BRL", 2),
    ("BSD", 2), ("BTN", 2), ("BWP", 2), ("BYN", 2), ("BZD", 2), ("CAD", 2), ("CDF", 2),
    ("CHE", 2), ("CHF", 2), ("CHW", 2), ("CLF", 4), ("CLP", 0), ("CNY", 2), ("COP", 2),
    ("COU", 2), ("CRC", 2), ("CUC", 2), ("CUP", 2), ("CVE", 2), ("CZK", 2), ("DJF", 0),
    ("DKK", 2), ("DOP", 2), ("DZD", 2), ("EGP", 2), ("ERN", 2), ("ETB", 2), ("EUR", 2),
    ("FJD", 2), ("FKP", 2), ("GBP", 2), ("GEL", 2), ("GHS", 2), ("GIP", 2), ("GMD", 2),
    ("GNF", 0), ("GTQ", 2), ("GYD", 2), ("HKD", 2), ("HNL", 2), ("HTG", 2), ("HUF", 2),
    ("IDR", 2), ("ILS", 2), ("INR", 2), ("IQD", 3), ("IRR", 2), ("ISK", 0), ("JMD", 2),
    ("JOD", 3), ("JPY", 0), ("KES", 2), ("KGS", 2), ("KHR", 2), ("KMF", 0), ("KPW", 2),
    ("KRW", 0), ("KWD", 3), ("KYD", 2), ("KZT", 2), ("LAK", 2), ("LBP", 2), ("LKR", 2),
    ("LRD", 2), ("LSL", 2), ("LYD", 3), ("MAD", 2), ("MDL", 2), ("MGA", 2), ("MKD", 2),
    ("MMK", 2), ("MNT", 2), ("MOP", 2), ("MRU", 2), ("MUR", 2), ("MVR", 2), ("MWK", 2),
    ("MXN", 2), ("MXV", 2), ("MYR", 2), ("MZN", 2), ("NAD", 2), ("NGN", 2), ("NIO", 2),
    ("NOK", 2), ("NPR", 2), ("NZD", 2), ("OMR", 3), ("PAB", 2), ("PEN", 2), ("PGK", 2),
    ("PHP", 2), ("PKR", 2), ("PLN", 2), ("PYG", 0), ("QAR", 2), ("RON", 2), ("RSD", 2),
    ("RUB", 2), ("RWF", 0), ("SAR", 2), ("SBD", 2), ("SCR", 2), ("SDG", 2), ("SEK", 2),
    ("SGD", 2), ("SHP", 2), ("SLE", 2), ("SLL", 2), ("SOS", 2), ("SRD", 2), ("SSP", 2),
    ("STN", 2), ("SVC", 2), ("SYP", 2), ("SZL", 2), ("THB", 2), ("TJS", 2), ("TMT", 2),
    ("TND", 3), ("TOP", 2), ("TRY", 2), ("TTD", 2), ("TWD", 2), ("TZS", 2), ("UAH", 2),
    ("UGX", 0), ("USD", 2), ("USN", 2), ("UYI", 0), ("UYU", 2), ("UYW", 4), ("UZS", 2),
    ("VED", 2), ("VES", 2), ("VND", 0), ("VUV", 0), ("WST", 2), ("XAF", 0), ("XCD", 2),
    ("XCG", 2), ("XOF", 0), ("XPF", 0), ("YER", 2), ("ZAR", 2), ("ZMW", 2), ("ZWG", 2),
    ("ZWL", 2),
];

/// A three-byte code as one big-endian number: packed codes sort as the
/// codes do, so the table can be searched with integer comparisons.
const fn pack_code(b: &[u8]) -> u32 {
    (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32
}

/// [`CURRENCIES`]' codes packed by [`pack_code`], in the same order.
const PACKED_CODES: [u32; CURRENCIES.len()] = {
    let mut out = [0u32; CURRENCIES.len()];
    let mut i = 0;
    while i < CURRENCIES.len() {
        out[i] = pack_code(CURRENCIES[i].0.as_bytes());
        i += 1;
    }
    out
};

impl Currency {
    /// Looks a three-letter upper-case ISO 4217 code up.
    #[inline]
    pub fn from_code(code: &str) -> Option<Currency> {
        // Every event carries a currency: a search over packed integers
        // costs a fraction of one over strings.
        let b = code.as_bytes();
        if b.len() != 3 {
            return None;
        }
        PACKED_CODES.binary_search(&pack_code(b)).ok().map(|i| Currency(i as u16))
    }

    /// The ISO 4217 code, e.g. `"USD"`.
    pub fn code(self) -> &'static str {
        CURRENCIES[self.0 as usize].0
    }

    /// Digits after the decimal point of the minor unit (USD 2, JPY 0, KWD 3).
    pub fn exponent(self) -> u32 {
        CURRENCIES[self.0 as usize].1 as u32
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Why a decimal string is not an acceptable amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Not of the form `digits[.digits]` (signs, exponents, spaces are refused).
    #[error("is not a plain decimal number (digits with an optional '.' and fraction)")]
    Syntax,
    /// More fraction digits than allowed.
    #[error("has {found} digits after the point, at most {allowed} allowed")]
    TooManyDigits {
        /// Digits found after the point.
        found: usize,
        /// Digits allowed.
        allowed: u32,
    },
    /// Does not fit the engine's exact decimal range (about 7.9 × 10^28).
    #[error("is too large")]
    OutOfRange,
}

/// Parses a non-negative plain decimal string (`"42.50"`, `"500"`), with at
/// most `max_fraction_digits` after the point when given.
///
/// Only ASCII digits and one inner point are accepted: no sign, exponent,
/// whitespace, `NaN` or leading/trailing point, so every accepted string
/// means exactly one amount.
pub fn parse_decimal(s: &str, max_fraction_digits: Option<u32>) -> Result<Decimal, DecimalError> {
    let bytes = s.as_bytes();
    let dot = bytes.iter().position(|&b| b == b'.');
    let (int_part, frac_part) = match dot {
        Some(dot) => (&bytes[..dot], &bytes[dot + 1..]),
        None => (bytes, &bytes[..0]),
    };
    let digits = |b: &[u8]| !b.is_empty() && b.iter().all(u8::is_ascii_digit);
    if !digits(int_part) || (dot.is_some() && !digits(frac_part)) {
        return Err(DecimalError::Syntax);
    }
    if let Some(allowed) = max_fraction_digits {
        if frac_part.len() > allowed as usize {
            return Err(DecimalError::TooManyDigits { found: frac_part.len(), allowed });
        }
    }
    // Up to 18 digits fit an i64: build the decimal directly, with the
    // scale from_str_exact gives (the count of fraction digits).
    if int_part.len() + frac_part.len() <= 18 {
        let mantissa = int_part.iter().chain(frac_part).fold(0i64, |m, &d| m * 10 + i64::from(d - b'0'));
        return Ok(Decimal::new(mantissa, frac_part.len() as u32));
    }
    // Leading zeros would only eat into the 28-digit budget of rust_decimal.
    let trimmed = s.trim_start_matches('0');
    let trimmed =
        if trimmed.is_empty() || trimmed.starts_with('.') { &s[s.len() - trimmed.len() - 1..] } else { trimmed };
    Decimal::from_str_exact(trimmed).map_err(|_| DecimalError::OutOfRange)
}

/// Largest amount an event may carry, in major units (exclusive): 10^15.
/// With `points_per_unit` at most [`MAX_POINTS_PER_UNIT`] every reward value
/// stays below 10^21, so values and their sums keep exact decimal digits.
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(2_764_472_320, 232_830, 0, false, 0);

/// Largest `points_per_unit` of an offer: one million.
pub const MAX_POINTS_PER_UNIT: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// Largest other decimal of an offer (`fixed`, `min_spend`, `max_reward`,
/// `budget`), exclusive: 10^24.
pub const MAX_OFFER_DECIMAL: Decimal = Decimal::from_parts(2_701_131_776, 466_537_709, 54_210, false, 0);

/// Parses an RFC 3339 timestamp with an offset, strictly: `T` (or `t`)
/// between date and time, and no leap second (chrono would accept a space
/// and second 60, which RFC 3339's grammar reserves for real leap seconds).
pub fn parse_timestamp(s: &str) -> Result<chrono::DateTime<chrono::FixedOffset>, String> {
    let b = s.as_bytes();
    if b.len() < 20 || !matches!(b[10], b'T' | b't') {
        return Err("expected YYYY-MM-DDTHH:MM:SS with an offset such as Z or -04:00".into());
    }
    if &b[17..19] == b"60" {
        return Err("second 60 (a leap second) is not accepted".into());
    }
    if let Some(t) = timestamp_fast(b) {
        return Ok(t);
    }
    chrono::DateTime::parse_from_rfc3339(s).map_err(|e| e.to_string())
}

/// The common layouts, `YYYY-MM-DDTHH:MM:SSZ` and `YYYY-MM-DDTHH:MM:SS±HH:MM`
/// (no fraction), read at fixed positions. `None` for anything else,
/// including every invalid value: chrono then parses the string and words
/// the error, so this only ever agrees with chrono (a test holds it to that).
#[inline]
fn timestamp_fast(b: &[u8]) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    use chrono::{FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};
    let offset = match b.len() {
        20 if matches!(b[19], b'Z' | b'z') => 0,
        25 if matches!(b[19], b'+' | b'-') && b[22] == b':' => {
            let (h, m) = (two_digits(b, 20)?, two_digits(b, 23)?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = i32::from(h) * 3600 + i32::from(m) * 60;
            if b[19] == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = u32::from(two_digits(b, 0)?) * 100 + u32::from(two_digits(b, 2)?);
    let date = NaiveDate::from_ymd_opt(year as i32, two_digits(b, 5)?.into(), two_digits(b, 8)?.into())?;
    let time =
        NaiveTime::from_hms_opt(two_digits(b, 11)?.into(), two_digits(b, 14)?.into(), two_digits(b, 17)?.into())?;
    let tz = FixedOffset::east_opt(offset)?;
    // The written time is local: UTC is that minus the offset.
    let utc = NaiveDateTime::new(date, time).checked_sub_signed(TimeDelta::seconds(i64::from(offset)))?;
    Some(chrono::DateTime::from_naive_utc_and_offset(utc, tz))
}

#[inline]
fn two_digits(b: &[u8], at: usize) -> Option<u8> {
    let (h, l) = (b[at].wrapping_sub(b'0'), b[at + 1].wrapping_sub(b'0'));
    (h < 10 && l < 10).then(|| h * 10 + l)
}

/// Powers of ten that fit a u128, by exponent.
const POW10: [u128; 39] = {
    let mut t = [1u128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// 10^n, when it fits a u128.
#[inline]
fn pow10(n: u32) -> Option<u128> {
    POW10.get(n as usize).copied()
}

/// Orders `a / 10^sa` and `b / 10^sb` (non-negative mantissas below 2^96).
#[inline]
fn cmp_scaled(a: u128, sa: u32, b: u128, sb: u32) -> std::cmp::Ordering {
    use std::cmp::Ordering::{Greater, Less};
    if sa == sb {
        return a.cmp(&b);
    }
    // A product that overflows a u128 exceeds every mantissa below 2^96.
    if sa < sb {
        pow10(sb - sa).and_then(|p| a.checked_mul(p)).map_or(Greater, |x| x.cmp(&b))
    } else {
        pow10(sa - sb).and_then(|p| b.checked_mul(p)).map_or(Less, |y| a.cmp(&y))
    }
}

/// A non-negative decimal as (mantissa, scale).
#[inline]
fn parts(d: Decimal) -> Option<(u128, u32)> {
    (!d.is_sign_negative()).then(|| (d.mantissa() as u128, d.scale()))
}

/// R4's value computed on integers: exactly what `round_toward_zero(
/// min(min(raw, cap), max(left, 0)), digits)` gives with decimals — the
/// same mantissa and scale, not only the same number — where the rule's
/// product is exact (it fits 96 bits and 28 digits of scale). `None`
/// outside that range; the caller then computes with decimals. R4 runs
/// once per candidate offer of every purchase: the decimal multiply,
/// comparisons and rounding were the engine's main cost.
#[inline]
pub(crate) fn reward_value_fast(
    rule: crate::offer::RewardRule,
    max_reward: Option<Decimal>,
    digits: u32,
    amount: Decimal,
    budget_left: Option<Decimal>,
) -> Option<Decimal> {
    use crate::offer::RewardRule;
    const LIMIT: u128 = 1 << 96;
    let (a, sa) = parts(amount)?;
    // The raw value as mantissa and scale, as Decimal's checked_mul makes
    // it when the product is exact (a zero product is the zero constant,
    // scale 0); percent divides by 100 as a shift of the scale, as the
    // decimal path does while the scale stays ≤ 26.
    let product = |m: u128, s: u32| match a.checked_mul(m) {
        Some(0) => Some((0, 0)),
        Some(x) if x < LIMIT && sa + s <= 28 => Some((x, sa + s)),
        _ => None,
    };
    let (mut v, mut sv) = match rule {
        RewardRule::Percent(p) => {
            let (m, s) = parts(p)?;
            let (x, sx) = product(m, s)?;
            (sx <= 26).then_some((x, sx + 2))?
        }
        RewardRule::PointsPerUnit(k) => {
            let (m, s) = parts(k)?;
            product(m, s)?
        }
        RewardRule::Fixed(f) => parts(f)?,
    };
    // `min` keeps the first of two equal values, with its scale.
    if let Some(cap) = max_reward {
        let (c, sc) = parts(cap)?;
        if cmp_scaled(c, sc, v, sv).is_lt() {
            (v, sv) = (c, sc);
        }
    }
    if let Some(left) = budget_left {
        // `max(left, 0)` is the zero constant (scale 0) only below zero.
        let (l, sl) = if left < Decimal::ZERO { (0, 0) } else { parts(left)? };
        if cmp_scaled(l, sl, v, sv).is_lt() {
            (v, sv) = (l, sl);
        }
    }
    // Rounding toward zero keeps a value with no more digits than asked
    // as it is, and otherwise cuts it to exactly `digits`.
    if sv > digits {
        let p = pow10(sv - digits)?;
        v = match (u64::try_from(v), u64::try_from(p)) {
            (Ok(x), Ok(y)) => u128::from(x / y),
            _ => v / p,
        };
        sv = digits;
    }
    Some(Decimal::from_i128_with_scale(v as i128, sv))
}

/// Rounds toward zero to `dp` digits after the point (R4).
pub fn round_toward_zero(value: Decimal, dp: u32) -> Decimal {
    value.round_dp_with_strategy(dp, RoundingStrategy::ToZero)
}

/// Writes `value` with exactly `dp` digits after the point, never as `-0`.
///
/// The contract writes money with exactly the currency's minor-unit digits
/// (`"5.00"`, JPY `"500"`) and points with none.
pub fn format_fixed(value: Decimal, dp: u32) -> String {
    let mut out = Vec::with_capacity(24);
    write_fixed(value, dp, &mut out);
    String::from_utf8(out).expect("digits, a sign and a point are ASCII")
}

/// Appends what [`format_fixed`] returns, without allocating: reward
/// records write two amounts each.
pub fn write_fixed(value: Decimal, dp: u32, out: &mut Vec<u8>) {
    let v = value.round_dp_with_strategy(dp, RoundingStrategy::ToZero);
    // After rounding the scale is at most `dp`: scale the mantissa up to
    // exactly `dp` fraction digits. |mantissa| < 2^96 and dp stays small
    // (currency exponents are at most 4), so the product fits a u128; a
    // larger dp goes through the formatter.
    let Some(scaled) = 10u128.checked_pow(dp - v.scale()).and_then(|p| v.mantissa().unsigned_abs().checked_mul(p))
    else {
        out.extend_from_slice(format!("{:.*}", dp as usize, if v.is_zero() { Decimal::ZERO } else { v }).as_bytes());
        return;
    };
    if scaled != 0 && v.is_sign_negative() {
        out.push(b'-');
    }
    let mut digits = [0u8; 40];
    let mut at = digits.len();
    // At least dp + 1 digits: the fraction, zero-padded, and one integer
    // digit. Most amounts fit a u64, whose division is far cheaper.
    let min_digits = dp as usize + 1;
    match u64::try_from(scaled) {
        Ok(mut rest) => {
            while rest != 0 || digits.len() - at < min_digits {
                at -= 1;
                digits[at] = b'0' + (rest % 10) as u8;
                rest /= 10;
            }
        }
        Err(_) => {
            let mut rest = scaled;
            while rest != 0 || digits.len() - at < min_digits {
                at -= 1;
                digits[at] = b'0' + (rest % 10) as u8;
                rest /= 10;
            }
        }
    }
    let int_len = digits.len() - at - dp as usize;
    out.extend_from_slice(&digits[at..at + int_len]);
    if dp > 0 {
        out.push(b'.');
        out.extend_from_slice(&digits[at + int_len..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn table_is_sorted_and_unique() {
        assert!(CURRENCIES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn exponents_of_notable_currencies() {
        for (code, exp) in [("USD", 2), ("JPY", 0), ("KWD", 3), ("CLF", 4), ("EUR", 2), ("KRW", 0)] {
            assert_eq!(Currency::from_code(code).unwrap().exponent(), exp, "{code}");
        }
        for bad in ["usd", "XAU", "XXX", "US", "USDD", ""] {
            assert!(Currency::from_code(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn parse_decimal_table() {
        fn check(input: &str, digits: Option<u32>, expected: Result<&str, DecimalError>) {
            assert_eq!(parse_decimal(input, digits), expected.map(d), "{input:?}");
        }
        check("42.50", Some(2), Ok("42.50"));
        check("42.5", Some(2), Ok("42.5"));
        check("0", Some(2), Ok("0"));
        check("000.10", Some(2), Ok("0.10"));
        check("500", Some(0), Ok("500"));
        check("500.0", Some(0), Err(DecimalError::TooManyDigits { found: 1, allowed: 0 }));
        check("1.234", Some(2), Err(DecimalError::TooManyDigits { found: 3, allowed: 2 }));
        check("1.234", Some(3), Ok("1.234"));
        check("1.234", None, Ok("1.234"));
        for bad in ["", "-1", "+1", "1e3", "1E3", ".5", "5.", " 5", "5 ", "NaN", "inf", "1,00", "1.2.3", "٣"] {
            check(bad, Some(2), Err(DecimalError::Syntax));
        }
        check("1000000000000000000000000000000", Some(2), Err(DecimalError::OutOfRange));
        check("0000000000000000000000000000000000001.5", Some(2), Ok("1.5"));
    }

    #[test]
    fn formatting_has_exact_digits_and_no_negative_zero() {
        fn check(value: &str, dp: u32, expected: &str) {
            assert_eq!(format_fixed(d(value), dp), expected);
        }
        check("5", 2, "5.00");
        check("4.9995", 2, "4.99");
        check("-0.75", 2, "-0.75");
        check("-0.00", 2, "0.00");
        check("0", 0, "0");
        check("123.4", 0, "123");
        check("-70", 0, "-70");
        check("1.5", 3, "1.500");
    }

    #[test]
    fn limits_are_the_documented_powers_of_ten() {
        assert_eq!(MAX_AMOUNT, d("1000000000000000"));
        assert_eq!(MAX_POINTS_PER_UNIT, d("1000000"));
        assert_eq!(MAX_OFFER_DECIMAL, d("1000000000000000000000000"));
    }

    #[test]
    fn timestamps_are_strict_rfc_3339() {
        fn check(input: &str, ok: bool) {
            assert_eq!(parse_timestamp(input).is_ok(), ok, "{input:?}");
        }
        check("2026-05-04T12:30:00-04:00", true);
        check("2026-05-04t12:30:00z", true);
        check("2026-05-04T12:30:00.123456789Z", true);
        check("2026-05-04 12:30:00-04:00", false);
        check("2026-06-30T23:59:60Z", false);
        check("2026-05-04T12:30:00", false);
        check("2026-05-04T24:00:00Z", false);
        check("2026-02-30T12:00:00Z", false);
        check("", false);
    }

    #[test]
    fn fast_decimals_equal_exact_parsing() {
        // The fast path must give the very representation (mantissa and
        // scale) that from_str_exact gives: the scale shows in outputs.
        for s in ["0", "0.00", "000.10", "42.50", "42.5", "1", "999999999999999999", "123456789012.345678", "0.0001"] {
            let fast = parse_decimal(s, None).unwrap();
            let exact =
                Decimal::from_str_exact(s.trim_start_matches('0')).unwrap_or(Decimal::from_str_exact(s).unwrap());
            assert_eq!((fast.mantissa(), fast.scale()), (exact.mantissa(), exact.scale()), "{s}");
        }
    }

    #[test]
    fn write_fixed_equals_the_formatter() {
        for (v, dp) in [
            ("5", 2),
            ("4.9995", 2),
            ("-0.75", 2),
            ("-0.00", 2),
            ("0", 0),
            ("123.4", 0),
            ("-70", 0),
            ("1.5", 3),
            ("0.0001", 4),
            ("79228162514264337593543950335", 0),
            ("-79228162514264337593543950335", 2),
            ("18446744073709551615.99", 2),
            ("18446744073709551616.5", 4),
            ("0.5", 0),
            ("-0.5", 0),
            ("12", 28),
        ] {
            let value = d(v);
            let mut x = value.round_dp_with_strategy(dp, RoundingStrategy::ToZero);
            if x.is_zero() {
                x = Decimal::ZERO;
            }
            assert_eq!(format_fixed(value, dp), format!("{:.*}", dp as usize, x), "{v} {dp}");
        }
    }

    /// The fixed-layout timestamp path agrees with chrono wherever it
    /// answers, and answers for the common layouts.
    #[test]
    fn fast_timestamps_agree_with_chrono() {
        let mut answered = 0;
        let base = [
            "2026-05-04T12:30:00-04:00",
            "2026-05-04T12:30:00Z",
            "2024-02-29T23:59:59+14:00",
            "0000-01-01T00:00:00+01:00",
        ];
        let bytes = b"0123456789-+:TtZz .x";
        for s in base {
            for at in 0..s.len() {
                for &c in bytes {
                    let mut m = s.as_bytes().to_vec();
                    m[at] = c;
                    let Ok(m) = String::from_utf8(m) else { continue };
                    let chrono = chrono::DateTime::parse_from_rfc3339(&m).ok();
                    if let Some(fast) = timestamp_fast(m.as_bytes()) {
                        answered += 1;
                        assert_eq!(Some(fast), chrono, "{m}");
                        assert_eq!(fast.offset(), chrono.unwrap().offset(), "{m}");
                    }
                }
            }
        }
        assert!(answered > 100);
        for s in ["2026-02-29T12:00:00Z", "2026-04-31T12:00:00Z", "2026-05-04T24:00:00Z", "2026-05-04T12:30:00+24:00"] {
            assert!(timestamp_fast(s.as_bytes()).is_none(), "{s}");
        }
    }

    /// The decimal computation of R4 that the engine's `value_of` makes.
    fn value_by_decimals(
        rule: crate::offer::RewardRule,
        cap: Option<Decimal>,
        digits: u32,
        amount: Decimal,
        left: Option<Decimal>,
    ) -> Decimal {
        use crate::offer::RewardRule;
        let mut v = match rule {
            RewardRule::Percent(p) => match amount.checked_mul(p) {
                Some(mut v) if v.scale() <= 26 => {
                    v.set_scale(v.scale() + 2).unwrap();
                    v
                }
                Some(v) => v / Decimal::ONE_HUNDRED,
                None => Decimal::MAX,
            },
            RewardRule::Fixed(f) => f,
            RewardRule::PointsPerUnit(k) => amount.checked_mul(k).unwrap_or(Decimal::MAX),
        };
        if let Some(cap) = cap {
            v = v.min(cap);
        }
        if let Some(left) = left {
            v = v.min(left.max(Decimal::ZERO));
        }
        round_toward_zero(v, digits)
    }

    fn decimal() -> impl proptest::strategy::Strategy<Value = Decimal> {
        use proptest::prelude::*;
        prop_oneof![
            (0u64..100_000, 0u32..5).prop_map(|(m, s)| Decimal::new(m as i64, s)),
            (any::<u64>(), 0u32..29).prop_map(|(m, s)| Decimal::from_i128_with_scale((m >> 1) as i128, s)),
            (any::<u128>(), 0u32..29).prop_map(|(m, s)| Decimal::from_i128_with_scale((m >> 33) as i128, s)),
            Just(Decimal::ZERO),
            Just(Decimal::new(0, 3)),
            Just(Decimal::MAX),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 20_000, ..Default::default() })]

        /// Wherever the integer path answers, it gives the decimal path's
        /// result to the bit: the same mantissa and the same scale.
        #[test]
        fn integer_values_equal_decimal_values(
            kind in 0u8..3, rule in decimal(), cap in proptest::option::of(decimal()), digits in 0u32..5,
            amount in decimal(), left in proptest::option::of(decimal()), left_negative in proptest::prelude::any::<bool>(),
        ) {
            use crate::offer::RewardRule;
            let rule = match kind { 0 => RewardRule::Percent(rule), 1 => RewardRule::Fixed(rule), _ => RewardRule::PointsPerUnit(rule) };
            let left = left.map(|l| if left_negative { -l } else { l });
            if let Some(fast) = reward_value_fast(rule, cap, digits, amount, left) {
                let slow = value_by_decimals(rule, cap, digits, amount, left);
                proptest::prop_assert_eq!(fast.serialize(), slow.serialize(), "{} vs {}", fast, slow);
            }
        }
    }

    #[test]
    fn integer_values_answer_for_ordinary_offers() {
        use crate::offer::RewardRule;
        fn check(rule: RewardRule, cap: Option<&str>, digits: u32, amount: &str, left: Option<&str>, expected: &str) {
            let fast = reward_value_fast(rule, cap.map(d), digits, d(amount), left.map(d)).expect("answered");
            assert_eq!(fast.to_string(), expected);
            let slow = value_by_decimals(rule, cap.map(d), digits, d(amount), left.map(d));
            assert_eq!(fast.serialize(), slow.serialize());
        }
        check(RewardRule::Percent(d("10")), Some("25.00"), 2, "42.55", None, "4.25");
        check(RewardRule::Percent(d("12.5")), None, 0, "333", None, "41");
        check(RewardRule::Fixed(d("5")), None, 2, "30.00", None, "5");
        check(RewardRule::Fixed(d("5.00")), None, 2, "30.00", Some("1.5"), "1.5");
        check(RewardRule::PointsPerUnit(d("2")), Some("100"), 0, "87.39", Some("-3"), "0");
        check(RewardRule::PointsPerUnit(d("1.5")), None, 0, "0.99", None, "1");
        check(RewardRule::Percent(d("3")), None, 3, "1.001", Some("0.000"), "0.000");
    }

    #[test]
    fn rounding_is_toward_zero() {
        assert_eq!(round_toward_zero(d("4.9995"), 2), d("4.99"));
        assert_eq!(round_toward_zero(d("-4.9995"), 2), d("-4.99"));
        assert_eq!(round_toward_zero(d("66.66"), 0), d("66"));
    }
}
