//! Replays recorded card events through the engine (contract section 6).
//!
//! The file adapter of cardlink: it frames records out of JSON Lines or
//! length-delimited protobuf streams, hands each to the pure core, and
//! writes reward records, dead letters and the ledger. Files are streamed
//! record by record, never held whole in memory.
#![warn(missing_docs)]

mod framing;
mod output;
mod parallel;
mod summary;

use std::io::{self, BufRead, Write};
use std::time::{Duration, Instant};

use cardlink_core::{Engine, Ledger, OfferBook, Outcome, RewardUpdate};
use cardlink_observe::metrics as observe;
use cardlink_wire::{Format, decode_card_event, decode_json_event};

pub use framing::{Frame, RecordReader};
pub use summary::{RewardTally, Summary};

/// Bytes buffered before an output is written through.
const FLUSH_AT: usize = 256 * 1024;

/// Drives the engine record by record and writes what it produces.
pub struct Replayer {
    /// The engine; its state is the run's state.
    pub engine: Engine,
    rewards: Option<Box<dyn Write + Send>>,
    dead_letters: Option<Box<dyn Write + Send>>,
    reward_buf: Vec<u8>,
    dead_buf: Vec<u8>,
    tally: RewardTally,
}

impl Replayer {
    /// A replayer over these offers, writing rewards and dead letters where
    /// asked (`None` discards them).
    pub fn new(
        book: OfferBook,
        rewards: Option<Box<dyn Write + Send>>,
        dead_letters: Option<Box<dyn Write + Send>>,
    ) -> Self {
        Replayer {
            engine: Engine::new(book),
            rewards,
            dead_letters,
            reward_buf: Vec::with_capacity(FLUSH_AT + 4096),
            dead_buf: Vec::new(),
            tally: RewardTally::default(),
        }
    }

    /// The same replayer, its cards remembering event ids and closed
    /// transactions for `retention` (see [`cardlink_core::state::Retention`]).
    /// Call before the first record.
    pub fn with_retention(mut self, retention: cardlink_core::state::Retention) -> Self {
        self.engine.cards = cardlink_core::CardStore::with_retention(retention);
        self
    }

    /// Processes one record in `format`; `source` names it in a dead letter.
    pub fn feed(&mut self, format: Format, record: &[u8], source: impl FnOnce() -> String) -> io::Result<()> {
        let write_rewards = self.rewards.is_some();
        let buf = &mut self.reward_buf;
        let tally = &mut self.tally;
        let mut sink = |u: &RewardUpdate<'_>| {
            tally.count(u);
            observe::reward(u);
            if write_rewards {
                cardlink_wire::write_reward_json(u, buf);
            }
        };
        let outcome;
        let timer = observe::match_timer();
        let raw = match format {
            Format::Json => decode_json_event(record),
            Format::Protobuf => decode_card_event(record),
        };
        match raw {
            Ok(raw) => {
                outcome = self.engine.process(&raw, &mut sink);
                if observe::enabled() {
                    record_outcome(&raw, &outcome);
                }
                if let Outcome::Rejected(rejection) = &outcome {
                    self.dead_letter(rejection, Some(&raw), record, source);
                }
            }
            Err(rejection) => self.malformed(&rejection, record, source),
        }
        observe::matched(timer);
        self.flush_full()
    }

    /// Writes out a buffer that has filled up.
    #[inline]
    fn flush_full(&mut self) -> io::Result<()> {
        if self.reward_buf.len() >= FLUSH_AT {
            self.flush_rewards()?;
        }
        if self.dead_buf.len() >= FLUSH_AT {
            self.flush_dead_letters()?;
        }
        Ok(())
    }

    /// Counts and dead-letters a record that could not be decoded or framed.
    fn malformed(&mut self, rejection: &cardlink_core::Rejection, record: &[u8], source: impl FnOnce() -> String) {
        self.engine.count_malformed();
        observe::event_rejected(rejection.reason);
        self.dead_letter(rejection, None, record, source);
    }

    fn dead_letter(
        &mut self,
        rejection: &cardlink_core::Rejection,
        raw: Option<&cardlink_core::RawEvent<'_>>,
        record: &[u8],
        source: impl FnOnce() -> String,
    ) {
        if self.dead_letters.is_some() {
            let d = cardlink_wire::dead_letter(rejection, raw, record, source());
            cardlink_wire::write_dead_letter_json(&d, &mut self.dead_buf);
        }
    }

    fn flush_rewards(&mut self) -> io::Result<()> {
        if let Some(w) = &mut self.rewards {
            w.write_all(&self.reward_buf)?;
        }
        self.reward_buf.clear();
        Ok(())
    }

    fn flush_dead_letters(&mut self) -> io::Result<()> {
        if let Some(w) = &mut self.dead_letters {
            w.write_all(&self.dead_buf)?;
        }
        self.dead_buf.clear();
        Ok(())
    }

    /// Replays every record of `input`, calling `progress` now and then with
    /// the number of records read so far.
    ///
    /// Records are read, decoded and validated on a second thread while
    /// this one applies them in file order, and reward records are written
    /// on a third: the result is exactly that of [`Replayer::feed`] on each
    /// record in turn.
    pub fn run(
        &mut self,
        format: Format,
        input: impl BufRead + Send,
        source_name: &str,
        progress: impl FnMut(u64),
    ) -> io::Result<()> {
        let dead_letters = self.dead_letters.is_some();
        let Some(mut rewards) = self.rewards.take() else {
            let mut applier = Applier { replayer: self, source_name, progress, queue: None };
            return parallel::run(format, input, source_name, dead_letters, &mut applier);
        };
        // Records of earlier `feed` calls go first.
        let earlier = rewards.write_all(&self.reward_buf);
        self.reward_buf.clear();
        let (result, rewards) = std::thread::scope(|scope| {
            let (mut queue, writer) = output::spawn(scope, rewards);
            let result = earlier.and_then(|()| {
                let mut applier = Applier { replayer: &mut *self, source_name, progress, queue: Some(&mut queue) };
                parallel::run(format, input, source_name, dead_letters, &mut applier)?;
                queue.hand_over()
            });
            // Hanging up ends the writer once it has written what it has.
            drop(queue);
            let (rewards, written) = writer.join().expect("the reward writer does not panic");
            // The writer's own error says more than the engine's "stopped".
            (written.and(result), rewards)
        });
        self.rewards = Some(rewards);
        result
    }

    /// Writes out what is buffered and returns the ledger and the summary.
    pub fn finish(mut self) -> io::Result<(Ledger, Summary)> {
        self.flush_rewards()?;
        self.flush_dead_letters()?;
        for w in [&mut self.rewards, &mut self.dead_letters].into_iter().flatten() {
            w.flush()?;
        }
        let ledger = Ledger::build(&self.engine.book, [&self.engine.cards], &self.engine.counters);
        let summary = Summary::new(&self.engine, &ledger, self.tally);
        Ok((ledger, summary))
    }
}

/// The engine's side of [`Replayer::run`].
struct Applier<'r, P> {
    replayer: &'r mut Replayer,
    source_name: &'r str,
    progress: P,
    /// Where reward records go when a writer thread writes them.
    queue: Option<&'r mut output::RewardQueue>,
}

impl<P: FnMut(u64)> parallel::Apply for Applier<'_, P> {
    fn event(
        &mut self,
        event: &cardlink_core::CardEvent<'_>,
        keys: &cardlink_core::PrefetchKeys<'_>,
        record: &[u8],
        position: u64,
        format: Format,
    ) -> io::Result<()> {
        let r = &mut *self.replayer;
        let tally = &mut r.tally;
        let mut queue = self.queue.as_deref_mut();
        let mut sink = |u: &RewardUpdate<'_>| {
            tally.count(u);
            observe::reward(u);
            if let Some(queue) = queue.as_deref_mut() {
                queue.push(u);
            }
        };
        let timer = observe::match_timer();
        let outcome = r.engine.apply_keyed(event, keys, &mut sink);
        if observe::enabled() {
            match &outcome {
                Outcome::Processed => observe::event_processed(event.kind()),
                Outcome::Duplicate => observe::event_duplicate(event.kind()),
                Outcome::Rejected(rejection) => observe::event_rejected(rejection.reason),
            }
        }
        if let Outcome::Rejected(rejection) = &outcome {
            // Rare (a currency mismatch): the raw event is decoded again
            // for its dead letter.
            let raw = match format {
                Format::Json => decode_json_event(record),
                Format::Protobuf => decode_card_event(record),
            };
            let source_name = self.source_name;
            r.dead_letter(rejection, raw.as_ref().ok(), record, || format!("{source_name}:{position}"));
        }
        observe::matched(timer);
        if let Some(queue) = self.queue.as_deref_mut() {
            queue.hand_over_full()?;
        }
        r.flush_full()
    }

    fn rejected(&mut self, reason: cardlink_core::RejectReason, dead_letter: &[u8]) -> io::Result<()> {
        let r = &mut *self.replayer;
        r.engine.counters.count_rejection(reason);
        observe::event_rejected(reason);
        r.dead_buf.extend_from_slice(dead_letter);
        r.flush_full()
    }

    fn progress(&mut self, n: u64) {
        (self.progress)(n)
    }

    #[inline]
    fn engine(&self) -> &Engine {
        &self.replayer.engine
    }
}

/// Counts a decoded record's outcome in the metrics.
fn record_outcome(raw: &cardlink_core::RawEvent<'_>, outcome: &Outcome) {
    let kind = || match &raw.kind {
        cardlink_core::Field::Str(s) => cardlink_core::EventKind::parse(s),
        _ => None,
    };
    match outcome {
        Outcome::Processed => kind().into_iter().for_each(observe::event_processed),
        Outcome::Duplicate => kind().into_iter().for_each(observe::event_duplicate),
        Outcome::Rejected(r) => observe::event_rejected(r.reason),
    }
}

/// Prints a one-line progress meter on a terminal at most every 200 ms.
pub struct Progress {
    started: Instant,
    last: Instant,
    enabled: bool,
}

impl Progress {
    /// A meter that draws only when `enabled` (stderr is a terminal).
    pub fn new(enabled: bool) -> Self {
        let now = Instant::now();
        Progress { started: now, last: now, enabled }
    }

    /// Redraws with `n` records done.
    pub fn update(&mut self, n: u64) {
        if !self.enabled || self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        eprint!("\r  {:>12} events  {:>10.0} events/s ", n, n as f64 / secs);
    }

    /// Clears the meter's line.
    pub fn done(&self) {
        if self.enabled {
            eprint!("\r{:60}\r", "");
        }
    }
}
