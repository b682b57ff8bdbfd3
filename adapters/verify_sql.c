/* verify_sql.c — see verify_sql.h. */
#include "verify_sql.h"

#include <stdlib.h>
#include <string.h>

void as_vsql_init(as_vsql *q, const as_schema *s, const char *const *qkey,
                  int (*placeholder)(as_buf *, size_t, int, void *), void *ctx) {
  memset(q, 0, sizeof *q);
  q->s = s;
  q->qkey = qkey;
  q->placeholder = placeholder;
  q->ctx = ctx;
}

void as_vsql_reset(as_vsql *q) { q->nparams = 0; }

void as_vsql_free(as_vsql *q) {
  if (!q) return;
  free(q->params);
  q->params = NULL;
  q->nparams = q->cap = 0;
}

static int push_param(as_vsql *q, const as_value *v) {
  if (q->nparams == q->cap) {
    size_t nc = q->cap ? q->cap * 2 : 16;
    const as_value **np = realloc(q->params, nc * sizeof *np);
    if (!np) return AS_ERR;
    q->params = np;
    q->cap = nc;
  }
  q->params[q->nparams++] = v;
  return AS_OK;
}

int as_vsql_keys(const as_vsql *q, as_buf *b) {
  for (size_t k = 0; k < q->s->nkey; k++) {
    if ((k && as_buf_append_str(b, ", ")) || as_buf_append_str(b, q->qkey[k])) return AS_ERR;
  }
  return AS_OK;
}

int as_vsql_cmp(as_vsql *q, as_buf *b, const char *op, const as_value *key) {
  size_t nk = q->s->nkey;
  if (nk > 1 && as_buf_putc(b, '(')) return AS_ERR;
  if (as_vsql_keys(q, b)) return AS_ERR;
  if (as_buf_printf(b, nk > 1 ? ") %s (" : " %s ", op)) return AS_ERR;
  for (size_t k = 0; k < nk; k++) {
    if (k && as_buf_append_str(b, ", ")) return AS_ERR;
    if (push_param(q, &key[k]) || q->placeholder(b, k, (int)q->nparams, q->ctx)) return AS_ERR;
  }
  if (nk > 1 && as_buf_putc(b, ')')) return AS_ERR;
  return AS_OK;
}

int as_vsql_range(as_vsql *q, as_buf *b, const as_value *lo, const as_value *hi) {
  if (!lo && !hi) return as_buf_append_str(b, "TRUE");
  if (lo && as_vsql_cmp(q, b, ">=", lo)) return AS_ERR;
  if (lo && hi && as_buf_append_str(b, " AND ")) return AS_ERR;
  if (hi && as_vsql_cmp(q, b, "<", hi)) return AS_ERR;
  return AS_OK;
}

/* Segment number in [first, last], knowing bounds[first-1] <= key < bounds[last]. */
static int bucket_tree(as_vsql *q, as_buf *b, const as_value *bounds, size_t first, size_t last) {
  if (first == last) return as_buf_printf(b, "%zu", first);
  size_t mid = (first + last + 1) / 2; /* key < bounds[mid-1] ? [first, mid-1] : [mid, last] */
  if (as_buf_append_str(b, "CASE WHEN ")) return AS_ERR;
  if (as_vsql_cmp(q, b, "<", bounds + (mid - 1) * q->s->nkey)) return AS_ERR;
  if (as_buf_append_str(b, " THEN ") || bucket_tree(q, b, bounds, first, mid - 1) ||
      as_buf_append_str(b, " ELSE ") || bucket_tree(q, b, bounds, mid, last) ||
      as_buf_append_str(b, " END"))
    return AS_ERR;
  return AS_OK;
}

int as_vsql_bucket(as_vsql *q, as_buf *b, const as_value *bounds, size_t nb) {
  return bucket_tree(q, b, bounds, 0, nb);
}
