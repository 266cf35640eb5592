//! Raw card numbers (PANs): detection and masking (R1).
//!
//! cardlink works on network tokens. A raw primary account number must
//! never be stored or written, so everything that may echo outside input
//! (dead letters, error details) passes through [`mask_pans`].

use std::borrow::Cow;

/// True when `digits` (ASCII digits only) passes the Luhn check.
pub fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &c) in digits.iter().rev().enumerate() {
        let mut d = (c - b'0') as u32;
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

/// True when `s` is 13–19 ASCII digits that pass the Luhn check: a raw card
/// number under R1.
pub fn is_pan(s: &str) -> bool {
    let b = s.as_bytes();
    (13..=19).contains(&b.len()) && b.iter().all(u8::is_ascii_digit) && luhn_valid(b)
}

/// The last four characters of `s`, kept in place of a rejected PAN.
pub fn last_four(s: &str) -> &str {
    let n = s.len();
    s.get(n.saturating_sub(4)..).unwrap_or("")
}

/// Replaces every run of 13–19 digits that passes the Luhn check by `*`s
/// followed by its last four digits. Borrowed when nothing was masked.
///
/// Runs longer than 19 digits are also scanned inside, window by window, so
/// a PAN embedded in a longer digit string is masked too.
pub fn mask_pans(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    let mut masked: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let run = &b[start..i];
        let hits = pan_windows(run);
        if !hits.is_empty() {
            let out = masked.get_or_insert_with(|| b.to_vec());
            for (from, to) in hits {
                for c in &mut out[start + from..start + to - 4] {
                    *c = b'*';
                }
            }
        }
    }
    match masked {
        // Only ASCII digits were replaced by ASCII '*', so UTF-8 is intact.
        Some(v) => Cow::Owned(String::from_utf8(v).expect("masking keeps UTF-8")),
        None => Cow::Borrowed(s),
    }
}

/// Every window of 13–19 digits of `run` that passes Luhn, as (from, to).
///
/// Linear in the run's length: hostile input can hold 64 KiB of digits,
/// and summing each of its ~7 windows per digit afresh cost ~5 ms a record
/// (fuzzing showed it). The Luhn sum of a window is a difference of prefix
/// sums: a digit is doubled when its distance to the window's last digit
/// is odd, so with prefix sums for both parities every window is O(1).
fn pan_windows(run: &[u8]) -> Vec<(usize, usize)> {
    let mut hits = Vec::new();
    if run.len() < 13 {
        return hits;
    }
    // weights[p][i]: the Luhn sum of run[..i] where the digits at an index
    // of parity p are the undoubled ones.
    let mut weights = [Vec::with_capacity(run.len() + 1), Vec::with_capacity(run.len() + 1)];
    let (mut plain_at_even, mut plain_at_odd) = (0u32, 0u32);
    weights[0].push(0);
    weights[1].push(0);
    for (j, &c) in run.iter().enumerate() {
        let d = u32::from(c - b'0');
        let doubled = if d * 2 > 9 { d * 2 - 9 } else { d * 2 };
        let (at_even, at_odd) = if j % 2 == 0 { (d, doubled) } else { (doubled, d) };
        plain_at_even += at_even;
        plain_at_odd += at_odd;
        weights[0].push(plain_at_even);
        weights[1].push(plain_at_odd);
    }
    for from in 0..=run.len() - 13 {
        for to in from + 13..=(from + 19).min(run.len()) {
            let w = &weights[(to - 1) % 2];
            if (w[to] - w[from]) % 10 == 0 {
                hits.push((from, to));
            }
        }
    }
    hits
}

/// True when `s` contains a 13–19 digit Luhn-valid number anywhere.
pub fn contains_pan(s: &str) -> bool {
    matches!(mask_pans(s), Cow::Owned(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pan_detection_table() {
        fn check(input: &str, expected: bool) {
            assert_eq!(is_pan(input), expected, "{input:?}");
        }
        check("4111111111111111", true); // Visa test number
        check("5555555555554444", true); // Mastercard
        check("378282246310005", true); // Amex, 15 digits
        check("4222222222222", true); // 13 digits
        check("6011111111111117", true); // Discover
        check("4111111111111112", false); // Luhn fails
        check("411111111111", false); // 12 digits
        check("41111111111111111111", false); // 20 digits
        check("4111-1111-1111-1111", false); // not all digits: a token shape
        check("tok_4111111111111111", false);
    }

    #[test]
    fn masking_keeps_last_four_only() {
        assert_eq!(mask_pans("card 4111111111111111 x"), "card ************1111 x");
        assert_eq!(mask_pans("no digits here"), "no digits here");
        assert_eq!(mask_pans("id-123456"), "id-123456");
        let long = "9994111111111111111999";
        assert!(!mask_pans(long).contains("4111111111111111"));
        assert!(!contains_pan(&mask_pans("a4111111111111111b5555555555554444")));
    }

    #[test]
    fn last_four_of_short_strings() {
        assert_eq!(last_four("4111111111111111"), "1111");
        assert_eq!(last_four("12"), "12");
    }
}
