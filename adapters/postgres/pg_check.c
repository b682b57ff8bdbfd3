/* pg_check.c — PostgreSQL adapter: the read-only administrative callbacks: describe
 * (`arraysync infer`), check_live (`arraysync check --live`) and versions. Nothing here
 * writes: privileges are asked of the server (has_*_privilege), tables are read from the
 * catalogs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_log.h"
#include "pg_internal.h"
#include "pg_sql.h"

typedef void (*report_fn)(void *ctx, bool ok, const char *what, const char *fix);

#define PG_SQL_DESCRIBE                                                                        \
  "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"                      \
  " COALESCE((SELECT k.n FROM pg_index i, unnest(i.indkey::int2[]) WITH ORDINALITY k(att, n)"  \
  "  WHERE i.indrelid = c.oid AND i.indisprimary AND k.att = a.attnum), 0)"                    \
  " FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace"                           \
  " JOIN pg_attribute a ON a.attrelid = c.oid"                                                 \
  " WHERE ns.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')"                      \
  " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"

#define PG_SQL_LIVE_INFO                                                                       \
  "SELECT current_setting('wal_level'), current_setting('server_version'), current_user,"      \
  " (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user),"           \
  " has_database_privilege(current_database(), 'CREATE'),"                                     \
  " to_regnamespace(quote_ident($1)) IS NOT NULL,"                                             \
  " CASE WHEN to_regnamespace(quote_ident($1)) IS NULL THEN false"                             \
  "  ELSE has_schema_privilege($1, 'CREATE') AND has_schema_privilege($1, 'USAGE') END,"       \
  " to_regnamespace('arraysync') IS NOT NULL,"                                                 \
  " CASE WHEN to_regnamespace('arraysync') IS NULL THEN false"                                 \
  "  ELSE has_schema_privilege('arraysync', 'CREATE') AND"                                     \
  "   has_schema_privilege('arraysync', 'USAGE') END"

/* $1 schema.table (quoted, regclass text) */
#define PG_SQL_TABLE_PRIVS                                                                     \
  "SELECT has_table_privilege($1, 'SELECT'), has_table_privilege($1, 'INSERT'),"               \
  " has_table_privilege($1, 'UPDATE'), has_table_privilege($1, 'DELETE'),"                     \
  " has_table_privilege($1, 'TRIGGER')"

/* $1 schema.table: columns a row inserted without them cannot have (NOT NULL, no default, not
 * an identity or generated column) */
#define PG_SQL_REQUIRED_COLS                                                                   \
  "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0"      \
  " AND NOT a.attisdropped AND a.attnotnull AND NOT a.atthasdef AND a.attidentity = ''"        \
  " AND a.attgenerated = '' ORDER BY a.attnum"

static int connect_admin(as_node *n, as_error *err) {
  if (n->conn && PQstatus(n->conn) == CONNECTION_OK) return AS_OK;
  return as_adapter_postgres.connect(n, err);
}

static int describe_conn(as_node *n, const char *table, as_table_desc *out, as_error *err) {
  PGresult *r = NULL;
  const char *p[2] = {n->schema, table};
  int rc = pg_query(n->conn, PG_SQL_DESCRIBE, 2, p, "describe table", &r, err);
  for (int i = 0; rc == AS_OK && i < PQntuples(r); i++) {
    if (as_table_desc_add(out, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                          strcmp(PQgetvalue(r, i, 2), "t") == 0, atoi(PQgetvalue(r, i, 3))) !=
        AS_OK) {
      rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
    }
  }
  if (rc == AS_OK && out->ncols == 0) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ENOTFOUND, "node %s: no table \"%s\".\"%s\"",
                      n->name, n->schema, table);
  }
  if (rc == AS_OK && !(out->table = strdup(table))) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  }
  PQclear(r);
  return rc;
}

int pg_describe(as_node *n, const char *table, as_table_desc *out, as_error *err) {
  int rc = connect_admin(n, err);
  return rc == AS_OK ? describe_conn(n, table, out, err) : rc;
}

/* cols: PG_SQL_COLUMNS of the table (name, type, typname, typmod, ..., generated): the install
 * rule. */
static void check_columns(as_node *n, const as_schema *s, const as_table_desc *d,
                          const PGresult *cols, report_fn report, void *ctx, bool *ok) {
  char what[900], fix[600];
  for (size_t i = 0; i < s->ntable; i++) {
    const as_column *c = &s->cols[i];
    const as_table_column *tc = NULL;
    for (size_t j = 0; j < d->ncols; j++) {
      if (strcmp(d->cols[j].name, c->name) == 0) tc = &d->cols[j];
    }
    int row = -1;
    for (int j = 0; cols && j < PQntuples(cols); j++) {
      if (strcmp(PQgetvalue(cols, j, 0), c->name) == 0) row = j;
    }
    bool narrow = false;
    int typmod = row >= 0 ? atoi(PQgetvalue(cols, row, 3)) : -1;
    bool fits = row >= 0 && pg_column_fits(c->type, c->is_key, PQgetvalue(cols, row, 2), typmod,
                                             &narrow);
    const char *file = c->mark.file ? c->mark.file : s->file;
    const char *want = as_schema_pg_type(c->type);
    if (!tc) {
      snprintf(what, sizeof what, "node %s: table \"%s\".\"%s\" has no column \"%s\" (%s:%d:%d, "
               "mapping %s)", n->name, n->schema, s->table, c->name, file, c->mark.line,
               c->mark.col, s->name);
      snprintf(fix, sizeof fix, "ALTER TABLE \"%s\".\"%s\" ADD COLUMN \"%s\" %s, or map an "
               "existing column", n->schema, s->table, c->name, want);
    } else if (!fits) {
      snprintf(what, sizeof what, "node %s: column \"%s\".\"%s\".\"%s\" is %s, the mapping wants "
               "%s (%s:%d:%d, mapping %s)%s", n->name, n->schema, s->table, c->name, tc->sql_type,
               want, file, c->mark.line, c->mark.col, s->name,
               narrow ? "; a narrower type cannot hold every value of the mapping" : "");
      snprintf(fix, sizeof fix, "ALTER TABLE \"%s\".\"%s\" ALTER COLUMN \"%s\" TYPE %s, or change "
               "the column's type in the mapping", n->schema, s->table, c->name, want);
    } else if (s->direction != AS_DIR_TO_MONGO && strcmp(PQgetvalue(cols, row, 6), "t") == 0) {
      snprintf(what, sizeof what, "node %s: column \"%s\".\"%s\".\"%s\" is a generated column "
               "(%s:%d:%d, mapping %s): PostgreSQL computes it and refuses every row written "
               "with a value for it", n->name, n->schema, s->table, c->name, file, c->mark.line,
               c->mark.col, s->name);
      snprintf(fix, sizeof fix, "leave the column out of the mapping, or map it with "
               "`direction: to-mongo` (PostgreSQL as the source only)");
    } else {
      if (c->type == AS_T_TIMESTAMP && (typmod < 0 || typmod > 3)) {
        /* fits, but a note: a value with sub-millisecond digits never reaches MongoDB */
        snprintf(what, sizeof what, "node %s: column \"%s\".\"%s\".\"%s\" holds microseconds "
                 "(%s); MongoDB dates hold milliseconds, so a value with sub-millisecond digits "
                 "is a dead letter towards a MongoDB node, never rounded (timestamptz(3) rounds "
                 "on write) (%s:%d:%d, mapping %s)", n->name, n->schema, s->table, c->name,
                 tc->sql_type, file, c->mark.line, c->mark.col, s->name);
        report(ctx, true, what, "");
      }
      continue;
    }
    report(ctx, false, what, fix);
    *ok = false;
  }
}

static void check_table(as_node *n, const as_schema *s, bool schema_create, report_fn report,
                        void *ctx, bool *all_ok) {
  char what[900], fix[600];
  as_table_desc d = {0};
  as_error err = {0};
  int rc = describe_conn(n, s->table, &d, &err);
  if (rc == AS_ENOTFOUND) {
    snprintf(what, sizeof what, "node %s: table \"%s\".\"%s\" is missing; `arraysync install` "
             "creates it (mapping %s)", n->name, n->schema, s->table, s->name);
    snprintf(fix, sizeof fix, "grant CREATE on schema %s, or create the table yourself "
             "(`arraysync check` prints its DDL)", n->schema);
    report(ctx, schema_create, what, fix);
    *all_ok = *all_ok && schema_create;
    return;
  }
  if (rc != AS_OK) {
    snprintf(what, sizeof what, "node %s: table \"%s\".\"%s\" can be read", n->name, n->schema,
             s->table);
    report(ctx, false, what, err.message);
    *all_ok = false;
    return;
  }
  bool ok = true;
  pg_table *t = pg_table_by_name(n, s->table);
  PGresult *r = NULL;
  const char *p[1] = {t ? t->qname : ""};
  if (t) pg_query(n->conn, PG_SQL_COLUMNS, 1, p, "read table columns", &r, &err);
  check_columns(n, s, &d, r, report, ctx, &ok);
  PQclear(r);
  r = NULL;
  /* a column the mapping leaves out that every insert must fill: rows other nodes insert
   * here are refused (dead letters); a to-mongo mapping writes nothing here */
  if (t && s->direction != AS_DIR_TO_MONGO &&
      pg_query(n->conn, PG_SQL_REQUIRED_COLS, 1, p, "required columns", &r, &err) == AS_OK) {
    for (int i = 0; i < PQntuples(r); i++) {
      const char *name = PQgetvalue(r, i, 0);
      if (as_schema_column_index(s, name) >= 0) continue;
      snprintf(what, sizeof what, "node %s: column \"%s\" of %s is NOT NULL without a default "
               "and mapping %s does not map it: every row another node inserts here is refused "
               "(a dead letter)", n->name, name, t->qname, s->name);
      snprintf(fix, sizeof fix, "map the column, give it a DEFAULT, or ALTER TABLE %s ALTER "
               "COLUMN \"%s\" DROP NOT NULL", t->qname, name);
      report(ctx, false, what, fix);
      ok = false;
    }
  }
  PQclear(r);
  r = NULL;
  as_table_desc_free(&d);
  if (t && pg_query(n->conn, PG_SQL_TABLE_PRIVS, 1, p, "table privileges", &r, &err) == AS_OK) {
    static const char *const privs[] = {"SELECT", "INSERT", "UPDATE", "DELETE", "TRIGGER"};
    char missing[100] = "";
    for (int i = 0; i < 5; i++) {
      if (strcmp(PQgetvalue(r, 0, i), "t") != 0) {
        size_t l = strlen(missing);
        snprintf(missing + l, sizeof missing - l, "%s%s", l ? ", " : "", privs[i]);
      }
    }
    snprintf(what, sizeof what, "node %s: privileges on %s (SELECT, INSERT, UPDATE, DELETE, "
             "TRIGGER for the capture triggers)%s%s", n->name, t->qname,
             missing[0] ? ": missing " : "", missing);
    snprintf(fix, sizeof fix, "GRANT %s ON %s TO the connector's role", missing, t->qname);
    report(ctx, !missing[0], what, fix);
    ok = ok && !missing[0];
  } else {
    snprintf(what, sizeof what, "node %s: privileges on table \"%s\" can be read", n->name,
             s->table);
    report(ctx, false, what, err.message);
    ok = false;
  }
  PQclear(r);
  *all_ok = *all_ok && ok;
}

/* Server settings, role and schema privileges (row 0 of PG_SQL_LIVE_INFO in r). */
static bool check_server(as_node *n, PGresult *r, report_fn report, void *ctx) {
  char what[900], fix[600];
  bool all_ok = true;
  const char *wal = PQgetvalue(r, 0, 0);
  bool repl = strcmp(PQgetvalue(r, 0, 3), "t") == 0;
  snprintf(what, sizeof what, "node %s: PostgreSQL %s, role %s: wal_level = %s, %s (trigger "
           "capture needs neither; logical decoding needs wal_level = logical and REPLICATION)",
           n->name, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), wal,
           repl ? "may replicate" : "no REPLICATION");
  report(ctx, true, what, "");
  bool has_schema = strcmp(PQgetvalue(r, 0, 5), "t") == 0;
  bool schema_priv = strcmp(PQgetvalue(r, 0, 6), "t") == 0;
  bool db_create = strcmp(PQgetvalue(r, 0, 4), "t") == 0;
  bool ok = has_schema ? schema_priv : db_create;
  snprintf(what, sizeof what, has_schema ? "node %s: CREATE and USAGE on schema %s (mapped "
           "tables, capture functions)" : "node %s: schema %s is missing; CREATE on the database "
           "to create it", n->name, n->schema);
  snprintf(fix, sizeof fix, has_schema ? "GRANT CREATE, USAGE ON SCHEMA \"%s\" TO the "
           "connector's role" : "CREATE SCHEMA \"%s\" (or GRANT CREATE ON DATABASE to the "
           "connector's role)", n->schema);
  report(ctx, ok, what, fix);
  all_ok = all_ok && ok;
  bool has_book = strcmp(PQgetvalue(r, 0, 7), "t") == 0;
  ok = has_book ? strcmp(PQgetvalue(r, 0, 8), "t") == 0 : db_create;
  snprintf(what, sizeof what, has_book ? "node %s: CREATE and USAGE on the bookkeeping schema "
           "arraysync" : "node %s: the bookkeeping schema arraysync is missing; CREATE on the "
           "database to create it", n->name);
  report(ctx, ok, what, has_book ? "GRANT CREATE, USAGE ON SCHEMA arraysync TO the connector's "
         "role" : "GRANT CREATE ON DATABASE ... TO the connector's role, or CREATE SCHEMA "
         "arraysync AUTHORIZATION the connector's role");
  all_ok = all_ok && ok;
  return all_ok;
}

int pg_check_live(as_node *n, report_fn report, void *ctx) {
  as_error err = {0};
  char what[600], fix[800];
  int rc = connect_admin(n, &err);
  char *red = pg_dsn_describe(n->dsn);
  snprintf(what, sizeof what, "node %s: connects to %s", n->name, red ? red : "?");
  free(red);
  snprintf(fix, sizeof fix, "%s: check the dsn option (host, port, dbname, user, password) and "
           "that the server runs", err.message);
  report(ctx, rc == AS_OK, what, fix);
  if (rc != AS_OK) return AS_ERR;
  PGresult *r = NULL;
  const char *p[1] = {n->schema};
  if (pg_query(n->conn, PG_SQL_LIVE_INFO, 1, p, "server settings", &r, &err) != AS_OK) {
    snprintf(what, sizeof what, "node %s: server settings and privileges can be read", n->name);
    report(ctx, false, what, err.message);
    return AS_ERR;
  }
  bool all_ok = check_server(n, r, report, ctx);
  bool schema_create = strcmp(PQgetvalue(r, 0, 5), "t") == 0
                           ? strcmp(PQgetvalue(r, 0, 6), "t") == 0
                           : strcmp(PQgetvalue(r, 0, 4), "t") == 0;
  PQclear(r);
  for (size_t i = 0; i < n->ntables; i++) {
    check_table(n, n->tables[i].s, schema_create, report, ctx, &all_ok);
  }
  return all_ok ? AS_OK : AS_ERR;
}

void pg_versions(void (*fn)(void *ctx, const char *lib, const char *version), void *ctx) {
  int v = PQlibVersion();
  char buf[32];
  if (v >= 100000) snprintf(buf, sizeof buf, "%d.%d", v / 10000, v % 100);
  else snprintf(buf, sizeof buf, "%d.%d.%d", v / 10000, v / 100 % 100, v % 100);
  fn(ctx, "libpq", buf);
}
