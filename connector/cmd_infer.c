/* cmd_infer.c — `arraysync infer` (see cmd_infer.h for the rules). */
#include "cmd_infer.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "as_value.h"

/* ---------------------------------------------------------------- observation */

/* Type classes of sampled values. */
enum {
  C_UTF8, C_BOOL, C_INT32, C_INT64, C_DOUBLE, C_DEC, C_DATE, C_OID, C_BYTES, C_UUID, C_DOC,
  C_ARR, C_OTHER, C__N
};
static const char *const class_names[C__N] = {
    "string", "bool", "int32", "int64", "double", "decimal128", "date", "objectId",
    "binary", "uuid", "document", "array", "other BSON types"};

typedef struct level level;
typedef struct field {
  char *name;
  size_t present, nulls;
  size_t cls[C__N];
  size_t int64_small; /* int64 values within the int32 range */
  size_t arr_docs;    /* non-empty arrays of documents only */
  level *sub;         /* the fields of its document values */
} field;

struct level {
  field *f;
  size_t n, cap;
  size_t ndocs;
  size_t *prefix;     /* indexes into f: the field sequence every document starts with */
  size_t nprefix;
  bool seen;
};

struct as_infer {
  level top;
};

static void level_clear(level *l) {
  if (!l) return;
  for (size_t i = 0; i < l->n; i++) {
    free(l->f[i].name);
    level_clear(l->f[i].sub);
    free(l->f[i].sub);
  }
  free(l->f);
  free(l->prefix);
  memset(l, 0, sizeof *l);
}

as_infer *as_infer_new(void) { return calloc(1, sizeof(as_infer)); }

void as_infer_free(as_infer *in) {
  if (!in) return;
  level_clear(&in->top);
  free(in);
}

size_t as_infer_count(const as_infer *in) { return in ? in->top.ndocs : 0; }

static field *field_get(level *l, const char *name, size_t *idx) {
  for (size_t i = 0; i < l->n; i++) {
    if (strcmp(l->f[i].name, name) == 0) {
      *idx = i;
      return &l->f[i];
    }
  }
  if (l->n == l->cap) {
    size_t nc = l->cap ? l->cap * 2 : 16;
    field *g = realloc(l->f, nc * sizeof *g);
    if (!g) return NULL;
    l->f = g;
    l->cap = nc;
  }
  field *f = &l->f[l->n];
  memset(f, 0, sizeof *f);
  if (!(f->name = strdup(name))) return NULL;
  *idx = l->n++;
  return f;
}

static int classify_value(const bson_iter_t *it, field *f) {
  switch (bson_iter_type(it)) {
    case BSON_TYPE_NULL: f->nulls++; return -1;
    case BSON_TYPE_UTF8: return C_UTF8;
    case BSON_TYPE_BOOL: return C_BOOL;
    case BSON_TYPE_INT32: return C_INT32;
    case BSON_TYPE_INT64: {
      int64_t v = bson_iter_int64(it);
      if (v >= INT32_MIN && v <= INT32_MAX) f->int64_small++;
      return C_INT64;
    }
    case BSON_TYPE_DOUBLE: return C_DOUBLE;
    case BSON_TYPE_DECIMAL128: return C_DEC;
    case BSON_TYPE_DATE_TIME: return C_DATE;
    case BSON_TYPE_OID: return C_OID;
    case BSON_TYPE_BINARY: {
      bson_subtype_t st;
      uint32_t len;
      const uint8_t *data;
      bson_iter_binary(it, &st, &len, &data);
      return st == BSON_SUBTYPE_BINARY ? C_BYTES
             : st == BSON_SUBTYPE_UUID && len == 16 ? C_UUID
                                                    : C_OTHER;
    }
    case BSON_TYPE_DOCUMENT: return C_DOC;
    case BSON_TYPE_ARRAY: {
      bson_iter_t a;
      size_t n = 0, docs = 0;
      if (bson_iter_recurse(it, &a)) {
        while (bson_iter_next(&a)) {
          n++;
          docs += BSON_ITER_HOLDS_DOCUMENT(&a);
        }
      }
      if (n > 0 && docs == n) f->arr_docs++;
      return C_ARR;
    }
    default: return C_OTHER;
  }
}

static int observe(level *l, const bson_t *doc, int depth);

/* Keeps the common prefix of the field sequences seen so far at this level. */
static void update_prefix(level *l, const size_t *seq, size_t n) {
  if (!l->seen) {
    memcpy(l->prefix, seq, n * sizeof *seq);
    l->nprefix = n;
    l->seen = true;
    return;
  }
  size_t k = 0;
  while (k < l->nprefix && k < n && l->prefix[k] == seq[k]) k++;
  l->nprefix = k;
}

static int observe(level *l, const bson_t *doc, int depth) {
  bson_iter_t it;
  size_t nkeys = bson_count_keys(doc);
  size_t *seq = malloc((nkeys ? nkeys : 1) * sizeof *seq);
  if (!seq) return AS_ERR;
  if (!l->seen) {
    free(l->prefix);
    if (!(l->prefix = malloc((nkeys ? nkeys : 1) * sizeof *l->prefix))) {
      free(seq);
      return AS_ERR;
    }
  }
  l->ndocs++;
  size_t k = 0;
  int rc = AS_OK;
  if (bson_iter_init(&it, doc)) {
    while (rc == AS_OK && bson_iter_next(&it) && k < nkeys) {
      size_t idx;
      field *f = field_get(l, bson_iter_key(&it), &idx);
      if (!f) {
        rc = AS_ERR;
        break;
      }
      seq[k++] = idx;
      f->present++;
      int c = classify_value(&it, f);
      if (c >= 0) f->cls[c]++;
      if (c == C_DOC && depth < 8) {
        uint32_t len;
        const uint8_t *data;
        bson_t sub;
        bson_iter_document(&it, &len, &data);
        if (!f->sub && !(f->sub = calloc(1, sizeof *f->sub))) rc = AS_ERR;
        if (rc == AS_OK && bson_init_static(&sub, data, len)) rc = observe(f->sub, &sub, depth + 1);
      }
    }
  }
  if (rc == AS_OK) update_prefix(l, seq, k);
  free(seq);
  return rc;
}

int as_infer_add(as_infer *in, const bson_t *doc) { return observe(&in->top, doc, 1); }

/* ---------------------------------------------------------------- decisions */

typedef struct col {
  char *name;
  char *path;
  const char *type;
  bool required;
  char *comment;
} col;

typedef struct plan {
  col *c;
  size_t n, cap;
  as_buf notes; /* "#   path: reason\n" lines for the catch-all */
  size_t nnotes;
  int max_depth;
} plan;

static int pct(size_t a, size_t b) { return b ? (int)((a * 100 + b / 2) / b) : 0; }

static char *path_join(const char *parent, const char *name) {
  as_buf b = AS_BUF_INIT;
  if (parent) as_buf_printf(&b, "%s.", parent);
  as_buf_append_str(&b, name);
  return as_buf_steal(&b);
}

/* Comments and messages show names as written, without control characters. */
static void put_clean(as_buf *b, const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    as_buf_putc(b, *p < 0x20 || *p == 0x7f ? '?' : *p);
  }
}

static void note(plan *p, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note(plan *p, const char *path, const char *fmt, ...) {
  if (p->nnotes++ >= 200) return;
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  as_buf_append_str(&p->notes, "#   ");
  put_clean(&p->notes, path);
  as_buf_append_str(&p->notes, ": ");
  as_buf_append_str(&p->notes, msg);
  as_buf_putc(&p->notes, '\n');
}

static int add_col(plan *p, const char *path, const char *type, bool required, char *comment) {
  if (p->n == p->cap) {
    size_t nc = p->cap ? p->cap * 2 : 16;
    col *g = realloc(p->c, nc * sizeof *g);
    if (!g) {
      free(comment);
      return AS_ERR;
    }
    p->c = g;
    p->cap = nc;
  }
  p->c[p->n] = (col){.path = strdup(path), .type = type, .required = required,
                     .comment = comment};
  if (!p->c[p->n].path) return AS_ERR;
  p->n++;
  return AS_OK;
}

/* The non-null classes present: a list "int32 12%, double 88%". */
static void mix_text(const field *f, size_t nonnull, char *buf, size_t cap) {
  size_t off = 0;
  buf[0] = '\0';
  for (int c = 0; c < C__N && off < cap; c++) {
    if (!f->cls[c]) continue;
    int w = snprintf(buf + off, cap - off, "%s%s %d%%", off ? ", " : "", class_names[c],
                     pct(f->cls[c], nonnull));
    if (w > 0) off += (size_t)w;
  }
}

/* The column type a field's values all round-trip through, or NULL (why in `why`). */
static const char *scalar_type(const field *f, size_t nonnull, char *why, size_t cap) {
  size_t ints = f->cls[C_INT32] + f->cls[C_INT64];
  static const struct {
    int c;
    const char *type;
  } one[] = {{C_UTF8, "text"},   {C_BOOL, "boolean"},  {C_DOUBLE, "double precision"},
             {C_DEC, "numeric"}, {C_DATE, "timestamptz"}, {C_OID, "objectid"},
             {C_BYTES, "bytea"}, {C_UUID, "uuid"}};
  for (size_t i = 0; i < sizeof one / sizeof one[0]; i++) {
    if (f->cls[one[i].c] == nonnull) return one[i].type;
  }
  if (ints == nonnull && f->int64_small == 0) return "bigint";
  if (ints == nonnull) {
    snprintf(why, cap, "%zu int64 values lie in the int32 range, and a bigint column writes "
             "them back as int32", f->int64_small);
    return NULL;
  }
  if (f->cls[C_OTHER]) {
    snprintf(why, cap, "holds BSON types no column type keeps (%zu values)", f->cls[C_OTHER]);
    return NULL;
  }
  char mix[300];
  mix_text(f, nonnull, mix, sizeof mix);
  snprintf(why, cap, "mixed types (%s): each value keeps its type in the catch-all, where one "
           "column type would change some of them", mix);
  return NULL;
}

static bool mappable_name(const char *n) {
  if (!*n || *n == '$' || strchr(n, '.')) return false;
  for (const unsigned char *p = (const unsigned char *)n; *p; p++) {
    if (*p < 0x20 || *p == 0x7f) return false;
  }
  return true;
}

static int plan_level(plan *p, const level *l, const char *parent, int depth, bool *any);

static char *comment_for(const field *f, size_t ndocs, const char *extra) {
  as_buf b = AS_BUF_INIT;
  as_buf_printf(&b, "in all %zu documents", ndocs);
  if (f->nulls) as_buf_printf(&b, ", null in %d%%", pct(f->nulls, ndocs));
  if (extra) as_buf_printf(&b, "; %s", extra);
  return as_buf_steal(&b);
}

/* One field of the common prefix: columns, or false in *ok with a note (the caller stops). */
static int plan_field(plan *p, const level *l, const field *f, const char *parent, int depth,
                      bool *ok) {
  char *path = path_join(parent, f->name);
  size_t nonnull = f->present - f->nulls;
  char why[400] = "";
  int rc = AS_OK;
  *ok = true;
  if (!path) return AS_ERR;
  if (!mappable_name(f->name)) {
    note(p, path, "the name has '.', a leading '$' or control characters (not a path)");
    *ok = false;
  } else if (nonnull == 0) {
    note(p, path, "always null: no type to infer");
    *ok = false;
  } else if (f->cls[C_DOC] == nonnull && f->nulls == 0 && depth < p->max_depth && f->sub) {
    bool any = false;
    size_t before = p->n;
    rc = plan_level(p, f->sub, path, depth + 1, &any);
    if (rc == AS_OK && p->n == before) {
      rc = add_col(p, path, "jsonb", true,
                   comment_for(f, l->ndocs, "a document whose fields vary: one jsonb column"));
    }
  } else if (f->cls[C_DOC] + f->cls[C_ARR] == nonnull) {
    char extra[300];
    if (f->arr_docs) {
      snprintf(extra, sizeof extra, "arrays of subdocuments in %d%%: one jsonb column (child "
               "tables are not synced yet)", pct(f->arr_docs, l->ndocs));
    } else {
      snprintf(extra, sizeof extra, "%s", f->cls[C_DOC] && f->cls[C_ARR] ? "documents and arrays"
                                          : f->cls[C_ARR] ? "arrays"
                                                          : "documents nested deeper than the "
                                                            "column depth");
    }
    rc = add_col(p, path, "jsonb", f->nulls == 0, comment_for(f, l->ndocs, extra));
  } else {
    const char *t = scalar_type(f, nonnull, why, sizeof why);
    if (t) {
      char extra[200] = "";
      if (strcmp(t, "bigint") == 0 && f->cls[C_INT64]) {
        snprintf(extra, sizeof extra, "int32 or int64 by size, as drivers write integers");
      }
      rc = add_col(p, path, t, f->nulls == 0, comment_for(f, l->ndocs, extra[0] ? extra : NULL));
    } else {
      note(p, path, "%s", why);
      *ok = false;
    }
  }
  free(path);
  return rc;
}

static int plan_level(plan *p, const level *l, const char *parent, int depth, bool *any) {
  bool stopped = false;
  char *stop_at = NULL;
  int rc = AS_OK;
  bool *in_prefix = calloc(l->n ? l->n : 1, sizeof *in_prefix);
  if (!in_prefix) return AS_ERR;
  for (size_t i = 0; rc == AS_OK && i < l->nprefix; i++) {
    const field *f = &l->f[l->prefix[i]];
    in_prefix[l->prefix[i]] = true;
    if (stopped) {
      char *path = path_join(parent, f->name);
      if (path) note(p, path, "follows %s, which the catch-all holds (a column would move it "
                     "ahead of it)", stop_at);
      free(path);
      continue;
    }
    bool ok;
    rc = plan_field(p, l, f, parent, depth, &ok);
    if (rc == AS_OK && ok) *any = true;
    if (rc == AS_OK && !ok) {
      stopped = true;
      stop_at = path_join(parent, f->name);
    }
  }
  for (size_t i = 0; rc == AS_OK && i < l->n; i++) {
    if (in_prefix[i]) continue;
    const field *f = &l->f[i];
    char *path = path_join(parent, f->name);
    if (!path) {
      rc = AS_ERR;
      break;
    }
    if (f->present < l->ndocs) {
      note(p, path, "in %d%% of the documents (a column would write null where it is absent)",
           pct(f->present, l->ndocs));
    } else {
      note(p, path, "in every document, but not always at the same place among its fields");
    }
    free(path);
  }
  free(stop_at);
  free(in_prefix);
  return rc;
}

static void plan_free(plan *p) {
  for (size_t i = 0; i < p->n; i++) {
    free(p->c[i].name);
    free(p->c[i].path);
    free(p->c[i].comment);
  }
  free(p->c);
  as_buf_free(&p->notes);
}

/* ---------------------------------------------------------------- names and YAML */

char *as_infer_column_name(const char *path) {
  as_buf b = AS_BUF_INIT;
  if (strcmp(path, "_id") == 0) return strdup("id");
  bool sep = false;
  const unsigned char *prev = NULL;
  for (const unsigned char *s = (const unsigned char *)path; *s; prev = s, s++) {
    unsigned char c = *s;
    bool alnum = c < 0x80 && isalnum(c);
    if (!alnum) {
      sep = b.len > 0;
      continue;
    }
    /* camelCase -> camel_case */
    if (isupper(c) && prev && *prev < 0x80 && (islower(*prev) || isdigit(*prev))) sep = b.len > 0;
    if (sep) as_buf_putc(&b, '_');
    sep = false;
    as_buf_putc(&b, (uint8_t)tolower(c));
  }
  char *s = as_buf_steal(&b);
  if (!s || !*s) {
    free(s);
    return strdup("field");
  }
  if (isdigit((unsigned char)s[0])) {
    char *t = malloc(strlen(s) + 3);
    if (t) sprintf(t, "f_%s", s);
    free(s);
    s = t;
  }
  if (s && strlen(s) > 55) s[55] = '\0';
  return s;
}

static bool name_taken(const plan *p, size_t upto, const char *name) {
  for (size_t i = 0; i < upto; i++) {
    if (p->c[i].name && strcmp(p->c[i].name, name) == 0) return true;
  }
  return false;
}

/* Unique column names: base, base_2, base_3, ... ("extra" is kept for the catch-all). */
static int name_columns(plan *p) {
  for (size_t i = 0; i < p->n; i++) {
    char *base = as_infer_column_name(p->c[i].path);
    if (!base) return AS_ERR;
    char buf[80];
    snprintf(buf, sizeof buf, "%s", base);
    for (int k = 2; name_taken(p, i, buf) || strcmp(buf, "extra") == 0; k++) {
      snprintf(buf, sizeof buf, "%s_%d", base, k);
    }
    free(base);
    if (!(p->c[i].name = strdup(buf))) return AS_ERR;
  }
  return AS_OK;
}

/* A YAML double-quoted scalar; '$' doubled (the loader expands ${VAR}). */
static void put_quoted(as_buf *b, const char *s) {
  as_buf_putc(b, '"');
  for (const char *p = s; *p; p++) {
    if (*p == '"' || *p == '\\') as_buf_putc(b, '\\');
    if (*p == '$') as_buf_putc(b, '$');
    as_buf_putc(b, (uint8_t)*p);
  }
  as_buf_putc(b, '"');
}

static void put_header(as_buf *b, const as_infer_opts *o, const char *name, const char *what) {
  as_buf_printf(b, "# %s: written by `arraysync infer` from %s", name, what);
  if (o->source) {
    as_buf_append_str(b, " (");
    put_clean(b, o->source);
    as_buf_putc(b, ')');
  }
  as_buf_append_str(b, ".\n# Review it before use: types, names and `required` follow the sample "
                       "only.\n");
  as_buf_printf(b, "mapping: %s\ncollection: ", name);
  put_quoted(b, o->collection);
  as_buf_printf(b, "\ntable: %s\n", name);
}

static void put_column(as_buf *b, const char *name, const char *field, const char *type,
                       bool required, const char *comment) {
  as_buf_printf(b, "  %s: { field: ", name);
  put_quoted(b, field);
  as_buf_printf(b, ", type: %s%s }", type, required ? ", required: true" : "");
  if (comment) {
    as_buf_append_str(b, "   # ");
    put_clean(b, comment);
  }
  as_buf_putc(b, '\n');
}

int as_infer_mapping(const as_infer *in, const as_infer_opts *o, as_buf *out, as_error *err) {
  plan p = {.max_depth = o->max_depth > 0 ? o->max_depth : 3};
  const level *top = &in->top;
  char *name = as_infer_column_name(o->name ? o->name : o->collection);
  int rc = AS_OK;
  if (!name) return as_error_set(err, AS_DOM_CONFIG, AS_ERR, "out of memory");
  if (top->ndocs == 0) {
    rc = as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "collection %s: no documents to infer a "
                      "mapping from", o->collection);
    goto cleanup;
  }
  if (top->nprefix == 0 || strcmp(top->f[top->prefix[0]].name, "_id") != 0) {
    rc = as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "collection %s: _id is not the first field "
                      "of every document: no key to infer", o->collection);
    goto cleanup;
  }
  bool any = false;
  if ((rc = plan_level(&p, top, NULL, 1, &any)) != AS_OK) goto oom;
  if (p.n == 0 || strcmp(p.c[0].path, "_id") != 0 || strcmp(p.c[0].type, "jsonb") == 0) {
    rc = as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "collection %s: _id cannot be a key column: "
                      "%s", o->collection, as_buf_cstr(&p.notes) ? as_buf_cstr(&p.notes) + 4 : "");
    goto cleanup;
  }
  if ((rc = name_columns(&p)) != AS_OK) goto oom;
  char what[100];
  snprintf(what, sizeof what, "%zu sampled documents", top->ndocs);
  put_header(out, o, name, what);
  as_buf_printf(out, "direction: both\nkey: %s\ncolumns:\n", p.c[0].name);
  for (size_t i = 0; i < p.n; i++) {
    put_column(out, p.c[i].name, p.c[i].path, p.c[i].type, p.c[i].required, p.c[i].comment);
  }
  as_buf_append_str(out, "  # every field no column maps, with its type, nested where it was:\n");
  put_column(out, "extra", "*", "jsonb", false, NULL);
  if (p.nnotes) {
    as_buf_printf(out, "# in the catch-all (%zu field%s):\n", p.nnotes, p.nnotes == 1 ? "" : "s");
    as_buf_append(out, p.notes.data, p.notes.len);
    if (p.nnotes > 200) as_buf_printf(out, "#   ... and %zu more\n", p.nnotes - 200);
  }
  as_buf_append_str(out, "conflict:\n  strategy: lww\non_error: dead-letter\n");
  goto cleanup;
oom:
  rc = as_error_set(err, AS_DOM_CONFIG, AS_ERR, "out of memory");
cleanup:
  plan_free(&p);
  free(name);
  return rc;
}

/* ---------------------------------------------------------------- from a table */

static const char *type_text(as_type t) {
  switch (t) {
    case AS_T_BOOL: return "boolean";
    case AS_T_INT64: return "bigint";
    case AS_T_DOUBLE: return "double precision";
    case AS_T_DECIMAL: return "numeric";
    case AS_T_BYTES: return "bytea";
    case AS_T_UUID: return "uuid";
    case AS_T_OBJECTID: return "objectid";
    case AS_T_TIMESTAMP: return "timestamptz";
    case AS_T_DATE: return "date";
    case AS_T_JSON: return "jsonb";
    default: return "text";
  }
}

/* The mapping type of a SQL type as PostgreSQL's format_type or SQLite's declaration names
 * it (modifiers stripped), else NULL. */
static const char *sql_to_type(const char *sql, bool affinity, bool *affinity_guess) {
  static const struct {
    const char *sql, *type;
  } names[] = {{"character varying", "text"}, {"character", "text"}, {"varchar", "text"},
               {"nvarchar", "text"}, {"citext", "text"}, {"clob", "text"},
               {"timestamp with time zone", "timestamptz"},
               {"timestamp without time zone", "timestamptz"}, {"timestamp", "timestamptz"},
               {"datetime", "timestamptz"}, {"double precision", "double precision"},
               {"json", "jsonb"}, {"jsonb", "jsonb"}};
  char base[128];
  snprintf(base, sizeof base, "%s", sql);
  char *paren = strchr(base, '(');
  if (paren) {
    /* "timestamp(3) with time zone": drop the modifier, keep the rest */
    char *close = strchr(paren, ')');
    memmove(paren, close ? close + 1 : paren + strlen(paren),
            strlen(close ? close + 1 : paren + strlen(paren)) + 1);
  }
  size_t l = strlen(base);
  while (l && base[l - 1] == ' ') base[--l] = '\0';
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (strcasecmp(base, names[i].sql) == 0) return names[i].type;
  }
  as_type t;
  if (as_type_parse(base, &t)) return type_text(t);
  /* SQLite's affinity rules for anything else */
  if (!affinity) return NULL;
  *affinity_guess = true;
  char up[128];
  for (l = 0; base[l] && l + 1 < sizeof up; l++) up[l] = (char)toupper((unsigned char)base[l]);
  up[l] = '\0';
  if (strstr(up, "INT")) return "bigint";
  if (strstr(up, "CHAR") || strstr(up, "CLOB") || strstr(up, "TEXT")) return "text";
  if (!up[0] || strstr(up, "BLOB")) return "bytea";
  if (strstr(up, "REAL") || strstr(up, "FLOA") || strstr(up, "DOUB")) return "double precision";
  return NULL;
}

int as_infer_table(const as_table_desc *d, const as_infer_opts *o, as_buf *out, as_error *err) {
  size_t nkey = 0;
  for (size_t i = 0; i < d->ncols; i++) nkey += d->cols[i].key_pos > 0;
  if (nkey == 0) {
    return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "table %s has no primary key: add one "
                        "(the mapping's key must be unique)", d->table);
  }
  as_infer_opts oo = *o;
  if (!oo.collection) oo.collection = d->table;
  const char *name = o->name ? o->name : d->table;
  put_header(out, &oo, name, "the table's columns");
  as_buf_append_str(out, "direction: both\nkey: ");
  if (nkey > 1) as_buf_putc(out, '[');
  for (int k = 1; k <= (int)nkey; k++) {
    for (size_t i = 0; i < d->ncols; i++) {
      if (d->cols[i].key_pos == k) as_buf_printf(out, "%s%s", k > 1 ? ", " : "", d->cols[i].name);
    }
  }
  as_buf_append_str(out, nkey > 1 ? "]\ncolumns:\n" : "\ncolumns:\n");
  for (size_t i = 0; i < d->ncols; i++) {
    const as_table_column *c = &d->cols[i];
    bool guess = false;
    const char *t = sql_to_type(c->sql_type, d->affinity, &guess);
    char comment[300];
    snprintf(comment, sizeof comment, "%s%s%s%s", c->sql_type[0] ? c->sql_type : "untyped",
             c->not_null ? " not null" : "", c->key_pos ? ", primary key" : "",
             !t ? ": no mapping type holds it; text is a guess, check it"
             : guess ? ": type by SQLite's affinity rules" : "");
    const char *field = nkey == 1 && c->key_pos == 1 ? "_id" : c->name;
    put_column(out, c->name, field, t ? t : "text", c->not_null && !c->key_pos, comment);
  }
  as_buf_append_str(out, "# no catch-all: fields no column maps are not copied to this table "
                         "(add a jsonb column with field \"*\" to keep them)\n");
  as_buf_append_str(out, "conflict:\n  strategy: lww\non_error: dead-letter\n");
  return AS_OK;
}

/* ---------------------------------------------------------------- the command */

static int sample_cb(void *ctx, const bson_t *doc) { return as_infer_add(ctx, doc); }

static int write_out(const as_cmd_infer_opts *o, const as_buf *b, FILE *out, as_error *err) {
  if (!o->output) {
    fwrite(b->data, 1, b->len, out);
    return AS_OK;
  }
  FILE *f = fopen(o->output, "w");
  if (!f || fwrite(b->data, 1, b->len, f) != b->len) {
    if (f) fclose(f);
    return as_error_set(err, AS_DOM_IO, AS_ERR, "cannot write %s", o->output);
  }
  if (fclose(f) != 0) return as_error_set(err, AS_DOM_IO, AS_ERR, "cannot write %s", o->output);
  return AS_OK;
}

int as_cmd_infer(const as_config *cfg, const as_cmd_infer_opts *o, FILE *out, as_error *err) {
  const as_node_config *nc = as_config_node(cfg, o->node);
  if (!o->node || !nc) {
    return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "infer needs --node NAME, a node of %s",
                        cfg->file);
  }
  if (!o->collection == !o->table) {
    return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "infer needs either --collection NAME (a "
                        "document store) or --table NAME (a SQL node)");
  }
  const as_adapter *a = as_adapter_find(nc->kind);
  if ((o->collection && !a->sample) || (o->table && !a->describe)) {
    return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "node %s (%s) %s", nc->name, nc->kind,
                        o->collection ? "holds tables, not collections: use --table"
                                      : "holds collections, not tables: use --collection");
  }
  as_node *n = NULL;
  as_infer *in = NULL;
  as_table_desc d = {0};
  as_buf b = AS_BUF_INIT;
  char source[300];
  int rc = a->init(nc, NULL, 0, &n, err);
  if (rc != AS_OK) goto cleanup;
  if (o->collection) {
    snprintf(source, sizeof source, "node %s, collection %s, %s %zu", nc->name, o->collection,
             o->first ? "the first" : "a random sample of", o->sample ? o->sample : 1000);
    if (!(in = as_infer_new())) {
      rc = as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
      goto cleanup;
    }
    rc = a->sample(n, o->collection, o->sample ? o->sample : 1000, !o->first, sample_cb, in, err);
    as_infer_opts io = {.collection = o->collection, .source = source};
    if (rc == AS_OK) rc = as_infer_mapping(in, &io, &b, err);
  } else {
    snprintf(source, sizeof source, "node %s, table %s", nc->name, o->table);
    rc = a->describe(n, o->table, &d, err);
    as_infer_opts io = {.source = source};
    if (rc == AS_OK) rc = as_infer_table(&d, &io, &b, err);
  }
  if (rc == AS_OK) rc = write_out(o, &b, out, err);
  if (rc == AS_OK && o->output) {
    fprintf(stderr, "infer: wrote %s (%s)\n", o->output, source);
  }
cleanup:
  if (n) a->exit(n);
  as_infer_free(in);
  as_table_desc_free(&d);
  as_buf_free(&b);
  return rc;
}
