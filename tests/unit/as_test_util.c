#include "as_test_util.h"

#include <check.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef AS_SOURCE_DIR
#define AS_SOURCE_DIR "."
#endif

char *as_test_tmpdir(void) {
  const char *base = getenv("TMPDIR");
  char tmpl[4096];
  snprintf(tmpl, sizeof tmpl, "%s/arraysync-test-XXXXXX", base && *base ? base : "/tmp");
  char *d = mkdtemp(tmpl);
  return d ? strdup(d) : NULL;
}

void as_test_rmtree(const char *path) {
  if (!path || !*path || strcmp(path, "/") == 0) return;
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  if (system(cmd) != 0) fprintf(stderr, "as_test_rmtree: could not remove %s\n", path);
}

char *as_test_write_file(const char *dir, const char *name, const char *text) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);
  if (!p) return NULL;
  snprintf(p, n, "%s/%s", dir, name);
  FILE *f = fopen(p, "wb");
  if (!f) {
    free(p);
    return NULL;
  }
  fputs(text, f);
  fclose(f);
  return p;
}

char *as_test_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  if (!buf) return NULL;
  buf[n] = '\0';
  if (len) *len = (size_t)n;
  return buf;
}

char *as_test_src_path(const char *rel) {
  size_t n = strlen(AS_SOURCE_DIR) + strlen(rel) + 2;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/%s", AS_SOURCE_DIR, rel);
  return p;
}

int as_test_run(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_ENV);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
