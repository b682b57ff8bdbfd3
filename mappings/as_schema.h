/* as_schema.h — a registered schema: one mapping file (docs/CONFIG.md) after validation.
 *
 * Loaded by as_schema_load (as_schema.c) from YAML; immutable afterwards and shared
 * read-only by every adapter and the engine. Column order is the order in the file; it is the
 * order of values in an as_row and of the binary encoding used for hashing. */
#ifndef AS_SCHEMA_H
#define AS_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "as_error.h"
#include "as_value.h"

typedef enum as_direction { AS_DIR_BOTH = 0, AS_DIR_TO_SQL, AS_DIR_TO_MONGO } as_direction;
typedef enum as_mode { AS_MODE_REALTIME = 0, AS_MODE_INTERVAL } as_mode;
/* conflict.strategy: lww | vector | script. conflict.fallback (what decides the value while a
 * conflict is open): lww | script | keep-local (the value the key had) | keep-remote (the
 * incoming change). */
typedef enum as_strategy {
  AS_STRATEGY_LWW = 0,
  AS_STRATEGY_VECTOR,
  AS_STRATEGY_SCRIPT,
  AS_STRATEGY_KEEP_LOCAL,
  AS_STRATEGY_KEEP_REMOTE
} as_strategy;
/* conflict.call: when a conflict script runs. */
typedef enum as_call { AS_CALL_CONFLICTS = 0, AS_CALL_ALWAYS } as_call;
typedef enum as_on_error { AS_ON_ERROR_DEAD_LETTER = 0, AS_ON_ERROR_STOP } as_on_error;
/* What a captured TRUNCATE of the mapping's SQL table does (mapping key on_truncate):
 * stop (default): the stream stops with an error naming table and position, nothing is lost,
 *   the operator chooses propagate or ignore and restarts (the stream resumes at the truncate);
 * propagate: an AS_OP_TRUNCATE delta travels to the other nodes, which empty the table;
 * ignore: a warning is logged and the other nodes keep their rows. */
typedef enum as_on_truncate {
  AS_ON_TRUNCATE_STOP = 0,
  AS_ON_TRUNCATE_PROPAGATE,
  AS_ON_TRUNCATE_IGNORE
} as_on_truncate;

/* Where a value came from in a file, for messages "file:line:col". */
typedef struct as_mark {
  const char *file; /* borrowed from the owning schema/config */
  int line;         /* 1-based */
  int col;          /* 1-based */
} as_mark;

typedef struct as_column {
  char *name;        /* SQL column name (any characters; adapters quote it) */
  char *field;       /* MongoDB field path as written, e.g. "account.balance", or "*" */
  char **path;       /* field split on '.', npath parts; NULL for the catch-all */
  size_t npath;
  as_type type;      /* value type; SQL type follows from it (as_schema_pg_type, ...) */
  char *type_name;   /* the type as written in the file (e.g. "timestamptz") */
  bool required;     /* NULL/missing is a mapping error */
  bool is_key;
  bool catch_all;    /* field "*": all fields no other column maps, as one json value */
  int child;         /* > 0: the array of child table children[child - 1] (see as_child) */
  bool inner_array;  /* an element's array of an inner child table (as_schema_child_elem_arrays) */
  as_mark mark;
} as_column;

/* Does a null field read as a value of column c? Only in a json column, which holds any value
 * (JSON null too: SQL 'null'::jsonb <-> {"f": null}, SQL NULL <-> no field, so absent vs null
 * survives); elsewhere null and missing are both NULL. A child table's array column (child
 * > 0, inner_array) and the catch-all keep NULL for null. */
static inline bool as_column_json_null(const as_column *c) {
  return c->type == AS_T_JSON && c->child == 0 && !c->inner_array && !c->catch_all;
}

/* A child table (`children:`): an array of subdocuments kept as rows of its own SQL table.
 *
 * To the engine, the resolvers and MongoDB the array is one json column of the mapping (its
 * "array column", named after the field and placed after the parent table's columns:
 * cols[ntable..ncols)), holding the array as AS-JSON; a change of any element is a change of
 * that column, so conflicts are decided at parent granularity. Only the SQL adapters see the
 * child table: they write an array column as rows of `tab` (as_children.h) and read those rows
 * back into the column.
 *
 * The child table (`tab`): the parent key columns (named parent_key, or by default the parent
 * table's name, '_' and the key column's name: users_id), "position" (bigint, the 0-based index
 * in the array), then the element columns (the element catch-all "*" included). Its primary
 * key: parent key + the element key column when the child says `key: COLUMN` (elements
 * identified by that field), else parent key + position.
 *
 * Nested children (`children:` inside a child; two levels at most): the child table schema
 * `tab` is their parent exactly as a mapping is its children's: `tab->children` lists them,
 * tab's array columns follow its table columns, and their parent key is tab's key (the
 * mapping's key columns first, so every table under a mapping starts with the mapping's key).
 * The element schema `elem` has the same array columns after the element columns, as json
 * columns: one element converts to a child row with its inner arrays as values. */
typedef struct as_child {
  char *table;       /* child table name */
  char *field;       /* array field in the parent document */
  as_column *cols;   /* columns of one array element (fields relative to the element) */
  size_t ncols;
  int key;           /* index in cols of the element key column, or -1 (by position) */
  int catch_all_idx; /* index in cols of the element catch-all, or -1 */
  char **parent_cols; /* the child table's parent key columns, one per parent key column */
  size_t col;        /* index of the array column in the mapping's cols */
  struct as_schema *elem; /* one element as a document: cols, no key (as_doc_to_row etc.) */
  struct as_schema *tab;  /* the child table as a schema of its own (see above) */
  as_mark mark;
} as_child;

/* Name of a child table's position column. */
#define AS_CHILD_POSITION "position"

typedef struct as_schema {
  char *name;        /* mapping name, unique in a config */
  char *file;        /* path of the mapping file */
  char *collection;  /* MongoDB collection */
  char *table;       /* SQL table */
  as_direction direction;
  as_mode mode;
  int64_t interval_ms; /* for AS_MODE_INTERVAL */
  as_column *cols;
  size_t ncols;
  size_t ntable;     /* cols[0..ntable) are the SQL table's own columns; the rest are the
                        array columns of the child tables (as_child), one per child */
  size_t *key_idx;   /* indexes into cols of the key columns, in key order */
  size_t nkey;
  int catch_all_idx; /* index of the "*" column or -1 */
  as_child *children;
  size_t nchildren;
  struct {
    as_strategy strategy;
    int clock_idx;   /* column used as LWW clock, or -1 for commit time */
    char *script;    /* path (resolved relative to the mapping file) or NULL */
    as_strategy fallback; /* vector/script: what decides the interim value */
    as_call call;    /* when the script runs: conflicts only (default) or every change */
  } conflict;
  as_on_error on_error;
  as_on_truncate on_truncate;
  /* initial_sync.prefer: the node whose row stays when a first copy finds a key on both sides
   * with different values (NULL: the clock column decides, else the key is reported as a
   * conflict and left alone); the configuration checks it names a node of the mapping */
  char *initial_prefer;
  as_mark initial_prefer_mark;
  /* conflicts: { node, table }: where this mapping's open conflicts are mirrored (a SQL node's
   * table). The mapping's own block wins; as_config fills in what it leaves out from the
   * configuration's conflicts block, then the first SQL node and "arraysync_conflicts".
   * Both NULL: nothing mirrors this mapping's conflicts. mirror_mark: the block, if any. */
  char *mirror_node;
  char *mirror_table;
  bool mirror_own;
  as_mark mirror_mark;
  bool reloadable;   /* SIGHUP may reload this mapping */
  as_mark mark;      /* where the mapping starts */
} as_schema;

/* Loads and validates one mapping file. On error returns AS_EINVAL with
 * "FILE:LINE:COL: message" in err. Caller frees with as_schema_free. */
int as_schema_load(const char *path, as_schema **out, as_error *err);
/* Same, from a YAML string (name used in messages; a relative conflict.script resolves
 * against the directory part of name, or the working directory). */
int as_schema_load_string(const char *name, const char *yaml, as_schema **out, as_error *err);
void as_schema_free(as_schema *s);

/* Column lookup. Returns index or -1. */
int as_schema_column_index(const as_schema *s, const char *name);
/* The column a MongoDB field path falls under: exact match, or the column whose path is a
 * prefix of it (a change inside a json column), or the catch-all if the top-level field is
 * not mapped at all. Array-index parts ("items.2.qty") are handled. -1 if nothing maps it
 * (possible only without a catch-all). */
int as_schema_column_for_path(const as_schema *s, const char *dotted_path);
/* Whether a capture should give this mapping's updates their old row (as_row.h `before`): only
 * a script reads it (ctx.base), so other mappings skip the work. */
static inline bool as_schema_keeps_before(const as_schema *s) {
  return s->conflict.strategy == AS_STRATEGY_SCRIPT || s->conflict.fallback == AS_STRATEGY_SCRIPT;
}
/* Added (as_schema.c): as_schema_column_for_path returns AS_SCHEMA_PATH_PARENT when the path
 * is a strict prefix of one or more mapped paths (e.g. "account" while "account.balance" is a
 * column): the caller must look at the sub-fields. A path outside every column that is not
 * such a prefix ("account.currency") goes to the catch-all. A path at or under a child
 * table's array field returns -1 from as_schema_column_for_path; as_schema_child_for_path
 * gives the child's index (or -1). */
#define AS_SCHEMA_PATH_PARENT (-2)
int as_schema_child_for_path(const as_schema *s, const char *dotted_path);

/* Adds each child's array column, element schema and child table schema (as_schema_child.c;
 * called by the loader after the children are parsed). "FILE:LINE:COL: ..." errors. */
int as_schema_children_build(as_schema *s, as_error *err);
/* Nested children: once ch->tab has its own children built, ch->elem gets their array columns
 * (plain json columns, in the same order, after the element columns). */
int as_schema_child_elem_arrays(as_child *ch, as_error *err);
/* The SQL tables of a mapping: its own, then each child table followed by its own child
 * tables. Fills out[0..max) and returns how many there are (max may be 0, out NULL). */
size_t as_schema_tables(const as_schema *s, const char **out, size_t max);
/* Whether table is one of those tables; a table of a's that b has too (NULL: none). */
bool as_schema_has_table(const as_schema *s, const char *table);
const char *as_schema_shared_table(const as_schema *a, const as_schema *b);
/* The child table schema whose table is `table`, among s's children at any depth (*top: the
 * index of the child of s it is, or is under); NULL if none. */
const as_schema *as_schema_child_tab(const as_schema *s, const char *table, size_t *top);

/* SQL types for DDL and table checks. */
const char *as_schema_pg_type(as_type t);     /* uuid, text, bigint, double precision, numeric,
                                                 boolean, bytea, timestamptz, date, jsonb, ... */
const char *as_schema_sqlite_type(as_type t); /* TEXT, INTEGER, REAL, BLOB, ... (affinity) */

#endif
