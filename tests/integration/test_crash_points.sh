#!/usr/bin/env bash
# Crashes at exact points (tests/integration/crash_points.py): two SQLite files, the process
# killed with SIGKILL by the test-only ARRAYSYNC_TEST_CRASH_AT hook.
#   test_crash_points.sh BUILD_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
work=$(mktemp -d /tmp/arraysync-crash-XXXXXX)
status=0
/usr/bin/python3 "$root/tests/integration/crash_points.py" --bin "$build/arraysync" --work "$work" || status=1
if [ $status -ne 0 ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
exit $status
