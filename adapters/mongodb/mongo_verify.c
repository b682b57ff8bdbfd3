/* mongo_verify.c — the MongoDB adapter's verify callbacks (adapter.h, "verify").
 *
 * Server mode: one aggregation per call. A $project computes each document's row hash as
 * {$toHashedIndexKey: <canonical text>} (mappings/as_rowhash.h), the text built by an
 * expression generated here from the mapping (mq_* below); a $group sums it per segment.
 * $group's $sum of longs turns into a double on overflow, so each hash h is summed as two
 * exact parts: lo = h mod 2^32 (sign of h) and hi = (h - lo) / 2^32, and the sum mod 2^64 is
 * hi * 2^32 + lo. The segment of a key comes from a tree of $cond/$lt on the segment bounds.
 *
 * The canonical text per column (NULL and missing: "~", but null in a json column is JSON
 * null, "null"; a BSON type the mapping does not
 * accept for the column, or a value the expression cannot render exactly: "!", which no node
 * produces, so the segment differs and the exact comparison in C decides):
 *   bool      "true"/"false";   int64: int/long, or an integral double/decimal: $toString
 *   double    m "p" q from $abs, $log 2, $floor, $pow, $divide (exact: scaling by a power of
 *             two), corrected by one where $log rounds across a power of two
 *   decimal   $toString with the fraction's trailing zeros trimmed ("E" notation: "!")
 *   text      $strLenBytes ":" the string;   bytes, uuid: $toString of $toHashedIndexKey of
 *             the BinData;   objectid: $toString;   timestamp: $toLong of the date (ms);
 *   date      ms / 86400000 when it is a midnight
 *   json      PostgreSQL's jsonb::text of the AS-JSON (mappings/as_bson.h): object keys
 *             sorted by ($strLenBytes, bytes) with $objectToArray + $sortArray, values per BSON
 *             type (int32 digits; int64 as {"$numberLong": "n"} inside the int32 range;
 *             doubles as $toString when that reads back exactly and has no exponent, ".0"
 *             appended to integral ones, else "!"; {"$numberDecimal"}, {"$oid"}, {"$date":
 *             {"$numberLong"}} wrappers; strings escaped like PostgreSQL's escape_json),
 *             unrolled to a depth of 4 nested documents/arrays ("!" below).
 *   catch-all the fields no column path leads to, kept nested where columns descend, as one
 *             jsonb object (NULL when there is none), like as_doc_to_row builds it.
 * Server hashing is probed when a session opens: a server that refuses $toHashedIndexKey
 * (InvalidPipelineOperator, 168) makes verify_open return AS_ENOTFOUND (client mode).
 *
 * Client mode: find over the range (mapped top-level fields only, unless there is a
 * catch-all), as_doc_to_row, XXH3 of the canonical text.
 *
 * Ranges: {key: {$gte, $lt}} (an index on the key serves them; BSON comparison brackets
 * types, so a key of another type than the column's is in no range), or, with neither bound,
 * {key: {$type: [the column's BSON types]}}. Compound keys compare arrays in $expr.
 * Splitting samples keys with $sample and picks quantiles in C. Reads use the default read
 * concern (no snapshot across calls; the caller re-checks every difference).
 * Bytes received: the sizes of the reply documents. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <xxhash.h>

#include "as_log.h"
#include "as_rowhash.h"
#include "mongo_internal.h"
#include "mongo_verify.h"

#define MQ_JSON_DEPTH 6 /* nested documents/arrays rendered inside a json column */
#define MQ_SAMPLE_PER_PART 32
#define MQ_SENT "\"!\""

struct as_verify {
  as_node *n;
  const as_schema *s;
  bool client;
  mongoc_client_t *client_conn;
  mongoc_collection_t *coll;
  bson_t *rowtext;   /* the canonical text expression (server mode) */
  bson_t *projection; /* client mode: fields to fetch, or NULL for whole documents */
  uint64_t bytes;
  char comp[160];
  as_buf tmp;
  as_row row;
};

/* ------------------------------------------------------------ JSON text of the expression */

static int jstr(as_buf *b, const char *s) {
  static const char hexd[] = "0123456789abcdef";
  if (as_buf_putc(b, '"')) return AS_ERR;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    int rc;
    if (*p == '"' || *p == '\\') rc = as_buf_putc(b, '\\') || as_buf_putc(b, *p);
    else if (*p < 0x20)
      rc = as_buf_append(b, "\\u00", 4) || as_buf_putc(b, (uint8_t)hexd[*p >> 4]) ||
           as_buf_putc(b, (uint8_t)hexd[*p & 15]);
    else rc = as_buf_putc(b, *p);
    if (rc) return AS_ERR;
  }
  return as_buf_putc(b, '"');
}

/* A string constant in expression context ($ would make it a field path). */
static int jlit(as_buf *b, const char *s) {
  if (s[0] != '$') return jstr(b, s);
  return as_buf_append_str(b, "{\"$literal\": ") || jstr(b, s) || as_buf_putc(b, '}');
}

#define P(...) as_buf_printf(b, __VA_ARGS__)
#define A(s) as_buf_append_str(b, s)

/* A JSON string as PostgreSQL's escape_json writes it, of the string expression x: quoted
 * as is unless it holds '"', '\' or a control character; then those are replaced, in one
 * $reduce over (find, replacement) pairs (backslash first). */
static int mq_str(as_buf *b, const char *x) {
  int bad = P("{\"$let\": {\"vars\": {\"s\": %s}, \"in\": {\"$concat\": [\"\\\"\", {\"$cond\": "
              "[{\"$regexMatch\": {\"input\": \"$$s\", \"regex\": \"[\\\\x00-\\\\x1f\\\"\\\\\\\\]\"}}, "
              "{\"$reduce\": {\"input\": [", x);
  for (int c = -2; c < 0x20 && !bad; c++) {
    char f[2] = {0, 0}, r[8];
    if (c == -2) f[0] = '\\', strcpy(r, "\\\\");
    else if (c == -1) f[0] = '"', strcpy(r, "\\\"");
    else {
      f[0] = (char)c;
      const char *shortf = strchr("\b\f\n\r\t", c);
      if (c && shortf) snprintf(r, sizeof r, "\\%c", "bfnrt"[shortf - "\b\f\n\r\t"]);
      else snprintf(r, sizeof r, "\\u%04x", c);
    }
    bad = (c > -2 && A(", ")) || A("[") || (c == 0 ? A("\"\\u0000\"") : jstr(b, f)) || A(", ") ||
          jstr(b, r) || A("]");
  }
  bad = bad || A("], \"initialValue\": \"$$s\", \"in\": {\"$replaceAll\": {\"input\": \"$$value\", "
                 "\"find\": {\"$arrayElemAt\": [\"$$this\", 0]}, \"replacement\": {\"$arrayElemAt\": "
                 "[\"$$this\", 1]}}}}}, \"$$s\"]}, \"\\\"\"]}}}");
  return bad ? AS_ERR : AS_OK;
}

/* A double inside json: $toString when it reads back exactly and has no exponent. */
static int mq_json_double(as_buf *b, const char *x) {
  return P("{\"$let\": {\"vars\": {\"q\": {\"$toString\": %s}}, \"in\": {\"$switch\": "
           "{\"branches\": [{\"case\": {\"$in\": [\"$$q\", [\"NaN\", \"Infinity\", \"-Infinity\"]]}, "
           "\"then\": {\"$concat\": [\"{\\\"$numberDouble\\\": \\\"\", \"$$q\", \"\\\"}\"]}}, "
           "{\"case\": {\"$eq\": [\"$$q\", \"-0\"]}, \"then\": \"{\\\"$numberDouble\\\": \\\"-0.0\\\"}\"}, "
           "{\"case\": {\"$or\": [{\"$gte\": [{\"$indexOfBytes\": [\"$$q\", \"e\"]}, 0]}, "
           "{\"$ne\": [{\"$toDouble\": \"$$q\"}, %s]}]}, \"then\": " MQ_SENT "}, "
           "{\"case\": {\"$gte\": [{\"$indexOfBytes\": [\"$$q\", \".\"]}, 0]}, \"then\": \"$$q\"}], "
           "\"default\": {\"$concat\": [\"$$q\", \".0\"]}}}}}",
           x, x);
}

static int mq_json(as_buf *b, const char *x, int d);

/* Object or array x at depth d: members sorted like jsonb, joined with ", ". */
static int mq_container(as_buf *b, const char *x, const char *t, int d) {
  int bad = P("{\"$let\": {\"vars\": {\"o%d\": {\"$eq\": [%s, \"object\"]}, \"i%d\": "
              "{\"$cond\": [{\"$eq\": [%s, \"object\"]}, {\"$sortArray\": {\"input\": "
              "{\"$map\": {\"input\": {\"$objectToArray\": %s}, \"as\": \"e%d\", \"in\": {\"l\": "
              "{\"$strLenBytes\": \"$$e%d.k\"}, \"k\": \"$$e%d.k\", \"v\": \"$$e%d.v\"}}}, \"sortBy\": "
              "{\"l\": 1, \"k\": 1}}}, {\"$map\": {\"input\": %s, \"as\": \"e%d\", \"in\": {\"v\": "
              "\"$$e%d\"}}}]}}, \"in\": {\"$concat\": [{\"$cond\": [\"$$o%d\", \"{\", \"[\"]}, "
              "{\"$reduce\": {\"input\": \"$$i%d\", \"initialValue\": \"\", \"in\": {\"$concat\": "
              "[\"$$value\", {\"$cond\": [{\"$eq\": [\"$$value\", \"\"]}, \"\", \", \"]}, {\"$cond\": "
              "[\"$$o%d\", {\"$concat\": [",
              d, t, d, t, x, d, d, d, d, x, d, d, d, d, d);
  bad = bad || mq_str(b, "\"$$this.k\"") || A(", \": \"]}, \"\"]}, ") ||
        mq_json(b, "\"$$this.v\"", d - 1) || P("]}}}, {\"$cond\": [\"$$o%d\", \"}\", \"]\"]}]}}}", d);
  return bad ? AS_ERR : AS_OK;
}

/* PostgreSQL's jsonb::text of the AS-JSON of the value of expression x (a variable path, cheap
 * to repeat; its type is computed once). Containers nest at most d deep. */
static int mq_json(as_buf *b, const char *x, int d) {
  char t[16];
  snprintf(t, sizeof t, "\"$$t%d\"", d);
  int bad = P("{\"$let\": {\"vars\": {\"t%d\": {\"$type\": %s}}, \"in\": {\"$switch\": {\"branches\": [", d, x);
  if (d > 0) {
    bad = bad || P("{\"case\": {\"$in\": [%s, [\"object\", \"array\"]]}, \"then\": ", t) ||
          mq_container(b, x, t, d) || A("}, ");
  }
  bad = bad || P("{\"case\": {\"$eq\": [%s, \"string\"]}, \"then\": ", t) || mq_str(b, x) ||
        P("}, {\"case\": {\"$eq\": [%s, \"bool\"]}, \"then\": {\"$cond\": [%s, \"true\", "
          "\"false\"]}}, {\"case\": {\"$eq\": [%s, \"null\"]}, \"then\": \"null\"}, "
          "{\"case\": {\"$eq\": [%s, \"int\"]}, \"then\": {\"$toString\": %s}}, "
          "{\"case\": {\"$eq\": [%s, \"long\"]}, \"then\": {\"$cond\": [{\"$and\": "
          "[{\"$gte\": [%s, -2147483648]}, {\"$lte\": [%s, 2147483647]}]}, {\"$concat\": "
          "[\"{\\\"$numberLong\\\": \\\"\", {\"$toString\": %s}, \"\\\"}\"]}, {\"$toString\": %s}]}}, "
          "{\"case\": {\"$eq\": [%s, \"double\"]}, \"then\": ",
          t, x, t, t, x, t, x, x, x, x, t) ||
        mq_json_double(b, x) ||
        P("}, {\"case\": {\"$eq\": [%s, \"decimal\"]}, \"then\": {\"$concat\": "
          "[\"{\\\"$numberDecimal\\\": \\\"\", {\"$toString\": %s}, \"\\\"}\"]}}, "
          "{\"case\": {\"$eq\": [%s, \"objectId\"]}, \"then\": {\"$concat\": "
          "[\"{\\\"$oid\\\": \\\"\", {\"$toString\": %s}, \"\\\"}\"]}}, "
          "{\"case\": {\"$eq\": [%s, \"date\"]}, \"then\": {\"$concat\": "
          "[\"{\\\"$date\\\": {\\\"$numberLong\\\": \\\"\", {\"$toString\": {\"$toLong\": %s}}, "
          "\"\\\"}}\"]}}], \"default\": " MQ_SENT "}}}}",
          t, x, t, x, t, x);
  return bad ? AS_ERR : AS_OK;
}

/* The value of a column path: "$a.b" or, for names a field path cannot spell, $getField. */
static int mq_path(as_buf *b, char *const *path, size_t n, const char *root) {
  bool simple = true;
  for (size_t i = 0; i < n; i++) simple = simple && path[i][0] && path[i][0] != '$';
  if (simple) {
    as_buf t = AS_BUF_INIT;
    int bad = as_buf_putc(&t, '$');
    for (size_t i = 0; i < n; i++) bad = bad || (i && as_buf_putc(&t, '.')) || as_buf_append_str(&t, path[i]);
    bad = bad || jstr(b, as_buf_cstr(&t));
    as_buf_free(&t);
    return bad ? AS_ERR : AS_OK;
  }
  int bad = AS_OK;
  for (size_t i = n; i-- > 0;) bad = bad || A("{\"$getField\": {\"field\": {\"$literal\": ") ||
                                    jstr(b, path[i]) || A("}, \"input\": ");
  bad = bad || jstr(b, root);
  for (size_t i = 0; i < n; i++) bad = bad || A("}}");
  return bad ? AS_ERR : AS_OK;
}

/* The switch branches of one column type (the value is $$v, its type $$vt). */
static int mq_col_branches(as_buf *b, as_type t) {
  switch (t) {
    case AS_T_BOOL:
      return A("{\"case\": {\"$eq\": [\"$$vt\", \"bool\"]}, \"then\": {\"$cond\": [\"$$v\", \"true\", \"false\"]}}");
    case AS_T_INT64:
      return A("{\"case\": {\"$in\": [\"$$vt\", [\"int\", \"long\"]]}, \"then\": {\"$toString\": \"$$v\"}}, "
               "{\"case\": {\"$in\": [\"$$vt\", [\"double\", \"decimal\"]]}, \"then\": {\"$let\": "
               "{\"vars\": {\"l\": {\"$convert\": {\"input\": \"$$v\", \"to\": \"long\", \"onError\": null}}}, "
               "\"in\": {\"$cond\": [{\"$and\": [{\"$ne\": [\"$$l\", null]}, {\"$eq\": [\"$$l\", \"$$v\"]}]}, "
               "{\"$toString\": \"$$l\"}, " MQ_SENT "]}}}}");
    case AS_T_DOUBLE:
      return A(
          "{\"case\": {\"$in\": [\"$$vt\", [\"double\", \"int\", \"long\"]]}, \"then\": {\"$let\": {\"vars\": "
          "{\"x\": {\"$toDouble\": \"$$v\"}}, \"in\": {\"$switch\": {\"branches\": ["
          "{\"case\": {\"$eq\": [\"$$x\", {\"$numberDouble\": \"NaN\"}]}, \"then\": \"NaN\"}, "
          "{\"case\": {\"$eq\": [\"$$x\", {\"$numberDouble\": \"Infinity\"}]}, \"then\": \"Infinity\"}, "
          "{\"case\": {\"$eq\": [\"$$x\", {\"$numberDouble\": \"-Infinity\"}]}, \"then\": \"-Infinity\"}, "
          "{\"case\": {\"$eq\": [\"$$x\", 0]}, \"then\": \"0\"}], \"default\": {\"$let\": {\"vars\": "
          "{\"a\": {\"$abs\": \"$$x\"}}, \"in\": {\"$let\": {\"vars\": {\"e0\": {\"$floor\": {\"$log\": "
          "[\"$$a\", 2]}}}, \"in\": {\"$let\": {\"vars\": {\"e\": {\"$max\": [-1022, {\"$switch\": "
          "{\"branches\": [{\"case\": {\"$lt\": [\"$$a\", {\"$pow\": [2, \"$$e0\"]}]}, \"then\": "
          "{\"$subtract\": [\"$$e0\", 1]}}, {\"case\": {\"$gte\": [\"$$a\", {\"$pow\": [2, {\"$add\": "
          "[\"$$e0\", 1]}]}]}, \"then\": {\"$add\": [\"$$e0\", 1]}}], \"default\": \"$$e0\"}}]}}, "
          "\"in\": {\"$concat\": [{\"$cond\": [{\"$lt\": [\"$$x\", 0]}, \"-\", \"\"]}, {\"$toString\": "
          "{\"$toLong\": {\"$divide\": [\"$$a\", {\"$pow\": [2, {\"$subtract\": [\"$$e\", 52]}]}]}}}, "
          "\"p\", {\"$toString\": {\"$toLong\": {\"$subtract\": [\"$$e\", 52]}}}]}}}}}}}}}}}}");
    case AS_T_DECIMAL:
      return A("{\"case\": {\"$in\": [\"$$vt\", [\"int\", \"long\"]]}, \"then\": {\"$toString\": \"$$v\"}}, "
               "{\"case\": {\"$eq\": [\"$$vt\", \"decimal\"]}, \"then\": {\"$let\": {\"vars\": {\"q\": "
               "{\"$toString\": \"$$v\"}}, \"in\": {\"$switch\": {\"branches\": [{\"case\": {\"$gte\": "
               "[{\"$indexOfBytes\": [\"$$q\", \"E\"]}, 0]}, \"then\": " MQ_SENT "}, {\"case\": {\"$lt\": "
               "[{\"$indexOfBytes\": [\"$$q\", \".\"]}, 0]}, \"then\": {\"$cond\": [{\"$eq\": [\"$$q\", "
               "\"-0\"]}, \"0\", \"$$q\"]}}], \"default\": {\"$let\": {\"vars\": {\"z\": {\"$rtrim\": "
               "{\"input\": {\"$rtrim\": {\"input\": \"$$q\", \"chars\": \"0\"}}, \"chars\": \".\"}}}, "
               "\"in\": {\"$cond\": [{\"$eq\": [\"$$z\", \"-0\"]}, \"0\", \"$$z\"]}}}}}}}}");
    case AS_T_TEXT:
      return A("{\"case\": {\"$eq\": [\"$$vt\", \"string\"]}, \"then\": {\"$concat\": [{\"$toString\": "
               "{\"$strLenBytes\": \"$$v\"}}, \":\", \"$$v\"]}}");
    case AS_T_BYTES:
    case AS_T_UUID:
      return A("{\"case\": {\"$eq\": [\"$$vt\", \"binData\"]}, \"then\": {\"$toString\": "
               "{\"$toHashedIndexKey\": \"$$v\"}}}");
    case AS_T_OBJECTID:
      return A("{\"case\": {\"$eq\": [\"$$vt\", \"objectId\"]}, \"then\": {\"$toString\": \"$$v\"}}");
    case AS_T_TIMESTAMP:
      return A("{\"case\": {\"$eq\": [\"$$vt\", \"date\"]}, \"then\": {\"$toString\": {\"$toLong\": \"$$v\"}}}, "
               "{\"case\": {\"$eq\": [\"$$vt\", \"timestamp\"]}, \"then\": {\"$toString\": {\"$multiply\": "
               "[{\"$tsSecond\": \"$$v\"}, 1000]}}}");
    case AS_T_DATE:
      return A("{\"case\": {\"$eq\": [\"$$vt\", \"date\"]}, \"then\": {\"$let\": {\"vars\": {\"ms\": "
               "{\"$toLong\": \"$$v\"}}, \"in\": {\"$cond\": [{\"$eq\": [{\"$mod\": [\"$$ms\", 86400000]}, 0]}, "
               "{\"$toString\": {\"$toLong\": {\"$divide\": [\"$$ms\", 86400000]}}}, " MQ_SENT "]}}}}");
    case AS_T_JSON: { /* (null only reaches here for a column where it is JSON null) */
      int bad = A("{\"case\": {\"$in\": [\"$$vt\", [\"object\", \"array\", \"null\"]]}, \"then\": ");
      return bad || mq_json(b, "\"$$v\"", MQ_JSON_DEPTH) || A("}") ? AS_ERR : AS_OK;
    }
    default: return A("{\"case\": false, \"then\": " MQ_SENT "}");
  }
}

/* ---- the catch-all: a trie of the mapped paths ---- */

typedef struct mq_trie {
  const char *name;
  bool leaf;            /* a column (or child table field) ends here */
  struct mq_trie *kids;
  size_t nkids;
} mq_trie;

static void trie_free(mq_trie *t) {
  for (size_t i = 0; i < t->nkids; i++) trie_free(&t->kids[i]);
  free(t->kids);
}

static int trie_add(mq_trie *t, char *const *path, size_t n) {
  mq_trie *k = NULL;
  for (size_t i = 0; i < t->nkids && !k; i++) {
    if (strcmp(t->kids[i].name, path[0]) == 0) k = &t->kids[i];
  }
  if (!k) {
    mq_trie *nk = realloc(t->kids, (t->nkids + 1) * sizeof *nk);
    if (!nk) return AS_ERR;
    t->kids = nk;
    k = &t->kids[t->nkids++];
    memset(k, 0, sizeof *k);
    k->name = path[0];
  }
  if (n == 1) {
    k->leaf = true;
    return AS_OK;
  }
  return trie_add(k, path + 1, n - 1);
}

/* Text of the catch-all object of document expression doc at trie node t (null if empty). */
static int mq_catchall(as_buf *b, const mq_trie *t, const char *doc, int lvl) {
  int bad = P("{\"$let\": {\"vars\": {\"c%d\": {\"$concatArrays\": [{\"$map\": {\"input\": {\"$filter\": "
              "{\"input\": {\"$objectToArray\": %s}, \"as\": \"f%d\", \"cond\": {\"$not\": [{\"$in\": "
              "[\"$$f%d.k\", [",
              lvl, doc, lvl, lvl);
  for (size_t i = 0; i < t->nkids; i++) bad = bad || (i && A(", ")) || jlit(b, t->kids[i].name);
  char fv[32];
  snprintf(fv, sizeof fv, "\"$$f%d.v\"", lvl);
  bad = bad || P("]]}]}}}, \"as\": \"f%d\", \"in\": {\"k\": \"$$f%d.k\", \"l\": {\"$strLenBytes\": "
                 "\"$$f%d.k\"}, \"t\": ",
                 lvl, lvl, lvl) ||
        mq_json(b, fv, MQ_JSON_DEPTH - 1) || A("}}}");
  for (size_t i = 0; i < t->nkids; i++) {
    const mq_trie *k = &t->kids[i];
    if (k->leaf || !k->nkids) continue;
    char sub[48];
    snprintf(sub, sizeof sub, "\"$$s%d\"", lvl);
    bad = bad || P(", {\"$let\": {\"vars\": {\"s%d\": ", lvl) ||
          A("{\"$getField\": {\"field\": {\"$literal\": ") || jstr(b, k->name) ||
          P("}, \"input\": %s}}}, \"in\": {\"$switch\": {\"branches\": [{\"case\": {\"$in\": [{\"$type\": "
            "\"$$s%d\"}, [\"missing\", \"null\"]]}, \"then\": []}, {\"case\": {\"$eq\": [{\"$type\": "
            "\"$$s%d\"}, \"object\"]}, \"then\": {\"$let\": {\"vars\": {\"u%d\": ",
            doc, lvl, lvl, lvl) ||
          mq_catchall(b, k, sub, lvl + 1) ||
          P("}, \"in\": {\"$cond\": [{\"$eq\": [\"$$u%d\", null]}, [], [{\"k\": ", lvl) ||
          jlit(b, k->name) ||
          P(", \"l\": %zu, \"t\": \"$$u%d\"}]]}}}}], \"default\": [{\"k\": ", strlen(k->name), lvl) ||
          jlit(b, k->name) || P(", \"l\": %zu, \"t\": " MQ_SENT "}]}}}}", strlen(k->name));
  }
  bad = bad || P("]}}, \"in\": {\"$cond\": [{\"$eq\": [{\"$size\": \"$$c%d\"}, 0]}, null, {\"$concat\": "
                 "[\"{\", {\"$reduce\": {\"input\": {\"$sortArray\": {\"input\": \"$$c%d\", \"sortBy\": "
                 "{\"l\": 1, \"k\": 1}}}, \"initialValue\": \"\", \"in\": {\"$concat\": [\"$$value\", "
                 "{\"$cond\": [{\"$eq\": [\"$$value\", \"\"]}, \"\", \", \"]}, ",
                 lvl, lvl) ||
        mq_str(b, "\"$$this.k\"") || A(", \": \", \"$$this.t\"]}}}, \"}\"]}]}}}");
  return bad ? AS_ERR : AS_OK;
}

static int mq_rowtext(as_buf *b, const as_schema *s) {
  mq_trie root = {0};
  int bad = A("{\"$concat\": [");
  for (size_t i = 0; !bad && i < s->ncols; i++) {
    if (!s->cols[i].catch_all) bad = trie_add(&root, s->cols[i].path, s->cols[i].npath);
  }
  for (size_t i = 0; !bad && i < s->ncols; i++) {
    const as_column *c = &s->cols[i];
    bad = (i && A(", \"|\", "));
    if (c->catch_all) {
      bad = bad || A("{\"$ifNull\": [") || mq_catchall(b, &root, "\"$$ROOT\"", 0) || A(", \"~\"]}");
      continue;
    }
    bad = bad || A("{\"$let\": {\"vars\": {\"v\": ") || mq_path(b, c->path, c->npath, "$$CURRENT") ||
          A("}, \"in\": {\"$let\": {\"vars\": {\"vt\": {\"$type\": \"$$v\"}}, \"in\": {\"$switch\": "
            "{\"branches\": [{\"case\": {\"$in\": [\"$$vt\", [\"missing\"") ||
          /* a json column's null is JSON null (as_bson_convert), every other column's is NULL */
          A(as_column_json_null(c) ? "]]}, \"then\": \"~\"}, " : ", \"null\"]]}, \"then\": \"~\"}, ") ||
          mq_col_branches(b, c->type) || A("], \"default\": " MQ_SENT "}}}}}}");
  }
  bad = bad || A(", \"|\"]}");
  trie_free(&root);
  return bad ? AS_ERR : AS_OK;
}

#undef P
#undef A

/* ------------------------------------------------------------ ranges and segments (BSON) */

static const char *const *bson_types_of(as_type t) {
  static const char *const num[] = {"int", "long", "double", "decimal", NULL};
  static const char *const str[] = {"string", NULL}, *const bin[] = {"binData", NULL};
  static const char *const oid[] = {"objectId", NULL}, *const date[] = {"date", NULL};
  static const char *const bol[] = {"bool", NULL}, *const js[] = {"object", "array", NULL};
  switch (t) {
    case AS_T_INT64:
    case AS_T_DOUBLE:
    case AS_T_DECIMAL: return num;
    case AS_T_TEXT: return str;
    case AS_T_BYTES:
    case AS_T_UUID: return bin;
    case AS_T_OBJECTID: return oid;
    case AS_T_TIMESTAMP:
    case AS_T_DATE: return date;
    case AS_T_BOOL: return bol;
    default: return js;
  }
}

static const as_column *key_col(const as_verify *v, size_t k) {
  return &v->s->cols[v->s->key_idx[k]];
}

/* The key as an expression: "$field", or ["$f1", "$f2"] for a compound key. */
static void append_key_expr(bson_t *parent, const char *name, const as_verify *v) {
  char path[512];
  if (v->s->nkey == 1) {
    snprintf(path, sizeof path, "$%s", key_col(v, 0)->field);
    BSON_APPEND_UTF8(parent, name, path);
    return;
  }
  bson_t arr;
  BSON_APPEND_ARRAY_BEGIN(parent, name, &arr);
  for (size_t k = 0; k < v->s->nkey; k++) {
    char idx[16];
    snprintf(idx, sizeof idx, "%zu", k);
    snprintf(path, sizeof path, "$%s", key_col(v, k)->field);
    BSON_APPEND_UTF8(&arr, idx, path);
  }
  bson_append_array_end(parent, &arr);
}

/* {"$literal": key} (an array of literals for a compound key). */
static int append_key_lit(bson_t *parent, const char *name, const as_verify *v, const as_value *key,
                          as_error *err) {
  bson_t lit, arr;
  int rc = AS_OK;
  BSON_APPEND_DOCUMENT_BEGIN(parent, name, &lit);
  if (v->s->nkey == 1) {
    rc = as_value_append_bson(&lit, "$literal", -1, &key[0], err);
  } else {
    BSON_APPEND_ARRAY_BEGIN(&lit, "$literal", &arr);
    for (size_t k = 0; k < v->s->nkey && rc == AS_OK; k++) {
      char idx[16];
      snprintf(idx, sizeof idx, "%zu", k);
      rc = as_value_append_bson(&arr, idx, -1, &key[k], err);
    }
    bson_append_array_end(&lit, &arr);
  }
  bson_append_document_end(parent, &lit);
  return rc;
}

static int range_filter(const as_verify *v, const as_value *lo, const as_value *hi, bson_t *f,
                        as_error *err) {
  int rc = AS_OK;
  if (v->s->nkey == 1) {
    const as_column *c = key_col(v, 0);
    bson_t cond, arr;
    BSON_APPEND_DOCUMENT_BEGIN(f, c->field, &cond);
    if (!lo && !hi) {
      BSON_APPEND_ARRAY_BEGIN(&cond, "$type", &arr);
      const char *const *ty = bson_types_of(c->type);
      for (int i = 0; ty[i]; i++) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", i);
        BSON_APPEND_UTF8(&arr, idx, ty[i]);
      }
      bson_append_array_end(&cond, &arr);
    }
    if (lo) rc = as_value_append_bson(&cond, "$gte", -1, &lo[0], err);
    if (hi && rc == AS_OK) rc = as_value_append_bson(&cond, "$lt", -1, &hi[0], err);
    bson_append_document_end(f, &cond);
    return rc;
  }
  if (!lo && !hi) return AS_OK;
  bson_t expr, and, cmp, args;
  BSON_APPEND_DOCUMENT_BEGIN(f, "$expr", &expr);
  BSON_APPEND_ARRAY_BEGIN(&expr, "$and", &and);
  for (int i = 0; i < 2 && rc == AS_OK; i++) {
    const as_value *b = i == 0 ? lo : hi;
    if (!b) continue;
    BSON_APPEND_DOCUMENT_BEGIN(&and, i == 0 ? "0" : "1", &cmp);
    BSON_APPEND_ARRAY_BEGIN(&cmp, i == 0 ? "$gte" : "$lt", &args);
    append_key_expr(&args, "0", v);
    rc = append_key_lit(&args, "1", v, b, err);
    bson_append_array_end(&cmp, &args);
    bson_append_document_end(&and, &cmp);
  }
  bson_append_array_end(&expr, &and);
  bson_append_document_end(f, &expr);
  return rc;
}

/* Segment number in [first, last] by a tree of {$cond: [{$lt: [key, bound]}, ...]}. */
static int append_bucket(bson_t *parent, const char *name, const as_verify *v,
                         const as_value *bounds, size_t first, size_t last, as_error *err) {
  if (first == last) {
    bson_t lit;
    BSON_APPEND_DOCUMENT_BEGIN(parent, name, &lit);
    BSON_APPEND_INT32(&lit, "$literal", (int32_t)first);
    bson_append_document_end(parent, &lit);
    return AS_OK;
  }
  size_t mid = (first + last + 1) / 2;
  bson_t cond, arr, lt, args;
  BSON_APPEND_DOCUMENT_BEGIN(parent, name, &cond);
  BSON_APPEND_ARRAY_BEGIN(&cond, "$cond", &arr);
  BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &lt);
  BSON_APPEND_ARRAY_BEGIN(&lt, "$lt", &args);
  append_key_expr(&args, "0", v);
  int rc = append_key_lit(&args, "1", v, bounds + (mid - 1) * v->s->nkey, err);
  bson_append_array_end(&lt, &args);
  bson_append_document_end(&arr, &lt);
  if (rc == AS_OK) rc = append_bucket(&arr, "1", v, bounds, first, mid - 1, err);
  if (rc == AS_OK) rc = append_bucket(&arr, "2", v, bounds, mid, last, err);
  bson_append_array_end(&cond, &arr);
  bson_append_document_end(parent, &cond);
  return rc;
}

/* ------------------------------------------------------------ queries */

typedef int (*doc_fn)(as_verify *v, const bson_t *doc, void *ctx, as_error *err);

static int drain(as_verify *v, mongoc_cursor_t *cur, const char *what, doc_fn fn, void *ctx,
                 as_error *err) {
  const bson_t *doc;
  int rc = AS_OK;
  while (rc == AS_OK && mongoc_cursor_next(cur, &doc)) {
    v->bytes += doc->len;
    rc = fn(v, doc, ctx, err);
  }
  bson_error_t be;
  const bson_t *reply = NULL;
  if (rc == AS_OK && mongoc_cursor_error_document(cur, &be, &reply)) {
    rc = as_mongo_fail(err, what, &be, reply);
    as_error_prefix(err, "%s", v->comp);
  }
  mongoc_cursor_destroy(cur);
  return rc;
}

static int aggregate(as_verify *v, const bson_t *pipeline, const char *what, doc_fn fn, void *ctx,
                     as_error *err) {
  AS_LOG(AS_LOG_TRACE, v->comp, "%s", what);
  mongoc_cursor_t *cur =
      mongoc_collection_aggregate(v->coll, MONGOC_QUERY_NONE, pipeline, NULL, NULL);
  return drain(v, cur, what, fn, ctx, err);
}

static int stage_match(const as_verify *v, bson_t *p, const char *idx, const as_value *lo,
                       const as_value *hi, as_error *err) {
  bson_t st, match;
  BSON_APPEND_DOCUMENT_BEGIN(p, idx, &st);
  BSON_APPEND_DOCUMENT_BEGIN(&st, "$match", &match);
  int rc = range_filter(v, lo, hi, &match, err);
  bson_append_document_end(&st, &match);
  bson_append_document_end(p, &st);
  return rc;
}

static void add_hash(const as_verify *v, bson_t *proj) {
  bson_t h;
  BSON_APPEND_DOCUMENT_BEGIN(proj, "h", &h);
  BSON_APPEND_DOCUMENT(&h, "$toHashedIndexKey", v->rowtext);
  bson_append_document_end(proj, &h);
}

/* {$group: {_id: "$b", n: {$sum: 1}, lo: {$sum: {$mod: ["$h", 2^32]}},
 *           hi: {$sum: {$toLong: {$divide: [{$subtract: ["$h", {$mod: ["$h", 2^32]}]}, 2^32]}}}}} */
static void stage_group(bson_t *p, const char *idx) {
  bson_t st, g, acc, op, args, mod, sub, subargs, tl, div, divargs;
  BSON_APPEND_DOCUMENT_BEGIN(p, idx, &st);
  BSON_APPEND_DOCUMENT_BEGIN(&st, "$group", &g);
  BSON_APPEND_UTF8(&g, "_id", "$b");
  BSON_APPEND_DOCUMENT_BEGIN(&g, "n", &acc);
  BSON_APPEND_INT32(&acc, "$sum", 1);
  bson_append_document_end(&g, &acc);
  BSON_APPEND_DOCUMENT_BEGIN(&g, "lo", &acc);
  BSON_APPEND_DOCUMENT_BEGIN(&acc, "$sum", &op);
  BSON_APPEND_ARRAY_BEGIN(&op, "$mod", &args);
  BSON_APPEND_UTF8(&args, "0", "$h");
  BSON_APPEND_INT64(&args, "1", 4294967296LL);
  bson_append_array_end(&op, &args);
  bson_append_document_end(&acc, &op);
  bson_append_document_end(&g, &acc);
  BSON_APPEND_DOCUMENT_BEGIN(&g, "hi", &acc);
  BSON_APPEND_DOCUMENT_BEGIN(&acc, "$sum", &tl);
  BSON_APPEND_DOCUMENT_BEGIN(&tl, "$toLong", &div);
  BSON_APPEND_ARRAY_BEGIN(&div, "$divide", &divargs);
  BSON_APPEND_DOCUMENT_BEGIN(&divargs, "0", &sub);
  BSON_APPEND_ARRAY_BEGIN(&sub, "$subtract", &subargs);
  BSON_APPEND_UTF8(&subargs, "0", "$h");
  BSON_APPEND_DOCUMENT_BEGIN(&subargs, "1", &mod);
  BSON_APPEND_ARRAY_BEGIN(&mod, "$mod", &args);
  BSON_APPEND_UTF8(&args, "0", "$h");
  BSON_APPEND_INT64(&args, "1", 4294967296LL);
  bson_append_array_end(&mod, &args);
  bson_append_document_end(&subargs, &mod);
  bson_append_array_end(&sub, &subargs);
  bson_append_document_end(&divargs, &sub);
  BSON_APPEND_INT64(&divargs, "1", 4294967296LL);
  bson_append_array_end(&div, &divargs);
  bson_append_document_end(&tl, &div);
  bson_append_document_end(&acc, &tl);
  bson_append_document_end(&g, &acc);
  bson_append_document_end(&st, &g);
  bson_append_document_end(p, &st);
}

/* Key values from the "k" field of an aggregation result (or a find's document). */
static int key_from(const as_verify *v, const bson_t *doc, as_value *keys, as_error *err) {
  bson_iter_t it, sub;
  if (!bson_iter_init_find(&it, doc, "k")) {
    return as_error_set(err, AS_DOM_MONGO, AS_EDATA, "%s: result without a key", v->comp);
  }
  if (v->s->nkey == 1) return as_bson_iter_to_value(v->s, key_col(v, 0), &it, &keys[0], err);
  if (!BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &sub))
    return as_error_set(err, AS_DOM_MONGO, AS_EDATA, "%s: compound key is not an array", v->comp);
  for (size_t k = 0; k < v->s->nkey; k++) {
    if (!bson_iter_next(&sub))
      return as_error_set(err, AS_DOM_MONGO, AS_EDATA, "%s: compound key too short", v->comp);
    int rc = as_bson_iter_to_value(v->s, key_col(v, k), &sub, &keys[k], err);
    if (rc != AS_OK) return rc;
  }
  return AS_OK;
}

static int key_cmp(const as_schema *s, const as_value *a, const as_value *b) {
  for (size_t k = 0; k < s->nkey; k++) {
    int c = as_value_compare(&a[k], &b[k]);
    if (c) return c;
  }
  return 0;
}

/* Client mode: row hash of a document (a document the mapping cannot read hashes its error). */
static uint64_t doc_hash(as_verify *v, const bson_t *doc) {
  as_error e;
  uint64_t h;
  if (as_doc_to_row(v->s, doc, &v->row, &e) == AS_OK &&
      as_rowhash_xxh3(v->s, &v->row, &v->tmp, &h, &e) == AS_OK)
    return h;
  return XXH3_64bits(e.message, strlen(e.message));
}

static int find_range(as_verify *v, const as_value *lo, const as_value *hi, doc_fn fn, void *ctx,
                      as_error *err) {
  bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
  int rc = range_filter(v, lo, hi, &filter, err);
  if (v->projection) BSON_APPEND_DOCUMENT(&opts, "projection", v->projection);
  BSON_APPEND_INT32(&opts, "batchSize", 5000);
  if (rc == AS_OK) {
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(v->coll, &filter, &opts, NULL);
    rc = drain(v, cur, "verify: find", fn, ctx, err);
  }
  bson_destroy(&filter);
  bson_destroy(&opts);
  return rc;
}

/* ------------------------------------------------------------ JSON -> BSON */

/* The generated expression nests deeper than libbson's JSON reader allows, so it is parsed
 * with jansson and converted here: objects, arrays, strings, integers (int32 when they fit),
 * reals, booleans, null, and {"$numberDouble": "NaN" | "Infinity" | "-Infinity"} and
 * {"$numberLong": "n"} as typed values. */
static bool json_to_bson_value(bson_t *parent, const char *k, json_t *j);

static bool json_to_bson_doc(bson_t *doc, json_t *o) {
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v) {
    if (!json_to_bson_value(doc, k, v)) return false;
  }
  return true;
}

static bool json_to_bson_value(bson_t *parent, const char *k, json_t *j) {
  switch (json_typeof(j)) {
    case JSON_OBJECT: {
      json_t *w = json_object_size(j) == 1 ? json_object_get(j, "$numberDouble") : NULL;
      if (w && json_is_string(w)) {
        const char *t = json_string_value(w);
        double d = strcmp(t, "NaN") == 0 ? NAN : strcmp(t, "-Infinity") == 0 ? -INFINITY : INFINITY;
        return BSON_APPEND_DOUBLE(parent, k, d);
      }
      w = json_object_size(j) == 1 ? json_object_get(j, "$numberLong") : NULL;
      if (w && json_is_string(w)) return BSON_APPEND_INT64(parent, k, strtoll(json_string_value(w), NULL, 10));
      bson_t sub;
      if (!BSON_APPEND_DOCUMENT_BEGIN(parent, k, &sub)) return false;
      bool ok = json_to_bson_doc(&sub, j);
      return bson_append_document_end(parent, &sub) && ok;
    }
    case JSON_ARRAY: {
      bson_t sub;
      if (!BSON_APPEND_ARRAY_BEGIN(parent, k, &sub)) return false;
      bool ok = true;
      for (size_t i = 0; ok && i < json_array_size(j); i++) {
        char idx[24];
        snprintf(idx, sizeof idx, "%zu", i);
        ok = json_to_bson_value(&sub, idx, json_array_get(j, i));
      }
      return bson_append_array_end(parent, &sub) && ok;
    }
    case JSON_STRING:
      return bson_append_utf8(parent, k, -1, json_string_value(j), (int)json_string_length(j));
    case JSON_INTEGER: {
      json_int_t i = json_integer_value(j);
      if (i >= INT32_MIN && i <= INT32_MAX) return BSON_APPEND_INT32(parent, k, (int32_t)i);
      return BSON_APPEND_INT64(parent, k, (int64_t)i);
    }
    case JSON_REAL: return BSON_APPEND_DOUBLE(parent, k, json_real_value(j));
    case JSON_TRUE: return BSON_APPEND_BOOL(parent, k, true);
    case JSON_FALSE: return BSON_APPEND_BOOL(parent, k, false);
    default: return BSON_APPEND_NULL(parent, k);
  }
}

/* ------------------------------------------------------------ callbacks */

void as_mongo_verify_close(as_verify *v) {
  if (!v) return;
  if (v->coll) mongoc_collection_destroy(v->coll);
  if (v->client_conn) mongoc_client_pool_push(v->n->pool, v->client_conn);
  if (v->rowtext) bson_destroy(v->rowtext);
  if (v->projection) bson_destroy(v->projection);
  as_buf_free(&v->tmp);
  as_row_clear(&v->row);
  free(v);
}

static int probe_doc(as_verify *v, const bson_t *doc, void *ctx, as_error *err) {
  (void)v, (void)doc, (void)ctx, (void)err;
  return AS_OK;
}

/* Does the server know $toHashedIndexKey? (AS_ENOTFOUND when it refuses the operator.) */
static int probe(as_verify *v, as_error *err) {
  bson_t *p = BCON_NEW("0", "{", "$limit", BCON_INT32(1), "}", "1", "{", "$project", "{", "_id",
                       BCON_INT32(0), "h", "{", "$toHashedIndexKey", BCON_UTF8("probe"), "}", "}",
                       "}");
  int rc = aggregate(v, p, "verify: probe for $toHashedIndexKey", probe_doc, NULL, err);
  bson_destroy(p);
  if (rc != AS_OK && (err->code == 168 || err->code == 31325 || strstr(err->message, "Unrecognized expression")))
    return as_error_set(err, AS_DOM_MONGO, AS_ENOTFOUND,
                        "the server refuses $toHashedIndexKey (%s)", err->message);
  return rc;
}

static int client_projection(as_verify *v) {
  if (v->s->catch_all_idx >= 0) return AS_OK; /* the catch-all needs every field */
  v->projection = bson_new();
  if (!v->projection) return AS_ERR;
  for (size_t i = 0; i < v->s->ncols; i++) {
    const char *top = v->s->cols[i].path[0];
    if (!bson_has_field(v->projection, top)) BSON_APPEND_INT32(v->projection, top, 1);
  }
  return AS_OK;
}

int as_mongo_verify_open(as_node *n, const as_schema *s, bool client_hash, as_verify **out,
                         as_error *err) {
  *out = NULL;
  if (!n->pool) return as_error_set(err, AS_DOM_MONGO, AS_ERR, "node %s: not connected", n->name);
  if (s->nkey == 0) return as_error_set(err, AS_DOM_MONGO, AS_EINVAL, "mapping %s: no key", s->name);
  as_verify *v = calloc(1, sizeof *v);
  if (!v) return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  v->n = n;
  v->s = s;
  v->client = client_hash;
  snprintf(v->comp, sizeof v->comp, "verify:mongodb:%s", n->name);
  int rc = as_row_init(&v->row, s->ncols) == AS_OK
               ? AS_OK
               : as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  if (rc == AS_OK) {
    v->client_conn = mongoc_client_pool_pop(n->pool);
    v->coll = mongoc_client_get_collection(v->client_conn, n->database, s->collection);
  }
  if (rc == AS_OK && client_hash && client_projection(v) != AS_OK)
    rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  if (rc == AS_OK && !client_hash) {
    as_buf b = AS_BUF_INIT;
    json_error_t je;
    json_t *j = NULL;
    if (mq_rowtext(&b, s) != AS_OK) {
      rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
    } else if (!(j = json_loadb((const char *)b.data, b.len, JSON_ALLOW_NUL, &je))) {
      rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "mapping %s: internal error building the "
                        "hash expression: %s at %d", s->name, je.text, je.position);
    } else if (!(v->rowtext = bson_new()) || !json_to_bson_doc(v->rowtext, j)) {
      rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "mapping %s: the hash expression is too big",
                        s->name);
    }
    json_decref(j);
    as_buf_free(&b);
    if (rc == AS_OK) rc = probe(v, err);
  }
  if (rc != AS_OK) {
    as_mongo_verify_close(v);
    return rc;
  }
  *out = v;
  return AS_OK;
}

int as_mongo_verify_estimate(as_verify *v, int64_t *out, as_error *err) {
  bson_error_t be;
  int64_t n = mongoc_collection_estimated_document_count(v->coll, NULL, NULL, NULL, &be);
  if (n < 0) return as_mongo_fail(err, "verify: estimated count", &be, NULL);
  *out = n;
  return AS_OK;
}

typedef struct sign_ctx {
  as_seghash *out;
  size_t nb;
  const as_value *bounds;
  as_value *keys;
} sign_ctx;

static int sign_doc(as_verify *v, const bson_t *doc, void *vctx, as_error *err) {
  sign_ctx *c = vctx;
  bson_iter_t it;
  int64_t b = -1, n = 0, lo = 0, hi = 0;
  if (bson_iter_init(&it, doc)) {
    while (bson_iter_next(&it)) {
      const char *k = bson_iter_key(&it);
      int64_t x = bson_iter_as_int64(&it);
      if (strcmp(k, "_id") == 0) b = x;
      else if (strcmp(k, "n") == 0) n = x;
      else if (strcmp(k, "lo") == 0) lo = x;
      else if (strcmp(k, "hi") == 0) hi = x;
    }
  }
  if (b < 0 || (size_t)b > c->nb)
    return as_error_set(err, AS_DOM_MONGO, AS_ERR, "%s: unexpected segment number", v->comp);
  c->out[b].count = (uint64_t)n;
  c->out[b].sum = ((uint64_t)hi << 32) + (uint64_t)lo;
  return AS_OK;
}

/* Client mode: the segment of each document's key, found by binary search over the bounds. */
static int sign_doc_client(as_verify *v, const bson_t *doc, void *vctx, as_error *err) {
  sign_ctx *c = vctx;
  as_row key = {0};
  int rc = as_doc_to_key(v->s, doc, &key, err);
  if (rc != AS_OK) {
    as_row_clear(&key);
    return rc == AS_EDATA ? AS_OK : rc; /* a key of another type is in no range */
  }
  for (size_t k = 0; k < v->s->nkey; k++) as_value_move(&c->keys[k], &key.v[v->s->key_idx[k]]);
  as_row_clear(&key);
  size_t lo = 0, hi = c->nb; /* first bound > key */
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (key_cmp(v->s, c->keys, c->bounds + mid * v->s->nkey) < 0) hi = mid;
    else lo = mid + 1;
  }
  as_seghash_add(&c->out[lo], doc_hash(v, doc));
  return AS_OK;
}

int as_mongo_verify_sign(as_verify *v, const as_value *lo, const as_value *hi,
                         const as_value *bounds, size_t nb, as_seghash *out, as_error *err) {
  memset(out, 0, (nb + 1) * sizeof *out);
  sign_ctx c = {out, nb, bounds, NULL};
  if (v->client) {
    c.keys = calloc(v->s->nkey, sizeof *c.keys);
    if (!c.keys) return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
    int rc = find_range(v, lo, hi, sign_doc_client, &c, err);
    for (size_t k = 0; k < v->s->nkey; k++) as_value_clear(&c.keys[k]);
    free(c.keys);
    return rc;
  }
  bson_t p = BSON_INITIALIZER, st, proj;
  int rc = stage_match(v, &p, "0", lo, hi, err);
  BSON_APPEND_DOCUMENT_BEGIN(&p, "1", &st);
  BSON_APPEND_DOCUMENT_BEGIN(&st, "$project", &proj);
  BSON_APPEND_INT32(&proj, "_id", 0);
  if (rc == AS_OK) rc = append_bucket(&proj, "b", v, bounds, 0, nb, err);
  add_hash(v, &proj);
  bson_append_document_end(&st, &proj);
  bson_append_document_end(&p, &st);
  stage_group(&p, "2");
  if (rc == AS_OK) rc = aggregate(v, &p, "verify: segment signatures", sign_doc, &c, err);
  bson_destroy(&p);
  return rc;
}

typedef struct keys_ctx {
  as_value *keys; /* growing list, nkey values each */
  size_t n, cap;
} keys_ctx;

static int key_doc(as_verify *v, const bson_t *doc, void *vctx, as_error *err) {
  keys_ctx *c = vctx;
  size_t nk = v->s->nkey;
  if (c->n == c->cap) {
    size_t nc = c->cap ? c->cap * 2 : 256;
    as_value *nv = realloc(c->keys, nc * nk * sizeof *nv);
    if (!nv) return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
    memset(nv + c->cap * nk, 0, (nc - c->cap) * nk * sizeof *nv);
    c->keys = nv;
    c->cap = nc;
  }
  int rc = key_from(v, doc, c->keys + c->n * nk, err);
  if (rc == AS_EDATA) return AS_OK;
  if (rc == AS_OK) c->n++;
  return rc;
}

static const as_schema *sort_s;
static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;
static int key_qcmp(const void *a, const void *b) { return key_cmp(sort_s, a, b); }

int as_mongo_verify_split(as_verify *v, const as_value *lo, const as_value *hi, int64_t rows,
                          size_t parts, as_value **bounds, size_t *nb, as_error *err) {
  (void)rows;
  *bounds = NULL;
  *nb = 0;
  if (parts < 2) return AS_OK;
  size_t nk = v->s->nkey;
  keys_ctx c = {0};
  bson_t p = BSON_INITIALIZER, st, sample, proj;
  int rc = stage_match(v, &p, "0", lo, hi, err);
  BSON_APPEND_DOCUMENT_BEGIN(&p, "1", &st);
  BSON_APPEND_DOCUMENT_BEGIN(&st, "$sample", &sample);
  BSON_APPEND_INT64(&sample, "size", (int64_t)(parts * MQ_SAMPLE_PER_PART));
  bson_append_document_end(&st, &sample);
  bson_append_document_end(&p, &st);
  BSON_APPEND_DOCUMENT_BEGIN(&p, "2", &st);
  BSON_APPEND_DOCUMENT_BEGIN(&st, "$project", &proj);
  BSON_APPEND_INT32(&proj, "_id", 0);
  append_key_expr(&proj, "k", v);
  bson_append_document_end(&st, &proj);
  bson_append_document_end(&p, &st);
  if (rc == AS_OK) rc = aggregate(v, &p, "verify: sample keys", key_doc, &c, err);
  bson_destroy(&p);
  as_value *b = rc == AS_OK ? calloc(parts * nk, sizeof *b) : NULL;
  if (rc == AS_OK && !b) rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  size_t got = 0;
  if (rc == AS_OK && c.n) {
    pthread_mutex_lock(&sort_mu);
    sort_s = v->s;
    qsort(c.keys, c.n, nk * sizeof *c.keys, key_qcmp);
    pthread_mutex_unlock(&sort_mu);
    if (as_verify_bounds_from_sample(c.keys, c.n, nk, parts, b, &got) != AS_OK)
      rc = as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  }
  for (size_t i = 0; i < c.n * nk; i++) as_value_clear(&c.keys[i]);
  free(c.keys);
  if (rc != AS_OK) {
    free(b);
    return rc;
  }
  *bounds = b;
  *nb = got;
  return AS_OK;
}

typedef struct rows_ctx {
  int (*fn)(void *ctx, const as_value *key, uint64_t hash);
  void *ctx;
  as_value *keys;
} rows_ctx;

static int rows_doc(as_verify *v, const bson_t *doc, void *vctx, as_error *err) {
  rows_ctx *c = vctx;
  for (size_t k = 0; k < v->s->nkey; k++) as_value_clear(&c->keys[k]);
  int rc;
  uint64_t h;
  if (v->client) {
    as_row key = {0};
    rc = as_doc_to_key(v->s, doc, &key, err);
    for (size_t k = 0; rc == AS_OK && k < v->s->nkey; k++)
      as_value_move(&c->keys[k], &key.v[v->s->key_idx[k]]);
    as_row_clear(&key);
    h = rc == AS_OK ? doc_hash(v, doc) : 0;
  } else {
    bson_iter_t it;
    rc = key_from(v, doc, c->keys, err);
    h = bson_iter_init_find(&it, doc, "h") ? (uint64_t)bson_iter_as_int64(&it) : 0;
  }
  /* (a key of another type is in no range: a document found here whose key cannot be read has
   * the column's BSON type in another form, e.g. a subtype 3 UUID: counted, never equal) */
  if (rc == AS_EDATA) {
    AS_LOG(AS_LOG_WARN, v->comp, "%s", err->message);
    return c->fn(c->ctx, NULL, 0);
  }
  if (rc != AS_OK) return rc;
  return c->fn(c->ctx, c->keys, h);
}

int as_mongo_verify_rows(as_verify *v, const as_value *lo, const as_value *hi,
                         int (*fn)(void *ctx, const as_value *key, uint64_t hash), void *ctx,
                         as_error *err) {
  rows_ctx c = {fn, ctx, calloc(v->s->nkey, sizeof(as_value))};
  if (!c.keys) return as_error_set(err, AS_DOM_MONGO, AS_ERR, "out of memory");
  int rc;
  if (v->client) {
    rc = find_range(v, lo, hi, rows_doc, &c, err);
  } else {
    bson_t p = BSON_INITIALIZER, st, proj;
    rc = stage_match(v, &p, "0", lo, hi, err);
    BSON_APPEND_DOCUMENT_BEGIN(&p, "1", &st);
    BSON_APPEND_DOCUMENT_BEGIN(&st, "$project", &proj);
    BSON_APPEND_INT32(&proj, "_id", 0);
    append_key_expr(&proj, "k", v);
    add_hash(v, &proj);
    bson_append_document_end(&st, &proj);
    bson_append_document_end(&p, &st);
    if (rc == AS_OK) rc = aggregate(v, &p, "verify: row hashes", rows_doc, &c, err);
    bson_destroy(&p);
  }
  for (size_t k = 0; k < v->s->nkey; k++) as_value_clear(&c.keys[k]);
  free(c.keys);
  return rc;
}

uint64_t as_mongo_verify_bytes(as_verify *v) { return v->bytes; }

/* The canonical text expression of a mapping as JSON (tests and debugging). */
char *as_mongo_verify_expression(const as_schema *s) {
  as_buf b = AS_BUF_INIT;
  if (mq_rowtext(&b, s) != AS_OK) {
    as_buf_free(&b);
    return NULL;
  }
  return as_buf_steal(&b);
}
