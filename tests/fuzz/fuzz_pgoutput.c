/* fuzz_pgoutput.c — the pgoutput (logical replication protocol v1) decoder of the PostgreSQL
 * adapter (adapters/postgres/pg_logical.c), without a server: a sequence of message bodies is
 * fed to the stream's own message decoder through pg_logical_decode, on a node built by the
 * adapter's init (never connected) with two mappings in schema public:
 *   table "items": FUZZ_MAP_ALL (every column type, key (id, n)), on_truncate: propagate;
 *   table "notes": FUZZ_MAP_TEXT (text key), on_truncate: stop (a truncate is an error);
 * arraysync.marks (column "origin") sets the origin of the changes that follow; the stream's
 * consumer is "peer" (its own echoes are left out).
 *
 * Input: messages, each a 2-byte big-endian length and that many bytes (a Relation 'R',
 * Begin 'B', Commit 'C', Insert 'I', Update 'U', Delete 'D', Truncate 'T', Type 'Y', Origin
 * 'O' or Message 'M' body, from the type byte on); a short last length takes what is left.
 * Each message is copied to a buffer of its own size, so a read past it is caught by ASan.
 * FUZZ_VERBOSE=1 prints what each input decoded to. Seeds: gen_pgoutput_corpus.py.
 *
 * Properties checked beyond "no crash, no leak":
 * - every error return carries a message;
 * - every delta belongs to a mapping of the node, has the mapping's column count, an origin,
 *   a position and a transaction; every delta but a truncate has every key column set and not
 *   null; a truncate has no column set and belongs to "items" (propagate);
 * - an update's row image, when present, has every column set and the row's key values;
 * - every dead letter has an error message and a raw change that is a JSON object;
 * - a row read back: every insert or update delta with all its columns, written as PostgreSQL
 *   text (pg_value_to_text) into a Relation + Insert of its table (columns in an order of
 *   their own, with an unmapped column), decodes to one insert delta with equal values. */
#include <jansson.h>

#include "adapter.h"
#include "as_log.h"
#include "fuzz_common.h"
#include "fuzz_mappings.h"
#include "pg_internal.h"

#define MAX_MSGS 256

static as_schema *sc_all, *sc_text;
static as_node *node;
static const as_adapter *pg;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  as_log_set_level(AS_LOG_ERROR);
  sc_all = fuzz_schema(FUZZ_MAP_ALL "table: items\non_truncate: propagate\n");
  sc_text = fuzz_schema(FUZZ_MAP_TEXT "table: notes\n");
  pg = as_adapter_find("postgres");
  as_node_option opts[] = {{.key = "dsn", .value = "host=127.0.0.1 port=1 dbname=none"},
                           {.key = "capture", .value = "logical"}};
  as_node_config cfg = {.name = "pg", .kind = "postgres", .opts = opts, .nopts = 2};
  const as_schema *schemas[] = {sc_all, sc_text};
  as_error err = {0};
  if (!pg || pg->init(&cfg, schemas, 2, &node, &err) != AS_OK) {
    fprintf(stderr, "fuzz: postgres node does not build: %s\n", err.message);
    abort();
  }
  return 0;
}

/* ---- building messages (the row read back) ---- */

static void put_be(as_buf *b, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; i--) {
    if (as_buf_putc(b, (uint8_t)((v >> (8 * i)) & 0xff)) != AS_OK) abort();
  }
}

static void put_str(as_buf *b, const char *s) {
  if (as_buf_append(b, s, strlen(s) + 1) != AS_OK) abort();
}

/* Relation relid "public"."table" with the schema's columns in reverse order, an unmapped
 * column "extra" in the middle. */
static void relation_msg(as_buf *b, const as_schema *s, uint32_t relid) {
  put_be(b, 'R', 1);
  put_be(b, relid, 4);
  put_str(b, "public");
  put_str(b, s->table);
  put_be(b, 'd', 1);
  put_be(b, s->ncols + 1, 2);
  for (size_t j = 0; j <= s->ncols; j++) {
    put_be(b, 0, 1);
    put_str(b, j == s->ncols / 2 ? "extra" : s->cols[s->ncols - 1 - (j - (j > s->ncols / 2))].name);
    put_be(b, 25, 4);
    put_be(b, (uint64_t)-1, 4);
  }
}

/* Insert of row r into relid (relation_msg's column order); false if a value has no text. */
static bool insert_msg(as_buf *b, const as_schema *s, uint32_t relid, const as_row *r) {
  put_be(b, 'I', 1);
  put_be(b, relid, 4);
  put_be(b, 'N', 1);
  put_be(b, s->ncols + 1, 2);
  for (size_t j = 0; j <= s->ncols; j++) {
    if (j == s->ncols / 2) {
      put_be(b, 't', 1);
      put_be(b, 3, 4);
      if (as_buf_append(b, "xyz", 3) != AS_OK) abort();
      continue;
    }
    const as_value *v = &r->v[s->ncols - 1 - (j - (j > s->ncols / 2))];
    char *text = NULL;
    as_error err = {0};
    if (pg_value_to_text(v, &text, &err) != AS_OK) return false;
    if (!text) {
      put_be(b, 'n', 1);
      continue;
    }
    put_be(b, 't', 1);
    put_be(b, strlen(text), 4);
    if (as_buf_append(b, text, strlen(text)) != AS_OK) abort();
    free(text);
  }
  return true;
}

static void check_read_back(const as_delta *d) {
  const as_schema *s = d->schema;
  for (size_t i = 0; i < s->ncols; i++) {
    if (!as_row_has(&d->row, i)) return;
  }
  as_buf m[3] = {AS_BUF_INIT, AS_BUF_INIT, AS_BUF_INIT};
  put_be(&m[0], 'B', 1);
  put_be(&m[0], 0x10, 8);
  put_be(&m[0], 0, 8);
  put_be(&m[0], 7, 4);
  relation_msg(&m[1], s, 0xfffffff0u);
  if (insert_msg(&m[2], s, 0xfffffff0u, &d->row)) {
    const uint8_t *msg[3];
    size_t len[3];
    for (int i = 0; i < 3; i++) {
      msg[i] = (const uint8_t *)m[i].data;
      len[i] = m[i].len;
    }
    as_batch out = {0};
    as_error err = {0};
    int rc = pg_logical_decode(node, "peer", msg, len, 3, &out, &err);
    FUZZ_CHECK(rc == AS_OK, "mapping %s: a decoded row written as text does not decode: %s",
               s->name, err.message);
    FUZZ_CHECK(out.n == 1 && out.ndead == 0, "mapping %s: read back gives %zu deltas, %zu dead (%s)",
               s->name, out.n, out.ndead, out.ndead ? out.dead[0].error : "");
    FUZZ_CHECK(out.d[0].op == AS_OP_INSERT && out.d[0].schema == s && !out.d[0].echo,
               "mapping %s: read back is not a local insert", s->name);
    size_t col = 0;
    FUZZ_CHECK(fuzz_rows_equal(&d->row, &out.d[0].row, &col),
               "mapping %s: column %s differs after writing as text and decoding", s->name,
               s->cols[col].name);
    as_batch_clear(&out);
  }
  for (int i = 0; i < 3; i++) as_buf_free(&m[i]);
}

/* ---- properties of one decode ---- */

static void check_delta(const as_delta *d) {
  const as_schema *s = d->schema;
  FUZZ_CHECK(s == sc_all || s == sc_text, "delta of an unknown mapping");
  FUZZ_CHECK(d->row.n == s->ncols, "mapping %s: row of %zu columns", s->name, d->row.n);
  FUZZ_CHECK(d->origin && d->origin[0] && d->pos && d->txn, "mapping %s: delta without origin, "
             "position or transaction", s->name);
  if (d->op == AS_OP_TRUNCATE) {
    FUZZ_CHECK(s == sc_all, "truncate of mapping %s (on_truncate: stop)", s->name);
    for (size_t i = 0; i < s->ncols; i++)
      FUZZ_CHECK(!as_row_has(&d->row, i), "truncate with column %s", s->cols[i].name);
    return;
  }
  FUZZ_CHECK(d->op == AS_OP_INSERT || d->op == AS_OP_UPDATE || d->op == AS_OP_DELETE,
             "mapping %s: op %d", s->name, (int)d->op);
  for (size_t j = 0; j < s->nkey; j++) {
    size_t k = s->key_idx[j];
    FUZZ_CHECK(as_row_has(&d->row, k) && d->row.v[k].type != AS_T_NULL,
               "mapping %s: %s delta without key column %s", s->name, as_op_name(d->op),
               s->cols[k].name);
  }
  if (d->op == AS_OP_DELETE) {
    for (size_t i = 0; i < s->ncols; i++)
      FUZZ_CHECK(as_row_has(&d->row, i) == s->cols[i].is_key, "delete: column %s",
                 s->cols[i].name);
  }
  if (d->image.n) {
    FUZZ_CHECK(d->op == AS_OP_UPDATE && d->image.n == s->ncols, "image of a %s", as_op_name(d->op));
    for (size_t i = 0; i < s->ncols; i++) {
      FUZZ_CHECK(as_row_has(&d->image, i), "image without column %s", s->cols[i].name);
      if (s->cols[i].is_key)
        FUZZ_CHECK(as_value_equal(&d->image.v[i], &d->row.v[i]), "image key %s differs",
                   s->cols[i].name);
    }
  }
  if (d->op == AS_OP_INSERT || d->op == AS_OP_UPDATE) check_read_back(d);
}

static void check_dead(const as_dead *x) {
  FUZZ_CHECK(x->error && x->error[0], "dead letter without an error");
  FUZZ_CHECK(x->raw, "dead letter without its raw change (%s)", x->error);
  json_error_t je;
  json_t *j = json_loads(x->raw, JSON_ALLOW_NUL, &je);
  FUZZ_CHECK(json_is_object(j), "dead letter raw change is not a JSON object: %s", x->raw);
  json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!node) LLVMFuzzerInitialize(NULL, NULL);
  uint8_t *msg[MAX_MSGS];
  size_t len[MAX_MSGS], n = 0;
  while (size >= 2 && n < MAX_MSGS) {
    size_t l = (size_t)data[0] << 8 | data[1];
    data += 2;
    size -= 2;
    if (l > size) l = size;
    msg[n] = malloc(l ? l : 1);
    if (!msg[n]) abort();
    memcpy(msg[n], data, l);
    len[n++] = l;
    data += l;
    size -= l;
  }
  as_batch out = {0};
  as_error err = {0};
  int rc = pg_logical_decode(node, "peer", (const uint8_t *const *)msg, len, n, &out, &err);
  FUZZ_CHECK_ERR(rc, &err);
  if (getenv("FUZZ_VERBOSE"))
    fprintf(stderr, "  %zu messages: rc %d%s%s, %zu deltas, %zu dead%s%s\n", n, rc, rc ? ": " : "",
            rc ? err.message : "", out.n, out.ndead, out.ndead ? ": " : "",
            out.ndead ? out.dead[0].error : "");
  FUZZ_CHECK(rc == AS_OK || rc == AS_ERR, "unexpected rc %d: %s", rc, err.message);
  for (size_t i = 0; i < out.n; i++) check_delta(&out.d[i]);
  for (size_t i = 0; i < out.ndead; i++) check_dead(&out.dead[i]);
  as_batch_clear(&out);
  for (size_t i = 0; i < n; i++) free(msg[i]);
  return 0;
}
