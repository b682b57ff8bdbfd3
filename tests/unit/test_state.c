/* Unit tests: the state store (versions + cache, tombstones, streams, dead letters, conflicts)
 * and the router (topologies, direction). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "as_config.h"
#include "as_router.h"
#include "as_state.h"
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

  ck_assert_int_eq(as_state_conflict_count(st), 0);
  ck_assert_int_eq(as_state_conflict_add(st, "users", "{\"id\":\"u1\"}", "{}", NULL, "lite", "lww",
                                         &err),
                   AS_OK);
  ck_assert_int_eq(as_state_conflict_count(st), 1);
  as_state_close(st);
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
  tcase_add_test(tc, node_ids_are_stable);
  tcase_add_test(tc, cache_follows_commit);
  tcase_add_test(tc, one_run_per_store);
  tcase_add_test(tc, repair_queue);
  tcase_add_test(tc, versions_persist_and_cache);
  tcase_add_test(tc, tombstone_retention);
  tcase_add_test(tc, streams_dead_letters_conflicts);
  suite_add_tcase(su, tc);
  TCase *tr = tcase_create("router");
  tcase_add_test(tr, route_peer_to_peer);
  tcase_add_test(tr, route_hub_and_spoke);
  tcase_add_test(tr, route_ring);
  tcase_add_test(tr, route_direction);
  suite_add_tcase(su, tr);
  return as_test_run(su);
}
