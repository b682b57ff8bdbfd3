/* cmd_conflicts.h — `arraysync conflicts list | show | resolve` (cmd_conflicts.c).
 *
 * list and show only read the state store. resolve writes the chosen row on one node as an
 * ordinary local change there (unmarked, so capture sees it as that node's own change), which
 * the connector then sends to every node as a change newer than both versions — the same
 * whether `arraysync run` is running (it picks the change up at once) or not (at its next
 * start) — and marks the conflict resolved. */
#ifndef AS_CMD_CONFLICTS_H
#define AS_CMD_CONFLICTS_H

/* argv[0] is "conflicts". Returns the process exit code: 0 done, 1 runtime error (unknown
 * conflict, already resolved, a node failed; resolve --all: some conflicts not resolved), 2 bad
 * usage or configuration (unknown node, a --row file that does not parse or names unknown
 * columns). */
int as_cmd_conflicts(int argc, char **argv);

#endif
