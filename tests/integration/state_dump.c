/* state_dump.c — a test tool (arraysync_state_dump, CMakeLists.txt): prints what a state store
 * believes each node holds, to explain a `verify --quick` difference (docs/VERIFY.md).
 *
 *   arraysync_state_dump STATE.db [MAPPING]
 *
 * One JSON line per key: its row version, column versions with their holder masks, the held
 * entries, and "current" (the nodes whose signatures the key adds to). Then, per mapping and
 * node, whether the signatures stored in quick_buckets equal those recomputed from the
 * records ("quick" lines). Opens the store read-only; reads nothing else. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "as_state.h"
#include "as_state_int.h"

#define MAX_NODES 64

typedef struct sums {
  as_quick_sig sig[MAX_NODES][AS_QUICK_BUCKETS];
} sums;

/* as_state_quick.c's rule: the node holds the row version and every column version. */
static bool current(const as_version *v, uint16_t node) {
  if (!v->origin[0]) return false;
  uint64_t bit = 1ull << (node % 64);
  if (!(v->row_mask & bit)) return false;
  for (uint8_t i = 0; i < v->ncolv; i++)
    if (!(v->colv[i].mask & bit)) return false;
  return true;
}

static json_t *version_json(as_state *st, const char *key, const as_version *v) {
  json_t *o = json_pack("{s:s, s:I, s:s, s:b, s:I}", "key", key, "hlc", (json_int_t)v->hlc,
                        "origin", v->origin, "deleted", v->deleted, "row_mask",
                        (json_int_t)v->row_mask);
  json_t *cols = json_array(), *held = json_array(), *cur = json_array();
  for (uint8_t i = 0; i < v->ncolv; i++) {
    const char *o2 = as_state_node_name(st, v->colv[i].origin);
    json_array_append_new(cols, json_pack("{s:i, s:s, s:I, s:I}", "col", v->colv[i].col, "origin",
                                          o2 ? o2 : "?", "hlc", (json_int_t)v->colv[i].hlc, "mask",
                                          (json_int_t)v->colv[i].mask));
  }
  for (uint8_t i = 0; i < v->nheld; i++) {
    const as_held *h = &v->held[i];
    const char *n = as_state_node_name(st, h->node), *o2 = as_state_node_name(st, h->origin);
    json_array_append_new(
        held, json_pack("{s:s, s:s, s:I, s:b, s:b, s:I, s:I, s:b, s:I}", "node", n ? n : "?",
                        "origin", o2 ? o2 : "?", "hlc", (json_int_t)h->hlc, "deleted", h->deleted,
                        "made", h->made, "written_us", (json_int_t)h->written_us, "wrote_us",
                        (json_int_t)h->wrote_us, "pending", h->wrote_pending, "order",
                        (json_int_t)h->wrote_order));
  }
  for (size_t i = 0; i < st->nnodes; i++)
    if (current(v, (uint16_t)st->nodes[i].id)) json_array_append_new(cur, json_string(st->nodes[i].name));
  json_object_set_new(o, "cols", cols);
  json_object_set_new(o, "held", held);
  json_object_set_new(o, "current", cur);
  return o;
}

static void add_sums(as_state *st, sums *s, const char *key, const as_version *v) {
  uint32_t b = as_quick_bucket(key);
  uint64_t d = 0;
  for (size_t i = 0; i < st->nnodes && i < MAX_NODES; i++) {
    if (!current(v, (uint16_t)st->nodes[i].id)) continue;
    if (!d) d = as_quick_digest(key, v);
    s->sig[i][b].sum += d;
    s->sig[i][b].count += v->deleted ? 0 : 1;
  }
}

static void compare_sums(as_state *st, const char *mapping, const sums *s) {
  for (size_t i = 0; i < st->nnodes && i < MAX_NODES; i++) {
    as_quick_sig stored[AS_QUICK_BUCKETS];
    as_error err;
    int rc = as_state_quick_load(st, mapping, st->nodes[i].name, stored, &err);
    if (rc != AS_OK && rc != AS_ENOTFOUND) {
      fprintf(stderr, "state_dump: %s\n", err.message);
      continue;
    }
    int differ = 0;
    for (int b = 0; b < AS_QUICK_BUCKETS; b++) {
      if (stored[b].sum == s->sig[i][b].sum && stored[b].count == s->sig[i][b].count) continue;
      differ++;
      printf("{\"quick_bucket\": %d, \"mapping\": \"%s\", \"node\": \"%s\", \"stored_count\": "
             "%" PRId64 ", \"recomputed_count\": %" PRId64 "}\n",
             b, mapping, st->nodes[i].name, stored[b].count, s->sig[i][b].count);
    }
    printf("{\"quick\": \"%s\", \"mapping\": \"%s\", \"node\": \"%s\", \"buckets_differing\": %d}\n",
           differ ? "stored signatures differ from the records" : "stored signatures match the records",
           mapping, st->nodes[i].name, differ);
  }
}

static int dump_mapping(as_state *st, int64_t mid, const char *mapping) {
  sqlite3_stmt *q = NULL;
  if (sqlite3_prepare_v2(st->db, "SELECT key FROM versions WHERE m = ?1 AND part = 0 ORDER BY key",
                         -1, &q, NULL) != SQLITE_OK) {
    fprintf(stderr, "state_dump: %s\n", sqlite3_errmsg(st->db));
    return 1;
  }
  sqlite3_bind_int64(q, 1, mid);
  static sums s;
  memset(&s, 0, sizeof s);
  int status = 0;
  while (sqlite3_step(q) == SQLITE_ROW) {
    char *key = sqlite3_column_type(q, 0) == SQLITE_TEXT
                    ? strdup((const char *)sqlite3_column_text(q, 0))
                    : as_state_key_unpack(st, sqlite3_column_blob(q, 0),
                                          (size_t)sqlite3_column_bytes(q, 0));
    as_version v;
    as_error err;
    if (key && as_state_version_get(st, mapping, key, &v, &err) == AS_OK) {
      json_t *o = version_json(st, key, &v);
      json_object_set_new(o, "mapping", json_string(mapping));
      char *line = json_dumps(o, JSON_COMPACT);
      if (line) puts(line);
      free(line);
      json_decref(o);
      add_sums(st, &s, key, &v);
    } else {
      fprintf(stderr, "state_dump: %s: %s\n", key ? key : "?", key ? err.message : "out of memory");
      status = 1;
    }
    free(key);
  }
  sqlite3_finalize(q);
  compare_sums(st, mapping, &s);
  return status;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s STATE.db [MAPPING]\n", argv[0]);
    return 2;
  }
  as_state *st = NULL;
  as_error err;
  if (as_state_open(argv[1], true, &st, &err) != AS_OK) {
    fprintf(stderr, "state_dump: %s\n", err.message);
    return 1;
  }
  int status = 0;
  for (size_t i = 0; i < st->nmappings; i++)
    if (argc < 3 || strcmp(argv[2], st->mappings[i].name) == 0)
      status |= dump_mapping(st, st->mappings[i].id, st->mappings[i].name);
  as_state_close(st);
  return status;
}
