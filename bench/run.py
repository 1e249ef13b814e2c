#!/usr/bin/env python3
"""Runs the shared chat benchmark driver (../shared/bench, not in this repository)
against classchat and the anchors that can run here, in one session, on 127.0.0.1 only.
For classchat alone, bench/scenario.sh needs nothing outside the repository.

Usage: python3 bench/run.py SERVER SCENARIO [--runs N]
  SERVER:   classchat | python | ngircd   (ngircd: `apt-get install ngircd`)
  SCENARIO: s1 | s1max | s2 | s3
Needs `cargo build --profile bench-release --features load`. The load generator is this repository's chat-load
(same flags and JSON as the shared chatload); CHATLOAD=path picks another one.
Results are appended to $BENCH_RESULTS (default /tmp/classchat-bench/results).
"""
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_BENCH", ROOT.parent / "shared" / "bench"))
WORK = Path("/tmp/classchat-bench")
os.environ.setdefault("BENCH_RESULTS", str(WORK / "results"))
os.environ.setdefault("ANCHORS", str(WORK / "anchors"))
sys.path.insert(0, str(SHARED))
import bench  # noqa: E402  (the shared driver)

# ngircd's configuration exactly as in ANCHORS.md.
NGIRCD_CONF = """[Global]
\tName = bench.local
\tInfo = chatload benchmark server
\tAdminInfo1 = bench
\tAdminInfo2 = bench
\tAdminEMail = bench@localhost
\tListen = 127.0.0.1
\tPorts = 6668
\tMotdPhrase = "bench"
\tPidFile = {dir}/ngircd.pid
\tServerUID = root
\tServerGID = root
[Limits]
\tMaxConnections = 0
\tMaxConnectionsIP = 0
\tMaxJoins = 0
\tMaxNickLength = 16
\tMaxPenaltyTime = 0
\tPingTimeout = 600
\tPongTimeout = 120
[Options]
\tDNS = no
\tIdent = no
\tPAM = no
"""


def main():
    ngircd_dir = Path(os.environ["ANCHORS"]) / "ngircd"
    ngircd_dir.mkdir(parents=True, exist_ok=True)
    (ngircd_dir / "ngircd.conf").write_text(NGIRCD_CONF.format(dir=ngircd_dir))
    bench.SERVERS["ngircd"]["cmd"] = ["ngircd", "-n", "-f", str(ngircd_dir / "ngircd.conf")]
    if "CHATLOAD" not in os.environ:
        bench.CHATLOAD = str(ROOT / "target/bench-release/chat-load")
    # A fresh database and transcript for every invocation.
    for old in WORK.glob("bench.db*"):
        old.unlink()
    shutil.rmtree(WORK / "logs", ignore_errors=True)
    bench.SERVERS["classchat"] = dict(
        cmd=[str(ROOT / "target/bench-release/chat-server"), "--config", str(ROOT / "bench/classchat.toml")],
        port=5599, proto="line", extra=["--ready", "Welcome"])
    bench.main()


if __name__ == "__main__":
    main()
