#!/bin/sh
# Tests the MongoDB wire-protocol test server:
#   1. the pymongo unittest suite (starts its own servers on free 127.0.0.1 ports);
#   2. if $1 is the path of the built test_mongo_libmongoc binary, runs it against a server
#      started here with tests/scripts/mongo_server.sh on a free port: once plain, then once per
#      wire compressor (compressors=zstd / snappy / zlib in the URI), checking with the server's
#      serverStatus.network counters that requests and replies really went compressed.
# Exits nonzero on any failure.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3
CTEST=${1:-}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/arraysync-mongo-XXXXXX")
PORT=$("$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1]); s.close()")
rc=0

cleanup() {
    "$HERE/mongo_server.sh" stop "$PORT" "$WORK" >/dev/null 2>&1 || true
    if [ $rc -eq 0 ]; then rm -rf "$WORK"; else echo "server logs kept in $WORK" >&2; fi
}
trap cleanup EXIT INT TERM

if ! "$HERE/mongo_server.sh" start "$PORT" "$WORK"; then
    rc=1; exit 1
fi

echo "== pymongo suite (tests/mongo_server/test_server.py)"
if ! (cd "$ROOT/tests/mongo_server" && "$PY" -m unittest test_server test_mql_ops); then
    echo "pymongo suite FAILED" >&2
    rc=1
fi

if [ -n "$CTEST" ]; then
    echo "== libmongoc test ($CTEST) against mongodb://127.0.0.1:$PORT/?replicaSet=rs0"
    if ! "$CTEST" "mongodb://127.0.0.1:$PORT/?replicaSet=rs0"; then
        echo "libmongoc test FAILED" >&2
        rc=1
    fi
    for comp in zstd snappy zlib; do
        before=$("$HERE/mongo_server.sh" stats "$PORT" "$WORK" --all) || { rc=1; continue; }
        echo "== libmongoc test with compressors=$comp"
        if ! "$CTEST" "mongodb://127.0.0.1:$PORT/?replicaSet=rs0&compressors=$comp"; then
            echo "libmongoc test with compressors=$comp FAILED" >&2
            rc=1
        fi
        after=$("$HERE/mongo_server.sh" stats "$PORT" "$WORK" --all) || { rc=1; continue; }
        # the run must have made the server decompress requests and compress replies with $comp
        if ! "$PY" "$HERE/../mongo_server/check_compressed.py" "$comp" "$before" "$after"; then
            echo "compressors=$comp: no compressed traffic seen by the server" >&2
            rc=1
        fi
    done
fi

if [ $rc -eq 0 ]; then echo "mongo_server tests passed"; fi
exit $rc
