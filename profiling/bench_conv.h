/* profiling/bench_conv.h: the buffers of the convolution benchmarks (conv_bench, stride_bench): one set sized for
 * the largest layer of the run, x, y and W filled with normal noise (the same stream in both programs). */
#ifndef SC_PROFILING_BENCH_CONV_H
#define SC_PROFILING_BENCH_CONV_H
#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "nn/conv.h"
#include <time.h>

/* the benchmarks' clock: the wall clock, or (cpu != 0, CONV_BENCH_CLOCK=cpu) the process CPU clock */
static inline double bench_clock_now(int cpu) {
    if (!cpu) return sc_now();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

typedef struct {
    size_t x, y, w, ws; /* floats */
} bench_conv_size;

/* m grows to hold a layer of n images, cin -> cout channels on an h x h map */
static inline void bench_conv_grow(bench_conv_size *m, int cin, int cout, int k, int stride, int pad, int h, int n) {
    conv_desc d = {cin, cout, k, stride, pad};
    int ho = conv_out_size(h, k, stride, pad);
    size_t x = (size_t)cin * n * h * h, y = (size_t)cout * n * ho * ho, w = (size_t)cin * cout * k * k,
           ws = conv_workspace_floats(&d, n, cin, cout, h, h);
    m->x = x > m->x ? x : m->x; m->y = y > m->y ? y : m->y;
    m->w = w > m->w ? w : m->w; m->ws = ws > m->ws ? ws : m->ws;
}

typedef struct {
    float *x, *dx, *y, *W, *dW, *ws;
} bench_conv_bufs;

static inline bench_conv_bufs bench_conv_alloc(bench_conv_size m) {
    bench_conv_bufs b = {sc_calloc_n(float, m.x), sc_calloc_n(float, m.x), sc_calloc_n(float, m.y),
                         sc_calloc_n(float, m.w), sc_calloc_n(float, m.w), sc_calloc_n(float, m.ws + 1)};
    rng_stream r = rng_stream_make(1, 2, 3, 4);
    for (size_t i = 0; i < m.x; i++) b.x[i] = rng_normal(&r);
    for (size_t i = 0; i < m.y; i++) b.y[i] = rng_normal(&r);
    for (size_t i = 0; i < m.w; i++) b.W[i] = 0.05f * rng_normal(&r);
    return b;
}

static inline void bench_conv_free(bench_conv_bufs *b) {
    sc_free(b->x); sc_free(b->dx); sc_free(b->y); sc_free(b->W); sc_free(b->dW); sc_free(b->ws);
}
#endif
