/* bench_lua.c — cost of a Lua conflict script call (connector/as_lua.h) per conflict.
 *
 *   bench_lua [CALLS [FIGURE]]  (default 200000 calls per figure, best of 3 rounds, interleaved;
 *                                FIGURE: run only that one and c.copy, e.g. for a profiler)
 *
 * Rows of 10 columns (text x3, numeric, int64, double, bool, timestamptz, uuid, jsonb tags).
 * lua.trivial: resolve returns theirs (the whole call: rows -> tables, the call, the returned
 *   table -> a typed row). lua.balance: the shipped keep_higher_balance.lua (exact decimal
 *   comparison through ctx.cmp). lua.fieldwise: the shipped fieldwise_merge.lua with both sides
 *   changing tags (JSON decode, union, encode). Each is printed as ns per call, calls/s, and a
 *   ratio against the baseline of the same round: c.copy, a resolver written in C that copies
 *   theirs into the output row (as_row_copy), the least a resolver returning theirs must do.
 * lua.open: as_lua_open + as_lua_close of the balance script (a per-thread interpreter's cost).
 * The target: <= 5 µs per call (5000 ns). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "as_lua.h"
#include "as_schema.h"

#ifndef AS_SOURCE_DIR
#define AS_SOURCE_DIR "."
#endif

static const char *MAPPING =
    "mapping: accounts\nkey: id\ncolumns:\n"
    "  id: text\n  name: text\n  email: text\n  balance: numeric\n  qty: int64\n"
    "  price: double\n  active: bool\n  created: timestamptz\n  uid: uuid\n  tags: jsonb\n";

#define DIE(...)                  \
  do {                            \
    fprintf(stderr, __VA_ARGS__); \
    fprintf(stderr, "\n");        \
    exit(1);                      \
  } while (0)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void put(as_row *r, const as_schema *s, const char *col, const char *text) {
  int i = as_schema_column_index(s, col);
  as_value v;
  as_error err;
  if (i < 0 || as_value_from_text(s->cols[i].type, text, strlen(text), &v, &err) != AS_OK)
    DIE("column %s: %s", col, err.message);
  as_row_put(r, (size_t)i, &v);
}

static void make_row(as_row *r, const as_schema *s, int side) {
  if (as_row_init(r, s->ncols) != AS_OK) DIE("out of memory");
  put(r, s, "id", "acct-000123");
  put(r, s, "name", side ? "Ada Lovelace" : "Ada King");
  put(r, s, "email", side ? "ada@example.org" : "ada.king@example.org");
  put(r, s, "balance", side ? "1042.50" : "998.75");
  put(r, s, "qty", side ? "12" : "11");
  put(r, s, "price", side ? "19.99" : "18.5");
  put(r, s, "active", "true");
  put(r, s, "created", side ? "2024-01-02T03:04:05.123456Z" : "2024-01-01T00:00:00Z");
  put(r, s, "uid", "0b4e8a2c-1d3f-4a5b-9c6d-7e8f90a1b2c3");
  put(r, s, "tags", side ? "[\"vip\", \"eu\", \"beta\"]" : "[\"vip\", \"us\"]");
}

typedef struct fig {
  const char *name;
  as_lua *L;  /* NULL: the C baseline */
  double best; /* seconds for CALLS calls */
} fig;

static double round_of(fig *f, long calls, const as_row *mine, const as_row *theirs,
                       const as_lua_ctx *ctx, as_row *out) {
  as_error err;
  double t0 = now_s();
  for (long i = 0; i < calls; i++) {
    int rc;
    if (f->L) {
      rc = as_lua_resolve(f->L, mine, theirs, ctx, out, &err);
    } else {
      as_row_clear(out);
      rc = as_row_copy(out, theirs);
    }
    if (rc != AS_OK) DIE("%s: %d %s", f->name, rc, f->L ? err.message : "copy failed");
  }
  return now_s() - t0;
}

static as_lua *open_script(const as_schema *s, const char *path) {
  as_lua *L = NULL;
  as_error err;
  if (as_lua_open(s, path, NULL, &L, &err) != AS_OK) DIE("%s", err.message);
  return L;
}

int main(int argc, char **argv) {
  long calls = argc > 1 ? atol(argv[1]) : 200000;
  if (calls <= 0) DIE("usage: bench_lua [CALLS]");
  as_schema *s = NULL;
  as_error err;
  if (as_schema_load_string("bench.yaml", MAPPING, &s, &err) != AS_OK) DIE("%s", err.message);
  char trivial[4096], balance[4096], fieldwise[4096];
  snprintf(trivial, sizeof trivial, "/tmp/arraysync-bench-lua-%d.lua", (int)getpid());
  FILE *fp = fopen(trivial, "w");
  if (!fp) DIE("cannot write %s", trivial);
  fputs("function resolve(mine, theirs, ctx) return theirs end\n", fp);
  fclose(fp);
  snprintf(balance, sizeof balance, "%s/mappings/examples/resolvers/keep_higher_balance.lua",
           AS_SOURCE_DIR);
  snprintf(fieldwise, sizeof fieldwise, "%s/mappings/examples/resolvers/fieldwise_merge.lua",
           AS_SOURCE_DIR);
  as_row mine = {0}, theirs = {0}, out = {0};
  make_row(&mine, s, 0);
  make_row(&theirs, s, 1);
  uint8_t mc[10] = {0}, tc[10] = {0};
  mc[as_schema_column_index(s, "tags")] = mc[as_schema_column_index(s, "name")] = 1;
  tc[as_schema_column_index(s, "tags")] = tc[as_schema_column_index(s, "email")] = 1;
  as_lua_ctx ctx = {.key_json = "{\"id\":\"acct-000123\"}", .mine_node = "pg",
                    .theirs_node = "mongo", .mine_ts_us = 1704164645123456,
                    .theirs_ts_us = 1704164645223456, .mine_changed = mc, .theirs_changed = tc,
                    .conflict = true};
  fig figs[] = {{"c.copy", NULL, 1e9},
                {"lua.trivial", open_script(s, trivial), 1e9},
                {"lua.balance", open_script(s, balance), 1e9},
                {"lua.fieldwise", open_script(s, fieldwise), 1e9}};
  size_t nf = sizeof figs / sizeof figs[0];
  const char *only = argc > 2 ? argv[2] : NULL;
  for (size_t i = 1; only && i < nf; i++) {
    if (strcmp(figs[i].name, only) != 0) figs[i].best = -1; /* skipped */
  }
  for (size_t i = 0; i < nf; i++) {
    if (figs[i].best > 0) round_of(&figs[i], calls / 10 + 1, &mine, &theirs, &ctx, &out);
  }
  for (int r = 0; r < 3; r++) {
    for (size_t i = 0; i < nf; i++) {
      if (figs[i].best < 0) continue;
      double t = round_of(&figs[i], calls, &mine, &theirs, &ctx, &out);
      if (t < figs[i].best) figs[i].best = t;
    }
  }
  double base_ns = figs[0].best / (double)calls * 1e9;
  printf("bench_lua: %ld calls per figure, best of 3, 10-column rows\n", calls);
  for (size_t i = 0; i < nf; i++) {
    if (figs[i].best < 0) continue;
    double ns = figs[i].best / (double)calls * 1e9;
    printf("%-14s %9.0f ns/call %11.0f calls/s   ratio vs c.copy %6.1f", figs[i].name, ns,
           1e9 / ns, ns / base_ns);
    if (figs[i].L) printf("   target <= 5000 ns: %s", ns <= 5000 ? "met" : "NOT met");
    printf("\n");
  }
  if (only) goto done;
  long opens = calls / 100 > 200 ? calls / 100 : 200;
  double t0 = now_s();
  for (long i = 0; i < opens; i++) as_lua_close(open_script(s, balance));
  double open_us = (now_s() - t0) / (double)opens * 1e6;
  printf("%-14s %9.1f µs per as_lua_open + as_lua_close (%ld opens; ratio vs one lua.balance "
         "call %.0f)\n", "lua.open", open_us, opens,
         open_us * 1000 / (figs[2].best / (double)calls * 1e9));
  printf("%-14s %9zu bytes held by the balance interpreter after the calls\n", "lua.memory",
         as_lua_memory(figs[2].L));
done:
  for (size_t i = 0; i < nf; i++) as_lua_close(figs[i].L);
  remove(trivial);
  as_row_clear(&mine);
  as_row_clear(&theirs);
  as_row_clear(&out);
  as_schema_free(s);
  return 0;
}
