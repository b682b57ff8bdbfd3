#!/usr/bin/env bash
# Dead letters that say why and keep their payload: a NULL in a required column and a
# catch-all field at a mapped column's path (SQLite -> MongoDB), a string that is not UTF-8
# and a key of another type (MongoDB -> SQLite); `dlq retry` of the kept payload
# (tests/integration/dead_letters.py). MongoDB: ARRAYSYNC_TEST_MONGODB_URI, or the project's
# test server started here.
#   test_dead_letters.sh BUILD_DIR
set -euo pipefail
BUILD=${1:?usage: $0 BUILD_DIR}
W=$(mktemp -d /tmp/arraysync-deadletters-XXXXXX)
trap 'rm -rf "$W"' EXIT
/usr/bin/python3 "$(dirname "$0")/dead_letters.py" --bin "$BUILD/arraysync" --work "$W/work"
