/* as_config.c — the top-level configuration file (see as_config.h).
 *
 * Decisions:
 * - `nodes` needs at least two nodes (one node has nobody to sync with); node names are
 *   letters, digits, '_' and '-' (they are origins and part of stream ids).
 * - Node options are scalars, checked against the adapter's config map (unknown keys and
 *   missing required keys are errors); defaults are not copied in (as_node_config_get
 *   supplies them).
 * - Only `state` and `mappings` resolve against the config file's directory; node options
 *   (e.g. a SQLite path) are passed as written.
 * - `mappings`: a glob or a list of globs; each must match at least one file; a file matched
 *   twice is loaded once; files load in glob order (sorted), list order.
 * - Two mappings may not share a name, a SQL table (children included) or a collection.
 * - topology: { type: peer-to-peer } (the default when absent; `topology: peer-to-peer` is
 *   accepted too), { type: hub-and-spoke, hub: NODE }, { type: ring, order: [..] }; a ring
 *   lists every node exactly once (a node outside the ring would be cut off).
 * - Paths in messages are as the user gave them (config path as passed; mapping files as the
 *   config directory joined with the pattern's match). */
#include "as_config.h"

#include <ctype.h>
#include <glob.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_cfgmap.h"
#include "as_log.h"
#include "as_router.h"
#include "as_yaml.h"

/* The top-level keys: one line each (type, default, description, example); `arraysync help
 * config` and docs/CONFIG.md print this table. Scalars are parsed by as_cfgmap into top_opts;
 * maps and lists (AS_DOC) are parsed by the functions below. */
typedef struct top_opts {
  char *state;
  int64_t max_rows;
  int64_t max_latency;
  int64_t retention;
  int64_t settle_after;
  int log_level;
  int log_format;
  char *listen;
  int64_t verify_every;
  bool verify_repair;
  char *mirror_node, *mirror_table;
} top_opts;

static const char *const log_levels[] = {"error", "warn", "warning", "info", "debug", "trace",
                                         NULL};
static const char *const log_formats[] = {"text", "json", NULL};
static const char *const topo_types[] = {"peer-to-peer", "hub-and-spoke", "ring", NULL};

static const as_config_entry top_map[] = {
    AS_DOC(MAP, "nodes", NULL,
           "the databases to keep in sync: node name -> { kind: mongodb | postgres | sqlite, "
           "options of that kind (below) }. At least two; a name (letters, digits, _ and -) is "
           "also the origin recorded with the node's changes",
           "{ mongo: { kind: mongodb, uri: \"${MONGODB_URI}\", database: shop }, lite: { kind: "
           "sqlite, path: ./shop.db } }",
           .required = true),
    AS_OPT_AT(PATH, "state", top_opts, state, "arraysync-state.db",
              "the state store (SQLite): checkpoints, versions, dead letters, conflicts; "
              "relative to this file",
              "/var/lib/arraysync/state.db"),
    AS_DOC(MAP, "topology", "{ type: peer-to-peer }",
           "who streams to whom; `topology: peer-to-peer` is short for { type: peer-to-peer }",
           "{ type: hub-and-spoke, hub: pg }"),
    AS_DOC(ENUM, "topology.type", "peer-to-peer",
           "peer-to-peer: every node with every other; hub-and-spoke: the hub with each spoke; "
           "ring: each node to the next in `order`",
           "ring", .allowed = topo_types),
    AS_DOC(STRING, "topology.hub", NULL, "hub-and-spoke: the hub node's name", "pg"),
    AS_DOC(LIST, "topology.order", NULL, "ring: every node's name once, in ring order",
           "[mongo, pg, lite]"),
    AS_DOC(LIST, "mappings", NULL,
           "mapping files: a glob or a list of globs, relative to this file; each must match "
           "a file (keys of a mapping file: below)",
           "\"mappings/*.yaml\"", .required = true),
    AS_OPT_AT(INT, "batch.max_rows", top_opts, max_rows, "1000",
              "most changes applied in one target transaction", "5000", .min = 1,
              .max = 1000000),
    AS_OPT_AT(DURATION, "batch.max_latency", top_opts, max_latency, "20ms",
              "longest a change waits for its batch to fill", "50ms"),
    AS_OPT_AT(DURATION, "tombstones.retention", top_opts, retention, "7d",
              "how long versions of deleted keys are kept (a delete older than this that "
              "reaches a node is treated as new)",
              "30d"),
    AS_OPT_AT(DURATION, "versions.settle_after", top_opts, settle_after, "5s",
              "how long after every stream of a node has read past the connector's last write "
              "of a key there the state store forgets that write's details and keeps only who "
              "holds the key's version (it must exceed the longest time a committed change can "
              "take to reach its stream); 0s keeps them",
              "30s"),
    AS_OPT_AT(ENUM, "log.level", top_opts, log_level, "info",
              "least severe log line written (the command line's --log-level wins); trace adds "
              "a line for every decision (the change, its version, the key's version before it, "
              "the verdict) and every batch a target committed (its commit order)", "debug",
              .allowed = log_levels),
    AS_OPT_AT(ENUM, "log.format", top_opts, log_format, "text",
              "log lines as text or one JSON object per line (--log-format wins)", "json",
              .allowed = log_formats),
    AS_OPT_AT(STRING, "metrics.listen", top_opts, listen, NULL,
              "HOST:PORT to serve Prometheus /metrics and /healthz on (--metrics wins); off "
              "when absent",
              "127.0.0.1:9187"),
    AS_OPT_AT(DURATION, "verify.every", top_opts, verify_every, NULL,
              "run `arraysync verify` of every mapping and pair this often inside `run` (a log "
              "line per difference, gauges arraysync_verify_*; docs/VERIFY.md); off when absent",
              "6h", .min = 1000, .max = 366LL * 86400 * 1000),
    AS_OPT_AT(BOOL, "verify.repair", top_opts, verify_repair, "false",
              "the periodic verify also repairs what it finds where the state store knows the "
              "winner (else it only reports)",
              "true"),
    AS_OPT_AT(STRING, "conflicts.node", top_opts, mirror_node, NULL,
              "a SQL node (postgres or sqlite) that holds a table of the open conflicts, kept "
              "up to date by `run` within seconds, so an application can show them; deleting "
              "a row there settles that conflict (the value in place stays); a conflicts block "
              "without it uses the first SQL node; a mapping's own conflicts block wins for its "
              "conflicts; off when there is no conflicts block",
              "pg"),
    AS_OPT_AT(STRING, "conflicts.table", top_opts, mirror_table, "arraysync_conflicts",
              "the name of that table (created by `run` when missing; never synced)",
              "app_conflicts"),
    AS_OPT_END};

const as_config_entry *as_config_map(void) { return top_map; }

static const char *const topo_keys[] = {"type", "hub", "order", NULL};

static int nomem(as_error *err) {
  return as_error_set(err, AS_DOM_CONFIG, AS_ERR, "out of memory");
}

static void node_clear(as_node_config *n) {
  free(n->name);
  free(n->kind);
  for (size_t i = 0; i < n->nopts; i++) {
    free(n->opts[i].key);
    free(n->opts[i].value);
  }
  free(n->opts);
  for (size_t i = 0; i < n->nconsumers; i++) free(n->consumers[i]);
  free(n->consumers);
}

/* Each node's consumers: the nodes the topology streams to from it (adapters keep one
 * capture position, e.g. a replication slot, per consumer). Every node marks the connector's
 * writes local-only: changes travel on through the state store's relay log, never by
 * capturing them again on the node they were written to (as_node_config.local_only). */
static int fill_consumers(as_config *c, as_error *err) {
  for (size_t i = 0; i < c->nnodes; i++) {
    as_node_config *n = &c->nodes[i];
    n->local_only = true;
    n->consumers = calloc(c->nnodes ? c->nnodes : 1, sizeof *n->consumers);
    if (!n->consumers) return nomem(err);
    for (size_t j = 0; j < c->nnodes; j++) {
      if (!as_route_pair(c, n->name, c->nodes[j].name)) continue;
      if (!(n->consumers[n->nconsumers] = strdup(c->nodes[j].name))) return nomem(err);
      n->nconsumers++;
    }
  }
  return AS_OK;
}

void as_config_free(as_config *c) {
  if (!c) return;
  for (size_t i = 0; i < c->nnodes; i++) node_clear(&c->nodes[i]);
  free(c->nodes);
  free(c->state_path);
  free(c->topology.hub);
  for (size_t i = 0; i < c->topology.norder; i++) free(c->topology.order[i]);
  free(c->topology.order);
  for (size_t i = 0; i < c->nschemas; i++) as_schema_free(c->schemas[i]);
  free(c->schemas);
  free(c->log_level);
  free(c->log_format);
  free(c->metrics_listen);
  free(c->mirror_node);
  free(c->mirror_table);
  free(c->file);
  free(c->dir);
  free(c);
}

const as_node_config *as_config_node(const as_config *c, const char *name) {
  for (size_t i = 0; c && name && i < c->nnodes; i++) {
    if (strcmp(c->nodes[i].name, name) == 0) return &c->nodes[i];
  }
  return NULL;
}

const as_schema *as_config_schema(const as_config *c, const char *mapping) {
  for (size_t i = 0; c && mapping && i < c->nschemas; i++) {
    if (strcmp(c->schemas[i]->name, mapping) == 0) return c->schemas[i];
  }
  return NULL;
}

/* dir joined with path; absolute paths and dir "." leave path as is. */
static char *join(const char *dir, const char *path) {
  if (path[0] == '/' || strcmp(dir, ".") == 0) return strdup(path);
  size_t n = strlen(dir) + strlen(path) + 2;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/%s", dir, path);
  return p;
}

static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return strdup(".");
  if (slash == path) return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

static bool valid_node_name(const char *n) {
  if (!*n) return false;
  for (const char *p = n; *p; p++) {
    if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-')) return false;
  }
  return true;
}

static void list_kinds(char *buf, size_t cap) {
  size_t off = 0;
  buf[0] = '\0';
  const as_adapter *const *all = as_adapter_all();
  for (size_t i = 0; all[i] && off < cap; i++) {
    int w = snprintf(buf + off, cap - off, "%s%s", i ? ", " : "", all[i]->kind);
    if (w < 0) break;
    off += (size_t)w;
  }
}

static int parse_node(const char *name, const as_mark *km, const as_ynode *v, as_config *c,
                      as_node_config *n, as_error *err) {
  n->mark = *km;
  n->mark.file = c->file;
  if (!(n->name = strdup(name))) return nomem(err);
  if (!valid_node_name(name)) {
    return as_yaml_error(err, km, "node name \"%s\" may contain only letters, digits, '_' and "
                         "'-'", name);
  }
  if (!v || v->kind != AS_Y_MAP) {
    return as_yaml_error(err, v ? &v->mark : km, "node \"%s\" must be a map { kind: ..., ... }, "
                         "not %s", name, as_ynode_kind_name(v));
  }
  const as_ynode *kind = as_ynode_get(v, "kind");
  char kinds[200];
  list_kinds(kinds, sizeof kinds);
  if (!kind) {
    return as_yaml_error(err, km, "node \"%s\" has no kind (kind: %s)", name, kinds);
  }
  char what[160];
  snprintf(what, sizeof what, "kind of node \"%s\"", name);
  int rc = as_yaml_str(kind, what, &n->kind, err);
  if (rc) return rc;
  const as_adapter *a = as_adapter_find(n->kind);
  if (!a) {
    return as_yaml_error(err, &kind->mark, "unknown node kind \"%s\" for node \"%s\" (known: "
                         "%s)", n->kind, name, kinds);
  }
  /* allowed keys: kind + the adapter's config map */
  size_t nmap = 0;
  for (const as_config_entry *e = a->config_map; e && e->key; e++) nmap++;
  const char **allowed = calloc(nmap + 2, sizeof *allowed);
  if (!allowed) return nomem(err);
  allowed[0] = "kind";
  for (size_t i = 0; i < nmap; i++) allowed[i + 1] = a->config_map[i].key;
  char owner[200];
  snprintf(owner, sizeof owner, "%s node \"%s\"", n->kind, name);
  rc = as_yaml_check_keys(v, allowed, owner, err);
  free(allowed);
  if (rc) return rc;
  if (!(n->opts = calloc(v->n, sizeof *n->opts))) return nomem(err);
  for (size_t i = 0; i < v->n; i++) {
    if (strcmp(v->keys[i], "kind") == 0) continue;
    const as_ynode *ov = v->items[i];
    as_node_option *o = &n->opts[n->nopts];
    char owhat[300];
    snprintf(owhat, sizeof owhat, "option %s of node \"%s\"", v->keys[i], name);
    if (!ov || ov->kind != AS_Y_SCALAR) {
      return as_yaml_error(err, ov ? &ov->mark : &v->key_marks[i], "%s must be a value, not %s",
                           owhat, as_ynode_kind_name(ov));
    }
    if (!(o->key = strdup(v->keys[i]))) return nomem(err);
    n->nopts++;
    if (!(o->value = strdup(ov->scalar))) return nomem(err);
    o->mark = ov->mark;
    o->mark.file = c->file;
  }
  /* every option's value against its type (the adapter's init parses them again) */
  void *scratch = calloc(1, as_cfgmap_struct_size(a->config_map) + 1);
  if (!scratch) return nomem(err);
  rc = as_node_options_parse(n, a->config_map, scratch, err);
  as_cfgmap_free(a->config_map, scratch);
  free(scratch);
  return rc;
}

static int parse_nodes(const as_ynode *root, as_config *c, as_error *err) {
  const as_ynode *nodes = as_ynode_get(root, "nodes");
  if (!nodes || as_ynode_is_null(nodes)) {
    return as_yaml_error(err, nodes ? &nodes->mark : &root->mark,
                         "missing \"nodes\" (a map of node name -> { kind, ... })");
  }
  if (nodes->kind != AS_Y_MAP) {
    return as_yaml_error(err, &nodes->mark, "nodes must be a map of node name -> { kind, ... }, "
                         "not %s", as_ynode_kind_name(nodes));
  }
  if (nodes->n < 2) {
    return as_yaml_error(err, &nodes->mark, "at least two nodes are needed to sync (found %zu)",
                         nodes->n);
  }
  if (!(c->nodes = calloc(nodes->n, sizeof *c->nodes))) return nomem(err);
  for (size_t i = 0; i < nodes->n; i++) {
    c->nnodes++;
    int rc = parse_node(nodes->keys[i], &nodes->key_marks[i], nodes->items[i], c,
                        &c->nodes[i], err);
    if (rc) return rc;
  }
  return AS_OK;
}

static int node_ref(const as_config *c, const as_ynode *n, const char *what, char **out,
                    as_error *err) {
  int rc = as_yaml_str(n, what, out, err);
  if (rc) return rc;
  if (!as_config_node(c, *out)) {
    char list[400];
    size_t off = 0;
    list[0] = '\0';
    for (size_t i = 0; i < c->nnodes && off < sizeof list; i++) {
      int w = snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "", c->nodes[i].name);
      if (w < 0) break;
      off += (size_t)w;
    }
    return as_yaml_error(err, &n->mark, "%s \"%s\" is not a node (nodes: %s)", what, *out, list);
  }
  return AS_OK;
}

static bool sql_kind(const char *kind) {
  return strcmp(kind, "postgres") == 0 || strcmp(kind, "sqlite") == 0;
}

/* The first SQL node of the configuration, or NULL. */
static const char *first_sql_node(const as_config *c) {
  for (size_t i = 0; i < c->nnodes; i++)
    if (sql_kind(c->nodes[i].kind)) return c->nodes[i].name;
  return NULL;
}

/* A conflicts block without a node mirrors into the first SQL node; the node it names (or that
 * one) is a SQL node of the configuration. at: the block, for messages. */
static int mirror_node_check(const as_config *c, char **node, const as_mark *at, const char *who,
                             as_error *err) {
  if (!*node) {
    const char *first = first_sql_node(c);
    if (!first)
      return as_cfgmap_error(err, at, NULL, "conflicts.node", "%sthe conflicts table needs a "
                             "SQL node (postgres or sqlite), and this configuration has none",
                             who);
    if (!(*node = strdup(first))) return nomem(err);
    return AS_OK;
  }
  const as_node_config *nc = as_config_node(c, *node);
  if (!nc)
    return as_cfgmap_error(err, at, NULL, "conflicts.node",
                           "%s\"%s\" is not a node of this configuration", who, *node);
  if (!sql_kind(nc->kind))
    return as_cfgmap_error(err, at, NULL, "conflicts.node",
                           "%s\"%s\" is a %s node; the conflicts table needs a SQL node (postgres "
                           "or sqlite)", who, *node, nc->kind);
  return AS_OK;
}

/* conflicts (top level): present (node or table given) -> mirror_node set. */
static int check_mirror(const as_ynode *root, as_config *c, as_error *err) {
  const as_ynode *blk = as_ynode_get(root, "conflicts");
  if (!blk || as_ynode_is_null(blk)) return AS_OK;
  const as_ynode *n = as_ynode_get(blk, "node");
  return mirror_node_check(c, &c->mirror_node, n ? &n->mark : &blk->mark, "", err);
}

/* A mapping's own conflicts block, completed from the configuration's; or the configuration's
 * alone. */
static int resolve_mirror(const as_config *c, as_schema *s, as_error *err) {
  if (!s->mirror_own) {
    if (!c->mirror_node) return AS_OK;
    s->mirror_node = strdup(c->mirror_node);
    s->mirror_table = strdup(c->mirror_table);
    return s->mirror_node && s->mirror_table ? AS_OK : nomem(err);
  }
  if (!s->mirror_node && c->mirror_node && !(s->mirror_node = strdup(c->mirror_node)))
    return nomem(err);
  if (!s->mirror_table &&
      !(s->mirror_table = strdup(c->mirror_table ? c->mirror_table : "arraysync_conflicts")))
    return nomem(err);
  char who[200];
  snprintf(who, sizeof who, "mapping \"%s\": ", s->name);
  return mirror_node_check(c, &s->mirror_node, &s->mirror_mark, who, err);
}

/* No conflicts table is a mapped table. */
static int check_mirror_tables(const as_config *c, as_error *err) {
  for (size_t i = 0; i < c->nschemas; i++) {
    const as_schema *s = c->schemas[i];
    if (!s->mirror_table) continue;
    for (size_t j = 0; j < c->nschemas; j++) {
      const as_schema *o = c->schemas[j];
      if (as_schema_has_table(o, s->mirror_table))
        return as_yaml_error(err, s->mirror_own ? &s->mirror_mark : &s->mark,
                             "mapping \"%s\": its conflicts table \"%s\" is a table of mapping "
                             "\"%s\"; name another (conflicts: { table: ... })", s->name,
                             s->mirror_table, o->name);
    }
  }
  return AS_OK;
}

static int parse_topology(const as_ynode *root, as_config *c, as_error *err) {
  const as_ynode *t = as_ynode_get(root, "topology");
  c->topology.type = AS_TOPO_PEER_TO_PEER;
  if (!t || as_ynode_is_null(t)) return AS_OK;
  const as_ynode *type = t;
  if (t->kind == AS_Y_MAP) {
    int rc = as_yaml_check_keys(t, topo_keys, "topology", err);
    if (rc) return rc;
    type = as_ynode_get(t, "type");
    if (!type) {
      return as_yaml_error(err, &t->mark, "topology needs a type (peer-to-peer, hub-and-spoke "
                           "or ring)");
    }
  } else if (t->kind != AS_Y_SCALAR) {
    return as_yaml_error(err, &t->mark, "topology must be a map { type: ... }, not %s",
                         as_ynode_kind_name(t));
  }
  if (type->kind != AS_Y_SCALAR) {
    return as_yaml_error(err, &type->mark, "topology type must be peer-to-peer, hub-and-spoke "
                         "or ring, not %s", as_ynode_kind_name(type));
  }
  const char *ty = type->scalar;
  const as_ynode *hub = as_ynode_get(t, "hub");
  const as_ynode *order = as_ynode_get(t, "order");
  if (strcmp(ty, "peer-to-peer") == 0) {
    c->topology.type = AS_TOPO_PEER_TO_PEER;
  } else if (strcmp(ty, "hub-and-spoke") == 0) {
    c->topology.type = AS_TOPO_HUB_AND_SPOKE;
  } else if (strcmp(ty, "ring") == 0) {
    c->topology.type = AS_TOPO_RING;
  } else {
    return as_yaml_error(err, &type->mark, "bad topology type \"%s\" (expected peer-to-peer, "
                         "hub-and-spoke or ring)", ty);
  }
  if (hub && c->topology.type != AS_TOPO_HUB_AND_SPOKE) {
    return as_yaml_error(err, as_ynode_key_mark(t, "hub"), "hub is only used with type: "
                         "hub-and-spoke");
  }
  if (order && c->topology.type != AS_TOPO_RING) {
    return as_yaml_error(err, as_ynode_key_mark(t, "order"), "order is only used with type: "
                         "ring");
  }
  if (c->topology.type == AS_TOPO_HUB_AND_SPOKE) {
    if (!hub) {
      return as_yaml_error(err, &t->mark, "topology hub-and-spoke needs hub: NODE");
    }
    return node_ref(c, hub, "topology hub", &c->topology.hub, err);
  }
  if (c->topology.type == AS_TOPO_RING) {
    if (!order) return as_yaml_error(err, &t->mark, "topology ring needs order: [NODE, ...]");
    if (order->kind != AS_Y_SEQ) {
      return as_yaml_error(err, &order->mark, "ring order must be a list of node names, not %s",
                           as_ynode_kind_name(order));
    }
    if (order->n < 2) {
      return as_yaml_error(err, &order->mark, "ring order must list at least two nodes");
    }
    if (!(c->topology.order = calloc(order->n, sizeof *c->topology.order))) return nomem(err);
    for (size_t i = 0; i < order->n; i++) {
      char *name = NULL;
      int rc = node_ref(c, order->items[i], "ring node", &name, err);
      if (rc) {
        free(name);
        return rc;
      }
      for (size_t j = 0; j < c->topology.norder; j++) {
        if (strcmp(c->topology.order[j], name) == 0) {
          free(name);
          return as_yaml_error(err, &order->items[i]->mark, "node \"%s\" appears twice in the "
                               "ring", c->topology.order[j]);
        }
      }
      c->topology.order[c->topology.norder++] = name;
    }
    for (size_t i = 0; i < c->nnodes; i++) {
      bool in = false;
      for (size_t j = 0; j < c->topology.norder; j++) {
        if (strcmp(c->topology.order[j], c->nodes[i].name) == 0) in = true;
      }
      if (!in) {
        return as_yaml_error(err, &order->mark, "ring order must list every node; node \"%s\" "
                             "is missing", c->nodes[i].name);
      }
    }
  }
  return AS_OK;
}

static int add_schema(as_config *c, as_schema *s, as_error *err) {
  int rc = resolve_mirror(c, s, err);
  if (rc) return rc;
  if (s->initial_prefer && !as_config_node(c, s->initial_prefer)) {
    return as_yaml_error(err, &s->initial_prefer_mark, "mapping \"%s\": initial_sync prefer "
                         "\"%s\" is not a node", s->name, s->initial_prefer);
  }
  for (size_t i = 0; i < c->nschemas; i++) {
    const as_schema *o = c->schemas[i];
    if (strcmp(o->name, s->name) == 0) {
      return as_yaml_error(err, &s->mark, "mapping \"%s\" is already defined in %s:%d:%d",
                           s->name, o->file, o->mark.line, o->mark.col);
    }
    if (strcmp(o->collection, s->collection) == 0) {
      return as_yaml_error(err, &s->mark, "collection \"%s\" of mapping \"%s\" is already "
                           "mapped by mapping \"%s\" (%s)", s->collection, s->name, o->name,
                           o->file);
    }
    /* every SQL table of s against every SQL table of o */
    const char *ta = as_schema_shared_table(s, o);
    if (ta)
      return as_yaml_error(err, &s->mark, "table \"%s\" of mapping \"%s\" is already used "
                           "by mapping \"%s\" (%s)", ta, s->name, o->name, o->file);
  }
  as_schema **grown = realloc(c->schemas, (c->nschemas + 1) * sizeof *grown);
  if (!grown) return nomem(err);
  c->schemas = grown;
  c->schemas[c->nschemas++] = s;
  return AS_OK;
}

static int load_pattern(as_config *c, const as_ynode *pat, char ***seen, size_t *nseen,
                        as_error *err) {
  if (pat->kind != AS_Y_SCALAR || !pat->scalar[0]) {
    return as_yaml_error(err, &pat->mark, "mappings must be a file pattern or a list of "
                         "patterns, not %s", pat->kind == AS_Y_SCALAR ? "an empty value"
                                                                      : as_ynode_kind_name(pat));
  }
  char *full = join(c->dir, pat->scalar);
  if (!full) return nomem(err);
  glob_t g;
  memset(&g, 0, sizeof g);
  int grc = glob(full, 0, NULL, &g);
  int rc = AS_OK;
  if (grc == GLOB_NOMATCH) {
    rc = as_yaml_error(err, &pat->mark, "mappings pattern \"%s\" matches no file (looked for "
                       "\"%s\")", pat->scalar, full);
  } else if (grc != 0) {
    rc = as_yaml_error(err, &pat->mark, "cannot read mappings pattern \"%s\" (\"%s\")",
                       pat->scalar, full);
  }
  for (size_t i = 0; rc == AS_OK && i < g.gl_pathc; i++) {
    const char *p = g.gl_pathv[i];
    bool dup = false;
    for (size_t j = 0; j < *nseen; j++) dup = dup || strcmp((*seen)[j], p) == 0;
    if (dup) continue;
    char **grown = realloc(*seen, (*nseen + 1) * sizeof *grown);
    if (!grown || !(grown[*nseen] = strdup(p))) {
      if (grown) *seen = grown;
      rc = nomem(err);
      break;
    }
    *seen = grown;
    (*nseen)++;
    as_schema *s = NULL;
    if ((rc = as_schema_load(p, &s, err))) break;
    if ((rc = add_schema(c, s, err))) as_schema_free(s);
  }
  globfree(&g);
  free(full);
  return rc;
}

static int parse_mappings(const as_ynode *root, as_config *c, as_error *err) {
  const as_ynode *m = as_ynode_get(root, "mappings");
  if (!m || as_ynode_is_null(m)) {
    return as_yaml_error(err, m ? &m->mark : &root->mark, "missing \"mappings\" (a file pattern "
                         "such as mappings/*.yaml, or a list of them)");
  }
  char **seen = NULL;
  size_t nseen = 0;
  int rc = AS_OK;
  if (m->kind == AS_Y_SEQ) {
    if (m->n == 0) rc = as_yaml_error(err, &m->mark, "mappings must list at least one pattern");
    for (size_t i = 0; rc == AS_OK && i < m->n; i++) {
      rc = load_pattern(c, m->items[i], &seen, &nseen, err);
    }
  } else {
    rc = load_pattern(c, m, &seen, &nseen, err);
  }
  for (size_t i = 0; i < nseen; i++) free(seen[i]);
  free(seen);
  return rc;
}

static int parse_misc(const as_ynode *root, as_config *c, as_error *err) {
  top_opts o = {0};
  int rc = as_cfgmap_parse_yaml(top_map, "configuration", root, &o, err);
  if (rc) goto cleanup;
  c->state_path = join(c->dir, o.state);
  c->batch_max_rows = (size_t)o.max_rows;
  c->batch_max_latency_ms = o.max_latency;
  c->tombstone_retention_ms = o.retention;
  c->settle_after_ms = o.settle_after;
  c->log_level = strdup(log_levels[o.log_level]);
  c->log_format = strdup(log_formats[o.log_format]);
  if (!c->state_path || !c->log_level || !c->log_format) {
    rc = nomem(err);
    goto cleanup;
  }
  if (o.listen) {
    const as_ynode *li = as_ynode_get(as_ynode_get(root, "metrics"), "listen");
    const char *colon = strrchr(o.listen, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon == o.listen || !end || *end || port < 1 || port > 65535) {
      rc = as_cfgmap_error(err, li ? &li->mark : NULL, NULL, "metrics.listen",
                           "\"%s\" is not HOST:PORT (allowed: e.g. 127.0.0.1:9187)", o.listen);
      goto cleanup;
    }
    c->metrics_listen = o.listen;
    o.listen = NULL;
  }
  c->verify_every_ms = o.verify_every;
  c->verify_repair = o.verify_repair;
  if (as_ynode_get(root, "conflicts") && !as_ynode_is_null(as_ynode_get(root, "conflicts"))) {
    const as_ynode *t = as_ynode_get(as_ynode_get(root, "conflicts"), "table");
    size_t len = strlen(o.mirror_table);
    if (len == 0 || len > 63) {
      rc = as_cfgmap_error(err, t ? &t->mark : NULL, NULL, "conflicts.table",
                           "\"%s\" is not a table name (1 to 63 bytes)", o.mirror_table);
      goto cleanup;
    }
    c->mirror_node = o.mirror_node;
    c->mirror_table = o.mirror_table;
    o.mirror_node = o.mirror_table = NULL;
  }
  if (c->verify_repair && !c->verify_every_ms) {
    const as_ynode *v = as_ynode_get(root, "verify");
    rc = as_cfgmap_error(err, v ? &v->mark : NULL, NULL, "verify.every",
                         "is needed with verify.repair (e.g. every: 6h)");
  }
cleanup:
  as_cfgmap_free(top_map, &o);
  return rc;
}

int as_config_load(const char *path, as_config **out, as_error *err) {
  *out = NULL;
  as_ydoc *doc = NULL;
  as_config *c = NULL;
  int rc = as_yaml_load_file(path, &doc, err);
  if (rc) goto cleanup;
  c = calloc(1, sizeof *c);
  if (!c || !(c->file = strdup(path)) || !(c->dir = dir_of(path))) {
    rc = nomem(err);
    goto cleanup;
  }
  const as_ynode *root = doc->root;
  as_mark top = {.file = doc->file, .line = 1, .col = 1};
  if (!root) {
    rc = as_yaml_error(err, &top, "empty configuration file");
    goto cleanup;
  }
  if (root->kind != AS_Y_MAP) {
    rc = as_yaml_error(err, &root->mark, "a configuration file must be a map (nodes:, "
                       "mappings:, ...), not %s", as_ynode_kind_name(root));
    goto cleanup;
  }
  if ((rc = parse_misc(root, c, err))) goto cleanup;
  if ((rc = parse_nodes(root, c, err))) goto cleanup;
  if ((rc = check_mirror(root, c, err))) goto cleanup;
  if ((rc = parse_topology(root, c, err))) goto cleanup;
  if ((rc = fill_consumers(c, err))) goto cleanup;
  if ((rc = parse_mappings(root, c, err))) goto cleanup;
  if ((rc = check_mirror_tables(c, err))) goto cleanup;
  *out = c;
  c = NULL;
cleanup:
  as_config_free(c);
  as_ydoc_free(doc);
  return rc;
}

static const as_schema *lookup_schema(void *ctx, const char *mapping) {
  return as_config_schema((const as_config *)ctx, mapping);
}

int as_config_delta_parse(const as_config *c, const char *text, as_delta *out, as_error *err) {
  memset(out, 0, sizeof *out);
  json_error_t je;
  json_t *j = text ? json_loads(text, JSON_ALLOW_NUL, &je) : NULL;
  if (!j) {
    return as_error_set(err, AS_DOM_ENGINE, AS_EDATA, "a stored change is not JSON: %s",
                        text ? je.text : "nothing stored");
  }
  int rc = as_delta_from_json(j, lookup_schema, (void *)c, out, err);
  json_decref(j);
  return rc;
}
