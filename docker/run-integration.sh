#!/usr/bin/env bash
# Runs the integration suite against a real MongoDB 7 replica set (and the suite's own private
# PostgreSQL) from docker/compose.yml. Needs a Docker engine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
docker compose -f "$here/compose.yml" up -d --wait mongo
trap 'docker compose -f "$here/compose.yml" down -v' EXIT
docker compose -f "$here/compose.yml" --profile tests run --rm --build tests
