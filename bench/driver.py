#!/usr/bin/env python3
# A copy of the shared bench's driver (bench.py beside ANCHORS.md), kept here so that
# bench/run.py needs nothing outside the repository. run.py sets its load generator,
# ngircd's configuration and the classchat entry; the Python baseline is
# baseline/chat_server.py next to this file.
"""Run chatload scenarios against one chat server, restarting the server for every run.

Usage: python3 bench.py SERVER SCENARIO [--runs N]
  SERVER:   python | tokio-example | ngircd | ergo   (see SERVERS; binary paths via env vars)
  SCENARIO: s1 (100 clients, all send, 1000 msg/s total, 10 s)
            s1max (step the total rate up until loss > 0 or p99 > 100 ms)
            s2 (1000 clients, 10 senders x 10 msg/s, 10 s)
            s3 (connect-only, 10000 clients, hold 10 s)
Raw JSON lines are appended to results/<scenario>.jsonl ($BENCH_RESULTS overrides the folder).
Everything stays on 127.0.0.1.

The anchors are built by setup-anchors.sh into $ANCHORS (default /tmp/anchors). TOKIO_CHAT,
NGIRCD_CONF, ERGO and ERGO_DIR still override single paths; where neither they nor the $ANCHORS
build exist, the older /tmp/tokio-chat, /tmp/ngircd, /tmp/ergo-bin and /tmp/ergo are used.
"""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHATLOAD = os.environ.get("CHATLOAD", str(HERE / "chatload/target/release/chatload"))
RESULTS = Path(os.environ.get("BENCH_RESULTS", HERE / "results"))
ANCHORS = os.environ.get("ANCHORS", "/tmp/anchors")


def anchor(env, rel, legacy):
    """$env if set; else $ANCHORS/rel (setup-anchors.sh); else the older /tmp path if only it exists."""
    if os.environ.get(env):
        return os.environ[env]
    path = os.path.join(ANCHORS, rel)
    return legacy if not os.path.exists(path) and os.path.exists(legacy) else path


SERVERS = {
    "python": dict(cmd=["python3", str(HERE / "baseline/chat_server.py"), "5555"],
                   port=5555, proto="line", extra=["--ready", "Welcome"]),
    "tokio-example": dict(cmd=[anchor("TOKIO_CHAT", "tokio-chat/target/release/examples/chat",
                                      "/tmp/tokio-chat/target/release/examples/chat"),
                               "127.0.0.1:6142"], port=6142, proto="line", extra=[]),
    "ngircd": dict(cmd=["ngircd", "-n", "-f", anchor("NGIRCD_CONF", "ngircd/ngircd.conf", "/tmp/ngircd/ngircd.conf")],
                   # ngircd listens with backlog 10: more concurrent SYNs get dropped and retried
                   # after 1, 3, 7, 15 ... s, so connect at most 8 at a time.
                   port=6668, proto="irc", extra=["--connect-concurrency", "8"]),
    "ergo": dict(cmd=[anchor("ERGO", "ergo-bin/ergo", "/tmp/ergo-bin/ergo"), "run", "--conf", "ircd.yaml"],
                 cwd=anchor("ERGO_DIR", "ergo", "/tmp/ergo"), port=6669, proto="irc", extra=[]),
}

SCENARIOS = {
    "s1": ["--clients", "100", "--rate", "1000", "--duration", "10", "--warmup", "2"],
    "s2": ["--clients", "1000", "--senders", "10", "--per-sender-rate", "10", "--duration", "10",
           "--warmup", "2", "--settle", "3", "--handshake-timeout", "120"],
    "s3": ["--scenario", "connect-only", "--clients", "10000", "--hold", "10", "--hold-max", "240",
           "--connect-concurrency", "100", "--handshake-timeout", "300"],
}
S1MAX_RATES = [1000, 2000, 3000, 5000, 7500, 10000, 15000, 20000, 30000, 40000, 50000, 60000, 80000]


def wait_port(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not open port {port}")


def run_once(name, scenario, args, timeout=900):
    srv = SERVERS[name]
    log = open(f"/tmp/bench-{name}.log", "ab")
    proc = subprocess.Popen(srv["cmd"], cwd=srv.get("cwd"), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(srv["port"])
        time.sleep(0.5)  # the readiness probe connection has come and gone
        extra = srv["extra"]  # per-server flags (flag value pairs) override the scenario's
        for flag in extra[::2]:
            if flag in args:
                i = args.index(flag)
                args = args[:i] + args[i + 2:]
        cmd = [CHATLOAD, "--proto", srv["proto"], "--addr", f"127.0.0.1:{srv['port']}",
               "--server-pid", str(proc.pid), "--label", f"{name}/{scenario}",
               "--json-out", str(RESULTS / f"{scenario}.jsonl"), *args, *extra]
        if scenario == "s3" and srv["proto"] == "irc":
            cmd.append("--no-join")  # IRC: registration only; a 10k-member JOIN storm is N^2 lines
        print("$", " ".join(cmd), flush=True)
        out = subprocess.run(cmd, stdout=subprocess.PIPE, timeout=timeout, text=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["server_alive_after"] = proc.poll() is None
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def main():
    name, scenario = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 1
    RESULTS.mkdir(parents=True, exist_ok=True)
    if scenario == "s1max":
        best = None
        for rate in S1MAX_RATES:
            r = run_once(name, "s1max", ["--clients", "100", "--rate", str(rate), "--duration", "5",
                                         "--warmup", "1"])
            ok = r["loss_pct"] == 0 and r["latency_ms"]["p99"] <= 100 and r["sent_rate"] >= 0.98 * rate
            print(f"rate {rate}: loss {r['loss_pct']}% p99 {r['latency_ms']['p99']} ms "
                  f"deliveries/s {r['deliveries_per_s']} -> {'ok' if ok else 'FAIL'}", flush=True)
            if not ok:
                break
            best = r
        print("max sustainable:", json.dumps(best and {k: best[k] for k in
              ("target_rate", "deliveries_per_s", "latency_ms", "server_cpu_pct", "loadgen_cpu_pct")}))
        return
    for _ in range(runs):
        r = run_once(name, scenario, SCENARIOS[scenario])
        keys = ("connected", "deliveries_per_s", "loss_pct", "latency_ms", "rss_per_conn_bytes",
                "server_rss_kb", "connect_wall_s", "server_cpu_pct", "server_alive_after")
        print(json.dumps({k: r[k] for k in keys if k in r}), flush=True)


if __name__ == "__main__":
    main()
