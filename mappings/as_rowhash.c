/* as_rowhash.c — MD5, MongoDB's $toHashedIndexKey, the canonical row text and PostgreSQL's
 * jsonb text form (see as_rowhash.h). */
#include "as_rowhash.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "as_children.h"
#include "as_hash.h"

/* ---------------------------------------------------------------- MD5 (RFC 1321) */

static const uint32_t md5_k[64] = {
    0xd76aa478u, 0xe8c7b756u, 0x242070dbu, 0xc1bdceeeu, 0xf57c0fafu, 0x4787c62au, 0xa8304613u,
    0xfd469501u, 0x698098d8u, 0x8b44f7afu, 0xffff5bb1u, 0x895cd7beu, 0x6b901122u, 0xfd987193u,
    0xa679438eu, 0x49b40821u, 0xf61e2562u, 0xc040b340u, 0x265e5a51u, 0xe9b6c7aau, 0xd62f105du,
    0x02441453u, 0xd8a1e681u, 0xe7d3fbc8u, 0x21e1cde6u, 0xc33707d6u, 0xf4d50d87u, 0x455a14edu,
    0xa9e3e905u, 0xfcefa3f8u, 0x676f02d9u, 0x8d2a4c8au, 0xfffa3942u, 0x8771f681u, 0x6d9d6122u,
    0xfde5380cu, 0xa4beea44u, 0x4bdecfa9u, 0xf6bb4b60u, 0xbebfbc70u, 0x289b7ec6u, 0xeaa127fau,
    0xd4ef3085u, 0x04881d05u, 0xd9d4d039u, 0xe6db99e5u, 0x1fa27cf8u, 0xc4ac5665u, 0xf4292244u,
    0x432aff97u, 0xab9423a7u, 0xfc93a039u, 0x655b59c3u, 0x8f0ccc92u, 0xffeff47du, 0x85845dd1u,
    0x6fa87e4fu, 0xfe2ce6e0u, 0xa3014314u, 0x4e0811a1u, 0xf7537e82u, 0xbd3af235u, 0x2ad7d2bbu,
    0xeb86d391u};

static inline uint32_t rotl32(uint32_t x, unsigned c) { return (x << c) | (x >> (32 - c)); }

/* The four rounds of RFC 1321, section 3.4, one step per macro. */
#define MD5_F(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define MD5_G(x, y, z) ((y) ^ ((z) & ((x) ^ (y))))
#define MD5_H(x, y, z) ((x) ^ (y) ^ (z))
#define MD5_I(x, y, z) ((y) ^ ((x) | ~(z)))
#define MD5_STEP(f, a, b, c, d, xk, t, s) (a) = (b) + rotl32((a) + f((b), (c), (d)) + (xk) + (t), (s))

static void md5_block(uint32_t st[4], const uint8_t *p) {
  uint32_t w[16];
  for (int i = 0; i < 16; i++) {
    w[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
           (uint32_t)p[4 * i + 3] << 24;
  }
  uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
  for (int i = 0; i < 16; i += 4) {
    MD5_STEP(MD5_F, a, b, c, d, w[i], md5_k[i], 7);
    MD5_STEP(MD5_F, d, a, b, c, w[i + 1], md5_k[i + 1], 12);
    MD5_STEP(MD5_F, c, d, a, b, w[i + 2], md5_k[i + 2], 17);
    MD5_STEP(MD5_F, b, c, d, a, w[i + 3], md5_k[i + 3], 22);
  }
  for (int i = 16; i < 32; i += 4) {
    MD5_STEP(MD5_G, a, b, c, d, w[(5 * i + 1) & 15], md5_k[i], 5);
    MD5_STEP(MD5_G, d, a, b, c, w[(5 * i + 6) & 15], md5_k[i + 1], 9);
    MD5_STEP(MD5_G, c, d, a, b, w[(5 * i + 11) & 15], md5_k[i + 2], 14);
    MD5_STEP(MD5_G, b, c, d, a, w[(5 * i + 16) & 15], md5_k[i + 3], 20);
  }
  for (int i = 32; i < 48; i += 4) {
    MD5_STEP(MD5_H, a, b, c, d, w[(3 * i + 5) & 15], md5_k[i], 4);
    MD5_STEP(MD5_H, d, a, b, c, w[(3 * i + 8) & 15], md5_k[i + 1], 11);
    MD5_STEP(MD5_H, c, d, a, b, w[(3 * i + 11) & 15], md5_k[i + 2], 16);
    MD5_STEP(MD5_H, b, c, d, a, w[(3 * i + 14) & 15], md5_k[i + 3], 23);
  }
  for (int i = 48; i < 64; i += 4) {
    MD5_STEP(MD5_I, a, b, c, d, w[(7 * i) & 15], md5_k[i], 6);
    MD5_STEP(MD5_I, d, a, b, c, w[(7 * i + 7) & 15], md5_k[i + 1], 10);
    MD5_STEP(MD5_I, c, d, a, b, w[(7 * i + 14) & 15], md5_k[i + 2], 15);
    MD5_STEP(MD5_I, b, c, d, a, w[(7 * i + 21) & 15], md5_k[i + 3], 21);
  }
  st[0] += a;
  st[1] += b;
  st[2] += c;
  st[3] += d;
}

void as_md5_init(as_md5 *m) {
  m->st[0] = 0x67452301u;
  m->st[1] = 0xefcdab89u;
  m->st[2] = 0x98badcfeu;
  m->st[3] = 0x10325476u;
  m->nbytes = 0;
  m->nblock = 0;
}

void as_md5_update(as_md5 *m, const void *data, size_t n) {
  const uint8_t *p = data;
  m->nbytes += n;
  if (m->nblock) {
    size_t take = 64 - m->nblock < n ? 64 - m->nblock : n;
    memcpy(m->block + m->nblock, p, take);
    m->nblock += take;
    p += take;
    n -= take;
    if (m->nblock < 64) return;
    md5_block(m->st, m->block);
    m->nblock = 0;
  }
  for (; n >= 64; n -= 64, p += 64) md5_block(m->st, p);
  memcpy(m->block, p, n);
  m->nblock = n;
}

void as_md5_final(as_md5 *m, uint8_t digest[16]) {
  uint64_t bits = m->nbytes * 8;
  uint8_t pad[72] = {0x80};
  size_t npad = m->nblock < 56 ? 56 - m->nblock : 120 - m->nblock;
  for (int i = 0; i < 8; i++) pad[npad + (size_t)i] = (uint8_t)(bits >> (8 * i));
  as_md5_update(m, pad, npad + 8);
  for (int i = 0; i < 4; i++) {
    for (int j = 0; j < 4; j++) digest[4 * i + j] = (uint8_t)(m->st[i] >> (8 * j));
  }
}

/* ---------------------------------------------------------------- $toHashedIndexKey */

static void put_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static int64_t digest_le64(const uint8_t d[16]) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | d[i];
  return (int64_t)v;
}

int64_t as_mongo_hash_string(const char *s, size_t n) {
  uint8_t head[12], nul = 0, d[16];
  put_le32(head, 0);
  put_le32(head + 4, 15);
  put_le32(head + 8, (uint32_t)(n + 1));
  as_md5 m;
  as_md5_init(&m);
  as_md5_update(&m, head, sizeof head);
  as_md5_update(&m, s, n);
  as_md5_update(&m, &nul, 1);
  as_md5_final(&m, d);
  return digest_le64(d);
}

int64_t as_mongo_hash_binary(uint8_t subtype, const uint8_t *p, size_t n) {
  uint8_t head[13], d[16];
  put_le32(head, 0);
  put_le32(head + 4, 30);
  put_le32(head + 8, (uint32_t)n);
  head[12] = subtype;
  as_md5 m;
  as_md5_init(&m);
  as_md5_update(&m, head, sizeof head);
  as_md5_update(&m, p, n);
  as_md5_final(&m, d);
  return digest_le64(d);
}

/* ---------------------------------------------------------------- jsonb text */

typedef struct jmember {
  size_t koff, klen; /* decoded key bytes in the level's scratch */
  size_t voff, vlen; /* rendered value text in the level's scratch */
  size_t idx;        /* input order (the last of duplicate keys wins) */
} jmember;

/* Per depth: a buffer for the members of an object being sorted and their index (stable
 * pointers: a level is in use while deeper ones are added). Kept between calls. */
struct as_jsonb_scratch {
  as_buf **levels;
  jmember **mem;
  size_t *memcap;
  size_t nlevels;
};

typedef struct jparser {
  const char *s;
  size_t n, i;
  as_jsonb_scratch *sc;
  int depth;
  const char *why;
} jparser;

as_jsonb_scratch *as_jsonb_scratch_new(void) { return calloc(1, sizeof(as_jsonb_scratch)); }

void as_jsonb_scratch_free(as_jsonb_scratch *sc) {
  if (!sc) return;
  for (size_t i = 0; i < sc->nlevels; i++) {
    if (sc->levels[i]) as_buf_free(sc->levels[i]);
    free(sc->levels[i]);
    free(sc->mem[i]);
  }
  free(sc->levels);
  free(sc->mem);
  free(sc->memcap);
  free(sc);
}

static void skip_ws(jparser *p) {
  while (p->i < p->n) {
    char c = p->s[p->i];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    p->i++;
  }
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int read_u4(jparser *p, uint32_t *out) {
  if (p->n - p->i < 4) return AS_EINVAL;
  uint32_t v = 0;
  for (int k = 0; k < 4; k++) {
    int h = hexval(p->s[p->i + (size_t)k]);
    if (h < 0) return AS_EINVAL;
    v = v << 4 | (uint32_t)h;
  }
  p->i += 4;
  *out = v;
  return AS_OK;
}

/* Decodes the string at p->i (on the opening quote) into dst. */
static int read_string(jparser *p, as_buf *dst) {
  p->i++;
  size_t st = p->i;
  while (p->i < p->n) {
    unsigned char c = (unsigned char)p->s[p->i];
    if (c == '"') {
      if (as_buf_append(dst, p->s + st, p->i - st) != AS_OK) return AS_ERR;
      p->i++;
      return AS_OK;
    }
    if (c < 0x20) {
      p->why = "control character in a string";
      return AS_EINVAL;
    }
    if (c != '\\') {
      p->i++;
      continue;
    }
    if (as_buf_append(dst, p->s + st, p->i - st) != AS_OK) return AS_ERR;
    if (++p->i >= p->n) break;
    char e = p->s[p->i++];
    int rc = AS_OK;
    switch (e) {
      case '"': rc = as_buf_putc(dst, '"'); break;
      case '\\': rc = as_buf_putc(dst, '\\'); break;
      case '/': rc = as_buf_putc(dst, '/'); break;
      case 'b': rc = as_buf_putc(dst, '\b'); break;
      case 'f': rc = as_buf_putc(dst, '\f'); break;
      case 'n': rc = as_buf_putc(dst, '\n'); break;
      case 'r': rc = as_buf_putc(dst, '\r'); break;
      case 't': rc = as_buf_putc(dst, '\t'); break;
      case 'u': {
        uint32_t cp, lo;
        if (read_u4(p, &cp) != AS_OK) {
          p->why = "bad \\u escape";
          return AS_EINVAL;
        }
        if (cp >= 0xdc00 && cp <= 0xdfff) {
          p->why = "lone low surrogate";
          return AS_EINVAL;
        }
        if (cp >= 0xd800 && cp <= 0xdbff) {
          if (p->n - p->i < 6 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') {
            p->why = "lone high surrogate";
            return AS_EINVAL;
          }
          p->i += 2;
          if (read_u4(p, &lo) != AS_OK || lo < 0xdc00 || lo > 0xdfff) {
            p->why = "bad surrogate pair";
            return AS_EINVAL;
          }
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        if (cp == 0) {
          p->why = "\\u0000 cannot be converted to text";
          return AS_EINVAL;
        }
        rc = as_buf_put_utf8(dst, cp);
        break;
      }
      default: p->why = "bad escape"; return AS_EINVAL;
    }
    if (rc != AS_OK) return AS_ERR;
    st = p->i;
  }
  p->why = "unterminated string";
  return AS_EINVAL;
}

/* Writes bytes as a JSON string the way PostgreSQL's escape_json does. */
static int write_string(as_buf *out, const uint8_t *s, size_t n) {
  static const char hexd[] = "0123456789abcdef";
  if (as_buf_reserve(out, n + 2) != AS_OK || as_buf_putc(out, '"') != AS_OK) return AS_ERR;
  size_t st = 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t c = s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    if (as_buf_append(out, s + st, i - st) != AS_OK) return AS_ERR;
    st = i + 1;
    char e[7] = {'\\', 0};
    size_t el = 2;
    switch (c) {
      case '"': e[1] = '"'; break;
      case '\\': e[1] = '\\'; break;
      case '\b': e[1] = 'b'; break;
      case '\f': e[1] = 'f'; break;
      case '\n': e[1] = 'n'; break;
      case '\r': e[1] = 'r'; break;
      case '\t': e[1] = 't'; break;
      default:
        memcpy(e, "\\u00", 4);
        e[4] = hexd[c >> 4];
        e[5] = hexd[c & 15];
        el = 6;
        break;
    }
    if (as_buf_append(out, e, el) != AS_OK) return AS_ERR;
  }
  if (as_buf_append(out, s + st, n - st) != AS_OK || as_buf_putc(out, '"') != AS_OK)
    return AS_ERR;
  return AS_OK;
}

static int render(jparser *p, as_buf *out);

static int lit(jparser *p, const char *w, as_buf *out) {
  size_t n = strlen(w);
  if (p->n - p->i < n || memcmp(p->s + p->i, w, n) != 0) {
    p->why = "unexpected character";
    return AS_EINVAL;
  }
  p->i += n;
  return as_buf_append(out, w, n) == AS_OK ? AS_OK : AS_ERR;
}

static int number(jparser *p, as_buf *out) {
  size_t st = p->i;
  if (p->i < p->n && p->s[p->i] == '-') p->i++;
  size_t d0 = p->i;
  while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
  if (p->i == d0 || (p->s[d0] == '0' && p->i - d0 > 1)) {
    p->why = "bad number";
    return AS_EINVAL;
  }
  if (p->i < p->n && p->s[p->i] == '.') {
    size_t f0 = ++p->i;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    if (p->i == f0) {
      p->why = "bad number";
      return AS_EINVAL;
    }
  }
  if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
    p->i++;
    if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
    size_t e0 = p->i;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    if (p->i == e0) {
      p->why = "bad number";
      return AS_EINVAL;
    }
  }
  int rc = as_json_number_canon(p->s + st, p->i - st, out);
  if (rc == AS_EINVAL) p->why = "number out of range";
  return rc;
}

static int cmp_member(const void *a, const void *b, void *ctx) {
  const jmember *x = a, *y = b;
  const uint8_t *base = ctx;
  if (x->klen != y->klen) return x->klen < y->klen ? -1 : 1;
  int c = memcmp(base + x->koff, base + y->koff, x->klen);
  if (c) return c;
  return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

static void insertion_sort(jmember *m, size_t n, const uint8_t *base) {
  for (size_t i = 1; i < n; i++) {
    jmember t = m[i];
    size_t j = i;
    while (j > 0 && cmp_member(&m[j - 1], &t, (void *)base) > 0) {
      m[j] = m[j - 1];
      j--;
    }
    m[j] = t;
  }
}

/* qsort with a context, as a small insertion/merge sort (qsort_r is not in C11). */
static void sort_members(jmember *m, size_t n, const uint8_t *base) {
  if (n < 2) return;
  if (n <= 16) {
    insertion_sort(m, n, base);
    return;
  }
  size_t h = n / 2;
  sort_members(m, h, base);
  sort_members(m + h, n - h, base);
  jmember *tmp = malloc(n * sizeof *tmp);
  if (!tmp) { /* fall back to insertion (still correct) */
    insertion_sort(m, n, base);
    return;
  }
  size_t i = 0, j = h, k = 0;
  while (i < h && j < n) tmp[k++] = cmp_member(&m[i], &m[j], (void *)base) <= 0 ? m[i++] : m[j++];
  while (i < h) tmp[k++] = m[i++];
  while (j < n) tmp[k++] = m[j++];
  memcpy(m, tmp, n * sizeof *tmp);
  free(tmp);
}

static as_buf *level_buf(jparser *p) {
  as_jsonb_scratch *sc = p->sc;
  size_t d = (size_t)p->depth;
  if (d >= sc->nlevels) {
    size_t nn = d + 8;
    as_buf **nl = realloc(sc->levels, nn * sizeof *nl);
    if (nl) sc->levels = nl;
    jmember **nm = nl ? realloc(sc->mem, nn * sizeof *nm) : NULL;
    if (nm) sc->mem = nm;
    size_t *nc = nm ? realloc(sc->memcap, nn * sizeof *nc) : NULL;
    if (!nc) return NULL;
    sc->memcap = nc;
    for (size_t i = sc->nlevels; i < nn; i++) {
      nl[i] = NULL;
      nm[i] = NULL;
      nc[i] = 0;
    }
    sc->nlevels = nn;
  }
  if (!sc->levels[d] && !(sc->levels[d] = calloc(1, sizeof(as_buf)))) return NULL;
  as_buf_reset(sc->levels[d]);
  return sc->levels[d];
}

static int object(jparser *p, as_buf *out) {
  p->i++;
  as_buf *lv = level_buf(p);
  size_t lvl = (size_t)p->depth;
  jmember *m = lv ? p->sc->mem[lvl] : NULL;
  size_t nm = 0, cap = lv ? p->sc->memcap[lvl] : 0;
  int rc = AS_OK;
  if (!lv) return AS_ERR;
  p->depth++;
  skip_ws(p);
  if (p->i < p->n && p->s[p->i] == '}') {
    p->i++;
    p->depth--;
    return as_buf_append(out, "{}", 2) == AS_OK ? AS_OK : AS_ERR;
  }
  for (;;) {
    skip_ws(p);
    if (p->i >= p->n || p->s[p->i] != '"') {
      p->why = "expected a key";
      rc = AS_EINVAL;
      goto done;
    }
    if (nm == cap) {
      cap = cap ? cap * 2 : 8;
      jmember *nmem = realloc(m, cap * sizeof *m);
      if (!nmem) {
        rc = AS_ERR;
        goto done;
      }
      m = p->sc->mem[lvl] = nmem;
      p->sc->memcap[lvl] = cap;
    }
    jmember *x = &m[nm];
    x->idx = nm;
    x->koff = lv->len;
    if ((rc = read_string(p, lv)) != AS_OK) goto done;
    x->klen = lv->len - x->koff;
    skip_ws(p);
    if (p->i >= p->n || p->s[p->i] != ':') {
      p->why = "expected ':'";
      rc = AS_EINVAL;
      goto done;
    }
    p->i++;
    x->voff = lv->len;
    if ((rc = render(p, lv)) != AS_OK) goto done;
    x->vlen = lv->len - x->voff;
    nm++;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == ',') {
      p->i++;
      continue;
    }
    if (p->i < p->n && p->s[p->i] == '}') {
      p->i++;
      break;
    }
    p->why = "expected ',' or '}'";
    rc = AS_EINVAL;
    goto done;
  }
  sort_members(m, nm, lv->data);
  if (as_buf_putc(out, '{') != AS_OK) {
    rc = AS_ERR;
    goto done;
  }
  bool first = true;
  for (size_t k = 0; k < nm; k++) {
    /* equal keys are adjacent, in input order: keep the last */
    if (k + 1 < nm && m[k + 1].klen == m[k].klen &&
        memcmp(lv->data + m[k + 1].koff, lv->data + m[k].koff, m[k].klen) == 0)
      continue;
    if ((!first && as_buf_append(out, ", ", 2) != AS_OK) ||
        write_string(out, lv->data + m[k].koff, m[k].klen) != AS_OK ||
        as_buf_append(out, ": ", 2) != AS_OK ||
        as_buf_append(out, lv->data + m[k].voff, m[k].vlen) != AS_OK) {
      rc = AS_ERR;
      goto done;
    }
    first = false;
  }
  if (as_buf_putc(out, '}') != AS_OK) rc = AS_ERR;
done:
  p->depth--;
  return rc;
}

static int array(jparser *p, as_buf *out) {
  p->i++;
  if (as_buf_putc(out, '[') != AS_OK) return AS_ERR;
  skip_ws(p);
  if (p->i < p->n && p->s[p->i] == ']') {
    p->i++;
    return as_buf_putc(out, ']') == AS_OK ? AS_OK : AS_ERR;
  }
  p->depth++;
  for (bool first = true;; first = false) {
    if (!first && as_buf_append(out, ", ", 2) != AS_OK) return AS_ERR;
    int rc = render(p, out);
    if (rc != AS_OK) return rc;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == ',') {
      p->i++;
      continue;
    }
    if (p->i < p->n && p->s[p->i] == ']') {
      p->i++;
      break;
    }
    p->why = "expected ',' or ']'";
    return AS_EINVAL;
  }
  p->depth--;
  return as_buf_putc(out, ']') == AS_OK ? AS_OK : AS_ERR;
}

static int render(jparser *p, as_buf *out) {
  skip_ws(p);
  if (p->i >= p->n) {
    p->why = "unexpected end";
    return AS_EINVAL;
  }
  if (p->depth > 1000) {
    p->why = "nested too deeply";
    return AS_EINVAL;
  }
  char c = p->s[p->i];
  switch (c) {
    case '{': return object(p, out);
    case '[': return array(p, out);
    case '"': {
      /* fast path: no escape in the input and nothing to escape in the output */
      size_t j = p->i + 1;
      while (j < p->n && p->s[j] != '"' && p->s[j] != '\\' && (unsigned char)p->s[j] >= 0x20) j++;
      if (j < p->n && p->s[j] == '"') {
        if (as_buf_append(out, p->s + p->i, j + 1 - p->i) != AS_OK) return AS_ERR;
        p->i = j + 1;
        return AS_OK;
      }
      as_buf tmp = AS_BUF_INIT;
      int rc = read_string(p, &tmp);
      if (rc == AS_OK) rc = write_string(out, tmp.data, tmp.len);
      as_buf_free(&tmp);
      return rc;
    }
    case 't': return lit(p, "true", out);
    case 'f': return lit(p, "false", out);
    case 'n': return lit(p, "null", out);
    default:
      if (c == '-' || (c >= '0' && c <= '9')) return number(p, out);
      p->why = "unexpected character";
      return AS_EINVAL;
  }
}

int as_jsonb_text_s(as_jsonb_scratch *sc, const char *json, size_t len, as_buf *out,
                    as_error *err) {
  jparser p = {.s = json, .n = len, .sc = sc};
  size_t start = out->len;
  int rc = render(&p, out);
  if (rc == AS_OK) {
    skip_ws(&p);
    if (p.i != p.n) {
      p.why = "text after the JSON value";
      rc = AS_EINVAL;
    }
  }
  if (rc == AS_OK) return AS_OK;
  out->len = start;
  if (rc == AS_EINVAL)
    return as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "invalid JSON for jsonb: %s at byte %zu",
                        p.why ? p.why : "?", p.i);
  return as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
}

int as_jsonb_text(const char *json, size_t len, as_buf *out, as_error *err) {
  as_jsonb_scratch *sc = as_jsonb_scratch_new();
  if (!sc) return as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
  int rc = as_jsonb_text_s(sc, json, len, out, err);
  as_jsonb_scratch_free(sc);
  return rc;
}

/* ---------------------------------------------------------------- canonical text */

size_t as_rowtext_double(double d, char out[32]) {
  if (isnan(d)) return (size_t)snprintf(out, 32, "NaN");
  if (isinf(d)) return (size_t)snprintf(out, 32, d < 0 ? "-Infinity" : "Infinity");
  if (d == 0) return (size_t)snprintf(out, 32, "0");
  double a = fabs(d);
  int e;
  (void)frexp(a, &e); /* a = f * 2^e, f in [0.5, 1): the leading bit is 2^(e-1) */
  int q = e - 1 >= -1022 ? e - 1 - 52 : -1074;
  uint64_t m = (uint64_t)ldexp(a, -q);
  return (size_t)snprintf(out, 32, "%s%" PRIu64 "p%d", d < 0 ? "-" : "", m, q);
}

static int put_i64(as_buf *out, int64_t v) { return as_buf_printf(out, "%" PRId64, v); }

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
  return q;
}

int as_rowtext_value(const as_value *v, as_buf *out, as_error *err) {
  int rc = AS_OK;
  switch (v->type) {
    case AS_T_NULL: rc = as_buf_putc(out, '~'); break;
    case AS_T_BOOL: rc = as_buf_append_str(out, v->u.b ? "true" : "false"); break;
    case AS_T_INT64: rc = put_i64(out, v->u.i); break;
    case AS_T_DOUBLE: {
      char t[32];
      size_t n = as_rowtext_double(v->u.d, t);
      rc = as_buf_append(out, t, n);
      break;
    }
    case AS_T_DECIMAL: {
      size_t at = out->len;
      rc = as_decimal_normalize(v->u.s.ptr, v->u.s.len, out);
      if (rc == AS_EINVAL) { /* not a number: keep it recognisable, never equal to a number */
        out->len = at;
        rc = as_buf_putc(out, '!') || as_buf_append(out, v->u.s.ptr, v->u.s.len) ? AS_ERR : AS_OK;
      }
      break;
    }
    case AS_T_TEXT:
      rc = as_buf_printf(out, "%zu:", v->u.s.len) || as_buf_append(out, v->u.s.ptr, v->u.s.len)
               ? AS_ERR
               : AS_OK;
      break;
    case AS_T_BYTES:
      rc = put_i64(out, as_mongo_hash_binary(0, (const uint8_t *)v->u.s.ptr, v->u.s.len));
      break;
    case AS_T_UUID: rc = put_i64(out, as_mongo_hash_binary(4, v->u.uuid, 16)); break;
    case AS_T_OBJECTID: {
      static const char hexd[] = "0123456789abcdef";
      char h[24];
      for (int i = 0; i < 12; i++) {
        h[2 * i] = hexd[v->u.oid[i] >> 4];
        h[2 * i + 1] = hexd[v->u.oid[i] & 15];
      }
      rc = as_buf_append(out, h, 24);
      break;
    }
    case AS_T_TIMESTAMP: rc = put_i64(out, floor_div(v->u.ts_us, 1000)); break;
    case AS_T_DATE: rc = put_i64(out, v->u.days); break;
    case AS_T_JSON: {
      as_error jerr;
      rc = as_jsonb_text(v->u.s.ptr, v->u.s.len, out, &jerr);
      if (rc == AS_EINVAL)
        rc = as_buf_putc(out, '!') || as_buf_append(out, v->u.s.ptr, v->u.s.len) ? AS_ERR : AS_OK;
      break;
    }
    default:
      return as_error_set(err, AS_DOM_CODEC, AS_EINVAL, "bad value type %d", (int)v->type);
  }
  if (rc != AS_OK) return as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
  return AS_OK;
}

/* A child table's array column as its child table gives it back (as_child_normalize), so
 * that MongoDB's array and the one rebuilt from SQL rows compare equal when they hold the
 * same rows; an array that cannot be rows gets "!" and its text (never equal to a SQL side). */
static int array_text(const as_schema *s, const as_row *r, size_t i, as_buf *out, as_error *err) {
  as_value v;
  as_error e;
  int rc = as_child_normalize(s, (size_t)s->cols[i].child - 1, r, &r->v[i], &v, &e);
  if (rc == AS_EDATA) {
    return as_buf_putc(out, '!') || as_buf_append(out, r->v[i].u.s.ptr, r->v[i].u.s.len)
               ? as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory")
               : AS_OK;
  }
  if (rc != AS_OK) return as_error_set(err, AS_DOM_CODEC, rc, "%s", e.message);
  rc = as_rowtext_value(&v, out, err);
  as_value_clear(&v);
  return rc;
}

int as_rowtext(const as_schema *s, const as_row *r, as_buf *out, as_error *err) {
  for (size_t i = 0; i < s->ncols; i++) {
    int rc;
    if (i >= r->n || !r->set[i]) {
      rc = as_buf_putc(out, '~');
      if (rc != AS_OK) return as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
    } else if (s->cols[i].child > 0 && r->v[i].type != AS_T_NULL) {
      if ((rc = array_text(s, r, i, out, err)) != AS_OK) return rc;
    } else if ((rc = as_rowtext_value(&r->v[i], out, err)) != AS_OK) {
      return rc;
    }
    if (as_buf_putc(out, '|') != AS_OK)
      return as_error_set(err, AS_DOM_CODEC, AS_ERR, "out of memory");
  }
  return AS_OK;
}

int as_rowhash(const as_schema *s, const as_row *r, as_buf *tmp, int64_t *out, as_error *err) {
  as_buf local = AS_BUF_INIT;
  as_buf *b = tmp ? tmp : &local;
  as_buf_reset(b);
  int rc = as_rowtext(s, r, b, err);
  if (rc == AS_OK) *out = as_mongo_hash_string((const char *)b->data, b->len);
  as_buf_free(&local);
  return rc;
}

int as_rowhash_xxh3(const as_schema *s, const as_row *r, as_buf *tmp, uint64_t *out,
                    as_error *err) {
  as_buf local = AS_BUF_INIT;
  as_buf *b = tmp ? tmp : &local;
  as_buf_reset(b);
  int rc = as_rowtext(s, r, b, err);
  if (rc == AS_OK) *out = XXH3_64bits(b->data, b->len);
  as_buf_free(&local);
  return rc;
}
