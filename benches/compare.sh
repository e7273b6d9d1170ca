#!/usr/bin/env bash
# Side by side: trustgate, nginx and the upstream directly, same upstream,
# same certificate, alternating targets, $RUNS runs each, independent load
# generators where they fit:
#   passthrough   h1: wrk --latency           h2: h2load
#   acs-*         h1: wrk + benches/acs.lua   h2: trustgate-bench (h2load
#                 cannot send a different body per request, and trustgate's
#                 replay protection refuses a repeated assertion)
# Prints medians and ratios as a Markdown table; raw outputs stay in $OUT.
# Every run is bounded by `timeout`; all traffic goes to 127.0.0.1.
#
# Needs: a release build (done here unless SKIP_BUILD=1), nginx, wrk, h2load
# (Debian: apt-get install -y nginx wrk nghttp2-client), python3.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-5}
DURATION=${DURATION:-10}              # seconds per run
CONCURRENCY=${CONCURRENCY:-64}        # h1 connections / h2 streams in flight
H2_CONNECTIONS=${H2_CONNECTIONS:-2}
GEN_THREADS=${GEN_THREADS:-1}         # load generator threads
RESPONSE_SIZE=${RESPONSE_SIZE:-1024}
SCENARIOS=${SCENARIOS-"passthrough acs-trusted acs-untrusted"}   # may be set empty
PROTOS=${PROTOS-"h1 h2"}
ACS_BODIES=${ACS_BODIES:-60000}       # unique assertions per trustgate acs run
SCALING=${SCALING:-}                  # e.g. "100 1000 5000": passthrough h1 at each connection count
SCALING_DURATION=${SCALING_DURATION:-20}  # long enough that 5000 TLS handshakes are a small part
OUT=${OUT:-$ROOT/target/compare/$(date -u +%Y%m%dT%H%M%SZ)}
BIN=$ROOT/target/release
CERTS=$ROOT/certs

UPSTREAM=127.0.0.1:18081
TG_TLS=127.0.0.1:18443
TG_PLAIN=127.0.0.1:18080
TG_ADMIN=127.0.0.1:19901
NG_TLS=127.0.0.1:28443
NG_PLAIN=127.0.0.1:28080
UA='Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1'

for tool in nginx wrk h2load python3 curl; do
  command -v "$tool" >/dev/null || { echo "compare.sh: $tool is missing" >&2; exit 1; }
done
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  (cd "$ROOT" && cargo build --release --bin trustgate --bin trustgate-bench)
fi
mkdir -p "$OUT/run"
for port in ${UPSTREAM##*:} ${TG_TLS##*:} ${TG_PLAIN##*:} ${TG_ADMIN##*:} ${NG_TLS##*:} ${NG_PLAIN##*:}; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "compare.sh: port $port is in use" >&2
    exit 1
  fi
done

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

wait_for() { # url
  for _ in $(seq 1 100); do
    if curl -sk -o /dev/null --max-time 1 "$1"; then return 0; fi
    sleep 0.1
  done
  echo "compare.sh: $1 did not come up" >&2
  exit 1
}

"$BIN/trustgate-bench" upstream --listen "$UPSTREAM" --response-size "$RESPONSE_SIZE" \
  2>"$OUT/upstream.log" &
UP_PID=$!
PIDS+=("$UP_PID")
wait_for "http://$UPSTREAM/"

"$BIN/trustgate-bench" config --upstream "$UPSTREAM" --tls "$TG_TLS" --plain "$TG_PLAIN" \
  --admin "$TG_ADMIN" --certs "$CERTS" >"$OUT/run/trustgate.toml"
"$BIN/trustgate" run --config "$OUT/run/trustgate.toml" 2>"$OUT/trustgate.log" &
TG_PID=$!
PIDS+=("$TG_PID")
wait_for "http://$TG_ADMIN/readyz"

sed -e "s#@RUN@#$OUT/run#g" -e "s#@CERTS@#$CERTS#g" -e "s#@UPSTREAM@#$UPSTREAM#g" \
  -e "s#@TLS@#$NG_TLS#g" -e "s#@PLAIN@#$NG_PLAIN#g" "$ROOT/benches/nginx.conf" >"$OUT/run/nginx.conf"
nginx -c "$OUT/run/nginx.conf" -p "$OUT/run" -e "$OUT/run/nginx-error.log" &
NG_PID=$!
PIDS+=("$NG_PID")
wait_for "https://$NG_TLS/"

COOKIE=$("$BIN/trustgate-bench" cookie --target "https://$TG_TLS" --certs "$CERTS")

# CPU ticks (1/100 s) used so far by the given pids and their threads.
cpu_ticks() {
  local t=0 p f
  for p in "$@"; do
    read -r -a f < <(sed 's/.*) //' "/proc/$p/stat")
    t=$((t + f[11] + f[12]))
  done
  echo "$t"
}
proxy_pids() { # target
  case $1 in
    trustgate) echo "$TG_PID" ;;
    nginx) echo "$NG_PID" $(pgrep -P "$NG_PID") ;;
    direct) echo "$UP_PID" ;;
  esac
}

url_of() { # target
  case $1 in
    trustgate) echo "https://$TG_TLS" ;;
    nginx) echo "https://$NG_TLS" ;;
    direct) echo "http://$UPSTREAM" ;;
  esac
}

# Bodies for nginx and direct, which do not check replays: reused.
for trust in TRUSTED NOT_TRUSTED; do
  "$BIN/trustgate-bench" assertions --count 2000 --trust "$trust" --lifetime 2h \
    --certs "$CERTS" --out "$OUT/run/reused-$trust.txt"
done

# run_one SCENARIO PROTO TARGET RUN -> writes $OUT/SCENARIO-PROTO-TARGET-RUN.txt
run_one() {
  local scenario=$1 proto=$2 target=$3 run=$4
  local url out bound
  url=$(url_of "$target")
  out="$OUT/$scenario-$proto-$target-$run.txt"
  bound=$((DURATION + 60))
  echo "load $(cut -d' ' -f1 /proc/loadavg)" >"$out"
  local pids before
  pids=$(proxy_pids "$target")
  # shellcheck disable=SC2086
  before=$(cpu_ticks $pids)
  case "$scenario/$proto" in
    passthrough/h1)
      timeout "$bound" wrk -t"$GEN_THREADS" -c"$CONCURRENCY" -d"${DURATION}s" --latency \
        -H "User-Agent: $UA" -H "Cookie: $COOKIE" "$url/" >>"$out" 2>&1
      ;;
    passthrough/h2)
      timeout "$bound" h2load -t"$GEN_THREADS" -c"$H2_CONNECTIONS" \
        -m$((CONCURRENCY / H2_CONNECTIONS)) -D"$DURATION" --warm-up-time=1 \
        -H "user-agent: $UA" -H "cookie: $COOKIE" "$url/" >>"$out" 2>&1
      ;;
    acs-*/h1)
      local trust=TRUSTED bodies
      [[ $scenario == acs-untrusted ]] && trust=NOT_TRUSTED
      bodies="$OUT/run/reused-$trust.txt"
      if [[ $target == trustgate ]]; then
        bodies="$OUT/run/fresh.txt"
        "$BIN/trustgate-bench" assertions --count "$ACS_BODIES" --trust "$trust" --lifetime 1h \
          --certs "$CERTS" --out "$bodies"
      fi
      timeout "$bound" wrk -t"$GEN_THREADS" -c"$CONCURRENCY" -d"${DURATION}s" --latency \
        -s "$ROOT/benches/acs.lua" "$url/" -- "$bodies" "$GEN_THREADS" "$UA" >>"$out" 2>&1
      rm -f "$OUT/run/fresh.txt"
      ;;
    acs-*/h2)
      local extra=(--proxy)
      [[ $target == trustgate ]] && extra=()
      # Exit 2 means errors; they are in the JSON and the table.
      timeout "$bound" "$BIN/trustgate-bench" --target "$url" "${extra[@]}" --http2 \
        --scenario "$scenario" --concurrency "$CONCURRENCY" --connections "$H2_CONNECTIONS" \
        --duration "${DURATION}s" --assertions "$ACS_BODIES" --threads "$GEN_THREADS" \
        --certs "$CERTS" --json >>"$out" 2>&1 || [[ $? == 2 ]]
      ;;
  esac
  # shellcheck disable=SC2086
  echo "cpu_ticks $(($(cpu_ticks $pids) - before))" >>"$out"
}

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')" | tee "$OUT/machine.txt"
echo "started $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
TARGETS=(trustgate nginx direct)
for scenario in $SCENARIOS; do
  for proto in $PROTOS; do
    for run in $(seq 1 "$RUNS"); do
      # Rotate the order each run so no target always goes first.
      for i in 0 1 2; do
        target=${TARGETS[$(((i + run) % 3))]}
        echo "$scenario $proto run $run: $target" >&2
        run_one "$scenario" "$proto" "$target" "$run"
      done
    done
  done
done
# Throughput against the number of keep-alive connections (wrk, passthrough
# h1), trustgate and nginx alternating.
for conns in $SCALING; do
  for target in trustgate nginx; do
    out="$OUT/scaling-$conns-$target.txt"
    echo "scaling $conns connections: $target" >&2
    echo "load $(cut -d' ' -f1 /proc/loadavg)" >"$out"
    timeout $((SCALING_DURATION + 120)) wrk -t"$GEN_THREADS" -c"$conns" -d"${SCALING_DURATION}s" --latency \
      -H "User-Agent: $UA" -H "Cookie: $COOKIE" "$(url_of "$target")/" >>"$out" 2>&1
  done
done
echo "finished $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
grep -E 'VmHWM|VmRSS' "/proc/$TG_PID/status" | sed 's/^/trustgate /' | tee -a "$OUT/machine.txt" || true
ps -o rss=,cmd= --ppid "$NG_PID" -p "$NG_PID" | sed 's/^/nginx rss_kb /' | tee -a "$OUT/machine.txt" || true

python3 - "$OUT" "$SCENARIOS" "$PROTOS" "$RUNS" "$SCALING" <<'PY'
import glob, json, re, statistics, sys

out, scenarios, protos, runs = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), int(sys.argv[4])
scaling = sys.argv[5].split()

def ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

def parse(path):
    text = open(path).read()
    r = {"rps": None, "p99": None, "p50": None, "errors": 0, "load": None, "n": None, "cpu": None}
    m = re.search(r"^load ([\d.]+)", text, re.M)
    if m:
        r["load"] = float(m.group(1))
    m = re.search(r"^cpu_ticks (\d+)", text, re.M)
    if m:
        r["cpu"] = int(m.group(1)) / 100.0
    if "Requests/sec" in text:  # wrk
        r["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
        r["n"] = int(re.search(r"(\d+) requests in", text).group(1))
        for q, key in (("50", "p50"), ("99", "p99")):
            m = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
            if m:
                r[key] = ms(m.group(1), m.group(2))
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        r["errors"] += int(m.group(1)) if m else 0
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
        r["errors"] += sum(map(int, m.groups())) if m else 0
    elif "finished in" in text:  # h2load
        r["rps"] = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", text).group(1))
        r["n"] = int(re.search(r"requests: \d+ total, \d+ started, (\d+) done", text).group(1))
        m = re.search(r"requests: .*?(\d+) failed, (\d+) errored, (\d+) timeout", text)
        r["errors"] += sum(map(int, m.groups())) if m else 0
        m = re.search(r"status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
        r["errors"] += sum(map(int, m.groups())) if m else 0
        m = re.search(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", text)
        if m:
            r["mean"] = ms(m.group(5), m.group(6))
    else:  # trustgate-bench --json
        start = text.find("{")
        if start >= 0:
            j, _ = json.JSONDecoder().raw_decode(text[start:])
            s = j["summary"][0]
            r["rps"] = s["requests_per_s"]
            r["p50"] = s["latency_ms"]["p50"]
            r["p99"] = s["latency_ms"]["p99"]
            r["errors"] = s["errors"]
            r["n"] = sum(x["ok"] for x in j["runs"]) + s["errors"]
    return r

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

def f(x, fmt="{:.0f}"):
    return fmt.format(x) if x is not None else "-"

tool = {("passthrough", "h1"): "wrk", ("passthrough", "h2"): "h2load"}
print()
print("| scenario | proto | tool | trustgate req/s | nginx req/s | direct req/s | tg/nginx | tg/direct "
      "| p99 ms tg / nginx / direct | errors tg / nginx / direct | cpu µs/req tg / nginx / upstream | load avg |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for sc in scenarios:
    for p in protos:
        res = {}
        for t in ("trustgate", "nginx", "direct"):
            rs = [parse(x) for x in sorted(glob.glob(f"{out}/{sc}-{p}-{t}-*.txt"))]
            res[t] = {
                "rps": med([r["rps"] for r in rs]),
                "p99": med([r["p99"] for r in rs]),
                "errors": sum(r["errors"] for r in rs),
                "load": [r["load"] for r in rs],
                "all": [r["rps"] for r in rs],
                "cpu_us": med([r["cpu"] * 1e6 / r["n"] for r in rs if r["cpu"] is not None and r["n"]]),
            }
        tg, ng, d = res["trustgate"], res["nginx"], res["direct"]
        ratio = lambda a, b: f(a / b, "{:.2f}x") if a and b else "-"
        loads = [l for t in res.values() for l in t["load"] if l is not None]
        load = f"{min(loads):.2f}-{max(loads):.2f}" if loads else "-"
        print(f"| {sc} | {p} | {tool.get((sc, p), 'wrk+lua' if p == 'h1' else 'trustgate-bench')} "
              f"| {f(tg['rps'])} | {f(ng['rps'])} | {f(d['rps'])} | {ratio(tg['rps'], ng['rps'])} "
              f"| {ratio(tg['rps'], d['rps'])} "
              f"| {f(tg['p99'], '{:.2f}')} / {f(ng['p99'], '{:.2f}')} / {f(d['p99'], '{:.2f}')} "
              f"| {tg['errors']} / {ng['errors']} / {d['errors']} "
              f"| {f(tg['cpu_us'])} / {f(ng['cpu_us'])} / {f(d['cpu_us'])} | {load} |")
        for t in ("trustgate", "nginx", "direct"):
            print(f"<!-- {sc} {p} {t} runs: {', '.join(f(x) for x in res[t]['all'])} -->")
if scaling:
    print()
    print("| connections | trustgate req/s | p99 ms | errors | nginx req/s | p99 ms | errors | load avg |")
    print("|---|---|---|---|---|---|---|---|")
    for c in scaling:
        tg = parse(f"{out}/scaling-{c}-trustgate.txt")
        ng = parse(f"{out}/scaling-{c}-nginx.txt")
        print(f"| {c} | {f(tg['rps'])} | {f(tg['p99'], '{:.1f}')} | {tg['errors']} "
              f"| {f(ng['rps'])} | {f(ng['p99'], '{:.1f}')} | {ng['errors']} | {f(tg['load'], '{:.2f}')} |")
PY
echo "raw outputs: $OUT"
