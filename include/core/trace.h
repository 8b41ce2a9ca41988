/* core/trace: a Chrome/Perfetto timeline ("traceEvents", complete events ph "X", ts/dur in microseconds,
 * pid = rank, tid = thread: TRACE_TID_MAIN or TRACE_TID_COMM). Events go into a buffer allocated once by
 * trace_enable (no malloc per event; events past the capacity are counted and dropped). Off (the
 * default) costs one predictable branch per call. Open the file in chrome://tracing or ui.perfetto.dev. */
#ifndef SC_CORE_TRACE_H
#define SC_CORE_TRACE_H
#include "core/error.h"
#include <stdbool.h>
#include <stddef.h>

/* TRACE_TID_SYNCBN: a track for the SyncBN reductions in flight (ssl/wavefront.c), not a thread */
enum { TRACE_TID_MAIN = 0, TRACE_TID_COMM = 1, TRACE_TID_SYNCBN = 2 };
#define TRACE_NAME_MAX 40 /* longer names are cut */

extern bool trace_on_;

/* Allocates room for max_events (about 64 bytes each) and starts the clock. Rank comes from sc_rank(). */
void trace_enable(size_t max_events);
void trace_disable(void); /* frees the buffer */
static inline bool trace_enabled(void) { return trace_on_; }

/* Nested spans of the main thread (depth up to 32). */
void trace_begin_(const char *name);
void trace_end_(void);
static inline void trace_begin(const char *name) { if (trace_on_) trace_begin_(name); }
static inline void trace_end(void) { if (trace_on_) trace_end_(); }

/* A finished span from any thread (thread-safe): t0, t1 from sc_now() (seconds). */
void trace_event_(const char *name, double t0, double t1, int tid);
static inline void trace_event(const char *name, double t0, double t1, int tid) {
    if (trace_on_) trace_event_(name, t0, t1, tid);
}

size_t trace_count(void);   /* events recorded */
size_t trace_dropped(void); /* events lost to a full buffer */
/* Writes <dir>/trace-rank<R>.json (R = sc_rank(), 0 outside MPI). Local (every rank writes its own). */
sc_err trace_write(const char *dir);
#endif
