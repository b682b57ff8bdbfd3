/* as_yaml.c — phase one of configuration: libyaml events -> an as_ynode tree with marks.
 *
 * Choices (see as_yaml.h):
 * - marks are 1-based line:column (columns count characters, as libyaml does);
 * - ${VAR} / ${VAR:-default} are substituted in scalar values (not in keys), whatever the
 *   quoting; `$$` is a literal `$`; `$NAME` without braces is left alone;
 * - a duplicate key in a map is an error naming both places;
 * - anchors/aliases are resolved by copying the anchored node (bounded, so an alias bomb
 *   cannot exhaust memory); an alias to an anchor that is still open (recursion) is an error;
 * - one document per file; an empty file yields root == NULL;
 * - YAML syntax errors become "FILE:L:C: <libyaml problem> (<libyaml context>)" at libyaml's
 *   problem mark, with a hint when the offending character is a tab. */
#include "as_yaml.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "as_buf.h"

#define MAX_DEPTH 64
#define MAX_NODES 1000000

typedef struct anchor {
  char *name;
  as_ynode *node;
} anchor;

typedef struct loader {
  yaml_parser_t parser;
  const char *file;     /* the document's owned copy */
  const char *text;     /* input, for looking at the offending character */
  size_t len;
  anchor *anchors;
  size_t nanchors, capanchors;
  size_t nnodes;
} loader;

/* ---------------------------------------------------------------- nodes */

static void node_free(as_ynode *n) {
  if (!n) return;
  free(n->scalar);
  for (size_t i = 0; i < n->n; i++) {
    if (n->keys) free(n->keys[i]);
    if (n->items) node_free(n->items[i]);
  }
  free(n->keys);
  free(n->key_marks);
  free(n->items);
  free(n);
}

void as_ydoc_free(as_ydoc *d) {
  if (!d) return;
  node_free(d->root);
  free(d->file);
  free(d);
}

static as_mark mark_of(const loader *l, yaml_mark_t m) {
  return (as_mark){.file = l->file, .line = (int)m.line + 1, .col = (int)m.column + 1};
}

static as_ynode *node_new(loader *l, as_ynode_kind kind, yaml_mark_t m) {
  if (++l->nnodes > MAX_NODES) return NULL;
  as_ynode *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  n->kind = kind;
  n->mark = mark_of(l, m);
  return n;
}

/* Appends an item (and a key for maps); takes ownership of key and item on success. */
static int node_push(as_ynode *n, char *key, as_mark km, as_ynode *item) {
  /* capacity: 4, then doubling (grow when n is 0 or a power of two >= 4) */
  if (n->n == 0 || (n->n >= 4 && (n->n & (n->n - 1)) == 0)) {
    size_t cap = n->n ? n->n * 2 : 4;
    as_ynode **items = realloc(n->items, cap * sizeof *items);
    if (!items) return AS_ERR;
    n->items = items;
    if (n->kind == AS_Y_MAP) {
      char **keys = realloc(n->keys, cap * sizeof *keys);
      if (!keys) return AS_ERR;
      n->keys = keys;
      as_mark *marks = realloc(n->key_marks, cap * sizeof *marks);
      if (!marks) return AS_ERR;
      n->key_marks = marks;
    }
  }
  if (n->kind == AS_Y_MAP) {
    n->keys[n->n] = key;
    n->key_marks[n->n] = km;
  }
  n->items[n->n++] = item;
  return AS_OK;
}

static as_ynode *node_copy(loader *l, const as_ynode *src) {
  if (++l->nnodes > MAX_NODES) return NULL;
  as_ynode *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  n->kind = src->kind;
  n->mark = src->mark;
  n->quoted = src->quoted;
  if (src->scalar && !(n->scalar = strdup(src->scalar))) goto fail;
  for (size_t i = 0; i < src->n; i++) {
    char *key = NULL;
    if (src->kind == AS_Y_MAP && !(key = strdup(src->keys[i]))) goto fail;
    as_ynode *item = node_copy(l, src->items[i]);
    if (!item || node_push(n, key, src->kind == AS_Y_MAP ? src->key_marks[i] : n->mark, item)) {
      free(key);
      node_free(item);
      goto fail;
    }
  }
  return n;
fail:
  node_free(n);
  return NULL;
}

/* ---------------------------------------------------------------- errors */

int as_yaml_error(as_error *err, const as_mark *m, const char *fmt, ...) {
  char msg[AS_ERROR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (m && m->file) {
    return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "%s:%d:%d: %s", m->file, m->line, m->col,
                        msg);
  }
  return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "%s", msg);
}

static int syntax_error(loader *l, as_error *err) {
  yaml_parser_t *p = &l->parser;
  if (p->error == YAML_MEMORY_ERROR) {
    return as_error_set(err, AS_DOM_CONFIG, AS_ERR, "%s: out of memory while parsing YAML",
                        l->file);
  }
  as_mark m = mark_of(l, p->problem_mark);
  const char *problem = p->problem ? p->problem : "YAML syntax error";
  const char *hint = "";
  size_t off = p->problem_mark.index;
  if (off < l->len && l->text[off] == '\t') {
    hint = "; a tab cannot be used for indentation in YAML, use spaces";
  } else if (strcmp(problem, "mapping values are not allowed in this context") == 0) {
    hint = "; check the indentation of this line, or quote a value that contains \": \"";
  }
  if (p->context) {
    as_mark cm = mark_of(l, p->context_mark);
    if (cm.line != m.line || cm.col != m.col) {
      return as_yaml_error(err, &m, "%s (%s started at line %d column %d)%s", problem,
                           p->context, cm.line, cm.col, hint);
    }
    return as_yaml_error(err, &m, "%s (%s)%s", problem, p->context, hint);
  }
  return as_yaml_error(err, &m, "%s%s", problem, hint);
}

static int next_event(loader *l, yaml_event_t *ev, as_error *err) {
  if (!yaml_parser_parse(&l->parser, ev)) return syntax_error(l, err);
  return AS_OK;
}

/* ---------------------------------------------------------------- ${ENV} */

static _Thread_local char bad_name[256];

int as_env_expand(const char *in, char **out, const char **bad_var) {
  as_buf b = AS_BUF_INIT;
  int rc = AS_OK;
  *out = NULL;
  if (bad_var) *bad_var = NULL;
  for (const char *p = in; *p;) {
    if (p[0] == '$' && p[1] == '$') {
      if (as_buf_putc(&b, '$')) goto oom;
      p += 2;
      continue;
    }
    if (!(p[0] == '$' && p[1] == '{')) {
      if (as_buf_putc(&b, (uint8_t)*p)) goto oom;
      p++;
      continue;
    }
    const char *name = p + 2;
    const char *q = name;
    while (*q == '_' || isalnum((unsigned char)*q)) q++;
    size_t nlen = (size_t)(q - name);
    const char *def = NULL;
    size_t deflen = 0;
    if (q[0] == ':' && q[1] == '-') {
      def = q + 2;
      const char *e = strchr(def, '}');
      if (!e) {
        q = def + strlen(def);
      } else {
        deflen = (size_t)(e - def);
        q = e;
      }
    }
    if (*q != '}' || nlen == 0 || isdigit((unsigned char)name[0])) {
      /* bad syntax: report the text from "${" (bounded) */
      snprintf(bad_name, sizeof bad_name, "%.*s", (int)(strcspn(p, "}") + (strchr(p, '}') ? 1 : 0)),
               p);
      if (bad_var) *bad_var = bad_name;
      rc = AS_EINVAL;
      goto done;
    }
    char var[256];
    if (nlen >= sizeof var) {
      snprintf(bad_name, sizeof bad_name, "%.*s", (int)nlen, name);
      if (bad_var) *bad_var = bad_name;
      rc = AS_EINVAL;
      goto done;
    }
    memcpy(var, name, nlen);
    var[nlen] = '\0';
    const char *val = getenv(var);
    if (val && *val) {
      if (as_buf_append_str(&b, val)) goto oom;
    } else if (def) {
      if (as_buf_append(&b, def, deflen)) goto oom;
    } else if (val) {
      /* set but empty, no default: the empty string */
    } else {
      snprintf(bad_name, sizeof bad_name, "%s", var);
      if (bad_var) *bad_var = bad_name;
      rc = AS_ENOTFOUND;
      goto done;
    }
    p = q + 1;
  }
  *out = as_buf_steal(&b);
  if (!*out) goto oom;
  return AS_OK;
oom:
  rc = AS_ERR;
done:
  as_buf_free(&b);
  return rc;
}

/* ---------------------------------------------------------------- loading */

static int load_node(loader *l, yaml_event_t *ev, int depth, as_ynode **out, as_error *err);

static int register_anchor(loader *l, const yaml_char_t *name, as_ynode *n) {
  if (!name) return AS_OK;
  for (size_t i = 0; i < l->nanchors; i++) {
    if (strcmp(l->anchors[i].name, (const char *)name) == 0) {
      l->anchors[i].node = n; /* YAML allows redefinition: later definition wins */
      return AS_OK;
    }
  }
  if (l->nanchors == l->capanchors) {
    size_t cap = l->capanchors ? l->capanchors * 2 : 8;
    anchor *a = realloc(l->anchors, cap * sizeof *a);
    if (!a) return AS_ERR;
    l->anchors = a;
    l->capanchors = cap;
  }
  char *copy = strdup((const char *)name);
  if (!copy) return AS_ERR;
  l->anchors[l->nanchors++] = (anchor){.name = copy, .node = n};
  return AS_OK;
}

static int oom(loader *l, as_error *err) {
  return as_error_set(err, AS_DOM_CONFIG, AS_ERR, "%s: out of memory (or more than %d YAML nodes)",
                      l->file, MAX_NODES);
}

static int load_scalar(loader *l, yaml_event_t *ev, as_ynode **out, as_error *err) {
  as_ynode *n = node_new(l, AS_Y_SCALAR, ev->start_mark);
  if (!n) return oom(l, err);
  const char *text = (const char *)ev->data.scalar.value;
  n->quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
              ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
  const char *bad = NULL;
  int rc = as_env_expand(text, &n->scalar, &bad);
  if (rc == AS_ENOTFOUND) {
    rc = as_yaml_error(err, &n->mark,
                       "environment variable %s is not set (write ${%s:-default} to give a "
                       "default)",
                       bad, bad);
  } else if (rc == AS_EINVAL) {
    rc = as_yaml_error(err, &n->mark,
                       "bad environment reference \"%s\" (write ${NAME} or ${NAME:-default}; "
                       "$$ is a literal $)",
                       bad);
  } else if (rc != AS_OK) {
    rc = oom(l, err);
  }
  if (rc != AS_OK) {
    node_free(n);
    return rc;
  }
  *out = n;
  return AS_OK;
}

static int load_seq(loader *l, yaml_event_t *start, int depth, as_ynode **out, as_error *err) {
  as_ynode *n = node_new(l, AS_Y_SEQ, start->start_mark);
  if (!n) return oom(l, err);
  int rc = AS_OK;
  for (;;) {
    yaml_event_t ev;
    if ((rc = next_event(l, &ev, err))) goto fail;
    if (ev.type == YAML_SEQUENCE_END_EVENT) {
      yaml_event_delete(&ev);
      break;
    }
    as_ynode *item = NULL;
    rc = load_node(l, &ev, depth + 1, &item, err);
    yaml_event_delete(&ev);
    if (rc) goto fail;
    if (node_push(n, NULL, n->mark, item)) {
      node_free(item);
      rc = oom(l, err);
      goto fail;
    }
  }
  *out = n;
  return AS_OK;
fail:
  node_free(n);
  return rc;
}

static int load_map(loader *l, yaml_event_t *start, int depth, as_ynode **out, as_error *err) {
  as_ynode *n = node_new(l, AS_Y_MAP, start->start_mark);
  if (!n) return oom(l, err);
  int rc = AS_OK;
  for (;;) {
    yaml_event_t kev;
    if ((rc = next_event(l, &kev, err))) goto fail;
    if (kev.type == YAML_MAPPING_END_EVENT) {
      yaml_event_delete(&kev);
      break;
    }
    as_mark km = mark_of(l, kev.start_mark);
    char *key = NULL;
    if (kev.type == YAML_SCALAR_EVENT) {
      key = strdup((const char *)kev.data.scalar.value);
    } else if (kev.type == YAML_ALIAS_EVENT) {
      const char *an = (const char *)kev.data.alias.anchor;
      for (size_t i = 0; i < l->nanchors; i++) {
        if (strcmp(l->anchors[i].name, an) == 0 && l->anchors[i].node &&
            l->anchors[i].node->kind == AS_Y_SCALAR) {
          key = strdup(l->anchors[i].node->scalar);
          break;
        }
      }
      if (!key) {
        /* the message first: `an` points into the event */
        rc = as_yaml_error(err, &km, "a map key must be a plain value (alias *%s)", an);
        yaml_event_delete(&kev);
        goto fail;
      }
    } else {
      yaml_event_delete(&kev);
      rc = as_yaml_error(err, &km, "a map key must be a plain value, not a map or a list");
      goto fail;
    }
    if (kev.type == YAML_SCALAR_EVENT && kev.data.scalar.anchor) {
      /* anchoring a key is legal but useless here; ignore */
    }
    yaml_event_delete(&kev);
    if (!key) {
      rc = oom(l, err);
      goto fail;
    }
    for (size_t i = 0; i < n->n; i++) {
      if (strcmp(n->keys[i], key) == 0) {
        rc = as_yaml_error(err, &km, "duplicate key \"%s\" (first at line %d column %d)", key,
                           n->key_marks[i].line, n->key_marks[i].col);
        free(key);
        goto fail;
      }
    }
    yaml_event_t vev;
    if ((rc = next_event(l, &vev, err))) {
      free(key);
      goto fail;
    }
    as_ynode *val = NULL;
    rc = load_node(l, &vev, depth + 1, &val, err);
    yaml_event_delete(&vev);
    if (rc) {
      free(key);
      goto fail;
    }
    if (node_push(n, key, km, val)) {
      free(key);
      node_free(val);
      rc = oom(l, err);
      goto fail;
    }
  }
  *out = n;
  return AS_OK;
fail:
  node_free(n);
  return rc;
}

static int load_node(loader *l, yaml_event_t *ev, int depth, as_ynode **out, as_error *err) {
  as_mark m = mark_of(l, ev->start_mark);
  if (depth > MAX_DEPTH) {
    return as_yaml_error(err, &m, "nesting deeper than %d levels", MAX_DEPTH);
  }
  int rc;
  const yaml_char_t *anchor_name = NULL;
  switch (ev->type) {
    case YAML_SCALAR_EVENT:
      anchor_name = ev->data.scalar.anchor;
      rc = load_scalar(l, ev, out, err);
      break;
    case YAML_SEQUENCE_START_EVENT:
      anchor_name = ev->data.sequence_start.anchor;
      /* an anchor is registered only once its node is complete: an alias inside its own
       * anchored node is reported as unknown (no recursive structures) */
      rc = load_seq(l, ev, depth, out, err);
      break;
    case YAML_MAPPING_START_EVENT:
      anchor_name = ev->data.mapping_start.anchor;
      rc = load_map(l, ev, depth, out, err);
      break;
    case YAML_ALIAS_EVENT: {
      const char *an = (const char *)ev->data.alias.anchor;
      const as_ynode *target = NULL;
      for (size_t i = 0; i < l->nanchors; i++) {
        if (strcmp(l->anchors[i].name, an) == 0) target = l->anchors[i].node;
      }
      if (!target) {
        return as_yaml_error(err, &m, "unknown anchor *%s (define &%s before using it)", an, an);
      }
      as_ynode *c = node_copy(l, target);
      if (!c) return oom(l, err);
      c->mark = m;
      *out = c;
      return AS_OK;
    }
    default:
      return as_yaml_error(err, &m, "unexpected YAML event");
  }
  if (rc == AS_OK && anchor_name && register_anchor(l, anchor_name, *out)) {
    node_free(*out);
    *out = NULL;
    return oom(l, err);
  }
  return rc;
}

int as_yaml_load_string(const char *name, const char *text, size_t len, as_ydoc **out,
                        as_error *err) {
  *out = NULL;
  loader l = {0};
  as_ydoc *d = calloc(1, sizeof *d);
  int rc = AS_OK;
  bool parser_ok = false;
  if (!d || !(d->file = strdup(name ? name : "<string>"))) {
    rc = as_error_set(err, AS_DOM_CONFIG, AS_ERR, "out of memory");
    goto cleanup;
  }
  l.file = d->file;
  l.text = text;
  l.len = len;
  if (!yaml_parser_initialize(&l.parser)) {
    rc = as_error_set(err, AS_DOM_CONFIG, AS_ERR, "%s: cannot initialise the YAML parser",
                      d->file);
    goto cleanup;
  }
  parser_ok = true;
  yaml_parser_set_input_string(&l.parser, (const unsigned char *)text, len);

  yaml_event_t ev;
  if ((rc = next_event(&l, &ev, err))) goto cleanup; /* STREAM_START */
  yaml_event_delete(&ev);
  if ((rc = next_event(&l, &ev, err))) goto cleanup;
  if (ev.type == YAML_STREAM_END_EVENT) {
    yaml_event_delete(&ev);
    goto done; /* empty */
  }
  yaml_event_delete(&ev); /* DOCUMENT_START */
  if ((rc = next_event(&l, &ev, err))) goto cleanup;
  rc = load_node(&l, &ev, 0, &d->root, err);
  yaml_event_delete(&ev);
  if (rc) goto cleanup;
  if ((rc = next_event(&l, &ev, err))) goto cleanup; /* DOCUMENT_END */
  yaml_event_delete(&ev);
  if ((rc = next_event(&l, &ev, err))) goto cleanup;
  if (ev.type != YAML_STREAM_END_EVENT) {
    as_mark m = mark_of(&l, ev.start_mark);
    yaml_event_delete(&ev);
    rc = as_yaml_error(err, &m, "only one YAML document is allowed in a file (found a second)");
    goto cleanup;
  }
  yaml_event_delete(&ev);
  /* a plain empty document ("" or "~") counts as empty */
  if (d->root && d->root->kind == AS_Y_SCALAR && !d->root->quoted &&
      (d->root->scalar[0] == '\0' || strcmp(d->root->scalar, "~") == 0 ||
       strcasecmp(d->root->scalar, "null") == 0)) {
    node_free(d->root);
    d->root = NULL;
  }
done:
  *out = d;
  d = NULL;
cleanup:
  if (parser_ok) yaml_parser_delete(&l.parser);
  for (size_t i = 0; i < l.nanchors; i++) free(l.anchors[i].name);
  free(l.anchors);
  as_ydoc_free(d);
  return rc;
}

int as_yaml_load_file(const char *path, as_ydoc **out, as_error *err) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "%s: cannot open: %s", path,
                        strerror(errno));
  }
  as_buf b = AS_BUF_INIT;
  char chunk[8192];
  size_t got;
  int rc = AS_OK;
  while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (as_buf_append(&b, chunk, got)) {
      rc = as_error_set(err, AS_DOM_CONFIG, AS_ERR, "%s: out of memory", path);
      goto cleanup;
    }
  }
  if (ferror(f)) {
    rc = as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "%s: cannot read: %s", path,
                      strerror(errno));
    goto cleanup;
  }
  rc = as_yaml_load_string(path, b.data ? (const char *)b.data : "", b.len, out, err);
cleanup:
  fclose(f);
  as_buf_free(&b);
  return rc;
}

/* ---------------------------------------------------------------- readers */

as_ynode *as_ynode_get(const as_ynode *map, const char *key) {
  if (!map || map->kind != AS_Y_MAP) return NULL;
  for (size_t i = 0; i < map->n; i++) {
    if (strcmp(map->keys[i], key) == 0) return map->items[i];
  }
  return NULL;
}

const as_mark *as_ynode_key_mark(const as_ynode *map, const char *key) {
  if (!map || map->kind != AS_Y_MAP) return NULL;
  for (size_t i = 0; i < map->n; i++) {
    if (strcmp(map->keys[i], key) == 0) return &map->key_marks[i];
  }
  return NULL;
}

bool as_ynode_is_null(const as_ynode *n) {
  return !n || (n->kind == AS_Y_SCALAR && !n->quoted &&
                (n->scalar[0] == '\0' || strcmp(n->scalar, "~") == 0 ||
                 strcasecmp(n->scalar, "null") == 0));
}

const char *as_ynode_kind_name(const as_ynode *n) {
  if (!n) return "nothing";
  switch (n->kind) {
    case AS_Y_MAP: return "a map";
    case AS_Y_SEQ: return "a list";
    default: return "a value";
  }
}

int as_yaml_check_keys(const as_ynode *map, const char *const *allowed, const char *what,
                       as_error *err) {
  if (!map) return AS_OK;
  if (map->kind != AS_Y_MAP) {
    return as_yaml_error(err, &map->mark, "%s must be a map, not %s", what,
                         as_ynode_kind_name(map));
  }
  for (size_t i = 0; i < map->n; i++) {
    bool ok = false;
    for (size_t j = 0; allowed[j]; j++) {
      if (strcmp(map->keys[i], allowed[j]) == 0) ok = true;
    }
    if (ok) continue;
    char list[AS_ERROR_MSG_MAX / 2];
    size_t off = 0;
    list[0] = '\0';
    for (size_t j = 0; allowed[j] && off < sizeof list; j++) {
      int w = snprintf(list + off, sizeof list - off, "%s%s", j ? ", " : "", allowed[j]);
      if (w < 0) break;
      off += (size_t)w;
    }
    /* `{ type: numeric(12,2) }`: YAML reads the comma as the end of an entry */
    bool split = strchr(map->keys[i], ')') && !strchr(map->keys[i], '(');
    return as_yaml_error(err, &map->key_marks[i], "unknown key \"%s\" in %s (allowed: %s)%s",
                         map->keys[i], what, list,
                         split ? "; inside { } a comma ends an entry: a type is written without "
                                 "length or precision (numeric, not numeric(12,2))" : "");
  }
  return AS_OK;
}

static int want_scalar(const as_ynode *n, const char *what, const char *expected,
                       as_error *err) {
  if (!n) return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "%s is missing", what);
  if (n->kind != AS_Y_SCALAR) {
    return as_yaml_error(err, &n->mark, "%s must be %s, not %s", what, expected,
                         as_ynode_kind_name(n));
  }
  return AS_OK;
}

int as_yaml_str(const as_ynode *n, const char *what, char **out, as_error *err) {
  int rc = want_scalar(n, what, "a string", err);
  if (rc) return rc;
  char *s = strdup(n->scalar);
  if (!s) return as_error_set(err, AS_DOM_CONFIG, AS_ERR, "out of memory");
  *out = s;
  return AS_OK;
}

int as_yaml_bool(const as_ynode *n, const char *what, bool *out, as_error *err) {
  int rc = want_scalar(n, what, "true or false", err);
  if (rc) return rc;
  const char *s = n->scalar;
  if (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0) {
    *out = true;
  } else if (strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0) {
    *out = false;
  } else {
    return as_yaml_error(err, &n->mark, "%s must be true or false, not \"%s\"", what, s);
  }
  return AS_OK;
}

int as_yaml_int(const as_ynode *n, const char *what, int64_t min, int64_t max, int64_t *out,
                as_error *err) {
  int rc = want_scalar(n, what, "an integer", err);
  if (rc) return rc;
  const char *s = n->scalar;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  bool ok = *s && !isspace((unsigned char)*s) && end && *end == '\0' && errno == 0;
  if (!ok || v < min || v > max) {
    return as_yaml_error(err, &n->mark,
                         "%s must be an integer from %" PRId64 " to %" PRId64 ", not \"%s\"",
                         what, min, max, s);
  }
  *out = (int64_t)v;
  return AS_OK;
}

int as_parse_duration_ms(const char *s, int64_t *out) {
  if (!s || !isdigit((unsigned char)*s)) return AS_EINVAL;
  int64_t v = 0;
  const char *p = s;
  while (isdigit((unsigned char)*p)) {
    if (v > (INT64_MAX - 9) / 10) return AS_EINVAL;
    v = v * 10 + (*p - '0');
    p++;
  }
  int64_t mult;
  if (*p == '\0' || strcmp(p, "s") == 0) {
    mult = 1000;
  } else if (strcmp(p, "ms") == 0) {
    mult = 1;
  } else if (strcmp(p, "m") == 0) {
    mult = 60 * 1000;
  } else if (strcmp(p, "h") == 0) {
    mult = 3600 * 1000;
  } else if (strcmp(p, "d") == 0) {
    mult = 86400 * 1000;
  } else {
    return AS_EINVAL;
  }
  if (v > INT64_MAX / mult) return AS_EINVAL;
  *out = v * mult;
  return AS_OK;
}

int as_yaml_duration_ms(const as_ynode *n, const char *what, int64_t *out, as_error *err) {
  int rc = want_scalar(n, what, "a duration", err);
  if (rc) return rc;
  if (as_parse_duration_ms(n->scalar, out) != AS_OK) {
    return as_yaml_error(err, &n->mark,
                         "%s must be a duration such as 250ms, 30s, 5m, 1h or 2d, not \"%s\"",
                         what, n->scalar);
  }
  return AS_OK;
}
