/* profiling/stride_bench: the strided convolutions of the B1 and B1-small models (3x3/2 pad 1 and the 1x1/2
 * shortcuts, docs/benchmarks.md) at widths 1, .75, .5, .25, each pass timed on its own: forward, backward with dW
 * only, backward with dW and dx. dx is requested the way the model does (resnet.c): the shortcut's as
 * dx += dL/dx where conv_dx_add_applies, else overwritten.
 * usage: stride_bench [threads (2)] [reps (5)] [set: b1 | small | both (both)] [k: 1 | 3 | 0 = both (0)] [full cin (all)]
 * -- one line per layer and width: median ms of each pass, the GFLOP/s of forward + full backward.
 * CONV_BENCH_CLOCK=cpu times with the process CPU clock (as conv_bench): with 1 thread an A/B that survives other
 * jobs on the machine. */
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
    int cin, cout, k, stride, pad, h, n, count; /* count: occurrences per width in a step's forward */
} sb_layer;

static int sb_cpu_clock;

static int sb_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double sb_median(double *t, int reps) {
    qsort(t, reps, sizeof(double), sb_cmp);
    return t[reps / 2];
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, reps = argc > 2 ? atoi(argv[2]) : 5;
    const char *set = argc > 3 ? argv[3] : "both";
    const int konly = argc > 4 ? atoi(argv[4]) : 0, cinonly = argc > 5 ? atoi(argv[5]) : 0;
    if (threads < 1 || reps < 1 || reps > 99 || (strcmp(set, "b1") && strcmp(set, "small") && strcmp(set, "both")) ||
        (konly != 0 && konly != 1 && konly != 3)) {
        fprintf(stderr, "usage: stride_bench [threads>=1] [reps 1..99] [b1|small|both] [1|3|0] [cin]\n");
        return 2;
    }
    const char *clk = getenv("CONV_BENCH_CLOCK");
    sb_cpu_clock = clk && !strcmp(clk, "cpu");
    blas_set_threads(threads);
    sb_layer L[12];
    int nl = 0;
    for (int s = 0; s < 2; s++) {
        if ((s == 0 && !strcmp(set, "small")) || (s == 1 && !strcmp(set, "b1"))) continue;
        const int base = s ? 16 : 64, n = s ? 256 : 64;
        for (int st = 0; st < 3; st++) {
            const int cin = base << st, h = st == 0 ? 28 : st == 1 ? 14 : 7;
            if (cinonly && cin != cinonly) continue;
            if (konly != 3) L[nl++] = (sb_layer){cin, 2 * cin, 1, 2, 0, h, n, 1};
            if (konly != 1) L[nl++] = (sb_layer){cin, 2 * cin, 3, 2, 1, h, n, 1};
        }
    }
    bench_conv_size m = {0, 0, 0, 0};
    for (int l = 0; l < nl; l++)
        bench_conv_grow(&m, L[l].cin, L[l].cout, L[l].k, L[l].stride, L[l].pad, L[l].h, L[l].n);
    bench_conv_bufs B = bench_conv_alloc(m);
    float *x = B.x, *dx = B.dx, *y = B.y, *W = B.W, *dW = B.dW, *ws = B.ws;
    printf("# stride_bench: %s, %d threads, median of %d, %s clock\n", blas_info(), threads, reps,
           sb_cpu_clock ? "CPU" : "wall");
    printf("%-8s %5s %4s %4s %3s %4s %9s %9s %9s %9s %8s\n", "layer", "width", "cin", "cout", "hw", "n", "fwd_ms",
           "dW_ms", "dWdx_ms", "total_ms", "GFLOP/s");
    const float widths[] = {1.f, .75f, .5f, .25f};
    double tot = 0;
    for (int l = 0; l < nl; l++) {
        conv_desc d = {L[l].cin, L[l].cout, L[l].k, L[l].stride, L[l].pad};
        const int h = L[l].h, n = L[l].n, ho = conv_out_size(h, d.k, d.stride, d.pad);
        for (int wi = 0; wi < 4; wi++) {
            const int cin = nn_width_channels(L[l].cin, widths[wi]), cout = nn_width_channels(L[l].cout, widths[wi]);
            const int add = conv_dx_add_applies(&d, cin, cout, h, h);
            double tf[99], tw[99], tx[99];
            for (int rep = -1; rep < reps; rep++) {
                double t0 = bench_clock_now(sb_cpu_clock);
                conv_forward(&d, n, cin, cout, h, h, W, x, y, ws);
                double t1 = bench_clock_now(sb_cpu_clock);
                conv_backward(&d, n, cin, cout, h, h, W, x, y, dW, NULL, ws);
                double t2 = bench_clock_now(sb_cpu_clock);
                conv_backward_add(&d, n, cin, cout, h, h, W, x, NULL, y, dW, dx, add ? dx : NULL, ws);
                double t3 = bench_clock_now(sb_cpu_clock);
                if (rep >= 0) { tf[rep] = t1 - t0; tw[rep] = t2 - t1; tx[rep] = t3 - t2; }
            }
            const double f = sb_median(tf, reps), w = sb_median(tw, reps), b = sb_median(tx, reps);
            const double flop = 6.0 * cout * cin * d.k * d.k * (double)n * ho * ho;
            tot += f + b;
            printf("%dx%d/2%s %5.2f %4d %4d %3d %4d %9.3f %9.3f %9.3f %9.3f %8.1f\n", d.k, d.k, d.k == 1 ? "  " : "  ",
                   widths[wi], cin, cout, h, n, 1e3 * f, 1e3 * w, 1e3 * b, 1e3 * (f + b), flop / (f + b) / 1e9);
        }
    }
    printf("# sum of fwd + dWdx: %.2f ms\n", 1e3 * tot);
    bench_conv_free(&B);
    return 0;
}
