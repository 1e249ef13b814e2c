#!/usr/bin/env bash
# Makes the course screenshots in docs/screenshots/:
#   three-clients.png  three real chat-client sessions (alice, bob, carol) in tmux,
#                      chatting through one real chat-server, each pane as its user saw it
#   report.png         `chat-server report` and `chat-server transcript --user carol_w`
#                      for that session (the grading view)
#
# Usage: scripts/screenshot.sh          (no arguments, no input; about a minute)
#
# Environment: SCREENSHOT_TIMEOUT (seconds to wait for each expected line, default
# 10), SCREENSHOT_KEEP=1 keeps the temporary folder (config, database, captures, logs).
#
# Needs: cargo, python3 with pip. Installs tmux, Pillow and fonts-dejavu-core when
# they are missing (apt-get, as root or through sudo). The server runs on a free
# port with a database in a temporary folder, so nothing in the repository but the
# two PNGs is touched.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
OUT_DIR="$REPO/docs/screenshots"
FONT_DIR=/usr/share/fonts/truetype/dejavu
TIMEOUT=${SCREENSHOT_TIMEOUT:-10}   # seconds to wait for any expected line
COLS=200 ROWS=26                    # the tmux window: three panes of 66 x 26
SOCKET="classchat-shot-$$"          # a private tmux server: never touches the user's

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'screenshot.sh: error: %s\n' "$*" >&2; exit 1; }

# --- 1. tools ------------------------------------------------------------------------
as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}
apt_install() {
    log "installing $* (apt-get)"
    command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
    export DEBIAN_FRONTEND=noninteractive
    if ! as_root apt-get install -y -q "$@" >/dev/null; then
        as_root apt-get update -q >/dev/null
        as_root apt-get install -y -q "$@" >/dev/null || die "apt-get install $* failed"
    fi
}
command -v cargo >/dev/null || die "cargo not found (install the Rust toolchain)"
command -v python3 >/dev/null || die "python3 not found"
command -v tmux >/dev/null || apt_install tmux
if [[ ! -f $FONT_DIR/DejaVuSansMono.ttf || ! -f $FONT_DIR/DejaVuSansMono-Bold.ttf ]]; then
    apt_install fonts-dejavu-core
fi
if ! python3 -c 'import PIL' 2>/dev/null; then
    log "installing Pillow (pip)"
    # Debian's own python3 refuses pip installs (PEP 668); then use its package.
    python3 -m pip install --quiet pillow 2>/dev/null ||
        python3 -m pip install --quiet --break-system-packages pillow 2>/dev/null ||
        apt_install python3-pil
    python3 -c 'import PIL' 2>/dev/null || die "cannot install Pillow for $(command -v python3)"
fi

# --- 2. build --------------------------------------------------------------------------
log "building (cargo build --release --bins)"
(cd "$REPO" && cargo build --release --bins --quiet) || die "cargo build failed"
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
[[ $TARGET_DIR = /* ]] || TARGET_DIR="$REPO/$TARGET_DIR"
SERVER_BIN="$TARGET_DIR/release/chat-server"
CLIENT_BIN="$TARGET_DIR/release/chat-client"
[[ -x $SERVER_BIN && -x $CLIENT_BIN ]] || die "binaries not found in $TARGET_DIR/release"

# --- 3. server ---------------------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/classchat-shot.XXXXXX")
SERVER_PID=""
cleanup() {
    local sock
    sock=$(tmux -L "$SOCKET" display-message -p '#{socket_path}' 2>/dev/null) || sock=""
    tmux -L "$SOCKET" kill-server 2>/dev/null || true
    [[ -z $sock ]] || rm -f "$sock"
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n ${SCREENSHOT_KEEP:-} ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CONFIG="$TMP/class.toml"
cat >"$CONFIG" <<EOF
[server]
name = "CS101 chat"
port = 0
motd = "Welcome to CS 101 - Networks"

[storage]
database = "$TMP/chat.db"

[log]
dir = "$TMP/logs"
EOF

log "starting chat-server"
"$SERVER_BIN" --config "$CONFIG" </dev/null >"$TMP/server.out" 2>"$TMP/server.err" &
SERVER_PID=$!
PORT=""
for _ in $(seq $((TIMEOUT * 10))); do
    PORT=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$TMP/server.out")
    [[ -n $PORT ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if [[ -z $PORT ]]; then
    cat "$TMP/server.err" >&2
    die "chat-server did not print 'listening on ADDR:PORT' within ${TIMEOUT}s"
fi
log "chat-server listening on port $PORT"

# --- 4. three clients in tmux --------------------------------------------------------------
# Each pane shows a shell-like prompt with the command, then the real client.
# It waits until the layout is final: narrowing a pane makes tmux rewrap its lines
# and push the top ones into the scrollback, out of the picture.
cat >"$TMP/client.sh" <<EOF
#!/usr/bin/env bash
while [[ ! -e "$TMP/go" ]]; do sleep 0.05; done
clear
printf '\033[1;32m%s@cs101\033[0m:\033[1;34m~\033[0m\$ chat-client --port %s\n' "\$1" "$PORT"
env -u NO_COLOR TERM=xterm-256color "$CLIENT_BIN" --port "$PORT"
status=\$?
printf '\033[1;32m%s@cs101\033[0m:\033[1;34m~\033[0m\$ ' "\$1"
[[ \$status -eq 0 ]] || printf '(chat-client exited with status %s)' "\$status"
exec sleep 100000
EOF
chmod +x "$TMP/client.sh"

tm() { tmux -L "$SOCKET" "$@"; }
STUDENTS=(alice bob carol)
declare -A PANE
cat >"$TMP/tmux.conf" <<EOF
set -g status off
set -g history-limit 2000
set -g default-terminal xterm-256color
EOF
PANE[alice]=$(tm -f "$TMP/tmux.conf" new-session -d -s chat -x "$COLS" -y "$ROWS" \
    -P -F '#{pane_id}' "$TMP/client.sh alice")
PANE[bob]=$(tm split-window -h -t "${PANE[alice]}" -P -F '#{pane_id}' "$TMP/client.sh bob")
PANE[carol]=$(tm split-window -h -t "${PANE[bob]}" -P -F '#{pane_id}' "$TMP/client.sh carol")
tm select-layout -t chat even-horizontal
for s in "${STUDENTS[@]}"; do tm select-pane -t "${PANE[$s]}" -T "$s"; done
size=$(tm display-message -p -t "${PANE[alice]}" '#{pane_width} #{pane_height}')
touch "$TMP/go"

screen_of() { tm capture-pane -p -J -t "${PANE[$1]}"; }

# wait_for STUDENT TEXT: until TEXT is on STUDENT's screen (spaces and line breaks
# ignored, so a wrapped line matches too).
wait_for() {
    local who=$1 want=${2//[[:space:]]/} i
    for ((i = 0; i < TIMEOUT * 20; i++)); do
        if screen_of "$who" | tr -d '[:space:]' | grep -qF -- "$want"; then return 0; fi
        sleep 0.05
    done
    printf '%s\n' "--- $who's screen ---" >&2
    screen_of "$who" >&2
    printf '%s\n' "--- end ---" >&2
    die "'$2' did not appear on $who's screen within ${TIMEOUT}s"
}

# wait_for_re STUDENT REGEX: the same for an extended regex, matched against the
# whole screen as one line with all white space removed.
wait_for_re() {
    local who=$1 i
    for ((i = 0; i < TIMEOUT * 20; i++)); do
        if screen_of "$who" | tr -d '[:space:]' | grep -qE -- "$2"; then return 0; fi
        sleep 0.05
    done
    screen_of "$who" >&2
    die "nothing matching /$2/ appeared on $who's screen within ${TIMEOUT}s"
}

# say STUDENT TEXT: type TEXT and Enter, as a paste would arrive.
say() {
    local who=$1 text=$2
    tm send-keys -t "${PANE[$who]}" -l -- "$text"
    tm send-keys -t "${PANE[$who]}" Enter
}

# --- 5. the conversation ------------------------------------------------------------------
log "driving the conversation"
for s in "${STUDENTS[@]}"; do wait_for "$s" "username>"; done

say alice alice
wait_for alice "Welcome, alice!"
say bob bob
wait_for bob "Welcome, bob!"
wait_for alice "bob has joined"
say carol "carol w"                       # not a valid username: refused, asked again
wait_for_re carol '!.*username>$'         # the error, then a fresh prompt
say carol carol
wait_for carol "Welcome, carol!"
wait_for bob "carol has joined"

say alice "hi all, how is the socket assignment going?"
wait_for carol "alice: hi all,"
say bob "my server accepts clients now, one thread each"
wait_for alice "bob: my server accepts"
say carol "do we have to handle partial reads from recv()?"
wait_for alice "carol: do we have to handle"
say alice "yes, TCP is a byte stream: buffer until the \\n"
wait_for carol "buffer until the"
say alice "/msg carol want to pair on select() after class?"
wait_for carol "[PM from alice]"
say carol "/msg alice sure, lab 2 at 4pm?"
wait_for alice "[PM from carol]"
say bob "/who"
wait_for bob "= #lobby (3)"
say carol "/nick carol_w"
wait_for bob "carol is now known as carol_w"
wait_for alice "carol is now known as carol_w"
wait_for carol "carol is now known as carol_w"
say carol "thanks alice, that helps!"
wait_for alice "carol_w: thanks alice"
say bob "/quit see you later"
wait_for bob "Goodbye, bob."
wait_for alice "bob has left #lobby (Quit: see you later)"
wait_for carol "bob has left #lobby (Quit: see you later)"
sleep 0.3   # let every client finish drawing

# --- 6. capture and render ----------------------------------------------------------------
mkdir -p "$OUT_DIR"
log "capturing the panes"
render_args=()
cursor_args=()
for i in "${!STUDENTS[@]}"; do
    s=${STUDENTS[$i]}
    tm capture-pane -e -p -t "${PANE[$s]}" >"$TMP/$s.ans"
    render_args+=(--pane "$s's terminal" "$TMP/$s.ans")
    cursor_args+=(--cursor "$i" "$(tm display-message -p -t "${PANE[$s]}" '#{cursor_x},#{cursor_y}')")
done
python3 "$SCRIPT_DIR/render_terminal.py" --out "$OUT_DIR/three-clients.png" \
    --cols "${size% *}" --rows "${size#* }" "${render_args[@]}" "${cursor_args[@]}" >/dev/null ||
    die "rendering three-clients.png failed"

# --- 7. the grading report -----------------------------------------------------------------
# Stop the server while alice and carol are still connected: it must record their
# leaving and flush everything before it exits 0.
log "stopping chat-server"
kill -TERM "$SERVER_PID"
status=0
wait "$SERVER_PID" || status=$?
if ((status != 0)); then
    cat "$TMP/server.err" >&2
    die "chat-server exited with status $status on SIGTERM (its stderr is above)"
fi
SERVER_PID=""
PS1_SHOT='\033[1;32minstructor@cs101\033[0m:\033[1;34m~\033[0m$ '
{
    printf "$PS1_SHOT%s\n" "chat-server report --config class.toml"
    "$SERVER_BIN" report --config "$CONFIG" || die "chat-server report failed"
    printf "$PS1_SHOT%s\n" "chat-server transcript --config class.toml --user carol_w"
    "$SERVER_BIN" transcript --config "$CONFIG" --user carol_w || die "chat-server transcript failed"
    printf "$PS1_SHOT\n"
} >"$TMP/report.ans"
python3 "$SCRIPT_DIR/render_terminal.py" --out "$OUT_DIR/report.png" \
    --pane "instructor's terminal: grading" "$TMP/report.ans" >/dev/null ||
    die "rendering report.png failed"

log "done in ${SECONDS}s"
echo "$OUT_DIR/three-clients.png"
echo "$OUT_DIR/report.png"
