/* cmd_conflicts.c — `arraysync conflicts` (see cmd_conflicts.h):
 *
 *   arraysync conflicts list -c FILE [--mapping M] [--open] [--json]
 *   arraysync conflicts show ID -c FILE [--json]
 *   arraysync conflicts resolve ID -c FILE (--take local|remote|NODE | --row FILE.json)
 *   arraysync conflicts resolve --all -c FILE --take local|remote|NODE [--mapping M]
 *
 * resolve: the chosen row is the version of the side taken (its recorded values over the row
 * its node holds now when the record names only some columns), the row NODE holds now (a
 * node that is neither side), or the row of the file (over the row the written node holds).
 * It is written whole on the chosen side's node — or, when that is a MongoDB node, on the
 * mapping's first SQL node; on a MongoDB node only where no SQL node would pass it on (none, or
 * direction: to-sql) — as an unmarked change, so the connector propagates it like any local
 * change. */
#include "cmd_conflicts.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "adapter.h"
#include "as_config.h"
#include "as_key.h"
#include "as_log.h"
#include "as_router.h"
#include "as_state.h"
#include "as_time.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

typedef struct ccli {
  const char *sub, *config, *mapping, *take, *row_file, *log_level;
  int64_t id;
  bool has_id, open_only, json, all;
} ccli;

/* ------------------------------------------------------------ output */

static void iso_time(int64_t us, char *buf, size_t n) {
  time_t t = (time_t)(us / 1000000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char s[32];
  strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, n, "%s.%06lldZ", s, (long long)(us % 1000000));
}

static json_t *time_json(int64_t us) {
  if (!us) return json_null();
  char b[48];
  iso_time(us, b, sizeof b);
  return json_string(b);
}

/* Recorded JSON text as a JSON value (null when absent; the text itself if it is not JSON). */
static json_t *parsed(const char *text) {
  if (!text) return json_null();
  json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  return j ? j : json_string(text);
}

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

static json_t *side_json(const char *which, const as_conflict_view *v) {
  json_t *o = json_object();
  json_object_set_new(o, "side", json_string(which));
  json_object_set_new(o, "node", str_or_null(v->node));
  json_object_set_new(o, "row", parsed(v->row));
  json_object_set_new(o, "vv", parsed(v->vv));
  json_object_set_new(o, "ts", time_json(v->ts_us));
  return o;
}

static json_t *conflict_json(const as_conflict *c) {
  json_t *o = json_object();
  json_object_set_new(o, "id", json_integer(c->id));
  json_object_set_new(o, "mapping", str_or_null(c->mapping));
  json_object_set_new(o, "key", parsed(c->key));
  json_object_set_new(o, "status", str_or_null(c->status));
  json_object_set_new(o, "strategy", str_or_null(c->strategy));
  json_t *cols = parsed(c->columns);
  json_object_set_new(o, "columns", json_is_array(cols) ? cols : (json_decref(cols), json_array()));
  json_t *versions = json_array();
  json_array_append_new(versions, side_json("local", &c->local));
  json_array_append_new(versions, side_json("remote", &c->remote));
  json_object_set_new(o, "versions", versions);
  json_object_set_new(o, "chosen", str_or_null(c->chosen));
  json_object_set_new(o, "created", time_json(c->created_us));
  json_object_set_new(o, "resolved", time_json(c->resolved_us));
  json_object_set_new(o, "resolved_row", parsed(c->resolved_row));
  return o;
}

static void print_json(json_t *j) {
  char *t = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
  printf("%s\n", t ? t : "null");
  free(t);
}

/* "a,b" from a JSON array text. */
static void columns_text(const char *cols, char *buf, size_t n) {
  json_t *a = parsed(cols);
  size_t i, off = 0;
  json_t *v;
  buf[0] = '\0';
  if (json_is_array(a)) {
    json_array_foreach(a, i, v) {
      int w = snprintf(buf + off, n - off, "%s%s", i ? "," : "", json_string_value(v) ? json_string_value(v) : "?");
      if (w < 0 || (size_t)w >= n - off) break;
      off += (size_t)w;
    }
  }
  json_decref(a);
  if (!buf[0]) snprintf(buf, n, "-");
}

typedef struct list_ctx {
  json_t *arr;
  size_t n;
} list_ctx;

static int list_row(void *vctx, const as_conflict *c) {
  list_ctx *l = vctx;
  l->n++;
  if (l->arr) return json_array_append_new(l->arr, conflict_json(c)) == 0 ? AS_OK : AS_ERR;
  char when[48], cols[256];
  iso_time(c->created_us, when, sizeof when);
  columns_text(c->columns, cols, sizeof cols);
  printf("#%lld %s %-8s mapping=%s key=%s strategy=%s columns=%s local=%s remote=%s chosen=%s\n",
         (long long)c->id, when, c->status ? c->status : "?", c->mapping ? c->mapping : "?",
         c->key ? c->key : "?", c->strategy ? c->strategy : "?", cols,
         c->local.node ? c->local.node : "?", c->remote.node ? c->remote.node : "?",
         c->chosen ? c->chosen : "-");
  return AS_OK;
}

static int open_store(const as_config *cfg, bool readonly, as_state **st, as_error *err) {
  if (access(cfg->state_path, R_OK) != 0) {
    return as_error_set(err, AS_DOM_STATE, AS_ENOTFOUND,
                        "no state store at %s yet: `arraysync run -c %s` has not run",
                        cfg->state_path, cfg->file);
  }
  return as_state_open(cfg->state_path, readonly, st, err);
}

static int cmd_list(const as_config *cfg, const ccli *o, as_error *err) {
  as_state *st = NULL;
  int rc = open_store(cfg, true, &st, err);
  if (rc != AS_OK) return rc;
  list_ctx l = {.arr = o->json ? json_array() : NULL};
  rc = as_state_conflict_each(st, o->mapping, o->open_only, list_row, &l, err);
  if (rc == AS_OK && o->json) {
    print_json(l.arr);
  } else if (rc == AS_OK) {
    printf("%zu conflicts listed (%lld open in all, %lld recorded)\n", l.n,
           (long long)as_state_conflict_count(st, NULL, true),
           (long long)as_state_conflict_count(st, NULL, false));
  }
  json_decref(l.arr);
  as_state_close(st);
  return rc;
}

/* One cell of `show`: the column's value in a side's row. */
static void cell(json_t *row, bool deleted, const char *col, char *buf, size_t n) {
  json_t *v = json_is_object(row) ? json_object_get(row, col) : NULL;
  char *t = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  snprintf(buf, n, "%s", deleted ? "(deleted)" : t ? t : "(not recorded)");
  if (strlen(buf) > 38) snprintf(buf + 35, n - 35, "...");
  free(t);
}

static bool in_array(json_t *a, const char *s) {
  size_t i;
  json_t *v;
  json_array_foreach(a, i, v) if (json_string_value(v) && strcmp(json_string_value(v), s) == 0) return true;
  return false;
}

static void show_columns(const as_schema *s, json_t *lrow, json_t *rrow, json_t *disputed) {
  bool ldel = json_is_null(lrow) && !json_is_object(lrow), rdel = json_is_null(rrow);
  json_t *names = json_array(); /* schema order, then what the records name besides */
  for (size_t i = 0; s && i < s->ncols; i++) json_array_append_new(names, json_string(s->cols[i].name));
  json_t *rows[2] = {lrow, rrow};
  for (int k = 0; k < 2; k++) {
    const char *c;
    json_t *v;
    if (json_is_object(rows[k])) json_object_foreach(rows[k], c, v) if (!in_array(names, c)) json_array_append_new(names, json_string(c));
  }
  size_t i;
  json_t *nm;
  json_array_foreach(names, i, nm) {
    const char *c = json_string_value(nm);
    char a[48], b[48];
    cell(lrow, ldel, c, a, sizeof a);
    cell(rrow, rdel, c, b, sizeof b);
    printf("%s %-20s %-40s %s\n", in_array(disputed, c) ? "*" : " ", c, a, b);
  }
  json_decref(names);
}

static int cmd_show(const as_config *cfg, const ccli *o, as_error *err) {
  as_state *st = NULL;
  as_conflict c;
  int rc = open_store(cfg, true, &st, err);
  if (rc != AS_OK) return rc;
  rc = as_state_conflict_get(st, o->id, &c, err);
  as_state_close(st);
  if (rc != AS_OK) return rc;
  if (o->json) {
    json_t *j = conflict_json(&c);
    print_json(j);
    json_decref(j);
    as_conflict_clear(&c);
    return AS_OK;
  }
  char when[48], lt[48] = "-", rt[48] = "-";
  iso_time(c.created_us, when, sizeof when);
  if (c.local.ts_us) iso_time(c.local.ts_us, lt, sizeof lt);
  if (c.remote.ts_us) iso_time(c.remote.ts_us, rt, sizeof rt);
  printf("conflict %lld [%s]: mapping %s, key %s, strategy %s, recorded %s\n", (long long)c.id,
         c.status ? c.status : "?", c.mapping ? c.mapping : "?", c.key ? c.key : "?",
         c.strategy ? c.strategy : "?", when);
  bool resolved = c.status && strcmp(c.status, "resolved") == 0;
  printf("%s: %s\n", resolved ? "chosen" : "meanwhile the fallback chose", c.chosen ? c.chosen : "-");
  char ln[64], rn[64];
  snprintf(ln, sizeof ln, "local (%s)", c.local.node ? c.local.node : "?");
  snprintf(rn, sizeof rn, "remote (%s)", c.remote.node ? c.remote.node : "?");
  printf("  %-20s %-40s %s\n", "COLUMN", ln, rn);
  printf("  %-20s %-40s %s\n", "(commit time)", lt, rt);
  printf("  %-20s %-40.40s %.40s\n", "(version vector)", c.local.vv ? c.local.vv : "-",
         c.remote.vv ? c.remote.vv : "-");
  json_t *lrow = parsed(c.local.row), *rrow = parsed(c.remote.row), *disputed = parsed(c.columns);
  if (!json_is_array(disputed)) {
    json_decref(disputed);
    disputed = json_array();
  }
  show_columns(as_config_schema(cfg, c.mapping ? c.mapping : ""), c.local.row ? lrow : NULL,
               c.remote.row ? rrow : NULL, disputed);
  printf("(* disputed column)\n");
  if (resolved && c.resolved_row) {
    char rw[48];
    iso_time(c.resolved_us, rw, sizeof rw);
    printf("resolved %s with the row %s\n", rw, c.resolved_row);
  }
  json_decref(lrow);
  json_decref(rrow);
  json_decref(disputed);
  as_conflict_clear(&c);
  return AS_OK;
}

/* ------------------------------------------------------------ resolve */

typedef struct node_conn {
  const as_adapter *ad;
  as_node *node;
} node_conn;

typedef struct resolver {
  const as_config *cfg;
  as_state *st;
  node_conn *nodes; /* by config index, opened on first use */
  json_t *row_file; /* --row: the object */
  const char *row_path;
  int failed, done;
} resolver;

static int node_index(const as_config *cfg, const char *name) {
  for (size_t i = 0; name && i < cfg->nnodes; i++)
    if (strcmp(cfg->nodes[i].name, name) == 0) return (int)i;
  return -1;
}

static int unknown_node(const as_config *cfg, const char *name, as_error *err) {
  char list[512] = "";
  size_t off = 0;
  for (size_t i = 0; i < cfg->nnodes && off < sizeof list; i++)
    off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "", cfg->nodes[i].name);
  return as_error_set(err, AS_DOM_ENGINE, AS_EINVAL, "unknown node '%s' (the configuration has: %s)",
                      name ? name : "(not recorded)", list);
}

static int node_get(resolver *r, int idx, node_conn **out, as_error *err) {
  node_conn *nc = &r->nodes[idx];
  const as_node_config *nc_cfg = &r->cfg->nodes[idx];
  if (!nc->node) {
    const as_adapter *ad = as_adapter_find(nc_cfg->kind);
    if (!ad) return as_error_set(err, AS_DOM_ENGINE, AS_EINVAL, "node %s: no adapter for kind %s", nc_cfg->name, nc_cfg->kind);
    int rc = ad->init(nc_cfg, (const as_schema *const *)r->cfg->schemas, r->cfg->nschemas, &nc->node, err);
    if (rc == AS_OK) rc = ad->connect(nc->node, err);
    if (rc != AS_OK) {
      if (nc->node) ad->exit(nc->node);
      nc->node = NULL;
      as_error_prefix(err, "node %s", nc_cfg->name);
      return rc == AS_RETRY ? AS_ERR : rc;
    }
    nc->ad = ad;
  }
  *out = nc;
  return AS_OK;
}

/* Values of a JSON object (column -> value) into row; key columns must match the key.
 * where: for messages ("the --row file F", "the remote version"). */
static int row_from_json(const as_schema *s, json_t *o, const as_row *keyrow, as_row *row,
                         const char *where, as_error *err) {
  const char *name;
  json_t *v;
  json_object_foreach(o, name, v) {
    size_t i = 0;
    while (i < s->ncols && strcmp(s->cols[i].name, name) != 0) i++;
    if (i == s->ncols)
      return as_error_set(err, AS_DOM_ENGINE, AS_EINVAL, "%s: unknown column '%s' of mapping %s",
                          where, name, s->name);
    as_value val;
    if (as_value_from_json_typed(v, s->cols[i].type, &val, err) != AS_OK) {
      as_error_prefix(err, "%s: column %s", where, name);
      return AS_EINVAL;
    }
    if (s->cols[i].is_key) {
      bool same = as_value_equal(&val, &keyrow->v[i]);
      as_value_clear(&val);
      if (!same)
        return as_error_set(err, AS_DOM_ENGINE, AS_EINVAL, "%s: key column %s differs from the "
                            "conflict's key", where, name);
      continue;
    }
    as_row_put(row, i, &val);
  }
  return AS_OK;
}

/* Columns of `row` not set, from the row `from` holds now. AS_ENOTFOUND when it has none. */
static int overlay_current(resolver *r, const as_schema *s, int from, const as_row *keyrow,
                           as_row *row, as_error *err) {
  bool missing = false;
  for (size_t i = 0; i < s->ncols; i++) missing |= !row->set[i];
  if (!missing) return AS_OK;
  node_conn *nc;
  int rc = node_get(r, from, &nc, err);
  if (rc != AS_OK) return rc;
  as_row cur = {0};
  if (as_row_init(&cur, s->ncols) != AS_OK) return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  rc = nc->ad->read_row(nc->node, s, keyrow, &cur, err);
  for (size_t i = 0; rc == AS_OK && i < s->ncols; i++) {
    if (row->set[i] || !cur.set[i]) continue;
    as_value_move(&row->v[i], &cur.v[i]);
    row->set[i] = 1;
  }
  as_row_clear(&cur);
  if (rc == AS_ENOTFOUND) {
    return as_error_set(err, AS_DOM_ENGINE, AS_ENOTFOUND, "%s holds no row for the key to take the "
                        "columns not recorded from; resolve with --row FILE", r->cfg->nodes[from].name);
  }
  return rc;
}

/* The node to write on: `pref` when it is a SQL node, else the first SQL node; where there is
 * none, or only MongoDB changes travel (direction: to-sql), `pref` or the first MongoDB node
 * (the write is left unmarked there, so its change stream takes it as a local change). */
static int write_node(const resolver *r, const as_schema *s, int pref, as_error *err) {
  const as_config *c = r->cfg;
  bool sql_travels = s->direction != AS_DIR_TO_SQL;
  if (sql_travels && pref >= 0 && as_node_kind_is_sql(c->nodes[pref].kind)) return pref;
  for (size_t i = 0; sql_travels && i < c->nnodes; i++)
    if (as_node_kind_is_sql(c->nodes[i].kind)) return (int)i;
  if (s->direction == AS_DIR_TO_MONGO)
    return as_error_set(err, AS_DOM_ENGINE, AS_EINVAL, "mapping %s is direction: to-mongo and has no "
                        "SQL node: a row written on MongoDB would reach no other node", s->name);
  if (pref >= 0 && !as_node_kind_is_sql(c->nodes[pref].kind)) return pref;
  for (size_t i = 0; i < c->nnodes; i++)
    if (!as_node_kind_is_sql(c->nodes[i].kind)) return (int)i;
  return as_error_set(err, AS_DOM_ENGINE, AS_EINVAL, "mapping %s has no node to write on", s->name);
}

static int write_row(resolver *r, int idx, as_delta *d, as_error *err) {
  node_conn *nc;
  int rc = node_get(r, idx, &nc, err);
  if (rc != AS_OK) return rc;
  as_dead_list dead = {0};
  rc = nc->ad->begin(nc->node, err);
  if (rc == AS_OK) rc = nc->ad->apply(nc->node, d, 1, &dead, err);
  if (rc == AS_OK && dead.n) {
    rc = as_error_set(err, AS_DOM_ENGINE, AS_ERR, "%s refused the row: %s", r->cfg->nodes[idx].name,
                      dead.items[0].missing ? "no row" : dead.items[0].error ? dead.items[0].error : "?");
  }
  if (rc == AS_OK) rc = nc->ad->commit(nc->node, "conflicts-resolve", NULL, err);
  if (rc != AS_OK) nc->ad->rollback(nc->node);
  as_dead_list_clear(&dead);
  if (rc != AS_OK) as_error_prefix(err, "writing the chosen row on %s", r->cfg->nodes[idx].name);
  return rc;
}

/* The chosen row into d (an insert of every column, or a delete); *from: the node whose row
 * it is (-1: the --row file); *label: what was chosen, for the record. */
static int choose(resolver *r, const as_conflict *c, const char *take, const as_schema *s,
                  const as_row *keyrow, as_delta *d, int *from, const char **label, as_error *err) {
  const as_conflict_view *side = NULL;
  if (r->row_file) {
    *from = -1;
    *label = "row";
  } else if (strcmp(take, "local") == 0 || (c->local.node && strcmp(take, c->local.node) == 0)) {
    side = &c->local;
  } else if (strcmp(take, "remote") == 0 || (c->remote.node && strcmp(take, c->remote.node) == 0)) {
    side = &c->remote;
  }
  const char *node = r->row_file ? NULL : side ? side->node : take;
  if (!r->row_file) {
    *from = node_index(r->cfg, node);
    if (*from < 0) return unknown_node(r->cfg, node, err);
    *label = r->cfg->nodes[*from].name;
  }
  json_t *o = NULL;
  if (side && side->row) {
    json_error_t je;
    o = json_loads(side->row, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!o || !(json_is_object(o) || json_is_null(o))) {
      json_decref(o);
      return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "the recorded %s row is not a JSON object",
                          side == &c->local ? "local" : "remote");
    }
    if (json_is_null(o)) { /* that version is a delete */
      json_decref(o);
      d->op = AS_OP_DELETE;
      return AS_OK;
    }
  }
  int rc = AS_OK;
  char where[600];
  snprintf(where, sizeof where, "%s", r->row_file ? r->row_path : side == &c->local ? "the local version" : "the remote version");
  if (o || r->row_file) rc = row_from_json(s, o ? o : r->row_file, keyrow, &d->row, where, err);
  json_decref(o);
  int over = *from; /* the row file: over the row of the node it is written on */
  if (rc == AS_OK && over < 0) {
    over = write_node(r, s, -1, err);
    if (over < 0) rc = over;
  }
  if (rc == AS_OK) rc = overlay_current(r, s, over, keyrow, &d->row, err);
  if (rc == AS_ENOTFOUND && !side && !r->row_file) { /* NODE holds no row: its choice is none */
    d->op = AS_OP_DELETE;
    for (size_t i = 0; i < s->ncols; i++) {
      if (s->cols[i].is_key) continue;
      as_value_clear(&d->row.v[i]);
      d->row.set[i] = 0;
    }
    rc = AS_OK;
  }
  return rc;
}

static int resolve_one(resolver *r, const as_conflict *c, const char *take, as_error *err) {
  if (!c->status || strcmp(c->status, "open") != 0) {
    return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "conflict %lld is already resolved (chose %s)",
                        (long long)c->id, c->chosen ? c->chosen : "?");
  }
  const as_schema *s = as_config_schema(r->cfg, c->mapping ? c->mapping : "");
  if (!s) return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "conflict %lld: mapping %s is no longer in the configuration", (long long)c->id, c->mapping ? c->mapping : "?");
  as_delta d;
  int rc = as_delta_init(&d, s, AS_OP_INSERT);
  int from = -1, to = -1;
  const char *label = NULL;
  char *row_json = NULL;
  if (rc == AS_OK) rc = as_key_parse(s, c->key ? c->key : "", &d.row, err);
  as_row keyrow = {0};
  if (rc == AS_OK) rc = as_row_copy(&keyrow, &d.row);
  if (rc == AS_OK) rc = choose(r, c, take, s, &keyrow, &d, &from, &label, err);
  if (rc == AS_OK && (to = write_node(r, s, from, err)) < 0) rc = to;
  if (rc == AS_OK) {
    d.ts_us = as_now_us();
    d.hlc = AS_HLC_FROM_US(d.ts_us);
    row_json = as_conflict_row_json(s, &d.row, d.op == AS_OP_DELETE, err);
    rc = row_json ? write_row(r, to, &d, err) : AS_ERR;
  }
  if (rc == AS_OK) rc = as_state_conflict_set_status(r->st, c->id, "resolved", label, row_json, err);
  if (rc == AS_OK) {
    printf("conflict %lld (mapping %s, key %s): took %s; wrote %s on %s as a new change\n",
           (long long)c->id, s->name, c->key, r->row_file ? r->row_path : label,
           d.op == AS_OP_DELETE ? "a delete" : "the row", r->cfg->nodes[to].name);
  } else {
    as_error_prefix(err, "conflict %lld", (long long)c->id);
  }
  free(row_json);
  as_row_clear(&keyrow);
  as_delta_clear(&d);
  return rc;
}

typedef struct all_ctx {
  resolver *r;
  const char *take;
} all_ctx;

static int resolve_each(void *vctx, const as_conflict *c) {
  all_ctx *a = vctx;
  as_error err;
  int rc = resolve_one(a->r, c, a->take, &err);
  if (rc == AS_OK) {
    a->r->done++;
  } else {
    fprintf(stderr, "arraysync: %s\n", err.message);
    a->r->failed++;
  }
  return AS_OK;
}

static int load_row_file(resolver *r, const char *path, as_error *err) {
  json_error_t je;
  r->row_path = path;
  r->row_file = json_load_file(path, JSON_ALLOW_NUL, &je);
  if (!r->row_file)
    return je.line > 0 ? as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "%s:%d:%d: %s", path, je.line, je.column, je.text)
                       : as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "%s: %s", path, je.text);
  if (!json_is_object(r->row_file))
    return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "%s:1:1: the row must be a JSON object "
                        "(column -> value)", path);
  return AS_OK;
}

static int cmd_resolve(const as_config *cfg, const ccli *o, as_error *err) {
  resolver r = {.cfg = cfg};
  r.nodes = calloc(cfg->nnodes ? cfg->nnodes : 1, sizeof *r.nodes);
  if (!r.nodes) return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "out of memory");
  int rc = o->row_file ? load_row_file(&r, o->row_file, err) : AS_OK;
  if (rc == AS_OK && o->take && strcmp(o->take, "local") != 0 && strcmp(o->take, "remote") != 0 &&
      node_index(cfg, o->take) < 0)
    rc = unknown_node(cfg, o->take, err);
  if (rc == AS_OK) rc = open_store(cfg, false, &r.st, err);
  if (rc == AS_OK && o->all) {
    all_ctx a = {.r = &r, .take = o->take};
    rc = as_state_conflict_each(r.st, o->mapping, true, resolve_each, &a, err);
    if (rc == AS_OK) printf("%d conflicts resolved, %d failed\n", r.done, r.failed);
    if (rc == AS_OK && r.failed)
      rc = as_error_set(err, AS_DOM_ENGINE, AS_ERR, "%d conflicts not resolved", r.failed);
  } else if (rc == AS_OK) {
    as_conflict c;
    rc = as_state_conflict_get(r.st, o->id, &c, err);
    if (rc == AS_OK) rc = resolve_one(&r, &c, o->take ? o->take : "", err);
    as_conflict_clear(&c);
  }
  for (size_t i = 0; i < cfg->nnodes; i++)
    if (r.nodes[i].node) r.nodes[i].ad->exit(r.nodes[i].node);
  free(r.nodes);
  json_decref(r.row_file);
  as_state_close(r.st);
  return rc;
}

/* ------------------------------------------------------------ command line */

static void usage(FILE *f) {
  fprintf(f,
          "usage: arraysync conflicts list -c FILE [--mapping M] [--open] [--json]\n"
          "       arraysync conflicts show ID -c FILE [--json]\n"
          "       arraysync conflicts resolve ID -c FILE (--take local|remote|NODE | --row FILE.json)\n"
          "       arraysync conflicts resolve --all -c FILE --take local|remote|NODE [--mapping M]\n"
          "resolve writes the chosen row on one node as a new change; the connector carries it to\n"
          "every node. Exit codes: 0 done, 1 runtime error, 2 bad usage or configuration.\n");
}

static int check_args(ccli *c, int argc, char **argv) {
  if (optind < argc && (strcmp(c->sub, "show") == 0 || strcmp(c->sub, "resolve") == 0)) {
    char *end = NULL;
    long long id = strtoll(argv[optind], &end, 10);
    if (!*argv[optind] || *end || id <= 0) {
      fprintf(stderr, "arraysync conflicts %s: '%s' is not a conflict id\n", c->sub, argv[optind]);
      return EXIT_USAGE;
    }
    c->id = id;
    c->has_id = true;
    optind++;
  }
  const char *bad = optind < argc ? argv[optind] : NULL;
  const char *why = bad ? "unexpected argument" : NULL;
  bool res = strcmp(c->sub, "resolve") == 0;
  if (!why && !c->config) why = "-c FILE is required (the top-level configuration)";
  else if (!why && strcmp(c->sub, "show") == 0 && !c->has_id) why = "show needs a conflict id";
  else if (!why && res && c->all == c->has_id) why = "resolve needs a conflict id or --all";
  else if (!why && res && !c->take == !c->row_file) why = "resolve needs one of --take or --row";
  else if (!why && res && c->all && c->row_file) why = "--row applies to one conflict, not --all";
  else if (!why && !res && (c->take || c->row_file || c->all)) why = "--take, --row and --all are for resolve";
  if (!why) return EXIT_OK;
  fprintf(stderr, "arraysync conflicts %s: %s%s%s%s\n", c->sub, why, bad ? " '" : "", bad ? bad : "", bad ? "'" : "");
  usage(stderr);
  return EXIT_USAGE;
}

static int parse(int argc, char **argv, ccli *c) {
  static const struct option longopts[] = {
      {"config", required_argument, NULL, 'c'}, {"mapping", required_argument, NULL, 'm'},
      {"open", no_argument, NULL, 'O'},         {"json", no_argument, NULL, 'j'},
      {"take", required_argument, NULL, 't'},   {"row", required_argument, NULL, 'r'},
      {"all", no_argument, NULL, 'a'},          {"log-level", required_argument, NULL, 'L'},
      {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
  if (argc < 2 || argv[1][0] == '-') {
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
      usage(stdout);
      exit(EXIT_OK);
    }
    fprintf(stderr, "arraysync: conflicts needs a subcommand (list | show | resolve)\n");
    return EXIT_USAGE;
  }
  c->sub = argv[1];
  if (strcmp(c->sub, "list") != 0 && strcmp(c->sub, "show") != 0 && strcmp(c->sub, "resolve") != 0) {
    fprintf(stderr, "arraysync: unknown subcommand 'conflicts %s' (list | show | resolve)\n", c->sub);
    return EXIT_USAGE;
  }
  optind = 1;
  argc--, argv++; /* argv[0] is now the subcommand */
  int ch;
  while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
    switch (ch) {
      case 'c': c->config = optarg; break;
      case 'm': c->mapping = optarg; break;
      case 'O': c->open_only = true; break;
      case 'j': c->json = true; break;
      case 't': c->take = optarg; break;
      case 'r': c->row_file = optarg; break;
      case 'a': c->all = true; break;
      case 'L': c->log_level = optarg; break;
      case 'h': usage(stdout); exit(EXIT_OK);
      default: usage(stderr); return EXIT_USAGE;
    }
  }
  return check_args(c, argc, argv);
}

int as_cmd_conflicts(int argc, char **argv) {
  ccli c = {0};
  int rc = parse(argc, argv, &c);
  if (rc != EXIT_OK) return rc;
  as_config *cfg = NULL;
  as_error err;
  if (as_config_load(c.config, &cfg, &err) != AS_OK) {
    fprintf(stderr, "%s\n", err.message);
    return EXIT_USAGE;
  }
  as_log_level lvl;
  const char *ls = c.log_level ? c.log_level : cfg->log_level ? cfg->log_level : "warn";
  if (!as_log_parse_level(ls, &lvl)) {
    fprintf(stderr, "arraysync conflicts: unknown log level '%s'\n", ls);
    as_config_free(cfg);
    return EXIT_USAGE;
  }
  as_log_set_level(c.log_level ? lvl : (lvl < AS_LOG_WARN ? lvl : AS_LOG_WARN));
  int r = strcmp(c.sub, "list") == 0   ? cmd_list(cfg, &c, &err)
          : strcmp(c.sub, "show") == 0 ? cmd_show(cfg, &c, &err)
                                       : cmd_resolve(cfg, &c, &err);
  if (r != AS_OK) fprintf(stderr, "arraysync: %s\n", err.message);
  as_config_free(cfg);
  return r == AS_OK ? EXIT_OK : r == AS_EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
}
