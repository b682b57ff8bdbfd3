/* bench_sqlite.c — SQLite adapter throughput against baselines measured in the same run.
 *
 *   bench_sqlite [ROWS] [DIR]      (defaults: 200000 rows, a fresh directory under /tmp)
 *
 * sqlite.apply_vs_raw: ROWS mapped rows applied through the adapter (begin/apply/commit,
 *   batches of 1000, capture triggers installed) vs raw prepared INSERTs, one transaction per
 *   batch, into the same table with the same triggers. Target ratio >= 0.80.
 * sqlite.capture_overhead: raw inserts with the triggers vs the same table without them.
 * sqlite.changelog_read: capture rate (poll of the changelog into deltas).
 * sqlite.apply_vs_plain: the adapter writing as the connector does (local_only: the capture
 *   triggers log none of its writes) vs raw prepared INSERTs into the table without triggers,
 *   as a user would compare.
 * The four write paths run interleaved, batch by batch, in four database files. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "adapter.h"
#include "as_log.h"
#include "as_schema.h"

static const as_adapter *A = &as_adapter_sqlite;
enum { BATCH = 1000 };

static const char *MAPPING =
    "mapping: bench\n"
    "collection: bench\n"
    "table: bench\n"
    "key: id\n"
    "columns:\n"
    "  id:     { field: _id, type: int64 }\n"
    "  name:   { field: name, type: text }\n"
    "  qty:    { field: qty, type: int64 }\n"
    "  price:  { field: price, type: double }\n"
    "  total:  { field: total, type: decimal }\n"
    "  at:     { field: at, type: timestamp }\n";

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define DIE(...)                  \
  do {                            \
    fprintf(stderr, __VA_ARGS__); \
    fprintf(stderr, "\n");        \
    exit(1);                      \
  } while (0)

/* local_only: as the connector opens every node (its writes are not logged) */
static as_node *open_node(const char *path, as_schema *s, bool local_only) {
  as_node_option opts[1] = {{.key = "path", .value = (char *)path}};
  as_node_config cfg = {.name = "bench", .kind = "sqlite", .opts = opts, .nopts = 1,
                        .local_only = local_only};
  as_node *n = NULL;
  as_error err = {0};
  const as_schema *ss[1] = {s};
  if (A->init(&cfg, ss, 1, &n, &err) || A->connect(n, &err) || A->install(n, &err))
    DIE("node %s: %s", path, err.message);
  return n;
}

/* Row values, the same for both paths. */
static void row_values(int64_t id, char *name, size_t namecap, int64_t *qty, double *price,
                       char *total, size_t totcap, int64_t *at_us) {
  snprintf(name, namecap, "item-%" PRId64, id);
  *qty = id % 97;
  *price = (double)(id % 1000) / 8.0;
  snprintf(total, totcap, "%" PRId64 ".%02d", id % 100000, (int)(id % 100));
  *at_us = 1700000000000000LL + id * 1000;
}

static void fill_delta(as_delta *d, const as_schema *s, int64_t id) {
  char name[64], total[64];
  int64_t qty, at;
  double price;
  row_values(id, name, sizeof name, &qty, &price, total, sizeof total, &at);
  as_delta_init(d, s, AS_OP_INSERT);
  as_delta_set_origin(d, "mongo");
  as_value v = AS_VALUE_NULL;
  as_value_set_int64(&v, id);
  as_row_put(&d->row, 0, &v);
  as_value_set_str(&v, AS_T_TEXT, name, strlen(name));
  as_row_put(&d->row, 1, &v);
  as_value_set_int64(&v, qty);
  as_row_put(&d->row, 2, &v);
  as_value_set_double(&v, price);
  as_row_put(&d->row, 3, &v);
  as_value_set_str(&v, AS_T_DECIMAL, total, strlen(total));
  as_row_put(&d->row, 4, &v);
  as_value_set_timestamp(&v, at);
  as_row_put(&d->row, 5, &v);
}

/* Adapter path, one batch: returns seconds spent in begin/apply/commit. */
static double adapter_batch(as_node *n, const as_schema *s, as_delta *d, int64_t base,
                            int64_t cnt) {
  as_dead_list dead = {0};
  as_error err = {0};
  for (int64_t i = 0; i < cnt; i++) fill_delta(&d[i], s, base + i + 1);
  char ck[32];
  snprintf(ck, sizeof ck, "%" PRId64, base + cnt);
  double t0 = now_s();
  if (A->begin(n, &err) || A->apply(n, d, (size_t)cnt, &dead, &err) ||
      A->commit(n, "mongo->bench", ck, &err))
    DIE("adapter batch: %s", err.message);
  double spent = now_s() - t0;
  if (dead.n) DIE("unexpected dead letters: %s", dead.items[0].error);
  for (int64_t i = 0; i < cnt; i++) as_delta_clear(&d[i]);
  return spent;
}

/* Raw path: a prepared INSERT bound from plain C values (timestamp text precomputed outside
 * the timed part, as an application holding ready values would). */
typedef struct rowv {
  char name[32], total[32], at[32];
  int64_t qty;
  double price;
} rowv;

typedef struct raw_db {
  sqlite3 *db;
  sqlite3_stmt *st;
} raw_db;

static void raw_open(raw_db *r, const char *path) {
  if (sqlite3_open(path, &r->db) != SQLITE_OK) DIE("open %s", path);
  sqlite3_exec(r->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
  if (sqlite3_prepare_v2(r->db,
                         "INSERT INTO bench (id, name, qty, price, total, at) "
                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                         -1, &r->st, NULL) != SQLITE_OK)
    DIE("prepare: %s", sqlite3_errmsg(r->db));
}

static void raw_close(raw_db *r) {
  sqlite3_finalize(r->st);
  sqlite3_close(r->db);
}

static void raw_values(rowv *rv, int64_t base, int64_t cnt) {
  for (int64_t i = 0; i < cnt; i++) {
    int64_t at;
    row_values(base + i + 1, rv[i].name, sizeof rv[i].name, &rv[i].qty, &rv[i].price, rv[i].total,
               sizeof rv[i].total, &at);
    as_value v = AS_VALUE_NULL;
    char *txt = NULL;
    as_value_set_timestamp(&v, at);
    as_value_to_text(&v, &txt, NULL);
    snprintf(rv[i].at, sizeof rv[i].at, "%s", txt);
    free(txt);
  }
}

static double raw_batch(raw_db *r, const rowv *rv, int64_t base, int64_t cnt) {
  double t0 = now_s();
  sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  for (int64_t i = 0; i < cnt; i++) {
    sqlite3_bind_int64(r->st, 1, base + i + 1);
    sqlite3_bind_text(r->st, 2, rv[i].name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(r->st, 3, rv[i].qty);
    sqlite3_bind_double(r->st, 4, rv[i].price);
    sqlite3_bind_text(r->st, 5, rv[i].total, -1, SQLITE_STATIC);
    sqlite3_bind_text(r->st, 6, rv[i].at, -1, SQLITE_STATIC);
    if (sqlite3_step(r->st) != SQLITE_DONE) DIE("raw insert: %s", sqlite3_errmsg(r->db));
    sqlite3_reset(r->st);
  }
  if (sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) DIE("commit");
  return now_s() - t0;
}

int main(int argc, char **argv) {
  int64_t rows = argc > 1 ? atoll(argv[1]) : 200000;
  char dirbuf[] = "/tmp/arraysync-bench-sqlite-XXXXXX";
  const char *dir = argc > 2 ? argv[2] : mkdtemp(dirbuf);
  if (!dir) DIE("mkdtemp");
  as_log_set_level(AS_LOG_WARN);
  as_schema *s = NULL;
  as_error err = {0};
  if (as_schema_load_string("bench.yaml", MAPPING, &s, &err)) DIE("mapping: %s", err.message);
  char p_adapter[4200], p_raw[4200], p_plain[4200], p_local[4200];
  snprintf(p_adapter, sizeof p_adapter, "%s/adapter.db", dir);
  snprintf(p_local, sizeof p_local, "%s/local.db", dir);
  snprintf(p_raw, sizeof p_raw, "%s/raw.db", dir);
  snprintf(p_plain, sizeof p_plain, "%s/plain.db", dir);

  /* the same table and triggers in four files; plain.db has its triggers removed; local.db
   * is written by the adapter as the connector writes (local_only: the triggers log nothing) */
  as_node *na = open_node(p_adapter, s, false);
  as_node *nr = open_node(p_raw, s, false);
  as_node *np = open_node(p_plain, s, false);
  as_node *nl = open_node(p_local, s, true);
  if (A->uninstall(np, &err)) DIE("uninstall: %s", err.message);
  A->exit(nr);
  A->exit(np);

  /* the three paths run interleaved batch by batch (order rotating), so that the load of a
   * shared machine hits them alike */
  raw_db rr, rp;
  raw_open(&rr, p_raw);
  raw_open(&rp, p_plain);
  rowv *rv = malloc(BATCH * sizeof *rv);
  as_delta *d = calloc(BATCH, sizeof *d);
  double t_raw = 0, t_adapter = 0, t_plain = 0, t_local = 0;
  for (int64_t base = 0, k = 0; base < rows; base += BATCH, k++) {
    int64_t cnt = rows - base < BATCH ? rows - base : BATCH;
    raw_values(rv, base, cnt);
    for (int j = 0; j < 4; j++) {
      switch ((k + j) % 4) {
        case 0: t_raw += raw_batch(&rr, rv, base, cnt); break;
        case 1: t_adapter += adapter_batch(na, s, d, base, cnt); break;
        case 2: t_local += adapter_batch(nl, s, d, base, cnt); break;
        default: t_plain += raw_batch(&rp, rv, base, cnt); break;
      }
    }
  }
  free(rv);
  free(d);
  raw_close(&rr);
  raw_close(&rp);
  double r_adapter = (double)rows / t_adapter, r_raw = (double)rows / t_raw,
         r_plain = (double)rows / t_plain;
  printf("sqlite.apply_vs_raw ratio=%.3f adapter_rows_per_s=%.0f raw_rows_per_s=%.0f rows=%" PRId64
         " batch=%d\n",
         r_adapter / r_raw, r_adapter, r_raw, rows, BATCH);
  printf("sqlite.capture_overhead ratio=%.3f with_triggers_rows_per_s=%.0f plain_rows_per_s=%.0f\n",
         r_raw / r_plain, r_raw, r_plain);
  /* what a user would compare: the connector's writes (not logged) vs a plain table */
  double r_local = (double)rows / t_local;
  printf("sqlite.apply_vs_plain ratio=%.3f local_only_rows_per_s=%.0f plain_rows_per_s=%.0f\n",
         r_local / r_plain, r_local, r_plain);

  /* capture: read everything the adapter run logged, from the start */
  as_stream *st = NULL;
  if (A->open_stream(na, "reader", "0", &st, &err)) DIE("open_stream: %s", err.message);
  as_batch b = {0};
  int64_t got = 0, dead = 0;
  double t0 = now_s();
  for (;;) {
    as_batch_reset(&b);
    if (A->poll(st, &b, 1000, 0, &err)) DIE("poll: %s", err.message);
    if (b.n == 0 && b.ndead == 0) break;
    got += (int64_t)b.n;
    dead += (int64_t)b.ndead;
  }
  double t_read = now_s() - t0;
  printf("sqlite.changelog_read rows_per_s=%.0f rows=%" PRId64 " dead=%" PRId64 "\n",
         (double)got / t_read, got, dead);
  as_batch_clear(&b);
  A->close_stream(st);
  A->exit(na);
  A->exit(nl);
  as_schema_free(s);
  if (argc <= 2) {
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  }
  return got == rows ? 0 : 1;
}
