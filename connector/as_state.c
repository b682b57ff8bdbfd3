/* as_state.c — state store on SQLite (see as_state.h): opening, locking, transactions,
 * streams, dead letters. Versions, ids and repairs: as_state_versions.c; conflicts:
 * as_state_conflicts.c. */
#include "as_state_int.h"

#include <jansson.h>
#include "as_time.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define STATE_SCHEMA_VERSION "2"

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE IF NOT EXISTS streams(stream_id TEXT PRIMARY KEY, source TEXT, target TEXT,"
    "  phase TEXT, checkpoint TEXT, captured INTEGER, applied INTEGER, skipped INTEGER,"
    "  conflicts INTEGER, dead INTEGER, lag_ms INTEGER, last_ts_us INTEGER, updated_us INTEGER,"
    "  error TEXT);"
    "CREATE TABLE IF NOT EXISTS stream_mappings(stream_id TEXT NOT NULL, mapping TEXT NOT NULL,"
    "  captured INTEGER, applied INTEGER, skipped INTEGER, conflicts INTEGER, dead INTEGER,"
    "  PRIMARY KEY(stream_id, mapping));"
    "CREATE TABLE IF NOT EXISTS dead_letters(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  created_us INTEGER NOT NULL, mapping TEXT, source TEXT, target TEXT, stage TEXT NOT NULL,"
    "  key TEXT, raw TEXT, delta TEXT, error TEXT, pos TEXT, status TEXT NOT NULL DEFAULT 'open',"
    "  retries INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS gauges(node TEXT NOT NULL, metric TEXT NOT NULL,"
    "  consumer TEXT NOT NULL, value REAL, updated_us INTEGER, PRIMARY KEY(node, metric, consumer));"
    "CREATE TABLE IF NOT EXISTS copied(stream_id TEXT NOT NULL, mapping TEXT NOT NULL,"
    "  copied_us INTEGER NOT NULL, PRIMARY KEY(stream_id, mapping));"
    "CREATE TABLE IF NOT EXISTS quick_buckets(mapping TEXT NOT NULL, node TEXT NOT NULL,"
    "  bucket INTEGER NOT NULL, count INTEGER NOT NULL, sum INTEGER NOT NULL,"
    "  PRIMARY KEY(mapping, node, bucket)) WITHOUT ROWID;";

int as_state_sqlerr(as_state *st, as_error *err, const char *what) {
  return as_error_set(err, AS_DOM_STATE, AS_ERR, "state store: %s: %s", what,
                      sqlite3_errmsg(st->db));
}
#define sqlerr as_state_sqlerr

/* One writer process per state store: an exclusive flock on PATH.lock, which holds the pid of
 * its holder for the message a second process prints. */
int as_state_claim(as_state *st, as_error *err) {
  const char *path = st->path;
  char lp[4096];
  snprintf(lp, sizeof lp, "%s.lock", path);
  st->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (st->lock_fd < 0) {
    return as_error_set(err, AS_DOM_STATE, AS_ERR, "state store %s: cannot open %s: %s", path, lp,
                        strerror(errno));
  }
  if (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = "";
    ssize_t n = pread(st->lock_fd, pid, sizeof pid - 1, 0);
    pid[n > 0 ? n : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    return as_error_set(err, AS_DOM_STATE, AS_EINVAL,
                        "state store %s is in use by another arraysync process (pid %s): one "
                        "`arraysync run` per configuration",
                        path, pid[0] ? pid : "?");
  }
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(st->lock_fd, 0) != 0 || pwrite(st->lock_fd, pid, (size_t)n, 0) != n) {
    /* the pid is only for the message; the lock itself is held */
  }
  return AS_OK;
}

int as_state_open(const char *path, bool readonly, as_state **out, as_error *err) {
  *out = NULL;
  as_state *st = calloc(1, sizeof *st);
  if (!st) return as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
  st->lock_fd = -1;
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init(&st->mu, &attr);
  pthread_mutexattr_destroy(&attr);
  st->readonly = readonly;
  st->quick_on = !readonly; /* every writer keeps the quick-verify signatures */
  int flags = readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  flags |= SQLITE_OPEN_NOMUTEX;
  int rc = AS_ERR;
  if (!(st->path = strdup(path))) {
    rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
    goto fail;
  }
  if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
    rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "state store %s: %s", path,
                      st->db ? sqlite3_errmsg(st->db) : "cannot open");
    goto fail;
  }
  sqlite3_busy_timeout(st->db, 5000);
  if (!readonly) {
    char *msg = NULL;
    if (sqlite3_exec(st->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL,
                     &msg) != SQLITE_OK ||
        sqlite3_exec(st->db, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
      rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "state store %s: %s", path,
                        msg ? msg : "cannot create tables");
      sqlite3_free(msg);
      goto fail;
    }
  }
  if ((rc = as_state_versions_open(st, err)) != AS_OK ||
      (rc = as_state_conflicts_open(st, err)) != AS_OK) {
    as_error_prefix(err, "state store %s", path);
    goto fail;
  }
  if (!readonly && sqlite3_exec(st->db,
                                "INSERT INTO meta(key, value) VALUES ('schema_version', '"
                                STATE_SCHEMA_VERSION "') ON CONFLICT(key) DO UPDATE SET value = "
                                "excluded.value",
                                NULL, NULL, NULL) != SQLITE_OK) {
    rc = sqlerr(st, err, "meta");
    goto fail;
  }
  *out = st;
  return AS_OK;
fail:
  as_state_close(st);
  return rc;
}

void as_state_close(as_state *st) {
  if (!st) return;
  as_state_versions_close(st);
  as_state_quick_drop_locked(st);
  free(st->qsets);
  if (st->db) sqlite3_close(st->db);
  if (st->lock_fd >= 0) close(st->lock_fd); /* releases the flock */
  free(st->path);
  pthread_mutex_destroy(&st->mu);
  free(st);
}

static int exec_locked(as_state *st, const char *sql, as_error *err) {
  char *msg = NULL;
  if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    int rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "state store: %s", msg ? msg : sql);
    sqlite3_free(msg);
    return rc;
  }
  return AS_OK;
}

/* begin takes the store's (recursive) lock and keeps it until commit/rollback, so one
 * thread's batch of writes is one SQLite transaction that no other thread joins. */
int as_state_begin(as_state *st, as_error *err) {
  pthread_mutex_lock(&st->mu);
  int rc = AS_OK;
  if (st->txn_depth++ == 0) {
    rc = exec_locked(st, "BEGIN IMMEDIATE", err);
    if (rc == AS_OK) as_state_external_check_locked(st);
  }
  if (rc != AS_OK) {
    st->txn_depth--;
    pthread_mutex_unlock(&st->mu);
  }
  return rc;
}

int as_state_commit(as_state *st, as_error *err) {
  int rc = AS_OK;
  if (st->txn_depth > 0 && --st->txn_depth == 0) {
    rc = as_state_quick_flush_locked(st, err);
    if (rc == AS_OK) rc = exec_locked(st, "COMMIT", err);
    if (rc != AS_OK) {
      exec_locked(st, "ROLLBACK", NULL);
      as_state_quick_drop_locked(st);
    }
    as_state_cache_settle(st, rc == AS_OK);
  }
  pthread_mutex_unlock(&st->mu);
  return rc;
}

void as_state_rollback(as_state *st) {
  if (st->txn_depth > 0 && --st->txn_depth == 0) {
    exec_locked(st, "ROLLBACK", NULL);
    as_state_quick_drop_locked(st);
    as_state_cache_settle(st, false);
  }
  pthread_mutex_unlock(&st->mu);
}

int as_state_stream_put(as_state *st, const as_stream_stats *s, as_error *err) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_OK;
  if (sqlite3_prepare_v2(st->db,
                         "INSERT OR REPLACE INTO streams(stream_id, source, target, phase, "
                         "checkpoint, captured, applied, skipped, conflicts, dead, lag_ms, "
                         "last_ts_us, updated_us, error) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,"
                         "?11,?12,?13,?14)",
                         -1, &q, NULL) != SQLITE_OK) {
    rc = sqlerr(st, err, "prepare streams");
    goto done;
  }
  sqlite3_bind_text(q, 1, s->stream_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 2, s->source, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 3, s->target, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 4, s->phase, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 5, s->checkpoint, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, 6, s->captured);
  sqlite3_bind_int64(q, 7, s->applied);
  sqlite3_bind_int64(q, 8, s->skipped);
  sqlite3_bind_int64(q, 9, s->conflicts);
  sqlite3_bind_int64(q, 10, s->dead);
  sqlite3_bind_int64(q, 11, s->lag_ms);
  sqlite3_bind_int64(q, 12, s->last_ts_us);
  sqlite3_bind_int64(q, 13, s->updated_us ? s->updated_us : as_now_us());
  sqlite3_bind_text(q, 14, s->error, -1, SQLITE_STATIC);
  if (sqlite3_step(q) != SQLITE_DONE) rc = sqlerr(st, err, "write stream");
done:
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

static void copy_col(char *dst, size_t n, sqlite3_stmt *q, int i) {
  const unsigned char *t = sqlite3_column_text(q, i);
  snprintf(dst, n, "%s", t ? (const char *)t : "");
}

int as_state_stream_each(as_state *st, int (*fn)(void *ctx, const as_stream_stats *s),
                         void *ctx, as_error *err) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_OK;
  if (sqlite3_prepare_v2(st->db,
                         "SELECT stream_id, source, target, phase, checkpoint, captured, applied,"
                         " skipped, conflicts, dead, lag_ms, last_ts_us, updated_us, error FROM "
                         "streams ORDER BY stream_id",
                         -1, &q, NULL) != SQLITE_OK) {
    rc = sqlerr(st, err, "read streams");
    goto done;
  }
  int s;
  while ((s = sqlite3_step(q)) == SQLITE_ROW) {
    as_stream_stats x;
    memset(&x, 0, sizeof x);
    copy_col(x.stream_id, sizeof x.stream_id, q, 0);
    copy_col(x.source, sizeof x.source, q, 1);
    copy_col(x.target, sizeof x.target, q, 2);
    copy_col(x.phase, sizeof x.phase, q, 3);
    copy_col(x.checkpoint, sizeof x.checkpoint, q, 4);
    x.captured = sqlite3_column_int64(q, 5);
    x.applied = sqlite3_column_int64(q, 6);
    x.skipped = sqlite3_column_int64(q, 7);
    x.conflicts = sqlite3_column_int64(q, 8);
    x.dead = sqlite3_column_int64(q, 9);
    x.lag_ms = sqlite3_column_int64(q, 10);
    x.last_ts_us = sqlite3_column_int64(q, 11);
    x.updated_us = sqlite3_column_int64(q, 12);
    copy_col(x.error, sizeof x.error, q, 13);
    rc = fn(ctx, &x);
    if (rc != AS_OK) break;
  }
  if (s != SQLITE_DONE && s != SQLITE_ROW) rc = sqlerr(st, err, "read streams");
done:
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

int as_state_dead_add(as_state *st, const char *mapping, const char *source, const char *target,
                      const char *stage, const char *key, const char *raw,
                      const char *delta_json, const char *error, const char *pos,
                      as_error *err) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_OK;
  if (sqlite3_prepare_v2(st->db,
                         "INSERT INTO dead_letters(created_us, mapping, source, target, stage, "
                         "key, raw, delta, error, pos) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
                         -1, &q, NULL) != SQLITE_OK) {
    rc = sqlerr(st, err, "prepare dead letter");
    goto done;
  }
  sqlite3_bind_int64(q, 1, as_now_us());
  sqlite3_bind_text(q, 2, mapping, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 3, source, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 4, target, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 5, stage, -1, SQLITE_STATIC);
  /* the key is the key's JSON text: a described one ({"id":?}, a column that could not be
   * read) is not, and is left to the message */
  json_t *kj = key ? json_loads(key, JSON_DECODE_ANY, NULL) : NULL;
  sqlite3_bind_text(q, 6, kj ? key : NULL, -1, SQLITE_STATIC);
  json_decref(kj);
  sqlite3_bind_text(q, 7, raw, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 8, delta_json, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 9, error, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 10, pos, -1, SQLITE_STATIC);
  if (sqlite3_step(q) != SQLITE_DONE) rc = sqlerr(st, err, "write dead letter");
done:
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

static char *col_dup(sqlite3_stmt *q, int i) {
  const unsigned char *t = sqlite3_column_text(q, i);
  return t ? strdup((const char *)t) : NULL;
}

int as_state_dead_each(as_state *st, const char *status,
                       int (*fn)(void *ctx, const as_dead_letter *d), void *ctx, as_error *err) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_OK;
  if (sqlite3_prepare_v2(st->db,
                         "SELECT id, created_us, mapping, source, target, stage, key, raw, delta,"
                         " error, pos, status, retries FROM dead_letters WHERE ?1 IS NULL OR "
                         "status = ?1 ORDER BY id",
                         -1, &q, NULL) != SQLITE_OK) {
    rc = sqlerr(st, err, "read dead letters");
    goto done;
  }
  sqlite3_bind_text(q, 1, status, -1, SQLITE_STATIC);
  /* Collect first, then call fn without the lock (fn may write to the store). */
  as_dead_letter *items = NULL;
  size_t n = 0, cap = 0;
  int s;
  while ((s = sqlite3_step(q)) == SQLITE_ROW) {
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      as_dead_letter *p = realloc(items, cap * sizeof *items);
      if (!p) break;
      items = p;
    }
    as_dead_letter *d = &items[n++];
    d->id = sqlite3_column_int64(q, 0);
    d->created_us = sqlite3_column_int64(q, 1);
    d->mapping = col_dup(q, 2);
    d->source = col_dup(q, 3);
    d->target = col_dup(q, 4);
    d->stage = col_dup(q, 5);
    d->key = col_dup(q, 6);
    d->raw = col_dup(q, 7);
    d->delta_json = col_dup(q, 8);
    d->error = col_dup(q, 9);
    d->pos = col_dup(q, 10);
    d->status = col_dup(q, 11);
    d->retries = sqlite3_column_int64(q, 12);
  }
  if (s != SQLITE_DONE) rc = sqlerr(st, err, "read dead letters");
  sqlite3_finalize(q);
  q = NULL;
  pthread_mutex_unlock(&st->mu);
  for (size_t i = 0; i < n; i++) {
    if (rc == AS_OK) rc = fn(ctx, &items[i]);
    as_dead_letter *d = &items[i];
    free(d->mapping); free(d->source); free(d->target); free(d->stage); free(d->key);
    free(d->raw); free(d->delta_json); free(d->error); free(d->pos); free(d->status);
  }
  free(items);
  return rc;
done:
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

int as_state_dead_set_status(as_state *st, int64_t id, const char *status, const char *error,
                             as_error *err) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_OK;
  if (sqlite3_prepare_v2(st->db,
                         "UPDATE dead_letters SET status = ?2, retries = retries + 1, "
                         "error = coalesce(?3, error) WHERE id = ?1",
                         -1, &q, NULL) != SQLITE_OK) {
    rc = sqlerr(st, err, "update dead letter");
    goto done;
  }
  sqlite3_bind_int64(q, 1, id);
  sqlite3_bind_text(q, 2, status, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 3, error, -1, SQLITE_STATIC);
  if (sqlite3_step(q) != SQLITE_DONE) rc = sqlerr(st, err, "update dead letter");
done:
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

static int64_t count_query(as_state *st, const char *sql, const char *arg) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int64_t n = -1;
  if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) == SQLITE_OK) {
    sqlite3_bind_text(q, 1, arg, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW) n = sqlite3_column_int64(q, 0);
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return n;
}

int64_t as_state_dead_count(as_state *st, const char *status) {
  return count_query(st, "SELECT count(*) FROM dead_letters WHERE ?1 IS NULL OR status = ?1",
                     status);
}

int as_state_copied_add(as_state *st, const char *stream_id, const char *mapping, as_error *err) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_OK;
  if (sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO copied(stream_id, mapping, copied_us) "
                         "VALUES (?1,?2,?3)", -1, &q, NULL) != SQLITE_OK) {
    rc = sqlerr(st, err, "prepare copied");
  } else {
    sqlite3_bind_text(q, 1, stream_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, mapping, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, as_now_us());
    if (sqlite3_step(q) != SQLITE_DONE) rc = sqlerr(st, err, "write copied");
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

int as_state_copied_has(as_state *st, const char *stream_id, const char *mapping) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int n = -1;
  if (sqlite3_prepare_v2(st->db, "SELECT count(*) FROM copied WHERE stream_id = ?1 AND "
                         "(?2 IS NULL OR mapping = ?2)", -1, &q, NULL) == SQLITE_OK) {
    sqlite3_bind_text(q, 1, stream_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, mapping, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW) n = sqlite3_column_int(q, 0);
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return n;
}

int as_state_stream_mapping_put(as_state *st, const as_stream_mapping_stats *m, as_error *err) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_OK;
  if (sqlite3_prepare_v2(st->db,
                         "INSERT OR REPLACE INTO stream_mappings(stream_id, mapping, captured, "
                         "applied, skipped, conflicts, dead) VALUES (?1,?2,?3,?4,?5,?6,?7)",
                         -1, &q, NULL) != SQLITE_OK) {
    rc = sqlerr(st, err, "prepare stream_mappings");
    goto done;
  }
  sqlite3_bind_text(q, 1, m->stream_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 2, m->mapping, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, 3, m->captured);
  sqlite3_bind_int64(q, 4, m->applied);
  sqlite3_bind_int64(q, 5, m->skipped);
  sqlite3_bind_int64(q, 6, m->conflicts);
  sqlite3_bind_int64(q, 7, m->dead);
  if (sqlite3_step(q) != SQLITE_DONE) rc = sqlerr(st, err, "write stream_mappings");
done:
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

int as_state_stream_mapping_each(as_state *st, const char *stream_id,
                                 int (*fn)(void *ctx, const as_stream_mapping_stats *m),
                                 void *ctx, as_error *err) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_OK;
  if (sqlite3_prepare_v2(st->db,
                         "SELECT stream_id, mapping, captured, applied, skipped, conflicts, dead "
                         "FROM stream_mappings WHERE ?1 IS NULL OR stream_id = ?1 "
                         "ORDER BY stream_id, mapping",
                         -1, &q, NULL) != SQLITE_OK) {
    /* a state store written by an older version has no such table: nothing to list */
    goto done;
  }
  sqlite3_bind_text(q, 1, stream_id, -1, SQLITE_STATIC);
  int s;
  while ((s = sqlite3_step(q)) == SQLITE_ROW) {
    as_stream_mapping_stats m;
    memset(&m, 0, sizeof m);
    copy_col(m.stream_id, sizeof m.stream_id, q, 0);
    copy_col(m.mapping, sizeof m.mapping, q, 1);
    m.captured = sqlite3_column_int64(q, 2);
    m.applied = sqlite3_column_int64(q, 3);
    m.skipped = sqlite3_column_int64(q, 4);
    m.conflicts = sqlite3_column_int64(q, 5);
    m.dead = sqlite3_column_int64(q, 6);
    rc = fn(ctx, &m);
    if (rc != AS_OK) break;
  }
  if (rc == AS_OK && s != SQLITE_DONE) rc = sqlerr(st, err, "read stream_mappings");
done:
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

int as_state_gauge_put(as_state *st, const char *node, const char *metric, const char *consumer,
                       double value, as_error *err) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_OK;
  if (sqlite3_prepare_v2(st->db,
                         "INSERT OR REPLACE INTO gauges(node, metric, consumer, value, updated_us) "
                         "VALUES (?1, ?2, ?3, ?4, ?5)",
                         -1, &q, NULL) != SQLITE_OK) {
    rc = sqlerr(st, err, "gauges");
  } else {
    sqlite3_bind_text(q, 1, node, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, metric, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, consumer ? consumer : "", -1, SQLITE_STATIC);
    sqlite3_bind_double(q, 4, value);
    sqlite3_bind_int64(q, 5, as_now_us());
    if (sqlite3_step(q) != SQLITE_DONE) rc = sqlerr(st, err, "gauges");
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

int as_state_gauge_each(as_state *st,
                        int (*fn)(void *ctx, const char *node, const char *metric,
                                  const char *consumer, double value, int64_t updated_us),
                        void *ctx, as_error *err) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_OK, s;
  if (sqlite3_prepare_v2(st->db,
                         "SELECT node, metric, consumer, value, updated_us FROM gauges "
                         "ORDER BY node, metric, consumer",
                         -1, &q, NULL) != SQLITE_OK) {
    goto done; /* a store from before gauges: nothing to list */
  }
  while ((s = sqlite3_step(q)) == SQLITE_ROW && rc == AS_OK) {
    rc = fn(ctx, (const char *)sqlite3_column_text(q, 0), (const char *)sqlite3_column_text(q, 1),
            (const char *)sqlite3_column_text(q, 2), sqlite3_column_double(q, 3),
            sqlite3_column_int64(q, 4));
  }
  if (rc == AS_OK && s != SQLITE_DONE) rc = sqlerr(st, err, "gauges");
done:
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

