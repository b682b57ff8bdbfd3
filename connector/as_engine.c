/* as_engine.c — `arraysync run` (set-up, the supervisor loop, shut-down), install and
 * uninstall; the parts of the pipeline are described in as_engine_int.h. */
#include "as_engine_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_log.h"
#include "as_metrics.h"
#include "as_router.h"
#include "as_time.h"
#include "as_verify.h"

/* Installs node n; a passing failure (a lock held by a writer's open transaction, a slot
 * waiting for running transactions, a lost connection) is retried with a warning, the wait
 * growing to 30 s, until it works or the engine stops. */
static int install_node(engine *e, eng_node *n, as_error *err) {
  int64_t wait_ms = 1000;
  for (;;) {
    pthread_mutex_lock(&n->mu);
    int rc = n->ad->install(n->node, err);
    pthread_mutex_unlock(&n->mu);
    if (rc != AS_OK) as_error_prefix(err, "node %s: install", n->cfg->name);
    if (rc != AS_RETRY || eng_stopping(e)) return rc;
    AS_LOG(AS_LOG_WARN, n->comp, "%s; trying again in %lld s", err->message, (long long)(wait_ms / 1000));
    eng_sleep_ms(e, wait_ms);
    if (eng_stopping(e)) return rc;
    wait_ms = wait_ms * 2 > 30000 ? 30000 : wait_ms * 2;
  }
}

int as_engine_install(const as_config *cfg, as_error *err) {
  as_engine_opts o = {0};
  engine e;
  eng_init(&e, cfg, &o);
  int rc = eng_nodes_init(&e, true, err);
  for (size_t i = 0; rc == AS_OK && i < e.nnodes; i++) {
    rc = install_node(&e, &e.nodes[i], err);
    if (rc == AS_OK) AS_LOG(AS_LOG_INFO, e.nodes[i].comp, "installed (tables, bookkeeping, capture)");
  }
  eng_nodes_free(&e);
  eng_free(&e);
  return rc;
}

int as_engine_uninstall(const as_config *cfg, as_error *err) {
  as_engine_opts o = {0};
  engine e;
  eng_init(&e, cfg, &o);
  int rc = eng_nodes_init(&e, true, err);
  for (size_t i = 0; rc == AS_OK && i < e.nnodes; i++) {
    rc = e.nodes[i].ad->uninstall(e.nodes[i].node, err);
    if (rc != AS_OK) as_error_prefix(err, "node %s: uninstall", e.nodes[i].cfg->name);
    else AS_LOG(AS_LOG_INFO, e.nodes[i].comp, "uninstalled (user data kept)");
  }
  eng_nodes_free(&e);
  eng_free(&e);
  return rc;
}

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

static int load_mapping_stats(void *ctx, const as_stream_mapping_stats *m) {
  eng_pair *p = ctx;
  for (size_t i = 0; i < p->e->cfg->nschemas; i++) {
    if (strcmp(p->e->cfg->schemas[i]->name, m->mapping) == 0) p->mstats[i] = *m;
  }
  return AS_OK;
}

/* What `run` cannot do yet is refused before anything is touched: strategies without a
 * resolver (as_resolver_new says which). (Child tables on a PostgreSQL node are refused by
 * that adapter's init.) */
static int make_resolvers(engine *e, as_error *err) {
  const as_config *c = e->cfg;
  e->resolvers = calloc(c->nschemas ? c->nschemas : 1, sizeof *e->resolvers);
  if (!e->resolvers) return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  for (size_t i = 0; i < c->nschemas; i++) {
    const as_schema *s = c->schemas[i];
    int rc = as_resolver_new(s, &e->resolvers[i], err);
    if (rc != AS_OK) return rc;
  }
  return AS_OK;
}

static void free_resolvers(engine *e) {
  for (size_t i = 0; e->resolvers && i < e->cfg->nschemas; i++) as_resolver_free(e->resolvers[i]);
  free(e->resolvers);
  e->resolvers = NULL;
}

static int add_pair(engine *e, eng_node *s, eng_node *t, as_error *err) {
  eng_pair *p = &e->pairs[e->npairs++];
  p->e = e;
  p->src = s;
  p->dst = t;
  atomic_init(&p->streaming, false);
  atomic_init(&p->idle_since_us, 0);
  atomic_init(&p->failed, 0);
  atomic_init(&p->outage_since_us, 0);
  snprintf(p->stream_id, sizeof p->stream_id, "%s->%s", s->cfg->name, t->cfg->name);
  snprintf(p->comp, sizeof p->comp, "pair:%s", p->stream_id);
  snprintf(p->stats.stream_id, sizeof p->stats.stream_id, "%s", p->stream_id);
  snprintf(p->stats.source, sizeof p->stats.source, "%s", s->cfg->name);
  snprintf(p->stats.target, sizeof p->stats.target, "%s", t->cfg->name);
  as_state_stream_each(e->state, load_stats, p, NULL);
  p->force_snapshot = e->o->resnapshot;
  for (size_t i = 0; i < e->cfg->nnodes && !p->relays; i++) {
    const char *o = e->cfg->nodes[i].name;
    p->relays = strcmp(o, s->cfg->name) != 0 &&
                as_route_forward(e->cfg, s->cfg->name, t->cfg->name, o, false, true);
  }
  p->mstats = calloc(e->cfg->nschemas ? e->cfg->nschemas : 1, sizeof *p->mstats);
  if (!p->mstats) return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  for (size_t k = 0; k < e->cfg->nschemas; k++) {
    snprintf(p->mstats[k].stream_id, sizeof p->mstats[k].stream_id, "%s", p->stream_id);
    snprintf(p->mstats[k].mapping, sizeof p->mstats[k].mapping, "%s", e->cfg->schemas[k]->name);
  }
  as_state_stream_mapping_each(e->state, p->stream_id, load_mapping_stats, p, NULL);
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
      int rc = add_pair(e, s, t, err);
      if (rc != AS_OK) return rc;
    }
  }
  return AS_OK;
}

static void check_capture(engine *e);

/* State store, metrics, nodes (connected and installed), resolvers, pairs. */
static int start(engine *e, as_error *err) {
  const as_config *cfg = e->cfg;
  int rc = make_resolvers(e, err);
  if (rc == AS_OK) rc = as_state_open(cfg->state_path, false, &e->state, err);
  if (rc == AS_OK) rc = as_state_claim(e->state, err);
  if (rc != AS_OK) return rc;
  as_metrics_conflicts_store(e->state);
  for (size_t i = 0; i < cfg->nschemas; i++) {
    as_strategy k = cfg->schemas[i]->conflict.strategy;
    as_metrics_mapping_strategy(cfg->schemas[i]->name, k == AS_STRATEGY_VECTOR   ? "vector"
                                                       : k == AS_STRATEGY_SCRIPT ? "script"
                                                                                 : "lww");
  }
  const char *listen = e->o->metrics_listen ? e->o->metrics_listen : cfg->metrics_listen;
  if (listen) {
    if ((rc = as_metrics_serve(listen, err)) != AS_OK) return rc;
    AS_LOG(AS_LOG_INFO, "metrics", "serving /metrics and /healthz on http://%s", listen);
  }
  if ((rc = eng_nodes_init(e, true, err)) != AS_OK) return rc;
  for (size_t i = 0; i < e->nnodes; i++) {
    if ((rc = install_node(e, &e->nodes[i], err)) != AS_OK) return rc;
  }
  for (size_t i = 0; i < e->nnodes; i++)
    atomic_init(&e->nodes[i].relay_tail, as_state_relay_last(e->state, e->nodes[i].id));
  check_capture(e);
  if ((rc = build_pairs(e, err)) != AS_OK) return rc;
  if (e->npairs == 0) return as_error_set(err, AS_DOM_ENGINE, AS_EINVAL, "the topology connects no nodes");
  return eng_repairs_drain(e, err);
}

/* Stops waits in flight on every node (a stuck lock, a slow server) so that threads see the
 * stop flag promptly. */
static void interrupt_nodes(engine *e) {
  for (size_t i = 0; i < e->nnodes; i++) {
    if (e->nodes[i].ad->interrupt && e->nodes[i].node) e->nodes[i].ad->interrupt(e->nodes[i].node);
  }
}

/* /healthz: unhealthy while a stream is stopped, or has been retrying (a node unreachable)
 * for more than HEALTH_GRACE_US. */
#define HEALTH_GRACE_US (10 * 1000000LL)
static void report_health(engine *e, int64_t now) {
  for (size_t i = 0; i < e->npairs; i++) {
    eng_pair *p = &e->pairs[i];
    int64_t since = atomic_load(&p->outage_since_us);
    char why[512];
    if (atomic_load(&p->failed)) {
      snprintf(why, sizeof why, "stream %s stopped: %s (see `arraysync status`)", p->stream_id, p->error);
    } else if (since && now - since > HEALTH_GRACE_US) {
      snprintf(why, sizeof why, "stream %s has been retrying for %lld s (a node is unreachable; see "
               "`arraysync status`)", p->stream_id, (long long)((now - since) / 1000000));
    } else {
      continue;
    }
    as_metrics_set_health(false, why);
    return;
  }
  as_metrics_set_health(true, NULL);
}

typedef struct gauge_ctx {
  engine *e;
  eng_node *n;
} gauge_ctx;

static void on_gauge(void *vctx, const char *metric, const char *consumer, double value) {
  gauge_ctx *c = vctx;
  as_metrics_gauge(metric, c->n->cfg->name, consumer, value);
  as_error err;
  if (as_state_gauge_put(c->e->state, c->n->cfg->name, metric, consumer, value, &err) != AS_OK)
    AS_LOG(AS_LOG_DEBUG, "engine", "%s", err.message);
}

/* Nodes' gauges (e.g. the WAL a PostgreSQL slot holds) into /metrics and the state store. */
static void read_gauges(engine *e) {
  for (size_t i = 0; i < e->nnodes; i++) {
    eng_node *n = &e->nodes[i];
    if (!n->ad->gauges) continue;
    gauge_ctx c = {.e = e, .n = n};
    as_error err;
    pthread_mutex_lock(&n->mu);
    int rc = n->ad->gauges(n->node, on_gauge, &c, &err);
    pthread_mutex_unlock(&n->mu);
    if (rc != AS_OK) AS_LOG(AS_LOG_DEBUG, n->comp, "gauges: %s", err.message);
  }
}

/* Capture objects (triggers, publication) removed behind the connector's back, e.g. by
 * `DROP COLUMN ... CASCADE`: said, and put back. */
static void check_capture(engine *e) {
  for (size_t i = 0; i < e->nnodes; i++) {
    eng_node *n = &e->nodes[i];
    if (!n->ad->check_capture) continue;
    as_error err;
    pthread_mutex_lock(&n->mu);
    int rc = n->ad->check_capture(n->node, true, &err);
    pthread_mutex_unlock(&n->mu);
    if (rc == AS_ENOTFOUND) {
      AS_LOG(AS_LOG_WARN, n->comp, "capture objects were missing and are installed again: %s",
             err.message);
    } else if (rc != AS_OK) {
      AS_LOG(AS_LOG_WARN, n->comp, "checking capture objects: %s", err.message);
    }
  }
}

/* Drops relay log entries every consumer has committed. */
static void purge_relays(engine *e) {
  for (size_t i = 0; i < e->nnodes; i++) {
    eng_node *n = &e->nodes[i];
    int64_t min = INT64_MAX;
    bool any = false;
    for (size_t k = 0; k < e->npairs; k++) {
      eng_pair *p = &e->pairs[k];
      if (p->src != n || !p->relays) continue;
      any = true;
      int64_t seq = atomic_load(&p->relay_committed);
      if (seq < min) min = seq;
    }
    as_error err;
    if (any && min > 0 && min != INT64_MAX && as_state_relay_purge(e->state, n->id, min, &err) != AS_OK)
      AS_LOG(AS_LOG_WARN, "engine", "%s", err.message);
  }
}

/* Settling (as_state_versions_settle): per node, the time by which each of its streams has
 * read everything committed before it (the oldest of its pairs' empty polls; a node no pair
 * reads from has no stream to deliver anything), less versions.settle_after. 0 while any of
 * its pairs is not streaming. */
static void settle_before(engine *e, int64_t now, int64_t *before, size_t nb) {
  for (size_t i = 0; i < e->nnodes; i++) {
    eng_node *n = &e->nodes[i];
    if (n->id >= nb) continue;
    int64_t t = now;
    for (size_t k = 0; k < e->npairs; k++) {
      const eng_pair *p = &e->pairs[k];
      if (p->src != n) continue;
      int64_t c = atomic_load(&p->caught_up_us);
      if (c < t) t = c;
    }
    before[n->id] = t > 0 ? t - e->cfg->settle_after_ms * 1000 : 0;
  }
}

/* Settling as a background scan, kept cheap: a pass over the versions starts when versions
 * were written since the last pass began, or when the last pass left records waiting (a
 * holder's write too recent) and the wait since has doubled (from versions.settle_after, at
 * most 10 minutes; a stream down keeps records waiting for as long); at most one pass per
 * settle_after. Each round (every second) scans in chunks of 2000 records, letting the
 * store's lock go between them, for at most 30 ms (500 ms when every pair has been idle for a
 * second), and the next round goes on. */
typedef struct settle_state {
  bool in_pass;
  uint64_t puts;         /* as_state_version_puts when the last pass began */
  int64_t began_us;      /* when it began */
  int64_t wait_us;       /* before a pass for waiting records only */
  as_settle_pass last;   /* what the last whole pass saw */
  as_settle_pass cur;
  int64_t unreclaimed;   /* records settled since the store was last compacted */
  int64_t before[64];    /* settle_before when the last pass began */
} settle_state;

static bool all_idle_for(engine *e, int64_t now, int64_t us) {
  for (size_t i = 0; i < e->npairs; i++) {
    int64_t idle = atomic_load(&e->pairs[i].idle_since_us);
    if (!atomic_load(&e->pairs[i].streaming) || !idle || now - idle < us) return false;
  }
  return true;
}

/* A settled record is a quarter of what it was, but its page keeps the room (SQLite does not
 * merge pages that are still half full): after settling at least a quarter of the records
 * (10,000 or more), the store is compacted once every pair has been idle for 2 s. */
static void settle_compact(engine *e, settle_state *ss) {
  if (ss->unreclaimed < 10000 || ss->unreclaimed * 4 < ss->last.seen ||
      !all_idle_for(e, as_now_us(), 2000000))
    return;
  int64_t before = 0, after = 0;
  as_error err;
  int64_t t0 = as_now_us();
  if (as_state_compact(e->state, &before, &after, &err) != AS_OK) {
    AS_LOG(AS_LOG_WARN, "engine", "%s", err.message);
  } else {
    AS_LOG(AS_LOG_INFO, "engine", "state store compacted after settling %lld version records: "
           "%lld -> %lld bytes in %lld ms", (long long)ss->unreclaimed, (long long)before,
           (long long)after, (long long)((as_now_us() - t0) / 1000));
  }
  ss->unreclaimed = 0;
}

static bool settle_due(engine *e, settle_state *ss, int64_t now, const int64_t *before) {
  uint64_t puts = as_state_version_puts(e->state);
  int64_t base = e->cfg->settle_after_ms * 1000;
  /* nothing can settle that could not when the last pass began unless a node's streams have
   * read on since (under a steady load they seldom find nothing to read) */
  bool on = false;
  for (size_t i = 0; i < 64; i++) on |= before[i] > ss->before[i];
  if (!on || now - ss->began_us < base) return false; /* at most one pass per settle_after */
  if (puts != ss->puts) {
    ss->wait_us = base;
  } else if (ss->last.waiting == 0 || now - ss->began_us < ss->wait_us) {
    return false;
  } else if (ss->last.settled == 0 && ss->wait_us < 600 * 1000000LL) {
    ss->wait_us *= 2; /* nothing came of the last pass: wait longer */
  }
  ss->in_pass = true;
  ss->puts = puts;
  ss->began_us = now;
  memcpy(ss->before, before, sizeof ss->before);
  ss->cur = (as_settle_pass){0};
  return true;
}

static void settle_versions(engine *e, settle_state *ss) {
  int64_t start = as_now_us();
  int64_t before[64] = {0};
  settle_before(e, start, before, 64);
  if (!ss->in_pass && !settle_due(e, ss, start, before)) {
    settle_compact(e, ss);
    return;
  }
  /* nobody waits for the store's lock when every pair is idle */
  int64_t budget = all_idle_for(e, start, 1000000) ? 500000 : 30000;
  for (int chunk = 0; chunk < 1000 && as_now_us() - start < budget; chunk++) {
    as_error err;
    if (as_state_versions_settle(e->state, before, 64, 2000, &ss->cur, &err) < 0) {
      AS_LOG(AS_LOG_WARN, "engine", "settling versions: %s", err.message);
      return;
    }
    if (ss->cur.wrapped) {
      ss->in_pass = false;
      ss->last = ss->cur;
      ss->unreclaimed += ss->cur.settled;
      if (ss->cur.settled)
        AS_LOG(AS_LOG_DEBUG, "engine", "settled %lld version records (%lld waiting)",
               (long long)ss->cur.settled, (long long)ss->cur.waiting);
      return;
    }
  }
}

/* The supervisor: health, idle exit, tombstone and relay purge, leftover repairs. */
static void supervise(engine *e) {
  int64_t last_purge = as_now_us(), last_drain = as_now_us(), last_check = as_now_us(),
          last_gauges = 0, last_quick = as_now_us(), last_mirror = 0, last_settle = 0;
  /* a first pass soon after start: records may wait from an earlier run */
  settle_state settling = {.wait_us = e->cfg->settle_after_ms * 1000, .puts = UINT64_MAX};
  while (!eng_stopping(e)) {
    eng_sleep_ms(e, 50);
    bool all_idle = true, any_failed = false, all_failed = true;
    int64_t now = as_now_us();
    for (size_t i = 0; i < e->npairs; i++) {
      eng_pair *p = &e->pairs[i];
      bool failed = atomic_load(&p->failed) != 0;
      int64_t idle = atomic_load(&p->idle_since_us);
      any_failed |= failed;
      all_failed &= failed;
      if (!atomic_load(&p->streaming) || !idle || now - idle < e->o->exit_when_idle_ms * 1000)
        all_idle = false;
    }
    report_health(e, now);
    if (any_failed && all_failed) break;
    if (e->o->exit_when_idle_ms > 0 && all_idle && as_state_repair_count(e->state) == 0) {
      AS_LOG(AS_LOG_INFO, "engine", "idle for %lld ms: stopping", (long long)e->o->exit_when_idle_ms);
      break;
    }
    if (now - last_purge > 10 * 1000000LL) {
      as_state_purge_tombstones(e->state, e->cfg->tombstone_retention_ms, NULL);
      purge_relays(e);
      last_purge = now;
    }
    if (e->cfg->settle_after_ms > 0 && now - last_settle > 1000000LL) {
      settle_versions(e, &settling);
      last_settle = as_now_us();
    }
    if (now - last_gauges > 5 * 1000000LL) {
      read_gauges(e);
      last_gauges = now;
    }
    if (now - last_check > 60 * 1000000LL) {
      check_capture(e);
      last_check = now;
    }
    if (now - last_quick > 10 * 1000000LL) {
      as_error qerr; /* the quick signatures of every pair (no table read) */
      if (as_verify_quick_gauges(e->cfg, e->state, &qerr) < 0)
        AS_LOG(AS_LOG_WARN, "verify", "quick signatures: %s", qerr.message);
      last_quick = as_now_us();
    }
    if (eng_conflict_mirror_on(e) && now - last_mirror > 2 * 1000000LL) {
      as_error merr; /* the conflicts table an application reads */
      if (eng_conflict_mirror(e, &merr) != AS_OK)
        AS_LOG(AS_LOG_WARN, "conflicts", "conflicts table: %s", merr.message);
      last_mirror = as_now_us();
    }
    if (now - last_drain > 5 * 1000000LL && as_state_repair_count(e->state) > 0) {
      as_error derr; /* repairs a pair could not finish (a node was down) */
      if (eng_repairs_drain(e, &derr) != AS_OK) AS_LOG(AS_LOG_WARN, "repair", "%s", derr.message);
      last_drain = as_now_us();
    }
  }
}

/* The periodic verify (`verify: {every, repair}`): a thread of its own, since one verify reads
 * whole tables (in the databases) and may take a while; it uses its own connections. */
static void *verify_main(void *arg) {
  engine *e = arg;
  int64_t every = e->cfg->verify_every_ms * 1000, next = as_now_us() + every;
  while (!eng_stopping(e)) {
    eng_sleep_ms(e, 200);
    if (as_now_us() < next || eng_stopping(e)) continue;
    as_error err = {0};
    as_verify_periodic(e->cfg, e->cfg->verify_repair, &err); /* logs and sets the gauges */
    next = as_now_us() + every;
  }
  return NULL;
}

static int start_threads(engine *e, as_error *err) {
  if (e->cfg->verify_every_ms > 0) {
    if (pthread_create(&e->verify_th, NULL, verify_main, e) != 0)
      return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "cannot start thread: %s", strerror(errno));
    e->verify_started = true;
  }
  for (size_t i = 0; i < e->npairs; i++) {
    if (pthread_create(&e->pairs[i].th, NULL, eng_pair_main, &e->pairs[i]) != 0) {
      atomic_store(&e->stop, 1);
      return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "cannot start thread: %s", strerror(errno));
    }
    e->pairs[i].started = true;
  }
  return AS_OK;
}

int as_engine_run(const as_config *cfg, const as_engine_opts *o, as_error *err) {
  engine e;
  eng_init(&e, cfg, o);
  int rc = start(&e, err);
  if (rc != AS_OK) goto done;
  AS_LOG(AS_LOG_INFO, "engine", "%zu nodes, %zu mappings, %zu streams", e.nnodes, cfg->nschemas,
         e.npairs);
  as_metrics_set_health(true, NULL);
  rc = start_threads(&e, err);
  if (rc == AS_OK) supervise(&e);
  as_error merr; /* the conflicts table as the run leaves them */
  if (rc == AS_OK && eng_conflict_mirror(&e, &merr) != AS_OK)
    AS_LOG(AS_LOG_WARN, "conflicts", "conflicts table: %s", merr.message);
  atomic_store(&e.stop, 1);
  interrupt_nodes(&e);
  for (size_t i = 0; i < e.npairs; i++) {
    if (e.pairs[i].started) pthread_join(e.pairs[i].th, NULL);
  }
  if (e.verify_started) pthread_join(e.verify_th, NULL);
  for (size_t i = 0; i < e.npairs; i++) {
    if (atomic_load(&e.pairs[i].failed) && rc == AS_OK) {
      rc = as_error_set(err, AS_DOM_ENGINE, AS_ERR, "stream %s stopped: %s",
                        e.pairs[i].stream_id, e.pairs[i].error);
    }
  }
  AS_LOG(AS_LOG_INFO, "engine", "stopped");
done:
  for (size_t i = 0; i < e.npairs; i++) {
    free(e.pairs[i].ckpt);
    free(e.pairs[i].pending_ckpt);
    free(e.pairs[i].mstats);
  }
  free(e.pairs);
  eng_nodes_free(&e);
  as_metrics_stop();
  as_metrics_conflicts_store(NULL);
  as_state_close(e.state);
  free_resolvers(&e);
  eng_conflict_mirror_free(&e);
  eng_free(&e);
  return rc;
}
