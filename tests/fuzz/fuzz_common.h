/* fuzz_common.h — what every fuzz target (tests/fuzz/fuzz_*.c) shares.
 *
 * Each target defines LLVMFuzzerTestOneInput and is built two ways (tests/fuzz/CMakeLists.txt):
 * with clang's libFuzzer (-DARRAYSYNC_FUZZ=ON, scripts/fuzz.sh) for fuzzing, and with the
 * normal compiler plus fuzz_main.c, a main() that feeds files, so that every build replays the
 * regression inputs (tests/fuzz/regressions/<target>/) and the seed corpus in ctest.
 *
 * A property that does not hold is a finding: FUZZ_CHECK prints it and aborts, which libFuzzer
 * reports as a crash with the input saved. */
#ifndef AS_FUZZ_COMMON_H
#define AS_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_error.h"
#include "as_row.h"
#include "as_schema.h"

#define FUZZ_CHECK(cond, ...)                                                    \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: property failed: %s\n  ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                              \
      fprintf(stderr, "\n");                                                     \
      abort();                                                                   \
    }                                                                            \
  } while (0)

/* An error return carries a message: rc < 0 implies a non-empty err->message. */
#define FUZZ_CHECK_ERR(rc, err) \
  FUZZ_CHECK((rc) >= 0 || (err)->message[0] != '\0', "rc %d without a message", (int)(rc))

/* Loads a mapping from YAML text; aborts if it does not load (the targets' fixed mappings). */
as_schema *fuzz_schema(const char *yaml);

/* Two rows hold the same columns with as_value_equal values. On a difference, *col is the
 * first differing column. */
bool fuzz_rows_equal(const as_row *a, const as_row *b, size_t *col);

/* A row that converted has a JSON form (as_delta_to_json: dead letters, relays, repairs). */
void fuzz_check_row_json(const as_schema *s, const as_row *r);

/* A NUL-terminated heap copy of the input (caller frees). */
char *fuzz_cstr(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
