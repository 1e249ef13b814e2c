#!/usr/bin/env python3
"""Runs the benchmark driver (bench/driver.py, from the shared bench beside the project)
against classchat and the anchors that can run here, in one session, on 127.0.0.1 only:
the Python baseline (bench/baseline/chat_server.py) and ngircd (bench/ngircd.conf).

Usage: python3 bench/run.py SERVER SCENARIO [--runs N]
  SERVER:   classchat | python | ngircd   (ngircd: `apt-get install ngircd`)
  SCENARIO: s1 | s1max | s2 | s3
Needs `cargo build --profile bench-release --features load`. The load generator is this repository's chat-load
(same flags and JSON as the shared chatload); CHATLOAD=path picks another one.
Results are appended to $BENCH_RESULTS (default /tmp/classchat-bench/results).
"""
import os
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = Path("/tmp/classchat-bench")
os.environ.setdefault("BENCH_RESULTS", str(WORK / "results"))
os.environ.setdefault("ANCHORS", str(WORK / "anchors"))
sys.path.insert(0, str(HERE))
import driver as bench  # noqa: E402  (bench/driver.py: the shared bench's driver)

# ngircd's configuration, as in the shared bench's ANCHORS.md.
NGIRCD_CONF = HERE / "ngircd.conf"


def main():
    ngircd_dir = Path(os.environ["ANCHORS"]) / "ngircd"
    ngircd_dir.mkdir(parents=True, exist_ok=True)
    conf = re.sub(r"(?m)^(\s*PidFile = ).*$", lambda m: m.group(1) + str(ngircd_dir / "ngircd.pid"),
                  NGIRCD_CONF.read_text())
    (ngircd_dir / "ngircd.conf").write_text(conf)
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
