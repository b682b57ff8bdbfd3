/* as_resolve_lww.c — last-write-wins, per column.
 *
 * Versions are totally ordered by (hlc, origin name). A change that writes the whole row
 * (insert, whole-row update, delete) competes with the row's version; an update of some
 * columns competes, column by column, with each column's version (its own, or the row's).
 * So two concurrent updates of different columns both survive, and of the same column the
 * later one wins. Deletes are row versions too (tombstones), so an older change cannot
 * resurrect a deleted row, while a newer update of a deleted row brings it back whole (the
 * target, lacking the row, reports it missing and the engine writes the whole winning row).
 *
 * A change equal to the current version applies (a re-delivery after a crash, or a relay),
 * which keeps every path idempotent. An older change made on the same node as the version it
 * loses to applies too: it is that node's own earlier change delivered again (a retried batch
 * or a restart, after the versions were written ahead), and that node's later changes follow
 * it in order; skipping it would lose its columns. */
#include "as_resolve.h"

#include <stdlib.h>
#include <string.h>

static int cmp_ver(const as_change *c, int64_t hlc, const char *origin, int64_t hlc2,
                   const char *origin2) {
  return as_version_compare(hlc, origin, hlc2, origin2);
}

/* The version of column i: (hlc, origin name). */
static void col_version(const as_change *c, const as_version *v, uint16_t i, int64_t *hlc,
                        const char **origin) {
  const as_colver *cv = as_version_col(v, i);
  if (!cv) {
    *hlc = v->hlc;
    *origin = v->origin;
    return;
  }
  *hlc = cv->hlc;
  *origin = c->node_name(c->ctx, cv->origin);
  if (!*origin) *origin = "";
}

/* The greatest version anywhere in the row. */
static void max_version(const as_change *c, const as_version *v, int64_t *hlc, const char **origin) {
  *hlc = v->hlc;
  *origin = v->origin;
  for (uint8_t i = 0; i < v->ncolv; i++) {
    const char *o = c->node_name(c->ctx, v->colv[i].origin);
    if (cmp_ver(c, v->colv[i].hlc, o ? o : "", *hlc, *origin) > 0) {
      *hlc = v->colv[i].hlc;
      *origin = o ? o : "";
    }
  }
}

static void set_row(const as_change *c, as_version *v, bool deleted) {
  v->hlc = c->d->hlc;
  snprintf(v->origin, sizeof v->origin, "%s", c->d->origin);
  v->deleted = deleted;
  v->hash = 0;
  v->row_mask = 0; /* the nodes holding the new version: marked as it is written */
  as_version_drop_cols_upto(v, c->d->hlc);
}

static void decide_delete(const as_change *c, as_version *v, as_decision *out) {
  int64_t mh;
  const char *mo;
  max_version(c, v, &mh, &mo);
  int cmp = cmp_ver(c, c->d->hlc, c->d->origin, mh, mo);
  if (cmp > 0) {
    set_row(c, v, true);
    v->ncolv = 0;
    out->new_winner = true;
  } else if (cmp < 0 && !(c->local && strcmp(mo, c->source) == 0)) {
    as_decision_lose_all(c, out);
    return;
  }
  out->verdict = AS_VERDICT_APPLY;
  as_decision_mark_all(c, out->apply);
}

/* Columns of a change carrying (some or all) columns, each against its own version. */
static bool decide_columns(const as_change *c, as_version *v, as_decision *out, bool set_cols) {
  const as_schema *s = c->d->schema;
  bool any = false;
  for (size_t i = 0; i < s->ncols; i++) {
    if (!c->d->row.set[i]) continue;
    if (s->cols[i].is_key) {
      out->apply[i] = 1;
      continue;
    }
    int64_t h;
    const char *o;
    col_version(c, v, (uint16_t)i, &h, &o);
    int cmp = cmp_ver(c, c->d->hlc, c->d->origin, h, o);
    if (cmp >= 0 || (c->local && strcmp(o, c->source) == 0)) {
      out->apply[i] = 1;
      any = true;
      if (cmp > 0 && set_cols) as_version_set_col(v, (uint16_t)i, c->origin_id, c->d->hlc);
    } else if (c->local) {
      out->lost[i] = 1;
      out->any_lost = true;
    }
  }
  return any;
}

static void decide_row(const as_change *c, as_version *v, as_decision *out) {
  int cmp = cmp_ver(c, c->d->hlc, c->d->origin, v->hlc, v->origin);
  bool replay = c->local && strcmp(v->origin, c->source) == 0;
  if (cmp < 0 && !replay) {
    as_decision_lose_all(c, out);
    return;
  }
  if (v->deleted && cmp <= 0 && !replay) {
    as_decision_lose_all(c, out);
    return;
  }
  if (cmp > 0) {
    set_row(c, v, false); /* drops the column versions this change supersedes */
    out->new_winner = true;
  }
  /* columns updated after this change keep their newer values */
  decide_columns(c, v, out, false);
  out->verdict = AS_VERDICT_APPLY;
}

static void decide_update(const as_change *c, as_version *v, as_decision *out) {
  int cmp = cmp_ver(c, c->d->hlc, c->d->origin, v->hlc, v->origin);
  if (v->deleted) {
    bool replay = c->local && strcmp(v->origin, c->source) == 0;
    if (cmp < 0 && !replay) {
      as_decision_lose_all(c, out);
      return;
    }
    if (cmp > 0) { /* a newer update of a deleted row brings it back, whole */
      set_row(c, v, false);
      v->ncolv = 0;
      out->new_winner = true;
    }
    out->verdict = AS_VERDICT_APPLY;
    as_decision_mark_all(c, out->apply);
    return;
  }
  if (!decide_columns(c, v, out, true)) {
    out->verdict = c->local ? AS_VERDICT_LOST : AS_VERDICT_SKIP;
    return;
  }
  out->verdict = AS_VERDICT_APPLY;
}

/* Whether the change carries every column of the row. */
static bool whole_row(const as_delta *d) {
  for (size_t i = 0; i < d->row.n; i++)
    if (!d->row.set[i]) return false;
  return true;
}

static int lww_decide(const as_resolver *r, const as_change *c, as_version *v, bool found,
                      as_decision *out, as_error *err) {
  (void)r;
  (void)err;
  out->new_winner = false;
  out->any_lost = false;
  if (!found) {
    memset(v, 0, sizeof *v);
    set_row(c, v, c->d->op == AS_OP_DELETE);
    out->verdict = AS_VERDICT_APPLY;
    out->new_winner = true;
    as_decision_mark_all(c, out->apply);
    return AS_OK;
  }
  if (c->d->op == AS_OP_DELETE) decide_delete(c, v, out);
  else if (c->d->op == AS_OP_INSERT || whole_row(c->d)) decide_row(c, v, out);
  else decide_update(c, v, out);
  return AS_OK;
}

static void lww_destroy(as_resolver *r) { free(r); }

as_resolver *as_resolver_lww_new(void) {
  as_resolver *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->name = "lww";
  r->decide = lww_decide;
  r->destroy = lww_destroy;
  return r;
}
