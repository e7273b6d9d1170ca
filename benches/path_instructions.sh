#!/usr/bin/env bash
# Instructions the gateway executes per pass-through request, counted by
# callgrind: once for an enforced app with a cached session (the decision
# cache hit path) and once for the same app unenforced (pure forwarding).
# Counts are stable on a noisy machine where timings are not; their
# difference is what the cached decision path costs over forwarding.
#
# Plain HTTP/1.1, one connection, one request in flight. Instrumentation is
# switched on only for the measured requests (after a warm-up), so start-up
# work (config, certificates, AWS-LC's entropy) is not counted.
#
#   benches/path_instructions.sh [REQUESTS] [OUT_DIR]
#
# Needs: a release build (cargo build --release), valgrind, curl, jq.
# GATEWAY_BIN and BENCH_BIN name other builds (a before/after comparison).
# Listens on 127.0.0.1 only (the harness's default ports).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-2000}
OUT=${2:-$ROOT/target/path-instructions}
B=${BENCH_BIN:-$ROOT/target/release/trustgate-bench}
G=${GATEWAY_BIN:-$ROOT/target/release/trustgate}
UPSTREAM=127.0.0.1:18081
PLAIN=http://127.0.0.1:18080
ADMIN=http://127.0.0.1:19901
mkdir -p "$OUT"
for tool in valgrind callgrind_control callgrind_annotate curl jq; do
  command -v $tool >/dev/null || { echo "needs $tool" >&2; exit 2; }
done

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

$B upstream --listen $UPSTREAM >/dev/null 2>&1 &
pids+=($!)

for mode in enforced forward-only; do
  flag=()
  [[ $mode == forward-only ]] && flag=(--forward-only)
  $B config --upstream $UPSTREAM "${flag[@]}" >"$OUT/$mode.toml"
  rm -f "$OUT/callgrind.$mode".*
  valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$OUT/callgrind.$mode.%p" \
    "$G" run --config "$OUT/$mode.toml" >"$OUT/$mode.log" 2>&1 &
  vg=$!
  pids+=($vg)
  for _ in $(seq 150); do
    curl -sf -o /dev/null $ADMIN/readyz && break
    sleep 0.2
  done
  curl -sf -o /dev/null $ADMIN/readyz || { echo "$mode: gateway not ready, see $OUT/$mode.log" >&2; exit 1; }
  if [[ $mode == enforced ]]; then
    load=(--cookie "$($B cookie --target $PLAIN)")
  else
    load=(--proxy)
  fi
  run() {
    $B --target $PLAIN --plain --concurrency 1 --requests "$1" --timeout 60s "${load[@]}" --json |
      jq -r '.runs[0] | "\(.ok) \(.errors | length)"'
  }
  read -r ok errors < <(run 300)
  [[ $ok == 300 && $errors == 0 ]] || { echo "$mode: warm-up failed ($ok ok)" >&2; exit 1; }
  callgrind_control -i on $vg >/dev/null 2>&1
  read -r ok errors < <(run "$N")
  callgrind_control -i off $vg >/dev/null 2>&1
  callgrind_control -d $vg >/dev/null 2>&1
  [[ $ok == "$N" && $errors == 0 ]] || { echo "$mode: $ok of $N requests ok" >&2; exit 1; }
  kill -TERM $vg
  wait $vg || true
  dump=$(ls "$OUT/callgrind.$mode".*.1)
  total=$(callgrind_annotate --auto=no "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "$mode: $((total / N)) instructions per request ($dump)"
done
