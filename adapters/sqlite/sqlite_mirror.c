/* sqlite_mirror.c — the conflicts mirror table on SQLite (adapter.h, mirror_*): a plain table
 * without capture triggers, written on the sink's connection between its transactions. */
#include "sqlite_internal.h"

#include <stdlib.h>
#include <string.h>

#include "as_ddl.h"

/* sql with its one "%s" replaced by the quoted table name (caller frees; NULL: out of memory) */
static char *with(const char *sql, const char *table) {
  const char *at = strstr(sql, "%s");
  as_buf b = AS_BUF_INIT;
  if (!at || as_buf_append(&b, sql, (size_t)(at - sql)) != AS_OK ||
      as_sql_quote_ident(table, &b) != AS_OK || as_buf_append_str(&b, at + 2) != AS_OK) {
    as_buf_free(&b);
    return NULL;
  }
  return as_buf_steal(&b);
}

static int prepare(as_node *n, const char *sql_fmt, const char *table, sqlite3_stmt **st,
                   as_error *err) {
  int rc = sq_need_db(n, err);
  if (rc != AS_OK) return rc;
  char *sql = with(sql_fmt, table);
  if (!sql) return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
  int s = sqlite3_prepare_v2(n->db, sql, -1, st, NULL);
  free(sql);
  return s == SQLITE_OK ? AS_OK : sq_fail(n->db, s, err, "conflicts mirror table");
}

int sq_mirror_ensure(as_node *n, const char *table, as_error *err) {
  int rc = sq_need_db(n, err);
  if (rc != AS_OK) return rc;
  char *sql = with("CREATE TABLE IF NOT EXISTS %s (id INTEGER PRIMARY KEY, mapping TEXT NOT NULL, "
                   "key TEXT NOT NULL, strategy TEXT, columns TEXT, chosen TEXT, local_node TEXT, "
                   "local_row TEXT, remote_node TEXT, remote_row TEXT, created TEXT)",
                   table);
  rc = sql ? sq_exec(n->db, sql, err) : as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
  free(sql);
  return rc;
}

int sq_mirror_ids(as_node *n, const char *table, int64_t **ids, size_t *nids, as_error *err) {
  sqlite3_stmt *st = NULL;
  *ids = NULL;
  *nids = 0;
  size_t cap = 0;
  int rc = prepare(n, "SELECT id FROM %s ORDER BY id", table, &st, err), s = SQLITE_DONE;
  while (rc == AS_OK && (s = sqlite3_step(st)) == SQLITE_ROW) {
    if (*nids == cap) {
      size_t nc = cap ? cap * 2 : 64;
      int64_t *p = realloc(*ids, nc * sizeof *p);
      if (!p) {
        rc = as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
        break;
      }
      *ids = p;
      cap = nc;
    }
    (*ids)[(*nids)++] = sqlite3_column_int64(st, 0);
  }
  if (rc == AS_OK && s != SQLITE_DONE) rc = sq_fail(n->db, s, err, "read the conflicts mirror table");
  sqlite3_finalize(st);
  if (rc != AS_OK) {
    free(*ids);
    *ids = NULL;
    *nids = 0;
  }
  return rc;
}

static void text(sqlite3_stmt *st, int i, const char *v) {
  if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, i);
}

int sq_mirror_put(as_node *n, const char *table, const as_mirror_row *m, as_error *err) {
  sqlite3_stmt *st = NULL;
  int rc = prepare(n,
                   "INSERT OR IGNORE INTO %s (id, mapping, key, strategy, columns, chosen, "
                   "local_node, local_row, remote_node, remote_row, created) VALUES (?1, ?2, ?3, "
                   "?4, ?5, ?6, ?7, ?8, ?9, ?10, strftime('%Y-%m-%dT%H:%M:%fZ', ?11, 'unixepoch'))",
                   table, &st, err);
  if (rc != AS_OK) return rc;
  sqlite3_bind_int64(st, 1, m->id);
  text(st, 2, m->mapping);
  text(st, 3, m->key_json);
  text(st, 4, m->strategy);
  text(st, 5, m->columns_json);
  text(st, 6, m->chosen);
  text(st, 7, m->local_node);
  text(st, 8, m->local_row_json);
  text(st, 9, m->remote_node);
  text(st, 10, m->remote_row_json);
  sqlite3_bind_double(st, 11, (double)m->created_us / 1e6);
  int s = sqlite3_step(st);
  if (s != SQLITE_DONE) rc = sq_fail(n->db, s, err, "write the conflicts mirror table");
  sqlite3_finalize(st);
  return rc;
}

int sq_mirror_del(as_node *n, const char *table, int64_t id, as_error *err) {
  sqlite3_stmt *st = NULL;
  int rc = prepare(n, "DELETE FROM %s WHERE id = ?1", table, &st, err);
  if (rc != AS_OK) return rc;
  sqlite3_bind_int64(st, 1, id);
  int s = sqlite3_step(st);
  if (s != SQLITE_DONE) rc = sq_fail(n->db, s, err, "delete from the conflicts mirror table");
  sqlite3_finalize(st);
  return rc;
}
