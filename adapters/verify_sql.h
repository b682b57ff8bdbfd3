/* verify_sql.h — SQL fragments shared by the SQL adapters' verify code (pg_verify.c,
 * sqlite_verify.c): key ranges and the segment number of a key, with the key values collected
 * as parameters in placeholder order (each adapter binds them its own way). */
#ifndef AS_VERIFY_SQL_H
#define AS_VERIFY_SQL_H

#include <stddef.h>

#include "adapter.h"
#include "as_buf.h"

typedef struct as_vsql {
  const as_schema *s;
  const char *const *qkey; /* the key columns as SQL expressions (quoted, with COLLATE where
                              needed), in key order; borrowed */
  /* Writes placeholder number n (1-based) for key column k (0-based in key order), e.g.
   * "$3::uuid" or "?3". */
  int (*placeholder)(as_buf *b, size_t k, int n, void *ctx);
  void *ctx;
  /* Values bound to the placeholders so far, in order (borrowed: nkey values per key). */
  const as_value **params;
  size_t nparams, cap;
} as_vsql;

void as_vsql_init(as_vsql *q, const as_schema *s, const char *const *qkey,
                  int (*placeholder)(as_buf *, size_t, int, void *), void *ctx);
void as_vsql_reset(as_vsql *q); /* forgets the parameters, keeps memory */
void as_vsql_free(as_vsql *q);

/* "key OP (values)": a row comparison for compound keys. */
int as_vsql_cmp(as_vsql *q, as_buf *b, const char *op, const as_value *key);
/* Condition for [lo, hi) ("TRUE" when both are NULL). */
int as_vsql_range(as_vsql *q, as_buf *b, const as_value *lo, const as_value *hi);
/* Expression giving the segment number 0..nb of the key for bounds[0..nb): a binary tree of
 * CASE WHEN key < bound, so each row costs about log2(nb) comparisons. */
int as_vsql_bucket(as_vsql *q, as_buf *b, const as_value *bounds, size_t nb);
/* "k1, k2" (for ORDER BY and select lists). */
int as_vsql_keys(const as_vsql *q, as_buf *b);

#endif
