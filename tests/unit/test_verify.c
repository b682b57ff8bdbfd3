/* test_verify.c — verify's bisection (connector/as_verify.c) against an in-memory adapter:
 * equal tables cost one round of signatures and no row fetch; differences are named exactly
 * and found by fetching only small leaves; one empty side; client hashing; the automatic
 * fall-back when a server refuses to hash. */
#include <check.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "as_codec_fixture.h"
#include "as_test_util.h"
#include "as_verify_int.h"

/* ------------------------------------------------------------ an in-memory adapter */

typedef struct mrow {
  int64_t key;
  uint64_t hash;
} mrow;

struct as_node { /* the fake node: a sorted table */
  mrow *rows;
  size_t n;
  bool refuse_server;   /* verify_open(server) -> AS_ENOTFOUND */
  uint64_t fetched;     /* rows handed out by verify_rows */
  uint64_t signs, splits;
};

struct as_verify {
  as_node *n;
  const as_schema *s;
  bool client;
  uint64_t bytes;
};

static bool in_range(const as_value *lo, const as_value *hi, int64_t k) {
  return (!lo || k >= lo[0].u.i) && (!hi || k < hi[0].u.i);
}

static int m_open(as_node *n, const as_schema *s, bool client, as_verify **out, as_error *err) {
  if (!client && n->refuse_server)
    return as_error_set(err, AS_DOM_MONGO, AS_ENOTFOUND, "the server refuses $toHashedIndexKey");
  as_verify *v = calloc(1, sizeof *v);
  v->n = n;
  v->s = s;
  v->client = client;
  *out = v;
  return AS_OK;
}

static int m_estimate(as_verify *v, int64_t *out, as_error *err) {
  (void)err;
  *out = (int64_t)v->n->n;
  return AS_OK;
}

static int m_sign(as_verify *v, const as_value *lo, const as_value *hi, const as_value *b,
                  size_t nb, as_seghash *out, as_error *err) {
  (void)err;
  memset(out, 0, (nb + 1) * sizeof *out);
  v->n->signs++;
  for (size_t i = 0; i < v->n->n; i++) {
    int64_t k = v->n->rows[i].key;
    if (!in_range(lo, hi, k)) continue;
    size_t s = 0;
    while (s < nb && k >= b[s].u.i) s++;
    as_seghash_add(&out[s], v->client ? v->n->rows[i].hash * 31 : v->n->rows[i].hash);
    if (v->client) v->bytes += 16;
  }
  v->bytes += 16 * (nb + 1);
  return AS_OK;
}

static int m_split(as_verify *v, const as_value *lo, const as_value *hi, int64_t rows,
                   size_t parts, as_value **bounds, size_t *nb, as_error *err) {
  (void)err;
  (void)rows;
  v->n->splits++;
  size_t cnt = 0;
  for (size_t i = 0; i < v->n->n; i++) cnt += in_range(lo, hi, v->n->rows[i].key);
  as_value *b = calloc(parts, sizeof *b);
  size_t got = 0, seen = 0;
  size_t step = (cnt + parts - 1) / parts;
  for (size_t i = 0; i < v->n->n && step; i++) {
    if (!in_range(lo, hi, v->n->rows[i].key)) continue;
    if (seen && seen % step == 0 && got + 1 < parts) as_value_set_int64(&b[got++], v->n->rows[i].key);
    seen++;
  }
  *bounds = b;
  *nb = got;
  return AS_OK;
}

static int m_rows(as_verify *v, const as_value *lo, const as_value *hi,
                  int (*fn)(void *, const as_value *, uint64_t), void *ctx, as_error *err) {
  (void)err;
  for (size_t i = 0; i < v->n->n; i++) {
    if (!in_range(lo, hi, v->n->rows[i].key)) continue;
    as_value k = AS_VALUE_NULL;
    as_value_set_int64(&k, v->n->rows[i].key);
    v->n->fetched++;
    v->bytes += 16;
    int rc = fn(ctx, &k, v->client ? v->n->rows[i].hash * 31 : v->n->rows[i].hash);
    if (rc) return rc;
  }
  return AS_OK;
}

static uint64_t m_bytes(as_verify *v) { return v->bytes; }
static void m_close(as_verify *v) { free(v); }

static const as_adapter fake = {.abi = AS_ADAPTER_ABI,
                                .kind = "fake",
                                .verify_open = m_open,
                                .verify_estimate = m_estimate,
                                .verify_sign = m_sign,
                                .verify_split = m_split,
                                .verify_rows = m_rows,
                                .verify_bytes = m_bytes,
                                .verify_close = m_close};

/* ------------------------------------------------------------ fixture */

static const fx_col cols[] = {{"id", "_id", AS_T_INT64, FX_KEY}, {"v", "v", AS_T_TEXT, 0}};

typedef struct fx {
  as_schema *s;
  as_node a, b;
  as_node_config ca, cb;
  vnode va, vb;
  as_verify_pair out;
  vpair p;
} fx;

static void table(as_node *n, int64_t from, int64_t to) {
  n->n = 0;
  n->rows = calloc((size_t)(to - from + 1), sizeof *n->rows);
  for (int64_t k = from; k <= to; k++) n->rows[n->n++] = (mrow){k, (uint64_t)k * 0x9e3779b97f4a7c15ULL};
}

static void drop(as_node *n, int64_t key) {
  for (size_t i = 0; i < n->n; i++) {
    if (n->rows[i].key == key) {
      memmove(&n->rows[i], &n->rows[i + 1], (n->n - i - 1) * sizeof *n->rows);
      n->n--;
      return;
    }
  }
}

static void add(as_node *n, int64_t key) {
  n->rows = realloc(n->rows, (n->n + 1) * sizeof *n->rows);
  size_t i = n->n;
  while (i > 0 && n->rows[i - 1].key > key) {
    n->rows[i] = n->rows[i - 1];
    i--;
  }
  n->rows[i] = (mrow){key, (uint64_t)key * 77};
  n->n++;
}

static void change(as_node *n, int64_t key) {
  for (size_t i = 0; i < n->n; i++) {
    if (n->rows[i].key == key) n->rows[i].hash ^= 1;
  }
}

static void setup(fx *f, int64_t nrows) {
  memset(f, 0, sizeof *f);
  f->s = fx_schema("m", cols, 2);
  table(&f->a, 1, nrows);
  table(&f->b, 1, nrows);
  f->ca = (as_node_config){.name = "a", .kind = "postgres"};
  f->cb = (as_node_config){.name = "b", .kind = "mongodb"};
  f->va = (vnode){&f->ca, &fake, &f->a};
  f->vb = (vnode){&f->cb, &fake, &f->b};
  f->p.s = f->s;
  f->p.out = &f->out;
  f->p.side[0].vn = &f->va;
  f->p.side[1].vn = &f->vb;
}

static void teardown(fx *f) {
  for (size_t i = 0; i < f->p.ncand; i++) vkey_free(f->s, f->p.cand[i].key);
  free(f->p.cand);
  free(f->a.rows);
  free(f->b.rows);
  fx_schema_free(f->s);
}

/* The candidates of one kind as "k1,k2,..." in key order. */
static char *cands(fx *f, int kind) {
  vcand_sort(&f->p);
  static char buf[4096];
  buf[0] = '\0';
  for (size_t i = 0; i < f->p.ncand; i++) {
    if (f->p.cand[i].kind != kind) continue;
    char t[32];
    snprintf(t, sizeof t, "%s%lld", buf[0] ? "," : "", (long long)f->p.cand[i].key[0].u.i);
    strcat(buf, t);
  }
  return buf;
}

/* ------------------------------------------------------------ tests */

START_TEST(test_equal_tables) {
  fx f;
  as_error err;
  setup(&f, 100000);
  ck_assert_int_eq(vpair_compare(&f.p, AS_HASH_SERVER, &err), AS_OK);
  ck_assert_uint_eq(f.p.ncand, 0);
  ck_assert_int_eq(f.out.rows_a, 100000);
  ck_assert_int_eq(f.out.rows_b, 100000);
  ck_assert_uint_eq(f.out.segments, 97);          /* one round of 100000 / 1024 segments ... */
  ck_assert_uint_eq(f.a.fetched + f.b.fetched, 0); /* ... and no row fetched */
  ck_assert_uint_eq(f.a.signs, 1);
  ck_assert_uint_eq(f.b.signs, 1);
  ck_assert_uint_eq(f.a.splits + f.b.splits, 1);
  ck_assert(!f.out.client);
  teardown(&f);
}
END_TEST

START_TEST(test_differences_named_exactly) {
  fx f;
  as_error err;
  setup(&f, 100000);
  drop(&f.b, 7);
  drop(&f.b, 50000);
  add(&f.b, 100001);
  add(&f.a, 0);
  change(&f.b, 123);
  change(&f.a, 99999);
  change(&f.b, 64000);
  ck_assert_int_eq(vpair_compare(&f.p, AS_HASH_SERVER, &err), AS_OK);
  ck_assert_str_eq(cands(&f, VC_ONLY_A), "0,7,50000");
  ck_assert_str_eq(cands(&f, VC_ONLY_B), "100001");
  ck_assert_str_eq(cands(&f, VC_DIFFERENT), "123,64000,99999");
  ck_assert_int_eq(f.out.rows_a, 100001);
  ck_assert_int_eq(f.out.rows_b, 99999);
  /* bisection: the rows fetched are the leaves around the 7 differences, not the table */
  ck_assert_msg(f.a.fetched + f.b.fetched <= 7 * 2 * 128, "fetched %llu rows",
                (unsigned long long)(f.a.fetched + f.b.fetched));
  ck_assert_uint_gt(f.out.segments, 97);
  teardown(&f);
}
END_TEST

START_TEST(test_one_side_empty) {
  fx f;
  as_error err;
  setup(&f, 3000);
  f.b.n = 0;
  ck_assert_int_eq(vpair_compare(&f.p, AS_HASH_SERVER, &err), AS_OK);
  size_t only_a = 0;
  for (size_t i = 0; i < f.p.ncand; i++) only_a += f.p.cand[i].kind == VC_ONLY_A;
  ck_assert_uint_eq(only_a, 3000);
  ck_assert_uint_eq(f.p.ncand, 3000);
  ck_assert_uint_eq(f.b.fetched, 0); /* an empty side is never asked for rows */
  teardown(&f);
}
END_TEST

START_TEST(test_small_table_bisects) {
  fx f;
  as_error err;
  setup(&f, 1000); /* one top segment: it must still be cut, not fetched whole */
  change(&f.a, 500);
  ck_assert_int_eq(vpair_compare(&f.p, AS_HASH_SERVER, &err), AS_OK);
  ck_assert_str_eq(cands(&f, VC_DIFFERENT), "500");
  ck_assert_uint_le(f.a.fetched, 128);
  teardown(&f);
}
END_TEST

START_TEST(test_client_and_fallback) {
  fx f;
  as_error err;
  setup(&f, 20000);
  drop(&f.a, 10);
  change(&f.b, 15000);
  ck_assert_int_eq(vpair_compare(&f.p, AS_HASH_CLIENT, &err), AS_OK);
  ck_assert(f.out.client);
  ck_assert_str_eq(cands(&f, VC_ONLY_B), "10");
  ck_assert_str_eq(cands(&f, VC_DIFFERENT), "15000");
  ck_assert_int_eq(f.out.rows_a, 19999);
  ck_assert_uint_eq(f.a.fetched, 19999); /* client hashing reads every row once */
  teardown(&f);

  setup(&f, 20000);
  change(&f.b, 42);
  f.b.refuse_server = true;
  ck_assert_int_eq(vpair_compare(&f.p, AS_HASH_AUTO, &err), AS_OK);
  ck_assert(f.out.client);
  ck_assert_msg(strstr(f.out.note, "refuses $toHashedIndexKey") != NULL, "%s", f.out.note);
  ck_assert_str_eq(cands(&f, VC_DIFFERENT), "42");
  teardown(&f);

  setup(&f, 100);
  f.b.refuse_server = true; /* --hash-on server: no fall-back */
  ck_assert_int_ne(vpair_compare(&f.p, AS_HASH_SERVER, &err), AS_OK);
  teardown(&f);
}
END_TEST

START_TEST(test_key_text) {
  as_schema *s = fx_schema("m", cols, 2);
  as_value k = AS_VALUE_NULL;
  as_value_set_int64(&k, 42);
  char *t = as_verify_key_text(s, &k);
  ck_assert_str_eq(t, "42");
  free(t);
  as_value_set_str(&k, AS_T_TEXT, "u1", 2);
  t = as_verify_key_text(s, &k);
  ck_assert_str_eq(t, "\"u1\"");
  free(t);
  as_value_clear(&k);
  fx_schema_free(s);
}
END_TEST

static as_config *load_config(const char *verify_part, as_error *err) {
  char *dir = as_test_tmpdir();
  char *maps = malloc(strlen(dir) + 8);
  sprintf(maps, "%s/maps", dir);
  mkdir(maps, 0700);
  free(as_test_write_file(maps, "a.yaml", "mapping: a\nkey: id\ncolumns: { id: int64 }\n"));
  char cfg[1024];
  snprintf(cfg, sizeof cfg,
           "nodes:\n  m: { kind: mongodb, uri: u, database: d }\n  s: { kind: sqlite, path: x }\n"
           "mappings: maps/*.yaml\n%s", verify_part);
  char *path = as_test_write_file(dir, "c.yaml", cfg);
  as_config *c = NULL;
  if (as_config_load(path, &c, err) != AS_OK) c = NULL;
  free(path);
  as_test_rmtree(dir);
  free(maps);
  free(dir);
  return c;
}

START_TEST(test_config_key) {
  as_error err;
  as_config *c = load_config("", &err);
  ck_assert_ptr_nonnull(c);
  ck_assert_int_eq(c->verify_every_ms, 0); /* off unless configured */
  as_config_free(c);
  c = load_config("verify: { every: 6h }\n", &err);
  ck_assert_msg(c != NULL, "%s", err.message);
  ck_assert_int_eq(c->verify_every_ms, 6 * 3600 * 1000);
  ck_assert(!c->verify_repair);
  as_config_free(c);
  c = load_config("verify: { every: 30m, repair: true }\n", &err);
  ck_assert_int_eq(c->verify_every_ms, 30 * 60 * 1000);
  ck_assert(c->verify_repair);
  as_config_free(c);
  ck_assert_ptr_null(load_config("verify: { repair: true }\n", &err));
  ck_assert_msg(strstr(err.message, "c.yaml:5:") && strstr(err.message, "verify.every: is needed"), "%s", err.message);
  ck_assert_ptr_null(load_config("verify: { every: 6h, often: yes }\n", &err));
  ck_assert_msg(strstr(err.message, "often") != NULL, "%s", err.message);
  ck_assert_ptr_null(load_config("verify: { every: 10ms }\n", &err));
  ck_assert_msg(strstr(err.message, "out of range") != NULL, "%s", err.message);
}
END_TEST

/* A version of origin held by the nodes of mask (bit = node id % 64). */
static as_version ver(int64_t hlc, const char *origin, bool deleted, uint64_t mask) {
  as_version v;
  memset(&v, 0, sizeof v);
  v.hlc = hlc;
  snprintf(v.origin, sizeof v.origin, "%s", origin);
  v.deleted = deleted;
  v.row_mask = mask;
  return v;
}

static void quick_expect_at(int line, const as_config *c, size_t differ, int64_t rows_a, int64_t rows_b) {
  as_error err;
  as_verify_opts o = {.quick = true};
  as_verify_report r;
  ck_assert_msg(as_verify_run(c, &o, &r, &err) == AS_OK, "%s", err.message);
  ck_assert_uint_eq(r.n, 1);
  ck_assert(r.p[0].quick);
  ck_assert_msg(r.p[0].buckets_differ == differ && r.p[0].rows_a == rows_a && r.p[0].rows_b == rows_b,
                "line %d: %zu buckets differ, rows %lld and %lld", line, r.p[0].buckets_differ,
                (long long)r.p[0].rows_a, (long long)r.p[0].rows_b);
  ck_assert(as_verify_report_equal(&r, false) == (differ == 0));
  as_verify_report_free(&r);
}

#define quick_expect(...) quick_expect_at(__LINE__, __VA_ARGS__)
#define put(st, key, v) ck_assert_msg(as_state_version_put(st, "a", key, v, &err) == AS_OK, "%s", err.message)

START_TEST(test_quick) {
  as_error err;
  char *dir = as_test_tmpdir();
  char maps[4096];
  snprintf(maps, sizeof maps, "%s/maps", dir);
  mkdir(maps, 0700);
  free(as_test_write_file(maps, "a.yaml", "mapping: a\nkey: id\ncolumns: { id: int64, x: text }\n"));
  char *path = as_test_write_file(dir, "c.yaml",
                                  "nodes:\n  m: { kind: mongodb, uri: u, database: d }\n"
                                  "  s: { kind: sqlite, path: x }\nstate: st.db\nmappings: maps/*.yaml\n");
  as_config *c = NULL;
  ck_assert_msg(as_config_load(path, &c, &err) == AS_OK, "%s", err.message);
  as_verify_opts o = {.quick = true};
  as_verify_report r;
  /* no state store yet: an error, not "equal" */
  ck_assert_int_eq(as_verify_run(c, &o, &r, &err), AS_ERR);
  as_state *st;
  ck_assert_int_eq(as_state_open(c->state_path, false, &st, &err), AS_OK);
  uint16_t m, sq;
  ck_assert_int_eq(as_state_node_id(st, "m", &m, &err), AS_OK);
  ck_assert_int_eq(as_state_node_id(st, "s", &sq, &err), AS_OK);
  uint64_t bm = 1ull << (m % 64), bs = 1ull << (sq % 64);
  char key[32];
  /* 100 keys both nodes hold, written in one transaction */
  ck_assert_int_eq(as_state_begin(st, &err), AS_OK);
  for (int k = 0; k < 100; k++) {
    snprintf(key, sizeof key, "{\"id\":%d}", k);
    as_version v = ver(1000 + k, "m", false, bm | bs);
    put(st, key, &v);
  }
  ck_assert_int_eq(as_state_commit(st, &err), AS_OK);
  quick_expect(c, 0, 100, 100);
  /* key 5 changes on s and has not reached m yet (a put outside a transaction) */
  as_version v5 = ver(5000, "s", false, bs);
  put(st, "{\"id\":5}", &v5);
  quick_expect(c, 1, 99, 100);
  /* it reaches m: equal again */
  as_version_mark_holder(&v5, m);
  put(st, "{\"id\":5}", &v5);
  quick_expect(c, 0, 100, 100);
  /* key 7 deleted on m; s still holds the row until the delete reaches it */
  as_version t7 = ver(6000, "m", true, bm);
  put(st, "{\"id\":7}", &t7);
  quick_expect(c, 1, 99, 99);
  as_version_mark_holder(&t7, sq);
  put(st, "{\"id\":7}", &t7);
  quick_expect(c, 0, 99, 99);
  /* an update of column x only, from s: the node without the column's version differs */
  as_version v8 = ver(1008, "m", false, bm | bs);
  as_version_set_col(&v8, 1, sq, 7000);
  v8.colv[0].mask = bs;
  put(st, "{\"id\":8}", &v8);
  quick_expect(c, 1, 98, 99);
  v8.colv[0].mask |= bm;
  put(st, "{\"id\":8}", &v8);
  quick_expect(c, 0, 99, 99);
  /* a rolled-back batch changes nothing */
  ck_assert_int_eq(as_state_begin(st, &err), AS_OK);
  as_version v9 = ver(8000, "s", false, bs);
  put(st, "{\"id\":9}", &v9);
  as_state_rollback(st);
  quick_expect(c, 0, 99, 99);
  /* sums wrap mod 2^64 without loss: many versions of one key, held by both */
  for (int i = 0; i < 1000; i++) {
    as_version x = ver(9000 + i, i % 2 ? "m" : "s", false, bm | bs);
    put(st, "{\"id\":9}", &x);
  }
  quick_expect(c, 0, 99, 99);
  /* another writer of the store (a second handle, as verify --repair or conflicts resolve in
   * another process): its change is seen, and the first handle's next batch starts from it */
  as_state *st2;
  ck_assert_int_eq(as_state_open(c->state_path, false, &st2, &err), AS_OK);
  as_version v1 = ver(9500, "s", false, bs);
  ck_assert_int_eq(as_state_version_put(st2, "a", "{\"id\":1}", &v1, &err), AS_OK);
  as_state_close(st2);
  quick_expect(c, 1, 98, 99);
  as_version_mark_holder(&v1, m);
  put(st, "{\"id\":1}", &v1);
  quick_expect(c, 0, 99, 99);
  /* with the signatures off, puts leave them alone */
  as_state_quick_enable(st, false);
  as_version v2 = ver(9600, "s", false, bs);
  put(st, "{\"id\":2}", &v2);
  quick_expect(c, 0, 99, 99);
  as_state_quick_enable(st, true);
  /* a mapping's versions forgotten (TRUNCATE): its signatures go too */
  ck_assert_int_eq(as_state_versions_forget(st, "a", &err), AS_OK);
  ck_assert_int_eq(as_verify_run(c, &o, &r, &err), AS_ERR);
  ck_assert_msg(strstr(err.message, "no quick signatures") != NULL, "%s", err.message);
  as_state_close(st);
  as_config_free(c);
  free(path);
  as_test_rmtree(dir);
  free(dir);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("verify");
  TCase *tc = tcase_create("bisection");
  tcase_add_test(tc, test_equal_tables);
  tcase_add_test(tc, test_differences_named_exactly);
  tcase_add_test(tc, test_one_side_empty);
  tcase_add_test(tc, test_small_table_bisects);
  tcase_add_test(tc, test_client_and_fallback);
  tcase_add_test(tc, test_key_text);
  tcase_add_test(tc, test_config_key);
  tcase_add_test(tc, test_quick);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return as_test_run(suite()); }
