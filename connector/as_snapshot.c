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
    if (!eng_node_has_schema(p->src, s) || !eng_node_has_schema(p->dst, s) ||
        !as_route_direction(e->cfg, s, p->src->cfg->name, p->dst->cfg->name) ||
        !(p->src->ad->caps & AS_CAP_SNAPSHOT)) {
      free(after);
      after = NULL;
      continue;
    }
    as_snapshot *sn = NULL;
    rc = p->src->ad->snapshot_open(p->src->node, s, after, &sn, err);
    if (rc != AS_OK) break;
    int64_t total = p->src->ad->snapshot_estimate(sn), done = 0, t0 = as_now_us(), last = t0;
    as_metrics_snapshot_total(p->src->cfg->name, p->dst->cfg->name, s->name, total);
    AS_LOG(AS_LOG_INFO, p->comp, "snapshot of %s: ~%lld rows", s->name, (long long)total);
    for (;;) {
      as_batch_reset(&b);
      int n = p->src->ad->snapshot_next(sn, &b, e->cfg->batch_max_rows, err);
      if (n != AS_OK && n != AS_EOF) {
        rc = n;
        break;
      }
      char *ck = NULL;
      if (b.n > 0) {
        free(after);
        after = as_key_json_dup(s, &b.d[b.n - 1].row, NULL);
      }
      ck = n == AS_EOF ? NULL : eng_snapshot_ckpt(start, mi, after);
      if (n == AS_EOF) {
        /* mapping done: the next one starts from its beginning */
        ck = eng_snapshot_ckpt(start, mi + 1, NULL);
      }
      for (size_t i = 0; i < b.n; i++) {
        as_delta_set_origin(&b.d[i], p->src->cfg->name);
      }
      rc = eng_process_batch(p, &b, true, ck, w, err);
      free(ck);
      done += (int64_t)b.n;
      if (rc != AS_OK) break;
      if (as_now_us() - last > 1000000 || n == AS_EOF) {
        progress(p, s, done, total, t0);
        last = as_now_us();
      }
      if (n == AS_EOF || eng_stopping(e)) break;
    }
    p->src->ad->snapshot_close(sn);
    if (p->e->o->progress_tty) fprintf(stderr, "\n");
    free(after);
    after = NULL;
    if (rc != AS_OK || eng_stopping(e)) break;
    AS_LOG(AS_LOG_INFO, p->comp, "snapshot of %s done: %lld rows", s->name, (long long)done);
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

