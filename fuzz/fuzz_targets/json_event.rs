//! One JSON card event: decoded, validated (R1), applied twice (R2), its
//! dead letter written. No input may panic; dead letters hold no card
//! number.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match cardlink_wire::decode_json_event(data) {
        Ok(raw) => cardlink_fuzz::process_twice(&raw, data),
        Err(rejection) => {
            let d = cardlink_wire::dead_letter(&rejection, None, data, "fuzz:1".into());
            let mut out = Vec::new();
            cardlink_wire::write_dead_letter_json(&d, &mut out);
            cardlink_fuzz::check_dead_letters(&out);
        }
    }
});
