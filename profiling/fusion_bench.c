/* fusion_bench: the memory-pass fusions of the step, each against the separate passes it replaced, alternated in
 * the same loop (one process, same minutes), medians of R calls, wall clock, B1-small's shapes (batch 256).
 *   build/profiling/fusion_bench [threads=2] [reps=21]
 * - prologue: a block's inner BN + ReLU written to A, then the thin 16->16 conv (forward; backward with A
 *   recomputed) vs the conv reading BN + ReLU of its input on the fly (conv_forward_pre / conv_backward_pre);
 * - residual: the last BN, then the residual add + ReLU pass, vs bn_desc.res in the BN's pass;
 * - 1x1/2 shortcut backward into a temporary then an add pass into the block's input gradient, vs
 *   conv_backward_add straight into it; the same for a thin 3x3/1 conv (the identity block's add). */
#include "blas/blas.h"
#include "core/error.h"
#include "core/timer.h"
#include "nn/bn.h"
#include "nn/conv.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { NCASE = 10 };
static const char *names[NCASE] = {"BN+ReLU pass, conv fwd", "conv fwd with prologue", "BN+ReLU pass, conv bwd",
                                   "conv bwd with prologue", "BN, add+ReLU pass", "BN with residual",
                                   "1x1/2 bwd, add pass", "1x1/2 bwd_add", "3x3/1 bwd, add pass", "3x3/1 bwd_add"};

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* the separate passes the fusions replaced (the model's former loops) */
static void pass_bn_relu(int c, size_t m, const float *x, const float *s, const float *mu, const float *h, float *y) {
    const int nt = blas_threads();
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int ch = 0; ch < c; ch++)
        for (size_t i = 0; i < m; i++) {
            float v = bn_saved_affine(x[ch * m + i], s[ch], mu[ch], h[ch]);
            y[ch * m + i] = v > 0.f ? v : 0.f;
        }
}
static void pass_add(size_t len, float *y, const float *x, int relu) {
    const int nt = blas_threads();
#pragma omp parallel for simd schedule(static) num_threads(nt) if (parallel : nt > 1)
    for (size_t i = 0; i < len; i++) {
        float v = y[i] + x[i];
        y[i] = relu && !(v > 0.f) ? 0.f : v;
    }
}

int main(int argc, char **argv) {
    const int nt = argc > 1 ? atoi(argv[1]) : 2, R = argc > 2 ? atoi(argv[2]) : 21, n = 256, c = 16, h = 28;
    SC_CHECK(nt >= 1 && R >= 1 && R <= 1000, "usage: fusion_bench [threads] [reps]");
    blas_set_threads(nt);
    const size_t m = (size_t)n * h * h, len = (size_t)c * m, nsc = (size_t)2 * c * n * 14 * 14;
    const conv_desc d3 = {c, c, 3, 1, 1}, d1 = {c, 2 * c, 1, 2, 0};
    float *x = sc_calloc_n(float, len), *a = sc_calloc_n(float, len), *y = sc_calloc_n(float, len),
          *g = sc_calloc_n(float, len), *gx = sc_calloc_n(float, len), *t = sc_calloc_n(float, len),
          *dsc = sc_calloc_n(float, nsc), *W = sc_calloc_n(float, (size_t)2 * c * c * 9),
          *dW = sc_calloc_n(float, (size_t)2 * c * c * 9);
    size_t wsf = conv_workspace_floats(&d3, n, c, c, h, h), w1 = conv_workspace_floats(&d1, n, c, 2 * c, h, h);
    float *ws = sc_calloc_n(float, (wsf > w1 ? wsf : w1) + 1);
    float s[16], mu[16], sh[16], gam[16], bet[16], sm[16], si[16];
    for (size_t i = 0; i < len; i++) {
        x[i] = (float)((i * 2654435761u) % 2000) / 1000.f - 1.f;
        g[i] = x[(i * 7) % len] * 0.5f;
    }
    for (size_t i = 0; i < nsc; i++) dsc[i] = x[i % len];
    for (int i = 0; i < 2 * c * c * 9; i++) W[i] = 0.01f * (float)(i % 7 - 3);
    for (int i = 0; i < c; i++) { s[i] = 1.1f; mu[i] = 0.05f; sh[i] = 0.1f; gam[i] = 1.f; bet[i] = 0.f; }
    const conv_pre pre = {s, mu, sh};
    const bn_desc bn0 = {c, true, 0.1f, 1e-5f, false, NULL}, bnr = {c, true, 0.1f, 1e-5f, true, g};
    double *tm = sc_calloc_n(double, (size_t)NCASE * R);
    for (int r = 0; r < R; r++) {
        double t0 = sc_now();
        pass_bn_relu(c, m, x, s, mu, sh, a);
        conv_forward(&d3, n, c, c, h, h, W, a, y, ws);
        double t1 = sc_now();
        conv_forward_pre(&d3, n, c, c, h, h, W, x, &pre, y, ws);
        double t2 = sc_now();
        pass_bn_relu(c, m, x, s, mu, sh, a);
        conv_backward(&d3, n, c, c, h, h, W, a, g, dW, t, ws);
        double t3 = sc_now();
        conv_backward_pre(&d3, n, c, c, h, h, W, x, &pre, g, dW, t, ws);
        double t4 = sc_now();
        bn_forward_train(&bn0, (int)m, x, y, gam, bet, NULL, NULL, sm, si, NULL);
        pass_add(len, y, g, 1);
        double t5 = sc_now();
        bn_forward_train(&bnr, (int)m, x, y, gam, bet, NULL, NULL, sm, si, NULL);
        double t6 = sc_now();
        conv_backward(&d1, n, c, 2 * c, h, h, W, x, dsc, dW, t, ws);
        pass_add(len, gx, t, 0);
        double t7 = sc_now();
        conv_backward_add(&d1, n, c, 2 * c, h, h, W, x, NULL, dsc, dW, gx, gx, ws);
        double t8 = sc_now();
        conv_backward(&d3, n, c, c, h, h, W, x, g, dW, gx, ws);
        pass_add(len, gx, g, 0);
        double t9 = sc_now();
        conv_backward_add(&d3, n, c, c, h, h, W, x, NULL, g, dW, gx, g, ws);
        double t10 = sc_now();
        const double tt[NCASE] = {t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6, t8 - t7, t9 - t8, t10 - t9};
        for (int k = 0; k < NCASE; k++) tm[(size_t)k * R + r] = tt[k];
    }
    printf("# fusion_bench: %d thread(s), batch %d, 16 channels at 28x28 (1x1/2: 16 -> 32), medians of %d, wall ms\n",
           nt, n, R);
    for (int k = 0; k < NCASE; k++) {
        qsort(tm + (size_t)k * R, R, sizeof(double), cmp);
        printf("%-26s %7.2f%s", names[k], 1e3 * tm[(size_t)k * R + R / 2], k % 2 ? "\n" : "  ->  ");
    }
    sc_free(x); sc_free(a); sc_free(y); sc_free(g); sc_free(gx); sc_free(t); sc_free(dsc); sc_free(W); sc_free(dW);
    sc_free(ws); sc_free(tm);
    return 0;
}
