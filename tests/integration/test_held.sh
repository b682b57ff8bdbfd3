#!/usr/bin/env bash
# What the state store says each node holds after a change that writes nothing anywhere (a
# whole-row change older than every column's version, by a clock column), in a ring:
# `verify --quick` must find the equal nodes equal (tests/integration/held_versions.py).
# MongoDB comes from ARRAYSYNC_TEST_MONGODB_URI, or the project's test server started here.
#   test_held.sh BUILD_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
work=$(mktemp -d /tmp/arraysync-held-XXXXXX)
status=0
/usr/bin/python3 "$root/tests/integration/held_versions.py" --bin "$build/arraysync" --work "$work" || status=1
if [ $status -ne 0 ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
exit $status
