//! Card-state changelog values a restoring pipeline cannot trust: found by
//! fuzzing (fuzz/regressions/card_state). A reward naming no offer made the
//! restore panic while building a placeholder offer; values out of range
//! would overflow the budget sums. Each is now a decoding error, which the
//! pipeline reports (and restarts from what is committed) instead of
//! panicking.

use cardlink_core::OfferBook;
use cardlink_kafka::codec::{add_usage, decode_card_state};
use cardlink_wire::v1 as pb;
use prost::Message;

fn state(offer_id: &str, value: &str, net: &str) -> Vec<u8> {
    pb::CardState {
        seen: vec!["e-1".into()],
        activations: vec![],
        transactions: vec![pb::TransactionState {
            transaction_id: "t1".into(),
            auth_currency: Some("USD".into()),
            cleared_amount: None,
            cleared_currency: None,
            net: net.into(),
            rewards: vec![pb::RewardState {
                offer_id: offer_id.into(),
                status: pb::RewardStatus::Pending as i32,
                value: value.into(),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
    .encode_to_vec()
}

fn check(bytes: &[u8], ok: bool) {
    let mut book = OfferBook::default();
    let decoded = decode_card_state(&mut book, bytes);
    assert_eq!(decoded.is_ok(), ok, "{decoded:?}");
    if let Ok(card) = decoded {
        // Counting it into the budgets twice cannot overflow.
        add_usage(&mut book, &card, true);
        add_usage(&mut book, &card, true);
    }
}

#[test]
fn untrustworthy_states_are_errors_not_panics() {
    check(&state("coffee", "4.99", "0"), true);
    check(&state("", "4.99", "0"), false);
    check(&state("coffee", "-1", "0"), false);
    check(&state("coffee", "79228162514264337593543950335", "0"), false);
    check(&state("coffee", "4.99", "-0.01"), false);
    check(&state("coffee", "0", "0"), true);
    // The fuzzer's own input: a transaction whose second reward names no offer.
    let found = b"\x0a\x03e-1\x12\x03act\x1a\x2a\x0a\x02t2\x12\x03USD\x2a\x010\x32\x0f\x29\x05a-fix\x10\x01\x1a\x044.99\x32\x0b\x0a\x03pcu\x10\x01\x1a\x0266";
    let mut book = OfferBook::default();
    let _ = decode_card_state(&mut book, found);
}
