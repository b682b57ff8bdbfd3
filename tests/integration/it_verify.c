/* it_verify.c — verify's row hash across databases (run by verify_it.py / test_verify.sh).
 *
 *   it_verify load CONFIG MAPPING FIRST COUNT SEED [--json-doubles] NODE...
 *       writes COUNT random rows (keys FIRST..FIRST+COUNT-1, values from SEED) of every mapped
 *       type to each NODE through the adapter's begin/apply/commit, so each database holds the
 *       same logical rows in its own representation. Values stay inside the domain every
 *       server expression renders exactly (see docs/VERIFY.md); --json-doubles adds doubles
 *       inside json values that MongoDB's $toString cannot print (outside that domain).
 *   it_verify hashes CONFIG MAPPING [--expect-sentinels] NODE...
 *       the property: for every row, the hash each database computes itself (verify_rows in
 *       server mode) equals the C hash of the row read back (read_row + as_rowhash) and the
 *       hashes of the other databases. With --expect-sentinels, rows may differ between
 *       servers but the C canonical texts of every node must still agree. Prints a summary;
 *       exit 1 on any mismatch (with both row texts).
 *   it_verify periodic CONFIG
 *       one as_verify_periodic (the verify `run` schedules with `verify: {every}`): prints the
 *       differing keys it counted and the metrics it set (arraysync_verify_* lines).
 * Exit status 0 on success; failures print "FAIL: ..." on stderr. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "as_config.h"
#include "as_key.h"
#include "as_log.h"
#include "as_metrics.h"
#include "as_rowhash.h"
#include "as_verify.h"

#define DIE(...)                  \
  do {                            \
    fprintf(stderr, "FAIL: ");    \
    fprintf(stderr, __VA_ARGS__); \
    fprintf(stderr, "\n");        \
    exit(1);                      \
  } while (0)

/* ------------------------------------------------------------ random values */

static uint64_t rng;
static uint64_t rnd(void) { /* splitmix64 */
  uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
static int rint_(int n) { return (int)(rnd() % (uint64_t)n); }

static void rand_text(as_buf *b, int maxlen) {
  static const char *const pieces[] = {"a", "Z", "0", " ", "|", "\"", "\\", "/", "\n", "\t", "\x01",
                                       "\x1f", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "~",
                                       "{", "}", ":", ",", "x", "y"};
  int n = rint_(maxlen + 1);
  for (int i = 0; i < n; i++) as_buf_append_str(b, pieces[rint_((int)(sizeof pieces / sizeof pieces[0]))]);
}

static void jstring(as_buf *b, const char *s, size_t n) {
  as_buf_putc(b, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') as_buf_printf(b, "\\%c", c);
    else if (c < 0x20) as_buf_printf(b, "\\u%04x", c);
    else as_buf_putc(b, c);
  }
  as_buf_putc(b, '"');
}

/* A key unique within its object (i): the AS-JSON reader refuses duplicate keys. */
static void rand_key(as_buf *b, int i) {
  as_buf t = AS_BUF_INIT;
  if (rint_(4) == 0) {
    as_buf_putc(&t, 'e'); /* (MongoDB refuses empty field names) */
    rand_text(&t, 3);
  } else {
    as_buf_printf(&t, "%c%d", "abkqz"[rint_(5)], rint_(30));
  }
  as_buf_printf(&t, "#%d", i);
  jstring(b, (const char *)t.data, t.len);
  as_buf_free(&t);
}

/* A double every server renders exactly inside json: few significant digits, no exponent. */
static double json_double(void) {
  static const double ok[] = {0.5, 1.0, 2.0, -3.25, 12.5, 0.001, 100000.0, 99.99, 1.5, -0.75};
  return ok[rint_(10)];
}

static void rand_json(as_buf *b, int depth, bool odd_doubles) {
  int k = depth <= 0 ? 2 + rint_(8) : rint_(11); /* no container below depth 0 */
  switch (k) {
    case 0: case 1: { /* object, keys in random order */
      int n = rint_(4);
      as_buf_putc(b, '{');
      for (int i = 0; i < n; i++) {
        if (i) as_buf_putc(b, ',');
        as_buf t = AS_BUF_INIT;
        as_buf_printf(&t, "k%d", i);
        if (rint_(3) == 0) rand_key(b, i);
        else jstring(b, (const char *)t.data, t.len);
        as_buf_free(&t);
        as_buf_putc(b, ':');
        rand_json(b, depth - 1, odd_doubles);
      }
      as_buf_putc(b, '}');
      break;
    }
    case 2: {
      as_buf t = AS_BUF_INIT;
      rand_text(&t, 6);
      jstring(b, (const char *)t.data, t.len);
      as_buf_free(&t);
      break;
    }
    case 3: as_buf_printf(b, "%d", (int)(rnd() % 2000001) - 1000000); break;
    case 4: /* int64 in the int32 range is wrapped; beyond it, plain */
      if (rint_(2)) as_buf_printf(b, "{\"$numberLong\":\"%d\"}", rint_(1000));
      else as_buf_printf(b, "%" PRId64, (int64_t)(rnd() >> 2) + (int64_t)3000000000);
      break;
    case 5: {
      double d = odd_doubles && rint_(2) ? (double)(rnd() % 1000000007) / 7.0 : json_double();
      char t[32];
      size_t n = as_double_format(d, t);
      if (!memchr(t, '.', n) && !memchr(t, 'e', n)) memcpy(t + n, ".0", 3);
      as_buf_append_str(b, t);
      break;
    }
    case 6: as_buf_printf(b, "{\"$numberDecimal\":\"%d.%02d\"}", rint_(1000), rint_(100)); break;
    case 7: as_buf_printf(b, "{\"$date\":{\"$numberLong\":\"%" PRId64 "\"}}", (int64_t)(rnd() % 4000000000000ULL)); break;
    case 8: as_buf_printf(b, "{\"$oid\":\"%012" PRIx64 "%012" PRIx64 "\"}", (uint64_t)(rnd() & 0xffffffffffffu), (uint64_t)(rnd() & 0xffffffffffffu)); break;
    case 9: as_buf_append_str(b, rint_(3) == 0 ? "null" : rint_(2) ? "true" : "false"); break;
    default: { /* array */
      int n = rint_(4);
      as_buf_putc(b, '[');
      for (int i = 0; i < n; i++) {
        if (i) as_buf_putc(b, ',');
        rand_json(b, depth - 1, odd_doubles);
      }
      as_buf_putc(b, ']');
      break;
    }
  }
}

static double rand_double(void) {
  switch (rint_(8)) {
    case 0: { /* any finite bits */
      uint64_t u;
      double d;
      do {
        u = rnd();
        memcpy(&d, &u, 8);
      } while (!isfinite(d));
      return d;
    }
    case 1: return ldexp((double)(rnd() >> 12), -1074 + rint_(60)); /* subnormals and tiny */
    case 2: return (double)((int64_t)(rnd() >> 20) - (1LL << 43));
    case 3: return (double)rint_(100000) / 100.0;
    case 4: return rint_(2) ? 0.0 : -0.0;
    case 5: return rint_(3) == 0 ? NAN : rint_(2) ? INFINITY : -INFINITY;
    default: return ((double)(rnd() >> 11) / 9007199254740992.0 - 0.5) * pow(10, rint_(40) - 20);
  }
}

static void rand_decimal(as_buf *b) {
  if (rint_(10) == 0) {
    as_buf_append_str(b, rint_(2) ? "0.00" : "-0.000");
    return;
  }
  int ni = 1 + rint_(18), nf = rint_(7);
  if (rint_(2)) as_buf_putc(b, '-');
  as_buf_putc(b, (uint8_t)('1' + rint_(9)));
  for (int i = 1; i < ni; i++) as_buf_putc(b, (uint8_t)('0' + rint_(10)));
  if (nf) {
    as_buf_putc(b, '.');
    for (int i = 0; i < nf; i++) as_buf_putc(b, (uint8_t)('0' + (i == nf - 1 && rint_(3) == 0 ? 0 : rint_(10))));
  }
}

/* A value of type t (NULL one time in eight for nullable columns). */
static void rand_value(const as_column *c, as_value *v, bool odd_doubles) {
  as_buf b = AS_BUF_INIT;
  if (!c->is_key && !c->required && rint_(8) == 0) {
    as_value_set_null(v);
    return;
  }
  switch (c->type) {
    case AS_T_BOOL: as_value_set_bool(v, rint_(2)); break;
    case AS_T_INT64: as_value_set_int64(v, rint_(3) ? (int64_t)(rnd() % 2000001) - 1000000 : (int64_t)rnd()); break;
    case AS_T_DOUBLE: as_value_set_double(v, rand_double()); break;
    case AS_T_DECIMAL:
      rand_decimal(&b);
      as_value_set_str(v, AS_T_DECIMAL, (const char *)b.data, b.len);
      break;
    case AS_T_TEXT:
      rand_text(&b, 12);
      as_value_set_str(v, AS_T_TEXT, (const char *)b.data, b.len);
      break;
    case AS_T_BYTES: {
      int n = rint_(20);
      for (int i = 0; i < n; i++) as_buf_putc(&b, (uint8_t)rnd());
      as_value_set_str(v, AS_T_BYTES, (const char *)b.data, b.len);
      break;
    }
    case AS_T_UUID: {
      uint8_t u[16];
      for (int i = 0; i < 16; i++) u[i] = (uint8_t)rnd();
      as_value_set_uuid(v, u);
      break;
    }
    case AS_T_OBJECTID: {
      uint8_t o[12];
      for (int i = 0; i < 12; i++) o[i] = (uint8_t)rnd();
      as_value_set_oid(v, o);
      break;
    }
    case AS_T_TIMESTAMP: /* milliseconds (MongoDB's precision), 1901..2099 */
      as_value_set_timestamp(v, ((int64_t)(rnd() % 6300000000000ULL) - 2200000000000LL) * 1000);
      break;
    case AS_T_DATE: as_value_set_date(v, (int32_t)(rnd() % 60000) - 20000); break;
    case AS_T_JSON:
      if (c->catch_all) { /* an object of unmapped fields, never empty */
        as_buf_append_str(&b, "{\"xa\":");
        rand_json(&b, 3, odd_doubles);
        if (rint_(2)) {
          as_buf_append_str(&b, ",\"xb\":");
          rand_json(&b, 3, odd_doubles);
        }
        if (rint_(2)) as_buf_append_str(&b, ",\"addr\":{\"zip\":\"0815\"}");
        as_buf_putc(&b, '}');
      } else if (rint_(8) == 0) { /* JSON null: a null field in MongoDB, not NULL (no field) */
        as_buf_append_str(&b, "null");
      } else {
        as_buf_putc(&b, rint_(3) ? '{' : '[');
        bool obj = b.data[0] == '{';
        int n = rint_(5);
        for (int i = 0; i < n; i++) {
          if (i) as_buf_putc(&b, ',');
          if (obj) {
            as_buf_printf(&b, "\"f%d\":", i * 7 % 5 + i);
          }
          rand_json(&b, 4, odd_doubles);
        }
        as_buf_putc(&b, obj ? '}' : ']');
      }
      as_value_set_str(v, AS_T_JSON, (const char *)b.data, b.len);
      break;
    default: as_value_set_null(v); break;
  }
  as_buf_free(&b);
}

/* ------------------------------------------------------------ nodes */

typedef struct tnode {
  const as_node_config *cfg;
  const as_adapter *ad;
  as_node *node;
} tnode;

static tnode open_node(const as_config *c, const char *name) {
  tnode t = {.cfg = as_config_node(c, name)};
  as_error err;
  if (!t.cfg) DIE("unknown node %s", name);
  t.ad = as_adapter_find(t.cfg->kind);
  const as_schema **ss = calloc(c->nschemas, sizeof *ss);
  for (size_t i = 0; i < c->nschemas; i++) ss[i] = c->schemas[i];
  if (t.ad->init(t.cfg, ss, c->nschemas, &t.node, &err) != AS_OK || t.ad->connect(t.node, &err) != AS_OK)
    DIE("node %s: %s", name, err.message);
  /* (the schemas array must outlive the node: leaked on purpose in this short program) */
  return t;
}

static int cmd_load(const as_config *c, const as_schema *s, int64_t first, int64_t count,
                    bool odd, int nn, char **names) {
  uint64_t seed = rng;
  for (int k = 0; k < nn; k++) {
    tnode t = open_node(c, names[k]);
    as_error err;
    rng = seed; /* the same rows on every node */
    for (int64_t i = 0; i < count;) {
      as_delta d[100];
      size_t nd = 0;
      for (; nd < 100 && i < count; nd++, i++) {
        as_delta_init(&d[nd], s, AS_OP_INSERT);
        for (size_t ci = 0; ci < s->ncols; ci++) {
          as_value v = AS_VALUE_NULL;
          if (s->cols[ci].is_key) as_value_set_int64(&v, first + i);
          else rand_value(&s->cols[ci], &v, odd);
          as_row_put(&d[nd].row, ci, &v);
        }
      }
      as_dead_list dead = {0};
      if (t.ad->begin(t.node, &err) != AS_OK || t.ad->apply(t.node, d, nd, &dead, &err) != AS_OK ||
          t.ad->commit(t.node, "it_verify", NULL, &err) != AS_OK)
        DIE("load %s: %s", names[k], err.message);
      if (dead.n) DIE("load %s: refused a row: %s", names[k], dead.items[0].error);
      for (size_t j = 0; j < nd; j++) as_delta_clear(&d[j]);
    }
    t.ad->exit(t.node);
    printf("loaded %" PRId64 " rows into %s\n", count, names[k]);
  }
  return 0;
}

/* ------------------------------------------------------------ hashes */

typedef struct hrow {
  int64_t key;
  uint64_t hash;
} hrow;

typedef struct hlist {
  hrow *v;
  size_t n, cap;
} hlist;

static int collect(void *ctx, const as_value *key, uint64_t hash) {
  hlist *l = ctx;
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 1024;
    l->v = realloc(l->v, l->cap * sizeof *l->v);
  }
  l->v[l->n].key = key[0].u.i;
  l->v[l->n].hash = hash;
  l->n++;
  return 0;
}

static int hrow_cmp(const void *a, const void *b) {
  int64_t x = ((const hrow *)a)->key, y = ((const hrow *)b)->key;
  return x < y ? -1 : x > y;
}

static uint64_t find_hash(const hlist *l, int64_t key, bool *found) {
  hrow probe = {key, 0};
  hrow *h = bsearch(&probe, l->v, l->n, sizeof *l->v, hrow_cmp);
  *found = h != NULL;
  return h ? h->hash : 0;
}

static int cmd_hashes(const as_config *c, const as_schema *s, bool sentinels, int nn, char **names) {
  tnode *t = calloc((size_t)nn, sizeof *t);
  hlist *h = calloc((size_t)nn, sizeof *h);
  as_error err;
  for (int k = 0; k < nn; k++) {
    t[k] = open_node(c, names[k]);
    as_verify *v;
    if (t[k].ad->verify_open(t[k].node, s, false, &v, &err) != AS_OK ||
        t[k].ad->verify_rows(v, NULL, NULL, collect, &h[k], &err) != AS_OK)
      DIE("%s: %s", names[k], err.message);
    t[k].ad->verify_close(v);
    qsort(h[k].v, h[k].n, sizeof *h[k].v, hrow_cmp);
  }
  size_t rows = 0, bad = 0, sent = 0;
  as_buf tx = AS_BUF_INIT, ty = AS_BUF_INIT;
  for (size_t i = 0; i < h[0].n; i++) {
    int64_t key = h[0].v[i].key;
    as_row kr = {0}, r0 = {0};
    as_row_init(&kr, s->ncols);
    as_value kv = AS_VALUE_NULL;
    as_value_set_int64(&kv, key);
    as_row_put(&kr, s->key_idx[0], &kv);
    rows++;
    for (int k = 0; k < nn; k++) {
      as_row r = {0};
      as_row_init(&r, s->ncols);
      bool found;
      uint64_t server = find_hash(&h[k], key, &found);
      if (!found) DIE("key %" PRId64 " missing on %s", key, names[k]);
      if (t[k].ad->read_row(t[k].node, s, &kr, &r, &err) != AS_OK)
        DIE("read %s key %" PRId64 ": %s", names[k], key, err.message);
      int64_t ch;
      as_buf_reset(&ty);
      if (as_rowhash(s, &r, &ty, &ch, &err) != AS_OK) DIE("%s", err.message);
      if (k == 0) {
        as_row_copy(&r0, &r);
        as_buf_reset(&tx);
        as_buf_append(&tx, ty.data, ty.len);
      } else if (tx.len != ty.len || memcmp(tx.data, ty.data, tx.len) != 0) {
        fprintf(stderr, "FAIL: key %" PRId64 ": C canonical text differs\n  %s: %s\n  %s: %s\n", key,
                names[0], as_buf_cstr(&tx), names[k], as_buf_cstr(&ty));
        bad++;
      }
      if (server != (uint64_t)ch) {
        if (sentinels) {
          sent++;
        } else {
          fprintf(stderr, "FAIL: key %" PRId64 ": %s computes %016" PRIx64 ", C %016" PRIx64
                          " for\n  %s\n", key, names[k], server, (uint64_t)ch, as_buf_cstr(&ty));
          bad++;
        }
      }
      as_row_clear(&r);
    }
    as_row_clear(&kr);
    as_row_clear(&r0);
  }
  for (int k = 1; k < nn; k++) {
    if (h[k].n != h[0].n) {
      fprintf(stderr, "FAIL: %s has %zu rows, %s %zu\n", names[k], h[k].n, names[0], h[0].n);
      bad++;
    }
  }
  printf("%zu rows on %d nodes: %zu mismatches%s", rows, nn, bad, sentinels ? "" : "\n");
  if (sentinels) printf(", %zu server hashes outside the exact domain (decided in C)\n", sent);
  as_buf_free(&tx);
  as_buf_free(&ty);
  for (int k = 0; k < nn; k++) {
    t[k].ad->exit(t[k].node);
    free(h[k].v);
  }
  free(t);
  free(h);
  return bad ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc < 3) DIE("usage: it_verify load|hashes|periodic CONFIG [MAPPING ...]");
  as_log_set_level(AS_LOG_WARN);
  as_config *c;
  as_error err;
  if (as_config_load(argv[2], &c, &err) != AS_OK) DIE("%s", err.message);
  if (strcmp(argv[1], "periodic") == 0) {
    int64_t n = as_verify_periodic(c, false, &err);
    if (n < 0) DIE("%s", err.message);
    printf("periodic differing=%lld\n", (long long)n);
    char *m = as_metrics_render();
    for (char *line = strtok(m, "\n"); line; line = strtok(NULL, "\n")) {
      if (strncmp(line, "arraysync_verify_", 17) == 0) printf("%s\n", line);
    }
    free(m);
    return 0;
  }
  const as_schema *s = argc > 3 ? as_config_schema(c, argv[3]) : NULL;
  if (!s) DIE("no mapping %s", argc > 3 ? argv[3] : "(none given)");
  if (s->nkey != 1 || s->cols[s->key_idx[0]].type != AS_T_INT64) DIE("the mapping needs one int64 key");
  if (strcmp(argv[1], "load") == 0) {
    if (argc < 8) DIE("usage: it_verify load CONFIG MAPPING FIRST COUNT SEED [--json-doubles] NODE...");
    rng = strtoull(argv[6], NULL, 10);
    int a = 7;
    bool odd = false;
    if (strcmp(argv[a], "--json-doubles") == 0) odd = true, a++;
    return cmd_load(c, s, strtoll(argv[4], NULL, 10), strtoll(argv[5], NULL, 10), odd, argc - a,
                    argv + a);
  }
  if (strcmp(argv[1], "hashes") == 0) {
    int a = 4;
    bool sent = false;
    if (a < argc && strcmp(argv[a], "--expect-sentinels") == 0) sent = true, a++;
    return cmd_hashes(c, s, sent, argc - a, argv + a);
  }
  DIE("unknown command %s", argv[1]);
}
