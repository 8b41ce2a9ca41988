/* nn/bn: batch norm over CNHW rows (docs/method.md §1.1, 14.2), PyTorch semantics, optional SyncBN through a reducer.
 * Per-channel sums are accumulated in double (over float blocks: nn/kern.h); the row loops are nn/kern's, per
 * vector ISA. */
#include "nn/bn.h"
#include "blas/blas.h"
#include "core/error.h"
#include "nn/kern.h"
#include <math.h>
#include <string.h>

/* Scratch for the reducer buffers ([count, c sums, c sums]): grown on the first call of a size, then reused,
 * so the training step does not allocate after its first step. Thread-local: layers may run in threads. */
static _Thread_local void *bn_scratch;
static _Thread_local size_t bn_scratch_bytes;

static double *bn_buf(size_t len) { return sc_grow(&bn_scratch, &bn_scratch_bytes, sizeof(double) * len); }

/* Threads for the per-channel loops: channels are independent and each keeps its own sequential sums, so the
 * result is bitwise the same for any thread count. Small layers stay serial (fork cost). */
static int bn_threads(int c, int m) { return c > 1 && (size_t)c * m >= ((size_t)1 << 15) ? blas_threads() : 1; }

/* the s of bn_saved_affine for channel ch: gamma * invstd in float, as the recompute takes it */
static inline float bn_mask_scale(const bn_desc *d, const float *gamma, const float *invstd, int ch) {
    return d->affine ? gamma[ch] * invstd[ch] : invstd[ch];
}

/* the reducer's buffer when it gives one (it may suspend this call: the layer's scratch is shared), else ours */
static double *bn_red_buf(const nn_reducer *red, int len) {
    double *b = red && red->buf ? red->buf(len, red->ctx) : NULL;
    return b ? b : bn_buf((size_t)len);
}

static void bn_reduce(const nn_reducer *red, double *buf, int len) {
    if (red && red->sum_f64) red->sum_f64(buf, len, red->ctx);
}

/* the reduction can be skipped over: each channel's passes may run back to back (see sc_reducer.local) */
static bool bn_local(const nn_reducer *red) { return !red || !red->sum_f64 || red->local; }

/* one channel's statistics (from the reduced sums in buf) and its affine row */
static void bn_fwd_channel(const bn_desc *d, const nn_kern *k, int m, const float *x, float *y, const float *gamma,
                           const float *beta, float *rmean, float *rvar, float *save_mean, float *save_invstd,
                           const double *buf, int ch) {
    const int c = d->c;
    const double count = buf[0];
    double mean = buf[1 + ch] / count;
    double var = buf[1 + c + ch] / count - mean * mean; /* biased, for normalisation */
    if (var < 0) var = 0;
    double invstd = 1.0 / sqrt(var + (double)d->eps);
    save_mean[ch] = (float)mean;
    save_invstd[ch] = (float)invstd;
    if (rmean) {
        double mom = d->momentum;
        rmean[ch] = (float)((1 - mom) * rmean[ch] + mom * mean);
        rvar[ch] = (float)((1 - mom) * rvar[ch] + mom * var * count / (count - 1));
    }
    double g = d->affine ? gamma[ch] : 1.0, b = d->affine ? beta[ch] : 0.0;
    float scale = (float)(g * invstd), shift = (float)(b - mean * g * invstd);
    if (y) k->bn_affine_row(x + (size_t)ch * m, y + (size_t)ch * m, m, scale, shift, d->relu,
                         d->res ? d->res + (size_t)ch * m : NULL);
}

void bn_forward_train(const bn_desc *d, int m, const float *x, float *y, const float *gamma, const float *beta,
                      float *rmean, float *rvar, float *save_mean, float *save_invstd, const nn_reducer *red) {
    const int c = d->c;
    SC_CHECK(c > 0 && m > 0, "bn_forward_train: c=%d m=%d", c, m);
    double *buf = bn_red_buf(red, 2 * c + 1); /* [count, sum[c], sumsq[c]] */
    buf[0] = (double)m;
    const int nt = bn_threads(c, m);
    const nn_kern *k = nn_kern_active();
    if (bn_local(red)) { /* the same sums and expressions, the affine pass while the row is in L2 */
        SC_CHECK(m > 1 || rmean == NULL, "bn_forward_train: %d values per channel cannot give an unbiased variance", m);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
        for (int ch = 0; ch < c; ch++) {
            k->bn_row_sums(x + (size_t)ch * m, m, &buf[1 + ch], &buf[1 + c + ch]);
            bn_fwd_channel(d, k, m, x, y, gamma, beta, rmean, rvar, save_mean, save_invstd, buf, ch);
        }
        bn_reduce(red, buf, 2 * c + 1);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int ch = 0; ch < c; ch++) k->bn_row_sums(x + (size_t)ch * m, m, &buf[1 + ch], &buf[1 + c + ch]);
    bn_reduce(red, buf, 2 * c + 1);
    SC_CHECK(buf[0] > 1 || rmean == NULL, "bn_forward_train: %g values per channel cannot give an unbiased variance",
             buf[0]);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int ch = 0; ch < c; ch++)
        bn_fwd_channel(d, k, m, x, y, gamma, beta, rmean, rvar, save_mean, save_invstd, buf, ch);
}

void bn_forward_eval(const bn_desc *d, int m, const float *x, float *y, const float *gamma, const float *beta,
                     const float *rmean, const float *rvar) {
    if (!y) return;
    const nn_kern *k = nn_kern_active();
    for (int ch = 0; ch < d->c; ch++) {
        double invstd = 1.0 / sqrt((double)rvar[ch] + (double)d->eps);
        double g = d->affine ? gamma[ch] : 1.0, b = d->affine ? beta[ch] : 0.0;
        float scale = (float)(g * invstd), shift = (float)(b - rmean[ch] * g * invstd);
        k->bn_affine_row(x + (size_t)ch * m, y + (size_t)ch * m, m, scale, shift, d->relu,
                      d->res ? d->res + (size_t)ch * m : NULL);
    }
}

/* one channel's sums: buf[1 + ch] = sum g, buf[1 + c + ch] = sum g xhat (local); y: mask dy by y > 0 in place */
static void bn_bwd_sums_channel(const bn_desc *d, const nn_kern *k, int m, const float *x, const float *y,
                                const float *dy, float *dyw, const float *gamma, const float *beta,
                                const float *save_mean, const float *save_invstd, double *buf, int ch) {
    double s1, s2;
    const size_t o = (size_t)ch * m;
    if (y)
        k->bn_row_bwd_sums_ymask(x + o, y + o, dyw + o, m, save_mean[ch], &s1, &s2);
    else
        k->bn_row_bwd_sums(x + o, dy + o, m, save_mean[ch], d->relu,
                           d->relu ? bn_mask_scale(d, gamma, save_invstd, ch) : 0.f, save_mean[ch],
                           d->relu && d->affine ? beta[ch] : 0.f, &s1, &s2);
    buf[1 + ch] = s1;
    buf[1 + d->c + ch] = s2 * save_invstd[ch];
}

static void bn_bwd_row_channel(const bn_desc *d, const nn_kern *k, int m, const float *x, const float *dy,
                               const float *gamma, const float *beta, const float *save_mean,
                               const float *save_invstd, float *dx, const double *buf, int ch) {
    const double count = buf[0];
    double invstd = save_invstd[ch], mean = save_mean[ch];
    double a = (d->affine ? gamma[ch] : 1.0) * invstd;
    double p = -a * invstd * buf[1 + d->c + ch] / count;
    double q = -a * buf[1 + ch] / count;
    const float ms = d->relu ? bn_mask_scale(d, gamma, save_invstd, ch) : 0.f;
    const float mh = d->relu && d->affine ? beta[ch] : 0.f;
    k->bn_bwd_row(x + (size_t)ch * m, dy + (size_t)ch * m, dx + (size_t)ch * m, m, (float)a, (float)p, (float)q,
                  (float)mean, d->relu, ms, mh);
}

/* dx = g*invstd*(dy - sum(dy)/M - xhat*sum(dy*xhat)/M), M and the sums global over ranks; written as
 * dx = a*dy + p*(x-mean) + q so the element loop is one fused float pass. dgamma/dbeta get the LOCAL sums: the
 * gradient all-reduce adds the ranks' shares (docs/conventions.md "Gradients"), as in PyTorch's SyncBatchNorm.
 * y non-NULL: dyw (= dy) is first masked by y > 0 in the sums pass (bn_backward_relu_out). */
static void bn_backward_impl(const bn_desc *d, int m, const float *x, const float *y, const float *dy, float *dyw,
                             const float *gamma, const float *beta, const float *save_mean, const float *save_invstd,
                             float *dx, float *dgamma, float *dbeta, const nn_reducer *red) {
    const int c = d->c;
    double *buf = bn_red_buf(red, 2 * c + 1); /* [count, sum dy[c], sum dy*xhat[c]] */
    buf[0] = (double)m;
    const int nt = bn_threads(c, m);
    const nn_kern *k = nn_kern_active();
    const bool local = bn_local(red);
    /* local: the row pass follows each channel's sums while its x and dy rows are in L2 */
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int ch = 0; ch < c; ch++) {
        bn_bwd_sums_channel(d, k, m, x, y, dy, dyw, gamma, beta, save_mean, save_invstd, buf, ch);
        if (local) bn_bwd_row_channel(d, k, m, x, dy, gamma, beta, save_mean, save_invstd, dx, buf, ch);
    }
    if (d->affine) {
        for (int ch = 0; ch < c; ch++) {
            dgamma[ch] += (float)buf[1 + c + ch];
            dbeta[ch] += (float)buf[1 + ch];
        }
    }
    bn_reduce(red, buf, 2 * c + 1);
    if (local) return;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int ch = 0; ch < c; ch++)
        bn_bwd_row_channel(d, k, m, x, dy, gamma, beta, save_mean, save_invstd, dx, buf, ch);
}

void bn_backward(const bn_desc *d, int m, const float *x, const float *dy, const float *gamma, const float *beta,
                 const float *save_mean, const float *save_invstd, float *dx, float *dgamma, float *dbeta,
                 const nn_reducer *red) {
    bn_backward_impl(d, m, x, NULL, dy, NULL, gamma, beta, save_mean, save_invstd, dx, dgamma, dbeta, red);
}

void bn_backward_relu_out(const bn_desc *d, int m, const float *x, const float *y, float *dy, const float *gamma,
                          const float *beta, const float *save_mean, const float *save_invstd, float *dx,
                          float *dgamma, float *dbeta, const nn_reducer *red) {
    SC_CHECK(!d->relu && y, "bn_backward_relu_out: the mask is y's (d->relu off), y needed");
    bn_backward_impl(d, m, x, y, dy, dy, gamma, beta, save_mean, save_invstd, dx, dgamma, dbeta, red);
}
