/* fuzz_json.c — the JSON decoders and writers: AS-JSON (as_asjson_read.c/as_asjson_write.c),
 * canonical JSON (as_hash.c as_json_canonicalize), the canonical JSON forms of values and
 * deltas (as_row.c) and key text (as_key.c). The input is JSON text of any shape.
 *
 * Properties checked beyond "no crash, no leak":
 * - AS-JSON: text -> BSON -> text' -> BSON': BSON' == BSON byte for byte, and text' is a fixed
 *   point (writing BSON' gives text' again).
 * - canonical JSON: canonicalize(canonicalize(x)) == canonicalize(x).
 * - value JSON: from_json(x) = v -> to_json(v) -> from_json = v' with v == v', the same hash
 *   encoding, and to_json(v') dumped the same as to_json(v); typed conversion the same way.
 * - delta JSON: from_json -> to_json -> from_json gives the same op and row; key text
 *   parse -> write -> parse -> write is a fixed point.
 * - every error return carries a message. */
#include <bson/bson.h>
#include <jansson.h>

#include "as_bson.h"
#include "as_hash.h"
#include "as_key.h"
#include "fuzz_common.h"
#include "fuzz_mappings.h"

static as_schema *all_schema;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  all_schema = fuzz_schema(FUZZ_MAP_ALL);
  return 0;
}

static const as_schema *lookup(void *ctx, const char *name) {
  (void)ctx;
  return strcmp(name, all_schema->name) == 0 ? all_schema : NULL;
}

static void check_asjson(const char *text, size_t len) {
  bson_t b1, b2;
  bool arr = false, arr2 = false;
  as_error err = {0};
  as_buf t1 = AS_BUF_INIT, t2 = AS_BUF_INIT;
  int rc = as_asjson_to_bson(text, len, &b1, &arr, &err);
  FUZZ_CHECK_ERR(rc, &err);
  if (rc != AS_OK) {
    bson_destroy(&b1);
    return;
  }
  rc = as_bson_to_asjson(&b1, arr, &t1, &err);
  FUZZ_CHECK(rc == AS_OK, "AS-JSON read but not written back: %s", err.message);
  rc = as_asjson_to_bson((const char *)t1.data, t1.len, &b2, &arr2, &err);
  FUZZ_CHECK(rc == AS_OK, "written AS-JSON does not read back: %s\n  %s", err.message,
             as_buf_cstr(&t1));
  FUZZ_CHECK(arr == arr2, "array flag changed");
  FUZZ_CHECK(b1.len == b2.len && memcmp(bson_get_data(&b1), bson_get_data(&b2), b1.len) == 0,
             "AS-JSON -> BSON -> AS-JSON -> BSON changed the document\n  %s", as_buf_cstr(&t1));
  rc = as_bson_to_asjson(&b2, arr2, &t2, &err);
  FUZZ_CHECK(rc == AS_OK && t1.len == t2.len && memcmp(t1.data, t2.data, t1.len) == 0,
             "AS-JSON writer is not a fixed point");
  bson_destroy(&b1);
  bson_destroy(&b2);
  as_buf_free(&t1);
  as_buf_free(&t2);
}

static void check_canonical(const char *text, size_t len) {
  as_buf c1 = AS_BUF_INIT, c2 = AS_BUF_INIT;
  as_error err = {0};
  int rc = as_json_canonicalize(text, len, &c1, &err);
  FUZZ_CHECK_ERR(rc, &err);
  if (rc == AS_OK) {
    rc = as_json_canonicalize((const char *)c1.data, c1.len, &c2, &err);
    FUZZ_CHECK(rc == AS_OK, "canonical JSON does not canonicalize: %s\n  %s", err.message,
               as_buf_cstr(&c1));
    FUZZ_CHECK(c1.len == c2.len && memcmp(c1.data, c2.data, c1.len) == 0,
               "canonical JSON is not a fixed point\n  once:  %s\n  twice: %s", as_buf_cstr(&c1),
               as_buf_cstr(&c2));
  }
  as_buf_free(&c1);
  as_buf_free(&c2);
}

/* v == w, their hash encodings equal, and their JSON forms the same text. */
static void check_same_value(const as_value *v, const as_value *w, const char *what) {
  as_error err = {0};
  FUZZ_CHECK(as_value_equal(v, w), "%s: value changed through its JSON form", what);
  as_buf e1 = AS_BUF_INIT, e2 = AS_BUF_INIT;
  int r1 = as_value_encode(v, &e1, &err), r2 = as_value_encode(w, &e2, &err);
  FUZZ_CHECK(r1 == AS_OK && r2 == AS_OK, "%s: cannot encode: %s", what, err.message);
  FUZZ_CHECK(e1.len == e2.len && memcmp(e1.data, e2.data, e1.len) == 0,
             "%s: equal values encode (hash) differently", what);
  as_buf_free(&e1);
  as_buf_free(&e2);
}

static void check_value_roundtrip(const as_value *v, const char *what) {
  as_error err = {0};
  json_t *j1 = as_value_to_json(v, &err);
  FUZZ_CHECK(j1 != NULL, "%s: value has no JSON form: %s", what, err.message);
  as_value w = AS_VALUE_NULL;
  int rc = as_value_from_json(j1, &w, &err);
  char *s1 = json_dumps(j1, JSON_COMPACT | JSON_ENCODE_ANY);
  FUZZ_CHECK(rc == AS_OK, "%s: JSON form does not read back: %s\n  %s", what, err.message,
             s1 ? s1 : "?");
  check_same_value(v, &w, what);
  json_t *j2 = as_value_to_json(&w, &err);
  FUZZ_CHECK(j2 != NULL, "%s: second JSON form: %s", what, err.message);
  char *s2 = json_dumps(j2, JSON_COMPACT | JSON_ENCODE_ANY);
  FUZZ_CHECK(s1 && s2 && strcmp(s1, s2) == 0, "%s: JSON form is not a fixed point\n  %s\n  %s",
             what, s1 ? s1 : "?", s2 ? s2 : "?");
  free(s1);
  free(s2);
  json_decref(j1);
  json_decref(j2);
  as_value_clear(&w);
}

static void check_values(const json_t *j) {
  as_error err = {0};
  as_value v = AS_VALUE_NULL;
  int rc = as_value_from_json(j, &v, &err);
  FUZZ_CHECK_ERR(rc, &err);
  if (rc == AS_OK) check_value_roundtrip(&v, "as_value_from_json");
  as_value_clear(&v);
  for (int t = 0; t < AS_T__COUNT; t++) {
    as_value tv = AS_VALUE_NULL;
    memset(&err, 0, sizeof err);
    rc = as_value_from_json_typed(j, (as_type)t, &tv, &err);
    FUZZ_CHECK_ERR(rc, &err);
    if (rc == AS_OK) {
      FUZZ_CHECK(tv.type == (as_type)t || tv.type == AS_T_NULL, "typed %s gave a %s",
                 as_type_name((as_type)t), as_type_name(tv.type));
      check_value_roundtrip(&tv, as_type_name((as_type)t));
    }
    as_value_clear(&tv);
  }
}

static void check_delta(const json_t *j) {
  as_error err = {0};
  as_delta d1, d2;
  memset(&d1, 0, sizeof d1);
  memset(&d2, 0, sizeof d2);
  int rc = as_delta_from_json(j, lookup, NULL, &d1, &err);
  FUZZ_CHECK_ERR(rc, &err);
  if (rc != AS_OK) return;
  char *s1 = as_delta_to_json_string(&d1, &err);
  FUZZ_CHECK(s1 != NULL, "delta read but not written: %s", err.message);
  json_error_t je;
  json_t *j1 = json_loads(s1, JSON_ALLOW_NUL, &je);
  FUZZ_CHECK(j1 != NULL, "delta JSON written is not JSON: %s\n  %s", je.text, s1);
  rc = as_delta_from_json(j1, lookup, NULL, &d2, &err);
  FUZZ_CHECK(rc == AS_OK, "written delta does not read back: %s\n  %s", err.message, s1);
  size_t col = 0;
  FUZZ_CHECK(d1.op == d2.op && fuzz_rows_equal(&d1.row, &d2.row, &col),
             "delta changed through its JSON form (column %zu)\n  %s", col, s1);
  char *s2 = as_delta_to_json_string(&d2, &err);
  FUZZ_CHECK(s2 && strcmp(s1, s2) == 0, "delta JSON is not a fixed point\n  %s\n  %s", s1,
             s2 ? s2 : "?");
  if (d1.op == AS_OP_INSERT) {
    uint64_t h1, h2;
    FUZZ_CHECK(as_row_hash(all_schema, &d1.row, &h1, &err) == AS_OK &&
                   as_row_hash(all_schema, &d2.row, &h2, &err) == AS_OK && h1 == h2,
               "equal rows hash differently");
  }
  free(s1);
  free(s2);
  json_decref(j1);
  as_delta_clear(&d1);
  as_delta_clear(&d2);
}

static void check_key(const char *text) {
  as_error err = {0};
  as_row r1 = {0}, r2 = {0};
  if (as_row_init(&r1, all_schema->ncols) != AS_OK || as_row_init(&r2, all_schema->ncols) != AS_OK)
    abort();
  int rc = as_key_parse(all_schema, text, &r1, &err);
  FUZZ_CHECK_ERR(rc, &err);
  if (rc == AS_OK) {
    char *k1 = as_key_json_dup(all_schema, &r1, &err);
    FUZZ_CHECK(k1 != NULL, "key parsed but not written: %s", err.message);
    rc = as_key_parse(all_schema, k1, &r2, &err);
    FUZZ_CHECK(rc == AS_OK, "written key does not parse: %s\n  %s", err.message, k1);
    char *k2 = as_key_json_dup(all_schema, &r2, &err);
    FUZZ_CHECK(k2 && strcmp(k1, k2) == 0, "key text is not a fixed point\n  %s\n  %s", k1,
               k2 ? k2 : "?");
    uint64_t h1, h2;
    FUZZ_CHECK(as_row_key_hash(all_schema, &r1, &h1, &err) == AS_OK &&
                   as_row_key_hash(all_schema, &r2, &h2, &err) == AS_OK && h1 == h2,
               "equal keys hash differently\n  %s", k1);
    free(k1);
    free(k2);
  }
  as_row_clear(&r1);
  as_row_clear(&r2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!all_schema) LLVMFuzzerInitialize(NULL, NULL);
  if (size > 1 << 16) return 0;
  char *text = fuzz_cstr(data, size);
  check_asjson(text, size);
  check_canonical(text, size);
  json_error_t je;
  json_t *j = json_loadb(text, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
  if (j) {
    check_values(j);
    check_delta(j);
    json_decref(j);
  }
  if (strlen(text) == size) check_key(text);
  free(text);
  return 0;
}
