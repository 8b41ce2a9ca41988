/* nn/conv: whole-batch GEMM convolution over CNHW activations (see nn/layout.h).
 *   forward:  Y[cout][N*Ho*Wo]  = W[:cout, :cin*k*k] (ld cin_max*k*k) x col[cin*k*k][N*Ho*Wo]
 *   backward: dW[:cout, :cin*k*k] += dY x col^T,   dx = col2im(W^T x dY)
 * A 1x1 stride-1 pad-0 convolution needs no im2col: x already is the col matrix. Otherwise col is built for a
 * chunk of whole images at a time, so the workspace stays bounded (conv_ws_budget floats, at least one image)
 * while every GEMM keeps thousands of columns. A chunk's output is a column block of Y (ld N*Ho*Wo). */
#include "nn/conv.h"
#include "blas/blas.h"
#include "core/error.h"
#include <string.h>

/* 16 MB of col panel: big enough that GEMM N stays large (>= 6k columns for the B1 stage-0 layers), small
 * enough that it is a minor share of the activation tape. */
#define CONV_WS_BUDGET_DEFAULT ((size_t)4 << 20)
static size_t conv_ws_budget = CONV_WS_BUDGET_DEFAULT;

void conv_set_workspace_budget(size_t floats) { conv_ws_budget = floats ? floats : CONV_WS_BUDGET_DEFAULT; }

static int conv_is_pointwise(const conv_desc *d) { return d->k == 1 && d->stride == 1 && d->pad == 0; }

static void conv_check(const conv_desc *d, int n, int cin, int cout, int h, int w) {
    SC_CHECK(d->k > 0 && d->stride > 0 && d->pad >= 0, "conv: bad descriptor k=%d stride=%d pad=%d", d->k, d->stride,
             d->pad);
    SC_CHECK(cin > 0 && cin <= d->cin_max && cout > 0 && cout <= d->cout_max,
             "conv: slice %dx%d outside the full weight %dx%d", cout, cin, d->cout_max, d->cin_max);
    SC_CHECK(n > 0 && h + 2 * d->pad >= d->k && w + 2 * d->pad >= d->k, "conv: input %dx%dx%d too small for k=%d",
             n, h, w, d->k);
}

/* Images per chunk: as many as fit the budget, at least one. Depends on cin so that a workspace planned for the
 * widest slice (conv_workspace_floats is monotone in cin) always fits a narrower one. */
static int conv_chunk(const conv_desc *d, int n, int cin, int ho, int wo) {
    size_t per_img = (size_t)cin * d->k * d->k * ho * wo;
    size_t nb = conv_ws_budget / per_img;
    if (nb < 1) nb = 1;
    if (nb > (size_t)n) nb = (size_t)n;
    return (int)nb;
}

size_t conv_workspace_floats(const conv_desc *d, int n, int cin, int cout, int h, int w) {
    if (conv_is_pointwise(d)) return 0;
    int ho = conv_out_size(h, d->k, d->stride, d->pad), wo = conv_out_size(w, d->k, d->stride, d->pad);
    size_t per_img = (size_t)cin * d->k * d->k * ho * wo;
    return (size_t)conv_chunk(d, n, cin, ho, wo) * per_img;
}

/* Threads for the im2col/col2im loops: the BLAS thread count when there is enough work to share. */
static int conv_threads(size_t work) { return work >= ((size_t)1 << 15) ? blas_threads() : 1; }

/* Output positions o in [lo, hi) read input index o*s - pad + kk inside [0, len). */
static void conv_valid_range(int out, int len, int s, int pad, int kk, int *lo, int *hi) {
    int a = pad - kk; /* need o*s >= a */
    int l = a <= 0 ? 0 : (a + s - 1) / s;
    int b = len - 1 + pad - kk; /* need o*s <= b */
    int u = b < 0 ? 0 : b / s + 1;
    if (l > out) l = out;
    if (u > out) u = out;
    if (u < l) u = l;
    *lo = l; *hi = u;
}

/* col[(ci*k+kh)*k+kw][img*Ho*Wo + oh*Wo + ow] = x[ci][n0+img][oh*s-pad+kh][ow*s-pad+kw] (0 outside). */
static void conv_im2col(const conv_desc *d, int n, int n0, int nb, int cin, int h, int w, int ho, int wo,
                        const float *x, float *col) {
    const int k = d->k, s = d->stride, pad = d->pad, kk = k * k, rows = cin * kk;
    const size_t hw = (size_t)h * w, howo = (size_t)ho * wo, ncol = (size_t)nb * howo;
    int nt = conv_threads((size_t)rows * ncol);
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt) if (nt > 1)
    for (int r = 0; r < rows; r++) {
        for (int img = 0; img < nb; img++) {
            const int ci = r / kk, kh = (r / k) % k, kw = r % k;
            const float *src = x + ((size_t)ci * n + n0 + img) * hw;
            float *dst = col + (size_t)r * ncol + (size_t)img * howo;
            int wlo, whi, hlo, hhi;
            conv_valid_range(wo, w, s, pad, kw, &wlo, &whi);
            conv_valid_range(ho, h, s, pad, kh, &hlo, &hhi);
            for (int oh = 0; oh < ho; oh++) {
                float *drow = dst + (size_t)oh * wo;
                if (oh < hlo || oh >= hhi) {
                    memset(drow, 0, sizeof(float) * wo);
                    continue;
                }
                const float *srow = src + (size_t)(oh * s - pad + kh) * w + (kw - pad);
                for (int ow = 0; ow < wlo; ow++) drow[ow] = 0.f;
                if (s == 1) {
                    memcpy(drow + wlo, srow + wlo, sizeof(float) * (whi - wlo));
                } else {
                    for (int ow = wlo; ow < whi; ow++) drow[ow] = srow[(size_t)ow * s];
                }
                for (int ow = whi; ow < wo; ow++) drow[ow] = 0.f;
            }
        }
    }
}

/* dx[ci][n0+img] += scatter of col rows (ci, kh, kw); the planes of the chunk are zeroed first. Parallel over
 * (ci, img) planes: each plane receives only its own k*k rows, so no two threads write the same float. */
static void conv_col2im(const conv_desc *d, int n, int n0, int nb, int cin, int h, int w, int ho, int wo,
                        const float *col, float *dx) {
    const int k = d->k, s = d->stride, pad = d->pad, kk = k * k;
    const size_t hw = (size_t)h * w, howo = (size_t)ho * wo, ncol = (size_t)nb * howo;
    int nt = conv_threads((size_t)cin * kk * ncol);
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt) if (nt > 1)
    for (int ci = 0; ci < cin; ci++) {
        for (int img = 0; img < nb; img++) {
            float *dst = dx + ((size_t)ci * n + n0 + img) * hw;
            memset(dst, 0, sizeof(float) * hw);
            for (int kh = 0; kh < k; kh++) {
                int hlo, hhi;
                conv_valid_range(ho, h, s, pad, kh, &hlo, &hhi);
                for (int kw = 0; kw < k; kw++) {
                    int wlo, whi;
                    conv_valid_range(wo, w, s, pad, kw, &wlo, &whi);
                    const float *src = col + ((size_t)ci * kk + kh * k + kw) * ncol + (size_t)img * howo;
                    for (int oh = hlo; oh < hhi; oh++) {
                        const float *srow = src + (size_t)oh * wo;
                        float *drow = dst + (size_t)(oh * s - pad + kh) * w + (kw - pad);
                        if (s == 1) {
                            for (int ow = wlo; ow < whi; ow++) drow[ow] += srow[ow];
                        } else {
                            for (int ow = wlo; ow < whi; ow++) drow[(size_t)ow * s] += srow[ow];
                        }
                    }
                }
            }
        }
    }
}

void conv_forward(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, const float *x,
                  float *y, float *ws) {
    conv_check(d, n, cin, cout, h, w);
    const int ho = conv_out_size(h, d->k, d->stride, d->pad), wo = conv_out_size(w, d->k, d->stride, d->pad);
    const int K = cin * d->k * d->k, ldw = d->cin_max * d->k * d->k;
    const int ncol_all = n * ho * wo;
    if (conv_is_pointwise(d)) {
        blas_sgemm(false, false, cout, ncol_all, K, 1.f, W, ldw, x, ncol_all, 0.f, y, ncol_all);
        return;
    }
    SC_CHECK(ws != NULL, "conv_forward: workspace required for k=%d stride=%d", d->k, d->stride);
    const int nb_max = conv_chunk(d, n, cin, ho, wo);
    for (int n0 = 0; n0 < n; n0 += nb_max) {
        int nb = n - n0 < nb_max ? n - n0 : nb_max;
        conv_im2col(d, n, n0, nb, cin, h, w, ho, wo, x, ws);
        blas_sgemm(false, false, cout, nb * ho * wo, K, 1.f, W, ldw, ws, nb * ho * wo, 0.f,
                   y + (size_t)n0 * ho * wo, ncol_all);
    }
}

void conv_backward(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, const float *x,
                   const float *dy, float *dW, float *dx, float *ws) {
    conv_check(d, n, cin, cout, h, w);
    const int ho = conv_out_size(h, d->k, d->stride, d->pad), wo = conv_out_size(w, d->k, d->stride, d->pad);
    const int K = cin * d->k * d->k, ldw = d->cin_max * d->k * d->k;
    const int ncol_all = n * ho * wo;
    if (conv_is_pointwise(d)) {
        /* dW[cout][cin] += dY[cout][ncol] x[cin][ncol]^T;  dx[cin][ncol] = W^T dY */
        blas_sgemm(false, true, cout, K, ncol_all, 1.f, dy, ncol_all, x, ncol_all, 1.f, dW, ldw);
        if (dx) blas_sgemm(true, false, K, ncol_all, cout, 1.f, W, ldw, dy, ncol_all, 0.f, dx, ncol_all);
        return;
    }
    SC_CHECK(ws != NULL, "conv_backward: workspace required for k=%d stride=%d", d->k, d->stride);
    const int nb_max = conv_chunk(d, n, cin, ho, wo);
    for (int n0 = 0; n0 < n; n0 += nb_max) {
        int nb = n - n0 < nb_max ? n - n0 : nb_max;
        int nc = nb * ho * wo;
        const float *dyc = dy + (size_t)n0 * ho * wo;
        conv_im2col(d, n, n0, nb, cin, h, w, ho, wo, x, ws);
        blas_sgemm(false, true, cout, K, nc, 1.f, dyc, ncol_all, ws, nc, 1.f, dW, ldw);
        if (dx) {
            /* the col panel is no longer needed: reuse it for dcol = W^T dY */
            blas_sgemm(true, false, K, nc, cout, 1.f, W, ldw, dyc, ncol_all, 0.f, ws, nc);
            conv_col2im(d, n, n0, nb, cin, h, w, ho, wo, ws, dx);
        }
    }
}
