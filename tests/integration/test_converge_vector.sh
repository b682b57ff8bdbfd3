#!/usr/bin/env bash
# Convergence with `conflict: { strategy: vector }` (version vectors): peer-to-peer with kill -9,
# ring and hub-and-spoke over MongoDB + PostgreSQL + SQLite under concurrent writers on shared
# keys (test_converge.sh's `vector` set; a ctest entry of its own to stay within its time limit).
set -euo pipefail
exec bash "$(dirname "$0")/test_converge.sh" "${1:-}" vector
