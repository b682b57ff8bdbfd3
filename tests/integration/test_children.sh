#!/usr/bin/env bash
# Arrays of subdocuments <-> child tables, MongoDB <-> SQLite, both ways: every array operation
# and every SQL child change, checked field by field (tests/integration/children.py); then a
# randomized two-sided load with kill -9 in each topology, converging parent by parent
# (tests/integration/children_load.py). MongoDB: ARRAYSYNC_TEST_MONGODB_URI, or the project's
# test server started here.
#   test_children.sh BUILD_DIR
set -euo pipefail
BUILD=${1:?usage: $0 BUILD_DIR}
W=$(mktemp -d /tmp/arraysync-children-XXXXXX)
trap 'rm -rf "$W"' EXIT
here=$(dirname "$0")
/usr/bin/python3 "$here/children.py" --bin "$BUILD/arraysync" --work "$W/work"
/usr/bin/python3 "$here/children_load.py" --bin "$BUILD/arraysync" --work "$W/p2p" --duration 20
/usr/bin/python3 "$here/children_load.py" --bin "$BUILD/arraysync" --work "$W/ring" --duration 20 \
  --lites 2 --topology ring
/usr/bin/python3 "$here/children_load.py" --bin "$BUILD/arraysync" --work "$W/hub" --duration 20 \
  --lites 2 --topology hub-and-spoke
