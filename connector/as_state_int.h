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
  bool pending; /* added by the open transaction */
  bool lost;    /* added by a transaction that rolled back: to be looked up or added again */
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
  state_name *kprefixes;  /* interned key prefixes (as_state_keys.c) */
  size_t nkprefixes;
  uint64_t puts;          /* version writes (as_state_version_puts) */
  int64_t settle_m;       /* where as_state_versions_settle goes on: (m, key) of the last row */
  uint8_t *settle_key;
  size_t settle_keylen;
  bool keys_text;         /* a read-only look at a store whose version keys are still text */
  bool conflicts_v2;      /* the conflicts table has the columns of as_conflict_rec */
  bool quick_on;          /* version puts keep the quick-verify signatures (as_state_quick_enable) */
  struct quick_set **qsets; /* the signatures in memory, by (mapping, node id) */
  size_t nq, capq;
  sqlite3_stmt *dv;       /* PRAGMA data_version */
  sqlite3_stmt *qput;     /* one quick-verify bucket */
  int64_t data_version;   /* as last seen: another connection's commit changes it */
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
/* Quick-verify signatures (as_state_quick.c), all with the lock held:
 * note: one key's version record changes from old (NULL: none) to now;
 * flush: writes the sets notes changed (inside the transaction, before COMMIT);
 * drop: forgets the sets in memory (a rollback: they are read again from the store). */
int as_state_quick_note_locked(as_state *st, const char *mapping, const char *key,
                               const as_version *old, const as_version *now, as_error *err);
int as_state_quick_flush_locked(as_state *st, as_error *err);
void as_state_quick_drop_locked(as_state *st);

/* At the start of a transaction: when another connection (another process: verify --repair,
 * conflicts resolve, dlq retry) committed since this one last looked, forgets what this
 * process keeps in memory (the version cache, the quick signatures). */
void as_state_external_check_locked(as_state *st);

/* Unsigned LEB128 varints of version records and packed keys: put writes v at p (at most 10
 * bytes) and returns the count; get reads one at *p (< end), moving *p past it. */
size_t as_varint_put(uint8_t *p, uint64_t v);
bool as_varint_get(const uint8_t **p, const uint8_t *end, uint64_t *out);

/* A key as the versions table spells it (as_state_keys.c): p[0..len), in buf when it fits. */
typedef struct as_packed_key {
  uint8_t *p, *heap;
  size_t len;
  uint8_t buf[256];
} as_packed_key;
/* Packs canonical key text; create: a prefix not seen yet is added to key_prefixes (else
 * AS_ENOTFOUND: no stored key has it). Free with as_packed_key_free. */
int as_state_key_pack(as_state *st, const char *key, bool create, as_packed_key *out,
                      as_error *err);
void as_packed_key_free(as_packed_key *k);
/* The canonical text of a packed key (heap; NULL when not a packed key of this store). */
char *as_state_key_unpack(as_state *st, const void *packed, size_t len);
void as_state_keys_close(as_state *st);
/* The id of the interned name[0..len) of table (nodes, mappings, key_prefixes: columns id and
 * name), from arr (n entries) or the table; create: added when absent (else AS_ENOTFOUND). */
int as_state_intern_locked(as_state *st, const char *table, state_name **arr, size_t *n,
                           const char *name, size_t len, bool create, int64_t *out,
                           as_error *err);

/* Drops the pending cache updates (rollback) or applies them (commit). */
void as_state_cache_settle(as_state *st, bool committed);

#endif
