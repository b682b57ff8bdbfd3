/* as_state_int.h — private to the state store (as_state.c, as_state_versions.c,
 * as_state_conflicts.c). */
#ifndef AS_STATE_INT_H
#define AS_STATE_INT_H

#include <pthread.h>
#include <sqlite3.h>

#include "as_state.h"

#define STATE_CACHE_SLOTS 16384 /* power of two; direct-mapped cache of hot keys */

/* A cached version: its record as stored (see as_state_versions.c; decoded on a hit, so that a
 * hit reads exactly what the store holds), followed by "mapping\x1fkey\0" for exact
 * comparison. Slots and pending updates hold one each; its tag (hash of (mapping, key); 0 =
 * empty slot) is in as_state.cache_tags, a compact array, so that a lookup of a key not cached
 * touches no entry. */
typedef struct cache_entry {
  uint32_t len; /* bytes of the record */
  char data[];
} cache_entry;

/* A cache update waiting for the transaction's commit. */
typedef struct cache_pending {
  uint64_t tag;
  cache_entry *e;
} cache_pending;

typedef struct state_name {
  int64_t id;
  char *name;
} state_name;

struct as_state {
  sqlite3 *db;
  pthread_mutex_t mu;
  bool readonly;
  int txn_depth;
  char *path;
  int lock_fd;            /* PATH.lock, held by `run` (as_state_claim) */
  sqlite3_stmt *get, *put;
  sqlite3_stmt *inflight_put, *inflight_del; /* prepared on first use */
  cache_entry **cache;    /* STATE_CACHE_SLOTS entries (NULL: empty) */
  uint64_t *cache_tags;   /* their tags */
  cache_pending *pending;
  size_t npending, cappending;
  state_name *nodes;      /* interned node names, by id */
  size_t nnodes;
  state_name *mappings;   /* interned mapping names */
  size_t nmappings;
  bool conflicts_v2;      /* the conflicts table has the columns of as_conflict_rec */
};

/* "state store: what: sqlite message" */
int as_state_sqlerr(as_state *st, as_error *err, const char *what);
/* Versions part: prepares statements, creates/upgrades the tables (called by as_state_open
 * with the lock held). */
int as_state_versions_open(as_state *st, as_error *err);
void as_state_versions_close(as_state *st);
/* Conflicts part: creates or upgrades the conflicts table (read-write), or notes which form an
 * older store has (read-only). */
int as_state_conflicts_open(as_state *st, as_error *err);
/* Drops the pending cache updates (rollback) or applies them (commit). */
void as_state_cache_settle(as_state *st, bool committed);

#endif
