/* it_postgres.c — integration tests of the PostgreSQL adapter against a real server.
 *
 *   it_postgres CONNINFO            (or ARRAYSYNC_TEST_PG_DSN in the environment)
 *
 * Uses psql (PSQL env, default "psql") for outside sessions in the out-of-order test. Each
 * test works in its own schema so tests do not see each other's tables. Prints
 * "N passed, N failed" and exits nonzero on any failure. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <xxhash.h>

#include "adapter.h"
#include "as_log.h"
#include "as_row.h"
#include "as_schema.h"
#include "as_time.h"
#include "as_value.h"
#include "postgres/pg_internal.h" /* the sink's prepared statements (t_prepared) */

static const char *g_dsn;
static const char *g_psql = "psql";
static const char *g_capture = "triggers"; /* capture mode under test: triggers | logical */
static bool g_logical;
static const char *g_node_dsn;            /* make_node: another dsn (role) than g_dsn */
static const char *g_node_opt[2];         /* make_node: one more option (key, value) */
static const char *g_purge = "0";         /* make_node: purge_interval */
static int g_pass, g_fail;
static const char *g_test = "";

#define CHECK(cond, ...)                                               \
  do {                                                                 \
    if (cond) {                                                        \
      g_pass++;                                                        \
    } else {                                                           \
      g_fail++;                                                        \
      fprintf(stderr, "FAIL %s (%s:%d): %s: ", g_test, __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                    \
      fputc('\n', stderr);                                             \
    }                                                                  \
  } while (0)

#define A (&as_adapter_postgres)

/* ------------------------------------------------------------------ helpers */

static PGconn *outside(void) {
  PGconn *c = PQconnectdb(g_dsn);
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "cannot connect: %s\n", PQerrorMessage(c));
    exit(2);
  }
  PGresult *r = PQexec(c, "SET client_min_messages TO warning");
  PQclear(r);
  return c;
}

/* Runs SQL; returns the first value of the first row (static buffer) or NULL. */
static const char *sql(PGconn *c, const char *fmt, ...) {
  static char out[4096];
  char q[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q, sizeof q, fmt, ap);
  va_end(ap);
  PGresult *r = PQexec(c, q);
  ExecStatusType st = PQresultStatus(r);
  const char *ret = NULL;
  if (st == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0) {
    snprintf(out, sizeof out, "%s", PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0));
    ret = out;
  } else if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    out[0] = '\0';
    ret = out;
  } else {
    fprintf(stderr, "  [%s] sql failed: %s: %s", g_test, q, PQerrorMessage(c));
  }
  PQclear(r);
  return ret;
}

static long sql_long(PGconn *c, const char *fmt, const char *arg) {
  const char *v = sql(c, fmt, arg);
  return v ? atol(v) : -999;
}

static as_schema *schema_yaml(const char *yaml) {
  as_schema *s = NULL;
  as_error err = {0};
  if (as_schema_load_string("test.yaml", yaml, &s, &err) != AS_OK) {
    fprintf(stderr, "mapping: %s\n", err.message);
    exit(2);
  }
  return s;
}

typedef struct node_h {
  as_node_config cfg;
  as_node_option opts[8];
  as_node *n;
} node_h;

static void fresh_schema(const char *schema) {
  PGconn *c = outside();
  char *q = PQescapeIdentifier(c, schema, strlen(schema));
  sql(c, "DROP SCHEMA IF EXISTS %s CASCADE", q);
  PQfreemem(q);
  PQfinish(c);
}

/* Builds and connects a node in `schema` (created if missing). */
static as_node *make_node(node_h *h, const char *name, const char *schema,
                          const as_schema *const *ss, size_t ns, const char *triggers) {
  memset(h, 0, sizeof *h);
  h->opts[0] = (as_node_option){.key = "dsn", .value = (char *)(g_node_dsn ? g_node_dsn : g_dsn)};
  h->opts[1] = (as_node_option){.key = "schema", .value = (char *)schema};
  size_t no = 2;
  h->opts[no++] = (as_node_option){.key = "capture", .value = (char *)g_capture};
  /* every ack writes its position (origin_purge checks the purge after each) */
  h->opts[no++] = (as_node_option){.key = "purge_interval", .value = (char *)g_purge};
  if (g_node_opt[0])
    h->opts[no++] = (as_node_option){.key = (char *)g_node_opt[0], .value = (char *)g_node_opt[1]};
  if (triggers) h->opts[no++] = (as_node_option){.key = "capture_triggers", .value = (char *)triggers};
  h->cfg = (as_node_config){.name = (char *)name, .kind = "postgres", .opts = h->opts, .nopts = no};
  as_error err = {0};
  PGconn *c = outside();
  char *q = PQescapeIdentifier(c, schema, strlen(schema));
  sql(c, "CREATE SCHEMA IF NOT EXISTS %s", q);
  PQfreemem(q);
  PQfinish(c);
  if (A->init(&h->cfg, ss, ns, &h->n, &err) != AS_OK || A->connect(h->n, &err) != AS_OK) {
    fprintf(stderr, "node: %s\n", err.message);
    exit(2);
  }
  return h->n;
}

/* The same with consumers named in the node config. */
static as_node *make_node_consumers(node_h *h, const char *name, const char *schema,
                                    const as_schema *const *ss, size_t ns, char **cons,
                                    size_t ncons) {
  as_node *n = make_node(h, name, schema, ss, ns, NULL);
  A->exit(n);
  h->cfg.consumers = cons;
  h->cfg.nconsumers = ncons;
  as_error err = {0};
  if (A->init(&h->cfg, ss, ns, &h->n, &err) != AS_OK || A->connect(h->n, &err) != AS_OK) {
    fprintf(stderr, "node: %s\n", err.message);
    exit(2);
  }
  return h->n;
}

static void set_text(as_row *r, const as_schema *s, const char *col, const char *txt) {
  int i = as_schema_column_index(s, col);
  as_value v = AS_VALUE_NULL;
  as_error err = {0};
  if (txt && as_value_from_text(s->cols[i].type, txt, strlen(txt), &v, &err) != AS_OK) {
    fprintf(stderr, "bad test value %s=%s: %s\n", col, txt, err.message);
    exit(2);
  }
  as_row_put(r, (size_t)i, &v);
}

/* A delta from "col=value" pairs (value NULL = SQL NULL). */
static void mk_delta(as_delta *d, const as_schema *s, as_op op, const char *origin, ...) {
  as_delta_init(d, s, op);
  as_delta_set_origin(d, origin);
  va_list ap;
  va_start(ap, origin);
  const char *col;
  while ((col = va_arg(ap, const char *)) != NULL) {
    const char *val = va_arg(ap, const char *);
    set_text(&d->row, s, col, val);
  }
  va_end(ap);
}

static int apply_batch(as_node *n, as_delta *d, size_t nd, as_dead_list *dead, const char *sid,
                       const char *ck) {
  as_error err = {0};
  int rc = A->begin(n, &err);
  if (rc == AS_OK) rc = A->apply(n, d, nd, dead, &err);
  if (rc == AS_OK) rc = A->commit(n, sid, ck, &err);
  if (rc != AS_OK) {
    fprintf(stderr, "  [%s] apply failed (%d): %s\n", g_test, rc, err.message);
    A->rollback(n);
  }
  return rc;
}

static void free_deltas(as_delta *d, size_t n) {
  for (size_t i = 0; i < n; i++) as_delta_clear(&d[i]);
}

/* Polls until at least `want` deltas arrived or `tries` empty polls. */
static int poll_n(as_stream *st, as_batch *b, size_t want, int tries) {
  as_error err = {0};
  for (int t = 0; t < tries && (t == 0 || b->n < want); t++) {
    size_t before = b->n + b->ndead;
    int rc = A->poll(st, b, 100, 200, &err);
    if (rc != AS_OK) {
      fprintf(stderr, "  [%s] poll failed: %s\n", g_test, err.message);
      return rc;
    }
    if (b->n + b->ndead == before && want == 0) break;
  }
  return AS_OK;
}

static char *val_text(const as_row *r, const as_schema *s, const char *col) {
  int i = as_schema_column_index(s, col);
  if (i < 0 || !as_row_has(r, (size_t)i)) return strdup("<absent>");
  char *t = NULL;
  as_error err = {0};
  if (r->v[i].type == AS_T_NULL) return strdup("<null>");
  if (as_value_to_text(&r->v[i], &t, &err) != AS_OK) return strdup("<bad>");
  return t;
}

static bool col_is(const as_row *r, const as_schema *s, const char *col, const char *want) {
  char *t = val_text(r, s, col);
  bool ok = strcmp(t, want) == 0;
  if (!ok) fprintf(stderr, "  [%s] column %s is %s, want %s\n", g_test, col, t, want);
  free(t);
  return ok;
}

static size_t present(const as_row *r) {
  size_t k = 0;
  for (size_t i = 0; i < r->n; i++) k += r->set[i] ? 1 : 0;
  return k;
}

static const char *USERS_YAML =
    "mapping: users\ncollection: users\ntable: users\nkey: id\ncolumns:\n"
    "  id:    { field: _id, type: text }\n"
    "  email: { field: email, type: text, required: true }\n"
    "  n:     { field: n, type: int64 }\n"
    "  score: { field: score, type: double }\n";

/* ------------------------------------------------------------------ tests */

/* Capture triggers of a table (not internal ones). */
static long ntriggers(PGconn *c, const char *table, const char *extra) {
  char q[512];
  snprintf(q, sizeof q,
           "SELECT count(*) FROM pg_trigger WHERE tgrelid = '%s'::regclass AND NOT tgisinternal%s",
           table, extra);
  return sql_long(c, "%s", q);
}

/* Slots whose name has `part` (this database). */
static long nslots(PGconn *c, const char *part) {
  char q[512];
  snprintf(q, sizeof q, "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE '%%%s%%'", part);
  return sql_long(c, "%s", q);
}

/* Logical capture: install makes the slots of the consumers named in the node config, drops
 * the others', and switches cleanly between capture modes. Returns the node in use. */
static as_node *install_slots_and_modes(node_h *h, as_node *n, const as_schema *const *ss,
                                        PGconn *c) {
  as_error err = {0};
  char *cons[2] = {"mongo", "lite"};
  A->exit(n);
  n = make_node_consumers(h, "pg", "t_install", ss, 1, cons, 2);
  CHECK(A->install(n, &err) == AS_OK, "slots: %s", err.message);
  CHECK(nslots(c, "as_pg_%_mongo_") == 1 && nslots(c, "as_pg_%_lite_") == 1, "two slots");
  A->exit(n);
  n = make_node_consumers(h, "pg", "t_install", ss, 1, cons, 1);
  CHECK(A->install(n, &err) == AS_OK, "slots: %s", err.message);
  CHECK(nslots(c, "as_pg_%_mongo_") == 1 && nslots(c, "as_pg_%_lite_") == 0, "lite's slot dropped");
  /* switching to triggers removes publication and slots; and back */
  const char *saved = g_capture;
  g_capture = "triggers";
  A->exit(n);
  n = make_node_consumers(h, "pg", "t_install", ss, 1, cons, 1);
  CHECK(A->install(n, &err) == AS_OK, "to triggers: %s", err.message);
  CHECK(nslots(c, "as_pg_") == 0 && ntriggers(c, "t_install.users", "") == 4 &&
            sql_long(c, "SELECT count(*) FROM pg_publication WHERE pubname LIKE %s", "'arraysync%'") == 0,
        "triggers mode: no slot, no publication, triggers");
  g_capture = saved;
  A->exit(n);
  n = make_node_consumers(h, "pg", "t_install", ss, 1, cons, 1);
  CHECK(A->install(n, &err) == AS_OK, "to logical: %s", err.message);
  CHECK(nslots(c, "as_pg_%_mongo_") == 1 && ntriggers(c, "t_install.users", "") == 0,
        "logical mode: slot, no triggers");
  return n;
}

static void t_install(void) {
  g_test = "install";
  fresh_schema("t_install");
  fresh_schema("t_bad");
  as_schema *s = schema_yaml(USERS_YAML);
  const as_schema *ss[1] = {s};
  node_h h;
  as_node *n = make_node(&h, "pg", "t_install", ss, 1, NULL);
  as_error err = {0};
  PGconn *c = outside();
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  CHECK(A->install(n, &err) == AS_OK, "reinstall: %s", err.message);
  CHECK(strcmp(sql(c, "SELECT value FROM arraysync.meta WHERE key = 'schema_version'"), "3") == 0,
        "schema_version");
  long want_trig = g_logical ? 0 : 4; /* statement level: ins, upd, del, trunc */
  CHECK(ntriggers(c, "t_install.users", "") == want_trig, "%ld triggers", want_trig);
  if (g_logical) {
    CHECK(sql_long(c, "SELECT count(*) FROM pg_publication_tables WHERE pubname LIKE %s AND "
                      "(schemaname, tablename) IN (('t_install', 'users'), ('arraysync', 'marks'))",
                   "'arraysync_pg_%'") == 2,
          "publication holds the table and the marks");
  }
  sql(c, "INSERT INTO t_install.users VALUES ('a', 'a@x', 1, 1.5)");
  /* an older installation (version 0: no tables yet) upgrades */
  sql(c, "DROP SCHEMA arraysync CASCADE");
  CHECK(A->install(n, &err) == AS_OK, "upgrade: %s", err.message);
  CHECK(sql_long(c, "SELECT count(*) FROM t_install.users%s", "") == 1, "data kept");
  CHECK(ntriggers(c, "t_install.users", "") == want_trig, "triggers back");
  /* a version-1 installation (jsonb images) upgrades to 3 */
  sql(c, "ALTER TABLE arraysync.changelog DROP COLUMN cols, DROP COLUMN nkeys; DROP TABLE arraysync.marks; "
         "DROP TABLE arraysync.child_images; "
         "UPDATE arraysync.meta SET value = '1' WHERE key = 'schema_version'");
  CHECK(A->install(n, &err) == AS_OK, "upgrade 1 -> 3: %s", err.message);
  CHECK(strcmp(sql(c, "SELECT value FROM arraysync.meta WHERE key = 'schema_version'"), "3") == 0,
        "upgraded");
  CHECK(sql_long(c, "SELECT count(*) FROM pg_tables WHERE schemaname = 'arraysync' AND "
                    "tablename = 'child_images'%s", "") == 1, "child images table made");
  /* capture level switch replaces triggers */
  A->exit(n);
  n = make_node(&h, "pg", "t_install", ss, 1, "row");
  CHECK(A->install(n, &err) == AS_OK, "row level: %s", err.message);
  if (!g_logical) {
    CHECK(ntriggers(c, "t_install.users", " AND tgtype & 1 = 1") == 3, "row-level triggers");
    CHECK(ntriggers(c, "t_install.users", " AND tgtype & 1 = 0") == 2, "statement triggers");
  }
  /* consumers named in the node config: install makes their slots and drops the others' */
  if (g_logical) n = install_slots_and_modes(&h, n, ss, c);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  CHECK(strcmp(sql(c, "SELECT to_regnamespace('arraysync') IS NULL"), "t") == 0, "schema gone");
  CHECK(ntriggers(c, "t_install.users", "") == 0, "triggers gone");
  CHECK(nslots(c, "as_pg_") == 0, "slots gone");
  CHECK(sql_long(c, "SELECT count(*) FROM pg_publication WHERE pubname LIKE %s", "'arraysync%'") == 0,
        "publication gone");
  CHECK(sql_long(c, "SELECT count(*) FROM t_install.users%s", "") == 1, "data kept");
  /* a mismatching table */
  sql(c, "CREATE SCHEMA t_bad; CREATE TABLE t_bad.users (id text PRIMARY KEY, email integer, n bigint, score float8)");
  A->exit(n);
  n = make_node(&h, "pg", "t_bad", ss, 1, NULL);
  int rc = A->install(n, &err);
  CHECK(rc == AS_EINVAL, "rc %d", rc);
  CHECK(strstr(err.message, "table \"users\": column \"email\" is integer, mapping users (test.yaml:") != NULL &&
            strstr(err.message, "wants text"), "message: %s", err.message);
  /* a narrower type than the mapping's: refused at install, naming table, column, mapping */
  sql(c, "ALTER TABLE t_bad.users ALTER email TYPE text, ALTER n TYPE integer");
  rc = A->install(n, &err);
  CHECK(rc == AS_EINVAL && strstr(err.message, "table \"users\": column \"n\" is integer, mapping users (test.yaml:8:") &&
            strstr(err.message, "wants bigint (a narrower type"),
        "narrow: %d %s", rc, err.message);
  sql(c, "ALTER TABLE t_bad.users ALTER n TYPE bigint, ALTER score TYPE real");
  rc = A->install(n, &err);
  CHECK(rc == AS_EINVAL && strstr(err.message, "column \"score\" is real") &&
            strstr(err.message, "narrower"),
        "narrow float: %d %s", rc, err.message);
  sql(c, "ALTER TABLE t_bad.users ALTER score TYPE float8, ALTER email TYPE varchar(10)");
  rc = A->install(n, &err);
  CHECK(rc == AS_EINVAL && strstr(err.message, "column \"email\" is character varying(10)"),
        "varchar(10): %d %s", rc, err.message);
  sql(c, "ALTER TABLE t_bad.users ALTER email TYPE varchar");
  CHECK(A->install(n, &err) == AS_OK, "varchar: %s", err.message);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  sql(c, "ALTER TABLE t_bad.users DROP CONSTRAINT users_pkey");
  rc = A->install(n, &err);
  CHECK(rc == AS_EINVAL && strstr(err.message, "no primary key"), "no key: %d %s", rc, err.message);
  if (g_logical) {
    /* a unique index on the key but no primary key: install gives the table the identity FULL
     * (updates then name the columns they change) */
    sql(c, "CREATE UNIQUE INDEX users_id ON t_bad.users (id); ALTER TABLE t_bad.users ALTER id SET NOT NULL");
    CHECK(A->install(n, &err) == AS_OK, "identity default -> full: %s", err.message);
    const char *ri = sql(c, "SELECT relreplident::text FROM pg_class WHERE oid = 't_bad.users'::regclass");
    CHECK(ri && strcmp(ri, "f") == 0, "replica identity set to FULL: %s", ri ? ri : "?");
    /* an identity the user chose is kept; one that does not hold the key is refused */
    sql(c, "ALTER TABLE t_bad.users REPLICA IDENTITY NOTHING");
    rc = A->install(n, &err);
    CHECK(rc == AS_EINVAL && strstr(err.message, "replica identity") &&
              strstr(err.message, "REPLICA IDENTITY USING INDEX"),
          "replica identity: %d %s", rc, err.message);
    sql(c, "ALTER TABLE t_bad.users REPLICA IDENTITY USING INDEX users_id");
    CHECK(A->install(n, &err) == AS_OK, "identity index: %s", err.message);
    ri = sql(c, "SELECT relreplident::text FROM pg_class WHERE oid = 't_bad.users'::regclass");
    CHECK(ri && strcmp(ri, "i") == 0, "replica identity USING INDEX kept: %s", ri ? ri : "?");
    CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  }
  sql(c, "ALTER TABLE t_bad.users DROP COLUMN n");
  rc = A->install(n, &err);
  CHECK(rc == AS_EINVAL && strstr(err.message, "column \"n\" is missing"), "missing: %s", err.message);
  A->exit(n);
  PQfinish(c);
  as_schema_free(s);
}

static void t_capture(void) {
  g_test = "capture";
  fresh_schema("t_capture");
  as_schema *s = schema_yaml(USERS_YAML);
  const as_schema *ss[1] = {s};
  const char *levels[2] = {"statement", "row"};
  for (int lv = 0; lv < (g_logical ? 1 : 2); lv++) {
    node_h h;
    as_node *n = make_node(&h, "pg", "t_capture", ss, 1, levels[lv]);
    as_error err = {0};
    PGconn *c = outside();
    CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
    sql(c, "INSERT INTO t_capture.users VALUES ('old', 'o@x', 0, 0)"); /* before the stream */
    as_stream *st = NULL;
    CHECK(A->open_stream(n, "reader", NULL, &st, &err) == AS_OK, "%s", err.message);
    as_batch b = {0};
    poll_n(st, &b, 0, 1);
    CHECK(b.n == 0, "nothing old replayed (%zu)", b.n);
    as_batch_reset(&b);
    sql(c, "INSERT INTO t_capture.users VALUES ('u1', 'a@x', 7, 2.5), ('u2', 'b@x', NULL, 'NaN')");
    poll_n(st, &b, 2, 10);
    CHECK(b.n == 2, "%s: 2 inserts, got %zu", levels[lv], b.n);
    if (b.n == 2) {
      CHECK(b.d[0].op == AS_OP_INSERT && col_is(&b.d[0].row, s, "id", "u1") &&
                col_is(&b.d[0].row, s, "n", "7") && col_is(&b.d[0].row, s, "score", "2.5"),
            "insert u1");
      CHECK(b.d[1].op == AS_OP_INSERT && col_is(&b.d[1].row, s, "n", "<null>") &&
                col_is(&b.d[1].row, s, "score", "NaN"),
            "insert u2");
      for (size_t i = 0; i < b.n; i++) {
        CHECK(!b.d[i].echo && b.d[i].origin && strcmp(b.d[i].origin, "pg") == 0, "origin");
        CHECK(b.d[i].ts_us > 1600000000000000LL && b.d[i].hlc == AS_HLC_FROM_US(b.d[i].ts_us),
              "ts");
        CHECK(b.d[i].pos && b.d[i].txn, "pos/txn");
      }
    }
    as_batch_reset(&b);
    sql(c, "UPDATE t_capture.users SET email = 'c@x' WHERE id = 'u1'");
    poll_n(st, &b, 1, 10);
    /* triggers say which columns changed; so does logical decoding with the replica identity
     * FULL that install sets (the old row is logged) */
    CHECK(b.n == 1 && b.d[0].op == AS_OP_UPDATE && present(&b.d[0].row) == 2u &&
              col_is(&b.d[0].row, s, "email", "c@x"),
          "update: %zu deltas, %zu present", b.n, b.n ? present(&b.d[0].row) : 0);
    as_batch_reset(&b);
    sql(c, "ALTER TABLE t_capture.users ADD COLUMN IF NOT EXISTS unmapped text");
    sql(c, "UPDATE t_capture.users SET unmapped = 'zzz' WHERE id = 'u1'");
    sql(c, "UPDATE t_capture.users SET email = email WHERE id = 'u2'");
    poll_n(st, &b, 0, 2);
    /* an unmapped column or no change: nothing (triggers write nothing; logical decoding
     * compares the old row with the new one) */
    CHECK(b.n == 0u, "no-op updates: %zu", b.n);
    char *pos_before = b.pos ? strdup(b.pos) : NULL;
    as_batch_reset(&b);
    sql(c, "DELETE FROM t_capture.users WHERE id = 'u2'");
    sql(c, "UPDATE t_capture.users SET id = 'u3' WHERE id = 'u1'");         /* key change */
    poll_n(st, &b, 3, 10);
    CHECK(b.n == 3, "%s: delete + key change, got %zu", levels[lv], b.n);
    if (b.n == 3) {
      CHECK(b.d[0].op == AS_OP_DELETE && col_is(&b.d[0].row, s, "id", "u2") &&
                present(&b.d[0].row) == 1,
            "delete");
      /* a key change: delete of the old key, insert of the new (one statement: any order) */
      size_t del = b.d[1].op == AS_OP_DELETE ? 1 : 2, ins = 3 - del;
      CHECK(b.d[del].op == AS_OP_DELETE && col_is(&b.d[del].row, s, "id", "u1"),
            "key change: delete");
      CHECK(b.d[ins].op == AS_OP_INSERT && col_is(&b.d[ins].row, s, "id", "u3") &&
                col_is(&b.d[ins].row, s, "email", "c@x") && present(&b.d[ins].row) == 4,
            "key change: insert");
      CHECK(b.pos && b.d[2].pos, "batch pos");
    }
    /* resume from an earlier position: only what follows comes again */
    as_stream *st2 = NULL;
    if (g_logical) { /* one slot per consumer: the first stream lets go of it */
      A->close_stream(st);
      st = NULL;
    }
    CHECK(A->open_stream(n, "reader", pos_before, &st2, &err) == AS_OK, "%s", err.message);
    as_batch b2 = {0};
    poll_n(st2, &b2, 3, 10);
    CHECK(b2.n == 3 && b2.d[0].op == AS_OP_DELETE && col_is(&b2.d[0].row, s, "id", "u2"),
          "resume: %zu", b2.n);
    char *p = NULL;
    CHECK(A->stream_position(st2, &p, &err) == AS_OK && p &&
              (g_logical ? strchr(p, '/') != NULL : strncmp(p, "v2|", 3) == 0),
          "position %s", p ? p : "");
    free(p);
    as_batch_clear(&b2);
    A->close_stream(st2);
    free(pos_before);
    as_stream *bad = NULL;
    int rc = A->open_stream(n, "x", "garbage", &bad, &err);
    CHECK((g_logical ? rc == AS_ERR && strstr(err.message, "not a logical-decoding position")
                     : rc == AS_EINVAL) && !bad,
          "bad checkpoint: %d %s", rc, err.message);
    as_batch_clear(&b);
    A->close_stream(st);
    sql(c, "ALTER TABLE t_capture.users DROP COLUMN unmapped");
    CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
    sql(c, "DROP SCHEMA t_capture CASCADE");
    A->exit(n);
    PQfinish(c);
  }
  as_schema_free(s);
}

/* Two sessions: B takes the lower seq but commits after A. */
static void t_out_of_order(void) {
  g_test = "out_of_order";
  fresh_schema("t_ooo");
  as_schema *s = schema_yaml(USERS_YAML);
  const as_schema *ss[1] = {s};
  node_h h;
  as_node *n = make_node(&h, "pg", "t_ooo", ss, 1, NULL);
  as_error err = {0};
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  as_stream *st = NULL, *other = NULL;
  CHECK(A->open_stream(n, "reader", NULL, &st, &err) == AS_OK, "%s", err.message);
  /* a second consumer registered now (its slot, with logical decoding), read later */
  CHECK(A->open_stream(n, "other", NULL, &other, &err) == AS_OK, "%s", err.message);
  A->close_stream(other);
  PGconn *ca = outside(), *cb = outside();
  sql(cb, "BEGIN");
  sql(cb, "INSERT INTO t_ooo.users VALUES ('b', 'b@x', 1, 1)");
  sql(ca, "INSERT INTO t_ooo.users VALUES ('a', 'a@x', 2, 2)");
  as_batch b = {0};
  poll_n(st, &b, 1, 5);
  CHECK(b.n == 1 && col_is(&b.d[0].row, s, "id", "a"), "libpq: A first (%zu)", b.n);
  char *pos_after_a = b.pos ? strdup(b.pos) : NULL;
  as_batch_reset(&b);
  sql(cb, "COMMIT");
  poll_n(st, &b, 1, 5);
  CHECK(b.n == 1 && col_is(&b.d[0].row, s, "id", "b"), "libpq: B later, not skipped (%zu)", b.n);
  as_batch_reset(&b);
  poll_n(st, &b, 0, 2);
  CHECK(b.n == 0, "nothing twice (%zu)", b.n);
  as_batch_reset(&b);
  /* a stream resumed from the position after A still gets B */
  as_stream *st2 = NULL;
  CHECK(A->open_stream(n, "other", pos_after_a, &st2, &err) == AS_OK, "%s", err.message);
  poll_n(st2, &b, 1, 5);
  CHECK(b.n == 1 && col_is(&b.d[0].row, s, "id", "b"), "resume gets B (%zu)", b.n);
  as_batch_reset(&b);
  A->close_stream(st2);
  free(pos_after_a);

  /* the same with two psql sessions: B sleeps before committing */
  pid_t pid = fork();
  if (pid == 0) {
    execlp(g_psql, g_psql, "-X", "-q", "-o", "/dev/null", "-v", "ON_ERROR_STOP=1", "-d", g_dsn, "-c",
           "BEGIN; INSERT INTO t_ooo.users VALUES ('pb', 'pb@x', 1, 1); "
           "SELECT pg_sleep(2); COMMIT;",
           (char *)NULL);
    _exit(127);
  }
  /* wait until B's insert is done (its row lock is held, its transaction open) */
  bool started = false;
  for (int i = 0; i < 200 && !started; i++) {
    started = sql_long(ca, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s "
                           "AND state = 'active' AND backend_xid IS NOT NULL",
                       "'%pg_sleep(2)%'") > 0;
    if (!started) usleep(20000);
  }
  CHECK(started, "psql B started");
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "%s -X -q -d '%s' -c \"INSERT INTO t_ooo.users VALUES ('pa', 'pa@x', 2, 2)\"", g_psql,
           g_dsn);
  CHECK(system(cmd) == 0, "psql A");
  poll_n(st, &b, 1, 3);
  CHECK(b.n == 1 && col_is(&b.d[0].row, s, "id", "pa"), "psql: A first (%zu)", b.n);
  as_batch_reset(&b);
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "psql B exit");
  poll_n(st, &b, 1, 5);
  CHECK(b.n == 1 && col_is(&b.d[0].row, s, "id", "pb"), "psql: B after (%zu)", b.n);
  as_batch_clear(&b);
  A->close_stream(st);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  PQfinish(ca);
  PQfinish(cb);
  as_schema_free(s);
}

/* Is the slot of `consumer` confirmed at or after pos? Waits up to 3 s (the server applies
 * a status update when its walsender reads it). */
static bool slot_confirmed(PGconn *c, const char *consumer, const char *pos) {
  char q[512];
  snprintf(q, sizeof q,
           "SELECT count(*) FROM pg_replication_slots WHERE slot_name ~ '_%s_[0-9a-f]{8}$' AND "
           "confirmed_flush_lsn >= '%s'::pg_lsn",
           consumer, pos);
  for (int i = 0; i < 150; i++) {
    if (sql_long(c, "%s", q) == 1) return true;
    usleep(20000);
  }
  return false;
}

typedef struct gauge_seen {
  char consumer[64];
  double bytes;
  int n;
} gauge_seen;

static void on_gauge(void *ctx, const char *metric, const char *consumer, double value) {
  gauge_seen *g = ctx;
  if (strcmp(metric, "arraysync_pg_slot_retained_bytes") != 0 || !consumer ||
      strcmp(consumer, g->consumer) != 0)
    return;
  g->bytes = value;
  g->n++;
}

/* Logical capture: the slot's confirmed position moves only with ack, per consumer; an idle
 * stream's position follows the server's WAL. */
static void purge_logical(as_node *n, PGconn *c, as_stream *st, as_stream *st2, as_batch *b,
                          as_batch *b2) {
  as_error err = {0};
  /* the slot's confirmed position moves only with ack, per consumer */
  gauge_seen g = {.consumer = "reader2"};
  CHECK(A->gauges(n, on_gauge, &g, &err) == AS_OK, "%s", err.message);
  CHECK(g.n == 1 && g.bytes > 0, "retained bytes of reader2's slot: %d %.0f", g.n, g.bytes);
  CHECK(b->pos && A->ack(st, b->pos, &err) == AS_OK, "%s", err.message);
  CHECK(b->pos && slot_confirmed(c, "reader", b->pos), "reader's slot confirmed at %s", b->pos);
  CHECK(b->pos && !slot_confirmed(c, "reader2", b->pos), "reader2's slot not moved");
  poll_n(st2, b2, 13, 10);
  CHECK(b2->n == 13, "reader2 got %zu", b2->n);
  CHECK(b2->pos && A->ack(st2, b2->pos, &err) == AS_OK, "%s", err.message);
  CHECK(b2->pos && slot_confirmed(c, "reader2", b2->pos), "reader2's slot confirmed");
  /* idle: keepalives move the position on, so an idle slot does not hold WAL */
  sql(c, "CREATE TABLE IF NOT EXISTS t_origin.unrelated (x int); INSERT INTO t_origin.unrelated VALUES (1)");
  as_batch_reset(b);
  char *last = b2->pos ? strdup(b2->pos) : NULL;
  for (int i = 0; i < 20 && (!b->pos || (last && strcmp(b->pos, last) == 0)); i++) {
    as_batch_reset(b);
    A->poll(st, b, 100, 500, &err);
  }
  CHECK(b->n == 0 && b->pos && last && strcmp(b->pos, last) != 0, "idle position moved: %s -> %s",
        last ? last : "", b->pos ? b->pos : "");
  free(last);
}

static void t_origin_purge(void) {
  g_test = "origin_purge";
  fresh_schema("t_origin");
  as_schema *s = schema_yaml(USERS_YAML);
  const as_schema *ss[1] = {s};
  node_h h;
  char *cons[3] = {"reader", "reader2", "mongo"};
  as_node *n = make_node_consumers(&h, "pg", "t_origin", ss, 1, cons, 3);
  as_error err = {0};
  PGconn *c = outside();
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  sql(c, "INSERT INTO t_origin.users VALUES ('gone', 'g@x', 0, 0)");
  as_stream *st = NULL, *st2 = NULL, *stm = NULL;
  CHECK(A->open_stream(n, "reader", NULL, &st, &err) == AS_OK, "%s", err.message);
  CHECK(A->open_stream(n, "reader2", NULL, &st2, &err) == AS_OK, "%s", err.message);
  CHECK(A->open_stream(n, "mongo", NULL, &stm, &err) == AS_OK, "%s", err.message);
  as_delta d[12] = {{0}};
  char id[16];
  for (int i = 0; i < 10; i++) { /* 10 full inserts, two origins */
    snprintf(id, sizeof id, "k%02d", i);
    mk_delta(&d[i], s, AS_OP_INSERT, i < 5 ? "mongo" : "lite", "id", id, "email", "e", "n", "1",
             "score", "1", NULL);
  }
  mk_delta(&d[10], s, AS_OP_UPDATE, "mongo", "id", "k00", "email", "new", NULL);
  mk_delta(&d[11], s, AS_OP_DELETE, "lite", "id", "gone", NULL);
  as_dead_list dead = {0};
  CHECK(apply_batch(n, d, 12, &dead, "mongo->pg", "ck1") == AS_OK, "apply");
  CHECK(dead.n == 0, "dead %zu", dead.n);
  CHECK(strcmp(sql(c, "SELECT coalesce(current_setting('arraysync.origin', true), '')"), "") == 0,
        "origin not visible outside");
  sql(c, "INSERT INTO t_origin.users VALUES ('local', 'l@x', 0, 0)");
  as_batch b = {0};
  poll_n(st, &b, 13, 10);
  CHECK(b.n == 13, "13 deltas, got %zu", b.n);
  if (b.n == 13) {
    size_t mongo = 0, lite = 0;
    for (size_t i = 0; i < 12; i++) {
      CHECK(b.d[i].echo, "echo %zu", i);
      if (strcmp(b.d[i].origin, "mongo") == 0) mongo++;
      if (strcmp(b.d[i].origin, "lite") == 0) lite++;
    }
    CHECK(mongo == 6 && lite == 6, "origins %zu %zu", mongo, lite);
    CHECK(b.d[10].op == AS_OP_UPDATE && strcmp(b.d[10].origin, "mongo") == 0, "update origin");
    CHECK(b.d[11].op == AS_OP_DELETE && strcmp(b.d[11].origin, "lite") == 0, "delete origin");
    CHECK(!b.d[12].echo && strcmp(b.d[12].origin, "pg") == 0, "local write");
  }
  /* the stream to mongo leaves out the echoes of mongo's own changes */
  as_batch bm = {0};
  poll_n(stm, &bm, 7, 10);
  size_t from_mongo = 0;
  for (size_t i = 0; i < bm.n; i++) from_mongo += bm.d[i].origin && strcmp(bm.d[i].origin, "mongo") == 0;
  CHECK(bm.n == 7 && from_mongo == 0, "to mongo: %zu deltas, %zu of mongo's", bm.n, from_mongo);
  as_batch_clear(&bm);
  A->close_stream(stm);
  /* a consumer that never comes back holds the purge until its registration is removed */
  if (!g_logical) sql(c, "DELETE FROM arraysync.consumers WHERE name = 'mongo'");
  as_batch b2 = {0};
  if (g_logical) {
    purge_logical(n, c, st, st2, &b, &b2);
  } else {
    long before = sql_long(c, "SELECT count(*) FROM arraysync.changelog%s", "");
    CHECK(before == 14, "changelog %ld", before); /* with 'gone', before the streams */
    /* only one consumer acked: nothing purged */
    CHECK(A->ack(st, b.pos, &err) == AS_OK, "%s", err.message);
    /* ('gone', older than every consumer's window, may go) */
    CHECK(sql_long(c, "SELECT count(*) FROM arraysync.changelog%s", "") == 13, "kept for lite");
    poll_n(st2, &b2, 13, 10);
    CHECK(b2.n == 13, "lite got %zu", b2.n);
    /* a new change after both read: survives the purge */
    sql(c, "INSERT INTO t_origin.users VALUES ('late', 'l@x', 0, 0)");
    CHECK(A->ack(st2, b2.pos, &err) == AS_OK, "%s", err.message);
    /* purge horizon is the previous snapshot: ack again after a further (empty) window */
    as_batch_reset(&b);
    as_batch_reset(&b2);
    poll_n(st, &b, 1, 5);
    poll_n(st2, &b2, 1, 5);
    CHECK(b.n == 1 && b2.n == 1, "late change seen by both (%zu %zu)", b.n, b2.n);
    CHECK(A->ack(st, b.pos, &err) == AS_OK && A->ack(st2, b2.pos, &err) == AS_OK, "%s", err.message);
    long after = sql_long(c, "SELECT count(*) FROM arraysync.changelog%s", "");
    CHECK(after <= 1, "purged to %ld", after);
    as_batch_reset(&b);
    poll_n(st, &b, 0, 1);
    CHECK(A->ack(st, b.pos, &err) == AS_OK, "%s", err.message);
    as_batch_reset(&b2);
    poll_n(st2, &b2, 0, 1);
    CHECK(A->ack(st2, b2.pos, &err) == AS_OK, "%s", err.message);
    CHECK(sql_long(c, "SELECT count(*) FROM arraysync.changelog%s", "") == 0, "all purged");
  }
  char *ck = NULL;
  CHECK(A->checkpoint_load(n, "mongo->pg", &ck, &err) == AS_OK && ck && strcmp(ck, "ck1") == 0,
        "checkpoint");
  free(ck);
  CHECK(A->checkpoint_load(n, "nope", &ck, &err) == AS_ENOTFOUND, "no checkpoint");
  as_batch_clear(&b);
  as_batch_clear(&b2);
  free_deltas(d, 12);
  as_dead_list_clear(&dead);
  A->close_stream(st);
  A->close_stream(st2);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  PQfinish(c);
  as_schema_free(s);
}

static const char *TYPES_YAML =
    "mapping: alltypes\ncollection: alltypes\ntable: alltypes\nkey: id\ncolumns:\n"
    "  id:  { field: _id, type: int64 }\n"
    "  b:   { field: b, type: bool }\n"
    "  i:   { field: i, type: int64 }\n"
    "  d:   { field: d, type: double }\n"
    "  dec: { field: dec, type: numeric }\n"
    "  t:   { field: t, type: text }\n"
    "  by:  { field: by, type: bytes }\n"
    "  u:   { field: u, type: uuid }\n"
    "  o:   { field: o, type: objectid }\n"
    "  ts:  { field: ts, type: timestamptz }\n"
    "  dt:  { field: dt, type: date }\n"
    "  j:   { field: j, type: jsonb }\n";

/* Trigger capture with purge_interval: an ack within the interval of the last write is kept
 * pending; a poll that finds nothing writes it once it is due. */
static void t_ack_interval(void) {
  g_test = "ack_interval";
  if (g_logical) return; /* logical decoding: ack reports to the slot at once (origin_purge) */
  fresh_schema("t_ackiv");
  as_schema *s = schema_yaml(USERS_YAML);
  const as_schema *ss[1] = {s};
  node_h h;
  g_purge = "1000";
  as_node *n = make_node(&h, "pg", "t_ackiv", ss, 1, NULL);
  g_purge = "0";
  as_error err = {0};
  PGconn *c = outside();
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  as_stream *st = NULL;
  CHECK(A->open_stream(n, "ackiv", NULL, &st, &err) == AS_OK, "%s", err.message);
  as_batch b = {0};
  char *first = NULL;
  for (int round = 0; round < 2 && st; round++) {
    sql(c, "INSERT INTO t_ackiv.users VALUES ('a%d', 'e', 0, 0)", round);
    as_batch_reset(&b);
    poll_n(st, &b, 1, 10);
    CHECK(b.n == 1 && b.pos, "round %d: %zu deltas", round, b.n);
    if (!b.pos) break;
    int64_t t0 = as_monotonic_us();
    CHECK(A->ack(st, b.pos, &err) == AS_OK, "%s", err.message);
    const char *at = sql(c, "SELECT position FROM arraysync.consumers WHERE name = 'ackiv'");
    if (round == 0) { /* the first: written at once */
      CHECK(strcmp(at, b.pos) == 0, "position %s, acked %s", at, b.pos);
      first = strdup(b.pos);
    } else if (as_monotonic_us() - t0 < 1000000 && first) { /* pending (unless stalled) */
      CHECK(strcmp(at, first) == 0, "position %s, still %s", at, first);
    }
  }
  if (st && b.pos) {
    /* nothing to read for longer than the interval: the pending position is written */
    char *last = strdup(b.pos);
    as_batch_reset(&b);
    for (int i = 0; i < 3; i++) CHECK(A->poll(st, &b, 10, 500, &err) == AS_OK, "%s", err.message);
    CHECK(b.n == 0, "%zu deltas", b.n);
    const char *at = sql(c, "SELECT position FROM arraysync.consumers WHERE name = 'ackiv'");
    CHECK(last && strcmp(at, last) == 0, "position %s, acked %s", at, last ? last : "?");
    free(last);
  }
  free(first);
  as_batch_clear(&b);
  if (st) A->close_stream(st);
  PQfinish(c);
  A->exit(n);
  as_schema_free(s);
}

static void t_types(void) {
  g_test = "types";
  fresh_schema("t_types");
  as_schema *s = schema_yaml(TYPES_YAML);
  const as_schema *ss[1] = {s};
  node_h h;
  as_node *n = make_node(&h, "pg", "t_types", ss, 1, NULL);
  as_error err = {0};
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  as_stream *st = NULL;
  CHECK(A->open_stream(n, "reader", NULL, &st, &err) == AS_OK, "%s", err.message);
  enum { N = 20 };
  as_delta d[N] = {{0}};
  static const char *dbl[] = {"NaN", "Infinity", "-Infinity", "0.1", "-0", "1e308",
                              "5e-324", "3.141592653589793", "123456789012345680000", "-2.5"};
  for (int k = 0; k < N; k++) {
    char id[16], iv[32];
    snprintf(id, sizeof id, "%d", k + 1);
    snprintf(iv, sizeof iv, "%lld", k % 2 ? (long long)INT64_MIN + k : (long long)INT64_MAX - k);
    if (k == 3) { /* all nulls */
      mk_delta(&d[k], s, AS_OP_INSERT, "mongo", "id", id, "b", NULL, "i", NULL, "d", NULL, "dec",
               NULL, "t", NULL, "by", NULL, "u", NULL, "o", NULL, "ts", NULL, "dt", NULL, "j",
               NULL, NULL);
      continue;
    }
    mk_delta(&d[k], s, AS_OP_INSERT, "mongo", "id", id, "b", k % 2 ? "true" : "false", "i", iv,
             "d", dbl[k % 10], "dec", k % 3 ? "-12345678901234567890.123456789" : "0.50", "t",
             k % 2 ? "tab\there\nnew \\ line ünï 'q' \"dq\"" : "", "by",
             k % 2 ? "00ff5c0a0d09" : "", "u", "0123abcd-0000-4000-8000-00000000beef", "o",
             "65a1b2c3d4e5f60718293a4b", "ts",
             k % 2 ? "2024-01-01T10:00:00.123000Z" : "0001-01-01T00:00:00.000000Z", "dt",
             k % 2 ? "2024-02-29" : "9999-12-31", "j",
             k % 2 ? "{\"b\":[1,2.5,\"x\"],\"a\":{\"z\":null}}" : "[]", NULL);
  }
  as_dead_list dead = {0};
  /* first half through the COPY path (full inserts), second half as updates (statements) */
  CHECK(apply_batch(n, d, N / 2, &dead, NULL, NULL) == AS_OK, "apply copy path");
  for (int k = N / 2; k < N; k++) d[k].op = AS_OP_UPDATE;
  CHECK(apply_batch(n, d + N / 2, N / 2, &dead, NULL, NULL) == AS_OK, "apply statement path");
  CHECK(dead.n == 0, "dead %zu: %s", dead.n, dead.n ? dead.items[0].error : "");
  as_batch b = {0};
  poll_n(st, &b, N, 10);
  CHECK(b.n == N, "captured %zu", b.n);
  for (int k = 0; k < N && b.n == N; k++) {
    as_row got = {0};
    int rc = A->read_row(n, s, &d[k].row, &got, &err);
    CHECK(rc == AS_OK, "read_row %d: %s", k, err.message);
    for (size_t c = 0; rc == AS_OK && c < s->ncols; c++) {
      bool eq_read = as_value_equal(&got.v[c], &d[k].row.v[c]);
      bool eq_cap = as_value_equal(&b.d[k].row.v[c], &d[k].row.v[c]);
      char *w = val_text(&d[k].row, s, s->cols[c].name);
      char *g1 = val_text(&got, s, s->cols[c].name);
      char *g2 = val_text(&b.d[k].row, s, s->cols[c].name);
      CHECK(eq_read, "row %d col %s: read %s want %s", k, s->cols[c].name, g1, w);
      CHECK(eq_cap, "row %d col %s: captured %s want %s", k, s->cols[c].name, g2, w);
      free(w);
      free(g1);
      free(g2);
    }
    as_row_clear(&got);
  }
  /* read_row of a missing key */
  as_row key = {0}, got = {0};
  as_row_init(&key, s->ncols);
  set_text(&key, s, "id", "999");
  CHECK(A->read_row(n, s, &key, &got, &err) == AS_ENOTFOUND, "not found");
  as_row_clear(&key);
  as_row_clear(&got);
  /* snapshot: keyset pages of 7, then resume after a key */
  as_snapshot *sn = NULL;
  CHECK(A->snapshot_open(n, s, NULL, &sn, &err) == AS_OK, "%s", err.message);
  as_batch sb = {0};
  int rc, pages = 0;
  while ((rc = A->snapshot_next(sn, &sb, 7, &err)) == AS_OK) pages++;
  CHECK(rc == AS_EOF && sb.n == N && pages == 2, "snapshot %d rows %zu pages %d", rc, sb.n, pages);
  for (size_t k = 0; k + 1 < sb.n; k++) {
    CHECK(sb.d[k].row.v[0].u.i < sb.d[k + 1].row.v[0].u.i, "key order");
  }
  for (size_t k = 0; k < sb.n; k++) {
    size_t want = (size_t)sb.d[k].row.v[0].u.i - 1;
    for (size_t c = 0; c < s->ncols; c++) {
      CHECK(as_value_equal(&sb.d[k].row.v[c], &d[want].row.v[c]), "snapshot value %zu/%zu", k, c);
    }
  }
  CHECK(A->snapshot_estimate(sn) >= -1, "estimate");
  A->snapshot_close(sn);
  as_batch_reset(&sb);
  CHECK(A->snapshot_open(n, s, "{\"id\":15}", &sn, &err) == AS_OK, "%s", err.message);
  rc = A->snapshot_next(sn, &sb, 100, &err);
  CHECK(rc == AS_EOF && sb.n == 5 && sb.d[0].row.v[0].u.i == 16, "resume after 15: %zu", sb.n);
  A->snapshot_close(sn);
  as_batch_clear(&sb);
  as_batch_clear(&b);
  free_deltas(d, N);
  as_dead_list_clear(&dead);
  A->close_stream(st);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  as_schema_free(s);
}

static void t_identifiers(void) {
  g_test = "identifiers";
  fresh_schema("Schema \"X\" ü");
  static const char *yamls[4] = {
      "mapping: sel\ncollection: sel\ntable: select\nkey: [from, '\"Where\"']\ncolumns:\n"
      "  from:  { field: a, type: text }\n"
      "  '\"Where\"': { field: b, type: int64 }\n"
      "  \"it's\":  { field: c, type: text }\n",
      "mapping: weird\ncollection: weird\ntable: 'Weird \"Name\"'\nkey: 'k \"q\"'\ncolumns:\n"
      "  'k \"q\"': { field: _id, type: text }\n"
      "  'v; DROP TABLE x; --': { field: v, type: text }\n",
      "mapping: uni\ncollection: uni\ntable: ünïcødé\nkey: clé\ncolumns:\n"
      "  clé:   { field: _id, type: text }\n"
      "  värde: { field: v, type: jsonb }\n",
      /* backslashes and quotes in table and column names (literals in trigger bodies) */
      "mapping: bs\ncollection: bs\ntable: 'back\\sl''ash'\nkey: 'k\\e''y'\ncolumns:\n"
      "  'k\\e''y': { field: _id, type: text }\n"
      "  'v\\al': { field: v, type: text }\n"};
  as_schema *s[4];
  for (int i = 0; i < 4; i++) s[i] = schema_yaml(yamls[i]);
  const as_schema *ss[4] = {s[0], s[1], s[2], s[3]};
  node_h h;
  as_node *n = make_node(&h, "pg", "Schema \"X\" ü", ss, 4, NULL);
  as_error err = {0};
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  CHECK(A->install(n, &err) == AS_OK, "reinstall %s", err.message);
  as_stream *st = NULL;
  CHECK(A->open_stream(n, "reader", NULL, &st, &err) == AS_OK, "%s", err.message);
  as_delta d[4] = {{0}};
  mk_delta(&d[0], s[0], AS_OP_INSERT, "mongo", "from", "x", "\"Where\"", "1", "it's", "y", NULL);
  mk_delta(&d[1], s[1], AS_OP_INSERT, "mongo", "k \"q\"", "a'b", "v; DROP TABLE x; --", "v", NULL);
  mk_delta(&d[2], s[2], AS_OP_INSERT, "mongo", "clé", "ö", "värde", "{\"ä\":1}", NULL);
  mk_delta(&d[3], s[0], AS_OP_UPDATE, "mongo", "from", "x", "\"Where\"", "1", "it's", "z", NULL);
  as_dead_list dead = {0};
  CHECK(apply_batch(n, d, 4, &dead, "s", "c") == AS_OK, "apply");
  CHECK(dead.n == 0, "dead %zu %s", dead.n, dead.n ? dead.items[0].error : "");
  as_batch b = {0};
  poll_n(st, &b, 4, 10);
  CHECK(b.n == 4, "captured %zu", b.n);
  if (b.n == 4) {
    CHECK(b.d[0].schema == s[0] && b.d[1].schema == s[1] && b.d[2].schema == s[2], "mappings");
    CHECK(b.d[1].op == AS_OP_INSERT && col_is(&b.d[1].row, s[1], "v; DROP TABLE x; --", "v"),
          "insert");
    CHECK(b.d[3].op == AS_OP_UPDATE && col_is(&b.d[3].row, s[0], "it's", "z"), "update");
  }
  as_batch_reset(&b);
  PGconn *c = outside();
  sql(c, "DELETE FROM \"Schema \"\"X\"\" ü\".\"Weird \"\"Name\"\"\"");
  /* a writer whose session parses '\' in literals as an escape */
  sql(c, "SET standard_conforming_strings TO off; SET escape_string_warning TO off");
  sql(c, "INSERT INTO \"Schema \"\"X\"\" ü\".\"back\\sl'ash\" VALUES (E'k\\\\1', 'v')");
  sql(c, "SET standard_conforming_strings TO on");
  poll_n(st, &b, 2, 10);
  CHECK(b.n == 2, "captured %zu", b.n);
  if (b.n == 2) {
    CHECK(b.d[0].op == AS_OP_DELETE && b.d[0].schema == s[1] &&
              col_is(&b.d[0].row, s[1], "k \"q\"", "a'b"),
          "delete");
    CHECK(b.d[1].op == AS_OP_INSERT && b.d[1].schema == s[3] &&
              col_is(&b.d[1].row, s[3], "k\\e'y", "k\\1") && col_is(&b.d[1].row, s[3], "v\\al", "v"),
          "backslash names");
  }
  for (int i = 0; i < 3; i++) {
    as_row got = {0};
    int rc = A->read_row(n, s[i], &d[i].row, &got, &err);
    CHECK(i == 1 ? rc == AS_ENOTFOUND : rc == AS_OK, "read_row %d: %d", i, rc);
    as_row_clear(&got);
  }
  as_snapshot *sn = NULL;
  CHECK(A->snapshot_open(n, s[0], NULL, &sn, &err) == AS_OK, "%s", err.message);
  as_batch sb = {0};
  CHECK(A->snapshot_next(sn, &sb, 10, &err) == AS_EOF && sb.n == 1, "snapshot");
  as_batch_clear(&sb);
  A->snapshot_close(sn);
  as_batch_clear(&b);
  free_deltas(d, 4);
  as_dead_list_clear(&dead);
  A->close_stream(st);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  CHECK(sql_long(c, "SELECT count(*) FROM \"Schema \"\"X\"\" ü\".\"select\"%s", "") == 1, "data kept");
  A->exit(n);
  PQfinish(c);
  for (int i = 0; i < 4; i++) as_schema_free(s[i]);
}

static void t_dead(void) {
  g_test = "dead";
  fresh_schema("t_dead");
  as_schema *s = schema_yaml(USERS_YAML);
  const as_schema *ss[1] = {s};
  node_h h;
  as_node *n = make_node(&h, "pg", "t_dead", ss, 1, NULL);
  as_error err = {0};
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  PGconn *c = outside();
  sql(c, "ALTER TABLE t_dead.users ADD CONSTRAINT n_pos CHECK (n >= 0)");
  /* COPY path: 12 full inserts, #4 violates NOT NULL, #9 the check constraint */
  as_delta d[16] = {{0}};
  char id[16];
  for (int i = 0; i < 12; i++) {
    snprintf(id, sizeof id, "d%02d", i);
    mk_delta(&d[i], s, AS_OP_INSERT, "mongo", "id", id, "email", i == 4 ? NULL : "e", "n",
             i == 9 ? "-1" : "1", "score", "0", NULL);
  }
  /* statement path: update of d00 fine, update of d01 violating the check, delete d02 */
  mk_delta(&d[12], s, AS_OP_UPDATE, "mongo", "id", "d00", "n", "5", NULL);
  mk_delta(&d[13], s, AS_OP_UPDATE, "mongo", "id", "d01", "n", "-5", NULL);
  mk_delta(&d[14], s, AS_OP_DELETE, "mongo", "id", "d02", NULL);
  mk_delta(&d[15], s, AS_OP_UPDATE, "mongo", "id", "d03", "email", NULL, NULL);
  as_dead_list dead = {0};
  CHECK(apply_batch(n, d, 16, &dead, "m->pg", "ck") == AS_OK, "apply");
  CHECK(dead.n == 4, "4 dead, got %zu", dead.n);
  for (size_t i = 0; dead.n != 4 && i < dead.n; i++)
    fprintf(stderr, "  dead %zu: %s\n", dead.items[i].index, dead.items[i].error);
  if (dead.n == 4) {
    CHECK(dead.items[0].index == 4 && strstr(dead.items[0].error, "23502") &&
              strstr(dead.items[0].error, "d04"),
          "not null: %zu %s", dead.items[0].index, dead.items[0].error);
    CHECK(dead.items[1].index == 9 && strstr(dead.items[1].error, "n_pos"), "check: %s",
          dead.items[1].error);
    CHECK(dead.items[2].index == 13, "update check %zu", dead.items[2].index);
    CHECK(dead.items[3].index == 15, "update null %zu", dead.items[3].index);
    CHECK(dead.items[0].raw && strstr(dead.items[0].raw, "\"d04\"") && dead.items[0].key,
          "raw %s", dead.items[0].raw ? dead.items[0].raw : "");
  }
  CHECK(sql_long(c, "SELECT count(*) FROM t_dead.users%s", "") == 9, "9 rows");
  CHECK(sql_long(c, "SELECT n FROM t_dead.users WHERE id = %s", "'d00'") == 5, "update applied");
  CHECK(sql_long(c, "SELECT n FROM t_dead.users WHERE id = %s", "'d01'") == 1, "bad update not");
  char *ck = NULL;
  CHECK(A->checkpoint_load(n, "m->pg", &ck, &err) == AS_OK && strcmp(ck, "ck") == 0, "ck");
  free(ck);
  /* a second batch hitting existing keys: the staging upsert path */
  as_dead_list_clear(&dead);
  for (int i = 0; i < 12; i++) {
    as_value v;
    as_value_set_int64(&v, 100 + i);
    as_row_put(&d[i].row, 2, &v);
    if (i == 4) {
      as_value e = AS_VALUE_NULL;
      as_value_set_str(&e, AS_T_TEXT, "fixed", 5);
      as_row_put(&d[i].row, 1, &e);
    }
  }
  CHECK(apply_batch(n, d, 12, &dead, NULL, NULL) == AS_OK, "upsert batch");
  CHECK(dead.n == 0, "dead %zu", dead.n);
  CHECK(sql_long(c, "SELECT sum(n) FROM t_dead.users%s", "") == 12 * 100 + 66, "upserted");
  /* a batch with the same key twice */
  as_dead_list_clear(&dead);
  for (int i = 0; i < 12; i++) {
    snprintf(id, sizeof id, "d%02d", i % 6);
    as_value v;
    as_value_set_str(&v, AS_T_TEXT, id, strlen(id));
    as_row_put(&d[i].row, 0, &v);
  }
  CHECK(apply_batch(n, d, 12, &dead, NULL, NULL) == AS_OK, "dup keys");
  CHECK(dead.n == 0, "dead %zu", dead.n);
  CHECK(sql_long(c, "SELECT n FROM t_dead.users WHERE id = %s", "'d00'") == 106, "last wins");
  free_deltas(d, 16);
  /* an update with some columns changes an existing row only: no row -> reported missing */
  as_dead_list_clear(&dead);
  memset(d, 0, sizeof d);
  mk_delta(&d[0], s, AS_OP_UPDATE, "mongo", "id", "nope", "n", "5", NULL);
  mk_delta(&d[1], s, AS_OP_UPDATE, "mongo", "id", "d00", "n", "7", NULL);
  mk_delta(&d[2], s, AS_OP_UPDATE, "mongo", "id", "nope2", NULL); /* key only */
  mk_delta(&d[3], s, AS_OP_UPDATE, "mongo", "id", "full", "email", "f", "n", "1", "score", "1", NULL);
  CHECK(apply_batch(n, d, 4, &dead, NULL, NULL) == AS_OK, "missing batch");
  CHECK(dead.n == 2 && dead.items[0].missing && dead.items[0].index == 0 && dead.items[1].missing &&
            dead.items[1].index == 2,
        "missing: %zu", dead.n);
  CHECK(sql_long(c, "SELECT count(*) FROM t_dead.users WHERE id LIKE %s", "'nope%'") == 0, "no row made");
  CHECK(sql_long(c, "SELECT n FROM t_dead.users WHERE id = %s", "'d00'") == 7, "existing row updated");
  CHECK(sql_long(c, "SELECT count(*) FROM t_dead.users WHERE id = %s", "'full'") == 1, "whole-row update upserts");
  free_deltas(d, 4);
  as_dead_list_clear(&dead);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  PQfinish(c);
  as_schema_free(s);
}

static void t_retry(void) {
  g_test = "retry";
  fresh_schema("t_retry");
  as_schema *s = schema_yaml(USERS_YAML);
  const as_schema *ss[1] = {s};
  node_h h;
  as_node *n = make_node(&h, "pg", "t_retry", ss, 1, NULL);
  as_error err = {0};
  PGconn *c = outside();
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  as_delta d[1] = {{0}};
  mk_delta(&d[0], s, AS_OP_INSERT, "mongo", "id", "r", "email", "e", "n", "1", "score", "1", NULL);
  as_dead_list dead = {0};
  CHECK(A->begin(n, &err) == AS_OK, "%s", err.message);
  sql(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
         "AND datname = current_database() AND backend_type = 'client backend' "
         "AND state = 'idle in transaction'");
  int rc = A->apply(n, d, 1, &dead, &err);
  CHECK(rc == AS_RETRY, "apply after terminate: %d %s", rc, err.message);
  A->rollback(n);
  /* the engine retries: begin reconnects */
  CHECK(apply_batch(n, d, 1, &dead, "x", "1") == AS_OK, "retry works");
  CHECK(sql_long(c, "SELECT count(*) FROM t_retry.users%s", "") == 1, "applied");
  /* COMMIT refused (a deferred constraint): an error, nothing of the batch stays, not its
   * checkpoint either, and the next batch commits */
  sql(c, "CREATE FUNCTION t_retry.refuse() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN "
         "IF NEW.email = 'refused' THEN RAISE EXCEPTION 'refused at commit'; END IF; "
         "RETURN NULL; END $f$; "
         "CREATE CONSTRAINT TRIGGER refuse AFTER INSERT OR UPDATE ON t_retry.users "
         "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION t_retry.refuse()");
  as_delta r2[2] = {{0}};
  mk_delta(&r2[0], s, AS_OP_INSERT, "mongo", "id", "r2", "email", "refused", "n", "2", NULL);
  mk_delta(&r2[1], s, AS_OP_INSERT, "mongo", "id", "r3", "email", "fine", "n", "3", NULL);
  CHECK(A->begin(n, &err) == AS_OK, "%s", err.message);
  CHECK(A->apply(n, r2, 2, &dead, &err) == AS_OK, "%s", err.message);
  rc = A->commit(n, "x", "2", &err);
  CHECK(rc != AS_OK && strstr(err.message, "refused at commit"), "commit refused: %d %s", rc,
        err.message);
  A->rollback(n);
  CHECK(sql_long(c, "SELECT count(*) FROM t_retry.users%s", "") == 1, "nothing of it stayed");
  CHECK(sql_long(c, "SELECT count(*) FROM arraysync.checkpoints WHERE stream_id = 'x' AND "
                    "position = '1'%s", "") == 1, "the checkpoint before it stays");
  CHECK(apply_batch(n, &r2[1], 1, &dead, "x", "3") == AS_OK, "the next batch commits");
  CHECK(sql_long(c, "SELECT count(*) FROM arraysync.checkpoints WHERE stream_id = 'x' AND "
                    "position = '3'%s", "") == 1, "with its checkpoint");
  /* the connection lost between the batch and its commit: retry, nothing committed */
  as_delta_clear(&r2[0]);
  mk_delta(&r2[0], s, AS_OP_INSERT, "mongo", "id", "r4", "email", "e4", "n", "4", NULL);
  CHECK(A->begin(n, &err) == AS_OK, "%s", err.message);
  CHECK(A->apply(n, r2, 1, &dead, &err) == AS_OK, "%s", err.message);
  sql(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
         "AND datname = current_database() AND backend_type = 'client backend' "
         "AND state = 'idle in transaction'");
  usleep(100000);
  rc = A->commit(n, "x", "4", &err);
  CHECK(rc == AS_RETRY, "commit after terminate: %d %s", rc, err.message);
  A->rollback(n);
  CHECK(sql_long(c, "SELECT count(*) FROM t_retry.users WHERE id = 'r4'%s", "") == 0,
        "not committed");
  CHECK(apply_batch(n, r2, 1, &dead, "x", "4") == AS_OK, "retry works");
  CHECK(sql_long(c, "SELECT count(*) FROM t_retry.users%s", "") == 3, "r, r3, r4");
  free_deltas(r2, 2);
  /* a stream whose connection dies */
  as_stream *st = NULL;
  CHECK(A->open_stream(n, "reader", NULL, &st, &err) == AS_OK, "%s", err.message);
  sql(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s",
      "'arraysync source:%'");
  as_batch b = {0};
  usleep(100000);
  rc = A->poll(st, &b, 10, 100, &err);
  CHECK(rc == AS_RETRY, "poll after terminate: %d %s", rc, err.message);
  as_batch_clear(&b);
  A->close_stream(st);
  free_deltas(d, 1);
  as_dead_list_clear(&dead);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  PQfinish(c);
  as_schema_free(s);
}

/* A child applies batches of 500 rows with checkpoint "k" after batch k, and is killed. */
static void t_kill(void) {
  g_test = "kill";
  fresh_schema("t_kill");
  as_schema *s = schema_yaml(USERS_YAML);
  const as_schema *ss[1] = {s};
  node_h h;
  as_node *n = make_node(&h, "pg", "t_kill", ss, 1, NULL);
  as_error err = {0};
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  PGconn *c = outside();
  enum { B = 500 };
  for (int round = 0; round < 4; round++) {
    sql(c, "TRUNCATE t_kill.users; DELETE FROM arraysync.checkpoints");
    pid_t pid = fork();
    if (pid == 0) {
      as_node *cn = NULL;
      as_error e = {0};
      if (A->init(&h.cfg, ss, 1, &cn, &e) != AS_OK || A->connect(cn, &e) != AS_OK) _exit(3);
      as_delta d[B];
      as_dead_list dl = {0};
      for (int k = 1; k < 100000; k++) {
        char id[32], ck[32];
        for (int i = 0; i < B; i++) {
          snprintf(id, sizeof id, "r%d", (k - 1) * B + i);
          memset(&d[i], 0, sizeof d[i]);
          /* alternate the COPY path and the statement path */
          mk_delta(&d[i], s, k % 2 ? AS_OP_INSERT : AS_OP_UPDATE, "mongo", "id", id, "email",
                   "e", "n", "1", "score", "1", NULL);
        }
        snprintf(ck, sizeof ck, "%d", k);
        if (A->begin(cn, &e) || A->apply(cn, d, B, &dl, &e) || A->commit(cn, "k", ck, &e))
          _exit(4);
        free_deltas(d, B);
      }
      _exit(0);
    }
    /* wait for some progress, then kill at a point that varies per round */
    for (int i = 0; i < 500; i++) {
      const char *v = sql(c, "SELECT coalesce((SELECT position FROM arraysync.checkpoints WHERE stream_id = 'k'), '0')");
      if (v && atoi(v) >= 1 + round) break;
      usleep(10000);
    }
    usleep((useconds_t)(round * 7000));
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status), "child killed (status %d)", status);
    usleep(100000); /* let the server notice the dead client and abort its transaction */
    char *ck = NULL;
    int rc = A->checkpoint_load(n, "k", &ck, &err);
    long rows = sql_long(c, "SELECT count(*) FROM t_kill.users%s", "");
    CHECK(rc == AS_OK && ck, "checkpoint: %s", err.message);
    if (ck) CHECK(rows == (long)atoi(ck) * B, "round %d: rows %ld, checkpoint %s", round, rows, ck);
    free(ck);
  }
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  PQfinish(c);
  as_schema_free(s);
}

/* TRUNCATE: on_truncate stop / ignore / propagate on capture, truncate deltas applied (and
 * TRUNCATE refused -> DELETE), and writes marked with the local-only origin "-" left out. */
static const char *TRUNC_YAML =
    "mapping: %s\ncollection: %s\ntable: %s\nkey: id\n%scolumns:\n"
    "  id: { field: _id, type: text }\n"
    "  v:  { field: v, type: text }\n";

static as_schema *trunc_schema(const char *name, const char *opt) {
  char y[512];
  snprintf(y, sizeof y, TRUNC_YAML, name, name, name, opt);
  return schema_yaml(y);
}

static void t_truncate_local(void) {
  g_test = "truncate_local";
  fresh_schema("t_trunc");
  as_schema *s[3] = {trunc_schema("tr_stop", ""), trunc_schema("tr_prop", "on_truncate: propagate\n"),
                     trunc_schema("tr_ign", "on_truncate: ignore\n")};
  const as_schema *ss[3] = {s[0], s[1], s[2]};
  node_h h;
  as_node *n = make_node(&h, "pg", "t_trunc", ss, 3, NULL);
  as_error err = {0};
  PGconn *c = outside();
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  as_stream *st = NULL;
  CHECK(A->open_stream(n, "reader", NULL, &st, &err) == AS_OK, "%s", err.message);
  sql(c, "INSERT INTO t_trunc.tr_stop VALUES ('a', 'x'); INSERT INTO t_trunc.tr_prop VALUES ('a', 'x');"
         " INSERT INTO t_trunc.tr_ign VALUES ('a', 'x')");
  as_batch b = {0};
  poll_n(st, &b, 3, 10);
  CHECK(b.n == 3, "inserts %zu", b.n);
  as_batch_reset(&b);
  /* ignore: a warning, no delta; what follows flows */
  sql(c, "TRUNCATE t_trunc.tr_ign; INSERT INTO t_trunc.tr_ign VALUES ('after', 'y')");
  poll_n(st, &b, 1, 10);
  CHECK(b.n == 1 && b.d[0].op == AS_OP_INSERT && col_is(&b.d[0].row, s[2], "id", "after"),
        "ignore: %zu", b.n);
  as_batch_reset(&b);
  /* propagate: a truncate delta without key */
  sql(c, "TRUNCATE t_trunc.tr_prop");
  poll_n(st, &b, 1, 10);
  CHECK(b.n == 1 && b.d[0].op == AS_OP_TRUNCATE && b.d[0].schema == s[1] && present(&b.d[0].row) == 0 &&
            !b.d[0].echo && strcmp(b.d[0].origin, "pg") == 0,
        "propagate: %zu op %d", b.n, b.n ? (int)b.d[0].op : 0);
  as_batch_reset(&b);
  /* apply a truncate (marked with its origin): TRUNCATE, captured as an echo */
  sql(c, "INSERT INTO t_trunc.tr_prop VALUES ('b', 'x'), ('c', 'x')");
  poll_n(st, &b, 2, 10);
  as_batch_reset(&b);
  as_delta d[5] = {{0}};
  as_delta_init(&d[0], s[1], AS_OP_TRUNCATE);
  as_delta_set_origin(&d[0], "mongo");
  as_dead_list dead = {0};
  CHECK(apply_batch(n, d, 1, &dead, "m->pg", "1") == AS_OK && dead.n == 0, "apply truncate");
  CHECK(sql_long(c, "SELECT count(*) FROM t_trunc.tr_prop%s", "") == 0, "emptied");
  poll_n(st, &b, 1, 10);
  CHECK(b.n == 1 && b.d[0].op == AS_OP_TRUNCATE && b.d[0].echo && strcmp(b.d[0].origin, "mongo") == 0,
        "truncate echo: %zu", b.n);
  as_batch_reset(&b);
  /* a table TRUNCATE refuses (a foreign key points at it): every row deleted instead */
  sql(c, "INSERT INTO t_trunc.tr_prop VALUES ('d', 'x'), ('e', 'x'); "
         "CREATE TABLE t_trunc.child (p text REFERENCES t_trunc.tr_prop(id))");
  poll_n(st, &b, 2, 10);
  as_batch_reset(&b);
  CHECK(apply_batch(n, d, 1, &dead, "m->pg", "2") == AS_OK && dead.n == 0, "apply truncate (fk)");
  CHECK(sql_long(c, "SELECT count(*) FROM t_trunc.tr_prop%s", "") == 0, "emptied by DELETE");
  poll_n(st, &b, 2, 10);
  CHECK(b.n == 2 && b.d[0].op == AS_OP_DELETE && b.d[0].echo && strcmp(b.d[0].origin, "mongo") == 0,
        "deletes captured as echoes: %zu", b.n);
  as_batch_reset(&b);
  as_delta_clear(&d[0]);
  /* the local-only origin: insert, update, delete, truncate, none captured */
  long cl = g_logical ? 0 : sql_long(c, "SELECT count(*) FROM arraysync.changelog%s", "");
  mk_delta(&d[0], s[0], AS_OP_INSERT, AS_ORIGIN_LOCAL_ONLY, "id", "l1", "v", "x", NULL);
  mk_delta(&d[1], s[0], AS_OP_INSERT, AS_ORIGIN_LOCAL_ONLY, "id", "l2", "v", "x", NULL);
  mk_delta(&d[2], s[0], AS_OP_UPDATE, AS_ORIGIN_LOCAL_ONLY, "id", "a", "v", "y", NULL);
  mk_delta(&d[3], s[0], AS_OP_DELETE, AS_ORIGIN_LOCAL_ONLY, "id", "l2", NULL);
  as_delta_init(&d[4], s[2], AS_OP_TRUNCATE);
  as_delta_set_origin(&d[4], AS_ORIGIN_LOCAL_ONLY);
  CHECK(apply_batch(n, d, 5, &dead, "m->pg", "3") == AS_OK && dead.n == 0, "apply local-only");
  CHECK(sql_long(c, "SELECT count(*) FROM t_trunc.tr_stop%s", "") == 2 &&
            sql_long(c, "SELECT count(*) FROM t_trunc.tr_ign%s", "") == 0,
        "local-only writes applied");
  sql(c, "INSERT INTO t_trunc.tr_ign VALUES ('mark', 'z')"); /* a local write after them */
  poll_n(st, &b, 1, 10);
  CHECK(b.n == 1 && col_is(&b.d[0].row, s[2], "id", "mark"), "local-only left out: %zu", b.n);
  if (!g_logical)
    CHECK(sql_long(c, "SELECT count(*) FROM arraysync.changelog%s", "") == cl + 1,
          "nothing of them in the changelog");
  as_batch_reset(&b);
  free_deltas(d, 5);
  /* stop (the default): the stream stops with a message naming the table and the way out */
  char *before = NULL;
  A->stream_position(st, &before, &err);
  sql(c, "TRUNCATE t_trunc.tr_stop");
  int rc = AS_OK;
  for (int i = 0; i < 20 && rc == AS_OK; i++) rc = A->poll(st, &b, 100, 200, &err);
  CHECK(rc == AS_ERR && strstr(err.message, "\"t_trunc\".\"tr_stop\" was truncated") &&
            strstr(err.message, "on_truncate: stop") && strstr(err.message, "test.yaml:1:1"),
        "stop: %d %s", rc, err.message);
  A->close_stream(st);
  st = NULL;
  /* resumed from before, it stops again: nothing is skipped */
  CHECK(A->open_stream(n, "reader", before, &st, &err) == AS_OK, "%s", err.message);
  rc = AS_OK;
  as_batch_reset(&b);
  for (int i = 0; i < 20 && rc == AS_OK; i++) rc = A->poll(st, &b, 100, 200, &err);
  CHECK(rc == AS_ERR && strstr(err.message, "on_truncate: stop"), "stop again: %d", rc);
  free(before);
  as_batch_clear(&b);
  as_dead_list_clear(&dead);
  A->close_stream(st);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  PQfinish(c);
  for (int i = 0; i < 3; i++) as_schema_free(s[i]);
}

/* A text value with a NUL byte: a dead letter naming the column, never a truncated value. */
static void t_nul(void) {
  g_test = "nul";
  fresh_schema("t_nul");
  as_schema *s = schema_yaml(USERS_YAML);
  const as_schema *ss[1] = {s};
  node_h h;
  as_node *n = make_node(&h, "pg", "t_nul", ss, 1, NULL);
  as_error err = {0};
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  PGconn *c = outside();
  as_delta d[11] = {{0}};
  char id[16];
  for (int i = 0; i < 10; i++) { /* full inserts: the COPY path */
    snprintf(id, sizeof id, "n%02d", i);
    mk_delta(&d[i], s, AS_OP_INSERT, "mongo", "id", id, "email", "e", "n", "1", "score", "1", NULL);
  }
  as_value v;
  as_value_set_str(&v, AS_T_TEXT, "a\0b", 3);
  as_row_put(&d[3].row, 1, &v);
  mk_delta(&d[10], s, AS_OP_UPDATE, "mongo", "id", "n00", "email", "x", NULL); /* statements */
  as_value_set_str(&v, AS_T_TEXT, "c\0d", 3);
  as_row_put(&d[10].row, 1, &v);
  as_dead_list dead = {0};
  CHECK(apply_batch(n, d, 11, &dead, "m->pg", "1") == AS_OK, "apply");
  CHECK(dead.n == 2, "2 dead, got %zu", dead.n);
  if (dead.n == 2) {
    CHECK(dead.items[0].index == 3 && strstr(dead.items[0].error, "column \"email\"") &&
              strstr(dead.items[0].error, "NUL byte") && strstr(dead.items[0].error, "n03"),
          "copy path: %s", dead.items[0].error);
    CHECK(dead.items[1].index == 10 && strstr(dead.items[1].error, "column \"email\"") &&
              strstr(dead.items[1].error, "NUL byte"),
          "statement path: %s", dead.items[1].error);
  }
  CHECK(sql_long(c, "SELECT count(*) FROM t_nul.users WHERE id = %s", "'n03'") == 0, "not stored");
  CHECK(strcmp(sql(c, "SELECT email FROM t_nul.users WHERE id = 'n00'"), "e") == 0, "not truncated");
  CHECK(sql_long(c, "SELECT count(*) FROM t_nul.users%s", "") == 9, "the rest applied");
  free_deltas(d, 11);
  as_dead_list_clear(&dead);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  PQfinish(c);
  as_schema_free(s);
}

/* A user's table whose key is an identity column GENERATED ALWAYS: the rows other nodes send
 * keep their keys on every write path (a single insert, an update, a run of inserts). */
static void t_identity(void) {
  g_test = "identity";
  fresh_schema("t_ident");
  PGconn *c = outside();
  sql(c, "CREATE SCHEMA t_ident");
  sql(c, "CREATE TABLE t_ident.items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
         "name text)");
  sql(c, "INSERT INTO t_ident.items (name) VALUES ('own')"); /* id 1 */
  as_schema *s = schema_yaml("mapping: items\ncollection: items\ntable: items\nkey: id\n"
                             "columns:\n  id: { field: _id, type: int64 }\n"
                             "  name: { field: name, type: text }\n");
  const as_schema *ss[1] = {s};
  node_h h;
  as_node *n = make_node(&h, "pg", "t_ident", ss, 1, NULL);
  as_error err = {0};
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  enum { NRUN = 100 };
  as_delta d[2 + NRUN] = {{0}};
  mk_delta(&d[0], s, AS_OP_INSERT, "mongo", "id", "1000", "name", "one", NULL);
  mk_delta(&d[1], s, AS_OP_UPDATE, "mongo", "id", "1", "name", "own2", NULL);
  as_dead_list dead = {0};
  CHECK(apply_batch(n, d, 2, &dead, "m->pg", "1") == AS_OK && dead.n == 0,
        "insert and update: %zu dead (%s)", dead.n, dead.n ? dead.items[0].error : "");
  as_dead_list_clear(&dead);
  char id[16];
  for (int i = 0; i < NRUN; i++) {
    snprintf(id, sizeof id, "%d", 2000 + i);
    mk_delta(&d[2 + i], s, AS_OP_INSERT, "mongo", "id", id, "name", "run", NULL);
  }
  CHECK(apply_batch(n, d + 2, NRUN, &dead, "m->pg", "2") == AS_OK && dead.n == 0,
        "a run of inserts: %zu dead (%s)", dead.n, dead.n ? dead.items[0].error : "");
  CHECK(strcmp(sql(c, "SELECT name FROM t_ident.items WHERE id = 1000"), "one") == 0 &&
            strcmp(sql(c, "SELECT name FROM t_ident.items WHERE id = 1"), "own2") == 0 &&
            sql_long(c, "SELECT count(*) FROM t_ident.items WHERE name = %s", "'run'") == NRUN,
        "rows with their keys");
  free_deltas(d, 2 + NRUN);
  as_dead_list_clear(&dead);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  PQfinish(c);
  as_schema_free(s);
}

/* Connection failures nobody can fix by waiting are AS_EINVAL; a server not there AS_RETRY. */
static int try_connect(const char *dsn, as_error *err) {
  as_schema *s = schema_yaml(USERS_YAML);
  const as_schema *ss[1] = {s};
  as_node_option o[2] = {{.key = "dsn", .value = (char *)dsn}, {.key = "capture", .value = (char *)g_capture}};
  as_node_config cfg = {.name = "pg", .kind = "postgres", .opts = o, .nopts = 2};
  as_node *n = NULL;
  int rc = A->init(&cfg, ss, 1, &n, err);
  if (rc == AS_OK) rc = A->connect(n, err);
  A->exit(n);
  as_schema_free(s);
  return rc;
}

static void t_connect(void) {
  g_test = "connect";
  PGconn *c = outside();
  PQconninfoOption *ci = PQconninfoParse(g_dsn, NULL);
  const char *host = "127.0.0.1", *port = "5432";
  for (PQconninfoOption *o = ci; o && o->keyword; o++) {
    if (strcmp(o->keyword, "port") == 0 && o->val) port = o->val;
    if (strcmp(o->keyword, "host") == 0 && o->val) host = o->val;
  }
  char dsn[512];
  as_error err = {0};
  snprintf(dsn, sizeof dsn, "host=%s port=%s user=postgres dbname=no_such_db", host, port);
  int rc = try_connect(dsn, &err);
  CHECK(rc == AS_EINVAL && strstr(err.message, "no_such_db"), "unknown database: %d %s", rc, err.message);
  snprintf(dsn, sizeof dsn, "host=%s port=%s user=postgres dbname=postgres sslmode=bogus", host, port);
  rc = try_connect(dsn, &err);
  CHECK(rc == AS_EINVAL && strstr(err.message, "sslmode"), "sslmode=bogus: %d %s", rc, err.message);
  sql(c, "DROP ROLE IF EXISTS arraysync_pw");
  sql(c, "CREATE ROLE arraysync_pw LOGIN PASSWORD 'right'");
  snprintf(dsn, sizeof dsn, "host=%s port=%s user=arraysync_pw password=wrong dbname=postgres", host, port);
  rc = try_connect(dsn, &err);
  CHECK(rc == AS_EINVAL && strstr(err.message, "password"), "wrong password: %d %s", rc, err.message);
  CHECK(!strstr(err.message, "wrong"), "password not in the message: %s", err.message);
  snprintf(dsn, sizeof dsn, "host=%s port=%s user=arraysync_pw password=right dbname=postgres", host, port);
  rc = try_connect(dsn, &err);
  CHECK(rc == AS_OK || (g_logical && rc == AS_EINVAL && strstr(err.message, "REPLICATION")),
        "right password: %d %s", rc, err.message);
  snprintf(dsn, sizeof dsn, "host=%s port=1 user=postgres dbname=postgres connect_timeout=2", host);
  rc = try_connect(dsn, &err);
  CHECK(rc == AS_RETRY, "connection refused: %d %s", rc, err.message);
  sql(c, "DROP ROLE arraysync_pw");
  PQconninfoFree(ci);
  PQfinish(c);
}

/* check_capture: missing capture objects are found and, where nothing is lost, put back. */
static void t_check_capture(void) {
  g_test = "check_capture";
  fresh_schema("t_check");
  as_schema *s = schema_yaml(USERS_YAML);
  const as_schema *ss[1] = {s};
  node_h h;
  char *cons[1] = {"reader"};
  as_node *n = make_node_consumers(&h, "pg", "t_check", ss, 1, cons, 1);
  A->exit(n);
  g_node_opt[0] = "capture_triggers"; /* row level: the update trigger depends on the columns */
  g_node_opt[1] = "row";
  n = make_node_consumers(&h, "pg", "t_check", ss, 1, cons, 1);
  g_node_opt[0] = g_node_opt[1] = NULL;
  as_error err = {0};
  PGconn *c = outside();
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  CHECK(A->check_capture(n, false, &err) == AS_OK, "all there: %s", err.message);
  int rc;
  if (!g_logical) {
    sql(c, "DROP TRIGGER arraysync_upd ON t_check.users");
    rc = A->check_capture(n, false, &err);
    CHECK(rc == AS_ENOTFOUND && strstr(err.message, "\"t_check\".\"users\" (arraysync_upd)"),
          "missing trigger: %d %s", rc, err.message);
    CHECK(A->check_capture(n, true, &err) == AS_OK, "repair: %s", err.message);
    CHECK(ntriggers(c, "t_check.users", "") == 5, "trigger back");
    /* a disabled trigger is a missing one: repair enables it again (install leaves triggers
     * made by the same SQL alone, a disabled one is not one of them) */
    sql(c, "ALTER TABLE t_check.users DISABLE TRIGGER arraysync_ins");
    rc = A->check_capture(n, false, &err);
    CHECK(rc == AS_ENOTFOUND && strstr(err.message, "arraysync_ins"), "disabled trigger: %d %s", rc, err.message);
    CHECK(A->check_capture(n, true, &err) == AS_OK, "repair: %s", err.message);
    CHECK(A->check_capture(n, false, &err) == AS_OK, "enabled again: %s", err.message);
    /* DROP COLUMN ... CASCADE takes the update trigger with it */
    sql(c, "ALTER TABLE t_check.users DROP COLUMN score CASCADE");
    rc = A->check_capture(n, false, &err);
    CHECK(rc == AS_ENOTFOUND && strstr(err.message, "arraysync_upd"), "cascade: %d %s", rc, err.message);
    rc = A->check_capture(n, true, &err);
    CHECK(rc == AS_EINVAL && strstr(err.message, "column \"score\" is missing"),
          "repair names the column: %d %s", rc, err.message);
    sql(c, "ALTER TABLE t_check.users ADD COLUMN score double precision");
    CHECK(A->check_capture(n, true, &err) == AS_OK, "repair: %s", err.message);
    CHECK(ntriggers(c, "t_check.users", "") == 5, "triggers back");
  } else {
    char q[256];
    snprintf(q, sizeof q, "%s", sql(c, "SELECT pubname FROM pg_publication WHERE pubname LIKE 'arraysync_pg_%%'"));
    sql(c, "ALTER PUBLICATION %s DROP TABLE t_check.users", q);
    rc = A->check_capture(n, false, &err);
    CHECK(rc == AS_ENOTFOUND && strstr(err.message, "\"t_check\".\"users\""), "table left the publication: %d %s", rc,
          err.message);
    CHECK(A->check_capture(n, true, &err) == AS_OK, "repair: %s", err.message);
    sql(c, "DROP PUBLICATION %s", q);
    rc = A->check_capture(n, false, &err);
    CHECK(rc == AS_ENOTFOUND && strstr(err.message, "publication"), "publication gone: %d %s", rc, err.message);
    CHECK(A->check_capture(n, true, &err) == AS_OK, "repair: %s", err.message);
    CHECK(sql_long(c, "SELECT count(*) FROM pg_publication_tables WHERE pubname = '%s'", q) == 2, "back");
    sql(c, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE %s",
        "'as_pg_%reader%'");
    rc = A->check_capture(n, true, &err);
    CHECK(rc == AS_ENOTFOUND && strstr(err.message, "replication slot") && strstr(err.message, "of reader (missing)"),
          "a lost slot is reported, not recreated: %d %s", rc, err.message);
  }
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  PQfinish(c);
  as_schema_free(s);
}

/* A stream that cannot resume: slot dropped, checkpoint of the other capture mode, a
 * checkpoint behind the slot. fail: AS_ERR naming the slot; resnapshot: AS_ERESNAPSHOT. */
static void t_history(void) {
  g_test = "history";
  fresh_schema("t_hist");
  as_schema *s = schema_yaml(USERS_YAML);
  const as_schema *ss[1] = {s};
  node_h h;
  as_node *n = make_node(&h, "pg", "t_hist", ss, 1, NULL);
  as_error err = {0};
  PGconn *c = outside();
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  as_stream *st = NULL;
  CHECK(A->open_stream(n, "reader", NULL, &st, &err) == AS_OK, "%s", err.message);
  sql(c, "INSERT INTO t_hist.users VALUES ('a', 'a@x', 1, 1)");
  as_batch b = {0};
  poll_n(st, &b, 1, 10);
  CHECK(b.n == 1 && b.pos, "insert %zu", b.n);
  char *pos = b.pos ? strdup(b.pos) : strdup("");
  CHECK(A->ack(st, pos, &err) == AS_OK, "%s", err.message);
  A->close_stream(st);
  st = NULL;
  /* the other capture mode's checkpoint */
  const char *other = g_logical ? "v1|10:10:|10:10:|5" : "0/16B3748";
  int rc = A->open_stream(n, "reader", other, &st, &err);
  CHECK(rc == AS_ERR && strstr(err.message, "capture mode changed") && strstr(err.message, "--resnapshot"),
        "mode changed: %d %s", rc, err.message);
  if (g_logical) {
    /* a checkpoint older than the slot */
    rc = A->open_stream(n, "reader", "0/1", &st, &err);
    CHECK(rc == AS_ERR && strstr(err.message, "past the checkpoint"), "behind the slot: %d %s", rc, err.message);
    sql(c, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE %s",
        "'as_pg_%reader%'");
    rc = A->open_stream(n, "reader", pos, &st, &err);
    CHECK(rc == AS_ERR && strstr(err.message, "replication slot as_pg_") &&
              strstr(err.message, "does not exist") && !st,
          "slot gone: %d %s", rc, err.message);
    A->exit(n);
    g_node_opt[0] = "on_history_lost";
    g_node_opt[1] = "resnapshot";
    n = make_node(&h, "pg", "t_hist", ss, 1, NULL);
    g_node_opt[0] = g_node_opt[1] = NULL;
    rc = A->open_stream(n, "reader", pos, &st, &err);
    CHECK(rc == AS_ERESNAPSHOT && strstr(err.message, "does not exist"), "resnapshot: %d %s", rc, err.message);
  }
  /* a mapped column renamed: capture stops naming it */
  CHECK(A->open_stream(n, "reader", NULL, &st, &err) == AS_OK, "%s", err.message);
  poll_n(st, &b, 0, 1);
  if (!g_logical) sql(c, "INSERT INTO t_hist.users VALUES ('c', 'c@x', 1, 1)"); /* logged before */
  sql(c, "ALTER TABLE t_hist.users RENAME COLUMN email TO mail");
  if (g_logical) {
    sql(c, "INSERT INTO t_hist.users VALUES ('b', 'b@x', 1, 1)");
    rc = AS_OK;
    as_batch_reset(&b);
    for (int i = 0; i < 20 && rc == AS_OK && b.n == 0; i++) rc = A->poll(st, &b, 100, 200, &err);
    CHECK(rc == AS_ERR && strstr(err.message, "column \"email\"") && strstr(err.message, "mapping users"),
          "renamed column: %d %s", rc, err.message);
  } else {
    /* the triggers carry the values they name: a change logged before the rename is read
     * whole; a writer's insert after it fails, naming the column, until install runs again */
    as_batch_reset(&b);
    poll_n(st, &b, 1, 20);
    CHECK(b.n == 1 && col_is(&b.d[0].row, s, "email", "c@x"), "logged before the rename: %zu", b.n);
    PGresult *r = PQexec(c, "INSERT INTO t_hist.users VALUES ('b', 'b@x', 1, 1)");
    CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR && strstr(PQresultErrorMessage(r), "email"),
          "a writer's insert names the renamed column: %s", PQresultErrorMessage(r));
    PQclear(r);
  }
  A->close_stream(st);
  sql(c, "ALTER TABLE t_hist.users RENAME COLUMN mail TO email");
  as_batch_clear(&b);
  free(pos);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  PQfinish(c);
  as_schema_free(s);
}

/* Unchanged TOAST values (logical: not in the change) and REPLICA IDENTITY FULL. */
static void t_toast(void) {
  g_test = "toast";
  fresh_schema("t_toast");
  as_schema *s = schema_yaml("mapping: big\ncollection: big\ntable: big\nkey: id\ncolumns:\n"
                             "  id:  { field: _id, type: text }\n"
                             "  big: { field: big, type: text }\n"
                             "  n:   { field: n, type: int64 }\n");
  const as_schema *ss[1] = {s};
  node_h h;
  as_node *n = make_node(&h, "pg", "t_toast", ss, 1, NULL);
  as_error err = {0};
  PGconn *c = outside();
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  sql(c, "ALTER TABLE t_toast.big ADD COLUMN other text");
  as_stream *st = NULL;
  CHECK(A->open_stream(n, "reader", NULL, &st, &err) == AS_OK, "%s", err.message);
  sql(c, "INSERT INTO t_toast.big SELECT 'k1', string_agg(md5(i::text), ''), 1 FROM generate_series(1, 2000) i");
  long biglen = sql_long(c, "SELECT length(big) FROM t_toast.big%s", "");
  char toast[256];
  snprintf(toast, sizeof toast, "%s", sql(c, "SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = 't_toast.big'::regclass"));
  CHECK(sql_long(c, "SELECT count(*) FROM %s", toast) > 0, "the value is stored out of line (%s)", toast);
  as_batch b = {0};
  poll_n(st, &b, 1, 10);
  as_batch_reset(&b);
  sql(c, "UPDATE t_toast.big SET n = 2");
  poll_n(st, &b, 1, 10);
  CHECK(b.n == 1 && b.d[0].op == AS_OP_UPDATE && col_is(&b.d[0].row, s, "n", "2"), "update %zu", b.n);
  if (b.n == 1) {
    char *t = val_text(&b.d[0].row, s, "big");
    CHECK(strcmp(t, "<absent>") == 0, "unchanged TOAST value left out (not NULL): %.20s", t);
    free(t);
  }
  as_batch_reset(&b);
  sql(c, "UPDATE t_toast.big SET id = 'k2'"); /* key change: the insert needs every column */
  poll_n(st, &b, 2, 10);
  size_t ins = b.n == 2 && b.d[1].op == AS_OP_INSERT ? 1 : 0;
  CHECK(b.n == 2 && b.d[ins].op == AS_OP_INSERT && present(&b.d[ins].row) == 3, "key change %zu", b.n);
  if (b.n == 2) {
    char *t = val_text(&b.d[ins].row, s, "big");
    CHECK((long)strlen(t) == biglen, "big value read back: %zu of %ld", strlen(t), biglen);
    free(t);
  }
  as_batch_reset(&b);
  if (g_logical) {
    /* REPLICA IDENTITY FULL: the changed columns only; no delta when none of them is mapped */
    sql(c, "ALTER TABLE t_toast.big REPLICA IDENTITY FULL");
    sql(c, "UPDATE t_toast.big SET other = 'zz'");
    sql(c, "UPDATE t_toast.big SET n = 3");
    poll_n(st, &b, 1, 10);
    CHECK(b.n == 1 && present(&b.d[0].row) == 2 && col_is(&b.d[0].row, s, "n", "3"),
          "identity full: %zu deltas, %zu present", b.n, b.n ? present(&b.d[0].row) : 0);
    as_batch_reset(&b);
  }
  as_batch_clear(&b);
  A->close_stream(st);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  PQfinish(c);
  as_schema_free(s);
}

/* A role that is not superuser: echoes through origin marks (logical: REPLICATION role);
 * without REPLICATION, auto capture falls back to triggers and logical is refused. */
static void t_nosuper(void) {
  g_test = "nosuper";
  fresh_schema("t_nosu");
  PGconn *c = outside();
  sql(c, "DROP ROLE IF EXISTS arraysync_nosu");
  sql(c, "DROP ROLE IF EXISTS arraysync_norepl");
  sql(c, "CREATE ROLE arraysync_nosu LOGIN REPLICATION");
  sql(c, "CREATE ROLE arraysync_norepl LOGIN");
  sql(c, "GRANT CREATE ON DATABASE postgres TO arraysync_nosu, arraysync_norepl");
  sql(c, "CREATE SCHEMA t_nosu AUTHORIZATION arraysync_nosu");
  char dsn[1024];
  snprintf(dsn, sizeof dsn, "%s user=arraysync_nosu", g_dsn);
  g_node_dsn = dsn;
  as_schema *s = schema_yaml(USERS_YAML);
  const as_schema *ss[1] = {s};
  node_h h;
  as_node *n = make_node(&h, "pg", "t_nosu", ss, 1, NULL);
  as_error err = {0};
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  as_stream *st = NULL;
  CHECK(A->open_stream(n, "reader", NULL, &st, &err) == AS_OK, "%s", err.message);
  as_delta d[3] = {{0}};
  mk_delta(&d[0], s, AS_OP_INSERT, "mongo", "id", "m1", "email", "e", "n", "1", "score", "1", NULL);
  mk_delta(&d[1], s, AS_OP_INSERT, "lite", "id", "l1", "email", "e", "n", "1", "score", "1", NULL);
  mk_delta(&d[2], s, AS_OP_INSERT, AS_ORIGIN_LOCAL_ONLY, "id", "x1", "email", "e", "n", "1", "score", "1", NULL);
  as_dead_list dead = {0};
  CHECK(apply_batch(n, d, 3, &dead, "m->pg", "1") == AS_OK && dead.n == 0, "apply");
  PGconn *cu = PQconnectdb(dsn);
  PQclear(PQexec(cu, "INSERT INTO t_nosu.users VALUES ('own', 'o@x', 1, 1)"));
  PQfinish(cu);
  as_batch b = {0};
  poll_n(st, &b, 3, 10);
  CHECK(b.n == 3, "captured %zu", b.n);
  if (b.n == 3) {
    CHECK(b.d[0].echo && strcmp(b.d[0].origin, "mongo") == 0, "echo of mongo");
    CHECK(b.d[1].echo && strcmp(b.d[1].origin, "lite") == 0, "echo of lite");
    CHECK(!b.d[2].echo && strcmp(b.d[2].origin, "pg") == 0 && col_is(&b.d[2].row, s, "id", "own"),
          "own write");
  }
  as_batch_clear(&b);
  A->close_stream(st);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  free_deltas(d, 3);
  as_dead_list_clear(&dead);
  /* no REPLICATION: auto capture uses triggers; capture: logical is refused at connect */
  snprintf(dsn, sizeof dsn, "%s user=arraysync_norepl", g_dsn);
  sql(c, "ALTER SCHEMA t_nosu OWNER TO arraysync_norepl; ALTER TABLE t_nosu.users OWNER TO arraysync_norepl");
  const char *saved = g_capture;
  g_capture = "auto";
  n = make_node(&h, "pg", "t_nosu", ss, 1, NULL);
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  CHECK(ntriggers(c, "t_nosu.users", "") == 4, "auto without REPLICATION: triggers");
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  g_capture = "logical";
  int rc = try_connect(dsn, &err);
  CHECK(rc == AS_EINVAL && strstr(err.message, "capture: logical, but the role has neither REPLICATION"),
        "logical refused: %d %s", rc, err.message);
  g_capture = saved;
  g_node_dsn = NULL;
  sql(c, "DROP SCHEMA t_nosu CASCADE");
  sql(c, "REVOKE CREATE ON DATABASE postgres FROM arraysync_nosu, arraysync_norepl");
  sql(c, "DROP ROLE arraysync_nosu");
  sql(c, "DROP ROLE arraysync_norepl");
  PQfinish(c);
  as_schema_free(s);
}

/* A statement of 2500 rows read in batches of 1000: every row once, resumable mid-way
 * (triggers: inside a changelog row of 1000 keys; logical: inside one big transaction, which
 * a resume replays whole). */
static void t_bulk(void) {
  g_test = "bulk";
  fresh_schema("t_bulk");
  as_schema *s = schema_yaml(USERS_YAML);
  const as_schema *ss[1] = {s};
  node_h h;
  as_node *n = make_node(&h, "pg", "t_bulk", ss, 1, NULL);
  as_error err = {0};
  PGconn *c = outside();
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  as_stream *st = NULL;
  CHECK(A->open_stream(n, "reader", NULL, &st, &err) == AS_OK, "%s", err.message);
  sql(c, "INSERT INTO t_bulk.users SELECT 'b' || g, 'e', g, 0 FROM generate_series(1, 2500) g");
  sql(c, "UPDATE t_bulk.users SET n = n + 1 WHERE n <= 1200");
  enum { NB = 2500 };
  static unsigned char seen[NB + 1], upd[NB + 1];
  memset(seen, 0, sizeof seen);
  memset(upd, 0, sizeof upd);
  size_t total = 0, dups = 0, batches = 0, over = 0;
  char *mid = NULL;
  as_batch b = {0};
  for (int t = 0; t < 40 && total < NB + 1200; t++) {
    as_batch_reset(&b);
    CHECK(A->poll(st, &b, 700, 200, &err) == AS_OK, "%s", err.message);
    if (b.n > 700) over++;
    if (b.n) batches++;
    for (size_t i = 0; i < b.n; i++) {
      char *id = val_text(&b.d[i].row, s, "id");
      int k = atoi(id + 1);
      if (k >= 1 && k <= NB) {
        unsigned char *m = b.d[i].op == AS_OP_INSERT ? seen : upd;
        if (m[k]) dups++;
        m[k] = 1;
      }
      free(id);
      total++;
    }
    if (batches == 1 && !mid && b.pos) mid = strdup(b.pos);
  }
  size_t nseen = 0, nupd = 0;
  for (int k = 1; k <= NB; k++) {
    nseen += seen[k];
    nupd += upd[k];
  }
  CHECK(nseen == NB && nupd == 1200 && dups == 0 && over == 0 && batches >= 4,
        "%zu inserts, %zu updates, %zu twice, %zu batches, %zu over max", nseen, nupd, dups, batches, over);
  /* resume from the position after the first batch (inside a changelog row / inside the
   * transaction): the rest comes again, nothing lost */
  A->close_stream(st);
  st = NULL;
  CHECK(mid && A->open_stream(n, "reader", mid, &st, &err) == AS_OK, "%s", err.message);
  memset(seen, 0, sizeof seen);
  memset(upd, 0, sizeof upd);
  for (int t = 0; st && t < 40; t++) {
    as_batch_reset(&b);
    if (A->poll(st, &b, 700, 200, &err) != AS_OK || (b.n == 0 && t > 3)) break;
    for (size_t i = 0; i < b.n; i++) {
      char *id = val_text(&b.d[i].row, s, "id");
      int k = atoi(id + 1);
      if (k >= 1 && k <= NB) (b.d[i].op == AS_OP_INSERT ? seen : upd)[k] = 1;
      free(id);
    }
  }
  nseen = nupd = 0;
  for (int k = 1; k <= NB; k++) {
    nseen += seen[k];
    nupd += upd[k];
  }
  /* triggers resume after the 700th key; logical replays the 2500-row transaction */
  CHECK(nupd == 1200 && (g_logical ? nseen == NB : nseen == NB - 700),
        "resumed: %zu inserts, %zu updates", nseen, nupd);
  free(mid);
  as_batch_clear(&b);
  A->close_stream(st);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  PQfinish(c);
  as_schema_free(s);
}

/* Long runs of inserts, whose COPY data goes out while the rest is still formatted: rows the
 * client refuses (a NUL byte) and the server refuses (NOT NULL) after data went out, a key
 * twice in a run after data went out, and a run meeting keys already there (the COPY fails
 * at its end: the staging upsert takes the whole run again). */
static void t_stream(void) {
  g_test = "stream";
  fresh_schema("t_stream");
  as_schema *s = schema_yaml(USERS_YAML);
  const as_schema *ss[1] = {s};
  node_h h;
  as_node *n = make_node(&h, "pg", "t_stream", ss, 1, NULL);
  as_error err = {0};
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  PGconn *c = outside();
  enum { N = 3000 };
  static as_delta d[N];
  char id[16], nv[16], email[256];
  as_dead_list dead = {0};
  /* 1. s0000..s2999, about 600 KB: #1500 holds a NUL byte, #2500 has no email */
  for (int i = 0; i < N; i++) {
    snprintf(id, sizeof id, "s%04d", i);
    snprintf(email, sizeof email, "%0200d@%s", i, id);
    snprintf(nv, sizeof nv, "%d", i);
    mk_delta(&d[i], s, AS_OP_INSERT, "mongo", "id", id, "email", i == 2500 ? NULL : email, "n", nv,
             "score", "0.5", NULL);
  }
  as_value v;
  as_value_set_str(&v, AS_T_TEXT, "a\0b", 3);
  as_row_put(&d[1500].row, 1, &v);
  CHECK(apply_batch(n, d, N, &dead, "m->pg", "1") == AS_OK, "apply 1");
  CHECK(dead.n == 2 && dead.items[0].index == 1500 && strstr(dead.items[0].error, "NUL byte") &&
            dead.items[1].index == 2500 && strstr(dead.items[1].error, "23502"),
        "dead: %zu (%s)", dead.n, dead.n ? dead.items[0].error : "");
  CHECK(sql_long(c, "SELECT count(*) FROM t_stream.users WHERE email = lpad(substr(id, 2)::int::text, 200, '0') || '@' || id AND n = substr(id, 2)::int AND score = 0.5%s", "") == N - 2,
        "stored exactly: %ld of %d", sql_long(c, "SELECT count(*) FROM t_stream.users%s", ""), N - 2);
  free_deltas(d, N);
  as_dead_list_clear(&dead);
  /* 2. s0000..s2999 again, n + 1: the direct COPY fails on s0000 after data went out; the
   * staging upsert writes all of them (the two refused before are new) */
  for (int i = 0; i < N; i++) {
    snprintf(id, sizeof id, "s%04d", i);
    snprintf(email, sizeof email, "%0200d@%s", i, id);
    snprintf(nv, sizeof nv, "%d", i + 1);
    mk_delta(&d[i], s, AS_OP_INSERT, "mongo", "id", id, "email", email, "n", nv, "score", "0.5", NULL);
  }
  CHECK(apply_batch(n, d, N, &dead, "m->pg", "2") == AS_OK && dead.n == 0, "apply 2: %zu dead", dead.n);
  CHECK(sql_long(c, "SELECT count(*) FROM t_stream.users WHERE email = lpad(substr(id, 2)::int::text, 200, '0') || '@' || id AND n = substr(id, 2)::int + 1%s", "") == N,
        "upserted exactly");
  char *ck = NULL;
  CHECK(A->checkpoint_load(n, "m->pg", &ck, &err) == AS_OK && ck && strcmp(ck, "2") == 0, "ck");
  free(ck);
  free_deltas(d, N);
  as_dead_list_clear(&dead);
  /* the key clash made the adapter go by the staging table for its next 16 batches: pass
   * them, so the next run is sent while it is formatted again */
  for (int i = 0; i < 16; i++) {
    mk_delta(&d[0], s, AS_OP_UPDATE, "mongo", "id", "s0000", "score", "2", NULL);
    CHECK(apply_batch(n, d, 1, &dead, "m->pg", "3") == AS_OK && dead.n == 0, "pass %d", i);
    as_delta_clear(&d[0]);
  }
  /* 3. t0000..t2999 with t0100 again at #2000: the run ends before it, the next run meets
   * t0100 in the table and goes by the staging upsert: the later value wins */
  for (int i = 0; i < N; i++) {
    snprintf(id, sizeof id, "t%04d", i == 2000 ? 100 : i);
    snprintf(email, sizeof email, "%0200d", i);
    snprintf(nv, sizeof nv, "%d", i);
    mk_delta(&d[i], s, AS_OP_INSERT, "mongo", "id", id, "email", email, "n", nv, "score", "1", NULL);
  }
  CHECK(apply_batch(n, d, N, &dead, "m->pg", "4") == AS_OK && dead.n == 0, "apply 3: %zu dead", dead.n);
  CHECK(sql_long(c, "SELECT count(*) FROM t_stream.users WHERE id LIKE %s", "'t%'") == N - 1, "t rows");
  CHECK(sql_long(c, "SELECT n FROM t_stream.users WHERE id = %s", "'t0100'") == 2000, "the later t0100");
  CHECK(sql_long(c, "SELECT sum(n) FROM t_stream.users WHERE id LIKE %s", "'t%'") ==
            (long long)N * (N - 1) / 2 - 100,
        "t sums");
  free_deltas(d, N);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  PQfinish(c);
  as_schema_free(s);
}

/* A local change that the connector overwrites on the node before the capture reads it (a
 * relayed change or a repair landing first) keeps its own values: the engine decides it
 * against what it overwrote (and writes it back when it wins); read at poll time it would
 * carry the connector's values and be lost on every node. Also a one-way mapping (direction:
 * to-mongo, compact changelog rows) reads its values at poll time, the newest. */
static void t_overwritten(void) {
  g_test = "overwritten";
  fresh_schema("t_over");
  as_schema *s = schema_yaml(USERS_YAML);
  const as_schema *ss[1] = {s};
  node_h h;
  as_node *n = make_node(&h, "pg", "t_over", ss, 1, NULL);
  as_error err = {0};
  PGconn *c = outside();
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  as_stream *st = NULL;
  CHECK(A->open_stream(n, "reader", NULL, &st, &err) == AS_OK, "%s", err.message);
  /* local: inserts of three keys, then an update of two of them in one statement */
  sql(c, "INSERT INTO t_over.users VALUES ('a', 'local-a', 1, 1), ('b', 'local-b', 2, 2), "
         "('c', 'local-c', 3, 3)");
  sql(c, "UPDATE t_over.users SET email = 'upd-' || id, n = n + 10 WHERE id IN ('a', 'b')");
  /* the connector then writes every key, before the capture read anything */
  as_delta d[3] = {{0}};
  mk_delta(&d[0], s, AS_OP_UPDATE, "mongo", "id", "a", "email", "remote-a", "n", "100", NULL);
  mk_delta(&d[1], s, AS_OP_UPDATE, "mongo", "id", "b", "email", "remote-b", NULL);
  mk_delta(&d[2], s, AS_OP_UPDATE, "mongo", "id", "c", "email", "remote-c", NULL);
  as_dead_list dead = {0};
  CHECK(apply_batch(n, d, 3, &dead, "mongo->pg", "ck1") == AS_OK, "apply");
  as_batch b = {0};
  poll_n(st, &b, 8, 10);
  size_t local = 0;
  for (size_t i = 0; i < b.n; i++) {
    const as_delta *x = &b.d[i];
    if (x->echo) continue;
    char *id = val_text(&x->row, s, "id");
    char want[32];
    if (x->op == AS_OP_INSERT) snprintf(want, sizeof want, "local-%s", id);
    else snprintf(want, sizeof want, "upd-%s", id);
    CHECK(col_is(&x->row, s, "email", want), "local %s of %s carries its own email",
          x->op == AS_OP_INSERT ? "insert" : "update", id);
    if (x->op == AS_OP_UPDATE && strcmp(id, "a") == 0)
      CHECK(col_is(&x->row, s, "n", "11"), "the update of a carries its own n");
    local++;
    free(id);
  }
  CHECK(local == 5, "5 local changes (3 inserts, 2 updates), got %zu of %zu", local, b.n);
  as_batch_clear(&b);
  free_deltas(d, 3);
  as_dead_list_clear(&dead);
  A->close_stream(st);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  if (g_logical) { /* the WAL carries every change's values anyway */
    PQfinish(c);
    as_schema_free(s);
    return;
  }
  /* one way out of SQL: compact rows, the values as the poll finds them */
  fresh_schema("t_over");
  char *y = malloc(strlen(USERS_YAML) + 32);
  sprintf(y, "direction: to-mongo\n%s", USERS_YAML);
  as_schema *s1 = schema_yaml(y);
  free(y);
  const as_schema *ss1[1] = {s1};
  n = make_node(&h, "pg", "t_over", ss1, 1, NULL);
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  CHECK(A->open_stream(n, "reader", NULL, &st, &err) == AS_OK, "%s", err.message);
  sql(c, "INSERT INTO t_over.users VALUES ('a', 'first', 1, 1)");
  sql(c, "UPDATE t_over.users SET email = 'second'");
  CHECK(sql_long(c, "SELECT count(*) FROM arraysync.changelog WHERE tbl = %s AND new IS NULL",
                 "'\"t_over\".\"users\"'") == 2,
        "compact rows carry no values");
  poll_n(st, &b, 2, 10);
  CHECK(b.n == 2 && col_is(&b.d[0].row, s1, "email", "second") && col_is(&b.d[1].row, s1, "email", "second"),
        "read at poll time: %zu", b.n);
  as_batch_clear(&b);
  A->close_stream(st);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  PQfinish(c);
  as_schema_free(s);
  as_schema_free(s1);
}

/* A captured row the mapping cannot convert: a dead letter whose raw form holds the row
 * ("new"), which decode_raw reads back (and still refuses); the rows after it flow. */
static void t_capture_dead(void) {
  g_test = "capture_dead";
  fresh_schema("t_cdead");
  as_schema *s = schema_yaml("mapping: ev\ncollection: ev\ntable: ev\nkey: id\ncolumns:\n"
                             "  id: { field: _id, type: text }\n"
                             "  at: { field: at, type: timestamptz }\n");
  const as_schema *ss[1] = {s};
  node_h h;
  as_node *n = make_node(&h, "pg", "t_cdead", ss, 1, NULL);
  as_error err = {0};
  PGconn *c = outside();
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  as_stream *st = NULL;
  CHECK(A->open_stream(n, "reader", NULL, &st, &err) == AS_OK, "%s", err.message);
  sql(c, "INSERT INTO t_cdead.ev VALUES ('bad', 'infinity')");
  sql(c, "INSERT INTO t_cdead.ev VALUES ('good', '2024-01-01 00:00:00+00')");
  as_batch b = {0};
  for (int t = 0; t < 10 && b.n + b.ndead < 2; t++) A->poll(st, &b, 100, 200, &err);
  CHECK(b.ndead == 1 && b.n == 1 && col_is(&b.d[0].row, s, "id", "good"), "dead %zu, deltas %zu",
        b.ndead, b.n);
  if (b.ndead == 1) {
    const as_dead *x = &b.dead[0];
    CHECK(x->schema == s && strstr(x->error, "\"at\"") && x->pos, "error names the column: %s",
          x->error);
    CHECK(x->key && strcmp(x->key, "{\"id\":\"bad\"}") == 0, "the dead letter names its key: %s",
          x->key ? x->key : "(none)");
    CHECK(x->raw && strstr(x->raw, "\"new\":{") && strstr(x->raw, "\"at\":\"infinity\"") &&
              strstr(x->raw, "\"bad\""),
          "raw holds the row: %s", x->raw ? x->raw : "");
    as_delta d = {0};
    int rc = A->decode_raw(s, x->raw, &d, &err);
    CHECK(rc == AS_EDATA, "decode_raw still refuses it: %d %s", rc, err.message);
    as_delta_clear(&d);
  }
  as_batch_clear(&b);
  A->close_stream(st);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  PQfinish(c);
  as_schema_free(s);
}

/* A partitioned table: changes made in its partitions come as the mapped table's (logical
 * decoding publishes them via the root), an update moving a row to another partition too. */
static void t_partitioned(void) {
  g_test = "partitioned";
  fresh_schema("t_part");
  PGconn *c = outside();
  sql(c, "CREATE SCHEMA t_part");
  sql(c, "CREATE TABLE t_part.ev (id text, region text, n bigint, PRIMARY KEY (id, region)) "
         "PARTITION BY LIST (region)");
  sql(c, "CREATE TABLE t_part.ev_eu PARTITION OF t_part.ev FOR VALUES IN ('eu')");
  sql(c, "CREATE TABLE t_part.ev_us PARTITION OF t_part.ev FOR VALUES IN ('us')");
  as_schema *s = schema_yaml("mapping: ev\ncollection: ev\ntable: ev\nkey: [id, region]\n"
                             "columns:\n  id: { field: _id.id, type: text }\n"
                             "  region: { field: _id.region, type: text }\n"
                             "  n: { field: n, type: int64 }\n");
  const as_schema *ss[1] = {s};
  node_h h;
  as_node *n = make_node(&h, "pg", "t_part", ss, 1, NULL);
  as_error err = {0};
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  as_stream *st = NULL;
  CHECK(A->open_stream(n, "reader", NULL, &st, &err) == AS_OK, "%s", err.message);
  sql(c, "INSERT INTO t_part.ev VALUES ('a', 'eu', 1), ('b', 'us', 2)");
  sql(c, "UPDATE t_part.ev SET n = 3 WHERE id = 'b'");
  sql(c, "UPDATE t_part.ev SET region = 'us' WHERE id = 'a'"); /* moves to ev_us */
  /* every delta is the mapped table's; applied in order they leave what the table holds
   * (trigger capture reads rows at poll time: a row gone by then comes as its delete only) */
  as_batch b = {0};
  char state[4][16] = {{0}}; /* "id/region=n" of at most four keys */
  bool mapped = true, moved = false;
  for (int t = 0; t < 10 && !(state[0][0] && moved && b.ndead == 0 && t > 2); t++) {
    as_batch_reset(&b);
    A->poll(st, &b, 100, 200, &err);
    for (size_t i = 0; i < b.n; i++) {
      mapped = mapped && b.d[i].schema == s;
      char *id = val_text(&b.d[i].row, s, "id"), *rg = val_text(&b.d[i].row, s, "region");
      char *nv = b.d[i].op == AS_OP_DELETE ? NULL : val_text(&b.d[i].row, s, "n");
      char k[16];
      snprintf(k, sizeof k, "%s/%s=", id ? id : "?", rg ? rg : "?");
      int slot = -1, empty = -1;
      for (int j = 0; j < 4; j++) {
        if (state[j][0] && strncmp(state[j], k, strlen(k)) == 0) slot = j;
        if (!state[j][0] && empty < 0) empty = j;
      }
      if (b.d[i].op == AS_OP_DELETE) {
        moved = moved || strcmp(k, "a/eu=") == 0;
        if (slot >= 0) state[slot][0] = '\0';
      } else if (slot >= 0 || empty >= 0) {
        int j = slot >= 0 ? slot : empty;
        if (nv || slot < 0) snprintf(state[j], sizeof state[j], "%s%s", k, nv ? nv : "");
      }
      free(id);
      free(rg);
      free(nv);
    }
    CHECK(b.ndead == 0, "dead letter: %s", b.ndead ? b.dead[0].error : "");
  }
  char got[80] = "";
  CHECK(mapped, "a delta not of the mapped table");
  CHECK(moved, "the move: a delete of a/eu");
  bool a_us = false, b_us = false, other = false;
  for (int j = 0; j < 4; j++) {
    if (!state[j][0]) continue;
    size_t l = strlen(got);
    snprintf(got + l, sizeof got - l, "%s ", state[j]);
    if (strcmp(state[j], "a/us=1") == 0) a_us = true;
    else if (strcmp(state[j], "b/us=3") == 0) b_us = true;
    else other = true;
  }
  CHECK(a_us && b_us && !other, "applied in order the deltas leave: %s", got);
  as_batch_clear(&b);
  A->close_stream(st);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  PQfinish(c);
  as_schema_free(s);
}

/* A timestamp finer than its column keeps (timestamptz(3), as install creates them; a value
 * with microseconds from a SQLite or PostgreSQL node) is a dead letter naming the column on
 * every write path, never rounded ('...59.9996' would be the next year); a column that holds
 * microseconds takes it. */
static void t_ts_precision(void) {
  g_test = "ts_precision";
  fresh_schema("t_tsp");
  as_schema *s = schema_yaml("mapping: ev\ncollection: ev\ntable: ev\nkey: id\n"
                             "columns:\n  id: { field: _id, type: text }\n"
                             "  at: { field: at, type: timestamptz }\n");
  const as_schema *ss[1] = {s};
  node_h h;
  as_node *n = make_node(&h, "pg", "t_tsp", ss, 1, NULL);
  as_error err = {0};
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  PGconn *c = outside();
  as_delta d[7] = {{0}};
  /* a run of inserts (COPY), one of them fine-grained; a lone insert; an update */
  mk_delta(&d[0], s, AS_OP_INSERT, "lite", "id", "a", "at", "2024-12-31T23:59:59.123Z", NULL);
  mk_delta(&d[1], s, AS_OP_INSERT, "lite", "id", "b", "at", "2024-12-31T23:59:59.9996Z", NULL);
  mk_delta(&d[2], s, AS_OP_INSERT, "lite", "id", "c", "at", "2024-12-31T23:59:58Z", NULL);
  mk_delta(&d[3], s, AS_OP_UPDATE, "lite", "id", "a", "at", "2024-01-01T00:00:00.000001Z", NULL);
  mk_delta(&d[4], s, AS_OP_DELETE, "lite", "id", "c", NULL);
  mk_delta(&d[5], s, AS_OP_INSERT, "lite", "id", "e", "at", "2024-06-01T12:00:00.5005Z", NULL);
  mk_delta(&d[6], s, AS_OP_INSERT, "lite", "id", "f", "at", "2024-06-01T12:00:00.5Z", NULL);
  as_dead_list dead = {0};
  CHECK(apply_batch(n, d, 7, &dead, NULL, NULL) == AS_OK, "apply");
  bool named = dead.n == 3;
  for (size_t i = 0; i < dead.n; i++) named = named && strstr(dead.items[i].error, "column \"at\"");
  CHECK(named && dead.items[0].index == 1 && dead.items[1].index == 3 && dead.items[2].index == 5,
        "dead letters of b, a's update, e, naming the column: %zu (%s)", dead.n,
        dead.n ? dead.items[0].error : "");
  CHECK(strcmp(sql(c, "SELECT string_agg(id || '=' || to_char(at AT TIME ZONE 'UTC', "
                      "'YYYY-MM-DD HH24:MI:SS.MS'), ' ' ORDER BY id) FROM t_tsp.ev") ?: "",
               "a=2024-12-31 23:59:59.123 f=2024-06-01 12:00:00.500") == 0,
        "rows: %s", sql(c, "SELECT string_agg(id || '=' || at::text, ' ' ORDER BY id) FROM t_tsp.ev"));
  as_dead_list_clear(&dead);
  free_deltas(d, 7);
  /* a column that holds microseconds takes them */
  sql(c, "ALTER TABLE t_tsp.ev ALTER COLUMN at TYPE timestamptz");
  A->exit(n);
  n = make_node(&h, "pg", "t_tsp", ss, 1, NULL);
  memset(d, 0, sizeof d);
  mk_delta(&d[0], s, AS_OP_INSERT, "lite", "id", "g", "at", "2024-06-01T12:00:00.000123Z", NULL);
  CHECK(apply_batch(n, d, 1, &dead, NULL, NULL) == AS_OK && dead.n == 0, "microseconds column: %zu dead",
        dead.n);
  CHECK(sql_long(c, "SELECT extract(microseconds FROM at)::bigint FROM t_tsp.ev WHERE id = %s", "'g'") == 123,
        "microseconds kept");
  free_deltas(d, 1);
  as_dead_list_clear(&dead);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  PQfinish(c);
  as_schema_free(s);
}

/* Two nodes of one database, each over its own schema holding a table of the same name (two
 * configurations, one per tenant): each stream gives its own schema's changes only. The
 * changelog is the database's (trigger capture): its rows name the table with its schema. */
static void t_two_schemas(void) {
  g_test = "two_schemas";
  const char *sch[2] = {"t_ten1", "t_ten2"};
  as_schema *s = schema_yaml("mapping: t\ncollection: t\ntable: t\nkey: id\n"
                             "columns:\n  id: { field: _id, type: text }\n  v: { field: v, type: text }\n");
  const as_schema *ss[1] = {s};
  PGconn *c = outside();
  node_h h[2];
  as_node *n[2];
  as_stream *st[2] = {NULL, NULL};
  as_error err = {0};
  for (int i = 0; i < 2; i++) {
    fresh_schema(sch[i]);
    sql(c, "CREATE SCHEMA %s", sch[i]);
    sql(c, "CREATE TABLE %s.t (id text PRIMARY KEY, v text)", sch[i]);
    n[i] = make_node(&h[i], i ? "pg2" : "pg1", sch[i], ss, 1, NULL);
    CHECK(A->install(n[i], &err) == AS_OK, "%s", err.message);
    CHECK(A->open_stream(n[i], "reader", NULL, &st[i], &err) == AS_OK, "%s", err.message);
  }
  sql(c, "INSERT INTO t_ten1.t VALUES ('shared', 'one'), ('only1', 'one')");
  sql(c, "INSERT INTO t_ten2.t VALUES ('shared', 'two'), ('only2', 'two')");
  sql(c, "UPDATE t_ten2.t SET v = 'two again' WHERE id = 'only2'");
  sql(c, "DELETE FROM t_ten2.t WHERE id = 'shared'");
  for (int i = 0; i < 2; i++) {
    as_batch b = {0};
    char got[256] = "";
    size_t ndead = 0;
    for (int t = 0; t < 6; t++) {
      as_batch_reset(&b);
      A->poll(st[i], &b, 100, 200, &err);
      ndead += b.ndead;
      for (size_t k = 0; k < b.n; k++) {
        char *id = val_text(&b.d[k].row, s, "id");
        char *v = b.d[k].op == AS_OP_DELETE ? NULL : val_text(&b.d[k].row, s, "v");
        size_t l = strlen(got);
        snprintf(got + l, sizeof got - l, "%c:%s=%s ", "?IUDT"[b.d[k].op <= 4 ? b.d[k].op : 0],
                 id ? id : "?", v ? v : "");
        free(id);
        free(v);
      }
    }
    /* node 2's deltas depend on the capture (trigger capture reads values at poll time) */
    bool own = i ? !strstr(got, "one") && !strstr(got, "only1") && strstr(got, "D:shared=") &&
                       strstr(got, "only2=two again")
                 : strcmp(got, "I:shared=one I:only1=one ") == 0;
    CHECK(own, "node %d: its own schema's changes only: got \"%s\"", i + 1, got);
    CHECK(ndead == 0, "node %d: %zu dead letters", i + 1, ndead);
    as_batch_clear(&b);
  }
  for (int i = 0; i < 2; i++) {
    A->close_stream(st[i]);
    CHECK(A->uninstall(n[i], &err) == AS_OK, "%s", err.message);
    A->exit(n[i]);
  }
  PQfinish(c);
  as_schema_free(s);
}

/* A user's table with an enum, a domain over text and a json (not jsonb) column, mapped as
 * text/text/json: install accepts it; every write path (a single insert, a partial update, a
 * run of inserts by COPY, a run meeting existing keys through the staging table) stores the
 * enum's label, the domain's text and the json text as given (key order and spacing); a
 * value the enum does not have is a dead letter; a change made in SQL comes back as text. */
static void t_column_types(void) {
  g_test = "column_types";
  fresh_schema("t_ctypes");
  PGconn *c = outside();
  sql(c, "CREATE SCHEMA t_ctypes");
  sql(c, "CREATE TYPE t_ctypes.mood AS ENUM ('sad', 'ok', 'happy')");
  sql(c, "CREATE DOMAIN t_ctypes.email AS text CHECK (VALUE LIKE '%%@%%')");
  sql(c, "CREATE TABLE t_ctypes.items (id text PRIMARY KEY, m t_ctypes.mood, e t_ctypes.email, "
         "js json)");
  as_schema *s = schema_yaml("mapping: items\ncollection: items\ntable: items\nkey: id\n"
                             "columns:\n  id: { field: _id, type: text }\n"
                             "  m: { field: m, type: text }\n  e: { field: e, type: text }\n"
                             "  js: { field: js, type: json }\n");
  const as_schema *ss[1] = {s};
  node_h h;
  as_node *n = make_node(&h, "pg", "t_ctypes", ss, 1, NULL);
  as_error err = {0};
  CHECK(A->install(n, &err) == AS_OK, "install accepts enum, domain and json: %s", err.message);
  enum { NRUN = 12 };
  as_delta d[3 + NRUN] = {{0}};
  mk_delta(&d[0], s, AS_OP_INSERT, "mongo", "id", "a", "m", "happy", "e", "a@x",
           "js", "{\"z\":1,\"a\":[2, 3]}", NULL);
  mk_delta(&d[1], s, AS_OP_INSERT, "mongo", "id", "bad", "m", "angry", NULL);
  mk_delta(&d[2], s, AS_OP_UPDATE, "mongo", "id", "a", "m", "sad", "js", "{\"y\":1,\"b\":2}", NULL);
  as_dead_list dead = {0};
  CHECK(apply_batch(n, d, 3, &dead, "m->pg", "1") == AS_OK, "apply");
  CHECK(dead.n == 1 && dead.items[0].index == 1 && strstr(dead.items[0].error, "angry"),
        "the value the enum lacks is the one dead letter: %zu (%s)", dead.n,
        dead.n ? dead.items[0].error : "");
  as_dead_list_clear(&dead);
  CHECK(strcmp(sql(c, "SELECT m::text || ' ' || e || ' ' || js::text FROM t_ctypes.items WHERE "
                      "id = 'a'"), "sad a@x {\"y\":1,\"b\":2}") == 0,
        "single statements: %s", sql(c, "SELECT js::text FROM t_ctypes.items WHERE id = 'a'"));
  char id[16];
  for (int i = 0; i < NRUN; i++) {
    snprintf(id, sizeof id, "r%02d", i);
    mk_delta(&d[3 + i], s, AS_OP_INSERT, "mongo", "id", i == 0 ? "a" : id, "m", "ok",
             "js", "{\"z\": 1,  \"a\": 0}", NULL);
  }
  /* the first row's key exists: the run goes through the staging table */
  CHECK(apply_batch(n, d + 3, NRUN, &dead, "m->pg", "2") == AS_OK && dead.n == 0,
        "a run of inserts: %zu dead (%s)", dead.n, dead.n ? dead.items[0].error : "");
  CHECK(sql_long(c, "SELECT count(*) FROM t_ctypes.items WHERE m = 'ok' AND js::text = %s",
                 "'{\"z\": 1,  \"a\": 0}'") == NRUN,
        "runs keep the json text and the enum: %s",
        sql(c, "SELECT js::text FROM t_ctypes.items WHERE id = 'r01'"));
  free_deltas(d, 3 + NRUN);
  as_dead_list_clear(&dead);
  /* a change made in SQL comes back as the label and the text */
  as_stream *st = NULL;
  CHECK(A->open_stream(n, "reader", NULL, &st, &err) == AS_OK, "%s", err.message);
  sql(c, "UPDATE t_ctypes.items SET m = 'happy', js = '{\"q\":[1]}' WHERE id = 'r01'");
  as_batch b = {0};
  for (int t = 0; t < 10 && b.n + b.ndead < 1; t++) A->poll(st, &b, 100, 200, &err);
  CHECK(b.n == 1 && b.ndead == 0 && col_is(&b.d[0].row, s, "m", "happy"), "captured: %zu, %zu dead",
        b.n, b.ndead);
  as_batch_clear(&b);
  A->close_stream(st);
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  PQfinish(c);
  as_schema_free(s);
}

/* The sink's cache of prepared statements (n->stmts) against what its session holds
 * (pg_prepared_statements on its own connection): the same names with the same texts, none
 * pending, no other. Returns "name@prepare_time,..." in name order (malloc'd) and the number
 * in *count; NULL (a CHECK failed) when they differ. */
static char *stmts_held(as_node *n, int *count) {
  *count = -1;
  PGresult *r = PQexec(n->conn, "SELECT name, statement, prepare_time FROM pg_prepared_statements"
                                " WHERE name LIKE 'arraysync!_%' ESCAPE '!' ORDER BY name");
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    CHECK(false, "pg_prepared_statements: %s", PQerrorMessage(n->conn));
    PQclear(r);
    return NULL;
  }
  int held = 0, rows = PQntuples(r);
  bool agree = true;
  for (int i = 0; i < PG_STMT_CACHE; i++) {
    if (!n->stmts[i].sql) continue;
    held++;
    const char *name = n->stmts[i].name;
    bool found = false;
    for (int k = 0; k < rows && !found; k++)
      found = strcmp(PQgetvalue(r, k, 0), name) == 0 && strcmp(PQgetvalue(r, k, 1), n->stmts[i].sql) == 0;
    if (!found || n->stmts[i].pending) {
      CHECK(false, "slot %d (%s%s) not held by the session as cached", i, n->stmts[i].sql,
            n->stmts[i].pending ? ", pending" : "");
      agree = false;
    }
  }
  CHECK(rows == held, "the session holds %d statements, the cache %d", rows, held);
  size_t cap = 64 + (size_t)rows * 96, len = 0;
  char *out = calloc(1, cap);
  for (int k = 0; out && k < rows; k++)
    len += (size_t)snprintf(out + len, cap - len, "%s@%s,", PQgetvalue(r, k, 0), PQgetvalue(r, k, 2));
  PQclear(r);
  *count = held;
  if (!agree || rows != held) {
    free(out);
    return NULL;
  }
  return out;
}

/* The sink's statements are prepared once per connection: a table changed under them
 * (a column's type, the table dropped and made again) still takes the changes, and a value
 * the column refuses is still the one dead letter; with prepare: off likewise. */
static void t_prepared(void) {
  g_test = "prepared";
  as_schema *s = schema_yaml("mapping: items\ncollection: items\ntable: items\nkey: id\n"
                             "columns:\n  id: { field: _id, type: text }\n"
                             "  m: { field: m, type: text }\n  n: { field: n, type: int64 }\n");
  const as_schema *ss[1] = {s};
  for (int off = 0; off < 2; off++) {
    fresh_schema("t_prep");
    PGconn *c = outside();
    sql(c, "CREATE SCHEMA t_prep");
    sql(c, "CREATE TYPE t_prep.mood AS ENUM ('sad', 'ok', 'happy')");
    sql(c, "CREATE TABLE t_prep.items (id text PRIMARY KEY, m text, n bigint)");
    g_node_opt[0] = "prepare";
    g_node_opt[1] = off ? "off" : "on";
    node_h h;
    as_node *n = make_node(&h, "pg", "t_prep", ss, 1, NULL);
    g_node_opt[0] = g_node_opt[1] = NULL;
    as_error err = {0};
    CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
    as_delta d[3] = {{0}};
    as_dead_list dead = {0};
    mk_delta(&d[0], s, AS_OP_INSERT, "mongo", "id", "a", "m", "sad", "n", "1", NULL);
    mk_delta(&d[1], s, AS_OP_INSERT, "mongo", "id", "b", "m", "sad", "n", "1", NULL);
    CHECK(apply_batch(n, d, 2, &dead, "m->pg", "1") == AS_OK && dead.n == 0, "rows");
    free_deltas(d, 2);
    /* the same statement texts three times (prepared on the first) */
    char ck[8], nv[8];
    for (int i = 0; i < 3; i++) {
      snprintf(nv, sizeof nv, "%d", 10 + i);
      mk_delta(&d[0], s, AS_OP_UPDATE, "mongo", "id", "a", "m", "ok", NULL);
      mk_delta(&d[1], s, AS_OP_UPDATE, "mongo", "id", "b", "m", "ok", "n", nv, NULL);
      mk_delta(&d[2], s, AS_OP_UPDATE, "mongo", "id", "a", "n", nv, NULL);
      snprintf(ck, sizeof ck, "%d", 2 + i);
      CHECK(apply_batch(n, d, 3, &dead, "m->pg", ck) == AS_OK && dead.n == 0,
            "updates, round %d: %zu dead (%s)", i, dead.n, dead.n ? dead.items[0].error : "");
      free_deltas(d, 3);
    }
    CHECK(sql_long(c, "SELECT count(*) FROM t_prep.items WHERE m = 'ok' AND n = 12%s", "") == 2,
          "applied: %s", sql(c, "SELECT string_agg(id || m || n, ',') FROM t_prep.items"));
    int held;
    char *before = stmts_held(n, &held);
    CHECK(off ? held == 0 : held >= 3, "statements prepared: %d", held);
    /* a row's own failure on a prepared statement: its dead letter, the statements kept
     * (not deallocated and prepared again: the same prepare times) */
    sql(c, "ALTER TABLE t_prep.items ADD CONSTRAINT small CHECK (n < 1000)");
    mk_delta(&d[0], s, AS_OP_UPDATE, "mongo", "id", "a", "n", "13", NULL);
    mk_delta(&d[1], s, AS_OP_UPDATE, "mongo", "id", "b", "n", "5000", NULL);
    mk_delta(&d[2], s, AS_OP_UPDATE, "mongo", "id", "a", "m", "sad", NULL);
    CHECK(apply_batch(n, d, 3, &dead, "m->pg", "4a") == AS_OK, "a row refused");
    CHECK(dead.n == 1 && dead.items[0].index == 1 && strstr(dead.items[0].error, "small"),
          "the refused row is the one dead letter: %zu (%s)", dead.n, dead.n ? dead.items[0].error : "");
    as_dead_list_clear(&dead);
    free_deltas(d, 3);
    char *after = stmts_held(n, &held);
    CHECK(before && after && strcmp(before, after) == 0, "prepared again after a row's failure:\n %s\n %s",
          before ? before : "-", after ? after : "-");
    free(before);
    free(after);
    CHECK(strcmp(sql(c, "SELECT string_agg(id || ' ' || m || ' ' || n, ',' ORDER BY id) FROM t_prep.items"),
                 "a sad 13,b ok 12") == 0,
          "the others applied: %s", sql(c, "SELECT string_agg(id || ' ' || m || ' ' || n, ',' ORDER BY id) FROM t_prep.items"));
    /* the column becomes an enum: a text parameter fixed at the first Parse would not fit */
    sql(c, "ALTER TABLE t_prep.items ALTER COLUMN m TYPE t_prep.mood USING m::t_prep.mood");
    mk_delta(&d[0], s, AS_OP_UPDATE, "mongo", "id", "a", "m", "happy", NULL);
    /* (d[1] has d[0]'s text: it fails on the statement d[0] prepares anew) */
    mk_delta(&d[1], s, AS_OP_UPDATE, "mongo", "id", "b", "m", "angry", NULL);
    mk_delta(&d[2], s, AS_OP_UPDATE, "mongo", "id", "a", "n", "20", NULL);
    CHECK(apply_batch(n, d, 3, &dead, "m->pg", "5") == AS_OK, "after ALTER TABLE");
    CHECK(dead.n == 1 && dead.items[0].index == 1 && strstr(dead.items[0].error, "angry"),
          "the value the enum lacks is the one dead letter: %zu (%s)", dead.n,
          dead.n ? dead.items[0].error : "");
    as_dead_list_clear(&dead);
    free_deltas(d, 3);
    free(stmts_held(n, &held));
    CHECK(strcmp(sql(c, "SELECT string_agg(id || ' ' || m || ' ' || n, ',' ORDER BY id) FROM t_prep.items"),
                 "a happy 20,b ok 12") == 0,
          "the others applied: %s", sql(c, "SELECT string_agg(id || ' ' || m || ' ' || n, ',' ORDER BY id) FROM t_prep.items"));
    /* the table dropped and made again under the same name */
    sql(c, "DROP TABLE t_prep.items");
    sql(c, "CREATE TABLE t_prep.items (id text PRIMARY KEY, n bigint, m text)");
    sql(c, "INSERT INTO t_prep.items VALUES ('a', 0, 'x'), ('b', 0, 'x')");
    mk_delta(&d[0], s, AS_OP_UPDATE, "mongo", "id", "a", "m", "ok", NULL);
    mk_delta(&d[1], s, AS_OP_UPDATE, "mongo", "id", "b", "m", "ok", "n", "30", NULL);
    mk_delta(&d[2], s, AS_OP_UPDATE, "mongo", "id", "a", "n", "30", NULL);
    CHECK(apply_batch(n, d, 3, &dead, "m->pg", "6") == AS_OK && dead.n == 0,
          "after the table was made again: %zu dead (%s)", dead.n, dead.n ? dead.items[0].error : "");
    as_dead_list_clear(&dead);
    free_deltas(d, 3);
    CHECK(strcmp(sql(c, "SELECT string_agg(id || ' ' || m || ' ' || n, ',' ORDER BY id) FROM t_prep.items"),
                 "a ok 30,b ok 30") == 0,
          "applied to the new table: %s", sql(c, "SELECT string_agg(id || ' ' || m || ' ' || n, ',' ORDER BY id) FROM t_prep.items"));
    free(stmts_held(n, &held));
    CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
    A->exit(n);
    PQfinish(c);
  }
  as_schema_free(s);
}

/* How many of the sink's statements its session prepared after server time `t` (-1: the
 * query failed, said on stderr). */
static long prepared_since(as_node *n, const char *t) {
  PGresult *r = PQexecParams(n->conn, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE "
                             "'arraysync!_%' ESCAPE '!' AND prepare_time > $1::timestamptz",
                             1, NULL, (const char *const[]){t}, NULL, NULL, 0);
  long k = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
  if (k < 0) fprintf(stderr, "pg_prepared_statements: %s", PQerrorMessage(n->conn));
  PQclear(r);
  return k;
}

/* Updates of rows k0..k9 whose column sets are shapes first..last (bit i: column c<i>), each
 * setting its columns to `val`, `rounds` times over, in batches of 40; `bad` >= 0: the
 * delta with that index is refused by the table (c0 = 5000, CHECK c0 < 1000) and is
 * expected as the one dead letter. want[row][col] follows what applied. */
static void shape_updates(as_node *n, const as_schema *s, int first, int last, int rounds,
                          long bad, long want[10][8], long *ck) {
  enum { B = 40 };
  as_delta d[B];
  size_t nd = 0;
  long seq = 0;
  long dead_seen = 0;
  for (int r = 0; r < rounds; r++) {
    for (int sh = first; sh <= last; sh++, seq++) {
      int row = (int)(seq % 10);
      char key[8], val[16];
      snprintf(key, sizeof key, "k%d", row);
      snprintf(val, sizeof val, "%ld", seq == bad ? 5000 : seq % 997);
      as_delta_init(&d[nd], s, AS_OP_UPDATE);
      as_delta_set_origin(&d[nd], "mongo");
      set_text(&d[nd].row, s, "id", key);
      for (int b = 0; b < 8; b++) {
        if (!(sh & (1 << b))) continue;
        char col[4];
        snprintf(col, sizeof col, "c%d", b);
        set_text(&d[nd].row, s, col, val);
        if (seq != bad) want[row][b] = seq % 997;
      }
      if (++nd == B || (r == rounds - 1 && sh == last)) {
        as_dead_list dead = {0};
        char cks[24];
        snprintf(cks, sizeof cks, "%ld", ++*ck);
        CHECK(apply_batch(n, d, nd, &dead, "m->pg", cks) == AS_OK, "batch %ld", *ck);
        for (size_t i = 0; i < dead.n; i++) {
          bool expected = bad >= 0 && strstr(dead.items[i].error, "small");
          CHECK(expected, "dead letter: %s", dead.items[i].error);
          dead_seen++;
        }
        as_dead_list_clear(&dead);
        free_deltas(d, nd);
        nd = 0;
      }
    }
  }
  CHECK(dead_seen == (bad >= 0 ? 1 : 0), "%ld dead letters", dead_seen);
}

/* More statement texts than the sink prepares (128): a text idle for long gives its slot to
 * a new one, so a mapping whose column sets change keeps its statements prepared; texts that
 * come round often are not pushed out in turn; a DEALLOCATE that never ran (its pipeline
 * failed before it) leaves the slot to its former text; a session whose statements are not
 * what the cache says (a name taken, a statement gone) has them prepared anew, no change
 * lost; a statement's name is its text's hash. */
static void t_prepared_evict(void) {
  g_test = "prepared_evict";
  as_schema *s = schema_yaml("mapping: items\ncollection: items\ntable: items\nkey: id\ncolumns:\n"
                             "  id: { field: _id, type: text }\n  c0: { field: c0, type: int64 }\n"
                             "  c1: { field: c1, type: int64 }\n  c2: { field: c2, type: int64 }\n"
                             "  c3: { field: c3, type: int64 }\n  c4: { field: c4, type: int64 }\n"
                             "  c5: { field: c5, type: int64 }\n  c6: { field: c6, type: int64 }\n"
                             "  c7: { field: c7, type: int64 }\n");
  const as_schema *ss[1] = {s};
  fresh_schema("t_prepev");
  PGconn *c = outside();
  sql(c, "CREATE SCHEMA t_prepev");
  sql(c, "CREATE TABLE t_prepev.items (id text PRIMARY KEY, c0 bigint CONSTRAINT small CHECK (c0 < 1000),"
         " c1 bigint, c2 bigint, c3 bigint, c4 bigint, c5 bigint, c6 bigint, c7 bigint)");
  sql(c, "INSERT INTO t_prepev.items (id) SELECT 'k' || i FROM generate_series(0, 9) i");
  node_h h;
  as_node *n = make_node(&h, "pg", "t_prepev", ss, 1, NULL);
  as_error err = {0};
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  long want[10][8], ck = 0;
  for (int r = 0; r < 10; r++)
    for (int b = 0; b < 8; b++) want[r][b] = -1;
  int held;
  /* 100 texts, all prepared */
  shape_updates(n, s, 1, 100, 1, -1, want, &ck);
  free(stmts_held(n, &held));
  CHECK(held == 100, "prepared after 100 texts: %d", held);
  /* the session holds statements the cache does not know (as a pooler's server session
   * holds another client's): a Parse meets its name taken (42P05), the statements are
   * prepared anew, nothing is lost */
  pg_stmts_forget(n);
  shape_updates(n, s, 1, 100, 1, -1, want, &ck);
  free(stmts_held(n, &held));
  CHECK(held == 100, "prepared after 100 texts again: %d", held);
  /* ... and one the cache knows is gone from the session (26000) */
  char dq[96];
  snprintf(dq, sizeof dq, "DEALLOCATE %s", n->stmts[3].name);
  PGresult *r = PQexec(n->conn, dq);
  CHECK(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQerrorMessage(n->conn));
  PQclear(r);
  shape_updates(n, s, 1, 100, 1, -1, want, &ck);
  free(stmts_held(n, &held));
  CHECK(held == 100, "prepared after 100 texts a third time: %d", held);
  /* a statement's name is its text's: every name the session holds names the text held */
  r = PQexec(n->conn, "SELECT name, statement FROM pg_prepared_statements WHERE name LIKE 'arraysync!_%' ESCAPE '!'");
  int wrong = 0;
  for (int k = 0; PQresultStatus(r) == PGRES_TUPLES_OK && k < PQntuples(r); k++) {
    const char *txt = PQgetvalue(r, k, 1);
    XXH128_hash_t hh = XXH3_128bits(txt, strlen(txt));
    char nm[48];
    snprintf(nm, sizeof nm, "arraysync_%016" PRIx64 "%016" PRIx64, hh.high64, hh.low64);
    wrong += strcmp(nm, PQgetvalue(r, k, 0)) != 0;
  }
  CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 100 && wrong == 0,
        "%d statements, %d named for another text", PQntuples(r), wrong);
  PQclear(r);
  /* 100 other texts: 28 slots free, then the old texts give theirs up once idle (PG_STMT_IDLE
   * sends after their last use: in round 9 of 12). The 921st delta (round 9, first of a
   * batch) is refused: its pipeline fails before the DEALLOCATEs of the texts after it. */
  char t2[64];
  snprintf(t2, sizeof t2, "%s", sql(c, "SELECT clock_timestamp()::text"));
  shape_updates(n, s, 101, 200, 12, 920, want, &ck);
  char *st = stmts_held(n, &held);
  CHECK(st && held == PG_STMT_CACHE, "prepared: %d", held);
  free(st);
  long since = prepared_since(n, t2);
  CHECK(since == 100, "the 100 new texts prepared: %ld", since);
  /* 200 texts round and round (each used every 200 sends): after a first round (where the
   * 28 old texts still held, idle since the first 100, go) none gives its slot up */
  shape_updates(n, s, 1, 200, 1, -1, want, &ck);
  snprintf(t2, sizeof t2, "%s", sql(c, "SELECT clock_timestamp()::text"));
  shape_updates(n, s, 1, 200, 3, -1, want, &ck);
  st = stmts_held(n, &held);
  CHECK(st && held == PG_STMT_CACHE, "prepared: %d", held);
  free(st);
  since = prepared_since(n, t2);
  CHECK(since == 0, "texts pushed out in turn: %ld", since);
  /* every row holds what was applied last */
  for (int row = 0; row < 10; row++) {
    char q[256], exp[128];
    size_t len = 0;
    for (int b = 0; b < 8; b++)
      len += (size_t)snprintf(exp + len, sizeof exp - len, "%s%ld", b ? "," : "", want[row][b]);
    snprintf(q, sizeof q, "SELECT concat_ws(',', coalesce(c0, -1), coalesce(c1, -1), coalesce(c2, -1),"
             " coalesce(c3, -1), coalesce(c4, -1), coalesce(c5, -1), coalesce(c6, -1),"
             " coalesce(c7, -1)) FROM t_prepev.items WHERE id = 'k%d'", row);
    const char *got = sql(c, "%s", q);
    CHECK(got && strcmp(got, exp) == 0, "k%d: %s, expected %s", row, got ? got : "-", exp);
  }
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  PQfinish(c);
  as_schema_free(s);
}

/* Statement texts are built once per shape (kind and columns carried) and remembered per
 * table (PG_SQL_MEMO of them): random inserts (upserts of the columns carried, or of every column),
 * partial updates (of rows that exist and, reported as missing, of rows that do not),
 * key-only updates and deletes over 16 column sets, in batches, against a model of the
 * table. IT_SEED picks the sequence. */
static void t_shapes(void) {
  g_test = "shapes";
  as_schema *s = schema_yaml("mapping: items\ncollection: items\ntable: items\nkey: id\ncolumns:\n"
                             "  id: { field: _id, type: text }\n  a: { field: a, type: int64 }\n"
                             "  b: { field: b, type: text }\n  c: { field: c, type: double }\n"
                             "  e: { field: e, type: bool }\n");
  const as_schema *ss[1] = {s};
  fresh_schema("t_shapes");
  node_h h;
  as_node *n = make_node(&h, "pg", "t_shapes", ss, 1, NULL);
  as_error err = {0};
  CHECK(A->install(n, &err) == AS_OK, "%s", err.message);
  PGconn *c = outside();
  unsigned seed = getenv("IT_SEED") ? (unsigned)atoi(getenv("IT_SEED")) : (unsigned)time(NULL);
  printf("shapes: IT_SEED=%u\n", seed);
  enum { KEYS = 12, COLS = 4, BATCHES = 60, PER = 40 };
  static const char *const col[COLS] = {"a", "b", "c", "e"};
  bool exists[KEYS] = {false};
  char model[KEYS][COLS][24];
  as_delta d[PER];
  long missing_want = 0, missing_got = 0;
  for (int bt = 0; bt < BATCHES; bt++) {
    bool touched[KEYS] = {false}; /* one delta per key and batch: the engine's batches */
    size_t nd = 0;
    bool miss[PER] = {false};
    while (nd < PER) {
      int k = rand_r(&seed) % KEYS;
      if (touched[k]) {
        bool all = true;
        for (int i = 0; i < KEYS; i++) all = all && touched[i];
        if (all) break;
        continue;
      }
      touched[k] = true;
      char key[8];
      snprintf(key, sizeof key, "k%02d", k);
      int kind = rand_r(&seed) % 4; /* 0 insert, 1 partial update, 2 key-only update, 3 delete */
      int mask = rand_r(&seed) % 16;
      as_delta_init(&d[nd], s, kind == 0 ? AS_OP_INSERT : kind == 3 ? AS_OP_DELETE : AS_OP_UPDATE);
      as_delta_set_origin(&d[nd], "mongo");
      set_text(&d[nd].row, s, "id", key);
      if (kind == 0 || kind == 1) {
        if (kind == 1 && mask == 0) mask = 1;
        if (mask == 15) kind = 0; /* an update carrying every column is an upsert */
        if (kind == 0 && !exists[k]) /* an insert carrying some columns: the rest NULL */
          for (int j = 0; j < COLS; j++) snprintf(model[k][j], sizeof model[k][j], "-");
        for (int j = 0; j < COLS; j++) {
          if (!(mask & (1 << j))) continue;
          char v[24];
          int r = rand_r(&seed) % 1000;
          if (j == 0) snprintf(v, sizeof v, "%d", r);
          else if (j == 1) snprintf(v, sizeof v, "t%d", r);
          else if (j == 2) snprintf(v, sizeof v, "%d.5", r);
          else snprintf(v, sizeof v, "%s", r % 2 ? "true" : "false");
          bool null = rand_r(&seed) % 8 == 0;
          set_text(&d[nd].row, s, col[j], null ? NULL : v);
          if (kind == 0 || exists[k]) {
            snprintf(model[k][j], sizeof model[k][j], "%s",
                     null ? "-" : v);
          }
        }
        if (kind == 1 && !exists[k]) miss[nd] = true, missing_want++;
        if (kind == 0) exists[k] = true;
      } else if (kind == 2) {
        if (!exists[k]) miss[nd] = true, missing_want++;
      } else {
        exists[k] = false;
      }
      nd++;
    }
    as_dead_list dead = {0};
    char ck[16];
    snprintf(ck, sizeof ck, "%d", bt + 1);
    CHECK(apply_batch(n, d, nd, &dead, "m->pg", ck) == AS_OK, "batch %d", bt);
    for (size_t i = 0; i < dead.n; i++) {
      CHECK(dead.items[i].missing && miss[dead.items[i].index], "batch %d: %s", bt,
            dead.items[i].error ? dead.items[i].error : "missing where the row exists");
      missing_got += dead.items[i].missing;
    }
    as_dead_list_clear(&dead);
    free_deltas(d, nd);
  }
  CHECK(missing_got == missing_want, "missing reported %ld, expected %ld", missing_got, missing_want);
  for (int k = 0; k < KEYS; k++) {
    char want[128] = "";
    if (exists[k])
      snprintf(want, sizeof want, "%s|%s|%s|%s", model[k][0], model[k][1], model[k][2], model[k][3]);
    const char *got = sql(c, "SELECT coalesce(a::text, '-') || '|' || coalesce(b, '-') || '|' ||"
                             " coalesce(c::text, '-') || '|' || coalesce(e::text, '-')"
                             " FROM t_shapes.items WHERE id = 'k%02d'", k);
    CHECK(strcmp(got ? got : "", want) == 0, "k%02d: %s, expected %s (IT_SEED=%u)", k,
          got ? got : "(none)", exists[k] ? want : "(none)", seed);
  }
  CHECK(A->uninstall(n, &err) == AS_OK, "%s", err.message);
  A->exit(n);
  PQfinish(c);
  as_schema_free(s);
}

/* Steps for the psql checks of test_postgres.sh. */
static int keep_step(bool install) {
  as_schema *s = schema_yaml(USERS_YAML);
  const as_schema *ss[1] = {s};
  node_h h;
  as_node *n = make_node(&h, "pg", "t_keep", ss, 1, getenv("IT_PG_TRIGGERS")); /* level */
  as_error err = {0};
  int rc = install ? A->install(n, &err) : A->uninstall(n, &err);
  if (rc != AS_OK) fprintf(stderr, "%s\n", err.message);
  A->exit(n);
  as_schema_free(s);
  return rc == AS_OK ? 0 : 1;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  g_dsn = argc > 1 ? argv[1] : getenv("ARRAYSYNC_TEST_PG_DSN");
  if (!g_dsn) {
    fprintf(stderr, "usage: it_postgres CONNINFO (or ARRAYSYNC_TEST_PG_DSN)\n");
    return 2;
  }
  if (getenv("PSQL")) g_psql = getenv("PSQL");
  if (getenv("IT_PG_CAPTURE")) g_capture = getenv("IT_PG_CAPTURE");
  g_logical = strcmp(g_capture, "logical") == 0;
  printf("capture: %s\n", g_capture);
  as_log_set_level(getenv("AS_LOG_DEBUG") ? AS_LOG_DEBUG : AS_LOG_ERROR);
  const char *only = argc > 2 ? argv[2] : NULL;
  if (only && strcmp(only, "keep_install") == 0) return keep_step(true);
  if (only && strcmp(only, "keep_uninstall") == 0) return keep_step(false);
  static const struct {
    const char *name;
    void (*fn)(void);
  } tests[] = {{"install", t_install},
               {"capture", t_capture},
               {"out_of_order", t_out_of_order},
               {"origin_purge", t_origin_purge},
               {"ack_interval", t_ack_interval},
               {"types", t_types},
               {"identifiers", t_identifiers},
               {"dead", t_dead},
               {"retry", t_retry},
               {"kill", t_kill},
               {"truncate_local", t_truncate_local},
               {"nul", t_nul},
               {"identity", t_identity},
               {"partitioned", t_partitioned},
               {"column_types", t_column_types},
               {"prepared", t_prepared},
               {"prepared_evict", t_prepared_evict},
               {"shapes", t_shapes},
               {"two_schemas", t_two_schemas},
               {"overwritten", t_overwritten},
               {"ts_precision", t_ts_precision},
               {"connect", t_connect},
               {"check_capture", t_check_capture},
               {"history", t_history},
               {"toast", t_toast},
               {"nosuper", t_nosuper},
               {"bulk", t_bulk},
               {"capture_dead", t_capture_dead},
               {"stream", t_stream}};
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
    if (only && strcmp(only, tests[i].name) != 0) continue;
    int f0 = g_fail;
    tests[i].fn();
    printf("%-14s %s\n", tests[i].name, g_fail == f0 ? "ok" : "FAILED");
  }
  printf("%d passed, %d failed\n", g_pass, g_fail);
  return g_fail ? 1 : 0;
}
