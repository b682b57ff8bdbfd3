/* as_rowhash.h — the row hash `arraysync verify` compares between nodes.
 *
 * A row hashes as MongoDB's `$toHashedIndexKey` of its canonical text, so each database can
 * compute it without shipping rows: MongoDB in an aggregation, PostgreSQL in plain SQL with
 * md5(), SQLite through a function the connector registers, and C here (the reference, and
 * the exact comparison of the rows whose hashes differ).
 *
 * $toHashedIndexKey of a string s (MongoDB's hashed-index hash, src/mongo/db/hasher.cpp):
 * the first 8 bytes, read as a little-endian int64, of md5 over int32 0 (the seed), int32 15
 * (the canonical BSON type of strings), int32 len(s) + 1, the bytes of s and a NUL (all
 * little-endian). For binary data (BSON type 5): int32 0, int32 30, int32 len, the subtype
 * byte, the bytes. Published vector: "string to hash" -> 763543691661428748.
 *
 * Canonical text of a row: for every column in schema order, the column's text followed by
 * '|'. Texts by type (NULL and an absent column: "~"):
 *   bool       true | false
 *   int64      decimal digits ("-12")
 *   double     exact binary value "[-]<m>p<q>" = m * 2^q with m an integer: for |d| >= 2^-1022
 *              m is in [2^52, 2^53), q = exponent - 52; below, q = -1074. 0 and -0 -> "0",
 *              "NaN", "Infinity", "-Infinity". (Exact and cheap everywhere: MongoDB gets m and q
 *              by arithmetic on the double, PostgreSQL from float8send's bits. $toString of a
 *              double keeps only 6 significant digits before MongoDB 8.)
 *   decimal    as_decimal_normalize: plain notation, no trailing fraction zeros (1.50 -> 1.5)
 *   text       <byte length>:<bytes>
 *   bytes      $toHashedIndexKey of BinData(0, bytes), signed decimal
 *   uuid       $toHashedIndexKey of BinData(4, 16 bytes), signed decimal
 *   objectid   24 lower-case hex digits
 *   timestamp  milliseconds since the epoch (floor), decimal ("timestamps at millisecond
 *              precision": MongoDB dates hold milliseconds)
 *   date       days since 1970-01-01, decimal
 *   json       PostgreSQL's jsonb::text of the value (as_jsonb_text)
 * Every text is either free of '|' or self-delimiting (text by its length, json by its
 * brackets and quotes), so the row text determines the row.
 *
 * The client-side mode (`verify --hash-on client`) hashes the same canonical text with
 * XXH3-64 (as_rowhash_xxh3). A segment's signature is (row count, sum of row hashes mod 2^64)
 * (as_seghash in as_hash.h). */
#ifndef AS_ROWHASH_H
#define AS_ROWHASH_H

#include <stdint.h>

#include "as_buf.h"
#include "as_row.h"

/* ---- MD5 (RFC 1321) ---- */
typedef struct as_md5 {
  uint32_t st[4];
  uint64_t nbytes;
  uint8_t block[64];
  size_t nblock;
} as_md5;
void as_md5_init(as_md5 *m);
void as_md5_update(as_md5 *m, const void *p, size_t n);
void as_md5_final(as_md5 *m, uint8_t digest[16]);

/* ---- MongoDB's $toHashedIndexKey ---- */
int64_t as_mongo_hash_string(const char *s, size_t n);
int64_t as_mongo_hash_binary(uint8_t subtype, const uint8_t *p, size_t n);

/* ---- canonical text ---- */
/* Appends the canonical text of one value (without the '|'). A json value that is not valid
 * JSON (possible only in SQLite, which stores text) gets "!" + its raw text, which no server
 * expression produces. AS_ERR only when out of memory. */
int as_rowtext_value(const as_value *v, as_buf *out, as_error *err);
/* Appends the canonical text of the row (every column of s, absent ones as NULL). */
int as_rowtext(const as_schema *s, const as_row *r, as_buf *out, as_error *err);
/* $toHashedIndexKey of the canonical text (the server-side row hash). tmp is scratch space
 * (reused between calls; may be NULL). */
int as_rowhash(const as_schema *s, const as_row *r, as_buf *tmp, int64_t *out, as_error *err);
/* XXH3-64 of the canonical text (client-side mode). */
int as_rowhash_xxh3(const as_schema *s, const as_row *r, as_buf *tmp, uint64_t *out,
                    as_error *err);

/* PostgreSQL's jsonb::text of a JSON text: object keys sorted by (byte length, bytes) with the
 * last of duplicate keys kept, `{"k": v, "k2": v2}` and `[a, b]` separators, numbers in
 * numeric form (as_json_number_canon), strings decoded and re-escaped as PostgreSQL does
 * (\" \\ \b \f \n \r \t, other bytes below 0x20 as \u00xx, everything else raw). AS_EINVAL
 * (err set) for invalid JSON and for what jsonb refuses (\u0000, lone surrogates). */
int as_jsonb_text(const char *json, size_t len, as_buf *out, as_error *err);
/* The same with scratch memory kept between calls (one user at a time). */
typedef struct as_jsonb_scratch as_jsonb_scratch;
as_jsonb_scratch *as_jsonb_scratch_new(void);
void as_jsonb_scratch_free(as_jsonb_scratch *sc); /* NULL-safe */
int as_jsonb_text_s(as_jsonb_scratch *sc, const char *json, size_t len, as_buf *out,
                    as_error *err);

/* The double's canonical text as above ("4503599627370496p-52" for 1.0). out >= 32 bytes;
 * returns the length. */
size_t as_rowtext_double(double d, char out[32]);

#endif
