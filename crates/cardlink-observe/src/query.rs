//! Questions about offers and cards, and the views that answer them.
//!
//! The offer book and the card stores belong to one thread (the pipeline's,
//! or the demo's). The admin server sends a [`Query`] through
//! [`crate::Observed`]; that thread answers it between two records with
//! [`Query::answer`], and the reply travels back through the query's own
//! callback. Nothing is shared, nothing is locked on the hot path.

use std::collections::BTreeMap;

use cardlink_core::book::OfferSlot;
use cardlink_core::ledger::Ledger;
use cardlink_core::offer::RewardRule;
use cardlink_core::{CardState, CardStore, Counters, Network, Offer, OfferBook, RewardKind, RewardStatus};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

/// An offer as the live index holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OfferView {
    /// The offer id.
    pub id: String,
    /// False once retired: it matches nothing new, its rewards still settle.
    pub active: bool,
    /// The definition, in the contract's offer format (as `PUT` takes it).
    #[schema(value_type = Object)]
    pub offer: Value,
    /// Sum of the live rewards' values, in the reward's unit (R6).
    pub used: String,
    /// Live rewards: transactions this offer rewards.
    pub live_rewards: u64,
    /// `used / budget`, for an offer with a budget.
    pub budget_used_ratio: Option<f64>,
}

/// One live reward of a card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RewardView {
    /// The offer that made it.
    pub offer_id: String,
    /// The purchase it rewards.
    pub transaction_id: String,
    /// `PENDING` or `CONFIRMED`.
    pub status: String,
    /// `CASH` or `POINTS`.
    pub kind: String,
    /// The currency of a cash reward.
    pub currency: Option<String>,
    /// Its value, exact, in the reward's unit.
    pub value: String,
}

/// What the instance owning a card knows of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CardView {
    /// The card's network token.
    pub card_token: String,
    /// The input partition whose state holds the card (none in the demo).
    pub partition: Option<i32>,
    /// Live rewards (pending or confirmed, above zero), by transaction.
    pub rewards: Vec<RewardView>,
    /// Sums of pending rewards by currency code or `POINTS`, as the
    /// ledger writes them.
    pub pending: BTreeMap<String, String>,
    /// Sums of confirmed rewards, likewise.
    pub confirmed: BTreeMap<String, String>,
    /// Offers the card activated, sorted.
    pub activations: Vec<String>,
    /// Purchases remembered for the card.
    pub transactions: usize,
    /// Event ids processed for the card (R2).
    pub events_seen: usize,
}

/// A question for the thread that owns the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// Every offer of the book, active and retired, in the order added.
    Offers,
    /// One offer by id.
    Offer(String),
    /// One card by token.
    Card(String),
}

/// The answer to an [`Ask`] of the same name.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Every offer.
    Offers(Vec<OfferView>),
    /// The offer, if the book has it.
    Offer(Option<OfferView>),
    /// The card, if a store of this thread holds it.
    Card(Option<CardView>),
}

/// An [`Ask`] with the callback that carries the answer back.
pub struct Query {
    /// The question.
    pub ask: Ask,
    reply: Box<dyn FnOnce(Answer) + Send>,
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query").field("ask", &self.ask).finish_non_exhaustive()
    }
}

impl Query {
    /// A query whose answer is handed to `reply` (on the answering thread).
    pub fn new(ask: Ask, reply: impl FnOnce(Answer) + Send + 'static) -> Query {
        Query { ask, reply: Box::new(reply) }
    }

    /// Answers from the book and the card stores (one per partition with
    /// its number, or one for everything).
    pub fn answer<'s>(self, book: &OfferBook, stores: impl IntoIterator<Item = (Option<i32>, &'s CardStore)>) {
        let answer = match &self.ask {
            Ask::Offers => Answer::Offers(book.slots().map(|(_, s)| offer_view(s)).collect()),
            Ask::Offer(id) => Answer::Offer(book.find(id).map(|i| offer_view(book.slot(i)))),
            Ask::Card(token) => Answer::Card(
                stores.into_iter().find_map(|(p, store)| store.get(token).map(|c| card_view(book, token, p, c))),
            ),
        };
        (self.reply)(answer);
    }
}

/// The view of one offer slot.
pub fn offer_view(slot: &OfferSlot) -> OfferView {
    let o = &slot.offer;
    OfferView {
        id: o.id.to_string(),
        active: slot.active,
        offer: offer_to_json(o),
        used: cardlink_core::money::format_fixed(slot.usage.used, o.value_digits()),
        live_rewards: slot.usage.live,
        budget_used_ratio: o
            .budget
            .filter(|b| *b > Decimal::ZERO)
            .map(|b| (slot.usage.used / b).to_f64().unwrap_or(0.0).clamp(0.0, 1.0)),
    }
}

/// The view of one card; the sums are the ledger's, computed the same way.
pub fn card_view(book: &OfferBook, token: &str, partition: Option<i32>, card: &CardState) -> CardView {
    let mut rewards = Vec::new();
    for (tx_id, tx) in &card.transactions {
        for r in tx.rewards.iter().filter(|r| r.is_live()) {
            let offer = &book.slot(r.offer).offer;
            let kind = RewardKind::of(offer);
            rewards.push(RewardView {
                offer_id: offer.id.to_string(),
                transaction_id: tx_id.to_string(),
                status: r.status.as_str().into(),
                kind: kind.as_str().into(),
                currency: matches!(kind, RewardKind::Cash(_)).then(|| offer.currency.code().to_owned()),
                value: cardlink_core::money::format_fixed(r.value, offer.value_digits()),
            });
        }
    }
    rewards.sort_by(|a, b| (&a.transaction_id, &a.offer_id).cmp(&(&b.transaction_id, &b.offer_id)));
    debug_assert!(rewards.iter().all(|r| r.status != RewardStatus::Cancelled.as_str()));
    let mut one = CardStore::default();
    one.insert(token, card.clone());
    let totals = Ledger::build(book, [&one], &Counters::default()).cards.remove(token).unwrap_or_default();
    let mut activations: Vec<String> = card.activations.iter().map(str::to_owned).collect();
    activations.sort();
    CardView {
        card_token: token.to_owned(),
        partition,
        rewards,
        pending: totals.pending,
        confirmed: totals.confirmed,
        activations,
        transactions: card.transactions.len(),
        events_seen: card.seen.len(),
    }
}

/// An offer in the contract's JSON format: `parse_offer` of the result
/// gives the same offer back.
pub fn offer_to_json(o: &Offer) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(o.id));
    m.insert("currency".into(), json!(o.currency.code()));
    let reward = match o.reward {
        RewardRule::Percent(v) => json!({"percent": v.to_string()}),
        RewardRule::Fixed(v) => json!({"fixed": v.to_string()}),
        RewardRule::PointsPerUnit(v) => json!({"points_per_unit": v.to_string()}),
    };
    m.insert("reward".into(), reward);
    if !o.mids.is_empty() || !o.mccs.is_empty() || !o.countries.is_empty() {
        let mut merchant = Map::new();
        if !o.mids.is_empty() {
            merchant.insert("mids".into(), json!(o.mids));
        }
        if !o.mccs.is_empty() {
            merchant.insert("mccs".into(), json!(o.mccs.iter().map(|c| format!("{c:04}")).collect::<Vec<_>>()));
        }
        if !o.countries.is_empty() {
            let countries: Vec<String> = o.countries.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
            merchant.insert("countries".into(), json!(countries));
        }
        m.insert("merchant".into(), Value::Object(merchant));
    }
    if o.networks != 0 {
        let names: Vec<&str> = Network::ALL.iter().filter(|n| o.networks & n.bit() != 0).map(|n| n.as_str()).collect();
        m.insert("networks".into(), json!(names));
    }
    if !o.min_spend.is_zero() {
        m.insert("min_spend".into(), json!(o.min_spend.to_string()));
    }
    if let Some(v) = o.max_reward {
        m.insert("max_reward".into(), json!(v.to_string()));
    }
    let instant = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    if let Some(t) = o.valid_from {
        m.insert("valid_from".into(), json!(instant(t)));
    }
    if let Some(t) = o.valid_until {
        m.insert("valid_until".into(), json!(instant(t)));
    }
    if o.days != 0 {
        let days: Vec<&str> = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
            .iter()
            .enumerate()
            .filter(|(i, _)| o.days & (1 << i) != 0)
            .map(|(_, d)| *d)
            .collect();
        m.insert("days".into(), json!(days));
    }
    if let Some(h) = o.hours {
        let hm = |s: u32| format!("{:02}:{:02}", s / 3600, s / 60 % 60);
        m.insert("hours".into(), json!({"from": hm(h.from), "until": hm(h.until)}));
    }
    if o.activation_required {
        m.insert("activation_required".into(), json!(true));
    }
    if let Some(n) = o.max_per_card {
        m.insert("max_per_card".into(), json!(n));
    }
    if let Some(b) = o.budget {
        m.insert("budget".into(), json!(b.to_string()));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cardlink_core::parse_offer;

    /// `offer_to_json` then `parse_offer` gives the offer back.
    fn check(input: Value) {
        let offer = parse_offer(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
        let written = offer_to_json(&offer);
        let again = parse_offer(&written).unwrap_or_else(|e| panic!("{written}: {e}"));
        assert_eq!(again, offer, "{input} written as {written}");
    }

    #[test]
    fn offers_round_trip_through_json() {
        check(json!({"id": "o1", "currency": "USD", "reward": {"percent": "10"}}));
        check(json!({"id": "o2", "currency": "JPY", "reward": {"fixed": "500"}, "budget": "100000",
            "merchant": {"mids": ["M2", "M1"], "mccs": ["0742", "5812"], "countries": ["JP"]}}));
        check(json!({"id": "o3", "currency": "EUR", "reward": {"points_per_unit": "2.5"},
            "networks": ["AMEX", "VISA"], "min_spend": "10.00", "max_reward": "500",
            "valid_from": "2026-05-01T00:00:00+02:00", "valid_until": "2026-06-01T12:30:00.250Z",
            "days": ["SUN", "MON"], "hours": {"from": "22:00", "until": "02:30"},
            "activation_required": true, "max_per_card": 3}));
        let sim = cardlink_sim::SimConfig::default();
        for offer in cardlink_sim::offers(&sim) {
            check(offer);
        }
    }

    #[test]
    fn cards_and_offers_are_answered_from_the_stores() {
        let offer =
            parse_offer(&json!({"id": "o1", "currency": "USD", "reward": {"percent": "10"}, "budget": "100.00"}))
                .unwrap();
        let mut book = OfferBook::new([offer]);
        let mut store = CardStore::default();
        let raw = br#"{"event_id":"e1","card_token":"tok_1","kind":"AUTHORIZATION","occurred_at":"2026-05-04T10:00:00Z","network":"VISA","transaction_id":"t1","amount":"40.00","currency":"USD","merchant":{"mid":"M1","mcc":"5812","country":"US"}}"#;
        let raw = cardlink_wire::decode_json_event(raw).unwrap();
        let event = cardlink_core::validate(&raw).unwrap();
        cardlink_core::apply(&mut book, &mut store, &event, &mut |_: &cardlink_core::RewardUpdate<'_>| {}).unwrap();
        let ask = |ask: Ask| {
            let (tx, rx) = std::sync::mpsc::channel();
            Query::new(ask, move |a| tx.send(a).unwrap()).answer(&book, [(Some(3), &store)]);
            rx.recv().unwrap()
        };
        let Answer::Card(Some(card)) = ask(Ask::Card("tok_1".into())) else { panic!("card not found") };
        assert_eq!(card.partition, Some(3));
        assert_eq!(card.pending, BTreeMap::from([("USD".to_string(), "4.00".to_string())]));
        assert_eq!(card.rewards.len(), 1);
        assert_eq!((card.rewards[0].status.as_str(), card.rewards[0].value.as_str()), ("PENDING", "4.00"));
        assert_eq!(ask(Ask::Card("tok_2".into())), Answer::Card(None));
        let Answer::Offer(Some(o)) = ask(Ask::Offer("o1".into())) else { panic!("offer not found") };
        assert_eq!((o.used.as_str(), o.live_rewards, o.budget_used_ratio), ("4.00", 1, Some(0.04)));
        assert_eq!(ask(Ask::Offer("nope".into())), Answer::Offer(None));
        let Answer::Offers(all) = ask(Ask::Offers) else { panic!("offers") };
        assert_eq!(all.len(), 1);
    }
}
