/* bench_children.c — the MongoDB -> PostgreSQL snapshot path of the bench's customer documents
 * with `orders` (0..3 subdocuments each) as a child table, against the same documents with
 * `orders` as a jsonb column, in one run.
 *
 *   bench_children CONNINFO DOCS.bson [REPS] [CAPTURE]
 *
 * CAPTURE: the node's capture option (auto | logical | triggers; default auto): what the
 * writes cost the server besides the rows (child table images with logical decoding, the
 * changelog with triggers).
 * DOCS.bson: bench_e2e.py gen's documents. Each path reads every document, maps it
 * (as_doc_to_row) and applies insert deltas through the postgres adapter (begin/apply/commit
 * with a checkpoint per batch of 1000) into a fresh schema made by the adapter's install.
 * Printed: e2e.children_snapshot docs/s and connector CPU µs per document (this process's CPU
 * time: mapping, conversion, libpq) of both, and ratio = child table docs/s / jsonb docs/s;
 * then the child table path once more with the child table's foreign key dropped
 * (ratio_without_fk): what PostgreSQL's per-row foreign key check costs. Each copy is a first
 * copy into empty tables, as the engine's snapshot makes it (adapter bulk_load around it: the
 * child table's foreign key set aside and added back, validated, inside the timed run).
 * Best of REPS (default 2) runs of each, interleaved. The child table rows are counted against
 * the documents' orders. After each copy with the foreign key, every document is applied again
 * as an update (e2e.children_update: the sink reads each parent's child rows, locking them for
 * the write, compares them and writes none: what an update that leaves an array alone costs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bson/bson.h>
#include <libpq-fe.h>

#include "adapter.h"
#include "as_bson.h"
#include "as_log.h"
#include "as_row.h"
#include "as_schema.h"

#define BATCH 1000
#define PG_SCHEMA "bench_children"

#define COMMON                                                      \
  "collection: customers\ntable: customers\ndirection: to-sql\nkey: id\n" \
  "columns:\n"                                                      \
  "  id:       { field: _id,                  type: objectid }\n"   \
  "  email:    { field: email,                type: text }\n"       \
  "  name:     { field: profile.name,         type: text }\n"       \
  "  age:      { field: profile.age,          type: bigint }\n"     \
  "  city:     { field: profile.address.city, type: text }\n"       \
  "  balance:  { field: account.balance,      type: numeric }\n"    \
  "  created:  { field: created,              type: timestamptz }\n" \
  "  active:   { field: active,               type: boolean }\n"    \
  "  score:    { field: score,                type: double }\n"     \
  "  tags:     { field: tags,                 type: jsonb }\n"      \
  "  extra:    { field: \"*\",                  type: jsonb }\n"

static const char *const JSONB_MAPPING = "mapping: customers\n" COMMON
    "  orders:   { field: orders,               type: jsonb }\n";
static const char *const CHILD_MAPPING = "mapping: customers\n" COMMON
    "children:\n"
    "  - table: customer_orders\n"
    "    field: orders\n"
    "    columns:\n"
    "      sku:   { field: sku,   type: text }\n"
    "      qty:   { field: qty,   type: bigint }\n"
    "      price: { field: price, type: numeric }\n"
    "      at:    { field: at,    type: timestamptz }\n"
    "      rest:  { field: \"*\",   type: jsonb }\n";

static const as_adapter *A;

static double now_s(clockid_t clk) {
  struct timespec t;
  clock_gettime(clk, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what, const char *msg) {
  fprintf(stderr, "bench_children: %s: %s\n", what, msg);
  exit(1);
}

static void exec(PGconn *c, const char *q) {
  PGresult *r = PQexec(c, q);
  if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
    die(q, PQerrorMessage(c));
  PQclear(r);
}

static long long count(PGconn *c, const char *q) {
  PGresult *r = PQexec(c, q);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) die(q, PQerrorMessage(c));
  long long n = atoll(PQgetvalue(r, 0, 0));
  PQclear(r);
  return n;
}

static const char *capture = "auto";

/* The child table's foreign key dropped (the reference run: what its per-row check costs). */
static void drop_fk(PGconn *c) {
  exec(c, "DO $$ DECLARE r record; BEGIN FOR r IN SELECT conname FROM pg_constraint WHERE conrelid = "
          "'" PG_SCHEMA ".customer_orders'::regclass AND contype = 'f' LOOP EXECUTE format('ALTER TABLE "
          PG_SCHEMA ".customer_orders DROP CONSTRAINT %I', r.conname); END LOOP; END $$");
}

static as_node *make_node(const char *dsn, const as_schema *s) {
  static as_node_option opts[3];
  static as_node_config cfg;
  opts[0] = (as_node_option){.key = "dsn", .value = (char *)dsn};
  opts[1] = (as_node_option){.key = "schema", .value = PG_SCHEMA};
  opts[2] = (as_node_option){.key = "capture", .value = (char *)capture};
  /* local_only: as the connector opens every node (its writes are not captured) */
  cfg = (as_node_config){.name = "pg", .kind = "postgres", .opts = opts, .nopts = 3,
                         .local_only = true};
  const as_schema *ss[1] = {s};
  as_node *n = NULL;
  as_error err = {0};
  if (A->init(&cfg, ss, 1, &n, &err) || A->connect(n, &err) || A->install(n, &err))
    die("node", err.message);
  return n;
}

/* One snapshot of every document (op AS_OP_UPDATE: every document again, as an update of
 * its whole row); returns the documents applied; wall and CPU seconds. */
static size_t run(as_node *n, const as_schema *s, const char *file, as_op op, double *wall, double *cpu) {
  bool copy = op == AS_OP_INSERT;
  as_delta *d = calloc(BATCH, sizeof *d);
  for (size_t i = 0; i < BATCH; i++) {
    if (as_delta_init(&d[i], s, op) || as_delta_set_origin(&d[i], "mongo"))
      die("delta", "out of memory");
  }
  as_dead_list dead = {0};
  as_error err = {0};
  bson_error_t berr;
  char ck[32];
  size_t total = 0;
  double w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
  /* a first copy into empty tables, as the engine's snapshot does it */
  if (copy && A->bulk_load && A->bulk_load(n, s, true, &err)) die("bulk_load", err.message);
  bson_reader_t *rd = bson_reader_new_from_file(file, &berr);
  if (!rd) die(file, berr.message);
  bool eof = false;
  while (!eof) {
    size_t m = 0;
    const bson_t *doc;
    while (m < BATCH && (doc = bson_reader_read(rd, &eof))) {
      if (as_doc_to_row(s, doc, &d[m].row, &err) != AS_OK) die("as_doc_to_row", err.message);
      m++;
    }
    if (m == 0) break;
    snprintf(ck, sizeof ck, "%s%zu", copy ? "" : "u", total + m);
    if (A->begin(n, &err) || A->apply(n, d, m, &dead, &err) || A->commit(n, "mongo->pg", ck, &err))
      die("apply", err.message);
    if (dead.n) die("apply", dead.items[0].error ? dead.items[0].error : "dead letter");
    total += m;
  }
  if (copy && A->bulk_load && A->bulk_load(n, s, false, &err)) die("bulk_load", err.message);
  *wall = now_s(CLOCK_MONOTONIC) - w0;
  *cpu = now_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
  bson_reader_destroy(rd);
  for (size_t i = 0; i < BATCH; i++) as_delta_clear(&d[i]);
  free(d);
  return total;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: bench_children CONNINFO DOCS.bson [REPS] [CAPTURE]\n");
    return 2;
  }
  const char *dsn = argv[1], *file = argv[2];
  int reps = argc > 3 ? atoi(argv[3]) : 2;
  if (reps < 1) reps = 1;
  if (argc > 4) capture = argv[4];
  as_log_set_level(AS_LOG_WARN);
  A = as_adapter_find("postgres");
  if (!A) die("registry", "no postgres adapter");
  as_schema *sj = NULL, *sc = NULL;
  as_error err = {0};
  if (as_schema_load_string("jsonb.yaml", JSONB_MAPPING, &sj, &err) ||
      as_schema_load_string("child.yaml", CHILD_MAPPING, &sc, &err))
    die("mapping", err.message);
  PGconn *c = PQconnectdb(dsn);
  if (PQstatus(c) != CONNECTION_OK) die("connect", PQerrorMessage(c));
  exec(c, "SET client_min_messages TO warning");
  double best[3][2] = {{1e9, 1e9}, {1e9, 1e9}, {1e9, 1e9}}; /* [jsonb|child|child, no fk][wall|cpu] */
  double best_upd[2] = {1e9, 1e9}; /* the child table's rows again, as updates */
  size_t docs = 0;
  long long orders = -1;
  for (int rep = 0; rep < reps; rep++) {
    for (int k = 0; k < 3; k++) {
      const as_schema *s = k ? sc : sj;
      exec(c, "DROP SCHEMA IF EXISTS " PG_SCHEMA " CASCADE; CREATE SCHEMA " PG_SCHEMA);
      as_node *n = make_node(dsn, s);
      if (k == 2) drop_fk(c);
      double wall, cpu;
      docs = run(n, s, file, AS_OP_INSERT, &wall, &cpu);
      if (k == 1) {
        double uw, uc;
        if (run(n, s, file, AS_OP_UPDATE, &uw, &uc) != docs) die("check", "update count mismatch");
        if (uw < best_upd[0]) best_upd[0] = uw, best_upd[1] = uc;
      }
      A->exit(n);
      if (count(c, "SELECT count(*) FROM " PG_SCHEMA ".customers") != (long long)docs)
        die("check", "row count mismatch");
      if (k == 0) {
        orders = count(c, "SELECT coalesce(sum(jsonb_array_length(orders)), 0) FROM " PG_SCHEMA ".customers");
      } else if (count(c, "SELECT count(*) FROM " PG_SCHEMA ".customer_orders") != orders) {
        die("check", "child rows do not match the documents' orders");
      } else if (count(c, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated "
                          "AND conrelid = '" PG_SCHEMA ".customer_orders'::regclass") != (k == 1)) {
        die("check", k == 1 ? "the foreign key is not back (validated) after the copy"
                            : "the foreign key came back in the run without it");
      }
      if (wall < best[k][0]) best[k][0] = wall, best[k][1] = cpu;
    }
  }
  printf("e2e.children_snapshot capture=%s docs=%zu orders=%lld jsonb_docs_per_s=%.0f child_docs_per_s=%.0f "
         "jsonb_cpu_us_per_doc=%.1f child_cpu_us_per_doc=%.1f ratio=%.2f nofk_child_docs_per_s=%.0f "
         "ratio_without_fk=%.2f\n",
         capture, docs, orders, docs / best[0][0], docs / best[1][0], 1e6 * best[0][1] / docs,
         1e6 * best[1][1] / docs, best[0][0] / best[1][0], docs / best[2][0], best[0][0] / best[2][0]);
  printf("e2e.children_update capture=%s docs=%zu child_docs_per_s=%.0f child_cpu_us_per_doc=%.1f "
         "(every document again as an update holding the same orders: each parent's child rows "
         "read, locked, compared; none written)\n",
         capture, docs, docs / best_upd[0], 1e6 * best_upd[1] / docs);
  exec(c, "DROP SCHEMA IF EXISTS " PG_SCHEMA " CASCADE");
  PQfinish(c);
  as_schema_free(sj);
  as_schema_free(sc);
  return 0;
}
