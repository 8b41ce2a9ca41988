/* nn/conv_thin: thin 3x3 layers, stride 1 or 2, with positions in the vector lanes (see the header).
 * Each thread takes whole images. It copies one image of x into zero-padded phase planes: stride 1 has one
 * phase, the padded image ((h+2) x (w+2)); stride 2 has four, P(a,b)[i][j] = x[2i+a-1][2j+b-1], each
 * (ho+1) x (wo+1). An output position q = oh*wq + ow in padded-row order (wq = the planes' row stride) reads
 * tap (kh, kw) at q + off[tap] (off = the tap's phase plane, row and column shift): one unaligned load, no
 * row ends inside the loops, no masks. The wq - wo columns past each output row are computed and dropped.
 * - forward: 4 output channels x 24 positions = 12 accumulators, per tap 3 x loads and 4 weight broadcasts
 *   (weights packed per 4 channels) for 12 FMAs, into thread-local rows, each row's wo outputs then copied;
 * - dx: the same kernel over dY's padded planes, with the flipped transposed weights; stride 2 one phase plane
 *   of dx at a time (its 1, 2 or 4 taps), the phases interleaved into dx at the end;
 * - dW: 4 output channels x the 3 taps of one kernel row = 12 accumulators, per 8 positions 4 dY loads (dY
 *   copied into padded-row order, zero in the dropped columns) and 3 x loads; lanes summed at the end. */
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
#define CONVT_SLACK 32 /* floats after the planes: the last block's loads read up to 26 past them */
#define CONVT_PADMAX 4096 /* floats of one channel's padded image (stride 1) */
#define CONVT_XMAX (CONVT_CIN_MAX * CONVT_PADMAX) /* floats of one image's planes, all channels */
#define CONVT_QB 24 /* forward: positions per register block */
#define CONVT_LDQ (CONVT_PADMAX + CONVT_QB) /* floats per channel of the rows in padded-row order */
#define CONVT_GROUP 16 /* channels of rows held at once (the forward's outputs, dW's dY) */

/* Padded-row order with 12 accumulators beat the first version's per-row loops (9 dW accumulators, 4 x 16
 * forward tiles, masked row tails) on every layer but the 1-channel stem's dW (16 dY planes copied for 3 kernel
 * rows of work), a minor layer; both beat conv_fused on these layers (docs/performance.md, sixth and seventh
 * passes). Stride-1 rows shorter than 8 stay on conv_fused (7x7: not faster there). */

/* The planes of one layer: x's (or dY's, for dx) phase planes of one image, and the output positions. */
typedef struct {
    int s, h, w, ho, wo;
    int wq, rq;    /* row stride and rows of a phase plane: wo + 2 and ho + 2 (stride 1), wo + 1, ho + 1 (2) */
    size_t pph;    /* floats of a phase plane */
    size_t cs;     /* floats of one channel's planes (s*s phase planes) */
    size_t nq;     /* output positions in padded-row order: ho * wq */
    int off[9];    /* tap kh*3+kw of output position q reads the channel's planes at q + off */
} convt_geom;

static void convt_geom_make(int s, int h, int w, convt_geom *g) {
    g->s = s; g->h = h; g->w = w;
    g->ho = conv_out_size(h, 3, s, 1); g->wo = conv_out_size(w, 3, s, 1);
    const int D = 2 / s; /* the taps' largest shift in phase-plane rows and columns */
    g->wq = g->wo + D; g->rq = g->ho + D;
    g->pph = (size_t)g->rq * g->wq;
    g->cs = (size_t)s * s * g->pph;
    g->nq = (size_t)g->ho * g->wq;
    for (int kh = 0; kh < 3; kh++)
        for (int kw = 0; kw < 3; kw++)
            g->off[kh * 3 + kw] = (int)(((kh % s) * s + kw % s) * g->pph) + kh / s * g->wq + kw / s;
}

/* dx of stride 2 by phases: the rows of one dx channel hold its 4 phase planes, each rounded up to a vector,
 * with room for the last block's overrun; dY's planes are padded by one row and column before and after */
static size_t convt_dx_phase_floats(const convt_geom *g) { return ((g->pph + 7) & ~(size_t)7); }
static size_t convt_dx_ldr(const convt_geom *g) { return 4 * convt_dx_phase_floats(g) + CONVT_QB; }
static size_t convt_dx_cs(const convt_geom *g) { return (size_t)(g->ho + 2) * g->wq; }

int convt_applies(const conv_desc *d, int cin, int cout, int h, int w) {
#if defined(__AVX2__)
    if (d->k != 3 || d->pad != 1 || (d->stride != 1 && d->stride != 2) || cin < 1 || cin > CONVT_CIN_MAX ||
        cout < 1 || blas_threads() > CONVT_TMAX || h < 2 || w < 2)
        return 0;
    convt_geom g;
    convt_geom_make(d->stride, h, w, &g);
    if (d->stride == 1) /* at most 16 -> 16 channels (32: conv_fused is as fast); rows of 7: conv_fused */
        return cout <= 16 && w >= 8 && g.pph <= CONVT_PADMAX;
    return cout <= CONVT_COUT_MAX && (size_t)cin * g.cs <= CONVT_XMAX && g.nq + CONVT_QB <= CONVT_LDQ &&
           convt_dx_ldr(&g) <= CONVT_LDQ && (size_t)(cout + 3) / 4 * 4 * convt_dx_cs(&g) <= CONVT_XMAX;
#else
    (void)d; (void)cin; (void)cout; (void)h; (void)w;
    return 0;
#endif
}

#if defined(__AVX2__)
/* per thread (static TLS, so the step never allocates): the lane accumulators acc[co][ci][tap][8] of the weight
 * gradient, the planes of the current image (x's, and dY's in the backward), and CONVT_GROUP channels of rows in
 * padded-row order (the forward's outputs, dx's phase planes) */
static _Thread_local alignas(64) float convt_acc[CONVT_ACC];
static _Thread_local alignas(64) float convt_xpad[CONVT_XMAX + CONVT_SLACK];
static _Thread_local alignas(64) float convt_dpad[CONVT_XMAX + CONVT_SLACK]; /* backward: dY's padded planes */
static _Thread_local alignas(64) float convt_rows[CONVT_GROUP * CONVT_LDQ];

/* dst[0..w) = src[0..w): whole vectors, the last one overlapping (a row is too short for memcpy's call) */
static inline void convt_copy_row(float *dst, const float *src, int w) {
    if (w < 8) {
        for (int j = 0; j < w; j++) dst[j] = src[j];
        return;
    }
    int j = 0;
    for (; j + 8 <= w; j += 8) _mm256_storeu_ps(dst + j, _mm256_loadu_ps(src + j));
    if (j < w) _mm256_storeu_ps(dst + w - 8, _mm256_loadu_ps(src + w - 8));
}

/* the prologue's value of x (conv.h): bn_saved_affine's fmaf, then ReLU with the comparison of relu_forward
 * (max_ps(v, 0) returns 0 for v = -0 and NaN, as v > 0 ? v : 0 does) */
typedef struct {
    __m256 s, mu, h;
    float fs, fmu, fh;
} convt_prev;
static inline convt_prev convt_prev_make(const conv_pre *pre, int c) {
    return (convt_prev){_mm256_set1_ps(pre->s[c]), _mm256_set1_ps(pre->mu[c]), _mm256_set1_ps(pre->h[c]), pre->s[c],
                        pre->mu[c], pre->h[c]};
}
static inline __m256 convt_prev_apply(const convt_prev *p, __m256 x) {
    return _mm256_max_ps(_mm256_fmadd_ps(p->s, _mm256_sub_ps(x, p->mu), p->h), _mm256_setzero_ps());
}
static inline float convt_prev_apply1(const convt_prev *p, float x) {
    const float v = __builtin_fmaf(p->fs, x - p->fmu, p->fh);
    return v > 0.f ? v : 0.f;
}

/* convt_copy_row through the prologue */
static inline void convt_copy_row_pre(float *dst, const float *src, int w, const convt_prev *p) {
    if (w < 8) {
        for (int j = 0; j < w; j++) dst[j] = convt_prev_apply1(p, src[j]);
        return;
    }
    int j = 0;
    for (; j + 8 <= w; j += 8) _mm256_storeu_ps(dst + j, convt_prev_apply(p, _mm256_loadu_ps(src + j)));
    if (j < w) _mm256_storeu_ps(dst + w - 8, convt_prev_apply(p, _mm256_loadu_ps(src + w - 8)));
}

/* The interior of the padded planes of image img of x [c][n][h][w]: stride 1, rows copied one row and column
 * in (row stride wq, channels cs apart); stride 2, row r to phase row (r+1)/2 of P((r+1)%2, .), its even
 * columns to P(., 1), its odd ones to P(., 0) one column in. The zero borders (and the slack after the planes)
 * are written once per call by convt_zero and never touched here. With pre, the values are the prologue's. */
static void convt_fill(int s, int c, int n, int img, int h, int w, int wq, size_t pph, size_t cs, const float *x,
                       const conv_pre *pre, float *xp) {
    const size_t hw = (size_t)h * w;
    for (int ci = 0; ci < c; ci++) {
        const float *src = x + ((size_t)ci * n + img) * hw;
        float *dst = xp + (size_t)ci * cs;
        convt_prev pv = {0};
        if (pre) pv = convt_prev_make(pre, ci);
        if (s == 1) {
            if (pre)
                for (int r = 0; r < h; r++) convt_copy_row_pre(dst + (size_t)(r + 1) * wq + 1, src + (size_t)r * w, w, &pv);
            else
                for (int r = 0; r < h; r++) convt_copy_row(dst + (size_t)(r + 1) * wq + 1, src + (size_t)r * w, w);
            continue;
        }
        for (int r = 0; r < h; r++) {
            const float *sr = src + (size_t)r * w;
            float *p0 = dst + (size_t)((r + 1) % 2 * 2) * pph + (size_t)((r + 1) / 2) * wq, *p1 = p0 + pph;
            const int we = w & ~1; /* 16 columns at a time, the last chunk overlapping at an even column */
            int j = 0;
            if (we >= 16)
                for (int k = 0, last = 0; !last; k += 16) {
                    if (k + 16 >= we) { k = we - 16; last = 1; }
                    __m256 v0 = _mm256_loadu_ps(sr + k), v1 = _mm256_loadu_ps(sr + k + 8);
                    if (pre) { v0 = convt_prev_apply(&pv, v0); v1 = convt_prev_apply(&pv, v1); }
                    const __m256 ev = _mm256_castpd_ps(_mm256_permute4x64_pd(
                                     _mm256_castps_pd(_mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(2, 0, 2, 0))), 0xd8)),
                                 od = _mm256_castpd_ps(_mm256_permute4x64_pd(
                                     _mm256_castps_pd(_mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(3, 1, 3, 1))), 0xd8));
                    _mm256_storeu_ps(p1 + k / 2, ev);
                    _mm256_storeu_ps(p0 + k / 2 + 1, od);
                    j = we;
                }
            for (; j < w; j++) (j % 2 ? p0 : p1)[(j + 1) / 2] = pre ? convt_prev_apply1(&pv, sr[j]) : sr[j];
        }
    }
}

static void convt_zero(float *p, size_t floats) { memset(p, 0, sizeof(float) * floats); }

/* Weight gradient of one kernel row for 4 output channels over nv vectors of positions: acc[i*lda + t*8 + l] +=
 * sum over q of d[i*ldq + q] * xt[q] for the row's 3 taps t (xt = x0, x1, x2: the planes at the tap's offset),
 * the lanes l = q mod 8 kept apart. */
static inline __attribute__((always_inline)) void convt_dw_run(int nv, const float *xa, const float *xb,
                                                               const float *xc, const float *d, size_t ldq,
                                                               float *acc, size_t lda) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00, a20 = a00, a21 = a00,
           a22 = a00, a30 = a00, a31 = a00, a32 = a00;
    const float *d0 = d, *d1 = d + ldq, *d2 = d + 2 * ldq, *d3 = d + 3 * ldq;
    for (int q = 0; q < 8 * nv; q += 8) {
        __m256 x0 = _mm256_loadu_ps(xa + q), x1 = _mm256_loadu_ps(xb + q), x2 = _mm256_loadu_ps(xc + q), v;
        /* keep the loaded vectors in registers: GCC otherwise folds each load into every FMA that uses it */
        __asm__("" : "+x"(x0), "+x"(x1), "+x"(x2));
#define CONVT_DW4(D, A0, A1, A2)                                                                                      \
    v = _mm256_loadu_ps(D + q); __asm__("" : "+x"(v));                                                                 \
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

#if defined(__AVX2__)
/* NV vectors of positions (8 NV, from q) of 4 output channels: y[i][q..] = sum over ci < c and the ntap taps of
 * wp[ci][t][i] x the planes at q + off[t]. xq = channel 0's planes at q, channels cs apart; yq = channel 0's
 * rows at q, channels ldy apart. Per tap 3 x loads and 4 broadcasts for 12 FMAs (NV 3). */
static inline __attribute__((always_inline)) void convt_fwd_block(const int NV, int c, size_t cs, const int *off,
                                                                  int ntap, const float *xq, const float *wp,
                                                                  float *yq, size_t ldy) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00, c20 = c00, c21 = c00,
           c22 = c00, c30 = c00, c31 = c00, c32 = c00;
    for (int ci = 0; ci < c; ci++, xq += cs)
        for (int t = 0; t < ntap; t++, wp += 4) {
            const float *xx = xq + off[t];
            __m256 x0 = _mm256_loadu_ps(xx), x1 = x0, x2 = x0, b;
            if (NV > 1) x1 = _mm256_loadu_ps(xx + 8);
            if (NV > 2) x2 = _mm256_loadu_ps(xx + 16);
            __asm__("" : "+x"(x0), "+x"(x1), "+x"(x2));
#define CONVT_FMA(I, C0, C1, C2)                                                                                      \
    b = _mm256_broadcast_ss(wp + I); C0 = _mm256_fmadd_ps(b, x0, C0);                                                 \
    if (NV > 1) C1 = _mm256_fmadd_ps(b, x1, C1);                                                                      \
    if (NV > 2) C2 = _mm256_fmadd_ps(b, x2, C2);
            CONVT_FMA(0, c00, c01, c02)
            CONVT_FMA(1, c10, c11, c12)
            CONVT_FMA(2, c20, c21, c22)
            CONVT_FMA(3, c30, c31, c32)
#undef CONVT_FMA
        }
    const __m256 r[4][3] = {{c00, c01, c02}, {c10, c11, c12}, {c20, c21, c22}, {c30, c31, c32}};
    for (int i = 0; i < 4; i++)
        for (int v = 0; v < NV; v++) _mm256_storeu_ps(yq + (size_t)i * ldy + 8 * v, r[i][v]);
}

/* rows of 4 ntile output channels over positions [0, nq) (blocks of 24; the last block writes up to 23 past nq):
 * tile t's packed weights at wp + t*c*ntap*4, its rows at yq + 4t*ldy */
static void convt_fwd_rows(int c, size_t cs, const int *off, int ntap, size_t nq, int ntile, const float *xp,
                           const float *wp, float *yq, size_t ldy) {
    for (size_t q = 0; q < nq; q += CONVT_QB) {
        const size_t rem = nq - q;
        for (int t = 0; t < ntile; t++) {
            const float *wt = wp + (size_t)t * c * ntap * 4;
            float *yt = yq + (size_t)4 * t * ldy + q;
            if (rem > 16) convt_fwd_block(3, c, cs, off, ntap, xp + q, wt, yt, ldy);
            else if (rem > 8) convt_fwd_block(2, c, cs, off, ntap, xp + q, wt, yt, ldy);
            else convt_fwd_block(1, c, cs, off, ntap, xp + q, wt, yt, ldy);
        }
    }
}
#endif

void convt_forward(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, int ldw,
                   const float *x, const conv_pre *pre, float *y) {
#if defined(__AVX2__)
    SC_CHECK(convt_applies(d, cin, cout, h, w), "conv_thin: %d -> %d channels of %dx%d, stride %d: not a thin layer",
             cin, cout, h, w, d->stride);
    convt_geom g;
    convt_geom_make(d->stride, h, w, &g);
    const int ntile = (cout + 3) / 4;
    const size_t howo = (size_t)g.ho * g.wo, ncol = (size_t)n * howo;
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
        convt_zero(xp, (size_t)cin * g.cs + CONVT_SLACK);
#pragma omp for schedule(static)
        for (int img = 0; img < n; img++) {
            convt_fill(g.s, cin, n, img, h, w, g.wq, g.pph, g.cs, x, pre, xp);
            for (int c0 = 0; c0 < cout; c0 += CONVT_GROUP) {
                const int gc = cout - c0 < CONVT_GROUP ? cout - c0 : CONVT_GROUP;
                convt_fwd_rows(cin, g.cs, g.off, 9, g.nq, (gc + 3) / 4, xp, wp + (size_t)c0 * cin * 9, yq,
                               CONVT_LDQ);
                for (int co = 0; co < gc; co++) /* each row's wo outputs; the dropped columns stay behind */
                    for (int r = 0; r < g.ho; r++)
                        convt_copy_row(y + (size_t)(c0 + co) * ncol + img * howo + (size_t)r * g.wo,
                                       yq + (size_t)co * CONVT_LDQ + (size_t)r * g.wq, g.wo);
            }
        }
    }
#else
    (void)d; (void)n; (void)cin; (void)cout; (void)h; (void)w; (void)W; (void)ldw; (void)x; (void)pre; (void)y;
    sc_fatal("conv_thin: built without AVX2");
#endif
}

#if defined(__AVX2__)
/* dx row r of one channel from its 4 phase planes (rows ldp apart, planes pp apart): column c comes from
 * P((r+1)%2, (c+1)%2)[(r+1)/2][(c+1)/2]; even columns from P(., 1), odd ones from P(., 0) one column in.
 * add (NULL: none; may be dst): dst = that + add, so no chunk may overlap one already written. */
static void convt_merge_row(float *dst, const float *rows, size_t pp, int wq, int r, int w, const float *add) {
    const float *p0 = rows + (size_t)((r + 1) % 2 * 2) * pp + (size_t)((r + 1) / 2) * wq, *p1 = p0 + pp;
    const int we = w & ~1; /* as convt_fill: 16 columns at a time, without add the last chunk overlapping */
    int c = 0;
    for (int k = 0; k + 16 <= we || (!add && c < we && we >= 16); k += 16) {
        if (k + 16 > we) k = we - 16;
        const __m256 ev = _mm256_loadu_ps(p1 + k / 2), od = _mm256_loadu_ps(p0 + k / 2 + 1);
        const __m256 lo = _mm256_unpacklo_ps(ev, od), hi = _mm256_unpackhi_ps(ev, od);
        __m256 v0 = _mm256_permute2f128_ps(lo, hi, 0x20), v1 = _mm256_permute2f128_ps(lo, hi, 0x31);
        if (add) {
            v0 = _mm256_add_ps(v0, _mm256_loadu_ps(add + k));
            v1 = _mm256_add_ps(v1, _mm256_loadu_ps(add + k + 8));
        }
        _mm256_storeu_ps(dst + k, v0);
        _mm256_storeu_ps(dst + k + 8, v1);
        c = k + 16;
    }
    for (; c < w; c++) dst[c] = (c % 2 ? p0 : p1)[(c + 1) / 2] + (add ? add[c] : 0.f);
}

/* dst[0..w) = src[0..w) + add[0..w) (add may be dst: no overlapping last vector) */
static inline void convt_add_row(float *dst, const float *src, const float *add, int w) {
    int j = 0;
    for (; j + 8 <= w; j += 8) _mm256_storeu_ps(dst + j, _mm256_add_ps(_mm256_loadu_ps(src + j), _mm256_loadu_ps(add + j)));
    for (; j < w; j++) dst[j] = src[j] + add[j];
}
#endif

/* dW and dx per image from the same planes: dY's padded planes (one row and column of zeros before, row stride
 * wq) are both dx's input and, one row and column in, dW's dY in padded-row order (the dropped columns land on
 * the zero borders) */
void convt_backward(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, int ldw,
                    const float *x, const conv_pre *pre, const float *dy, float *dW, float *dx, const float *add) {
#if defined(__AVX2__)
    SC_CHECK(convt_applies(d, cin, cout, h, w), "conv_thin: %d -> %d channels of %dx%d, stride %d: not a thin layer",
             cin, cout, h, w, d->stride);
    convt_geom g;
    convt_geom_make(d->stride, h, w, &g);
    const int K = cin * 9, ntile = (cout + 3) / 4, s = d->stride;
    const size_t hw = (size_t)h * w, nq8 = (g.nq + 7) & ~(size_t)7;
    /* dY's planes: stride 1, the forward geometry of a (cout -> cin) layer on the output grid (the same wq);
     * stride 2, dY padded by one row and column on each side, row stride wq. dx's phase p (stride 2) or its
     * padded plane (stride 1) gathers the taps t whose phase is p: tap (kh, kw) moves dY by (-kh/s, -kw/s). */
    const size_t dcs = s == 1 ? g.pph : convt_dx_cs(&g), pp = convt_dx_phase_floats(&g);
    const size_t ldr = s == 1 ? CONVT_LDQ : convt_dx_ldr(&g);
    const int nph = s * s, D = 2 / s, xtile = (cin + 3) / 4;
    int ntap[4] = {0}, off[4][9];
    alignas(32) float wp[CONVT_CIN_MAX / 4 * CONVT_COUT_MAX * 36]; /* [phase's taps..][tile][co][tap][i] */
    size_t wofs[4];
    for (int p = 0, used = 0; dx && p < nph; p++) {
        int taps[9];
        for (int kh = 0; kh < 3; kh++)
            for (int kw = 0; kw < 3; kw++)
                if ((kh % s) * s + kw % s == p) {
                    taps[ntap[p]] = kh * 3 + kw;
                    off[p][ntap[p]++] = (D - kh / s) * g.wq + (D - kw / s);
                }
        wofs[p] = (size_t)used;
        for (int t = 0; t < xtile; t++) /* W^T of phase p's taps: wp[t][co][j][i] = W[co][(4t+i)*9 + taps[j]] */
            for (int co = 0; co < cout; co++)
                for (int j = 0; j < ntap[p]; j++)
                    for (int i = 0; i < 4; i++)
                        wp[used + (((size_t)t * cout + co) * ntap[p] + j) * 4 + i] =
                            4 * t + i < cin ? W[(size_t)co * ldw + (4 * t + i) * 9 + taps[j]] : 0.f;
        used += xtile * cout * ntap[p] * 4;
    }
    const int nt = blas_threads();
    float *priv[CONVT_TMAX];
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int tid = 0, tn = 1;
#if defined(_OPENMP)
        tid = omp_get_thread_num(); tn = omp_get_num_threads();
#endif
        float *acc = priv[tid] = convt_acc, *xp = convt_xpad, *dp = convt_dpad, *rq = convt_rows;
        memset(acc, 0, sizeof(float) * (size_t)4 * ntile * K * 8);
        convt_zero(xp, (size_t)cin * g.cs + CONVT_SLACK);
        /* a dW tile's rows past cout read the planes past cout (zero) into acc rows that are never read */
        convt_zero(dp, (size_t)4 * ntile * dcs + CONVT_SLACK);
#pragma omp for schedule(static)
        for (int img = 0; img < n; img++) {
            convt_fill(g.s, cin, n, img, h, w, g.wq, g.pph, g.cs, x, pre, xp);
            convt_fill(1, cout, n, img, g.ho, g.wo, g.wq, dcs, dcs, dy, NULL, dp);
            for (int t = 0; t < ntile; t++)
                for (int ci = 0; ci < cin; ci++)
                    for (int kh = 0; kh < 3; kh++) {
                        const float *xc = xp + ci * g.cs;
                        convt_dw_run((int)(nq8 / 8), xc + g.off[kh * 3], xc + g.off[kh * 3 + 1], xc + g.off[kh * 3 + 2],
                                     dp + (size_t)4 * t * dcs + g.wq + 1, dcs,
                                     acc + ((size_t)4 * t * K + ci * 9 + kh * 3) * 8, (size_t)K * 8);
                    }
            if (!dx) continue;
            for (int p = 0; p < nph; p++) /* stride 1: the padded plane's rows 0..h-1, i.e. dx's rows */
                convt_fwd_rows(cout, dcs, off[p], ntap[p], s == 1 ? g.nq : g.pph, xtile, dp, wp + wofs[p],
                               rq + (size_t)p * pp, ldr);
            for (int ci = 0; ci < cin; ci++)
                for (int r = 0; r < h; r++) {
                    const size_t o = ((size_t)ci * n + img) * hw + (size_t)r * w;
                    const float *src = rq + (size_t)ci * ldr + (size_t)r * g.wq;
                    if (s == 2) convt_merge_row(dx + o, rq + (size_t)ci * ldr, pp, g.wq, r, w, add ? add + o : NULL);
                    else if (add) convt_add_row(dx + o, src, add + o, w);
                    else convt_copy_row(dx + o, src, w);
                }
        }
        /* the omp for's barrier: every thread's lanes are final. Each thread sums a range of dW's rows over the
         * threads (in thread order) and the lanes. */
        const int r0 = (int)((long)cout * tid / tn), r1 = (int)((long)cout * (tid + 1) / tn);
        for (int r = r0; r < r1; r++)
            for (int c = 0; c < K; c++) {
                float sum = 0.f;
                for (int t = 0; t < tn; t++) {
                    const float *a = priv[t] + ((size_t)r * K + c) * 8;
                    sum += ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
                }
                dW[(size_t)r * ldw + c] += sum;
            }
    }
#else
    (void)d; (void)n; (void)cin; (void)cout; (void)h; (void)w; (void)W; (void)ldw; (void)x; (void)pre; (void)dy; (void)dW;
    (void)dx; (void)add;
    sc_fatal("conv_thin: built without AVX2");
#endif
}
