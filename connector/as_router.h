/* as_router.h — topology (DESIGN.md §7): which node pairs exchange deltas, and whether a
 * delta captured at one node goes on to another.
 *
 * Each pair (source -> target) is one stream with its own checkpoint committed in the target.
 * A delta carries its origin; a delta captured from a write the connector applied is an echo.
 *   peer-to-peer:  pairs between every two nodes; only a node's own changes are sent (echoes
 *                  never travel: every node hears every origin directly).
 *   hub-and-spoke: pairs spoke<->hub; a spoke's own changes go to the hub, the hub sends its
 *                  own changes and the echoes of spoke changes to every other spoke.
 *   ring:          pairs node -> next node; changes travel around and stop before they would
 *                  return to their origin.
 * A delta is never sent to its origin. Per mapping, `direction: to-sql` delivers only changes
 * that originated on a MongoDB node to SQL nodes, `to-mongo` the reverse; `both` everything. */
#ifndef AS_ROUTER_H
#define AS_ROUTER_H

#include <stdbool.h>

#include "as_config.h"

bool as_route_pair(const as_config *c, const char *src, const char *dst);
bool as_route_forward(const as_config *c, const char *src, const char *dst, const char *origin,
                      bool echo);
/* direction check for one mapping: origin node kind -> target node kind. */
bool as_route_direction(const as_config *c, const as_schema *s, const char *origin,
                        const char *dst);
bool as_node_kind_is_sql(const char *kind);

#endif
