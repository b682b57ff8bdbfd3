/* as_bson.h — the mapping layer between MongoDB documents and typed rows (docs/ARCHITECTURE.md).
 *
 * BSON -> value, per column type (anything else is an AS_EDATA error naming mapping, key,
 * field and value; never a silent loss):
 *   INT64: int32, int64, double with no fraction within int64 range, Decimal128 integral
 *   DOUBLE: double, int32, int64 (if exactly representable)
 *   DECIMAL: Decimal128 (its string), int32/int64, double (shortest round-trip text)
 *   TEXT: utf8 (symbol too)   BOOL: bool   BYTES: binary subtype 0 (and 2, 0x80)
 *   UUID: binary subtype 4 (3 too), or a utf8 in uuid text form
 *   OBJECTID: ObjectId        TIMESTAMP: date (ms -> µs), BSON timestamp (seconds)
 *   DATE: date at midnight UTC (a time part is an error)   JSON: document or array
 * A key column takes one form only, the one its filters write back: uuid binary subtype 4,
 * bytes subtype 0, timestamptz a date (MongoDB tells the other forms apart: other _id values).
 * Missing field or BSON null -> NULL (error if the column is required); but in a json column
 * (any value, as_column_json_null) BSON null is JSON null and only a missing field is NULL, so
 * SQL 'null'::jsonb and SQL NULL come back as a null field and no field.
 *
 * AS-JSON: the text of json values and of the catch-all. BSON -> AS-JSON -> BSON is byte for
 * byte the same (NaN payloads aside: AS-JSON has one NaN); AS-JSON text is what PostgreSQL
 * jsonb / SQLite json columns hold, so it is plain JSON wherever BSON has a natural JSON form:
 *   document -> object (key order kept), array -> array, utf8 -> string, bool, null,
 *   int32 -> integer, int64 -> integer when outside the int32 range, else {"$numberLong":"n"},
 *   double -> number with a '.' or exponent (1.0, 1e+300) when finite, else
 *             {"$numberDouble":"NaN"|"Infinity"|"-Infinity"}, -0.0 as {"$numberDouble":"-0.0"},
 *   and MongoDB canonical extended JSON v2 wrappers for the rest:
 *     {"$oid":"<24 hex>"}  {"$date":{"$numberLong":"<ms>"}}  {"$numberDecimal":"<text>"}
 *     {"$binary":{"base64":"...","subType":"<hh>"}}  {"$timestamp":{"t":<u32>,"i":<u32>}}
 *     {"$regularExpression":{"pattern":"...","options":"..."}}  {"$minKey":1}  {"$maxKey":1}
 *     {"$symbol":"..."}  {"$code":"..."}  {"$code":"...","$scope":{...}}  {"$undefined":true}
 *     {"$dbPointer":{"$ref":"...","$id":{"$oid":"..."}}}
 *   read back also: {"$numberInt":"n"}, {"$numberLong":"n"} and {"$numberDouble":"x"} for any
 *   value, {"$date":<integer ms>}; wrapper members in any order (jsonb reorders them).
 * Keys starting with '$' (the escape that keeps documents and wrappers apart): a document key
 *   that starts with '$' is written with one more '$' in front ("$oid" -> "$$oid", "$$x" ->
 *   "$$$x"), at every depth, catch-all and $scope documents included; the reader removes one
 *   '$' from a key starting with "$$". A key with a single leading '$' is a wrapper: it must
 *   be one of the forms above, complete and alone in its object, anything else is an error
 *   naming the key. So a document {"$oid":"..."} (or one holding "$set") is written
 *   {"$$oid":"..."} and comes back a document, never an ObjectId; SQL text that holds
 *   {"$set":1} is refused instead of being read as something it is not.
 * Strict text: the reader takes RFC 8259 JSON only. Strings and keys must be valid UTF-8
 *   (the writer refuses BSON strings/keys that are not: AS_EDATA), \u0000 is a NUL byte of a
 *   string (never of a key), duplicate keys in one object are an error naming the key (a
 *   document cannot keep both, and dropping one would lose data), integers become int32 if
 *   they fit, else int64, else double (jsonb prints 1e20 as 100000000000000000000); numbers
 *   with '.' or an exponent become doubles. Nesting is limited to 200 levels.
 *   Errors: "invalid AS-JSON at line L column C: <reason>".
 *
 * Contract of every function below:
 * - Output bson_t parameters are initialised by the call (bson_init; a previous heap content
 *   must be destroyed by the caller first) and are always safe to bson_destroy afterwards.
 *   Output rows: a zeroed as_row ({0}) or a row from as_row_init/an earlier call, reused.
 * - Errors name mapping, key, field and value (details at the top of each file).
 *
 * Where each part lives (each file states its own decisions at its top):
 *   as_asjson_write.c   BSON -> AS-JSON              as_asjson_read.c  AS-JSON -> BSON
 *   as_bson_value.c     one BSON value <-> one typed value (the table above), messages
 *   as_bson_to_row.c    document -> row/key: paths, nulls, catch-all gathering, child tables
 *   as_bson_from_row.c  row -> document: field order; key -> filter
 *   as_bson_update.c    delta -> {"$set","$unset"}
 *   as_bson_merge.c     current document + row -> next document, and the $set/$unset between
 *   as_bsonr.h/.c       reading raw BSON (every element checked; no libbson private fields)
 *   as_bson_priv.h      what those files share (raw BSON writer, the decoder's interface)
 */
#ifndef AS_BSON_H
#define AS_BSON_H

#include <bson/bson.h>

#include "as_buf.h"
#include "as_row.h"

/* Document -> full row (every column set). The catch-all column, if any, receives an object
 * of every top-level field that no column path starts with (in document order), or NULL if
 * there is none. Returns AS_OK or AS_EDATA (err names mapping, key, field, value). */
int as_doc_to_row(const as_schema *s, const bson_t *doc, as_row *out, as_error *err) AS_MUSTCHECK;

/* Key only (from a documentKey or a full document). */
int as_doc_to_key(const as_schema *s, const bson_t *doc, as_row *out, as_error *err) AS_MUSTCHECK;

/* Row -> full document: every set column written at its path (nested documents created as
 * needed; NULL values written as BSON null unless the column is the catch-all), catch-all
 * fields spread back at top level. For an insert/replace. */
int as_row_to_doc(const as_schema *s, const as_row *r, bson_t *out, as_error *err) AS_MUSTCHECK;

/* Filter {"<key path>": <value>, ...} for the delta's key. */
int as_key_to_filter(const as_schema *s, const as_row *r, bson_t *out, as_error *err) AS_MUSTCHECK;

/* Update for a delta of op UPDATE: {"$set": {...changed paths...}, "$unset": {...}}; only the
 * columns present in the delta. A NULL value becomes $unset of that path; a catch-all value
 * sets each of its fields and unsets catch-all fields that the previous value had but this one
 * lacks when `prev_catch_all` (AS-JSON object text or NULL) is given. */
int as_delta_to_update(const as_schema *s, const as_delta *d, const char *prev_catch_all,
                       bson_t *out, as_error *err) AS_MUSTCHECK;

/* The sink's minimal write (as_bson_merge.c states the rules): the document `cur` as it is
 * (NULL: there is none) with the set columns of `row` written into it -> `next`, built from
 * cur's own bytes wherever nothing changed (equality as_value_equal; NULL = absent; a changed
 * value keeps the field's BSON type where it reads back equal; json and catch-all values
 * merged member by member; unmapped fields follow the catch-all only when it is set).
 * *changed = false (next empty) when cur stays as it is; with cur NULL, next is the whole new
 * document (no field for a NULL column) and *changed = true. Errors: AS_EDATA (a value that
 * cannot be written, a catch-all that is not an object; err names mapping and column), AS_ERR
 * (out of memory). */
int as_doc_merge(const as_schema *s, const bson_t *cur, const as_row *row, bson_t *next, bool *changed,
                 as_error *err) AS_MUSTCHECK;
/* {"$set": {...}, "$unset": {...}} (each only when not empty; both absent when the documents
 * are equal) with only the paths that differ between cur and next, descending into documents
 * and same-length arrays. *replace = true (update empty) when a top-level field that differs
 * cannot be named by a path (empty, holds '.', starts with '$'): write next whole instead. */
int as_doc_diff_update(const bson_t *cur, const bson_t *next, bson_t *update, bool *replace,
                       as_error *err) AS_MUSTCHECK;

/* One BSON value -> typed value for a column (conversion rules above). */
int as_bson_iter_to_value(const as_schema *s, const as_column *c, const bson_iter_t *it,
                          as_value *out, as_error *err) AS_MUSTCHECK;
/* Typed value -> BSON value appended as key (int64 as int32 when it fits, uuid as binary
 * subtype 4, bytes as subtype 0, objectid as ObjectId, timestamp as a date: BSON dates hold
 * milliseconds, so a timestamp with sub-millisecond digits is AS_EDATA; decimal as Decimal128
 * (AS_EDATA if it does not fit 34 digits), date as a date at midnight UTC, json read from
 * AS-JSON: any value, a wrapper gives its type; invalid AS-JSON is AS_EDATA). */
int as_value_append_bson(bson_t *doc, const char *key, int keylen, const as_value *v,
                         as_error *err) AS_MUSTCHECK;

/* AS-JSON conversions (forms above). Errors: AS_EDATA (a string or key that is not UTF-8),
 * AS_EINVAL (invalid BSON or AS-JSON), AS_ERR (out of memory). */
int as_bson_to_asjson(const bson_t *doc, bool is_array, as_buf *out, as_error *err) AS_MUSTCHECK;
int as_bson_value_to_asjson(const bson_iter_t *it, as_buf *out, as_error *err) AS_MUSTCHECK;
/* Parses AS-JSON text; the top-level must be an object or an array (is_array reports which). */
int as_asjson_to_bson(const char *json, size_t len, bson_t *out, bool *is_array, as_error *err) AS_MUSTCHECK;

#endif
