/* as_state_quick.c — the quick-verify signatures the state store keeps with the versions
 * (as_state.h, docs/VERIFY.md "--quick").
 *
 * Every as_state_version_put of a store opened read-write (unless as_state_quick_enable turned it
 * off) notes how the key's record changes
 * the contribution of each node: a node marked as holding the record's current versions adds
 * (1, digest) to its bucket ((0, digest) for a tombstone), any other node adds nothing. The
 * sets a transaction touched are read from the store on first use, changed in memory, written
 * back before its COMMIT and forgotten after it (or on ROLLBACK), so several processes writing
 * the store (run, verify --repair, conflicts resolve) keep them right: BEGIN IMMEDIATE
 * serialises them. */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "as_state_int.h"
#include "as_time.h"

typedef struct quick_set {
  char *mapping;
  uint16_t node;
  bool dirty;
  uint64_t changed[AS_QUICK_BUCKETS / 64]; /* buckets to write at the commit */
  as_quick_sig sig[AS_QUICK_BUCKETS];
} quick_set;

void as_state_quick_enable(as_state *st, bool on) {
  pthread_mutex_lock(&st->mu);
  st->quick_on = on && !st->readonly;
  pthread_mutex_unlock(&st->mu);
}

uint32_t as_quick_bucket(const char *key) {
  return (uint32_t)(XXH3_64bits(key, strlen(key)) % AS_QUICK_BUCKETS);
}

static size_t put_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
  return 8;
}

/* XXH3 of: key, NUL, hlc (8 bytes little-endian), origin, NUL, deleted (1 byte), then per
 * column version (col << 16 | origin node id, hlc), 8 bytes each. */
uint64_t as_quick_digest(const char *key, const as_version *v) {
  size_t kl = strlen(key), ol = strnlen(v->origin, sizeof v->origin);
  size_t need = kl + 1 + 8 + ol + 1 + 1 + (size_t)v->ncolv * 16;
  uint8_t stack[512];
  uint8_t *b = need <= sizeof stack ? stack : malloc(need);
  if (!b) return 0;
  size_t n = 0;
  memcpy(b, key, kl + 1);
  n += kl + 1;
  n += put_le64(b + n, (uint64_t)v->hlc);
  memcpy(b + n, v->origin, ol);
  n += ol;
  b[n++] = 0;
  b[n++] = v->deleted ? 1 : 0;
  for (uint8_t i = 0; i < v->ncolv; i++) {
    n += put_le64(b + n, (uint64_t)v->colv[i].col << 16 | v->colv[i].origin);
    n += put_le64(b + n, (uint64_t)v->colv[i].hlc);
  }
  uint64_t h = XXH3_64bits(b, n);
  if (b != stack) free(b);
  return h;
}

/* The node holds the record's row version and every column version. */
static bool current(const as_version *v, uint16_t node) {
  if (!v || !v->origin[0]) return false;
  uint64_t bit = 1ull << (node % 64);
  if (!(v->row_mask & bit)) return false;
  for (uint8_t i = 0; i < v->ncolv; i++)
    if (!(v->colv[i].mask & bit)) return false;
  return true;
}

static quick_set *set_get(as_state *st, const char *mapping, uint16_t node, const char *name,
                          as_error *err) {
  for (size_t i = 0; i < st->nq; i++) {
    quick_set *q = st->qsets[i];
    if (q->node == node && strcmp(q->mapping, mapping) == 0) return q;
  }
  if (st->nq == st->capq) {
    size_t nc = st->capq ? st->capq * 2 : 8;
    quick_set **ns = realloc(st->qsets, nc * sizeof *ns);
    if (!ns) return NULL;
    st->qsets = ns;
    st->capq = nc;
  }
  quick_set *q = calloc(1, sizeof *q);
  if (!q || !(q->mapping = strdup(mapping))) {
    free(q);
    return NULL;
  }
  q->node = node;
  int rc = as_state_quick_load(st, mapping, name, q->sig, err);
  if (rc != AS_OK && rc != AS_ENOTFOUND) {
    free(q->mapping);
    free(q);
    return NULL;
  }
  st->qsets[st->nq++] = q;
  return q;
}

int as_state_quick_note_locked(as_state *st, const char *mapping, const char *key,
                               const as_version *old, const as_version *now, as_error *err) {
  if (!st->quick_on) return AS_OK;
  uint64_t dold = 0, dnow = 0;
  bool bucket_known = false;
  uint32_t bucket = 0;
  for (size_t i = 0; i < st->nnodes; i++) {
    uint16_t node = (uint16_t)st->nodes[i].id;
    bool had = current(old, node), has = current(now, node);
    if (!had && !has) continue;
    if (had && !dold) dold = as_quick_digest(key, old);
    if (has && !dnow) dnow = as_quick_digest(key, now);
    if (had && has && dold == dnow && old->deleted == now->deleted) continue;
    quick_set *q = set_get(st, mapping, node, st->nodes[i].name, err);
    if (!q) return err->message[0] ? AS_ERR : as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
    if (!bucket_known) {
      bucket = as_quick_bucket(key);
      bucket_known = true;
    }
    as_quick_sig *g = &q->sig[bucket];
    if (had) {
      g->sum -= dold;
      g->count -= old->deleted ? 0 : 1;
    }
    if (has) {
      g->sum += dnow;
      g->count += now->deleted ? 0 : 1;
    }
    q->changed[bucket / 64] |= 1ull << (bucket % 64);
    q->dirty = true;
  }
  return AS_OK;
}

static int store_bucket(as_state *st, const quick_set *q, const char *node, uint32_t bucket,
                        as_error *err) {
  if (!st->qput &&
      sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO quick_buckets(mapping, node, bucket, "
                         "count, sum) VALUES (?1, ?2, ?3, ?4, ?5)", -1, &st->qput, NULL) != SQLITE_OK) {
    st->qput = NULL;
    return as_state_sqlerr(st, err, "write quick signatures");
  }
  sqlite3_bind_text(st->qput, 1, q->mapping, -1, SQLITE_STATIC);
  sqlite3_bind_text(st->qput, 2, node, -1, SQLITE_STATIC);
  sqlite3_bind_int(st->qput, 3, (int)bucket);
  sqlite3_bind_int64(st->qput, 4, q->sig[bucket].count);
  sqlite3_bind_int64(st->qput, 5, (int64_t)q->sig[bucket].sum); /* the bits, mod 2^64 */
  int rc = sqlite3_step(st->qput) == SQLITE_DONE ? AS_OK : as_state_sqlerr(st, err, "write quick signatures");
  sqlite3_reset(st->qput);
  return rc;
}

int as_state_quick_flush_locked(as_state *st, as_error *err) {
  for (size_t i = 0; i < st->nq; i++) {
    quick_set *q = st->qsets[i];
    if (!q->dirty) continue;
    const char *name = as_state_node_name(st, q->node); /* the lock is recursive */
    if (!name)
      return as_error_set(err, AS_DOM_STATE, AS_ERR, "state store: node id %u has no name",
                          (unsigned)q->node);
    for (uint32_t w = 0; w < AS_QUICK_BUCKETS / 64; w++) {
      for (uint64_t bits = q->changed[w]; bits; bits &= bits - 1) {
        int rc = store_bucket(st, q, name, w * 64 + (uint32_t)__builtin_ctzll(bits), err);
        if (rc != AS_OK) return rc;
      }
      q->changed[w] = 0;
    }
    q->dirty = false;
  }
  return AS_OK;
}

void as_state_quick_drop_locked(as_state *st) {
  for (size_t i = 0; i < st->nq; i++) {
    free(st->qsets[i]->mapping);
    free(st->qsets[i]);
  }
  st->nq = 0;
}

int as_state_quick_load(as_state *st, const char *mapping, const char *node, as_quick_sig *out,
                        as_error *err) {
  memset(out, 0, AS_QUICK_BUCKETS * sizeof *out);
  pthread_mutex_lock(&st->mu);
  sqlite3_stmt *q = NULL;
  int rc = AS_ENOTFOUND;
  if (sqlite3_prepare_v2(st->db, "SELECT bucket, count, sum FROM quick_buckets WHERE mapping = ?1 "
                         "AND node = ?2", -1, &q, NULL) != SQLITE_OK) {
    /* a state store written before quick signatures existed has no such table */
    if (!strstr(sqlite3_errmsg(st->db), "no such table"))
      rc = as_state_sqlerr(st, err, "read quick signatures");
  } else {
    sqlite3_bind_text(q, 1, mapping, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, node, -1, SQLITE_STATIC);
    int s;
    while ((s = sqlite3_step(q)) == SQLITE_ROW) {
      int64_t b = sqlite3_column_int64(q, 0);
      if (b < 0 || b >= AS_QUICK_BUCKETS) continue;
      out[b].count = sqlite3_column_int64(q, 1);
      out[b].sum = (uint64_t)sqlite3_column_int64(q, 2);
      rc = AS_OK;
    }
    if (s != SQLITE_DONE) rc = as_state_sqlerr(st, err, "read quick signatures");
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->mu);
  return rc;
}
