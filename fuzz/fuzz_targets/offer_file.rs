//! An offer file (`cardlink replay --offers`, `cardlink offers publish`;
//! each entry goes through the same `parse_offer` as offers-topic records
//! and admin API bodies). A valid file is then run against a feed that
//! walks every lifecycle step, and its budgets must hold.
#![no_main]

use cardlink_core::{OfferBook, parse_offer_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(offers) = parse_offer_file(data) {
        cardlink_fuzz::exercise(OfferBook::new(offers));
    }
});
