/* bench_resolve.c — the resolver seam's cost per decision: strategy vector against lww on
 * the same stream of changes, in one run (connector/as_resolve*.c).
 *
 *   bench_resolve [CHANGES]   (default 2,000,000 decisions per figure, best of 3 rounds,
 *                              interleaved)
 *
 * The stream: 3 nodes changing 1,000 keys of a 10-column mapping; each change is an update of
 * 1-3 columns made by one node, decided on its two pairs (node -> each other node), with the
 * key's versions kept in memory between decisions (as the engine's state cache does). Every
 * eighth change is made by a node that had not seen the previous one (concurrent: vector
 * records a conflict there). Printed: ns per decision for each, and resolve.vector_vs_lww
 * ratio= (vector ÷ lww; the target: <= 1.2). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "as_resolve.h"
#include "as_schema.h"

static const char *MAPPING =
    "mapping: accounts\nkey: id\ncolumns:\n"
    "  id: text\n  name: text\n  email: text\n  balance: numeric\n  qty: int64\n"
    "  price: double\n  active: bool\n  note: text\n  city: text\n  tag: text\n";

#define NKEYS 1000
#define DIE(...)                  \
  do {                            \
    fprintf(stderr, __VA_ARGS__); \
    fprintf(stderr, "\n");        \
    exit(1);                      \
  } while (0)

static const char *names[] = {"", "m", "p", "s"};

static const char *name_of(void *ctx, uint16_t id) {
  (void)ctx;
  return id < 4 ? names[id] : NULL;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct change {
  as_delta d;
  uint16_t node;
  bool raced;
  int key;
} change;

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void make_changes(const as_schema *s, change *cs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    change *c = &cs[i];
    memset(c, 0, sizeof *c);
    c->node = (uint16_t)(1 + next() % 3);
    c->key = (int)(next() % NKEYS);
    c->raced = next() % 8 == 0;
    if (as_delta_init(&c->d, s, AS_OP_UPDATE) != AS_OK) DIE("out of memory");
    as_value v = AS_VALUE_NULL;
    char key[32];
    int kl = snprintf(key, sizeof key, "k%d", c->key);
    if (as_value_set_str(&v, AS_T_TEXT, key, (size_t)kl) != AS_OK) DIE("out of memory");
    as_row_put(&c->d.row, 0, &v);
    size_t ncols = 1 + next() % 3;
    for (size_t k = 0; k < ncols; k++) {
      size_t col = 1 + next() % (s->ncols - 1);
      if (s->cols[col].type != AS_T_TEXT) col = 1;
      if (as_value_set_str(&v, AS_T_TEXT, "value", 5) != AS_OK) DIE("out of memory");
      as_row_put(&c->d.row, col, &v);
    }
    if (as_delta_set_origin(&c->d, names[c->node]) != AS_OK) DIE("out of memory");
    c->d.hlc = (int64_t)(1000 + i) << 8;
    c->d.ts_us = 1000 + (int64_t)i;
  }
}

/* Decides every change on its two pairs; returns ns per decision. */
static double run(as_resolver *r, const change *cs, size_t n, as_version *vs, bool *found) {
  memset(vs, 0, NKEYS * sizeof *vs);
  memset(found, 0, NKEYS * sizeof *found);
  uint8_t mask[3 * 16];
  double t0 = now_s();
  size_t decisions = 0;
  for (size_t i = 0; i < n; i++) {
    const change *c = &cs[i];
    for (uint16_t t = 1; t <= 3; t++) {
      if (t == c->node) continue;
      memset(mask, 0, sizeof mask);
      as_decision dec = {.apply = mask, .lost = mask + 16, .disputed = mask + 32};
      as_change ch = {.d = &c->d, .origin_id = c->node, .source = names[c->node],
                      .target = names[t], .local = true, .node_name = name_of,
                      .source_id = c->node, .target_id = t, .raced = c->raced};
      as_error err;
      if (as_resolver_decide(r, &ch, &vs[c->key], found[c->key], &dec, &err) != AS_OK)
        DIE("decide: %s", err.message);
      found[c->key] = true;
      decisions++;
    }
  }
  return (now_s() - t0) * 1e9 / (double)decisions;
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) / 2 : 1000000;
  as_schema *s = NULL;
  as_error err;
  if (as_schema_load_string("bench.yaml", MAPPING, &s, &err) != AS_OK) DIE("%s", err.message);
  change *cs = calloc(n, sizeof *cs);
  as_version *vs = calloc(NKEYS, sizeof *vs);
  bool *found = calloc(NKEYS, sizeof *found);
  if (!cs || !vs || !found) DIE("out of memory");
  make_changes(s, cs, n);
  as_resolver *lww = as_resolver_lww_new(), *vec = as_resolver_vector_new(AS_STRATEGY_LWW);
  if (!lww || !vec) DIE("out of memory");
  double best_l = 1e18, best_v = 1e18;
  for (int round = 0; round < 3; round++) {
    double l = run(lww, cs, n, vs, found);
    double v = run(vec, cs, n, vs, found);
    if (l < best_l) best_l = l;
    if (v < best_v) best_v = v;
  }
  printf("resolve.lww ns_per_decision=%.1f\n", best_l);
  printf("resolve.vector ns_per_decision=%.1f\n", best_v);
  printf("resolve.vector_vs_lww ratio=%.2f (target <= 1.2)\n", best_v / best_l);
  for (size_t i = 0; i < n; i++) as_delta_clear(&cs[i].d);
  free(cs);
  free(vs);
  free(found);
  as_resolver_free(lww);
  as_resolver_free(vec);
  as_schema_free(s);
  return 0;
}
