/* pg_mirror.c — the conflicts mirror table on PostgreSQL (adapter.h, mirror_*): a plain table in
 * the node's schema, outside the publication and without triggers, written on the sink's
 * connection between its transactions. */
#include "pg_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* sql with its one "%s" replaced by the table's name (caller frees; NULL: out of memory) */
static char *with(const char *sql, const char *qt) {
  const char *at = strstr(sql, "%s");
  as_buf b = AS_BUF_INIT;
  if (!at || as_buf_append(&b, sql, (size_t)(at - sql)) != AS_OK ||
      as_buf_append_str(&b, qt) != AS_OK || as_buf_append_str(&b, at + 2) != AS_OK) {
    as_buf_free(&b);
    return NULL;
  }
  return as_buf_steal(&b);
}

/* "schema"."table" (caller frees) */
static char *qualified(as_node *n, const char *table) {
  char *qt = pg_quote_ident(table);
  as_buf b = AS_BUF_INIT;
  char *out = NULL;
  if (qt && as_buf_printf(&b, "%s.%s", n->qschema, qt) == AS_OK) out = as_buf_steal(&b);
  as_buf_free(&b);
  free(qt);
  return out;
}

static int ready(as_node *n, const char *table, char **qt, as_error *err) {
  int rc = n->conn ? AS_OK : pg_node_connect(n, err);
  if (rc != AS_OK) return rc;
  if (!(*qt = qualified(n, table))) return as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  return AS_OK;
}

int pg_mirror_ensure(as_node *n, const char *table, as_error *err) {
  char *qt = NULL, *sql = NULL;
  int rc = ready(n, table, &qt, err);
  if (rc != AS_OK) return rc;
  sql = with("CREATE TABLE IF NOT EXISTS %s (id bigint PRIMARY KEY, mapping text NOT NULL, "
               "key jsonb NOT NULL, strategy text, columns jsonb, chosen text, local_node text, "
               "local_row jsonb, remote_node text, remote_row jsonb, created timestamptz)", qt);
  rc = sql ? pg_exec(n->conn, sql, "create the conflicts mirror table", err)
           : as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  free(sql);
  free(qt);
  return rc;
}

int pg_mirror_ids(as_node *n, const char *table, int64_t **ids, size_t *nids, as_error *err) {
  char *qt = NULL, *sql = NULL;
  PGresult *r = NULL;
  *ids = NULL;
  *nids = 0;
  int rc = ready(n, table, &qt, err);
  if (rc != AS_OK) return rc;
  sql = with("SELECT id FROM %s ORDER BY id", qt);
  rc = sql ? pg_query(n->conn, sql, 0, NULL, "read the conflicts mirror table", &r, err)
           : as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  int nt = rc == AS_OK ? PQntuples(r) : 0;
  if (rc == AS_OK && nt > 0 && !(*ids = malloc((size_t)nt * sizeof **ids)))
    rc = as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  for (int i = 0; rc == AS_OK && i < nt; i++) (*ids)[(*nids)++] = strtoll(PQgetvalue(r, i, 0), NULL, 10);
  PQclear(r);
  free(sql);
  free(qt);
  return rc;
}

int pg_mirror_put(as_node *n, const char *table, const as_mirror_row *m, as_error *err) {
  char *qt = NULL, *sql = NULL;
  int rc = ready(n, table, &qt, err);
  if (rc != AS_OK) return rc;
  char id[24], created[32];
  snprintf(id, sizeof id, "%" PRId64, m->id);
  snprintf(created, sizeof created, "%.6f", (double)m->created_us / 1e6);
  const char *params[11] = {id, m->mapping, m->key_json, m->strategy, m->columns_json, m->chosen,
                            m->local_node, m->local_row_json, m->remote_node, m->remote_row_json,
                            created};
  sql = with("INSERT INTO %s (id, mapping, key, strategy, columns, chosen, local_node, "
               "local_row, remote_node, remote_row, created) VALUES ($1::bigint, $2, $3::jsonb, "
               "$4, $5::jsonb, $6, $7, $8::jsonb, $9, $10::jsonb, to_timestamp($11::float8)) "
               "ON CONFLICT (id) DO NOTHING", qt);
  PGresult *r = NULL;
  rc = sql ? pg_query(n->conn, sql, 11, params, "write the conflicts mirror table", &r, err)
           : as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  PQclear(r);
  free(sql);
  free(qt);
  return rc;
}

int pg_mirror_del(as_node *n, const char *table, int64_t id, as_error *err) {
  char *qt = NULL, *sql = NULL;
  int rc = ready(n, table, &qt, err);
  if (rc != AS_OK) return rc;
  char ids[24];
  snprintf(ids, sizeof ids, "%" PRId64, id);
  const char *params[1] = {ids};
  sql = with("DELETE FROM %s WHERE id = $1::bigint", qt);
  PGresult *r = NULL;
  rc = sql ? pg_query(n->conn, sql, 1, params, "delete from the conflicts mirror table", &r, err)
           : as_error_set(err, AS_DOM_POSTGRES, AS_ERR, "out of memory");
  PQclear(r);
  free(sql);
  free(qt);
  return rc;
}
