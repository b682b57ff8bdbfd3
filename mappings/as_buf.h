/* as_buf.h — a growable byte buffer. */
#ifndef AS_BUF_H
#define AS_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct as_buf {
  uint8_t *data;
  size_t len;
  size_t cap;
} as_buf;

#define AS_BUF_INIT ((as_buf){0})

int as_buf_reserve(as_buf *b, size_t extra);          /* AS_OK or AS_ERR on ENOMEM */
int as_buf_append(as_buf *b, const void *p, size_t n);
int as_buf_append_str(as_buf *b, const char *s);
int as_buf_printf(as_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One byte: inline while there is room (the common case in writers that go byte by byte). */
static inline int as_buf_putc(as_buf *b, uint8_t c) {
  if (b->len + 2 <= b->cap) {
    b->data[b->len++] = c;
    return 0; /* AS_OK */
  }
  return as_buf_append(b, &c, 1);
}
int as_buf_put_be32(as_buf *b, uint32_t v);
int as_buf_put_be64(as_buf *b, uint64_t v);
/* Code point cp (at most 0x10FFFF; not checked) in UTF-8. */
int as_buf_put_utf8(as_buf *b, uint32_t cp);
const char *as_buf_cstr(as_buf *b);   /* NUL-terminates (not counted in len) */
char *as_buf_steal(as_buf *b);        /* returns NUL-terminated data, buffer becomes empty */
void as_buf_reset(as_buf *b);         /* len = 0, keeps memory */
void as_buf_free(as_buf *b);

#endif
