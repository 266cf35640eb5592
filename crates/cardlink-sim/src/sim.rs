//! The streaming feed generator.
//!
//! A simulated clock moves through the period. New purchases (and offer
//! activations) arrive as a Poisson process whose rate follows the local
//! daily rhythm of every city; each purchase schedules its follow-ups
//! (clearing or reversal, refunds) in a priority queue keyed by due time,
//! and duplicates are scheduled the same way. The generator emits whichever
//! is due first, so the feed is ordered by time and memory is bounded by
//! what is scheduled within the next few weeks, never by the feed's length.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use cardlink_proto::v1 as pb;

use crate::offers::{self, OfferSpec};
use crate::rng::{Rng, exp};
use crate::world::{
    CATS, CITIES, CURS, FUEL, HOTELS, NCAT, REFUND_SHARE, REVERSAL_SHARE, World, format_minor, hour_of_week,
    nice_minor, pow10, prefixed, timestamp,
};
use crate::{SimConfig, SimRecord};

/// Share of clearings that arrive without an authorization (force-post).
const FORCE_POST: f64 = 0.01;
/// Share of arrivals that are a card activating an offer (when offers need it).
const ACTIVATION_SHARE: f64 = 0.03;
/// Chance that an activation is followed by purchases at the offer's merchants.
const ACTIVATION_SHOPS: f64 = 0.65;
/// Share of fuel authorizations that are a round pre-authorization.
const FUEL_PREAUTH: f64 = 0.45;

/// One purchase: the card, where, and what was bought for (minor units).
#[derive(Debug, Clone, Copy)]
struct Purchase {
    tx: u64,
    amount: i64,
    card: u32,
    merchant: u32,
}

/// Something that will happen at a due time.
#[derive(Debug)]
enum Action {
    /// The purchase is authorized.
    Auth(Purchase),
    /// It clears for `cleared`; `force_post` when never authorized.
    Clear { p: Purchase, cleared: i64, force_post: bool },
    /// The authorization (of `p.amount`) is reversed.
    Reverse(Purchase),
    /// `amount` goes back to the card; `then` more later (0: no more).
    Refund { p: Purchase, amount: i64, then: i64 },
    /// The card activates an offer.
    Activate { card: u32, offer: u32 },
    /// An event is sent again.
    Dup { card: u32, event: Box<pb::CardEvent> },
}

impl Action {
    fn card(&self) -> u32 {
        match self {
            Action::Auth(p) | Action::Reverse(p) => p.card,
            Action::Clear { p, .. } | Action::Refund { p, .. } => p.card,
            Action::Activate { card, .. } | Action::Dup { card, .. } => *card,
        }
    }
}

/// A queued action: due time, a tie-breaking sequence number and where the
/// action waits in the slab. Small, so the heap moves little memory; the
/// heap pops the smallest (due, seq) first.
#[derive(Debug, Clone, Copy)]
struct Entry {
    due: u32,
    slot: u32,
    seq: u64,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// Minutes the bucket ring covers: past that, actions wait in a heap.
const RING_MINUTES: u64 = 1 << 16;

/// The queue of scheduled actions, popped in (due, seq) order.
///
/// A calendar queue: actions due in later minutes wait unsorted in one
/// bucket per minute; a small heap orders those of the minutes reached so
/// far. Pushing costs an append, popping a heap step over the current
/// minute's actions only, however many weeks of actions are queued.
#[derive(Debug)]
struct Schedule {
    near: BinaryHeap<Entry>,
    ring: Vec<Vec<Entry>>,
    overflow: BinaryHeap<Entry>,
    /// `near` holds every queued action due before this minute.
    horizon: u64,
    len: usize,
    /// Actions by slot; `free` lists empty slots.
    slab: Vec<Option<Action>>,
    free: Vec<u32>,
    seq: u64,
}

impl Schedule {
    fn new() -> Self {
        Schedule {
            near: BinaryHeap::new(),
            ring: (0..RING_MINUTES).map(|_| Vec::new()).collect(),
            overflow: BinaryHeap::new(),
            horizon: 0,
            len: 0,
            slab: Vec::new(),
            free: Vec::new(),
            seq: 0,
        }
    }

    fn push(&mut self, due: u32, action: Action) {
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slab[slot as usize] = Some(action);
                slot
            }
            None => {
                self.slab.push(Some(action));
                u32::try_from(self.slab.len() - 1).expect("fewer than 2^32 scheduled actions")
            }
        };
        let e = Entry { due, slot, seq: self.seq };
        let minute = u64::from(due) / 60;
        if minute < self.horizon {
            self.near.push(e);
        } else if minute < self.horizon + RING_MINUTES {
            self.ring[(minute % RING_MINUTES) as usize].push(e);
        } else {
            self.overflow.push(e);
        }
        self.len += 1;
    }

    /// The first action due at or before `t`, if any.
    fn pop_due_by(&mut self, t: u32) -> Option<(u32, Action)> {
        loop {
            if let Some(top) = self.near.peek() {
                if top.due > t {
                    return None;
                }
                let e = self.near.pop().expect("peeked");
                let action = self.slab[e.slot as usize].take().expect("a queued slot holds its action");
                self.free.push(e.slot);
                self.len -= 1;
                return Some((e.due, action));
            }
            // Everything else is due at or after the horizon.
            if self.len == 0 || self.horizon * 60 > u64::from(t) {
                return None;
            }
            let minute = self.horizon;
            // Taken, not drained: a bucket's memory goes with its minute.
            let bucket = std::mem::take(&mut self.ring[(minute % RING_MINUTES) as usize]);
            self.near.extend(bucket);
            while self.overflow.peek().is_some_and(|e| u64::from(e.due) / 60 <= minute) {
                let e = self.overflow.pop().expect("peeked");
                self.near.push(e);
            }
            self.horizon += 1;
        }
    }

    /// Number of queued actions.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }
}

/// Kinds of bad records (R1); [`DEFECTS`] gives their weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    TruncatedJson,
    RandomBytes,
    MissingAmount,
    TooManyDecimals,
    BadCurrency,
    BadMcc,
    UnknownKind,
    RawPan,
    NoOffset,
    CurrencyMismatch,
}

const DEFECTS: &[(Defect, f64)] = &[
    (Defect::TruncatedJson, 2.0),
    (Defect::RandomBytes, 1.0),
    (Defect::MissingAmount, 1.5),
    (Defect::TooManyDecimals, 1.5),
    (Defect::BadCurrency, 1.0),
    (Defect::BadMcc, 1.0),
    (Defect::UnknownKind, 0.7),
    (Defect::RawPan, 1.0),
    (Defect::NoOffset, 1.0),
    (Defect::CurrencyMismatch, 1.0),
];

/// A deterministic generator of a card-network feed: an iterator of
/// exactly `config.events` records (see the crate documentation for what
/// the feed holds).
///
/// Memory stays bounded by the events scheduled within the next weeks
/// (clearings within three days, refunds within a month) and by four bytes
/// per card, whatever the number of events.
#[derive(Debug)]
pub struct Simulator {
    world: World,
    offers: Vec<OfferSpec>,
    /// Offers that need activation, and others (activated now and then too).
    activatable: Vec<u32>,
    others: Vec<u32>,
    rng: Rng,
    total: u64,
    emitted: u64,
    queue: Schedule,
    /// Next arrival, in seconds after `start`.
    next_arrival: f64,
    /// Time of the last emitted event, in seconds after `start`.
    now: u32,
    start: i64,
    /// Arrivals per second at the mean of the daily rhythm.
    base_rate: f64,
    activation_share: f64,
    next_event: u64,
    next_tx: u64,
    /// Per card: due time of its pending duplicate (0: none). Until then the
    /// card's other events wait, so a card's events stay in time order.
    blocked: Vec<u32>,
    mismatch_debt: u32,
    dup_debt: u32,
    malformed_pm: u32,
    duplicate_pm: u32,
    bad_weights: Vec<f64>,
}

impl Simulator {
    /// A generator for `config`. The same configuration always yields the
    /// same records.
    pub fn new(config: &SimConfig) -> Simulator {
        let world = World::new(config.seed, config.merchants, config.cards);
        let offers = offers::build(config, &world);
        let activatable: Vec<u32> =
            (0..offers.len() as u32).filter(|&i| offers[i as usize].activation_required).collect();
        let others: Vec<u32> = (0..offers.len() as u32).filter(|&i| !offers[i as usize].activation_required).collect();
        let activation_share = if activatable.is_empty() { 0.0 } else { ACTIVATION_SHARE };
        let malformed_pm = config.malformed_per_mille.min(1000);
        let duplicate_pm = config.duplicate_per_mille.min(1000);
        let base_rate = base_rate(config, activation_share, malformed_pm, duplicate_pm);
        let cards = world.cards as usize;
        let mut sim = Simulator {
            world,
            offers,
            activatable,
            others,
            rng: Rng::new(config.seed, 3),
            total: config.events,
            emitted: 0,
            queue: Schedule::new(),
            next_arrival: 0.0,
            now: 0,
            start: config.start.timestamp(),
            base_rate,
            activation_share,
            next_event: 1,
            next_tx: 1,
            blocked: vec![0; cards],
            mismatch_debt: 0,
            dup_debt: 0,
            malformed_pm,
            duplicate_pm,
            bad_weights: DEFECTS.iter().map(|b| b.1).collect(),
        };
        sim.advance_arrival();
        sim
    }

    fn push(&mut self, due: u32, action: Action) {
        self.queue.push(due, action);
    }

    fn advance_arrival(&mut self) {
        let abs = self.start + self.next_arrival as i64;
        let rate = (self.base_rate * self.world.global_rate[hour_of_week(abs)]).max(1e-12);
        self.next_arrival += self.rng.exp1() / rate;
    }

    /// The next event of the simulation, with its card and whether it may
    /// be duplicated; `None` when the step emitted nothing.
    fn step(&mut self) -> Option<(pb::CardEvent, u32, bool)> {
        let arrival = self.next_arrival.min(f64::from(u32::MAX - 1)) as u32;
        if let Some((due, action)) = self.queue.pop_due_by(arrival) {
            return self.fire(due, action);
        }
        self.advance_arrival();
        let action = if self.activation_share > 0.0 && self.rng.chance(self.activation_share) {
            self.new_activation()
        } else {
            self.new_purchase(arrival)
        };
        self.fire(arrival, action)
    }

    /// Picks a merchant as a purchase at `at` would: a city by its current
    /// share of the network's volume, a category by the local hour, a shop
    /// by popularity. Returns the merchant and its city.
    fn pick_merchant(&mut self, at: u32) -> (u32, usize) {
        let abs = self.start + i64::from(at);
        let w = &self.world;
        let city = self.rng.weighted(&w.city_rate[hour_of_week(abs)]);
        let local = abs + i64::from(CITIES[city].offset_min) * 60;
        let cat = self.rng.weighted(&w.cat_rate[hour_of_week(local)]);
        let group = &w.by_city_cat[city * NCAT + cat];
        let group = if group.is_empty() { &w.by_city[city] } else { group };
        (group[self.rng.skewed(group.len())], city)
    }

    /// A card for a purchase in `city`: mostly one that lives there, heavy
    /// spenders more often than others.
    fn pick_card(&mut self, city: usize) -> u32 {
        let (lo, hi) = (self.world.card_bounds[city], self.world.card_bounds[city + 1]);
        if hi > lo && self.rng.chance(0.88) {
            lo + self.rng.skewed((hi - lo) as usize) as u32
        } else {
            self.rng.skewed(self.world.cards as usize) as u32
        }
    }

    fn new_tx(&mut self) -> u64 {
        self.next_tx += 1;
        self.next_tx - 1
    }

    fn new_purchase(&mut self, at: u32) -> Action {
        let (merchant, city) = self.pick_merchant(at);
        let card = self.pick_card(city);
        let amount = self.sample_amount(merchant);
        let p = Purchase { tx: self.new_tx(), amount, card, merchant };
        if self.rng.chance(FORCE_POST) {
            Action::Clear { p, cleared: amount, force_post: true }
        } else {
            Action::Auth(p)
        }
    }

    fn new_activation(&mut self) -> Action {
        let pool = if self.others.is_empty() || self.rng.chance(0.85) { &self.activatable } else { &self.others };
        let offer = pool[self.rng.index(pool.len())];
        let sample = &self.offers[offer as usize].sample;
        let card = match sample.first() {
            Some(_) if self.rng.chance(0.8) => {
                let m = sample[self.rng.index(sample.len())];
                let city = self.world.merchants[m as usize].city as usize;
                self.pick_card(city)
            }
            _ => self.rng.skewed(self.world.cards as usize) as u32,
        };
        Action::Activate { card, offer }
    }

    /// The amount of a purchase at `merchant`, in its currency's minor units.
    fn sample_amount(&mut self, merchant: u32) -> i64 {
        let c = &CATS[self.world.merchants[merchant as usize].cat as usize];
        let usd = (c.median * exp(c.sigma * self.rng.normal())).clamp(c.min, c.max);
        let cur = self.world.cur_of(merchant);
        self.minor_units(usd * CURS[cur].fx, cur, c.charm)
    }

    /// Major units of currency `cur` to minor units on its price step,
    /// sometimes as a charm price (.99).
    fn minor_units(&mut self, major: f64, cur: usize, charm: f64) -> i64 {
        let cu = &CURS[cur];
        let minor = (major * pow10(cu.digits)).round() as i64;
        let mut minor = ((minor + cu.step / 2) / cu.step * cu.step).max(cu.step);
        if charm > 0.0 && cu.digits == 2 && self.rng.chance(charm) {
            minor = (minor / 100).max(1) * 100 - 1;
        }
        minor
    }

    /// Seconds from authorization to clearing.
    fn clearing_delay(&mut self, cat: usize) -> u32 {
        let r = self.rng.f64();
        let hours = if cat == HOTELS {
            self.rng.range(24.0, 72.0)
        } else if r < 0.12 {
            self.rng.range(5.0 / 60.0, 1.5)
        } else if r < 0.88 {
            self.rng.range(6.0, 36.0)
        } else {
            self.rng.range(36.0, 72.0)
        };
        (hours * 3600.0) as u32
    }

    /// What the purchase clears for: tips on bills, hotel incidentals.
    fn cleared_amount(&mut self, p: &Purchase) -> i64 {
        let m = &self.world.merchants[p.merchant as usize];
        let (cat, city) = (m.cat as usize, &CITIES[m.city as usize]);
        let cu = &CURS[city.cur];
        if CATS[cat].tipped && self.rng.chance(city.tip.0) {
            let pct = self.rng.range(city.tip.1, city.tip.2);
            let mut total = p.amount + ((p.amount as f64 * pct) as i64 + cu.step / 2) / cu.step * cu.step;
            if cu.digits == 2 && self.rng.chance(0.35) {
                total = (total + 99) / 100 * 100;
            }
            total
        } else if cat == HOTELS && self.rng.chance(0.5) {
            let f = self.rng.range(0.85, 1.25);
            ((p.amount as f64 * f) as i64 / cu.step * cu.step).max(cu.step)
        } else {
            p.amount
        }
    }

    /// Runs an action due at `due` (seconds after start). Returns the
    /// event it emits, its card and whether it may be duplicated.
    fn fire(&mut self, due: u32, action: Action) -> Option<(pb::CardEvent, u32, bool)> {
        let card = action.card();
        let block = self.blocked[card as usize];
        if let Action::Dup { event, .. } = action {
            if block == due {
                self.blocked[card as usize] = 0;
            }
            self.now = due;
            return Some((*event, card, false));
        }
        if block != 0 && due <= block {
            // The card's duplicate is still to come: wait for it.
            self.push(block, action);
            return None;
        }
        self.now = due;
        let abs = self.start + i64::from(due);
        match action {
            Action::Auth(p) => {
                let m = &self.world.merchants[p.merchant as usize];
                let (cat, cur) = (m.cat as usize, self.world.cur_of(p.merchant));
                let auth = if cat == FUEL && self.rng.chance(FUEL_PREAUTH) {
                    let cu = &CURS[cur];
                    nice_minor(self.rng.pick(&[100.0, 125.0, 150.0, 175.0]) * cu.fx, cu.digits).max(p.amount)
                } else {
                    p.amount
                };
                let ev = self.purchase_event(pb::EventKind::Authorization, &p, auth, cur, abs);
                if self.rng.chance(self.world.reversal_p[cat]) {
                    let delay =
                        if self.rng.chance(0.5) { self.rng.int(60, 1800) } else { self.rng.int(1800, 36 * 3600) };
                    self.push(due + delay as u32, Action::Reverse(Purchase { amount: auth, ..p }));
                } else {
                    let cleared = self.cleared_amount(&p);
                    let delay = self.clearing_delay(cat);
                    self.push(due + delay, Action::Clear { p, cleared, force_post: false });
                }
                Some((ev, card, true))
            }
            Action::Clear { p, cleared, force_post } => {
                let cur = self.world.cur_of(p.merchant);
                if !force_post && self.mismatch_debt > 0 {
                    // R1: a clearing in another currency than its authorization.
                    self.mismatch_debt -= 1;
                    let other = (cur + 1 + self.rng.index(CURS.len() - 1)) % CURS.len();
                    let major = cleared as f64 / pow10(CURS[cur].digits) * CURS[other].fx / CURS[cur].fx;
                    let amount = self.minor_units(major, other, 0.0);
                    let ev = self.purchase_event(pb::EventKind::Clearing, &p, amount, other, abs);
                    return Some((ev, card, false));
                }
                let ev = self.purchase_event(pb::EventKind::Clearing, &p, cleared, cur, abs);
                let cat = self.world.merchants[p.merchant as usize].cat as usize;
                if self.rng.chance(self.world.refund_p[cat]) {
                    let step = CURS[cur].step;
                    let part = |x: i64, f: f64| ((x as f64 * f) as i64 / step * step).max(step);
                    let r = self.rng.f64();
                    let (amount, then) = if r < 0.5 {
                        (cleared, 0)
                    } else if r < 0.85 {
                        (part(cleared, self.rng.range(0.1, 0.9)), 0)
                    } else {
                        let first = part(cleared, self.rng.range(0.2, 0.5));
                        (first, part(cleared - first, self.rng.range(0.2, 0.8)))
                    };
                    let u = self.rng.f64();
                    let delay = 86_400.0 * (1.0 + 20.0 * u * u);
                    self.push(due + delay as u32, Action::Refund { p, amount, then });
                }
                Some((ev, card, true))
            }
            Action::Reverse(p) => {
                let cur = self.world.cur_of(p.merchant);
                let mut ev = self.purchase_event(pb::EventKind::AuthReversal, &p, p.amount, cur, abs);
                if self.rng.chance(0.3) {
                    ev.amount = None;
                    ev.currency = None;
                }
                Some((ev, card, true))
            }
            Action::Refund { p, amount, then } => {
                let cur = self.world.cur_of(p.merchant);
                let ev = self.purchase_event(pb::EventKind::Refund, &p, amount, cur, abs);
                if then > 0 {
                    let delay = self.rng.int(86_400, 10 * 86_400) as u32;
                    self.push(due + delay, Action::Refund { p, amount: then, then: 0 });
                }
                Some((ev, card, true))
            }
            Action::Activate { card, offer } => {
                let home = &CITIES[self.world.card_city(card)];
                let mut ev = self.event(pb::EventKind::Activation, card, abs, home.offset_min);
                ev.offer_id = Some(self.offers[offer as usize].id.clone());
                if !self.offers[offer as usize].sample.is_empty() && self.rng.chance(ACTIVATION_SHOPS) {
                    for _ in 0..self.rng.int(1, 3) {
                        let sample = &self.offers[offer as usize].sample;
                        let merchant = sample[self.rng.skewed(sample.len())];
                        let when = self.shop_time_after(abs, merchant);
                        let amount = self.sample_amount(merchant);
                        let p = Purchase { tx: self.new_tx(), amount, card, merchant };
                        self.push((when - self.start) as u32, Action::Auth(p));
                    }
                }
                Some((ev, card, true))
            }
            Action::Dup { .. } => unreachable!("handled above"),
        }
    }

    /// A time in the next days at which people shop at `merchant`: a day
    /// 0–3 days ahead and a local hour drawn from its category's rhythm.
    fn shop_time_after(&mut self, abs: i64, merchant: u32) -> i64 {
        let m = &self.world.merchants[merchant as usize];
        let off = i64::from(CITIES[m.city as usize].offset_min) * 60;
        let hour = self.rng.weighted(&self.world.hour_weights[m.cat as usize]) as i64;
        let local = abs + off;
        let day = local - local.rem_euclid(86_400) + self.rng.int(0, 3) * 86_400;
        let t = day + hour * 3600 + self.rng.int(0, 3599) - off;
        if t <= abs + 900 { t + 86_400 } else { t }
    }

    fn event(&mut self, kind: pb::EventKind, card: u32, abs: i64, offset_min: i32) -> pb::CardEvent {
        let id = self.next_event;
        self.next_event += 1;
        pb::CardEvent {
            event_id: Some(prefixed("e-", id)),
            kind: kind as i32,
            card_token: Some(self.world.card_token(card)),
            occurred_at: Some(timestamp(abs, offset_min)),
            ..Default::default()
        }
    }

    fn purchase_event(
        &mut self,
        kind: pb::EventKind,
        p: &Purchase,
        amount: i64,
        cur: usize,
        abs: i64,
    ) -> pb::CardEvent {
        let m = &self.world.merchants[p.merchant as usize];
        let city = &CITIES[m.city as usize];
        let mut ev = self.event(kind, p.card, abs, city.offset_min);
        let m = &self.world.merchants[p.merchant as usize];
        ev.network = self.world.card_network(p.card) as i32 + 1;
        ev.transaction_id = Some(prefixed("tx-", p.tx));
        ev.amount = Some(format_minor(amount, CURS[cur].digits));
        ev.currency = Some(CURS[cur].code.to_string());
        ev.merchant = Some(pb::Merchant {
            mid: Some(m.mid.clone()),
            mcc: Some(CATS[m.cat as usize].mcc.to_string()),
            country: Some(city.country.to_string()),
            name: Some(m.name.clone()),
        });
        ev
    }

    /// A deliberately bad record (R1), or `None` when the bad kind is the
    /// currency mismatch, which a later clearing carries.
    fn bad_record(&mut self, kind: Defect) -> Option<SimRecord> {
        if kind == Defect::CurrencyMismatch {
            self.mismatch_debt += 1;
            return None;
        }
        if kind == Defect::RandomBytes {
            return Some(SimRecord::Garbage(self.random_garbage()));
        }
        // A plausible purchase now, by a card with no duplicate pending.
        let at = self.now;
        let (merchant, city) = self.pick_merchant(at);
        let mut card = None;
        for _ in 0..4 {
            let c = self.pick_card(city);
            if self.blocked[c as usize] == 0 {
                card = Some(c);
                break;
            }
        }
        let Some(card) = card else { return Some(SimRecord::Garbage(self.random_garbage())) };
        let amount = self.sample_amount(merchant);
        let p = Purchase { tx: self.new_tx(), amount, card, merchant };
        let cur = self.world.cur_of(merchant);
        let ev_kind = if self.rng.chance(0.7) { pb::EventKind::Authorization } else { pb::EventKind::Clearing };
        let mut ev = self.purchase_event(ev_kind, &p, amount, cur, self.start + i64::from(at));
        match kind {
            Defect::TruncatedJson => {
                let line = cardlink_wire::event_to_json(&ev).into_bytes();
                for _ in 0..8 {
                    let cut = self.rng.int(line.len() as i64 / 3, line.len() as i64 - 2) as usize;
                    if undecodable(&line[..cut]) {
                        return Some(SimRecord::Garbage(line[..cut].to_vec()));
                    }
                }
                return Some(SimRecord::Garbage(self.random_garbage()));
            }
            Defect::MissingAmount => ev.amount = None,
            Defect::TooManyDecimals => {
                let digits = CURS[cur].digits as usize + 1;
                let mut s = (amount / pow10(CURS[cur].digits) as i64).to_string();
                s.push('.');
                for _ in 0..digits {
                    s.push(char::from(b'0' + self.rng.int(1, 9) as u8));
                }
                ev.amount = Some(s);
            }
            Defect::BadCurrency => {
                ev.currency = Some(self.rng.pick(&["USDX", "US$", "usd", "EURO", "DOLLAR"]).to_string());
            }
            Defect::BadMcc => {
                let mcc = ev.merchant.as_ref().and_then(|m| m.mcc.clone()).unwrap_or_default();
                let bad = if self.rng.chance(0.8) {
                    let mut b = mcc.into_bytes();
                    let i = self.rng.index(b.len().max(1)).min(b.len().saturating_sub(1));
                    if let Some(c) = b.get_mut(i) {
                        *c = *self.rng.pick(b"ABCDEFX");
                    }
                    String::from_utf8(b).expect("ASCII")
                } else {
                    mcc[..3.min(mcc.len())].to_string()
                };
                if let Some(m) = ev.merchant.as_mut() {
                    m.mcc = Some(bad);
                }
            }
            Defect::UnknownKind => ev.kind = *self.rng.pick(&[6, 7, 9]),
            Defect::RawPan => ev.card_token = Some(self.fake_pan(self.world.card_network(card))),
            Defect::NoOffset => {
                let t = ev.occurred_at.take().unwrap_or_default();
                let local = &t[..19.min(t.len())];
                ev.occurred_at = Some(match self.rng.index(3) {
                    0 => local.to_string(),
                    1 => local.replace('T', " "),
                    _ => local[..10].to_string(),
                });
            }
            Defect::RandomBytes | Defect::CurrencyMismatch => unreachable!("handled above"),
        }
        Some(SimRecord::Event(ev))
    }

    /// Bytes that are neither JSON nor protobuf, with no control bytes
    /// (so no line break of any convention) and no digits (so no card
    /// number can hide in them).
    fn random_garbage(&mut self) -> Vec<u8> {
        for _ in 0..16 {
            let len = self.rng.int(6, 48) as usize;
            let mut b = Vec::with_capacity(len);
            while b.len() < len {
                let x = self.rng.next_u64() as u8;
                if x >= 0x20 && x != 0x7F && !x.is_ascii_digit() {
                    b.push(x);
                }
            }
            if undecodable(&b) {
                return b;
            }
        }
        // An unterminated varint: never a protobuf message, never JSON.
        vec![0xFF; 12]
    }

    /// A Luhn-valid card number of the network (index into `NETWORKS`).
    fn fake_pan(&mut self, network: usize) -> String {
        let (prefix, len): (String, usize) = match network {
            0 => ("4".into(), 16),
            1 => (format!("5{}", self.rng.int(1, 5)), 16),
            2 => (self.rng.pick(&["34", "37"]).to_string(), 15),
            _ => ("6011".into(), 16),
        };
        let mut digits: Vec<u8> = prefix.bytes().map(|b| b - b'0').collect();
        while digits.len() < len - 1 {
            digits.push(self.rng.below(10) as u8);
        }
        // Luhn: double every second digit from the right, the check digit
        // being the rightmost.
        let sum: u32 = digits
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &d)| {
                let d = u32::from(d);
                if i % 2 == 0 {
                    let x = d * 2;
                    if x > 9 { x - 9 } else { x }
                } else {
                    d
                }
            })
            .sum();
        digits.push(((10 - sum % 10) % 10) as u8);
        digits.iter().map(|d| char::from(b'0' + d)).collect()
    }
}

/// True when neither the JSON nor the protobuf decoder accepts `bytes`,
/// and they can sit on a line of their own.
fn undecodable(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && !bytes.contains(&b'\n')
        && !bytes.contains(&b'\r')
        && cardlink_wire::decode_json_event(bytes).is_err()
        && cardlink_wire::decode_proto_event(bytes).is_err()
}

/// The mean arrival rate (per second) that spreads `config.events` records
/// over `config.days` days, given what each arrival leads to and how late.
fn base_rate(config: &SimConfig, activation_share: f64, malformed_pm: u32, duplicate_pm: u32) -> f64 {
    let rev = REVERSAL_SHARE;
    // Records per purchase: auth, clearing or reversal, refunds.
    let refunds = REFUND_SHARE * 1.15;
    let r_p = (1.0 - FORCE_POST) * 2.0 + FORCE_POST + refunds;
    let act_purchases = ACTIVATION_SHOPS * 2.0;
    let r_a = (1.0 - activation_share) * r_p + activation_share * (1.0 + act_purchases * r_p);
    // Record-seconds that fall after the end because follow-ups come late.
    let lag_clear = 0.12 * 2_850.0 + 0.76 * 21.0 * 3600.0 + 0.12 * 54.0 * 3600.0;
    let lag_rev = 0.5 * 930.0 + 0.5 * 18.9 * 3600.0;
    let lag_refund = lag_clear + 86_400.0 * (1.0 + 20.0 / 3.0) + 0.15 * 5.5 * 86_400.0;
    let d_p = (1.0 - FORCE_POST) * ((1.0 - rev) * lag_clear + rev * lag_rev) + refunds * lag_refund;
    let lag_act = 2.0 * 86_400.0;
    let d_a = (1.0 - activation_share) * d_p + activation_share * act_purchases * (r_p * lag_act + d_p);
    let period = f64::from(config.days.clamp(1, crate::MAX_DAYS)) * 86_400.0;
    let per_arrival = (period * r_a - d_a).max(0.5 * period * r_a);
    let bad = f64::from(malformed_pm) / 1000.0 * 0.9;
    let normal = config.events as f64 * (1.0 - bad) / (1.0 + f64::from(duplicate_pm) / 1000.0);
    (normal / per_arrival).max(1e-9)
}

impl Iterator for Simulator {
    type Item = SimRecord;

    fn next(&mut self) -> Option<SimRecord> {
        if self.emitted >= self.total {
            return None;
        }
        if self.malformed_pm > 0 && self.rng.below(1000) < u64::from(self.malformed_pm) {
            let kind = DEFECTS[self.rng.weighted(&self.bad_weights)].0;
            if let Some(record) = self.bad_record(kind) {
                self.emitted += 1;
                return Some(record);
            }
        }
        loop {
            let Some((ev, card, dupable)) = self.step() else { continue };
            if dupable && self.duplicate_pm > 0 {
                if self.rng.below(1000) < u64::from(self.duplicate_pm) {
                    self.dup_debt += 1;
                }
                if self.dup_debt > 0 && self.blocked[card as usize] == 0 {
                    self.dup_debt -= 1;
                    let due = self.now + self.rng.int(2, 90) as u32;
                    self.blocked[card as usize] = due;
                    self.push(due, Action::Dup { card, event: Box::new(ev.clone()) });
                }
            }
            self.emitted += 1;
            return Some(SimRecord::Event(ev));
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.total - self.emitted).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Simulator {}
impl std::iter::FusedIterator for Simulator {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Largest number of queued actions while generating `config`.
    fn max_queued(config: &SimConfig) -> usize {
        let mut sim = Simulator::new(config);
        let mut max = 0;
        while sim.next().is_some() {
            max = max.max(sim.queue.len());
        }
        max
    }

    #[test]
    fn memory_is_bounded_by_the_window_not_the_feed() {
        // Same rate of events, four times the period: the queue does not grow.
        let short = SimConfig { events: 60_000, days: 20, ..SimConfig::default() };
        let long = SimConfig { events: 240_000, days: 80, ..SimConfig::default() };
        let (a, b) = (max_queued(&short), max_queued(&long));
        assert!(b < a + a / 4, "{a} queued for the short feed, {b} for the long one");
        assert!(a < 8_000, "{a}");
    }

    #[test]
    fn the_queue_pops_in_due_order_across_minutes_and_the_ring() {
        let mut q = Schedule::new();
        let dues = [5u32, 3_600, 59, 61, 60, 7, 4_000_000, 4_000_000, 120, 86_400 * 60, 0];
        for (i, &d) in dues.iter().enumerate() {
            q.push(d, Action::Activate { card: i as u32, offer: 0 });
        }
        let mut got = Vec::new();
        while let Some((due, a)) = q.pop_due_by(u32::MAX - 1) {
            got.push((due, a.card()));
            if got.len() == 3 {
                // Pushing behind the horizon still comes out in order.
                q.push(100, Action::Activate { card: 99, offer: 0 });
            }
        }
        let mut want: Vec<(u32, u32)> = dues.iter().enumerate().map(|(i, &d)| (d, i as u32)).collect();
        want.push((100, 99));
        want.sort();
        assert_eq!(got, want);
        assert_eq!(q.len(), 0);
    }
}
