/* nn/conv_fused through conv_forward / conv_backward: the shapes test_nn does not reach (several K blocks of
 * the packed weights, cout not a multiple of the micro-kernel's MR, a column count not a multiple of 16, panels
 * straddling images, 5x5 taps; strided layers on the phase path with even and odd image sizes), against a
 * double-precision loop reference, with 1 and 2 threads, on every ISA path (BLIS's 6 x 16 row-preferring and
 * 32 x 12 column-preferring micro-kernels). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "test_util.h"
#include "conv_ref.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "blas/blas.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/rng.h"
#include "nn/conv.h"
#include "nn/conv_fused.h"
#include "nn/conv_sub.h"
#include "nn/conv_thin.h"
#include "isa_each.h"

static rng_stream g_rng;
static int g_fused_dw_seen; /* cases that took the fused weight gradient, on a kernel the expectations are not for */

/* the cases' expected fused-dW choices were worked out for panels of 16 columns (6 x 16, row-preferring) */
static int geom_16(void) { return blas_ukr_prefers_rows() && blas_ukr_nr() == 16; }

static float *fill(size_t len, float s) {
    float *p = sc_calloc_n(float, len);
    tu_fill_uniform(&g_rng, p, len, -s, s);
    return p;
}

static void check(const char *what, size_t len, const float *got, const double *want, const double *abs_) {
    for (size_t i = 0; i < len; i++) {
        double tol = 1e-5 * abs_[i] + 1e-6;
        if (fabs(got[i] - want[i]) > tol) fail_msg("%s[%zu] = %.7g, want %.7g (tol %.2g)", what, i, got[i], want[i], tol);
    }
}

static void one_case_s(int k, int stride, int pad, int cin_max, int cout_max, int cin, int cout, int n, int h, int w,
                       int threads, int want_fused_dw) {
    conv_desc d = {cin_max, cout_max, k, stride, pad};
    int ho = conv_out_size(h, k, stride, pad), wo = conv_out_size(w, k, stride, pad);
#if defined(__AVX2__)
    /* without AVX2 (make asan) the same cases check the im2col path */
    if (stride == 1) assert_true(convf_applies(&d));
    else assert_int_equal(convf_phase_applies(&d, h, w), k > 1); /* 1x1/2: nn/conv_sub */
#endif
    blas_set_threads(threads);
#if defined(__AVX2__)
    if (k > 1 && !geom_16()) g_fused_dw_seen += convf_dw_applies(cin * k * k, cout);
    else if (k > 1 && convf_dw_applies(cin * k * k, cout) != want_fused_dw)
        fail_msg("k %d stride %d cin %d cout %d threads %d: convf_dw_applies %d, want %d", k, stride, cin, cout, threads,
                 convf_dw_applies(cin * k * k, cout), want_fused_dw);
#else
    (void)want_fused_dw;
#endif
    size_t nw = (size_t)cout_max * cin_max * k * k, nx = (size_t)cin * n * h * w, ny = (size_t)cout * n * ho * wo;
    float *W = fill(nw, 0.5f), *x = fill(nx, 1.f), *g = fill(ny, 1.f), *y = sc_calloc_n(float, ny),
          *dx = sc_calloc_n(float, nx), *dW = sc_calloc_n(float, nw);
    float *ws = sc_calloc_n(float, conv_workspace_floats(&d, n, cin, cout, h, w));
    double *yr = sc_calloc_n(double, ny), *ya = sc_calloc_n(double, ny), *dxr = sc_calloc_n(double, nx),
           *dxa = sc_calloc_n(double, nx);
    for (size_t i = 0; i < ny; i++) y[i] = 9.f; /* overwritten */
    for (size_t i = 0; i < nx; i++) dx[i] = 9.f;
    double *dwr = sc_calloc_n(double, nw), *dwa = sc_calloc_n(double, nw);
    for (size_t i = 0; i < nw; i++) dwr[i] = dW[i] = 0.25f * (float)(i % 7); /* accumulated into, not overwritten */
    conv_forward(&d, n, cin, cout, h, w, W, x, y, ws);
    conv_backward(&d, n, cin, cout, h, w, W, x, g, dW, dx, ws);
    conv_ref(&d, n, cin, cout, h, w, W, x, g, yr, ya, dxr, dxa, dwr, dwa);
    check("y", ny, y, yr, ya);
    check("dx", nx, dx, dxr, dxa);
    check("dW", nw, dW, dwr, dwa); /* rows past cout and columns past cin*k*k stay as they were */
    sc_free(dwr); sc_free(dwa);
    sc_free(W); sc_free(x); sc_free(g); sc_free(y); sc_free(dx); sc_free(dW); sc_free(ws);
    sc_free(yr); sc_free(ya); sc_free(dxr); sc_free(dxa);
}

static void one_case(int k, int cin_max, int cout_max, int cin, int cout, int n, int h, int w, int threads,
                     int want_fused_dw) {
    one_case_s(k, 1, (k - 1) / 2, cin_max, cout_max, cin, cout, n, h, w, threads, want_fused_dw);
}

/* (forward/dx) K = 64*9 = 576 and 600 (5x5): two K blocks; K = 1152 in dx (cout 128): three. cout 13 / 7: partial MR panel.
 * n*h*w = 3*7*5 = 105 columns: a partial last panel; 7x5 images: panels straddle rows and images. */
static void test_fused_blocks_and_edges(void **state) {
    (void)state;
    for (int t = 1; t <= 2; t++) {
        one_case(3, 64, 16, 64, 13, 3, 7, 5, t, 1);
        one_case(3, 16, 128, 7, 128, 2, 6, 9, t, 1); /* 4 dW panels; 2 threads split q (private dW) */
        one_case(5, 24, 8, 24, 7, 2, 9, 7, t, 1);          /* K = 600: a half last dW panel */
        one_case(3, 1, 8, 1, 8, 2, 4, 4, t, 0); /* K = 9 < one 4-multiple block boundary; dW by im2col + BLIS */
        one_case(3, 8, 16, 8, 16, 3, 15, 13, t, 1); /* 585 columns (all on conv_thin: test_thin) */
        one_case(3, 4, 1024, 4, 1024, 1, 5, 5, t, 0); /* 3 panels x 1026 rows: no private dW, im2col + BLIS */
        /* dW: 288 and 363 columns = several q blocks, the last partial; cout 300 shrinks the q block */
        one_case(3, 16, 300, 16, 300, 2, 12, 12, t, 1);
        one_case(3, 20, 20, 16, 19, 3, 11, 11, t, 1);
    }
    blas_set_threads(1);
    if (!geom_16()) assert_true(g_fused_dw_seen > 4);
}

/* 3x3/2 pad 1 (the ResNet downsampling layers) and 2x2/2 on the phase path: even and odd image sizes (odd: the
 * last phase row and column are past the image), a fused and an im2col weight gradient, every phase of dx. */
static void test_phase_path(void **state) {
    (void)state;
    for (int t = 1; t <= 2; t++) {
        one_case_s(3, 2, 1, 20, 32, 17, 32, 3, 14, 14, t, 1); /* 17 input channels: not thin (test_thin) */
        one_case_s(3, 2, 1, 24, 20, 19, 13, 2, 7, 9, t, 1);   /* odd sizes, partial MR panels */
        one_case_s(3, 2, 1, 8, 40, 2, 33, 2, 6, 5, t, t == 2); /* K = 18: 2 dW panels (q split), 33 > 32: not thin */
        one_case_s(3, 2, 1, 4, 1024, 4, 1024, 1, 6, 5, t, 0); /* 3 panels x 1026 rows: im2col weight gradient */
        one_case_s(3, 2, 1, 64, 128, 64, 128, 2, 8, 8, t, 1); /* K = 576: two K blocks; dx K = 128..512 */
        one_case_s(2, 2, 0, 16, 8, 16, 8, 2, 8, 6, t, 1); /* 2x2/2: one tap per phase; 4 dW panels */
        /* phase planes of 4 floats (the split's and merge's scalar gathers), and stride 3 (9 phases); K = 171 and
         * 180: 11 and 12 panels of 16, at least 4 per thread with 1 and 2 threads, so the fused weight gradient */
        one_case_s(3, 2, 1, 24, 20, 19, 13, 3, 3, 4, t, 1);
        one_case_s(3, 3, 0, 20, 24, 20, 24, 2, 9, 9, t, 1);
    }
    blas_set_threads(1);
}

/* 1x1 stride 2 and 3 (nn/conv_sub): even and odd image sizes, width slices (ldw), more threads than images,
 * images in several chunks (64 x 49 floats an image: 20 per panel, 23 images on 1 thread), then 3 threads; wider than
 * CONVS_CIN_MAX (or more threads than CONVS_TMAX, not run: BLIS's threads spin on 2 cores): conv.c's im2col path */
static void test_sub(void **state) {
    (void)state;
    blas_set_threads(1);
    assert_true(convs_applies(&(conv_desc){64, 128, 1, 2, 0}, 64));
    assert_false(convs_applies(&(conv_desc){96, 192, 1, 2, 0}, 65));
    assert_false(convs_applies(&(conv_desc){8, 8, 1, 1, 0}, 8));
    assert_false(convs_applies(&(conv_desc){8, 8, 3, 2, 1}, 8));
    blas_set_threads(CONVS_TMAX + 1);
    assert_false(convs_applies(&(conv_desc){8, 8, 1, 2, 0}, 8));
    for (int t = 1; t <= 3; t++) {
        if (t < 3) one_case_s(1, 2, 0, 96, 100, 80, 100, 3, 7, 8, t, 0); /* the im2col path (BLIS threads) */
        one_case_s(1, 2, 0, 64, 64, 64, 30, 2, 7, 8, t, 0);
        one_case_s(1, 2, 0, 16, 32, 12, 24, 3, 28, 28, t, 0);
        if (t == 1) one_case_s(1, 2, 0, 64, 128, 64, 100, 23, 14, 13, t, 0);
        one_case_s(1, 3, 0, 5, 7, 5, 7, 4, 10, 11, t, 0);
        one_case_s(1, 2, 0, 3, 5, 2, 3, 1, 1, 2, t, 0); /* one pixel high: a 1 x 1 output */
    }
    blas_set_threads(1);
}

/* thin 3x3/1 layers (nn/conv_thin), forward, dx and dW: output-channel tiles of 4 with 1-3 rows past cout; rows of
 * 8-62 (63 x 62: the largest padded image, 65 x 63 = 4095 floats), padded-row positions ending on every block size (forward blocks of 1-3 vectors: 8-24 positions on the avx2
 * path, 16-48 on avx512; dW vectors of 8, or of 16 with a last half of 8 on avx512);
 * slices of a wider layer (ldw); 1, 2 and 3 threads. Then 3x3/2: 16 -> 32 at 28x28 (B1-small's), two channel
 * groups of the forward's rows, rows of 16 (whole deinterleave chunks), 17 (an odd last column after them) and
 * 5-13 (scalar), odd and even image sizes (the last phase row and column past the image). */
static void test_thin(void **state) {
    (void)state;
    static const int c[][8] = {
        /* stride, cin_max, cout_max, cin, cout, n, h, w */
        {1, 1, 8, 1, 8, 2, 4, 9},      {1, 3, 1, 3, 1, 2, 9, 8},    {1, 5, 4, 5, 4, 3, 28, 28},
        {1, 16, 8, 16, 8, 2, 8, 8},    {1, 2, 5, 2, 5, 4, 14, 14},  {1, 7, 7, 7, 7, 3, 6, 17},
        {1, 20, 12, 16, 7, 2, 5, 9},   {1, 4, 8, 4, 7, 70, 4, 8},   {1, 16, 32, 16, 16, 1, 3, 10},
        {1, 8, 2, 8, 2, 5, 16, 16},    {1, 1, 16, 1, 16, 3, 28, 28}, {1, 1, 13, 1, 13, 2, 61, 61},
        {1, 12, 13, 12, 13, 2, 9, 10}, {1, 16, 16, 10, 16, 3, 28, 28}, {1, 3, 4, 3, 4, 1, 63, 62},
        {2, 16, 32, 16, 32, 2, 28, 28}, {2, 4, 8, 4, 8, 3, 28, 28},  {2, 3, 5, 3, 5, 2, 7, 7},
        {2, 5, 9, 5, 9, 2, 9, 17},      {2, 16, 32, 12, 24, 2, 16, 16}, {2, 1, 4, 1, 4, 3, 13, 11},
        {2, 16, 30, 16, 30, 1, 33, 33}, {2, 8, 19, 8, 18, 4, 14, 14},
        /* 17-32 channels at stride 1: thin on a CPU with AVX-512 (c32 from here), else conv_fused */
        {1, 32, 32, 32, 32, 2, 14, 14}, {1, 24, 24, 24, 24, 3, 14, 14}, {1, 32, 32, 20, 27, 2, 9, 10},
        {1, 17, 30, 17, 30, 2, 28, 28}, {1, 32, 8, 32, 5, 3, 8, 8},
    };
    const size_t c32 = sizeof c / sizeof c[0] - 5;
    const bool wide = sc_isa_detected() >= SC_ISA_AVX512;
    for (int t = 1; t <= 3; t++)
        for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
            conv_desc d = {c[i][1], c[i][2], 3, c[i][0], 1};
#if defined(__AVX2__)
            blas_set_threads(t);
            assert_int_equal(convt_applies(&d, c[i][3], c[i][4], c[i][6], c[i][7]), i < c32 || wide);
#endif
            one_case_s(3, c[i][0], 1, c[i][1], c[i][2], c[i][3], c[i][4], c[i][5], c[i][6], c[i][7], t,
                       convf_dw_applies(c[i][3] * 9, c[i][4]));
        }
    blas_set_threads(1);
    assert_false(convt_applies(&(conv_desc){33, 8, 3, 1, 1}, 33, 8, 28, 28)); /* wider: conv_fused */
    assert_false(convt_applies(&(conv_desc){8, 33, 3, 1, 1}, 8, 33, 28, 28));
    assert_int_equal(convt_applies(&(conv_desc){17, 8, 3, 1, 1}, 17, 8, 28, 28), wide);
    assert_false(convt_applies(&(conv_desc){8, 8, 3, 1, 1}, 8, 8, 7, 7));     /* rows shorter than a vector */
    assert_false(convt_applies(&(conv_desc){8, 8, 3, 1, 1}, 8, 8, 63, 63));   /* a padded image past 4096 floats */
    assert_true(convt_applies(&(conv_desc){8, 8, 3, 1, 1}, 8, 8, 63, 62));    /* (63 + 2) x (62 + 1) = 4095 */
    assert_false(convt_applies(&(conv_desc){17, 32, 3, 2, 1}, 17, 32, 28, 28)); /* strided: the phase path */
    assert_false(convt_applies(&(conv_desc){16, 33, 3, 2, 1}, 16, 33, 28, 28));
    assert_false(convt_applies(&(conv_desc){16, 32, 3, 2, 1}, 16, 32, 200, 200)); /* planes past the buffers */
    assert_false(convt_applies(&(conv_desc){8, 8, 5, 1, 2}, 8, 8, 28, 28));
    assert_false(convt_applies(&(conv_desc){8, 8, 1, 2, 0}, 8, 8, 28, 28)); /* 1x1/2 shortcuts: nn/conv_sub */
}

/* conv.h's input prologue on thin layers: conv_forward_pre / conv_backward_pre of x must be bitwise the plain calls
 * on relu(fmaf(s, x - mu, h)) written out (what model_bn_relu_apply computes), with channels that clip to 0, for
 * stride 1 (vector rows and an overlapping last vector) and stride 2 (deinterleave chunks and scalar columns), 1-2
 * threads. */
static void test_thin_pre(void **state) {
    (void)state;
    static const int c[][7] = {
        /* stride, cin, cout, n, h, w, threads */
        {1, 16, 16, 3, 28, 28, 2}, {1, 5, 7, 2, 9, 13, 1}, {1, 8, 8, 4, 14, 14, 2},
        {2, 16, 32, 2, 28, 28, 2}, {2, 3, 8, 3, 17, 11, 1}, {2, 8, 16, 2, 14, 14, 2},
        {1, 32, 32, 2, 14, 14, 2}, {1, 24, 19, 2, 9, 12, 1}, /* with AVX-512 only (convt_applies) */
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        const int s = c[i][0], cin = c[i][1], cout = c[i][2], n = c[i][3], h = c[i][4], w = c[i][5];
        conv_desc d = {cin, cout, 3, s, 1};
        blas_set_threads(c[i][6]);
        if (cin > 16 && sc_isa_detected() < SC_ISA_AVX512) {
            assert_false(conv_pre_applies(&d, cin, cout, h, w));
            continue;
        }
#if !defined(__AVX2__)
        assert_false(conv_pre_applies(&d, cin, cout, h, w));
        continue;
#endif
        assert_true(conv_pre_applies(&d, cin, cout, h, w));
        const int ho = conv_out_size(h, 3, s, 1), wo = conv_out_size(w, 3, s, 1);
        const size_t nx = (size_t)cin * n * h * w, ny = (size_t)cout * n * ho * wo, nw = (size_t)cout * cin * 9;
        float *x = fill(nx, 2.f), *W = fill(nw, 0.5f), *g = fill(ny, 1.f), *sc = fill(cin, 1.5f), *mu = fill(cin, 0.5f),
              *sh = fill(cin, 1.f), *a = sc_calloc_n(float, nx);
        sh[0] = -50.f; /* a channel that is all zeros after the ReLU */
        for (int ci = 0; ci < cin; ci++)
            for (size_t j = 0; j < nx / cin; j++) {
                const float v = fmaf(sc[ci], x[ci * (nx / cin) + j] - mu[ci], sh[ci]);
                a[ci * (nx / cin) + j] = v > 0.f ? v : 0.f;
            }
        const conv_pre pre = {sc, mu, sh};
        float *y0 = sc_calloc_n(float, ny), *y1 = sc_calloc_n(float, ny), *dw0 = sc_calloc_n(float, nw),
              *dw1 = sc_calloc_n(float, nw), *dx0 = sc_calloc_n(float, nx), *dx1 = sc_calloc_n(float, nx);
        float *ws = sc_calloc_n(float, conv_workspace_floats(&d, n, cin, cout, h, w) + 1);
        conv_forward(&d, n, cin, cout, h, w, W, a, y0, ws);
        conv_forward_pre(&d, n, cin, cout, h, w, W, x, &pre, y1, ws);
        assert_memory_equal(y0, y1, sizeof(float) * ny);
        conv_backward(&d, n, cin, cout, h, w, W, a, g, dw0, dx0, ws);
        conv_backward_pre(&d, n, cin, cout, h, w, W, x, &pre, g, dw1, dx1, ws);
        assert_memory_equal(dw0, dw1, sizeof(float) * nw);
        assert_memory_equal(dx0, dx1, sizeof(float) * nx);
        float *p[] = {x, W, g, sc, mu, sh, a, y0, y1, dw0, dw1, dx0, dx1, ws};
        for (size_t k = 0; k < sizeof p / sizeof p[0]; k++) free(p[k]);
    }
    blas_set_threads(1);
    assert_false(conv_pre_applies(&(conv_desc){33, 33, 3, 1, 1}, 33, 33, 14, 14)); /* conv_fused: no prologue */
    assert_false(conv_pre_applies(&(conv_desc){8, 8, 1, 2, 0}, 8, 8, 28, 28));
}

/* conv_backward_add: dx = dL/dx + add, with add a separate array and add == dx (in place), against
 * conv_backward's dx plus add: bitwise on thin layers (stride 1 rows with a scalar tail, stride 2 merges with and
 * without whole 16-column chunks) and 1x1/2 (one term per element, nn/conv_sub's scatter); within rounding for 1x1/1 (BLIS beta 1)
 * and 3x3/2 pad 0 (col2im sums 9 terms onto add). Layers whose dx is a forward convolution do not take it. */
static void test_dx_add(void **state) {
    (void)state;
    static const int c[][9] = {
        /* k, stride, pad, cin, cout, n, h, w, bitwise */
        {3, 1, 1, 16, 16, 2, 28, 28, 1}, {3, 1, 1, 5, 3, 3, 9, 13, 1}, {3, 2, 1, 16, 32, 2, 28, 28, 1},
        {3, 2, 1, 4, 8, 2, 17, 21, 1},   {3, 2, 1, 3, 5, 2, 9, 9, 1},    {1, 2, 0, 16, 32, 3, 28, 28, 1},
        {1, 2, 0, 7, 9, 2, 13, 11, 1},   {1, 1, 0, 8, 12, 2, 7, 7, 0},   {3, 2, 0, 6, 4, 2, 11, 11, 0},
        {3, 1, 1, 32, 32, 2, 14, 14, 1}, /* thin with AVX-512 only (convt_applies) */
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        const int k = c[i][0], s = c[i][1], p = c[i][2], cin = c[i][3], cout = c[i][4], n = c[i][5], h = c[i][6],
                  w = c[i][7];
        conv_desc d = {cin, cout, k, s, p};
        blas_set_threads(1 + (int)(i % 2));
        if (!conv_dx_add_applies(&d, cin, cout, h, w)) { /* thin layers without AVX2 (or AVX-512 for 32) */
#if defined(__AVX2__)
            if (cin <= 16 || sc_isa_detected() >= SC_ISA_AVX512) fail_msg("case %zu: conv_dx_add_applies is 0", i);
#endif
            continue;
        }
        const int ho = conv_out_size(h, k, s, p), wo = conv_out_size(w, k, s, p);
        const size_t nx = (size_t)cin * n * h * w, ny = (size_t)cout * n * ho * wo, nw = (size_t)cout * cin * k * k;
        float *x = fill(nx, 1.f), *W = fill(nw, 0.5f), *g = fill(ny, 1.f), *add = fill(nx, 1.f);
        float *dw = sc_calloc_n(float, nw), *dx0 = sc_calloc_n(float, nx), *dx1 = sc_calloc_n(float, nx),
              *dx2 = sc_calloc_n(float, nx), *ws = sc_calloc_n(float, conv_workspace_floats(&d, n, cin, cout, h, w) + 1);
        conv_backward(&d, n, cin, cout, h, w, W, x, g, dw, dx0, ws);
        for (size_t j = 0; j < nx; j++) dx0[j] += add[j];
        conv_backward_add(&d, n, cin, cout, h, w, W, x, NULL, g, dw, dx1, add, ws);
        memcpy(dx2, add, sizeof(float) * nx);
        conv_backward_add(&d, n, cin, cout, h, w, W, x, NULL, g, dw, dx2, dx2, ws);
        if (c[i][8]) {
            assert_memory_equal(dx0, dx1, sizeof(float) * nx);
            assert_memory_equal(dx0, dx2, sizeof(float) * nx);
        } else {
            for (size_t j = 0; j < nx; j++) {
                if (fabsf(dx1[j] - dx0[j]) > 1e-5f * (1.f + fabsf(dx0[j]))) fail_msg("case %zu dx1[%zu]", i, j);
                if (fabsf(dx2[j] - dx0[j]) > 1e-5f * (1.f + fabsf(dx0[j]))) fail_msg("case %zu dx2[%zu]", i, j);
            }
        }
        float *q[] = {x, W, g, add, dw, dx0, dx1, dx2, ws};
        for (size_t j = 0; j < sizeof q / sizeof q[0]; j++) free(q[j]);
    }
    blas_set_threads(1);
    assert_false(conv_dx_add_applies(&(conv_desc){33, 33, 3, 1, 1}, 33, 33, 14, 14)); /* dx as a forward conv */
#if defined(__AVX2__)
    assert_false(conv_dx_add_applies(&(conv_desc){32, 64, 3, 2, 1}, 32, 64, 14, 14)); /* the phase path */
#endif
}

/* convf_gemm_nt (conv_sub's weight gradient on a column-preferring kernel): C = A B^T + beta C against a double
 * loop; m, n past one panel and partial, k past one reduction block (256) and not a multiple of 8, strided rows */
static void test_gemm_nt(void **state) {
    (void)state;
    const int shapes[][3] = {{13, 37, 531}, {128, 64, 300}, {8, 4, 7}, {30, 16, 256}};
    for (int si = 0; si < 4; si++) {
        const int m = shapes[si][0], n = shapes[si][1], k = shapes[si][2], lda = k + 5, ldb = k + 3, ldc = n + 2;
        if (!convf_gemm_nt_applies(m)) {
#if defined(__AVX2__)
            assert_true(blas_ukr_prefers_rows()); /* only a row-preferring kernel keeps BLIS's own */
#endif
            continue;
        }
        for (int bi = 0; bi < 2; bi++) {
            const float beta = bi ? 1.f : 0.f;
            float *A = fill((size_t)m * lda, 1.f), *B = fill((size_t)n * ldb, 1.f), *C = fill((size_t)m * ldc, 1.f);
            double *want = sc_calloc_n(double, (size_t)m * ldc), *mag = sc_calloc_n(double, (size_t)m * ldc);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < ldc; j++) {
                    double acc = j < n ? beta * C[(size_t)i * ldc + j] : C[(size_t)i * ldc + j], a = fabs(acc);
                    for (int p = 0; p < k && j < n; p++) {
                        acc += (double)A[(size_t)i * lda + p] * B[(size_t)j * ldb + p];
                        a += fabs((double)A[(size_t)i * lda + p] * B[(size_t)j * ldb + p]);
                    }
                    want[(size_t)i * ldc + j] = acc;
                    mag[(size_t)i * ldc + j] = a;
                }
            convf_gemm_nt(m, n, k, A, lda, B, ldb, beta, C, ldc);
            check("gemm_nt C", (size_t)m * ldc, C, want, mag); /* the 2 columns past n stay untouched */
            sc_free(A); sc_free(B); sc_free(C); sc_free(want); sc_free(mag);
        }
    }
}

/* the non-"same" stride-1 case stays on the im2col path */
static void test_fused_applies(void **state) {
    (void)state;
#if defined(__AVX2__)
    assert_true(convf_applies(&(conv_desc){8, 8, 3, 1, 1}));
#endif
    assert_false(convf_applies(&(conv_desc){8, 8, 3, 1, 0}));
    assert_false(convf_applies(&(conv_desc){8, 8, 3, 2, 1}));
    assert_false(convf_applies(&(conv_desc){8, 8, 9, 1, 4}));
#if defined(__AVX2__)
    assert_true(convf_phase_applies(&(conv_desc){8, 8, 3, 2, 1}, 7, 7));
#endif
    assert_false(convf_phase_applies(&(conv_desc){8, 8, 1, 2, 0}, 28, 28)); /* 1x1/2: nn/conv_sub reads its one phase */
    assert_false(convf_phase_applies(&(conv_desc){8, 8, 3, 2, 0}, 7, 7)); /* taps past the output grid */
    assert_false(convf_phase_applies(&(conv_desc){8, 8, 3, 1, 1}, 7, 7));
    /* 2x2/2 on 7x7: ho = 3, so input row 6 (read by no output) has no phase row; on 8x8 every row has one */
    assert_false(convf_phase_applies(&(conv_desc){8, 8, 2, 2, 0}, 7, 7));
#if defined(__AVX2__)
    assert_true(convf_phase_applies(&(conv_desc){8, 8, 2, 2, 0}, 8, 8));
#endif
}

int main(void) {
    g_rng = rng_stream_make(99, 3, 0, 0);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_fused_blocks_and_edges), cmocka_unit_test(test_phase_path),
                                       cmocka_unit_test(test_sub), cmocka_unit_test(test_gemm_nt),
                                       cmocka_unit_test(test_thin), cmocka_unit_test(test_thin_pre),
                                       cmocka_unit_test(test_dx_add),
                                       cmocka_unit_test(test_fused_applies)};
    return isa_each_run_group(tests);
}
