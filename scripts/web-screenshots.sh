#!/usr/bin/env bash
# Makes the browser screenshots in docs/screenshots/:
#   web-chat.png        the chat page of a student (maya) chatting with three
#                       terminal users through one real chat-server
#   web-instructor.png  the instructor page for that session: who is online, the
#                       messages per student, the class's messages per minute, the table
#
# Usage: scripts/web-screenshots.sh   (about WEB_SHOT_MINUTES minutes, default 3)
#
# Needs: cargo, node and npm; installs Debian's chromium when it is missing (as root
# or through sudo) and playwright-core into tests/browser (npm ci). The server runs on
# free ports with a database in a temporary folder.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
if [[ ! -x /usr/bin/chromium ]]; then
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q && as_root apt-get install -y -q chromium
fi
[[ -d tests/browser/node_modules/playwright-core ]] || (cd tests/browser && npm ci --no-audit --no-fund)
cargo build --quiet --bin chat-server
CHAT_SERVER="$REPO/target/debug/chat-server" node tests/browser/screenshots.mjs
