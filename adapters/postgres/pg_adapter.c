/* pg_adapter.c — the PostgreSQL adapter: node life cycle, install/uninstall (bookkeeping
 * schema, mapped tables, capture triggers), shared libpq helpers. See README.md here. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <xxhash.h>

#include "as_ddl.h"
#include "as_log.h"
#include "pg_internal.h"
#include "pg_sql.h"

/* The node's options (config map below: one line per option). */
typedef struct pg_opts {
  char *dsn;
  char *schema;
  int capture_triggers; /* index into trigger_levels */
  bool copy;
} pg_opts;

static const char *const trigger_levels[] = {"statement", "row", NULL};

static const as_config_entry config_map[] = {
    AS_OPT_REQ(SECRET, pg_opts, dsn, "libpq connection string (conninfo or postgresql:// URI)",
               "\"host=127.0.0.1 port=5432 dbname=shop user=arraysync\""),
    AS_OPT(STRING, pg_opts, schema, "public", "schema holding the mapped tables", "shop"),
    AS_OPT(ENUM, pg_opts, capture_triggers, "statement",
           "insert/delete capture triggers: statement (transition tables) or row", NULL,
           .allowed = trigger_levels),
    AS_OPT(BOOL, pg_opts, copy, "on", "COPY fast path for runs of full-row inserts: on or off",
           "off"),
    AS_OPT_END};

/* ------------------------------------------------------------------ helpers */

char *pg_quote_ident(const char *s) {
  as_buf b = AS_BUF_INIT;
  if (as_buf_putc(&b, '"') != AS_OK) goto fail;
  for (const char *p = s; *p; p++) {
    if (*p == '"' && as_buf_putc(&b, '"') != AS_OK) goto fail;
    if (as_buf_putc(&b, (uint8_t)*p) != AS_OK) goto fail;
  }
  if (as_buf_putc(&b, '"') != AS_OK) goto fail;
  return as_buf_steal(&b);
fail:
  as_buf_free(&b);
  return NULL;
}

char *pg_quote_literal(const char *s) {
  as_buf b = AS_BUF_INIT;
  if (as_buf_putc(&b, '\'') != AS_OK) goto fail;
  for (const char *p = s; *p; p++) {
    if (*p == '\'' && as_buf_putc(&b, '\'') != AS_OK) goto fail;
    if (as_buf_putc(&b, (uint8_t)*p) != AS_OK) goto fail;
  }
  if (as_buf_putc(&b, '\'') != AS_OK) goto fail;
  return as_buf_steal(&b);
fail:
  as_buf_free(&b);
  return NULL;
}

bool pg_retryable(PGconn *c, const PGresult *res) {
  if (!c || PQstatus(c) == CONNECTION_BAD) return true;
  const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  if (!st) return res == NULL;
  if (strncmp(st, "08", 2) == 0) return true;          /* connection exception */
  static const char *const codes[] = {"40001", "40P01", "57P01", "57P02", "57P03", "53300",
                                      "55P03" /* lock_not_available */};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    if (strcmp(st, codes[i]) == 0) return true;
  }
  return false;
}

int pg_fail(PGconn *c, const PGresult *res, const char *what, as_error *err) {
  const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
  if (!msg) msg = c ? PQerrorMessage(c) : "no connection";
  size_t ml = strlen(msg);
  while (ml > 0 && (msg[ml - 1] == '\n' || msg[ml - 1] == ' ')) ml--;
  int code = pg_retryable(c, res) ? AS_RETRY : AS_ERR;
  as_error_set(err, AS_DOM_POSTGRES, code, "%s: %.*s%s%s (SQLSTATE %s)", what, (int)ml, msg,
               detail ? ": " : "", detail ? detail : "", st ? st : "none");
  return code;
}

int pg_exec(PGconn *c, const char *sql, const char *what, as_error *err) {
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  int rc = AS_OK;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) rc = pg_fail(c, r, what, err);
  PQclear(r);
  return rc;
}

int pg_query(PGconn *c, const char *sql, int nparams, const char *const *params,
             const char *what, PGresult **out, as_error *err) {
  PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    int rc = pg_fail(c, r, what, err);
    PQclear(r);
    if (out) *out = NULL;
    return rc;
  }
  if (out) {
    *out = r;
  } else {
    PQclear(r);
  }
  return AS_OK;
}

static void notice_to_log(void *arg, const char *message) {
  const char *comp = arg;
  size_t l = strlen(message);
  while (l > 0 && message[l - 1] == '\n') l--;
  AS_LOG(AS_LOG_DEBUG, comp, "server notice: %.*s", (int)l, message);
}

int pg_connect_dsn(const char *dsn, const char *what, PGconn **out, as_error *err) {
  *out = NULL;
  /* application_name (unless the dsn sets one) lets operators see which part is which */
  char app[64];
  snprintf(app, sizeof app, "arraysync %s", what);
  const char *const keys[] = {"dbname", "fallback_application_name", NULL};
  const char *const vals[] = {dsn, app, NULL};
  PGconn *c = PQconnectdbParams(keys, vals, 1);
  if (!c) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "%s: out of memory", what);
  if (PQstatus(c) != CONNECTION_OK) {
    /* The libpq message names host/port, never the password. */
    const char *m = PQerrorMessage(c);
    size_t ml = strlen(m);
    while (ml > 0 && m[ml - 1] == '\n') ml--;
    /* A bad conninfo (syntax) is permanent; anything else may be a server not up yet. */
    int code = strstr(m, "invalid connection option") || strstr(m, "missing \"=\"") ||
                       strstr(m, "invalid URI")
                   ? AS_EINVAL
                   : AS_RETRY;
    char *red = as_log_redact(dsn);
    as_error_set(err, AS_DOM_POSTGRES, code, "%s: cannot connect to %s: %.*s", what,
                 red ? red : "?", (int)ml, m);
    free(red);
    PQfinish(c);
    return code;
  }
  PQsetNoticeProcessor(c, notice_to_log, (void *)"postgres");
  int rc = pg_exec(c, PG_SQL_SESSION, what, err);
  if (rc != AS_OK) {
    PQfinish(c);
    return rc;
  }
  *out = c;
  return AS_OK;
}

pg_table *pg_table_for(as_node *n, const as_schema *s) {
  for (size_t i = 0; i < n->ntables; i++) {
    if (n->tables[i].s == s) return &n->tables[i];
  }
  for (size_t i = 0; i < n->ntables; i++) { /* same mapping loaded twice (reload) */
    if (strcmp(n->tables[i].s->name, s->name) == 0) return &n->tables[i];
  }
  return NULL;
}

pg_table *pg_table_by_name(as_node *n, const char *table) {
  for (size_t i = 0; i < n->ntables; i++) {
    if (strcmp(n->tables[i].s->table, table) == 0) return &n->tables[i];
  }
  return NULL;
}

/* ------------------------------------------------------------------ node */

static void table_free(pg_table *t) {
  if (!t) return;
  free(t->qname);
  free(t->lit_table);
  if (t->qcols) {
    for (size_t i = 0; i < t->s->ncols; i++) free(t->qcols[i]);
  }
  free(t->qcols);
  free(t->qstage);
  free(t->conflict);
  free(t->fname);
}

static void node_exit(as_node *n) {
  if (!n) return;
  if (n->conn) PQfinish(n->conn);
  for (size_t i = 0; i < n->ntables; i++) table_free(&n->tables[i]);
  free(n->tables);
  free(n->name);
  free(n->dsn);
  free(n->schema);
  free(n->qschema);
  free(n->txn_origin);
  free(n);
}

static int table_init(as_node *n, pg_table *t, const as_schema *s, size_t index, as_error *err) {
  int rc = AS_ERR;
  as_buf b = AS_BUF_INIT;
  char *qt = NULL;
  t->s = s;
  t->optimistic_skip = 0;
  if (!s->table || !*s->table) {
    return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "mapping %s: no table name", s->name);
  }
  if (s->nkey == 0) {
    return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL, "mapping %s: no key column", s->name);
  }
  qt = pg_quote_ident(s->table);
  if (!qt || as_buf_printf(&b, "%s.%s", n->qschema, qt) != AS_OK) goto nomem;
  t->qname = as_buf_steal(&b);
  t->lit_table = pg_quote_literal(s->table);
  t->qcols = calloc(s->ncols ? s->ncols : 1, sizeof *t->qcols);
  if (!t->lit_table || !t->qcols) goto nomem;
  for (size_t i = 0; i < s->ncols; i++) {
    if (!(t->qcols[i] = pg_quote_ident(s->cols[i].name))) goto nomem;
  }
  if (as_buf_printf(&b, "\"arraysync_stage_%zu\"", index) != AS_OK) goto nomem;
  t->qstage = as_buf_steal(&b);
  if (as_buf_putc(&b, '(') != AS_OK) goto nomem;
  for (size_t k = 0; k < s->nkey; k++) {
    if (as_buf_printf(&b, "%s%s", k ? ", " : "", t->qcols[s->key_idx[k]]) != AS_OK) goto nomem;
  }
  if (as_buf_putc(&b, ')') != AS_OK) goto nomem;
  t->conflict = as_buf_steal(&b);
  /* Function names: readable prefix of the table name + hash of schema.table (names are
   * limited to 63 bytes and must not collide). */
  char prefix[21];
  size_t pl = 0;
  for (const char *p = s->table; *p && pl < 20; p++) {
    char c = (char)tolower((unsigned char)*p);
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') prefix[pl++] = c;
  }
  prefix[pl] = '\0';
  if (as_buf_append_str(&b, n->schema) != AS_OK || as_buf_putc(&b, '.') != AS_OK ||
      as_buf_append_str(&b, s->table) != AS_OK)
    goto nomem;
  uint64_t h = XXH3_64bits(b.data, b.len);
  as_buf_reset(&b);
  if (as_buf_printf(&b, "arraysync_%s_%016llx", prefix, (unsigned long long)h) != AS_OK)
    goto nomem;
  t->fname = as_buf_steal(&b);
  rc = AS_OK;
  goto cleanup;
nomem:
  rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
cleanup:
  free(qt);
  as_buf_free(&b);
  return rc;
}

static int node_init(const as_node_config *cfg, const as_schema *const *schemas, size_t nschemas,
                     as_node **out, as_error *err) {
  int rc = AS_ERR;
  *out = NULL;
  as_node *n = calloc(1, sizeof *n);
  if (!n) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  pg_opts o = {0};
  if ((rc = as_node_options_parse(cfg, config_map, &o, err)) != AS_OK) goto cleanup;
  const char *dsn = o.dsn, *schema = o.schema;
  if (!*schema || strcmp(schema, "arraysync") == 0) {
    rc = as_node_option_error(err, cfg, "schema", "\"%s\" cannot hold mapped tables (allowed: a "
                              "non-empty name other than arraysync)", schema);
    goto cleanup;
  }
  n->stmt_level = o.capture_triggers == 0;
  n->fast_copy = o.copy;
  n->name = strdup(cfg->name ? cfg->name : "postgres");
  n->dsn = strdup(dsn);
  n->schema = strdup(schema);
  n->qschema = pg_quote_ident(schema);
  if (!n->name || !n->dsn || !n->schema || !n->qschema) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    goto cleanup;
  }
  snprintf(n->comp, sizeof n->comp, "postgres:%s", n->name);
  n->tables = calloc(nschemas ? nschemas : 1, sizeof *n->tables);
  if (!n->tables) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    goto cleanup;
  }
  for (size_t i = 0; i < nschemas; i++) {
    for (size_t j = 0; j < i; j++) {
      if (strcmp(schemas[i]->table, schemas[j]->table) == 0) {
        rc = as_error_set(err, AS_DOM_CONFIG, AS_EINVAL,
                          "node %s: mappings %s and %s both use table \"%s\"", n->name,
                          schemas[j]->name, schemas[i]->name, schemas[i]->table);
        goto cleanup;
      }
    }
    n->ntables++;
    if ((rc = table_init(n, &n->tables[i], schemas[i], i, err)) != AS_OK) goto cleanup;
  }
  *out = n;
  n = NULL;
  rc = AS_OK;
cleanup:
  as_cfgmap_free(config_map, &o);
  node_exit(n);
  return rc;
}

int pg_node_connect(as_node *n, as_error *err) {
  if (n->conn) {
    PQfinish(n->conn);
    n->conn = NULL;
  }
  n->in_txn = false;
  free(n->txn_origin);
  n->txn_origin = NULL;
  pg_sink_reset_session(n);
  char what[128];
  snprintf(what, sizeof what, "sink:%s", n->comp);
  int rc = pg_connect_dsn(n->dsn, what, &n->conn, err);
  if (rc == AS_OK) {
    char *red = as_log_redact(n->dsn);
    AS_LOG(AS_LOG_INFO, n->comp, "connected to %s", red ? red : "?");
    free(red);
  }
  return rc;
}

/* ------------------------------------------------------------------ install */

/* Is an existing column of udt `udt` usable for a mapped column of type t? */
static bool type_compatible(as_type t, const char *udt) {
  static const struct {
    as_type t;
    const char *udts;
  } ok[] = {
      {AS_T_BOOL, " bool "},
      {AS_T_INT64, " int8 int4 int2 "},
      {AS_T_DOUBLE, " float8 float4 "},
      {AS_T_DECIMAL, " numeric "},
      {AS_T_TEXT, " text varchar bpchar citext name "},
      {AS_T_BYTES, " bytea "},
      {AS_T_UUID, " uuid "},
      {AS_T_OBJECTID, " text varchar bpchar "},
      {AS_T_TIMESTAMP, " timestamptz timestamp "},
      {AS_T_DATE, " date "},
      {AS_T_JSON, " jsonb json "},
  };
  char needle[80];
  snprintf(needle, sizeof needle, " %s ", udt);
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    if (ok[i].t == t) return strstr(ok[i].udts, needle) != NULL;
  }
  return false;
}

static int create_table(as_node *n, pg_table *t, as_error *err) {
  as_buf b = AS_BUF_INIT;
  int rc = as_ddl_postgres(t->s, n->schema, &b, err);
  if (rc == AS_OK) rc = pg_exec(n->conn, as_buf_cstr(&b), "create table", err);
  if (rc == AS_OK) AS_LOG(AS_LOG_INFO, n->comp, "created table %s", t->qname);
  as_buf_free(&b);
  return rc;
}

static int check_table(as_node *n, pg_table *t, as_error *err) {
  const as_schema *s = t->s;
  PGresult *r = NULL;
  char *keys = NULL;
  int rc;
  const char *p[2] = {n->schema, s->table};
  if ((rc = pg_query(n->conn, PG_SQL_COLUMNS, 2, p, "read table columns", &r, err)) != AS_OK)
    goto cleanup;
  for (size_t i = 0; i < s->ncols; i++) {
    const as_column *c = &s->cols[i];
    int row = -1;
    for (int j = 0; j < PQntuples(r); j++) {
      if (strcmp(PQgetvalue(r, j, 0), c->name) == 0) row = j;
    }
    if (row < 0) {
      rc = as_error_set(err, AS_DOM_CONFIG, AS_EINVAL,
                        "table \"%s\": column \"%s\" is missing, mapping %s (%s:%d:%d) wants %s",
                        s->table, c->name, s->name, c->mark.file ? c->mark.file : s->file,
                        c->mark.line, c->mark.col, as_schema_pg_type(c->type));
      goto cleanup;
    }
    if (!type_compatible(c->type, PQgetvalue(r, row, 2))) {
      rc = as_error_set(err, AS_DOM_CONFIG, AS_EINVAL,
                        "table \"%s\": column \"%s\" is %s, mapping %s (%s:%d:%d) wants %s",
                        s->table, c->name, PQgetvalue(r, row, 1), s->name,
                        c->mark.file ? c->mark.file : s->file, c->mark.line, c->mark.col,
                        as_schema_pg_type(c->type));
      goto cleanup;
    }
  }
  PQclear(r);
  r = NULL;
  json_t *arr = json_array();
  for (size_t k = 0; arr && k < s->nkey; k++) {
    json_array_append_new(arr, json_string(s->cols[s->key_idx[k]].name));
  }
  keys = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
  json_decref(arr);
  if (!keys) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    goto cleanup;
  }
  const char *p2[2] = {t->qname, keys};
  if ((rc = pg_query(n->conn, PG_SQL_HAS_UNIQUE_KEY, 2, p2, "read table indexes", &r, err)) !=
      AS_OK)
    goto cleanup;
  if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
    rc = as_error_set(err, AS_DOM_CONFIG, AS_EINVAL,
                      "table \"%s\": no primary key or unique index on %s, mapping %s (%s:%d:%d) "
                      "needs one on its key",
                      s->table, t->conflict, s->name, s->file ? s->file : "?", s->mark.line,
                      s->mark.col);
    goto cleanup;
  }
  rc = AS_OK;
cleanup:
  PQclear(r);
  free(keys);
  return rc;
}

/* jsonb_build_object('c', R."c"::text, ...) [|| jsonb_build_object(...)] over the key columns
 * (keys_only) or all mapped columns; at most 50 pairs per call (100-argument limit). */
static int build_obj(as_buf *b, const pg_table *t, const char *ref, bool keys_only) {
  const as_schema *s = t->s;
  size_t n = keys_only ? s->nkey : s->ncols;
  if (n == 0) return as_buf_append_str(b, "'{}'::jsonb");
  for (size_t j = 0; j < n; j++) {
    size_t i = keys_only ? s->key_idx[j] : j;
    if (j % 50 == 0 && as_buf_printf(b, "%sjsonb_build_object(", j ? ") || " : "") != AS_OK)
      return AS_ERR;
    char *lit = pg_quote_literal(s->cols[i].name);
    if (!lit) return AS_ERR;
    int rc = as_buf_printf(b, "%s%s, %s.%s::text", j % 50 ? ", " : "", lit, ref, t->qcols[i]);
    free(lit);
    if (rc != AS_OK) return AS_ERR;
  }
  return as_buf_putc(b, ')');
}

static int row_list(as_buf *b, const pg_table *t, const char *ref, bool keys_only) {
  const as_schema *s = t->s;
  size_t n = keys_only ? s->nkey : s->ncols;
  if (as_buf_append_str(b, "ROW(") != AS_OK) return AS_ERR;
  for (size_t j = 0; j < n; j++) {
    size_t i = keys_only ? s->key_idx[j] : j;
    if (as_buf_printf(b, "%s%s.%s", j ? ", " : "", ref, t->qcols[i]) != AS_OK) return AS_ERR;
  }
  return as_buf_putc(b, ')');
}

/* INSERT INTO arraysync.changelog(...) VALUES/SELECT for one op reading row `ref`. */
static int changelog_insert(as_buf *b, const pg_table *t, char op, const char *ref,
                            const char *from) {
  const char *oldref = op == 'I' ? NULL : ref;
  const char *newref = op == 'D' ? NULL : ref;
  if (as_buf_printf(b, "INSERT INTO arraysync.changelog(tbl, op, key, old, new, origin, ts) "
                       "%s %s, '%c', ",
                    from ? "SELECT" : "VALUES (", t->lit_table, op) != AS_OK)
    return AS_ERR;
  if (build_obj(b, t, ref, true) != AS_OK || as_buf_append_str(b, ", ") != AS_OK) return AS_ERR;
  if (oldref ? build_obj(b, t, oldref, false) : as_buf_append_str(b, "NULL")) return AS_ERR;
  if (as_buf_append_str(b, ", ") != AS_OK) return AS_ERR;
  if (newref ? build_obj(b, t, newref, false) : as_buf_append_str(b, "NULL")) return AS_ERR;
  if (as_buf_printf(b, ", " PG_SQL_ORIGIN_EXPR ", " PG_SQL_TS_EXPR "%s%s; ", from ? " FROM " : ")",
                    from ? from : "") != AS_OK)
    return AS_ERR;
  return AS_OK;
}

static int update_changelog(as_buf *b, const pg_table *t) {
  /* A key change is a delete of the old key and an insert of the new row. */
  if (as_buf_append_str(b, "IF ") != AS_OK || row_list(b, t, "OLD", true) != AS_OK ||
      as_buf_append_str(b, " IS DISTINCT FROM ") != AS_OK || row_list(b, t, "NEW", true) != AS_OK ||
      as_buf_append_str(b, " THEN ") != AS_OK || changelog_insert(b, t, 'D', "OLD", NULL) ||
      changelog_insert(b, t, 'I', "NEW", NULL) || as_buf_append_str(b, "ELSE ") != AS_OK)
    return AS_ERR;
  if (as_buf_printf(b, "INSERT INTO arraysync.changelog(tbl, op, key, old, new, origin, ts) "
                       "VALUES (%s, 'U', ",
                    t->lit_table) != AS_OK ||
      build_obj(b, t, "NEW", true) || as_buf_append_str(b, ", ") ||
      build_obj(b, t, "OLD", false) || as_buf_append_str(b, ", ") ||
      build_obj(b, t, "NEW", false) ||
      as_buf_append_str(b, ", " PG_SQL_ORIGIN_EXPR ", " PG_SQL_TS_EXPR "); END IF; "))
    return AS_ERR;
  return AS_OK;
}

static int install_triggers(as_node *n, pg_table *t, as_error *err) {
  as_buf b = AS_BUF_INIT;
  int rc = AS_ERR;
  const char *q = t->qname;
  const char *f = t->fname;
  for (size_t i = 0; i < t->s->ncols; i++) {
    if (strstr(t->s->cols[i].name, "$arraysync$")) {
      return as_error_set(err, AS_DOM_CONFIG, AS_EINVAL,
                          "table \"%s\": column name \"%s\" is not supported", t->s->table,
                          t->s->cols[i].name);
    }
  }
  /* Row-level function: every op (insert/delete in row mode; update always). */
  if (as_buf_printf(&b,
                    "CREATE OR REPLACE FUNCTION arraysync.\"%s_row\"() RETURNS trigger "
                    "LANGUAGE plpgsql" PG_SQL_FUNC_SETTINGS " AS $arraysync$ BEGIN "
                    "IF TG_OP = 'INSERT' THEN ",
                    f) != AS_OK ||
      changelog_insert(&b, t, 'I', "NEW", NULL) ||
      as_buf_append_str(&b, "ELSIF TG_OP = 'DELETE' THEN ") ||
      changelog_insert(&b, t, 'D', "OLD", NULL) || as_buf_append_str(&b, "ELSE ") ||
      update_changelog(&b, t) || as_buf_append_str(&b, "END IF; RETURN NULL; END $arraysync$; "))
    goto nomem;
  /* Statement-level functions over transition tables. */
  if (as_buf_printf(&b,
                    "CREATE OR REPLACE FUNCTION arraysync.\"%s_ins\"() RETURNS trigger "
                    "LANGUAGE plpgsql" PG_SQL_FUNC_SETTINGS " AS $arraysync$ BEGIN ",
                    f) != AS_OK ||
      changelog_insert(&b, t, 'I', "n", "arraysync_new n") ||
      as_buf_append_str(&b, "RETURN NULL; END $arraysync$; "))
    goto nomem;
  if (as_buf_printf(&b,
                    "CREATE OR REPLACE FUNCTION arraysync.\"%s_del\"() RETURNS trigger "
                    "LANGUAGE plpgsql" PG_SQL_FUNC_SETTINGS " AS $arraysync$ BEGIN ",
                    f) != AS_OK ||
      changelog_insert(&b, t, 'D', "o", "arraysync_old o") ||
      as_buf_append_str(&b, "RETURN NULL; END $arraysync$; "))
    goto nomem;
  /* Triggers (recreated: the capture level may have changed). */
  if (as_buf_printf(&b,
                    "DROP TRIGGER IF EXISTS arraysync_ins ON %s; "
                    "DROP TRIGGER IF EXISTS arraysync_upd ON %s; "
                    "DROP TRIGGER IF EXISTS arraysync_del ON %s; "
                    "DROP TRIGGER IF EXISTS arraysync_notify ON %s; ",
                    q, q, q, q) != AS_OK)
    goto nomem;
  if (n->stmt_level) {
    if (as_buf_printf(&b,
                      "CREATE TRIGGER arraysync_ins AFTER INSERT ON %s REFERENCING NEW TABLE AS "
                      "arraysync_new FOR EACH STATEMENT EXECUTE FUNCTION arraysync.\"%s_ins\"(); "
                      "CREATE TRIGGER arraysync_del AFTER DELETE ON %s REFERENCING OLD TABLE AS "
                      "arraysync_old FOR EACH STATEMENT EXECUTE FUNCTION arraysync.\"%s_del\"(); ",
                      q, f, q, f) != AS_OK)
      goto nomem;
  } else {
    if (as_buf_printf(&b,
                      "CREATE TRIGGER arraysync_ins AFTER INSERT ON %s FOR EACH ROW "
                      "EXECUTE FUNCTION arraysync.\"%s_row\"(); "
                      "CREATE TRIGGER arraysync_del AFTER DELETE ON %s FOR EACH ROW "
                      "EXECUTE FUNCTION arraysync.\"%s_row\"(); ",
                      q, f, q, f) != AS_OK)
      goto nomem;
  }
  /* Updates: row level, fired only when a mapped column changed. */
  if (as_buf_printf(&b, "CREATE TRIGGER arraysync_upd AFTER UPDATE ON %s FOR EACH ROW WHEN (", q) ||
      row_list(&b, t, "OLD", false) || as_buf_append_str(&b, " IS DISTINCT FROM ") ||
      row_list(&b, t, "NEW", false) ||
      as_buf_printf(&b, ") EXECUTE FUNCTION arraysync.\"%s_row\"(); ", f) ||
      as_buf_printf(&b,
                    "CREATE TRIGGER arraysync_notify AFTER INSERT OR UPDATE OR DELETE ON %s "
                    "FOR EACH STATEMENT EXECUTE FUNCTION arraysync.arraysync_notify()",
                    q))
    goto nomem;
  rc = pg_exec(n->conn, as_buf_cstr(&b), "install capture triggers", err);
  if (rc != AS_OK) as_error_prefix(err, "table \"%s\"", t->s->table);
  goto cleanup;
nomem:
  rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
cleanup:
  as_buf_free(&b);
  return rc;
}

static const char *const upgrades[PG_SCHEMA_VERSION] = {PG_SQL_UPGRADE_0_TO_1};

static int node_install(as_node *n, as_error *err) {
  int rc;
  PGresult *r = NULL;
  if (!n->conn && (rc = pg_node_connect(n, err)) != AS_OK) return rc;
  if (n->in_txn) {
    return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "install: a sink transaction is open");
  }
  if ((rc = pg_exec(n->conn, PG_SQL_BEGIN, "install", err)) != AS_OK) return rc;
  if ((rc = pg_exec(n->conn, PG_SQL_LOCK, "install lock", err)) != AS_OK) goto cleanup;
  if ((rc = pg_exec(n->conn, PG_SQL_BOOTSTRAP, "install schema", err)) != AS_OK) goto cleanup;
  if ((rc = pg_query(n->conn, PG_SQL_GET_VERSION, 0, NULL, "install version", &r, err)) != AS_OK)
    goto cleanup;
  int ver = atoi(PQgetvalue(r, 0, 0));
  PQclear(r);
  r = NULL;
  if (ver > PG_SCHEMA_VERSION) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_EINVAL,
                      "schema arraysync has version %d, this arraysync knows up to %d", ver,
                      PG_SCHEMA_VERSION);
    goto cleanup;
  }
  for (int v = ver; v < PG_SCHEMA_VERSION; v++) {
    char vs[16];
    snprintf(vs, sizeof vs, "%d", v + 1);
    const char *p[1] = {vs};
    if ((rc = pg_exec(n->conn, upgrades[v], "install upgrade", err)) != AS_OK) goto cleanup;
    if ((rc = pg_query(n->conn, PG_SQL_SET_VERSION, 1, p, "install version", NULL, err)) != AS_OK)
      goto cleanup;
    AS_LOG(AS_LOG_INFO, n->comp, "bookkeeping schema arraysync upgraded to version %d", v + 1);
  }
  for (size_t i = 0; i < n->ntables; i++) {
    pg_table *t = &n->tables[i];
    const char *p[1] = {t->qname};
    if ((rc = pg_query(n->conn, PG_SQL_TABLE_EXISTS, 1, p, "install", &r, err)) != AS_OK)
      goto cleanup;
    bool exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    r = NULL;
    rc = exists ? check_table(n, t, err) : create_table(n, t, err);
    if (rc != AS_OK) goto cleanup;
    if ((rc = install_triggers(n, t, err)) != AS_OK) goto cleanup;
  }
  rc = pg_exec(n->conn, PG_SQL_COMMIT, "install commit", err);
  return rc;
cleanup:
  PQclear(r);
  {
    PGresult *rb = PQexec(n->conn, PG_SQL_ROLLBACK);
    PQclear(rb);
  }
  return rc;
}

static int node_uninstall(as_node *n, as_error *err) {
  int rc;
  PGresult *r = NULL;
  as_buf b = AS_BUF_INIT;
  if (!n->conn && (rc = pg_node_connect(n, err)) != AS_OK) return rc;
  if ((rc = pg_exec(n->conn, PG_SQL_BEGIN, "uninstall", err)) != AS_OK) return rc;
  if ((rc = pg_exec(n->conn, PG_SQL_LOCK, "uninstall lock", err)) != AS_OK) goto cleanup;
  for (size_t i = 0; i < n->ntables; i++) {
    pg_table *t = &n->tables[i];
    const char *p[1] = {t->qname};
    if ((rc = pg_query(n->conn, PG_SQL_TABLE_EXISTS, 1, p, "uninstall", &r, err)) != AS_OK)
      goto cleanup;
    bool exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    r = NULL;
    if (!exists) continue;
    as_buf_reset(&b);
    if (as_buf_printf(&b,
                      "DROP TRIGGER IF EXISTS arraysync_ins ON %s; "
                      "DROP TRIGGER IF EXISTS arraysync_upd ON %s; "
                      "DROP TRIGGER IF EXISTS arraysync_del ON %s; "
                      "DROP TRIGGER IF EXISTS arraysync_notify ON %s",
                      t->qname, t->qname, t->qname, t->qname) != AS_OK) {
      rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
      goto cleanup;
    }
    if ((rc = pg_exec(n->conn, as_buf_cstr(&b), "uninstall triggers", err)) != AS_OK) goto cleanup;
  }
  /* Trigger functions live in schema arraysync: CASCADE also removes triggers of tables that
   * are no longer mapped. */
  if ((rc = pg_exec(n->conn, PG_SQL_UNINSTALL, "uninstall schema", err)) != AS_OK) goto cleanup;
  rc = pg_exec(n->conn, PG_SQL_COMMIT, "uninstall commit", err);
  as_buf_free(&b);
  return rc;
cleanup:
  PQclear(r);
  as_buf_free(&b);
  {
    PGresult *rb = PQexec(n->conn, PG_SQL_ROLLBACK);
    PQclear(rb);
  }
  return rc;
}

const as_adapter as_adapter_postgres = {
    .abi = AS_ADAPTER_ABI,
    .kind = "postgres",
    .caps = AS_CAP_SOURCE | AS_CAP_SINK | AS_CAP_TXN | AS_CAP_SNAPSHOT,
    .config_map = config_map,
    .init = node_init,
    .connect = pg_node_connect,
    .install = node_install,
    .uninstall = node_uninstall,
    .exit = node_exit,
    .open_stream = pg_open_stream,
    .poll = pg_poll,
    .ack = pg_ack,
    .stream_position = pg_stream_position,
    .close_stream = pg_close_stream,
    .snapshot_open = pg_snapshot_open,
    .snapshot_next = pg_snapshot_next,
    .snapshot_estimate = pg_snapshot_estimate,
    .snapshot_close = pg_snapshot_close,
    .begin = pg_begin,
    .apply = pg_apply,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .checkpoint_load = pg_checkpoint_load,
    .read_row = pg_read_row,
    .decode_raw = as_adapter_decode_row_json,
    .describe = pg_describe,
    .check_live = pg_check_live,
    .versions = pg_versions,
};
