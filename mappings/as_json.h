/* as_json.h — jansson loads and dumps that fail when jansson runs out of memory.
 *
 * jansson ignores some of its own allocation failures: its parser drops a character of a
 * token when the token buffer cannot grow (load.c lex_save), and its dumper drops an object
 * key the same way (dump.c, the result of dump_string for keys is not checked). Under memory
 * pressure json_loads/json_dumps can therefore return a silently different value or text
 * instead of failing (found by tests/unit/test_oom.c). The mapping layer installs a jansson
 * allocator (json_set_alloc_funcs, before main) that records a failed allocation per thread,
 * and these wrappers turn any failure during the call into an error: NULL, as jansson returns
 * for out-of-memory. Use them wherever a changed text would be a changed value. */
#ifndef AS_JSON_H
#define AS_JSON_H

#include <stddef.h>

#include <jansson.h>

/* json_loadb / json_loads; NULL also when an allocation failed (then error->text says "out of
 * memory" and json_error_code(error) is json_error_out_of_memory). */
json_t *as_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *error);
json_t *as_json_loads(const char *text, size_t flags, json_error_t *error);
/* json_dumps; NULL also when an allocation failed. Caller frees. */
char *as_json_dumps(const json_t *j, size_t flags);

#endif
