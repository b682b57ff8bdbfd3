#!/usr/bin/env bash
# Integration tests of the MongoDB adapter: runs it_mongodb from the build dir ($1).
# Without ARRAYSYNC_TEST_MONGODB_URI, starts the wire-protocol test server on a free port in a
# temporary directory (plus a second one with a tiny change history for the error-286 tests)
# and stops them on exit. With it set (e.g. a real replica set from docker/compose.yml), uses
# that; ARRAYSYNC_TEST_MONGODB_URI_SMALL_HISTORY may name a second server for the 286 tests.
# Test selection (arguments after BUILD_DIR) applies to the plain pass only.
#
# Then wire compression: it_mongodb runs again with compressors=zstd added to the URI (all tests),
# and with snappy and zlib (a subset: ops, big_snapshot), and each pass must have made the server
# decompress requests and compress replies with that compressor (serverStatus.network.compression,
# read through tests/mongo_server/server_stats.py and checked by check_compressed.py).
# ARRAYSYNC_TEST_MONGODB_COMPRESSORS (default "zstd snappy zlib") picks the compressors; set it to
# "none" to skip these passes (e.g. a server of your own without compression or serverStatus).
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
if [ -n "$TMP" ]; then STATS_AT=$P1; else STATS_AT=$ARRAYSYNC_TEST_MONGODB_URI; fi
stats() { /usr/bin/python3 "$HERE/../mongo_server/server_stats.py" "$STATS_AT" --all; }

echo "== it_mongodb (no compression)"
"$BUILD/it_mongodb" "${@:2}"

PLAIN_URI=$ARRAYSYNC_TEST_MONGODB_URI
COMPRESSORS=${ARRAYSYNC_TEST_MONGODB_COMPRESSORS:-zstd snappy zlib}
[ "$COMPRESSORS" = none ] && COMPRESSORS=""
for comp in $COMPRESSORS; do
    case "$comp" in
    zstd) subset=() ;;                      # the whole suite
    *) subset=(ops big_snapshot) ;;         # a quick pass over the bulk paths
    esac
    uri=$(/usr/bin/python3 "$HERE/../scripts/mongo_uri_option.py" "$PLAIN_URI" "compressors=$comp")
    before=$(stats)
    echo "== it_mongodb with compressors=$comp ${subset[*]:-(all tests)}"
    ARRAYSYNC_TEST_MONGODB_URI=$uri "$BUILD/it_mongodb" "${subset[@]}"
    after=$(stats)
    if ! /usr/bin/python3 "$HERE/../mongo_server/check_compressed.py" "$comp" "$before" "$after"; then
        echo "compressors=$comp: the server saw no compressed traffic from it_mongodb" >&2
        exit 1
    fi
done
