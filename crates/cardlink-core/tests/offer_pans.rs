//! Card numbers in offers: an offer id that is one is refused (ids are
//! written into every reward record), and no error message about an offer
//! shows one, whichever field it was typed into (the messages reach the
//! terminal, the admin API and logs).

use cardlink_core::{pan, parse_offer_file};

fn check(file: &str, field: &str) {
    let e = parse_offer_file(file.as_bytes()).unwrap_err();
    assert_eq!(e.field, field, "{file}");
    let shown = format!("{e} {e:?}");
    assert!(!pan::contains_pan(&shown), "{shown}");
}

#[test]
fn offers_never_echo_a_card_number() {
    check(r#"[{"id": "4111111111111111", "currency": "USD", "reward": {"percent": "5"}}]"#, "id");
    check(r#"[{"id": "o", "currency": "5555555555554444", "reward": {"percent": "5"}}]"#, "currency");
    check(r#"[{"id": "o", "currency": "USD", "reward": {"percent": "378282246310005"}}]"#, "reward.percent");
    check(r#"[{"id": "o", "currency": "USD", "reward": {"fixed": "1"}, "valid_from": "4222222222222"}]"#, "valid_from");
    check(r#"[{"id": "o", "currency": "USD", "reward": {"fixed": "1"}, "days": ["6011000990139424"]}]"#, "days");
    // Digits failing Luhn, and a number inside a longer id, are ids.
    assert!(
        parse_offer_file(br#"[{"id": "4111111111111112", "currency": "USD", "reward": {"percent": "5"}}]"#).is_ok()
    );
    assert!(
        parse_offer_file(br#"[{"id": "o-4111111111111111", "currency": "USD", "reward": {"percent": "5"}}]"#).is_ok()
    );
}
