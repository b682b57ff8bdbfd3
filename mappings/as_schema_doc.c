/* as_schema_doc.c — the keys of a mapping file as a config map (documentation: `arraysync help
 * config` and docs/CONFIG.md print it). as_schema.c parses mapping files; a unit test
 * (test_cfgmap.c) checks that every key it accepts is listed here and nothing else. */
#include "as_cfgmap.h"

static const char *const directions[] = {"both", "to-sql", "to-mongo", NULL};
static const char *const on_errors[] = {"dead-letter", "stop", NULL};
static const char *const on_truncates[] = {"stop", "propagate", "ignore", NULL};
static const char *const strategies[] = {"lww", "vector", "script", NULL};
static const char *const fallbacks[] = {"lww", "script", "keep-local", "keep-remote", NULL};
static const char *const calls[] = {"conflicts", "always", NULL};
static const char *const types[] = {"text",      "int64", "double", "numeric",
                                    "bool",      "uuid",  "objectid", "timestamptz",
                                    "date",      "jsonb", "bytes",   NULL};

static const as_config_entry schema_map[] = {
    AS_DOC(STRING, "mapping", NULL,
           "the mapping's name: unique in a configuration (letters, digits, _, - and .)",
           "users", .required = true),
    AS_DOC(STRING, "collection", "the mapping's name", "the MongoDB collection", "users"),
    AS_DOC(STRING, "table", "the mapping's name", "the SQL table (PostgreSQL, SQLite)",
           "users"),
    AS_DOC(ENUM, "direction", "both",
           "which way changes flow: both, to-sql (MongoDB to the SQL nodes only) or to-mongo",
           "to-sql", .allowed = directions),
    AS_DOC(STRING, "mode", "realtime",
           "realtime (change streams and triggers) or { interval: DURATION } (periodic)",
           "{ interval: 5m }"),
    AS_DOC(DURATION, "mode.interval", NULL, "the period of interval mode (greater than zero)",
           "5m"),
    AS_DOC(LIST, "key", NULL,
           "the column, or list of columns, that identifies a row (usually the one mapped to "
           "_id)",
           "id", .required = true),
    AS_DOC(BOOL, "reloadable", "false", "SIGHUP may reload this mapping without a restart",
           "true"),
    AS_DOC(MAP, "columns", NULL,
           "SQL column name -> { field, type, required }, in table order; at most one column "
           "may map field \"*\" (every field no other column maps, as one jsonb value)",
           "{ id: { field: _id, type: text }, email: { field: email, type: text } }",
           .required = true),
    AS_DOC(STRING, "columns.NAME.field", NULL,
           "the document field, dotted for nested documents (profile.name), or \"*\" for the "
           "catch-all",
           "profile.name", .required = true),
    AS_DOC(ENUM, "columns.NAME.type", NULL,
           "the value type; the SQL type follows from it (aliases such as bigint, varchar, "
           "boolean, timestamp, json are accepted)",
           "timestamptz", .allowed = types, .required = true),
    AS_DOC(BOOL, "columns.NAME.required", "false",
           "a missing or null value is a mapping error (the document goes to the dead letters)",
           "true"),
    AS_DOC(LIST, "children", NULL,
           "arrays of subdocuments as child tables: a list of { table, field, columns, key, "
           "parent_key, children }",
           "[{ table: order_items, field: items, columns: { sku: { field: sku, type: text } } }]"),
    AS_DOC(STRING, "children.table", NULL, "the child table", "order_items"),
    AS_DOC(STRING, "children.field", NULL, "the array field of the parent document", "items"),
    AS_DOC(MAP, "children.columns", NULL,
           "columns of one array element, as in `columns` (fields relative to the element; "
           "\"*\" collects the element's unmapped fields)",
           "{ sku: { field: sku, type: text } }"),
    AS_DOC(STRING, "children.key", NULL,
           "the element column that identifies an element (the child table's key is the parent "
           "key and this column); without it an element is identified by its position",
           "sku"),
    AS_DOC(STRING, "children.parent_key", "<table>_<key column>",
           "the child table's column holding the parent key (a list for a key of several "
           "columns)",
           "order_id"),
    AS_DOC(LIST, "children.children", NULL,
           "nested child tables: arrays inside each element, one level deeper (the same keys; "
           "their parent key is the child table's key: the mapping's key and the element key "
           "or position); two levels at most",
           "[{ table: order_lines, field: lines, columns: { item: { field: item, type: text } } }]"),
    AS_DOC(MAP, "conflict", "{ strategy: lww }", "how concurrent changes of one key resolve",
           "{ strategy: lww, clock: last_updated }"),
    AS_DOC(ENUM, "conflict.strategy", "lww",
           "lww: the latest write wins; vector: version vectors detect true conflicts; script: "
           "a Lua function decides",
           "vector", .allowed = strategies),
    AS_DOC(STRING, "conflict.clock", NULL,
           "lww: a column of type timestamptz or int64 to compare instead of commit times",
           "last_updated"),
    AS_DOC(PATH, "conflict.script", NULL,
           "the Lua resolver for strategy script (or fallback script), relative to the "
           "mapping file",
           "resolvers/users.lua"),
    AS_DOC(ENUM, "conflict.fallback", "lww",
           "vector and script: what decides the value while a conflict is open: lww (the "
           "later write), script, keep-local (the value the key had), keep-remote (the "
           "incoming change)",
           "keep-local",
           .allowed = fallbacks),
    AS_DOC(ENUM, "conflict.call", "conflicts",
           "script: call resolve(mine, theirs, ctx) for conflicts only, or for every change",
           "always", .allowed = calls),
    AS_DOC(ENUM, "on_error", "dead-letter",
           "a document or row that cannot be mapped: dead-letter (kept for `arraysync dlq`) "
           "or stop",
           "stop", .allowed = on_errors),
    AS_DOC(ENUM, "on_truncate", "stop",
           "a TRUNCATE of the mapping's SQL table: stop (the stream stops naming the table; "
           "nothing is lost, restart after choosing), propagate (empty the table on the other "
           "nodes) or ignore (a warning; the other nodes keep their rows)",
           "propagate", .allowed = on_truncates),
    AS_DOC(MAP, "initial_sync", NULL,
           "the first copy of two non-empty sides: where both hold a key with different values, "
           "the preferred node's row stays (else the clock column decides, else the key is "
           "reported as a conflict and left alone); keys already equal are not written",
           "{ prefer: pg }"),
    AS_DOC(STRING, "initial_sync.prefer", NULL, "a node of the mapping", "pg"),
    AS_DOC(MAP, "conflicts", NULL,
           "mirror this mapping's open conflicts into a table of a SQL node, so an application "
           "can show them and settle one by deleting its row (the value in place stays); what "
           "the block leaves out comes from the configuration's conflicts block, else the "
           "first SQL node of the configuration and arraysync_conflicts; off when absent here "
           "and there",
           "{ node: pg, table: user_conflicts }"),
    AS_DOC(STRING, "conflicts.node", NULL, "a SQL node (postgres or sqlite) of the configuration",
           "pg"),
    AS_DOC(STRING, "conflicts.table", NULL, "the table's name (created by `run` when missing; "
           "never synced)", "user_conflicts"),
    AS_OPT_END};

const as_config_entry *as_schema_config_map(void) { return schema_map; }
