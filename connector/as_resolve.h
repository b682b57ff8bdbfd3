/* as_resolve.h — the resolver seam: one decision per incoming change of a key.
 *
 * The engine labels every change with the version it carries (hlc, origin) before asking:
 *   - a local change (made on the node it was captured from): its own commit time, or the
 *     mapping's clock column;
 *   - a relayed change (read from the relay log): the version it was applied with;
 *   - a snapshot copy (the node's current row): the state's row version when that is a change
 *     made on that node, else the version the connector last wrote there (the state store's
 *     held version, when that write is known to have committed), else the oldest (hlc 0).
 * Echoes (the connector's own writes captured back) never reach the resolver.
 *
 * The resolver compares the label with the key's versions in the state store (as_version:
 * the row's version, and versions of single columns written by updates of some columns),
 * decides what the target gets — the whole change, some of its columns, or nothing — and
 * records the new versions in the as_version it was given. Strategies implement the seam,
 * one file each (as_resolve_lww.c, ...); the engine calls only as_resolver_decide. */
#ifndef AS_RESOLVE_H
#define AS_RESOLVE_H

#include <stdbool.h>
#include <stdint.h>

#include "as_row.h"
#include "as_state.h"

typedef struct as_change {
  const as_delta *d;  /* labelled: d->hlc and d->origin are the version it carries */
  uint16_t origin_id; /* state-store id of d->origin */
  const char *source; /* node it was captured from */
  const char *target; /* node it is headed to */
  bool local;         /* made on the source itself (not relayed, not a snapshot copy) */
  uint16_t source_id, target_id; /* state-store ids of source and target */
  /* a local change the connector's last write to its node may have overwritten (the write
   * committed after the change, or its commit was not seen): its base is uncertain */
  bool raced;
  /* names of node ids (for the tie-break of column versions) */
  const char *(*node_name)(void *ctx, uint16_t id);
  void *ctx;
  /* the target's current row of the key (script strategy: `mine`); AS_ENOTFOUND: none.
   * NULL when the caller cannot read it. */
  int (*read_target)(void *rctx, as_row *out, as_error *err);
  void *rctx;
} as_change;

typedef enum as_verdict {
  AS_VERDICT_APPLY = 1, /* write the columns marked in `apply` to the target */
  AS_VERDICT_SKIP,      /* write nothing: the target has it, or something newer is coming */
  AS_VERDICT_LOST       /* a local change that lost entirely: write nothing; record it and
                           repair its source with the winning row */
} as_verdict;

typedef struct as_decision {
  as_verdict verdict;
  bool new_winner; /* the row's version became the change's (or the key is new) */
  uint8_t *apply;  /* per column (schema order; caller allocates ncols, zeroed): 1 = write it.
                      Key columns are always marked when the verdict is APPLY. */
  uint8_t *lost;   /* per column: a column of a local change that lost (its source holds a
                      losing value there: repair it) */
  bool any_lost;
  /* version vectors: columns changed concurrently on two nodes (caller allocates ncols,
   * zeroed); `conflict` when any (a delete concurrent with an update marks every column) */
  uint8_t *disputed;
  bool conflict;
  /* script strategy: the merged row the target gets (caller provides a zeroed row; the
   * resolver fills it and sets `merged`): its columns marked in `apply` are written to the
   * target instead of the change's, with a version of the target's own, and every other node
   * is repaired with them. */
  as_row *merged_row;
  bool merged;
  /* version vectors: a new local change of a key already known, decided here for the first
   * time (not a version decided on another pair, relayed or copied) */
  bool fresh;
  const char *why; /* script strategy: why the fallback decided (static text), or NULL */
  /* script strategy: a row the script returned that does not fit its mapping (the message
   * names mapping, key and column); the engine records it as a dead letter. "" when none. */
  char dead[384];
} as_decision;

typedef struct as_resolver as_resolver;
struct as_resolver {
  const char *name; /* "lww", ... */
  /* v: the key's versions (found = false: none known; then v is zeroed). Updated in place
   * with what the decision makes the new versions. */
  int (*decide)(const as_resolver *r, const as_change *c, as_version *v, bool found,
                as_decision *out, as_error *err);
  void (*destroy)(as_resolver *r);
};

/* Helpers of the strategies: every column the change carries marked in m; a change that loses
 * entirely (a local one: LOST, its columns to repair; else SKIP). */
static inline void as_decision_mark_all(const as_change *c, uint8_t *m) {
  for (size_t i = 0; i < c->d->row.n; i++) m[i] = c->d->row.set[i] ? 1 : 0;
}
static inline void as_decision_lose_all(const as_change *c, as_decision *out) {
  out->verdict = c->local ? AS_VERDICT_LOST : AS_VERDICT_SKIP;
  if (c->local) {
    as_decision_mark_all(c, out->lost);
    out->any_lost = true;
  }
}

/* The resolver of a mapping's `conflict:` block. AS_EINVAL for strategies not built yet. */
int as_resolver_new(const as_schema *s, as_resolver **out, as_error *err) AS_MUSTCHECK;
void as_resolver_free(as_resolver *r);
static inline int as_resolver_decide(const as_resolver *r, const as_change *c, as_version *v,
                                     bool found, as_decision *out, as_error *err) {
  return r->decide(r, c, v, found, out, err);
}

/* Last-write-wins per column (as_resolve_lww.c). */
as_resolver *as_resolver_lww_new(void);
/* Version vectors (as_resolve_vector.c): causal changes apply; concurrent changes of
 * different columns merge; of the same column they are a conflict, recorded, and the
 * fallback (lww, keep-local, keep-remote) chooses the value meanwhile. */
as_resolver *as_resolver_vector_new(as_strategy fallback);
/* Lua merge functions (as_resolve_script.c): concurrency as for vector; each conflict calls
 * the mapping's script (resolve(mine, theirs, ctx)); its row is the merged result. A script
 * that fails or returns nil leaves the decision to the fallback (the conflict stays open).
 * AS_EINVAL: the script does not load (FILE:LINE). */
int as_resolver_script_new(const as_schema *s, as_resolver **out, as_error *err) AS_MUSTCHECK;

#endif
