/* adapter.c — batch and dead-letter helpers shared by every adapter. */
#include "adapter.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../mappings/as_time.h"

const char *as_node_config_get(const as_node_config *c, const char *key) {
  for (size_t i = 0; c && i < c->nopts; i++) {
    if (strcmp(c->opts[i].key, key) == 0) return c->opts[i].value;
  }
  const as_adapter *a = c ? as_adapter_find(c->kind) : NULL;
  for (const as_config_entry *e = a ? a->config_map : NULL; e && e->key; e++) {
    if (strcmp(e->key, key) == 0) return e->default_value;
  }
  return NULL;
}

static int grow(void **items, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return AS_OK;
  size_t ncap = *cap ? *cap * 2 : 16;
  while (ncap < need) ncap *= 2;
  void *p = realloc(*items, ncap * size);
  if (!p) return AS_ERR;
  memset((char *)p + *cap * size, 0, (ncap - *cap) * size);
  *items = p;
  *cap = ncap;
  return AS_OK;
}

as_delta *as_batch_push(as_batch *b) {
  if (grow((void **)&b->d, &b->cap, b->n + 1, sizeof *b->d) != AS_OK) return NULL;
  as_delta *d = &b->d[b->n++];
  memset(d, 0, sizeof *d);
  return d;
}

int as_batch_push_dead(as_batch *b, const as_schema *s, char *key, char *raw, char *error,
                       char *pos) {
  if (grow((void **)&b->dead, &b->capdead, b->ndead + 1, sizeof *b->dead) != AS_OK) {
    free(key);
    free(raw);
    free(error);
    free(pos);
    return AS_ERR;
  }
  as_dead *d = &b->dead[b->ndead++];
  *d = (as_dead){.schema = s, .key = key, .raw = raw, .error = error, .pos = pos};
  return AS_OK;
}

int as_batch_set_pos(as_batch *b, const char *pos) {
  char *p = pos ? strdup(pos) : NULL;
  if (pos && !p) return AS_ERR;
  free(b->pos);
  b->pos = p;
  return AS_OK;
}

void as_dead_free(as_dead *d) {
  if (!d) return;
  free(d->key);
  free(d->raw);
  free(d->error);
  free(d->pos);
  memset(d, 0, sizeof *d);
}

void as_batch_reset(as_batch *b) {
  for (size_t i = 0; i < b->n; i++) as_delta_clear(&b->d[i]);
  for (size_t i = 0; i < b->ndead; i++) as_dead_free(&b->dead[i]);
  b->n = 0;
  b->ndead = 0;
  free(b->pos);
  b->pos = NULL;
}

void as_batch_clear(as_batch *b) {
  if (!b) return;
  as_batch_reset(b);
  free(b->d);
  free(b->dead);
  memset(b, 0, sizeof *b);
}

int as_dead_list_push_missing(as_dead_list *l, const as_schema *s, size_t index) {
  if (grow((void **)&l->items, &l->cap, l->n + 1, sizeof *l->items) != AS_OK) return AS_ERR;
  l->items[l->n++] = (as_dead){.schema = s, .index = index, .missing = true};
  return AS_OK;
}

int as_dead_list_push(as_dead_list *l, const as_schema *s, size_t index, char *key, char *raw,
                      char *error) {
  if (grow((void **)&l->items, &l->cap, l->n + 1, sizeof *l->items) != AS_OK) {
    free(key);
    free(raw);
    free(error);
    return AS_ERR;
  }
  l->items[l->n++] = (as_dead){.schema = s, .index = index, .key = key, .raw = raw, .error = error};
  return AS_OK;
}

void as_dead_list_clear(as_dead_list *l) {
  if (!l) return;
  for (size_t i = 0; i < l->n; i++) as_dead_free(&l->items[i]);
  free(l->items);
  memset(l, 0, sizeof *l);
}

int as_adapter_decode_row_json(const as_schema *s, const char *raw, as_delta *out,
                               as_error *err) {
  json_error_t je;
  json_t *j = json_loads(raw, JSON_ALLOW_NUL, &je);
  json_t *row = j ? json_object_get(j, "new") : NULL;
  if (!row && json_is_object(j)) row = j;
  if (!json_is_object(row)) row = NULL; /* never a row of nothing but NULLs */
  int rc = row ? as_delta_init(out, s, AS_OP_INSERT)
               : as_error_set(err, AS_DOM_CODEC, AS_EDATA, "the stored row is not a JSON object");
  for (size_t i = 0; rc == AS_OK && i < s->ncols; i++) {
    json_t *v = json_object_get(row, s->cols[i].name);
    as_value val = AS_VALUE_NULL;
    if (v && json_is_string(v)) {
      rc = as_value_from_text(s->cols[i].type, json_string_value(v), json_string_length(v), &val,
                              err);
    } else if (v && !json_is_null(v)) {
      rc = as_value_from_json_typed(v, s->cols[i].type, &val, err);
    }
    if (rc == AS_OK) as_row_put(&out->row, i, &val);
    else if (rc != AS_ERR) rc = AS_EDATA;
  }
  json_decref(j);
  return rc;
}

int as_node_option_error(as_error *err, const as_node_config *cfg, const char *key,
                         const char *fmt, ...) {
  const as_mark *m = cfg ? &cfg->mark : NULL;
  for (size_t i = 0; cfg && i < cfg->nopts; i++) {
    if (strcmp(cfg->opts[i].key, key) == 0) m = &cfg->opts[i].mark;
  }
  char msg[AS_ERROR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char owner[160];
  snprintf(owner, sizeof owner, "node %s", cfg && cfg->name ? cfg->name : "?");
  return as_cfgmap_error(err, m, owner, key, "%s", msg);
}

int as_node_options_parse(const as_node_config *cfg, const as_config_entry *map, void *opts,
                          as_error *err) {
  char owner[160];
  snprintf(owner, sizeof owner, "node %s", cfg->name ? cfg->name : "?");
  return as_cfgmap_parse(map, owner, &cfg->mark, cfg->opts, cfg->nopts, opts, err);
}

int as_table_desc_add(as_table_desc *d, const char *name, const char *sql_type, bool not_null,
                      int key_pos) {
  as_table_column *g = realloc(d->cols, (d->ncols + 1) * sizeof *g);
  if (!g) return AS_ERR;
  d->cols = g;
  as_table_column *c = &d->cols[d->ncols];
  *c = (as_table_column){.name = strdup(name), .sql_type = strdup(sql_type),
                         .not_null = not_null, .key_pos = key_pos};
  if (!c->name || !c->sql_type) {
    free(c->name);
    free(c->sql_type);
    return AS_ERR;
  }
  d->ncols++;
  return AS_OK;
}

static bool same_key(const as_value *a, const as_value *b, size_t nkey) {
  for (size_t k = 0; k < nkey; k++)
    if (as_value_compare(&a[k], &b[k]) != 0) return false;
  return true;
}

int as_verify_bounds_from_sample(const as_value *sample, size_t n, size_t nkey, size_t parts,
                                 as_value *out, size_t *got) {
  *got = 0;
  for (size_t j = 1; j < parts; j++) {
    size_t i = j * n / parts;
    if (i == 0 || i >= n) continue;
    const as_value *k = sample + i * nkey;
    if (*got && same_key(k, out + (*got - 1) * nkey, nkey)) continue;
    for (size_t x = 0; x < nkey; x++) {
      if (as_value_copy(&out[*got * nkey + x], &k[x]) == AS_OK) continue;
      for (size_t y = 0; y < (*got + 1) * nkey; y++) as_value_clear(&out[y]);
      *got = 0;
      return AS_ERR;
    }
    (*got)++;
  }
  return AS_OK;
}

void as_table_desc_free(as_table_desc *d) {
  if (!d) return;
  for (size_t i = 0; i < d->ncols; i++) {
    free(d->cols[i].name);
    free(d->cols[i].sql_type);
  }
  free(d->cols);
  free(d->table);
  memset(d, 0, sizeof *d);
}

bool as_ack_pace_ack(as_ack_pace *p) {
  p->pending = true;
  return as_monotonic_us() - p->written_us >= p->interval_us;
}

bool as_ack_pace_idle(const as_ack_pace *p, int *wait_ms) {
  if (!p->pending) return false;
  int64_t left_us = p->written_us + p->interval_us - as_monotonic_us();
  if (left_us <= 0) return true;
  int64_t due_ms = left_us / 1000 + 1;
  if (due_ms < *wait_ms) *wait_ms = (int)due_ms;
  return false;
}

void as_ack_pace_written(as_ack_pace *p, bool ok) {
  if (ok) p->pending = false;
  p->written_us = as_monotonic_us();
}
