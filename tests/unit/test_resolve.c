/* test_resolve.c — the resolver seam's last-write-wins decisions (connector/as_resolve_lww.c),
 * one case per row of its decision table: new keys, whole rows, deletes and tombstones,
 * updates of some columns competing column by column, equal versions, a node's own earlier
 * change delivered again, and what a local change that loses leaves to repair. */
#include <check.h>

#include <stdlib.h>
#include <string.h>

#include "as_codec_fixture.h"
#include "as_resolve.h"
#include "as_test_util.h"

static as_schema *S;
static as_resolver *R;
static const char *names[] = {"", "a", "b", "c"}; /* node ids 1..3 */

static const char *name_of(void *ctx, uint16_t id) {
  (void)ctx;
  return id < 4 ? names[id] : NULL;
}

static uint16_t id_of(const char *n) {
  for (uint16_t i = 1; i < 4; i++)
    if (strcmp(names[i], n) == 0) return i;
  return 0;
}

static void setup(void) {
  static const fx_col cols[] = {{"id", "_id", AS_T_TEXT, FX_KEY},
                                {"x", "x", AS_T_TEXT, 0},
                                {"y", "y", AS_T_TEXT, 0},
                                {"z", "z", AS_T_INT64, 0}};
  S = fx_schema("m", cols, 4);
  R = as_resolver_lww_new();
}

static void teardown(void) {
  as_resolver_free(R);
  fx_schema_free(S);
}

/* A change: op, version (hlc, origin), columns given as "x", "xy", "xyz" (values are their
 * names; key "k"). */
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
    else ck_assert_int_eq(as_value_set_str(&v, AS_T_TEXT, c, 1), AS_OK);
    as_row_put(&d.row, i, &v);
  }
  ck_assert_int_eq(as_delta_set_origin(&d, origin), AS_OK);
  d.hlc = hlc;
  return d;
}

typedef struct outcome {
  as_verdict verdict;
  bool new_winner;
  uint8_t apply[4], lost[4];
} outcome;

static outcome decide(as_version *v, bool found, const as_delta *d, const char *source, bool local) {
  outcome o;
  memset(&o, 0, sizeof o);
  as_decision dec = {.apply = o.apply, .lost = o.lost};
  as_change c = {.d = d, .origin_id = id_of(d->origin), .source = source, .target = "t",
                 .local = local, .node_name = name_of, .ctx = NULL};
  as_error err;
  ck_assert_int_eq(as_resolver_decide(R, &c, v, found, &dec, &err), AS_OK);
  o.verdict = dec.verdict;
  o.new_winner = dec.new_winner;
  return o;
}

/* The state after a sequence of applied changes (each from its own origin, not local). */
static as_version state_of(const as_delta *ds, size_t n) {
  as_version v;
  memset(&v, 0, sizeof v);
  for (size_t i = 0; i < n; i++) decide(&v, i > 0, &ds[i], "x", false);
  return v;
}

START_TEST(new_key_applies) {
  as_version v;
  memset(&v, 0, sizeof v);
  as_delta d = change(AS_OP_INSERT, 10, "a", "xyz");
  outcome o = decide(&v, false, &d, "a", true);
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
  ck_assert(o.new_winner);
  ck_assert_int_eq(v.hlc, 10);
  ck_assert_str_eq(v.origin, "a");
  ck_assert(!v.deleted);
  as_delta_clear(&d);
}
END_TEST

START_TEST(whole_rows_newest_wins) {
  as_delta ds[] = {change(AS_OP_INSERT, 10, "a", "xyz")};
  as_version v = state_of(ds, 1);
  as_delta older = change(AS_OP_INSERT, 9, "b", "xyz");
  outcome o = decide(&v, true, &older, "b", true);
  ck_assert_int_eq(o.verdict, AS_VERDICT_LOST); /* a local change that lost */
  ck_assert(o.lost[1] && o.lost[2] && o.lost[3]);
  o = decide(&v, true, &older, "a", false);
  ck_assert_int_eq(o.verdict, AS_VERDICT_SKIP); /* relayed: just not applied */
  as_delta newer = change(AS_OP_INSERT, 11, "b", "xyz");
  o = decide(&v, true, &newer, "b", true);
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
  ck_assert(o.new_winner);
  ck_assert_str_eq(v.origin, "b");
  /* the same version again (a re-delivery): applies, changes nothing */
  o = decide(&v, true, &newer, "b", true);
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
  ck_assert(!o.new_winner);
  /* ties: the origin name decides */
  as_delta tie = change(AS_OP_INSERT, 11, "c", "xyz");
  o = decide(&v, true, &tie, "c", true);
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
  ck_assert_str_eq(v.origin, "c");
  as_delta_clear(&ds[0]);
  as_delta_clear(&older);
  as_delta_clear(&newer);
  as_delta_clear(&tie);
}
END_TEST

START_TEST(updates_compete_per_column) {
  as_delta ds[] = {change(AS_OP_INSERT, 10, "a", "xyz")};
  as_version v = state_of(ds, 1);
  /* b updates x at 20, c updates y at 15: different columns, both apply */
  as_delta ux = change(AS_OP_UPDATE, 20, "b", "x");
  as_delta uy = change(AS_OP_UPDATE, 15, "c", "y");
  outcome o = decide(&v, true, &ux, "b", true);
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
  ck_assert(o.apply[0] && o.apply[1] && !o.apply[2]);
  o = decide(&v, true, &uy, "c", true);
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
  ck_assert(o.apply[2]);
  ck_assert_int_eq(v.ncolv, 2);
  /* an older update of x (18 < 20) loses that column but not y (18 > 15) */
  as_delta uxy = change(AS_OP_UPDATE, 18, "c", "xy");
  o = decide(&v, true, &uxy, "c", true);
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
  ck_assert(!o.apply[1] && o.apply[2]);
  ck_assert(o.lost[1] && !o.lost[2]);
  /* the row's own version is unchanged by updates of some columns */
  ck_assert_int_eq(v.hlc, 10);
  /* a whole row newer than some column versions: it supersedes those, not the newer one */
  as_delta row = change(AS_OP_INSERT, 19, "a", "xyz");
  o = decide(&v, true, &row, "a", false);
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
  ck_assert(!o.apply[1]); /* x (20) stays */
  ck_assert(o.apply[2] && o.apply[3]);
  ck_assert_int_eq(v.hlc, 19);
  ck_assert_int_eq(v.ncolv, 1);
  as_delta_clear(&ds[0]);
  as_delta_clear(&ux);
  as_delta_clear(&uy);
  as_delta_clear(&uxy);
  as_delta_clear(&row);
}
END_TEST

START_TEST(deletes_and_tombstones) {
  as_delta ds[] = {change(AS_OP_INSERT, 10, "a", "xyz"), change(AS_OP_DELETE, 12, "b", "")};
  as_version v = state_of(ds, 2);
  ck_assert(v.deleted);
  /* an older update cannot resurrect the row */
  as_delta old = change(AS_OP_UPDATE, 11, "c", "x");
  outcome o = decide(&v, true, &old, "c", true);
  ck_assert_int_eq(o.verdict, AS_VERDICT_LOST);
  /* a newer update brings it back (the target, lacking the row, gets the whole row) */
  as_delta upd = change(AS_OP_UPDATE, 13, "c", "x");
  o = decide(&v, true, &upd, "c", true);
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
  ck_assert(o.new_winner);
  ck_assert(!v.deleted);
  /* a delete older than a column's own version loses */
  as_delta u2 = change(AS_OP_UPDATE, 30, "a", "y");
  decide(&v, true, &u2, "a", false);
  as_delta del = change(AS_OP_DELETE, 25, "b", "");
  o = decide(&v, true, &del, "b", true);
  ck_assert_int_eq(o.verdict, AS_VERDICT_LOST);
  as_delta del2 = change(AS_OP_DELETE, 31, "b", "");
  o = decide(&v, true, &del2, "b", true);
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
  ck_assert(v.deleted);
  ck_assert_int_eq(v.ncolv, 0);
  for (size_t i = 0; i < 2; i++) as_delta_clear(&ds[i]);
  as_delta_clear(&old);
  as_delta_clear(&upd);
  as_delta_clear(&u2);
  as_delta_clear(&del);
  as_delta_clear(&del2);
}
END_TEST

/* A node's earlier change delivered again (versions written ahead, then a retry): it applies,
 * so its columns are not lost, and the versions stay. */
START_TEST(own_earlier_change_applies_again) {
  as_delta ds[] = {change(AS_OP_INSERT, 10, "a", "xyz"), change(AS_OP_UPDATE, 12, "a", "y")};
  as_version v = state_of(ds, 2);
  as_delta again = change(AS_OP_UPDATE, 11, "a", "x");
  outcome o = decide(&v, true, &again, "a", true);
  ck_assert_int_eq(o.verdict, AS_VERDICT_APPLY);
  ck_assert(o.apply[1]);
  ck_assert_int_eq(v.hlc, 10);
  ck_assert_int_eq(as_version_col(&v, 2)->hlc, 12);
  /* from another node it would have lost */
  as_delta other = change(AS_OP_INSERT, 9, "b", "xyz");
  o = decide(&v, true, &other, "b", true);
  ck_assert_int_eq(o.verdict, AS_VERDICT_LOST);
  for (size_t i = 0; i < 2; i++) as_delta_clear(&ds[i]);
  as_delta_clear(&again);
  as_delta_clear(&other);
}
END_TEST

int main(void) {
  Suite *s = suite_create("resolve");
  TCase *tc = tcase_create("lww");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, new_key_applies);
  tcase_add_test(tc, whole_rows_newest_wins);
  tcase_add_test(tc, updates_compete_per_column);
  tcase_add_test(tc, deletes_and_tombstones);
  tcase_add_test(tc, own_earlier_change_applies_again);
  suite_add_tcase(s, tc);
  return as_test_run(s);
}
