#!/usr/bin/env bash
# The project explains itself: no file in the repository may point at documents outside it
# (a design or style guide kept elsewhere). Run by ctest (unit.outside_references).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
pattern='(\.\./shared|DESIGN\.md|STYLE\.md)'
hits=$(git ls-files 2>/dev/null | grep -v '^tests/scripts/check_refs.sh$' | \
       xargs -d '\n' grep -nE "$pattern" 2>/dev/null || true)
if [ -n "$hits" ]; then
  echo "references to documents outside the repository:" >&2
  echo "$hits" >&2
  exit 1
fi
echo "no references outside the repository"
