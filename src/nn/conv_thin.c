/* nn/conv_thin: thin stride-1 3x3 layers with positions in the vector lanes (see the header).
 * - convt_dw's register tile: 3 output channels x the 3 taps of one kernel row = 9 accumulators, fed per 8
 *   positions by 3 dY loads and 3 unaligned x loads (the row shifted by -1, 0, +1 in the padded plane): 9 FMAs
 *   per 6 loads, no shuffles, no masks except on the last partial vector of a dY row;
 * - convt_forward's: 4 output channels x 16 positions = 8 accumulators, per (input channel, kernel row) 6 x
 *   loads and 12 weight broadcasts for 24 FMAs. */
#include "nn/conv_thin.h"
#include "blas/blas.h"
#include "core/error.h"
#include <stdalign.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#define CONVT_ACC ((size_t)CONVT_COUT_MAX * CONVT_CIN_MAX * 9 * 8)
#define CONVT_TMAX 256 /* threads */
#define CONVT_SLACK 32 /* floats after the padded planes: the last row's vectors read up to 14 past them */
#define CONVT_PADMAX 4096 /* floats of one channel's padded images per sweep */

/* Measured against conv_fused (1 thread, batch 256, process CPU clock, medians of 9 calls, 3-4 runs under load):
 * - weight gradient vs convf_dw's panels (its 8x8 transposes): at 28x28 8 -> 8 channels 5.3-5.5 vs 9.1-10.1 ms,
 *   12 -> 12 8.7-11.8 vs 11.0-14.9, 16 -> 16 19.8-21.1 vs 22.4-24.0; at 14x14 8 -> 8 1.5 vs 2.4, 12 -> 12 2.9-3.2
 *   vs 3.4-3.5, 16 -> 16 equal; 4 channels and the 1-channel stem had im2col + BLIS;
 * - forward vs convf_forward's masked-load 6 x 16 tiles: at 28x28 8 -> 8 4.0-5.4 vs 5.2-8.7 ms, 16 -> 8 9.4 vs
 *   15.8, 4 -> 4 1.5 vs 2.1, 12 -> 12 10.2-10.6 vs 9.3-12.1, 16 -> 16 15.8-18.8 vs 18.7-24.4; at 14x14 8 -> 8
 *   1.4 vs 1.8, 16 -> 16 3.9-4.9 vs 4.0-5.8, 12 -> 12 equal; the stem 1 -> 8 1.6 vs 2.0, 1 -> 16 equal.
 * Rows shorter than a vector lose: at 7x7 (one 7-lane vector per row) 16 -> 16 dW 2.0-2.2 vs 1.3 ms, 16 -> 8
 * forward 1.00 vs 0.92 ms. */
int convt_applies(const conv_desc *d, int cin, int cout, int h, int w) {
#if defined(__AVX2__)
    return d->k == 3 && d->stride == 1 && d->pad == 1 && cin >= 1 && cin <= CONVT_CIN_MAX && cout >= 1 &&
           cout <= CONVT_COUT_MAX && blas_threads() <= CONVT_TMAX && h >= 1 && w >= 8 &&
           (size_t)(h + 2) * (w + 2) <= CONVT_PADMAX; /* one padded image fits the sweep buffer */
#else
    (void)d; (void)cin; (void)cout; (void)h; (void)w;
    return 0;
#endif
}

#if defined(__AVX2__)
/* lane accumulators acc[co][ci][tap][8] of this thread's images, and the padded planes of its current images;
 * static TLS, so the step never allocates */
static _Thread_local alignas(64) float convt_acc[CONVT_ACC];
static _Thread_local alignas(64) float convt_xpad[CONVT_CIN_MAX * CONVT_PADMAX + CONVT_SLACK];

/* xp[ci][i] = x[ci][img0 + i] with a zero border of one row and column ((h+2) x (w+2)), i < nimg: this thread's
 * images only, just before they are used, so the padded planes are written and read in L1/L2 */
static void convt_pad(int n, int img0, int nimg, int cin, int h, int w, const float *x, float *xp) {
    const int w2 = w + 2;
    const size_t hw = (size_t)h * w, pimg = (size_t)(h + 2) * w2;
    for (int ci = 0; ci < cin; ci++)
        for (int i = 0; i < nimg; i++) {
            const float *src = x + ((size_t)ci * n + img0 + i) * hw;
            float *dst = xp + ((size_t)ci * nimg + i) * pimg;
            memset(dst, 0, sizeof(float) * w2);
            for (int r = 0; r < h; r++) {
                float *d = dst + (size_t)(r + 1) * w2;
                d[0] = 0.f;
                memcpy(d + 1, src + (size_t)r * w, sizeof(float) * w);
                d[w + 1] = 0.f;
            }
            memset(dst + (size_t)(h + 1) * w2, 0, sizeof(float) * w2);
        }
}

/* One kernel row (taps dw = -1, 0, +1) of one input channel for MC <= 3 output channels, over nimg images:
 * dyr[i] = dY of channel i at the first image's first position, xr = the padded plane's row oh + 1 + dh of the
 * first image, column 0; acc[i] += the 3 taps' lane sums (24 floats per channel). MC is a constant at each
 * call: the unused accumulators fold away (named variables: an array of them was spilled, see conv_fused). */
static inline __attribute__((always_inline)) void convt_row(const int MC, int nimg, int h, int w, size_t hw,
                                                            size_t pimg, int w2, const float *const *dyr,
                                                            const float *xr, float *const *acc) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00, a20 = a00, a21 = a00,
           a22 = a00;
    const int wf = w & ~7, tail = w - wf;
    const __m256i tm = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const float *d0 = dyr[0], *d1 = MC > 1 ? dyr[1] : d0, *d2 = MC > 2 ? dyr[2] : d0;
    for (int img = 0; img < nimg; img++, d0 += hw, d1 += hw, d2 += hw, xr += pimg)
        for (int oh = 0; oh < h; oh++) {
            const float *xx = xr + (size_t)oh * w2, *e0 = d0 + (size_t)oh * w, *e1 = d1 + (size_t)oh * w,
                        *e2 = d2 + (size_t)oh * w;
            __m256 x0, x1, x2, v;
/* the asm statements keep the loaded vectors in registers: GCC otherwise folds each load into every FMA that
 * uses it (3 loads per vector, load-bound) */
#define CONVT_STEP(LOAD)                                                                                              \
    x0 = _mm256_loadu_ps(xx + j); x1 = _mm256_loadu_ps(xx + j + 1); x2 = _mm256_loadu_ps(xx + j + 2);                \
    __asm__("" : "+x"(x0), "+x"(x1), "+x"(x2));                                                                       \
    v = LOAD(e0 + j); __asm__("" : "+x"(v));                                                                          \
    a00 = _mm256_fmadd_ps(v, x0, a00); a01 = _mm256_fmadd_ps(v, x1, a01); a02 = _mm256_fmadd_ps(v, x2, a02);         \
    if (MC > 1) {                                                                                                     \
        v = LOAD(e1 + j); __asm__("" : "+x"(v));                                                                      \
        a10 = _mm256_fmadd_ps(v, x0, a10); a11 = _mm256_fmadd_ps(v, x1, a11); a12 = _mm256_fmadd_ps(v, x2, a12);     \
    }                                                                                                                 \
    if (MC > 2) {                                                                                                     \
        v = LOAD(e2 + j); __asm__("" : "+x"(v));                                                                      \
        a20 = _mm256_fmadd_ps(v, x0, a20); a21 = _mm256_fmadd_ps(v, x1, a21); a22 = _mm256_fmadd_ps(v, x2, a22);     \
    }
#define CONVT_FULL(p) _mm256_loadu_ps(p)
#define CONVT_TAIL(p) _mm256_maskload_ps(p, tm)
            int j = 0;
            for (; j < wf; j += 8) { CONVT_STEP(CONVT_FULL) }
            /* the row's last positions: dY masked to 0 beyond the row; x is read on into the zero column and the
             * next row (finite values, multiplied by those zeros) */
            if (tail) { CONVT_STEP(CONVT_TAIL) }
#undef CONVT_STEP
#undef CONVT_FULL
#undef CONVT_TAIL
        }
    float *p = acc[0];
    _mm256_store_ps(p, _mm256_add_ps(_mm256_load_ps(p), a00));
    _mm256_store_ps(p + 8, _mm256_add_ps(_mm256_load_ps(p + 8), a01));
    _mm256_store_ps(p + 16, _mm256_add_ps(_mm256_load_ps(p + 16), a02));
    if (MC > 1) {
        p = acc[1];
        _mm256_store_ps(p, _mm256_add_ps(_mm256_load_ps(p), a10));
        _mm256_store_ps(p + 8, _mm256_add_ps(_mm256_load_ps(p + 8), a11));
        _mm256_store_ps(p + 16, _mm256_add_ps(_mm256_load_ps(p + 16), a12));
    }
    if (MC > 2) {
        p = acc[2];
        _mm256_store_ps(p, _mm256_add_ps(_mm256_load_ps(p), a20));
        _mm256_store_ps(p + 8, _mm256_add_ps(_mm256_load_ps(p + 8), a21));
        _mm256_store_ps(p + 16, _mm256_add_ps(_mm256_load_ps(p + 16), a22));
    }
}
#endif

void convt_dw(int n, int cin, int cout, int h, int w, const float *x, const float *dy, float *dW, int ldw) {
#if defined(__AVX2__)
    SC_CHECK(cin >= 1 && cin <= CONVT_CIN_MAX && cout >= 1 && cout <= CONVT_COUT_MAX &&
                 (size_t)(h + 2) * (w + 2) <= CONVT_PADMAX,
             "conv_thin: %d -> %d channels of %dx%d, at most %d -> %d of %d padded floats", cin, cout, h, w,
             CONVT_CIN_MAX, CONVT_COUT_MAX, CONVT_PADMAX);
    const int K = cin * 9, w2 = w + 2, nv = (w + 7) / 8;
    const size_t hw = (size_t)h * w, ncol = (size_t)n * hw, pimg = (size_t)(h + 2) * w2;
    /* images per sweep: ~128 vector steps between the accumulators' flushes (1 image at 28x28, 18 at 7x7), as
     * many as the padded-plane buffer holds; a sweep's dY rows (3 channels) and x plane stay in L1 for the
     * kernel row's 3 passes */
    int chunk = 128 / (h * nv);
    if ((size_t)chunk * pimg > CONVT_PADMAX) chunk = (int)(CONVT_PADMAX / pimg);
    if (chunk < 1) chunk = 1;
    const long nchunk = (n + chunk - 1) / chunk;
    /* output-channel tiles of 3, the remainder as 2 + 2 rather than 3 + 1 (a 1-channel tile is load-bound) */
    int tiles[CONVT_COUT_MAX], ntile = 0;
    for (int rem = cout; rem > 0; rem -= tiles[ntile++]) tiles[ntile] = rem == 4 ? 2 : rem >= 3 ? 3 : rem;
    const int nt = blas_threads();
    float *priv[CONVT_TMAX];
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int tid = 0, tn = 1;
#if defined(_OPENMP)
        tid = omp_get_thread_num(); tn = omp_get_num_threads();
#endif
        float *acc = priv[tid] = convt_acc, *xp = convt_xpad;
        memset(acc, 0, sizeof(float) * (size_t)cout * K * 8);
#pragma omp for schedule(static)
        for (long c = 0; c < nchunk; c++) {
            const int img0 = (int)(c * chunk), nimg = n - img0 < chunk ? n - img0 : chunk;
            const size_t cplane = (size_t)nimg * pimg;
            convt_pad(n, img0, nimg, cin, h, w, x, xp);
            memset(xp + cin * cplane, 0, sizeof(float) * CONVT_SLACK); /* read past the last plane, times 0 */
            for (int ci = 0; ci < cin; ci++) {
                const float *xc = xp + ci * cplane;
                for (int ti = 0, co = 0; ti < ntile; co += tiles[ti++]) {
                    const int mc = tiles[ti];
                    const float *dyr[3];
                    for (int i = 0; i < 3; i++) /* rows past the tile: never read (MC) */
                        dyr[i] = dy + (size_t)(co + (i < mc ? i : 0)) * ncol + (size_t)img0 * hw;
                    for (int kh = 0; kh < 3; kh++) {
                        float *ar[3];
                        for (int i = 0; i < 3; i++)
                            ar[i] = acc + ((size_t)(co + (i < mc ? i : 0)) * K + ci * 9 + kh * 3) * 8;
                        const float *xr = xc + (size_t)kh * w2; /* row oh + kh of the padded plane, column 0 */
                        if (mc == 3) convt_row(3, nimg, h, w, hw, pimg, w2, dyr, xr, ar);
                        else if (mc == 2) convt_row(2, nimg, h, w, hw, pimg, w2, dyr, xr, ar);
                        else convt_row(1, nimg, h, w, hw, pimg, w2, dyr, xr, ar);
                    }
                }
            }
        }
        /* the omp for's barrier: every thread's lanes are final. Each thread sums a range of dW's rows over the
         * threads (in thread order) and the lanes. */
        const int r0 = (int)((long)cout * tid / tn), r1 = (int)((long)cout * (tid + 1) / tn);
        for (int r = r0; r < r1; r++)
            for (int c = 0; c < K; c++) {
                float s = 0.f;
                for (int t = 0; t < tn; t++) {
                    const float *a = priv[t] + ((size_t)r * K + c) * 8;
                    s += ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
                }
                dW[(size_t)r * ldw + c] += s;
            }
    }
#else
    (void)n; (void)cin; (void)cout; (void)h; (void)w; (void)x; (void)dy; (void)dW; (void)ldw;
    sc_fatal("conv_thin: built without AVX2");
#endif
}

#if defined(__AVX2__)
/* One output block (NV vectors of 8 positions of one row) of MC <= 4 output channels: y = sum over cin channels
 * and the 3 kernel rows of W[co][ci][kh][0..2] x the row's 3 shifted loads. x loads shared by the MC channels,
 * weights broadcast from W: per (ci, kh) 3*NV loads + 3*MC broadcasts for 3*MC*NV FMAs (MC 4, NV 2: 18 for 24).
 * xr = the padded plane's row oh (kernel row 0) at the block's first column, planes cplane apart; y0 = channel
 * co's output at the block's first position, channels ldy apart; only the first nlive positions are stored. */
static inline __attribute__((always_inline)) void convt_fwd_block(const int MC, const int NV, int cin, int w2,
                                                                  size_t cplane, const float *xr, const float *W,
                                                                  int ldw, float *y0, size_t ldy, int nlive) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    const float *w0 = W, *w1 = W + (MC > 1 ? ldw : 0), *w2p = W + (MC > 2 ? 2 * ldw : 0),
                *w3 = W + (MC > 3 ? 3 * ldw : 0);
    for (int ci = 0; ci < cin; ci++, xr += cplane)
        for (int kh = 0; kh < 3; kh++) {
            const float *xx = xr + (size_t)kh * w2;
            __m256 x0 = _mm256_loadu_ps(xx), x1 = _mm256_loadu_ps(xx + 1), x2 = _mm256_loadu_ps(xx + 2), x3, x4, x5;
            __asm__("" : "+x"(x0), "+x"(x1), "+x"(x2));
            if (NV > 1) {
                x3 = _mm256_loadu_ps(xx + 8); x4 = _mm256_loadu_ps(xx + 9); x5 = _mm256_loadu_ps(xx + 10);
                __asm__("" : "+x"(x3), "+x"(x4), "+x"(x5));
            }
            const int o = ci * 9 + kh * 3;
            __m256 b;
#define CONVT_FMA3(WP, C0, C1)                                                                                        \
    b = _mm256_broadcast_ss(WP + o); C0 = _mm256_fmadd_ps(b, x0, C0); if (NV > 1) C1 = _mm256_fmadd_ps(b, x3, C1);   \
    b = _mm256_broadcast_ss(WP + o + 1); C0 = _mm256_fmadd_ps(b, x1, C0); if (NV > 1) C1 = _mm256_fmadd_ps(b, x4, C1); \
    b = _mm256_broadcast_ss(WP + o + 2); C0 = _mm256_fmadd_ps(b, x2, C0); if (NV > 1) C1 = _mm256_fmadd_ps(b, x5, C1);
            CONVT_FMA3(w0, c00, c01)
            if (MC > 1) { CONVT_FMA3(w1, c10, c11) }
            if (MC > 2) { CONVT_FMA3(w2p, c20, c21) }
            if (MC > 3) { CONVT_FMA3(w3, c30, c31) }
#undef CONVT_FMA3
        }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i k0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nlive), lane),
                  k1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nlive - 8), lane);
    __m256 r[4][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
    for (int i = 0; i < MC; i++) {
        float *yi = y0 + (size_t)i * ldy;
        if (nlive >= 8 * NV) {
            _mm256_storeu_ps(yi, r[i][0]);
            if (NV > 1) _mm256_storeu_ps(yi + 8, r[i][1]);
        } else {
            _mm256_maskstore_ps(yi, k0, r[i][0]);
            if (NV > 1) _mm256_maskstore_ps(yi + 8, k1, r[i][1]);
        }
    }
}
#endif

void convt_forward(int n, int cin, int cout, int h, int w, const float *W, int ldw, const float *x, float *y) {
#if defined(__AVX2__)
    SC_CHECK(cin >= 1 && cin <= CONVT_CIN_MAX && (size_t)(h + 2) * (w + 2) <= CONVT_PADMAX,
             "conv_thin: %d input channels of %dx%d, at most %d of %d padded floats", cin, h, w, CONVT_CIN_MAX,
             CONVT_PADMAX);
    const int w2 = w + 2;
    const size_t hw = (size_t)h * w, ncol = (size_t)n * hw, pimg = (size_t)(h + 2) * w2;
    /* images per task: as many as the padded-plane buffer holds, at most ~4 KB of output rows per channel */
    int chunk = (int)(CONVT_PADMAX / pimg);
    if ((size_t)chunk * hw > 1024) chunk = (int)(1024 / hw);
    if (chunk < 1) chunk = 1;
    const long nchunk = (n + chunk - 1) / chunk;
    const int nt = blas_threads();
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        float *xp = convt_xpad;
#pragma omp for schedule(static)
        for (long c = 0; c < nchunk; c++) {
            const int img0 = (int)(c * chunk), nimg = n - img0 < chunk ? n - img0 : chunk;
            const size_t cplane = (size_t)nimg * pimg;
            convt_pad(n, img0, nimg, cin, h, w, x, xp);
            memset(xp + cin * cplane, 0, sizeof(float) * CONVT_SLACK);
            for (int co = 0; co < cout; co += 4) {
                const int mc = cout - co < 4 ? cout - co : 4;
                const float *wc = W + (size_t)co * ldw;
                for (int i = 0; i < nimg; i++)
                    for (int oh = 0; oh < h; oh++) {
                        const float *xr = xp + (size_t)i * pimg + (size_t)oh * w2;
                        float *yr = y + (size_t)co * ncol + (size_t)(img0 + i) * hw + (size_t)oh * w;
                        for (int j = 0; j < w; j += 16) {
                            const int live = w - j, nv2 = live > 8;
#define CONVT_FWD(MC) \
    (nv2 ? convt_fwd_block(MC, 2, cin, w2, cplane, xr + j, wc, ldw, yr + j, ncol, live) \
         : convt_fwd_block(MC, 1, cin, w2, cplane, xr + j, wc, ldw, yr + j, ncol, live))
                            if (mc == 4) CONVT_FWD(4);
                            else if (mc == 3) CONVT_FWD(3);
                            else if (mc == 2) CONVT_FWD(2);
                            else CONVT_FWD(1);
#undef CONVT_FWD
                        }
                    }
            }
        }
    }
#else
    (void)n; (void)cin; (void)cout; (void)h; (void)w; (void)W; (void)ldw; (void)x; (void)y;
    sc_fatal("conv_thin: built without AVX2");
#endif
}
