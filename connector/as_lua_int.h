/* as_lua_int.h — what as_lua.c (interpreter, sandbox, calls) and as_lua_conv.c (values between
 * rows and Lua, JSON) share. Private to connector/. */
#ifndef AS_LUA_INT_H
#define AS_LUA_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>

#include "as_buf.h"
#include "as_lua.h"

/* JSON nesting accepted both ways (BSON documents nest at most 100 deep in MongoDB). */
#define ASL_JSON_MAX_DEPTH 400

/* Row proxies: mine, theirs, ctx.base. */
enum { ASL_MINE = 0, ASL_THEIRS = 1, ASL_BASE = 2, ASL_NSIDES = 3 };

/* The call in progress (NULL between calls). */
typedef struct asl_call {
  const as_row *rows[ASL_NSIDES]; /* base may be NULL */
  const as_lua_ctx *ctx;
  const char *key_json;
} asl_call;

struct as_lua {
  const as_schema *s; /* borrowed */
  char *path;         /* the script file, as given */
  char *src;          /* its text, kept to re-create the interpreter */
  size_t srclen;
  as_lua_limits lim;
  pthread_mutex_t mu; /* one call at a time */
  lua_State *L;       /* NULL when re-creating it failed (the next call tries again) */
  /* allocator */
  size_t mem_used;
  bool mem_refused; /* an allocation was refused since the flag was last cleared */
  /* instruction budget (count hook) */
  int64_t budget_left;
  int armed;        /* the count the hook is armed with */
  bool budget_out;  /* sticky within a call */
  bool depth_out;
  asl_call *call;
  /* registry references (luaL_ref) */
  int r_chunk;   /* the compiled file: its upvalue 1 is the _ENV of every function in it */
  int r_g0;      /* the script's globals, filled when the file ran */
  int r_envmt;   /* metatable of a call's globals: __index = g0, locked */
  int r_resolve; /* the function resolve */
  int r_null;    /* the NULL sentinel */
  int r_jnull;   /* a json column holding JSON null (not NULL) */
  int r_arr_mt, r_obj_mt; /* marks of decoded JSON arrays / objects */
  int r_order;   /* weak-keyed: JSON object table -> list of its keys in original order */
  int r_numtext; /* weak-keyed: JSON container -> {key or index = number as spelled} for
                    numbers spelled unlike the encoder would (1.50, 1e2, beyond int64) */
  int r_names;   /* column names, sequence in schema order */
  int r_colidx;  /* column name -> 0-based index */
  int r_ctxmt;   /* metatable of ctx tables */
  int r_ctx;     /* the ctx of the call in progress (or nil) */
  int r_ro;      /* weak-keyed set of the read-only tables (rawset refuses them) */
  int r_rowmt[ASL_NSIDES]; /* metatables of the row proxies, one per side */
  int r_cur;     /* {mine proxy, theirs proxy, base proxy} of the call in progress (false) */
  int r_next;    /* the function next (row proxies' __pairs) */
  uint8_t *seen; /* per column, scratch of as_lua_resolve */
  uint8_t *mat;  /* ASL_NSIDES x ncols: the script took the column of that row proxy over
                    (read or wrote it): its raw table entry is what counts */
  as_buf jbuf;   /* JSON output scratch */
  as_buf sbuf;   /* JSON string unescaping scratch */
};

static inline as_lua *asl_handle(lua_State *L) { return *(as_lua **)lua_getextraspace(L); }

/* The value at idx is ctx.null or ctx.json_null (inside a JSON value both are JSON null). */
static inline bool asl_is_sentinel(lua_State *L, const as_lua *h, int idx) {
  if (lua_type(L, idx) != LUA_TUSERDATA) return false;
  idx = lua_absindex(L, idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_null);
  bool eq = lua_rawequal(L, -1, idx);
  lua_pop(L, 1);
  if (eq) return true;
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->r_jnull);
  eq = lua_rawequal(L, -1, idx);
  lua_pop(L, 1);
  return eq;
}

/* Pushes a new row proxy of the call in progress (as_lua.h: columns filled on first read). */
void asl_push_proxy(lua_State *L, as_lua *h, int side);
/* Registers the row proxy metatables (setup). */
void asl_setup_rows(lua_State *L, as_lua *h);
/* The side (ASL_MINE...) of the row proxy at idx, or -1 if it is not one. */
int asl_proxy_side(lua_State *L, as_lua *h, int idx);
/* Pushes one value of column c (Lua errors on an impossible value). */
void asl_push_value(lua_State *L, as_lua *h, const as_column *c, const as_value *v);
/* Converts the Lua value at idx to column col's type. AS_OK (out set, owned by the caller),
 * AS_EDATA (why set: what is wrong, without the column), AS_ERR (out of memory, why set).
 * Never raises a Lua error except when Lua itself runs out of memory. */
int asl_to_value(lua_State *L, as_lua *h, int idx, size_t col, const as_row *mine,
                 const as_row *theirs, as_value *out, char *why, size_t whylen);
/* Short description of the Lua value at idx for messages ("string \"5\"", "2.5", "a table"). */
void asl_describe(lua_State *L, int idx, char *out, size_t n);

/* ctx helpers (C functions registered on the ctx metatable). */
int asl_fn_number(lua_State *L);
int asl_fn_cmp(lua_State *L);
int asl_fn_array(lua_State *L);
int asl_fn_object(lua_State *L);

/* "YYYY-MM-DDTHH:MM:SS.ffffffZ" into out (>= 32 bytes); false outside years 0001..9999. */
bool asl_format_ts(int64_t us, char *out);

#endif
