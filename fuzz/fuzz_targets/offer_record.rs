//! An offers-topic record as the pipeline's offers follower reads it:
//! the first byte picks the topic format (JSON or protobuf) and whether
//! there is a key, the second the key's length; the rest is key and value
//! (an empty value retires). An accepted offer joins the fixture book,
//! which must then run the fixture feed within its budgets.
#![no_main]

use cardlink_kafka::TopicFormat;
use cardlink_kafka::codec::{OfferChange, decode_offer};
use cardlink_kafka::codec::apply_change;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [flags, key_len, rest @ ..] = data else { return };
    let format = if flags & 1 == 0 { TopicFormat::Json } else { TopicFormat::Protobuf };
    let (key, value) = if flags & 2 == 0 {
        (None, rest)
    } else {
        let n = (*key_len as usize).min(rest.len());
        (Some(&rest[..n]), &rest[n..])
    };
    let value = if flags & 4 == 0 { Some(value) } else { None };
    if let Ok(change) = decode_offer(format, key, value) {
        if let OfferChange::Upsert(offer) = &change {
            assert!(key.is_none_or(|k| k == offer.id.as_bytes()), "the key must name the offer");
        }
        let mut book = cardlink_fuzz::book();
        apply_change(&mut book, change);
        cardlink_fuzz::exercise(book);
    }
});
