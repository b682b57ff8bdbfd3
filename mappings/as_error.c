#include "as_error.h"

#include <stdio.h>
#include <string.h>

int as_error_setv(as_error *err, int domain, int code, const char *fmt, va_list ap) {
  if (err) {
    err->domain = domain;
    err->code = code;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
  }
  return code;
}

int as_error_set(as_error *err, int domain, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  as_error_setv(err, domain, code, fmt, ap);
  va_end(ap);
  return code;
}

void as_error_prefix(as_error *err, const char *fmt, ...) {
  if (!err) return;
  char prefix[AS_ERROR_MSG_MAX];
  char old[AS_ERROR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, err->message, sizeof old);
  size_t n = strnlen(prefix, sizeof prefix - 1);
  if (n > sizeof err->message - 3) n = sizeof err->message - 3;
  memcpy(err->message, prefix, n);
  memcpy(err->message + n, ": ", 2);
  size_t room = sizeof err->message - n - 3;
  size_t m = strnlen(old, room);
  memcpy(err->message + n + 2, old, m);
  err->message[n + 2 + m] = '\0';
}

void as_error_clear(as_error *err) {
  if (!err) return;
  err->domain = AS_DOM_NONE;
  err->code = AS_OK;
  err->message[0] = '\0';
}
