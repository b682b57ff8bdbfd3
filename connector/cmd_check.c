/* cmd_check.c — `arraysync check -c FILE`, offline part: loads and validates the
 * configuration and every mapping (no connection), then prints the DDL each mapping implies
 * and which mappings each node carries. The caller prints err->message on AS_EINVAL.
 *
 * Output (stable; tests compare it):
 *   -- config FILE: N nodes, M mappings, topology T
 *   -- mapping NAME (PATH): PostgreSQL        PATH relative to the config directory
 *   CREATE TABLE ...                          (schema of the first postgres node, else none)
 *   -- mapping NAME (PATH): SQLite
 *   CREATE TABLE ...
 *   -- node NAME (KIND): NAME -> collection C (direction), ...   (mongodb)
 *   -- node NAME (KIND): NAME -> table T [+ child tables] (direction), ...   (SQL kinds)
 * and, after a mapping's DDL, when it has a conflict script (compiled and run once in the
 * sandbox before anything is printed; a syntax error is "SCRIPT:LINE: message"):
 *   -- mapping NAME: conflict script SCRIPT defines resolve (called on conflicts|every change)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "as_config.h"
#include "as_ddl.h"
#include "as_lua.h"
#include "cmd_check.h"


static const char *rel_path(const as_config *c, const char *p) {
  size_t n = strlen(c->dir);
  if (strcmp(c->dir, ".") != 0 && strncmp(p, c->dir, n) == 0 && p[n] == '/') return p + n + 1;
  return p;
}

static const char *topo_name(as_topology_type t) {
  switch (t) {
    case AS_TOPO_HUB_AND_SPOKE: return "hub-and-spoke";
    case AS_TOPO_RING: return "ring";
    default: return "peer-to-peer";
  }
}

/* Compiles every conflict script (as `run` would) so that check fails as run would. */
static int check_scripts(const as_config *c, as_error *err) {
  for (size_t i = 0; i < c->nschemas; i++) {
    const as_schema *s = c->schemas[i];
    if (!s->conflict.script) continue;
    as_lua *L = NULL;
    int rc = as_lua_open(s, NULL, NULL, &L, err);
    as_lua_close(L);
    if (rc) return rc;
  }
  return AS_OK;
}

static const char *dir_name(as_direction d) {
  switch (d) {
    case AS_DIR_TO_SQL: return "to-sql";
    case AS_DIR_TO_MONGO: return "to-mongo";
    default: return "both";
  }
}

int as_cmd_check(const char *config_path, FILE *out, as_error *err) {
  as_config *c = NULL;
  as_buf b = AS_BUF_INIT;
  int rc = as_config_load(config_path, &c, err);
  if (rc || (rc = check_scripts(c, err))) goto cleanup;
  const char *pg_schema = NULL;
  for (size_t i = 0; i < c->nnodes && !pg_schema; i++) {
    if (strcmp(c->nodes[i].kind, "postgres") == 0) {
      pg_schema = as_node_config_get(&c->nodes[i], "schema");
    }
  }
  fprintf(out, "-- config %s: %zu nodes, %zu mappings, topology %s", config_path, c->nnodes,
          c->nschemas, topo_name(c->topology.type));
  if (c->topology.type == AS_TOPO_HUB_AND_SPOKE) fprintf(out, " (hub %s)", c->topology.hub);
  if (c->topology.type == AS_TOPO_RING) {
    fputs(" (", out);
    for (size_t i = 0; i < c->topology.norder; i++) {
      fprintf(out, "%s%s", i ? " -> " : "", c->topology.order[i]);
    }
    fputs(")", out);
  }
  fputc('\n', out);
  for (size_t i = 0; i < c->nschemas; i++) {
    const as_schema *s = c->schemas[i];
    const char *p = rel_path(c, s->file);
    as_buf_reset(&b);
    if ((rc = as_ddl_postgres(s, pg_schema, &b, err))) goto cleanup;
    fprintf(out, "-- mapping %s (%s): PostgreSQL\n%s", s->name, p, as_buf_cstr(&b));
    as_buf_reset(&b);
    if ((rc = as_ddl_sqlite(s, &b, err))) goto cleanup;
    fprintf(out, "-- mapping %s (%s): SQLite\n%s", s->name, p, as_buf_cstr(&b));
    if (s->conflict.script) {
      fprintf(out, "-- mapping %s: conflict script %s defines resolve (called on %s)\n",
              s->name, rel_path(c, s->conflict.script),
              s->conflict.call == AS_CALL_ALWAYS ? "every change" : "conflicts");
    }
  }
  for (size_t i = 0; i < c->nnodes; i++) {
    const as_node_config *n = &c->nodes[i];
    bool mongo = strcmp(n->kind, "mongodb") == 0;
    fprintf(out, "-- node %s (%s):", n->name, n->kind);
    for (size_t j = 0; j < c->nschemas; j++) {
      const as_schema *s = c->schemas[j];
      fprintf(out, "%s %s -> %s %s", j ? "," : "", s->name, mongo ? "collection" : "table",
              mongo ? s->collection : s->table);
      size_t nt = mongo ? 0 : as_schema_tables(s, NULL, 0);
      const char **tabs = nt ? calloc(nt, sizeof *tabs) : NULL;
      if (tabs) as_schema_tables(s, tabs, nt);
      for (size_t k = 1; tabs && k < nt; k++) fprintf(out, " + %s", tabs[k]);
      free(tabs);
      fprintf(out, " (%s)", dir_name(s->direction));
    }
    fputc('\n', out);
  }
cleanup:
  as_buf_free(&b);
  as_config_free(c);
  return rc;
}

/* ---------------------------------------------------------------- check --live */

typedef struct live_ctx {
  FILE *out;
  size_t n, failed;
} live_ctx;

static void live_report(void *vctx, bool ok, const char *what, const char *fix) {
  live_ctx *c = vctx;
  c->n++;
  if (!ok) c->failed++;
  fprintf(c->out, "%s %s\n", ok ? "\u2713" : "\u2717", what);
  if (!ok && fix && *fix) fprintf(c->out, "    fix: %s\n", fix);
  fflush(c->out);
}

static void check_state(const as_config *cfg, live_ctx *ctx) {
  char what[1200], fix[1200];
  char *dir = strdup(cfg->state_path);
  char *slash = dir ? strrchr(dir, '/') : NULL;
  if (slash) *slash = '\0';
  const char *d = !dir ? "." : slash ? (dir[0] ? dir : "/") : ".";
  bool exists = access(cfg->state_path, F_OK) == 0;
  bool ok = access(d, W_OK | X_OK) == 0 && (!exists || access(cfg->state_path, R_OK | W_OK) == 0);
  int e = errno;
  snprintf(what, sizeof what, "state store %s %s", cfg->state_path,
           exists ? "and its directory are writable" : "is missing; its directory is writable "
                                                      "(it is created on first run)");
  snprintf(fix, sizeof fix, "%s: give the connector's user write access to %s%s%s (or set "
           "`state:` to a writable place)", strerror(e), d, exists ? " and " : "",
           exists ? cfg->state_path : "");
  live_report(ctx, ok, what, fix);
  free(dir);
}

int as_cmd_check_live(const char *config_path, FILE *out, as_error *err) {
  as_config *c = NULL;
  int rc = as_config_load(config_path, &c, err);
  if (rc) return rc;
  live_ctx ctx = {.out = out};
  fprintf(out, "-- live checks (nothing is changed)\n");
  check_state(c, &ctx);
  for (size_t i = 0; i < c->nnodes; i++) {
    const as_node_config *nc = &c->nodes[i];
    const as_adapter *a = as_adapter_find(nc->kind);
    char what[300];
    if (!a->check_live) {
      snprintf(what, sizeof what, "node %s: kind %s has no live checks", nc->name, nc->kind);
      live_report(&ctx, true, what, NULL);
      continue;
    }
    as_node *n = NULL;
    as_error e = {0};
    if (a->init(nc, (const as_schema *const *)c->schemas, c->nschemas, &n, &e) != AS_OK) {
      snprintf(what, sizeof what, "node %s: its options are valid", nc->name);
      live_report(&ctx, false, what, e.message);
      continue;
    }
    a->check_live(n, live_report, &ctx);
    a->exit(n);
  }
  fprintf(out, "-- %zu checks, %zu failed\n", ctx.n, ctx.failed);
  as_config_free(c);
  if (ctx.failed) {
    return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "%zu of %zu live checks failed", ctx.failed,
                        ctx.n);
  }
  return AS_OK;
}
