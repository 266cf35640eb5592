//! The transactional consume–match–produce loop (exactly once, KIP-447).
//!
//! One OS thread owns a `BaseConsumer` (read_committed, no auto commit) and
//! one transactional `BaseProducer`; librdkafka's blocking calls never run
//! on an async runtime. Each transaction holds the reward records and dead
//! letters of a batch of input records, the new state of every card the
//! batch changed (written to changelog partition p for input partition p),
//! and the input offsets (`send_offsets_to_transaction` with the group
//! metadata). So rewards, state and progress commit together or not at all.
//!
//! Failures follow librdkafka's classification: retriable calls are
//! retried; an abortable error aborts the transaction, rewinds the consumer
//! to the committed offsets and restores the touched partitions' state from
//! the changelog, so memory again equals what is committed; a fatal error
//! (fenced by a newer instance) ends the process, whose restart recovers
//! from what is committed.
//!
//! Rebalances run inside `poll`, on this thread: before partitions are
//! revoked the open transaction is committed (or aborted), then their state
//! is dropped; newly assigned partitions are restored from the changelog
//! before their first record is processed, and the offers' budget usage is
//! rebuilt from the restored rewards.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cardlink_core::{Applied, CardStore, Counters, OfferBook, RewardUpdate, apply, validate};
use cardlink_wire::{decode_card_event, decode_json_event};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::codec::{
    OfferChange, StateScratch, add_usage, decode_card_state, encode_card_state, encode_dead_letter, encode_reward,
};
use crate::config::TopicFormat;
use crate::error::{Class, classify};
use crate::offers::apply_change;
use crate::reader::{assigned_reader, drain};
use crate::{Config, Error};

/// What the loop does with each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The product: validate, match, emit rewards and dead letters, keep
    /// card state in the changelog.
    Match,
    /// For the benchmark: copy each input record to the rewards topic
    /// through the same transactions, without decoding or matching.
    PassThrough,
}

/// Counters the loop publishes for the command's status line, the tests
/// and the benchmark.
#[derive(Debug, Default)]
pub struct Stats {
    /// Input records processed (committed or not yet).
    pub consumed: AtomicU64,
    /// Input records whose transaction committed.
    pub committed: AtomicU64,
    /// Committed transactions.
    pub transactions: AtomicU64,
    /// Aborted transactions.
    pub aborted: AtomicU64,
    /// Reward records in committed transactions.
    pub rewards: AtomicU64,
    /// Dead letters in committed transactions.
    pub dead_letters: AtomicU64,
    /// Set once the offers are loaded and the consumer has subscribed.
    pub ready: AtomicBool,
    /// Time spent committing (changelog, offsets, commit), in µs.
    pub commit_micros: AtomicU64,
    /// Of which waiting in `send_offsets_to_transaction` and
    /// `commit_transaction`, in µs.
    pub commit_wait_micros: AtomicU64,
}

/// Per-call bound of the transactional API; a timed-out call is retried.
const TXN_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a retriable failure is retried before the process gives up.
const RETRY_FOR: Duration = Duration::from_secs(300);
/// How long a restore may make no progress.
const RESTORE_IDLE: Duration = Duration::from_secs(60);

/// The transactional producer. A background thread serves its delivery
/// reports: `commit_transaction` and `abort_transaction` wait for them, and
/// must not wait on the very thread that would serve them.
type TxProducer = ThreadedProducer<DefaultProducerContext>;

/// One input partition this instance holds.
#[derive(Default)]
struct Part {
    store: CardStore,
    /// Cards changed in the open transaction.
    dirty: FxHashSet<Box<str>>,
    /// Offset after the last record processed in the open transaction.
    next: Option<i64>,
}

/// The open transaction's tallies.
struct Txn {
    began: Instant,
    records: u64,
    rewards: u64,
    dead_letters: u64,
}

/// Everything the loop and the rebalance callbacks share. Both run on the
/// pipeline thread (callbacks inside `poll`); the mutex only satisfies
/// librdkafka's `Sync` bound and is never contended.
struct Core {
    config: Config,
    mode: Mode,
    producer: TxProducer,
    book: OfferBook,
    changes: Receiver<OfferChange>,
    parts: BTreeMap<i32, Part>,
    txn: Option<Txn>,
    counters: Counters,
    stats: Arc<Stats>,
    /// A failure raised inside a callback, for the loop to act on.
    failed: Option<Error>,
    stop: Arc<AtomicBool>,
    buf: Vec<u8>,
    scratch: StateScratch,
}

struct Ctx {
    core: Mutex<Core>,
}

impl Ctx {
    fn core(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        // `poll` returns the same errors and the loop logs them there.
        log::debug!("librdkafka: {error}: {reason}");
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => self.core().on_revoke(consumer, tpl),
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => log::warn!("rebalance error: {e}"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.core().on_assign(consumer, tpl);
        }
    }
}

type Consumer_ = BaseConsumer<Ctx>;

/// Runs the pipeline on the calling thread until `stop` is set (then it
/// commits what is open and returns) or a fatal error occurs. Expects the
/// topics to exist ([`crate::admin::ensure_topics`]) and the offers to be
/// loaded ([`crate::offers::start`]).
pub fn run(
    config: &Config,
    mode: Mode,
    book: OfferBook,
    changes: Receiver<OfferChange>,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
) -> Result<(), Error> {
    let producer = transactional_producer(config, &stop)?;
    let core = Core {
        config: config.clone(),
        mode,
        producer,
        book,
        changes,
        parts: BTreeMap::new(),
        txn: None,
        counters: Counters::default(),
        stats: stats.clone(),
        failed: None,
        stop: stop.clone(),
        buf: Vec::with_capacity(4096),
        scratch: StateScratch::default(),
    };
    let consumer: Consumer_ = consumer_config(config)
        .create_with_context(Ctx { core: Mutex::new(core) })
        .map_err(|e| Error::kafka("creating the consumer", e))?;
    consumer
        .subscribe(&[&config.topics.events])
        .map_err(|e| Error::kafka(format!("subscribing to {}", config.topics.events), e))?;
    stats.ready.store(true, Ordering::SeqCst);
    log::info!(
        "pipeline {} running: {} -> {} (group {}, transactional id {})",
        config.pipeline.instance_id,
        config.topics.events,
        config.topics.rewards,
        config.pipeline.group_id,
        config.transactional_id()
    );
    let result = main_loop(&consumer, config, &stop);
    let mut core = consumer.context().core();
    let result = result.and_then(|()| {
        if core.txn.is_some() { core.commit(&consumer).or_else(|e| core.recover(&consumer, e, &[])) } else { Ok(()) }
    });
    if result.is_err() {
        // Closing the consumer runs the revoke callback: after a failure it
        // must not try to commit. The open transaction is aborted by the
        // next producer with this transactional id, or by its timeout.
        core.failed = Some(Error::Fatal("closing after a failure".into()));
    }
    drop(core);
    if result.is_ok() {
        // Leave the group cleanly; the revoke callback has nothing open.
        consumer.unsubscribe();
        let _ = consumer.poll(Duration::from_millis(100));
    }
    result
}

fn main_loop(consumer: &Consumer_, config: &Config, stop: &AtomicBool) -> Result<(), Error> {
    let interval = config.commit_interval();
    let max_records = config.pipeline.commit_max_records as u64;
    let mut last_report = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let timeout = {
            let core = consumer.context().core();
            match &core.txn {
                Some(t) => interval.saturating_sub(t.began.elapsed()).min(Duration::from_millis(100)),
                None => Duration::from_millis(100),
            }
        };
        let polled = consumer.poll(timeout);
        let mut core = consumer.context().core();
        if let Some(e) = core.failed.take() {
            return Err(e);
        }
        while let Ok(change) = core.changes.try_recv() {
            apply_change(&mut core.book, change);
        }
        match polled {
            None => {}
            Some(Ok(m)) => {
                if let Err(e) = core.process(&m) {
                    core.recover(consumer, e, &[])?;
                }
            }
            Some(Err(e)) => consumer_error(&e)?,
        }
        if let Some(t) = &core.txn {
            if t.records >= max_records || t.began.elapsed() >= interval {
                if let Err(e) = core.commit(consumer) {
                    core.recover(consumer, e, &[])?;
                }
            }
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            core.report();
        }
    }
    Ok(())
}

/// Consumer errors are mostly informational (a broker went away and
/// librdkafka reconnects); only a fatal one ends the loop.
fn consumer_error(e: &KafkaError) -> Result<(), Error> {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::Fatal | RDKafkaErrorCode::FencedInstanceId) => {
            Err(Error::Fatal(format!("consumer: {e} (another instance may use the same instance id)")))
        }
        _ if crate::reader::is_transport(e) => {
            log::debug!("consumer: {e}");
            Ok(())
        }
        _ => {
            log::warn!("consumer: {e}");
            Ok(())
        }
    }
}

fn consumer_config(config: &Config) -> rdkafka::ClientConfig {
    let p = &config.pipeline;
    let mut c = config.client(&format!("consumer-{}", p.instance_id));
    c.set("group.id", &p.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        // Cooperative rebalancing moves only the partitions that change
        // owner: the others keep their state and their open transaction.
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", p.session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", (p.session_timeout_ms / 4).max(500).to_string());
    if p.static_membership {
        c.set("group.instance.id", format!("{}-{}", p.group_id, p.instance_id));
    }
    config.finish(c)
}

fn transactional_producer(config: &Config, stop: &AtomicBool) -> Result<TxProducer, Error> {
    let mut c = config.client(&format!("producer-{}", config.pipeline.instance_id));
    c.set("transactional.id", config.transactional_id())
        .set("transaction.timeout.ms", config.pipeline.transaction_timeout_ms.to_string())
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        // Failed deliveries fail the commit; successful ones need no report.
        .set("delivery.report.only.error", "true");
    let producer: TxProducer =
        config.finish(c).create().map_err(|e| Error::kafka("creating the transactional producer", e))?;
    // Fences any earlier producer with this transactional id and aborts
    // the transaction it left open (a crashed predecessor's).
    retry("initializing transactions", stop, || producer.init_transactions(TXN_CALL_TIMEOUT))?;
    Ok(producer)
}

/// Calls `f` until it succeeds, retrying retriable failures (bounded).
fn retry(what: &str, stop: &AtomicBool, mut f: impl FnMut() -> Result<(), KafkaError>) -> Result<(), Error> {
    let started = Instant::now();
    let mut wait = Duration::from_millis(50);
    loop {
        match f() {
            Ok(()) => return Ok(()),
            Err(e) if classify(&e) == Class::Retriable => {
                if started.elapsed() > RETRY_FOR || stop.load(Ordering::Relaxed) && started.elapsed() > TXN_CALL_TIMEOUT
                {
                    return Err(Error::Fatal(format!("{what}: still failing after {:?}: {e}", started.elapsed())));
                }
                log::warn!("{what}: {e}; retrying");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(Error::kafka(what, e)),
        }
    }
}

/// Waits until every produced record is acknowledged (or failed), using
/// librdkafka's own flush, which wakes up as soon as the count reaches
/// zero. rdkafka's `commit_transaction` flushes first with a loop that
/// sleeps in 100 ms steps, which put 100 ms on every commit (measured);
/// after this call that flush finds nothing left and returns at once.
fn flush(producer: &TxProducer, timeout: Duration) {
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the pointer is the producer's live librdkafka handle, and
    // rd_kafka_flush may be called from any thread.
    let err = unsafe { rdkafka::bindings::rd_kafka_flush(producer.client().native_ptr(), ms) };
    if err != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        // commit_transaction flushes again and reports what is wrong.
        log::debug!("flush before commit: {err:?}");
    }
}

/// Sends one record, waiting while the local queue is full.
fn send(producer: &TxProducer, mut record: BaseRecord<'_, [u8], [u8]>) -> Result<(), KafkaError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

impl Core {
    fn begin(&mut self) -> Result<(), Error> {
        if self.txn.is_none() {
            self.producer.begin_transaction().map_err(|e| Error::kafka("beginning a transaction", e))?;
            self.txn = Some(Txn { began: Instant::now(), records: 0, rewards: 0, dead_letters: 0 });
        }
        Ok(())
    }

    /// Processes one input record inside the open transaction.
    fn process(&mut self, m: &BorrowedMessage<'_>) -> Result<(), Error> {
        let p = m.partition();
        if !self.parts.contains_key(&p) {
            // Not ours (any more): librdkafka drops such records itself;
            // this is only a guard.
            log::warn!("record of unassigned partition {p} skipped");
            return Ok(());
        }
        self.begin()?;
        let Core { config, mode, producer, book, parts, txn, counters, buf, .. } = self;
        let txn = txn.as_mut().expect("begun above");
        let part = parts.get_mut(&p).expect("checked above");
        part.next = Some(m.offset() + 1);
        txn.records += 1;
        self.stats.consumed.fetch_add(1, Ordering::Relaxed);
        let payload = m.payload().unwrap_or(&[]);
        let ts = m.timestamp().to_millis();
        let topics = &config.topics;
        if *mode == Mode::PassThrough {
            let mut r = BaseRecord::to(&topics.rewards).payload(payload);
            if let Some(k) = m.key() {
                r = r.key(k);
            }
            if let Some(ts) = ts {
                r = r.timestamp(ts);
            }
            txn.rewards += 1;
            return send(producer, r).map_err(|e| Error::kafka("producing", e));
        }

        // The same decoders as `cardlink replay`, so that both judge every
        // record alike.
        let raw = match config.formats.events {
            TopicFormat::Json => decode_json_event(payload),
            TopicFormat::Protobuf => decode_card_event(payload),
        };
        let rejection = match &raw {
            Err(rejection) => Some(rejection.clone()),
            Ok(raw) => match validate(raw) {
                Err(rejection) => Some(rejection),
                Ok(event) => {
                    let mut failed = None;
                    let rewards_format = config.formats.rewards;
                    let mut produced = 0;
                    let mut sink = |u: &RewardUpdate<'_>| {
                        if failed.is_some() {
                            return;
                        }
                        buf.clear();
                        encode_reward(rewards_format, u, buf);
                        let mut r = BaseRecord::to(&topics.rewards).key(u.card_token.as_bytes()).payload(&buf[..]);
                        if let Some(ts) = ts {
                            r = r.timestamp(ts);
                        }
                        produced += 1;
                        failed = send(producer, r).err();
                    };
                    let outcome = apply(book, &mut part.store, &event, &mut sink);
                    txn.rewards += produced;
                    match outcome {
                        Ok(Applied::Processed) => {
                            counters.processed += 1;
                            if !part.dirty.contains(event.card_token) {
                                part.dirty.insert(Box::from(event.card_token));
                            }
                        }
                        Ok(Applied::Duplicate) => counters.duplicate += 1,
                        Ok(Applied::Held) => unreachable!("held events are handled above"),
                        Err(_) if failed.is_some() => {}
                        Err(rejection) => {
                            counters.count_rejection(rejection.reason);
                            let d = cardlink_wire::dead_letter(
                                &rejection,
                                Some(raw),
                                payload,
                                format!("{}/{p}@{}", topics.events, m.offset()),
                            );
                            txn.dead_letters += 1;
                            send_dead_letter(producer, config, d, ts)?;
                        }
                    }
                    if let Some(e) = failed {
                        return Err(Error::kafka("producing a reward", e));
                    }
                    None
                }
            },
        };
        if let Some(rejection) = rejection {
            counters.count_rejection(rejection.reason);
            let d = cardlink_wire::dead_letter(
                &rejection,
                raw.as_ref().ok(),
                payload,
                format!("{}/{p}@{}", topics.events, m.offset()),
            );
            txn.dead_letters += 1;
            send_dead_letter(producer, config, d, ts)?;
        }
        Ok(())
    }

    /// Writes the changed cards' state, adds the input offsets and commits.
    fn commit(&mut self, consumer: &Consumer_) -> Result<(), Error> {
        let Some(txn) = &self.txn else { return Ok(()) };
        let began = Instant::now();
        let (records, rewards, dead_letters) = (txn.records, txn.rewards, txn.dead_letters);
        let state_topic = &self.config.topics.state;
        let mut offsets = TopicPartitionList::new();
        for (&p, part) in &mut self.parts {
            for token in part.dirty.drain() {
                if let Some(card) = part.store.get(&token) {
                    self.buf.clear();
                    encode_card_state(&self.book, card, &mut self.buf, &mut self.scratch);
                    let r = BaseRecord::to(state_topic).partition(p).key(token.as_bytes()).payload(&self.buf[..]);
                    send(&self.producer, r).map_err(|e| Error::kafka("writing the changelog", e))?;
                }
            }
            if let Some(next) = part.next {
                offsets
                    .add_partition_offset(&self.config.topics.events, p, Offset::Offset(next))
                    .map_err(|e| Error::kafka("offsets", e))?;
            }
        }
        let waiting = Instant::now();
        if offsets.count() > 0 {
            let meta = consumer.group_metadata().ok_or_else(|| Error::Fatal("no consumer group metadata".into()))?;
            retry("sending offsets to the transaction", &self.stop, || {
                self.producer.send_offsets_to_transaction(&offsets, &meta, TXN_CALL_TIMEOUT)
            })?;
        }
        let offsets_done = waiting.elapsed();
        flush(&self.producer, TXN_CALL_TIMEOUT);
        let flushed = waiting.elapsed();
        retry("committing", &self.stop, || self.producer.commit_transaction(TXN_CALL_TIMEOUT))?;
        log::debug!(
            "commit of {records} records: writes {:?}, offsets {offsets_done:?}, flush {:?}, commit {:?}",
            waiting - began,
            flushed - offsets_done,
            waiting.elapsed() - flushed
        );
        self.stats.commit_wait_micros.fetch_add(waiting.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.stats.commit_micros.fetch_add(began.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.txn = None;
        for part in self.parts.values_mut() {
            part.next = None;
        }
        let s = &self.stats;
        s.committed.fetch_add(records, Ordering::Relaxed);
        s.transactions.fetch_add(1, Ordering::Relaxed);
        s.rewards.fetch_add(rewards, Ordering::Relaxed);
        s.dead_letters.fetch_add(dead_letters, Ordering::Relaxed);
        Ok(())
    }

    /// Handles a failure of the open transaction by its class: abortable
    /// ones abort and rewind (partitions in `leaving` are about to be
    /// dropped and are not restored); anything else is returned.
    fn recover(&mut self, consumer: &Consumer_, e: Error, leaving: &[i32]) -> Result<(), Error> {
        if e.class() != Class::Abortable {
            return Err(e);
        }
        log::warn!("aborting the transaction: {e}");
        retry("aborting", &self.stop, || self.producer.abort_transaction(TXN_CALL_TIMEOUT))?;
        self.txn = None;
        self.stats.aborted.fetch_add(1, Ordering::Relaxed);
        let touched: Vec<i32> = self
            .parts
            .iter()
            .filter(|(p, part)| (part.next.is_some() || !part.dirty.is_empty()) && !leaving.contains(p))
            .map(|(p, _)| *p)
            .collect();
        for part in self.parts.values_mut() {
            part.next = None;
            part.dirty.clear();
        }
        if touched.is_empty() {
            return Ok(());
        }
        // Memory must equal what is committed: drop what the aborted
        // transaction changed, read it back, and consume again from the
        // committed offsets.
        for &p in &touched {
            self.drop_partition(p);
        }
        self.restore(&touched)?;
        let mut tpl = TopicPartitionList::new();
        for &p in &touched {
            tpl.add_partition(&self.config.topics.events, p);
        }
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(60))
            .map_err(|e| Error::kafka("reading committed offsets", e))?;
        for &p in &touched {
            let at = match committed.find_partition(&self.config.topics.events, p).map(|e| e.offset()) {
                Some(o @ Offset::Offset(_)) => o,
                _ => Offset::Beginning,
            };
            consumer
                .seek(&self.config.topics.events, p, at, Duration::from_secs(10))
                .map_err(|e| Error::Fatal(format!("rewinding partition {p} to {at:?}: {e}")))?;
        }
        log::info!("rewound partitions {touched:?} to their committed offsets");
        Ok(())
    }

    fn drop_partition(&mut self, p: i32) {
        if let Some(part) = self.parts.remove(&p) {
            for (_, card) in part.store.iter() {
                add_usage(&mut self.book, card, false);
            }
        }
    }

    /// Reads partitions' state from the changelog (committed records, to
    /// the last stable offset) and counts their rewards into the budgets.
    fn restore(&mut self, partitions: &[i32]) -> Result<(), Error> {
        if self.mode == Mode::PassThrough {
            for &p in partitions {
                self.parts.insert(p, Part::default());
            }
            return Ok(());
        }
        let started = Instant::now();
        let topic = &self.config.topics.state;
        let consumer = assigned_reader(&self.config, "restore", topic, partitions)?;
        let mut latest: FxHashMap<i32, FxHashMap<Box<str>, Vec<u8>>> = FxHashMap::default();
        let records = drain(&consumer, topic, partitions, RESTORE_IDLE, |m| {
            let Some(key) = m.key() else { return Ok(()) };
            let token = String::from_utf8_lossy(key);
            let cards = latest.entry(m.partition()).or_default();
            match m.payload() {
                Some(v) if !v.is_empty() => {
                    cards.insert(Box::from(&*token), v.to_vec());
                }
                _ => {
                    cards.remove(&*token);
                }
            }
            Ok(())
        })?;
        let mut cards = 0;
        for &p in partitions {
            let mut part = Part::default();
            for (token, bytes) in latest.remove(&p).unwrap_or_default() {
                let card = decode_card_state(&mut self.book, &bytes)
                    .map_err(|e| Error::Fatal(format!("{topic}/{p}: state of {token}: {e}")))?;
                add_usage(&mut self.book, &card, true);
                part.store.insert(&token, card);
            }
            cards += part.store.len();
            self.parts.insert(p, part);
        }
        log::info!(
            "restored partitions {partitions:?}: {cards} cards from {records} changelog records in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    fn on_assign(&mut self, consumer: &Consumer_, tpl: &TopicPartitionList) {
        if self.failed.is_some() {
            return;
        }
        let topic = self.config.topics.events.clone();
        let partitions: Vec<i32> = tpl.elements_for_topic(&topic).iter().map(|e| e.partition()).collect();
        log::info!("assigned partitions {partitions:?} of {topic}");
        // Wait until the committed offsets are stable: a previous owner's
        // transaction must be committed or aborted before its state is
        // read, or the restore could miss state whose offsets then commit.
        if let Err(e) = consumer.committed_offsets(tpl.clone(), Duration::from_secs(120)) {
            self.failed = Some(Error::kafka("waiting for stable committed offsets", e));
            return;
        }
        let new: Vec<i32> = partitions.into_iter().filter(|p| !self.parts.contains_key(p)).collect();
        if let Err(e) = self.restore(&new) {
            self.failed = Some(e);
        }
    }

    fn on_revoke(&mut self, consumer: &Consumer_, tpl: &TopicPartitionList) {
        let partitions: Vec<i32> =
            tpl.elements_for_topic(&self.config.topics.events).iter().map(|e| e.partition()).collect();
        log::info!("revoking partitions {partitions:?}");
        if self.txn.is_some() && self.failed.is_none() {
            let result = if consumer.assignment_lost() {
                // Another instance may own them already: nothing of this
                // transaction may commit.
                self.recover(consumer, Error::kafka("assignment lost", KafkaError::Canceled), &partitions)
            } else {
                self.commit(consumer).or_else(|e| self.recover(consumer, e, &partitions))
            };
            if let Err(e) = result {
                self.failed = Some(e);
            }
        }
        for p in partitions {
            self.drop_partition(p);
        }
    }

    fn report(&self) {
        let s = &self.stats;
        log::info!(
            "consumed {} committed {} transactions {} aborted {} rewards {} dead letters {}; holding {} partitions, {} cards",
            s.consumed.load(Ordering::Relaxed),
            s.committed.load(Ordering::Relaxed),
            s.transactions.load(Ordering::Relaxed),
            s.aborted.load(Ordering::Relaxed),
            s.rewards.load(Ordering::Relaxed),
            s.dead_letters.load(Ordering::Relaxed),
            self.parts.len(),
            self.parts.values().map(|p| p.store.len()).sum::<usize>(),
        );
    }
}

fn send_dead_letter(
    producer: &TxProducer,
    config: &Config,
    d: cardlink_wire::v1::DeadLetter,
    ts: Option<i64>,
) -> Result<(), Error> {
    let bytes = encode_dead_letter(config.formats.dead_letters, d);
    let mut r = BaseRecord::<[u8], [u8]>::to(&config.topics.dead_letters).payload(&bytes[..]);
    if let Some(ts) = ts {
        r = r.timestamp(ts);
    }
    send(producer, r).map_err(|e| Error::kafka("producing a dead letter", e))
}
