/* as_ddl.h — the SQL tables a mapping implies (PostgreSQL and SQLite), and identifier quoting.
 *
 * One statement per table, parent first, then each child table:
 *
 *   CREATE TABLE IF NOT EXISTS "users" (
 *     "id" text NOT NULL,
 *     "email" text NOT NULL,
 *     "extra" jsonb,
 *     PRIMARY KEY ("id")
 *   );
 *
 * Column types: as_schema_pg_type / as_schema_sqlite_type; required (and key) columns are
 * NOT NULL. A child table is its child table schema (as_schema.h, as_child: parent key columns,
 * "position", element columns; key parent key + element key or position) with a foreign key
 * to the parent, ON DELETE CASCADE. Output is appended to `out`. */
#ifndef AS_DDL_H
#define AS_DDL_H

#include "as_buf.h"
#include "as_error.h"
#include "as_schema.h"

/* sql_schema: NULL (unqualified) or a PostgreSQL schema name ("public"). */
int as_ddl_postgres(const as_schema *s, const char *sql_schema, as_buf *out, as_error *err);
int as_ddl_sqlite(const as_schema *s, as_buf *out, as_error *err);

/* The order of a parent's child rows (child table schema tab): "position", then the element
 * key when elements have one, so that two rows at one position (concurrent inserts on a SQL
 * node) come back in the same order from every read; each qualified by alias when given. */
int as_child_order_sql(const as_schema *tab, const char *alias, as_buf *out);

/* Appends name as a double-quoted SQL identifier ('"' doubled). Same rule in PostgreSQL and
 * SQLite. AS_OK or AS_ERR (out of memory). */
int as_sql_quote_ident(const char *name, as_buf *out);

#endif
