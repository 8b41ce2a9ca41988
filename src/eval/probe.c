/* eval/probe: switchable / slimmable linear probe (see the header and docs/method.md "Linear evaluation").
 * All probe parameters live in one arena whose gradient (plus one slot for the step's sample count) is summed
 * over ranks with a single allreduce per step; optim/ updates it (SGD) at the LR of optim/sched. Weights are kept
 * in the space the probe trains in (standardised or raw); evaluation and export fold the standardisation into
 * raw-space weights, so no standardised copy of a feature matrix is ever made. */
#include "eval/probe.h"
#include "blas/blas.h"
#include "comm/comm.h"
#include "core/rng.h"
#include "nn/loss.h"
#include "optim/optim.h"
#include <math.h>
#include <string.h>

probe_opts probe_opts_default(void) {
    probe_opts o;
    memset(&o, 0, sizeof o);
    o.epochs = 100;
    o.batch = 256;
    o.lr = 0.1f;
    o.momentum = 0.9f;
    o.schedule = SCHED_COSINE;
    o.distill = true;
    o.standardize = true;
    o.seed = 1;
    return o;
}

struct probe {
    probe_shape s;
    probe_opts o;
    int nw, K, ldw[PROBE_MAX_WIDTHS];
    size_t woff[PROBE_MAX_WIDTHS], boff[PROBE_MAX_WIDTHS], np;
    float *p, *g;                     /* params, grads (+1 count slot) */
    param_info t[2 * PROBE_MAX_WIDTHS];
    int nt;
    optim *opt;
    sched_cfg sc;
    int S;                            /* steps per epoch (global) */
    double *mean[PROBE_MAX_WIDTHS], *inv[PROBE_MAX_WIDTHS]; /* standardisation (identity without) */
    /* step buffers, grown to the largest local batch seen */
    int cap_rows;
    float *Fb[PROBE_MAX_WIDTHS], *z[PROBE_MAX_WIDTHS], *dz, *dt;
    int32_t *yb;
    int cap_perm;
    int *perm;
};

sc_err probe_create(const probe_shape *sh, const probe_opts *opts, int64_t ntot, probe **out) {
    *out = NULL;
    probe_opts o = opts ? *opts : probe_opts_default();
    int nw = sh->nwidths, K = sh->classes;
    if (nw < 1 || nw > PROBE_MAX_WIDTHS || K < 2)
        return sc_errorf(SC_ERR_ARG, "probe: %d widths (1..%d), %d classes (>= 2)", nw, PROBE_MAX_WIDTHS, K);
    for (int w = 0; w < nw; w++)
        if (sh->dims[w] < 1 || (o.slim_linear && sh->dims[w] > sh->dims[0]))
            return sc_errorf(SC_ERR_ARG, "probe: width %d has %d features (expected >= 1%s)", w, sh->dims[w],
                             o.slim_linear ? " and <= the full width's, for the slimmable layer" : "");
    if (o.epochs < 1 || o.batch < 1 || !(o.lr > 0) || o.momentum < 0 || o.momentum >= 1 || o.wd < 0)
        return sc_errorf(SC_ERR_ARG, "probe: epochs %d, batch %d, lr %g, momentum %g, wd %g: expected epochs, batch, "
                         "lr > 0, momentum in [0, 1) and wd >= 0", o.epochs, o.batch, (double)o.lr,
                         (double)o.momentum, (double)o.wd);
    if (o.nmilestones < 0 || o.nmilestones > PROBE_MAX_MILESTONES)
        return sc_errorf(SC_ERR_ARG, "probe: %d milestones (at most %d)", o.nmilestones, PROBE_MAX_MILESTONES);
    for (int m = 0; m < o.nmilestones; m++)
        if (o.milestones[m] < 0 || o.milestones[m] > o.epochs)
            return sc_errorf(SC_ERR_ARG, "probe: milestone %d is beyond the %d epochs", o.milestones[m], o.epochs);
    if (ntot < 1) return sc_errorf(SC_ERR_ARG, "probe: empty training set");

    probe *p = sc_calloc_n(probe, 1);
    p->s = *sh;
    p->o = o;
    p->nw = nw;
    p->K = K;
    size_t off = 0;
    for (int w = 0; w < nw; w++) {
        if (o.slim_linear && w > 0) {
            p->woff[w] = p->woff[0]; p->boff[w] = p->boff[0]; p->ldw[w] = sh->dims[0];
            continue;
        }
        p->ldw[w] = sh->dims[w];
        p->woff[w] = off; off += (size_t)K * sh->dims[w];
        p->boff[w] = off; off += (size_t)K;
        param_info *tw = &p->t[p->nt++], *tb = &p->t[p->nt++];
        snprintf(tw->name, sizeof tw->name, "probe.%d.weight", w);
        tw->offset = p->woff[w]; tw->count = (size_t)K * sh->dims[w]; tw->kind = PARAM_WEIGHT; tw->ndim = 2;
        tw->shape[0] = K; tw->shape[1] = sh->dims[w]; tw->width_only = w;
        snprintf(tb->name, sizeof tb->name, "probe.%d.bias", w);
        tb->offset = p->boff[w]; tb->count = (size_t)K; tb->kind = PARAM_BIAS; tb->ndim = 1;
        tb->shape[0] = K; tb->width_only = w;
    }
    p->np = off;
    p->p = sc_calloc_n(float, p->np + 1);
    p->g = sc_calloc_n(float, p->np + 1);
    rng_stream rs = rng_stream_make(o.seed, 0x9e0be, 0, 0);
    for (int w = 0; w < nw && !(o.slim_linear && w > 0); w++)
        for (size_t i = 0; i < (size_t)K * sh->dims[w]; i++) p->p[p->woff[w] + i] = 0.01f * rng_normal(&rs);
    for (int w = 0; w < nw; w++) {
        p->mean[w] = sc_calloc_n(double, sh->dims[w]);
        p->inv[w] = sc_calloc_n(double, sh->dims[w]);
        for (int j = 0; j < sh->dims[w]; j++) p->inv[w][j] = 1.0;
    }
    /* PyTorch SGD: momentum, L2 on every tensor (weights and biases) */
    optim_cfg oc = optim_defaults(OPTIM_SGD);
    oc.momentum = o.momentum;
    oc.wd = o.wd;
    oc.no_decay_bn_bias = false;
    sc_err e = SC_OK;
    p->opt = optim_create(&oc, p->t, p->nt, p->np, &e);
    p->S = (int)((ntot + o.batch - 1) / o.batch);
    memset(&p->sc, 0, sizeof p->sc);
    p->sc.kind = o.schedule;
    p->sc.lr0 = o.lr;
    p->sc.steps_per_epoch = p->S;
    p->sc.epochs = o.epochs;
    p->sc.nmilestones = o.nmilestones;
    for (int m = 0; m < o.nmilestones; m++) p->sc.milestones[m] = o.milestones[m];
    if (e == SC_OK) e = sched_check(&p->sc);
    if (e != SC_OK) { probe_free(p); return e; }
    *out = p;
    return SC_OK;
}

void probe_free(probe *p) {
    if (!p) return;
    for (int w = 0; w < p->nw; w++) {
        sc_free(p->mean[w]); sc_free(p->inv[w]); sc_free(p->Fb[w]); sc_free(p->z[w]);
    }
    optim_free(p->opt);
    sc_free(p->p); sc_free(p->g); sc_free(p->dz); sc_free(p->dt); sc_free(p->yb); sc_free(p->perm);
    sc_free(p);
}

void probe_fit_stats(probe *p, const probe_data *tr) {
    if (!p->o.standardize) return;
    for (int w = 0; w < p->nw; w++) {
        int C = p->s.dims[w], n = tr->n;
        const float *F = tr->F[w];
        double *buf = sc_calloc_n(double, (size_t)C + 1);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < C; j++) buf[j] += F[(size_t)i * C + j];
        buf[C] = n;
        comm_allreduce_sum_f64(buf, C + 1);
        double N = buf[C] > 0 ? buf[C] : 1;
        for (int j = 0; j < C; j++) p->mean[w][j] = buf[j] / N;
        memset(buf, 0, sizeof(double) * (size_t)C);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < C; j++) {
                double t = F[(size_t)i * C + j] - p->mean[w][j];
                buf[j] += t * t;
            }
        comm_allreduce_sum_f64(buf, C);
        for (int j = 0; j < C; j++) {
            double sd = sqrt(buf[j] / N);
            p->inv[w][j] = sd > 1e-12 ? 1.0 / sd : 0.0; /* a constant (dead) feature is mapped to 0, not amplified */
        }
        sc_free(buf);
    }
}

/* logits z[n][K] = F[n][C] W[:, :C]^T + b, with W (ld ldw) and b */
static void logits(int n, int K, int C, const float *F, const float *W, int ldw, const float *b, float *z) {
    blas_sgemm(false, true, n, K, C, 1.0f, F, C, W, ldw, 0.0f, z, K);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < K; k++) z[(size_t)i * K + k] += b[k];
}

/* COLLECTIVE: labels of d in [0, classes) on every rank */
static sc_err check_labels(const probe *p, const probe_data *d, const char *what) {
    int bad = -1;
    for (int i = 0; i < d->n && bad < 0; i++)
        if (d->labels[i] < 0 || d->labels[i] >= p->K) bad = i;
    if (comm_allreduce_max_int(bad >= 0)) {
        if (bad >= 0)
            return sc_errorf(SC_ERR_ARG, "probe: %s label of row %d outside [0, %d) (rank %d)", what, bad, p->K,
                             comm_rank());
        return sc_errorf(SC_ERR_ARG, "probe: another rank has a label outside [0, %d)", p->K);
    }
    return SC_OK;
}

static void grow_rows(probe *p, int rows) {
    if (rows <= p->cap_rows) return;
    int K = p->K;
    for (int w = 0; w < p->nw; w++) {
        sc_free(p->Fb[w]); sc_free(p->z[w]);
        p->Fb[w] = sc_calloc_n(float, (size_t)rows * p->s.dims[w]);
        p->z[w] = sc_calloc_n(float, (size_t)rows * K);
    }
    sc_free(p->dz); sc_free(p->dt); sc_free(p->yb);
    p->dz = sc_calloc_n(float, (size_t)rows * K);
    p->dt = sc_calloc_n(float, (size_t)rows * K);
    p->yb = sc_calloc_n(int32_t, rows);
    p->cap_rows = rows;
}

sc_err probe_epoch(probe *p, int e, const probe_data *tr, double *train_loss) {
    SC_TRY(check_labels(p, tr, "train"));
    int nw = p->nw, K = p->K, n = tr->n, S = p->S, rank = comm_rank();
    grow_rows(p, n / S + 2);
    if (n + 1 > p->cap_perm) {
        sc_free(p->perm);
        p->perm = sc_calloc_n(int, n + 1);
        p->cap_perm = n + 1;
    }
    int *perm = p->perm;
    for (int i = 0; i < n; i++) perm[i] = i;
    rng_stream rs = rng_stream_make(p->o.seed, 0x5u, (uint64_t)rank, (uint64_t)e);
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(&rs, (uint64_t)i + 1);
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    double lsum[PROBE_MAX_WIDTHS + 1];
    memset(lsum, 0, sizeof lsum);
    float lr = 0;
    for (int s = 0; s < S; s++) {
        lr = (float)sched_lr(&p->sc, (long)e * S + s);
        int r0 = (int)((int64_t)s * n / S), r1 = (int)((int64_t)(s + 1) * n / S), nb = r1 - r0;
        memset(p->g, 0, sizeof(float) * (p->np + 1));
        if (nb > 0) {
            for (int i = 0; i < nb; i++) p->yb[i] = tr->labels[perm[r0 + i]];
            for (int w = 0; w < nw; w++) {
                int C = p->s.dims[w];
                const double *mu = p->mean[w], *iv = p->inv[w];
                for (int i = 0; i < nb; i++) {
                    const float *src = tr->F[w] + (size_t)perm[r0 + i] * C;
                    float *dst = p->Fb[w] + (size_t)i * C;
                    for (int j = 0; j < C; j++) dst[j] = (float)((src[j] - mu[j]) * iv[j]);
                }
                logits(nb, K, C, p->Fb[w], p->p + p->woff[w], p->ldw[w], p->p + p->boff[w], p->z[w]);
            }
            /* sums (denom 1); divided by the global count after the allreduce */
            for (int w = 0; w < nw; w++) {
                bool kd = w > 0 && p->o.distill;
                lsum[w] += loss_softmax_ce(nb, K, p->z[w], p->yb, 1.0, kd ? 0.5f : 1.0f, p->dz);
                if (kd) {
                    loss_soft_ce(nb, K, p->z[w], p->z[0], 1.0f, 1.0f, 1.0, 0.5f, p->dt);
                    for (size_t i = 0; i < (size_t)nb * K; i++) p->dz[i] += p->dt[i];
                }
                float *gW = p->g + p->woff[w], *gb = p->g + p->boff[w];
                blas_sgemm(true, false, K, p->s.dims[w], nb, 1.0f, p->dz, K, p->Fb[w], p->s.dims[w], 1.0f, gW,
                           p->ldw[w]);
                for (int i = 0; i < nb; i++)
                    for (int k = 0; k < K; k++) gb[k] += p->dz[(size_t)i * K + k];
            }
        }
        p->g[p->np] = (float)nb;
        comm_allreduce_sum_f32(p->g, p->np + 1);
        float cnt = p->g[p->np];
        if (!(cnt > 0)) continue;
        const float ic = 1.0f / cnt;
        for (size_t i = 0; i < p->np; i++) p->g[i] *= ic;
        optim_step(p->opt, p->p, p->g, NULL, lr);
    }
    lsum[nw] = n;
    comm_allreduce_sum_f64(lsum, nw + 1);
    double l0 = lsum[0] / (lsum[nw] > 0 ? lsum[nw] : 1);
    if (train_loss)
        for (int w = 0; w < nw; w++) train_loss[w] = lsum[w] / (lsum[nw] > 0 ? lsum[nw] : 1);
    if (!isfinite(l0))
        return sc_errorf(SC_ERR_NUMERIC, "probe: training loss is %g at epoch %d (eval.probe_lr %g too large%s?)", l0,
                         e, (double)p->o.lr, p->o.standardize ? "" : " for raw features");
    if (p->o.verbose) sc_info("probe epoch %d/%d lr %.4g train CE(full) %.4f\n", e + 1, p->o.epochs, lr, l0);
    return SC_OK;
}

void probe_export(const probe *p, float *const *W_out, float *const *b_out) {
    /* W_raw = W / std, b_raw = b - W_raw . mean */
    for (int w = 0; w < p->nw; w++) {
        if ((!W_out || !W_out[w]) && (!b_out || !b_out[w])) continue;
        const float *W = p->p + p->woff[w], *b = p->p + p->boff[w];
        int C = p->s.dims[w];
        for (int k = 0; k < p->K; k++) {
            double bias = b[k];
            for (int j = 0; j < C; j++) {
                double wr = W[(size_t)k * p->ldw[w] + j] * p->inv[w][j];
                if (W_out && W_out[w]) W_out[w][(size_t)k * C + j] = (float)wr;
                bias -= wr * p->mean[w][j];
            }
            if (b_out && b_out[w]) b_out[w][k] = (float)bias;
        }
    }
}

sc_err probe_evaluate(const probe *p, const probe_data *te, probe_result *res) {
    SC_TRY(check_labels(p, te, "test"));
    int nw = p->nw, K = p->K, top = K < 5 ? K : 5, n = te->n;
    const int zrows = 1024;
    float *W[PROBE_MAX_WIDTHS] = {0}, *b[PROBE_MAX_WIDTHS] = {0};
    for (int w = 0; w < nw; w++) {
        W[w] = sc_calloc_n(float, (size_t)K * p->s.dims[w]);
        b[w] = sc_calloc_n(float, K);
    }
    probe_export(p, W, b);
    float *z = sc_calloc_n(float, (size_t)zrows * K);
    double *acc = sc_calloc_n(double, 3 * (size_t)nw + 1);
    for (int w = 0; w < nw; w++)
        for (int i0 = 0; i0 < n; i0 += zrows) {
            int m = n - i0 < zrows ? n - i0 : zrows, C = p->s.dims[w];
            logits(m, K, C, te->F[w] + (size_t)i0 * C, W[w], C, b[w], z);
            const int32_t *y = te->labels + i0;
            acc[3 * w + 2] += loss_softmax_ce(m, K, z, y, 1.0, 1.0f, NULL);
            for (int i = 0; i < m; i++) {
                const float *r = z + (size_t)i * K;
                float zy = r[y[i]];
                int above = 0;
                for (int k = 0; k < K; k++)
                    above += r[k] > zy || (r[k] == zy && k < y[i]); /* ties: the smaller index ranks first */
                acc[3 * w] += above == 0;
                acc[3 * w + 1] += above < top;
            }
        }
    acc[3 * nw] = n;
    comm_allreduce_sum_f64(acc, 3 * nw + 1);
    double N = acc[3 * nw] > 0 ? acc[3 * nw] : 1;
    res->nwidths = nw;
    for (int w = 0; w < nw; w++) {
        res->top1[w] = acc[3 * w] / N;
        res->top5[w] = acc[3 * w + 1] / N;
        res->test_loss[w] = acc[3 * w + 2] / N;
        sc_free(W[w]); sc_free(b[w]);
    }
    sc_free(acc); sc_free(z);
    return SC_OK;
}

void probe_track_best(probe_result *res, int epoch) {
    if (res->best_epoch > 0 && !(res->top1[0] > res->best_top1[0])) return;
    res->best_epoch = epoch;
    for (int w = 0; w < res->nwidths; w++) res->best_top1[w] = res->top1[w];
}

sc_err probe_train(const probe_shape *sh, const probe_data *tr, const probe_data *te, const probe_opts *opts,
                   probe_result *res, float *const *W_out, float *const *b_out) {
    memset(res, 0, sizeof *res);
    probe_opts o = opts ? *opts : probe_opts_default();
    double ntot = tr->n;
    comm_allreduce_sum_f64(&ntot, 1);
    probe *p = NULL;
    SC_TRY(probe_create(sh, &o, (int64_t)ntot, &p));
    probe_fit_stats(p, tr);
    sc_err e = SC_OK;
    for (int ep = 0; ep < o.epochs && e == SC_OK; ep++) {
        e = probe_epoch(p, ep, tr, res->train_loss);
        bool last = ep + 1 == o.epochs;
        if (e == SC_OK && (last || (o.eval_every > 0 && (ep + 1) % o.eval_every == 0))) {
            e = probe_evaluate(p, te, res);
            if (e == SC_OK) probe_track_best(res, ep + 1);
            if (e == SC_OK && !last)
                sc_info("probe epoch %d: test top-1 full %.2f%%, smallest %.2f%%\n", ep + 1, 100 * res->top1[0],
                        100 * res->top1[sh->nwidths - 1]);
        }
    }
    if (e == SC_OK) probe_export(p, W_out, b_out);
    probe_free(p);
    return e;
}
