/* as_bson_update.c — row delta -> MongoDB update ({"$set":{...},"$unset":{...}}).
 *
 * Decisions:
 * - $set and $unset are built as raw element lists (as_bsonw_* of as_bson_priv.h) and copied
 *   into the output once at the end; same bytes as the bson_append_* calls.
 * - The catch-all: without a previous value, each of its top-level fields is transcoded
 *   straight from the text into $set; with one, both are converted and compared field by
 *   field (equal bytes: no update; gone: $unset). Fields inside documents that columns
 *   descend into are set/unset by dotted path.
 */
#include <stdio.h>
#include <stdlib.h>

#include "as_bson_priv.h"

/* ================================================================ updates
 *
 * $set and $unset are built as raw element lists (rw_* above) and assembled into the output
 * once at the end. Values take the raw path (same bytes as as_value_append_bson); whatever it
 * does not handle (errors, rare forms, json the streaming transcoder gives up on) is done by
 * as_value_append_bson into a holder document whose element is copied, so results and
 * messages are those of the libbson path. */

typedef struct upd {
  const as_schema *s;
  as_buf set, unset; /* elements */
  char path[1024];
} upd;

/* Is prefix path[0..depth) + key the head of some column's path? */
static bool claimed(const as_schema *s, char *const *prefix, size_t depth, const char *key) {
  for (size_t i = 0; i < s->ncols; i++) {
    const as_column *c = &s->cols[i];
    if (c->catch_all || c->npath <= depth + 1) continue;
    const char *p = c->path[depth];
    if (p[0] != key[0] || strcmp(p, key) != 0) continue;
    bool ok = true;
    for (size_t d = 0; d < depth && ok; d++) ok = strcmp(c->path[d], prefix[d]) == 0;
    if (ok) return true;
  }
  return as_bson_child_head(s, depth, key);
}

static bool same_value(const bson_iter_t *a, const bson_iter_t *b) {
  if (bson_iter_type(a) != bson_iter_type(b)) return false;
  uint32_t la = a->next_off - a->d1, lb = b->next_off - b->d1;
  return la == lb && memcmp(a->raw + a->d1, b->raw + b->d1, la) == 0;
}

/* bson_append_iter into a raw element list: the value bytes copied where bson_append_iter
 * writes them unchanged, the other types through bson_append_iter itself. */
static int rw_iter(as_buf *b, const char *key, size_t kl, const bson_iter_t *it) {
  bson_type_t t = IT_TYPE(it);
  uint32_t vl = it->next_off - it->d1;
  switch (t) {
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY:
      if (vl < 5 || rd32(it->raw + it->d1) != vl || it->raw[it->next_off - 1] != 0) break;
      /* fall through */
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_UTF8:
    case BSON_TYPE_UNDEFINED:
    case BSON_TYPE_OID:
    case BSON_TYPE_BOOL:
    case BSON_TYPE_DATE_TIME:
    case BSON_TYPE_NULL:
    case BSON_TYPE_SYMBOL:
    case BSON_TYPE_INT32:
    case BSON_TYPE_TIMESTAMP:
    case BSON_TYPE_INT64:
    case BSON_TYPE_DECIMAL128:
    case BSON_TYPE_MAXKEY:
    case BSON_TYPE_MINKEY: return rw_bytes(b, (uint8_t)t, key, kl, it->raw + it->d1, vl);
    default: break;
  }
  bson_t h = BSON_INITIALIZER;
  int rc = bson_append_iter(&h, key, (int)kl, it) ? rw_elements(b, &h) : AS_EDATA;
  bson_destroy(&h);
  return rc;
}

static int extra_updates(upd *u, const bson_t *now, const bson_t *prev, char **prefix, size_t depth,
                         size_t plen, as_error *err) {
  bson_iter_t it, pit;
  if (depth >= MAX_DEPTH) return AS_OK;
  if (now) {
    bson_iter_init(&it, now);
    while (it_next(&it)) {
      const char *k = IT_KEY(&it);
      size_t kl = IT_KEYLEN(&it);
      if (plen + kl + 2 > sizeof u->path) return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "field path too long");
      memcpy(u->path + plen, k, kl + 1);
      bool in_prev = prev && bson_iter_init_find(&pit, prev, k);
      if (claimed(u->s, prefix, depth, k)) {
        if (!BSON_ITER_HOLDS_DOCUMENT(&it)) continue; /* mapped paths are the columns' business */
        bson_t sub, psub;
        uint32_t len;
        const uint8_t *data;
        bson_iter_document(&it, &len, &data);
        bson_init_static(&sub, data, len);
        bool hp = in_prev && BSON_ITER_HOLDS_DOCUMENT(&pit);
        if (hp) {
          bson_iter_document(&pit, &len, &data);
          bson_init_static(&psub, data, len);
        }
        prefix[depth] = (char *)k;
        u->path[plen + kl] = '.';
        int rc = extra_updates(u, &sub, hp ? &psub : NULL, prefix, depth + 1, plen + kl + 1, err);
        if (rc != AS_OK) return rc;
        continue;
      }
      if (in_prev && same_value(&it, &pit)) continue;
      u->path[plen + kl] = '\0';
      if (rw_iter(&u->set, u->path, plen + kl, &it) != AS_OK)
        return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "update too large");
    }
  }
  if (prev) {
    bson_iter_init(&pit, prev);
    while (it_next(&pit)) {
      const char *k = IT_KEY(&pit);
      size_t kl = IT_KEYLEN(&pit);
      if (now && bson_iter_init_find(&it, now, k)) continue;
      if (plen + kl + 2 > sizeof u->path) return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "field path too long");
      memcpy(u->path + plen, k, kl + 1);
      if (claimed(u->s, prefix, depth, k)) {
        if (!BSON_ITER_HOLDS_DOCUMENT(&pit)) continue;
        bson_t psub;
        uint32_t len;
        const uint8_t *data;
        bson_iter_document(&pit, &len, &data);
        bson_init_static(&psub, data, len);
        prefix[depth] = (char *)k;
        u->path[plen + kl] = '.';
        int rc = extra_updates(u, NULL, &psub, prefix, depth + 1, plen + kl + 1, err);
        if (rc != AS_OK) return rc;
        continue;
      }
      if (rw_str(&u->unset, BSON_TYPE_UTF8, u->path, plen + kl, "", 0) != AS_OK)
        return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "update too large");
    }
  }
  return AS_OK;
}

#define AS_RESTART (-100) /* internal: the fast path wrote something it cannot finish */

/* The catch-all without a previous value, straight from its text: each unclaimed top-level
 * field is parsed into $set, claimed documents go through extra_updates. FJ_FAIL before
 * anything was written, AS_RESTART after (the caller truncates $set/$unset and redoes the
 * catch-all the general way). */
static int catch_all_direct(upd *u, const as_value *v, as_error *err) {
  as_jsonr j = {v->u.s.ptr, v->u.s.ptr + v->u.s.len};
  as_jsonr_ws(&j);
  if (j.p >= j.end || *j.p != '{') return FJ_FAIL;
  as_jsonr peek = {j.p + 1, j.end};
  as_jsonr_ws(&peek);
  if (peek.p + 1 < peek.end && peek.p[0] == '"' && peek.p[1] == '$') return FJ_FAIL;
  j.p++;
  as_jsonr_ws(&j);
  if (j.p < j.end && *j.p == '}') {
    j.p++;
    as_jsonr_ws(&j);
    return j.p == j.end ? AS_OK : FJ_FAIL;
  }
  as_buf tmp = AS_BUF_INIT;
  int rc = AS_OK;
  char keybuf[256];
  for (;;) {
    const char *key;
    size_t kl;
    as_jsonr_ws(&j);
    if (j.p >= j.end || *j.p != '"' || as_jsonr_string(&j, &key, &kl, &tmp) || kl >= sizeof keybuf ||
        memchr(key, '\0', kl)) {
      rc = AS_RESTART;
      break;
    }
    memcpy(keybuf, key, kl);
    keybuf[kl] = '\0';
    as_jsonr_ws(&j);
    if (j.p >= j.end || *j.p != ':') {
      rc = AS_RESTART;
      break;
    }
    j.p++;
    as_jsonr_ws(&j);
    if (claimed(u->s, NULL, 0, keybuf)) {
      if (j.p < j.end && *j.p == '{') {
        as_buf hraw = AS_BUF_INIT; /* {"v": <the value>} */
        bson_t holder;
        bson_iter_t it;
        rc = room(&hraw, 4) ? AS_ERR : AS_OK;
        if (rc == AS_OK) {
          hraw.len = 4;
          rc = as_jsonr_value(&j, &hraw, "v", 1, &tmp, 1);
        }
        if (rc == AS_OK && rw_end(&hraw, 0)) rc = AS_ERR;
        if (rc == AS_OK && bson_init_static(&holder, hraw.data, hraw.len) && bson_iter_init_find(&it, &holder, "v") &&
            BSON_ITER_HOLDS_DOCUMENT(&it)) {
          uint32_t len;
          const uint8_t *data;
          bson_t sub;
          bson_iter_document(&it, &len, &data);
          bson_init_static(&sub, data, len);
          char *prefix[MAX_DEPTH];
          prefix[0] = keybuf;
          memcpy(u->path, keybuf, kl);
          u->path[kl] = '.';
          rc = extra_updates(u, &sub, NULL, prefix, 1, kl + 1, err);
          if (rc != AS_OK && rc != AS_EDATA) rc = AS_RESTART;
        } else if (rc == AS_OK) {
          rc = AS_OK; /* a wrapper, not a document: the columns' business */
        } else {
          rc = AS_RESTART;
        }
        as_buf_free(&hraw);
      } else if (as_jsonr_skip(&j) != AS_OK) {
        rc = AS_RESTART;
      }
    } else if (as_jsonr_value(&j, &u->set, keybuf, (int)kl, &tmp, 1) != AS_OK) {
      rc = AS_RESTART;
    }
    if (rc != AS_OK) break;
    as_jsonr_ws(&j);
    if (j.p < j.end && *j.p == ',') {
      j.p++;
      continue;
    }
    if (j.p < j.end && *j.p == '}') {
      j.p++;
      as_jsonr_ws(&j);
      if (j.p != j.end) rc = AS_RESTART;
      break;
    }
    rc = AS_RESTART;
    break;
  }
  as_buf_free(&tmp);
  return rc;
}

/* {"$set": {set}, "$unset": {unset}} (each only when not empty) into out (empty). */
static int finish_update(const as_schema *s, const upd *u, bson_t *out, as_error *err) {
  size_t total = 5 + (u->set.len ? 11 + u->set.len : 0) + (u->unset.len ? 13 + u->unset.len : 0);
  if (total > BSON_MAX_SIZE) return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "mapping %s: update too large", s->name);
  if (total == 5) return AS_OK;
  uint8_t *p = bson_reserve_buffer(out, (uint32_t)total);
  if (!p) return as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
  put_le32(p, (uint32_t)total);
  p += 4;
  if (u->set.len) {
    memcpy(p, "\x03$set", 6);
    put_le32(p + 6, (uint32_t)u->set.len + 5);
    memcpy(p + 10, u->set.data, u->set.len);
    p += 10 + u->set.len;
    *p++ = '\0';
  }
  if (u->unset.len) {
    memcpy(p, "\x03$unset", 8);
    put_le32(p + 8, (uint32_t)u->unset.len + 5);
    memcpy(p + 12, u->unset.data, u->unset.len);
    p += 12 + u->unset.len;
    *p++ = '\0';
  }
  *p = '\0';
  return AS_OK;
}

int as_delta_to_update(const as_schema *s, const as_delta *d, const char *prev_catch_all, bson_t *out,
                       as_error *err) {
  upd u;
  int rc = AS_OK;
  bson_t now, prev;
  bool have_now = false, have_prev = false;
  bson_init(out);
  if (d->op != AS_OP_UPDATE)
    return as_error_set(err, AS_DOM_MAPPING, AS_EINVAL, "mapping %s: $set/$unset only for updates, not %s",
                        s->name, as_op_name(d->op));
  u.s = s;
  u.set = u.unset = (as_buf)AS_BUF_INIT;
  if (as_buf_reserve(&u.set, 480) != AS_OK) return as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
  for (size_t i = 0; i < s->ncols && i < d->row.n; i++) {
    const as_column *c = &s->cols[i];
    if (!d->row.set[i] || c->is_key || c->catch_all) continue;
    const as_value *v = &d->row.v[i];
    size_t fl = strlen(c->field);
    if (v->type == AS_T_NULL) {
      if (rw_str(&u.unset, BSON_TYPE_UTF8, c->field, fl, "", 0) != AS_OK)
        rc = as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
    } else if ((rc = as_bsonw_value(&u.set, c->field, fl, v, err)) != AS_OK) {
      as_error_prefix(err, "mapping %s, column \"%s\"", s->name, c->name);
    }
    if (rc != AS_OK) goto cleanup;
  }
  if (s->catch_all_idx >= 0 && d->row.set[s->catch_all_idx]) {
    const as_value *cv = &d->row.v[s->catch_all_idx];
    bool arr = false;
    if (!prev_catch_all && cv->type == AS_T_JSON) {
      size_t set_mark = u.set.len, unset_mark = u.unset.len;
      rc = catch_all_direct(&u, cv, err);
      if (rc == AS_OK || rc == AS_EDATA) goto cleanup;
      u.set.len = set_mark; /* redo the catch-all the general way */
      u.unset.len = unset_mark;
      rc = AS_OK;
    }
    if (cv->type == AS_T_JSON) {
      if ((rc = as_asjson_to_bson(cv->u.s.ptr, cv->u.s.len, &now, &arr, err)) != AS_OK || arr) {
        bson_destroy(&now);
        rc = as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "mapping %s: catch-all value is not an AS-JSON object", s->name);
        goto cleanup;
      }
      have_now = true;
    }
    if (prev_catch_all) {
      if ((rc = as_asjson_to_bson(prev_catch_all, strlen(prev_catch_all), &prev, &arr, err)) != AS_OK || arr) {
        bson_destroy(&prev);
        rc = as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "mapping %s: previous catch-all value is not an AS-JSON object", s->name);
        goto cleanup;
      }
      have_prev = true;
    }
    char *prefix[MAX_DEPTH];
    rc = extra_updates(&u, have_now ? &now : NULL, have_prev ? &prev : NULL, prefix, 0, 0, err);
  }
cleanup:
  if (rc == AS_OK) rc = finish_update(s, &u, out, err);
  if (have_now) bson_destroy(&now);
  if (have_prev) bson_destroy(&prev);
  as_buf_free(&u.set);
  as_buf_free(&u.unset);
  return rc;
}
