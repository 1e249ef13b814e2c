# Sourced by scenario.sh and cluster.sh: S1max's steps. `s1max_steps RUN_ONCE`
# calls `RUN_ONCE s1max --clients 100 --rate RATE --duration 5 --warmup 1` for
# rising rates, each printing one chat-load JSON line, and stops at the first
# step that loses a message, passes p99 100 ms or sends under 98 % of the rate.
s1max_steps() {
  local run_once=$1 rate line loss p99 sent
  for rate in 1000 2000 3000 5000 7500 10000 15000 20000 30000 40000 50000 60000 80000; do
    line=$("$run_once" s1max --clients 100 --rate "$rate" --duration 5 --warmup 1) || true
    loss=$(sed -n 's/.*"loss_pct":\([0-9.]*\).*/\1/p' <<<"$line")
    p99=$(sed -n 's/.*"latency_ms":{[^}]*"p99":\([0-9.]*\).*/\1/p' <<<"$line")
    sent=$(sed -n 's/.*"sent_rate":\([0-9.]*\).*/\1/p' <<<"$line")
    if awk -v l="${loss:-1}" -v p="${p99:-1e9}" -v s="${sent:-0}" -v r="$rate" \
      'BEGIN { exit !(l == 0 && p <= 100 && s >= 0.98 * r) }'; then
      echo "rate $rate: pass (p99 $p99 ms)" >&2
    else
      echo "rate $rate: fail (loss ${loss:-?} %, p99 ${p99:-?} ms, sent ${sent:-?}/s)" >&2
      break
    fi
  done
}
