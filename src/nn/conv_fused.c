/* nn/conv_fused: "same" stride-1 convolution (the 3x3 layers of every ResNet stage, and their dx as a forward
 * convolution of dY) as one GEMM  Y[cout][n*h*w] = W x im2col(x)  over the whole batch, without the im2col
 * panel. im2col + bli_sgemm writes the K x N panel, then BLIS reads it back and packs it again: two memory
 * passes over the largest operand. Here each thread builds one packed B panel (K rows x NR = 16 columns) straight
 * from x and multiplies it by the packed weights with BLIS's micro-kernel, so B is read once from x and stays
 * in L1/L2. The gather is cheap because, for stride 1 and same-size output, the input of column q at kernel
 * tap (kh, kw) is x[ci][q + (kh-pad)*w + (kw-pad)] whenever it is inside the image (also across images: CNHW
 * keeps a channel's images contiguous): a row of a panel is two masked 8-float loads, masks per panel and tap.
 * B1 on the 2-core zen3 VM: stage-0 forward (M = 64, K = 576) 90 -> ~125 GFLOP/s. */
#include "nn/conv_fused.h"
#include "blas/blas.h"
#include "core/error.h"
#include <stdalign.h>
#include <stdint.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#define CONVF_NR 16
#define CONVF_KMAX 7
#define CONVF_KC_MAX 512 /* rows of a B panel: 512 x 16 floats = 32 KB, L1-sized */

/* one packed B panel per thread; static TLS, so the step never allocates */
static _Thread_local alignas(64) float convf_bpanel[CONVF_KC_MAX * CONVF_NR];

int convf_applies(const conv_desc *d) {
#if defined(__AVX2__)
    return d->stride == 1 && d->k % 2 == 1 && d->k <= CONVF_KMAX && 2 * d->pad == d->k - 1 &&
           blas_ukr_nr() == CONVF_NR && blas_ukr_mr() <= 16;
#else
    (void)d;
    return 0;
#endif
}

/* K blocks of equal size, a multiple of 4 (packed-A panels then stay 32-byte aligned), at most CONVF_KC_MAX */
static int convf_kc(int K) {
    int nblk = (K + CONVF_KC_MAX - 1) / CONVF_KC_MAX, kc = (K + nblk - 1) / nblk;
    kc = (kc + 3) & ~3;
    return kc > CONVF_KC_MAX ? CONVF_KC_MAX : kc;
}

size_t convf_workspace_floats(const conv_desc *d, int cin, int cout) {
    int mr = blas_ukr_mr(), K = cin * d->k * d->k, kc = convf_kc(K), nblk = (K + kc - 1) / kc;
    return (size_t)((cout + mr - 1) / mr) * mr * nblk * kc + 16;
}

#if defined(__AVX2__)
/* Ap for K block [pc, pc+kc): panel ip holds rows ip*mr.. of W, k-major (MR floats per k), rows past cout 0 */
static void convf_pack_a(int cout, int pc, int kc, int mr, const float *W, int ldw, float *ap) {
    int mp = (cout + mr - 1) / mr, kcs = (kc + 3) & ~3;
    for (int ip = 0; ip < mp; ip++)
        for (int i = 0; i < mr; i++) {
            int r = ip * mr + i;
            float *dst = ap + (size_t)ip * kcs * mr + i;
            if (r < cout)
                for (int p = 0; p < kc; p++) dst[(size_t)p * mr] = W[(size_t)r * ldw + pc + p];
            else
                for (int p = 0; p < kc; p++) dst[(size_t)p * mr] = 0.f;
        }
}
#endif

void convf_forward(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, int ldw,
                   const float *x, float *y, float *ws) {
#if defined(__AVX2__)
    const int k = d->k, kk = k * k, pad = d->pad, K = cin * kk, kc_max = convf_kc(K), mr = blas_ukr_mr();
    const int mp = (cout + mr - 1) / mr;
    const size_t hw = (size_t)h * w, chan = (size_t)n * hw, ncol = chan;
    SC_CHECK(ncol < ((size_t)1 << 31) / 2, "conv_fused: %zu columns exceed the 32-bit offsets", ncol);
    float *ap = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    for (int pc = 0; pc < K; pc += kc_max) { /* every K block's weights, packed once per call */
        int kc = K - pc < kc_max ? K - pc : kc_max;
        convf_pack_a(cout, pc, kc, mr, W, ldw, ap + (size_t)pc * mp * mr);
    }
    const long npan = (long)((ncol + CONVF_NR - 1) / CONVF_NR);
    const int nt = blas_threads();
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        float *bp = convf_bpanel;
        __m256i msk[CONVF_KMAX * CONVF_KMAX][2];
        long off[CONVF_KMAX * CONVF_KMAX];
#pragma omp for schedule(static)
        for (long jp = 0; jp < npan; jp++) {
            const long q0 = jp * CONVF_NR;
            const int nn = ncol - (size_t)q0 < CONVF_NR ? (int)(ncol - (size_t)q0) : CONVF_NR;
            /* per tap: source offset of column q0 and which of the 16 columns read inside their image */
            int oh[CONVF_NR], ow[CONVF_NR];
            for (int c = 0; c < CONVF_NR; c++) {
                size_t rem = (size_t)(q0 + c) % hw;
                oh[c] = (int)(rem / w);
                ow[c] = (int)(rem % w);
            }
            for (int t = 0; t < kk; t++) {
                int dh = t / k - pad, dw = t % k - pad;
                alignas(32) int32_t m[CONVF_NR];
                for (int c = 0; c < CONVF_NR; c++) {
                    int ih = oh[c] + dh, iw = ow[c] + dw;
                    m[c] = c < nn && ih >= 0 && ih < h && iw >= 0 && iw < w ? -1 : 0;
                }
                msk[t][0] = _mm256_load_si256((const __m256i *)m);
                msk[t][1] = _mm256_load_si256((const __m256i *)(m + 8));
                off[t] = q0 + (long)dh * w + dw;
            }
            for (int pc = 0; pc < K; pc += kc_max) {
                int kc = K - pc < kc_max ? K - pc : kc_max;
                /* B panel rows r = (ci, tap); masked lanes are neither read nor faulted on (vmaskmov) */
                int ci = pc / kk, t = pc % kk;
                for (int p = 0; p < kc; p++) {
                    const float *src = x + (size_t)ci * chan + off[t];
                    float *dst = bp + (size_t)p * CONVF_NR;
                    _mm256_store_ps(dst, _mm256_maskload_ps(src, msk[t][0]));
                    _mm256_store_ps(dst + 8, _mm256_maskload_ps(src + 8, msk[t][1]));
                    if (++t == kk) { t = 0; ci++; }
                }
                const float *a = ap + (size_t)pc * mp * mr;
                const int kcs = (kc + 3) & ~3;
                for (int ip = 0; ip < mp; ip++) {
                    int m = cout - ip * mr < mr ? cout - ip * mr : mr;
                    blas_ukr(m, nn, kc, a + (size_t)ip * kcs * mr, bp, pc ? 1.f : 0.f,
                             y + (size_t)ip * mr * ncol + q0, (long)ncol, 1);
                }
            }
        }
    }
#else
    (void)d; (void)n; (void)cin; (void)cout; (void)h; (void)w; (void)W; (void)ldw; (void)x; (void)y; (void)ws;
    sc_fatal("conv_fused: built without AVX2");
#endif
}
