/* as_resolve.h — the resolver seam: one decision per incoming change of a key.
 *
 * The engine labels every change with the version it carries (hlc, origin) before asking:
 *   - a local change (made on the node it was captured from): its own commit time, or the
 *     mapping's clock column;
 *   - an echo (a write of the connector captured back): the version the connector last wrote
 *     of that key to that node (the state store's held version), since the captured value is
 *     that write; the echo's own commit time when nothing is known;
 *   - a snapshot copy (the node's current row): the state's winner when that is a change made
 *     on that node, else the held version, else the oldest version (hlc 0).
 * The resolver compares the label with the state's current version of the key and decides.
 * Strategies implement the seam, one file each (as_resolve_lww.c, ...); the engine calls only
 * as_resolver_decide. */
#ifndef AS_RESOLVE_H
#define AS_RESOLVE_H

#include <stdbool.h>

#include "as_row.h"
#include "as_state.h"

typedef struct as_change {
  const as_delta *d;  /* labelled: d->hlc and d->origin are the version it carries */
  const char *source; /* node it was captured from */
  const char *target; /* node it is headed to */
  bool local;         /* made on the source itself (not an echo, not a snapshot copy) */
} as_change;

typedef enum as_verdict {
  AS_VERDICT_APPLY = 1, /* write it to the target */
  AS_VERDICT_SKIP,      /* write nothing: the target has it, or something newer is coming */
  AS_VERDICT_LOST       /* a local change that lost: write nothing, record the conflict, and
                           repair its source with the winner */
} as_verdict;

typedef struct as_decision {
  as_verdict verdict;
  bool new_winner; /* (APPLY) the change is newer than the state's version: it becomes it */
} as_decision;

typedef struct as_resolver as_resolver;
struct as_resolver {
  const char *name; /* "lww", ... */
  /* cur: the state's current version of the key, or NULL when it has none. */
  int (*decide)(const as_resolver *r, const as_change *c, const as_version *cur,
                as_decision *out, as_error *err);
  void (*destroy)(as_resolver *r);
};

/* The resolver of a mapping's `conflict:` block. AS_EINVAL for strategies not built yet. */
int as_resolver_new(const as_schema *s, as_resolver **out, as_error *err) AS_MUSTCHECK;
void as_resolver_free(as_resolver *r);
static inline int as_resolver_decide(const as_resolver *r, const as_change *c,
                                     const as_version *cur, as_decision *out, as_error *err) {
  return r->decide(r, c, cur, out, err);
}

/* Last-write-wins (as_resolve_lww.c). */
as_resolver *as_resolver_lww_new(void);

#endif
