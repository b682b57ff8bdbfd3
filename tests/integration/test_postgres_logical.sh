#!/usr/bin/env bash
# integration.test_postgres_logical: the PostgreSQL adapter's whole suite with capture: logical
# (logical decoding). test_postgres.sh runs it with capture: triggers.
#   bash tests/integration/test_postgres_logical.sh BUILD_DIR
set -euo pipefail
exec bash "$(cd "$(dirname "$0")" && pwd)/test_postgres.sh" "${1:?usage: test_postgres_logical.sh BUILD_DIR}" logical
