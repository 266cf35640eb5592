//! What this machine's memory allows the engine: the cost of an "event"
//! that reads `LINES` random cache lines of a large buffer (as the engine
//! reads card state and offers) plus a little arithmetic, with the lines
//! prefetched `AHEAD` events early (0: not at all). The buffer comes from
//! mimalloc, which backs large blocks with transparent huge pages, as it
//! does the engine's state.
//!
//! `cargo run --release -p cardlink-benches --example memory_lines -- [MIB] [LINES] [AHEAD]`
//!
//! Its answer bounds the engine: an event that must touch N lines no
//! cache holds costs about N times the per-line figure, prefetched or not.

use std::hint::black_box;
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: usize = 200_000;

/// About 100 ns of dependent arithmetic: the engine's own work per event.
#[inline(always)]
fn compute(seed: u64) -> u64 {
    let mut x = seed;
    for _ in 0..300 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    }
    x
}

fn main() {
    let arg = |i: usize, default: usize| std::env::args().nth(i).map_or(default, |s| s.parse().expect("a number"));
    let (mib, lines, ahead) = (arg(1, 1024), arg(2, 20), arg(3, 1));
    let size = mib << 20;
    // Written once, so every page is resident before the timing.
    let buf = vec![1u8; size];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let offsets: Vec<usize> = (0..EVENTS * lines)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state as usize % (size / 64)) * 64
        })
        .collect();
    let line = |e: usize, k: usize| offsets[e * lines + k];
    let start = Instant::now();
    let mut sum = 0u64;
    for e in 0..EVENTS {
        if ahead > 0 && e + ahead < EVENTS {
            for k in 0..lines {
                cardlink_core::prefetch_hint(buf.as_ptr().wrapping_add(line(e + ahead, k)));
            }
        }
        for k in 0..lines {
            sum = sum.wrapping_add(u64::from(buf[line(e, k)]));
        }
        sum = compute(sum);
    }
    let ns = start.elapsed().as_secs_f64() * 1e9 / EVENTS as f64;
    black_box(sum);
    println!(
        "{mib} MiB, {lines} random lines per event, prefetched {ahead} ahead: {ns:.0} ns per event, {:.0} ns per line",
        ns / lines.max(1) as f64
    );
}
