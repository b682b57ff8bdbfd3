/* test_pg_values.c — values as PostgreSQL COPY fields: pg_copy_value (written straight into the
 * COPY buffer) gives exactly what the text form does (pg_value_to_text, then COPY's escape,
 * "\N" for NULL), and the same errors, for random values of every type. */
#include <check.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_buf.h"
#include "as_value.h"
#include "postgres/pg_internal.h"

static uint64_t next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* Text of random length (mostly short, sometimes long enough for the 8-byte runs) drawn from
 * plain ASCII, the four bytes COPY escapes, multi-byte UTF-8 and, rarely, a NUL byte. */
static size_t random_text(uint64_t *seed, char *out, size_t cap) {
  size_t n = next(seed) % 8 == 0 ? 40 + next(seed) % 200 : next(seed) % 24;
  if (n > cap - 4) n = cap - 4;
  static const char *const pieces[] = {"a", "Z", "0", " ", "\\", "\n", "\r", "\t", "\xc3\xa9", "\xe2\x82\xac", "\"", "'"};
  size_t o = 0;
  bool nul = next(seed) % 16 == 0;
  while (o < n) {
    const char *p = pieces[next(seed) % (sizeof pieces / sizeof *pieces)];
    size_t l = strlen(p);
    if (next(seed) % 3) { /* mostly plain: long runs for the word loop */
      p = "abcdefgh";
      l = 1 + next(seed) % 8;
    }
    if (o + l > n) break;
    memcpy(out + o, p, l);
    o += l;
  }
  if (nul && o > 0) out[next(seed) % o] = '\0';
  out[o] = '\0';
  return o;
}

static void random_value(uint64_t *seed, as_value *v) {
  char t[300];
  uint8_t raw[16];
  for (int i = 0; i < 16; i++) raw[i] = (uint8_t)next(seed);
  switch (next(seed) % AS_T__COUNT) {
    case AS_T_NULL: *v = AS_VALUE_NULL; break;
    case AS_T_BOOL: as_value_set_bool(v, next(seed) & 1); break;
    case AS_T_INT64: {
      static const int64_t edge[] = {0, 1, -1, 9, 10, -10, INT64_MAX, INT64_MIN, INT64_MIN + 1};
      as_value_set_int64(v, next(seed) % 3 ? (int64_t)next(seed) >> (next(seed) % 64) : edge[next(seed) % 9]);
      break;
    }
    case AS_T_DOUBLE: {
      static const double edge[] = {0.0, -0.0, 1.5, -2.25, 1e300, 5e-324, 0.1, 123456789.125};
      uint64_t bits = next(seed);
      double d;
      memcpy(&d, &bits, 8);
      if (next(seed) % 2) d = edge[next(seed) % 8];
      if (next(seed) % 8 == 0) d = next(seed) % 2 ? NAN : -INFINITY;
      as_value_set_double(v, d);
      break;
    }
    case AS_T_DECIMAL: {
      static const char *const dec[] = {"0", "-12.50", "1e10", "NaN", "Infinity", "-0.000001", "123456789012345678901234567890"};
      const char *s = dec[next(seed) % 7];
      ck_assert_int_eq(as_value_set_str(v, AS_T_DECIMAL, s, strlen(s)), AS_OK);
      break;
    }
    case AS_T_TEXT:
    case AS_T_JSON: {
      size_t n = random_text(seed, t, sizeof t);
      ck_assert_int_eq(as_value_set_str(v, next(seed) % 2 ? AS_T_TEXT : AS_T_JSON, t, n), AS_OK);
      break;
    }
    case AS_T_BYTES: {
      size_t n = random_text(seed, t, sizeof t);
      ck_assert_int_eq(as_value_set_str(v, AS_T_BYTES, t, n), AS_OK);
      break;
    }
    case AS_T_UUID: as_value_set_uuid(v, raw); break;
    case AS_T_OBJECTID: as_value_set_oid(v, raw); break;
    case AS_T_TIMESTAMP: /* sometimes outside years 0001..9999: an error either way */
      as_value_set_timestamp(v, (int64_t)next(seed) >> (next(seed) % 2 ? 8 : 2));
      break;
    default: as_value_set_date(v, (int32_t)((int64_t)(next(seed) % 8000000) - 4000000)); break;
  }
}

/* COPY's text-format escape, written here independently of the adapter's: backslash,
 * newline, CR and tab become two-byte escapes, every other byte is itself. */
static void ref_escape(as_buf *b, const char *s) {
  for (; *s; s++) {
    const char *e = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" : *s == '\r' ? "\\r" : *s == '\t' ? "\\t" : NULL;
    ck_assert_int_eq(e ? as_buf_append(b, e, 2) : as_buf_append(b, s, 1), AS_OK);
  }
}

START_TEST(test_copy_value_property) {
  uint64_t seed = 20261206;
  int errors = 0, escaped = 0;
  int seen[AS_T__COUNT] = {0};
  for (int round = 0; round < 20000; round++) {
    as_value v = AS_VALUE_NULL;
    random_value(&seed, &v);
    seen[v.type]++;
    /* the reference: the text form, escaped */
    as_buf want = AS_BUF_INIT, got = AS_BUF_INIT;
    as_error ew = {0}, eg = {0};
    char *txt = NULL;
    int rw = pg_value_to_text(&v, &txt, &ew);
    if (rw == AS_OK) {
      if (txt) ref_escape(&want, txt);
      else ck_assert_int_eq(as_buf_append(&want, "\\N", 2), AS_OK);
    }
    free(txt);
    ck_assert_int_eq(as_buf_append(&got, "x\t", 2), AS_OK); /* appends after what is there */
    int rg = pg_copy_value(&got, &v, &eg);
    ck_assert_msg(rg == rw, "round %d type %s: %d vs %d", round, as_type_name(v.type), rg, rw);
    if (rw != AS_OK) {
      ck_assert_str_eq(eg.message, ew.message);
      errors++;
    } else {
      ck_assert_uint_eq(got.len, want.len + 2);
      ck_assert_msg(want.len == 0 || memcmp(got.data + 2, want.data, want.len) == 0, "round %d type %s: \"%.*s\" vs \"%.*s\"", round,
                    as_type_name(v.type), (int)got.len - 2, got.data + 2, (int)want.len, want.data);
      if (want.len && memchr(want.data, '\\', want.len)) escaped++;
    }
    as_buf_free(&want);
    as_buf_free(&got);
    as_value_clear(&v);
  }
  for (int t = 0; t < AS_T__COUNT; t++) ck_assert_msg(seen[t] > 500, "type %s seen %d times", as_type_name((as_type)t), seen[t]);
  ck_assert_int_gt(errors, 100);  /* NUL bytes, timestamps and dates out of range */
  ck_assert_int_gt(escaped, 1000);
}
END_TEST

int main(void) {
  Suite *s = suite_create("pg_values");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_copy_value_property);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
