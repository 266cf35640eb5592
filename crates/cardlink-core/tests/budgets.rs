//! R6 with leased budgets: the [`Budgets`] hook a partitioned pipeline uses
//! to spend only the part of a budget leased to a partition, and to hold an
//! event back until more is leased.

mod common;

use cardlink_core::book::OfferIdx;
use cardlink_core::{
    Applied, Budgets, CardStore, OfferBook, RawEvent, RewardUpdate, apply_with, event::validate, parse_offer_file,
};
use common::{auth, clearing, offer, refund};
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// A lease of `lease` per budgeted offer; `used` is what the rewards spent
/// from it. `final_` says whether a shortfall means the budget is used up
/// (go on, cut) or that more must be leased first (hold).
struct Lease {
    lease: Decimal,
    used: Decimal,
    final_: bool,
    shortfalls: Vec<(Decimal, Decimal)>,
}

impl Budgets for Lease {
    fn left(&self, _: &OfferBook, _: OfferIdx, own: Decimal) -> Decimal {
        self.lease - (self.used - own)
    }
    fn short(&mut self, _: &OfferBook, _: OfferIdx, wanted: Decimal, left: Decimal) -> bool {
        self.shortfalls.push((wanted, left));
        self.final_
    }
    fn spent(&mut self, _: &OfferBook, _: OfferIdx, delta: Decimal) {
        self.used += delta;
    }
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// One step: an event, the lease at that moment and whether a shortfall is
/// final. Expected: the outcome and the records, as `"<STATUS> <value>"`.
struct Step {
    event: Value,
    lease: &'static str,
    final_: bool,
}

fn check(offers: &[Value], steps: &[Step], expected: &[&str]) {
    let offers = parse_offer_file(serde_json::to_string(offers).unwrap().as_bytes()).unwrap();
    let mut book = OfferBook::new(offers);
    let mut cards = CardStore::default();
    let mut budgets = Lease { lease: Decimal::ZERO, used: Decimal::ZERO, final_: false, shortfalls: Vec::new() };
    let mut lines = Vec::new();
    for step in steps {
        budgets.lease = dec(step.lease);
        budgets.final_ = step.final_;
        let text = step.event.to_string();
        let raw: RawEvent<'_> = serde_json::from_str(&text).unwrap();
        let event = validate(&raw).unwrap();
        let mut records = Vec::new();
        let applied = apply_with(&mut book, &mut cards, &event, &mut budgets, &mut |u: &RewardUpdate<'_>| {
            records.push(format!("{} {} {}", u.event_id, u.status.as_str(), u.value));
        })
        .unwrap();
        match applied {
            Applied::Held => {
                assert!(records.is_empty(), "a held event emits nothing");
                lines.push(format!("{} HELD", step.event["event_id"].as_str().unwrap()));
            }
            Applied::Duplicate => lines.push(format!("{} DUPLICATE", step.event["event_id"].as_str().unwrap())),
            Applied::Processed => lines.extend(records),
        }
        // The lease's usage is the book's: every live change was told.
        let (_, slot) = book.slots().next().unwrap();
        if slot.offer.budget.is_some() {
            assert_eq!(budgets.used, slot.usage.used, "spent() saw every change");
        } else {
            assert!(budgets.used.is_zero() && budgets.shortfalls.is_empty(), "an offer without budget is not leased");
        }
        assert!(budgets.used <= budgets.lease || budgets.used.is_zero(), "R6 within the lease");
    }
    assert_eq!(lines, expected);
}

fn ten_percent_budget() -> Vec<Value> {
    vec![offer("ten", json!({"percent": "10"}), json!({"budget": "100.00"}))]
}

#[test]
fn r6_a_short_lease_holds_the_event_and_changes_nothing() {
    // Held with 1.00 leased; applied again with 5.00 it is processed, not
    // a duplicate (R2): the held attempt left no trace.
    check(
        &ten_percent_budget(),
        &[
            Step { event: auth("a1", "t1", "20.00"), lease: "1.00", final_: false },
            Step { event: auth("a1", "t1", "20.00"), lease: "5.00", final_: false },
        ],
        &["a1 HELD", "a1 PENDING 2.00"],
    );
}

#[test]
fn r4_r6_a_final_shortfall_cuts_to_the_lease() {
    check(
        &ten_percent_budget(),
        &[
            Step { event: auth("a1", "t1", "20.00"), lease: "1.50", final_: true },
            // Nothing left of the lease and final: not eligible (R3).
            Step { event: auth("a2", "t2", "20.00"), lease: "1.50", final_: true },
        ],
        &["a1 PENDING 1.50"],
    );
}

#[test]
fn r9_a_clearing_above_the_authorization_waits_for_more_lease() {
    check(
        &ten_percent_budget(),
        &[
            Step { event: auth("a1", "t1", "20.00"), lease: "2.00", final_: false },
            // 30.00 cleared wants 3.00; 2.00 leased (the reward's own 2.00
            // counts as available).
            Step { event: clearing("c1", "t1", "30.00"), lease: "2.00", final_: false },
            Step { event: clearing("c1", "t1", "30.00"), lease: "3.00", final_: false },
            // R11 frees value: it never waits, whatever is leased beyond.
            Step { event: refund("r1", "t1", "10.00"), lease: "3.00", final_: false },
        ],
        &["a1 PENDING 2.00", "c1 HELD", "c1 CONFIRMED 3.00", "r1 CONFIRMED 2.00"],
    );
}

#[test]
fn r9_a_clearing_below_the_authorization_never_waits() {
    check(
        &ten_percent_budget(),
        &[
            Step { event: auth("a1", "t1", "20.00"), lease: "2.00", final_: false },
            Step { event: clearing("c1", "t1", "15.00"), lease: "2.00", final_: false },
        ],
        &["a1 PENDING 2.00", "c1 CONFIRMED 1.50"],
    );
}

#[test]
fn r6_offers_without_budget_never_ask_the_lease() {
    check(
        &[offer("free", json!({"percent": "10"}), json!({}))],
        &[Step { event: auth("a1", "t1", "20.00"), lease: "0.00", final_: false }],
        &["a1 PENDING 2.00"],
    );
}
