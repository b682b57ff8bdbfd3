/* as_lua.c — the Lua interpreter of a conflict script: sandbox, limits, one call of resolve
 * (contract in as_lua.h; values are converted by as_lua_conv.c).
 *
 * Decisions:
 * - Every Lua API call that may allocate runs inside lua_pcall (setup, do_call), so running
 *   out of the memory cap is a Lua error, never a panic.
 * - Globals: the file runs once with _ENV = g0 (its own table over the read-only base). After
 *   it ran, g0's contents move to g0data and g0 becomes a read-only proxy (a script that kept
 *   `local G = _G` cannot write through it). Each call swaps the file's _ENV upvalue (shared
 *   by every function defined in the file) for a new table over g0data: globals assigned in a
 *   call vanish with it.
 * - The instruction budget is a count hook; once exhausted the hook fires after every
 *   instruction and at every call, so pcall in the script cannot swallow it. The depth limit
 *   is a call hook asking lua_getstack whether level max_depth exists (cost bounded by it).
 * - After a memory failure the interpreter is closed and created again from the kept source
 *   (what the script kept at load time may be what filled it). */
#include "as_lua.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "as_key.h"
#include "as_log.h"
#include "as_lua_int.h"

#define CHUNK_NAME "=<script>"
#define CHUNK_TAG "<script>:"
#define HOOK_MASK (LUA_MASKCOUNT | LUA_MASKCALL)

static char ctx_key; /* registry key (address) of the ctx of the call in progress */

/* ------------------------------------------------------------------ allocator, hooks */

static void *lalloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  as_lua *h = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    h->mem_used -= old;
    return NULL;
  }
  if (nsize > old && h->mem_used + (nsize - old) > h->lim.memory_bytes) {
    h->mem_refused = true;
    return NULL;
  }
  void *p = realloc(ptr, nsize);
  if (p) h->mem_used = h->mem_used - old + nsize;
  return p;
}

static void hook(lua_State *L, lua_Debug *ar) {
  as_lua *h = asl_handle(L);
  if (ar->event == LUA_HOOKCOUNT && !h->budget_out) {
    h->budget_left -= h->armed;
    if (h->budget_left > 0) {
      int next = h->budget_left > INT_MAX ? INT_MAX : (int)h->budget_left;
      if (next != h->armed) {
        h->armed = next;
        lua_sethook(L, hook, HOOK_MASK, next);
      }
      return;
    }
    h->budget_out = true;
    h->armed = 1;
    lua_sethook(L, hook, HOOK_MASK, 1);
  }
  if (h->budget_out) luaL_error(L, "instruction budget exhausted");
  lua_Debug d;
  if (ar->event != LUA_HOOKCOUNT && lua_getstack(L, h->lim.max_depth, &d)) {
    h->depth_out = true;
    luaL_error(L, "call depth limit exceeded");
  }
}

static void arm(as_lua *h) {
  h->budget_left = h->lim.instructions;
  h->budget_out = h->depth_out = h->mem_refused = false;
  h->armed = h->budget_left > INT_MAX ? INT_MAX : (int)h->budget_left;
  lua_sethook(h->L, hook, HOOK_MASK, h->armed);
}

/* ------------------------------------------------------------------ sandbox functions */

static int sb_print(lua_State *L) {
  if (AS_LOG_DEBUG > as_log_current_level) return 0;
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  as_log_write(AS_LOG_DEBUG, "script", "mapping %s: %.*s", asl_handle(L)->s->name,
               (int)(len > 2000 ? 2000 : len), s);
  return 0;
}

static int sb_readonly(lua_State *L) {
  return luaL_error(L, "attempt to modify a read-only table");
}

static bool is_readonly(lua_State *L, int idx) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, asl_handle(L)->r_ro);
  lua_pushvalue(L, idx);
  bool ro = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  return ro;
}

static int sb_rawset(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  luaL_checkany(L, 3);
  if (is_readonly(L, 1)) return sb_readonly(L);
  lua_settop(L, 3);
  lua_rawset(L, 1);
  return 1;
}

/* xpcall whose handler runs after the error unwound. Lua calls a message handler before
 * unwinding, and after an error raised by a hook (the budget) hooks stay off until a pcall
 * catches it: a looping handler would then never be stopped. */
static int sb_xpcall(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checkany(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 2);
  lua_remove(L, 2);
  lua_insert(L, 1); /* handler, f, args... */
  if (lua_pcall(L, n - 2, LUA_MULTRET, 0) == LUA_OK) {
    lua_pushboolean(L, 1);
    lua_replace(L, 1);
    return lua_gettop(L);
  }
  lua_pushboolean(L, 0);
  lua_insert(L, 1); /* false, handler, error */
  lua_call(L, 1, 1);
  return 2;
}

static int sb_setmetatable(lua_State *L) {
  int t = lua_type(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  if (t == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL) {
      return luaL_error(L, "__gc metamethods are not allowed in conflict scripts");
    }
    lua_pop(L, 1);
  }
  if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL) {
    return luaL_error(L, "cannot change a protected metatable");
  }
  lua_settop(L, 2);
  lua_setmetatable(L, 1);
  return 1;
}

/* Sets the table at -1 read-only: a proxy is pushed in its place. */
static void make_proxy(lua_State *L, as_lua *h) {
  lua_newtable(L);                 /* inner proxy */
  lua_createtable(L, 0, 3);        /* inner proxy mt */
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, sb_readonly);
  lua_setfield(L, -2, "__newindex");
  lua_pushliteral(L, "read-only");
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_remove(L, -2);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_ro);
  lua_pushvalue(L, -2);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

static const char *const base_names[] = {
    "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget",
    "rawlen", "select", "tonumber", "tostring", "type", "_VERSION", NULL};

static const struct {
  const char *name;
  lua_CFunction open;
} libs[] = {{LUA_STRLIBNAME, luaopen_string},
            {LUA_TABLIBNAME, luaopen_table},
            {LUA_MATHLIBNAME, luaopen_math},
            {LUA_UTF8LIBNAME, luaopen_utf8}};

/* Pushes the read-only base environment: chosen base functions and read-only libraries. */
static void push_base(lua_State *L, as_lua *h) {
  luaL_requiref(L, LUA_GNAME, luaopen_base, 0);
  lua_getfield(L, -1, "next");
  h->r_next = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);
  int base = lua_gettop(L);
  for (size_t i = 0; base_names[i]; i++) {
    lua_getfield(L, base - 1, base_names[i]);
    lua_setfield(L, base, base_names[i]);
  }
  lua_pushcfunction(L, sb_print);
  lua_setfield(L, base, "print");
  lua_pushcfunction(L, sb_rawset);
  lua_setfield(L, base, "rawset");
  lua_pushcfunction(L, sb_setmetatable);
  lua_setfield(L, base, "setmetatable");
  lua_pushcfunction(L, sb_xpcall);
  lua_setfield(L, base, "xpcall");
  for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
    luaL_requiref(L, libs[i].name, libs[i].open, 0);
    lua_newtable(L); /* a copy: the library's own table stays unreachable */
    lua_pushnil(L);
    while (lua_next(L, -3)) {
      if (strcmp(lua_tostring(L, -2), "dump") == 0) {
        lua_pop(L, 1);
        continue;
      }
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, -4);
    }
    if (strcmp(libs[i].name, LUA_STRLIBNAME) == 0) { /* ("x"):rep() goes to the copy */
      lua_pushliteral(L, "");
      lua_getmetatable(L, -1);
      lua_pushvalue(L, -3);
      lua_setfield(L, -2, "__index");
      lua_pushliteral(L, "read-only");
      lua_setfield(L, -2, "__metatable");
      lua_pop(L, 2);
    }
    make_proxy(L, h);
    lua_setfield(L, base, libs[i].name);
    lua_pop(L, 1);
  }
  lua_remove(L, base - 1); /* base itself is unreachable: g0's metatable is locked */
}

/* A new table with a locked metatable {__index = idx value, __metatable = name}, ref'd. */
static int new_mt(lua_State *L, int index_idx, const char *name) {
  index_idx = index_idx ? lua_absindex(L, index_idx) : 0;
  lua_createtable(L, 0, 2);
  if (index_idx) {
    lua_pushvalue(L, index_idx);
    lua_setfield(L, -2, "__index");
  }
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__metatable");
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* A new weak-keyed table, ref'd. */
static int new_weak(lua_State *L) {
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

static int sentinel_tostring(lua_State *L) {
  if (!lua_getmetatable(L, 1)) return 0;
  lua_getfield(L, -1, "__name");
  return 1;
}

/* A sentinel userdata: tostring() and its locked metatable's name are `name`. */
static int new_sentinel(lua_State *L, const char *name) {
  lua_newuserdatauv(L, 0, 0);
  lua_createtable(L, 0, 3);
  lua_pushcfunction(L, sentinel_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

static int ctx_index(lua_State *L);

/* Registry objects shared by all calls. */
static void setup_registry(lua_State *L, as_lua *h) {
  h->r_order = new_weak(L);
  h->r_numtext = new_weak(L);
  h->r_ro = new_weak(L);
  h->r_null = new_sentinel(L, "null");
  h->r_jnull = new_sentinel(L, "json null");
  h->r_arr_mt = new_mt(L, 0, "json array");
  h->r_obj_mt = new_mt(L, 0, "json object");
  lua_createtable(L, (int)h->s->ncols, 0);
  lua_createtable(L, 0, (int)h->s->ncols);
  for (size_t i = 0; i < h->s->ncols; i++) {
    lua_pushstring(L, h->s->cols[i].name);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -4, (lua_Integer)i + 1);
    lua_pushinteger(L, (lua_Integer)i);
    lua_rawset(L, -3);
  }
  h->r_colidx = luaL_ref(L, LUA_REGISTRYINDEX);
  h->r_names = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushcfunction(L, ctx_index);
  h->r_ctxmt = new_mt(L, -1, "ctx");
  lua_pop(L, 1);
  asl_setup_rows(L, h);
  lua_pushboolean(L, 0); /* the key exists from now on: resetting it never allocates */
  lua_rawsetp(L, LUA_REGISTRYINDEX, &ctx_key);
}

/* Protected: the sandbox, then the file, run once; finds resolve. */
static int setup(lua_State *L) {
  as_lua *h = lua_touserdata(L, 1);
  setup_registry(L, h);
  push_base(L, h);
  int base = lua_gettop(L);
  lua_newtable(L); /* g0 */
  int g0 = base + 1;
  lua_pushvalue(L, g0);
  lua_setfield(L, g0, "_G");
  int mt = new_mt(L, base, "read-only");
  lua_rawgeti(L, LUA_REGISTRYINDEX, mt);
  lua_setmetatable(L, g0);
  luaL_unref(L, LUA_REGISTRYINDEX, mt);
  if (luaL_loadbufferx(L, h->src, h->srclen, CHUNK_NAME, "t") != LUA_OK) return lua_error(L);
  lua_pushvalue(L, -1);
  h->r_chunk = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, g0);
  lua_setupvalue(L, -2, 1);
  lua_call(L, 0, 0);
  lua_getfield(L, g0, "resolve");
  if (lua_type(L, -1) != LUA_TFUNCTION) {
    return luaL_error(L, "no function resolve(mine, theirs, ctx) defined (resolve is %s)",
                      luaL_typename(L, -1));
  }
  h->r_resolve = luaL_ref(L, LUA_REGISTRYINDEX);
  /* freeze: g0's contents move to g0data (over base); g0 becomes a read-only proxy */
  lua_newtable(L);
  int data = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, g0)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, data);
    lua_pushvalue(L, -1);
    lua_pushnil(L);
    lua_rawset(L, g0);
  }
  mt = new_mt(L, base, "read-only");
  lua_rawgeti(L, LUA_REGISTRYINDEX, mt);
  lua_setmetatable(L, data);
  luaL_unref(L, LUA_REGISTRYINDEX, mt);
  lua_createtable(L, 0, 3);
  lua_pushvalue(L, data);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, sb_readonly);
  lua_setfield(L, -2, "__newindex");
  lua_pushliteral(L, "read-only");
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, g0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_ro);
  lua_pushvalue(L, g0);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  h->r_envmt = new_mt(L, data, "read-only");
  lua_pushvalue(L, g0);
  h->r_g0 = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/* ------------------------------------------------------------------ messages */

/* The Lua message at -1 (or a description of a non-string error object), with the chunk
 * name replaced by the script's path. */
static void lua_message(lua_State *L, const char *path, char *out, size_t n) {
  const char *m = lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER
                      ? lua_tostring(L, -1) : NULL;
  if (!m) {
    snprintf(out, n, "(error object is a %s value)", luaL_typename(L, -1));
    return;
  }
  size_t o = 0, tag = strlen(CHUNK_TAG), plen = strlen(path);
  while (*m && o + 1 < n) {
    if (strncmp(m, CHUNK_TAG, tag) == 0) {
      size_t k = plen < n - 1 - o ? plen : n - 1 - o;
      memcpy(out + o, path, k);
      o += k;
      if (o + 1 < n) out[o++] = ':';
      m += tag;
    } else {
      out[o++] = *m++;
    }
  }
  out[o] = '\0';
}

static void state_close(as_lua *h) {
  if (h->L) lua_close(h->L);
  h->L = NULL;
}

static int state_new(as_lua *h, as_error *err) {
  h->mem_used = 0;
  h->mem_refused = false;
  lua_State *L = lua_newstate(lalloc, h);
  if (!L) {
    return as_error_set(err, AS_DOM_SCRIPT, h->mem_refused ? AS_EINVAL : AS_ERR,
                        "%s: cannot start a Lua interpreter (%s)", h->path,
                        h->mem_refused ? "memory limit too small" : "out of memory");
  }
  *(as_lua **)lua_getextraspace(L) = h;
  h->L = L;
  arm(h);
  lua_pushcfunction(L, setup);
  lua_pushlightuserdata(L, h);
  int st = lua_pcall(L, 1, 0, 0);
  lua_sethook(L, NULL, 0, 0);
  if (st == LUA_OK) return AS_OK;
  char msg[AS_ERROR_MSG_MAX];
  if (h->budget_out) {
    snprintf(msg, sizeof msg, "%s: instruction budget exhausted while running the file (%" PRId64
             " instructions)", h->path, h->lim.instructions);
  } else if (st == LUA_ERRMEM || h->mem_refused) {
    snprintf(msg, sizeof msg, "%s: memory limit exceeded while loading (%zu bytes)", h->path,
             h->lim.memory_bytes);
  } else {
    char lm[AS_ERROR_MSG_MAX];
    lua_message(L, h->path, lm, sizeof lm);
    size_t plen = strlen(h->path);
    bool located = strncmp(lm, h->path, plen) == 0 && lm[plen] == ':';
    snprintf(msg, sizeof msg, "%s%s%s", located ? "" : h->path, located ? "" : ": ", lm);
  }
  state_close(h);
  return as_error_set(err, AS_DOM_SCRIPT, AS_EINVAL, "%s", msg);
}

/* ------------------------------------------------------------------ open, close */

static int read_file(const char *path, char **out, size_t *len, as_error *err) {
  FILE *f = fopen(path, "rb");
  as_buf b = AS_BUF_INIT;
  char chunk[8192];
  size_t n;
  if (!f) {
    return as_error_set(err, AS_DOM_SCRIPT, AS_EINVAL, "%s: cannot read the conflict script: %s",
                        path, strerror(errno));
  }
  int rc = AS_OK;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && rc == AS_OK) rc = as_buf_append(&b, chunk, n);
  if (rc == AS_OK && ferror(f)) {
    rc = as_error_set(err, AS_DOM_SCRIPT, AS_EINVAL, "%s: cannot read the conflict script: %s",
                      path, strerror(errno));
  } else if (rc != AS_OK) {
    rc = as_error_set(err, AS_DOM_SCRIPT, AS_ERR, "out of memory");
  }
  fclose(f);
  if (rc == AS_OK) {
    *len = b.len;
    if (as_buf_reserve(&b, 1) != AS_OK) rc = as_error_set(err, AS_DOM_SCRIPT, AS_ERR, "out of memory");
  }
  if (rc == AS_OK) {
    *out = as_buf_steal(&b);
    if (!*out) rc = as_error_set(err, AS_DOM_SCRIPT, AS_ERR, "out of memory");
  }
  as_buf_free(&b);
  return rc;
}

int as_lua_open(const as_schema *s, const char *script_path, const as_lua_limits *lim,
                as_lua **out, as_error *err) {
  *out = NULL;
  const char *path = script_path ? script_path : s->conflict.script;
  if (!path) {
    return as_error_set(err, AS_DOM_SCRIPT, AS_EINVAL, "mapping %s has no conflict script",
                        s->name);
  }
  as_lua *h = calloc(1, sizeof *h);
  if (!h) return as_error_set(err, AS_DOM_SCRIPT, AS_ERR, "out of memory");
  h->s = s;
  h->lim.instructions = lim && lim->instructions > 0 ? lim->instructions
                                                     : AS_LUA_DEFAULT_INSTRUCTIONS;
  h->lim.memory_bytes = lim && lim->memory_bytes ? lim->memory_bytes : AS_LUA_DEFAULT_MEMORY;
  h->lim.max_depth = lim && lim->max_depth > 0 ? lim->max_depth : AS_LUA_DEFAULT_DEPTH;
  int rc = AS_OK;
  h->path = strdup(path);
  h->seen = calloc(s->ncols ? s->ncols : 1, 1);
  h->mat = calloc(ASL_NSIDES * (s->ncols ? s->ncols : 1), 1);
  if (!h->path || !h->seen || !h->mat || pthread_mutex_init(&h->mu, NULL) != 0) {
    free(h->path);
    free(h->seen);
    free(h->mat);
    free(h);
    return as_error_set(err, AS_DOM_SCRIPT, AS_ERR, "out of memory");
  }
  if ((rc = read_file(path, &h->src, &h->srclen, err)) == AS_OK) rc = state_new(h, err);
  if (rc != AS_OK) {
    as_lua_close(h);
    return rc;
  }
  *out = h;
  return AS_OK;
}

void as_lua_close(as_lua *h) {
  if (!h) return;
  state_close(h);
  pthread_mutex_destroy(&h->mu);
  as_buf_free(&h->jbuf);
  as_buf_free(&h->sbuf);
  free(h->seen);
  free(h->mat);
  free(h->src);
  free(h->path);
  free(h);
}

size_t as_lua_memory(as_lua *h) {
  pthread_mutex_lock(&h->mu);
  size_t n = h->L ? h->mem_used : 0;
  pthread_mutex_unlock(&h->mu);
  return n;
}

/* ------------------------------------------------------------------ ctx */

static void push_vv(lua_State *L, const as_vv_entry *vv, size_t n) {
  lua_createtable(L, 0, (int)n);
  for (size_t i = 0; i < n; i++) {
    lua_pushinteger(L, (lua_Integer)vv[i].counter);
    lua_setfield(L, -2, vv[i].node);
  }
}

static void push_changed(lua_State *L, as_lua *h, const uint8_t *flags) {
  if (!flags) {
    lua_pushnil(L);
    return;
  }
  lua_newtable(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_names);
  lua_Integer k = 0;
  for (size_t i = 0; i < h->s->ncols; i++) {
    if (!flags[i]) continue;
    lua_rawgeti(L, -1, (lua_Integer)i + 1);
    lua_rawseti(L, -3, ++k);
  }
  lua_pop(L, 1);
}

static void push_ts(lua_State *L, int64_t us) {
  char b[32];
  if (asl_format_ts(us, b)) lua_pushstring(L, b);
  else lua_pushnil(L);
}

static void push_key(lua_State *L, as_lua *h, const as_row *mine) {
  lua_createtable(L, 0, (int)h->s->nkey);
  for (size_t k = 0; k < h->s->nkey; k++) {
    size_t i = h->s->key_idx[k];
    if (i >= mine->n || !mine->set[i]) continue;
    asl_push_value(L, h, &h->s->cols[i], &mine->v[i]);
    lua_setfield(L, -2, h->s->cols[i].name);
  }
}

/* Computes ctx[k] (string k at 2) of the call in progress; pushes it, or nil. */
static bool ctx_field(lua_State *L, as_lua *h, const asl_call *c, const char *k) {
  const as_lua_ctx *x = c->ctx;
  bool mine = strncmp(k, "mine_", 5) == 0, theirs = strncmp(k, "theirs_", 7) == 0;
  const char *f = mine ? k + 5 : theirs ? k + 7 : NULL;
  if (strcmp(k, "mapping") == 0) lua_pushstring(L, h->s->name);
  else if (strcmp(k, "key_json") == 0) lua_pushstring(L, c->key_json);
  else if (strcmp(k, "key") == 0) push_key(L, h, c->rows[ASL_MINE]);
  else if (strcmp(k, "conflict") == 0) lua_pushboolean(L, x->conflict);
  else if (strcmp(k, "base") == 0 && x->base) asl_push_proxy(L, h, ASL_BASE);
  else if (f && strcmp(f, "node") == 0) lua_pushstring(L, mine ? x->mine_node : x->theirs_node);
  else if (f && strcmp(f, "ts_us") == 0) lua_pushinteger(L, mine ? x->mine_ts_us : x->theirs_ts_us);
  else if (f && strcmp(f, "ts") == 0) push_ts(L, mine ? x->mine_ts_us : x->theirs_ts_us);
  else if (f && strcmp(f, "vv") == 0) {
    push_vv(L, mine ? x->mine_vv : x->theirs_vv, mine ? x->mine_nvv : x->theirs_nvv);
  } else if (f && strcmp(f, "changed") == 0) {
    push_changed(L, h, mine ? x->mine_changed : x->theirs_changed);
  } else {
    return false;
  }
  return true;
}

static int ctx_index(lua_State *L) {
  as_lua *h = asl_handle(L);
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  const char *k = lua_tostring(L, 2);
  static const struct {
    const char *name;
    lua_CFunction fn;
  } helpers[] = {{"number", asl_fn_number}, {"cmp", asl_fn_cmp}, {"array", asl_fn_array},
                 {"object", asl_fn_object}};
  bool helper = false;
  if (strcmp(k, "null") == 0 || strcmp(k, "json_null") == 0) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, k[1] == 'u' ? h->r_null : h->r_jnull);
    helper = true;
  }
  for (size_t i = 0; i < sizeof helpers / sizeof helpers[0] && !helper; i++) {
    if (strcmp(k, helpers[i].name) == 0) {
      lua_pushcfunction(L, helpers[i].fn);
      helper = true;
    }
  }
  if (!helper) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &ctx_key);
    if (!h->call || !lua_rawequal(L, -1, 1)) {
      return luaL_error(L, "ctx.%s read after the call it was given to ended", k);
    }
    lua_pop(L, 1);
    if (!ctx_field(L, h, h->call, k)) return 0;
  }
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1); /* cached: ctx.base == ctx.base */
  return 1;
}

/* ------------------------------------------------------------------ one call */

typedef struct callargs {
  as_lua *h;
  asl_call call;
  as_row *out;
  int rc;             /* AS_OK, AS_CONFLICT, AS_EDATA, AS_ERR (set by do_call) */
  char msg[AS_ERROR_MSG_MAX];
} callargs;

static bool has(const as_row *r, size_t i) { return r && i < r->n && r->set[i]; }

/* The row table at t -> a->out: its entries, then for the other columns the row proxy's own
 * value when t is a proxy and the script left that column alone, else mine's, else theirs's. */
static void merge(lua_State *L, callargs *a, int t) {
  as_lua *h = a->h;
  const as_schema *s = h->s;
  char why[512];
  int side = asl_proxy_side(L, h, t);
  const uint8_t *mat = side >= 0 ? h->mat + (size_t)side * s->ncols : NULL;
  const as_row *mine = a->call.rows[ASL_MINE], *theirs = a->call.rows[ASL_THEIRS];
  memset(h->seen, 0, s->ncols);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_colidx);
  int ci = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      asl_describe(L, -2, why, sizeof why);
      a->rc = AS_EDATA;
      snprintf(a->msg, sizeof a->msg, "resolve returned a row with a key that is not a column "
               "name (%s)", why);
      return;
    }
    lua_pushvalue(L, -2);
    if (lua_rawget(L, ci) != LUA_TNUMBER) {
      a->rc = AS_EDATA;
      snprintf(a->msg, sizeof a->msg, "resolve returned unknown column \"%.200s\"",
               lua_tostring(L, -3));
      return;
    }
    size_t i = (size_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    as_value v;
    int rc = asl_to_value(L, h, lua_gettop(L), i, mine, theirs, &v, why, sizeof why);
    if (rc != AS_OK) {
      a->rc = rc;
      snprintf(a->msg, sizeof a->msg, "resolve returned a bad value for column \"%s\" (%s): %s",
               s->cols[i].name, s->cols[i].type_name, why);
      return;
    }
    as_row_put(a->out, i, &v);
    h->seen[i] = 1;
    lua_pop(L, 1);
  }
  for (size_t i = 0; i < s->ncols; i++) {
    const as_row *from = has(mine, i) ? mine : has(theirs, i) ? theirs : NULL;
    if (mat && !mat[i] && has(a->call.rows[side], i)) from = a->call.rows[side]; /* untouched */
    if (s->cols[i].is_key && h->seen[i] && has(mine, i) &&
        !as_value_equal(&a->out->v[i], &mine->v[i])) {
      a->rc = AS_EDATA;
      snprintf(a->msg, sizeof a->msg, "resolve changed key column \"%s\" (a resolver cannot "
               "move a row to another key)", s->cols[i].name);
      return;
    }
    if (h->seen[i] || !from) continue;
    as_value v;
    if (as_value_copy(&v, &from->v[i]) != AS_OK) {
      a->rc = AS_ERR;
      snprintf(a->msg, sizeof a->msg, "out of memory");
      return;
    }
    as_row_put(a->out, i, &v);
  }
  a->rc = AS_OK;
}

/* Protected: resolve(mine, theirs, ctx), then its result into a->out. */
static int do_call(lua_State *L) {
  callargs *a = lua_touserdata(L, 1);
  as_lua *h = a->h;
  luaL_checkstack(L, 16, "call");
  lua_createtable(L, 0, 1); /* this call's globals */
  lua_pushliteral(L, "_G");
  lua_pushvalue(L, -2);
  lua_rawset(L, -3);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_envmt);
  lua_setmetatable(L, -2);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_chunk);
  lua_insert(L, -2);
  lua_setupvalue(L, -2, 1);
  lua_pop(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_resolve);
  memset(h->mat, 0, ASL_NSIDES * h->s->ncols);
  h->call = &a->call;
  asl_push_proxy(L, h, ASL_MINE);
  asl_push_proxy(L, h, ASL_THEIRS);
  lua_createtable(L, 0, 4);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_ctxmt);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &ctx_key);
  lua_call(L, 3, 2);
  int r = lua_gettop(L) - 1;
  if (lua_isnil(L, r)) {
    a->rc = AS_CONFLICT;
    const char *why = lua_type(L, r + 1) == LUA_TSTRING || lua_type(L, r + 1) == LUA_TNUMBER
                          ? lua_tostring(L, r + 1) : NULL;
    snprintf(a->msg, sizeof a->msg, "%s", why ? why : "no reason given");
  } else if (lua_istable(L, r)) {
    merge(L, a, r);
  } else {
    char got[128];
    asl_describe(L, r, got, sizeof got);
    a->rc = AS_ERR;
    snprintf(a->msg, sizeof a->msg, "resolve returned %s (expected a row table, or nil and a "
             "reason)", got);
  }
  return 0;
}

/* After a failed pcall: what went wrong, into a->msg; true when the interpreter must be
 * re-created. */
static bool failure(as_lua *h, int st, callargs *a) {
  lua_State *L = h->L;
  const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
  a->rc = AS_ERR;
  if (h->budget_out) {
    snprintf(a->msg, sizeof a->msg, "instruction budget exhausted (%" PRId64 " instructions)",
             h->lim.instructions);
  } else if (st == LUA_ERRMEM || (h->mem_refused && strstr(m, "not enough memory"))) {
    snprintf(a->msg, sizeof a->msg, "memory limit exceeded (%zu bytes)", h->lim.memory_bytes);
    return true;
  } else if (h->depth_out && strstr(m, "call depth limit exceeded")) {
    snprintf(a->msg, sizeof a->msg, "call depth limit exceeded (%d nested calls)",
             h->lim.max_depth);
  } else {
    lua_message(L, h->path, a->msg, sizeof a->msg);
  }
  return false;
}

int as_lua_resolve(as_lua *h, const as_row *mine, const as_row *theirs, const as_lua_ctx *ctx,
                   as_row *out, as_error *err) {
  static const as_lua_ctx no_ctx = {0};
  const as_schema *s = h->s;
  char *key_owned = NULL;
  if (!mine || !theirs) {
    return as_error_set(err, AS_DOM_SCRIPT, AS_EINVAL, "mapping %s: a conflict script needs both "
                        "rows (mine and theirs)", s->name);
  }
  callargs a = {.h = h, .out = out, .rc = AS_ERR};
  a.call = (asl_call){.rows = {mine, theirs, ctx ? ctx->base : NULL}, .ctx = ctx ? ctx : &no_ctx};
  if (out->n != s->ncols || !out->v) {
    as_row_clear(out);
    if (as_row_init(out, s->ncols) != AS_OK) {
      return as_error_set(err, AS_DOM_SCRIPT, AS_ERR, "out of memory");
    }
  } else {
    as_row_reset(out);
  }
  a.call.key_json = ctx && ctx->key_json ? ctx->key_json : (key_owned = as_key_describe(s, mine));
  if (!a.call.key_json) return as_error_set(err, AS_DOM_SCRIPT, AS_ERR, "out of memory");
  pthread_mutex_lock(&h->mu);
  bool recreate = false;
  if (!h->L && state_new(h, err) != AS_OK) {
    a.rc = AS_ERR;
    snprintf(a.msg, sizeof a.msg, "the interpreter could not be re-created: %s", err->message);
  } else {
    lua_State *L = h->L;
    arm(h);
    lua_pushcfunction(L, do_call);
    lua_pushlightuserdata(L, &a);
    int st = lua_pcall(L, 1, 0, 0);
    lua_sethook(L, NULL, 0, 0);
    h->call = NULL;
    if (st != LUA_OK) recreate = failure(h, st, &a);
    else if (h->budget_out) failure(h, st, &a);
    lua_settop(L, 0);
    lua_pushboolean(L, 0); /* existing slots: no allocation outside the protected call */
    lua_rawsetp(L, LUA_REGISTRYINDEX, &ctx_key);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_cur);
    for (int k = 1; k <= ASL_NSIDES; k++) {
      lua_pushboolean(L, 0);
      lua_rawseti(L, -2, k);
    }
    lua_pop(L, 1);
    if (recreate) {
      as_error e2;
      state_close(h);
      if (state_new(h, &e2) != AS_OK) {
        size_t n = strlen(a.msg);
        snprintf(a.msg + n, sizeof a.msg - n, "; the interpreter could not be re-created: %s",
                 e2.message);
      }
    }
  }
  pthread_mutex_unlock(&h->mu);
  int rc = a.rc;
  if (rc == AS_CONFLICT) {
    as_error_set(err, AS_DOM_SCRIPT, rc, "%s", a.msg);
  } else if (rc == AS_EDATA) {
    as_error_set(err, AS_DOM_SCRIPT, rc, "mapping %s, key %s: %s", s->name, a.call.key_json, a.msg);
  } else if (rc != AS_OK) {
    as_error_set(err, AS_DOM_SCRIPT, rc, "mapping %s, key %s: conflict script %s: %s", s->name,
                 a.call.key_json, h->path, a.msg);
  }
  if (rc != AS_OK) as_row_reset(out);
  free(key_owned);
  return rc;
}
