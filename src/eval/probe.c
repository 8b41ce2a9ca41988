/* eval/probe: switchable / slimmable linear probe on cached features (see the header and docs/method.md §7).
 * All probe parameters live in one arena whose gradient (plus one slot for the step's sample count) is summed
 * over ranks with a single allreduce per step. Buffers are planned before the first step. */
#include "eval/probe.h"
#include "blas/blas.h"
#include "comm/comm.h"
#include "core/rng.h"
#include "nn/loss.h"
#include <math.h>
#include <string.h>

probe_opts probe_opts_default(void) {
    probe_opts o;
    memset(&o, 0, sizeof o);
    o.epochs = 100;
    o.batch = 256;
    o.lr = 0.1f;
    o.momentum = 0.9f;
    o.schedule = PROBE_COSINE;
    o.gamma = 0.1f;
    o.distill = true;
    o.standardize = true;
    o.seed = 1;
    return o;
}

typedef struct {
    int nw, K, ldw[PROBE_MAX_WIDTHS];
    size_t woff[PROBE_MAX_WIDTHS], boff[PROBE_MAX_WIDTHS], np;
    float *p, *g, *v; /* params, grads (+1 count slot), momentum */
} probe_params;

/* mean and 1/std per feature over the training rows of every rank (COLLECTIVE) */
static void feature_stats(int n, int C, const float *F, bool standardize, double *mean, double *inv) {
    double *buf = sc_calloc_n(double, (size_t)C + 1);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < C; j++) buf[j] += F[(size_t)i * C + j];
    buf[C] = n;
    comm_allreduce_sum_f64(buf, C + 1);
    double N = buf[C] > 0 ? buf[C] : 1;
    for (int j = 0; j < C; j++) mean[j] = buf[j] / N;
    memset(buf, 0, sizeof(double) * (size_t)C);
    if (standardize) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < C; j++) {
                double t = F[(size_t)i * C + j] - mean[j];
                buf[j] += t * t;
            }
        comm_allreduce_sum_f64(buf, C);
    }
    for (int j = 0; j < C; j++) {
        double sd = sqrt(buf[j] / N);
        /* a constant (dead) feature is mapped to 0 rather than amplified */
        inv[j] = !standardize ? 1.0 : sd > 1e-12 ? 1.0 / sd : 0.0;
        if (!standardize) mean[j] = 0.0;
    }
    sc_free(buf);
}

static float *standardized_copy(int n, int C, const float *F, const double *mean, const double *inv) {
    float *o = sc_calloc_n(float, (size_t)n * C + 1);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < C; j++) o[(size_t)i * C + j] = (float)((F[(size_t)i * C + j] - mean[j]) * inv[j]);
    return o;
}

/* logits z[n][K] = F[n][C] W[:, :C]^T + b */
static void probe_logits(const probe_params *pp, int w, int n, int C, const float *F, float *z) {
    const float *W = pp->p + pp->woff[w], *b = pp->p + pp->boff[w];
    blas_sgemm(false, true, n, pp->K, C, 1.0f, F, C, W, pp->ldw[w], 0.0f, z, pp->K);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < pp->K; k++) z[(size_t)i * pp->K + k] += b[k];
}

/* test metrics: top-1/top-5 counts and the CE sum per width (COLLECTIVE) */
static void probe_eval(const probe_params *pp, const int *dims, int n, float *const *F, const int32_t *y, float *z,
                       int zrows, probe_result *res) {
    int nw = pp->nw, K = pp->K, top = K < 5 ? K : 5;
    double *acc = sc_calloc_n(double, 3 * (size_t)nw + 1);
    for (int w = 0; w < nw; w++)
        for (int i0 = 0; i0 < n; i0 += zrows) {
            int m = n - i0 < zrows ? n - i0 : zrows;
            probe_logits(pp, w, m, dims[w], F[w] + (size_t)i0 * dims[w], z);
            acc[3 * w + 2] += loss_softmax_ce(m, K, z, y + i0, 1.0, 1.0f, NULL);
            for (int i = 0; i < m; i++) {
                const float *r = z + (size_t)i * K;
                float zy = r[y[i0 + i]];
                int above = 0, above_eq_before = 0;
                for (int k = 0; k < K; k++) {
                    above += r[k] > zy;
                    above_eq_before += r[k] == zy && k < y[i0 + i]; /* ties: the smaller index ranks first */
                }
                acc[3 * w] += above + above_eq_before == 0;
                acc[3 * w + 1] += above + above_eq_before < top;
            }
        }
    acc[3 * nw] = n;
    comm_allreduce_sum_f64(acc, 3 * nw + 1);
    double N = acc[3 * nw] > 0 ? acc[3 * nw] : 1;
    for (int w = 0; w < nw; w++) {
        res->top1[w] = acc[3 * w] / N;
        res->top5[w] = acc[3 * w + 1] / N;
        res->test_loss[w] = acc[3 * w + 2] / N;
    }
    sc_free(acc);
}

sc_err probe_train(int nwidths, const int *dims, int classes, int n_train, const float *const *train,
                   const int32_t *train_labels, int n_test, const float *const *test, const int32_t *test_labels,
                   const probe_opts *opts, probe_result *res, float *const *W_out, float *const *b_out) {
    probe_opts o = opts ? *opts : probe_opts_default();
    memset(res, 0, sizeof *res);
    if (nwidths < 1 || nwidths > PROBE_MAX_WIDTHS || classes < 2 || n_train < 0 || n_test < 0)
        return sc_errorf(SC_ERR_ARG, "probe: %d widths (1..%d), %d classes (>= 2), n_train %d, n_test %d", nwidths,
                         PROBE_MAX_WIDTHS, classes, n_train, n_test);
    for (int w = 0; w < nwidths; w++)
        if (dims[w] < 1 || (o.slim_linear && dims[w] > dims[0]))
            return sc_errorf(SC_ERR_ARG, "probe: width %d has %d features (expected >= 1%s)", w, dims[w],
                             o.slim_linear ? " and <= the full width's, for the slimmable layer" : "");
    if (o.epochs < 1 || o.batch < 1 || !(o.lr > 0) || o.momentum < 0 || o.wd < 0)
        return sc_errorf(SC_ERR_ARG, "probe: epochs %d, batch %d, lr %g, momentum %g, wd %g: expected epochs, batch, "
                         "lr > 0 and momentum, wd >= 0", o.epochs, o.batch, (double)o.lr, (double)o.momentum,
                         (double)o.wd);
    int bad = -1;
    for (int i = 0; i < n_train && bad < 0; i++)
        if (train_labels[i] < 0 || train_labels[i] >= classes) bad = i;
    for (int i = 0; i < n_test && bad < 0; i++)
        if (test_labels[i] < 0 || test_labels[i] >= classes) bad = n_train + i;
    if (comm_allreduce_max_int(bad >= 0)) {
        if (bad >= 0)
            return sc_errorf(SC_ERR_ARG, "probe: %s label of row %d outside [0, %d) (rank %d)",
                             bad < n_train ? "train" : "test", bad < n_train ? bad : bad - n_train, classes,
                             comm_rank());
        return sc_errorf(SC_ERR_ARG, "probe: another rank has a label outside [0, %d)", classes);
    }
    int nw = nwidths, K = classes, rank = comm_rank();
    res->nwidths = nw;

    /* standardised copies */
    double *mean[PROBE_MAX_WIDTHS], *inv[PROBE_MAX_WIDTHS];
    float *F[PROBE_MAX_WIDTHS], *T[PROBE_MAX_WIDTHS];
    for (int w = 0; w < nw; w++) {
        mean[w] = sc_calloc_n(double, dims[w]);
        inv[w] = sc_calloc_n(double, dims[w]);
        feature_stats(n_train, dims[w], train[w], o.standardize, mean[w], inv[w]);
        F[w] = standardized_copy(n_train, dims[w], train[w], mean[w], inv[w]);
        T[w] = standardized_copy(n_test, dims[w], test[w], mean[w], inv[w]);
    }

    /* parameters: N(0, 0.01^2) weights, zero biases (docs/method.md §7); the same values on every rank */
    probe_params pp = {.nw = nw, .K = K};
    size_t off = 0;
    for (int w = 0; w < nw; w++) {
        if (o.slim_linear && w > 0) {
            pp.woff[w] = pp.woff[0]; pp.boff[w] = pp.boff[0]; pp.ldw[w] = dims[0];
            continue;
        }
        pp.ldw[w] = dims[w];
        pp.woff[w] = off; off += (size_t)K * dims[w];
        pp.boff[w] = off; off += (size_t)K;
    }
    pp.np = off;
    pp.p = sc_calloc_n(float, pp.np + 1);
    pp.g = sc_calloc_n(float, pp.np + 1);
    pp.v = sc_calloc_n(float, pp.np + 1);
    {
        rng_stream rs = rng_stream_make(o.seed, 0x9e0be, 0, 0);
        for (int w = 0; w < nw; w++) {
            if (o.slim_linear && w > 0) break;
            for (size_t i = 0; i < (size_t)K * dims[w]; i++) pp.p[pp.woff[w] + i] = 0.01f * rng_normal(&rs);
        }
    }

    /* schedule: every rank runs S steps per epoch; step s takes its local rows [s*n/S, (s+1)*n/S) */
    double ntot = n_train;
    comm_allreduce_sum_f64(&ntot, 1);
    if (ntot < 1) {
        for (int w = 0; w < nw; w++) { sc_free(mean[w]); sc_free(inv[w]); sc_free(F[w]); sc_free(T[w]); }
        sc_free(pp.p); sc_free(pp.g); sc_free(pp.v);
        return sc_errorf(SC_ERR_ARG, "probe: empty training set");
    }
    int S = (int)ceil(ntot / o.batch);
    int lbmax = n_train / S + 2, zrows = lbmax > 1024 ? lbmax : 1024;
    float *Fb[PROBE_MAX_WIDTHS], *z[PROBE_MAX_WIDTHS];
    for (int w = 0; w < nw; w++) {
        Fb[w] = sc_calloc_n(float, (size_t)lbmax * dims[w]);
        z[w] = sc_calloc_n(float, (size_t)zrows * K);
    }
    float *dz = sc_calloc_n(float, (size_t)lbmax * K), *dt = sc_calloc_n(float, (size_t)lbmax * K);
    int32_t *yb = sc_calloc_n(int32_t, lbmax);
    int *perm = sc_calloc_n(int, n_train + 1);
    for (int i = 0; i < n_train; i++) perm[i] = i;
    double lsum[PROBE_MAX_WIDTHS + 1];
    sc_err err = SC_OK;

    for (int e = 0; e < o.epochs; e++) {
        float lr = o.lr;
        if (o.schedule == PROBE_COSINE) lr = (float)(o.lr * 0.5 * (1.0 + cos(M_PI * e / o.epochs)));
        else
            for (int m = 0; m < o.nmilestones; m++)
                if (e >= o.milestones[m]) lr *= o.gamma;
        rng_stream rs = rng_stream_make(o.seed, 0x5u, (uint64_t)rank, (uint64_t)e);
        for (int i = n_train - 1; i > 0; i--) {
            int j = (int)rng_below(&rs, (uint64_t)i + 1);
            int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
        }
        memset(lsum, 0, sizeof lsum);
        for (int s = 0; s < S; s++) {
            int r0 = (int)((int64_t)s * n_train / S), r1 = (int)((int64_t)(s + 1) * n_train / S), nb = r1 - r0;
            memset(pp.g, 0, sizeof(float) * (pp.np + 1));
            if (nb > 0) {
                for (int i = 0; i < nb; i++) yb[i] = train_labels[perm[r0 + i]];
                for (int w = 0; w < nw; w++) {
                    for (int i = 0; i < nb; i++)
                        memcpy(Fb[w] + (size_t)i * dims[w], F[w] + (size_t)perm[r0 + i] * dims[w],
                               sizeof(float) * (size_t)dims[w]);
                    probe_logits(&pp, w, nb, dims[w], Fb[w], z[w]);
                }
                /* sums (denom 1); divided by the global count after the allreduce */
                for (int w = 0; w < nw; w++) {
                    bool kd = w > 0 && o.distill;
                    lsum[w] += loss_softmax_ce(nb, K, z[w], yb, 1.0, kd ? 0.5f : 1.0f, dz);
                    if (kd) {
                        loss_soft_ce(nb, K, z[w], z[0], 1.0f, 1.0f, 1.0, 0.5f, dt);
                        for (size_t i = 0; i < (size_t)nb * K; i++) dz[i] += dt[i];
                    }
                    float *gW = pp.g + pp.woff[w], *gb = pp.g + pp.boff[w];
                    blas_sgemm(true, false, K, dims[w], nb, 1.0f, dz, K, Fb[w], dims[w], 1.0f, gW, pp.ldw[w]);
                    for (int i = 0; i < nb; i++)
                        for (int k = 0; k < K; k++) gb[k] += dz[(size_t)i * K + k];
                }
            }
            pp.g[pp.np] = (float)nb;
            comm_allreduce_sum_f32(pp.g, pp.np + 1);
            float cnt = pp.g[pp.np];
            if (!(cnt > 0)) continue;
            const float ic = 1.0f / cnt, m = o.momentum, wd = o.wd;
            for (size_t i = 0; i < pp.np; i++) {
                float g = pp.g[i] * ic + wd * pp.p[i];
                pp.v[i] = m * pp.v[i] + g;
                pp.p[i] -= lr * pp.v[i];
            }
        }
        lsum[nw] = n_train;
        comm_allreduce_sum_f64(lsum, nw + 1);
        for (int w = 0; w < nw; w++) res->train_loss[w] = lsum[w] / lsum[nw];
        if (!isfinite(res->train_loss[0])) {
            err = sc_errorf(SC_ERR_NUMERIC, "probe: training loss is %g at epoch %d (lr %g too large?)",
                            res->train_loss[0], e, (double)o.lr);
            goto done;
        }
        if (o.verbose) sc_info("probe epoch %d/%d lr %.4g train CE(full) %.4f\n", e + 1, o.epochs, lr, res->train_loss[0]);
        if (o.eval_every > 0 && (e + 1) % o.eval_every == 0 && e + 1 < o.epochs) {
            probe_eval(&pp, dims, n_test, T, test_labels, z[0], zrows, res);
            sc_info("probe epoch %d: test top-1 full %.2f%%, smallest %.2f%%\n", e + 1, 100 * res->top1[0],
                    100 * res->top1[nw - 1]);
        }
    }
    probe_eval(&pp, dims, n_test, T, test_labels, z[0], zrows, res);

    /* back to raw features: W_raw = W / std, b_raw = b - W_raw · mean */
    for (int w = 0; w < nw; w++) {
        if (!W_out || !W_out[w]) continue;
        const float *W = pp.p + pp.woff[w], *b = pp.p + pp.boff[w];
        for (int k = 0; k < K; k++) {
            double bias = b[k];
            for (int j = 0; j < dims[w]; j++) {
                double wr = W[(size_t)k * pp.ldw[w] + j] * inv[w][j];
                W_out[w][(size_t)k * dims[w] + j] = (float)wr;
                bias -= wr * mean[w][j];
            }
            if (b_out && b_out[w]) b_out[w][k] = (float)bias;
        }
    }
done:
    for (int w = 0; w < nw; w++) {
        sc_free(mean[w]); sc_free(inv[w]); sc_free(F[w]); sc_free(T[w]); sc_free(Fb[w]); sc_free(z[w]);
    }
    sc_free(pp.p); sc_free(pp.g); sc_free(pp.v); sc_free(dz); sc_free(dt); sc_free(yb); sc_free(perm);
    return err;
}
