#!/usr/bin/env bash
# Runs one scenario of docs/PERFORMANCE.md against classchat with the in-repo load
# generator, starting a fresh server (new database and transcript folder) per run.
#
#   cargo build --profile bench-release --features load
#   bench/scenario.sh s1 [RUNS]       100 clients all sending, 1,000 msg/s total, 10 s
#   bench/scenario.sh s1ws [RUNS]     s1 through the web page's WebSocket, each run
#                                     beside an s1 run on the line port (line, ws, ...)
#   bench/scenario.sh s1irc [RUNS]    s1 through the IRC port in #lobby, each run beside
#                                     an s1 run on the line port (line, irc, ...)
#   bench/scenario.sh s1tls [RUNS]    s1 through the line port's TLS listener (a
#                                     self-signed certificate), each run beside a
#                                     plain s1 run (line, tls, ...)
#   bench/scenario.sh s1max           s1 stepped up until loss, p99 > 100 ms or the rate is missed
#   bench/scenario.sh s2 [RUNS]       1,000 clients, 10 senders x 10 msg/s
#   bench/scenario.sh s2floor [RUNS]  s2 against chat-floor (benches/floor.rs: fan-out
#                                     and nothing else), each run beside an s2 run
#                                     against classchat (s2, s2floor, ...)
#   bench/scenario.sh s3 [RUNS]       10,000 clients connect and hold (CLIENTS=1000 for fewer)
#   bench/scenario.sh s3tls [RUNS]    s3 on the line port's TLS listener, each run beside
#                                     a plain s3 run on a server with the same certificate
#   bench/scenario.sh s3crowd [RUNS]  s3 with every join announced beside s3 with a big
#                                     room's summaries (limits.announce_joins_up_to),
#                                     each followed by everyone leaving at once
#   bench/scenario.sh s3mixed [RUNS]  s3 with half the clients on the line port and half
#                                     on IRC, both at once; prints RSS per connection
#   bench/scenario.sh stalled [RUNS]  s1 plus one client that never reads
#
# The rows beside ergo and ngircd (issue 29's guards): bench/ergo.sh guards.
#
# Results: one JSON line per run appended to $BENCH_RESULTS/SCENARIO.jsonl
# (default /tmp/classchat-bench/results), a summary of each run on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/steps.sh
scenario=${1:?usage: bench/scenario.sh s1|s1ws|s1irc|s1tls|s1max|s2|s2floor|s3|s3tls|s3crowd|s3mixed|stalled [RUNS]}
runs=${2:-1}
work=${BENCH_WORK:-/tmp/classchat-bench}
results=${BENCH_RESULTS:-$work/results}
server=target/bench-release/chat-server
load=target/bench-release/chat-load
floor=target/bench-release/chat-floor
[ -x "$server" ] && [ -x "$load" ] && [ -x "$floor" ] || { echo "run cargo build --profile bench-release --features load first" >&2; exit 1; }
mkdir -p "$results"

# Starts a fresh server (new database and transcript) in $dir with the line port,
# the web listener and the IRC listener on free ports; sets $pid and $dir.
start_server() {
  dir=$(mktemp -d "$work/run.XXXXXX")
  local config=$dir/classchat.toml
  # ANNOUNCE=N sets limits.announce_joins_up_to (0: every join announced).
  { sed "s/^\[limits\]\$/[limits]${ANNOUNCE:+\\nannounce_joins_up_to = $ANNOUNCE}/" bench/classchat.toml
    printf '\n[web]\nenabled = true\nport = 0\ntls_port = 0\n\n[irc]\nenabled = true\nport = 0\ntls_port = 0\n'
    if [ -n "${TLS_DIR:-}" ]; then
      printf '\n[tls]\ncert = "%s"\nkey = "%s"\nline_port = 0\n' "$TLS_DIR/cert.pem" "$TLS_DIR/key.pem"
    fi; } >"$config"
  "$server" --config "$config" --port 0 --db "$dir/bench.db" --log-dir "$dir/logs" \
    >"$dir/server.out" 2>"$dir/server.err" &
  pid=$!
  for _ in $(seq 100); do
    grep -q '^web listening on' "$dir/server.out" 2>/dev/null && return
    sleep 0.1
  done
  cat "$dir/server.err" >&2; kill "$pid"; exit 1
}

# The chat-load flags that reach the server's listener for protocol $1.
target() {
  case $1 in
    line) echo "--proto line --ready Welcome --addr $(sed -n 's/^listening on //p' "$dir/server.out")" ;;
    tls) echo "--proto line --tls --ready Welcome --addr $(sed -n 's/^tls listening on //p' "$dir/server.out")" ;;
    irc) echo "--proto irc --channel #lobby --addr $(sed -n 's/^irc listening on //p' "$dir/server.out")" ;;
    ws) echo "--proto ws --ready Welcome --addr $(sed -n 's|^web listening on http://\([^/]*\)/.*|\1|p' "$dir/server.out")" ;;
  esac
}

stop_server() {
  kill -TERM "$pid"
  wait "$pid" || true
  rm -rf "$dir"
}

# Prints one chat-load JSON line for a freshly started server, then stops it.
# PROTO=ws or PROTO=irc loads that listener instead of the line port.
run_once() {
  local label=$1; shift
  local dir pid status=0
  start_server
  # shellcheck disable=SC2046  # target's words are separate flags
  "$load" $(target "${PROTO:-line}") --server-pid "$pid" \
    --label "classchat/$label" --json-out "$results/$label.jsonl" "$@" || status=$?
  stop_server
  return $status
}

# Prints one chat-load JSON line for a fresh chat-floor, then stops it.
floor_once() {
  local label=$1; shift
  local out pid status=0
  out=$(mktemp "$work/floor.XXXXXX")
  "$floor" >"$out" &
  pid=$!
  for _ in $(seq 100); do
    grep -q '^listening on' "$out" && break
    sleep 0.1
  done
  "$load" --proto line --ready Welcome --addr "$(sed -n 's/^listening on //p' "$out")" \
    --server-pid "$pid" --label "floor/$label" --json-out "$results/$label.jsonl" "$@" ||
    status=$?
  kill "$pid"; wait "$pid" || true
  rm -f "$out"
  return $status
}

# S3 into one room, then everyone leaves at once: one chat-load line for the
# joins, and one line for the leave storm (the server's CPU seconds and the wall
# time until it is idle again, from the moment the load generator exits).
s3crowd_once() {
  local label=$1 dir pid
  start_server
  # shellcheck disable=SC2046
  "$load" $(target line) --server-pid "$pid" --label "classchat/$label" \
    --json-out "$results/$label.jsonl" --scenario connect-only --clients "${CLIENTS:-10000}" \
    --hold 5 --hold-max 240 --connect-concurrency 100 --handshake-timeout 300
  local ticks=$(getconf CLK_TCK) start now cpu0 before after
  start=$(date +%s.%N)
  cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  after=$cpu0
  while :; do
    sleep 0.5
    before=$after
    after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    # Idle: under 5 % of a core over the last half second.
    awk -v d=$(( after - before )) -v t="$ticks" 'BEGIN { exit !(d < 0.025 * t) }' && break
  done
  now=$(date +%s.%N)
  awk -v l="classchat/$label-leave" -v s="$start" -v n="$now" -v c=$(( after - cpu0 )) -v t="$ticks" \
    'BEGIN { printf "{\"label\":\"%s\",\"leave_wall_s\":%.2f,\"leave_cpu_s\":%.2f}\n", l, n - s - 0.5, c / t }' |
    tee -a "$results/$label.jsonl" >&2
  stop_server
}

# Half the clients on the line port and half on IRC at once, to one server; prints
# the server's RSS per connection after both generators' hold.
s3mixed_once() {
  local dir pid half=$(( ${CLIENTS:-10000} / 2 ))
  start_server
  local before
  before=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  local flags=(--scenario connect-only --clients "$half" --hold 10 --hold-max 240
    --connect-concurrency 50 --handshake-timeout 300 --server-pid "$pid")
  # shellcheck disable=SC2046
  "$load" $(target line) "${flags[@]}" --nick-prefix l --label classchat/s3mixed-line \
    --json-out "$dir/line.json" &
  local line_load=$!
  # shellcheck disable=SC2046
  "$load" $(target irc) "${flags[@]}" --nick-prefix i --label classchat/s3mixed-irc \
    --json-out "$dir/irc.json" &
  local irc_load=$! first
  # The generator that ends its hold first reads the server with all clients still
  # connected; the other one reads it after the first one's clients have left.
  wait -n -p first "$line_load" "$irc_load"
  local measured=$dir/irc.json other=$line_load
  if [ "$first" = "$line_load" ]; then measured=$dir/line.json other=$irc_load; fi
  wait "$other"
  cat "$dir/line.json" "$dir/irc.json" >>"$results/s3mixed.jsonl"
  local after
  after=$(grep -o '"after_hold":[0-9]*' "$measured" | cut -d: -f2)
  echo "s3mixed: RSS ${before} kB -> ${after} kB after the hold," \
    "$(( (after - before) * 1024 / (2 * half) )) bytes per connection" >&2
  stop_server
}

# A self-signed certificate in $TLS_DIR, loaded by every server started after it, so
# that a TLS run and the plain run beside it differ only in the port.
with_certificate() {
  TLS_DIR=$(mktemp -d "$work/tls.XXXXXX")
  "$server" tls self-signed --host localhost --host 127.0.0.1 --out "$TLS_DIR" >/dev/null
  export TLS_DIR
}

s1=(--clients 100 --rate 1000 --duration 10 --warmup 2)
s3=(--scenario connect-only --clients "${CLIENTS:-10000}" --hold 10 --hold-max 240
  --connect-concurrency 100 --handshake-timeout 300)
s2=(--clients 1000 --senders 10 --per-sender-rate 10 --duration 10 --warmup 2 --settle 3
  --handshake-timeout 120)
case $scenario in
  s1) for _ in $(seq "$runs"); do run_once s1 "${s1[@]}"; done ;;
  s1ws|s1irc)
    # Alternating, so that whatever else the machine is doing hits both alike.
    for _ in $(seq "$runs"); do
      PROTO=line run_once "$scenario-line" "${s1[@]}"
      PROTO=${scenario#s1} run_once "$scenario" "${s1[@]}"
    done ;;
  s1tls)
    with_certificate
    for _ in $(seq "$runs"); do
      PROTO=line run_once s1tls-line "${s1[@]}"
      PROTO=tls run_once s1tls "${s1[@]}"
    done
    rm -rf "$TLS_DIR" ;;
  stalled) for _ in $(seq "$runs"); do run_once stalled "${s1[@]}" --stalled 1; done ;;
  s2) for _ in $(seq "$runs"); do run_once s2 "${s2[@]}"; done ;;
  s2floor)
    for _ in $(seq "$runs"); do
      run_once s2floor-classchat "${s2[@]}"
      floor_once s2floor "${s2[@]}"
    done ;;
  s3) for _ in $(seq "$runs"); do run_once s3 "${s3[@]}"; done ;;
  s3tls)
    with_certificate
    for _ in $(seq "$runs"); do
      PROTO=line run_once s3tls-line "${s3[@]}"
      PROTO=tls run_once s3tls "${s3[@]}"
    done
    rm -rf "$TLS_DIR" ;;
  s3mixed) for _ in $(seq "$runs"); do s3mixed_once; done ;;
  s3crowd)
    # Alternating: every join announced (the behaviour below the threshold), then
    # the summaries of a big room.
    for _ in $(seq "$runs"); do
      ANNOUNCE=0 s3crowd_once s3crowd-each
      s3crowd_once s3crowd-summary
    done ;;
  s1max) s1max_steps run_once ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
