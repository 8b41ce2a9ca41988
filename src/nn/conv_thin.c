/* nn/conv_thin: thin stride-1 3x3 layers with positions in the vector lanes (see the header).
 * Each thread takes whole images: it copies one image's x into zero-padded planes ((h+2) x (w+2), row stride
 * w2 = w+2) and runs over the output positions in padded-row order, q = oh*w2 + ow, so a tap (kh, kw) of q is
 * x[q + kh*w2 + kw]: one unaligned load, no row ends inside the loop, no masks (the 2 columns ow >= w of each row
 * are computed and dropped, 2/w2 of the work).
 * - convt_dw's register tile: 4 output channels x the 3 taps of one kernel row = 12 accumulators, per 8
 *   positions 4 dY loads (dY copied into padded-row order, zero in the dropped columns) and 3 x loads;
 * - convt_forward's: 4 output channels x 24 positions = 12 accumulators, per tap 3 x loads and 4 weight
 *   broadcasts (weights packed per 4 channels) for 12 FMAs; the 24 positions land in a thread-local buffer in
 *   padded-row order and each row's w outputs are copied to y. */
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
#define CONVT_SLACK 32 /* floats after the padded planes: the last block's loads read up to 26 past them */
#define CONVT_PADMAX 4096 /* floats of one channel's padded image */
#define CONVT_QB 24 /* forward: positions per register block */
#define CONVT_LDQ (CONVT_PADMAX + CONVT_QB) /* floats per channel of the padded-row-order rows, rounded up to a block */

/* Measured (1 thread, batch 256, process CPU clock, medians of 7 calls; profiling/README.md, seventh pass):
 * padded-row order with 12 accumulators against the first version's per-row loops (9 dW accumulators, 4 x 16
 * forward tiles, masked row tails), at 28x28: 16 -> 16 forward 14.4 -> 13.0 ms, dW 16.1 -> 12.8; 8 -> 8 4.0 ->
 * 3.8, 4.0 -> 3.6; 4 -> 4 1.20 -> 1.05, 1.17 -> 0.97; at 14x14 16 -> 16 4.9 -> 4.2, 5.6 -> 4.6. The 1-channel
 * stem's dW loses (1.46 -> 1.76 ms: 16 dY planes copied for 3 kernel rows of work), a minor layer. The first
 * version beat conv_fused on these layers (e.g. 16 -> 16 forward 15.8-18.8 vs 18.7-24.4 ms, dW 19.8-21.1 vs
 * 22.4-24.0). Rows shorter than 8 stay on conv_fused (convt_copy_row moves whole vectors). */
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
/* per thread (static TLS, so the step never allocates): the lane accumulators acc[co][ci][tap][8] of the weight
 * gradient, the padded planes of the current image, and 16 channels of rows in padded-row order (the forward's
 * output, the weight gradient's dY) */
static _Thread_local alignas(64) float convt_acc[CONVT_ACC];
static _Thread_local alignas(64) float convt_xpad[CONVT_CIN_MAX * CONVT_PADMAX + CONVT_SLACK];
static _Thread_local alignas(64) float convt_rows[CONVT_COUT_MAX * CONVT_LDQ];

/* dst[0..w) = src[0..w), w >= 8: whole vectors, the last one overlapping (a row is too short for memcpy's call) */
static inline void convt_copy_row(float *dst, const float *src, int w) {
    int j = 0;
    for (; j + 8 <= w; j += 8) _mm256_storeu_ps(dst + j, _mm256_loadu_ps(src + j));
    if (j < w) _mm256_storeu_ps(dst + w - 8, _mm256_loadu_ps(src + w - 8));
}

/* xp[ci] = image img of x[ci] with a zero border of one row and column ((h+2) x w2), channel planes pimg apart */
static void convt_pad(int n, int img, int cin, int h, int w, const float *x, float *xp) {
    const int w2 = w + 2;
    const size_t hw = (size_t)h * w, pimg = (size_t)(h + 2) * w2;
    for (int ci = 0; ci < cin; ci++) {
        const float *src = x + ((size_t)ci * n + img) * hw;
        float *dst = xp + (size_t)ci * pimg;
        memset(dst, 0, sizeof(float) * (w2 + 1));
        for (int r = 0; r < h; r++) {
            float *d = dst + (size_t)(r + 1) * w2 + 1;
            convt_copy_row(d, src + (size_t)r * w, w);
            d[w] = d[w + 1] = 0.f; /* this row's right border and the next row's left one */
        }
        memset(dst + (size_t)(h + 1) * w2 + 1, 0, sizeof(float) * (w2 - 1));
    }
}

/* Weight gradient of one kernel row for 4 output channels over nv vectors of positions: acc[i*lda + kw*8 + l] +=
 * sum over q of d[i*ldq + q] * xr[q + kw], the lanes l = q mod 8 kept apart. xr = the x plane at kernel row kh. */
static inline __attribute__((always_inline)) void convt_dw_run(int nv, const float *xr, const float *d, size_t ldq,
                                                               float *acc, size_t lda) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00, a20 = a00, a21 = a00,
           a22 = a00, a30 = a00, a31 = a00, a32 = a00;
    const float *d0 = d, *d1 = d + ldq, *d2 = d + 2 * ldq, *d3 = d + 3 * ldq;
    for (int q = 0; q < 8 * nv; q += 8) {
        __m256 x0 = _mm256_loadu_ps(xr + q), x1 = _mm256_loadu_ps(xr + q + 1), x2 = _mm256_loadu_ps(xr + q + 2), v;
        /* keep the loaded vectors in registers: GCC otherwise folds each load into every FMA that uses it */
        __asm__("" : "+x"(x0), "+x"(x1), "+x"(x2));
#define CONVT_DW4(D, A0, A1, A2)                                                                                      \
    v = _mm256_load_ps(D + q); __asm__("" : "+x"(v));                                                                 \
    A0 = _mm256_fmadd_ps(v, x0, A0); A1 = _mm256_fmadd_ps(v, x1, A1); A2 = _mm256_fmadd_ps(v, x2, A2);
        CONVT_DW4(d0, a00, a01, a02)
        CONVT_DW4(d1, a10, a11, a12)
        CONVT_DW4(d2, a20, a21, a22)
        CONVT_DW4(d3, a30, a31, a32)
#undef CONVT_DW4
    }
    const __m256 r[4][3] = {{a00, a01, a02}, {a10, a11, a12}, {a20, a21, a22}, {a30, a31, a32}};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 3; k++) {
            float *p = acc + (size_t)i * lda + k * 8;
            _mm256_store_ps(p, _mm256_add_ps(_mm256_load_ps(p), r[i][k]));
        }
}
#endif

void convt_dw(int n, int cin, int cout, int h, int w, const float *x, const float *dy, float *dW, int ldw) {
#if defined(__AVX2__)
    SC_CHECK(cin >= 1 && cin <= CONVT_CIN_MAX && cout >= 1 && cout <= CONVT_COUT_MAX &&
                 (size_t)(h + 2) * (w + 2) <= CONVT_PADMAX,
             "conv_thin: %d -> %d channels of %dx%d, at most %d -> %d of %d padded floats", cin, cout, h, w,
             CONVT_CIN_MAX, CONVT_COUT_MAX, CONVT_PADMAX);
    const int K = cin * 9, w2 = w + 2, ntile = (cout + 3) / 4;
    const size_t hw = (size_t)h * w, ncol = (size_t)n * hw, pimg = (size_t)(h + 2) * w2, nq = (size_t)h * w2,
                 nq8 = (nq + 7) & ~(size_t)7;
    const int nt = blas_threads();
    float *priv[CONVT_TMAX];
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int tid = 0, tn = 1;
#if defined(_OPENMP)
        tid = omp_get_thread_num(); tn = omp_get_num_threads();
#endif
        float *acc = priv[tid] = convt_acc, *xp = convt_xpad, *dq = convt_rows;
        memset(acc, 0, sizeof(float) * (size_t)4 * ntile * K * 8);
        memset(xp + cin * pimg, 0, sizeof(float) * CONVT_SLACK); /* read past the last plane, times 0 */
        for (int co = 0; co < 4 * ntile; co++) /* zero: the dropped columns, the last vector's tail, the channels past cout */
            memset(dq + (size_t)co * CONVT_LDQ, 0, sizeof(float) * nq8);
#pragma omp for schedule(static)
        for (int img = 0; img < n; img++) {
            convt_pad(n, img, cin, h, w, x, xp);
            for (int co = 0; co < cout; co++)
                for (int r = 0; r < h; r++)
                    convt_copy_row(dq + (size_t)co * CONVT_LDQ + (size_t)r * w2, dy + (size_t)co * ncol + img * hw + (size_t)r * w, w);
            for (int t = 0; t < ntile; t++)
                for (int ci = 0; ci < cin; ci++)
                    for (int kh = 0; kh < 3; kh++)
                        convt_dw_run((int)(nq8 / 8), xp + ci * pimg + (size_t)kh * w2, dq + (size_t)4 * t * CONVT_LDQ,
                                     CONVT_LDQ, acc + ((size_t)4 * t * K + ci * 9 + kh * 3) * 8, (size_t)K * 8);
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
/* NV vectors of positions (8 NV, from q) of 4 output channels: y[i][q..] = sum over ci and the 9 taps of
 * wp[ci][tap][i] x the input shifted by the tap. xq = channel 0's padded plane at q (kernel row 0, column 0 of
 * q's window), planes pimg apart; yq = channel 0's rows at q, channels CONVT_LDQ apart. Per tap 3 x loads and 4
 * broadcasts for 12 FMAs (NV 3). */
static inline __attribute__((always_inline)) void convt_fwd_block(const int NV, int cin, size_t pimg, int w2,
                                                                  const float *xq, const float *wp, float *yq) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00, c20 = c00, c21 = c00,
           c22 = c00, c30 = c00, c31 = c00, c32 = c00;
    for (int ci = 0; ci < cin; ci++, xq += pimg)
        for (int kh = 0; kh < 3; kh++, wp += 12) {
            const float *xx = xq + (size_t)kh * w2;
            for (int kw = 0; kw < 3; kw++) {
                __m256 x0 = _mm256_loadu_ps(xx + kw), x1 = x0, x2 = x0, b;
                if (NV > 1) x1 = _mm256_loadu_ps(xx + kw + 8);
                if (NV > 2) x2 = _mm256_loadu_ps(xx + kw + 16);
                __asm__("" : "+x"(x0), "+x"(x1), "+x"(x2));
#define CONVT_FMA(I, C0, C1, C2)                                                                                      \
    b = _mm256_broadcast_ss(wp + kw * 4 + I); C0 = _mm256_fmadd_ps(b, x0, C0);                                        \
    if (NV > 1) C1 = _mm256_fmadd_ps(b, x1, C1);                                                                      \
    if (NV > 2) C2 = _mm256_fmadd_ps(b, x2, C2);
                CONVT_FMA(0, c00, c01, c02)
                CONVT_FMA(1, c10, c11, c12)
                CONVT_FMA(2, c20, c21, c22)
                CONVT_FMA(3, c30, c31, c32)
#undef CONVT_FMA
            }
        }
    const __m256 r[4][3] = {{c00, c01, c02}, {c10, c11, c12}, {c20, c21, c22}, {c30, c31, c32}};
    for (int i = 0; i < 4; i++)
        for (int v = 0; v < NV; v++) _mm256_store_ps(yq + (size_t)i * CONVT_LDQ + 8 * v, r[i][v]);
}
#endif

void convt_forward(int n, int cin, int cout, int h, int w, const float *W, int ldw, const float *x, float *y) {
#if defined(__AVX2__)
    SC_CHECK(cin >= 1 && cin <= CONVT_CIN_MAX && cout >= 1 && cout <= CONVT_COUT_MAX &&
                 (size_t)(h + 2) * (w + 2) <= CONVT_PADMAX,
             "conv_thin: %d -> %d channels of %dx%d, at most %d -> %d of %d padded floats", cin, cout, h, w,
             CONVT_CIN_MAX, CONVT_COUT_MAX, CONVT_PADMAX);
    const int w2 = w + 2, ntile = (cout + 3) / 4;
    const size_t hw = (size_t)h * w, ncol = (size_t)n * hw, pimg = (size_t)(h + 2) * w2, nq = (size_t)h * w2;
    /* wp[t][ci][tap][i] = W[4t + i][ci*9 + tap], 0 past cout: the 4 broadcasts of a tap are adjacent */
    alignas(32) float wp[CONVT_COUT_MAX / 4 * CONVT_CIN_MAX * 36];
    for (int t = 0; t < ntile; t++)
        for (int c = 0; c < cin * 9; c++)
            for (int i = 0; i < 4; i++)
                wp[((size_t)t * cin * 9 + c) * 4 + i] = 4 * t + i < cout ? W[(size_t)(4 * t + i) * ldw + c] : 0.f;
    const int nt = blas_threads();
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        float *xp = convt_xpad, *yq = convt_rows;
        memset(xp + cin * pimg, 0, sizeof(float) * CONVT_SLACK); /* the last block reads past the last plane */
#pragma omp for schedule(static)
        for (int img = 0; img < n; img++) {
            convt_pad(n, img, cin, h, w, x, xp);
            for (size_t q = 0; q < nq; q += CONVT_QB) {
                const size_t rem = nq - q;
                for (int t = 0; t < ntile; t++) {
                    const float *wt = wp + (size_t)t * cin * 36;
                    float *yt = yq + (size_t)4 * t * CONVT_LDQ + q;
                    if (rem > 16) convt_fwd_block(3, cin, pimg, w2, xp + q, wt, yt);
                    else if (rem > 8) convt_fwd_block(2, cin, pimg, w2, xp + q, wt, yt);
                    else convt_fwd_block(1, cin, pimg, w2, xp + q, wt, yt);
                }
            }
            for (int co = 0; co < cout; co++) /* each row's w outputs; the 2 dropped columns stay behind */
                for (int r = 0; r < h; r++)
                    convt_copy_row(y + (size_t)co * ncol + img * hw + (size_t)r * w, yq + (size_t)co * CONVT_LDQ + (size_t)r * w2, w);
        }
    }
#else
    (void)n; (void)cin; (void)cout; (void)h; (void)w; (void)W; (void)ldw; (void)x; (void)y;
    sc_fatal("conv_thin: built without AVX2");
#endif
}
