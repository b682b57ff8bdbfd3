#!/usr/bin/env bash
# Installs every Debian package that ArraySync's build, tests, benchmarks, man page, package
# and demo need. Idempotent: packages already present are skipped. Quiet: apt's output goes
# to a log file; one summary line is printed (and the log's path when something fails).
#   scripts/install-deps.sh            everything
#   scripts/install-deps.sh --build    only what building the binary and the man page needs
set -euo pipefail
BUILD_PKGS=(
  build-essential cmake pkg-config git
  libmongoc-dev libbson-dev libpq-dev libsqlite3-dev
  libxxhash-dev libjansson-dev libyaml-dev liblua5.4-dev libmicrohttpd-dev check libsubunit-dev
  help2man
)
TEST_PKGS=(
  sqlite3 postgresql postgresql-client
  python3 python3-bson python3-pymongo python3-yaml python3-psycopg2
  python3-zstandard python3-snappy
  procps psmisc curl
  clang libfuzzer-14-dev llvm-14
)
PKGS=("${BUILD_PKGS[@]}")
[ "${1:-}" = --build ] || PKGS+=("${TEST_PKGS[@]}")
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
log=${ARRAYSYNC_DEPS_LOG:-${TMPDIR:-/tmp}/arraysync-install-deps.log}
echo "install-deps: installing ${#missing[@]} packages (${missing[*]}); log: $log"
if ! { $SUDO apt-get update -q && \
       $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  echo "install-deps: apt-get failed; the last lines of $log:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
echo "install-deps: installed ${#missing[@]} packages"
