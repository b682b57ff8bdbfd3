/* cmd_help.h — `arraysync help config` and `arraysync version` (see cmd_help.c). */
#ifndef AS_CMD_HELP_H
#define AS_CMD_HELP_H

#include <stdio.h>

/* Every key of the top-level file, of each adapter kind's node options and of mapping files:
 * type, default, description, example. scripts/gen-docs.sh makes docs/CONFIG.md from it. */
void as_cmd_help_config(FILE *out);
/* "arraysync X.Y.Z" and the libraries it runs with (runtime versions where offered). */
void as_cmd_version(FILE *out);

#endif
