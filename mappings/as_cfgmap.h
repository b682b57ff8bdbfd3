/* as_cfgmap.h — typed config maps: a table of option keys, each with a type, a default, a
 * description, an example and the offset of its field in a caller-defined options struct; one
 * parser fills the struct from the options as written (node options of an adapter) or from a
 * YAML map (the top-level configuration file).
 *
 * An adapter writes one line per option:
 *
 *   typedef struct my_opts { char *path; int64_t busy_ms; int wake; bool copy; } my_opts;
 *   static const char *const wakes[] = {"inotify", "poll", NULL};
 *   static const as_config_entry map[] = {
 *       AS_OPT_REQ(PATH, my_opts, path, "database file", "./shop.db"),
 *       AS_OPT(INT, my_opts, busy_ms, "5000", "lock wait in ms", NULL, .min = 0, .max = INT_MAX),
 *       AS_OPT(ENUM, my_opts, wake, "inotify", "how to wait", NULL, .allowed = wakes),
 *       AS_OPT_END};
 *
 * (AS_OPT's key is the field's name.) Field types by option type: STRING, SECRET, PATH: char *
 * (owned by the struct: as_cfgmap_free frees them; NULL when absent without default); BOOL:
 * bool; INT: int64_t; DURATION: int64_t milliseconds; SIZE: int64_t bytes; ENUM: int, the
 * index into `allowed`. Entries of type MAP or LIST, and entries without a field (AS_DOC),
 * only document a key: the parser checks the key is known and leaves it to the caller.
 *
 * Errors read "FILE:LINE:COL: OWNER: option KEY: what is wrong (allowed: ...)" with the mark
 * of the value (or of the owner when a required option is missing); OWNER is e.g. "node pg".
 * A SECRET's value never appears in a message. */
#ifndef AS_CFGMAP_H
#define AS_CFGMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "as_error.h"
#include "as_schema.h"
#include "as_yaml.h"

typedef enum as_cfg_type {
  AS_CFG_STRING = 0,
  AS_CFG_SECRET,   /* a string never printed (passwords in URIs and conninfo) */
  AS_CFG_BOOL,     /* true/false, yes/no, on/off */
  AS_CFG_INT,      /* decimal integer within [min, max] (both 0: any int64) */
  AS_CFG_DURATION, /* 250ms, 30s, 5m, 1h, 2d; a plain integer is seconds */
  AS_CFG_SIZE,     /* bytes: 512, 64k/64KB/64KiB, 16M, 1G (1024-based) */
  AS_CFG_ENUM,     /* one of `allowed` */
  AS_CFG_PATH,     /* a file system path (non-empty) */
  AS_CFG_MAP,      /* documentation only: a nested section parsed by its owner */
  AS_CFG_LIST      /* documentation only: a list parsed by its owner */
} as_cfg_type;

/* One key of a config map. A table ends with an entry whose key is NULL (AS_OPT_END). */
typedef struct as_config_entry {
  const char *key;            /* dotted for nested keys of a YAML map ("batch.max_rows") */
  as_cfg_type type;
  const char *default_value;  /* text form, parsed like a value; NULL = no default */
  bool required;              /* missing (or empty) is an error */
  bool stored;                /* offset names a field of the options struct */
  size_t offset;
  const char *const *allowed; /* ENUM: NULL-terminated names */
  int64_t min, max;           /* INT, DURATION (ms), SIZE (bytes): bounds; both 0 = none */
  const char *description;
  const char *example;        /* a value to show in help; NULL = the default */
} as_config_entry;

#define AS_OPT(T, st, field, def, desc, ex, ...)                                             \
  {.key = #field, .type = AS_CFG_##T, .default_value = (def), .stored = true,               \
   .offset = offsetof(st, field), .description = (desc), .example = (ex), __VA_ARGS__}
#define AS_OPT_REQ(T, st, field, desc, ex, ...)                                              \
  {.key = #field, .type = AS_CFG_##T, .required = true, .stored = true,                     \
   .offset = offsetof(st, field), .description = (desc), .example = (ex), __VA_ARGS__}
/* A key stored in a field of another name (dotted keys, keys that are C keywords). */
#define AS_OPT_AT(T, k, st, field, def, desc, ex, ...)                                       \
  {.key = (k), .type = AS_CFG_##T, .default_value = (def), .stored = true,                  \
   .offset = offsetof(st, field), .description = (desc), .example = (ex), __VA_ARGS__}
/* A key documented and accepted here, parsed by its owner. */
#define AS_DOC(T, k, def, desc, ex, ...)                                                     \
  {.key = (k), .type = AS_CFG_##T, .default_value = (def), .description = (desc),          \
   .example = (ex), __VA_ARGS__}
#define AS_OPT_END {.key = NULL}

/* One option as written: key, value (after ${ENV} substitution) and where the value is. */
typedef struct as_node_option {
  char *key;
  char *value;     /* may hold a secret: never log it */
  as_mark mark;
} as_node_option;

/* Fills opts from the options as written plus the map's defaults. opts must be zeroed by the
 * caller (or hold only what as_cfgmap_free may free). Unknown keys are errors (allowed keys
 * listed). owner_mark: where the owner is, for a missing required option. On error the
 * struct may be partly filled: as_cfgmap_free it. */
int as_cfgmap_parse(const as_config_entry *map, const char *owner, const as_mark *owner_mark,
                    const as_node_option *opts, size_t nopts, void *out, as_error *err);

/* Same over a YAML map (the top-level file): dotted keys descend into nested maps, each of
 * which must be a map holding only its known keys. Entries of type MAP/LIST and AS_DOC
 * entries are accepted and left alone (not even `required` is checked: the owner does). what: the map's name in messages ("configuration"). */
int as_cfgmap_parse_yaml(const as_config_entry *map, const char *what, const as_ynode *root,
                         void *out, as_error *err);

/* Parses one value of entry e (text) into out's field. m: where the value is (may be NULL). */
int as_cfgmap_set(const as_config_entry *e, const char *owner, const as_mark *m,
                  const char *value, void *out, as_error *err);

/* The size an options struct for map needs at least (for validating options without the
 * owner's struct: parse into a zeroed buffer of this size, then as_cfgmap_free it). */
size_t as_cfgmap_struct_size(const as_config_entry *map);

/* Frees the strings of opts (the struct itself is the caller's); NULL-safe. */
void as_cfgmap_free(const as_config_entry *map, void *opts);

/* An error "FILE:LINE:COL: OWNER: option KEY: message" (mark and owner may be NULL). */
int as_cfgmap_error(as_error *err, const as_mark *m, const char *owner, const char *key,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* "string", "secret", "bool", "integer", "duration", "size", "one of", "path", "map", "list". */
const char *as_cfgmap_type_name(as_cfg_type t);
/* The type as help shows it: "integer 1..1000000", "enum: text | json", ... */
void as_cfgmap_type_text(const as_config_entry *e, char *buf, size_t cap);

/* Parsers shared with other readers of configuration. */
int as_cfgmap_parse_bool(const char *s, bool *out);
int as_cfgmap_parse_size(const char *s, int64_t *out);

/* Prints the map as help text: one block per key (type, default, description, example),
 * each line indented by indent spaces; prefix is put before each key (e.g. "nodes.NAME."). */
void as_cfgmap_print(const as_config_entry *map, FILE *out, int indent, const char *prefix);

/* The keys of a mapping file (as_schema_doc.c; documentation only: as_schema.c parses). */
const as_config_entry *as_schema_config_map(void);

#endif
