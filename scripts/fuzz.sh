#!/usr/bin/env bash
# The fuzz targets of tests/fuzz/ (libFuzzer, clang, ASan + UBSan + LeakSanitizer).
#   scripts/fuzz.sh build               builds them into build-fuzz/ (BUILD_DIR overrides)
#   scripts/fuzz.sh TARGET [SECONDS]    fuzzes TARGET (fuzz_yaml, fuzz_json, fuzz_bson,
#                                       fuzz_value, fuzz_changelog, fuzz_pgoutput) for SECONDS (default 600;
#                                       FUZZ_RUNS=N stops after N executions instead)
#   scripts/fuzz.sh ci [RUNS]           every target for RUNS executions (default 10000), in turn
#   scripts/fuzz.sh coverage [DIR]      line coverage of mappings/ and the adapters' decoders
#                                       reached by the corpora (clang source-based coverage)
# The working corpus of a target grows in BUILD_DIR/corpus/TARGET (seeded from
# tests/fuzz/corpus/TARGET); a crash is written to BUILD_DIR/crashes/TARGET/: minimise it
# (-minimize_crash=1), fix the bug, and add the input to tests/fuzz/regressions/TARGET/, which
# ctest replays in every build (tests/fuzz/README.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-fuzz}
targets=(fuzz_yaml fuzz_json fuzz_bson fuzz_value fuzz_changelog fuzz_pgoutput)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# fuzz_yaml writes each input to a file (as_config_load takes a path): keep that off the disk
if [ -z "${TMPDIR:-}" ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi

build_targets() { # DIR CMAKE_ARGS...
  local dir=$1
  shift
  # the clang build: not -Werror (the warning set is GCC's; the normal build enforces it)
  CC=clang cmake -S "$root" -B "$dir" -DCMAKE_C_COMPILER=clang -DARRAYSYNC_WERROR=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)" --target "${targets[@]}" |
    grep -vE '^\[ *[0-9]+%\] (Building|Linking|Built)' || true
  test "${PIPESTATUS[0]}" -eq 0
}

fuzz_args() { # TARGET [WORKING_CORPUS_DIR]
  local t=$1 work=${2:-$build/corpus/$1}
  mkdir -p "$work" "$build/crashes/$t"
  echo -dict="$root/tests/fuzz/dict/$t.dict" -max_len=4096 -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build/crashes/$t/" "$work" \
    "$root/tests/fuzz/corpus/$t" "$root/tests/fuzz/regressions/$t"
}

cmd=${1:-}
case "$cmd" in
  build) build_targets "$build" -DARRAYSYNC_FUZZ=ON ;;
  ci)
    runs=${2:-10000}
    build_targets "$build" -DARRAYSYNC_FUZZ=ON
    status=0
    for t in "${targets[@]}"; do
      mkdir -p "$root/tests/fuzz/regressions/$t"
      # a fresh working corpus each time (not the one long runs grow): the run is bounded and
      # reproducible from the seeds
      rm -rf "$build/ci-corpus/$t"
      echo "== $t: $runs executions =="
      # shellcheck disable=SC2046
      "$build/tests/fuzz/$t" $(fuzz_args "$t" "$build/ci-corpus/$t") -runs="$runs" -seed=1 \
        2>"$build/$t.log" ||
        { status=1; tail -40 "$build/$t.log"; }
      grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "$build/$t.log" || true
    done
    exit $status
    ;;
  coverage)
    cov=${2:-$root/build-cov}
    build_targets "$cov" -DARRAYSYNC_COVERAGE=ON
    rm -f "$cov"/*.profraw
    for t in "${targets[@]}"; do
      dirs=()
      for d in "$build/corpus/$t" "$root/tests/fuzz/corpus/$t" "$root/tests/fuzz/regressions/$t"; do
        [ -d "$d" ] && dirs+=("$d")
      done
      LLVM_PROFILE_FILE="$cov/$t.profraw" "$cov/tests/fuzz/$t" "${dirs[@]}" >/dev/null 2>&1 || true
    done
    llvm-profdata-14 merge -sparse "$cov"/*.profraw -o "$cov/fuzz.profdata"
    objs=()
    for t in "${targets[@]}"; do objs+=(-object "$cov/tests/fuzz/$t"); done
    llvm-cov-14 report "${objs[@]:1}" -instr-profile="$cov/fuzz.profdata" \
      "$root/mappings" "$root/adapters/sqlite/sqlite_values.c" "$root/adapters/adapter.c" \
      "$root/adapters/postgres/pg_apply.c" "$root/adapters/sqlite/sqlite_adapter.c" \
      "$root/connector/as_config.c" | tee "$cov/report.txt"
    ;;
  fuzz_*)
    t=$cmd
    secs=${2:-600}
    [ -x "$build/tests/fuzz/$t" ] || build_targets "$build" -DARRAYSYNC_FUZZ=ON
    # long runs: no allocation stacks and a small quarantine (twice the executions per second;
    # leaks and memory errors are still caught; replay a crash with the defaults for its stacks)
    [ -n "${FUZZ_FULL_STACKS:-}" ] ||
      export ASAN_OPTIONS="$ASAN_OPTIONS:malloc_context_size=0:quarantine_size_mb=16"
    limit=(-max_total_time="$secs")
    [ -n "${FUZZ_RUNS:-}" ] && limit=(-runs="$FUZZ_RUNS")
    # shellcheck disable=SC2046
    exec "$build/tests/fuzz/$t" $(fuzz_args "$t") "${limit[@]}" ${FUZZ_ARGS:-}
    ;;
  *)
    sed -n '2,13p' "$0"
    exit 2
    ;;
esac
