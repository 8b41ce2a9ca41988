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

/* r = B^T d */
static inline void wino4_bt(const float *d, float *r) {
    const float a = d[4] - 4.f * d[2], b = d[3] - 4.f * d[1], c = d[4] - d[2], e = 2.f * (d[3] - d[1]);
    r[0] = 4.f * d[0] - 5.f * d[2] + d[4];
    r[1] = a + b;
    r[2] = a - b;
    r[3] = c + e;
    r[4] = c - e;
    r[5] = 4.f * d[1] - 5.f * d[3] + d[5];
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

/* u = G g */
static inline void wino4_g(float g0, float g1, float g2, float *u) {
    const float s = g0 + g2, t = g0 * (1.f / 24) + g2 * (1.f / 6), q = g1 * (1.f / 12);
    u[0] = 0.25f * g0;
    u[1] = (s + g1) * (-1.f / 6);
    u[2] = (s - g1) * (-1.f / 6);
    u[3] = t + q;
    u[4] = t - q;
    u[5] = g2;
}

/* g = G^T p (the transpose of wino4_g) */
static inline void wino4_gt(const float *p, float *g) {
    const float s = p[1] + p[2], t = p[3] + p[4];
    g[0] = 0.25f * p[0] - s * (1.f / 6) + t * (1.f / 24);
    g[1] = (p[2] - p[1]) * (1.f / 6) + (p[3] - p[4]) * (1.f / 12);
    g[2] = (t - s) * (1.f / 6) + p[5];
}

/* y = A^T m */
static inline void wino4_at(const float *m, float *y) {
    const float a = m[1] + m[2], b = m[1] - m[2], c = m[3] + m[4], d = m[3] - m[4];
    y[0] = m[0] + a + c;
    y[1] = b + 2.f * d;
    y[2] = a + 4.f * c;
    y[3] = b + 8.f * d + m[5];
}

/* m = A e (the transpose of wino4_at) */
static inline void wino4_a(const float *e, float *m) {
    const float s = e[0] + e[2], t = e[1] + e[3], u = e[0] + 4.f * e[2], v = 2.f * e[1] + 8.f * e[3];
    m[0] = e[0];
    m[1] = s + t;
    m[2] = s - t;
    m[3] = u + v;
    m[4] = u - v;
    m[5] = e[3];
}

void wino4_weights_lanes(const float *gt, float *u, int ld, int wl) {
    for (int i = 0; i < wl; i++) {
        float t[6][3], r[6], c[6];
        for (int k = 0; k < 3; k++) { /* G down the columns of g */
            wino4_g(gt[k * ld + i], gt[(3 + k) * ld + i], gt[(6 + k) * ld + i], c);
            for (int a = 0; a < 6; a++) t[a][k] = c[a];
        }
        for (int a = 0; a < 6; a++) { /* G along the rows */
            wino4_g(t[a][0], t[a][1], t[a][2], r);
            for (int b = 0; b < 6; b++) u[(6 * a + b) * ld + i] = r[b];
        }
    }
}

void wino4_weights_grad_one(const float *du, size_t xs, float *g) {
    float p[6][6], t[3][6], c[6], r[3];
    for (int x = 0; x < 36; x++) p[x / 6][x % 6] = du[x * xs];
    for (int j = 0; j < 6; j++) {
        for (int i = 0; i < 6; i++) c[i] = p[i][j];
        wino4_gt(c, r);
        for (int a = 0; a < 3; a++) t[a][j] = r[a];
    }
    for (int a = 0; a < 3; a++) {
        wino4_gt(t[a], r);
        for (int b = 0; b < 3; b++) g[3 * a + b] += r[b];
    }
}

void wino4_in_seg(const float *src, int h, int w, int th, int tw0, int len, float *v, size_t xs) {
    const int c0 = 4 * tw0 - 1, nc = 4 * len + 2, a = c0 < 0 ? -c0 : 0, e = w - c0 < nc ? w - c0 : nc;
    float tr[6][WINO4_CMAX]; /* B^T down the 6 rows; local column c is x column c0 + c */
    const float *r[6];
    for (int i = 0; i < 6; i++) {
        const int y = 4 * th - 1 + i;
        r[i] = y >= 0 && y < h ? src + (size_t)y * w + c0 + a : wino4_zero;
    }
    for (int i = 0; i < 6; i++) {
        for (int c = 0; c < a; c++) tr[i][c] = 0.f;
        for (int c = e; c < nc; c++) tr[i][c] = 0.f;
    }
    const float *restrict r0 = r[0], *restrict r1 = r[1], *restrict r2 = r[2], *restrict r3 = r[3];
    const float *restrict r4 = r[4], *restrict r5 = r[5];
    for (int c = 0; c < e - a; c++) {
        const float d[6] = {r0[c], r1[c], r2[c], r3[c], r4[c], r5[c]};
        float o[6];
        wino4_bt(d, o);
        for (int i = 0; i < 6; i++) tr[i][a + c] = o[i];
    }
    for (int i = 0; i < 6; i++) { /* B^T across the columns of each tile: point 6*i + j */
        const float *q = tr[i];
        float *restrict o0 = v + (size_t)(6 * i) * xs, *restrict o1 = o0 + xs, *restrict o2 = o1 + xs;
        float *restrict o3 = o2 + xs, *restrict o4 = o3 + xs, *restrict o5 = o4 + xs;
        for (int t = 0; t < len; t++) {
            float o[6];
            wino4_bt(q + 4 * t, o);
            o0[t] = o[0]; o1[t] = o[1]; o2[t] = o[2]; o3[t] = o[3]; o4[t] = o[4]; o5[t] = o[5];
        }
    }
}

void wino4_in_plane(const float *src, int h, int w, float *v, size_t xs) {
    const int thn = (h + 3) / 4, twn = (w + 3) / 4;
    for (int th = 0; th < thn; th++) wino4_in_seg(src, h, w, th, 0, twn, v + (size_t)th * twn, xs);
}

void wino4_out_tiles(const float *m, size_t xs, int nb, float *o, int os) {
    for (int t = 0; t < nb; t++) {
        float p[6][4], c[6], y[4];
        for (int i = 0; i < 6; i++) { /* A^T along tile row i */
            const float *q = m + (size_t)(6 * i) * xs + t;
            const float mm[6] = {q[0], q[xs], q[2 * xs], q[3 * xs], q[4 * xs], q[5 * xs]};
            wino4_at(mm, p[i]);
        }
        for (int k = 0; k < 4; k++) { /* A^T down output column k */
            for (int i = 0; i < 6; i++) c[i] = p[i][k];
            wino4_at(c, y);
            for (int r = 0; r < 4; r++) o[(size_t)(4 * r + k) * os + t] = y[r];
        }
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
            for (int t = 0; t < twn; t++) {
                float m[6];
                wino4_a(rb[r] + 4 * t, m);
                for (int j = 0; j < 6; j++) p[r][j][t] = m[j];
            }
        }
        for (int j = 0; j < 6; j++) { /* A down the rows: point 6*i + j */
            float *restrict o0 = dm + (size_t)j * xs + (size_t)th * twn, *restrict o1 = o0 + 6 * xs;
            float *restrict o2 = o1 + 6 * xs, *restrict o3 = o2 + 6 * xs, *restrict o4 = o3 + 6 * xs;
            float *restrict o5 = o4 + 6 * xs;
            for (int t = 0; t < twn; t++) {
                const float e[4] = {p[0][j][t], p[1][j][t], p[2][j][t], p[3][j][t]};
                float m[6];
                wino4_a(e, m);
                o0[t] = m[0]; o1[t] = m[1]; o2[t] = m[2]; o3[t] = m[3]; o4[t] = m[4]; o5[t] = m[5];
            }
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
