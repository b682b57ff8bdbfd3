/* test_lua.c — conflict scripts (connector/as_lua.h): values both ways for every column type,
 * JSON round trips, ctx, return forms and their errors, the sandbox and its limits (each
 * escape attempt), state between calls, load errors, threads, the shipped example resolvers,
 * `conflict.call` in mapping files and `arraysync check` on scripts. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "as_log.h"
#include "as_lua.h"
#include "as_schema.h"
#include "as_test_util.h"
#include "cmd_check.h"

static char *tmp; /* scratch directory of the run */

static const char *TYPES_YAML =
    "mapping: t\nkey: id\ncolumns:\n  id: text\n  b: bool\n  i: int64\n  d: double\n"
    "  dec: numeric\n  s: text\n  by: bytes\n  u: uuid\n  o: objectid\n  ts: timestamptz\n"
    "  dt: date\n  j: jsonb\n  n: { type: int64, required: true }\n";

static const char *MINE_J =
    "{\"b\": 1, \"a\": [1, 2.5, \"x\", null, true, {\"$numberLong\":\"5\"}], "
    "\"big\": 123456789012345678901234567890, \"dec\": 1.50}";

static as_schema *schema(const char *yaml) {
  as_error err = {0};
  as_schema *s = NULL;
  ck_assert_msg(as_schema_load_string("m.yaml", yaml, &s, &err) == AS_OK, "%s", err.message);
  return s;
}

static char *script_file(const char *src) {
  static int n;
  char name[64];
  snprintf(name, sizeof name, "s%d.lua", ++n);
  char *p = as_test_write_file(tmp, name, src);
  ck_assert_ptr_nonnull(p);
  return p;
}

/* Opens src; the path is kept in *path when asked (caller frees). */
static as_lua *open_lim(const as_schema *s, const char *src, const as_lua_limits *lim,
                        char **path) {
  char *p = script_file(src);
  as_error err = {0};
  as_lua *L = NULL;
  ck_assert_msg(as_lua_open(s, p, lim, &L, &err) == AS_OK, "%s", err.message);
  if (path) *path = p;
  else free(p);
  return L;
}

static as_lua *open_ok(const as_schema *s, const char *src) { return open_lim(s, src, NULL, NULL); }

static void put(as_row *r, const as_schema *s, const char *col, const char *text) {
  int i = as_schema_column_index(s, col);
  ck_assert_int_ge(i, 0);
  as_value v;
  as_error err;
  if (text) {
    ck_assert_msg(as_value_from_text(s->cols[i].type, text, strlen(text), &v, &err) == AS_OK,
                  "%s: %s", col, err.message);
  } else {
    v = AS_VALUE_NULL;
  }
  as_row_put(r, (size_t)i, &v);
}

static void mine_row(as_row *r, const as_schema *s) {
  ck_assert_int_eq(as_row_init(r, s->ncols), AS_OK);
  put(r, s, "id", "k1");
  put(r, s, "b", "true");
  put(r, s, "i", "42");
  put(r, s, "d", "1.5");
  put(r, s, "dec", "12.50");
  put(r, s, "s", "h\xc3\xa9llo");
  put(r, s, "by", "\\x00ff10");
  put(r, s, "u", "0B4E8A2C-1D3F-4A5B-9C6D-7E8F90A1B2C3");
  put(r, s, "o", "65a1b2c3d4e5f60718293a4b");
  put(r, s, "ts", "2024-01-02T03:04:05.123456Z");
  put(r, s, "dt", "2024-02-29");
  put(r, s, "j", MINE_J);
  put(r, s, "n", "1");
}

static void theirs_row(as_row *r, const as_schema *s) {
  ck_assert_int_eq(as_row_init(r, s->ncols), AS_OK);
  put(r, s, "id", "k1");
  put(r, s, "b", "false");
  put(r, s, "i", "-7");
  put(r, s, "d", "-0.25");
  put(r, s, "dec", "99");
  put(r, s, "s", "world");
  put(r, s, "by", "\\x");
  put(r, s, "u", NULL);
  put(r, s, "o", "000000000000000000000000");
  put(r, s, "ts", "1999-12-31T23:59:59Z");
  put(r, s, "dt", "1970-01-01");
  put(r, s, "j", "[]");
  put(r, s, "n", "2");
}

typedef struct fixture {
  as_schema *s;
  as_row mine, theirs, out;
} fixture;

static void fx_init(fixture *f, const char *yaml) {
  memset(f, 0, sizeof *f);
  f->s = schema(yaml ? yaml : TYPES_YAML);
  if (!yaml) {
    mine_row(&f->mine, f->s);
    theirs_row(&f->theirs, f->s);
  }
}

static void fx_free(fixture *f) {
  as_row_clear(&f->mine);
  as_row_clear(&f->theirs);
  as_row_clear(&f->out);
  as_schema_free(f->s);
}

static int run(as_lua *L, fixture *f, const as_lua_ctx *ctx, as_error *err) {
  memset(err, 0, sizeof *err);
  return as_lua_resolve(L, &f->mine, &f->theirs, ctx, &f->out, err);
}

/* One script, one call: its code and message. */
static int run_src(fixture *f, const char *src, as_error *err) {
  as_lua *L = open_ok(f->s, src);
  int rc = run(L, f, NULL, err);
  as_lua_close(L);
  return rc;
}

static const as_value *col(const as_row *r, const as_schema *s, const char *name) {
  int i = as_schema_column_index(s, name);
  ck_assert_int_ge(i, 0);
  ck_assert_msg(r->set[i], "column %s not set", name);
  return &r->v[i];
}

static void assert_json(const as_row *r, const as_schema *s, const char *name, const char *text) {
  const as_value *v = col(r, s, name);
  ck_assert_int_eq(v->type, AS_T_JSON);
  ck_assert_str_eq(v->u.s.ptr, text);
}

/* ------------------------------------------------------------------ values */

START_TEST(values_reach_the_script_typed) {
  fixture f;
  fx_init(&f, NULL);
  as_error err;
  int rc = run_src(&f,
      "local function check(c, v, want)\n"
      "  if v ~= want then error(c .. ': got ' .. tostring(v) .. ' (' .. type(v) .. ')', 0) end\n"
      "end\n"
      "function resolve(m, t, ctx)\n"
      "  check('id', m.id, 'k1'); check('b', m.b, true)\n"
      "  check('i', m.i, 42); check('i type', math.type(m.i), 'integer')\n"
      "  check('d', m.d, 1.5); check('d type', math.type(m.d), 'float')\n"
      "  check('dec', m.dec, '12.50'); check('s', m.s, 'h\\u{e9}llo')\n"
      "  check('by', m.by, '\\0\\255\\16')\n"
      "  check('u', m.u, '0b4e8a2c-1d3f-4a5b-9c6d-7e8f90a1b2c3')\n"
      "  check('o', m.o, '65a1b2c3d4e5f60718293a4b')\n"
      "  check('ts', m.ts, '2024-01-02T03:04:05.123456Z'); check('t.ts', t.ts, '1999-12-31T23:59:59.000000Z')\n"
      "  check('dt', m.dt, '2024-02-29'); check('n', m.n, 1)\n"
      "  check('j.b', m.j.b, 1); check('j.b type', math.type(m.j.b), 'integer')\n"
      "  check('j.a[2]', m.j.a[2], 2.5); check('j.a[3]', m.j.a[3], 'x')\n"
      "  check('j.a[4]', m.j.a[4], ctx.null); check('j.a[5]', m.j.a[5], true)\n"
      "  check('j.a[6]', m.j.a[6]['$numberLong'], '5'); check('#j.a', #m.j.a, 6)\n"
      "  check('j.big', math.type(m.j.big), 'float'); check('j.dec', m.j.dec, 1.5)\n"
      "  check('mt', getmetatable(m.j), 'json object'); check('t mt', getmetatable(t.j), 'json array')\n"
      "  check('#t.j', #t.j, 0); check('null', t.u, ctx.null); check('tostring', tostring(ctx.null), 'null')\n"
      "  check('absent', m.nope, nil)\n"
      "  return t\n"
      "end\n",
      &err);
  ck_assert_msg(rc == AS_OK, "%s", err.message);
  for (size_t i = 0; i < f.s->ncols; i++) {
    ck_assert_msg(f.out.set[i], "column %s", f.s->cols[i].name);
    ck_assert_msg(as_value_equal(&f.out.v[i], &f.theirs.v[i]), "column %s", f.s->cols[i].name);
  }
  assert_json(&f.out, f.s, "j", "[]");
  fx_free(&f);
}
END_TEST

START_TEST(values_come_back_typed) {
  fixture f;
  fx_init(&f, NULL);
  as_error err;
  int rc = run_src(&f,
      "function resolve(m, t, ctx)\n"
      "  return { b = false, i = 2^3, d = 7, dec = 0.1, s = 'x', by = '\\1\\0', u = ctx.null,\n"
      "           o = 'ABCDEF0123456789ABCDEF01', ts = '2024-05-06 07:08:09+02:00',\n"
      "           dt = '2000-01-01', n = -3 }\n"
      "end\n",
      &err);
  ck_assert_msg(rc == AS_OK, "%s", err.message);
  char *t = NULL;
  ck_assert_int_eq(col(&f.out, f.s, "b")->u.b, false);
  ck_assert_int_eq(col(&f.out, f.s, "i")->type, AS_T_INT64);
  ck_assert_int_eq(col(&f.out, f.s, "i")->u.i, 8);
  ck_assert_int_eq(col(&f.out, f.s, "d")->type, AS_T_DOUBLE);
  ck_assert(col(&f.out, f.s, "d")->u.d == 7.0);
  ck_assert_str_eq(col(&f.out, f.s, "dec")->u.s.ptr, "0.1");
  ck_assert_uint_eq(col(&f.out, f.s, "by")->u.s.len, 2);
  ck_assert_int_eq(memcmp(col(&f.out, f.s, "by")->u.s.ptr, "\1\0", 2), 0);
  ck_assert_int_eq(col(&f.out, f.s, "u")->type, AS_T_NULL);
  ck_assert_int_eq(as_value_to_text(col(&f.out, f.s, "o"), &t, &err), AS_OK);
  ck_assert_str_eq(t, "abcdef0123456789abcdef01");
  free(t);
  ck_assert_int_eq(as_value_to_text(col(&f.out, f.s, "ts"), &t, &err), AS_OK);
  ck_assert_str_eq(t, "2024-05-06T05:08:09.000000Z");
  free(t);
  ck_assert_int_eq(as_value_to_text(col(&f.out, f.s, "dt"), &t, &err), AS_OK);
  ck_assert_str_eq(t, "2000-01-01");
  free(t);
  ck_assert_int_eq(col(&f.out, f.s, "n")->u.i, -3);
  /* omitted: mine's */
  ck_assert_str_eq(col(&f.out, f.s, "s")->u.s.ptr, "x");
  ck_assert(as_value_equal(col(&f.out, f.s, "j"), col(&f.mine, f.s, "j")));
  ck_assert_str_eq(col(&f.out, f.s, "id")->u.s.ptr, "k1");
  fx_free(&f);
}
END_TEST

/* A json column holding JSON null is ctx.json_null, not ctx.null (NULL): a script that copies
 * it column by column gives back JSON null; inside a value JSON null is ctx.null as before. */
START_TEST(json_null_is_not_null) {
  fixture f;
  fx_init(&f, NULL);
  put(&f.mine, f.s, "j", "null");
  put(&f.theirs, f.s, "j", NULL);
  as_error err;
  int rc = run_src(&f,
      "function resolve(m, t, ctx)\n"
      "  assert(m.j == ctx.json_null and m.j ~= ctx.null, 'mine: ' .. tostring(m.j))\n"
      "  assert(t.j == ctx.null, 'theirs: ' .. tostring(t.j))\n"
      "  assert(tostring(ctx.json_null) == 'json null' and ctx.number(ctx.json_null) == nil)\n"
      "  local out = {}\n"
      "  for _, c in ipairs({'id', 'b', 'i', 'j', 'n'}) do out[c] = m[c] end\n"
      "  return out\n"
      "end\n",
      &err);
  ck_assert_msg(rc == AS_OK, "%s", err.message);
  assert_json(&f.out, f.s, "j", "null");
  /* theirs's NULL copied column by column stays NULL; ctx.json_null inside a value is null */
  rc = run_src(&f, "function resolve(m, t, ctx) return { j = t.j } end\n", &err);
  ck_assert_msg(rc == AS_OK, "%s", err.message);
  ck_assert_int_eq(col(&f.out, f.s, "j")->type, AS_T_NULL);
  rc = run_src(&f,
      "function resolve(m, t, ctx) return { j = { a = ctx.json_null, b = ctx.null } } end\n",
      &err);
  ck_assert_msg(rc == AS_OK, "%s", err.message);
  assert_json(&f.out, f.s, "j", "{\"a\":null,\"b\":null}");
  /* ctx.json_null anywhere but a json column is a script's mistake, named */
  rc = run_src(&f, "function resolve(m, t, ctx) return { i = ctx.json_null } end\n", &err);
  ck_assert_int_eq(rc, AS_EDATA);
  ck_assert_msg(strstr(err.message, "\"i\"") && strstr(err.message, "ctx.json_null"), "%s",
                err.message);
  fx_free(&f);
}
END_TEST

START_TEST(omitted_columns_keep_mine_then_theirs) {
  fixture f;
  fx_init(&f, NULL);
  as_error err;
  /* theirs is partial (an update: key + s), mine lacks dt; neither has... dt in theirs */
  as_row_clear(&f.theirs);
  ck_assert_int_eq(as_row_init(&f.theirs, f.s->ncols), AS_OK);
  put(&f.theirs, f.s, "id", "k1");
  put(&f.theirs, f.s, "s", "new");
  put(&f.theirs, f.s, "i", "5");
  int dt = as_schema_column_index(f.s, "dt"), i = as_schema_column_index(f.s, "i");
  as_value_clear(&f.mine.v[dt]);
  f.mine.set[dt] = 0;
  as_value_clear(&f.mine.v[i]);
  f.mine.set[i] = 0;
  as_lua *L = open_ok(f.s, "function resolve(m, t, ctx) if ctx.conflict then return {} end "
                           "return t end\n");
  as_lua_ctx ctx = {.conflict = true};
  ck_assert_int_eq(run(L, &f, &ctx, &err), AS_OK);
  for (size_t k = 0; k < f.s->ncols; k++) {
    if ((int)k == dt) continue;
    if ((int)k == i) { /* mine lacks it: theirs's */
      ck_assert_int_eq(f.out.v[k].u.i, 5);
      continue;
    }
    ck_assert_msg(as_value_equal(&f.out.v[k], &f.mine.v[k]), "column %s", f.s->cols[k].name);
  }
  ck_assert_int_eq(f.out.set[dt], 0); /* neither has it */
  ctx.conflict = false;
  ck_assert_int_eq(run(L, &f, &ctx, &err), AS_OK); /* return theirs: its columns over mine's */
  ck_assert_str_eq(col(&f.out, f.s, "s")->u.s.ptr, "new");
  ck_assert_int_eq(col(&f.out, f.s, "i")->u.i, 5);
  ck_assert_str_eq(col(&f.out, f.s, "dec")->u.s.ptr, "12.50");
  ck_assert_int_eq(f.out.set[dt], 0);
  as_lua_close(L);
  fx_free(&f);
}
END_TEST

/* ------------------------------------------------------------------ JSON */

START_TEST(json_unchanged_keeps_exact_text) {
  fixture f;
  fx_init(&f, NULL);
  as_error err;
  /* the same table, and an equal table built anew: mine's text byte for byte */
  ck_assert_int_eq(run_src(&f, "function resolve(m, t) t.j = m.j return t end\n", &err), AS_OK);
  assert_json(&f.out, f.s, "j", MINE_J);
  ck_assert_int_eq(run_src(&f,
      "function resolve(m, t, ctx)\n"
      "  return { j = { dec = 1.5, big = 123456789012345678901234567890.0, b = 1,\n"
      "                 a = {1, 2.5, 'x', ctx.null, true, {['$numberLong'] = '5'}} } }\n"
      "end\n", &err), AS_OK);
  assert_json(&f.out, f.s, "j", MINE_J);
  /* theirs's [] comes back as [], also from a new empty table */
  ck_assert_int_eq(run_src(&f, "function resolve(m, t) return { j = {} } end\n", &err), AS_OK);
  assert_json(&f.out, f.s, "j", "[]");
  fx_free(&f);
}
END_TEST

START_TEST(json_edits_keep_order_and_spelling) {
  fixture f;
  fx_init(&f, NULL);
  as_error err;
  ck_assert_int_eq(run_src(&f,
      "function resolve(m, t)\n"
      "  m.j.z = 1; m.j.c = 2; m.j.b = nil; m.j.a[1] = 10\n"
      "  return { j = m.j }\n"
      "end\n", &err), AS_OK);
  assert_json(&f.out, f.s, "j", "{\"a\":[10,2.5,\"x\",null,true,{\"$numberLong\":\"5\"}],"
                                "\"big\":123456789012345678901234567890,\"dec\":1.50,\"c\":2,"
                                "\"z\":1}");
  /* a number the script changed is written its own way */
  ck_assert_int_eq(run_src(&f, "function resolve(m) m.j.dec = 1.25 m.j.big = 7 return {j = m.j} "
                               "end\n", &err), AS_OK);
  assert_json(&f.out, f.s, "j", "{\"b\":1,\"a\":[1,2.5,\"x\",null,true,{\"$numberLong\":\"5\"}],"
                                "\"big\":7,\"dec\":1.25}");
  fx_free(&f);
}
END_TEST

START_TEST(json_new_values) {
  fixture f;
  fx_init(&f, NULL);
  as_error err;
  ck_assert_int_eq(run_src(&f,
      "function resolve(m, t, ctx)\n"
      "  return { j = { x = {1, 2.0, 's\"\\n', ctx.null, false}, e = ctx.array(),\n"
      "                 o = ctx.object(), f = 0.1, neg = -0.0, inf = math.huge,\n"
      "                 u = '\\u{263a}', big = 1e300 } }\n"
      "end\n", &err), AS_OK);
  assert_json(&f.out, f.s, "j", "{\"big\":1e+300,\"e\":[],\"f\":0.1,\"inf\":{\"$numberDouble\":"
                                "\"Infinity\"},\"neg\":{\"$numberDouble\":\"-0.0\"},\"o\":{},"
                                "\"u\":\"\xe2\x98\xba\",\"x\":[1,2.0,\"s\\\"\\n\",null,false]}");
  /* scalars are JSON scalars */
  ck_assert_int_eq(run_src(&f, "function resolve() return { j = 'a' } end\n", &err), AS_OK);
  assert_json(&f.out, f.s, "j", "\"a\"");
  fx_free(&f);
}
END_TEST

static const struct {
  const char *ret;
  const char *msg; /* after "mapping t, key {"id":"k1"}: resolve returned " */
} bad_values[] = {
    {"{i = '5'}", "a bad value for column \"i\" (int64): expected an integer, got string \"5\""},
    {"{i = 2.5}", "a bad value for column \"i\" (int64): expected an integer (the value has a "
                  "fraction), got float 2.5"},
    {"{i = 2^63}", "a bad value for column \"i\" (int64): 9.223372036854776e+18 is out of the "
                   "int64 range"},
    {"{d = (1 << 53) + 1}", "a bad value for column \"d\" (double): integer 9007199254740993 is "
                            "not exactly a double (write it as a float)"},
    {"{b = 1}", "a bad value for column \"b\" (bool): expected a boolean, got integer 1"},
    {"{dec = '1,5'}", "a bad value for column \"dec\" (numeric): expected a decimal number "
                      "text, got string \"1,5\""},
    {"{s = print}", "a bad value for column \"s\" (text): expected a string, got a function"},
    {"{s = '\\255'}", "a bad value for column \"s\" (text): the string is not valid UTF-8"},
    {"{ts = 'yesterday'}", "a bad value for column \"ts\" (timestamptz): invalid timestamp text "
                           "\"yesterday\": expected YYYY-MM-DD[THH:MM:SS[.ffffff]][Z|+HH:MM]"},
    {"{ts = 1704164645}", "a bad value for column \"ts\" (timestamptz): expected a timestamp "
                          "string (YYYY-MM-DDTHH:MM:SS.ffffffZ), got integer 1704164645"},
    {"{dt = '2024-13-01'}", "a bad value for column \"dt\" (date): invalid date text "
                            "\"2024-13-01\": expected YYYY-MM-DD (years 0001..9999)"},
    {"{u = 'nope'}", "a bad value for column \"u\" (uuid): invalid uuid text \"nope\""},
    {"{n = ctx.null}", "a bad value for column \"n\" (int64): NULL in a required column"},
    {"{j = {1, x = 2}}", "a bad value for column \"j\" (jsonb): a table with both sequence and "
                         "other keys is neither a JSON array nor an object (mark it with "
                         "ctx.array or ctx.object)"},
    {"{j = {f = print}}", "a bad value for column \"j\" (jsonb): a function cannot be stored in "
                          "JSON"},
    {"{j = ctx.array{1, x = 1}}", "a bad value for column \"j\" (jsonb): a JSON array has keys "
                                  "other than 1..n"},
    {"{j = ctx.object{[1] = 1}}", "a bad value for column \"j\" (jsonb): a JSON object has a "
                                  "key that is not a string"},
    {"{j = {'\\255'}}", "a bad value for column \"j\" (jsonb): a string is not valid UTF-8"},
    {"(function() local c = {} c.c = c return {j = c} end)()",
     "a bad value for column \"j\" (jsonb): JSON nested deeper than 400 levels (or a table "
     "contains itself)"},
    {"{nope = 1}", "unknown column \"nope\""},
    {"{[1] = 2}", "a row with a key that is not a column name (integer 1)"},
};

START_TEST(bad_returned_values) {
  fixture f;
  fx_init(&f, NULL);
  char src[512], expected[1024];
  snprintf(src, sizeof src, "function resolve(m, t, ctx) return %s end\n", bad_values[_i].ret);
  snprintf(expected, sizeof expected, "mapping t, key {\"id\":\"k1\"}: resolve returned %s",
           bad_values[_i].msg);
  as_error err;
  ck_assert_int_eq(run_src(&f, src, &err), AS_EDATA);
  ck_assert_str_eq(err.message, expected);
  for (size_t i = 0; i < f.s->ncols; i++) ck_assert_int_eq(f.out.set[i], 0);
  fx_free(&f);
}
END_TEST

START_TEST(key_cannot_move) {
  fixture f;
  fx_init(&f, NULL);
  as_error err;
  ck_assert_int_eq(run_src(&f, "function resolve() return {id = 'k2'} end\n", &err), AS_EDATA);
  ck_assert_str_eq(err.message, "mapping t, key {\"id\":\"k1\"}: resolve changed key column "
                                "\"id\" (a resolver cannot move a row to another key)");
  ck_assert_int_eq(run_src(&f, "function resolve() return {id = 'k1'} end\n", &err), AS_OK);
  fx_free(&f);
}
END_TEST

/* ------------------------------------------------------------------ return forms */

START_TEST(nil_records_a_conflict) {
  fixture f;
  fx_init(&f, NULL);
  as_error err;
  ck_assert_int_eq(run_src(&f, "function resolve() return nil, 'balances differ' end\n", &err),
                   AS_CONFLICT);
  ck_assert_str_eq(err.message, "balances differ");
  ck_assert_int_eq(run_src(&f, "function resolve() end\n", &err), AS_CONFLICT);
  ck_assert_str_eq(err.message, "no reason given");
  fx_free(&f);
}
END_TEST

START_TEST(script_errors) {
  fixture f;
  fx_init(&f, NULL);
  const struct {
    const char *src;
    const char *msg; /* after "... conflict script PATH: "; @ = PATH */
  } cases[] = {
      {"function resolve()\n  error('boom')\nend\n", "@:2: boom"},
      {"function resolve() error({}) end\n", "(error object is a table value)"},
      {"function resolve() return 5 end\n",
       "resolve returned integer 5 (expected a row table, or nil and a reason)"},
      {"function resolve() return ctx end\n",
       "resolve returned a nil (expected a row table, or nil and a reason)"},
      {"function resolve(m) return m.nope.x end\n",
       "@:1: attempt to index a nil value (field 'nope')"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *path = NULL;
    as_lua *L = open_lim(f.s, cases[i].src, NULL, &path);
    as_error err;
    int rc = run(L, &f, NULL, &err);
    if (i == 3) { /* nil in the first place is "no decision", not a failure */
      ck_assert_int_eq(rc, AS_CONFLICT);
    } else {
      char msg[1024], expected[2048];
      const char *at = strchr(cases[i].msg, '@');
      if (at) snprintf(msg, sizeof msg, "%s%s", path, at + 1);
      else snprintf(msg, sizeof msg, "%s", cases[i].msg);
      snprintf(expected, sizeof expected, "mapping t, key {\"id\":\"k1\"}: conflict script %s: %s",
               path, msg);
      ck_assert_int_eq(rc, AS_ERR);
      ck_assert_str_eq(err.message, expected);
    }
    /* still usable */
    ck_assert_int_eq(run(L, &f, NULL, &err), rc);
    as_lua_close(L);
    free(path);
  }
  fx_free(&f);
}
END_TEST

/* ------------------------------------------------------------------ ctx */

START_TEST(ctx_fields) {
  fixture f;
  fx_init(&f, NULL);
  as_row base;
  theirs_row(&base, f.s);
  as_vv_entry vv[2] = {{"mongo", 7}, {"pg", 3}};
  uint8_t mc[13] = {0}, tc[13] = {0};
  mc[as_schema_column_index(f.s, "s")] = 1;
  mc[as_schema_column_index(f.s, "i")] = 1;
  as_lua_ctx ctx = {.mine_node = "pg", .theirs_node = "mongo", .mine_ts_us = 1704164645123456,
                    .theirs_ts_us = -1, .theirs_vv = vv, .theirs_nvv = 2, .mine_changed = mc,
                    .theirs_changed = tc, .base = &base, .conflict = true};
  as_lua *L = open_ok(f.s,
      "local saved\n"
      "local function eq(what, a, b)\n"
      "  if a ~= b then error(what .. ': ' .. tostring(a) .. ' ~= ' .. tostring(b), 0) end\n"
      "end\n"
      "function resolve(mine, theirs, ctx)\n"
      "  if saved then return saved.theirs_ts_us end\n"
      "  eq('mapping', ctx.mapping, 't'); eq('key_json', ctx.key_json, '{\"id\":\"k1\"}')\n"
      "  eq('key', ctx.key.id, 'k1'); eq('mine_node', ctx.mine_node, 'pg')\n"
      "  eq('theirs_node', ctx.theirs_node, 'mongo')\n"
      "  eq('mine_ts_us', ctx.mine_ts_us, 1704164645123456)\n"
      "  eq('mine_ts', ctx.mine_ts, '2024-01-02T03:04:05.123456Z')\n"
      "  eq('theirs_ts', ctx.theirs_ts, '1969-12-31T23:59:59.999999Z')\n"
      "  eq('theirs_vv', ctx.theirs_vv.mongo + ctx.theirs_vv.pg, 10)\n"
      "  eq('mine_vv', next(ctx.mine_vv), nil)\n"
      "  eq('mine_changed', table.concat(ctx.mine_changed, ','), 'i,s')\n"
      "  eq('theirs_changed', #ctx.theirs_changed, 0)\n"
      "  eq('base', ctx.base.i, -7); eq('cached', ctx.base, ctx.base)\n"
      "  eq('conflict', ctx.conflict, true); eq('unknown', ctx.nope, nil)\n"
      "  eq('number', ctx.number('12.50'), 12.5); eq('number int', math.type(ctx.number('12')), 'integer')\n"
      "  eq('number null', ctx.number(ctx.null), nil)\n"
      "  eq('cmp', ctx.cmp('10.0', 9.99), 1); eq('cmp eq', ctx.cmp('1.50', '1.5'), 0)\n"
      "  eq('cmp big', ctx.cmp('100000000000000000000.1', '100000000000000000000.2'), -1)\n"
      "  saved = ctx\n"
      "  return theirs\n"
      "end\n");
  as_error err;
  ck_assert_msg(run(L, &f, &ctx, &err) == AS_OK, "%s", err.message);
  /* a ctx kept from an earlier call cannot read that call's data */
  ck_assert_int_eq(run(L, &f, &ctx, &err), AS_ERR);
  ck_assert_ptr_nonnull(
      strstr(err.message, "ctx.theirs_ts_us read after the call it was given to ended"));
  as_lua_close(L);
  /* returning ctx.base: the base row, with mine's values where base lacks a column */
  int dt = as_schema_column_index(f.s, "dt");
  as_value_clear(&base.v[dt]);
  base.set[dt] = 0;
  L = open_ok(f.s, "function resolve(m, t, ctx) return ctx.base end\n");
  ck_assert_msg(run(L, &f, &ctx, &err) == AS_OK, "%s", err.message);
  for (size_t i = 0; i < f.s->ncols; i++) {
    const as_value *want = (int)i == dt ? &f.mine.v[i] : &base.v[i];
    ck_assert_msg(as_value_equal(&f.out.v[i], want), "column %s", f.s->cols[i].name);
  }
  as_lua_close(L);
  /* no ctx: changed lists and base are nil, key_json from mine */
  L = open_ok(f.s, "function resolve(m, t, ctx)\n"
                   "  assert(ctx.mine_changed == nil and ctx.base == nil and ctx.conflict == false)\n"
                   "  assert(ctx.key_json == '{\"id\":\"k1\"}' and next(ctx.theirs_vv) == nil)\n"
                   "  return t\nend\n");
  ck_assert_msg(run(L, &f, NULL, &err) == AS_OK, "%s", err.message);
  as_lua_close(L);
  as_row_clear(&base);
  fx_free(&f);
}
END_TEST

START_TEST(calls_do_not_leak_state) {
  fixture f;
  fx_init(&f, NULL);
  as_lua *L = open_ok(f.s,
      "local G = _G\n"
      "function resolve(mine, theirs, ctx)\n"
      "  assert(leaked == nil, 'a global leaked'); assert(rawget(ctx, 'extra') == nil, 'ctx leaked')\n"
      "  assert(mine.s == 'h\\u{e9}llo', 'mine leaked'); assert(theirs.extra == nil, 'theirs leaked')\n"
      "  assert(string.upper('a') == 'A')\n"
      "  leaked = true; _G.also = 1; ctx.extra = 1; mine.s = 'changed'; theirs.extra = 1\n"
      "  resolve = nil\n"
      "  assert(not pcall(function() G.x = 1 end), 'the load-time globals are writable')\n"
      "  assert(not pcall(rawset, G, 'x', 1), 'rawset on the load-time globals')\n"
      "  assert(not pcall(function() string.upper = nil end), 'string is writable')\n"
      "  assert(not pcall(rawset, string, 'upper', nil), 'rawset on string')\n"
      "  assert(not pcall(setmetatable, string, nil), 'setmetatable on string')\n"
      "  assert(getmetatable('') == 'read-only')\n"
      "  return { s = 'ok' }\n"
      "end\n");
  as_error err;
  for (int i = 0; i < 3; i++) {
    ck_assert_msg(run(L, &f, NULL, &err) == AS_OK, "call %d: %s", i, err.message);
    ck_assert_str_eq(col(&f.out, f.s, "s")->u.s.ptr, "ok");
  }
  as_lua_close(L);
  fx_free(&f);
}
END_TEST

START_TEST(rows_are_filled_on_demand) {
  fixture f;
  fx_init(&f, NULL);
  as_error err;
  /* pairs lists every column the row has (here all 13, and the 3 of a partial row) */
  int dt = as_schema_column_index(f.s, "dt");
  as_value_clear(&f.theirs.v[dt]);
  f.theirs.set[dt] = 0;
  ck_assert_msg(run_src(&f,
      "function resolve(m, t, ctx)\n"
      "  assert(rawget(m, 'id') == nil, 'not read yet')\n"
      "  local n = 0\n"
      "  for k, v in pairs(m) do n = n + 1 assert(v == m[k]) end\n"
      "  assert(n == 13, 'pairs(mine) gave ' .. n)\n"
      "  assert(rawget(m, 'id') == 'k1', 'read by pairs')\n"
      "  local seen = {}\n"
      "  t.s = nil\n"
      "  for k in pairs(t) do seen[#seen + 1] = k end\n"
      "  assert(#seen == 11, 'pairs(theirs) gave ' .. #seen)\n"
      "  assert(t.s == nil and t.dt == nil and t.nope == nil and t[1] == nil)\n"
      "  assert(getmetatable(m) == 'row' and not pcall(setmetatable, m, nil))\n"
      "  return t\n"
      "end\n", &err) == AS_OK, "%s", err.message);
  /* s removed from theirs: omitted, so mine's; dt absent from theirs: mine's */
  ck_assert_str_eq(col(&f.out, f.s, "s")->u.s.ptr, "h\xc3\xa9llo");
  ck_assert(as_value_equal(col(&f.out, f.s, "dt"), col(&f.mine, f.s, "dt")));
  ck_assert_int_eq(col(&f.out, f.s, "i")->u.i, -7);
  /* untouched columns come from the returned row itself, json text as it was */
  as_value_clear(&f.theirs.v[as_schema_column_index(f.s, "j")]);
  as_value_set_str(&f.theirs.v[as_schema_column_index(f.s, "j")], AS_T_JSON, "[ 1.50 , 2 ]", 12);
  ck_assert_int_eq(run_src(&f, "function resolve(m, t) return t end\n", &err), AS_OK);
  assert_json(&f.out, f.s, "j", "[ 1.50 , 2 ]");
  ck_assert_int_eq(col(&f.out, f.s, "n")->u.i, 2);
  ck_assert_int_eq(run_src(&f, "function resolve(m, t) local x = t.j return t end\n", &err), AS_OK);
  assert_json(&f.out, f.s, "j", "[ 1.50 , 2 ]");
  ck_assert_int_eq(run_src(&f, "function resolve(m, t) t.j[3] = 3 return t end\n", &err), AS_OK);
  assert_json(&f.out, f.s, "j", "[1.50,2,3]");
  /* a new column name on a row is still an unknown column */
  ck_assert_int_eq(run_src(&f, "function resolve(m, t) t.nope = 1 return t end\n", &err), AS_EDATA);
  ck_assert_ptr_nonnull(strstr(err.message, "unknown column \"nope\""));
  /* a row kept from an earlier call cannot be read */
  as_lua *L = open_ok(f.s, "local saved\n"
                           "function resolve(m, t) if saved then return saved.s end saved = m "
                           "return t end\n");
  ck_assert_int_eq(run(L, &f, NULL, &err), AS_OK);
  ck_assert_int_eq(run(L, &f, NULL, &err), AS_ERR);
  ck_assert_ptr_nonnull(strstr(err.message, "a row read after the call it was given to ended"));
  as_lua_close(L);
  fx_free(&f);
}
END_TEST

/* ------------------------------------------------------------------ sandbox */

START_TEST(sandbox_has_no_escape_hatches) {
  fixture f;
  fx_init(&f, NULL);
  as_error err;
  ck_assert_msg(run_src(&f,
      "function resolve(m, t)\n"
      "  local present = {}\n"
      "  for _, n in ipairs({'os', 'io', 'load', 'loadstring', 'dofile', 'loadfile', 'require',\n"
      "                      'collectgarbage', 'debug', 'package', 'coroutine', 'warn', 'module'}) do\n"
      "    if _G[n] ~= nil or _ENV[n] ~= nil then present[#present + 1] = n end\n"
      "  end\n"
      "  if string.dump ~= nil or ('').dump ~= nil then present[#present + 1] = 'string.dump' end\n"
      "  if #present > 0 then return nil, table.concat(present, ',') end\n"
      "  local ok, e = xpcall(function(a) error(a, 0) end, function(m) return 'h:' .. m end, 'x')\n"
      "  assert(ok == false and e == 'h:x', 'xpcall')\n"
      "  local ok2, a, b = xpcall(function(a) return a, 2 end, print, 1)\n"
      "  assert(ok2 == true and a == 1 and b == 2, 'xpcall ok')\n"
      "  for _, n in ipairs({'string', 'table', 'math', 'utf8', 'pcall', 'pairs', 'tostring'}) do\n"
      "    assert(_G[n] ~= nil, n)\n"
      "  end\n"
      "  return t\n"
      "end\n", &err) == AS_OK, "%s", err.message);
  const struct {
    const char *body;
    const char *msg;
  } cases[] = {
      {"os.execute('touch /tmp/arraysync-lua-escape')", "attempt to index a nil value (global 'os')"},
      {"io.open('/etc/passwd')", "attempt to index a nil value (global 'io')"},
      {"load('return 1')()", "attempt to call a nil value (global 'load')"},
      {"load(string.dump(resolve))", "attempt to call a nil value (field 'dump')"},
      {"string.dump(resolve)", "attempt to call a nil value (field 'dump')"},
      {"require('os')", "attempt to call a nil value (global 'require')"},
      {"dofile('/etc/passwd')", "attempt to call a nil value (global 'dofile')"},
      {"loadfile('/etc/passwd')", "attempt to call a nil value (global 'loadfile')"},
      {"collectgarbage()", "attempt to call a nil value (global 'collectgarbage')"},
      {"debug.sethook()", "attempt to index a nil value (global 'debug')"},
      {"coroutine.wrap(print)", "attempt to index a nil value (global 'coroutine')"},
      {"setmetatable(_G, {__index = function() return 1 end})", "cannot change a protected metatable"},
      {"getmetatable('').__index.rep = nil", "attempt to index a nil value (field '__index')"},
      {"string.rep = nil", "attempt to modify a read-only table"},
      {"setmetatable({}, {__gc = function() end})", "__gc metamethods are not allowed in conflict scripts"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char src[512];
    snprintf(src, sizeof src, "function resolve(m, t, ctx)\n  %s\n  return t\nend\n",
             cases[i].body);
    ck_assert_int_eq(run_src(&f, src, &err), AS_ERR);
    ck_assert_msg(strstr(err.message, cases[i].msg) != NULL, "%s: %s", cases[i].body, err.message);
    ck_assert_msg(strstr(err.message, ".lua:2: ") != NULL, "%s: %s", cases[i].body, err.message);
  }
  FILE *probe = fopen("/tmp/arraysync-lua-escape", "r");
  ck_assert_ptr_null(probe);
  fx_free(&f);
}
END_TEST

START_TEST(instruction_budget) {
  fixture f;
  fx_init(&f, NULL);
  as_lua_ctx loop = {.conflict = true}, calm = {.conflict = false};
  const char *srcs[] = {
      "function resolve(m, t, ctx) if ctx.conflict then while true do end end return t end\n",
      /* pcall cannot swallow it */
      "function resolve(m, t, ctx)\n"
      "  if ctx.conflict then while true do pcall(function() while true do end end) end end\n"
      "  return t\nend\n",
      /* neither can an error handler, nor a loop in a comparator called from C */
      "function resolve(m, t, ctx)\n"
      "  if ctx.conflict then\n"
      "    xpcall(function() while true do end end, function() while true do end end)\n"
      "    table.sort({3, 2, 1}, function(a, b) while true do end end)\n"
      "  end\n"
      "  return t\nend\n",
      /* tail calls forever: no depth, only instructions */
      "local function f() return f() end\n"
      "function resolve(m, t, ctx) if ctx.conflict then return f() end return t end\n",
  };
  for (size_t i = 0; i < sizeof srcs / sizeof srcs[0]; i++) {
    as_lua *L = open_ok(f.s, srcs[i]);
    as_error err;
    ck_assert_int_eq(run(L, &f, &loop, &err), AS_ERR);
    ck_assert_msg(strstr(err.message, ": instruction budget exhausted (1000000 instructions)") !=
                  NULL, "%zu: %s", i, err.message);
    ck_assert_msg(run(L, &f, &calm, &err) == AS_OK, "%zu: %s", i, err.message);
    as_lua_close(L);
  }
  /* the budget is per call and configurable */
  as_lua_limits lim = {.instructions = 5000};
  as_lua *L = open_lim(f.s, "function resolve(m, t, ctx)\n"
                            "  local n = ctx.conflict and 100000 or 100\n"
                            "  for i = 1, n do end\n  return t\nend\n", &lim, NULL);
  as_error err;
  for (int i = 0; i < 5; i++) ck_assert_int_eq(run(L, &f, &calm, &err), AS_OK);
  ck_assert_int_eq(run(L, &f, &loop, &err), AS_ERR);
  ck_assert_ptr_nonnull(strstr(err.message, "instruction budget exhausted (5000 instructions)"));
  ck_assert_int_eq(run(L, &f, &calm, &err), AS_OK);
  as_lua_close(L);
  /* a budget beyond the hook's int count */
  lim.instructions = 5000000000LL;
  L = open_lim(f.s, "function resolve(m, t) for i = 1, 1000 do end return t end\n", &lim, NULL);
  ck_assert_int_eq(run(L, &f, &calm, &err), AS_OK);
  as_lua_close(L);
  fx_free(&f);
}
END_TEST

START_TEST(memory_limit) {
  fixture f;
  fx_init(&f, NULL);
  as_lua_ctx big = {.conflict = true}, calm = {.conflict = false};
  as_error err;
  as_lua *L = open_ok(f.s, "function resolve(m, t, ctx)\n"
                           "  if ctx.conflict then local s = string.rep('x', 1e9) end\n"
                           "  return t\nend\n");
  ck_assert_int_eq(run(L, &f, &big, &err), AS_ERR);
  ck_assert_ptr_nonnull(strstr(err.message, ": memory limit exceeded (16777216 bytes)"));
  ck_assert_msg(run(L, &f, &calm, &err) == AS_OK, "%s", err.message);
  as_lua_close(L);

  /* growing a table past a 1 MiB cap; then the interpreter is fresh again */
  as_lua_limits lim = {.memory_bytes = 1 << 20};
  L = open_lim(f.s, "function resolve(m, t, ctx)\n"
                    "  if ctx.conflict then local x = {} for i = 1, 1e7 do x[i] = i end end\n"
                    "  return t\nend\n", &lim, NULL);
  size_t fresh = as_lua_memory(L);
  ck_assert_uint_gt(fresh, 0);
  ck_assert_uint_lt(fresh, 256 << 10);
  ck_assert_int_eq(run(L, &f, &big, &err), AS_ERR);
  ck_assert_ptr_nonnull(strstr(err.message, ": memory limit exceeded (1048576 bytes)"));
  ck_assert_uint_lt(as_lua_memory(L), 256 << 10);
  ck_assert_msg(run(L, &f, &calm, &err) == AS_OK, "%s", err.message);
  as_lua_close(L);

  /* a script that keeps data between calls until the cap: re-created, works again */
  L = open_lim(f.s, "local keep = {}\n"
                    "function resolve(m, t)\n"
                    "  keep[#keep + 1] = string.rep('x', 100000) .. #keep\n"
                    "  return t\nend\n", &lim, NULL);
  int ok = 0, failed_at = -1;
  for (int i = 0; i < 30 && failed_at < 0; i++) {
    int rc = run(L, &f, &calm, &err);
    if (rc == AS_OK) ok++;
    else failed_at = i;
  }
  ck_assert_int_gt(failed_at, 3);
  ck_assert_ptr_nonnull(strstr(err.message, "memory limit exceeded"));
  ck_assert_int_eq(run(L, &f, &calm, &err), AS_OK);
  ck_assert_int_eq(ok, failed_at);
  as_lua_close(L);
  fx_free(&f);
}
END_TEST

START_TEST(depth_limit) {
  fixture f;
  fx_init(&f, NULL);
  as_lua_ctx deep = {.conflict = true}, calm = {.conflict = false};
  as_error err;
  as_lua *L = open_ok(f.s, "local function f(n) return 1 + f(n + 1) end\n"
                           "function resolve(m, t, ctx) if ctx.conflict then f(1) end return t end\n");
  ck_assert_int_eq(run(L, &f, &deep, &err), AS_ERR);
  ck_assert_msg(strstr(err.message, ": call depth limit exceeded (200 nested calls)") != NULL, "%s",
                err.message);
  ck_assert_int_eq(run(L, &f, &calm, &err), AS_OK);
  as_lua_close(L);
  /* through C functions too (string.gsub calling back) */
  as_lua_limits lim = {.max_depth = 50};
  L = open_lim(f.s, "local function f(s) return (s:gsub('.', f)) end\n"
                    "function resolve(m, t, ctx) if ctx.conflict then f('ab') end return t end\n",
               &lim, NULL);
  ck_assert_int_eq(run(L, &f, &deep, &err), AS_ERR);
  ck_assert_msg(strstr(err.message, "call depth limit exceeded (50 nested calls)") != NULL, "%s",
                err.message);
  ck_assert_int_eq(run(L, &f, &calm, &err), AS_OK);
  as_lua_close(L);
  /* recursion within the limit works */
  L = open_ok(f.s, "local function f(n) if n == 0 then return 0 end return 1 + f(n - 1) end\n"
                   "function resolve(m, t) return {i = f(150)} end\n");
  ck_assert_int_eq(run(L, &f, &calm, &err), AS_OK);
  ck_assert_int_eq(col(&f.out, f.s, "i")->u.i, 150);
  as_lua_close(L);
  fx_free(&f);
}
END_TEST

START_TEST(print_goes_to_the_log) {
  fixture f;
  fx_init(&f, NULL);
  as_error err;
  char *logf = as_test_write_file(tmp, "print.log", "");
  fflush(stderr);
  int saved = dup(2);
  FILE *lf = fopen(logf, "w");
  ck_assert_int_eq(dup2(fileno(lf), 2), 2);
  as_log_level old = as_log_current_level;
  as_log_set_level(AS_LOG_INFO); /* below debug: nothing, and the arguments are not formatted */
  int rc1 = run_src(&f, "function resolve(m, t, ctx) print('hidden') return t end\n", &err);
  as_log_set_level(AS_LOG_DEBUG);
  int rc2 = run_src(&f, "function resolve(m, t, ctx) print('x', 1, ctx.null, 2.5) return t end\n",
                    &err);
  as_log_set_level(old);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  fclose(lf);
  ck_assert_int_eq(rc1, AS_OK);
  ck_assert_int_eq(rc2, AS_OK);
  char *text = as_test_read_file(logf, NULL);
  ck_assert_ptr_nonnull(text);
  ck_assert_msg(strstr(text, "[script] mapping t: x\t1\tnull\t2.5\n") != NULL, "%s", text);
  ck_assert_ptr_null(strstr(text, "hidden"));
  free(text);
  free(logf);
  fx_free(&f);
}
END_TEST

/* ------------------------------------------------------------------ load */

static void load_fails(const as_schema *s, const char *src, const char *msg) {
  char *path = script_file(src);
  char expected[2048];
  snprintf(expected, sizeof expected, "%s%s", path, msg);
  as_error err = {0};
  as_lua *L = (as_lua *)1;
  ck_assert_int_eq(as_lua_open(s, path, NULL, &L, &err), AS_EINVAL);
  ck_assert_ptr_null(L);
  ck_assert_str_eq(err.message, expected);
  free(path);
}

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud) {
  (void)L;
  return fwrite(p, 1, n, ud) == n ? 0 : 1;
}

START_TEST(load_errors) {
  as_schema *s = schema(TYPES_YAML);
  load_fails(s, "function resolve(m, t, c)\n  return t\n",
             ":3: 'end' expected (to close 'function' at line 1) near <eof>");
  load_fails(s, "x = 1\n", ": no function resolve(mine, theirs, ctx) defined (resolve is nil)");
  load_fails(s, "resolve = 5\n", ": no function resolve(mine, theirs, ctx) defined (resolve is "
                                 "number)");
  load_fails(s, "local x = 1\nerror('bad config')\n", ":2: bad config");
  load_fails(s, "while true do end\n",
             ": instruction budget exhausted while running the file (1000000 instructions)");
  load_fails(s, "os.exit(1)\n", ":1: attempt to index a nil value (global 'os')");
  load_fails(s, "setmetatable(_G, {})\n", ":1: cannot change a protected metatable");
  /* a binary chunk is refused */
  char *path = script_file("");
  lua_State *B = luaL_newstate();
  ck_assert_int_eq(luaL_loadstring(B, "function resolve(m, t) return t end"), LUA_OK);
  FILE *fp = fopen(path, "wb");
  ck_assert_int_eq(lua_dump(B, dump_writer, fp, 0), 0);
  fclose(fp);
  lua_close(B);
  as_error err = {0};
  as_lua *L = NULL;
  ck_assert_int_eq(as_lua_open(s, path, NULL, &L, &err), AS_EINVAL);
  char expected[2048];
  snprintf(expected, sizeof expected, "%s: attempt to load a binary chunk (mode is 't')", path);
  ck_assert_str_eq(err.message, expected);
  free(path);
  /* a missing file, a mapping without a script, a memory cap too small to start */
  ck_assert_int_eq(as_lua_open(s, "/nonexistent/x.lua", NULL, &L, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "/nonexistent/x.lua: cannot read the conflict script: No such "
                                "file or directory");
  ck_assert_int_eq(as_lua_open(s, NULL, NULL, &L, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "mapping t has no conflict script");
  path = script_file("function resolve() end\n");
  as_lua_limits tiny = {.memory_bytes = 4096};
  ck_assert_int_eq(as_lua_open(s, path, &tiny, &L, &err), AS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.message, "memory limit"));
  free(path);
  as_schema_free(s);
}
END_TEST

/* ------------------------------------------------------------------ threads */

typedef struct worker {
  as_lua *L;
  const as_schema *s;
  int ok;
} worker;

static void *work(void *arg) {
  worker *w = arg;
  as_row mine = {0}, theirs = {0}, out = {0};
  mine_row(&mine, w->s);
  theirs_row(&theirs, w->s);
  for (int i = 0; i < 500; i++) {
    as_error err;
    if (as_lua_resolve(w->L, &mine, &theirs, NULL, &out, &err) == AS_OK &&
        out.v[as_schema_column_index(w->s, "n")].u.i == 3) {
      w->ok++;
    }
  }
  as_row_clear(&mine);
  as_row_clear(&theirs);
  as_row_clear(&out);
  return NULL;
}

START_TEST(shared_handle_from_threads) {
  as_schema *s = schema(TYPES_YAML);
  as_lua *L = open_ok(s, "function resolve(m, t) local r = {n = m.n + t.n} return r end\n");
  worker w[3] = {{L, s, 0}, {L, s, 0}, {L, s, 0}};
  pthread_t th[3];
  for (int i = 0; i < 3; i++) ck_assert_int_eq(pthread_create(&th[i], NULL, work, &w[i]), 0);
  for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 3; i++) ck_assert_int_eq(w[i].ok, 500);
  as_lua_close(L);
  as_schema_free(s);
}
END_TEST

/* ------------------------------------------------------------------ examples */

static as_lua *open_example(const as_schema *s, const char *name) {
  char rel[256];
  snprintf(rel, sizeof rel, "mappings/examples/resolvers/%s", name);
  char *path = as_test_src_path(rel);
  as_error err = {0};
  as_lua *L = NULL;
  ck_assert_msg(as_lua_open(s, path, NULL, &L, &err) == AS_OK, "%s", err.message);
  free(path);
  return L;
}

START_TEST(example_keep_higher_balance) {
  fixture f;
  fx_init(&f, "mapping: accounts\nkey: id\ncolumns:\n  id: text\n  balance: numeric\n"
              "  owner: text\n");
  as_lua *L = open_example(f.s, "keep_higher_balance.lua");
  const struct {
    const char *mine, *theirs;
    const char *want_owner; /* whose row wins */
  } cases[] = {
      {"100.50", "100.49", "mine"},
      {"100.49", "100.50", "theirs"},
      {"100000000000000000000.01", "100000000000000000000.02", "theirs"}, /* beyond doubles */
      {"7", "7.00", "mine"},
      {NULL, "-5", "theirs"},
      {"-5", NULL, "mine"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    as_row_clear(&f.mine);
    as_row_clear(&f.theirs);
    ck_assert_int_eq(as_row_init(&f.mine, f.s->ncols), AS_OK);
    ck_assert_int_eq(as_row_init(&f.theirs, f.s->ncols), AS_OK);
    put(&f.mine, f.s, "id", "a1");
    put(&f.theirs, f.s, "id", "a1");
    put(&f.mine, f.s, "balance", cases[i].mine);
    put(&f.theirs, f.s, "balance", cases[i].theirs);
    put(&f.mine, f.s, "owner", "mine");
    put(&f.theirs, f.s, "owner", "theirs");
    as_error err;
    ck_assert_msg(run(L, &f, NULL, &err) == AS_OK, "%s", err.message);
    ck_assert_msg(strcmp(col(&f.out, f.s, "owner")->u.s.ptr, cases[i].want_owner) == 0, "case %zu",
                  i);
    const as_row *w = strcmp(cases[i].want_owner, "mine") == 0 ? &f.mine : &f.theirs;
    ck_assert(as_value_equal(col(&f.out, f.s, "balance"), col(w, f.s, "balance")));
  }
  /* a side without the column: no decision */
  int b = as_schema_column_index(f.s, "balance");
  as_value_clear(&f.theirs.v[b]);
  f.theirs.set[b] = 0;
  as_error err;
  ck_assert_int_eq(run(L, &f, NULL, &err), AS_CONFLICT);
  ck_assert_str_eq(err.message, "balance missing on one side");
  as_lua_close(L);
  fx_free(&f);
}
END_TEST

START_TEST(example_fieldwise_merge) {
  fixture f;
  fx_init(&f, "mapping: users\nkey: id\ncolumns:\n  id: text\n  email: text\n  name: text\n"
              "  tags: jsonb\n  age: int64\n");
  ck_assert_int_eq(as_row_init(&f.mine, f.s->ncols), AS_OK);
  ck_assert_int_eq(as_row_init(&f.theirs, f.s->ncols), AS_OK);
  put(&f.mine, f.s, "id", "u1");
  put(&f.mine, f.s, "email", "old@x");
  put(&f.mine, f.s, "name", "Mine Name");
  put(&f.mine, f.s, "tags", "[\"a\", \"b\", 1, 1.0]");
  put(&f.mine, f.s, "age", "30");
  put(&f.theirs, f.s, "id", "u1");
  put(&f.theirs, f.s, "email", "new@x");
  put(&f.theirs, f.s, "name", "Their Name");
  put(&f.theirs, f.s, "tags", "[\"c\", \"a\", 1, 2, \"b\", \"c\"]");
  put(&f.theirs, f.s, "age", "31");
  uint8_t mc[5] = {0}, tc[5] = {0};
  mc[as_schema_column_index(f.s, "name")] = 1;
  mc[as_schema_column_index(f.s, "tags")] = 1;
  mc[as_schema_column_index(f.s, "age")] = 1;
  tc[as_schema_column_index(f.s, "email")] = 1;
  tc[as_schema_column_index(f.s, "tags")] = 1;
  tc[as_schema_column_index(f.s, "age")] = 1;
  as_lua_ctx ctx = {.mine_changed = mc, .theirs_changed = tc, .mine_ts_us = 100,
                    .theirs_ts_us = 200, .conflict = true};
  as_lua *L = open_example(f.s, "fieldwise_merge.lua");
  as_error err;
  ck_assert_msg(run(L, &f, &ctx, &err) == AS_OK, "%s", err.message);
  ck_assert_str_eq(col(&f.out, f.s, "email")->u.s.ptr, "new@x");     /* only theirs changed */
  ck_assert_str_eq(col(&f.out, f.s, "name")->u.s.ptr, "Mine Name");  /* only mine changed */
  ck_assert_int_eq(col(&f.out, f.s, "age")->u.i, 31);                /* both: theirs later */
  assert_json(&f.out, f.s, "tags", "[\"a\",\"b\",1,1.0,\"c\",2]");     /* union, order kept */
  ctx.theirs_ts_us = 50;
  ck_assert_int_eq(run(L, &f, &ctx, &err), AS_OK);
  ck_assert_int_eq(col(&f.out, f.s, "age")->u.i, 30);                /* both: mine later */
  /* unchanged tags on one side: that side's text as it was */
  tc[as_schema_column_index(f.s, "tags")] = 0;
  ck_assert_int_eq(run(L, &f, &ctx, &err), AS_OK);
  assert_json(&f.out, f.s, "tags", "[\"a\", \"b\", 1, 1.0]");
  ctx.mine_changed = NULL;
  ck_assert_int_eq(run(L, &f, &ctx, &err), AS_CONFLICT);
  ck_assert_str_eq(err.message, "the changed columns are not known");
  as_lua_close(L);
  fx_free(&f);
}
END_TEST

START_TEST(example_sum_counters) {
  fixture f;
  fx_init(&f, "mapping: counters\nkey: id\ncolumns:\n  id: text\n  n: int64\n  label: text\n");
  as_row base = {0};
  ck_assert_int_eq(as_row_init(&f.mine, f.s->ncols), AS_OK);
  ck_assert_int_eq(as_row_init(&f.theirs, f.s->ncols), AS_OK);
  ck_assert_int_eq(as_row_init(&base, f.s->ncols), AS_OK);
  put(&base, f.s, "id", "c1");
  put(&base, f.s, "n", "10");
  put(&f.mine, f.s, "id", "c1");
  put(&f.mine, f.s, "n", "13");      /* +3 here */
  put(&f.mine, f.s, "label", "m");
  put(&f.theirs, f.s, "id", "c1");
  put(&f.theirs, f.s, "n", "15");    /* +5 there */
  put(&f.theirs, f.s, "label", "t");
  as_lua_ctx ctx = {.base = &base, .conflict = true};
  as_lua *L = open_example(f.s, "sum_counters.lua");
  as_error err;
  ck_assert_msg(run(L, &f, &ctx, &err) == AS_OK, "%s", err.message);
  ck_assert_int_eq(col(&f.out, f.s, "n")->u.i, 18);
  ck_assert_str_eq(col(&f.out, f.s, "label")->u.s.ptr, "t");
  put(&f.mine, f.s, "n", NULL); /* NULL counts as 0 */
  ck_assert_int_eq(run(L, &f, &ctx, &err), AS_OK);
  ck_assert_int_eq(col(&f.out, f.s, "n")->u.i, 5);
  ctx.base = NULL;
  ck_assert_int_eq(run(L, &f, &ctx, &err), AS_CONFLICT);
  ck_assert_str_eq(err.message, "no common ancestor");
  as_lua_close(L);
  as_row_clear(&base);
  fx_free(&f);
}
END_TEST

/* ------------------------------------------------------------------ mapping files, check */

START_TEST(conflict_call_option) {
  char *lua = script_file("function resolve(m, t) return t end\n");
  char yaml[2048];
  const char *head = "mapping: users\nkey: id\ncolumns:\n  id: text\n";
  snprintf(yaml, sizeof yaml, "%sconflict: { strategy: script, script: %s, call: always }\n",
           head, lua);
  as_schema *s = schema(yaml);
  ck_assert_int_eq(s->conflict.call, AS_CALL_ALWAYS);
  as_schema_free(s);
  snprintf(yaml, sizeof yaml, "%sconflict: { strategy: script, script: %s }\n", head, lua);
  s = schema(yaml);
  ck_assert_int_eq(s->conflict.call, AS_CALL_CONFLICTS);
  as_schema_free(s);
  snprintf(yaml, sizeof yaml, "%sconflict: { strategy: vector, fallback: script, script: %s, "
           "call: conflicts }\n", head, lua);
  s = schema(yaml);
  ck_assert_int_eq(s->conflict.call, AS_CALL_CONFLICTS);
  as_schema_free(s);
  as_error err = {0};
  s = NULL;
  snprintf(yaml, sizeof yaml, "%sconflict:\n  strategy: script\n  script: %s\n  call: sometimes\n",
           head, lua);
  ck_assert_int_eq(as_schema_load_string("m.yaml", yaml, &s, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "m.yaml:8:9: bad conflict call \"sometimes\" (expected conflicts "
                                "or always)");
  snprintf(yaml, sizeof yaml, "%sconflict:\n  strategy: lww\n  call: always\n", head);
  ck_assert_int_eq(as_schema_load_string("m.yaml", yaml, &s, &err), AS_EINVAL);
  ck_assert_str_eq(err.message, "m.yaml:7:9: conflict call is only used with a script (strategy "
                                "script, or fallback script)");
  snprintf(yaml, sizeof yaml, "%sconflict:\n  strategy: script\n  script: %s\n  call: [always]\n",
           head, lua);
  ck_assert_int_eq(as_schema_load_string("m.yaml", yaml, &s, &err), AS_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.message, "m.yaml:8:9: conflict call"));
  free(lua);
}
END_TEST

START_TEST(check_compiles_scripts) {
  char *dir = as_test_tmpdir();
  char sub[4200];
  snprintf(sub, sizeof sub, "%s/maps", dir);
  ck_assert_int_eq(mkdir(sub, 0700), 0);
  char *cfg = as_test_write_file(dir, "c.yaml",
      "nodes:\n  m: { kind: mongodb, uri: u, database: d }\n  s: { kind: sqlite, path: x }\n"
      "mappings: maps/u.yaml\n");
  free(as_test_write_file(sub, "u.yaml", "mapping: u\nkey: id\ncolumns:\n  id: text\n"
                                         "conflict: { strategy: script, script: u.lua, call: always }\n"));
  char *lua = as_test_write_file(sub, "u.lua", "function resolve(m, t) return t end\n");
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  as_error err = {0};
  ck_assert_msg(as_cmd_check(cfg, out, &err) == AS_OK, "%s", err.message);
  fclose(out);
  ck_assert_msg(strstr(buf, "-- mapping u: conflict script maps/u.lua defines resolve (called on "
                            "every change)\n") != NULL, "%s", buf);
  free(buf);
  free(as_test_write_file(sub, "u.lua", "function resolve(m, t)\n  return t +\nend\n"));
  out = open_memstream(&buf, &len);
  ck_assert_int_eq(as_cmd_check(cfg, out, &err), AS_EINVAL);
  fclose(out);
  ck_assert_uint_eq(len, 0);
  char expected[8192];
  snprintf(expected, sizeof expected, "%s:3: unexpected symbol near 'end'", lua);
  ck_assert_str_eq(err.message, expected);
  free(buf);
  free(lua);
  free(cfg);
  as_test_rmtree(dir);
  free(dir);
}
END_TEST

int main(void) {
  tmp = as_test_tmpdir();
  Suite *su = suite_create("lua");
  TCase *tc = tcase_create("lua");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, values_reach_the_script_typed);
  tcase_add_test(tc, values_come_back_typed);
  tcase_add_test(tc, json_null_is_not_null);
  tcase_add_test(tc, omitted_columns_keep_mine_then_theirs);
  tcase_add_test(tc, json_unchanged_keeps_exact_text);
  tcase_add_test(tc, json_edits_keep_order_and_spelling);
  tcase_add_test(tc, json_new_values);
  tcase_add_loop_test(tc, bad_returned_values, 0, (int)(sizeof bad_values / sizeof bad_values[0]));
  tcase_add_test(tc, key_cannot_move);
  tcase_add_test(tc, nil_records_a_conflict);
  tcase_add_test(tc, script_errors);
  tcase_add_test(tc, ctx_fields);
  tcase_add_test(tc, calls_do_not_leak_state);
  tcase_add_test(tc, rows_are_filled_on_demand);
  tcase_add_test(tc, sandbox_has_no_escape_hatches);
  tcase_add_test(tc, instruction_budget);
  tcase_add_test(tc, memory_limit);
  tcase_add_test(tc, depth_limit);
  tcase_add_test(tc, print_goes_to_the_log);
  tcase_add_test(tc, load_errors);
  tcase_add_test(tc, shared_handle_from_threads);
  tcase_add_test(tc, example_keep_higher_balance);
  tcase_add_test(tc, example_fieldwise_merge);
  tcase_add_test(tc, example_sum_counters);
  tcase_add_test(tc, conflict_call_option);
  tcase_add_test(tc, check_compiles_scripts);
  suite_add_tcase(su, tc);
  int rc = as_test_run(su);
  as_test_rmtree(tmp);
  free(tmp);
  return rc;
}
