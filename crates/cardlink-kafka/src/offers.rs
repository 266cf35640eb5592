//! Offers, live: every instance reads the whole offers topic into its book
//! before it processes an event, then follows the topic on a thread of its
//! own and hands each change to the pipeline through a channel. The
//! pipeline applies changes between two records, so processing never
//! pauses for an offer update.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use cardlink_core::OfferBook;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;

use crate::codec::{OfferChange, apply_change, decode_offer};
use crate::reader::{Reader, assigned_reader, drain, partitions_of};
use crate::{Config, Error};

/// The offers as read at start, and the follower that keeps them current.
pub struct Offers {
    /// The book built from the whole topic.
    pub book: OfferBook,
    /// Changes after the initial read, in topic order per partition.
    pub changes: Receiver<OfferChange>,
    /// The follower thread; it ends when `stop` is set or the receiver is
    /// dropped.
    pub follower: JoinHandle<()>,
}

fn handle(config: &Config, m: &rdkafka::message::BorrowedMessage<'_>, out: &mut impl FnMut(OfferChange)) {
    match decode_offer(config.formats.offers, m.key(), m.payload()) {
        Ok(change) => out(change),
        // A bad offer record must not stop the pipeline: the previous
        // definition (if any) stays in force.
        Err(e) => log::error!("{}/{}@{}: invalid offer ignored: {e}", config.topics.offers, m.partition(), m.offset()),
    }
}

/// Reads the whole offers topic (up to its end at the time of the call),
/// then starts the follower.
pub fn start(config: &Config, stop: Arc<AtomicBool>) -> Result<Offers, Error> {
    let topic = config.topics.offers.clone();
    let partitions = partitions_of(config, &topic)?;
    let consumer = assigned_reader(config, "offers", &topic, &partitions)?;
    let mut book = OfferBook::default();
    let n = drain(&consumer, &topic, &partitions, config.startup_timeout().max(Duration::from_secs(30)), |m| {
        handle(config, m, &mut |c| apply_change(&mut book, c));
        Ok(())
    })?;
    log::info!("read {n} offer records from {topic}: {} active offers", book.active_len());
    let (tx, rx) = channel();
    let config = config.clone();
    let follower = std::thread::Builder::new()
        .name("cardlink-offers".into())
        .spawn(move || follow(&config, consumer, tx, &stop))
        .map_err(|e| Error::Fatal(format!("cannot start the offers follower: {e}")))?;
    Ok(Offers { book, changes: rx, follower })
}

fn follow(config: &Config, consumer: Reader, tx: Sender<OfferChange>, stop: &AtomicBool) {
    let mut open = true;
    while open && !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(200)) {
            None | Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Ok(m)) => handle(config, &m, &mut |c| open = tx.send(c).is_ok()),
            Some(Err(e)) if crate::reader::is_transport(&e) => log::debug!("following {}: {e}", config.topics.offers),
            Some(Err(e)) => log::warn!("following {}: {e}", config.topics.offers),
        }
    }
}
