/* as_state_keys.c — how the state store spells a key in its versions table.
 *
 * Everywhere else a key is its canonical text ({"id":10000}, mappings/as_key.h). The versions
 * table keeps one row per synced key for as long as the key lives, so there it is packed:
 *   varint(prefix id * 16 + form), then the rest of the text in that form.
 * The prefix is the text up to and including its first ':' ({"id": — the same for every key
 * of a one-column key), interned in the table key_prefixes. The forms of the rest:
 *   0 the bytes as they are;
 *   8..15 an integer and the closing brace (10000}): its zigzag value in form - 7 bytes, most
 *     significant first, so that ascending keys are stored in ascending order (a first copy
 *     appends to the table's pages instead of splitting them);
 *   2 a string without quote or backslash and the closing brace ("u1"}): its bytes;
 *   3 an ObjectId ({"$oid":"<24 lower hex>"}}): 12 bytes;
 *   4 a UUID ({"$uuid":"<8-4-4-4-12 lower hex>"}}): 16 bytes.
 * A form is taken only when unpacking it gives back the same text byte for byte, so packing
 * is one-to-one ({"id":10000} takes 4 bytes instead of 12; {"_id":{"$oid":...}} 14 instead of
 * 35). Keys are only ever looked up, never read back, by the connector; as_state_key_unpack is
 * for tools. */
#include "as_state_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FORM_RAW = 0, FORM_STR = 2, FORM_OID = 3, FORM_UUID = 4, FORM_INT = 8 /* + bytes - 1 */ };

static const char OID_HEAD[] = "{\"$oid\":\"";
static const char UUID_HEAD[] = "{\"$uuid\":\"";

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1; /* upper case is not the canonical spelling: such text stays raw */
}

/* n bytes from 2n lower-case hex digits; false when s is not that. */
static bool unhex(const char *s, size_t n, uint8_t *out) {
  for (size_t i = 0; i < n; i++) {
    int hi = hexval(s[2 * i]), lo = hi < 0 ? -1 : hexval(s[2 * i + 1]);
    if (lo < 0) return false;
    out[i] = (uint8_t)(hi * 16 + lo);
  }
  return true;
}

static void tohex(const uint8_t *b, size_t n, char *out) {
  static const char d[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = d[b[i] >> 4];
    out[2 * i + 1] = d[b[i] & 15];
  }
}

/* The integer form when rest is exactly the canonical text of an int64 and '}'. */
static bool int_form(const char *rest, size_t len, uint64_t *zz) {
  if (len < 2 || len > 21 || rest[len - 1] != '}') return false;
  const char *p = rest, *e = rest + len - 1;
  bool neg = *p == '-';
  if (neg) p++;
  if (p == e || *p < '0' || *p > '9') return false;
  if (*p == '0' && (e - p != 1 || neg)) return false; /* leading zeros, "-0": not canonical */
  uint64_t u = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (; p < e; p++) {
    if (*p < '0' || *p > '9') return false;
    uint64_t d = (uint64_t)(*p - '0');
    if (u > (lim - d) / 10) return false;
    u = u * 10 + d;
  }
  int64_t v = neg ? (int64_t)(0 - u) : (int64_t)u;
  *zz = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
  return true;
}

/* The UUID form: 8-4-4-4-12 lower hex. */
static bool uuid_bytes(const char *s, uint8_t out[16]) {
  static const int groups[5] = {8, 4, 4, 4, 12};
  size_t at = 0, o = 0;
  for (int g = 0; g < 5; g++) {
    if (g && s[at++] != '-') return false;
    if (!unhex(s + at, (size_t)groups[g] / 2, out + o)) return false;
    at += (size_t)groups[g];
    o += (size_t)groups[g] / 2;
  }
  return true;
}

/* ---------------------------------------------------------------- prefixes */

static const char *prefix_name(as_state *st, int64_t id) {
  for (size_t i = 0; i < st->nkprefixes; i++)
    if (st->kprefixes[i].id == id) return st->kprefixes[i].name;
  /* added by another connection since: read it */
  sqlite3_stmt *q = NULL;
  const char *name = NULL;
  if (sqlite3_prepare_v2(st->db, "SELECT name FROM key_prefixes WHERE id = ?1", -1, &q, NULL) ==
      SQLITE_OK) {
    sqlite3_bind_int64(q, 1, id);
    as_error ignored;
    int64_t got = 0;
    if (sqlite3_step(q) == SQLITE_ROW) {
      const char *t = (const char *)sqlite3_column_text(q, 0);
      if (as_state_intern_locked(st, "key_prefixes", &st->kprefixes, &st->nkprefixes, t, strlen(t),
                                 false, &got, &ignored) == AS_OK)
        name = prefix_name(st, got);
    }
  }
  sqlite3_finalize(q);
  return name;
}

void as_state_keys_close(as_state *st) {
  for (size_t i = 0; i < st->nkprefixes; i++) free(st->kprefixes[i].name);
  free(st->kprefixes);
  st->kprefixes = NULL;
  st->nkprefixes = 0;
}

/* ---------------------------------------------------------------- pack / unpack */

void as_packed_key_free(as_packed_key *k) {
  free(k->heap);
  k->heap = NULL;
}

int as_state_key_pack(as_state *st, const char *key, bool create, as_packed_key *out,
                      as_error *err) {
  size_t len = strlen(key);
  out->heap = NULL;
  out->p = len + 16 <= sizeof out->buf ? out->buf : (out->heap = malloc(len + 16));
  if (!out->p) return as_error_set(err, AS_DOM_STATE, AS_ERR, "out of memory");
  const char *colon = memchr(key, ':', len);
  size_t plen = colon ? (size_t)(colon - key) + 1 : 0;
  int64_t id = 0;
  int rc = as_state_intern_locked(st, "key_prefixes", &st->kprefixes, &st->nkprefixes, key, plen,
                                  create, &id, err);
  if (rc != AS_OK) {
    as_packed_key_free(out);
    return rc;
  }
  const char *rest = key + plen;
  size_t rlen = len - plen, n = 0;
  uint64_t zz = 0;
  uint8_t bytes[16];
  int form = FORM_RAW;
  size_t ho = sizeof OID_HEAD - 1, hu = sizeof UUID_HEAD - 1;
  if (int_form(rest, rlen, &zz)) {
    form = FORM_INT;
  } else if (rlen >= 3 && rest[0] == '"' && rest[rlen - 2] == '"' && rest[rlen - 1] == '}' &&
             !memchr(rest + 1, '"', rlen - 3) && !memchr(rest + 1, '\\', rlen - 3)) {
    form = FORM_STR;
  } else if (rlen == ho + 24 + 3 && memcmp(rest, OID_HEAD, ho) == 0 &&
             memcmp(rest + ho + 24, "\"}}", 3) == 0 && unhex(rest + ho, 12, bytes)) {
    form = FORM_OID;
  } else if (rlen == hu + 36 + 3 && memcmp(rest, UUID_HEAD, hu) == 0 &&
             memcmp(rest + hu + 36, "\"}}", 3) == 0 && uuid_bytes(rest + hu, bytes)) {
    form = FORM_UUID;
  }
  int zbytes = 1;
  while (form == FORM_INT && zbytes < 8 && (zz >> (8 * zbytes)) != 0) zbytes++;
  n = as_varint_put(out->p, (uint64_t)id * 16 + (uint64_t)(form == FORM_INT ? FORM_INT + zbytes - 1 : form));
  switch (form) {
  case FORM_INT:
    for (int b = zbytes - 1; b >= 0; b--) out->p[n++] = (uint8_t)(zz >> (8 * b));
    break;
  case FORM_STR: memcpy(out->p + n, rest + 1, rlen - 3), n += rlen - 3; break;
  case FORM_OID: memcpy(out->p + n, bytes, 12), n += 12; break;
  case FORM_UUID: memcpy(out->p + n, bytes, 16), n += 16; break;
  default: memcpy(out->p + n, rest, rlen), n += rlen; break;
  }
  out->len = n;
  return AS_OK;
}

char *as_state_key_unpack(as_state *st, const void *packed, size_t len) {
  const uint8_t *p = packed, *end = p + len;
  uint64_t head = 0;
  if (!as_varint_get(&p, end, &head)) return NULL;
  const char *prefix = prefix_name(st, (int64_t)(head / 16));
  if (!prefix) return NULL;
  size_t rest = (size_t)(end - p), plen = strlen(prefix);
  char *out = malloc(plen + rest + 64);
  if (!out) return NULL;
  memcpy(out, prefix, plen);
  char *o = out + plen;
  uint64_t zz = 0;
  int form = (int)(head % 16);
  if (form >= FORM_INT) {
    if (rest != (size_t)(form - FORM_INT + 1)) goto bad;
    for (size_t b = 0; b < rest; b++) zz = zz << 8 | p[b];
    sprintf(o, "%lld}", (long long)((zz >> 1) ^ (~(zz & 1) + 1)));
    return out;
  }
  switch (form) {
  case FORM_STR:
    *o++ = '"';
    memcpy(o, p, rest);
    strcpy(o + rest, "\"}");
    break;
  case FORM_OID:
    if (rest != 12) goto bad;
    o += sprintf(o, "%s", OID_HEAD);
    tohex(p, 12, o);
    strcpy(o + 24, "\"}}");
    break;
  case FORM_UUID: {
    if (rest != 16) goto bad;
    o += sprintf(o, "%s", UUID_HEAD);
    static const int groups[5] = {8, 4, 4, 4, 12};
    for (int g = 0, at = 0; g < 5; g++) {
      if (g) *o++ = '-';
      tohex(p + at, (size_t)groups[g] / 2, o);
      o += groups[g];
      at += groups[g] / 2;
    }
    strcpy(o, "\"}}");
    break;
  }
  case FORM_RAW:
    memcpy(o, p, rest);
    o[rest] = '\0';
    break;
  default: goto bad;
  }
  return out;
bad:
  free(out);
  return NULL;
}
