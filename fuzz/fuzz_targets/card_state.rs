//! A card-state changelog value, as a restoring pipeline reads it: decoded
//! against the fixture book, counted into the budgets and out again, encoded
//! back (the same state must come out), then the fixture feed is run on
//! top of it.
#![no_main]

use cardlink_core::Engine;
use cardlink_kafka::codec::{StateScratch, add_usage, decode_card_state, encode_card_state};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut book = cardlink_fuzz::book();
    let Ok(card) = decode_card_state(&mut book, data) else { return };
    // Decoded again into a copy of this book (which now holds placeholders
    // for unknown offers), the same offer ids get the same indexes.
    let mut other = book.clone();
    add_usage(&mut book, &card, true);
    let mut bytes = Vec::new();
    encode_card_state(&book, &card, &mut bytes, &mut StateScratch::default());
    let back = decode_card_state(&mut other, &bytes).expect("an encoded state decodes");
    assert_eq!(back.transactions, card.transactions, "transactions survive the changelog");
    assert_eq!(back.seen, card.seen);
    assert_eq!(back.activations, card.activations);
    let mut engine = Engine::new(book);
    engine.cards.insert("c1", card.clone());
    let mut replayer = cardlink_replay::Replayer::new(engine.book.clone(), None, None);
    replayer.engine = engine;
    replayer.run(cardlink_wire::Format::Json, cardlink_fuzz::EVENTS.as_bytes(), "events", |_| {}).expect("memory");
    let mut engine = replayer.engine;
    // Taking the card out again must leave the budgets as the feed left them.
    if let Some(card) = engine.cards.remove("c1") {
        add_usage(&mut engine.book, &card, false);
    }
});
