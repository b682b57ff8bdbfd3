/* as_row.h — a typed row bound to a schema, and the row delta (docs/ARCHITECTURE.md).
 *
 * An as_row has one slot per schema column (schema order); `set[i]` says whether slot i is
 * present. For an insert every column is present; for an update only the key columns and the
 * changed columns (delta semantics); for a delete only the key columns. */
#ifndef AS_ROW_H
#define AS_ROW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "as_schema.h"
#include "as_value.h"

typedef struct as_row {
  size_t n;        /* == schema->ncols */
  as_value *v;     /* n values */
  uint8_t *set;    /* n presence flags */
} as_row;

int as_row_init(as_row *r, size_t n);   /* all slots NULL and absent */
void as_row_clear(as_row *r);           /* frees values and arrays; NULL-safe */
void as_row_reset(as_row *r);           /* clears values, keeps capacity, all absent */
int as_row_copy(as_row *dst, const as_row *src);
/* Takes ownership of *v (v becomes NULL). */
void as_row_put(as_row *r, size_t i, as_value *v);
bool as_row_has(const as_row *r, size_t i);

/* AS_OP_TRUNCATE: every row of the mapping's table was removed at once (PostgreSQL TRUNCATE).
 * Such a delta has no key and no columns (row slots all absent); it is produced only when the
 * mapping says on_truncate: propagate, and a sink applies it by emptying its table (see
 * adapters/adapter.h). */
typedef enum as_op {
  AS_OP_INSERT = 1,
  AS_OP_UPDATE = 2,
  AS_OP_DELETE = 3,
  AS_OP_TRUNCATE = 4
} as_op;
const char *as_op_name(as_op op);           /* "insert" | "update" | "delete" | "truncate" */
bool as_op_parse(const char *s, as_op *out);

typedef struct as_vv_entry {
  char *node;
  uint64_t counter;
} as_vv_entry;

typedef struct as_delta {
  const as_schema *schema; /* borrowed; mapping name is schema->name */
  as_op op;
  as_row row;        /* key columns always set; see above for the rest */
  char *origin;      /* node where the change first happened */
  bool echo;         /* captured from a write the connector itself applied (origin = marked node) */
  bool relayed;      /* read from the engine's relay log, not captured (never set by adapters) */
  int64_t ts_us;     /* source commit time, µs UTC */
  int64_t hlc;       /* hybrid logical clock: (physical µs << 8) | logical counter */
  /* The change's place in its source node's commit order, comparable with the stamps that
   * node's sink gives the connector's own commits (as_adapter.commit_order): SQLite the
   * changelog sequence, PostgreSQL (logical decoding) the commit LSN, MongoDB the cluster
   * time (seconds << 32 | increment). 0 = unknown (then commit times are compared). */
  int64_t order;
  as_vv_entry *vv;   /* optional version vector, nvv entries, sorted by node name */
  size_t nvv;
  /* Optional, for updates: the whole row as it was right after the change on its source (every
   * column set), where the source gives it (a SQL trigger's new row, a document's post-image).
   * Resolution uses `row` (the changed columns); the image is what an update that brings a
   * deleted row back writes, so the row returns whole, never as a row of one change's
   * columns. image.n == 0 when absent. */
  as_row image;
  /* Optional, for updates: the whole row as its source held it right before the change (every
   * column set), where the source gives it (a SQLite changelog's old row, PostgreSQL's old
   * tuple under REPLICA IDENTITY FULL, a MongoDB pre-image with `full_document:
   * whenAvailable`), for mappings that run a script (as_schema_keeps_before): the script
   * strategy gives it to resolve() as ctx.base, what the change was made on top of.
   * before.n == 0 when absent. Not part of the JSON form below (relayed,
   * queued and dead-lettered changes do not carry it). */
  as_row before;
  char *pos;         /* source position (resume token, changelog sequence), opaque text */
  char *txn;         /* source transaction id or NULL */
} as_delta;

int as_delta_init(as_delta *d, const as_schema *s, as_op op);
void as_delta_clear(as_delta *d);   /* NULL-safe; leaves d zeroed */
int as_delta_copy(as_delta *dst, const as_delta *src);
int as_delta_set_origin(as_delta *d, const char *origin);
int as_delta_set_pos(as_delta *d, const char *pos);
int as_delta_set_txn(as_delta *d, const char *txn);
int as_delta_vv_set(as_delta *d, const char *node, uint64_t counter); /* keeps sorted */

/* hlc helpers */
#define AS_HLC_FROM_US(us) ((int64_t)(us) << 8)
#define AS_HLC_US(h) ((int64_t)(h) >> 8)

/* Canonical JSON form of a delta (jansson):
 * {"mapping":"users","op":"update","key":{"id":<value>},"cols":{"email":<value>,...},
 *  "origin":"mongo","echo":false,"ts":<int µs>,"hlc":<int>,"vv":{"a":1},"pos":"...","txn":"...",
 *  "image":{<every non-key column>}}
 * Values in the as_value.h JSON form; "cols" holds the non-key present columns; "vv", "pos",
 * "txn" omitted when absent. A truncate has "key":{} and "cols":{}. Returns a new reference or NULL (err set). */
json_t *as_delta_to_json(const as_delta *d, as_error *err);
/* Parses the form above; the schema is looked up by name through `lookup`. */
typedef const as_schema *(*as_schema_lookup_fn)(void *ctx, const char *mapping);
int as_delta_from_json(const json_t *j, as_schema_lookup_fn lookup, void *ctx, as_delta *out,
                       as_error *err);
/* (from_json: *out is overwritten (not cleared first) on success only; unknown fields, unknown
 * columns, key columns under "cols" and missing key columns are AS_EINVAL; an unknown mapping
 * is AS_ENOTFOUND. Untagged values are converted to the column type with
 * as_value_from_json_typed.) */
/* Compact string form (caller frees). */
char *as_delta_to_json_string(const as_delta *d, as_error *err);

/* Value <-> canonical JSON (as_value.h). */
json_t *as_value_to_json(const as_value *v, as_error *err);
int as_value_from_json(const json_t *j, as_value *out, as_error *err);
/* Parses a canonical JSON value and converts it to the column type (used when a JSON value
 * comes in untagged, e.g. a plain string for a uuid column). */
int as_value_from_json_typed(const json_t *j, as_type type, as_value *out, as_error *err);

#endif
