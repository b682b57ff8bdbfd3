#!/usr/bin/env bash
# Arrays of subdocuments <-> child tables, both ways, MongoDB <-> SQLite and MongoDB <->
# PostgreSQL (logical decoding and triggers): every array operation and every SQL child change,
# checked field by field (tests/integration/children.py), the same for nested child tables
# (tests/integration/children_nested.py); then randomized two-sided loads with
# kill -9 over MongoDB + SQLite + PostgreSQL, peer-to-peer, ring and hub-and-spoke (nested
# child tables in the ring, in hub-and-spoke and in a run with PostgreSQL trigger capture),
# converging parent by parent (tests/integration/children_load.py). MongoDB:
# ARRAYSYNC_TEST_MONGODB_URI, or the project's test server started here; PostgreSQL: a private
# server started here.
#   test_children.sh BUILD_DIR
set -euo pipefail
BUILD=${1:?usage: $0 BUILD_DIR}
W=$(mktemp -d /tmp/arraysync-children-XXXXXX)
trap 'rm -rf "$W"' EXIT
here=$(dirname "$0")
bin="$BUILD/arraysync"
/usr/bin/python3 "$here/children.py" --bin "$bin" --work "$W/lite"
/usr/bin/python3 "$here/children.py" --bin "$bin" --work "$W/pg" --kind postgres
/usr/bin/python3 "$here/children.py" --bin "$bin" --work "$W/pgt" --kind postgres --capture triggers
/usr/bin/python3 "$here/children_nested.py" --bin "$bin" --work "$W/nlite"
/usr/bin/python3 "$here/children_nested.py" --bin "$bin" --work "$W/npg" --kind postgres
/usr/bin/python3 "$here/children_nested.py" --bin "$bin" --work "$W/npgt" --kind postgres --capture triggers
/usr/bin/python3 "$here/children_load.py" --bin "$bin" --work "$W/p2p" --duration 20 --lites 1 --pgs 1
/usr/bin/python3 "$here/children_load.py" --bin "$bin" --work "$W/ring" --duration 20 --lites 1 \
  --pgs 1 --topology ring --nested
/usr/bin/python3 "$here/children_load.py" --bin "$bin" --work "$W/p2pt" --duration 20 --lites 1 \
  --pgs 1 --nested --capture triggers
/usr/bin/python3 "$here/children_load.py" --bin "$bin" --work "$W/hub" --duration 20 --lites 2 \
  --pgs 1 --nested --topology hub-and-spoke
