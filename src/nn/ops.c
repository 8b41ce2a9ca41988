/* nn/ops: element-wise and pooling layers over CNHW activations (see nn/ops.h). */
#include "nn/ops.h"
#include "blas/blas.h"
#include "core/error.h"
#include "nn/kern.h"
#include <math.h>
#include <string.h>

/* Element-wise loops are memory-bound: a second thread helps only on large arrays. */
static int ops_threads(size_t len) { return len >= ((size_t)1 << 17) ? blas_threads() : 1; }

/* the loops are nn/kern's, per vector ISA */
void relu_forward(size_t len, const float *x, float *y) { nn_kern_active()->relu_forward(len, x, y, ops_threads(len)); }

void relu_backward(size_t len, const float *y, const float *dy, float *dx) {
    nn_kern_active()->relu_backward(len, y, dy, dx, ops_threads(len));
}

void add_inplace(size_t len, float *restrict y, const float *restrict x) {
    nn_kern_active()->add_inplace(len, y, x, ops_threads(len));
}

/* 3x3 / stride 2 / pad 1. Ties keep the first maximum in scan order, like PyTorch; padding never wins because
 * every window holds at least one real pixel. */
void maxpool_forward(int c, int n, int h, int w, const float *x, float *y, int32_t *argmax) {
    const int ho = (h + 2 - 3) / 2 + 1, wo = (w + 2 - 3) / 2 + 1;
    const size_t planes = (size_t)c * n;
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x + p * h * w;
        float *yp = y + p * ho * wo;
        int32_t *ap = argmax + p * ho * wo;
        for (int oh = 0; oh < ho; oh++) {
            for (int ow = 0; ow < wo; ow++) {
                float best = -INFINITY;
                int32_t bi = -1;
                for (int kh = 0; kh < 3; kh++) {
                    int ih = oh * 2 - 1 + kh;
                    if (ih < 0 || ih >= h) continue;
                    for (int kw = 0; kw < 3; kw++) {
                        int iw = ow * 2 - 1 + kw;
                        if (iw < 0 || iw >= w) continue;
                        float v = xp[ih * w + iw];
                        if (bi < 0 || v > best || isnan(v)) { best = v; bi = ih * w + iw; } /* NaN propagates */
                    }
                }
                yp[oh * wo + ow] = best;
                ap[oh * wo + ow] = bi;
            }
        }
    }
}

void maxpool_backward(int c, int n, int h, int w, const float *dy, const int32_t *argmax, float *dx) {
    const int ho = (h + 2 - 3) / 2 + 1, wo = (w + 2 - 3) / 2 + 1;
    const size_t planes = (size_t)c * n;
    memset(dx, 0, sizeof(float) * planes * h * w);
    for (size_t p = 0; p < planes; p++) {
        float *dp = dx + p * h * w;
        const float *gp = dy + p * ho * wo;
        const int32_t *ap = argmax + p * ho * wo;
        for (int i = 0; i < ho * wo; i++) dp[ap[i]] += gp[i];
    }
}

void gap_forward(int c, int n, int hw, const float *x, float *y) {
    const float inv = 1.f / (float)hw;
    const size_t rows = (size_t)c * n;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * hw;
        float s = 0.f;
        for (int i = 0; i < hw; i++) s += xr[i];
        y[r] = s * inv;
    }
}

void gap_backward(int c, int n, int hw, const float *dy, float *dx) {
    const float inv = 1.f / (float)hw;
    const size_t rows = (size_t)c * n;
    for (size_t r = 0; r < rows; r++) {
        const float g = dy[r] * inv;
        float *dr = dx + r * hw;
        for (int i = 0; i < hw; i++) dr[i] = g;
    }
}

/* F.normalize: y = x / max(||x||, eps). The column loops run over n innermost (contiguous) so they vectorize;
 * norms[] doubles as the accumulator. */
#define L2_EPS 1e-12f
void l2norm_forward(int d, int n, const float *x, float *y, float *norms) {
    for (int j = 0; j < n; j++) norms[j] = 0.f;
    for (int i = 0; i < d; i++) {
        const float *xr = x + (size_t)i * n;
        for (int j = 0; j < n; j++) norms[j] += xr[j] * xr[j];
    }
    for (int j = 0; j < n; j++) norms[j] = sqrtf(norms[j]);
    for (int i = 0; i < d; i++) {
        const float *xr = x + (size_t)i * n;
        float *yr = y + (size_t)i * n;
        for (int j = 0; j < n; j++) yr[j] = xr[j] / fmaxf(norms[j], L2_EPS);
    }
}

/* dx = (dy - y (y.dy)) / ||x|| where the norm is above eps, dy / eps where it was clamped.
 * Row 0 of dx holds the column dots y.dy until it is written last, so no scratch is needed: dx must not
 * alias y or dy. */
void l2norm_backward(int d, int n, const float *y, const float *norms, const float *dy, float *dx) {
    float *dot = dx;
    for (int j = 0; j < n; j++) dot[j] = y[j] * dy[j];
    for (int i = 1; i < d; i++) {
        const float *yr = y + (size_t)i * n, *gr = dy + (size_t)i * n;
        for (int j = 0; j < n; j++) dot[j] += yr[j] * gr[j];
    }
    for (int i = d - 1; i >= 0; i--) { /* row 0 last: it holds the dots */
        const float *yr = y + (size_t)i * n, *gr = dy + (size_t)i * n;
        float *dr = dx + (size_t)i * n;
        for (int j = 0; j < n; j++) {
            float nr = norms[j];
            dr[j] = nr > L2_EPS ? (gr[j] - yr[j] * dot[j]) / nr : gr[j] / L2_EPS;
        }
    }
}

/* Blocked so that both the reads and the writes stay within a few cache lines per block. */
void transpose(int rows, int cols, const float *x, float *y) {
    enum { B = 32 };
    for (int r0 = 0; r0 < rows; r0 += B)
        for (int c0 = 0; c0 < cols; c0 += B) {
            int r1 = r0 + B < rows ? r0 + B : rows, c1 = c0 + B < cols ? c0 + B : cols;
            for (int c = c0; c < c1; c++)
                for (int r = r0; r < r1; r++) y[(size_t)c * rows + r] = x[(size_t)r * cols + c];
        }
}
