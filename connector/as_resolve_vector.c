/* as_resolve_vector.c — version vectors: changes apply in causal order; concurrent changes of
 * different columns merge; of the same column they are a conflict (recorded by the engine),
 * and the fallback chooses the value everyone gets meanwhile.
 *
 * What the connector knows about causality (docs/ARCHITECTURE.md, "Version vectors"): every
 * version of a column (and the row's version) carries the nodes known to hold it (a bit per
 * node: the node that made it, and every node the connector decided to write it to). A change
 * captured on node S was made on top of a column's current version when
 *   - S made that version itself (S's changes of a key are ordered on S), or
 *   - S holds it (its bit is set) and the connector's last write to S did not race with the
 *     change (as_change.raced: the write committed after the change, or its commit is unknown).
 * Otherwise the change is concurrent with it. Per key, the vector counts each node's changes
 * and remembers the last one decided, so a change decided on one pair (S -> T1) is recognised
 * when it comes again on another (S -> T2) and is never decided twice.
 *
 * Decisions for a new local change, column by column:
 *   causal                -> it wins the column;
 *   concurrent            -> a disputed column: fallback lww (greater (hlc, origin) wins),
 *                            keep-local (the version in place stays), keep-remote (the incoming
 *                            change wins); the loser's node is repaired with the winner.
 * A delete concurrent with an update of any column always loses (the update wins and the row
 * stays everywhere: the safe choice for data); the conflict is recorded. An update or insert
 * of a deleted row brings it back whole (concurrent with the delete: a conflict too).
 * A change the connector already decided, a relayed change and a snapshot copy carry a known
 * version: each column applies where that version is still the column's (equal), else not.
 * An older change of the node that made the current version applies (its re-delivery after a
 * crash; that node's later changes follow it in order), as under last-write-wins. */
#include "as_resolve.h"

#include <stdlib.h>
#include <string.h>

typedef struct vresolver {
  as_resolver base;
  as_strategy fallback;
} vresolver;

static uint64_t bit(uint16_t node) { return 1ull << (node % 64); }

static const char *oname(const as_change *c, uint16_t id) {
  const char *o = c->node_name(c->ctx, id);
  return o ? o : "";
}

/* A version as the decision sees it: who made it, when, and who holds it. */
typedef struct cver {
  const char *origin;
  int64_t hlc;
  uint64_t *mask;
} cver;

static cver col_ver(const as_change *c, as_version *v, uint16_t i) {
  as_colver *cv = (as_colver *)as_version_col(v, i);
  if (cv) return (cver){oname(c, cv->origin), cv->hlc, &cv->mask};
  return (cver){v->origin, v->hlc, &v->row_mask};
}

static cver row_ver(as_version *v) { return (cver){v->origin, v->hlc, &v->row_mask}; }

static bool same(const as_change *c, const cver *x) {
  return x->hlc == c->d->hlc && strcmp(x->origin, c->d->origin) == 0;
}

static bool made_by_source(const as_change *c, const cver *x) {
  return strcmp(x->origin, c->source) == 0;
}

/* Whether the connector's last write to the source was version x (the write c->raced is
 * about); a write of another version does not change what the source held of x's columns. */
static bool last_write_was(const as_change *c, const as_version *v, const cver *x) {
  const as_held *h = as_version_held(v, c->source_id);
  return h && !h->made && h->hlc == x->hlc && strcmp(oname(c, h->origin), x->origin) == 0;
}

static bool causal_in(const as_change *c, const as_version *v, const cver *x) {
  if (made_by_source(c, x)) return true;
  if (!(*x->mask & bit(c->source_id))) return false;
  /* it holds x; was the change made before x arrived there? only if x was the last write,
   * committed after the change (or not seen to commit) */
  return !(c->raced && last_write_was(c, v, x));
}

static int cmp_change(const as_change *c, const cver *x) {
  return as_version_compare(c->d->hlc, c->d->origin, x->hlc, x->origin);
}

/* A concurrent column: whether the incoming change takes it. */
static bool incoming_wins(const vresolver *r, const as_change *c, const cver *x) {
  switch (r->fallback) {
    case AS_STRATEGY_KEEP_LOCAL:
      return false;
    case AS_STRATEGY_KEEP_REMOTE:
      return true;
    default:
      return cmp_change(c, x) > 0;
  }
}

/* Keys written before vectors were kept (or by last-write-wins): the holders from the held
 * records, so the first change after a switch to `vector` is not taken for concurrent. */
static void bootstrap(const as_change *c, as_version *v) {
  if (v->row_mask || v->nvv) return;
  for (uint8_t h = 0; h < v->nheld; h++) {
    const as_held *x = &v->held[h];
    if (!x->made && !x->written_us) continue;
    const char *o = oname(c, x->origin);
    if (x->hlc == v->hlc && strcmp(o, v->origin) == 0) v->row_mask |= bit(x->node);
    for (uint8_t i = 0; i < v->ncolv; i++)
      if (v->colv[i].hlc == x->hlc && v->colv[i].origin == x->origin) v->colv[i].mask |= bit(x->node);
  }
}

static void mark_disputed_all(const as_change *c, as_decision *out) {
  const as_schema *s = c->d->schema;
  for (size_t i = 0; i < s->ncols; i++)
    if (!s->cols[i].is_key) out->disputed[i] = 1;
  out->conflict = true;
}

/* The row becomes the change's version (deleted or not), every column with it. */
static void set_row(const as_change *c, as_version *v, bool deleted, uint32_t n) {
  v->hlc = c->d->hlc;
  snprintf(v->origin, sizeof v->origin, "%s", c->d->origin);
  v->deleted = deleted;
  v->hash = 0;
  v->ncolv = 0;
  v->row_n = n;
  v->row_mask = bit(c->source_id) | bit(c->target_id) | bit(c->origin_id);
}

/* A change whose version is known (relayed, a snapshot copy, or a local change decided
 * already): what is still that version applies. */
static void decide_known(const as_change *c, as_version *v, as_decision *out) {
  const as_schema *s = c->d->schema;
  cver rv = row_ver(v);
  if (c->d->op == AS_OP_DELETE || v->deleted) {
    if (c->d->op == AS_OP_DELETE && v->deleted && same(c, &rv)) {
      *rv.mask |= bit(c->target_id);
      out->verdict = AS_VERDICT_APPLY;
      as_decision_mark_all(c, out->apply);
    } else {
      out->verdict = AS_VERDICT_SKIP;
    }
    return;
  }
  bool any = false;
  for (size_t i = 0; i < s->ncols; i++) {
    if (!c->d->row.set[i]) continue;
    if (s->cols[i].is_key) {
      out->apply[i] = 1;
      continue;
    }
    cver x = col_ver(c, v, (uint16_t)i);
    if (!same(c, &x)) continue;
    *x.mask |= bit(c->target_id);
    out->apply[i] = 1;
    any = true;
  }
  out->verdict = any ? AS_VERDICT_APPLY : AS_VERDICT_SKIP;
}

/* A new local delete. */
static void decide_delete(const as_change *c, as_version *v, as_decision *out, uint32_t n) {
  if (!v->deleted) {
    bool conc = !causal_in(c, v, &(cver){v->origin, v->hlc, &v->row_mask});
    for (uint8_t i = 0; i < v->ncolv && !conc; i++) {
      cver x = {oname(c, v->colv[i].origin), v->colv[i].hlc, &v->colv[i].mask};
      conc = !causal_in(c, v, &x);
    }
    if (conc) { /* an update the deleting node had not seen: the update wins */
      mark_disputed_all(c, out);
      as_decision_lose_all(c, out);
      return;
    }
  }
  set_row(c, v, true, n);
  out->new_winner = true;
  out->verdict = AS_VERDICT_APPLY;
  as_decision_mark_all(c, out->apply);
}

/* A new local insert or update of a deleted row: it brings the row back, whole. */
static void decide_revive(const vresolver *r, const as_change *c, as_version *v,
                          as_decision *out, uint32_t n) {
  cver rv = row_ver(v);
  (void)r; /* whatever the fallback: a concurrent delete never removes an update */
  if (!causal_in(c, v, &rv)) mark_disputed_all(c, out);
  set_row(c, v, false, n);
  out->new_winner = true;
  out->verdict = AS_VERDICT_APPLY;
  as_decision_mark_all(c, out->apply);
}

/* A new local insert or update of a live row, column by column. */
static void decide_columns(const vresolver *r, const as_change *c, as_version *v,
                           as_decision *out, uint32_t n) {
  const as_schema *s = c->d->schema;
  bool whole = true, all_won = true, any = false;
  for (size_t i = 0; i < s->ncols; i++) {
    if (!c->d->row.set[i]) {
      whole = false;
      continue;
    }
    if (s->cols[i].is_key) {
      out->apply[i] = 1;
      continue;
    }
    cver x = col_ver(c, v, (uint16_t)i);
    if (same(c, &x) || (made_by_source(c, &x) && cmp_change(c, &x) < 0)) {
      out->apply[i] = 1; /* the same version again, or the source's own older change */
      *x.mask |= bit(c->target_id);
      any = true;
      all_won = false;
      continue;
    }
    if (!causal_in(c, v, &x)) {
      out->disputed[i] = 1;
      out->conflict = true;
      if (!incoming_wins(r, c, &x)) {
        out->lost[i] = 1;
        out->any_lost = true;
        all_won = false;
        continue;
      }
    }
    out->apply[i] = 2; /* won: takes the change's version below */
    any = true;
  }
  bool row = whole && all_won;
  if (row) {
    set_row(c, v, false, n);
    out->new_winner = true;
  }
  for (size_t i = 0; i < s->ncols; i++) {
    if (out->apply[i] != 2) continue;
    out->apply[i] = 1;
    if (row) continue;
    as_version_set_col(v, (uint16_t)i, c->origin_id, c->d->hlc);
    as_colver *cv = (as_colver *)as_version_col(v, (uint16_t)i);
    if (cv) {
      cv->n = n;
      cv->mask = bit(c->source_id) | bit(c->target_id);
    }
  }
  out->verdict = any ? AS_VERDICT_APPLY : (c->local ? AS_VERDICT_LOST : AS_VERDICT_SKIP);
}

/* The columns a change carries (bit = index % 64; a delete: none). */
static uint64_t colset(const as_delta *d) {
  uint64_t m = 0;
  if (d->op == AS_OP_DELETE) return 1ull << 63 | 1;
  for (size_t i = 0; i < d->row.n; i++)
    if (d->row.set[i]) m |= 1ull << (i % 64);
  return m;
}

/* Whether a column the change carries has the change's version (it was decided already). */
static bool known(const as_change *c, as_version *v) {
  const as_schema *s = c->d->schema;
  if (c->d->op == AS_OP_DELETE || v->deleted) {
    cver rv = row_ver(v);
    return same(c, &rv);
  }
  for (size_t i = 0; i < s->ncols; i++) {
    if (!c->d->row.set[i] || s->cols[i].is_key) continue;
    cver x = col_ver(c, v, (uint16_t)i);
    if (same(c, &x)) return true;
  }
  return false;
}

static int vector_decide(const as_resolver *r0, const as_change *c, as_version *v, bool found,
                         as_decision *out, as_error *err) {
  (void)err;
  const vresolver *r = (const vresolver *)r0;
  out->new_winner = false;
  out->any_lost = false;
  out->conflict = false;
  out->fresh = false;
  if (!found) {
    memset(v, 0, sizeof *v);
    uint32_t n = c->local ? as_version_vv_next(v, c->source_id, c->d->hlc, colset(c->d)) : 0;
    set_row(c, v, c->d->op == AS_OP_DELETE, n);
    out->verdict = AS_VERDICT_APPLY;
    out->new_winner = true;
    as_decision_mark_all(c, out->apply);
    return AS_OK;
  }
  bootstrap(c, v);
  const as_vv_count *seen = c->local ? as_version_vv_get(v, c->source_id) : NULL;
  uint64_t cols = colset(c->d);
  if (!c->local || (seen && (c->d->hlc < seen->hlc ||
                             (c->d->hlc == seen->hlc && (cols == seen->cols || known(c, v)))))) {
    decide_known(c, v, out);
    return AS_OK;
  }
  uint32_t n = as_version_vv_next(v, c->source_id, c->d->hlc, cols);
  out->fresh = true;
  if (c->d->op == AS_OP_DELETE) decide_delete(c, v, out, n);
  else if (v->deleted) decide_revive(r, c, v, out, n);
  else decide_columns(r, c, v, out, n);
  return AS_OK;
}

static void vector_destroy(as_resolver *r) { free(r); }

as_resolver *as_resolver_vector_new(as_strategy fallback) {
  vresolver *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->base.name = "vector";
  r->base.decide = vector_decide;
  r->base.destroy = vector_destroy;
  r->fallback = fallback;
  return &r->base;
}
