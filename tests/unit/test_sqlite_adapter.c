/* test_sqlite_adapter.c — the SQLite adapter against temporary database files. */
#include <check.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "as_schema.h"
#include "as_test_util.h"
#include "as_time.h"

static const as_adapter *A = &as_adapter_sqlite;

static const char *USERS_YAML =
    "mapping: users\n"
    "collection: users\n"
    "table: users\n"
    "key: id\n"
    "columns:\n"
    "  id:    { field: _id, type: text }\n"
    "  email: { field: email, type: text, required: true }\n"
    "  score: { field: score, type: int64 }\n"
    "  seen:  { field: seen, type: timestamp }\n"
    "  ok:    { field: ok, type: bool }\n"
    "  amount: { field: amount, type: decimal }\n";

static const char *TYPES_YAML =
    "mapping: typed\n"
    "collection: typed\n"
    "table: typed\n"
    "key: id\n"
    "columns:\n"
    "  id:  { field: _id, type: int64 }\n"
    "  b:   { field: b, type: bool }\n"
    "  i:   { field: i, type: int64 }\n"
    "  d:   { field: d, type: double }\n"
    "  dec: { field: dec, type: decimal }\n"
    "  t:   { field: t, type: text }\n"
    "  by:  { field: by, type: bytes }\n"
    "  u:   { field: u, type: uuid }\n"
    "  o:   { field: o, type: objectid }\n"
    "  ts:  { field: ts, type: timestamp }\n"
    "  dt:  { field: dt, type: date }\n"
    "  j:   { field: j, type: json }\n";

static const char *WEIRD_YAML =
    "mapping: weird\n"
    "collection: weird\n"
    "table: select\n"
    "key: [order, \"Weird \\\"Name\\\"\"]\n"
    "columns:\n"
    "  order: { field: _id, type: int64 }\n"
    "  \"Weird \\\"Name\\\"\": { field: wn, type: text }\n"
    "  \"größe\": { field: size, type: text }\n"
    "  \"it's\": { field: its, type: int64 }\n";

typedef struct fixture {
  char *dir;
  char *path;
  as_schema *schemas[4];
  size_t nschemas;
  as_node *node;
  as_node_option opts[4];
  as_node_config cfg;
} fixture;

static as_schema *load(const char *name, const char *yaml) {
  as_schema *s = NULL;
  as_error err = {0};
  int rc = as_schema_load_string(name, yaml, &s, &err);
  ck_assert_msg(rc == AS_OK, "schema %s: %s", name, err.message);
  return s;
}

/* every ack writes its position (the node's default waits 100 ms between writes) */
static const char *purge_interval = "0";

static void fx_open(fixture *f, const char *node_name, const char *busy) {
  as_error err = {0};
  f->opts[0] = (as_node_option){.key = "path", .value = f->path};
  f->opts[1] = (as_node_option){.key = "busy_timeout", .value = (char *)(busy ? busy : "5000")};
  f->opts[2] = (as_node_option){.key = "purge_interval", .value = (char *)purge_interval};
  f->cfg =
      (as_node_config){.name = (char *)node_name, .kind = "sqlite", .opts = f->opts, .nopts = 3};
  ck_assert_int_eq(
      A->init(&f->cfg, (const as_schema *const *)f->schemas, f->nschemas, &f->node, &err), AS_OK);
  ck_assert_msg(A->connect(f->node, &err) == AS_OK, "%s", err.message);
}

static void fx_setup(fixture *f, const char *yaml1, const char *yaml2) {
  memset(f, 0, sizeof *f);
  f->dir = as_test_tmpdir();
  ck_assert_ptr_nonnull(f->dir);
  size_t n = strlen(f->dir) + 16;
  f->path = malloc(n);
  snprintf(f->path, n, "%s/node.db", f->dir);
  if (yaml1) f->schemas[f->nschemas++] = load("m1.yaml", yaml1);
  if (yaml2) f->schemas[f->nschemas++] = load("m2.yaml", yaml2);
  fx_open(f, "lite", NULL);
}

static void fx_install(fixture *f) {
  as_error err = {0};
  ck_assert_msg(A->install(f->node, &err) == AS_OK, "install: %s", err.message);
}

static void fx_teardown(fixture *f) {
  A->exit(f->node);
  for (size_t i = 0; i < f->nschemas; i++) as_schema_free(f->schemas[i]);
  as_test_rmtree(f->dir);
  free(f->dir);
  free(f->path);
}

static sqlite3 *raw_open(const fixture *f) {
  sqlite3 *db = NULL;
  ck_assert_int_eq(sqlite3_open(f->path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  return db;
}

static void raw_exec(sqlite3 *db, const char *sql) {
  char *msg = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
}

static int64_t raw_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s", sql,
                sqlite3_errmsg(db));
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static as_stream *open_stream(fixture *f, const char *consumer, const char *ckpt) {
  as_stream *s = NULL;
  as_error err = {0};
  ck_assert_msg(A->open_stream(f->node, consumer, ckpt, &s, &err) == AS_OK, "%s", err.message);
  return s;
}

static void poll_n(as_stream *s, as_batch *b, size_t max) {
  as_error err = {0};
  ck_assert_msg(A->poll(s, b, max, 200, &err) == AS_OK, "poll: %s", err.message);
}

static int col(const as_schema *s, const char *name) {
  int i = as_schema_column_index(s, name);
  ck_assert_int_ge(i, 0);
  return i;
}

static void put_text(as_row *r, int i, as_type t, const char *txt) {
  as_value v = AS_VALUE_NULL;
  as_error err = {0};
  ck_assert_msg(as_value_from_text(t, txt, strlen(txt), &v, &err) == AS_OK, "%s", err.message);
  as_row_put(r, (size_t)i, &v);
}

static void put_i64(as_row *r, int i, int64_t x) {
  as_value v = AS_VALUE_NULL;
  as_value_set_int64(&v, x);
  as_row_put(r, (size_t)i, &v);
}

static void put_null(as_row *r, int i) {
  as_value v = AS_VALUE_NULL;
  as_row_put(r, (size_t)i, &v);
}

static void user_delta(as_delta *d, const as_schema *s, as_op op, const char *id, const char *email,
                       const char *origin) {
  ck_assert_int_eq(as_delta_init(d, s, op), AS_OK);
  put_text(&d->row, col(s, "id"), AS_T_TEXT, id);
  if (email) put_text(&d->row, col(s, "email"), AS_T_TEXT, email);
  if (origin) as_delta_set_origin(d, origin);
}

static void apply_commit(fixture *f, as_delta *d, size_t n, as_dead_list *dead, const char *ckpt) {
  as_error err = {0};
  ck_assert_msg(A->begin(f->node, &err) == AS_OK, "begin: %s", err.message);
  ck_assert_msg(A->apply(f->node, d, n, dead, &err) == AS_OK, "apply: %s", err.message);
  ck_assert_msg(A->commit(f->node, "src->lite", ckpt, &err) == AS_OK, "commit: %s", err.message);
}

static const as_value *val(const as_delta *d, int i) {
  ck_assert_msg(as_row_has(&d->row, (size_t)i), "column %d absent", i);
  return &d->row.v[i];
}

/* ------------------------------------------------------------------------- tests */

START_TEST(install_idempotent_and_uninstall) {
  fixture f;
  fx_setup(&f, USERS_YAML, NULL);
  fx_install(&f);
  fx_install(&f); /* idempotent */
  sqlite3 *db = raw_open(&f);
  ck_assert_int_eq(raw_int(db, "SELECT value FROM _arraysync_meta WHERE key='schema_version'"), 1);
  ck_assert_int_eq(
      raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type='trigger' AND tbl_name='users'"),
      3);
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM _arraysync_origin"), 1);
  raw_exec(db, "INSERT INTO users (id, email) VALUES ('u1', 'a@x')");
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM _arraysync_changelog"), 1);
  as_error err = {0};
  ck_assert_int_eq(A->uninstall(f.node, &err), AS_OK);
  ck_assert_int_eq(
      raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_arraysync%' ESCAPE '\\'"),
      0);
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM users"), 1);     /* user data stays */
  raw_exec(db, "INSERT INTO users (id, email) VALUES ('u2', 'b@x')"); /* no trigger left */
  /* a newer bookkeeping version is refused */
  fx_install(&f);
  raw_exec(db, "UPDATE _arraysync_meta SET value = '99' WHERE key = 'schema_version'");
  ck_assert_int_eq(A->install(f.node, &err), AS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.message, "newer"));
  /* a database from before versioning (meta without version) is upgraded in place */
  raw_exec(db, "DELETE FROM _arraysync_meta WHERE key = 'schema_version'");
  fx_install(&f);
  ck_assert_int_eq(raw_int(db, "SELECT value FROM _arraysync_meta WHERE key='schema_version'"), 1);
  sqlite3_close(db);
  fx_teardown(&f);
}
END_TEST

START_TEST(install_rejects_missing_column) {
  fixture f;
  fx_setup(&f, USERS_YAML, NULL);
  sqlite3 *db = raw_open(&f);
  raw_exec(
      db,
      "CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT, score INTEGER, seen TEXT, ok INTEGER)");
  as_error err = {0};
  ck_assert_int_eq(A->install(f.node, &err), AS_EINVAL);
  ck_assert_msg(strstr(err.message, "users") && strstr(err.message, "amount"), "%s", err.message);
  raw_exec(db, "ALTER TABLE users ADD COLUMN amount TEXT");
  raw_exec(db, "ALTER TABLE users ADD COLUMN unmapped TEXT");
  fx_install(&f);
  /* an update of an unmapped column alone writes no change */
  raw_exec(db, "INSERT INTO users (id, email) VALUES ('u1', 'a@x')");
  raw_exec(db, "UPDATE users SET unmapped = 'zzz'");
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM _arraysync_changelog"), 1);
  /* no key constraint: refused */
  raw_exec(
      db,
      "CREATE TABLE t2 (id TEXT, email TEXT, score INTEGER, seen TEXT, ok INTEGER, amount TEXT)");
  sqlite3_close(db);
  A->exit(f.node);
  as_schema_free(f.schemas[0]);
  f.schemas[0] = load("t2.yaml",
                      "mapping: t2\ncollection: t2\ntable: t2\nkey: id\ncolumns:\n"
                      "  id: { field: _id, type: text }\n");
  fx_open(&f, "lite", NULL);
  ck_assert_int_eq(A->install(f.node, &err), AS_EINVAL);
  ck_assert_msg(strstr(err.message, "t2"), "%s", err.message);
  fx_teardown(&f);
}
END_TEST

START_TEST(capture_other_connection) {
  fixture f;
  fx_setup(&f, USERS_YAML, NULL);
  fx_install(&f);
  const as_schema *s = f.schemas[0];
  sqlite3 *db = raw_open(&f);
  raw_exec(db, "INSERT INTO users (id, email) VALUES ('before', 'b@x')"); /* before the stream */
  as_stream *st = open_stream(&f, "mongo", NULL);
  raw_exec(db, "INSERT INTO users (id, email, score) VALUES ('u1', 'a@x', 5)");
  raw_exec(db, "UPDATE users SET score = 6 WHERE id = 'u1'");
  raw_exec(db, "UPDATE users SET score = 6, email = 'a@x' WHERE id = 'u1'"); /* no-op */
  raw_exec(db, "DELETE FROM users WHERE id = 'u1'");
  as_batch b = {0};
  poll_n(st, &b, 100);
  ck_assert_int_eq(b.n, 3);
  ck_assert_int_eq(b.ndead, 0);
  ck_assert_int_eq(b.d[0].op, AS_OP_INSERT);
  ck_assert_str_eq(val(&b.d[0], col(s, "id"))->u.s.ptr, "u1");
  ck_assert_int_eq(val(&b.d[0], col(s, "score"))->u.i, 5);
  ck_assert_int_eq(val(&b.d[0], col(s, "seen"))->type, AS_T_NULL); /* full row */
  ck_assert(!b.d[0].echo);
  ck_assert_str_eq(b.d[0].origin, "lite");
  ck_assert_int_gt(b.d[0].ts_us, 1600000000000000LL);
  ck_assert_int_eq(b.d[0].hlc, AS_HLC_FROM_US(b.d[0].ts_us));
  ck_assert_int_eq(b.d[1].op, AS_OP_UPDATE);
  ck_assert_int_eq(val(&b.d[1], col(s, "score"))->u.i, 6);
  ck_assert(!as_row_has(&b.d[1].row, (size_t)col(s, "email"))); /* only changed columns */
  ck_assert_int_eq(b.d[2].op, AS_OP_DELETE);
  ck_assert_str_eq(val(&b.d[2], col(s, "id"))->u.s.ptr, "u1");
  ck_assert(!as_row_has(&b.d[2].row, (size_t)col(s, "email")));
  ck_assert_ptr_nonnull(b.pos);
  ck_assert_str_eq(b.pos, b.d[2].pos);
  /* a key change is a delete of the old key and an insert of the new row */
  raw_exec(db, "INSERT INTO users (id, email) VALUES ('k1', 'k@x')");
  raw_exec(db, "UPDATE users SET id = 'k2' WHERE id = 'k1'");
  as_batch_reset(&b);
  poll_n(st, &b, 100);
  ck_assert_int_eq(b.n, 3);
  ck_assert_int_eq(b.d[1].op, AS_OP_DELETE);
  ck_assert_str_eq(val(&b.d[1], col(s, "id"))->u.s.ptr, "k1");
  ck_assert_int_eq(b.d[2].op, AS_OP_INSERT);
  ck_assert_str_eq(val(&b.d[2], col(s, "id"))->u.s.ptr, "k2");
  ck_assert_str_eq(val(&b.d[2], col(s, "email"))->u.s.ptr, "k@x");
  /* max bounds the batch; position resumes */
  raw_exec(db, "INSERT INTO users (id, email) VALUES ('m1', 'x'), ('m2', 'x'), ('m3', 'x')");
  as_batch_reset(&b);
  poll_n(st, &b, 2);
  ck_assert_int_eq(b.n, 2);
  /* one statement, one 'now': the changes still carry increasing versions */
  ck_assert_int_gt(b.d[1].ts_us, b.d[0].ts_us);
  ck_assert_int_gt(b.d[1].hlc, b.d[0].hlc);
  char *pos = strdup(b.pos);
  A->close_stream(st);
  st = open_stream(&f, "mongo", pos);
  as_batch_reset(&b);
  poll_n(st, &b, 100);
  ck_assert_int_eq(b.n, 1);
  ck_assert_str_eq(val(&b.d[0], col(s, "id"))->u.s.ptr, "m3");
  /* nothing new: empty batch after the wait, position unchanged */
  char *end = strdup(b.pos);
  as_batch_reset(&b);
  as_error err = {0};
  ck_assert_int_eq(A->poll(st, &b, 100, 20, &err), AS_OK);
  ck_assert_int_eq(b.n, 0);
  ck_assert_str_eq(b.pos, end);
  char *sp = NULL;
  ck_assert_int_eq(A->stream_position(st, &sp, &err), AS_OK);
  ck_assert_str_eq(sp, end);
  free(sp);
  free(end);
  free(pos);
  as_batch_clear(&b);
  A->close_stream(st);
  sqlite3_close(db);
  fx_teardown(&f);
}
END_TEST

START_TEST(origin_marking) {
  fixture f;
  fx_setup(&f, USERS_YAML, NULL);
  fx_install(&f);
  const as_schema *s = f.schemas[0];
  as_stream *st = open_stream(&f, "reader", NULL);
  as_stream *st_m = open_stream(&f, "mongo", NULL);
  as_delta d[3];
  user_delta(&d[0], s, AS_OP_INSERT, "a", "a@x", "mongo");
  user_delta(&d[1], s, AS_OP_INSERT, "b", "b@x", "pg");
  user_delta(&d[2], s, AS_OP_UPDATE, "a", "a2@x", "mongo");
  as_dead_list dead = {0};
  apply_commit(&f, d, 3, &dead, "42");
  ck_assert_int_eq(dead.n, 0);
  sqlite3 *db = raw_open(&f);
  ck_assert_int_eq(raw_int(db, "SELECT origin IS NULL FROM _arraysync_origin"), 1);
  raw_exec(db, "UPDATE users SET email = 'local@x' WHERE id = 'b'");
  as_batch b = {0};
  poll_n(st, &b, 100);
  ck_assert_int_eq(b.n, 4);
  const char *want[] = {"mongo", "pg", "mongo", "lite"};
  for (int i = 0; i < 4; i++) {
    ck_assert_str_eq(b.d[i].origin, want[i]);
    ck_assert(b.d[i].echo == (i < 3));
  }
  ck_assert_int_eq(b.d[2].op, AS_OP_UPDATE);
  ck_assert_str_eq(val(&b.d[2], col(s, "email"))->u.s.ptr, "a2@x");
  /* the stream of consumer "mongo" leaves out what was written for mongo's own changes */
  as_batch bm = {0};
  poll_n(st_m, &bm, 100);
  ck_assert_int_eq(bm.n, 2);
  ck_assert_str_eq(bm.d[0].origin, "pg");
  ck_assert_str_eq(bm.d[1].origin, "lite");
  as_batch_clear(&bm);
  A->close_stream(st_m);
  /* rollback leaves nothing behind, not even the origin */
  as_error err = {0};
  as_delta_clear(&d[0]);
  user_delta(&d[0], s, AS_OP_INSERT, "c", "c@x", "mongo");
  ck_assert_int_eq(A->begin(f.node, &err), AS_OK);
  ck_assert_int_eq(A->apply(f.node, d, 1, &dead, &err), AS_OK);
  ck_assert_int_eq(A->rollback(f.node), AS_OK);
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM users WHERE id = 'c'"), 0);
  ck_assert_int_eq(raw_int(db, "SELECT origin IS NULL FROM _arraysync_origin"), 1);
  char *ck = NULL;
  ck_assert_int_eq(A->checkpoint_load(f.node, "src->lite", &ck, &err), AS_OK);
  ck_assert_str_eq(ck, "42");
  free(ck);
  ck_assert_int_eq(A->checkpoint_load(f.node, "other->lite", &ck, &err), AS_ENOTFOUND);
  for (int i = 0; i < 3; i++) as_delta_clear(&d[i]);
  as_batch_clear(&b);
  as_dead_list_clear(&dead);
  A->close_stream(st);
  sqlite3_close(db);
  fx_teardown(&f);
}
END_TEST

/* n rows PREFIX0.. into users, one statement each */
static void insert_users(sqlite3 *db, const char *prefix, int n) {
  for (int i = 0; i < n; i++) {
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO users (id, email) VALUES ('%s%d', 'x')", prefix, i);
    raw_exec(db, sql);
  }
}

START_TEST(purge_after_ack) {
  fixture f;
  fx_setup(&f, USERS_YAML, NULL);
  fx_install(&f);
  as_stream *s1 = open_stream(&f, "c1", NULL);
  as_stream *s2 = open_stream(&f, "c2", NULL);
  sqlite3 *db = raw_open(&f);
  insert_users(db, "p", 5);
  as_batch b = {0};
  poll_n(s1, &b, 100);
  ck_assert_int_eq(b.n, 5);
  as_error err = {0};
  ck_assert_int_eq(A->ack(s1, b.pos, &err), AS_OK);
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM _arraysync_changelog"), 5); /* c2 needs them */
  as_batch_reset(&b);
  poll_n(s2, &b, 3);
  ck_assert_int_eq(b.n, 3);
  ck_assert_int_eq(A->ack(s2, b.pos, &err), AS_OK);
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM _arraysync_changelog"), 2);
  char *old = strdup(b.d[0].pos); /* already purged */
  as_batch_reset(&b);
  poll_n(s2, &b, 100);
  ck_assert_int_eq(b.n, 2);
  ck_assert_int_eq(A->ack(s2, b.pos, &err), AS_OK);
  /* everything is consumed; the newest row stays as the anchor of the sequence */
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM _arraysync_changelog"), 1);
  ck_assert_int_eq(raw_int(db, "SELECT max(seq) FROM _arraysync_changelog"), 5);
  /* sequence numbers never go back after a full purge */
  raw_exec(db, "INSERT INTO users (id, email) VALUES ('p9', 'x')");
  as_batch_reset(&b);
  poll_n(s1, &b, 100);
  ck_assert_int_eq(b.n, 1);
  ck_assert_int_eq(atoll(b.d[0].pos), 6);
  /* a consumer resuming behind the purge horizon is told */
  as_stream *s3 = NULL;
  ck_assert_int_eq(A->open_stream(f.node, "c3", old, &s3, &err), AS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.message, "purged"));
  /* and one ahead of the changelog (database replaced) too */
  ck_assert_int_eq(A->open_stream(f.node, "c3", "999", &s3, &err), AS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.message, "beyond"));
  free(old);
  as_batch_clear(&b);
  A->close_stream(s1);
  A->close_stream(s2);
  sqlite3_close(db);
  fx_teardown(&f);
}
END_TEST

/* With purge_interval, an ack within the interval of the last write is kept pending; a poll
 * that finds nothing writes it once it is due. */
START_TEST(ack_interval) {
  fixture f;
  purge_interval = "1000";
  fx_setup(&f, USERS_YAML, NULL);
  purge_interval = "0";
  fx_install(&f);
  as_stream *s1 = open_stream(&f, "c1", NULL);
  sqlite3 *db = raw_open(&f);
  insert_users(db, "q", 5);
  as_batch b = {0};
  as_error err = {0};
  poll_n(s1, &b, 2);
  ck_assert_int_eq(b.n, 2);
  ck_assert_int_eq(A->ack(s1, b.pos, &err), AS_OK); /* the first: written at once */
  int64_t t0 = as_monotonic_us();
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM _arraysync_changelog"), 3);
  as_batch_reset(&b);
  poll_n(s1, &b, 100);
  ck_assert_int_eq(b.n, 3);
  ck_assert_int_eq(A->ack(s1, b.pos, &err), AS_OK);
  int64_t t1 = as_monotonic_us();
  if (t1 - t0 < 1000000) /* pending (unless this machine stalled for the whole interval) */
    ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM _arraysync_changelog"), 3);
  /* nothing to read for longer than the interval: written, the newest row kept as anchor */
  as_batch_reset(&b);
  ck_assert_int_eq(A->poll(s1, &b, 100, 1200, &err), AS_OK);
  ck_assert_int_eq(b.n, 0);
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM _arraysync_changelog"), 1);
  ck_assert_int_eq(raw_int(db, "SELECT max(seq) FROM _arraysync_changelog"), 5);
  as_batch_clear(&b);
  A->close_stream(s1);
  sqlite3_close(db);
  fx_teardown(&f);
}
END_TEST

static void typed_row(const as_schema *s, as_row *r, int64_t id, int variant) {
  put_i64(r, col(s, "id"), id);
  as_value v = AS_VALUE_NULL;
  as_value_set_bool(&v, variant % 2);
  as_row_put(r, (size_t)col(s, "b"), &v);
  put_i64(r, col(s, "i"), variant ? INT64_MIN : INT64_MAX);
  double ds[] = {0.1 + 0.2, NAN, INFINITY, -INFINITY, 1e300, -5e-324, 3.0};
  as_value_set_double(&v, ds[variant % 7]);
  as_row_put(r, (size_t)col(s, "d"), &v);
  put_text(r, col(s, "dec"), AS_T_DECIMAL, variant ? "-12345678901234567890.000100" : "0.5");
  put_text(r, col(s, "t"), AS_T_TEXT, variant ? "héllo \"wörld\" ' \n 日本" : "");
  as_value_set_str(&v, AS_T_BYTES, "\x00\x01\xff\x00z", 5);
  as_row_put(r, (size_t)col(s, "by"), &v);
  put_text(r, col(s, "u"), AS_T_UUID, "123e4567-e89b-12d3-a456-426614174000");
  put_text(r, col(s, "o"), AS_T_OBJECTID, "507f1f77bcf86cd799439011");
  put_text(r, col(s, "ts"), AS_T_TIMESTAMP,
           variant ? "0001-01-01T00:00:00.000001Z" : "2024-02-29T23:59:59.999999Z");
  put_text(r, col(s, "dt"), AS_T_DATE, variant ? "9999-12-31" : "1970-01-01");
  put_text(r, col(s, "j"), AS_T_JSON,
           "{\"a\":[1,2.5,{\"$oid\":\"507f1f77bcf86cd799439011\"}],\"b\":null}");
}

static void assert_rows_equal(const as_schema *s, const as_row *want, const as_row *got) {
  for (size_t i = 0; i < s->ncols; i++) {
    ck_assert_msg(as_row_has(got, i), "column %s absent", s->cols[i].name);
    char *a = NULL, *b = NULL;
    as_error e;
    if (want->v[i].type != AS_T_NULL) as_value_to_text(&want->v[i], &a, &e);
    if (got->v[i].type != AS_T_NULL) as_value_to_text(&got->v[i], &b, &e);
    ck_assert_msg(as_value_equal(&want->v[i], &got->v[i]), "column %s: want %s got %s (type %s)",
                  s->cols[i].name, a ? a : "null", b ? b : "null", as_type_name(got->v[i].type));
    free(a);
    free(b);
  }
}

START_TEST(types_round_trip) {
  fixture f;
  fx_setup(&f, TYPES_YAML, NULL);
  fx_install(&f);
  const as_schema *s = f.schemas[0];
  as_stream *st = open_stream(&f, "c", NULL);
  enum { N = 8 };
  as_delta d[N];
  for (int k = 0; k < N; k++) {
    ck_assert_int_eq(as_delta_init(&d[k], s, AS_OP_INSERT), AS_OK);
    as_delta_set_origin(&d[k], "mongo");
    if (k == N - 1) { /* all NULL but the key */
      put_i64(&d[k].row, 0, k);
      for (size_t i = 1; i < s->ncols; i++) put_null(&d[k].row, (int)i);
    } else {
      typed_row(s, &d[k].row, k, k);
    }
  }
  as_dead_list dead = {0};
  apply_commit(&f, d, N, &dead, "1");
  ck_assert_int_eq(dead.n, 0);
  as_batch b = {0};
  poll_n(st, &b, 100);
  ck_assert_int_eq(b.ndead, 0);
  ck_assert_int_eq(b.n, N);
  as_error err = {0};
  for (int k = 0; k < N; k++) {
    ck_assert_int_eq(b.d[k].op, AS_OP_INSERT);
    assert_rows_equal(s, &d[k].row, &b.d[k].row);
    as_row key = {0}, got = {0};
    ck_assert_int_eq(as_row_init(&key, s->ncols), AS_OK);
    put_i64(&key, 0, k);
    ck_assert_msg(A->read_row(f.node, s, &key, &got, &err) == AS_OK, "%s", err.message);
    assert_rows_equal(s, &d[k].row, &got);
    as_row_clear(&key);
    as_row_clear(&got);
  }
  /* snapshot reads the same values */
  as_snapshot *sn = NULL;
  ck_assert_int_eq(A->snapshot_open(f.node, s, NULL, &sn, &err), AS_OK);
  ck_assert_int_eq(A->snapshot_estimate(sn), N);
  as_batch_reset(&b);
  ck_assert_int_eq(A->snapshot_next(sn, &b, 100, &err), AS_EOF);
  ck_assert_int_eq(b.n, N);
  for (int k = 0; k < N; k++) assert_rows_equal(s, &d[k].row, &b.d[k].row);
  A->snapshot_close(sn);
  /* an update changing only the double and the bytes */
  as_delta u;
  ck_assert_int_eq(as_delta_init(&u, s, AS_OP_UPDATE), AS_OK);
  put_i64(&u.row, 0, 1);
  as_value v = AS_VALUE_NULL;
  as_value_set_double(&v, -0.25);
  as_row_put(&u.row, (size_t)col(s, "d"), &v);
  as_value_set_str(&v, AS_T_BYTES, "", 0);
  as_row_put(&u.row, (size_t)col(s, "by"), &v);
  apply_commit(&f, &u, 1, &dead, "2");
  as_batch_reset(&b);
  poll_n(st, &b, 100);
  ck_assert_int_eq(b.n, 1);
  ck_assert_int_eq(b.d[0].op, AS_OP_UPDATE);
  size_t present = 0;
  for (size_t i = 0; i < s->ncols; i++) present += as_row_has(&b.d[0].row, i);
  ck_assert_int_eq(present, 3);
  ck_assert(as_value_equal(val(&b.d[0], col(s, "d")), &u.row.v[col(s, "d")]));
  ck_assert(as_value_equal(val(&b.d[0], col(s, "by")), &u.row.v[col(s, "by")]));
  as_delta_clear(&u);
  /* doubles written by another client: ±Inf as REAL (JSON has no Inf), subnormals, text */
  sqlite3 *db = raw_open(&f);
  raw_exec(db,
           "INSERT INTO typed (id, d, by) VALUES (100, 9e999, 'raw text'), (101, -9e999, NULL), "
           "(102, 4.9e-324, NULL), (103, 'NaN', NULL), (104, 7, NULL)");
  as_batch_reset(&b);
  poll_n(st, &b, 100);
  ck_assert_int_eq(b.ndead, 0);
  ck_assert_int_eq(b.n, 5);
  int cd = col(s, "d");
  ck_assert(isinf(val(&b.d[0], cd)->u.d) && val(&b.d[0], cd)->u.d > 0);
  ck_assert(isinf(val(&b.d[1], cd)->u.d) && val(&b.d[1], cd)->u.d < 0);
  ck_assert(val(&b.d[2], cd)->u.d == 4.9e-324);
  ck_assert(isnan(val(&b.d[3], cd)->u.d));
  ck_assert_int_eq(val(&b.d[4], cd)->type, AS_T_DOUBLE); /* REAL affinity: 7 -> 7.0 */
  ck_assert(val(&b.d[4], cd)->u.d == 7.0);
  ck_assert_int_eq(val(&b.d[0], col(s, "by"))->u.s.len, 8); /* TEXT in a BLOB column: its bytes */
  sqlite3_close(db);
  for (int k = 0; k < N; k++) as_delta_clear(&d[k]);
  as_batch_clear(&b);
  A->close_stream(st);
  fx_teardown(&f);
}
END_TEST

START_TEST(lenient_values_and_dead_letters) {
  fixture f;
  fx_setup(&f, USERS_YAML, NULL);
  fx_install(&f);
  const as_schema *s = f.schemas[0];
  as_stream *st = open_stream(&f, "c", NULL);
  sqlite3 *db = raw_open(&f);
  raw_exec(db,
           "INSERT INTO users (id, email, seen, ok, amount) VALUES ('a', 'x', '2024-01-01 "
           "10:00:00', 'true', 12.5)");
  raw_exec(db, "INSERT INTO users (id, email, seen, ok) VALUES ('b', 'x', 1704103200, 1)");
  raw_exec(db, "INSERT INTO users (id, email, seen) VALUES ('bad', 'x', 'next tuesday')");
  raw_exec(db, "INSERT INTO users (id, email, score) VALUES ('c', 'x', x'00ff')");
  raw_exec(db, "INSERT INTO users (id, email, score) VALUES ('d', 'x', 7)");
  as_batch b = {0};
  poll_n(st, &b, 100);
  ck_assert_int_eq(b.n, 3);
  ck_assert_int_eq(b.ndead, 2);
  as_value want = AS_VALUE_NULL;
  as_error err = {0};
  as_value_from_text(AS_T_TIMESTAMP, "2024-01-01T10:00:00Z", 20, &want, &err);
  ck_assert(as_value_equal(val(&b.d[0], col(s, "seen")), &want));
  ck_assert(as_value_equal(val(&b.d[1], col(s, "seen")), &want)); /* 1704103200 = same instant */
  ck_assert_int_eq(val(&b.d[0], col(s, "ok"))->type, AS_T_BOOL);
  ck_assert(val(&b.d[0], col(s, "ok"))->u.b);
  ck_assert(val(&b.d[1], col(s, "ok"))->u.b);
  ck_assert_int_eq(val(&b.d[0], col(s, "amount"))->type, AS_T_DECIMAL);
  ck_assert_str_eq(val(&b.d[0], col(s, "amount"))->u.s.ptr, "12.5");
  ck_assert_str_eq(val(&b.d[2], col(s, "id"))->u.s.ptr, "d");
  const char *msg = b.dead[0].error;
  ck_assert_msg(strstr(msg, "users") && strstr(msg, "bad") && strstr(msg, "seen") &&
                    strstr(msg, "next tuesday"),
                "%s", msg);
  ck_assert_ptr_nonnull(b.dead[0].raw);
  ck_assert_ptr_nonnull(strstr(b.dead[0].raw, "next tuesday"));
  ck_assert_ptr_nonnull(b.dead[0].pos);
  ck_assert_ptr_eq(b.dead[0].schema, s);
  ck_assert_msg(strstr(b.dead[1].error, "score") && strstr(b.dead[1].error, "00ff"), "%s",
                b.dead[1].error);
  /* the position moved past the dead rows too */
  ck_assert_int_eq(atoll(b.pos), atoll(b.d[2].pos));
  as_value_clear(&want);
  as_batch_clear(&b);
  A->close_stream(st);
  sqlite3_close(db);
  fx_teardown(&f);
}
END_TEST

START_TEST(apply_dead_letter_in_good_batch) {
  fixture f;
  fx_setup(&f, USERS_YAML, NULL);
  fx_install(&f);
  const as_schema *s = f.schemas[0];
  as_delta d[4];
  user_delta(&d[0], s, AS_OP_INSERT, "a", "a@x", "mongo");
  user_delta(&d[1], s, AS_OP_INSERT, "b", NULL, "mongo");
  put_null(&d[1].row, col(s, "email")); /* NOT NULL violation */
  user_delta(&d[2], s, AS_OP_INSERT, "c", "c@x", "mongo");
  user_delta(&d[3], s, AS_OP_DELETE, "a", NULL, "mongo");
  as_dead_list dead = {0};
  apply_commit(&f, d, 4, &dead, "7");
  ck_assert_int_eq(dead.n, 1);
  ck_assert_int_eq(dead.items[0].index, 1);
  ck_assert_msg(strstr(dead.items[0].error, "users") && strstr(dead.items[0].error, "\"b\"") &&
                    strstr(dead.items[0].error, "NOT NULL"),
                "%s", dead.items[0].error);
  ck_assert_ptr_nonnull(dead.items[0].raw);
  sqlite3 *db = raw_open(&f);
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM users"), 1);
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM users WHERE id = 'c'"), 1);
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM _arraysync_checkpoints WHERE position = '7'"),
                   1);
  /* update sets only present columns */
  raw_exec(db, "UPDATE users SET score = 3 WHERE id = 'c'");
  as_delta u;
  user_delta(&u, s, AS_OP_UPDATE, "c", "c2@x", "mongo");
  apply_commit(&f, &u, 1, &dead, "8");
  ck_assert_int_eq(raw_int(db, "SELECT score FROM users WHERE id = 'c'"), 3);
  ck_assert_int_eq(raw_int(db, "SELECT email = 'c2@x' FROM users WHERE id = 'c'"), 1);
  as_delta_clear(&u);
  for (int i = 0; i < 4; i++) as_delta_clear(&d[i]);
  as_dead_list_clear(&dead);
  sqlite3_close(db);
  fx_teardown(&f);
}
END_TEST

START_TEST(awkward_identifiers) {
  fixture f;
  fx_setup(&f, WEIRD_YAML, USERS_YAML);
  fx_install(&f);
  const as_schema *s = f.schemas[0];
  as_stream *st = open_stream(&f, "c", NULL);
  int cw = col(s, "Weird \"Name\""), cg = col(s, "größe"), ci = col(s, "it's");
  as_delta d[2];
  for (int k = 0; k < 2; k++) {
    ck_assert_int_eq(as_delta_init(&d[k], s, AS_OP_INSERT), AS_OK);
    put_i64(&d[k].row, col(s, "order"), 1);
    put_text(&d[k].row, cw, AS_T_TEXT, k ? "k2" : "k1");
    put_text(&d[k].row, cg, AS_T_TEXT, "XL");
    put_i64(&d[k].row, ci, 9 + k);
  }
  as_dead_list dead = {0};
  apply_commit(&f, d, 2, &dead, "1");
  ck_assert_int_eq(dead.n, 0);
  sqlite3 *db = raw_open(&f);
  raw_exec(db, "UPDATE \"select\" SET \"größe\" = 'S' WHERE \"Weird \"\"Name\"\"\" = 'k2'");
  raw_exec(db, "DELETE FROM \"select\" WHERE \"Weird \"\"Name\"\"\" = 'k1'");
  as_batch b = {0};
  poll_n(st, &b, 100);
  ck_assert_int_eq(b.ndead, 0);
  ck_assert_int_eq(b.n, 4);
  ck_assert_int_eq(b.d[2].op, AS_OP_UPDATE);
  ck_assert_str_eq(val(&b.d[2], cg)->u.s.ptr, "S");
  ck_assert_str_eq(val(&b.d[2], cw)->u.s.ptr, "k2");
  ck_assert_int_eq(b.d[3].op, AS_OP_DELETE);
  ck_assert_str_eq(val(&b.d[3], cw)->u.s.ptr, "k1");
  as_error err = {0};
  as_row key = {0}, got = {0};
  as_row_init(&key, s->ncols);
  put_i64(&key, col(s, "order"), 1);
  put_text(&key, cw, AS_T_TEXT, "k2");
  ck_assert_msg(A->read_row(f.node, s, &key, &got, &err) == AS_OK, "%s", err.message);
  ck_assert_int_eq(got.v[ci].u.i, 10);
  as_row_clear(&got);
  apply_commit(&f, &d[1], 0, &dead, "2");
  as_delta del;
  ck_assert_int_eq(as_delta_init(&del, s, AS_OP_DELETE), AS_OK);
  put_i64(&del.row, col(s, "order"), 1);
  put_text(&del.row, cw, AS_T_TEXT, "k2");
  apply_commit(&f, &del, 1, &dead, "3");
  ck_assert_int_eq(A->read_row(f.node, s, &key, &got, &err), AS_ENOTFOUND);
  as_delta_clear(&del);
  as_row_clear(&key);
  as_row_clear(&got);
  for (int k = 0; k < 2; k++) as_delta_clear(&d[k]);
  as_batch_clear(&b);
  A->close_stream(st);
  ck_assert_int_eq(A->uninstall(f.node, &err), AS_OK);
  ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"), 0);
  sqlite3_close(db);
  fx_teardown(&f);
}
END_TEST

START_TEST(snapshot_pages_and_resume) {
  fixture f;
  fx_setup(&f, USERS_YAML, NULL);
  fx_install(&f);
  sqlite3 *db = raw_open(&f);
  raw_exec(db,
           "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 25) "
           "INSERT INTO users (id, email) SELECT printf('k%02d', x), 'e' FROM n");
  as_error err = {0};
  as_snapshot *sn = NULL;
  ck_assert_int_eq(A->snapshot_open(f.node, f.schemas[0], NULL, &sn, &err), AS_OK);
  ck_assert_int_eq(A->snapshot_estimate(sn), 25);
  as_batch b = {0};
  ck_assert_int_eq(A->snapshot_next(sn, &b, 10, &err), AS_OK);
  ck_assert_int_eq(A->snapshot_next(sn, &b, 10, &err), AS_OK);
  ck_assert_int_eq(A->snapshot_next(sn, &b, 10, &err), AS_EOF);
  ck_assert_int_eq(b.n, 25);
  for (size_t i = 0; i < b.n; i++) {
    char want[32];
    snprintf(want, sizeof want, "k%02zu", i + 1);
    ck_assert_str_eq(b.d[i].row.v[0].u.s.ptr, want);
    ck_assert_int_eq(b.d[i].op, AS_OP_INSERT);
  }
  A->snapshot_close(sn);
  as_batch_reset(&b);
  ck_assert_int_eq(A->snapshot_open(f.node, f.schemas[0], "{\"id\":\"k20\"}", &sn, &err), AS_OK);
  ck_assert_int_eq(A->snapshot_next(sn, &b, 100, &err), AS_EOF);
  ck_assert_int_eq(b.n, 5);
  ck_assert_str_eq(b.d[0].row.v[0].u.s.ptr, "k21");
  A->snapshot_close(sn);
  as_batch_clear(&b);
  sqlite3_close(db);
  fx_teardown(&f);
}
END_TEST

START_TEST(busy_is_retry) {
  fixture f;
  fx_setup(&f, USERS_YAML, NULL);
  fx_install(&f);
  A->exit(f.node);
  fx_open(&f, "lite", "20");
  sqlite3 *db = raw_open(&f);
  raw_exec(db, "BEGIN IMMEDIATE");
  as_error err = {0};
  ck_assert_int_eq(A->begin(f.node, &err), AS_RETRY);
  raw_exec(db, "COMMIT");
  ck_assert_int_eq(A->begin(f.node, &err), AS_OK);
  ck_assert_int_eq(A->rollback(f.node), AS_OK);
  sqlite3_close(db);
  /* bad configuration */
  as_node *n = NULL;
  f.opts[1].value = "soon";
  ck_assert_int_eq(A->init(&f.cfg, NULL, 0, &n, &err), AS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.message, "busy_timeout"));
  f.cfg.nopts = 0;
  ck_assert_int_eq(A->init(&f.cfg, NULL, 0, &n, &err), AS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.message, "path"));
  fx_teardown(&f);
}
END_TEST

int main(void) {
  Suite *s = suite_create("sqlite_adapter");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, install_idempotent_and_uninstall);
  tcase_add_test(tc, install_rejects_missing_column);
  tcase_add_test(tc, capture_other_connection);
  tcase_add_test(tc, origin_marking);
  tcase_add_test(tc, purge_after_ack);
  tcase_add_test(tc, ack_interval);
  tcase_add_test(tc, types_round_trip);
  tcase_add_test(tc, lenient_values_and_dead_letters);
  tcase_add_test(tc, apply_dead_letter_in_good_batch);
  tcase_add_test(tc, awkward_identifiers);
  tcase_add_test(tc, snapshot_pages_and_resume);
  tcase_add_test(tc, busy_is_retry);
  suite_add_tcase(s, tc);
  return as_test_run(s);
}
