/* as_resolve.c — picks a mapping's strategy (see as_resolve.h). */
#include "as_resolve.h"

int as_resolver_new(const as_schema *s, as_resolver **out, as_error *err) {
  *out = NULL;
  switch (s->conflict.strategy) {
    case AS_STRATEGY_LWW:
      *out = as_resolver_lww_new();
      return *out ? AS_OK : as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
    case AS_STRATEGY_VECTOR:
      if (s->conflict.fallback == AS_STRATEGY_SCRIPT) return as_resolver_script_new(s, out, err);
      *out = as_resolver_vector_new(s->conflict.fallback);
      return *out ? AS_OK : as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
    case AS_STRATEGY_SCRIPT:
      return as_resolver_script_new(s, out, err);
    default: /* keep-local / keep-remote are fallbacks, never strategies (the parser says so) */
      return as_error_set(err, AS_DOM_ENGINE, AS_EINVAL, "%s:%d:%d: mapping %s: unknown conflict "
                          "strategy", s->file, s->mark.line, s->mark.col, s->name);
  }
}

void as_resolver_free(as_resolver *r) {
  if (r) r->destroy(r);
}
