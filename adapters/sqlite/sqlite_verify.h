/* sqlite_verify.h — the SQLite adapter's verify callbacks (sqlite_verify.c; adapter.h). */
#ifndef AS_SQLITE_VERIFY_H
#define AS_SQLITE_VERIFY_H

#include "adapter.h"

int sq_verify_open(as_node *n, const as_schema *s, bool client_hash, as_verify **out,
                   as_error *err);
int sq_verify_estimate(as_verify *v, int64_t *out, as_error *err);
int sq_verify_sign(as_verify *v, const as_value *lo, const as_value *hi, const as_value *bounds,
                   size_t nb, as_seghash *out, as_error *err);
int sq_verify_split(as_verify *v, const as_value *lo, const as_value *hi, int64_t rows,
                    size_t parts, as_value **bounds, size_t *nb, as_error *err);
int sq_verify_rows(as_verify *v, const as_value *lo, const as_value *hi,
                   int (*fn)(void *ctx, const as_value *key, uint64_t hash), void *ctx,
                   as_error *err);
uint64_t sq_verify_bytes(as_verify *v);
void sq_verify_close(as_verify *v);

#endif
