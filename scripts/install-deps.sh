#!/usr/bin/env bash
# Installs every Debian package that ArraySync's build, tests, benchmarks and demo need.
# Idempotent: packages already present are skipped by apt-get.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config git
  libmongoc-dev libbson-dev libpq-dev libsqlite3-dev sqlite3
  libxxhash-dev libjansson-dev libyaml-dev liblua5.4-dev libmicrohttpd-dev check libsubunit-dev
  postgresql postgresql-client
  python3 python3-bson python3-pymongo python3-yaml python3-psycopg2
  python3-zstandard python3-snappy
  procps psmisc curl
)
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
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
