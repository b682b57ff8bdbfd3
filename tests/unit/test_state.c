/* Unit tests: the state store (versions + cache, tombstones, streams, dead letters, conflicts)
 * and the router (topologies, direction). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "as_buf.h"
#include "as_config.h"
#include "as_router.h"
#include "as_state.h"
#include "as_state_int.h"
#include "as_test_util.h"

static char *dir;
static char *path;

static void setup(void) {
  dir = as_test_tmpdir();
  size_t n = strlen(dir) + 16;
  path = malloc(n);
  snprintf(path, n, "%s/state.db", dir);
}

static void teardown(void) {
  as_test_rmtree(dir);
  free(dir);
  free(path);
}

START_TEST(version_order) {
  ck_assert_int_eq(as_version_compare(10, "a", 9, "z"), 1);
  ck_assert_int_eq(as_version_compare(9, "z", 10, "a"), -1);
  ck_assert_int_eq(as_version_compare(10, "b", 10, "a"), 1); /* tie: node name decides */
  ck_assert_int_eq(as_version_compare(10, "a", 10, "a"), 0);
}
END_TEST

START_TEST(held_versions_per_node) {
  as_version v;
  memset(&v, 0, sizeof v);
  ck_assert_int_eq(as_version_written(&v, 1), 0);
  ck_assert_ptr_null(as_version_held(&v, 1));
  as_version_set_held(&v, 1, 3, 77, false, 100);
  as_version_set_held(&v, 2, 3, 78, true, 200);
  as_version_set_held(&v, 1, 4, 79, false, 300); /* replaces node 1's entry */
  ck_assert_int_eq(as_version_written(&v, 1), 300);
  ck_assert_int_eq(as_version_held(&v, 1)->hlc, 79);
  ck_assert_int_eq(as_version_held(&v, 1)->origin, 4);
  ck_assert(as_version_held(&v, 2)->deleted);
  ck_assert_int_eq(v.nheld, 2);
  /* many nodes: bounded, the least recently written is forgotten first */
  for (int i = 0; i < 20; i++) as_version_set_held(&v, (uint16_t)(10 + i), 1, i, false, 1000 + i);
  ck_assert_int_eq(v.nheld, AS_VERSION_MAX_HELD);
  ck_assert_int_eq(as_version_written(&v, 29), 1019);
  ck_assert_int_eq(as_version_written(&v, 1), 0);
}
END_TEST

/* A node holding every column's own version is marked as holding the row's version too;
 * not while a column lacks a version of its own, nor for a tombstone. */
START_TEST(covered_row_is_held) {
  as_version v;
  memset(&v, 0, sizeof v);
  v.row_mask = 1u << 1 | 1u << 3; /* nodes 1 and 3 hold the row version */
  const uint16_t cols[3] = {1, 2, 3};
  as_version_set_col(&v, 1, 3, 100);
  as_version_set_col(&v, 2, 1, 101);
  ck_assert(!as_version_hold_covered_row(&v, cols, 3)); /* column 3 has no version */
  as_version_set_col(&v, 3, 3, 102);
  for (uint8_t i = 0; i < v.ncolv; i++) v.colv[i].mask = 1u << 1 | 1u << 2 | 1u << 3;
  v.colv[1].mask &= ~(1u << 3); /* node 3 lacks column 2's version */
  ck_assert(as_version_hold_covered_row(&v, cols, 3));
  ck_assert_uint_eq(v.row_mask, 1u << 1 | 1u << 2 | 1u << 3); /* node 2 added, 3 kept */
  ck_assert(!as_version_hold_covered_row(&v, cols, 3)); /* nothing more to add */
  v.row_mask = 0;
  v.deleted = true;
  ck_assert(!as_version_hold_covered_row(&v, cols, 3));
  ck_assert_uint_eq(v.row_mask, 0);
}
END_TEST

/* A batch's marks in flight, taken back when it did not commit: only the versions it marked
 * the target as holding anew, and not one a repair wrote there since (as_pair.c settle_key). */
START_TEST(uncommitted_marks_taken_back) {
  as_state *st = NULL;
  as_error err;
  ck_assert_int_eq(as_state_open(path, false, &st, &err), AS_OK);
  uint16_t pg = 0, lite = 0, mongo = 0;
  ck_assert_int_eq(as_state_node_id(st, "pg", &pg, &err), AS_OK);
  ck_assert_int_eq(as_state_node_id(st, "lite", &lite, &err), AS_OK);
  ck_assert_int_eq(as_state_node_id(st, "mongo", &mongo, &err), AS_OK);
  uint64_t bm = 1ull << (mongo % 64), bl = 1ull << (lite % 64), bp = 1ull << (pg % 64);
  as_version before;
  memset(&before, 0, sizeof before);
  before.hlc = 100;
  snprintf(before.origin, sizeof before.origin, "pg");
  before.row_mask = bp | bl | bm;          /* everyone holds the row version */
  as_version_set_col(&before, 1, mongo, 200); /* col 1: mongo's, held by mongo and lite */
  before.colv[0].mask = bm | bl;
  as_version now = before;
  as_version_set_col(&now, 2, pg, 300);    /* the batch: pg's change of cols 2 and 3 -> mongo */
  as_version_set_col(&now, 3, pg, 300);
  now.colv[1].mask = now.colv[2].mask = bp | bl | bm;
  as_buf b = AS_BUF_INIT;
  ck_assert_int_eq(as_version_marks_diff(st, &now, &before, mongo, &b), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b), "\t300\tpg"); /* once, and nothing marked before */
  as_version v = now;
  ck_assert(as_version_unmark(st, &v, mongo, as_buf_cstr(&b)));
  ck_assert_uint_eq(v.colv[1].mask, bp | bl);
  ck_assert_uint_eq(v.colv[2].mask, bp | bl);
  ck_assert_uint_eq(v.colv[0].mask, bm | bl); /* marked before the batch: stays */
  ck_assert_uint_eq(v.row_mask, bp | bl | bm);
  ck_assert(!as_version_unmark(st, &v, mongo, as_buf_cstr(&b) + 1)); /* nothing left; no tab */
  /* a repair wrote pg's version to mongo since: its record says so, the marks stay */
  v = now;
  as_version_set_held(&v, mongo, pg, 300, false, 12345);
  ck_assert(!as_version_unmark(st, &v, mongo, as_buf_cstr(&b)));
  ck_assert_uint_eq(v.colv[1].mask, bp | bl | bm);
  /* the row version newly marked (a first write of the key) */
  as_buf_free(&b);
  b = (as_buf)AS_BUF_INIT;
  ck_assert_int_eq(as_version_marks_diff(st, &now, NULL, lite, &b), AS_OK);
  ck_assert_str_eq(as_buf_cstr(&b), "\t100\tpg\t200\tmongo\t300\tpg");
  v = now;
  ck_assert(as_version_unmark(st, &v, lite, as_buf_cstr(&b)));
  ck_assert_uint_eq(v.row_mask, bp | bm);
  ck_assert_uint_eq(v.colv[0].mask, bm);
  as_buf_free(&b);
  as_state_close(st);
}
END_TEST

START_TEST(node_ids_are_stable) {
  as_state *st = NULL;
  as_error err;
  uint16_t a = 0, b = 0, a2 = 0;
  ck_assert_int_eq(as_state_open(path, false, &st, &err), AS_OK);
  ck_assert_int_eq(as_state_node_id(st, "mongo", &a, &err), AS_OK);
  ck_assert_int_eq(as_state_node_id(st, "pg", &b, &err), AS_OK);
  ck_assert_int_ne(a, b);
  ck_assert_str_eq(as_state_node_name(st, b), "pg");
  as_state_close(st);
  ck_assert_int_eq(as_state_open(path, false, &st, &err), AS_OK);
  ck_assert_int_eq(as_state_node_id(st, "mongo", &a2, &err), AS_OK);
  ck_assert_int_eq(a, a2);
  as_state_close(st);
}
END_TEST

/* The hot-key cache follows the transaction: a rolled-back put is never read back. */
START_TEST(cache_follows_commit) {
  as_state *st = NULL;
  as_error err;
  ck_assert_int_eq(as_state_open(path, false, &st, &err), AS_OK);
  as_version w = {.hlc = 1};
  snprintf(w.origin, sizeof w.origin, "a");
  ck_assert_int_eq(as_state_version_put(st, "m", "k", &w, &err), AS_OK);
  ck_assert_int_eq(as_state_begin(st, &err), AS_OK);
  w.hlc = 2;
  ck_assert_int_eq(as_state_version_put(st, "m", "k", &w, &err), AS_OK);
  as_version v;
  ck_assert_int_eq(as_state_version_get(st, "m", "k", &v, &err), AS_OK);
  ck_assert_int_eq(v.hlc, 2); /* the transaction sees its own write */
  as_state_rollback(st);
  ck_assert_int_eq(as_state_version_get(st, "m", "k", &v, &err), AS_OK);
  ck_assert_int_eq(v.hlc, 1);
  /* a batch of several puts is all or nothing */
  ck_assert_int_eq(as_state_begin(st, &err), AS_OK);
  w.hlc = 3;
  ck_assert_int_eq(as_state_version_put(st, "m", "k", &w, &err), AS_OK);
  ck_assert_int_eq(as_state_version_put(st, "m", "k2", &w, &err), AS_OK);
  as_state_rollback(st);
  ck_assert_int_eq(as_state_version_get(st, "m", "k2", &v, &err), AS_ENOTFOUND);
  ck_assert_int_eq(as_state_version_get(st, "m", "k", &v, &err), AS_OK);
  ck_assert_int_eq(v.hlc, 1);
  as_state_close(st);
  /* and on disk */
  ck_assert_int_eq(as_state_open(path, true, &st, &err), AS_OK);
  ck_assert_int_eq(as_state_version_get(st, "m", "k", &v, &err), AS_OK);
  ck_assert_int_eq(v.hlc, 1);
  as_state_close(st);
}
END_TEST

/* One `run` per state store: the second claim names the first's pid. */
START_TEST(one_run_per_store) {
  as_state *a = NULL, *b = NULL;
  as_error err;
  ck_assert_int_eq(as_state_open(path, false, &a, &err), AS_OK);
  ck_assert_int_eq(as_state_claim(a, &err), AS_OK);
  ck_assert_int_eq(as_state_open(path, false, &b, &err), AS_OK);
  ck_assert_int_eq(as_state_claim(b, &err), AS_EINVAL);
  ck_assert_msg(strstr(err.message, "in use by another arraysync process (pid ") != NULL, "%s",
                err.message);
  as_state_close(b);
  as_state_close(a);
  ck_assert_int_eq(as_state_open(path, false, &b, &err), AS_OK);
  ck_assert_int_eq(as_state_claim(b, &err), AS_OK); /* released with the first */
  as_state_close(b);
}
END_TEST

START_TEST(repair_queue) {
  as_state *st = NULL;
  as_error err;
  ck_assert_int_eq(as_state_open(path, false, &st, &err), AS_OK);
  int64_t id1 = 0, id2 = 0;
  ck_assert_int_eq(as_state_repair_add(st, "m", "{\"id\":1}", "pg", "mongo", NULL, &id1, &err), AS_OK);
  ck_assert_int_eq(as_state_repair_add(st, "m", "{\"id\":2}", "lite", "pg", "{}", &id2, &err), AS_OK);
  ck_assert_int_eq(as_state_repair_count(st), 2);
  /* the same repair again: the pending one stands for it; another rewrite counts */
  int64_t id3 = 0, id4 = 0, id5 = 0;
  ck_assert_int_eq(as_state_repair_add(st, "m", "{\"id\":1}", "pg", "lite", NULL, &id3, &err), AS_OK);
  ck_assert_int_eq(id3, id1);
  ck_assert_int_eq(as_state_repair_add(st, "m", "{\"id\":2}", "lite", "pg", "{}", &id4, &err), AS_OK);
  ck_assert_int_eq(id4, id2);
  ck_assert_int_eq(as_state_repair_add(st, "m", "{\"id\":2}", "lite", "pg", "{\"x\":1}", &id4, &err), AS_OK);
  ck_assert_int_ne(id4, id2);
  ck_assert_int_eq(as_state_repair_add(st, "m", "{\"id\":1}", "lite", "pg", NULL, &id5, &err), AS_OK);
  ck_assert_int_ne(id5, id1);
  ck_assert_int_eq(as_state_repair_count(st), 4);
  ck_assert_int_eq(as_state_repair_done(st, id4, &err), AS_OK);
  ck_assert_int_eq(as_state_repair_done(st, id5, &err), AS_OK);
  ck_assert_int_eq(as_state_repair_done(st, id1, &err), AS_OK);
  as_state_close(st);
  ck_assert_int_eq(as_state_open(path, false, &st, &err), AS_OK);
  ck_assert_int_eq(as_state_repair_count(st), 1);
  as_state_close(st);
}
END_TEST

START_TEST(versions_persist_and_cache) {
  as_state *st = NULL;
  as_error err;
  ck_assert_int_eq(as_state_open(path, false, &st, &err), AS_OK);
  as_version v;
  ck_assert_int_eq(as_state_version_get(st, "users", "{\"id\":1}", &v, &err), AS_ENOTFOUND);
  as_version w = {.hlc = 42, .deleted = false, .hash = 0xdeadbeefcafeULL};
  snprintf(w.origin, sizeof w.origin, "mongo");
  ck_assert_int_eq(as_state_begin(st, &err), AS_OK);
  ck_assert_int_eq(as_state_version_put(st, "users", "{\"id\":1}", &w, &err), AS_OK);
  ck_assert_int_eq(as_state_commit(st, &err), AS_OK);
  ck_assert_int_eq(as_state_version_get(st, "users", "{\"id\":1}", &v, &err), AS_OK);
  ck_assert_int_eq(v.hlc, 42);
  ck_assert_str_eq(v.origin, "mongo");
  ck_assert(v.hash == 0xdeadbeefcafeULL);
  /* same key in another mapping is another entry */
  ck_assert_int_eq(as_state_version_get(st, "orders", "{\"id\":1}", &v, &err), AS_ENOTFOUND);
  /* overwrite: a tombstone */
  w.hlc = 50;
  w.deleted = true;
  snprintf(w.origin, sizeof w.origin, "lite");
  as_version_set_held(&w, 7, 2, 49, false, 12345);
  as_version_set_wrote_order(&w, 7, (int64_t)0x65a1b2c300000007LL); /* a MongoDB cluster time */
  as_version_set_held(&w, 8, 2, 49, false, 12346);
  as_version_set_wrote_order(&w, 8, 4242);
  as_version_set_made(&w, 8, 60, false, 12400); /* keeps the connector's last write */
  as_version_set_held(&w, 9, 2, 49, false, 0);   /* ahead of a commit: no order */
  ck_assert_int_eq(as_state_version_put(st, "users", "{\"id\":1}", &w, &err), AS_OK);
  as_state_close(st);
  /* reopen: read from disk, not from the cache */
  ck_assert_int_eq(as_state_open(path, true, &st, &err), AS_OK);
  ck_assert_int_eq(as_state_version_get(st, "users", "{\"id\":1}", &v, &err), AS_OK);
  ck_assert_int_eq(v.hlc, 50);
  ck_assert(v.deleted);
  ck_assert_str_eq(v.origin, "lite");
  ck_assert_int_eq(as_version_written(&v, 7), 12345);
  ck_assert_int_eq(as_version_held(&v, 7)->hlc, 49);
  ck_assert(as_version_held(&v, 7)->wrote_order == (int64_t)0x65a1b2c300000007LL);
  ck_assert(as_version_held(&v, 8)->made);
  ck_assert_int_eq(as_version_held(&v, 8)->wrote_order, 4242);
  ck_assert_int_eq(as_version_held(&v, 8)->wrote_us, 12346);
  ck_assert(as_version_held(&v, 9)->wrote_pending);
  ck_assert_int_eq(as_version_held(&v, 9)->wrote_order, 0);
  as_state_close(st);
}
END_TEST

/* Packed keys (as_state_keys.c): every text packs to something that unpacks to the same text,
 * two texts never share a packing, and each is found again under its own text only. The
 * texts are the forms packing treats specially, near misses of each, and random strings over
 * the characters those forms are made of. */
static const char *const key_cases[] = {
    "{\"id\":10000}", "{\"id\":0}", "{\"id\":-1}", "{\"id\":9223372036854775807}",
    "{\"id\":-9223372036854775808}", "{\"id\":9223372036854775808}", "{\"id\":007}",
    "{\"id\":-0}", "{\"id\":+1}", "{\"id\": 1}", "{\"id\":1.5}", "{\"id\":1}}", "{\"id\":1",
    "{\"id\":\"u1\"}", "{\"id\":\"\"}", "{\"id\":\"a\\\"b\"}", "{\"id\":\"a\\\\\"}",
    "{\"id\":\"caf\xc3\xa9\"}", "{\"id\":\"a:b\"}", "{\"a:b\":1}", "{\"id\":\"u1\"", "{\"id\":\"u1}",
    "{\"_id\":{\"$oid\":\"65a1b2c3d4e5f60718293a4b\"}}",
    "{\"_id\":{\"$oid\":\"65A1B2C3D4E5F60718293A4B\"}}",
    "{\"_id\":{\"$oid\":\"65a1b2c3d4e5f60718293a4\"}}",
    "{\"_id\":{\"$oid\":\"65a1b2c3d4e5f60718293a4g\"}}",
    "{\"id\":{\"$uuid\":\"0b4e8f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b\"}}",
    "{\"id\":{\"$uuid\":\"0B4E8F3A-1C2D-4E5F-8A9B-0C1D2E3F4A5B\"}}",
    "{\"id\":{\"$uuid\":\"0b4e8f3a11c2d-4e5f-8a9b-0c1d2e3f4a5b\"}}",
    "{\"tenant\":3,\"id\":\"a\"}", "{\"tenant\":3,\"id\":4}", "{}", "", "no colon", ":", "::",
};

static char *random_key(unsigned *seed) {
  static const char alphabet[] = "{}\":\\-0123456789abcdef$oiduA ,.";
  size_t n = (size_t)(rand_r(seed) % 40);
  char *k = malloc(n + 16);
  size_t at = 0;
  if (rand_r(seed) % 2) at = (size_t)sprintf(k, "{\"k%d\":", rand_r(seed) % 3);
  for (size_t i = 0; i < n; i++) k[at++] = alphabet[rand_r(seed) % (sizeof alphabet - 1)];
  k[at] = '\0';
  return k;
}

START_TEST(packed_keys_round_trip) {
  as_state *st = NULL;
  as_error err;
  ck_assert_int_eq(as_state_open(path, false, &st, &err), AS_OK);
  enum { NRAND = 3000 };
  size_t nfix = sizeof key_cases / sizeof *key_cases, n = nfix + NRAND;
  char **keys = calloc(n, sizeof *keys);
  unsigned seed = 20261205;
  for (size_t i = 0; i < n; i++) keys[i] = i < nfix ? strdup(key_cases[i]) : random_key(&seed);
  uint8_t **packed = calloc(n, sizeof *packed);
  size_t *plen = calloc(n, sizeof *plen);
  ck_assert_int_eq(as_state_begin(st, &err), AS_OK);
  for (size_t i = 0; i < n; i++) {
    as_packed_key pk;
    ck_assert_int_eq(as_state_key_pack(st, keys[i], true, &pk, &err), AS_OK);
    packed[i] = malloc(pk.len);
    memcpy(packed[i], pk.p, pk.len);
    plen[i] = pk.len;
    as_packed_key_free(&pk);
    char *back = as_state_key_unpack(st, packed[i], plen[i]);
    ck_assert_msg(back && strcmp(back, keys[i]) == 0, "key %s came back as %s", keys[i],
                  back ? back : "(null)");
    free(back);
    as_version v = {.hlc = 1000 + (int64_t)i};
    snprintf(v.origin, sizeof v.origin, "a");
    ck_assert_int_eq(as_state_version_put(st, "m", keys[i], &v, &err), AS_OK);
  }
  ck_assert_int_eq(as_state_commit(st, &err), AS_OK);
  /* one-to-one: equal packings only for equal texts */
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      if (plen[i] == plen[j] && memcmp(packed[i], packed[j], plen[i]) == 0)
        ck_assert_str_eq(keys[i], keys[j]);
  /* the forms packing is for are short */
  as_packed_key pk;
  ck_assert_int_eq(as_state_key_pack(st, "{\"id\":10000}", false, &pk, &err), AS_OK);
  ck_assert_uint_le(pk.len, 3);
  as_packed_key_free(&pk);
  /* ascending integer keys pack in ascending order (blobs compare as memcmp, then length) */
  uint8_t prev[16];
  size_t prevlen = 0;
  for (long long i = 0; i < 5000000000LL; i = i < 300 ? i + 1 : i * 3 / 2) {
    char text[48];
    snprintf(text, sizeof text, "{\"id\":%lld}", i);
    ck_assert_int_eq(as_state_key_pack(st, text, false, &pk, &err), AS_OK);
    if (prevlen) {
      int c = memcmp(prev, pk.p, prevlen < pk.len ? prevlen : pk.len);
      ck_assert_msg(c < 0 || (c == 0 && prevlen < pk.len), "%s packs before the key below it", text);
    }
    memcpy(prev, pk.p, pk.len);
    prevlen = pk.len;
    as_packed_key_free(&pk);
  }
  ck_assert_int_eq(as_state_key_pack(st, key_cases[22], false, &pk, &err), AS_OK);
  ck_assert_uint_eq(pk.len, 13);
  as_packed_key_free(&pk);
  /* a prefix no stored key has: nothing to find */
  ck_assert_int_eq(as_state_key_pack(st, "{\"never\":1}", false, &pk, &err), AS_ENOTFOUND);
  as_state_close(st);
  /* read back from disk by another connection: each text finds its own version (a key stored
   * twice in the list finds the later put) */
  ck_assert_int_eq(as_state_open(path, true, &st, &err), AS_OK);
  for (size_t i = 0; i < n; i++) {
    size_t last = i;
    for (size_t j = i + 1; j < n; j++)
      if (strcmp(keys[i], keys[j]) == 0) last = j;
    as_version v;
    ck_assert_int_eq(as_state_version_get(st, "m", keys[i], &v, &err), AS_OK);
    ck_assert_int_eq(v.hlc, 1000 + (int64_t)last);
  }
  ck_assert_int_eq(as_state_version_get(st, "m", "{\"id\":10001}", &(as_version){0}, &err), AS_ENOTFOUND);
  as_state_close(st);
  for (size_t i = 0; i < n; i++) {
    free(keys[i]);
    free(packed[i]);
  }
  free(keys);
  free(packed);
  free(plen);
}
END_TEST

/* A prefix added in a transaction that rolls back is not kept: a later key with it adds it
 * again, and finds it after a reopen. */
START_TEST(packed_key_prefix_rollback) {
  as_state *st = NULL;
  as_error err;
  ck_assert_int_eq(as_state_open(path, false, &st, &err), AS_OK);
  as_version v = {.hlc = 5};
  snprintf(v.origin, sizeof v.origin, "a");
  ck_assert_int_eq(as_state_begin(st, &err), AS_OK);
  ck_assert_int_eq(as_state_version_put(st, "m", "{\"sku\":\"x\"}", &v, &err), AS_OK);
  as_state_rollback(st);
  v.hlc = 6;
  ck_assert_int_eq(as_state_version_put(st, "m", "{\"sku\":\"y\"}", &v, &err), AS_OK);
  as_state_close(st);
  ck_assert_int_eq(as_state_open(path, true, &st, &err), AS_OK);
  ck_assert_int_eq(as_state_version_get(st, "m", "{\"sku\":\"y\"}", &v, &err), AS_OK);
  ck_assert_int_eq(v.hlc, 6);
  ck_assert_int_eq(as_state_version_get(st, "m", "{\"sku\":\"x\"}", &v, &err), AS_ENOTFOUND);
  as_state_close(st);
}
END_TEST

/* A time (never negative) of one of the kinds a record holds, often near another one. */
static int64_t random_time(unsigned *seed, int64_t near) {
  int64_t d = rand_r(seed) % 1000000;
  switch (rand_r(seed) % 5) {
  case 0: return 0;
  case 1: return near;
  case 2: return near > INT64_MAX - d || (rand_r(seed) % 2 && near >= d) ? near - d : near + d;
  case 3: return (int64_t)rand_r(seed) * rand_r(seed);
  default: return INT64_MAX - rand_r(seed) % 1000;
  }
}

static void random_version(unsigned *seed, as_version *v) {
  memset(v, 0, sizeof *v);
  int64_t now = 1796482918646420 + rand_r(seed) % 1000000;
  v->updated_us = rand_r(seed) % 7 ? now : (int64_t)rand_r(seed) + 1;
  v->hlc = random_time(seed, now - 3000);
  snprintf(v->origin, sizeof v->origin, "n%d", rand_r(seed) % 4);
  v->deleted = rand_r(seed) % 5 == 0;
  v->hash = rand_r(seed) % 2 ? ((uint64_t)rand_r(seed) << 33) ^ (uint64_t)rand_r(seed) : 0;
  v->nheld = (uint8_t)(rand_r(seed) % (AS_VERSION_MAX_HELD + 1));
  for (uint8_t i = 0; i < v->nheld; i++) {
    as_held *h = &v->held[i];
    h->node = (uint16_t)(i + 1);
    h->origin = (uint16_t)(rand_r(seed) % 4 + 1);
    h->deleted = rand_r(seed) % 2;
    h->made = rand_r(seed) % 2;
    h->wrote_pending = rand_r(seed) % 2;
    h->hlc = random_time(seed, v->hlc);
    h->written_us = random_time(seed, v->updated_us);
    h->wrote_us = random_time(seed, h->written_us);
    h->wrote_order = rand_r(seed) % 3 ? random_time(seed, 1) : 0;
  }
  v->ncolv = (uint8_t)(rand_r(seed) % 4 ? 0 : rand_r(seed) % (AS_VERSION_MAX_COLS + 1));
  bool vv = rand_r(seed) % 2;
  for (uint8_t i = 0; i < v->ncolv; i++) {
    v->colv[i].col = (uint16_t)(i * 3);
    v->colv[i].origin = (uint16_t)(rand_r(seed) % 4 + 1);
    v->colv[i].hlc = random_time(seed, v->hlc);
    if (vv) {
      v->colv[i].n = (uint32_t)rand_r(seed);
      v->colv[i].mask = ((uint64_t)rand_r(seed) << 32) | (uint64_t)rand_r(seed);
    }
  }
  if (vv) {
    v->row_n = (uint32_t)rand_r(seed) % 100 + 1;
    v->row_mask = (uint64_t)rand_r(seed);
    v->nvv = (uint8_t)(rand_r(seed) % (AS_VERSION_MAX_HELD + 1));
    for (uint8_t i = 0; i < v->nvv; i++) {
      v->vv[i].node = (uint16_t)(i + 1);
      v->vv[i].n = (uint32_t)rand_r(seed);
      v->vv[i].hlc = random_time(seed, v->hlc);
      v->vv[i].cols = ((uint64_t)rand_r(seed) << 31) ^ (uint64_t)rand_r(seed);
    }
  }
}

static void versions_equal(const as_version *a, const as_version *b) {
  ck_assert_int_eq(a->hlc, b->hlc);
  ck_assert_str_eq(a->origin, b->origin);
  ck_assert_int_eq(a->deleted, b->deleted);
  ck_assert(a->hash == b->hash);
  ck_assert_int_eq(a->updated_us, b->updated_us);
  ck_assert_int_eq(a->nheld, b->nheld);
  for (uint8_t i = 0; i < a->nheld; i++) {
    const as_held *x = &a->held[i], *y = &b->held[i];
    ck_assert(x->node == y->node && x->origin == y->origin && x->deleted == y->deleted &&
              x->made == y->made && x->wrote_pending == y->wrote_pending);
    ck_assert_int_eq(x->hlc, y->hlc);
    ck_assert_int_eq(x->written_us, y->written_us);
    ck_assert_int_eq(x->wrote_us, y->wrote_us);
    ck_assert_int_eq(x->wrote_order, y->wrote_order);
  }
  ck_assert_int_eq(a->ncolv, b->ncolv);
  for (uint8_t i = 0; i < a->ncolv; i++) {
    ck_assert(a->colv[i].col == b->colv[i].col && a->colv[i].origin == b->colv[i].origin);
    ck_assert_int_eq(a->colv[i].hlc, b->colv[i].hlc);
    ck_assert(a->colv[i].n == b->colv[i].n && a->colv[i].mask == b->colv[i].mask);
  }
  ck_assert(a->row_n == b->row_n && a->row_mask == b->row_mask);
  ck_assert_int_eq(a->nvv, b->nvv);
  for (uint8_t i = 0; i < a->nvv; i++) {
    ck_assert(a->vv[i].node == b->vv[i].node && a->vv[i].n == b->vv[i].n && a->vv[i].cols == b->vv[i].cols);
    ck_assert_int_eq(a->vv[i].hlc, b->vv[i].hlc);
  }
}

/* Every field of a version record survives the store, read from disk: times near each other,
 * zero, far apart and near INT64_MAX, with and without hash, column versions and vectors. */
START_TEST(version_records_round_trip) {
  as_state *st = NULL;
  as_error err;
  enum { N = 2000 };
  static as_version want[N];
  unsigned seed = 7;
  ck_assert_int_eq(as_state_open(path, false, &st, &err), AS_OK);
  for (int i = 0; i < 4; i++) {
    char name[8];
    uint16_t id;
    snprintf(name, sizeof name, "n%d", i);
    ck_assert_int_eq(as_state_node_id(st, name, &id, &err), AS_OK);
  }
  ck_assert_int_eq(as_state_begin(st, &err), AS_OK);
  for (int i = 0; i < N; i++) {
    char key[32];
    snprintf(key, sizeof key, "{\"id\":%d}", i);
    random_version(&seed, &want[i]);
    ck_assert_int_eq(as_state_version_put(st, "m", key, &want[i], &err), AS_OK);
  }
  ck_assert_int_eq(as_state_commit(st, &err), AS_OK);
  as_state_close(st);
  ck_assert_int_eq(as_state_open(path, true, &st, &err), AS_OK);
  for (int i = 0; i < N; i++) {
    char key[32];
    snprintf(key, sizeof key, "{\"id\":%d}", i);
    as_version got;
    ck_assert_int_eq(as_state_version_get(st, "m", key, &got, &err), AS_OK);
    versions_equal(&want[i], &got);
  }
  /* only tombstones keep their time in the column the purge reads */
  sqlite3_stmt *q = NULL;
  ck_assert_int_eq(sqlite3_prepare_v2(st->db,
                                      "SELECT count(*) FROM versions WHERE (deleted = 0) = (updated_us <> 0)"
                                      " OR typeof(key) <> 'blob'",
                                      -1, &q, NULL),
                   SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
  ck_assert_int_eq(sqlite3_column_int(q, 0), 0);
  sqlite3_finalize(q);
  as_state_close(st);
}
END_TEST

/* A store written before packed keys and relative times: its records are read as they are by
 * a reader, and written again packed by the next writer. */
START_TEST(text_keys_old_store) {
  as_state *st = NULL;
  as_error err;
  ck_assert_int_eq(as_state_open(path, false, &st, &err), AS_OK);
  as_state_close(st);
  sqlite3 *db = NULL;
  ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
  /* as the code before wrote a first copy's row of b from a (hex from such a store) */
  ck_assert_int_eq(sqlite3_exec(db,
                                "DELETE FROM meta WHERE key = 'version_keys';"
                                "INSERT INTO nodes(id, name) VALUES (1, 'a'), (2, 'b');"
                                "INSERT INTO mappings(id, name) VALUES (1, 'items');"
                                "INSERT INTO versions(m, part, key, rec, deleted, updated_us) VALUES "
                                "(1, 0, '{\"id\":10000}', x'0800019485D8B1C4BC980301020100B9A7D8B1C4BC9803"
                                "B9A7D8B1C4BC98030801000600', 0, 1796482918646420),"
                                "(1, 0, '{\"id\":10001}', x'0105019485D8B1C4BC980300', 1, 1796482918646420)",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  for (int pass = 0; pass < 2; pass++) {
    ck_assert_int_eq(as_state_open(path, pass == 0, &st, &err), AS_OK);
    as_version v;
    ck_assert_int_eq(as_state_version_get(st, "items", "{\"id\":10000}", &v, &err), AS_OK);
    ck_assert_int_eq(v.hlc, 0);
    ck_assert_str_eq(v.origin, "a");
    ck_assert_int_eq(v.updated_us, 1796482918646420);
    ck_assert_int_eq(v.nheld, 1);
    ck_assert_int_eq(v.held[0].node, 2);
    ck_assert_int_eq(v.held[0].written_us, 1796482918650809);
    ck_assert_int_eq(v.held[0].wrote_us, 1796482918650809);
    ck_assert_int_eq(v.held[0].wrote_order, 1);
    ck_assert(v.row_mask == 6);
    ck_assert_int_eq(as_state_version_get(st, "items", "{\"id\":10001}", &v, &err), AS_OK);
    ck_assert(v.deleted);
    ck_assert_int_eq(v.hlc, 5);
    as_state_close(st);
  }
  ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *q = NULL;
  ck_assert_int_eq(sqlite3_prepare_v2(db,
                                      "SELECT (SELECT group_concat(typeof(key) || ':' || updated_us, ' ') FROM "
                                      "(SELECT * FROM versions ORDER BY deleted)), (SELECT value FROM meta "
                                      "WHERE key = 'version_keys'), (SELECT count(*) FROM sqlite_schema WHERE "
                                      "name = 'versions_text')",
                                      -1, &q, NULL),
                   SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
  ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), "blob:0 blob:1796482918646420");
  ck_assert_str_eq((const char *)sqlite3_column_text(q, 1), "packed");
  ck_assert_int_eq(sqlite3_column_int(q, 2), 0);
  sqlite3_finalize(q);
  sqlite3_close(db);
}
END_TEST

/* Settling (as_state_versions_settle): which records settle, which wait, which never do; what a
 * settled record gives back; that the quick signatures do not move; that a changed record is
 * written in full again. */
static void settle_put(as_state *st, const char *key, const as_version *v) {
  as_error err;
  ck_assert_int_eq(as_state_version_put(st, "m", key, v, &err), AS_OK);
}

static as_version settle_base(uint16_t b) {
  as_version v = {.hlc = 900, .updated_us = 1000};
  snprintf(v.origin, sizeof v.origin, "a");
  as_version_set_held(&v, b, 1, 900, false, 1000); /* b: written at 1000 (a first copy's target) */
  as_version_set_wrote_order(&v, b, 5);
  v.row_mask = 1u << 1 | 1u << b;                  /* a (its origin, no entry) and b hold it */
  return v;
}

START_TEST(versions_settle) {
  as_state *st = NULL;
  as_error err;
  ck_assert_int_eq(as_state_open(path, false, &st, &err), AS_OK);
  uint16_t a, b, c;
  ck_assert_int_eq(as_state_node_id(st, "a", &a, &err), AS_OK);
  ck_assert_int_eq(as_state_node_id(st, "b", &b, &err), AS_OK);
  ck_assert_int_eq(as_state_node_id(st, "c", &c, &err), AS_OK);
  ck_assert_int_eq(a, 1);
  as_version k[9];
  k[1] = settle_base(b);                                   /* settles */
  k[2] = settle_base(b);
  as_version_set_held(&k[2], a, 1, 900, false, 0);         /* a write to a recorded ahead, */
  as_version_set_made(&k[2], a, 900, false, 800);          /* its commit not seen: never */
  k[3] = settle_base(b);
  as_version_set_col(&k[3], 2, a, 950);                    /* a column version: settles, kept */
  k[4] = settle_base(b);
  k[4].deleted = true;                                     /* a tombstone: never */
  k[5] = settle_base(b);
  as_version_set_held(&k[5], b, 1, 900, false, 5000);      /* written after b's streams read: later */
  k[6] = settle_base(b);
  k[6].row_mask |= 1u << c;                                /* c marked, no entry: settles */
  k[7] = settle_base(b);
  as_version_set_made(&k[7], a, 900, false, 800);          /* a made it, the connector wrote */
  k[7].held[1].wrote_us = 1500;                            /* there at 1500: settles (a: 2000) */
  k[8] = settle_base(b);
  k[8].hash = 0x1234567890abcdefULL;                       /* vectors and a hash stay */
  k[8].row_n = 3;
  as_version_vv_set(&k[8], a, 2);
  as_version_vv_set(&k[8], b, 1);
  k[0] = settle_base(b);
  as_version_set_held(&k[0], b, 1, 900, false, 1500);      /* b: 1500 < 2000, c is not a holder */
  ck_assert_int_eq(as_state_begin(st, &err), AS_OK);
  for (int i = 0; i < 9; i++) {
    char key[16];
    snprintf(key, sizeof key, "{\"id\":%d}", i);
    settle_put(st, key, &k[i]);
  }
  ck_assert_int_eq(as_state_commit(st, &err), AS_OK);
  as_quick_sig q0[AS_QUICK_BUCKETS], q1[AS_QUICK_BUCKETS];
  ck_assert_int_eq(as_state_quick_load(st, "m", "b", q0, &err), AS_OK);
  int64_t before[64] = {0};
  before[a] = 2000;
  before[b] = 2000;
  as_settle_pass pass = {0};
  for (int round = 0; round < 10 && !pass.wrapped; round++)
    ck_assert_int_ge(as_state_versions_settle(st, before, 64, 4, &pass, &err), 0); /* 4 a chunk */
  ck_assert(pass.wrapped);
  ck_assert_int_eq(pass.seen, 9);
  ck_assert_int_eq(pass.settled, 6); /* 0, 1, 3, 6, 7, 8 */
  ck_assert_int_eq(pass.waiting, 1); /* 5 */
  ck_assert_int_eq(as_state_quick_load(st, "m", "b", q1, &err), AS_OK);
  ck_assert(memcmp(q0, q1, sizeof q0) == 0);
  as_state_close(st);
  ck_assert_int_eq(as_state_open(path, false, &st, &err), AS_OK);
  for (int i = 0; i < 9; i++) {
    char key[16];
    snprintf(key, sizeof key, "{\"id\":%d}", i);
    as_version v;
    ck_assert_int_eq(as_state_version_get(st, "m", key, &v, &err), AS_OK);
    bool settled = i != 2 && i != 4 && i != 5;
    if (!settled) {
      versions_equal(&k[i], &v);
      continue;
    }
    if (i == 3 || i == 6) { /* entries kept, their write records gone */
      ck_assert(v.row_mask == k[i].row_mask);
      ck_assert_int_eq(v.ncolv, k[i].ncolv);
      ck_assert_int_eq(v.nheld, 1);
      const as_held *h = as_version_held(&v, b);
      ck_assert(h && h->written_us == 1 && h->wrote_us == 0 && h->wrote_order == 5 && h->hlc == 900);
      if (i == 3) ck_assert(as_version_col(&v, 2)->hlc == 950);
      continue;
    }
    ck_assert_int_eq(v.hlc, 900);
    ck_assert_str_eq(v.origin, "a");
    ck_assert(v.row_mask == k[i].row_mask && v.row_n == k[i].row_n && v.hash == k[i].hash);
    ck_assert_int_eq(v.nvv, k[i].nvv);
    ck_assert_int_eq(v.nheld, 2);
    const as_held *ha = as_version_held(&v, a), *hb = as_version_held(&v, b);
    ck_assert(ha && ha->made && ha->written_us == 1 && ha->wrote_us == 0 && ha->hlc == 900);
    /* the place of the connector's write in b's commit order stays: a change of b that
     * reaches the connector late is still told from it */
    ck_assert(hb && !hb->made && hb->written_us == 1 && hb->wrote_us == 0 && !hb->wrote_pending &&
              hb->wrote_order == (i == 0 ? 0 : 5) && hb->origin == a && hb->hlc == 900);
    ck_assert_int_eq(ha->wrote_order, 0);
  }
  /* written again as it is: still settled (small); changed: in full */
  as_version v;
  ck_assert_int_eq(as_state_version_get(st, "m", "{\"id\":1}", &v, &err), AS_OK);
  settle_put(st, "{\"id\":1}", &v);
  as_version_set_held(&v, b, a, 900, false, 7000);
  settle_put(st, "{\"id\":8}", &v);
  sqlite3_stmt *q = NULL;
  ck_assert_int_eq(sqlite3_prepare_v2(st->db, "SELECT length(rec) FROM versions ORDER BY key", -1, &q, NULL),
                   SQLITE_OK);
  int len[9], n = 0;
  while (sqlite3_step(q) == SQLITE_ROW && n < 9) len[n++] = sqlite3_column_int(q, 0);
  sqlite3_finalize(q);
  ck_assert_int_eq(n, 9);
  ck_assert_int_le(len[1], 10);
  ck_assert_int_gt(len[8], 12);
  ck_assert_int_eq(as_state_version_get(st, "m", "{\"id\":8}", &v, &err), AS_OK);
  ck_assert_int_eq(as_version_held(&v, b)->written_us, 7000);
  /* the streams read on: the waiting one settles */
  before[b] = 10000;
  pass = (as_settle_pass){0};
  while (!pass.wrapped) ck_assert_int_ge(as_state_versions_settle(st, before, 64, 100, &pass, &err), 0);
  ck_assert_int_eq(pass.settled, 2); /* 5 and 8 */
  ck_assert_int_eq(pass.waiting, 0);
  int64_t was = 0, now = 0;
  ck_assert_int_eq(as_state_compact(st, &was, &now, &err), AS_OK);
  ck_assert_int_le(now, was);
  ck_assert_int_eq(as_state_version_get(st, "m", "{\"id\":5}", &v, &err), AS_OK);
  ck_assert_int_eq(as_version_held(&v, b)->written_us, 1);
  as_state_close(st);
}
END_TEST

START_TEST(tombstone_retention) {
  as_state *st = NULL;
  as_error err;
  ck_assert_int_eq(as_state_open(path, false, &st, &err), AS_OK);
  as_version old = {.hlc = 1, .deleted = true, .updated_us = 1000}; /* 1970: long expired */
  snprintf(old.origin, sizeof old.origin, "a");
  as_version live = {.hlc = 2, .deleted = false, .updated_us = 1000};
  snprintf(live.origin, sizeof live.origin, "a");
  ck_assert_int_eq(as_state_version_put(st, "m", "k1", &old, &err), AS_OK);
  ck_assert_int_eq(as_state_version_put(st, "m", "k2", &live, &err), AS_OK);
  ck_assert_int_eq(as_state_purge_tombstones(st, 1000, &err), 1);
  as_version v;
  ck_assert_int_eq(as_state_version_get(st, "m", "k1", &v, &err), AS_ENOTFOUND);
  ck_assert_int_eq(as_state_version_get(st, "m", "k2", &v, &err), AS_OK);
  as_state_close(st);
}
END_TEST

static int count_dead(void *ctx, const as_dead_letter *d) {
  int *n = ctx;
  (*n)++;
  ck_assert_str_eq(d->mapping, "users");
  ck_assert_str_eq(d->stage, "capture");
  ck_assert_str_eq(d->error, "cannot store string \"x\" in int64 column \"age\"");
  return AS_OK;
}

static int first_stream(void *ctx, const as_stream_stats *s) {
  as_stream_stats *out = ctx;
  *out = *s;
  return AS_OK;
}

START_TEST(streams_dead_letters_conflicts) {
  as_state *st = NULL;
  as_error err;
  ck_assert_int_eq(as_state_open(path, false, &st, &err), AS_OK);
  as_stream_stats s;
  memset(&s, 0, sizeof s);
  snprintf(s.stream_id, sizeof s.stream_id, "mongo->lite");
  snprintf(s.source, sizeof s.source, "mongo");
  snprintf(s.target, sizeof s.target, "lite");
  snprintf(s.phase, sizeof s.phase, "streaming");
  snprintf(s.checkpoint, sizeof s.checkpoint, "8263A1");
  s.applied = 7;
  ck_assert_int_eq(as_state_stream_put(st, &s, &err), AS_OK);
  as_stream_stats got;
  memset(&got, 0, sizeof got);
  ck_assert_int_eq(as_state_stream_each(st, first_stream, &got, &err), AS_OK);
  ck_assert_str_eq(got.stream_id, "mongo->lite");
  ck_assert_int_eq(got.applied, 7);
  ck_assert_str_eq(got.checkpoint, "8263A1");

  ck_assert_int_eq(as_state_dead_add(st, "users", "mongo", "lite", "capture", "{\"id\":\"u1\"}",
                                     "{\"_id\":\"u1\",\"age\":\"x\"}", NULL,
                                     "cannot store string \"x\" in int64 column \"age\"", "tok",
                                     &err),
                   AS_OK);
  ck_assert_int_eq(as_state_dead_count(st, "open"), 1);
  int n = 0;
  ck_assert_int_eq(as_state_dead_each(st, "open", count_dead, &n, &err), AS_OK);
  ck_assert_int_eq(n, 1);
  ck_assert_int_eq(as_state_dead_set_status(st, 1, "resolved", NULL, &err), AS_OK);
  ck_assert_int_eq(as_state_dead_count(st, "open"), 0);
  ck_assert_int_eq(as_state_dead_count(st, NULL), 1);

  ck_assert_int_eq(as_state_conflict_count(st, NULL, false), 0);
  as_state_close(st);
}
END_TEST

/* ---- conflicts ---- */
typedef struct seen_conflicts {
  int n;
  int64_t ids[8];
} seen_conflicts;

static int collect_conflict(void *ctx, const as_conflict *c) {
  seen_conflicts *s = ctx;
  if (s->n < 8) s->ids[s->n] = c->id;
  s->n++;
  return AS_OK;
}

typedef struct count_row {
  char mapping[32], strategy[16];
  int64_t open, total;
} count_row;
typedef struct counts_seen {
  int n;
  count_row r[4];
} counts_seen;

static int collect_count(void *ctx, const char *mapping, const char *strategy, int64_t open,
                         int64_t total) {
  counts_seen *c = ctx;
  if (c->n < 4) {
    snprintf(c->r[c->n].mapping, sizeof c->r[c->n].mapping, "%s", mapping);
    snprintf(c->r[c->n].strategy, sizeof c->r[c->n].strategy, "%s", strategy);
    c->r[c->n].open = open;
    c->r[c->n].total = total;
  }
  c->n++;
  return AS_OK;
}

START_TEST(conflicts_record_get_settle) {
  as_state *st = NULL;
  as_error err;
  ck_assert_int_eq(as_state_open(path, false, &st, &err), AS_OK);
  as_conflict_rec rec = {
      .mapping = "users", .key = "{\"id\":\"u1\"}", .strategy = "vector",
      .columns_json = "[\"name\"]", .chosen = "pg", .open = true,
      .local = {.node = "pg", .row_json = "{\"id\":\"u1\",\"name\":\"A\",\"n\":null}",
                .vv_json = "{\"pg\":2,\"lite\":1}", .ts_us = 1700000000123456},
      .remote = {.node = "lite", .row_json = "{\"name\":\"B\"}", .vv_json = "{\"lite\":2}",
                 .ts_us = 1700000000654321}};
  int64_t id1 = 0, id2 = 0, id3 = 0;
  ck_assert_int_eq(as_state_conflict_record(st, &rec, &id1, &err), AS_OK);
  as_conflict_rec other = {.mapping = "orders", .key = "{\"id\":7}", .strategy = "vector", .open = true,
                           .local = {.node = "lite"}, .remote = {.node = "mongo", .row_json = "null"}};
  ck_assert_int_eq(as_state_conflict_record(st, &other, &id2, &err), AS_OK);
  as_conflict_rec lost = {.mapping = "users", .key = "{\"id\":\"u2\"}", .strategy = "lww", .open = false,
                          .chosen = "pg", .local = {.node = "pg"}, .remote = {.node = "lite"}};
  ck_assert_int_eq(as_state_conflict_record(st, &lost, &id3, &err), AS_OK);
  ck_assert_int_gt(id2, id1);
  ck_assert_int_gt(id3, id2);
  as_conflict_rec nokey = {.mapping = "users"};
  ck_assert_int_eq(as_state_conflict_record(st, &nokey, NULL, &err), AS_EINVAL);

  as_conflict c;
  ck_assert_int_eq(as_state_conflict_get(st, id1, &c, &err), AS_OK);
  ck_assert_str_eq(c.mapping, "users");
  ck_assert_str_eq(c.key, "{\"id\":\"u1\"}");
  ck_assert_str_eq(c.strategy, "vector");
  ck_assert_str_eq(c.status, "open");
  ck_assert_str_eq(c.columns, "[\"name\"]");
  ck_assert_str_eq(c.chosen, "pg");
  ck_assert_str_eq(c.local.node, "pg");
  ck_assert_str_eq(c.local.row, "{\"id\":\"u1\",\"name\":\"A\",\"n\":null}");
  ck_assert_str_eq(c.local.vv, "{\"pg\":2,\"lite\":1}");
  ck_assert_int_eq(c.local.ts_us, 1700000000123456);
  ck_assert_str_eq(c.remote.node, "lite");
  ck_assert_str_eq(c.remote.row, "{\"name\":\"B\"}");
  ck_assert_int_eq(c.remote.ts_us, 1700000000654321);
  ck_assert_int_eq(c.resolved_us, 0);
  ck_assert_ptr_null(c.resolved_row);
  ck_assert_int_gt(c.created_us, 0);
  as_conflict_clear(&c);
  ck_assert_ptr_null(c.mapping);
  ck_assert_int_eq(as_state_conflict_get(st, id3, &c, &err), AS_OK);
  ck_assert_str_eq(c.status, "resolved"); /* an lww loss is settled when recorded */
  ck_assert_int_gt(c.resolved_us, 0);
  ck_assert_ptr_null(c.local.row);
  ck_assert_int_eq(c.local.ts_us, 0);
  as_conflict_clear(&c);
  ck_assert_int_eq(as_state_conflict_get(st, 999, &c, &err), AS_ENOTFOUND);
  ck_assert_ptr_nonnull(strstr(err.message, "conflict 999"));

  /* filters */
  seen_conflicts s = {0};
  ck_assert_int_eq(as_state_conflict_each(st, NULL, false, collect_conflict, &s, &err), AS_OK);
  ck_assert_int_eq(s.n, 3);
  ck_assert_int_eq(s.ids[0], id1);
  memset(&s, 0, sizeof s);
  ck_assert_int_eq(as_state_conflict_each(st, NULL, true, collect_conflict, &s, &err), AS_OK);
  ck_assert_int_eq(s.n, 2);
  memset(&s, 0, sizeof s);
  ck_assert_int_eq(as_state_conflict_each(st, "users", true, collect_conflict, &s, &err), AS_OK);
  ck_assert_int_eq(s.n, 1);
  ck_assert_int_eq(s.ids[0], id1);
  memset(&s, 0, sizeof s);
  ck_assert_int_eq(as_state_conflict_each(st, "users", false, collect_conflict, &s, &err), AS_OK);
  ck_assert_int_eq(s.n, 2);
  ck_assert_int_eq(s.ids[1], id3);
  ck_assert_int_eq(as_state_conflict_count(st, NULL, true), 2);
  ck_assert_int_eq(as_state_conflict_count(st, "users", true), 1);
  ck_assert_int_eq(as_state_conflict_count(st, "users", false), 2);
  counts_seen cs = {0};
  ck_assert_int_eq(as_state_conflict_counts(st, collect_count, &cs, &err), AS_OK);
  ck_assert_int_eq(cs.n, 3); /* orders/vector, users/lww, users/vector */
  ck_assert_str_eq(cs.r[0].mapping, "orders");
  ck_assert_int_eq(cs.r[0].open, 1);
  ck_assert_str_eq(cs.r[1].strategy, "lww");
  ck_assert_int_eq(cs.r[1].open, 0);
  ck_assert_int_eq(cs.r[1].total, 1);
  ck_assert_str_eq(cs.r[2].strategy, "vector");
  ck_assert_int_eq(cs.r[2].open, 1);

  /* settling */
  ck_assert_int_eq(as_state_conflict_set_status(st, id1, "resolved", "lite", "{\"id\":\"u1\",\"name\":\"B\"}", &err), AS_OK);
  ck_assert_int_eq(as_state_conflict_set_status(st, id1, "resolved", "pg", NULL, &err), AS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.message, "already resolved"));
  ck_assert_int_eq(as_state_conflict_set_status(st, 998, "resolved", "pg", NULL, &err), AS_ENOTFOUND);
  ck_assert_int_eq(as_state_conflict_set_status(st, id2, "settled", NULL, NULL, &err), AS_EINVAL);
  ck_assert_int_eq(as_state_conflict_get(st, id1, &c, &err), AS_OK);
  ck_assert_str_eq(c.status, "resolved");
  ck_assert_str_eq(c.chosen, "lite");
  ck_assert_str_eq(c.resolved_row, "{\"id\":\"u1\",\"name\":\"B\"}");
  ck_assert_int_gt(c.resolved_us, 0);
  ck_assert_str_eq(c.local.row, "{\"id\":\"u1\",\"name\":\"A\",\"n\":null}"); /* both kept */
  as_conflict_clear(&c);
  ck_assert_int_eq(as_state_conflict_count(st, "users", true), 0);
  as_state_close(st);

  /* a reader of another process sees the same */
  ck_assert_int_eq(as_state_open(path, true, &st, &err), AS_OK);
  ck_assert_int_eq(as_state_conflict_count(st, NULL, true), 1);
  ck_assert_int_eq(as_state_conflict_get(st, id2, &c, &err), AS_OK);
  ck_assert_str_eq(c.remote.row, "null");
  as_conflict_clear(&c);
  as_state_close(st);
}
END_TEST

/* A store written before both versions were kept: the old columns only. */
static void make_old_store(const char *p) {
  sqlite3 *db = NULL;
  ck_assert_int_eq(sqlite3_open(p, &db), SQLITE_OK);
  ck_assert_int_eq(
      sqlite3_exec(db,
                   "CREATE TABLE conflicts(id INTEGER PRIMARY KEY AUTOINCREMENT, created_us INTEGER "
                   "NOT NULL, mapping TEXT, key TEXT, local TEXT, remote TEXT, winner TEXT, strategy "
                   "TEXT, status TEXT NOT NULL DEFAULT 'open');"
                   "INSERT INTO conflicts(created_us, mapping, key, local, winner, strategy) VALUES"
                   " (1700000000000000, 'users', '{\"id\":\"u1\"}', '{\"mapping\":\"users\",\"op\":"
                   "\"update\",\"key\":{\"id\":\"u1\"},\"cols\":{\"name\":\"B\",\"n\":null},"
                   "\"origin\":\"lite\",\"echo\":false,\"ts\":1699999999000000,\"hlc\":1}', 'pg', 'lww');",
                   NULL, NULL, NULL),
      SQLITE_OK);
  sqlite3_close(db);
}

static void check_old_record(const as_conflict *c) {
  ck_assert_str_eq(c->status, "resolved");
  ck_assert_str_eq(c->remote.node, "lite");
  ck_assert_str_eq(c->remote.row, "{\"id\":\"u1\",\"name\":\"B\",\"n\":null}");
  ck_assert_int_eq(c->remote.ts_us, 1699999999000000);
  ck_assert_str_eq(c->local.node, "pg");
  ck_assert_str_eq(c->chosen, "pg");
  ck_assert_str_eq(c->columns, "[\"name\",\"n\"]");
}

START_TEST(conflicts_old_store) {
  make_old_store(path);
  as_state *st = NULL;
  as_error err;
  as_conflict c;
  /* read-only (another process's reader): read as it is, not upgraded */
  ck_assert_int_eq(as_state_open(path, true, &st, &err), AS_OK);
  ck_assert_int_eq(as_state_conflict_get(st, 1, &c, &err), AS_OK);
  check_old_record(&c);
  as_conflict_clear(&c);
  ck_assert_int_eq(as_state_conflict_count(st, NULL, true), 0);
  ck_assert_int_eq(as_state_conflict_count(st, NULL, false), 1);
  as_state_close(st);
  /* read-write: the table gets the new columns; the old row stays readable */
  ck_assert_int_eq(as_state_open(path, false, &st, &err), AS_OK);
  ck_assert_int_eq(as_state_conflict_get(st, 1, &c, &err), AS_OK);
  check_old_record(&c);
  ck_assert_int_eq(c.resolved_us, 1700000000000000);
  as_conflict_clear(&c);
  ck_assert_int_eq(as_state_conflict_count(st, NULL, true), 0);
  as_conflict_rec rec = {.mapping = "users", .key = "{\"id\":\"u9\"}", .strategy = "vector",
                         .open = true, .local = {.node = "pg"}, .remote = {.node = "lite"}};
  int64_t id = 0;
  ck_assert_int_eq(as_state_conflict_record(st, &rec, &id, &err), AS_OK);
  ck_assert_int_eq(id, 2);
  as_state_close(st);
  /* opening again changes nothing more */
  ck_assert_int_eq(as_state_open(path, false, &st, &err), AS_OK);
  ck_assert_int_eq(as_state_conflict_count(st, NULL, true), 1);
  ck_assert_int_eq(as_state_conflict_get(st, 1, &c, &err), AS_OK);
  check_old_record(&c);
  as_conflict_clear(&c);
  as_state_close(st);
}
END_TEST

START_TEST(conflict_row_helpers) {
  as_schema *s = NULL;
  as_error err;
  ck_assert_int_eq(as_schema_load_string("t.yaml",
                                         "mapping: users\ncollection: users\ntable: users\n"
                                         "key: id\ncolumns:\n  id: { field: _id, type: text }\n"
                                         "  name: { field: name, type: text }\n"
                                         "  amount: { field: amount, type: numeric }\n",
                                         &s, &err),
                   AS_OK);
  as_row r;
  ck_assert_int_eq(as_row_init(&r, s->ncols), AS_OK);
  as_value v = {.type = AS_T_TEXT};
  v.u.s.ptr = strdup("u1");
  v.u.s.len = 2;
  as_row_put(&r, 0, &v);
  as_value d = {.type = AS_T_DECIMAL};
  d.u.s.ptr = strdup("1.50");
  d.u.s.len = 4;
  as_row_put(&r, 2, &d);
  char *j = as_conflict_row_json(s, &r, false, &err);
  ck_assert_str_eq(j, "{\"id\":\"u1\",\"amount\":{\"$decimal\":\"1.50\"}}");
  free(j);
  j = as_conflict_row_json(s, &r, true, &err);
  ck_assert_str_eq(j, "null");
  free(j);
  j = as_conflict_columns_json(s, &r, &err);
  ck_assert_str_eq(j, "[\"amount\"]");
  free(j);
  as_row_clear(&r);
  as_schema_free(s);
}
END_TEST

/* ---- router ---- */
static as_node_config nodes[3] = {{.name = "m", .kind = "mongodb"},
                                  {.name = "p", .kind = "postgres"},
                                  {.name = "s", .kind = "sqlite"}};

static as_config cfg_of(as_topology_type t) {
  as_config c;
  memset(&c, 0, sizeof c);
  c.nodes = nodes;
  c.nnodes = 3;
  c.topology.type = t;
  return c;
}

START_TEST(route_peer_to_peer) {
  as_config c = cfg_of(AS_TOPO_PEER_TO_PEER);
  ck_assert(as_route_pair(&c, "m", "p"));
  ck_assert(as_route_pair(&c, "p", "s"));
  ck_assert(!as_route_pair(&c, "m", "m"));
  ck_assert(as_route_forward(&c, "m", "p", "m", false, false));   /* own change */
  ck_assert(!as_route_relays(&c, "p", "m"));                      /* nothing relayed */
  ck_assert(!as_route_forward(&c, "p", "s", "m", true, false));   /* echoes never travel */
  ck_assert(!as_route_forward(&c, "p", "m", "m", false, true));   /* never back to origin */
}
END_TEST

START_TEST(route_hub_and_spoke) {
  as_config c = cfg_of(AS_TOPO_HUB_AND_SPOKE);
  c.topology.hub = "m";
  ck_assert(as_route_pair(&c, "p", "m"));
  ck_assert(as_route_pair(&c, "m", "s"));
  ck_assert(!as_route_pair(&c, "p", "s")); /* spokes talk only through the hub */
  ck_assert(as_route_forward(&c, "p", "m", "p", false, false));
  ck_assert(!as_route_forward(&c, "p", "m", "s", false, false)); /* not p's own change */
  ck_assert(as_route_forward(&c, "m", "s", "p", false, true));  /* hub relays p's change to s */
  ck_assert(as_route_relays(&c, "m", "p"));
  ck_assert(!as_route_relays(&c, "p", "m"));                     /* spokes relay nothing */
  ck_assert(!as_route_forward(&c, "m", "s", "p", true, false));  /* echoes never travel */
  ck_assert(!as_route_forward(&c, "m", "p", "p", false, true)); /* not back to p */
}
END_TEST

START_TEST(route_ring) {
  as_config c = cfg_of(AS_TOPO_RING);
  char *order[] = {"m", "p", "s"};
  c.topology.order = order;
  c.topology.norder = 3;
  ck_assert(as_route_pair(&c, "m", "p"));
  ck_assert(as_route_pair(&c, "s", "m"));
  ck_assert(!as_route_pair(&c, "p", "m"));
  ck_assert(as_route_forward(&c, "p", "s", "m", false, true));  /* m's change goes on around */
  ck_assert(as_route_relays(&c, "p", "m"));
  ck_assert(!as_route_forward(&c, "s", "m", "m", false, true)); /* stops before returning to m */
  ck_assert(!as_route_relays(&c, "s", "m"));
}
END_TEST

START_TEST(route_direction) {
  as_config c = cfg_of(AS_TOPO_PEER_TO_PEER);
  as_schema s;
  memset(&s, 0, sizeof s);
  s.direction = AS_DIR_TO_SQL;
  ck_assert(as_route_direction(&c, &s, "m", "p"));
  ck_assert(!as_route_direction(&c, &s, "p", "m"));
  ck_assert(!as_route_direction(&c, &s, "p", "s")); /* SQL-originated changes stay put */
  s.direction = AS_DIR_TO_MONGO;
  ck_assert(as_route_direction(&c, &s, "p", "m"));
  ck_assert(!as_route_direction(&c, &s, "m", "s"));
  s.direction = AS_DIR_BOTH;
  ck_assert(as_route_direction(&c, &s, "s", "p"));
}
END_TEST

int main(void) {
  Suite *su = suite_create("state");
  TCase *tc = tcase_create("state");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, version_order);
  tcase_add_test(tc, held_versions_per_node);
  tcase_add_test(tc, covered_row_is_held);
  tcase_add_test(tc, uncommitted_marks_taken_back);
  tcase_add_test(tc, node_ids_are_stable);
  tcase_add_test(tc, cache_follows_commit);
  tcase_add_test(tc, one_run_per_store);
  tcase_add_test(tc, repair_queue);
  tcase_add_test(tc, versions_persist_and_cache);
  tcase_add_test(tc, packed_keys_round_trip);
  tcase_add_test(tc, packed_key_prefix_rollback);
  tcase_add_test(tc, version_records_round_trip);
  tcase_add_test(tc, text_keys_old_store);
  tcase_add_test(tc, versions_settle);
  tcase_add_test(tc, tombstone_retention);
  tcase_add_test(tc, streams_dead_letters_conflicts);
  tcase_add_test(tc, conflicts_record_get_settle);
  tcase_add_test(tc, conflicts_old_store);
  tcase_add_test(tc, conflict_row_helpers);
  suite_add_tcase(su, tc);
  TCase *tr = tcase_create("router");
  tcase_add_test(tr, route_peer_to_peer);
  tcase_add_test(tr, route_hub_and_spoke);
  tcase_add_test(tr, route_ring);
  tcase_add_test(tr, route_direction);
  suite_add_tcase(su, tr);
  return as_test_run(su);
}
