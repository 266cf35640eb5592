//! Card events: the raw shape decoded from JSON or protobuf, and the typed
//! event that validation (R1) makes of it.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, FixedOffset};

use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::country::{Country, parse_country};
use crate::money::{Currency, DecimalError, parse_decimal};
use crate::pan;

/// One field of a raw event as it arrived: absent, a string, or something
/// that is not a string (named by its JSON type).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Field<'a> {
    /// Missing, or JSON `null`.
    #[default]
    Absent,
    /// A string value.
    Str(Cow<'a, str>),
    /// A value of another type: `"number"`, `"boolean"`, `"array"`, `"object"`.
    NotString(&'static str),
}

impl<'a> Field<'a> {
    /// A borrowed string field.
    pub fn str(s: &'a str) -> Self {
        Field::Str(Cow::Borrowed(s))
    }

    /// From an optional owned string (the protobuf form).
    pub fn from_option(s: Option<String>) -> Self {
        s.map_or(Field::Absent, |s| Field::Str(Cow::Owned(s)))
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Field::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The `merchant` object of a raw event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RawMerchant<'a> {
    /// Merchant id.
    #[serde(borrow)]
    pub mid: Field<'a>,
    /// Merchant category code.
    #[serde(borrow)]
    pub mcc: Field<'a>,
    /// ISO 3166 alpha-2 country.
    #[serde(borrow)]
    pub country: Field<'a>,
    /// Display name; kept only for diagnostics.
    #[serde(borrow)]
    pub name: Field<'a>,
}

/// The `merchant` field: absent, an object, or another type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MerchantField<'a> {
    /// Missing or `null`.
    #[default]
    Absent,
    /// An object.
    Object(RawMerchant<'a>),
    /// A value of another JSON type.
    NotObject(&'static str),
}

/// A card event exactly as decoded, before any rule is applied. JSON and
/// protobuf decoders both produce this, so R1 is judged by one piece of code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RawEvent<'a> {
    #[serde(borrow)]
    #[allow(missing_docs)]
    pub event_id: Field<'a>,
    #[serde(borrow)]
    #[allow(missing_docs)]
    pub kind: Field<'a>,
    #[serde(borrow)]
    #[allow(missing_docs)]
    pub card_token: Field<'a>,
    #[serde(borrow)]
    #[allow(missing_docs)]
    pub occurred_at: Field<'a>,
    #[serde(borrow)]
    #[allow(missing_docs)]
    pub network: Field<'a>,
    #[serde(borrow)]
    #[allow(missing_docs)]
    pub transaction_id: Field<'a>,
    #[serde(borrow)]
    #[allow(missing_docs)]
    pub amount: Field<'a>,
    #[serde(borrow)]
    #[allow(missing_docs)]
    pub currency: Field<'a>,
    #[serde(borrow)]
    #[allow(missing_docs)]
    pub merchant: MerchantField<'a>,
    #[serde(borrow)]
    #[allow(missing_docs)]
    pub offer_id: Field<'a>,
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Absent)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Absent)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Field::NotString("boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Field::NotString("number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Field::NotString("number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Field::NotString("number"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::NotString("array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::NotString("object"))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for MerchantField<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MerchantField<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawMerchant::deserialize(de::value::MapAccessDeserializer::new(map)).map(MerchantField::Object)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MerchantField::Absent)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(MerchantField::Absent)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(MerchantField::NotObject("string"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MerchantField::NotObject("boolean"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MerchantField::NotObject("number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MerchantField::NotObject("number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MerchantField::NotObject("number"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MerchantField::NotObject("array"))
            }
        }
        d.deserialize_any(V)
    }
}

/// The kind of a card event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A purchase is authorized: rewards become PENDING (R8).
    Authorization,
    /// A purchase settles: rewards become CONFIRMED (R9).
    Clearing,
    /// An authorization is withdrawn (R10).
    AuthReversal,
    /// Money goes back to the card (R11).
    Refund,
    /// The card opts into an offer (R3).
    Activation,
}

impl EventKind {
    /// Every kind, in contract order.
    pub const ALL: [EventKind; 5] = [
        EventKind::Authorization,
        EventKind::Clearing,
        EventKind::AuthReversal,
        EventKind::Refund,
        EventKind::Activation,
    ];

    /// The contract's name, e.g. `"AUTH_REVERSAL"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Authorization => "AUTHORIZATION",
            EventKind::Clearing => "CLEARING",
            EventKind::AuthReversal => "AUTH_REVERSAL",
            EventKind::Refund => "REFUND",
            EventKind::Activation => "ACTIVATION",
        }
    }

    /// Parses the contract's name.
    #[inline]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "AUTHORIZATION" => Some(EventKind::Authorization),
            "CLEARING" => Some(EventKind::Clearing),
            "AUTH_REVERSAL" => Some(EventKind::AuthReversal),
            "REFUND" => Some(EventKind::Refund),
            "ACTIVATION" => Some(EventKind::Activation),
            _ => None,
        }
    }
}

/// A card network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Network {
    #[allow(missing_docs)]
    Visa,
    #[allow(missing_docs)]
    Mastercard,
    #[allow(missing_docs)]
    Amex,
    #[allow(missing_docs)]
    Discover,
}

impl Network {
    /// Every network.
    pub const ALL: [Network; 4] = [Network::Visa, Network::Mastercard, Network::Amex, Network::Discover];

    /// The contract's name, e.g. `"MASTERCARD"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Visa => "VISA",
            Network::Mastercard => "MASTERCARD",
            Network::Amex => "AMEX",
            Network::Discover => "DISCOVER",
        }
    }

    /// Parses the contract's name.
    #[inline]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "VISA" => Some(Network::Visa),
            "MASTERCARD" => Some(Network::Mastercard),
            "AMEX" => Some(Network::Amex),
            "DISCOVER" => Some(Network::Discover),
            _ => None,
        }
    }

    /// This network's bit in a network set.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// An amount of money in a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    /// Major units, with at most the currency's minor-unit digits.
    pub amount: Decimal,
    /// ISO 4217 currency.
    pub currency: Currency,
}

/// Where a purchase happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Merchant<'a> {
    /// Merchant id as the network reports it.
    pub mid: &'a str,
    /// Merchant category code, 0000–9999.
    pub mcc: u16,
    /// Country of the merchant, when reported.
    pub country: Option<Country>,
}

/// What an AUTHORIZATION or CLEARING carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purchase<'a> {
    /// Links the purchase's auth, clearing, reversal and refunds.
    pub transaction_id: &'a str,
    /// Card network.
    pub network: Network,
    /// Amount charged.
    pub money: Money,
    /// Merchant.
    pub merchant: Merchant<'a>,
}

/// The kind-specific part of a valid event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventBody<'a> {
    /// R8.
    Authorization(Purchase<'a>),
    /// R9.
    Clearing(Purchase<'a>),
    /// R10.
    AuthReversal {
        /// The reversed transaction.
        transaction_id: &'a str,
    },
    /// R11.
    Refund {
        /// The refunded transaction.
        transaction_id: &'a str,
        /// Amount given back.
        money: Money,
    },
    /// R3 activation.
    Activation {
        /// The activated offer.
        offer_id: &'a str,
    },
}

/// A card event that passed R1's stateless checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardEvent<'a> {
    /// Unique per card (R2).
    pub event_id: &'a str,
    /// Network token of the card.
    pub card_token: &'a str,
    /// When it happened, with the local offset R3 judges days and hours by.
    pub occurred_at: DateTime<FixedOffset>,
    /// What happened.
    pub body: EventBody<'a>,
}

impl<'a> CardEvent<'a> {
    /// The transaction the event names; `None` for an activation.
    #[inline]
    pub fn transaction_id(&self) -> Option<&'a str> {
        match self.body {
            EventBody::Authorization(p) | EventBody::Clearing(p) => Some(p.transaction_id),
            EventBody::AuthReversal { transaction_id } | EventBody::Refund { transaction_id, .. } => {
                Some(transaction_id)
            }
            EventBody::Activation { .. } => None,
        }
    }

    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        match self.body {
            EventBody::Authorization(_) => EventKind::Authorization,
            EventBody::Clearing(_) => EventKind::Clearing,
            EventBody::AuthReversal { .. } => EventKind::AuthReversal,
            EventBody::Refund { .. } => EventKind::Refund,
            EventBody::Activation { .. } => EventKind::Activation,
        }
    }
}

/// Why an event was rejected: a stable code for dead letters and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Not decodable at all: bad JSON, bad protobuf, invalid UTF-8, too large.
    Malformed,
    /// A required field is absent.
    MissingField,
    /// A field is present but breaks the table of contract section 1.
    InvalidField,
    /// `card_token` is a raw card number (R1).
    PanDetected,
    /// A clearing or refund in another currency than its transaction (R1).
    CurrencyMismatch,
}

impl RejectReason {
    /// Every reason.
    pub const ALL: [RejectReason; 5] = [
        RejectReason::Malformed,
        RejectReason::MissingField,
        RejectReason::InvalidField,
        RejectReason::PanDetected,
        RejectReason::CurrencyMismatch,
    ];

    /// The code written to dead letters and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "MALFORMED",
            RejectReason::MissingField => "MISSING_FIELD",
            RejectReason::InvalidField => "INVALID_FIELD",
            RejectReason::PanDetected => "PAN_DETECTED",
            RejectReason::CurrencyMismatch => "CURRENCY_MISMATCH",
        }
    }
}

/// A rejected event's reason, the field at fault and a readable detail.
/// The detail never contains a raw card number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Stable code.
    pub reason: RejectReason,
    /// The field at fault, when one is (`"merchant.mcc"`).
    pub field: Option<&'static str>,
    /// What is wrong, for a person.
    pub detail: String,
}

impl Rejection {
    /// A rejection for `field`.
    pub fn new(reason: RejectReason, field: &'static str, detail: impl Into<String>) -> Self {
        Rejection { reason, field: Some(field), detail: detail.into() }
    }

    /// An undecodable record.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Rejection { reason: RejectReason::Malformed, field: None, detail: detail.into() }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.detail)
    }
}

fn required<'f>(field: &'f Field<'_>, name: &'static str) -> Result<&'f str, Rejection> {
    match field {
        Field::Str(s) => Ok(s),
        Field::Absent => Err(Rejection::new(RejectReason::MissingField, name, format!("{name} is required"))),
        Field::NotString(t) => {
            Err(Rejection::new(RejectReason::InvalidField, name, format!("{name} must be a string, not a {t}")))
        }
    }
}

fn non_empty<'f>(field: &'f Field<'_>, name: &'static str) -> Result<&'f str, Rejection> {
    let s = required(field, name)?;
    if s.is_empty() {
        return Err(Rejection::new(RejectReason::InvalidField, name, format!("{name} must not be empty")));
    }
    Ok(s)
}

fn invalid(name: &'static str, detail: String) -> Rejection {
    Rejection::new(RejectReason::InvalidField, name, detail)
}

/// True for 1–64 characters of `[A-Za-z0-9_.:-]`.
pub fn is_valid_card_token(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Applies R1's stateless checks (every rule of the field table of contract
/// section 1, and the PAN rule) to a raw event.
///
/// Fields that the table does not list for the event's kind are ignored,
/// not validated. The currency checks against the transaction need state
/// and are made by the engine.
pub fn validate<'a>(raw: &'a RawEvent<'_>) -> Result<CardEvent<'a>, Rejection> {
    // The PAN rule comes first so that a raw card number is reported as such
    // whatever else is wrong with the event. R1 names card_token; the other
    // fields the engine keeps and writes back out (into reward records and
    // the state changelog) get the same rule, so that no output can hold a
    // card number (docs/decisions.md). For the amount that is its whole
    // units: 13–15 digits pass the amount limit, and an amount of over a
    // trillion whose digits pass Luhn is a card number in the wrong field.
    for (value, name) in [
        (raw.card_token.as_str(), "card_token"),
        (raw.event_id.as_str(), "event_id"),
        (raw.transaction_id.as_str(), "transaction_id"),
        (raw.offer_id.as_str(), "offer_id"),
        (raw.amount.as_str().map(|s| s.split('.').next().unwrap_or_default()), "amount"),
    ] {
        if let Some(value) = value {
            if pan::is_pan(value) {
                return Err(Rejection::new(
                    RejectReason::PanDetected,
                    name,
                    format!("{name} is a raw card number ending in {}", pan::last_four(value)),
                ));
            }
        }
    }
    let event_id = non_empty(&raw.event_id, "event_id")?;
    let kind_str = required(&raw.kind, "kind")?;
    let kind = EventKind::parse(kind_str).ok_or_else(|| {
        invalid(
            "kind",
            format!(
                "kind {:?} is not one of AUTHORIZATION, CLEARING, AUTH_REVERSAL, REFUND, ACTIVATION",
                clip(kind_str)
            ),
        )
    })?;
    let card_token = required(&raw.card_token, "card_token")?;
    if !is_valid_card_token(card_token) {
        return Err(invalid("card_token", "card_token must be 1-64 characters of [A-Za-z0-9_.:-]".into()));
    }
    let occurred_str = required(&raw.occurred_at, "occurred_at")?;
    let occurred_at = crate::money::parse_timestamp(occurred_str).map_err(|e| {
        invalid("occurred_at", format!("occurred_at {:?} is not RFC 3339 with an offset: {e}", clip(occurred_str)))
    })?;
    let body = match kind {
        EventKind::Activation => EventBody::Activation { offer_id: required(&raw.offer_id, "offer_id")? },
        EventKind::AuthReversal => {
            EventBody::AuthReversal { transaction_id: non_empty(&raw.transaction_id, "transaction_id")? }
        }
        EventKind::Refund => {
            EventBody::Refund { transaction_id: non_empty(&raw.transaction_id, "transaction_id")?, money: money(raw)? }
        }
        EventKind::Authorization | EventKind::Clearing => {
            let transaction_id = non_empty(&raw.transaction_id, "transaction_id")?;
            let network_str = required(&raw.network, "network")?;
            let network = Network::parse(network_str).ok_or_else(|| {
                invalid(
                    "network",
                    format!("network {:?} is not one of VISA, MASTERCARD, AMEX, DISCOVER", clip(network_str)),
                )
            })?;
            let money = money(raw)?;
            let merchant = merchant(&raw.merchant)?;
            let purchase = Purchase { transaction_id, network, money, merchant };
            if kind == EventKind::Authorization {
                EventBody::Authorization(purchase)
            } else {
                EventBody::Clearing(purchase)
            }
        }
    };
    Ok(CardEvent { event_id, card_token, occurred_at, body })
}

fn money(raw: &RawEvent<'_>) -> Result<Money, Rejection> {
    let amount_str = required(&raw.amount, "amount")?;
    let code = required(&raw.currency, "currency")?;
    let currency = Currency::from_code(code)
        .ok_or_else(|| invalid("currency", format!("currency {:?} is not an ISO 4217 code", clip(code))))?;
    let amount = parse_decimal(amount_str, Some(currency.exponent())).map_err(|e| {
        let shown = clip(amount_str);
        match e {
            DecimalError::TooManyDigits { .. } => invalid("amount", format!("amount {shown:?} {e} for {currency}")),
            _ => invalid("amount", format!("amount {shown:?} {e}")),
        }
    })?;
    if amount >= crate::money::MAX_AMOUNT {
        return Err(invalid("amount", format!("amount {:?} is not below the limit of 10^15", clip(amount_str))));
    }
    Ok(Money { amount, currency })
}

fn merchant<'a>(field: &'a MerchantField<'_>) -> Result<Merchant<'a>, Rejection> {
    let m = match field {
        MerchantField::Object(m) => m,
        MerchantField::Absent => {
            return Err(Rejection::new(RejectReason::MissingField, "merchant", "merchant is required"));
        }
        MerchantField::NotObject(t) => {
            return Err(invalid("merchant", format!("merchant must be an object, not a {t}")));
        }
    };
    let mid = required(&m.mid, "merchant.mid")?;
    let mcc_str = required(&m.mcc, "merchant.mcc")?;
    if mcc_str.len() != 4 || !mcc_str.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("merchant.mcc", format!("merchant.mcc {:?} must be 4 digits", clip(mcc_str))));
    }
    let mcc = mcc_str.parse().expect("four ASCII digits");
    let country = match &m.country {
        Field::Absent => None,
        Field::NotString(t) => {
            return Err(invalid("merchant.country", format!("merchant.country must be a string, not a {t}")));
        }
        Field::Str(c) => Some(parse_country(c).ok_or_else(|| {
            invalid("merchant.country", format!("merchant.country {:?} is not an ISO 3166 alpha-2 code", clip(c)))
        })?),
    };
    if let Field::NotString(t) = m.name {
        return Err(invalid("merchant.name", format!("merchant.name must be a string, not a {t}")));
    }
    Ok(Merchant { mid, mcc, country })
}

/// Shortens outside text quoted in a detail so a huge field cannot blow up a
/// dead letter; the caller's record is masked for PANs separately.
fn clip(s: &str) -> Cow<'_, str> {
    const MAX: usize = 64;
    let s = pan::mask_pans(s);
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &s[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_nothing_else_does() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        for n in Network::ALL {
            assert_eq!(Network::parse(n.as_str()), Some(n));
        }
        for bad in ["", "authorization", "VISA ", "CLEARINGS", "Amex"] {
            assert_eq!(EventKind::parse(bad), None, "{bad}");
            assert_eq!(Network::parse(bad), None, "{bad}");
        }
    }
}
