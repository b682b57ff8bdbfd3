/* as_cfgmap.c — typed config maps (see as_cfgmap.h). */
#include "as_cfgmap.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "as_buf.h"

static void *field(void *out, const as_config_entry *e) { return (char *)out + e->offset; }

int as_cfgmap_error(as_error *err, const as_mark *m, const char *owner, const char *key,
                    const char *fmt, ...) {
  char msg[AS_ERROR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char where[512] = "";
  if (m && m->file && m->line > 0) {
    snprintf(where, sizeof where, "%s:%d:%d: ", m->file, m->line, m->col);
  }
  return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "%s%s%s%s%s: %s", where,
                      owner ? owner : "", owner ? ": " : "", key ? "option " : "",
                      key ? key : "", msg);
}

const char *as_cfgmap_type_name(as_cfg_type t) {
  switch (t) {
    case AS_CFG_STRING: return "string";
    case AS_CFG_SECRET: return "secret";
    case AS_CFG_BOOL: return "bool";
    case AS_CFG_INT: return "integer";
    case AS_CFG_DURATION: return "duration";
    case AS_CFG_SIZE: return "size";
    case AS_CFG_ENUM: return "one of";
    case AS_CFG_PATH: return "path";
    case AS_CFG_MAP: return "map";
    case AS_CFG_LIST: return "list";
  }
  return "?";
}

static void allowed_list(const as_config_entry *e, const char *sep, char *buf, size_t cap) {
  size_t off = 0;
  buf[0] = '\0';
  for (size_t i = 0; e->allowed && e->allowed[i] && off < cap; i++) {
    int w = snprintf(buf + off, cap - off, "%s%s", i ? sep : "", e->allowed[i]);
    if (w < 0) break;
    off += (size_t)w;
  }
}

static void bound_text(const as_config_entry *e, int64_t v, char *buf, size_t cap) {
  if (e->type == AS_CFG_DURATION && v % 1000 == 0) snprintf(buf, cap, "%" PRId64 "s", v / 1000);
  else if (e->type == AS_CFG_DURATION) snprintf(buf, cap, "%" PRId64 "ms", v);
  else snprintf(buf, cap, "%" PRId64, v);
}

void as_cfgmap_type_text(const as_config_entry *e, char *buf, size_t cap) {
  if (e->type == AS_CFG_ENUM) {
    char list[512];
    allowed_list(e, " | ", list, sizeof list);
    snprintf(buf, cap, "one of: %s", list);
    return;
  }
  if ((e->type == AS_CFG_INT || e->type == AS_CFG_DURATION || e->type == AS_CFG_SIZE) &&
      (e->min || e->max)) {
    char lo[40], hi[40];
    bound_text(e, e->min, lo, sizeof lo);
    bound_text(e, e->max, hi, sizeof hi);
    snprintf(buf, cap, "%s %s..%s", as_cfgmap_type_name(e->type), lo, hi);
    return;
  }
  snprintf(buf, cap, "%s", as_cfgmap_type_name(e->type));
}

int as_cfgmap_parse_bool(const char *s, bool *out) {
  static const char *const yes[] = {"true", "yes", "on", NULL};
  static const char *const no[] = {"false", "no", "off", NULL};
  for (size_t i = 0; yes[i]; i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *out = true;
      return AS_OK;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *out = false;
      return AS_OK;
    }
  }
  return AS_EINVAL;
}

static int parse_i64(const char *s, int64_t *out, const char **end) {
  if (!*s || !(isdigit((unsigned char)*s) || *s == '-')) return AS_EINVAL;
  char *e = NULL;
  errno = 0;
  long long v = strtoll(s, &e, 10);
  if (errno || e == s) return AS_EINVAL;
  *out = (int64_t)v;
  *end = e;
  return AS_OK;
}

int as_cfgmap_parse_size(const char *s, int64_t *out) {
  int64_t v;
  const char *unit;
  if (parse_i64(s, &v, &unit) != AS_OK || v < 0) return AS_EINVAL;
  static const struct {
    const char *u;
    int shift;
  } units[] = {{"", 0},   {"b", 0},   {"k", 10},  {"kb", 10}, {"kib", 10}, {"m", 20},
               {"mb", 20}, {"mib", 20}, {"g", 30}, {"gb", 30}, {"gib", 30}, {"t", 40},
               {"tb", 40}, {"tib", 40}};
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcasecmp(unit, units[i].u) != 0) continue;
    if (v > (INT64_MAX >> units[i].shift)) return AS_EINVAL;
    *out = v << units[i].shift;
    return AS_OK;
  }
  return AS_EINVAL;
}

static int check_bounds(const as_config_entry *e, const char *owner, const as_mark *m,
                        const char *value, int64_t v, const char *what, as_error *err) {
  if (!(e->min || e->max) || (v >= e->min && v <= e->max)) return AS_OK;
  char lo[40], hi[40];
  bound_text(e, e->min, lo, sizeof lo);
  bound_text(e, e->max, hi, sizeof hi);
  return as_cfgmap_error(err, m, owner, e->key, "%s \"%s\" is out of range (allowed: %s to %s)",
                         what, value, lo, hi);
}

static int set_string(const as_config_entry *e, const char *owner, const as_mark *m,
                      const char *value, void *out, as_error *err) {
  if (e->type == AS_CFG_PATH && !*value) {
    return as_cfgmap_error(err, m, owner, e->key, "empty path (allowed: a file system path)");
  }
  char *dup = strdup(value);
  if (!dup) return as_error_set(err, AS_DOM_CONFIG, AS_ERR, "out of memory");
  char **slot = field(out, e);
  free(*slot);
  *slot = dup;
  return AS_OK;
}

int as_cfgmap_set(const as_config_entry *e, const char *owner, const as_mark *m,
                  const char *value, void *out, as_error *err) {
  if (!e->stored) return AS_OK;
  int64_t v = 0;
  const char *end = NULL;
  switch (e->type) {
    case AS_CFG_STRING:
    case AS_CFG_SECRET:
    case AS_CFG_PATH:
      return set_string(e, owner, m, value, out, err);
    case AS_CFG_BOOL:
      if (as_cfgmap_parse_bool(value, (bool *)field(out, e)) == AS_OK) return AS_OK;
      return as_cfgmap_error(err, m, owner, e->key, "\"%s\" is not a boolean (allowed: true, "
                             "false, yes, no, on, off)", value);
    case AS_CFG_INT:
      if (parse_i64(value, &v, &end) != AS_OK || *end) {
        return as_cfgmap_error(err, m, owner, e->key, "\"%s\" is not an integer (allowed: "
                               "decimal digits, e.g. %s)", value,
                               e->default_value ? e->default_value : "10");
      }
      break;
    case AS_CFG_DURATION:
      if (as_parse_duration_ms(value, &v) != AS_OK) {
        return as_cfgmap_error(err, m, owner, e->key, "\"%s\" is not a duration (allowed: "
                               "250ms, 30s, 5m, 1h, 2d; a plain number is seconds)", value);
      }
      break;
    case AS_CFG_SIZE:
      if (as_cfgmap_parse_size(value, &v) != AS_OK) {
        return as_cfgmap_error(err, m, owner, e->key, "\"%s\" is not a size (allowed: bytes, "
                               "or a number with k, M, G or T, e.g. 64k, 16MiB)", value);
      }
      break;
    case AS_CFG_ENUM:
      for (int i = 0; e->allowed && e->allowed[i]; i++) {
        if (strcmp(value, e->allowed[i]) == 0) {
          *(int *)field(out, e) = i;
          return AS_OK;
        }
      }
      {
        char list[512];
        allowed_list(e, ", ", list, sizeof list);
        return as_cfgmap_error(err, m, owner, e->key, "unknown value \"%s\" (allowed: %s)",
                               value, list);
      }
    case AS_CFG_MAP:
    case AS_CFG_LIST:
      return AS_OK;
  }
  const char *what = e->type == AS_CFG_INT ? "integer" : as_cfgmap_type_name(e->type);
  int rc = check_bounds(e, owner, m, value, v, what, err);
  if (rc == AS_OK) *(int64_t *)field(out, e) = v;
  return rc;
}

static int apply_default(const as_config_entry *e, const char *owner, const as_mark *owner_mark,
                         void *out, as_error *err) {
  if (e->required) {
    return as_cfgmap_error(err, owner_mark, owner, e->key, "missing; it is required (%s)",
                           e->description ? e->description : "no default");
  }
  if (!e->default_value || !e->stored) return AS_OK;
  int rc = as_cfgmap_set(e, owner, NULL, e->default_value, out, err);
  if (rc != AS_OK) as_error_prefix(err, "the default of %s is wrong", e->key);
  return rc;
}

static void key_list(const as_config_entry *map, const char *section, char *buf, size_t cap) {
  size_t off = 0, sl = section ? strlen(section) : 0;
  buf[0] = '\0';
  for (const as_config_entry *e = map; e->key && off < cap; e++) {
    const char *k = e->key;
    if (section) {
      if (strncmp(k, section, sl) != 0 || k[sl] != '.') continue;
      k += sl + 1;
    }
    size_t kl = strcspn(k, ".");
    /* each first component once */
    bool seen = false;
    for (const as_config_entry *p = map; p < e; p++) {
      const char *pk = p->key;
      if (section) {
        if (strncmp(pk, section, sl) != 0 || pk[sl] != '.') continue;
        pk += sl + 1;
      }
      if (strncmp(pk, k, kl) == 0 && strcspn(pk, ".") == kl) seen = true;
    }
    if (seen) continue;
    int w = snprintf(buf + off, cap - off, "%s%.*s", off ? ", " : "", (int)kl, k);
    if (w < 0) break;
    off += (size_t)w;
  }
}

int as_cfgmap_parse(const as_config_entry *map, const char *owner, const as_mark *owner_mark,
                    const as_node_option *opts, size_t nopts, void *out, as_error *err) {
  for (size_t i = 0; i < nopts; i++) {
    const as_config_entry *e = map;
    while (e->key && strcmp(e->key, opts[i].key) != 0) e++;
    if (!e->key) {
      char list[AS_ERROR_MSG_MAX / 2];
      key_list(map, NULL, list, sizeof list);
      return as_cfgmap_error(err, &opts[i].mark, owner, opts[i].key, "unknown key (allowed: %s)",
                             list);
    }
  }
  for (const as_config_entry *e = map; e->key; e++) {
    const as_node_option *o = NULL;
    for (size_t i = 0; i < nopts; i++) {
      if (strcmp(opts[i].key, e->key) == 0) o = &opts[i]; /* the last one wins */
    }
    int rc = o && o->value && (o->value[0] || !e->required)
                 ? as_cfgmap_set(e, owner, &o->mark, o->value, out, err)
                 : apply_default(e, owner, o ? &o->mark : owner_mark, out, err);
    if (rc != AS_OK) return rc;
  }
  return AS_OK;
}

/* The node at a dotted path, checking each section on the way is a map of known keys. */
static int find_yaml(const as_config_entry *map, const char *what, const as_ynode *root,
                     const char *key, const as_ynode **out, as_error *err) {
  (void)what;
  *out = NULL;
  const as_ynode *cur = root;
  const char *k = key;
  char section[256] = "";
  for (;;) {
    size_t kl = strcspn(k, ".");
    char part[128];
    snprintf(part, sizeof part, "%.*s", (int)kl, k);
    const as_ynode *next = as_ynode_get(cur, part);
    if (!next || as_ynode_is_null(next)) return AS_OK;
    if (!k[kl]) {
      *out = next;
      return AS_OK;
    }
    size_t sl = strlen(section);
    snprintf(section + sl, sizeof section - sl, "%s%s", sl ? "." : "", part);
    if (next->kind != AS_Y_MAP) {
      return as_yaml_error(err, &next->mark, "%s must be a map, not %s", section,
                           as_ynode_kind_name(next));
    }
    for (size_t i = 0; i < next->n; i++) {
      char full[384];
      snprintf(full, sizeof full, "%s.%s", section, next->keys[i]);
      const as_config_entry *e = map;
      size_t fl = strlen(full);
      while (e->key && !(strncmp(e->key, full, fl) == 0 && (!e->key[fl] || e->key[fl] == '.')))
        e++;
      if (!e->key) {
        char list[AS_ERROR_MSG_MAX / 2];
        key_list(map, section, list, sizeof list);
        return as_yaml_error(err, &next->key_marks[i], "unknown key \"%s\" in %s (allowed: %s)",
                             next->keys[i], section, list);
      }
    }
    cur = next;
    k += kl + 1;
  }
}

int as_cfgmap_parse_yaml(const as_config_entry *map, const char *what, const as_ynode *root,
                         void *out, as_error *err) {
  if (root && root->kind == AS_Y_MAP) {
    for (size_t i = 0; i < root->n; i++) {
      const as_config_entry *e = map;
      size_t kl = strlen(root->keys[i]);
      while (e->key && !(strncmp(e->key, root->keys[i], kl) == 0 &&
                         (!e->key[kl] || e->key[kl] == '.')))
        e++;
      if (!e->key) {
        char list[AS_ERROR_MSG_MAX / 2];
        key_list(map, NULL, list, sizeof list);
        return as_yaml_error(err, &root->key_marks[i], "unknown key \"%s\" in %s (allowed: %s)",
                             root->keys[i], what, list);
      }
    }
  }
  as_mark top = root ? root->mark : (as_mark){0};
  for (const as_config_entry *e = map; e->key; e++) {
    /* maps, lists and AS_DOC entries are the owner's to parse (and to require) */
    if (e->type == AS_CFG_MAP || e->type == AS_CFG_LIST || !e->stored) continue;
    const as_ynode *v = NULL;
    int rc = find_yaml(map, what, root, e->key, &v, err);
    if (rc != AS_OK) return rc;
    if (v && v->kind != AS_Y_SCALAR) {
      return as_cfgmap_error(err, &v->mark, NULL, e->key, "must be a value, not %s (allowed: "
                             "%s)", as_ynode_kind_name(v), as_cfgmap_type_name(e->type));
    }
    rc = v ? as_cfgmap_set(e, NULL, &v->mark, v->scalar, out, err)
           : apply_default(e, NULL, &top, out, err);
    if (rc != AS_OK) return rc;
  }
  return AS_OK;
}

size_t as_cfgmap_struct_size(const as_config_entry *map) {
  size_t n = 0;
  for (const as_config_entry *e = map; e && e->key; e++) {
    if (!e->stored) continue;
    size_t sz = e->type == AS_CFG_BOOL   ? sizeof(bool)
                : e->type == AS_CFG_ENUM ? sizeof(int)
                : e->type == AS_CFG_INT || e->type == AS_CFG_DURATION || e->type == AS_CFG_SIZE
                    ? sizeof(int64_t)
                    : sizeof(char *);
    if (e->offset + sz > n) n = e->offset + sz;
  }
  return n;
}

void as_cfgmap_free(const as_config_entry *map, void *opts) {
  if (!map || !opts) return;
  for (const as_config_entry *e = map; e->key; e++) {
    if (!e->stored) continue;
    if (e->type == AS_CFG_STRING || e->type == AS_CFG_SECRET || e->type == AS_CFG_PATH) {
      char **slot = field(opts, e);
      free(*slot);
      *slot = NULL;
    }
  }
}

/* Writes text wrapped at ~96 columns, each line indented. */
static void wrap(FILE *out, int indent, const char *text) {
  const int width = 96;
  const char *p = text;
  while (*p) {
    int avail = width - indent;
    size_t len = strlen(p);
    size_t take = len;
    if ((int)len > avail) {
      take = (size_t)avail;
      while (take > 0 && p[take] != ' ') take--;
      if (take == 0) take = (size_t)avail;
    }
    fprintf(out, "%*s%.*s\n", indent, "", (int)take, p);
    p += take;
    while (*p == ' ') p++;
  }
}

void as_cfgmap_print(const as_config_entry *map, FILE *out, int indent, const char *prefix) {
  for (const as_config_entry *e = map; e->key; e++) {
    char type[600];
    as_cfgmap_type_text(e, type, sizeof type);
    fprintf(out, "%*s%s%s (%s%s)\n", indent, "", prefix ? prefix : "", e->key, type,
            e->required ? ", required" : "");
    if (e->description) wrap(out, indent + 4, e->description);
    if (e->default_value) {
      fprintf(out, "%*sdefault: %s\n", indent + 4, "",
              e->default_value[0] ? e->default_value : "\"\"");
    }
    if (e->example) {
      /* nested keys as YAML flow maps: "batch.max_rows" -> batch: { max_rows: 5000 } */
      fprintf(out, "%*sexample: ", indent + 4, "");
      int depth = 0;
      for (const char *k = e->key;; depth++) {
        size_t kl = strcspn(k, ".");
        fprintf(out, "%.*s: ", (int)kl, k);
        if (!k[kl]) break;
        fputs("{ ", out);
        k += kl + 1;
      }
      fputs(e->example, out);
      for (int i = 0; i < depth; i++) fputs(" }", out);
      fputc('\n', out);
    }
  }
}
