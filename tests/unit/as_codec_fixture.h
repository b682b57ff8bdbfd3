/* as_codec_fixture.h — hand-built schemas for the codec unit tests (header-only, static).
 * Independent of the YAML loader so codec tests do not depend on it. */
#ifndef AS_CODEC_FIXTURE_H
#define AS_CODEC_FIXTURE_H

#include <stdlib.h>
#include <string.h>

#include "as_schema.h"

typedef struct fx_col {
  const char *name;
  const char *field;
  as_type type;
  int flags; /* FX_KEY, FX_REQ */
} fx_col;

#define FX_KEY 1
#define FX_REQ 2

static inline as_schema *fx_schema(const char *name, const fx_col *cols, size_t n) {
  as_schema *s = calloc(1, sizeof *s);
  s->name = strdup(name);
  s->collection = strdup(name);
  s->table = strdup(name);
  s->cols = calloc(n, sizeof *s->cols);
  s->ncols = n;
  s->key_idx = calloc(n, sizeof *s->key_idx);
  s->catch_all_idx = -1;
  s->conflict.clock_idx = -1;
  for (size_t i = 0; i < n; i++) {
    as_column *c = &s->cols[i];
    c->name = strdup(cols[i].name);
    c->field = strdup(cols[i].field);
    c->type = cols[i].type;
    c->type_name = strdup(as_type_name(cols[i].type));
    c->is_key = (cols[i].flags & FX_KEY) != 0;
    c->required = (cols[i].flags & (FX_REQ | FX_KEY)) != 0;
    if (strcmp(cols[i].field, "*") == 0) {
      c->catch_all = true;
      s->catch_all_idx = (int)i;
      continue;
    }
    size_t parts = 1;
    for (const char *p = cols[i].field; *p; p++) parts += *p == '.';
    c->path = calloc(parts, sizeof *c->path);
    char *dup = strdup(cols[i].field), *save = NULL;
    for (char *t = strtok_r(dup, ".", &save); t; t = strtok_r(NULL, ".", &save))
      c->path[c->npath++] = strdup(t);
    free(dup);
    if (c->is_key) s->key_idx[s->nkey++] = i;
  }
  return s;
}

static inline void fx_schema_free(as_schema *s) {
  if (!s) return;
  for (size_t i = 0; i < s->ncols; i++) {
    as_column *c = &s->cols[i];
    for (size_t k = 0; k < c->npath; k++) free(c->path[k]);
    free(c->path);
    free(c->name);
    free(c->field);
    free(c->type_name);
  }
  free(s->cols);
  free(s->key_idx);
  free(s->name);
  free(s->collection);
  free(s->table);
  free(s);
}

/* The users mapping of the README, plus a few typed columns. */
static inline as_schema *fx_users(void) {
  static const fx_col cols[] = {
      {"id", "_id", AS_T_UUID, FX_KEY},
      {"email", "email", AS_T_TEXT, FX_REQ},
      {"age", "age", AS_T_INT64, 0},
      {"balance", "account.balance", AS_T_DECIMAL, 0},
      {"currency", "account.currency", AS_T_TEXT, 0},
      {"last_updated", "lastUpdated", AS_T_TIMESTAMP, 0},
      {"extra", "*", AS_T_JSON, 0},
  };
  return fx_schema("users", cols, sizeof cols / sizeof cols[0]);
}

#endif
