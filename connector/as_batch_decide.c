/* as_batch_decide.c — the decisions of a batch: each routed delta's key, its label (the
 * version it carries, see as_resolve.h), and the resolver's verdict against the key's
 * versions in the state store (and the decisions made earlier in the same batch). What the
 * target gets goes to w->kept (the delta, or a copy holding the columns that won); local
 * changes that lost, and local changes the connector overwrote on their own node, become
 * queued repairs. Nothing is written here. */
#include "as_batch_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "as_key.h"
#include "as_log.h"
#include "as_metrics.h"
#include "as_time.h"

#define RACE_WINDOW_US 100000 /* clock skew allowance between database servers and us */

int eng_grow(void **arr, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return AS_OK;
  size_t ncap = *cap ? *cap * 2 : 64;
  while (ncap < need) ncap *= 2;
  void *p = realloc(*arr, ncap * size);
  if (!p) return AS_ERR;
  memset((char *)p + *cap * size, 0, (ncap - *cap) * size);
  *arr = p;
  *cap = ncap;
  return AS_OK;
}

int eng_oom(as_error *err) { return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory"); }

static size_t bucket(const as_schema *s, const char *key) {
  return (size_t)(XXH3_64bits(key, strlen(key)) ^ (uintptr_t)s) % DECIDED_BUCKETS;
}

decided *eng_decided_get(eng_work *w, const as_schema *s, const char *key) {
  for (decided *x = w->buckets[bucket(s, key)]; x; x = x->next) {
    if (x->schema == s && strcmp(x->key, key) == 0) return x;
  }
  return NULL;
}

static decided *decided_add(eng_work *w, const as_schema *s, const char *key) {
  if (eng_grow((void **)&w->all, &w->capall, w->nall + 1, sizeof *w->all) != AS_OK) return NULL;
  decided *x = calloc(1, sizeof *x);
  if (!x || !(x->key = strdup(key))) {
    free(x);
    return NULL;
  }
  size_t h = bucket(s, key);
  x->schema = s;
  x->next = w->buckets[h];
  w->buckets[h] = x;
  w->all[w->nall++] = x;
  return x;
}

queued *eng_queue_repair(eng_work *w, const as_schema *s, const char *key, eng_node *to,
                         eng_node *from, size_t at) {
  if (eng_grow((void **)&w->repairs, &w->caprepairs, w->nrepairs + 1, sizeof *w->repairs) != AS_OK)
    return NULL;
  queued *q = &w->repairs[w->nrepairs];
  memset(q, 0, sizeof *q);
  if (!(q->key = strdup(key))) return NULL;
  q->schema = s;
  q->to = to;
  q->from = from;
  q->at = at;
  w->nrepairs++;
  return q;
}

void eng_count_skip(eng_pair *p, const as_schema *s) {
  eng_count(p, s, ENG_C_SKIPPED, 1);
  as_metrics_add(p->src->cfg->name, p->dst->cfg->name, s ? s->name : "", AS_M_SKIPPED, 1);
}

/* ---------------------------------------------------------------- keys and labels */

int eng_collect_keys(eng_pair *p, as_batch *b, bool snapshot, eng_work *w, as_error *err) {
  if (eng_grow((void **)&w->keys, &w->capkeys, b->n, sizeof *w->keys) != AS_OK ||
      eng_grow((void **)&w->stripes, &w->capstripes, b->n, sizeof *w->stripes) != AS_OK)
    return eng_oom(err);
  for (size_t i = 0; i < b->n; i++) {
    as_delta *d = &b->d[i];
    if (!d->origin && as_delta_set_origin(d, p->src->cfg->name) != AS_OK) return eng_oom(err);
    if (!eng_routed(p, d, snapshot) || d->op == AS_OP_TRUNCATE) continue;
    as_error kerr;
    w->keys[i] = as_key_json_dup(d->schema, &d->row, &kerr);
    if (!w->keys[i]) {
      if (kerr.code == AS_ERR) return eng_oom(err);
      /* a key column absent or NULL: a dead letter once the batch committed */
      if (eng_grow((void **)&w->keyless.idx, &w->keyless.cap, w->keyless.n + 1,
                   sizeof *w->keyless.idx) != AS_OK)
        return eng_oom(err);
      w->keyless.why = realloc(w->keyless.why, w->keyless.cap * sizeof *w->keyless.why);
      if (!w->keyless.why || !(w->keyless.why[w->keyless.n] = strdup(kerr.message)))
        return eng_oom(err);
      w->keyless.idx[w->keyless.n++] = i;
      continue;
    }
    w->stripes[w->nstripes++] = eng_stripe_of(d->schema, w->keys[i]);
  }
  return AS_OK;
}

/* The version a local change carries: the mapping's clock column when present, else its
 * commit time. */
static int64_t local_hlc(const as_delta *d) {
  const as_schema *s = d->schema;
  if (s->conflict.clock_idx >= 0 && as_row_has(&d->row, (size_t)s->conflict.clock_idx)) {
    const as_value *v = &d->row.v[s->conflict.clock_idx];
    if (v->type == AS_T_TIMESTAMP) return AS_HLC_FROM_US(v->u.ts_us);
    if (v->type == AS_T_INT64) return v->u.i;
  }
  return d->hlc ? d->hlc : AS_HLC_FROM_US(d->ts_us);
}

/* Whether the connector's last write of the key to node may have overwritten local change d
 * (d committed there before that write did): exactly, by their places in the node's commit
 * order where the node gives both (as_delta.order, as_adapter.commit_order); else by time, the
 * write's commit stamp (the connector's clock, taken after the commit) at or after d's commit
 * time less the clock-skew allowance; and always when the write's commit is unknown (written
 * ahead, then the process died before the stamp). */
static bool overwritten(const as_version *v, uint16_t node, const as_delta *d) {
  const as_held *h = as_version_held(v, node);
  if (!h || h->wrote_pending) return h != NULL;
  if (h->wrote_order && d->order) return d->order <= h->wrote_order;
  return h->wrote_us && h->wrote_us >= d->ts_us - RACE_WINDOW_US;
}

/* Whether snapshot copy d holds the key's current version x->v: the row the version's origin
 * node holds now has d's values (one point read there). For a copy that cannot tell by time
 * whether it was read before or after the connector's write of that version to the source. */
static bool copy_is_current(eng_pair *p, const as_delta *d, const decided *x) {
  const as_schema *s = d->schema;
  eng_node *n = x->v.deleted ? NULL : eng_find_node(p->e, x->v.origin);
  if (!n || n == p->src || n == p->dst || !eng_node_has_schema(n, s)) return false;
  as_row row = {0};
  as_error err;
  bool equal = eng_read_row(n, s, &d->row, &row, &err) == AS_OK;
  for (size_t i = 0; equal && i < s->ncols; i++) {
    if (s->cols[i].is_key) continue;
    bool a = d->row.set[i] && d->row.v[i].type != AS_T_NULL, b = row.set[i] && row.v[i].type != AS_T_NULL;
    equal = a == b && (!a || as_value_equal(&d->row.v[i], &row.v[i]));
  }
  as_row_clear(&row);
  return equal;
}

/* Labels d with the version it carries (see as_resolve.h). Returns false for a snapshot copy
 * that holds no version of its own: what the connector wrote to the source, or the row that
 * write replaced, when the copy cannot show which (it is skipped). */
static bool label(eng_pair *p, as_delta *d, const decided *x, bool snapshot) {
  if (!snapshot) {
    if (!d->relayed) d->hlc = local_hlc(d);
    return true;
  }
  if (x->found && strcmp(x->v.origin, p->src->cfg->name) == 0) {
    d->hlc = x->v.hlc; /* the source's own change, or a newer one */
    as_delta_set_origin(d, x->v.origin);
    return true;
  }
  /* what the source holds, where the copy can show it: a version the source made, or one the
   * connector wrote there and saw commit before the copy was read (d->ts_us: the snapshot's
   * read time; a page read before that write holds the older row, and labelled with the
   * written version it would overwrite that version elsewhere) */
  const as_held *h = x->found ? as_version_held(&x->v, p->src->id) : NULL;
  bool shown = h && (h->made || (h->written_us > 0 && h->written_us < d->ts_us));
  /* a write stamped after the read may still have committed before it: the time cannot tell,
   * the row can (the key's current version is held by the node that made it) */
  if (h && !shown && h->hlc == x->v.hlc && d->op != AS_OP_DELETE && copy_is_current(p, d, x)) {
    AS_LOG(AS_LOG_DEBUG, p->comp, "mapping %s: a copy read around the connector's write to %s "
           "holds the current version (%s's row says so)", d->schema->name, p->src->cfg->name,
           x->v.origin);
    d->hlc = x->v.hlc;
    as_delta_set_origin(d, x->v.origin);
    return true;
  }
  const char *o = shown ? as_state_node_name(p->e->state, h->origin) : NULL;
  if (o) {
    d->hlc = h->hlc;
    as_delta_set_origin(d, o);
  } else if (h) {
    /* the connector wrote the key to the source and the copy cannot show whether it was read
     * before or after: it holds that write or the row the write replaced, never a change of
     * the source's own (those come through its stream, with their own times). Labelled as the
     * oldest version it could win a tie against a version of the same age (two first copies)
     * and take that version's place with the source's name: a repair would then read the
     * winner from the wrong node, or write the replaced row back. */
    AS_LOG(AS_LOG_DEBUG, p->comp, "mapping %s: a copy read around the connector's write to %s "
           "holds no version of its own (skipped)", d->schema->name, p->src->cfg->name);
    return false;
  } else {
    /* nothing known: the oldest version — for a key nobody synced yet, the mapping's clock
     * column, or just above the oldest for the node initial_sync prefers (so copies of one
     * unsynced key from several nodes agree whatever order the streams run in) */
    const as_schema *s = d->schema;
    int ci = s->conflict.clock_idx;
    d->hlc = 0;
    if (x->found) return true;
    if (ci >= 0 && as_row_has(&d->row, (size_t)ci)) d->hlc = local_hlc(d);
    else if (s->initial_prefer && strcmp(s->initial_prefer, p->src->cfg->name) == 0) d->hlc = 1;
  }
  return true;
}

/* ---------------------------------------------------------------- decisions */

static const char *node_name(void *ctx, uint16_t id) {
  return as_state_node_name(((engine *)ctx)->state, id);
}

/* The delta the target gets: d itself, or a copy with only the columns marked. Whole-row
 * changes reduced to some columns become updates (never a row made of some columns). */
static as_delta *owned_copy(eng_work *w, const as_delta *d, as_error *err) {
  as_delta *c = calloc(1, sizeof *c);
  if (!c || eng_grow((void **)&w->owned, &w->capowned, w->nowned + 1, sizeof *w->owned) != AS_OK ||
      as_delta_copy(c, d) != AS_OK) {
    free(c);
    eng_oom(err);
    return NULL;
  }
  w->owned[w->nowned++] = c;
  return c;
}

/* A copy of d with the columns it does not carry taken from its row image (each one, or with
 * `own` only those without a version of their own there), the image dropped. *all: every
 * column is set now. d itself when it has no image. */
static as_delta *with_image(eng_work *w, as_delta *d, const as_version *own, bool *all,
                            as_error *err) {
  *all = false;
  if (!d->image.n) return d;
  as_delta *c = owned_copy(w, d, err);
  if (!c) return NULL;
  *all = true;
  for (size_t i = 0; i < c->row.n; i++) {
    if (c->row.set[i] || c->schema->cols[i].is_key) continue;
    if (i < c->image.n && c->image.set[i] && !(own && as_version_col(own, (uint16_t)i)))
      as_row_put(&c->row, i, &c->image.v[i]);
    else
      *all = false;
  }
  as_row_clear(&c->image);
  memset(&c->image, 0, sizeof c->image);
  return c;
}

/* An update that brought a deleted row back: the whole row, from the change's row image when
 * the source gave one (else the update as it is; the target reports the row missing and gets
 * the whole winning row). The update's own columns stand: an image read after the change
 * (MongoDB's updateLookup) may hold another value there, the change never does. */
static as_delta *resurrected(eng_work *w, as_delta *d, as_error *err) {
  bool all;
  as_delta *c = with_image(w, d, NULL, &all, err);
  if (c && c != d) c->op = AS_OP_INSERT;
  return c;
}

/* An update that is the row's version (it brought the row back, decided on another pair
 * first), on its way to another target: the row's other columns from the change's row image,
 * as the first target got them — those whose version is the row's (a column with a version of
 * its own was changed since, and that change follows on its own). Without it this target
 * would get the update's columns only, and count as holding the row's version while it holds
 * whatever it had (a row an older delete has not reached yet, say) until the rest follows:
 * a repair reading the row's version from it meanwhile would take those values. With every
 * column filled it is the whole row (no rest to follow); else the rest still follows. */
static as_delta *filled_from_image(eng_work *w, as_delta *a, const decided *x, as_error *err) {
  bool all;
  as_delta *c = with_image(w, a, &x->v, &all, err);
  if (c && all) c->op = AS_OP_INSERT;
  return c;
}

static as_delta *applied_delta(eng_work *w, as_delta *d, const uint8_t *apply, as_error *err) {
  bool all = true;
  for (size_t i = 0; i < d->row.n && all; i++) all = !d->row.set[i] || apply[i];
  if (all || d->op == AS_OP_DELETE) return d;
  as_delta *c = owned_copy(w, d, err);
  if (!c) return NULL;
  for (size_t i = 0; i < c->row.n; i++) {
    if (apply[i]) continue;
    as_value_clear(&c->row.v[i]);
    c->row.set[i] = 0;
  }
  c->op = AS_OP_UPDATE;
  return c;
}

/* Whether an update still writes a column besides the key. */
static bool writes_columns(const as_delta *d) {
  for (size_t i = 0; i < d->row.n; i++)
    if (d->row.set[i] && !d->schema->cols[i].is_key) return true;
  return false;
}

/* The version the columns `lost` of change d lost to: the newest of their versions (each
 * column's own, or the row's); for a change that lost whole, the row's version (a delete: the
 * newest version anywhere in the row). *some: only some of d's columns lost. */
static const char *lost_to(eng_pair *p, const as_delta *d, const decided *x, const uint8_t *lost,
                           int64_t *hlc, bool *some) {
  const as_schema *s = d->schema;
  const as_version *v = &x->v;
  bool del = d->op == AS_OP_DELETE, all = true, any = false;
  for (size_t i = 0; i < s->ncols && i < d->row.n; i++) {
    if (s->cols[i].is_key || !d->row.set[i]) continue;
    if (lost[i]) any = true;
    else all = false;
  }
  *some = !del && any && !all;
  const char *best = v->origin;
  *hlc = v->hlc;
  bool found = false;
  for (size_t i = 0; i < s->ncols; i++) {
    if (s->cols[i].is_key) continue;
    if (*some && !(i < d->row.n && d->row.set[i] && lost[i])) continue;
    const as_colver *cv = as_version_col(v, (uint16_t)i);
    if (!*some && (!del || !cv)) continue; /* whole: the row's version (a delete: the newest) */
    int64_t h = cv ? cv->hlc : v->hlc;
    const char *o = cv ? as_state_node_name(p->e->state, cv->origin) : v->origin;
    if (!o) o = "";
    if ((*some && !found) || as_version_compare(h, o, *hlc, best) > 0) {
      *hlc = h;
      best = o;
      found = true;
    }
  }
  return best;
}

static void note_conflict(eng_pair *p, const as_delta *d, decided *x, const uint8_t *lost) {
  const as_schema *s = d->schema;
  eng_count(p, s, ENG_C_CONFLICTS, 1);
  as_metrics_add(p->src->cfg->name, p->dst->cfg->name, s->name, AS_M_CONFLICTS, 1);
  int64_t whlc;
  bool some;
  const char *who = lost_to(p, d, x, lost, &whlc, &some);
  if (AS_LOG_DEBUG <= as_log_current_level) {
    char cols[256] = "";
    size_t at = 0;
    for (size_t i = 0; some && i < s->ncols && i < d->row.n && at < sizeof cols; i++) {
      if (s->cols[i].is_key || !d->row.set[i] || !lost[i]) continue;
      int k = snprintf(cols + at, sizeof cols - at, "%s%s", at ? ", " : "", s->cols[i].name);
      if (k > 0) at += (size_t)k;
    }
    AS_LOG(AS_LOG_DEBUG, p->comp, "mapping %s key %s: change from %s (hlc %lld)%s%s%s lost to %s "
           "(hlc %lld)", s->name, x->key, d->origin, (long long)d->hlc, some ? ": column(s) " : "",
           cols, some ? " of it" : "", who, (long long)whlc);
  }
  char *row = as_conflict_row_json(s, &d->row, d->op == AS_OP_DELETE, NULL);
  char *cols = as_conflict_columns_json(s, &d->row, NULL);
  as_error cerr;
  as_conflict_rec rec = {.mapping = s->name, .key = x->key, .strategy = "lww", .columns_json = cols,
                         .chosen = who, .local = {.node = who, .ts_us = AS_HLC_US(whlc)},
                         .remote = {.node = d->origin, .row_json = row, .ts_us = d->ts_us}};
  if (as_state_conflict_record(p->e->state, &rec, NULL, &cerr) != AS_OK)
    AS_LOG(AS_LOG_WARN, p->comp, "cannot record conflict: %s", cerr.message);
  free(row);
  free(cols);
}

/* A local change that lost (some or all of its columns): its node holds losing values, so it
 * gets the key's winning row. A conflict the resolver found is recorded by the caller. */
static int repair_loser(eng_pair *p, eng_work *w, const as_delta *d, decided *x, size_t i,
                        const uint8_t *lost, bool record, as_error *err) {
  if (record) note_conflict(p, d, x, lost);
  eng_node *from = eng_find_node(p->e, x->v.origin);
  if (!eng_queue_repair(w, d->schema, x->key, p->src, from && from != p->src ? from : p->dst, i))
    return eng_oom(err);
  return AS_OK;
}

/* A winning local change the connector may have overwritten on its own node: write its
 * winning columns back there after the batch. */
static int rewrite(eng_pair *p, eng_work *w, const as_delta *applied, decided *x, size_t i,
                   as_error *err) {
  queued *q = eng_queue_repair(w, applied->schema, x->key, p->src, p->dst, i);
  if (!q || !(q->delta = as_delta_to_json_string(applied, err))) return eng_oom(err);
  return AS_OK;
}

/* Whether change d is the key's row version (the last change that wrote the whole row, or
 * brought it back). */
static bool is_row_version(const as_version *v, const as_delta *d) {
  return v->hlc == d->hlc && strcmp(v->origin, d->origin) == 0;
}

/* The versions d writes (each column's, or the row's, when it is d's own) are held by the
 * target from now on, and by d's origin: repairs read a column from any node holding its
 * version (a node's write record keeps only its last write). */
static void mark_holders(as_version *v, const as_delta *d, bool whole, uint16_t dst,
                         uint16_t origin) {
  uint64_t bits = (1ull << (dst % 64)) | (1ull << (origin % 64)), dbit = 1ull << (dst % 64);
  bool row = is_row_version(v, d);
  /* an earlier change of the node that made the current version, written again (a replay):
   * the target no longer holds the versions it overwrites (the later change follows it in
   * the same stream and marks them again); never read the winner from there meanwhile */
  bool row_replay = !row && v->hlc > d->hlc && strcmp(v->origin, d->origin) == 0;
  /* a whole-row change (whole: as captured, before columns that lost were taken out) that is
   * the row's version: the target holds it as far as it still counts, also when every column
   * has a newer version of its own */
  if (row && whole) v->row_mask |= bits;
  if (row_replay && whole) v->row_mask &= ~dbit;
  for (size_t i = 0; i < d->row.n; i++) {
    if (!d->row.set[i] || d->schema->cols[i].is_key) continue;
    as_colver *cv = (as_colver *)as_version_col(v, (uint16_t)i);
    if (cv && cv->hlc == d->hlc && cv->origin == origin) cv->mask |= bits;
    else if (cv && cv->hlc > d->hlc && cv->origin == origin) cv->mask &= ~dbit;
    else if (!cv && row) v->row_mask |= bits;
    else if (!cv && row_replay) v->row_mask &= ~dbit;
  }
}

static int keep(eng_pair *p, eng_work *w, as_delta *d, bool whole, decided *x, as_error *err) {
  uint16_t oid = 0;
  if (as_state_node_id(p->e->state, d->origin, &oid, err) != AS_OK) return AS_ERR;
  as_version_set_held(&x->v, p->dst->id, oid, d->hlc, d->op == AS_OP_DELETE, 0);
  mark_holders(&x->v, d, whole, p->dst->id, oid);
  x->dirty = x->applied = true;
  if (eng_grow((void **)&w->kept, &w->capkept, w->nkept + 1, sizeof *w->kept) != AS_OK)
    return eng_oom(err);
  w->kept[w->nkept++] = d;
  return AS_OK;
}

/* x as the store gave it: found, or a key with no version yet. */
static void decided_read(decided *x, bool found) {
  x->found = found;
  if (!found) memset(&x->v, 0, sizeof x->v);
  x->orig = x->v;
}

/* The key's state in this batch: read by prefetch_states, or here for a key it did not
 * read. */
static decided *key_state(eng_pair *p, eng_work *w, const as_schema *s, const char *key,
                          as_error *err) {
  decided *x = eng_decided_get(w, s, key);
  if (x) return x;
  if (!(x = decided_add(w, s, key))) {
    eng_oom(err);
    return NULL;
  }
  int g = as_state_version_get(p->e->state, s->name, key, &x->v, err);
  if (g != AS_OK && g != AS_ENOTFOUND) return NULL;
  decided_read(x, g == AS_OK);
  return x;
}

/* The target's current row of a key (the script strategy's `mine`): with v, the key's current
 * version (the row as the state knows it: columns the target does not hold yet come from a
 * node that does, see eng_current_row); without, the target's row as it is. */
typedef struct target_read {
  eng_pair *p;
  const as_schema *s;
  const char *key;
  const as_version *v;
} target_read;

static int read_target(void *rctx, as_row *out, as_error *err) {
  target_read *t = rctx;
  as_row keyrow = {0};
  int rc = as_row_init(&keyrow, t->s->ncols);
  if (rc == AS_OK) rc = as_key_parse(t->s, t->key, &keyrow, err);
  if (rc == AS_OK && t->v) {
    rc = eng_current_row(t->p->e, t->s, t->key, &keyrow, t->v, t->p->dst, out, err);
    as_row_clear(&keyrow);
    return rc;
  }
  if (rc == AS_OK) rc = eng_read_row(t->p->dst, t->s, &keyrow, out, err);
  as_row_clear(&keyrow);
  return rc;
}

/* A merged row (script strategy): the target gets the merged columns; every other node that
 * carries the mapping is repaired with them once the batch committed (the target holds them:
 * their version is the target's own). */
static as_delta *merged_delta(eng_pair *p, eng_work *w, as_delta *d, as_row *merged,
                              const uint8_t *apply, size_t at, const char *key, as_error *err) {
  as_delta *c = owned_copy(w, d, err);
  if (!c) return NULL;
  for (size_t i = 0; i < c->row.n && i < merged->n; i++) {
    if (d->schema->cols[i].is_key) continue;
    as_value_clear(&c->row.v[i]);
    c->row.set[i] = 0;
    if (!apply[i] || !merged->set[i]) continue;
    as_value_move(&c->row.v[i], &merged->v[i]);
    c->row.set[i] = 1;
  }
  c->op = AS_OP_UPDATE;
  as_row_clear(&c->image);
  memset(&c->image, 0, sizeof c->image);
  engine *e = p->e;
  for (size_t n = 0; n < e->nnodes; n++) {
    eng_node *o = &e->nodes[n];
    if (o == p->dst || o == p->src) continue; /* the source: repaired as a loser */
    bool carries = false;
    for (size_t k = 0; k < o->nschemas && !carries; k++) carries = o->schemas[k] == d->schema;
    if (carries && !eng_queue_repair(w, d->schema, key, o, p->dst, at)) {
      eng_oom(err);
      return NULL;
    }
  }
  return c;
}

/* ---------------------------------------------------------------- initial sync */

/* Whether the node initial_sync prefers (neither side of this pair) holds the key: its own
 * copies then bring its row to both sides. */
static bool preferred_holds(eng_pair *p, const as_delta *d) {
  const as_schema *s = d->schema;
  eng_node *n = eng_find_node(p->e, s->initial_prefer);
  if (!n || !eng_node_has_schema(n, s)) return false;
  as_row row = {0};
  as_error err;
  int rc = eng_read_row(n, s, &d->row, &row, &err);
  as_row_clear(&row);
  return rc == AS_OK;
}

/* Which side a first copy keeps for a key both hold with different values: 1 the source's,
 * 0 the target's, 2 neither for now (the preferred node is another one and holds the key: its
 * copies decide), -1 neither (reported and left alone). */
static int initial_winner(eng_pair *p, const as_delta *d, const as_row *there) {
  const as_schema *s = d->schema;
  if (s->initial_prefer) {
    if (strcmp(s->initial_prefer, p->src->cfg->name) == 0) return 1;
    if (strcmp(s->initial_prefer, p->dst->cfg->name) == 0) return 0;
    if (preferred_holds(p, d)) return 2;
  }
  int ci = s->conflict.clock_idx;
  if (ci >= 0 && as_row_has(&d->row, (size_t)ci) && as_row_has(there, (size_t)ci)) {
    const as_value *a = &d->row.v[ci], *b = &there->v[ci];
    int64_t x = a->type == AS_T_TIMESTAMP ? a->u.ts_us : a->type == AS_T_INT64 ? a->u.i : 0;
    int64_t y = b->type == AS_T_TIMESTAMP ? b->u.ts_us : b->type == AS_T_INT64 ? b->u.i : 0;
    if (x != y) return x > y ? 1 : 0;
  }
  return -1;
}

static void note_initial_conflict(eng_pair *p, const as_delta *d, const char *key,
                                  const as_row *there) {
  const as_schema *s = d->schema;
  as_state *st = p->e->state;
  as_error e;
  /* once per key: both streams of the pair of nodes find it */
  if (as_state_conflict_open_for(st, s->name, key, "initial") > 0) return;
  char *lrow = as_conflict_row_json(s, there, false, &e);
  char *rrow = as_conflict_row_json(s, &d->row, false, &e);
  char *cols = as_conflict_columns_json(s, &d->row, &e);
  as_conflict_rec r = {.mapping = s->name, .key = key, .strategy = "initial",
                       .columns_json = cols, .chosen = NULL, .open = true,
                       .local = {.node = p->dst->cfg->name, .row_json = lrow},
                       .remote = {.node = p->src->cfg->name, .row_json = rrow, .ts_us = d->ts_us}};
  if (as_state_conflict_record(st, &r, NULL, &e) != AS_OK)
    AS_LOG(AS_LOG_WARN, p->comp, "mapping %s key %s: cannot record the conflict: %s", s->name,
           key, e.message);
  AS_LOG(AS_LOG_WARN, p->comp, "mapping %s key %s: %s and %s hold different rows before any "
         "sync (no initial_sync prefer, no clock column): left alone, conflict recorded",
         s->name, key, p->src->cfg->name, p->dst->cfg->name);
  eng_count(p, s, ENG_C_CONFLICTS, 1);
  free(lrow);
  free(rrow);
  free(cols);
}

/* A snapshot copy of a key nobody synced yet, into a target that held rows: where the target
 * holds the key with other values, initial_sync decides. *done: nothing more to do for it. */
static int initial_compare(eng_pair *p, decided *x, as_delta *d, bool *done, as_error *err) {
  const as_schema *s = d->schema;
  target_read tr = {.p = p, .s = s, .key = x->key};
  as_row there = {0};
  as_error rerr;
  *done = false;
  int rc = read_target(&tr, &there, &rerr);
  if (rc != AS_OK) { /* no row there (or unreadable): the copy goes ahead as usual */
    as_row_clear(&there);
    return AS_OK;
  }
  bool equal = true;
  for (size_t i = 0; i < s->ncols && equal; i++) {
    if (s->cols[i].is_key || !d->row.set[i]) continue;
    equal = there.set[i] && as_value_equal(&d->row.v[i], &there.v[i]);
  }
  int w = equal ? 1 : initial_winner(p, d, &there);
  if (w == 0) { /* the target's row stays: it becomes the key's version, copied the other way */
    memset(&x->v, 0, sizeof x->v);
    snprintf(x->v.origin, sizeof x->v.origin, "%s", p->dst->cfg->name);
    x->v.hlc = d->hlc + 1;
    x->found = x->dirty = true;
    eng_count_skip(p, s);
    *done = true;
  } else if (w == 2) { /* left to the preferred node's copies: no version, no conflict */
    eng_count_skip(p, s);
    *done = true;
  } else if (w < 0) {
    note_initial_conflict(p, d, x->key, &there);
    eng_count_skip(p, s);
    *done = true;
  }
  as_row_clear(&there);
  (void)err;
  return AS_OK;
}

/* Whether d writes the whole row (insert, delete, an update carrying every column). */
static bool whole_change(const as_delta *d) {
  if (d->op != AS_OP_UPDATE) return true;
  for (size_t i = 0; i < d->row.n; i++)
    if (!d->row.set[i]) return false;
  return true;
}

/* Whether d, an update of some columns, is the key's row version: it brought a deleted row
 * back (or was the first change the connector saw of the key). The row's other columns are
 * then the values its node held, which d does not carry. */
static bool partial_row_version(const decided *x, const as_delta *d) {
  return !whole_change(d) && !x->v.deleted && is_row_version(&x->v, d);
}

/* d wrote nothing: every column it carries lost to a newer version of its own. When d is the
 * row's version (a whole-row change arriving after updates of every column, or one that
 * became the row's version with every column lost), nothing of it is left to hold but the
 * row's existence: the target holds it as far as it still counts (only that: mark_holders
 * would also take the target out of newer column versions of the same node, which it still
 * holds since nothing was written), and so does every node holding each column's version
 * (d is not written anywhere, so no relay brings it to them). */
static void hold_row_version(eng_pair *p, decided *x, const as_delta *d) {
  if (!is_row_version(&x->v, d) || !whole_change(d)) return;
  uint64_t every = x->v.ncolv ? ~0ull : 0;
  for (uint8_t i = 0; i < x->v.ncolv; i++) every &= x->v.colv[i].mask;
  x->v.row_mask |= every | 1ull << (p->dst->id % 64);
  x->dirty = true;
}

/* The target got d's columns only: the rest of the row comes from a node holding the row's
 * version, the node that made it first (a repair after the batch). The target already counts
 * as holding the row's version: where no node holds the rest any more (the row was deleted
 * under the change, and its capture gave no row image) the repair waits, and the nodes keep
 * what they had, with or without the row (docs/STATUS.md). */
static int fetch_rest(eng_pair *p, eng_work *w, decided *x, size_t i, as_error *err) {
  AS_LOG(AS_LOG_DEBUG, p->comp, "mapping %s key %s: an update brought the row back; the rest "
         "of the row follows (repair of %s)", x->schema->name, x->key, p->dst->cfg->name);
  return eng_queue_repair(w, x->schema, x->key, p->dst, p->src, i) ? AS_OK : eng_oom(err);
}

/* log.level trace: one line per decision; an applied change "wins" (the row's version becomes
 * its own, or the key is new), "applies" (its columns that won; the row's version stays) or is
 * "merged" (the resolver's row is written as a version of the target's own). */
static void trace_decision(const eng_pair *p, const decided *x, const as_change *c, bool snapshot,
                           const as_version *was, const as_decision *dec) {
  const as_delta *d = c->d;
  as_log_write(AS_LOG_TRACE, p->comp,
               "mapping %s key %s: %s %s (version %lld of %s, order %lld%s) against version %lld "
               "of %s: %s", d->schema->name, x->key,
               c->local ? "local" : d->relayed ? "relayed" : snapshot ? "copied" : "passed-on",
               as_op_name(d->op), (long long)d->hlc, d->origin, (long long)d->order,
               c->raced ? ", raced" : "", (long long)(was ? was->hlc : 0),
               was ? was->origin : "nobody",
               dec->verdict == AS_VERDICT_APPLY
                   ? (dec->merged ? "merged" : dec->new_winner ? "wins" : "applies")
               : dec->verdict == AS_VERDICT_SKIP ? "skip" : "lost");
}

/* Resolves one routed delta. */
static int resolve_one(eng_pair *p, eng_work *w, as_delta *d, size_t i, bool snapshot,
                       as_error *err) {
  engine *e = p->e;
  const as_schema *s = d->schema;
  decided *x = key_state(p, w, s, w->keys[i], err);
  if (!x) return AS_ERR;
  bool local = !snapshot && !d->relayed && strcmp(d->origin, p->src->cfg->name) == 0;
  if (!label(p, d, x, snapshot)) {
    eng_count_skip(p, s);
    return AS_OK;
  }
  if (snapshot && p->probe && !x->found && d->op != AS_OP_DELETE) {
    bool done;
    int irc = initial_compare(p, x, d, &done, err);
    if (irc != AS_OK || done) return irc;
  }
  if (strcmp(d->origin, p->dst->cfg->name) == 0) { /* a version never returns to its origin */
    eng_count_skip(p, s);
    return AS_OK;
  }
  if (eng_grow((void **)&w->mask, &w->capmask, 3 * s->ncols, 1) != AS_OK) return eng_oom(err);
  memset(w->mask, 0, 3 * s->ncols);
  as_row merged = {0};
  as_decision dec = {.apply = w->mask, .lost = w->mask + s->ncols,
                     .disputed = w->mask + 2 * s->ncols, .merged_row = &merged};
  target_read tr = {.p = p, .s = s, .key = x->key};
  as_change c = {.d = d, .source = p->src->cfg->name, .target = p->dst->cfg->name,
                 .local = local, .node_name = node_name, .ctx = e,
                 .source_id = p->src->id, .target_id = p->dst->id,
                 .read_target = read_target, .rctx = &tr};
  c.raced = local && x->found && overwritten(&x->v, p->src->id, d);
  bool was_deleted = x->found && x->v.deleted;
  if (as_state_node_id(e->state, d->origin, &c.origin_id, err) != AS_OK) return AS_ERR;
  const as_resolver *r = eng_resolver(e, s);
  bool vectors = s->conflict.strategy != AS_STRATEGY_LWW;
  /* the version the change is decided against: `mine` for vectors and scripts (the key's
   * current row, wherever it is held), the conflict record's and the trace line's */
  as_version before;
  bool tracing = AS_LOG_TRACE <= as_log_current_level;
  if (vectors || tracing) before = x->v;
  if (vectors && x->found) tr.v = &before;
  int rc = as_resolver_decide(r, &c, &x->v, x->found, &dec, err);
  if (rc != AS_OK) {
    as_row_clear(&merged);
    return rc;
  }
  if (tracing) trace_decision(p, x, &c, snapshot, x->found ? &before : NULL, &dec);
  x->found = true;
  if (dec.dead[0]) { /* the script's row did not fit: kept for `dlq`, the fallback decided */
    char *dj = as_delta_to_json_string(d, NULL);
    eng_record_dead(e, p, s, p->src->cfg->name, p->dst->cfg->name, "resolve", x->key, NULL, dj,
                    dec.dead, d->pos);
    free(dj);
  }
  if (dec.verdict != AS_VERDICT_SKIP) x->dirty = true; /* the resolver may have moved versions */
  if (dec.conflict) {
    x->dirty = true;
    eng_note_vector_conflict(p, d, x->key, &before, &x->v, &dec, r->name);
  }
  if (dec.any_lost && (rc = repair_loser(p, w, d, x, i, dec.lost, !dec.conflict && !vectors, err)) != AS_OK)
    return rc;
  if (dec.verdict != AS_VERDICT_APPLY) {
    as_row_clear(&merged);
    /* an update that brought the row back, decided on another pair first (or a replay of it
     * after an earlier change of its node was written again), whose every column has a newer
     * version by now: the target does not hold the row's version, so it gets the rest of the
     * row (else it keeps what it had there, e.g. the replayed earlier change's values) */
    bool rest = partial_row_version(x, d) && !(x->v.row_mask & (1ull << (p->dst->id % 64)));
    if (dec.verdict != AS_VERDICT_SKIP) return rest && !vectors ? fetch_rest(p, w, x, i, err) : AS_OK;
    eng_count_skip(p, s);
    if (vectors) hold_row_version(p, x, d); /* decide_known found no column of d's left */
    return rest ? fetch_rest(p, w, x, i, err) : AS_OK;
  }
  as_delta *a = dec.merged ? merged_delta(p, w, d, &merged, dec.apply, i, x->key, err)
                : was_deleted && d->op == AS_OP_UPDATE && dec.new_winner
                    ? resurrected(w, d, err)
                    : applied_delta(w, d, dec.apply, err);
  as_row_clear(&merged);
  if (a && !dec.merged && a->op == AS_OP_UPDATE && partial_row_version(x, d) && writes_columns(a))
    a = filled_from_image(w, a, x, err);
  if (!a) return AS_ERR;
  if (a->op == AS_OP_UPDATE && !writes_columns(a)) { /* every column it carries lost */
    hold_row_version(p, x, d);
    eng_count_skip(p, s);
    return AS_OK;
  }
  if (dec.merged) return keep(p, w, a, false, x, err); /* a version of the target's own */
  if (local) x->last_local_win = i + 1;
  if (local && overwritten(&x->v, p->src->id, d) && (rc = rewrite(p, w, a, x, i, err)) != AS_OK)
    return rc;
  /* the source holds this change (until the connector writes something else there) */
  if (local) as_version_set_made(&x->v, p->src->id, d->hlc, d->op == AS_OP_DELETE, d->ts_us);
  rc = keep(p, w, a, whole_change(d), x, err);
  if (rc == AS_OK && a->op == AS_OP_UPDATE && partial_row_version(x, d))
    rc = fetch_rest(p, w, x, i, err);
  return rc;
}

/* A TRUNCATE of the mapping's table on the source (mapping option on_truncate): stop the
 * stream (the default; it resumes at the truncate once the option says what to do), ignore
 * it, or send it on (the target empties the table; the key versions of the mapping are
 * forgotten with it). */
static int truncate_one(eng_pair *p, eng_work *w, as_delta *d, bool snapshot, as_error *err) {
  const as_schema *s = d->schema;
  if (!eng_routed(p, d, snapshot)) {
    eng_count_skip(p, s);
    return AS_OK;
  }
  switch (s->on_truncate) {
    case AS_ON_TRUNCATE_IGNORE:
      AS_LOG(AS_LOG_WARN, p->comp, "mapping %s: table %s was truncated on %s; ignored "
             "(on_truncate: ignore): %s keeps its rows", s->name, s->table, d->origin,
             p->dst->cfg->name);
      eng_count_skip(p, s);
      return AS_OK;
    case AS_ON_TRUNCATE_PROPAGATE:
      AS_LOG(AS_LOG_WARN, p->comp, "mapping %s: table %s was truncated on %s; emptying it on %s "
             "(on_truncate: propagate)", s->name, s->table, d->origin, p->dst->cfg->name);
      w->truncated = s;
      if (eng_grow((void **)&w->kept, &w->capkept, w->nkept + 1, sizeof *w->kept) != AS_OK)
        return eng_oom(err);
      w->kept[w->nkept++] = d;
      return AS_OK;
    case AS_ON_TRUNCATE_STOP:
    default:
      return as_error_set(err, AS_DOM_ENGINE, AS_ERR,
                          "%s:%d:%d: mapping %s: table %s was truncated on %s (on_truncate: stop). "
                          "Choose `on_truncate: propagate` (empty it everywhere) or `ignore` in the "
                          "mapping and restart: the stream resumes at the truncate",
                          s->file, s->mark.line, s->mark.col, s->name, s->table, d->origin);
  }
}

/* The state of every key of the batch that resolve_one will look at, read from the store in
 * one call (key_state then finds them decided). Under the batch's stripes nothing else
 * changes these keys' versions, and resolving writes none of them before write_ahead, so
 * reading them all first gives what reading each one when its first delta comes would. */
static int prefetch_states(eng_pair *p, as_batch *b, eng_work *w, as_error *err) {
  enum { CHUNK = 256 };
  const char *maps[CHUNK], *keys[CHUNK];
  as_version *outs[CHUNK];
  decided *xs[CHUNK];
  bool found[CHUNK];
  size_t n = 0;
  for (size_t i = 0; i <= b->n; i++) {
    if (i < b->n) {
      const as_schema *s = b->d[i].schema;
      if (b->d[i].op == AS_OP_TRUNCATE || !w->keys[i] || eng_decided_get(w, s, w->keys[i])) continue;
      decided *x = decided_add(w, s, w->keys[i]);
      if (!x) return eng_oom(err);
      maps[n] = s->name;
      keys[n] = x->key;
      outs[n] = &x->v;
      xs[n++] = x;
      if (n < CHUNK) continue;
    }
    if (n == 0) continue;
    int rc = as_state_version_get_many(p->e->state, maps, keys, n, outs, found, err);
    if (rc != AS_OK) return rc;
    for (size_t k = 0; k < n; k++) decided_read(xs[k], found[k]);
    n = 0;
  }
  return AS_OK;
}

int eng_resolve_batch(eng_pair *p, as_batch *b, bool snapshot, eng_work *w, as_error *err) {
  int prc = prefetch_states(p, b, w, err);
  if (prc != AS_OK) return prc;
  for (size_t i = 0; i < b->n; i++) {
    if (b->d[i].op == AS_OP_TRUNCATE) {
      int rc = truncate_one(p, w, &b->d[i], snapshot, err);
      if (rc != AS_OK) return rc;
      continue;
    }
    if (!w->keys[i]) {
      if (!eng_routed(p, &b->d[i], snapshot)) eng_count_skip(p, b->d[i].schema);
      continue;
    }
    int rc = resolve_one(p, w, &b->d[i], i, snapshot, err);
    if (rc != AS_OK) return rc;
  }
  /* (A repair is never cancelled by a later change of the same key in the batch: each one
   * checks the key's versions again when it runs and writes only what still wins.) */
  return AS_OK;
}
