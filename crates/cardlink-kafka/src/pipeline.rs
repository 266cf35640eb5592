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
//!
//! Budgets are leased ([`crate::budget`]): a partition spends only its slice
//! of a budget, and claims the next share ahead of need, in the open
//! transaction, when its slack runs low. An event that needs more than the
//! slice is *held*: claims for more go into the open transaction, and the
//! partition's later records wait in memory (its *backlog*; the partition
//! is paused only if that fills) until the budget log (read by this loop)
//! has decided the claims; then the held record and the backlog are
//! processed in order. Drains that other partitions' claims start are
//! answered with releases in the next transaction.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cardlink_core::book::OfferIdx;
use cardlink_core::{Applied, CardStore, Counters, OfferBook, RewardUpdate, apply_with, validate};
use cardlink_observe::metrics as observe;
use cardlink_wire::{decode_card_event, decode_json_event};
use prost::Message as _;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use rust_decimal::{Decimal, RoundingStrategy};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::budget::{
    BudgetOp, BudgetRecord, Grant, Leases, Need, PartBudget, PartitionBudgets, Releasing, claim_record, release_record,
    reward_hint,
};

use crate::codec::apply_change;
use crate::codec::{
    OfferChange, StateScratch, add_usage, decode_card_state, encode_card_state, encode_dead_letter, encode_reward,
};
use crate::config::TopicFormat;
use crate::error::{Class, classify};
use crate::reader::{Reader, assigned_reader, drain, partitions_of};
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
    /// Events held until a budget claim was decided.
    pub held: AtomicU64,
    /// Budget claims written.
    pub budget_claims: AtomicU64,
    /// Budget releases written.
    pub budget_releases: AtomicU64,
    /// Of the budget claims, those written ahead of need (no event held).
    pub budget_ahead: AtomicU64,
    /// Of the held events, those whose claim started or joined a drain.
    pub held_for_drain: AtomicU64,
    /// Time from holds to their claims' decisions, summed.
    pub held_micros: AtomicU64,
    /// Held partitions paused because their backlog was full.
    pub held_paused: AtomicU64,
    /// Readiness, assignment and lag for the admin server, and its queries.
    pub observed: cardlink_observe::Observed,
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

/// Largest changelog record (one card's state); the state topic is created
/// to accept it.
pub const MAX_STATE_BYTES: usize = 16 * 1024 * 1024;

/// How long a transaction holding a claim or a drain's answer stays open:
/// a held event waits for its commit, so it comes before the cadence.
const URGENT_COMMIT: Duration = Duration::from_millis(5);

/// How often the loop reads the budget log and answers drains.
const BUDGET_EVERY: Duration = Duration::from_millis(5);

/// One input partition this instance holds.
#[derive(Default)]
struct Part {
    store: CardStore,
    /// Cards changed in the open transaction.
    dirty: FxHashSet<Box<str>>,
    /// Offset after the last record processed in the open transaction.
    next: Option<i64>,
    /// Offset after the last record processed, or the committed offset at
    /// assignment: what a transaction commits for this partition when it
    /// holds budget records of it but none of its input records.
    position: i64,
    /// The open transaction holds budget records of this partition: its
    /// offsets go with them, so that a zombie owner's commit is fenced.
    fence: bool,
    /// Budget usage and leases of this partition.
    budget: PartBudget,
    /// The record held until its budget claims are decided.
    held: Option<Held>,
    /// Records that arrived after the held one, in order, to process once
    /// its claims are decided (rather than pause and fetch them again).
    backlog: VecDeque<OwnedRecord>,
    /// Paused because the backlog is full: read again from after its last
    /// record once it is processed.
    paused: bool,
    /// The held record's offset, from its claims' decision until it is
    /// applied again: its grants are not slack to give back meanwhile.
    rewound: Option<i64>,
}

/// Gives the C heap's free pages back to the system. librdkafka allocates
/// with glibc's malloc, whose arenas keep what a restore's fetch buffers
/// freed; the 30-minute soak showed RSS stepping up at each restore and
/// staying there.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap memory to the kernel; it
    // touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Part {
    /// An empty partition whose cards remember as long as the
    /// configuration's state retention says.
    fn new(config: &Config) -> Self {
        Part { store: CardStore::with_retention(config.pipeline.retention_days), ..Part::default() }
    }
}

/// A record held for budget.
struct Held {
    record: OwnedRecord,
    claims: Vec<HeldClaim>,
    since: Instant,
}

/// What the loop reads of an input record.
#[derive(Clone, Copy)]
struct Record<'a> {
    partition: i32,
    offset: i64,
    key: Option<&'a [u8]>,
    payload: &'a [u8],
    timestamp: Option<i64>,
}

impl<'a> Record<'a> {
    fn of(m: &'a BorrowedMessage<'_>) -> Self {
        Record {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key(),
            payload: m.payload().unwrap_or(&[]),
            timestamp: m.timestamp().to_millis(),
        }
    }

    fn to_owned(self) -> OwnedRecord {
        OwnedRecord {
            partition: self.partition,
            offset: self.offset,
            key: self.key.map(Box::from),
            payload: Box::from(self.payload),
            timestamp: self.timestamp,
        }
    }
}

/// A record kept while its partition is held.
struct OwnedRecord {
    partition: i32,
    offset: i64,
    key: Option<Box<[u8]>>,
    payload: Box<[u8]>,
    timestamp: Option<i64>,
}

impl OwnedRecord {
    fn record(&self) -> Record<'_> {
        Record {
            partition: self.partition,
            offset: self.offset,
            key: self.key.as_deref(),
            payload: &self.payload,
            timestamp: self.timestamp,
        }
    }
}

struct HeldClaim {
    id: String,
    offer: OfferIdx,
    decided: bool,
    after_drain: bool,
}

/// The open transaction's tallies.
struct Txn {
    began: Instant,
    /// Holds budget records that a held event (here or elsewhere) waits
    /// for: committed after [`URGENT_COMMIT`] rather than the cadence.
    urgent: bool,
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
    /// The fold of the budget log, and the reader that follows it (none in
    /// pass-through mode).
    leases: Leases,
    budget_reader: Option<Reader>,
    budget_topic: String,
    budget_partitions: Vec<i32>,
    budget_polled: Instant,
    /// What claims are written with.
    claiming: Claiming,
    /// Number of the open (or next) transaction, to tell its releases.
    txn_seq: u64,
    needs: Vec<Need>,
    /// Partitions or offers changed: look for claims ahead at the next
    /// budget tick.
    sweep: bool,
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

    fn stats(&self, statistics: rdkafka::Statistics) {
        // Served inside `poll`, where the loop holds no lock; `try_lock`
        // only guards against a callback from elsewhere.
        let Ok(core) = self.core.try_lock() else { return };
        let topic = &core.config.topics.events;
        if let Some(t) = statistics.topics.get(topic) {
            let held = t.partitions.values().filter(|p| p.partition >= 0 && p.desired);
            core.stats.observed.set_lag(topic, held.map(|p| (p.partition, lag(p))));
        }
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
    let budget_topic = config.budget_topic();
    let (budget_partitions, event_partitions) = if mode == Mode::Match {
        (partitions_of(config, &budget_topic)?, partitions_of(config, &config.topics.events)?.len() as u32)
    } else {
        (Vec::new(), 1)
    };
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
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
        leases: Leases::default(),
        budget_reader: None,
        budget_topic,
        budget_partitions,
        budget_polled: Instant::now(),
        claiming: Claiming {
            prefix: format!("{}-{:x}", config.transactional_id(), started.as_nanos()),
            seq: 0,
            partitions: event_partitions.max(1),
            largest: FxHashMap::default(),
        },
        txn_seq: 0,
        needs: Vec::new(),
        sweep: false,
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
    core.report();
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
            // Held partitions wait for the budget log: look at it often.
            let idle = if core.waiting_for_budget() { BUDGET_EVERY } else { Duration::from_millis(100) };
            match &core.txn {
                Some(t) => {
                    let due = if t.urgent { URGENT_COMMIT } else { interval };
                    due.saturating_sub(t.began.elapsed()).min(idle)
                }
                None => idle,
            }
        };
        let polled = consumer.poll(timeout);
        let mut core = consumer.context().core();
        if let Some(e) = core.failed.take() {
            return Err(e);
        }
        while let Ok(change) = core.changes.try_recv() {
            apply_change(&mut core.book, change);
            core.sweep = true;
        }
        {
            let Core { book, parts, stats, .. } = &*core;
            stats.observed.serve(book, || parts.iter().map(|(p, part)| (Some(*p), &part.store)));
        }
        match polled {
            None => {}
            Some(Ok(m)) => {
                if let Err(e) = core.process(consumer, Record::of(&m)) {
                    core.recover(consumer, e, &[])?;
                }
            }
            Some(Err(e)) => consumer_error(&e)?,
        }
        if core.budget_polled.elapsed() >= BUDGET_EVERY {
            core.budget_polled = Instant::now();
            if let Err(e) = core
                .follow_budget()
                .and_then(|()| core.drain_backlogs(consumer))
                .and_then(|()| core.answer_drains())
                .and_then(|()| core.sweep())
            {
                core.recover(consumer, e, &[])?;
            }
        }
        if let Some(t) = &core.txn {
            let age = t.began.elapsed();
            if t.records >= max_records || age >= interval || (t.urgent && age >= URGENT_COMMIT) {
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

/// Records from a partition's position to its last stable offset. The
/// statistics' own `consumer_lag` counts from the consumer's committed
/// offset, which transactional commits (made by the producer) never
/// update; the position is the next record the loop reads, else the
/// committed offset, else the start.
fn lag(p: &rdkafka::statistics::Partition) -> i64 {
    let end = if p.ls_offset >= 0 { p.ls_offset } else { p.hi_offset };
    let position = [p.app_offset, p.committed_offset].into_iter().filter(|o| *o >= 0).max();
    match position.or((p.lo_offset >= 0).then_some(p.lo_offset)) {
        Some(at) if end >= 0 => (end - at).max(0),
        _ => -1,
    }
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
        .set("heartbeat.interval.ms", (p.session_timeout_ms / 4).max(500).to_string())
        // Consumer lag per partition for the admin server and /metrics.
        .set("statistics.interval.ms", "5000");
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
        // A card's state is one changelog record: allow large ones.
        .set("message.max.bytes", (MAX_STATE_BYTES + 64 * 1024).to_string())
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        // Failed deliveries fail the commit; successful ones need no report.
        .set("delivery.report.only.error", "true")
        // A transaction that begins while the broker still writes the
        // previous one's markers is refused (CONCURRENT_TRANSACTIONS) and
        // retried after this backoff, doubling up to retry.backoff.max.ms:
        // librdkafka's 100 ms made each quick commit after another (a held
        // event's) wait 100+ ms; the Java client uses 20 ms here.
        .set("retry.backoff.ms", "10");
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
            self.txn = Some(Txn { began: Instant::now(), urgent: false, records: 0, rewards: 0, dead_letters: 0 });
        }
        Ok(())
    }

    /// Whether a held partition waits for the budget log.
    fn waiting_for_budget(&self) -> bool {
        self.leases.any_waiting() || self.parts.values().any(|p| p.held.is_some())
    }

    /// Processes one input record inside the open transaction; a record of
    /// a held partition joins its backlog.
    fn process(&mut self, consumer: &Consumer_, m: Record<'_>) -> Result<(), Error> {
        let p = m.partition;
        match self.parts.get_mut(&p) {
            None => {
                // Not ours (any more): librdkafka drops such records itself;
                // this is only a guard.
                log::warn!("record of unassigned partition {p} skipped");
                return Ok(());
            }
            Some(part) if part.held.is_some() || !part.backlog.is_empty() => {
                let last = part
                    .backlog
                    .back()
                    .map_or_else(|| part.held.as_ref().map_or(-1, |h| h.record.offset), |r| r.offset);
                // Anything at or before the last kept record is a record
                // fetched again: it is kept already.
                if m.offset > last {
                    part.backlog.push_back(m.to_owned());
                    if part.backlog.len() >= self.config.pipeline.max_held_records && !part.paused {
                        part.paused = true;
                        self.stats.held_paused.fetch_add(1, Ordering::Relaxed);
                        let mut tpl = TopicPartitionList::new();
                        tpl.add_partition(&self.config.topics.events, p);
                        consumer.pause(&tpl).map_err(|e| Error::kafka(format!("pausing partition {p}"), e))?;
                    }
                }
                return Ok(());
            }
            Some(_) => {}
        }
        self.process_now(m)
    }

    /// Processes a record of a partition that holds none.
    fn process_now(&mut self, m: Record<'_>) -> Result<(), Error> {
        let p = m.partition;
        self.begin()?;
        let Core {
            config,
            mode,
            producer,
            book,
            parts,
            txn,
            counters,
            buf,
            leases,
            needs,
            budget_topic,
            stats,
            claiming,
            ..
        } = self;
        let txn = txn.as_mut().expect("begun above");
        let part = parts.get_mut(&p).expect("checked above");
        let before = part.next;
        part.next = Some(m.offset + 1);
        txn.records += 1;
        stats.consumed.fetch_add(1, Ordering::Relaxed);
        let payload = m.payload;
        let ts = m.timestamp;
        let topics = &config.topics;
        if *mode == Mode::PassThrough {
            let mut r = BaseRecord::to(&topics.rewards).payload(payload);
            if let Some(k) = m.key {
                r = r.key(k);
            }
            if let Some(ts) = ts {
                r = r.timestamp(ts);
            }
            txn.rewards += 1;
            return send(producer, r).map_err(|e| Error::kafka("producing", e));
        }

        let timer = observe::match_timer();
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
                        observe::reward(u);
                        failed = send(producer, r).err();
                    };
                    needs.clear();
                    let mut budgets = PartitionBudgets {
                        leases,
                        part: &mut part.budget,
                        partition: p,
                        needs: &mut *needs,
                        largest: &mut claiming.largest,
                    };
                    let outcome = apply_with(book, &mut part.store, &event, &mut budgets, &mut sink);
                    txn.rewards += produced;
                    if outcome != Ok(Applied::Held) {
                        part.budget.final_for.clear();
                    }
                    if part.rewound.is_some_and(|o| m.offset >= o) {
                        part.rewound = None;
                    }
                    if !part.budget.touched.is_empty() {
                        let mut w = ClaimWriter { producer, topic: budget_topic, stats, claiming };
                        for idx in std::mem::take(&mut part.budget.touched) {
                            if leases.tail(&book.slot(idx).offer.id) {
                                if !part.budget.freed.contains(&idx) {
                                    part.budget.freed.push(idx);
                                }
                            } else {
                                w.claim_ahead(book, leases, part, p, idx)?;
                            }
                        }
                    }
                    match outcome {
                        Ok(Applied::Held) => {
                            // Not processed: the partition waits for more
                            // budget and reads this record again.
                            part.next = before;
                            txn.records -= 1;
                            stats.consumed.fetch_sub(1, Ordering::Relaxed);
                            return self.hold(m);
                        }
                        Ok(Applied::Processed) => {
                            counters.processed += 1;
                            observe::event_processed(event.kind());
                            if !part.dirty.contains(event.card_token) {
                                part.dirty.insert(Box::from(event.card_token));
                            }
                        }
                        Ok(Applied::Duplicate) => {
                            counters.duplicate += 1;
                            observe::event_duplicate(event.kind());
                        }
                        Err(_) if failed.is_some() => {}
                        Err(rejection) => {
                            counters.count_rejection(rejection.reason);
                            observe::event_rejected(rejection.reason);
                            let d = cardlink_wire::dead_letter(
                                &rejection,
                                Some(raw),
                                payload,
                                format!("{}/{p}@{}", topics.events, m.offset),
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
            observe::event_rejected(rejection.reason);
            let d = cardlink_wire::dead_letter(
                &rejection,
                raw.as_ref().ok(),
                payload,
                format!("{}/{p}@{}", topics.events, m.offset),
            );
            txn.dead_letters += 1;
            send_dead_letter(producer, config, d, ts)?;
        }
        observe::matched(timer);
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
                    if self.buf.len() > MAX_STATE_BYTES {
                        // Retrying cannot help: stop with the cause rather
                        // than abort the same transaction forever.
                        return Err(Error::Fatal(format!(
                            "the state of a card in partition {p} is {} bytes, above the {MAX_STATE_BYTES}-byte \
                             changelog record limit: bound per-card state with retention (docs/reliability.md, \"State retention\")",
                            self.buf.len()
                        )));
                    }
                    let r = BaseRecord::to(state_topic).partition(p).key(token.as_bytes()).payload(&self.buf[..]);
                    send(&self.producer, r).map_err(|e| Error::kafka("writing the changelog", e))?;
                }
            }
            if part.next.is_some() || part.fence {
                let next = part.next.unwrap_or(part.position);
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
        observe::transaction_committed(records, began.elapsed());
        self.txn = None;
        let seq = self.txn_seq;
        self.txn_seq += 1;
        for part in self.parts.values_mut() {
            if let Some(next) = part.next.take() {
                part.position = next;
            }
            part.fence = false;
            for q in part.budget.releasing.values_mut() {
                for r in q.iter_mut().filter(|r| r.txn == Some(seq)) {
                    r.txn = None;
                }
            }
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
        let aborted = self.txn_seq;
        self.txn_seq += 1;
        let touched: Vec<i32> = self
            .parts
            .iter()
            .filter(|(p, part)| {
                (part.next.is_some() || !part.dirty.is_empty() || part.fence || part.held.is_some())
                    && !leaving.contains(p)
            })
            .map(|(p, _)| *p)
            .collect();
        for part in self.parts.values_mut() {
            part.next = None;
            part.dirty.clear();
            part.fence = false;
            part.budget.retain_releasing(|r| r.txn != Some(aborted));
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
            if let (Some(part), Offset::Offset(o)) = (self.parts.get_mut(&p), at) {
                part.position = o;
            }
        }
        // A held partition was paused; it starts over unpaused.
        let mut tpl = TopicPartitionList::new();
        for &p in &touched {
            tpl.add_partition(&self.config.topics.events, p);
        }
        consumer.resume(&tpl).map_err(|e| Error::kafka("resuming partitions", e))?;
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
                self.parts.insert(p, Part::new(&self.config));
            }
            return Ok(());
        }
        let started = Instant::now();
        let topic = &self.config.topics.state;
        let reader = assigned_reader(&self.config, "restore", topic, partitions)?;
        // Each record is decoded as it is read, a later one of a card
        // replacing the earlier: memory holds the restored state and no
        // more (collecting the records first doubled the peak, and the
        // allocator keeps a peak). A record that does not decode is fatal
        // only if no later record of the card replaces it.
        let mut parts: FxHashMap<i32, Part> = partitions.iter().map(|&p| (p, Part::new(&self.config))).collect();
        let mut undecodable: FxHashMap<(i32, Box<str>), String> = FxHashMap::default();
        let book = &mut self.book;
        let records = drain(&reader, topic, partitions, RESTORE_IDLE, |m| {
            let Some(key) = m.key() else { return Ok(()) };
            let Some(part) = parts.get_mut(&m.partition()) else { return Ok(()) };
            let token = String::from_utf8_lossy(key);
            undecodable.remove(&(m.partition(), Box::from(&*token)));
            match m.payload() {
                Some(v) if !v.is_empty() => match decode_card_state(book, v) {
                    Ok(card) => part.store.insert(&token, card),
                    Err(e) => {
                        part.store.remove(&token);
                        undecodable.insert((m.partition(), Box::from(&*token)), e);
                    }
                },
                _ => {
                    part.store.remove(&token);
                }
            }
            Ok(())
        })?;
        if let Some(((p, token), e)) = undecodable.into_iter().next() {
            return Err(Error::Fatal(format!("{topic}/{p}: state of {token}: {e}")));
        }
        let mut cards = 0;
        for (p, mut part) in parts {
            for (_, card) in part.store.iter() {
                add_usage(&mut self.book, card, true);
                part.budget.add_card(&self.book, card);
            }
            cards += part.store.len();
            self.parts.insert(p, part);
        }
        log::info!(
            "restored partitions {partitions:?}: {cards} cards from {records} changelog records in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        drop(reader);
        release_free_memory();
        // The slices of the restored partitions must include every release
        // their previous owners committed: read the budget log anew.
        self.reload_budget()
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
        let committed = match consumer.committed_offsets(tpl.clone(), Duration::from_secs(120)) {
            Ok(c) => c,
            Err(e) => {
                self.failed = Some(Error::kafka("waiting for stable committed offsets", e));
                return;
            }
        };
        self.stats.observed.restoring();
        let new: Vec<i32> = partitions.iter().copied().filter(|p| !self.parts.contains_key(p)).collect();
        if let Err(e) = self.restore(&new) {
            self.failed = Some(e);
            return;
        }
        let mut fresh = TopicPartitionList::new();
        for &p in &new {
            if let (Some(part), Some(Offset::Offset(o))) =
                (self.parts.get_mut(&p), committed.find_partition(&topic, p).map(|e| e.offset()))
            {
                part.position = o;
            }
            fresh.add_partition(&topic, p);
        }
        // librdkafka keeps a partition's pause across a revoke and a new
        // assignment; a partition held for budget when it was revoked must
        // not come back paused (its held record is gone with its state).
        if let Err(e) = consumer.resume(&fresh) {
            self.failed = Some(Error::kafka("resuming newly assigned partitions", e));
            return;
        }
        self.stats.observed.assigned(&partitions);
        self.sweep = true;
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
        self.stats.observed.revoked(&partitions);
        for p in partitions {
            self.drop_partition(p);
        }
    }

    /// Holds a record: claims what it needs (in the open transaction), and
    /// keeps it and its partition's later records until the claims are
    /// decided.
    fn hold(&mut self, m: Record<'_>) -> Result<(), Error> {
        let p = m.partition;
        let Core { book, leases, parts, needs, producer, budget_topic, stats, claiming, .. } = self;
        let part = parts.get_mut(&p).expect("held by us");
        let mut w = ClaimWriter { producer, topic: budget_topic, stats, claiming };
        let mut claims = Vec::with_capacity(needs.len());
        for need in needs.drain(..) {
            let offer = &book.slot(need.idx).offer;
            if offer.budget.is_none() {
                continue;
            }
            // Room for this reward and one more like the largest yet, or a
            // share of what is left if that is more.
            let largest = reward_hint(offer, w.claiming.largest.get(&need.idx).copied());
            let want = (need.amount + largest).max(w.share(leases, offer));
            if !leases.tail(&offer.id) && leases.pool(&offer.id).is_some_and(|pool| pool < need.amount) {
                w.stats.held_for_drain.fetch_add(1, Ordering::Relaxed);
            }
            let id = w.claim(offer, p, need.amount, want)?;
            claims.push(HeldClaim { id, offer: need.idx, decided: false, after_drain: false });
        }
        stats.held.fetch_add(1, Ordering::Relaxed);
        part.fence = true;
        if let Some(t) = &mut self.txn {
            t.urgent = true;
        }
        part.held = Some(Held { record: m.to_owned(), claims, since: Instant::now() });
        log::debug!("partition {p} holds offset {} for budget", m.offset);
        Ok(())
    }

    /// Processes the backlogs of partitions whose claims are decided, until
    /// each is empty or held again; a partition paused for a full backlog
    /// reads on from after its last record.
    fn drain_backlogs(&mut self, consumer: &Consumer_) -> Result<(), Error> {
        let ready: Vec<i32> =
            self.parts.iter().filter(|(_, p)| p.held.is_none() && !p.backlog.is_empty()).map(|(&p, _)| p).collect();
        for p in ready {
            while let Some(part) = self.parts.get_mut(&p) {
                if part.held.is_some() {
                    break;
                }
                let Some(r) = part.backlog.pop_front() else {
                    if std::mem::take(&mut part.paused) {
                        let at = part.next.unwrap_or(part.position);
                        let topic = &self.config.topics.events;
                        consumer
                            .seek(topic, p, Offset::Offset(at), Duration::from_secs(10))
                            .map_err(|e| Error::Fatal(format!("moving partition {p} to {at}: {e}")))?;
                        let mut tpl = TopicPartitionList::new();
                        tpl.add_partition(topic, p);
                        consumer.resume(&tpl).map_err(|e| Error::kafka(format!("resuming partition {p}"), e))?;
                    }
                    break;
                };
                self.process_now(r.record())?;
            }
        }
        Ok(())
    }

    /// Folds what the budget log has new, and resumes the partitions whose
    /// claims are decided.
    fn follow_budget(&mut self) -> Result<(), Error> {
        let Some(reader) = &self.budget_reader else { return Ok(()) };
        let mut grants = Vec::new();
        for _ in 0..10_000 {
            match reader.poll(Duration::ZERO) {
                None => break,
                Some(Ok(m)) => fold(&mut self.leases, &mut self.parts, m.payload(), &mut grants),
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) if crate::reader::is_transport(&e) => log::debug!("reading {}: {e}", self.budget_topic),
                Some(Err(e)) => log::warn!("reading {}: {e}", self.budget_topic),
            }
        }
        self.decide(&grants);
        Ok(())
    }

    /// Marks held claims decided; a partition whose claims are all decided
    /// has its held record put back first in its backlog.
    fn decide(&mut self, grants: &[Grant]) {
        for g in grants {
            let Some(part) = self.parts.get_mut(&g.partition) else { continue };
            part.budget.ahead.retain(|(_, id)| **id != *g.claim_id);
            let Some(held) = &mut part.held else { continue };
            let Some(claim) = held.claims.iter_mut().find(|c| c.id == g.claim_id) else { continue };
            claim.decided = true;
            claim.after_drain = g.after_drain;
            if !held.claims.iter().all(|c| c.decided) {
                continue;
            }
            let held = part.held.take().expect("checked above");
            self.stats.held_micros.fetch_add(held.since.elapsed().as_micros() as u64, Ordering::Relaxed);
            for c in held.claims.iter().filter(|c| c.after_drain) {
                part.budget.final_for.push(c.offer);
            }
            log::debug!("partition {} goes on at {} with more budget", g.partition, held.record.offset);
            part.rewound = Some(held.record.offset);
            part.backlog.push_front(held.record);
        }
    }

    /// Answers the drains other partitions' claims started, and gives back
    /// what reversals and refunds freed of exhausted offers, as releases in
    /// the open transaction.
    fn answer_drains(&mut self) -> Result<(), Error> {
        if self.budget_reader.is_none() {
            return Ok(());
        }
        let mut releases: Vec<(i32, Box<str>, Decimal, u64)> = Vec::new();
        for (&p, part) in &mut self.parts {
            if self.leases.any_waiting() {
                for (offer, drain) in self.leases.owed(p) {
                    if !part.budget.answering(offer, drain) {
                        // A held event spends its partition's slack and
                        // grants once applied: giving them away would only
                        // make it claim again (and two held partitions
                        // could take turns forever).
                        let slack = if part.held.is_some() || part.rewound.is_some() {
                            Decimal::ZERO
                        } else {
                            part.budget.slack(&self.leases, offer, self.book.find(offer), p).max(Decimal::ZERO)
                        };
                        releases.push((p, offer.into(), slack, drain));
                    }
                }
            }
            if part.held.is_some() || part.rewound.is_some() {
                // Its grants wait for the held event: give back later.
                continue;
            }
            for idx in std::mem::take(&mut part.budget.freed) {
                let offer = &self.book.slot(idx).offer.id;
                if self.leases.tail(offer) && !releases.iter().any(|r| r.0 == p && &r.1 == offer) {
                    let slack = part.budget.slack(&self.leases, offer, Some(idx), p);
                    if slack > Decimal::ZERO {
                        releases.push((p, offer.clone(), slack, 0));
                    }
                }
            }
        }
        if releases.is_empty() {
            return Ok(());
        }
        self.begin()?;
        if let Some(t) = &mut self.txn {
            // Claims elsewhere wait for these answers.
            t.urgent |= releases.iter().any(|r| r.3 > 0);
        }
        for (p, offer, amount, drain) in releases {
            let bytes = release_record(&offer, p, amount, drain);
            let record = BaseRecord::to(self.budget_topic.as_str()).key(offer.as_bytes()).payload(&bytes[..]);
            send(&self.producer, record).map_err(|e| Error::kafka("writing a budget release", e))?;
            self.stats.budget_releases.fetch_add(1, Ordering::Relaxed);
            let part = self.parts.get_mut(&p).expect("listed above");
            part.fence = true;
            let r = Releasing { amount, drain, txn: Some(self.txn_seq) };
            part.budget.releasing.entry(offer).or_default().push_back(r);
        }
        Ok(())
    }

    /// Claims ahead for every budgeted offer on every partition held, after
    /// an assignment or a change of offers (a partition's first claim of an
    /// offer would otherwise hold its first event that needs it).
    fn sweep(&mut self) -> Result<(), Error> {
        if !std::mem::take(&mut self.sweep) || self.budget_reader.is_none() {
            return Ok(());
        }
        let budgeted: Vec<OfferIdx> = self
            .book
            .slots()
            .filter(|(_, s)| s.active && s.offer.budget.is_some() && !self.leases.tail(&s.offer.id))
            .map(|(idx, _)| idx)
            .collect();
        if budgeted.is_empty() {
            return Ok(());
        }
        self.begin()?;
        let Core { book, leases, parts, producer, budget_topic, stats, claiming, .. } = self;
        let mut w = ClaimWriter { producer, topic: budget_topic, stats, claiming };
        for (&p, part) in parts.iter_mut() {
            for &idx in &budgeted {
                w.claim_ahead(book, leases, part, p, idx)?;
            }
        }
        Ok(())
    }

    /// Reads the budget log from the beginning to its end, anew, and
    /// follows it from there. Releases this instance committed are in it
    /// then; only those of the open transaction stay pending.
    fn reload_budget(&mut self) -> Result<(), Error> {
        if self.mode == Mode::PassThrough {
            return Ok(());
        }
        let topic = self.budget_topic.clone();
        let reader = assigned_reader(&self.config, "budget", &topic, &self.budget_partitions)?;
        let mut leases = Leases::default();
        let mut grants = Vec::new();
        drain(&reader, &topic, &self.budget_partitions, RESTORE_IDLE, |m| {
            fold(&mut leases, &mut BTreeMap::new(), m.payload(), &mut grants);
            Ok(())
        })?;
        self.leases = leases;
        self.budget_reader = Some(reader);
        for part in self.parts.values_mut() {
            part.budget.retain_releasing(|r| r.txn.is_some());
        }
        self.decide(&grants);
        Ok(())
    }

    fn report(&self) {
        let s = &self.stats;
        log::info!(
            "consumed {} committed {} transactions {} aborted {} rewards {} dead letters {}; budget: {} held ({} for a drain, {} paused; {:.1} ms on average), {} claims ({} ahead), {} releases; holding {} partitions, {} cards, {:.1} MiB of card state",
            s.consumed.load(Ordering::Relaxed),
            s.committed.load(Ordering::Relaxed),
            s.transactions.load(Ordering::Relaxed),
            s.aborted.load(Ordering::Relaxed),
            s.rewards.load(Ordering::Relaxed),
            s.dead_letters.load(Ordering::Relaxed),
            s.held.load(Ordering::Relaxed),
            s.held_for_drain.load(Ordering::Relaxed),
            s.held_paused.load(Ordering::Relaxed),
            s.held_micros.load(Ordering::Relaxed) as f64 / 1000.0 / s.held.load(Ordering::Relaxed).max(1) as f64,
            s.budget_claims.load(Ordering::Relaxed),
            s.budget_ahead.load(Ordering::Relaxed),
            s.budget_releases.load(Ordering::Relaxed),
            self.parts.len(),
            self.parts.values().map(|p| p.store.len()).sum::<usize>(),
            // What the cards' state allocates: memory above it is the
            // process's own (clients, buffers, allocator).
            self.parts.values().map(|p| p.store.heap_bytes()).sum::<usize>() as f64 / 1048576.0,
        );
    }
}

/// What claims are written with, across events.
struct Claiming {
    /// Makes claim ids unique across instances and restarts.
    prefix: String,
    /// Claims written so far: the rest of each claim's id.
    seq: u64,
    /// Partitions of the input: a claim asks for a share of the pool.
    partitions: u32,
    /// The largest single reward value spent per budgeted offer here.
    largest: FxHashMap<OfferIdx, Decimal>,
}

/// Writes budget claims into the open transaction.
struct ClaimWriter<'a> {
    producer: &'a TxProducer,
    topic: &'a str,
    stats: &'a Stats,
    claiming: &'a mut Claiming,
}

impl ClaimWriter<'_> {
    /// A share of what is left of `offer`'s budget: a quarter of the pool
    /// divided among the input partitions, so that claims are rare while
    /// much is left and small when little is.
    fn share(&self, leases: &Leases, offer: &cardlink_core::Offer) -> Decimal {
        let budget = offer.budget.unwrap_or_default();
        let pool = leases.pool(&offer.id).unwrap_or(budget);
        (pool / Decimal::from(4 * self.claiming.partitions))
            .round_dp_with_strategy(offer.value_digits(), RoundingStrategy::ToZero)
    }

    /// Writes a claim of `p` for `offer` and returns its id.
    fn claim(&mut self, offer: &cardlink_core::Offer, p: i32, need: Decimal, want: Decimal) -> Result<String, Error> {
        self.claiming.seq += 1;
        let id = format!("{}-{}", self.claiming.prefix, self.claiming.seq);
        let budget = offer.budget.unwrap_or_default();
        let bytes = claim_record(&offer.id, p, &id, need, want, budget);
        let record = BaseRecord::to(self.topic).key(offer.id.as_bytes()).payload(&bytes[..]);
        send(self.producer, record).map_err(|e| Error::kafka("writing a budget claim", e))?;
        self.stats.budget_claims.fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }

    /// Claims ahead of need (need zero: it never waits and nothing waits
    /// for it) when `p`'s slack of the offer in `idx` is below half a
    /// share and no claim of it is on its way: the next share usually
    /// arrives before the slack runs out, and no event is held.
    fn claim_ahead(
        &mut self,
        book: &OfferBook,
        leases: &Leases,
        part: &mut Part,
        p: i32,
        idx: OfferIdx,
    ) -> Result<(), Error> {
        let offer = &book.slot(idx).offer;
        if offer.budget.is_none()
            || part.held.is_some()
            || part.budget.ahead.iter().any(|(i, _)| *i == idx)
            || leases.tail(&offer.id)
        {
            return Ok(());
        }
        // Low: below the largest reward yet, or below half a share (slack
        // < share / 2, without a division on every event).
        let pool = leases.pool(&offer.id).or(offer.budget).unwrap_or_default();
        let slack = part.budget.slack(leases, &offer.id, Some(idx), p);
        let largest = reward_hint(offer, self.claiming.largest.get(&idx).copied());
        if slack >= largest && slack * Decimal::from(8 * self.claiming.partitions) >= pool {
            return Ok(());
        }
        let want = self.share(leases, offer).max(largest * Decimal::TWO);
        if want.is_zero() || pool.is_zero() {
            return Ok(());
        }
        let id = self.claim(offer, p, Decimal::ZERO, want)?;
        part.budget.ahead.push((idx, id.into()));
        // The claim commits with the partition's offsets: a zombie owner's
        // claims are fenced with its transaction.
        part.fence = true;
        self.stats.budget_ahead.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Folds one budget-log record into the leases; a release of a partition
/// held here is one this instance wrote, now read back.
fn fold(leases: &mut Leases, parts: &mut BTreeMap<i32, Part>, payload: Option<&[u8]>, grants: &mut Vec<Grant>) {
    let record = match BudgetRecord::decode(payload.unwrap_or_default()) {
        Ok(r) => r,
        Err(e) => return log::error!("undecodable budget record ignored: {e}"),
    };
    if let (Some(BudgetOp::Release(_)), Some(part)) = (&record.op, parts.get_mut(&record.partition)) {
        part.budget.read_back(&record.offer_id);
    }
    if let Err(e) = leases.apply(&record, grants) {
        log::error!("budget record ignored: {e}");
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
