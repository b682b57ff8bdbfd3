/* as_error.h — return codes and the error record shared by every floor.
 *
 * Convention: 0 is success, negative values are expected outcomes,
 * details go into an as_error passed by the caller (like bson_error_t). */
#ifndef AS_ERROR_H
#define AS_ERROR_H

#include <stdarg.h>
#include <stddef.h>

enum {
  AS_OK = 0,
  AS_ERR = -1,        /* permanent failure; message in as_error */
  AS_RETRY = -2,      /* transient failure: the engine retries with backoff */
  AS_ENOTFOUND = -3,  /* looked-up thing does not exist */
  AS_CONFLICT = -4,   /* concurrent change detected */
  AS_EOF = -5,        /* stream or scan finished */
  AS_EINVAL = -6,     /* bad input (config, mapping, value): permanent, user must fix */
  AS_EDATA = -7,      /* one row/document cannot be mapped or applied: dead-letter it */
  AS_ERESNAPSHOT = -8 /* a stream cannot continue (change history lost, collection dropped)
                         and the node is configured to re-snapshot: the engine copies the
                         mappings again, then streams from a new position (adapter.h) */
};

typedef enum as_error_domain {
  AS_DOM_NONE = 0,
  AS_DOM_CONFIG,   /* YAML / top-level config / mapping files */
  AS_DOM_MAPPING,  /* document <-> row conversion */
  AS_DOM_CODEC,    /* JSON / binary codec */
  AS_DOM_IO,
  AS_DOM_MONGO,
  AS_DOM_POSTGRES,
  AS_DOM_SQLITE,
  AS_DOM_STATE,
  AS_DOM_ENGINE,
  AS_DOM_SCRIPT
} as_error_domain;

/* A result that must be looked at: ignoring it fails the build (-Werror). */
#define AS_MUSTCHECK __attribute__((warn_unused_result))

#define AS_ERROR_MSG_MAX 1024

typedef struct as_error {
  int domain;                      /* as_error_domain */
  int code;                        /* AS_* code or the native code (SQLSTATE as int, mongo code) */
  char message[AS_ERROR_MSG_MAX];  /* human readable, never contains secrets */
} as_error;

/* Sets err (NULL-safe) and returns code, so callers can `return as_error_set(...)`. */
int as_error_set(as_error *err, int domain, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int as_error_setv(as_error *err, int domain, int code, const char *fmt, va_list ap);
/* Prepends "prefix: " to an existing message. */
void as_error_prefix(as_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void as_error_clear(as_error *err);

#endif
