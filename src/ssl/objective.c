#include "ssl/objective.h"
#include "blas/blas.h"
#include "core/error.h"
#include "nn/kern.h"
#include "optim/sched.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

/* the softmax row kernels are nn/kern's, per vector ISA */
static float obj_row_max(const float *x, int c) { return nn_kern_active()->row_max(x, c); }
static double obj_row_lse(const float *x, int c, float mx, float s) { return nn_kern_active()->row_lse(x, c, mx, s); }
static void obj_row_grad(const float *restrict zr, const float *restrict tr, float *restrict dr, int c, float a,
                         float lse_c, float gc, float inv_tau, float lse_s, float lse_t, float gk) {
    nn_kern_active()->row_grad(zr, tr, dr, c, a, lse_c, gc, inv_tau, lse_s, lse_t, gk);
}

/* per-row loss terms of obj_logits_loss: grown on the first call of a size, then reused (the step does not
 * allocate after its first step) */
static void *obj_rows_buf;
static size_t obj_rows_bytes;

void obj_logits_loss(const obj_logits_args *a) {
    const int rows = a->rows, c = a->c, ldz = a->ldz, label0 = a->label0, label_step = a->label_step;
    const float *z = a->z, *t = a->kd.teacher;
    const double denom = a->denom;
    const float con_zscale = a->con_zscale, con_lscale = a->con_lscale, w_con = a->kd.w_con, tau = a->kd.tau,
                w_kd = a->kd.w_kd;
    float *dz = a->dz;
    double *l_con = a->l_con, *l_kd = a->l_kd;
    bool kd = t != NULL && w_kd != 0.0f;
    float inv_tau = kd ? 1.0f / tau : 0.0f;
    /* d/dz of the weighted row terms: CE gives a (softmax - onehot) scaled by lscale; KD gives
     * tau^2 (1/tau)(p_s - p_t) = tau (p_s - p_t) */
    float gc = (float)((double)w_con * con_lscale * con_zscale / denom);
    float gk = kd ? (float)((double)w_kd * tau / denom) : 0.0f;
    double *rc = sc_grow(&obj_rows_buf, &obj_rows_bytes, sizeof(double) * 2 * (size_t)rows), *rk = rc + rows;
    /* rows in parallel (each a few passes over 1+K logits); the row terms are summed below in row order, so
     * the loss is the same for any thread count */
    const int nt = (size_t)rows * c >= ((size_t)1 << 16) ? blas_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int r = 0; r < rows; r++) {
        const float *zr = z + (size_t)r * ldz;
        int y = label0 + r * label_step;
        float mx = obj_row_max(zr, c);
        double lse_c = obj_row_lse(zr, c, mx, con_zscale);
        rc[r] = (double)con_lscale * (lse_c - (double)con_zscale * zr[y]);
        rk[r] = 0.0;
        double lse_s = 0.0, lse_t = 0.0;
        const float *tr = kd ? t + (size_t)r * ldz : NULL;
        if (kd) {
            lse_s = obj_row_lse(zr, c, mx, inv_tau);
            lse_t = obj_row_lse(tr, c, obj_row_max(tr, c), inv_tau);
            /* -sum p_t log p_s = lse_s - sum_j p_t,j z_j / tau */
            double ptz = nn_kern_active()->row_ptz(zr, tr, c, inv_tau, (float)lse_t);
            rk[r] = (double)tau * tau * (lse_s - ptz / tau);
        }
        if (!dz) continue;
        float *dr = dz + (size_t)r * ldz;
        obj_row_grad(zr, tr, dr, c, con_zscale, (float)lse_c, gc, inv_tau, (float)lse_s, (float)lse_t, gk);
        dr[y] -= gc;
    }
    double lc = 0.0, lk = 0.0;
    for (int r = 0; r < rows; r++) { lc += rc[r]; lk += rk[r]; }
    if (l_con) *l_con = lc / denom;
    if (l_kd) *l_kd = lk / denom;
}

/* ---- MoCo v2 ---------------------------------------------------------------------------------------------- */
void obj_mocov2_logits(int D, int n, int K, const float *q, const float *k, const float *queue, float *z) {
    int ld = K + 1;
    for (int i = 0; i < n; i++) {
        float s = 0.0f;
        for (int d = 0; d < D; d++) s += q[(size_t)d * n + i] * k[(size_t)d * n + i];
        z[(size_t)i * ld] = s;
    }
    /* z[:, 1:] = q^T queue */
    if (K > 0) blas_sgemm(true, false, n, K, D, 1.0f, q, n, queue, K, 0.0f, z + 1, ld);
}

void obj_mocov2_backward(int D, int n, int K, const float *dz, const float *k, const float *queue, float *dq) {
    int ld = K + 1;
    if (K > 0) blas_sgemm(false, true, D, n, K, 1.0f, queue, K, dz + 1, ld, 0.0f, dq, n);
    else memset(dq, 0, sizeof(float) * (size_t)D * n);
    for (int d = 0; d < D; d++)
        for (int i = 0; i < n; i++) dq[(size_t)d * n + i] += dz[(size_t)i * ld] * k[(size_t)d * n + i];
}

double obj_mocov2(const obj_mocov2_args *a) {
    int D = a->D, n = a->n, K = a->K;
    double lc, lk;
    obj_mocov2_logits(D, n, K, a->q, a->k, a->queue, a->z);
    bool bw = a->dz && a->dq;
    obj_logits_loss(&(obj_logits_args){.rows = n, .c = K + 1, .z = a->z, .ldz = K + 1, .label0 = 0, .label_step = 0,
                                       .denom = n, .con_zscale = 1.0f / a->T, .con_lscale = 1.0f, .kd = a->kd,
                                       .dz = bw ? a->dz : NULL, .l_con = &lc, .l_kd = &lk});
    if (bw) obj_mocov2_backward(D, n, K, a->dz, a->k, a->queue, a->dq);
    if (a->l_con) *a->l_con = lc;
    if (a->l_kd) *a->l_kd = lk;
    return a->kd.w_con * lc + a->kd.w_kd * lk;
}

/* ---- MoCo v3 ---------------------------------------------------------------------------------------------- */
void obj_mocov3_logits(int D, int n, int B, float T, const float *q, const float *kall, float *z) {
    blas_sgemm(true, false, n, B, D, 1.0f / T, q, n, kall, B, 0.0f, z, B);
}

void obj_mocov3_backward(int D, int n, int B, float T, const float *dz, const float *kall, float *dq) {
    blas_sgemm(false, true, D, n, B, 1.0f / T, kall, B, dz, B, 0.0f, dq, n);
}

double obj_mocov3(const obj_mocov3_args *a) {
    int D = a->D, n = a->n, B = a->B;
    double lc, lk;
    obj_mocov3_logits(D, n, B, a->T, a->q, a->kall, a->z);
    bool bw = a->dz && a->dq;
    /* docs/method.md §3.2: CE on q K^T / T times 2T; KD on the same logits, without the 2T */
    obj_logits_loss(&(obj_logits_args){.rows = n, .c = B, .z = a->z, .ldz = B, .label0 = a->offset, .label_step = 1,
                                       .denom = n, .con_zscale = 1.0f, .con_lscale = 2.0f * a->T, .kd = a->kd,
                                       .dz = bw ? a->dz : NULL, .l_con = &lc, .l_kd = &lk});
    if (bw) obj_mocov3_backward(D, n, B, a->T, a->dz, a->kall, a->dq);
    if (a->l_con) *a->l_con = lc;
    if (a->l_kd) *a->l_kd = lk;
    return a->kd.w_con * lc + a->kd.w_kd * lk;
}

/* ---- SimCLR ----------------------------------------------------------------------------------------------- */
long obj_simclr_scratch(int n, int N) { return 4L * n * N; } /* S or dS: [2n][2N] */

/* global column of local row r: its own feature, removed from its logits */
static int obj_simclr_self(int r, int n, int N, int off) { return r < n ? off + r : N + off + (r - n); }

void obj_simclr_logits(int D, int n, int N, int off, const float *z1, const float *z2, float *S, float *z) {
    int ld = 2 * N, c = 2 * N - 1;
    const float *loc[2] = {z1 + off, z2 + off}, *all[2] = {z1, z2};
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            blas_sgemm(true, false, n, N, D, 1.0f, loc[a], N, all[b], N, 0.0f, S + (size_t)a * n * ld + (size_t)b * N,
                       ld);
    for (int r = 0; r < 2 * n; r++) {
        int s = obj_simclr_self(r, n, N, off);
        const float *Sr = S + (size_t)r * ld;
        float *zr = z + (size_t)r * c;
        memcpy(zr, Sr, sizeof(float) * (size_t)s);
        memcpy(zr + s, Sr + s + 1, sizeof(float) * (size_t)(c - s));
    }
}

void obj_simclr_backward(int D, int n, int N, int off, const float *z1, const float *z2, const float *dz,
                         float *dS, float *dz1, float *dz2) {
    int ld = 2 * N, c = 2 * N - 1;
    for (int r = 0; r < 2 * n; r++) {
        int s = obj_simclr_self(r, n, N, off);
        float *dr = dS + (size_t)r * ld;
        const float *gr = dz + (size_t)r * c;
        memcpy(dr, gr, sizeof(float) * (size_t)s);
        dr[s] = 0.0f;
        memcpy(dr + s + 1, gr + s, sizeof(float) * (size_t)(c - s));
    }
    const float *loc[2] = {z1 + off, z2 + off}, *all[2] = {z1, z2};
    float *dall[2] = {dz1, dz2};
    /* S = F^T G with F the local columns, G all columns: dG = F dS, dF = G dS^T */
    for (int b = 0; b < 2; b++)
        for (int a = 0; a < 2; a++)
            blas_sgemm(false, false, D, N, n, 1.0f, loc[a], N, dS + (size_t)a * n * ld + (size_t)b * N, ld,
                       a ? 1.0f : 0.0f, dall[b], N);
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            blas_sgemm(false, true, D, n, N, 1.0f, all[b], N, dS + (size_t)a * n * ld + (size_t)b * N, ld, 1.0f,
                       dall[a] + off, N);
}

double obj_simclr(const obj_simclr_args *a) {
    int D = a->D, n = a->n, N = a->N, off = a->off, c = 2 * N - 1;
    float *z = a->z, *dz = a->dz;
    obj_simclr_logits(D, n, N, off, a->z1, a->z2, a->scratch, z);
    bool bw = dz && a->dz1 && a->dz2;
    double lc1, lk1, lc2, lk2;
    size_t half = (size_t)n * c;
    obj_kd kd2 = a->kd;
    if (kd2.teacher) kd2.teacher += half;
    /* view-1 row i: positive = view-2 column N+off+i, shifted left by the removed self column */
    obj_logits_loss(&(obj_logits_args){.rows = n, .c = c, .z = z, .ldz = c, .label0 = N + off - 1, .label_step = 1,
                                       .denom = 2.0 * n, .con_zscale = 1.0f / a->T, .con_lscale = 1.0f, .kd = a->kd,
                                       .dz = bw ? dz : NULL, .l_con = &lc1, .l_kd = &lk1});
    obj_logits_loss(&(obj_logits_args){.rows = n, .c = c, .z = z + half, .ldz = c, .label0 = off, .label_step = 1,
                                       .denom = 2.0 * n, .con_zscale = 1.0f / a->T, .con_lscale = 1.0f, .kd = kd2,
                                       .dz = bw ? dz + half : NULL, .l_con = &lc2, .l_kd = &lk2});
    if (bw) obj_simclr_backward(D, n, N, off, a->z1, a->z2, dz, a->scratch, a->dz1, a->dz2);
    if (a->l_con) *a->l_con = lc1 + lc2;
    if (a->l_kd) *a->l_kd = lk1 + lk2;
    return a->kd.w_con * (lc1 + lc2) + a->kd.w_kd * (lk1 + lk2);
}

double obj_supervised(const obj_supervised_args *a) {
    const int K = a->K, n = a->n;
    const float *lg = a->lg, *teacher = a->kd.teacher;
    const int32_t *y = a->y;
    float *z = a->z, *dz = a->dz, *dq = a->dq;
    double *l_con = a->l_con, *l_kd = a->l_kd;
    const float w_con = a->kd.w_con, w_kd = a->kd.w_kd;
    for (int d = 0; d < K; d++)
        for (int r = 0; r < n; r++) z[(size_t)r * K + d] = lg[(size_t)d * n + r];
    double lc = 0, lk = 0;
    for (int r = 0; r < n; r++) { /* one row at a time: the label is arbitrary (label_step 0) */
        double c1, k1;
        obj_kd kd = a->kd;
        kd.teacher = teacher ? teacher + (size_t)r * K : NULL;
        obj_logits_loss(&(obj_logits_args){.rows = 1, .c = K, .z = z + (size_t)r * K, .ldz = K, .label0 = y[r],
                                           .label_step = 0, .denom = (double)n, .con_zscale = 1.0f,
                                           .con_lscale = 1.0f, .kd = kd, .dz = dq ? dz + (size_t)r * K : NULL,
                                           .l_con = &c1, .l_kd = &k1});
        lc += c1;
        lk += k1;
    }
    if (dq)
        for (int d = 0; d < K; d++)
            for (int r = 0; r < n; r++) dq[(size_t)d * n + r] = dz[(size_t)r * K + d];
    if (l_con) *l_con = lc;
    if (l_kd) *l_kd = lk;
    return w_con * lc + w_kd * lk;
}

float obj_simclr_grad_scale(bool reference, int P) { return reference && P > 1 ? 1.0f / (float)P : 1.0f; }

/* ---- weights and slow start ------------------------------------------------------------------------------- */
static float obj_round3(double x) { return (float)(round(x * 1000.0) / 1000.0); }

sc_err obj_loss_weights(int option, int nwidths, const float *widths, float *lambda) {
    if (nwidths < 1 || nwidths > OBJ_MAX_WIDTHS)
        return sc_errorf(SC_ERR_CONFIG, "widths: %d entries, expected 1..%d", nwidths, OBJ_MAX_WIDTHS);
    double sum = 0.0;
    for (int i = 0; i < nwidths; i++) {
        if (!(widths[i] > 0.0f) || (i > 0 && !(widths[i] < widths[i - 1])))
            return sc_errorf(SC_ERR_CONFIG, "widths[%d] = %g: expected positive and strictly descending", i,
                             widths[i]);
        sum += widths[i];
    }
    int n = nwidths;
    switch (option) {
    case 0: for (int i = 0; i < n; i++) lambda[i] = 1.0f; break;
    case 1: for (int i = 0; i < n; i++) lambda[i] = obj_round3(widths[i] / sum); break;
    case 2: for (int i = 0; i < n; i++) lambda[i] = widths[i]; break;
    case 3: for (int i = 0; i < n; i++) lambda[i] = obj_round3(widths[i] / sum * n); break;
    case 5: /* full network: 1 + sum of the sub-widths; the others 1 */
        for (int i = 0; i < n; i++) lambda[i] = 1.0f;
        lambda[0] = (float)(1.0 + sum - widths[0]);
        break;
    case 6: { /* lambda_i ~ 1 + sum_{j>i} w_j, normalised to sum n */
        double raw[OBJ_MAX_WIDTHS], rs = 0.0, tail = sum;
        for (int i = 0; i < n; i++) { tail -= widths[i]; raw[i] = 1.0 + tail; rs += raw[i]; }
        for (int i = 0; i < n; i++) lambda[i] = obj_round3(raw[i] / rs * n);
        break;
    }
    case 7:
        if (n < 2)
            return sc_errorf(SC_ERR_CONFIG, "slim_loss_weighted: option 7 needs at least 2 widths, got %d", n);
        for (int i = 0; i < n; i++) lambda[i] = 1.0f;
        lambda[0] = 1.0f + widths[1];
        break;
    default:
        return sc_errorf(SC_ERR_CONFIG, "slim_loss_weighted: option %d, expected one of 0, 1, 2, 3, 5, 6, 7", option);
    }
    return SC_OK;
}

bool obj_slow_start_over(long epoch, long step, long steps_per_epoch, double S) {
    if (steps_per_epoch <= 0) return S <= 0.0;
    return sched_slow_start_over(epoch * steps_per_epoch + step, steps_per_epoch, S);
}

void obj_step_weights(int nwidths, const float *lambda, bool slim, bool distill, float alpha, obj_weights *w) {
    memset(w, 0, sizeof *w);
    w->nwidths = nwidths;
    w->slim = slim;
    if (!slim) { /* docs/method.md §4: before slow start only the full width, weight 1 (not lambda_0) */
        w->enable[0] = true;
        w->lambda[0] = 1.0f;
        w->w_con[0] = 1.0f;
        return;
    }
    float a = distill ? alpha : 0.0f;
    w->alpha = a;
    for (int i = 0; i < nwidths; i++) {
        w->enable[i] = true;
        w->lambda[i] = lambda[i];
        w->w_con[i] = i == 0 ? lambda[0] : lambda[i] * (1.0f - a);
        w->w_kd[i] = i == 0 ? 0.0f : lambda[i] * a;
    }
}

void obj_weights_mean(obj_weights *w) {
    int k = 0;
    for (int i = 0; i < w->nwidths; i++) k += w->enable[i];
    if (k <= 1) return;
    for (int i = 0; i < w->nwidths; i++) {
        w->lambda[i] /= (float)k;
        w->w_con[i] /= (float)k;
        w->w_kd[i] /= (float)k;
    }
}

void obj_teacher_temper(float *t, size_t n, float tau_s, float tau_t) {
    if (!(tau_t > 0.0f) || tau_t == tau_s) return;
    const float s = tau_s / tau_t;
    for (size_t i = 0; i < n; i++) t[i] *= s;
}

double obj_feature_distill(const obj_feat_args *a) {
    const obj_feat_mode mode = a->mode;
    const int D = a->D, n = a->n;
    const float *q = a->q, *t = a->t;
    const float tau = a->tau, w = a->w;
    float *dq = a->dq, *scratch = a->scratch;
    size_t m = (size_t)D * n;
    if (mode == OBJ_FEAT_MSE) {
        double L = 0.0;
        const float g = 2.0f * w / (float)m;
        for (size_t i = 0; i < m; i++) {
            float d = q[i] - t[i];
            L += (double)d * d;
            dq[i] += g * d;
        }
        return L / (double)m;
    }
    if (mode != OBJ_FEAT_KL) return 0.0;
    float *zq = scratch, *zt = scratch + m, *dz = scratch + 2 * m; /* sample-major [n][D] */
    for (int d = 0; d < D; d++)
        for (int r = 0; r < n; r++) {
            zq[(size_t)r * D + d] = q[(size_t)d * n + r];
            zt[(size_t)r * D + d] = t[(size_t)d * n + r];
        }
    double lc, lk;
    obj_logits_loss(&(obj_logits_args){.rows = n, .c = D, .z = zq, .ldz = D, .label0 = 0, .label_step = 0,
                                       .denom = (double)n, .con_zscale = 1.0f, .con_lscale = 1.0f,
                                       .kd = {.teacher = zt, .tau = tau, .w_con = 0.0f, .w_kd = w}, .dz = dz,
                                       .l_con = &lc, .l_kd = &lk});
    for (int d = 0; d < D; d++)
        for (int r = 0; r < n; r++) dq[(size_t)d * n + r] += dz[(size_t)r * D + d];
    return lk;
}

double obj_combine(const obj_weights *w, const double *l_con, const double *l_kd) {
    double L = 0.0;
    for (int i = 0; i < w->nwidths; i++)
        if (w->enable[i]) L += (double)w->w_con[i] * l_con[i] + (double)w->w_kd[i] * (l_kd ? l_kd[i] : 0.0);
    return L;
}
