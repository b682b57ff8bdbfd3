/* as_engine.c — the pipeline; see as_engine.h. */
#include "as_engine.h"
#include "as_time.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <xxhash.h>

#include "adapter.h"
#include "as_bson.h"
#include "as_hash.h"
#include "as_log.h"
#include "as_metrics.h"
#include "as_router.h"
#include "as_state.h"

#define SNAPSHOT_PREFIX "as-snapshot:"
#define IDLE_CHECKPOINT_US (30 * 1000000LL)
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define RACE_WINDOW_US 100000 /* clock skew allowance between database servers and us */

typedef struct eng_node {
  const as_node_config *cfg;
  const as_adapter *ad;
  as_node *node;
  const as_schema **schemas;
  size_t nschemas;
  pthread_mutex_t mu; /* sink side and admin calls: one thread at a time */
  char comp[96];
} eng_node;

typedef struct engine engine;

typedef struct eng_pair {
  engine *e;
  eng_node *src, *dst;
  char stream_id[160];
  char comp[200];
  pthread_t th;
  bool started;
  as_stream *stream;
  char *ckpt;            /* last committed checkpoint */
  int64_t last_commit_us;
  bool pending_pos;      /* a newer position than ckpt is known but not committed */
  as_stream_stats stats;
  bool streaming;
  int64_t idle_since_us; /* 0 = busy */
  int failed;            /* AS_ERR: stopped for good */
  char error[512];
  bool outage;           /* in a retry loop: log once per outage */
  bool force_snapshot;   /* ignore the checkpoint: copy every mapping again */
  as_stream_mapping_stats *mstats; /* per mapping counters, one per config schema */
  int64_t last_stats_us;
} eng_pair;

struct engine {
  const as_config *cfg;
  const as_engine_opts *o;
  as_state *state;
  eng_node *nodes;
  size_t nnodes;
  eng_pair *pairs;
  size_t npairs;
  volatile int stop;
  pthread_mutex_t progress_mu;
  pthread_mutex_t apply_mu; /* resolve + apply of every pair, serialised */
};


static bool stopping(engine *e) { return e->stop || (e->o->stop && *e->o->stop); }

static void sleep_ms(engine *e, int64_t ms) {
  while (ms > 0 && !stopping(e)) {
    int64_t step = ms > 50 ? 50 : ms;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = step * 1000000L};
    nanosleep(&ts, NULL);
    ms -= step;
  }
}

static int64_t backoff_ms(int attempt) {
  int64_t ms = BACKOFF_MIN_MS;
  for (int i = 0; i < attempt && ms < BACKOFF_MAX_MS; i++) ms *= 2;
  if (ms > BACKOFF_MAX_MS) ms = BACKOFF_MAX_MS;
  return ms / 2 + (int64_t)(rand() % (int)(ms / 2 + 1)); /* jitter: [ms/2, ms] */
}

/* ---------- key helpers ---------- */

static char *key_json(const as_schema *s, const as_row *r) { return as_key_json_dup(s, r, NULL); }

static const as_schema *lookup_schema(void *ctx, const char *mapping) {
  return as_config_schema((const as_config *)ctx, mapping);
}

static eng_node *find_node(engine *e, const char *name) {
  for (size_t i = 0; name && i < e->nnodes; i++) {
    if (strcmp(e->nodes[i].cfg->name, name) == 0) return &e->nodes[i];
  }
  return NULL;
}

static bool node_has_schema(const eng_node *n, const as_schema *s) {
  for (size_t i = 0; i < n->nschemas; i++) {
    if (n->schemas[i] == s) return true;
  }
  return false;
}

/* ---------- nodes ---------- */

static int node_connect(engine *e, eng_node *n, as_error *err) {
  int attempt = 0;
  for (;;) {
    pthread_mutex_lock(&n->mu);
    int rc = n->ad->connect(n->node, err);
    pthread_mutex_unlock(&n->mu);
    if (rc != AS_RETRY) {
      if (rc == AS_OK && attempt > 0) AS_LOG(AS_LOG_INFO, n->comp, "connected after %d retries", attempt);
      return rc;
    }
    if (attempt == 0) AS_LOG(AS_LOG_WARN, n->comp, "cannot connect (%s); retrying with backoff", err->message);
    if (stopping(e)) return AS_RETRY;
    sleep_ms(e, backoff_ms(attempt++));
  }
}

static void nodes_free(engine *e) {
  for (size_t i = 0; i < e->nnodes; i++) {
    eng_node *n = &e->nodes[i];
    if (n->ad && n->node) n->ad->exit(n->node);
    free(n->schemas);
    pthread_mutex_destroy(&n->mu);
  }
  free(e->nodes);
  e->nodes = NULL;
  e->nnodes = 0;
}

static int nodes_init(engine *e, bool connect, as_error *err) {
  const as_config *c = e->cfg;
  e->nodes = calloc(c->nnodes, sizeof *e->nodes);
  if (!e->nodes) return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  for (size_t i = 0; i < c->nnodes; i++) {
    eng_node *n = &e->nodes[i];
    pthread_mutex_init(&n->mu, NULL);
    e->nnodes = i + 1;
    n->cfg = &c->nodes[i];
    snprintf(n->comp, sizeof n->comp, "node:%s:%s", n->cfg->kind, n->cfg->name);
    n->ad = as_adapter_find(n->cfg->kind);
    if (!n->ad || n->ad->abi != AS_ADAPTER_ABI) {
      return as_error_set(err, AS_DOM_ENGINE, AS_EINVAL, "node %s: no adapter for kind %s",
                          n->cfg->name, n->cfg->kind);
    }
    n->schemas = calloc(c->nschemas ? c->nschemas : 1, sizeof *n->schemas);
    if (!n->schemas) return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
    for (size_t k = 0; k < c->nschemas; k++) n->schemas[n->nschemas++] = c->schemas[k];
    int rc = n->ad->init(n->cfg, n->schemas, n->nschemas, &n->node, err);
    if (rc != AS_OK) {
      as_error_prefix(err, "node %s", n->cfg->name);
      return rc;
    }
    if (connect) {
      rc = node_connect(e, n, err);
      if (rc != AS_OK) {
        as_error_prefix(err, "node %s", n->cfg->name);
        return rc;
      }
    }
  }
  return AS_OK;
}

int as_engine_install(const as_config *cfg, as_error *err) {
  as_engine_opts o = {0};
  engine e = {.cfg = cfg, .o = &o};
  int rc = nodes_init(&e, true, err);
  for (size_t i = 0; rc == AS_OK && i < e.nnodes; i++) {
    rc = e.nodes[i].ad->install(e.nodes[i].node, err);
    if (rc != AS_OK) as_error_prefix(err, "node %s: install", e.nodes[i].cfg->name);
    else AS_LOG(AS_LOG_INFO, e.nodes[i].comp, "installed (tables, bookkeeping, capture)");
  }
  nodes_free(&e);
  return rc;
}

int as_engine_uninstall(const as_config *cfg, as_error *err) {
  as_engine_opts o = {0};
  engine e = {.cfg = cfg, .o = &o};
  int rc = nodes_init(&e, true, err);
  for (size_t i = 0; rc == AS_OK && i < e.nnodes; i++) {
    rc = e.nodes[i].ad->uninstall(e.nodes[i].node, err);
    if (rc != AS_OK) as_error_prefix(err, "node %s: uninstall", e.nodes[i].cfg->name);
    else AS_LOG(AS_LOG_INFO, e.nodes[i].comp, "uninstalled (user data kept)");
  }
  nodes_free(&e);
  return rc;
}

/* ---------- stats ---------- */

enum { C_CAPTURED, C_APPLIED, C_SKIPPED, C_CONFLICTS, C_DEAD };

/* Counts for the stream and for the mapping (status shows both). */
static void count(eng_pair *p, const as_schema *s, int which, int64_t n) {
  as_stream_mapping_stats *m = NULL;
  for (size_t i = 0; s && i < p->e->cfg->nschemas; i++) {
    if (p->e->cfg->schemas[i] == s) m = &p->mstats[i];
  }
  int64_t *tot[] = {&p->stats.captured, &p->stats.applied, &p->stats.skipped,
                    &p->stats.conflicts, &p->stats.dead};
  *tot[which] += n;
  if (m) {
    int64_t *per[] = {&m->captured, &m->applied, &m->skipped, &m->conflicts, &m->dead};
    *per[which] += n;
  }
}

static void pair_save_stats(eng_pair *p, const char *phase) {
  as_stream_stats *s = &p->stats;
  p->last_stats_us = as_now_us();
  for (size_t i = 0; i < p->e->cfg->nschemas; i++) {
    as_state_stream_mapping_put(p->e->state, &p->mstats[i], NULL);
  }
  snprintf(s->phase, sizeof s->phase, "%s", phase);
  snprintf(s->checkpoint, sizeof s->checkpoint, "%s", p->ckpt ? p->ckpt : "");
  snprintf(s->error, sizeof s->error, "%s", p->error);
  s->updated_us = as_now_us();
  as_error err;
  if (as_state_stream_put(p->e->state, s, &err) != AS_OK) {
    AS_LOG(AS_LOG_WARN, p->comp, "%s", err.message);
  }
}

/* ---------- resolving and applying one batch ---------- */

typedef struct repair {
  const as_schema *schema;
  char *key;         /* canonical key JSON */
  as_row keyrow;
  char winner[64];   /* node holding the winner (read from there) */
  as_delta *rewrite; /* set: write this winning delta back to the source (it was overwritten
                        there by an older value in a race); else read the winner from `winner` */
  as_version v;      /* the version the repair writes (stamped afterwards) */
  size_t at;         /* index of the delta in the batch that caused it */
  bool cancelled;
} repair;

/* A version decided in this batch, by key: later deltas of the same key see it. */
typedef struct decided {
  const as_schema *schema;
  char *key;
  as_version v;
  bool dirty;        /* to be written to the state store */
  bool wrote_dst;    /* this batch writes the key to the target */
  bool wrote_src;    /* this batch writes the key back to the source (repair / rewrite) */
  size_t last_local_win; /* index+1 of the latest winning local change in this batch */
  struct decided *next;
} decided;

#define DECIDED_BUCKETS 1024

typedef struct work {
  as_delta **kept;
  size_t nkept, capkept;
  repair *repairs;
  size_t nrepairs, caprepairs;
  decided *buckets[DECIDED_BUCKETS];
  decided **all;     /* every decided entry, in first-seen order */
  size_t nall, capall;
} work;

static void work_reset(work *w) {
  for (size_t i = 0; i < w->nrepairs; i++) {
    as_row_clear(&w->repairs[i].keyrow);
    free(w->repairs[i].key);
    if (w->repairs[i].rewrite) {
      as_delta_clear(w->repairs[i].rewrite);
      free(w->repairs[i].rewrite);
    }
  }
  for (size_t i = 0; i < w->nall; i++) {
    free(w->all[i]->key);
    free(w->all[i]);
  }
  memset(w->buckets, 0, sizeof w->buckets);
  w->nall = 0;
  w->nkept = 0;
  w->nrepairs = 0;
}

static void work_free(work *w) {
  work_reset(w);
  free(w->kept);
  free(w->repairs);
  free(w->all);
  memset(w, 0, sizeof *w);
}

static int grow_array(void **arr, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return AS_OK;
  size_t ncap = *cap ? *cap * 2 : 64;
  while (ncap < need) ncap *= 2;
  void *p = realloc(*arr, ncap * size);
  if (!p) return AS_ERR;
  *arr = p;
  *cap = ncap;
  return AS_OK;
}

static int push_kept(work *w, as_delta *d) {
  if (grow_array((void **)&w->kept, &w->capkept, w->nkept + 1, sizeof *w->kept) != AS_OK)
    return AS_ERR;
  w->kept[w->nkept++] = d;
  return AS_OK;
}

static decided *decided_find(work *w, const as_schema *s, const char *key, bool create) {
  size_t h = (size_t)(XXH3_64bits(key, strlen(key)) ^ (uintptr_t)s) % DECIDED_BUCKETS;
  for (decided *x = w->buckets[h]; x; x = x->next) {
    if (x->schema == s && strcmp(x->key, key) == 0) return x;
  }
  if (!create) return NULL;
  if (grow_array((void **)&w->all, &w->capall, w->nall + 1, sizeof *w->all) != AS_OK) return NULL;
  decided *x = calloc(1, sizeof *x);
  if (!x || !(x->key = strdup(key))) {
    free(x);
    return NULL;
  }
  x->schema = s;
  x->next = w->buckets[h];
  w->buckets[h] = x;
  w->all[w->nall++] = x;
  return x;
}

static repair *push_repair(work *w, const as_delta *d, const char *key, const char *winner,
                           const as_version *v) {
  if (grow_array((void **)&w->repairs, &w->caprepairs, w->nrepairs + 1, sizeof *w->repairs) !=
      AS_OK)
    return NULL;
  repair *r = &w->repairs[w->nrepairs];
  memset(r, 0, sizeof *r);
  r->schema = d->schema;
  r->v = *v;
  if (!(r->key = strdup(key)) || as_row_init(&r->keyrow, d->row.n) != AS_OK) {
    free(r->key);
    return NULL;
  }
  for (size_t k = 0; k < d->schema->nkey; k++) {
    size_t i = d->schema->key_idx[k];
    as_value val;
    if (as_value_copy(&val, &d->row.v[i]) != AS_OK) {
      as_row_clear(&r->keyrow);
      free(r->key);
      return NULL;
    }
    as_row_put(&r->keyrow, i, &val);
  }
  snprintf(r->winner, sizeof r->winner, "%s", winner);
  w->nrepairs++;
  return r;
}

static repair *push_rewrite(work *w, const as_delta *d, const char *key, const as_version *v) {
  repair *r = push_repair(w, d, key, d->origin, v);
  if (!r) return NULL;
  r->rewrite = calloc(1, sizeof *r->rewrite);
  if (!r->rewrite || as_delta_copy(r->rewrite, d) != AS_OK) {
    free(r->rewrite);
    r->rewrite = NULL;
    return NULL;
  }
  return r;
}

/* The version a delta carries: the mapping's clock column when present, else its hlc. */
static int64_t delta_hlc(const as_delta *d) {
  const as_schema *s = d->schema;
  if (s->conflict.clock_idx >= 0 && as_row_has(&d->row, (size_t)s->conflict.clock_idx)) {
    const as_value *v = &d->row.v[s->conflict.clock_idx];
    if (v->type == AS_T_TIMESTAMP) return AS_HLC_FROM_US(v->u.ts_us);
    if (v->type == AS_T_INT64) return v->u.i;
  }
  return d->hlc ? d->hlc : AS_HLC_FROM_US(d->ts_us);
}

static void record_dead(eng_pair *p, const as_schema *s, const char *stage, const char *key,
                        const char *raw, const char *delta_json, const char *error,
                        const char *pos) {
  as_error err;
  if (as_state_dead_add(p->e->state, s ? s->name : NULL, p->src->cfg->name, p->dst->cfg->name,
                        stage, key, raw, delta_json, error, pos, &err) != AS_OK) {
    AS_LOG(AS_LOG_ERROR, p->comp, "cannot record dead letter: %s", err.message);
  }
  count(p, s, C_DEAD, 1);
  as_metrics_add(p->src->cfg->name, p->dst->cfg->name, s ? s->name : "", AS_M_DEAD, 1);
  AS_LOG(AS_LOG_WARN, p->comp, "dead letter (%s) mapping %s key %s: %s", stage,
         s ? s->name : "?", key ? key : "?", error ? error : "");
}

/* Whether the delta goes to this pair's target at all (mapping, direction, topology). */
static bool routed(eng_pair *p, const as_delta *d, bool snapshot) {
  const char *origin = d->origin ? d->origin : p->src->cfg->name;
  return d->schema && node_has_schema(p->dst, d->schema) &&
         as_route_direction(p->e->cfg, d->schema, origin, p->dst->cfg->name) &&
         as_route_forward(p->e->cfg, p->src->cfg->name, p->dst->cfg->name, origin,
                          d->echo && !snapshot);
}

/* Decides every delta of the batch against the state store (and the versions decided earlier
 * in this batch); fills w->kept (to apply), w->repairs and the decided versions. Writes
 * nothing. snapshot: the deltas are rows copied by a snapshot (they take the state's version
 * if there is one). Caller holds the engine's apply lock. */
static int resolve_batch(eng_pair *p, as_batch *b, bool snapshot, work *w, as_error *err) {
  engine *e = p->e;
  const char *src = p->src->cfg->name, *dst = p->dst->cfg->name;
  for (size_t i = 0; i < b->n; i++) {
    as_delta *d = &b->d[i];
    const as_schema *s = d->schema;
    if (!d->origin) as_delta_set_origin(d, src);
    if (!routed(p, d, snapshot)) {
      count(p, s, C_SKIPPED, 1);
      as_metrics_add(src, dst, s ? s->name : "", AS_M_SKIPPED, 1);
      continue;
    }
    char *key = key_json(s, &d->row);
    decided *x = key ? decided_find(w, s, key, true) : NULL;
    if (!x) {
      free(key);
      return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
    }
    bool found = x->v.origin[0] != '\0';
    if (!found) {
      int g = as_state_version_get(e->state, s->name, key, &x->v, err);
      if (g != AS_OK && g != AS_ENOTFOUND) {
        free(key);
        return g;
      }
      found = g == AS_OK;
      if (!found) memset(&x->v, 0, sizeof x->v);
    }
    as_version cur = x->v;
    if (snapshot || d->echo) {
      /* A copied row or a relayed echo is the value the state already knows, if any. */
      if (found) {
        d->hlc = cur.hlc;
        as_delta_set_origin(d, cur.origin);
        if (cur.deleted && d->op != AS_OP_DELETE) {
          free(key);
          count(p, s, C_SKIPPED, 1);
          continue;
        }
      } else {
        d->hlc = snapshot ? 0 : delta_hlc(d);
      }
    } else {
      d->hlc = delta_hlc(d);
    }
    int cmp = found ? as_version_compare(d->hlc, d->origin, cur.hlc, cur.origin) : 1;
    bool local = !d->echo && !snapshot && strcmp(d->origin, src) == 0;
    if (cmp < 0) {
      /* Lost last-write-wins: not applied. A local change that lost means its node holds a
       * value older than the winner: write the winner back there. */
      count(p, s, C_CONFLICTS, 1);
      as_metrics_add(src, dst, s->name, AS_M_CONFLICTS, 1);
      AS_LOG(AS_LOG_DEBUG, p->comp, "mapping %s key %s: change from %s (hlc %lld) lost to %s (hlc %lld)",
             s->name, key, d->origin, (long long)d->hlc, cur.origin, (long long)cur.hlc);
      if (local) {
        char *dj = as_delta_to_json_string(d, NULL);
        as_state_conflict_add(e->state, s->name, key, dj, NULL, cur.origin, "lww", NULL);
        free(dj);
        repair *r = push_repair(w, d, key, cur.origin, &cur);
        if (!r) {
          free(key);
          return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
        }
        r->at = i;
      }
      free(key);
      continue;
    }
    as_version v;
    memset(&v, 0, sizeof v);
    v.hlc = d->hlc;
    snprintf(v.origin, sizeof v.origin, "%s", d->origin);
    v.deleted = d->op == AS_OP_DELETE;
    /* v.hash stays 0: row hashes are for verify (not built yet); hashing every applied row
     * here cost a fifth of the connector's CPU (bench/README.md) */
    if (local) x->last_local_win = i + 1;
    if (cmp > 0 && found && local && as_version_written(&cur, src) >= d->ts_us - RACE_WINDOW_US) {
      /* The connector wrote this key to this source after this local change was committed
       * there, so the source may hold that older value: write the change back. */
      repair *r = push_rewrite(w, d, key, &v);
      if (!r) {
        free(key);
        return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
      }
      r->at = i;
    }
    if (cmp > 0) {
      snprintf(v.writes, sizeof v.writes, "%s", cur.writes); /* the write record carries over */
      x->v = v;
      x->dirty = true;
    }
    x->wrote_dst = true;
    AS_LOG(AS_LOG_TRACE, p->comp, "mapping %s key %s: %s from %s%s (hlc %lld) %s %s (hlc %lld)",
           s->name, key, as_op_name(d->op), d->origin, d->echo ? " (echo)" : "",
           (long long)d->hlc, cmp > 0 ? "wins over" : "equals", found ? cur.origin : "nothing",
           (long long)cur.hlc);
    free(key);
    if (push_kept(w, d) != AS_OK) return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  }
  /* A later local change of the same key in this batch won: the source holds that newer
   * value, and a repair or rewrite of an earlier change would clobber it. */
  for (size_t i = 0; i < w->nrepairs; i++) {
    repair *r = &w->repairs[i];
    decided *x = decided_find(w, r->schema, r->key, false);
    if (x && x->last_local_win > r->at + 1) r->cancelled = true;
    if (x && !r->cancelled) x->wrote_src = true;
  }
  return AS_OK;
}

/* Writes the decided versions (write-ahead: before the target commits), or records, per key
 * and node, when the connector wrote it (after: see the race rewrite in resolve_batch). */
static int write_versions(eng_pair *p, work *w, bool stamp, as_error *err) {
  if (w->nall == 0) return AS_OK;
  int rc = as_state_begin(p->e->state, err);
  if (rc != AS_OK) return rc;
  int64_t now = as_now_us();
  for (size_t i = 0; i < w->nall && rc == AS_OK; i++) {
    decided *x = w->all[i];
    if (stamp) {
      if (!x->v.origin[0] || !(x->wrote_dst || x->wrote_src)) continue;
      if (x->wrote_dst) as_version_stamp(&x->v, p->dst->cfg->name, now);
      if (x->wrote_src) as_version_stamp(&x->v, p->src->cfg->name, now);
    } else if (!x->dirty) {
      continue;
    }
    x->v.updated_us = now;
    rc = as_state_version_put(p->e->state, x->schema->name, x->key, &x->v, err);
  }
  as_error cerr;
  int crc = as_state_commit(p->e->state, &cerr);
  if (rc == AS_OK && crc != AS_OK) {
    *err = cerr;
    rc = crc;
  }
  return rc;
}

/* Applies kept deltas to the target with the checkpoint, in one transaction. */
static int apply_kept(eng_pair *p, work *w, const char *ckpt, as_error *err) {
  eng_node *t = p->dst;
  as_dead_list dead = {0};
  int rc;
  /* contiguous copy of the kept deltas (the adapter takes an array) */
  as_delta *arr = NULL;
  if (w->nkept) {
    arr = malloc(w->nkept * sizeof *arr);
    if (!arr) return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
    for (size_t i = 0; i < w->nkept; i++) arr[i] = *w->kept[i]; /* shallow: borrowed */
  }
  pthread_mutex_lock(&t->mu);
  rc = t->ad->begin(t->node, err);
  if (rc == AS_OK && w->nkept) rc = t->ad->apply(t->node, arr, w->nkept, &dead, err);
  if (rc == AS_OK) rc = t->ad->commit(t->node, p->stream_id, ckpt, err);
  if (rc != AS_OK) t->ad->rollback(t->node);
  pthread_mutex_unlock(&t->mu);
  if (rc == AS_OK) {
    for (size_t i = 0; i < w->nkept; i++) {
      count(p, arr[i].schema, C_APPLIED, 1);
      as_metrics_add(p->src->cfg->name, t->cfg->name, arr[i].schema->name, AS_M_APPLIED, 1);
    }
    for (size_t i = 0; i < dead.n; i++) {
      if (dead.items[i].index < w->nkept) count(p, arr[dead.items[i].index].schema, C_APPLIED, -1);
    }
    if (w->nkept) as_metrics_batch(p->src->cfg->name, t->cfg->name, (int64_t)w->nkept);
    for (size_t i = 0; i < dead.n; i++) {
      as_dead *dd = &dead.items[i];
      const as_delta *d = dd->index < w->nkept ? &arr[dd->index] : NULL;
      char *dj = d ? as_delta_to_json_string(d, NULL) : NULL;
      char *kj = d ? key_json(d->schema, &d->row) : NULL;
      record_dead(p, d ? d->schema : dd->schema, "apply", kj ? kj : dd->key, dd->raw, dj,
                  dd->error, d ? d->pos : NULL);
      free(dj);
      free(kj);
      if (d && d->schema->on_error == AS_ON_ERROR_STOP) {
        rc = as_error_set(err, AS_DOM_ENGINE, AS_ERR,
                          "mapping %s has on_error: stop and %s refused a change: %s "
                          "(see `arraysync dlq list`)",
                          d->schema->name, t->cfg->name, dd->error ? dd->error : "");
      }
    }
    if (w->nkept) {
      int64_t ts = arr[w->nkept - 1].ts_us;
      if (ts > 0) {
        p->stats.last_ts_us = ts;
        p->stats.lag_ms = (as_now_us() - ts) / 1000;
        if (p->stats.lag_ms < 0) p->stats.lag_ms = 0;
        as_metrics_lag(p->src->cfg->name, t->cfg->name, (double)p->stats.lag_ms / 1000.0);
      }
    }
  }
  as_dead_list_clear(&dead);
  free(arr);
  return rc;
}

/* Writes the winner back to the source where its local change lost or was overwritten.
 * Runs before the batch commits: a failure fails the batch, which is retried whole. */
static int run_repairs(eng_pair *p, work *w, as_error *err) {
  for (size_t i = 0; i < w->nrepairs; i++) {
    repair *r = &w->repairs[i];
    if (r->cancelled) continue;
    eng_node *from = find_node(p->e, r->winner);
    eng_node *to = p->src;
    as_row row = {0};
    as_delta d;
    memset(&d, 0, sizeof d);
    int rc;
    if (r->rewrite) {
      rc = as_delta_copy(&d, r->rewrite);
      if (rc != AS_OK) return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
    } else {
      if (!from || from == to) continue;
      pthread_mutex_lock(&from->mu);
      rc = as_row_init(&row, r->schema->ncols);
      if (rc == AS_OK) rc = from->ad->read_row(from->node, r->schema, &r->keyrow, &row, err);
      pthread_mutex_unlock(&from->mu);
      if (rc == AS_OK) {
        as_delta_init(&d, r->schema, AS_OP_INSERT);
        as_row_clear(&d.row);
        d.row = row;
        memset(&row, 0, sizeof row);
      } else if (rc == AS_ENOTFOUND) {
        as_delta_init(&d, r->schema, AS_OP_DELETE);
        as_row_clear(&d.row);
        as_row_copy(&d.row, &r->keyrow);
      } else {
        as_row_clear(&row);
        as_error_prefix(err, "repair of mapping %s key %s on %s: reading the winner from %s",
                        r->schema->name, r->key, to->cfg->name, from->cfg->name);
        return rc == AS_EDATA ? AS_RETRY : rc;
      }
    }
    as_delta_set_origin(&d, r->winner);
    d.hlc = r->v.hlc;
    as_dead_list dead = {0};
    pthread_mutex_lock(&to->mu);
    rc = to->ad->begin(to->node, err);
    if (rc == AS_OK) rc = to->ad->apply(to->node, &d, 1, &dead, err);
    if (rc == AS_OK) rc = to->ad->commit(to->node, "repair", NULL, err);
    if (rc != AS_OK) to->ad->rollback(to->node);
    pthread_mutex_unlock(&to->mu);
    if (rc == AS_OK && dead.n) {
      char *dj = as_delta_to_json_string(&d, NULL);
      record_dead(p, r->schema, "repair", r->key, NULL, dj, dead.items[0].error, NULL);
      free(dj);
    } else if (rc == AS_OK) {
      as_metrics_add(p->src->cfg->name, p->dst->cfg->name, r->schema->name, AS_M_REPAIRS, 1);
      AS_LOG(AS_LOG_DEBUG, p->comp, "repaired mapping %s key %s on %s with the winner from %s",
             r->schema->name, r->key, to->cfg->name, r->winner);
    }
    as_dead_list_clear(&dead);
    as_delta_clear(&d);
    if (rc != AS_OK) {
      as_error_prefix(err, "repair of mapping %s key %s on %s", r->schema->name, r->key,
                      to->cfg->name);
      return rc;
    }
  }
  return AS_OK;
}

static void record_capture_dead(eng_pair *p, as_batch *b) {
  for (size_t i = 0; i < b->ndead; i++) {
    as_dead *d = &b->dead[i];
    record_dead(p, d->schema, "capture", d->key, d->raw, NULL, d->error, d->pos);
  }
}

static int capture_stop_check(eng_pair *p, as_batch *b, as_error *err) {
  for (size_t i = 0; i < b->ndead; i++) {
    if (b->dead[i].schema && b->dead[i].schema->on_error == AS_ON_ERROR_STOP) {
      return as_error_set(err, AS_DOM_ENGINE, AS_ERR,
                          "mapping %s has on_error: stop and a change from %s cannot be mapped: %s",
                          b->dead[i].schema->name, p->src->cfg->name,
                          b->dead[i].error ? b->dead[i].error : "");
    }
  }
  return AS_OK;
}

/* One batch end to end, under the engine's apply lock (decisions and writes of all pairs are
 * serialised, so a decision is never overtaken by another pair's write of the same key):
 * resolve -> repairs on the source -> versions (write-ahead) -> apply + checkpoint on the
 * target -> stamp -> ack the source. ckpt: the checkpoint to commit with it. */
static int process_batch(eng_pair *p, as_batch *b, bool snapshot, const char *ckpt, work *w,
                         as_error *err) {
  work_reset(w);
  int rc = capture_stop_check(p, b, err);
  if (rc != AS_OK) return rc;
  bool pos_changed = ckpt && (!p->ckpt || strcmp(ckpt, p->ckpt) != 0);
  bool any_routed = false;
  for (size_t i = 0; i < b->n && !any_routed; i++) any_routed = routed(p, &b->d[i], snapshot);
  /* A batch of nothing but echoes (or only routed-away changes) writes nothing: its position
   * is committed later, with the next batch or after a while (replaying echoes is harmless). */
  bool commit_now = any_routed || b->ndead > 0 || snapshot ||
                    (pos_changed && as_now_us() - p->last_commit_us > IDLE_CHECKPOINT_US);
  if (!commit_now) {
    if (pos_changed) p->pending_pos = true;
    for (size_t i = 0; i < b->n; i++) {
      const char *m = b->d[i].schema ? b->d[i].schema->name : "";
      count(p, b->d[i].schema, C_CAPTURED, 1);
      count(p, b->d[i].schema, C_SKIPPED, 1);
      as_metrics_add(p->src->cfg->name, p->dst->cfg->name, m, AS_M_CAPTURED, 1);
      as_metrics_add(p->src->cfg->name, p->dst->cfg->name, m, AS_M_SKIPPED, 1);
    }
    return AS_OK;
  }
  pthread_mutex_lock(&p->e->apply_mu);
  rc = resolve_batch(p, b, snapshot, w, err);
  if (rc == AS_OK) rc = run_repairs(p, w, err);
  if (rc == AS_OK) rc = write_versions(p, w, false, err);
  if (rc == AS_OK && (w->nkept > 0 || pos_changed)) rc = apply_kept(p, w, ckpt, err);
  if (rc == AS_OK) write_versions(p, w, true, err);
  pthread_mutex_unlock(&p->e->apply_mu);
  if (rc != AS_OK) return rc;
  /* counted once the batch is committed (a retried batch is not counted twice) */
  record_capture_dead(p, b);
  for (size_t i = 0; i < b->n; i++) {
    count(p, b->d[i].schema, C_CAPTURED, 1);
    as_metrics_add(p->src->cfg->name, p->dst->cfg->name, b->d[i].schema ? b->d[i].schema->name : "",
                   snapshot ? AS_M_SNAPSHOT_ROWS : AS_M_CAPTURED, 1);
  }
  if (ckpt && pos_changed) {
    free(p->ckpt);
    p->ckpt = strdup(ckpt);
  }
  p->last_commit_us = as_now_us();
  p->pending_pos = false;
  if (p->last_commit_us - p->last_stats_us > 1000000) {
    pair_save_stats(p, snapshot ? "snapshot" : "streaming");
  }
  if (p->stream && !snapshot && ckpt && pos_changed &&
      strncmp(ckpt, SNAPSHOT_PREFIX, strlen(SNAPSHOT_PREFIX)) != 0) {
    as_error aerr;
    if (p->src->ad->ack(p->stream, ckpt, &aerr) != AS_OK) {
      AS_LOG(AS_LOG_DEBUG, p->comp, "ack: %s", aerr.message);
    }
  }
  return AS_OK;
}

/* ---------- snapshot ---------- */

static void progress(eng_pair *p, const as_schema *s, int64_t done, int64_t total, int64_t t0) {
  double secs = (double)(as_now_us() - t0) / 1e6;
  double rate = secs > 0 ? (double)done / secs : 0;
  double eta = (rate > 0 && total > done) ? (double)(total - done) / rate : 0;
  if (p->e->o->progress_tty) {
    pthread_mutex_lock(&p->e->progress_mu);
    int width = 30, fill = total > 0 ? (int)(width * (done > total ? total : done) / total) : 0;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r%s %-12s [%s] %lld/%lld %.0f rows/s ETA %.0fs   ", p->stream_id, s->name,
            bar, (long long)done, (long long)total, rate, eta);
    fflush(stderr);
    pthread_mutex_unlock(&p->e->progress_mu);
  } else {
    AS_LOG(AS_LOG_INFO, p->comp, "snapshot %s: %lld of ~%lld rows, %.0f rows/s, ETA %.0fs", s->name,
           (long long)done, (long long)total, rate, eta);
  }
}

static char *snapshot_ckpt(const char *start, size_t mi, const char *after) {
  json_t *j = json_pack("{s:s,s:i}", "start", start ? start : "", "m", (json_int_t)mi);
  if (!j) return NULL;
  if (after) json_object_set_new(j, "after", json_string(after));
  char *body = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(j);
  if (!body) return NULL;
  size_t n = strlen(SNAPSHOT_PREFIX) + strlen(body) + 1;
  char *out = malloc(n);
  if (out) snprintf(out, n, "%s%s", SNAPSHOT_PREFIX, body);
  free(body);
  return out;
}

/* Runs (or resumes) the snapshot; on success *final_pos is the stream position to stream from. */
static int run_snapshot(eng_pair *p, const char *resume, work *w, char **final_pos,
                        as_error *err) {
  engine *e = p->e;
  char *start = NULL, *after = NULL;
  size_t mi = 0;
  int rc = AS_OK;
  if (resume) {
    json_error_t je;
    json_t *j = json_loads(resume + strlen(SNAPSHOT_PREFIX), 0, &je);
    const char *st = j ? json_string_value(json_object_get(j, "start")) : NULL;
    const char *af = j ? json_string_value(json_object_get(j, "after")) : NULL;
    if (!st) {
      json_decref(j);
      return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "bad snapshot checkpoint in %s: %s",
                          p->dst->cfg->name, resume);
    }
    start = strdup(st);
    after = af ? strdup(af) : NULL;
    mi = (size_t)json_integer_value(json_object_get(j, "m"));
    json_decref(j);
    AS_LOG(AS_LOG_INFO, p->comp, "resuming snapshot at mapping #%zu after key %s", mi,
           after ? after : "(start)");
  } else {
    rc = p->src->ad->stream_position(p->stream, &start, err);
    if (rc != AS_OK) return rc;
  }
  as_batch b = {0};
  for (; mi < e->cfg->nschemas && rc == AS_OK && !stopping(e); mi++) {
    const as_schema *s = e->cfg->schemas[mi];
    if (!node_has_schema(p->src, s) || !node_has_schema(p->dst, s) ||
        !as_route_direction(e->cfg, s, p->src->cfg->name, p->dst->cfg->name) ||
        !(p->src->ad->caps & AS_CAP_SNAPSHOT)) {
      free(after);
      after = NULL;
      continue;
    }
    as_snapshot *sn = NULL;
    rc = p->src->ad->snapshot_open(p->src->node, s, after, &sn, err);
    if (rc != AS_OK) break;
    int64_t total = p->src->ad->snapshot_estimate(sn), done = 0, t0 = as_now_us(), last = t0;
    as_metrics_snapshot_total(p->src->cfg->name, p->dst->cfg->name, s->name, total);
    AS_LOG(AS_LOG_INFO, p->comp, "snapshot of %s: ~%lld rows", s->name, (long long)total);
    for (;;) {
      as_batch_reset(&b);
      int n = p->src->ad->snapshot_next(sn, &b, e->cfg->batch_max_rows, err);
      if (n != AS_OK && n != AS_EOF) {
        rc = n;
        break;
      }
      char *ck = NULL;
      if (b.n > 0) {
        free(after);
        after = key_json(s, &b.d[b.n - 1].row);
      }
      ck = n == AS_EOF ? NULL : snapshot_ckpt(start, mi, after);
      if (n == AS_EOF) {
        /* mapping done: the next one starts from its beginning */
        ck = snapshot_ckpt(start, mi + 1, NULL);
      }
      for (size_t i = 0; i < b.n; i++) {
        as_delta_set_origin(&b.d[i], p->src->cfg->name);
      }
      rc = process_batch(p, &b, true, ck, w, err);
      free(ck);
      done += (int64_t)b.n;
      if (rc != AS_OK) break;
      if (as_now_us() - last > 1000000 || n == AS_EOF) {
        progress(p, s, done, total, t0);
        last = as_now_us();
      }
      if (n == AS_EOF || stopping(e)) break;
    }
    p->src->ad->snapshot_close(sn);
    if (p->e->o->progress_tty) fprintf(stderr, "\n");
    free(after);
    after = NULL;
    if (rc != AS_OK || stopping(e)) break;
    AS_LOG(AS_LOG_INFO, p->comp, "snapshot of %s done: %lld rows", s->name, (long long)done);
  }
  as_batch_clear(&b);
  free(after);
  if (rc == AS_OK && !stopping(e)) {
    *final_pos = start;
    return AS_OK;
  }
  free(start);
  return rc == AS_OK ? AS_RETRY : rc;
}

/* ---------- the pair thread ---------- */

static int pair_open(eng_pair *p, work *w, as_error *err) {
  eng_node *t = p->dst;
  char *ck = NULL;
  pthread_mutex_lock(&t->mu);
  int rc = t->ad->checkpoint_load(t->node, p->stream_id, &ck, err);
  pthread_mutex_unlock(&t->mu);
  if (rc != AS_OK && rc != AS_ENOTFOUND) return rc;
  if (p->stream) {
    p->src->ad->close_stream(p->stream);
    p->stream = NULL;
  }
  free(p->ckpt);
  p->ckpt = NULL;
  if (rc == AS_OK && p->force_snapshot) {
    AS_LOG(AS_LOG_WARN, p->comp, "re-snapshot: the committed checkpoint is set aside");
    free(ck);
    ck = NULL;
    rc = AS_ENOTFOUND;
  }
  p->force_snapshot = false;
  if (rc == AS_OK && strncmp(ck, SNAPSHOT_PREFIX, strlen(SNAPSHOT_PREFIX)) != 0) {
    rc = p->src->ad->open_stream(p->src->node, t->cfg->name, ck, &p->stream, err);
    if (rc == AS_OK) {
      p->ckpt = ck;
      AS_LOG(AS_LOG_INFO, p->comp, "streaming from checkpoint");
      return AS_OK;
    }
    free(ck);
    return rc;
  }
  /* No checkpoint (or an interrupted snapshot): open the stream first, then copy. */
  const char *resume = rc == AS_OK ? ck : NULL;
  char *start = NULL;
  if (resume) {
    json_t *j = json_loads(resume + strlen(SNAPSHOT_PREFIX), 0, NULL);
    const char *st = j ? json_string_value(json_object_get(j, "start")) : NULL;
    if (st && *st) start = strdup(st);
    json_decref(j);
  }
  rc = p->src->ad->open_stream(p->src->node, t->cfg->name, start, &p->stream, err);
  free(start);
  if (rc != AS_OK) {
    free(ck);
    return rc;
  }
  pair_save_stats(p, "snapshot");
  AS_LOG(AS_LOG_INFO, p->comp, "%s", resume ? "resuming snapshot" : "no checkpoint: snapshot first");
  char *pos = NULL;
  rc = run_snapshot(p, resume, w, &pos, err);
  free(ck);
  if (rc != AS_OK) return rc;
  /* commit the recorded stream position: streaming starts there */
  as_batch empty = {0};
  rc = process_batch(p, &empty, true, pos, w, err);
  as_batch_clear(&empty);
  free(pos);
  return rc;
}

static bool pair_interval(eng_pair *p, int64_t *interval_ms) {
  bool all_interval = true;
  int64_t min = 0;
  for (size_t i = 0; i < p->e->cfg->nschemas; i++) {
    const as_schema *s = p->e->cfg->schemas[i];
    if (!node_has_schema(p->src, s)) continue;
    if (s->mode != AS_MODE_INTERVAL) {
      all_interval = false;
      break;
    }
    if (min == 0 || s->interval_ms < min) min = s->interval_ms;
  }
  *interval_ms = min;
  return all_interval && min > 0;
}

static void *pair_main(void *arg) {
  eng_pair *p = arg;
  engine *e = p->e;
  work w = {0};
  as_batch b = {0};
  as_error err;
  int attempt = 0;
  int64_t interval_ms = 0;
  bool interval = pair_interval(p, &interval_ms);
  int wait_ms = (int)(e->cfg->batch_max_latency_ms > 0 ? e->cfg->batch_max_latency_ms : 20);
  if (wait_ms < 5) wait_ms = 5;
  if (wait_ms > 200) wait_ms = 200;
  while (!stopping(e)) {
    int rc = AS_OK;
    if (!p->stream) {
      p->streaming = false;
      rc = pair_open(p, &w, &err);
      if (rc == AS_OK) {
        p->streaming = true;
        pair_save_stats(p, "streaming");
      }
    }
    while (rc == AS_OK && !stopping(e)) {
      as_batch_reset(&b);
      rc = p->src->ad->poll(p->stream, &b, e->cfg->batch_max_rows, interval ? 0 : wait_ms, &err);
      if (rc != AS_OK) break;
      const char *pos = b.pos ? b.pos : p->ckpt;
      rc = process_batch(p, &b, false, pos, &w, &err);
      if (rc != AS_OK) break;
      if (p->outage) {
        AS_LOG(AS_LOG_INFO, p->comp, "recovered after %d retries", attempt);
        p->outage = false;
        p->error[0] = '\0';
      }
      attempt = 0;
      if (b.n == 0 && b.ndead == 0) {
        if (!p->idle_since_us) {
          p->idle_since_us = as_now_us();
          pair_save_stats(p, "streaming");
        }
        if (interval) sleep_ms(e, interval_ms);
      } else {
        p->idle_since_us = 0;
        if (interval && b.n < e->cfg->batch_max_rows) sleep_ms(e, interval_ms);
      }
    }
    if (stopping(e)) break;
    if (rc == AS_ERESNAPSHOT) {
      /* the source lost the history behind our position (or the mapped collection was
       * re-created) and the node is configured to copy everything again */
      AS_LOG(AS_LOG_WARN, p->comp, "%s: copying every mapping again (on_history_lost: resnapshot)",
             err.message);
      if (p->stream) {
        p->src->ad->close_stream(p->stream);
        p->stream = NULL;
      }
      p->force_snapshot = true;
      continue;
    }
    if (rc == AS_RETRY) {
      /* Transient: drop the stream, reconnect both sides, resume from the checkpoint. */
      if (!p->outage) {
        AS_LOG(AS_LOG_WARN, p->comp, "transient failure, retrying with backoff: %s", err.message);
        p->outage = true;
        snprintf(p->error, sizeof p->error, "%s", err.message);
        pair_save_stats(p, "retrying");
      }
      if (p->stream) {
        p->src->ad->close_stream(p->stream);
        p->stream = NULL;
      }
      sleep_ms(e, backoff_ms(attempt++));
      as_error cerr;
      if (node_connect(e, p->src, &cerr) != AS_OK || node_connect(e, p->dst, &cerr) != AS_OK) {
        continue;
      }
      continue;
    }
    /* Permanent error: this pair stops; the others go on. */
    p->failed = rc;
    snprintf(p->error, sizeof p->error, "%s", err.message);
    AS_LOG(AS_LOG_ERROR, p->comp, "stopped: %s", err.message);
    pair_save_stats(p, "error");
    break;
  }
  /* Commit a known newer position before leaving (nothing to apply). */
  if (p->pending_pos && p->stream && !p->failed) {
    as_batch empty = {0};
    as_error cerr;
    p->last_commit_us = 0;
    char *pos = NULL;
    if (p->src->ad->stream_position(p->stream, &pos, &cerr) == AS_OK && pos) {
      process_batch(p, &empty, false, pos, &w, &cerr);
    }
    free(pos);
    as_batch_clear(&empty);
  }
  if (!p->failed) pair_save_stats(p, "stopped");
  if (p->stream) p->src->ad->close_stream(p->stream);
  p->stream = NULL;
  as_batch_clear(&b);
  work_free(&w);
  return NULL;
}

/* ---------- run ---------- */

/* Counters continue across runs: start from what the state store recorded. */
static int load_stats(void *ctx, const as_stream_stats *st) {
  eng_pair *p = ctx;
  if (strcmp(st->stream_id, p->stream_id) == 0) {
    p->stats.captured = st->captured;
    p->stats.applied = st->applied;
    p->stats.skipped = st->skipped;
    p->stats.conflicts = st->conflicts;
    p->stats.dead = st->dead;
    p->stats.lag_ms = st->lag_ms;
    p->stats.last_ts_us = st->last_ts_us;
  }
  return AS_OK;
}

/* Strategies other than last-write-wins are not implemented yet: refuse them clearly rather
 * than resolve with a strategy the user did not ask for. */
static int load_mapping_stats(void *ctx, const as_stream_mapping_stats *m) {
  eng_pair *p = ctx;
  for (size_t i = 0; i < p->e->cfg->nschemas; i++) {
    if (strcmp(p->e->cfg->schemas[i]->name, m->mapping) == 0) {
      p->mstats[i] = *m;
    }
  }
  return AS_OK;
}

static int check_strategies(const as_config *c, as_error *err) {
  for (size_t i = 0; i < c->nschemas; i++) {
    const as_schema *s = c->schemas[i];
    if (s->conflict.strategy != AS_STRATEGY_LWW) {
      return as_error_set(err, AS_DOM_ENGINE, AS_EINVAL,
                          "%s:%d:%d: mapping %s: conflict strategy %s is not implemented yet "
                          "(this version resolves conflicts by last-write-wins only: "
                          "strategy: lww)",
                          s->file, s->mark.line, s->mark.col, s->name,
                          s->conflict.strategy == AS_STRATEGY_VECTOR ? "vector" : "script");
    }
  }
  return AS_OK;
}

static int build_pairs(engine *e, as_error *err) {
  e->pairs = calloc(e->nnodes * e->nnodes + 1, sizeof *e->pairs);
  if (!e->pairs) return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  for (size_t i = 0; i < e->nnodes; i++) {
    for (size_t j = 0; j < e->nnodes; j++) {
      eng_node *s = &e->nodes[i], *t = &e->nodes[j];
      if (!as_route_pair(e->cfg, s->cfg->name, t->cfg->name)) continue;
      if (!(s->ad->caps & AS_CAP_SOURCE) || !(t->ad->caps & AS_CAP_SINK)) continue;
      eng_pair *p = &e->pairs[e->npairs++];
      p->e = e;
      p->src = s;
      p->dst = t;
      snprintf(p->stream_id, sizeof p->stream_id, "%s->%s", s->cfg->name, t->cfg->name);
      snprintf(p->comp, sizeof p->comp, "pair:%s", p->stream_id);
      snprintf(p->stats.stream_id, sizeof p->stats.stream_id, "%s", p->stream_id);
      snprintf(p->stats.source, sizeof p->stats.source, "%s", s->cfg->name);
      snprintf(p->stats.target, sizeof p->stats.target, "%s", t->cfg->name);
      as_state_stream_each(e->state, load_stats, p, NULL);
      p->force_snapshot = e->o->resnapshot;
      p->mstats = calloc(e->cfg->nschemas ? e->cfg->nschemas : 1, sizeof *p->mstats);
      if (!p->mstats) return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
      for (size_t k = 0; k < e->cfg->nschemas; k++) {
        snprintf(p->mstats[k].stream_id, sizeof p->mstats[k].stream_id, "%s", p->stream_id);
        snprintf(p->mstats[k].mapping, sizeof p->mstats[k].mapping, "%s", e->cfg->schemas[k]->name);
      }
      as_state_stream_mapping_each(e->state, p->stream_id, load_mapping_stats, p, NULL);
    }
  }
  return AS_OK;
}

int as_engine_run(const as_config *cfg, const as_engine_opts *o, as_error *err) {
  engine e;
  memset(&e, 0, sizeof e);
  e.cfg = cfg;
  e.o = o;
  pthread_mutex_init(&e.progress_mu, NULL);
  pthread_mutex_init(&e.apply_mu, NULL);
  srand((unsigned)(as_now_us() ^ getpid()));
  int rc = check_strategies(cfg, err);
  if (rc != AS_OK) goto done;
  rc = as_state_open(cfg->state_path, false, &e.state, err);
  if (rc != AS_OK) goto done;
  const char *listen = o->metrics_listen ? o->metrics_listen : cfg->metrics_listen;
  if (listen) {
    rc = as_metrics_serve(listen, err);
    if (rc != AS_OK) goto done;
    AS_LOG(AS_LOG_INFO, "metrics", "serving /metrics and /healthz on http://%s", listen);
  }
  rc = nodes_init(&e, true, err);
  if (rc != AS_OK) goto done;
  for (size_t i = 0; i < e.nnodes; i++) {
    eng_node *n = &e.nodes[i];
    pthread_mutex_lock(&n->mu);
    rc = n->ad->install(n->node, err);
    pthread_mutex_unlock(&n->mu);
    if (rc != AS_OK) {
      as_error_prefix(err, "node %s: install", n->cfg->name);
      goto done;
    }
  }
  rc = build_pairs(&e, err);
  if (rc != AS_OK) goto done;
  if (e.npairs == 0) {
    rc = as_error_set(err, AS_DOM_ENGINE, AS_EINVAL, "the topology connects no nodes");
    goto done;
  }
  AS_LOG(AS_LOG_INFO, "engine", "%zu nodes, %zu mappings, %zu streams", e.nnodes, cfg->nschemas,
         e.npairs);
  as_metrics_set_healthy(true);
  for (size_t i = 0; i < e.npairs; i++) {
    if (pthread_create(&e.pairs[i].th, NULL, pair_main, &e.pairs[i]) == 0) {
      e.pairs[i].started = true;
    } else {
      rc = as_error_set(err, AS_DOM_ENGINE, AS_ERR, "cannot start thread: %s", strerror(errno));
      e.stop = 1;
      break;
    }
  }
  int64_t last_purge = as_now_us();
  while (!stopping(&e)) {
    sleep_ms(&e, 50);
    bool all_idle = true, any_failed = false;
    for (size_t i = 0; i < e.npairs; i++) {
      eng_pair *p = &e.pairs[i];
      if (p->failed) any_failed = true;
      if (!p->streaming || !p->idle_since_us ||
          as_now_us() - p->idle_since_us < o->exit_when_idle_ms * 1000) {
        all_idle = false;
      }
    }
    as_metrics_set_healthy(!any_failed);
    if (any_failed) {
      bool all_failed = true;
      for (size_t i = 0; i < e.npairs; i++) {
        if (!e.pairs[i].failed) all_failed = false;
      }
      if (all_failed) break;
    }
    if (o->exit_when_idle_ms > 0 && all_idle) {
      AS_LOG(AS_LOG_INFO, "engine", "idle for %lld ms: stopping", (long long)o->exit_when_idle_ms);
      break;
    }
    if (as_now_us() - last_purge > 60 * 1000000LL) {
      as_state_purge_tombstones(e.state, cfg->tombstone_retention_ms, NULL);
      last_purge = as_now_us();
    }
  }
  e.stop = 1;
  for (size_t i = 0; i < e.npairs; i++) {
    if (e.pairs[i].started) pthread_join(e.pairs[i].th, NULL);
  }
  for (size_t i = 0; i < e.npairs; i++) {
    if (e.pairs[i].failed && rc == AS_OK) {
      rc = as_error_set(err, AS_DOM_ENGINE, AS_ERR, "stream %s stopped: %s",
                        e.pairs[i].stream_id, e.pairs[i].error);
    }
  }
  AS_LOG(AS_LOG_INFO, "engine", "stopped");
done:
  for (size_t i = 0; i < e.npairs; i++) {
    free(e.pairs[i].ckpt);
    free(e.pairs[i].mstats);
  }
  free(e.pairs);
  nodes_free(&e);
  as_metrics_stop();
  as_state_close(e.state);
  pthread_mutex_destroy(&e.progress_mu);
  pthread_mutex_destroy(&e.apply_mu);
  return rc;
}

/* ---------- dead letter retry ---------- */

typedef struct retry_ctx {
  engine *e;
  FILE *out;
  int failing;
} retry_ctx;

static int retry_one(void *vctx, const as_dead_letter *dl) {
  retry_ctx *c = vctx;
  engine *e = c->e;
  as_error err;
  eng_node *t = find_node(e, dl->target);
  const as_schema *s = dl->mapping ? as_config_schema(e->cfg, dl->mapping) : NULL;
  as_delta d;
  memset(&d, 0, sizeof d);
  int rc = AS_ERR;
  if (!t || !s) {
    as_error_set(&err, AS_DOM_ENGINE, AS_ERR, "unknown %s", !t ? "target node" : "mapping");
    goto out;
  }
  if (dl->delta_json) {
    json_t *j = json_loads(dl->delta_json, 0, NULL);
    rc = j ? as_delta_from_json(j, lookup_schema, (void *)e->cfg, &d, &err)
           : as_error_set(&err, AS_DOM_ENGINE, AS_ERR, "stored delta is not JSON");
    json_decref(j);
  } else if (dl->raw) {
    /* a source document/row that could not be mapped: map it again with today's mapping */
    eng_node *src = find_node(e, dl->source);
    if (src && strcmp(src->cfg->kind, "mongodb") == 0) {
      bson_error_t berr;
      bson_t *doc = bson_new_from_json((const uint8_t *)dl->raw, -1, &berr);
      if (!doc) {
        rc = as_error_set(&err, AS_DOM_ENGINE, AS_ERR, "raw document: %s", berr.message);
      } else {
        as_delta_init(&d, s, AS_OP_INSERT);
        rc = as_doc_to_row(s, doc, &d.row, &err);
        bson_destroy(doc);
      }
    } else {
      json_t *j = json_loads(dl->raw, 0, NULL);
      json_t *row = j ? json_object_get(j, "new") : NULL;
      if (!row && j && json_is_object(j)) row = j;
      as_delta_init(&d, s, AS_OP_INSERT);
      rc = row ? AS_OK : as_error_set(&err, AS_DOM_ENGINE, AS_ERR, "raw row is not a JSON object");
      for (size_t i = 0; rc == AS_OK && i < s->ncols; i++) {
        json_t *v = json_object_get(row, s->cols[i].name);
        as_value val = AS_VALUE_NULL;
        if (v && json_is_string(v)) {
          rc = as_value_from_text(s->cols[i].type, json_string_value(v),
                                  strlen(json_string_value(v)), &val, &err);
        } else if (v && !json_is_null(v)) {
          rc = as_value_from_json_typed(v, s->cols[i].type, &val, &err);
        }
        if (rc == AS_OK) as_row_put(&d.row, i, &val);
      }
      json_decref(j);
    }
    if (rc == AS_OK) as_delta_set_origin(&d, dl->source);
  } else {
    as_error_set(&err, AS_DOM_ENGINE, AS_ERR, "nothing stored to retry");
  }
  if (rc == AS_OK) {
    as_dead_list dead = {0};
    pthread_mutex_lock(&t->mu);
    rc = t->ad->begin(t->node, &err);
    if (rc == AS_OK) rc = t->ad->apply(t->node, &d, 1, &dead, &err);
    if (rc == AS_OK && dead.n) {
      as_error_set(&err, AS_DOM_ENGINE, AS_EDATA, "%s", dead.items[0].error ? dead.items[0].error : "refused");
      rc = AS_EDATA;
    }
    if (rc == AS_OK) rc = t->ad->commit(t->node, "dlq-retry", NULL, &err);
    if (rc != AS_OK) t->ad->rollback(t->node);
    pthread_mutex_unlock(&t->mu);
    as_dead_list_clear(&dead);
  }
out:
  as_delta_clear(&d);
  if (rc == AS_OK) {
    as_state_dead_set_status(e->state, dl->id, "resolved", NULL, NULL);
    fprintf(c->out, "dead letter %lld (%s, %s -> %s): applied\n", (long long)dl->id,
            dl->mapping ? dl->mapping : "?", dl->source ? dl->source : "?",
            dl->target ? dl->target : "?");
  } else {
    as_state_dead_set_status(e->state, dl->id, "open", err.message, NULL);
    fprintf(c->out, "dead letter %lld (%s): still failing: %s\n", (long long)dl->id,
            dl->mapping ? dl->mapping : "?", err.message);
    c->failing++;
  }
  return AS_OK;
}

int as_engine_dlq_retry(const as_config *cfg, FILE *out, as_error *err) {
  as_engine_opts o = {0};
  engine e;
  memset(&e, 0, sizeof e);
  e.cfg = cfg;
  e.o = &o;
  int rc = as_state_open(cfg->state_path, false, &e.state, err);
  if (rc == AS_OK) rc = nodes_init(&e, true, err);
  retry_ctx c = {.e = &e, .out = out};
  if (rc == AS_OK) rc = as_state_dead_each(e.state, "open", retry_one, &c, err);
  nodes_free(&e);
  as_state_close(e.state);
  return rc == AS_OK ? c.failing : rc;
}
