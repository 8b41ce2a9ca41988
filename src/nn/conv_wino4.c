/* nn/conv_wino4: the transforms of Winograd F(4x4,3x3) (see nn/conv_wino4.h). Matrices (Lavin & Gray 2016, the
 * interpolation points 0, 1, -1, 2, -2 and infinity):
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 * The backward applies the transposes B, G^T and A. As in nn/conv_wino, every 2-D transform is two passes of
 * the 1-D one over a tile row (or a block of tiles) with unit-stride streams in the tile index, which GCC
 * vectorizes; the 1-D transforms share their common subexpressions. */
#include "nn/conv_wino4.h"
#include <string.h>

static const float wino4_zero[WINO4_CMAX];

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

void wino4_in_seg(const float *src, int h, int w, int th, int tw0, int len, float *v, size_t xs) {
    const int c0 = 4 * tw0 - 1, nc = 4 * len + 2, a = c0 < 0 ? -c0 : 0, e = w - c0 < nc ? w - c0 : nc;
    float tr[6][WINO4_CMAX]; /* B^T down the 6 rows; local column c is x column c0 + c */
    const float *r[6];
    for (int i = 0; i < 6; i++) {
        const int y = 4 * th - 1 + i;
        r[i] = y >= 0 && y < h ? src + (size_t)y * w + c0 + a : wino4_zero;
    }
    for (int i = 0; i < 6; i++) { /* zeros outside the map, and in the 2 columns past the segment (read below) */
        for (int c = 0; c < a; c++) tr[i][c] = 0.f;
        for (int c = e; c < nc + 2; c++) tr[i][c] = 0.f;
    }
    const float *restrict r0 = r[0], *restrict r1 = r[1], *restrict r2 = r[2], *restrict r3 = r[3];
    const float *restrict r4 = r[4], *restrict r5 = r[5];
    for (int c = 0; c < e - a; c++) {
        const float d[6] = {r0[c], r1[c], r2[c], r3[c], r4[c], r5[c]};
        float o[6];
        wino4_bt(d, o);
        for (int i = 0; i < 6; i++) tr[i][a + c] = o[i];
    }
    float ph[4][WINO4_CMAX / 4]; /* a row's columns by phase, ph[k][t] = column 4t + k: unit-stride tile loops */
    for (int i = 0; i < 6; i++) { /* B^T across the columns of each tile: point 6*i + j */
        const float *restrict q = tr[i];
        for (int t = 0; t <= len; t++) {
            ph[0][t] = q[4 * t];
            ph[1][t] = q[4 * t + 1];
            ph[2][t] = q[4 * t + 2];
            ph[3][t] = q[4 * t + 3];
        }
        float *restrict o0 = v + (size_t)(6 * i) * xs, *restrict o1 = o0 + xs, *restrict o2 = o1 + xs;
        float *restrict o3 = o2 + xs, *restrict o4 = o3 + xs, *restrict o5 = o4 + xs;
        const float *restrict p0 = ph[0], *restrict p1 = ph[1], *restrict p2 = ph[2], *restrict p3 = ph[3];
#pragma GCC ivdep /* distinct streams (more than GCC's run-time alias checks cover) */
        for (int t = 0; t < len; t++)
            WINO4_BT(p0[t], p1[t], p2[t], p3[t], p0[t + 1], p1[t + 1], o0[t], o1[t], o2[t], o3[t], o4[t], o5[t]);
    }
}

void wino4_in_plane(const float *src, int h, int w, float *v, size_t xs) {
    const int thn = (h + 3) / 4, twn = (w + 3) / 4;
    for (int th = 0; th < thn; th++) wino4_in_seg(src, h, w, th, 0, twn, v + (size_t)th * twn, xs);
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

void wino4_dout_plane(const float *dy, int h, int w, float *dm, size_t xs) {
    const int thn = (h + 3) / 4, twn = (w + 3) / 4;
    float rb[4][WINO4_CMAX], p[4][6][WINO4_CMAX / 4]; /* a tile row's rows (zeros past the crop); A along them */
    for (int th = 0; th < thn; th++) {
        for (int r = 0; r < 4; r++) {
            const int y = 4 * th + r;
            if (y < h) {
                memcpy(rb[r], dy + (size_t)y * w, sizeof(float) * w);
                memset(rb[r] + w, 0, sizeof(float) * (4 * twn - w));
            } else {
                memset(rb[r], 0, sizeof(float) * 4 * twn);
            }
            const float *restrict e = rb[r];
            float *restrict q0 = p[r][0], *restrict q1 = p[r][1], *restrict q2 = p[r][2], *restrict q3 = p[r][3];
            float *restrict q4 = p[r][4], *restrict q5 = p[r][5];
#pragma GCC ivdep
            for (int t = 0; t < twn; t++)
                WINO4_A(e[4 * t], e[4 * t + 1], e[4 * t + 2], e[4 * t + 3], q0[t], q1[t], q2[t], q3[t], q4[t], q5[t]);
        }
        for (int j = 0; j < 6; j++) { /* A down the rows: point 6*i + j */
            float *restrict o0 = dm + (size_t)j * xs + (size_t)th * twn, *restrict o1 = o0 + 6 * xs;
            float *restrict o2 = o1 + 6 * xs, *restrict o3 = o2 + 6 * xs, *restrict o4 = o3 + 6 * xs;
            float *restrict o5 = o4 + 6 * xs;
            const float *restrict e0 = p[0][j], *restrict e1 = p[1][j], *restrict e2 = p[2][j], *restrict e3 = p[3][j];
#pragma GCC ivdep
            for (int t = 0; t < twn; t++)
                WINO4_A(e0[t], e1[t], e2[t], e3[t], o0[t], o1[t], o2[t], o3[t], o4[t], o5[t]);
        }
    }
}

void wino4_din_plane(const float *v, size_t xs, int h, int w, float *dst) {
    const int thn = (h + 3) / 4, twn = (w + 3) / 4;
    float pr[6][WINO4_CMAX], dk[6][WINO4_CMAX / 4]; /* B along tile row i over the padded columns (c: x column c-1) */
    memset(dst, 0, sizeof(float) * h * w);
    for (int th = 0; th < thn; th++) {
        for (int i = 0; i < 6; i++) {
            const float *vi = v + (size_t)(6 * i) * xs + (size_t)th * twn;
            for (int t = 0; t < twn; t++) {
                const float q[6] = {vi[t], vi[xs + t], vi[2 * xs + t], vi[3 * xs + t], vi[4 * xs + t], vi[5 * xs + t]};
                float d[6];
                wino4_b(q, d);
                for (int k = 0; k < 6; k++) dk[k][t] = d[k];
            }
            /* tile t adds d0 .. d5 at padded columns 4t .. 4t+5: neighbours overlap in two columns */
            float *p = pr[i];
            for (int k = 0; k < 4; k++) p[k] = dk[k][0];
            for (int t = 1; t < twn; t++) {
                p[4 * t] = dk[0][t] + dk[4][t - 1];
                p[4 * t + 1] = dk[1][t] + dk[5][t - 1];
                p[4 * t + 2] = dk[2][t];
                p[4 * t + 3] = dk[3][t];
            }
            p[4 * twn] = dk[4][twn - 1];
            p[4 * twn + 1] = dk[5][twn - 1];
        }
        /* B down the rows: padded row 4*th + k (x row 4*th - 1 + k) gets component k */
        const float *p0 = pr[0] + 1, *p1 = pr[1] + 1, *p2 = pr[2] + 1, *p3 = pr[3] + 1, *p4 = pr[4] + 1, *p5 = pr[5] + 1;
        for (int k = 0; k < 6; k++) {
            const int y = 4 * th - 1 + k;
            if (y < 0 || y >= h) continue;
            float *restrict row = dst + (size_t)y * w;
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
