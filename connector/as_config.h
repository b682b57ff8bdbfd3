/* as_config.h — the top-level configuration file (phase two over the YAML tree).
 *
 *   # arraysync.yaml
 *   nodes:                                  # a map: node name -> settings; name = origin
 *     mongo: { kind: mongodb, uri: "${MONGODB_URI:-mongodb://127.0.0.1:27017/?replicaSet=rs0}",
 *              database: shop }
 *     pg:    { kind: postgres, dsn: "host=127.0.0.1 port=5432 dbname=shop" }
 *     lite:  { kind: sqlite, path: ./shop.db }
 *   state: ./arraysync-state.db             # state store (SQLite), relative to this file
 *   topology: { type: peer-to-peer }        # | { type: hub-and-spoke, hub: NODE }
 *                                           # | { type: ring, order: [a, b, c] }
 *   mappings: "mappings/[a-z]*.yaml"        # a glob, or a list of paths/globs (relative)
 *   batch: { max_rows: 1000, max_latency: 20ms }
 *   tombstones: { retention: 7d }
 *   log: { level: info, format: text }      # format: text | json
 *   metrics: { listen: 127.0.0.1:9187 }     # optional
 *   verify: { every: 6h, repair: false }    # optional: periodic verify inside `run`
 *   conflicts: { node: pg, table: arraysync_conflicts }  # optional: open conflicts mirrored
 *
 * Node keys other than `kind` are checked against the adapter's config map (adapter.h):
 * unknown keys are errors naming file:line:col and listing the allowed keys. Every error is
 * "FILE:LINE:COL: message". Mapping files are loaded with as_schema_load; two mappings with the
 * same name, or a topology naming an unknown node, are errors. */
#ifndef AS_CONFIG_H
#define AS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "adapter.h"
#include "as_schema.h"

typedef enum as_topology_type {
  AS_TOPO_PEER_TO_PEER = 0,
  AS_TOPO_HUB_AND_SPOKE,
  AS_TOPO_RING
} as_topology_type;

typedef struct as_config {
  char *file;                 /* path of the top-level file */
  char *dir;                  /* its directory (relative paths resolve against it) */
  as_node_config *nodes;      /* in file order */
  size_t nnodes;
  char *state_path;           /* resolved path of the state store */
  struct {
    as_topology_type type;
    char *hub;                /* hub-and-spoke */
    char **order;             /* ring: node names in ring order */
    size_t norder;
  } topology;
  as_schema **schemas;        /* every mapping, in load order */
  size_t nschemas;
  size_t batch_max_rows;      /* default 1000 */
  int64_t batch_max_latency_ms; /* default 20 */
  int64_t tombstone_retention_ms; /* default 7 days */
  int64_t settle_after_ms;        /* versions.settle_after, default 5 s; 0: off */
  char *log_level;            /* default "info" */
  char *log_format;           /* "text" (default) | "json" */
  char *metrics_listen;       /* NULL unless set */
  int64_t verify_every_ms;    /* periodic verify inside `run` (as_verify_periodic); 0 = off */
  bool verify_repair;         /* ... and repair what it finds (default false: read-only) */
  /* conflicts: { node, table }: the SQL node and table mirroring open conflicts of the
   * mappings without a conflicts block of their own (NULL: no conflicts block; a block
   * without a node takes the first SQL node). Each schema's mirror_node / mirror_table say
   * where its conflicts go, completed at load. */
  char *mirror_node;
  char *mirror_table;
} as_config;

/* Loads and validates the file and every mapping it names. AS_EINVAL with
 * "FILE:LINE:COL: message" on bad input. No connection is made. */
int as_config_load(const char *path, as_config **out, as_error *err);
void as_config_free(as_config *c);

/* The top-level keys (type, default, description, example), for help and docs. */
const as_config_entry *as_config_map(void);

const as_node_config *as_config_node(const as_config *c, const char *name);
const as_schema *as_config_schema(const as_config *c, const char *mapping);
/* A delta kept as its canonical JSON text (as_delta_to_json_string: the state store's
 * rewrites and relays, dead letters) -> *out, its mapping looked up in c. AS_EDATA when the
 * text is not JSON, else as as_delta_from_json (AS_ENOTFOUND: a mapping no longer configured,
 * AS_EINVAL: not a delta); on failure *out is left cleared. */
int as_config_delta_parse(const as_config *c, const char *text, as_delta *out, as_error *err);

#endif
