/* fuzz_yaml.c — configuration text: the YAML reader (mappings/as_yaml.c), the mapping parser
 * (mappings/as_schema.c, then the DDL built from a mapping, mappings/as_ddl.c) and the top-level
 * config parser (connector/as_config.c). The input is a whole file.
 *
 * as_config_load takes a path: the input is written to a private temporary directory that
 * also holds a valid mapping file (m.yaml), so that `mappings:` globs and paths can resolve.
 *
 * Properties checked beyond "no crash, no leak":
 * - every error return carries a message, and config errors name the file ("FILE:...");
 * - a loaded YAML tree is well formed (maps have keys and values, scalars text);
 * - a loaded mapping is consistent: columns, key indexes in range and key columns marked,
 *   every column found again by its own field path, DDL generated for both SQL databases;
 * - a mapping that loads from the input text loads the same way from the file. */
#include <unistd.h>

#include "as_config.h"
#include "as_ddl.h"
#include "as_yaml.h"
#include "fuzz_common.h"
#include "fuzz_mappings.h"

static char dir[256];
static char cfg_path[300];
static char map_path[300];

static void cleanup(void) {
  unlink(cfg_path);
  unlink(map_path);
  rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/as-fuzz-yaml-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) abort();
  snprintf(cfg_path, sizeof cfg_path, "%s/c.yaml", dir);
  snprintf(map_path, sizeof map_path, "%s/m.yaml", dir);
  FILE *f = fopen(map_path, "w");
  if (!f || fputs(FUZZ_MAP_TEXT, f) < 0 || fclose(f) != 0) abort();
  atexit(cleanup);
  return 0;
}

static void walk(const as_ynode *n, int depth) {
  FUZZ_CHECK(depth < 10000, "YAML tree too deep");
  if (!n) return;
  FUZZ_CHECK(n->mark.line >= 1 && n->mark.col >= 1, "node without a position");
  switch (n->kind) {
    case AS_Y_SCALAR: FUZZ_CHECK(n->scalar != NULL, "scalar without text"); break;
    case AS_Y_MAP:
      for (size_t i = 0; i < n->n; i++) {
        FUZZ_CHECK(n->keys[i] != NULL && n->items[i] != NULL, "map pair %zu incomplete", i);
        FUZZ_CHECK(as_ynode_get(n, n->keys[i]) != NULL, "key %s not found again", n->keys[i]);
        walk(n->items[i], depth + 1);
      }
      break;
    case AS_Y_SEQ:
      for (size_t i = 0; i < n->n; i++) {
        FUZZ_CHECK(n->items[i] != NULL, "sequence item %zu missing", i);
        walk(n->items[i], depth + 1);
      }
      break;
    default: FUZZ_CHECK(false, "node of kind %d", (int)n->kind);
  }
}

static void check_schema(const as_schema *s) {
  as_error err = {0};
  FUZZ_CHECK(s->name && s->collection && s->table && s->ncols > 0 && s->nkey > 0,
             "incomplete mapping");
  for (size_t k = 0; k < s->nkey; k++)
    FUZZ_CHECK(s->key_idx[k] < s->ncols && s->cols[s->key_idx[k]].is_key, "key %zu", k);
  for (size_t i = 0; i < s->ncols; i++) {
    const as_column *c = &s->cols[i];
    FUZZ_CHECK(c->name && c->field, "column %zu unnamed", i);
    if (c->catch_all) {
      FUZZ_CHECK(s->catch_all_idx == (int)i, "catch-all index");
      continue;
    }
    FUZZ_CHECK(as_schema_column_index(s, c->name) == (int)i, "column %s not found by name",
               c->name);
    FUZZ_CHECK(as_schema_column_for_path(s, c->field) == (int)i, "column %s not found by path %s",
               c->name, c->field);
  }
  as_buf b = AS_BUF_INIT;
  int rc = as_ddl_postgres(s, "public", &b, &err);
  FUZZ_CHECK(rc == AS_OK, "no PostgreSQL DDL for a valid mapping: %s", err.message);
  as_buf_reset(&b);
  rc = as_ddl_sqlite(s, &b, &err);
  FUZZ_CHECK(rc == AS_OK, "no SQLite DDL for a valid mapping: %s", err.message);
  as_buf_free(&b);
}

static bool write_file(const char *path, const uint8_t *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f) return false;
  bool ok = fwrite(data, 1, size, f) == size;
  return fclose(f) == 0 && ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!dir[0]) LLVMFuzzerInitialize(NULL, NULL);
  if (size > 1 << 16) return 0;
  char *text = fuzz_cstr(data, size);
  as_error err = {0};

  as_ydoc *doc = NULL;
  int rc = as_yaml_load_string("fuzz.yaml", text, size, &doc, &err);
  FUZZ_CHECK_ERR(rc, &err);
  if (rc == AS_OK) walk(doc->root, 0);
  as_ydoc_free(doc);

  as_schema *s = NULL;
  memset(&err, 0, sizeof err);
  rc = as_schema_load_string("fuzz.yaml", text, &s, &err);
  FUZZ_CHECK_ERR(rc, &err);
  if (rc == AS_OK) check_schema(s);

  if (write_file(cfg_path, data, size)) {
    as_schema *fs = NULL;
    memset(&err, 0, sizeof err);
    int frc = as_schema_load(cfg_path, &fs, &err);
    FUZZ_CHECK_ERR(frc, &err);
    /* the text is the file's only up to a NUL byte */
    if (strlen(text) == size)
      FUZZ_CHECK((frc == AS_OK) == (rc == AS_OK), "mapping loads from %s but not from %s",
                 rc == AS_OK ? "text" : "file", rc == AS_OK ? "file" : "text");
    as_schema_free(fs);

    as_config *c = NULL;
    memset(&err, 0, sizeof err);
    int crc = as_config_load(cfg_path, &c, &err);
    FUZZ_CHECK_ERR(crc, &err);
    if (crc == AS_OK)
      for (size_t i = 0; i < c->nschemas; i++) check_schema(c->schemas[i]);
    as_config_free(c);
  }
  as_schema_free(s);
  free(text);
  return 0;
}
