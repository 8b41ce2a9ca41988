/* ssl/wavefront: see wavefront.h. Coroutines are ucontext's (one stack each, allocated at creation); a switch
 * happens only inside the reducer, which layers call from the main thread outside their parallel regions. */
#include "ssl/wavefront.h"
#include "comm/comm.h"
#include "comm/timers.h"
#include "core/error.h"
#include "core/timer.h"
#include "core/trace.h"
#include <string.h>
#include <ucontext.h>

#define WF_STACK_BYTES ((size_t)2 << 20)

enum { WF_IDLE = 0, WF_READY, WF_PENDING, WF_DONE };

typedef struct {
    ucontext_t ctx;
    void (*fn)(void *);
    void *arg;
    model *m;
    model_scratch_ref s;
    int state;
    int req;              /* comm_ireq handle of the reduction in flight (-1: none / one rank) */
    bool complete;        /* seen complete by a test before its wait */
    double t_start, t_done;
    double *buf;          /* its reduction buffer [max_doubles] */
} wf_task;

struct wavefront {
    ucontext_t main;
    wf_task task[WF_MAX_TASKS];
    char *stacks;
    double *bufs;
    int max_doubles, ntask, cur;
    bool yield;
    int timer;
    int nflight;      /* reductions started and not yet seen complete */
    double flight_t0; /* when nflight last became nonzero */
    nn_reducer red;
    wf_stats st;
};

static _Thread_local wavefront *wf_running;

/* in flight: the time during which at least one reduction is (the union of their spans, observed in time order) */
static void flight_start(wavefront *w, double t) {
    if (w->nflight++ == 0) w->flight_t0 = t;
}
static void flight_done(wavefront *w, double t) {
    if (--w->nflight == 0) w->st.inflight_s += t - w->flight_t0;
}

static void account(wavefront *w, double t_start, double t_done, double wait0, double wait1) {
    w->st.exposed_s += wait1 - wait0;
    comm_timer_add(w->timer, wait1 - wait0);
    if (wait1 > wait0) trace_event("syncbn wait", wait0, wait1, TRACE_TID_MAIN);
    trace_event("syncbn in flight", t_start, t_done, TRACE_TID_SYNCBN);
}

static void wf_sum(double *buf, int n, void *ctx) {
    wavefront *w = ctx;
    w->st.calls++;
    w->st.doubles += n;
    if (w->cur < 0 || !w->yield) { /* blocking: in flight and exposed are the same time */
        double t0 = sc_now();
        comm_bn_reducer()->sum_f64(buf, n, NULL);
        double t1 = sc_now();
        if (comm_size() > 1) {
            flight_start(w, t0);
            flight_done(w, t1);
            account(w, t0, t1, t0, t1);
        }
        return;
    }
    wf_task *k = &w->task[w->cur];
    k->t_start = sc_now();
    k->req = comm_iallreduce_sum_f64(buf, n);
    if (k->req < 0) return; /* complete at once (one rank): nothing to hide, the pass runs on without a switch */
    k->complete = false;
    k->t_done = k->t_start;
    if (k->req >= 0) flight_start(w, k->t_start);
    /* drive the other reductions in flight (Open MPI has no progress thread) and note when they completed: one
     * MPI_Testsome for all, one progress call (each is a poll of the sockets over TCP) */
    int h[WF_MAX_TASKS], who[WF_MAX_TASKS], m = 0;
    bool done[WF_MAX_TASKS];
    for (int i = 0; i < w->ntask; i++) {
        wf_task *o = &w->task[i];
        if (i != w->cur && o->state == WF_PENDING && !o->complete) { h[m] = o->req; who[m++] = i; }
    }
    if (m > 0) comm_ireq_testsome(h, m, done);
    for (int j = 0; j < m; j++)
        if (done[j]) {
            wf_task *o = &w->task[who[j]];
            o->complete = true;
            o->t_done = k->t_start;
            flight_done(w, o->t_done);
        }
    k->state = WF_PENDING;
    swapcontext(&k->ctx, &w->main);
}

static double *wf_buf(int n, void *ctx) {
    wavefront *w = ctx;
    if (w->cur < 0 || !w->yield) return NULL;
    SC_CHECK(n <= w->max_doubles, "wavefront: a reduction of %d doubles, planned for at most %d", n, w->max_doubles);
    return w->task[w->cur].buf;
}

wavefront *wf_create(int max_doubles, bool yield) {
    wavefront *w = sc_calloc_n(wavefront, 1);
    w->max_doubles = max_doubles > 1 ? max_doubles : 1;
    w->yield = yield;
    w->cur = -1;
    w->timer = comm_timer_id("syncbn");
    w->red = (nn_reducer){wf_sum, w, wf_buf, comm_size() == 1};
    if (yield) {
        w->stacks = sc_alloc(WF_STACK_BYTES * WF_MAX_TASKS);
        w->bufs = sc_calloc_n(double, (size_t)w->max_doubles * WF_MAX_TASKS);
        for (int i = 0; i < WF_MAX_TASKS; i++) w->task[i].buf = w->bufs + (size_t)i * w->max_doubles;
    }
    return w;
}

void wf_free(wavefront *w) {
    if (!w) return;
    sc_free(w->stacks);
    sc_free(w->bufs);
    sc_free(w);
}

const nn_reducer *wf_reducer(wavefront *w) { return &w->red; }
const wf_stats *wf_get_stats(const wavefront *w) { return &w->st; }

void wf_add(wavefront *w, void (*fn)(void *), void *arg, model *m, model_scratch_ref s) {
    SC_CHECK(w->ntask < WF_MAX_TASKS, "wavefront: more than %d tasks", WF_MAX_TASKS);
    wf_task *k = &w->task[w->ntask++];
    k->fn = fn;
    k->arg = arg;
    k->m = m;
    k->s = s;
    k->state = WF_READY;
    k->req = -1;
}

static void wf_entry(void) {
    wavefront *w = wf_running;
    wf_task *k = &w->task[w->cur];
    k->fn(k->arg);
    k->state = WF_DONE; /* returning resumes uc_link: the scheduler */
}

void wf_run(wavefront *w) {
    if (!w->yield) { /* one after another, each to its end */
        for (int i = 0; i < w->ntask; i++) w->task[i].fn(w->task[i].arg);
        w->ntask = 0;
        return;
    }
    SC_CHECK(w->cur < 0 && !wf_running, "wf_run inside a task");
    wf_running = w;
    /* the models' own scratch, given back after the run */
    model_scratch_ref own[WF_MAX_TASKS];
    for (int i = 0; i < w->ntask; i++) {
        wf_task *k = &w->task[i];
        if (k->m) {
            own[i] = model_scratch_current(k->m); /* nothing swapped yet */
            if (!k->s.buf) k->s = own[i];
        }
        getcontext(&k->ctx);
        k->ctx.uc_stack.ss_sp = w->stacks + (size_t)i * WF_STACK_BYTES;
        k->ctx.uc_stack.ss_size = WF_STACK_BYTES;
        k->ctx.uc_link = &w->main;
    }
    for (int i = 0; i < w->ntask; i++) makecontext(&w->task[i].ctx, wf_entry, 0);
    int left = w->ntask;
    while (left > 0) {
        for (int i = 0; i < w->ntask; i++) {
            wf_task *k = &w->task[i];
            if (k->state == WF_DONE) continue;
            if (k->state == WF_PENDING) {
                double t0 = sc_now(), t1 = t0;
                if (!k->complete) {
                    comm_ireq_wait(k->req);
                    t1 = sc_now();
                    k->t_done = t1;
                    if (k->req >= 0) flight_done(w, t1);
                } else {
                    comm_ireq_wait(k->req); /* frees the handle; already complete */
                }
                if (k->req >= 0) account(w, k->t_start, k->t_done, t0, t1);
                k->req = -1;
            }
            if (k->m) model_scratch_use(k->m, k->s);
            w->cur = i;
            swapcontext(&w->main, &k->ctx);
            w->cur = -1;
            if (k->state == WF_DONE) left--;
        }
    }
    for (int i = 0; i < w->ntask; i++)
        if (w->task[i].m) model_scratch_use(w->task[i].m, own[i]);
    w->ntask = 0;
    wf_running = NULL;
}
