/* as_resolve_lww.c — last-write-wins: the greatest (hlc, origin name) wins; deletes are
 * versions too (tombstones), so an older update cannot resurrect a deleted row. A change
 * equal to the current version applies (a re-delivery after a crash, or the winner relayed
 * onward), which keeps every path idempotent. */
#include "as_resolve.h"

#include <stdlib.h>
#include <string.h>

static int lww_decide(const as_resolver *r, const as_change *c, const as_version *cur,
                      as_decision *out, as_error *err) {
  (void)r;
  (void)err;
  out->new_winner = false;
  if (!cur) {
    out->verdict = AS_VERDICT_APPLY;
    out->new_winner = true;
    return AS_OK;
  }
  int cmp = as_version_compare(c->d->hlc, c->d->origin, cur->hlc, cur->origin);
  if (cmp > 0) {
    out->verdict = AS_VERDICT_APPLY;
    out->new_winner = true;
  } else if (cmp == 0) {
    out->verdict = AS_VERDICT_APPLY;
  } else if (c->local && strcmp(cur->origin, c->source) == 0) {
    /* an earlier change of the node that made the winner, delivered again (a retried batch or
     * a restart: the versions were written ahead): it comes before the winner in that node's
     * own order, and the rest of the node's changes follow it, so it applies — an update
     * carries only its columns, and skipping it would lose them */
    out->verdict = AS_VERDICT_APPLY;
  } else {
    out->verdict = c->local ? AS_VERDICT_LOST : AS_VERDICT_SKIP;
  }
  return AS_OK;
}

static void lww_destroy(as_resolver *r) { free(r); }

as_resolver *as_resolver_lww_new(void) {
  as_resolver *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->name = "lww";
  r->decide = lww_decide;
  r->destroy = lww_destroy;
  return r;
}
