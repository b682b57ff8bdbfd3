/* as_cli.c — status and dlq list: they only read the state store, so they work while
 * `arraysync run` is running (WAL mode). The conflicts commands: cmd_conflicts.c. */
#include "as_cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "as_state.h"


static int open_ro(const as_config *cfg, as_state **st, as_error *err) {
  if (access(cfg->state_path, R_OK) != 0) {
    return as_error_set(err, AS_DOM_STATE, AS_ENOTFOUND,
                        "no state store at %s yet: `arraysync run -c %s` has not run", cfg->state_path,
                        cfg->file);
  }
  return as_state_open(cfg->state_path, true, st, err);
}

static void fmt_time(int64_t us, char *buf, size_t n) {
  if (!us) {
    snprintf(buf, n, "-");
    return;
  }
  time_t t = (time_t)(us / 1000000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

typedef struct status_ctx {
  FILE *out;
  json_t *arr;
  size_t n;
  as_state *st;
  json_t *maps; /* per mapping rows of the current stream (JSON output) */
} status_ctx;

static int mapping_row(void *vctx, const as_stream_mapping_stats *m) {
  status_ctx *c = vctx;
  if (c->maps) {
    json_array_append_new(c->maps, json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "mapping", m->mapping,
                                             "captured", (json_int_t)m->captured, "applied",
                                             (json_int_t)m->applied, "skipped",
                                             (json_int_t)m->skipped, "conflicts",
                                             (json_int_t)m->conflicts, "dead_letters",
                                             (json_int_t)m->dead));
    return AS_OK;
  }
  fprintf(c->out, "  %-22s %-10s %10lld %10lld %9lld %9lld %6lld\n", m->mapping, "", (long long)m->captured,
          (long long)m->applied, (long long)m->skipped, (long long)m->conflicts, (long long)m->dead);
  return AS_OK;
}

static int status_row(void *vctx, const as_stream_stats *s) {
  status_ctx *c = vctx;
  c->n++;
  if (c->arr) {
    c->maps = json_array();
    as_state_stream_mapping_each(c->st, s->stream_id, mapping_row, c, NULL);
    json_array_append_new(
        c->arr, json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:o}", "stream",
                          s->stream_id, "source", s->source, "target", s->target, "phase",
                          s->phase, "checkpoint", s->checkpoint, "captured", (json_int_t)s->captured,
                          "applied", (json_int_t)s->applied, "skipped", (json_int_t)s->skipped,
                          "conflicts", (json_int_t)s->conflicts, "dead_letters",
                          (json_int_t)s->dead, "lag_ms", (json_int_t)s->lag_ms, "updated_us",
                          (json_int_t)s->updated_us, "error", s->error, "mappings", c->maps));
    c->maps = NULL;
    return AS_OK;
  }
  char when[32];
  fmt_time(s->updated_us, when, sizeof when);
  char ck[40];
  snprintf(ck, sizeof ck, "%.36s%s", s->checkpoint, strlen(s->checkpoint) > 36 ? "…" : "");
  fprintf(c->out, "%-24s %-10s %10lld %10lld %9lld %9lld %6lld %8lld  %-20s  %s\n", s->stream_id,
          s->phase, (long long)s->captured, (long long)s->applied, (long long)s->skipped,
          (long long)s->conflicts, (long long)s->dead, (long long)s->lag_ms, when, ck);
  if (s->error[0]) fprintf(c->out, "%-24s error: %s\n", "", s->error);
  as_state_stream_mapping_each(c->st, s->stream_id, mapping_row, c, NULL);
  return AS_OK;
}

typedef struct gauge_list {
  FILE *out;
  json_t *arr;
} gauge_list;

static int gauge_row(void *vctx, const char *node, const char *metric, const char *consumer,
                     double value, int64_t updated_us) {
  gauge_list *g = vctx;
  if (g->arr) {
    json_array_append_new(g->arr, json_pack("{s:s,s:s,s:s,s:f,s:I}", "node", node, "metric", metric,
                                            "consumer", consumer, "value", value, "updated_us",
                                            (json_int_t)updated_us));
  } else {
    fprintf(g->out, "%s %s consumer %s: %.0f\n", node, metric, consumer, value);
  }
  return AS_OK;
}

int as_cli_status(const as_config *cfg, FILE *out, bool json, as_error *err) {
  as_state *st = NULL;
  int rc = open_ro(cfg, &st, err);
  if (rc != AS_OK) return rc;
  status_ctx c = {.out = out, .arr = json ? json_array() : NULL, .st = st};
  if (!json) {
    fprintf(out, "%-24s %-10s %10s %10s %9s %9s %6s %8s  %-20s  %s\n", "STREAM", "PHASE",
            "CAPTURED", "APPLIED", "SKIPPED", "CONFLICTS", "DEAD", "LAG_MS", "UPDATED", "CHECKPOINT");
  }
  rc = as_state_stream_each(st, status_row, &c, err);
  json_t *gauges = json ? json_array() : NULL;
  gauge_list gl = {.out = out, .arr = gauges};
  if (rc == AS_OK) rc = as_state_gauge_each(st, gauge_row, &gl, err);
  int64_t dead_open = as_state_dead_count(st, "open");
  int64_t conflicts = as_state_conflict_count(st, NULL, false);
  int64_t conflicts_open = as_state_conflict_count(st, NULL, true);
  if (rc == AS_OK) {
    if (json) {
      json_t *o = json_pack("{s:o,s:o,s:I,s:I,s:I,s:s}", "streams", c.arr, "gauges", gauges,
                            "dead_letters_open", (json_int_t)dead_open, "conflicts",
                            (json_int_t)conflicts, "conflicts_open", (json_int_t)conflicts_open,
                            "state", cfg->state_path);
      gauges = NULL;
      c.arr = NULL;
      char *txt = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
      fprintf(out, "%s\n", txt ? txt : "{}");
      free(txt);
      json_decref(o);
    } else {
      if (c.n == 0) fprintf(out, "(no streams recorded yet)\n");
      fprintf(out, "dead letters open: %lld   conflicts recorded: %lld (open: %lld)   state: %s\n",
              (long long)dead_open, (long long)conflicts, (long long)conflicts_open,
              cfg->state_path);
    }
  }
  json_decref(c.arr);
  json_decref(gauges);
  as_state_close(st);
  return rc;
}

typedef struct dlq_ctx {
  FILE *out;
  json_t *arr;
} dlq_ctx;

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

static int dlq_row(void *vctx, const as_dead_letter *d) {
  dlq_ctx *c = vctx;
  if (c->arr) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(d->id));
    json_object_set_new(o, "created_us", json_integer(d->created_us));
    json_object_set_new(o, "status", str_or_null(d->status));
    json_object_set_new(o, "stage", str_or_null(d->stage));
    json_object_set_new(o, "mapping", str_or_null(d->mapping));
    json_object_set_new(o, "source", str_or_null(d->source));
    json_object_set_new(o, "target", str_or_null(d->target));
    json_object_set_new(o, "key", str_or_null(d->key));
    json_object_set_new(o, "error", str_or_null(d->error));
    json_object_set_new(o, "position", str_or_null(d->pos));
    json_object_set_new(o, "raw", str_or_null(d->raw));
    json_object_set_new(o, "delta", str_or_null(d->delta_json));
    json_object_set_new(o, "retries", json_integer(d->retries));
    json_array_append_new(c->arr, o);
    return AS_OK;
  }
  char when[32];
  fmt_time(d->created_us, when, sizeof when);
  fprintf(c->out, "#%lld %s [%s] %s stage=%s %s -> %s key=%s\n    error: %s\n", (long long)d->id,
          when, d->status ? d->status : "", d->mapping ? d->mapping : "?", d->stage ? d->stage : "?",
          d->source ? d->source : "?", d->target ? d->target : "?", d->key ? d->key : "?",
          d->error ? d->error : "");
  if (d->raw) fprintf(c->out, "    raw: %.300s%s\n", d->raw, strlen(d->raw) > 300 ? "…" : "");
  if (d->pos) fprintf(c->out, "    position: %.120s\n", d->pos);
  return AS_OK;
}

int as_cli_dlq_list(const as_config *cfg, FILE *out, bool json, as_error *err) {
  as_state *st = NULL;
  int rc = open_ro(cfg, &st, err);
  if (rc != AS_OK) return rc;
  dlq_ctx c = {.out = out, .arr = json ? json_array() : NULL};
  rc = as_state_dead_each(st, NULL, dlq_row, &c, err);
  if (rc == AS_OK && json) {
    char *txt = json_dumps(c.arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fprintf(out, "%s\n", txt ? txt : "[]");
    free(txt);
  } else if (rc == AS_OK) {
    fprintf(out, "%lld dead letters (%lld open)\n", (long long)as_state_dead_count(st, NULL),
            (long long)as_state_dead_count(st, "open"));
  }
  json_decref(c.arr);
  as_state_close(st);
  return rc;
}
