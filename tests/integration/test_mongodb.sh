#!/usr/bin/env bash
# Integration tests of the MongoDB adapter: runs it_mongodb from the build dir ($1).
# Without ARRAYSYNC_TEST_MONGODB_URI, starts the wire-protocol test server on a free port in a
# temporary directory (plus a second one with a tiny change history for the error-286 tests)
# and stops them on exit. With it set (e.g. a real replica set from docker/compose.yml), uses
# that; ARRAYSYNC_TEST_MONGODB_URI_SMALL_HISTORY may name a second server for the 286 tests.
set -euo pipefail
BUILD=${1:?usage: test_mongodb.sh BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
SCRIPTS="$HERE/../scripts"
TMP=""
PORTS=()
cleanup() {
    if [ -n "$TMP" ]; then
        for p in "${PORTS[@]}"; do "$SCRIPTS/mongo_server.sh" stop "$p" "$TMP/$p" || true; done
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
if [ -z "${ARRAYSYNC_TEST_MONGODB_URI:-}" ]; then
    TMP=$(mktemp -d)
    P1=$("$SCRIPTS/free_port.sh")
    "$SCRIPTS/mongo_server.sh" start "$P1" "$TMP/$P1" >/dev/null
    PORTS+=("$P1")
    export ARRAYSYNC_TEST_MONGODB_URI="mongodb://127.0.0.1:$P1/?replicaSet=rs0"
    if [ -z "${ARRAYSYNC_TEST_MONGODB_URI_SMALL_HISTORY:-}" ]; then
        P2=$("$SCRIPTS/free_port.sh")
        "$SCRIPTS/mongo_server.sh" start "$P2" "$TMP/$P2" --history 20 >/dev/null
        PORTS+=("$P2")
        export ARRAYSYNC_TEST_MONGODB_URI_SMALL_HISTORY="mongodb://127.0.0.1:$P2/?replicaSet=rs0"
    fi
fi
"$BUILD/it_mongodb" "${@:2}"
