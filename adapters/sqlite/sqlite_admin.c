/* sqlite_admin.c — SQLite adapter: the read-only administrative callbacks: describe (`arraysync
 * infer`), check_live (`arraysync check --live`) and versions. They open their own read-only
 * connection, so a missing database file is reported, never created. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "sqlite_internal.h"

typedef void (*report_fn)(void *ctx, bool ok, const char *what, const char *fix);

static int open_ro(as_node *n, sqlite3 **db, as_error *err) {
  *db = NULL;
  if (access(n->path, F_OK) != 0) {
    return as_error_set(err, AS_DOM_SQLITE, AS_ENOTFOUND, "node %s: no database file %s yet",
                        n->name, n->path);
  }
  int rc = sqlite3_open_v2(n->path, db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_exec(*db, "PRAGMA schema_version", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    int r = sq_fail(*db, rc, err, "open");
    as_error_prefix(err, "node %s: %s", n->name, n->path);
    sqlite3_close(*db);
    *db = NULL;
    return r == AS_RETRY ? AS_RETRY : AS_ERR;
  }
  sqlite3_busy_timeout(*db, n->busy_ms);
  return AS_OK;
}

static int describe_db(sqlite3 *db, const char *table, as_table_desc *out, as_error *err) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1)",
                              -1, &st, NULL);
  if (rc != SQLITE_OK) return sq_fail(db, rc, err, "table_info");
  sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
  int ret = AS_OK;
  while (ret == AS_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    const char *type = (const char *)sqlite3_column_text(st, 1);
    if (as_table_desc_add(out, name ? name : "", type ? type : "", sqlite3_column_int(st, 2) != 0,
                          sqlite3_column_int(st, 3)) != AS_OK) {
      ret = as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
    }
  }
  if (ret == AS_OK && rc != SQLITE_DONE) ret = sq_fail(db, rc, err, "table_info");
  sqlite3_finalize(st);
  if (ret == AS_OK && out->ncols == 0) {
    ret = as_error_set(err, AS_DOM_SQLITE, AS_ENOTFOUND, "no table \"%s\"", table);
  }
  out->affinity = true;
  if (ret == AS_OK && !(out->table = strdup(table))) {
    ret = as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
  }
  return ret;
}

int sq_describe(as_node *n, const char *table, as_table_desc *out, as_error *err) {
  sqlite3 *db = NULL;
  int rc = open_ro(n, &db, err);
  if (rc == AS_OK) rc = describe_db(db, table, out, err);
  if (rc == AS_ENOTFOUND && db) as_error_prefix(err, "node %s (%s)", n->name, n->path);
  sqlite3_close(db);
  return rc;
}

/* SQLite's type affinity of a declared type (the rules of its "Datatypes" page). */
static const char *affinity(const char *decl) {
  char up[128];
  size_t i = 0;
  for (; decl[i] && i + 1 < sizeof up; i++) up[i] = (char)(decl[i] >= 'a' && decl[i] <= 'z' ? decl[i] - 32 : decl[i]);
  up[i] = '\0';
  if (strstr(up, "INT")) return "INTEGER";
  if (strstr(up, "CHAR") || strstr(up, "CLOB") || strstr(up, "TEXT")) return "TEXT";
  if (!up[0] || strstr(up, "BLOB")) return "BLOB";
  if (strstr(up, "REAL") || strstr(up, "FLOA") || strstr(up, "DOUB")) return "REAL";
  return "NUMERIC";
}

/* Columns the mapping leaves out that every insert must fill (NOT NULL, no default, not part
 * of the primary key, not generated): every row another node inserts would be refused. */
static bool required_unmapped(as_node *n, sqlite3 *db, const as_schema *s, report_fn report,
                              void *ctx) {
  char what[900], fix[600];
  sqlite3_stmt *st = NULL;
  bool ok = true;
  const char *q = "SELECT name FROM pragma_table_xinfo(?) WHERE \"notnull\" AND dflt_value IS "
                  "NULL AND pk = 0 AND hidden = 0";
  if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
    return true; /* the column checks above have read the table already */
  sqlite3_bind_text(st, 1, s->table, -1, SQLITE_STATIC);
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    bool mapped = false;
    for (size_t i = 0; name && !mapped && i < s->ncols; i++)
      mapped = sqlite3_stricmp(s->cols[i].name, name) == 0;
    if (!name || mapped) continue;
    snprintf(what, sizeof what, "node %s: column \"%s\" of table \"%s\" is NOT NULL without a "
             "default and mapping %s does not map it: every row another node inserts here is "
             "refused (a dead letter)", n->name, name, s->table, s->name);
    snprintf(fix, sizeof fix, "map the column, or give it a DEFAULT (SQLite: recreate the table)");
    report(ctx, false, what, fix);
    ok = false;
  }
  sqlite3_finalize(st);
  return ok;
}

static void check_table(as_node *n, sqlite3 *db, const as_schema *s, report_fn report,
                        void *ctx, bool *all_ok) {
  char what[900], fix[900];
  as_table_desc d = {0};
  as_error err = {0};
  int rc = describe_db(db, s->table, &d, &err);
  if (rc == AS_ENOTFOUND) {
    snprintf(what, sizeof what, "node %s: table \"%s\" is missing: `arraysync install` creates "
             "it (mapping %s)", n->name, s->table, s->name);
    report(ctx, true, what, "");
    return;
  }
  bool ok = rc == AS_OK;
  for (size_t i = 0; ok && i < s->ntable; i++) {
    const as_column *c = &s->cols[i];
    const as_table_column *tc = NULL;
    for (size_t j = 0; j < d.ncols; j++) {
      if (sqlite3_stricmp(d.cols[j].name, c->name) == 0) tc = &d.cols[j];
    }
    const char *want = as_schema_sqlite_type(c->type);
    const char *file = c->mark.file ? c->mark.file : s->file;
    if (!tc) {
      snprintf(what, sizeof what, "node %s: table \"%s\" has no column \"%s\" (%s:%d:%d, mapping "
               "%s)", n->name, s->table, c->name, file, c->mark.line, c->mark.col, s->name);
      snprintf(fix, sizeof fix, "ALTER TABLE \"%s\" ADD COLUMN \"%s\" %s, or map an existing "
               "column", s->table, c->name, want);
      report(ctx, false, what, fix);
      ok = false;
    } else if (strcmp(affinity(tc->sql_type), affinity(want)) != 0) {
      snprintf(what, sizeof what, "node %s: column \"%s\".\"%s\" is %s (%s affinity), the "
               "mapping wants %s (%s:%d:%d, mapping %s)", n->name, s->table, c->name,
               tc->sql_type[0] ? tc->sql_type : "untyped", affinity(tc->sql_type), want, file,
               c->mark.line, c->mark.col, s->name);
      snprintf(fix, sizeof fix, "change the column's type to %s, or the mapping's type to one "
               "the column holds", want);
      report(ctx, false, what, fix);
      ok = false;
    }
  }
  if (ok && s->direction != AS_DIR_TO_MONGO) ok = required_unmapped(n, db, s, report, ctx);
  if (ok) {
    /* the sink's upsert needs a PRIMARY KEY or UNIQUE constraint on the key */
    as_buf sql = AS_BUF_INIT;
    uint8_t *mask = malloc(s->ncols ? s->ncols : 1);
    sqlite3_stmt *st = NULL;
    if (mask) memset(mask, 1, s->ncols);
    if (mask) sq_upsert_sql(&sql, s, mask);
    ok = mask && sqlite3_prepare_v2(db, as_buf_cstr(&sql), -1, &st, NULL) == SQLITE_OK;
    snprintf(what, sizeof what, "node %s: table \"%s\" matches mapping %s (columns, types, a "
             "unique key for upserts)", n->name, s->table, s->name);
    snprintf(fix, sizeof fix, "%s: add a PRIMARY KEY or UNIQUE constraint on the mapping's key",
             mask ? sqlite3_errmsg(db) : "out of memory");
    report(ctx, ok, what, fix);
    sqlite3_finalize(st);
    free(mask);
    as_buf_free(&sql);
  } else if (rc != AS_OK) {
    snprintf(what, sizeof what, "node %s: table \"%s\" can be read", n->name, s->table);
    report(ctx, false, what, err.message);
  }
  *all_ok = *all_ok && ok;
  as_table_desc_free(&d);
}

static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return strdup(".");
  if (slash == path) return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

int sq_check_live(as_node *n, report_fn report, void *ctx) {
  char what[900], fix[900];
  char *dir = dir_of(n->path);
  bool exists = access(n->path, F_OK) == 0;
  bool ok = exists ? access(n->path, R_OK | W_OK) == 0 && dir && access(dir, W_OK | X_OK) == 0
                   : dir && access(dir, W_OK | X_OK) == 0;
  int e = errno;
  if (exists) {
    snprintf(what, sizeof what, "node %s: database file %s and its directory are writable (the "
             "-wal and -shm files live beside it)", n->name, n->path);
  } else {
    snprintf(what, sizeof what, "node %s: database file %s is missing; its directory %s is "
             "writable (it is created on first use)", n->name, n->path, dir ? dir : "?");
  }
  snprintf(fix, sizeof fix, "%s: give the connector's user write access to %s%s%s",
           strerror(e), exists ? n->path : "", exists ? " and " : "", dir ? dir : "?");
  report(ctx, ok, what, fix);
  free(dir);
  if (!ok || !exists) return ok ? AS_OK : AS_ERR;
  sqlite3 *db = NULL;
  as_error err = {0};
  int rc = open_ro(n, &db, &err);
  snprintf(what, sizeof what, "node %s: %s opens as an SQLite database", n->name, n->path);
  report(ctx, rc == AS_OK, what, err.message);
  bool all_ok = rc == AS_OK;
  for (size_t i = 0; all_ok && i < n->nschemas; i++) {
    check_table(n, db, n->schemas[i], report, ctx, &all_ok);
  }
  sqlite3_close(db);
  return all_ok ? AS_OK : AS_ERR;
}

void sq_versions(void (*fn)(void *ctx, const char *lib, const char *version), void *ctx) {
  fn(ctx, "SQLite", sqlite3_libversion());
}
