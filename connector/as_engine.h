/* as_engine.h — the pipeline (docs/ARCHITECTURE.md): capture -> map -> resolve -> route -> apply.
 *
 * One thread per routed node pair (source -> target, as_router.h). Each pair: load the
 * target's checkpoint for "<source>-><target>"; without one, open the stream first, record its
 * position, copy every shared mapping in key order (snapshot, resumable by last key), then
 * stream from the recorded position. Every batch: dead letters recorded, each delta routed
 * (topology, direction), resolved last-write-wins against the state store's version of its key
 * (greatest (hlc, origin) wins; deletes leave tombstones), applied to the target in one
 * transaction with the checkpoint, then acknowledged to the source. A local change that lost
 * is repaired: the winner is written back to the node it came from. Transient failures
 * reconnect with exponential backoff and jitter and resume from the committed checkpoint. */
#ifndef AS_ENGINE_H
#define AS_ENGINE_H

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>

#include "as_config.h"

typedef struct as_engine_opts {
  atomic_int *stop;             /* set to non-zero (by a signal handler) to stop cleanly */
  int64_t exit_when_idle_ms;    /* > 0: stop once every pair is streaming and idle this long */
  const char *metrics_listen;   /* "127.0.0.1:PORT" or NULL (overrides the config) */
  bool progress_tty;            /* draw a snapshot progress bar on stderr */
  bool resnapshot;              /* copy every mapping again, ignoring committed checkpoints */
} as_engine_opts;

/* Connects every node, installs (idempotently) and runs until *stop or idle exit.
 * Returns AS_OK on a clean stop, AS_ERR (err set) when a pair stopped on an error that retry
 * cannot fix (on_error: stop, lost history with on_history_lost: fail, bad mapping). */
int as_engine_run(const as_config *cfg, const as_engine_opts *o, as_error *err);

/* Installs bookkeeping, tables and triggers on every node, then returns. */
int as_engine_install(const as_config *cfg, as_error *err);
/* Removes triggers and bookkeeping from every node. */
int as_engine_uninstall(const as_config *cfg, as_error *err);

/* Re-applies open dead letters (after the user fixed the mapping or data). Prints one line
 * per letter to out. Returns the number still failing, or a negative AS_* code. */
int as_engine_dlq_retry(const as_config *cfg, FILE *out, as_error *err);

#endif
