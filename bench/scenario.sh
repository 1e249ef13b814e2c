#!/usr/bin/env bash
# Runs one scenario of docs/PERFORMANCE.md against classchat with the in-repo load
# generator, starting a fresh server (new database and transcript folder) per run.
#
#   cargo build --release
#   bench/scenario.sh s1 [RUNS]       100 clients all sending, 1,000 msg/s total, 10 s
#   bench/scenario.sh s1ws [RUNS]     s1 through the web page's WebSocket, each run
#                                     beside an s1 run on the line port (line, ws, ...)
#   bench/scenario.sh s1max           s1 stepped up until loss, p99 > 100 ms or the rate is missed
#   bench/scenario.sh s2 [RUNS]       1,000 clients, 10 senders x 10 msg/s
#   bench/scenario.sh s3 [RUNS]       10,000 clients connect and hold (CLIENTS=1000 for fewer)
#   bench/scenario.sh stalled [RUNS]  s1 plus one client that never reads
#
# Results: one JSON line per run appended to $BENCH_RESULTS/SCENARIO.jsonl
# (default /tmp/classchat-bench/results), a summary of each run on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/steps.sh
scenario=${1:?usage: bench/scenario.sh s1|s1ws|s1max|s2|s3|stalled [RUNS]}
runs=${2:-1}
work=${BENCH_WORK:-/tmp/classchat-bench}
results=${BENCH_RESULTS:-$work/results}
server=target/release/chat-server
load=target/release/chat-load
[ -x "$server" ] && [ -x "$load" ] || { echo "run cargo build --release first" >&2; exit 1; }
mkdir -p "$results"

# Prints one chat-load JSON line for a freshly started server, then stops it.
# PROTO=ws loads the web listener's WebSocket instead of the line port.
run_once() {
  local label=$1; shift
  local proto=${PROTO:-line}
  local dir
  dir=$(mktemp -d "$work/run.XXXXXX")
  local config=bench/classchat.toml
  if [ "$proto" = ws ]; then
    config=$dir/classchat.toml
    { cat bench/classchat.toml; printf '\n[web]\nenabled = true\nport = 0\n'; } >"$config"
  fi
  "$server" --config "$config" --port 0 --db "$dir/bench.db" --log-dir "$dir/logs" \
    >"$dir/server.out" 2>"$dir/server.err" &
  local pid=$!
  local wanted='^listening on'
  [ "$proto" = ws ] && wanted='^web listening on'
  for _ in $(seq 100); do
    grep -q "$wanted" "$dir/server.out" 2>/dev/null && break
    sleep 0.1
  done
  local addr
  if [ "$proto" = ws ]; then
    addr=$(sed -n 's|^web listening on http://\([^/]*\)/.*|\1|p' "$dir/server.out")
  else
    addr=$(sed -n '1s/^listening on //p' "$dir/server.out")
  fi
  [ -n "$addr" ] || { cat "$dir/server.err" >&2; kill "$pid"; exit 1; }
  local status=0
  "$load" --proto "$proto" --ready Welcome --addr "$addr" --server-pid "$pid" \
    --label "classchat/$label" --json-out "$results/$label.jsonl" "$@" || status=$?
  kill -TERM "$pid"
  wait "$pid" || true
  rm -rf "$dir"
  return $status
}

s1=(--clients 100 --rate 1000 --duration 10 --warmup 2)
case $scenario in
  s1) for _ in $(seq "$runs"); do run_once s1 "${s1[@]}"; done ;;
  s1ws)
    # Alternating, so that whatever else the machine is doing hits both alike.
    for _ in $(seq "$runs"); do
      PROTO=line run_once s1ws-line "${s1[@]}"
      PROTO=ws run_once s1ws "${s1[@]}"
    done ;;
  stalled) for _ in $(seq "$runs"); do run_once stalled "${s1[@]}" --stalled 1; done ;;
  s2)
    for _ in $(seq "$runs"); do
      run_once s2 --clients 1000 --senders 10 --per-sender-rate 10 --duration 10 --warmup 2 \
        --settle 3 --handshake-timeout 120
    done ;;
  s3)
    for _ in $(seq "$runs"); do
      run_once s3 --scenario connect-only --clients "${CLIENTS:-10000}" --hold 10 --hold-max 240 \
        --connect-concurrency 100 --handshake-timeout 300
    done ;;
  s1max) s1max_steps run_once ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
