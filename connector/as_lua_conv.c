/* as_lua_conv.c — values between rows and Lua for conflict scripts (the rules are in as_lua.h):
 * rows -> tables, returned values -> typed values, JSON text <-> Lua tables, and the ctx
 * helpers number/cmp/array/object.
 *
 * Decisions:
 * - JSON is decoded by a small parser of its own (not jansson): integers beyond int64 and any
 *   number spelling must survive, and it pushes straight onto the Lua stack. Integers that fit
 *   int64 become Lua integers, everything else with '.', exponent or beyond int64 a float.
 * - A returned json value is first compared (as Lua values: same types, integer vs float,
 *   array vs object) with mine's and theirs's value of that column, decoded again; when equal,
 *   that side's text is kept byte for byte. Only a changed value is encoded, so an untouched
 *   jsonb "1.50" or a key order never changes.
 * - Memory: C allocations made while Lua may raise an error (out of memory) are owned at once
 *   by the caller's row or the handle's buffer; temporaries live on the Lua stack. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_lua_int.h"

/* ------------------------------------------------------------------ rows -> Lua */

static const char hexd[] = "0123456789abcdef";

static void digits(char *p, unsigned v, int n) {
  for (int i = n - 1; i >= 0; i--) {
    p[i] = (char)('0' + v % 10);
    v /= 10;
  }
}

/* "YYYY-MM-DD" into p (10 bytes, no NUL); days within AS_DATE_MIN_DAYS..AS_DATE_MAX_DAYS. */
static void format_date(int64_t days, char *p) {
  int64_t y;
  unsigned m, d;
  as_civil_from_days(days, &y, &m, &d);
  digits(p, (unsigned)y, 4);
  p[4] = '-';
  digits(p + 5, m, 2);
  p[7] = '-';
  digits(p + 8, d, 2);
}

bool asl_format_ts(int64_t us, char *out) {
  if (us < AS_TS_MIN_US || us > AS_TS_MAX_US) return false;
  int64_t days = us / 86400000000LL, rem = us % 86400000000LL;
  if (rem < 0) {
    rem += 86400000000LL;
    days--;
  }
  unsigned secs = (unsigned)(rem / 1000000);
  format_date(days, out);
  out[10] = 'T';
  digits(out + 11, secs / 3600, 2);
  out[13] = ':';
  digits(out + 14, secs / 60 % 60, 2);
  out[16] = ':';
  digits(out + 17, secs % 60, 2);
  out[19] = '.';
  digits(out + 20, (unsigned)(rem % 1000000), 6);
  out[26] = 'Z';
  out[27] = '\0';
  return true;
}

static void push_hex(lua_State *L, const uint8_t *p, size_t n, bool uuid) {
  char buf[40];
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (uuid && (i == 4 || i == 6 || i == 8 || i == 10)) buf[o++] = '-';
    buf[o++] = hexd[p[i] >> 4];
    buf[o++] = hexd[p[i] & 15];
  }
  lua_pushlstring(L, buf, o);
}

static void json_decode(lua_State *L, as_lua *h, const char *s, size_t n, const char *col,
                        bool jnull);

void asl_push_value(lua_State *L, as_lua *h, const as_column *c, const as_value *v) {
  char buf[40];
  switch (v->type) {
    case AS_T_NULL: lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_null); break;
    case AS_T_BOOL: lua_pushboolean(L, v->u.b); break;
    case AS_T_INT64: lua_pushinteger(L, (lua_Integer)v->u.i); break;
    case AS_T_DOUBLE: lua_pushnumber(L, (lua_Number)v->u.d); break;
    case AS_T_DECIMAL:
    case AS_T_TEXT:
    case AS_T_BYTES: lua_pushlstring(L, v->u.s.ptr, v->u.s.len); break;
    case AS_T_UUID: push_hex(L, v->u.uuid, 16, true); break;
    case AS_T_OBJECTID: push_hex(L, v->u.oid, 12, false); break;
    case AS_T_TIMESTAMP:
      if (!asl_format_ts(v->u.ts_us, buf)) {
        luaL_error(L, "column \"%s\": timestamp %" PRId64 " µs is outside years 0001..9999",
                   c->name, v->u.ts_us);
      }
      lua_pushlstring(L, buf, 27);
      break;
    case AS_T_DATE: {
      if (v->u.days < AS_DATE_MIN_DAYS || v->u.days > AS_DATE_MAX_DAYS) {
        luaL_error(L, "column \"%s\": date %d is outside years 0001..9999", c->name,
                   (int)v->u.days);
      }
      format_date(v->u.days, buf);
      lua_pushlstring(L, buf, 10);
      break;
    }
    case AS_T_JSON:
      json_decode(L, h, v->u.s.ptr, v->u.s.len, c->name, as_column_json_null(c));
      break;
    default: luaL_error(L, "column \"%s\": bad value type %d", c->name, (int)v->type);
  }
}

/* ------------------------------------------------------------------ row proxies */

/* The C row behind the proxy at 1 when it belongs to the call in progress, else NULL. */
static const as_row *proxy_row(lua_State *L, as_lua *h, int side) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_cur);
  lua_rawgeti(L, -1, side + 1);
  bool current = h->call && lua_rawequal(L, -1, 1);
  lua_pop(L, 2);
  return current ? h->call->rows[side] : NULL;
}

/* Column index of the key at 2, or -1. */
static int key_column(lua_State *L, as_lua *h) {
  if (lua_type(L, 2) != LUA_TSTRING) return -1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_colidx);
  lua_pushvalue(L, 2);
  int i = lua_rawget(L, -2) == LUA_TNUMBER ? (int)lua_tointeger(L, -1) : -1;
  lua_pop(L, 2);
  return i;
}

static int row_index(lua_State *L) {
  as_lua *h = asl_handle(L);
  int side = (int)lua_tointeger(L, lua_upvalueindex(1));
  int i = key_column(L, h);
  if (i < 0) return 0;
  const as_row *r = proxy_row(L, h, side);
  if (!r) return luaL_error(L, "a row read after the call it was given to ended");
  uint8_t *mat = h->mat + (size_t)side * h->s->ncols;
  if (mat[i]) return 0; /* the script removed it */
  mat[i] = 1;
  if ((size_t)i >= r->n || !r->set[i]) return 0;
  asl_push_value(L, h, &h->s->cols[i], &r->v[i]);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);
  return 1;
}

static int row_newindex(lua_State *L) {
  as_lua *h = asl_handle(L);
  int side = (int)lua_tointeger(L, lua_upvalueindex(1));
  int i = key_column(L, h);
  if (i >= 0 && proxy_row(L, h, side)) h->mat[(size_t)side * h->s->ncols + (size_t)i] = 1;
  lua_settop(L, 3);
  lua_rawset(L, 1);
  return 0;
}

static int row_pairs(lua_State *L) {
  as_lua *h = asl_handle(L);
  int side = (int)lua_tointeger(L, lua_upvalueindex(1));
  const as_row *r = proxy_row(L, h, side);
  if (r) {
    uint8_t *mat = h->mat + (size_t)side * h->s->ncols;
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_names);
    for (size_t i = 0; i < h->s->ncols; i++) {
      if (mat[i]) continue;
      mat[i] = 1;
      if (i >= r->n || !r->set[i]) continue;
      lua_rawgeti(L, -1, (lua_Integer)i + 1);
      asl_push_value(L, h, &h->s->cols[i], &r->v[i]);
      lua_rawset(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_next);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

void asl_setup_rows(lua_State *L, as_lua *h) {
  static const struct {
    const char *name;
    lua_CFunction fn;
  } mm[] = {{"__index", row_index}, {"__newindex", row_newindex}, {"__pairs", row_pairs}};
  for (int side = 0; side < ASL_NSIDES; side++) {
    lua_createtable(L, 0, 4);
    for (size_t k = 0; k < sizeof mm / sizeof mm[0]; k++) {
      lua_pushinteger(L, side);
      lua_pushcclosure(L, mm[k].fn, 1);
      lua_setfield(L, -2, mm[k].name);
    }
    lua_pushliteral(L, "row");
    lua_setfield(L, -2, "__metatable");
    h->r_rowmt[side] = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_createtable(L, ASL_NSIDES, 0);
  for (int side = 0; side < ASL_NSIDES; side++) {
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, side + 1);
  }
  h->r_cur = luaL_ref(L, LUA_REGISTRYINDEX);
}

void asl_push_proxy(lua_State *L, as_lua *h, int side) {
  lua_createtable(L, 0, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_rowmt[side]);
  lua_setmetatable(L, -2);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_cur);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, side + 1);
  lua_pop(L, 1);
}

int asl_proxy_side(lua_State *L, as_lua *h, int idx) {
  if (!lua_getmetatable(L, idx)) return -1;
  int side = -1;
  for (int k = 0; k < ASL_NSIDES && side < 0; k++) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_rowmt[k]);
    if (lua_rawequal(L, -1, -2)) side = k;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return side;
}

/* ------------------------------------------------------------------ JSON text -> Lua */

typedef struct jdec {
  lua_State *L;
  as_lua *h;
  const char *start, *p, *end;
  const char *col;
  int depth;
  const char *numtok; /* the last value was a number spelled unlike the encoder would */
  size_t numlen;
} jdec;

static void jd_fail(jdec *d, const char *what) {
  luaL_error(d->L, "column \"%s\": invalid JSON at offset %d: %s", d->col,
             (int)(d->p - d->start), what);
}

static void jd_ws(jdec *d) {
  while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r')) {
    d->p++;
  }
}

static int hex4(const char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    int x = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (x < 0) return -1;
    v = v << 4 | x;
  }
  return v;
}

/* The JSON string at *pp (at its opening quote) -> *s, *n: the bytes in the text itself when
 * it has no escapes, else unescaped into b. *pp moves past the closing quote. NULL: the
 * reason it is not a valid string. */
static const char *str_token(const char **pp, const char *end, as_buf *b, const char **s,
                               size_t *n) {
  const char *p = *pp + 1, *start = p;
  while (p < end && *p != '"' && *p != '\\') {
    if ((unsigned char)*p < 0x20) return "control character in string";
    p++;
  }
  if (p >= end) return "unterminated string";
  if (*p == '"') {
    *s = start;
    *n = (size_t)(p - start);
    *pp = p + 1;
    return NULL;
  }
  as_buf_reset(b);
  if (as_buf_append(b, start, (size_t)(p - start)) != AS_OK) return "out of memory";
  while (p < end && *p != '"') {
    char c = *p++, o = 0;
    if ((unsigned char)c < 0x20) return "control character in string";
    if (c != '\\') {
      if (as_buf_putc(b, (uint8_t)c) != AS_OK) return "out of memory";
      continue;
    }
    if (p >= end) return "unterminated string";
    c = *p++;
    switch (c) {
      case '"': case '\\': case '/': o = c; break;
      case 'b': o = '\b'; break;
      case 'f': o = '\f'; break;
      case 'n': o = '\n'; break;
      case 'r': o = '\r'; break;
      case 't': o = '\t'; break;
      case 'u': {
        int cp = end - p >= 4 ? hex4(p) : -1;
        if (cp < 0) return "bad \\u escape";
        p += 4;
        if (cp >= 0xD800 && cp < 0xDC00) {
          int lo = end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2) : -1;
          if (lo < 0xDC00 || lo > 0xDFFF) return "lone surrogate";
          p += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp < 0xE000) {
          return "lone surrogate";
        }
        if (as_buf_put_utf8(b, (uint32_t)cp) != AS_OK) return "out of memory";
        continue;
      }
      default: return "bad escape";
    }
    if (as_buf_putc(b, (uint8_t)o) != AS_OK) return "out of memory";
  }
  if (p >= end) return "unterminated string";
  *s = (const char *)b->data;
  *n = b->len;
  *pp = p + 1;
  return NULL;
}

static void jd_string(jdec *d) {
  const char *s;
  size_t n;
  const char *why = str_token(&d->p, d->end, &d->h->sbuf, &s, &n);
  if (why) jd_fail(d, why);
  lua_pushlstring(d->L, s, n);
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* A JSON number token -> Lua integer (no '.', no exponent, within int64) or float. */
static bool number_from_token(const char *s, size_t n, bool real, lua_Integer *iv, double *dv) {
  char small[64];
  char *tmp = n < sizeof small ? small : malloc(n + 1);
  if (!tmp) return false;
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  if (!real) {
    errno = 0;
    long long x = strtoll(tmp, NULL, 10);
    if (errno == ERANGE) real = true;
    *iv = (lua_Integer)x;
  }
  if (real) *dv = strtod(tmp, NULL);
  if (tmp != small) free(tmp);
  return !real;
}

/* The encoder's text of a number (AS-JSON: a float always has '.' or an exponent; NaN,
 * infinities and -0.0 as {"$numberDouble":...}). out >= 48 bytes; returns the length. */
static size_t number_text(bool isint, lua_Integer iv, double d, char *out) {
  if (isint) return (size_t)snprintf(out, 48, "%" PRId64, (int64_t)iv);
  const char *wrap = NULL;
  if (isnan(d)) wrap = "NaN";
  else if (isinf(d)) wrap = d > 0 ? "Infinity" : "-Infinity";
  else if (d == 0 && signbit(d)) wrap = "-0.0";
  if (wrap) return (size_t)snprintf(out, 48, "{\"$numberDouble\":\"%s\"}", wrap);
  size_t n = as_double_format(d, out);
  if (!strpbrk(out, ".eEn")) {
    memcpy(out + n, ".0", 3);
    n += 2;
  }
  return n;
}

/* Moves *pp past a JSON number token; false if the text there is not one. */
static bool scan_number(const char **pp, const char *end, bool *real) {
  const char *p = *pp;
  *real = false;
  if (p < end && *p == '-') p++;
  if (p >= end || !is_digit(*p)) return false;
  if (*p == '0') {
    p++;
  } else {
    while (p < end && is_digit(*p)) p++;
  }
  if (p < end && *p == '.') {
    *real = true;
    p++;
    if (p >= end || !is_digit(*p)) return false;
    while (p < end && is_digit(*p)) p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    *real = true;
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (p >= end || !is_digit(*p)) return false;
    while (p < end && is_digit(*p)) p++;
  }
  *pp = p;
  return true;
}

static void jd_number(jdec *d) {
  const char *s = d->p;
  bool real;
  if (!scan_number(&d->p, d->end, &real)) jd_fail(d, "bad number");
  size_t n = (size_t)(d->p - s);
  lua_Integer iv = 0;
  double dv = 0;
  bool isint = number_from_token(s, n, real, &iv, &dv);
  if (isint) {
    lua_pushinteger(d->L, iv);
  } else {
    lua_pushnumber(d->L, dv);
  }
  char text[48];
  size_t tn = number_text(isint, iv, dv, text);
  if (tn != n || memcmp(text, s, n) != 0) {
    d->numtok = s;
    d->numlen = n;
  }
}

/* Records the spelling of the number just decoded as member key (at kidx, or index i) of the
 * container at t, so that an edited container writes its untouched numbers as they were. */
static void jd_note(jdec *d, int t, int kidx, lua_Integer i) {
  lua_State *L = d->L;
  luaL_checkstack(L, 5, "JSON");
  lua_rawgeti(L, LUA_REGISTRYINDEX, d->h->r_numtext);
  lua_pushvalue(L, t);
  if (lua_rawget(L, -2) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, t);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
  if (kidx) lua_pushvalue(L, kidx);
  else lua_pushinteger(L, i);
  lua_pushlstring(L, d->numtok, d->numlen);
  lua_rawset(L, -3);
  lua_pop(L, 2);
  d->numtok = NULL;
}

static void jd_value(jdec *d);

static void jd_literal(jdec *d, const char *word, size_t n) {
  if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0) jd_fail(d, "unexpected text");
  d->p += n;
}

static void jd_array(jdec *d) {
  lua_State *L = d->L;
  d->p++;
  lua_newtable(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, d->h->r_arr_mt);
  lua_setmetatable(L, -2);
  int t = lua_gettop(L);
  jd_ws(d);
  if (d->p < d->end && *d->p == ']') {
    d->p++;
    return;
  }
  for (lua_Integer i = 1;; i++) {
    jd_value(d);
    if (d->numtok) jd_note(d, t, 0, i);
    lua_rawseti(L, t, i);
    jd_ws(d);
    if (d->p < d->end && *d->p == ',') {
      d->p++;
      continue;
    }
    if (d->p < d->end && *d->p == ']') break;
    jd_fail(d, "expected ',' or ']'");
  }
  d->p++;
}

static void jd_object(jdec *d) {
  lua_State *L = d->L;
  d->p++;
  lua_newtable(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, d->h->r_obj_mt);
  lua_setmetatable(L, -2);
  int t = lua_gettop(L);
  lua_newtable(L); /* key order */
  int ord = t + 1;
  lua_Integer nkeys = 0;
  jd_ws(d);
  if (d->p < d->end && *d->p == '}') {
    d->p++;
    lua_pop(L, 1);
    return;
  }
  for (;;) {
    jd_ws(d);
    if (d->p >= d->end || *d->p != '"') jd_fail(d, "expected a string key");
    jd_string(d);
    jd_ws(d);
    if (d->p >= d->end || *d->p != ':') jd_fail(d, "expected ':'");
    d->p++;
    lua_pushvalue(L, -1);
    if (lua_rawget(L, t) == LUA_TNIL) { /* duplicate keys: the last value wins, first place */
      lua_pushvalue(L, -2);
      lua_rawseti(L, ord, ++nkeys);
    }
    lua_pop(L, 1);
    jd_value(d);
    if (d->numtok) jd_note(d, t, lua_gettop(L) - 1, 0);
    lua_rawset(L, t);
    jd_ws(d);
    if (d->p < d->end && *d->p == ',') {
      d->p++;
      continue;
    }
    if (d->p < d->end && *d->p == '}') break;
    jd_fail(d, "expected ',' or '}'");
  }
  d->p++;
  lua_rawgeti(L, LUA_REGISTRYINDEX, d->h->r_order);
  lua_pushvalue(L, t);
  lua_pushvalue(L, ord);
  lua_rawset(L, -3);
  lua_pop(L, 2);
}

static void jd_value(jdec *d) {
  jd_ws(d);
  if (d->p >= d->end) jd_fail(d, "unexpected end");
  if (++d->depth > ASL_JSON_MAX_DEPTH) jd_fail(d, "nested too deeply");
  d->numtok = NULL;
  luaL_checkstack(d->L, 6, "JSON nesting");
  switch (*d->p) {
    case '{': jd_object(d); break;
    case '[': jd_array(d); break;
    case '"': jd_string(d); break;
    case 't': jd_literal(d, "true", 4); lua_pushboolean(d->L, 1); break;
    case 'f': jd_literal(d, "false", 5); lua_pushboolean(d->L, 0); break;
    case 'n': jd_literal(d, "null", 4); lua_rawgeti(d->L, LUA_REGISTRYINDEX, d->h->r_null); break;
    default: jd_number(d);
  }
  d->depth--;
}

/* The JSON text s as a Lua value on the stack. jnull: a whole value `null` is ctx.json_null
 * (a json column holding JSON null, which is not NULL: as_column_json_null); inside a value,
 * and in the other json columns, JSON null is ctx.null. */
static void json_decode(lua_State *L, as_lua *h, const char *s, size_t n, const char *col,
                        bool jnull) {
  jdec d = {.L = L, .h = h, .start = s, .p = s, .end = s + n, .col = col};
  jd_value(&d);
  jd_ws(&d);
  if (d.p != d.end) jd_fail(&d, "text after the value");
  if (jnull && lua_type(L, -1) == LUA_TUSERDATA) {
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_jnull);
  }
}

/* ------------------------------------------------------------------ Lua -> JSON text */

enum { K_ARRAY = 1, K_OBJECT = 2, K_MIXED = 3 };

/* Kind of the table at idx: its mark, else by its keys (empty -> array). */
static int table_kind(lua_State *L, as_lua *h, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_getmetatable(L, idx)) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_arr_mt);
    bool arr = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_obj_mt);
    bool obj = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (arr) return K_ARRAY;
    if (obj) return K_OBJECT;
  }
  lua_Integer count = 0;
  bool strings = true;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    count++;
    if (lua_type(L, -1) != LUA_TSTRING) strings = false;
  }
  if (count == 0) return K_ARRAY;
  if (strings) return K_OBJECT;
  if ((lua_Integer)lua_rawlen(L, idx) == count) return K_ARRAY;
  return K_MIXED;
}

typedef struct jenc {
  lua_State *L;
  as_lua *h;
  as_buf *b;
  size_t max;
  char *why;
  size_t whylen;
  int depth;
} jenc;

static int je_fail(jenc *e, const char *fmt, const char *detail) {
  snprintf(e->why, e->whylen, fmt, detail);
  return AS_EDATA;
}

static int je_put(jenc *e, const void *p, size_t n) {
  if (as_buf_append(e->b, p, n) != AS_OK) {
    snprintf(e->why, e->whylen, "out of memory");
    return AS_ERR;
  }
  if (e->b->len > e->max) {
    snprintf(e->why, e->whylen, "the JSON text is larger than the memory limit (%zu bytes)",
             e->max);
    return AS_EDATA;
  }
  return AS_OK;
}

/* Length of the valid UTF-8 sequence at p (1..4), 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n) {
  unsigned c = p[0];
  size_t len;
  unsigned min;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  if (n < len) return 0;
  unsigned cp = c & (0x3F >> (len - 1));
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (p[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return 0;
  return len;
}

static bool utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    size_t k = utf8_seq(p + i, n - i);
    if (!k) return false;
    i += k;
  }
  return true;
}

static int je_string(jenc *e, const char *s, size_t n) {
  if (!utf8_valid(s, n)) return je_fail(e, "%s", "a string is not valid UTF-8");
  int rc = je_put(e, "\"", 1);
  size_t run = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    if (i > run) rc = je_put(e, s + run, i - run);
    char esc[8];
    const char *m = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                  : c == '\t' ? "\\t" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
    if (!m) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      m = esc;
    }
    if (!rc) rc = je_put(e, m, strlen(m));
    run = i + 1;
  }
  if (!rc && n > run) rc = je_put(e, s + run, n - run);
  return rc ? rc : je_put(e, "\"", 1);
}

static int je_number(jenc *e, int idx) {
  char buf[48];
  bool isint = lua_isinteger(e->L, idx);
  size_t n = number_text(isint, isint ? lua_tointeger(e->L, idx) : 0,
                         isint ? 0 : (double)lua_tonumber(e->L, idx), buf);
  return je_put(e, buf, n);
}

/* A member value (at vidx) of a container whose recorded number spellings are at side (or 0):
 * a number equal to the one decoded from the recorded text is written with that text. The
 * member's key or index is at kidx. */
static int je_value(jenc *e, int idx);
static int je_member_value(jenc *e, int vidx, int side, int kidx) {
  lua_State *L = e->L;
  if (side && lua_type(L, vidx) == LUA_TNUMBER) {
    lua_pushvalue(L, kidx);
    if (lua_rawget(L, side) == LUA_TSTRING) {
      size_t n;
      const char *tok = lua_tolstring(L, -1, &n);
      bool real = strpbrk(tok, ".eE") != NULL;
      lua_Integer iv = 0;
      double dv = 0;
      bool isint = number_from_token(tok, n, real, &iv, &dv);
      bool same = isint ? lua_isinteger(L, vidx) && lua_tointeger(L, vidx) == iv
                        : !lua_isinteger(L, vidx) && (double)lua_tonumber(L, vidx) == dv;
      if (same) {
        int rc = je_put(e, tok, n);
        lua_pop(L, 1);
        return rc;
      }
    }
    lua_pop(L, 1);
  }
  return je_value(e, vidx);
}

/* Pushes the recorded number spellings of the container at t (a table or nil). */
static int push_numtext(jenc *e, int t) {
  lua_rawgeti(e->L, LUA_REGISTRYINDEX, e->h->r_numtext);
  lua_pushvalue(e->L, t);
  lua_rawget(e->L, -2);
  lua_remove(e->L, -2);
  if (lua_istable(e->L, -1)) return lua_gettop(e->L);
  lua_pop(e->L, 1);
  return 0;
}

static int je_array(jenc *e, int t) {
  lua_State *L = e->L;
  lua_Integer n = (lua_Integer)lua_rawlen(L, t), count = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    count++;
  }
  if (count != n) return je_fail(e, "%s", "a JSON array has keys other than 1..n");
  int top = lua_gettop(L);
  int side = push_numtext(e, t);
  int rc = je_put(e, "[", 1);
  for (lua_Integer i = 1; i <= n && !rc; i++) {
    if (i > 1) rc = je_put(e, ",", 1);
    lua_pushinteger(L, i);
    lua_rawgeti(L, t, i);
    if (!rc) rc = je_member_value(e, lua_gettop(L), side, lua_gettop(L) - 1);
    lua_pop(L, 2);
  }
  lua_settop(L, top);
  return rc ? rc : je_put(e, "]", 1);
}

typedef struct skey {
  const char *s;
  size_t n;
} skey;

static int skey_cmp(const void *a, const void *b) {
  const skey *x = a, *y = b;
  size_t n = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->s, y->s, n);
  return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* Emits the key at -1 (a string) and t[key]; pops nothing. */
static int je_member(jenc *e, int t, int side, bool *first) {
  lua_State *L = e->L;
  size_t kn;
  const char *k = lua_tolstring(L, -1, &kn);
  int rc = *first ? AS_OK : je_put(e, ",", 1);
  *first = false;
  if (!rc) rc = je_string(e, k, kn);
  if (!rc) rc = je_put(e, ":", 1);
  lua_pushvalue(L, -1);
  lua_rawget(L, t);
  if (!rc) rc = je_member_value(e, lua_gettop(L), side, lua_gettop(L) - 1);
  lua_pop(L, 1);
  return rc;
}

/* Keys in their original order (if the object was decoded), then new keys sorted. */
static int je_object(jenc *e, int t) {
  lua_State *L = e->L;
  bool first = true;
  int rc = je_put(e, "{", 1);
  int side = push_numtext(e, t);
  int base = side ? side : lua_gettop(L) + 1;
  lua_newtable(L);
  int done = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, e->h->r_order);
  lua_pushvalue(L, t);
  lua_rawget(L, -2);
  lua_remove(L, -2);
  int ord = lua_gettop(L);
  lua_Integer nord = lua_istable(L, ord) ? (lua_Integer)lua_rawlen(L, ord) : 0;
  for (lua_Integer i = 1; i <= nord && !rc; i++) {
    lua_rawgeti(L, ord, i);
    lua_pushvalue(L, -1);
    if (lua_type(L, -1) == LUA_TSTRING && lua_rawget(L, t) != LUA_TNIL) {
      lua_pop(L, 1);
      rc = je_member(e, t, side, &first);
      lua_pushboolean(L, 1);
      lua_rawset(L, done);
    } else {
      lua_pop(L, 2);
    }
  }
  lua_newtable(L);
  int rest = lua_gettop(L);
  lua_Integer nrest = 0;
  lua_pushnil(L);
  while (!rc && lua_next(L, t)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 1);
      rc = je_fail(e, "%s", "a JSON object has a key that is not a string");
      break;
    }
    lua_pushvalue(L, -1);
    if (lua_rawget(L, done) == LUA_TNIL) {
      lua_pushvalue(L, -2);
      lua_rawseti(L, rest, ++nrest);
    }
    lua_pop(L, 1);
  }
  if (!rc && nrest > 0) {
    skey *keys = lua_newuserdatauv(L, (size_t)nrest * sizeof *keys, 0);
    for (lua_Integer i = 1; i <= nrest; i++) {
      lua_rawgeti(L, rest, i);
      keys[i - 1].s = lua_tolstring(L, -1, &keys[i - 1].n); /* anchored in rest */
      lua_pop(L, 1);
    }
    qsort(keys, (size_t)nrest, sizeof *keys, skey_cmp);
    for (lua_Integer i = 0; i < nrest && !rc; i++) {
      lua_pushlstring(L, keys[i].s, keys[i].n);
      rc = je_member(e, t, side, &first);
      lua_pop(L, 1);
    }
  }
  lua_settop(L, base - 1);
  return rc ? rc : je_put(e, "}", 1);
}

static int je_value(jenc *e, int idx) {
  lua_State *L = e->L;
  luaL_checkstack(L, 8, "JSON nesting");
  switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN: return lua_toboolean(L, idx) ? je_put(e, "true", 4) : je_put(e, "false", 5);
    case LUA_TNUMBER: return je_number(e, idx);
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      return je_string(e, s, n);
    }
    case LUA_TTABLE: {
      if (e->depth >= ASL_JSON_MAX_DEPTH) {
        return je_fail(e, "JSON nested deeper than %s levels (or a table contains itself)",
                       "400");
      }
      e->depth++;
      int k = table_kind(L, e->h, idx), rc;
      if (k == K_ARRAY) rc = je_array(e, idx);
      else if (k == K_OBJECT) rc = je_object(e, idx);
      else rc = je_fail(e, "%s", "a table with both sequence and other keys is neither a JSON "
                        "array nor an object (mark it with ctx.array or ctx.object)");
      e->depth--;
      return rc;
    }
    case LUA_TUSERDATA:
      if (asl_is_sentinel(L, e->h, idx)) return je_put(e, "null", 4);
      /* fall through */
    default:
      return je_fail(e, "a %s cannot be stored in JSON", luaL_typename(L, idx));
  }
}

/* ------------------------------------------------------------------ Lua value == JSON text */

/* Whether the Lua value at idx is what decoding the JSON text would give (same types,
 * integer vs float, array vs object, same members), without building anything. Anything
 * unexpected in the text answers false (the value is then encoded anew). */
typedef struct jmat {
  lua_State *L;
  as_lua *h;
  const char *p, *end;
  int depth;
} jmat;

static void jm_ws(jmat *m) {
  while (m->p < m->end && (*m->p == ' ' || *m->p == '\t' || *m->p == '\n' || *m->p == '\r')) {
    m->p++;
  }
}

static bool jm_value(jmat *m, int idx);

static lua_Integer count_keys(lua_State *L, int idx) {
  lua_Integer n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    n++;
  }
  return n;
}

/* After the '[' or '{' at m->p: members until close, each checked by member(). */
static bool jm_members(jmat *m, int idx, bool object) {
  lua_State *L = m->L;
  char close = object ? '}' : ']';
  lua_Integer count = 0;
  m->p++;
  jm_ws(m);
  if (m->p < m->end && *m->p == close) {
    m->p++;
    return count_keys(L, idx) == 0;
  }
  for (;;) {
    jm_ws(m);
    if (object) {
      const char *k;
      size_t kn;
      if (m->p >= m->end || *m->p != '"' || str_token(&m->p, m->end, &m->h->sbuf, &k, &kn)) {
        return false;
      }
      jm_ws(m);
      if (m->p >= m->end || *m->p != ':') return false;
      m->p++;
      lua_pushlstring(L, k, kn);
      lua_rawget(L, idx);
    } else {
      lua_rawgeti(L, idx, count + 1);
    }
    bool eq = jm_value(m, lua_gettop(L));
    lua_pop(L, 1);
    if (!eq) return false;
    count++;
    jm_ws(m);
    if (m->p < m->end && *m->p == ',') {
      m->p++;
      continue;
    }
    if (m->p < m->end && *m->p == close) break;
    return false;
  }
  m->p++;
  return count_keys(L, idx) == count; /* also catches duplicate keys in the text */
}

static bool jm_value(jmat *m, int idx) {
  lua_State *L = m->L;
  jm_ws(m);
  if (m->p >= m->end || m->depth >= ASL_JSON_MAX_DEPTH) return false;
  luaL_checkstack(L, 6, "JSON nesting");
  int t = lua_type(L, idx);
  switch (*m->p) {
    case '{':
    case '[': {
      bool object = *m->p == '{';
      if (t != LUA_TTABLE || table_kind(L, m->h, idx) != (object ? K_OBJECT : K_ARRAY)) {
        return false;
      }
      m->depth++;
      bool eq = jm_members(m, idx, object);
      m->depth--;
      return eq;
    }
    case '"': {
      const char *s;
      size_t n, ln;
      if (t != LUA_TSTRING || str_token(&m->p, m->end, &m->h->sbuf, &s, &n)) return false;
      const char *ls = lua_tolstring(L, idx, &ln);
      return ln == n && memcmp(ls, s, n) == 0;
    }
    case 't':
    case 'f': {
      bool v = *m->p == 't';
      size_t n = v ? 4 : 5;
      if ((size_t)(m->end - m->p) < n || memcmp(m->p, v ? "true" : "false", n) != 0) return false;
      m->p += n;
      return t == LUA_TBOOLEAN && lua_toboolean(L, idx) == v;
    }
    case 'n': {
      if (m->end - m->p < 4 || memcmp(m->p, "null", 4) != 0) return false;
      m->p += 4;
      return asl_is_sentinel(L, m->h, idx);
    }
    default: {
      const char *s = m->p;
      bool real;
      if (!scan_number(&m->p, m->end, &real) || t != LUA_TNUMBER) return false;
      lua_Integer iv = 0;
      double dv = 0;
      bool isint = number_from_token(s, (size_t)(m->p - s), real, &iv, &dv);
      return isint ? lua_isinteger(L, idx) && lua_tointeger(L, idx) == iv
                   : !lua_isinteger(L, idx) && (double)lua_tonumber(L, idx) == dv;
    }
  }
}

static bool json_matches(lua_State *L, as_lua *h, int idx, const char *text, size_t len) {
  jmat m = {.L = L, .h = h, .p = text, .end = text + len};
  if (!jm_value(&m, lua_absindex(L, idx))) return false;
  jm_ws(&m);
  return m.p == m.end;
}

/* ------------------------------------------------------------------ Lua -> values */

void asl_describe(lua_State *L, int idx, char *out, size_t n) {
  switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      snprintf(out, n, "string \"%.*s\"%s", (int)(len > 60 ? 60 : len), s, len > 60 ? "..." : "");
      break;
    }
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        snprintf(out, n, "integer %" PRId64, (int64_t)lua_tointeger(L, idx));
      } else {
        char d[32];
        as_double_format((double)lua_tonumber(L, idx), d);
        snprintf(out, n, "float %s", d);
      }
      break;
    case LUA_TBOOLEAN: snprintf(out, n, "boolean %s", lua_toboolean(L, idx) ? "true" : "false"); break;
    default: snprintf(out, n, "a %s", luaL_typename(L, idx));
  }
}

static int bad(lua_State *L, int idx, const char *expected, char *why, size_t whylen) {
  char got[128];
  asl_describe(L, idx, got, sizeof got);
  snprintf(why, whylen, "expected %s, got %s", expected, got);
  return AS_EDATA;
}

/* A json column: keep mine's or theirs's text when the value equals it, else encode. */
static int to_json(lua_State *L, as_lua *h, int idx, size_t col, const as_row *mine,
                   const as_row *theirs, as_value *out, char *why, size_t whylen) {
  const as_row *sides[2] = {mine, theirs};
  for (int k = 0; k < 2; k++) {
    const as_row *r = sides[k];
    if (!r || col >= r->n || !r->set[col] || r->v[col].type != AS_T_JSON) continue;
    if (json_matches(L, h, idx, r->v[col].u.s.ptr, r->v[col].u.s.len)) {
      if (as_value_copy(out, &r->v[col]) == AS_OK) return AS_OK;
      snprintf(why, whylen, "out of memory");
      return AS_ERR;
    }
  }
  as_buf_reset(&h->jbuf);
  jenc e = {.L = L, .h = h, .b = &h->jbuf, .max = h->lim.memory_bytes, .why = why,
            .whylen = whylen};
  int top = lua_gettop(L);
  int rc = je_value(&e, idx);
  lua_settop(L, top);
  if (rc) return rc;
  if (as_value_set_str(out, AS_T_JSON, (const char *)h->jbuf.data, h->jbuf.len) != AS_OK) {
    snprintf(why, whylen, "out of memory");
    return AS_ERR;
  }
  return AS_OK;
}

static int to_int64(lua_State *L, int idx, as_value *out, char *why, size_t whylen) {
  if (lua_type(L, idx) != LUA_TNUMBER) return bad(L, idx, "an integer", why, whylen);
  int ok = 0;
  lua_Integer i = lua_tointegerx(L, idx, &ok);
  if (!ok) {
    double d = (double)lua_tonumber(L, idx);
    if (d == floor(d)) {
      char b[32];
      as_double_format(d, b);
      snprintf(why, whylen, "%s is out of the int64 range", b);
      return AS_EDATA;
    }
    return bad(L, idx, "an integer (the value has a fraction)", why, whylen);
  }
  as_value_set_int64(out, (int64_t)i);
  return AS_OK;
}

static int to_double(lua_State *L, int idx, as_value *out, char *why, size_t whylen) {
  if (lua_type(L, idx) != LUA_TNUMBER) return bad(L, idx, "a number", why, whylen);
  if (lua_isinteger(L, idx)) {
    lua_Integer i = lua_tointeger(L, idx);
    double d = (double)i;
    if (d >= 9223372036854775808.0 || (lua_Integer)d != i) {
      snprintf(why, whylen, "integer %" PRId64 " is not exactly a double (write it as a float)",
               (int64_t)i);
      return AS_EDATA;
    }
    as_value_set_double(out, d);
  } else {
    as_value_set_double(out, (double)lua_tonumber(L, idx));
  }
  return AS_OK;
}

static int to_decimal(lua_State *L, int idx, as_value *out, char *why, size_t whylen) {
  char buf[48];
  const char *s = buf;
  size_t n;
  if (lua_type(L, idx) == LUA_TSTRING) {
    s = lua_tolstring(L, idx, &n);
    if (!as_decimal_valid(s, n)) return bad(L, idx, "a decimal number text", why, whylen);
  } else if (lua_type(L, idx) == LUA_TNUMBER) {
    if (lua_isinteger(L, idx)) {
      n = (size_t)snprintf(buf, sizeof buf, "%" PRId64, (int64_t)lua_tointeger(L, idx));
    } else {
      n = as_double_format((double)lua_tonumber(L, idx), buf);
    }
  } else {
    return bad(L, idx, "a decimal string or a number", why, whylen);
  }
  if (as_value_set_str(out, AS_T_DECIMAL, s, n) != AS_OK) {
    snprintf(why, whylen, "out of memory");
    return AS_ERR;
  }
  return AS_OK;
}

/* Strings of a text form (uuid, objectid, timestamp, date), parsed by as_value_from_text. */
static int to_text_form(lua_State *L, int idx, as_type t, const char *expected, as_value *out,
                        char *why, size_t whylen) {
  if (lua_type(L, idx) != LUA_TSTRING) return bad(L, idx, expected, why, whylen);
  size_t n;
  const char *s = lua_tolstring(L, idx, &n);
  as_error e;
  int rc = as_value_from_text(t, s, n, out, &e);
  if (rc == AS_EINVAL) {
    snprintf(why, whylen, "%s", e.message);
    return AS_EDATA;
  }
  if (rc) snprintf(why, whylen, "%s", e.message);
  return rc;
}

int asl_to_value(lua_State *L, as_lua *h, int idx, size_t col, const as_row *mine,
                 const as_row *theirs, as_value *out, char *why, size_t whylen) {
  const as_column *c = &h->s->cols[col];
  *out = AS_VALUE_NULL;
  if (lua_type(L, idx) == LUA_TUSERDATA) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_null);
    bool null = lua_rawequal(L, -1, idx);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_jnull);
    bool jnull = lua_rawequal(L, -1, idx);
    lua_pop(L, 2);
    if (null) {
      if (!c->required) return AS_OK;
      snprintf(why, whylen, "NULL in a required column");
      return AS_EDATA;
    }
    if (jnull && !as_column_json_null(c)) {
      snprintf(why, whylen, "ctx.json_null is JSON null, for a json column (NULL is ctx.null)");
      return AS_EDATA;
    }
  }
  switch (c->type) {
    case AS_T_BOOL:
      if (lua_type(L, idx) != LUA_TBOOLEAN) return bad(L, idx, "a boolean", why, whylen);
      as_value_set_bool(out, lua_toboolean(L, idx));
      return AS_OK;
    case AS_T_INT64: return to_int64(L, idx, out, why, whylen);
    case AS_T_DOUBLE: return to_double(L, idx, out, why, whylen);
    case AS_T_DECIMAL: return to_decimal(L, idx, out, why, whylen);
    case AS_T_TEXT:
    case AS_T_BYTES: {
      if (lua_type(L, idx) != LUA_TSTRING) return bad(L, idx, "a string", why, whylen);
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      if (c->type == AS_T_TEXT && !utf8_valid(s, n)) {
        snprintf(why, whylen, "the string is not valid UTF-8");
        return AS_EDATA;
      }
      if (as_value_set_str(out, c->type, s, n) != AS_OK) {
        snprintf(why, whylen, "out of memory");
        return AS_ERR;
      }
      return AS_OK;
    }
    case AS_T_UUID: return to_text_form(L, idx, c->type, "a uuid string", out, why, whylen);
    case AS_T_OBJECTID:
      return to_text_form(L, idx, c->type, "an objectid string (24 hex digits)", out, why, whylen);
    case AS_T_TIMESTAMP:
      return to_text_form(L, idx, c->type, "a timestamp string (YYYY-MM-DDTHH:MM:SS.ffffffZ)",
                          out, why, whylen);
    case AS_T_DATE:
      return to_text_form(L, idx, c->type, "a date string (YYYY-MM-DD)", out, why, whylen);
    case AS_T_JSON: return to_json(L, h, idx, col, mine, theirs, out, why, whylen);
    default: snprintf(why, whylen, "unsupported column type"); return AS_EDATA;
  }
}

/* ------------------------------------------------------------------ ctx helpers */

/* Decimal text of the number or decimal string at idx into b (NUL-terminated), else error. */
static const char *decimal_arg(lua_State *L, int idx, char *b, size_t n) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    if (lua_isinteger(L, idx)) {
      snprintf(b, n, "%" PRId64, (int64_t)lua_tointeger(L, idx));
    } else {
      as_double_format((double)lua_tonumber(L, idx), b);
    }
    return b;
  }
  size_t len;
  const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &len) : NULL;
  if (!s || !as_decimal_valid(s, len)) {
    char got[128];
    asl_describe(L, idx, got, sizeof got);
    luaL_error(L, "bad argument #%d: expected a number or a decimal string, got %s", idx, got);
  }
  return s;
}

static bool is_null(lua_State *L, int idx) { return asl_is_sentinel(L, asl_handle(L), idx); }

int asl_fn_number(lua_State *L) {
  if (lua_isnoneornil(L, 1) || is_null(L, 1)) {
    lua_pushnil(L);
    return 1;
  }
  if (lua_type(L, 1) == LUA_TNUMBER) {
    lua_settop(L, 1);
    return 1;
  }
  char b[48];
  const char *s = decimal_arg(L, 1, b, sizeof b);
  bool integral = strpbrk(s, ".eEnNiI") == NULL;
  if (integral) {
    errno = 0;
    char *end;
    long long x = strtoll(s, &end, 10);
    if (errno != ERANGE && *end == '\0') {
      lua_pushinteger(L, (lua_Integer)x);
      return 1;
    }
  }
  if (strcmp(s, "NaN") == 0) lua_pushnumber(L, (lua_Number)NAN);
  else if (strcmp(s, "Infinity") == 0) lua_pushnumber(L, (lua_Number)INFINITY);
  else if (strcmp(s, "-Infinity") == 0) lua_pushnumber(L, -(lua_Number)INFINITY);
  else lua_pushnumber(L, (lua_Number)strtod(s, NULL));
  return 1;
}

int asl_fn_cmp(lua_State *L) {
  char ba[48], bb[48];
  const char *a = decimal_arg(L, 1, ba, sizeof ba);
  const char *b = decimal_arg(L, 2, bb, sizeof bb);
  as_value x = {.type = AS_T_DECIMAL, .u.s = {(char *)a, strlen(a)}};
  as_value y = {.type = AS_T_DECIMAL, .u.s = {(char *)b, strlen(b)}};
  int c = as_value_compare(&x, &y);
  lua_pushinteger(L, c < 0 ? -1 : c > 0);
  return 1;
}

static int mark(lua_State *L, int ref) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  if (lua_getmetatable(L, 1)) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, asl_handle(L)->r_arr_mt);
    lua_rawgeti(L, LUA_REGISTRYINDEX, asl_handle(L)->r_obj_mt);
    if (!lua_rawequal(L, -1, -3) && !lua_rawequal(L, -2, -3)) {
      return luaL_error(L, "the table already has a metatable");
    }
  }
  lua_settop(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  lua_setmetatable(L, 1);
  return 1;
}

int asl_fn_array(lua_State *L) { return mark(L, asl_handle(L)->r_arr_mt); }
int asl_fn_object(lua_State *L) { return mark(L, asl_handle(L)->r_obj_mt); }
