/* as_engine_int.h — what the parts of the engine share (private to connector/).
 *
 *   as_engine.c    run: set-up, the supervisor loop, shut-down; install/uninstall
 *   as_nodes.c     nodes: init, connect with backoff, locks, small helpers
 *   as_pair.c      the pair thread: open (checkpoint or snapshot), stream loop, retries; stats
 *   as_snapshot.c  the initial copy of a pair's mappings
 *   as_batch.c     one batch: label -> resolve -> versions (write-ahead) -> apply -> stamp -> ack
 *   as_repair.c    repairs: the winner written to a node that holds an older value
 *   as_resolve*.c  the resolver seam and its strategies
 *   as_dlq.c       `arraysync dlq retry`
 *
 * Concurrency. One thread per routed pair (source -> target) plus the supervisor. Decisions
 * about a key and the writes they lead to are made under that key's stripe lock (one of
 * ENG_KEY_STRIPES mutexes, chosen by a hash of mapping and key): a batch takes the stripes of
 * all its keys in ascending order, then the target node's lock around the adapter calls. A
 * repair takes its key's stripe, then one node lock at a time. Node locks are always taken
 * after stripes and never two at once, so there is no lock cycle; pairs whose batches share no
 * key run in parallel. Every wait on a database is bounded by the adapters (timeouts), and a
 * stop interrupts it (adapter `interrupt`). */
#ifndef AS_ENGINE_INT_H
#define AS_ENGINE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "adapter.h"
#include "as_engine.h"
#include "as_resolve.h"
#include "as_state.h"

#define ENG_KEY_STRIPES 1024
#define ENG_SNAPSHOT_PREFIX "as-snapshot:"
#define ENG_RELAY_PREFIX "as-relay:"

typedef struct eng_node {
  const as_node_config *cfg;
  const as_adapter *ad;
  as_node *node;
  const as_schema **schemas;
  size_t nschemas;
  pthread_mutex_t mu; /* sink side and admin calls: one thread at a time */
  uint16_t id;        /* the node's id in the state store */
  _Atomic int64_t relay_tail; /* the newest relay log entry written for this node */
  char comp[96];
} eng_node;

typedef struct engine engine;

/* A conflicts mirror table (as_conflict_mirror.c). */
typedef struct eng_mirror_table {
  char *node, *table;
} eng_mirror_table;

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
  char *pending_ckpt;    /* a newer position than ckpt, not committed: the checkpoint of the
                          * last batch deferred (it held nothing to write), committed at the
                          * next batch or at stop (commit_pending); NULL when there is none */
  as_stream_stats stats;
  as_stream_mapping_stats *mstats; /* per mapping counters, one per config schema */
  int64_t last_stats_us;
  atomic_bool streaming;
  _Atomic int64_t idle_since_us; /* 0 = busy */
  /* when the last poll that found nothing (no change, no relay) began: every change committed
   * on the source before then has been decided (0: not streaming) */
  _Atomic int64_t caught_up_us;
  atomic_int failed;             /* AS_ERR: stopped for good */
  char error[512];               /* written by the pair thread; read after it joined */
  bool outage;           /* in a retry loop: log once per outage */
  _Atomic int64_t outage_since_us; /* when the current outage began (0: none) */
  bool force_snapshot;   /* ignore the checkpoint: copy every mapping again */
  bool relays;           /* the source passes changes on to the target (relay log) */
  int64_t relay_seq;     /* relay log entries up to this one are committed in the target */
  _Atomic int64_t relay_committed; /* the same, for the supervisor's purge */
  uint64_t rng;          /* this thread's jitter */
  /* a snapshot copy into a target that held rows when the copy began: keys nobody synced
   * yet are compared with the target's row first (mapping initial_sync) */
  bool probe;
} eng_pair;

struct engine {
  const as_config *cfg;
  const as_engine_opts *o;
  as_state *state;
  eng_node *nodes;
  size_t nnodes;
  eng_pair *pairs;
  size_t npairs;
  atomic_int stop;
  as_resolver **resolvers; /* one per config schema */
  pthread_mutex_t progress_mu;
  pthread_mutex_t stripes[ENG_KEY_STRIPES];
  pthread_t verify_th; /* the periodic verify (config verify.every), when started */
  bool verify_started;
  eng_mirror_table *mirror_ready; /* conflicts mirror tables known to exist (as_conflict_mirror.c) */
  size_t nmirror_ready;
};

/* ---- as_nodes.c ---- */
bool eng_stopping(engine *e);
void eng_sleep_ms(engine *e, int64_t ms);
int64_t eng_backoff_ms(uint64_t *rng, int attempt);
int eng_nodes_init(engine *e, bool connect, as_error *err);
void eng_nodes_free(engine *e);
int eng_node_connect(engine *e, eng_node *n, as_error *err);
eng_node *eng_find_node(engine *e, const char *name);
bool eng_node_has_schema(const eng_node *n, const as_schema *s);
/* The resolver of a mapping (NULL for a schema not in the config). */
const as_resolver *eng_resolver(engine *e, const as_schema *s);
/* Sets up what engine needs beyond the config (locks); undone by eng_free. */
void eng_init(engine *e, const as_config *cfg, const as_engine_opts *o);
void eng_free(engine *e);
/* Key stripes. */
size_t eng_stripe_of(const as_schema *s, const char *key);
void eng_stripes_lock(engine *e, size_t *idx, size_t n);   /* sorts and dedups idx first */
void eng_stripes_unlock(engine *e, const size_t *idx, size_t n);

/* ---- as_pair.c ---- */
enum { ENG_C_CAPTURED, ENG_C_APPLIED, ENG_C_SKIPPED, ENG_C_CONFLICTS, ENG_C_DEAD };
void eng_count(eng_pair *p, const as_schema *s, int which, int64_t n);
void eng_pair_save_stats(eng_pair *p, const char *phase);
void eng_record_dead(engine *e, eng_pair *p, const as_schema *s, const char *source,
                     const char *target, const char *stage, const char *key, const char *raw,
                     const char *delta_json, const char *error, const char *pos);
void *eng_pair_main(void *arg);
/* The source adapter's position inside an engine checkpoint. */
const char *eng_ckpt_source_pos(const char *ckpt);
/* Whether the delta goes to this pair's target at all (mapping, direction, topology). */
bool eng_routed(eng_pair *p, const as_delta *d, bool snapshot);

/* ---- as_batch.c ---- */
typedef struct eng_work eng_work;
eng_work *eng_work_new(void);
void eng_work_free(eng_work *w);
/* One batch end to end. snapshot: rows copied by a snapshot. ckpt: the checkpoint to commit
 * with it (NULL: unchanged). */
int eng_process_batch(eng_pair *p, as_batch *b, bool snapshot, const char *ckpt, eng_work *w,
                      as_error *err);

/* ---- as_repair.c ---- */
/* Writes the key's winning row to node `to` (as_repair.c), or with delta_json the columns of
 * that stored change of `to`'s own that still win. Takes the key's stripe. A row that cannot
 * be written is a dead letter (AS_OK); AS_RETRY/AS_ERR when a node failed. repair_id: the
 * queued record to remove once done (0 = none). p: for counters and logs (may be NULL). */
int eng_repair(engine *e, eng_pair *p, const as_schema *s, const char *key, eng_node *to,
               eng_node *from, const char *delta_json, int64_t repair_id, as_error *err);
/* The same without dead letters or queue: AS_ENOTFOUND when the state knows no version of
 * the key, AS_EDATA (err says why) when the winner cannot be mapped or written (dlq retry). */
int eng_write_winner(engine *e, const as_schema *s, const char *key, eng_node *to,
                     eng_node *from, as_error *err);
/* The key's current row as the state knows it (v), for a resolver that looks at it (the
 * script's `mine`): `to`'s own row where `to` made or is known to hold (committed) the winning
 * version of a column; every other column read from a node that holds it, as a repair reads
 * it; a column no node is known to hold keeps `to`'s value. `out` is allocated here.
 * AS_ENOTFOUND: the version is a tombstone, or no node has a row. Call under the key's
 * stripe. */
int eng_current_row(engine *e, const as_schema *s, const char *key, const as_row *keyrow,
                    const as_version *v, eng_node *to, as_row *out, as_error *err);
/* Runs every repair left in the state store's queue (after a crash). */
int eng_repairs_drain(engine *e, as_error *err);
/* Node n's row of the key in keyrow, under n's lock (`out` is allocated here; AS_ENOTFOUND:
 * no such row). */
int eng_read_row(eng_node *n, const as_schema *s, const as_row *keyrow, as_row *out, as_error *err);

/* ---- as_conflict_mirror.c ---- */
/* One pass of the conflicts mirror (conflicts: { node, table } of a mapping or of the
 * configuration): each table follows the open conflicts of its mappings; a row the
 * application deleted settles its conflict. AS_OK when not configured. Takes a node's lock for
 * each call to it. */
int eng_conflict_mirror(engine *e, as_error *err);
/* Whether any mapping's conflicts are mirrored. */
bool eng_conflict_mirror_on(const engine *e);
/* Frees what the passes remembered. */
void eng_conflict_mirror_free(engine *e);

/* ---- as_snapshot.c ---- */
/* Runs (or resumes) the snapshot; on success *final_pos is the stream position to stream
 * from. */
int eng_run_snapshot(eng_pair *p, const char *resume, eng_work *w, char **final_pos,
                     as_error *err);
/* The copies a stream has made (as_state_copied_*): all of them after its snapshot; and the
 * mappings added since, copied while the stream resumes from its checkpoint. */
int eng_snapshot_mark_copied(eng_pair *p, as_error *err);
int eng_copy_new_mappings(eng_pair *p, eng_work *w, as_error *err);
char *eng_snapshot_ckpt(const char *start, size_t mi, const char *after);

#endif
