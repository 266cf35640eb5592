//! A fast path for JSON card events: the shape every well-formed feed line
//! has (one object of string or `null` values, a `merchant` object of the
//! same, no escapes) is read in one pass, borrowing its strings. Anything
//! else — escapes, numbers, arrays, nested objects in unknown fields,
//! duplicate fields, syntax errors — returns `None`, and serde_json decides
//! as it always did. Where this path answers, it answers what serde_json
//! would (a property test holds it to that), at a fraction of the cost.

use cardlink_core::RawEvent;
use cardlink_core::event::{Field, MerchantField, RawMerchant};

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    /// The whole record is ASCII, so every string in it is valid UTF-8.
    ascii: bool,
}

/// A value the fast path understands.
enum Value<'a> {
    Str(&'a str),
    Null,
    Object,
}

impl<'a> Parser<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A string without escapes or control characters, at the cursor.
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let rest = &self.b[self.i..];
        let n = string_end(rest)?;
        if rest[n] != b'"' {
            return None;
        }
        let s = &rest[..n];
        self.i += n + 1;
        if self.ascii {
            // SAFETY: the whole record was checked to be ASCII, and ASCII
            // bytes are valid UTF-8.
            Some(unsafe { std::str::from_utf8_unchecked(s) })
        } else {
            std::str::from_utf8(s).ok()
        }
    }

    /// A string, `null`, or the opening brace of an object.
    #[inline]
    fn value(&mut self) -> Option<Value<'a>> {
        match self.peek()? {
            b'"' => self.string().map(Value::Str),
            b'n' if self.b[self.i..].starts_with(b"null") => {
                self.i += 4;
                Some(Value::Null)
            }
            b'{' => Some(Value::Object),
            _ => None,
        }
    }

    /// Walks an object's members, calling `member` with each key once the
    /// cursor is on its value; `member` consumes the value.
    #[inline]
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            member(self, key)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.ws();
                }
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// Sets a field once: a second occurrence is serde's "duplicate field".
#[inline]
fn set<'a>(slot: &mut Field<'a>, seen: &mut u16, bit: u16, v: Value<'a>) -> Option<()> {
    if *seen & bit != 0 {
        return None;
    }
    *seen |= bit;
    *slot = match v {
        Value::Str(s) => Field::str(s),
        Value::Null => Field::Absent,
        Value::Object => return None,
    };
    Some(())
}

fn merchant<'a>(p: &mut Parser<'a>) -> Option<RawMerchant<'a>> {
    let mut m = RawMerchant::default();
    let mut seen = 0u16;
    p.object(|p, key| {
        let v = p.value()?;
        match key {
            "mid" => set(&mut m.mid, &mut seen, 1, v),
            "mcc" => set(&mut m.mcc, &mut seen, 2, v),
            "country" => set(&mut m.country, &mut seen, 4, v),
            "name" => set(&mut m.name, &mut seen, 8, v),
            _ => (!matches!(v, Value::Object)).then_some(()),
        }
    })?;
    Some(m)
}

/// Decodes the common shape of a JSON event, or `None` when serde_json
/// must judge the record.
pub(crate) fn decode(bytes: &[u8]) -> Option<RawEvent<'_>> {
    let mut p = Parser { b: bytes, i: 0, ascii: bytes.is_ascii() };
    let mut e = RawEvent::default();
    let mut seen = 0u16;
    p.ws();
    p.object(|p, key| {
        let v = p.value()?;
        let (slot, bit) = match key {
            "event_id" => (&mut e.event_id, 1),
            "kind" => (&mut e.kind, 2),
            "card_token" => (&mut e.card_token, 4),
            "occurred_at" => (&mut e.occurred_at, 8),
            "network" => (&mut e.network, 16),
            "transaction_id" => (&mut e.transaction_id, 32),
            "amount" => (&mut e.amount, 64),
            "currency" => (&mut e.currency, 128),
            "offer_id" => (&mut e.offer_id, 256),
            "merchant" => {
                if seen & 512 != 0 {
                    return None;
                }
                seen |= 512;
                e.merchant = match v {
                    Value::Object => MerchantField::Object(merchant(p)?),
                    Value::Null => MerchantField::Absent,
                    Value::Str(_) => MerchantField::NotObject("string"),
                };
                return Some(());
            }
            _ => return (!matches!(v, Value::Object)).then_some(()),
        };
        set(slot, &mut seen, bit, v)
    })?;
    p.ws();
    (p.i == bytes.len()).then_some(e)
}

/// The position of the first `"`, `\\` or control character of `b`: where
/// a plain string ends. Eight bytes at a time: this scan was the largest
/// part of decoding a JSON record.
#[inline]
fn string_end(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // High bit set in each byte of `x` that is zero. A borrow can mark a
    // byte above a true one, never below: the lowest mark is exact.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut chunks = b.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        // Below 0x20: subtracting 0x20 borrows into the high bit, for
        // bytes that had it clear (bytes of 0x80 and up are never marked).
        let marks = zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGHS);
        if marks != 0 {
            return Some(at + marks.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    chunks.remainder().iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20).map(|n| at + n)
}

#[cfg(test)]
mod string_end_tests {
    use super::string_end;
    use proptest::prelude::*;

    fn naive(b: &[u8]) -> Option<usize> {
        b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)
    }

    #[test]
    fn finds_the_first_stop_byte() {
        let check = |input: &[u8], expected: Option<usize>| assert_eq!(string_end(input), expected, "{input:?}");
        check(b"", None);
        check(b"abc", None);
        check(b"abcdefghijklmnop", None);
        check(b"abcdefgh\"", Some(8));
        check(b"abc\"defgh", Some(3));
        check(b"abcdefg\\", Some(7));
        check(b"a\x1fb", Some(1));
        check(b"\x00", Some(0));
        check("caf\u{e9} cr\u{e8}me\"".as_bytes(), Some(12));
        check(&[0x80, 0xff, 0xa2, 0xdc, 0x9f, 0x20, 0x21, 0x23, 0x5b, 0x5d, b'"'], Some(10));
        // A byte just above a stop byte (a borrow's false mark) is not
        // reported first.
        check(b"\x01\x00\x00\x00\x00\x00\x00\x00", Some(0));
        check(b"ab\"\x01\"\"\"\"", Some(2));
    }

    proptest! {
        #[test]
        fn agrees_with_a_byte_by_byte_scan(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assert_eq!(string_end(&b), naive(&b));
        }

        #[test]
        fn agrees_on_mostly_plain_text(b in proptest::collection::vec(prop_oneof![8 => 0x20u8..0x7f, 1 => any::<u8>()], 0..64)) {
            prop_assert_eq!(string_end(&b), naive(&b));
        }
    }
}
