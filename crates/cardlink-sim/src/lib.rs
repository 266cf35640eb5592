//! A deterministic generator of realistic card-network feeds, and of an
//! offers file that matches them, for cardlink's demos, tests and benchmarks.
//!
//! ```
//! use cardlink_sim::{SimConfig, SimRecord, Simulator};
//!
//! let config = SimConfig { events: 1_000, ..SimConfig::default() };
//! let records: Vec<SimRecord> = Simulator::new(&config).collect();
//! assert_eq!(records.len(), 1_000);
//! let offers = cardlink_sim::offers(&config);
//! assert_eq!(offers.len(), config.offers as usize);
//! ```
//!
//! # What the feed looks like
//!
//! - **Cards** are network tokens (`tok_v_3f09a1c2`: `v` Visa, `m`
//!   Mastercard, `a` Amex, `d` Discover; about 50/30/12/8 %). Each card
//!   lives in a city and mostly shops there; a few cards spend far more
//!   than the rest.
//! - **Merchants** (`config.merchants`) are chain stores (`Blue Bottle #12`)
//!   and independent shops (`Harbor Grill`) in 16 cities: eight in the US
//!   (most of the volume, in USD), Toronto (CAD), London (GBP), Paris and
//!   Berlin (EUR), Tokyo (JPY), Seoul (KRW), Kuwait City (KWD) and Sydney
//!   (AUD). Each has a mid (`M000104729`), a real MCC (5812 restaurants,
//!   5813 bars, 5814 fast food, 5499 coffee, 5411 groceries, 5541 fuel,
//!   5912 pharmacies, 5311 department stores, 5732 electronics, 4121 rides,
//!   7832 cinemas, 5999 shops, 4511 airlines, 7011 hotels, 5942 books).
//!   Cities use fixed UTC offsets, those in force in May (New York -04:00,
//!   London +01:00, Tokyo +09:00, ...): no clock change is simulated.
//! - **Time** runs from `config.start` over about `config.days` days.
//!   Purchases follow each city's local rhythm (coffee in the morning,
//!   lunch and dinner peaks, bars late, quiet nights, busier weekends for
//!   restaurants and cinemas). `occurred_at` is in the merchant's local
//!   offset (a card's own city for activations).
//! - **Amounts** are log-normal per category in the currency's minor units
//!   (JPY and KRW whole, KWD three decimals).
//! - **Lifecycle**: an AUTHORIZATION, then a CLEARING minutes to three days
//!   later (tips on restaurant, bar and ride bills; fuel pre-authorizations
//!   that clear lower; hotel bills that change), or an AUTH_REVERSAL for
//!   about 3 %. About 4 % of cleared purchases get one or two REFUNDs
//!   later, about 1 % of clearings come without an authorization, and cards
//!   ACTIVATE offers that need it, often shopping there in the next days.
//! - **Duplicates**: `duplicate_per_mille` of the events are sent again
//!   (same event id and content) within 90 seconds.
//! - **Bad records**: `malformed_per_mille` of the records break R1:
//!   [`SimRecord::Garbage`] (truncated JSON, random bytes) or events with
//!   no amount, too many decimals, a bad currency or MCC, an unknown kind
//!   (a kind number outside the schema: `"kind":"6"` in JSON),
//!   a raw card number as token (the only Luhn-valid digit strings in the
//!   feed), a timestamp without offset, or a clearing in another currency
//!   than its authorization.
//! - **Order**: the feed is ordered by time (duplicates come up to 90 s
//!   late) and every card's valid events are in order of `occurred_at`.
//!
//! Generation streams in constant memory: follow-ups wait in a priority
//! queue bounded by the scheduling window (weeks), plus four bytes per
//! card. The generator uses its own PRNG (xoshiro256** seeded through
//! SplitMix64) and its own `ln`/`exp`, so a configuration gives the same
//! bytes on every run, platform and dependency version.
#![warn(missing_docs)]

mod offers;
mod rng;
mod sim;
mod world;

use std::io::{self, BufWriter, Write};

use cardlink_proto::v1 as pb;
use cardlink_wire::Format;
use chrono::{DateTime, TimeZone, Utc};
use prost::Message;

pub use sim::Simulator;

/// Longest simulated period, in days (about 55 years): longer ones are cut.
pub const MAX_DAYS: u32 = 20_000;

/// What to generate. Counts of zero cards, merchants or days are taken as
/// one; more than [`MAX_DAYS`] days as [`MAX_DAYS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// Seed of every random choice: the same configuration gives the same
    /// feed and offers, byte for byte.
    pub seed: u64,
    /// Records in the feed, duplicates and bad records included.
    pub events: u64,
    /// Distinct cards.
    pub cards: u64,
    /// Distinct merchants.
    pub merchants: u32,
    /// Offers in the offers file.
    pub offers: u32,
    /// Bad records (R1) per thousand records.
    pub malformed_per_mille: u32,
    /// Re-sent events per thousand records.
    pub duplicate_per_mille: u32,
    /// Start of the simulated period.
    pub start: DateTime<Utc>,
    /// Length of the simulated period, in days: the feed's events spread
    /// over about this long.
    pub days: u32,
}

impl Default for SimConfig {
    /// Seed 42; a million events from 50,000 cards at 5,000 merchants; 400
    /// offers; 2 ‰ bad records, 5 ‰ duplicates; 30 days from 2026-05-01.
    fn default() -> Self {
        SimConfig {
            seed: 42,
            events: 1_000_000,
            cards: 50_000,
            merchants: 5_000,
            offers: 400,
            malformed_per_mille: 2,
            duplicate_per_mille: 5,
            start: Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).single().expect("a valid date"),
            days: 30,
        }
    }
}

/// One record of a feed.
#[derive(Debug, Clone, PartialEq)]
// Garbage is rare: boxing every event would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub enum SimRecord {
    /// A card event. Usually valid; a few are deliberately invalid (R1).
    Event(pb::CardEvent),
    /// Bytes that decode neither as a JSON event nor as a protobuf one;
    /// never contain a newline.
    Garbage(Vec<u8>),
}

impl SimRecord {
    /// Appends the record as it appears in a file of `format`: a JSON line
    /// with its newline, or a protobuf message after its varint length.
    pub fn encode_into(&self, format: Format, buf: &mut Vec<u8>) {
        match (format, self) {
            (Format::Json, SimRecord::Event(e)) => {
                buf.extend_from_slice(cardlink_wire::event_to_json(e).as_bytes());
                buf.push(b'\n');
            }
            (Format::Json, SimRecord::Garbage(g)) => {
                buf.extend_from_slice(g);
                buf.push(b'\n');
            }
            (Format::Protobuf, SimRecord::Event(e)) => {
                e.encode_length_delimited(buf).expect("a Vec grows as needed");
            }
            (Format::Protobuf, SimRecord::Garbage(g)) => {
                prost::encoding::encode_varint(g.len() as u64, buf);
                buf.extend_from_slice(g);
            }
        }
    }
}

/// The offers of `config` in the contract's JSON form (section 2): offers
/// on the feed's merchants — chains (all their stores in one currency),
/// single shops, MCCs, countries and a few on any merchant — using every
/// field. Ids look like `blue-bottle-10pct-0007`. Budgets grow with
/// `config.events`, so that some run out during the feed.
pub fn offers(config: &SimConfig) -> Vec<serde_json::Value> {
    let world = world::World::new(config.seed, config.merchants, config.cards);
    offers::build(config, &world).iter().map(offers::OfferSpec::to_json).collect()
}

/// Writes the offers file of `config`: a pretty-printed JSON array of
/// [`offers`], fields in the contract's order.
pub fn write_offers(config: &SimConfig, mut out: impl Write) -> io::Result<()> {
    let world = world::World::new(config.seed, config.merchants, config.cards);
    let mut text = String::new();
    offers::write_pretty(&offers::build(config, &world), &mut text);
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Writes the feed of `config` in `format` — JSON Lines, or protobuf
/// messages each preceded by its varint length (garbage records framed the
/// same way) — and returns the number of records written.
pub fn write_feed(config: &SimConfig, format: Format, out: impl Write) -> io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let mut buf = Vec::with_capacity(512);
    let mut written = 0;
    for record in Simulator::new(config) {
        buf.clear();
        record.encode_into(format, &mut buf);
        out.write_all(&buf)?;
        written += 1;
    }
    out.flush()?;
    Ok(written)
}
