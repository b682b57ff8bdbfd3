/* cmd_verify.c — `arraysync verify` on the command line: options, output, exit code.
 *
 *   arraysync verify -c FILE [--mapping M]... [--nodes A,B] [--repair [--prefer NODE]]
 *                    [--json] [--hash-on auto|server|client] [--recheck-after DUR]
 *
 * Exit codes: 0 equal (with --repair: nothing left to repair), 3 differences found (with
 * --repair: some left alone), 1 runtime error, 2 bad usage or configuration. */
#include "cmd_verify.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "as_config.h"
#include "as_log.h"
#include "as_verify.h"
#include "as_yaml.h"

#define FIRST_KEYS 5

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_DIFFERENT = 3 };

/* ------------------------------------------------------------ output */

static json_t *key_array(const as_verify_keys *l) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < l->n; i++) {
    json_t *k = json_loads(l->v[i], JSON_DECODE_ANY, NULL);
    json_array_append_new(a, k ? k : json_string(l->v[i]));
  }
  return a;
}

int as_verify_print_json(const as_verify_report *r, FILE *out) {
  json_t *arr = json_array();
  for (size_t i = 0; arr && i < r->n; i++) {
    const as_verify_pair *x = &r->p[i];
    json_t *o = json_object(), *rows = json_object(), *only = json_object(),
           *bytes = json_object(), *nodes = json_array();
    json_array_append_new(nodes, json_string(x->a));
    json_array_append_new(nodes, json_string(x->b));
    json_object_set_new(rows, x->a, json_integer(x->rows_a));
    json_object_set_new(rows, x->b, json_integer(x->rows_b));
    json_object_set_new(only, x->a, key_array(&x->only_a));
    json_object_set_new(only, x->b, key_array(&x->only_b));
    json_object_set_new(bytes, x->a, json_integer((json_int_t)x->bytes_a));
    json_object_set_new(bytes, x->b, json_integer((json_int_t)x->bytes_b));
    json_object_set_new(o, "mapping", json_string(x->s->name));
    json_object_set_new(o, "nodes", nodes);
    json_object_set_new(o, "equal", json_boolean(as_verify_pair_differences(x) == 0));
    json_t *unr = json_object();
    json_object_set_new(unr, x->a, json_integer((json_int_t)x->unreadable_a));
    json_object_set_new(unr, x->b, json_integer((json_int_t)x->unreadable_b));
    json_object_set_new(o, "unreadable", unr);
    json_object_set_new(o, "rows", rows);
    json_object_set_new(o, "only_in", only);
    json_object_set_new(o, "different", key_array(&x->different));
    json_object_set_new(o, "segments", json_integer((json_int_t)x->segments));
    json_object_set_new(o, "bytes", bytes);
    json_object_set_new(o, "seconds", json_real(round(x->seconds * 1000.0) / 1000.0));
    json_object_set_new(o, "hash_on",
                        json_string(x->quick ? "state" : x->client ? "client" : "server"));
    json_array_append_new(arr, o);
  }
  char *s = arr ? json_dumps(arr, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) : NULL;
  json_decref(arr);
  if (!s) return AS_ERR;
  fprintf(out, "%s\n", s);
  free(s);
  return AS_OK;
}

static void human_bytes(uint64_t b, char *out, size_t n) {
  if (b < 1024) snprintf(out, n, "%llu B", (unsigned long long)b);
  else if (b < 1024 * 1024) snprintf(out, n, "%.1f KiB", (double)b / 1024);
  else snprintf(out, n, "%.1f MiB", (double)b / (1024 * 1024));
}

static void key_line(FILE *out, const char *what, const as_verify_keys *l) {
  fprintf(out, "  %s: %zu", what, l->n);
  for (size_t i = 0; i < l->n && i < FIRST_KEYS; i++) fprintf(out, "%s%s", i ? ", " : "  ", l->v[i]);
  if (l->n > FIRST_KEYS) fprintf(out, ", ... (%zu more)", l->n - FIRST_KEYS);
  fputc('\n', out);
}

void as_verify_print_text(const as_verify_report *r, bool repair, FILE *out) {
  for (size_t i = 0; i < r->n; i++) {
    const as_verify_pair *x = &r->p[i];
    size_t nd = as_verify_pair_differences(x);
    fprintf(out, "mapping %s, %s <-> %s: %s (%s)\n", x->s->name, x->a, x->b,
            nd ? "DIFFERENT" : "equal",
            x->quick ? "quick: the state store's signatures, no table read"
                     : x->client ? "rows hashed on the client" : "rows hashed on the server");
    if (x->quick && x->buckets_differ)
      fprintf(out, "  %zu of %llu key-hash buckets differ (a full verify names the keys)\n",
              x->buckets_differ, (unsigned long long)x->segments);
    if (x->note[0]) fprintf(out, "  note: %s\n", x->note);
    fprintf(out, "  rows: %s %lld, %s %lld\n", x->a, (long long)x->rows_a, x->b,
            (long long)x->rows_b);
    if (x->unreadable_a || x->unreadable_b)
      fprintf(out, "  rows whose key the mapping cannot read (see `arraysync dlq list`): %s %zu, "
              "%s %zu\n", x->a, x->unreadable_a, x->b, x->unreadable_b);
    if (nd && !x->quick) {
      char w[96];
      snprintf(w, sizeof w, "only in %s", x->a);
      key_line(out, w, &x->only_a);
      snprintf(w, sizeof w, "only in %s", x->b);
      key_line(out, w, &x->only_b);
      key_line(out, "different", &x->different);
    }
    if (repair && nd)
      fprintf(out, "  repaired: %zu keys; left alone: %zu (no known winner)\n", x->repaired,
              x->unresolved);
    char ba[32], bb[32];
    human_bytes(x->bytes_a, ba, sizeof ba);
    human_bytes(x->bytes_b, bb, sizeof bb);
    fprintf(out, "  %llu segments compared in %.2f s; received %s from %s, %s from %s%s\n",
            (unsigned long long)x->segments, x->seconds, ba, x->a, bb, x->b,
            x->bytes_a == 0 || x->bytes_b == 0 ? " (SQLite is read in-process: 0)" : "");
  }
}

/* ------------------------------------------------------------ command line */

typedef struct vcli {
  const char *config;
  const char **mappings;
  size_t nmappings;
  char *nodes_arg;
  bool json;
  const char *log_level;
  as_verify_opts o;
} vcli;

static void usage(FILE *f) {
  fprintf(f,
          "usage: arraysync verify -c FILE [--mapping M]... [--nodes A,B] [--repair [--prefer NODE]]\n"
          "                        [--json] [--hash-on auto|server|client] [--recheck-after DUR] [--quick]\n"
          "Compares every mapping between the nodes that share it (see docs/VERIFY.md).\n"
          "Exit codes: 0 equal, 3 differences, 1 runtime error, 2 bad usage or configuration.\n");
}

static int parse(int argc, char **argv, vcli *c) {
  static const struct option longopts[] = {
      {"config", required_argument, NULL, 'c'},   {"mapping", required_argument, NULL, 'm'},
      {"nodes", required_argument, NULL, 'n'},    {"repair", no_argument, NULL, 'r'},
      {"prefer", required_argument, NULL, 'p'},   {"json", no_argument, NULL, 'j'},
      {"hash-on", required_argument, NULL, 'H'},  {"recheck-after", required_argument, NULL, 'R'},
      {"log-level", required_argument, NULL, 'L'}, {"help", no_argument, NULL, 'h'},
      {"quick", no_argument, NULL, 'Q'},
      {NULL, 0, NULL, 0}};
  c->o.recheck_after_ms = -1;
  optind = 1;
  int ch;
  while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
    switch (ch) {
      case 'c': c->config = optarg; break;
      case 'm': {
        const char **nm = realloc(c->mappings, (c->nmappings + 1) * sizeof *nm);
        if (!nm) return EXIT_RUNTIME;
        c->mappings = nm;
        c->mappings[c->nmappings++] = optarg;
        break;
      }
      case 'n': {
        free(c->nodes_arg);
        c->nodes_arg = strdup(optarg);
        char *comma = c->nodes_arg ? strchr(c->nodes_arg, ',') : NULL;
        if (!comma || comma == c->nodes_arg || !comma[1] || strchr(comma + 1, ',')) {
          fprintf(stderr, "arraysync verify: --nodes needs two node names: A,B (not \"%s\")\n", optarg);
          return EXIT_USAGE;
        }
        *comma = '\0';
        c->o.node_a = c->nodes_arg;
        c->o.node_b = comma + 1;
        break;
      }
      case 'r': c->o.repair = true; break;
      case 'p': c->o.prefer = optarg; break;
      case 'j': c->json = true; break;
      case 'Q': c->o.quick = true; break;
      case 'L': c->log_level = optarg; break;
      case 'H':
        if (strcmp(optarg, "auto") == 0) c->o.hash_on = AS_HASH_AUTO;
        else if (strcmp(optarg, "server") == 0) c->o.hash_on = AS_HASH_SERVER;
        else if (strcmp(optarg, "client") == 0) c->o.hash_on = AS_HASH_CLIENT;
        else {
          fprintf(stderr, "arraysync verify: --hash-on must be auto, server or client\n");
          return EXIT_USAGE;
        }
        break;
      case 'R':
        if (as_parse_duration_ms(optarg, &c->o.recheck_after_ms) != AS_OK) {
          fprintf(stderr, "arraysync verify: --recheck-after: bad duration '%s' (e.g. 0, 500ms, 2s)\n",
                  optarg);
          return EXIT_USAGE;
        }
        break;
      case 'h': usage(stdout); exit(EXIT_OK);
      default: usage(stderr); return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "arraysync verify: unexpected argument '%s'\n", argv[optind]);
    return EXIT_USAGE;
  }
  if (!c->config) {
    fprintf(stderr, "arraysync verify: -c FILE is required (the top-level configuration)\n");
    return EXIT_USAGE;
  }
  if (c->o.quick && c->o.repair) {
    fprintf(stderr, "arraysync verify: --quick names no keys, so it cannot --repair\n");
    return EXIT_USAGE;
  }
  if (c->o.prefer && !c->o.repair) {
    fprintf(stderr, "arraysync verify: --prefer only applies with --repair\n");
    return EXIT_USAGE;
  }
  c->o.mappings = c->mappings;
  c->o.nmappings = c->nmappings;
  return EXIT_OK;
}

int as_cmd_verify(int argc, char **argv) {
  vcli c = {0};
  as_config *cfg = NULL;
  as_verify_report r = {0};
  as_error err;
  int rc = parse(argc, argv, &c);
  if (rc != EXIT_OK) goto done;
  if (as_config_load(c.config, &cfg, &err) != AS_OK) {
    fprintf(stderr, "%s\n", err.message);
    rc = EXIT_USAGE;
    goto done;
  }
  as_log_level lvl;
  const char *ls = c.log_level ? c.log_level : cfg->log_level ? cfg->log_level : "warn";
  if (!as_log_parse_level(ls, &lvl)) {
    fprintf(stderr, "arraysync verify: unknown log level '%s'\n", ls);
    rc = EXIT_USAGE;
    goto done;
  }
  as_log_set_level(c.log_level ? lvl : (lvl < AS_LOG_WARN ? lvl : AS_LOG_WARN));
  int vr = as_verify_run(cfg, &c.o, &r, &err);
  if (vr != AS_OK) {
    fprintf(stderr, "arraysync verify: %s\n", err.message);
    rc = vr == AS_EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
    goto done;
  }
  if (c.json) as_verify_print_json(&r, stdout);
  else as_verify_print_text(&r, c.o.repair, stdout);
  if (c.json && c.o.repair) {
    for (size_t i = 0; i < r.n; i++) {
      const as_verify_pair *x = &r.p[i];
      if (x->only_a.n + x->only_b.n + x->different.n)
        fprintf(stderr, "arraysync verify: mapping %s, %s <-> %s: repaired %zu keys, left alone %zu\n",
                x->s->name, x->a, x->b, x->repaired, x->unresolved);
    }
  }
  rc = as_verify_report_equal(&r, c.o.repair) ? EXIT_OK : EXIT_DIFFERENT;
done:
  as_verify_report_free(&r);
  as_config_free(cfg);
  free(c.mappings);
  free(c.nodes_arg);
  return rc;
}
