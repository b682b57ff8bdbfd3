/* as_state_versions.c — per-key versions, node and mapping ids, the hot-key cache and the
 * repair queue of the state store (see as_state.h).
 *
 * A version is stored as one compact record (BLOB) per key, under its packed key
 * (as_state_keys.c):
 *   byte 0: flags (1 = tombstone, 2 = has a row hash, 4 = column versions, 8 = vectors,
 *   16 = times relative, which every record written now has)
 *   varints: updated_us, hlc, origin node id, [8-byte hash], count of held entries, then per
 *   held entry: node id, origin id, hlc, written_us, wrote_us, a flags byte (1 deleted,
 *   2 made, 4 write pending, 8 the write's commit order follows) and [wrote_order]; then,
 *   with flag 4, the count of column versions and per column: column index, origin id, hlc
 *   (with flag 8 also its change number and holder mask); with flag 8 the row's change number,
 *   holder mask and the vector entries.
 * Unsigned LEB128 varints. A time is written relative to a nearby one: 0 for none, else
 * zigzag(time - base) + 1, with base updated_us for the row's hlc and a held entry's
 * written_us, the row's hlc for the other versions' hlc, written_us (else updated_us) for
 * wrote_us; so a time costs 1 to 4 bytes instead of 8. Records without flag 16 (written
 * before) hold updated_us after the origin and every time as it is; they are read as before.
 * Settled records (as_state_versions_settle) have no updated_us (0 when read) and an absolute
 * hlc after the flags. Flag 32: then origin, [hash] and the vector part; its held entries are
 * those of settled_form(), one per node of the row's holder mask, followed by the count of
 * those with a commit-order place and (node id, place) for each. Flag 64: then origin,
 * [hash], the held entries as node id, origin id, hlc (relative to the row's), a flags byte
 * (1 deleted, 2 made, 8 place follows) and [place], each read back as written long ago
 * (settled_entries()), then the column versions and the vector part as in a record with
 * flag 16.
 * The tombstone flag is also a column, and so is updated_us for tombstones (0 for live
 * rows, so it costs nothing there), so that tombstones can be purged through a partial
 * index. */
#include "as_buf.h"
#include "as_state_int.h"
#include "as_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#define REC_DELETED 1
#define REC_HASH 2
#define REC_COLS 4
#define REC_VV 8
#define REC_REL 16
#define REC_SETTLED 32
#define REC_ENTRIES_SETTLED 64
#define REC_MAX 4096

/* ---------------------------------------------------------------- held versions */

const as_held *as_version_held(const as_version *v, uint16_t node) {
  for (uint8_t i = 0; i < v->nheld; i++) {
    if (v->held[i].node == node) return &v->held[i];
  }
  return NULL;
}

int64_t as_version_written(const as_version *v, uint16_t node) {
  const as_held *h = as_version_held(v, node);
  return h ? h->written_us : 0;
}

void as_version_set_held(as_version *v, uint16_t node, uint16_t origin, int64_t hlc,
                         bool deleted, int64_t written_us) {
  as_held *h = (as_held *)as_version_held(v, node);
  if (!h) {
    if (v->nheld == AS_VERSION_MAX_HELD) { /* forget the least recently written node */
      size_t old = 0;
      for (size_t i = 1; i < v->nheld; i++)
        if (v->held[i].written_us < v->held[old].written_us) old = i;
      v->held[old] = v->held[--v->nheld];
    }
    h = &v->held[v->nheld++];
  }
  h->node = node;
  h->origin = origin;
  h->hlc = hlc;
  h->deleted = deleted;
  h->made = false;
  h->written_us = written_us;
  h->wrote_us = written_us;
  h->wrote_pending = written_us == 0;
  h->wrote_order = 0;
}

void as_version_set_wrote_order(as_version *v, uint16_t node, int64_t order) {
  as_held *h = (as_held *)as_version_held(v, node);
  if (h && !h->made) h->wrote_order = order;
}

void as_version_drop_held(as_version *v, uint16_t node) {
  as_held *h = (as_held *)as_version_held(v, node);
  if (h) *h = v->held[--v->nheld];
}

void as_version_set_made(as_version *v, uint16_t node, int64_t hlc, bool deleted, int64_t ts) {
  const as_held *old = as_version_held(v, node);
  int64_t wrote = old ? old->wrote_us : 0, order = old ? old->wrote_order : 0;
  bool pending = old && old->wrote_pending;
  as_version_set_held(v, node, node, hlc, deleted, ts);
  as_held *h = (as_held *)as_version_held(v, node);
  h->made = true;
  h->wrote_us = wrote; /* the connector's last write there is still what it was */
  h->wrote_pending = pending;
  h->wrote_order = order;
}

uint32_t as_version_vv(const as_version *v, uint16_t node) {
  for (uint8_t i = 0; i < v->nvv; i++)
    if (v->vv[i].node == node) return v->vv[i].n;
  return 0;
}

void as_version_vv_set(as_version *v, uint16_t node, uint32_t n) {
  for (uint8_t i = 0; i < v->nvv; i++) {
    if (v->vv[i].node == node) {
      v->vv[i].n = n;
      return;
    }
  }
  if (v->nvv < AS_VERSION_MAX_HELD) v->vv[v->nvv++] = (as_vv_count){.node = node, .n = n};
}

const as_vv_count *as_version_vv_get(const as_version *v, uint16_t node) {
  for (uint8_t i = 0; i < v->nvv; i++)
    if (v->vv[i].node == node) return &v->vv[i];
  return NULL;
}

uint32_t as_version_vv_next(as_version *v, uint16_t node, int64_t hlc, uint64_t cols) {
  uint32_t n = as_version_vv(v, node) + 1;
  as_version_vv_set(v, node, n);
  as_vv_count *e = (as_vv_count *)as_version_vv_get(v, node);
  if (e) {
    e->hlc = hlc;
    e->cols = cols;
  }
  return n;
}

void as_version_mark_holder(as_version *v, uint16_t node) {
  uint64_t bit = 1ull << (node % 64);
  v->row_mask |= bit;
  for (uint8_t i = 0; i < v->ncolv; i++) v->colv[i].mask |= bit;
}

bool as_version_hold_covered_row(as_version *v, const uint16_t *cols, size_t n) {
  if (v->deleted || n == 0 || v->ncolv < n) return false;
  uint64_t every = ~0ull;
  for (size_t i = 0; i < n; i++) {
    const as_colver *c = as_version_col(v, cols[i]);
    if (!c) return false;
    every &= c->mask;
  }
  if ((v->row_mask | every) == v->row_mask) return false;
  v->row_mask |= every;
  return true;
}

int as_version_marks_diff(as_state *st, const as_version *now, const as_version *before,
                          uint16_t node, as_buf *b) {
  uint64_t bit = 1ull << (node % 64);
  const as_version *v = now, *o = before;
  if ((v->row_mask & bit) &&
      !(o && o->hlc == v->hlc && strcmp(o->origin, v->origin) == 0 && (o->row_mask & bit)) &&
      as_buf_printf(b, "\t%lld\t%s", (long long)v->hlc, v->origin) != AS_OK)
    return AS_ERR;
  for (uint8_t i = 0; i < v->ncolv; i++) {
    const as_colver *c = &v->colv[i];
    if (!(c->mask & bit)) continue;
    const as_colver *oc = o ? as_version_col(o, c->col) : NULL;
    if (oc && oc->origin == c->origin && oc->hlc == c->hlc && (oc->mask & bit)) continue;
    bool dup = false; /* one change of several columns: once */
    for (uint8_t k = 0; k < i && !dup; k++) {
      const as_colver *e = &v->colv[k];
      const as_colver *oe = o ? as_version_col(o, e->col) : NULL;
      dup = e->hlc == c->hlc && e->origin == c->origin && (e->mask & bit) &&
            !(oe && oe->origin == e->origin && oe->hlc == e->hlc && (oe->mask & bit));
    }
    const char *name = as_state_node_name(st, c->origin);
    if (!dup && name && as_buf_printf(b, "\t%lld\t%s", (long long)c->hlc, name) != AS_OK)
      return AS_ERR;
  }
  return AS_OK;
}

static bool unmark_one(as_state *st, as_version *v, uint16_t node, int64_t hlc,
                       const char *origin) {
  uint16_t oid = 0;
  as_error err;
  bool oid_known = as_state_node_id(st, origin, &oid, &err) == AS_OK;
  const as_held *h = as_version_held(v, node);
  if (h && !h->wrote_pending && (h->written_us > 0 || h->made) && h->hlc == hlc && oid_known &&
      h->origin == oid)
    return false; /* written there since */
  uint64_t bit = 1ull << (node % 64);
  bool changed = false;
  if (v->hlc == hlc && strcmp(v->origin, origin) == 0 && (v->row_mask & bit)) {
    v->row_mask &= ~bit;
    changed = true;
  }
  for (uint8_t i = 0; oid_known && i < v->ncolv; i++) {
    as_colver *c = &v->colv[i];
    if (c->hlc == hlc && c->origin == oid && (c->mask & bit)) {
      c->mask &= ~bit;
      changed = true;
    }
  }
  return changed;
}

bool as_version_unmark(as_state *st, as_version *v, uint16_t node, const char *marks) {
  bool changed = false;
  const char *p = marks;
  while (p && *p) {
    if (*p == '\t') p++; /* the first field's tab may have been cut off with the key */
    char *end = NULL;
    long long hlc = strtoll(p, &end, 10);
    if (!end || *end != '\t') break;
    const char *origin = end + 1, *next = strchr(origin, '\t');
    size_t len = next ? (size_t)(next - origin) : strlen(origin);
    char name[64];
    if (len == 0 || len >= sizeof name) break;
    memcpy(name, origin, len);
    name[len] = '\0';
    if (unmark_one(st, v, node, (int64_t)hlc, name)) changed = true;
    p = next;
  }
  return changed;
}

const as_colver *as_version_col(const as_version *v, uint16_t col) {
  for (uint8_t i = 0; i < v->ncolv; i++) {
    if (v->colv[i].col == col) return &v->colv[i];
  }
  return NULL;
}

void as_version_set_col(as_version *v, uint16_t col, uint16_t origin, int64_t hlc) {
  as_colver *c = (as_colver *)as_version_col(v, col);
  if (!c) {
    if (v->ncolv == AS_VERSION_MAX_COLS) {
      size_t old = 0;
      for (size_t i = 1; i < v->ncolv; i++)
        if (v->colv[i].hlc < v->colv[old].hlc) old = i;
      v->colv[old] = v->colv[--v->ncolv];
    }
    c = &v->colv[v->ncolv++];
  }
  c->col = col;
  c->origin = origin;
  c->hlc = hlc;
  c->n = 0;
  c->mask = 0;
}

void as_version_drop_cols_upto(as_version *v, int64_t hlc) {
  for (uint8_t i = 0; i < v->ncolv;) {
    if (v->colv[i].hlc <= hlc) v->colv[i] = v->colv[--v->ncolv];
    else i++;
  }
}

int as_version_compare(int64_t hlc_a, const char *origin_a, int64_t hlc_b, const char *origin_b) {
  if (hlc_a != hlc_b) return hlc_a < hlc_b ? -1 : 1;
  int c = strcmp(origin_a ? origin_a : "", origin_b ? origin_b : "");
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

/* ---------------------------------------------------------------- record encoding */

size_t as_varint_put(uint8_t *p, uint64_t v) {
  size_t n = 0;
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    p[n++] = (uint8_t)(b | (v ? 0x80 : 0));
  } while (v);
  return n;
}

bool as_varint_get(const uint8_t **p, const uint8_t *end, uint64_t *out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

/* A time relative to base: 0 none, else zigzag(t - base) + 1. */
static size_t put_rel(uint8_t *p, int64_t t, int64_t base) {
  if (!t) return as_varint_put(p, 0);
  int64_t d = t - base;
  return as_varint_put(p, (((uint64_t)d << 1) ^ (uint64_t)(d >> 63)) + 1);
}

static bool get_rel(const uint8_t **p, const uint8_t *end, int64_t base, int64_t *t) {
  uint64_t x;
  if (!as_varint_get(p, end, &x)) return false;
  if (!x) {
    *t = 0;
    return true;
  }
  x -= 1;
  *t = base + (int64_t)((x >> 1) ^ (~(x & 1) + 1));
  return true;
}

/* The held entry a settled record stands for: node holds the row version, made by its origin,
 * written long ago (written_us 1), no later write of the connector known by time; the place
 * of its last write in the node's commit order (order) is kept, since a change that reached
 * the connector late (a stream that delivers commits behind its empty polls) is still told
 * from a later write by it. */
static as_held settled_entry(const as_version *v, uint16_t node, uint16_t origin, int64_t order) {
  return (as_held){.node = node, .origin = origin, .hlc = v->hlc, .made = node == origin,
                   .written_us = 1, .wrote_order = order};
}

static bool same_held(const as_held *a, const as_held *b) {
  return a->node == b->node && a->origin == b->origin && a->hlc == b->hlc &&
         a->deleted == b->deleted && a->made == b->made && a->written_us == b->written_us &&
         a->wrote_us == b->wrote_us && a->wrote_pending == b->wrote_pending &&
         a->wrote_order == b->wrote_order;
}

/* Whether v is exactly what a settled record gives back: a live row without column versions
 * whose held entries are the settled entries of the nodes of its holder mask. */
static bool settled_form(const as_version *v, uint16_t origin) {
  if (v->deleted || v->ncolv || !v->row_mask || v->nheld != __builtin_popcountll(v->row_mask))
    return false;
  for (uint8_t i = 0; i < v->nheld; i++) {
    const as_held *h = &v->held[i];
    as_held want = settled_entry(v, h->node, origin, h->wrote_order);
    if (h->node >= 64 || !(v->row_mask >> h->node & 1) || !same_held(h, &want)) return false;
  }
  return true;
}

/* Whether every held entry of v is a settled one: written long ago (written_us 1), no later
 * write of the connector known, nothing pending. */
static bool settled_entries(const as_version *v) {
  if (v->deleted || !v->nheld) return false;
  for (uint8_t i = 0; i < v->nheld; i++) {
    const as_held *h = &v->held[i];
    if (h->written_us != 1 || h->wrote_us || h->wrote_pending) return false;
  }
  return true;
}

static size_t encode_cols(const as_version *v, bool vv, uint8_t *p) {
  size_t n = as_varint_put(p, v->ncolv);
  for (uint8_t i = 0; i < v->ncolv; i++) {
    n += as_varint_put(p + n, v->colv[i].col);
    n += as_varint_put(p + n, v->colv[i].origin);
    n += put_rel(p + n, v->colv[i].hlc, v->hlc);
    if (vv) {
      n += as_varint_put(p + n, v->colv[i].n);
      n += as_varint_put(p + n, v->colv[i].mask);
    }
  }
  return n;
}

static size_t encode_vv(const as_version *v, uint8_t *p) {
  size_t n = 0;
  n += as_varint_put(p + n, v->row_n);
  n += as_varint_put(p + n, v->row_mask);
  n += as_varint_put(p + n, v->nvv);
  for (uint8_t i = 0; i < v->nvv; i++) {
    n += as_varint_put(p + n, v->vv[i].node);
    n += as_varint_put(p + n, v->vv[i].n);
    n += put_rel(p + n, v->vv[i].hlc, v->hlc);
    n += as_varint_put(p + n, v->vv[i].cols);
  }
  return n;
}

static size_t encode(const as_version *v, uint16_t origin, uint8_t *p) {
  size_t n = 0;
  if (settled_form(v, origin)) {
    p[n++] = (uint8_t)(REC_SETTLED | REC_VV | (v->hash ? REC_HASH : 0));
    n += as_varint_put(p + n, (uint64_t)v->hlc);
    n += as_varint_put(p + n, origin);
    if (v->hash) {
      memcpy(p + n, &v->hash, 8);
      n += 8;
    }
    n += encode_vv(v, p + n);
    uint8_t norder = 0;
    for (uint8_t i = 0; i < v->nheld; i++) norder += v->held[i].wrote_order != 0;
    n += as_varint_put(p + n, norder);
    for (uint8_t i = 0; i < v->nheld; i++) {
      if (!v->held[i].wrote_order) continue;
      n += as_varint_put(p + n, v->held[i].node);
      n += as_varint_put(p + n, (uint64_t)v->held[i].wrote_order);
    }
    return n;
  }
  bool vv = v->nvv || v->row_n || v->row_mask;
  if (settled_entries(v)) {
    p[n++] = (uint8_t)(REC_ENTRIES_SETTLED | (v->hash ? REC_HASH : 0) | (v->ncolv ? REC_COLS : 0) |
                       (vv ? REC_VV : 0));
    n += as_varint_put(p + n, (uint64_t)v->hlc);
    n += as_varint_put(p + n, origin);
    if (v->hash) {
      memcpy(p + n, &v->hash, 8);
      n += 8;
    }
    n += as_varint_put(p + n, v->nheld);
    for (uint8_t i = 0; i < v->nheld; i++) {
      const as_held *h = &v->held[i];
      n += as_varint_put(p + n, h->node);
      n += as_varint_put(p + n, h->origin);
      n += put_rel(p + n, h->hlc, v->hlc);
      p[n++] = (uint8_t)((h->deleted ? 1 : 0) | (h->made ? 2 : 0) | (h->wrote_order ? 8 : 0));
      if (h->wrote_order) n += as_varint_put(p + n, (uint64_t)h->wrote_order);
    }
    if (v->ncolv) n += encode_cols(v, vv, p + n);
    if (vv) n += encode_vv(v, p + n);
    return n;
  }
  p[n++] = (uint8_t)((v->deleted ? REC_DELETED : 0) | (v->hash ? REC_HASH : 0) |
                     (v->ncolv ? REC_COLS : 0) | (vv ? REC_VV : 0) | REC_REL);
  n += as_varint_put(p + n, (uint64_t)v->updated_us);
  n += put_rel(p + n, v->hlc, v->updated_us);
  n += as_varint_put(p + n, origin);
  if (v->hash) {
    memcpy(p + n, &v->hash, 8);
    n += 8;
  }
  n += as_varint_put(p + n, v->nheld);
  for (uint8_t i = 0; i < v->nheld; i++) {
    const as_held *h = &v->held[i];
    n += as_varint_put(p + n, h->node);
    n += as_varint_put(p + n, h->origin);
    n += put_rel(p + n, h->hlc, v->hlc);
    n += put_rel(p + n, h->written_us, v->updated_us);
    n += put_rel(p + n, h->wrote_us, h->written_us ? h->written_us : v->updated_us);
    p[n++] = (uint8_t)((h->deleted ? 1 : 0) | (h->made ? 2 : 0) | (h->wrote_pending ? 4 : 0) |
                       (h->wrote_order ? 8 : 0));
    if (h->wrote_order) n += as_varint_put(p + n, (uint64_t)h->wrote_order);
  }
  if (v->ncolv) n += encode_cols(v, vv, p + n);
  if (vv) n += encode_vv(v, p + n);
  return n;
}

/* One time of a record: relative to base (flag 16), else as it is. */
static bool get_time(const uint8_t **p, const uint8_t *end, bool rel, int64_t base, int64_t *t) {
  if (rel) return get_rel(p, end, base, t);
  uint64_t x;
  if (!as_varint_get(p, end, &x)) return false;
  *t = (int64_t)x;
  return true;
}

static bool decode_held(const uint8_t **pp, const uint8_t *end, bool rel, const as_version *v,
                        as_held *h, bool settled) {
  uint64_t x[2];
  if (!as_varint_get(pp, end, &x[0]) || !as_varint_get(pp, end, &x[1])) return false;
  h->node = (uint16_t)x[0];
  h->origin = (uint16_t)x[1];
  if (settled) { /* settled_entries() */
    if (!get_rel(pp, end, v->hlc, &h->hlc) || *pp >= end) return false;
    uint8_t f = *(*pp)++;
    h->deleted = (f & 1) != 0;
    h->made = (f & 2) != 0;
    h->written_us = 1;
    if (f & 8) {
      if (!as_varint_get(pp, end, &x[0])) return false;
      h->wrote_order = (int64_t)x[0];
    }
    return true;
  }
  if (!get_time(pp, end, rel, v->hlc, &h->hlc) ||
      !get_time(pp, end, rel, v->updated_us, &h->written_us) ||
      !get_time(pp, end, rel, h->written_us ? h->written_us : v->updated_us, &h->wrote_us) ||
      *pp >= end)
    return false;
  uint8_t f = *(*pp)++;
  h->deleted = (f & 1) != 0;
  h->made = (f & 2) != 0;
  h->wrote_pending = (f & 4) != 0;
  if (f & 8) {
    if (!as_varint_get(pp, end, &x[0])) return false;
    h->wrote_order = (int64_t)x[0];
  }
  return true;
}

static bool decode_vv(const uint8_t **p, const uint8_t *end, bool rel, as_version *v) {
  uint64_t x[4];
  if (!as_varint_get(p, end, &x[0]) || !as_varint_get(p, end, &x[1]) || !as_varint_get(p, end, &x[2]) ||
      x[2] > AS_VERSION_MAX_HELD)
    return false;
  v->row_n = (uint32_t)x[0];
  v->row_mask = x[1];
  v->nvv = (uint8_t)x[2];
  for (uint8_t i = 0; i < v->nvv; i++) {
    if (!as_varint_get(p, end, &x[0]) || !as_varint_get(p, end, &x[1]) ||
        !get_time(p, end, rel, v->hlc, &v->vv[i].hlc) || !as_varint_get(p, end, &x[3]))
      return false;
    v->vv[i].cols = x[3];
    v->vv[i].node = (uint16_t)x[0];
    v->vv[i].n = (uint32_t)x[1];
  }
  return true;
}

/* The rest of a settled record: the vector part, then its held entries from the holder mask. */
static bool decode_settled(const uint8_t **p, const uint8_t *end, as_version *v, uint16_t origin) {
  uint64_t norder;
  if (!decode_vv(p, end, true, v) || !v->row_mask ||
      __builtin_popcountll(v->row_mask) > AS_VERSION_MAX_HELD || !as_varint_get(p, end, &norder) ||
      norder > AS_VERSION_MAX_HELD)
    return false;
  for (uint16_t node = 0; node < 64; node++)
    if (v->row_mask >> node & 1) v->held[v->nheld++] = settled_entry(v, node, origin, 0);
  for (uint64_t i = 0; i < norder; i++) {
    uint64_t node, order;
    if (!as_varint_get(p, end, &node) || !as_varint_get(p, end, &order)) return false;
    as_held *h = (as_held *)as_version_held(v, (uint16_t)node);
    if (!h || node > UINT16_MAX) return false;
    h->wrote_order = (int64_t)order;
  }
  return *p == end;
}

static int decode(as_state *st, const uint8_t *p, size_t len, as_version *v, as_error *err) {
  const uint8_t *end = p + len;
  uint64_t x[4];
  memset(v, 0, sizeof *v);
  if (len < 1) goto bad;
  uint8_t flags = *p++;
  bool settled = (flags & REC_SETTLED) != 0, entries = (flags & REC_ENTRIES_SETTLED) != 0;
  bool rel = (flags & REC_REL) != 0 || entries;
  v->deleted = (flags & REC_DELETED) != 0;
  if (settled || entries) {
    if (!as_varint_get(&p, end, &x[0]) || !as_varint_get(&p, end, &x[1])) goto bad;
    v->hlc = (int64_t)x[0];
  } else if (rel) {
    if (!as_varint_get(&p, end, &x[0])) goto bad;
    v->updated_us = (int64_t)x[0];
    if (!get_rel(&p, end, v->updated_us, &v->hlc) || !as_varint_get(&p, end, &x[1])) goto bad;
  } else {
    if (!as_varint_get(&p, end, &x[0]) || !as_varint_get(&p, end, &x[1]) || !as_varint_get(&p, end, &x[2]))
      goto bad;
    v->hlc = (int64_t)x[0];
    v->updated_us = (int64_t)x[2];
  }
  const char *o = as_state_node_name(st, (uint16_t)x[1]);
  snprintf(v->origin, sizeof v->origin, "%s", o ? o : "?");
  if (flags & REC_HASH) {
    if (end - p < 8) goto bad;
    memcpy(&v->hash, p, 8);
    p += 8;
  }
  uint16_t origin = (uint16_t)x[1];
  if (settled) {
    if (!decode_settled(&p, end, v, origin)) goto bad;
    return AS_OK;
  }
  if (!as_varint_get(&p, end, &x[0]) || x[0] > AS_VERSION_MAX_HELD) goto bad;
  v->nheld = (uint8_t)x[0];
  for (uint8_t i = 0; i < v->nheld; i++)
    if (!decode_held(&p, end, rel, v, &v->held[i], entries)) goto bad;
  bool vv = (flags & REC_VV) != 0;
  if (flags & REC_COLS) {
    if (!as_varint_get(&p, end, &x[0]) || x[0] > AS_VERSION_MAX_COLS) goto bad;
    v->ncolv = (uint8_t)x[0];
    for (uint8_t i = 0; i < v->ncolv; i++) {
      if (!as_varint_get(&p, end, &x[0]) || !as_varint_get(&p, end, &x[1]) ||
          !get_time(&p, end, rel, v->hlc, &v->colv[i].hlc))
        goto bad;
      v->colv[i].col = (uint16_t)x[0];
      v->colv[i].origin = (uint16_t)x[1];
      if (vv) {
        if (!as_varint_get(&p, end, &x[0]) || !as_varint_get(&p, end, &x[1])) goto bad;
        v->colv[i].n = (uint32_t)x[0];
        v->colv[i].mask = x[1];
      }
    }
  }
  if (vv && !decode_vv(&p, end, rel, v)) goto bad;
  return AS_OK;
bad:
  return as_error_set(err, AS_DOM_STATE, AS_ERR, "state store: a version record is corrupt");
}

/* ---------------------------------------------------------------- names -> ids */

int as_state_intern_locked(as_state *st, const char *table, state_name **arr, size_t *n,
                           const char *name, size_t len, bool create, int64_t *out,
                           as_error *err) {
  state_name *e = NULL;
  for (size_t i = 0; i < *n && !e; i++)
    if (strncmp((*arr)[i].name, name, len) == 0 && (*arr)[i].name[len] == '\0') e = &(*arr)[i];
  if (e && !e->lost) {
    *out = e->id;
    return AS_OK;
  }
  /* not known here, or added by a transaction that rolled back: the table says (another
   * connection may have added it) */
  char sql[128];
  sqlite3_stmt *q = NULL;
  snprintf(sql, sizeof sql, "SELECT id FROM %s WHERE name = ?1", table);
  int64_t id = 0;
  bool found = false;
  if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) == SQLITE_OK) {
    sqlite3_bind_text(q, 1, name, (int)len, SQLITE_STATIC);
    if ((found = sqlite3_step(q) == SQLITE_ROW)) id = sqlite3_column_int64(q, 0);
  }
  sqlite3_finalize(q);
  q = NULL;
  if (!found) {
    if (!create || st->readonly) return AS_ENOTFOUND;
    /* a name lost to a rollback comes back under its id: callers may keep ids */
    snprintf(sql, sizeof sql, e ? "INSERT INTO %s(name, id) VALUES (?1, ?2)" : "INSERT INTO %s(name) VALUES (?1)",
             table);
    int rc = AS_OK;
    if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK) return as_state_sqlerr(st, err, table);
    sqlite3_bind_text(q, 1, name, (int)len, SQLITE_STATIC);
    if (e) sqlite3_bind_int64(q, 2, e->id);
    if (sqlite3_step(q) != SQLITE_DONE) rc = as_state_sqlerr(st, err, table);
    sqlite3_finalize(q);
    if (rc != AS_OK) return rc;
    id = sqlite3_last_insert_rowid(st->db);
  }
  if (!e) {
    state_name *p = realloc(*arr, (*n + 1) * sizeof **arr);
    if (!p) return as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
    *arr = p;
    e = &p[*n];
    if (!(e->name = strndup(name, len))) return as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
    (*n)++;
  }
  e->id = id;
  e->lost = false;
  e->pending = st->txn_depth > 0; /* may still roll back */
  *out = id;
  return AS_OK;
}

static int name_id(as_state *st, const char *table, state_name **arr, size_t *n,
                   const char *name, bool create, int64_t *out, as_error *err) {
  return as_state_intern_locked(st, table, arr, n, name, strlen(name), create, out, err);
}

static void names_settle(state_name *arr, size_t n, bool committed) {
  for (size_t i = 0; i < n; i++) {
    if (!arr[i].pending) continue;
    arr[i].pending = false;
    if (!committed) arr[i].lost = true;
  }
}

static int load_names(as_state *st, const char *table, state_name **arr, size_t *n,
                      as_error *err) {
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT id, name FROM %s ORDER BY id", table);
  sqlite3_stmt *q = NULL;
  if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK) return as_state_sqlerr(st, err, table);
  int rc = AS_OK, s;
  while ((s = sqlite3_step(q)) == SQLITE_ROW) {
    state_name *p = realloc(*arr, (*n + 1) * sizeof **arr);
    if (!p) {
      rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
      break;
    }
    *arr = p;
    p[*n] = (state_name){.id = sqlite3_column_int64(q, 0),
                         .name = strdup((const char *)sqlite3_column_text(q, 1))};
    if (!p[(*n)++].name) rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
  }
  if (rc == AS_OK && s != SQLITE_DONE) rc = as_state_sqlerr(st, err, table);
  sqlite3_finalize(q);
  return rc;
}

int as_state_node_id(as_state *st, const char *name, uint16_t *out, as_error *err) {
  pthread_mutex_lock(&st->mu);
  int64_t id = 0;
  int rc = name_id(st, "nodes", &st->nodes, &st->nnodes, name, true, &id, err);
  pthread_mutex_unlock(&st->mu);
  if (rc == AS_OK && (id < 0 || id > UINT16_MAX))
    rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "state store: too many node names");
  if (rc == AS_OK) *out = (uint16_t)id;
  return rc;
}

const char *as_state_node_name(as_state *st, uint16_t id) {
  const char *name = NULL;
  pthread_mutex_lock(&st->mu);
  for (size_t i = 0; i < st->nnodes && !name; i++)
    if (st->nodes[i].id == id) name = st->nodes[i].name;
  pthread_mutex_unlock(&st->mu);
  return name;
}

/* ---------------------------------------------------------------- the cache */

/* "mapping\x1fkey" of a lookup: in buf when it fits (no allocation per lookup), else in heap;
 * s = NULL when out of memory (the cache is then not used). */
typedef struct mkey {
  char *s, *heap;
  size_t len;
  uint64_t tag;
  char buf[256];
} mkey;

static void mkey_init(mkey *k, const char *mapping, const char *key) {
  size_t lm = strlen(mapping), lk = strlen(key);
  k->heap = NULL;
  k->len = lm + lk + 1;
  k->s = k->len < sizeof k->buf ? k->buf : (k->heap = malloc(k->len + 1));
  k->tag = 0;
  if (!k->s) return;
  memcpy(k->s, mapping, lm);
  k->s[lm] = '\x1f';
  memcpy(k->s + lm + 1, key, lk + 1);
  k->tag = XXH3_64bits(k->s, k->len);
  if (k->tag == 0) k->tag = 1;
}

/* An entry holding rec and k's key (NULL: out of memory). */
static cache_entry *entry_new(const mkey *k, const void *rec, size_t len) {
  cache_entry *e = k->s ? malloc(sizeof *e + len + k->len + 1) : NULL;
  if (!e) return NULL;
  e->len = (uint32_t)len;
  memcpy(e->data, rec, len);
  memcpy(e->data + len, k->s, k->len + 1);
  return e;
}

static bool entry_is(const cache_entry *e, const mkey *k) {
  return e && strcmp(e->data + e->len, k->s) == 0;
}

static size_t slot_of(uint64_t tag) { return (size_t)(tag & (STATE_CACHE_SLOTS - 1)); }

/* The cached entry of k, or NULL. */
static const cache_entry *cache_hit(const as_state *st, const mkey *k) {
  if (!st->cache || !k->s) return NULL;
  size_t i = slot_of(k->tag);
  if (st->cache_tags[i] != k->tag) return NULL;
  return entry_is(st->cache[i], k) ? st->cache[i] : NULL;
}

/* Takes e (freed when it cannot be kept). */
static void cache_store(as_state *st, uint64_t tag, cache_entry *e) {
  if (!st->cache || !e) {
    free(e);
    return;
  }
  size_t i = slot_of(tag);
  free(st->cache[i]);
  st->cache[i] = e;
  st->cache_tags[i] = tag;
}

static void cache_forget(as_state *st, uint64_t tag) {
  if (st->cache && st->cache_tags[slot_of(tag)] == tag) st->cache_tags[slot_of(tag)] = 0;
}

static void cache_clear(as_state *st) {
  if (st->cache_tags) memset(st->cache_tags, 0, STATE_CACHE_SLOTS * sizeof *st->cache_tags);
}

void as_state_cache_settle(as_state *st, bool committed) {
  names_settle(st->nodes, st->nnodes, committed);
  names_settle(st->mappings, st->nmappings, committed);
  names_settle(st->kprefixes, st->nkprefixes, committed);
  for (size_t i = 0; i < st->npending; i++) {
    cache_pending *p = &st->pending[i];
    if (committed && st->cache) {
      cache_store(st, p->tag, p->e);
    } else {
      if (st->cache) cache_forget(st, p->tag);
      free(p->e);
    }
  }
  st->npending = 0;
}

/* ---------------------------------------------------------------- get / put */

/* as_state_version_get with the lock held. */
static int version_get_locked(as_state *st, const char *mapping, const char *key, as_version *out,
                              as_error *err) {
  mkey k;
  int rc;
  int64_t mid = 0;
  mkey_init(&k, mapping, key);
  /* inside a transaction, a put of this batch may not be in the cache yet */
  const cache_entry *hit = NULL;
  for (size_t i = st->npending; k.s && !hit && i-- > 0;) {
    if (st->pending[i].tag == k.tag && entry_is(st->pending[i].e, &k)) hit = st->pending[i].e;
  }
  if (!hit) hit = cache_hit(st, &k);
  if (hit) {
    rc = decode(st, (const uint8_t *)hit->data, hit->len, out, err);
    goto done;
  }
  rc = st->get ? name_id(st, "mappings", &st->mappings, &st->nmappings, mapping, false, &mid, err)
               : AS_ENOTFOUND;
  if (rc != AS_OK) goto done;
  as_packed_key pk = {0};
  if (!st->keys_text && (rc = as_state_key_pack(st, key, false, &pk, err)) != AS_OK) goto done;
  sqlite3_bind_int64(st->get, 1, mid);
  if (st->keys_text)
    sqlite3_bind_text(st->get, 2, key, -1, SQLITE_STATIC);
  else
    sqlite3_bind_blob(st->get, 2, pk.p, (int)pk.len, SQLITE_STATIC);
  int s = sqlite3_step(st->get);
  if (s == SQLITE_ROW) {
    const void *rec = sqlite3_column_blob(st->get, 0);
    size_t len = (size_t)sqlite3_column_bytes(st->get, 0);
    rc = decode(st, rec, len, out, err);
    if (rc == AS_OK && st->cache) cache_store(st, k.tag, entry_new(&k, rec, len));
  } else if (s == SQLITE_DONE) {
    rc = AS_ENOTFOUND;
  } else {
    rc = as_state_sqlerr(st, err, "read version");
  }
  sqlite3_reset(st->get);
  sqlite3_clear_bindings(st->get);
  as_packed_key_free(&pk);
done:
  free(k.heap);
  return rc;
}

int as_state_version_get(as_state *st, const char *mapping, const char *key, as_version *out,
                         as_error *err) {
  pthread_mutex_lock(&st->mu);
  int rc = version_get_locked(st, mapping, key, out, err);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

int as_state_version_get_many(as_state *st, const char *const *mappings, const char *const *keys, size_t n,
                              as_version *const *out, bool *found, as_error *err) {
  pthread_mutex_lock(&st->mu);
  /* outside a transaction each statement would take and drop the WAL read lock by itself */
  bool own = n > 1 && st->txn_depth == 0 && sqlite3_get_autocommit(st->db) &&
             sqlite3_exec(st->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
  int rc = AS_OK;
  for (size_t i = 0; i < n && rc == AS_OK; i++) {
    int g = version_get_locked(st, mappings[i], keys[i], out[i], err);
    found[i] = g == AS_OK;
    if (g != AS_OK && g != AS_ENOTFOUND) rc = g;
  }
  if (own && sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    /* a read transaction: nothing to lose; never leave it open */
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
  }
  pthread_mutex_unlock(&st->mu);
  return rc;
}

static int stage_cache(as_state *st, uint64_t tag, cache_entry *e) {
  if (st->npending == st->cappending) {
    size_t cap = st->cappending ? st->cappending * 2 : 256;
    cache_pending *p = realloc(st->pending, cap * sizeof *p);
    if (!p) return AS_ERR;
    st->pending = p;
    st->cappending = cap;
  }
  cache_pending *p = &st->pending[st->npending++];
  p->tag = tag;
  p->e = e;
  return AS_OK;
}

static int version_put_locked(as_state *st, const char *mapping, const char *key,
                              const as_version *v, bool note, as_error *err) {
  mkey k = {0};
  int64_t mid = 0;
  uint16_t origin = 0;
  uint8_t rec[REC_MAX];
  as_version w = *v;
  int rc = AS_OK;
  if (st->quick_on && note) {
    as_version *old = malloc(sizeof *old);
    if (!old) return as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
    /* the cache is current inside a transaction (as_state_external_check_locked) */
    int g = version_get_locked(st, mapping, key, old, err);
    if (g == AS_OK || g == AS_ENOTFOUND)
      rc = as_state_quick_note_locked(st, mapping, key, g == AS_OK ? old : NULL, v, err);
    else
      rc = g;
    free(old);
    if (rc != AS_OK) return rc;
  }
  rc = name_id(st, "mappings", &st->mappings, &st->nmappings, mapping, true, &mid, err);
  if (rc == AS_OK) rc = as_state_node_id(st, v->origin, &origin, err);
  if (rc != AS_OK) goto done;
  if (!w.updated_us) w.updated_us = as_now_us();
  st->puts++;
  size_t n = encode(&w, origin, rec);
  as_packed_key pk;
  if ((rc = as_state_key_pack(st, key, true, &pk, err)) != AS_OK) goto done;
  mkey_init(&k, mapping, key);
  sqlite3_bind_int64(st->put, 1, mid);
  sqlite3_bind_blob(st->put, 2, pk.p, (int)pk.len, SQLITE_STATIC);
  sqlite3_bind_blob(st->put, 3, rec, (int)n, SQLITE_STATIC);
  sqlite3_bind_int(st->put, 4, w.deleted ? 1 : 0);
  sqlite3_bind_int64(st->put, 5, w.deleted ? w.updated_us : 0); /* only tombstones are purged by it */
  if (sqlite3_step(st->put) != SQLITE_DONE) rc = as_state_sqlerr(st, err, "write version");
  sqlite3_reset(st->put);
  sqlite3_clear_bindings(st->put);
  as_packed_key_free(&pk);
  if (!st->cache || !k.s) goto done;
  cache_entry *e = rc == AS_OK ? entry_new(&k, rec, n) : NULL;
  if (!e) {
    cache_forget(st, k.tag);
  } else if (st->txn_depth > 0) {
    if (stage_cache(st, k.tag, e) != AS_OK) {
      cache_forget(st, k.tag);
      free(e);
    }
  } else {
    cache_store(st, k.tag, e);
  }
done:
  free(k.heap);
  return rc;
}

int as_state_version_put_written(as_state *st, const char *mapping, const char *key,
                                 const as_version *v, as_error *err) {
  pthread_mutex_lock(&st->mu);
  int rc = version_put_locked(st, mapping, key, v, false, err);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

int as_state_version_put(as_state *st, const char *mapping, const char *key,
                         const as_version *v, as_error *err) {
  pthread_mutex_lock(&st->mu);
  /* the quick signatures change with the version: one transaction for both */
  bool own = st->quick_on && st->txn_depth == 0;
  int rc = own ? as_state_begin(st, err) : AS_OK;
  if (rc == AS_OK) {
    rc = version_put_locked(st, mapping, key, v, true, err);
    if (own && rc == AS_OK) rc = as_state_commit(st, err);
    else if (own) as_state_rollback(st);
  }
  pthread_mutex_unlock(&st->mu);
  return rc;
}

int as_state_versions_forget(as_state *st, const char *mapping, as_error *err) {
  pthread_mutex_lock(&st->mu);
  int64_t mid = 0;
  int rc = name_id(st, "mappings", &st->mappings, &st->nmappings, mapping, false, &mid, err);
  sqlite3_stmt *q = NULL;
  if (rc == AS_OK) {
    if (sqlite3_prepare_v2(st->db, "DELETE FROM versions WHERE m = ?1", -1, &q, NULL) != SQLITE_OK) {
      rc = as_state_sqlerr(st, err, "forget versions");
    } else {
      sqlite3_bind_int64(q, 1, mid);
      if (sqlite3_step(q) != SQLITE_DONE) rc = as_state_sqlerr(st, err, "forget versions");
    }
    sqlite3_finalize(q);
    q = NULL;
    /* the quick signatures of the mapping go with its versions */
    if (rc == AS_OK && st->quick_on) {
      as_state_quick_drop_locked(st);
      if (sqlite3_prepare_v2(st->db, "DELETE FROM quick_buckets WHERE mapping = ?1", -1, &q, NULL) != SQLITE_OK) {
        rc = as_state_sqlerr(st, err, "forget quick signatures");
      } else {
        sqlite3_bind_text(q, 1, mapping, -1, SQLITE_STATIC);
        if (sqlite3_step(q) != SQLITE_DONE) rc = as_state_sqlerr(st, err, "forget quick signatures");
      }
      sqlite3_finalize(q);
    }
    cache_clear(st);
    as_state_cache_settle(st, false);
  }
  pthread_mutex_unlock(&st->mu);
  return rc == AS_ENOTFOUND ? AS_OK : rc;
}

int64_t as_state_purge_tombstones(as_state *st, int64_t retention_ms, as_error *err) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *s = NULL;
  int64_t n = -1;
  if (sqlite3_prepare_v2(st->db, "DELETE FROM versions WHERE deleted = 1 AND updated_us < ?1",
                         -1, &s, NULL) == SQLITE_OK) {
    sqlite3_bind_int64(s, 1, as_now_us() - retention_ms * 1000);
    if (sqlite3_step(s) == SQLITE_DONE) n = sqlite3_changes(st->db);
  }
  if (n < 0) as_state_sqlerr(st, err, "purge tombstones");
  sqlite3_finalize(s);
  if (n > 0) cache_clear(st);
  pthread_mutex_unlock(&st->mu);
  return n;
}

/* ---------------------------------------------------------------- settling */

enum { SETTLE_NO, SETTLE_LATER, SETTLE_NOW };

/* Whether v may be settled: a live key whose every held entry has a known write record
 * (nothing written ahead) older than what its node's streams have read past. */
static int settleable(const as_version *v, const int64_t *before, size_t nb) {
  if (v->deleted || !v->nheld) return SETTLE_NO;
  int verdict = SETTLE_NOW;
  for (uint8_t i = 0; i < v->nheld; i++) {
    const as_held *h = &v->held[i];
    if (h->node >= nb || h->wrote_pending || (!h->made && h->written_us <= 0)) return SETTLE_NO;
    int64_t b = before[h->node];
    if (b <= 0 || (!h->made && h->written_us >= b) || h->wrote_us >= b) verdict = SETTLE_LATER;
  }
  return verdict;
}

/* Whether the settled v can be kept as its holder mask alone (flag 32): no column versions,
 * every node of the mask with an entry of the row version, made by its origin only (the
 * origin may have none: a first copy's source). */
static bool mask_form(const as_version *v, uint16_t origin) {
  int inmask = __builtin_popcountll(v->row_mask);
  bool origin_bare = origin < 64 && (v->row_mask >> origin & 1) && !as_version_held(v, origin);
  if (v->ncolv || !v->row_mask || inmask > AS_VERSION_MAX_HELD ||
      v->nheld != inmask - (origin_bare ? 1 : 0))
    return false;
  for (uint8_t i = 0; i < v->nheld; i++) {
    const as_held *h = &v->held[i];
    if (h->node >= 64 || !(v->row_mask >> h->node & 1) || h->deleted || h->hlc != v->hlc ||
        h->origin != origin || h->made != (h->node == origin))
      return false;
  }
  return true;
}

typedef struct settled_row {
  int64_t m;
  uint8_t *key, *rec;
  size_t keylen, reclen;
} settled_row;

static int settle_write(as_state *st, settled_row *rows, size_t n, as_error *err) {
  sqlite3_stmt *q = NULL;
  if (sqlite3_prepare_v2(st->db, "UPDATE versions SET rec = ?1 WHERE m = ?2 AND part = 0 AND key = ?3",
                         -1, &q, NULL) != SQLITE_OK)
    return as_state_sqlerr(st, err, "settle versions");
  int rc = AS_OK;
  for (size_t i = 0; i < n && rc == AS_OK; i++) {
    sqlite3_bind_blob(q, 1, rows[i].rec, (int)rows[i].reclen, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, rows[i].m);
    sqlite3_bind_blob(q, 3, rows[i].key, (int)rows[i].keylen, SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_DONE) rc = as_state_sqlerr(st, err, "settle versions");
    sqlite3_reset(q);
  }
  sqlite3_finalize(q);
  return rc;
}

/* Reads up to max rows after the cursor; the settleable ones go to rows (n of them). */
static int settle_scan(as_state *st, const int64_t *before, size_t nb, size_t max,
                       settled_row **rows, size_t *n, size_t *seen, int64_t *waiting,
                       as_error *err) {
  sqlite3_stmt *q = NULL;
  if (sqlite3_prepare_v2(st->db,
                         "SELECT m, key, rec FROM versions WHERE (m, part, key) > (?1, 0, ?2) "
                         "ORDER BY m, part, key LIMIT ?3",
                         -1, &q, NULL) != SQLITE_OK)
    return as_state_sqlerr(st, err, "settle versions");
  sqlite3_bind_int64(q, 1, st->settle_m);
  sqlite3_bind_blob(q, 2, st->settle_key ? st->settle_key : (const uint8_t *)"", (int)st->settle_keylen,
                    SQLITE_TRANSIENT);
  sqlite3_bind_int64(q, 3, (sqlite3_int64)max);
  int rc = AS_OK, s;
  while (rc == AS_OK && (s = sqlite3_step(q)) == SQLITE_ROW) {
    const uint8_t *rec = sqlite3_column_blob(q, 2), *key = sqlite3_column_blob(q, 1);
    size_t reclen = (size_t)sqlite3_column_bytes(q, 2), keylen = (size_t)sqlite3_column_bytes(q, 1);
    (*seen)++;
    uint8_t *k = malloc(keylen ? keylen : 1);
    if (!k) {
      rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
      break;
    }
    memcpy(k, key, keylen);
    free(st->settle_key);
    st->settle_key = k;
    st->settle_keylen = keylen;
    st->settle_m = sqlite3_column_int64(q, 0);
    if (reclen == 0 || (rec[0] & (REC_SETTLED | REC_ENTRIES_SETTLED | REC_DELETED))) continue;
    as_version v;
    as_error ignored;
    int64_t oid = 0;
    if (decode(st, rec, reclen, &v, &ignored) != AS_OK ||
        name_id(st, "nodes", &st->nodes, &st->nnodes, v.origin, false, &oid, &ignored) != AS_OK ||
        oid < 0 || oid > UINT16_MAX)
      continue;
    uint16_t origin = (uint16_t)oid;
    int verdict = settleable(&v, before, nb);
    *waiting += verdict == SETTLE_LATER;
    if (verdict != SETTLE_NOW) continue;
    if (mask_form(&v, origin)) {
      as_version was = v;
      v.nheld = 0;
      for (uint16_t node = 0; node < 64; node++) {
        const as_held *h = as_version_held(&was, node);
        if (v.row_mask >> node & 1)
          v.held[v.nheld++] = settled_entry(&v, node, origin, h ? h->wrote_order : 0);
      }
    } else {
      for (uint8_t i = 0; i < v.nheld; i++) {
        as_held *h = &v.held[i];
        h->written_us = 1;
        h->wrote_us = 0;
      }
    }
    uint8_t buf[REC_MAX];
    settled_row *r = &(*rows)[*n];
    r->m = st->settle_m;
    r->keylen = keylen;
    r->reclen = encode(&v, origin, buf);
    r->key = malloc(keylen ? keylen : 1);
    r->rec = malloc(r->reclen);
    if (!r->key || !r->rec) {
      free(r->key);
      free(r->rec);
      rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
      break;
    }
    memcpy(r->key, key, keylen);
    memcpy(r->rec, buf, r->reclen);
    (*n)++;
  }
  if (rc == AS_OK && s != SQLITE_DONE && s != SQLITE_ROW) rc = as_state_sqlerr(st, err, "settle versions");
  sqlite3_finalize(q);
  return rc;
}

static int64_t store_bytes(as_state *st) {
  sqlite3_stmt *q = NULL;
  int64_t pages = 0, size = 0;
  if (sqlite3_prepare_v2(st->db, "PRAGMA page_count", -1, &q, NULL) == SQLITE_OK &&
      sqlite3_step(q) == SQLITE_ROW)
    pages = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  if (sqlite3_prepare_v2(st->db, "PRAGMA page_size", -1, &q, NULL) == SQLITE_OK &&
      sqlite3_step(q) == SQLITE_ROW)
    size = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  return pages * size;
}

int as_state_compact(as_state *st, int64_t *bytes_before, int64_t *bytes_after, as_error *err) {
  pthread_mutex_lock(&st->mu);
  int rc = AS_OK;
  char *msg = NULL;
  if (st->readonly || st->txn_depth > 0) {
    pthread_mutex_unlock(&st->mu);
    return AS_OK;
  }
  *bytes_before = store_bytes(st);
  if (sqlite3_exec(st->db, "VACUUM", NULL, NULL, &msg) != SQLITE_OK ||
      sqlite3_exec(st->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, &msg) != SQLITE_OK) {
    rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "state store: compacting: %s", msg ? msg : "?");
    sqlite3_free(msg);
  }
  *bytes_after = store_bytes(st);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

uint64_t as_state_version_puts(as_state *st) {
  pthread_mutex_lock(&st->mu);
  uint64_t n = st->puts;
  pthread_mutex_unlock(&st->mu);
  return n;
}

int64_t as_state_versions_settle(as_state *st, const int64_t *before_us, size_t nbefore,
                                 size_t max_rows, as_settle_pass *pass, as_error *err) {
  if (st->readonly || !max_rows) return 0;
  settled_row *rows = malloc(max_rows * sizeof *rows);
  if (!rows) {
    as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
    return -1;
  }
  size_t n = 0, seen = 0;
  int rc = as_state_begin(st, err);
  if (rc != AS_OK) {
    free(rows);
    return -1;
  }
  int64_t waiting = 0;
  rc = settle_scan(st, before_us, nbefore, max_rows, &rows, &n, &seen, &waiting, err);
  if (rc == AS_OK && n) rc = settle_write(st, rows, n, err);
  if (rc == AS_OK && n) cache_clear(st); /* what the cache keeps of those keys is the record before */
  if (rc == AS_OK) {
    rc = as_state_commit(st, err);
  } else {
    as_state_rollback(st);
  }
  if (rc == AS_OK && pass) {
    pass->seen += (int64_t)seen;
    pass->settled += (int64_t)n;
    pass->waiting += waiting;
  }
  if (rc == AS_OK && seen < max_rows) { /* the end: start again from the first key */
    free(st->settle_key);
    st->settle_key = NULL;
    st->settle_keylen = 0;
    st->settle_m = 0;
    if (pass) pass->wrapped = true;
  }
  for (size_t i = 0; i < n; i++) {
    free(rows[i].key);
    free(rows[i].rec);
  }
  free(rows);
  return rc == AS_OK ? (int64_t)n : -1;
}

/* ---------------------------------------------------------------- repairs */

int as_state_repair_add(as_state *st, const char *mapping, const char *key, const char *node,
                        const char *read_from, const char *delta, int64_t *id, as_error *err) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_OK;
  /* one pending repair per key, node and what it writes is enough: the winning row is read
   * when it runs (whoever queued it), and a change written back is the same change */
  {
    if (sqlite3_prepare_v2(st->db,
                           "SELECT id FROM repairs WHERE mapping = ?1 AND key = ?2 AND node = ?3 "
                           "AND delta IS ?4 LIMIT 1",
                           -1, &q, NULL) != SQLITE_OK) {
      rc = as_state_sqlerr(st, err, "queue repair");
      goto done;
    }
    sqlite3_bind_text(q, 1, mapping, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, node, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, delta, -1, SQLITE_STATIC);
    int s = sqlite3_step(q);
    if (s == SQLITE_ROW) {
      if (id) *id = sqlite3_column_int64(q, 0);
      goto done;
    }
    if (s != SQLITE_DONE) {
      rc = as_state_sqlerr(st, err, "queue repair");
      goto done;
    }
    sqlite3_finalize(q);
    q = NULL;
  }
  if (sqlite3_prepare_v2(st->db,
                         "INSERT INTO repairs(created_us, mapping, key, node, read_from, delta) "
                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                         -1, &q, NULL) != SQLITE_OK) {
    rc = as_state_sqlerr(st, err, "queue repair");
    goto done;
  }
  sqlite3_bind_int64(q, 1, as_now_us());
  sqlite3_bind_text(q, 2, mapping, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 3, key, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 4, node, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 5, read_from, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 6, delta, -1, SQLITE_STATIC);
  if (sqlite3_step(q) != SQLITE_DONE) rc = as_state_sqlerr(st, err, "queue repair");
  else if (id) *id = sqlite3_last_insert_rowid(st->db);
done:
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

int as_state_repair_done(as_state *st, int64_t id, as_error *err) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_OK;
  if (sqlite3_prepare_v2(st->db, "DELETE FROM repairs WHERE id = ?1", -1, &q, NULL) != SQLITE_OK) {
    rc = as_state_sqlerr(st, err, "repair done");
  } else {
    sqlite3_bind_int64(q, 1, id);
    if (sqlite3_step(q) != SQLITE_DONE) rc = as_state_sqlerr(st, err, "repair done");
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

static void copy_text(char *dst, size_t n, sqlite3_stmt *q, int i) {
  const unsigned char *t = sqlite3_column_text(q, i);
  snprintf(dst, n, "%s", t ? (const char *)t : "");
}

int as_state_repair_each(as_state *st, int (*fn)(void *ctx, const as_repair_rec *r), void *ctx,
                         as_error *err) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  as_repair_rec *items = NULL;
  size_t n = 0, cap = 0;
  int rc = AS_OK, s = SQLITE_DONE;
  if (sqlite3_prepare_v2(st->db,
                         "SELECT id, created_us, mapping, key, node, read_from, delta FROM repairs "
                         "ORDER BY id",
                         -1, &q, NULL) != SQLITE_OK) {
    rc = as_state_sqlerr(st, err, "read repairs");
  }
  while (rc == AS_OK && (s = sqlite3_step(q)) == SQLITE_ROW) {
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      as_repair_rec *p = realloc(items, cap * sizeof *items);
      if (!p) {
        rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
        break;
      }
      items = p;
    }
    as_repair_rec *r = &items[n++];
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(q, 0);
    r->created_us = sqlite3_column_int64(q, 1);
    copy_text(r->mapping, sizeof r->mapping, q, 2);
    r->key = strdup((const char *)sqlite3_column_text(q, 3));
    copy_text(r->node, sizeof r->node, q, 4);
    copy_text(r->read_from, sizeof r->read_from, q, 5);
    const unsigned char *dj = sqlite3_column_text(q, 6);
    r->delta = dj ? strdup((const char *)dj) : NULL;
  }
  if (rc == AS_OK && s != SQLITE_DONE) rc = as_state_sqlerr(st, err, "read repairs");
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  for (size_t i = 0; i < n; i++) {
    if (rc == AS_OK && items[i].key) rc = fn(ctx, &items[i]);
    free(items[i].key);
    free(items[i].delta);
  }
  free(items);
  return rc;
}

bool as_state_repair_pending(as_state *st, const char *mapping, const char *key, const char *node,
                             bool rewrites_only) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  bool found = false;
  if (sqlite3_prepare_v2(st->db,
                         "SELECT 1 FROM repairs WHERE mapping = ?1 AND key = ?2 AND node = ?3 AND "
                         "(?4 = 0 OR delta IS NOT NULL) LIMIT 1",
                         -1, &q, NULL) == SQLITE_OK) {
    sqlite3_bind_text(q, 1, mapping, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, node, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 4, rewrites_only ? 1 : 0);
    found = sqlite3_step(q) == SQLITE_ROW;
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return found;
}

int as_state_repair_deltas(as_state *st, const char *mapping, const char *key, char ***out,
                           size_t *n, as_error *err) {
  *out = NULL;
  *n = 0;
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_OK;
  size_t cap = 0;
  if (sqlite3_prepare_v2(st->db, "SELECT delta FROM repairs WHERE mapping = ?1 AND key = ?2 AND "
                         "delta IS NOT NULL ORDER BY id", -1, &q, NULL) != SQLITE_OK) {
    rc = as_state_sqlerr(st, err, "read pending repairs");
  } else {
    sqlite3_bind_text(q, 1, mapping, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, key, -1, SQLITE_STATIC);
    int sr = SQLITE_DONE;
    while (rc == AS_OK && (sr = sqlite3_step(q)) == SQLITE_ROW) {
      const char *d = (const char *)sqlite3_column_text(q, 0);
      if (!d) continue;
      if (*n == cap) {
        size_t nc = cap ? cap * 2 : 4;
        char **g = realloc(*out, nc * sizeof *g);
        if (!g) {
          rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
          break;
        }
        *out = g;
        cap = nc;
      }
      if (!((*out)[*n] = strdup(d))) rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
      else (*n)++;
    }
    if (rc == AS_OK && sr != SQLITE_DONE) rc = as_state_sqlerr(st, err, "read pending repairs");
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  if (rc != AS_OK) {
    for (size_t i = 0; i < *n; i++) free((*out)[i]);
    free(*out);
    *out = NULL;
    *n = 0;
  }
  return rc;
}

int64_t as_state_repair_count(as_state *st) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int64_t n = -1;
  if (sqlite3_prepare_v2(st->db, "SELECT count(*) FROM repairs", -1, &q, NULL) == SQLITE_OK &&
      sqlite3_step(q) == SQLITE_ROW)
    n = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return n;
}

/* ---------------------------------------------------------------- batches in flight */

/* Runs the statement *q (prepared from sql on first use, kept until close) with text
 * parameters a, b, c (b and c may be NULL). */
static int exec_bind(as_state *st, sqlite3_stmt **q, const char *sql, const char *a,
                     const char *b, const char *c, as_error *err) {
  pthread_mutex_lock(&st->mu);
  int rc = AS_OK;
  if (!*q && sqlite3_prepare_v2(st->db, sql, -1, q, NULL) != SQLITE_OK) {
    rc = as_state_sqlerr(st, err, "in-flight batches");
    sqlite3_finalize(*q);
    *q = NULL;
  } else {
    sqlite3_bind_text(*q, 1, a, -1, SQLITE_STATIC);
    if (b || c) sqlite3_bind_text(*q, 2, b, -1, SQLITE_STATIC);
    if (c) sqlite3_bind_text(*q, 3, c, -1, SQLITE_STATIC);
    if (sqlite3_step(*q) != SQLITE_DONE) rc = as_state_sqlerr(st, err, "in-flight batches");
    sqlite3_reset(*q);
    sqlite3_clear_bindings(*q);
  }
  pthread_mutex_unlock(&st->mu);
  return rc;
}

int as_state_inflight_put(as_state *st, const char *stream_id, const char *ckpt, const char *keys,
                          as_error *err) {
  return exec_bind(st, &st->inflight_put,
                   "INSERT OR REPLACE INTO inflight(stream_id, ckpt, keys) VALUES (?1, ?2, ?3)",
                   stream_id, ckpt, keys ? keys : "", err);
}

int as_state_inflight_del(as_state *st, const char *stream_id, as_error *err) {
  return exec_bind(st, &st->inflight_del, "DELETE FROM inflight WHERE stream_id = ?1", stream_id,
                   NULL, NULL, err);
}

int as_state_inflight_get(as_state *st, const char *stream_id, char **ckpt, char **keys,
                          as_error *err) {
  *ckpt = *keys = NULL;
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_ENOTFOUND;
  if (sqlite3_prepare_v2(st->db, "SELECT ckpt, keys FROM inflight WHERE stream_id = ?1", -1, &q,
                         NULL) != SQLITE_OK) {
    rc = as_state_sqlerr(st, err, "in-flight batches");
  } else {
    sqlite3_bind_text(q, 1, stream_id, -1, SQLITE_STATIC);
    int s = sqlite3_step(q);
    if (s == SQLITE_ROW) {
      const unsigned char *c = sqlite3_column_text(q, 0), *k = sqlite3_column_text(q, 1);
      *ckpt = c ? strdup((const char *)c) : NULL;
      *keys = strdup(k ? (const char *)k : "");
      rc = *keys ? AS_OK : as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
    } else if (s != SQLITE_DONE) {
      rc = as_state_sqlerr(st, err, "in-flight batches");
    }
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

/* ---------------------------------------------------------------- relays */

int as_state_relay_add(as_state *st, uint16_t via, const char *delta_json, as_error *err) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_OK;
  if (sqlite3_prepare_v2(st->db, "INSERT INTO relays(via, delta, created_us) VALUES (?1, ?2, ?3)",
                         -1, &q, NULL) != SQLITE_OK) {
    rc = as_state_sqlerr(st, err, "relay");
  } else {
    sqlite3_bind_int(q, 1, via);
    sqlite3_bind_text(q, 2, delta_json, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, as_now_us());
    if (sqlite3_step(q) != SQLITE_DONE) rc = as_state_sqlerr(st, err, "relay");
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

typedef struct relay_item {
  int64_t seq;
  char *json;
} relay_item;

int as_state_relay_read(as_state *st, uint16_t via, int64_t after, size_t max,
                        int (*fn)(void *ctx, int64_t seq, const char *delta_json), void *ctx,
                        as_error *err) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  relay_item *items = calloc(max ? max : 1, sizeof *items);
  size_t n = 0;
  int rc = items ? AS_OK : as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
  if (rc == AS_OK && sqlite3_prepare_v2(st->db,
                                        "SELECT seq, delta FROM relays WHERE via = ?1 AND seq > ?2 "
                                        "ORDER BY seq LIMIT ?3",
                                        -1, &q, NULL) != SQLITE_OK)
    rc = as_state_sqlerr(st, err, "read relays");
  if (rc == AS_OK) {
    sqlite3_bind_int(q, 1, via);
    sqlite3_bind_int64(q, 2, after);
    sqlite3_bind_int64(q, 3, (int64_t)max);
    int s;
    while (n < max && (s = sqlite3_step(q)) == SQLITE_ROW) {
      items[n].seq = sqlite3_column_int64(q, 0);
      if (!(items[n++].json = strdup((const char *)sqlite3_column_text(q, 1)))) {
        rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
        break;
      }
    }
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  for (size_t i = 0; i < n; i++) {
    if (rc == AS_OK) rc = fn(ctx, items[i].seq, items[i].json);
    free(items[i].json);
  }
  free(items);
  return rc;
}

int64_t as_state_relay_last(as_state *st, uint16_t via) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int64_t n = 0;
  if (sqlite3_prepare_v2(st->db, "SELECT coalesce(max(seq), 0) FROM relays WHERE via = ?1", -1, &q,
                         NULL) == SQLITE_OK) {
    sqlite3_bind_int(q, 1, via);
    if (sqlite3_step(q) == SQLITE_ROW) n = sqlite3_column_int64(q, 0);
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return n;
}

int as_state_relay_purge(as_state *st, uint16_t via, int64_t upto, as_error *err) {
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_OK;
  if (sqlite3_prepare_v2(st->db, "DELETE FROM relays WHERE via = ?1 AND seq <= ?2", -1, &q, NULL) !=
      SQLITE_OK) {
    rc = as_state_sqlerr(st, err, "purge relays");
  } else {
    sqlite3_bind_int(q, 1, via);
    sqlite3_bind_int64(q, 2, upto);
    if (sqlite3_step(q) != SQLITE_DONE) rc = as_state_sqlerr(st, err, "purge relays");
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

/* ---------------------------------------------------------------- open / upgrade */

static const char *const versions_sql =
    "CREATE TABLE IF NOT EXISTS nodes(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);"
    "CREATE TABLE IF NOT EXISTS mappings(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);"
    "CREATE TABLE IF NOT EXISTS key_prefixes(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);"
    "CREATE TABLE IF NOT EXISTS versions(m INTEGER NOT NULL, part INTEGER NOT NULL DEFAULT 0,"
    "  key BLOB NOT NULL, rec BLOB NOT NULL, deleted INTEGER NOT NULL, updated_us INTEGER NOT NULL,"
    "  PRIMARY KEY(m, part, key)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS versions_tombstones ON versions(updated_us) WHERE deleted = 1;"
    "CREATE TABLE IF NOT EXISTS inflight(stream_id TEXT PRIMARY KEY, ckpt TEXT, keys TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS relays(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  via INTEGER NOT NULL, delta TEXT NOT NULL, created_us INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS relays_via ON relays(via, seq);"
    "CREATE TABLE IF NOT EXISTS repairs(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  created_us INTEGER NOT NULL, mapping TEXT NOT NULL, key TEXT NOT NULL, node TEXT NOT NULL,"
    "  read_from TEXT NOT NULL, delta TEXT);"
    "CREATE INDEX IF NOT EXISTS repairs_key ON repairs(mapping, key, node);";

/* A store written by schema version 1 kept versions as text columns: move them over. */
static int upgrade_v1(as_state *st, as_error *err) {
  sqlite3_stmt *q = NULL;
  bool old = sqlite3_prepare_v2(st->db, "SELECT origin FROM versions LIMIT 0", -1, &q, NULL) == SQLITE_OK;
  sqlite3_finalize(q);
  if (!old) return AS_OK;
  char *msg = NULL;
  if (sqlite3_exec(st->db, "ALTER TABLE versions RENAME TO versions_v1", NULL, NULL, &msg) != SQLITE_OK ||
      sqlite3_exec(st->db, "DROP INDEX IF EXISTS versions_tombstones", NULL, NULL, &msg) != SQLITE_OK ||
      sqlite3_exec(st->db, versions_sql, NULL, NULL, &msg) != SQLITE_OK) {
    int rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "state store upgrade: %s", msg ? msg : "?");
    sqlite3_free(msg);
    return rc;
  }
  int rc = AS_OK, s;
  if (sqlite3_prepare_v2(st->db,
                         "SELECT mapping, key, hlc, origin, deleted, hash, updated_us FROM versions_v1",
                         -1, &q, NULL) != SQLITE_OK)
    return as_state_sqlerr(st, err, "upgrade");
  while (rc == AS_OK && (s = sqlite3_step(q)) == SQLITE_ROW) {
    as_version v;
    memset(&v, 0, sizeof v);
    v.hlc = sqlite3_column_int64(q, 2);
    snprintf(v.origin, sizeof v.origin, "%s", (const char *)sqlite3_column_text(q, 3));
    v.deleted = sqlite3_column_int(q, 4) != 0;
    v.hash = (uint64_t)sqlite3_column_int64(q, 5);
    v.updated_us = sqlite3_column_int64(q, 6);
    rc = as_state_version_put(st, (const char *)sqlite3_column_text(q, 0),
                              (const char *)sqlite3_column_text(q, 1), &v, err);
  }
  sqlite3_finalize(q);
  if (rc == AS_OK && sqlite3_exec(st->db, "DROP TABLE versions_v1", NULL, NULL, &msg) != SQLITE_OK) {
    rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "state store upgrade: %s", msg ? msg : "?");
    sqlite3_free(msg);
  }
  return rc;
}

static bool sql_exists(as_state *st, const char *sql) {
  sqlite3_stmt *q = NULL;
  bool yes = sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW;
  sqlite3_finalize(q);
  return yes;
}

#define KEYS_PACKED_SQL "SELECT 1 FROM meta WHERE key = 'version_keys' AND value = 'packed'"

/* A store written before packed keys (as_state_keys.c) kept each key as its text and live
 * rows' updated_us in a column: every row is written again, packed, in the open transaction. */
static int upgrade_text_keys(as_state *st, as_error *err) {
  if (sql_exists(st, KEYS_PACKED_SQL)) return AS_OK;
  char *msg = NULL;
  int rc = AS_OK, s;
  if (sql_exists(st, "SELECT 1 FROM versions WHERE typeof(key) = 'text' LIMIT 1")) {
    if (sqlite3_exec(st->db, "ALTER TABLE versions RENAME TO versions_text", NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(st->db, "DROP INDEX IF EXISTS versions_tombstones", NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(st->db, versions_sql, NULL, NULL, &msg) != SQLITE_OK)
      goto fail;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db, "SELECT m, key, rec FROM versions_text", -1, &q, NULL) != SQLITE_OK)
      return as_state_sqlerr(st, err, "upgrade");
    while (rc == AS_OK && (s = sqlite3_step(q)) == SQLITE_ROW) {
      const char *mapping = NULL;
      for (size_t i = 0; i < st->nmappings && !mapping; i++)
        if (st->mappings[i].id == sqlite3_column_int64(q, 0)) mapping = st->mappings[i].name;
      as_version v;
      const char *key = (const char *)sqlite3_column_text(q, 1);
      rc = decode(st, sqlite3_column_blob(q, 2), (size_t)sqlite3_column_bytes(q, 2), &v, err);
      if (rc == AS_OK && (!mapping || !key))
        rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "state store upgrade: a version without its mapping");
      if (rc == AS_OK) rc = version_put_locked(st, mapping, key, &v, false, err);
    }
    sqlite3_finalize(q);
    if (rc != AS_OK) return rc;
    if (sqlite3_exec(st->db, "DROP TABLE versions_text", NULL, NULL, &msg) != SQLITE_OK) goto fail;
  }
  if (sqlite3_exec(st->db,
                   "INSERT INTO meta(key, value) VALUES ('version_keys', 'packed') "
                   "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                   NULL, NULL, &msg) != SQLITE_OK)
    goto fail;
  return AS_OK;
fail:
  rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "state store upgrade: %s", msg ? msg : "?");
  sqlite3_free(msg);
  return rc;
}

int as_state_versions_open(as_state *st, as_error *err) {
  char *msg = NULL;
  if (!st->readonly) {
    if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK) goto sqlfail;
    int rc = AS_OK;
    if (sqlite3_exec(st->db, versions_sql, NULL, NULL, &msg) != SQLITE_OK) goto sqlfail_rb;
    if ((rc = load_names(st, "nodes", &st->nodes, &st->nnodes, err)) != AS_OK ||
        (rc = load_names(st, "mappings", &st->mappings, &st->nmappings, err)) != AS_OK)
      goto fail_rb;
    if (sqlite3_prepare_v2(st->db,
                           "INSERT INTO versions(m, part, key, rec, deleted, updated_us) VALUES "
                           "(?1, 0, ?2, ?3, ?4, ?5) ON CONFLICT(m, part, key) DO UPDATE SET "
                           "rec = excluded.rec, deleted = excluded.deleted, "
                           "updated_us = excluded.updated_us",
                           -1, &st->put, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(st->db, "SELECT rec FROM versions WHERE m = ?1 AND part = 0 AND key = ?2",
                           -1, &st->get, NULL) != SQLITE_OK) {
      rc = as_state_sqlerr(st, err, "prepare");
      goto fail_rb;
    }
    if ((rc = upgrade_v1(st, err)) != AS_OK || (rc = upgrade_text_keys(st, err)) != AS_OK) goto fail_rb;
    sqlite3_exec(st->db, "ALTER TABLE repairs ADD COLUMN delta TEXT", NULL, NULL, NULL); /* early v2 */
    if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) goto sqlfail_rb;
    st->cache = calloc(STATE_CACHE_SLOTS, sizeof *st->cache);
    st->cache_tags = calloc(STATE_CACHE_SLOTS, sizeof *st->cache_tags);
    if (!st->cache || !st->cache_tags) {
      free(st->cache);
      free(st->cache_tags);
      st->cache = NULL;
      st->cache_tags = NULL;
      return as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
    }
    return AS_OK;
  fail_rb:
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
  } else {
    /* a reader of a store not yet upgraded by `run` sees no versions (a store of schema
     * version 1) or looks its keys up as text */
    st->keys_text = !sql_exists(st, KEYS_PACKED_SQL);
    as_error ignored;
    if (load_names(st, "nodes", &st->nodes, &st->nnodes, &ignored) != AS_OK ||
        load_names(st, "mappings", &st->mappings, &st->nmappings, &ignored) != AS_OK ||
        sqlite3_prepare_v2(st->db, "SELECT rec FROM versions WHERE m = ?1 AND part = 0 AND key = ?2",
                           -1, &st->get, NULL) != SQLITE_OK) {
      sqlite3_finalize(st->get);
      st->get = NULL;
    }
    return AS_OK;
  }
sqlfail_rb:
  sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
sqlfail : {
  int rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "state store: %s", msg ? msg : sqlite3_errmsg(st->db));
  sqlite3_free(msg);
  return rc;
}
}

void as_state_external_check_locked(as_state *st) {
  if (!st->dv && sqlite3_prepare_v2(st->db, "PRAGMA data_version", -1, &st->dv, NULL) != SQLITE_OK)
    st->dv = NULL;
  int64_t v = -1;
  if (st->dv && sqlite3_step(st->dv) == SQLITE_ROW) v = sqlite3_column_int64(st->dv, 0);
  if (st->dv) sqlite3_reset(st->dv);
  if (v < 0 || v != st->data_version) {
    /* first look, an unreadable version, or another connection committed since: what this
     * process keeps in memory may be stale */
    cache_clear(st);
    as_state_quick_drop_locked(st);
  }
  st->data_version = v;
}

void as_state_versions_close(as_state *st) {
  sqlite3_finalize(st->dv);
  sqlite3_finalize(st->qput);
  st->dv = st->qput = NULL;
  sqlite3_finalize(st->get);
  sqlite3_finalize(st->put);
  sqlite3_finalize(st->inflight_put);
  sqlite3_finalize(st->inflight_del);
  st->get = st->put = st->inflight_put = st->inflight_del = NULL;
  if (st->cache) {
    for (size_t i = 0; i < STATE_CACHE_SLOTS; i++) free(st->cache[i]);
    free(st->cache);
    st->cache = NULL;
  }
  free(st->cache_tags);
  st->cache_tags = NULL;
  as_state_cache_settle(st, false);
  free(st->pending);
  for (size_t i = 0; i < st->nnodes; i++) free(st->nodes[i].name);
  for (size_t i = 0; i < st->nmappings; i++) free(st->mappings[i].name);
  free(st->nodes);
  free(st->mappings);
  as_state_keys_close(st);
  free(st->settle_key);
  st->settle_key = NULL;
}
