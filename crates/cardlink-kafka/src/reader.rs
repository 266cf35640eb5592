//! Reading partitions from the beginning to their current end, committed
//! records only: what state restores, the offers catch-up, the tests and
//! the benchmark all need.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::{Config, Error};

/// The readers' client context: reaching a partition's end is what they
/// wait for, not an error worth a log line.
pub struct Quiet;

impl rdkafka::ClientContext for Quiet {
    fn error(&self, error: KafkaError, reason: &str) {
        use rdkafka::error::RDKafkaErrorCode as Code;
        match error.rdkafka_error_code() {
            Some(Code::PartitionEOF) => {}
            // librdkafka logs connection trouble itself and reconnects.
            Some(Code::BrokerTransportFailure | Code::AllBrokersDown) => log::debug!("librdkafka: {error}: {reason}"),
            _ => log::warn!("librdkafka: {error}: {reason}"),
        }
    }
}

impl rdkafka::consumer::ConsumerContext for Quiet {}

/// Connection trouble: librdkafka logs it itself and reconnects, so the
/// callers only note it at debug level.
pub(crate) fn is_transport(e: &KafkaError) -> bool {
    use rdkafka::error::RDKafkaErrorCode as Code;
    matches!(e.rdkafka_error_code(), Some(Code::BrokerTransportFailure | Code::AllBrokersDown | Code::Resolve))
}

/// A consumer with the [`Quiet`] context.
pub type Reader = BaseConsumer<Quiet>;

/// A consumer that reads assigned partitions and reports their end.
/// librdkafka needs a group id to assign partitions; this one never
/// subscribes nor commits, so the group stays empty.
pub(crate) fn reader_config(config: &Config, role: &str) -> ClientConfig {
    let mut c = config.client(role);
    c.set("group.id", format!("{}-{role}", config.pipeline.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        // With read_committed the end is the last stable offset, so a
        // restore never sees records of an open or aborted transaction.
        .set("isolation.level", "read_committed")
        // Reaching the end is noticed when an empty fetch returns: do not
        // let the broker hold it for long.
        .set("fetch.wait.max.ms", "20")
        .set("fetch.max.bytes", "16777216")
        .set("max.partition.fetch.bytes", "4194304")
        // A restore reads the whole changelog as fast as it can: librdkafka's
        // default prefetch (64 MiB) filled up, and the C heap kept that
        // much after the restore (soak run F, docs/reliability.md).
        .set("queued.max.messages.kbytes", "16384");
    config.finish(c)
}

/// Creates a reader with every partition of `topic` in `partitions`
/// assigned from the beginning.
pub(crate) fn assigned_reader(config: &Config, role: &str, topic: &str, partitions: &[i32]) -> Result<Reader, Error> {
    let consumer: Reader =
        reader_config(config, role).create_with_context(Quiet).map_err(|e| Error::kafka("reader", e))?;
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).map_err(|e| Error::kafka("reader", e))?;
    }
    consumer.assign(&tpl).map_err(|e| Error::kafka(format!("assigning {topic}"), e))?;
    Ok(consumer)
}

/// Calls `f` with every committed record of `partitions` of `topic`, from
/// the beginning to the end as it was when each partition's end was
/// reached. Fails when nothing happens for `idle` (the broker is gone).
pub(crate) fn drain(
    consumer: &Reader,
    topic: &str,
    partitions: &[i32],
    idle: Duration,
    mut f: impl FnMut(&BorrowedMessage<'_>) -> Result<(), Error>,
) -> Result<u64, Error> {
    let mut remaining: BTreeSet<i32> = partitions.iter().copied().collect();
    let mut last = Instant::now();
    let mut n = 0;
    while !remaining.is_empty() {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                f(&m)?;
                n += 1;
                last = Instant::now();
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                remaining.remove(&p);
                last = Instant::now();
            }
            Some(Err(e)) if is_transport(&e) => log::debug!("reading {topic}: {e}"),
            Some(Err(e)) => log::warn!("reading {topic}: {e}"),
        }
        if last.elapsed() > idle {
            return Err(Error::Fatal(format!(
                "reading {topic}: no progress for {} s (partitions {remaining:?} not at their end)",
                idle.as_secs()
            )));
        }
    }
    Ok(n)
}

/// One record as the tests and the benchmark see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key, if any.
    pub key: Option<Vec<u8>>,
    /// Value, if any.
    pub value: Option<Vec<u8>>,
    /// Timestamp in ms, when the record has one.
    pub timestamp_ms: Option<i64>,
}

/// Every committed record of `topic`, partition by partition, in offset
/// order within each partition. Waits (up to `settle`) until no open
/// transaction hides committed records: a killed producer's transaction
/// holds back the last stable offset until the broker aborts it.
pub fn read_topic(config: &Config, topic: &str, settle: Duration) -> Result<Vec<Record>, Error> {
    use rdkafka::message::Message;
    let partitions = partitions_of(config, topic)?;
    // The true end (high watermark) needs read_uncommitted: under
    // read_committed librdkafka reports the last stable offset instead.
    let mut c = config.client("watermarks");
    c.set("isolation.level", "read_uncommitted");
    let marks: BaseConsumer = config.finish(c).create().map_err(|e| Error::kafka("watermarks", e))?;
    let started = Instant::now();
    loop {
        let consumer = assigned_reader(config, "inspect", topic, &partitions)?;
        let mut out = Vec::new();
        drain(&consumer, topic, &partitions, Duration::from_secs(60), |m| {
            out.push(Record {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                timestamp_ms: m.timestamp().to_millis(),
            });
            Ok(())
        })?;
        let position = consumer.position().map_err(|e| Error::kafka("position", e))?;
        let mut settled = true;
        for &p in &partitions {
            let (_, high) =
                marks.fetch_watermarks(topic, p, Duration::from_secs(30)).map_err(|e| Error::kafka("watermarks", e))?;
            let at = match position.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => 0,
            };
            settled &= at >= high;
        }
        if settled {
            out.sort_by_key(|r| (r.partition, r.offset));
            return Ok(out);
        }
        if started.elapsed() > settle {
            return Err(Error::Fatal(format!("{topic}: open transactions still hide records after {settle:?}")));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The partition ids of `topic`.
pub fn partitions_of(config: &Config, topic: &str) -> Result<Vec<i32>, Error> {
    let consumer: BaseConsumer =
        config.finish(config.client("metadata")).create().map_err(|e| Error::kafka("metadata", e))?;
    let md = consumer.fetch_metadata(Some(topic), config.startup_timeout()).map_err(|e| Error::Unreachable {
        bootstrap: config.kafka.bootstrap.clone(),
        secs: config.startup_timeout().as_secs(),
        detail: e.to_string(),
    })?;
    let t = md.topics().iter().find(|t| t.name() == topic);
    match t {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            Ok(t.partitions().iter().map(|p| p.id()).collect())
        }
        _ => Err(Error::Topic { topic: topic.into(), detail: "does not exist".into() }),
    }
}

/// How far a consumer group is behind on `topic`: the sum over partitions
/// of (end offset − committed offset). Zero when the group has committed
/// everything; a partition the group never committed counts whole.
pub fn group_lag(config: &Config, group: &str, topic: &str) -> Result<i64, Error> {
    let partitions = partitions_of(config, topic)?;
    let mut c = config.client("lag");
    c.set("group.id", group).set("enable.auto.commit", "false");
    let consumer: BaseConsumer = config.finish(c).create().map_err(|e| Error::kafka("lag", e))?;
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        tpl.add_partition(topic, p);
    }
    let committed =
        consumer.committed_offsets(tpl, Duration::from_secs(30)).map_err(|e| Error::kafka("committed offsets", e))?;
    let mut lag = 0;
    for &p in &partitions {
        let (low, high) =
            consumer.fetch_watermarks(topic, p, Duration::from_secs(30)).map_err(|e| Error::kafka("watermarks", e))?;
        let at = match committed.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => low,
        };
        lag += (high - at).max(0);
    }
    Ok(lag)
}
