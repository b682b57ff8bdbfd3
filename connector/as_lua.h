/* as_lua.h — Lua 5.4 conflict resolution scripts (`conflict: { strategy: script, script: F }`).
 *
 * A script defines `function resolve(mine, theirs, ctx)`; the resolver seam (as_resolve.h)
 * calls it through as_lua_resolve for each conflict (or for every change with `call: always`).
 *
 * ---- What the script sees --------------------------------------------------------------
 * mine    the key's current row (as_resolve_script.c), theirs the incoming row: tables
 *         column name -> value.
 *         A column absent from the row is an absent key; NULL is the sentinel ctx.null (Lua
 *         nil would delete the key). A column is converted when first read (a call pays only
 *         for the columns it touches): reading, assigning and pairs() work as on any table;
 *         next() and rawget() see only the columns read or assigned so far; the metatable is
 *         locked ("row"). Values by column type:
 *           bool -> boolean          int64 -> integer          double -> float
 *           decimal -> string, exact text ("-12.50"); ctx.number(v) gives a Lua number and
 *                      ctx.cmp(a, b) compares exactly (decimals stay strings unless asked)
 *           text -> string           bytes -> string (raw bytes)
 *           uuid -> "8-4-4-4-12" lowercase hex       objectid -> 24 lowercase hex
 *           timestamp -> "YYYY-MM-DDTHH:MM:SS.ffffffZ" (always 6 digits, UTC)
 *           date -> "YYYY-MM-DD"
 *           json -> tables: objects -> tables with string keys, arrays -> sequences (1-based),
 *                   JSON null -> ctx.null (a plain json column holding JSON null itself ->
 *                   ctx.json_null: as_column_json_null), integers -> integers, reals ->
 *                   floats, strings, booleans. Extended-JSON wrappers ({"$numberLong":"5"},
 *                   {"$oid":...}, {"$date":...}) stay tables with one "$..." key: left alone,
 *                   they come back as they were. Decoded tables are marked (getmetatable(t)
 *                   is "json array" or "json object") so an empty one keeps its kind.
 * ctx     (fields computed on first access; pairs(ctx) lists only those already read)
 *           ctx.mapping                 mapping name
 *           ctx.key_json                canonical key text ({"id":"u1"}, as_key.h)
 *           ctx.key                     key columns -> values (typed as above)
 *           ctx.mine_node, ctx.theirs_node          node names
 *           ctx.mine_ts_us, ctx.theirs_ts_us        commit times, integer µs UTC
 *           ctx.mine_ts, ctx.theirs_ts              the same as ISO text (nil if out of range)
 *           ctx.mine_vv, ctx.theirs_vv              version vectors, node -> counter ({} if none)
 *           ctx.mine_changed, ctx.theirs_changed    column names each side changed, schema
 *                                                   order; nil when not known
 *           ctx.base                    the row the incoming change was made on top of
 *                                       (like mine; as_row.h `before`) or nil
 *           ctx.conflict                true when the two changes are concurrent (false only
 *                                       for `call: always` calls on ordinary changes)
 *         helpers: ctx.null, ctx.json_null; ctx.number(v) (number, decimal text or nil/null
 *         -> number or nil; integral text within int64 -> integer, else float); ctx.cmp(a, b)
 *         (-1/0/1, numbers and decimal texts compared exactly); ctx.array(t) / ctx.object(t)
 *         (mark a table as a JSON array / object; returns t; with no argument a new empty one).
 *
 * ---- What the script returns -------------------------------------------------------------
 *   a row table      the merged row. A column it omits keeps mine's value (theirs's when mine
 *                    lacks the column; absent when neither has it). So `return theirs`,
 *                    `return mine`, `return {balance = "5"}` (mine with one column changed)
 *                    all work; an unknown column name is an error (typos do not vanish).
 *                    Returning mine, theirs or ctx.base: the columns the script never touched
 *                    are copied from that row as they are (no conversion at all); a column set
 *                    to nil on it counts as omitted.
 *                    Key columns, when given, must equal mine's (a resolver cannot move a row).
 *   nil, "reason"    no decision: AS_CONFLICT with the reason in err->message (the caller
 *                    records the conflict and falls back).
 * Values going back: the column's own type as above; int64 also takes a float with an
 * integral value (2^3); double takes any number; decimal takes its string (validated, kept
 * as given) or a number; json takes tables (array if marked or a non-empty sequence or empty,
 * object if marked or string keys only; unmarked object keys sorted), strings, numbers,
 * booleans; ctx.null is NULL (refused for required columns); ctx.json_null is JSON null (a
 * plain json column only; inside a json value it is null like ctx.null). A json value equal (as Lua
 * values) to mine's or theirs's keeps that side's exact text (key order, number spelling);
 * an edited object keeps its keys' original order, new keys after them in sorted order.
 * Floats are written with a '.' or exponent, so 1.0 stays a double. Anything else is
 * AS_EDATA naming mapping, key and column.
 *
 * ---- Sandbox --------------------------------------------------------------------------------
 * Globals: assert error getmetatable ipairs next pairs pcall rawequal rawget rawlen rawset
 * select setmetatable tonumber tostring type xpcall _VERSION _G print, and the libraries
 * string (no string.dump), table, math, utf8, all read-only. No load/loadstring/dofile/
 * loadfile/require/collectgarbage/warn, no io/os/debug/package/coroutine. print goes to the
 * connector's log at debug level (component "script"). setmetatable refuses a metatable with
 * __gc (finalizers would run outside any call's limits); rawset refuses the read-only tables;
 * xpcall calls its message handler after the error unwound (no traceback is available anyway).
 * Chunks are text only (a binary chunk is refused at load).
 * Limits (as_lua_limits, per call): instructions (count hook; sticky once exhausted, so pcall
 * cannot swallow it), memory per interpreter (a counting allocator), call depth (a call hook).
 * An error, an exhausted budget, the memory limit or the depth limit make the call return
 * AS_ERR; the interpreter stays usable (it is re-created after a memory failure).
 * Known limit: a single C library call is not interrupted (the count hook runs between Lua
 * instructions), e.g. a pathological string pattern over a long string; memory stays capped.
 *
 * ---- State between calls ------------------------------------------------------------------
 * The script file runs once per interpreter (at open); what it creates then (top-level locals,
 * tables in global variables) lives as long as the interpreter and is seen by every call of
 * it. mine, theirs and ctx are new tables each call, and global variables assigned during a
 * call go to a per-call table that is dropped afterwards: a call cannot change the libraries,
 * the globals of the next call, or the next call's arguments. A row or ctx kept from an earlier
 * call raises an error when a value it had not read yet is asked for. Do not keep caches across
 * calls: the connector may use several interpreters for one mapping and re-creates them on
 * reload.
 *
 * ---- Cost (bench/bench_lua.c) --------------------------------------------------------------
 * The count hook makes Lua trap every VM instruction. On a 10-column row (2 shared cores): a
 * call returning theirs about 1 µs, the shipped keep_higher_balance.lua about 2.3 µs,
 * fieldwise_merge.lua (two JSON arrays decoded, merged and encoded) about 10 µs; as_lua_open +
 * as_lua_close about 100 µs; an interpreter holds about 40 KB.
 *
 * ---- Threads -------------------------------------------------------------------------------
 * A handle is one interpreter guarded by its own mutex: calls on one handle never run at the
 * same time. The engine resolves in several pair threads in parallel (per-key stripes), so it
 * should open one handle per (mapping, pair thread): as_lua_open is cheap (a compile and one
 * run of the file; see bench/bench_lua.c), and threads then never wait for each other. Sharing
 * a handle is correct but serialises those calls.
 *
 * ---- Ownership ---------------------------------------------------------------------------
 * as_lua_open borrows the schema (it must outlive the handle) and copies the path and the
 * limits. as_lua_resolve borrows its inputs for the call; *out is owned by the caller. */
#ifndef AS_LUA_H
#define AS_LUA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "as_error.h"
#include "as_row.h"
#include "as_schema.h"

typedef struct as_lua as_lua;

typedef struct as_lua_limits {
  int64_t instructions; /* Lua VM instructions per call (and for the load); <= 0: default */
  size_t memory_bytes;  /* bytes the interpreter may hold; 0: default */
  int max_depth;        /* nested calls (Lua and C functions); <= 0: default */
} as_lua_limits;

#define AS_LUA_DEFAULT_INSTRUCTIONS 1000000
#define AS_LUA_DEFAULT_MEMORY (16u << 20)
#define AS_LUA_DEFAULT_DEPTH 200

/* Reads and compiles the script (script_path, or s->conflict.script when NULL), runs it once
 * and checks that it defines a function `resolve`. lim may be NULL (defaults).
 * AS_EINVAL: unreadable file, syntax error ("FILE:LINE: message"), an error while running the
 * file ("FILE:LINE: message"), a limit hit while running it, or no function resolve.
 * AS_ERR: out of memory. */
int as_lua_open(const as_schema *s, const char *script_path, const as_lua_limits *lim,
                as_lua **out, as_error *err) AS_MUSTCHECK;
void as_lua_close(as_lua *L); /* NULL-safe */

typedef struct as_lua_ctx {
  const char *key_json;  /* canonical key text; NULL: computed from mine */
  const char *mine_node, *theirs_node;
  int64_t mine_ts_us, theirs_ts_us;
  const as_vv_entry *mine_vv;
  size_t mine_nvv;
  const as_vv_entry *theirs_vv;
  size_t theirs_nvv;
  const uint8_t *mine_changed, *theirs_changed; /* per column flags (schema order), may be NULL */
  const as_row *base;                            /* common ancestor's row, may be NULL */
  bool conflict;                                 /* the changes are concurrent */
} as_lua_ctx;

/* Calls resolve(mine, theirs, ctx). mine and theirs are rows of the handle's schema (mine is
 * normally full; key columns must be set in mine). out: a zeroed row ({0}) or one from an
 * earlier call or as_row_init (reused).
 *   AS_OK        *out holds the merged row (see above for omitted columns)
 *   AS_CONFLICT  the script returned nil; err->message is its reason ("no reason given" when
 *                it gave none)
 *   AS_EDATA     a returned value does not fit its column; err names mapping, key, column
 *   AS_ERR       the script failed: an error (its message with FILE:LINE), "instruction budget
 *                exhausted", "memory limit exceeded", "call depth limit exceeded", or a
 *                return value that is not a row; err names mapping, key and script.
 * On any error *out is left with no column set. */
int as_lua_resolve(as_lua *L, const as_row *mine, const as_row *theirs, const as_lua_ctx *ctx,
                   as_row *out, as_error *err) AS_MUSTCHECK;

/* Memory the interpreter holds now (bytes), for metrics and tests. */
size_t as_lua_memory(as_lua *L);

#endif
