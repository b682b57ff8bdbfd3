/* cmd_check.h — `arraysync check -c FILE` (offline part; see cmd_check.c for the output). */
#ifndef AS_CMD_CHECK_H
#define AS_CMD_CHECK_H

#include <stdio.h>

#include "as_error.h"

/* Loads and validates the configuration and its mappings, prints the DDL of each mapping and
 * the mappings of each node to out. AS_EINVAL (message in err) on bad configuration. */
int as_cmd_check(const char *config_path, FILE *out, as_error *err);

/* `check --live`: checks every node through its adapter's check_live (connections, replica
 * set, privileges, existing tables against the mappings, writable files) and the state
 * store, one line per check ("✓ ..." or "✗ ..." followed by "    fix: ..."). Changes
 * nothing. AS_OK when every check passed, AS_ERR when one failed, AS_EINVAL on bad
 * configuration. */
int as_cmd_check_live(const char *config_path, FILE *out, as_error *err);

#endif
