//! A whole event file through `cardlink replay`'s framing and loop: the
//! first byte picks JSON Lines or length-delimited protobuf, the rest is
//! the file. Every framed record must be counted exactly once.
#![no_main]

use cardlink_wire::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else { return };
    let format = if first & 1 == 0 { Format::Json } else { Format::Protobuf };
    cardlink_fuzz::replay_stream(format, stream, cardlink_fuzz::book());
});
