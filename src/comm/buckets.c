/* comm/buckets: see include/comm/buckets.h for the contract. */
#include "comm/buckets.h"
#include "comm/comm.h"
#include "comm_internal.h"
#include "core/timer.h"
#include "core/trace.h"
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
    size_t off, count;
    size_t covered; /* elements marked this step */
    int bucket;
} bk_tensor;

typedef struct {
    size_t off, count; /* arena range (may include gaps between tensors) */
    int ntensors;
    int pending;       /* tensors not yet ready this step (main thread only) */
    int ready;         /* launched: guarded by mu */
    double t_ready, t_start, t_done;
} bk_bucket;

struct buckets {
    float *g;
    size_t n;
    int nt, nb;
    bk_tensor *t;  /* sorted by offset */
    bk_bucket *bk; /* bk[0] = the end of the arena (first to finish in the backward) */
    int P;
    MPI_Comm comm;
    bool overlap, in_step;
    int poll_us;
    /* communication thread */
    bool thread_on, shutdown;
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    int cur;  /* next bucket the thread reduces */
    int done; /* buckets reduced this step */
    buckets_stats st;
};

static int cmp_off(const void *a, const void *b) {
    const bk_tensor *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* In place SUM over ranks, then / P: the global mean of docs/method.md §9 / docs/conventions.md "Gradients". */
static void reduce_range(buckets *b, float *p, size_t count) {
    for (size_t o = 0; o < count; o += INT_MAX / 2) {
        int c = (int)(count - o < INT_MAX / 2 ? count - o : INT_MAX / 2);
        if (b->poll_us > 0) {
            MPI_Request req;
            MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, p + o, c, MPI_FLOAT, MPI_SUM, b->comm, &req));
            struct timespec ts = {0, (long)b->poll_us * 1000L};
            for (;;) {
                int flag = 0;
                MPI_CHECK(MPI_Test(&req, &flag, MPI_STATUS_IGNORE));
                if (flag) break;
                nanosleep(&ts, NULL);
            }
        } else {
            MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p + o, c, MPI_FLOAT, MPI_SUM, b->comm));
        }
    }
    const float fp = (float)b->P;
    for (size_t i = 0; i < count; i++) p[i] /= fp;
}

static void reduce_bucket(buckets *b, int i, int tid) {
    bk_bucket *k = &b->bk[i];
    double t0 = sc_now();
    reduce_range(b, b->g + k->off, k->count);
    double t1 = sc_now();
    k->t_start = t0;
    k->t_done = t1;
    if (trace_enabled()) {
        char name[TRACE_NAME_MAX];
        snprintf(name, sizeof name, "allreduce b%d %.1fMB", i, (double)k->count * 4.0 / 1048576.0);
        trace_event(name, t0, t1, tid);
    }
}

static void *comm_thread(void *arg) {
    buckets *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->shutdown && !(b->cur < b->nb && b->bk[b->cur].ready)) pthread_cond_wait(&b->cv_work, &b->mu);
        if (b->shutdown) break;
        int i = b->cur;
        pthread_mutex_unlock(&b->mu);
        reduce_bucket(b, i, TRACE_TID_COMM);
        pthread_mutex_lock(&b->mu);
        b->cur++;
        b->done++;
        pthread_cond_signal(&b->cv_done);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

buckets *buckets_create(float *grads, size_t n, const size_t *tensor_off, const size_t *tensor_count, int ntensors,
                        double bucket_mb) {
    SC_CHECK(ntensors > 0, "buckets_create: no parameter tensors");
    buckets *b = sc_calloc_n(buckets, 1);
    b->g = grads;
    b->n = n;
    b->nt = ntensors;
    b->t = sc_calloc_n(bk_tensor, ntensors);
    for (int i = 0; i < ntensors; i++) {
        b->t[i].off = tensor_off[i];
        b->t[i].count = tensor_count[i];
    }
    qsort(b->t, (size_t)ntensors, sizeof *b->t, cmp_off);
    for (int i = 0; i < ntensors; i++) {
        SC_CHECK(b->t[i].off + b->t[i].count <= n,
                 "buckets_create: tensor at offset %zu (+%zu) outside the gradient arena of %zu floats", b->t[i].off,
                 b->t[i].count, n);
        SC_CHECK(i == 0 || b->t[i - 1].off + b->t[i - 1].count <= b->t[i].off,
                 "buckets_create: tensors at offsets %zu and %zu overlap", b->t[i - 1].off, b->t[i].off);
    }
    /* reverse order: walk from the last tensor, cut when the bucket reaches the target */
    size_t target = bucket_mb > 0 ? (size_t)(bucket_mb * 1048576.0 / sizeof(float)) : (size_t)-1;
    if (target == 0) target = 1;
    b->bk = sc_calloc_n(bk_bucket, ntensors);
    int nb = 0;
    size_t acc = 0;
    for (int i = ntensors - 1; i >= 0; i--) {
        if (acc == 0) {
            b->bk[nb].off = b->t[i].off + b->t[i].count; /* end; start set below */
            b->bk[nb].count = 0;
        }
        bk_bucket *k = &b->bk[nb];
        k->count = (k->off) - b->t[i].off; /* off temporarily holds the end */
        k->ntensors++;
        b->t[i].bucket = nb;
        acc += b->t[i].count;
        if (acc >= target || i == 0) {
            size_t end = k->off;
            k->off = end - k->count;
            nb++;
            acc = 0;
        }
    }
    b->nb = nb;
    b->P = comm_size();
    b->overlap = true;
    b->comm = MPI_COMM_NULL;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv_work, NULL);
    pthread_cond_init(&b->cv_done, NULL);
    if (b->P > 1) {
        MPI_CHECK(MPI_Comm_dup(comm_world_dup(), &b->comm));
        MPI_CHECK(MPI_Comm_set_errhandler(b->comm, MPI_ERRORS_RETURN));
        if (comm_thread_multiple()) {
            b->cur = nb; /* idle until the first step */
            SC_CHECK(pthread_create(&b->thr, NULL, comm_thread, b) == 0, "cannot start the communication thread");
            b->thread_on = true;
        }
    }
    b->st.nbuckets = nb;
    b->st.overlap = 1.0;
    return b;
}

void buckets_free(buckets *b) {
    if (!b) return;
    if (b->thread_on) {
        pthread_mutex_lock(&b->mu);
        b->shutdown = true;
        pthread_cond_signal(&b->cv_work);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->thr, NULL);
    }
    if (b->comm != MPI_COMM_NULL) MPI_Comm_free(&b->comm);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv_work);
    pthread_cond_destroy(&b->cv_done);
    sc_free(b->t);
    sc_free(b->bk);
    sc_free(b);
}

void buckets_set_overlap(buckets *b, bool on) {
    SC_CHECK(!b->in_step, "buckets_set_overlap inside a step");
    b->overlap = on;
}

void buckets_set_poll_us(buckets *b, int poll_us) {
    SC_CHECK(!b->in_step, "buckets_set_poll_us inside a step");
    b->poll_us = poll_us < 0 ? 0 : poll_us;
}

void buckets_begin_step(buckets *b) {
    SC_CHECK(!b->in_step, "buckets_begin_step: the previous step was not finished with buckets_finish");
    for (int i = 0; i < b->nt; i++) b->t[i].covered = 0;
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < b->nb; i++) {
        b->bk[i].pending = b->bk[i].ntensors;
        b->bk[i].ready = 0;
        b->bk[i].t_ready = b->bk[i].t_start = b->bk[i].t_done = 0;
    }
    b->cur = 0;
    b->done = 0;
    pthread_mutex_unlock(&b->mu);
    b->in_step = true;
}

static void launch(buckets *b, int i) {
    b->bk[i].t_ready = sc_now();
    if (!(b->thread_on && b->overlap)) return; /* reduced in finish */
    pthread_mutex_lock(&b->mu);
    b->bk[i].ready = 1;
    if (i == b->cur) pthread_cond_signal(&b->cv_work); /* the thread only ever waits for bucket cur */
    pthread_mutex_unlock(&b->mu);
}

void buckets_mark_ready(buckets *b, size_t off, size_t count) {
    SC_CHECK(b->in_step, "buckets_mark_ready outside a step (call buckets_begin_step first)");
    size_t end = off + count;
    /* first tensor whose end is past off */
    int lo = 0, hi = b->nt;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (b->t[mid].off + b->t[mid].count <= off) lo = mid + 1;
        else hi = mid;
    }
    for (int i = lo; i < b->nt && b->t[i].off < end; i++) {
        bk_tensor *t = &b->t[i];
        if (t->covered >= t->count && t->count > 0) continue; /* already final: a repeated mark is harmless */
        size_t a = off > t->off ? off : t->off;
        size_t z = end < t->off + t->count ? end : t->off + t->count;
        t->covered += z > a ? z - a : 0;
        if (t->covered >= t->count) {
            t->covered = t->count ? t->count : 1;
            if (--b->bk[t->bucket].pending == 0) launch(b, t->bucket);
        }
    }
}

void buckets_model_hook(void *b, size_t off, size_t count) { buckets_mark_ready((buckets *)b, off, count); }

void buckets_finish(buckets *b) {
    SC_CHECK(b->in_step, "buckets_finish without buckets_begin_step");
    double t0 = sc_now();
    /* launch every bucket some tensor of which was never marked (in order) */
    for (int i = 0; i < b->nb; i++)
        if (b->bk[i].pending > 0) {
            b->bk[i].pending = 0;
            launch(b, i);
        }
    if (b->P > 1) {
        if (b->thread_on && b->overlap) {
            trace_begin("wait allreduce");
            pthread_mutex_lock(&b->mu);
            while (b->done < b->nb) pthread_cond_wait(&b->cv_done, &b->mu);
            pthread_mutex_unlock(&b->mu);
            trace_end();
        } else {
            for (int i = 0; i < b->nb; i++) reduce_bucket(b, i, TRACE_TID_MAIN);
        }
    }
    double t1 = sc_now();
    b->in_step = false;
    buckets_stats *s = &b->st;
    s->nbuckets = b->nb;
    s->bytes = 0;
    s->comm_s = s->latency_s = s->max_bucket_s = 0;
    if (b->P > 1)
        for (int i = 0; i < b->nb; i++) {
            const bk_bucket *k = &b->bk[i];
            double d = k->t_done - k->t_start;
            s->bytes += (double)k->count * sizeof(float);
            s->comm_s += d;
            s->latency_s += k->t_done - k->t_ready;
            if (d > s->max_bucket_s) s->max_bucket_s = d;
        }
    s->exposed_s = b->P > 1 ? t1 - t0 : 0;
    s->overlap = s->comm_s > 0 ? 1.0 - s->exposed_s / s->comm_s : 1.0;
    if (s->overlap < 0) s->overlap = 0;
    if (s->overlap > 1) s->overlap = 1;
}

const buckets_stats *buckets_last_stats(const buckets *b) { return &b->st; }
int buckets_count(const buckets *b) { return b->nb; }

void buckets_info(const buckets *b, int i, size_t *off, size_t *count, double *reduce_s) {
    SC_CHECK(i >= 0 && i < b->nb, "buckets_info: bucket %d of %d", i, b->nb);
    if (off) *off = b->bk[i].off;
    if (count) *count = b->bk[i].count;
    if (reduce_s) *reduce_s = b->bk[i].t_done - b->bk[i].t_start;
}
