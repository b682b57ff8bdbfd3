/* as_verify_int.h — private to as_verify*.c: the structures of one verify run. */
#ifndef AS_VERIFY_INT_H
#define AS_VERIFY_INT_H

#include "adapter.h"
#include "as_verify.h"

typedef struct vnode {
  const as_node_config *cfg;
  const as_adapter *ad;
  as_node *node;   /* initialised and connected on first use */
} vnode;

typedef struct vside {
  vnode *vn;
  as_verify *v;    /* the adapter's verify session */
} vside;

typedef struct ventry {
  as_value *key;   /* nkey values, owned */
  uint64_t hash;
} ventry;

typedef struct ventries {
  const as_schema *s;
  ventry *e;
  size_t n, cap;
  size_t unreadable; /* rows whose key the mapping cannot read */
} ventries;

enum { VC_ONLY_A = 1, VC_ONLY_B, VC_DIFFERENT };

typedef struct vcand {
  as_value *key;   /* owned */
  int kind;        /* VC_* as the snapshot saw it */
} vcand;

typedef struct vpair {
  const as_schema *s;
  vside side[2];
  bool client;
  as_verify_pair *out;
  vcand *cand;     /* keys the leaves found different (before the re-check) */
  size_t ncand, capcand;
} vpair;

/* as_verify.c */
as_value *vkey_dup(const as_schema *s, const as_value *k);
void vkey_free(const as_schema *s, as_value *k);
int vkey_cmp(const as_schema *s, const as_value *a, const as_value *b);
int vkey_row(const as_schema *s, const as_value *k, as_row *out);
int vkeys_push(as_verify_keys *l, char *text); /* takes text (frees it on failure) */
int vcand_push(vpair *p, const as_value *key, int kind);
void vcand_sort(vpair *p); /* key order */
void ventries_clear(ventries *l);
/* Opens both sessions (falling back to client hashing when allowed), cuts and bisects, and
 * fills p->cand, p->out's counts, segments, bytes and note. Closes the sessions. */
int vpair_compare(vpair *p, as_hash_on hash_on, as_error *err);
/* The key's canonical JSON value for output: the value itself for a one-column key ("u1",
 * 5, {"$oid": ...}), the as_key_json object for a compound key. Caller frees. */
char *as_verify_key_text(const as_schema *s, const as_value *k);

#endif
