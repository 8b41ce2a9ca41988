/* tests/test_nn: the numerical layers against independent references.
 * References are double-precision loops written from the definitions (not from the implementation), and
 * central finite differences of those double forwards. Tolerances (why they are what they are):
 *  - GEMM-shaped results (conv, linear): |got - ref| <= 1e-5 * sum|terms| + 1e-6. An fp32 dot product of K terms
 *    errs by about sqrt(K) * 6e-8 * sum|terms| (random rounding); 1e-5 leaves >10x margin for K up to ~2000.
 *  - finite differences of a double forward with h = 1e-4: truncation O(h^2 f''') ~ 1e-8, rounding 1e-16/h ~ 1e-12,
 *    so they are exact to ~1e-7 relative; the fp32 gradient is then compared at 1e-4 relative to the gradient
 *    scale (fp32 statistics and products: ~1e-6 relative, with margin).
 *  - exactness tests use dyadic values (k/8, |k| <= 16) whose products and sums are exact in fp32 whatever the
 *    summation order, so "exactly the sum" is checked with ==. */
#include "nn/bn.h"
#include "nn/conv.h"
#include "nn/layout.h"
#include "nn/linear.h"
#include "nn/loss.h"
#include "nn/ops.h"
#include "core/error.h"
#include "core/rng.h"
#include "blas/blas.h"
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "test_util.h"
#include "isa_each.h"

static rng_stream g_rng;
static void fill_normal(float *x, size_t n, float s) { tu_fill_normal(&g_rng, x, n, s); }
static void fill_dyadic(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = (float)((int)rng_below(&g_rng, 33) - 16) / 8.f;
}
static float *falloc(size_t n) { return sc_calloc_n(float, n ? n : 1); }
static double *dalloc(size_t n) { return sc_calloc_n(double, n ? n : 1); }


/* ---------------------------------------------------------------- conv ---------------------------------------- */
typedef struct {
    const conv_desc *d;
    int n, cin, cout, h, w, ho, wo;
} conv_case;

/* y[co][n][oh][ow] = sum W[co][ci][kh][kw] x[ci][n][ih][iw], and sum |terms| for the tolerance */
static void conv_ref_forward(const conv_case *c, const double *W, const double *x, double *y, double *yabs) {
    const conv_desc *d = c->d;
    int k = d->k, ldw = d->cin_max * k * k;
    for (int co = 0; co < c->cout; co++)
        for (int n = 0; n < c->n; n++)
            for (int oh = 0; oh < c->ho; oh++)
                for (int ow = 0; ow < c->wo; ow++) {
                    double s = 0, a = 0;
                    for (int ci = 0; ci < c->cin; ci++)
                        for (int kh = 0; kh < k; kh++)
                            for (int kw = 0; kw < k; kw++) {
                                int ih = oh * d->stride - d->pad + kh, iw = ow * d->stride - d->pad + kw;
                                if (ih < 0 || ih >= c->h || iw < 0 || iw >= c->w) continue;
                                double t = W[(size_t)co * ldw + (ci * k + kh) * k + kw] *
                                           x[(((size_t)ci * c->n + n) * c->h + ih) * c->w + iw];
                                s += t; a += fabs(t);
                            }
                    size_t o = (((size_t)co * c->n + n) * c->ho + oh) * c->wo + ow;
                    y[o] = s;
                    if (yabs) yabs[o] = a;
                }
}

/* L = sum g.y; the adjoint loops of the definition: dW (full size, zero outside the slice) and dx */
static void conv_ref_backward(const conv_case *c, const double *W, const double *x, const double *g, double *dW,
                              double *dWabs, double *dx, double *dxabs) {
    const conv_desc *d = c->d;
    int k = d->k, ldw = d->cin_max * k * k;
    for (int co = 0; co < c->cout; co++)
        for (int n = 0; n < c->n; n++)
            for (int oh = 0; oh < c->ho; oh++)
                for (int ow = 0; ow < c->wo; ow++) {
                    double gy = g[(((size_t)co * c->n + n) * c->ho + oh) * c->wo + ow];
                    for (int ci = 0; ci < c->cin; ci++)
                        for (int kh = 0; kh < k; kh++)
                            for (int kw = 0; kw < k; kw++) {
                                int ih = oh * d->stride - d->pad + kh, iw = ow * d->stride - d->pad + kw;
                                if (ih < 0 || ih >= c->h || iw < 0 || iw >= c->w) continue;
                                size_t wi = (size_t)co * ldw + (ci * k + kh) * k + kw;
                                size_t xi = (((size_t)ci * c->n + n) * c->h + ih) * c->w + iw;
                                dW[wi] += gy * x[xi]; dWabs[wi] += fabs(gy * x[xi]);
                                dx[xi] += gy * W[wi]; dxabs[xi] += fabs(gy * W[wi]);
                            }
                }
}

static double conv_ref_loss(const conv_case *c, const double *W, const double *x, const double *g, double *ybuf) {
    conv_ref_forward(c, W, x, ybuf, NULL);
    double L = 0;
    for (size_t i = 0; i < (size_t)c->cout * c->n * c->ho * c->wo; i++) L += g[i] * ybuf[i];
    return L;
}

/* One (desc, slice, batch) case: forward and both gradients vs the double reference, finite differences of the
 * reference loss at sampled entries, zero gradient outside the slice, and dW accumulation (+=). */
static void conv_check_case(const conv_desc *d, int n, int cin, int cout, int h, int w) {
    conv_case c = {d, n, cin, cout, h, w, conv_out_size(h, d->k, d->stride, d->pad),
                   conv_out_size(w, d->k, d->stride, d->pad)};
    size_t nw = (size_t)d->cout_max * d->cin_max * d->k * d->k, nx = (size_t)cin * n * h * w,
           ny = (size_t)cout * n * c.ho * c.wo;
    float *W = falloc(nw), *x = falloc(nx), *y = falloc(ny), *g = falloc(ny), *dW = falloc(nw), *dx = falloc(nx);
    double *Wd = dalloc(nw), *xd = dalloc(nx), *gd = dalloc(ny), *yr = dalloc(ny), *ya = dalloc(ny),
           *dWr = dalloc(nw), *dWa = dalloc(nw), *dxr = dalloc(nx), *dxa = dalloc(nx);
    fill_normal(W, nw, 0.5f); fill_normal(x, nx, 1.f); fill_normal(g, ny, 1.f);
    for (size_t i = 0; i < nw; i++) { Wd[i] = W[i]; dW[i] = 0.25f; } /* dW starts non-zero: backward must add */
    for (size_t i = 0; i < nx; i++) xd[i] = x[i];
    for (size_t i = 0; i < ny; i++) gd[i] = g[i];
    for (size_t i = 0; i < nx; i++) dx[i] = 7.f; /* overwritten by backward, never read */
    size_t nws = conv_workspace_floats(d, n, cin, cout, h, w);
    float *ws = falloc(nws);

    conv_forward(d, n, cin, cout, h, w, W, x, y, ws);
    conv_ref_forward(&c, Wd, xd, yr, ya);
    tu_check_close("conv y", ny, y, yr, ya, 1e-5, 1e-6);

    conv_backward(d, n, cin, cout, h, w, W, x, g, dW, dx, ws);
    conv_ref_backward(&c, Wd, xd, gd, dWr, dWa, dxr, dxa);
    for (size_t i = 0; i < nw; i++) dWr[i] += 0.25;
    tu_check_close("conv dW", nw, dW, dWr, dWa, 1e-5, 1e-6);
    tu_check_close("conv dx", nx, dx, dxr, dxa, 1e-5, 1e-6);
    /* outside the slice the gradient is untouched (exactly the initial 0.25) */
    int kk = d->k * d->k;
    for (int co = 0; co < d->cout_max; co++)
        for (int j = 0; j < d->cin_max * kk; j++)
            if (co >= cout || j >= cin * kk) assert_true(dW[(size_t)co * d->cin_max * kk + j] == 0.25f);

    /* central differences of the double reference loss (linear, so exact up to rounding) at sampled entries */
    for (int t = 0; t < 6; t++) {
        int co = (int)rng_below(&g_rng, cout), j = (int)rng_below(&g_rng, cin * kk);
        size_t wi = (size_t)co * d->cin_max * kk + j;
        double save = Wd[wi], hh = 1e-3;
        Wd[wi] = save + hh; double lp = conv_ref_loss(&c, Wd, xd, gd, yr);
        Wd[wi] = save - hh; double lm = conv_ref_loss(&c, Wd, xd, gd, yr);
        Wd[wi] = save;
        double fd = (lp - lm) / (2 * hh);
        assert_true(fabs((dW[wi] - 0.25) - fd) <= 1e-4 * (dWa[wi] + 1.0));
        size_t xi = rng_below(&g_rng, nx);
        save = xd[xi];
        xd[xi] = save + hh; lp = conv_ref_loss(&c, Wd, xd, gd, yr);
        xd[xi] = save - hh; lm = conv_ref_loss(&c, Wd, xd, gd, yr);
        xd[xi] = save;
        fd = (lp - lm) / (2 * hh);
        assert_true(fabs(dx[xi] - fd) <= 1e-4 * (dxa[xi] + 1.0));
    }
    /* dx == NULL skips the input gradient but still accumulates dW */
    float *dW2 = falloc(nw);
    conv_backward(d, n, cin, cout, h, w, W, x, g, dW2, NULL, ws);
    for (size_t i = 0; i < nw; i++) dWr[i] -= 0.25;
    tu_check_close("conv dW (dx NULL)", nw, dW2, dWr, dWa, 1e-5, 1e-6);
    sc_free(dW2);
    sc_free(W); sc_free(x); sc_free(y); sc_free(g); sc_free(dW); sc_free(dx); sc_free(ws);
    sc_free(Wd); sc_free(xd); sc_free(gd); sc_free(yr); sc_free(ya); sc_free(dWr); sc_free(dWa); sc_free(dxr);
    sc_free(dxa);
}

/* widths 1, .75, .5, .25 of a cout_max=8, cin_max=8 weight, for each (k, stride, pad) */
static void test_conv_shapes_and_widths(void **state) {
    (void)state;
    const int combos[][3] = {{7, 2, 3}, {1, 2, 0}, {3, 1, 1}, {3, 2, 1}, {1, 1, 0}, {5, 1, 2}, {3, 1, 0}};
    const float widths[] = {1.f, .75f, .5f, .25f};
    for (size_t t = 0; t < sizeof combos / sizeof combos[0]; t++) {
        conv_desc d = {.cin_max = 8, .cout_max = 8, .k = combos[t][0], .stride = combos[t][1], .pad = combos[t][2]};
        for (int wi = 0; wi < 4; wi++) {
            int cin = nn_width_channels(8, widths[wi]), cout = nn_width_channels(8, widths[wi]);
            conv_check_case(&d, 3, cin, cout, 11, 9); /* odd, non-square images exercise every border */
        }
    }
    /* the stem: input channels not sliced (1), outputs sliced */
    conv_desc stem = {.cin_max = 1, .cout_max = 8, .k = 3, .stride = 1, .pad = 1};
    conv_check_case(&stem, 2, 1, 4, 8, 8);
}

/* Several chunks (5 images, 2 per chunk: 2+2+1), and a workspace planned for the widest slice fits a narrower one.
 * 3x3/2 pad 0 stays on the im2col path (pad 1 takes nn/conv_fused's phase path, which has no chunks). */
static void test_conv_chunking(void **state) {
    (void)state;
    conv_desc d = {.cin_max = 6, .cout_max = 5, .k = 3, .stride = 2, .pad = 0};
    int ho = conv_out_size(10, 3, 2, 0), wo = conv_out_size(12, 3, 2, 0);
    size_t per_img = (size_t)6 * 9 * ho * wo;
    conv_set_workspace_budget(2 * per_img + 7);
    assert_int_equal(conv_workspace_floats(&d, 5, 6, 5, 10, 12), 2 * per_img);
    assert_true(conv_workspace_floats(&d, 5, 3, 5, 10, 12) <= conv_workspace_floats(&d, 5, 6, 5, 10, 12));
    conv_check_case(&d, 5, 6, 5, 10, 12);
    conv_check_case(&d, 5, 3, 2, 10, 12);
    conv_set_workspace_budget(1); /* less than an image: one image per chunk */
    assert_int_equal(conv_workspace_floats(&d, 5, 6, 5, 10, 12), per_img);
    conv_check_case(&d, 5, 6, 5, 10, 12);
    conv_desc d7 = {.cin_max = 3, .cout_max = 4, .k = 7, .stride = 2, .pad = 3};
    conv_check_case(&d7, 4, 3, 4, 13, 13);
    conv_set_workspace_budget(0);
    assert_int_equal(conv_workspace_floats(&(conv_desc){4, 4, 1, 1, 0}, 8, 4, 4, 5, 5), 0);
}

/* Two widths one after another accumulate exactly the sum of the separate passes (dyadic data: exact sums). */
static void test_conv_width_accumulation(void **state) {
    (void)state;
    conv_desc d = {.cin_max = 8, .cout_max = 8, .k = 3, .stride = 1, .pad = 1};
    int n = 4, h = 6, w = 6;
    size_t nw = 8 * 8 * 9, nx = (size_t)8 * n * h * w, ny = nx;
    float *W = falloc(nw), *x = falloc(nx), *g = falloc(ny), *acc = falloc(nw), *a = falloc(nw), *b = falloc(nw),
          *dx = falloc(nx), *ws = falloc(conv_workspace_floats(&d, n, 8, 8, h, w));
    fill_dyadic(W, nw); fill_dyadic(x, nx); fill_dyadic(g, ny);
    /* width 1.0 then 0.5 on x's first 4 channels (the CNHW prefix) */
    conv_backward(&d, n, 8, 8, h, w, W, x, g, acc, dx, ws);
    conv_backward(&d, n, 4, 4, h, w, W, x, g, acc, dx, ws);
    conv_backward(&d, n, 8, 8, h, w, W, x, g, a, dx, ws);
    conv_backward(&d, n, 4, 4, h, w, W, x, g, b, dx, ws);
    for (size_t i = 0; i < nw; i++) assert_true(acc[i] == a[i] + b[i]);
    sc_free(W); sc_free(x); sc_free(g); sc_free(acc); sc_free(a); sc_free(b); sc_free(dx); sc_free(ws);
}

/* ---------------------------------------------------------------- finite differences --------------------------- */
typedef double (*fd_fn)(void *ctx);
/* central difference of f with respect to p[i] (a double parameter the function reads through ctx) */
static double fd_at(fd_fn f, void *ctx, double *p, double h) {
    double save = *p;
    *p = save + h; double lp = f(ctx);
    *p = save - h; double lm = f(ctx);
    *p = save;
    return (lp - lm) / (2 * h);
}

/* ---------------------------------------------------------------- batch norm ----------------------------------- */
typedef struct {
    int c, m;
    bool affine;
    double *x, *gamma, *beta, *G; /* G: the upstream gradient, L = sum G.y */
} bn_ref;

static void bn_ref_forward(const bn_ref *r, double *y, double *mean, double *var) {
    for (int ch = 0; ch < r->c; ch++) {
        const double *x = r->x + (size_t)ch * r->m;
        double mu = 0, v = 0;
        for (int i = 0; i < r->m; i++) mu += x[i];
        mu /= r->m;
        for (int i = 0; i < r->m; i++) v += (x[i] - mu) * (x[i] - mu);
        v /= r->m; /* biased */
        if (mean) { mean[ch] = mu; var[ch] = v; }
        double g = r->affine ? r->gamma[ch] : 1, b = r->affine ? r->beta[ch] : 0;
        for (int i = 0; i < r->m; i++) y[(size_t)ch * r->m + i] = g * (x[i] - mu) / sqrt(v + 1e-5) + b;
    }
}
static double bn_ref_loss(void *ctx) {
    bn_ref *r = ctx;
    size_t len = (size_t)r->c * r->m;
    double *y = dalloc(len), L = 0;
    bn_ref_forward(r, y, NULL, NULL);
    for (size_t i = 0; i < len; i++) L += r->G[i] * y[i];
    sc_free(y);
    return L;
}

static void bn_check(int c, int m, bool affine) {
    bn_desc d = {.c = c, .affine = affine, .momentum = 0.1f, .eps = 1e-5f};
    size_t len = (size_t)c * m;
    float *x = falloc(len), *y = falloc(len), *G = falloc(len), *dx = falloc(len), *gamma = falloc(c),
          *beta = falloc(c), *rm = falloc(c), *rv = falloc(c), *sm = falloc(c), *si = falloc(c), *dg = falloc(c),
          *db = falloc(c);
    fill_normal(x, len, 2.f);
    for (int ch = 0; ch < c; ch++) { /* channels with offsets: the mean must be removed accurately */
        for (int i = 0; i < m; i++) x[(size_t)ch * m + i] += 3.f * (float)(ch - 1);
        gamma[ch] = 0.5f + 0.25f * ch; beta[ch] = 0.1f * ch - 0.2f;
        rm[ch] = 0.3f; rv[ch] = 1.5f; dg[ch] = 1.f; db[ch] = -1.f;
    }
    fill_normal(G, len, 1.f);
    for (size_t i = 0; i < len; i++) dx[i] = 7.f;
    bn_ref r = {c, m, affine, dalloc(len), dalloc(c), dalloc(c), dalloc(len)};
    for (size_t i = 0; i < len; i++) { r.x[i] = x[i]; r.G[i] = G[i]; }
    for (int ch = 0; ch < c; ch++) { r.gamma[ch] = gamma[ch]; r.beta[ch] = beta[ch]; }
    double *yr = dalloc(len), *mean = dalloc(c), *var = dalloc(c), *ref = dalloc(len > 2 * (size_t)c ? len : 2 * (size_t)c);

    bn_forward_train(&d, m, x, y, affine ? gamma : NULL, affine ? beta : NULL, rm, rv, sm, si, NULL);
    bn_ref_forward(&r, yr, mean, var);
    tu_check_close("bn y", len, y, yr, NULL, 1e-5, 1e-5);
    /* the fused ReLU (d.relu) is bit for bit a separate relu_forward of the BN output, train and eval */
    bn_desc dr = d;
    dr.relu = true;
    float *y2 = falloc(len), *yrelu = falloc(len), *sm2 = falloc(c), *si2 = falloc(c);
    relu_forward(len, y, yrelu);
    bn_forward_train(&dr, m, x, y2, affine ? gamma : NULL, affine ? beta : NULL, NULL, NULL, sm2, si2, NULL);
    assert_memory_equal(y2, yrelu, sizeof(float) * len);
    assert_memory_equal(sm2, sm, sizeof(float) * c);
    /* the fused residual sum (d.res): bit for bit the BN output plus res, then the ReLU, as a block's
     * separate add + ReLU pass computed it; with and without the ReLU */
    {
        float *res = falloc(len), *y3 = falloc(len), *want = falloc(len);
        fill_normal(res, len, 1.f);
        for (int relu = 0; relu < 2; relu++) {
            bn_desc dres = d;
            dres.relu = relu;
            dres.res = res;
            for (size_t i = 0; i < len; i++) {
                float v = y[i] + res[i];
                want[i] = relu && !(v > 0.f) ? 0.f : v;
            }
            bn_forward_train(&dres, m, x, y3, affine ? gamma : NULL, affine ? beta : NULL, NULL, NULL, sm2, si2, NULL);
            assert_memory_equal(y3, want, sizeof(float) * len);
        }
        sc_free(res); sc_free(y3); sc_free(want);
    }
    size_t npos = 0;
    for (size_t i = 0; i < len; i++) npos += y[i] > 0.f;
    assert_true(npos > 0 && npos < len); /* both sides of the ReLU are exercised */
    for (int ch = 0; ch < c; ch++) {
        ref[ch] = 0.9 * 0.3 + 0.1 * mean[ch];
        ref[c + ch] = 0.9 * 1.5 + 0.1 * var[ch] * m / (m - 1.0); /* unbiased into the running variance */
    }
    tu_check_close("bn running mean", c, rm, ref, NULL, 1e-6, 1e-6);
    tu_check_close("bn running var", c, rv, ref + c, NULL, 1e-6, 1e-6);
    for (int ch = 0; ch < c; ch++) { ref[ch] = mean[ch]; ref[c + ch] = 1 / sqrt(var[ch] + 1e-5); }
    tu_check_close("bn save_mean", c, sm, ref, NULL, 1e-6, 1e-6);
    tu_check_close("bn save_invstd", c, si, ref + c, NULL, 1e-6, 0);

    /* backward vs finite differences of the double forward (h = 1e-4, see the header) */
    bn_backward(&d, m, x, G, affine ? gamma : NULL, NULL, sm, si, dx, affine ? dg : NULL, affine ? db : NULL, NULL);
    /* dx is a difference of terms of size |gamma|*invstd*|dy|: fp32 leaves ~1e-7 of that scale, which dominates
     * when the terms cancel (m = 2: the gradient only exists through eps) */
    double gscale = 0, tscale = 0, gmax = 0;
    for (size_t i = 0; i < len; i++) { ref[i] = fd_at(bn_ref_loss, &r, &r.x[i], 1e-4); gscale = fmax(gscale, fabs(ref[i])); }
    for (size_t i = 0; i < len; i++) gmax = fmax(gmax, fabs(G[i]));
    for (int ch = 0; ch < c; ch++) tscale = fmax(tscale, (affine ? fabs(gamma[ch]) : 1.0) * si[ch] * gmax);
    tu_check_close("bn dx", len, dx, ref, NULL, 0, 1e-4 * gscale + 1e-5 * tscale + 1e-6);
    if (affine) {
        double *fg = dalloc(c), *fb = dalloc(c);
        for (int ch = 0; ch < c; ch++) {
            fg[ch] = 1.0 + fd_at(bn_ref_loss, &r, &r.gamma[ch], 1e-4); /* dgamma started at 1: += */
            fb[ch] = -1.0 + fd_at(bn_ref_loss, &r, &r.beta[ch], 1e-4);
        }
        tu_check_close("bn dgamma", c, dg, fg, NULL, 1e-4, 1e-4);
        tu_check_close("bn dbeta", c, db, fb, NULL, 1e-4, 1e-4);
        sc_free(fg); sc_free(fb);
    }
    /* backward with the ReLU fused (d.relu): bit for bit relu_backward on the recomputed activation, then the
     * plain backward (what the model did before the fusion) */
    {
        float *a = falloc(len), *gm = falloc(len), *dx1 = falloc(len), *dx2 = falloc(len), *dg1 = falloc(c),
              *db1 = falloc(c), *dg2 = falloc(c), *db2 = falloc(c);
        for (int ch = 0; ch < c; ch++) {
            float sc = affine ? gamma[ch] * si[ch] : si[ch], h = affine ? beta[ch] : 0.f;
            for (int i = 0; i < m; i++) {
                float v = bn_saved_affine(x[(size_t)ch * m + i], sc, sm[ch], h);
                a[(size_t)ch * m + i] = v > 0.f ? v : 0.f;
            }
        }
        relu_backward(len, a, G, gm);
        size_t kept = 0;
        for (size_t i = 0; i < len; i++) kept += a[i] > 0.f;
        assert_true(kept > 0 && kept < len);
        bn_backward(&d, m, x, gm, affine ? gamma : NULL, NULL, sm, si, dx1, affine ? dg1 : NULL, affine ? db1 : NULL,
                    NULL);
        bn_backward(&dr, m, x, G, affine ? gamma : NULL, affine ? beta : NULL, sm, si, dx2, affine ? dg2 : NULL,
                    affine ? db2 : NULL, NULL);
        assert_memory_equal(dx1, dx2, sizeof(float) * len);
        assert_memory_equal(dg1, dg2, sizeof(float) * c);
        assert_memory_equal(db1, db2, sizeof(float) * c);
        sc_free(a); sc_free(gm); sc_free(dx1); sc_free(dx2); sc_free(dg1); sc_free(db1); sc_free(dg2); sc_free(db2);
    }
    /* eval mode: running statistics */
    bn_forward_eval(&d, m, x, y, affine ? gamma : NULL, affine ? beta : NULL, rm, rv);
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < m; i++) {
            size_t k = (size_t)ch * m + i;
            yr[k] = (affine ? gamma[ch] : 1.0) * ((double)x[k] - rm[ch]) / sqrt((double)rv[ch] + 1e-5) +
                    (affine ? beta[ch] : 0.0);
        }
    tu_check_close("bn eval y", len, y, yr, NULL, 1e-5, 1e-5);
    relu_forward(len, y, yrelu);
    bn_forward_eval(&dr, m, x, y2, affine ? gamma : NULL, affine ? beta : NULL, rm, rv);
    assert_memory_equal(y2, yrelu, sizeof(float) * len);
    sc_free(y2); sc_free(yrelu); sc_free(sm2); sc_free(si2);
    /* without running statistics (the key encoder's BN in some modes): the same output and saved statistics as
     * with them, bit for bit; only the update is skipped */
    {
        float *ya = falloc(len), *rm2 = falloc(c), *rv2 = falloc(c), *sma = falloc(c), *sia = falloc(c);
        memcpy(rm2, rm, sizeof(float) * c);
        memcpy(rv2, rv, sizeof(float) * c);
        bn_forward_train(&d, m, x, ya, affine ? gamma : NULL, affine ? beta : NULL, rm2, rv2, sma, sia, NULL);
        memset(y, 0xff, sizeof(float) * len);
        memset(sm, 0xff, sizeof(float) * c);
        memset(si, 0xff, sizeof(float) * c);
        bn_forward_train(&d, m, x, y, affine ? gamma : NULL, affine ? beta : NULL, NULL, NULL, sm, si, NULL);
        assert_memory_equal(y, ya, sizeof(float) * len);
        assert_memory_equal(sm, sma, sizeof(float) * c);
        assert_memory_equal(si, sia, sizeof(float) * c);
        sc_free(ya); sc_free(rm2); sc_free(rv2); sc_free(sma); sc_free(sia);
    }

    sc_free(x); sc_free(y); sc_free(G); sc_free(dx); sc_free(gamma); sc_free(beta); sc_free(rm); sc_free(rv);
    sc_free(sm); sc_free(si); sc_free(dg); sc_free(db); sc_free(r.x); sc_free(r.gamma); sc_free(r.beta);
    sc_free(r.G); sc_free(yr); sc_free(mean); sc_free(var); sc_free(ref);
}

static void test_bn_train_eval(void **state) {
    (void)state;
    bn_check(4, 30, true);
    bn_check(3, 17, false); /* affine off (MoCo v3's last projector BN) */
    bn_check(1, 2, true);
    bn_check(6, 8 * 9, true);
}

/* SyncBN: two "ranks" as two threads whose reducer is a real allreduce through a barrier; each holds part of
 * the batch (uneven: 3 and 5 images). Both must reproduce BN over the whole batch. */
typedef struct {
    pthread_barrier_t bar;
    double *slot[2];
} fake_world;
typedef struct {
    fake_world *wd;
    int rank, n0, nr, c, hw, calls;
    const float *x, *G, *gamma, *beta;
    float *y, *dx, *rm, *rv, *sm, *si, *dg, *db;
} fake_rank;

static void fake_sum(double *buf, int n, void *ctx) {
    fake_rank *r = ctx;
    double *tmp = dalloc(n);
    r->wd->slot[r->rank] = buf;
    pthread_barrier_wait(&r->wd->bar);
    for (int i = 0; i < n; i++) tmp[i] = r->wd->slot[0][i] + r->wd->slot[1][i];
    pthread_barrier_wait(&r->wd->bar); /* both have read both buffers before either is overwritten */
    memcpy(buf, tmp, sizeof(double) * n);
    sc_free(tmp);
    r->calls++;
}

static void *fake_rank_run(void *arg) {
    fake_rank *r = arg;
    int m = r->nr * r->hw, mfull_n = 8;
    float *x = falloc((size_t)r->c * m), *G = falloc((size_t)r->c * m);
    for (int ch = 0; ch < r->c; ch++) { /* this rank's images of channel ch (CNHW) */
        memcpy(x + (size_t)ch * m, r->x + ((size_t)ch * mfull_n + r->n0) * r->hw, sizeof(float) * m);
        memcpy(G + (size_t)ch * m, r->G + ((size_t)ch * mfull_n + r->n0) * r->hw, sizeof(float) * m);
    }
    bn_desc d = {.c = r->c, .affine = true, .momentum = 0.1f, .eps = 1e-5f};
    nn_reducer red = {fake_sum, r, NULL, false};
    bn_forward_train(&d, m, x, r->y, r->gamma, r->beta, r->rm, r->rv, r->sm, r->si, &red);
    bn_backward(&d, m, x, G, r->gamma, NULL, r->sm, r->si, r->dx, r->dg, r->db, &red);
    sc_free(x); sc_free(G);
    return NULL;
}

static void test_bn_sync_reducer(void **state) {
    (void)state;
    const int c = 3, n = 8, hw = 5, m = n * hw;
    bn_desc d = {.c = c, .affine = true, .momentum = 0.1f, .eps = 1e-5f};
    float *x = falloc((size_t)c * m), *G = falloc((size_t)c * m), *y = falloc((size_t)c * m),
          *dx = falloc((size_t)c * m), gamma[3] = {1.2f, 0.7f, -0.4f}, beta[3] = {0.1f, 0.f, -0.3f},
          rm[3] = {0}, rv[3] = {1, 1, 1}, sm[3], si[3], dg[3] = {0}, db[3] = {0};
    fill_normal(x, (size_t)c * m, 1.5f); fill_normal(G, (size_t)c * m, 1.f);
    bn_forward_train(&d, m, x, y, gamma, beta, rm, rv, sm, si, NULL);
    bn_backward(&d, m, x, G, gamma, NULL, sm, si, dx, dg, db, NULL);

    fake_world wd;
    pthread_barrier_init(&wd.bar, NULL, 2);
    fake_rank rk[2];
    const int n0[2] = {0, 3}, nr[2] = {3, 5};
    for (int r = 0; r < 2; r++) {
        int mr = nr[r] * hw;
        rk[r] = (fake_rank){.wd = &wd, .rank = r, .n0 = n0[r], .nr = nr[r], .c = c, .hw = hw, .x = x, .G = G,
                            .gamma = gamma, .beta = beta, .y = falloc((size_t)c * mr), .dx = falloc((size_t)c * mr),
                            .rm = falloc(c), .rv = falloc(c), .sm = falloc(c), .si = falloc(c), .dg = falloc(c),
                            .db = falloc(c)};
        for (int ch = 0; ch < c; ch++) rk[r].rv[ch] = 1.f;
    }
    pthread_t th[2];
    for (int r = 0; r < 2; r++) pthread_create(&th[r], NULL, fake_rank_run, &rk[r]);
    for (int r = 0; r < 2; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&wd.bar);

    for (int r = 0; r < 2; r++) {
        assert_int_equal(rk[r].calls, 2); /* one reduction in forward, one in backward */
        int mr = nr[r] * hw;
        for (int ch = 0; ch < c; ch++) {
            assert_float_equal(rk[r].sm[ch], sm[ch], 1e-6);
            assert_float_equal(rk[r].si[ch], si[ch], 1e-5 * si[ch]);
            assert_float_equal(rk[r].rm[ch], rm[ch], 1e-6);
            assert_float_equal(rk[r].rv[ch], rv[ch], 1e-6);
            for (int i = 0; i < mr; i++) {
                size_t full = ((size_t)ch * n + n0[r]) * hw + i, loc = (size_t)ch * mr + i;
                assert_float_equal(rk[r].y[loc], y[full], 1e-5);
                assert_float_equal(rk[r].dx[loc], dx[full], 1e-5);
            }
        }
    }
    /* parameter gradients stay local: the ranks' shares add up to the whole batch's */
    for (int ch = 0; ch < c; ch++) {
        assert_float_equal(rk[0].dg[ch] + rk[1].dg[ch], dg[ch], 1e-5);
        assert_float_equal(rk[0].db[ch] + rk[1].db[ch], db[ch], 1e-5);
    }
    for (int r = 0; r < 2; r++) {
        sc_free(rk[r].y); sc_free(rk[r].dx); sc_free(rk[r].rm); sc_free(rk[r].rv); sc_free(rk[r].sm);
        sc_free(rk[r].si); sc_free(rk[r].dg); sc_free(rk[r].db);
    }
    sc_free(x); sc_free(G); sc_free(y); sc_free(dx);
}

/* A reducer known to be local (one rank) lets BN finish each channel's passes back to back, and backward may
 * write dx over dy: both must give bitwise what the two passes over all channels give, and the reducer must
 * still be called once per pass. Large enough for two threads (bn_threads). */
static void count_sum(double *buf, int n, void *ctx) {
    (void)buf, (void)n;
    ++*(int *)ctx;
}

static void test_bn_local_bitwise(void **state) {
    (void)state;
    const int c = 5, m = 9001;
    const size_t len = (size_t)c * m;
    float *x = falloc(len), *G = falloc(len), *res = falloc(len), *y[3], *dx[3], *gamma = falloc(c),
          *beta = falloc(c), *st[3][6];
    fill_normal(x, len, 1.5f); fill_normal(G, len, 1.f); fill_normal(res, len, 1.f);
    fill_normal(gamma, c, 1.f); fill_normal(beta, c, 0.5f);
    int calls[3] = {0, 0, 0};
    const nn_reducer red[3] = {{count_sum, &calls[0], NULL, false}, {count_sum, &calls[1], NULL, true},
                               {NULL, NULL, NULL, false}};
    for (int v = 0; v < 2 * 2 * 2; v++) { /* relu, res, affine */
        bn_desc d = {.c = c, .affine = v & 4, .momentum = 0.1f, .eps = 1e-5f, .relu = v & 1, .res = v & 2 ? res : NULL};
        for (int k = 0; k < 3; k++) {
            y[k] = falloc(len);
            dx[k] = falloc(len);
            for (int j = 0; j < 6; j++) st[k][j] = falloc(c); /* rm rv sm si dg db */
            for (int ch = 0; ch < c; ch++) st[k][1][ch] = 1.f;
            bn_forward_train(&d, m, x, y[k], gamma, beta, st[k][0], st[k][1], st[k][2], st[k][3], &red[k]);
            float *dy = k == 2 ? dx[k] : G; /* the last in place */
            if (k == 2) memcpy(dx[k], G, sizeof(float) * len);
            bn_backward(&d, m, x, dy, gamma, beta, st[k][2], st[k][3], dx[k], st[k][4], st[k][5], &red[k]);
        }
        for (int k = 1; k < 3; k++) {
            assert_memory_equal(y[k], y[0], sizeof(float) * len);
            assert_memory_equal(dx[k], dx[0], sizeof(float) * len);
            for (int j = 0; j < 6; j++) assert_memory_equal(st[k][j], st[0][j], sizeof(float) * c);
        }
        for (int k = 0; k < 3; k++) {
            sc_free(y[k]); sc_free(dx[k]);
            for (int j = 0; j < 6; j++) sc_free(st[k][j]);
        }
    }
    assert_int_equal(calls[0], 16);
    assert_int_equal(calls[1], 16);
    /* bn_backward_relu_out: bitwise relu_backward then bn_backward, g masked in place, both kinds of reducer */
    bn_desc d = {.c = c, .affine = true, .momentum = 0.1f, .eps = 1e-5f};
    float *sm = falloc(c), *si = falloc(c), *g0 = falloc(len), *g1 = falloc(len), *d0 = falloc(len),
          *d1 = falloc(len), *p0 = falloc(2 * c), *p1 = falloc(2 * c);
    bn_forward_train(&d, m, x, NULL, gamma, beta, NULL, NULL, sm, si, NULL);
    for (int k = 0; k < 2; k++) {
        memcpy(g0, G, sizeof(float) * len);
        memcpy(g1, G, sizeof(float) * len);
        memset(p0, 0, sizeof(float) * 2 * c);
        memset(p1, 0, sizeof(float) * 2 * c);
        relu_backward(len, res, g0, g0);
        bn_backward(&d, m, x, g0, gamma, beta, sm, si, d0, p0, p0 + c, &red[k]);
        bn_backward_relu_out(&d, m, x, res, g1, gamma, beta, sm, si, d1, p1, p1 + c, &red[k]);
        assert_memory_equal(g1, g0, sizeof(float) * len);
        assert_memory_equal(d1, d0, sizeof(float) * len);
        assert_memory_equal(p1, p0, sizeof(float) * 2 * c);
    }
    sc_free(sm); sc_free(si); sc_free(g0); sc_free(g1); sc_free(d0); sc_free(d1); sc_free(p0); sc_free(p1);
    sc_free(x); sc_free(G); sc_free(res); sc_free(gamma); sc_free(beta);
}

/* ---------------------------------------------------------------- linear --------------------------------------- */
static void test_linear(void **state) {
    (void)state;
    linear_desc d = {.in_max = 12, .out_max = 10, .bias = true};
    const int n = 7;
    const float widths[] = {1.f, .75f, .5f, .25f};
    float *W = falloc(120), *b = falloc(10), *x = falloc(12 * n), *y = falloc(10 * n), *g = falloc(10 * n),
          *dW = falloc(120), *db = falloc(10), *dx = falloc(12 * n);
    fill_normal(W, 120, 0.5f); fill_normal(b, 10, 1.f); fill_normal(x, 12 * n, 1.f); fill_normal(g, 10 * n, 1.f);
    double yr[70], ya[70], dWr[120], dWa[120], dbr[10], dxr[84], dxa[84];
    for (int wi = 0; wi < 4; wi++) {
        int in = nn_width_channels(12, widths[wi]), out = nn_width_channels(10, widths[wi]);
        for (int i = 0; i < 120; i++) dW[i] = 0.5f; /* backward adds */
        for (int i = 0; i < 10; i++) db[i] = 0.5f;
        for (int i = 0; i < 12 * n; i++) dx[i] = 7.f; /* overwritten */
        linear_forward(&d, n, in, out, W, b, x, y);
        linear_backward(&d, n, in, out, W, x, g, dW, db, dx);
        memset(dWr, 0, sizeof dWr); memset(dWa, 0, sizeof dWa); memset(dbr, 0, sizeof dbr);
        memset(dxr, 0, sizeof dxr); memset(dxa, 0, sizeof dxa);
        for (int o = 0; o < out; o++)
            for (int j = 0; j < n; j++) {
                double s = b[o], a = fabs(b[o]);
                for (int i = 0; i < in; i++) {
                    s += (double)W[o * 12 + i] * x[i * n + j]; a += fabs((double)W[o * 12 + i] * x[i * n + j]);
                    dWr[o * 12 + i] += (double)g[o * n + j] * x[i * n + j];
                    dWa[o * 12 + i] += fabs((double)g[o * n + j] * x[i * n + j]);
                    dxr[i * n + j] += (double)g[o * n + j] * W[o * 12 + i];
                    dxa[i * n + j] += fabs((double)g[o * n + j] * W[o * 12 + i]);
                }
                yr[o * n + j] = s; ya[o * n + j] = a;
                dbr[o] += g[o * n + j];
            }
        tu_check_close("linear y", (size_t)out * n, y, yr, ya, 1e-5, 1e-6);
        for (int i = 0; i < 120; i++) dWr[i] += 0.5;
        for (int i = 0; i < 10; i++) dbr[i] += 0.5;
        tu_check_close("linear dW", 120, dW, dWr, dWa, 1e-5, 0); /* untouched (exactly 0.5) outside the slice */
        tu_check_close("linear db", 10, db, dbr, NULL, 1e-5, 1e-6);
        tu_check_close("linear dx", (size_t)in * n, dx, dxr, dxa, 1e-5, 1e-6);
    }
    /* no bias: y is W x only */
    linear_desc nb = {.in_max = 12, .out_max = 10, .bias = false};
    linear_forward(&nb, n, 12, 10, W, NULL, x, y);
    for (int o = 0; o < 10; o++) {
        double s = 0;
        for (int i = 0; i < 12; i++) s += (double)W[o * 12 + i] * x[i * n];
        assert_float_equal(y[o * n], s, 1e-5 * (1 + fabs(s)));
    }
    sc_free(W); sc_free(b); sc_free(x); sc_free(y); sc_free(g); sc_free(dW); sc_free(db); sc_free(dx);
}

/* ---------------------------------------------------------------- ops ------------------------------------------ */
static void test_relu_add_gap_transpose(void **state) {
    (void)state;
    float x[64], y[64], g[64], dx[64], a[64], t[64];
    fill_normal(x, 64, 1.f); fill_normal(g, 64, 1.f); fill_normal(a, 64, 1.f);
    x[3] = 0.f;
    relu_forward(64, x, y);
    relu_backward(64, y, g, dx);
    for (int i = 0; i < 64; i++) {
        assert_true(y[i] == (x[i] > 0 ? x[i] : 0.f));
        assert_true(dx[i] == (x[i] > 0 ? g[i] : 0.f)); /* subgradient 0 at 0, like PyTorch */
    }
    memcpy(dx, g, sizeof g);
    relu_backward(64, y, dx, dx); /* dx may alias dy */
    for (int i = 0; i < 64; i++) assert_true(dx[i] == (x[i] > 0 ? g[i] : 0.f));
    memcpy(y, x, sizeof y);
    add_inplace(64, y, a);
    for (int i = 0; i < 64; i++) assert_true(y[i] == x[i] + a[i]);
    /* gap: [2][2][16] -> [2][2]; backward is dy/hw broadcast (the exact gradient of a mean) */
    float p[4], gp[4] = {1, -2, 3, 0.5f};
    gap_forward(2, 2, 16, x, p);
    for (int r = 0; r < 4; r++) {
        double s = 0;
        for (int i = 0; i < 16; i++) s += x[r * 16 + i];
        assert_float_equal(p[r], s / 16, 1e-6);
    }
    gap_backward(2, 2, 16, gp, dx);
    for (int i = 0; i < 64; i++) assert_true(dx[i] == gp[i / 16] / 16.f);
    transpose(8, 8, x, t);
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 8; c++) assert_true(t[c * 8 + r] == x[r * 8 + c]);
    float big[37 * 45], bt[37 * 45];
    fill_normal(big, 37 * 45, 1.f);
    transpose(37, 45, big, bt); /* not a multiple of the block */
    for (int r = 0; r < 37; r++)
        for (int c = 0; c < 45; c++) assert_true(bt[c * 37 + r] == big[r * 45 + c]);
}

typedef struct { int c, n, h, w; double *x; const double *G; } mp_ref;
static double mp_ref_loss(void *ctx) {
    mp_ref *r = ctx;
    int ho = (r->h - 1) / 2 + 1, wo = (r->w - 1) / 2 + 1;
    double L = 0;
    for (int p = 0; p < r->c * r->n; p++)
        for (int oh = 0; oh < ho; oh++)
            for (int ow = 0; ow < wo; ow++) {
                double mx = -INFINITY;
                for (int ih = 2 * oh - 1; ih <= 2 * oh + 1; ih++)
                    for (int iw = 2 * ow - 1; iw <= 2 * ow + 1; iw++)
                        if (ih >= 0 && ih < r->h && iw >= 0 && iw < r->w) mx = fmax(mx, r->x[(p * r->h + ih) * r->w + iw]);
                L += r->G[(p * ho + oh) * wo + ow] * mx;
            }
    return L;
}

static void test_maxpool(void **state) {
    (void)state;
    const int sizes[][2] = {{7, 7}, {8, 6}, {5, 9}};
    for (int t = 0; t < 3; t++) {
        int c = 2, n = 3, h = sizes[t][0], w = sizes[t][1], ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1;
        size_t nx = (size_t)c * n * h * w, ny = (size_t)c * n * ho * wo;
        float *x = falloc(nx), *y = falloc(ny), *g = falloc(ny), *dx = falloc(nx);
        int32_t *am = sc_calloc_n(int32_t, ny);
        double *xd = dalloc(nx), *gd = dalloc(ny), *fd = dalloc(nx);
        fill_normal(x, nx, 1.f); fill_normal(g, ny, 1.f);
        for (size_t i = 0; i < nx; i++) xd[i] = x[i];
        for (size_t i = 0; i < ny; i++) gd[i] = g[i];
        for (size_t i = 0; i < nx; i++) dx[i] = 7.f;
        maxpool_forward(c, n, h, w, x, y, am);
        maxpool_backward(c, n, h, w, g, am, dx);
        mp_ref r = {c, n, h, w, xd, gd};
        /* random normal data has no ties: the max is differentiable and h = 1e-6 stays inside each window's order */
        for (size_t i = 0; i < nx; i++) fd[i] = fd_at(mp_ref_loss, &r, &xd[i], 1e-6);
        tu_check_close("maxpool dx", nx, dx, fd, NULL, 0, 1e-6 * 10);
        for (int p = 0; p < c * n; p++)
            for (int o = 0; o < ho * wo; o++) assert_true(y[p * ho * wo + o] == x[(size_t)p * h * w + am[p * ho * wo + o]]);
        sc_free(x); sc_free(y); sc_free(g); sc_free(dx); sc_free(am); sc_free(xd); sc_free(gd); sc_free(fd);
    }
}

typedef struct { int d, n; double *x; const double *G; } l2_ref;
static double l2_ref_loss(void *ctx) {
    l2_ref *r = ctx;
    double L = 0;
    for (int j = 0; j < r->n; j++) {
        double s = 0;
        for (int i = 0; i < r->d; i++) s += r->x[i * r->n + j] * r->x[i * r->n + j];
        double nr = fmax(sqrt(s), 1e-12);
        for (int i = 0; i < r->d; i++) L += r->G[i * r->n + j] * r->x[i * r->n + j] / nr;
    }
    return L;
}

static void test_l2norm(void **state) {
    (void)state;
    const int d = 9, n = 5;
    float x[45], y[45], g[45], dx[45], nrm[5];
    double xd[45], gd[45], fd[45];
    fill_normal(x, 45, 1.f); fill_normal(g, 45, 1.f);
    for (int i = 0; i < d; i++) x[i * n + 4] = 0.f; /* a zero column: the clamp (y = 0, dx = dy/eps) */
    for (int i = 0; i < 45; i++) { xd[i] = x[i]; gd[i] = g[i]; }
    l2norm_forward(d, n, x, y, nrm);
    l2norm_backward(d, n, y, nrm, g, dx);
    l2_ref r = {d, n, xd, gd};
    for (int j = 0; j < 4; j++) {
        double s = 0;
        for (int i = 0; i < d; i++) s += xd[i * n + j] * xd[i * n + j];
        for (int i = 0; i < d; i++) assert_float_equal(y[i * n + j], xd[i * n + j] / sqrt(s), 1e-6);
        for (int i = 0; i < d; i++) fd[i * n + j] = fd_at(l2_ref_loss, &r, &xd[i * n + j], 1e-5);
    }
    for (int j = 0; j < 4; j++)
        for (int i = 0; i < d; i++) assert_float_equal(dx[i * n + j], fd[i * n + j], 1e-5);
    for (int i = 0; i < d; i++) {
        assert_true(y[i * n + 4] == 0.f);
        assert_float_equal(dx[i * n + 4], g[i * n + 4] / 1e-12f, 1e-6 * fabs(g[i * n + 4] / 1e-12f));
    }
}

/* ---------------------------------------------------------------- losses --------------------------------------- */
typedef struct {
    int n, c, kind; /* 0 CE, 1 soft CE, 2 MSE */
    double *z;
    const double *t;
    const int32_t *lab;
    double tau_s, tau_t, denom;
} loss_ref;

static double loss_ref_value(void *ctx) {
    loss_ref *r = ctx;
    double L = 0;
    for (int i = 0; i < r->n; i++) {
        const double *z = r->z + (size_t)i * r->c, *t = r->t ? r->t + (size_t)i * r->c : NULL;
        if (r->kind == 2) {
            for (int j = 0; j < r->c; j++) L += (z[j] - t[j]) * (z[j] - t[j]) / r->c;
            continue;
        }
        double ts = r->kind == 1 ? r->tau_s : 1, mz = -INFINITY, sz = 0;
        for (int j = 0; j < r->c; j++) mz = fmax(mz, z[j] / ts);
        for (int j = 0; j < r->c; j++) sz += exp(z[j] / ts - mz);
        double lse = mz + log(sz);
        if (r->kind == 0) { L += lse - z[r->lab[i]]; continue; }
        double mt = -INFINITY, st = 0;
        for (int j = 0; j < r->c; j++) mt = fmax(mt, t[j] / r->tau_t);
        for (int j = 0; j < r->c; j++) st += exp(t[j] / r->tau_t - mt);
        for (int j = 0; j < r->c; j++) L -= ts * ts * exp(t[j] / r->tau_t - mt) / st * (z[j] / ts - lse);
    }
    return L / r->denom;
}

static void loss_check(int kind, int n, int c, float zscale, double denom, float scale) {
    size_t len = (size_t)n * c;
    float *z = falloc(len), *t = falloc(len), *dz = falloc(len);
    int32_t *lab = sc_calloc_n(int32_t, n);
    double *zd = dalloc(len), *td = dalloc(len), *fd = dalloc(len);
    fill_normal(z, len, zscale); fill_normal(t, len, zscale);
    for (int i = 0; i < n; i++) lab[i] = (int32_t)rng_below(&g_rng, c);
    for (size_t i = 0; i < len; i++) { zd[i] = z[i]; td[i] = t[i]; }
    loss_ref r = {n, c, kind, zd, td, lab, 0.2, 0.5, denom};
    double L = kind == 0   ? loss_softmax_ce(n, c, z, lab, denom, scale, dz)
               : kind == 1 ? loss_soft_ce(n, c, z, t, 0.2f, 0.5f, denom, scale, dz)
                           : loss_mse(n, c, z, t, denom, scale, dz);
    double Lr = loss_ref_value(&r);
    assert_float_equal(L, Lr, 1e-5 * (1 + fabs(Lr)));
    double gmax = 0;
    for (size_t i = 0; i < len; i++) { fd[i] = scale * fd_at(loss_ref_value, &r, &zd[i], 1e-4 * (1 + zscale)); gmax = fmax(gmax, fabs(fd[i])); }
    tu_check_close("loss dz", len, dz, fd, NULL, 0, 1e-4 * gmax + 1e-7);
    /* dz == NULL: same loss */
    double L2 = kind == 0   ? loss_softmax_ce(n, c, z, lab, denom, scale, NULL)
                : kind == 1 ? loss_soft_ce(n, c, z, t, 0.2f, 0.5f, denom, scale, NULL)
                            : loss_mse(n, c, z, t, denom, scale, NULL);
    assert_float_equal(L2, L, 1e-12 * fabs(L)); /* FMA contraction may differ between the two code paths */
    sc_free(z); sc_free(t); sc_free(dz); sc_free(lab); sc_free(zd); sc_free(td); sc_free(fd);
}

static void test_losses(void **state) {
    (void)state;
    for (int kind = 0; kind < 3; kind++) {
        loss_check(kind, 6, 11, 1.f, 6, 1.f);
        loss_check(kind, 5, 7, 3.f, 20, 2.5f); /* global-mean denominator and a loss weight */
    }
    /* stability: logits of 1e4 (cosines / T with tiny T) give finite values and the exact answer */
    float z[3] = {1e4f, 0.f, -1e4f}, dz[3];
    int32_t lab = 1;
    double L = loss_softmax_ce(1, 3, z, &lab, 1, 1.f, dz);
    assert_float_equal(L, 1e4, 1e-3);
    assert_float_equal(dz[0], 1.f, 1e-6);
    assert_float_equal(dz[1], -1.f, 1e-6);
    float t[3] = {-1e4f, 0.f, 1e4f};
    L = loss_soft_ce(1, 3, z, t, 1.f, 1.f, 1, 1.f, dz);
    assert_true(isfinite(L) && isfinite(dz[0]) && isfinite(dz[2]));
    assert_float_equal(L, 2e4, 1e-2);
}

/* BN and ReLU split channels / elements over the BLAS threads: the result must be bitwise that of one thread
 * (large enough to take the threaded path), and the 3x3 stride-1 conv dx path must not depend on it either. */
static void test_threads_bitwise(void **state) {
    (void)state;
    const int c = 24, m = 4096;
    size_t len = (size_t)c * m;
    float *x = falloc(len), *dy = falloc(len), *g = falloc(c), *b = falloc(c);
    fill_normal(x, len, 2.f); fill_normal(dy, len, 1.f); fill_normal(g, c, 1.f); fill_normal(b, c, 1.f);
    float *y[2], *dx[2], *r[2], *rm[2], *rv[2], *sm[2], *si[2], *dg[2], *db[2];
    for (int t = 0; t < 2; t++) {
        y[t] = falloc(len); dx[t] = falloc(len); r[t] = falloc(len);
        rm[t] = falloc(c); rv[t] = falloc(c); sm[t] = falloc(c); si[t] = falloc(c); dg[t] = falloc(c); db[t] = falloc(c);
        blas_set_threads(t + 1);
        bn_desc d = {c, true, 0.1f, 1e-5f, false, NULL};
        bn_forward_train(&d, m, x, y[t], g, b, rm[t], rv[t], sm[t], si[t], NULL);
        bn_backward(&d, m, x, dy, g, NULL, sm[t], si[t], dx[t], dg[t], db[t], NULL);
        relu_forward(len, y[t], r[t]);
        relu_backward(len, r[t], dy, r[t]);
    }
    blas_set_threads(1);
    assert_memory_equal(y[0], y[1], len * sizeof(float));
    assert_memory_equal(dx[0], dx[1], len * sizeof(float));
    assert_memory_equal(r[0], r[1], len * sizeof(float));
    assert_memory_equal(rv[0], rv[1], c * sizeof(float));
    assert_memory_equal(dg[0], dg[1], c * sizeof(float));
    for (int t = 0; t < 2; t++) {
        sc_free(y[t]); sc_free(dx[t]); sc_free(r[t]); sc_free(rm[t]); sc_free(rv[t]); sc_free(sm[t]);
        sc_free(si[t]); sc_free(dg[t]); sc_free(db[t]);
    }
    sc_free(x); sc_free(dy); sc_free(g); sc_free(b);
    /* the conv paths (im2col, flipped-weight dx, col2im) against the double reference with 2 threads */
    blas_set_threads(2);
    conv_desc d3 = {.cin_max = 16, .cout_max = 16, .k = 3, .stride = 1, .pad = 1};
    conv_check_case(&d3, 4, 12, 16, 14, 14);
    conv_desc d2 = {.cin_max = 16, .cout_max = 16, .k = 3, .stride = 2, .pad = 1};
    conv_check_case(&d2, 4, 16, 12, 14, 14);
    blas_set_threads(1);
}

int main(void) {
    g_rng = rng_stream_make(1234, 7, 0, 0);
    blas_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_shapes_and_widths), cmocka_unit_test(test_conv_chunking),
        cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_conv_width_accumulation), cmocka_unit_test(test_bn_train_eval),
        cmocka_unit_test(test_bn_sync_reducer),         cmocka_unit_test(test_bn_local_bitwise),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_relu_add_gap_transpose),  cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_l2norm),                  cmocka_unit_test(test_losses),
    };
    return isa_each_run_group(tests); /* every ISA path the CPU has */
}
