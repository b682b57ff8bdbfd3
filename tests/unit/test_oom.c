/* test_oom.c — allocation failures in the mapping layer and the YAML reader, as SQLite's OOM
 * tests do them: each operation runs with the Nth allocation failing, N = 1, 2, ... until the
 * operation runs without reaching an Nth allocation. Every run must either succeed with the
 * same result as without failures or return an error with a message; it must not crash, and
 * every byte allocated during the run must be freed when the caller has cleaned up.
 *
 * How: this executable defines malloc, calloc, realloc, free, posix_memalign, aligned_alloc,
 * memalign, strdup and strndup (glibc lets a program replace them; libyaml, jansson, libbson
 * and glibc's own strdup then call them), forwarding to glibc's allocator, or to
 * AddressSanitizer's in the sanitizer build. While a run is armed, allocations are counted
 * (the Nth fails) and every live block is recorded, so leaks are found without LeakSanitizer
 * too.
 *
 * libbson aborts the process when its allocator returns NULL (bson_malloc), by design: its
 * allocations go through a vtable (bson_mem_set_vtable) that is tracked but never failed. The
 * operations therefore cover our code's own allocations and those of libyaml and jansson,
 * whose failures our code must handle (jansson's dumper ignores some of its own failures:
 * mappings/as_json.h is how the mapping layer notices them; its parser is exempted, below). */
#define _GNU_SOURCE
#include <check.h>
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_bson.h"
#include "as_buf.h"
#include "as_ddl.h"
#include "as_hash.h"
#include "as_key.h"
#include "as_test_util.h"
#include "as_yaml.h"

/* ================================================================ the allocator */

/* The allocator runs before AddressSanitizer has set itself up (it allocates while doing so):
 * its functions must not be instrumented. */
#define NOASAN __attribute__((no_sanitize_address))

/* The next allocator: AddressSanitizer's when the test is built with it (its interceptors
 * are exported under these names), else glibc's. No dlsym: ASan calls malloc while it sets
 * itself up, before dlsym may be used. */
extern void *__interceptor_malloc(size_t) __attribute__((weak));
extern void *__interceptor_calloc(size_t, size_t) __attribute__((weak));
extern void *__interceptor_realloc(void *, size_t) __attribute__((weak));
extern void __interceptor_free(void *) __attribute__((weak));
extern int __interceptor_posix_memalign(void **, size_t, size_t) __attribute__((weak));
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

NOASAN static void *real_malloc(size_t n) {
  return __interceptor_malloc ? __interceptor_malloc(n) : __libc_malloc(n);
}
NOASAN static void *real_calloc(size_t a, size_t b) {
  return __interceptor_calloc ? __interceptor_calloc(a, b) : __libc_calloc(a, b);
}
NOASAN static void *real_realloc(void *p, size_t n) {
  return __interceptor_realloc ? __interceptor_realloc(p, n) : __libc_realloc(p, n);
}
NOASAN static void real_free(void *p) {
  if (__interceptor_free) __interceptor_free(p);
  else __libc_free(p);
}
NOASAN static int real_posix_memalign(void **out, size_t align, size_t n) {
  if (__interceptor_posix_memalign) return __interceptor_posix_memalign(out, align, n);
  void *p = __libc_memalign(align, n);
  if (!p) return 12; /* ENOMEM */
  *out = p;
  return 0;
}

/* The armed state: allocation number `count` fails when it equals `fail_at`. */
static bool armed;
static long count, fail_at;
static bool failed;  /* the run reached its failing allocation */
static int no_fail;  /* > 0: allocations that never fail */

/* Live blocks allocated while armed: open addressing on the pointer (TOMB marks removals). */
#define LIVE_CAP (1u << 16)
#define TOMB ((void *)1)
static void *live[LIVE_CAP];
static size_t nlive;
static bool live_overflow;

NOASAN static size_t slot_of(const void *p) {
  uintptr_t x = (uintptr_t)p;
  x ^= x >> 17;
  x *= 0x9E3779B97F4A7C15ull;
  return (size_t)(x >> 40) & (LIVE_CAP - 1);
}
NOASAN static void live_add(void *p) {
  if (!p) return;
  if (nlive + 1 >= LIVE_CAP / 2) {
    live_overflow = true;
    return;
  }
  size_t i = slot_of(p);
  while (live[i] && live[i] != TOMB) i = (i + 1) & (LIVE_CAP - 1);
  live[i] = p;
  nlive++;
}
NOASAN static void live_remove(void *p) {
  if (!p || nlive == 0) return;
  size_t i = slot_of(p);
  while (live[i]) {
    if (live[i] == p) {
      live[i] = TOMB;
      nlive--;
      return;
    }
    i = (i + 1) & (LIVE_CAP - 1);
  }
}

/* True if this allocation is to fail. */
NOASAN static bool inject(bool may_fail) {
  if (!armed || !may_fail || no_fail) return false;
  if (++count == fail_at) {
    failed = true;
    return true;
  }
  return false;
}

/* The allocator's bodies. They have names of their own: calls made here (and by the test
 * itself) are not calls to "malloc", about which the compiler assumes things (that it reads
 * no global state, for one). */
NOASAN __attribute__((noinline)) static void *do_malloc(size_t n, bool may_fail) {
  if (inject(may_fail)) return NULL;
  void *p = real_malloc(n);
  if (armed) live_add(p);
  return p;
}

NOASAN __attribute__((noinline)) static void *do_calloc(size_t a, size_t b, bool may_fail) {
  if (inject(may_fail)) return NULL;
  void *p = real_calloc(a, b);
  if (armed) live_add(p);
  return p;
}

NOASAN __attribute__((noinline)) static void *do_realloc(void *old, size_t n, bool may_fail) {
  if (inject(may_fail)) return NULL;
  void *p = real_realloc(old, n);
  if (armed && p) {
    live_remove(old);
    live_add(p);
  }
  return p;
}

NOASAN __attribute__((noinline)) static void do_free(void *p) {
  if (!p) return;
  if (armed) live_remove(p);
  real_free(p);
}

NOASAN __attribute__((noinline)) static int do_memalign(void **out, size_t align, size_t n, bool may_fail) {
  if (inject(may_fail)) return 12; /* ENOMEM */
  int rc = real_posix_memalign(out, align < sizeof(void *) ? sizeof(void *) : align, n);
  if (armed && rc == 0) live_add(*out);
  return rc;
}

NOASAN void *malloc(size_t n) { return do_malloc(n, true); }
NOASAN void *calloc(size_t a, size_t b) { return do_calloc(a, b, true); }
NOASAN void *realloc(void *old, size_t n) { return do_realloc(old, n, true); }
NOASAN void free(void *p) { do_free(p); }
NOASAN int posix_memalign(void **out, size_t align, size_t n) { return do_memalign(out, align, n, true); }
NOASAN void *aligned_alloc(size_t align, size_t n) {
  void *p = NULL;
  return do_memalign(&p, align, n, true) == 0 ? p : NULL;
}
NOASAN void *memalign(size_t align, size_t n) { return aligned_alloc(align, n); }

NOASAN char *strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = do_malloc(n, true);
  if (p) memcpy(p, s, n);
  return p;
}

NOASAN char *strndup(const char *s, size_t max) {
  size_t n = strnlen(s, max);
  char *p = do_malloc(n + 1, true);
  if (p) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

/* libbson's vtable: counted and tracked like the rest, never failed (bson_malloc aborts). */
NOASAN static void *bson_vt_malloc(size_t n) { return do_malloc(n, false); }
NOASAN static void *bson_vt_calloc(size_t a, size_t b) { return do_calloc(a, b, false); }
NOASAN static void *bson_vt_realloc(void *old, size_t n) { return do_realloc(old, n, false); }
NOASAN static void *bson_vt_aligned_alloc(size_t align, size_t n) {
  void *p = NULL;
  return do_memalign(&p, align, n, false) == 0 ? p : NULL;
}
NOASAN static void bson_vt_free(void *p) { do_free(p); }

/* jansson's parser cannot take an allocation failure: when its token buffer cannot grow it
 * drops the character (load.c lex_save ignores the result) and then either parses a changed
 * text or stops on assert(0) in lex_scan_string. That is jansson's, not ours to test: the
 * allocations made inside json_loadb/json_loads never fail here (they are still tracked).
 * Every other jansson allocation (making, changing and dumping values) does fail. */
static json_t *(*real_json_loadb)(const char *, size_t, size_t, json_error_t *);
static json_t *(*real_json_loads)(const char *, size_t, json_error_t *);

json_t *json_loadb(const char *buf, size_t len, size_t flags, json_error_t *error) {
  if (!real_json_loadb)
    real_json_loadb = (json_t * (*)(const char *, size_t, size_t, json_error_t *))
        dlsym(RTLD_NEXT, "json_loadb");
  no_fail++;
  json_t *j = real_json_loadb(buf, len, flags, error);
  no_fail--;
  return j;
}

json_t *json_loads(const char *input, size_t flags, json_error_t *error) {
  if (!real_json_loads)
    real_json_loads = (json_t * (*)(const char *, size_t, json_error_t *))
        dlsym(RTLD_NEXT, "json_loads");
  no_fail++;
  json_t *j = real_json_loads(input, flags, error);
  no_fail--;
  return j;
}

/* ================================================================ the loop */

/* One operation: runs it, checks its result against the failure-free run (`digest`: a text
 * that determines the result, written on success), frees everything. Returns its rc; an
 * error return must have set err. */
typedef int (*op_fn)(char *digest, size_t cap, as_error *err);

static void arm(long n) {
  memset(live, 0, sizeof live);
  nlive = 0;
  live_overflow = false;
  count = 0;
  fail_at = n;
  failed = false;
  armed = true;
}

static void disarm(void) { armed = false; }

/* Runs op with allocation N failing, N = 1, 2, ... until a run reaches no failure. */
static void oom_loop(const char *name, op_fn op) {
  static char want[8192], got[8192];
  as_error err = {0};
  /* twice without failures: the first run may set up libraries' lazy state (kept) */
  ck_assert_msg(op(want, sizeof want, &err) == AS_OK, "%s: %s", name, err.message);
  arm(0);
  memset(&err, 0, sizeof err);
  int rc = op(want, sizeof want, &err);
  long total = count;
  disarm();
  ck_assert_msg(rc == AS_OK, "%s: %s", name, err.message);
  ck_assert_msg(nlive == 0 && !live_overflow, "%s: %zu blocks leaked without failures", name,
                nlive);
  ck_assert_msg(total > 0, "%s: allocates nothing", name);
  long errors = 0;
  for (long n = 1;; n++) {
    memset(&err, 0, sizeof err);
    got[0] = '\0';
    arm(n);
    rc = op(got, sizeof got, &err);
    bool hit = failed;
    disarm();
    ck_assert_msg(!live_overflow, "%s: too many live blocks", name);
    ck_assert_msg(nlive == 0, "%s: allocation %ld failing leaks %zu blocks (rc %d, %s)", name, n,
                  nlive, rc, err.message);
    if (rc == AS_OK) {
      ck_assert_msg(strcmp(got, want) == 0,
                    "%s: allocation %ld failing gives a different result:\n  %s\n  %s", name, n,
                    got, want);
    } else {
      ck_assert_msg(hit, "%s: fails (%d: %s) without an allocation failure", name, rc,
                    err.message);
      ck_assert_msg(err.message[0] != '\0', "%s: allocation %ld failing: rc %d without message",
                    name, n, rc);
      errors++;
    }
    if (!hit) break;
    ck_assert_msg(n <= total + 1000, "%s: does not end", name);
  }
  ck_assert_msg(errors > 0, "%s: no allocation failure was ever reported", name);
  printf("oom %-12s %4ld allocations: %4ld failures reported as errors, %4ld absorbed\n", name,
         total, errors, total - errors);
}

/* ================================================================ the operations */

#define MAP_ALL                                        \
  "mapping: all\n"                                     \
  "key: [id, n]\n"                                     \
  "direction: both\n"                                  \
  "on_error: dead-letter\n"                            \
  "columns:\n"                                         \
  "  id:   { field: _id, type: text }\n"               \
  "  n:    { field: n, type: int64 }\n"                \
  "  b:    { field: flags.b, type: bool }\n"           \
  "  d:    { field: flags.d, type: double }\n"         \
  "  dec:  { field: money.amount, type: numeric }\n"   \
  "  t:    { field: a.b.c, type: text, required: true }\n" \
  "  by:   { field: blob, type: bytes }\n"             \
  "  u:    { field: u, type: uuid }\n"                 \
  "  o:    { field: o, type: objectid }\n"             \
  "  ts:   { field: when.ts, type: timestamptz }\n"    \
  "  dt:   { field: when.day, type: date }\n"          \
  "  j:    { field: doc, type: jsonb }\n"              \
  "  rest: { field: \"*\", type: jsonb }\n"            \
  "children:\n"                                        \
  "  - table: all_items\n"                             \
  "    field: items\n"                                 \
  "    columns:\n"                                     \
  "      sku: text\n"                                  \
  "      qty: { field: q.n, type: int64 }\n"

#define DOC_JSON                                                                               \
  "{\"_id\":\"k1\",\"n\":5,\"flags\":{\"b\":true,\"d\":1.5,\"x\":[1,2]},"                      \
  "\"money\":{\"amount\":{\"$numberDecimal\":\"12.50\"},\"cur\":\"EUR\"},"                   \
  "\"a\":{\"b\":{\"c\":\"deep\",\"d\":null},\"z\":{\"$oid\":\"0123456789abcdef01234567\"}},"   \
  "\"blob\":{\"$binary\":{\"base64\":\"AAEC\",\"subType\":\"00\"}},"                          \
  "\"u\":{\"$binary\":{\"base64\":\"ABEiM0RVZneImaq7zN3u/w==\",\"subType\":\"04\"}},"         \
  "\"o\":{\"$oid\":\"0123456789abcdef01234567\"},"                                            \
  "\"when\":{\"ts\":{\"$date\":{\"$numberLong\":\"1700000000123\"}},"                          \
  "\"day\":{\"$date\":{\"$numberLong\":\"1704067200000\"}}},"                                  \
  "\"doc\":{\"$$x\":1,\"arr\":[1,\"2\",null,{\"$numberLong\":\"5\"}]},"                        \
  "\"items\":[{\"sku\":\"a\",\"q\":{\"n\":1}}],"                                              \
  "\"extra\":[{\"q\":{\"$numberLong\":\"3\"}},{\"$numberDouble\":\"-Infinity\"}],"                   \
  "\"tags\":[\"x\",\"y\"],\"deep\":{\"e\":{\"f\":{\"g\":\"h\"}}}}"

static as_schema *schema;
static bson_t *doc;

static void setup(void) {
  as_error err;
  ck_assert_msg(as_schema_load_string("all.yaml", MAP_ALL, &schema, &err) == AS_OK, "%s",
                err.message);
  bson_error_t be;
  doc = bson_new_from_json((const uint8_t *)DOC_JSON, -1, &be);
  ck_assert_msg(doc != NULL, "%s", be.message);
}

static void teardown(void) {
  as_schema_free(schema);
  bson_destroy(doc);
}

/* FNV-1a of bytes, as hex into digest. */
static void digest_bytes(char *digest, size_t cap, const void *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ ((const uint8_t *)p)[i]) * 1099511628211ull;
  snprintf(digest, cap, "%zu:%016llx", n, (unsigned long long)h);
}

static int digest_row(char *digest, size_t cap, const as_row *r, as_error *err) {
  uint64_t h = 0;
  int rc = as_row_hash(schema, r, &h, err);
  if (rc == AS_OK) snprintf(digest, cap, "%016llx", (unsigned long long)h);
  return rc;
}

static const char YAML_TEXT[] =
    "base: &b { field: x, type: text }\n"
    "list: [1, two, \"three\", {four: 4}]\n"
    "env: \"${AS_OOM_UNSET:-fallback} and $${literal}\"\n"
    "nested:\n  - a: *b\n  - b: |\n      block\n      text\n"
    "folded: >\n  one\n  two\n";

static void ydigest(const as_ynode *n, as_buf *b) {
  if (!n) return;
  switch (n->kind) {
    case AS_Y_SCALAR: (void)as_buf_printf(b, "s%d:%d:%s;", n->mark.line, n->mark.col, n->scalar); break;
    case AS_Y_MAP:
      (void)as_buf_append_str(b, "{");
      for (size_t i = 0; i < n->n; i++) {
        (void)as_buf_printf(b, "%s=", n->keys[i]);
        ydigest(n->items[i], b);
      }
      (void)as_buf_append_str(b, "}");
      break;
    case AS_Y_SEQ:
      (void)as_buf_append_str(b, "[");
      for (size_t i = 0; i < n->n; i++) ydigest(n->items[i], b);
      (void)as_buf_append_str(b, "]");
      break;
  }
}

static int op_yaml(char *digest, size_t cap, as_error *err) {
  as_ydoc *d = NULL;
  int rc = as_yaml_load_string("oom.yaml", YAML_TEXT, sizeof YAML_TEXT - 1, &d, err);
  if (rc == AS_OK) {
    /* the digest is built with the allocator disarmed: it is the test's, not the code's */
    bool was = armed;
    armed = false;
    as_buf b = AS_BUF_INIT;
    ydigest(d->root, &b);
    snprintf(digest, cap, "%s", as_buf_cstr(&b));
    as_buf_free(&b);
    armed = was;
  }
  as_ydoc_free(d);
  return rc;
}

static int op_schema(char *digest, size_t cap, as_error *err) {
  as_schema *s = NULL;
  int rc = as_schema_load_string("oom.yaml", MAP_ALL, &s, err);
  if (rc == AS_OK) {
    as_buf b = AS_BUF_INIT;
    rc = as_ddl_postgres(s, "public", &b, err);
    if (rc == AS_OK) rc = as_ddl_sqlite(s, &b, err);
    if (rc == AS_OK) digest_bytes(digest, cap, b.data, b.len);
    as_buf_free(&b);
  }
  as_schema_free(s);
  return rc;
}

static int op_doc_to_row(char *digest, size_t cap, as_error *err) {
  as_row r = {0};
  int rc = as_doc_to_row(schema, doc, &r, err);
  if (rc == AS_OK) rc = digest_row(digest, cap, &r, err);
  as_row_clear(&r);
  return rc;
}

/* A row read without failures (allocated disarmed), for the operations that start from one. */
static as_row *fixed_row(void) {
  static as_row r;
  if (r.n == 0) {
    bool was = armed;
    armed = false;
    as_error err;
    ck_assert_msg(as_doc_to_row(schema, doc, &r, &err) == AS_OK, "%s", err.message);
    armed = was;
  }
  return &r;
}

static int op_row_to_doc(char *digest, size_t cap, as_error *err) {
  bson_t out;
  int rc = as_row_to_doc(schema, fixed_row(), &out, err);
  if (rc == AS_OK) digest_bytes(digest, cap, bson_get_data(&out), out.len);
  bson_destroy(&out);
  return rc;
}

static int op_update(char *digest, size_t cap, as_error *err) {
  as_delta d;
  memset(&d, 0, sizeof d);
  bson_t upd, filter;
  bson_init(&upd);
  bson_init(&filter);
  int rc = as_delta_init(&d, schema, AS_OP_UPDATE) != AS_OK || (as_row_clear(&d.row), as_row_copy(&d.row, fixed_row())) != AS_OK
               ? as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory")
               : AS_OK;
  if (rc == AS_OK) {
    bson_destroy(&upd);
    rc = as_delta_to_update(schema, &d, "{\"old\":1,\"tags\":[]}", &upd, err);
  }
  if (rc == AS_OK) {
    bson_destroy(&filter);
    rc = as_key_to_filter(schema, &d.row, &filter, err);
  }
  if (rc == AS_OK) {
    digest_bytes(digest, cap / 2, bson_get_data(&upd), upd.len);
    size_t n = strlen(digest);
    digest_bytes(digest + n, cap - n, bson_get_data(&filter), filter.len);
  }
  bson_destroy(&upd);
  bson_destroy(&filter);
  as_delta_clear(&d);
  return rc;
}

static int op_asjson(char *digest, size_t cap, as_error *err) {
  as_buf t = AS_BUF_INIT;
  bson_t back;
  bool arr = false;
  bson_init(&back);
  int rc = as_bson_to_asjson(doc, false, &t, err);
  if (rc == AS_OK) {
    bson_destroy(&back);
    rc = as_asjson_to_bson((const char *)t.data, t.len, &back, &arr, err);
  }
  if (rc == AS_OK) { /* no ck_assert while armed: Check allocates */
    if (back.len == doc->len && memcmp(bson_get_data(&back), bson_get_data(doc), doc->len) == 0)
      digest_bytes(digest, cap, t.data, t.len);
    else
      snprintf(digest, cap, "AS-JSON does not read back to the document");
  }
  bson_destroy(&back);
  as_buf_free(&t);
  return rc;
}

static int op_canonical(char *digest, size_t cap, as_error *err) {
  static const char j[] = "{\"b\":[1.50,1e2,-0,12345678901234567890123],\"a\":{\"z\":\"\\u00e9\","
                          "\"y\":null,\"x\":true},\"c\":\"t\\u0000x\"}";
  as_buf b = AS_BUF_INIT;
  int rc = as_json_canonicalize(j, sizeof j - 1, &b, err);
  if (rc == AS_OK) snprintf(digest, cap, "%s", as_buf_cstr(&b));
  as_buf_free(&b);
  return rc;
}

static int op_values_text(char *digest, size_t cap, as_error *err) {
  static const struct {
    as_type t;
    const char *s;
  } in[] = {{AS_T_BOOL, "yes"},
            {AS_T_INT64, "-42"},
            {AS_T_DOUBLE, "1.5e300"},
            {AS_T_DECIMAL, "-12.50"},
            {AS_T_TEXT, "h\xc3\xa9llo"},
            {AS_T_BYTES, "\\x00ff10"},
            {AS_T_UUID, "00112233-4455-6677-8899-aabbccddeeff"},
            {AS_T_OBJECTID, "0123456789abcdef01234567"},
            {AS_T_TIMESTAMP, "2024-02-29 12:34:56.123456+02:30"},
            {AS_T_DATE, "2024-02-29"},
            {AS_T_JSON, "{\"a\":[1,2.50,{\"b\":null}]}"}};
  as_buf all = AS_BUF_INIT;
  int rc = AS_OK;
  for (size_t i = 0; rc == AS_OK && i < sizeof in / sizeof *in; i++) {
    as_value v = AS_VALUE_NULL;
    char *txt = NULL;
    rc = as_value_from_text(in[i].t, in[i].s, strlen(in[i].s), &v, err);
    if (rc == AS_OK) rc = as_value_to_text(&v, &txt, err);
    if (rc == AS_OK) {
      as_buf e = AS_BUF_INIT;
      rc = as_value_encode(&v, &e, err);
      if (rc == AS_OK && (as_buf_append_str(&all, txt) != AS_OK ||
                          as_buf_append(&all, e.data, e.len) != AS_OK))
        rc = as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory (test buffer)");
      as_buf_free(&e);
    }
    free(txt);
    as_value_clear(&v);
  }
  if (rc == AS_OK) digest_bytes(digest, cap, all.data, all.len);
  as_buf_free(&all);
  return rc;
}

static const as_schema *lookup(void *ctx, const char *name) {
  (void)ctx;
  return strcmp(name, schema->name) == 0 ? schema : NULL;
}

static int op_delta_json(char *digest, size_t cap, as_error *err) {
  as_delta d, back;
  memset(&d, 0, sizeof d);
  memset(&back, 0, sizeof back);
  char *s1 = NULL, *s2 = NULL;
  json_t *j = NULL;
  int rc = as_delta_init(&d, schema, AS_OP_INSERT) != AS_OK || (as_row_clear(&d.row), as_row_copy(&d.row, fixed_row())) != AS_OK ||
                   as_delta_set_origin(&d, "mongo") != AS_OK || as_delta_set_pos(&d, "42") != AS_OK ||
                   as_delta_vv_set(&d, "b", 2) != AS_OK || as_delta_vv_set(&d, "a", 1) != AS_OK
               ? as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory")
               : AS_OK;
  if (rc == AS_OK && !(s1 = as_delta_to_json_string(&d, err))) rc = AS_ERR;
  if (rc == AS_OK) {
    json_error_t je;
    j = json_loads(s1, JSON_ALLOW_NUL, &je);
    if (!j) rc = as_error_set(err, AS_DOM_CODEC, AS_ERR, "cannot load: %s", je.text);
  }
  if (rc == AS_OK) rc = as_delta_from_json(j, lookup, NULL, &back, err);
  if (rc == AS_OK && !(s2 = as_delta_to_json_string(&back, err))) rc = AS_ERR;
  if (rc == AS_OK) {
    if (strcmp(s1, s2) == 0)
      digest_bytes(digest, cap, s1, strlen(s1));
    else
      snprintf(digest, cap, "delta JSON is not a fixed point: %s / %s", s1, s2);
  }
  free(s1);
  free(s2);
  json_decref(j);
  as_delta_clear(&d);
  as_delta_clear(&back);
  return rc;
}

static int op_key(char *digest, size_t cap, as_error *err) {
  as_row r = {0};
  char *k = NULL;
  int rc = as_row_init(&r, schema->ncols) == AS_OK
               ? as_key_parse(schema, "{\"id\":\"k\\u00e9\",\"n\":-7}", &r, err)
               : as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
  if (rc == AS_OK && !(k = as_key_json_dup(schema, &r, err))) rc = AS_ERR;
  if (rc == AS_OK) snprintf(digest, cap, "%s", k);
  free(k);
  as_row_clear(&r);
  return rc;
}

static int op_hash(char *digest, size_t cap, as_error *err) {
  uint64_t h = 0, k = 0;
  int rc = as_row_hash(schema, fixed_row(), &h, err);
  if (rc == AS_OK) rc = as_row_key_hash(schema, fixed_row(), &k, err);
  if (rc == AS_OK) snprintf(digest, cap, "%016llx %016llx", (unsigned long long)h, (unsigned long long)k);
  return rc;
}

#define OOM_TEST(name)                 \
  START_TEST(oom_##name) {             \
    oom_loop(#name, op_##name);        \
  }                                    \
  END_TEST

OOM_TEST(yaml)
OOM_TEST(schema)
OOM_TEST(doc_to_row)
OOM_TEST(row_to_doc)
OOM_TEST(update)
OOM_TEST(asjson)
OOM_TEST(canonical)
OOM_TEST(values_text)
OOM_TEST(delta_json)
OOM_TEST(key)
OOM_TEST(hash)

/* The harness itself: an allocation failure is seen, and a leak is found. */
START_TEST(harness) {
  arm(1);
  void *p = do_malloc(16, true);
  bool hit = failed;
  void *q = do_malloc(16, true);
  size_t n = nlive;
  disarm();
  ck_assert(p == NULL && hit);
  ck_assert(q != NULL && n == 1);
  do_free(q);
  arm(0);
  char *s = strdup("x");
  n = nlive;
  do_free(s);
  ck_assert(n == 1 && nlive == 0);
  disarm();
}
END_TEST

int main(void) {
  bson_mem_vtable_t vt = {.malloc = bson_vt_malloc,
                          .calloc = bson_vt_calloc,
                          .realloc = bson_vt_realloc,
                          .free = bson_vt_free,
                          .aligned_alloc = bson_vt_aligned_alloc};
  bson_mem_set_vtable(&vt);
  Suite *s = suite_create("oom");
  TCase *tc = tcase_create("oom");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, harness);
  tcase_add_test(tc, oom_yaml);
  tcase_add_test(tc, oom_schema);
  tcase_add_test(tc, oom_doc_to_row);
  tcase_add_test(tc, oom_row_to_doc);
  tcase_add_test(tc, oom_update);
  tcase_add_test(tc, oom_asjson);
  tcase_add_test(tc, oom_canonical);
  tcase_add_test(tc, oom_values_text);
  tcase_add_test(tc, oom_delta_json);
  tcase_add_test(tc, oom_key);
  tcase_add_test(tc, oom_hash);
  suite_add_tcase(s, tc);
  return as_test_run(s);
}
