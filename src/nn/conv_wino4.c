/* nn/conv_wino4: the transforms of Winograd F(4x4,3x3) (see nn/conv_wino4.h). Matrices (Lavin & Gray 2016, the
 * interpolation points 0, 1, -1, 2, -2 and infinity):
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 * The backward applies the transposes B and A (the weight side, G g G^T and G^T dU G, is nn/conv_winow's). As
 * in nn/conv_wino, every 2-D transform is two passes of the 1-D one with unit-stride streams in the tile index,
 * which GCC vectorizes, here over a whole block of the fused forward or up to WINO4_BT_MAX tiles of several
 * planes (not one tile row: 2-7 tiles on B1's maps); the rows' columns are split by tile phase (and merged back)
 * with AVX2 shuffles. The 1-D transforms share their common subexpressions. */
#include "nn/conv_wino4.h"
#include <stdalign.h>
#include <string.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

static const float wino4_zero[WINO4_CMAX + 8]; /* a row above or below the map (read in whole vectors) */

/* The 1-D transforms on scalars (macros: GCC vectorizes the tile loops that use them across tiles, which it did not
 * with the same expressions on small arrays passed by pointer). (r0..r5) = B^T (d0..d5): */
#define WINO4_BT(d0, d1, d2, d3, d4, d5, r0, r1, r2, r3, r4, r5)                                                   \
    do {                                                                                                           \
        const float a_ = (d4) - 4.f * (d2), b_ = (d3) - 4.f * (d1), c_ = (d4) - (d2), e_ = 2.f * ((d3) - (d1));    \
        r0 = 4.f * (d0) - 5.f * (d2) + (d4);                                                                       \
        r1 = a_ + b_;                                                                                              \
        r2 = a_ - b_;                                                                                              \
        r3 = c_ + e_;                                                                                              \
        r4 = c_ - e_;                                                                                              \
        r5 = 4.f * (d1) - 5.f * (d3) + (d5);                                                                       \
    } while (0)
/* (y0..y3) = A^T (m0..m5) */
#define WINO4_AT(m0, m1, m2, m3, m4, m5, y0, y1, y2, y3)                                                           \
    do {                                                                                                           \
        const float a_ = (m1) + (m2), b_ = (m1) - (m2), c_ = (m3) + (m4), d_ = (m3) - (m4);                        \
        y0 = (m0) + a_ + c_;                                                                                       \
        y1 = b_ + 2.f * d_;                                                                                        \
        y2 = a_ + 4.f * c_;                                                                                        \
        y3 = b_ + 8.f * d_ + (m5);                                                                                 \
    } while (0)
/* (m0..m5) = A (e0..e3), the transpose of A^T */
#define WINO4_A(e0, e1, e2, e3, m0, m1, m2, m3, m4, m5)                                                            \
    do {                                                                                                           \
        const float s_ = (e0) + (e2), t_ = (e1) + (e3), u_ = (e0) + 4.f * (e2), v_ = 2.f * (e1) + 8.f * (e3);      \
        m0 = (e0);                                                                                                 \
        m1 = s_ + t_;                                                                                              \
        m2 = s_ - t_;                                                                                              \
        m3 = u_ + v_;                                                                                              \
        m4 = u_ - v_;                                                                                              \
        m5 = (e3);                                                                                                 \
    } while (0)

/* r = B^T d */
static inline void wino4_bt(const float *d, float *r) {
    WINO4_BT(d[0], d[1], d[2], d[3], d[4], d[5], r[0], r[1], r[2], r[3], r[4], r[5]);
}

/* d = B v (the transpose of wino4_bt) */
static inline void wino4_b(const float *v, float *d) {
    d[0] = 4.f * v[0];
    d[1] = 4.f * (v[2] - v[1]) + 2.f * (v[4] - v[3]) + 4.f * v[5];
    d[2] = -5.f * v[0] - 4.f * (v[1] + v[2]) - (v[3] + v[4]);
    d[3] = (v[1] - v[2]) + 2.f * (v[3] - v[4]) - 5.f * v[5];
    d[4] = v[0] + v[1] + v[2] + v[3] + v[4];
    d[5] = v[5];
}

/* The phase split: tile t's columns 4t .. 4t+3 of a row, 8 tiles at a time, as 4 vectors of one column each
 * (tile order kept): unpacks and one lane permute, where scalar copies stalled on store forwarding. */
#if defined(__AVX2__)
static inline void wino4_deint(const float *q, __m256 *c0, __m256 *c1, __m256 *c2, __m256 *c3) {
    const __m256i ord = _mm256_setr_epi32(0, 4, 2, 6, 1, 5, 3, 7);
    const __m256 v0 = _mm256_loadu_ps(q), v1 = _mm256_loadu_ps(q + 8), v2 = _mm256_loadu_ps(q + 16);
    const __m256 v3 = _mm256_loadu_ps(q + 24);
    const __m256 t0 = _mm256_unpacklo_ps(v0, v1), t1 = _mm256_unpackhi_ps(v0, v1);
    const __m256 t2 = _mm256_unpacklo_ps(v2, v3), t3 = _mm256_unpackhi_ps(v2, v3);
    *c0 = _mm256_permutevar8x32_ps(_mm256_unpacklo_ps(t0, t2), ord);
    *c1 = _mm256_permutevar8x32_ps(_mm256_unpackhi_ps(t0, t2), ord);
    if (c2) {
        *c2 = _mm256_permutevar8x32_ps(_mm256_unpacklo_ps(t1, t3), ord);
        *c3 = _mm256_permutevar8x32_ps(_mm256_unpackhi_ps(t1, t3), ord);
    }
}
#endif

/* ph[k*ps + t] = q[4t + k] for k < nk (4 or 6: columns 4t+4, 4t+5 are the next tile's first two), t < len; may
 * write up to t < len rounded up to 8 (q readable that far) */
static void wino4_split(const float *q, int len, int nk, float *ph, size_t ps) {
    int t = 0;
#if defined(__AVX2__)
    for (; t < len; t += 8) {
        __m256 c0, c1, c2, c3;
        wino4_deint(q + 4 * t, &c0, &c1, &c2, &c3);
        _mm256_storeu_ps(ph + t, c0);
        _mm256_storeu_ps(ph + ps + t, c1);
        _mm256_storeu_ps(ph + 2 * ps + t, c2);
        _mm256_storeu_ps(ph + 3 * ps + t, c3);
        if (nk > 4) {
            wino4_deint(q + 4 * t + 4, &c0, &c1, NULL, NULL);
            _mm256_storeu_ps(ph + 4 * ps + t, c0);
            _mm256_storeu_ps(ph + 5 * ps + t, c1);
        }
    }
#endif
    for (; t < len; t++)
        for (int k = 0; k < nk; k++) ph[k * ps + t] = q[4 * t + k];
}

/* B^T down the 6 rows of one segment into its columns of the block's rows (tr[i*ld + c], local column c of the
 * segment at c0 + c); 4*len + 2 columns, the last two the next segment's first (see wino4_in_block). Whole
 * 8-column vectors where the rows may be read that far (< end; a scalar tail cost as much as the vectors): past
 * the segment lie the next segment's columns, which it writes after; the zeros outside the map are written last. */
static void wino4_in_rows(const wino4_seg *sg, int h, int w, const float *end, float *tr, size_t ld) {
    const int c0 = 4 * sg->tw0 - 1, nc = 4 * sg->len + 2, a = c0 < 0 ? -c0 : 0, e = w - c0 < nc ? w - c0 : nc;
    const int ne = (e - a + 7) & ~7;
    const float *r[6];
    int whole = 1;
    for (int i = 0; i < 6; i++) {
        const int y = 4 * sg->th - 1 + i;
        r[i] = y >= 0 && y < h ? sg->src + (size_t)y * w + c0 + a : wino4_zero;
        if (r[i] != wino4_zero && r[i] + ne > end) whole = 0;
    }
    const float *restrict r0 = r[0], *restrict r1 = r[1], *restrict r2 = r[2], *restrict r3 = r[3];
    const float *restrict r4 = r[4], *restrict r5 = r[5];
    float *restrict t0 = tr + a, *restrict t1 = t0 + ld, *restrict t2 = t1 + ld, *restrict t3 = t2 + ld;
    float *restrict t4 = t3 + ld, *restrict t5 = t4 + ld;
    if (whole) {
        for (int c8 = 0; c8 < ne; c8 += 8)
#pragma GCC ivdep
            for (int c = c8; c < c8 + 8; c++)
                WINO4_BT(r0[c], r1[c], r2[c], r3[c], r4[c], r5[c], t0[c], t1[c], t2[c], t3[c], t4[c], t5[c]);
    } else {
#pragma GCC ivdep
        for (int c = 0; c < e - a; c++)
            WINO4_BT(r0[c], r1[c], r2[c], r3[c], r4[c], r5[c], t0[c], t1[c], t2[c], t3[c], t4[c], t5[c]);
    }
    for (int i = 0; i < 6; i++) { /* zeros outside the map (a <= 1) */
        if (a) tr[i * ld] = 0.f;
        for (int c = e; c < nc; c++) tr[i * ld + c] = 0.f;
    }
}

/* the second pass: B^T across the columns, from column phase k of row i of tile t at ph[(6*i + k)*ps + t] (zeros
 * from t = nb to nb rounded up to 8), tile t of point xi to v[xi*xs + (t/aw)*pstride + t%aw], zeros to aw */
static void wino4_in_cols(const float *ph, size_t ps, int nb, float *v, size_t xs, int aw, size_t pstride) {
    for (int i = 0; i < 6; i++) { /* B^T across the columns of each tile: point 6*i + j */
        const float *restrict p0 = ph + (size_t)(6 * i) * ps, *restrict p1 = p0 + ps, *restrict p2 = p1 + ps;
        const float *restrict p3 = p2 + ps, *restrict p4 = p3 + ps, *restrict p5 = p4 + ps;
        for (int t0 = 0; t0 < nb; t0 += aw) {
            const int na = nb - t0 < aw ? nb - t0 : aw;
            int n8 = (na + 7) & ~7;
            float *restrict o0 = v + (size_t)(6 * i) * xs + (size_t)(t0 / aw) * pstride, *restrict o1 = o0 + xs;
            float *restrict o2 = o1 + xs, *restrict o3 = o2 + xs, *restrict o4 = o3 + xs, *restrict o5 = o4 + xs;
            if (n8 <= aw) { /* whole vectors: the tiles past nb are zeros, transformed to zeros */
                for (int t8 = 0; t8 < n8; t8 += 8)
#pragma GCC ivdep /* distinct streams (more than GCC's run-time alias checks cover) */
                    for (int t = t8; t < t8 + 8; t++)
                        WINO4_BT(p0[t0 + t], p1[t0 + t], p2[t0 + t], p3[t0 + t], p4[t0 + t], p5[t0 + t], o0[t], o1[t],
                                 o2[t], o3[t], o4[t], o5[t]);
            } else {
#pragma GCC ivdep
                for (int t = 0; t < na; t++)
                    WINO4_BT(p0[t0 + t], p1[t0 + t], p2[t0 + t], p3[t0 + t], p4[t0 + t], p5[t0 + t], o0[t], o1[t],
                             o2[t], o3[t], o4[t], o5[t]);
                n8 = na;
            }
            for (int t = n8; t < aw; t++) o0[t] = o1[t] = o2[t] = o3[t] = o4[t] = o5[t] = 0.f;
        }
    }
}

void wino4_in_block(const wino4_seg *sg, int ns, int h, int w, const float *end, float *v, size_t xs, int aw,
                    size_t pstride) {
    enum { LD = 4 * WINO4_BT_MAX + 40 };
    alignas(32) float tr[6 * LD], ph[36 * WINO4_PS], sv[WINO4_BT_MAX][12];
    int nb = 0;
    for (int j = 0; j < ns; j++) { /* segment j's tiles at nb ..: its columns from 4*nb, overlapping the next's */
        wino4_in_rows(&sg[j], h, w, end, tr + 4 * nb, LD);
        nb += sg[j].len;
        for (int i = 0; i < 6; i++) { /* its last tile's columns 4, 5, before the next segment overwrites them */
            sv[j][2 * i] = tr[i * LD + 4 * nb];
            sv[j][2 * i + 1] = tr[i * LD + 4 * nb + 1];
        }
    }
    for (int i = 0; i < 6; i++) {
        float *p = ph + (size_t)(6 * i) * WINO4_PS;
        for (int c = 4 * nb; c < 4 * nb + 40; c++) tr[i * LD + c] = 0.f; /* tiles past nb: zeros (sv holds 4nb, +1) */
        wino4_split(tr + i * LD, nb, 6, p, WINO4_PS);
        for (int j = 0, t = 0; j < ns; j++) {
            t += sg[j].len;
            p[4 * WINO4_PS + t - 1] = sv[j][2 * i];
            p[5 * WINO4_PS + t - 1] = sv[j][2 * i + 1];
        }
    }
    wino4_in_cols(ph, WINO4_PS, nb, v, xs, aw, pstride);
}

void wino4_in_planes(const float *src, int np, int h, int w, float *v, size_t xs) {
    const int thn = (h + 3) / 4, twn = (w + 3) / 4, gr = WINO4_BT_MAX / twn; /* tile rows per group */
    const size_t hw = (size_t)h * w;
    wino4_seg sg[WINO4_BT_MAX];
    for (int R0 = 0; R0 < np * thn; R0 += gr) { /* tile row R: tile row R % thn of plane R / thn */
        const int nr = np * thn - R0 < gr ? np * thn - R0 : gr;
        for (int r = 0; r < nr; r++) sg[r] = (wino4_seg){src + (R0 + r) / thn * hw, (R0 + r) % thn, 0, twn};
        wino4_in_block(sg, nr, h, w, src + np * hw, v + (size_t)R0 * twn, xs, nr * twn, 0);
    }
}

void wino4_out_tiles(const float *restrict m, size_t xs, int nb, float *restrict o, int os) {
#pragma GCC ivdep
    for (int t = 0; t < nb; t++) {
        float p[6][4];
        for (int i = 0; i < 6; i++) { /* A^T along tile row i */
            const float *q = m + (size_t)(6 * i) * xs + t;
            WINO4_AT(q[0], q[xs], q[2 * xs], q[3 * xs], q[4 * xs], q[5 * xs], p[i][0], p[i][1], p[i][2], p[i][3]);
        }
        for (int k = 0; k < 4; k++) /* A^T down output column k */
            WINO4_AT(p[0][k], p[1][k], p[2][k], p[3][k], p[4][k], p[5][k], o[(size_t)k * os + t],
                     o[(size_t)(4 + k) * os + t], o[(size_t)(8 + k) * os + t], o[(size_t)(12 + k) * os + t]);
    }
}

void wino4_dout_planes(const float *dy, int np, int h, int w, float *dm, size_t xs) {
    const int thn = (h + 3) / 4, twn = (w + 3) / 4, gr = WINO4_BT_MAX / twn; /* tile rows per group */
    alignas(32) float rb[4 * WINO4_BT_MAX + 32]; /* row r of each tile row of a group, zeros past the crop */
    alignas(32) float e[4][4][WINO4_PS], p[4][6][WINO4_PS]; /* a group's rows r by column phase; A along them */
    for (int R0 = 0; R0 < np * thn; R0 += gr) { /* tile row R: tile row R % thn of plane R / thn */
        const int nr = np * thn - R0 < gr ? np * thn - R0 : gr, nt = nr * twn;
        for (int r = 0; r < 4; r++) {
            for (int q = 0; q < nr; q++) {
                const int y = 4 * ((R0 + q) % thn) + r;
                float *restrict rq = rb + 4 * q * twn; /* loops, not memcpy calls: rows of a few floats */
                const float *restrict row = dy + ((size_t)(R0 + q) / thn * h + y) * w;
                const int nw = y < h ? w : 0;
                for (int c = 0; c < nw; c++) rq[c] = row[c];
                for (int c = nw; c < 4 * twn; c++) rq[c] = 0.f;
            }
            wino4_split(rb, nt, 4, e[r][0], WINO4_PS);
            const float *restrict e0 = e[r][0], *restrict e1 = e[r][1], *restrict e2 = e[r][2], *restrict e3 = e[r][3];
            float *restrict q0 = p[r][0], *restrict q1 = p[r][1], *restrict q2 = p[r][2], *restrict q3 = p[r][3];
            float *restrict q4 = p[r][4], *restrict q5 = p[r][5];
#pragma GCC ivdep
            for (int t = 0; t < nt; t++)
                WINO4_A(e0[t], e1[t], e2[t], e3[t], q0[t], q1[t], q2[t], q3[t], q4[t], q5[t]);
        }
        for (int j = 0; j < 6; j++) { /* A down the rows: point 6*i + j */
            float *restrict o0 = dm + (size_t)j * xs + (size_t)R0 * twn, *restrict o1 = o0 + 6 * xs;
            float *restrict o2 = o1 + 6 * xs, *restrict o3 = o2 + 6 * xs, *restrict o4 = o3 + 6 * xs;
            float *restrict o5 = o4 + 6 * xs;
            const float *restrict e0 = p[0][j], *restrict e1 = p[1][j], *restrict e2 = p[2][j], *restrict e3 = p[3][j];
#pragma GCC ivdep
            for (int t = 0; t < nt; t++)
                WINO4_A(e0[t], e1[t], e2[t], e3[t], o0[t], o1[t], o2[t], o3[t], o4[t], o5[t]);
        }
    }
}

/* p[4t + k] = c_k[t] for t < len (the inverse of the phase split; 8 tiles at a time) */
static void wino4_merge(const float *c0, const float *c1, const float *c2, const float *c3, int len, float *p) {
    int t = 0;
#if defined(__AVX2__)
    for (; t + 8 <= len; t += 8) {
        const __m256 a = _mm256_loadu_ps(c0 + t), b = _mm256_loadu_ps(c1 + t), c = _mm256_loadu_ps(c2 + t);
        const __m256 d = _mm256_loadu_ps(c3 + t);
        const __m256 u0 = _mm256_unpacklo_ps(a, b), u1 = _mm256_unpackhi_ps(a, b); /* tiles 0 1 | 4 5, 2 3 | 6 7 */
        const __m256 u2 = _mm256_unpacklo_ps(c, d), u3 = _mm256_unpackhi_ps(c, d);
        const __m256 w0 = _mm256_shuffle_ps(u0, u2, 0x44), w1 = _mm256_shuffle_ps(u0, u2, 0xee); /* 0 | 4, 1 | 5 */
        const __m256 w2 = _mm256_shuffle_ps(u1, u3, 0x44), w3 = _mm256_shuffle_ps(u1, u3, 0xee); /* 2 | 6, 3 | 7 */
        _mm256_storeu_ps(p + 4 * t, _mm256_permute2f128_ps(w0, w1, 0x20));
        _mm256_storeu_ps(p + 4 * t + 8, _mm256_permute2f128_ps(w2, w3, 0x20));
        _mm256_storeu_ps(p + 4 * t + 16, _mm256_permute2f128_ps(w0, w1, 0x31));
        _mm256_storeu_ps(p + 4 * t + 24, _mm256_permute2f128_ps(w2, w3, 0x31));
    }
#endif
    for (; t < len; t++) {
        p[4 * t] = c0[t];
        p[4 * t + 1] = c1[t];
        p[4 * t + 2] = c2[t];
        p[4 * t + 3] = c3[t];
    }
}

void wino4_din_planes(const float *v, size_t xs, int np, int h, int w, float *dst) {
    const int thn = (h + 3) / 4, twn = (w + 3) / 4, gr = WINO4_BT_MAX / twn; /* tile rows per group */
    /* B along the tile rows of a group (dk[i][k][8 + t]: 8 floats before, read and overwritten below), then over
     * the padded columns of tile row i (pr[i][4*twn*q + c] for the group's tile row q: c is x column c-1; column
     * 4*twn, the next row's column 0, which is never read, holds this row's) with the neighbours' overlap added
     * (s0, s1: the sums of columns 4t and 4t+1) */
    alignas(32) float dk[6][6][WINO4_PS + 8], pr[6][4 * WINO4_BT_MAX + 8], s0[WINO4_PS], s1[WINO4_PS];
    memset(dst, 0, sizeof(float) * np * h * w);
    for (int R0 = 0; R0 < np * thn; R0 += gr) { /* tile row R: tile row R % thn of plane R / thn */
        const int nr = np * thn - R0 < gr ? np * thn - R0 : gr, nt = nr * twn;
        for (int i = 0; i < 6; i++) {
            const float *restrict v0 = v + (size_t)(6 * i) * xs + (size_t)R0 * twn, *restrict v1 = v0 + xs;
            const float *restrict v2 = v1 + xs, *restrict v3 = v2 + xs, *restrict v4 = v3 + xs, *restrict v5 = v4 + xs;
            float *restrict d0 = dk[i][0] + 8, *restrict d1 = dk[i][1] + 8, *restrict d2 = dk[i][2] + 8;
            float *restrict d3 = dk[i][3] + 8, *restrict d4 = dk[i][4] + 8, *restrict d5 = dk[i][5] + 8;
#pragma GCC ivdep
            for (int t = 0; t < nt; t++) {
                const float q[6] = {v0[t], v1[t], v2[t], v3[t], v4[t], v5[t]};
                float d[6];
                wino4_b(q, d);
                d0[t] = d[0]; d1[t] = d[1]; d2[t] = d[2]; d3[t] = d[3]; d4[t] = d[4]; d5[t] = d[5];
            }
        }
        for (int i = 0; i < 6; i++) { /* tile t adds d0 .. d5 at padded columns 4t .. 4t+5 */
            const float *restrict k0 = dk[i][0] + 8, *restrict k1 = dk[i][1] + 8, *restrict k4 = dk[i][4] + 7;
            const float *restrict k5 = dk[i][5] + 7; /* k4[t]: the previous tile's */
            for (int t = 0; t < nt; t++) {
                s0[t] = k0[t] + k4[t];
                s1[t] = k1[t] + k5[t];
            }
            for (int q = 0; q < nr; q++) { /* a tile row's first tile has no left neighbour */
                s0[q * twn] = k0[q * twn];
                s1[q * twn] = k1[q * twn];
            }
            wino4_merge(s0, s1, dk[i][2] + 8, dk[i][3] + 8, nt, pr[i]);
            for (int q = 0; q < nr; q++) pr[i][4 * twn * (q + 1)] = k4[(q + 1) * twn];
        }
        for (int R = R0; R < R0 + nr; R++) { /* B down the rows: padded row 4*th + k (x row 4*th-1+k) gets k */
            const int th = R % thn;
            float *dp = dst + (size_t)(R / thn) * h * w;
            const size_t o = (size_t)4 * twn * (R - R0) + 1;
            const float *p0 = pr[0] + o, *p1 = pr[1] + o, *p2 = pr[2] + o, *p3 = pr[3] + o, *p4 = pr[4] + o;
            const float *p5 = pr[5] + o;
            for (int k = 0; k < 6; k++) {
                const int y = 4 * th - 1 + k;
                if (y < 0 || y >= h) continue;
                float *restrict row = dp + (size_t)y * w;
                switch (k) {
                case 0: for (int c = 0; c < w; c++) row[c] += 4.f * p0[c]; break;
                case 1: for (int c = 0; c < w; c++) row[c] += 4.f * (p2[c] - p1[c]) + 2.f * (p4[c] - p3[c]) + 4.f * p5[c]; break;
                case 2: for (int c = 0; c < w; c++) row[c] += -5.f * p0[c] - 4.f * (p1[c] + p2[c]) - (p3[c] + p4[c]); break;
                case 3: for (int c = 0; c < w; c++) row[c] += (p1[c] - p2[c]) + 2.f * (p3[c] - p4[c]) - 5.f * p5[c]; break;
                case 4: for (int c = 0; c < w; c++) row[c] += p0[c] + p1[c] + p2[c] + p3[c] + p4[c]; break;
                default: for (int c = 0; c < w; c++) row[c] += p5[c]; break;
                }
            }
        }
    }
}
