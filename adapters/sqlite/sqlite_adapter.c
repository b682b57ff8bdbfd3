/* sqlite_adapter.c — the SQLite adapter (kind "sqlite"): node, capture stream, snapshot, sink.
 * Design and storage forms: adapters/sqlite/README.md. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "as_children.h"
#include "as_log.h"
#include "as_time.h"
#include "as_utf8.h"
#include "sqlite_internal.h"
#include "sqlite_verify.h"
#include "sqlite_sql.h"

/* The node's options (config map below: one line per option). */
typedef struct sq_opts {
  char *path;
  int64_t busy_timeout; /* ms */
  int wakeup;           /* index into wakeups */
  int64_t purge_interval; /* ms */
} sq_opts;

static const char *const wakeups[] = {"inotify", "poll", NULL};

static const as_config_entry config_map[] = {
    AS_OPT_REQ(PATH, sq_opts, path, "SQLite database file (created if missing)", "./shop.db"),
    AS_OPT(INT, sq_opts, busy_timeout, "5000",
           "milliseconds to wait for a lock held by another writer", "10000", .min = 0,
           .max = INT_MAX),
    AS_OPT(ENUM, sq_opts, wakeup, "inotify",
           "how a waiting poll notices commits of other processes: inotify (on the -wal file, "
           "PRAGMA data_version confirms) or poll (PRAGMA data_version every 1 ms)",
           NULL, .allowed = wakeups),
    AS_OPT(INT, sq_opts, purge_interval, "100",
           "milliseconds between a stream's writes of its acknowledged position, each of which "
           "purges the changelog rows every consumer has (0: after every batch); a waiting "
           "stream writes a pending one when the interval is up",
           "0", .min = 0, .max = 60000),
    AS_OPT_END};

/* ---------------------------------------------------------------- helpers */

/* A full or failing disk is transient like a busy database (space freed, device back): the
 * engine retries with backoff and the stream resumes by itself (tests/integration/
 * test_iofault.sh). */
static bool transient(int prim) {
  return prim == SQLITE_BUSY || prim == SQLITE_LOCKED || prim == SQLITE_FULL ||
         prim == SQLITE_IOERR;
}

int sq_fail(sqlite3 *db, int rc, as_error *err, const char *what) {
  int prim = rc & 0xff;
  int code = transient(prim) ? AS_RETRY
             : (prim == SQLITE_CONSTRAINT || prim == SQLITE_MISMATCH || prim == SQLITE_TOOBIG ||
                prim == SQLITE_RANGE)
                 ? AS_EDATA
                 : AS_ERR;
  const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  as_error_set(err, AS_DOM_SQLITE, code, "%s: %s (sqlite %d)", what, msg, rc);
  return code;
}

int sq_exec(sqlite3 *db, const char *sql, as_error *err) {
  char *msg = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  if (rc == SQLITE_OK) return AS_OK;
  int prim = rc & 0xff;
  int code = transient(prim) ? AS_RETRY : AS_ERR;
  as_error_set(err, AS_DOM_SQLITE, code, "%s (sqlite %d)", msg ? msg : sqlite3_errstr(rc), rc);
  sqlite3_free(msg);
  return code;
}

int sq_open(const char *path, int busy_ms, sqlite3 **out, as_error *err) {
  sqlite3 *db = NULL;
  *out = NULL;
  int rc = sqlite3_open_v2(path, &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    int r = as_error_set(err, AS_DOM_SQLITE, AS_RETRY, "open %s: %s", path,
                         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return r;
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, busy_ms);
  int ret = sq_exec(db, SQ_PRAGMA_WAL, err);
  if (ret == AS_OK) ret = sq_exec(db, SQ_PRAGMA_SYNC, err);
  if (ret != AS_OK) {
    as_error_prefix(err, "open %s", path);
    sqlite3_close(db);
    return ret;
  }
  *out = db;
  return AS_OK;
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, as_error *err) {
  int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
  if (rc == SQLITE_OK) return AS_OK;
  int ret = sq_fail(db, rc, err, "prepare");
  if (err && strstr(sqlite3_errmsg(db), "no such table: _arraysync")) {
    ret = AS_EINVAL;
    err->code = AS_EINVAL;
    as_error_prefix(err, "not installed (run install)");
  }
  return ret;
}

static bool parse_i64(const char *s, int64_t *out) {
  if (!s || !*s) return false;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (*end || errno || v < 0) return false;
  *out = v;
  return true;
}


static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const as_schema *schema_by_table(as_node *n, const char *table) {
  for (size_t i = 0; i < n->nschemas; i++) {
    if (strcmp(n->schemas[i]->table, table) == 0) return n->schemas[i];
  }
  return NULL;
}


/* ---------------------------------------------------------------- node */

static void node_exit(as_node *n);

static int node_init(const as_node_config *cfg, const as_schema *const *schemas, size_t nschemas,
                     as_node **out, as_error *err) {
  *out = NULL;
  as_node *n = calloc(1, sizeof *n);
  if (!n) return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
  int ret = AS_OK;
  sq_opts o = {0};
  if ((ret = as_node_options_parse(cfg, config_map, &o, err)) != AS_OK) goto fail;
  n->name = strdup(cfg->name ? cfg->name : "sqlite");
  n->path = o.path;
  o.path = NULL;
  n->busy_ms = (int)o.busy_timeout;
  n->use_inotify = o.wakeup == 0;
  n->purge_interval_us = o.purge_interval * 1000;
  n->local_only = cfg->local_only;
  n->schemas = calloc(nschemas ? nschemas : 1, sizeof *n->schemas);
  if (!n->name || !n->path || !n->schemas) {
    ret = as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
    goto fail;
  }
  for (size_t i = 0; i < nschemas; i++) n->schemas[i] = schemas[i];
  n->nschemas = nschemas;
  snprintf(n->comp_src, sizeof n->comp_src, "source:sqlite:%s", n->name);
  snprintf(n->comp_sink, sizeof n->comp_sink, "sink:sqlite:%s", n->name);
  *out = n;
  return AS_OK;
fail:
  as_cfgmap_free(config_map, &o);
  node_exit(n);
  return ret;
}

static void cache_clear(as_node *n) {
  for (size_t i = 0; i < n->ncache; i++) {
    sqlite3_finalize(n->cache[i].st);
    free(n->cache[i].mask);
    free(n->cache[i].param_col);
  }
  free(n->cache);
  n->cache = NULL;
  n->ncache = n->capcache = 0;
  n->last = NULL;
}

static void node_disconnect(as_node *n) {
  cache_clear(n);
  sqlite3_finalize(n->st_origin);
  sqlite3_finalize(n->st_ckpt_put);
  sqlite3_finalize(n->st_ckpt_get);
  sqlite3_finalize(n->st_seq_end);
  n->st_origin = n->st_ckpt_put = n->st_ckpt_get = n->st_seq_end = NULL;
  sqlite3_close(n->db);
  n->db = NULL;
  n->in_txn = false;
  n->origin_dirty = false;
  free(n->cur_origin);
  n->cur_origin = NULL;
}

static void node_exit(as_node *n) {
  if (!n) return;
  node_disconnect(n);
  free(n->name);
  free(n->path);
  free(n->schemas);
  free(n);
}

static int node_connect(as_node *n, as_error *err) {
  if (n->db) node_disconnect(n);
  return sq_open(n->path, n->busy_ms, &n->db, err);
}

static int need_db(as_node *n, as_error *err) {
  if (n->db) return AS_OK;
  return node_connect(n, err);
}

int sq_need_db(as_node *n, as_error *err) { return need_db(n, err); }

static int node_install(as_node *n, as_error *err) {
  int ret = need_db(n, err);
  if (ret != AS_OK) return ret;
  cache_clear(n); /* tables or triggers may change */
  return sq_install(n, err);
}

static int node_uninstall(as_node *n, as_error *err) {
  int ret = need_db(n, err);
  if (ret != AS_OK) return ret;
  node_disconnect(n); /* cached statements reference the bookkeeping tables */
  if ((ret = need_db(n, err)) != AS_OK) return ret;
  return sq_uninstall(n, err);
}

/* ---------------------------------------------------------------- capture stream */

struct as_stream {
  as_node *n;
  sqlite3 *db;
  char *consumer;
  int64_t pos;
  int64_t data_version;
  sqlite3_stmt *st_read, *st_dv, *st_end;
  sqlite3_stmt *st_cput, *st_cmin, *st_mget, *st_purge, *st_mput; /* consumer, purge */
  int64_t ack_pos; /* the acknowledged position, written when pace says so */
  as_ack_pace pace;
  int ifd, wd;
  int64_t hot_until_us, hot_step_us; /* inotify mode: after a write, check data_version at
                                      * hot_step_us (doubling) until hot_until_us */
};

static void close_stream(as_stream *s) {
  if (!s) return;
  sqlite3_finalize(s->st_read);
  sqlite3_finalize(s->st_dv);
  sqlite3_finalize(s->st_end);
  sqlite3_finalize(s->st_cput);
  sqlite3_finalize(s->st_cmin);
  sqlite3_finalize(s->st_mget);
  sqlite3_finalize(s->st_purge);
  sqlite3_finalize(s->st_mput);
  sqlite3_close(s->db);
  if (s->ifd >= 0) close(s->ifd);
  free(s->consumer);
  free(s);
}

static int one_int(sqlite3 *db, sqlite3_stmt *st, int64_t *out, as_error *err, const char *what) {
  int rc = sqlite3_step(st);
  int ret = AS_OK;
  if (rc == SQLITE_ROW)
    *out = sqlite3_column_int64(st, 0);
  else if (rc == SQLITE_DONE)
    *out = 0;
  else
    ret = sq_fail(db, rc, err, what);
  sqlite3_reset(st);
  return ret;
}

static int purged_upto(as_stream *s, int64_t *out, as_error *err) {
  sqlite3_bind_text(s->st_mget, 1, "purged_upto", -1, SQLITE_STATIC);
  return one_int(s->db, s->st_mget, out, err, "read _arraysync_meta");
}

static int consumer_put(as_stream *s, int64_t pos, as_error *err) {
  sqlite3_bind_text(s->st_cput, 1, s->consumer, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s->st_cput, 2, pos);
  int rc = sqlite3_step(s->st_cput);
  sqlite3_reset(s->st_cput);
  return rc == SQLITE_DONE ? AS_OK : sq_fail(s->db, rc, err, "register consumer");
}

static int open_stream(as_node *n, const char *consumer, const char *checkpoint, as_stream **out,
                       as_error *err) {
  *out = NULL;
  as_stream *s = calloc(1, sizeof *s);
  if (!s) return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
  s->ifd = s->wd = -1;
  s->n = n;
  s->pace.interval_us = n->purge_interval_us;
  int ret;
  int64_t purged = 0;
  s->consumer = strdup(consumer ? consumer : "");
  if (!s->consumer) {
    ret = as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
    goto fail;
  }
  if ((ret = sq_open(n->path, n->busy_ms, &s->db, err)) != AS_OK) goto fail;
  if ((ret = prep(s->db, SQ_CHANGELOG_READ, &s->st_read, err)) != AS_OK) goto fail;
  if ((ret = prep(s->db, SQ_PRAGMA_DATA_VERSION, &s->st_dv, err)) != AS_OK) goto fail;
  if ((ret = prep(s->db, SQ_SEQ_END, &s->st_end, err)) != AS_OK ||
      (ret = prep(s->db, SQ_CONSUMER_PUT, &s->st_cput, err)) != AS_OK ||
      (ret = prep(s->db, SQ_CONSUMER_MIN, &s->st_cmin, err)) != AS_OK ||
      (ret = prep(s->db, SQ_META_GET, &s->st_mget, err)) != AS_OK ||
      (ret = prep(s->db, SQ_CHANGELOG_PURGE, &s->st_purge, err)) != AS_OK ||
      (ret = prep(s->db, SQ_META_PUT, &s->st_mput, err)) != AS_OK)
    goto fail;
  if ((ret = sq_exec(s->db, SQ_BEGIN_IMMEDIATE, err)) != AS_OK) goto fail;
  if (checkpoint) {
    if (!parse_i64(checkpoint, &s->pos)) {
      ret = as_error_set(err, AS_DOM_SQLITE, AS_EINVAL,
                         "node %s: \"%s\" is not a sqlite changelog position", n->name, checkpoint);
      goto fail;
    }
    int64_t end = 0;
    if ((ret = one_int(s->db, s->st_end, &end, err, "changelog end")) != AS_OK) goto fail;
    if (s->pos > end) {
      ret = as_error_set(err, AS_DOM_SQLITE, AS_EINVAL,
                         "node %s: position %" PRId64 " is beyond the changelog end %" PRId64
                         " (database replaced or reinstalled?): a new snapshot is needed",
                         n->name, s->pos, end);
      goto fail;
    }
    if ((ret = purged_upto(s, &purged, err)) != AS_OK) goto fail;
    if (s->pos < purged) {
      ret = as_error_set(err, AS_DOM_SQLITE, AS_EINVAL,
                         "node %s: changes after position %" PRId64 " were purged (up to %" PRId64
                         ") before consumer %s registered: a new snapshot is needed",
                         n->name, s->pos, purged, s->consumer);
      goto fail;
    }
  } else if ((ret = one_int(s->db, s->st_end, &s->pos, err, "changelog end")) != AS_OK) {
    goto fail;
  }
  if ((ret = consumer_put(s, s->pos, err)) != AS_OK) goto fail;
  if ((ret = sq_exec(s->db, SQ_COMMIT, err)) != AS_OK) goto fail;
  if ((ret = one_int(s->db, s->st_dv, &s->data_version, err, "data_version")) != AS_OK) goto fail;
  if (n->use_inotify) {
    /* the -wal file exists while any connection (this one) has the database open */
    char wal[4096];
    snprintf(wal, sizeof wal, "%s-wal", n->path);
    s->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (s->ifd >= 0) s->wd = inotify_add_watch(s->ifd, wal, IN_MODIFY);
    if (s->wd < 0) {
      AS_LOG(AS_LOG_DEBUG, n->comp_src, "inotify on %s unavailable (%s): polling data_version", wal,
             strerror(errno));
      if (s->ifd >= 0) close(s->ifd);
      s->ifd = -1;
    }
  }
  *out = s;
  return AS_OK;
fail:
  if (s->db && !sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, SQ_ROLLBACK, NULL, NULL, NULL);
  close_stream(s);
  return ret;
}

/* Waits until another connection commits (data_version changes) or the deadline passes.
 * Idle, it sleeps until the -wal file is written (the 50 ms cap covers a checkpoint that
 * restarts the WAL). A commit becomes visible only when the wal-index in the -shm mapping is
 * updated, after the frames are written (and synced), which inotify cannot see: so after an
 * event data_version is checked again after 0.1 ms, then at doubling intervals up to 4 ms,
 * for 100 ms (every new event starts over at 0.1 ms, and wakes a wait of 1 ms or more at
 * once). A stream beside a busy writer checks about six times per event, not every 0.1 ms. */
static int wait_change(as_stream *s, int64_t deadline_ms, as_error *err) {
  for (;;) {
    int64_t dv = 0;
    int ret = one_int(s->db, s->st_dv, &dv, err, "data_version");
    if (ret != AS_OK) return ret;
    if (dv != s->data_version) {
      s->data_version = dv;
      return AS_OK;
    }
    int64_t left = deadline_ms - mono_ms();
    if (left <= 0) return AS_OK;
    if (s->ifd < 0) {
      struct timespec ts = {0, 1000000}; /* no inotify: poll every 1 ms */
      nanosleep(&ts, NULL);
      continue;
    }
    int64_t now = as_monotonic_us(), wait_us = 50000;
    if (now < s->hot_until_us) {
      wait_us = s->hot_step_us;
      s->hot_step_us = s->hot_step_us * 2 > 4000 ? 4000 : s->hot_step_us * 2;
    }
    if (wait_us > left * 1000) wait_us = left * 1000;
    if (wait_us < 1000) { /* poll() counts milliseconds */
      struct timespec ts = {0, (long)wait_us * 1000};
      nanosleep(&ts, NULL);
    } else {
      struct pollfd p = {.fd = s->ifd, .events = POLLIN};
      poll(&p, 1, (int)(wait_us / 1000));
    }
    char buf[4096];
    bool written = false;
    while (read(s->ifd, buf, sizeof buf) > 0) written = true;
    if (written) {
      s->hot_until_us = as_monotonic_us() + 100000;
      s->hot_step_us = 100;
    }
  }
}

/* Reads one changelog cell of column i from a JSON row object into v. */
static int json_col(const as_schema *sc, size_t i, const json_t *row, as_value *v, as_error *err) {
  sq_cell c;
  uint8_t *tmp = NULL;
  int ret = sq_cell_from_json(json_object_get(row, sc->cols[i].name), &c, &tmp, err);
  if (ret == AS_OK) ret = sq_cell_to_value(&c, sc->cols[i].type, v, err);
  free(tmp);
  if (ret != AS_OK) {
    json_t *raw = json_object_get(row, sc->cols[i].name);
    char *rv = raw ? json_dumps(raw, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    as_error_prefix(err, "column \"%s\" (value %s)", sc->cols[i].name, rv ? rv : "missing");
    free(rv);
    if (ret != AS_ERR) ret = AS_EDATA;
  }
  return ret;
}

/* Fills r with the columns of `row` (all, keys only, or those differing from `other`). */
enum { COLS_ALL, COLS_KEYS, COLS_CHANGED };
static int fill_row(const as_schema *sc, as_row *r, const json_t *row, const json_t *other,
                    int which, as_error *err) {
  for (size_t i = 0; i < sc->ntable; i++) {
    const json_t *now = json_object_get(row, sc->cols[i].name);
    const json_t *before = json_object_get(other, sc->cols[i].name);
    /* a column absent from both rows did not change (json_equal says NULL != NULL) */
    bool want = which == COLS_ALL || sc->cols[i].is_key ||
                (which == COLS_CHANGED && (now || before) && !json_equal(now, before));
    if (!want) continue;
    as_value v = AS_VALUE_NULL;
    int ret = json_col(sc, i, row, &v, err);
    if (ret != AS_OK) return ret;
    as_row_put(r, i, &v);
  }
  return AS_OK;
}

int sq_changelog_fill_row(const as_schema *sc, as_row *r, const json_t *row, const json_t *other,
                          int which, as_error *err) {
  return fill_row(sc, r, row, other, which, err);
}

static int new_delta(as_delta *d, const as_schema *sc, as_op op, const char *origin, bool echo,
                     int64_t ts, const char *pos) {
  if (as_delta_init(d, sc, op) != AS_OK) return AS_ERR;
  if (as_delta_set_origin(d, origin) != AS_OK || as_delta_set_pos(d, pos) != AS_OK) return AS_ERR;
  d->echo = echo;
  d->ts_us = ts;
  d->hlc = AS_HLC_FROM_US(ts);
  /* the commit order: the changelog sequence + 1, so that sink_commit can name the place of a
   * commit made before any change was logged (1) without the 0 that means unknown */
  d->order = pos ? strtoll(pos, NULL, 10) + 1 : 0;
  return AS_OK;
}

/* The canonical key text (as_key.h) of a changelog row object, for a dead letter: the key
 * columns converted like any value; when they cannot be, their text as logged. NULL if the
 * row has no key at all. Caller frees. */
static char *key_text(const as_schema *sc, const json_t *row) {
  if (!json_is_object(row)) return NULL;
  as_row r = {0};
  as_error e;
  char *txt = NULL;
  if (as_row_init(&r, sc->ncols) == AS_OK && fill_row(sc, &r, row, NULL, COLS_KEYS, &e) == AS_OK)
    txt = as_key_json_dup(sc, &r, &e);
  as_row_clear(&r);
  if (txt) return txt;
  json_t *k = json_object();
  for (size_t i = 0; k && i < sc->nkey; i++) {
    const char *name = sc->cols[sc->key_idx[i]].name;
    json_t *v = json_object_get(row, name);
    json_object_set(k, name, v ? v : json_null());
  }
  txt = k ? json_dumps(k, JSON_COMPACT) : NULL;
  json_decref(k);
  return txt;
}

static bool keys_equal(const as_schema *sc, const json_t *a, const json_t *b) {
  for (size_t k = 0; k < sc->nkey; k++) {
    const char *name = sc->cols[sc->key_idx[k]].name;
    if (!json_equal(json_object_get(a, name), json_object_get(b, name))) return false;
  }
  return true;
}

/* The mapping whose child table (or a table nested under one) is `table` (*ci: which child
 * of the mapping), or NULL. */
static const as_schema *child_owner(as_node *n, const char *table, size_t *ci) {
  for (size_t i = 0; i < n->nschemas; i++)
    if (as_schema_child_tab(n->schemas[i], table, ci)) return n->schemas[i];
  return NULL;
}

static int arrays_from_image(as_stream *s, const as_schema *sc, const json_t *img, as_row *r,
                             as_error *e);

/* A JSON array of child table row objects (a changelog image; nested children's rows as
 * members of each) -> the array column's value. */
static int array_from_json(as_stream *s, const as_schema *sc, size_t ci, const json_t *rows,
                           as_value *out, as_error *e) {
  const as_schema *tab = sc->children[ci].tab;
  size_t n = json_array_size(rows);
  as_row *r = n ? calloc(n, sizeof *r) : NULL;
  if (n && !r) return as_error_set(e, AS_DOM_SQLITE, AS_ERR, "out of memory");
  int ret = AS_OK;
  for (size_t i = 0; ret == AS_OK && i < n; i++) {
    ret = as_row_init(&r[i], tab->ncols) == AS_OK
              ? fill_row(tab, &r[i], json_array_get(rows, i), NULL, COLS_ALL, e)
              : as_error_set(e, AS_DOM_SQLITE, AS_ERR, "out of memory");
    if (ret == AS_OK && tab->nchildren) ret = arrays_from_image(s, tab, json_array_get(rows, i), &r[i], e);
    if (ret != AS_OK) as_error_prefix(e, "table \"%s\"", tab->table);
  }
  if (ret == AS_OK) ret = as_child_array(sc, ci, r, n, out, e);
  as_child_rows_free(r, n);
  return ret;
}

/* Sets the array columns of r from a parent row's changelog image (its SQ_CHILD_MEMBER
 * members: the child rows as the trigger saw them); an image without them (written by an
 * older trigger) is completed from the child tables now. */
static int arrays_from_image(as_stream *s, const as_schema *sc, const json_t *img, as_row *r,
                             as_error *e) {
  for (size_t ci = 0; ci < sc->nchildren; ci++) {
    char member[160];
    snprintf(member, sizeof member, SQ_CHILD_MEMBER "%s", sc->children[ci].table);
    const json_t *rows = json_object_get(img, member);
    if (!rows) return sq_children_fill(s->db, sc, r, e);
    as_value v;
    int ret = array_from_json(s, sc, ci, rows, &v, e);
    if (ret != AS_OK) return ret;
    as_row_put(r, sc->children[ci].col, &v);
  }
  return AS_OK;
}

/* A child row's changelog image (trigger: {"parent", "exists", "rows"}) -> an update of its
 * parent's array column, unless the last delta of out already is that one's. */
static int child_delta(as_stream *s, as_batch *out, const as_schema *sc, size_t ci,
                       const json_t *img, const char *org, bool echo, int64_t ts, const char *pos,
                       as_error *e) {
  const as_child *ch = &sc->children[ci];
  const json_t *parent = json_object_get(img, "parent");
  as_delta d;
  memset(&d, 0, sizeof d);
  if (new_delta(&d, sc, AS_OP_UPDATE, org, echo, ts, pos) != AS_OK) goto oom;
  int ret = json_is_object(parent) ? AS_OK
                                   : as_error_set(e, AS_DOM_SQLITE, AS_EDATA, "malformed child table image");
  for (size_t k = 0; ret == AS_OK && k < sc->nkey; k++) {
    as_value v = AS_VALUE_NULL;
    ret = json_col(ch->tab, k, parent, &v, e);
    if (ret == AS_OK) as_row_put(&d.row, sc->key_idx[k], &v);
  }
  bool exists = json_integer_value(json_object_get(img, "exists")) > 0;
  const json_t *rows = json_object_get(img, "rows");
  if (ret == AS_OK && !exists && json_array_size(rows) > 0) {
    char *k = as_key_describe(sc, &d.row);
    ret = as_error_set(e, AS_DOM_SQLITE, AS_EDATA, "child table \"%s\" holds rows of parent "
                       "key %s, which table \"%s\" does not have", ch->table, k ? k : "?",
                       sc->table);
    free(k);
  }
  if (ret == AS_OK && exists) {
    as_value v;
    ret = array_from_json(s, sc, ci, rows, &v, e);
    if (ret == AS_OK) as_row_put(&d.row, ch->col, &v);
  }
  /* the previous delta is this parent's array alone, from the same writer (origin and echo):
   * this one's state replaces it (a later state of the same writer's changes) */
  as_delta *last = out->n ? &out->d[out->n - 1] : NULL;
  bool again = last && last->schema == sc && last->op == AS_OP_UPDATE && last->echo == d.echo &&
               last->origin && d.origin && strcmp(last->origin, d.origin) == 0;
  for (size_t c = 0; again && c < sc->ncols; c++)
    again = sc->cols[c].is_key || (c == ch->col) == (last->row.set[c] != 0);
  for (size_t k = 0; again && k < sc->nkey; k++)
    again = as_value_equal(&last->row.v[sc->key_idx[k]], &d.row.v[sc->key_idx[k]]);
  if (ret == AS_OK && exists && again) {
    as_delta_clear(last);
    *last = d;
    return AS_OK;
  } else if (ret == AS_OK && exists) {
    as_delta *slot = as_batch_push(out);
    if (!slot) goto oom;
    *slot = d;
    return AS_OK;
  }
  as_delta_clear(&d);
  return ret;
oom:
  as_delta_clear(&d);
  return as_error_set(e, AS_DOM_SQLITE, AS_ERR, "out of memory");
}

/* A change of a child table's row: its parent's update (two parents when it moved). */
static int child_deltas(as_stream *s, as_batch *out, const as_schema *sc, size_t ci,
                        const json_t *jo, const json_t *jn, const char *org, bool echo,
                        int64_t ts, const char *pos, as_error *e) {
  int ret = AS_OK;
  bool moved = jo && jn && !json_equal(json_object_get(jo, "parent"), json_object_get(jn, "parent"));
  if (jo && (moved || !jn)) ret = child_delta(s, out, sc, ci, jo, org, echo, ts, pos, e);
  if (ret == AS_OK && jn) ret = child_delta(s, out, sc, ci, jn, org, echo, ts, pos, e);
  return ret;
}

/* A changelog image as JSON. A TEXT value that is not UTF-8 (written by another client)
 * makes the image invalid JSON: then each byte outside a valid sequence is read as U+FFFD and
 * *mended says so (such an image names the key; a value read from it is never written). */
static json_t *image_loads(const char *txt, bool *mended, json_error_t *je) {
  *mended = false;
  json_t *j = json_loads(txt, JSON_ALLOW_NUL, je);
  if (j) return j;
  size_t n = strlen(txt);
  if (as_utf8_valid(txt, n)) return NULL;
  char *m = malloc(3 * n + 1), *q = m;
  if (!m) return NULL;
  for (const uint8_t *p = (const uint8_t *)txt, *e = p + n; p < e;) {
    size_t l = *p < 0x80 ? 1 : as_utf8_seq(p, e);
    if (l) {
      memcpy(q, p, l);
      q += l;
      p += l;
    } else {
      memcpy(q, "\xEF\xBF\xBD", 3);
      q += 3;
      p++;
    }
  }
  *q = '\0';
  j = json_loads(m, JSON_ALLOW_NUL, NULL);
  free(m);
  *mended = j != NULL;
  return j;
}

/* Converts the current changelog row of st_read into 0..2 deltas or one dead letter. */
static int convert_row(as_stream *s, as_batch *out, as_error *err) {
  sqlite3_stmt *st = s->st_read;
  as_node *n = s->n;
  int64_t seq = sqlite3_column_int64(st, 0);
  const char *tbl = (const char *)sqlite3_column_text(st, 1);
  const char *op = (const char *)sqlite3_column_text(st, 2);
  const char *origin = (const char *)sqlite3_column_text(st, 5);
  /* A write the connector made for the consumer's own change never goes back to it (a delta
   * never returns to its origin): skip it without decoding. */
  if (origin && s->consumer && strcmp(origin, s->consumer) == 0) return AS_OK;
  if (origin && strcmp(origin, AS_ORIGIN_LOCAL_ONLY) == 0) return AS_OK; /* (triggers of old) */
  int64_t ts = sqlite3_column_int64(st, 6);
  char pos[32];
  snprintf(pos, sizeof pos, "%" PRId64, seq);
  json_t *jo = NULL, *jn = NULL;
  char *ko = NULL;
  json_error_t je;
  as_delta d[2];
  int nd = 0, ret = AS_OK;
  as_error e = {0};
  memset(d, 0, sizeof d);
  const as_schema *sc = tbl ? schema_by_table(n, tbl) : NULL;
  size_t ci = 0;
  const as_schema *owner = !sc && tbl ? child_owner(n, tbl, &ci) : NULL;
  const as_schema *keysc = owner ? owner->children[ci].tab : sc;
  const char *oo = (const char *)sqlite3_column_text(st, 3);
  const char *no = (const char *)sqlite3_column_text(st, 4);
  if (!sc && !owner) {
    as_error_set(&e, AS_DOM_SQLITE, AS_EDATA, "table \"%s\" is not mapped on node %s",
                 tbl ? tbl : "?", n->name);
    goto dead;
  }
  bool old_mended = false, new_mended = false;
  if ((oo && !(jo = image_loads(oo, &old_mended, &je))) || (no && !(jn = image_loads(no, &new_mended, &je)))) {
    as_error_set(&e, AS_DOM_SQLITE, AS_EDATA, "changelog row is not valid JSON: %s", je.text);
    goto dead;
  }
  /* the new row holds text that is not UTF-8: a dead letter naming the key; an old row that
   * does (the fix of such a value) only tells which columns changed */
  if (new_mended || (old_mended && (!op || strcmp(op, "update") != 0))) {
    as_error_set(&e, AS_DOM_SQLITE, AS_EDATA, "a text value of the row is not valid UTF-8");
    goto dead;
  }
  bool echo = origin != NULL;
  const char *org = origin ? origin : n->name;
  if (owner) {
    sc = owner;
    if ((ret = child_deltas(s, out, owner, ci, jo, jn, org, echo, ts, pos, &e)) != AS_OK) goto conv;
  } else if (op && strcmp(op, "insert") == 0 && jn) {
    if (new_delta(&d[0], sc, AS_OP_INSERT, org, echo, ts, pos) != AS_OK) goto oom;
    nd = 1;
    if ((ret = fill_row(sc, &d[0].row, jn, NULL, COLS_ALL, &e)) != AS_OK) goto conv;
    if (sc->nchildren && (ret = arrays_from_image(s, sc, jn, &d[0].row, &e)) != AS_OK) goto conv;
  } else if (op && strcmp(op, "delete") == 0 && jo) {
    if (new_delta(&d[0], sc, AS_OP_DELETE, org, echo, ts, pos) != AS_OK) goto oom;
    nd = 1;
    if ((ret = fill_row(sc, &d[0].row, jo, NULL, COLS_KEYS, &e)) != AS_OK) goto conv;
  } else if (op && strcmp(op, "update") == 0 && jo && jn) {
    if (!keys_equal(sc, jo, jn)) {
      /* the key itself changed: delete the old key, insert the new row */
      if (new_delta(&d[0], sc, AS_OP_DELETE, org, echo, ts, pos) != AS_OK) goto oom;
      nd = 1;
      if ((ret = fill_row(sc, &d[0].row, jo, NULL, COLS_KEYS, &e)) != AS_OK) goto conv;
      if (new_delta(&d[1], sc, AS_OP_INSERT, org, echo, ts, pos) != AS_OK) goto oom;
      nd = 2;
      if ((ret = fill_row(sc, &d[1].row, jn, NULL, COLS_ALL, &e)) != AS_OK) goto conv;
      if (sc->nchildren && (ret = arrays_from_image(s, sc, jn, &d[1].row, &e)) != AS_OK) goto conv;
    } else {
      if (new_delta(&d[0], sc, AS_OP_UPDATE, org, echo, ts, pos) != AS_OK) goto oom;
      nd = 1;
      if ((ret = fill_row(sc, &d[0].row, jn, jo, COLS_CHANGED, &e)) != AS_OK) goto conv;
      /* the whole new row too (an update that brings back a row deleted elsewhere writes it) */
      as_error ie;
      if (as_row_init(&d[0].image, sc->ncols) != AS_OK ||
          fill_row(sc, &d[0].image, jn, NULL, COLS_ALL, &ie) != AS_OK ||
          (sc->nchildren && arrays_from_image(s, sc, jn, &d[0].image, &ie) != AS_OK))
        as_row_clear(&d[0].image);
      /* and the row before it, for a script (what the change was made on top of: ctx.base) */
      if (!old_mended && as_schema_keeps_before(sc) && (as_row_init(&d[0].before, sc->ncols) != AS_OK ||
                                         fill_row(sc, &d[0].before, jo, NULL, COLS_ALL, &ie) != AS_OK))
        as_row_clear(&d[0].before);
      bool any = false;
      for (size_t i = 0; i < sc->ncols; i++) any |= !sc->cols[i].is_key && as_row_has(&d[0].row, i);
      if (!any) { /* e.g. 1 -> 1.0: SQLite says different, JSON says equal */
        as_delta_clear(&d[0]);
        nd = 0;
      }
    }
  } else {
    as_error_set(&e, AS_DOM_SQLITE, AS_EDATA, "malformed changelog row (op %s)", op ? op : "NULL");
    goto dead;
  }
  for (int k = 0; k < nd; k++) {
    as_delta *slot = as_batch_push(out);
    if (!slot) goto oom;
    *slot = d[k];
    memset(&d[k], 0, sizeof d[k]);
  }
  goto cleanup;
conv:
  if (ret == AS_ERR) goto oom;
dead : {
  ko = keysc ? key_text(keysc, jn ? jn : jo) : NULL;
  json_t *raw =
      json_pack("{s:I,s:s?,s:s?,s:s?,s:s?,s:s?,s:I}", "seq", (json_int_t)seq, "table", tbl, "op",
                op, "old", oo, "new", no, "origin", origin, "ts", (json_int_t)ts);
  char *rawtxt = raw ? json_dumps(raw, JSON_COMPACT) : NULL;
  json_decref(raw);
  char msg[AS_ERROR_MSG_MAX + 256];
  snprintf(msg, sizeof msg, "mapping %s, table \"%s\", key %s: %s", sc ? sc->name : "?",
           tbl ? tbl : "?", ko ? ko : "?", e.message);
  AS_LOG(AS_LOG_WARN, n->comp_src, "dead letter at seq %s: %s", pos, msg);
  if (as_batch_push_dead(out, sc, ko ? strdup(ko) : NULL, rawtxt, strdup(msg), strdup(pos)) !=
      AS_OK)
    goto oom;
  ret = AS_OK;
  goto cleanup;
}
oom:
  ret = as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
cleanup:
  for (int k = 0; k < 2; k++) as_delta_clear(&d[k]);
  free(ko);
  json_decref(jo);
  json_decref(jn);
  return ret;
}

static int read_batch(as_stream *s, as_batch *out, size_t max, size_t *nread, as_error *err) {
  sqlite3_stmt *st = s->st_read;
  int ret = AS_OK, rc;
  *nread = 0;
  if (max == 0) max = 1;
  sqlite3_bind_int64(st, 1, s->pos);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)(max ? max : 1));
  size_t start = out->n;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t seq = sqlite3_column_int64(st, 0);
    size_t produced = out->n - start;
    const char *op = (const char *)sqlite3_column_text(st, 2);
    /* at most max deltas; an update changing the key yields two and is never split */
    if (produced >= max ||
        (produced > 0 && produced + 1 == max && op && strcmp(op, "update") == 0)) {
      rc = SQLITE_DONE;
      break;
    }
    if ((ret = convert_row(s, out, err)) != AS_OK) break;
    s->pos = seq;
    (*nread)++;
  }
  if (ret == AS_OK && rc != SQLITE_DONE) ret = sq_fail(s->db, rc, err, "read changelog");
  sqlite3_reset(st);
  return ret;
}

/* Writes the acknowledged position (s->ack_pos) and purges the changelog rows every consumer
 * has, in one write transaction, with the statements open_stream prepared. */
static int ack_write(as_stream *s, as_error *err) {
  int64_t minpos = 0, purged = 0;
  int ret = sq_exec(s->db, SQ_BEGIN_IMMEDIATE, err);
  if (ret != AS_OK) goto done;
  if ((ret = consumer_put(s, s->ack_pos, err)) != AS_OK) goto done;
  if ((ret = one_int(s->db, s->st_cmin, &minpos, err, "min consumer position")) != AS_OK) goto done;
  if ((ret = purged_upto(s, &purged, err)) != AS_OK) goto done;
  if (minpos > purged) {
    sqlite3_bind_int64(s->st_purge, 1, minpos);
    int rc = sqlite3_step(s->st_purge);
    sqlite3_reset(s->st_purge);
    if (rc != SQLITE_DONE) {
      ret = sq_fail(s->db, rc, err, "purge changelog");
      goto done;
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, minpos);
    sqlite3_bind_text(s->st_mput, 1, "purged_upto", -1, SQLITE_STATIC);
    sqlite3_bind_text(s->st_mput, 2, buf, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(s->st_mput);
    sqlite3_reset(s->st_mput);
    if (rc != SQLITE_DONE) {
      ret = sq_fail(s->db, rc, err, "write purged_upto");
      goto done;
    }
  }
  ret = sq_exec(s->db, SQ_COMMIT, err);
done:
  if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, SQ_ROLLBACK, NULL, NULL, NULL);
  as_ack_pace_written(&s->pace, ret == AS_OK);
  return ret;
}

static int stream_poll(as_stream *s, as_batch *out, size_t max, int wait_ms, as_error *err) {
  int64_t deadline = mono_ms() + (wait_ms > 0 ? wait_ms : 0);
  size_t nread = 0;
  int ret;
  for (;;) {
    if ((ret = read_batch(s, out, max, &nread, err)) != AS_OK) break;
    if (nread > 0) break;
    int64_t until = deadline, now = mono_ms();
    int left = now < deadline ? (int)(deadline - now) : 0;
    /* nothing to read: a pending acknowledged position is written when it is due (a failure
     * is the engine's "ack" debug line, and the position stays pending), else the wait ends
     * when it will be */
    if (as_ack_pace_idle(&s->pace, &left)) {
      as_error aerr;
      if (ack_write(s, &aerr) != AS_OK) AS_LOG(AS_LOG_DEBUG, s->n->comp_src, "ack: %s", aerr.message);
    } else {
      until = now + left;
    }
    if (mono_ms() >= deadline) break;
    if ((ret = wait_change(s, until, err)) != AS_OK) break;
  }
  char pos[32];
  snprintf(pos, sizeof pos, "%" PRId64, s->pos);
  if (as_batch_set_pos(out, pos) != AS_OK && ret == AS_OK)
    ret = as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
  return ret;
}

/* The position is written at once when the last write is purge_interval old (every batch
 * with 0), else kept pending: the next ack or a waiting poll writes it when it is due. Not
 * written at close: the next open_stream registers the consumer at its checkpoint (kept by
 * the target), which is never behind a position acked here. */
static int stream_ack(as_stream *s, const char *pos, as_error *err) {
  int64_t p;
  if (!parse_i64(pos, &p))
    return as_error_set(err, AS_DOM_SQLITE, AS_EINVAL, "bad sqlite changelog position \"%s\"",
                        pos ? pos : "NULL");
  s->ack_pos = p;
  return as_ack_pace_ack(&s->pace) ? ack_write(s, err) : AS_OK;
}

static int stream_position(as_stream *s, char **out, as_error *err) {
  int64_t end = 0;
  int ret = one_int(s->db, s->st_end, &end, err, "changelog end");
  if (ret != AS_OK) return ret;
  char buf[32];
  snprintf(buf, sizeof buf, "%" PRId64, end);
  *out = strdup(buf);
  return *out ? AS_OK : as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
}

/* ---------------------------------------------------------------- rows */

/* " WHERE k1 = ?1 AND ..." over the key columns, in key order. */
void sq_key_where(as_buf *b, const as_schema *s) {
  as_buf_append_str(b, " WHERE ");
  for (size_t k = 0; k < s->nkey; k++) {
    if (k) as_buf_append_str(b, " AND ");
    as_sql_quote_ident(s->cols[s->key_idx[k]].name, b);
    as_buf_printf(b, " = ?%zu", k + 1);
  }
}

/* SELECT "c1", ... FROM "t" (the table's own columns) */
void sq_select_sql(as_buf *b, const as_schema *s) {
  as_buf_append_str(b, "SELECT ");
  for (size_t i = 0; i < s->ntable; i++) {
    if (i) as_buf_append_str(b, ", ");
    as_sql_quote_ident(s->cols[i].name, b);
  }
  as_buf_append_str(b, " FROM ");
  as_sql_quote_ident(s->table, b);
}

static void key_list(as_buf *b, const as_schema *s) {
  for (size_t k = 0; k < s->nkey; k++) {
    if (k) as_buf_append_str(b, ", ");
    as_sql_quote_ident(s->cols[s->key_idx[k]].name, b);
  }
}

/* Reads the current result row of st (the table's columns in schema order) into r. */
int sq_row_from_stmt(const as_schema *s, sqlite3_stmt *st, as_row *r, as_error *err) {
  for (size_t i = 0; i < s->ntable; i++) {
    sq_cell c;
    as_value v = AS_VALUE_NULL;
    sq_cell_from_stmt(st, (int)i, &c);
    int ret = sq_cell_to_value(&c, s->cols[i].type, &v, err);
    if (ret != AS_OK) {
      as_error_prefix(err, "column \"%s\"", s->cols[i].name);
      return ret;
    }
    as_row_put(r, i, &v);
  }
  return AS_OK;
}

/* Appends a prepared statement to the node's cache (takes ownership of e's members). */
static int cache_push(as_node *n, sq_cached *e, as_error *err) {
  if (n->ncache == n->capcache) {
    size_t ncap = n->capcache ? n->capcache * 2 : 8;
    sq_cached *p = realloc(n->cache, ncap * sizeof *p);
    if (!p) return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
    n->cache = p;
    n->capcache = ncap;
  }
  n->cache[n->ncache] = *e;
  n->last = &n->cache[n->ncache++];
  return AS_OK;
}

#define SQ_OP_READ ((as_op)0) /* cache entries of read_row (no as_op is 0) */

static int read_row(as_node *n, const as_schema *s, const as_row *key, as_row *out, as_error *err) {
  as_buf sql = AS_BUF_INIT;
  sqlite3_stmt *st = NULL;
  int ret = need_db(n, err);
  if (ret != AS_OK) return ret;
  for (size_t i = 0; i < n->ncache && !st; i++)
    if (n->cache[i].schema == s && n->cache[i].op == SQ_OP_READ) st = n->cache[i].st;
  if (!st) {
    sq_select_sql(&sql, s);
    sq_key_where(&sql, s);
    if ((ret = prep(n->db, as_buf_cstr(&sql), &st, err)) != AS_OK) goto cleanup;
    sq_cached e = {.schema = s, .op = SQ_OP_READ, .st = st};
    if ((ret = cache_push(n, &e, err)) != AS_OK) {
      sqlite3_finalize(st);
      st = NULL;
      goto cleanup;
    }
  }
  for (size_t k = 0; k < s->nkey; k++) {
    size_t i = s->key_idx[k];
    if (i >= key->n || !key->set[i]) {
      ret = as_error_set(err, AS_DOM_SQLITE, AS_EINVAL, "read_row: key column \"%s\" not set",
                         s->cols[i].name);
      goto cleanup;
    }
    if ((ret = sq_bind_value(st, (int)k + 1, &key->v[i], err)) != AS_OK) goto cleanup;
  }
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) {
    ret = AS_ENOTFOUND;
    goto cleanup;
  }
  if (rc != SQLITE_ROW) {
    ret = sq_fail(n->db, rc, err, "read_row");
    goto cleanup;
  }
  if (out->v == NULL) {
    if (as_row_init(out, s->ncols) != AS_OK) {
      ret = as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
      goto cleanup;
    }
  } else {
    as_row_reset(out);
  }
  ret = sq_row_from_stmt(s, st, out, err);
  if (ret == AS_OK && s->nchildren) ret = sq_children_fill(n->db, s, out, err);
  if (ret != AS_OK) as_error_prefix(err, "mapping %s, table \"%s\"", s->name, s->table);
cleanup:
  if (st) {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
  }
  as_buf_free(&sql);
  return ret;
}

/* ---------------------------------------------------------------- snapshot */

struct as_snapshot {
  as_node *n;
  const as_schema *s;
  sqlite3 *db;
  sqlite3_stmt *first, *next;
  sqlite3_value **last; /* key values of the last row returned (stored form) */
  as_value *after;      /* after_key values (bound to `next` until the first page) */
  bool have_last;
  int64_t estimate;
  int64_t ts_us;
};

static void snapshot_close(as_snapshot *sn) {
  if (!sn) return;
  sqlite3_finalize(sn->first);
  sqlite3_finalize(sn->next);
  for (size_t k = 0; sn->last && k < sn->s->nkey; k++) sqlite3_value_free(sn->last[k]);
  free(sn->last);
  for (size_t k = 0; sn->after && k < sn->s->nkey; k++) as_value_clear(&sn->after[k]);
  free(sn->after);
  sqlite3_close(sn->db);
  free(sn);
}

static int snapshot_open(as_node *n, const as_schema *s, const char *after_key, as_snapshot **out,
                         as_error *err) {
  *out = NULL;
  as_snapshot *sn = calloc(1, sizeof *sn);
  as_buf sql = AS_BUF_INIT;
  sqlite3_stmt *cnt = NULL;
  int ret;
  if (!sn) return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
  sn->n = n;
  sn->s = s;
  sn->ts_us = as_now_us();
  sn->estimate = -1;
  sn->last = calloc(s->nkey ? s->nkey : 1, sizeof *sn->last);
  sn->after = calloc(s->nkey ? s->nkey : 1, sizeof *sn->after);
  if (!sn->last || !sn->after) {
    ret = as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
    goto fail;
  }
  if ((ret = sq_open(n->path, n->busy_ms, &sn->db, err)) != AS_OK) goto fail;
  sq_select_sql(&sql, s);
  as_buf_append_str(&sql, " ORDER BY ");
  key_list(&sql, s);
  as_buf_append_str(&sql, " LIMIT ?1");
  if ((ret = prep(sn->db, as_buf_cstr(&sql), &sn->first, err)) != AS_OK) goto fail;
  as_buf_reset(&sql);
  sq_select_sql(&sql, s);
  as_buf_append_str(&sql, " WHERE (");
  key_list(&sql, s);
  as_buf_append_str(&sql, ") > (");
  for (size_t k = 0; k < s->nkey; k++) as_buf_printf(&sql, "%s?%zu", k ? ", " : "", k + 2);
  as_buf_append_str(&sql, ") ORDER BY ");
  key_list(&sql, s);
  as_buf_append_str(&sql, " LIMIT ?1");
  if ((ret = prep(sn->db, as_buf_cstr(&sql), &sn->next, err)) != AS_OK) goto fail;
  as_buf_reset(&sql);
  as_buf_append_str(&sql, "SELECT count(*) FROM ");
  as_sql_quote_ident(s->table, &sql);
  if (prep(sn->db, as_buf_cstr(&sql), &cnt, NULL) == AS_OK && sqlite3_step(cnt) == SQLITE_ROW)
    sn->estimate = sqlite3_column_int64(cnt, 0);
  if (after_key) {
    ret = as_key_parse_values(s, after_key, sn->after, err);
    for (size_t k = 0; ret == AS_OK && k < s->nkey; k++)
      ret = sq_bind_value(sn->next, (int)k + 2, &sn->after[k], err);
    if (ret != AS_OK) {
      as_error_prefix(err, "mapping %s: snapshot resume key", s->name);
      goto fail;
    }
    sn->have_last = true;
  }
  *out = sn;
  ret = AS_OK;
  goto cleanup;
fail:
  snapshot_close(sn);
cleanup:
  sqlite3_finalize(cnt);
  as_buf_free(&sql);
  return ret;
}

static int snapshot_next(as_snapshot *sn, as_batch *out, size_t max, as_error *err) {
  const as_schema *s = sn->s;
  sqlite3_stmt *st = sn->have_last ? sn->next : sn->first;
  size_t got = 0;
  int rc, ret = AS_OK;
  if (sn->have_last && sn->last[0]) {
    for (size_t k = 0; k < s->nkey; k++) sqlite3_bind_value(st, (int)k + 2, sn->last[k]);
  }
  sqlite3_bind_int64(st, 1, (sqlite3_int64)(max ? max : 1));
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    got++;
    for (size_t k = 0; k < s->nkey; k++) {
      sqlite3_value_free(sn->last[k]);
      sn->last[k] = sqlite3_value_dup(sqlite3_column_value(st, (int)s->key_idx[k]));
      if (!sn->last[k]) {
        ret = as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
        goto done;
      }
    }
    as_delta d;
    as_error e = {0};
    memset(&d, 0, sizeof d);
    if (new_delta(&d, s, AS_OP_INSERT, sn->n->name, false, sn->ts_us, NULL) != AS_OK) {
      as_delta_clear(&d);
      ret = as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
      goto done;
    }
    int r = sq_row_from_stmt(s, st, &d.row, &e);
    if (r == AS_OK && s->nchildren) r = sq_children_fill(sn->db, s, &d.row, &e);
    if (r == AS_OK) {
      as_delta *slot = as_batch_push(out);
      if (!slot) {
        as_delta_clear(&d);
        ret = as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
        goto done;
      }
      *slot = d;
    } else {
      char *k = as_key_describe(s, &d.row);
      char msg[AS_ERROR_MSG_MAX + 256];
      snprintf(msg, sizeof msg, "mapping %s, table \"%s\", key %s: %s", s->name, s->table,
               k ? k : "?", e.message);
      as_delta_clear(&d);
      AS_LOG(AS_LOG_WARN, sn->n->comp_src, "snapshot dead letter: %s", msg);
      if (as_batch_push_dead(out, s, k, k ? strdup(k) : NULL, strdup(msg), NULL) != AS_OK) {
        ret = as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
        goto done;
      }
    }
  }
  if (rc != SQLITE_DONE) ret = sq_fail(sn->db, rc, err, "snapshot read");
done:
  sqlite3_reset(st);
  if (got) sn->have_last = true;
  if (ret == AS_OK && got < (max ? max : 1)) ret = AS_EOF;
  return ret;
}

static int64_t snapshot_estimate(as_snapshot *sn) {
  return sn ? sn->estimate : -1;
}

/* ---------------------------------------------------------------- sink */

static int sink_begin(as_node *n, as_error *err) {
  int ret = need_db(n, err);
  if (ret != AS_OK) return ret;
  if (n->in_txn) return as_error_set(err, AS_DOM_SQLITE, AS_EINVAL, "begin: a batch is open");
  if ((ret = sq_exec(n->db, SQ_BEGIN_IMMEDIATE, err)) != AS_OK) return ret;
  n->in_txn = true;
  n->origin_dirty = false;
  free(n->cur_origin);
  n->cur_origin = NULL;
  return AS_OK;
}

static int set_origin(as_node *n, const char *origin, as_error *err) {
  if (origin && n->local_only) origin = AS_ORIGIN_LOCAL_ONLY; /* the triggers log nothing */
  if (!origin && !n->origin_dirty) return AS_OK;
  if (origin && n->cur_origin && strcmp(origin, n->cur_origin) == 0) return AS_OK;
  int ret;
  if (!n->st_origin && (ret = prep(n->db, SQ_ORIGIN_SET, &n->st_origin, err)) != AS_OK) return ret;
  if (origin)
    sqlite3_bind_text(n->st_origin, 1, origin, -1, SQLITE_TRANSIENT);
  else
    sqlite3_bind_null(n->st_origin, 1);
  int rc = sqlite3_step(n->st_origin);
  sqlite3_reset(n->st_origin);
  if (rc != SQLITE_DONE) return sq_fail(n->db, rc, err, "set origin");
  free(n->cur_origin);
  n->cur_origin = origin ? strdup(origin) : NULL;
  n->origin_dirty = origin != NULL;
  if (origin && !n->cur_origin) return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
  return AS_OK;
}

/* The cached statement for this delta's shape (prepared on first use). */
/* Whether an update carries only some columns (a partial row: UPDATE, never an upsert). */
static bool partial_update(const as_delta *d) {
  if (d->op != AS_OP_UPDATE) return false;
  for (size_t i = 0; i < d->row.n; i++)
    if (!d->row.set[i]) return true;
  return false;
}

/* An update that carries no column besides the key writes nothing. */
static bool empty_update(const as_delta *d) {
  if (d->op != AS_OP_UPDATE) return false;
  for (size_t i = 0; i < d->row.n; i++)
    if (d->row.set[i] && !d->schema->cols[i].is_key) return false;
  return true;
}

/* UPDATE t SET present non-key columns WHERE key columns (params: set columns, then keys). */
static void update_sql(as_buf *sql, const as_schema *s, const uint8_t *mask, sq_cached *e) {
  as_buf_append_str(sql, "UPDATE ");
  as_sql_quote_ident(s->table, sql);
  as_buf_append_str(sql, " SET ");
  bool first = true;
  for (size_t i = 0; i < s->ntable; i++) {
    if (!mask[i] || s->cols[i].is_key) continue;
    if (!first) as_buf_append_str(sql, ", ");
    first = false;
    as_sql_quote_ident(s->cols[i].name, sql);
    e->param_col[e->nparams++] = (int)i;
    as_buf_printf(sql, " = ?%d", e->nparams);
  }
  as_buf_append_str(sql, " WHERE ");
  for (size_t k = 0; k < s->nkey; k++) {
    if (k) as_buf_append_str(sql, " AND ");
    as_sql_quote_ident(s->cols[s->key_idx[k]].name, sql);
    e->param_col[e->nparams++] = (int)s->key_idx[k];
    as_buf_printf(sql, " = ?%d", e->nparams);
  }
}

static int stmt_for(as_node *n, const as_delta *d, sq_cached **out, as_error *err) {
  const as_schema *s = d->schema;
  as_op op = d->op == AS_OP_DELETE ? AS_OP_DELETE : partial_update(d) ? AS_OP_UPDATE : AS_OP_INSERT;
  sq_cached *c = n->last;
  for (size_t k = 0; k <= n->ncache; k++) {
    if (c && c->schema == s && c->op == op &&
        (op == AS_OP_DELETE || memcmp(c->mask, d->row.set, s->ncols) == 0)) {
      n->last = c;
      *out = c;
      return AS_OK;
    }
    c = k < n->ncache ? &n->cache[k] : NULL;
  }
  sq_cached e = {.schema = s, .op = op};
  as_buf sql = AS_BUF_INIT;
  int ret = AS_OK;
  e.param_col = calloc(s->ncols ? s->ncols : 1, sizeof *e.param_col);
  if (!e.param_col) {
    ret = as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
    goto fail;
  }
  if (op == AS_OP_DELETE) {
    as_buf_append_str(&sql, "DELETE FROM ");
    as_sql_quote_ident(s->table, &sql);
    sq_key_where(&sql, s);
    for (size_t k = 0; k < s->nkey; k++) e.param_col[e.nparams++] = (int)s->key_idx[k];
  } else {
    e.mask = malloc(s->ncols ? s->ncols : 1);
    if (!e.mask) {
      ret = as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
      goto fail;
    }
    memcpy(e.mask, d->row.set, s->ncols);
    if (op == AS_OP_UPDATE) {
      update_sql(&sql, s, e.mask, &e);
    } else {
      for (size_t i = 0; i < s->ntable; i++)
        if (e.mask[i]) e.param_col[e.nparams++] = (int)i;
      sq_upsert_sql(&sql, s, e.mask);
    }
  }
  if ((ret = prep(n->db, as_buf_cstr(&sql), &e.st, err)) != AS_OK) {
    as_error_prefix(err, "mapping %s, table \"%s\"", s->name, s->table);
    goto fail;
  }
  as_buf_free(&sql);
  if ((ret = cache_push(n, &e, err)) != AS_OK) {
    sqlite3_finalize(e.st);
    free(e.mask);
    free(e.param_col);
    return ret;
  }
  *out = n->last;
  return AS_OK;
fail:
  as_buf_free(&sql);
  free(e.mask);
  free(e.param_col);
  return ret;
}

static int dead_delta(as_dead_list *dead, const as_delta *d, size_t index, const as_error *e) {
  char *k = as_key_describe(d->schema, &d->row);
  char *raw = as_delta_to_json_string(d, NULL);
  char msg[AS_ERROR_MSG_MAX + 256];
  snprintf(msg, sizeof msg, "mapping %s, table \"%s\", key %s: %s", d->schema->name,
           d->schema->table, k ? k : "?", e->message);
  return as_dead_list_push(dead, d->schema, index, k, raw, strdup(msg));
}

/* Runs the write of one insert, update or delete (the table's own columns; *missing: an
 * update found no row). Permanent errors on this delta are AS_EDATA with err set. */
int sq_run_delta(as_node *n, const as_delta *d, bool *missing, as_error *err) {
  sq_cached *c = NULL;
  *missing = false;
  int ret = stmt_for(n, d, &c, err);
  if (ret != AS_OK) return ret;
  for (int p = 0; p < c->nparams && ret == AS_OK; p++) {
    int col = c->param_col[p];
    if ((size_t)col >= d->row.n || !d->row.set[col]) {
      ret = as_error_set(err, AS_DOM_SQLITE, AS_EDATA, "key column \"%s\" missing",
                         d->schema->cols[col].name);
    } else {
      ret = sq_bind_value(c->st, p + 1, &d->row.v[col], err);
    }
  }
  if (ret == AS_OK) {
    int rc = sqlite3_step(c->st);
    if (rc != SQLITE_DONE) ret = sq_fail(n->db, rc, err, as_op_name(d->op));
    else *missing = c->op == AS_OP_UPDATE && sqlite3_changes(n->db) == 0;
  }
  sqlite3_reset(c->st);
  sqlite3_clear_bindings(c->st);
  return ret;
}

/* Whether an update sets a column of the table itself (not only array columns). */
static bool sets_table_column(const as_delta *d) {
  for (size_t i = 0; i < d->schema->ntable; i++)
    if (d->row.set[i] && !d->schema->cols[i].is_key) return true;
  return false;
}

/* A delta of a mapping with child tables: the parent row and its child rows, all or nothing
 * (a savepoint, since SQLite undoes only the failing statement). */
static int run_with_children(as_node *n, const as_delta *d, bool *missing, as_error *err) {
  const as_schema *s = d->schema;
  int ret = sq_exec(n->db, "SAVEPOINT arraysync_children", err);
  if (ret != AS_OK) return ret;
  *missing = false;
  if (d->op == AS_OP_DELETE) ret = sq_children_delete(n, s, &d->row, err);
  if (ret == AS_OK) {
    if (d->op == AS_OP_UPDATE && !sets_table_column(d)) {
      bool exists = false;
      ret = sq_parent_exists(n->db, s, &d->row, &exists, err);
      *missing = !exists;
    } else {
      ret = sq_run_delta(n, d, missing, err);
    }
  }
  if (ret == AS_OK && d->op != AS_OP_DELETE && !*missing) ret = sq_children_write(n, d, err);
  if (ret == AS_OK) return sq_exec(n->db, "RELEASE arraysync_children", err);
  if (!sqlite3_get_autocommit(n->db)) {
    sqlite3_exec(n->db, "ROLLBACK TO arraysync_children", NULL, NULL, NULL);
    sqlite3_exec(n->db, "RELEASE arraysync_children", NULL, NULL, NULL);
  }
  return ret;
}

/* Empties the mapping's table (on_truncate: propagate), child tables first. */
static int run_truncate(as_node *n, const as_schema *s, as_error *err) {
  int ret = s->nchildren ? sq_children_delete(n, s, NULL, err) : AS_OK;
  as_buf sql = AS_BUF_INIT;
  if (ret == AS_OK)
    ret = as_buf_append_str(&sql, "DELETE FROM ") == AS_OK &&
                  as_sql_quote_ident(s->table, &sql) == AS_OK && as_buf_cstr(&sql)
              ? sq_exec(n->db, as_buf_cstr(&sql), err)
              : as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
  as_buf_free(&sql);
  return ret;
}

static int sink_apply(as_node *n, const as_delta *ds, size_t nd, as_dead_list *dead,
                      as_error *err) {
  if (!n->in_txn) return as_error_set(err, AS_DOM_SQLITE, AS_EINVAL, "apply outside begin/commit");
  for (size_t i = 0; i < nd; i++) {
    const as_delta *d = &ds[i];
    as_error e = {0};
    int ret = set_origin(n, d->origin, err);
    if (ret != AS_OK) return ret;
    bool missing = false;
    if (!d->schema) {
      return as_error_set(err, AS_DOM_SQLITE, AS_EINVAL, "apply: delta %zu has no mapping", i);
    } else if (d->row.n != d->schema->ncols) {
      ret = as_error_set(&e, AS_DOM_SQLITE, AS_EDATA, "row has %zu columns, mapping %zu", d->row.n,
                         d->schema->ncols);
    } else if (empty_update(d)) {
      continue;
    } else if (d->op == AS_OP_TRUNCATE) { /* every row goes (on_truncate: propagate) */
      if ((ret = run_truncate(n, d->schema, err)) != AS_OK) return ret;
      continue;
    } else if (d->op == AS_OP_DELETE || d->op == AS_OP_INSERT || d->op == AS_OP_UPDATE) {
      /* a failed prepare (the table does not fit the mapping) returns below */
      ret = d->schema->nchildren ? run_with_children(n, d, &missing, &e)
                                 : sq_run_delta(n, d, &missing, &e);
    } else {
      ret = as_error_set(&e, AS_DOM_SQLITE, AS_EDATA, "unknown op %d", (int)d->op);
    }
    if (missing && (!dead || as_dead_list_push_missing(dead, d->schema, i) != AS_OK))
      return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
    if (ret == AS_OK) continue;
    if (sqlite3_get_autocommit(n->db)) {
      /* SQLite rolled the whole transaction back (I/O error, full disk, ...) */
      n->in_txn = false;
      n->origin_dirty = false;
      if (err) *err = e;
      return ret == AS_EDATA ? AS_RETRY : ret;
    }
    if (ret != AS_EDATA) {
      if (err) *err = e;
      return ret;
    }
    /* one bad row: SQLite undid only that statement; the rest of the batch goes on */
    if (!dead) {
      if (err) *err = e;
      return ret;
    }
    if (dead_delta(dead, d, i, &e) != AS_OK)
      return as_error_set(err, AS_DOM_SQLITE, AS_ERR, "out of memory");
    AS_LOG(AS_LOG_WARN, n->comp_sink, "delta %zu dead-lettered: %s", i, e.message);
  }
  return AS_OK;
}

static int sink_commit(as_node *n, const char *stream_id, const char *checkpoint, as_error *err) {
  if (!n->in_txn) return as_error_set(err, AS_DOM_SQLITE, AS_EINVAL, "commit without begin");
  int ret = set_origin(n, NULL, err); /* later writers must not look like the connector */
  if (ret != AS_OK) return ret;
  if (checkpoint && stream_id) {
    if (!n->st_ckpt_put && (ret = prep(n->db, SQ_CHECKPOINT_PUT, &n->st_ckpt_put, err)) != AS_OK)
      return ret;
    sqlite3_bind_text(n->st_ckpt_put, 1, stream_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(n->st_ckpt_put, 2, checkpoint, -1, SQLITE_STATIC);
    int rc = sqlite3_step(n->st_ckpt_put);
    sqlite3_reset(n->st_ckpt_put);
    sqlite3_clear_bindings(n->st_ckpt_put);
    if (rc != SQLITE_DONE) return sq_fail(n->db, rc, err, "write checkpoint");
  }
  /* the transaction holds the write lock: no other commit falls between this read and ours */
  int64_t seq = 0;
  n->commit_seq = 0;
  if (!n->st_seq_end && (ret = prep(n->db, SQ_SEQ_END, &n->st_seq_end, err)) != AS_OK) return ret;
  if ((ret = one_int(n->db, n->st_seq_end, &seq, err, "changelog end")) != AS_OK) return ret;
  if ((ret = sq_exec(n->db, SQ_COMMIT, err)) != AS_OK) return ret;
  n->in_txn = false;
  n->commit_seq = seq + 1; /* in the changes' order (new_delta): after every change logged */
  return AS_OK;
}

static int64_t sink_commit_order(as_node *n) { return n->commit_seq; }

static int sink_rollback(as_node *n) {
  if (n->db && !sqlite3_get_autocommit(n->db)) sqlite3_exec(n->db, SQ_ROLLBACK, NULL, NULL, NULL);
  n->in_txn = false;
  n->origin_dirty = false;
  free(n->cur_origin);
  n->cur_origin = NULL;
  return AS_OK;
}

static int checkpoint_load(as_node *n, const char *stream_id, char **out, as_error *err) {
  *out = NULL;
  int ret = need_db(n, err);
  if (ret != AS_OK) return ret;
  if (!n->st_ckpt_get && (ret = prep(n->db, SQ_CHECKPOINT_GET, &n->st_ckpt_get, err)) != AS_OK)
    return ret;
  sqlite3_bind_text(n->st_ckpt_get, 1, stream_id, -1, SQLITE_STATIC);
  int rc = sqlite3_step(n->st_ckpt_get);
  if (rc == SQLITE_ROW) {
    const char *p = (const char *)sqlite3_column_text(n->st_ckpt_get, 0);
    *out = p ? strdup(p) : NULL;
    ret = *out ? AS_OK : AS_ENOTFOUND;
  } else if (rc == SQLITE_DONE) {
    ret = AS_ENOTFOUND;
  } else {
    ret = sq_fail(n->db, rc, err, "read checkpoint");
  }
  sqlite3_reset(n->st_ckpt_get);
  return ret;
}

const as_adapter as_adapter_sqlite = {
    .abi = AS_ADAPTER_ABI,
    .kind = "sqlite",
    .caps = AS_CAP_SOURCE | AS_CAP_SINK | AS_CAP_TXN | AS_CAP_SNAPSHOT,
    .config_map = config_map,
    .init = node_init,
    .connect = node_connect,
    .install = node_install,
    .uninstall = node_uninstall,
    .exit = node_exit,
    .open_stream = open_stream,
    .poll = stream_poll,
    .ack = stream_ack,
    .stream_position = stream_position,
    .close_stream = close_stream,
    .snapshot_open = snapshot_open,
    .snapshot_next = snapshot_next,
    .snapshot_estimate = snapshot_estimate,
    .snapshot_close = snapshot_close,
    .begin = sink_begin,
    .apply = sink_apply,
    .commit = sink_commit,
    .rollback = sink_rollback,
    .checkpoint_load = checkpoint_load,
    .read_row = read_row,
    .decode_raw = as_adapter_decode_row_json,
    .describe = sq_describe,
    .check_live = sq_check_live,
    .versions = sq_versions,
    .verify_open = sq_verify_open,
    .verify_estimate = sq_verify_estimate,
    .verify_sign = sq_verify_sign,
    .verify_split = sq_verify_split,
    .verify_rows = sq_verify_rows,
    .verify_bytes = sq_verify_bytes,
    .verify_close = sq_verify_close,
    .mirror_ensure = sq_mirror_ensure,
    .mirror_ids = sq_mirror_ids,
    .mirror_put = sq_mirror_put,
    .mirror_del = sq_mirror_del,
    .commit_order = sink_commit_order,
};
