#!/usr/bin/env bash
# Side by side in one run: trustgate, nginx, HAProxy and the upstream
# directly, same upstream, same certificate, the same number of worker
# threads or processes ($WORKERS), alternating targets, $RUNS runs each, the
# same load generator for every target of a row:
#   GEN=wrk (default; independent generators where they fit)
#     passthrough   h1: wrk --latency           h2: h2load
#     acs-*         h1: wrk + benches/acs.lua   h2: trustgate-bench (h2load
#                   cannot send a different body per request, and trustgate's
#                   replay protection refuses a repeated assertion)
#   GEN=bench: trustgate-bench --target for every row.
# For each run: the proxy's CPU per completed request (utime + stime from
# /proc/PID/stat of the proxy's processes and their threads: trustgate; nginx
# master and workers; HAProxy's one process), the kernel's part of it
# (stime: system calls, TCP, waking the peers), and the upstream's CPU.
# Before the load, the idle memory of each proxy, started fresh for each
# protocol: RSS and PSS (/proc/PID/smaps_rollup, summed over its processes)
# after start, after one TLS request, and with $IDLE_CONNS idle keep-alive
# TLS connections open (one request each, held by trustgate-bench --idle),
# giving bytes per idle connection.
# Prints medians and ratios as Markdown tables; raw outputs stay in $OUT.
# Every run is bounded by `timeout`; all traffic goes to 127.0.0.1.
#
# Needs: a release build (done here unless SKIP_BUILD=1), nginx, haproxy,
# wrk, h2load (Debian: apt-get install -y nginx haproxy wrk nghttp2-client),
# python3, curl, ss, pgrep.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-5}
DURATION=${DURATION:-10}              # seconds per run
CONCURRENCY=${CONCURRENCY:-64}        # h1 connections / h2 streams in flight
H2_CONNECTIONS=${H2_CONNECTIONS:-2}
GEN_THREADS=${GEN_THREADS:-1}         # load generator threads
GEN=${GEN:-wrk}                       # wrk (wrk, h2load) or bench (trustgate-bench)
WORKERS=${WORKERS:-$(nproc)}          # trustgate worker_threads = nginx worker_processes = HAProxy nbthread
RUNTIME=${RUNTIME:-per_core}          # trustgate server.runtime: per_core or shared
RESPONSE_SIZE=${RESPONSE_SIZE:-1024}
TARGETS=${TARGETS:-"trustgate nginx haproxy direct"}
SCENARIOS=${SCENARIOS-"passthrough acs-trusted acs-untrusted"}   # may be set empty
PROTOS=${PROTOS-"h1 h2"}
ACS_BODIES=${ACS_BODIES:-60000}       # unique assertions per trustgate acs run
IDLE_CONNS=${IDLE_CONNS:-5000}        # idle keep-alive connections per proxy; 0: memory after start only
IDLE_PROTOS=${IDLE_PROTOS-$PROTOS}    # may be set empty
IDLE_SETTLE=${IDLE_SETTLE:-2}         # seconds from the last idle connection opened to the reading (past park_after)
SCALING=${SCALING:-}                  # e.g. "100 1000 5000": passthrough h1 at each connection count
SCALING_DURATION=${SCALING_DURATION:-20}  # long enough that 5000 TLS handshakes are a small part
OUT=${OUT:-$ROOT/target/compare/$(date -u +%Y%m%dT%H%M%SZ)}
BIN=${BIN:-$ROOT/target/release}      # another build to measure (before/after)
CERTS=$ROOT/certs

UPSTREAM=127.0.0.1:18081
TG_TLS=127.0.0.1:18443
TG_PLAIN=127.0.0.1:18080
TG_ADMIN=127.0.0.1:19901
NG_TLS=127.0.0.1:28443
NG_PLAIN=127.0.0.1:28080
HA_TLS=127.0.0.1:38443
HA_PLAIN=127.0.0.1:38080
UA='Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1'

read -r -a TARGET_LIST <<<"$TARGETS"
PROXIES=(trustgate)                   # started even when not a target: it issues the session cookie
for t in "${TARGET_LIST[@]}"; do
  case $t in
    trustgate | direct) ;;
    nginx | haproxy) PROXIES+=("$t") ;;
    *) echo "compare.sh: unknown target $t (trustgate nginx haproxy direct)" >&2; exit 1 ;;
  esac
done
case $GEN in
  wrk | bench) ;;
  *) echo "compare.sh: GEN must be wrk or bench" >&2; exit 1 ;;
esac
has() { [[ " ${PROXIES[*]} " == *" $1 "* ]]; }
needs=(python3 curl ss pgrep timeout)
if has nginx; then needs+=(nginx); fi
if has haproxy; then needs+=(haproxy); fi
if [[ $GEN == wrk ]]; then needs+=(wrk h2load); fi
if [[ -n $SCALING ]]; then needs+=(wrk); fi
for tool in "${needs[@]}"; do
  command -v "$tool" >/dev/null || { echo "compare.sh: $tool is missing" >&2; exit 1; }
done
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  (cd "$ROOT" && cargo build --release --bin trustgate --bin trustgate-bench)
fi
mkdir -p "$OUT/run"
for port in ${UPSTREAM##*:} ${TG_TLS##*:} ${TG_PLAIN##*:} ${TG_ADMIN##*:} ${NG_TLS##*:} ${NG_PLAIN##*:} \
  ${HA_TLS##*:} ${HA_PLAIN##*:}; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "compare.sh: port $port is in use" >&2
    exit 1
  fi
done

# The processes started here, by name: upstream, trustgate, nginx (its
# master), haproxy, hold (a trustgate-bench holding idle connections).
declare -A PID=()
alive() { # pid: exists and is not a zombie
  local s
  s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ ${s%% *} != Z ]]
}
stop() { # name: SIGTERM, up to 10 s, then SIGKILL; only the pid started here
  local p=${PID[$1]:-}
  [[ -n $p ]] || return 0
  kill "$p" 2>/dev/null || true
  for _ in $(seq 1 100); do
    alive "$p" || break
    sleep 0.1
  done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  unset "PID[$1]"
}
cleanup() {
  local name
  for name in hold trustgate nginx haproxy upstream; do stop "$name"; done
}
trap cleanup EXIT

fail() {
  echo "compare.sh: $*" >&2
  exit 1
}
wait_for() { # url: answers at all
  for _ in $(seq 1 100); do
    if curl -sk -o /dev/null --max-time 1 "$1"; then return 0; fi
    sleep 0.1
  done
  fail "$1 did not come up"
}
wait_tcp() { # host:port: accepts connections (no request sent)
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  fail "$1 did not come up"
}

"$BIN/trustgate-bench" config --upstream "$UPSTREAM" --tls "$TG_TLS" --plain "$TG_PLAIN" \
  --admin "$TG_ADMIN" --certs "$CERTS" |
  sed -e "/^max_connections = /a worker_threads = $WORKERS" \
    -e "/^max_connections = /a runtime = \"$RUNTIME\"" >"$OUT/run/trustgate.toml"
grep -q "^worker_threads = $WORKERS\$" "$OUT/run/trustgate.toml" &&
  grep -q "^runtime = \"$RUNTIME\"\$" "$OUT/run/trustgate.toml" ||
  fail "could not set worker_threads and runtime in the generated trustgate config"
sed -e "s#@RUN@#$OUT/run#g" -e "s#@CERTS@#$CERTS#g" -e "s#@UPSTREAM@#$UPSTREAM#g" \
  -e "s#@TLS@#$NG_TLS#g" -e "s#@PLAIN@#$NG_PLAIN#g" -e "s#@WORKERS@#$WORKERS#g" \
  "$ROOT/benches/nginx.conf" >"$OUT/run/nginx.conf"
# HAProxy reads the key from the certificate's file.
(umask 077 && cat "$CERTS/localhost.pem" "$CERTS/localhost.key" >"$OUT/run/haproxy.pem")
# Two descriptors per connection, or HAProxy refuses to start.
nofile=$(ulimit -Hn)
HA_MAXCONN=20000
if [[ $nofile != unlimited ]] && (((nofile - 50) / 2 < HA_MAXCONN)); then HA_MAXCONN=$(((nofile - 50) / 2)); fi
sed -e "s#@RUN@#$OUT/run#g" -e "s#@UPSTREAM@#$UPSTREAM#g" -e "s#@TLS@#$HA_TLS#g" \
  -e "s#@PLAIN@#$HA_PLAIN#g" -e "s#@THREADS@#$WORKERS#g" -e "s#@MAXCONN@#$HA_MAXCONN#g" \
  "$ROOT/benches/haproxy.cfg" >"$OUT/run/haproxy.cfg"
if has haproxy; then
  haproxy -c -q -f "$OUT/run/haproxy.cfg" || fail "haproxy -c refused $OUT/run/haproxy.cfg"
fi

start() { # name
  case $1 in
    upstream)
      "$BIN/trustgate-bench" upstream --listen "$UPSTREAM" --response-size "$RESPONSE_SIZE" \
        2>>"$OUT/upstream.log" &
      PID[upstream]=$!
      wait_for "http://$UPSTREAM/"
      ;;
    trustgate)
      "$BIN/trustgate" run --config "$OUT/run/trustgate.toml" 2>>"$OUT/trustgate.log" &
      PID[trustgate]=$!
      wait_for "http://$TG_ADMIN/readyz"
      ;;
    nginx)
      nginx -c "$OUT/run/nginx.conf" -p "$OUT/run" -e "$OUT/run/nginx-error.log" &
      PID[nginx]=$!
      wait_tcp "$NG_TLS"
      # The workers, forked after the listeners open.
      for _ in $(seq 1 100); do
        (($(pgrep -c -P "${PID[nginx]}" || true) >= WORKERS)) && break
        sleep 0.1
      done
      ;;
    haproxy)
      # -db: foreground, one process (its threads are nbthread).
      haproxy -db -f "$OUT/run/haproxy.cfg" 2>>"$OUT/haproxy.log" &
      PID[haproxy]=$!
      wait_tcp "$HA_TLS"
      ;;
  esac
}

url_of() { # target
  case $1 in
    trustgate) echo "https://$TG_TLS" ;;
    nginx) echo "https://$NG_TLS" ;;
    haproxy) echo "https://$HA_TLS" ;;
    direct) echo "http://$UPSTREAM" ;;
  esac
}
pids_of() { # name: the process started here and its children (nginx's workers)
  local p=${PID[$1]}
  # shellcheck disable=SC2046
  echo "$p" $(pgrep -P "$p" || true)
}

# CPU ticks (1/100 s) used so far by the given pids and all their threads:
# "utime+stime stime".
cpu_ticks() {
  local t=0 k=0 p f
  for p in "$@"; do
    read -r -a f < <(sed 's/.*) //' "/proc/$p/stat")
    t=$((t + f[11] + f[12]))
    k=$((k + f[12]))
  done
  echo "$t $k"
}
# The ticks used since `before` ("utime+stime stime", from cpu_ticks).
ticks_since() {
  local before=$1 now
  shift
  now=$(cpu_ticks "$@")
  echo "$((${now% *} - ${before% *})) $((${now#* } - ${before#* }))"
}
# "rss_kb pss_kb private_kb processes", summed over the pids' smaps_rollup.
mem_of() {
  local p k v _ rss=0 pss=0 priv=0 n=0
  for p in "$@"; do
    while read -r k v _; do
      case $k in
        Rss:) rss=$((rss + v)) ;;
        Pss:) pss=$((pss + v)) ;;
        Private_Clean: | Private_Dirty:) priv=$((priv + v)) ;;
      esac
    done <"/proc/$p/smaps_rollup"
    n=$((n + 1))
  done
  echo "$rss $pss $priv $n"
}
snapshot() { # name round phase connections -> a line of $OUT/memory.txt
  # shellcheck disable=SC2046
  echo "$1 $2 $3 $4 $(mem_of $(pids_of "$1"))" >>"$OUT/memory.txt"
}
established() { # port: established TCP connections to it
  ss -Htn state established "( sport = :$1 )" | wc -l
}

get_cookie() {
  COOKIE=$("$BIN/trustgate-bench" cookie --target "https://$TG_TLS" --certs "$CERTS")
}
warm() { # name proto: one GET with the session cookie over TLS; must be a 200
  local code flag=--http1.1
  [[ $2 != h2 ]] || flag=--http2
  code=$(curl -sk "$flag" -o /dev/null -w '%{http_code}' --max-time 5 \
    -H "User-Agent: $UA" -H "Cookie: $COOKIE" "$(url_of "$1")/") || true
  [[ $code == 200 ]] || fail "$1 answered ${code:-nothing} to a GET with the session cookie"
}

# hold_idle NAME PROTO: IDLE_CONNS keep-alive TLS connections to NAME, one
# request each (trustgate-bench --idle), then idle; memory with them open.
# The harness then sends 1 request/s on one more connection until stopped;
# that one counts among the connections held (N + 1).
hold_idle() {
  local t=$1 proto=$2 url port before n last=-1 same=0 extra=()
  url=$(url_of "$t")
  port=${url##*:}
  if [[ $t != trustgate ]]; then extra+=(--proxy); fi
  if [[ $proto == h2 ]]; then extra+=(--http2 --connections 1); fi
  before=$(established "$port")
  "$BIN/trustgate-bench" --target "$url" "${extra[@]}" --cookie "$COOKIE" --idle "$IDLE_CONNS" \
    --scenario passthrough --rate 1 --concurrency 1 --duration 600s --certs "$CERTS" --json \
    >"$OUT/idle-$proto-$t.txt" 2>&1 &
  PID[hold]=$!
  # Until the proxy holds them all and the harness's run connection, which
  # it opens only once every idle one has had its answer; or (failures)
  # until the count stops moving for 5 s; at most 120 s. Idle timeouts are
  # 60 s everywhere.
  for _ in $(seq 1 600); do
    sleep 0.2
    n=$(established "$port")
    ((n <= before + IDLE_CONNS)) || break
    alive "${PID[hold]}" || break
    if ((n == last)); then
      same=$((same + 1))
      ((same < 25)) || break
    else
      same=0
      last=$n
    fi
  done
  # Past trustgate's server.park_after and upstream.pool_park_after (1 s
  # each): its idle HTTP/1.1 connections, client and upstream, are parked,
  # as nginx's and HAProxy's have freed their buffers at once.
  sleep "$IDLE_SETTLE"
  n=$(($(established "$port") - before))
  ((n >= IDLE_CONNS * 9 / 10)) ||
    echo "compare.sh: only $n of $IDLE_CONNS idle connections to $t ($proto) opened; see $OUT/idle-$proto-$t.txt" >&2
  snapshot "$t" "$proto" idle "$n"
  if [[ $t == trustgate ]]; then
    curl -s "http://$TG_ADMIN/metrics" | grep '^trustgate_\(open\|parked\)_connections{listener="tls"}\|^trustgate_upstream_parked_connections ' |
      sed "s/^/$proto idle: /" | tee -a "$OUT/parked.txt" >&2 || true
  fi
  stop hold
}

{
  echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
  echo "trustgate $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), workers $WORKERS ($RUNTIME), generator $GEN, haproxy maxconn $HA_MAXCONN (ulimit -Hn $nofile)"
  if has nginx; then nginx -v 2>&1; fi
  if has haproxy; then haproxy -v | sed -n 1p; fi
  if [[ $GEN == wrk ]]; then { wrk -v 2>&1 || true; } | sed -n 1p; h2load --version | sed -n 1p; fi
  openssl version 2>/dev/null || true
  echo "started $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"

start upstream

# Idle memory: for each protocol, fresh proxies; after start (no TLS request
# yet), after one TLS request, then with IDLE_CONNS idle connections, one
# proxy at a time.
rounds=(none)
if ((IDLE_CONNS > 0)) && [[ -n $IDLE_PROTOS ]]; then read -r -a rounds <<<"$IDLE_PROTOS"; fi
: >"$OUT/memory.txt"
for round in "${rounds[@]}"; do
  echo "idle memory: $round" >&2
  for t in "${PROXIES[@]}"; do stop "$t"; done
  for t in "${PROXIES[@]}"; do start "$t"; done
  sleep 1
  for t in "${PROXIES[@]}"; do snapshot "$t" "$round" start 0; done
  get_cookie
  for t in "${PROXIES[@]}"; do warm "$t" "${round/none/h1}"; done
  sleep 1
  for t in "${PROXIES[@]}"; do snapshot "$t" "$round" warm 0; done
  if [[ $round != none ]]; then
    for t in "${PROXIES[@]}"; do
      [[ " ${TARGET_LIST[*]} " == *" $t "* ]] || continue
      hold_idle "$t" "$round"
    done
  fi
done

# Load: fresh proxies again.
for t in "${PROXIES[@]}"; do stop "$t"; done
for t in "${PROXIES[@]}"; do start "$t"; done
get_cookie
for t in "${PROXIES[@]}"; do warm "$t" h1; done
# What each TLS listener negotiates (same protocol and cipher for all?).
for t in "${PROXIES[@]}"; do
  hp=$(url_of "$t")
  hp=${hp#https://}
  echo "tls $t: $(timeout 5 openssl s_client -connect "$hp" -servername localhost -alpn h2,http/1.1 \
    </dev/null 2>/dev/null | grep -aE '^(New,|ALPN protocol|Server Temp Key)' | paste -sd ';' || true)"
done | tee -a "$OUT/machine.txt"

# Bodies for the proxies and direct, which do not check replays: reused.
for trust in TRUSTED NOT_TRUSTED; do
  "$BIN/trustgate-bench" assertions --count 2000 --trust "$trust" --lifetime 2h \
    --certs "$CERTS" --out "$OUT/run/reused-$trust.txt"
done

# run_one SCENARIO PROTO TARGET RUN -> writes $OUT/SCENARIO-PROTO-TARGET-RUN.txt
run_one() {
  local scenario=$1 proto=$2 target=$3 run=$4
  local url out bound pids="" before up_before up_after
  url=$(url_of "$target")
  out="$OUT/$scenario-$proto-$target-$run.txt"
  bound=$((DURATION + 60))
  echo "load $(cut -d' ' -f1 /proc/loadavg)" >"$out"
  if [[ $target != direct ]]; then pids=$(pids_of "$target"); fi
  # shellcheck disable=SC2086
  before=$(cpu_ticks $pids)
  up_before=$(cpu_ticks "${PID[upstream]}")
  case "$GEN/$scenario/$proto" in
    wrk/passthrough/h1)
      timeout "$bound" wrk -t"$GEN_THREADS" -c"$CONCURRENCY" -d"${DURATION}s" --latency \
        -H "User-Agent: $UA" -H "Cookie: $COOKIE" "$url/" >>"$out" 2>&1
      ;;
    wrk/passthrough/h2)
      timeout "$bound" h2load -t"$GEN_THREADS" -c"$H2_CONNECTIONS" \
        -m$((CONCURRENCY / H2_CONNECTIONS)) -D"$DURATION" --warm-up-time=1 \
        -H "user-agent: $UA" -H "cookie: $COOKIE" "$url/" >>"$out" 2>&1
      ;;
    wrk/acs-*/h1)
      local trust=TRUSTED bodies
      if [[ $scenario == acs-untrusted ]]; then trust=NOT_TRUSTED; fi
      bodies="$OUT/run/reused-$trust.txt"
      if [[ $target == trustgate ]]; then
        bodies="$OUT/run/fresh.txt"
        "$BIN/trustgate-bench" assertions --count "$ACS_BODIES" --trust "$trust" --lifetime 1h \
          --certs "$CERTS" --out "$bodies"
        # Signing is not the proxy's work.
        # shellcheck disable=SC2086
        before=$(cpu_ticks $pids)
      fi
      timeout "$bound" wrk -t"$GEN_THREADS" -c"$CONCURRENCY" -d"${DURATION}s" --latency \
        -s "$ROOT/benches/acs.lua" "$url/" -- "$bodies" "$GEN_THREADS" "$UA" >>"$out" 2>&1
      rm -f "$OUT/run/fresh.txt"
      ;;
    */*/*)
      # trustgate-bench: GEN=bench, and acs over h2 (a body per request).
      local extra=(--proxy)
      if [[ $target == trustgate ]]; then extra=(); fi
      if [[ $proto == h2 ]]; then extra+=(--http2); fi
      if [[ $scenario == passthrough ]]; then
        extra+=(--cookie "$COOKIE")
      else
        extra+=(--assertions "$ACS_BODIES")
      fi
      # It signs its assertions before the load (the proxy idles meanwhile,
      # so its CPU count is the load's). Exit 2 means errors; they are in
      # the JSON and the table.
      timeout $((bound + 60)) "$BIN/trustgate-bench" --target "$url" "${extra[@]}" \
        --scenario "$scenario" --concurrency "$CONCURRENCY" --connections "$H2_CONNECTIONS" \
        --duration "${DURATION}s" --threads "$GEN_THREADS" \
        --certs "$CERTS" --json >>"$out" 2>&1 || [[ $? == 2 ]]
      ;;
  esac
  if [[ $target != direct ]]; then
    # shellcheck disable=SC2086
    echo "cpu_ticks $(ticks_since "$before" $pids)" >>"$out"
  fi
  up_after=$(ticks_since "$up_before" "${PID[upstream]}")
  echo "upstream_ticks ${up_after% *}" >>"$out"
}

for scenario in $SCENARIOS; do
  for proto in $PROTOS; do
    for run in $(seq 1 "$RUNS"); do
      # Rotate the order each run so no target always goes first.
      for i in "${!TARGET_LIST[@]}"; do
        target=${TARGET_LIST[$(((i + run) % ${#TARGET_LIST[@]}))]}
        echo "$scenario $proto run $run: $target" >&2
        run_one "$scenario" "$proto" "$target" "$run"
      done
    done
  done
done
# Throughput against the number of keep-alive connections (wrk, passthrough
# h1), the proxies alternating.
for conns in $SCALING; do
  for target in "${TARGET_LIST[@]}"; do
    [[ $target != direct ]] || continue
    out="$OUT/scaling-$conns-$target.txt"
    echo "scaling $conns connections: $target" >&2
    echo "load $(cut -d' ' -f1 /proc/loadavg)" >"$out"
    pids=$(pids_of "$target")
    # shellcheck disable=SC2086
    before=$(cpu_ticks $pids)
    timeout $((SCALING_DURATION + 120)) wrk -t"$GEN_THREADS" -c"$conns" -d"${SCALING_DURATION}s" --latency \
      -H "User-Agent: $UA" -H "Cookie: $COOKIE" "$(url_of "$target")/" >>"$out" 2>&1
    # shellcheck disable=SC2086
    echo "cpu_ticks $(ticks_since "$before" $pids)" >>"$out"
  done
done
echo "finished $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
for t in "${PROXIES[@]}"; do
  snapshot "$t" load after 0
  peak=0
  for p in $(pids_of "$t"); do
    peak=$((peak + $(awk '$1 == "VmHWM:" {print $2}' "/proc/$p/status")))
  done
  echo "$t peak RSS (VmHWM, summed over its processes) since the load phase's start: $peak kB" |
    tee -a "$OUT/machine.txt"
done

python3 - "$OUT" "$SCENARIOS" "$PROTOS" "$RUNS" "$SCALING" "$TARGETS" "$GEN" "$IDLE_CONNS" "$ACS_BODIES" <<'PY'
import glob, json, re, statistics, sys

out, scenarios, protos, runs = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), int(sys.argv[4])
scaling, targets, gen, idle_conns = sys.argv[5].split(), sys.argv[6].split(), sys.argv[7], int(sys.argv[8])
acs_bodies = int(sys.argv[9])

def ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

def parse(path):
    text = open(path).read()
    r = {"rps": None, "p99": None, "p50": None, "errors": 0, "load": None, "n": None,
         "cpu": None, "sys": None, "user": None, "up": None}
    m = re.search(r"^load ([\d.]+)", text, re.M)
    if m:
        r["load"] = float(m.group(1))
    m = re.search(r"^cpu_ticks (-?\d+)(?: (-?\d+))?", text, re.M)
    if m:
        r["cpu"] = int(m.group(1)) / 100.0
        if m.group(2) is not None:
            r["sys"] = int(m.group(2)) / 100.0
            r["user"] = r["cpu"] - r["sys"]
    m = re.search(r"^upstream_ticks (-?\d+)", text, re.M)
    if m:
        r["up"] = int(m.group(1)) / 100.0
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

def ratio(a, b):
    return f(a / b, "{:.2f}x") if a and b else "-"

def per_req_us(rs, key):
    return med([r[key] * 1e6 / r["n"] for r in rs if r[key] is not None and r["n"]])

def tool(sc, p):
    if gen == "bench":
        return "trustgate-bench"
    return {("passthrough", "h1"): "wrk", ("passthrough", "h2"): "h2load"}.get(
        (sc, p), "wrk+lua" if p == "h1" else "trustgate-bench")

if scenarios and protos and runs:
    print()
    print("| scenario | proto | tool | target | req/s | vs nginx | vs direct | p50 ms | p99 ms | errors "
          "| proxy CPU µs/req | CPU vs nginx | kernel µs/req | user µs/req | upstream CPU µs/req | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
comments, warnings = [], []
for sc in scenarios:
    for p in protos:
        res = {}
        for t in targets:
            rs = [parse(x) for x in sorted(glob.glob(f"{out}/{sc}-{p}-{t}-*.txt"))]
            res[t] = {
                "rps": med([r["rps"] for r in rs]),
                "p50": med([r["p50"] for r in rs]),
                "p99": med([r["p99"] for r in rs]),
                "errors": sum(r["errors"] for r in rs),
                "load": [r["load"] for r in rs if r["load"] is not None],
                "all": [r["rps"] for r in rs],
                "cpu_us": per_req_us(rs, "cpu"),
                "sys_us": per_req_us(rs, "sys"),
                "user_us": per_req_us(rs, "user"),
                "up_us": per_req_us(rs, "up"),
            }
        ng, d = res.get("nginx", {}), res.get("direct", {})
        for t in targets:
            x = res[t]
            load = f"{min(x['load']):.2f}-{max(x['load']):.2f}" if x["load"] else "-"
            print(f"| {sc} | {p} | {tool(sc, p)} | {t} | {f(x['rps'])} "
                  f"| {ratio(x['rps'], ng.get('rps')) if t != 'nginx' else '-'} "
                  f"| {ratio(x['rps'], d.get('rps')) if t != 'direct' else '-'} "
                  f"| {f(x['p50'], '{:.2f}')} | {f(x['p99'], '{:.2f}')} | {x['errors']} "
                  f"| {f(x['cpu_us'], '{:.1f}')} "
                  f"| {ratio(x['cpu_us'], ng.get('cpu_us')) if t not in ('nginx', 'direct') else '-'} "
                  f"| {f(x['sys_us'], '{:.1f}')} | {f(x['user_us'], '{:.1f}')} "
                  f"| {f(x['up_us'], '{:.1f}')} | {load} |")
            comments.append(f"<!-- {sc} {p} {t} runs req/s: {', '.join(f(v) for v in x['all'])} -->")
            # Only trustgate refuses a reused assertion.
            outran = [r["n"] for r in rs if r["n"] and r["n"] > acs_bodies]
            if sc.startswith("acs") and t == "trustgate" and outran:
                warnings.append(f"WARNING: {sc} {p} trustgate: {len(outran)} run(s) completed more requests"
                                f" ({max(outran)}) than there were unique assertions (ACS_BODIES={acs_bodies});"
                                " the rest were replays, refused and counted as errors, and its req/s and CPU"
                                " per request mix the two. Raise ACS_BODIES or shorten DURATION.")
if comments:
    print("\n".join(comments))
    for w in warnings:
        print(f"\n{w}")
    print("\nCPU: utime+stime of the proxy's processes (trustgate; nginx master and workers;"
          " haproxy) over the requests completed; kernel: the stime part of it (system calls, TCP"
          " over loopback, waking the peers), user: the utime part; upstream: the bench upstream's.")

# Idle memory.
mem = {}
for line in open(f"{out}/memory.txt"):
    name, rnd, phase, conns, rss, pss, priv, nproc = line.split()
    mem[(name, rnd, phase)] = dict(conns=int(conns), rss=int(rss), pss=int(pss), priv=int(priv), n=int(nproc))
names = [n for n in ("trustgate", "nginx", "haproxy") if any(k[0] == n for k in mem)]
rounds = []
for (_, rnd, _) in mem:
    if rnd not in rounds and rnd != "load":
        rounds.append(rnd)
idle_rounds = [r for r in rounds if r != "none"]
first = rounds[0] if rounds else None

def per_conn(name, rnd, key):
    a, b = mem.get((name, rnd, "idle")), mem.get((name, rnd, "warm"))
    if not a or not b or a["conns"] <= 0:
        return None
    return (a[key] - b[key]) * 1024 / a["conns"]

print()
head = "| proxy | processes | after start RSS / PSS KB | after one TLS request RSS / PSS KB "
sep = "|---|---|---|---|"
for r in idle_rounds:
    head += f"| {r} idle conns | {r} bytes/conn PSS (RSS) "
    sep += "---|---|"
head += "| after the load RSS / PSS KB |"
sep += "---|"
print(head)
print(sep)
for n in names:
    s, w, l = mem.get((n, first, "start")), mem.get((n, first, "warm")), mem.get((n, "load", "after"))
    row = (f"| {n} | {s['n'] if s else '-'} | {f(s and s['rss'])} / {f(s and s['pss'])} "
           f"| {f(w and w['rss'])} / {f(w and w['pss'])} ")
    for r in idle_rounds:
        i = mem.get((n, r, "idle"))
        row += (f"| {i['conns'] if i else '-'} | {f(per_conn(n, r, 'pss'))} "
                f"({f(per_conn(n, r, 'rss'))}) ")
    row += f"| {f(l and l['rss'])} / {f(l and l['pss'])} |"
    print(row)
if idle_rounds:
    print(f"\nbytes/conn: growth from 'after one TLS request' to {idle_conns} idle keep-alive TLS connections"
          " open (one request each), over the connections the proxy held (those and the harness's one active);"
          " fresh proxies for each protocol."
          " PSS is summed over the proxy's processes (nginx's master and workers share pages).")
    ng_h1 = per_conn("nginx", "h1", "pss")
    tg_h1, tg_h2 = per_conn("trustgate", "h1", "pss"), per_conn("trustgate", "h2", "pss")
    if ng_h1:
        print(f"trustgate h1 / nginx h1: {ratio(tg_h1, ng_h1)} (target <= 1); "
              f"trustgate h2 / nginx h1: {ratio(tg_h2, ng_h1)} (target <= 2)")

if scaling:
    proxies = [t for t in targets if t != "direct"]
    print()
    print("| connections | " + " | ".join(f"{t} req/s | p99 ms | errors | CPU µs/req" for t in proxies) + " | load avg |")
    print("|---|" + "---|---|---|---|" * len(proxies) + "---|")
    for c in scaling:
        cells, loads = [], []
        for t in proxies:
            r = parse(f"{out}/scaling-{c}-{t}.txt")
            cpu = r["cpu"] * 1e6 / r["n"] if r["cpu"] is not None and r["n"] else None
            cells.append(f"{f(r['rps'])} | {f(r['p99'], '{:.1f}')} | {r['errors']} | {f(cpu, '{:.1f}')}")
            if r["load"] is not None:
                loads.append(r["load"])
        print(f"| {c} | " + " | ".join(cells) + f" | {f(min(loads) if loads else None, '{:.2f}')} |")
PY
echo "raw outputs: $OUT"
