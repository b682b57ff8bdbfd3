#!/usr/bin/env bash
# I/O failures of the target database and of the state store (tests/integration/iofault.py),
# through the fault-injecting SQLite VFS of the arraysync_iofault test build.
# Usage: test_iofault.sh BUILD_DIR
set -euo pipefail
BUILD=${1:?usage: $0 BUILD_DIR}
[ -x "$BUILD/arraysync_iofault" ] || { echo "FAIL: $BUILD/arraysync_iofault not built" >&2; exit 1; }
exec /usr/bin/python3 "$(dirname "$0")/iofault.py" "$BUILD"
