/* data/loader: global sampler + double-buffered threaded loader (see include/data/loader.h). */
#include "data/loader.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    loader_batch b;
    int ready;
} slot;

typedef struct {
    loader *ld;
    int id;
    uint8_t *img;   /* one image read from a shard */
    float *scratch; /* augmentation scratch */
} worker;

struct loader {
    loader_cfg cfg;
    int eval;                 /* evaluation pass: fixed order, last batch partial */
    int64_t eval_begin, eval_end;
    int64_t n, steps;         /* steps per epoch (training) or batches per pass (eval) */
    int max_b, rank_begin, rank_end;
    int64_t *perm;            /* permutation of the epoch `perm_epoch` (training only) */
    int64_t perm_epoch;
    slot slots[2];
    int64_t next_epoch, next_step; /* what loader_next returns next */
    int cur;                       /* slot the caller holds, -1 none */
    /* job state (one job = one batch into one slot) */
    pthread_mutex_t mu;
    pthread_cond_t cv_job, cv_done;
    int job_slot;                  /* -1: no job */
    int64_t job_epoch, job_step, job_gen;
    int job_next, job_done, job_b;
    int stop;
    sc_err err;
    char err_msg[1024];
    int nworkers;
    pthread_t *threads;
    worker *workers;
    worker sync_worker;            /* workers = 0 */
};

void loader_epoch_perm(uint64_t seed, int64_t epoch, int64_t n, int64_t *perm) {
    rng_stream r = rng_stream_make(seed, (uint64_t)epoch, ~0ull, ~0ull);
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int64_t j = (int64_t)rng_below(&r, (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

void loader_rank_slice(int global_batch, int rank, int nranks, int *begin, int *end) {
    *begin = (int)((int64_t)rank * global_batch / nranks);
    *end = (int)((int64_t)(rank + 1) * global_batch / nranks);
}

int64_t loader_steps_per_epoch(const loader *ld) { return ld->steps; }
int loader_max_local_batch(const loader *ld) { return ld->max_b; }

/* Sample index and batch size of job (epoch, step) position k, for the loader's mode. */
static int job_size(const loader *ld, int64_t step) {
    if (!ld->eval) return ld->rank_end - ld->rank_begin;
    int64_t lo = ld->eval_begin + step * ld->cfg.global_batch, hi = lo + ld->cfg.global_batch;
    if (lo >= ld->eval_end) return 0;
    if (hi > ld->eval_end) hi = ld->eval_end;
    return (int)(hi - lo);
}

static int64_t job_index(const loader *ld, int64_t step, int k) {
    if (ld->eval) return ld->eval_begin + step * ld->cfg.global_batch + k;
    return ld->perm[step * ld->cfg.global_batch + ld->rank_begin + k];
}

/* Produces sample k of the current job into its slot; returns an error code (message in this thread). */
static sc_err make_sample(loader *ld, worker *wk, slot *sl, int k, int64_t epoch, int64_t step) {
    const data_set *set = ld->cfg.set;
    int64_t idx = job_index(ld, step, k);
    const uint8_t *img;
    SC_TRY(data_get_image(set, idx, wk->img, &img));
    loader_batch *b = &sl->b;
    b->labels[k] = set->labels[idx];
    b->index[k] = idx;
    /* CNHW of this batch's own b (a rank's slice or the last eval batch may be short of max_b) */
    const int64_t plane = (int64_t)b->h * b->w, cstride = (int64_t)b->b * plane;
    for (int v = 0; v < b->nviews; v++) {
        rng_stream r = rng_stream_make(ld->cfg.seed, (uint64_t)epoch, (uint64_t)idx, (uint64_t)v);
        aug_apply(&ld->cfg.view[v], &r, img, set->c, set->h, set->w, b->x[v] + k * plane, cstride, wk->scratch);
    }
    return SC_OK;
}

/* Takes samples of the current job until none is left. Called with mu held; returns with it held. */
static void work_on_job(loader *ld, worker *wk) {
    while (ld->job_slot >= 0 && ld->job_next < ld->job_b) {
        int k = ld->job_next++;
        slot *sl = &ld->slots[ld->job_slot];
        int64_t e = ld->job_epoch, s = ld->job_step;
        pthread_mutex_unlock(&ld->mu);
        sc_err err = make_sample(ld, wk, sl, k, e, s);
        pthread_mutex_lock(&ld->mu);
        if (err && !ld->err) {
            ld->err = err;
            snprintf(ld->err_msg, sizeof ld->err_msg, "%s", sc_last_error());
        }
        if (++ld->job_done == ld->job_b) {
            sl->ready = 1;
            ld->job_slot = -1;
            pthread_cond_broadcast(&ld->cv_done);
        }
    }
}

static void *worker_main(void *arg) {
    worker *wk = arg;
    loader *ld = wk->ld;
    pthread_mutex_lock(&ld->mu);
    int64_t seen = 0;
    for (;;) {
        while (!ld->stop && (ld->job_slot < 0 || ld->job_gen == seen || ld->job_next >= ld->job_b))
            pthread_cond_wait(&ld->cv_job, &ld->mu);
        if (ld->stop) break;
        seen = ld->job_gen;
        work_on_job(ld, wk);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

/* Starts producing (epoch, step) into slot si (mu held). Training epochs recompute the permutation here,
 * when no job is running, so workers never see it change. */
static void start_job(loader *ld, int si, int64_t epoch, int64_t step) {
    if (!ld->eval && ld->perm_epoch != epoch) {
        loader_epoch_perm(ld->cfg.seed, epoch, ld->n, ld->perm);
        ld->perm_epoch = epoch;
    }
    slot *sl = &ld->slots[si];
    sl->ready = 0;
    sl->b.epoch = epoch;
    sl->b.step = step;
    sl->b.b = job_size(ld, step);
    ld->job_slot = si;
    ld->job_epoch = epoch;
    ld->job_step = step;
    ld->job_b = sl->b.b;
    ld->job_next = ld->job_done = 0;
    ld->job_gen++;
    if (ld->job_b == 0) {
        sl->ready = 1;
        ld->job_slot = -1;
        return;
    }
    if (ld->nworkers == 0) {
        work_on_job(ld, &ld->sync_worker);
        return;
    }
    pthread_cond_broadcast(&ld->cv_job);
}

static void wait_idle(loader *ld) {
    while (ld->job_slot >= 0) pthread_cond_wait(&ld->cv_done, &ld->mu);
}

static void advance(const loader *ld, int64_t *epoch, int64_t *step) {
    if (++*step >= ld->steps + (ld->eval ? 1 : 0)) { /* eval: one extra step returns b = 0 */
        *step = 0;
        ++*epoch;
    }
}

sc_err loader_next(loader *ld, loader_batch *batch) {
    pthread_mutex_lock(&ld->mu);
    int64_t e = ld->next_epoch, s = ld->next_step;
    int want = -1;
    for (int k = 0; k < 2; k++) {
        slot *sl = &ld->slots[k];
        if (k != ld->cur && sl->b.epoch == e && sl->b.step == s && (sl->ready || ld->job_slot == k)) want = k;
    }
    if (want < 0) { /* first call or after a seek: nothing prefetched */
        wait_idle(ld);
        want = ld->cur == 0 ? 1 : 0;
        start_job(ld, want, e, s);
    }
    while (!ld->slots[want].ready) pthread_cond_wait(&ld->cv_done, &ld->mu);
    if (ld->err) {
        sc_err err = ld->err;
        ld->err = SC_OK;
        ld->slots[0].b.epoch = ld->slots[1].b.epoch = -1; /* nothing cached survives an error */
        ld->cur = -1;
        sc_errorf(err, "%s", ld->err_msg);
        pthread_mutex_unlock(&ld->mu);
        return err;
    }
    ld->cur = want;
    advance(ld, &ld->next_epoch, &ld->next_step);
    /* prefetch the following batch into the other slot (the caller gave it back by calling us) */
    start_job(ld, 1 - want, ld->next_epoch, ld->next_step);
    *batch = ld->slots[want].b;
    pthread_mutex_unlock(&ld->mu);
    return SC_OK;
}

void loader_seek(loader *ld, int64_t epoch, int64_t step) {
    pthread_mutex_lock(&ld->mu);
    wait_idle(ld);
    ld->err = SC_OK;
    ld->next_epoch = epoch + step / (ld->steps > 0 ? ld->steps : 1);
    ld->next_step = step % (ld->steps > 0 ? ld->steps : 1);
    ld->slots[0].b.epoch = ld->slots[1].b.epoch = -1;
    ld->cur = -1;
    pthread_mutex_unlock(&ld->mu);
}

static void worker_init(loader *ld, worker *wk, int id) {
    wk->ld = ld;
    wk->id = id;
    wk->img = sc_alloc((size_t)data_image_bytes(ld->cfg.set));
    size_t sf = 0;
    for (int v = 0; v < ld->cfg.nviews; v++) {
        size_t f = aug_scratch_floats(&ld->cfg.view[v], ld->cfg.set->c);
        if (f > sf) sf = f;
    }
    wk->scratch = sc_calloc_n(float, sf);
}

static sc_err loader_build(const loader_cfg *cfg, int eval, int64_t begin, int64_t end, loader **out) {
    *out = NULL;
    const data_set *set = cfg->set;
    if (!set || set->n <= 0) return sc_errorf(SC_ERR_ARG, "loader: empty data set");
    int nv = eval ? 1 : cfg->nviews;
    if (nv != 1 && nv != 2) return sc_errorf(SC_ERR_ARG, "loader: %d views, expected 1 or 2", nv);
    if (cfg->global_batch <= 0) return sc_errorf(SC_ERR_CONFIG, "batch %d: expected > 0", cfg->global_batch);
    if (cfg->workers < 0 || cfg->workers > 256)
        return sc_errorf(SC_ERR_CONFIG, "data workers %d: expected 0..256", cfg->workers);
    for (int v = 0; v < nv; v++) {
        SC_TRY(aug_check(&cfg->view[v], set->c, set->h, set->w));
        if (cfg->view[v].out_h != cfg->view[0].out_h || cfg->view[v].out_w != cfg->view[0].out_w)
            return sc_errorf(SC_ERR_CONFIG, "loader: both views must have the same output size");
    }
    loader *ld = calloc(1, sizeof *ld);
    ld->cfg = *cfg;
    ld->cfg.nviews = nv;
    ld->eval = eval;
    ld->n = set->n;
    if (eval) {
        if (begin < 0 || end > set->n || begin > end) {
            free(ld);
            return sc_errorf(SC_ERR_ARG, "eval range [%lld, %lld) outside [0, %lld) of %s", (long long)begin,
                             (long long)end, (long long)set->n, set->source);
        }
        ld->eval_begin = begin;
        ld->eval_end = end;
        ld->steps = (end - begin + cfg->global_batch - 1) / cfg->global_batch;
        ld->max_b = cfg->global_batch;
    } else {
        if (cfg->nranks <= 0 || cfg->rank < 0 || cfg->rank >= cfg->nranks || cfg->global_batch < cfg->nranks) {
            free(ld);
            return sc_errorf(SC_ERR_CONFIG, "loader: rank %d of %d with global batch %d (need batch >= ranks)",
                             cfg->rank, cfg->nranks, cfg->global_batch);
        }
        ld->steps = set->n / cfg->global_batch;
        if (ld->steps == 0) {
            free(ld);
            return sc_errorf(SC_ERR_CONFIG, "batch %d exceeds the %lld samples of %s (drop_last leaves no step)",
                             cfg->global_batch, (long long)set->n, set->source);
        }
        loader_rank_slice(cfg->global_batch, cfg->rank, cfg->nranks, &ld->rank_begin, &ld->rank_end);
        for (int r = 0; r < cfg->nranks; r++) {
            int b0, b1;
            loader_rank_slice(cfg->global_batch, r, cfg->nranks, &b0, &b1);
            if (b1 - b0 > ld->max_b) ld->max_b = b1 - b0;
        }
        ld->perm = sc_calloc_n(int64_t, set->n);
        ld->perm_epoch = -1;
    }
    const int H = cfg->view[0].out_h, W = cfg->view[0].out_w;
    for (int k = 0; k < 2; k++) {
        loader_batch *b = &ld->slots[k].b;
        b->c = set->c;
        b->h = H;
        b->w = W;
        b->nviews = nv;
        for (int v = 0; v < nv; v++) b->x[v] = sc_calloc_n(float, (size_t)set->c * ld->max_b * H * W);
        b->labels = sc_calloc_n(int32_t, ld->max_b);
        b->index = sc_calloc_n(int64_t, ld->max_b);
        b->epoch = -1;
    }
    ld->cur = -1;
    ld->job_slot = -1;
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->cv_job, NULL);
    pthread_cond_init(&ld->cv_done, NULL);
    ld->nworkers = cfg->workers;
    worker_init(ld, &ld->sync_worker, -1);
    if (ld->nworkers > 0) {
        ld->workers = calloc((size_t)ld->nworkers, sizeof *ld->workers);
        ld->threads = calloc((size_t)ld->nworkers, sizeof *ld->threads);
        for (int t = 0; t < ld->nworkers; t++) {
            worker_init(ld, &ld->workers[t], t);
            if (pthread_create(&ld->threads[t], NULL, worker_main, &ld->workers[t]) != 0)
                sc_fatal("loader: cannot start data worker thread %d of %d", t, ld->nworkers);
        }
    }
    *out = ld;
    return SC_OK;
}

sc_err loader_create(const loader_cfg *cfg, loader **out) { return loader_build(cfg, 0, 0, 0, out); }

sc_err loader_create_eval(const loader_cfg *cfg, int64_t begin, int64_t end, loader **out) {
    return loader_build(cfg, 1, begin, end, out);
}

static void worker_free(worker *wk) {
    sc_free(wk->img);
    sc_free(wk->scratch);
}

void loader_free(loader *ld) {
    if (!ld) return;
    pthread_mutex_lock(&ld->mu);
    wait_idle(ld);
    ld->stop = 1;
    pthread_cond_broadcast(&ld->cv_job);
    pthread_mutex_unlock(&ld->mu);
    for (int t = 0; t < ld->nworkers; t++) pthread_join(ld->threads[t], NULL);
    for (int t = 0; t < ld->nworkers; t++) worker_free(&ld->workers[t]);
    worker_free(&ld->sync_worker);
    free(ld->workers);
    free(ld->threads);
    for (int k = 0; k < 2; k++) {
        for (int v = 0; v < 2; v++) sc_free(ld->slots[k].b.x[v]);
        sc_free(ld->slots[k].b.labels);
        sc_free(ld->slots[k].b.index);
    }
    sc_free(ld->perm);
    pthread_cond_destroy(&ld->cv_job);
    pthread_cond_destroy(&ld->cv_done);
    pthread_mutex_destroy(&ld->mu);
    free(ld);
}
