/* as_resolve_script.c — Lua merge functions (`conflict: { strategy: script, script: F }`, or
 * `strategy: vector` with `fallback: script`).
 *
 * Which changes are concurrent is decided exactly as for version vectors
 * (as_resolve_vector.c): that resolver runs first and its decision (with the mapping's
 * fallback) stands unless the script settles the conflict. For a conflict of a new local
 * change, the script's resolve(mine, theirs, ctx) gets the key's current row (mine: the
 * target's row, with every column whose current version the target does not hold yet read
 * from a node that does — the target may lag behind the version the change conflicts with),
 * the incoming change (theirs; only the columns it changed, the rest of the row from mine) and
 * in ctx.base the row the change was made on top of where its source gave it (as_row.h
 * `before`), and returns the merged row. The target gets the merged values of every column that differs from
 * mine (and of the disputed columns); those columns take a version of the target's own, newer
 * than both, so every other node — the change's source included — is repaired with them.
 * A script that errors, exceeds its limits or returns nil leaves the fallback's decision; the
 * conflict stays recorded (open). A returned value that does not fit its column is logged
 * the same way (the engine records the conflict; nothing half-merged is written). */
#include "as_resolve.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "as_log.h"
#include "as_lua.h"

typedef struct sresolver {
  as_resolver base;
  as_resolver *vec;
  as_lua *L;
  const as_schema *s;
} sresolver;

static uint64_t bit(uint16_t node) { return 1ull << (node % 64); }

/* The incoming change over mine: theirs as the script sees it (a whole row). */
static int theirs_row(const as_change *c, const as_row *mine, as_row *out) {
  if (as_row_copy(out, mine) != AS_OK) return AS_ERR;
  for (size_t i = 0; i < c->d->row.n && i < out->n; i++) {
    if (!c->d->row.set[i]) continue;
    as_value v;
    if (as_value_copy(&v, &c->d->row.v[i]) != AS_OK) return AS_ERR;
    as_row_put(out, i, &v);
  }
  return AS_OK;
}

/* Column i's version after the merge: the target's own, newer than every version it saw. */
static void merged_version(const as_change *c, as_version *v, uint16_t i, int64_t hlc) {
  as_version_set_col(v, i, c->target_id, hlc);
  as_colver *cv = (as_colver *)as_version_col(v, i);
  if (cv) cv->mask = bit(c->target_id);
}

static int64_t newest(const as_change *c, const as_version *v) {
  int64_t h = v->hlc > c->d->hlc ? v->hlc : c->d->hlc;
  for (uint8_t i = 0; i < v->ncolv; i++)
    if (v->colv[i].hlc > h) h = v->colv[i].hlc;
  return h + 1;
}

/* Takes the script's row: the columns it chose — those that differ from mine, the disputed
 * ones, and with `also` (call: always) every column the change carries — get a version of the
 * target's own, newer than both, and are written to the target (even a value equal to mine's:
 * mine may have been read from another node while the target's copy is still on its way).
 * A column whose value is mine's stays held by the nodes that held mine's version; the
 * change's source and every other node are repaired with the result. false when the script
 * chose nothing. */
static bool take(const as_change *c, const as_row *mine, as_row *merged, as_version *v,
                 const uint8_t *also, as_decision *out) {
  const as_schema *s = c->d->schema;
  int64_t hlc = newest(c, v);
  bool any = false;
  for (size_t i = 0; i < s->ncols; i++) {
    out->apply[i] = 0;
    if (s->cols[i].is_key) {
      out->apply[i] = 1;
      continue;
    }
    bool differs = merged->set[i] && (!mine->set[i] || !as_value_equal(&merged->v[i], &mine->v[i]));
    if (!differs && !out->disputed[i] && !(also && also[i])) continue;
    const as_colver *old = as_version_col(v, (uint16_t)i);
    uint64_t held = (old ? old->mask : v->row_mask) & ~bit(c->source_id);
    merged_version(c, v, (uint16_t)i, hlc);
    as_colver *cv = (as_colver *)as_version_col(v, (uint16_t)i);
    if (cv && !differs) cv->mask |= held;
    out->apply[i] = merged->set[i] ? 1 : 0;
    /* the source (and every other node) gets the merged value by repair */
    if (c->local) {
      out->lost[i] = 1;
      out->any_lost = true;
    }
    any = any || out->apply[i];
  }
  return any;
}

static void lua_ctx_of(const as_change *c, const as_version *before, as_lua_ctx *x,
                       uint8_t *theirs_changed) {
  memset(x, 0, sizeof *x);
  x->mine_node = c->target;
  x->theirs_node = c->d->origin;
  x->mine_ts_us = AS_HLC_US(before->hlc);
  x->theirs_ts_us = c->d->ts_us;
  x->theirs_vv = c->d->vv;
  x->theirs_nvv = c->d->nvv;
  for (size_t i = 0; i < c->d->row.n; i++) theirs_changed[i] = c->d->row.set[i];
  x->theirs_changed = theirs_changed;
  /* the row the incoming change was made on top of, where its source gave it (as_row.h) */
  x->base = c->d->before.n ? &c->d->before : NULL;
  x->conflict = true;
}

/* Whether the script's row is the incoming change as it is (every column equal to theirs). */
static bool same_as_theirs(const as_schema *s, const as_row *merged, const as_row *theirs) {
  for (size_t i = 0; i < s->ncols; i++) {
    if (s->cols[i].is_key || !merged->set[i]) continue;
    if (!theirs->set[i] || !as_value_equal(&merged->v[i], &theirs->v[i])) return false;
  }
  return true;
}

/* `call: always`, a script that made no decision for an ordinary change (nil, an error, a
 * limit): recorded as a conflict of the columns the change carries; the vector decision
 * stands. */
static void always_undecided(const as_change *c, as_decision *out) {
  const as_schema *s = c->d->schema;
  for (size_t i = 0; i < s->ncols && i < c->d->row.n; i++)
    if (!s->cols[i].is_key && c->d->row.set[i]) out->disputed[i] = 1;
  out->conflict = true;
}

static int script_decide(const as_resolver *r0, const as_change *c, as_version *v, bool found,
                         as_decision *out, as_error *err) {
  const sresolver *r = (const sresolver *)r0;
  as_version before = *v;
  int rc = as_resolver_decide(r->vec, c, v, found, out, err);
  /* call: always — also every new local change that applies without a conflict */
  bool always = rc == AS_OK && !out->conflict && r->s->conflict.call == AS_CALL_ALWAYS &&
                out->fresh && out->verdict == AS_VERDICT_APPLY;
  if (rc != AS_OK || !(out->conflict || always) || !c->local || !c->read_target ||
      !out->merged_row || c->d->op == AS_OP_DELETE)
    return rc;
  const as_schema *s = c->d->schema;
  as_row mine = {0}, theirs = {0};
  uint8_t *changed = calloc(s->ncols ? s->ncols : 1, 1);
  as_error e2 = {0};
  int got = changed ? c->read_target(c->rctx, &mine, &e2) : AS_ERR;
  if (got != AS_OK) {
    out->why = got == AS_ENOTFOUND ? "the target has no row: the fallback decided"
                                   : "the target's row could not be read: the fallback decided";
    goto done;
  }
  if (theirs_row(c, &mine, &theirs) != AS_OK) {
    out->why = "out of memory: the fallback decided";
    goto done;
  }
  as_lua_ctx x;
  lua_ctx_of(c, &before, &x, changed);
  x.conflict = !always;
  int lr = as_lua_resolve(r->L, &mine, &theirs, &x, out->merged_row, &e2);
  if (lr != AS_OK) {
    AS_LOG(AS_LOG_WARN, "script", "mapping %s: the script did not settle a %s (%s); the "
           "fallback decided, the conflict stays open", s->name, always ? "change" : "conflict",
           e2.message);
    out->why = lr == AS_CONFLICT ? "the script returned nil: the fallback decided"
                                 : "the script failed: the fallback decided";
    if (lr == AS_EDATA) snprintf(out->dead, sizeof out->dead, "%s", e2.message);
    if (always) always_undecided(c, out);
    goto done;
  }
  if (always && same_as_theirs(s, out->merged_row, &theirs)) {
    as_row_clear(out->merged_row); /* the change as it is: the vector decision stands */
    goto done;
  }
  /* the script settles it: start again from the versions before the fallback's choice */
  as_version settled = before;
  uint8_t *keep_disputed = out->disputed;
  memset(out->apply, 0, s->ncols);
  memset(out->lost, 0, s->ncols);
  out->any_lost = false;
  /* the vector resolver's bookkeeping (the change counted, holders) is kept */
  settled.nvv = v->nvv;
  memcpy(settled.vv, v->vv, sizeof v->vv);
  /* call: always: every column the change carries is the script's choice now (a column it
   * kept as mine is repaired on the change's source) */
  const uint8_t *chosen = always ? changed : NULL;
  if (take(c, &mine, out->merged_row, &settled, chosen, out)) {
    *v = settled;
    out->merged = true;
    out->verdict = AS_VERDICT_APPLY;
    out->why = "merged by the script";
  } else { /* the script chose nothing: the change loses everywhere */
    *v = settled;
    out->verdict = AS_VERDICT_LOST;
    out->why = "the script kept the target's row";
  }
  out->disputed = keep_disputed;
done:
  as_row_clear(&mine);
  as_row_clear(&theirs);
  free(changed);
  return AS_OK;
}

static void script_destroy(as_resolver *r0) {
  sresolver *r = (sresolver *)r0;
  as_resolver_free(r->vec);
  as_lua_close(r->L);
  free(r);
}

int as_resolver_script_new(const as_schema *s, as_resolver **out, as_error *err) {
  *out = NULL;
  sresolver *r = calloc(1, sizeof *r);
  if (!r) return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  as_strategy fb = s->conflict.strategy == AS_STRATEGY_SCRIPT ? s->conflict.fallback : AS_STRATEGY_LWW;
  if (fb == AS_STRATEGY_SCRIPT) fb = AS_STRATEGY_LWW;
  r->vec = as_resolver_vector_new(fb);
  r->s = s;
  if (!r->vec) {
    free(r);
    return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  }
  int rc = as_lua_open(s, NULL, NULL, &r->L, err);
  if (rc != AS_OK) {
    as_error_prefix(err, "mapping %s: conflict script", s->name);
    as_resolver_free(r->vec);
    free(r);
    return rc;
  }
  r->base.name = "script";
  r->base.decide = script_decide;
  r->base.destroy = script_destroy;
  *out = &r->base;
  return AS_OK;
}
