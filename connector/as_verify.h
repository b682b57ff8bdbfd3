/* as_verify.h — `arraysync verify`: are two nodes' copies of a mapping equal, and where not?
 *
 * For every mapping and every pair of nodes that share it (with --nodes only that pair; under
 * hub-and-spoke the hub against each spoke; otherwise every pair), the key space is cut into
 * segments with the same boundaries on both nodes (chosen from one side: SQLite, then
 * PostgreSQL, then MongoDB, whichever is cheapest to ask). A segment's signature is (row
 * count, sum of row hashes mod 2^64), computed inside each database (adapter.h, "verify";
 * row hash: mappings/as_rowhash.h). Equal segments are done; a segment that differs is split
 * again (up to 32 parts, boundaries from the side holding more of its rows) until both sides
 * hold at most 128 rows of it, or one side none; then the keys and row hashes of that leaf are
 * fetched and merged: only on A, only on B, different hashes. Each candidate is then read
 * again from both nodes with the adapters' read_row (fresh reads, after a short pause when a
 * connector is running, so changes in flight settle) and compared exactly on the C canonical
 * text; only what still differs is reported. (A server expression that cannot render a value
 * exactly, e.g. a MongoDB double inside a json value that $toString cannot print exactly,
 * only makes its segment differ: the exact comparison decides.)
 *
 * Hashing on the server needs $toHashedIndexKey on MongoDB; a server that refuses it makes the
 * pair fall back to client-side hashing (rows fetched, XXH3; as_verify_pair.client and note).
 * With --hash-on client every pair hashes on the client.
 *
 * Repair (--repair): the winner of each differing key is written to the other node through
 * the adapter's begin/apply/commit, marked with the winner's origin (so its capture sees an
 * echo, which never travels back) and no checkpoint. --prefer NODE: that node's state wins
 * (its row copied, or the key deleted where it has none). Otherwise the state store decides
 * where it knows a version of the key: the greatest (hlc, origin) recorded, read from its
 * origin node (a tombstone deletes); keys without a version are reported and left alone.
 *
 * Threads: a run opens its own node connections; both sides of a pair are queried in
 * parallel. as_verify_periodic may be called from any thread (the engine's scheduler). */
#ifndef AS_VERIFY_H
#define AS_VERIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "as_config.h"
#include "as_state.h"

typedef enum as_hash_on { AS_HASH_AUTO = 0, AS_HASH_SERVER, AS_HASH_CLIENT } as_hash_on;

typedef struct as_verify_opts {
  const char *const *mappings; /* names to verify; none = every mapping */
  size_t nmappings;
  const char *node_a, *node_b; /* --nodes A,B (both or neither) */
  bool repair;
  const char *prefer;          /* --prefer NODE (with repair) */
  as_hash_on hash_on;
  int64_t recheck_after_ms;    /* pause before the re-check; < 0: 1 s when a connector has
                                  updated a stream in the last minute, else none */
  bool log_differences;        /* one log line per difference (periodic verify) */
  bool quick;                  /* --quick: compare the state store's quick signatures */
} as_verify_opts;

typedef struct as_verify_keys {
  char **v;                    /* each key's canonical JSON value (as_verify_key_text) */
  size_t n, cap;
} as_verify_keys;

typedef struct as_verify_pair {
  const as_schema *s;
  const char *a, *b;           /* node names (borrowed from the config) */
  int64_t rows_a, rows_b;
  as_verify_keys only_a, only_b, different;
  uint64_t segments;           /* segments whose signatures were compared */
  uint64_t bytes_a, bytes_b;   /* received from each node by the verify sessions */
  double seconds;
  bool client;                 /* rows were hashed on the client */
  char note[512];              /* why (client hashing chosen automatically), or "" */
  size_t repaired;             /* keys written by --repair */
  size_t unresolved;           /* differing keys --repair left alone (no known winner, or a node
                                * refused the row: a warning says why) */
  bool quick;                  /* compared by quick signatures (no table read) */
  size_t buckets_differ;       /* --quick: buckets whose signatures differ */
  size_t unreadable_a, unreadable_b; /* rows whose key the mapping cannot read (dead letters
                                      * of the capture): never equal, never repaired */
} as_verify_pair;

typedef struct as_verify_report {
  as_verify_pair *p;
  size_t n;
} as_verify_report;

/* Runs verify. AS_EINVAL (err names the mapping/node) for bad options: an unknown mapping or
 * node, --nodes naming the same node twice or a pair that shares none of the mappings, a
 * --prefer node that is not configured, a node kind without verify. Nothing is written unless
 * o->repair. On success *out holds one entry per mapping and pair (free with
 * as_verify_report_free). */
int as_verify_run(const as_config *cfg, const as_verify_opts *o, as_verify_report *out,
                  as_error *err);
void as_verify_report_free(as_verify_report *r);
/* True when no pair has a remaining difference (after repair: every one repaired). */
bool as_verify_report_equal(const as_verify_report *r, bool after_repair);
/* How many differences one pair found: keys on one node only, keys that differ, quick
 * buckets that differ and rows neither side could read (0: equal). */
size_t as_verify_pair_differences(const as_verify_pair *x);

/* The JSON array described in docs (one object per mapping and pair; key lists complete). */
int as_verify_print_json(const as_verify_report *r, FILE *out);
/* Human summary: per mapping and pair, rows on each side, segments, differing keys by kind
 * with the first few, time and bytes received from each node. */
void as_verify_print_text(const as_verify_report *r, bool repair, FILE *out);

/* One verify of every mapping and pair for `run` (config `verify: {every, repair}`): logs a
 * line per difference, sets arraysync_verify_diff_keys{mapping,nodes} and, when it completes,
 * arraysync_verify_last_success_timestamp. Returns the number of differing keys, or a
 * negative AS_* code. */
int64_t as_verify_periodic(const as_config *cfg, bool repair, as_error *err);

/* The quick comparison of every mapping and pair from the state store st (what verify --quick
 * prints), into the gauge arraysync_verify_quick_diff_segments{mapping,nodes}; a WARN log line
 * when a pair that was equal starts to differ. Returns the number of differing segments. No
 * table is read: `run` calls it every 10 s. */
int64_t as_verify_quick_gauges(const as_config *cfg, as_state *st, as_error *err);

/* ---- --quick (docs/VERIFY.md): compares the quick signatures the state store keeps
 * (as_state.h, as_state_quick_*) of two nodes, bucket by bucket, without reading any table. */

#endif
