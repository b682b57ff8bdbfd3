#!/usr/bin/env bash
# Nothing changes that nobody changed (tests/integration/roundtrip.py): random MongoDB documents
# of every BSON type and shape through MongoDB + PostgreSQL + SQLite and every write path (first
# run, --resnapshot, SQL changes of one column, conflicts both ways, verify --repair of drift, a
# dead letter fixed and retried), every document compared byte for byte after each; PostgreSQL
# by logical decoding, then by triggers. The seed
# is new on every run and printed; rerun one with ROUNDTRIP_SEED=N.
# MongoDB: ARRAYSYNC_TEST_MONGODB_URI, or the project's test server started here; PostgreSQL: a
# private server started here.
#   test_roundtrip.sh BUILD_DIR
set -euo pipefail
BUILD=${1:?usage: $0 BUILD_DIR}
W=$(mktemp -d /tmp/arraysync-roundtrip-XXXXXX)
trap 'rm -rf "$W"' EXIT
here=$(dirname "$0")
/usr/bin/python3 "$here/roundtrip.py" --bin "$BUILD/arraysync" --work "$W/rt" --docs 200 \
  ${ROUNDTRIP_SEED:+--seed "$ROUNDTRIP_SEED"}
/usr/bin/python3 "$here/roundtrip.py" --bin "$BUILD/arraysync" --work "$W/rtt" --docs 200 --capture triggers \
  ${ROUNDTRIP_SEED:+--seed "$ROUNDTRIP_SEED"}
