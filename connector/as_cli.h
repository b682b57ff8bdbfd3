/* as_cli.h — the read-only commands (status, dlq list; conflicts: cmd_conflicts.h) (`check` is in cmd_check.h). */
#ifndef AS_CLI_H
#define AS_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "as_config.h"

int as_cli_status(const as_config *cfg, FILE *out, bool json, as_error *err);
int as_cli_dlq_list(const as_config *cfg, FILE *out, bool json, as_error *err);

#endif
