//! One protobuf card event through both decoders: the zero-copy one the
//! pipeline uses and prost's must accept and reject alike and read the same
//! fields; the JSON form of an accepted event decodes to the same raw
//! event; then validation and the engine as for JSON.
#![no_main]

use cardlink_wire::{
    MAX_RECORD_BYTES, decode_card_event, decode_json_event, decode_proto_event, event_to_json, raw_from_proto,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fast = decode_card_event(data);
    let prost = decode_proto_event(data);
    match (&fast, &prost) {
        (Ok(a), Ok(b)) => {
            assert_eq!(*a, raw_from_proto(b), "the two decoders read different fields");
            let json = event_to_json(b);
            if json.len() <= MAX_RECORD_BYTES {
                let back = decode_json_event(json.as_bytes()).expect("the JSON form of an event decodes");
                assert_eq!(back, *a, "the JSON form reads differently");
            }
            cardlink_fuzz::process_twice(a, data);
        }
        (Err(_), Err(_)) => {}
        _ => panic!("the decoders disagree: zero-copy {:?}, prost {:?}", fast.is_ok(), prost.is_ok()),
    }
});
