/* cmd_infer.h — `arraysync infer`: a mapping file from the data.
 *
 *   arraysync infer -c FILE --node mongo --collection users [--sample N] [--first] [-o OUT]
 *   arraysync infer -c FILE --node pg --table users [-o OUT]
 *
 * From documents (an adapter with `sample`): one column per stable path; a path is stable when
 * every sampled document has it at the same place among its fields (so the field order of the
 * documents survives: columns come back first, then the catch-all's fields), with one type
 * that the mapping layer writes back unchanged. Nested documents become dotted paths up to
 * depth 3; arrays (also of subdocuments: child tables are not synced yet) and deeper documents
 * become jsonb columns; everything else — fields some documents lack (a column would write
 * null where they are absent), mixed types, int64 values in the int32 range (written back as
 * int32), names with '.' or a leading '$', and the fields after the first such field (their
 * order) — stays in the catch-all column `extra` ("*"), each listed in a comment with its
 * frequency and the reason. `required: true` where a column's value is never null. Key: _id.
 * So every sampled document goes document -> row -> document byte for byte.
 *
 * From a table (an adapter with `describe`): one column per table column with the mapping type
 * its SQL type maps to; the primary key is the key (a one-column key is mapped to _id). */
#ifndef AS_CMD_INFER_H
#define AS_CMD_INFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <bson/bson.h>

#include "adapter.h"
#include "as_buf.h"
#include "as_config.h"

typedef struct as_infer as_infer;

typedef struct as_infer_opts {
  const char *name;       /* mapping and table name (default: from the collection) */
  const char *collection; /* the collection (or, from a table, the collection to write) */
  const char *source;     /* for the header comment, e.g. "node mongo, collection users" */
  int max_depth;          /* nested documents as dotted paths up to this depth (default 3) */
} as_infer_opts;

as_infer *as_infer_new(void);
/* Observes one sampled document. AS_ERR on out of memory. */
int as_infer_add(as_infer *in, const bson_t *doc);
size_t as_infer_count(const as_infer *in);
/* Writes the mapping file (YAML with comments) for the documents observed. AS_EINVAL when no
 * key can be inferred (no documents, _id of mixed or unkeyable types). */
int as_infer_mapping(const as_infer *in, const as_infer_opts *o, as_buf *out, as_error *err);
void as_infer_free(as_infer *in);

/* The mapping of an existing table (as described by an adapter). AS_EINVAL without a primary
 * key. */
int as_infer_table(const as_table_desc *d, const as_infer_opts *o, as_buf *out, as_error *err);

/* SQL-safe snake_case name for a dotted path: "profile.homeAddress" -> "profile_home_address"
 * (at most 55 bytes; "_id" -> "id"). Caller frees. */
char *as_infer_column_name(const char *path);

typedef struct as_cmd_infer_opts {
  const char *node;
  const char *collection;
  const char *table;
  size_t sample;          /* default 1000 */
  bool first;             /* the first N documents instead of a random sample */
  const char *output;     /* NULL: stdout */
} as_cmd_infer_opts;

/* Runs the command on the node of cfg; messages for the user on err (AS_EINVAL: usage). */
int as_cmd_infer(const as_config *cfg, const as_cmd_infer_opts *o, FILE *out, as_error *err);

#endif
