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
        let n = rest.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
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
