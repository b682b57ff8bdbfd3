#!/usr/bin/env bash
# Builds the .deb (cpack -G DEB) from a build directory, unpacks it into a scratch root with
# dpkg -x and checks what it holds: the binary runs `version` from there with the system's
# libraries, the man page, the systemd unit (its binary path and hardening), the examples,
# and that it depends on exactly the runtime libraries.
#   tests/scripts/check_package.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
work=$(mktemp -d /tmp/arraysync-pkg-XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "check_package: $*" >&2; exit 1; }
(cd "$work" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/out" >"$work/cpack.log" 2>&1) ||
  { tail -n 30 "$work/cpack.log" >&2; fail "cpack -G DEB failed"; }
deb=$(ls "$work"/out/arraysync_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || fail "no .deb in $work/out"
dpkg-deb -x "$deb" "$work/root"
r=$work/root
# the binary, run from the scratch root with the system's libraries
[ -x "$r/usr/bin/arraysync" ] || fail "usr/bin/arraysync missing"
out=$("$r/usr/bin/arraysync" version) || fail "usr/bin/arraysync version failed"
for lib in libmongoc libbson libpq SQLite jansson libyaml libmicrohttpd xxHash Lua; do
  grep -q "^  $lib " <<<"$out" || fail "version does not name $lib: $out"
done
ver=$(dpkg-deb -f "$deb" Version)
grep -q "^arraysync $ver\$" <<<"$out" || fail "version prints $(head -n1 <<<"$out"), package is $ver"
# man page, examples, docs
[ -s "$r/usr/share/man/man1/arraysync.1" ] || fail "man page usr/share/man/man1/arraysync.1 missing"
grep -q '^\.TH ARRAYSYNC "1"' "$r/usr/share/man/man1/arraysync.1" || fail "arraysync.1 is not a man page"
grep -q '^\.SH CONFIGURATION' "$r/usr/share/man/man1/arraysync.1" || fail "man page lacks CONFIGURATION"
for f in arraysync.yaml arraysync-postgres.yaml mappings/users.yaml; do
  [ -s "$r/usr/share/arraysync/examples/$f" ] || fail "example $f missing"
done
# the packaged examples validate with the packaged binary
(cd "$r/usr/share/arraysync/examples" && "$r/usr/bin/arraysync" check -c arraysync.yaml >/dev/null) ||
  fail "the packaged example arraysync.yaml does not pass arraysync check"
# the systemd unit
unit=$r/usr/lib/systemd/system/arraysync@.service
[ -s "$unit" ] || fail "unit usr/lib/systemd/system/arraysync@.service missing"
grep -q '^ExecStart=/usr/bin/arraysync run -c /etc/arraysync/%i.yaml' "$unit" || fail "unit ExecStart"
for kv in 'ExecReload=/bin/kill -HUP $MAINPID' 'Restart=on-failure' 'StateDirectory=arraysync' \
          'DynamicUser=yes' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' \
          'PrivateTmp=yes'; do
  grep -qxF "$kv" "$unit" || fail "unit lacks $kv"
done
if command -v systemd-analyze >/dev/null; then
  # verify with the unpacked binary standing in for /usr/bin/arraysync
  sed "s#/usr/bin/arraysync#$r/usr/bin/arraysync#" "$unit" >"$work/arraysync@x.service"
  mkdir -p "$work/etc" && touch "$work/etc/x.yaml"
  if ! msg=$(systemd-analyze verify --man=no "$work/arraysync@x.service" 2>&1); then
    grep -v "ConditionPathExists\|/etc/arraysync\|Failed to .* bus\|No such file" <<<"$msg" | grep -q . &&
      fail "systemd-analyze verify: $msg"
  fi
fi
# dependencies: exactly the runtime libraries
deps=$(dpkg-deb -f "$deb" Depends)
for p in libmongoc-1.0-0 libbson-1.0-0 libpq5 libsqlite3-0 libjansson4 libyaml-0-2 liblua5.4-0 libxxhash0 libmicrohttpd12; do
  grep -qw "$p" <<<"$deps" || fail "Depends lacks $p: $deps"
done
grep -q -- '-dev' <<<"$deps" && fail "Depends names a -dev package: $deps"
# every library the binary links directly (NEEDED) comes from a package it depends on
needed=$(readelf -d "$r/usr/bin/arraysync" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
for so in $needed; do
  path=$(ldd "$r/usr/bin/arraysync" | awk -v so="$so" '$1 == so {print $3}')
  [ -n "$path" ] || fail "$so: not found by the dynamic loader"
  pkg=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$(readlink -f "$path")" 2>/dev/null || true)
  pkg=$(head -n1 <<<"$pkg" | cut -d: -f1)
  case "$pkg" in libc6|libgcc-s1) continue ;; esac
  [ -n "$pkg" ] && grep -qw "$pkg" <<<"$deps" || fail "$so ($path, package '$pkg') is not in Depends: $deps"
done
size=$(du -k "$deb" | cut -f1)
echo "check_package: $(basename "$deb") ok (${size} KiB; Depends: $deps)"
