/* sqlite_values.c — SQLite storage forms <-> typed values (see adapters/sqlite/README.md).
 *
 * Written by the adapter: bool INTEGER 0/1, int64 INTEGER, double REAL (NaN/±Infinity as the
 * TEXT 'NaN'/'Infinity'/'-Infinity', because SQLite turns a bound NaN into NULL), decimal,
 * text, json TEXT, bytes BLOB, uuid/objectid/timestamp/date TEXT in the as_value text forms.
 * Read leniently: whatever a user wrote through another client is accepted where the
 * conversion is exact; anything else is an AS_EDATA error the caller dead-letters. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sqlite_internal.h"

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void sq_cell_from_stmt(sqlite3_stmt *st, int col, sq_cell *c) {
  memset(c, 0, sizeof *c);
  switch (sqlite3_column_type(st, col)) {
    case SQLITE_INTEGER:
      c->k = SQ_CELL_INT;
      c->i = sqlite3_column_int64(st, col);
      break;
    case SQLITE_FLOAT:
      c->k = SQ_CELL_REAL;
      c->d = sqlite3_column_double(st, col);
      break;
    case SQLITE_TEXT:
      c->k = SQ_CELL_TEXT;
      c->p = (const char *)sqlite3_column_text(st, col);
      c->len = (size_t)sqlite3_column_bytes(st, col);
      break;
    case SQLITE_BLOB:
      c->k = SQ_CELL_BLOB;
      c->p = sqlite3_column_blob(st, col);
      c->len = (size_t)sqlite3_column_bytes(st, col);
      if (!c->p) c->p = "";
      break;
    default: c->k = SQ_CELL_NULL; break;
  }
}

int sq_cell_from_json(const json_t *j, sq_cell *c, uint8_t **tmp, as_error *err) {
  memset(c, 0, sizeof *c);
  *tmp = NULL;
  if (!j || json_is_null(j)) return AS_OK;
  if (json_is_integer(j)) {
    c->k = SQ_CELL_INT;
    c->i = (int64_t)json_integer_value(j);
  } else if (json_is_real(j)) {
    c->k = SQ_CELL_REAL;
    c->d = json_real_value(j);
  } else if (json_is_boolean(j)) {
    c->k = SQ_CELL_BOOL;
    c->i = json_is_true(j);
  } else if (json_is_string(j)) {
    c->k = SQ_CELL_TEXT;
    c->p = json_string_value(j);
    c->len = json_string_length(j);
  } else if (json_is_object(j) && json_object_size(j) == 1 &&
             json_is_string(json_object_get(j, "$b"))) {
    /* a BLOB, written by the trigger as {"$b": hex(x)} */
    const json_t *h = json_object_get(j, "$b");
    const char *s = json_string_value(h);
    size_t n = json_string_length(h);
    if (n % 2) return as_error_set(err, AS_DOM_SQLITE, AS_EDATA, "odd-length blob hex");
    uint8_t *b = malloc(n / 2 + 1);
    if (!b) return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
    for (size_t i = 0; i < n / 2; i++) {
      int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
      if (hi < 0 || lo < 0) {
        free(b);
        return as_error_set(err, AS_DOM_SQLITE, AS_EDATA, "bad blob hex");
      }
      b[i] = (uint8_t)(hi << 4 | lo);
    }
    *tmp = b;
    c->k = SQ_CELL_BLOB;
    c->p = (const char *)b;
    c->len = n / 2;
  } else {
    return as_error_set(err, AS_DOM_SQLITE, AS_EDATA, "unexpected JSON value in changelog");
  }
  return AS_OK;
}

char *sq_cell_describe(const sq_cell *c) {
  char buf[200];
  switch (c->k) {
    case SQ_CELL_NULL: snprintf(buf, sizeof buf, "NULL"); break;
    case SQ_CELL_INT: snprintf(buf, sizeof buf, "INTEGER %" PRId64, c->i); break;
    case SQ_CELL_BOOL: snprintf(buf, sizeof buf, "boolean %s", c->i ? "true" : "false"); break;
    case SQ_CELL_REAL: snprintf(buf, sizeof buf, "REAL %.17g", c->d); break;
    case SQ_CELL_TEXT:
      snprintf(buf, sizeof buf, "TEXT '%.*s'%s", (int)(c->len > 80 ? 80 : c->len), c->p,
               c->len > 80 ? "..." : "");
      break;
    case SQ_CELL_BLOB: {
      size_t o = (size_t)snprintf(buf, sizeof buf, "BLOB x'");
      for (size_t i = 0; i < c->len && i < 40; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%02x", (unsigned char)c->p[i]);
      snprintf(buf + o, sizeof buf - o, "'%s", c->len > 40 ? "..." : "");
      break;
    }
  }
  return strdup(buf);
}

static int bad(const sq_cell *c, as_type t, as_error *err, const char *why) {
  char *d = sq_cell_describe(c);
  as_error_set(err, AS_DOM_SQLITE, AS_EDATA, "cannot convert %s to %s%s%s", d ? d : "?",
               as_type_name(t), why ? ": " : "", why ? why : "");
  free(d);
  return AS_EDATA;
}

/* Text parse through as_value_from_text, turning its error into AS_EDATA. */
static int from_text(const sq_cell *c, as_type t, as_value *out, as_error *err) {
  as_error e = {0};
  if (as_value_from_text(t, c->p, c->len, out, &e) == AS_OK) return AS_OK;
  return bad(c, t, err, e.message);
}

/* A TEXT cell holding a plain decimal number ("1704103200", "-3", "1.5") as a number cell. */
static bool text_number(const sq_cell *c, sq_cell *out) {
  char buf[64];
  if (c->len == 0 || c->len >= sizeof buf) return false;
  memcpy(buf, c->p, c->len);
  buf[c->len] = '\0';
  size_t i = buf[0] == '-' ? 1 : 0, digits = 0, dots = 0;
  for (; i < c->len; i++) {
    if (buf[i] >= '0' && buf[i] <= '9')
      digits++;
    else if (buf[i] == '.' && !dots)
      dots++;
    else
      return false;
  }
  if (!digits) return false;
  char *end;
  memset(out, 0, sizeof *out);
  if (!dots) {
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end) return false;
    out->k = SQ_CELL_INT;
    out->i = v;
  } else {
    out->k = SQ_CELL_REAL;
    out->d = strtod(buf, &end);
    if (*end) return false;
  }
  return true;
}

static bool real_is_int64(double d, int64_t *out) {
  if (!isfinite(d) || d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
    return false;
  *out = (int64_t)d;
  return true;
}

int sq_cell_to_value(const sq_cell *c, as_type t, as_value *out, as_error *err) {
  as_value_clear(out);
  if (c->k == SQ_CELL_NULL) return AS_OK;
  int64_t i64;
  switch (t) {
    case AS_T_BOOL:
      if ((c->k == SQ_CELL_INT || c->k == SQ_CELL_BOOL) && (c->i == 0 || c->i == 1)) {
        as_value_set_bool(out, c->i == 1);
        return AS_OK;
      }
      if (c->k == SQ_CELL_REAL && (c->d == 0.0 || c->d == 1.0)) {
        as_value_set_bool(out, c->d == 1.0);
        return AS_OK;
      }
      if (c->k == SQ_CELL_TEXT) return from_text(c, t, out, err);
      return bad(c, t, err, NULL);
    case AS_T_INT64:
      if (c->k == SQ_CELL_INT || c->k == SQ_CELL_BOOL) {
        as_value_set_int64(out, c->i);
        return AS_OK;
      }
      if (c->k == SQ_CELL_REAL && real_is_int64(c->d, &i64)) {
        as_value_set_int64(out, i64);
        return AS_OK;
      }
      if (c->k == SQ_CELL_TEXT) return from_text(c, t, out, err);
      return bad(c, t, err, c->k == SQ_CELL_REAL ? "not an integer" : NULL);
    case AS_T_DOUBLE:
      if (c->k == SQ_CELL_REAL) {
        as_value_set_double(out, c->d);
        return AS_OK;
      }
      if (c->k == SQ_CELL_INT) {
        double d = (double)c->i;
        if (d < 9223372036854775808.0 && (int64_t)d == c->i) {
          as_value_set_double(out, d);
          return AS_OK;
        }
        return bad(c, t, err, "not exactly representable");
      }
      if (c->k == SQ_CELL_TEXT) return from_text(c, t, out, err);
      return bad(c, t, err, NULL);
    case AS_T_DECIMAL:
      if (c->k == SQ_CELL_TEXT) return from_text(c, t, out, err);
      if (c->k == SQ_CELL_INT) {
        char b[32];
        int n = snprintf(b, sizeof b, "%" PRId64, c->i);
        return as_value_set_str(out, t, b, (size_t)n) == AS_OK
                   ? AS_OK
                   : as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
      }
      if (c->k == SQ_CELL_REAL && isfinite(c->d)) {
        /* the shortest text that reads back as this double: exact for what SQLite holds */
        as_value dv = AS_VALUE_NULL;
        char *txt = NULL;
        as_value_set_double(&dv, c->d);
        int rc = as_value_to_text(&dv, &txt, err);
        if (rc == AS_OK) {
          sq_cell tc = {.k = SQ_CELL_TEXT, .p = txt, .len = strlen(txt)};
          rc = from_text(&tc, t, out, err);
        }
        free(txt);
        return rc;
      }
      return bad(c, t, err, NULL);
    case AS_T_TEXT:
      if (c->k == SQ_CELL_TEXT) {
        /* UTF-8 only: a text value must have a JSON form (dead letters, relays) and MongoDB
         * refuses other bytes */
        if (!as_utf8_valid(c->p, c->len)) return bad(c, t, err, "not valid UTF-8");
        return as_value_set_str(out, t, c->p, c->len) == AS_OK
                   ? AS_OK
                   : as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
      }
      if (c->k == SQ_CELL_INT) {
        char b[32];
        int n = snprintf(b, sizeof b, "%" PRId64, c->i);
        return as_value_set_str(out, t, b, (size_t)n) == AS_OK
                   ? AS_OK
                   : as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
      }
      return bad(c, t, err, NULL);
    case AS_T_JSON:
      if (c->k == SQ_CELL_TEXT) return from_text(c, t, out, err);
      return bad(c, t, err, NULL);
    case AS_T_BYTES:
      /* TEXT in a BLOB column (written by hand): its bytes, as CAST(x AS BLOB) gives */
      if (c->k == SQ_CELL_BLOB || c->k == SQ_CELL_TEXT) {
        return as_value_set_str(out, t, c->p, c->len) == AS_OK
                   ? AS_OK
                   : as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
      }
      return bad(c, t, err, NULL);
    case AS_T_UUID:
      if (c->k == SQ_CELL_TEXT) return from_text(c, t, out, err);
      if (c->k == SQ_CELL_BLOB && c->len == 16) {
        as_value_set_uuid(out, (const uint8_t *)c->p);
        return AS_OK;
      }
      return bad(c, t, err, NULL);
    case AS_T_OBJECTID:
      if (c->k == SQ_CELL_TEXT) return from_text(c, t, out, err);
      if (c->k == SQ_CELL_BLOB && c->len == 12) {
        as_value_set_oid(out, (const uint8_t *)c->p);
        return AS_OK;
      }
      return bad(c, t, err, NULL);
    case AS_T_TIMESTAMP:
      if (c->k == SQ_CELL_TEXT) {
        /* TEXT affinity turns an integer unix time into its digits: read those back */
        sq_cell num;
        if (text_number(c, &num)) return sq_cell_to_value(&num, t, out, err);
        return from_text(c, t, out, err);
      }
      /* unix time in seconds (what strftime('%s') and most users write) */
      if (c->k == SQ_CELL_INT && c->i > -62135596800LL && c->i < 253402300800LL) {
        as_value_set_timestamp(out, c->i * 1000000);
        return AS_OK;
      }
      if (c->k == SQ_CELL_REAL && isfinite(c->d) && c->d > -62135596800.0 &&
          c->d < 253402300800.0) {
        as_value_set_timestamp(out, llround(c->d * 1e6));
        return AS_OK;
      }
      return bad(c, t, err, "expected text or unix seconds in years 0001..9999");
    case AS_T_DATE:
      if (c->k == SQ_CELL_TEXT) return from_text(c, t, out, err);
      return bad(c, t, err, NULL);
    default: return bad(c, t, err, "unsupported type");
  }
}

int sq_bind_value(sqlite3_stmt *st, int idx, const as_value *v, as_error *err) {
  int rc;
  switch (v->type) {
    case AS_T_NULL: rc = sqlite3_bind_null(st, idx); break;
    case AS_T_BOOL: rc = sqlite3_bind_int(st, idx, v->u.b ? 1 : 0); break;
    case AS_T_INT64: rc = sqlite3_bind_int64(st, idx, v->u.i); break;
    case AS_T_DOUBLE:
      if (isnan(v->u.d))
        rc = sqlite3_bind_text(st, idx, "NaN", 3, SQLITE_STATIC);
      else if (isinf(v->u.d))
        rc = v->u.d > 0 ? sqlite3_bind_text(st, idx, "Infinity", 8, SQLITE_STATIC)
                        : sqlite3_bind_text(st, idx, "-Infinity", 9, SQLITE_STATIC);
      else
        rc = sqlite3_bind_double(st, idx, v->u.d);
      break;
    case AS_T_TEXT:
    case AS_T_DECIMAL:
    case AS_T_JSON:
      rc = sqlite3_bind_text(st, idx, v->u.s.ptr ? v->u.s.ptr : "", (int)v->u.s.len, SQLITE_STATIC);
      break;
    case AS_T_BYTES:
      rc = sqlite3_bind_blob(st, idx, v->u.s.ptr ? v->u.s.ptr : "", (int)v->u.s.len, SQLITE_STATIC);
      break;
    default: {
      char *txt = NULL;
      as_error e = {0};
      if (as_value_to_text(v, &txt, &e) != AS_OK)
        return as_error_set(err, AS_DOM_SQLITE, AS_EDATA, "%s", e.message);
      rc = sqlite3_bind_text(st, idx, txt, -1, free);
      break;
    }
  }
  if (rc != SQLITE_OK)
    return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "bind parameter %d: %s", idx,
                        sqlite3_errstr(rc));
  return AS_OK;
}
