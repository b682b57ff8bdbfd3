#!/usr/bin/env bash
# Builds the man page arraysync(1) with help2man from `arraysync --help`, `--version` and
# `help config` (a CONFIGURATION section), plus the static sections of docs/arraysync.h2m.
#   scripts/gen-man.sh BINARY OUTPUT
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:?usage: gen-man.sh BINARY OUTPUT}
out=${2:?usage: gen-man.sh BINARY OUTPUT}
inc=$(mktemp)
trap 'rm -f "$inc"' EXIT
{
  echo "[CONFIGURATION]"
  echo "The reference below is printed by \\fBarraysync help config\\fR (also docs/CONFIG.md)."
  echo ".nf"
  # roff: backslashes as \e; lines starting with . or ' protected by \&
  "$bin" help config | tail -n +2 | sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
  echo ".fi"
} >"$inc"
help2man --no-info --section 1 \
  --name "keeps MongoDB collections and PostgreSQL/SQLite tables in sync, both ways" \
  --include "$root/docs/arraysync.h2m" --include "$inc" --output "$out" "$bin"
