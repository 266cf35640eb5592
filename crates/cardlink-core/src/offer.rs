//! Offers: the contract's offer format, validated into a form the matcher
//! can check cheaply (bit sets, minutes of the day, instants).

use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::country::{Country, parse_country};
use crate::event::Network;
use crate::money::{Currency, MAX_OFFER_DECIMAL, MAX_POINTS_PER_UNIT, parse_decimal};

/// How an offer's value is computed (R4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewardRule {
    /// Cash: `amount × percent / 100`, with 0 < percent ≤ 100.
    Percent(Decimal),
    /// Cash: a fixed value in the offer currency.
    Fixed(Decimal),
    /// Points: `amount × points_per_unit`.
    PointsPerUnit(Decimal),
}

impl RewardRule {
    /// True for `percent` and `fixed` offers (R5 lets only one apply).
    pub fn is_cash(self) -> bool {
        !matches!(self, RewardRule::PointsPerUnit(_))
    }
}

/// A local time window `from ≤ t < until`, in seconds of the day; `from >
/// until` wraps past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hours {
    /// Start, seconds after local midnight.
    pub from: u32,
    /// End (exclusive), seconds after local midnight.
    pub until: u32,
}

impl Hours {
    /// True when `second_of_day` lies in the window.
    pub fn contains(self, second_of_day: u32) -> bool {
        if self.from < self.until {
            self.from <= second_of_day && second_of_day < self.until
        } else {
            second_of_day >= self.from || second_of_day < self.until
        }
    }
}

/// A validated offer.
///
/// Fields are in declared order (`repr(C)`): the id, then those that
/// re-valuing a reward reads (rule, budget, caps, minimum spend, currency), so
/// that in an [`crate::book::OfferSlot`] they follow its first line, which
/// holds what a new reward reads; the small fields fill what would be
/// padding.
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(C)]
pub struct Offer {
    /// Unique, non-empty id.
    pub id: Box<str>,
    /// Value rule.
    pub reward: RewardRule,
    /// Total of live reward values, in the reward's unit (R6).
    pub budget: Option<Decimal>,
    /// Cap per transaction, in the reward's unit.
    pub max_reward: Option<Decimal>,
    /// Minimum purchase amount.
    pub min_spend: Decimal,
    /// Currency of purchases, thresholds, fixed rewards and cash budgets.
    pub currency: Currency,
    /// Network bit set (see [`Network::bit`]); 0 matches any.
    pub networks: u8,
    /// Local weekdays, bit 0 = Monday; 0 matches any day.
    pub days: u8,
    /// Merchant ids; empty matches any.
    pub mids: Vec<Box<str>>,
    /// Merchant category codes; empty matches any.
    pub mccs: Vec<u16>,
    /// Merchant countries; empty matches any.
    pub countries: Vec<Country>,
    /// At most this many live rewards per card (R7).
    pub max_per_card: Option<u64>,
    /// Valid from this instant (inclusive).
    pub valid_from: Option<DateTime<Utc>>,
    /// Valid until this instant (exclusive).
    pub valid_until: Option<DateTime<Utc>>,
    /// Local time window.
    pub hours: Option<Hours>,
    /// The card must have activated the offer first.
    pub activation_required: bool,
}

impl Offer {
    /// Digits a value of this offer is written and rounded with: the
    /// currency's minor unit for cash, none for points.
    pub fn value_digits(&self) -> u32 {
        if self.reward.is_cash() { self.currency.exponent() } else { 0 }
    }
}

/// Where an offer breaks the format; names the offer and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct OfferError {
    /// Position in the file (0-based), when read from a file.
    pub index: Option<usize>,
    /// The offer's id, when it has a readable one.
    pub offer_id: Option<String>,
    /// The field at fault (`"reward.percent"`), empty for the whole offer.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Messages quote the values at fault: a card number typed into an offer
/// is masked, since the message goes to the terminal, the admin API and
/// logs.
impl fmt::Display for OfferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use std::fmt::Write;
        let mut s = String::new();
        match (&self.offer_id, self.index) {
            (Some(id), Some(i)) => write!(s, "offer {id:?} (#{}, 0-based)", i)?,
            (Some(id), None) => write!(s, "offer {id:?}")?,
            (None, Some(i)) => write!(s, "offer #{i} (0-based)")?,
            (None, None) => write!(s, "offer")?,
        }
        if self.field.is_empty() {
            write!(s, ": {}", self.message)?;
        } else {
            write!(s, ", field {:?}: {}", self.field, self.message)?;
        }
        f.write_str(&crate::pan::mask_pans(&s))
    }
}

/// Parses an offer file: a JSON array of offers with unique ids.
pub fn parse_offer_file(bytes: &[u8]) -> Result<Vec<Offer>, OfferError> {
    let whole = |message: String| OfferError { index: None, offer_id: None, field: String::new(), message };
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| whole(format!("the offer file is not valid JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(whole("the offer file must be a JSON array of offers".into()));
    };
    let mut offers = Vec::with_capacity(items.len());
    let mut seen = rustc_hash::FxHashSet::default();
    for (i, item) in items.iter().enumerate() {
        let offer = parse_offer(item).map_err(|mut e| {
            e.index = Some(i);
            e
        })?;
        if !seen.insert(offer.id.clone()) {
            return Err(OfferError {
                index: Some(i),
                offer_id: Some(offer.id.to_string()),
                field: "id".into(),
                message: "the id is used by an earlier offer in the file".into(),
            });
        }
        offers.push(offer);
    }
    Ok(offers)
}

/// The offer fields of the contract; anything else is ignored.
pub const OFFER_FIELDS: &[&str] = &[
    "id",
    "currency",
    "reward",
    "merchant",
    "networks",
    "min_spend",
    "max_reward",
    "valid_from",
    "valid_until",
    "days",
    "hours",
    "activation_required",
    "max_per_card",
    "budget",
];

/// Validates one offer given as a JSON value (a file entry, an offers-topic
/// record, or an admin API body).
pub fn parse_offer(value: &Value) -> Result<Offer, OfferError> {
    let Value::Object(obj) = value else {
        return Err(OfferError {
            index: None,
            offer_id: None,
            field: String::new(),
            message: "an offer must be a JSON object".into(),
        });
    };
    let raw_id = match obj.get("id") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    };
    // Errors name the offer, with a card number masked.
    let offer_id = raw_id.map(|s| crate::pan::mask_pans(s).into_owned());
    let err = |field: &str, message: String| OfferError {
        index: None,
        offer_id: offer_id.clone(),
        field: field.into(),
        message: crate::pan::mask_pans(&message).into_owned(),
    };
    let id = raw_id.ok_or_else(|| err("id", "must be a non-empty string".into()))?.to_owned();
    // Offer ids are written into every reward record: never a card number.
    if crate::pan::is_pan(&id) {
        return Err(err("id", "is a raw card number (13-19 digits passing the Luhn check)".into()));
    }
    let currency = match obj.get("currency") {
        Some(Value::String(c)) => {
            Currency::from_code(c).ok_or_else(|| err("currency", format!("{c:?} is not an ISO 4217 code")))?
        }
        _ => return Err(err("currency", "is required: an ISO 4217 code string".into())),
    };
    let dec = |field: &str, v: &Value| -> Result<Decimal, OfferError> {
        match v {
            Value::String(s) => match parse_decimal(s, None) {
                Ok(d) if d >= MAX_OFFER_DECIMAL => Err(err(field, format!("{s:?} is not below the limit of 10^24"))),
                Ok(d) => Ok(d),
                Err(e) => Err(err(field, format!("{s:?} {e}"))),
            },
            _ => Err(err(field, "must be a decimal string such as \"5.00\"".into())),
        }
    };
    let opt = |name: &str| obj.get(name).filter(|v| !v.is_null());

    let reward = match opt("reward") {
        Some(Value::Object(r)) => {
            let present: Vec<&str> = ["percent", "fixed", "points_per_unit"]
                .into_iter()
                .filter(|k| r.get(*k).is_some_and(|v| !v.is_null()))
                .collect();
            if present.len() != 1 {
                return Err(err("reward", "must hold exactly one of percent, fixed, points_per_unit".into()));
            }
            let key = present[0];
            let field = format!("reward.{key}");
            let v = dec(&field, &r[key])?;
            match key {
                "percent" if v > Decimal::ZERO && v <= Decimal::ONE_HUNDRED => RewardRule::Percent(v),
                "percent" => return Err(err(&field, "must be above 0 and at most 100".into())),
                "fixed" if v > Decimal::ZERO => RewardRule::Fixed(v),
                "fixed" => return Err(err(&field, "must be above 0".into())),
                _ if v > MAX_POINTS_PER_UNIT => return Err(err(&field, "must be at most 1000000".into())),
                _ if v > Decimal::ZERO => RewardRule::PointsPerUnit(v),
                _ => return Err(err(&field, "must be above 0".into())),
            }
        }
        _ => return Err(err("reward", "is required: an object with one of percent, fixed, points_per_unit".into())),
    };

    let (mut mids, mut mccs, mut countries) = (Vec::new(), Vec::new(), Vec::new());
    match opt("merchant") {
        None => {}
        Some(Value::Object(m)) => {
            for s in string_list(m, "mids", &err, "merchant.mids")? {
                mids.push(Box::from(s));
            }
            for s in string_list(m, "mccs", &err, "merchant.mccs")? {
                if s.len() != 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err("merchant.mccs", format!("{s:?} is not a 4-digit MCC")));
                }
                mccs.push(s.parse().expect("four digits"));
            }
            for s in string_list(m, "countries", &err, "merchant.countries")? {
                countries.push(
                    parse_country(s)
                        .ok_or_else(|| err("merchant.countries", format!("{s:?} is not an ISO 3166 alpha-2 code")))?,
                );
            }
        }
        Some(_) => return Err(err("merchant", "must be an object with optional lists mids, mccs, countries".into())),
    }
    mids.sort();
    mids.dedup();
    mccs.sort();
    mccs.dedup();
    countries.sort();
    countries.dedup();

    let mut networks = 0u8;
    for s in string_list(obj, "networks", &err, "networks")? {
        let n = Network::parse(s)
            .ok_or_else(|| err("networks", format!("{s:?} is not one of VISA, MASTERCARD, AMEX, DISCOVER")))?;
        networks |= n.bit();
    }

    let min_spend = opt("min_spend").map(|v| dec("min_spend", v)).transpose()?.unwrap_or(Decimal::ZERO);
    let max_reward = opt("max_reward").map(|v| dec("max_reward", v)).transpose()?;
    let budget = opt("budget").map(|v| dec("budget", v)).transpose()?;

    let instant = |field: &str| -> Result<Option<DateTime<Utc>>, OfferError> {
        match opt(field) {
            None => Ok(None),
            Some(Value::String(s)) => crate::money::parse_timestamp(s)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|e| err(field, format!("{s:?} is not an RFC 3339 instant: {e}"))),
            Some(_) => Err(err(field, "must be an RFC 3339 string".into())),
        }
    };
    let valid_from = instant("valid_from")?;
    let valid_until = instant("valid_until")?;

    let mut days = 0u8;
    for s in string_list(obj, "days", &err, "days")? {
        let bit = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
            .iter()
            .position(|d| *d == s)
            .ok_or_else(|| err("days", format!("{s:?} is not one of MON, TUE, WED, THU, FRI, SAT, SUN")))?;
        days |= 1 << bit;
    }

    let hours = match opt("hours") {
        None => None,
        Some(Value::Object(h)) => {
            let time = |key: &str| -> Result<u32, OfferError> {
                let field = format!("hours.{key}");
                match h.get(key) {
                    Some(Value::String(s)) => {
                        parse_hh_mm(s).ok_or_else(|| err(&field, format!("{s:?} is not a time HH:MM")))
                    }
                    _ => Err(err(&field, "is required: a time \"HH:MM\"".into())),
                }
            };
            let (from, until) = (time("from")?, time("until")?);
            if from == until {
                return Err(err("hours", "from and until must differ".into()));
            }
            Some(Hours { from, until })
        }
        Some(_) => return Err(err("hours", "must be an object {\"from\": \"HH:MM\", \"until\": \"HH:MM\"}".into())),
    };

    let activation_required = match opt("activation_required") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(err("activation_required", "must be true or false".into())),
    };
    let max_per_card = match opt("max_per_card") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Some(n),
            _ => return Err(err("max_per_card", "must be a positive integer".into())),
        },
    };
    for (field, v) in [("min_spend", Some(min_spend)), ("max_reward", max_reward), ("budget", budget)] {
        if v.is_some_and(|v| v < Decimal::ZERO) {
            return Err(err(field, "must not be negative".into()));
        }
    }

    Ok(Offer {
        id: id.into_boxed_str(),
        currency,
        reward,
        mids,
        mccs,
        countries,
        networks,
        min_spend,
        max_reward,
        valid_from,
        valid_until,
        days,
        hours,
        activation_required,
        max_per_card,
        budget,
    })
}

fn string_list<'v>(
    obj: &'v Map<String, Value>,
    key: &str,
    err: &dyn Fn(&str, String) -> OfferError,
    field: &str,
) -> Result<Vec<&'v str>, OfferError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            items.iter().map(|v| v.as_str().ok_or_else(|| err(field, "must be a list of strings".into()))).collect()
        }
        Some(_) => Err(err(field, "must be a list of strings".into())),
    }
}

/// Parses `"HH:MM"` (00:00–23:59) into seconds after midnight.
fn parse_hh_mm(s: &str) -> Option<u32> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' || ![0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit()) {
        return None;
    }
    let h = (b[0] - b'0') as u32 * 10 + (b[1] - b'0') as u32;
    let m = (b[3] - b'0') as u32 * 10 + (b[4] - b'0') as u32;
    (h < 24 && m < 60).then_some((h * 60 + m) * 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"id": "o1", "currency": "USD", "reward": {"percent": "10"}})
    }

    fn with(key: &str, v: Value) -> Value {
        let mut o = base();
        o[key] = v;
        o
    }

    /// `expected`: Ok(()) or the field the error must name.
    fn check(input: Value, expected: Result<(), &str>) {
        let got = parse_offer(&input);
        match (got, expected) {
            (Ok(_), Ok(())) => {}
            (Err(e), Err(field)) => {
                assert_eq!(e.field, field, "{input}: {e}");
                assert!(e.to_string().contains(&e.field), "message names the field: {e}");
            }
            (got, expected) => panic!("{input}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn offer_validation_table() {
        check(base(), Ok(()));
        check(with("id", json!("")), Err("id"));
        check(with("id", json!(7)), Err("id"));
        check(with("currency", json!("usd")), Err("currency"));
        check(with("reward", json!({"percent": "0"})), Err("reward.percent"));
        check(with("reward", json!({"percent": "100"})), Ok(()));
        check(with("reward", json!({"percent": "100.01"})), Err("reward.percent"));
        check(with("reward", json!({"percent": 10})), Err("reward.percent"));
        check(with("reward", json!({"fixed": "5.00"})), Ok(()));
        check(with("reward", json!({"fixed": "0"})), Err("reward.fixed"));
        check(with("reward", json!({"points_per_unit": "2"})), Ok(()));
        check(with("reward", json!({"points_per_unit": "0"})), Err("reward.points_per_unit"));
        check(with("reward", json!({"points_per_unit": "1000000"})), Ok(()));
        check(with("reward", json!({"points_per_unit": "1000000.01"})), Err("reward.points_per_unit"));
        check(with("budget", json!("999999999999999999999999")), Ok(()));
        check(with("budget", json!("1000000000000000000000000")), Err("budget"));
        check(with("valid_from", json!("2026-05-01 00:00:00Z")), Err("valid_from"));
        check(with("reward", json!({"percent": "1", "fixed": "1"})), Err("reward"));
        check(with("reward", json!({})), Err("reward"));
        check(with("merchant", json!({"mids": ["M1"], "mccs": ["5812"], "countries": ["US"]})), Ok(()));
        check(with("merchant", json!({"mccs": ["581"]})), Err("merchant.mccs"));
        check(with("merchant", json!({"countries": ["XX"]})), Err("merchant.countries"));
        check(with("merchant", json!({"mids": "M1"})), Err("merchant.mids"));
        check(with("networks", json!(["VISA", "AMEX"])), Ok(()));
        check(with("networks", json!(["JCB"])), Err("networks"));
        check(with("min_spend", json!("-1")), Err("min_spend"));
        check(with("max_reward", json!("5.00")), Ok(()));
        check(with("budget", json!("abc")), Err("budget"));
        check(with("valid_from", json!("2026-05-01T00:00:00Z")), Ok(()));
        check(with("valid_until", json!("2026-05-01")), Err("valid_until"));
        check(with("days", json!(["MON", "SUN"])), Ok(()));
        check(with("days", json!(["Mon"])), Err("days"));
        check(with("hours", json!({"from": "22:00", "until": "02:00"})), Ok(()));
        check(with("hours", json!({"from": "11:00", "until": "11:00"})), Err("hours"));
        check(with("hours", json!({"from": "24:00", "until": "02:00"})), Err("hours.from"));
        check(with("hours", json!({"from": "9:00", "until": "12:00"})), Err("hours.from"));
        check(with("activation_required", json!("yes")), Err("activation_required"));
        check(with("max_per_card", json!(3)), Ok(()));
        check(with("max_per_card", json!(0)), Err("max_per_card"));
        check(with("max_per_card", json!(1.5)), Err("max_per_card"));
        check(with("unknown_field", json!("ignored")), Ok(()));
    }

    #[test]
    fn file_level_errors() {
        assert!(parse_offer_file(b"{}").is_err());
        assert!(parse_offer_file(b"[").is_err());
        let dup = br#"[{"id":"a","currency":"USD","reward":{"fixed":"1"}},{"id":"a","currency":"USD","reward":{"fixed":"1"}}]"#;
        let e = parse_offer_file(dup).unwrap_err();
        assert_eq!((e.index, e.field.as_str()), (Some(1), "id"));
    }

    #[test]
    fn hours_wrap_past_midnight() {
        let h = Hours { from: 22 * 3600, until: 2 * 3600 };
        assert!(h.contains(23 * 3600 + 30 * 60));
        assert!(h.contains(0));
        assert!(h.contains(2 * 3600 - 1));
        assert!(!h.contains(2 * 3600));
        assert!(!h.contains(21 * 3600 + 59 * 60 + 59));
        assert!(h.contains(22 * 3600));
    }
}
