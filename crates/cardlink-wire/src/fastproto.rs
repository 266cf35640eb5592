//! A zero-copy decoder of `cardlink.v1.CardEvent` into the core's
//! [`RawEvent`], borrowing strings from the input instead of allocating one
//! `String` per field as prost does. It accepts and rejects exactly what
//! prost does for this message (a property test holds it to that).

use std::borrow::Cow;

use cardlink_core::event::{Field, MerchantField, RawMerchant};
use cardlink_core::{RawEvent, Rejection};

use crate::v1 as pb;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The whole message is ASCII (all lengths and tags below 128, all
    /// text ASCII: the common case), so every string in it is valid UTF-8
    /// and needs no check of its own.
    ascii: bool,
}

/// Why decoding stopped; the message is prost's wording in spirit.
type Fail = &'static str;

impl<'a> Reader<'a> {
    #[inline]
    fn varint(&mut self) -> Result<u64, Fail> {
        // Tags and string lengths of events take one byte.
        match self.buf.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            _ => self.varint_long(),
        }
    }

    #[cold]
    fn varint_long(&mut self) -> Result<u64, Fail> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else { return Err("buffer underflow") };
            self.pos += 1;
            // The tenth byte may only carry the top bit of a u64.
            if i == 9 && b > 1 {
                return Err("invalid varint");
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("invalid varint")
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'a [u8], Fail> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| "buffer underflow")?;
        if len > self.buf.len() - self.pos {
            return Err("buffer underflow");
        }
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    #[inline]
    fn string(&mut self) -> Result<&'a str, Fail> {
        let bytes = self.bytes()?;
        if self.ascii {
            // SAFETY: `bytes` lies inside a buffer checked to be ASCII,
            // and ASCII is valid UTF-8.
            return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
        }
        std::str::from_utf8(bytes).map_err(|_| "invalid string value: data is not UTF-8 encoded")
    }

    fn skip(&mut self, wire_type: u64, field: u64) -> Result<(), Fail> {
        match wire_type {
            0 => self.varint().map(drop),
            1 => self.advance(8),
            2 => self.bytes().map(drop),
            5 => self.advance(4),
            3 => self.skip_group(field),
            _ => Err("invalid wire type"),
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), Fail> {
        if n > self.buf.len() - self.pos {
            return Err("buffer underflow");
        }
        self.pos += n;
        Ok(())
    }

    /// Skips a (deprecated) group up to its matching end tag, as prost does.
    fn skip_group(&mut self, field: u64) -> Result<(), Fail> {
        loop {
            if self.pos >= self.buf.len() {
                return Err("buffer underflow");
            }
            let (f, w) = self.key()?;
            if w == 4 {
                return if f == field { Ok(()) } else { Err("unexpected end group tag") };
            }
            self.skip(w, f)?;
        }
    }

    #[inline]
    fn key(&mut self) -> Result<(u64, u64), Fail> {
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err("invalid key value");
        }
        let (field, wire_type) = (key >> 3, key & 7);
        if wire_type > 5 {
            return Err("invalid wire type value");
        }
        if field == 0 {
            return Err("invalid tag value: 0");
        }
        Ok((field, wire_type))
    }
}

fn expect(wire_type: u64, want: u64) -> Result<(), Fail> {
    if wire_type == want { Ok(()) } else { Err("invalid wire type") }
}

/// A protobuf kind number as a raw field: 0 is absent, an unknown number
/// stays visible so R1 rejects it by name.
pub(crate) fn kind_field(n: i32) -> Field<'static> {
    match pb::EventKind::try_from(n) {
        Ok(pb::EventKind::Unspecified) => Field::Absent,
        Ok(k) => Field::str(k.as_str_name()),
        Err(_) => Field::Str(Cow::Owned(n.to_string())),
    }
}

/// A protobuf network number as a raw field, like [`kind_field`].
pub(crate) fn network_field(n: i32) -> Field<'static> {
    match pb::Network::try_from(n) {
        Ok(pb::Network::Unspecified) => Field::Absent,
        Ok(k) => Field::str(k.as_str_name()),
        Err(_) => Field::Str(Cow::Owned(n.to_string())),
    }
}

fn merchant<'a>(bytes: &'a [u8], ascii: bool, m: &mut RawMerchant<'a>) -> Result<(), Fail> {
    let mut r = Reader { buf: bytes, pos: 0, ascii };
    while r.pos < r.buf.len() {
        let (field, wt) = r.key()?;
        let slot = match field {
            1 => &mut m.mid,
            2 => &mut m.mcc,
            3 => &mut m.country,
            4 => &mut m.name,
            _ => {
                r.skip(wt, field)?;
                continue;
            }
        };
        expect(wt, 2)?;
        *slot = Field::str(r.string()?);
    }
    Ok(())
}

/// Decodes one `CardEvent`, borrowing its strings from `bytes`.
#[inline]
pub fn decode_card_event(bytes: &[u8]) -> Result<RawEvent<'_>, Rejection> {
    // The same limit as every other decoder: the pipeline calls this one on
    // Kafka records, which no framing has measured.
    if bytes.len() > crate::MAX_RECORD_BYTES {
        return Err(Rejection::malformed(format!(
            "record of {} bytes exceeds {}",
            bytes.len(),
            crate::MAX_RECORD_BYTES
        )));
    }
    decode(bytes).map_err(|why| Rejection::malformed(format!("not a protobuf CardEvent: {why}")))
}

#[inline]
fn decode(bytes: &[u8]) -> Result<RawEvent<'_>, Fail> {
    let mut e = RawEvent::default();
    // The enum fields are proto3 implicit-presence: absent means 0.
    let (mut kind, mut network) = (0i32, 0i32);
    let mut r = Reader { buf: bytes, pos: 0, ascii: bytes.is_ascii() };
    while r.pos < r.buf.len() {
        let (field, wt) = r.key()?;
        match field {
            2 | 5 => {
                expect(wt, 0)?;
                // int32 from a varint keeps the low 32 bits, as protobuf does.
                let v = r.varint()? as i32;
                if field == 2 { kind = v } else { network = v }
            }
            9 => {
                expect(wt, 2)?;
                let body = r.bytes()?;
                // Repeated merchant fields merge, as prost merges them.
                if !matches!(e.merchant, MerchantField::Object(_)) {
                    e.merchant = MerchantField::Object(RawMerchant::default());
                }
                let MerchantField::Object(m) = &mut e.merchant else { unreachable!("set just above") };
                merchant(body, r.ascii, m)?;
            }
            1 | 3 | 4 | 6 | 7 | 8 | 10 => {
                expect(wt, 2)?;
                let s = Field::str(r.string()?);
                match field {
                    1 => e.event_id = s,
                    3 => e.card_token = s,
                    4 => e.occurred_at = s,
                    6 => e.transaction_id = s,
                    7 => e.amount = s,
                    8 => e.currency = s,
                    _ => e.offer_id = s,
                }
            }
            _ => r.skip(wt, field)?,
        }
    }
    e.kind = kind_field(kind);
    e.network = network_field(network);
    Ok(e)
}
