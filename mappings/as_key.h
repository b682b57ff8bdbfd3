/* as_key.h — the one canonical text form of a row's key.
 *
 * Every place that names a key by text uses this form: the state store (versions, dead
 * letters, conflicts), snapshot resume points, dead-letter and conflict records, verify's
 * output, log lines. It is the compact JSON object of the key columns in the schema's key
 * order, each value in its canonical JSON form (as_value.h):
 *   {"id":"u1"}   {"id":{"$uuid":"0b4e...-..."}}   {"tenant":3,"id":"a"}
 * so the same key read from MongoDB, PostgreSQL or SQLite yields the same bytes. Keys the
 * databases hold equal are spelled alike: a decimal by its normalised text (1.50 -> 1.5, as
 * as_decimal_normalize does), a double -0.0 as 0.0. A key column that is absent from the row
 * or NULL is not a key: as_key_json refuses it (AS_EINVAL naming the mapping and column), so
 * no key can be stored under two spellings (tests/unit/test_key.c). as_key_describe is the
 * lenient form for messages only. */
#ifndef AS_KEY_H
#define AS_KEY_H

#include "as_buf.h"
#include "as_error.h"
#include "as_row.h"

/* Appends the canonical key text of r (NUL-terminated through as_buf_cstr) to out. */
int as_key_json(const as_schema *s, const as_row *r, as_buf *out, as_error *err)
    AS_MUSTCHECK;
/* The same as a heap string (caller frees), or NULL with err set. */
char *as_key_json_dup(const as_schema *s, const as_row *r, as_error *err);
/* For messages: the canonical text when the key is complete, else the same form with `?` for
 * every absent column and `null` for NULL ones. Never NULL except when out of memory. */
char *as_key_describe(const as_schema *s, const as_row *r);
/* Parses canonical key text back into the key columns of out (a row of s->ncols slots, from
 * as_row_init); other slots are left as they are. AS_EINVAL when the text is not a key of s. */
int as_key_parse(const as_schema *s, const char *text, as_row *out, as_error *err)
    AS_MUSTCHECK;

/* The same, giving the key values in key order: vals[k] for column s->key_idx[k] (s->nkey
 * slots, each cleared or NULL on entry; the caller clears them afterwards). */
int as_key_parse_values(const as_schema *s, const char *text, as_value *vals, as_error *err)
    AS_MUSTCHECK;

#endif
