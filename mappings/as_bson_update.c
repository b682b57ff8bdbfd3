/* as_bson_update.c — row delta -> MongoDB update ({"$set":{...},"$unset":{...}}).
 *
 * Decisions:
 * - $set and $unset are built as raw element lists (rw_* of as_bson_priv.h) and copied
 *   into the output once at the end; same bytes as the bson_append_* calls.
 * - The catch-all: without a previous value, each of its top-level fields is transcoded
 *   straight from the text into $set; with one, both are converted and compared field by
 *   field (equal bytes: no update; gone: $unset). Fields inside documents that columns
 *   descend into are set/unset by dotted path. Text that is not an AS-JSON object is AS_EDATA
 *   naming the column (and which of the two values it was).
 */
#include <stdio.h>
#include <stdlib.h>

#include "as_bson_priv.h"

typedef struct upd {
  const as_schema *s;
  as_buf set, unset; /* elements */
  char *path;        /* the dotted path being built: small, or on the heap once longer */
  size_t cap;
  char small[1024];
} upd;

/* Room for need bytes of path (field names have no length limit but the document's size). */
static AS_MUSTCHECK int path_fit(upd *u, size_t need, as_error *err) {
  if (need <= u->cap) return AS_OK;
  size_t nc = u->cap * 2 > need ? u->cap * 2 : need;
  char *np = u->path == u->small ? malloc(nc) : realloc(u->path, nc);
  if (!np) return as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
  if (u->path == u->small) memcpy(np, u->small, u->cap);
  u->path = np;
  u->cap = nc;
  return AS_OK;
}

/* Is prefix path[0..depth) + key the head of some column's path? */
static AS_MUSTCHECK bool claimed(const as_schema *s, char *const *prefix, size_t depth, const char *key) {
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

static AS_MUSTCHECK bool same_value(const as_bsonr_el *a, const as_bsonr_el *b) {
  return a->type == b->type && a->vlen == b->vlen && memcmp(a->val, b->val, a->vlen) == 0;
}

static AS_MUSTCHECK int corrupt(as_error *err) {
  return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "catch-all value: invalid BSON");
}

static AS_MUSTCHECK int extra_updates(upd *u, const as_bsonr *now, const as_bsonr *prev, char **prefix, size_t depth,
                         size_t plen, as_error *err);

/* Field e (in `now` if `in_now`, else only in prev) is claimed by columns below it: recurse
 * into it as a document, anything else is the columns' business. */
static AS_MUSTCHECK int claimed_updates(upd *u, const as_bsonr_el *e, const as_bsonr_el *pe, bool in_now, char **prefix,
                           size_t depth, size_t plen, as_error *err) {
  as_bsonr sub, psub;
  if (e->type != BSON_TYPE_DOCUMENT) return AS_OK;
  if (as_bsonr_child(e, &sub) != AS_OK) return corrupt(err);
  bool hp = pe && pe->type == BSON_TYPE_DOCUMENT;
  if (hp && as_bsonr_child(pe, &psub) != AS_OK) return corrupt(err);
  prefix[depth] = (char *)e->key;
  u->path[plen + e->keylen] = '.';
  return extra_updates(u, in_now ? &sub : NULL, in_now ? (hp ? &psub : NULL) : &sub, prefix, depth + 1,
                       plen + e->keylen + 1, err);
}

/* $set for the fields of now that prev lacks or holds otherwise; $unset for those only prev
 * has. Paths are dotted under prefix (plen bytes of u->path). */
static AS_MUSTCHECK int extra_updates(upd *u, const as_bsonr *now, const as_bsonr *prev, char **prefix, size_t depth,
                         size_t plen, as_error *err) {
  as_bsonr_el e, pe;
  int more = 0, rc;
  if (depth >= MAX_DEPTH) return AS_OK;
  for (as_bsonr it = now ? *now : (as_bsonr){0}; now && (more = as_bsonr_next(&it, &e)) == 1;) {
    if ((rc = path_fit(u, plen + e.keylen + 2, err)) != AS_OK) return rc;
    memcpy(u->path + plen, e.key, e.keylen + 1);
    int in_prev = prev ? as_bsonr_find(prev, e.key, e.keylen, &pe) : 0;
    if (in_prev < 0) return corrupt(err);
    if (claimed(u->s, prefix, depth, e.key)) {
      if ((rc = claimed_updates(u, &e, in_prev ? &pe : NULL, true, prefix, depth, plen, err)) != AS_OK) return rc;
      continue;
    }
    if (in_prev && same_value(&e, &pe)) continue;
    if (rw_bytes(&u->set, e.type, u->path, plen + e.keylen, e.val, e.vlen) != AS_OK)
      return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "update too large");
  }
  if (more != 0) return corrupt(err);
  for (as_bsonr it = prev ? *prev : (as_bsonr){0}; prev && (more = as_bsonr_next(&it, &pe)) == 1;) {
    int in_now = now ? as_bsonr_find(now, pe.key, pe.keylen, &e) : 0;
    if (in_now < 0) return corrupt(err);
    if (in_now) continue;
    if ((rc = path_fit(u, plen + pe.keylen + 2, err)) != AS_OK) return rc;
    memcpy(u->path + plen, pe.key, pe.keylen + 1);
    if (claimed(u->s, prefix, depth, pe.key)) {
      if ((rc = claimed_updates(u, &pe, NULL, false, prefix, depth, plen, err)) != AS_OK) return rc;
      continue;
    }
    if (rw_str(&u->unset, BSON_TYPE_UTF8, u->path, plen + pe.keylen, "", 0) != AS_OK)
      return as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "update too large");
  }
  return more == 0 ? AS_OK : corrupt(err);
}

/* A claimed top-level field of the catch-all text (j->p at its value): the value decoded; a
 * document goes through extra_updates under its key, anything else is the columns'. */
static AS_MUSTCHECK int direct_claimed(upd *u, as_jsonr *j, const char *key, size_t kl, as_error *err) {
  as_buf hraw = AS_BUF_INIT; /* {"v": <the value>} */
  as_bsonr h, sub;
  as_bsonr_el e;
  int rc = room(&hraw, 4) ? AS_ERR : AS_OK;
  if (rc == AS_OK) {
    hraw.len = 4;
    rc = as_jsonr_value(j, &hraw, "v", 1, 1);
  }
  if (rc == AS_OK && rw_end(&hraw, 0)) rc = AS_ERR;
  if (rc == AS_OK && as_bsonr_init(&h, hraw.data, hraw.len) == AS_OK && as_bsonr_next(&h, &e) == 1 &&
      e.type == BSON_TYPE_DOCUMENT && as_bsonr_child(&e, &sub) == AS_OK) {
    char *prefix[MAX_DEPTH];
    prefix[0] = (char *)key;
    if ((rc = path_fit(u, kl + 2, err)) != AS_OK) {
      as_buf_free(&hraw);
      return rc;
    }
    memcpy(u->path, key, kl);
    u->path[kl] = '.';
    rc = extra_updates(u, &sub, NULL, prefix, 1, kl + 1, err);
  }
  as_buf_free(&hraw);
  return rc;
}

/* The members of the catch-all object (j->p after '{', not empty) up to its '}'. */
static AS_MUSTCHECK int direct_members(upd *u, as_jsonr *j, as_jsonr_level *lv, as_error *err) {
  int rc = AS_OK;
  while (rc == AS_OK) {
    const char *key;
    size_t kl;
    bool in_tmp;
    char keybuf[256], *heap = NULL, *k = keybuf;
    if ((rc = as_jsonr_member(j, lv, &key, &kl, &in_tmp)) != AS_OK) break;
    if (kl >= sizeof keybuf && !(k = heap = malloc(kl + 1))) {
      snprintf(j->msg, sizeof j->msg, "out of memory");
      j->at = j->p;
      return AS_ERR;
    }
    memcpy(k, key, kl); /* NUL-terminated for claimed(); j->tmp may be reused below */
    k[kl] = '\0';
    if (claimed(u->s, NULL, 0, k)) rc = direct_claimed(u, j, k, kl, err);
    else rc = as_jsonr_value(j, &u->set, k, kl, 1);
    if (heap) free(heap);
    if (rc != AS_OK) break;
    as_jsonr_ws(j);
    if (j->p < j->end && *j->p == ',') {
      j->p++;
      continue;
    }
    if (j->p < j->end && *j->p == '}') {
      j->p++;
      break;
    }
    rc = AS_EINVAL;
    snprintf(j->msg, sizeof j->msg, "expected ',' or '}'");
    j->at = j->p;
  }
  return rc;
}

/* The catch-all without a previous value, straight from its text: each unclaimed top-level
 * field is decoded into $set, claimed documents go through extra_updates. */
static AS_MUSTCHECK int catch_all_direct(upd *u, const as_value *v, as_error *err) {
  as_jsonr j;
  as_jsonr_level lv;
  int rc = AS_OK;
  as_jsonr_init(&j, v->u.s.ptr, v->u.s.len);
  as_jsonr_level_begin(&j, &lv);
  as_jsonr_ws(&j);
  if (j.p >= j.end || *j.p != '{') {
    rc = AS_EINVAL;
    snprintf(j.msg, sizeof j.msg, "the catch-all must be an object");
    j.at = j.p;
  } else {
    j.p++;
    as_jsonr_ws(&j);
    if (j.p < j.end && *j.p == '}') j.p++;
    else rc = direct_members(u, &j, &lv, err);
    if (rc == AS_OK) rc = as_jsonr_end(&j);
  }
  as_jsonr_level_end(&j, &lv);
  if (rc != AS_OK && rc != AS_EDATA) {
    as_jsonr_error(&j, rc, err);
    if (rc != AS_ERR) rc = AS_EDATA;
    if (err) err->code = rc;
  }
  as_jsonr_free(&j);
  return rc;
}

/* {"$set": {set}, "$unset": {unset}} (each only when not empty) into out (empty). */
static AS_MUSTCHECK int finish_update(const as_schema *s, const upd *u, bson_t *out, as_error *err) {
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

/* A catch-all text as a raw document in raw, read by r. AS_EDATA (err says why) unless it is
 * an AS-JSON object. */
static AS_MUSTCHECK int catch_all_raw(const char *text, size_t len, as_buf *raw, as_bsonr *r, as_error *err) {
  as_jsonr j;
  bool arr = false;
  as_jsonr_init(&j, text, len);
  int rc = as_jsonr_top(&j, raw, &arr);
  if (rc != AS_OK) as_jsonr_error(&j, rc, err);
  as_jsonr_free(&j);
  if (rc == AS_OK && arr) rc = as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "an array, not an object");
  if (rc == AS_OK && as_bsonr_init(r, raw->data, raw->len) != AS_OK) rc = as_error_set(err, AS_DOM_MAPPING, AS_EDATA, "too large");
  if (rc == AS_EINVAL && err) err->code = AS_EDATA;
  return rc == AS_EINVAL ? AS_EDATA : rc;
}

int as_delta_to_update(const as_schema *s, const as_delta *d, const char *prev_catch_all, bson_t *out,
                       as_error *err) {
  upd u;
  int rc = AS_OK;
  as_buf now = AS_BUF_INIT, prev = AS_BUF_INIT;
  as_bsonr nr, pr;
  bool have_now = false, have_prev = false;
  bson_init(out);
  if (d->op != AS_OP_UPDATE)
    return as_error_set(err, AS_DOM_MAPPING, AS_EINVAL, "mapping %s: $set/$unset only for updates, not %s",
                        s->name, as_op_name(d->op));
  u.s = s;
  u.set = u.unset = (as_buf)AS_BUF_INIT;
  u.path = u.small;
  u.cap = sizeof u.small;
  if (as_buf_reserve(&u.set, 480) != AS_OK) return as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
  for (size_t i = 0; i < s->ncols && i < d->row.n; i++) {
    const as_column *c = &s->cols[i];
    if (!d->row.set[i] || c->is_key || c->catch_all) continue;
    const as_value *v = &d->row.v[i];
    size_t fl = strlen(c->field);
    if (v->type == AS_T_NULL) {
      if (rw_str(&u.unset, BSON_TYPE_UTF8, c->field, fl, "", 0) != AS_OK)
        rc = as_error_set(err, AS_DOM_MAPPING, AS_ERR, "out of memory");
    } else if ((rc = as_bsonw_value_inline(&u.set, c->field, fl, v, err)) != AS_OK) {
      as_error_prefix(err, "mapping %s, column \"%s\"", s->name, c->name);
    }
    if (rc != AS_OK) goto cleanup;
  }
  if (s->catch_all_idx >= 0 && d->row.set[s->catch_all_idx]) {
    const as_value *cv = &d->row.v[s->catch_all_idx];
    const char *what = "catch-all value";
    if (!prev_catch_all && cv->type == AS_T_JSON) {
      rc = catch_all_direct(&u, cv, err);
      if (rc != AS_OK) as_error_prefix(err, "mapping %s, column \"%s\"", s->name, s->cols[s->catch_all_idx].name);
      goto cleanup;
    }
    if (cv->type == AS_T_JSON) {
      if ((rc = catch_all_raw(cv->u.s.ptr, cv->u.s.len, &now, &nr, err)) != AS_OK) goto bad_catch_all;
      have_now = true;
    }
    if (prev_catch_all) {
      what = "previous catch-all value";
      if ((rc = catch_all_raw(prev_catch_all, strlen(prev_catch_all), &prev, &pr, err)) != AS_OK) goto bad_catch_all;
      have_prev = true;
    }
    char *prefix[MAX_DEPTH];
    rc = extra_updates(&u, have_now ? &nr : NULL, have_prev ? &pr : NULL, prefix, 0, 0, err);
    goto cleanup;
  bad_catch_all:
    as_error_prefix(err, "mapping %s, column \"%s\", %s", s->name, s->cols[s->catch_all_idx].name, what);
  }
cleanup:
  if (rc == AS_OK) rc = finish_update(s, &u, out, err);
  if (now.data) as_buf_free(&now); /* usually never allocated */
  if (prev.data) as_buf_free(&prev);
  as_buf_free(&u.set);
  if (u.unset.data) as_buf_free(&u.unset);
  if (u.path != u.small) free(u.path);
  return rc;
}
