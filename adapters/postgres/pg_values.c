/* pg_values.c — values as PostgreSQL text and rows from query results: what the sink, the
 * snapshots, the child tables and verify share (pg_internal.h states each function). */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "as_key.h"
#include "pg_internal.h"

/* AS_EDATA when text or json v holds a NUL byte (PostgreSQL text cannot store it). */
static int nul_check(const as_value *v, as_error *err) {
  const char *nul = memchr(v->u.s.ptr, 0, v->u.s.len);
  if (!nul) return AS_OK;
  return as_error_set(err, AS_DOM_POSTGRES, AS_EDATA,
                      "text holds a NUL byte at offset %zu, which PostgreSQL text cannot store",
                      (size_t)(nul - v->u.s.ptr));
}

int pg_value_to_text(const as_value *v, char **out, as_error *err) {
  *out = NULL;
  if (v->type == AS_T_NULL) return AS_OK;
  if (v->type == AS_T_BYTES) {
    static const char hx[] = "0123456789abcdef";
    char *p = malloc(2 * v->u.s.len + 3);
    if (!p) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    p[0] = '\\';
    p[1] = 'x';
    const uint8_t *s = (const uint8_t *)v->u.s.ptr;
    for (size_t i = 0; i < v->u.s.len; i++) {
      p[2 + 2 * i] = hx[s[i] >> 4];
      p[3 + 2 * i] = hx[s[i] & 15];
    }
    p[2 + 2 * v->u.s.len] = '\0';
    *out = p;
    return AS_OK;
  }
  if ((v->type == AS_T_TEXT || v->type == AS_T_JSON) && nul_check(v, err) != AS_OK) return AS_EDATA;
  return as_value_to_text(v, out, err);
}

/* Appends s[0..n) (no NUL inside) escaped for COPY's text format: runs of 8 bytes none of
 * which is a backslash, newline, CR or tab are copied whole. */
static int copy_escape_n(as_buf *b, const char *s, size_t n) {
  if (as_buf_reserve(b, 2 * n) != AS_OK) return AS_ERR;
  uint8_t *o = b->data + b->len;
  const uint8_t *p = (const uint8_t *)s, *e = p + n;
  const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
  while (p < e) {
    while (e - p >= 8) {
      uint64_t x;
      memcpy(&x, p, 8);
      uint64_t a = x ^ (ones * '\\'), nl = x ^ (ones * '\n'), cr = x ^ (ones * '\r'), tb = x ^ (ones * '\t');
      /* a zero byte in any of them: some byte needs a look (exact enough: a false hit only
       * sends these 8 bytes through the loop below) */
      if ((((a - ones) & ~a) | ((nl - ones) & ~nl) | ((cr - ones) & ~cr) | ((tb - ones) & ~tb)) & high) break;
      memcpy(o, &x, 8);
      o += 8;
      p += 8;
    }
    for (const uint8_t *stop = e - p > 8 ? p + 8 : e; p < stop; p++) {
      uint8_t c = *p;
      if (c == '\\' || c == '\n' || c == '\r' || c == '\t') {
        *o++ = '\\';
        *o++ = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : '\\';
      } else {
        *o++ = c;
      }
    }
  }
  b->len = (size_t)(o - b->data);
  return AS_OK;
}

int pg_copy_value(as_buf *b, const as_value *v, as_error *err) {
  char buf[32];
  switch (v->type) {
    case AS_T_NULL: return as_buf_append(b, "\\N", 2) == AS_OK ? AS_OK : as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    case AS_T_TEXT:
    case AS_T_JSON:
      if (nul_check(v, err) != AS_OK) return AS_EDATA;
      /* fall through */
    case AS_T_DECIMAL:
      if (copy_escape_n(b, v->u.s.ptr, v->u.s.len) != AS_OK) break;
      return AS_OK;
    case AS_T_INT64: {
      const char *q = as_i64_format(v->u.i, buf + sizeof buf);
      if (as_buf_append(b, q, (size_t)(buf + sizeof buf - q)) != AS_OK) break;
      return AS_OK;
    }
    case AS_T_DOUBLE: {
      size_t n = as_double_format(v->u.d, buf);
      if (as_buf_append(b, buf, n) != AS_OK) break;
      return AS_OK;
    }
    case AS_T_BOOL:
      if (as_buf_append_str(b, v->u.b ? "true" : "false") != AS_OK) break;
      return AS_OK;
    default: { /* the rest through their text form */
      char *txt = NULL;
      int rc = pg_value_to_text(v, &txt, err);
      if (rc != AS_OK) return rc;
      rc = txt ? pg_copy_escape(b, txt) : as_buf_append(b, "\\N", 2);
      free(txt);
      if (rc != AS_OK) break;
      return AS_OK;
    }
  }
  return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
}

int pg_value_from_text(as_type t, const char *s, size_t len, as_value *out, as_error *err) {
  *out = AS_VALUE_NULL;
  return as_value_from_text(t, s, len, out, err);
}

int pg_select_list(const pg_table *t, const char *alias, as_buf *b) {
  for (size_t i = 0; i < t->s->ntable; i++) {
    if (as_buf_printf(b, "%s%s%s%s::text", i ? ", " : "", alias ? alias : "", alias ? "." : "",
                      t->qcols[i]) != AS_OK)
      return AS_ERR;
  }
  return AS_OK;
}

int pg_row_from_result(const pg_table *t, const PGresult *r, int row, int first, as_row *out,
                       as_error *err) {
  const as_schema *s = t->s;
  for (size_t c = 0; c < s->ntable; c++) {
    as_value v = AS_VALUE_NULL;
    int col = first + (int)c;
    if (!PQgetisnull(r, row, col)) {
      int rc = pg_value_from_text(s->cols[c].type, PQgetvalue(r, row, col),
                                  (size_t)PQgetlength(r, row, col), &v, err);
      if (rc != AS_OK) {
        as_error_prefix(err, "mapping %s: column \"%s\"", s->name, s->cols[c].name);
        return rc == AS_ERR ? AS_ERR : AS_EDATA;
      }
    }
    as_row_put(out, c, &v);
  }
  return AS_OK;
}


char *pg_key_from_texts(const as_schema *s, const char *(*text)(const void *ctx, size_t c, size_t *len),
                        const void *ctx) {
  as_row row;
  if (as_row_init(&row, s->ncols) != AS_OK) return NULL;
  char *key = NULL;
  bool ok = true;
  for (size_t j = 0; j < s->nkey && ok; j++) {
    size_t c = s->key_idx[j], len = 0;
    const char *t = text(ctx, c, &len);
    as_value v = AS_VALUE_NULL;
    as_error e;
    ok = t && pg_value_from_text(s->cols[c].type, t, len, &v, &e) == AS_OK;
    if (ok) as_row_put(&row, c, &v);
  }
  if (ok) key = as_key_json_dup(s, &row, NULL);
  as_row_clear(&row);
  return key;
}

int pg_copy_escape(as_buf *b, const char *s) { return copy_escape_n(b, s, strlen(s)); }

int pg_copy_start(PGconn *c, const char *sql, PGresult **res) {
  *res = NULL;
  PGresult *r = PQexec(c, sql);
  if (!r || PQresultStatus(r) != PGRES_COPY_IN) {
    *res = r;
    return AS_ERR;
  }
  PQclear(r);
  return AS_OK;
}

int pg_copy_put(PGconn *c, const void *data, size_t len) {
  while (len > 0) { /* PQputCopyData takes an int */
    size_t part = len > (1u << 30) ? (1u << 30) : len;
    if (PQputCopyData(c, data, (int)part) != 1) return AS_ERR;
    data = (const char *)data + part;
    len -= part;
  }
  return AS_OK;
}

int pg_copy_finish(PGconn *c, bool ok, PGresult **res) {
  *res = NULL;
  ok = PQputCopyEnd(c, ok ? NULL : "send failed") == 1 && ok;
  PGresult *r = PQgetResult(c);
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  PGresult *extra;
  while ((extra = PQgetResult(c)) != NULL) PQclear(extra);
  if (st != PGRES_COMMAND_OK || !ok) {
    *res = r;
    return AS_ERR;
  }
  PQclear(r);
  return AS_OK;
}

int pg_copy_in(PGconn *c, const char *sql, const as_buf *data, PGresult **res) {
  if (pg_copy_start(c, sql, res) != AS_OK) return AS_ERR;
  bool ok = pg_copy_put(c, data->data, data->len) == AS_OK;
  return pg_copy_finish(c, ok, res);
}

int pg_texts_to_row(const as_schema *sc, const json_t *arr, const size_t *idx, size_t n,
                        as_row *r, as_error *err) {
  if (!json_is_array(arr) || json_array_size(arr) != n)
    return as_error_set(err, AS_DOM_POSTGRES, AS_EDATA, "malformed child table image");
  for (size_t k = 0; k < n; k++) {
    size_t c = idx ? idx[k] : k;
    const json_t *j = json_array_get(arr, k);
    as_value v = AS_VALUE_NULL;
    if (json_is_string(j)) {
      int rc = pg_value_from_text(sc->cols[c].type, json_string_value(j), json_string_length(j), &v, err);
      if (rc != AS_OK) {
        as_error_prefix(err, "column \"%s\"", sc->cols[c].name);
        return rc == AS_ERR ? AS_ERR : AS_EDATA;
      }
    } else if (!json_is_null(j)) {
      return as_error_set(err, AS_DOM_POSTGRES, AS_EDATA, "malformed child table image");
    }
    as_row_put(r, c, &v);
  }
  return AS_OK;
}
