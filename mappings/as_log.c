#include "as_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

as_log_level as_log_current_level = AS_LOG_INFO;
static bool log_json = false;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

void as_log_set_level(as_log_level l) { as_log_current_level = l; }
void as_log_set_json(bool json) { log_json = json; }

bool as_log_parse_level(const char *s, as_log_level *out) {
  for (int i = 0; i <= AS_LOG_TRACE; i++) {
    if (strcmp(s, level_names[i]) == 0) {
      *out = (as_log_level)i;
      return true;
    }
  }
  if (strcmp(s, "warning") == 0) {
    *out = AS_LOG_WARN;
    return true;
  }
  return false;
}

void as_log_write(as_log_level l, const char *component, const char *fmt, ...) {
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[64];
  snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000,
           (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
           tm.tm_sec % 100, (int)(ts.tv_nsec / 1000000) % 1000);
  pthread_mutex_lock(&log_mu);
  if (log_json) {
    json_t *j = json_pack("{s:s,s:s,s:s,s:s}", "time", when, "level", level_names[l],
                          "component", component ? component : "", "msg", msg);
    char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (line) fprintf(stderr, "%s\n", line);
    free(line);
    json_decref(j);
  } else {
    fprintf(stderr, "%s %-5s [%s] %s\n", when, level_names[l], component ? component : "", msg);
  }
  fflush(stderr);
  pthread_mutex_unlock(&log_mu);
}

char *as_log_redact(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s);
  char *out = malloc(n + 4 * 8 + 1);
  if (!out) return NULL;
  strcpy(out, s);
  /* URI user:password@ */
  char *scheme = strstr(out, "://");
  if (scheme) {
    char *auth = scheme + 3;
    char *at = strchr(auth, '@');
    char *slash = strchr(auth, '/');
    if (at && (!slash || at < slash)) {
      char *colon = memchr(auth, ':', (size_t)(at - auth));
      if (colon) {
        memmove(colon + 4, at, strlen(at) + 1);
        memcpy(colon + 1, "***", 3);
      }
    }
  }
  /* key=value DSNs: password=... */
  char *p = out;
  while ((p = strstr(p, "password=")) != NULL) {
    char *v = p + 9;
    char *end = v;
    if (*v == '\'') {
      end = strchr(v + 1, '\'');
      end = end ? end + 1 : v + strlen(v);
    } else {
      while (*end && *end != ' ' && *end != '&') end++;
    }
    memmove(v + 3, end, strlen(end) + 1);
    memcpy(v, "***", 3);
    p = v + 3;
  }
  return out;
}
