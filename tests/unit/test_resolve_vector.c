/* test_resolve_vector.c — the version-vector resolver (connector/as_resolve_vector.c): causal
 * changes apply whatever the clocks say; concurrent changes of different columns merge;
 * of the same column they are a conflict decided by the fallback (lww, keep-local,
 * keep-remote); a change decided on one pair is not decided again on another; a delete
 * concurrent with an update loses; a raced change counts as concurrent. */
#include <check.h>

#include <stdlib.h>
#include <string.h>

#include "as_codec_fixture.h"
#include "as_resolve.h"
#include "as_test_util.h"

static as_schema *S;
static const char *names[] = {"", "a", "b", "c"}; /* node ids 1..3 */

static const char *name_of(void *ctx, uint16_t id) {
  (void)ctx;
  return id < 4 ? names[id] : NULL;
}

static uint16_t id_of(const char *n) {
  for (uint16_t i = 1; i < 4; i++)
    if (strcmp(names[i], n) == 0) return i;
  ck_abort_msg("unknown node %s", n);
  return 0;
}

static void setup(void) {
  static const fx_col cols[] = {{"id", "_id", AS_T_TEXT, FX_KEY},
                                {"x", "x", AS_T_TEXT, 0},
                                {"y", "y", AS_T_TEXT, 0},
                                {"z", "z", AS_T_INT64, 0}};
  S = fx_schema("m", cols, 4);
}

static void teardown(void) { fx_schema_free(S); }

/* A change of key "k": op, version (hlc, origin), columns "x", "xy", "xyz". */
static as_delta change(as_op op, int64_t hlc, const char *origin, const char *cols) {
  as_delta d;
  memset(&d, 0, sizeof d);
  ck_assert_int_eq(as_delta_init(&d, S, op), AS_OK);
  as_value v = AS_VALUE_NULL;
  ck_assert_int_eq(as_value_set_str(&v, AS_T_TEXT, "k", 1), AS_OK);
  as_row_put(&d.row, 0, &v);
  for (const char *c = cols; *c; c++) {
    size_t i = (size_t)(*c - 'x') + 1;
    if (i == 3) as_value_set_int64(&v, hlc);
    else ck_assert_int_eq(as_value_set_str(&v, AS_T_TEXT, origin, strlen(origin)), AS_OK);
    as_row_put(&d.row, i, &v);
  }
  ck_assert_int_eq(as_delta_set_origin(&d, origin), AS_OK);
  d.hlc = hlc;
  return d;
}

typedef struct outcome {
  as_verdict verdict;
  bool new_winner, conflict;
  uint8_t apply[4], lost[4], disputed[4];
} outcome;

/* Decides d on the pair source -> target (local: captured on source, which is its origin). */
static outcome decide(as_resolver *r, as_version *v, bool found, const as_delta *d,
                      const char *source, const char *target, bool raced) {
  outcome o;
  memset(&o, 0, sizeof o);
  as_decision dec = {.apply = o.apply, .lost = o.lost, .disputed = o.disputed};
  bool local = strcmp(source, d->origin) == 0;
  as_change c = {.d = d, .origin_id = id_of(d->origin), .source = source, .target = target,
                 .local = local, .node_name = name_of, .ctx = NULL,
                 .source_id = id_of(source), .target_id = id_of(target), .raced = raced};
  as_error err;
  ck_assert_int_eq(as_resolver_decide(r, &c, v, found, &dec, &err), AS_OK);
  o.verdict = dec.verdict;
  o.new_winner = dec.new_winner;
  o.conflict = dec.conflict;
  return o;
}

/* Key k inserted on a (hlc 10) and written to b and c: every node holds it. */
static as_version shared_row(as_resolver *r) {
  as_version v;
  memset(&v, 0, sizeof v);
  as_delta ins = change(AS_OP_INSERT, 10, "a", "xyz");
  outcome o = decide(r, &v, false, &ins, "a", "b", false);
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
  o = decide(r, &v, true, &ins, "a", "c", false); /* the same change on the other pair */
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
  ck_assert(!o.conflict);
  as_delta_clear(&ins);
  return v;
}

START_TEST(causal_change_wins_whatever_the_clock) {
  as_resolver *r = as_resolver_vector_new(AS_STRATEGY_LWW);
  as_version v = shared_row(r);
  /* b holds a's insert and updates x with a clock behind a's: made on top of it */
  as_delta u = change(AS_OP_UPDATE, 5, "b", "x");
  outcome o = decide(r, &v, true, &u, "b", "a", false);
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
  ck_assert(!o.conflict);
  ck_assert(o.apply[1]);
  ck_assert(!o.lost[1]);
  const as_colver *cv = as_version_col(&v, 1);
  ck_assert_ptr_nonnull(cv);
  ck_assert_int_eq(cv->hlc, 5);
  ck_assert_int_eq(cv->origin, id_of("b"));
  ck_assert_uint_eq(as_version_vv(&v, id_of("b")), 1);
  /* under last-write-wins the same change loses (its clock is older) */
  as_resolver *lww = as_resolver_lww_new();
  as_version w = shared_row(lww);
  o = decide(lww, &w, true, &u, "b", "a", false);
  ck_assert_int_eq(o.verdict, AS_VERDICT_LOST);
  as_resolver_free(lww);
  as_delta_clear(&u);
  as_resolver_free(r);
}
END_TEST

START_TEST(concurrent_disjoint_columns_merge) {
  as_resolver *r = as_resolver_vector_new(AS_STRATEGY_LWW);
  as_version v = shared_row(r);
  as_delta bx = change(AS_OP_UPDATE, 20, "b", "x");
  as_delta cy = change(AS_OP_UPDATE, 21, "c", "y"); /* c never saw b's change */
  outcome o = decide(r, &v, true, &bx, "b", "a", false);
  ck_assert(!o.conflict && o.apply[1]);
  o = decide(r, &v, true, &cy, "c", "a", false);
  ck_assert(!o.conflict);
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
  ck_assert(o.apply[2] && !o.apply[1]);
  /* each reaches the third node: both apply there, no conflict */
  o = decide(r, &v, true, &bx, "b", "c", false);
  ck_assert(!o.conflict && o.verdict == AS_VERDICT_APPLY && o.apply[1]);
  o = decide(r, &v, true, &cy, "c", "b", false);
  ck_assert(!o.conflict && o.verdict == AS_VERDICT_APPLY && o.apply[2]);
  as_delta_clear(&bx);
  as_delta_clear(&cy);
  as_resolver_free(r);
}
END_TEST

/* b and c change x concurrently; b's change is decided first. */
static void same_column(as_strategy fallback, int64_t c_hlc, bool c_wins) {
  as_resolver *r = as_resolver_vector_new(fallback);
  as_version v = shared_row(r);
  as_delta bx = change(AS_OP_UPDATE, 20, "b", "x");
  as_delta cx = change(AS_OP_UPDATE, c_hlc, "c", "x");
  outcome o = decide(r, &v, true, &bx, "b", "a", false);
  ck_assert(!o.conflict);
  o = decide(r, &v, true, &cx, "c", "a", false);
  ck_assert(o.conflict);
  ck_assert(o.disputed[1] && !o.disputed[2] && !o.disputed[3]);
  if (c_wins) {
    ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
    ck_assert(o.apply[1]);
  } else {
    ck_assert_int_eq(o.verdict, AS_VERDICT_LOST);
    ck_assert(o.lost[1]);
  }
  /* the same change on its other pair (c -> b): decided already, no second conflict */
  o = decide(r, &v, true, &cx, "c", "b", false);
  ck_assert(!o.conflict);
  ck_assert_int_eq(o.verdict, c_wins ? AS_VERDICT_APPLY : AS_VERDICT_SKIP);
  /* and b's change on its other pair (b -> c) */
  o = decide(r, &v, true, &bx, "b", "c", false);
  ck_assert(!o.conflict);
  ck_assert_int_eq(o.verdict, c_wins ? AS_VERDICT_SKIP : AS_VERDICT_APPLY);
  const as_colver *cv = as_version_col(&v, 1);
  ck_assert_ptr_nonnull(cv);
  ck_assert_int_eq(cv->origin, id_of(c_wins ? "c" : "b"));
  as_delta_clear(&bx);
  as_delta_clear(&cx);
  as_resolver_free(r);
}

START_TEST(concurrent_same_column_fallbacks) {
  same_column(AS_STRATEGY_LWW, 15, false);      /* b's 20 is the later write */
  same_column(AS_STRATEGY_LWW, 25, true);       /* c's 25 is */
  same_column(AS_STRATEGY_KEEP_LOCAL, 25, false); /* the version in place stays */
  same_column(AS_STRATEGY_KEEP_REMOTE, 15, true); /* the incoming change takes it */
}
END_TEST

START_TEST(sequential_changes_never_conflict) {
  as_resolver *r = as_resolver_vector_new(AS_STRATEGY_LWW);
  as_version v = shared_row(r);
  const char *order[] = {"b", "c", "a", "b", "c"};
  /* skewed clocks: c's is 50 behind b's, a's 90 behind (each node's own clock moves on) */
  const int64_t clock[] = {100, 60, 20, 101, 61};
  for (int i = 0; i < 5; i++) {
    /* each node changes x after receiving the previous change */
    as_delta d = change(AS_OP_UPDATE, clock[i], order[i], "x");
    for (int t = 0; t < 3; t++) {
      if (strcmp(names[t + 1], order[i]) == 0) continue;
      outcome o = decide(r, &v, true, &d, order[i], names[t + 1], false);
      ck_assert_msg(!o.conflict, "change %d conflicts", i);
      ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
    }
    as_delta_clear(&d);
  }
  ck_assert_uint_eq(as_version_vv(&v, id_of("b")), 2);
  as_resolver_free(r);
}
END_TEST

START_TEST(delete_concurrent_with_update_loses) {
  as_resolver *r = as_resolver_vector_new(AS_STRATEGY_KEEP_REMOTE);
  as_version v = shared_row(r);
  as_delta bx = change(AS_OP_UPDATE, 20, "b", "x");
  as_delta del = change(AS_OP_DELETE, 30, "c", "");
  outcome o = decide(r, &v, true, &bx, "b", "a", false);
  o = decide(r, &v, true, &del, "c", "a", false);
  ck_assert(o.conflict);
  ck_assert_int_eq(o.verdict, AS_VERDICT_LOST); /* c is repaired with the row */
  ck_assert(!v.deleted);
  /* a delete made on top of everything wins */
  o = decide(r, &v, true, &bx, "b", "c", false); /* c receives b's change */
  as_delta del2 = change(AS_OP_DELETE, 31, "c", "");
  o = decide(r, &v, true, &del2, "c", "a", false);
  ck_assert(!o.conflict);
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
  ck_assert(v.deleted);
  /* an update of the deleted row from a node that never saw the delete brings it back */
  as_delta ay = change(AS_OP_UPDATE, 40, "b", "y");
  o = decide(r, &v, true, &ay, "b", "a", false);
  ck_assert(o.conflict);
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
  ck_assert(o.new_winner);
  ck_assert(!v.deleted);
  as_delta_clear(&bx);
  as_delta_clear(&del);
  as_delta_clear(&del2);
  as_delta_clear(&ay);
  as_resolver_free(r);
}
END_TEST

START_TEST(raced_change_is_concurrent) {
  as_resolver *r = as_resolver_vector_new(AS_STRATEGY_LWW);
  as_version v = shared_row(r);
  /* b holds a's insert, but that insert was the connector's last write to b and it may have
   * committed after b's change: the change may not have been made on top of it */
  as_version_set_held(&v, id_of("b"), id_of("a"), 10, false, 0);
  as_version w = v;
  as_delta u = change(AS_OP_UPDATE, 50, "b", "x");
  outcome o = decide(r, &v, true, &u, "b", "a", true);
  ck_assert(o.conflict);
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY); /* 50 > 10 under the lww fallback */
  /* the last write to b was another version (of another column): x's version was there
   * before, so the change was made on top of it */
  as_delta cy = change(AS_OP_UPDATE, 20, "c", "y");
  decide(r, &w, true, &cy, "c", "b", false);
  as_version_set_held(&w, id_of("b"), id_of("c"), 20, false, 0);
  o = decide(r, &w, true, &u, "b", "a", true);
  ck_assert(!o.conflict);
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
  as_delta_clear(&cy);
  as_delta_clear(&u);
  as_resolver_free(r);
}
END_TEST

START_TEST(relayed_and_snapshot_copies_apply_only_current_versions) {
  as_resolver *r = as_resolver_vector_new(AS_STRATEGY_LWW);
  as_version v = shared_row(r);
  as_delta bx = change(AS_OP_UPDATE, 20, "b", "x");
  decide(r, &v, true, &bx, "b", "a", false);
  /* a relays a's own older insert to c (source a, but c already ... ) : known version */
  as_delta ins = change(AS_OP_INSERT, 10, "a", "xyz");
  outcome o = decide(r, &v, true, &ins, "b", "c", false); /* relayed through b */
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
  ck_assert(!o.apply[1] && o.apply[2] && o.apply[3]); /* x is b's now */
  o = decide(r, &v, true, &bx, "a", "c", false); /* b's change relayed through a */
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
  ck_assert(o.apply[1]);
  as_delta stale = change(AS_OP_UPDATE, 19, "b", "x"); /* not the version in place */
  o = decide(r, &v, true, &stale, "a", "c", false);
  ck_assert_int_eq(o.verdict, AS_VERDICT_SKIP);
  as_delta_clear(&bx);
  as_delta_clear(&ins);
  as_delta_clear(&stale);
  as_resolver_free(r);
}
END_TEST

int main(void) {
  Suite *s = suite_create("resolve_vector");
  TCase *tc = tcase_create("decisions");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, causal_change_wins_whatever_the_clock);
  tcase_add_test(tc, concurrent_disjoint_columns_merge);
  tcase_add_test(tc, concurrent_same_column_fallbacks);
  tcase_add_test(tc, sequential_changes_never_conflict);
  tcase_add_test(tc, delete_concurrent_with_update_loses);
  tcase_add_test(tc, raced_change_is_concurrent);
  tcase_add_test(tc, relayed_and_snapshot_copies_apply_only_current_versions);
  suite_add_tcase(s, tc);
  return as_test_run(s);
}
