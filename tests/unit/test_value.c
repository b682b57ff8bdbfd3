/* test_value.c — typed values: lifetime, equality/order, text forms, calendar, helpers. */
#include <check.h>

#include "as_test_util.h"
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_buf.h"
#include "as_error.h"
#include "as_value.h"

static as_value from_text(as_type t, const char *s) {
  as_value v = AS_VALUE_NULL;
  as_error err;
  int rc = as_value_from_text(t, s, strlen(s), &v, &err);
  ck_assert_msg(rc == AS_OK, "from_text(%s, %s): %s", as_type_name(t), s, err.message);
  return v;
}

static void expect_text(const as_value *v, const char *want) {
  char *s = NULL;
  as_error err;
  ck_assert_msg(as_value_to_text(v, &s, &err) == AS_OK, "%s", err.message);
  ck_assert_str_eq(s, want);
  free(s);
}

/* text -> value -> text gives `canon`, and canon -> value is equal. */
static void roundtrip(as_type t, const char *in, const char *canon) {
  as_value v = from_text(t, in);
  expect_text(&v, canon);
  as_value w = from_text(t, canon);
  ck_assert(as_value_equal(&v, &w));
  ck_assert_int_eq(as_value_compare(&v, &w), 0);
  as_value_clear(&v);
  as_value_clear(&w);
}

static void expect_bad(as_type t, const char *in, const char *msg_part) {
  as_value v = AS_VALUE_NULL;
  as_error err;
  as_error_clear(&err);
  ck_assert_int_eq(as_value_from_text(t, in, strlen(in), &v, &err), AS_EINVAL);
  ck_assert_msg(strstr(err.message, msg_part) != NULL, "message \"%s\" lacks \"%s\"", err.message, msg_part);
  ck_assert_int_eq(v.type, AS_T_NULL);
}

/* Error messages are UTF-8 text whatever the data they quote: a byte outside a valid sequence
 * is written \xNN, a sequence cut by the size limit is dropped, valid text is left alone. */
START_TEST(test_error_utf8) {
  as_error e;
  as_error_set(&e, 1, 2, "field \"%s\" and \"%s\"", "f\xff", "caf\xc3\xa9 \xed\xa0\x80");
  ck_assert_str_eq(e.message, "field \"f\\xFF\" and \"caf\xc3\xa9 \\xED\\xA0\\x80\"");
  ck_assert(as_utf8_valid(e.message, strlen(e.message)));
  char big[AS_ERROR_MSG_MAX + 8];
  memset(big, 'a', sizeof big);
  memcpy(big + AS_ERROR_MSG_MAX - 3, "\xe2\x82\xac", 3); /* the limit cuts this euro sign */
  big[sizeof big - 1] = '\0';
  as_error_set(&e, 1, 2, "%s", big);
  ck_assert(as_utf8_valid(e.message, strlen(e.message)));
  ck_assert_uint_eq(strlen(e.message), AS_ERROR_MSG_MAX - 3);
  as_error_prefix(&e, "node \xc0x");
  ck_assert(as_utf8_valid(e.message, strlen(e.message)));
  ck_assert(strncmp(e.message, "node \\xC0x: aaa", 15) == 0);
}
END_TEST

START_TEST(test_lifetime) {
  as_value a = AS_VALUE_NULL, b = AS_VALUE_NULL, c = AS_VALUE_NULL;
  ck_assert_int_eq(as_value_set_str(&a, AS_T_TEXT, "h\0llo", 5), AS_OK);
  ck_assert_int_eq(a.u.s.len, 5);
  ck_assert_int_eq(a.u.s.ptr[5], '\0');
  ck_assert_int_eq(as_value_copy(&b, &a), AS_OK);
  ck_assert(b.u.s.ptr != a.u.s.ptr);
  ck_assert(as_value_equal(&a, &b));
  as_value_move(&c, &a);
  ck_assert_int_eq(a.type, AS_T_NULL);
  ck_assert(as_value_equal(&b, &c));
  ck_assert_int_eq(as_value_set_str(&c, AS_T_INT64, "1", 1), AS_ERR);
  as_value_set_int64(&c, 7); /* frees the text */
  ck_assert_int_eq(c.type, AS_T_INT64);
  as_value_clear(&b);
  as_value_clear(&b);
  as_value_clear(NULL);
  as_value_clear(&c);
}
END_TEST

START_TEST(test_equal_compare) {
  as_value a = AS_VALUE_NULL, b = AS_VALUE_NULL;
  /* decimals compare by numeric value */
  as_value_set_str(&a, AS_T_DECIMAL, "1.50", 4);
  as_value_set_str(&b, AS_T_DECIMAL, "1.5", 3);
  ck_assert(as_value_equal(&a, &b));
  static const char *const order[] = {"-Infinity", "-100", "-2.5", "-0.001", "0", "0.25", "0.5", "2", "10", "10.01", "1e3", "Infinity", "NaN"};
  size_t n = sizeof order / sizeof order[0];
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < n; j++) {
      as_value_set_str(&a, AS_T_DECIMAL, order[i], strlen(order[i]));
      as_value_set_str(&b, AS_T_DECIMAL, order[j], strlen(order[j]));
      int c = as_value_compare(&a, &b);
      int want = i < j ? -1 : i > j;
      ck_assert_msg(c == want, "compare(%s,%s)=%d", order[i], order[j], c);
    }
  }
  as_value_set_str(&a, AS_T_DECIMAL, "-0", 2);
  as_value_set_str(&b, AS_T_DECIMAL, "0.000", 5);
  ck_assert(as_value_equal(&a, &b));
  /* doubles: -0.0 == 0.0, NaN == NaN, NaN sorts last */
  as_value_set_double(&a, -0.0);
  as_value_set_double(&b, 0.0);
  ck_assert(as_value_equal(&a, &b));
  as_value_set_double(&a, NAN);
  ck_assert(!as_value_equal(&a, &b));
  ck_assert_int_eq(as_value_compare(&a, &b), 1);
  as_value_set_double(&b, -NAN);
  ck_assert(as_value_equal(&a, &b));
  /* type first */
  as_value_set_int64(&a, 100);
  as_value_set_double(&b, 1);
  ck_assert(!as_value_equal(&a, &b));
  ck_assert_int_lt(as_value_compare(&a, &b), 0);
  /* json: canonical equality (key order), otherwise different */
  as_value_set_str(&a, AS_T_JSON, "{\"b\":1,\"a\":[1.0,\"x\"]}", strlen("{\"b\":1,\"a\":[1.0,\"x\"]}"));
  as_value_set_str(&b, AS_T_JSON, "{ \"a\" : [1.0, \"x\"], \"b\" : 1 }", strlen("{ \"a\" : [1.0, \"x\"], \"b\" : 1 }"));
  ck_assert(as_value_equal(&a, &b));
  ck_assert_int_eq(as_value_compare(&a, &b), 0);
  as_value_set_str(&b, AS_T_JSON, "{\"a\":[1,\"x\"],\"b\":1}", strlen("{\"a\":[1,\"x\"],\"b\":1}"));
  ck_assert(!as_value_equal(&a, &b));
  /* int64 extremes */
  as_value_set_int64(&a, INT64_MIN);
  as_value_set_int64(&b, INT64_MAX);
  ck_assert_int_eq(as_value_compare(&a, &b), -1);
  ck_assert_int_eq(as_value_compare(&b, &a), 1);
  /* text bytewise, prefix first */
  as_value_set_str(&a, AS_T_TEXT, "ab", 2);
  as_value_set_str(&b, AS_T_TEXT, "abc", 3);
  ck_assert_int_eq(as_value_compare(&a, &b), -1);
  as_value_clear(&a);
  as_value_clear(&b);
}
END_TEST

START_TEST(test_text_forms) {
  roundtrip(AS_T_BOOL, "t", "true");
  roundtrip(AS_T_BOOL, "FALSE", "false");
  roundtrip(AS_T_BOOL, "1", "true");
  roundtrip(AS_T_BOOL, "0", "false");
  roundtrip(AS_T_INT64, "-9223372036854775808", "-9223372036854775808");
  roundtrip(AS_T_INT64, "9223372036854775807", "9223372036854775807");
  roundtrip(AS_T_INT64, "+42", "42");
  roundtrip(AS_T_DOUBLE, "0.1", "0.1");
  roundtrip(AS_T_DOUBLE, "1e300", "1e+300");
  roundtrip(AS_T_DOUBLE, "-0", "-0");
  roundtrip(AS_T_DOUBLE, "1.0", "1");
  roundtrip(AS_T_DOUBLE, "123.456", "123.456");
  roundtrip(AS_T_DOUBLE, "NaN", "NaN");
  roundtrip(AS_T_DOUBLE, "-Infinity", "-Infinity");
  roundtrip(AS_T_DOUBLE, "0.00001", "1e-05");
  roundtrip(AS_T_DECIMAL, "-12.50", "-12.50");
  roundtrip(AS_T_DECIMAL, "1.5E+10", "1.5E+10");
  roundtrip(AS_T_TEXT, "héllo wörld", "héllo wörld");
  roundtrip(AS_T_BYTES, "\\x00FF10", "00ff10");
  roundtrip(AS_T_BYTES, "", "");
  roundtrip(AS_T_UUID, "{0123ABCD-4567-89ab-cdef-0123456789AB}", "0123abcd-4567-89ab-cdef-0123456789ab");
  roundtrip(AS_T_UUID, "0123abcd456789abcdef0123456789ab", "0123abcd-4567-89ab-cdef-0123456789ab");
  roundtrip(AS_T_OBJECTID, "65A1B2C3D4E5F60718293A4B", "65a1b2c3d4e5f60718293a4b");
  roundtrip(AS_T_DATE, "2024-02-29", "2024-02-29");
  roundtrip(AS_T_DATE, "0001-01-01", "0001-01-01");
  roundtrip(AS_T_DATE, "9999-12-31", "9999-12-31");
  roundtrip(AS_T_JSON, "{\"b\": [1, 2.50]}", "{\"b\": [1, 2.50]}");
  /* timestamps: offsets, separators, fractions, pre-1970 */
  roundtrip(AS_T_TIMESTAMP, "2024-03-01 12:00:00+05:30", "2024-03-01T06:30:00.000000Z");
  roundtrip(AS_T_TIMESTAMP, "2024-03-01T12:00:00.5-08", "2024-03-01T20:00:00.500000Z");
  roundtrip(AS_T_TIMESTAMP, "2024-03-01 12:00:00.123456000+00", "2024-03-01T12:00:00.123456Z");
  roundtrip(AS_T_TIMESTAMP, "1969-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.999999Z");
  roundtrip(AS_T_TIMESTAMP, "2024-03-01", "2024-03-01T00:00:00.000000Z");
  roundtrip(AS_T_TIMESTAMP, "0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z");
  roundtrip(AS_T_TIMESTAMP, "9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z");
  as_value v = from_text(AS_T_TIMESTAMP, "1969-12-31T23:59:59.999999Z");
  ck_assert_int_eq(v.u.ts_us, -1);
  v = from_text(AS_T_TIMESTAMP, "1970-01-01T01:00:00+0100");
  ck_assert_int_eq(v.u.ts_us, 0);
  v = from_text(AS_T_DATE, "1969-12-31");
  ck_assert_int_eq(v.u.days, -1);
}
END_TEST

START_TEST(test_text_errors) {
  expect_bad(AS_T_INT64, "9223372036854775808", "out of int64 range");
  expect_bad(AS_T_INT64, "12a", "invalid int64 text \"12a\"");
  expect_bad(AS_T_INT64, "", "invalid int64");
  expect_bad(AS_T_INT64, " 1", "invalid int64");
  expect_bad(AS_T_DOUBLE, "1.5x", "invalid double");
  expect_bad(AS_T_BOOL, "maybe", "invalid bool text \"maybe\"");
  expect_bad(AS_T_DECIMAL, "1.2.3", "invalid decimal");
  expect_bad(AS_T_DECIMAL, "abc", "invalid decimal");
  expect_bad(AS_T_DECIMAL, "1e", "invalid decimal");
  expect_bad(AS_T_BYTES, "abc", "invalid bytes");
  expect_bad(AS_T_BYTES, "zz", "invalid bytes");
  expect_bad(AS_T_UUID, "0123abcd-4567-89ab-cdef-0123456789a", "invalid uuid");
  expect_bad(AS_T_OBJECTID, "65a1b2c3d4e5f60718293a4", "invalid objectid");
  expect_bad(AS_T_DATE, "2023-02-29", "invalid date");
  expect_bad(AS_T_DATE, "10000-01-01", "invalid date");
  expect_bad(AS_T_DATE, "0000-12-31", "invalid date");
  expect_bad(AS_T_TIMESTAMP, "2024-01-01T24:00:00Z", "time of day out of range");
  expect_bad(AS_T_TIMESTAMP, "0001-01-01T00:00:00+01:00", "outside years 0001..9999");
  expect_bad(AS_T_TIMESTAMP, "9999-12-31T23:59:59-01:00", "outside years 0001..9999");
  expect_bad(AS_T_TIMESTAMP, "2024-01-01T00:00:00.0000001Z", "more than microsecond precision");
  expect_bad(AS_T_TIMESTAMP, "2024-03-01 12:00:00.123456789+00", "more than microsecond precision");
  expect_bad(AS_T_TIMESTAMP, "2024-01-01T00:00:00Q", "invalid timestamp");
  expect_bad(AS_T_JSON, "{\"a\":", "invalid json");

  /* values outside the text range */
  as_value v = AS_VALUE_NULL;
  char *s = NULL;
  as_error err;
  as_value_set_timestamp(&v, AS_TS_MAX_US + 1);
  ck_assert_int_eq(as_value_to_text(&v, &s, &err), AS_EINVAL);
  ck_assert_ptr_null(s);
  ck_assert_ptr_nonnull(strstr(err.message, "outside years 0001..9999"));
  as_value_set_timestamp(&v, AS_TS_MIN_US - 1);
  ck_assert_int_eq(as_value_to_text(&v, &s, &err), AS_EINVAL);
  as_value_set_date(&v, AS_DATE_MAX_DAYS + 1);
  ck_assert_int_eq(as_value_to_text(&v, &s, &err), AS_EINVAL);
  as_value_set_null(&v);
  ck_assert_int_eq(as_value_to_text(&v, &s, &err), AS_EINVAL);
}
END_TEST

START_TEST(test_civil) {
  ck_assert_int_eq(as_days_from_civil(1970, 1, 1), 0);
  ck_assert_int_eq(as_days_from_civil(2000, 3, 1), 11017);
  ck_assert_int_eq(as_days_from_civil(1, 1, 1), AS_DATE_MIN_DAYS);
  ck_assert_int_eq(as_days_from_civil(9999, 12, 31), AS_DATE_MAX_DAYS);
  ck_assert_int_eq(as_days_from_civil(1969, 12, 31), -1);
  /* every day near the ends and around the epoch, a stride through the rest */
  static const int64_t ranges[][3] = {{AS_DATE_MIN_DAYS - 1, AS_DATE_MIN_DAYS + 1500, 1},
                                      {-1500, 1500, 1},
                                      {AS_DATE_MAX_DAYS - 1500, AS_DATE_MAX_DAYS + 400, 1},
                                      {AS_DATE_MIN_DAYS, AS_DATE_MAX_DAYS, 97}};
  for (size_t r = 0; r < 4; r++) {
    int64_t prev_y = 0;
    unsigned prev_m = 0, prev_d = 0;
    for (int64_t z = ranges[r][0]; z <= ranges[r][1]; z += ranges[r][2]) {
      int64_t y;
      unsigned m, d;
      as_civil_from_days(z, &y, &m, &d);
      if (as_days_from_civil(y, m, d) != z) ck_abort_msg("day %lld", (long long)z);
      if (ranges[r][2] == 1 && z > ranges[r][0]) {
        bool next = (y == prev_y && m == prev_m && d == prev_d + 1) ||
                    (y == prev_y && m == prev_m + 1 && d == 1) || (y == prev_y + 1 && m == 1 && d == 1);
        if (!next) ck_abort_msg("day %lld not after the previous one", (long long)z);
      }
      prev_y = y;
      prev_m = m;
      prev_d = d;
    }
  }
}
END_TEST

/* The slow path before it was made from one conversion: the shortest of %.15g, %.16g, %.17g
 * that reads back as d (each tried in turn). as_double_format must write exactly this. */
static void reference_format(double d, char out[32]) {
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(out, 32, "%.*g", prec, d);
    if (prec == 17 || strtod(out, NULL) == d) break;
  }
}

static void same_as_reference(double d) {
  char got[32], want[32];
  size_t n = as_double_format(d, got);
  ck_assert_uint_eq(n, strlen(got));
  ck_assert_msg(strtod(got, NULL) == d, "%s does not read back as %.17g", got, d);
  if (d == 0 || !isfinite(d)) return;
  /* numbers with at most 8 fraction digits below 2^53 take as_double_format's fast path
   * (fixed notation: "1000000000000000", not "1e+15"), which the change left alone */
  static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
  for (int k = 0; fabs(d) < 9007199254740992.0 && fabs(d) >= 1e-4 && k <= 8; k++) {
    if (fabs(d * p10[k]) >= 9007199254740992.0) break;
    if (nearbyint(d * p10[k]) / p10[k] == d) return;
  }
  reference_format(d, want);
  ck_assert_msg(strcmp(got, want) == 0, "%.17g: %s, want %s", d, got, want);
}

/* The next of a xorshift64 sequence (the random values of the property tests). */
static void xorshift(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
}

/* Timestamps and dates are written digit by digit: the same text as printf's, over the whole
 * range (years 0001..9999, before and after 1970, day boundaries). */
static void same_timestamp_text(int64_t us) {
  as_value v = AS_VALUE_NULL;
  as_value_set_timestamp(&v, us);
  char *got = NULL, want[64];
  as_error err;
  ck_assert_int_eq(as_value_to_text(&v, &got, &err), AS_OK);
  int64_t days = us >= 0 ? us / 86400000000LL : -((-us + 86400000000LL - 1) / 86400000000LL);
  int64_t rem = us - days * 86400000000LL, y;
  unsigned m, d;
  as_civil_from_days(days, &y, &m, &d);
  int64_t secs = rem / 1000000;
  snprintf(want, sizeof want, "%04d-%02u-%02uT%02d:%02d:%02d.%06dZ", (int)y, m, d,
           (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60), (int)(rem % 1000000));
  ck_assert_str_eq(got, want);
  free(got);
  as_value_set_date(&v, (int32_t)days);
  ck_assert_int_eq(as_value_to_text(&v, &got, &err), AS_OK);
  want[10] = '\0';
  ck_assert_str_eq(got, want);
  free(got);
}

START_TEST(test_timestamp_text) {
  static const int64_t edge[] = {AS_TS_MIN_US, AS_TS_MAX_US, 0, -1, 1, 86399999999LL,
                                 86400000000LL, -86400000000LL, -86400000001LL, 951782400000000LL};
  for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) same_timestamp_text(edge[i]);
  uint64_t x = 0x2545F4914F6CDD1DULL;
  uint64_t span = (uint64_t)(AS_TS_MAX_US - AS_TS_MIN_US);
  for (int i = 0; i < 20000; i++) {
    xorshift(&x);
    same_timestamp_text(AS_TS_MIN_US + (int64_t)(x % span));
  }
}
END_TEST

/* Integers are written digit by digit: the same text as printf's. */
START_TEST(test_int_text) {
  static const int64_t edge[] = {INT64_MIN, INT64_MIN + 1, -10, -9, -1, 0, 1, 9, 10, INT64_MAX};
  uint64_t x = 0xD1B54A32D192ED03ULL;
  for (int i = 0; i < 2000; i++) {
    xorshift(&x);
    int64_t iv = i < 10 ? edge[i] : (int64_t)(x >> (i % 64));
    as_value v = AS_VALUE_NULL;
    as_value_set_int64(&v, i < 10 || i % 2 ? iv : -(iv / 3));
    char *got = NULL, want[32];
    as_error err;
    ck_assert_int_eq(as_value_to_text(&v, &got, &err), AS_OK);
    snprintf(want, sizeof want, "%" PRId64, v.u.i);
    ck_assert_str_eq(got, want);
    free(got);
  }
}
END_TEST

START_TEST(test_double_format_exact) {
  /* every 15-, 16- and 17-digit case, rounding carries (9.99..), exponent edges, halfway
   * digits, subnormals and random bit patterns: the same text as the reference (both the
   * exact integer path for 1e-4 <= |d| < 2^53 and the printf-based one for the rest) */
  static const double edge[] = {9.9999999999999995e-5, 1e-4, 9.999999999999999e14, 1e15, 1e16,
                                1e17, 9.9999999999999991e22, 0.30000000000000004, 1e-5, 1e-320,
                                4.9406564584124654e-324, 2.2250738585072014e-308,
                                1.7976931348623157e308, 123456789012345680.0, 0.1 + 0.7,
                                1.0000000000000002, 0.99999999999999989, 5e-5, 9.5, 1e100};
  for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
    same_as_reference(edge[i]);
    same_as_reference(-edge[i]);
    same_as_reference(nextafter(edge[i], 0));
    same_as_reference(nextafter(edge[i], INFINITY));
  }
  uint64_t x = 0x9E3779B97F4A7C15ULL;
  for (int i = 0; i < 20000; i++) {
    xorshift(&x);
    double d;
    memcpy(&d, &x, 8);
    if (isfinite(d)) same_as_reference(d);
    same_as_reference((double)(x >> 11) / 9007199254740992.0 * 1000.0); /* [0, 1000) */
    same_as_reference((double)(int64_t)(x % 1000000007) / 997.0);
    char dec[40]; /* decimals of 15 to 17 digits, halfway digits included */
    snprintf(dec, sizeof dec, "%d.%014llu%de%d", (int)(x % 9) + 1,
             (unsigned long long)((x >> 8) % 100000000000000ULL), (int)((x >> 3) % 10),
             (int)((x >> 50) % 60) - 30);
    same_as_reference(strtod(dec, NULL));
    /* around powers of two (the ulp halves below them) and of ten, 2^-14 .. 2^52 */
    double p2 = ldexp(1.0, (int)((x >> 20) % 67) - 14), p10 = pow(10, (int)((x >> 30) % 21) - 4);
    same_as_reference(nextafter(p2, 0));
    same_as_reference(nextafter(p2, INFINITY));
    same_as_reference(nextafter(p10, 0));
    same_as_reference(nextafter(p10, INFINITY));
  }
}
END_TEST

START_TEST(test_double_format) {
  static const double fixed[] = {0.1, 0.2, 0.3, 1.0 / 3, 2.0 / 3, 1e-5, 123456.789, 9007199254740993.0,
                                 1e21, 1e22, 5e-324, 1.7976931348623157e308, -2.5e-300, 100, 1e15, 0.001};
  char buf[32];
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
    as_double_format(fixed[i], buf);
    ck_assert_msg(strtod(buf, NULL) == fixed[i], "%s", buf);
  }
  as_double_format(0.1, buf);
  ck_assert_str_eq(buf, "0.1");
  as_double_format(-12.25, buf);
  ck_assert_str_eq(buf, "-12.25");
  as_double_format(1e300, buf);
  ck_assert_str_eq(buf, "1e+300");
  /* random bit patterns round-trip */
  uint64_t x = 88172645463325252ULL;
  for (int i = 0; i < 20000; i++) {
    xorshift(&x);
    double d;
    memcpy(&d, &x, 8);
    if (!isfinite(d)) continue;
    size_t n = as_double_format(d, buf);
    ck_assert_uint_lt(n, 32);
    ck_assert_msg(strtod(buf, NULL) == d, "%s", buf);
    /* and scaled "human" numbers */
    double h = (double)(int64_t)(x % 100000000) / 1000.0;
    as_double_format(h, buf);
    ck_assert_msg(strtod(buf, NULL) == h, "%s", buf);
  }
}
END_TEST

static void norm(const char *in, const char *want) {
  as_buf b = AS_BUF_INIT;
  ck_assert_int_eq(as_decimal_normalize(in, strlen(in), &b), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b), want);
  as_buf_free(&b);
}

START_TEST(test_decimal_normalize) {
  norm("1.50", "1.5");
  norm("+001.500", "1.5");
  norm("-0", "0");
  norm("-0.000", "0");
  norm("0.0012300", "0.00123");
  norm("15E-1", "1.5");
  norm("1.5E+3", "1500");
  norm("1E-3", "0.001");
  norm("120", "120");
  norm(".5", "0.5");
  norm("5.", "5");
  norm("NaN", "NaN");
  norm("-Infinity", "-Infinity");
  norm("123456789012345678901234567890.1234567890", "123456789012345678901234567890.123456789");
  as_buf b = AS_BUF_INIT;
  ck_assert_int_eq(as_decimal_normalize("1e", 2, &b), AS_EINVAL);
  ck_assert_int_eq(as_decimal_normalize(".", 1, &b), AS_EINVAL);
  ck_assert_int_eq(as_decimal_normalize("1 ", 2, &b), AS_EINVAL);
  as_buf_free(&b);
}
END_TEST

START_TEST(test_base64) {
  static const char *const vec[][2] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                       {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
                                       {"foobar", "Zm9vYmFy"}};
  for (size_t i = 0; i < 7; i++) {
    as_buf b = AS_BUF_INIT;
    ck_assert_int_eq(as_base64_encode((const uint8_t *)vec[i][0], strlen(vec[i][0]), &b), AS_OK);
    ck_assert_str_eq(as_buf_cstr(&b), vec[i][1]);
    as_buf_reset(&b);
    ck_assert_int_eq(as_base64_decode(vec[i][1], strlen(vec[i][1]), &b), AS_OK);
    ck_assert_uint_eq(b.len, strlen(vec[i][0]));
    ck_assert(b.len == 0 || memcmp(b.data, vec[i][0], b.len) == 0);
    as_buf_free(&b);
  }
  uint8_t all[256];
  for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
  as_buf e = AS_BUF_INIT, d = AS_BUF_INIT;
  as_base64_encode(all, 256, &e);
  ck_assert_int_eq(as_base64_decode((const char *)e.data, e.len, &d), AS_OK);
  ck_assert_uint_eq(d.len, 256);
  ck_assert(memcmp(d.data, all, 256) == 0);
  as_buf_reset(&d);
  ck_assert_int_eq(as_base64_decode("Zm9", 3, &d), AS_EINVAL);
  ck_assert_int_eq(as_base64_decode("Z=9v", 4, &d), AS_EINVAL);
  ck_assert_int_eq(as_base64_decode("Zm9v\n", 5, &d), AS_EINVAL);
  ck_assert_int_eq(as_base64_decode("Zm=v", 4, &d), AS_EINVAL);
  as_buf_free(&e);
  as_buf_free(&d);
}
END_TEST

int main(void) {
  Suite *s = suite_create("value");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_lifetime);
  tcase_add_test(tc, test_error_utf8);
  tcase_add_test(tc, test_equal_compare);
  tcase_add_test(tc, test_text_forms);
  tcase_add_test(tc, test_text_errors);
  tcase_add_test(tc, test_civil);
  tcase_add_test(tc, test_double_format);
  tcase_add_test(tc, test_double_format_exact);
  tcase_add_test(tc, test_timestamp_text);
  tcase_add_test(tc, test_int_text);
  tcase_add_test(tc, test_decimal_normalize);
  tcase_add_test(tc, test_base64);
  suite_add_tcase(s, tc);
  return as_test_run(s);
}
