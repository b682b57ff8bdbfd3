#!/usr/bin/env bash
# Builds ArraySync into BUILD_DIR (default: build/). Extra arguments go to cmake's configure
# step; BUILD_TARGET=arraysync builds only the binary.
#   scripts/build.sh [BUILD_DIR] [-DOPTION=...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
cmake -S "$root" -B "$build" -DARRAYSYNC_WERROR=ON "$@" >/dev/null
set +e
cmake --build "$build" -j"$(nproc)" ${BUILD_TARGET:+--target "$BUILD_TARGET"} | grep -vE '^\[ *[0-9]+%\] (Building|Linking|Built)'
status=${PIPESTATUS[0]}
set -e
exit "$status"
