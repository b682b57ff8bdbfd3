/* as_verify.c — segment comparison and bisection between two nodes (see as_verify.h). */
#include "as_verify.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <xxhash.h>

#include "adapter.h"
#include "as_log.h"
#include "as_router.h"
#include "as_rowhash.h"
#include "as_state.h"
#include "as_time.h"
#include "as_verify_int.h"

#define TOP_ROWS_PER_SEG 1024 /* first cut: about this many rows per segment ... */
#define TOP_MAX_SEGS 256      /* ... and at most this many segments */
#define LEAF_ROWS 128         /* a segment with at most this many rows per side is fetched */
#define SPLIT_PARTS 32        /* a differing segment is cut into up to this many parts */

/* ------------------------------------------------------------ keys */

as_value *vkey_dup(const as_schema *s, const as_value *k) {
  if (!k) return NULL;
  as_value *d = calloc(s->nkey ? s->nkey : 1, sizeof *d);
  if (!d) return NULL;
  for (size_t i = 0; i < s->nkey; i++) {
    if (as_value_copy(&d[i], &k[i]) != AS_OK) {
      vkey_free(s, d);
      return NULL;
    }
  }
  return d;
}

void vkey_free(const as_schema *s, as_value *k) {
  if (!k) return;
  for (size_t i = 0; i < s->nkey; i++) as_value_clear(&k[i]);
  free(k);
}

int vkey_cmp(const as_schema *s, const as_value *a, const as_value *b) {
  for (size_t i = 0; i < s->nkey; i++) {
    int c = as_value_compare(&a[i], &b[i]);
    if (c) return c;
  }
  return 0;
}

/* A row of s->ncols slots with the key columns set from k. */
int vkey_row(const as_schema *s, const as_value *k, as_row *out) {
  if (as_row_init(out, s->ncols) != AS_OK) return AS_ERR;
  for (size_t i = 0; i < s->nkey; i++) {
    as_value v = AS_VALUE_NULL;
    if (as_value_copy(&v, &k[i]) != AS_OK) return AS_ERR;
    as_row_put(out, s->key_idx[i], &v);
  }
  return AS_OK;
}

char *as_verify_key_text(const as_schema *s, const as_value *k) {
  if (s->nkey == 1) {
    json_t *j = as_value_to_json(&k[0], NULL);
    char *t = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    return t;
  }
  as_row r = {0};
  char *t = vkey_row(s, k, &r) == AS_OK ? as_key_json_dup(s, &r, NULL) : NULL;
  as_row_clear(&r);
  return t;
}

int vkeys_push(as_verify_keys *l, char *text) {
  if (!text) return AS_ERR;
  if (l->n == l->cap) {
    size_t nc = l->cap ? l->cap * 2 : 16;
    char **nv = realloc(l->v, nc * sizeof *nv);
    if (!nv) {
      free(text);
      return AS_ERR;
    }
    l->v = nv;
    l->cap = nc;
  }
  l->v[l->n++] = text;
  return AS_OK;
}

static void vkeys_free(as_verify_keys *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof *l);
}

/* ------------------------------------------------------------ both sides at once */

typedef enum { OP_SIGN, OP_ROWS, OP_SPLIT } op_kind;

typedef struct op {
  vside *sd;
  op_kind kind;
  const as_value *lo, *hi, *bounds;
  size_t nb;
  as_seghash *sig;   /* OP_SIGN: nb + 1 */
  ventries *rows;    /* OP_ROWS */
  int64_t nrows;     /* OP_SPLIT */
  size_t parts;
  as_value *out_bounds;
  size_t out_nb;
  int rc;
  as_error err;
} op;

static int collect_row(void *ctx, const as_value *key, uint64_t hash) {
  ventries *l = ctx;
  if (!key) {
    l->unreadable++;
    return AS_OK;
  }
  if (l->n == l->cap) {
    size_t nc = l->cap ? l->cap * 2 : 256;
    ventry *ne = realloc(l->e, nc * sizeof *ne);
    if (!ne) return AS_ERR;
    l->e = ne;
    l->cap = nc;
  }
  as_value *k = vkey_dup(l->s, key);
  if (!k) return AS_ERR;
  l->e[l->n].key = k;
  l->e[l->n].hash = hash;
  l->n++;
  return AS_OK;
}

static void *op_main(void *p) {
  op *o = p;
  const as_adapter *ad = o->sd->vn->ad;
  int64_t t0 = as_monotonic_us();
  switch (o->kind) {
    case OP_SIGN:
      o->rc = ad->verify_sign(o->sd->v, o->lo, o->hi, o->bounds, o->nb, o->sig, &o->err);
      break;
    case OP_ROWS:
      o->rc = ad->verify_rows(o->sd->v, o->lo, o->hi, collect_row, o->rows, &o->err);
      if (o->rc == AS_ERR && !o->err.message[0])
        as_error_set(&o->err, AS_DOM_ENGINE, AS_ERR, "out of memory");
      break;
    case OP_SPLIT:
      o->rc = ad->verify_split(o->sd->v, o->lo, o->hi, o->nrows, o->parts, &o->out_bounds,
                               &o->out_nb, &o->err);
      break;
  }
  if (o->rc != AS_OK)
    as_error_prefix(&o->err, "node %s", o->sd->vn->cfg->name);
  AS_LOG(AS_LOG_TRACE, "verify", "node %s: %s in %.3f s", o->sd->vn->cfg->name,
         o->kind == OP_SIGN ? "signatures" : o->kind == OP_ROWS ? "rows" : "split",
         (double)(as_monotonic_us() - t0) / 1e6);
  return NULL;
}

/* Runs a in this thread and b (if any) in another; the first failure goes to err. */
static int op_both(op *a, op *b, as_error *err) {
  pthread_t th;
  bool threaded = b && pthread_create(&th, NULL, op_main, b) == 0;
  op_main(a);
  if (b && threaded) pthread_join(th, NULL);
  else if (b) op_main(b);
  if (a->rc != AS_OK) {
    *err = a->err;
    return a->rc;
  }
  if (b && b->rc != AS_OK) {
    *err = b->err;
    return b->rc;
  }
  return AS_OK;
}

/* ------------------------------------------------------------ leaves */

static int entry_cmp_s(const as_schema *s, const ventry *a, const ventry *b) {
  return vkey_cmp(s, a->key, b->key);
}

static const as_schema *sort_schema; /* qsort has no context; leaves are sorted one at a time */
static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;

static int entry_cmp(const void *a, const void *b) {
  return entry_cmp_s(sort_schema, a, b);
}

static void sort_entries(ventries *l) {
  pthread_mutex_lock(&sort_mu);
  sort_schema = l->s;
  if (l->n > 1) qsort(l->e, l->n, sizeof *l->e, entry_cmp);
  pthread_mutex_unlock(&sort_mu);
}

void ventries_clear(ventries *l) {
  for (size_t i = 0; i < l->n; i++) vkey_free(l->s, l->e[i].key);
  free(l->e);
  l->e = NULL;
  l->n = l->cap = 0;
}

static int cand_cmp(const void *a, const void *b) {
  return vkey_cmp(sort_schema, ((const vcand *)a)->key, ((const vcand *)b)->key);
}

void vcand_sort(vpair *p) {
  pthread_mutex_lock(&sort_mu);
  sort_schema = p->s;
  if (p->ncand > 1) qsort(p->cand, p->ncand, sizeof *p->cand, cand_cmp);
  pthread_mutex_unlock(&sort_mu);
}

int vcand_push(vpair *p, const as_value *key, int kind) {
  if (p->ncand == p->capcand) {
    size_t nc = p->capcand ? p->capcand * 2 : 64;
    vcand *n = realloc(p->cand, nc * sizeof *n);
    if (!n) return AS_ERR;
    p->cand = n;
    p->capcand = nc;
  }
  as_value *k = vkey_dup(p->s, key);
  if (!k) return AS_ERR;
  p->cand[p->ncand].key = k;
  p->cand[p->ncand].kind = kind;
  p->ncand++;
  return AS_OK;
}

/* Fetches the rows of a segment from the sides that hold any and merges them by key. */
static int leaf(vpair *p, const as_value *lo, const as_value *hi, bool a_has, bool b_has,
                as_error *err) {
  ventries ra = {.s = p->s}, rb = {.s = p->s};
  op oa = {.sd = &p->side[0], .kind = OP_ROWS, .lo = lo, .hi = hi, .rows = &ra};
  op ob = {.sd = &p->side[1], .kind = OP_ROWS, .lo = lo, .hi = hi, .rows = &rb};
  int rc;
  if (a_has && b_has) rc = op_both(&oa, &ob, err);
  else rc = op_both(a_has ? &oa : &ob, NULL, err);
  if (rc == AS_OK) {
    sort_entries(&ra);
    sort_entries(&rb);
    if (p->client) {
      p->out->rows_a += (int64_t)(ra.n + ra.unreadable);
      p->out->rows_b += (int64_t)(rb.n + rb.unreadable);
    }
    p->out->unreadable_a += ra.unreadable;
    p->out->unreadable_b += rb.unreadable;
    size_t i = 0, j = 0;
    while (rc == AS_OK && (i < ra.n || j < rb.n)) {
      int c = i >= ra.n ? 1 : j >= rb.n ? -1 : vkey_cmp(p->s, ra.e[i].key, rb.e[j].key);
      if (c < 0) rc = vcand_push(p, ra.e[i++].key, VC_ONLY_A);
      else if (c > 0) rc = vcand_push(p, rb.e[j++].key, VC_ONLY_B);
      else {
        if (ra.e[i].hash != rb.e[j].hash) rc = vcand_push(p, ra.e[i].key, VC_DIFFERENT);
        i++;
        j++;
      }
    }
    if (rc != AS_OK) rc = as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  }
  ventries_clear(&ra);
  ventries_clear(&rb);
  return rc;
}

/* ------------------------------------------------------------ bisection */

typedef struct seg {
  as_value *lo, *hi; /* owned, NULL = unbounded */
  uint64_t ca, cb;
} seg;

typedef struct segq {
  seg *v;
  size_t n, cap, head;
} segq;

static int segq_push(segq *q, const as_schema *s, const as_value *lo, const as_value *hi,
                     uint64_t ca, uint64_t cb) {
  if (q->n == q->cap) {
    size_t nc = q->cap ? q->cap * 2 : 64;
    seg *nv = realloc(q->v, nc * sizeof *nv);
    if (!nv) return AS_ERR;
    q->v = nv;
    q->cap = nc;
  }
  seg *x = &q->v[q->n];
  x->lo = vkey_dup(s, lo);
  x->hi = vkey_dup(s, hi);
  if ((lo && !x->lo) || (hi && !x->hi)) {
    vkey_free(s, x->lo);
    vkey_free(s, x->hi);
    return AS_ERR;
  }
  x->ca = ca;
  x->cb = cb;
  q->n++;
  return AS_OK;
}

static void segq_free(segq *q, const as_schema *s) {
  for (size_t i = 0; i < q->n; i++) {
    vkey_free(s, q->v[i].lo);
    vkey_free(s, q->v[i].hi);
  }
  free(q->v);
}

static int kind_rank(const char *kind) {
  if (strcmp(kind, "sqlite") == 0) return 0;
  if (strcmp(kind, "postgres") == 0) return 1;
  return 2;
}

/* Which side's keys cut a segment: the cheaper kind, unless it holds much fewer rows. */
static int split_side(const vpair *p, int64_t ca, int64_t cb) {
  if (ca <= 0) return 1;
  if (cb <= 0) return 0;
  int ra = kind_rank(p->side[0].vn->cfg->kind), rb = kind_rank(p->side[1].vn->cfg->kind);
  int pref = ra <= rb ? 0 : 1;
  int64_t cp = pref == 0 ? ca : cb, co = pref == 0 ? cb : ca;
  return cp * 2 < co ? 1 - pref : pref;
}

static void free_bounds(const as_schema *s, as_value *b, size_t nb) {
  if (!b) return;
  for (size_t i = 0; i < nb * s->nkey; i++) as_value_clear(&b[i]);
  free(b);
}

/* Splits [lo, hi) at bounds taken from one side, signs the parts on both, queues those that
 * differ (or handles them as leaves). first: the top-level cut (also counts the rows). */
static int cut(vpair *p, segq *q, const as_value *lo, const as_value *hi, int64_t ca, int64_t cb,
               size_t parts, bool first, as_error *err) {
  const as_schema *s = p->s;
  int side = split_side(p, ca, cb);
  op sp = {.sd = &p->side[side], .kind = OP_SPLIT, .lo = lo, .hi = hi,
           .nrows = side == 0 ? ca : cb, .parts = parts};
  int64_t t0 = as_monotonic_us();
  int rc = op_both(&sp, NULL, err);
  if (rc != AS_OK) return rc;
  int64_t t1 = as_monotonic_us();
  size_t nb = sp.out_nb;
  as_seghash *sa = calloc(nb + 1, sizeof *sa), *sb = calloc(nb + 1, sizeof *sb);
  if (!sa || !sb) {
    rc = as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
    goto done;
  }
  op oa = {.sd = &p->side[0], .kind = OP_SIGN, .lo = lo, .hi = hi, .bounds = sp.out_bounds,
           .nb = nb, .sig = sa};
  op ob = oa;
  ob.sd = &p->side[1];
  ob.sig = sb;
  if ((rc = op_both(&oa, &ob, err)) != AS_OK) goto done;
  AS_LOG(AS_LOG_DEBUG, "verify", "mapping %s: %zu segments cut on %s in %.3f s, signed in %.3f s",
         s->name, nb + 1, p->side[side].vn->cfg->name, (double)(t1 - t0) / 1e6,
         (double)(as_monotonic_us() - t1) / 1e6);
  p->out->segments += nb + 1;
  for (size_t i = 0; i <= nb; i++) {
    if (first) {
      p->out->rows_a += (int64_t)sa[i].count;
      p->out->rows_b += (int64_t)sb[i].count;
    }
    if (sa[i].count == sb[i].count && sa[i].sum == sb[i].sum) continue;
    const as_value *slo = i == 0 ? lo : sp.out_bounds + (i - 1) * s->nkey;
    const as_value *shi = i == nb ? hi : sp.out_bounds + i * s->nkey;
    if (nb == 0 && !first) { /* could not cut (one key?): fetch it */
      rc = leaf(p, slo, shi, sa[i].count > 0, sb[i].count > 0, err);
    } else if (segq_push(q, s, slo, shi, sa[i].count, sb[i].count) != AS_OK) {
      rc = as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
    }
    if (rc != AS_OK) break;
  }
done:
  free(sa);
  free(sb);
  free_bounds(s, sp.out_bounds, sp.out_nb);
  return rc;
}

/* Server hashing: top-level cut, then bisect every differing segment down to leaves. */
static int bisect(vpair *p, int64_t est, as_error *err) {
  segq q = {0};
  size_t parts = (size_t)(est / TOP_ROWS_PER_SEG);
  if (parts < 1) parts = 1;
  if (parts > TOP_MAX_SEGS) parts = TOP_MAX_SEGS;
  int rc = cut(p, &q, NULL, NULL, est, est, parts, true, err);
  while (rc == AS_OK && q.head < q.n) {
    seg x = q.v[q.head++];
    uint64_t mx = x.ca > x.cb ? x.ca : x.cb;
    if (x.ca == 0 || x.cb == 0 || mx <= LEAF_ROWS) {
      rc = leaf(p, x.lo, x.hi, x.ca > 0, x.cb > 0, err);
      continue;
    }
    size_t n = (size_t)((mx + LEAF_ROWS - 1) / LEAF_ROWS);
    if (n > SPLIT_PARTS) n = SPLIT_PARTS;
    if (n < 2) n = 2;
    rc = cut(p, &q, x.lo, x.hi, (int64_t)x.ca, (int64_t)x.cb, n, false, err);
  }
  segq_free(&q, p->s);
  return rc;
}

/* Client hashing: every row is fetched once anyway, so the top-level segments are leaves. */
static int scan_client(vpair *p, int64_t est, as_error *err) {
  size_t parts = (size_t)(est / (TOP_ROWS_PER_SEG * 16));
  if (parts < 1) parts = 1;
  if (parts > TOP_MAX_SEGS) parts = TOP_MAX_SEGS;
  int side = split_side(p, est, est);
  op sp = {.sd = &p->side[side], .kind = OP_SPLIT, .nrows = est, .parts = parts};
  int rc = op_both(&sp, NULL, err);
  for (size_t i = 0; rc == AS_OK && i <= sp.out_nb; i++) {
    const as_value *lo = i == 0 ? NULL : sp.out_bounds + (i - 1) * p->s->nkey;
    const as_value *hi = i == sp.out_nb ? NULL : sp.out_bounds + i * p->s->nkey;
    rc = leaf(p, lo, hi, true, true, err);
    p->out->segments++;
  }
  free_bounds(p->s, sp.out_bounds, sp.out_nb);
  return rc;
}

/* ------------------------------------------------------------ one mapping, one pair */

static void close_sides(vpair *p) {
  for (int i = 0; i < 2; i++) {
    if (p->side[i].v) p->side[i].vn->ad->verify_close(p->side[i].v);
    p->side[i].v = NULL;
  }
}

static int open_sides(vpair *p, bool client, as_error *err) {
  for (int i = 0; i < 2; i++) {
    vnode *vn = p->side[i].vn;
    int rc = vn->ad->verify_open(vn->node, p->s, client, &p->side[i].v, err);
    if (rc != AS_OK) {
      as_error_prefix(err, "node %s", vn->cfg->name);
      close_sides(p);
      return rc;
    }
  }
  return AS_OK;
}

static int estimate(vpair *p, int64_t *est, as_error *err) {
  int64_t e[2] = {0, 0};
  for (int i = 0; i < 2; i++) {
    int rc = p->side[i].vn->ad->verify_estimate(p->side[i].v, &e[i], err);
    if (rc != AS_OK) {
      as_error_prefix(err, "node %s", p->side[i].vn->cfg->name);
      return rc;
    }
  }
  *est = e[0] > e[1] ? e[0] : e[1];
  return AS_OK;
}

int vpair_compare(vpair *p, as_hash_on hash_on, as_error *err) {
  bool client = hash_on == AS_HASH_CLIENT;
  if (p->s->nchildren && !client) {
    /* child tables: rows are hashed here (a database cannot rebuild an array from its child
     * rows the way the other side holds it; as_rowtext normalises both) */
    snprintf(p->out->note, sizeof p->out->note, "hashing on the client: mapping %s has child "
             "tables", p->s->name);
    client = true;
  }
  int rc = open_sides(p, client, err);
  if (rc == AS_ENOTFOUND && hash_on == AS_HASH_AUTO) {
    snprintf(p->out->note, sizeof p->out->note, "hashing on the client: %s", err->message);
    client = true;
    rc = open_sides(p, true, err);
  } else if (rc == AS_ENOTFOUND) {
    rc = AS_ERR; /* --hash-on server was asked for */
  }
  if (rc != AS_OK) return rc;
  p->client = p->out->client = client;
  int64_t est = 0;
  rc = estimate(p, &est, err);
  if (rc == AS_OK) rc = client ? scan_client(p, est, err) : bisect(p, est, err);
  for (int i = 0; i < 2; i++) {
    uint64_t b = p->side[i].v ? p->side[i].vn->ad->verify_bytes(p->side[i].v) : 0;
    if (i == 0) p->out->bytes_a = b;
    else p->out->bytes_b = b;
  }
  close_sides(p);
  return rc;
}

/* ------------------------------------------------------------ report */

void as_verify_report_free(as_verify_report *r) {
  if (!r) return;
  for (size_t i = 0; i < r->n; i++) {
    vkeys_free(&r->p[i].only_a);
    vkeys_free(&r->p[i].only_b);
    vkeys_free(&r->p[i].different);
  }
  free(r->p);
  memset(r, 0, sizeof *r);
}

size_t as_verify_pair_differences(const as_verify_pair *x) {
  return x->only_a.n + x->only_b.n + x->different.n + x->buckets_differ + x->unreadable_a +
         x->unreadable_b;
}

bool as_verify_report_equal(const as_verify_report *r, bool after_repair) {
  for (size_t i = 0; i < r->n; i++) {
    const as_verify_pair *x = &r->p[i];
    size_t nd = x->only_a.n + x->only_b.n + x->different.n;
    if (x->buckets_differ || x->unreadable_a || x->unreadable_b) return false;
    if (after_repair ? x->unresolved > 0 || x->repaired < nd : nd > 0) return false;
  }
  return true;
}

