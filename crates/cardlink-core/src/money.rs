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

impl Currency {
    /// Looks a three-letter upper-case ISO 4217 code up.
    pub fn from_code(code: &str) -> Option<Currency> {
        CURRENCIES.binary_search_by(|(c, _)| c.cmp(&code)).ok().map(|i| Currency(i as u16))
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
    let (int_part, frac_part) = match s.find('.') {
        Some(dot) => (&bytes[..dot], &bytes[dot + 1..]),
        None => (bytes, &bytes[..0]),
    };
    let digits = |b: &[u8]| !b.is_empty() && b.iter().all(u8::is_ascii_digit);
    if !digits(int_part) || (s.contains('.') && !digits(frac_part)) {
        return Err(DecimalError::Syntax);
    }
    if let Some(allowed) = max_fraction_digits {
        if frac_part.len() > allowed as usize {
            return Err(DecimalError::TooManyDigits { found: frac_part.len(), allowed });
        }
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
    chrono::DateTime::parse_from_rfc3339(s).map_err(|e| e.to_string())
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
    let mut v = value.round_dp_with_strategy(dp, RoundingStrategy::ToZero);
    if v.is_zero() {
        v = Decimal::ZERO;
    }
    format!("{:.*}", dp as usize, v)
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
    fn rounding_is_toward_zero() {
        assert_eq!(round_toward_zero(d("4.9995"), 2), d("4.99"));
        assert_eq!(round_toward_zero(d("-4.9995"), 2), d("-4.99"));
        assert_eq!(round_toward_zero(d("66.66"), 0), d("66"));
    }
}
