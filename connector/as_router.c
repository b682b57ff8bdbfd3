/* as_router.c — see as_router.h. */
#include "as_router.h"

#include <string.h>

bool as_node_kind_is_sql(const char *kind) {
  return kind && (strcmp(kind, "postgres") == 0 || strcmp(kind, "sqlite") == 0);
}

static int ring_index(const as_config *c, const char *name) {
  for (size_t i = 0; i < c->topology.norder; i++) {
    if (strcmp(c->topology.order[i], name) == 0) return (int)i;
  }
  return -1;
}

bool as_route_pair(const as_config *c, const char *src, const char *dst) {
  if (strcmp(src, dst) == 0) return false;
  switch (c->topology.type) {
    case AS_TOPO_HUB_AND_SPOKE:
      return strcmp(src, c->topology.hub) == 0 || strcmp(dst, c->topology.hub) == 0;
    case AS_TOPO_RING: {
      int i = ring_index(c, src), j = ring_index(c, dst);
      return i >= 0 && j >= 0 && (size_t)j == ((size_t)i + 1) % c->topology.norder;
    }
    case AS_TOPO_PEER_TO_PEER:
    default:
      return true;
  }
}

bool as_route_forward(const as_config *c, const char *src, const char *dst, const char *origin,
                      bool echo, bool relayed) {
  if (!as_route_pair(c, src, dst) || echo) return false;
  if (origin && strcmp(origin, dst) == 0) return false; /* never back to its origin */
  if (!relayed) return !origin || strcmp(origin, src) == 0; /* the source's own change */
  switch (c->topology.type) {
    case AS_TOPO_HUB_AND_SPOKE:
      return strcmp(src, c->topology.hub) == 0; /* the hub passes spoke changes on */
    case AS_TOPO_RING:
      return true; /* on to the next node, until that is the origin */
    case AS_TOPO_PEER_TO_PEER:
    default:
      return false;
  }
}

bool as_route_relays(const as_config *c, const char *via, const char *origin) {
  for (size_t i = 0; i < c->nnodes; i++) {
    const char *dst = c->nodes[i].name;
    if (as_route_forward(c, via, dst, origin, false, true)) return true;
  }
  return false;
}

bool as_route_direction(const as_config *c, const as_schema *s, const char *origin,
                        const char *dst) {
  if (s->direction == AS_DIR_BOTH) return true;
  const as_node_config *o = as_config_node(c, origin);
  const as_node_config *d = as_config_node(c, dst);
  if (!o || !d) return false;
  bool from_sql = as_node_kind_is_sql(o->kind), to_sql = as_node_kind_is_sql(d->kind);
  if (s->direction == AS_DIR_TO_SQL) return !from_sql && to_sql;
  return from_sql && !to_sql; /* AS_DIR_TO_MONGO */
}
