/* nn/conv: whole-batch GEMM convolution over CNHW activations (see nn/layout.h).
 *   forward:  Y[cout][N*Ho*Wo]  = W[:cout, :cin*k*k] (ld cin_max*k*k) x col[cin*k*k][N*Ho*Wo]
 *   backward: dW[:cout, :cin*k*k] += dY x col^T,   dx = col2im(W^T x dY)
 * A 1x1 stride-1 pad-0 convolution needs no im2col: x already is the col matrix. Otherwise col is built for a
 * chunk of whole images at a time, so the workspace stays bounded (conv_ws_budget floats, at least one image)
 * while every GEMM keeps thousands of columns. A chunk's output is a column block of Y (ld N*Ho*Wo). */
#include "nn/conv.h"
#include "nn/conv_fused.h"
#include "nn/conv_sub.h"
#include "nn/conv_thin.h"
#include "nn/conv_wino.h"
#include "blas/blas.h"
#include "core/error.h"
#include "core/timer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 16 MB of col panel: big enough that GEMM N stays large (>= 6k columns for the B1 stage-0 layers), small
 * enough that it is a minor share of the activation tape. */
#define CONV_WS_BUDGET_DEFAULT ((size_t)4 << 20)
static size_t conv_ws_budget = CONV_WS_BUDGET_DEFAULT;

void conv_set_workspace_budget(size_t floats) { conv_ws_budget = floats ? floats : CONV_WS_BUDGET_DEFAULT; }

static conv_algo conv_algo_cur = CONV_ALGO_AUTO;
static int conv_algo_env; /* SLIMCLR_CONV chose: the config does not override it */

void conv_set_algo(conv_algo a) { conv_algo_cur = a; }
void conv_set_algo_config(conv_algo a) {
    if (!conv_algo_env) conv_algo_cur = a;
}
conv_algo conv_get_algo(void) { return conv_algo_cur; }

int conv_algo_parse(const char *s, conv_algo *a) {
    static const char *names[] = {"auto", "direct", "winograd", "wino4"};
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, names[i])) { *a = (conv_algo)i; return 1; }
    return 0;
}

int conv_algo_init(char *msg, size_t len) {
    const char *v = getenv("SLIMCLR_CONV");
    if (!v || !*v) return 0;
    if (!conv_algo_parse(v, &conv_algo_cur)) {
        snprintf(msg, len, "SLIMCLR_CONV='%.40s': expected auto, direct, winograd or wino4", v);
        return -1;
    }
    conv_algo_env = 1;
    return 0;
}

/* auto's rule: the tile size (0: the direct path) measured fastest (docs/performance-isa.md, 2026-12-03).
 * Winograd's transforms cost per channel and tile, its saving per channel pair. Since F(4x4,3x3)'s weight side
 * (nn/conv_winow) and data transforms (nn/conv_wino4) were vectorized, F(4x4) beats both F(2x2) and the direct path
 * from 64 channels on every map of 4x4 and up that B1 and B1-small have (64/7 tied at 256 images), and from 48 on
 * 28x28; 48 channels on 7x7 and 32 on 4x4 tied or lost. F(2x2) stays for wide layers on maps under 4x4 (one
 * F(4x4) tile an image, mostly padding). The rule does not depend on the batch: it held from 32 to 256 images. */
static int conv_wino_rule(int cin, int cout, int h, int w) {
    const int c = cin < cout ? cin : cout;
    if (h >= 4 && w >= 4 && (c >= 64 || (c >= 48 && h * w >= 784))) return 4;
    return c >= 256 ? 2 : 0;
}

int conv_uses_winograd(const conv_desc *d, int cin, int cout, int h, int w) {
    if (conv_algo_cur == CONV_ALGO_DIRECT || !wino_shape_ok(d, h, w) || convt_applies(d, cin, cout, h, w)) return 0;
    if (conv_algo_cur == CONV_ALGO_WINO4) return 4;
    return conv_algo_cur == CONV_ALGO_WINOGRAD ? 2 : conv_wino_rule(cin, cout, h, w);
}

static int conv_is_pointwise(const conv_desc *d) { return d->k == 1 && d->stride == 1 && d->pad == 0; }

/* Stride-1 convolutions with k > 1 (the 3x3 ones of every ResNet stage) take dx as a forward convolution of
 * dY with the flipped, transposed weight: an im2col gather + one GEMM written straight into dx, instead of
 * a GEMM into a col panel and a k*k-pass col2im scatter. Needs pad <= k-1 (output size = input size). */
static int conv_dx_as_fwd(const conv_desc *d) { return d->stride == 1 && d->k > 1 && d->pad <= d->k - 1; }

/* Floats of col panel per image: im2col(x) is [cin*k*k][ho*wo]; the dY panel of conv_dx_as_fwd is
 * [cout*k*k][h*w], unless nn/conv_fused computes that product without a panel. */
static size_t conv_panel_per_img(const conv_desc *d, int cin, int cout, int h, int w, int ho, int wo) {
    size_t a = (size_t)cin * d->k * d->k * ho * wo, b = (size_t)cout * d->k * d->k * h * w;
    return conv_dx_as_fwd(d) && !convf_applies(d) && b > a ? b : a;
}

/* The transposed convolution that gives dx of a conv_dx_as_fwd layer: flipped weight, pad k-1-pad. */
static conv_desc conv_dx_desc(const conv_desc *d) { return (conv_desc){d->cout_max, d->cin_max, d->k, 1, d->k - 1 - d->pad}; }

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
static int conv_chunk_max(const conv_desc *d, int n, int cin, int cout, int h, int w, int ho, int wo) {
    size_t per_img = conv_panel_per_img(d, cin, cout, h, w, ho, wo);
    size_t nb = conv_ws_budget / per_img;
    if (nb < 1) nb = 1;
    if (nb > (size_t)n) nb = (size_t)n;
    return (int)nb;
}

/* The chunks actually used: as few as the budget allows, of equal size (64 images at most 56 per chunk run as
 * 32 + 32, not 56 + 8: a thin last chunk is a GEMM with few columns and a poor rate). */
static int conv_chunk(const conv_desc *d, int n, int cin, int cout, int h, int w, int ho, int wo) {
    int nb = conv_chunk_max(d, n, cin, cout, h, w, ho, wo), nchunks = (n + nb - 1) / nb;
    return (n + nchunks - 1) / nchunks;
}

/* The phase path (strided layers, nn/conv_fused): the phase planes of x (reused for those of dx), the per-phase
 * transposed weights of dx, the packed weights. */
static size_t conv_phase_floats(const conv_desc *d, int n, int cin, int cout, int h, int w) {
    int ho = conv_out_size(h, d->k, d->stride, d->pad), wo = conv_out_size(w, d->k, d->stride, d->pad);
    size_t kk = (size_t)d->k * d->k, planes = (size_t)d->stride * d->stride * cin * n * ho * wo;
    size_t f1 = convf_workspace_floats(cin * kk, cout), f2 = convf_workspace_floats(cout * kk, cin);
    return planes + (size_t)cin * cout * kk + (f1 > f2 ? f1 : f2);
}

size_t conv_workspace_floats(const conv_desc *d, int n, int cin, int cout, int h, int w) {
    if (conv_is_pointwise(d)) return 0;
    int ho = conv_out_size(h, d->k, d->stride, d->pad), wo = conv_out_size(w, d->k, d->stride, d->pad);
    size_t per_img = conv_panel_per_img(d, cin, cout, h, w, ho, wo);
    size_t wflip = conv_dx_as_fwd(d) ? (size_t)cin * cout * d->k * d->k : 0;
    size_t fused = 0; /* packed weights of the fused forward, or of the fused dx (after wflip) */
    if (convf_applies(d)) {
        size_t f1 = convf_workspace_floats(cin * d->k * d->k, cout), f2 = convf_workspace_floats(cout * d->k * d->k, cin);
        fused = f1 > f2 ? f1 : f2;
    }
    size_t panel = (size_t)conv_chunk_max(d, n, cin, cout, h, w, ho, wo) * per_img;
    size_t total = panel + wflip + fused;
    if (wino_shape_ok(d, h, w)) { /* either algorithm may run (conv_set_algo after planning) */
        size_t wn = wino_workspace_floats(n, cin, cout, h, w, conv_ws_budget);
        if (wn > total) total = wn;
    }
    if (d->k == 1 && d->pad == 0 && d->stride >= 2 && cin <= CONVS_CIN_MAX) { /* nn/conv_sub */
        size_t sub = convs_workspace_floats(cin, cout, ho * wo);
        if (sub > total) total = sub;
    }
    if (convf_phase_applies(d, h, w)) { /* its weight gradient may still take the im2col panel */
        size_t ph = conv_phase_floats(d, n, cin, cout, h, w);
        if (ph > total) total = ph;
    }
    return total;
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

/* dx[ci][n0+img] += scatter of col rows (ci, kh, kw); the planes of the chunk are zeroed first (add NULL), copied
 * from add (add != dx) or kept (add == dx). Parallel over
 * (ci, img) planes: each plane receives only its own k*k rows, so no two threads write the same float. */
static void conv_col2im(const conv_desc *d, int n, int n0, int nb, int cin, int h, int w, int ho, int wo,
                        const float *col, float *dx, const float *add) {
    const int k = d->k, s = d->stride, pad = d->pad, kk = k * k;
    const size_t hw = (size_t)h * w, howo = (size_t)ho * wo, ncol = (size_t)nb * howo;
    int nt = conv_threads((size_t)cin * kk * ncol);
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt) if (nt > 1)
    for (int ci = 0; ci < cin; ci++) {
        for (int img = 0; img < nb; img++) {
            float *dst = dx + ((size_t)ci * n + n0 + img) * hw;
            if (!add) memset(dst, 0, sizeof(float) * hw);
            else if (add != dx) memcpy(dst, add + ((size_t)ci * n + n0 + img) * hw, sizeof(float) * hw);
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

/* ---------- per-layer profile (benchmark only) ---------- */
#define CONV_PROF_MAX 256
static conv_prof_entry conv_prof_tab[CONV_PROF_MAX];
static int conv_prof_n, conv_prof_on;

void conv_prof_enable(int on) { conv_prof_on = on; }
void conv_prof_reset(void) { conv_prof_n = 0; }
int conv_prof_count(void) { return conv_prof_n; }
const conv_prof_entry *conv_prof_get(int i) { return i >= 0 && i < conv_prof_n ? &conv_prof_tab[i] : NULL; }

static void conv_prof_add(const conv_desc *d, int n, int cin, int cout, int h, int w, int bwd, double s,
                          double flop) {
    conv_prof_entry *e = NULL;
    for (int i = 0; i < conv_prof_n && !e; i++) {
        conv_prof_entry *c = &conv_prof_tab[i];
        if (c->cin_max == d->cin_max && c->cout_max == d->cout_max && c->k == d->k && c->stride == d->stride &&
            c->h == h && c->cin == cin && c->cout == cout && c->n == n)
            e = c;
    }
    if (!e) {
        if (conv_prof_n == CONV_PROF_MAX) return; /* table full: later shapes go unrecorded */
        e = &conv_prof_tab[conv_prof_n++];
        *e = (conv_prof_entry){d->cin_max, d->cout_max, d->k, d->stride, h, cin, cout, n,
                               conv_uses_winograd(d, cin, cout, h, w), 0, 0, 0, 0, 0, 0};
    }
    if (bwd) { e->bwd_s += s; e->bwd_flop += flop; e->bwd_calls++; }
    else { e->fwd_s += s; e->fwd_flop += flop; e->fwd_calls++; }
}

static double conv_macs(const conv_desc *d, int n, int cin, int cout, int h, int w) {
    int ho = conv_out_size(h, d->k, d->stride, d->pad), wo = conv_out_size(w, d->k, d->stride, d->pad);
    return (double)cout * cin * d->k * d->k * n * ho * wo;
}

int conv_pre_applies(const conv_desc *d, int cin, int cout, int h, int w) {
    return cin <= CONV_PRE_CMAX && convt_applies(d, cin, cout, h, w);
}

static void conv_forward_impl(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, const float *x,
                  const conv_pre *pre, float *y, float *ws) {
    conv_check(d, n, cin, cout, h, w);
    SC_CHECK(!pre || conv_pre_applies(d, cin, cout, h, w), "conv_forward: no input prologue for %d -> %d channels of "
             "%dx%d, k=%d stride=%d", cin, cout, h, w, d->k, d->stride);
    const int ho = conv_out_size(h, d->k, d->stride, d->pad), wo = conv_out_size(w, d->k, d->stride, d->pad);
    const int K = cin * d->k * d->k, ldw = d->cin_max * d->k * d->k;
    const int ncol_all = n * ho * wo;
    if (conv_is_pointwise(d)) {
        blas_sgemm(false, false, cout, ncol_all, K, 1.f, W, ldw, x, ncol_all, 0.f, y, ncol_all);
        return;
    }
    SC_CHECK(ws != NULL, "conv_forward: workspace required for k=%d stride=%d", d->k, d->stride);
    if (convs_applies(d, cin)) {
        convs_forward(d->stride, n, cin, cout, h, w, W, ldw, x, y, ws);
        return;
    }
    if (convt_applies(d, cin, cout, h, w)) {
        convt_forward(d, n, cin, cout, h, w, W, ldw, x, pre, y);
        return;
    }
    const int wm = conv_uses_winograd(d, cin, cout, h, w);
    if (wm) {
        wino_forward(wm, n, cin, cout, h, w, W, ldw, x, y, ws, conv_ws_budget);
        return;
    }
    if (convf_applies(d)) {
        convf_taps tp;
        convf_taps_same(d, &tp);
        convf_forward(&tp, n, cin, cout, h, w, W, ldw, x, y, ws);
        return;
    }
    if (convf_phase_applies(d, h, w)) {
        const size_t plane = (size_t)n * ho * wo;
        convf_taps tp;
        convf_taps_phase(d, cin, plane, &tp);
        convf_phase_split(d->stride, n, cin, h, w, ho, wo, x, ws);
        convf_forward(&tp, n, cin, cout, ho, wo, W, ldw, ws, y, ws + (size_t)d->stride * d->stride * cin * plane);
        return;
    }
    const int nb_max = conv_chunk(d, n, cin, cout, h, w, ho, wo);
    for (int n0 = 0; n0 < n; n0 += nb_max) {
        int nb = n - n0 < nb_max ? n - n0 : nb_max;
        conv_im2col(d, n, n0, nb, cin, h, w, ho, wo, x, ws);
        blas_sgemm(false, false, cout, nb * ho * wo, K, 1.f, W, ldw, ws, nb * ho * wo, 0.f,
                   y + (size_t)n0 * ho * wo, ncol_all);
    }
}

/* Strided layers on the phase path: dW += dY x B^T over the phase planes of x, then dx one phase at a time:
 * phase p of dx is the product of the transposed weights of p's taps with dY shifted back by each tap, a forward
 * convolution of dY on the output grid; the phases are merged into dx at the end. */
static void conv_backward_phase(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W,
                                const float *x, const float *dy, float *dW, float *dx, float *ws) {
    const int s = d->stride, kk = d->k * d->k, K = cin * kk, ldw = d->cin_max * kk;
    const int ho = conv_out_size(h, d->k, s, d->pad), wo = conv_out_size(w, d->k, s, d->pad);
    const size_t plane = (size_t)n * ho * wo, nxp = (size_t)s * s * cin * plane;
    float *xp = ws, *wt = ws + nxp, *pk = wt + (size_t)cin * cout * kk;
    convf_taps tp;
    convf_taps_phase(d, cin, plane, &tp);
    if (convf_dw_applies(K, cout)) {
        convf_phase_split(s, n, cin, h, w, ho, wo, x, xp);
        convf_dw(&tp, n, cin, cout, ho, wo, xp, dy, dW, ldw);
    } else { /* too few (ci, tap) panels for the threads: im2col + BLIS, in chunks of images */
        const int nb_max = conv_chunk(d, n, cin, cout, h, w, ho, wo);
        for (int n0 = 0; n0 < n; n0 += nb_max) {
            int nb = n - n0 < nb_max ? n - n0 : nb_max, nc = nb * ho * wo;
            conv_im2col(d, n, n0, nb, cin, h, w, ho, wo, x, ws);
            blas_sgemm(false, true, cout, K, nc, 1.f, dy + (size_t)n0 * ho * wo, (int)plane, ws, nc, 1.f, dW, ldw);
        }
    }
    if (!dx) return;
    for (int p = 0; p < s * s; p++) {
        convf_taps td = {0};
        int tap[CONVF_TMAX];
        for (int t = 0; t < kk; t++)
            if (tp.phase[t] == p) {
                tap[td.ntaps] = t;
                td.dh[td.ntaps] = -tp.dh[t];
                td.dw[td.ntaps] = -tp.dw[t];
                td.ntaps++;
            }
        float *dxp = xp + (size_t)p * cin * plane;
        if (!td.ntaps) { /* no tap reads this phase (1x1/2: the odd rows and columns) */
            memset(dxp, 0, sizeof(float) * cin * plane);
            continue;
        }
        const int np = td.ntaps, Kt = cout * np, nt = conv_threads((size_t)cin * Kt);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
        for (int ci = 0; ci < cin; ci++)
            for (int co = 0; co < cout; co++)
                for (int j = 0; j < np; j++) wt[(size_t)ci * Kt + co * np + j] = W[(size_t)co * ldw + ci * kk + tap[j]];
        convf_forward(&td, n, cout, cin, ho, wo, wt, Kt, dy, dxp, pk);
    }
    convf_phase_merge(s, n, cin, h, w, ho, wo, xp, dx);
}

int conv_dx_add_applies(const conv_desc *d, int cin, int cout, int h, int w) {
    if (conv_is_pointwise(d) || convt_applies(d, cin, cout, h, w)) return 1;
    return !convf_phase_applies(d, h, w) && !conv_dx_as_fwd(d); /* col2im */
}

static void conv_backward_impl(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, const float *x,
                   const conv_pre *pre, const float *dy, float *dW, float *dx, const float *add, float *ws) {
    conv_check(d, n, cin, cout, h, w);
    SC_CHECK(!add || (dx && conv_dx_add_applies(d, cin, cout, h, w)), "conv_backward: no dx + add for %d -> %d "
             "channels of %dx%d, k=%d stride=%d", cin, cout, h, w, d->k, d->stride);
    SC_CHECK(!pre || conv_pre_applies(d, cin, cout, h, w), "conv_backward: no input prologue for %d -> %d channels of "
             "%dx%d, k=%d stride=%d", cin, cout, h, w, d->k, d->stride);
    const int ho = conv_out_size(h, d->k, d->stride, d->pad), wo = conv_out_size(w, d->k, d->stride, d->pad);
    const int K = cin * d->k * d->k, ldw = d->cin_max * d->k * d->k;
    const int ncol_all = n * ho * wo;
    if (conv_is_pointwise(d)) {
        /* dW[cout][cin] += dY[cout][ncol] x[cin][ncol]^T;  dx[cin][ncol] = W^T dY */
        blas_sgemm(false, true, cout, K, ncol_all, 1.f, dy, ncol_all, x, ncol_all, 1.f, dW, ldw);
        if (dx && add && add != dx) memcpy(dx, add, sizeof(float) * (size_t)K * ncol_all);
        if (dx) blas_sgemm(true, false, K, ncol_all, cout, 1.f, W, ldw, dy, ncol_all, add ? 1.f : 0.f, dx, ncol_all);
        return;
    }
    SC_CHECK(ws != NULL, "conv_backward: workspace required for k=%d stride=%d", d->k, d->stride);
    if (convs_applies(d, cin)) {
        convs_backward(d->stride, n, cin, cout, h, w, W, ldw, x, dy, dW, dx, add, ws);
        return;
    }
    if (convt_applies(d, cin, cout, h, w)) { /* thin layers: lanes over positions, no workspace */
        convt_backward(d, n, cin, cout, h, w, W, ldw, x, pre, dy, dW, dx, add);
        return;
    }
    const int wm = conv_uses_winograd(d, cin, cout, h, w);
    if (wm) { /* add and pre are for other shapes (checked above) */
        wino_backward(wm, n, cin, cout, h, w, W, ldw, x, dy, dW, dx, ws, conv_ws_budget);
        return;
    }
    if (convf_phase_applies(d, h, w)) {
        conv_backward_phase(d, n, cin, cout, h, w, W, x, dy, dW, dx, ws);
        return;
    }
    const int nb_max = conv_chunk(d, n, cin, cout, h, w, ho, wo);
    const int flip = dx && conv_dx_as_fwd(d);
    const int k = d->k, kk = k * k, Kt = cout * kk;
    /* wf[ci][(co*k + a)*k + b] = W[co][ci][k-1-a][k-1-b], after the largest col panel */
    float *wf = ws + (size_t)nb_max * conv_panel_per_img(d, cin, cout, h, w, ho, wo);
    const conv_desc dt = conv_dx_desc(d);
    const int fused = flip && convf_applies(d);
    if (flip) {
        const int nt = conv_threads((size_t)cin * Kt);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
        for (int ci = 0; ci < cin; ci++)
            for (int co = 0; co < cout; co++) {
                const float *src = W + (size_t)co * ldw + (size_t)ci * kk;
                float *dst = wf + (size_t)ci * Kt + (size_t)co * kk;
                for (int j = 0; j < kk; j++) dst[j] = src[kk - 1 - j];
            }
    }
    convf_taps tp;
    convf_taps_same(d, &tp);
    /* the weight gradient without the im2col panel */
    const int fused_dw = convf_applies(d) && convf_dw_applies(K, cout);
    if (fused_dw) convf_dw(&tp, n, cin, cout, h, w, x, dy, dW, ldw);
    for (int n0 = 0; n0 < n && !(fused_dw && (fused || !dx)); n0 += nb_max) {
        int nb = n - n0 < nb_max ? n - n0 : nb_max;
        int nc = nb * ho * wo;
        const float *dyc = dy + (size_t)n0 * ho * wo;
        if (!fused_dw) {
            conv_im2col(d, n, n0, nb, cin, h, w, ho, wo, x, ws);
            blas_sgemm(false, true, cout, K, nc, 1.f, dyc, ncol_all, ws, nc, 1.f, dW, ldw);
        }
        if (fused) {
            /* dx of the whole batch below, after the weight-gradient chunks */
        } else if (flip) {
            /* dx chunk [cin][nb*h*w] = wf x im2col(dY chunk) */
            conv_im2col(&dt, n, n0, nb, cout, ho, wo, h, w, dy, ws);
            blas_sgemm(false, false, cin, nb * h * w, Kt, 1.f, wf, Kt, ws, nb * h * w, 0.f, dx + (size_t)n0 * h * w, n * h * w);
        } else if (dx) {
            /* the col panel is no longer needed: reuse it for dcol = W^T dY */
            blas_sgemm(true, false, K, nc, cout, 1.f, W, ldw, dyc, ncol_all, 0.f, ws, nc);
            conv_col2im(d, n, n0, nb, cin, h, w, ho, wo, ws, dx, add);
        }
    }
    if (fused) {
        convf_taps_same(&dt, &tp);
        convf_forward(&tp, n, cout, cin, ho, wo, wf, Kt, dy, dx, wf + (size_t)cin * Kt);
    }
}

void conv_forward_pre(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, const float *x,
                      const conv_pre *pre, float *y, float *ws) {
    if (!conv_prof_on) { conv_forward_impl(d, n, cin, cout, h, w, W, x, pre, y, ws); return; }
    double t0 = sc_now();
    conv_forward_impl(d, n, cin, cout, h, w, W, x, pre, y, ws);
    conv_prof_add(d, n, cin, cout, h, w, 0, sc_now() - t0, 2 * conv_macs(d, n, cin, cout, h, w));
}

void conv_backward_add(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, const float *x,
                       const conv_pre *pre, const float *dy, float *dW, float *dx, const float *add, float *ws) {
    if (!conv_prof_on) { conv_backward_impl(d, n, cin, cout, h, w, W, x, pre, dy, dW, dx, add, ws); return; }
    double t0 = sc_now();
    conv_backward_impl(d, n, cin, cout, h, w, W, x, pre, dy, dW, dx, add, ws);
    conv_prof_add(d, n, cin, cout, h, w, 1, sc_now() - t0, (dx ? 4 : 2) * conv_macs(d, n, cin, cout, h, w));
}

void conv_backward_pre(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, const float *x,
                       const conv_pre *pre, const float *dy, float *dW, float *dx, float *ws) {
    conv_backward_add(d, n, cin, cout, h, w, W, x, pre, dy, dW, dx, NULL, ws);
}

void conv_forward(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, const float *x,
                  float *y, float *ws) {
    conv_forward_pre(d, n, cin, cout, h, w, W, x, NULL, y, ws);
}

void conv_backward(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, const float *x,
                   const float *dy, float *dW, float *dx, float *ws) {
    conv_backward_pre(d, n, cin, cout, h, w, W, x, NULL, dy, dW, dx, ws);
}
