/* nn/conv_wino: Winograd F(2x2,3x3) (see nn/conv_wino.h). Matrices (Lavin & Gray 2015):
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]   A^T = [1 1 1 0; 0 1 -1 -1]
 * Layouts, T = tiles of a chunk (image-major, then tile row, then tile column), xi = 4*i + j:
 *   U[xi][co][ci], V[xi][ci][T], M[xi][co][T]. Rows of V and M are contiguous in the tile column, so every transform
 * is a loop over a tile row with unit-stride streams (GCC vectorizes them); transforms run parallel over planes.
 * The forward is fused instead: per block of tiles (whole tile rows, L2-sized), V goes straight into the packed
 * panels and M into a block buffer that the output transform reads, so neither V nor M passes through memory.
 * A fused dx (dM panels -> dV block -> B dV B^T scattered into dx, threads over images) was tried and measured no
 * faster than the V-space round trip below (the dM panel gathers and the weight stream of 512-channel blocks
 * cost what the round trip saved), so the backward keeps the chunked form, in chunks near L2 for narrow layers.
 * The same machinery runs F(4x4,3x3) (wino_geom's m = 4: 6x6 input tiles at stride 4, 36 points, nn/conv_wino4's
 * transforms); where the comments below say 16 points, read (m + 2)^2. */
#include "nn/conv_wino.h"
#include "nn/conv_wino4.h"
#include "nn/conv_winow.h"
#include "blas/blas.h"
#include "core/error.h"
#include <stdalign.h>
#include <stdint.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

#define WINO_WMAX 1024 /* widest row the stack buffers take */
#define WINO_TWMAX (WINO_WMAX / 2 + 1)
#define WINO_KC 512     /* rows (k) of an activation panel of the dx product; a deeper product takes several */
#define WINO_PMAX 32    /* widest panel of the micro-kernel handled (skx: 32 x 12, haswell: 6 x 16) */
#define WINO_BMAX 256   /* most tiles in one block of the fused forward / dx */
_Static_assert(WINO_BMAX <= WINO4_BT_MAX, "a block fits conv_wino4's phase buffers");
#define WINO_L2F (256 * 1024) /* floats of one thread's block buffers (transformed panels + products) kept in L2 */
#define WINO_BWD_L2F (512 * 1024) /* floats of a backward chunk's V and M kept near L2 (narrow layers) */
#define WINO_NPT 36     /* most transform points (F(4x4,3x3)) */
#define WINO_FT 2       /* thread block buffers the workspace holds at least (more where the chunk space allows) */

static const float wino_zero[WINO_WMAX];
/* one packed activation panel per thread for the dx product (static TLS: the step never allocates) */
static _Thread_local alignas(64) float wino_apanel[WINO_PMAX * WINO_KC];

/* The products M = U V and dV = U^T dM run on BLIS's micro-kernel with panels packed here, not through
 * blas_sgemm: on a column-preferring kernel (skx) BLIS packs the wide activation operand with its generic
 * (scalar) packing routine, which took as long as the transforms. The weights are packed by their transform;
 * activation panels are aw columns of V or dM (contiguous in the tile index), copied row by row. */
typedef struct {
    int rows;   /* kernel prefers rows of C: weights as A (ww = MR rows), activations as B (aw = NR columns) */
    int aw, ww; /* activation panel columns, weight panel rows */
    int m, npt; /* output tile m x m (2 or 4), transform points (m + 2)^2 */
} wino_geom;

static int wino_npt(int m) { return (m + 2) * (m + 2); }

static wino_geom wino_geom_now(int m) {
    wino_geom g = {.rows = blas_ukr_prefers_rows(), .m = m, .npt = wino_npt(m)};
    g.aw = g.rows ? blas_ukr_nr() : blas_ukr_mr();
    g.ww = g.rows ? blas_ukr_mr() : blas_ukr_nr();
    return g;
}

int wino_shape_ok(const conv_desc *d, int h, int w) {
    const wino_geom g = wino_geom_now(2);
    return d->k == 3 && d->stride == 1 && d->pad == 1 && w <= WINO_WMAX && h >= 1 && w >= 1 && g.aw >= 1 &&
           g.aw <= WINO_PMAX && g.ww >= 1 && g.ww <= WINO_PMAX;
}

/* floats of one transform point's packed weights (panels of ww rows of a rows x k matrix, each panel padded to
 * 64 bytes, + 64 bytes so that the 16 points, written and read together, do not share 4 KiB-aliased cache sets);
 * wino_packed_bound: the same for any ww <= WINO_PMAX, both orientations */
static size_t wino_panel_stride(int k, int ww) { return ((size_t)ww * k + 15) & ~(size_t)15; }
static size_t wino_packed_floats(int rows, int k, int ww) {
    return (size_t)((rows + ww - 1) / ww) * wino_panel_stride(k, ww) + 16;
}
static size_t wino_packed_bound(int npt, int cin, int cout) {
    size_t a = (size_t)(cout + WINO_PMAX) * cin + 16 * (size_t)(cout + 2), b = (size_t)(cin + WINO_PMAX) * cout + 16 * (size_t)(cin + 2);
    return npt * (a > b ? a : b) + 16; /* + 16: aligning the start */
}

static int wino_tiles(int m, int h, int w) { return ((h + m - 1) / m) * ((w + m - 1) / m); }

/* the most images per chunk: as many as the budget holds, at least one */
static int wino_chunk_max(int m, int n, int cin, int cout, int h, int w, size_t budget) {
    size_t per_img = (size_t)wino_npt(m) * wino_tiles(m, h, w) * (cin + cout), nb = budget / per_img;
    if (nb < 1) nb = 1;
    if (nb > (size_t)n) nb = (size_t)n;
    return (int)nb;
}

/* equal chunks, as few as the budget allows (a thin last chunk is a GEMM with few columns) */
static int wino_chunk(int m, int n, int cin, int cout, int h, int w, size_t budget) {
    int nb = wino_chunk_max(m, n, cin, cout, h, w, budget), nchunks = (n + nb - 1) / nb;
    return (n + nchunks - 1) / nchunks;
}

static int wino_threads(size_t work) { return work >= ((size_t)1 << 14) ? blas_threads() : 1; }

/* U = G g G^T for g = W[co][ci*9 .. +9], packed for the micro-kernel: point xi at P + xi*pxs, panels of ww rows of
 * U[xi] (cout x cin; tr: of U[xi]^T, cin x cout), k-major, rows past the end zero (nn/conv_winow) */
static void wino_weights(int cin, int cout, const float *W, int ldw, const wino_geom *g, int tr, float *P) {
    const int rows = tr ? cin : cout, k = tr ? cout : cin;
    winow_pack(g->m, cin, cout, W, ldw, g->ww, tr, P, wino_packed_floats(rows, k, g->ww), wino_panel_stride(k, g->ww));
}

/* C[xi] (rows x T, row stride T) = P[xi] (packed, rows x k) x A[xi] (k x T, row stride T), for the 16 points;
 * parallel over (point, group of panels of aw columns), each thread copying its activation panels once. A group
 * spans as many panels as wino_apanel holds at this depth: its rows are copied as longer runs (the copy reads a
 * chunk much larger than L2, row by row). */
static void wino_pgemm(const wino_geom *g, int rows, int k, int T, const float *P, const float *A, size_t axs,
                       float *C, size_t cxs) {
    const int aw = g->aw, ww = g->ww, nwb = (rows + ww - 1) / ww, kd = k < WINO_KC ? k : WINO_KC;
    const int gp = WINO_PMAX * WINO_KC / (aw * kd), gw = gp * aw, ngb = (T + gw - 1) / gw;
    const size_t pxs = wino_packed_floats(rows, k, ww), ps = wino_panel_stride(k, ww);
    const int nt = blas_threads();
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt) if (nt > 1)
    for (int xi = 0; xi < g->npt; xi++)
        for (int gb = 0; gb < ngb; gb++) {
            float *ap = wino_apanel;
            const int t0 = gb * gw, ng = T - t0 < gw ? T - t0 : gw, np = (ng + aw - 1) / aw;
            for (int k0 = 0; k0 < k; k0 += WINO_KC) {
                const int kc = k - k0 < WINO_KC ? k - k0 : WINO_KC;
                const float *src = A + xi * axs + (size_t)k0 * T + t0;
                for (int p = 0; p < kc; p++) { /* panel q's row p at ap[(q*kc + p)*aw] */
                    const float *restrict row = src + (size_t)p * T;
                    for (int q = 0; q < np; q++) {
                        float *restrict dst = ap + ((size_t)q * kc + p) * aw;
                        const int na = ng - q * aw < aw ? ng - q * aw : aw;
                        for (int i = 0; i < na; i++) dst[i] = row[q * aw + i];
                        for (int i = na; i < aw; i++) dst[i] = 0.f;
                    }
                }
                for (int q = 0; q < np; q++) {
                    const int na = ng - q * aw < aw ? ng - q * aw : aw;
                    for (int wb = 0; wb < nwb; wb++) {
                        const float *wp = P + xi * pxs + (size_t)wb * ps + (size_t)k0 * ww;
                        const int nw = rows - wb * ww < ww ? rows - wb * ww : ww;
                        float *c = C + xi * cxs + (size_t)wb * ww * T + t0 + q * aw;
                        const float *a = ap + (size_t)q * kc * aw;
                        if (g->rows) blas_ukr(nw, na, kc, wp, a, k0 ? 1.f : 0.f, c, T, 1);
                        else blas_ukr(na, nw, kc, a, wp, k0 ? 1.f : 0.f, c, 1, T);
                    }
                }
            }
        }
}

/* the second half of V = B^T d B: B applied across the columns of tr (4 rows, row stride ld, B^T already applied
 * down them; tile t's columns 2t .. 2t+3), len tiles to v[xi*xs + t], xi = 4*i + j */
static inline void wino_bt_cols(const float *tr, size_t ld, int len, float *v, size_t xs) {
    for (int i = 0; i < 4; i++) {
        const float *q = tr + (size_t)i * ld;
        float *restrict o0 = v + (size_t)(4 * i) * xs, *restrict o1 = o0 + xs;
        float *restrict o2 = o1 + xs, *restrict o3 = o2 + xs;
        for (int t = 0; t < len; t++) {
            float d0 = q[2 * t], d1 = q[2 * t + 1], d2 = q[2 * t + 2], d3 = q[2 * t + 3];
            o0[t] = d0 - d2;
            o1[t] = d1 + d2;
            o2[t] = d2 - d1;
            o3[t] = d1 - d3;
        }
    }
}

/* V tiles of one plane src[h][w] (tile origin (2*th-1, 2*tw-1), zeros outside): v[xi*xs + th*twn + tw] */
static void wino_in_plane(const float *src, int h, int w, float *v, size_t xs) {
    const int thn = (h + 1) / 2, twn = (w + 1) / 2, wp = 2 * twn + 2;
    float tr[4][WINO_WMAX + 4]; /* B^T applied down the 4 rows; column c holds x column c-1 */
    for (int th = 0; th < thn; th++) {
        const float *r[4];
        for (int i = 0; i < 4; i++) {
            int y = 2 * th - 1 + i;
            r[i] = y >= 0 && y < h ? src + (size_t)y * w : wino_zero;
        }
        for (int c = 0; c < w; c++) {
            tr[0][c + 1] = r[0][c] - r[2][c];
            tr[1][c + 1] = r[1][c] + r[2][c];
            tr[2][c + 1] = r[2][c] - r[1][c];
            tr[3][c + 1] = r[1][c] - r[3][c];
        }
        for (int i = 0; i < 4; i++) {
            tr[i][0] = 0.f;
            for (int c = w + 1; c < wp; c++) tr[i][c] = 0.f;
        }
        wino_bt_cols(tr[0], WINO_WMAX + 4, twn, v + (size_t)th * twn, xs);
    }
}

/* dM tiles of one plane of dy[h][w] (A dY A^T, the transpose of wino_out_plane; zeros beyond the crop) */
static void wino_dout_plane(const float *dy, int h, int w, float *dm, size_t xs) {
    const int thn = (h + 1) / 2, twn = (w + 1) / 2, half = w / 2;
    float e[2][WINO_TWMAX], f[2][WINO_TWMAX]; /* even and odd columns of the tile's two rows */
    for (int th = 0; th < thn; th++) {
        for (int r = 0; r < 2; r++) {
            int y = 2 * th + r;
            if (y >= h) {
                memset(e[r], 0, sizeof(float) * twn);
                memset(f[r], 0, sizeof(float) * twn);
                continue;
            }
            const float *row = dy + (size_t)y * w;
            for (int t = 0; t < half; t++) {
                e[r][t] = row[2 * t];
                f[r][t] = row[2 * t + 1];
            }
            if (w & 1) {
                e[r][half] = row[w - 1];
                f[r][half] = 0.f;
            }
        }
        /* A applied along each row: (g0, g1) -> (g0, g0 + g1, g0 - g1, -g1); then down: (p, p + q, p - q, -q) */
        float p[4][WINO_TWMAX], q[4][WINO_TWMAX];
        for (int t = 0; t < twn; t++) {
            p[0][t] = e[0][t]; p[1][t] = e[0][t] + f[0][t]; p[2][t] = e[0][t] - f[0][t]; p[3][t] = -f[0][t];
            q[0][t] = e[1][t]; q[1][t] = e[1][t] + f[1][t]; q[2][t] = e[1][t] - f[1][t]; q[3][t] = -f[1][t];
        }
        for (int j = 0; j < 4; j++) {
            float *restrict o0 = dm + (size_t)j * xs + (size_t)th * twn, *restrict o1 = o0 + 4 * xs;
            float *restrict o2 = o1 + 4 * xs, *restrict o3 = o2 + 4 * xs;
            const float *pj = p[j], *qj = q[j];
            for (int t = 0; t < twn; t++) {
                o0[t] = pj[t];
                o1[t] = pj[t] + qj[t];
                o2[t] = pj[t] - qj[t];
                o3[t] = -qj[t];
            }
        }
    }
}

/* dst[h][w] = sum over the plane's tiles of B dV B^T (the transpose of wino_in_plane), overwritten */
static void wino_din_plane(const float *v, size_t xs, int h, int w, float *dst) {
    const int thn = (h + 1) / 2, twn = (w + 1) / 2, wp = 2 * twn + 2;
    float pr[4][WINO_WMAX + 4]; /* B applied along tile row i, scattered over the padded columns */
    memset(dst, 0, sizeof(float) * h * w);
    for (int th = 0; th < thn; th++) {
        for (int i = 0; i < 4; i++) {
            const float *v0 = v + (size_t)(4 * i) * xs + (size_t)th * twn, *v1 = v0 + xs, *v2 = v1 + xs, *v3 = v2 + xs;
            float *p = pr[i];
            /* tile t adds (v0, v1 - v2 + v3, -v0 + v1 + v2, -v3) at padded columns 2t .. 2t+3 */
            p[0] = v0[0];
            p[1] = v1[0] - v2[0] + v3[0];
            for (int t = 1; t < twn; t++) {
                p[2 * t] = v0[t] + (v1[t - 1] + v2[t - 1] - v0[t - 1]);
                p[2 * t + 1] = (v1[t] - v2[t] + v3[t]) - v3[t - 1];
            }
            p[wp - 2] = v1[twn - 1] + v2[twn - 1] - v0[twn - 1];
            p[wp - 1] = -v3[twn - 1];
        }
        /* B down the rows: padded row 2*th + r gets (p0, p1 - p2 + p3, -p0 + p1 + p2, -p3)[r] */
        for (int r = 0; r < 4; r++) {
            int y = 2 * th - 1 + r;
            if (y < 0 || y >= h) continue;
            float *restrict row = dst + (size_t)y * w;
            const float *p0 = pr[0] + 1, *p1 = pr[1] + 1, *p2 = pr[2] + 1, *p3 = pr[3] + 1;
            switch (r) {
            case 0: for (int c = 0; c < w; c++) row[c] += p0[c]; break;
            case 1: for (int c = 0; c < w; c++) row[c] += p1[c] - p2[c] + p3[c]; break;
            case 2: for (int c = 0; c < w; c++) row[c] += p1[c] + p2[c] - p0[c]; break;
            default: for (int c = 0; c < w; c++) row[c] -= p3[c]; break;
            }
        }
    }
}

/* images per call of the backward's plane transforms: F(4x4)'s take up to WINO4_BT_MAX tiles of several planes */
static int wino_ipc(int m, int tpi) { return m == 4 && tpi < WINO4_BT_MAX ? WINO4_BT_MAX / tpi : 1; }

/* V of images [n0, n0+nb) of x[cin][n][h][w]; xs = cin * T */
static void wino_in(int m, int n, int n0, int nb, int cin, int h, int w, const float *x, float *V) {
    const int tpi = wino_tiles(m, h, w), ipc = wino_ipc(m, tpi), ng = (nb + ipc - 1) / ipc;
    const size_t hw = (size_t)h * w, T = (size_t)nb * tpi, xs = (size_t)cin * T;
    const int nt = wino_threads((size_t)cin * nb * hw);
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt) if (nt > 1)
    for (int ci = 0; ci < cin; ci++)
        for (int gi = 0; gi < ng; gi++) {
            const int i0 = gi * ipc, k = nb - i0 < ipc ? nb - i0 : ipc;
            const float *src = x + ((size_t)ci * n + n0 + i0) * hw;
            if (m == 4) wino4_in_planes(src, k, h, w, V + (size_t)ci * T + (size_t)i0 * tpi, xs);
            else wino_in_plane(src, h, w, V + (size_t)ci * T + (size_t)i0 * tpi, xs);
        }
}

/* ---- fused forward and dx: blocks of tiles transformed straight into packed panels, multiplied, and transformed
 * back into y (dx), all within one thread's L2-sized buffers (no V / M round trip through memory) ---- */

/* A block is a run of units: whole tile rows (image-major), or equal segments of a tile row longer than a block.
 * Its tiles are consecutive in the chunk's tile order, so a block is also a contiguous range of a V or M row. */
typedef struct {
    int m, h, w, thn, twn, nseg, sl; /* output tile size; tile rows and columns, segments per tile row and their length */
    int R, bp, np;                /* units per block; panel columns of a block (a multiple of aw) and panels */
    long upi;                     /* units per image */
} wino_blk;

typedef struct {
    int img, th, tw0, len;
} wino_unit;

static wino_unit wino_unit_at(const wino_blk *b, long u) {
    wino_unit r = {(int)(u / b->upi), 0, 0, 0};
    const int rem = (int)(u % b->upi);
    r.th = rem / b->nseg;
    r.tw0 = rem % b->nseg * b->sl;
    r.len = b->twn - r.tw0 < b->sl ? b->twn - r.tw0 : b->sl;
    return r;
}

/* floats of one thread's block buffers: the L2 target, or one panel where that is more */
static size_t wino_blk_floats(int npt, int cin, int cout) {
    const size_t one = (size_t)npt * (cin + cout) * WINO_PMAX;
    return (one > WINO_L2F ? one : WINO_L2F) + 16 + 2 * (size_t)npt * 16; /* + the points' padding (wino_pt_pad) */
}

static void wino_blk_init(wino_blk *b, const wino_geom *g, int h, int w, int cin, int cout) {
    const int aw = g->aw;
    const int m = g->m;
    int bt = (int)(WINO_L2F / ((size_t)g->npt * (cin + cout)));
    if (bt > WINO_BMAX) bt = WINO_BMAX;
    bt = bt / aw * aw;
    if (bt < aw) bt = aw;
    b->m = m; b->h = h; b->w = w;
    b->thn = (h + m - 1) / m; b->twn = (w + m - 1) / m;
    b->nseg = (b->twn + bt - 1) / bt;
    b->sl = (b->twn + b->nseg - 1) / b->nseg;
    b->R = bt / b->sl;
    b->bp = (b->R * b->sl + aw - 1) / aw * aw;
    b->np = b->bp / aw;
    b->upi = (long)b->thn * b->nseg;
}

/* V tiles of one segment (tile row th, tiles tw0 .. tw0+len) of a plane: v[xi*xs + t] (cf. B^T d B) */
static void wino_in_seg(const float *src, int h, int w, int th, int tw0, int len, float *v, size_t xs) {
    const int c0 = 2 * tw0 - 1, nc = 2 * len + 2, a = c0 < 0 ? -c0 : 0, e = w - c0 < nc ? w - c0 : nc;
    float tr[4][2 * WINO_BMAX + 2]; /* B^T down the 4 rows; local column c is x column c0 + c */
    const float *r[4];
    for (int i = 0; i < 4; i++) {
        int y = 2 * th - 1 + i;
        r[i] = y >= 0 && y < h ? src + (size_t)y * w : wino_zero;
    }
    for (int i = 0; i < 4; i++) {
        for (int c = 0; c < a; c++) tr[i][c] = 0.f;
        for (int c = e; c < nc; c++) tr[i][c] = 0.f;
    }
    const float *r0 = r[0] + c0 + a, *r1 = r[1] + c0 + a, *r2 = r[2] + c0 + a, *r3 = r[3] + c0 + a;
    for (int c = 0; c < e - a; c++) {
        tr[0][a + c] = r0[c] - r2[c];
        tr[1][a + c] = r1[c] + r2[c];
        tr[2][a + c] = r2[c] - r1[c];
        tr[3][a + c] = r1[c] - r3[c];
    }
    wino_bt_cols(tr[0], 2 * WINO_BMAX + 2, len, v, xs);
}

/* F(4x4)'s wino_out_block: the 16 outputs of each tile over the whole block, then copied into each unit's rows
 * (cropped at the edges) */
static void wino4_out_block(const wino_blk *b, const float *m, size_t xs, int nb, const wino_unit *us, int nu,
                            float *yc) {
    alignas(64) float o[16][WINO_BMAX];
    wino4_out_tiles(m, xs, nb, o[0], WINO_BMAX);
    const int h = b->h, w = b->w;
    const size_t hw = (size_t)h * w;
    int off = 0;
    for (int j = 0; j < nu; j++) {
        const wino_unit un = us[j];
        const int c0 = 4 * un.tw0, nc = w - c0 < 4 * un.len ? w - c0 : 4 * un.len;
        for (int r = 0; r < 4 && 4 * un.th + r < h; r++) {
            float *restrict row = yc + (size_t)un.img * hw + (size_t)(4 * un.th + r) * w + c0;
            const float *restrict o0 = o[4 * r] + off, *restrict o1 = o[4 * r + 1] + off;
            const float *restrict o2 = o[4 * r + 2] + off, *restrict o3 = o[4 * r + 3] + off;
            const int full = nc / 4;
            for (int t = 0; t < full; t++) {
                row[4 * t] = o0[t];
                row[4 * t + 1] = o1[t];
                row[4 * t + 2] = o2[t];
                row[4 * t + 3] = o3[t];
            }
            for (int c = 4 * full; c < nc; c++) row[c] = o[4 * r + c % 4][off + full];
        }
        off += un.len;
    }
}

/* channel co's output of a block (yc = y + co*n*hw): A^T M A of m[xi*xs + t], t < nb. The two output rows'
 * even and odd columns are formed over the whole block (long vectors), then interleaved into each unit's rows. */
static void wino_out_block(const wino_blk *b, const float *m, size_t xs, int nb, const wino_unit *us, int nu, float *yc) {
    if (b->m == 4) {
        wino4_out_block(b, m, xs, nb, us, nu, yc);
        return;
    }
    float e0[WINO_BMAX], o0[WINO_BMAX], e1[WINO_BMAX], o1[WINO_BMAX];
    for (int t = 0; t < nb; t++) {
        float a[4], c[4]; /* A^T along tile row i: a = m0 + m1 + m2, c = m1 - m2 - m3 */
        for (int i = 0; i < 4; i++) {
            const float *q = m + (size_t)(4 * i) * xs + t;
            a[i] = q[0] + q[xs] + q[2 * xs];
            c[i] = q[xs] - q[2 * xs] - q[3 * xs];
        }
        e0[t] = a[0] + a[1] + a[2];
        o0[t] = c[0] + c[1] + c[2];
        e1[t] = a[1] - a[2] - a[3];
        o1[t] = c[1] - c[2] - c[3];
    }
    const int h = b->h, w = b->w;
    const size_t hw = (size_t)h * w;
    int off = 0;
    for (int j = 0; j < nu; j++) {
        const wino_unit un = us[j];
        const int full = 2 * (un.tw0 + un.len) > w ? un.len - 1 : un.len; /* an odd row's last tile: one column */
        for (int r = 0; r < 2 && 2 * un.th + r < h; r++) {
            const float *restrict e = (r ? e1 : e0) + off, *restrict o = (r ? o1 : o0) + off;
            float *restrict row = yc + (size_t)un.img * hw + (size_t)(2 * un.th + r) * w + 2 * un.tw0;
            for (int t = 0; t < full; t++) {
                row[2 * t] = e[t];
                row[2 * t + 1] = o[t];
            }
            if (full < un.len) row[2 * full] = e[full];
        }
        off += un.len;
    }
}

/* a point's stride in a block buffer of f floats per point: + 64 bytes, so that the 16 points, written or read
 * together, do not fall on 4 KiB-aliased cache sets */
static size_t wino_pt_pad(size_t f) { return f + 16; }

/* row `row` of the np packed panels of a block (Ab[xi][p][k][aw], point stride axs) from src[xi*xs + t], t < nb;
 * zeros past nb */
static void wino_to_panels(int npt, const float *src, size_t xs, int nb, int np, int aw, int row, int k, float *Ab,
                           size_t axs) {
    for (int xi = 0; xi < npt; xi++)
        for (int p = 0; p < np; p++) {
            float *restrict dst = Ab + xi * axs + ((size_t)p * k + row) * aw;
            const float *restrict s = src + xi * xs + (size_t)p * aw;
            const int na = nb - p * aw < aw ? (nb - p * aw > 0 ? nb - p * aw : 0) : aw;
            for (int i = 0; i < na; i++) dst[i] = s[i];
            for (int i = na; i < aw; i++) dst[i] = 0.f;
        }
}

/* C[xi] (rows x bp, row stride bp, point stride cxs) = P[xi] (packed weights, rows x k) x Ab[xi] (np panels of
 * k x aw, point stride axs), nb columns */
static void wino_bgemm(const wino_geom *g, int rows, int k, int nb, int np, const float *P, const float *Ab, size_t axs,
                       float *C, size_t cxs) {
    const int aw = g->aw, ww = g->ww, nwb = (rows + ww - 1) / ww;
    const size_t pxs = wino_packed_floats(rows, k, ww), ps = wino_panel_stride(k, ww);
    const long bp = (long)np * aw;
    for (int xi = 0; xi < g->npt; xi++)
        for (int wb = 0; wb < nwb; wb++) {
            const float *wp = P + xi * pxs + (size_t)wb * ps;
            const int nw = rows - wb * ww < ww ? rows - wb * ww : ww;
            for (int p = 0; p * aw < nb; p++) {
                const float *ap = Ab + xi * axs + (size_t)p * k * aw;
                const int na = nb - p * aw < aw ? nb - p * aw : aw;
                float *c = C + xi * cxs + (size_t)wb * ww * bp + (size_t)p * aw;
                if (g->rows) blas_ukr(nw, na, k, wp, ap, 0.f, c, bp, 1);
                else blas_ukr(na, nw, k, ap, wp, 0.f, c, 1, bp);
            }
        }
}

/* prefetch the rows of a block's units in the next channel's planes (c = x or y + channel * n*hw; out: y's two
 * output rows, for writing; else x's four input rows): consecutive channels' planes lie n*hw floats apart, a
 * stride (4 KiB on 4x4 maps) that the hardware prefetchers do not follow */
static void wino_prefetch_units(const wino_blk *b, const wino_unit *us, int nu, const float *c, int out) {
    const size_t hw = (size_t)b->h * b->w;
    for (int j = 0; j < nu; j++) {
        const int m = b->m, c0 = m * us[j].tw0 - !out, c1 = m * (us[j].tw0 + us[j].len) - !out; /* columns [c0, c1] */
        const int lo = c0 > 0 ? c0 : 0, hi = c1 < b->w ? c1 : b->w - 1;
        for (int r = out ? 0 : -1; r < (out ? m : m + 1); r++) {
            const int yy = m * us[j].th + r;
            if (yy < 0 || yy >= b->h) continue;
            const float *row = c + (size_t)us[j].img * hw + (size_t)yy * b->w;
            if (out) { /* the intent must be a constant (an unoptimized build does not propagate it) */
                __builtin_prefetch(row + lo, 1);
                __builtin_prefetch(row + hi, 1);
            } else {
                __builtin_prefetch(row + lo, 0);
                __builtin_prefetch(row + hi, 0);
            }
        }
    }
}

/* the forward of units [u0, u1) (of images from 0 of x / y): y = A^T (U (B^T x B)) A */
static void wino_fwd_block(const wino_blk *b, const wino_geom *g, int n, int cin, int cout, const float *P,
                           const float *x, float *y, long u0, long u1, float *Vb, float *Mb) {
    alignas(64) float vt[WINO_NPT * WINO_BMAX];
    wino4_seg sg[WINO_BMAX];
    wino_unit us[WINO_BMAX]; /* the block's units, located once (not per channel: 64-bit divisions) */
    const size_t hw = (size_t)b->h * b->w, vxs = wino_pt_pad((size_t)cin * b->bp), mxs = wino_pt_pad((size_t)cout * b->bp);
    const int nu = (int)(u1 - u0);
    int nb = 0;
    for (int j = 0; j < nu; j++) {
        us[j] = wino_unit_at(b, u0 + j);
        nb += us[j].len;
    }
    for (int ci = 0; ci < cin; ci++) {
        if (ci + 1 < cin) wino_prefetch_units(b, us, nu, x + (size_t)(ci + 1) * n * hw, 0);
        if (b->m == 4) { /* the whole block at once, straight into row ci of the panels */
            for (int j = 0; j < nu; j++)
                sg[j] = (wino4_seg){x + ((size_t)ci * n + us[j].img) * hw, us[j].th, us[j].tw0, us[j].len};
            wino4_in_block(sg, nu, b->h, b->w, x + (size_t)cin * n * hw, Vb + (size_t)ci * g->aw, vxs, g->aw,
                           (size_t)cin * g->aw);
            continue;
        }
        int off = 0;
        for (int j = 0; j < nu; j++) {
            wino_in_seg(x + ((size_t)ci * n + us[j].img) * hw, b->h, b->w, us[j].th, us[j].tw0, us[j].len, vt + off,
                        WINO_BMAX);
            off += us[j].len;
        }
        wino_to_panels(g->npt, vt, WINO_BMAX, nb, b->np, g->aw, ci, cin, Vb, vxs);
    }
    wino_bgemm(g, cout, cin, nb, b->np, P, Vb, vxs, Mb, mxs);
    for (int co = 0; co < cout; co++) {
        if (co + 1 < cout) wino_prefetch_units(b, us, nu, y + (size_t)(co + 1) * n * hw, 1);
        wino_out_block(b, Mb + (size_t)co * b->bp, mxs, nb, us, nu, y + (size_t)co * n * hw);
    }
}

/* 64-byte aligned start of the packed weights in the workspace */
static float *wino_align(float *ws) { return (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63); }

/* the fused pieces' space after the packed weights and dU: the chunk's V and M (at most one image past the
 * budget), then WINO_FT threads' block buffers; monotone in n, cin and cout */
static size_t wino_region(int m, int n, int cin, int cout, int h, int w, size_t budget) {
    const int npt = wino_npt(m);
    const size_t per_img = (size_t)npt * wino_tiles(m, h, w) * (cin + cout), cap = budget > per_img ? budget : per_img;
    const size_t all = (size_t)n * per_img;
    return (all < cap ? all : cap) + WINO_FT * wino_blk_floats(npt, cin, cout);
}

/* ---- dU = dM V^T on the micro-kernel: the k side is the tile index, along which both operands' rows run, so
 * the packs transpose (4x4 blocks in SSE registers); BLIS's own packing of such operands is its generic scalar
 * routine ---- */

/* the k-block of the dU products: their packed operands (all of B's panels, one of A's) stay in L2 */
static int wino_du_kc(int npt, int cin, int cout) {
    const size_t c = (size_t)cin + cout;
    int kc = (int)((wino_blk_floats(npt, cin, cout) - 16 * (c + 4) - 64) / (c + 2 * WINO_PMAX)) & ~15;
    return kc > 512 ? 512 : (kc < 16 ? 16 : kc);
}

/* floats of one thread's dU buffers (within one block buffer: see wino_du_kc) */
static size_t wino_du_floats(int npt, int cin, int cout) {
    const size_t c = (size_t)cin + cout;
    return (c + 2 * WINO_PMAX) * wino_du_kc(npt, cin, cout) + 16 * (c + 4);
}

/* C (R x S, element (r, s) at C[r*rs + s*cs]) (+)= X (R x T) Y (S x T)^T, rows of X and Y of stride T; X is packed
 * as the kernel's A (panels of MR rows), Y as its B (NR), k blocks of kc; buf: wino_du_floats */
static void wino_du_one(int R, int S, int T, const float *X, const float *Y, float beta, float *C, long rs, long cs,
                        int kc, float *buf) {
    const int mr = blas_ukr_mr(), nr = blas_ukr_nr(), nsp = (S + nr - 1) / nr;
    const size_t bps = ((size_t)nr * kc + 15) & ~(size_t)15;
    float *Bp = wino_align(buf), *Ap = Bp + (size_t)nsp * bps;
    for (int t0 = 0; t0 < T; t0 += kc) {
        const int k = T - t0 < kc ? T - t0 : kc;
        const float b = t0 ? 1.f : beta;
        for (int sp = 0; sp < nsp; sp++) {
            const int ns = S - sp * nr < nr ? S - sp * nr : nr;
            winow_tpack(Y + (size_t)sp * nr * T + t0, T, ns, k, nr, Bp + sp * bps);
        }
        for (int r0 = 0; r0 < R; r0 += mr) {
            const int nm = R - r0 < mr ? R - r0 : mr;
            winow_tpack(X + (size_t)r0 * T + t0, T, nm, k, mr, Ap);
            for (int sp = 0; sp < nsp; sp++) {
                const int ns = S - sp * nr < nr ? S - sp * nr : nr;
                blas_ukr(nm, ns, k, Ap, Bp + sp * bps, b, C + r0 * rs + (long)sp * nr * cs, rs, cs);
            }
        }
    }
}

static size_t wino_ws_floats(int m, int n, int cin, int cout, int h, int w, size_t budget) {
    const int npt = wino_npt(m);
    return wino_packed_bound(npt, cin, cout) + (size_t)npt * cin * cout + wino_region(m, n, cin, cout, h, w, budget);
}

size_t wino_workspace_floats(int n, int cin, int cout, int h, int w, size_t budget) {
    const size_t a = wino_ws_floats(2, n, cin, cout, h, w, budget), b = wino_ws_floats(4, n, cin, cout, h, w, budget);
    return a > b ? a : b;
}

/* threads of the fused loops: blas_threads(), fewer if fewer block buffers fit in `avail` floats */
static int wino_fused_threads(size_t avail, int npt, int cin, int cout) {
    const size_t fit = avail / wino_blk_floats(npt, cin, cout);
    const int nt = blas_threads();
    return (size_t)nt < fit ? nt : (fit > 0 ? (int)fit : 1);
}

void wino_forward(int m, int n, int cin, int cout, int h, int w, const float *W, int ldw, const float *x, float *y,
                  float *ws, size_t budget) {
    SC_CHECK(w <= WINO_WMAX && n > 0 && cin > 0 && cout > 0, "conv_wino: bad shape n=%d cin=%d cout=%d w=%d", n,
             cin, cout, w);
    const wino_geom g = wino_geom_now(m);
    const int npt = g.npt;
    wino_blk b;
    wino_blk_init(&b, &g, h, w, cin, cout);
    float *P = wino_align(ws), *buf = wino_align(ws + wino_packed_bound(npt, cin, cout) + (size_t)npt * cin * cout);
    const size_t bf = wino_blk_floats(npt, cin, cout);
    const int nt = wino_fused_threads(wino_region(m, n, cin, cout, h, w, budget) - 16, npt, cin, cout);
    wino_weights(cin, cout, W, ldw, &g, 0, P);
    const long nu = n * b.upi, nblk = (nu + b.R - 1) / b.R;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int tid = 0, tn = 1;
#if defined(_OPENMP)
        tid = omp_get_thread_num(); tn = omp_get_num_threads();
#endif
        float *Vb = buf + (size_t)tid * bf, *Mb = Vb + npt * wino_pt_pad((size_t)cin * b.bp);
        for (long k = nblk * tid / tn; k < nblk * (tid + 1) / tn; k++) { /* outputs never overlap: any split */
            const long u0 = k * b.R, u1 = u0 + b.R < nu ? u0 + b.R : nu;
            wino_fwd_block(&b, &g, n, cin, cout, P, x, y, u0, u1, Vb, Mb);
        }
    }
}

/* the backward's chunk: V and M of a chunk are read back 2-3 times, from L2 if it is small; but each chunk streams
 * the transformed weights (dx product) and dU, so a chunk of narrow layers is kept near L2 and one of wide layers
 * at >= 4x the weights' floats (within the workspace budget) */
static size_t wino_bwd_budget(int npt, int cin, int cout, size_t budget) {
    size_t b = (size_t)4 * npt * cin * cout;
    if (b < WINO_BWD_L2F) b = WINO_BWD_L2F;
    return b < budget ? b : budget;
}

void wino_backward(int m, int n, int cin, int cout, int h, int w, const float *W, int ldw, const float *x,
                   const float *dy, float *dW, float *dx, float *ws, size_t budget) {
    SC_CHECK(w <= WINO_WMAX && n > 0 && cin > 0 && cout > 0, "conv_wino: bad shape n=%d cin=%d cout=%d w=%d", n,
             cin, cout, w);
    const int npt = wino_npt(m);
    const int nb_max = wino_chunk(m, n, cin, cout, h, w, wino_bwd_budget(npt, cin, cout, budget));
    const int tpi = wino_tiles(m, h, w);
    const size_t hw = (size_t)h * w, uxs = (size_t)cin * cout, mpart = (size_t)npt * cout * nb_max * tpi;
    const wino_geom g = wino_geom_now(m);
    float *P = wino_align(ws), *dU = ws + wino_packed_bound(npt, cin, cout), *M = dU + npt * uxs, *V = M + mpart;
    /* past V: the region's block buffers (and any chunk space V and M leave), at least WINO_FT threads' dU packs */
    float *buf = V + (size_t)npt * cin * nb_max * tpi;
    const size_t rest = wino_region(m, n, cin, cout, h, w, budget) - (size_t)(buf - M), duf = wino_du_floats(npt, cin, cout);
    const int kc = wino_du_kc(npt, cin, cout);
    if (dx) wino_weights(cin, cout, W, ldw, &g, 1, P);
    for (int n0 = 0; n0 < n; n0 += nb_max) {
        const int nb = n - n0 < nb_max ? n - n0 : nb_max, T = nb * tpi;
        const int ipc = wino_ipc(m, tpi), ng = (nb + ipc - 1) / ipc; /* calls of the plane transforms per channel */
        const size_t vxs = (size_t)cin * T, mxs = (size_t)cout * T;
        wino_in(m, n, n0, nb, cin, h, w, x, V);
        int nt = wino_threads((size_t)cout * nb * hw);
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt) if (nt > 1)
        for (int co = 0; co < cout; co++)
            for (int gi = 0; gi < ng; gi++) {
                const int i0 = gi * ipc, k = nb - i0 < ipc ? nb - i0 : ipc;
                const float *src = dy + ((size_t)co * n + n0 + i0) * hw;
                if (m == 4) wino4_dout_planes(src, k, h, w, M + (size_t)co * T + (size_t)i0 * tpi, mxs);
                else wino_dout_plane(src, h, w, M + (size_t)co * T + (size_t)i0 * tpi, mxs);
            }
        /* dU[xi] (+)= dM[xi] V[xi]^T: 16 independent products, each on one thread (a split of one cout x cin
         * product with k = T spends much of its time in barriers), packed into the block buffers past V */
        nt = (int)((rest - 16) / duf);
        nt = nt < blas_threads() ? nt : blas_threads();
#pragma omp parallel num_threads(nt) if (nt > 1)
        {
            int tid = 0, tn = 1;
#if defined(_OPENMP)
            tid = omp_get_thread_num(); tn = omp_get_num_threads();
#endif
            for (int xi = npt * tid / tn; xi < npt * (tid + 1) / tn; xi++) {
                const float *dm = M + xi * mxs, *v = V + xi * vxs;
                if (g.rows) wino_du_one(cout, cin, T, dm, v, n0 ? 1.f : 0.f, dU + xi * uxs, cin, 1, kc, buf + tid * duf);
                else wino_du_one(cin, cout, T, v, dm, n0 ? 1.f : 0.f, dU + xi * uxs, 1, cin, kc, buf + tid * duf);
            }
        }
        if (!dx) continue;
        wino_pgemm(&g, cin, cout, T, P, M, mxs, V, vxs); /* dV = U^T dM into V's space */
        nt = wino_threads((size_t)cin * nb * hw);
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt) if (nt > 1)
        for (int ci = 0; ci < cin; ci++)
            for (int gi = 0; gi < ng; gi++) {
                const int i0 = gi * ipc, k = nb - i0 < ipc ? nb - i0 : ipc;
                float *dst = dx + ((size_t)ci * n + n0 + i0) * hw;
                if (m == 4) wino4_din_planes(V + (size_t)ci * T + (size_t)i0 * tpi, vxs, k, h, w, dst);
                else wino_din_plane(V + (size_t)ci * T + (size_t)i0 * tpi, vxs, h, w, dst);
            }
    }
    winow_grad(m, cin, cout, dU, dW, ldw);
}
