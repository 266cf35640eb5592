#!/usr/bin/env bash
# Replays a simulated 10-million-event feed from disk, protobuf and JSON Lines,
# with wall time and peak RSS (GNU time). Usage: benches/replay-10m.sh [COUNT]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-10000000}
data=target/bench-data
mkdir -p "$data"
cargo build --release -p cardlink >&2
bin=target/release/cardlink
for fmt in pb jsonl; do
  feed="$data/feed-$count.$fmt"
  if [ ! -s "$feed" ]; then
    echo "simulating $count events into $feed" >&2
    "$bin" simulate --count "$count" --events "$feed" --offers "$data/offers-$count.json"
  fi
done
for fmt in pb jsonl; do
  feed="$data/feed-$count.$fmt"
  echo "== replay $feed ($(du -h "$feed" | cut -f1))"
  /usr/bin/time -f "wall %e s, user %U s, peak RSS %M KiB" \
    "$bin" replay --offers "$data/offers-$count.json" --events "$feed" \
      --rewards "$data/rewards-$fmt.jsonl" --ledger "$data/ledger-$fmt.json" --dead-letters "$data/dlq-$fmt.jsonl" --quiet
done
cmp "$data/ledger-pb.json" "$data/ledger-jsonl.json" && echo "ledgers of both formats are identical"
