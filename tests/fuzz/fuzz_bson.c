/* fuzz_bson.c — raw BSON bytes through our BSON reader (as_bsonr.h) and the mapping layer
 * (as_bson.h): document -> row -> document through fixed mappings (fuzz_mappings.h), keys,
 * filters, updates, and BSON -> AS-JSON -> BSON.
 *
 * The input is a BSON document; when its length field or final byte is wrong they are set
 * (so that the fuzzer spends its time on the elements), except when the input is shorter than
 * 5 bytes.
 *
 * Properties checked beyond "no crash, no leak":
 * - as_bsonr accepts exactly the documents libbson accepts (bson_validate and its iterator:
 *   structure), where every key is UTF-8 (libbson refuses some other keys, as_bsonr reads
 *   them: the mapping layer refuses them where it writes them out).
 * - doc -> row -> doc -> row: both rows equal (as_value_equal) and hash equal; the key read
 *   alone equals the row's key columns; filter and $set/$unset update are built.
 * - lossless mappings (an _id key of the right type first, the catch-all for the rest, no
 *   repeated top-level field): doc -> row -> doc gives the input document back.
 * - BSON -> AS-JSON -> BSON gives the same document, AS-JSON a fixed point.
 * ("The same document": the same bytes except NaN payloads and non-canonical Decimal128
 * encodings, which come back as the same value in canonical form.)
 * - every error return carries a message. */
#include <bson/bson.h>
#include <math.h>

#include "as_bson.h"
#include "as_bson_priv.h" /* as_dec128_to_str */
#include "as_bsonr.h"
#include "as_hash.h"
#include "fuzz_common.h"
#include "fuzz_mappings.h"

static as_schema *schemas[3];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  schemas[0] = fuzz_schema(FUZZ_MAP_ALL);
  schemas[1] = fuzz_schema(FUZZ_MAP_OID);
  schemas[2] = fuzz_schema(FUZZ_MAP_TEXT);
  return 0;
}

/* Keys that are not UTF-8 (libbson's validation refuses them; as_bsonr reads them, and the
 * mapping layer refuses them where it writes them out: AS-JSON, the catch-all). */
static bool bad_key;

/* Walks every element at every depth: AS_OK or AS_EDATA. */
static int walk(as_bsonr *r, int depth) {
  as_bsonr_el e;
  int more;
  if (depth > 200) return AS_OK; /* libbson's own recursion limit is far beyond inputs here */
  while ((more = as_bsonr_next(r, &e)) == 1) {
    if (!as_utf8_valid(e.key, e.keylen)) bad_key = true;
    as_bsonr child;
    if (e.type == BSON_TYPE_DOCUMENT || e.type == BSON_TYPE_ARRAY) {
      if (as_bsonr_child(&e, &child) != AS_OK || walk(&child, depth + 1) != AS_OK) return AS_EDATA;
    } else if (e.type == BSON_TYPE_CODEWSCOPE) {
      uint32_t len, slen;
      const uint8_t *scope;
      (void)as_bsonr_codewscope(&e, &len, &scope, &slen);
      if (as_bsonr_init(&child, scope, slen) != AS_OK || walk(&child, depth + 1) != AS_OK)
        return AS_EDATA;
    }
  }
  return more == 0 ? AS_OK : AS_EDATA;
}

/* libbson's own iteration of every element at every depth reaches the end without error.
 * (bson_validate alone is more lenient: an element of an unknown type ends its walk
 * without an error, and such a document passes.) */
static bool libbson_walk(const bson_t *doc, int depth) {
  bson_iter_t it;
  if (depth > 200) return true;
  if (!bson_iter_init(&it, doc)) return false;
  while (bson_iter_next(&it)) {
    if (BSON_ITER_HOLDS_DOCUMENT(&it) || BSON_ITER_HOLDS_ARRAY(&it)) {
      const uint8_t *p;
      uint32_t n;
      bson_t child;
      if (BSON_ITER_HOLDS_DOCUMENT(&it)) bson_iter_document(&it, &n, &p);
      else bson_iter_array(&it, &n, &p);
      if (!p || !bson_init_static(&child, p, n) || !libbson_walk(&child, depth + 1)) return false;
    } else if (BSON_ITER_HOLDS_CODEWSCOPE(&it)) {
      const uint8_t *p;
      uint32_t n, cl;
      bson_t scope;
      const char *code = bson_iter_codewscope(&it, &cl, &n, &p);
      /* the code is a BSON string, which ends with a NUL (string ::= int32 (byte*) "\x00");
       * libbson 1.23 iterates one whose last byte is not NUL, as_bsonr refuses it (found by
       * this target: regressions/fuzz_bson/codewscope-code-without-nul.bson) */
      if (!code || code[cl] != '\0') return false;
      if (!p || !bson_init_static(&scope, p, n) || !libbson_walk(&scope, depth + 1)) return false;
    }
  }
  return it.err_off == 0;
}

/* Same elements, types, keys and values; any two NaN doubles are equal; the keys of array
 * elements are not compared (BSON says they are "0", "1", ...; a writer that put other keys
 * there gets the array back with those). */
static bool same_doc(as_bsonr a, as_bsonr b, bool array) {
  as_bsonr_el x, y;
  int ma, mb;
  for (;;) {
    ma = as_bsonr_next(&a, &x);
    mb = as_bsonr_next(&b, &y);
    if (ma != mb) return false;
    if (ma != 1) return ma == 0;
    if (x.type != y.type ||
        (!array && (x.keylen != y.keylen || memcmp(x.key, y.key, x.keylen) != 0)))
      return false;
    if (x.type == BSON_TYPE_DOCUMENT || x.type == BSON_TYPE_ARRAY) {
      as_bsonr ca, cb;
      if (as_bsonr_child(&x, &ca) != AS_OK || as_bsonr_child(&y, &cb) != AS_OK) return false;
      if (!same_doc(ca, cb, x.type == BSON_TYPE_ARRAY)) return false;
    } else if (x.type == BSON_TYPE_DOUBLE && isnan(as_bsonr_double(&x))) {
      if (!isnan(as_bsonr_double(&y))) return false;
    } else if (x.type == BSON_TYPE_DECIMAL128) {
      /* by value: a non-canonical encoding (coefficient beyond 34 digits, read as 0) comes
       * back in its canonical form, as a NaN comes back without its payload */
      bson_decimal128_t dx, dy;
      char sx[BSON_DECIMAL128_STRING], sy[BSON_DECIMAL128_STRING];
      as_bsonr_dec128(&x, &dx);
      as_bsonr_dec128(&y, &dy);
      (void)as_dec128_to_str(&dx, sx); /* the mapping layer's reading of the value */
      (void)as_dec128_to_str(&dy, sy);
      if (strcmp(sx, sy) != 0) return false;
    } else if (x.vlen != y.vlen || memcmp(x.val, y.val, x.vlen) != 0) {
      return false;
    }
  }
}

static bool dup_top_keys(const bson_t *doc) {
  as_bsonr a, b;
  as_bsonr_el x, y;
  if (as_bsonr_init_doc(&a, doc) != AS_OK) return true;
  while (as_bsonr_next(&a, &x) == 1) {
    b = a;
    while (as_bsonr_next(&b, &y) == 1)
      if (x.keylen == y.keylen && memcmp(x.key, y.key, x.keylen) == 0) return true;
  }
  return false;
}

static void check_asjson(const bson_t *doc) {
  as_buf t1 = AS_BUF_INIT, t2 = AS_BUF_INIT;
  as_error err = {0};
  bson_t b2;
  bool arr = false;
  int rc = as_bson_to_asjson(doc, false, &t1, &err);
  FUZZ_CHECK_ERR(rc, &err);
  if (rc == AS_OK) {
    rc = as_asjson_to_bson((const char *)t1.data, t1.len, &b2, &arr, &err);
    FUZZ_CHECK(rc == AS_OK && !arr, "written AS-JSON does not read back: %s\n  %s", err.message,
               as_buf_cstr(&t1));
    as_bsonr a, b;
    FUZZ_CHECK(as_bsonr_init_doc(&a, doc) == AS_OK && as_bsonr_init_doc(&b, &b2) == AS_OK &&
                   same_doc(a, b, false),
               "BSON -> AS-JSON -> BSON changed the document\n  %s", as_buf_cstr(&t1));
    rc = as_bson_to_asjson(&b2, false, &t2, &err);
    FUZZ_CHECK(rc == AS_OK && t1.len == t2.len && memcmp(t1.data, t2.data, t1.len) == 0,
               "AS-JSON writer is not a fixed point\n  %s", as_buf_cstr(&t1));
    bson_destroy(&b2);
  }
  as_buf_free(&t1);
  as_buf_free(&t2);
}

static void check_rows_hash(const as_schema *s, const as_row *a, const as_row *b) {
  uint64_t h1, h2, k1, k2;
  as_error err = {0};
  FUZZ_CHECK(as_row_hash(s, a, &h1, &err) == AS_OK && as_row_hash(s, b, &h2, &err) == AS_OK,
             "cannot hash: %s", err.message);
  FUZZ_CHECK(h1 == h2, "mapping %s: equal rows hash differently", s->name);
  FUZZ_CHECK(as_row_key_hash(s, a, &k1, &err) == AS_OK &&
                 as_row_key_hash(s, b, &k2, &err) == AS_OK && k1 == k2,
             "mapping %s: equal keys hash differently", s->name);
}

static void check_update(const as_schema *s, const as_row *r) {
  as_delta d;
  as_error err = {0};
  bson_t upd, filter;
  if (as_delta_init(&d, s, AS_OP_UPDATE) != AS_OK || (as_row_clear(&d.row), as_row_copy(&d.row, r)) != AS_OK) abort();
  const char *prev = NULL;
  if (s->catch_all_idx >= 0 && r->v[s->catch_all_idx].type == AS_T_JSON)
    prev = r->v[s->catch_all_idx].u.s.ptr;
  int rc = as_delta_to_update(s, &d, prev, &upd, &err);
  FUZZ_CHECK(rc == AS_OK, "mapping %s: no update for a mapped row: %s", s->name, err.message);
  rc = as_key_to_filter(s, r, &filter, &err);
  FUZZ_CHECK(rc == AS_OK, "mapping %s: no filter for a mapped row: %s", s->name, err.message);
  bson_destroy(&upd);
  bson_destroy(&filter);
  as_delta_clear(&d);
}

static bool lossless_input(const as_schema *s, const bson_t *doc) {
  if (s->catch_all_idx < 0 || s->ncols != 2) return false;
  as_bsonr r;
  as_bsonr_el e;
  if (as_bsonr_init_doc(&r, doc) != AS_OK || as_bsonr_next(&r, &e) != 1) return false;
  if (strcmp(e.key, "_id") != 0) return false;
  as_type t = s->cols[s->key_idx[0]].type;
  if (!((t == AS_T_OBJECTID && e.type == BSON_TYPE_OID) ||
        (t == AS_T_TEXT && e.type == BSON_TYPE_UTF8)))
    return false;
  return !dup_top_keys(doc);
}

static void check_mapping(const as_schema *s, const bson_t *doc) {
  as_row r1 = {0}, r2 = {0}, k = {0};
  as_error err = {0};
  bson_t d2;
  int rc = as_doc_to_row(s, doc, &r1, &err);
  FUZZ_CHECK_ERR(rc, &err);
  int krc = as_doc_to_key(s, doc, &k, &err);
  FUZZ_CHECK_ERR(krc, &err);
  if (rc == AS_OK) {
    FUZZ_CHECK(krc == AS_OK, "mapping %s: row read but not its key: %s", s->name, err.message);
    for (size_t i = 0; i < s->nkey; i++) {
      size_t c = s->key_idx[i];
      FUZZ_CHECK(as_row_has(&k, c) && as_value_equal(&k.v[c], &r1.v[c]),
                 "mapping %s: key column %s differs between key and row", s->name,
                 s->cols[c].name);
    }
    fuzz_check_row_json(s, &r1);
    rc = as_row_to_doc(s, &r1, &d2, &err);
    FUZZ_CHECK(rc == AS_OK, "mapping %s: row read but not written: %s", s->name, err.message);
    rc = as_doc_to_row(s, &d2, &r2, &err);
    FUZZ_CHECK(rc == AS_OK, "mapping %s: written document does not read: %s", s->name,
               err.message);
    size_t col = 0;
    FUZZ_CHECK(fuzz_rows_equal(&r1, &r2, &col),
               "mapping %s: doc -> row -> doc -> row changed column %s", s->name,
               s->cols[col].name);
    check_rows_hash(s, &r1, &r2);
    as_bsonr ra, rb;
    if (lossless_input(s, doc))
      FUZZ_CHECK(as_bsonr_init_doc(&ra, doc) == AS_OK && as_bsonr_init_doc(&rb, &d2) == AS_OK &&
                     same_doc(ra, rb, false),
                 "mapping %s: lossless document changed through a row", s->name);
    check_update(s, &r1);
    bson_destroy(&d2);
  } else {
    for (size_t i = 0; i < r1.n; i++)
      FUZZ_CHECK(!r1.set[i], "mapping %s: failed conversion left column %zu set", s->name, i);
  }
  as_row_clear(&r1);
  as_row_clear(&r2);
  as_row_clear(&k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!schemas[0]) LLVMFuzzerInitialize(NULL, NULL);
  if (size < 5 || size > 1 << 16) return 0;
  uint8_t *buf = malloc(size);
  if (!buf) abort();
  memcpy(buf, data, size);
  uint32_t le = BSON_UINT32_TO_LE((uint32_t)size);
  memcpy(buf, &le, 4);
  buf[size - 1] = 0;

  as_bsonr r;
  FUZZ_CHECK(as_bsonr_init(&r, buf, size) == AS_OK, "header");
  bad_key = false;
  int ours = walk(&r, 0);
  bson_t doc;
  FUZZ_CHECK(bson_init_static(&doc, buf, size), "libbson refuses the header");
  bson_error_t be;
  bool theirs = bson_validate_with_error(&doc, BSON_VALIDATE_NONE, &be) && libbson_walk(&doc, 0);
  if (!theirs) snprintf(be.message, sizeof be.message, "corrupt");
  /* keys that are not UTF-8: libbson refuses some (its visitor checks keys) and not others,
   * so no verdict is compared for them */
  FUZZ_CHECK(bad_key || (ours == AS_OK) == theirs, "as_bsonr %s, libbson %s (%s)",
             ours == AS_OK ? "accepts" : "refuses", theirs ? "accepts" : "refuses",
             theirs ? "" : be.message);
  if (ours == AS_OK) check_asjson(&doc);
  for (size_t i = 0; i < sizeof schemas / sizeof *schemas; i++) check_mapping(schemas[i], &doc);
  free(buf);
  return 0;
}
