#!/usr/bin/env bash
# SQLite adapter against other processes: the sqlite3 shell's changes are captured, a writer
# killed with SIGKILL leaves checkpoint and data in agreement, wake-up latency is reported.
# Usage: test_sqlite_shell.sh BUILD_DIR
set -euo pipefail
BUILD=${1:?usage: $0 BUILD_DIR}
PROG="$BUILD/it_sqlite"
if ! command -v sqlite3 >/dev/null; then
  echo "FAIL: the sqlite3 command-line shell is needed (apt-get install sqlite3)" >&2
  exit 1
fi
[ -x "$PROG" ] || { echo "FAIL: $PROG not built (cmake --build $BUILD --target it_sqlite)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/arraysync-it-sqlite-XXXXXX)
trap 'rm -rf "$WORK"' EXIT

mkdir "$WORK/shell" "$WORK/kill9" "$WORK/lat-inotify" "$WORK/lat-poll"
"$PROG" shell "$WORK/shell"
"$PROG" kill9 "$WORK/kill9" 5
# latency is reported, never asserted
"$PROG" latency "$WORK/lat-inotify" inotify
"$PROG" latency "$WORK/lat-poll" poll
echo "integration.test_sqlite_shell ok"
