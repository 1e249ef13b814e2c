#!/usr/bin/env bash
# S1 through a three-node cluster (docs/PERFORMANCE.md, "Cluster"), beside
# single-node S1 in the same run: a fresh nats-server -js, a fresh PostgreSQL and
# fresh nodes for every run, all on 127.0.0.1.
#
#   cargo build --profile bench-release --features load
#   bench/cluster.sh s1 [RUNS]     100 clients spread over 3 nodes, 1,000 msg/s total, 10 s
#   bench/cluster.sh s1max         the same, stepped up until loss or p99 > 100 ms
#
# Needs nats-server and PostgreSQL (Debian: apt-get install nats-server postgresql).
# Prints each chat-load JSON line with the CPU of the nodes, NATS and PostgreSQL
# (percent of one core over the run) added; appends them to
# $BENCH_RESULTS/cluster-SCENARIO.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/steps.sh
scenario=${1:?usage: bench/cluster.sh s1|s1max [RUNS]}
runs=${2:-1}
nodes=${NODES:-3}
work=${BENCH_WORK:-/tmp/classchat-bench}
results=${BENCH_RESULTS:-$work/results}
server=$PWD/target/bench-release/chat-server
load=$PWD/target/bench-release/chat-load
[ -x "$server" ] && [ -x "$load" ] || { echo "run cargo build --profile bench-release --features load first" >&2; exit 1; }
command -v nats-server >/dev/null || { echo "nats-server is not installed" >&2; exit 1; }
pgbin=$(dirname "$(readlink -f "$(command -v initdb || ls -d /usr/lib/postgresql/*/bin/initdb | tail -1)")")
mkdir -p "$results" "$work"

# as_postgres CMD...: PostgreSQL refuses to run as root.
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# CPU ticks (user + system) used so far by the processes PIDS.
ticks() {
  local total=0 pid
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
  done
  echo "$total"
}

# Prints one chat-load JSON line, with the CPU of every process added, for a fresh
# cluster; stops it afterwards.
run_once() {
  local label=$1; shift
  local dir
  dir=$(mktemp -d "$work/cluster.XXXXXX")
  chmod 755 "$dir"
  local nats_port=$((20000 + RANDOM % 10000)) pg_port=$((30000 + RANDOM % 10000))
  nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$dir/nats" >"$dir/nats.log" 2>&1 &
  local nats_pid=$!
  mkdir "$dir/pg" && chown postgres: "$dir/pg" 2>/dev/null || true
  as_postgres "$pgbin/initdb" -A trust -U postgres --no-sync -D "$dir/pg/data" >/dev/null
  as_postgres "$pgbin/pg_ctl" start -w -D "$dir/pg/data" -l "$dir/pg/log" \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $dir/pg" >/dev/null
  as_postgres "$pgbin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres classchat
  { cat bench/classchat.toml
    printf '\n[cluster]\nnats_url = "nats://127.0.0.1:%s"\n' "$nats_port"
  } | sed "s#^\[storage\]#[storage]\npostgres_url = \"postgres://postgres@127.0.0.1:$pg_port/classchat\"#" \
    >"$dir/node.toml"
  local pids=() addrs=() i
  for i in $(seq "$nodes"); do
    "$server" --config "$dir/node.toml" --port 0 --db "$dir/node$i.db" --log-dir "$dir/logs$i" \
      >"$dir/node$i.out" 2>"$dir/node$i.err" &
    pids+=($!)
    for _ in $(seq 100); do
      grep -q '^listening on' "$dir/node$i.out" 2>/dev/null && break
      sleep 0.1
    done
    addrs+=("$(sed -n '1s/^listening on //p' "$dir/node$i.out")")
  done
  local joined
  joined=$(IFS=,; echo "${addrs[*]}")
  local pg_pids
  pg_pids=$(pgrep -u postgres -d ' ' postgres || true)
  local t0 n0 q0 p0
  t0=$(date +%s.%N); n0=$(ticks "${pids[@]}"); q0=$(ticks "$nats_pid"); p0=$(ticks $pg_pids)
  local line status=0
  line=$("$load" --proto line --ready Welcome --addr "$joined" --label "classchat-cluster/$label" "$@") \
    || status=$?
  local t1 n1 q1 p1
  t1=$(date +%s.%N); n1=$(ticks "${pids[@]}"); q1=$(ticks "$nats_pid"); p1=$(ticks $pg_pids)
  local hz
  hz=$(getconf CLK_TCK)
  local cpu
  cpu=$(awk -v t="$t0" -v u="$t1" -v n=$((n1 - n0)) -v q=$((q1 - q0)) -v p=$((p1 - p0)) -v hz="$hz" \
    'BEGIN { s = (u - t) * hz; printf "{\"nodes\":%.0f,\"nats\":%.0f,\"postgres\":%.0f}", 100*n/s, 100*q/s, 100*p/s }')
  line=$(sed "s/}\$/,\"cluster_cpu_pct\":$cpu}/" <<<"$line")
  echo "$line" | tee -a "$results/cluster-$label.jsonl"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  kill "$nats_pid"; wait "$nats_pid" 2>/dev/null || true
  as_postgres "$pgbin/pg_ctl" stop -m immediate -D "$dir/pg/data" >/dev/null
  rm -rf "$dir"
  return $status
}

s1=(--clients 100 --rate 1000 --duration 10 --warmup 2)
case $scenario in
  s1) for _ in $(seq "$runs"); do run_once s1 "${s1[@]}"; done ;;
  s1max) s1max_steps run_once ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
