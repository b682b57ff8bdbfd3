/* as_verify_run.c — a verify run: options, nodes and pairs, the re-check of candidates, and
 * repair (see as_verify.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "as_log.h"
#include "as_metrics.h"
#include "as_router.h"
#include "as_rowhash.h"
#include "as_state.h"
#include "as_time.h"
#include "as_verify_int.h"

#define RECHECK_AUTO_MS 1000
#define RUNNING_WINDOW_US (60 * 1000000LL)

typedef struct vctx {
  const as_config *cfg;
  const as_verify_opts *o;
  vnode *nodes;          /* one per configured node */
  const as_schema **schemas;
  as_state *state;       /* read-only, opened on first need; NULL if there is none */
  bool state_tried;
  int64_t recheck_ms;    /* decided once per run */
} vctx;

/* ------------------------------------------------------------ nodes */

static vnode *node_by_name(vctx *c, const char *name) {
  for (size_t i = 0; name && i < c->cfg->nnodes; i++) {
    if (strcmp(c->cfg->nodes[i].name, name) == 0) return &c->nodes[i];
  }
  return NULL;
}

static int node_ready(vctx *c, vnode *n, as_error *err) {
  if (n->node) return AS_OK;
  int rc = n->ad->init(n->cfg, c->schemas, c->cfg->nschemas, &n->node, err);
  if (rc == AS_OK) rc = n->ad->connect(n->node, err);
  if (rc != AS_OK) {
    if (n->node) n->ad->exit(n->node);
    n->node = NULL;
    as_error_prefix(err, "node %s", n->cfg->name);
    return rc == AS_RETRY ? AS_ERR : rc;
  }
  return AS_OK;
}

static void ctx_free(vctx *c) {
  for (size_t i = 0; c->nodes && i < c->cfg->nnodes; i++) {
    if (c->nodes[i].node) c->nodes[i].ad->exit(c->nodes[i].node);
  }
  free(c->nodes);
  free(c->schemas);
  as_state_close(c->state);
}

static as_state *state(vctx *c) {
  if (c->state_tried) return c->state;
  c->state_tried = true;
  struct stat sb;
  if (!c->cfg->state_path || stat(c->cfg->state_path, &sb) != 0) return NULL;
  as_error err;
  if (as_state_open(c->cfg->state_path, true, &c->state, &err) != AS_OK) {
    AS_LOG(AS_LOG_WARN, "verify", "cannot read the state store: %s", err.message);
    c->state = NULL;
  }
  return c->state;
}

static int recent_stream(void *ctx, const as_stream_stats *s) {
  bool *running = ctx;
  if (s->updated_us > as_now_us() - RUNNING_WINDOW_US && strcmp(s->phase, "stopped") != 0)
    *running = true;
  return 0;
}

/* ------------------------------------------------------------ options and pairs */

static bool has_kind(const as_config *c, bool sql) {
  for (size_t i = 0; i < c->nnodes; i++) {
    if (as_node_kind_is_sql(c->nodes[i].kind) == sql) return true;
  }
  return false;
}

/* Whether a mapping's data can reach both nodes: every pair for direction both; with to-sql
 * (to-mongo) a MongoDB (SQL) node and any other, or two receiving nodes fed by the same
 * sources. */
static bool shares(const as_config *c, const as_schema *s, const as_node_config *a,
                   const as_node_config *b) {
  if (s->direction == AS_DIR_BOTH) return true;
  bool sa = as_node_kind_is_sql(a->kind), sb = as_node_kind_is_sql(b->kind);
  if (sa != sb) return true;
  bool receivers_sql = s->direction == AS_DIR_TO_SQL;
  return sa == receivers_sql && has_kind(c, !receivers_sql);
}

typedef struct vtask {
  const as_schema *s;
  const as_node_config *a, *b;
} vtask;

static bool wanted(const as_verify_opts *o, const as_schema *s) {
  if (!o->nmappings) return true;
  for (size_t i = 0; i < o->nmappings; i++) {
    if (strcmp(o->mappings[i], s->name) == 0) return true;
  }
  return false;
}

static int check_opts(const as_config *cfg, const as_verify_opts *o, as_error *err) {
  for (size_t i = 0; i < o->nmappings; i++) {
    if (!as_config_schema(cfg, o->mappings[i]))
      return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "unknown mapping \"%s\" (%s has %zu "
                          "mappings)", o->mappings[i], cfg->file, cfg->nschemas);
  }
  if ((o->node_a == NULL) != (o->node_b == NULL))
    return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "--nodes needs two node names: A,B");
  const char *names[3] = {o->node_a, o->node_b, o->repair ? o->prefer : NULL};
  for (int i = 0; i < 3; i++) {
    if (names[i] && !as_config_node(cfg, names[i]))
      return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "unknown node \"%s\" (not in %s)",
                          names[i], cfg->file);
  }
  if (o->node_a && strcmp(o->node_a, o->node_b) == 0)
    return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "--nodes names %s twice", o->node_a);
  if (o->prefer && !o->repair)
    return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "--prefer only applies with --repair");
  for (size_t i = 0; i < cfg->nnodes; i++) {
    const as_adapter *ad = as_adapter_find(cfg->nodes[i].kind);
    bool in = !o->node_a || strcmp(cfg->nodes[i].name, o->node_a) == 0 ||
              strcmp(cfg->nodes[i].name, o->node_b) == 0;
    if (in && (!ad || !ad->verify_open))
      return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "node %s: kind %s cannot be verified",
                          cfg->nodes[i].name, cfg->nodes[i].kind);
  }
  return AS_OK;
}

static int push_task(vtask **t, size_t *n, size_t *cap, const as_schema *s,
                     const as_node_config *a, const as_node_config *b) {
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 16;
    vtask *nt = realloc(*t, nc * sizeof *nt);
    if (!nt) return AS_ERR;
    *t = nt;
    *cap = nc;
  }
  (*t)[(*n)++] = (vtask){s, a, b};
  return AS_OK;
}

/* The (mapping, pair) list in config order. */
static int build_tasks(const as_config *cfg, const as_verify_opts *o, vtask **out, size_t *nout,
                       as_error *err) {
  size_t n = 0, cap = 0;
  vtask *t = NULL;
  const as_node_config *na = o->node_a ? as_config_node(cfg, o->node_a) : NULL;
  const as_node_config *nb = o->node_b ? as_config_node(cfg, o->node_b) : NULL;
  for (size_t m = 0; m < cfg->nschemas; m++) {
    const as_schema *s = cfg->schemas[m];
    if (!wanted(o, s)) continue;
    for (size_t i = 0; i < cfg->nnodes; i++) {
      for (size_t j = i + 1; j < cfg->nnodes; j++) {
        const as_node_config *a = &cfg->nodes[i], *b = &cfg->nodes[j];
        if (na) {
          if (!((a == na && b == nb) || (a == nb && b == na))) continue;
          if (a != na) a = na, b = nb; /* keep the order the user gave */
        } else if (cfg->topology.type == AS_TOPO_HUB_AND_SPOKE &&
                   strcmp(a->name, cfg->topology.hub) != 0 &&
                   strcmp(b->name, cfg->topology.hub) != 0) {
          continue;
        }
        if (!shares(cfg, s, a, b)) continue;
        if (push_task(&t, &n, &cap, s, a, b) != AS_OK) {
          free(t);
          return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
        }
      }
    }
  }
  if (n == 0) {
    free(t);
    if (na)
      return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "nodes %s and %s share no%s mapping "
                          "(directions decide which nodes a mapping's data reaches)",
                          na->name, nb->name, o->nmappings ? " selected" : "");
    return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "no pair of nodes shares a%s mapping",
                        o->nmappings ? " selected" : "");
  }
  *out = t;
  *nout = n;
  return AS_OK;
}

/* ------------------------------------------------------------ re-check and repair */

typedef struct vrow {
  as_row r;
  bool has;
  bool bad; /* the node holds the key, but its row cannot be mapped (has is true too) */
} vrow;

static int read_side(vctx *c, vnode *n, const as_schema *s, const as_row *key, vrow *out,
                     as_error *err) {
  int rc = node_ready(c, n, err);
  if (rc != AS_OK) return rc;
  as_row_clear(&out->r);
  if (as_row_init(&out->r, s->ncols) != AS_OK)
    return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  rc = n->ad->read_row(n->node, s, key, &out->r, err);
  out->has = rc == AS_OK;
  if (rc == AS_ENOTFOUND) return AS_OK;
  if (rc != AS_OK) as_error_prefix(err, "node %s: reading mapping %s", n->cfg->name, s->name);
  return rc;
}

static bool same_row(const as_schema *s, const as_row *a, const as_row *b) {
  as_buf x = AS_BUF_INIT, y = AS_BUF_INIT;
  as_error err;
  bool eq = as_rowtext(s, a, &x, &err) == AS_OK && as_rowtext(s, b, &y, &err) == AS_OK &&
            x.len == y.len && memcmp(x.data, y.data, x.len) == 0;
  as_buf_free(&x);
  as_buf_free(&y);
  return eq;
}

static int write_row(vctx *c, vnode *to, const as_schema *s, const as_row *row, const as_row *key,
                     const char *origin, int64_t hlc, as_error *err) {
  as_delta d;
  as_dead_list dead = {0};
  int rc = node_ready(c, to, err);
  if (rc != AS_OK) return rc;
  if (as_delta_init(&d, s, row ? AS_OP_INSERT : AS_OP_DELETE) != AS_OK)
    return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  as_row_clear(&d.row);
  if (as_row_copy(&d.row, row ? row : key) != AS_OK || as_delta_set_origin(&d, origin) != AS_OK) {
    as_delta_clear(&d);
    return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  }
  d.ts_us = as_now_us();
  d.hlc = hlc ? hlc : AS_HLC_FROM_US(d.ts_us);
  rc = to->ad->begin(to->node, err);
  if (rc == AS_OK) rc = to->ad->apply(to->node, &d, 1, &dead, err);
  if (rc == AS_OK) rc = to->ad->commit(to->node, "verify-repair", NULL, err);
  if (rc != AS_OK) to->ad->rollback(to->node);
  if (rc == AS_OK && dead.n) /* this row only: the caller leaves the key alone and goes on */
    rc = as_error_set(err, AS_DOM_ENGINE, AS_EDATA, "%s refused the row: %s", to->cfg->name,
                      dead.items[0].error ? dead.items[0].error : "?");
  as_dead_list_clear(&dead);
  as_delta_clear(&d);
  if (rc != AS_OK) as_error_prefix(err, "repair of mapping %s on %s", s->name, to->cfg->name);
  return rc;
}

/* Who wins a key: --prefer, or the state store's version. *w NULL: nobody known. */
static int winner(vctx *c, const as_schema *s, const as_row *key, vnode **w, bool *deleted,
                  int64_t *hlc, as_error *err) {
  *w = NULL;
  *deleted = false;
  *hlc = 0;
  if (c->o->prefer) {
    *w = node_by_name(c, c->o->prefer);
    return AS_OK;
  }
  as_state *st = state(c);
  if (!st) return AS_OK;
  char *kj = as_key_json_dup(s, key, err);
  if (!kj) return AS_ERR;
  as_version v;
  int rc = as_state_version_get(st, s->name, kj, &v, err);
  free(kj);
  if (rc == AS_ENOTFOUND) return AS_OK;
  if (rc != AS_OK) return rc;
  /* a winner assembled from column versions of several changes is not one node's row: left
   * to the engine's resolver */
  if (v.ncolv > 0) return AS_OK;
  *w = node_by_name(c, v.origin);
  *deleted = v.deleted;
  *hlc = v.hlc;
  return AS_OK;
}

/* Writes the winner's state of one key to the pair's nodes that differ from it. */
static int repair_key(vctx *c, vpair *p, const as_row *key, vrow *rs, as_error *err) {
  vnode *w;
  bool deleted;
  int64_t hlc;
  int rc = winner(c, p->s, key, &w, &deleted, &hlc, err);
  if (rc != AS_OK) return rc;
  if (!w) {
    p->out->unresolved++;
    return AS_OK;
  }
  vrow wr = {0};
  const vrow *target = &wr;
  if (w == p->side[0].vn) target = &rs[0];
  else if (w == p->side[1].vn) target = &rs[1];
  else if (!deleted && (rc = read_side(c, w, p->s, key, &wr, err)) != AS_OK) {
    if (rc != AS_EDATA) goto done;
    AS_LOG(AS_LOG_WARN, "verify", "mapping %s: %s", p->s->name, err->message);
    wr.has = wr.bad = true;
    rc = AS_OK;
  }
  if ((!deleted && !target->has && !c->o->prefer) || (!deleted && target->bad)) {
    p->out->unresolved++; /* the version's origin no longer holds the row, or holds one that
                             cannot be mapped (nothing to copy) */
    goto done;
  }
  bool wrote = false, refused = false;
  for (int i = 0; i < 2 && rc == AS_OK; i++) {
    vnode *x = p->side[i].vn;
    if (x == w) continue;
    bool want = !deleted && target->has;
    if (!want && rs[i].has) rc = write_row(c, x, p->s, NULL, key, w->cfg->name, hlc, err);
    else if (want && (!rs[i].has || rs[i].bad || !same_row(p->s, &rs[i].r, &target->r)))
      rc = write_row(c, x, p->s, &target->r, key, w->cfg->name, hlc, err);
    else continue;
    if (rc == AS_EDATA) { /* a row the node cannot hold (its dead letter says why) */
      AS_LOG(AS_LOG_WARN, "verify", "%s", err->message);
      refused = true;
      rc = AS_OK;
      continue;
    }
    wrote = true;
  }
  if (rc == AS_OK && refused) p->out->unresolved++;
  else if (rc == AS_OK && wrote) p->out->repaired++;
done:
  as_row_clear(&wr.r);
  return rc;
}

static void log_difference(vpair *p, const char *what, const char *key) {
  AS_LOG(AS_LOG_WARN, "verify", "mapping %s, nodes %s,%s: key %s %s", p->s->name, p->out->a,
         p->out->b, key, what);
}

/* Reads a candidate again from both nodes and records it if it still differs. */
static int settle(vctx *c, vpair *p, const vcand *cd, as_error *err) {
  as_row key = {0};
  vrow rs[2] = {{{0}}, {{0}}};
  int rc = vkey_row(p->s, cd->key, &key) == AS_OK
               ? AS_OK
               : as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  for (int i = 0; i < 2 && rc == AS_OK; i++) {
    rc = read_side(c, p->side[i].vn, p->s, &key, &rs[i], err);
    if (rc == AS_EDATA) { /* a row that cannot be mapped is a difference, whatever the other
                             holds; a repair may replace it with the winner's row */
      AS_LOG(AS_LOG_WARN, "verify", "mapping %s: %s", p->s->name, err->message);
      rs[i].has = rs[i].bad = true;
      rc = AS_OK;
    }
  }
  bool unreadable = rs[0].bad || rs[1].bad;
  if (rc == AS_OK && !unreadable && rs[0].has && rs[1].has && same_row(p->s, &rs[0].r, &rs[1].r))
    goto done;
  if (rc != AS_OK || (!rs[0].has && !rs[1].has)) goto done;
  as_verify_keys *l = !rs[1].has ? &p->out->only_a : !rs[0].has ? &p->out->only_b : &p->out->different;
  char *text = as_verify_key_text(p->s, cd->key);
  if (c->o->log_differences && text)
    log_difference(p, l == &p->out->different ? "differs" : "is missing on one node", text);
  if (vkeys_push(l, text) != AS_OK) {
    rc = as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
    goto done;
  }
  if (c->o->repair) rc = repair_key(c, p, &key, rs, err);
done:
  as_row_clear(&key);
  as_row_clear(&rs[0].r);
  as_row_clear(&rs[1].r);
  return rc;
}

static int recheck(vctx *c, vpair *p, as_error *err) {
  if (p->ncand == 0) return AS_OK;
  if (c->recheck_ms < 0) {
    bool running = false;
    as_state *st = state(c);
    if (st) as_state_stream_each(st, recent_stream, &running, NULL);
    c->recheck_ms = running ? RECHECK_AUTO_MS : 0;
  }
  if (c->recheck_ms > 0) {
    struct timespec ts = {c->recheck_ms / 1000, (c->recheck_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  int rc = AS_OK;
  vcand_sort(p);
  for (size_t i = 0; i < p->ncand && rc == AS_OK; i++) rc = settle(c, p, &p->cand[i], err);
  return rc;
}

/* ------------------------------------------------------------ the run */

/* --quick: the two nodes' quick signatures from the state store, bucket by bucket. */
static int quick_compare(as_state *st, const as_schema *s, const char *na, const char *nb,
                         as_verify_pair *out, as_error *err) {
  as_quick_sig *a = calloc(2 * AS_QUICK_BUCKETS, sizeof *a);
  if (!a) return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  as_quick_sig *b = a + AS_QUICK_BUCKETS;
  const char *names[2] = {na, nb};
  int rc = AS_OK;
  for (int i = 0; i < 2 && rc == AS_OK; i++) {
    rc = as_state_quick_load(st, s->name, names[i], i ? b : a, err);
    if (rc == AS_ENOTFOUND)
      rc = as_error_set(err, AS_DOM_STATE, AS_ERR, "no quick signatures of mapping %s on node %s "
                        "in the state store (the connector records them as it applies changes; "
                        "run a full verify)", s->name, names[i]);
  }
  out->quick = true;
  out->segments = AS_QUICK_BUCKETS;
  for (size_t i = 0; rc == AS_OK && i < AS_QUICK_BUCKETS; i++) {
    out->rows_a += a[i].count;
    out->rows_b += b[i].count;
    if (a[i].count != b[i].count || a[i].sum != b[i].sum) out->buckets_differ++;
  }
  free(a);
  return rc;
}

static int quick_task(vctx *c, const vtask *t, as_verify_pair *out, as_error *err) {
  as_state *st = state(c);
  if (!st)
    return as_error_set(err, AS_DOM_STATE, AS_ERR, "--quick needs the state store %s, which does "
                        "not exist (run a full verify)", c->cfg->state_path);
  return quick_compare(st, t->s, t->a->name, t->b->name, out, err);
}

int64_t as_verify_quick_gauges(const as_config *cfg, as_state *st, as_error *err) {
  as_verify_opts o = {.quick = true};
  vtask *t = NULL;
  size_t n = 0;
  int rc = build_tasks(cfg, &o, &t, &n, err);
  if (rc != AS_OK) return rc == AS_EINVAL ? 0 : rc; /* nothing to compare */
  int64_t total = 0;
  for (size_t i = 0; i < n; i++) {
    as_verify_pair x = {0};
    as_error e;
    int q = quick_compare(st, t[i].s, t[i].a->name, t[i].b->name, &x, &e);
    if (q != AS_OK) continue; /* not recorded yet for one of the nodes */
    char nodes[160];
    snprintf(nodes, sizeof nodes, "%s,%s", t[i].a->name, t[i].b->name);
    if (as_metrics_verify_quick(t[i].s->name, nodes, (int64_t)x.buckets_differ))
      AS_LOG(AS_LOG_WARN, "verify", "mapping %s, nodes %s: the quick signatures differ in %zu of "
             "%d segments (a change one node holds and the other does not, in flight or lost; "
             "a full `arraysync verify` names the keys)", t[i].s->name, nodes, x.buckets_differ,
             AS_QUICK_BUCKETS);
    total += (int64_t)x.buckets_differ;
  }
  free(t);
  return total;
}

static int run_task(vctx *c, const vtask *t, as_verify_pair *out, as_error *err) {
  if (c->o->quick) {
    out->s = t->s;
    out->a = t->a->name;
    out->b = t->b->name;
    int64_t q0 = as_monotonic_us();
    int qrc = quick_task(c, t, out, err);
    out->seconds = (double)(as_monotonic_us() - q0) / 1e6;
    return qrc;
  }
  vpair p = {.s = t->s, .out = out};
  out->s = t->s;
  out->a = t->a->name;
  out->b = t->b->name;
  p.side[0].vn = node_by_name(c, t->a->name);
  p.side[1].vn = node_by_name(c, t->b->name);
  int64_t t0 = as_monotonic_us();
  int rc = node_ready(c, p.side[0].vn, err);
  if (rc == AS_OK) rc = node_ready(c, p.side[1].vn, err);
  if (rc == AS_OK) rc = vpair_compare(&p, c->o->hash_on, err);
  if (rc == AS_OK) rc = recheck(c, &p, err);
  out->seconds = (double)(as_monotonic_us() - t0) / 1e6;
  for (size_t i = 0; i < p.ncand; i++) vkey_free(p.s, p.cand[i].key);
  free(p.cand);
  if (rc != AS_OK) as_error_prefix(err, "verify of mapping %s between %s and %s", t->s->name,
                                   t->a->name, t->b->name);
  return rc;
}

int as_verify_run(const as_config *cfg, const as_verify_opts *o, as_verify_report *out,
                  as_error *err) {
  memset(out, 0, sizeof *out);
  vctx c = {.cfg = cfg, .o = o, .recheck_ms = o->recheck_after_ms};
  vtask *tasks = NULL;
  size_t ntasks = 0;
  int rc = check_opts(cfg, o, err);
  if (rc == AS_OK) rc = build_tasks(cfg, o, &tasks, &ntasks, err);
  if (rc != AS_OK) return rc;
  c.nodes = calloc(cfg->nnodes, sizeof *c.nodes);
  c.schemas = calloc(cfg->nschemas ? cfg->nschemas : 1, sizeof *c.schemas);
  out->p = calloc(ntasks, sizeof *out->p);
  if (!c.nodes || !c.schemas || !out->p) {
    rc = as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < cfg->nschemas; i++) c.schemas[i] = cfg->schemas[i];
  for (size_t i = 0; i < cfg->nnodes; i++) {
    c.nodes[i].cfg = &cfg->nodes[i];
    c.nodes[i].ad = as_adapter_find(cfg->nodes[i].kind);
  }
  for (size_t i = 0; i < ntasks && rc == AS_OK; i++) {
    rc = run_task(&c, &tasks[i], &out->p[i], err);
    out->n = i + 1;
  }
done:
  free(tasks);
  ctx_free(&c);
  if (rc != AS_OK) as_verify_report_free(out);
  return rc;
}

int64_t as_verify_periodic(const as_config *cfg, bool repair, as_error *err) {
  as_verify_opts o = {.repair = repair, .recheck_after_ms = RECHECK_AUTO_MS,
                      .log_differences = true};
  as_verify_report r;
  int rc = as_verify_run(cfg, &o, &r, err);
  if (rc != AS_OK) {
    AS_LOG(AS_LOG_ERROR, "verify", "periodic verify failed: %s", err->message);
    return rc;
  }
  int64_t total = 0;
  for (size_t i = 0; i < r.n; i++) {
    const as_verify_pair *x = &r.p[i];
    int64_t n = (int64_t)(x->only_a.n + x->only_b.n + x->different.n);
    if (repair) n -= (int64_t)x->repaired;
    n += (int64_t)(x->unreadable_a + x->unreadable_b);
    char nodes[160];
    snprintf(nodes, sizeof nodes, "%s,%s", x->a, x->b);
    as_metrics_verify_diff(x->s->name, nodes, n);
    total += n;
    AS_LOG(n ? AS_LOG_WARN : AS_LOG_INFO, "verify",
           "mapping %s, nodes %s: %s (rows %lld / %lld, %lld differing keys%s, %.2f s)",
           x->s->name, nodes, n ? "DIFFERENT" : "equal", (long long)x->rows_a,
           (long long)x->rows_b, (long long)(x->only_a.n + x->only_b.n + x->different.n),
           repair ? ", repaired where a winner is known" : "", x->seconds);
  }
  as_metrics_verify_success(as_now_us() / 1000000);
  as_verify_report_free(&r);
  return total;
}
