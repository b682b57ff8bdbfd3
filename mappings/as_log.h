/* as_log.h — the one logger: levelled, component-prefixed, text or JSON lines
 * on stderr. Check the level before formatting: use the AS_LOG macro. */
#ifndef AS_LOG_H
#define AS_LOG_H

#include <stdbool.h>

typedef enum as_log_level {
  AS_LOG_ERROR = 0,
  AS_LOG_WARN,
  AS_LOG_INFO,
  AS_LOG_DEBUG,
  AS_LOG_TRACE
} as_log_level;

extern as_log_level as_log_current_level;

void as_log_set_level(as_log_level l);
bool as_log_parse_level(const char *s, as_log_level *out);
void as_log_set_json(bool json);
/* component e.g. "source:postgres:pg", "engine". Secrets must never be passed. */
void as_log_write(as_log_level l, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Replaces a password in a URI/DSN ("mongodb://u:secret@h" -> "mongodb://u:***@h",
 * "password=x" -> "password=***"). Caller frees. */
char *as_log_redact(const char *s);

#define AS_LOG(level, comp, ...)                                   \
  do {                                                             \
    if ((level) <= as_log_current_level) as_log_write((level), (comp), __VA_ARGS__); \
  } while (0)

#endif
