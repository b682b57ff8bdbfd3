/* as_hash.h — canonical binary encoding and XXH3 row hashes.
 *
 * Encoding of one value: 1 tag byte (as_type), then
 *   NULL: nothing; BOOL: 1 byte; INT64/TIMESTAMP: 8 bytes big-endian (two's complement);
 *   DOUBLE: 8 bytes IEEE-754 big-endian, -0.0 encoded as 0.0, every NaN as the quiet NaN;
 *   DATE: 4 bytes big-endian; UUID: 16 bytes; OBJECTID: 12 bytes;
 *   TEXT/BYTES: 4-byte big-endian length + bytes;
 *   DECIMAL: length + normalised text (no leading '+', no leading zeros, no trailing
 *            fraction zeros, "-0" -> "0", exponent expanded: "1.5E+3" -> "1500"), so "1.50"
 *            and "1.5" hash alike (a decimal is its numeric value: Decimal128 1.5 from MongoDB
 *            and numeric 1.50 from PostgreSQL are the same logical value);
 *   JSON: length + canonical JSON text (keys sorted, compact, numbers as parsed).
 * A row: for each column in schema order, 4-byte column index + value encoding; absent
 * columns are skipped. The same logical row therefore hashes identically from BSON,
 * PostgreSQL or SQLite. */
#ifndef AS_HASH_H
#define AS_HASH_H

#include <stdint.h>

#include "as_buf.h"
#include "as_row.h"

int as_value_encode(const as_value *v, as_buf *out, as_error *err);
int as_row_encode(const as_schema *s, const as_row *r, as_buf *out, as_error *err);
/* XXH3-64 of as_row_encode. */
int as_row_hash(const as_schema *s, const as_row *r, uint64_t *out, as_error *err);
/* XXH3-64 of the key columns only (for partitioning and segment placement). */
int as_row_key_hash(const as_schema *s, const as_row *r, uint64_t *out, as_error *err);

/* Segment hash: order-independent combination of row hashes (count + wrapping sum). */
typedef struct as_seghash {
  uint64_t count;
  uint64_t sum;
} as_seghash;
void as_seghash_add(as_seghash *h, uint64_t row_hash);
void as_seghash_remove(as_seghash *h, uint64_t row_hash);

/* Canonical JSON text used by the JSON encoding above (added by the codec implementation):
 * parsed with jansson, dumped with JSON_SORT_KEYS|JSON_COMPACT (duplicate keys: last wins),
 * strings as jansson escapes them (UTF-8 kept, no "\/"). Numbers are never converted to
 * double/long long: each number literal is rewritten to PostgreSQL numeric text form
 * (exponent expanded, no leading zeros, scale = max(0, fraction digits - exponent), "-0" ->
 * "0"), which is exactly what PostgreSQL jsonb prints back. So 1.0 stays 1.0 (not 1), big
 * integers beyond int64 are kept digit for digit, and 1e2 == 100, 1.50e1 == 15.0, 1e-7 ==
 * 0.0000001, because jsonb turns the former into the latter. Any top-level JSON value is
 * accepted. Appends to out; AS_EINVAL (err set) if json is not valid JSON. */
int as_json_canonicalize(const char *json, size_t len, as_buf *out, as_error *err);
/* Whether as_json_canonicalize accepts json (the same checks and errors), without making the
 * canonical text. AS_OK, AS_EINVAL (err set), AS_ERR (out of memory). */
int as_json_validate(const char *json, size_t len, as_error *err);
/* One JSON number literal rewritten to PostgreSQL numeric text as described above ("1e2" ->
 * "100", "-0.0" -> "0.0"); appends to out. AS_EINVAL if it is not a JSON number. */
int as_json_number_canon(const char *s, size_t len, as_buf *out);

#endif
