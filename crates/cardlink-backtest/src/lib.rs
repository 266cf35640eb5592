//! Offer backtests: what would these offers have cost on a recorded feed?
//!
//! A [`Backtest`] replays a feed (JSON Lines or length-delimited protobuf,
//! streamed record by record) through the engine of `cardlink-core` once
//! per candidate offer file ("scenario"), in one pass: each record is
//! decoded and validated once, then applied to every scenario's engine
//! with [`cardlink_core::engine::apply_with`], exactly as a replay would
//! apply it (same rules, same order, same budgets). The reward records are
//! folded into per-offer figures as they are made; at the end, each
//! engine's state gives the final values, which are filed by the facts of
//! the purchases that earned them. [`Backtest::finish`] returns a
//! [`Report`], written as JSON with serde or as a self-contained HTML page
//! with [`render_html`].
//!
//! Memory: each scenario holds an engine's state (as a replay does), plus
//! one shared entry (about 100 bytes) per purchase that some scenario
//! rewarded; the feed itself is never held.
#![warn(missing_docs)]

mod flows;
mod html;
mod report;
mod run;
mod summarize;
#[cfg(test)]
mod tests;
mod window;

use std::io::{self, BufRead, Write};

use cardlink_core::engine::Applied;
use cardlink_core::event::{Field, MerchantField};
use cardlink_core::{EventBody, EventKind, Offer, RawEvent, RejectReason, Rejection, validate};
use cardlink_replay::{Frame, RecordReader};
use cardlink_wire::{Format, decode_card_event, decode_json_event};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

pub use html::render_html;
pub use report::*;
pub use window::{Window, WindowError};

use run::{Ctx, Run, Shared};

/// One candidate offer file.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// What the report calls it.
    pub name: String,
    /// Where it came from (the file path, for the report).
    pub source: String,
    /// Its offers, validated.
    pub offers: Vec<Offer>,
}

/// How to run and report.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only events with `occurred_at` in the window take part.
    pub window: Window,
    /// Merchants listed per offer.
    pub top_merchants: usize,
    /// Competing pairs listed per scenario.
    pub top_pairs: usize,
    /// The event file's name, for the report.
    pub events: String,
}

impl Default for Options {
    fn default() -> Self {
        Options { window: Window::default(), top_merchants: 10, top_pairs: 20, events: String::new() }
    }
}

/// Bytes of dead letters buffered before they are written through.
const FLUSH_AT: usize = 256 * 1024;

/// Counts about the feed itself, the same for every scenario.
#[derive(Debug, Clone, Default)]
struct FeedCounts {
    records: u64,
    outside_window: u64,
    processed_by_kind: [u64; 5],
    duplicate: u64,
    rejected_by_reason: [u64; 5],
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    purchases: u64,
    spend: std::collections::BTreeMap<&'static str, Decimal>,
}

/// A backtest in progress: feed it records, then [`Backtest::finish`].
pub struct Backtest {
    options: Options,
    runs: Vec<Run>,
    shared: Shared,
    feed: FeedCounts,
    dead_letters: Option<Box<dyn Write>>,
    dead_buf: Vec<u8>,
}

impl Backtest {
    /// A backtest of these scenarios (at least one), writing rejected
    /// records to `dead_letters` when given.
    pub fn new(scenarios: Vec<Scenario>, options: Options, dead_letters: Option<Box<dyn Write>>) -> Self {
        assert!(!scenarios.is_empty(), "a backtest needs at least one offer file");
        Backtest {
            options,
            runs: scenarios.into_iter().map(|s| Run::new(s.name, s.source, s.offers)).collect(),
            shared: Shared::default(),
            feed: FeedCounts::default(),
            dead_letters,
            dead_buf: Vec::new(),
        }
    }

    /// Processes one record in `format`; `source` names it in a dead letter.
    pub fn feed(&mut self, format: Format, record: &[u8], source: impl FnOnce() -> String) -> io::Result<()> {
        let raw = match format {
            Format::Json => decode_json_event(record),
            Format::Protobuf => decode_card_event(record),
        };
        match raw {
            Ok(raw) => self.feed_raw(&raw, record, source),
            Err(rejection) => {
                self.feed.records += 1;
                self.reject(&rejection, None, record, source);
            }
        }
        if self.dead_buf.len() >= FLUSH_AT {
            self.flush_dead_letters()?;
        }
        Ok(())
    }

    /// Processes one decoded event; `record` is its bytes, for a dead letter.
    pub fn feed_raw(&mut self, raw: &RawEvent<'_>, record: &[u8], source: impl FnOnce() -> String) {
        self.feed.records += 1;
        let event = match validate(raw) {
            Ok(event) => event,
            Err(rejection) => return self.reject(&rejection, Some(raw), record, source),
        };
        let instant = event.occurred_at.with_timezone(&Utc);
        if !self.options.window.contains(instant) {
            self.feed.outside_window += 1;
            return;
        }
        let name = match &raw.merchant {
            MerchantField::Object(m) => match &m.name {
                Field::Str(s) => Some(&**s),
                _ => None,
            },
            _ => None,
        };
        let ctx = Ctx::new(&event, name);
        // Every scenario sees the same cards, transactions and event ids
        // (only rewards differ), so the first one's outcome is the feed's.
        let mut outcome = None;
        for run in &mut self.runs {
            let applied = run.apply(&event, &ctx, &mut self.shared);
            outcome.get_or_insert(applied);
        }
        match outcome.expect("at least one scenario") {
            Ok(Applied::Processed) => {
                let kind = EventKind::ALL.iter().position(|k| *k == event.kind()).expect("listed");
                self.feed.processed_by_kind[kind] += 1;
                self.feed.first = Some(self.feed.first.map_or(instant, |f| f.min(instant)));
                self.feed.last = Some(self.feed.last.map_or(instant, |l| l.max(instant)));
                if let EventBody::Authorization(p) | EventBody::Clearing(p) = event.body
                    && self.runs[0].opened
                {
                    self.feed.purchases += 1;
                    *self.feed.spend.entry(p.money.currency.code()).or_default() += p.money.amount;
                }
            }
            Ok(Applied::Duplicate) => self.feed.duplicate += 1,
            Ok(Applied::Held) => unreachable!("the whole budget never holds an event"),
            Err(rejection) => self.reject(&rejection, Some(raw), record, source),
        }
    }

    fn reject(
        &mut self,
        rejection: &Rejection,
        raw: Option<&RawEvent<'_>>,
        record: &[u8],
        source: impl FnOnce() -> String,
    ) {
        let i = RejectReason::ALL.iter().position(|r| *r == rejection.reason).expect("listed");
        self.feed.rejected_by_reason[i] += 1;
        if self.dead_letters.is_some() {
            let d = cardlink_wire::dead_letter(rejection, raw, record, source());
            cardlink_wire::write_dead_letter_json(&d, &mut self.dead_buf);
        }
    }

    fn flush_dead_letters(&mut self) -> io::Result<()> {
        if let Some(w) = &mut self.dead_letters {
            w.write_all(&self.dead_buf)?;
        }
        self.dead_buf.clear();
        Ok(())
    }

    /// Backtests every record of `input`, calling `progress` now and then
    /// with the number of records read so far.
    pub fn run(
        &mut self,
        format: Format,
        input: impl BufRead,
        source_name: &str,
        mut progress: impl FnMut(u64),
    ) -> io::Result<()> {
        let mut reader = RecordReader::new(input, format);
        let mut n = 0u64;
        while let Some(frame) = reader.next_record()? {
            n += 1;
            match frame {
                Frame::Record { bytes, position } => {
                    self.feed(format, bytes, || format!("{source_name}:{position}"))?;
                }
                Frame::Broken { bytes, position, why } => {
                    self.feed.records += 1;
                    self.reject(&Rejection::malformed(why), None, &bytes, || format!("{source_name}:{position}"));
                }
            }
            if n % 65_536 == 0 {
                progress(n);
            }
        }
        progress(n);
        Ok(())
    }

    /// Writes out the dead letters and builds the report.
    pub fn finish(mut self) -> io::Result<Report> {
        self.flush_dead_letters()?;
        if let Some(w) = &mut self.dead_letters {
            w.flush()?;
        }
        Ok(summarize::report(&self.options, &self.feed, &mut self.runs, &mut self.shared))
    }
}
