/* pg_adapter.c — the PostgreSQL adapter: node life cycle and options, the capture decision,
 * connections and error classification, quoting, names of slots and publications. See
 * README.md here. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "as_ddl.h"
#include "as_log.h"
#include "pg_internal.h"
#include "pg_verify.h"
#include "pg_sql.h"

/* The node's options (config map below: one line per option). */
typedef struct pg_opts {
  char *dsn;
  char *schema;
  int capture;          /* index into capture_modes */
  int capture_triggers; /* index into trigger_levels */
  bool copy;
  int on_history_lost;  /* index into history_lost */
  int64_t purge_interval; /* ms */
  bool prepare;
} pg_opts;

static const char *const capture_modes[] = {"auto", "triggers", "logical", NULL};
static const char *const trigger_levels[] = {"statement", "row", NULL};
static const char *const history_lost[] = {"fail", "resnapshot", NULL};

static const as_config_entry config_map[] = {
    AS_OPT_REQ(SECRET, pg_opts, dsn, "libpq connection string (conninfo or postgresql:// URI)",
               "\"host=127.0.0.1 port=5432 dbname=shop user=arraysync\""),
    AS_OPT(STRING, pg_opts, schema, "public", "schema holding the mapped tables", "shop"),
    AS_OPT(ENUM, pg_opts, capture, "auto",
           "change capture: logical (logical decoding, pgoutput), triggers, or auto (logical "
           "where wal_level = logical and the role may replicate, else triggers)",
           "triggers", .allowed = capture_modes),
    AS_OPT(ENUM, pg_opts, capture_triggers, "statement",
           "trigger capture: statement (transition tables, one changelog row per 1000 keys) or row "
           "level triggers", NULL,
           .allowed = trigger_levels),
    AS_OPT(BOOL, pg_opts, copy, "on", "COPY fast path for runs of full-row inserts: on or off",
           "off"),
    AS_OPT(ENUM, pg_opts, on_history_lost, "fail",
           "a stream that cannot resume (slot dropped or invalidated, capture mode changed): "
           "fail, or resnapshot (copy the mappings again)",
           "resnapshot", .allowed = history_lost),
    AS_OPT(INT, pg_opts, purge_interval, "100",
           "trigger capture: milliseconds between a stream's writes of its acknowledged "
           "position, each of which purges the changelog rows every consumer has (0: after "
           "every batch); a waiting stream writes a pending one when the interval is up",
           "0", .min = 0, .max = 60000),
    AS_OPT(BOOL, pg_opts, prepare, "on",
           "the sink's upserts, updates and deletes as statements prepared once per connection "
           "and statement text (at most 128; a text unused for 1,024 statements gives its place "
           "to a new one): on, or off to send them unnamed (a proxy that passes no prepared "
           "statements through)", "off"),
    AS_OPT_END};

/* ------------------------------------------------------------------ quoting */

char *pg_quote_ident(const char *s) {
  as_buf b = AS_BUF_INIT;
  if (as_sql_quote_ident(s, &b) != AS_OK) {
    as_buf_free(&b);
    return NULL;
  }
  return as_buf_steal(&b);
}

char *pg_quote_literal(const char *s) {
  as_buf b = AS_BUF_INIT;
  bool esc = strchr(s, '\\') != NULL;
  if (as_buf_append_str(&b, esc ? "E'" : "'") != AS_OK) goto fail;
  for (const char *p = s; *p; p++) {
    if ((*p == '\'' || (esc && *p == '\\')) && as_buf_putc(&b, (uint8_t)*p) != AS_OK) goto fail;
    if (as_buf_putc(&b, (uint8_t)*p) != AS_OK) goto fail;
  }
  if (as_buf_putc(&b, '\'') != AS_OK) goto fail;
  return as_buf_steal(&b);
fail:
  as_buf_free(&b);
  return NULL;
}

/* ------------------------------------------------------------------ errors */

bool pg_retryable(PGconn *c, const PGresult *res) {
  if (!c || PQstatus(c) == CONNECTION_BAD) return true;
  const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  if (!st) return res == NULL;
  if (strncmp(st, "08", 2) == 0) return true;          /* connection exception */
  static const char *const codes[] = {"40001", "40P01", "57P01", "57P02", "57P03", "53300",
                                      "55P03" /* lock_not_available */,
                                      "57014" /* statement_timeout, or canceled on stop */};
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

static int result_or_fail(PGconn *c, PGresult *r, const char *what, PGresult **out,
                          as_error *err) {
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

int pg_query(PGconn *c, const char *sql, int nparams, const char *const *params,
             const char *what, PGresult **out, as_error *err) {
  return result_or_fail(c, PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0), what,
                        out, err);
}

int pg_query_simple(PGconn *c, const char *sql, const char *what, PGresult **out,
                    as_error *err) {
  return result_or_fail(c, PQexec(c, sql), what, out, err);
}

void pg_rollback_quiet(PGconn *c) {
  if (!c || PQstatus(c) != CONNECTION_OK) return;
  PGresult *r = PQexec(c, PG_SQL_ROLLBACK);
  PQclear(r);
}

/* ------------------------------------------------------------------ connections */

static void notice_to_log(void *arg, const char *message) {
  const char *comp = arg;
  size_t l = strlen(message);
  while (l > 0 && message[l - 1] == '\n') l--;
  AS_LOG(AS_LOG_DEBUG, comp, "server notice: %.*s", (int)l, message);
}

/* A connection failure nobody can fix by waiting: the conninfo itself, authentication, an
 * unknown database or role, a missing privilege. libpq gives no SQLSTATE for a failed
 * connection, so this reads libpq's and the server's (English) messages; anything not
 * recognised is treated as transient. */
/* A connection string for messages: only the keys that are never secret (host, port, dbname,
 * user, ...), parsed by libpq itself, so every spelling (spaces around '=', quotes, URIs with
 * a password or ?password=) is covered. One that does not parse is not shown at all (libpq's
 * own message names the bad key, never a value). Caller frees; NULL when out of memory. */
char *pg_dsn_describe(const char *dsn) {
  static const char *const shown[] = {"host", "hostaddr", "port", "dbname", "user",
                                      "sslmode", "application_name", "target_session_attrs", NULL};
  char *errmsg = NULL;
  PQconninfoOption *opts = PQconninfoParse(dsn ? dsn : "", &errmsg);
  PQfreemem(errmsg);
  if (!opts) return strdup("(a connection string that does not parse)");
  as_buf b = AS_BUF_INIT;
  int rc = AS_OK;
  for (PQconninfoOption *o = opts; o->keyword && rc == AS_OK; o++) {
    if (!o->val || !o->val[0]) continue;
    bool show = false;
    for (size_t i = 0; shown[i] && !show; i++) show = strcmp(o->keyword, shown[i]) == 0;
    if (!show) continue;
    rc = as_buf_printf(&b, "%s%s=%s", b.len ? " " : "", o->keyword, o->val);
  }
  PQconninfoFree(opts);
  char *out = rc == AS_OK ? strdup(b.len ? as_buf_cstr(&b) : "(defaults)") : NULL;
  as_buf_free(&b);
  return out;
}

static bool connect_permanent(PGconn *c, const char *m) {
  static const char *const pats[] = {
      "invalid connection option", "missing \"=\"", "invalid URI", "invalid sslmode value",
      "invalid gssencmode value", "invalid channel_binding value",
      "invalid target_session_attrs value", "invalid integer value", "invalid port number",
      "unterminated quoted string", "password authentication failed",
      "authentication failed for user", "no password supplied", "pg_hba.conf rejects",
      "no pg_hba.conf entry", "does not exist", "is not permitted to log in",
      "permission denied for database", "must be superuser or replication role",
      "must be superuser or have", "SSL is not enabled on the server",
      "server does not support SSL", "certificate", "unsupported frontend protocol"};
  if (PQconnectionNeedsPassword(c)) return true;
  for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++) {
    if (strstr(m, pats[i])) return true;
  }
  return false;
}

int pg_connect_dsn(const char *dsn, const char *what, bool replication, PGconn **out,
                   as_error *err) {
  *out = NULL;
  /* application_name (unless the dsn sets one) lets operators see which part is which */
  char app[64];
  snprintf(app, sizeof app, "arraysync %s", what);
  const char *const keys[] = {"dbname", "fallback_application_name",
                              replication ? "replication" : NULL, NULL};
  const char *const vals[] = {dsn, app, replication ? "database" : NULL, NULL};
  PGconn *c = PQconnectdbParams(keys, vals, 1);
  if (!c) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "%s: out of memory", what);
  if (PQstatus(c) != CONNECTION_OK) {
    /* The libpq message names host/port, never the password. */
    const char *m = PQerrorMessage(c);
    size_t ml = strlen(m);
    while (ml > 0 && (m[ml - 1] == '\n' || m[ml - 1] == ' ')) ml--;
    int code = connect_permanent(c, m) ? AS_EINVAL : AS_RETRY;
    char *red = pg_dsn_describe(dsn);
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

const char *pg_cast_type(as_type t) {
  return t == AS_T_TIMESTAMP ? "timestamptz" : as_schema_pg_type(t);
}

pg_table *pg_table_by_name(as_node *n, const char *table) {
  for (size_t i = 0; i < n->ntables; i++) {
    if (strcmp(n->tables[i].s->table, table) == 0 || strcmp(n->tables[i].qname, table) == 0)
      return &n->tables[i];
  }
  return NULL;
}

bool pg_name_in_schema(const as_node *n, const char *name) {
  size_t ls = strlen(n->qschema);
  /* a name the triggers wrote before they qualified it counts as this schema's */
  return name[0] != '"' || (strncmp(name, n->qschema, ls) == 0 && name[ls] == '.');
}

/* ------------------------------------------------------------------ names */

/* Lower-case letters, digits and '_' of s, at most max bytes. */
static void name_part(const char *s, size_t max, char *out) {
  size_t l = 0;
  for (const char *p = s; *p && l < max; p++) {
    char c = (char)tolower((unsigned char)*p);
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') out[l++] = c;
  }
  out[l] = '\0';
}

static uint64_t hash3(const char *a, const char *b, const char *c) {
  XXH3_state_t *st = XXH3_createState();
  if (!st) return 0;
  XXH3_64bits_reset(st);
  const char *parts[3] = {a, b, c};
  for (int i = 0; i < 3; i++) {
    const char *p = parts[i] ? parts[i] : "";
    XXH3_64bits_update(st, p, strlen(p) + 1); /* the NUL separates the parts */
  }
  uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return h;
}

/* "as_<node, 12>_<hash of database, schema, node: 10 hex>_" (26 bytes at most). */
static char *slot_prefix(const as_node *n, const char *db) {
  char part[13];
  name_part(n->name, 12, part);
  char buf[64];
  snprintf(buf, sizeof buf, "as_%s_%010llx_", part,
           (unsigned long long)(hash3(db, n->schema, n->name) & 0xffffffffffULL));
  return strdup(buf);
}

char *pg_slot_name(const as_node *n, const char *db, const char *consumer) {
  char *pre = slot_prefix(n, db);
  if (!pre) return NULL;
  char part[21];
  name_part(consumer, 20, part);
  char buf[96];
  snprintf(buf, sizeof buf, "%s%s_%08llx", pre, part,
           (unsigned long long)(hash3(consumer, NULL, NULL) & 0xffffffffULL));
  free(pre);
  return strdup(buf); /* <= 26 + 20 + 1 + 8 = 55 bytes */
}

int pg_history_lost(as_node *n, as_error *err, const char *fmt, ...) {
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n->resnapshot) {
    return as_error_set(err, AS_DOM_POSTGRES, AS_ERESNAPSHOT,
                        "%s; on_history_lost is resnapshot: the mappings are copied again", msg);
  }
  return as_error_set(err, AS_DOM_POSTGRES, AS_ERR,
                      "%s; run `arraysync run --resnapshot` (copies every mapping again) or set "
                      "on_history_lost: resnapshot on node %s",
                      msg, n->name);
}

int pg_on_truncate(const as_node *n, const pg_table *t, const char *where, bool *emit,
                   as_error *err) {
  const as_schema *s = t->s;
  *emit = false;
  switch (s->on_truncate) {
    case AS_ON_TRUNCATE_PROPAGATE:
      AS_LOG(AS_LOG_WARN, n->comp, "table %s was truncated (%s): mapping %s propagates it",
             t->qname, where, s->name);
      *emit = true;
      return AS_OK;
    case AS_ON_TRUNCATE_IGNORE:
      AS_LOG(AS_LOG_WARN, n->comp,
             "table %s was truncated (%s): mapping %s ignores it (on_truncate: ignore); the "
             "other nodes keep their rows",
             t->qname, where, s->name);
      return AS_OK;
    case AS_ON_TRUNCATE_STOP:
    default:
      break;
  }
  return as_error_set(err, AS_DOM_POSTGRES, AS_ERR,
                      "table %s was truncated (%s); mapping %s (%s:%d:%d) has on_truncate: "
                      "stop: set on_truncate to propagate (empty the table on the other nodes) "
                      "or ignore, and restart (the stream resumes at the truncate)",
                      t->qname, where, s->name, s->file ? s->file : "?", s->mark.line,
                      s->mark.col);
}

/* ------------------------------------------------------------------ node */

static void table_free(pg_table *t) {
  if (!t) return;
  free(t->qname);
  free(t->ts_unit);
  free(t->lit_table);
  free(t->lit_qname);
  if (t->qcols) {
    for (size_t i = 0; i < t->s->ncols; i++) free(t->qcols[i]);
  }
  free(t->qcols);
  free(t->qstage);
  free(t->conflict);
  free(t->fname);
  for (size_t i = 0; i < PG_SQL_MEMO; i++) {
    free(t->memo[i].shape);
    free(t->memo[i].sql);
  }
}

static void set_cancel(as_node *n, PGconn *c);

static void node_exit(as_node *n) {
  if (!n) return;
  set_cancel(n, NULL);
  pthread_mutex_destroy(&n->cancel_mu);
  if (n->conn) PQfinish(n->conn);
  pg_stmts_forget(n);
  for (size_t i = 0; i < n->ntables; i++) table_free(&n->tables[i]);
  free(n->tables);
  for (size_t i = 0; i < n->nconsumers; i++) free(n->consumers[i]);
  free(n->consumers);
  free(n->name);
  free(n->dsn);
  free(n->schema);
  free(n->qschema);
  free(n->pubname);
  free(n->slot_prefix);
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
  t->lit_table = pg_quote_literal(t->qname); /* changelog and child image rows: schema too */
  t->lit_qname = pg_quote_literal(t->qname);
  t->qcols = calloc(s->ncols ? s->ncols : 1, sizeof *t->qcols);
  if (!t->lit_table || !t->lit_qname || !t->qcols) goto nomem;
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
  name_part(s->table, 20, prefix);
  if (as_buf_printf(&b, "%s.%s", n->schema, s->table) != AS_OK) goto nomem;
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

/* Child table schema tab of child c of mapping s, then the tables nested under it. */
static int child_tables_init(as_node *n, const as_schema *s, size_t c, const as_schema *tab,
                             as_error *err) {
  pg_table *t = &n->tables[n->ntables];
  n->ntables++;
  int rc = table_init(n, t, tab, n->ntables - 1, err);
  if (rc != AS_OK) return rc;
  t->owner = s;
  t->child = c;
  for (size_t g = 0; rc == AS_OK && g < tab->nchildren; g++)
    rc = child_tables_init(n, s, c, tab->children[g].tab, err);
  return rc;
}

static int node_init(const as_node_config *cfg, const as_schema *const *schemas, size_t nschemas,
                     as_node **out, as_error *err) {
  int rc = AS_ERR;
  *out = NULL;
  as_node *n = calloc(1, sizeof *n);
  if (!n) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  pthread_mutex_init(&n->cancel_mu, NULL);
  pg_opts o = {0};
  if ((rc = as_node_options_parse(cfg, config_map, &o, err)) != AS_OK) goto cleanup;
  const char *dsn = o.dsn, *schema = o.schema;
  if (!*schema || strcmp(schema, "arraysync") == 0) {
    rc = as_node_option_error(err, cfg, "schema", "\"%s\" cannot hold mapped tables (allowed: a "
                              "non-empty name other than arraysync)", schema);
    goto cleanup;
  }
  n->capture_opt = o.capture == 0   ? PG_CAPTURE_AUTO
                   : o.capture == 1 ? PG_CAPTURE_TRIGGERS
                                    : PG_CAPTURE_LOGICAL;
  n->stmt_level = o.capture_triggers == 0;
  n->fast_copy = o.copy;
  n->prepare = o.prepare;
  n->purge_interval_us = o.purge_interval * 1000;
  n->resnapshot = o.on_history_lost == 1;
  n->local_only = cfg->local_only;
  n->name = strdup(cfg->name ? cfg->name : "postgres");
  n->dsn = strdup(dsn);
  n->schema = strdup(schema);
  n->qschema = pg_quote_ident(schema);
  n->consumers = calloc(cfg->nconsumers ? cfg->nconsumers : 1, sizeof *n->consumers);
  if (!n->name || !n->dsn || !n->schema || !n->qschema || !n->consumers) goto nomem;
  for (size_t i = 0; i < cfg->nconsumers; i++) {
    if (!(n->consumers[i] = strdup(cfg->consumers[i]))) goto nomem;
    n->nconsumers++;
  }
  char part[21], pub[64];
  name_part(n->name, 20, part);
  snprintf(pub, sizeof pub, "arraysync_%s_%010llx", part,
           (unsigned long long)(hash3(n->schema, n->name, NULL) & 0xffffffffffULL));
  if (!(n->pubname = strdup(pub))) goto nomem;
  snprintf(n->comp, sizeof n->comp, "postgres:%s", n->name);
  size_t ntab = 0;
  for (size_t i = 0; i < nschemas; i++) ntab += as_schema_tables(schemas[i], NULL, 0);
  n->tables = calloc(ntab ? ntab : 1, sizeof *n->tables);
  if (!n->tables) goto nomem;
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
  /* child tables after every mapped table: pg_table_for finds a mapping's own first; each
   * child table is followed by the tables nested under it (owner and child: the mapping and
   * which of its children they are under) */
  for (size_t i = 0; i < nschemas; i++) {
    for (size_t c = 0; c < schemas[i]->nchildren; c++) {
      if ((rc = child_tables_init(n, schemas[i], c, schemas[i]->children[c].tab, err)) != AS_OK)
        goto cleanup;
    }
  }
  *out = n;
  n = NULL;
  rc = AS_OK;
  goto cleanup;
nomem:
  rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
cleanup:
  as_cfgmap_free(config_map, &o);
  node_exit(n);
  return rc;
}

int pg_decide_capture(as_node *n, PGconn *c, as_error *err) {
  if (n->slot_prefix && n->capture != PG_CAPTURE_AUTO) return AS_OK;
  PGresult *r = NULL;
  int rc = pg_query_simple(c, PG_SQL_CAPTURE_INFO, "capture mode", &r, err);
  if (rc != AS_OK) return rc;
  const char *wal = PQgetvalue(r, 0, 0);
  bool may = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
  bool walok = strcmp(wal, "logical") == 0;
  free(n->slot_prefix);
  n->slot_prefix = slot_prefix(n, PQgetvalue(r, 0, 2));
  if (!n->slot_prefix) {
    PQclear(r);
    return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  }
  if (n->capture != PG_CAPTURE_AUTO) {
    PQclear(r);
    return AS_OK;
  }
  char why[160];
  if (!walok) {
    snprintf(why, sizeof why, "wal_level is %s, logical decoding needs logical", wal);
  } else if (!may) {
    snprintf(why, sizeof why, "the role has neither REPLICATION nor superuser");
  } else {
    snprintf(why, sizeof why, "wal_level = logical and the role may replicate");
  }
  PQclear(r);
  if (n->capture_opt == PG_CAPTURE_LOGICAL && (!walok || !may)) {
    return as_error_set(err, AS_DOM_POSTGRES, AS_EINVAL,
                        "node %s: capture: logical, but %s (set capture: triggers or auto)",
                        n->name, why);
  }
  if (n->capture_opt == PG_CAPTURE_AUTO) {
    n->capture = walok && may ? PG_CAPTURE_LOGICAL : PG_CAPTURE_TRIGGERS;
    AS_LOG(AS_LOG_INFO, n->comp, "capture: %s (auto: %s)",
           n->capture == PG_CAPTURE_LOGICAL ? "logical decoding" : "triggers", why);
  } else {
    n->capture = n->capture_opt;
    AS_LOG(AS_LOG_INFO, n->comp, "capture: %s (configured)",
           n->capture == PG_CAPTURE_LOGICAL ? "logical decoding" : "triggers");
  }
  return AS_OK;
}

/* The sink connection's cancel handle, swapped under cancel_mu so that `interrupt` (another
 * thread) never uses a freed one. */
static void set_cancel(as_node *n, PGconn *c) {
  pthread_mutex_lock(&n->cancel_mu);
  if (n->cancel) PQfreeCancel(n->cancel);
  n->cancel = c ? PQgetCancel(c) : NULL;
  pthread_mutex_unlock(&n->cancel_mu);
}

/* Called from another thread when the engine stops: a statement waiting on a row lock or a slow
 * server returns with an error at once. */
static void pg_interrupt(as_node *n) {
  char buf[256];
  pthread_mutex_lock(&n->cancel_mu);
  if (n->cancel) PQcancel(n->cancel, buf, sizeof buf);
  pthread_mutex_unlock(&n->cancel_mu);
}

int pg_node_connect(as_node *n, as_error *err) {
  set_cancel(n, NULL);
  if (n->conn) {
    PQfinish(n->conn);
    n->conn = NULL;
  }
  pg_stmts_forget(n);
  n->in_txn = false;
  free(n->txn_origin);
  n->txn_origin = NULL;
  pg_sink_reset_session(n);
  char what[128];
  snprintf(what, sizeof what, "sink:%s", n->comp);
  int rc = pg_connect_dsn(n->dsn, what, false, &n->conn, err);
  /* every wait of the sink is bounded: a row locked by another session cannot stall it (the
   * statement fails, the batch is retried later); see adapters/postgres/README.md */
  if (rc == AS_OK) rc = pg_exec(n->conn, PG_SQL_SINK_TIMEOUTS, what, err);
  if (rc == AS_OK) rc = pg_decide_capture(n, n->conn, err);
  if (rc == AS_OK) set_cancel(n, n->conn);
  if (rc == AS_OK) {
    char *red = pg_dsn_describe(n->dsn);
    AS_LOG(AS_LOG_INFO, n->comp, "connected to %s", red ? red : "?");
    free(red);
  } else if (n->conn) {
    PQfinish(n->conn);
    n->conn = NULL;
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
    .interrupt = pg_interrupt,
    .install = pg_install,
    .uninstall = pg_uninstall,
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
    .check_capture = pg_check_capture,
    .gauges = pg_gauges,
    .verify_open = pg_verify_open,
    .verify_estimate = pg_verify_estimate,
    .verify_sign = pg_verify_sign,
    .verify_split = pg_verify_split,
    .verify_rows = pg_verify_rows,
    .verify_bytes = pg_verify_bytes,
    .verify_close = pg_verify_close,
    .mirror_ensure = pg_mirror_ensure,
    .mirror_ids = pg_mirror_ids,
    .mirror_put = pg_mirror_put,
    .mirror_del = pg_mirror_del,
    .commit_order = pg_commit_order,
    .bulk_load = pg_bulk_load,
};
