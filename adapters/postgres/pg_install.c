/* pg_install.c — install/uninstall of a PostgreSQL node (bookkeeping schema, mapped tables,
 * capture objects: triggers, or publication + replication slots), the capture check
 * (check_capture) and the slot gauges. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <xxhash.h>

#include "as_ddl.h"
#include "as_log.h"
#include "pg_internal.h"
#include "pg_sql.h"

static const char *const upgrades[PG_SCHEMA_VERSION] = {PG_SQL_UPGRADE_0_TO_1,
                                                        PG_SQL_UPGRADE_1_TO_2,
                                                        PG_SQL_UPGRADE_2_TO_3};

static int nomem(as_error *err) { return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory"); }

/* ------------------------------------------------------------------ tables */

/* Can an existing column of type `typname` (typmod) hold every value of a mapped column of
 * type t? A narrower type (integer for int64, real for double, varchar(n), numeric(p,s),
 * timestamptz(0)) is refused: it would fail or change values later. *narrow tells that the
 * type is of the right kind but narrower. */
bool pg_column_fits(as_type t, bool key, const char *typname, int typmod, bool *narrow) {
  static const struct {
    as_type t;
    const char *ok;     /* same kind, any typmod accepted where typmod_min allows */
    const char *narrow; /* same kind, narrower */
  } rules[] = {
      {AS_T_BOOL, " bool ", ""},
      {AS_T_INT64, " int8 ", " int4 int2 "},
      {AS_T_DOUBLE, " float8 ", " float4 "},
      {AS_T_DECIMAL, " numeric ", ""},
      {AS_T_TEXT, " text varchar citext enum ", " bpchar name "},
      {AS_T_BYTES, " bytea ", ""},
      {AS_T_UUID, " uuid ", ""},
      {AS_T_OBJECTID, " text varchar bpchar ", ""},
      {AS_T_TIMESTAMP, " timestamptz timestamp ", ""},
      {AS_T_DATE, " date ", ""},
      {AS_T_JSON, " jsonb json ", ""},
  };
  char needle[80];
  snprintf(needle, sizeof needle, " %s ", typname);
  *narrow = false;
  /* an enum takes the text it names (values bound untyped); a key is compared as text */
  if (key && strcmp(typname, "enum") == 0) return false;
  for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
    if (rules[i].t != t) continue;
    if (strstr(rules[i].narrow, needle)) {
      *narrow = true;
      return false;
    }
    if (!strstr(rules[i].ok, needle)) return false;
    if (typmod < 0) return true;
    /* a type modifier limits the values: only where the mapping's values still fit */
    if (t == AS_T_TIMESTAMP && typmod >= 3) return true; /* MongoDB dates hold milliseconds */
    if (t == AS_T_OBJECTID && typmod - 4 >= 24) return true; /* varchar(n)/char(n): n >= 24 */
    *narrow = true;
    return false;
  }
  return false;
}

/* Reads the table's columns: checks every mapped column (when check) and fills attnum[]. */
static int table_columns(as_node *n, pg_table *t, bool check, int *attnum, as_error *err) {
  const as_schema *s = t->s;
  PGresult *r = NULL;
  const char *p[1] = {t->qname};
  int rc = pg_query(n->conn, PG_SQL_COLUMNS, 1, p, "read table columns", &r, err);
  if (rc != AS_OK) return rc;
  for (size_t i = 0; i < s->ntable; i++) {
    const as_column *c = &s->cols[i];
    int row = -1;
    for (int j = 0; j < PQntuples(r); j++) {
      if (strcmp(PQgetvalue(r, j, 0), c->name) == 0) row = j;
    }
    const char *file = c->mark.file ? c->mark.file : s->file;
    if (row < 0) {
      rc = as_error_set(err, AS_DOM_CONFIG, AS_EINVAL,
                        "table \"%s\": column \"%s\" is missing, mapping %s (%s:%d:%d) wants %s",
                        s->table, c->name, s->name, file, c->mark.line, c->mark.col,
                        as_schema_pg_type(c->type));
      goto cleanup;
    }
    attnum[i] = atoi(PQgetvalue(r, row, 4));
    bool narrow = false;
    if (check && !pg_column_fits(c->type, c->is_key, PQgetvalue(r, row, 2),
                                  atoi(PQgetvalue(r, row, 3)), &narrow)) {
      rc = as_error_set(err, AS_DOM_CONFIG, AS_EINVAL,
                        "table \"%s\": column \"%s\" is %s, mapping %s (%s:%d:%d) wants %s%s",
                        s->table, c->name, PQgetvalue(r, row, 1), s->name, file, c->mark.line,
                        c->mark.col, as_schema_pg_type(c->type),
                        narrow ? " (a narrower type cannot hold every value of the mapping: "
                                 "change the column type or the mapping)"
                               : "");
      goto cleanup;
    }
  }
  rc = AS_OK;
cleanup:
  PQclear(r);
  return rc;
}

static char *key_names_json(const as_schema *s) {
  json_t *arr = json_array();
  for (size_t k = 0; arr && k < s->nkey; k++) {
    json_array_append_new(arr, json_string(s->cols[s->key_idx[k]].name));
  }
  char *keys = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
  json_decref(arr);
  return keys;
}

static int check_unique_key(as_node *n, pg_table *t, as_error *err) {
  const as_schema *s = t->s;
  PGresult *r = NULL;
  char *keys = key_names_json(s);
  if (!keys) return nomem(err);
  const char *p2[2] = {t->qname, keys};
  int rc = pg_query(n->conn, PG_SQL_HAS_UNIQUE_KEY, 2, p2, "read table indexes", &r, err);
  if (rc == AS_OK && strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
    rc = as_error_set(err, AS_DOM_CONFIG, AS_EINVAL,
                      "table \"%s\": no primary key or unique index on %s, mapping %s (%s:%d:%d) "
                      "needs one on its key",
                      s->table, t->conflict, s->name, s->file ? s->file : "?", s->mark.line,
                      s->mark.col);
  }
  PQclear(r);
  free(keys);
  return rc;
}

static int exec_buf(as_node *n, as_buf *b, const pg_table *t, const char *what, as_error *err);

/* Logical capture: UPDATE/DELETE are decoded with the replica identity, which must hold the
 * mapping's key (and a published table without one refuses UPDATE/DELETE altogether). */
static int check_replica_identity(as_node *n, pg_table *t, as_error *err) {
  const as_schema *s = t->s;
  PGresult *r = NULL;
  char *keys = key_names_json(s);
  if (!keys) return nomem(err);
  const char *p[2] = {t->qname, keys};
  int rc = pg_query(n->conn, PG_SQL_REPLICA_IDENTITY, 2, p, "read replica identity", &r, err);
  if (rc == AS_OK && PQgetvalue(r, 0, 0)[0] == 'd') {
    /* the default identity (the primary key) gives no old row: every UPDATE would read as a
     * change of every column, and concurrent changes of different columns could not merge.
     * FULL logs the old row, so an update names the columns it changed. */
    as_buf b = AS_BUF_INIT;
    rc = as_buf_printf(&b, "ALTER TABLE %s REPLICA IDENTITY FULL", t->qname) == AS_OK
             ? exec_buf(n, &b, t, "set replica identity", err)
             : nomem(err);
    as_buf_free(&b);
    if (rc == AS_OK)
      AS_LOG(AS_LOG_INFO, n->comp, "table %s: replica identity FULL (updates name the columns "
             "they change)", t->qname);
    PQclear(r);
    free(keys);
    return rc;
  }
  if (rc == AS_OK && strcmp(PQgetvalue(r, 0, 1), "t") != 0) {
    const char *ri = PQgetvalue(r, 0, 0);
    rc = as_error_set(
        err, AS_DOM_CONFIG, AS_EINVAL,
        "table \"%s\": its replica identity (%s) does not hold the key %s of mapping %s "
        "(%s:%d:%d), so logical decoding cannot name the rows it updates or deletes: run "
        "ALTER TABLE %s REPLICA IDENTITY USING INDEX <a unique index on the key> (or "
        "REPLICA IDENTITY FULL), or use capture: triggers",
        s->table,
        ri[0] == 'n' ? "nothing" : ri[0] == 'i' ? "an index" : "the primary key, or none",
        t->conflict, s->name, s->file ? s->file : "?", s->mark.line, s->mark.col, t->qname);
  }
  PQclear(r);
  free(keys);
  return rc;
}

static int create_table(as_node *n, pg_table *t, as_error *err) {
  as_buf b = AS_BUF_INIT;
  int rc = as_ddl_postgres(t->s, n->schema, &b, err);
  if (rc == AS_OK) rc = pg_exec(n->conn, as_buf_cstr(&b), "create table", err);
  if (rc == AS_OK) AS_LOG(AS_LOG_INFO, n->comp, "created table %s", t->qname);
  as_buf_free(&b);
  return rc;
}

static int exec_buf(as_node *n, as_buf *b, const pg_table *t, const char *what, as_error *err) {
  int rc = pg_exec(n->conn, as_buf_cstr(b), what, err);
  if (rc != AS_OK && t) as_error_prefix(err, "table \"%s\"", t->s->table);
  return rc;
}

/* The capture triggers on t now: how many are enabled (arraysync_* but the child images'; a
 * disabled one counts as missing, as check_capture says), and the comment on arraysync_trunc
 * (the fingerprint of the SQL that made them; "" if none). */
#define PG_SQL_TRIGGERS_NOW                                                                  \
  "SELECT count(*), coalesce(max(d.description) FILTER (WHERE tg.tgname = 'arraysync_trunc'), '')" \
  " FROM pg_trigger tg LEFT JOIN pg_description d ON d.objoid = tg.oid"                     \
  "  AND d.classoid = 'pg_trigger'::regclass"                                                \
  " WHERE tg.tgrelid = $1::regclass AND tg.tgname LIKE 'arraysync\\_%'"                     \
  "  AND tg.tgname NOT LIKE 'arraysync\\_img\\_%' AND tg.tgenabled <> 'D'"

static int triggers_now(as_node *n, const pg_table *t, int *count, char *note, size_t cap,
                        as_error *err) {
  PGresult *r = NULL;
  const char *p[1] = {t->qname};
  int rc = pg_query(n->conn, PG_SQL_TRIGGERS_NOW, 1, p, "read capture triggers", &r, err);
  if (rc != AS_OK) return rc;
  *count = atoi(PQgetvalue(r, 0, 0));
  snprintf(note, cap, "%s", PQgetvalue(r, 0, 1));
  PQclear(r);
  return AS_OK;
}

/* Capture objects of one table: triggers, or none (logical: leftover triggers dropped).
 * Triggers made by the same SQL are left as they are: replacing them locks the table (every
 * `run` installs), so a writer's open transaction would hold the start up, and writers would
 * queue behind the connector's lock. */
static int table_capture(as_node *n, pg_table *t, const int *attnum, as_error *err) {
  as_buf b = AS_BUF_INIT;
  int rc = pg_images_sql(n, t, &b) == AS_OK ? exec_buf(n, &b, t, "child table image triggers", err)
                                             : nomem(err);
  as_buf_reset(&b);
  int count = 0;
  char note[64] = "", want[64];
  if (rc == AS_OK) rc = triggers_now(n, t, &count, note, sizeof note, err);
  if (rc != AS_OK) {
    as_buf_free(&b);
    return rc;
  }
  if (n->capture == PG_CAPTURE_TRIGGERS) {
    if (pg_triggers_sql(n, t, attnum, &b) != AS_OK) {
      as_buf_free(&b);
      return nomem(err);
    }
    int made = 0;
    for (const char *p = as_buf_cstr(&b); (p = strstr(p, "CREATE TRIGGER ")) != NULL; p++) made++;
    snprintf(want, sizeof want, "arraysync capture %016llx",
             (unsigned long long)XXH3_64bits(b.data, b.len));
    if (count != made || strcmp(note, want) != 0) {
      rc = as_buf_printf(&b, "; COMMENT ON TRIGGER arraysync_trunc ON %s IS '%s'", t->qname, want) == AS_OK
               ? exec_buf(n, &b, t, "install capture triggers", err)
               : nomem(err);
    }
  } else if (count > 0) { /* (DROP TRIGGER IF EXISTS locks the table even when there is none) */
    rc = pg_triggers_drop_sql(t, &b) == AS_OK ? exec_buf(n, &b, t, "drop capture triggers", err)
                                              : nomem(err);
  }
  as_buf_free(&b);
  return rc;
}

static int install_table(as_node *n, pg_table *t, as_error *err) {
  PGresult *r = NULL;
  const char *p[1] = {t->qname};
  int rc = pg_query(n->conn, PG_SQL_TABLE_EXISTS, 1, p, "install", &r, err);
  if (rc != AS_OK) return rc;
  bool exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
  PQclear(r);
  int *attnum = calloc(t->s->ncols ? t->s->ncols : 1, sizeof *attnum);
  if (!attnum) return nomem(err);
  if (!exists) rc = create_table(n, t, err);
  if (rc == AS_OK) rc = table_columns(n, t, exists, attnum, err);
  if (rc == AS_OK && exists) rc = check_unique_key(n, t, err);
  if (rc == AS_OK && n->capture == PG_CAPTURE_LOGICAL) rc = check_replica_identity(n, t, err);
  if (rc == AS_OK) rc = table_capture(n, t, attnum, err);
  free(attnum);
  return rc;
}

/* ------------------------------------------------------------------ publication */

static bool has_children(const as_node *n) {
  for (size_t i = 0; i < n->ntables; i++)
    if (n->tables[i].owner) return true;
  return false;
}

/* A partitioned table's changes come as the table's (a partition is not mapped). */
#define PG_PUB_OPTIONS "publish_via_partition_root = true"

/* The publication's table list as it should be: every mapped table and arraysync.marks; with
 * child tables, arraysync.child_images instead of them (their changes come as images). */
static int pub_list(as_node *n, as_buf *b) {
  for (size_t i = 0; i < n->ntables; i++) {
    if (!n->tables[i].owner && as_buf_printf(b, "%s, ", n->tables[i].qname) != AS_OK) return AS_ERR;
  }
  if (has_children(n) && as_buf_append_str(b, "arraysync.child_images, ") != AS_OK) return AS_ERR;
  return as_buf_append_str(b, "arraysync.marks");
}

/* Missing members of the publication, as a list for messages ("" if none). */
static int pub_missing(as_node *n, as_buf *missing, bool *exists, as_error *err) {
  PGresult *r = NULL;
  const char *p[1] = {n->pubname};
  int rc = pg_query(n->conn, PG_SQL_PUB_EXISTS, 1, p, "read publication", &r, err);
  if (rc != AS_OK) return rc;
  *exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
  /* a partitioned table's changes are published as the table's own (not its partitions') */
  bool viaroot = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
  PQclear(r);
  if (*exists && !viaroot && as_buf_append_str(missing, "publish_via_partition_root") != AS_OK)
    return nomem(err);
  if ((rc = pg_query(n->conn, PG_SQL_PUB_TABLES, 1, p, "read publication", &r, err)) != AS_OK)
    return rc;
  for (size_t i = 0; i <= n->ntables + 1; i++) {
    if (i < n->ntables && n->tables[i].owner) continue;
    if (i == n->ntables + 1 && !has_children(n)) continue;
    const char *sch = i < n->ntables ? n->schema : "arraysync";
    const char *tab = i < n->ntables ? n->tables[i].s->table : i == n->ntables ? "marks" : "child_images";
    bool found = false;
    for (int j = 0; j < PQntuples(r) && !found; j++) {
      found = strcmp(PQgetvalue(r, j, 0), sch) == 0 && strcmp(PQgetvalue(r, j, 1), tab) == 0;
    }
    if (!found && as_buf_printf(missing, "%s%s", missing->len ? ", " : "",
                                i < n->ntables    ? n->tables[i].qname
                                : i == n->ntables ? "arraysync.marks"
                                                  : "arraysync.child_images") != AS_OK) {
      PQclear(r);
      return nomem(err);
    }
  }
  PQclear(r);
  return AS_OK;
}

static int pub_ensure(as_node *n, bool *changed, as_error *err) {
  as_buf missing = AS_BUF_INIT, b = AS_BUF_INIT;
  bool exists = false;
  *changed = false;
  int rc = pub_missing(n, &missing, &exists, err);
  if (rc == AS_OK && (!exists || missing.len)) {
    char *q = pg_quote_ident(n->pubname);
    if (!q ||
        as_buf_printf(&b, exists ? "ALTER PUBLICATION %s SET TABLE "
                                 : "CREATE PUBLICATION %s FOR TABLE ", q) ||
        pub_list(n, &b) || (!exists && as_buf_append_str(&b, " WITH (" PG_PUB_OPTIONS ")"))) {
      rc = nomem(err);
    } else {
      rc = exec_buf(n, &b, NULL, "publication", err);
    }
    as_buf_reset(&b);
    if (rc == AS_OK && exists) {
      rc = as_buf_printf(&b, "ALTER PUBLICATION %s SET (" PG_PUB_OPTIONS ")", q) != AS_OK
               ? nomem(err)
               : exec_buf(n, &b, NULL, "publication", err);
    }
    free(q);
    if (rc == AS_OK) {
      *changed = true;
      AS_LOG(AS_LOG_INFO, n->comp, "publication %s %s (%s)", n->pubname,
             exists ? "updated" : "created", exists ? as_buf_cstr(&missing) : "mapped tables");
    }
  }
  as_buf_free(&missing);
  as_buf_free(&b);
  return rc;
}

/* ------------------------------------------------------------------ slots */

int pg_slot_ensure(PGconn *c, const char *slot, bool *created, as_error *err) {
  PGresult *r = NULL;
  const char *p[1] = {slot};
  *created = false;
  int rc = pg_query(c, "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
                    1, p, "read replication slots", &r, err);
  if (rc != AS_OK) return rc;
  bool exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
  PQclear(r);
  if (exists) return AS_OK;
  /* Creating a logical slot waits until the transactions running now have finished: bounded
   * by a statement timeout, after which the caller retries (AS_RETRY). */
  if ((rc = pg_exec(c, "SET statement_timeout TO '30s'", "create replication slot", err)) != AS_OK)
    return rc;
  r = PQexecParams(c, PG_SQL_SLOT_CREATE, 1, NULL, p, NULL, NULL, 0);
  const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  if (r && PQresultStatus(r) == PGRES_TUPLES_OK) {
    *created = true;
  } else if (st && (strcmp(st, "57014") == 0 || strcmp(st, "55P03") == 0)) {
    /* (the session's lock_timeout may come first: the wait is for a transaction lock) */
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_RETRY,
                      "creating replication slot %s waits for transactions that are still "
                      "running (%s): retrying",
                      slot, strcmp(st, "57014") == 0 ? "30 s" : "lock timeout");
  } else {
    rc = pg_fail(c, r, "create replication slot", err);
  }
  PQclear(r);
  int rr = pg_exec(c, "RESET statement_timeout", "create replication slot", rc == AS_OK ? err : NULL);
  return rc != AS_OK ? rc : rr;
}

static bool known_slot(as_node *n, const char *db, const char *slot, const char **consumer) {
  for (size_t i = 0; i < n->nconsumers; i++) {
    char *name = pg_slot_name(n, db, n->consumers[i]);
    bool eq = name && strcmp(name, slot) == 0;
    free(name);
    if (eq) {
      if (consumer) *consumer = n->consumers[i];
      return true;
    }
  }
  return false;
}

static int current_db(as_node *n, char **db, as_error *err) {
  PGresult *r = NULL;
  int rc = pg_query(n->conn, "SELECT current_database()", 0, NULL, "read database", &r, err);
  if (rc != AS_OK) return rc;
  *db = strdup(PQgetvalue(r, 0, 0));
  PQclear(r);
  return *db ? AS_OK : nomem(err);
}

/* Drops this node's slots: all (keep_known = false) or those of consumers no longer listed.
 * A slot in use is left with a warning (or an error when strict). */
static int drop_slots(as_node *n, bool keep_known, bool strict, as_error *err) {
  PGresult *r = NULL;
  char *db = NULL;
  const char *p[1] = {n->slot_prefix};
  int rc = current_db(n, &db, err);
  /* a stream closed a moment ago: its walsender may still hold the slot briefly */
  for (int wait = 0; rc == AS_OK && wait < 30; wait++) {
    PQclear(r);
    r = NULL;
    rc = pg_query(n->conn, PG_SQL_NODE_SLOTS, 1, p, "read replication slots", &r, err);
    bool busy = false;
    for (int i = 0; rc == AS_OK && i < PQntuples(r); i++) {
      busy = busy || (!PQgetisnull(r, i, 1) && !(keep_known && known_slot(n, db, PQgetvalue(r, i, 0), NULL)));
    }
    if (!busy) break;
    usleep(100000);
  }
  for (int i = 0; rc == AS_OK && i < PQntuples(r); i++) {
    const char *slot = PQgetvalue(r, i, 0);
    if (keep_known && known_slot(n, db, slot, NULL)) continue;
    if (!PQgetisnull(r, i, 1)) {
      if (strict) {
        rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR,
                          "replication slot %s is in use by process %s (a running arraysync?): "
                          "stop it first",
                          slot, PQgetvalue(r, i, 1));
      } else {
        AS_LOG(AS_LOG_WARN, n->comp, "replication slot %s is in use by process %s: kept", slot,
               PQgetvalue(r, i, 1));
      }
      continue;
    }
    const char *ps[1] = {slot};
    rc = pg_query(n->conn, PG_SQL_SLOT_DROP, 1, ps, "drop replication slot", NULL, err);
    if (rc == AS_OK) AS_LOG(AS_LOG_INFO, n->comp, "dropped replication slot %s", slot);
  }
  PQclear(r);
  free(db);
  return rc;
}

/* Logical capture: a slot for every known consumer, none for consumers that are gone. */
static int install_slots(as_node *n, as_error *err) {
  char *db = NULL;
  int rc = current_db(n, &db, err);
  for (size_t i = 0; rc == AS_OK && i < n->nconsumers; i++) {
    char *slot = pg_slot_name(n, db, n->consumers[i]);
    bool created = false;
    rc = slot ? pg_slot_ensure(n->conn, slot, &created, err) : nomem(err);
    if (rc == AS_OK && created)
      AS_LOG(AS_LOG_INFO, n->comp, "created replication slot %s for %s", slot, n->consumers[i]);
    free(slot);
  }
  free(db);
  if (rc == AS_OK && n->nconsumers > 0) rc = drop_slots(n, true, false, err);
  return rc;
}

/* ------------------------------------------------------------------ install */

static int install_schema(as_node *n, as_error *err) {
  PGresult *r = NULL;
  int rc;
  if ((rc = pg_exec(n->conn, PG_SQL_LOCK, "install lock", err)) != AS_OK ||
      (rc = pg_exec(n->conn, PG_SQL_BOOTSTRAP, "install schema", err)) != AS_OK ||
      (rc = pg_query(n->conn, PG_SQL_GET_VERSION, 0, NULL, "install version", &r, err)) != AS_OK)
    return rc;
  int ver = atoi(PQgetvalue(r, 0, 0));
  PQclear(r);
  if (ver > PG_SCHEMA_VERSION) {
    return as_error_set(err, AS_DOM_POSTGRES, AS_EINVAL,
                        "schema arraysync has version %d, this arraysync knows up to %d", ver,
                        PG_SCHEMA_VERSION);
  }
  for (int v = ver; v < PG_SCHEMA_VERSION; v++) {
    char vs[16];
    snprintf(vs, sizeof vs, "%d", v + 1);
    const char *p[1] = {vs};
    if ((rc = pg_exec(n->conn, upgrades[v], "install upgrade", err)) != AS_OK) return rc;
    if ((rc = pg_query(n->conn, PG_SQL_SET_VERSION, 1, p, "install version", NULL, err)) != AS_OK)
      return rc;
    AS_LOG(AS_LOG_INFO, n->comp, "bookkeeping schema arraysync upgraded to version %d", v + 1);
  }
  return AS_OK;
}

int pg_install(as_node *n, as_error *err) {
  int rc;
  if ((!n->conn || PQstatus(n->conn) == CONNECTION_BAD) && (rc = pg_node_connect(n, err)) != AS_OK)
    return rc;
  if (n->in_txn) {
    return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "install: a sink transaction is open");
  }
  if ((rc = pg_exec(n->conn, PG_SQL_BEGIN, "install", err)) != AS_OK) return rc;
  /* a table lock held by a writer's open transaction: give up soon (AS_RETRY, the caller
   * tries again) rather than queue every other writer of the table behind the wait */
  if ((rc = pg_exec(n->conn, PG_SQL_INSTALL_LOCK_TIMEOUT, "install", err)) != AS_OK) goto fail;
  if ((rc = install_schema(n, err)) != AS_OK) goto fail;
  for (size_t i = 0; i < n->ntables; i++) {
    if ((rc = install_table(n, &n->tables[i], err)) != AS_OK) goto fail;
  }
  bool changed = false;
  if (n->capture == PG_CAPTURE_LOGICAL) {
    if ((rc = pub_ensure(n, &changed, err)) != AS_OK ||
        (rc = pg_exec(n->conn, PG_SQL_MARKS_GC, "install marks", err)) != AS_OK)
      goto fail;
  } else {
    char *q = pg_quote_ident(n->pubname);
    as_buf b = AS_BUF_INIT;
    rc = q && as_buf_printf(&b, "DROP PUBLICATION IF EXISTS %s", q) == AS_OK
             ? pg_exec(n->conn, as_buf_cstr(&b), "drop publication", err)
             : nomem(err);
    free(q);
    as_buf_free(&b);
    if (rc != AS_OK) goto fail;
  }
  if ((rc = pg_exec(n->conn, PG_SQL_COMMIT, "install commit", err)) != AS_OK) return rc;
  /* foreign keys a first copy set aside when its connector died before adding them back */
  if ((rc = pg_bulk_restore(n, NULL, err)) != AS_OK) return rc;
  /* slots outside the transaction: creating one waits for running transactions */
  return n->capture == PG_CAPTURE_LOGICAL ? install_slots(n, err) : drop_slots(n, false, false, err);
fail:
  pg_rollback_quiet(n->conn);
  return rc;
}

int pg_uninstall(as_node *n, as_error *err) {
  int rc;
  PGresult *r = NULL;
  as_buf b = AS_BUF_INIT;
  if (!n->conn && (rc = pg_node_connect(n, err)) != AS_OK) return rc;
  if ((rc = pg_exec(n->conn, PG_SQL_BEGIN, "uninstall", err)) != AS_OK) return rc;
  if ((rc = pg_exec(n->conn, PG_SQL_LOCK, "uninstall lock", err)) != AS_OK) goto fail;
  for (size_t i = 0; i < n->ntables; i++) {
    pg_table *t = &n->tables[i];
    const char *p[1] = {t->qname};
    if ((rc = pg_query(n->conn, PG_SQL_TABLE_EXISTS, 1, p, "uninstall", &r, err)) != AS_OK)
      goto fail;
    bool exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    r = NULL;
    if (!exists) continue;
    as_buf_reset(&b);
    if (pg_triggers_drop_sql(t, &b) != AS_OK) {
      rc = nomem(err);
      goto fail;
    }
    if ((rc = exec_buf(n, &b, t, "uninstall triggers", err)) != AS_OK) goto fail;
  }
  char *q = pg_quote_ident(n->pubname);
  as_buf_reset(&b);
  rc = q && as_buf_printf(&b, "DROP PUBLICATION IF EXISTS %s", q) == AS_OK
           ? exec_buf(n, &b, NULL, "drop publication", err)
           : nomem(err);
  free(q);
  if (rc != AS_OK) goto fail;
  /* Trigger functions live in schema arraysync: CASCADE also removes triggers of tables that
   * are no longer mapped. */
  if ((rc = pg_exec(n->conn, PG_SQL_UNINSTALL, "uninstall schema", err)) != AS_OK) goto fail;
  as_buf_free(&b);
  if ((rc = pg_exec(n->conn, PG_SQL_COMMIT, "uninstall commit", err)) != AS_OK) return rc;
  return drop_slots(n, false, true, err);
fail:
  PQclear(r);
  as_buf_free(&b);
  pg_rollback_quiet(n->conn);
  return rc;
}

/* ------------------------------------------------------------------ check_capture */

/* Trigger capture: the triggers of every mapped table; repair reinstalls them. */
static int check_triggers(as_node *n, bool repair, as_buf *missing, as_error *err) {
  int rc = AS_OK;
  for (size_t i = 0; rc == AS_OK && i < n->ntables; i++) {
    pg_table *t = &n->tables[i];
    PGresult *r = NULL;
    const char *p[1] = {t->qname};
    if ((rc = pg_query(n->conn, PG_SQL_TRIGGERS, 1, p, "read triggers", &r, err)) != AS_OK)
      break;
    as_buf gone = AS_BUF_INIT;
    for (const char *const *nm = pg_trigger_names(pg_table_stmt_level(n, t)); *nm; nm++) {
      bool found = false;
      for (int j = 0; j < PQntuples(r); j++) found = found || strcmp(PQgetvalue(r, j, 0), *nm) == 0;
      if (!found) as_buf_printf(&gone, "%s%s", gone.len ? ", " : "", *nm);
    }
    PQclear(r);
    if (gone.len && repair) {
      int *attnum = calloc(t->s->ncols ? t->s->ncols : 1, sizeof *attnum);
      rc = attnum ? pg_exec(n->conn, PG_SQL_BEGIN, "repair", err) : nomem(err);
      if (rc == AS_OK && (rc = pg_exec(n->conn, PG_SQL_LOCK, "repair lock", err)) == AS_OK &&
          (rc = table_columns(n, t, true, attnum, err)) == AS_OK &&
          (rc = table_capture(n, t, attnum, err)) == AS_OK)
        rc = pg_exec(n->conn, PG_SQL_COMMIT, "repair commit", err);
      if (rc != AS_OK) pg_rollback_quiet(n->conn);
      free(attnum);
      if (rc == AS_OK) {
        AS_LOG(AS_LOG_WARN, n->comp, "capture triggers of %s were missing (%s): reinstalled",
               t->qname, as_buf_cstr(&gone));
      }
    } else if (gone.len) {
      as_buf_printf(missing, "%striggers of %s (%s)", missing->len ? "; " : "", t->qname,
                    as_buf_cstr(&gone));
    }
    as_buf_free(&gone);
  }
  return rc;
}

/* Logical capture: publication with every mapped table, a usable slot per known consumer. */
static int check_logical(as_node *n, bool repair, as_buf *missing, as_error *err) {
  as_buf pm = AS_BUF_INIT;
  bool exists = false;
  int rc = pub_missing(n, &pm, &exists, err);
  if (rc == AS_OK && (!exists || pm.len)) {
    if (repair) {
      bool changed = false;
      rc = pub_ensure(n, &changed, err);
      if (rc == AS_OK)
        AS_LOG(AS_LOG_WARN, n->comp, "publication %s %s: put back", n->pubname,
               exists ? "lacked tables" : "was missing");
    } else if (!exists) {
      as_buf_printf(missing, "%spublication %s", missing->len ? "; " : "", n->pubname);
    } else {
      as_buf_printf(missing, "%stables of publication %s (%s)", missing->len ? "; " : "",
                    n->pubname, as_buf_cstr(&pm));
    }
  }
  as_buf_free(&pm);
  char *db = NULL;
  if (rc == AS_OK) rc = current_db(n, &db, err);
  for (size_t i = 0; rc == AS_OK && i < n->nconsumers; i++) {
    char *slot = pg_slot_name(n, db, n->consumers[i]);
    PGresult *r = NULL;
    const char *p[1] = {slot};
    rc = slot ? pg_query(n->conn,
                         "SELECT coalesce((SELECT wal_status FROM pg_replication_slots"
                         " WHERE slot_name = $1), 'missing')",
                         1, p, "read replication slots", &r, err)
              : nomem(err);
    if (rc == AS_OK) {
      const char *st = PQgetvalue(r, 0, 0);
      if (strcmp(st, "missing") == 0 || strcmp(st, "lost") == 0) {
        as_buf_printf(missing, "%sreplication slot %s of %s (%s)", missing->len ? "; " : "",
                      slot, n->consumers[i], st);
      }
    }
    PQclear(r);
    free(slot);
  }
  free(db);
  return rc;
}

int pg_check_capture(as_node *n, bool repair, as_error *err) {
  int rc;
  if (!n->conn && (rc = pg_node_connect(n, err)) != AS_OK) return rc;
  if (n->in_txn) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "check: a sink transaction is open");
  as_buf missing = AS_BUF_INIT;
  PGresult *r = NULL;
  if ((rc = pg_query(n->conn, PG_SQL_SCHEMA_EXISTS, 0, NULL, "check", &r, err)) != AS_OK)
    return rc;
  bool schema = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
  PQclear(r);
  if (!schema) {
    return as_error_set(err, AS_DOM_POSTGRES, AS_ENOTFOUND,
                        "node %s: schema arraysync is missing: run install", n->name);
  }
  rc = n->capture == PG_CAPTURE_LOGICAL ? check_logical(n, repair, &missing, err)
                                        : check_triggers(n, repair, &missing, err);
  /* foreign keys a first copy set aside and could not add back (a lock wait timed out) */
  if (rc == AS_OK && repair) rc = pg_bulk_restore(n, NULL, err);
  if (rc == AS_OK && missing.len) {
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ENOTFOUND, "node %s: capture objects missing: %s",
                      n->name, as_buf_cstr(&missing));
  }
  as_buf_free(&missing);
  return rc;
}

int pg_gauges(as_node *n, void (*fn)(void *ctx, const char *metric, const char *consumer,
                                     double value),
              void *ctx, as_error *err) {
  int rc;
  if (!n->conn && (rc = pg_node_connect(n, err)) != AS_OK) return rc;
  if (n->capture != PG_CAPTURE_LOGICAL) return AS_OK;
  PGresult *r = NULL;
  char *db = NULL;
  const char *p[1] = {n->slot_prefix};
  if ((rc = current_db(n, &db, err)) != AS_OK) return rc;
  rc = pg_query(n->conn, PG_SQL_SLOT_RETAINED, 1, p, "read slot retention", &r, err);
  for (int i = 0; rc == AS_OK && i < PQntuples(r); i++) {
    const char *slot = PQgetvalue(r, i, 0), *consumer = slot;
    known_slot(n, db, slot, &consumer);
    fn(ctx, "arraysync_pg_slot_retained_bytes", consumer, strtod(PQgetvalue(r, i, 1), NULL));
  }
  PQclear(r);
  free(db);
  return rc;
}
