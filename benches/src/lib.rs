//! Synthetic catalogues and feeds for the benchmarks.
//!
//! Catalogues spread offers over merchants the way a card-linked program
//! does: almost every offer targets merchant ids, and a fixed handful target
//! a whole MCC, a country or every purchase, whatever the catalogue's size.

use serde_json::{Value, json};

/// The allocator the `cardlink` binary uses, so the benchmarks measure what
/// ships: the engine allocates small keys per event, where mimalloc is
/// markedly faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A tiny deterministic PRNG (SplitMix64), so feeds never change.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// MCCs the synthetic merchants use.
pub const MCCS: [&str; 8] = ["5812", "5814", "5411", "5541", "5912", "5311", "5732", "4121"];

/// `offers` offers over `merchants` merchants, as an offer file's JSON.
pub fn catalogue(offers: usize, merchants: usize) -> Vec<Value> {
    let mut rng = Rng(7);
    let mut out = Vec::with_capacity(offers + 16);
    for i in 0..offers {
        let m = i % merchants;
        let mut o = match rng.below(10) {
            0..=5 => json!({"reward": {"percent": format!("{}", 2 + rng.below(18))}, "max_reward": "25.00"}),
            6..=7 => json!({"reward": {"fixed": "5.00"}, "min_spend": "25.00"}),
            _ => json!({"reward": {"points_per_unit": format!("{}", 1 + rng.below(4))}}),
        };
        o["id"] = json!(format!("offer-{i:07}"));
        o["currency"] = json!("USD");
        o["merchant"] = json!({"mids": [format!("M{m:06}")]});
        match rng.below(6) {
            0 => o["days"] = json!(["MON", "TUE", "WED", "THU", "FRI"]),
            1 => o["hours"] = json!({"from": "11:00", "until": "14:00"}),
            2 => o["networks"] = json!(["AMEX"]),
            3 => o["budget"] = json!("500.00"),
            4 => o["max_per_card"] = json!(3),
            _ => {}
        }
        out.push(o);
    }
    // A fixed handful of broad offers, as real programs have.
    for (i, mcc) in MCCS.iter().enumerate().take(4) {
        out.push(json!({"id": format!("mcc-{mcc}"), "currency": "USD", "reward": {"points_per_unit": "1"},
            "merchant": {"mccs": [mcc]}, "max_per_card": 5 + i}));
    }
    out.push(
        json!({"id": "country-us", "currency": "USD", "reward": {"percent": "1"}, "merchant": {"countries": ["US"]},
        "min_spend": "50.00", "max_reward": "2.00"}),
    );
    out.push(json!({"id": "everything", "currency": "USD", "reward": {"points_per_unit": "1"}, "max_reward": "100"}));
    out
}

/// `n` JSON event lines over `merchants` merchants and `cards` cards: each
/// purchase is authorized, most are cleared (with tips), a few reversed or
/// refunded, the rest of the lifecycle following within a few events.
pub fn feed(n: usize, merchants: usize, cards: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng(seed);
    let networks = ["VISA", "VISA", "MASTERCARD", "AMEX", "DISCOVER"];
    let mut out = Vec::with_capacity(n);
    let mut pending: Vec<(String, String, u64, &str, String)> = Vec::new();
    let mut tx = 0u64;
    while out.len() < n {
        let id = out.len();
        if !pending.is_empty() && rng.below(2) == 0 {
            let (card, txid, cents, network, mid) = pending.swap_remove(rng.below(pending.len() as u64) as usize);
            let roll = rng.below(100);
            let (kind, amount) = match roll {
                0..=2 => ("AUTH_REVERSAL", cents),
                3..=5 => ("REFUND", cents / 2),
                _ => ("CLEARING", cents + cents * rng.below(20) / 100),
            };
            out.push(json!({"event_id": format!("e{id}"), "kind": kind, "card_token": card, "transaction_id": txid,
                "occurred_at": "2026-05-06T12:30:00-04:00", "network": network, "amount": format!("{}.{:02}", amount / 100, amount % 100),
                "currency": "USD", "merchant": {"mid": mid, "mcc": MCCS[id % MCCS.len()], "country": "US"}}).to_string());
            continue;
        }
        tx += 1;
        let card = format!("tok_{:08x}", rng.below(cards as u64));
        let mid = format!("M{:06}", rng.below(merchants as u64));
        let cents = 300 + rng.below(12_000);
        let network = networks[rng.below(5) as usize];
        let hour = 6 + rng.below(16);
        out.push(json!({"event_id": format!("e{id}"), "kind": "AUTHORIZATION", "card_token": card, "transaction_id": format!("t{tx}"),
            "occurred_at": format!("2026-05-04T{hour:02}:30:00-04:00"), "network": network,
            "amount": format!("{}.{:02}", cents / 100, cents % 100), "currency": "USD",
            "merchant": {"mid": mid, "mcc": MCCS[(tx as usize) % MCCS.len()], "country": "US"}}).to_string());
        pending.push((card, format!("t{tx}"), cents, network, mid));
    }
    out
}
