/* as_state_conflicts.c — the state store's conflicts table (see as_state.h): recording, reading
 * back, settling, counts; the upgrade of stores made before both versions were kept. */
#include "as_state_int.h"
#include "as_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define sqlerr as_state_sqlerr

/* The first form (kept for old stores): local = the losing delta's JSON, winner = the
 * winner's origin. The columns after it were added with as_conflict_rec. */
static const char *const create_sql =
    "CREATE TABLE IF NOT EXISTS conflicts(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  created_us INTEGER NOT NULL, mapping TEXT, key TEXT, local TEXT, remote TEXT,"
    "  winner TEXT, strategy TEXT, status TEXT NOT NULL DEFAULT 'open')";

static const char *const added_cols[][2] = {
    {"columns", "TEXT"},       {"local_node", "TEXT"},   {"local_row", "TEXT"},
    {"local_vv", "TEXT"},      {"local_ts_us", "INTEGER"}, {"remote_node", "TEXT"},
    {"remote_row", "TEXT"},    {"remote_vv", "TEXT"},    {"remote_ts_us", "INTEGER"},
    {"resolved_us", "INTEGER"}, {"resolved_row", "TEXT"}};
#define NADDED (sizeof added_cols / sizeof *added_cols)

/* Records of the first form that lost last-write-wins were settled when recorded. */
#define LEGACY_WHERE "local_node IS NULL AND remote_node IS NULL AND columns IS NULL"

static bool has_column(as_state *st, const char *name) {
  sqlite3_stmt *q = NULL;
  bool found = false;
  if (sqlite3_prepare_v2(st->db, "SELECT 1 FROM pragma_table_info('conflicts') WHERE name = ?1",
                         -1, &q, NULL) == SQLITE_OK) {
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    found = sqlite3_step(q) == SQLITE_ROW;
  }
  sqlite3_finalize(q);
  return found;
}

static int exec(as_state *st, const char *sql, as_error *err) {
  char *msg = NULL;
  if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) == SQLITE_OK) return AS_OK;
  int rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "conflicts table: %s", msg ? msg : sql);
  sqlite3_free(msg);
  return rc;
}

int as_state_conflicts_open(as_state *st, as_error *err) {
  if (st->readonly) { /* an older store stays as it is: read with NULL for what it lacks */
    st->conflicts_v2 = has_column(st, "resolved_row");
    return AS_OK;
  }
  int rc = exec(st, create_sql, err);
  bool upgraded = false;
  for (size_t i = 0; rc == AS_OK && i < NADDED; i++) {
    if (has_column(st, added_cols[i][0])) continue;
    char sql[128];
    snprintf(sql, sizeof sql, "ALTER TABLE conflicts ADD COLUMN %s %s", added_cols[i][0],
             added_cols[i][1]);
    rc = exec(st, sql, err);
    upgraded = true;
  }
  if (rc == AS_OK && upgraded) {
    rc = exec(st, "UPDATE conflicts SET status = 'resolved', resolved_us = created_us WHERE "
                  "status = 'open' AND strategy = 'lww' AND " LEGACY_WHERE, err);
  }
  if (rc == AS_OK)
    rc = exec(st, "CREATE INDEX IF NOT EXISTS conflicts_open ON conflicts(status, mapping)", err);
  /* the conflicts put in a SQL node's mirror table (as_conflict_mirror.c) */
  if (rc == AS_OK)
    rc = exec(st, "CREATE TABLE IF NOT EXISTS conflict_mirror(id INTEGER PRIMARY KEY)", err);
  st->conflicts_v2 = rc == AS_OK;
  return rc;
}

static void bind_text(sqlite3_stmt *q, int i, const char *s) {
  sqlite3_bind_text(q, i, s, -1, SQLITE_STATIC);
}

static void bind_ts(sqlite3_stmt *q, int i, int64_t ts) {
  if (ts) sqlite3_bind_int64(q, i, ts);
  else sqlite3_bind_null(q, i);
}

int as_state_conflict_record(as_state *st, const as_conflict_rec *c, int64_t *id_out,
                             as_error *err) {
  if (!c->mapping || !c->key)
    return as_error_set(err, AS_DOM_STATE, AS_EINVAL, "conflict record: mapping and key are required");
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_OK;
  int64_t now = as_now_us();
  if (sqlite3_prepare_v2(st->db,
                         "INSERT INTO conflicts(created_us, mapping, key, winner, strategy, status,"
                         " columns, local_node, local_row, local_vv, local_ts_us, remote_node,"
                         " remote_row, remote_vv, remote_ts_us, resolved_us) VALUES (?1,?2,?3,?4,"
                         "?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)",
                         -1, &q, NULL) != SQLITE_OK) {
    rc = sqlerr(st, err, "prepare conflict");
    goto done;
  }
  sqlite3_bind_int64(q, 1, now);
  bind_text(q, 2, c->mapping);
  bind_text(q, 3, c->key);
  bind_text(q, 4, c->chosen);
  bind_text(q, 5, c->strategy);
  bind_text(q, 6, c->open ? "open" : "resolved");
  bind_text(q, 7, c->columns_json);
  bind_text(q, 8, c->local.node);
  bind_text(q, 9, c->local.row_json);
  bind_text(q, 10, c->local.vv_json);
  bind_ts(q, 11, c->local.ts_us);
  bind_text(q, 12, c->remote.node);
  bind_text(q, 13, c->remote.row_json);
  bind_text(q, 14, c->remote.vv_json);
  bind_ts(q, 15, c->remote.ts_us);
  bind_ts(q, 16, c->open ? 0 : now);
  if (sqlite3_step(q) != SQLITE_DONE) rc = sqlerr(st, err, "write conflict");
  else if (id_out) *id_out = sqlite3_last_insert_rowid(st->db);
done:
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

void as_conflict_clear(as_conflict *c) {
  if (!c) return;
  free(c->mapping); free(c->key); free(c->strategy); free(c->columns); free(c->status);
  free(c->chosen); free(c->resolved_row);
  free(c->local.node); free(c->local.row); free(c->local.vv);
  free(c->remote.node); free(c->remote.row); free(c->remote.vv);
  memset(c, 0, sizeof *c);
}

static char *col_dup(sqlite3_stmt *q, int i) {
  const unsigned char *t = sqlite3_column_text(q, i);
  return t ? strdup((const char *)t) : NULL;
}

/* The select list; a store of the first form opened read-only gives NULL for what it lacks. */
static const char *select_sql(const as_state *st) {
  return st->conflicts_v2
             ? "SELECT id, created_us, mapping, key, strategy, status, winner, local, columns,"
               " local_node, local_row, local_vv, local_ts_us, remote_node, remote_row,"
               " remote_vv, remote_ts_us, resolved_us, resolved_row FROM conflicts"
             : "SELECT id, created_us, mapping, key, strategy, status, winner, local, NULL,"
               " NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM conflicts";
}

static char *dump(json_t *j) {
  char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  json_decref(j);
  return s;
}

/* A record of the first form (`legacy`: the losing delta's JSON) in today's terms. */
static void from_legacy(as_conflict *c, const char *legacy) {
  json_t *d = json_loads(legacy, JSON_ALLOW_NUL, NULL);
  if (!json_is_object(d)) {
    json_decref(d);
    return;
  }
  json_t *row = json_object(), *cols = json_object_get(d, "cols"), *names = json_array();
  json_t *key = json_object_get(d, "key");
  if (json_is_object(key)) json_object_update(row, key);
  const char *k;
  json_t *v;
  if (json_is_object(cols)) {
    json_object_foreach(cols, k, v) {
      json_object_set(row, k, v);
      json_array_append_new(names, json_string(k));
    }
  }
  const char *op = json_string_value(json_object_get(d, "op"));
  const char *origin = json_string_value(json_object_get(d, "origin"));
  c->remote.row = op && strcmp(op, "delete") == 0 ? strdup("null") : dump(json_incref(row));
  c->remote.node = origin ? strdup(origin) : NULL;
  c->remote.ts_us = json_integer_value(json_object_get(d, "ts"));
  c->columns = dump(names);
  if (c->chosen) c->local.node = strdup(c->chosen);
  if (c->status && strcmp(c->status, "open") == 0 && c->strategy && strcmp(c->strategy, "lww") == 0) {
    free(c->status);
    c->status = strdup("resolved");
    c->resolved_us = c->created_us;
  }
  json_decref(row);
  json_decref(d);
}

static void read_row(sqlite3_stmt *q, as_conflict *c) {
  memset(c, 0, sizeof *c);
  c->id = sqlite3_column_int64(q, 0);
  c->created_us = sqlite3_column_int64(q, 1);
  c->mapping = col_dup(q, 2);
  c->key = col_dup(q, 3);
  c->strategy = col_dup(q, 4);
  c->status = col_dup(q, 5);
  c->chosen = col_dup(q, 6);
  c->columns = col_dup(q, 8);
  c->local.node = col_dup(q, 9);
  c->local.row = col_dup(q, 10);
  c->local.vv = col_dup(q, 11);
  c->local.ts_us = sqlite3_column_int64(q, 12);
  c->remote.node = col_dup(q, 13);
  c->remote.row = col_dup(q, 14);
  c->remote.vv = col_dup(q, 15);
  c->remote.ts_us = sqlite3_column_int64(q, 16);
  c->resolved_us = sqlite3_column_int64(q, 17);
  c->resolved_row = col_dup(q, 18);
  const char *legacy = (const char *)sqlite3_column_text(q, 7);
  if (legacy && !c->columns && !c->local.node && !c->remote.node) from_legacy(c, legacy);
}

int as_state_conflict_get(as_state *st, int64_t id, as_conflict *out, as_error *err) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  char sql[512];
  snprintf(sql, sizeof sql, "%s WHERE id = ?1", select_sql(st));
  int rc = AS_OK;
  if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK) {
    rc = sqlerr(st, err, "read conflict");
  } else {
    sqlite3_bind_int64(q, 1, id);
    int s = sqlite3_step(q);
    if (s == SQLITE_ROW) read_row(q, out);
    else if (s == SQLITE_DONE)
      rc = as_error_set(err, AS_DOM_STATE, AS_ENOTFOUND,
                        "conflict %lld: no such conflict (see `arraysync conflicts list`)",
                        (long long)id);
    else rc = sqlerr(st, err, "read conflict");
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

int as_state_conflict_set_status(as_state *st, int64_t id, const char *status, const char *chosen,
                                 const char *row_json, as_error *err) {
  if (!status || (strcmp(status, "open") != 0 && strcmp(status, "resolved") != 0))
    return as_error_set(err, AS_DOM_STATE, AS_EINVAL, "conflict %lld: unknown status '%s'",
                        (long long)id, status ? status : "(null)");
  as_conflict cur;
  int rc = as_state_conflict_get(st, id, &cur, err);
  if (rc != AS_OK) return rc;
  bool same = cur.status && strcmp(cur.status, status) == 0;
  as_conflict_clear(&cur);
  if (same)
    return as_error_set(err, AS_DOM_STATE, AS_EINVAL, "conflict %lld is already %s", (long long)id,
                        status);
  if (!st->conflicts_v2)
    return as_error_set(err, AS_DOM_STATE, AS_ERR, "conflict %lld: the store is read-only",
                        (long long)id);
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  bool resolved = strcmp(status, "resolved") == 0;
  if (sqlite3_prepare_v2(st->db,
                         "UPDATE conflicts SET status = ?2, winner = coalesce(?3, winner),"
                         " resolved_row = coalesce(?4, resolved_row), resolved_us = ?5 WHERE id = ?1",
                         -1, &q, NULL) != SQLITE_OK) {
    rc = sqlerr(st, err, "update conflict");
  } else {
    sqlite3_bind_int64(q, 1, id);
    bind_text(q, 2, status);
    bind_text(q, 3, chosen);
    bind_text(q, 4, row_json);
    bind_ts(q, 5, resolved ? as_now_us() : 0);
    if (sqlite3_step(q) != SQLITE_DONE) rc = sqlerr(st, err, "update conflict");
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

/* "status is open", for a store of either form. */
static const char *open_cond(const as_state *st) {
  return st->conflicts_v2 ? "status = 'open'"
                          : "status = 'open' AND coalesce(strategy, '') <> 'lww'";
}

int64_t as_state_conflict_count(as_state *st, const char *mapping, bool open_only) {
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM conflicts WHERE (?1 IS NULL OR mapping = ?1)%s%s",
           open_only ? " AND " : "", open_only ? open_cond(st) : "");
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int64_t n = -1;
  if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) == SQLITE_OK) {
    bind_text(q, 1, mapping);
    if (sqlite3_step(q) == SQLITE_ROW) n = sqlite3_column_int64(q, 0);
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return n;
}

int64_t as_state_conflict_open_for(as_state *st, const char *mapping, const char *key,
                                   const char *strategy) {
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM conflicts WHERE mapping = ?1 AND key = ?2 AND "
           "strategy = ?3 AND %s", open_cond(st));
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int64_t n = -1;
  if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) == SQLITE_OK) {
    bind_text(q, 1, mapping);
    bind_text(q, 2, key);
    bind_text(q, 3, strategy);
    if (sqlite3_step(q) == SQLITE_ROW) n = sqlite3_column_int64(q, 0);
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return n;
}

int as_state_conflict_counts(as_state *st,
                             int (*fn)(void *ctx, const char *mapping, const char *strategy,
                                       int64_t open, int64_t total),
                             void *ctx, as_error *err) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT coalesce(mapping, ''), coalesce(strategy, ''), sum(CASE WHEN %s THEN 1 ELSE 0 "
           "END), count(*) FROM conflicts GROUP BY 1, 2 ORDER BY 1, 2", open_cond(st));
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_OK;
  if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK) {
    rc = sqlerr(st, err, "count conflicts");
    goto done;
  }
  int s;
  while (rc == AS_OK && (s = sqlite3_step(q)) == SQLITE_ROW) {
    rc = fn(ctx, (const char *)sqlite3_column_text(q, 0), (const char *)sqlite3_column_text(q, 1),
            sqlite3_column_int64(q, 2), sqlite3_column_int64(q, 3));
  }
  if (rc == AS_OK && s != SQLITE_DONE) rc = sqlerr(st, err, "count conflicts");
done:
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

int as_state_conflict_each(as_state *st, const char *mapping, bool open_only,
                           int (*fn)(void *ctx, const as_conflict *c), void *ctx, as_error *err) {
  char sql[768];
  snprintf(sql, sizeof sql, "%s WHERE (?1 IS NULL OR mapping = ?1)%s%s ORDER BY id",
           select_sql(st), open_only ? " AND " : "", open_only ? open_cond(st) : "");
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_OK;
  as_conflict *items = NULL;
  size_t n = 0, cap = 0;
  if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK) {
    rc = sqlerr(st, err, "read conflicts");
    goto done;
  }
  bind_text(q, 1, mapping);
  int s;
  while ((s = sqlite3_step(q)) == SQLITE_ROW) { /* collected first: fn runs without the lock */
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 16;
      as_conflict *p = realloc(items, nc * sizeof *p);
      if (!p) {
        rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
        break;
      }
      items = p;
      cap = nc;
    }
    read_row(q, &items[n++]);
  }
  if (rc == AS_OK && s != SQLITE_DONE) rc = sqlerr(st, err, "read conflicts");
done:
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  for (size_t i = 0; i < n; i++) {
    if (rc == AS_OK) rc = fn(ctx, &items[i]);
    as_conflict_clear(&items[i]);
  }
  free(items);
  return rc;
}

char *as_conflict_row_json(const as_schema *s, const as_row *row, bool deleted, as_error *err) {
  if (deleted) {
    char *t = strdup("null");
    if (!t) as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
    return t;
  }
  json_t *o = json_object();
  for (size_t i = 0; o && i < s->ncols && i < row->n; i++) {
    if (!row->set[i]) continue;
    json_t *v = as_value_to_json(&row->v[i], err);
    if (!v || json_object_set_new(o, s->cols[i].name, v) != 0) {
      json_decref(o);
      return NULL;
    }
  }
  char *t = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(o);
  if (!t) as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
  return t;
}

char *as_conflict_columns_json(const as_schema *s, const as_row *row, as_error *err) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < s->ncols && i < row->n; i++) {
    if (row->set[i] && !s->cols[i].is_key) json_array_append_new(a, json_string(s->cols[i].name));
  }
  char *t = a ? json_dumps(a, JSON_COMPACT) : NULL;
  json_decref(a);
  if (!t) as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
  return t;
}

int as_state_mirror_ids(as_state *st, int64_t **ids, size_t *n, as_error *err) {
  *ids = NULL;
  *n = 0;
  size_t cap = 0;
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_OK, s = SQLITE_DONE;
  if (sqlite3_prepare_v2(st->db, "SELECT id FROM conflict_mirror ORDER BY id", -1, &q, NULL) !=
      SQLITE_OK) {
    rc = sqlerr(st, err, "read the mirrored conflicts");
  } else {
    while (rc == AS_OK && (s = sqlite3_step(q)) == SQLITE_ROW) {
      if (*n == cap) {
        size_t nc = cap ? cap * 2 : 64;
        int64_t *p = realloc(*ids, nc * sizeof *p);
        if (!p) {
          rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
          break;
        }
        *ids = p;
        cap = nc;
      }
      (*ids)[(*n)++] = sqlite3_column_int64(q, 0);
    }
    if (rc == AS_OK && s != SQLITE_DONE) rc = sqlerr(st, err, "read the mirrored conflicts");
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  if (rc != AS_OK) {
    free(*ids);
    *ids = NULL;
    *n = 0;
  }
  return rc;
}

int as_state_mirror_set(as_state *st, int64_t id, bool on, as_error *err) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_OK;
  const char *sql = on ? "INSERT OR IGNORE INTO conflict_mirror(id) VALUES (?1)"
                       : "DELETE FROM conflict_mirror WHERE id = ?1";
  if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK) {
    rc = sqlerr(st, err, "record a mirrored conflict");
  } else {
    sqlite3_bind_int64(q, 1, id);
    if (sqlite3_step(q) != SQLITE_DONE) rc = sqlerr(st, err, "record a mirrored conflict");
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}
