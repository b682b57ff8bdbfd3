#!/bin/sh
# Start/stop the ArraySync MongoDB wire-protocol test server (127.0.0.1 only).
#   mongo_server.sh start PORT DIR [extra server options...]
#   mongo_server.sh stop  PORT DIR
#   mongo_server.sh stats PORT DIR [--all]
# start: launches tests/mongo_server/mongo_server.py in the background, writes DIR/mongo_server.pid
#        and DIR/mongo_server.log, and waits until 127.0.0.1:PORT accepts connections.
#        Server options include --compressors snappy,zstd,zlib|disabled (wire compression offered).
# stop:  kills the process recorded in DIR/mongo_server.pid.
# stats: prints the server's wire byte counters as JSON (serverStatus.network: bytesIn/bytesOut
#        before compression, physicalBytesIn/physicalBytesOut on the wire, numRequests; --all adds
#        the per-compressor counters). Cumulative; difference two calls for a delta.
# MONGO_SERVER_PYTHON=/usr/bin/pypy3 runs the server under PyPy (with the pure-Python part of
# Debian's python3-bson on its path; zlib is then the only wire compressor). Not the default:
# see tests/mongo_server/README.md for the measurements.
set -eu
PY=/usr/bin/python3
SERVER_PY=${MONGO_SERVER_PYTHON:-$PY}
HERE=$(cd "$(dirname "$0")" && pwd)
SERVER="$HERE/../mongo_server/mongo_server.py"

usage() { echo "usage: $0 start|stop|stats PORT DIR [server options]" >&2; exit 2; }
# alive PID: the process exists and is not a zombie waiting to be reaped
alive() {
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    case "$st" in Z*|"") return 1 ;; esac
    return 0
}
[ $# -ge 3 ] || usage
CMD=$1; PORT=$2; DIR=$3; shift 3
PIDFILE="$DIR/mongo_server.pid"

case "$CMD" in
start)
    mkdir -p "$DIR"
    if [ -f "$PIDFILE" ] && alive "$(cat "$PIDFILE")"; then
        echo "mongo_server already running (pid $(cat "$PIDFILE"))" >&2; exit 1
    fi
    rm -f "$PIDFILE"
    case "$SERVER_PY" in
    *pypy*)
        # only bson: the rest of dist-packages holds CPython extension modules
        mkdir -p "$DIR/pypy-path"
        ln -sfn "$("$PY" -c 'import bson, os; print(os.path.dirname(bson.__file__))')" "$DIR/pypy-path/bson"
        PYTHONPATH="$DIR/pypy-path" "$SERVER_PY" "$SERVER" --port "$PORT" --pidfile "$PIDFILE" \
            --log "$DIR/mongo_server.log" "$@" >>"$DIR/mongo_server.out" 2>&1 </dev/null &
        ;;
    *)
        "$SERVER_PY" "$SERVER" --port "$PORT" --pidfile "$PIDFILE" --log "$DIR/mongo_server.log" "$@" \
            >>"$DIR/mongo_server.out" 2>&1 </dev/null &
        ;;
    esac
    SPID=$!
    i=0
    while :; do
        if ! alive "$SPID"; then
            echo "mongo_server exited during startup; see $DIR/mongo_server.out" >&2
            cat "$DIR/mongo_server.out" >&2 || true
            exit 1
        fi
        if [ -f "$PIDFILE" ] && "$PY" -c "import socket,sys; s=socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.5); s.close()" "$PORT" 2>/dev/null; then
            break
        fi
        i=$((i + 1))
        if [ $i -gt 100 ]; then
            echo "mongo_server did not accept connections on 127.0.0.1:$PORT" >&2
            kill "$SPID" 2>/dev/null || true
            exit 1
        fi
        sleep 0.1
    done
    echo "mongo_server started on 127.0.0.1:$PORT (pid $SPID)"
    ;;
stop)
    if [ ! -f "$PIDFILE" ]; then
        echo "no pid file $PIDFILE" >&2; exit 0
    fi
    PID=$(cat "$PIDFILE")
    kill "$PID" 2>/dev/null || true
    i=0
    while alive "$PID"; do
        i=$((i + 1))
        if [ $i -gt 50 ]; then kill -9 "$PID" 2>/dev/null || true; break; fi
        sleep 0.1
    done
    rm -f "$PIDFILE"
    ;;
stats)
    exec "$PY" "$HERE/../mongo_server/server_stats.py" "$PORT" "$@"
    ;;
*) usage ;;
esac
