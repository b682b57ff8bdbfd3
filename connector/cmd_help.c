/* cmd_help.c — `arraysync help config` (every configuration key, printed from the config maps
 * themselves so it cannot drift; scripts/gen-docs.sh turns it into docs/CONFIG.md) and
 * `arraysync version` (the libraries the binary runs with). */
#include "cmd_help.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <lua.h>
#include <microhttpd.h>
#include <xxhash.h>
#include <yaml.h>

#include "adapter.h"
#include "as_cfgmap.h"
#include "as_config.h"

#ifndef ARRAYSYNC_VERSION
#define ARRAYSYNC_VERSION "0.0.0"
#endif

void as_cmd_help_config(FILE *out) {
  fprintf(out,
          "ARRAYSYNC CONFIGURATION REFERENCE\n"
          "Printed by `arraysync help config` from the tables the parsers use. Every value may\n"
          "use ${VAR} or ${VAR:-default} (environment). Types: string; secret (a string never\n"
          "logged); bool (true/false, yes/no, on/off); integer; duration (250ms, 30s, 5m, 1h, 2d;\n"
          "a plain number is seconds); size (bytes, or with k, M, G, T: 64k, 16MiB); one of (the\n"
          "values listed); path; map; list.\n"
          "\n"
          "TOP-LEVEL FILE (arraysync -c FILE)\n");
  as_cfgmap_print(as_config_map(), out, 2, NULL);
  const as_adapter *const *all = as_adapter_all();
  for (size_t i = 0; all[i]; i++) {
    fprintf(out, "\nNODE OPTIONS: kind: %s (nodes.NAME.KEY)\n", all[i]->kind);
    as_cfgmap_print(all[i]->config_map, out, 2, NULL);
  }
  fprintf(out, "\nMAPPING FILE (one per collection <-> table, named by `mappings`)\n");
  as_cfgmap_print(as_schema_config_map(), out, 2, NULL);
}

static void print_lib(void *ctx, const char *lib, const char *version) {
  fprintf((FILE *)ctx, "  %-13s %s\n", lib, version);
}

void as_cmd_version(FILE *out) {
  fprintf(out, "arraysync %s\n", ARRAYSYNC_VERSION);
  fprintf(out, "libraries (versions at run time):\n");
  const as_adapter *const *all = as_adapter_all();
  for (size_t i = 0; all[i]; i++) {
    if (all[i]->versions) all[i]->versions(print_lib, out);
  }
  char buf[64];
  snprintf(buf, sizeof buf, "%s (built with %s)", jansson_version_str(), JANSSON_VERSION);
  print_lib(out, "jansson", buf);
  print_lib(out, "libyaml", yaml_get_version_string());
  print_lib(out, "libmicrohttpd", MHD_get_version());
  unsigned xv = XXH_versionNumber();
  snprintf(buf, sizeof buf, "%u.%u.%u", xv / 10000, xv / 100 % 100, xv % 100);
  print_lib(out, "xxHash", buf);
  /* Lua 5.4 reports only its version number at run time (lua_version ignores its state) */
  lua_Number lv = lua_version(NULL);
  snprintf(buf, sizeof buf, "%d.%d (built with %s)", (int)lv / 100, (int)lv % 100, LUA_RELEASE);
  print_lib(out, "Lua", buf);
}
