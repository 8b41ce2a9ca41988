/* nn/conv_winow: the weight side of nn/conv_wino (see nn/conv_winow.h). G as in nn/conv_wino (F(2x2)) and
 * nn/conv_wino4 (F(4x4)). The transforms are written once over a lane type (8-float vectors, or one float for the
 * tails and builds without AVX2), so every element gets the same expression whichever way it is computed.
 * The pack reads a panel row's 3x3 weights with gathers (8 rows of W, or 8 consecutive weights of a row) straight
 * into registers: the former scalar gather into a stack array, read back as vectors, cost 4x the transform (each
 * vector load waited for eight scalar stores). The gradient reads dU 16 input channels (one cache line) per
 * point at a time (the points lie cin*cout floats apart, a multiple of 4 KiB: a line read in two halves was
 * evicted in between) and adds into dW's rows through an 8x8 transpose. */
#include "nn/conv_winow.h"
#include "blas/blas.h"
#include "core/cpu.h"
#include <stdalign.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

/* (u0..u5) = G (g0, g1, g2) of F(4x4) (nn/conv_wino4's points 0, +-1, +-2, infinity) */
#define WINOW_G4(T, g0, g1, g2, u, us)                                                                              \
    do {                                                                                                           \
        const T s_ = (g0) + (g2), t_ = (g0) * (1.f / 24) + (g2) * (1.f / 6), q_ = (g1) * (1.f / 12);               \
        (u)[0] = 0.25f * (g0);                                                                                     \
        (u)[us] = (s_ + (g1)) * (-1.f / 6);                                                                        \
        (u)[2 * (us)] = (s_ - (g1)) * (-1.f / 6);                                                                  \
        (u)[3 * (us)] = t_ + q_;                                                                                   \
        (u)[4 * (us)] = t_ - q_;                                                                                   \
        (u)[5 * (us)] = (g2);                                                                                      \
    } while (0)
/* (r0, r1, r2) = G^T (p0..p5) of F(4x4), p[i] at p[i*ps], r[a] at r[a*rs] */
#define WINOW_GT4(T, p, ps, r, rs)                                                                                 \
    do {                                                                                                           \
        const T s_ = (p)[ps] + (p)[2 * (ps)], t_ = (p)[3 * (ps)] + (p)[4 * (ps)];                                  \
        (r)[0] = 0.25f * (p)[0] - s_ * (1.f / 6) + t_ * (1.f / 24);                                                \
        (r)[rs] = ((p)[2 * (ps)] - (p)[ps]) * (1.f / 6) + ((p)[3 * (ps)] - (p)[4 * (ps)]) * (1.f / 12);            \
        (r)[2 * (rs)] = (t_ - s_) * (1.f / 6) + (p)[5 * (ps)];                                                     \
    } while (0)

/* u[x] = (G g G^T)[x], g[e] the 3x3 weights row-major; u[x] for x < 16 (F(2x2)) or 36 (F(4x4));
 * r[0..8] = G^T p G for the points p[x] */
#define WINOW_DEFINE(SUF, T)                                                                                       \
    static inline void winow_u2##SUF(const T *g, T *u) {                                                           \
        T t[4][3];                                                                                                 \
        for (int c = 0; c < 3; c++) {                                                                              \
            t[0][c] = g[c];                                                                                        \
            t[1][c] = 0.5f * (g[c] + g[3 + c] + g[6 + c]);                                                         \
            t[2][c] = 0.5f * (g[c] - g[3 + c] + g[6 + c]);                                                         \
            t[3][c] = g[6 + c];                                                                                    \
        }                                                                                                          \
        for (int a = 0; a < 4; a++) {                                                                              \
            u[4 * a + 0] = t[a][0];                                                                                \
            u[4 * a + 1] = 0.5f * (t[a][0] + t[a][1] + t[a][2]);                                                   \
            u[4 * a + 2] = 0.5f * (t[a][0] - t[a][1] + t[a][2]);                                                   \
            u[4 * a + 3] = t[a][2];                                                                                \
        }                                                                                                          \
    }                                                                                                              \
    static inline void winow_u4##SUF(const T *g, T *u) {                                                           \
        T t[6][3];                                                                                                 \
        for (int k = 0; k < 3; k++) WINOW_G4(T, g[k], g[3 + k], g[6 + k], &t[0][k], 3);                           \
        for (int a = 0; a < 6; a++) WINOW_G4(T, t[a][0], t[a][1], t[a][2], u + 6 * a, 1);                          \
    }                                                                                                              \
    static inline void winow_gt2##SUF(const T *p, T *r) {                                                          \
        T t[3][4];                                                                                                 \
        for (int j = 0; j < 4; j++) {                                                                              \
            t[0][j] = p[j] + 0.5f * (p[4 + j] + p[8 + j]);                                                         \
            t[1][j] = 0.5f * (p[4 + j] - p[8 + j]);                                                                \
            t[2][j] = 0.5f * (p[4 + j] + p[8 + j]) + p[12 + j];                                                    \
        }                                                                                                          \
        for (int a = 0; a < 3; a++) {                                                                              \
            r[3 * a + 0] = t[a][0] + 0.5f * (t[a][1] + t[a][2]);                                                   \
            r[3 * a + 1] = 0.5f * (t[a][1] - t[a][2]);                                                             \
            r[3 * a + 2] = 0.5f * (t[a][1] + t[a][2]) + t[a][3];                                                   \
        }                                                                                                          \
    }                                                                                                              \
    static inline void winow_gt4##SUF(const T *p, T *r) {                                                          \
        T t[3][6];                                                                                                 \
        for (int j = 0; j < 6; j++) WINOW_GT4(T, p + j, 6, &t[0][j], 6);                                           \
        for (int a = 0; a < 3; a++) WINOW_GT4(T, t[a], 1, r + 3 * a, 1);                                           \
    }

WINOW_DEFINE(_s, float)
#if defined(__AVX2__)
typedef __m256 winow_v;
WINOW_DEFINE(_v, winow_v)
#endif

/* floats ahead of a point's stores that the pack prefetches for writing: without it, stores waiting for their
 * lines filled the store buffer, and the gathers (4 KiB-aliased with them: in the transposed pack each column's
 * gather falls on the same offsets in W's pages) waited on it: 3-5x the time */
#define WINOW_PFD 128

static int winow_threads(size_t work) { return work >= ((size_t)1 << 14) ? blas_threads() : 1; }

/* one panel (nr rows of ww): W's strides ls between its rows, ks between its columns.
 * A column's rows are stored as whole vectors: those past ww fall on the next column's first rows, written next
 * (masked stores, vmaskmovps, took most of the time); only the panel's last column is stored masked. */
static void winow_pack_panel(int m, int k, const float *src, size_t ls, size_t ks, int nr, int ww,
                             float *dst, size_t pxs) {
    const int npt = (m + 2) * (m + 2);
#if defined(__AVX2__)
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i idx = _mm256_mullo_epi32(lane, _mm256_set1_epi32((int)ls));
    for (int kk = 0; kk < k; kk++)
        for (int lg = 0; 8 * lg < ww; lg++) { /* groups of 8 rows: gathered, transformed, stored */
            const __m256 ld = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8 * lg), lane));
            const float *s = src + (size_t)8 * lg * ls + (size_t)kk * ks;
            winow_v g[9], u[36];
            for (int e = 0; e < 9; e++) g[e] = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), s + e, idx, ld, 4);
            if (m == 4) winow_u4_v(g, u);
            else winow_u2_v(g, u);
            float *d = dst + (size_t)kk * ww + 8 * lg;
            if (lg == 0)
                for (int x = 0; x < npt; x++) __builtin_prefetch(d + x * pxs + WINOW_PFD, 1);
            if (kk + 1 < k || 8 * lg + 8 <= ww)
                for (int x = 0; x < npt; x++) _mm256_storeu_ps(d + x * pxs, u[x]);
            else {
                const __m256i st = _mm256_cmpgt_epi32(_mm256_set1_epi32(ww - 8 * lg), lane);
                for (int x = 0; x < npt; x++) _mm256_maskstore_ps(d + x * pxs, st, u[x]);
            }
        }
#else
    for (int kk = 0; kk < k; kk++) /* one row at a time */
        for (int i = 0; i < ww; i++) {
            float g[9] = {0}, u[36];
            for (int e = 0; e < 9 && i < nr; e++) g[e] = src[i * ls + (size_t)kk * ks + e];
            if (m == 4) winow_u4_s(g, u);
            else winow_u2_s(g, u);
            for (int x = 0; x < npt; x++) dst[x * pxs + (size_t)kk * ww + i] = u[x];
        }
#endif
}

#if defined(__AVX2__) && defined(__GNUC__) && !defined(__clang__)
/* the avx512 path's panels of 9-16 rows (skx: 12) as one 16-lane group: half the gathers, transforms and stores
 * of two 8-lane groups (the F(4x4) pack was compute-bound on them) */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw")
typedef __m512 winow_w;
WINOW_DEFINE(_w, winow_w)
static void winow_pack_panel16(int m, int k, const float *src, size_t ls, size_t ks, int nr, int ww,
                               float *dst, size_t pxs) {
    const int npt = (m + 2) * (m + 2);
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)ls));
    const __mmask16 ld = (__mmask16)((1u << nr) - 1), st = (__mmask16)((1u << ww) - 1);
    for (int kk = 0; kk < k; kk++) {
        winow_w g[9], u[36];
        for (int e = 0; e < 9; e++)
            g[e] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), ld, idx, src + (size_t)kk * ks + e, 4);
        if (m == 4) winow_u4_w(g, u);
        else winow_u2_w(g, u);
        float *d = dst + (size_t)kk * ww;
        for (int x = 0; x < npt; x++) __builtin_prefetch(d + x * pxs + WINOW_PFD, 1);
        if (kk + 1 < k) /* as in winow_pack_panel */
            for (int x = 0; x < npt; x++) _mm512_storeu_ps(d + x * pxs, u[x]);
        else
            for (int x = 0; x < npt; x++) _mm512_mask_storeu_ps(d + x * pxs, st, u[x]);
    }
}
#pragma GCC pop_options
#define WINOW_HAVE16 1
#endif

void winow_pack(int m, int cin, int cout, const float *W, int ldw, int ww, int tr, float *P, size_t pxs, size_t ps) {
    const int rows = tr ? cin : cout, k = tr ? cout : cin, nwb = (rows + ww - 1) / ww;
    const size_t ls = tr ? 9 : (size_t)ldw, ks = tr ? (size_t)ldw : 9; /* W's strides along a panel's rows, columns */
    const int nt = winow_threads((size_t)(m + 2) * (m + 2) * cin * cout);
    const int w16 = ww > 8 && ww <= 16 && sc_isa_active() == SC_ISA_AVX512;
    (void)w16;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int wb = 0; wb < nwb; wb++) {
        const int nr = rows - wb * ww < ww ? rows - wb * ww : ww;
        const float *src = W + (size_t)wb * ww * ls;
#if defined(WINOW_HAVE16)
        if (w16) {
            winow_pack_panel16(m, k, src, ls, ks, nr, ww, P + (size_t)wb * ps, pxs);
            continue;
        }
#endif
        winow_pack_panel(m, k, src, ls, ks, nr, ww, P + (size_t)wb * ps, pxs);
    }
}

#if defined(__AVX2__)
/* r[j] = column j of the 8x8 block r (rows in, rows out) */
static inline void winow_tr8(winow_v *r) {
    winow_v t[8], s[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        s[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        s[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        s[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        s[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(s[i], s[4 + i], 0x20);
        r[4 + i] = _mm256_permute2f128_ps(s[i], s[4 + i], 0x31);
    }
}

/* dW of input channels ci .. ci+7 of one output row: g[(ci+j)*9 + e] += r[e] lane j */
static inline void winow_add8(winow_v *r, float *g) {
    alignas(32) float r8[8];
    _mm256_store_ps(r8, r[8]);
    winow_tr8(r);
    for (int j = 0; j < 8; j++) {
        float *d = g + 9 * j;
        _mm256_storeu_ps(d, _mm256_loadu_ps(d) + r[j]);
        d[8] += r8[j];
    }
}
#endif

/* dst[t*p + r] = src[r*ld + t] for r < m, t < kc; rows m .. p-1 zero (a panel of p rows, k-major). 8x8 blocks in
 * AVX registers (the 4x4 SSE blocks this replaced moved half as much per load and store), then 4x4, then scalars. */
void winow_tpack(const float *src, size_t ld, int m, int kc, int p, float *restrict dst) {
    int r = 0;
#if defined(__AVX2__)
    const int kc8 = kc & ~7;
    for (; r + 8 <= m; r += 8) {
        const float *s = src + (size_t)r * ld;
        for (int t = 0; t < kc8; t += 8) {
            winow_v b[8];
            for (int i = 0; i < 8; i++) b[i] = _mm256_loadu_ps(s + i * ld + t);
            winow_tr8(b);
            for (int j = 0; j < 8; j++) _mm256_storeu_ps(dst + (size_t)(t + j) * p + r, b[j]);
        }
        for (int t = kc8; t < kc; t++)
            for (int i = 0; i < 8; i++) dst[(size_t)t * p + r + i] = s[i * ld + t];
    }
    const int kc4 = kc & ~3;
    for (; r + 4 <= m; r += 4) {
        const float *s0 = src + (size_t)r * ld, *s1 = s0 + ld, *s2 = s1 + ld, *s3 = s2 + ld;
        for (int t = 0; t < kc4; t += 4) {
            __m128 a = _mm_loadu_ps(s0 + t), b = _mm_loadu_ps(s1 + t), c = _mm_loadu_ps(s2 + t), d = _mm_loadu_ps(s3 + t);
            _MM_TRANSPOSE4_PS(a, b, c, d);
            float *o = dst + (size_t)t * p + r;
            _mm_storeu_ps(o, a);
            _mm_storeu_ps(o + p, b);
            _mm_storeu_ps(o + 2 * p, c);
            _mm_storeu_ps(o + 3 * p, d);
        }
        for (int t = kc4; t < kc; t++)
            for (int i = 0; i < 4; i++) dst[(size_t)t * p + r + i] = src[(size_t)(r + i) * ld + t];
    }
#endif
    for (; r < m; r++)
        for (int t = 0; t < kc; t++) dst[(size_t)t * p + r] = src[(size_t)r * ld + t];
    for (int t = 0; t < kc && m < p; t++)
        for (int i = m; i < p; i++) dst[(size_t)t * p + i] = 0.f;
}

void winow_grad(int m, int cin, int cout, const float *dU, float *dW, int ldw) {
    const int npt = (m + 2) * (m + 2);
    const size_t xs = (size_t)cin * cout;
    const int nt = winow_threads((size_t)npt * xs);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int co = 0; co < cout; co++) {
        const float *du = dU + (size_t)co * cin;
        float *g = dW + (size_t)co * ldw;
        int ci = 0;
#if defined(__AVX2__)
        for (; ci + 16 <= cin; ci += 16) { /* a cache line of each point */
            winow_v p[2][36], r[2][9];
            for (int x = 0; x < npt; x++) {
                __builtin_prefetch(du + x * xs + ci + 64); /* 4 lines ahead: F(4x4)'s 36 streams outran the
                                                            * hardware prefetcher (docs/performance-isa.md) */
                p[0][x] = _mm256_loadu_ps(du + x * xs + ci);
                p[1][x] = _mm256_loadu_ps(du + x * xs + ci + 8);
            }
            for (int h = 0; h < 2; h++) {
                if (m == 4) winow_gt4_v(p[h], r[h]);
                else winow_gt2_v(p[h], r[h]);
                winow_add8(r[h], g + (size_t)(ci + 8 * h) * 9);
            }
        }
#endif
        for (; ci < cin; ci++) {
            float p[36], r[9];
            for (int x = 0; x < npt; x++) p[x] = du[x * xs + ci];
            if (m == 4) winow_gt4_s(p, r);
            else winow_gt2_s(p, r);
            for (int e = 0; e < 9; e++) g[(size_t)ci * 9 + e] += r[e];
        }
    }
}
