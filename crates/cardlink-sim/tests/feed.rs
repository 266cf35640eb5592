//! The simulated feed and offers against the contract and the engine.

use std::collections::{BTreeMap, BTreeSet};

use cardlink_core::event::EventKind;
use cardlink_core::{Engine, Field, MerchantField, OfferBook, RewardStatus, RewardUpdate, pan, validate};
use cardlink_sim::{SimConfig, SimRecord, Simulator};
use cardlink_wire::Format;
use chrono::{DateTime, FixedOffset};
use rustc_hash::{FxHashMap, FxHashSet};

fn config(events: u64) -> SimConfig {
    SimConfig { events, ..SimConfig::default() }
}

fn feed(config: &SimConfig, format: Format) -> Vec<u8> {
    let mut out = Vec::new();
    let n = cardlink_sim::write_feed(config, format, &mut out).unwrap();
    assert_eq!(n, config.events);
    out
}

fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    assert_eq!(v.pop(), Some(&b""[..]), "the file ends with a newline");
    v
}

fn frames(mut buf: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let len = prost::encoding::decode_varint(&mut buf).unwrap() as usize;
        out.push(&buf[..len]);
        buf = &buf[len..];
    }
    out
}

fn text<'a>(f: &'a Field<'_>) -> Option<&'a str> {
    match f {
        Field::Str(s) => Some(s),
        _ => None,
    }
}

fn offers_bytes(config: &SimConfig) -> Vec<u8> {
    let mut out = Vec::new();
    cardlink_sim::write_offers(config, &mut out).unwrap();
    out
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let base = SimConfig { events: 20_000, ..SimConfig::default() };
    for format in [Format::Json, Format::Protobuf] {
        let a = feed(&base, format);
        assert_eq!(a, feed(&base, format), "{format:?}");
        let other = SimConfig { seed: 43, ..base.clone() };
        assert_ne!(a, feed(&other, format), "{format:?}");
    }
    assert_eq!(offers_bytes(&base), offers_bytes(&base));
    assert_ne!(offers_bytes(&base), offers_bytes(&SimConfig { seed: 7, ..base.clone() }));
    assert_eq!(cardlink_sim::offers(&base), cardlink_sim::offers(&base));
}

#[test]
fn exactly_the_requested_number_of_records() {
    let tiny = SimConfig { cards: 1, merchants: 1, offers: 1, days: 1, ..config(0) };
    let cases = [
        config(0),
        config(1),
        config(7),
        config(12_345),
        SimConfig { events: 3_000, ..tiny.clone() },
        SimConfig { events: 3_000, cards: 0, merchants: 0, offers: 0, days: 0, ..config(0) },
        SimConfig { events: 5_000, malformed_per_mille: 1000, ..config(0) },
        SimConfig { events: 5_000, duplicate_per_mille: 1000, ..tiny.clone() },
        SimConfig { events: 5_000, malformed_per_mille: 500, duplicate_per_mille: 500, ..config(0) },
        SimConfig { events: 5_000, days: 365, ..config(0) },
    ];
    for c in cases {
        let sim = Simulator::new(&c);
        assert_eq!(sim.len() as u64, c.events, "{c:?}");
        assert_eq!(sim.count() as u64, c.events, "{c:?}");
        assert_eq!(lines(&feed(&c, Format::Json)).len() as u64, c.events, "{c:?}");
        assert_eq!(frames(&feed(&c, Format::Protobuf)).len() as u64, c.events, "{c:?}");
    }
}

/// Every valid event as (card token, instant), in feed order.
fn valid_times(config: &SimConfig) -> Vec<(String, DateTime<FixedOffset>)> {
    let mut out = Vec::new();
    for record in Simulator::new(config) {
        if let SimRecord::Event(e) = record {
            let raw = cardlink_wire::raw_from_proto(&e);
            if let Ok(ev) = validate(&raw) {
                out.push((ev.card_token.to_string(), ev.occurred_at));
            }
        }
    }
    out
}

#[test]
fn each_cards_events_are_in_time_order_and_the_feed_roughly_so() {
    let cases = [
        config(100_000),
        // Few cards, many duplicates: the hardest case for per-card order.
        SimConfig { events: 30_000, cards: 20, duplicate_per_mille: 200, ..SimConfig::default() },
        SimConfig { events: 10_000, cards: 1, merchants: 3, duplicate_per_mille: 1000, ..SimConfig::default() },
    ];
    for c in cases {
        let mut last: FxHashMap<String, DateTime<FixedOffset>> = FxHashMap::default();
        let mut latest: Option<DateTime<FixedOffset>> = None;
        for (card, at) in valid_times(&c) {
            if let Some(prev) = last.insert(card.clone(), at) {
                assert!(prev <= at, "{card}: {at} after {prev} ({c:?})");
            }
            if let Some(l) = latest {
                // Only a duplicate looks back, by at most 90 seconds.
                assert!((l - at).num_seconds() <= 90, "{at} after {l}");
            }
            latest = Some(latest.map_or(at, |l| l.max(at)));
        }
    }
}

#[test]
fn the_feed_spans_the_configured_period() {
    for (events, days) in [(200_000, 30), (20_000, 7), (50_000, 90)] {
        let c = SimConfig { events, days, ..SimConfig::default() };
        let times = valid_times(&c);
        let first = times.first().unwrap().1;
        let last = times.last().unwrap().1;
        assert!((first.to_utc() - c.start).num_minutes() < 60, "{first}");
        let span = (last.to_utc() - c.start).num_hours() as f64 / 24.0;
        assert!(
            (span / f64::from(days) - 1.0).abs() < 0.1,
            "{events} events over {days} days end after {span:.1} days"
        );
    }
}

#[test]
fn offers_parse_and_use_every_field() {
    for c in [SimConfig::default(), SimConfig { seed: 1, offers: 2000, merchants: 300, ..SimConfig::default() }] {
        let written = offers_bytes(&c);
        let parsed = cardlink_core::parse_offer_file(&written).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.len(), c.offers as usize);
        let values = cardlink_sim::offers(&c);
        let compact = serde_json::to_vec(&values).unwrap();
        assert_eq!(cardlink_core::parse_offer_file(&compact).unwrap(), parsed);
        let reparsed: Vec<serde_json::Value> = serde_json::from_slice(&written).unwrap();
        assert_eq!(reparsed, values, "write_offers writes offers()");
        assert!(!pan::contains_pan(std::str::from_utf8(&written).unwrap()));

        let mut keys = BTreeSet::new();
        let mut rewards = BTreeSet::new();
        let mut merchant_keys = BTreeSet::new();
        for v in &values {
            let o = v.as_object().unwrap();
            keys.extend(o.keys().cloned());
            rewards.extend(o["reward"].as_object().unwrap().keys().cloned());
            if let Some(m) = o.get("merchant") {
                merchant_keys.extend(m.as_object().unwrap().keys().cloned());
            }
        }
        for field in cardlink_core::offer::OFFER_FIELDS {
            assert!(keys.contains(*field), "no offer uses {field}");
        }
        assert_eq!(rewards.len(), 3, "{rewards:?}");
        assert_eq!(merchant_keys.len(), 3, "{merchant_keys:?}");
        assert!(parsed.iter().any(|o| o.mids.is_empty() && o.mccs.is_empty() && o.countries.is_empty()));
        assert!(parsed.iter().any(|o| o.hours.is_some_and(|h| h.from > h.until)), "a late-night offer wraps");
        assert!(parsed.iter().any(|o| o.networks == cardlink_core::Network::Amex.bit()));
        let ids: BTreeSet<&str> = parsed.iter().map(|o| &*o.id).collect();
        assert_eq!(ids.len(), parsed.len());
    }
}

#[test]
fn offer_currency_is_the_currency_of_its_merchants() {
    let c = config(100_000);
    let mut currency_of_mid: FxHashMap<String, String> = FxHashMap::default();
    let mut currency_of_country: FxHashMap<String, BTreeSet<String>> = FxHashMap::default();
    for record in Simulator::new(&c) {
        let SimRecord::Event(e) = record else { continue };
        let raw = cardlink_wire::raw_from_proto(&e);
        let Ok(ev) = validate(&raw) else { continue };
        if ev.kind() != EventKind::Authorization {
            continue;
        }
        let m = e.merchant.as_ref().unwrap();
        let cur = e.currency.clone().unwrap();
        if let Some(prev) = currency_of_mid.insert(m.mid.clone().unwrap(), cur.clone()) {
            assert_eq!(prev, cur, "a merchant charges in one currency");
        }
        currency_of_country.entry(m.country.clone().unwrap()).or_default().insert(cur);
    }
    assert!(currency_of_country.values().all(|c| c.len() == 1), "{currency_of_country:?}");
    let mut checked = 0;
    for o in cardlink_sim::offers(&c) {
        let cur = o["currency"].as_str().unwrap();
        for mid in o["merchant"]["mids"].as_array().into_iter().flatten() {
            if let Some(seen) = currency_of_mid.get(mid.as_str().unwrap()) {
                assert_eq!(seen, cur, "{o}");
                checked += 1;
            }
        }
        for country in o["merchant"]["countries"].as_array().into_iter().flatten() {
            let seen = &currency_of_country[country.as_str().unwrap()];
            assert!(seen.contains(cur), "{o}");
        }
    }
    assert!(checked > 1000, "{checked}");
}

#[test]
fn json_and_protobuf_feeds_decode_to_the_same_events() {
    let c = SimConfig { events: 50_000, malformed_per_mille: 20, ..SimConfig::default() };
    let json = feed(&c, Format::Json);
    let proto = feed(&c, Format::Protobuf);
    let records: Vec<SimRecord> = Simulator::new(&c).collect();
    let (lines, frames) = (lines(&json), frames(&proto));
    assert_eq!((lines.len(), frames.len()), (records.len(), records.len()));
    let (mut garbage, mut rejected) = (0, 0);
    for ((record, line), frame) in records.iter().zip(lines).zip(frames) {
        match record {
            SimRecord::Garbage(bytes) => {
                garbage += 1;
                // No control byte (no line break of any convention); random
                // bytes carry no digits, truncated JSON is a prefix of an event.
                assert!(!bytes.is_empty() && bytes.iter().all(|b| *b >= 0x20 && *b != 0x7F), "{bytes:?}");
                assert!(bytes[0] == b'{' || !bytes.iter().any(u8::is_ascii_digit), "{bytes:?}");
                assert_eq!(line, &bytes[..]);
                assert_eq!(frame, &bytes[..]);
                assert!(cardlink_wire::decode_json_event(line).is_err(), "{:?}", String::from_utf8_lossy(line));
                assert!(cardlink_wire::decode_proto_event(frame).is_err());
            }
            SimRecord::Event(e) => {
                let from_json = cardlink_wire::decode_json_event(line).unwrap();
                let decoded = cardlink_wire::decode_proto_event(frame).unwrap();
                assert_eq!(&decoded, e);
                let from_proto = cardlink_wire::raw_from_proto(&decoded);
                assert_eq!(from_json, from_proto);
                let (a, b) = (validate(&from_json), validate(&from_proto));
                assert_eq!(a, b);
                rejected += usize::from(a.is_err());
            }
        }
    }
    assert!(garbage > 100 && rejected > 500, "{garbage} garbage, {rejected} invalid events");
}

/// A reward update: offer, card, transaction, status, value.
type Update = (String, String, String, RewardStatus, String);

/// Runs a JSON feed through the engine; returns the engine and every reward update.
fn run_engine(c: &SimConfig) -> (Engine, Vec<Update>) {
    let book = OfferBook::new(cardlink_core::parse_offer_file(&offers_bytes(c)).unwrap());
    let mut engine = Engine::new(book);
    let mut updates = Vec::new();
    let json = feed(c, Format::Json);
    for line in lines(&json) {
        match cardlink_wire::decode_json_event(line) {
            Ok(raw) => {
                engine.process(&raw, &mut |u: &RewardUpdate| {
                    updates.push((
                        u.offer_id.to_string(),
                        u.card_token.to_string(),
                        u.transaction_id.to_string(),
                        u.status,
                        u.value.to_string(),
                    ))
                });
            }
            Err(_) => engine.count_malformed(),
        }
    }
    (engine, updates)
}

#[test]
fn bad_records_and_duplicates_come_at_the_configured_rates() {
    // (malformed ‰, duplicate ‰)
    for (bad, dup) in [(0, 0), (2, 5), (50, 20), (0, 100)] {
        let c =
            SimConfig { events: 60_000, malformed_per_mille: bad, duplicate_per_mille: dup, ..SimConfig::default() };
        let (engine, _) = run_engine(&c);
        let n = c.events as f64;
        for (what, got, per_mille) in
            [("rejected", engine.counters.rejected, bad), ("duplicate", engine.counters.duplicate, dup)]
        {
            let expected = n * f64::from(per_mille) / 1000.0;
            let slack = 5.0 * expected.sqrt() + 0.05 * expected;
            assert!(
                (got as f64 - expected).abs() <= slack,
                "{what}: {got}, expected about {expected} ({bad}‰ bad, {dup}‰ duplicates)"
            );
        }
        if bad > 0 {
            // Every kind of R1 rejection shows up.
            assert!(engine.counters.rejected_by_reason.iter().all(|n| *n > 0), "{:?}", engine.counters);
        }
    }
}

#[test]
fn no_card_number_outside_the_deliberate_pan_events() {
    let c = SimConfig { events: 100_000, malformed_per_mille: 30, ..SimConfig::default() };
    let json = feed(&c, Format::Json);
    let mut pans = 0;
    for line in lines(&json) {
        let Ok(text) = std::str::from_utf8(line) else { continue };
        let token_is_pan = cardlink_wire::decode_json_event(line)
            .ok()
            .is_some_and(|raw| text_of(&raw.card_token).is_some_and(pan::is_pan));
        assert_eq!(pan::contains_pan(text), token_is_pan, "{text}");
        pans += usize::from(token_is_pan);
        if token_is_pan {
            // Only the token: masking it leaves no card number behind.
            let raw = cardlink_wire::decode_json_event(line).unwrap();
            let token = text_of(&raw.card_token).unwrap();
            assert!(!pan::contains_pan(&text.replace(token, "x")), "{text}");
        }
    }
    assert!(pans > 100, "{pans}");
}

fn text_of<'a>(f: &'a Field<'_>) -> Option<&'a str> {
    text(f)
}

#[test]
fn cards_are_network_tokens_with_realistic_shares() {
    let c = config(100_000);
    let mut by_network: BTreeMap<String, FxHashSet<String>> = BTreeMap::new();
    let mut activity: FxHashMap<String, u32> = FxHashMap::default();
    let mut currencies: BTreeMap<String, u32> = BTreeMap::new();
    let mut kinds: BTreeMap<&'static str, u32> = BTreeMap::new();
    for record in Simulator::new(&c) {
        let SimRecord::Event(e) = record else { continue };
        let raw = cardlink_wire::raw_from_proto(&e);
        let Ok(ev) = validate(&raw) else { continue };
        let token = ev.card_token;
        let b = token.as_bytes();
        assert!(b.len() == 14 && token.starts_with("tok_") && b[5] == b'_', "{token}");
        assert!(token[6..].bytes().all(|c| c.is_ascii_hexdigit()), "{token}");
        *kinds.entry(ev.kind().as_str()).or_default() += 1;
        if let cardlink_core::EventBody::Authorization(p) = ev.body {
            let letter = match p.network {
                cardlink_core::Network::Visa => b'v',
                cardlink_core::Network::Mastercard => b'm',
                cardlink_core::Network::Amex => b'a',
                cardlink_core::Network::Discover => b'd',
            };
            assert_eq!(b[4], letter, "{token}");
            by_network.entry(p.network.as_str().into()).or_default().insert(token.to_string());
            *activity.entry(token.to_string()).or_default() += 1;
            *currencies.entry(p.money.currency.code().into()).or_default() += 1;
            // Amounts carry exactly the currency's digits.
            let amount = text(&raw.amount).unwrap();
            let digits = amount.split_once('.').map_or(0, |(_, f)| f.len()) as u32;
            assert_eq!(digits, p.money.currency.exponent(), "{amount} {}", p.money.currency);
            let m = match &raw.merchant {
                MerchantField::Object(m) => m,
                _ => panic!("merchant"),
            };
            assert!(text(&m.name).is_some() && text(&m.country).is_some());
        }
    }
    let cards: usize = by_network.values().map(|s| s.len()).sum();
    for (network, share) in [("VISA", 0.5), ("MASTERCARD", 0.3), ("AMEX", 0.12), ("DISCOVER", 0.08)] {
        let got = by_network[network].len() as f64 / cards as f64;
        assert!((got - share).abs() < 0.03, "{network}: {got}");
    }
    // Heavy spenders: the busiest 1% of cards make far more than 1% of purchases.
    let mut counts: Vec<u32> = activity.values().copied().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let top: u32 = counts[..counts.len() / 100].iter().sum();
    let all: u32 = counts.iter().sum();
    assert!(f64::from(top) / f64::from(all) > 0.04, "top 1% of cards: {top} of {all}");
    // Most volume in USD, and every currency present.
    let usd = f64::from(currencies["USD"]) / f64::from(currencies.values().sum::<u32>());
    assert!((0.55..0.8).contains(&usd), "{usd} {currencies:?}");
    assert_eq!(currencies.len(), 8, "{currencies:?}");
    // Lifecycle mix.
    let auth = f64::from(kinds["AUTHORIZATION"]);
    for (kind, lo, hi) in
        [("CLEARING", 0.9, 1.0), ("AUTH_REVERSAL", 0.02, 0.04), ("REFUND", 0.03, 0.07), ("ACTIVATION", 0.01, 0.05)]
    {
        let r = f64::from(kinds[kind]) / auth;
        assert!((lo..hi).contains(&r), "{kind}/AUTHORIZATION = {r} {kinds:?}");
    }
}

#[test]
fn the_engine_finds_a_realistic_mix_of_rewards() {
    let c = config(200_000);
    let (engine, updates) = run_engine(&c);
    let offers = cardlink_core::parse_offer_file(&offers_bytes(&c)).unwrap();
    let needs_activation: FxHashSet<&str> = offers.iter().filter(|o| o.activation_required).map(|o| &*o.id).collect();

    let auths = engine.counters.processed_by_kind[0];
    let mut last: FxHashMap<(String, String, String), (RewardStatus, String)> = FxHashMap::default();
    let mut transitions: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut rewarded_auths: FxHashSet<(String, String)> = FxHashSet::default();
    let mut activated_rewards = 0;
    for (offer, card, tx, status, value) in updates {
        let key = (offer.clone(), card.clone(), tx.clone());
        let name = match (last.get(&key).map(|(s, v)| (*s, v.clone())), status) {
            (None, RewardStatus::Pending) => {
                rewarded_auths.insert((card, tx));
                "new pending"
            }
            (None, RewardStatus::Confirmed) => "new confirmed (force-post)",
            (Some((RewardStatus::Pending, _)), RewardStatus::Confirmed) => "pending -> confirmed",
            (Some((RewardStatus::Pending, _)), RewardStatus::Cancelled) => "pending -> cancelled",
            (Some((RewardStatus::Confirmed, _)), RewardStatus::Confirmed) => "confirmed -> lower",
            (Some((RewardStatus::Confirmed, _)), RewardStatus::Cancelled) => "confirmed -> cancelled",
            other => panic!("unexpected transition {other:?}"),
        };
        if name == "new pending" && needs_activation.contains(offer.as_str()) {
            activated_rewards += 1;
        }
        *transitions.entry(name).or_default() += 1;
        last.insert(key, (status, value));
    }
    let share = rewarded_auths.len() as f64 / auths as f64;
    eprintln!("{} of {auths} authorizations rewarded ({share:.3}); transitions {transitions:?}", rewarded_auths.len());
    assert!((0.05..0.4).contains(&share), "{share}");
    assert_eq!(transitions.len(), 6, "every kind of change happens: {transitions:?}");
    assert!(activated_rewards > 10, "{activated_rewards} rewards of offers that need activation");

    // Some budgets run out: their live rewards add up to the whole budget.
    let mut exhausted = Vec::new();
    let mut with_budget = 0;
    for (_, slot) in engine.book.slots() {
        if let Some(b) = slot.offer.budget {
            with_budget += 1;
            assert!(slot.usage.used <= b);
            if slot.usage.used == b {
                exhausted.push(slot.offer.id.to_string());
            }
        }
    }
    eprintln!("{} of {with_budget} budgets used up: {exhausted:?}", exhausted.len());
    assert!(!exhausted.is_empty() && exhausted.len() < with_budget, "{exhausted:?} of {with_budget}");
}
