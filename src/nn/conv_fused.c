/* nn/conv_fused: convolutions as one GEMM  Y[cout][n*h*w] = W x B  over the whole batch, without the im2col
 * panel. im2col + bli_sgemm writes the K x N panel, then BLIS reads it back and packs it again: two memory
 * passes over the largest operand. Here each thread builds one packed B panel (K rows x NR = 16 columns) straight
 * from the activations and multiplies it by the packed weights with BLIS's micro-kernel, so B is read once and
 * stays in L1/L2. A row of B is one tap of one channel: a source plane shifted by (dh, dw) on the output grid,
 * 0 outside it, i.e. src[q + dh*w + dw] whenever that is inside the image (also across images: CNHW keeps a
 * channel's images contiguous), so a panel row is two masked 8-float loads, masks per panel and tap.
 * - "same" stride-1 layers: the taps of x itself (and their dx, a forward convolution of dY, the same way);
 * - stride-s layers (3x3/2, 1x1/2): x split into its s*s phase planes x[s*i+a][s*j+b] first (one pass), where
 *   every tap is again a plain shift; their dx is one such product per phase, merged back in one pass. */
#include "nn/conv_fused.h"
#include "blas/blas.h"
#include "core/error.h"
#include <stdalign.h>
#include <stdint.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#define CONVF_NR 16 /* columns of convf_ker's tile, and the unit of the column masks (two 8-float vectors) */
#define CONVF_MR 6 /* rows of the forward's register tile (convf_ker) */
#define CONVF_KC_MAX 512 /* rows of a B panel: 512 x 16 floats = 32 KB, L1-sized */
#define CONVF_AW_MAX 32  /* widest activation panel (skx's MR) */
#define CONVF_WW_MAX 16  /* widest weight panel */

/* One packed activation panel per thread; static TLS, so the step never allocates. BLIS's micro-kernel computes
 * an MR x NR tile of C = A x B from a k-major A panel (MR floats per k) and B panel (NR floats per k). The
 * activation panel is a run of q (output positions) columns, k rows of them; the weight panel k-major rows of W.
 * A kernel that prefers rows of C (haswell, zen3: 6 x 16) gets W as A and the activations as B (C = Y, rows
 * cout); one that prefers columns (skx: 32 x 12) the activations as A and W as B (C = Y^T: its columns are Y's
 * rows, q contiguous). Either way the activation panel holds a multiple of 16 columns (aw) and W panels ww rows. */
#define CONVF_PANEL_FLOATS (48 * 1024 / 4)
static _Thread_local alignas(64) float convf_bpanel[CONVF_PANEL_FLOATS];

typedef struct {
    int rows; /* kernel prefers rows of C */
    int aw, ww, kcap; /* activation panel columns, weight panel rows, rows (k) of an activation panel */
} convf_geom;

static convf_geom convf_geom_now(void) {
    convf_geom g = {.rows = blas_ukr_prefers_rows()};
    g.aw = g.rows ? blas_ukr_nr() : blas_ukr_mr();
    g.ww = g.rows ? blas_ukr_mr() : blas_ukr_nr();
    /* 16 columns: 512 rows (32 KB, L1); wider: the context's KC, at most a 48 KB panel */
    const int kc = blas_ukr_kc(), cap = CONVF_PANEL_FLOATS / (g.aw > 0 ? g.aw : 1);
    g.kcap = g.aw <= CONVF_NR ? CONVF_KC_MAX : (kc < cap ? kc : cap) & ~3;
    return g;
}

static int convf_kernel_ok(void) {
#if defined(__AVX2__)
    const convf_geom g = convf_geom_now();
    return g.aw % CONVF_NR == 0 && g.aw <= CONVF_AW_MAX && g.ww <= CONVF_WW_MAX && g.kcap >= 64;
#else
    return 0;
#endif
}

/* the micro-kernel on an m x n block of Y (row stride ldy) from a weight panel (m rows) and an activation panel
 * (n columns), in the kernel's orientation */
static inline void convf_ukr(const convf_geom *g, int m, int n, int k, const float *wp, const float *actp, float beta,
                             float *y, long ldy) {
    if (g->rows) blas_ukr(m, n, k, wp, actp, beta, y, ldy, 1);
    else blas_ukr(n, m, k, actp, wp, beta, y, 1, ldy);
}

int convf_applies(const conv_desc *d) {
    return d->stride == 1 && d->k % 2 == 1 && d->k * d->k <= CONVF_TMAX && 2 * d->pad == d->k - 1 && convf_kernel_ok();
}

int convf_phase_applies(const conv_desc *d, int h, int w) {
    const int s = d->stride, k = d->k;
    /* k > 1: a 1x1/2 shortcut reads one phase; im2col copies just that one, and its GEMM is BLIS's (the phase
     * path was slower there, conv_bench) */
    if (s < 2 || k < 2 || k * k > CONVF_TMAX || d->pad < 0 || k - 1 - d->pad >= s || !convf_kernel_ok()) return 0;
    const int ho = conv_out_size(h, k, s, d->pad), wo = conv_out_size(w, k, s, d->pad);
    return ho > 0 && wo > 0 && (h - 1) / s < ho && (w - 1) / s < wo;
}

void convf_taps_same(const conv_desc *d, convf_taps *tp) {
    const int k = d->k;
    tp->ntaps = k * k;
    for (int t = 0; t < k * k; t++) {
        tp->dh[t] = t / k - d->pad;
        tp->dw[t] = t % k - d->pad;
        tp->phase[t] = 0;
        tp->src[t] = 0;
    }
}

/* floor division and its remainder for a possibly negative numerator */
static int convf_fdiv(int a, int s) { return a >= 0 ? a / s : -((-a + s - 1) / s); }

void convf_taps_phase(const conv_desc *d, int cin, size_t plane_floats, convf_taps *tp) {
    const int k = d->k, s = d->stride;
    tp->ntaps = k * k;
    for (int t = 0; t < k * k; t++) {
        /* input row s*oh + kh - pad = s*(oh + dh) + a, 0 <= a < s */
        int rh = t / k - d->pad, rw = t % k - d->pad;
        int dh = convf_fdiv(rh, s), dw = convf_fdiv(rw, s), a = rh - s * dh, b = rw - s * dw;
        tp->dh[t] = dh;
        tp->dw[t] = dw;
        tp->phase[t] = a * s + b;
        tp->src[t] = (size_t)tp->phase[t] * cin * plane_floats;
    }
}

/* Per-call offset tables of the split and the merge (gather indices, one plane's worth), grown on the first call
 * of a size and then reused: the step does not allocate after its first step. Built by the calling thread before
 * the parallel region, read by all. */
static _Thread_local void *convf_gtab;
static _Thread_local size_t convf_gtab_bytes;

static int32_t *convf_gather_table(size_t len) { return sc_grow(&convf_gtab, &convf_gtab_bytes, sizeof(int32_t) * len); }

/* dst[k] = src[tab[k]] for k < len (0 where tab[k] < 0): 8 lanes per gather, the last vector overlapping (the
 * same values again); len < 8 scalar */
static inline void convf_gather_run(const float *src, const int32_t *tab, int len, float *dst) {
#if defined(__AVX2__)
    if (len >= 8) {
        const __m256i neg = _mm256_set1_epi32(-1);
        for (int k = 0;; k += 8) {
            if (k + 8 > len) k = len - 8;
            const __m256i idx = _mm256_loadu_si256((const __m256i *)(tab + k));
            const __m256 m = _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, neg));
            _mm256_storeu_ps(dst + k, _mm256_mask_i32gather_ps(_mm256_setzero_ps(), src, idx, m, 4));
            if (k + 8 >= len) break;
        }
        return;
    }
#endif
    for (int k = 0; k < len; k++) dst[k] = tab[k] >= 0 ? src[tab[k]] : 0.f;
}

/* Both directions gather from a table (the phase plane of an output float, or the input float of a phase-plane
 * float): one plane of an image at a time, whole vectors: the row-by-row strided
 * copies they replace ran scalar on rows of 7 and took a quarter of such a layer's forward. */
void convf_phase_split(int s, int n, int c, int h, int w, int ho, int wo, const float *x, float *xp) {
    const size_t hw = (size_t)h * w, howo = (size_t)ho * wo, pstride = (size_t)c * n * howo;
    const int np = s * s;
    int32_t *tab = convf_gather_table((size_t)np * howo);
    for (int p = 0; p < np; p++) /* phase p = (a, b): element (i, j) is x[s*i + a][s*j + b], or 0 past h, w */
        for (int i = 0; i < ho; i++)
            for (int j = 0; j < wo; j++) {
                const int y = s * i + p / s, xx = s * j + p % s;
                tab[(size_t)p * howo + (size_t)i * wo + j] = y < h && xx < w ? y * w + xx : -1;
            }
    const int nt = (size_t)c * n * hw >= ((size_t)1 << 15) ? blas_threads() : 1;
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt) if (nt > 1)
    for (int ci = 0; ci < c; ci++)
        for (int img = 0; img < n; img++) {
            const float *src = x + ((size_t)ci * n + img) * hw;
            float *dst = xp + ((size_t)ci * n + img) * howo;
            for (int p = 0; p < np; p++)
                convf_gather_run(src, tab + (size_t)p * howo, (int)howo, dst + (size_t)p * pstride);
        }
}

void convf_phase_merge(int s, int n, int c, int h, int w, int ho, int wo, const float *xp, float *x) {
    const size_t hw = (size_t)h * w, howo = (size_t)ho * wo, pstride = (size_t)c * n * howo;
    const int nt = (size_t)c * n * hw >= ((size_t)1 << 15) ? blas_threads() : 1;
    if ((size_t)(s * s) * pstride > (size_t)INT32_MAX) { /* offsets past int32: row by row */
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt) if (nt > 1)
        for (int ci = 0; ci < c; ci++)
            for (int img = 0; img < n; img++) {
                float *dst = x + ((size_t)ci * n + img) * hw;
                const float *src = xp + ((size_t)ci * n + img) * howo;
                for (int y = 0; y < h; y++)
                    for (int xx = 0; xx < w; xx++)
                        dst[(size_t)y * w + xx] =
                            src[(size_t)((y % s) * s + xx % s) * pstride + (size_t)(y / s) * wo + xx / s];
            }
        return;
    }
    int32_t *tab = convf_gather_table(hw);
    for (int y = 0; y < h; y++) /* x[y][xx] is element (y/s, xx/s) of phase (y%s, xx%s) */
        for (int xx = 0; xx < w; xx++)
            tab[(size_t)y * w + xx] =
                (int32_t)((size_t)((y % s) * s + xx % s) * pstride + (size_t)(y / s) * wo + xx / s);
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt) if (nt > 1)
    for (int ci = 0; ci < c; ci++)
        for (int img = 0; img < n; img++)
            convf_gather_run(xp + ((size_t)ci * n + img) * howo, tab, (int)hw, x + ((size_t)ci * n + img) * hw);
}

/* K blocks of equal size, a multiple of 4 (packed-A panels then stay 32-byte aligned), at most cap */
static int convf_kc(int K, int cap) {
    int nblk = (K + cap - 1) / cap, kc = (K + nblk - 1) / nblk;
    kc = (kc + 3) & ~3;
    return kc > cap ? cap : kc;
}

/* the same for every ISA path (the plan is made once, the path may be switched): the packed weights of any
 * panel height <= 16 (at most cout + 15 rows) and K blocks of >= 64 rows (nblk * kc <= K + 4 * nblk) */
size_t convf_workspace_floats(int K, int cout) {
    return (size_t)(cout + CONVF_WW_MAX - 1) * ((size_t)K + 4 * (size_t)((K + 63) / 64)) + 16;
}

#if defined(__AVX2__)
/* Ap for K block [pc, pc+kc), panel ip: rows ip*mr.. of W, k-major (MR floats per k), rows past cout 0 */
static void convf_pack_a(int cout, int pc, int kc, int mr, const float *W, int ldw, float *ap, int ip) {
    int kcs = (kc + 3) & ~3;
    ap += (size_t)ip * kcs * mr;
    for (int i = 0; i < mr; i++) {
        int r = ip * mr + i;
        float *dst = ap + i;
        if (r < cout)
            for (int p = 0; p < kc; p++) dst[(size_t)p * mr] = W[(size_t)r * ldw + pc + p];
        else
            for (int p = 0; p < kc; p++) dst[(size_t)p * mr] = 0.f;
    }
}
#endif

#if defined(__AVX2__)
/* output coordinates (oh, ow) of the 16 columns of a panel, stepped from one panel to the next (a thread's
 * panels are consecutive) instead of two divisions per column */
typedef struct {
    int h, w;
    long hw, next; /* next: the panel start these coordinates are for, -1 before the first */
    __m256i oh[2], ow[2];
} convf_grid;

static void convf_grid_at(convf_grid *g, long q0) {
    if (q0 == g->next) {
        const __m256i w = _mm256_set1_epi32(g->w), wm1 = _mm256_set1_epi32(g->w - 1),
                      h = _mm256_set1_epi32(g->h), hm1 = _mm256_set1_epi32(g->h - 1);
        for (int v = 0; v < 2; v++) {
            __m256i ow = _mm256_add_epi32(g->ow[v], _mm256_set1_epi32(CONVF_NR)), oh = g->oh[v], c;
            while (_mm256_movemask_epi8(c = _mm256_cmpgt_epi32(ow, wm1))) { /* past the row: next row */
                ow = _mm256_sub_epi32(ow, _mm256_and_si256(c, w));
                oh = _mm256_sub_epi32(oh, c);
            }
            while (_mm256_movemask_epi8(c = _mm256_cmpgt_epi32(oh, hm1))) /* past the image: next image */
                oh = _mm256_sub_epi32(oh, _mm256_and_si256(c, h));
            g->ow[v] = ow;
            g->oh[v] = oh;
        }
    } else {
        alignas(32) int32_t oh[CONVF_NR], ow[CONVF_NR];
        for (int c = 0; c < CONVF_NR; c++) {
            long rem = (q0 + c) % g->hw;
            oh[c] = (int)(rem / g->w);
            ow[c] = (int)(rem % g->w);
        }
        for (int v = 0; v < 2; v++) {
            g->oh[v] = _mm256_load_si256((const __m256i *)(oh + 8 * v));
            g->ow[v] = _mm256_load_si256((const __m256i *)(ow + 8 * v));
        }
    }
    g->next = q0 + CONVF_NR;
}

/* per tap: which of the nn columns read inside their image, and the source offset of column q0 */
static void convf_tap_masks(const convf_grid *g, const convf_taps *tp, int nn, long q0, __m256i msk[][2], long *off) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), m1 = _mm256_set1_epi32(-1),
                  h = _mm256_set1_epi32(g->h), w = _mm256_set1_epi32(g->w);
    __m256i live[2];
    for (int v = 0; v < 2; v++) live[v] = _mm256_cmpgt_epi32(_mm256_set1_epi32(nn - 8 * v), lane);
    for (int t = 0; t < tp->ntaps; t++) {
        const __m256i dh = _mm256_set1_epi32(tp->dh[t]), dw = _mm256_set1_epi32(tp->dw[t]);
        for (int v = 0; v < 2; v++) {
            __m256i ih = _mm256_add_epi32(g->oh[v], dh), iw = _mm256_add_epi32(g->ow[v], dw);
            __m256i ok = _mm256_and_si256(_mm256_cmpgt_epi32(ih, m1), _mm256_cmpgt_epi32(h, ih));
            ok = _mm256_and_si256(ok, _mm256_and_si256(_mm256_cmpgt_epi32(iw, m1), _mm256_cmpgt_epi32(w, iw)));
            msk[t][v] = _mm256_and_si256(ok, live[v]);
        }
        off[t] = (long)tp->src[t] + q0 + (long)tp->dh[t] * g->w + tp->dw[t];
    }
}

#endif

#define CONVF_QC 256             /* reduction block of the fused dW: q columns per packed panel pair */
#define CONVF_DW_AMAX (64 * 1024) /* floats of packed dY per thread (cout 256 at QC = 256) */
#define CONVF_DW_PRIV (32 * 1024) /* floats of a thread's private dW when threads split q (convf_dw_qsplit) */
#define CONVF_DW_TMAX 256         /* threads the q split supports */

#if defined(__AVX2__)
static _Thread_local alignas(64) float convf_apanel[CONVF_DW_AMAX + 8];
static _Thread_local alignas(64) int32_t convf_qmask[CONVF_TMAX][CONVF_QC];
static _Thread_local alignas(64) float convf_dwpriv[CONVF_DW_PRIV];

/* in-register 8x8 transpose: r[i][j] -> r[j][i] */
static inline void convf_tr8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20); r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20); r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31); r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31); r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}
#endif

/* With several threads, each takes a range of the reduction over q into a private dW, summed at the end, when
 * that dW is small (cout x K <= 32k floats: up to 32 -> 64 channels at 3x3): every thread then packs only its own
 * columns of dY, and the work splits evenly however few (ci, tap) panels there are (32 -> 64 at 3x3/2 on skx:
 * 9 panels of 32, split 5 / 4, one thread idle a fifth of the time). Otherwise the threads
 * split the panels and each packs the whole dY. im2col + BLIS remains for K < 16 (the 1-channel stem, K = 9:
 * packing dY costs as much as the 9-row product, and BLIS was faster there), for one thread with fewer than 4
 * panels, and for larger dW with fewer than 4 panels per thread (the private copies would not fit). */
static int convf_dw_qsplit(size_t rows, int K, int nt, int aw) {
    const int npan = (K + aw - 1) / aw;
    return nt > 1 && nt <= CONVF_DW_TMAX && K >= CONVF_NR && rows * npan * aw <= CONVF_DW_PRIV;
}

int convf_dw_applies(int K, int cout) {
    if (!convf_kernel_ok()) return 0;
    const convf_geom g = convf_geom_now();
    const int mr = g.ww, npan = (K + g.aw - 1) / g.aw, nt = blas_threads();
    const size_t rows = (size_t)((cout + mr - 1) / mr) * mr;
    if (rows * 8 > CONVF_DW_AMAX) return 0;
    return npan >= 4 * nt || convf_dw_qsplit(rows, K, nt, g.aw);
}

#if defined(__AVX2__)
/* convf_dw's pieces, per q block of len columns (kb = len rounded up to 8), on the calling thread's buffers */

/* validity of column q0+p at each tap (0 past the last column), 16 columns at a time, into convf_qmask */
static inline void convf_dw_masks(convf_grid *g, const convf_taps *tp, int kk, int len, int kb, size_t q0) {
    for (int p = 0; p < kb; p += CONVF_NR) {
        __m256i msk[CONVF_TMAX][2];
        long off[CONVF_TMAX];
        const int live = len - p < CONVF_NR ? len - p : CONVF_NR;
        convf_grid_at(g, (long)(q0 + p));
        convf_tap_masks(g, tp, live, (long)(q0 + p), msk, off);
        for (int t = 0; t < kk; t++) { /* kb <= qc <= CONVF_QC, a multiple of 8: p + 16 fits the row */
            _mm256_store_si256((__m256i *)(convf_qmask[t] + p), msk[t][0]);
            _mm256_store_si256((__m256i *)(convf_qmask[t] + p + 8), msk[t][1]);
        }
    }
}

static inline void convf_dw_pack_dy(float *ap, const float *dy, int mp, int mr, int cout, int kb, int len,
                                    size_t ncol, size_t q0) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    /* dY panel ip, ap[ip*kb*mr + p*mr + i] = dY[ip*mr + i][q0 + p] (0 past cout or len): 8x8 transposes
     * of 8 columns of 8 of the panel's rows at a time (zero rows past mr), each stored as 8 floats whose
     * tail past mr lands at the start of the next row, which a later store of its first group rewrites:
     * groups of rows last to first, then the next 8 columns (convf_apanel has the slack for the very
     * last one) */
    for (int ip = 0; ip < mp; ip++) {
        float *dst = ap + (size_t)ip * kb * mr;
        for (int p = 0; p < kb; p += 8) {
            const __m256i lm = _mm256_cmpgt_epi32(_mm256_set1_epi32(len - p), lane);
            for (int gi = (mr - 1) / 8; gi >= 0; gi--) {
                __m256 v[8];
                for (int l = 0; l < 8; l++) {
                    const int i = 8 * gi + l;
                    v[l] = i < mr && ip * mr + i < cout
                               ? _mm256_maskload_ps(dy + (size_t)(ip * mr + i) * ncol + q0 + p, lm)
                               : _mm256_setzero_ps();
                }
                convf_tr8(v);
                for (int j = 0; j < 8; j++) _mm256_storeu_ps(dst + (size_t)(p + j) * mr + 8 * gi, v[j]);
            }
        }
    }
}

/* B panel jp: rows r = (ci, tap) of x shifted by the tap, masked, transposed into bp[p][aw] */
static inline void convf_dw_pack_x(float *bp, const convf_taps *tp, const float *x, int jp, int aw, int K, int kk,
                                   int kb, size_t ncol, size_t q0, int w) {
    for (int jb = 0; jb < aw; jb += 8) {
        const float *src[8];
        const int32_t *mk[8];
        for (int l = 0; l < 8; l++) {
            int r = jp * aw + jb + l;
            if (r < K) {
                int ci = r / kk, t = r % kk;
                src[l] = x + tp->src[t] + (size_t)ci * ncol + q0 + (long)tp->dh[t] * w + tp->dw[t];
                mk[l] = convf_qmask[t];
            } else {
                src[l] = NULL; mk[l] = NULL;
            }
        }
        for (int p = 0; p < kb; p += 8) {
            __m256 v[8];
            for (int l = 0; l < 8; l++)
                v[l] = src[l] ? _mm256_maskload_ps(src[l] + p, _mm256_load_si256((const __m256i *)(mk[l] + p)))
                              : _mm256_setzero_ps();
            convf_tr8(v);
            for (int l = 0; l < 8; l++) _mm256_store_ps(bp + (size_t)(p + l) * aw + jb, v[l]);
        }
    }
}

/* every thread sums a range of dW's rows over the private copies, in thread order */
static inline void convf_dw_sum_private(float *dW, int ldw, const float *const *priv, long ldp, int K, int cout,
                                        int tid, int tn) {
    const int r0 = (int)((long)cout * tid / tn), r1 = (int)((long)cout * (tid + 1) / tn);
    for (int r = r0; r < r1; r++) {
        float *out = dW + (size_t)r * ldw;
        for (int t = 0; t < tn; t++) {
            const float *in = priv[t] + (size_t)r * ldp;
#pragma omp simd
            for (int c = 0; c < K; c++) out[c] += in[c];
        }
    }
}
#endif

/* dW[co][r] += sum_q dY[co][q] xs_r[q], r = (ci, tap), xs_r = x[ci] shifted by the tap (0 outside the image):
 * the micro-kernel with the reduction over q. Both operands have q contiguous, so both packings transpose
 * 8x8 blocks in registers. Each thread owns a fixed range of r panels (so dW needs no reduction and B is
 * packed once) and packs its own copy of the dY block (cout x QC, small next to the K x QC of B). */
void convf_dw(const convf_taps *tp, int n, int cin, int cout, int h, int w, const float *x, const float *dy,
              float *dW, int ldw) {
#if defined(__AVX2__)
    const convf_geom geo = convf_geom_now();
    const int kk = tp->ntaps, K = cin * kk, mr = geo.ww, mp = (cout + mr - 1) / mr, aw = geo.aw;
    const size_t hw = (size_t)h * w, ncol = (size_t)n * hw;
    SC_CHECK(ncol < ((size_t)1 << 31) / 2, "conv_fused: %zu columns exceed the 32-bit offsets", ncol);
    int qc = CONVF_DW_AMAX / (mp * mr) & ~7;
    if (qc > CONVF_QC) qc = CONVF_QC;
    const int npan = (K + aw - 1) / aw, nt = blas_threads();
    const int qsplit = convf_dw_qsplit((size_t)mp * mr, K, nt, aw);
    const long ldp = (long)npan * aw; /* row stride of the private dW */
    float *priv[CONVF_DW_TMAX];
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int tid = 0, tn = 1;
#if defined(_OPENMP)
        tid = omp_get_thread_num(); tn = omp_get_num_threads();
#endif
        /* panel split: panels [j0, j1) over every column, into dW. q split: every panel over the q blocks
         * [b0, b1), into this thread's private dW */
        int j0 = (int)((long)npan * tid / tn), j1 = (int)((long)npan * (tid + 1) / tn);
        size_t qb = 0, qe = ncol;
        float *dst = dW;
        long ldd = ldw;
        if (qsplit) {
            const size_t nblk = (ncol + qc - 1) / qc;
            j0 = 0; j1 = npan;
            qb = nblk * tid / tn * qc;
            qe = nblk * (tid + 1) / tn * qc;
            if (qe > ncol) qe = ncol;
            dst = priv[tid] = convf_dwpriv;
            ldd = ldp;
            memset(dst, 0, sizeof(float) * mp * mr * ldp);
        }
        float *ap = convf_apanel, *bp = convf_bpanel;
        convf_grid g = {.h = h, .w = w, .hw = (long)hw, .next = -1};
        for (size_t q0 = qb; q0 < qe && j0 < j1; q0 += qc) {
            const int len = qe - q0 < (size_t)qc ? (int)(qe - q0) : qc, kb = (len + 7) & ~7;
            convf_dw_masks(&g, tp, kk, len, kb, q0);
            convf_dw_pack_dy(ap, dy, mp, mr, cout, kb, len, ncol, q0);
            /* the next q block's lines of this thread's channels and of dY, spread over this block's panels: x and
             * dY stream from L3/DRAM, one window per channel plane, more streams than the prefetchers follow */
            const size_t qn = q0 + qc;
            const int c0 = j0 * aw / kk, c1 = ((j1 * aw < K ? j1 * aw : K) - 1) / kk;
            const int pre_rows = c1 - c0 + 1 + cout, pre_lines = qn < qe ? pre_rows * ((qc + 15) / 16) : 0;
            const int pre_per_panel = (pre_lines + (j1 - j0) - 1) / (j1 - j0);
            int pre_done = 0;
            for (int jp = j0; jp < j1; jp++) {
                const int nn = K - jp * aw < aw ? K - jp * aw : aw;
                for (int e = 0; e < pre_per_panel && pre_done < pre_lines; e++, pre_done++) {
                    const int row = pre_done / ((qc + 15) / 16), line = pre_done % ((qc + 15) / 16);
                    const float *base = row <= c1 - c0 ? x + tp->src[0] + (size_t)(c0 + row) * ncol
                                                       : dy + (size_t)(row - (c1 - c0 + 1)) * ncol;
                    size_t at = qn + (size_t)line * 16;
                    if (at < qe) _mm_prefetch((const char *)(base + at), _MM_HINT_T0);
                }
                convf_dw_pack_x(bp, tp, x, jp, aw, K, kk, kb, ncol, q0, w);
                for (int ip = 0; ip < mp; ip++) {
                    int m = cout - ip * mr < mr ? cout - ip * mr : mr;
                    convf_ukr(&geo, m, nn, kb, ap + (size_t)ip * kb * mr, bp, 1.f, dst + (size_t)ip * mr * ldd + jp * aw,
                              ldd);
                }
            }
        }
        if (qsplit) { /* every thread sums a range of dW's rows over the private copies, in thread order */
#pragma omp barrier
            convf_dw_sum_private(dW, ldw, (const float *const *)priv, ldp, K, cout, tid, tn);
        }
    }
#else
    (void)tp; (void)n; (void)cin; (void)cout; (void)h; (void)w; (void)x; (void)dy; (void)dW; (void)ldw;
    sc_fatal("conv_fused: built without AVX2");
#endif
}

#if defined(__AVX2__)
/* B panel jp of convf_gemm_nt: rows jp*aw.. of B (k contiguous, 0 past n or len), transposed into bp[p][aw] */
static inline void convf_nt_pack_b(float *bp, const float *B, long ldb, int n, int jp, int aw, int kb, int len,
                                   size_t q0) {
    for (int jb = 0; jb < aw; jb += 8)
        for (int p = 0; p < kb; p += 8) {
            const __m256i lm = _mm256_cmpgt_epi32(_mm256_set1_epi32(len - p), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            __m256 v[8];
            for (int l = 0; l < 8; l++) {
                const int r = jp * aw + jb + l;
                v[l] = r < n ? _mm256_maskload_ps(B + (size_t)r * ldb + q0 + p, lm) : _mm256_setzero_ps();
            }
            convf_tr8(v);
            for (int l = 0; l < 8; l++) _mm256_store_ps(bp + (size_t)(p + l) * aw + jb, v[l]);
        }
}
#endif

/* Only for a kernel that prefers columns of C (skx): that context packs both operands of this shape with
 * reference code (bli_sscal2v_skx_ref). Haswell's has assembly packs, and its dW of the thin shortcuts was as fast
 * or faster than this one (stride_bench, avx2 path). */
int convf_gemm_nt_applies(int m) {
    if (!convf_kernel_ok()) return 0;
    const convf_geom g = convf_geom_now();
    return !g.rows && (size_t)((m + g.ww - 1) / g.ww) * g.ww * 8 <= CONVF_DW_AMAX;
}

/* The reduction in blocks of up to CONVF_QC columns: A's block packed once (every row panel), then per B panel
 * the micro-kernel over every A panel. Both packings are 8x8 register transposes, as in convf_dw. */
void convf_gemm_nt(int m, int n, int k, const float *A, long lda, const float *B, long ldb, float beta, float *C,
                   long ldc) {
#if defined(__AVX2__)
    const convf_geom geo = convf_geom_now();
    const int mr = geo.ww, mp = (m + mr - 1) / mr, aw = geo.aw, npan = (n + aw - 1) / aw;
    int qc = CONVF_DW_AMAX / (mp * mr) & ~7;
    if (qc > CONVF_QC) qc = CONVF_QC;
    SC_CHECK(qc >= 8, "conv_fused: %d rows exceed the packed panel (convf_gemm_nt_applies)", m);
    float *ap = convf_apanel, *bp = convf_bpanel;
    if (k <= 0) { /* C = beta C */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) C[(size_t)i * ldc + j] = beta == 0.f ? 0.f : beta * C[(size_t)i * ldc + j];
        return;
    }
    for (int q0 = 0; q0 < k; q0 += qc) {
        const int len = k - q0 < qc ? k - q0 : qc, kb = (len + 7) & ~7;
        const float b = q0 ? 1.f : beta;
        convf_dw_pack_dy(ap, A, mp, mr, m, kb, len, (size_t)lda, (size_t)q0);
        for (int jp = 0; jp < npan; jp++) {
            const int nn = n - jp * aw < aw ? n - jp * aw : aw;
            convf_nt_pack_b(bp, B, ldb, n, jp, aw, kb, len, (size_t)q0);
            for (int ip = 0; ip < mp; ip++) {
                const int mm = m - ip * mr < mr ? m - ip * mr : mr;
                convf_ukr(&geo, mm, nn, kb, ap + (size_t)ip * kb * mr, bp, b, C + (size_t)ip * mr * ldc + jp * aw, ldc);
            }
        }
    }
#else
    (void)m; (void)n; (void)k; (void)A; (void)lda; (void)B; (void)ldb; (void)beta; (void)C; (void)ldc;
    sc_fatal("conv_fused: built without AVX2");
#endif
}

#if defined(__AVX2__)
/* C[0..m) x [0..nn) (row stride ldc) = (acc ? C : 0) + A x B over kc rows starting at row p0, A a packed 6-row
 * panel (k-major), B row p = tap p % kk of channel p / kk read straight from the source planes with the tap's
 * masks: no packed B panel at all. Rows stay channel-major: a channel's taps read the same few lines of one
 * plane back to back (tap-major walked cin planes 4 KB-multiples apart per tap, which share L1 sets: the B loads
 * then missed L1). A 6 x 16 register tile, 12 accumulators. */
static void convf_ker(int kc, int p0, int kk, const float *a, const float *x, size_t chan, const long *off,
                      const __m256i (*msk)[2], float *c, size_t ldc, int m, int nn, int acc) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
           c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    int t = p0 % kk;
    const float *base = x + (size_t)(p0 / kk) * chan;
    for (int p = 0; p < kc; p++, a += CONVF_MR) {
        const float *src = base + off[t];
        const __m256 b0 = _mm256_maskload_ps(src, msk[t][0]), b1 = _mm256_maskload_ps(src + 8, msk[t][1]);
        __m256 av;
        av = _mm256_broadcast_ss(a + 0); c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01);
        av = _mm256_broadcast_ss(a + 1); c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11);
        av = _mm256_broadcast_ss(a + 2); c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21);
        av = _mm256_broadcast_ss(a + 3); c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31);
        av = _mm256_broadcast_ss(a + 4); c40 = _mm256_fmadd_ps(av, b0, c40); c41 = _mm256_fmadd_ps(av, b1, c41);
        av = _mm256_broadcast_ss(a + 5); c50 = _mm256_fmadd_ps(av, b0, c50); c51 = _mm256_fmadd_ps(av, b1, c51);
        if (++t == kk) { t = 0; base += chan; }
    }
    __m256 r[CONVF_MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    if (nn == CONVF_NR) {
        for (int i = 0; i < m; i++) {
            float *ci_ = c + (size_t)i * ldc;
            if (acc) {
                r[i][0] = _mm256_add_ps(r[i][0], _mm256_loadu_ps(ci_));
                r[i][1] = _mm256_add_ps(r[i][1], _mm256_loadu_ps(ci_ + 8));
            }
            _mm256_storeu_ps(ci_, r[i][0]);
            _mm256_storeu_ps(ci_ + 8, r[i][1]);
        }
    } else {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i k0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nn), lane),
                      k1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nn - 8), lane);
        for (int i = 0; i < m; i++) {
            float *ci_ = c + (size_t)i * ldc;
            if (acc) {
                r[i][0] = _mm256_add_ps(r[i][0], _mm256_maskload_ps(ci_, k0));
                r[i][1] = _mm256_add_ps(r[i][1], _mm256_maskload_ps(ci_ + 8, k1));
            }
            _mm256_maskstore_ps(ci_, k0, r[i][0]);
            _mm256_maskstore_ps(ci_ + 8, k1, r[i][1]);
        }
    }
}

/* convf_ker with a 4 x 16 tile (8 accumulators), for the thinnest layers (cout <= 4). A near-copy on purpose:
 * one always_inline kernel with array accumulators and a constant row count spilled them (GCC 12: twice
 * slower) and warned about uninitialised rows. */
static void convf_ker4(int kc, int p0, int kk, const float *a, const float *x, size_t chan, const long *off,
                      const __m256i (*msk)[2], float *c, size_t ldc, int m, int nn, int acc) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    int t = p0 % kk;
    const float *base = x + (size_t)(p0 / kk) * chan;
    for (int p = 0; p < kc; p++, a += 4) {
        const float *src = base + off[t];
        const __m256 b0 = _mm256_maskload_ps(src, msk[t][0]), b1 = _mm256_maskload_ps(src + 8, msk[t][1]);
        __m256 av;
        av = _mm256_broadcast_ss(a + 0); c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01);
        av = _mm256_broadcast_ss(a + 1); c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11);
        av = _mm256_broadcast_ss(a + 2); c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21);
        av = _mm256_broadcast_ss(a + 3); c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31);
        if (++t == kk) { t = 0; base += chan; }
    }
    __m256 r[4][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
    if (nn == CONVF_NR) {
        for (int i = 0; i < m; i++) {
            float *ci_ = c + (size_t)i * ldc;
            if (acc) {
                r[i][0] = _mm256_add_ps(r[i][0], _mm256_loadu_ps(ci_));
                r[i][1] = _mm256_add_ps(r[i][1], _mm256_loadu_ps(ci_ + 8));
            }
            _mm256_storeu_ps(ci_, r[i][0]);
            _mm256_storeu_ps(ci_ + 8, r[i][1]);
        }
    } else {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i k0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nn), lane),
                      k1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nn - 8), lane);
        for (int i = 0; i < m; i++) {
            float *ci_ = c + (size_t)i * ldc;
            if (acc) {
                r[i][0] = _mm256_add_ps(r[i][0], _mm256_maskload_ps(ci_, k0));
                r[i][1] = _mm256_add_ps(r[i][1], _mm256_maskload_ps(ci_ + 8, k1));
            }
            _mm256_maskstore_ps(ci_, k0, r[i][0]);
            _mm256_maskstore_ps(ci_ + 8, k1, r[i][1]);
        }
    }
}
#endif

void convf_forward(const convf_taps *tp, int n, int cin, int cout, int h, int w, const float *W, int ldw,
                   const float *x, float *y, float *ws) {
#if defined(__AVX2__)
    /* Few output rows (cout <= 18): B read straight from x by convf_ker, no packing pass. More: one packed B
     * panel per 16 columns, reused by every row panel through BLIS's micro-kernel; convf_ker would re-read x
     * once per row panel, and x's channel planes, 4 KB-multiples apart, collide in L1 (slower on the deep
     * layers, conv_bench). */
    const int direct = cout <= 18;
    const convf_geom geo = convf_geom_now();
    /* panel columns: 16 for convf_ker, the kernel's activation width for BLIS's (16 or 32: 1 or 2 mask units) */
    const int pw = direct ? CONVF_NR : geo.aw, nh = pw / CONVF_NR;
    const int kk = tp->ntaps, K = cin * kk, kc_max = convf_kc(K, direct ? CONVF_KC_MAX : geo.kcap);
    /* cout <= 4: a 4-row tile (6 would compute 2+ dead rows). Not for 8 or 16: fewer rows per B load and the
     * masked loads' latency cost more than the dead rows (conv_bench) */
    const int mr = !direct ? geo.ww : cout <= 4 ? 4 : CONVF_MR;
    const int mp = (cout + mr - 1) / mr;
    const size_t hw = (size_t)h * w, chan = (size_t)n * hw, ncol = chan;
    SC_CHECK(ncol < ((size_t)1 << 31) / 2, "conv_fused: %zu columns exceed the 32-bit offsets", ncol);
    float *ap = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    const long npan = (long)((ncol + pw - 1) / pw);
    const int nt = blas_threads(), nkb = (K + kc_max - 1) / kc_max;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        /* every K block's weights, packed once per call, shared by the threads (the deep layers' weights are
         * larger than their activations: a serial pack left a core idle) */
#pragma omp for schedule(static)
        for (int b = 0; b < nkb * mp; b++) {
            int pc = b / mp * kc_max, kc = K - pc < kc_max ? K - pc : kc_max;
            convf_pack_a(cout, pc, kc, mr, W, ldw, ap + (size_t)pc * mp * mr, b % mp);
        }
        float *bp = convf_bpanel;
        __m256i msk[CONVF_AW_MAX / CONVF_NR][CONVF_TMAX][2];
        long off[CONVF_AW_MAX / CONVF_NR][CONVF_TMAX];
        convf_grid g = {.h = h, .w = w, .hw = (long)hw, .next = -1};
#pragma omp for schedule(static)
        for (long jp = 0; jp < npan; jp++) {
            const long q0 = jp * pw;
            const int nn = ncol - (size_t)q0 < (size_t)pw ? (int)(ncol - (size_t)q0) : pw;
            for (int hh = 0; hh < nh; hh++) { /* a part past the last column gets all-zero masks */
                const int part = nn - CONVF_NR * hh, live = part < 0 ? 0 : part > CONVF_NR ? CONVF_NR : part;
                convf_grid_at(&g, q0 + CONVF_NR * hh);
                convf_tap_masks(&g, tp, live, q0 + CONVF_NR * hh, msk[hh], off[hh]);
            }
            for (int pc = 0; pc < K; pc += kc_max) {
                const int kc = K - pc < kc_max ? K - pc : kc_max, kcs = (kc + 3) & ~3;
                const float *a = ap + (size_t)pc * mp * mr;
                if (direct) {
                    for (int ip = 0; ip < mp; ip++) {
                        int m = cout - ip * mr < mr ? cout - ip * mr : mr;
                        (mr == 4 ? convf_ker4 : convf_ker)(kc, pc, kk, a + (size_t)ip * kcs * mr, x, chan, off[0],
                                                            (const __m256i(*)[2])msk[0], y + (size_t)ip * mr * ncol + q0,
                                                            ncol, m, nn, pc > 0);
                    }
                    continue;
                }
                /* activation panel rows p = (ci, tap); masked lanes are neither read nor faulted on (vmaskmov) */
                for (int p = 0, t = pc % kk, ci = pc / kk; p < kc; p++) {
                    float *dst = bp + (size_t)p * pw;
                    for (int hh = 0; hh < nh; hh++) {
                        const float *src = x + (size_t)ci * chan + off[hh][t];
                        _mm256_store_ps(dst + CONVF_NR * hh, _mm256_maskload_ps(src, msk[hh][t][0]));
                        _mm256_store_ps(dst + CONVF_NR * hh + 8, _mm256_maskload_ps(src + 8, msk[hh][t][1]));
                    }
                    if (++t == kk) { t = 0; ci++; }
                }
                for (int ip = 0; ip < mp; ip++) {
                    int m = cout - ip * mr < mr ? cout - ip * mr : mr;
                    convf_ukr(&geo, m, nn, kc, a + (size_t)ip * kcs * mr, bp, pc ? 1.f : 0.f,
                              y + (size_t)ip * mr * ncol + q0, (long)ncol);
                }
            }
        }
    }
#else
    (void)tp; (void)n; (void)cin; (void)cout; (void)h; (void)w; (void)W; (void)ldw; (void)x; (void)y; (void)ws;
    sc_fatal("conv_fused: built without AVX2");
#endif
}
