#include "as_error.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "as_utf8.h"

/* Messages are UTF-8 text (logs, `dlq list --json`, metrics): a byte that is not part of a
 * valid sequence (a field name or value quoted from the data) becomes the four characters
 * \xNN; a sequence cut by the message's size limit is dropped. */
static void utf8_clean(char *m, size_t cap) {
  const uint8_t *p = (const uint8_t *)m, *e = p + strlen(m);
  const uint8_t *q = p;
  size_t k;
  while (q < e && (k = *q < 0x80 ? 1 : as_utf8_seq(q, e)) != 0) q += k;
  if (q == e) return;
  char out[AS_ERROR_MSG_MAX];
  size_t o = 0, room = cap < sizeof out ? cap : sizeof out;
  for (q = p; q < e;) {
    k = *q < 0x80 ? 1 : as_utf8_seq(q, e);
    bool cut = k == 0 && e - q < 4 && *q >= 0xC2 && *q <= 0xF4 && (size_t)(e - p) + 1 >= cap;
    if (cut) break; /* the tail of a sequence vsnprintf left out */
    size_t need = k ? k : 4;
    if (o + need + 1 > room) break;
    if (k) {
      memcpy(out + o, q, k);
    } else {
      snprintf(out + o, 5, "\\x%02X", *q);
      k = 1;
    }
    o += need;
    q += k;
  }
  out[o] = '\0';
  memcpy(m, out, o + 1);
}

int as_error_setv(as_error *err, int domain, int code, const char *fmt, va_list ap) {
  if (err) {
    err->domain = domain;
    err->code = code;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    utf8_clean(err->message, sizeof err->message);
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
  utf8_clean(err->message, sizeof err->message);
}

void as_error_clear(as_error *err) {
  if (!err) return;
  err->domain = AS_DOM_NONE;
  err->code = AS_OK;
  err->message[0] = '\0';
}
