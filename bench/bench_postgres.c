/* bench_postgres.c — PostgreSQL adapter figures against baselines measured in the same run.
 *
 *   bench_postgres CONNINFO [ROWS]        (default 200000 rows; batches of 1000)
 *
 * pg.apply_vs_copy    full-row inserts applied through the adapter (begin/apply/commit with a
 *                     checkpoint per batch) vs raw binary COPY of the same rows into the same
 *                     table (same indexes, same capture triggers), one transaction per batch.
 * pg.capture_cost     write throughput of INSERT … SELECT / UPDATE into a plain table vs the
 *                     same table with statement-level and row-level capture triggers.
 * pg.changelog_read   changes per second through poll(). */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
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

static as_node *make_node(const char *dsn, const as_schema *s, const char *triggers) {
  static as_node_option opts[3];
  static as_node_config cfg;
  opts[0] = (as_node_option){.key = "dsn", .value = (char *)dsn};
  opts[1] = (as_node_option){.key = "schema", .value = "bench"};
  opts[2] = (as_node_option){.key = "capture_triggers", .value = (char *)triggers};
  cfg = (as_node_config){.name = "pg", .kind = "postgres", .opts = opts, .nopts = 3};
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

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_postgres CONNINFO [ROWS]\n");
    return 2;
  }
  const char *dsn = argv[1];
  size_t nrows = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 200000;
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
  as_delta *d = calloc(nrows, sizeof *d);
  build_deltas(s, d, nrows);

  /* ---- apply vs COPY (statement-level triggers installed) */
  as_node *n = make_node(dsn, s, "statement");
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
  printf("pg.apply_vs_copy ratio=%.2f adapter_rows_per_s=%.0f copy_rows_per_s=%.0f rows=%zu "
         "batch=%d\n",
         best_c / best_a, nrows / best_a, nrows / best_c, nrows, BATCH);
  printf("pg.apply_vs_copy_single ratio=%.2f adapter_rows_per_s=%.0f copy_one_txn_rows_per_s=%.0f\n",
         best_c1 / best_a, nrows / best_a, nrows / best_c1);

  /* ---- changelog read rate (what the adapter run above captured) */
  reset_table(c);
  as_stream *st = NULL;
  if (A->open_stream(n, "bench", NULL, &st, &err)) die("open_stream", err.message);
  run_adapter(n, d, nrows);
  as_batch b = {0};
  size_t got = 0;
  double t0 = now_s();
  while (got < nrows) {
    as_batch_reset(&b);
    if (A->poll(st, &b, BATCH, 0, &err)) die("poll", err.message);
    if (b.n == 0 && b.ndead == 0) break;
    got += b.n;
    if (A->ack(st, b.pos, &err)) die("ack", err.message);
  }
  double tr = now_s() - t0;
  printf("pg.changelog_read changes_per_s=%.0f changes=%zu (poll %d + ack per batch)\n",
         got / tr, got, BATCH);
  as_batch_clear(&b);
  A->close_stream(st);

  /* ---- capture cost: plain vs statement-level vs row-level triggers */
  double ins_st, upd_st, ins_row, upd_row, ins_plain, upd_plain;
  write_load(c, nrows, &ins_st, &upd_st);
  A->exit(n);
  n = make_node(dsn, s, "row");
  exec(c, "TRUNCATE arraysync.changelog");
  write_load(c, nrows, &ins_row, &upd_row);
  if (A->uninstall(n, &err)) die("uninstall", err.message);
  write_load(c, nrows, &ins_plain, &upd_plain);
  printf("pg.capture_cost insert_plain_rows_per_s=%.0f insert_statement_trigger_rows_per_s=%.0f "
         "insert_row_trigger_rows_per_s=%.0f ratio_statement=%.2f ratio_row=%.2f\n",
         nrows / ins_plain, nrows / ins_st, nrows / ins_row, ins_plain / ins_st,
         ins_plain / ins_row);
  printf("pg.capture_cost update_plain_rows_per_s=%.0f update_trigger_rows_per_s=%.0f ratio=%.2f\n",
         nrows / upd_plain, nrows / upd_st, upd_plain / upd_st);
  A->exit(n);
  for (size_t i = 0; i < nrows; i++) as_delta_clear(&d[i]);
  free(d);
  exec(c, "DROP SCHEMA bench CASCADE");
  PQfinish(c);
  as_schema_free(s);
  return 0;
}
