/* as_test_util.h — small helpers shared by the unit tests. */
#ifndef AS_TEST_UTIL_H
#define AS_TEST_UTIL_H

#include <stddef.h>

/* A fresh temporary directory (removed by as_test_rmtree). Caller frees. */
char *as_test_tmpdir(void);
void as_test_rmtree(const char *path);
/* Writes text to DIR/NAME and returns the full path (caller frees). */
char *as_test_write_file(const char *dir, const char *name, const char *text);
/* Reads a whole file (caller frees) or NULL. */
char *as_test_read_file(const char *path, size_t *len);
/* Path under the source tree (caller frees): as_test_src_path("mappings/examples/x.yaml"). */
char *as_test_src_path(const char *rel);

/* Runs a suite (CK_FORK and CK_VERBOSITY from the environment) and returns the exit code. */
struct Suite;
int as_test_run(struct Suite *s);

#endif
