/* as_value.c — typed values: lifetime, equality and order, text forms, calendar helpers. */
#include "as_value.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "as_buf.h"
#include "as_hash.h"
#include "as_utf8.h"

/* ---------------------------------------------------------------- lifetime */

static bool is_str_type(as_type t) {
  return t == AS_T_TEXT || t == AS_T_DECIMAL || t == AS_T_JSON || t == AS_T_BYTES;
}

void as_value_clear(as_value *v) {
  if (!v) return;
  if (is_str_type(v->type)) free(v->u.s.ptr);
  memset(v, 0, sizeof *v);
  v->type = AS_T_NULL;
}

int as_value_copy(as_value *dst, const as_value *src) {
  *dst = *src;
  if (is_str_type(src->type)) {
    dst->u.s.ptr = malloc(src->u.s.len + 1);
    if (!dst->u.s.ptr) {
      *dst = AS_VALUE_NULL;
      return AS_ERR;
    }
    if (src->u.s.len) memcpy(dst->u.s.ptr, src->u.s.ptr, src->u.s.len);
    dst->u.s.ptr[src->u.s.len] = '\0';
  }
  return AS_OK;
}

void as_value_move(as_value *dst, as_value *src) {
  as_value_clear(dst);
  *dst = *src;
  memset(src, 0, sizeof *src);
  src->type = AS_T_NULL;
}

void as_value_set_null(as_value *v) { as_value_clear(v); }
void as_value_set_bool(as_value *v, bool b) {
  as_value_clear(v);
  v->type = AS_T_BOOL;
  v->u.b = b;
}
void as_value_set_int64(as_value *v, int64_t i) {
  as_value_clear(v);
  v->type = AS_T_INT64;
  v->u.i = i;
}
void as_value_set_double(as_value *v, double d) {
  as_value_clear(v);
  v->type = AS_T_DOUBLE;
  v->u.d = d;
}
void as_value_set_timestamp(as_value *v, int64_t us) {
  as_value_clear(v);
  v->type = AS_T_TIMESTAMP;
  v->u.ts_us = us;
}
void as_value_set_date(as_value *v, int32_t days) {
  as_value_clear(v);
  v->type = AS_T_DATE;
  v->u.days = days;
}
void as_value_set_uuid(as_value *v, const uint8_t u[16]) {
  as_value_clear(v);
  v->type = AS_T_UUID;
  memcpy(v->u.uuid, u, 16);
}
void as_value_set_oid(as_value *v, const uint8_t o[12]) {
  as_value_clear(v);
  v->type = AS_T_OBJECTID;
  memcpy(v->u.oid, o, 12);
}

int as_value_set_str(as_value *v, as_type type, const char *s, size_t len) {
  if (!is_str_type(type)) return AS_ERR;
  char *p = malloc(len + 1);
  if (!p) return AS_ERR;
  if (len) memcpy(p, s, len);
  p[len] = '\0';
  as_value_clear(v);
  v->type = type;
  v->u.s.ptr = p;
  v->u.s.len = len;
  return AS_OK;
}

/* ---------------------------------------------------------------- decimals */

typedef struct dec_parts {
  int neg;
  int special;            /* 0 number, 1 NaN, 2 Infinity */
  const char *ip, *fp;    /* integer and fraction digits */
  size_t ni, nf;
  long long exp;
} dec_parts;

static bool dec_parse(const char *s, size_t len, dec_parts *p) {
  memset(p, 0, sizeof *p);
  size_t i = 0;
  if (i < len && (s[i] == '+' || s[i] == '-')) p->neg = s[i++] == '-';
  const char *rest = s + i;
  size_t nrest = len - i;
  if ((nrest == 3 && strncasecmp(rest, "nan", 3) == 0)) {
    p->special = 1;
    return true;
  }
  if ((nrest == 8 && strncasecmp(rest, "infinity", 8) == 0) ||
      (nrest == 3 && strncasecmp(rest, "inf", 3) == 0)) {
    p->special = 2;
    return true;
  }
  p->ip = s + i;
  while (i < len && s[i] >= '0' && s[i] <= '9') i++;
  p->ni = (size_t)(s + i - p->ip);
  if (i < len && s[i] == '.') {
    i++;
    p->fp = s + i;
    while (i < len && s[i] >= '0' && s[i] <= '9') i++;
    p->nf = (size_t)(s + i - p->fp);
  }
  if (p->ni + p->nf == 0) return false;
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    int eneg = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
    size_t st = i;
    long long e = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
      if (e < 100000000LL) e = e * 10 + (s[i] - '0');
      i++;
    }
    if (i == st) return false;
    p->exp = eneg ? -e : e;
  }
  return i == len;
}

/* Digit i of the concatenated integer+fraction digit string. */
static char dec_digit(const dec_parts *p, size_t i) {
  return i < p->ni ? p->ip[i] : p->fp[i - p->ni];
}

/* False when the number's plain notation would need more digits than PostgreSQL numeric
 * holds (131072 before the point, 16383 after): "1E-9223372036" or "1E+777777" are no value
 * any node can store, and their normal form (as_decimal_normalize, used by every hash and
 * comparison) would be up to a megabyte for ten bytes of text. */
static bool dec_in_range(const dec_parts *p) {
  if (p->special) return true;
  size_t n = p->ni + p->nf, first = 0;
  while (first < n && dec_digit(p, first) == '0') first++;
  if (first == n) return true; /* zero */
  size_t last = n - 1;
  while (dec_digit(p, last) == '0') last--;
  long long point = (long long)p->ni + p->exp;
  return point - (long long)first <= 131072 && (long long)last + 1 - point <= 16383;
}

bool as_decimal_valid(const char *s, size_t len) {
  dec_parts p;
  return dec_parse(s, len, &p) && dec_in_range(&p);
}

int as_decimal_normalize(const char *s, size_t len, as_buf *out) {
  dec_parts p;
  if (!dec_parse(s, len, &p)) return AS_EINVAL;
  if (p.special == 1) return as_buf_append_str(out, "NaN");
  if (p.special == 2) return as_buf_append_str(out, p.neg ? "-Infinity" : "Infinity");
  size_t n = p.ni + p.nf;
  /* significant range [first, last] of non-zero digits */
  size_t first = 0;
  while (first < n && dec_digit(&p, first) == '0') first++;
  if (first == n) return as_buf_putc(out, '0');
  size_t last = n - 1;
  while (dec_digit(&p, last) == '0') last--;
  /* position of the decimal point relative to the digit string */
  long long point = (long long)p.ni + p.exp;
  if (!dec_in_range(&p)) return AS_EINVAL;
  if (p.neg && as_buf_putc(out, '-') != AS_OK) return AS_ERR;
  /* integer part: digits [min(first,point) .. point) */
  if (point <= (long long)first) {
    if (as_buf_putc(out, '0') != AS_OK) return AS_ERR;
  } else {
    for (long long k = (long long)first; k < point; k++) {
      char c = k < (long long)n ? dec_digit(&p, (size_t)k) : '0';
      if (as_buf_putc(out, (uint8_t)c) != AS_OK) return AS_ERR;
    }
  }
  if ((long long)last >= point) {
    if (as_buf_putc(out, '.') != AS_OK) return AS_ERR;
    for (long long k = point; k <= (long long)last; k++) {
      char c = k < 0 ? '0' : dec_digit(&p, (size_t)k);
      if (as_buf_putc(out, (uint8_t)c) != AS_OK) return AS_ERR;
    }
  }
  return AS_OK;
}

/* Compares two normalised decimal texts numerically. */
static int dec_cmp_norm(const char *a, const char *b) {
  int ra = strcmp(a, "NaN") == 0 ? 3 : strcmp(a, "Infinity") == 0 ? 2 : strcmp(a, "-Infinity") == 0 ? 0 : 1;
  int rb = strcmp(b, "NaN") == 0 ? 3 : strcmp(b, "Infinity") == 0 ? 2 : strcmp(b, "-Infinity") == 0 ? 0 : 1;
  if (ra != rb || ra != 1) return ra < rb ? -1 : ra > rb;
  int na = a[0] == '-', nb = b[0] == '-';
  if (na != nb) return na ? -1 : 1;
  const char *x = a + na, *y = b + nb;
  size_t ix = strcspn(x, "."), iy = strcspn(y, ".");
  int c;
  if (ix != iy) {
    c = ix < iy ? -1 : 1; /* normalised: no leading zeros, so longer integer part is larger */
  } else {
    c = strcmp(x, y);
    c = c < 0 ? -1 : c > 0;
  }
  return na ? -c : c;
}

/* ---------------------------------------------------------------- doubles */

/* What printf's %.{p}g writes for the number with 17 significant digits dg and decimal
 * exponent x (dg[0].dg[1..16] x 10^x; sign apart), rounded half up to p <= 17 digits (the
 * caller leaves out the exact halfway case). */
static size_t g_format(bool neg, const char dg17[17], int x, int p, char out[32]) {
  char dg[17];
  memcpy(dg, dg17, 17);
  if (p < 17 && dg[p] >= '5') {
    int i = p - 1;
    while (i >= 0 && dg[i] == '9') dg[i--] = '0';
    if (i >= 0) {
      dg[i]++;
    } else { /* 9.99..9 -> 10.0..0 */
      dg[0] = '1';
      x++;
    }
  }
  int n = p; /* significant digits without trailing zeros */
  while (n > 1 && dg[n - 1] == '0') n--;
  size_t o = 0;
  if (neg) out[o++] = '-';
  if (x < -4 || x >= p) {
    out[o++] = dg[0];
    if (n > 1) {
      out[o++] = '.';
      memcpy(out + o, dg + 1, (size_t)n - 1);
      o += (size_t)n - 1;
    }
    out[o++] = 'e';
    out[o++] = x < 0 ? '-' : '+';
    int ax = x < 0 ? -x : x;
    if (ax >= 100) out[o++] = (char)('0' + ax / 100);
    out[o++] = (char)('0' + ax / 10 % 10);
    out[o++] = (char)('0' + ax % 10);
  } else if (x >= 0) {
    memcpy(out + o, dg, (size_t)x + 1);
    o += (size_t)x + 1;
    if (n > x + 1) {
      out[o++] = '.';
      memcpy(out + o, dg + x + 1, (size_t)(n - x - 1));
      o += (size_t)(n - x - 1);
    }
  } else {
    out[o++] = '0';
    out[o++] = '.';
    for (int k = 0; k < -x - 1; k++) out[o++] = '0';
    memcpy(out + o, dg, (size_t)n);
    o += (size_t)n;
  }
  out[o] = '\0';
  return o;
}

/* Exact decimal digits of doubles in [1e-4, 2^53) with 128-bit integers: a = M * 2^E, and
 * P = M * 10^k * 2^max(E,0), S = 2^max(-E,0) make a * 10^k = P / S exactly (k = 16 - x, x
 * the decimal exponent). Below 1e-4 P could pass 128 bits; from 2^53 on, and below 1e-4,
 * as_double_format takes one %.16e conversion instead. */
__extension__ typedef unsigned __int128 as_u128;

#define AS_E19 ((as_u128)10000000000000000000ULL)
static const as_u128 POW10[23] = {1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL,
                                  10000000ULL, 100000000ULL, 1000000000ULL, 10000000000ULL,
                                  100000000000ULL, 1000000000000ULL, 10000000000000ULL,
                                  100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
                                  100000000000000000ULL, 1000000000000000000ULL, AS_E19,
                                  AS_E19 * 10, AS_E19 * 100, AS_E19 * 1000};

static as_u128 pow10_u128(int k) { return POW10[k]; } /* k in 0..22: the callers' range */

/* P / (S * 10^(17 - p)) rounded half to even (as printf rounds), as p digits q and the
 * decimal exponent of the result (x, or x + 1 when rounding carried to 10^p). */
static uint64_t round_digits(as_u128 P, int s, int p, int *x) {
  as_u128 div = pow10_u128(17 - p) << s, q = P / div, rem = P - q * div, half = div / 2;
  if (rem > half || (rem == half && (div % 2 == 0) && (q & 1))) q++;
  if (q == pow10_u128(p)) {
    q /= 10;
    (*x)++;
  }
  return (uint64_t)q;
}

/* Does a candidate read back (strtod: round to nearest, ties to even) as M * 2^E? c17: the
 * candidate in units of 10^(x - 16), compared with P / S in the same scaled integers. */
static bool reads_back(as_u128 c17, as_u128 P, int s, int k, int E, uint64_t M) {
  as_u128 scaled = c17 << s;
  as_u128 dist2 = 2 * (scaled > P ? scaled - P : P - scaled);
  as_u128 ulp = pow10_u128(k) << (E >= 0 ? E : 0); /* d's ulp above, scaled the same way */
  if (scaled < P && M == (1ULL << 52)) ulp /= 2;   /* below a power of two: half as wide */
  return dist2 < ulp || (dist2 == ulp && (M & 1) == 0);
}

/* The shortest of %.15g, %.16g, %.17g of a (positive) that reads back; false when a is
 * outside the range this works in. */
static bool exact_format(bool neg, double a, char out[32], size_t *len) {
  if (!(a >= 1e-4 && a < 9007199254740992.0)) return false;
  int e2;
  double fr = frexp(a, &e2);
  uint64_t M = (uint64_t)ldexp(fr, 53); /* exact: a is normal here */
  int E = e2 - 53, s = E < 0 ? -E : 0;
  int x = (int)floor(log10(a)); /* may be one off: fixed below */
  as_u128 P = 0;
  bool placed = false; /* 10^16 <= a * 10^k < 10^17 */
  for (int tries = 0; tries < 3 && !placed; tries++) {
    P = ((as_u128)M * pow10_u128(16 - x)) << (E > 0 ? E : 0);
    if (P < pow10_u128(16) << s) {
      x--;
    } else if (P >= pow10_u128(17) << s) {
      x++;
    } else {
      placed = true;
    }
  }
  if (!placed) return false;
  int k = 16 - x;
  for (int p = 15; p <= 17; p++) {
    int xp = x;
    uint64_t q = round_digits(P, s, p, &xp);
    as_u128 c17 = (as_u128)q * pow10_u128(17 - p) * (xp > x ? 10 : 1);
    if (p < 17 && !reads_back(c17, P, s, k, E, M)) continue;
    char dg[17];
    memset(dg, '0', sizeof dg);
    for (int i = p - 1; i >= 0; i--, q /= 10) dg[i] = (char)('0' + q % 10);
    *len = g_format(neg, dg, xp, p, out);
    return true;
  }
  return false; /* not reached: 17 digits always read back */
}

char *as_i64_format(int64_t i, char *end) {
  uint64_t u = i < 0 ? -(uint64_t)i : (uint64_t)i;
  char *q = end;
  do {
    *--q = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (i < 0) *--q = '-';
  return q;
}

size_t as_double_format(double d, char out[32]) {
  if (isnan(d)) return (size_t)snprintf(out, 32, "NaN");
  if (isinf(d)) return (size_t)snprintf(out, 32, d < 0 ? "-Infinity" : "Infinity");
  if (d == 0) return (size_t)snprintf(out, 32, signbit(d) ? "-0" : "0");
  double a = fabs(d);
  if (a < 9007199254740992.0 && a >= 1e-4) {
    /* fast path: few fraction digits (exact check by division, which is correctly rounded) */
    static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
    for (int k = 0; k <= 8; k++) {
      double m = d * p10[k];
      if (fabs(m) >= 9007199254740992.0) break;
      double r = nearbyint(m);
      if (r / p10[k] == d) {
        /* print r with k fraction digits */
        int64_t iv = (int64_t)r;
        int neg = iv < 0;
        uint64_t u = neg ? (uint64_t)(-iv) : (uint64_t)iv;
        char tmp[32];
        int nt = 0;
        do {
          tmp[nt++] = (char)('0' + u % 10);
          u /= 10;
        } while (u);
        while (nt <= k) tmp[nt++] = '0';
        size_t o = 0;
        if (neg) out[o++] = '-';
        for (int j = nt - 1; j >= 0; j--) {
          out[o++] = tmp[j];
          if (j == k && k > 0) out[o++] = '.';
        }
        out[o] = '\0';
        return o;
      }
    }
  }
  size_t len;
  if (exact_format(d < 0, a, out, &len)) return len;
  /* The shortest of %.15g, %.16g and %.17g that reads back as d, from one conversion: the 17
   * significant digits of %.16e, rounded here to 15 or 16. Rounding those digits again gives
   * what rounding d itself would unless they end exactly on the halfway point (a last digit 5
   * for 16, last two 50 for 15): then printf rounds d itself. */
  char e[40], dg[17];
  snprintf(e, sizeof e, "%.16e", a); /* d.dddddddddddddddde[+-]XX */
  dg[0] = e[0];
  memcpy(dg + 1, e + 2, 16);
  int x = (int)strtol(e + 19, NULL, 10);
  /* 15 digits cannot read back as d when they are 12 or more units of the 17th digit away
   * from those 17 (which are within half a unit of d): d's rounding interval reaches at most
   * half its ulp, below 11.1 such units for every normal double (ulp/d <= 2^-52, leading
   * digit < 10; subnormals have fewer bits, so larger ulps) */
  int r = (dg[15] - '0') * 10 + (dg[16] - '0');
  for (int p = r >= 12 && r <= 88 && a >= DBL_MIN ? 16 : 15; p <= 16; p++) {
    bool half = p == 15 ? dg[15] == '5' && dg[16] == '0' : dg[16] == '5';
    size_t n = half ? (size_t)snprintf(out, 32, "%.*g", p, d) : g_format(d < 0, dg, x, p, out);
    if (strtod(out, NULL) == d) return n;
  }
  return g_format(d < 0, dg, x, 17, out);
}

/* ---------------------------------------------------------------- calendar */

int64_t as_days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (int64_t)(m > 2 ? m - 3 : m + 9) + 2) / 5 + (int64_t)d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void as_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t yy = yoe + era * 400;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  unsigned dd = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
  unsigned mm = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
  *y = yy + (mm <= 2);
  *m = mm;
  *d = dd;
}

static bool is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static unsigned days_in_month(int64_t y, unsigned m) {
  static const unsigned dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
  return q;
}

/* ---------------------------------------------------------------- equality, order */

static int cmp_bytes(const char *a, size_t na, const char *b, size_t nb) {
  size_t n = na < nb ? na : nb;
  int c = n ? memcmp(a, b, n) : 0;
  if (c) return c < 0 ? -1 : 1;
  return na < nb ? -1 : na > nb;
}

static int cmp_decimal(const as_value *a, const as_value *b) {
  as_buf x = AS_BUF_INIT, y = AS_BUF_INIT;
  int c;
  bool okx = as_decimal_normalize(a->u.s.ptr, a->u.s.len, &x) == AS_OK;
  bool oky = as_decimal_normalize(b->u.s.ptr, b->u.s.len, &y) == AS_OK;
  if (okx && oky) c = dec_cmp_norm(as_buf_cstr(&x), as_buf_cstr(&y));
  else c = cmp_bytes(a->u.s.ptr, a->u.s.len, b->u.s.ptr, b->u.s.len);
  as_buf_free(&x);
  as_buf_free(&y);
  return c;
}

static bool json_equal_canon(const as_value *a, const as_value *b) {
  if (a->u.s.len == b->u.s.len && memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0) return true;
  as_buf x = AS_BUF_INIT, y = AS_BUF_INIT;
  bool eq = false;
  if (as_json_canonicalize(a->u.s.ptr, a->u.s.len, &x, NULL) == AS_OK &&
      as_json_canonicalize(b->u.s.ptr, b->u.s.len, &y, NULL) == AS_OK)
    eq = x.len == y.len && memcmp(x.data, y.data, x.len) == 0;
  as_buf_free(&x);
  as_buf_free(&y);
  return eq;
}

bool as_value_equal(const as_value *a, const as_value *b) {
  if (a->type != b->type) return false;
  switch (a->type) {
    case AS_T_NULL: return true;
    case AS_T_BOOL: return a->u.b == b->u.b;
    case AS_T_INT64: return a->u.i == b->u.i;
    case AS_T_DOUBLE:
      if (isnan(a->u.d) || isnan(b->u.d)) return isnan(a->u.d) && isnan(b->u.d);
      return a->u.d == b->u.d; /* -0.0 == 0.0, as in the hash encoding */
    case AS_T_TIMESTAMP: return a->u.ts_us == b->u.ts_us;
    case AS_T_DATE: return a->u.days == b->u.days;
    case AS_T_UUID: return memcmp(a->u.uuid, b->u.uuid, 16) == 0;
    case AS_T_OBJECTID: return memcmp(a->u.oid, b->u.oid, 12) == 0;
    case AS_T_TEXT:
    case AS_T_BYTES: return cmp_bytes(a->u.s.ptr, a->u.s.len, b->u.s.ptr, b->u.s.len) == 0;
    case AS_T_DECIMAL: return cmp_decimal(a, b) == 0;
    case AS_T_JSON: return json_equal_canon(a, b);
    default: return false;
  }
}

int as_value_compare(const as_value *a, const as_value *b) {
  if (a->type != b->type) return a->type < b->type ? -1 : 1;
  switch (a->type) {
    case AS_T_NULL: return 0;
    case AS_T_BOOL: return (int)a->u.b - (int)b->u.b;
    case AS_T_INT64: return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
    case AS_T_DOUBLE: {
      double x = a->u.d, y = b->u.d;
      if (isnan(x) || isnan(y)) return isnan(x) - isnan(y); /* NaN sorts last */
      return x < y ? -1 : x > y;
    }
    case AS_T_TIMESTAMP: return a->u.ts_us < b->u.ts_us ? -1 : a->u.ts_us > b->u.ts_us;
    case AS_T_DATE: return a->u.days < b->u.days ? -1 : a->u.days > b->u.days;
    case AS_T_UUID: {
      int c = memcmp(a->u.uuid, b->u.uuid, 16);
      return c < 0 ? -1 : c > 0;
    }
    case AS_T_OBJECTID: {
      int c = memcmp(a->u.oid, b->u.oid, 12);
      return c < 0 ? -1 : c > 0;
    }
    case AS_T_DECIMAL: return cmp_decimal(a, b);
    case AS_T_JSON:
      if (json_equal_canon(a, b)) return 0;
      return cmp_bytes(a->u.s.ptr, a->u.s.len, b->u.s.ptr, b->u.s.len);
    default: return cmp_bytes(a->u.s.ptr, a->u.s.len, b->u.s.ptr, b->u.s.len);
  }
}

/* ---------------------------------------------------------------- text forms */

static const char hexd[] = "0123456789abcdef";

static void hex_encode(const uint8_t *p, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hexd[p[i] >> 4];
    out[2 * i + 1] = hexd[p[i] & 15];
  }
  out[2 * n] = '\0';
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static bool hex_decode(const char *s, size_t n, uint8_t *out) {
  if (n % 2) return false;
  for (size_t i = 0; i < n / 2; i++) {
    int h = hexval((unsigned char)s[2 * i]), l = hexval((unsigned char)s[2 * i + 1]);
    if (h < 0 || l < 0) return false;
    out[i] = (uint8_t)(h << 4 | l);
  }
  return true;
}

/* n decimal digits of v, zero-padded, at out; returns the end. */
static char *put_digits(char *out, unsigned v, int n) {
  for (int i = n - 1; i >= 0; i--) {
    out[i] = (char)('0' + v % 10);
    v /= 10;
  }
  return out + n;
}

/* YYYY-MM-DD (years 0001..9999: the callers check) at out; returns the end. */
static char *put_date(char *out, int64_t days) {
  int64_t y;
  unsigned m, d;
  as_civil_from_days(days, &y, &m, &d);
  out = put_digits(out, (unsigned)y, 4);
  *out++ = '-';
  out = put_digits(out, m, 2);
  *out++ = '-';
  return put_digits(out, d, 2);
}

/* YYYY-MM-DDTHH:MM:SS.ffffffZ (27 bytes and a NUL), written digit by digit (printf cost more
 * than the rest of a COPY row's formatting). */
static size_t fmt_timestamp(int64_t us, char out[28]) {
  int64_t days = floor_div(us, 86400000000LL);
  int64_t rem = us - days * 86400000000LL;
  unsigned secs = (unsigned)(rem / 1000000), frac = (unsigned)(rem % 1000000);
  char *o = put_date(out, days);
  *o++ = 'T';
  o = put_digits(o, secs / 3600, 2);
  *o++ = ':';
  o = put_digits(o, secs / 60 % 60, 2);
  *o++ = ':';
  o = put_digits(o, secs % 60, 2);
  *o++ = '.';
  o = put_digits(o, frac, 6);
  *o++ = 'Z';
  *o = '\0';
  return (size_t)(o - out);
}

int as_value_to_text(const as_value *v, char **out, as_error *err) {
  char buf[64];
  const char *s = buf;
  size_t n = 0;
  *out = NULL;
  switch (v->type) {
    case AS_T_NULL:
      return as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "a null value has no text form");
    case AS_T_BOOL: s = v->u.b ? "true" : "false"; n = strlen(s); break;
    case AS_T_INT64: /* right-aligned in buf, then s points at it */
      s = as_i64_format(v->u.i, buf + sizeof buf);
      n = (size_t)(buf + sizeof buf - s);
      break;
    case AS_T_DOUBLE: n = as_double_format(v->u.d, buf); break;
    case AS_T_UUID: {
      static const int grp[] = {4, 2, 2, 2, 6};
      size_t o = 0, k = 0;
      for (int g = 0; g < 5; g++) {
        if (g) buf[o++] = '-';
        hex_encode(v->u.uuid + k, (size_t)grp[g], buf + o);
        o += 2 * (size_t)grp[g];
        k += (size_t)grp[g];
      }
      n = o;
      break;
    }
    case AS_T_OBJECTID: hex_encode(v->u.oid, 12, buf); n = 24; break;
    case AS_T_TIMESTAMP:
      if (v->u.ts_us < AS_TS_MIN_US || v->u.ts_us > AS_TS_MAX_US)
        return as_error_set(err, AS_DOM_CODEC, AS_EINVAL,
                            "timestamp %" PRId64 " µs is outside years 0001..9999", v->u.ts_us);
      n = fmt_timestamp(v->u.ts_us, buf);
      break;
    case AS_T_DATE: {
      if (v->u.days < AS_DATE_MIN_DAYS || v->u.days > AS_DATE_MAX_DAYS)
        return as_error_set(err, AS_DOM_CODEC, AS_EINVAL,
                            "date %d days is outside years 0001..9999", (int)v->u.days);
      n = (size_t)(put_date(buf, v->u.days) - buf);
      buf[n] = '\0';
      break;
    }
    case AS_T_TEXT:
    case AS_T_DECIMAL:
    case AS_T_JSON: s = v->u.s.ptr; n = v->u.s.len; break;
    case AS_T_BYTES: {
      char *p = malloc(2 * v->u.s.len + 1);
      if (!p) return as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
      hex_encode((const uint8_t *)v->u.s.ptr, v->u.s.len, p);
      *out = p;
      return AS_OK;
    }
    default: return as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "bad value type %d", (int)v->type);
  }
  char *p = malloc(n + 1);
  if (!p) return as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
  memcpy(p, s, n);
  p[n] = '\0';
  *out = p;
  return AS_OK;
}

/* Reads exactly `w` digits. */
static bool digits(const char *s, size_t len, size_t *i, int w, int *out) {
  int v = 0;
  for (int k = 0; k < w; k++) {
    if (*i >= len || s[*i] < '0' || s[*i] > '9') return false;
    v = v * 10 + (s[(*i)++] - '0');
  }
  *out = v;
  return true;
}

static bool parse_date(const char *s, size_t len, size_t *i, int64_t *days) {
  int y, m, d;
  if (!digits(s, len, i, 4, &y)) return false;
  if (*i >= len || s[(*i)++] != '-' || !digits(s, len, i, 2, &m)) return false;
  if (*i >= len || s[(*i)++] != '-' || !digits(s, len, i, 2, &d)) return false;
  if (y < 1 || m < 1 || m > 12 || d < 1 || (unsigned)d > days_in_month(y, (unsigned)m)) return false;
  *days = as_days_from_civil(y, (unsigned)m, (unsigned)d);
  return true;
}

/* "YYYY-MM-DD[(T| )HH:MM[:SS[.f]]][Z|(+|-)HH[[:]MM[[:]SS]]]" -> µs UTC. */
static int parse_timestamp(const char *s, size_t len, int64_t *out, const char **why) {
  size_t i = 0;
  int64_t days;
  int hh = 0, mi = 0, ss = 0;
  int64_t frac = 0;
  *why = "expected YYYY-MM-DD[THH:MM:SS[.ffffff]][Z|+HH:MM]";
  if (!parse_date(s, len, &i, &days)) return AS_EINVAL;
  if (i < len && (s[i] == 'T' || s[i] == 't' || s[i] == ' ')) {
    i++;
    if (!digits(s, len, &i, 2, &hh)) return AS_EINVAL;
    if (i >= len || s[i++] != ':' || !digits(s, len, &i, 2, &mi)) return AS_EINVAL;
    if (i < len && s[i] == ':') {
      i++;
      if (!digits(s, len, &i, 2, &ss)) return AS_EINVAL;
      if (i < len && (s[i] == '.' || s[i] == ',')) {
        i++;
        int nd = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
          if (nd < 6) frac = frac * 10 + (s[i] - '0');
          else if (s[i] != '0') {
            *why = "more than microsecond precision";
            return AS_EINVAL;
          }
          nd++;
          i++;
        }
        if (nd == 0) return AS_EINVAL;
        for (; nd < 6; nd++) frac *= 10;
      }
    }
    if (hh > 23 || mi > 59 || ss > 59) {
      *why = "time of day out of range";
      return AS_EINVAL;
    }
  }
  int64_t off = 0;
  if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
    i++;
  } else if (i < len && (s[i] == '+' || s[i] == '-')) {
    int sign = s[i++] == '-' ? -1 : 1;
    int oh = 0, om = 0, os = 0;
    if (!digits(s, len, &i, 2, &oh)) return AS_EINVAL;
    if (i < len && s[i] == ':') i++;
    if (i < len && digits(s, len, &i, 2, &om)) {
      if (i < len && s[i] == ':') i++;
      if (i < len && !digits(s, len, &i, 2, &os)) return AS_EINVAL;
    }
    if (oh > 15 || om > 59 || os > 59) {
      *why = "bad UTC offset";
      return AS_EINVAL;
    }
    off = sign * ((int64_t)oh * 3600 + om * 60 + os);
  }
  if (i != len) return AS_EINVAL;
  int64_t us = ((days * 86400 + hh * 3600 + mi * 60 + ss - off) * 1000000) + frac;
  if (us < AS_TS_MIN_US || us > AS_TS_MAX_US) {
    *why = "outside years 0001..9999";
    return AS_EINVAL;
  }
  *out = us;
  return AS_OK;
}

static bool parse_uuid(const char *s, size_t len, uint8_t out[16]) {
  char hex[32];
  size_t n = 0;
  if (len == 38 && s[0] == '{' && s[37] == '}') {
    s++;
    len -= 2;
  }
  if (len == 36) {
    for (size_t i = 0; i < 36; i++) {
      if (i == 8 || i == 13 || i == 18 || i == 23) {
        if (s[i] != '-') return false;
      } else {
        hex[n++] = s[i];
      }
    }
  } else if (len == 32) {
    memcpy(hex, s, 32);
    n = 32;
  } else {
    return false;
  }
  return hex_decode(hex, n, out);
}

bool as_utf8_valid(const char *s, size_t n) {
  const uint8_t *p = (const uint8_t *)s, *e = p + n;
  while (p < e) {
    while (e - p >= 8) { /* ASCII 8 bytes at a time */
      uint64_t x;
      memcpy(&x, p, 8);
      if (x & 0x8080808080808080ULL) break;
      p += 8;
    }
    if (p >= e) break;
    if (*p < 0x80) {
      p++;
      continue;
    }
    size_t k = as_utf8_seq(p, e);
    if (!k) return false;
    p += k;
  }
  return true;
}

/* Parts of as_value_from_text: AS_OK, AS_EINVAL (not that type's text; *why may say why) or
 * AS_ERR (out of memory). */
static int text_bool(const char *s, size_t len, as_value *v) {
  static const char *const t[] = {"true", "t", "1", "yes", "y", "on"};
  static const char *const f[] = {"false", "f", "0", "no", "n", "off"};
  for (size_t k = 0; k < 6; k++) {
    if (strlen(t[k]) == len && strncasecmp(s, t[k], len) == 0) {
      as_value_set_bool(v, true);
      return AS_OK;
    }
    if (strlen(f[k]) == len && strncasecmp(s, f[k], len) == 0) {
      as_value_set_bool(v, false);
      return AS_OK;
    }
  }
  return AS_EINVAL;
}

static int text_number(as_type type, const char *s, size_t len, as_value *v, const char **why) {
  char tmp[512];
  if (len == 0 || len >= sizeof tmp) return AS_EINVAL;
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  char *end;
  errno = 0;
  if (type == AS_T_INT64) {
    long long x = strtoll(tmp, &end, 10);
    if (*end || isspace((unsigned char)tmp[0])) return AS_EINVAL;
    if (errno == ERANGE) {
      *why = "out of int64 range";
      return AS_EINVAL;
    }
    as_value_set_int64(v, x);
    return AS_OK;
  }
  double d = strtod(tmp, &end);
  if (*end || isspace((unsigned char)tmp[0])) return AS_EINVAL;
  /* strtod accepts hex floats and "nan(...)"; both are fine as input */
  as_value_set_double(v, d);
  return AS_OK;
}

static int text_bytes(const char *s, size_t len, as_value *v) {
  const char *h = s;
  size_t hn = len;
  if (hn >= 2 && h[0] == '\\' && (h[1] == 'x' || h[1] == 'X')) {
    h += 2;
    hn -= 2;
  }
  if (hn % 2) return AS_EINVAL;
  if (as_value_set_str(v, AS_T_BYTES, "", 0) != AS_OK) return AS_ERR;
  char *p = malloc(hn / 2 + 1);
  if (!p) return AS_ERR;
  if (!hex_decode(h, hn, (uint8_t *)p)) {
    free(p);
    return AS_EINVAL;
  }
  p[hn / 2] = '\0';
  free(v->u.s.ptr);
  v->u.s.ptr = p;
  v->u.s.len = hn / 2;
  return AS_OK;
}

int as_value_from_text(as_type type, const char *s, size_t len, as_value *out, as_error *err) {
  as_value v = AS_VALUE_NULL;
  const char *why = NULL;
  char tmp[512];
  /* a NUL byte ends the text C parsers see: "5\0junk" is not the number 5 */
  if (type != AS_T_TEXT && memchr(s, 0, len)) {
    why = "holds a NUL byte";
    goto bad;
  }
  switch (type) {
    case AS_T_NULL: break;
    case AS_T_BOOL:
    case AS_T_INT64:
    case AS_T_DOUBLE:
    case AS_T_BYTES: {
      int r = type == AS_T_BOOL    ? text_bool(s, len, &v)
              : type == AS_T_BYTES ? text_bytes(s, len, &v)
                                   : text_number(type, s, len, &v, &why);
      if (r == AS_ERR) goto oom;
      if (r != AS_OK) goto bad;
      break;
    }
    case AS_T_DECIMAL:
      if (!as_decimal_valid(s, len)) goto bad;
      if (as_value_set_str(&v, type, s, len) != AS_OK) goto oom;
      break;
    case AS_T_TEXT:
      if (!as_utf8_valid(s, len)) {
        why = "not valid UTF-8";
        goto bad;
      }
      if (as_value_set_str(&v, type, s, len) != AS_OK) goto oom;
      break;
    case AS_T_JSON: {
      /* validated as the canonicaliser does, which (unlike a plain jansson load) accepts
       * integers beyond int64 as PostgreSQL jsonb may print them */
      as_error jerr;
      int jrc = as_json_validate(s, len, &jerr);
      if (jrc != AS_OK) {
        snprintf(tmp, sizeof tmp, "%s", jerr.message);
        why = tmp;
        goto bad;
      }
      if (as_value_set_str(&v, type, s, len) != AS_OK) goto oom;
      break;
    }
    case AS_T_UUID: {
      uint8_t u[16];
      if (!parse_uuid(s, len, u)) goto bad;
      as_value_set_uuid(&v, u);
      break;
    }
    case AS_T_OBJECTID: {
      uint8_t o[12];
      if (len != 24 || !hex_decode(s, 24, o)) goto bad;
      as_value_set_oid(&v, o);
      break;
    }
    case AS_T_TIMESTAMP: {
      int64_t us;
      if (parse_timestamp(s, len, &us, &why) != AS_OK) goto bad;
      as_value_set_timestamp(&v, us);
      break;
    }
    case AS_T_DATE: {
      size_t i = 0;
      int64_t days;
      if (!parse_date(s, len, &i, &days) || i != len) {
        why = "expected YYYY-MM-DD (years 0001..9999)";
        goto bad;
      }
      as_value_set_date(&v, (int32_t)days);
      break;
    }
    default:
      return as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "bad value type %d", (int)type);
  }
  *out = v; /* out is overwritten, not freed */
  return AS_OK;
bad:
  as_value_clear(&v);
  return as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "invalid %s text \"%.*s\"%s%s",
                      as_type_name(type), (int)(len > 100 ? 100 : len), s, why ? ": " : "",
                      why ? why : "");
oom:
  as_value_clear(&v);
  return as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
}

/* ---------------------------------------------------------------- base64 */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int as_base64_encode(const uint8_t *p, size_t n, as_buf *out) {
  if (as_buf_reserve(out, (n + 2) / 3 * 4) != AS_OK) return AS_ERR;
  char *o = (char *)out->data + out->len;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t x = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    *o++ = b64[x >> 18];
    *o++ = b64[(x >> 12) & 63];
    *o++ = b64[(x >> 6) & 63];
    *o++ = b64[x & 63];
  }
  if (n - i == 1) {
    uint32_t x = (uint32_t)p[i] << 16;
    *o++ = b64[x >> 18];
    *o++ = b64[(x >> 12) & 63];
    *o++ = '=';
    *o++ = '=';
  } else if (n - i == 2) {
    uint32_t x = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
    *o++ = b64[x >> 18];
    *o++ = b64[(x >> 12) & 63];
    *o++ = b64[(x >> 6) & 63];
    *o++ = '=';
  }
  out->len = (size_t)(o - (char *)out->data);
  return AS_OK;
}

static int b64val(int c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

int as_base64_decode(const char *s, size_t n, as_buf *out) {
  if (n % 4) return AS_EINVAL;
  if (as_buf_reserve(out, n / 4 * 3) != AS_OK) return AS_ERR;
  for (size_t i = 0; i < n; i += 4) {
    int v[4], pad = 0;
    for (int k = 0; k < 4; k++) {
      char c = s[i + (size_t)k];
      if (c == '=' && i + 4 == n && k >= 2) {
        v[k] = 0;
        pad++;
      } else {
        if (pad) return AS_EINVAL;
        v[k] = b64val((unsigned char)c);
        if (v[k] < 0) return AS_EINVAL;
      }
    }
    if (pad == 1 && s[i + 2] == '=') return AS_EINVAL;
    uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
    uint8_t b[3] = {(uint8_t)(x >> 16), (uint8_t)(x >> 8), (uint8_t)x};
    if (as_buf_append(out, b, (size_t)(3 - pad)) != AS_OK) return AS_ERR;
  }
  return AS_OK;
}
