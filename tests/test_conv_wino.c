/* nn/conv_wino (Winograd F(2x2,3x3)): forward, dx and dW against a double-precision loop and against the direct
 * path, for even, odd, 4x4, 2x2 and 1x1 maps, 1..5 images, cin/cout slices of a larger full weight, dW += on a
 * non-zero dW, dx NULL, one chunk and one image per chunk (a tiny budget), 1 and 2 threads; then the dispatch in
 * nn/conv (SLIMCLR_CONV's values, the auto rule, the thin layers keep their path).
 * Tolerance: each output is compared with 2e-5 x the sum of |terms| (+1e-6). F(2x2,3x3)'s transforms add at most
 * 4 terms per stage with coefficients of 1 and 1/2 and the GEMM sums cin products per point, so its fp32 error is
 * a small multiple of the direct GEMM's (measured on these cases: at most 2.2e-6 x sum|terms| where that sum is
 * > 0.05, i.e. 10x under the bound); a wrong transform coefficient gives errors of the order of the terms.
 * F(4x4,3x3) (nn/conv_wino4) on the same cases and more maps (sizes of every residue mod 4, 28x28 .. 4x4): its
 * transforms have coefficients up to 8 (A^T) and 5 (B^T) and sums of 5-6 terms per stage, so its error is larger:
 * measured at most 9.3e-6 x sum|terms| (AVX2 path; 7.7e-6 AVX-512), bounded at 5e-5 (~5x). Each of seven planted
 * errors of 0.1-1% in one coefficient (B^T, G, A^T and the transposes B, G^T, A) fails that bound. */
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
#include "core/error.h"
#include "core/rng.h"
#include "nn/conv.h"
#include "nn/conv_thin.h"
#include "nn/conv_wino.h"
#include "isa_each.h"

static rng_stream g_rng;
static double g_worst; /* largest |error| / sum|terms| seen where sum|terms| > 0.05 (the 1e-6 floor not in play) */
#define WINO4_RTOL 5e-5 /* F(4x4,3x3)'s bound: see the top */
static int g_m = 2;    /* the output tile under test: F(2x2,3x3) or F(4x4,3x3) */
static double g_rtol = 2e-5;

static float *fill(size_t len, float s) {
    float *p = sc_calloc_n(float, len);
    tu_fill_uniform(&g_rng, p, len, -s, s);
    return p;
}

static void check(const char *what, int c, size_t len, const float *got, const double *want, const double *abs_) {
    for (size_t i = 0; i < len; i++) {
        double err = fabs(got[i] - want[i]), tol = g_rtol * abs_[i] + 1e-6;
        if (abs_[i] > 0.05 && err / abs_[i] > g_worst) g_worst = err / abs_[i];
        if (err > tol) fail_msg("case %d %s[%zu] = %.7g, want %.7g (tol %.2g)", c, what, i, got[i], want[i], tol);
    }
}

static void one_case(int c, int cin_max, int cout_max, int cin, int cout, int n, int h, int w) {
    const int ldw = cin_max * 9;
    const size_t nx = (size_t)cin * n * h * w, ny = (size_t)cout * n * h * w, nw = (size_t)cout_max * ldw;
    float *x = fill(nx, 1.f), *W = fill(nw, 0.5f), *g = fill(ny, 1.f), *dw0 = fill(nw, 0.1f);
    double *y = sc_calloc_n(double, ny), *ya = sc_calloc_n(double, ny), *dx = sc_calloc_n(double, nx),
           *dxa = sc_calloc_n(double, nx), *dw = sc_calloc_n(double, nw), *dwa = sc_calloc_n(double, nw);
    conv_ref(&(conv_desc){cin_max, cout_max, 3, 1, 1}, n, cin, cout, h, w, W, x, g, y, ya, dx, dxa, dw, dwa);
    for (size_t i = 0; i < nw; i++) dw[i] += dw0[i];
    float *yo = sc_calloc_n(float, ny), *dxo = sc_calloc_n(float, nx), *dwo = sc_calloc_n(float, nw);
    for (int pass = 0; pass < 4; pass++) {
        /* budgets: the default (one chunk here) and one image per chunk; threads 1 and 2 */
        const size_t budget = pass & 1 ? 1 : (size_t)4 << 20;
        blas_set_threads(1 + pass / 2);
        float *ws = sc_calloc_n(float, wino_workspace_floats(n, cin, cout, h, w, budget));
        memset(yo, 0x7f, sizeof(float) * ny); /* garbage: the forward overwrites */
        wino_forward(g_m, n, cin, cout, h, w, W, ldw, x, yo, ws, budget);
        check("y", c, ny, yo, y, ya);
        memcpy(dwo, dw0, sizeof(float) * nw);
        memset(dxo, 0x7f, sizeof(float) * nx);
        wino_backward(g_m, n, cin, cout, h, w, W, ldw, x, g, dwo, dxo, ws, budget);
        check("dx", c, nx, dxo, dx, dxa);
        check("dW", c, nw, dwo, dw, dwa); /* the rows and columns outside the slice keep dw0 exactly */
        for (int co = 0; co < cout_max; co++)
            for (int k = 0; k < ldw; k++)
                if ((co >= cout || k >= cin * 9) && dwo[(size_t)co * ldw + k] != dw0[(size_t)co * ldw + k])
                    fail_msg("case %d: dW[%d][%d] outside the slice changed", c, co, k);
        memcpy(dwo, dw0, sizeof(float) * nw);
        wino_backward(g_m, n, cin, cout, h, w, W, ldw, x, g, dwo, NULL, ws, budget); /* dW alone */
        check("dW (dx NULL)", c, nw, dwo, dw, dwa);
        free(ws);
    }
    blas_set_threads(1);
    float *q[] = {x, W, g, dw0, yo, dxo, dwo};
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) free(q[i]);
    double *r[] = {y, ya, dx, dxa, dw, dwa};
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) free(r[i]);
}

static const int wino_cases[][7] = {
        /* cin_max, cout_max, cin, cout, n, h, w */
        {8, 6, 5, 4, 3, 8, 8},  {7, 9, 7, 9, 2, 7, 7},  {6, 6, 4, 3, 5, 4, 4},   {5, 5, 5, 5, 1, 2, 2},
        {3, 4, 3, 4, 2, 1, 1},  {6, 5, 6, 5, 2, 5, 9},  {4, 4, 2, 3, 4, 6, 3},   {40, 36, 33, 36, 2, 14, 14},
        {64, 64, 48, 40, 3, 7, 7},  {600, 8, 600, 5, 1, 4, 4}, {8, 600, 6, 600, 2, 3, 3}, /* k past one panel */
        /* the fused forward's blocks: many tile rows per block and a last block shorter than the others (5 x 28x28:
         * 980 tiles, 252 a block), tile rows longer than a block (split into segments; even and odd widths), a block
         * of one part-filled panel (4x4, 512 channels) */
        {16, 16, 16, 13, 5, 28, 28}, {3, 2, 3, 2, 1, 3, 601}, {2, 3, 2, 3, 2, 4, 530}, {520, 40, 512, 40, 3, 4, 4},
};

static void run_cases(const int (*c)[7], size_t nc, int first) {
    for (size_t i = 0; i < nc; i++)
        one_case(first + (int)i, c[i][0], c[i][1], c[i][2], c[i][3], c[i][4], c[i][5], c[i][6]);
}

static void test_wino_vs_reference(void **state) {
    (void)state;
    g_m = 2; g_rtol = 2e-5; g_worst = 0;
    run_cases(wino_cases, sizeof wino_cases / sizeof wino_cases[0], 0);
    print_message("F(2x2,3x3): worst |error| / sum|terms|: %.2g\n", g_worst);
}

/* F(4x4,3x3) on the same cases, plus maps of every size mod 4, the B1 shapes' channel counts not multiples of
 * the panels, and 4x4-tile rows longer than a block (segments). */
static void test_wino4_vs_reference(void **state) {
    (void)state;
    static const int c4[][7] = {
        {5, 7, 5, 7, 2, 10, 11}, {9, 6, 9, 6, 3, 5, 6}, {70, 80, 67, 80, 2, 14, 14}, {24, 20, 20, 17, 2, 28, 28},
        {130, 130, 129, 130, 2, 7, 7}, {100, 100, 97, 99, 3, 4, 4}, {40, 40, 33, 40, 1, 5, 530},
    };
    const size_t nc = sizeof wino_cases / sizeof wino_cases[0];
    g_m = 4; g_rtol = WINO4_RTOL; g_worst = 0;
    run_cases(wino_cases, nc, 0);
    run_cases(c4, sizeof c4 / sizeof c4[0], (int)nc);
    print_message("F(4x4,3x3): worst |error| / sum|terms|: %.2g\n", g_worst);
    g_m = 2; g_rtol = 2e-5;
}

/* conv_forward / conv_backward with SLIMCLR_CONV's values: winograd, wino4 and direct agree within the bound, and
 * the workspace conv_workspace_floats plans for one algorithm serves the other (several chunks: small budget) */
static void test_dispatch(void **state) {
    (void)state;
    const int cin_max = 48, cout_max = 40, cin = 40, cout = 32, n = 3, h = 7, w = 7, ldw = cin_max * 9;
    conv_desc d = {cin_max, cout_max, 3, 1, 1};
    const size_t nx = (size_t)cin * n * h * w, ny = (size_t)cout * n * h * w, nw = (size_t)cout_max * ldw;
    float *x = fill(nx, 1.f), *W = fill(nw, 0.5f), *g = fill(ny, 1.f);
    float *y[3], *dx[3], *dw[3];
    conv_set_workspace_budget(20000);
    float *ws = sc_calloc_n(float, conv_workspace_floats(&d, n, cin, cout, h, w));
    static const conv_algo algo[3] = {CONV_ALGO_DIRECT, CONV_ALGO_WINOGRAD, CONV_ALGO_WINO4};
    for (int a = 0; a < 3; a++) {
        conv_set_algo(algo[a]);
        assert_int_equal(conv_uses_winograd(&d, cin, cout, h, w), 2 * a);
        y[a] = sc_calloc_n(float, ny); dx[a] = sc_calloc_n(float, nx); dw[a] = sc_calloc_n(float, nw);
        conv_forward(&d, n, cin, cout, h, w, W, x, y[a], ws);
        conv_backward(&d, n, cin, cout, h, w, W, x, g, dw[a], dx[a], ws);
    }
    for (int a = 1; a < 3; a++) {
        const float tol = a == 1 ? 1e-4f : 1e-3f;
        for (size_t i = 0; i < ny; i++) assert_true(fabsf(y[0][i] - y[a][i]) < tol);
        for (size_t i = 0; i < nx; i++) assert_true(fabsf(dx[0][i] - dx[a][i]) < tol);
        for (size_t i = 0; i < nw; i++) assert_true(fabsf(dw[0][i] - dw[a][i]) < tol * (1.f + fabsf(dw[0][i])));
    }
    conv_set_algo(CONV_ALGO_AUTO); /* the measured rule: F(4x4) from 64 channels on maps of 4x4 and up, 48 on 28x28 */
    static const int rule[][4] = {
        /* c_max = cin = cout, h (= w), tile size (0: direct) */
        {128, 128, 14, 4}, {256, 256, 7, 4}, {256, 192, 7, 4},  {256, 128, 7, 4}, {256, 64, 7, 4},
        {64, 48, 7, 0},    {256, 256, 4, 4}, {256, 128, 4, 4},  {128, 96, 4, 4},  {128, 64, 4, 4},
        {128, 32, 4, 0},   {512, 512, 4, 4}, {512, 384, 4, 4},  {64, 64, 28, 4},  {64, 48, 28, 4},
        {64, 32, 28, 0},   {128, 96, 14, 4}, {64, 64, 14, 4},   {48, 48, 14, 0},  {256, 256, 6, 4},
        {64, 64, 6, 4},    {256, 256, 2, 2}, {256, 128, 2, 0},  {512, 512, 3, 2},
    };
    assert_int_equal(conv_uses_winograd(&d, cin, cout, h, w), 0);
    for (size_t i = 0; i < sizeof rule / sizeof rule[0]; i++) {
        const int m = rule[i][0], c = rule[i][1], hh = rule[i][2];
        if (conv_uses_winograd(&(conv_desc){m, m, 3, 1, 1}, c, c, hh, hh) != rule[i][3])
            fail_msg("auto: %d channels on %dx%d: tile %d, want %d", c, hh, hh,
                     conv_uses_winograd(&(conv_desc){m, m, 3, 1, 1}, c, c, hh, hh), rule[i][3]);
    }
    assert_int_equal(conv_uses_winograd(&(conv_desc){64, 64, 3, 1, 1}, 48, 64, 14, 14), 0); /* min(cin, cout) */
    assert_false(conv_uses_winograd(&(conv_desc){64, 64, 3, 2, 1}, 64, 64, 14, 14)); /* strided */
    assert_false(conv_uses_winograd(&(conv_desc){64, 64, 1, 1, 0}, 64, 64, 14, 14)); /* 1x1 */
#if defined(__AVX2__)
    /* a thin layer keeps conv_thin, even when winograd is forced */
    conv_set_algo(CONV_ALGO_WINOGRAD);
    if (convt_applies(&(conv_desc){16, 16, 3, 1, 1}, 16, 16, 28, 28))
        assert_false(conv_uses_winograd(&(conv_desc){16, 16, 3, 1, 1}, 16, 16, 28, 28));
#endif
    conv_set_algo(CONV_ALGO_AUTO);
    conv_set_workspace_budget(0);
    conv_algo a = CONV_ALGO_AUTO;
    assert_true(conv_algo_parse("direct", &a) && a == CONV_ALGO_DIRECT);
    assert_true(conv_algo_parse("winograd", &a) && a == CONV_ALGO_WINOGRAD);
    assert_true(conv_algo_parse("auto", &a) && a == CONV_ALGO_AUTO);
    assert_true(conv_algo_parse("wino4", &a) && a == CONV_ALGO_WINO4);
    assert_false(conv_algo_parse("Winograd", &a) || conv_algo_parse("", &a) || conv_algo_parse(NULL, &a));
    float *q[] = {x, W, g, ws, y[0], y[1], y[2], dx[0], dx[1], dx[2], dw[0], dw[1], dw[2]};
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) free(q[i]);
}

int main(void) {
    g_rng = rng_stream_make(23, 9, 0, 0);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_wino_vs_reference), cmocka_unit_test(test_wino4_vs_reference),
                                       cmocka_unit_test(test_dispatch)};
    return isa_each_run_group(tests);
}
