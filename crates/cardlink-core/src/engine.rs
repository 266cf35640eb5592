//! The reward lifecycle: matching (R3–R7) and the transaction rules
//! (R8–R11), applied to one validated event at a time.

use chrono::{Datelike, Timelike, Utc};
use rust_decimal::Decimal;

use crate::book::{Candidate, OfferBook, OfferIdx};
use crate::event::{CardEvent, EventBody, EventKind, Money, Purchase, RawEvent, RejectReason, Rejection};
use crate::money::{Currency, round_toward_zero};
use crate::offer::{Offer, RewardRule};
use crate::state::{
    CardState, CardStore, KeyHashes, Prefetch, PrefetchKeys, Reward, RewardStatus, Transaction, bump_live,
};

/// Whether a reward is cash (in a currency) or points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewardKind {
    /// Cash in the offer's currency.
    Cash(Currency),
    /// Loyalty points.
    Points,
}

impl RewardKind {
    /// The contract's name: `CASH` or `POINTS`.
    pub fn as_str(self) -> &'static str {
        match self {
            RewardKind::Cash(_) => "CASH",
            RewardKind::Points => "POINTS",
        }
    }

    /// Digits a value of this kind is written with.
    pub fn digits(self) -> u32 {
        match self {
            RewardKind::Cash(c) => c.exponent(),
            RewardKind::Points => 0,
        }
    }

    /// The kind of an offer's rewards.
    pub fn of(offer: &Offer) -> Self {
        if offer.reward.is_cash() { RewardKind::Cash(offer.currency) } else { RewardKind::Points }
    }
}

/// One change to one reward: what a reward record carries (section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewardUpdate<'a> {
    /// The offer.
    pub offer_id: &'a str,
    /// The card.
    pub card_token: &'a str,
    /// The transaction.
    pub transaction_id: &'a str,
    /// The event that made the change.
    pub event_id: &'a str,
    /// Status after the change.
    pub status: RewardStatus,
    /// Cash or points.
    pub kind: RewardKind,
    /// Value after the change.
    pub value: Decimal,
    /// Change since the previous record; the first record's delta is its value.
    pub delta: Decimal,
}

/// Receives reward changes as the engine makes them.
pub trait RewardSink {
    /// Called once per changed reward, in a deterministic order.
    fn reward(&mut self, update: &RewardUpdate<'_>);
}

impl<F: FnMut(&RewardUpdate<'_>)> RewardSink for F {
    fn reward(&mut self, update: &RewardUpdate<'_>) {
        self(update)
    }
}

/// What became of a valid event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Processed: it may or may not have changed rewards.
    Processed,
    /// Its event id was already processed for the card (R2): no effect.
    Duplicate,
    /// Held back: it would spend more of a budget than the [`Budgets`]
    /// may give now, and they asked to wait for more ([`Budgets::short`]).
    /// Nothing changed; apply the same event again later. Never returned
    /// with [`WholeBudget`].
    Held,
}

/// Where the budget an engine may spend comes from (R6). With one engine
/// seeing every card ([`WholeBudget`]) that is the offer's budget less its
/// usage in the book. A partitioned pipeline instead gives each partition
/// a lease of the budget, so that the partitions together never pass it.
pub trait Budgets {
    /// What may still be spent of the budget of the offer in `idx`, not
    /// counting `own` (the value the reward being re-valued holds now).
    /// Only asked of offers that have a budget.
    fn left(&self, book: &OfferBook, idx: OfferIdx, own: Decimal) -> Decimal;

    /// Told, before anything changes, that R4 would give `wanted` of the
    /// offer in `idx` where only `left` may be spent. True: the budget is
    /// used up, go on with the value cut to `left` (R4, R6). False: hold
    /// the event ([`Applied::Held`]) until more budget is available.
    fn short(&mut self, book: &OfferBook, idx: OfferIdx, wanted: Decimal, left: Decimal) -> bool;

    /// False when [`Budgets::short`] always answers true, so that no event
    /// is ever held: the engine then skips judging shortfalls ahead.
    const MAY_HOLD: bool = true;

    /// Told of every change, by `delta`, of the live value of a budgeted
    /// offer's rewards.
    fn spent(&mut self, book: &OfferBook, idx: OfferIdx, delta: Decimal);
}

/// The whole budget of every offer, for an engine that sees every card:
/// what is left is the budget less the book's usage, and a shortfall means
/// the budget is used up.
#[derive(Debug, Clone, Copy, Default)]
pub struct WholeBudget;

impl Budgets for WholeBudget {
    const MAY_HOLD: bool = false;

    #[inline]
    fn left(&self, book: &OfferBook, idx: OfferIdx, own: Decimal) -> Decimal {
        let slot = book.slot(idx);
        slot.offer.budget.map_or(Decimal::MAX, |b| b - (slot.usage.used - own))
    }

    #[inline]
    fn short(&mut self, _: &OfferBook, _: OfferIdx, _: Decimal, _: Decimal) -> bool {
        true
    }

    #[inline]
    fn spent(&mut self, _: &OfferBook, _: OfferIdx, _: Decimal) {}
}

/// The value of `offer` on `amount` (R4): the rule's value, capped at
/// `max_reward`, cut to `budget_left`, rounded toward zero to the reward's
/// unit. A product too large for exact decimals saturates before the caps.
pub fn reward_value(offer: &Offer, amount: Decimal, budget_left: Option<Decimal>) -> Decimal {
    value_of(offer.reward, offer.max_reward, offer.value_digits(), amount, budget_left)
}

#[inline]
fn value_of(
    rule: RewardRule,
    max_reward: Option<Decimal>,
    digits: u32,
    amount: Decimal,
    budget_left: Option<Decimal>,
) -> Decimal {
    // The same result on integers where that is exact (nearly always).
    if let Some(v) = crate::money::reward_value_fast(rule, max_reward, digits, amount, budget_left) {
        return v;
    }
    let raw = match rule {
        RewardRule::Percent(p) => match amount.checked_mul(p) {
            // Dividing by 100 is exact as a shift of the scale while it fits.
            Some(mut v) if v.scale() <= 26 => {
                v.set_scale(v.scale() + 2).expect("scale checked");
                v
            }
            Some(v) => v / Decimal::ONE_HUNDRED,
            None => Decimal::MAX,
        },
        RewardRule::Fixed(f) => f,
        RewardRule::PointsPerUnit(k) => amount.checked_mul(k).unwrap_or(Decimal::MAX),
    };
    let mut v = raw;
    if let Some(cap) = max_reward {
        v = v.min(cap);
    }
    if let Some(left) = budget_left {
        v = v.min(left.max(Decimal::ZERO));
    }
    round_toward_zero(v, digits)
}

/// What is left of an offer's budget, not counting `own` (the value the
/// reward being re-valued holds now). `None` when the offer has no budget.
fn budget_left(book: &OfferBook, budgets: &impl Budgets, idx: OfferIdx, own: Decimal) -> Option<Decimal> {
    book.slot(idx).offer.budget.map(|_| budgets.left(book, idx, own))
}

/// The local facts of a purchase that R3's time rules judge.
struct When {
    instant: chrono::DateTime<Utc>,
    weekday_bit: u8,
    second_of_day: u32,
}

/// R3 for one candidate, but for its budget, which the caller judges with
/// the value (R4).
#[inline]
fn eligible(book: &OfferBook, c: &Candidate, p: &Purchase<'_>, when: &When, card: Option<&CardState>) -> bool {
    // Currency and the anchor restriction (mid, else MCC, else country) are
    // implied by the index; the rest is judged here, cheapest first, and
    // the offer itself is read only for the rules that need it.
    (c.networks == 0 || c.networks & p.network.bit() != 0)
        && (c.days == 0 || c.days & when.weekday_bit != 0)
        && c.hours.is_none_or(|h| h.contains(when.second_of_day))
        && c.valid_from.is_none_or(|t| t <= when.instant)
        && c.valid_until.is_none_or(|t| when.instant < t)
        && (c.min_spend.is_zero() || p.money.amount >= c.min_spend)
        && c.max_per_card().is_none_or(|max| u64::from(card.map_or(0, |card| card.live_count(c.idx))) < max)
        && (!c.extra_merchant_rules || merchant_rules(&book.slot(c.idx).offer, p))
        && (!c.activation_required
            || card.is_some_and(|card| card.activations.contains_hashed(c.id_hash, || book.slot(c.idx).id())))
}

fn merchant_rules(offer: &Offer, p: &Purchase<'_>) -> bool {
    (offer.mccs.is_empty() || offer.mccs.binary_search(&p.merchant.mcc).is_ok())
        && (offer.countries.is_empty() || p.merchant.country.is_some_and(|c| offer.countries.binary_search(&c).is_ok()))
}

/// A budgeted offer whose R4 value a budget cut: the offer, the uncut
/// value and what was left.
type Shortfall = (OfferIdx, Decimal, Decimal);

/// Decides the rewards of a new purchase (R3–R5): the best cash offer and
/// every points offer, each with its R4 value (as yet unapplied: see
/// [`open_transaction`]). Budgets that cut a value are noted in `short`.
fn match_purchase<B: Budgets>(
    book: &OfferBook,
    budgets: &B,
    p: &Purchase<'_>,
    (mid_hash, mid_at): (u64, Option<usize>),
    occurred_at: chrono::DateTime<chrono::FixedOffset>,
    card: Option<&CardState>,
    short: &mut Vec<Shortfall>,
) -> Vec<Reward> {
    if p.money.amount <= Decimal::ZERO {
        return Vec::new();
    }
    let local = occurred_at.naive_local();
    let when = When {
        instant: occurred_at.with_timezone(&Utc),
        weekday_bit: 1 << local.weekday().num_days_from_monday(),
        second_of_day: local.num_seconds_from_midnight(),
    };
    let mut best_cash: Option<(OfferIdx, Decimal)> = None;
    MATCHED.with_borrow_mut(|points| {
        points.clear();
        let m = p.merchant;
        book.for_each_candidate_hashed(p.money.currency, m.mid, mid_hash, mid_at, m.mcc, m.country, |c| {
            if !eligible(book, c, p, &when, card) {
                return;
            }
            let left = c.budgeted.then(|| budgets.left(book, c.idx, Decimal::ZERO));
            let value = value_of(c.reward, c.max_reward, u32::from(c.value_digits), p.money.amount, left);
            if let Some(left) = left {
                if B::MAY_HOLD {
                    let uncut = value_of(c.reward, c.max_reward, u32::from(c.value_digits), p.money.amount, None);
                    if uncut > value {
                        short.push((c.idx, uncut, left));
                    }
                }
                // R3: an offer whose budget is used up is not eligible.
                if left <= Decimal::ZERO {
                    return;
                }
            }
            if value.is_zero() {
                return;
            }
            if c.reward.is_cash() {
                // R5: the largest value wins; a tie goes to the smallest id.
                let better = match best_cash {
                    None => true,
                    Some((b, bv)) => value > bv || (value == bv && book.slot(c.idx).id() < book.slot(b).id()),
                };
                if better {
                    best_cash = Some((c.idx, value));
                }
            } else {
                points.push(Reward { offer: c.idx, status: RewardStatus::Pending, value });
            }
        });
        // Exactly as long as needed: the list is kept with the transaction.
        let mut out = Vec::with_capacity(points.len() + usize::from(best_cash.is_some()));
        out.extend(best_cash.map(|(offer, value)| Reward { offer, status: RewardStatus::Pending, value }));
        out.extend_from_slice(points);
        out
    })
}

thread_local! {
    /// The points rewards of the purchase being matched, so that matching
    /// allocates only the transaction's list, at its final length.
    static MATCHED: std::cell::RefCell<Vec<Reward>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The event's identifiers, carried into every record it emits.
struct Ctx<'a> {
    card_token: &'a str,
    transaction_id: &'a str,
    event_id: &'a str,
}

/// Moves a reward to `status` and `value`, keeping the offer's usage and
/// the card's live counts exact, and emits a record when anything changed.
#[allow(clippy::too_many_arguments)]
fn set_reward(
    book: &mut OfferBook,
    budgets: &mut impl Budgets,
    live: &mut Vec<(OfferIdx, u32)>,
    reward: &mut Reward,
    status: RewardStatus,
    value: Decimal,
    ctx: &Ctx<'_>,
    sink: &mut impl RewardSink,
) {
    if reward.status == status && reward.value == value {
        return;
    }
    let was_live = reward.is_live();
    let delta = value - reward.value;
    reward.status = status;
    reward.value = value;
    let is_live = reward.is_live();
    let usage = book.usage_mut(reward.offer);
    // Values stay below 10^21 (see money::MAX_AMOUNT): sums fit unless
    // absurdly many; saturate rather than panic even then.
    usage.used = usage.used.saturating_add(delta);
    if was_live != is_live {
        if is_live {
            usage.live += 1;
        } else {
            usage.live -= 1;
        }
        bump_live(live, reward.offer, is_live);
    }
    if book.slot(reward.offer).budgeted() && !delta.is_zero() {
        budgets.spent(book, reward.offer, delta);
    }
    let slot = book.slot(reward.offer);
    sink.reward(&RewardUpdate {
        offer_id: slot.id(),
        card_token: ctx.card_token,
        transaction_id: ctx.transaction_id,
        event_id: ctx.event_id,
        status,
        kind: slot.kind(),
        value,
        delta,
    });
}

/// Applies one valid event to the book and the card's state (R1's
/// currency checks, R2, R8–R11), with each offer's whole budget
/// ([`WholeBudget`]). A rejection changes nothing.
pub fn apply(
    book: &mut OfferBook,
    cards: &mut CardStore,
    event: &CardEvent<'_>,
    sink: &mut impl RewardSink,
) -> Result<Applied, Rejection> {
    apply_with(book, cards, event, &mut WholeBudget, sink)
}

/// [`apply`], spending budgets as `budgets` allow. A rejection or a held
/// event ([`Applied::Held`]) changes nothing.
pub fn apply_with<B: Budgets>(
    book: &mut OfferBook,
    cards: &mut CardStore,
    event: &CardEvent<'_>,
    budgets: &mut B,
    sink: &mut impl RewardSink,
) -> Result<Applied, Rejection> {
    apply_keyed(book, cards, event, &PrefetchKeys::of(event), budgets, sink)
}

/// [`apply_with`] given the event's keys, `PrefetchKeys::of(event)`, as
/// the prefetch pipeline hashed them: each key is hashed once per event,
/// and the card, transaction and merchant are found where the prefetch
/// steps found them (positions are checked, never trusted).
pub fn apply_keyed<B: Budgets>(
    book: &mut OfferBook,
    cards: &mut CardStore,
    event: &CardEvent<'_>,
    keys: &PrefetchKeys<'_>,
    budgets: &mut B,
    sink: &mut impl RewardSink,
) -> Result<Applied, Rejection> {
    debug_assert!(keys.is_of(event), "the keys of another event");
    let mut existing = cards.get_mut_keyed(keys);
    // Where the event's transaction is held, remembered or not: valid until
    // the card's table changes, which nothing below does before its last use.
    let tx_at = match (existing.as_deref(), keys.transaction) {
        (Some(card), Some((id, hash))) => card.transactions.position(id, hash, keys.transaction_at.get()),
        _ => None,
    };
    // R1: a clearing must be in its authorization's currency, a refund in
    // its clearing's. Judged before R2, so a mismatch is never a duplicate.
    if let Some(card) = existing.as_deref() {
        let tx = card.transactions.get_at(tx_at);
        let mismatch = match event.body {
            EventBody::Clearing(p) => tx
                .and_then(|t| t.auth_currency)
                .filter(|c| *c != p.money.currency)
                .map(|c| ("authorization", c, p.money.currency)),
            EventBody::Refund { money, .. } => tx
                .and_then(|t| t.cleared)
                .filter(|m| m.currency != money.currency)
                .map(|m| ("clearing", m.currency, money.currency)),
            _ => None,
        };
        if let Some((what, theirs, ours)) = mismatch {
            return Err(Rejection::new(
                RejectReason::CurrencyMismatch,
                "currency",
                format!("currency {ours} differs from the {what}'s {theirs}"),
            ));
        }
        if card.seen.contains_hashed(keys.event_id, || event.event_id) {
            return Ok(Applied::Duplicate);
        }
    }
    // Decided before anything changes, so that a held event leaves no trace:
    // the rewards of a new transaction (R8, or R9 without authorization),
    // and whether a clearing's re-valuation finds enough budget.
    let known = existing.as_deref().is_some_and(|c| c.transactions.get_at(tx_at).is_some());
    let mut short = Vec::new();
    let matched = match event.body {
        EventBody::Authorization(p) | EventBody::Clearing(p) if !known => {
            let merchant = keys.merchant.map_or(0, |(_, _, hash)| hash);
            let merchant = (merchant, keys.merchant_at.get());
            Some(match_purchase(book, budgets, &p, merchant, event.occurred_at, existing.as_deref(), &mut short))
        }
        EventBody::Clearing(p) => {
            if B::MAY_HOLD {
                clearing_shortfalls(book, budgets, existing.as_deref(), &p, &mut short);
            }
            None
        }
        _ => None,
    };
    let mut hold = false;
    for (idx, wanted, left) in short {
        hold |= !budgets.short(book, idx, wanted, left);
    }
    if hold {
        return Ok(Applied::Held);
    }
    let card = match existing.take() {
        Some(c) => c,
        None => cards.insert_keyed(keys),
    };
    // R2 was judged above: the id is not remembered.
    card.begin_unseen_event(event.event_id, keys.event_id, event.occurred_at);
    let tx_key = Tx { hash: keys.transaction.map_or(0, |(_, hash)| hash), at: tx_at };

    match event.body {
        EventBody::Activation { offer_id } => {
            card.activations.insert(offer_id);
        }
        EventBody::Authorization(p) => {
            if let Some(matched) = matched {
                open_transaction(book, budgets, card, event, &p, tx_key, matched, RewardStatus::Pending, sink);
            }
        }
        EventBody::Clearing(p) => match matched {
            Some(matched) => {
                open_transaction(book, budgets, card, event, &p, tx_key, matched, RewardStatus::Confirmed, sink)
            }
            None => clear(book, budgets, card, event, &p, tx_key, sink),
        },
        EventBody::AuthReversal { transaction_id } => {
            let CardState { transactions, live, .. } = card;
            if let Some(tx) = transactions.reverse_at(tx_key.at) {
                let ctx = Ctx { card_token: event.card_token, transaction_id, event_id: event.event_id };
                for r in tx.rewards.iter_mut().filter(|r| r.status == RewardStatus::Pending) {
                    set_reward(book, budgets, live, r, RewardStatus::Cancelled, Decimal::ZERO, &ctx, sink);
                }
            }
        }
        EventBody::Refund { transaction_id, money } => {
            refund(book, budgets, card, event, transaction_id, tx_key, money, sink)
        }
    }
    card.end_event();
    Ok(Applied::Processed)
}

/// R9's re-valuation, judged ahead: the budgeted pending rewards of an
/// authorized, uncleared transaction whose value on the cleared amount a
/// budget would cut.
fn clearing_shortfalls(
    book: &OfferBook,
    budgets: &impl Budgets,
    card: Option<&CardState>,
    p: &Purchase<'_>,
    short: &mut Vec<Shortfall>,
) {
    let Some(tx) = card.and_then(|c| c.transactions.get(p.transaction_id)) else { return };
    if tx.cleared.is_some() || p.money.amount.is_zero() {
        return;
    }
    for r in tx.rewards.iter().filter(|r| r.status == RewardStatus::Pending) {
        let offer = &book.slot(r.offer).offer;
        if offer.budget.is_none() || p.money.amount < offer.min_spend {
            continue;
        }
        let left = budgets.left(book, r.offer, r.value);
        let uncut = reward_value(offer, p.money.amount, None);
        if uncut > left {
            short.push((r.offer, uncut, left));
        }
    }
}

/// The event's transaction in its card's table: the id's hash, and where
/// it is held, if it is ([`crate::state::TxMap::position`]).
#[derive(Clone, Copy)]
struct Tx {
    hash: u64,
    at: Option<usize>,
}

/// R8, and R9 for a clearing without authorization: a new transaction whose
/// rewards are decided by R3–R7 and start in `status`.
#[allow(clippy::too_many_arguments)]
fn open_transaction(
    book: &mut OfferBook,
    budgets: &mut impl Budgets,
    card: &mut CardState,
    event: &CardEvent<'_>,
    p: &Purchase<'_>,
    at: Tx,
    matched: Vec<Reward>,
    status: RewardStatus,
    sink: &mut impl RewardSink,
) {
    let cleared = (status == RewardStatus::Confirmed).then_some(p.money);
    let tx = Transaction {
        auth_currency: (status == RewardStatus::Pending).then_some(p.money.currency),
        cleared,
        net: if cleared.is_some() { p.money.amount } else { Decimal::ZERO },
        // The matcher's list becomes the transaction's: one allocation.
        rewards: matched,
    };
    let CardState { transactions, live, .. } = card;
    let tx = transactions.insert_new_at(p.transaction_id, at.hash, at.at, tx);
    let ctx = Ctx { card_token: event.card_token, transaction_id: p.transaction_id, event_id: event.event_id };
    for r in &mut tx.rewards {
        // Each starts from nothing, so its first record's delta is its value.
        let value = std::mem::replace(&mut r.value, Decimal::ZERO);
        r.status = RewardStatus::Cancelled;
        set_reward(book, budgets, live, r, status, value, &ctx, sink);
    }
}

/// R9: settles an authorized transaction on its cleared amount, or opens a
/// confirmed one when it was never authorized. A second clearing is a no-op.
fn clear(
    book: &mut OfferBook,
    budgets: &mut impl Budgets,
    card: &mut CardState,
    event: &CardEvent<'_>,
    p: &Purchase<'_>,
    at: Tx,
    sink: &mut impl RewardSink,
) {
    let Some(tx) = card.transactions.get_mut_at(at.at) else { return };
    let live = &mut card.live;
    if tx.cleared.is_some() {
        return;
    }
    tx.cleared = Some(p.money);
    tx.net = p.money.amount;
    let ctx = Ctx { card_token: event.card_token, transaction_id: p.transaction_id, event_id: event.event_id };
    let amount = p.money.amount;
    for r in tx.rewards.iter_mut().filter(|r| r.status == RewardStatus::Pending) {
        let offer = &book.slot(r.offer).offer;
        let value = if amount.is_zero() || amount < offer.min_spend {
            Decimal::ZERO
        } else {
            reward_value(offer, amount, budget_left(book, budgets, r.offer, r.value))
        };
        let status = if value.is_zero() { RewardStatus::Cancelled } else { RewardStatus::Confirmed };
        set_reward(book, budgets, live, r, status, value, &ctx, sink);
    }
}

/// R11: lowers the net amount and re-values every confirmed reward on it,
/// never upward.
#[allow(clippy::too_many_arguments)]
fn refund(
    book: &mut OfferBook,
    budgets: &mut impl Budgets,
    card: &mut CardState,
    event: &CardEvent<'_>,
    transaction_id: &str,
    at: Tx,
    money: Money,
    sink: &mut impl RewardSink,
) {
    let CardState { transactions, live, .. } = card;
    let Some(tx) = transactions.get_mut_at(at.at) else { return };
    if !tx.rewards.iter().any(|r| r.status == RewardStatus::Confirmed) {
        return;
    }
    tx.net = (tx.net - money.amount).max(Decimal::ZERO);
    let net = tx.net;
    let ctx = Ctx { card_token: event.card_token, transaction_id, event_id: event.event_id };
    for r in tx.rewards.iter_mut().filter(|r| r.status == RewardStatus::Confirmed) {
        let offer = &book.slot(r.offer).offer;
        if net.is_zero() || net < offer.min_spend {
            set_reward(book, budgets, live, r, RewardStatus::Cancelled, Decimal::ZERO, &ctx, sink);
        } else {
            let value = reward_value(offer, net, budget_left(book, budgets, r.offer, r.value)).min(r.value);
            set_reward(book, budgets, live, r, RewardStatus::Confirmed, value, &ctx, sink);
        }
    }
}

/// Event counts for the ledger's `events` section and the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Valid, non-duplicate events (ACTIVATION included).
    pub processed: u64,
    /// Valid events whose id was already processed (R2).
    pub duplicate: u64,
    /// Rejected events (R1).
    pub rejected: u64,
    /// Processed events by kind, in [`EventKind::ALL`] order.
    pub processed_by_kind: [u64; 5],
    /// Rejected events by reason, in [`RejectReason::ALL`] order.
    pub rejected_by_reason: [u64; 5],
}

impl Counters {
    /// Counts a rejection.
    pub fn count_rejection(&mut self, reason: RejectReason) {
        self.rejected += 1;
        self.rejected_by_reason[RejectReason::ALL.iter().position(|r| *r == reason).expect("listed")] += 1;
    }

    fn count_applied(&mut self, kind: EventKind, applied: Applied) {
        match applied {
            Applied::Duplicate => self.duplicate += 1,
            // Not decided yet: counted when applied again.
            Applied::Held => {}
            Applied::Processed => {
                self.processed += 1;
                self.processed_by_kind[EventKind::ALL.iter().position(|k| *k == kind).expect("listed")] += 1;
            }
        }
    }
}

/// The engine in one piece: the offer book, every card's state and the
/// event counters. The replay command, the benchmarks and the tests drive
/// it; a partitioned pipeline can call [`apply`] with a store per partition.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    /// Offers and budgets.
    pub book: OfferBook,
    /// Per-card state.
    pub cards: CardStore,
    /// Event counts.
    pub counters: Counters,
}

/// The prefetch pipeline over a sequence of events: the next few events,
/// with their keys hashed once each (for the prefetch steps and for
/// applying them, [`Engine::apply_keyed`]), and the step each is due.
#[derive(Debug, Default)]
pub struct Lookahead<'a> {
    /// The events up to the farthest step ahead, with their keys, at their
    /// index modulo [`LOOKAHEAD_RING`].
    ring: [Option<(CardEvent<'a>, PrefetchKeys<'a>)>; LOOKAHEAD_RING],
}

/// Slots of [`Lookahead`]'s ring: more than the farthest step ahead.
const LOOKAHEAD_RING: usize = 8;
const _: () = assert!(Prefetch::PIPELINE[0].0 < LOOKAHEAD_RING);

impl<'a> Lookahead<'a> {
    /// Before event `i` is applied: takes each coming event's next step of
    /// [`Engine::prefetch`], and returns event `i` with its keys (`None`
    /// when it is not a valid event). `event(j)` is the `j`th event of the
    /// sequence with the hashes of its keys (`KeyHashes::of` the event:
    /// they are trusted), if there is one and it is a valid event.
    #[inline]
    pub fn step(
        &mut self,
        engine: &Engine,
        i: usize,
        event: impl Fn(usize) -> Option<(CardEvent<'a>, KeyHashes)>,
    ) -> Option<&(CardEvent<'a>, PrefetchKeys<'a>)> {
        let farthest = Prefetch::PIPELINE[0].0;
        let keyed = |j: usize| event(j).map(|(e, hashes)| (e, PrefetchKeys::hashed(&e, hashes)));
        if i == 0 {
            // The first events of a sequence start part of the way along.
            for d in 0..farthest {
                self.ring[d % LOOKAHEAD_RING] = keyed(d);
            }
        }
        self.ring[(i + farthest) % LOOKAHEAD_RING] = keyed(i + farthest);
        for (distance, step) in Prefetch::PIPELINE {
            if let Some((_, keys)) = &self.ring[(i + distance) % LOOKAHEAD_RING] {
                engine.prefetch(step, keys);
            }
        }
        self.ring[i % LOOKAHEAD_RING].as_ref()
    }
}

/// What [`Engine::process`] did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Valid and new.
    Processed,
    /// Valid, already seen (R2).
    Duplicate,
    /// Rejected (R1); goes to the dead letters.
    Rejected(Rejection),
}

impl Engine {
    /// An engine over these offers, with no card state.
    pub fn new(book: OfferBook) -> Self {
        Engine { book, ..Engine::default() }
    }

    /// Validates and applies a raw event, counting the outcome.
    pub fn process(&mut self, raw: &RawEvent<'_>, sink: &mut impl RewardSink) -> Outcome {
        match crate::event::validate(raw) {
            Ok(event) => self.apply(&event, sink),
            Err(rejection) => {
                self.counters.count_rejection(rejection.reason);
                Outcome::Rejected(rejection)
            }
        }
    }

    /// Applies a validated event, counting the outcome.
    pub fn apply(&mut self, event: &CardEvent<'_>, sink: &mut impl RewardSink) -> Outcome {
        self.apply_keyed(event, &PrefetchKeys::of(event), sink)
    }

    /// [`Engine::apply`] given the event's keys, `PrefetchKeys::of(event)`,
    /// as [`Lookahead::step`] returns them with the event.
    pub fn apply_keyed(
        &mut self,
        event: &CardEvent<'_>,
        keys: &PrefetchKeys<'_>,
        sink: &mut impl RewardSink,
    ) -> Outcome {
        match apply_keyed(&mut self.book, &mut self.cards, event, keys, &mut WholeBudget, sink) {
            Ok(applied) => {
                self.counters.count_applied(event.kind(), applied);
                match applied {
                    Applied::Processed => Outcome::Processed,
                    Applied::Duplicate => Outcome::Duplicate,
                    Applied::Held => unreachable!("the whole budget never holds an event"),
                }
            }
            Err(rejection) => {
                self.counters.count_rejection(rejection.reason);
                Outcome::Rejected(rejection)
            }
        }
    }

    /// Applies `events` in order, exactly as [`Engine::apply`] on each in
    /// turn would, telling `each` every outcome. While one event is
    /// applied, the memory the next few will read is asked for
    /// ([`Engine::prefetch`]): per-card state is far larger than the
    /// caches, and waiting for each of its lines in turn is most of an
    /// event's time otherwise.
    pub fn apply_batch(
        &mut self,
        events: &[CardEvent<'_>],
        sink: &mut impl RewardSink,
        mut each: impl FnMut(usize, Outcome),
    ) {
        let mut ahead = Lookahead::default();
        for i in 0..events.len() {
            let event = |j: usize| events.get(j).map(|e| (*e, KeyHashes::of(e)));
            let (event, keys) = ahead.step(self, i, event).expect("every event is valid");
            let outcome = self.apply_keyed(event, keys, sink);
            each(i, outcome);
        }
    }

    /// One step of bringing closer what applying the event of `keys` will
    /// read: its card's state ([`CardStore::prefetch`]), a purchase's
    /// candidate offers, and the offers of the transaction's rewards. Take
    /// the steps in [`Prefetch::PIPELINE`] order, an event or so apart (as
    /// [`Lookahead`] does). A hint only: it changes nothing.
    #[inline]
    pub fn prefetch(&self, step: Prefetch, keys: &PrefetchKeys<'_>) {
        self.cards.prefetch(step, keys);
        self.book.prefetch_candidates(step, keys);
        if step == Prefetch::Offers {
            if let Some(tx) = self.cards.transaction_found(keys) {
                for r in &tx.rewards {
                    self.book.prefetch_slot_rules(r.offer);
                }
            }
        }
    }

    /// Counts a record that could not even be decoded.
    pub fn count_malformed(&mut self) {
        self.counters.count_rejection(RejectReason::Malformed);
    }
}
