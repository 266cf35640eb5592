//! One scenario (one offer file) driven over the feed: the engine, its
//! reward records folded into flows, what its budgets refused, and which
//! cash offers competed for each purchase (R5).

use cardlink_core::book::Candidate;
use cardlink_core::engine::{Applied, Budgets, WholeBudget, apply_with};
use cardlink_core::event::Purchase;
use cardlink_core::{
    CardEvent, CardState, Engine, EventBody, EventKind, Network, Offer, OfferBook, OfferIdx, Rejection, RewardStatus,
    RewardUpdate, reward_value,
};
use chrono::{DateTime, Datelike, FixedOffset, Timelike, Utc};
use std::hash::BuildHasher;

use rust_decimal::Decimal;
use rustc_hash::FxHashMap;

use crate::flows::{OfferFlow, Shortfall};

/// The facts of an event every scenario files its records under.
pub(crate) struct Ctx<'a> {
    /// The event's kind.
    pub kind: EventKind,
    /// UTC day, numbered from 1970-01-01.
    pub day: i64,
    /// Local hour (0–23) and weekday (0 = Monday), by the event's offset.
    pub hour: u8,
    pub weekday: u8,
    /// When, with the offset it came with.
    pub at: DateTime<FixedOffset>,
    /// The purchase an AUTHORIZATION or CLEARING carries.
    pub purchase: Option<Purchase<'a>>,
    /// The merchant's display name, when the event gave one.
    pub merchant_name: Option<&'a str>,
}

impl<'a> Ctx<'a> {
    pub fn new(event: &CardEvent<'a>, merchant_name: Option<&'a str>) -> Self {
        let local = event.occurred_at.naive_local();
        Ctx {
            kind: event.kind(),
            day: event.occurred_at.timestamp().div_euclid(86_400),
            hour: local.hour() as u8,
            weekday: local.weekday().num_days_from_monday() as u8,
            at: event.occurred_at,
            purchase: match event.body {
                EventBody::Authorization(p) | EventBody::Clearing(p) => Some(p),
                _ => None,
            },
            merchant_name,
        }
    }
}

/// Where and when a rewarded purchase happened, kept per transaction so
/// that its rewards can be filed by merchant, network, hour and weekday
/// whatever event later changes them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attr {
    /// Index into [`Shared::merchants`].
    pub merchant: u32,
    /// Index into [`Network::ALL`].
    pub network: u8,
    /// Local hour and weekday of the purchase.
    pub hour: u8,
    pub weekday: u8,
    /// Amount of the event that opened the transaction: the qualifying
    /// amount while it is not cleared (the state keeps only cleared amounts).
    pub amount: Decimal,
}

/// A merchant as reports show it.
#[derive(Debug, Clone)]
pub(crate) struct MerchantInfo {
    pub mid: Box<str>,
    pub name: Option<Box<str>>,
}

/// State shared by every scenario: the purchases some scenario rewarded,
/// and the merchants they happened at. A purchase's facts do not depend
/// on the offers, so one table serves all scenarios.
#[derive(Default)]
pub(crate) struct Shared {
    /// By [`tx_key`], hashed once per look-up with `hasher`.
    attrs: hashbrown::HashTable<(Box<[u8]>, Attr)>,
    hasher: hashbrown::DefaultHashBuilder,
    pub merchants: Vec<MerchantInfo>,
    merchant_ix: FxHashMap<Box<str>, u32>,
    key: Vec<u8>,
}

/// The key of a transaction (R8: card token and transaction id together):
/// the token's length, the token, the transaction id. Tokens are at most
/// 64 bytes (R1), so one length byte keeps keys unambiguous.
pub(crate) fn tx_key(buf: &mut Vec<u8>, card_token: &str, transaction_id: &str) {
    buf.clear();
    buf.push(card_token.len() as u8);
    buf.extend_from_slice(card_token.as_bytes());
    buf.extend_from_slice(transaction_id.as_bytes());
}

impl Shared {
    /// Files the purchase that opened a transaction, once.
    fn remember(&mut self, card_token: &str, ctx: &Ctx<'_>) {
        let Some(p) = ctx.purchase else { return };
        tx_key(&mut self.key, card_token, p.transaction_id);
        let Shared { attrs, hasher, merchants, merchant_ix, key } = self;
        let hash = hasher.hash_one(&key[..]);
        let entry = attrs.entry(hash, |(k, _)| **k == key[..], |(k, _)| hasher.hash_one(&k[..]));
        if let hashbrown::hash_table::Entry::Vacant(slot) = entry {
            let merchant = match merchant_ix.get(p.merchant.mid) {
                Some(&m) => m,
                None => {
                    let m = u32::try_from(merchants.len()).expect("fewer than 2^32 merchants");
                    merchants.push(MerchantInfo { mid: p.merchant.mid.into(), name: ctx.merchant_name.map(Box::from) });
                    merchant_ix.insert(p.merchant.mid.into(), m);
                    m
                }
            };
            let network = Network::ALL.iter().position(|n| *n == p.network).expect("listed") as u8;
            let attr = Attr { merchant, network, hour: ctx.hour, weekday: ctx.weekday, amount: p.money.amount };
            slot.insert((Box::from(&key[..]), attr));
        }
    }

    /// The purchase of a transaction, if some scenario rewarded it.
    pub fn attr(&mut self, card_token: &str, transaction_id: &str) -> Option<Attr> {
        tx_key(&mut self.key, card_token, transaction_id);
        let key = &self.key[..];
        self.attrs.find(self.hasher.hash_one(key), |(k, _)| **k == *key).map(|(_, a)| *a)
    }
}

/// R5 as seen from outside: how often cash offers competed for a purchase.
#[derive(Debug, Clone, Default)]
pub(crate) struct Competition {
    /// Purchases with two or more eligible cash offers.
    pub contested_purchases: u64,
    /// Per offer: purchases it competed for, and won.
    pub contested: Vec<u64>,
    pub won: Vec<u64>,
    /// Per pair of offers (smaller index first): purchases both competed
    /// for, won by the first, won by the second.
    pub pairs: FxHashMap<(u32, u32), [u64; 3]>,
    /// New purchases where the engine's rewards differed from the
    /// prediction (should stay 0: the prediction mirrors R3–R5).
    pub mismatches: u64,
    /// Purchases predicted and checked.
    pub checked: u64,
}

/// What R3–R5 will give a new purchase, judged before the engine applies it.
struct Prediction {
    /// Eligible cash offers with their R4 values.
    cash: Vec<(u32, Decimal)>,
    /// The offers that will be rewarded: the R5 winner first, then every
    /// eligible points offer in index order (the engine's order).
    rewarded: Vec<u32>,
    winner: Option<u32>,
}

/// Tells the engine each offer's whole budget (as [`WholeBudget`]) and
/// notes what the budgets cut or refused.
struct Watch<'a> {
    short: &'a mut [Shortfall],
    at: DateTime<FixedOffset>,
}

impl Budgets for Watch<'_> {
    #[inline]
    fn left(&self, book: &OfferBook, idx: OfferIdx, own: Decimal) -> Decimal {
        WholeBudget.left(book, idx, own)
    }

    fn short(&mut self, _: &OfferBook, idx: OfferIdx, wanted: Decimal, left: Decimal) -> bool {
        let s = &mut self.short[idx.0 as usize];
        if left <= Decimal::ZERO {
            s.refused += 1;
            s.first_refused.get_or_insert(self.at);
        } else {
            s.cut += 1;
        }
        s.denied += wanted - left.max(Decimal::ZERO);
        // The whole budget is all there is: go on with the cut value.
        true
    }

    #[inline]
    fn spent(&mut self, _: &OfferBook, _: OfferIdx, _: Decimal) {}
}

/// One scenario's engine and everything counted about it.
pub(crate) struct Run {
    pub name: String,
    pub source: String,
    pub engine: Engine,
    pub flows: Vec<OfferFlow>,
    pub short: Vec<Shortfall>,
    pub competition: Competition,
    /// Whether the last event applied opened a transaction (R8, or R9
    /// without authorization).
    pub opened: bool,
    offer_ix: FxHashMap<Box<str>, u32>,
    /// The same, keyed by the address of the id in the book, which is what
    /// a reward record's `offer_id` points at: a look-up per record without
    /// hashing the id.
    offer_at: FxHashMap<usize, u32>,
    budgets: Vec<Option<Decimal>>,
    /// Scratch, per event: offers rewarded and offers with a budget touched.
    created: Vec<u32>,
    touched: Vec<u32>,
    cash: Vec<(u32, Decimal)>,
}

impl Run {
    pub fn new(name: String, source: String, offers: Vec<Offer>) -> Self {
        let book = OfferBook::new(offers);
        let n = book.slots().count();
        let offer_ix = book.slots().map(|(i, s)| (s.offer.id.clone(), i.0)).collect();
        let budgets = book.slots().map(|(_, s)| s.offer.budget).collect();
        let engine = Engine::new(book);
        // Ids are boxed: moving the book into the engine does not move them.
        let offer_at = engine.book.slots().map(|(i, s)| (s.offer.id.as_ptr() as usize, i.0)).collect();
        Run {
            name,
            source,
            engine,
            flows: vec![OfferFlow::default(); n],
            short: vec![Shortfall::default(); n],
            competition: Competition { contested: vec![0; n], won: vec![0; n], ..Competition::default() },
            opened: false,
            offer_ix,
            offer_at,
            budgets,
            created: Vec::new(),
            touched: Vec::new(),
            cash: Vec::new(),
        }
    }

    /// Applies one valid event (R1's currency checks, R2, R8–R11) and
    /// files what it changed.
    pub fn apply(&mut self, event: &CardEvent<'_>, ctx: &Ctx<'_>, shared: &mut Shared) -> Result<Applied, Rejection> {
        let prediction = match event.body {
            EventBody::Authorization(p) | EventBody::Clearing(p) => self.predict(event, &p),
            _ => None,
        };
        self.created.clear();
        self.touched.clear();
        let Run { engine, flows, short, offer_ix, offer_at, budgets, created, touched, .. } = self;
        let mut watch = Watch { short, at: ctx.at };
        let mut sink = |u: &RewardUpdate<'_>| {
            let o = match offer_at.get(&(u.offer_id.as_ptr() as usize)) {
                Some(&o) => o,
                None => *offer_ix.get(u.offer_id).expect("the book's own offer"),
            };
            let f = &mut flows[o as usize];
            let d = f.days.at(ctx.day);
            // What moved the money follows from the event's kind (R8–R11);
            // a clearing creates a reward (R9 without authorization) exactly
            // when the record's delta is its whole value, as a pending
            // reward it settles always had a value above zero.
            let created_now = match ctx.kind {
                EventKind::Authorization => true,
                EventKind::Clearing => u.delta == u.value,
                _ => false,
            };
            if created_now {
                d.new_rewards += 1;
                d.issued += u.value;
                if u.status == RewardStatus::Confirmed {
                    d.confirmed_in += u.value;
                }
                created.push(o);
                shared.remember(u.card_token, ctx);
            } else {
                match ctx.kind {
                    EventKind::Clearing => {
                        d.adjusted += u.delta;
                        if u.status == RewardStatus::Confirmed {
                            d.confirmed_in += u.value;
                        } else {
                            f.cancelled_at_clearing += 1;
                        }
                    }
                    EventKind::AuthReversal => {
                        d.reversed -= u.delta;
                        f.reversals += 1;
                    }
                    EventKind::Refund => {
                        d.clawed_back -= u.delta;
                        f.refunds += 1;
                    }
                    EventKind::Authorization | EventKind::Activation => {}
                }
            }
            if budgets[o as usize].is_some() {
                touched.push(o);
            }
        };
        let applied = apply_with(&mut engine.book, &mut engine.cards, event, &mut watch, &mut sink)?;
        for &o in &self.touched {
            let f = &mut self.flows[o as usize];
            if f.ran_out.is_none()
                && self.budgets[o as usize].is_some_and(|b| self.engine.book.slot(OfferIdx(o)).usage.used >= b)
            {
                f.ran_out = Some(ctx.at);
            }
        }
        // A duplicate (R2) changes nothing: its prediction is void.
        self.opened = prediction.is_some() && applied == Applied::Processed;
        if let Some(p) = prediction.filter(|_| applied == Applied::Processed) {
            self.record(p);
        }
        Ok(applied)
    }

    /// Judges R3–R5 for a purchase that will open a transaction, from the
    /// same offer index and card state the engine reads: `None` for a known
    /// transaction. (A duplicate is found out after the engine applied it.)
    fn predict(&mut self, event: &CardEvent<'_>, p: &Purchase<'_>) -> Option<Prediction> {
        let book = &self.engine.book;
        let card = self.engine.cards.get(event.card_token);
        if card.is_some_and(|c| c.transactions.contains_key(p.transaction_id)) {
            return None;
        }
        let mut out = Prediction { cash: Vec::new(), rewarded: Vec::new(), winner: None };
        // R3: `amount > 0`.
        if p.money.amount <= Decimal::ZERO {
            return Some(out);
        }
        let local = event.occurred_at.naive_local();
        let instant = event.occurred_at.with_timezone(&Utc);
        let weekday_bit = 1u8 << local.weekday().num_days_from_monday();
        let second = local.num_seconds_from_midnight();
        let cash = &mut self.cash;
        cash.clear();
        let mut points = Vec::new();
        book.for_each_candidate(p.money.currency, p.merchant.mid, p.merchant.mcc, p.merchant.country, |c| {
            if !eligible(book, c, p, instant, weekday_bit, second, card) {
                return;
            }
            let slot = book.slot(c.idx);
            // R3: a used-up budget makes the offer ineligible; R4 cuts the
            // value to what is left.
            let left = slot.offer.budget.map(|b| b - slot.usage.used);
            if left.is_some_and(|l| l <= Decimal::ZERO) {
                return;
            }
            let value = reward_value(&slot.offer, p.money.amount, left);
            if value.is_zero() {
                return;
            }
            if c.reward.is_cash() {
                cash.push((c.idx.0, value));
            } else {
                points.push(c.idx.0);
            }
        });
        // R5: the largest value wins; a tie goes to the smallest id.
        out.winner = cash
            .iter()
            .max_by(|(a, av), (b, bv)| {
                av.cmp(bv).then_with(|| book.slot(OfferIdx(*b)).offer.id.cmp(&book.slot(OfferIdx(*a)).offer.id))
            })
            .map(|(o, _)| *o);
        out.rewarded.extend(out.winner);
        out.rewarded.extend(points);
        out.cash = std::mem::take(cash);
        Some(out)
    }

    /// Compares a prediction with what the engine did and counts the
    /// competition among cash offers.
    fn record(&mut self, p: Prediction) {
        let c = &mut self.competition;
        c.checked += 1;
        if p.rewarded != self.created {
            c.mismatches += 1;
        }
        if p.cash.len() >= 2 {
            c.contested_purchases += 1;
            for (i, &(a, _)) in p.cash.iter().enumerate() {
                c.contested[a as usize] += 1;
                if Some(a) == p.winner {
                    c.won[a as usize] += 1;
                }
                for &(b, _) in &p.cash[i + 1..] {
                    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
                    let e = c.pairs.entry((lo, hi)).or_default();
                    e[0] += 1;
                    if p.winner == Some(lo) {
                        e[1] += 1;
                    } else if p.winner == Some(hi) {
                        e[2] += 1;
                    }
                }
            }
        }
        // Hand the buffer back for the next purchase.
        let mut cash = p.cash;
        cash.clear();
        self.cash = cash;
    }
}

/// R3 for one candidate, but for its budget: the same rules, in the same
/// terms, as the engine's matcher (`cardlink_core::engine`), which keeps
/// its own copy private. The prediction is checked against the engine's
/// rewards on every purchase ([`Competition::mismatches`]).
fn eligible(
    book: &OfferBook,
    c: &Candidate,
    p: &Purchase<'_>,
    instant: DateTime<Utc>,
    weekday_bit: u8,
    second_of_day: u32,
    card: Option<&CardState>,
) -> bool {
    (c.networks == 0 || c.networks & p.network.bit() != 0)
        && (c.days == 0 || c.days & weekday_bit != 0)
        && c.hours.is_none_or(|h| h.contains(second_of_day))
        && c.valid_from.is_none_or(|t| t <= instant)
        && c.valid_until.is_none_or(|t| instant < t)
        && p.money.amount >= c.min_spend
        && c.max_per_card().is_none_or(|max| u64::from(card.map_or(0, |card| card.live_count(c.idx))) < max)
        && (!c.extra_merchant_rules || {
            let offer = &book.slot(c.idx).offer;
            (offer.mccs.is_empty() || offer.mccs.binary_search(&p.merchant.mcc).is_ok())
                && (offer.countries.is_empty()
                    || p.merchant.country.is_some_and(|k| offer.countries.binary_search(&k).is_ok()))
        })
        && (!c.activation_required
            || card.is_some_and(|card| card.activations.contains_hashed(c.id_hash, || &book.slot(c.idx).offer.id)))
}
