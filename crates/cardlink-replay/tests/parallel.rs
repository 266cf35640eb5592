//! `Replayer::run` reads on a second thread; its outputs must be exactly
//! those of feeding the same records one by one on one thread.

use std::io::Write;
use std::sync::{Arc, Mutex};

use cardlink_core::{OfferBook, parse_offer_file};
use cardlink_replay::{Frame, RecordReader, Replayer};
use cardlink_sim::SimConfig;
use cardlink_wire::Format;

/// A writer whose bytes can be read back after the replayer is done.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Rewards, dead letters, ledger and summary of a replay of `feed`.
fn outputs(book: &OfferBook, format: Format, feed: &[u8], threaded: bool) -> (Vec<u8>, Vec<u8>, String, String) {
    let (rewards, dead) = (Shared::default(), Shared::default());
    let mut r = Replayer::new(book.clone(), Some(Box::new(rewards.clone())), Some(Box::new(dead.clone())));
    if threaded {
        let mut last = 0;
        r.run(format, feed, "feed", |n| last = n).unwrap();
        assert!(last > 0);
    } else {
        let mut reader = RecordReader::new(feed, format);
        while let Some(frame) = reader.next_record().unwrap() {
            match frame {
                Frame::Record { bytes, position } => r.feed(format, bytes, || format!("feed:{position}")).unwrap(),
                Frame::Broken { why, .. } => panic!("the test feeds are framed whole: {why}"),
            }
        }
    }
    let (ledger, summary) = r.finish().unwrap();
    let take = |s: Shared| std::mem::take(&mut *s.0.lock().unwrap());
    (take(rewards), take(dead), ledger.to_json_pretty(), summary.to_string())
}

#[test]
fn two_threads_write_what_one_writes() {
    // Bad records and duplicates at high rates, so every path is taken.
    let config = SimConfig { events: 30_000, malformed_per_mille: 40, duplicate_per_mille: 40, ..SimConfig::default() };
    let offers = parse_offer_file(&serde_json::to_vec(&cardlink_sim::offers(&config)).unwrap()).unwrap();
    let book = OfferBook::new(offers);
    for format in [Format::Json, Format::Protobuf] {
        let mut feed = Vec::new();
        cardlink_sim::write_feed(&config, format, &mut feed).unwrap();
        if format == Format::Json {
            // A clearing in another currency than its authorization: the
            // engine's own rejection (R1), dead-lettered on its thread.
            feed.extend_from_slice(br#"{"event_id":"x1","kind":"AUTHORIZATION","card_token":"tok_x","occurred_at":"2026-05-04T12:30:00Z","network":"VISA","transaction_id":"tx","amount":"20.00","currency":"USD","merchant":{"mid":"M1","mcc":"5812"}}"#);
            feed.extend_from_slice(b"\n");
            feed.extend_from_slice(br#"{"event_id":"x2","kind":"CLEARING","card_token":"tok_x","occurred_at":"2026-05-04T12:31:00Z","network":"VISA","transaction_id":"tx","amount":"20.00","currency":"EUR","merchant":{"mid":"M1","mcc":"5812"}}"#);
            feed.extend_from_slice(b"\n");
        }
        let one = outputs(&book, format, &feed, false);
        let two = outputs(&book, format, &feed, true);
        assert!(!one.0.is_empty() && !one.1.is_empty(), "{format:?}: the feed makes rewards and dead letters");
        if format == Format::Json {
            assert!(String::from_utf8_lossy(&one.1).contains("CURRENCY_MISMATCH"));
        }
        assert!(one.0 == two.0, "{format:?}: rewards differ");
        assert!(one.1 == two.1, "{format:?}: dead letters differ");
        assert_eq!(one.2, two.2, "{format:?}: ledger");
        assert_eq!(one.3, two.3, "{format:?}: summary");
    }
}

#[test]
fn broken_frames_and_read_errors_reach_the_caller() {
    let book = OfferBook::default();
    // A protobuf file cut inside a record: one dead letter, then the end.
    let (rewards, dead) = (Shared::default(), Shared::default());
    let mut r = Replayer::new(book.clone(), Some(Box::new(rewards)), Some(Box::new(dead.clone())));
    r.run(Format::Protobuf, &[5u8, 1, 2][..], "cut.pb", |_| {}).unwrap();
    let (ledger, _) = r.finish().unwrap();
    assert_eq!(ledger.events.rejected, 1);
    assert!(String::from_utf8_lossy(&dead.0.lock().unwrap()).contains("cut.pb:1"));

    struct Failing;
    impl std::io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let mut r = Replayer::new(book, None, None);
    let err = r.run(Format::Json, std::io::BufReader::new(Failing), "x", |_| {}).unwrap_err();
    assert!(err.to_string().contains("disk on fire"));
}

#[test]
fn a_failing_reward_writer_stops_the_run_with_its_error() {
    struct Full(usize);
    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0 < buf.len() {
                return Err(std::io::Error::other("no space left for rewards"));
            }
            self.0 -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let config = SimConfig { events: 30_000, ..SimConfig::default() };
    let offers = parse_offer_file(&serde_json::to_vec(&cardlink_sim::offers(&config)).unwrap()).unwrap();
    let mut feed = Vec::new();
    cardlink_sim::write_feed(&config, Format::Protobuf, &mut feed).unwrap();
    // Room for the first batch of records, not for all of them.
    let mut r = Replayer::new(OfferBook::new(offers), Some(Box::new(Full(200_000))), None);
    let err = r.run(Format::Protobuf, &feed[..], "feed", |_| {}).unwrap_err();
    assert!(err.to_string().contains("no space left for rewards"), "{err}");
}
