/* fuzz_mappings.h — the fixed mappings the fuzz targets convert through.
 *
 * FUZZ_MAP_ALL: every column type, a composite key, dotted paths at several depths, columns
 * sharing parent documents, and the catch-all. FUZZ_MAP_OID / FUZZ_MAP_TEXT: a key and the
 * catch-all only, lossless for every document whose first field is an _id of the key's type
 * (document -> row -> document gives the same bytes). */
#ifndef AS_FUZZ_MAPPINGS_H
#define AS_FUZZ_MAPPINGS_H

#define FUZZ_MAP_ALL                               \
  "mapping: all\n"                                 \
  "key: [id, n]\n"                                 \
  "columns:\n"                                     \
  "  id:   { field: _id, type: text }\n"           \
  "  n:    { field: n, type: int64 }\n"            \
  "  b:    { field: flags.b, type: bool }\n"       \
  "  d:    { field: flags.d, type: double }\n"     \
  "  dec:  { field: money.amount, type: numeric }\n" \
  "  t:    { field: a.b.c, type: text }\n"         \
  "  t2:   { field: a.x, type: text }\n"           \
  "  by:   { field: blob, type: bytes }\n"         \
  "  u:    { field: u, type: uuid }\n"             \
  "  o:    { field: o, type: objectid }\n"         \
  "  ts:   { field: when.ts, type: timestamptz }\n" \
  "  dt:   { field: when.day, type: date }\n"      \
  "  j:    { field: doc, type: jsonb }\n"          \
  "  rest: { field: \"*\", type: jsonb }\n"

#define FUZZ_MAP_OID           \
  "mapping: oid\n"             \
  "key: id\n"                  \
  "columns:\n"                 \
  "  id:   { field: _id, type: objectid }\n" \
  "  rest: { field: \"*\", type: jsonb }\n"

#define FUZZ_MAP_TEXT          \
  "mapping: text\n"            \
  "key: id\n"                  \
  "columns:\n"                 \
  "  id:   { field: _id, type: text }\n" \
  "  rest: { field: \"*\", type: jsonb }\n"

#endif
