/* profiling/conv_bench: forward + backward (dW and dx) of each distinct convolution of the B1 model
 * (slimmable ResNet-18, small-image stem 3x3/1, base 64, input 1x28x28, batch 64; docs/benchmarks.md) at widths
 * 1, .75, .5, .25, against the BLIS sgemm rate (2048^3) measured in the same process.
 * usage: conv_bench [threads (2)] [reps (3)] [batch (64)] [base (64; 16 = B1-small's layers)]
 * -- prints one line per layer and width, then totals weighted by how often each layer occurs in the network.
 * ms = median of reps (min beside it); GFLOP/s and %peak use the median. The sgemm rate is measured before and
 * after the layers and the higher one is used: on a shared machine a single measurement taken while someone
 * else computes understates the peak. CONV_BENCH_CLOCK=cpu times with the process CPU clock instead of the wall
 * clock: with 1 thread that is an A/B measurement that survives other jobs on the machine (they take the core
 * away, not cycles from the timed code); with more threads it counts every thread's time, spinning included. */
#include "blas/blas.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "nn/conv.h"
#include "nn/layout.h"
#include "bench_conv.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *name;
    int cin, cout, k, stride, pad, h; /* full-width channels, input size */
    int count;                        /* occurrences in ResNet-18 */
    int stem;                         /* input channels not sliced */
} bench_layer;

static int g_cpu_clock;

/* best of reps 2048^3 sgemm rates on the benchmark's clock */
static double bench_peak(int reps) {
    const int m = 2048;
    float *a = sc_calloc_n(float, (size_t)m * m), *b = sc_calloc_n(float, (size_t)m * m), *c = sc_calloc_n(float, (size_t)m * m);
    for (size_t i = 0; i < (size_t)m * m; i++) { a[i] = (float)(i % 7) * 0.1f; b[i] = (float)(i % 5) * 0.1f; }
    double best = 0;
    for (int r = -1; r < reps; r++) {
        double t0 = bench_clock_now(g_cpu_clock);
        blas_sgemm(false, false, m, m, m, 1.f, a, m, b, m, 0.f, c, m);
        double g = 2.0 * m * m * m / (bench_clock_now(g_cpu_clock) - t0) / 1e9;
        if (r >= 0 && g > best) best = g;
    }
    sc_free(a); sc_free(b); sc_free(c);
    return best;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, reps = argc > 2 ? atoi(argv[2]) : 3, n = argc > 3 ? atoi(argv[3]) : 64;
    int base = argc > 4 ? atoi(argv[4]) : 64;
    if (threads < 1 || reps < 1 || reps > 99 || n < 1 || base < 4 || base % 4) {
        fprintf(stderr, "usage: conv_bench [threads>=1] [reps 1..99] [batch>=1] [base, a multiple of 4 (64)]\n");
        return 2;
    }
    char conv_msg[128]; /* SLIMCLR_CONV=direct|winograd: A/B of the 3x3/1 layers */
    if (conv_algo_init(conv_msg, sizeof conv_msg)) {
        fprintf(stderr, "conv_bench: %s\n", conv_msg);
        return 2;
    }
    const char *clk = getenv("CONV_BENCH_CLOCK");
    g_cpu_clock = clk && !strcmp(clk, "cpu");
    blas_set_threads(threads);
    bench_layer L[] = {
        {"stem 3x3/1", 1, 64, 3, 1, 1, 28, 1, 1},   {"s0 3x3/1", 64, 64, 3, 1, 1, 28, 4, 0},
        {"s1 3x3/2", 64, 128, 3, 2, 1, 28, 1, 0},   {"s1 3x3/1", 128, 128, 3, 1, 1, 14, 3, 0},
        {"s1 sc 1x1/2", 64, 128, 1, 2, 0, 28, 1, 0}, {"s2 3x3/2", 128, 256, 3, 2, 1, 14, 1, 0},
        {"s2 3x3/1", 256, 256, 3, 1, 1, 7, 3, 0},   {"s2 sc 1x1/2", 128, 256, 1, 2, 0, 14, 1, 0},
        {"s3 3x3/2", 256, 512, 3, 2, 1, 7, 1, 0},   {"s3 3x3/1", 512, 512, 3, 1, 1, 4, 3, 0},
        {"s3 sc 1x1/2", 256, 512, 1, 2, 0, 7, 1, 0},
    };
    const int nl = sizeof L / sizeof L[0];
    for (int l = 0; l < nl; l++) { /* the table is base 64 */
        if (!L[l].stem) L[l].cin = L[l].cin * base / 64;
        L[l].cout = L[l].cout * base / 64;
    }
    const float widths[] = {1.f, .75f, .5f, .25f};
    double peak = g_cpu_clock ? bench_peak(3) : blas_sgemm_rate(2048, 3);
    printf("# conv_bench: %s, %d threads, batch %d, base %d, median of %d, %s clock\n", blas_info(), threads, n, base,
           reps, g_cpu_clock ? "process CPU" : "wall");

    /* buffers for the largest layer */
    bench_conv_size m = {0, 0, 0, 0};
    for (int l = 0; l < nl; l++)
        bench_conv_grow(&m, L[l].cin, L[l].cout, L[l].k, L[l].stride, L[l].pad, L[l].h, n);
    bench_conv_bufs B = bench_conv_alloc(m);
    float *x = B.x, *dx = B.dx, *y = B.y, *W = B.W, *dW = B.dW, *ws = B.ws;

    enum { MAXROWS = 64 };
    struct { int l, wi, cin, cout; double gflop, t, tmin, tf; } row[MAXROWS];
    int nrows = 0;
    double tot_flop[4] = {0}, tot_s[4] = {0};
    for (int l = 0; l < nl; l++) {
        conv_desc d = {L[l].cin, L[l].cout, L[l].k, L[l].stride, L[l].pad};
        int h = L[l].h, ho = conv_out_size(h, L[l].k, L[l].stride, L[l].pad);
        for (int wi = 0; wi < 4; wi++) {
            int cin = L[l].stem ? L[l].cin : nn_width_channels(L[l].cin, widths[wi]);
            int cout = nn_width_channels(L[l].cout, widths[wi]);
            /* forward + backward = 3 GEMMs of 2*cout*cin*k*k*N*Ho*Wo (the stem needs no dx: 2) */
            double fwd = 2.0 * cout * cin * L[l].k * L[l].k * (double)n * ho * ho;
            int passes = L[l].stem ? 2 : 3;
            double t_all[99], t_fwd[99];
            for (int rep = -1; rep < reps; rep++) { /* rep -1: warm-up */
                double t0 = bench_clock_now(g_cpu_clock);
                conv_forward(&d, n, cin, cout, h, h, W, x, y, ws);
                double t1 = bench_clock_now(g_cpu_clock);
                conv_backward(&d, n, cin, cout, h, h, W, x, y, dW, L[l].stem ? NULL : dx, ws);
                double t2 = bench_clock_now(g_cpu_clock);
                if (rep >= 0) { t_all[rep] = t2 - t0; t_fwd[rep] = t1 - t0; }
            }
            qsort(t_all, reps, sizeof(double), cmp_double);
            qsort(t_fwd, reps, sizeof(double), cmp_double);
            double t = t_all[reps / 2];
            row[nrows++] = (typeof(row[0])){l, wi, cin, cout, passes * fwd / 1e9, t, t_all[0], t_fwd[reps / 2]};
            tot_flop[wi] += L[l].count * passes * fwd;
            tot_s[wi] += L[l].count * t;
        }
    }
    double peak2 = g_cpu_clock ? bench_peak(3) : blas_sgemm_rate(2048, 3);
    printf("# sgemm 2048^3: %.1f GFLOP/s before, %.1f after; using %.1f\n", peak, peak2, peak > peak2 ? peak : peak2);
    if (peak2 > peak) peak = peak2;
    printf("%-12s %5s %5s %5s %4s %8s %9s %9s %9s %8s %6s\n", "layer", "width", "cin", "cout", "hw", "GFLOP", "ms",
           "min ms", "fwd ms", "GFLOP/s", "%peak");
    for (int i = 0; i < nrows; i++) {
        double gf = row[i].gflop / row[i].t;
        printf("%-12s %5.2f %5d %5d %4d %8.3f %9.2f %9.2f %9.2f %8.1f %5.0f%%\n", L[row[i].l].name, widths[row[i].wi],
               row[i].cin, row[i].cout, L[row[i].l].h, row[i].gflop, row[i].t * 1e3, row[i].tmin * 1e3,
               row[i].tf * 1e3, gf, 100 * gf / peak);
    }
    printf("# whole network's convolutions (each layer x its count in ResNet-18), forward+backward:\n");
    for (int wi = 0; wi < 4; wi++)
        printf("# width %.2f: %.3f GFLOP in %.1f ms = %.1f GFLOP/s = %.0f%% of sgemm\n", widths[wi],
               tot_flop[wi] / 1e9, tot_s[wi] * 1e3, tot_flop[wi] / tot_s[wi] / 1e9,
               100 * tot_flop[wi] / tot_s[wi] / 1e9 / peak);
    bench_conv_free(&B);
    return 0;
}
