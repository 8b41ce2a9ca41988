/* bn_bench: batch norm's passes and the element-wise passes of the step, each timed alone at a B1 or B1-small
 * shape, with the bytes it moves and the rate (GB/s). Medians of R calls, wall clock, the active ISA path
 * (SLIMCLR_ISA). "sync" runs BN with a reducer that is not known to be local (the two passes over all channels
 * with the reduction between them, as with several ranks); "local" with none (each channel's passes back to back).
 *   build/profiling/bn_bench [threads=2] [reps=15] [channels=16] [rows=200704]
 * rows: N*H*W of one channel (B1-small 28x28: 256*784 = 200704; B1 28x28: 64 channels x 50176). */
#include "blas/blas.h"
#include "core/error.h"
#include "core/timer.h"
#include "nn/bn.h"
#include "nn/ops.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void red_sum(double *buf, int n, void *ctx) { (void)buf, (void)n, (void)ctx; }

enum { NCASE = 13 };
static const char *names[NCASE] = {"copy (reference)",   "bn fwd stats only", "bn fwd relu, sync",   "bn fwd relu, local",
                                   "bn fwd res+relu, sync", "bn fwd res+relu, local", "bn bwd, sync",   "bn bwd, local",
                                   "bn bwd relu, sync", "bn bwd relu, local", "relu_backward",     "add_inplace",
                                   "bn bwd relu, local, dx = dy"};
static const int streams[NCASE] = {2, 1, 3, 3, 4, 4, 5, 5, 5, 5, 3, 3, 4};

int main(int argc, char **argv) {
    const int nt = argc > 1 ? atoi(argv[1]) : 2, R = argc > 2 ? atoi(argv[2]) : 15, c = argc > 3 ? atoi(argv[3]) : 16;
    const int m = argc > 4 ? atoi(argv[4]) : 200704;
    SC_CHECK(nt >= 1 && R >= 1 && R <= 1000 && c >= 1 && m >= 2, "usage: bn_bench [threads] [reps] [channels] [rows]");
    blas_set_threads(nt);
    const size_t len = (size_t)c * m;
    float *x = sc_calloc_n(float, len), *y = sc_calloc_n(float, len), *g = sc_calloc_n(float, len),
          *dx = sc_calloc_n(float, len), *res = sc_calloc_n(float, len);
    float *gam = sc_calloc_n(float, c), *bet = sc_calloc_n(float, c), *sm = sc_calloc_n(float, c),
          *si = sc_calloc_n(float, c), *dg = sc_calloc_n(float, c), *db = sc_calloc_n(float, c);
    for (size_t i = 0; i < len; i++) {
        x[i] = (float)((i * 2654435761u) % 2000) / 1000.f - 1.f;
        g[i] = x[(i * 7) % len] * 0.5f;
        res[i] = x[(i * 13) % len];
    }
    for (int i = 0; i < c; i++) { gam[i] = 1.f + 0.01f * i; bet[i] = 0.1f; }
    const nn_reducer sync = {red_sum, NULL, NULL, false};
    bn_desc d = {c, true, 0.1f, 1e-5f, false, NULL};
    bn_desc dr = d, dres = d;
    dr.relu = true;
    dres.relu = true;
    dres.res = res;
    double *tm = sc_calloc_n(double, (size_t)NCASE * R);
    for (int r = 0; r < R; r++) {
        double t[NCASE + 1];
        t[0] = sc_now();
        const int ntc = nt;
#pragma omp parallel for simd schedule(static) num_threads(ntc) if (parallel : ntc > 1)
        for (size_t i = 0; i < len; i++) y[i] = x[i] * 1.5f;
        t[1] = sc_now();
        bn_forward_train(&d, m, x, NULL, gam, bet, NULL, NULL, sm, si, NULL);
        t[2] = sc_now();
        bn_forward_train(&dr, m, x, y, gam, bet, NULL, NULL, sm, si, &sync);
        t[3] = sc_now();
        bn_forward_train(&dr, m, x, y, gam, bet, NULL, NULL, sm, si, NULL);
        t[4] = sc_now();
        bn_forward_train(&dres, m, x, y, gam, bet, NULL, NULL, sm, si, &sync);
        t[5] = sc_now();
        bn_forward_train(&dres, m, x, y, gam, bet, NULL, NULL, sm, si, NULL);
        t[6] = sc_now();
        bn_backward(&d, m, x, g, gam, bet, sm, si, dx, dg, db, &sync);
        t[7] = sc_now();
        bn_backward(&d, m, x, g, gam, bet, sm, si, dx, dg, db, NULL);
        t[8] = sc_now();
        bn_backward(&dr, m, x, g, gam, bet, sm, si, dx, dg, db, &sync);
        t[9] = sc_now();
        bn_backward(&dr, m, x, g, gam, bet, sm, si, dx, dg, db, NULL);
        t[10] = sc_now();
        relu_backward(len, y, g, dx);
        t[11] = sc_now();
        add_inplace(len, dx, g);
        t[12] = sc_now();
        bn_backward(&dr, m, x, dx, gam, bet, sm, si, dx, dg, db, NULL);
        t[13] = sc_now();
        for (int k = 0; k < NCASE; k++) tm[(size_t)k * R + r] = t[k + 1] - t[k];
    }
    printf("# bn_bench: %d thread(s), %d channels x %d, medians of %d, wall ms; GB/s from the streams a pass "
           "reads and writes (4 bytes each per element)\n",
           nt, c, m, R);
    for (int k = 0; k < NCASE; k++) {
        qsort(tm + (size_t)k * R, R, sizeof(double), cmp);
        const double s = tm[(size_t)k * R + R / 2];
        printf("%-24s %8.3f ms  %2d streams  %6.1f GB/s\n", names[k], 1e3 * s, streams[k],
               streams[k] * 4.0 * (double)len / s * 1e-9);
    }
    sc_free(x); sc_free(y); sc_free(g); sc_free(dx); sc_free(res); sc_free(gam); sc_free(bet); sc_free(sm);
    sc_free(si); sc_free(dg); sc_free(db); sc_free(tm);
    return 0;
}
