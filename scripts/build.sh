#!/usr/bin/env bash
# Builds ArraySync into BUILD_DIR (default: build/). Extra arguments go to cmake.
#   scripts/build.sh [BUILD_DIR] [-DOPTION=...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
cmake -S "$root" -B "$build" -DARRAYSYNC_WERROR=ON "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
