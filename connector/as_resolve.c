/* as_resolve.c — picks a mapping's strategy (see as_resolve.h). */
#include "as_resolve.h"

int as_resolver_new(const as_schema *s, as_resolver **out, as_error *err) {
  *out = NULL;
  switch (s->conflict.strategy) {
    case AS_STRATEGY_LWW:
      *out = as_resolver_lww_new();
      return *out ? AS_OK : as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
    default:
      /* not implemented yet: refuse clearly rather than resolve with a strategy the user did
       * not ask for */
      return as_error_set(err, AS_DOM_ENGINE, AS_EINVAL,
                          "%s:%d:%d: mapping %s: conflict strategy %s is not implemented yet "
                          "(this version resolves conflicts by last-write-wins only: "
                          "strategy: lww)",
                          s->file, s->mark.line, s->mark.col, s->name,
                          s->conflict.strategy == AS_STRATEGY_VECTOR ? "vector" : "script");
  }
}

void as_resolver_free(as_resolver *r) {
  if (r) r->destroy(r);
}
