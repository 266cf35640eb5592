//! Bearer-token checks for the write endpoints.

/// True when `header` (the `Authorization` value) carries `token` as a
/// bearer token. The comparison takes the same time wherever the first
/// difference is, so response times do not reveal the token.
pub fn bearer_ok(header: Option<&[u8]>, token: &str) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else { return false };
    constant_time_eq(given.trim_ascii(), token.as_bytes())
}

/// Equality of two byte strings in time that depends on their lengths
/// only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(header: Option<&str>, expected: bool) {
        assert_eq!(bearer_ok(header.map(str::as_bytes), "s3cret"), expected, "{header:?}");
    }

    #[test]
    fn only_the_exact_bearer_token_passes() {
        check(Some("Bearer s3cret"), true);
        check(Some("Bearer s3cret "), true);
        check(None, false);
        check(Some(""), false);
        check(Some("Bearer "), false);
        check(Some("Bearer s3cre"), false);
        check(Some("Bearer s3cret2"), false);
        check(Some("Bearer S3cret"), false);
        check(Some("Basic s3cret"), false);
        check(Some("s3cret"), false);
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"a", b""));
    }
}
