/* as_asjson_read.c — AS-JSON text -> BSON: the one decoder (the forms, and the "$" escape of
 * keys, are listed in as_bson.h).
 *
 * Decisions:
 * - One streaming decoder writes raw BSON elements (as_bson_priv.h) as it reads; no
 *   intermediate tree. It is strict JSON (RFC 8259) plus the AS-JSON rules; anything else is
 *   AS_EINVAL with "line L column C: reason".
 * - Strings and keys must be valid UTF-8 (no overlong forms, no surrogates, nothing above
 *   U+10FFFF; \u escapes must pair surrogates): otherwise an error, never replaced.
 * - Duplicate keys in one object are an error naming the key: a document cannot hold them
 *   the way JSON text can, and keeping one of them would drop data without a word.
 * - Keys: "$$x" is the document key "$x"; a key with one '$' is a wrapper and must be one of
 *   the forms of as_bson.h, complete and alone in its object (members of a wrapper may come
 *   in any order: PostgreSQL jsonb reorders them); anything else is an error naming the key.
 *   In a document context (as_asjson_to_bson, the catch-all) the top level is a document, so
 *   a single-'$' key there is an error too. A key may not hold NUL (\u0000).
 * - Numbers: an integer is int32 if it fits, else int64, else (beyond int64) a double
 *   (PostgreSQL jsonb prints 1e20 as 100000000000000000000); a number with '.' or an exponent
 *   is a double (strtod: correctly rounded) — when the double is that number: the double is
 *   the integer exactly, or the double printed with as many significant digits (at most 17)
 *   gives the text back (any text of at most 15 digits; 0.30000000000000004; a MongoDB
 *   double's own text). A number beyond a double's range (it
 *   would become infinity, or 0 though it is not 0: 1e400, 1e-400) or precision
 *   (12345678901234567890, a 20-digit decimal written in SQL) is a Decimal128, exact, or an
 *   error when even that cannot hold it (over 34 significant digits); never a different value.
 * - Wrapper values are checked: $oid 24 hex digits, $numberInt/$numberLong "-?digits" in
 *   range, $numberDouble a JSON number or NaN/Infinity/-Infinity, $numberDecimal what libbson
 *   parses, $binary base64 and a subtype of 1-2 hex digits, $timestamp t and i in 0..2^32-1,
 *   $date {"$numberLong":"ms"} (or an integer), regex pattern/options without NUL (options
 *   are kept as written, not sorted), $minKey/$maxKey 1, $undefined true.
 * - Decimal text -> Decimal128 has an exact fast path for "[-]digits[.digits]" up to 19
 *   digits; libbson does the rest (same bits as bson_decimal128_from_string_w_len).
 * - Nesting deeper than AS_JSON_MAX_DEPTH is an error.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "as_bson_priv.h"

/* ================================================================ errors */

/* Records the first error (its position and message); returns AS_EINVAL. */
static int fail(as_jsonr *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(as_jsonr *j, const char *fmt, ...) {
  if (j->msg[0]) return AS_EINVAL;
  j->at = j->p;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(j->msg, sizeof j->msg, fmt, ap);
  va_end(ap);
  return AS_EINVAL;
}

static int oom(as_jsonr *j) {
  fail(j, "out of memory or document over 16 MiB");
  return AS_ERR;
}

/* A key for a message: at most 60 bytes, quoted. */
static const char *show(const char *k, size_t n, char out[80]) {
  snprintf(out, 80, "\"%.*s%s\"", (int)(n > 60 ? 60 : n), k, n > 60 ? "..." : "");
  return out;
}

int as_jsonr_error(const as_jsonr *j, int rc, as_error *err) {
  if (rc == AS_OK) return AS_OK;
  size_t line = 1, col = 1;
  for (const char *p = j->start; p < j->at && p < j->end; p++) {
    if (*p == '\n') {
      line++;
      col = 1;
    } else {
      col++;
    }
  }
  return as_error_set(err, AS_DOM_CODEC, rc == AS_ERR ? AS_ERR : AS_EINVAL, "invalid AS-JSON at line %zu column %zu: %s",
                      line, col, j->msg[0] ? j->msg : "syntax error");
}

void as_jsonr_init(as_jsonr *j, const char *json, size_t len) {
  j->start = j->p = json ? json : "";
  j->end = j->p + (json ? len : 0);
  j->at = NULL;
  j->msg[0] = '\0';
  j->tmp = (as_buf)AS_BUF_INIT;
  j->ents = j->ent_inl;
  j->nents = 0;
  j->cents = AS_JSONR_INLINE;
  j->arena = NULL;
}

void as_jsonr_free(as_jsonr *j) {
  if (j->tmp.data) as_buf_free(&j->tmp);
  if (j->ents != j->ent_inl) free(j->ents);
  j->ents = j->ent_inl;
  while (j->arena) {
    as_jsonr_chunk *c = j->arena;
    j->arena = c->next;
    free(c);
  }
}

/* ================================================================ lexing */


/* Skips blanks, then expects c. */
static AS_MUSTCHECK bool expect(as_jsonr *j, char c) {
  as_jsonr_ws(j);
  if (j->p < j->end && *j->p == c) {
    j->p++;
    return true;
  }
  return false;
}

static AS_MUSTCHECK bool peek(as_jsonr *j, char c) {
  as_jsonr_ws(j);
  return j->p < j->end && *j->p == c;
}

static AS_MUSTCHECK int hex4(const char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    int c = (unsigned char)p[i], d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return -1;
    v = v << 4 | d;
  }
  return v;
}

/* A \u escape at j->p (after the 'u'), pairs included, as UTF-8 into out; its length or 0. */
static AS_MUSTCHECK size_t unicode_escape(as_jsonr *j, uint8_t out[4]) {
  if (j->end - j->p < 4) return 0;
  int32_t cp = hex4(j->p);
  if (cp < 0) return 0;
  j->p += 4;
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u') return 0;
    int lo = hex4(j->p + 2);
    if (lo < 0xDC00 || lo > 0xDFFF) return 0;
    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    j->p += 6;
  } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
    return 0;
  }
  if (cp < 0x80) {
    out[0] = (uint8_t)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (uint8_t)(0xC0 | cp >> 6);
    out[1] = (uint8_t)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (uint8_t)(0xE0 | cp >> 12);
    out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (uint8_t)(0xF0 | cp >> 18);
  out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (uint8_t)(0x80 | (cp & 0x3F));
  return 4;
}

/* A byte a string may hold as it is: 0x20..0x7f except '"' and '\\' (compares, not a table:
 * no dependent load per byte). */
static inline bool plain(uint8_t c) { return (uint8_t)(c - 0x20) < 0x60 && c != '"' && c != '\\'; }

/* The first byte at or after p that is not plain (or e). */
static inline const uint8_t *scan_plain(const uint8_t *p, const uint8_t *e) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
  while (e - p >= 8) { /* 8 at a time; the lowest flagged byte is exact (borrows only go up) */
    uint64_t x;
    memcpy(&x, p, 8);
    uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
    uint64_t hit = (((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((bs - ones) & ~bs) | x) & high;
    if (hit) return p + (__builtin_ctzll(hit) >> 3);
    p += 8;
  }
#endif
  while (p < e && plain(*p)) p++;
  return p;
}

/* Plain bytes from j->p up to the next '"', '\\' or control byte, UTF-8 checked. */
static AS_MUSTCHECK bool plain_run(as_jsonr *j) {
  const uint8_t *p = (const uint8_t *)j->p, *e = (const uint8_t *)j->end;
  for (;;) {
    p = scan_plain(p, e);
    if (p >= e || *p < 0x80) break;
    size_t k = as_utf8_seq(p, e);
    if (k == 0) {
      j->p = (const char *)p;
      return false;
    }
    p += k;
  }
  j->p = (const char *)p;
  return true;
}

/* The rest of a string with escapes (j->p at the first '\\'), decoded into buf. */
static AS_MUSTCHECK int escaped_string(as_jsonr *j, const char *st, as_buf *buf) {
  as_buf_reset(buf);
  if (as_buf_append(buf, st, (size_t)(j->p - st))) return oom(j);
  while (j->p < j->end && *j->p != '"') {
    if (*j->p != '\\') {
      const char *run = j->p;
      if (!plain_run(j)) return fail(j, "string is not valid UTF-8");
      if (j->p == run) return fail(j, "control character in a string");
      if (as_buf_append(buf, run, (size_t)(j->p - run))) return oom(j);
      continue;
    }
    if (++j->p >= j->end) break;
    char e = *j->p++;
    uint8_t out[4];
    size_t no = 1;
    switch (e) {
      case '"': out[0] = '"'; break;
      case '\\': out[0] = '\\'; break;
      case '/': out[0] = '/'; break;
      case 'b': out[0] = '\b'; break;
      case 'f': out[0] = '\f'; break;
      case 'n': out[0] = '\n'; break;
      case 'r': out[0] = '\r'; break;
      case 't': out[0] = '\t'; break;
      case 'u':
        if ((no = unicode_escape(j, out)) == 0) return fail(j, "bad \\u escape (or an unpaired surrogate)");
        break;
      default: j->p--; return fail(j, "bad escape in a string");
    }
    if (as_buf_append(buf, out, no)) return oom(j);
  }
  if (j->p >= j->end) return fail(j, "unterminated string");
  j->p++;
  return AS_OK;
}

/* A string at j->p (after blanks). Unescaped strings point into the text; escaped ones are
 * decoded into buf (reset first). */
static AS_MUSTCHECK int string_in(as_jsonr *j, const char **s, size_t *n, as_buf *buf) {
  as_jsonr_ws(j);
  if (j->p >= j->end || *j->p != '"') return fail(j, "expected a string");
  const char *st = ++j->p;
  const uint8_t *p = (const uint8_t *)st, *e = (const uint8_t *)j->end;
  p = scan_plain(p, e); /* the common case, inline: ASCII without escapes */
  j->p = (const char *)p;
  if ((p >= e || *p != '"') && !plain_run(j)) return fail(j, "string is not valid UTF-8");
  if (j->p >= j->end) return fail(j, "unterminated string");
  if (*j->p == '"') {
    *s = st;
    *n = (size_t)(j->p - st);
    j->p++;
    return AS_OK;
  }
  if (*j->p != '\\') return fail(j, "control character in a string");
  int rc = escaped_string(j, st, buf);
  if (rc != AS_OK) return rc;
  *s = buf->data ? (const char *)buf->data : "";
  *n = buf->len;
  return AS_OK;
}

int as_jsonr_string(as_jsonr *j, const char **s, size_t *n) { return string_in(j, s, n, &j->tmp); }

/* ================================================================ numbers */

/* Decimal integer text "-?digits" (no sign '+', no blanks) in int64. */
bool as_jsonr_parse_i64(const char *s, size_t n, int64_t *out) {
  const char *p = s, *e = s + n;
  bool neg = p < e && *p == '-';
  if (neg) p++;
  if (p >= e) return false;
  uint64_t u = 0, lim = neg ? 9223372036854775808ULL : 9223372036854775807ULL;
  for (; p < e; p++) {
    if (*p < '0' || *p > '9') return false;
    unsigned dgt = (unsigned)(*p - '0');
    if (u > (lim - dgt) / 10) return false;
    u = u * 10 + dgt;
  }
  *out = neg ? (int64_t)(0 - u) : (int64_t)u;
  return true;
}

/* Length of a JSON number at s[0..n) (RFC 8259 grammar), 0 if there is none; *real says
 * whether it has a fraction or an exponent. */
static AS_MUSTCHECK size_t number_len(const char *s, const char *e, bool *real) {
  const char *p = s;
  *real = false;
  if (p < e && *p == '-') p++;
  if (p >= e || *p < '0' || *p > '9') return 0;
  if (*p == '0') p++;
  else while (p < e && *p >= '0' && *p <= '9') p++;
  if (p < e && *p == '.') {
    *real = true;
    if (++p >= e || *p < '0' || *p > '9') return 0;
    while (p < e && *p >= '0' && *p <= '9') p++;
  }
  if (p < e && (*p == 'e' || *p == 'E')) {
    *real = true;
    p++;
    if (p < e && (*p == '+' || *p == '-')) p++;
    if (p >= e || *p < '0' || *p > '9') return 0;
    while (p < e && *p >= '0' && *p <= '9') p++;
  }
  return (size_t)(p - s);
}

/* A Decimal128 element (raw_bson layout: low 64 bits first, little-endian). */
static AS_MUSTCHECK int rw_dec128(as_buf *dst, const char *key, size_t kl, const bson_decimal128_t *dec) {
  uint8_t raw[16];
  put_le64(raw, dec->low);
  put_le64(raw + 8, dec->high);
  return rw_bytes(dst, BSON_TYPE_DECIMAL128, key, kl, raw, 16);
}

/* A digit other than 0 before the exponent. */
static bool nonzero_digits(const char *s, size_t n) {
  for (size_t i = 0; i < n && s[i] != 'e' && s[i] != 'E'; i++)
    if (s[i] >= '1' && s[i] <= '9') return true;
  return false;
}

static double to_double(const char *s, size_t n) {
  char num[400];
  if (n >= sizeof num) { /* absurdly long: strtod on a heap copy */
    char *h = strndup(s, n);
    double d = h ? strtod(h, NULL) : NAN;
    free(h);
    return d;
  }
  memcpy(num, s, n);
  num[n] = '\0';
  return strtod(num, NULL);
}

/* The significant digits of decimal number text s (at most cap of them; *nd may exceed cap)
 * and the exponent e10 with value = 0.digits x 10^e10; a zero has none. */
static void sig_digits(const char *s, size_t n, char *dig, size_t cap, size_t *nd, long *e10, bool *neg) {
  const char *p = s, *e = s + n;
  long point = 0, exp = 0, lead = 0;
  bool seen = false, after = false;
  size_t k = 0, last = 0;
  *neg = p < e && *p == '-';
  if (*neg) p++;
  for (; p < e && *p != 'e' && *p != 'E'; p++) {
    if (*p == '.') {
      after = true;
      continue;
    }
    if (!after) point++;
    if (!seen && *p == '0') {
      lead++;
      continue;
    }
    seen = true;
    if (k < cap) dig[k] = *p;
    k++;
    if (*p != '0') last = k;
  }
  if (p < e) exp = strtol(p + 1, NULL, 10); /* number_len checked the form */
  *nd = last;
  *e10 = point - lead + exp;
}

/* Whether double d read from number text s is that number, as text says it: the integer the
 * double is exactly (2^63: 9223372036854775808), or a text of at most 17 significant digits
 * that d printed with as many digits gives back (1e20, 0.1, 0.30000000000000004, a MongoDB
 * double's own text); not 12345678901234567890 (1.2345678901234567e19) or a 34-digit decimal. */
static bool double_is_text(double d, const char *s, size_t n) {
  char a[48], b[48], t[64];
  size_t na, nb;
  long ea, eb;
  bool sa, sb;
  sig_digits(s, n, a, sizeof a, &na, &ea, &sa);
  if (na <= 15) return true; /* a double holds any 15 significant digits */
  if (memchr(s, '.', n) == NULL && memchr(s, 'e', n) == NULL && memchr(s, 'E', n) == NULL && n < 40) {
    int xl = snprintf(t, sizeof t, "%.0f", d);
    if (xl > 0 && (size_t)xl == n && memcmp(t, s, n) == 0) return true;
  }
  if (na > 17) return false;
  int tl = snprintf(t, sizeof t, "%.*e", (int)na - 1, d);
  if (tl <= 0 || (size_t)tl >= sizeof t) return false;
  sig_digits(t, (size_t)tl, b, sizeof b, &nb, &eb, &sb);
  return na == nb && ea == eb && sa == sb && memcmp(a, b, na) == 0;
}

/* Whether Decimal128 dec read from number text s is that number (more than 34 significant
 * digits are rounded by the parse). */
static bool dec128_is_text(const bson_decimal128_t *dec, const char *s, size_t n) {
  char a[48], b[48], t[BSON_DECIMAL128_STRING];
  size_t na, nb;
  long ea, eb;
  bool sa, sb;
  sig_digits(s, n, a, sizeof a, &na, &ea, &sa);
  size_t tl = as_dec128_to_str(dec, t);
  sig_digits(t, tl, b, sizeof b, &nb, &eb, &sb);
  return na == nb && na <= sizeof a && (na == 0 || (ea == eb && sa == sb)) && memcmp(a, b, na) == 0;
}

static AS_MUSTCHECK int number(as_jsonr *j, as_buf *dst, const char *key, size_t kl) {
  bool real;
  size_t n = number_len(j->p, j->end, &real);
  if (n == 0) return fail(j, "bad number");
  const char *s = j->p;
  if (j->p + n < j->end && (j->p[n] == '-' || j->p[n] == '+' || (j->p[n] >= '0' && j->p[n] <= '9')))
    return fail(j, "bad number (leading zero?)");
  j->p += n;
  int64_t v;
  if (!real && as_jsonr_parse_i64(s, n, &v)) return rw_int(dst, key, kl, v) == AS_OK ? AS_OK : oom(j);
  double d = to_double(s, n);
  if (isinf(d) || (d == 0 && nonzero_digits(s, n)) || !double_is_text(d, s, n)) {
    /* beyond a double's range (1e400, 1e-400; SQL json holds any number) or precision
     * (12345678901234567890, 0.1000000000000000055511151231257827): a Decimal128 holds it
     * exactly (up to 34 digits), never infinity, zero or a nearby double */
    bson_decimal128_t dec;
    if (!as_dec128_from_str(s, n, &dec) || !dec128_is_text(&dec, s, n))
      return fail(j, "number %.*s has no exact BSON form (a double or a Decimal128 of 34 digits)",
                  (int)(n < 40 ? n : 40), s);
    return rw_dec128(dst, key, kl, &dec) ? oom(j) : AS_OK;
  }
  return rw_double(dst, key, kl, d) == AS_OK ? AS_OK : oom(j);
}

/* $numberDouble text: a JSON number, NaN, Infinity or -Infinity. */
static AS_MUSTCHECK bool double_text(const char *s, size_t n, double *d) {
  bool real;
  if (n == 3 && memcmp(s, "NaN", 3) == 0) *d = NAN;
  else if (n == 8 && memcmp(s, "Infinity", 8) == 0) *d = INFINITY;
  else if (n == 9 && memcmp(s, "-Infinity", 9) == 0) *d = -INFINITY;
  else if (n > 0 && number_len(s, s + n, &real) == n) *d = to_double(s, n);
  else return false;
  return true;
}

/* Decimal text -> Decimal128 as bson_decimal128_from_string_w_len: plain "[-]digits[.digits]"
 * with at most 19 digits here (coefficient = the digits, exponent = -fraction digits, sign bit
 * for '-', also for zero), everything else by libbson. */
bool as_dec128_from_str(const char *s, size_t n, bson_decimal128_t *dec) {
  const char *p = s, *e = s + n;
  bool neg = p < e && *p == '-';
  if (neg) p++;
  uint64_t coef = 0;
  int nd = 0, nfrac = 0;
  const char *st = p;
  while (p < e && *p >= '0' && *p <= '9') coef = coef * 10 + (uint64_t)(*p++ - '0');
  nd = (int)(p - st);
  if (nd > 0 && p < e && *p == '.') {
    st = ++p;
    while (p < e && *p >= '0' && *p <= '9') coef = coef * 10 + (uint64_t)(*p++ - '0');
    nfrac = (int)(p - st);
    if (nfrac == 0) p = s; /* "1." : libbson */
  }
  if (nd == 0 || p != e || nd + nfrac > 19) {
    /* libbson, on a NUL-terminated copy (it reads "NaN"/"Infinity" up to a NUL) */
    char buf[128], *h = n < sizeof buf ? buf : malloc(n + 1);
    bool ok = h && !memchr(s, '\0', n) && n <= INT_MAX;
    if (ok) {
      memcpy(h, s, n);
      h[n] = '\0';
      ok = bson_decimal128_from_string_w_len(h, (int)n, dec);
    }
    if (h != buf) free(h);
    return ok;
  }
  dec->low = coef;
  dec->high = (uint64_t)(6176 - nfrac) << 49 | (neg ? 1ULL << 63 : 0);
  return true;
}

/* ================================================================ keys of one object
 *
 * The keys of the open objects are a stack of (pointer, length) entries: into the JSON text,
 * or (a key with escapes, decoded into j->tmp) into j->arena, which never moves. The first
 * AS_JSONR_INLINE entries live in the reader itself, so small objects allocate nothing. */

static uint32_t key_hash(const char *k, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)k[i]) * 16777619u;
  return h;
}

/* A stable copy of a key decoded into j->tmp. */
static const char *arena_copy(as_jsonr *j, const char *k, size_t n) {
  as_jsonr_chunk *c = j->arena;
  if (!c || c->cap - c->len < n) {
    size_t cap = n > 4000 ? n : 4000;
    if (!(c = malloc(sizeof *c + cap))) return NULL;
    c->next = j->arena;
    c->len = 0;
    c->cap = cap;
    j->arena = c;
  }
  char *d = c->data + c->len;
  memcpy(d, k, n);
  c->len += n;
  return d;
}

/* Index (hash -> entry + 1) over the level's keys, for objects with many keys. */
static AS_MUSTCHECK int level_index(as_jsonr *j, as_jsonr_level *lv) {
  uint32_t cap = lv->icap ? lv->icap * 2 : 128;
  uint32_t *ix = calloc(cap, sizeof *ix);
  if (!ix) return oom(j);
  const as_jsonr_key *ent = j->ents + lv->ent_mark;
  for (uint32_t i = 0; i < lv->n; i++) {
    uint32_t h = key_hash(ent[i].p, ent[i].n) & (cap - 1);
    while (ix[h]) h = (h + 1) & (cap - 1);
    ix[h] = i + 1;
  }
  free(lv->index);
  lv->index = ix;
  lv->icap = cap;
  return AS_OK;
}

static AS_MUSTCHECK int grow_entries(as_jsonr *j) {
  size_t cap = j->cents * 2;
  as_jsonr_key *e = malloc(cap * sizeof *e);
  if (!e) return oom(j);
  memcpy(e, j->ents, j->nents * sizeof *e);
  if (j->ents != j->ent_inl) free(j->ents);
  j->ents = e;
  j->cents = cap;
  return AS_OK;
}

/* Adds a key of the current object; an error naming it if it is there already. */
static AS_MUSTCHECK int level_add(as_jsonr *j, as_jsonr_level *lv, const char *k, size_t n, bool in_tmp) {
  const as_jsonr_key *ent = j->ents + lv->ent_mark;
  char sh[80];
  if (lv->index) {
    for (uint32_t h = key_hash(k, n) & (lv->icap - 1); lv->index[h]; h = (h + 1) & (lv->icap - 1)) {
      const as_jsonr_key *e = &ent[lv->index[h] - 1];
      if (e->n == n && memcmp(e->p, k, n) == 0) return fail(j, "duplicate key %s", show(k, n, sh));
    }
  } else {
    for (uint32_t i = 0; i < lv->n; i++) /* length and first byte before a memcmp call */
      if (ent[i].n == n && (n == 0 || (ent[i].p[0] == k[0] && memcmp(ent[i].p, k, n) == 0)))
        return fail(j, "duplicate key %s", show(k, n, sh));
  }
  if (in_tmp && !(k = arena_copy(j, k, n))) return oom(j);
  if (j->nents == j->cents && grow_entries(j) != AS_OK) return AS_ERR;
  j->ents[j->nents++] = (as_jsonr_key){k, n};
  lv->n++;
  if (lv->n > 16 && (!lv->index || lv->n * 2 > lv->icap)) return level_index(j, lv);
  if (lv->index) {
    uint32_t h = key_hash(k, n) & (lv->icap - 1);
    while (lv->index[h]) h = (h + 1) & (lv->icap - 1);
    lv->index[h] = lv->n;
  }
  return AS_OK;
}

void as_jsonr_level_begin(as_jsonr *j, as_jsonr_level *lv) {
  lv->ent_mark = j->nents;
  lv->n = 0;
  lv->index = NULL;
  lv->icap = 0;
}

void as_jsonr_level_end(as_jsonr *j, as_jsonr_level *lv) {
  free(lv->index);
  lv->index = NULL;
  j->nents = lv->ent_mark;
}

/* ================================================================ wrappers */

enum { F_STR, F_U32, F_OID };

typedef struct field {
  const char *name;
  int kind;
  const char *s; /* F_STR: the string; F_OID: the 24 hex digits */
  size_t n;
  uint32_t u;    /* F_U32 */
  bool seen;
  as_buf buf;    /* decoded escapes */
} field;

static void fields_free(field *f, int nf) {
  for (int i = 0; i < nf; i++) as_buf_free(&f[i].buf);
}

static AS_MUSTCHECK int field_value(as_jsonr *j, field *f, int depth);

/* An object whose members are exactly the fields f[0..nf) in any order. */
static AS_MUSTCHECK int fields(as_jsonr *j, field *f, int nf, int depth) {
  if (!expect(j, '{')) return fail(j, "expected an object");
  for (int got = 0; got < nf; got++) {
    const char *k;
    size_t kl;
    as_buf kb = AS_BUF_INIT;
    int rc = string_in(j, &k, &kl, &kb), i = 0;
    for (; rc == AS_OK && i < nf; i++)
      if (!f[i].seen && strlen(f[i].name) == kl && memcmp(f[i].name, k, kl) == 0) break;
    as_buf_free(&kb);
    if (rc != AS_OK) return rc;
    if (i == nf) return fail(j, "unexpected member");
    if (!expect(j, ':')) return fail(j, "expected ':'");
    if ((rc = field_value(j, &f[i], depth)) != AS_OK) return rc;
    f[i].seen = true;
    if (got + 1 < nf && !expect(j, ',')) return fail(j, "member missing");
  }
  return expect(j, '}') ? AS_OK : fail(j, "expected '}'");
}

static AS_MUSTCHECK int field_value(as_jsonr *j, field *f, int depth) {
  if (f->kind == F_STR) return string_in(j, &f->s, &f->n, &f->buf);
  if (f->kind == F_OID) {
    field oid = {"$oid", F_STR};
    int rc = fields(j, &oid, 1, depth + 1);
    f->s = oid.s;
    f->n = oid.n;
    f->buf = oid.buf; /* owns the decoded text, if any */
    if (rc == AS_OK && (oid.n != 24 || !bson_oid_is_valid(oid.s, 24))) rc = fail(j, "not an ObjectId");
    return rc;
  }
  as_jsonr_ws(j);
  bool real;
  size_t n = number_len(j->p, j->end, &real);
  int64_t v;
  if (n == 0 || real || !as_jsonr_parse_i64(j->p, n, &v) || v < 0 || v > UINT32_MAX)
    return fail(j, "expected an integer 0..4294967295");
  j->p += n;
  f->u = (uint32_t)v;
  return AS_OK;
}

static AS_MUSTCHECK int put_oid_hex(as_jsonr *j, as_buf *dst, const char *key, size_t kl, const char *hex, size_t n) {
  char h[25];
  if (n != 24 || !bson_oid_is_valid(hex, 24)) return fail(j, "not an ObjectId");
  memcpy(h, hex, 24);
  h[24] = '\0';
  bson_oid_t oid;
  bson_oid_init_from_string(&oid, h);
  return rw_bytes(dst, BSON_TYPE_OID, key, kl, oid.bytes, 12) ? oom(j) : AS_OK;
}

/* {"$scope": {...}, "$code": "..."} in either order (j->p after the first key's ':'). */
static AS_MUSTCHECK int code_with_scope(as_jsonr *j, as_buf *dst, const char *key, size_t kl, bool code_first, int depth) {
  as_buf scope = AS_BUF_INIT, codebuf = AS_BUF_INIT;
  const char *code = NULL, *k;
  size_t n = 0, klen;
  int rc = AS_OK;
  for (int part = 0; part < 2 && rc == AS_OK; part++) {
    if (part == 1) {
      if (!expect(j, ',')) { rc = fail(j, "\"$code\" and \"$scope\" go together"); break; }
      if ((rc = string_in(j, &k, &klen, &j->tmp)) != AS_OK) break;
      if (klen != (code_first ? 6u : 5u) || memcmp(k, code_first ? "$scope" : "$code", klen) != 0) {
        rc = fail(j, "\"$code\" and \"$scope\" go together");
        break;
      }
      if (!expect(j, ':')) { rc = fail(j, "expected ':'"); break; }
    }
    if ((part == 0) == code_first) {
      rc = string_in(j, &code, &n, &codebuf);
    } else if (!peek(j, '{')) {
      rc = fail(j, "\"$scope\" must be a document");
    } else {
      j->p++;
      rc = room(&scope, 4) ? oom(j) : AS_OK;
      if (rc == AS_OK) {
        scope.len = 4;
        rc = as_jsonr_members(j, &scope, false, depth + 1);
      }
      if (rc == AS_OK && rw_end(&scope, 0)) rc = oom(j);
    }
  }
  if (rc == AS_OK && !expect(j, '}')) rc = fail(j, "expected '}' after \"$code\" and \"$scope\"");
  if (rc == AS_OK && rw_codewscope(dst, key, kl, code, n, scope.data, scope.len)) rc = oom(j);
  as_buf_free(&scope);
  as_buf_free(&codebuf);
  return rc;
}

/* Wrappers whose value is a string: {"$x": "..."}. Returns 1 if wk is not one of them. */
static AS_MUSTCHECK int string_wrapper(as_jsonr *j, as_buf *dst, const char *key, size_t kl, const char *wk, size_t wl) {
#define IS(lit) (wl == sizeof(lit) - 1 && memcmp(wk, lit, wl) == 0)
  int t = IS("$oid") ? 1 : IS("$numberLong") ? 2 : IS("$numberInt") ? 3 : IS("$numberDouble") ? 4
          : IS("$numberDecimal") ? 5 : IS("$symbol") ? 6 : 0;
#undef IS
  if (t == 0) return 1;
  const char *s;
  size_t n;
  int rc = string_in(j, &s, &n, &j->tmp);
  if (rc != AS_OK) return rc;
  int64_t v;
  double d;
  bson_decimal128_t dec;
  switch (t) {
    case 1: return put_oid_hex(j, dst, key, kl, s, n);
    case 2:
      if (!as_jsonr_parse_i64(s, n, &v)) return fail(j, "not an int64");
      return rw_64(dst, BSON_TYPE_INT64, key, kl, (uint64_t)v) ? oom(j) : AS_OK;
    case 3:
      if (!as_jsonr_parse_i64(s, n, &v) || v < INT32_MIN || v > INT32_MAX) return fail(j, "not an int32");
      return rw_i32(dst, key, kl, (int32_t)v) ? oom(j) : AS_OK;
    case 4:
      if (!double_text(s, n, &d)) return fail(j, "not a double");
      return rw_double(dst, key, kl, d) ? oom(j) : AS_OK;
    case 5: {
      if (!as_dec128_from_str(s, n, &dec)) return fail(j, "not a Decimal128");
      return rw_dec128(dst, key, kl, &dec) ? oom(j) : AS_OK;
    }
    default: return rw_str(dst, BSON_TYPE_SYMBOL, key, kl, s, n) ? oom(j) : AS_OK;
  }
}

static AS_MUSTCHECK int binary_wrapper(as_jsonr *j, as_buf *dst, const char *key, size_t kl, int depth) {
  field f[2] = {{"base64", F_STR}, {"subType", F_STR}};
  as_buf raw = AS_BUF_INIT;
  int rc = fields(j, f, 2, depth);
  unsigned long sub = 0;
  if (rc == AS_OK) {
    char st[3] = {0};
    char *end = NULL;
    if (f[1].n >= 1 && f[1].n <= 2) {
      memcpy(st, f[1].s, f[1].n);
      sub = strtoul(st, &end, 16);
    }
    if (!end || *end || st[0] == '+' || st[0] == '-' || st[0] == ' ') rc = fail(j, "subType is not 1-2 hex digits");
  }
  if (rc == AS_OK) {
    int b = as_base64_decode(f[0].s, f[0].n, &raw);
    if (b == AS_ERR) rc = oom(j);
    else if (b != AS_OK) rc = fail(j, "bad base64");
  }
  if (rc == AS_OK && rw_binary(dst, key, kl, (uint8_t)sub, raw.data, raw.len)) rc = oom(j);
  as_buf_free(&raw);
  fields_free(f, 2);
  return rc;
}

/* Wrappers whose value is an object or a literal. Returns 1 if wk is not one of them. */
static AS_MUSTCHECK int other_wrapper(as_jsonr *j, as_buf *dst, const char *key, size_t kl, const char *wk, size_t wl,
                         int depth) {
#define IS(lit) (wl == sizeof(lit) - 1 && memcmp(wk, lit, wl) == 0)
  int rc;
  if (IS("$binary")) return binary_wrapper(j, dst, key, kl, depth);
  if (IS("$date")) {
    as_jsonr_ws(j);
    int64_t ms = 0;
    if (peek(j, '{')) {
      field f = {"$numberLong", F_STR};
      rc = fields(j, &f, 1, depth);
      if (rc == AS_OK && !as_jsonr_parse_i64(f.s, f.n, &ms)) rc = fail(j, "not an int64");
      as_buf_free(&f.buf);
      if (rc != AS_OK) return rc;
    } else {
      bool real;
      size_t n = number_len(j->p, j->end, &real);
      if (n == 0 || real || !as_jsonr_parse_i64(j->p, n, &ms)) return fail(j, "expected {\"$numberLong\":\"ms\"}");
      j->p += n;
    }
    return rw_64(dst, BSON_TYPE_DATE_TIME, key, kl, (uint64_t)ms) ? oom(j) : AS_OK;
  }
  if (IS("$timestamp")) {
    field f[2] = {{"t", F_U32}, {"i", F_U32}};
    if ((rc = fields(j, f, 2, depth)) != AS_OK) return rc;
    return rw_64(dst, BSON_TYPE_TIMESTAMP, key, kl, (uint64_t)f[0].u << 32 | f[1].u) ? oom(j) : AS_OK;
  }
  if (IS("$regularExpression")) {
    field f[2] = {{"pattern", F_STR}, {"options", F_STR}};
    rc = fields(j, f, 2, depth);
    if (rc == AS_OK && (memchr(f[0].s, 0, f[0].n) || memchr(f[1].s, 0, f[1].n))) rc = fail(j, "NUL in a regex");
    if (rc == AS_OK && rw_regex(dst, key, kl, f[0].s, f[0].n, f[1].s, f[1].n)) rc = oom(j);
    fields_free(f, 2);
    return rc;
  }
  if (IS("$dbPointer")) {
    field f[2] = {{"$ref", F_STR}, {"$id", F_OID}};
    rc = fields(j, f, 2, depth);
    bson_oid_t oid;
    if (rc == AS_OK) {
      char h[25];
      memcpy(h, f[1].s, 24);
      h[24] = '\0';
      bson_oid_init_from_string(&oid, h);
      if (rw_dbpointer(dst, key, kl, f[0].s, f[0].n, oid.bytes)) rc = oom(j);
    }
    fields_free(f, 2);
    return rc;
  }
  as_jsonr_ws(j);
  if (IS("$minKey") || IS("$maxKey")) {
    if (j->end - j->p < 1 || *j->p != '1' || (j->end - j->p > 1 && j->p[1] >= '0' && j->p[1] <= '9'))
      return fail(j, "expected 1");
    j->p++;
    return rw_byte(dst, wk[2] == 'i' ? BSON_TYPE_MINKEY : BSON_TYPE_MAXKEY, key, kl, -1) ? oom(j) : AS_OK;
  }
  if (IS("$undefined")) {
    if (j->end - j->p < 4 || memcmp(j->p, "true", 4) != 0) return fail(j, "expected true");
    j->p += 4;
    return rw_byte(dst, BSON_TYPE_UNDEFINED, key, kl, -1) ? oom(j) : AS_OK;
  }
  return 1;
#undef IS
}

/* A wrapper object: j->p after the ':' of its first key wk (one '$'). Consumes the '}'. */
static AS_MUSTCHECK int wrapper(as_jsonr *j, as_buf *dst, const char *key, size_t kl, const char *wk, size_t wl, const char *wstart,
                   int depth) {
  char sh[80];
  if ((wl == 5 && memcmp(wk, "$code", 5) == 0) || (wl == 6 && memcmp(wk, "$scope", 6) == 0)) {
    bool code_first = wl == 5;
    if (code_first) { /* {"$code": "..."} alone, or with "$scope" */
      const char *s;
      size_t n;
      as_buf cb = AS_BUF_INIT;
      const char *mark = j->p;
      int rc = string_in(j, &s, &n, &cb);
      if (rc == AS_OK && peek(j, '}')) {
        j->p++;
        rc = rw_str(dst, BSON_TYPE_CODE, key, kl, s, n) ? oom(j) : AS_OK;
        as_buf_free(&cb);
        return rc;
      }
      as_buf_free(&cb);
      if (rc != AS_OK) return rc;
      j->p = mark;
    }
    return code_with_scope(j, dst, key, kl, code_first, depth);
  }
  as_jsonr_ws(j);
  const char *value = j->p;
  int rc = string_wrapper(j, dst, key, kl, wk, wl);
  if (rc == 1) rc = other_wrapper(j, dst, key, kl, wk, wl, depth);
  if (rc == 1) {
    rc = fail(j, "unknown wrapper key %s (a document key starting with '$' is written with one more '$')",
              show(wk, wl, sh));
    j->at = wstart;
    return rc;
  }
  if (rc != AS_OK) {
    char why[sizeof j->msg];
    snprintf(why, sizeof why, "%s", j->msg);
    j->msg[0] = '\0';
    fail(j, "malformed %s wrapper: %s", show(wk, wl, sh), why);
    j->at = value; /* where the wrapper's value starts */
    return rc;
  }
  if (!expect(j, '}')) return fail(j, "%s wrapper must be alone in its object", show(wk, wl, sh));
  return AS_OK;
}

/* ================================================================ values */

/* A member name and its ':': the decoded text (in j->tmp, *in_tmp set, or in the JSON text). */
static AS_MUSTCHECK int member_key(as_jsonr *j, const char **k, size_t *kl, bool *in_tmp) {
  as_jsonr_ws(j);
  const char *start = j->p;
  int rc = string_in(j, k, kl, &j->tmp);
  if (rc != AS_OK) return rc;
  *in_tmp = *kl > 0 && *k == (const char *)j->tmp.data;
  if (*in_tmp && memchr(*k, '\0', *kl)) { /* only an escape makes one */
    rc = fail(j, "NUL in a key");
    j->at = start;
    return rc;
  }
  if (!expect(j, ':')) return fail(j, "expected ':'");
  return AS_OK;
}

/* A key of a document (not a wrapper position): "$$x" -> "$x"; "$x" is an error. */
static AS_MUSTCHECK int document_key(as_jsonr *j, const char **k, size_t *kl) {
  if (*kl > 0 && (*k)[0] == '$') {
    char sh[80];
    if (*kl < 2 || (*k)[1] != '$')
      return fail(j, "key %s: a document key starting with '$' is written with one more '$' "
                     "(one '$' starts a wrapper, which must be alone in its object)", show(*k, *kl, sh));
    (*k)++;
    (*kl)--;
  }
  return AS_OK;
}

int as_jsonr_member(as_jsonr *j, as_jsonr_level *lv, const char **key, size_t *kl, bool *in_tmp) {
  as_jsonr_ws(j);
  const char *start = j->p;
  int rc = 1;
  if (j->p < j->end && *j->p == '"') { /* the common case inline: plain ASCII, ':' right after */
    const uint8_t *e = (const uint8_t *)j->end, *p = scan_plain((const uint8_t *)j->p + 1, e);
    if (p < e && *p == '"' && e - p > 1 && p[1] == ':') {
      *key = start + 1;
      *kl = (size_t)((const char *)p - *key);
      *in_tmp = false;
      j->p = (const char *)p + 2;
      rc = AS_OK;
    }
  }
  if (rc == 1) rc = member_key(j, key, kl, in_tmp);
  if (rc == AS_OK && (rc = document_key(j, key, kl)) != AS_OK) j->at = start; /* errors about the key point at it */
  if (rc == AS_OK && (rc = level_add(j, lv, *key, *kl, *in_tmp)) != AS_OK && rc != AS_ERR) j->at = start;
  return rc;
}

/* One member's value under its key; a key decoded into j->tmp is copied first (the value
 * may reuse j->tmp). */
static AS_MUSTCHECK int member_value(as_jsonr *j, as_buf *dst, const char *key, size_t kl, bool in_tmp, int depth) {
  if (!in_tmp) return as_jsonr_value(j, dst, key, kl, depth); /* the common case */
  char keybuf[256];
  char *heap = NULL;
  {
    if (kl <= sizeof keybuf) {
      key = memcpy(keybuf, key, kl);
    } else {
      if (!(heap = malloc(kl))) return oom(j);
      key = memcpy(heap, key, kl);
    }
  }
  int rc = as_jsonr_value(j, dst, key, kl, depth);
  free(heap);
  return rc;
}

int as_jsonr_members(as_jsonr *j, as_buf *dst, bool arr, int depth) {
  if (depth > AS_JSON_MAX_DEPTH) return fail(j, "nested too deep");
  char close = arr ? ']' : '}';
  if (expect(j, close)) return AS_OK;
  as_jsonr_level lv;
  as_jsonr_level_begin(j, &lv);
  int rc = AS_OK;
  for (uint32_t idx = 0; rc == AS_OK; idx++) {
    char kb[16];
    const char *key = kb;
    size_t kl;
    bool in_tmp = false;
    if (arr) kl = as_idx_key(idx, kb);
    else if ((rc = as_jsonr_member(j, &lv, &key, &kl, &in_tmp)) != AS_OK) break;
    if ((rc = member_value(j, dst, key, kl, in_tmp, depth)) != AS_OK) break;
    if (expect(j, ',')) continue;
    if (!expect(j, close)) rc = fail(j, arr ? "expected ',' or ']'" : "expected ',' or '}'");
    break;
  }
  as_jsonr_level_end(j, &lv);
  return rc;
}

/* '{' at j->p: a wrapper (its first key has one '$') or a document. */
static AS_MUSTCHECK int object(as_jsonr *j, as_buf *dst, const char *key, size_t kl, int depth) {
  const char *open = ++j->p;
  as_jsonr_ws(j);
  /* a wrapper's first key starts with '$' (or an escape that may make one): only then decode it */
  bool maybe = j->end - j->p >= 2 && j->p[0] == '"' && (j->p[1] == '$' || j->p[1] == '\\');
  if (maybe) {
    const char *wk;
    size_t wl;
    bool in_tmp;
    const char *wstart = j->p;
    int rc = member_key(j, &wk, &wl, &in_tmp);
    if (rc != AS_OK) return rc;
    if (wl >= 1 && wk[0] == '$' && (wl == 1 || wk[1] != '$')) {
      char wkey[32];
      if (wl >= sizeof wkey) wl = sizeof wkey - 1; /* no wrapper key is that long: reported unknown */
      memcpy(wkey, wk, wl);
      return wrapper(j, dst, key, kl, wkey, wl, wstart, depth);
    }
    j->p = open; /* a document: read from its start */
  }
  size_t at;
  if (rw_begin(dst, BSON_TYPE_DOCUMENT, key, kl, &at)) return oom(j);
  int rc = as_jsonr_members(j, dst, false, depth + 1);
  if (rc == AS_OK && rw_end(dst, at)) rc = oom(j);
  return rc;
}

int as_jsonr_value(as_jsonr *j, as_buf *dst, const char *key, size_t kl, int depth) {
  if (depth > AS_JSON_MAX_DEPTH) return fail(j, "nested too deep");
  as_jsonr_ws(j);
  if (j->p >= j->end) return fail(j, "unexpected end");
  char c = *j->p;
  int w;
  if (c == '{') return object(j, dst, key, kl, depth);
  if (c == '[') {
    size_t at;
    j->p++;
    if (rw_begin(dst, BSON_TYPE_ARRAY, key, kl, &at)) return oom(j);
    int rc = as_jsonr_members(j, dst, true, depth + 1);
    if (rc == AS_OK && rw_end(dst, at)) rc = oom(j);
    return rc;
  }
  if (c == '"') {
    const char *s;
    size_t n;
    int rc = string_in(j, &s, &n, &j->tmp);
    if (rc != AS_OK) return rc;
    w = rw_str(dst, BSON_TYPE_UTF8, key, kl, s, n);
  } else if (c == 't' && j->end - j->p >= 4 && memcmp(j->p, "true", 4) == 0) {
    j->p += 4;
    w = rw_byte(dst, BSON_TYPE_BOOL, key, kl, 1);
  } else if (c == 'f' && j->end - j->p >= 5 && memcmp(j->p, "false", 5) == 0) {
    j->p += 5;
    w = rw_byte(dst, BSON_TYPE_BOOL, key, kl, 0);
  } else if (c == 'n' && j->end - j->p >= 4 && memcmp(j->p, "null", 4) == 0) {
    j->p += 4;
    w = rw_byte(dst, BSON_TYPE_NULL, key, kl, -1);
  } else if (c == '-' || (c >= '0' && c <= '9')) {
    return number(j, dst, key, kl);
  } else {
    return fail(j, "unexpected character");
  }
  return w == AS_OK ? AS_OK : oom(j);
}

int as_jsonr_end(as_jsonr *j) {
  as_jsonr_ws(j);
  return j->p == j->end ? AS_OK : fail(j, "text after the value");
}

/* ================================================================ entry points */

int as_jsonr_top(as_jsonr *j, as_buf *raw, bool *is_array) {
  as_jsonr_ws(j);
  if (j->p >= j->end || (*j->p != '{' && *j->p != '[')) return fail(j, "AS-JSON must be an object or an array");
  bool arr = *j->p++ == '[';
  size_t at = raw->len;
  if (room(raw, 4)) return oom(j);
  raw->len += 4;
  int rc = as_jsonr_members(j, raw, arr, 1);
  if (rc == AS_OK) rc = as_jsonr_end(j);
  if (rc == AS_OK && rw_end(raw, at)) rc = oom(j);
  if (rc == AS_OK && is_array) *is_array = arr;
  return rc;
}

int as_asjson_to_bson(const char *json, size_t len, bson_t *out, bool *is_array, as_error *err) {
  bson_init(out);
  as_jsonr j;
  as_buf raw = AS_BUF_INIT;
  as_jsonr_init(&j, json, len);
  int rc = as_jsonr_top(&j, &raw, is_array);
  if (rc == AS_OK) {
    uint8_t *p = bson_reserve_buffer(out, (uint32_t)raw.len);
    if (p) memcpy(p, raw.data, raw.len);
    else rc = oom(&j);
  }
  if (rc != AS_OK) {
    rc = as_jsonr_error(&j, rc, err);
    bson_reinit(out);
  }
  as_buf_free(&raw);
  as_jsonr_free(&j);
  return rc;
}

int as_asjson_value_to_bson(bson_t *dst, const char *key, size_t kl, const char *json, size_t len, as_error *err) {
  as_jsonr j;
  as_buf raw = AS_BUF_INIT;
  as_jsonr_init(&j, json, len);
  int rc = room(&raw, 4) ? oom(&j) : AS_OK;
  if (rc == AS_OK) {
    raw.len = 4;
    rc = as_jsonr_value(&j, &raw, key, kl, 0);
  }
  if (rc == AS_OK) rc = as_jsonr_end(&j);
  if (rc == AS_OK && rw_end(&raw, 0)) rc = oom(&j);
  if (rc == AS_OK) {
    /* append the element: dst's bytes before its final NUL, via a static view */
    bson_t view;
    if (!bson_init_static(&view, raw.data, raw.len) || !bson_concat(dst, &view)) rc = oom(&j);
  }
  rc = as_jsonr_error(&j, rc, err);
  as_buf_free(&raw);
  as_jsonr_free(&j);
  return rc;
}
