/* pg_bulk.c — a first load into empty child tables without their foreign keys (adapter.h,
 * bulk_load).
 *
 * PostgreSQL checks a foreign key row by row (an internal trigger runs one query per inserted
 * child row), which costs more than writing the row itself. When a mapping's first copy
 * begins and one of its child tables is empty, the foreign keys of that table that point at
 * the mapping's own tables are dropped; when the copy ends they are added back as they were
 * (pg_get_constraintdef), which validates every row with one join, as pg_restore does. Each
 * dropped key is recorded in arraysync.meta in the transaction that drops it
 * ("dropped_fk:<table>:<name>" -> {"table", "name", "def"}), so a connector killed in between
 * adds it back at its next install. Rows without a parent (a user's delete of a parent while
 * the key was away does not cascade) are never deleted here: the key is then added NOT VALID,
 * with a warning naming the table and how to find them. Begin and end calls of one mapping
 * nest (several pairs may copy into this node at once); the key comes back at the last end. */
#include "pg_internal.h"
#include "pg_sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "as_log.h"

#define FK_PREFIX "dropped_fk:"

static int nomem(as_error *err) { return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory"); }

static pg_table *main_table(as_node *n, const as_schema *s) {
  for (size_t i = 0; i < n->ntables; i++)
    if (n->tables[i].s == s && !n->tables[i].owner) return &n->tables[i];
  return NULL;
}

/* "(lit1::regclass, lit2::regclass, ...)": every table of mapping s */
static int mapping_tables(as_node *n, const as_schema *s, as_buf *b) {
  bool first = true;
  if (as_buf_putc(b, '(')) return AS_ERR;
  for (size_t i = 0; i < n->ntables; i++) {
    pg_table *t = &n->tables[i];
    if (t->owner != s && !(t->s == s && !t->owner)) continue;
    if (as_buf_printf(b, "%s%s::regclass", first ? "" : ", ", t->lit_qname)) return AS_ERR;
    first = false;
  }
  return as_buf_putc(b, ')') ? AS_ERR : AS_OK;
}

/* Drops the foreign keys of child table t to the mapping's tables when t is empty; one
 * transaction. */
static int drop_keys(as_node *n, const as_schema *s, pg_table *t, as_error *err) {
  as_buf q = AS_BUF_INIT;
  PGresult *r = NULL, *e = NULL;
  int rc = pg_exec(n->conn, PG_SQL_BEGIN, "bulk load", err);
  if (rc != AS_OK) return rc;
  if (as_buf_printf(&q, "SELECT NOT EXISTS (SELECT 1 FROM %s)", t->qname)) rc = nomem(err);
  if (rc == AS_OK) rc = pg_query(n->conn, as_buf_cstr(&q), 0, NULL, "bulk load: is the table empty", &e, err);
  bool empty = rc == AS_OK && strcmp(PQgetvalue(e, 0, 0), "t") == 0;
  PQclear(e);
  as_buf_reset(&q);
  if (rc == AS_OK && empty &&
      (as_buf_printf(&q, "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE "
                     "contype = 'f' AND conrelid = %s::regclass AND confrelid IN ", t->lit_qname) ||
       mapping_tables(n, s, &q)))
    rc = nomem(err);
  if (rc == AS_OK && empty)
    rc = pg_query(n->conn, as_buf_cstr(&q), 0, NULL, "bulk load: foreign keys", &r, err);
  for (int i = 0; rc == AS_OK && empty && i < PQntuples(r); i++) {
    const char *name = PQgetvalue(r, i, 0), *def = PQgetvalue(r, i, 1);
    json_t *v = json_pack("{s:s, s:s, s:s}", "table", t->qname, "name", name, "def", def);
    char *vs = v ? json_dumps(v, JSON_COMPACT) : NULL;
    char *qn = pg_quote_ident(name);
    as_buf key = AS_BUF_INIT, alter = AS_BUF_INIT;
    if (!vs || !qn || as_buf_printf(&key, FK_PREFIX "%s:%s", t->qname, name) ||
        as_buf_printf(&alter, "ALTER TABLE %s DROP CONSTRAINT %s", t->qname, qn)) {
      rc = nomem(err);
    } else {
      const char *p[2] = {as_buf_cstr(&key), vs};
      rc = pg_query(n->conn, PG_SQL_META_PUT, 2, p, "bulk load: record the foreign key", NULL, err);
      if (rc == AS_OK) rc = pg_exec(n->conn, as_buf_cstr(&alter), "bulk load: drop the foreign key", err);
      if (rc == AS_OK)
        AS_LOG(AS_LOG_INFO, n->comp, "first copy of mapping %s: foreign key %s of the empty table "
               "%s set aside until the copy ends", s->name, name, t->qname);
    }
    as_buf_free(&key);
    as_buf_free(&alter);
    free(qn);
    free(vs);
    json_decref(v);
  }
  PQclear(r);
  as_buf_free(&q);
  if (rc == AS_OK) return pg_exec(n->conn, PG_SQL_COMMIT, "bulk load", err);
  pg_rollback_quiet(n->conn);
  return rc;
}

/* Adds one recorded key back and forgets the record (NOT VALID when rows lack a parent). */
static int restore_one(as_node *n, const char *key, const char *table, const char *name,
                       const char *def, as_error *err) {
  char *qn = pg_quote_ident(name);
  int rc = AS_OK;
  for (int lax = 0; lax < 2; lax++) {
    as_buf alter = AS_BUF_INIT;
    if (!qn || as_buf_printf(&alter, "ALTER TABLE %s ADD CONSTRAINT %s %s%s", table, qn, def,
                             lax ? " NOT VALID" : "")) {
      as_buf_free(&alter);
      rc = nomem(err);
      break;
    }
    const char *p[1] = {key};
    rc = pg_exec(n->conn, PG_SQL_BEGIN, "restore foreign key", err);
    PGresult *r = rc == AS_OK ? PQexec(n->conn, as_buf_cstr(&alter)) : NULL;
    as_buf_free(&alter);
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    bool orphans = st && strcmp(st, "23503") == 0; /* foreign_key_violation */
    if (rc == AS_OK && PQresultStatus(r) != PGRES_COMMAND_OK && !(orphans && !lax))
      rc = pg_fail(n->conn, r, "restore foreign key", err);
    PQclear(r);
    if (rc == AS_OK && orphans && !lax) {
      pg_rollback_quiet(n->conn);
      AS_LOG(AS_LOG_WARN, n->comp, "table %s holds rows without a parent (written while its "
             "foreign key %s was set aside for a first copy): the key is added back NOT VALID; "
             "find them with the key's columns, then ALTER TABLE ... VALIDATE CONSTRAINT %s",
             table, name, name);
      continue;
    }
    if (rc == AS_OK) rc = pg_query(n->conn, PG_SQL_META_DEL, 1, p, "restore foreign key", NULL, err);
    if (rc == AS_OK) rc = pg_exec(n->conn, PG_SQL_COMMIT, "restore foreign key", err);
    if (rc != AS_OK) pg_rollback_quiet(n->conn);
    else AS_LOG(AS_LOG_INFO, n->comp, "foreign key %s of %s added back", name, table);
    break;
  }
  free(qn);
  return rc;
}

/* Adds back the keys recorded for mapping s (NULL: every recorded key but those of mappings
 * whose first copy is running here). */
int pg_bulk_restore(as_node *n, const as_schema *s, as_error *err) {
  PGresult *r = NULL;
  int rc = pg_query(n->conn, PG_SQL_META_PREFIX, 0, NULL, "restore foreign keys", &r, err);
  for (int i = 0; rc == AS_OK && i < PQntuples(r); i++) {
    json_error_t je;
    json_t *v = json_loads(PQgetvalue(r, i, 1), 0, &je);
    const char *table = json_string_value(json_object_get(v, "table"));
    const char *name = json_string_value(json_object_get(v, "name"));
    const char *def = json_string_value(json_object_get(v, "def"));
    /* for s: its tables only; for all: not those of a mapping whose first copy still runs */
    bool mine = !s;
    for (size_t k = 0; table && k < n->ntables; k++) {
      const pg_table *t = &n->tables[k];
      if (!t->owner || strcmp(t->qname, table) != 0) continue;
      if (s) mine = mine || t->owner == s;
      else if (main_table(n, t->owner) && main_table(n, t->owner)->bulk > 0) mine = false;
    }
    if (!table || !name || !def)
      AS_LOG(AS_LOG_WARN, n->comp, "arraysync.meta %s: not a foreign key record, left alone",
             PQgetvalue(r, i, 0));
    else if (mine)
      rc = restore_one(n, PQgetvalue(r, i, 0), table, name, def, err);
    json_decref(v);
  }
  PQclear(r);
  return rc;
}

int pg_bulk_load(as_node *n, const as_schema *s, bool begin, as_error *err) {
  pg_table *m = main_table(n, s);
  if (!m || !s->nchildren) return AS_OK;
  if (n->in_txn) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "bulk load: a sink transaction is open");
  int rc = AS_OK;
  if (!n->conn && (rc = pg_node_connect(n, err)) != AS_OK) return rc;
  if (begin) {
    if (m->bulk++ > 0) return AS_OK;
    for (size_t i = 0; rc == AS_OK && i < n->ntables; i++)
      if (n->tables[i].owner == s) rc = drop_keys(n, s, &n->tables[i], err);
    return rc;
  }
  if (m->bulk == 0 || --m->bulk > 0) return AS_OK;
  return pg_bulk_restore(n, s, err);
}
