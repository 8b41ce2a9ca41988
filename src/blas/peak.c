/* blas/peak: the machine's FMA peak, the denominator beside the sgemm rate in `slimclr bench`: a register-only
 * loop of independent FMAs at the widest vector width the CPU has (whatever path SLIMCLR_ISA forces) (16 accumulators: latency 4 x 2 FMA ports needs 8, more
 * hides the loop), on `threads` OpenMP threads at once. No memory traffic, so it is what the cores can issue. */
#include "blas/blas.h"
#include "core/cpu.h"
#include "core/timer.h"
#include <immintrin.h>

#define PEAK_ACC 16

__attribute__((target("avx2,fma"))) static float peak_loop256(long iters, float seed) {
    __m256 a[PEAK_ACC];
    const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f * seed);
    for (int j = 0; j < PEAK_ACC; j++) a[j] = _mm256_set1_ps(seed + (float)j);
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < PEAK_ACC; j++) a[j] = _mm256_fmadd_ps(a[j], m, c);
    __m256 s = a[0];
    for (int j = 1; j < PEAK_ACC; j++) s = _mm256_add_ps(s, a[j]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0];
}

__attribute__((target("avx512f"))) static float peak_loop512(long iters, float seed) {
    __m512 a[PEAK_ACC];
    const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f * seed);
    for (int j = 0; j < PEAK_ACC; j++) a[j] = _mm512_set1_ps(seed + (float)j);
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < PEAK_ACC; j++) a[j] = _mm512_fmadd_ps(a[j], m, c);
    __m512 s = a[0];
    for (int j = 1; j < PEAK_ACC; j++) s = _mm512_add_ps(s, a[j]);
    return _mm512_reduce_add_ps(s);
}

double blas_fma_peak(int threads) {
    const int wide = sc_isa_detected() == SC_ISA_AVX512, lanes = wide ? 16 : 8;
    const long iters = 4000000; /* 64 M FMAs per thread: ~15 ms at 2 per cycle and 2 GHz */
    volatile float sink = 0.f;
    double best = 1e30;
    for (int r = 0; r < 4; r++) { /* the first run also wakes the cores up (frequency, the OpenMP team) */
        double t = sc_now();
#pragma omp parallel num_threads(threads) if (threads > 1)
        {
            float v = wide ? peak_loop512(iters, 1.f) : peak_loop256(iters, 1.f);
            sink += v * 0.f;
        }
        t = sc_now() - t;
        if (r > 0 && t < best) best = t;
    }
    (void)sink;
    return 2.0 * PEAK_ACC * lanes * (double)iters * threads / best / 1e9;
}
