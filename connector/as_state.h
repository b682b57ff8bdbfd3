/* as_state.h — the state store (DESIGN.md §6.6): an embedded SQLite file with per-key
 * versions (LWW winners and tombstones), stream progress and counters, dead letters and
 * conflicts, with an in-memory cache for hot keys in front of the versions table.
 *
 * Per-key state is keyed by (mapping, partition, key) so it can move between processes later
 * (DESIGN.md §12); this process uses partition 0. Thread-safe: one mutex around the connection.
 * Readers in other processes (`arraysync status`, `dlq list`) open the same file read-only;
 * WAL mode lets them read while `run` writes. */
#ifndef AS_STATE_H
#define AS_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "as_error.h"

typedef struct as_state as_state;

typedef struct as_version {
  int64_t hlc;
  char origin[64];
  bool deleted;       /* tombstone */
  uint64_t hash;      /* row hash of the winning value (0 for tombstones / unknown) */
  int64_t updated_us; /* wall time the version was recorded */
  char writes[256];   /* when the connector last wrote this key to each node:
                         "node=µs;node=µs" (as_version_written / as_version_stamp) */
} as_version;

/* Last time the connector wrote the key to node (0 = never recorded). */
int64_t as_version_written(const as_version *v, const char *node);
/* Records a write of the key to node at us. */
void as_version_stamp(as_version *v, const char *node, int64_t us);

/* Total order of versions: hlc first, then origin name. */
int as_version_compare(int64_t hlc_a, const char *origin_a, int64_t hlc_b, const char *origin_b);

int as_state_open(const char *path, bool readonly, as_state **out, as_error *err);
void as_state_close(as_state *st);

/* Versions. key: canonical JSON of the key. AS_ENOTFOUND if none. */
int as_state_version_get(as_state *st, const char *mapping, const char *key, as_version *out,
                         as_error *err);
int as_state_version_put(as_state *st, const char *mapping, const char *key,
                         const as_version *v, as_error *err);
/* Drops tombstones older than retention; returns how many were dropped. */
int64_t as_state_purge_tombstones(as_state *st, int64_t retention_ms, as_error *err);

/* Batches of puts in one SQLite transaction. */
int as_state_begin(as_state *st, as_error *err);
int as_state_commit(as_state *st, as_error *err);

/* Stream progress and counters ("<source>-><target>"). */
typedef struct as_stream_stats {
  char stream_id[160];
  char source[64];
  char target[64];
  char phase[16];        /* "snapshot" | "streaming" | "stopped" | "error" */
  char checkpoint[512];  /* truncated for display */
  int64_t captured, applied, skipped, conflicts, dead;
  int64_t lag_ms;        /* now - source commit time of the last applied delta */
  int64_t last_ts_us;
  int64_t updated_us;
  char error[512];
} as_stream_stats;

int as_state_stream_put(as_state *st, const as_stream_stats *s, as_error *err);
/* Calls fn for every stream, in stream_id order. */
int as_state_stream_each(as_state *st, int (*fn)(void *ctx, const as_stream_stats *s),
                         void *ctx, as_error *err);

/* Per mapping counters of a stream: captured, applied, skipped, conflicts, dead. */
typedef struct as_stream_mapping_stats {
  char stream_id[160];
  char mapping[96];
  int64_t captured, applied, skipped, conflicts, dead;
} as_stream_mapping_stats;
int as_state_stream_mapping_put(as_state *st, const as_stream_mapping_stats *m, as_error *err);
/* stream_id NULL = every stream. */
int as_state_stream_mapping_each(as_state *st, const char *stream_id,
                                 int (*fn)(void *ctx, const as_stream_mapping_stats *m),
                                 void *ctx, as_error *err);

/* Dead letters. stage: "capture" (source row/document could not be mapped) or "apply"
 * (the target refused it). delta_json: canonical delta JSON when there is one. */
typedef struct as_dead_letter {
  int64_t id;
  int64_t created_us;
  char *mapping, *source, *target, *stage, *key, *raw, *delta_json, *error, *pos, *status;
  int64_t retries;
} as_dead_letter;

int as_state_dead_add(as_state *st, const char *mapping, const char *source, const char *target,
                      const char *stage, const char *key, const char *raw,
                      const char *delta_json, const char *error, const char *pos,
                      as_error *err);
/* status NULL = all; "open", "retried", "resolved". */
int as_state_dead_each(as_state *st, const char *status,
                       int (*fn)(void *ctx, const as_dead_letter *d), void *ctx, as_error *err);
int as_state_dead_set_status(as_state *st, int64_t id, const char *status, const char *error,
                             as_error *err);
int64_t as_state_dead_count(as_state *st, const char *status);

/* Conflicts (recorded by the resolver; both versions kept). */
int as_state_conflict_add(as_state *st, const char *mapping, const char *key,
                          const char *local_json, const char *remote_json,
                          const char *winner, const char *strategy, as_error *err);
int64_t as_state_conflict_count(as_state *st);
typedef struct as_conflict {
  int64_t id, created_us;
  const char *mapping, *key, *local, *remote, *winner, *strategy, *status;
} as_conflict;
int as_state_conflict_each(as_state *st, int (*fn)(void *ctx, const as_conflict *c), void *ctx,
                           as_error *err);

#endif
