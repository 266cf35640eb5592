//! Replay on two threads: one reads, frames, decodes and validates records
//! (R1's stateless checks need no state), the other applies them to the
//! engine in file order and writes the outputs. The two halves of the work
//! cost about the same, so a replay runs nearly twice as fast on a machine
//! with two free cores; the output is byte for byte what one thread writes.
//!
//! Records travel in batches. A valid event is packed with its strings
//! copied into the batch's text, so the reading thread can move on; a
//! rejected or undecodable record travels as its reason and its dead
//! letter, already written. Batches are sent back empty and reused, so a
//! run allocates a handful of them whatever its length.

use std::io::{self, BufRead};
use std::sync::mpsc;

use cardlink_core::country::Country;
use cardlink_core::event::{CardEvent, EventBody, Merchant, Money, Network, Purchase, RejectReason, Rejection};
use cardlink_core::{Engine, KeyHashes, Lookahead, PrefetchKeys, RawEvent, validate};
use cardlink_wire::{Format, decode_card_event, decode_json_event};

use crate::framing::{Frame, RecordReader};

/// Records per batch: large enough that handing a batch over costs nothing
/// per record, small enough that both threads start at once.
const BATCH: usize = 1024;

/// Batches in flight: the reader may run this far ahead.
const IN_FLIGHT: usize = 4;

/// How far ahead the engine's thread asks for a record of the batch.
const PREFETCH_ITEM: usize = 8;

/// Where a string lies in a batch's text or records (also the reward
/// batches of [`crate::output`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span(u32, u32);

impl Span {
    pub(crate) fn of(out: &mut String, s: &str) -> Span {
        let start = out.len() as u32;
        out.push_str(s);
        Span(start, s.len() as u32)
    }

    fn bytes(out: &mut Vec<u8>, b: &[u8]) -> Span {
        let start = out.len() as u32;
        out.extend_from_slice(b);
        Span(start, b.len() as u32)
    }

    #[inline]
    pub(crate) fn str(self, text: &str) -> &str {
        &text[self.0 as usize..(self.0 + self.1) as usize]
    }

    #[inline]
    fn slice(self, bytes: &[u8]) -> &[u8] {
        &bytes[self.0 as usize..(self.0 + self.1) as usize]
    }
}

#[derive(Debug, Clone, Copy)]
struct PackedPurchase {
    transaction_id: Span,
    network: Network,
    money: Money,
    mid: Span,
    mcc: u16,
    country: Option<Country>,
}

#[derive(Debug, Clone, Copy)]
enum PackedBody {
    Authorization(PackedPurchase),
    Clearing(PackedPurchase),
    AuthReversal(Span),
    Refund(Span, Money),
    Activation(Span),
}

/// A validated event whose strings live in a batch's text, with the hashes
/// of its keys (computed on the reading thread, see [`KeyHashes`]).
#[derive(Debug, Clone, Copy)]
struct Packed {
    hashes: KeyHashes,
    event_id: Span,
    card_token: Span,
    occurred_at: chrono::DateTime<chrono::FixedOffset>,
    body: PackedBody,
}

impl Packed {
    fn pack(e: &CardEvent<'_>, text: &mut String) -> Packed {
        let purchase = |p: &Purchase<'_>, text: &mut String| PackedPurchase {
            transaction_id: Span::of(text, p.transaction_id),
            network: p.network,
            money: p.money,
            mid: Span::of(text, p.merchant.mid),
            mcc: p.merchant.mcc,
            country: p.merchant.country,
        };
        Packed {
            hashes: KeyHashes::of(e),
            event_id: Span::of(text, e.event_id),
            card_token: Span::of(text, e.card_token),
            occurred_at: e.occurred_at,
            body: match &e.body {
                EventBody::Authorization(p) => PackedBody::Authorization(purchase(p, text)),
                EventBody::Clearing(p) => PackedBody::Clearing(purchase(p, text)),
                EventBody::AuthReversal { transaction_id } => PackedBody::AuthReversal(Span::of(text, transaction_id)),
                EventBody::Refund { transaction_id, money } => {
                    PackedBody::Refund(Span::of(text, transaction_id), *money)
                }
                EventBody::Activation { offer_id } => PackedBody::Activation(Span::of(text, offer_id)),
            },
        }
    }

    #[inline]
    fn unpack<'t>(&self, text: &'t str) -> CardEvent<'t> {
        let purchase = |p: &PackedPurchase| Purchase {
            transaction_id: p.transaction_id.str(text),
            network: p.network,
            money: p.money,
            merchant: Merchant { mid: p.mid.str(text), mcc: p.mcc, country: p.country },
        };
        CardEvent {
            event_id: self.event_id.str(text),
            card_token: self.card_token.str(text),
            occurred_at: self.occurred_at,
            body: match &self.body {
                PackedBody::Authorization(p) => EventBody::Authorization(purchase(p)),
                PackedBody::Clearing(p) => EventBody::Clearing(purchase(p)),
                PackedBody::AuthReversal(t) => EventBody::AuthReversal { transaction_id: t.str(text) },
                PackedBody::Refund(t, money) => EventBody::Refund { transaction_id: t.str(text), money: *money },
                PackedBody::Activation(o) => EventBody::Activation { offer_id: o.str(text) },
            },
        }
    }
}

/// One record of a batch, in file order.
#[derive(Debug, Clone, Copy)]
enum Item {
    /// Valid: apply it. The record is kept for a dead letter should the
    /// engine reject it (a currency mismatch, R1).
    Event { event: Packed, record: Span, position: u64 },
    /// Rejected before the engine (R1) or undecodable: count it; its dead
    /// letter line, when dead letters are written, is in `dead`.
    Rejected { reason: RejectReason, line: Span },
}

/// Records handed from the reading thread to the engine's.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    items: Vec<Item>,
    text: String,
    records: Vec<u8>,
    dead: Vec<u8>,
}

impl Batch {
    fn clear(&mut self) {
        self.items.clear();
        self.text.clear();
        self.records.clear();
        self.dead.clear();
    }
}

/// What the engine's thread does with a batch's records.
pub(crate) trait Apply {
    /// A valid event, with its keys as the prefetch pipeline hashed them
    /// (for [`Engine::apply_keyed`]), its record (for a dead letter should
    /// the engine reject it) and the record's position in the input.
    fn event(
        &mut self,
        event: &CardEvent<'_>,
        keys: &PrefetchKeys<'_>,
        record: &[u8],
        position: u64,
        format: Format,
    ) -> io::Result<()>;

    /// A rejected or undecodable record and its dead letter line (empty
    /// when dead letters are not written).
    fn rejected(&mut self, reason: RejectReason, dead_letter: &[u8]) -> io::Result<()>;

    /// The engine the events are applied to, for the prefetch pipeline
    /// ([`Lookahead`]).
    fn engine(&self) -> &Engine;

    /// Called every 65 536 records and at the end with the count so far.
    fn progress(&mut self, n: u64);
}

/// Reads `input` on a second thread and hands its records to `apply` in
/// file order on this one.
pub(crate) fn run<A: Apply>(
    format: Format,
    input: impl BufRead + Send,
    source_name: &str,
    dead_letters: bool,
    apply: &mut A,
) -> io::Result<()> {
    let (full_tx, full_rx) = mpsc::sync_channel::<io::Result<Batch>>(IN_FLIGHT);
    let (empty_tx, empty_rx) = mpsc::channel::<Batch>();
    for _ in 0..IN_FLIGHT + 1 {
        empty_tx.send(Batch::default()).expect("the receiver is here");
    }
    std::thread::scope(|scope| {
        // Owned here, so that hanging up below also wakes a reader that
        // waits for an empty batch.
        let empty_tx = empty_tx;
        scope.spawn(move || read(format, input, source_name, dead_letters, &full_tx, &empty_rx));
        let mut n = 0u64;
        // The reader stops when this side hangs up (an error here).
        let result = (|| {
            for batch in full_rx.iter() {
                let batch = batch?;
                let ahead = |i: usize| match batch.items.get(i) {
                    Some(Item::Event { event, .. }) => Some((event.unpack(&batch.text), event.hashes)),
                    _ => None,
                };
                let mut lookahead = Lookahead::default();
                for (i, item) in batch.items.iter().enumerate() {
                    // The reading thread wrote the batch on the other core:
                    // ask for a coming record before its keys are read.
                    if let Some(Item::Event { event, .. }) = batch.items.get(i + PREFETCH_ITEM) {
                        cardlink_core::prefetch_hint(event);
                        cardlink_core::prefetch_hint(batch.text.as_ptr().wrapping_add(event.event_id.0 as usize));
                    }
                    // Per-card state is far larger than the caches: ask for
                    // a coming event's card entry, then, once that is near,
                    // for what it points to, while this event is applied.
                    let keyed = lookahead.step(apply.engine(), i, ahead);
                    match (*item, keyed) {
                        (Item::Event { record, position, .. }, Some((event, keys))) => {
                            apply.event(event, keys, record.slice(&batch.records), position, format)?
                        }
                        (Item::Rejected { reason, line }, _) => apply.rejected(reason, line.slice(&batch.dead))?,
                        (Item::Event { .. }, None) => unreachable!("the lookahead holds every valid event"),
                    }
                    n += 1;
                    if n % 65_536 == 0 {
                        apply.progress(n);
                    }
                }
                let mut batch = batch;
                batch.clear();
                // The reader may be gone (done): nothing to hand back then.
                let _ = empty_tx.send(batch);
            }
            apply.progress(n);
            Ok(())
        })();
        // An early error leaves the reader blocked on one channel or the
        // other: hanging up both ends it, and the scope can close.
        drop(full_rx);
        drop(empty_tx);
        result
    })
}

/// The reading thread: frames, decodes and validates records into batches.
fn read(
    format: Format,
    input: impl BufRead,
    source_name: &str,
    dead_letters: bool,
    full: &mpsc::SyncSender<io::Result<Batch>>,
    empty: &mpsc::Receiver<Batch>,
) {
    let mut reader = RecordReader::new(input, format);
    let Ok(mut batch) = empty.recv() else { return };
    loop {
        let frame = match reader.next_record() {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                let _ = full.send(Err(e));
                return;
            }
        };
        match frame {
            Frame::Record { bytes, position } => {
                let raw = match format {
                    Format::Json => decode_json_event(bytes),
                    Format::Protobuf => decode_card_event(bytes),
                };
                match raw {
                    Ok(raw) => match validate(&raw) {
                        Ok(event) => {
                            let event = Packed::pack(&event, &mut batch.text);
                            let record = Span::bytes(&mut batch.records, bytes);
                            batch.items.push(Item::Event { event, record, position });
                        }
                        Err(rejection) => {
                            reject(&mut batch, &rejection, Some(&raw), bytes, dead_letters, source_name, position)
                        }
                    },
                    Err(rejection) => reject(&mut batch, &rejection, None, bytes, dead_letters, source_name, position),
                }
            }
            Frame::Broken { bytes, position, why } => {
                reject(&mut batch, &Rejection::malformed(why), None, &bytes, dead_letters, source_name, position)
            }
        }
        if batch.items.len() == BATCH {
            if full.send(Ok(batch)).is_err() {
                return;
            }
            let Ok(next) = empty.recv() else { return };
            batch = next;
        }
    }
    let _ = full.send(Ok(batch));
}

fn reject(
    batch: &mut Batch,
    rejection: &Rejection,
    raw: Option<&RawEvent<'_>>,
    record: &[u8],
    dead_letters: bool,
    source_name: &str,
    position: u64,
) {
    let start = batch.dead.len();
    if dead_letters {
        let d = cardlink_wire::dead_letter(rejection, raw, record, format!("{source_name}:{position}"));
        cardlink_wire::write_dead_letter_json(&d, &mut batch.dead);
    }
    let line = Span(start as u32, (batch.dead.len() - start) as u32);
    batch.items.push(Item::Rejected { reason: rejection.reason, line });
}
