/* pg_triggers.c — capture triggers of a mapped table (capture: triggers).
 *
 * A changelog row holds: table, op ('I', 'U', 'D', 'T'), the key(s) as jsonb (values in
 * their JSON forms, which read back exactly whatever the writer's DateStyle/TimeZone are),
 * for updates masks of the changed mapped columns (bit (attnum - 1) % 64; a shared bit only
 * ever reports a column too many, never one too few), the origin mark, a timestamp, and —
 * for an exact table (pg_table_exact: every table the connector also writes) — the values:
 * `new` (inserts, updates) and `old` (deletes; updates of a script mapping, its ctx.base) as
 * arrays of the columns' texts in fixed settings (EXACT_SETTINGS). A compact table's values are read from the table when the
 * changelog is polled (state-based sync where only local writers change the table: the
 * newest committed value is the one to send; a row gone by then has a later 'D').
 *
 * Statement level (default): INSERT/DELETE/UPDATE triggers with transition tables write one
 * changelog row per 1000 keys of the statement (key = jsonb array; cols, new and old arrays
 * in the same order) and notify; the UPDATE one joins old and new rows on the key (a key that
 * changed shows as 'D' of the old key and 'I' of the new one). Row level: one changelog row
 * per row (key = object, cols = one mask, new/old the row's values) and a statement trigger
 * to notify. TRUNCATE: a statement trigger writes 'T'. Every trigger skips writes marked with
 * the origin AS_ORIGIN_LOCAL_ONLY.
 * Function bodies are string literals (pg_quote_literal), so nothing in a name can end them
 * early. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"
#include "pg_sql.h"

#define ORIGIN_VAR "arraysync_origin"
#define TS_VAR "arraysync_ts"
#define NOT_LOCAL_ONLY \
  "current_setting('arraysync.origin', true) IS DISTINCT FROM '" AS_ORIGIN_LOCAL_ONLY "'"

static const char *const trigger_names[] = {"arraysync_ins", "arraysync_upd", "arraysync_del",
                                            "arraysync_trunc", "arraysync_notify", NULL};

const char *const *pg_trigger_names(bool stmt_level) {
  /* statement level: the capture functions notify themselves */
  static const char *const stmt[] = {"arraysync_ins", "arraysync_upd", "arraysync_del",
                                     "arraysync_trunc", NULL};
  return stmt_level ? stmt : trigger_names;
}

uint64_t pg_mask_bit(int attnum) { return (uint64_t)1 << ((unsigned)(attnum - 1) % 64u); }

/* Whether the table's changelog rows carry their values. Always where the connector writes
 * the table too: a value read at poll time may already be the connector's own write that
 * replaced the local change (a relayed change or a repair landing between the local commit
 * and the poll), and the local change would be lost everywhere. Compact rows (values read at
 * poll time) only where nothing but local writers changes the table: a last-write-wins
 * mapping whose changes flow only out of SQL (direction: to-mongo) or are never sent
 * (to-sql). */
bool pg_table_exact(const pg_table *t) {
  return !t->owner && (t->s->conflict.strategy != AS_STRATEGY_LWW || t->s->direction == AS_DIR_BOTH);
}

bool pg_table_stmt_level(const as_node *n, const pg_table *t) {
  (void)t;
  return n->stmt_level;
}

/* jsonb_build_array(R."c"::text, ...) over the mapped columns (chunks of 50 arguments joined
 * by ||): the values of an exact table's changelog row, in the text forms of the trigger
 * function's settings (EXACT_SETTINGS). */
static int values_array(as_buf *b, const pg_table *t, const char *ref) {
  const as_schema *s = t->s;
  for (size_t i = 0; i < s->ntable; i++) {
    if (i % 50 == 0 && as_buf_printf(b, "%sjsonb_build_array(", i ? ") || " : "") != AS_OK) return AS_ERR;
    if (as_buf_printf(b, "%s%s.%s::text", i % 50 ? ", " : "", ref, t->qcols[i]) != AS_OK) return AS_ERR;
  }
  return as_buf_append_str(b, s->ntable ? ")" : "'[]'::jsonb");
}
#define EXACT_SETTINGS                                                                     \
  " SET datestyle TO 'ISO, YMD' SET timezone TO 'UTC' SET extra_float_digits TO 1 SET"     \
  " bytea_output TO 'hex' SET intervalstyle TO 'iso_8601'"

/* jsonb_build_object('k', R."k", ...) over the key columns (at most 50 pairs per call). */
static int key_obj(as_buf *b, const pg_table *t, const char *ref) {
  const as_schema *s = t->s;
  for (size_t j = 0; j < s->nkey; j++) {
    size_t i = s->key_idx[j];
    if (j % 50 == 0 && as_buf_printf(b, "%sjsonb_build_object(", j ? ") || " : "") != AS_OK)
      return AS_ERR;
    char *lit = pg_quote_literal(s->cols[i].name);
    if (!lit) return AS_ERR;
    int rc = as_buf_printf(b, "%s%s, %s.%s", j % 50 ? ", " : "", lit, ref, t->qcols[i]);
    free(lit);
    if (rc != AS_OK) return AS_ERR;
  }
  return as_buf_putc(b, ')');
}

/* A json column compared as jsonb: `json` has no equality operator (for jsonb the cast is
 * nothing). */
static const char *cmp_cast(const as_column *c) { return c->type == AS_T_JSON ? "::jsonb" : ""; }

/* (0::bigint | CASE WHEN o."c" IS DISTINCT FROM n."c" THEN bit ELSE 0 END | ...) over the
 * mapped non-key columns. */
static int mask_expr(as_buf *b, const pg_table *t, const int *attnum, const char *o,
                     const char *nw) {
  const as_schema *s = t->s;
  if (as_buf_append_str(b, "(0::bigint") != AS_OK) return AS_ERR;
  for (size_t i = 0; i < s->ntable; i++) {
    if (s->cols[i].is_key) continue;
    uint64_t bit = pg_mask_bit(attnum[i]);
    char lit[40];
    if (bit == (uint64_t)1 << 63) {
      snprintf(lit, sizeof lit, "(-9223372036854775807 - 1)");
    } else {
      snprintf(lit, sizeof lit, "%llu", (unsigned long long)bit);
    }
    if (as_buf_printf(b, " | CASE WHEN %s.%s%s IS DISTINCT FROM %s.%s%s THEN %s ELSE 0 END", o,
                      t->qcols[i], cmp_cast(&s->cols[i]), nw, t->qcols[i],
                      cmp_cast(&s->cols[i]), lit) != AS_OK)
      return AS_ERR;
  }
  return as_buf_putc(b, ')');
}

static int row_list(as_buf *b, const pg_table *t, const char *ref, bool keys_only) {
  const as_schema *s = t->s;
  size_t n = keys_only ? s->nkey : s->ntable;
  if (as_buf_append_str(b, "ROW(") != AS_OK) return AS_ERR;
  for (size_t j = 0; j < n; j++) {
    size_t i = keys_only ? s->key_idx[j] : j;
    if (as_buf_printf(b, "%s%s.%s%s", j ? ", " : "", ref, t->qcols[i], cmp_cast(&s->cols[i])) !=
        AS_OK)
      return AS_ERR;
  }
  return as_buf_putc(b, ')');
}

/* INSERT INTO changelog VALUES for op 'I'/'D' of row `ref` (an exact table: with its values,
 * `new` for an insert, `old` for a delete). */
static int row_insert(as_buf *b, const pg_table *t, char op, const char *ref) {
  bool exact = pg_table_exact(t);
  if (as_buf_printf(b, "INSERT INTO arraysync.changelog(tbl, op, key, origin, ts%s) VALUES (%s, '%c', ",
                    !exact ? "" : op == 'I' ? ", new" : ", old", t->lit_table, op) != AS_OK ||
      key_obj(b, t, ref) != AS_OK || as_buf_append_str(b, ", " ORIGIN_VAR ", " TS_VAR) != AS_OK ||
      (exact && (as_buf_append_str(b, ", ") != AS_OK || values_array(b, t, ref) != AS_OK)) ||
      as_buf_append_str(b, "); ") != AS_OK)
    return AS_ERR;
  return AS_OK;
}

static int body_head(as_buf *b) {
  return as_buf_append_str(b, "#variable_conflict use_variable\nDECLARE " ORIGIN_VAR
                              " text := nullif(current_setting('arraysync.origin', true), ''); "
                              TS_VAR " bigint := (extract(epoch FROM clock_timestamp())"
                              " * 1000000)::bigint; BEGIN ");
}

static int row_body(as_buf *b, const pg_table *t, const int *attnum) {
  bool exact = pg_table_exact(t), before = exact && as_schema_keeps_before(t->s);
  if (body_head(b) || as_buf_append_str(b, "IF TG_OP = 'INSERT' THEN ") ||
      row_insert(b, t, 'I', "NEW") || as_buf_append_str(b, "ELSIF TG_OP = 'DELETE' THEN ") ||
      row_insert(b, t, 'D', "OLD") || as_buf_append_str(b, "ELSIF ") ||
      row_list(b, t, "OLD", true) || as_buf_append_str(b, " IS DISTINCT FROM ") ||
      row_list(b, t, "NEW", true) || as_buf_append_str(b, " THEN ") ||
      row_insert(b, t, 'D', "OLD") || row_insert(b, t, 'I', "NEW") ||
      as_buf_printf(b, "ELSE INSERT INTO arraysync.changelog(tbl, op, key, cols, origin, ts%s) "
                       "VALUES (%s, 'U', ",
                    !exact ? "" : before ? ", old, new" : ", new", t->lit_table) ||
      key_obj(b, t, "NEW") || as_buf_append_str(b, ", ARRAY[") ||
      mask_expr(b, t, attnum, "OLD", "NEW") ||
      as_buf_append_str(b, "], " ORIGIN_VAR ", " TS_VAR))
    return AS_ERR;
  if (before && (as_buf_append_str(b, ", ") || values_array(b, t, "OLD"))) return AS_ERR;
  if (exact && (as_buf_append_str(b, ", ") || values_array(b, t, "NEW"))) return AS_ERR;
  if (as_buf_append_str(b, "); END IF; RETURN NULL; END")) return AS_ERR;
  return AS_OK;
}

/* Statement level: one changelog row per CHUNK keys of the statement (a jsonb array; keys are
 * distinct within one statement, so their order inside a row does not matter), and one
 * notification when anything was written. */
#define CHUNK "1000"
#define NOTIFY_IF_FOUND " IF FOUND THEN PERFORM pg_notify('arraysync_changes', ''); END IF;"

static int stmt_body(as_buf *b, const pg_table *t, char op) {
  const char *src = op == 'I' ? "arraysync_new" : "arraysync_old";
  bool exact = pg_table_exact(t);
  if (body_head(b) ||
      as_buf_printf(b, "INSERT INTO arraysync.changelog(tbl, op, key, nkeys, origin, ts%s) SELECT "
                       "%s, '%c', jsonb_agg(y.k), count(*), " ORIGIN_VAR ", " TS_VAR "%s FROM ("
                       "SELECT ",
                    !exact ? "" : op == 'I' ? ", new" : ", old", t->lit_table, op,
                    exact ? ", jsonb_agg(y.v)" : "") ||
      key_obj(b, t, "x") ||
      (exact && (as_buf_append_str(b, " AS k, ") || values_array(b, t, "x") ||
                 as_buf_append_str(b, " AS v"))) ||
      as_buf_printf(b, "%s, (row_number() OVER () - 1) / " CHUNK " AS g FROM %s x) y GROUP "
                       "BY y.g;" NOTIFY_IF_FOUND " RETURN NULL; END",
                    exact ? "" : " AS k", src))
    return AS_ERR;
  return AS_OK;
}

/* Statement-level UPDATE: old and new rows joined on the key; per op, chunks of keys with
 * their masks in the same order (both aggregates see the same rows). */
static int update_body(as_buf *b, const pg_table *t, const int *attnum) {
  const as_schema *s = t->s;
  const char *k0 = t->qcols[s->key_idx[0]];
  bool exact = pg_table_exact(t), before = exact && as_schema_keeps_before(s);
  if (body_head(b) ||
      as_buf_printf(b, "INSERT INTO arraysync.changelog(tbl, op, key, cols, nkeys, origin, ts%s) "
                       "SELECT %s, z.op, jsonb_agg(z.key), CASE WHEN z.op = 'U' THEN "
                       "array_agg(z.cols) END, count(*), " ORIGIN_VAR ", " TS_VAR "%s FROM ("
                       "SELECT x.*, "
                       "(row_number() OVER () - 1) / " CHUNK " AS g FROM ("
                       "SELECT CASE WHEN o.%s IS NULL THEN 'I' WHEN n.%s IS NULL THEN 'D' ELSE "
                       "'U' END AS op, CASE WHEN n.%s IS NULL THEN ",
                    exact ? ", old, new" : "", t->lit_table,
                    !exact ? ""
                    : before
                        ? ", CASE WHEN z.op <> 'I' THEN jsonb_agg(z.ov) END, CASE WHEN z.op <> 'D' "
                          "THEN jsonb_agg(z.nv) END"
                        : ", CASE WHEN z.op = 'D' THEN jsonb_agg(z.ov) END, CASE WHEN z.op <> 'D' "
                          "THEN jsonb_agg(z.nv) END",
                    k0, k0, k0) ||
      key_obj(b, t, "o") || as_buf_append_str(b, " ELSE ") || key_obj(b, t, "n") ||
      as_buf_append_str(b, " END AS key, ") || mask_expr(b, t, attnum, "o", "n") ||
      as_buf_append_str(b, " AS cols"))
    return AS_ERR;
  /* an exact table's rows: the new values of each key, and the old ones of a key gone (its
   * delete) and, for a script's ctx.base, of an update (NULL where there are none) */
  if (exact && (as_buf_printf(b, ", CASE WHEN %s.%s IS %sNULL THEN ", before ? "o" : "n", k0,
                              before ? "NOT " : "") ||
                values_array(b, t, "o") ||
                as_buf_printf(b, " END AS ov, CASE WHEN n.%s IS NOT NULL THEN ", k0) ||
                values_array(b, t, "n") || as_buf_append_str(b, " END AS nv")))
    return AS_ERR;
  if (as_buf_append_str(b, " FROM arraysync_old o FULL JOIN arraysync_new n ON ")) return AS_ERR;
  for (size_t j = 0; j < s->nkey; j++) {
    const char *k = t->qcols[s->key_idx[j]];
    if (as_buf_printf(b, "%so.%s = n.%s", j ? " AND " : "", k, k) != AS_OK) return AS_ERR;
  }
  return as_buf_append_str(b, ") x WHERE x.op <> 'U' OR x.cols <> 0) z GROUP BY z.op, z.g;"
                              NOTIFY_IF_FOUND " RETURN NULL; END");
}

static int trunc_body(as_buf *b, const pg_table *t) {
  if (body_head(b) ||
      as_buf_printf(b, "INSERT INTO arraysync.changelog(tbl, op, origin, ts) VALUES (%s, 'T', "
                       ORIGIN_VAR ", " TS_VAR "); PERFORM pg_notify('arraysync_changes', ''); "
                       "RETURN NULL; END",
                    t->lit_table))
    return AS_ERR;
  return AS_OK;
}

/* CREATE OR REPLACE FUNCTION arraysync."<fname>_<suffix>"() with the body as a literal. */
static int function(as_buf *b, const pg_table *t, const char *suffix, const as_buf *body) {
  bool dbl_key = false;
  for (size_t j = 0; j < t->s->nkey; j++) {
    if (t->s->cols[t->s->key_idx[j]].type == AS_T_DOUBLE) dbl_key = true;
  }
  char *lit = pg_quote_literal(as_buf_cstr((as_buf *)body));
  if (!lit) return AS_ERR;
  /* a double key must be written with every digit, whatever the writer's session says */
  int rc = as_buf_printf(b,
                         "CREATE OR REPLACE FUNCTION arraysync.\"%s_%s\"() RETURNS trigger "
                         "LANGUAGE plpgsql%s AS %s; ",
                         t->fname, suffix,
                         pg_table_exact(t) ? EXACT_SETTINGS : dbl_key ? " SET extra_float_digits TO 1" : "", lit);
  free(lit);
  return rc;
}

int pg_triggers_drop_sql(const pg_table *t, as_buf *b) {
  for (const char *const *nm = trigger_names; *nm; nm++) {
    if (as_buf_printf(b, "DROP TRIGGER IF EXISTS %s ON %s; ", *nm, t->qname) != AS_OK)
      return AS_ERR;
  }
  return AS_OK;
}

static int functions_sql(const as_node *n, const pg_table *t, const int *attnum, as_buf *b) {
  as_buf body = AS_BUF_INIT;
  int rc = AS_ERR;
  if (pg_table_stmt_level(n, t)) {
    if (stmt_body(&body, t, 'I') || function(b, t, "ins", &body)) goto cleanup;
    as_buf_reset(&body);
    if (stmt_body(&body, t, 'D') || function(b, t, "del", &body)) goto cleanup;
    as_buf_reset(&body);
    if (update_body(&body, t, attnum) || function(b, t, "upd", &body)) goto cleanup;
  } else {
    if (row_body(&body, t, attnum) || function(b, t, "row", &body)) goto cleanup;
  }
  as_buf_reset(&body);
  if (trunc_body(&body, t) || function(b, t, "trunc", &body)) goto cleanup;
  rc = AS_OK;
cleanup:
  as_buf_free(&body);
  return rc;
}

int pg_triggers_sql(const as_node *n, const pg_table *t, const int *attnum, as_buf *b) {
  const char *q = t->qname;
  const char *f = t->fname;
  if (functions_sql(n, t, attnum, b) != AS_OK || pg_triggers_drop_sql(t, b) != AS_OK)
    return AS_ERR;
  if (pg_table_stmt_level(n, t)) {
    if (as_buf_printf(b,
                      "CREATE TRIGGER arraysync_ins AFTER INSERT ON %s REFERENCING NEW TABLE AS "
                      "arraysync_new FOR EACH STATEMENT WHEN (" NOT_LOCAL_ONLY ") EXECUTE "
                      "FUNCTION arraysync.\"%s_ins\"(); "
                      "CREATE TRIGGER arraysync_del AFTER DELETE ON %s REFERENCING OLD TABLE AS "
                      "arraysync_old FOR EACH STATEMENT WHEN (" NOT_LOCAL_ONLY ") EXECUTE "
                      "FUNCTION arraysync.\"%s_del\"(); "
                      "CREATE TRIGGER arraysync_upd AFTER UPDATE ON %s REFERENCING OLD TABLE AS "
                      "arraysync_old NEW TABLE AS arraysync_new FOR EACH STATEMENT WHEN ("
                      NOT_LOCAL_ONLY ") EXECUTE FUNCTION arraysync.\"%s_upd\"(); ",
                      q, f, q, f, q, f) != AS_OK)
      return AS_ERR;
  } else {
    if (as_buf_printf(b,
                      "CREATE TRIGGER arraysync_ins AFTER INSERT ON %s FOR EACH ROW WHEN ("
                      NOT_LOCAL_ONLY ") EXECUTE FUNCTION arraysync.\"%s_row\"(); "
                      "CREATE TRIGGER arraysync_del AFTER DELETE ON %s FOR EACH ROW WHEN ("
                      NOT_LOCAL_ONLY ") EXECUTE FUNCTION arraysync.\"%s_row\"(); ",
                      q, f, q, f) != AS_OK)
      return AS_ERR;
    /* updates: called only when a mapped column changed */
    if (as_buf_printf(b, "CREATE TRIGGER arraysync_upd AFTER UPDATE ON %s FOR EACH ROW WHEN (",
                      q) ||
        row_list(b, t, "OLD", false) || as_buf_append_str(b, " IS DISTINCT FROM ") ||
        row_list(b, t, "NEW", false) ||
        as_buf_printf(b, " AND " NOT_LOCAL_ONLY ") EXECUTE FUNCTION arraysync.\"%s_row\"(); ",
                      f))
      return AS_ERR;
  }
  if (as_buf_printf(b,
                    "CREATE TRIGGER arraysync_trunc AFTER TRUNCATE ON %s FOR EACH STATEMENT "
                    "WHEN (" NOT_LOCAL_ONLY ") EXECUTE FUNCTION arraysync.\"%s_trunc\"()",
                    q, f) != AS_OK)
    return AS_ERR;
  /* row level: one notification per statement from a statement trigger */
  if (!pg_table_stmt_level(n, t) &&
      as_buf_printf(b,
                    "; CREATE TRIGGER arraysync_notify AFTER INSERT OR UPDATE OR DELETE ON %s "
                    "FOR EACH STATEMENT WHEN (" NOT_LOCAL_ONLY ") EXECUTE FUNCTION "
                    "arraysync.arraysync_notify()",
                    q) != AS_OK)
    return AS_ERR;
  return AS_OK;
}
