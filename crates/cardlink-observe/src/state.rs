//! The state an engine thread publishes for the admin server.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use cardlink_core::{CardStore, OfferBook};
use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::metrics;
use crate::query::Query;

/// Queries waiting for the engine thread; beyond this the admin server
/// answers 503 at once rather than queue behind a stalled thread.
const QUERY_BACKLOG: usize = 256;
/// How often the engine thread refreshes its gauges.
const GAUGE_EVERY: Duration = Duration::from_secs(2);

/// Readiness, assignment, lag and the query channel of one engine thread.
/// The engine thread writes; the admin server reads and asks.
pub struct Observed {
    queries: (Sender<Query>, Receiver<Query>),
    /// Partitions of the input topic; 0 while unknown.
    partitions: AtomicI32,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Input partitions held and restored; `None` before the first
    /// assignment completed.
    assigned: Option<Vec<i32>>,
    /// A rebalance is restoring state.
    restoring: bool,
    lag_topic: String,
    lag: BTreeMap<i32, i64>,
    last_tick: Option<Instant>,
}

impl Default for Observed {
    fn default() -> Self {
        Observed {
            queries: crossbeam_channel::bounded(QUERY_BACKLOG),
            partitions: AtomicI32::new(0),
            inner: Mutex::new(Inner::default()),
        }
    }
}

impl std::fmt::Debug for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observed")
            .field("partitions", &self.partitions.load(Ordering::Relaxed))
            .field("inner", &*self.lock())
            .field("queries_waiting", &self.queries.1.len())
            .finish()
    }
}

impl Observed {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands a query to the engine thread; gives it back when the backlog
    /// is full.
    pub fn ask(&self, query: Query) -> Result<(), Query> {
        self.queries.0.try_send(query).map_err(TrySendError::into_inner)
    }

    /// On the engine thread, between two records: answers the waiting
    /// queries from its book and card stores, and refreshes the gauges
    /// every few seconds.
    pub fn serve<'s, I>(&self, book: &OfferBook, stores: impl Fn() -> I)
    where
        I: IntoIterator<Item = (Option<i32>, &'s CardStore)>,
    {
        while let Ok(q) = self.queries.1.try_recv() {
            q.answer(book, stores());
        }
        let mut inner = self.lock();
        if inner.last_tick.is_none_or(|t| t.elapsed() >= GAUGE_EVERY) {
            inner.last_tick = Some(Instant::now());
            for (&p, &lag) in &inner.lag {
                metrics::set_consumer_lag(&inner.lag_topic, p, lag);
            }
            drop(inner);
            metrics::set_offer_gauges(book);
            metrics::publish_cash();
        }
    }

    /// The input topic has `n` partitions.
    pub fn set_partitions(&self, n: i32) {
        self.partitions.store(n, Ordering::Relaxed);
    }

    /// Partitions of the input topic, when known.
    pub fn partitions(&self) -> Option<i32> {
        Some(self.partitions.load(Ordering::Relaxed)).filter(|n| *n > 0)
    }

    /// A rebalance gave partitions; their state is being restored.
    pub fn restoring(&self) {
        self.lock().restoring = true;
    }

    /// These partitions are held and restored (an empty list: the
    /// assignment completed with nothing for this instance).
    pub fn assigned(&self, partitions: &[i32]) {
        let mut inner = self.lock();
        let held = inner.assigned.get_or_insert_with(Vec::new);
        held.extend(partitions);
        held.sort_unstable();
        held.dedup();
        inner.restoring = false;
    }

    /// These partitions went away.
    pub fn revoked(&self, partitions: &[i32]) {
        let mut inner = self.lock();
        if let Some(held) = &mut inner.assigned {
            held.retain(|p| !partitions.contains(p));
        }
        inner.lag.retain(|p, _| !partitions.contains(p));
    }

    /// Forgets the assignment (the pipeline restarts from scratch).
    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.assigned = None;
        inner.restoring = false;
        inner.lag.clear();
    }

    /// True once an assignment completed and no restore is running.
    pub fn restored(&self) -> bool {
        let inner = self.lock();
        inner.assigned.is_some() && !inner.restoring
    }

    /// The partitions held, once an assignment completed.
    pub fn assignment(&self) -> Option<Vec<i32>> {
        self.lock().assigned.clone()
    }

    /// Records the consumer lag of the assigned partitions of `topic`
    /// (from librdkafka's statistics; a negative lag is unknown).
    pub fn set_lag(&self, topic: &str, lags: impl IntoIterator<Item = (i32, i64)>) {
        let mut inner = self.lock();
        inner.lag_topic.clear();
        inner.lag_topic.push_str(topic);
        inner.lag.clear();
        for (p, lag) in lags {
            if lag >= 0 {
                inner.lag.insert(p, lag);
                metrics::set_consumer_lag(topic, p, lag);
            }
        }
    }

    /// The last known lag by partition.
    pub fn lag(&self) -> BTreeMap<i32, i64> {
        self.lock().lag.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{Answer, Ask};

    #[test]
    fn readiness_follows_the_assignment() {
        let o = Observed::default();
        assert!(!o.restored() && o.assignment().is_none());
        o.restoring();
        assert!(!o.restored());
        o.assigned(&[2, 0]);
        assert!(o.restored());
        assert_eq!(o.assignment(), Some(vec![0, 2]));
        o.set_lag("ev", [(0, 5), (2, -1)]);
        assert_eq!(o.lag(), BTreeMap::from([(0, 5)]));
        o.revoked(&[0]);
        assert_eq!((o.assignment(), o.lag().len()), (Some(vec![2]), 0));
        o.restoring();
        assert!(!o.restored());
        o.assigned(&[]);
        assert!(o.restored());
        o.reset();
        assert!(!o.restored());
    }

    #[test]
    fn queries_wait_for_the_engine_thread_and_a_full_backlog_refuses() {
        let o = Observed::default();
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..QUERY_BACKLOG {
            let tx = tx.clone();
            o.ask(Query::new(Ask::Offers, move |a| tx.send(a).unwrap())).unwrap();
        }
        assert!(o.ask(Query::new(Ask::Offers, |_| {})).is_err(), "the backlog is bounded");
        assert!(rx.try_recv().is_err(), "nothing is answered before the engine thread serves");
        let book = OfferBook::default();
        o.serve(&book, std::iter::empty);
        assert_eq!(rx.try_iter().count(), QUERY_BACKLOG);
        assert!(rx.try_recv().is_err());
        let _ = Answer::Offers(Vec::new());
    }
}
