//! Record values on the topics: card-state snapshots for the changelog,
//! reward records and dead letters in the configured format, offers in and
//! out.

use std::str::FromStr;

use cardlink_core::event::Money;
use cardlink_core::state::{Archived, Reward, Transaction};
use cardlink_core::{CardState, Currency, Offer, OfferBook, OfferIdx, RewardStatus, RewardUpdate, pan, parse_offer};
use cardlink_wire::v1 as pb;
use prost::Message;
use rust_decimal::Decimal;
use serde_json::Value;

use crate::config::TopicFormat;

/// A change read from the offers topic.
#[derive(Debug, Clone, PartialEq)]
pub enum OfferChange {
    /// A new or changed offer.
    Upsert(Offer),
    /// An empty value: the offer with this id is retired.
    Retire(String),
}

/// Decodes an offers-topic record. An empty value retires the offer named
/// by the key.
pub fn decode_offer(format: TopicFormat, key: Option<&[u8]>, value: Option<&[u8]>) -> Result<OfferChange, String> {
    match value {
        None | Some([]) => {
            let key = key.ok_or("a retirement (empty value) needs the offer id as key")?;
            let id = std::str::from_utf8(key).map_err(|_| "the offer id key is not UTF-8".to_string())?;
            Ok(OfferChange::Retire(id.to_owned()))
        }
        Some(bytes) => {
            let json = match format {
                TopicFormat::Json => serde_json::from_slice::<Value>(bytes).map_err(|e| format!("not JSON: {e}"))?,
                TopicFormat::Protobuf => {
                    let o = pb::Offer::decode(bytes).map_err(|e| format!("not a protobuf Offer: {e}"))?;
                    cardlink_wire::offer_proto_to_json(&o)
                }
            };
            let offer = parse_offer(&json).map_err(|e| e.to_string())?;
            if key.is_some_and(|k| k != offer.id.as_bytes()) {
                let key = key.unwrap_or_default();
                return Err(format!("record key {:?} differs from the offer id", String::from_utf8_lossy(key)));
            }
            Ok(OfferChange::Upsert(offer))
        }
    }
}

/// Applies one change to the book. Usage survives an update and a
/// retirement: the live rewards still count against the budget.
pub fn apply_change(book: &mut OfferBook, change: OfferChange) {
    match change {
        OfferChange::Upsert(offer) => {
            log::debug!("offer {} updated", offer.id);
            book.upsert(offer);
        }
        OfferChange::Retire(id) => {
            if book.retire(&id) {
                log::info!("offer {id} retired");
            }
        }
    }
}

/// Encodes a validated offer file entry (the contract's JSON) for the
/// offers topic.
pub fn encode_offer(format: TopicFormat, json: &Value) -> Vec<u8> {
    match format {
        TopicFormat::Json => json.to_string().into_bytes(),
        TopicFormat::Protobuf => offer_json_to_proto(json).encode_to_vec(),
    }
}

/// The protobuf form of an offer given in the contract's JSON form (fields
/// the schema lacks, such as a `name`, are dropped).
pub fn offer_json_to_proto(v: &Value) -> pb::Offer {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let list = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let reward = v.get("reward").and_then(|r| {
        let g = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_owned);
        g("percent")
            .map(pb::offer::Reward::Percent)
            .or_else(|| g("fixed").map(pb::offer::Reward::Fixed))
            .or_else(|| g("points_per_unit").map(pb::offer::Reward::PointsPerUnit))
    });
    pb::Offer {
        id: s("id").unwrap_or_default(),
        currency: s("currency").unwrap_or_default(),
        reward,
        merchant: v.get("merchant").filter(|m| m.is_object()).map(|m| pb::MerchantFilter {
            mids: list(m.get("mids")),
            mccs: list(m.get("mccs")),
            countries: list(m.get("countries")),
        }),
        networks: list(v.get("networks")),
        min_spend: s("min_spend"),
        max_reward: s("max_reward"),
        valid_from: s("valid_from"),
        valid_until: s("valid_until"),
        days: list(v.get("days")),
        hours: v.get("hours").filter(|h| h.is_object()).map(|h| pb::Hours {
            from: h.get("from").and_then(Value::as_str).unwrap_or_default().to_owned(),
            until: h.get("until").and_then(Value::as_str).unwrap_or_default().to_owned(),
        }),
        activation_required: v.get("activation_required").and_then(Value::as_bool),
        max_per_card: v.get("max_per_card").and_then(Value::as_u64),
        budget: s("budget"),
    }
}

/// Appends a reward record in `format` (JSON without a trailing newline).
pub fn encode_reward(format: TopicFormat, u: &RewardUpdate<'_>, out: &mut Vec<u8>) {
    match format {
        TopicFormat::Protobuf => cardlink_wire::reward_to_proto(u).encode(out).expect("a Vec grows"),
        TopicFormat::Json => {
            cardlink_wire::write_reward_json(u, out);
            out.pop();
        }
    }
}

/// Decodes a reward record in `format` into its protobuf message.
pub fn decode_reward(format: TopicFormat, bytes: &[u8]) -> Result<pb::RewardRecord, String> {
    match format {
        TopicFormat::Protobuf => pb::RewardRecord::decode(bytes).map_err(|e| e.to_string()),
        TopicFormat::Json => {
            let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
            let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            Ok(pb::RewardRecord {
                reward_id: s("reward_id"),
                offer_id: s("offer_id"),
                card_token: s("card_token"),
                transaction_id: s("transaction_id"),
                event_id: s("event_id"),
                status: pb::RewardStatus::from_str_name(&s("status")).map_or(0, |x| x as i32),
                kind: pb::RewardKind::from_str_name(&s("kind")).map_or(0, |x| x as i32),
                value: s("value"),
                delta: s("delta"),
                currency: v.get("currency").and_then(Value::as_str).map(str::to_owned),
            })
        }
    }
}

/// Encodes a dead letter in `format`. The result never contains a raw
/// card number, not even across protobuf field boundaries or in a topic
/// name: should the encoded bytes still show one, the token, then the
/// record, then the detail and event id are withheld.
pub fn encode_dead_letter(format: TopicFormat, mut d: pb::DeadLetter) -> Vec<u8> {
    d.source = pan::mask_pans(&d.source).into_owned();
    let encode = |d: &pb::DeadLetter| match format {
        TopicFormat::Protobuf => d.encode_to_vec(),
        TopicFormat::Json => {
            let mut out = Vec::new();
            cardlink_wire::write_dead_letter_json(d, &mut out);
            out.pop();
            out
        }
    };
    let clean = |bytes: &[u8]| !pan::contains_pan(&String::from_utf8_lossy(bytes));
    for step in 0..4 {
        match step {
            0 => {}
            1 => d.card_token = None,
            2 => d.record = "[withheld: it contained a card number]".into(),
            _ => {
                d.detail = "[withheld]".into();
                d.event_id = None;
            }
        }
        let bytes = encode(&d);
        if clean(&bytes) {
            return bytes;
        }
    }
    // Only the reason and the field are left: fixed words, no digits.
    encode(&pb::DeadLetter { reason: d.reason, field: d.field, ..Default::default() })
}

/// Decodes a dead letter in `format`.
pub fn decode_dead_letter(format: TopicFormat, bytes: &[u8]) -> Result<pb::DeadLetter, String> {
    match format {
        TopicFormat::Protobuf => pb::DeadLetter::decode(bytes).map_err(|e| e.to_string()),
        TopicFormat::Json => {
            let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
            let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
            Ok(pb::DeadLetter {
                reason: s("reason").unwrap_or_default(),
                field: s("field"),
                detail: s("detail").unwrap_or_default(),
                event_id: s("event_id"),
                card_token: s("card_token"),
                source: s("source").unwrap_or_default(),
                record: s("record").unwrap_or_default(),
            })
        }
    }
}

fn status_to_proto(s: RewardStatus) -> pb::RewardStatus {
    match s {
        RewardStatus::Pending => pb::RewardStatus::Pending,
        RewardStatus::Confirmed => pb::RewardStatus::Confirmed,
        RewardStatus::Cancelled => pb::RewardStatus::Cancelled,
    }
}

/// A card's state as a changelog value (`cardlink.v1.CardState`). Offers
/// are named by id: indexes differ between instances.
///
/// Written field by field rather than through the generated message: every
/// processed event rewrites its card's state, and building the owned
/// message cost an allocation per string (measured as the pipeline's main
/// overhead over replay). `scratch` is reused between calls.
pub fn encode_card_state(book: &OfferBook, card: &CardState, out: &mut Vec<u8>, scratch: &mut StateScratch) {
    use std::fmt::Write;
    let StateScratch { tx, reward, text, days } = scratch;
    // In the order seen, with their days, so that a restore forgets each
    // id on the day this state would have (state retention).
    days.clear();
    for (id, day) in card.seen.iter_with_days() {
        put_bytes(out, 1, id.as_bytes());
        // Ids without a day come first (see `IdSet::iter_with_days`).
        debug_assert!(day.is_some() || days.is_empty());
        days.extend(day);
    }
    for id in card.activations.iter() {
        put_bytes(out, 2, id.as_bytes());
    }
    for (id, t, day, reversed) in card.transactions.iter_with_days() {
        tx.clear();
        put_bytes(tx, 1, id.as_bytes());
        if let Some(c) = t.auth_currency {
            put_bytes(tx, 2, c.code().as_bytes());
        }
        if let Some(m) = t.cleared {
            text.clear();
            write!(text, "{}", m.amount).expect("a String grows");
            put_bytes(tx, 3, text.as_bytes());
            put_bytes(tx, 4, m.currency.code().as_bytes());
        }
        text.clear();
        write!(text, "{}", t.net).expect("a String grows");
        put_bytes(tx, 5, text.as_bytes());
        for r in &t.rewards {
            reward.clear();
            put_bytes(reward, 1, book.slot(r.offer).offer.id.as_bytes());
            prost::encoding::encode_key(2, prost::encoding::WireType::Varint, reward);
            prost::encoding::encode_varint(status_to_proto(r.status) as u64, reward);
            text.clear();
            write!(text, "{}", r.value).expect("a String grows");
            put_bytes(reward, 3, text.as_bytes());
            put_bytes(tx, 6, reward);
        }
        if let Some(day) = day {
            prost::encoding::sint32::encode(7, &day, tx);
        }
        if reversed {
            prost::encoding::bool::encode(8, &reversed, tx);
        }
        put_bytes(out, 3, tx);
    }
    if let Some(clock) = card.clock() {
        prost::encoding::sint32::encode(4, &clock, out);
    }
    prost::encoding::sint32::encode_packed(5, days, out);
    for a in card.transactions.archived_for_snapshot() {
        reward.clear();
        put_bytes(reward, 1, book.slot(a.offer).offer.id.as_bytes());
        text.clear();
        write!(text, "{}", a.value).expect("a String grows");
        put_bytes(reward, 2, text.as_bytes());
        prost::encoding::uint32::encode(3, &a.live, reward);
        put_bytes(out, 6, reward);
    }
}

/// Buffers [`encode_card_state`] reuses.
#[derive(Debug, Default)]
pub struct StateScratch {
    tx: Vec<u8>,
    reward: Vec<u8>,
    text: String,
    days: Vec<i32>,
}

/// Appends a length-delimited field.
fn put_bytes(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, out);
    prost::encoding::encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Rebuilds a card's state from a changelog value. An offer the book does
/// not know (retired, and its definition compacted away before this
/// instance started) is kept as a retired placeholder so the reward
/// survives; see docs/kafka.md.
pub fn decode_card_state(book: &mut OfferBook, bytes: &[u8]) -> Result<CardState, String> {
    let s = pb::CardState::decode(bytes).map_err(|e| format!("not a CardState: {e}"))?;
    // Every amount and value the engine writes is at least zero and below
    // the largest offer decimal; anything else would only break the budget
    // sums (an overflow panics), so the record is refused.
    let dec = |v: &str| {
        let d = Decimal::from_str(v).map_err(|e| format!("bad decimal {v:?}: {e}"))?;
        if d.is_sign_negative() && !d.is_zero() || d >= cardlink_core::money::MAX_OFFER_DECIMAL {
            return Err(format!("decimal {v:?} out of range"));
        }
        Ok(d)
    };
    let cur = |c: &str| Currency::from_code(c).ok_or_else(|| format!("bad currency {c:?}"));
    let mut card = CardState::default();
    // The last seen_days.len() ids have days, which never go back.
    let undated = s.seen.len().checked_sub(s.seen_days.len()).ok_or("more seen_days than seen ids")?;
    if s.seen_days.windows(2).any(|w| w[1] < w[0])
        || s.clock.is_some_and(|c| s.seen_days.last().is_some_and(|&d| d > c))
    {
        return Err("seen_days go back, or pass the clock".into());
    }
    for (i, id) in s.seen.iter().enumerate() {
        match i.checked_sub(undated) {
            Some(k) => card.seen.insert_on(id, s.seen_days[k]),
            None => card.seen.insert(id),
        };
    }
    card.restore_clock(s.clock);
    card.activations.extend(s.activations.into_iter().map(Box::from));
    for a in s.archived {
        if a.offer_id.is_empty() {
            return Err("archived rewards without an offer id".into());
        }
        let offer = offer_idx(book, &a.offer_id);
        let value = dec(&a.value)?;
        card.transactions.add_archived(Archived { offer, value, live: a.count });
    }
    for t in s.transactions {
        let cleared = match (&t.cleared_amount, &t.cleared_currency) {
            (Some(a), Some(c)) => Some(Money { amount: dec(a)?, currency: cur(c)? }),
            _ => None,
        };
        let mut rewards = Vec::with_capacity(t.rewards.len());
        for r in t.rewards {
            if r.offer_id.is_empty() {
                return Err("a reward without an offer id".into());
            }
            let offer = offer_idx(book, &r.offer_id);
            let status = match pb::RewardStatus::try_from(r.status) {
                Ok(pb::RewardStatus::Pending) => RewardStatus::Pending,
                Ok(pb::RewardStatus::Confirmed) => RewardStatus::Confirmed,
                Ok(pb::RewardStatus::Cancelled) => RewardStatus::Cancelled,
                _ => return Err(format!("bad reward status {}", r.status)),
            };
            rewards.push(Reward { offer, status, value: dec(&r.value)? });
        }
        let tx = Transaction {
            auth_currency: t.auth_currency.as_deref().map(cur).transpose()?,
            cleared,
            net: dec(&t.net)?,
            rewards,
        };
        card.transactions.insert_on(t.transaction_id, tx, t.day, t.reversed);
    }
    // The per-card counts (R7) follow from the live rewards, archived ones
    // included.
    for (offer, _, count) in card.transactions.live_values().filter(|&(_, _, n)| n > 0) {
        match card.live.iter_mut().find(|(o, _)| *o == offer) {
            Some((_, n)) => *n = n.checked_add(count).ok_or("too many live rewards")?,
            None => card.live.push((offer, count)),
        }
    }
    Ok(card)
}

fn offer_idx(book: &mut OfferBook, id: &str) -> OfferIdx {
    if let Some(idx) = book.find(id) {
        return idx;
    }
    log::warn!("restored state names offer {id:?}, which the offers topic no longer holds: kept as retired");
    let json = serde_json::json!({"id": id, "currency": "USD", "reward": {"points_per_unit": "1"}});
    let offer = parse_offer(&json).expect("the placeholder offer is valid");
    let idx = book.upsert(offer);
    book.retire(id);
    idx
}

/// Adds (`sign` = 1) or removes (`sign` = −1) a card's live rewards to or
/// from the offers' usage: the book's budgets always count exactly the
/// rewards of the partitions this instance holds.
pub fn add_usage(book: &mut OfferBook, card: &CardState, add: bool) {
    // Rewards of forgotten transactions (state retention) count too.
    for (offer, value, n) in card.transactions.live_values() {
        let u = book.usage_mut(offer);
        if add {
            u.used += value;
            u.live += u64::from(n);
        } else {
            u.used -= value;
            u.live -= u64::from(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cardlink_core::{Engine, parse_offer_file};

    const OFFERS: &str = r#"[
      {"id":"ten","currency":"USD","reward":{"percent":"10"},"budget":"1000"},
      {"id":"pts","currency":"USD","reward":{"points_per_unit":"2"},"merchant":{"mccs":["5812"]},
       "networks":["VISA"],"days":["MON","TUE"],"hours":{"from":"11:00","until":"14:00"},
       "activation_required":true,"max_per_card":3,"min_spend":"1.00","max_reward":"500",
       "valid_from":"2026-01-01T00:00:00Z","valid_until":"2027-01-01T00:00:00Z","name":"x"}
    ]"#;

    fn engine() -> Engine {
        Engine::new(OfferBook::new(parse_offer_file(OFFERS.as_bytes()).unwrap()))
    }

    #[test]
    fn offers_round_trip_through_protobuf() {
        let file: Vec<Value> = serde_json::from_str(OFFERS).unwrap();
        for v in &file {
            let bytes = encode_offer(TopicFormat::Protobuf, v);
            let id = v["id"].as_str().unwrap().as_bytes();
            let change = decode_offer(TopicFormat::Protobuf, Some(id), Some(&bytes)).unwrap();
            assert_eq!(change, OfferChange::Upsert(parse_offer(v).unwrap()));
            let json = encode_offer(TopicFormat::Json, v);
            assert_eq!(decode_offer(TopicFormat::Json, Some(id), Some(&json)).unwrap(), change);
        }
        assert_eq!(decode_offer(TopicFormat::Json, Some(b"ten"), None).unwrap(), OfferChange::Retire("ten".into()));
        assert!(decode_offer(TopicFormat::Json, Some(b"other"), Some(br#"{"id":"ten"}"#)).is_err());
    }

    #[test]
    fn card_state_round_trips_and_rebuilds_usage() {
        let mut e = engine();
        let events = [
            r#"{"event_id":"1","kind":"AUTHORIZATION","network":"VISA","transaction_id":"t1","card_token":"c1","amount":"20.00","currency":"USD","merchant":{"mid":"M","mcc":"5812"},"occurred_at":"2026-05-04T12:30:00-04:00"}"#,
            r#"{"event_id":"2","kind":"CLEARING","network":"VISA","transaction_id":"t1","card_token":"c1","amount":"25.00","currency":"USD","merchant":{"mid":"M","mcc":"5812"},"occurred_at":"2026-05-04T13:30:00-04:00"}"#,
            r#"{"event_id":"3","kind":"AUTHORIZATION","network":"VISA","transaction_id":"t2","card_token":"c1","amount":"7.00","currency":"USD","merchant":{"mid":"M","mcc":"5812"},"occurred_at":"2026-05-04T14:30:00-04:00"}"#,
            r#"{"event_id":"4","kind":"ACTIVATION","card_token":"c1","offer_id":"pts","occurred_at":"2026-05-04T14:30:00-04:00"}"#,
        ];
        for line in events {
            let raw = cardlink_wire::decode_json_event(line.as_bytes()).unwrap();
            e.process(&raw, &mut |_: &RewardUpdate<'_>| {});
        }
        let card = e.cards.get("c1").unwrap().clone();
        let mut bytes = Vec::new();
        encode_card_state(&e.book, &card, &mut bytes, &mut StateScratch::default());
        // The hand-written encoding is the generated message's.
        let decoded = pb::CardState::decode(&bytes[..]).unwrap();
        assert_eq!(decoded.encode_to_vec(), bytes);
        assert_eq!(decoded.transactions.len(), 2);

        let mut fresh = engine();
        let back = decode_card_state(&mut fresh.book, &bytes).unwrap();
        assert_eq!(back.seen, card.seen);
        assert_eq!(back.activations, card.activations);
        assert_eq!(back.transactions, card.transactions);
        let mut live = back.live.clone();
        live.sort();
        let mut want = card.live.clone();
        want.sort();
        assert_eq!(live, want);
        add_usage(&mut fresh.book, &back, true);
        for (idx, slot) in e.book.slots() {
            assert_eq!(fresh.book.slot(idx).usage, slot.usage, "{}", slot.offer.id);
        }
        add_usage(&mut fresh.book, &back, false);
        assert!(fresh.book.slots().all(|(_, s)| s.usage.used.is_zero() && s.usage.live == 0));
    }

    #[test]
    fn unknown_offers_become_retired_placeholders() {
        let mut e = engine();
        let line = r#"{"event_id":"1","kind":"AUTHORIZATION","network":"VISA","transaction_id":"t1","card_token":"c1","amount":"20.00","currency":"USD","merchant":{"mid":"M","mcc":"5812"},"occurred_at":"2026-05-04T12:30:00-04:00"}"#;
        let raw = cardlink_wire::decode_json_event(line.as_bytes()).unwrap();
        e.process(&raw, &mut |_: &RewardUpdate<'_>| {});
        let mut bytes = Vec::new();
        encode_card_state(&e.book, e.cards.get("c1").unwrap(), &mut bytes, &mut StateScratch::default());
        let mut empty = OfferBook::default();
        let back = decode_card_state(&mut empty, &bytes).unwrap();
        assert_eq!(back.transactions["t1"].rewards.len(), 1);
        assert_eq!(empty.active_len(), 0);
        assert!(empty.find("ten").is_some());
    }

    #[test]
    fn dead_letters_never_show_a_pan_even_across_fields() {
        let d = pb::DeadLetter {
            reason: "INVALID_FIELD".into(),
            detail: "x".into(),
            card_token: Some("41111111111".into()),
            source: "2".into(),
            record: "1".into(),
            ..Default::default()
        };
        for f in [TopicFormat::Protobuf, TopicFormat::Json] {
            let bytes = encode_dead_letter(f, d.clone());
            assert!(!pan::contains_pan(&String::from_utf8_lossy(&bytes)));
            decode_dead_letter(f, &bytes).unwrap();
        }
        // A topic named with a card-like number keeps the rest.
        let d = pb::DeadLetter {
            reason: "MISSING_FIELD".into(),
            event_id: Some("e-1".into()),
            source: "t-4111111111111111-events/0@1".into(),
            ..Default::default()
        };
        let back = decode_dead_letter(TopicFormat::Protobuf, &encode_dead_letter(TopicFormat::Protobuf, d)).unwrap();
        assert_eq!(back.event_id.as_deref(), Some("e-1"));
        assert!(!pan::contains_pan(&back.source));
    }
}
