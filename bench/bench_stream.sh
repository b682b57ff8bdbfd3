#!/usr/bin/env bash
# Streaming SQLite <-> PostgreSQL through `arraysync run`, no Python in the data path
# (bench/bench_stream.py generates the load and reads the clocks; see bench/README.md).
#
#   bench/bench_stream.sh [BUILD_DIR] [ROWS] [RATE] [SECONDS] [PERF_DIR]
#
# BUILD_DIR (default $ARRAYSYNC_BUILD or <repo>/build) holds a Release build of arraysync.
# PERF_DIR: when given, `perf record -g` samples the connector during each phase and
# `perf report` summaries are written there. Starts and stops its own private PostgreSQL
# (tests/scripts/pg_server.sh) on a free 127.0.0.1 port.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${ARRAYSYNC_BUILD:-$root/build}}
build=$(cd "$build" && pwd)
rows=${2:-50000}
rate=${3:-1000}
secs=${4:-8}
perf_dir=${5:-}
[ -x "$build/arraysync" ] || { echo "bench_stream.sh: $build/arraysync missing" >&2; exit 2; }
work=$(mktemp -d /tmp/arraysync-bstream-XXXXXX)
chmod 755 "$work"
cleanup() {
  "$root/tests/scripts/pg_server.sh" stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
pport=$("$root/tests/scripts/free_port.sh")
dsn=$("$root/tests/scripts/pg_server.sh" start "$work/pg" "$pport")
PGOPTIONS="-c client_min_messages=warning" psql "$dsn" -qAt -c "CREATE DATABASE bench_stream" >/dev/null
dsn="${dsn% dbname=*} dbname=bench_stream"
echo "# bench_stream  $(date -u +%Y-%m-%dT%H:%MZ)  rows=$rows rate=$rate seconds=$secs  $(nproc) cpu, load $(cut -d' ' -f1-3 /proc/loadavg)"
popt=()
if [ -n "$perf_dir" ]; then mkdir -p "$perf_dir"; perf_dir=$(cd "$perf_dir" && pwd); popt=(--perf-dir "$perf_dir"); fi
/usr/bin/python3 "$root/bench/bench_stream.py" --bin "$build/arraysync" --dsn "$dsn" --work "$work/run" \
  --rows "$rows" --rate "$rate" --seconds "$secs" "${popt[@]}"
if [ -n "$perf_dir" ]; then
  for d in "$perf_dir"/perf-*.data; do
    perf report -i "$d" --no-children --percent-limit 1 --stdio -g none 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | head -40 > "${d%.data}.txt" || true
    echo "## perf: $(basename "$d")"; head -25 "${d%.data}.txt"
  done
fi
