/* as_value.h — typed values, the atoms of the row delta (docs/ARCHITECTURE.md).
 *
 * A value owns its memory (text/decimal/json/bytes are heap copies); as_value_clear frees it.
 * Canonical JSON form of a single value (lossless, used by dead letters, logs, scripts):
 *   null -> null            bool -> true/false        int64 -> integer
 *   double -> real (finite) or {"$double":"NaN"|"Infinity"|"-Infinity"}
 *   text -> string          decimal -> {"$decimal":"-12.50"} (exact text, as given)
 *   bytes -> {"$bytes":"<base64>"}       uuid -> {"$uuid":"8-4-4-4-12 lower hex"}
 *   objectid -> {"$oid":"24 lower hex"}  timestamp -> {"$ts":"YYYY-MM-DDTHH:MM:SS.ffffffZ"}
 *   date -> {"$date":"YYYY-MM-DD"}       json -> {"$json": <the JSON value>}
 *   (json text that jansson cannot carry exactly -> {"$jsontext":"<the JSON text>"}, so the
 *   canonical form, hence the hash, never changes: integers beyond int64, and numbers whose
 *   text is not the shortest round-trip form of a double, e.g. 1.50 or 1e2 from jsonb. When
 *   a {"$json":...} value is read back, reals are printed in shortest round-trip form.)
 *
 * A json value holds JSON text (UTF-8) in "AS-JSON": plain JSON where a BSON value has a
 * natural JSON form, MongoDB canonical extended JSON wrappers where it has not, so that
 * BSON -> json -> BSON is lossless (see as_bson.h for the exact rules). Key order is kept in
 * the value; hashing canonicalises it (keys sorted) because PostgreSQL jsonb reorders keys. */
#ifndef AS_VALUE_H
#define AS_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "as_error.h"

typedef enum as_type {
  AS_T_NULL = 0,
  AS_T_BOOL,
  AS_T_INT64,
  AS_T_DOUBLE,
  AS_T_DECIMAL,   /* exact decimal as text, e.g. "-12.50"; also "NaN"/"Infinity" for Decimal128 */
  AS_T_TEXT,      /* UTF-8 */
  AS_T_BYTES,
  AS_T_UUID,      /* 16 bytes, RFC 4122 byte order */
  AS_T_OBJECTID,  /* 12 bytes */
  AS_T_TIMESTAMP, /* microseconds since 1970-01-01T00:00:00Z (UTC) */
  AS_T_DATE,      /* days since 1970-01-01 */
  AS_T_JSON,      /* nested document or array, AS-JSON text */
  AS_T__COUNT
} as_type;

typedef struct as_value {
  as_type type;
  union {
    bool b;
    int64_t i;       /* INT64 */
    double d;        /* DOUBLE */
    int64_t ts_us;   /* TIMESTAMP */
    int32_t days;    /* DATE */
    uint8_t uuid[16];
    uint8_t oid[12];
    struct {
      char *ptr;     /* NUL-terminated for TEXT/DECIMAL/JSON; raw for BYTES (still NUL-padded) */
      size_t len;    /* length without the terminating NUL */
    } s;             /* TEXT, DECIMAL, JSON, BYTES */
  } u;
} as_value;

#define AS_VALUE_NULL ((as_value){.type = AS_T_NULL})

/* Name used in messages and in the JSON/binary tag: "null","bool","int64","double","decimal",
 * "text","bytes","uuid","objectid","timestamp","date","json". */
const char *as_type_name(as_type t);
/* Parses a type name as written in mapping files. Accepts the as_type names plus SQL aliases:
 * int, integer, bigint, int8, int4, smallint -> INT64; float, float8, double precision, real,
 * number -> DOUBLE; numeric, decimal, decimal128 -> DECIMAL; string, varchar, char -> TEXT;
 * boolean -> BOOL; bytea, blob, binary -> BYTES; timestamptz, datetime -> TIMESTAMP;
 * jsonb, object, array -> JSON; oid -> OBJECTID. Returns false if unknown. */
bool as_type_parse(const char *name, as_type *out);

void as_value_clear(as_value *v);                 /* frees, sets NULL; NULL-safe */
int as_value_copy(as_value *dst, const as_value *src); /* dst must be clear/uninitialised */
void as_value_move(as_value *dst, as_value *src); /* dst cleared first; src becomes NULL */
/* Equal as the hash encoding sees it (as_hash.h): same type, and decimals by numeric value
 * ("1.50" == "1.5"), doubles with -0.0 == 0.0 and NaN == NaN, json by canonical JSON (key
 * order ignored), everything else by value/bytes. */
bool as_value_equal(const as_value *a, const as_value *b);
/* Total order for keys (type first, then value); used for key-range segments and sorting.
 * Decimals numerically (-Infinity < numbers < Infinity < NaN), doubles with NaN last, text and
 * bytes bytewise (shorter prefix first), json 0 when canonically equal else bytewise. */
int as_value_compare(const as_value *a, const as_value *b);

void as_value_set_null(as_value *v);
void as_value_set_bool(as_value *v, bool b);
void as_value_set_int64(as_value *v, int64_t i);
void as_value_set_double(as_value *v, double d);
void as_value_set_timestamp(as_value *v, int64_t us);
void as_value_set_date(as_value *v, int32_t days);
void as_value_set_uuid(as_value *v, const uint8_t u[16]);
void as_value_set_oid(as_value *v, const uint8_t o[12]);
/* Copies len bytes; type is TEXT, DECIMAL, JSON or BYTES. Returns AS_OK or AS_ERR (ENOMEM). */
int as_value_set_str(as_value *v, as_type type, const char *s, size_t len);

/* Text forms shared by every adapter (SQL literals as bound text parameters):
 * uuid "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", oid 24 hex, timestamp
 * "YYYY-MM-DDTHH:MM:SS.ffffffZ" (years 0001..9999 only; else AS_EINVAL), date "YYYY-MM-DD",
 * bool "true"/"false", int64 decimal, double shortest round-trip ("%.17g" trimmed), decimal and
 * text as is, bytes as lower hex. Caller frees *out. */
int as_value_to_text(const as_value *v, char **out, as_error *err);
/* Parses the text form for the given type (also accepts "YYYY-MM-DD HH:MM:SS[.f][+HH[:MM]]"
 * and "Z"/offset forms for timestamps, "t"/"f"/"1"/"0" for bools, "\\x.." hex for bytes). */
int as_value_from_text(as_type type, const char *s, size_t len, as_value *out, as_error *err);
/* (Output values of from_text/from_json*: *out is overwritten, not freed first; on error it is
 * left untouched. Decimal text is validated and kept as given; json text is validated and kept
 * as given; timestamps accept 1..6 fraction digits (more only if zeros) and offsets up to
 * +-15:59[:59]; bools also accept yes/no/y/n/on/off.) */

/* Calendar helpers (proleptic Gregorian, UTC). */
int64_t as_days_from_civil(int64_t y, unsigned m, unsigned d);
void as_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

/* --- helpers shared by the codecs (added by the codec implementation) --- */

/* Shortest text that parses back (strtod) to exactly d: "1.5", "0.1", "1e+300", "-0",
 * "NaN", "Infinity", "-Infinity". Writes at most 32 bytes incl. NUL; returns the length. */
size_t as_double_format(double d, char out[32]);
/* The decimal text of i, written ending at end (no NUL); returns where it starts. */
char *as_i64_format(int64_t i, char *end);
/* Decimal normal form used for hashing and equality (as_hash.h): plain notation (exponent
 * expanded), no '+', no leading zeros, no trailing fraction zeros, "-0" -> "0", "NaN",
 * "Infinity", "-Infinity". AS_EINVAL if s is not a decimal number. Appends to out. */
struct as_buf;
int as_decimal_normalize(const char *s, size_t len, struct as_buf *out);
/* True if s[0..n) is valid UTF-8 (RFC 3629: no overlong forms, no surrogates; NUL bytes
 * allowed). TEXT values are UTF-8: as_value_from_text refuses other bytes (AS_EINVAL). */
bool as_utf8_valid(const char *s, size_t n);
/* True if s is a valid decimal number text ([+-]digits[.digits][e[+-]digits], NaN, Infinity). */
bool as_decimal_valid(const char *s, size_t len);
/* Standard base64 (RFC 4648, with padding). Decode accepts no whitespace; AS_EINVAL if bad. */
int as_base64_encode(const uint8_t *p, size_t n, struct as_buf *out);
int as_base64_decode(const char *s, size_t n, struct as_buf *out);
/* Year range accepted for TIMESTAMP and DATE values (text forms, BSON conversion). */
#define AS_TS_MIN_US (-62135596800000000LL)  /* 0001-01-01T00:00:00Z */
#define AS_TS_MAX_US (253402300799999999LL)  /* 9999-12-31T23:59:59.999999Z */
#define AS_DATE_MIN_DAYS (-719162)           /* 0001-01-01 */
#define AS_DATE_MAX_DAYS (2932896)           /* 9999-12-31 */

#endif
