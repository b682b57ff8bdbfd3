/* pg_values.c — values as PostgreSQL text and rows from query results: what the sink, the
 * snapshots, the child tables and verify share (pg_internal.h states each function). */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pg_internal.h"

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
  if (v->type == AS_T_TEXT || v->type == AS_T_JSON) {
    const char *nul = memchr(v->u.s.ptr, 0, v->u.s.len);
    if (nul) {
      return as_error_set(err, AS_DOM_POSTGRES, AS_EDATA,
                          "text holds a NUL byte at offset %zu, which PostgreSQL text cannot "
                          "store",
                          (size_t)(nul - v->u.s.ptr));
    }
  }
  return as_value_to_text(v, out, err);
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


int pg_copy_escape(as_buf *b, const char *s) {
  for (;;) {
    size_t run = strcspn(s, "\\\n\r\t"); /* copied as it is */
    if (run && as_buf_append(b, s, run) != AS_OK) return AS_ERR;
    s += run;
    if (!*s) return AS_OK;
    char e[2] = {'\\', *s == '\n' ? 'n' : *s == '\r' ? 'r' : *s == '\t' ? 't' : '\\'};
    if (as_buf_append(b, e, 2) != AS_OK) return AS_ERR;
    s++;
  }
}

int pg_copy_in(PGconn *c, const char *sql, const as_buf *data, PGresult **res) {
  *res = NULL;
  PGresult *r = PQexec(c, sql);
  if (!r || PQresultStatus(r) != PGRES_COPY_IN) {
    *res = r;
    return AS_ERR;
  }
  PQclear(r);
  int ok = PQputCopyData(c, (const char *)data->data, (int)data->len) == 1;
  ok = PQputCopyEnd(c, ok ? NULL : "send failed") == 1 && ok;
  r = PQgetResult(c);
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

/* ------------------------------------------------------------------ binary COPY */

#define PG_EPOCH_US 946684800000000LL /* 2000-01-01 in unix µs */
#define PG_EPOCH_DAYS 10957           /* 2000-01-01 in unix days */

uint32_t pg_binary_oid(as_type t) {
  switch (t) {
    case AS_T_BOOL: return 16;       /* boolean */
    case AS_T_INT64: return 20;      /* bigint */
    case AS_T_DOUBLE: return 701;    /* double precision */
    case AS_T_TEXT:
    case AS_T_OBJECTID: return 25;   /* text */
    case AS_T_BYTES: return 17;      /* bytea */
    case AS_T_UUID: return 2950;     /* uuid */
    case AS_T_TIMESTAMP: return 1184; /* timestamptz */
    case AS_T_DATE: return 1082;     /* date */
    case AS_T_JSON: return 3802;     /* jsonb */
    default: return 0;               /* numeric: its binary form is not written here */
  }
}

int pg_copy_binary_header(as_buf *b) {
  static const char sig[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', '\377', '\r', '\n', '\0'};
  if (as_buf_append(b, sig, sizeof sig) != AS_OK) return AS_ERR;
  return as_buf_put_be32(b, 0) || as_buf_put_be32(b, 0) ? AS_ERR : AS_OK;
}

int pg_copy_binary_trailer(as_buf *b) {
  uint8_t end[2] = {0xff, 0xff};
  return as_buf_append(b, end, 2);
}

/* One field: its length and bytes (NULL: length -1). */
static int field(as_buf *b, const void *p, size_t len) {
  if (len > INT32_MAX) return AS_EINVAL;
  if (as_buf_put_be32(b, (uint32_t)len) != AS_OK) return AS_ERR;
  return len ? as_buf_append(b, p, len) : AS_OK;
}

int pg_copy_binary_value(as_buf *b, as_type col, const as_value *v) {
  if (v->type == AS_T_NULL) return as_buf_put_be32(b, 0xffffffffu);
  if (v->type != col) return AS_EINVAL;
  switch (v->type) {
    case AS_T_BOOL: {
      uint8_t x = v->u.b ? 1 : 0;
      return field(b, &x, 1);
    }
    case AS_T_INT64:
      return as_buf_put_be32(b, 8) || as_buf_put_be64(b, (uint64_t)v->u.i) ? AS_ERR : AS_OK;
    case AS_T_DOUBLE: {
      uint64_t bits;
      memcpy(&bits, &v->u.d, sizeof bits);
      return as_buf_put_be32(b, 8) || as_buf_put_be64(b, bits) ? AS_ERR : AS_OK;
    }
    case AS_T_TIMESTAMP:
      if (v->u.ts_us < AS_TS_MIN_US || v->u.ts_us > AS_TS_MAX_US) return AS_EINVAL;
      return as_buf_put_be32(b, 8) || as_buf_put_be64(b, (uint64_t)(v->u.ts_us - PG_EPOCH_US))
                 ? AS_ERR : AS_OK;
    case AS_T_DATE:
      if (v->u.days < AS_DATE_MIN_DAYS || v->u.days > AS_DATE_MAX_DAYS) return AS_EINVAL;
      return as_buf_put_be32(b, 4) || as_buf_put_be32(b, (uint32_t)(int32_t)(v->u.days - PG_EPOCH_DAYS))
                 ? AS_ERR : AS_OK;
    case AS_T_UUID: return field(b, v->u.uuid, 16);
    case AS_T_BYTES: return field(b, v->u.s.ptr, v->u.s.len);
    case AS_T_TEXT:
      if (memchr(v->u.s.ptr, 0, v->u.s.len)) return AS_EINVAL; /* the text path says why */
      return field(b, v->u.s.ptr, v->u.s.len);
    case AS_T_JSON: {
      if (memchr(v->u.s.ptr, 0, v->u.s.len) || v->u.s.len >= INT32_MAX) return AS_EINVAL;
      uint8_t version = 1; /* jsonb's binary form: a version byte, then the text */
      if (as_buf_put_be32(b, (uint32_t)v->u.s.len + 1) != AS_OK || as_buf_putc(b, version) != AS_OK)
        return AS_ERR;
      return v->u.s.len ? as_buf_append(b, v->u.s.ptr, v->u.s.len) : AS_OK;
    }
    case AS_T_OBJECTID: {
      static const char hx[] = "0123456789abcdef";
      char h[24];
      for (int i = 0; i < 12; i++) {
        h[2 * i] = hx[v->u.oid[i] >> 4];
        h[2 * i + 1] = hx[v->u.oid[i] & 15];
      }
      return field(b, h, sizeof h);
    }
    default: return AS_EINVAL;
  }
}
