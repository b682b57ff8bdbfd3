/* bench_verify.c — helpers of the verify benchmark (driven by bench/bench_verify.py).
 *
 *   bench_verify load CONFIG MAPPING DOCS.bson NODE...
 *       the documents of a BSON dump (bench_e2e.py gen) as rows (as_doc_to_row), written to
 *       each NODE through its adapter (begin/apply/commit, 1000 rows per transaction)
 *   bench_verify fetch CONFIG MAPPING NODE
 *       the baseline: a plain full fetch of the mapped columns, timed; prints
 *       "fetch NODE rows=R bytes=B seconds=S". PostgreSQL: a cursor over SELECT c::text...
 *       (pages of 10000; bytes = DataRow message sizes, as verify counts them); SQLite: every
 *       column of every row read in-process (bytes = the values' sizes); MongoDB: find with a
 *       projection of the mapped fields (the whole document with a catch-all; bytes = the
 *       documents' sizes).
 *   bench_verify quickseed CONFIG MAPPING NODE...
 *       versions of each NODE's keys marked as held by it in the state store (one version per
 *       key), so the quick signatures are those of equal nodes and verify --quick can be timed
 *   bench_verify quickcost DIR KEYS
 *       the state store's version puts (two holders per key, batches of 1000, 100 and 10 keys)
 *       with the quick signatures kept against the same puts without them: what --quick costs
 *       the apply path
 *   bench_verify touch CONFIG MAPPING NODE N
 *       changes one text column of N rows spread over the key range (keys from the adapter's
 *       verify_split) through the adapter, and prints each key's canonical JSON value.
 * Exit status 0 on success. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bson/bson.h>
#include <libpq-fe.h>
#include <mongoc/mongoc.h>
#include <sqlite3.h>

#include "adapter.h"
#include "as_bson.h"
#include "as_ddl.h"
#include "as_config.h"
#include "as_key.h"
#include "as_log.h"
#include "as_state.h"
#include "as_time.h"
#include "as_verify.h"

#define DIE(...)                  \
  do {                            \
    fprintf(stderr, "bench_verify: "); \
    fprintf(stderr, __VA_ARGS__); \
    fprintf(stderr, "\n");        \
    exit(1);                      \
  } while (0)

typedef struct bnode {
  const as_node_config *cfg;
  const as_adapter *ad;
  as_node *node;
} bnode;

static bnode open_node(const as_config *c, const char *name) {
  bnode b = {.cfg = as_config_node(c, name)};
  as_error err;
  if (!b.cfg) DIE("unknown node %s", name);
  b.ad = as_adapter_find(b.cfg->kind);
  const as_schema **ss = calloc(c->nschemas, sizeof *ss); /* outlives the node */
  for (size_t i = 0; i < c->nschemas; i++) ss[i] = c->schemas[i];
  if (b.ad->init(b.cfg, ss, c->nschemas, &b.node, &err) != AS_OK ||
      b.ad->connect(b.node, &err) != AS_OK)
    DIE("node %s: %s", name, err.message);
  return b;
}

static void flush(bnode *b, as_delta *d, size_t *nd) {
  as_error err;
  as_dead_list dead = {0};
  if (*nd == 0) return;
  if (b->ad->begin(b->node, &err) != AS_OK || b->ad->apply(b->node, d, *nd, &dead, &err) != AS_OK ||
      b->ad->commit(b->node, "bench_verify", NULL, &err) != AS_OK)
    DIE("%s: %s", b->cfg->name, err.message);
  if (dead.n) DIE("%s refused a row: %s", b->cfg->name, dead.items[0].error);
  as_dead_list_clear(&dead);
  for (size_t i = 0; i < *nd; i++) as_delta_clear(&d[i]);
  *nd = 0;
}

static int cmd_load(const as_config *c, const as_schema *s, const char *file, int nn, char **names) {
  for (int k = 0; k < nn; k++) {
    bnode b = open_node(c, names[k]);
    bson_error_t be;
    bson_reader_t *rd = bson_reader_new_from_file(file, &be);
    if (!rd) DIE("%s: %s", file, be.message);
    static as_delta d[1000];
    size_t nd = 0, total = 0;
    bool eof = false;
    const bson_t *doc;
    int64_t t0 = as_monotonic_us();
    while ((doc = bson_reader_read(rd, &eof))) {
      as_error err;
      as_delta_init(&d[nd], s, AS_OP_INSERT);
      if (as_doc_to_row(s, doc, &d[nd].row, &err) != AS_OK) DIE("%s", err.message);
      nd++;
      total++;
      if (nd == 1000) flush(&b, d, &nd);
    }
    flush(&b, d, &nd);
    bson_reader_destroy(rd);
    b.ad->exit(b.node);
    printf("load %s rows=%zu seconds=%.3f\n", names[k], total, (double)(as_monotonic_us() - t0) / 1e6);
  }
  return 0;
}

/* ------------------------------------------------------------ plain fetches */

static void fetch_pg(const as_node_config *n, const as_schema *s, uint64_t *rows, uint64_t *bytes) {
  PGconn *conn = PQconnectdb(as_node_config_get(n, "dsn"));
  if (PQstatus(conn) != CONNECTION_OK) DIE("%s", PQerrorMessage(conn));
  as_buf q = AS_BUF_INIT;
  as_buf_append_str(&q, "DECLARE c NO SCROLL CURSOR FOR SELECT ");
  for (size_t i = 0; i < s->ncols; i++) {
    as_buf_append_str(&q, i ? ", " : "");
    as_sql_quote_ident(s->cols[i].name, &q);
    as_buf_append_str(&q, "::text");
  }
  as_buf_append_str(&q, " FROM ");
  as_sql_quote_ident(s->table, &q);
  PQclear(PQexec(conn, "SET extra_float_digits = 1"));
  PQclear(PQexec(conn, "BEGIN"));
  PGresult *r = PQexec(conn, as_buf_cstr(&q));
  if (PQresultStatus(r) != PGRES_COMMAND_OK) DIE("%s", PQerrorMessage(conn));
  PQclear(r);
  for (;;) {
    r = PQexec(conn, "FETCH 10000 FROM c");
    int nt = PQntuples(r), nf = PQnfields(r);
    for (int i = 0; i < nt; i++) {
      *bytes += 7;
      for (int j = 0; j < nf; j++) *bytes += 4 + (uint64_t)PQgetlength(r, i, j);
    }
    *rows += (uint64_t)nt;
    PQclear(r);
    if (nt < 10000) break;
  }
  PQclear(PQexec(conn, "COMMIT"));
  PQfinish(conn);
  as_buf_free(&q);
}

static void fetch_sqlite(const as_node_config *n, const as_schema *s, uint64_t *rows, uint64_t *bytes) {
  sqlite3 *db;
  if (sqlite3_open_v2(as_node_config_get(n, "path"), &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
    DIE("open sqlite");
  as_buf q = AS_BUF_INIT;
  as_buf_append_str(&q, "SELECT ");
  for (size_t i = 0; i < s->ncols; i++) {
    as_buf_append_str(&q, i ? ", " : "");
    as_sql_quote_ident(s->cols[i].name, &q);
  }
  as_buf_append_str(&q, " FROM ");
  as_sql_quote_ident(s->table, &q);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, as_buf_cstr(&q), -1, &st, NULL) != SQLITE_OK) DIE("%s", sqlite3_errmsg(db));
  while (sqlite3_step(st) == SQLITE_ROW) {
    for (int j = 0; j < (int)s->ncols; j++) {
      if (sqlite3_column_type(st, j) == SQLITE_BLOB) sqlite3_column_blob(st, j);
      else sqlite3_column_text(st, j);
      *bytes += (uint64_t)sqlite3_column_bytes(st, j);
    }
    (*rows)++;
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  as_buf_free(&q);
}

static void fetch_mongo(const as_node_config *n, const as_schema *s, uint64_t *rows, uint64_t *bytes) {
  mongoc_init();
  bson_error_t be;
  mongoc_uri_t *uri = mongoc_uri_new_with_error(as_node_config_get(n, "uri"), &be);
  if (!uri) DIE("%s", be.message);
  mongoc_client_t *cl = mongoc_client_new_from_uri(uri);
  mongoc_collection_t *co = mongoc_client_get_collection(cl, as_node_config_get(n, "database"), s->collection);
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, proj;
  if (s->catch_all_idx < 0) {
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
    for (size_t i = 0; i < s->ncols; i++) {
      if (!bson_has_field(&proj, s->cols[i].path[0])) BSON_APPEND_INT32(&proj, s->cols[i].path[0], 1);
    }
    bson_append_document_end(&opts, &proj);
  }
  BSON_APPEND_INT32(&opts, "batchSize", 1000);
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(co, &filter, &opts, NULL);
  const bson_t *doc;
  while (mongoc_cursor_next(cur, &doc)) {
    *bytes += doc->len;
    (*rows)++;
  }
  if (mongoc_cursor_error(cur, &be)) DIE("%s", be.message);
  mongoc_cursor_destroy(cur);
  mongoc_collection_destroy(co);
  mongoc_client_destroy(cl);
  mongoc_uri_destroy(uri);
  bson_destroy(&filter);
  bson_destroy(&opts);
}

static int cmd_fetch(const as_config *c, const as_schema *s, const char *name) {
  const as_node_config *n = as_config_node(c, name);
  if (!n) DIE("unknown node %s", name);
  uint64_t rows = 0, bytes = 0;
  int64_t t0 = as_monotonic_us();
  if (strcmp(n->kind, "postgres") == 0) fetch_pg(n, s, &rows, &bytes);
  else if (strcmp(n->kind, "sqlite") == 0) fetch_sqlite(n, s, &rows, &bytes);
  else fetch_mongo(n, s, &rows, &bytes);
  printf("fetch %s rows=%" PRIu64 " bytes=%" PRIu64 " seconds=%.3f\n", name, rows, bytes,
         (double)(as_monotonic_us() - t0) / 1e6);
  return 0;
}

/* ------------------------------------------------------------ differences */

static int cmd_touch(const as_config *c, const as_schema *s, const char *name, int n) {
  bnode b = open_node(c, name);
  as_error err;
  as_verify *v;
  as_value *keys = NULL;
  size_t nk = 0;
  int text_col = -1;
  for (size_t i = 0; i < s->ncols && text_col < 0; i++) {
    if (s->cols[i].type == AS_T_TEXT && !s->cols[i].is_key) text_col = (int)i;
  }
  if (text_col < 0) DIE("mapping %s has no text column to change", s->name);
  if (b.ad->verify_open(b.node, s, false, &v, &err) != AS_OK ||
      b.ad->verify_split(v, NULL, NULL, -1, (size_t)n + 1, &keys, &nk, &err) != AS_OK)
    DIE("%s", err.message);
  b.ad->verify_close(v);
  for (size_t i = 0; i < nk; i++) {
    as_row key = {0}, row = {0};
    as_row_init(&key, s->ncols);
    as_row_init(&row, s->ncols);
    for (size_t k = 0; k < s->nkey; k++) {
      as_value x = AS_VALUE_NULL;
      as_value_copy(&x, &keys[i * s->nkey + k]);
      as_row_put(&key, s->key_idx[k], &x);
    }
    if (b.ad->read_row(b.node, s, &key, &row, &err) != AS_OK) DIE("%s", err.message);
    as_value t = AS_VALUE_NULL;
    char txt[64];
    snprintf(txt, sizeof txt, "changed by bench_verify %zu", i);
    as_value_set_str(&t, AS_T_TEXT, txt, strlen(txt));
    as_row_put(&row, (size_t)text_col, &t);
    as_delta d[1];
    as_delta_init(&d[0], s, AS_OP_INSERT);
    as_row_clear(&d[0].row);
    d[0].row = row;
    size_t nd = 1;
    flush(&b, d, &nd);
    json_t *j = as_value_to_json(&keys[i * s->nkey], NULL);
    char *js = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    printf("%s\n", js);
    free(js);
    json_decref(j);
    as_row_clear(&key);
  }
  for (size_t i = 0; i < nk * s->nkey; i++) as_value_clear(&keys[i]);
  free(keys);
  b.ad->exit(b.node);
  return 0;
}

/* The cost --quick adds to the apply path: the state store's version puts (what the engine
 * does per key and batch) with the quick signatures kept, against the same puts without them,
 * in batches of `batch` keys, each key held by two nodes. */
static int64_t quick_puts(const char *dir, int n, int batch, bool quick) {
  char path[4096];
  snprintf(path, sizeof path, "%s/quickcost-%d.db", dir, quick ? 1 : 0);
  remove(path);
  as_state *st;
  as_error err;
  if (as_state_open(path, false, &st, &err) != AS_OK) DIE("%s", err.message);
  as_state_quick_enable(st, quick);
  uint16_t a, b;
  if (as_state_node_id(st, "mongo", &a, &err) != AS_OK || as_state_node_id(st, "pg", &b, &err) != AS_OK)
    DIE("%s", err.message);
  int64_t t0 = as_monotonic_us();
  for (int i = 0; i < n; i += batch) {
    if (as_state_begin(st, &err) != AS_OK) DIE("%s", err.message);
    for (int k = i; k < i + batch && k < n; k++) {
      char key[48];
      snprintf(key, sizeof key, "{\"id\":{\"$oid\":\"6553f1%018d\"}}", k % 20000);
      as_version v = {.hlc = AS_HLC_FROM_US(as_now_us()), .origin = "mongo"};
      v.row_mask = 1ull << (a % 64) | 1ull << (b % 64);
      if (as_state_version_put(st, "customers", key, &v, &err) != AS_OK) DIE("%s", err.message);
    }
    if (as_state_commit(st, &err) != AS_OK) DIE("%s", err.message);
  }
  int64_t t = as_monotonic_us() - t0;
  as_state_close(st);
  remove(path);
  return t;
}

static int cmd_quickcost(const char *dir, int n) {
  int batches[] = {1000, 100, 10};
  for (size_t i = 0; i < sizeof batches / sizeof *batches; i++) {
    int bn = batches[i], nn = bn < 100 ? n / 10 : n;
    int64_t off = quick_puts(dir, nn, bn, false), on = quick_puts(dir, nn, bn, true);
    printf("quickcost keys=%d batch=%d version_put_us_per_key=%.3f with_quick_us_per_key=%.3f "
           "ratio=%.3f\n", nn, bn, (double)off / nn, (double)on / nn, (double)on / (double)off);
  }
  return 0;
}

/* Quick signatures as the engine would have recorded them when every named node holds the
 * rows it holds now (every key at one version), so that verify --quick has something to
 * compare in the benchmark. */
static int cmd_quickseed(const as_config *c, const as_schema *s, int nn, char **names) {
  as_state *st;
  as_error err;
  if (as_state_open(c->state_path, false, &st, &err) != AS_OK) DIE("%s", err.message);
  for (int k = 0; k < nn; k++) {
    bnode b = open_node(c, names[k]);
    uint16_t id;
    if (as_state_node_id(st, names[k], &id, &err) != AS_OK) DIE("%s", err.message);
    as_snapshot *sn;
    if (b.ad->snapshot_open(b.node, s, NULL, &sn, &err) != AS_OK) DIE("%s", err.message);
    as_batch batch = {0};
    size_t n = 0;
    int rc;
    do {
      rc = b.ad->snapshot_next(sn, &batch, 1000, &err);
      if (rc != AS_OK && rc != AS_EOF) DIE("%s", err.message);
      if (as_state_begin(st, &err) != AS_OK) DIE("%s", err.message);
      for (size_t i = 0; i < batch.n; i++) {
        char *kj = as_key_json_dup(s, &batch.d[i].row, &err);
        as_version v;
        int g = kj ? as_state_version_get(st, s->name, kj, &v, &err) : AS_ERR;
        if (g == AS_ENOTFOUND) v = (as_version){.hlc = AS_HLC_FROM_US(1700000000000000LL), .origin = "seed"};
        else if (g != AS_OK) DIE("%s", err.message);
        as_version_mark_holder(&v, id);
        if (as_state_version_put(st, s->name, kj, &v, &err) != AS_OK) DIE("%s", err.message);
        free(kj);
        n++;
      }
      if (as_state_commit(st, &err) != AS_OK) DIE("%s", err.message);
      as_batch_reset(&batch);
    } while (rc == AS_OK);
    as_batch_clear(&batch);
    b.ad->snapshot_close(sn);
    b.ad->exit(b.node);
    printf("quickseed %s keys=%zu\n", names[k], n);
  }
  as_state_close(st);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "quickcost") == 0) return cmd_quickcost(argv[2], atoi(argv[3]));
  if (argc < 5) DIE("usage: bench_verify load|fetch|touch CONFIG MAPPING ...");
  as_log_set_level(AS_LOG_WARN);
  as_config *c;
  as_error err;
  if (as_config_load(argv[2], &c, &err) != AS_OK) DIE("%s", err.message);
  const as_schema *s = as_config_schema(c, argv[3]);
  if (!s) DIE("no mapping %s", argv[3]);
  if (strcmp(argv[1], "load") == 0 && argc >= 6) return cmd_load(c, s, argv[4], argc - 5, argv + 5);
  if (strcmp(argv[1], "fetch") == 0) return cmd_fetch(c, s, argv[4]);
  if (strcmp(argv[1], "quickseed") == 0) return cmd_quickseed(c, s, argc - 4, argv + 4);
  if (strcmp(argv[1], "touch") == 0 && argc >= 6) return cmd_touch(c, s, argv[4], atoi(argv[5]));
  DIE("bad arguments");
}
