//! Reward records written on a thread of their own during
//! [`crate::Replayer::run`]: the engine's thread copies each record's few
//! strings and numbers into a batch, and a writer thread turns the batches
//! into JSON Lines and writes them. Formatting (the reward id, the
//! escaping, the fixed-point values) and the write calls were about a
//! sixth of the engine thread's time; off it, they run beside the engine.
//!
//! Batches are written in the order they were filled, each record in the
//! order the engine made it, so the file is byte for byte what writing on
//! the engine's thread gives.

use std::io::{self, Write};
use std::sync::mpsc;

use cardlink_core::{RewardKind, RewardStatus, RewardUpdate};
use rust_decimal::Decimal;

use crate::parallel::Span;

/// Text bytes at which a batch is handed to the writer.
const BATCH_TEXT: usize = 128 * 1024;

/// Batches in flight: how far the engine may run ahead of the writer.
const IN_FLIGHT: usize = 4;

/// A reward record whose strings live in its batch's text.
#[derive(Debug, Clone, Copy)]
struct PackedReward {
    offer_id: Span,
    card_token: Span,
    transaction_id: Span,
    event_id: Span,
    status: RewardStatus,
    kind: RewardKind,
    value: Decimal,
    delta: Decimal,
}

/// Reward records on their way to the writer.
#[derive(Debug, Default)]
struct RewardBatch {
    records: Vec<PackedReward>,
    text: String,
}

impl RewardBatch {
    #[inline]
    fn push(&mut self, u: &RewardUpdate<'_>) {
        let text = &mut self.text;
        let record = PackedReward {
            offer_id: Span::of(text, u.offer_id),
            card_token: Span::of(text, u.card_token),
            transaction_id: Span::of(text, u.transaction_id),
            event_id: Span::of(text, u.event_id),
            status: u.status,
            kind: u.kind,
            value: u.value,
            delta: u.delta,
        };
        self.records.push(record);
    }

    /// Appends every record as a JSON line.
    fn write_json(&self, out: &mut Vec<u8>) {
        let s = |span: Span| span.str(&self.text);
        for r in &self.records {
            let update = RewardUpdate {
                offer_id: s(r.offer_id),
                card_token: s(r.card_token),
                transaction_id: s(r.transaction_id),
                event_id: s(r.event_id),
                status: r.status,
                kind: r.kind,
                value: r.value,
                delta: r.delta,
            };
            cardlink_wire::write_reward_json(&update, out);
        }
    }

    fn clear(&mut self) {
        self.records.clear();
        self.text.clear();
    }
}

/// The engine's side: collects records and hands full batches over.
pub(crate) struct RewardQueue {
    current: RewardBatch,
    full: mpsc::SyncSender<RewardBatch>,
    empty: mpsc::Receiver<RewardBatch>,
}

/// The writer stopped early: its own error says why (see [`spawn`]).
fn writer_gone() -> io::Error {
    io::Error::other("the reward writer stopped")
}

impl RewardQueue {
    /// Queues one record.
    #[inline]
    pub(crate) fn push(&mut self, u: &RewardUpdate<'_>) {
        self.current.push(u);
    }

    /// Hands the batch over once it is full enough.
    #[inline]
    pub(crate) fn hand_over_full(&mut self) -> io::Result<()> {
        if self.current.text.len() >= BATCH_TEXT { self.hand_over() } else { Ok(()) }
    }

    /// Hands the batch over, whatever its size.
    pub(crate) fn hand_over(&mut self) -> io::Result<()> {
        if self.current.records.is_empty() {
            return Ok(());
        }
        // A returned batch when there is one; a new one while fewer than
        // the in-flight bound exist (the bounded channel blocks beyond it).
        let next = self.empty.try_recv().unwrap_or_default();
        let full = std::mem::replace(&mut self.current, next);
        self.full.send(full).map_err(|_| writer_gone())
    }
}

/// Starts the writer thread on `scope`, writing to `out`. The thread ends
/// when the returned queue is dropped, giving back `out` and the first
/// write error, if any (after which it writes nothing more).
pub(crate) fn spawn<'scope, W: Write + Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    mut out: W,
) -> (RewardQueue, std::thread::ScopedJoinHandle<'scope, (W, io::Result<()>)>) {
    let (full_tx, full_rx) = mpsc::sync_channel::<RewardBatch>(IN_FLIGHT);
    let (empty_tx, empty_rx) = mpsc::channel::<RewardBatch>();
    let handle = scope.spawn(move || {
        let mut json = Vec::with_capacity(2 * BATCH_TEXT + 64 * 1024);
        let mut result = Ok(());
        for mut batch in full_rx.iter() {
            json.clear();
            batch.write_json(&mut json);
            if let Err(e) = out.write_all(&json) {
                result = Err(e);
                break;
            }
            batch.clear();
            // The engine may be done: nothing to hand back then.
            let _ = empty_tx.send(batch);
        }
        (out, result)
    });
    (RewardQueue { current: RewardBatch::default(), full: full_tx, empty: empty_rx }, handle)
}
