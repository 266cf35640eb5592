//! Producers of the pipeline's inputs: a simulated feed into the events
//! topic (`cardlink simulate --kafka`) and offer files into the offers
//! topic (`cardlink offers publish`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cardlink_sim::{SimConfig, SimRecord, Simulator};
use prost::Message;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use serde_json::Value;

use crate::codec::encode_offer;
use crate::config::TopicFormat;
use crate::{Config, Error};

/// Counts failed deliveries, keeping the first reason.
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    first: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert_with(|| e.to_string());
        }
    }
}

/// An idempotent producer: a retried send never duplicates or reorders a
/// record, so the topic holds the feed exactly as generated.
fn producer(config: &Config, role: &str) -> Result<BaseProducer<Deliveries>, Error> {
    let mut c = config.client(role);
    c.set("enable.idempotence", "true")
        // Kafka's default partitioner (the Java client's), so a card's
        // partition is the same whoever produces its events, and the admin
        // server can tell which instance owns a card.
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "10")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "500000")
        // Rides out a broker restart on a loaded machine; a record still
        // undelivered then fails the feed with a clear error.
        .set("message.timeout.ms", "300000")
        .set("delivery.report.only.error", "true");
    config.finish(c).create_with_context(Deliveries::default()).map_err(|e| Error::kafka("creating a producer", e))
}

fn send(producer: &BaseProducer<Deliveries>, mut record: BaseRecord<'_, [u8], [u8]>) -> Result<(), Error> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(Error::kafka("producing", e)),
        }
    }
}

fn finish(producer: &BaseProducer<Deliveries>, what: &str) -> Result<(), Error> {
    producer.flush(Duration::from_secs(300)).map_err(|e| Error::kafka(format!("flushing {what}"), e))?;
    let ctx = producer.context();
    let failed = ctx.failed.load(Ordering::Relaxed);
    if failed > 0 {
        let first = ctx.first.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default();
        return Err(Error::Fatal(format!("{failed} {what} records were not delivered: {first}")));
    }
    Ok(())
}

/// The record key of a simulated record: the card token (so that a card's
/// events stay in order on one partition), else the event id; garbage gets
/// a key of its own.
pub fn feed_key(record: &SimRecord, index: u64) -> String {
    match record {
        SimRecord::Event(e) => match (&e.card_token, &e.event_id) {
            (Some(t), _) if !t.is_empty() => t.clone(),
            (_, Some(id)) if !id.is_empty() => id.clone(),
            _ => format!("record-{index}"),
        },
        SimRecord::Garbage(_) => format!("garbage-{index}"),
    }
}

/// Encodes a simulated record as the value of an events-topic record.
pub fn feed_value(record: &SimRecord, format: TopicFormat, out: &mut Vec<u8>) {
    match (record, format) {
        (SimRecord::Event(e), TopicFormat::Protobuf) => e.encode(out).expect("a Vec grows"),
        (SimRecord::Event(e), TopicFormat::Json) => out.extend_from_slice(cardlink_wire::event_to_json(e).as_bytes()),
        (SimRecord::Garbage(g), _) => out.extend_from_slice(g),
    }
}

/// Produces the feed of `sim` into the events topic, at `rate` records per
/// second or as fast as it goes, calling `progress` with the count now and
/// then. Returns the number of records produced (all delivered).
pub fn produce_feed(
    config: &Config,
    sim: &SimConfig,
    rate: Option<u64>,
    mut progress: impl FnMut(u64),
) -> Result<u64, Error> {
    let producer = producer(config, "simulate")?;
    let topic = &config.topics.events;
    let started = Instant::now();
    let mut buf = Vec::with_capacity(512);
    let mut n = 0u64;
    for record in Simulator::new(sim) {
        if let Some(rate) = rate.filter(|r| *r > 0 && n % 64 == 0) {
            let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
            let now = Instant::now();
            if due > now {
                producer.poll(Duration::ZERO);
                std::thread::sleep(due - now);
            }
        }
        let key = feed_key(&record, n);
        buf.clear();
        feed_value(&record, config.formats.events, &mut buf);
        send(&producer, BaseRecord::to(topic).key(key.as_bytes()).payload(&buf[..]))?;
        n += 1;
        if n % 65_536 == 0 {
            producer.poll(Duration::ZERO);
            progress(n);
        }
    }
    finish(&producer, "event")?;
    progress(n);
    Ok(n)
}

/// Publishes offers (already validated, in the contract's JSON form) to
/// the offers topic, each keyed by its id.
pub fn publish_offers(config: &Config, offers: &[Value]) -> Result<usize, Error> {
    let producer = producer(config, "offers")?;
    for offer in offers {
        let id = offer.get("id").and_then(Value::as_str).ok_or_else(|| Error::Offer("an offer has no id".into()))?;
        let bytes = encode_offer(config.formats.offers, offer);
        send(&producer, BaseRecord::to(&config.topics.offers).key(id.as_bytes()).payload(&bytes[..]))?;
    }
    finish(&producer, "offer")?;
    Ok(offers.len())
}

/// Retires offers: an empty value keyed by each id.
pub fn retire_offers(config: &Config, ids: &[String]) -> Result<(), Error> {
    let producer = producer(config, "offers")?;
    for id in ids {
        send(&producer, BaseRecord::to(&config.topics.offers).key(id.as_bytes()).payload(&[][..]))?;
    }
    finish(&producer, "retirement")
}

/// Produces arbitrary records (key, value) to `topic`, for tests and
/// tools; returns how many were delivered.
pub fn produce_records(
    config: &Config,
    topic: &str,
    records: impl IntoIterator<Item = (Option<Vec<u8>>, Vec<u8>)>,
) -> Result<u64, Error> {
    let producer = producer(config, "records")?;
    let mut n = 0;
    for (key, value) in records {
        let mut r = BaseRecord::to(topic).payload(&value[..]);
        if let Some(k) = &key {
            r = r.key(&k[..]);
        }
        send(&producer, r)?;
        n += 1;
    }
    finish(&producer, "")?;
    Ok(n)
}
