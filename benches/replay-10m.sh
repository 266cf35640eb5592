#!/usr/bin/env bash
# Replays a simulated 10-million-event feed from disk, protobuf and JSON Lines,
# with wall time, CPU time and peak RSS (GNU time) and the state's bytes per
# card (the summary's "state" line). Usage: benches/replay-10m.sh [COUNT]
# RETENTION_DAYS=N adds a protobuf run with `--retention-days N`.
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
replay() {
  local fmt=$1 tag=$2; shift 2
  local feed="$data/feed-$count.$fmt"
  echo "== replay $feed ($(du -h "$feed" | cut -f1)) $*"
  /usr/bin/time -f "wall %e s, user %U s, sys %S s, peak RSS %M KiB" \
    "$bin" replay --offers "$data/offers-$count.json" --events "$feed" \
      --rewards "$data/rewards-$tag.jsonl" --ledger "$data/ledger-$tag.json" --dead-letters "$data/dlq-$tag.jsonl" "$@" \
    | grep -E '^state'
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
replay pb pb
replay jsonl jsonl
cmp "$data/ledger-pb.json" "$data/ledger-jsonl.json" && echo "ledgers of both formats are identical"
if [ -n "${RETENTION_DAYS:-}" ]; then
  replay pb "pb-retention-$RETENTION_DAYS" --retention-days "$RETENTION_DAYS"
fi
