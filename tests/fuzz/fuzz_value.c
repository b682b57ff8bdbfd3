/* fuzz_value.c — text -> typed value, as values written by other programs arrive: the shared
 * text forms (as_value.h as_value_from_text, for every type), the PostgreSQL text decoder
 * (pg_value_from_text) and the SQLite cell decoder (sq_cell_to_value: text, blob, integer and
 * real cells, as the sqlite3 shell may store them).
 *
 * Input: byte 0 picks the column type (mod the number of types), byte 1 the SQLite cell kind;
 * the rest is the text (any bytes, NULs included). For integer and real cells the first 8
 * bytes of the text are the number.
 *
 * Properties checked beyond "no crash, no leak":
 * - a value parsed from text writes back to text (as_value_to_text, pg_value_to_text) that
 *   parses to an equal value with the same hash encoding, and that text is a fixed point;
 * - a value read from an SQLite cell and bound back the adapter's way (sq_bind_value), then
 *   read again from SQLite, is equal;
 * - the value's canonical JSON form reads back equal;
 * - every error return carries a message. */
#include <math.h>
#include <sqlite3.h>

#include "as_hash.h"
#include "fuzz_common.h"
#include "sqlite_internal.h"

/* adapters/postgres/pg_internal.h (not included: it defines its own struct as_node, as
 * sqlite_internal.h does) */
int pg_value_to_text(const as_value *v, char **out, as_error *err);
int pg_value_from_text(as_type t, const char *s, size_t len, as_value *out, as_error *err);

static sqlite3 *db;
static sqlite3_stmt *echo;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "SELECT ?1", -1, &echo, NULL) != SQLITE_OK)
    abort();
  return 0;
}

static void check_equal(const as_value *a, const as_value *b, const char *what, const char *txt) {
  as_error err = {0};
  FUZZ_CHECK(as_value_equal(a, b), "%s: %s value changed (text %s)", what, as_type_name(a->type),
             txt ? txt : "?");
  as_buf e1 = AS_BUF_INIT, e2 = AS_BUF_INIT;
  FUZZ_CHECK(as_value_encode(a, &e1, &err) == AS_OK && as_value_encode(b, &e2, &err) == AS_OK,
             "%s: cannot encode: %s", what, err.message);
  FUZZ_CHECK(e1.len == e2.len && memcmp(e1.data, e2.data, e1.len) == 0,
             "%s: equal %s values hash differently (text %s)", what, as_type_name(a->type),
             txt ? txt : "?");
  as_buf_free(&e1);
  as_buf_free(&e2);
}

/* to_text -> from_text -> equal; the text a fixed point. `pg` uses the PostgreSQL pair. */
static void check_text_roundtrip(const as_value *v, as_type t, bool pg) {
  const char *what = pg ? "postgres text" : "as_value text";
  as_error err = {0};
  char *t1 = NULL, *t2 = NULL;
  int rc = pg ? pg_value_to_text(v, &t1, &err) : as_value_to_text(v, &t1, &err);
  /* PostgreSQL text cannot hold a NUL byte: refused with AS_EDATA, not written cut short */
  if (pg && rc == AS_EDATA && (v->type == AS_T_TEXT || v->type == AS_T_JSON) &&
      memchr(v->u.s.ptr, 0, v->u.s.len)) {
    FUZZ_CHECK(t1 == NULL && err.message[0], "NUL refusal without a message");
    return;
  }
  FUZZ_CHECK(rc == AS_OK, "%s: parsed %s value has no text form: %s", what, as_type_name(t),
             err.message);
  if (v->type == AS_T_NULL) {
    free(t1);
    return;
  }
  FUZZ_CHECK(t1 != NULL, "%s: no text", what);
  /* text may hold NULs: its length is the value's for text-like types */
  size_t len = (v->type == AS_T_TEXT || v->type == AS_T_DECIMAL || v->type == AS_T_JSON)
                   ? v->u.s.len
                   : strlen(t1);
  as_value w = AS_VALUE_NULL;
  rc = pg ? pg_value_from_text(t, t1, len, &w, &err) : as_value_from_text(t, t1, len, &w, &err);
  FUZZ_CHECK(rc == AS_OK, "%s: written %s text does not parse: %s\n  %s", what, as_type_name(t),
             err.message, t1);
  check_equal(v, &w, what, t1);
  rc = pg ? pg_value_to_text(&w, &t2, &err) : as_value_to_text(&w, &t2, &err);
  FUZZ_CHECK(rc == AS_OK && t2 && strcmp(t1, t2) == 0,
             "%s: %s text is not a fixed point\n  %s\n  %s", what, as_type_name(t), t1,
             t2 ? t2 : "?");
  free(t1);
  free(t2);
  as_value_clear(&w);
}

static void check_json_roundtrip(const as_value *v) {
  as_error err = {0};
  json_t *j = as_value_to_json(v, &err);
  FUZZ_CHECK(j != NULL, "%s value has no JSON form: %s", as_type_name(v->type), err.message);
  as_value w = AS_VALUE_NULL;
  int rc = as_value_from_json(j, &w, &err);
  FUZZ_CHECK(rc == AS_OK, "JSON form of a %s does not read back: %s", as_type_name(v->type),
             err.message);
  check_equal(v, &w, "value JSON", NULL);
  as_value_clear(&w);
  json_decref(j);
}

/* Binds v the adapter's way, reads it back through SQLite and the cell decoder. */
static void check_sqlite_roundtrip(const as_value *v, as_type t) {
  as_error err = {0};
  sqlite3_reset(echo);
  sqlite3_clear_bindings(echo);
  int rc = sq_bind_value(echo, 1, v, &err);
  FUZZ_CHECK(rc == AS_OK, "cannot bind a %s: %s", as_type_name(t), err.message);
  FUZZ_CHECK(sqlite3_step(echo) == SQLITE_ROW, "SELECT ?: %s", sqlite3_errmsg(db));
  sq_cell c;
  sq_cell_from_stmt(echo, 0, &c);
  as_value w = AS_VALUE_NULL;
  rc = sq_cell_to_value(&c, t, &w, &err);
  FUZZ_CHECK(rc == AS_OK, "a %s as the adapter stores it does not read back: %s", as_type_name(t),
             err.message);
  check_equal(v, &w, "sqlite bind/read", NULL);
  as_value_clear(&w);
  sqlite3_reset(echo);
  sqlite3_clear_bindings(echo);
}

static void check_parsed(const as_value *v, as_type t, const char *what) {
  FUZZ_CHECK(v->type == t || v->type == AS_T_NULL, "%s: asked for %s, got %s", what,
             as_type_name(t), as_type_name(v->type));
  if (v->type == AS_T_NULL) { /* NULL has no text form; SQL NULL stays NULL */
    check_json_roundtrip(v);
    check_sqlite_roundtrip(v, t);
    return;
  }
  check_text_roundtrip(v, t, false);
  check_text_roundtrip(v, t, true);
  check_json_roundtrip(v);
  check_sqlite_roundtrip(v, t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!db) LLVMFuzzerInitialize(NULL, NULL);
  if (size < 2 || size > 4096) return 0;
  as_type t = (as_type)(data[0] % AS_T__COUNT);
  int kind = data[1] % 5;
  const char *s = (const char *)data + 2;
  size_t n = size - 2;
  as_error err = {0};
  as_value v = AS_VALUE_NULL;

  int rc = as_value_from_text(t, s, n, &v, &err);
  FUZZ_CHECK_ERR(rc, &err);
  if (rc == AS_OK) {
    FUZZ_CHECK(t == AS_T_TEXT || !memchr(s, 0, n), "%s text with a NUL byte accepted",
               as_type_name(t));
    FUZZ_CHECK(t != AS_T_TEXT || as_utf8_valid(s, n), "text that is not UTF-8 accepted");
    check_parsed(&v, t, "as_value_from_text");
  }
  as_value_clear(&v);

  memset(&err, 0, sizeof err);
  rc = pg_value_from_text(t, s, n, &v, &err);
  FUZZ_CHECK_ERR(rc, &err);
  if (rc == AS_OK) check_parsed(&v, t, "pg_value_from_text");
  as_value_clear(&v);

  sq_cell c;
  memset(&c, 0, sizeof c);
  switch (kind) {
    case 0: c.k = SQ_CELL_TEXT; c.p = s; c.len = n; break;
    case 1: c.k = SQ_CELL_BLOB; c.p = s; c.len = n; break;
    case 2:
    case 3:
      if (n < 8) return 0;
      c.k = kind == 2 ? SQ_CELL_INT : SQ_CELL_REAL;
      memcpy(kind == 2 ? (void *)&c.i : (void *)&c.d, s, 8);
      /* SQLite stores no NaN (a bound NaN becomes NULL) */
      if (kind == 3 && isnan(c.d)) return 0;
      break;
    default: c.k = SQ_CELL_NULL; break;
  }
  memset(&err, 0, sizeof err);
  rc = sq_cell_to_value(&c, t, &v, &err);
  FUZZ_CHECK_ERR(rc, &err);
  if (rc == AS_OK) check_parsed(&v, t, "sq_cell_to_value");
  as_value_clear(&v);
  return 0;
}
