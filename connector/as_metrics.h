/* as_metrics.h — process-wide counters and the Prometheus /metrics + /healthz endpoint. */
#ifndef AS_METRICS_H
#define AS_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "as_error.h"

/* Counter families, labelled by pair (source, target) and mapping. */
typedef enum as_metric {
  AS_M_CAPTURED = 0, /* deltas read from the source */
  AS_M_APPLIED,      /* deltas written to the target */
  AS_M_SKIPPED,      /* echoes and routed-away deltas */
  AS_M_CONFLICTS,    /* deltas that lost last-write-wins */
  AS_M_DEAD,         /* dead letters */
  AS_M_REPAIRS,      /* winners written back to a node that lost a race */
  AS_M_SNAPSHOT_ROWS,
  AS_M__COUNT
} as_metric;

void as_metrics_add(const char *source, const char *target, const char *mapping, as_metric m,
                    int64_t n);
void as_metrics_batch(const char *source, const char *target, int64_t rows);
void as_metrics_lag(const char *source, const char *target, double seconds);
void as_metrics_snapshot_total(const char *source, const char *target, const char *mapping,
                               int64_t total);
/* /healthz answers 200 "ok" when healthy, else 503 with the reason (e.g. which stream stopped
 * or has been retrying against an unreachable node, and since when). */
void as_metrics_set_health(bool healthy, const char *reason);
/* A gauge a node reports: `metric{node="..",consumer=".."} value`. */
void as_metrics_gauge(const char *metric, const char *node, const char *consumer, double value);
int64_t as_metrics_total(as_metric m); /* sum over every label set */
/* Gauges of the periodic verify (as_verify.h): differing keys of a mapping between two nodes
 * ("a,b"), and the unix time of the last verify that completed. */
void as_metrics_verify_diff(const char *mapping, const char *nodes, int64_t keys);
void as_metrics_verify_success(int64_t unix_seconds);
/* arraysync_verify_quick_diff_segments{mapping,nodes}; true when the pair was equal (or not
 * seen) before and now differs. */
bool as_metrics_verify_quick(const char *mapping, const char *nodes, int64_t segments);
/* Conflicts: the mapping's conflict strategy (lww | vector | script), shown as the `strategy`
 * label of arraysync_conflicts_total; and the state store the gauge
 * arraysync_conflicts_open{mapping} (conflicts waiting to be settled, `arraysync conflicts`)
 * is read from at each scrape (NULL: none; the store must outlive the setting). */
void as_metrics_mapping_strategy(const char *mapping, const char *strategy);
struct as_state;
void as_metrics_conflicts_store(struct as_state *st);
/* Renders the Prometheus text exposition (caller frees). */
char *as_metrics_render(void);

/* Serves /metrics and /healthz on "HOST:PORT" (libmicrohttpd, a thread per connection with a
 * 5 s idle timeout: slow or idle clients delay nobody). */
int as_metrics_serve(const char *listen, as_error *err);
void as_metrics_stop(void);
void as_metrics_reset(void);

#endif
