/* as_yaml.h — phase one of configuration: a YAML tree with line:column marks (libyaml).
 *
 * Scalars keep their text with ${VAR} and ${VAR:-default} already substituted from the
 * environment (an unset VAR without default is an error naming file:line:col). Aliases are
 * resolved. Phase two (typed config maps) walks this tree. */
#ifndef AS_YAML_H
#define AS_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "as_error.h"
#include "as_schema.h"

typedef enum as_ynode_kind { AS_Y_SCALAR = 1, AS_Y_MAP, AS_Y_SEQ } as_ynode_kind;

typedef struct as_ynode as_ynode;
struct as_ynode {
  as_ynode_kind kind;
  as_mark mark;         /* start of the node */
  char *scalar;         /* AS_Y_SCALAR: text after substitution */
  bool quoted;          /* scalar was quoted ('' or "") */
  size_t n;             /* MAP: pairs; SEQ: items */
  char **keys;          /* MAP: keys */
  as_mark *key_marks;   /* MAP: where each key is */
  as_ynode **items;     /* MAP: values; SEQ: items */
};

typedef struct as_ydoc {
  char *file;           /* owned; marks point into it */
  as_ynode *root;       /* NULL for an empty document */
} as_ydoc;

int as_yaml_load_file(const char *path, as_ydoc **out, as_error *err);
int as_yaml_load_string(const char *name, const char *text, size_t len, as_ydoc **out,
                        as_error *err);
void as_ydoc_free(as_ydoc *d);

/* Map helpers. */
as_ynode *as_ynode_get(const as_ynode *map, const char *key);
/* Where `key` is written in map, or NULL. */
const as_mark *as_ynode_key_mark(const as_ynode *map, const char *key);
/* NULL, or an unquoted "", "~" or "null". */
bool as_ynode_is_null(const as_ynode *n);
/* "a map", "a list", "a value" (for messages). */
const char *as_ynode_kind_name(const as_ynode *n);
/* Errors "file:line:col: message" for a node (returns AS_EINVAL). */
int as_yaml_error(as_error *err, const as_mark *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Checks that every key of map is in allowed (NULL-terminated); error names the first unknown
 * key and lists the allowed ones. */
int as_yaml_check_keys(const as_ynode *map, const char *const *allowed, const char *what,
                       as_error *err);
/* Typed scalar readers; each errors with position and what was expected. */
int as_yaml_str(const as_ynode *n, const char *what, char **out, as_error *err);
int as_yaml_bool(const as_ynode *n, const char *what, bool *out, as_error *err);
int as_yaml_int(const as_ynode *n, const char *what, int64_t min, int64_t max, int64_t *out,
                as_error *err);
/* Durations: "250ms", "30s", "5m", "1h", "2d"; plain integers are seconds. */
int as_yaml_duration_ms(const as_ynode *n, const char *what, int64_t *out, as_error *err);
int as_parse_duration_ms(const char *s, int64_t *out);

/* ${VAR} / ${VAR:-default} substitution on a string; $$ is a literal $. */
int as_env_expand(const char *in, char **out, const char **bad_var);

#endif
