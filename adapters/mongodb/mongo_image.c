/* mongo_image.c — MongoDB adapter: one row image per update event for all streams of a node
 * (README.md, "One image per update event").
 *
 * Each pair reads its own change stream. With `fullDocument: updateLookup` an update event's
 * full document is looked up when that stream reads the event, so two streams can get two
 * documents for one update (the connector, or anyone, wrote in between), and two pairs then
 * decide that update with two different row images — each writing its own back where the
 * update brings a deleted row back. So the first stream of a node to read an update event
 * leaves the image it used (a document, or none) here, under the event's resume token; the
 * node's other streams take that one. An entry goes once every stream has read it (as many
 * as the topology reads from the node, or as are open if more), or when the MONGO_IMG_MAX
 * newest (MONGO_IMG_BYTES) push it out; a stream that reads the event later than that uses
 * its own. Post-images (`full_document: whenAvailable`) are the same for
 * every stream and are not shared; nor are the connector's own writes (echoes: a stream leaves
 * out those written for its consumer, so not every stream reads them). */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "mongo_internal.h"

/* Frees entry e (caller holds img_mu). */
static void drop_locked(as_node *n, mongo_img *e) {
  if (!e->h) return;
  n->img_count[e->h % MONGO_IMG_FILTER]--;
  if (e->doc) n->img_bytes -= e->doc->len;
  as_mongo_bson_free(e->doc);
  memset(e, 0, sizeof *e);
}

void as_mongo_streams_add(as_node *n, int k) { __atomic_add_fetch(&n->nstreams, k, __ATOMIC_ACQ_REL); }

bson_t *as_mongo_image_share(as_node *n, const bson_t *event_id, const bson_t *mine, bool *shared) {
  *shared = false;
  /* every stream the topology reads from the node, open or not yet: after a restart the
   * streams open one after the other, and the first may read an update before the next opens */
  int streams = __atomic_load_n(&n->nstreams, __ATOMIC_ACQUIRE);
  if (streams < n->nconsumers) streams = n->nconsumers;
  if (streams < 2 || !event_id || bson_empty(event_id)) return NULL;
  uint64_t h = XXH3_64bits(bson_get_data(event_id), event_id->len) | 1;
  bson_t *out = NULL;
  pthread_mutex_lock(&n->img_mu);
  if (n->img_count[h % MONGO_IMG_FILTER]) {
    for (size_t k = 1; k <= n->img_n; k++) {
      mongo_img *e = &n->img[(n->img_head + MONGO_IMG_MAX - k) % MONGO_IMG_MAX];
      if (e->h != h) continue;
      *shared = true;
      out = e->doc ? as_mongo_bson_copy(e->doc) : NULL;
      if (e->doc && !out) *shared = false; /* out of memory: the stream's own */
      if (++e->readers >= streams) drop_locked(n, e);
      pthread_mutex_unlock(&n->img_mu);
      return out;
    }
  }
  /* the first reader: leave a copy of its image (none is an image too) */
  bson_t *keep = mine ? as_mongo_bson_copy(mine) : NULL;
  if (!mine || keep) {
    size_t len = keep ? keep->len : 0;
    while (n->img_n && (n->img_n == MONGO_IMG_MAX || n->img_bytes + len > MONGO_IMG_BYTES)) {
      drop_locked(n, &n->img[(n->img_head + MONGO_IMG_MAX - n->img_n) % MONGO_IMG_MAX]);
      n->img_n--;
    }
    if (len <= MONGO_IMG_BYTES) {
      n->img[n->img_head] = (mongo_img){.h = h, .readers = 1, .doc = keep};
      n->img_head = (n->img_head + 1) % MONGO_IMG_MAX;
      n->img_n++;
      n->img_bytes += len;
      n->img_count[h % MONGO_IMG_FILTER]++;
      keep = NULL;
    }
  }
  as_mongo_bson_free(keep);
  pthread_mutex_unlock(&n->img_mu);
  return NULL;
}

void as_mongo_image_free(as_node *n) {
  for (size_t i = 0; i < MONGO_IMG_MAX; i++) drop_locked(n, &n->img[i]);
  n->img_n = n->img_head = 0;
}
