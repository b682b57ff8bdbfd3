/* bench_postgres.c — PostgreSQL adapter figures against baselines measured in the same run.
 *
 *   bench_postgres CONNINFO [ROWS] [--triggers-only] [--capture-only] [--updates-only]
 *                  [--shapes-only]
 *                 (default 200000 rows; batches of 1000)
 *
 * pg.apply_vs_copy    full-row inserts applied through the adapter (begin/apply/commit with a
 *                     checkpoint per batch) vs raw binary COPY of the same rows into the same
 *                     table (same indexes, same capture objects), one transaction per batch;
 *                     with capture triggers and (_logical) with logical decoding.
 * pg.apply_vs_plain   the adapter as the connector writes (local_only: its writes not logged,
 *                     capture installed: triggers, and (_logical) logical decoding) vs binary
 *                     COPY into the same table with no capture objects, as a user would
 *                     compare.
 * pg.changelog_read   changes per second through poll() + ack (capture triggers);
 * pg.logical_read     the same with logical decoding (the server decodes on the same cores).
 * pg.capture_cost     a writer's rate (INSERT … SELECT / UPDATE of every row, 1000 rows per
 *                     statement) into the table with capture vs without: statement-level and
 *                     row-level triggers (their changelog rows carry the values), the
 *                     statement-level ones of a one-way mapping (_oneway, direction: to-mongo:
 *                     keys and masks only), and logical decoding (publication + slot; decoding
 *                     itself runs in the server's walsender when a stream reads). ROWS/4 rows,
 *                     7 rounds of all configurations back to back; the median over rounds of
 *                     each round's ratio to its own plain run (the machine is shared: its load
 *                     changes between rounds more than within one).
 * pg.apply_updates    partial updates (one column of every row, as a MongoDB $set of one field
 *                     makes them) through the adapter as the connector writes (local_only,
 *                     logical decoding), its statements prepared (option prepare: on, the
 *                     default) and not (prepare: off), vs one UPDATE … FROM unnest() of each
 *                     batch's keys and values, as a user would write a bulk update; best of 2.
 * pg.apply_shapes     partial updates whose column sets change (a mapping of irregular
 *                     documents): ROWS/2 updates of 10,000 rows of a 10-column table cycling
 *                     through 100 column sets, then ROWS/2 cycling through 100 other sets;
 *                     the second half's rate with prepared statements (at most 128 per
 *                     connection: old texts give their slots up once idle) vs prepare: off;
 *                     best of 2.
 * --triggers-only leaves out the logical figures (to measure a build without them);
 * --capture-only runs pg.capture_cost alone; --updates-only pg.apply_updates alone,
 * --shapes-only pg.apply_shapes alone (both: the two). The update figures print the CPU time
 * of this process per row for the prepared path (its best run). */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "adapter.h"
#include "as_buf.h"
#include "as_log.h"
#include "as_row.h"
#include "as_schema.h"

#define A (&as_adapter_postgres)
#define BATCH 1000

static const char *YAML =
    "mapping: bench\ncollection: bench\ntable: bench\nkey: id\ncolumns:\n"
    "  id:      { field: _id, type: int64 }\n"
    "  name:    { field: name, type: text }\n"
    "  email:   { field: email, type: text }\n"
    "  n:       { field: n, type: int64 }\n"
    "  score:   { field: score, type: double }\n"
    "  created: { field: created, type: timestamptz }\n";

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* This process's CPU time (the connector's side: statements built, values formatted, libpq). */
static double cpu_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what, const char *msg) {
  fprintf(stderr, "bench_postgres: %s: %s\n", what, msg);
  exit(1);
}

static void exec(PGconn *c, const char *q) {
  PGresult *r = PQexec(c, q);
  if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
    die(q, PQerrorMessage(c));
  PQclear(r);
}

/* triggers: "statement" | "row" (capture: triggers) or NULL (capture: logical); local_only:
 * as the connector opens a node whose writes no topology relays (none of them logged). */
static const char *prepare_opt = "on"; /* the node option prepare of make_node's nodes */

static as_node *make_node(const char *dsn, const as_schema *s, const char *triggers,
                          bool local_only) {
  static as_node_option opts[5];
  static as_node_config cfg;
  opts[0] = (as_node_option){.key = "dsn", .value = (char *)dsn};
  opts[1] = (as_node_option){.key = "schema", .value = "bench"};
  opts[2] = (as_node_option){.key = "capture_triggers", .value = triggers ? (char *)triggers : "statement"};
  opts[3] = (as_node_option){.key = "capture", .value = triggers ? "triggers" : "logical"};
  opts[4] = (as_node_option){.key = "prepare", .value = (char *)prepare_opt};
  cfg = (as_node_config){.name = "pg", .kind = "postgres", .opts = opts, .nopts = 5,
                         .local_only = local_only};
  const as_schema *ss[1] = {s};
  as_node *n = NULL;
  as_error err = {0};
  if (A->init(&cfg, ss, 1, &n, &err) || A->connect(n, &err) || A->install(n, &err))
    die("node", err.message);
  return n;
}

static int64_t row_ts(size_t i) { return 1700000000000000LL + (int64_t)i * 1000003; }

static void build_deltas(const as_schema *s, as_delta *d, size_t nrows) {
  char buf[64];
  for (size_t i = 0; i < nrows; i++) {
    as_delta_init(&d[i], s, AS_OP_INSERT);
    as_delta_set_origin(&d[i], "mongo");
    as_value v;
    as_value_set_int64(&v, (int64_t)i + 1);
    as_row_put(&d[i].row, 0, &v);
    snprintf(buf, sizeof buf, "user number %zu", i);
    as_value_set_str(&v, AS_T_TEXT, buf, strlen(buf));
    as_row_put(&d[i].row, 1, &v);
    snprintf(buf, sizeof buf, "user%zu@example.com", i);
    as_value_set_str(&v, AS_T_TEXT, buf, strlen(buf));
    as_row_put(&d[i].row, 2, &v);
    as_value_set_int64(&v, (int64_t)(i * 7919 % 100000));
    as_row_put(&d[i].row, 3, &v);
    as_value_set_double(&v, (double)i / 7.0);
    as_row_put(&d[i].row, 4, &v);
    as_value_set_timestamp(&v, row_ts(i));
    as_row_put(&d[i].row, 5, &v);
  }
}

static void put_i16(as_buf *b, int16_t v) {
  uint16_t x = htons((uint16_t)v);
  as_buf_append(b, &x, 2);
}
static void put_i32(as_buf *b, int32_t v) { as_buf_put_be32(b, (uint32_t)v); }
static void put_i64(as_buf *b, int64_t v) { as_buf_put_be64(b, (uint64_t)v); }

/* Binary COPY rows [from, to) of the deltas. */
static void copy_binary(PGconn *c, const as_delta *d, size_t from, size_t to, as_buf *b) {
  as_buf_reset(b);
  as_buf_append(b, "PGCOPY\n\377\r\n\0", 11);
  put_i32(b, 0);
  put_i32(b, 0);
  for (size_t i = from; i < to; i++) {
    const as_value *v = d[i].row.v;
    put_i16(b, 6);
    put_i32(b, 8);
    put_i64(b, v[0].u.i);
    put_i32(b, (int32_t)v[1].u.s.len);
    as_buf_append(b, v[1].u.s.ptr, v[1].u.s.len);
    put_i32(b, (int32_t)v[2].u.s.len);
    as_buf_append(b, v[2].u.s.ptr, v[2].u.s.len);
    put_i32(b, 8);
    put_i64(b, v[3].u.i);
    put_i32(b, 8);
    uint64_t bits;
    memcpy(&bits, &v[4].u.d, 8);
    put_i64(b, (int64_t)bits);
    put_i32(b, 8);
    put_i64(b, v[5].u.ts_us - 946684800000000LL); /* µs since 2000-01-01 */
  }
  put_i16(b, -1);
  PGresult *r = PQexec(c, "COPY bench.bench (id, name, email, n, score, created) FROM STDIN BINARY");
  if (PQresultStatus(r) != PGRES_COPY_IN) die("copy", PQerrorMessage(c));
  PQclear(r);
  if (PQputCopyData(c, (const char *)b->data, (int)b->len) != 1 || PQputCopyEnd(c, NULL) != 1)
    die("copy data", PQerrorMessage(c));
  r = PQgetResult(c);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) die("copy end", PQerrorMessage(c));
  PQclear(r);
  while ((r = PQgetResult(c))) PQclear(r);
}

static void reset_table(PGconn *c) {
  exec(c, "TRUNCATE bench.bench; TRUNCATE arraysync.changelog; DELETE FROM arraysync.checkpoints");
  exec(c, "CHECKPOINT");
}

static double run_adapter(as_node *n, as_delta *d, size_t nrows) {
  as_dead_list dead = {0};
  as_error err = {0};
  char ck[32];
  double t0 = now_s();
  for (size_t i = 0; i < nrows; i += BATCH) {
    size_t m = nrows - i < BATCH ? nrows - i : BATCH;
    snprintf(ck, sizeof ck, "%zu", i + m);
    if (A->begin(n, &err) || A->apply(n, d + i, m, &dead, &err) ||
        A->commit(n, "mongo->pg", ck, &err))
      die("apply", err.message);
  }
  double t = now_s() - t0;
  if (dead.n) die("apply", "dead letters");
  as_dead_list_clear(&dead);
  return t;
}

static double run_copy(PGconn *c, as_delta *d, size_t nrows, size_t batch) {
  as_buf b = AS_BUF_INIT;
  double t0 = now_s();
  for (size_t i = 0; i < nrows; i += batch) {
    size_t m = nrows - i < batch ? nrows - i : batch;
    exec(c, "BEGIN");
    copy_binary(c, d, i, i + m, &b);
    exec(c, "COMMIT");
  }
  double t = now_s() - t0;
  as_buf_free(&b);
  return t;
}

/* INSERT … SELECT in batches, then UPDATE of every row in batches. */
static void write_load(PGconn *c, size_t nrows, double *ins_s, double *upd_s) {
  char q[512];
  exec(c, "TRUNCATE bench.bench");
  exec(c, "CHECKPOINT");
  double t0 = now_s();
  for (size_t i = 0; i < nrows; i += BATCH) {
    snprintf(q, sizeof q,
             "INSERT INTO bench.bench SELECT g, 'user number ' || g, 'user' || g || '@example.com',"
             " g * 7919 %% 100000, g / 7.0, now() FROM generate_series(%zu, %zu) g",
             i + 1, i + BATCH < nrows ? i + BATCH : nrows);
    exec(c, q);
  }
  *ins_s = now_s() - t0;
  t0 = now_s();
  for (size_t i = 0; i < nrows; i += BATCH) {
    snprintf(q, sizeof q, "UPDATE bench.bench SET n = n + 1 WHERE id BETWEEN %zu AND %zu", i + 1,
             i + BATCH);
    exec(c, q);
  }
  *upd_s = now_s() - t0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return v[n / 2];
}

/* Apply through the adapter vs COPY (best of 2). */
static void apply_vs_copy(PGconn *c, as_node *n, as_delta *d, size_t nrows, const char *tag) {
  double best_a = 1e9, best_c = 1e9, best_c1 = 1e9;
  for (int rep = 0; rep < 2; rep++) {
    reset_table(c);
    double ta = run_adapter(n, d, nrows);
    if (ta < best_a) best_a = ta;
    reset_table(c);
    double tc = run_copy(c, d, nrows, BATCH);
    if (tc < best_c) best_c = tc;
    reset_table(c);
    double tc1 = run_copy(c, d, nrows, nrows);
    if (tc1 < best_c1) best_c1 = tc1;
  }
  printf("pg.apply_vs_copy%s ratio=%.2f adapter_rows_per_s=%.0f copy_rows_per_s=%.0f rows=%zu "
         "batch=%d\n",
         tag, best_c / best_a, nrows / best_a, nrows / best_c, nrows, BATCH);
  printf("pg.apply_vs_copy_single%s ratio=%.2f adapter_rows_per_s=%.0f "
         "copy_one_txn_rows_per_s=%.0f\n",
         tag, best_c1 / best_a, nrows / best_a, nrows / best_c1);
}

/* The adapter writing as the connector does (local_only: its writes are not logged) with
 * capture installed (triggers or logical decoding) vs binary COPY into the same table with no
 * capture objects at all (uninstalled), as a user would compare; best of 2. */
static void apply_vs_plain(PGconn *c, const char *dsn, const as_schema *s, as_delta *d,
                           size_t nrows, const char *triggers, const char *tag) {
  double best_a = 1e9, best_c = 1e9;
  as_error err = {0};
  for (int rep = 0; rep < 2; rep++) {
    as_node *n = make_node(dsn, s, triggers, true);
    reset_table(c);
    double ta = run_adapter(n, d, nrows);
    long logged = 0;
    PGresult *r = PQexec(c, "SELECT count(*) FROM arraysync.changelog");
    if (PQresultStatus(r) == PGRES_TUPLES_OK) logged = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (logged) die("apply_vs_plain", "the local-only writes were logged");
    if (A->uninstall(n, &err)) die("uninstall", err.message);
    A->exit(n);
    if (ta < best_a) best_a = ta;
    exec(c, "TRUNCATE bench.bench");
    exec(c, "CHECKPOINT");
    double tc = run_copy(c, d, nrows, BATCH);
    if (tc < best_c) best_c = tc;
  }
  printf("pg.apply_vs_plain%s ratio=%.2f local_only_rows_per_s=%.0f plain_copy_rows_per_s=%.0f "
         "rows=%zu batch=%d\n",
         tag, best_c / best_a, nrows / best_a, nrows / best_c, nrows, BATCH);
}

/* One UPDATE … FROM unnest() per batch: the same changes as update deltas u. */
static double run_bulk_update(PGconn *c, size_t nrows) {
  as_buf ids = AS_BUF_INIT, vals = AS_BUF_INIT;
  double t0 = now_s();
  for (size_t i = 0; i < nrows; i += BATCH) {
    size_t m = nrows - i < BATCH ? nrows - i : BATCH;
    as_buf_reset(&ids);
    as_buf_reset(&vals);
    for (size_t k = i; k < i + m; k++) {
      as_buf_printf(&ids, "%s%zu", k > i ? "," : "{", k + 1);
      as_buf_printf(&vals, "%s%zu", k > i ? "," : "{", k * 31 + 7);
    }
    as_buf_append_str(&ids, "}");
    as_buf_append_str(&vals, "}");
    const char *p[2] = {as_buf_cstr(&ids), as_buf_cstr(&vals)};
    exec(c, "BEGIN");
    PGresult *r = PQexecParams(c, "UPDATE bench.bench b SET n = v.n FROM unnest($1::bigint[], "
                               "$2::bigint[]) AS v(id, n) WHERE b.id = v.id", 2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK || atol(PQcmdTuples(r)) != (long)m)
      die("bulk update", PQerrorMessage(c));
    PQclear(r);
    exec(c, "COMMIT");
  }
  double t = now_s() - t0;
  as_buf_free(&ids);
  as_buf_free(&vals);
  return t;
}

/* Partial updates through the adapter (prepared and not) vs a bulk UPDATE; best of 2. */
static void apply_updates(PGconn *c, const char *dsn, const as_schema *s, as_delta *d,
                          size_t nrows) {
  as_delta *u = calloc(nrows, sizeof *u);
  if (!u) die("deltas", "out of memory");
  for (size_t i = 0; i < nrows; i++) {
    as_value v;
    if (as_delta_init(&u[i], s, AS_OP_UPDATE) || as_delta_set_origin(&u[i], "mongo"))
      die("deltas", "out of memory");
    as_value_set_int64(&v, (int64_t)i + 1);
    as_row_put(&u[i].row, 0, &v);
    as_value_set_int64(&v, (int64_t)(i * 31 + 7));
    as_row_put(&u[i].row, 3, &v);
  }
  double best[3] = {1e9, 1e9, 1e9}, cpu = 0; /* prepared, unprepared, bulk UPDATE */
  for (int rep = 0; rep < 2; rep++) {
    for (int k = 0; k < 3; k++) {
      prepare_opt = k == 1 ? "off" : "on";
      as_node *n = k < 2 ? make_node(dsn, s, NULL, true) : NULL;
      reset_table(c);
      run_copy(c, d, nrows, BATCH);
      exec(c, "VACUUM ANALYZE bench.bench");
      double c0 = cpu_s();
      double t = n ? run_adapter(n, u, nrows) : run_bulk_update(c, nrows);
      if (k == 0 && t < best[0]) cpu = cpu_s() - c0;
      PGresult *r = PQexec(c, "SELECT count(*) FROM bench.bench WHERE n = (id - 1) * 31 + 7");
      long ok = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
      PQclear(r);
      if (ok != (long)nrows) die("apply_updates", "not every row was updated");
      if (n) A->exit(n);
      if (t < best[k]) best[k] = t;
    }
  }
  prepare_opt = "on";
  printf("pg.apply_updates ratio=%.2f prepared_rows_per_s=%.0f unprepared_rows_per_s=%.0f "
         "bulk_update_rows_per_s=%.0f ratio_unprepared=%.2f prepared_cpu_us_per_row=%.2f "
         "rows=%zu batch=%d\n",
         best[2] / best[0], nrows / best[0], nrows / best[1], nrows / best[2], best[2] / best[1],
         cpu * 1e6 / (double)nrows, nrows, BATCH);
  for (size_t i = 0; i < nrows; i++) as_delta_clear(&u[i]);
  free(u);
}

/* Partial updates of drifting column sets (prepared vs not): the second half's rate. */
static void apply_shapes(PGconn *c, const char *dsn, size_t nrows) {
  static const char *WIDE =
      "mapping: wide\ncollection: wide\ntable: wide\nkey: id\ncolumns:\n"
      "  id: { field: _id, type: int64 }\n  c0: { field: c0, type: int64 }\n"
      "  c1: { field: c1, type: int64 }\n  c2: { field: c2, type: int64 }\n"
      "  c3: { field: c3, type: int64 }\n  c4: { field: c4, type: int64 }\n"
      "  c5: { field: c5, type: int64 }\n  c6: { field: c6, type: int64 }\n"
      "  c7: { field: c7, type: int64 }\n  c8: { field: c8, type: int64 }\n"
      "  c9: { field: c9, type: int64 }\n";
  enum { KEYS = 10000, SHAPES = 100 };
  as_schema *s = NULL;
  as_error err = {0};
  if (as_schema_load_string("wide.yaml", WIDE, &s, &err)) die("mapping", err.message);
  size_t half = nrows / 2;
  as_delta *u = calloc(2 * half, sizeof *u);
  if (!u) die("deltas", "out of memory");
  for (size_t i = 0; i < 2 * half; i++) {
    unsigned shape = (unsigned)(i % SHAPES) + 1 + (i < half ? 0 : SHAPES); /* 1..200 */
    as_value v;
    if (as_delta_init(&u[i], s, AS_OP_UPDATE) || as_delta_set_origin(&u[i], "mongo"))
      die("deltas", "out of memory");
    as_value_set_int64(&v, (int64_t)(i % KEYS) + 1);
    as_row_put(&u[i].row, 0, &v);
    for (int b = 0; b < 10; b++) {
      if (!(shape & (1u << b))) continue;
      as_value_set_int64(&v, (int64_t)i);
      as_row_put(&u[i].row, (size_t)b + 1, &v);
    }
  }
  double best[2] = {1e9, 1e9}, cpu = 0; /* prepared, unprepared: the second half */
  for (int rep = 0; rep < 2; rep++) {
    for (int k = 0; k < 2; k++) {
      exec(c, "DROP TABLE IF EXISTS bench.wide; CREATE TABLE bench.wide (id bigint PRIMARY KEY,"
              " c0 bigint, c1 bigint, c2 bigint, c3 bigint, c4 bigint, c5 bigint, c6 bigint,"
              " c7 bigint, c8 bigint, c9 bigint)");
      exec(c, "INSERT INTO bench.wide (id) SELECT generate_series(1, 10000)");
      exec(c, "VACUUM ANALYZE bench.wide");
      prepare_opt = k ? "off" : "on";
      as_node *n = make_node(dsn, s, NULL, true);
      run_adapter(n, u, half);
      double c0 = cpu_s();
      double t = run_adapter(n, u + half, half);
      if (k == 0 && t < best[0]) cpu = cpu_s() - c0;
      if (A->uninstall(n, &err)) die("uninstall", err.message);
      A->exit(n);
      if (t < best[k]) best[k] = t;
    }
  }
  prepare_opt = "on";
  printf("pg.apply_shapes ratio=%.2f prepared_rows_per_s=%.0f unprepared_rows_per_s=%.0f "
         "prepared_cpu_us_per_row=%.2f rows=%zu column_sets=%d+%d batch=%d\n",
         best[1] / best[0], half / best[0], half / best[1], cpu * 1e6 / (double)half, half,
         SHAPES, SHAPES, BATCH);
  exec(c, "DROP TABLE bench.wide");
  for (size_t i = 0; i < 2 * half; i++) as_delta_clear(&u[i]);
  free(u);
  as_schema_free(s);
}

/* Capture read rate: what the adapter applied, read back through poll + ack. */
static void read_rate(PGconn *c, as_node *n, as_delta *d, size_t nrows, const char *name) {
  as_error err = {0};
  reset_table(c);
  as_stream *st = NULL;
  if (A->open_stream(n, "bench", NULL, &st, &err)) die("open_stream", err.message);
  run_adapter(n, d, nrows);
  as_batch b = {0};
  size_t got = 0;
  int idle = 0;
  double t0 = now_s();
  while (got < nrows && idle < 50) {
    as_batch_reset(&b);
    if (A->poll(st, &b, BATCH, 100, &err)) die("poll", err.message);
    idle = b.n == 0 ? idle + 1 : 0;
    got += b.n;
    if (b.pos && A->ack(st, b.pos, &err)) die("ack", err.message);
  }
  double tr = now_s() - t0;
  printf("%s changes_per_s=%.0f changes=%zu (poll %d + ack per batch)\n", name, got / tr, got,
         BATCH);
  as_batch_clear(&b);
  A->close_stream(st);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_postgres CONNINFO [ROWS] [--triggers-only] [--capture-only] "
                    "[--updates-only] [--shapes-only]\n");
    return 2;
  }
  const char *dsn = argv[1];
  size_t nrows = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 200000;
  bool logical = true, capture_only = false, shapes_only = false, updates_only = false;
  for (int i = 3; i < argc; i++) {
    if (strcmp(argv[i], "--triggers-only") == 0) logical = false;
    if (strcmp(argv[i], "--capture-only") == 0) capture_only = true;
    if (strcmp(argv[i], "--shapes-only") == 0) shapes_only = true;
    if (strcmp(argv[i], "--updates-only") == 0) updates_only = true;
  }
  as_log_set_level(AS_LOG_WARN);
  as_schema *s = NULL;
  as_error err = {0};
  if (as_schema_load_string("bench.yaml", YAML, &s, &err)) die("mapping", err.message);
  PGconn *c = PQconnectdb(dsn);
  if (PQstatus(c) != CONNECTION_OK) die("connect", PQerrorMessage(c));
  exec(c, "SET client_min_messages TO warning");
  exec(c, "DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench");
  exec(c, "CREATE TABLE bench.bench (id bigint PRIMARY KEY, name text, email text, n bigint,"
          " score double precision, created timestamptz)");
  exec(c, "CREATE INDEX ON bench.bench (email)");
  if (shapes_only || updates_only) {
    if (updates_only) {
      as_delta *d = calloc(nrows, sizeof *d);
      if (!d) die("deltas", "out of memory");
      build_deltas(s, d, nrows);
      apply_updates(c, dsn, s, d, nrows);
      for (size_t i = 0; i < nrows; i++) as_delta_clear(&d[i]);
      free(d);
    }
    if (shapes_only) apply_shapes(c, dsn, nrows);
    PQfinish(c);
    as_schema_free(s);
    return 0;
  }
  as_delta *d = calloc(nrows, sizeof *d);
  if (!d) die("deltas", "out of memory");
  build_deltas(s, d, nrows);

  as_node *n = make_node(dsn, s, "statement", false);
  if (!capture_only) {
    apply_vs_copy(c, n, d, nrows, "");
    read_rate(c, n, d, nrows, "pg.changelog_read");
  }
  A->exit(n);
  if (!capture_only) apply_vs_plain(c, dsn, s, d, nrows, "statement", "");
  if (logical && !capture_only) apply_vs_plain(c, dsn, s, d, nrows, NULL, "_logical");
  if (logical && !capture_only) apply_updates(c, dsn, s, d, nrows);
  if (logical && !capture_only) apply_shapes(c, dsn, nrows);
  if (logical && !capture_only) {
    n = make_node(dsn, s, NULL, false);
    apply_vs_copy(c, n, d, nrows, "_logical");
    read_rate(c, n, d, nrows, "pg.logical_read");
    if (A->uninstall(n, &err)) die("uninstall", err.message);
    A->exit(n);
  }

  /* ---- capture cost: plain vs triggers (statement, row) vs logical. Rounds of every
   * configuration back to back (order rotated); per round the ratio to that round's plain
   * run; the median over rounds (the machine's load changes between rounds, not within) */
  enum { PLAIN, STMT, ROW, LOGICAL, ONEWAY, NK, ROUNDS = 7 };
  static const char *const trig[NK] = {"statement", "statement", "row", NULL, "statement"};
  /* a mapping whose changes only leave SQL (direction: to-mongo): compact changelog rows,
   * values read at poll time (pg_table_exact) */
  as_schema *s1 = NULL;
  size_t y1len = strlen(YAML) + 32;
  char *y1 = malloc(y1len);
  if (!y1) die("mapping", "out of memory");
  snprintf(y1, y1len, "direction: to-mongo\n%s", YAML);
  if (as_schema_load_string("bench1.yaml", y1, &s1, &err)) die("mapping", err.message);
  free(y1);
  double ins[ROUNDS][NK], upd[ROUNDS][NK];
  size_t crows = nrows / 4 > BATCH ? nrows / 4 : nrows;
  for (int rep = 0; rep < ROUNDS; rep++) {
    for (int j = 0; j < NK; j++) {
      int k = (j + rep) % NK;
      ins[rep][k] = upd[rep][k] = 1;
      if (k == LOGICAL && !logical) continue;
      n = make_node(dsn, k == ONEWAY ? s1 : s, trig[k], false);
      if (k == PLAIN && A->uninstall(n, &err)) die("uninstall", err.message);
      if (k != PLAIN) exec(c, "TRUNCATE arraysync.changelog");
      write_load(c, crows, &ins[rep][k], &upd[rep][k]);
      if (A->uninstall(n, &err)) die("uninstall", err.message);
      A->exit(n);
    }
  }
  double ri[NK], ru[NK], ti[NK], tu[NK];
  for (int k = 0; k < NK; k++) {
    double xi[ROUNDS], xu[ROUNDS], yi[ROUNDS], yu[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
      xi[r] = ins[r][PLAIN] / ins[r][k];
      xu[r] = upd[r][PLAIN] / upd[r][k];
      yi[r] = crows / ins[r][k];
      yu[r] = crows / upd[r][k];
    }
    ri[k] = median(xi, ROUNDS);
    ru[k] = median(xu, ROUNDS);
    ti[k] = median(yi, ROUNDS);
    tu[k] = median(yu, ROUNDS);
  }
  printf("pg.capture_cost insert_plain_rows_per_s=%.0f insert_statement_trigger_rows_per_s=%.0f "
         "insert_row_trigger_rows_per_s=%.0f ratio_statement=%.2f ratio_row=%.2f rows=%zu "
         "rounds=%d\n",
         ti[PLAIN], ti[STMT], ti[ROW], ri[STMT], ri[ROW], crows, ROUNDS);
  printf("pg.capture_cost update_plain_rows_per_s=%.0f update_statement_trigger_rows_per_s=%.0f "
         "update_row_trigger_rows_per_s=%.0f ratio_statement=%.2f ratio_row=%.2f\n",
         tu[PLAIN], tu[STMT], tu[ROW], ru[STMT], ru[ROW]);
  printf("pg.capture_cost_oneway insert_statement_trigger_rows_per_s=%.0f "
         "update_statement_trigger_rows_per_s=%.0f ratio_insert=%.2f ratio_update=%.2f "
         "(direction: to-mongo: keys and masks only)\n",
         ti[ONEWAY], tu[ONEWAY], ri[ONEWAY], ru[ONEWAY]);
  if (logical) {
    printf("pg.capture_cost_logical insert_rows_per_s=%.0f update_rows_per_s=%.0f "
           "ratio_insert=%.2f ratio_update=%.2f\n",
           ti[LOGICAL], tu[LOGICAL], ri[LOGICAL], ru[LOGICAL]);
  }
  for (size_t i = 0; i < nrows; i++) as_delta_clear(&d[i]);
  free(d);
  exec(c, "DROP SCHEMA bench CASCADE");
  PQfinish(c);
  as_schema_free(s);
  as_schema_free(s1);
  return 0;
}
