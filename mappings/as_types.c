/* as_types.c — type names, mapping-file aliases, and the SQL types each type maps to. */
#include <string.h>
#include <strings.h>

#include "as_schema.h"
#include "as_value.h"

static const char *const type_names[AS_T__COUNT] = {
    "null", "bool", "int64", "double", "decimal", "text",
    "bytes", "uuid", "objectid", "timestamp", "date", "json"};

const char *as_type_name(as_type t) {
  return (t >= 0 && t < AS_T__COUNT) ? type_names[t] : "?";
}

static const struct {
  const char *name;
  as_type type;
} aliases[] = {
    {"bool", AS_T_BOOL},          {"boolean", AS_T_BOOL},
    {"int64", AS_T_INT64},        {"int", AS_T_INT64},
    {"integer", AS_T_INT64},      {"bigint", AS_T_INT64},
    {"int8", AS_T_INT64},         {"int4", AS_T_INT64},
    {"int32", AS_T_INT64},        {"smallint", AS_T_INT64},
    {"long", AS_T_INT64},         {"double", AS_T_DOUBLE},
    {"float", AS_T_DOUBLE},       {"float8", AS_T_DOUBLE},
    {"double precision", AS_T_DOUBLE}, {"real", AS_T_DOUBLE},
    {"number", AS_T_DOUBLE},      {"decimal", AS_T_DECIMAL},
    {"numeric", AS_T_DECIMAL},    {"decimal128", AS_T_DECIMAL},
    {"text", AS_T_TEXT},          {"string", AS_T_TEXT},
    {"varchar", AS_T_TEXT},       {"char", AS_T_TEXT},
    {"bytes", AS_T_BYTES},        {"bytea", AS_T_BYTES},
    {"blob", AS_T_BYTES},         {"binary", AS_T_BYTES},
    {"uuid", AS_T_UUID},          {"objectid", AS_T_OBJECTID},
    {"oid", AS_T_OBJECTID},       {"timestamp", AS_T_TIMESTAMP},
    {"timestamptz", AS_T_TIMESTAMP}, {"datetime", AS_T_TIMESTAMP},
    {"date", AS_T_DATE},          {"json", AS_T_JSON},
    {"jsonb", AS_T_JSON},         {"object", AS_T_JSON},
    {"array", AS_T_JSON},
};

bool as_type_parse(const char *name, as_type *out) {
  if (!name) return false;
  for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
    if (strcasecmp(name, aliases[i].name) == 0) {
      *out = aliases[i].type;
      return true;
    }
  }
  return false;
}

const char *as_schema_pg_type(as_type t) {
  switch (t) {
    case AS_T_BOOL: return "boolean";
    case AS_T_INT64: return "bigint";
    case AS_T_DOUBLE: return "double precision";
    case AS_T_DECIMAL: return "numeric";
    case AS_T_TEXT: return "text";
    case AS_T_BYTES: return "bytea";
    case AS_T_UUID: return "uuid";
    case AS_T_OBJECTID: return "text";
    case AS_T_TIMESTAMP: return "timestamptz(3)"; /* MongoDB dates hold milliseconds */
    case AS_T_DATE: return "date";
    case AS_T_JSON: return "jsonb";
    default: return "text";
  }
}

const char *as_schema_sqlite_type(as_type t) {
  switch (t) {
    case AS_T_BOOL: return "INTEGER";
    case AS_T_INT64: return "INTEGER";
    case AS_T_DOUBLE: return "REAL";
    case AS_T_DECIMAL: return "TEXT"; /* exact decimal text; TEXT affinity keeps it exact */
    case AS_T_TEXT: return "TEXT";
    case AS_T_BYTES: return "BLOB";
    case AS_T_UUID: return "TEXT";
    case AS_T_OBJECTID: return "TEXT";
    case AS_T_TIMESTAMP: return "TEXT";
    case AS_T_DATE: return "TEXT";
    case AS_T_JSON: return "TEXT";
    default: return "TEXT";
  }
}
