/* as_snapshot.c — the initial copy of a pair's mappings (see as_engine.h): the source's
 * stream is opened first and its position recorded, then every shared mapping is copied in
 * key order in batches through the normal batch path, each batch committing a snapshot
 * checkpoint (mapping index, last key) with the data, so an interrupted copy resumes after the
 * last copied key; streaming then starts at the recorded position (overlap is harmless). */
#include "as_engine_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "as_key.h"
#include "as_log.h"
#include "as_metrics.h"
#include "as_router.h"
#include "as_time.h"


static void progress(eng_pair *p, const as_schema *s, int64_t done, int64_t total, int64_t t0) {
  double secs = (double)(as_now_us() - t0) / 1e6;
  double rate = secs > 0 ? (double)done / secs : 0;
  double eta = (rate > 0 && total > done) ? (double)(total - done) / rate : 0;
  if (p->e->o->progress_tty) {
    pthread_mutex_lock(&p->e->progress_mu);
    int width = 30, fill = total > 0 ? (int)(width * (done > total ? total : done) / total) : 0;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r%s %-12s [%s] %lld/%lld %.0f rows/s ETA %.0fs   ", p->stream_id, s->name,
            bar, (long long)done, (long long)total, rate, eta);
    fflush(stderr);
    pthread_mutex_unlock(&p->e->progress_mu);
  } else {
    AS_LOG(AS_LOG_INFO, p->comp, "snapshot %s: %lld of ~%lld rows, %.0f rows/s, ETA %.0fs", s->name,
           (long long)done, (long long)total, rate, eta);
  }
}

char *eng_snapshot_ckpt(const char *start, size_t mi, const char *after) {
  json_t *j = json_pack("{s:s,s:i}", "start", start ? start : "", "m", (json_int_t)mi);
  if (!j) return NULL;
  if (after) json_object_set_new(j, "after", json_string(after));
  char *body = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(j);
  if (!body) return NULL;
  size_t n = strlen(ENG_SNAPSHOT_PREFIX) + strlen(body) + 1;
  char *out = malloc(n);
  if (out) snprintf(out, n, "%s%s", ENG_SNAPSHOT_PREFIX, body);
  free(body);
  return out;
}

/* Whether the pair copies mapping s (both nodes carry it, the direction allows it, the
 * source can snapshot). */
static bool copies(eng_pair *p, const as_schema *s) {
  return eng_node_has_schema(p->src, s) && eng_node_has_schema(p->dst, s) &&
         as_route_direction(p->e->cfg, s, p->src->cfg->name, p->dst->cfg->name) &&
         (p->src->ad->caps & AS_CAP_SNAPSHOT);
}

/* Whether the target holds any row of s (a snapshot read of one row; an error counts as yes). */
static bool target_has_rows(eng_pair *p, const as_schema *s) {
  eng_node *t = p->dst;
  if (!(t->ad->caps & AS_CAP_SNAPSHOT)) return true;
  as_snapshot *sn = NULL;
  as_error err;
  as_batch one = {0};
  pthread_mutex_lock(&t->mu);
  bool any = true;
  if (t->ad->snapshot_open(t->node, s, NULL, &sn, &err) == AS_OK) {
    int n = t->ad->snapshot_next(sn, &one, 1, &err);
    if (n == AS_OK || n == AS_EOF) any = one.n > 0;
    t->ad->snapshot_close(sn);
  }
  pthread_mutex_unlock(&t->mu);
  as_batch_clear(&one);
  return any;
}

/* A first copy into a target without rows of s begins or ends (adapter bulk_load); a failure
 * only costs speed (logged). */
static void bulk_load(eng_pair *p, const as_schema *s, bool begin) {
  eng_node *t = p->dst;
  as_error err;
  pthread_mutex_lock(&t->mu);
  int rc = t->ad->bulk_load(t->node, s, begin, &err);
  pthread_mutex_unlock(&t->mu);
  if (rc != AS_OK)
    AS_LOG(AS_LOG_WARN, p->comp, "snapshot of %s into %s: %s", s->name, t->cfg->name, err.message);
}

/* A snapshot's next batch, read by snapshot_next on a thread of its own (prefetch_start) or
 * in place (prefetch_main), collected by prefetch_wait. */
typedef struct prefetch {
  as_snapshot *sn;
  const as_adapter *ad;
  size_t max;
  as_batch *b;
  pthread_t th;
  bool running;
  int rc;
  as_error err;
} prefetch;

static void *prefetch_main(void *arg) {
  prefetch *f = arg;
  as_batch_reset(f->b);
  f->rc = f->ad->snapshot_next(f->sn, f->b, f->max, &f->err);
  return NULL;
}

static void prefetch_start(prefetch *f) {
  f->running = pthread_create(&f->th, NULL, prefetch_main, f) == 0;
  if (!f->running) prefetch_main(f); /* no thread to be had: read it now */
}

/* The batch's snapshot_next result (AS_OK, AS_EOF, or an error copied into *err). */
static int prefetch_wait(prefetch *f, as_error *err) {
  if (f->running) pthread_join(f->th, NULL);
  f->running = false;
  if (f->rc != AS_OK && f->rc != AS_EOF) *err = f->err;
  return f->rc;
}

/* Copies mapping s (#mi) from after *after (NULL: the start) through the batch path. start:
 * the snapshot's stream position (each batch commits a snapshot checkpoint); NULL: a copy
 * while streaming (each batch commits the stream's checkpoint unchanged). */
static int copy_mapping(eng_pair *p, const as_schema *s, size_t mi, const char *start,
                        char **after, as_batch *b, eng_work *w, as_error *err) {
  engine *e = p->e;
  as_snapshot *sn = NULL;
  int rc = p->src->ad->snapshot_open(p->src->node, s, *after, &sn, err);
  if (rc != AS_OK) return rc;
  int64_t total = p->src->ad->snapshot_estimate(sn), done = 0, t0 = as_now_us(), last = t0;
  p->probe = target_has_rows(p, s);
  if (p->probe)
    AS_LOG(AS_LOG_INFO, p->comp, "snapshot of %s: %s already holds rows: keys not synced yet "
           "are compared with its rows first", s->name, p->dst->cfg->name);
  as_metrics_snapshot_total(p->src->cfg->name, p->dst->cfg->name, s->name, total);
  AS_LOG(AS_LOG_INFO, p->comp, "snapshot of %s: ~%lld rows", s->name, (long long)total);
  bool bulk = !p->probe && p->dst->ad->bulk_load;
  if (bulk) bulk_load(p, s, true);
  /* Two batches: while one is decided and applied, the next is read on a thread of its own
   * (the source's server and the network work while the target writes). Keys come in order,
   * so the batch read ahead holds only keys after those being applied. */
  as_batch ahead = {0};
  as_batch *cur = b, *next = &ahead;
  prefetch f = {.sn = sn, .ad = p->src->ad, .max = e->cfg->batch_max_rows, .b = cur};
  prefetch_main(&f);
  int n = prefetch_wait(&f, err);
  for (;;) {
    if (n != AS_OK && n != AS_EOF) {
      rc = n;
      break;
    }
    bool more = n == AS_OK && !eng_stopping(e);
    if (more) {
      f.b = next;
      prefetch_start(&f);
    }
    if (cur->n > 0) {
      free(*after);
      *after = as_key_json_dup(s, &cur->d[cur->n - 1].row, NULL);
    }
    /* at the end the next mapping starts from its beginning */
    char *ck = !start ? NULL : eng_snapshot_ckpt(start, n == AS_EOF ? mi + 1 : mi,
                                                   n == AS_EOF ? NULL : *after);
    for (size_t i = 0; i < cur->n; i++) as_delta_set_origin(&cur->d[i], p->src->cfg->name);
    rc = eng_process_batch(p, cur, true, start ? ck : p->ckpt, w, err);
    free(ck);
    done += (int64_t)cur->n;
    if (rc == AS_OK && (as_now_us() - last > 1000000 || n == AS_EOF)) {
      progress(p, s, done, total, t0);
      last = as_now_us();
    }
    if (rc != AS_OK || !more || eng_stopping(e)) {
      if (more) { /* the batch read ahead is not applied: the checkpoint stays before it */
        as_error ignored;
        prefetch_wait(&f, &ignored);
      }
      break;
    }
    n = prefetch_wait(&f, err);
    as_batch *t = cur;
    cur = next;
    next = t;
  }
  as_batch_clear(&ahead);
  p->src->ad->snapshot_close(sn);
  if (bulk) bulk_load(p, s, false);
  p->probe = false;
  if (p->e->o->progress_tty) fprintf(stderr, "\n");
  if (rc == AS_OK && !eng_stopping(e))
    AS_LOG(AS_LOG_INFO, p->comp, "snapshot of %s done: %lld rows", s->name, (long long)done);
  return rc;
}

/* Runs (or resumes) the snapshot; on success *final_pos is the stream position to stream from. */
int eng_run_snapshot(eng_pair *p, const char *resume, eng_work *w, char **final_pos,
                        as_error *err) {
  engine *e = p->e;
  char *start = NULL, *after = NULL;
  size_t mi = 0;
  int rc = AS_OK;
  if (resume) {
    json_error_t je;
    json_t *j = json_loads(resume + strlen(ENG_SNAPSHOT_PREFIX), 0, &je);
    const char *st = j ? json_string_value(json_object_get(j, "start")) : NULL;
    const char *af = j ? json_string_value(json_object_get(j, "after")) : NULL;
    if (!st) {
      json_decref(j);
      return as_error_set(err, AS_DOM_ENGINE, AS_ERR, "bad snapshot checkpoint in %s: %s",
                          p->dst->cfg->name, resume);
    }
    start = strdup(st);
    after = af ? strdup(af) : NULL;
    mi = (size_t)json_integer_value(json_object_get(j, "m"));
    json_decref(j);
    AS_LOG(AS_LOG_INFO, p->comp, "resuming snapshot at mapping #%zu after key %s", mi,
           after ? after : "(start)");
  } else {
    rc = p->src->ad->stream_position(p->stream, &start, err);
    if (rc != AS_OK) return rc;
  }
  as_batch b = {0};
  for (; mi < e->cfg->nschemas && rc == AS_OK && !eng_stopping(e); mi++) {
    const as_schema *s = e->cfg->schemas[mi];
    if (copies(p, s)) rc = copy_mapping(p, s, mi, start ? start : "", &after, &b, w, err);
    free(after);
    after = NULL;
    if (rc != AS_OK || eng_stopping(e)) break;
  }
  as_batch_clear(&b);
  free(after);
  if (rc == AS_OK && !eng_stopping(e)) {
    *final_pos = start;
    return AS_OK;
  }
  free(start);
  return rc == AS_OK ? AS_RETRY : rc;
}


/* After a completed snapshot: every mapping the pair copies is recorded as copied. */
int eng_snapshot_mark_copied(eng_pair *p, as_error *err) {
  for (size_t mi = 0; mi < p->e->cfg->nschemas; mi++) {
    const as_schema *s = p->e->cfg->schemas[mi];
    if (!copies(p, s)) continue;
    int rc = as_state_copied_add(p->e->state, p->stream_id, s->name, err);
    if (rc != AS_OK) return rc;
  }
  return AS_OK;
}

/* A stream that resumes from its checkpoint copies the mappings it never copied (added to the
 * configuration since), then streams. A stream with no record at all (a state store from before
 * these records) takes every current mapping as copied. */
int eng_copy_new_mappings(eng_pair *p, eng_work *w, as_error *err) {
  engine *e = p->e;
  int any = as_state_copied_has(e->state, p->stream_id, NULL);
  if (any < 0) return as_error_set(err, AS_DOM_STATE, AS_ERR, "state store: cannot read copies");
  if (any == 0) return eng_snapshot_mark_copied(p, err);
  as_batch b = {0};
  int rc = AS_OK;
  for (size_t mi = 0; mi < e->cfg->nschemas && rc == AS_OK && !eng_stopping(e); mi++) {
    const as_schema *s = e->cfg->schemas[mi];
    if (!copies(p, s) || as_state_copied_has(e->state, p->stream_id, s->name) != 0) continue;
    AS_LOG(AS_LOG_INFO, p->comp, "mapping %s is new on this stream: copying what %s holds",
           s->name, p->src->cfg->name);
    char *after = NULL;
    rc = copy_mapping(p, s, mi, NULL, &after, &b, w, err);
    free(after);
    if (rc == AS_OK && !eng_stopping(e)) rc = as_state_copied_add(e->state, p->stream_id, s->name, err);
  }
  as_batch_clear(&b);
  return rc;
}
