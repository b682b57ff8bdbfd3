/* as_router.h — topology: which node pairs exchange deltas, and which node passes a change on.
 *
 * Each pair (source -> target) is one stream with its own checkpoint committed in the target.
 * A pair sends the changes made on its source (captured there), and the changes its source
 * relays: a change the connector applied to a node is written to the state store's relay log
 * for that node, in the same transaction as its version, when the topology has that node pass
 * it on; the node's outgoing pairs read it from there. A write of the connector captured back
 * from a node (an echo) is never sent: relays carry exactly what was applied, with its
 * version, and do not depend on the write showing up in the node's change capture (a write
 * that changes nothing, e.g. deleting a row already gone, shows up nowhere).
 *   peer-to-peer:  pairs between every two nodes; nothing is relayed (every node hears every
 *                  origin directly).
 *   hub-and-spoke: pairs spoke<->hub; the hub relays a spoke's change to every other spoke.
 *   ring:          pairs node -> next node; each node relays to the next until the next would
 *                  be the change's origin.
 * A change is never sent to its origin. Per mapping, `direction: to-sql` delivers only changes
 * that originated on a MongoDB node to SQL nodes, `to-mongo` the reverse; `both` everything. */
#ifndef AS_ROUTER_H
#define AS_ROUTER_H

#include <stdbool.h>

#include "as_config.h"

/* Whether src -> dst is a stream of the topology. */
bool as_route_pair(const as_config *c, const char *src, const char *dst);
/* Whether the pair src -> dst sends a change of `origin` read from src: captured there (origin
 * = src) or relayed by src (relayed = true). Echoes are never sent. */
bool as_route_forward(const as_config *c, const char *src, const char *dst, const char *origin,
                      bool echo, bool relayed);
/* Whether `via` passes a change of `origin` applied to it on to any node (then it is written
 * to the relay log for `via`). */
bool as_route_relays(const as_config *c, const char *via, const char *origin);
/* direction check for one mapping: origin node kind -> target node kind. */
bool as_route_direction(const as_config *c, const as_schema *s, const char *origin,
                        const char *dst);
bool as_node_kind_is_sql(const char *kind);

#endif
