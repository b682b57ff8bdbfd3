#include "as_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as_error.h"

int as_buf_reserve(as_buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return AS_OK;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + extra + 1) cap *= 2;
  uint8_t *p = realloc(b->data, cap);
  if (!p) return AS_ERR;
  b->data = p;
  b->cap = cap;
  return AS_OK;
}

int as_buf_append(as_buf *b, const void *p, size_t n) {
  if (as_buf_reserve(b, n) != AS_OK) return AS_ERR;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  return AS_OK;
}

int as_buf_append_str(as_buf *b, const char *s) { return as_buf_append(b, s, strlen(s)); }

/* Formats into the room the buffer has (one pass when it fits, the usual case), else makes
 * room for what the first pass measured and formats again. */
int as_buf_printf(as_buf *b, const char *fmt, ...) {
  if (as_buf_reserve(b, 0) != AS_OK) return AS_ERR;
  va_list ap;
  va_start(ap, fmt);
  size_t room = b->cap - b->len; /* with the terminating NUL */
  int n = vsnprintf((char *)b->data + b->len, room, fmt, ap);
  va_end(ap);
  if (n < 0) return AS_ERR;
  if ((size_t)n >= room) {
    if (as_buf_reserve(b, (size_t)n) != AS_OK) return AS_ERR;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  b->len += (size_t)n;
  return AS_OK;
}

int as_buf_put_be32(as_buf *b, uint32_t v) {
  uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
  return as_buf_append(b, x, 4);
}

int as_buf_put_be64(as_buf *b, uint64_t v) {
  uint8_t x[8];
  for (int i = 7; i >= 0; i--) {
    x[i] = (uint8_t)v;
    v >>= 8;
  }
  return as_buf_append(b, x, 8);
}

const char *as_buf_cstr(as_buf *b) {
  if (as_buf_reserve(b, 0) != AS_OK) return NULL;
  b->data[b->len] = '\0';
  return (const char *)b->data;
}

char *as_buf_steal(as_buf *b) {
  if (!as_buf_cstr(b)) return NULL;
  char *p = (char *)b->data;
  *b = (as_buf)AS_BUF_INIT;
  return p;
}

void as_buf_reset(as_buf *b) { b->len = 0; }

void as_buf_free(as_buf *b) {
  if (!b) return;
  free(b->data);
  *b = (as_buf)AS_BUF_INIT;
}

int as_buf_put_utf8(as_buf *b, uint32_t cp) {
  uint8_t u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (uint8_t)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (uint8_t)(0xc0 | cp >> 6);
    u[1] = (uint8_t)(0x80 | (cp & 0x3f));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (uint8_t)(0xe0 | cp >> 12);
    u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    u[2] = (uint8_t)(0x80 | (cp & 0x3f));
    n = 3;
  } else {
    u[0] = (uint8_t)(0xf0 | cp >> 18);
    u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    u[3] = (uint8_t)(0x80 | (cp & 0x3f));
    n = 4;
  }
  return as_buf_append(b, u, n);
}
