/* as_nodes.c — the engine's nodes, locks and small helpers (see as_engine_int.h). */
#include "as_engine_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "as_log.h"
#include "as_time.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000

bool eng_stopping(engine *e) {
  return atomic_load(&e->stop) || (e->o->stop && atomic_load(e->o->stop));
}

void eng_sleep_ms(engine *e, int64_t ms) {
  while (ms > 0 && !eng_stopping(e)) {
    int64_t step = ms > 50 ? 50 : ms;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = step * 1000000L};
    nanosleep(&ts, NULL);
    ms -= step;
  }
}

/* xorshift64*: a per-thread generator for jitter (rand() is not thread-safe). */
static uint64_t next_rand(uint64_t *s) {
  if (*s == 0) *s = (uint64_t)as_now_us() | 1;
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}

int64_t eng_backoff_ms(uint64_t *rng, int attempt) {
  int64_t ms = BACKOFF_MIN_MS;
  for (int i = 0; i < attempt && ms < BACKOFF_MAX_MS; i++) ms *= 2;
  if (ms > BACKOFF_MAX_MS) ms = BACKOFF_MAX_MS;
  return ms / 2 + (int64_t)(next_rand(rng) % (uint64_t)(ms / 2 + 1)); /* jitter: [ms/2, ms] */
}

void eng_init(engine *e, const as_config *cfg, const as_engine_opts *o) {
  memset(e, 0, sizeof *e);
  e->cfg = cfg;
  e->o = o;
  atomic_init(&e->stop, 0);
  pthread_mutex_init(&e->progress_mu, NULL);
  for (size_t i = 0; i < ENG_KEY_STRIPES; i++) pthread_mutex_init(&e->stripes[i], NULL);
}

void eng_free(engine *e) {
  pthread_mutex_destroy(&e->progress_mu);
  for (size_t i = 0; i < ENG_KEY_STRIPES; i++) pthread_mutex_destroy(&e->stripes[i]);
}

size_t eng_stripe_of(const as_schema *s, const char *key) {
  return (size_t)((XXH3_64bits(key, strlen(key)) ^ (uintptr_t)s) % ENG_KEY_STRIPES);
}

static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

void eng_stripes_lock(engine *e, size_t *idx, size_t n) {
  if (n > 1) qsort(idx, n, sizeof *idx, cmp_size);
  for (size_t i = 0; i < n; i++) {
    if (i > 0 && idx[i] == idx[i - 1]) continue;
    pthread_mutex_lock(&e->stripes[idx[i]]);
  }
}

void eng_stripes_unlock(engine *e, const size_t *idx, size_t n) {
  for (size_t i = n; i-- > 0;) {
    if (i > 0 && idx[i] == idx[i - 1]) continue;
    pthread_mutex_unlock(&e->stripes[idx[i]]);
  }
}

eng_node *eng_find_node(engine *e, const char *name) {
  for (size_t i = 0; name && i < e->nnodes; i++) {
    if (strcmp(e->nodes[i].cfg->name, name) == 0) return &e->nodes[i];
  }
  return NULL;
}

bool eng_node_has_schema(const eng_node *n, const as_schema *s) {
  for (size_t i = 0; i < n->nschemas; i++) {
    if (n->schemas[i] == s) return true;
  }
  return false;
}

int eng_node_connect(engine *e, eng_node *n, as_error *err) {
  int attempt = 0;
  uint64_t rng = 0;
  for (;;) {
    pthread_mutex_lock(&n->mu);
    int rc = n->ad->connect(n->node, err);
    pthread_mutex_unlock(&n->mu);
    if (rc != AS_RETRY) {
      if (rc == AS_OK && attempt > 0) AS_LOG(AS_LOG_INFO, n->comp, "connected after %d retries", attempt);
      return rc;
    }
    if (attempt == 0) AS_LOG(AS_LOG_WARN, n->comp, "cannot connect (%s); retrying with backoff", err->message);
    if (eng_stopping(e)) return AS_RETRY;
    eng_sleep_ms(e, eng_backoff_ms(&rng, attempt++));
  }
}

void eng_nodes_free(engine *e) {
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

int eng_nodes_init(engine *e, bool connect, as_error *err) {
  const as_config *c = e->cfg;
  e->nodes = calloc(c->nnodes ? c->nnodes : 1, sizeof *e->nodes);
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
    if (e->state && as_state_node_id(e->state, n->cfg->name, &n->id, err) != AS_OK) return AS_ERR;
    n->schemas = calloc(c->nschemas ? c->nschemas : 1, sizeof *n->schemas);
    if (!n->schemas) return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
    for (size_t k = 0; k < c->nschemas; k++) n->schemas[n->nschemas++] = c->schemas[k];
    int rc = n->ad->init(n->cfg, n->schemas, n->nschemas, &n->node, err);
    if (rc != AS_OK) {
      as_error_prefix(err, "node %s", n->cfg->name);
      return rc;
    }
    if (connect) {
      rc = eng_node_connect(e, n, err);
      if (rc != AS_OK) {
        as_error_prefix(err, "node %s", n->cfg->name);
        return rc;
      }
    }
  }
  return AS_OK;
}

const as_resolver *eng_resolver(engine *e, const as_schema *s) {
  for (size_t i = 0; e->resolvers && i < e->cfg->nschemas; i++) {
    if (e->cfg->schemas[i] == s) return e->resolvers[i];
  }
  return NULL;
}
