/* as_metrics.c — counters and the HTTP endpoint (libmicrohttpd) for Prometheus and health
 * checks (see as_metrics.h). */
#include "as_metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "as_buf.h"
#include "as_state.h"

#define MAX_SERIES 512

typedef struct series {
  char source[64], target[64], mapping[96];
  int64_t v[AS_M__COUNT];
  int64_t snapshot_total;
} series;

typedef struct pair_series {
  char source[64], target[64];
  int64_t batches, batch_rows;
  double lag_seconds;
} pair_series;

typedef struct verify_series {
  char mapping[96], nodes[160];
  int64_t keys;
} verify_series;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static verify_series vseries[MAX_SERIES];
static size_t nvseries;
static int64_t verify_success_s;
static verify_series qseries[MAX_SERIES]; /* keys: differing quick segments */
static size_t nqseries;
static series all[MAX_SERIES];
static size_t nall;
static pair_series pairs[MAX_SERIES];
static size_t npairs;
typedef struct gauge_series {
  char metric[96], node[64], consumer[64];
  double value;
} gauge_series;
static gauge_series gauges[MAX_SERIES];
static size_t ngauges;
typedef struct strategy_entry {
  char mapping[96], strategy[16];
} strategy_entry;
static strategy_entry strategies[MAX_SERIES];
static size_t nstrategies;
static as_state *conflicts_store; /* read at each scrape, outside mu */
static pthread_mutex_t store_mu = PTHREAD_MUTEX_INITIALIZER;
static bool healthy = true;
static char health_reason[512] = "a stream stopped on an error; see `arraysync status`";
static struct MHD_Daemon *http;

static const char *const names[AS_M__COUNT] = {
    "arraysync_captured_total",  "arraysync_applied_total",   "arraysync_skipped_total",
    "arraysync_conflicts_total", "arraysync_dead_letters_total", "arraysync_repairs_total",
    "arraysync_snapshot_rows_total"};
static const char *const helps[AS_M__COUNT] = {
    "Deltas read from the source node",
    "Deltas written to the target node",
    "Deltas not sent (echoes, routing, direction)",
    "Conflicts: deltas that lost last-write-wins or met a concurrent version",
    "Changes sent to dead letters",
    "Winners written back to a node that lost a race",
    "Rows copied by snapshots"};

static series *find_series(const char *s, const char *t, const char *m) {
  for (size_t i = 0; i < nall; i++) {
    if (strcmp(all[i].source, s) == 0 && strcmp(all[i].target, t) == 0 &&
        strcmp(all[i].mapping, m) == 0)
      return &all[i];
  }
  if (nall == MAX_SERIES) return NULL;
  series *x = &all[nall++];
  memset(x, 0, sizeof *x);
  snprintf(x->source, sizeof x->source, "%s", s);
  snprintf(x->target, sizeof x->target, "%s", t);
  snprintf(x->mapping, sizeof x->mapping, "%s", m);
  return x;
}

static pair_series *find_pair(const char *s, const char *t) {
  for (size_t i = 0; i < npairs; i++) {
    if (strcmp(pairs[i].source, s) == 0 && strcmp(pairs[i].target, t) == 0) return &pairs[i];
  }
  if (npairs == MAX_SERIES) return NULL;
  pair_series *x = &pairs[npairs++];
  memset(x, 0, sizeof *x);
  snprintf(x->source, sizeof x->source, "%s", s);
  snprintf(x->target, sizeof x->target, "%s", t);
  return x;
}

void as_metrics_add(const char *source, const char *target, const char *mapping, as_metric m,
                    int64_t n) {
  pthread_mutex_lock(&mu);
  series *x = find_series(source, target, mapping ? mapping : "");
  if (x) x->v[m] += n;
  pthread_mutex_unlock(&mu);
}

void as_metrics_batch(const char *source, const char *target, int64_t rows) {
  pthread_mutex_lock(&mu);
  pair_series *x = find_pair(source, target);
  if (x) {
    x->batches++;
    x->batch_rows += rows;
  }
  pthread_mutex_unlock(&mu);
}

void as_metrics_lag(const char *source, const char *target, double seconds) {
  pthread_mutex_lock(&mu);
  pair_series *x = find_pair(source, target);
  if (x) x->lag_seconds = seconds;
  pthread_mutex_unlock(&mu);
}

void as_metrics_snapshot_total(const char *source, const char *target, const char *mapping,
                               int64_t total) {
  pthread_mutex_lock(&mu);
  series *x = find_series(source, target, mapping);
  if (x) x->snapshot_total = total;
  pthread_mutex_unlock(&mu);
}

void as_metrics_gauge(const char *metric, const char *node, const char *consumer, double value) {
  pthread_mutex_lock(&mu);
  gauge_series *g = NULL;
  for (size_t i = 0; i < ngauges && !g; i++) {
    if (strcmp(gauges[i].metric, metric) == 0 && strcmp(gauges[i].node, node) == 0 &&
        strcmp(gauges[i].consumer, consumer ? consumer : "") == 0)
      g = &gauges[i];
  }
  if (!g && ngauges < MAX_SERIES) {
    g = &gauges[ngauges++];
    snprintf(g->metric, sizeof g->metric, "%s", metric);
    snprintf(g->node, sizeof g->node, "%s", node);
    snprintf(g->consumer, sizeof g->consumer, "%s", consumer ? consumer : "");
  }
  if (g) g->value = value;
  pthread_mutex_unlock(&mu);
}

void as_metrics_set_health(bool h, const char *reason) {
  pthread_mutex_lock(&mu);
  healthy = h;
  if (reason) snprintf(health_reason, sizeof health_reason, "%s", reason);
  pthread_mutex_unlock(&mu);
}

int64_t as_metrics_total(as_metric m) {
  int64_t n = 0;
  pthread_mutex_lock(&mu);
  for (size_t i = 0; i < nall; i++) n += all[i].v[m];
  pthread_mutex_unlock(&mu);
  return n;
}

void as_metrics_verify_diff(const char *mapping, const char *nodes, int64_t keys) {
  pthread_mutex_lock(&mu);
  size_t i = 0;
  while (i < nvseries && (strcmp(vseries[i].mapping, mapping) || strcmp(vseries[i].nodes, nodes))) i++;
  if (i == nvseries && nvseries < MAX_SERIES) {
    nvseries++;
    snprintf(vseries[i].mapping, sizeof vseries[i].mapping, "%s", mapping);
    snprintf(vseries[i].nodes, sizeof vseries[i].nodes, "%s", nodes);
  }
  if (i < nvseries) vseries[i].keys = keys;
  pthread_mutex_unlock(&mu);
}

bool as_metrics_verify_quick(const char *mapping, const char *nodes, int64_t segments) {
  pthread_mutex_lock(&mu);
  size_t i = 0;
  while (i < nqseries && (strcmp(qseries[i].mapping, mapping) || strcmp(qseries[i].nodes, nodes))) i++;
  bool was_equal = true;
  if (i == nqseries && nqseries < MAX_SERIES) {
    nqseries++;
    snprintf(qseries[i].mapping, sizeof qseries[i].mapping, "%s", mapping);
    snprintf(qseries[i].nodes, sizeof qseries[i].nodes, "%s", nodes);
  } else if (i < nqseries) {
    was_equal = qseries[i].keys == 0;
  }
  if (i < nqseries) qseries[i].keys = segments;
  pthread_mutex_unlock(&mu);
  return was_equal && segments > 0;
}

void as_metrics_verify_success(int64_t unix_seconds) {
  pthread_mutex_lock(&mu);
  verify_success_s = unix_seconds;
  pthread_mutex_unlock(&mu);
}

void as_metrics_mapping_strategy(const char *mapping, const char *strategy) {
  pthread_mutex_lock(&mu);
  size_t i = 0;
  while (i < nstrategies && strcmp(strategies[i].mapping, mapping) != 0) i++;
  if (i == nstrategies && nstrategies < MAX_SERIES) nstrategies++;
  if (i < nstrategies) {
    snprintf(strategies[i].mapping, sizeof strategies[i].mapping, "%s", mapping);
    snprintf(strategies[i].strategy, sizeof strategies[i].strategy, "%s", strategy);
  }
  pthread_mutex_unlock(&mu);
}

void as_metrics_conflicts_store(as_state *st) {
  pthread_mutex_lock(&store_mu);
  conflicts_store = st;
  pthread_mutex_unlock(&store_mu);
}

static const char *strategy_of(const char *mapping) {
  for (size_t i = 0; i < nstrategies; i++)
    if (strcmp(strategies[i].mapping, mapping) == 0) return strategies[i].strategy;
  return NULL;
}

typedef struct open_acc {
  as_buf *b;
  char last[96];
  int64_t open;
  bool any;
} open_acc;

static void open_flush(open_acc *a);

/* Rows come per (mapping, strategy), in mapping order: one gauge per mapping. */
static int open_row(void *ctx, const char *mapping, const char *strategy, int64_t open,
                    int64_t total) {
  (void)strategy;
  (void)total;
  open_acc *a = ctx;
  if (a->any && strcmp(a->last, mapping) != 0) open_flush(a);
  snprintf(a->last, sizeof a->last, "%s", mapping);
  a->open += open;
  a->any = true;
  return AS_OK;
}

static void label(as_buf *b, const char *k, const char *v, bool last);

static void open_flush(open_acc *a) {
  as_buf_append_str(a->b, "arraysync_conflicts_open{");
  label(a->b, "mapping", a->last, true);
  as_buf_printf(a->b, "} %lld\n", (long long)a->open);
  a->open = 0;
  a->any = false;
}

/* arraysync_conflicts_open from the state store (queried before the counters' lock: a batch
 * holds the store's lock while it counts). */
static void render_open(as_buf *b) {
  pthread_mutex_lock(&store_mu);
  if (conflicts_store) {
    as_buf_append_str(b, "# HELP arraysync_conflicts_open Conflicts recorded and not settled yet "
                         "(arraysync conflicts)\n# TYPE arraysync_conflicts_open gauge\n");
    open_acc a = {.b = b};
    if (as_state_conflict_counts(conflicts_store, open_row, &a, NULL) == AS_OK && a.any)
      open_flush(&a);
  }
  pthread_mutex_unlock(&store_mu);
}

void as_metrics_reset(void) {
  pthread_mutex_lock(&mu);
  nstrategies = 0;
  nvseries = 0;
  verify_success_s = 0;
  nqseries = 0;
  nall = 0;
  npairs = 0;
  healthy = true;
  pthread_mutex_unlock(&mu);
}

/* Label values are node and mapping names: escape \ " and newline as the format requires. */
static void label(as_buf *b, const char *k, const char *v, bool last) {
  as_buf_printf(b, "%s=\"", k);
  for (const char *p = v; *p; p++) {
    if (*p == '\\' || *p == '"') as_buf_putc(b, '\\');
    if (*p == '\n') {
      as_buf_append_str(b, "\\n");
      continue;
    }
    as_buf_putc(b, (uint8_t)*p);
  }
  as_buf_append_str(b, last ? "\"" : "\",");
}

char *as_metrics_render(void) {
  as_buf b = AS_BUF_INIT;
  render_open(&b);
  pthread_mutex_lock(&mu);
  for (int m = 0; m < AS_M__COUNT; m++) {
    as_buf_printf(&b, "# HELP %s %s\n# TYPE %s counter\n", names[m], helps[m], names[m]);
    for (size_t i = 0; i < nall; i++) {
      as_buf_printf(&b, "%s{", names[m]);
      label(&b, "source", all[i].source, false);
      label(&b, "target", all[i].target, false);
      const char *strategy = m == AS_M_CONFLICTS ? strategy_of(all[i].mapping) : NULL;
      label(&b, "mapping", all[i].mapping, !strategy);
      if (strategy) label(&b, "strategy", strategy, true);
      as_buf_printf(&b, "} %lld\n", (long long)all[i].v[m]);
    }
  }
  as_buf_append_str(&b, "# HELP arraysync_snapshot_estimated_rows Estimated rows of the source "
                        "collection or table being copied\n# TYPE arraysync_snapshot_estimated_rows gauge\n");
  for (size_t i = 0; i < nall; i++) {
    if (!all[i].snapshot_total) continue;
    as_buf_append_str(&b, "arraysync_snapshot_estimated_rows{");
    label(&b, "source", all[i].source, false);
    label(&b, "target", all[i].target, false);
    label(&b, "mapping", all[i].mapping, true);
    as_buf_printf(&b, "} %lld\n", (long long)all[i].snapshot_total);
  }
  as_buf_append_str(&b, "# HELP arraysync_lag_seconds Source commit to target commit of the last "
                        "applied delta\n# TYPE arraysync_lag_seconds gauge\n");
  for (size_t i = 0; i < npairs; i++) {
    as_buf_append_str(&b, "arraysync_lag_seconds{");
    label(&b, "source", pairs[i].source, false);
    label(&b, "target", pairs[i].target, true);
    as_buf_printf(&b, "} %.6f\n", pairs[i].lag_seconds);
  }
  as_buf_append_str(&b, "# HELP arraysync_batch_rows Rows per applied batch\n"
                        "# TYPE arraysync_batch_rows summary\n");
  for (size_t i = 0; i < npairs; i++) {
    as_buf_append_str(&b, "arraysync_batch_rows_sum{");
    label(&b, "source", pairs[i].source, false);
    label(&b, "target", pairs[i].target, true);
    as_buf_printf(&b, "} %lld\n", (long long)pairs[i].batch_rows);
    as_buf_append_str(&b, "arraysync_batch_rows_count{");
    label(&b, "source", pairs[i].source, false);
    label(&b, "target", pairs[i].target, true);
    as_buf_printf(&b, "} %lld\n", (long long)pairs[i].batches);
  }
  for (size_t i = 0; i < ngauges; i++) {
    bool first = true;
    for (size_t j = 0; j < i && first; j++) first = strcmp(gauges[j].metric, gauges[i].metric) != 0;
    if (first) as_buf_printf(&b, "# TYPE %s gauge\n", gauges[i].metric);
    as_buf_printf(&b, "%s{node=\"%s\",consumer=\"%s\"} %.0f\n", gauges[i].metric, gauges[i].node,
                  gauges[i].consumer, gauges[i].value);
  }
  if (nvseries || verify_success_s) {
    as_buf_append_str(&b, "# HELP arraysync_verify_diff_keys Keys that differed between two nodes "
                          "at the last periodic verify\n# TYPE arraysync_verify_diff_keys gauge\n");
    for (size_t i = 0; i < nvseries; i++) {
      as_buf_append_str(&b, "arraysync_verify_diff_keys{");
      label(&b, "mapping", vseries[i].mapping, false);
      label(&b, "nodes", vseries[i].nodes, true);
      as_buf_printf(&b, "} %lld\n", (long long)vseries[i].keys);
    }
    as_buf_printf(&b, "# HELP arraysync_verify_last_success_timestamp Unix time of the last "
                      "periodic verify that completed\n# TYPE arraysync_verify_last_success_timestamp "
                      "gauge\narraysync_verify_last_success_timestamp %lld\n",
                  (long long)verify_success_s);
  }
  if (nqseries) {
    as_buf_append_str(&b, "# HELP arraysync_verify_quick_diff_segments Segments whose quick "
                          "signatures (state store) differ between two nodes\n# TYPE "
                          "arraysync_verify_quick_diff_segments gauge\n");
    for (size_t i = 0; i < nqseries; i++) {
      as_buf_append_str(&b, "arraysync_verify_quick_diff_segments{");
      label(&b, "mapping", qseries[i].mapping, false);
      label(&b, "nodes", qseries[i].nodes, true);
      as_buf_printf(&b, "} %lld\n", (long long)qseries[i].keys);
    }
  }
  as_buf_printf(&b, "# HELP arraysync_up 1 when every stream is running\n# TYPE arraysync_up gauge\n"
                    "arraysync_up %d\n", healthy ? 1 : 0);
  pthread_mutex_unlock(&mu);
  return as_buf_steal(&b);
}

/* One request: GET /metrics, GET /healthz. libmicrohttpd runs each connection in its own
 * thread (MHD_USE_THREAD_PER_CONNECTION with a connection timeout), so an idle or slow client
 * never delays another. */
static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls) {
  (void)cls;
  (void)version;
  (void)upload;
  (void)upload_size;
  (void)con_cls;
  const char *type = "text/plain; charset=utf-8";
  unsigned status = MHD_HTTP_OK;
  char *body = NULL;
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    status = MHD_HTTP_METHOD_NOT_ALLOWED;
    body = strdup("only GET\n");
  } else if (strcmp(url, "/metrics") == 0) {
    type = "text/plain; version=0.0.4; charset=utf-8";
    body = as_metrics_render();
  } else if (strcmp(url, "/healthz") == 0) {
    char why[512];
    pthread_mutex_lock(&mu);
    bool h = healthy;
    snprintf(why, sizeof why, "%s", health_reason);
    pthread_mutex_unlock(&mu);
    status = h ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
    as_buf b = AS_BUF_INIT;
    if (as_buf_printf(&b, "%s\n", h ? "ok" : why) == AS_OK) body = as_buf_steal(&b);
    as_buf_free(&b);
  } else {
    status = MHD_HTTP_NOT_FOUND;
    body = strdup("try /metrics or /healthz\n");
  }
  if (!body) return MHD_NO;
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, "Content-Type", type);
  enum MHD_Result rc = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return rc;
}

int as_metrics_serve(const char *listen_addr, as_error *err) {
  char host[128];
  const char *colon = strrchr(listen_addr, ':');
  if (!colon || colon == listen_addr || (size_t)(colon - listen_addr) >= sizeof host) {
    return as_error_set(err, AS_DOM_ENGINE, AS_EINVAL,
                        "metrics address %s: expected HOST:PORT, e.g. 127.0.0.1:9187", listen_addr);
  }
  memcpy(host, listen_addr, (size_t)(colon - listen_addr));
  host[colon - listen_addr] = '\0';
  char *end = NULL;
  long port = strtol(colon + 1, &end, 10);
  if (*end || port <= 0 || port > 65535) {
    return as_error_set(err, AS_DOM_ENGINE, AS_EINVAL, "metrics address %s: bad port", listen_addr);
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "127.0.0.1");
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    return as_error_set(err, AS_DOM_ENGINE, AS_EINVAL, "metrics address %s: bad IPv4 host", listen_addr);
  }
  http = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                MHD_USE_ERROR_LOG,
                            (uint16_t)port, NULL, NULL, answer, NULL, MHD_OPTION_SOCK_ADDR, &sa,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)5,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64, MHD_OPTION_END);
  if (!http) {
    return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "metrics: cannot listen on %s: %s",
                        listen_addr, strerror(errno ? errno : EADDRINUSE));
  }
  return AS_OK;
}

void as_metrics_stop(void) {
  if (!http) return;
  MHD_stop_daemon(http);
  http = NULL;
}
