/* as_repair.c — writes to a node what it should hold of a key:
 *   - the key's whole winning row (a local change that lost there; an update that found no
 *     row there; `dlq retry`): each column read from a node that holds its winning version —
 *     the origin of that version (it made the change, or something newer since) — or a delete
 *     when the row's version is a tombstone;
 *   - a local change of the node's own that the connector overwrote there in a race (a
 *     rewrite): the change's columns that still win, from the stored change itself.
 * Repairs are queued in the state store by the batch that decides them and run after it,
 * under the key's stripe, against the key's versions as they are then; a crash leaves them
 * queued and eng_repairs_drain runs them at the next start. */
#include "as_engine_int.h"

#include <stdlib.h>
#include <string.h>

#include "as_log.h"
#include "as_metrics.h"
#include "as_time.h"

#define REPAIR_GIVE_UP_US (10 * 60 * 1000000LL)
#define AS_MAX_WANT 512 /* columns a repair can read (winner_delta refuses more) */

/* What `to` holds once the repair's write d committed there (written_us 0: written ahead).
 * The key's whole winning row (or what `to` lacked of it): the row's version, and it holds
 * every column's winner now (version vectors). A rewrite (`own`: `to`'s own change written
 * back, some columns only): that change's version, and only the columns it wrote — marking
 * `to` as holding the row's version would let a repair read from `to` columns it never got
 * back (it holds whatever the connector wrote over them). */
static int record(engine *e, const as_schema *s, const char *key, eng_node *to,
                  const as_delta *own, int64_t written, int64_t order, as_error *err) {
  as_version v;
  int rc = as_state_begin(e->state, err);
  if (rc != AS_OK) return rc;
  rc = as_state_version_get(e->state, s->name, key, &v, err);
  uint16_t oid = 0;
  if (rc == AS_OK) rc = as_state_node_id(e->state, own ? own->origin : v.origin, &oid, err);
  if (rc == AS_OK) {
    int64_t hlc = own ? own->hlc : v.hlc;
    as_version_set_held(&v, to->id, oid, hlc, own ? own->op == AS_OP_DELETE : v.deleted, written);
    as_version_set_wrote_order(&v, to->id, order);
    if (!own) as_version_mark_holder(&v, to->id); /* the winning row (version vectors) */
    uint64_t bit = 1ull << (to->id % 64);
    bool row = own && v.hlc == hlc && strcmp(v.origin, own->origin) == 0;
    if (row && own->op == AS_OP_DELETE) v.row_mask |= bit;
    for (size_t i = 0; own && i < own->row.n && i < s->ncols; i++) {
      if (!own->row.set[i] || s->cols[i].is_key) continue;
      as_colver *cv = (as_colver *)as_version_col(&v, (uint16_t)i);
      if (cv && cv->hlc == hlc && cv->origin == oid) cv->mask |= bit;
      else if (!cv && row) v.row_mask |= bit;
    }
    rc = as_state_version_put(e->state, s->name, key, &v, err);
  }
  if (rc == AS_ENOTFOUND) rc = AS_OK;
  if (rc != AS_OK) {
    as_state_rollback(e->state);
    return rc;
  }
  return as_state_commit(e->state, err);
}

static int write_to(eng_node *to, as_delta *d, as_dead_list *dead, int64_t *order,
                    as_error *err) {
  *order = 0;
  pthread_mutex_lock(&to->mu);
  int rc = to->ad->begin(to->node, err);
  if (rc == AS_OK) rc = to->ad->apply(to->node, d, 1, dead, err);
  if (rc == AS_OK) rc = to->ad->commit(to->node, "repair", NULL, err);
  if (rc != AS_OK) to->ad->rollback(to->node);
  else if (to->ad->commit_order) *order = to->ad->commit_order(to->node);
  pthread_mutex_unlock(&to->mu);
  return rc;
}

int eng_read_row(eng_node *n, const as_schema *s, const as_row *keyrow, as_row *out, as_error *err) {
  int rc = as_row_init(out, s->ncols);
  if (rc != AS_OK) return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  pthread_mutex_lock(&n->mu);
  rc = n->ad->read_row(n->node, s, keyrow, out, err);
  pthread_mutex_unlock(&n->mu);
  return rc;
}

static int read_row(eng_node *n, const as_schema *s, const as_row *keyrow, as_row *out,
                    as_error *err) {
  int rc = eng_read_row(n, s, keyrow, out, err);
  if (rc != AS_OK && rc != AS_ENOTFOUND) as_error_prefix(err, "reading the winner from %s", n->cfg->name);
  return rc;
}

/* Whether node n is known to hold the version (hlc, origin) because the connector wrote it
 * there and saw the commit, or n made it itself. */
static bool holds(engine *e, const as_version *v, int64_t hlc, const char *origin,
                  const eng_node *n) {
  const as_held *h = as_version_held(v, n->id);
  if (!h) return false;
  const char *o = as_state_node_name(e->state, h->origin);
  return (h->written_us > 0 || h->made) && h->hlc == hlc && o && strcmp(o, origin) == 0;
}

/* Whether n's current row can be read as holding what the state says it won: not while its
 * own change is being written back there (a pending rewrite: the connector overwrote it). */
static bool trusted(engine *e, const as_schema *s, const char *key, const eng_node *n) {
  return !as_state_repair_pending(e->state, s->name, key, n->cfg->name, true);
}

static uint64_t node_bit(const eng_node *n) { return 1ull << (n->id % 64); }

/* A node to read the version (hlc, origin) from, other than `to` and the nodes in `skip`
 * (found without a row): its origin, which made it and holds it (or something newer of its
 * own) unless a repair of the key is pending there; else `from` or any node known to hold it
 * (holds) and trusted. NULL when none: the repair stays queued and runs again later. */
static eng_node *holder_of(engine *e, const as_schema *s, const char *key, const as_version *v,
                           int64_t hlc, const char *origin, uint64_t mask, eng_node *to,
                           eng_node *from, uint64_t skip) {
  eng_node *o = eng_find_node(e, origin);
  if (o && o != to && !(skip & node_bit(o)) && trusted(e, s, key, o)) return o;
  if (from != to && !(skip & node_bit(from)) && holds(e, v, hlc, origin, from) &&
      trusted(e, s, key, from))
    return from;
  for (size_t i = 0; i < e->nnodes; i++) {
    eng_node *n = &e->nodes[i];
    if (n != to && !(skip & node_bit(n)) && holds(e, v, hlc, origin, n) && trusted(e, s, key, n))
      return n;
  }
  /* the nodes the version was written to (mask), when no write record says so; not a node
   * the connector is writing to right now (its mark was made ahead of a commit that may not
   * happen: a failed batch, a crash), nor one whose write record was dropped or forgotten (a
   * batch that did not commit: its marks stay, its writes do not) */
  for (size_t i = 0; mask && i < e->nnodes; i++) {
    eng_node *n = &e->nodes[i];
    const as_held *h = as_version_held(v, n->id);
    bool known = h ? !h->wrote_pending && (h->written_us > 0 || h->made)
                   : v->nheld == AS_VERSION_MAX_HELD;
    if (n != to && !(skip & node_bit(n)) && (mask & node_bit(n)) && known &&
        trusted(e, s, key, n))
      return n;
  }
  return NULL;
}

/* The winning version of column c: its hlc, origin name and holder mask. */
static const char *column_version(engine *e, const as_version *v, size_t c, int64_t *hlc,
                                  uint64_t *mask) {
  const as_colver *cv = as_version_col(v, (uint16_t)c);
  *hlc = cv ? cv->hlc : v->hlc;
  *mask = cv ? cv->mask : v->row_mask;
  const char *o = cv ? as_state_node_name(e->state, cv->origin) : v->origin;
  return o ? o : "";
}

/* Rows read from holders, each node's once (eng_current_row). */
typedef struct read_cache {
  eng_node *node[AS_VERSION_MAX_COLS + 1];
  as_row row[AS_VERSION_MAX_COLS + 1];
  int rc[AS_VERSION_MAX_COLS + 1];
  size_t n;
} read_cache;

static const as_row *cached_row(read_cache *rc, eng_node *n, const as_schema *s,
                                const as_row *keyrow) {
  for (size_t i = 0; i < rc->n; i++)
    if (rc->node[i] == n) return rc->rc[i] == AS_OK ? &rc->row[i] : NULL;
  if (rc->n == sizeof rc->node / sizeof *rc->node) return NULL;
  size_t i = rc->n++;
  as_error ignored;
  rc->node[i] = n;
  memset(&rc->row[i], 0, sizeof rc->row[i]);
  rc->rc[i] = read_row(n, s, keyrow, &rc->row[i], &ignored);
  return rc->rc[i] == AS_OK ? &rc->row[i] : NULL;
}

int eng_current_row(engine *e, const as_schema *s, const char *key, const as_row *keyrow,
                    const as_version *v, eng_node *to, as_row *out, as_error *err) {
  int rc = read_row(to, s, keyrow, out, err);
  if (rc != AS_OK && rc != AS_ENOTFOUND) return rc;
  bool there = rc == AS_OK;
  if (v->deleted) return AS_ENOTFOUND;
  if (!there) {
    as_row_clear(out);
    if (as_row_copy(out, keyrow) != AS_OK) return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  }
  read_cache cache;
  cache.n = 0;
  bool any = there;
  for (size_t c = 0; c < s->ncols && c < out->n; c++) {
    if (s->cols[c].is_key) continue;
    int64_t hlc;
    uint64_t mask;
    const char *o = column_version(e, v, c, &hlc, &mask);
    if (there && (strcmp(o, to->cfg->name) == 0 || holds(e, v, hlc, o, to))) continue;
    eng_node *h = holder_of(e, s, key, v, hlc, o, mask, to, to, 0);
    const as_row *r = h ? cached_row(&cache, h, s, keyrow) : NULL;
    if (!r || c >= r->n) continue; /* nobody known to hold it: `to`'s value stays */
    as_value_clear(&out->v[c]);
    out->set[c] = 0;
    if (r->set[c] && as_value_copy(&out->v[c], &r->v[c]) == AS_OK) out->set[c] = 1;
    any = true;
  }
  for (size_t i = 0; i < cache.n; i++) as_row_clear(&cache.row[i]);
  return any ? AS_OK : AS_ENOTFOUND;
}

/* The node to read column c's winning version from (holder_of); *origin: that version's
 * origin (for messages). */
static eng_node *column_holder(engine *e, const as_schema *s, const char *key,
                               const as_version *v, size_t c, eng_node *to, eng_node *from,
                               uint64_t skip, const char **origin) {
  const as_colver *cv = as_version_col(v, (uint16_t)c);
  const char *o = cv ? as_state_node_name(e->state, cv->origin) : v->origin;
  *origin = o ? o : "?";
  return holder_of(e, s, key, v, cv ? cv->hlc : v->hlc, o ? o : "", cv ? cv->mask : v->row_mask,
                   to, from, skip);
}

/* One pass of read_columns over the columns wanted and not done yet, from holders outside
 * `skip`: each column's holder is found once, then each holder's row is read once.
 * AS_ENOTFOUND with *gone: that holder has no row (nothing else read from it). */
static int read_pass(engine *e, const as_schema *s, const char *key, const as_row *keyrow,
                     const as_version *v, const uint8_t *want, uint8_t *done, eng_node *to,
                     eng_node *from, uint64_t skip, as_delta *d, eng_node **gone, as_error *err) {
  eng_node *hold[AS_MAX_WANT]; /* s->ncols <= AS_MAX_WANT (winner_delta) */
  const char *o;
  for (size_t c = 0; c < s->ncols; c++) {
    hold[c] = NULL;
    if (!want[c] || done[c] || s->cols[c].is_key) continue;
    if ((hold[c] = column_holder(e, s, key, v, c, to, from, skip, &o))) continue;
    if (*gone) {
      return as_error_set(err, AS_DOM_ENGINE, AS_RETRY,
                          "%s holds no row for the key yet, nor any other node known to hold "
                          "column %s (%s); the repair stays queued", (*gone)->cfg->name,
                          s->cols[c].name, o);
    }
    return as_error_set(err, AS_DOM_ENGINE, AS_RETRY,
                        "no node is known to hold the winner of column %s (%s) yet; the repair "
                        "stays queued", s->cols[c].name, o);
  }
  for (size_t c = 0; c < s->ncols; c++) {
    eng_node *h = hold[c];
    if (!h || done[c]) continue;
    as_row other = {0};
    int rc = read_row(h, s, keyrow, &other, err);
    for (size_t k = c; rc == AS_OK && k < s->ncols; k++) {
      if (hold[k] != h) continue;
      done[k] = 1;
      if (!other.set[k]) continue;
      as_value_move(&d->row.v[k], &other.v[k]);
      d->row.set[k] = 1;
    }
    as_row_clear(&other);
    if (rc == AS_ENOTFOUND) {
      *gone = h;
      return AS_ENOTFOUND;
    }
    if (rc != AS_OK) return rc;
  }
  return AS_OK;
}

/* The columns `want` marks whose winning version is a local change waiting to be written
 * back (a pending rewrite of the key, on any node): taken from that change itself, which
 * holds exactly that version's values. Every node may have lost such a value (the connector
 * overwrote or deleted it there before the change was seen); the stored change has it. */
static void from_rewrites(engine *e, const as_schema *s, const char *key, const as_version *v,
                          const uint8_t *want, uint8_t *done, as_delta *d) {
  char **deltas = NULL;
  size_t n = 0;
  as_error err;
  if (as_state_repair_deltas(e->state, s->name, key, &deltas, &n, &err) != AS_OK) return;
  for (size_t k = 0; k < n; k++) {
    as_delta c;
    if (as_config_delta_parse(e->cfg, deltas[k], &c, &err) == AS_OK && c.schema == s &&
        c.op != AS_OP_DELETE) {
      for (size_t i = 0; i < s->ncols && i < c.row.n && i < d->row.n; i++) {
        if (!want[i] || done[i] || s->cols[i].is_key || !c.row.set[i]) continue;
        int64_t hlc;
        uint64_t mask;
        const char *o = column_version(e, v, i, &hlc, &mask);
        if (hlc != c.hlc || strcmp(o, c.origin) != 0) continue;
        as_value_clear(&d->row.v[i]);
        d->row.set[i] = as_value_copy(&d->row.v[i], &c.row.v[i]) == AS_OK;
        done[i] = d->row.set[i];
      }
    }
    as_delta_clear(&c);
    free(deltas[k]);
  }
  free(deltas);
}

/* Reads into d->row the columns `want` marks, each from a node holding its winning version
 * (as_version: a column's own version, else the row's). A holder without a row (the origin of
 * the row's version, say, whose row an older delete of the connector took in a race, while
 * another node still holds that version) is passed over for the next holder. When none is
 * left the repair waits: the holder either deleted the row since (that delete is on its way
 * and will make the version a tombstone) or the connector overwrote it there in a race (its
 * own change is being written back). Either way the answer comes later: never guess a
 * delete. */
static int read_columns(engine *e, const as_schema *s, const char *key, const as_row *keyrow,
                        const as_version *v, const uint8_t *want, eng_node *to, eng_node *from,
                        as_delta *d, as_error *err) {
  uint8_t done[AS_MAX_WANT] = {0};
  from_rewrites(e, s, key, v, want, done, d);
  uint64_t skip = 0;
  eng_node *gone = NULL;
  int rc;
  while ((rc = read_pass(e, s, key, keyrow, v, want, done, to, from, skip, d, &gone, err)) ==
         AS_ENOTFOUND) {
    AS_LOG(AS_LOG_DEBUG, "repair", "mapping %s key %s: %s holds no row; what %s lacks is "
           "read from the next holder", s->name, key, gone->cfg->name, to->cfg->name);
    skip |= node_bit(gone); /* holder_of never returns it again: at most one pass per node */
  }
  return rc;
}

/* What `to` should hold of the key: a delete (tombstone), or the winning values of the
 * columns it does not hold — every column whose winning version is not `to`'s own change
 * (whole: every column, when `to` has no row at all). An update of some columns when nothing
 * but those is wanted; AS_ENOTFOUND when `to` already holds every winning value. */
static int winner_delta(engine *e, const as_schema *s, const char *key, const as_row *keyrow,
                        const as_version *v, eng_node *to, eng_node *from, bool whole,
                        as_delta *d, as_error *err) {
  int rc = as_delta_init(d, s, v->deleted ? AS_OP_DELETE : whole ? AS_OP_INSERT : AS_OP_UPDATE);
  if (rc == AS_OK) as_row_clear(&d->row); /* as_row_copy allocates the row anew */
  if (rc != AS_OK || as_row_copy(&d->row, keyrow) != AS_OK)
    return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  if (v->deleted) return AS_OK;
  uint8_t want[AS_MAX_WANT];
  if (s->ncols > sizeof want) return as_error_set(err, AS_DOM_ENGINE, AS_EDATA, "too many columns");
  size_t nwant = 0;
  for (size_t c = 0; c < s->ncols; c++) {
    const as_colver *cv = as_version_col(v, (uint16_t)c);
    const char *o = cv ? as_state_node_name(e->state, cv->origin) : v->origin;
    want[c] = !s->cols[c].is_key && (whole || !o || strcmp(o, to->cfg->name) != 0);
    nwant += want[c];
  }
  if (nwant == 0) return AS_ENOTFOUND;
  return read_columns(e, s, key, keyrow, v, want, to, from, d, err);
}

/* Writes d to `to` with held[to] recorded ahead and after (record; own: d is a rewrite).
 * AS_EDATA when `to` refused it. */
static int write_recorded(engine *e, const as_schema *s, const char *key, eng_node *to,
                          as_delta *d, bool own, bool *missing, as_error *err) {
  as_dead_list dead = {0};
  int64_t order = 0;
  const as_delta *mine = own ? d : NULL;
  int rc = record(e, s, key, to, mine, 0, 0, err); /* ahead of the write, as for batches */
  if (rc == AS_OK) rc = write_to(to, d, &dead, &order, err);
  if (rc == AS_OK && dead.n && dead.items[0].missing) {
    *missing = true;
  } else if (rc == AS_OK && dead.n) {
    rc = as_error_set(err, AS_DOM_ENGINE, AS_EDATA, "%s",
                      dead.items[0].error ? dead.items[0].error : "refused by the target");
  } else if (rc == AS_OK) {
    rc = record(e, s, key, to, mine, as_now_us(), order, err);
  } else if (rc == AS_EINVAL) {
    rc = AS_EDATA;
  }
  as_dead_list_clear(&dead);
  return rc;
}

/* The whole winning row -> to. AS_ENOTFOUND: no version known. */
static int write_winner_locked(engine *e, const as_schema *s, const char *key, eng_node *to,
                               eng_node *from, bool whole_first, as_delta *d, as_error *err) {
  as_version v;
  int rc = as_state_version_get(e->state, s->name, key, &v, err);
  if (rc != AS_OK) return rc;
  as_row keyrow = {0};
  rc = as_row_init(&keyrow, s->ncols);
  if (rc == AS_OK) rc = as_key_parse(s, key, &keyrow, err);
  bool missing = false;
  for (int whole = whole_first ? 1 : 0; rc == AS_OK && whole < 2; whole++) {
    as_delta_clear(d);
    rc = winner_delta(e, s, key, &keyrow, &v, to, from, whole, d, err);
    if (rc == AS_ENOTFOUND && !whole) { /* `to` holds every winning value already */
      as_delta_clear(d);
      rc = AS_OK;
      break;
    }
    if (rc == AS_EINVAL) rc = AS_EDATA;
    if (rc != AS_OK) break;
    as_delta_set_origin(d, v.origin);
    d->hlc = v.hlc;
    d->ts_us = AS_HLC_US(v.hlc);
    missing = false;
    rc = write_recorded(e, s, key, to, d, false, &missing, err);
    if (!missing) break; /* else `to` has no row: the whole row then */
  }
  as_row_clear(&keyrow);
  return rc;
}

/* Keeps the columns of the stored change d that still hold its version; a whole-row change
 * left with some of its columns becomes an update of those (never a row made of them). */
static bool still_winning(engine *e, const as_version *v, as_delta *d) {
  const as_schema *s = d->schema;
  bool any = false, dropped = false;
  for (size_t i = 0; i < s->ncols; i++) {
    if (!d->row.set[i] || s->cols[i].is_key) continue;
    const as_colver *cv = as_version_col(v, (uint16_t)i);
    const char *o = cv ? as_state_node_name(e->state, cv->origin) : v->origin;
    int64_t h = cv ? cv->hlc : v->hlc;
    if (h == d->hlc && o && strcmp(o, d->origin) == 0) {
      any = true;
      continue;
    }
    as_value_clear(&d->row.v[i]);
    d->row.set[i] = 0;
    dropped = true;
  }
  if (d->op == AS_OP_INSERT && dropped) d->op = AS_OP_UPDATE;
  return any || (d->op == AS_OP_DELETE && v->deleted && v->hlc == d->hlc &&
                 strcmp(v->origin, d->origin) == 0);
}

/* A rewrite: the stored local change's columns that still win -> to. */
static int rewrite_locked(engine *e, const as_schema *s, const char *key, eng_node *to,
                          eng_node *from, const char *delta_json, as_delta *d, as_error *err) {
  int rc = as_config_delta_parse(e->cfg, delta_json, d, err);
  if (rc == AS_ENOTFOUND) return AS_OK; /* the mapping is gone from the configuration */
  if (rc != AS_OK) return AS_EDATA;
  as_version v;
  rc = as_state_version_get(e->state, s->name, key, &v, err);
  if (rc == AS_ENOTFOUND || (rc == AS_OK && !still_winning(e, &v, d))) {
    as_delta_clear(d); /* nothing to write */
    return AS_OK;
  }
  if (rc != AS_OK) return rc;
  bool missing = false;
  rc = write_recorded(e, s, key, to, d, true, &missing, err);
  if (rc == AS_OK && missing) { /* deleted there since: the whole row then */
    as_delta_clear(d);
    rc = write_winner_locked(e, s, key, to, from, true, d, err);
  }
  return rc;
}

int eng_write_winner(engine *e, const as_schema *s, const char *key, eng_node *to,
                     eng_node *from, as_error *err) {
  size_t stripe = eng_stripe_of(s, key);
  as_delta d;
  memset(&d, 0, sizeof d);
  eng_stripes_lock(e, &stripe, 1);
  int rc = write_winner_locked(e, s, key, to, from, false, &d, err);
  eng_stripes_unlock(e, &stripe, 1);
  as_delta_clear(&d);
  return rc;
}

/* A winner that cannot be written to `to` (mapping error, refused row): a dead letter, and the
 * repair is done — retrying it forever would fix nothing. */
static void dead_repair(engine *e, eng_pair *p, const as_schema *s, const char *key,
                        eng_node *from, eng_node *to, const as_delta *d, const char *why) {
  char *dj = d && d->schema ? as_delta_to_json_string(d, NULL) : NULL;
  eng_record_dead(e, p, s, from->cfg->name, to->cfg->name, "repair", key, NULL, dj, why, NULL);
  free(dj);
}

int eng_repair(engine *e, eng_pair *p, const as_schema *s, const char *key, eng_node *to,
               eng_node *from, const char *delta_json, int64_t repair_id, as_error *err) {
  size_t stripe = eng_stripe_of(s, key);
  as_delta d;
  memset(&d, 0, sizeof d);
  eng_stripes_lock(e, &stripe, 1);
  int rc = delta_json ? rewrite_locked(e, s, key, to, from, delta_json, &d, err)
                      : write_winner_locked(e, s, key, to, from, false, &d, err);
  eng_stripes_unlock(e, &stripe, 1);
  if (rc == AS_EDATA) {
    dead_repair(e, p, s, key, from, to, &d, err->message);
    rc = AS_OK;
  } else if (rc == AS_OK && d.schema) {
    if (p) as_metrics_add(p->src->cfg->name, p->dst->cfg->name, s->name, AS_M_REPAIRS, 1);
    if (AS_LOG_DEBUG <= as_log_current_level) {
      char *dj = as_delta_to_json_string(&d, NULL);
      AS_LOG(AS_LOG_DEBUG, p ? p->comp : "repair", "repaired mapping %s key %s on %s (%s): %s",
             s->name, key, to->cfg->name, delta_json ? "its own change back" : "the winning row",
             dj ? dj : "?");
      free(dj);
    }
  } else if (rc == AS_ENOTFOUND) {
    rc = AS_OK;
  }
  as_delta_clear(&d);
  if (rc == AS_OK && repair_id) rc = as_state_repair_done(e->state, repair_id, err);
  if (rc != AS_OK) as_error_prefix(err, "repair of mapping %s key %s on %s", s->name, key, to->cfg->name);
  return rc;
}

typedef struct drain_ctx {
  engine *e;
  int64_t done, failed;
} drain_ctx;

static int drain_one(void *vctx, const as_repair_rec *r) {
  drain_ctx *c = vctx;
  engine *e = c->e;
  const as_schema *s = as_config_schema(e->cfg, r->mapping);
  eng_node *to = eng_find_node(e, r->node), *from = eng_find_node(e, r->read_from);
  as_error err;
  if (!s || !to || !from) { /* the mapping or node is gone from the configuration */
    if (as_state_repair_done(e->state, r->id, &err) != AS_OK) c->failed++;
    return AS_OK;
  }
  if (eng_repair(e, NULL, s, r->key, to, from, r->delta, r->id, &err) == AS_OK) {
    c->done++;
  } else if (as_now_us() - r->created_us > REPAIR_GIVE_UP_US) {
    AS_LOG(AS_LOG_WARN, "repair", "%s; given up after %lld s (`arraysync verify --repair` finds "
           "what is left)", err.message, (long long)(REPAIR_GIVE_UP_US / 1000000));
    if (as_state_repair_done(e->state, r->id, &err) != AS_OK) c->failed++;
  } else {
    c->failed++;
    AS_LOG(AS_LOG_DEBUG, "repair", "%s", err.message);
  }
  return eng_stopping(e) ? AS_EOF : AS_OK;
}

int eng_repairs_drain(engine *e, as_error *err) {
  drain_ctx c = {.e = e};
  int rc = as_state_repair_each(e->state, drain_one, &c, err);
  if (rc == AS_EOF) rc = AS_OK;
  if (c.done || c.failed)
    AS_LOG(AS_LOG_INFO, "repair", "pending repairs: %lld done, %lld still pending",
           (long long)c.done, (long long)c.failed);
  return rc;
}
