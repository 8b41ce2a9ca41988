/* nn/bn: batch norm over CNHW rows (docs/method.md §1.1, 14.2), PyTorch semantics, optional SyncBN through a reducer.
 * Per-channel sums are accumulated in double; the element loops are plain float loops that vectorize. */
#include "nn/bn.h"
#include "blas/blas.h"
#include "core/error.h"
#include <math.h>
#include <string.h>

/* Scratch for the reducer buffers ([count, c sums, c sums]): grown on the first call of a size, then reused,
 * so the training step does not allocate after its first step. Thread-local: layers may run in threads. */
static _Thread_local void *bn_scratch;
static _Thread_local size_t bn_scratch_bytes;

static double *bn_buf(size_t len) { return sc_grow(&bn_scratch, &bn_scratch_bytes, sizeof(double) * len); }

/* GCC/Clang vector extensions: the reductions convert 4 floats at a time to double and keep 2x4 double lanes
 * (a plain loop with one double accumulator stays scalar without -ffast-math, which fixes the order). */
typedef float bn_v4f __attribute__((vector_size(16)));
typedef double bn_v4d __attribute__((vector_size(32)));

static inline bn_v4d bn_load4(const float *p) {
    bn_v4f v;
    memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, bn_v4d);
}
static inline double bn_hsum(bn_v4d v) { return (v[0] + v[1]) + (v[2] + v[3]); }

/* sum x and sum x^2 of a row, in double */
static void bn_row_sums(const float *x, int m, double *s1, double *s2) {
    bn_v4d a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
    int i = 0;
    for (; i + 8 <= m; i += 8) {
        bn_v4d u = bn_load4(x + i), v = bn_load4(x + i + 4);
        a0 += u; a1 += v;
        b0 += u * u; b1 += v * v;
    }
    double sa = bn_hsum(a0 + a1), sb = bn_hsum(b0 + b1);
    for (; i < m; i++) { double v = x[i]; sa += v; sb += v * v; }
    *s1 = sa; *s2 = sb;
}

/* sum g and sum g*(x-mean) of a row, in double; g = dy, or with relu dy masked by ReLU's backward
 * (bn_saved_affine(x, s, mu, h) > 0). The masked values go to a chunk buffer first (a plain loop that vectorizes;
 * a mask per 8 lanes inside the sum loop stayed scalar, with a branch per element); the accumulators
 * run across chunks, so the order of the sums is the same with and without the mask. */
static void bn_row_bwd_sums(const float *x, const float *dy, int m, double mean, bool relu, float s, float mu,
                            float h, double *s1, double *s2) {
    bn_v4d a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
    const bn_v4d md = {mean, mean, mean, mean};
    float buf[256];
    const int m8 = m & ~7;
    int i = 0;
    while (i < m8) {
        const int len = m8 - i < 256 ? m8 - i : 256;
        const float *g = dy + i;
        if (relu) {
            for (int k = 0; k < len; k++) buf[k] = bn_saved_affine(x[i + k], s, mu, h) > 0.f ? dy[i + k] : 0.f;
            g = buf;
        }
        for (int k = 0; k < len; k += 8) {
            bn_v4d u = bn_load4(g + k), v = bn_load4(g + k + 4);
            a0 += u; a1 += v;
            b0 += u * (bn_load4(x + i + k) - md); b1 += v * (bn_load4(x + i + k + 4) - md);
        }
        i += len;
    }
    double sa = bn_hsum(a0 + a1), sb = bn_hsum(b0 + b1);
    for (; i < m; i++) {
        double gi = !relu || bn_saved_affine(x[i], s, mu, h) > 0.f ? dy[i] : 0.f;
        sa += gi; sb += gi * ((double)x[i] - mean);
    }
    *s1 = sa; *s2 = sb;
}

/* the same float expressions as a separate residual add and relu_forward pass, so fusing them changes no bit
 * (the flags are loop-invariant: the compiler unswitches the loop into its four variants) */
static void bn_affine_row(const float *x, float *y, int m, float scale, float shift, bool relu, const float *res) {
    for (int i = 0; i < m; i++) {
        float v = x[i] * scale + shift;
        if (res) v = v + res[i];
        y[i] = relu && !(v > 0.f) ? 0.f : v;
    }
}

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

void bn_forward_train(const bn_desc *d, int m, const float *x, float *y, const float *gamma, const float *beta,
                      float *rmean, float *rvar, float *save_mean, float *save_invstd, const nn_reducer *red) {
    const int c = d->c;
    SC_CHECK(c > 0 && m > 0, "bn_forward_train: c=%d m=%d", c, m);
    double *buf = bn_red_buf(red, 2 * c + 1); /* [count, sum[c], sumsq[c]] */
    buf[0] = (double)m;
    const int nt = bn_threads(c, m);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int ch = 0; ch < c; ch++) bn_row_sums(x + (size_t)ch * m, m, &buf[1 + ch], &buf[1 + c + ch]);
    bn_reduce(red, buf, 2 * c + 1);
    const double count = buf[0];
    SC_CHECK(count > 1 || rmean == NULL, "bn_forward_train: %g values per channel cannot give an unbiased variance",
             count);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int ch = 0; ch < c; ch++) {
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
        if (y) bn_affine_row(x + (size_t)ch * m, y + (size_t)ch * m, m, scale, shift, d->relu,
                             d->res ? d->res + (size_t)ch * m : NULL);
    }
}

void bn_forward_eval(const bn_desc *d, int m, const float *x, float *y, const float *gamma, const float *beta,
                     const float *rmean, const float *rvar) {
    if (!y) return;
    for (int ch = 0; ch < d->c; ch++) {
        double invstd = 1.0 / sqrt((double)rvar[ch] + (double)d->eps);
        double g = d->affine ? gamma[ch] : 1.0, b = d->affine ? beta[ch] : 0.0;
        float scale = (float)(g * invstd), shift = (float)(b - rmean[ch] * g * invstd);
        bn_affine_row(x + (size_t)ch * m, y + (size_t)ch * m, m, scale, shift, d->relu,
                      d->res ? d->res + (size_t)ch * m : NULL);
    }
}

/* dx = g*invstd*(dy - sum(dy)/M - xhat*sum(dy*xhat)/M), M and the sums global over ranks; written as
 * dx = a*dy + p*(x-mean) + q so the element loop is one fused float pass. dgamma/dbeta get the LOCAL sums: the
 * gradient all-reduce adds the ranks' shares (docs/conventions.md "Gradients"), as in PyTorch's SyncBatchNorm. */
void bn_backward(const bn_desc *d, int m, const float *x, const float *dy, const float *gamma, const float *beta,
                 const float *save_mean, const float *save_invstd, float *dx, float *dgamma, float *dbeta,
                 const nn_reducer *red) {
    const int c = d->c;
    double *buf = bn_red_buf(red, 2 * c + 1); /* [count, sum dy[c], sum dy*xhat[c]] */
    buf[0] = (double)m;
    const int nt = bn_threads(c, m);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int ch = 0; ch < c; ch++) {
        double s1, s2;
        bn_row_bwd_sums(x + (size_t)ch * m, dy + (size_t)ch * m, m, save_mean[ch], d->relu,
                        d->relu ? bn_mask_scale(d, gamma, save_invstd, ch) : 0.f, save_mean[ch],
                        d->relu && d->affine ? beta[ch] : 0.f, &s1, &s2);
        buf[1 + ch] = s1;
        buf[1 + c + ch] = s2 * save_invstd[ch];
    }
    if (d->affine) {
        for (int ch = 0; ch < c; ch++) {
            dgamma[ch] += (float)buf[1 + c + ch];
            dbeta[ch] += (float)buf[1 + ch];
        }
    }
    bn_reduce(red, buf, 2 * c + 1);
    const double count = buf[0];
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int ch = 0; ch < c; ch++) {
        double invstd = save_invstd[ch], mean = save_mean[ch];
        double a = (d->affine ? gamma[ch] : 1.0) * invstd;
        double p = -a * invstd * buf[1 + c + ch] / count;
        double q = -a * buf[1 + ch] / count;
        const float *xr = x + (size_t)ch * m, *gr = dy + (size_t)ch * m;
        float *dr = dx + (size_t)ch * m;
        const float af = (float)a, pf = (float)p, qf = (float)q, mf = (float)mean;
        /* (x - mean) first: folding mean into q would cancel badly when |mean| >> std */
        if (d->relu) {
            const float ms = bn_mask_scale(d, gamma, save_invstd, ch), mh = d->affine ? beta[ch] : 0.f;
            for (int i = 0; i < m; i++) {
                const float g = bn_saved_affine(xr[i], ms, mf, mh) > 0.f ? gr[i] : 0.f;
                dr[i] = af * g + pf * (xr[i] - mf) + qf;
            }
        } else {
            for (int i = 0; i < m; i++) dr[i] = af * gr[i] + pf * (xr[i] - mf) + qf;
        }
    }
}
