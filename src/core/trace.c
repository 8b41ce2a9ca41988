#include "core/trace.h"
#include "core/json.h"
#include "core/error.h"
#include "core/timer.h"
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double ts, dur; /* seconds since trace_enable */
    int tid;
    char name[TRACE_NAME_MAX];
} trace_rec;

bool trace_on_ = false;
static trace_rec *recs;
static size_t cap;
static atomic_size_t next, dropped;
static double t_origin;
/* main-thread span stack */
static struct { const char *name; double t0; } stack[32];
static int depth;

void trace_enable(size_t max_events) {
    trace_disable();
    if (max_events == 0) return;
    recs = sc_alloc(max_events * sizeof *recs);
    cap = max_events;
    atomic_store(&next, 0);
    atomic_store(&dropped, 0);
    depth = 0;
    t_origin = sc_now();
    trace_on_ = true;
}

void trace_disable(void) {
    trace_on_ = false;
    sc_free(recs);
    recs = NULL;
    cap = 0;
}

void trace_event_(const char *name, double t0, double t1, int tid) {
    size_t i = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed);
    if (i >= cap) {
        atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
        return;
    }
    trace_rec *r = &recs[i];
    r->ts = t0 - t_origin;
    r->dur = t1 - t0;
    r->tid = tid;
    strncpy(r->name, name, TRACE_NAME_MAX - 1);
    r->name[TRACE_NAME_MAX - 1] = 0;
}

void trace_begin_(const char *name) {
    if (depth < (int)(sizeof stack / sizeof stack[0])) {
        stack[depth].name = name;
        stack[depth].t0 = sc_now();
    }
    depth++;
}

void trace_end_(void) {
    if (depth <= 0) return; /* unbalanced end (e.g. tracing turned on mid-span): ignore */
    depth--;
    if (depth < (int)(sizeof stack / sizeof stack[0]))
        trace_event_(stack[depth].name, stack[depth].t0, sc_now(), TRACE_TID_MAIN);
}

size_t trace_count(void) {
    size_t n = atomic_load(&next);
    return n < cap ? n : cap;
}
size_t trace_dropped(void) { return atomic_load(&dropped); }

static void put_json_string(FILE *f, const char *s) {
    char b[256];
    size_t n = sc_json_quote(b, sizeof b, s);
    if (n < sizeof b) { fputs(b, f); return; }
    char *p = malloc(n + 1);
    SC_CHECK(p, "trace: out of memory");
    sc_json_quote(p, n + 1, s);
    fputs(p, f);
    free(p);
}

sc_err trace_write(const char *dir) {
    int rank = sc_rank() < 0 ? 0 : sc_rank();
    char path[4096];
    snprintf(path, sizeof path, "%s/trace-rank%d.json", dir, rank);
    FILE *f = fopen(path, "w");
    if (!f) return sc_errorf(SC_ERR_IO, "cannot write trace file %s", path);
    fprintf(f, "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n");
    fprintf(f, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"args\":{\"name\":\"rank %d\"}},\n", rank,
            rank);
    fprintf(f, "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":\"main\"}},\n", rank,
            TRACE_TID_MAIN);
    fprintf(f, "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":\"comm\"}},\n", rank,
            TRACE_TID_COMM);
    fprintf(f, "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":\"syncbn in flight\"}}",
            rank, TRACE_TID_SYNCBN);
    size_t n = trace_count();
    for (size_t i = 0; i < n; i++) {
        const trace_rec *r = &recs[i];
        fprintf(f, ",\n{\"name\":");
        put_json_string(f, r->name);
        fprintf(f, ",\"ph\":\"X\",\"ts\":%.3f,\"dur\":%.3f,\"pid\":%d,\"tid\":%d}", r->ts * 1e6, r->dur * 1e6, rank,
                r->tid);
    }
    fprintf(f, "\n],\"otherData\":{\"dropped_events\":%zu}}\n", trace_dropped());
    if (fclose(f) != 0) return sc_errorf(SC_ERR_IO, "error writing trace file %s", path);
    return SC_OK;
}
