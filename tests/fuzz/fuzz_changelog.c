/* fuzz_changelog.c — the changelog row decoders of the SQL adapters, without a server:
 * - SQLite: the JSON a changelog trigger (or anything writing into _arraysync_changelog)
 *   leaves in the old/new columns, decoded as the stream does (sq_changelog_fill_row, the pure
 *   part of convert_row in adapters/sqlite/sqlite_adapter.c): every column, keys only, and
 *   changed columns against the old row;
 * - the dead-letter raw row form both SQL adapters store and retry (as_adapter_decode_row_json,
 *   adapters/adapter.c), which takes PostgreSQL's column texts through the same text decoder.
 * (The PostgreSQL trigger changelog decoder is a static function of pg_capture.c; the
 * pgoutput decoder has its own target, fuzz_pgoutput.c.)
 *
 * Input: NEW, or OLD NUL NEW (the old and new JSON texts separated by a NUL byte), decoded
 * through FUZZ_MAP_ALL (every column type, composite key).
 *
 * Properties checked beyond "no crash, no leak":
 * - a decoded row, bound the adapter's way (sq_bind_value) and read back from SQLite, is equal;
 * - the keys-only decode equals the key columns of the full decode; the changed-columns decode
 *   of a row against itself holds the key columns only;
 * - every error return carries a message. */
#include <jansson.h>
#include <sqlite3.h>

#include "adapter.h"
#include "fuzz_common.h"
#include "fuzz_mappings.h"
#include "sqlite_internal.h"

static as_schema *sc;
static sqlite3 *db;
static sqlite3_stmt *echo;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  sc = fuzz_schema(FUZZ_MAP_ALL);
  if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "SELECT ?1", -1, &echo, NULL) != SQLITE_OK)
    abort();
  return 0;
}

static void check_stored(const as_row *r) {
  for (size_t i = 0; i < r->n; i++) {
    if (!as_row_has(r, i)) continue;
    as_error err = {0};
    sqlite3_reset(echo);
    sqlite3_clear_bindings(echo);
    FUZZ_CHECK(sq_bind_value(echo, 1, &r->v[i], &err) == AS_OK, "column %s: cannot bind: %s",
               sc->cols[i].name, err.message);
    FUZZ_CHECK(sqlite3_step(echo) == SQLITE_ROW, "SELECT ?: %s", sqlite3_errmsg(db));
    sq_cell c;
    sq_cell_from_stmt(echo, 0, &c);
    as_value w = AS_VALUE_NULL;
    int rc = sq_cell_to_value(&c, sc->cols[i].type, &w, &err);
    FUZZ_CHECK(rc == AS_OK, "column %s: stored value does not read back: %s", sc->cols[i].name,
               err.message);
    FUZZ_CHECK(as_value_equal(&r->v[i], &w), "column %s: value changed through SQLite",
               sc->cols[i].name);
    as_value_clear(&w);
  }
  sqlite3_reset(echo);
  sqlite3_clear_bindings(echo);
}

/* Decodes `row` with `which`; returns the rc, *r filled (caller clears). */
static int decode(const json_t *row, const json_t *other, int which, as_row *r) {
  as_error err = {0};
  if (as_row_init(r, sc->ncols) != AS_OK) abort();
  int rc = sq_changelog_fill_row(sc, r, row, other, which, &err);
  FUZZ_CHECK_ERR(rc, &err);
  FUZZ_CHECK(rc == AS_OK || rc == AS_EDATA || rc == AS_ERR, "unexpected rc %d", rc);
  return rc;
}

static void check_sqlite(const json_t *jo, const json_t *jn) {
  as_row all = {0}, keys = {0}, same = {0}, changed = {0};
  int rc = decode(jn, NULL, 0, &all);
  if (rc == AS_OK) {
    check_stored(&all);
    fuzz_check_row_json(sc, &all);
    FUZZ_CHECK(decode(jn, NULL, 1, &keys) == AS_OK, "keys fail where the whole row decodes");
    for (size_t i = 0; i < sc->ncols; i++) {
      FUZZ_CHECK(as_row_has(&keys, i) == sc->cols[i].is_key, "keys-only decode: column %s",
                 sc->cols[i].name);
      if (sc->cols[i].is_key)
        FUZZ_CHECK(as_value_equal(&keys.v[i], &all.v[i]), "key %s differs", sc->cols[i].name);
    }
    FUZZ_CHECK(decode(jn, jn, 2, &same) == AS_OK, "self-diff fails where the row decodes");
    for (size_t i = 0; i < sc->ncols; i++)
      FUZZ_CHECK(as_row_has(&same, i) == sc->cols[i].is_key, "self-diff set column %s",
                 sc->cols[i].name);
  }
  if (jo) {
    (void)decode(jn, jo, 2, &changed);
    as_row_clear(&changed);
    (void)decode(jo, NULL, 1, &changed);
  }
  as_row_clear(&all);
  as_row_clear(&keys);
  as_row_clear(&same);
  as_row_clear(&changed);
}

static void check_dead_letter(const char *raw) {
  as_delta d;
  as_error err = {0};
  memset(&d, 0, sizeof d);
  int rc = as_adapter_decode_row_json(sc, raw, &d, &err);
  FUZZ_CHECK_ERR(rc, &err);
  if (rc == AS_OK) {
    FUZZ_CHECK(d.op == AS_OP_INSERT && d.row.n == sc->ncols, "dead-letter row shape");
    check_stored(&d.row);
    fuzz_check_row_json(sc, &d.row);
  }
  as_delta_clear(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!sc) LLVMFuzzerInitialize(NULL, NULL);
  if (size > 1 << 16) return 0;
  char *text = fuzz_cstr(data, size);
  const char *nul = memchr(data, 0, size);
  const char *old_txt = nul ? text : NULL;
  const char *new_txt = nul ? text + (nul - (const char *)data) + 1 : text;
  json_error_t je;
  json_t *jo = old_txt ? json_loads(old_txt, JSON_ALLOW_NUL, &je) : NULL;
  json_t *jn = json_loads(new_txt, JSON_ALLOW_NUL, &je);
  if (jn) check_sqlite(jo, jn);
  check_dead_letter(new_txt);
  json_decref(jo);
  json_decref(jn);
  free(text);
  return 0;
}
