/* it_sqlite.c — SQLite adapter against other processes (run by test_sqlite_shell.sh).
 *
 *   it_sqlite shell DIR            changes made by the sqlite3 command-line shell are captured
 *   it_sqlite kill9 DIR [ROUNDS]   a writer killed with SIGKILL mid-batch: checkpoint == data
 *   it_sqlite latency DIR MODE     wake-up latency of a change committed by another process
 *                                  (MODE inotify|poll); reports, asserts nothing about time
 * Exit status 0 on success; failures print "FAIL: ..." on stderr. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "adapter.h"
#include "as_log.h"
#include "as_schema.h"

static const as_adapter *A = &as_adapter_sqlite;

static const char *MAPPING =
    "mapping: items\n"
    "collection: items\n"
    "table: items\n"
    "key: id\n"
    "columns:\n"
    "  id:    { field: _id, type: int64 }\n"
    "  name:  { field: name, type: text }\n"
    "  batch: { field: batch, type: int64 }\n"
    "  price: { field: price, type: decimal }\n"
    "  at:    { field: at, type: timestamp }\n"
    "  ok:    { field: ok, type: bool }\n"
    "  meta:  { field: meta, type: json }\n";

static int failures = 0;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                        \
      fprintf(stderr, "\n");                               \
      failures++;                                          \
    }                                                      \
  } while (0)
#define DIE(...)                  \
  do {                            \
    fprintf(stderr, "FAIL: ");    \
    fprintf(stderr, __VA_ARGS__); \
    fprintf(stderr, "\n");        \
    exit(1);                      \
  } while (0)

typedef struct ctx {
  char path[4096];
  as_schema *schema;
  as_node *node;
  as_node_option opts[3];
  as_node_config cfg;
  bool local_only; /* as the connector opens every node */
} ctx;

static void ctx_open(ctx *c, const char *dir, const char *wakeup) {
  as_error err = {0};
  snprintf(c->path, sizeof c->path, "%s/it.db", dir);
  if (!c->schema && as_schema_load_string("items.yaml", MAPPING, &c->schema, &err) != AS_OK)
    DIE("mapping: %s", err.message);
  c->opts[0] = (as_node_option){.key = "path", .value = c->path};
  c->opts[1] = (as_node_option){.key = "wakeup", .value = (char *)(wakeup ? wakeup : "inotify")};
  c->cfg = (as_node_config){.name = "lite", .kind = "sqlite", .opts = c->opts, .nopts = 2,
                            .local_only = c->local_only};
  const as_schema *ss[1] = {c->schema};
  if (A->init(&c->cfg, ss, 1, &c->node, &err) != AS_OK) DIE("init: %s", err.message);
  if (A->connect(c->node, &err) != AS_OK) DIE("connect: %s", err.message);
  if (A->install(c->node, &err) != AS_OK) DIE("install: %s", err.message);
}

static void ctx_close(ctx *c) {
  A->exit(c->node);
  c->node = NULL;
}

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void shell(const char *db, const char *sql) {
  char path[] = "/tmp/it_sqlite_sql_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) DIE("mkstemp");
  FILE *f = fdopen(fd, "w");
  fputs(sql, f);
  fclose(f);
  char cmd[8300];
  snprintf(cmd, sizeof cmd, "sqlite3 -bail '%s' < '%s'", db, path);
  int rc = system(cmd);
  unlink(path);
  if (rc != 0) DIE("sqlite3 shell failed (%d) on: %s", rc, sql);
}

static const as_value *col(const as_delta *d, const char *name) {
  int i = as_schema_column_index(d->schema, name);
  if (i < 0 || !as_row_has(&d->row, (size_t)i)) return NULL;
  return &d->row.v[i];
}

static void poll_all(as_stream *s, as_batch *b, size_t want) {
  as_error err = {0};
  int64_t deadline = mono_us() + 5000000;
  while (b->n + b->ndead < want && mono_us() < deadline) {
    if (A->poll(s, b, 1000, 200, &err) != AS_OK) DIE("poll: %s", err.message);
  }
}

/* ---------------------------------------------------------------- shell */

static int run_shell(const char *dir) {
  ctx c = {0};
  as_error err = {0};
  ctx_open(&c, dir, NULL);
  as_stream *s = NULL;
  if (A->open_stream(c.node, "reader", NULL, &s, &err) != AS_OK) DIE("open_stream: %s", err.message);
  shell(c.path,
        "INSERT INTO items (id, name, batch, price, at, ok) VALUES "
        "(1, 'one', 0, '9.99', '2024-05-01T12:00:00.000000Z', 1);\n"
        "INSERT INTO items (id, name, price, at, ok) VALUES (2, 'two', 12.5, '2024-05-01 "
        "12:00:00', 'true');\n"
        "BEGIN; UPDATE items SET name = 'uno' WHERE id = 1; UPDATE items SET name = name; COMMIT;\n"
        "DELETE FROM items WHERE id = 2;\n"
        "INSERT INTO items (id, name, at) VALUES (3, 'bad', 'yesterday-ish');\n"
        "INSERT INTO items (id, name, at) VALUES (4, 'unix', 1714564800);\n");
  as_batch b = {0};
  poll_all(s, &b, 6);
  CHECK(b.n == 5 && b.ndead == 1, "want 5 deltas + 1 dead letter, got %zu + %zu", b.n, b.ndead);
  if (b.n == 5) {
    CHECK(b.d[0].op == AS_OP_INSERT && col(&b.d[0], "id")->u.i == 1, "insert 1");
    CHECK(!b.d[0].echo && strcmp(b.d[0].origin, "lite") == 0, "local origin");
    CHECK(strcmp(col(&b.d[0], "price")->u.s.ptr, "9.99") == 0, "decimal text");
    CHECK(b.d[1].op == AS_OP_INSERT && strcmp(col(&b.d[1], "price")->u.s.ptr, "12.5") == 0,
          "decimal from REAL 12.5");
    CHECK(col(&b.d[1], "ok")->u.b && col(&b.d[1], "at")->u.ts_us == col(&b.d[0], "at")->u.ts_us,
          "lenient bool/timestamp");
    CHECK(b.d[2].op == AS_OP_UPDATE && strcmp(col(&b.d[2], "name")->u.s.ptr, "uno") == 0 &&
              col(&b.d[2], "price") == NULL,
          "update carries only the changed column");
    CHECK(b.d[3].op == AS_OP_DELETE && col(&b.d[3], "id")->u.i == 2, "delete 2");
    CHECK(b.d[4].op == AS_OP_INSERT && col(&b.d[4], "id")->u.i == 4 &&
              col(&b.d[4], "at")->u.ts_us == col(&b.d[0], "at")->u.ts_us,
          "unix time");
  }
  if (b.ndead == 1) {
    CHECK(strstr(b.dead[0].error, "items") && strstr(b.dead[0].error, "\"at\"") &&
              strstr(b.dead[0].error, "yesterday-ish") && strstr(b.dead[0].error, "3"),
          "dead letter names mapping, key, column, value: %s", b.dead[0].error);
  }
  /* values made by SQLite's JSON functions carry a JSON subtype into the trigger: they are
   * still the column's text (a json column's value, or a text column holding JSON text) */
  shell(c.path,
        "INSERT INTO items (id, name, meta) VALUES (5, json_object('k', 1), '{\"a\":{\"m.n\":1,\"\":2}}');\n"
        "UPDATE items SET meta = json_set(meta, '$.a.\"m.n\"', 'x', '$.b', json('[1,2]')) WHERE id = 5;\n");
  as_batch_reset(&b);
  poll_all(s, &b, 2);
  CHECK(b.n == 2 && b.ndead == 0, "json functions: want 2 deltas, got %zu + %zu dead (%s)", b.n, b.ndead,
        b.ndead ? b.dead[0].error : "");
  if (b.n == 2) {
    const as_value *nm = col(&b.d[0], "name"), *m0 = col(&b.d[0], "meta"), *m1 = col(&b.d[1], "meta");
    CHECK(nm && nm->type == AS_T_TEXT && strcmp(nm->u.s.ptr, "{\"k\":1}") == 0,
          "json_object() into a text column is its text: %s", nm && nm->type == AS_T_TEXT ? nm->u.s.ptr : "?");
    CHECK(m0 && m0->type == AS_T_JSON && strcmp(m0->u.s.ptr, "{\"a\":{\"m.n\":1,\"\":2}}") == 0,
          "json column inserted: %s", m0 && m0->type == AS_T_JSON ? m0->u.s.ptr : "?");
    CHECK(b.d[1].op == AS_OP_UPDATE && m1 && m1->type == AS_T_JSON &&
              strcmp(m1->u.s.ptr, "{\"a\":{\"m.n\":\"x\",\"\":2},\"b\":[1,2]}") == 0,
          "json_set() of a json column is its new text: %s", m1 && m1->type == AS_T_JSON ? m1->u.s.ptr : "?");
  }
  /* the connector's own write is an echo; the shell sees the origin table reset */
  as_delta d = {0};
  as_delta_init(&d, c.schema, AS_OP_INSERT);
  as_value v = AS_VALUE_NULL;
  as_value_set_int64(&v, 10);
  as_row_put(&d.row, 0, &v);
  as_delta_set_origin(&d, "mongo");
  as_dead_list dead = {0};
  if (A->begin(c.node, &err) || A->apply(c.node, &d, 1, &dead, &err) ||
      A->commit(c.node, "mongo->lite", "tok1", &err))
    DIE("apply: %s", err.message);
  shell(c.path, "INSERT INTO items (id, name) VALUES (11, 'after');\n");
  as_batch_reset(&b);
  poll_all(s, &b, 2);
  CHECK(b.n == 2, "want 2 deltas, got %zu", b.n);
  if (b.n == 2) {
    CHECK(b.d[0].echo && strcmp(b.d[0].origin, "mongo") == 0, "echo marked");
    CHECK(!b.d[1].echo && strcmp(b.d[1].origin, "lite") == 0,
          "shell write after the batch is local");
  }
  /* opened local_only (as the connector opens every node), the node logs none of the writes
   * that have an origin; a write without one is captured as local, and the commit order still
   * places a later change of the shell after the batch */
  char *pos = b.pos ? strdup(b.pos) : NULL;
  A->close_stream(s);
  ctx_close(&c);
  c.local_only = true;
  ctx_open(&c, dir, NULL);
  if (A->open_stream(c.node, "reader", pos, &s, &err) != AS_OK) DIE("open_stream: %s", err.message);
  free(pos);
  as_delta d2[2] = {0};
  for (int i = 0; i < 2; i++) {
    as_delta_init(&d2[i], c.schema, AS_OP_INSERT);
    as_value_set_int64(&v, 12 + i);
    as_row_put(&d2[i].row, 0, &v);
  }
  as_delta_set_origin(&d2[0], "mongo"); /* d2[1]: no origin */
  if (A->begin(c.node, &err) || A->apply(c.node, d2, 2, &dead, &err) ||
      A->commit(c.node, "mongo->lite", "tok2", &err))
    DIE("apply: %s", err.message);
  int64_t order = A->commit_order(c.node);
  shell(c.path, "INSERT INTO items (id, name) VALUES (14, 'after');\n");
  as_batch_reset(&b);
  poll_all(s, &b, 2);
  poll_all(s, &b, 3); /* anything more would be the write marked local-only */
  CHECK(b.n == 2, "local_only: want 2 deltas (no origin, then the shell), got %zu", b.n);
  if (b.n == 2) {
    CHECK(!b.d[0].echo && strcmp(b.d[0].origin, "lite") == 0 && col(&b.d[0], "id")->u.i == 13,
          "local_only: a write without origin is captured as local");
    CHECK(b.d[0].order > 0 && b.d[0].order <= order && b.d[1].order > order &&
              col(&b.d[1], "id")->u.i == 14,
          "local_only: commit order %lld between the batch's change %lld and the shell's %lld",
          (long long)order, (long long)b.d[0].order, (long long)b.d[1].order);
  }
  sqlite3 *db = NULL;
  sqlite3_stmt *q = NULL;
  int logged = -1;
  if (sqlite3_open_v2(c.path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(db, "SELECT count(*) FROM _arraysync_changelog WHERE json_extract(new, '$.id') = 12",
                         -1, &q, NULL) == SQLITE_OK &&
      sqlite3_step(q) == SQLITE_ROW)
    logged = sqlite3_column_int(q, 0);
  sqlite3_finalize(q);
  sqlite3_close(db);
  CHECK(logged == 0, "local_only: the changelog holds %d rows of the write marked local-only", logged);
  for (int i = 0; i < 2; i++) as_delta_clear(&d2[i]);
  as_delta_clear(&d);
  as_dead_list_clear(&dead);
  as_batch_clear(&b);
  A->close_stream(s);
  ctx_close(&c);
  as_schema_free(c.schema);
  printf("sqlite.shell %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

/* ---------------------------------------------------------------- kill -9 */

enum { ROWS_PER_BATCH = 200 };

static void writer(const char *dir) {
  ctx c = {0};
  as_error err = {0};
  ctx_open(&c, dir, NULL);
  char *ck = NULL;
  int64_t next = 1;
  int rc = A->checkpoint_load(c.node, "src->lite", &ck, &err);
  if (rc == AS_OK)
    next = atoll(ck) + 1;
  else if (rc != AS_ENOTFOUND)
    DIE("checkpoint_load: %s", err.message);
  free(ck);
  as_delta *d = calloc(ROWS_PER_BATCH + 1, sizeof *d);
  as_dead_list dead = {0};
  for (int64_t batch = next;; batch++) {
    for (int i = 0; i < ROWS_PER_BATCH + 1; i++) {
      as_delta_init(&d[i], c.schema, AS_OP_INSERT);
      as_value v = AS_VALUE_NULL;
      /* rows batch*1000+i, and row 0 (a counter) updated to the batch number */
      as_value_set_int64(&v, i == ROWS_PER_BATCH ? 0 : batch * 1000 + i);
      as_row_put(&d[i].row, 0, &v);
      as_value_set_int64(&v, batch);
      as_row_put(&d[i].row, 2, &v);
      as_delta_set_origin(&d[i], "src");
    }
    char ckpt[32];
    snprintf(ckpt, sizeof ckpt, "%" PRId64, batch);
    if (A->begin(c.node, &err) || A->apply(c.node, d, ROWS_PER_BATCH + 1, &dead, &err) ||
        A->commit(c.node, "src->lite", ckpt, &err)) {
      A->rollback(c.node);
      batch--; /* retry */
    }
    for (int i = 0; i < ROWS_PER_BATCH + 1; i++) as_delta_clear(&d[i]);
  }
}

static int64_t q1(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  int64_t v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  else
    fprintf(stderr, "query failed: %s: %s\n", sql, sqlite3_errmsg(db));
  sqlite3_finalize(st);
  return v;
}

static int run_kill9(const char *dir, int rounds) {
  srand((unsigned)getpid());
  ctx c = {0};
  ctx_open(&c, dir, NULL);
  ctx_close(&c);
  int64_t last = 0;
  for (int r = 0; r < rounds; r++) {
    pid_t pid = fork();
    if (pid < 0) DIE("fork: %s", strerror(errno));
    if (pid == 0) {
      as_log_set_level(AS_LOG_ERROR);
      writer(dir);
      _exit(0);
    }
    struct timespec ts = {0, (long)(100 + rand() % 300) * 1000000L};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    sqlite3 *db = NULL;
    if (sqlite3_open(c.path, &db) != SQLITE_OK) DIE("open");
    sqlite3_busy_timeout(db, 5000);
    int64_t ck = q1(db,
                    "SELECT CAST(position AS INTEGER) FROM _arraysync_checkpoints WHERE stream_id "
                    "= 'src->lite'");
    int64_t rows = q1(db, "SELECT count(*) FROM items WHERE id > 0");
    int64_t maxb = q1(db, "SELECT coalesce(max(batch), 0) FROM items WHERE id > 0");
    int64_t counter = q1(db, "SELECT batch FROM items WHERE id = 0");
    int64_t logged = q1(db,
                        "SELECT count(*) FROM _arraysync_changelog WHERE op = 'insert' AND "
                        "json_extract(new, '$.id') != 0");
    int64_t origin_null = q1(db, "SELECT origin IS NULL FROM _arraysync_origin");
    char *ic = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      ic = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    printf("sqlite.kill9 round=%d checkpoint=%" PRId64 " rows=%" PRId64 " counter=%" PRId64
           " changelog_inserts=%" PRId64 "\n",
           r + 1, ck, rows, counter, logged);
    CHECK(ck >= last, "checkpoint went back: %" PRId64 " < %" PRId64, ck, last);
    CHECK(rows == ck * ROWS_PER_BATCH, "rows %" PRId64 " != checkpoint %" PRId64 " * %d", rows, ck,
          ROWS_PER_BATCH);
    CHECK(maxb == ck, "max batch %" PRId64 " != checkpoint %" PRId64, maxb, ck);
    CHECK(ck == 0 || counter == ck, "counter %" PRId64 " != checkpoint %" PRId64, counter, ck);
    CHECK(logged == rows, "changelog inserts %" PRId64 " != rows %" PRId64, logged, rows);
    CHECK(origin_null == 1, "origin row left marked");
    CHECK(ic && strcmp(ic, "ok") == 0, "integrity_check: %s", ic ? ic : "?");
    free(ic);
    last = ck;
  }
  CHECK(last > 0, "the writer never committed a batch");
  as_schema_free(c.schema);
  printf("sqlite.kill9 %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

/* ---------------------------------------------------------------- latency */

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static int run_latency(const char *dir, const char *mode) {
  enum { N = 40 };
  ctx c = {0};
  as_error err = {0};
  ctx_open(&c, dir, mode);
  as_stream *s = NULL;
  if (A->open_stream(c.node, "lat", NULL, &s, &err) != AS_OK) DIE("open_stream: %s", err.message);
  int fds[2];
  if (pipe(fds) != 0) DIE("pipe");
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    sqlite3 *db = NULL;
    sqlite3_open(c.path, &db);
    sqlite3_busy_timeout(db, 5000);
    for (int i = 0; i < N; i++) {
      struct timespec ts = {0, 15 * 1000000L};
      nanosleep(&ts, NULL);
      char sql[128];
      snprintf(sql, sizeof sql, "INSERT INTO items (id, name) VALUES (%d, 'lat')", 100000 + i);
      int64_t t[2];
      t[0] = mono_us(); /* before the statement */
      if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) _exit(2);
      t[1] = mono_us(); /* the commit has returned */
      if (write(fds[1], t, sizeof t) != sizeof t) _exit(3);
    }
    sqlite3_close(db);
    _exit(0);
  }
  close(fds[1]);
  int64_t lat[N], lat1[N];
  int got = 0;
  as_batch b = {0};
  while (got < N) {
    as_batch_reset(&b);
    if (A->poll(s, &b, 1, 5000, &err) != AS_OK) DIE("poll: %s", err.message);
    int64_t t2 = mono_us();
    if (b.n == 0) DIE("no change within 5 s (%d of %d)", got, N);
    int64_t t[2];
    if (read(fds[0], t, sizeof t) != sizeof t) DIE("pipe read");
    lat[got] = t2 - t[0];
    lat1[got++] = t2 - t[1];
  }
  int status;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer failed");
  qsort(lat, N, sizeof lat[0], cmp64);
  qsort(lat1, N, sizeof lat1[0], cmp64);
  /* from_start: from before the writer's INSERT (includes its commit and fsync);
   * after_commit: from the writer's return from the commit */
  printf("sqlite.wakeup mode=%s n=%d from_start_median_us=%" PRId64 " p90_us=%" PRId64
         " max_us=%" PRId64 " after_commit_median_us=%" PRId64 " p90_us=%" PRId64 "\n",
         mode, N, lat[N / 2], lat[N * 9 / 10], lat[N - 1], lat1[N / 2], lat1[N * 9 / 10]);
  as_batch_clear(&b);
  A->close_stream(s);
  ctx_close(&c);
  as_schema_free(c.schema);
  close(fds[0]);
  return failures ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s shell|kill9|latency DIR [ARG]\n", argv[0]);
    return 2;
  }
  as_log_set_level(AS_LOG_WARN);
  if (strcmp(argv[1], "shell") == 0) return run_shell(argv[2]);
  if (strcmp(argv[1], "kill9") == 0) return run_kill9(argv[2], argc > 3 ? atoi(argv[3]) : 5);
  if (strcmp(argv[1], "latency") == 0) return run_latency(argv[2], argc > 3 ? argv[3] : "inotify");
  fprintf(stderr, "unknown mode %s\n", argv[1]);
  return 2;
}
