/* nn/conv_sub: 1x1 stride-s convolutions, one chunk of images per thread at a time (see nn/conv_sub.h). The
 * im2col route they replace wrote the whole subsampled batch, then ran whole-batch BLIS GEMMs of K = cin (the
 * forward, dx: few FMAs per element of C), or of M x N = cout x cin (dW: a tiny C over a K of n*ho*wo that BLIS
 * does not split) and a col2im pass: on 8-32 channels they ran at 3-20% of sgemm. */
#include "nn/conv_sub.h"
#include "nn/conv_fused.h"
#include "blas/blas.h"
#include "core/error.h"
#include <stdint.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

/* floats of a thread's panel: at least 256 columns (the GEMMs' N, or dW's K per call) and one image, else 256 KB
 * (L2-resident while its GEMMs read it; 128-512 KB measured alike, 128 KB 10% slower: stride_bench) */
#define CONVS_PANEL_MIN (64 * 1024)

static size_t convs_panel_floats(int cin, int hwo) {
    size_t p = CONVS_PANEL_MIN, a = (size_t)cin * 256, b = (size_t)cin * hwo;
    if (a > p) p = a;
    if (b > p) p = b;
    return (p + 15) & ~(size_t)15;
}

static size_t convs_thread_floats(int cin, int cout, int hwo) {
    return convs_panel_floats(cin, hwo) + (((size_t)cin * cout + 15) & ~(size_t)15);
}

int convs_applies(const conv_desc *d, int cin) {
    return d->k == 1 && d->pad == 0 && d->stride >= 2 && cin <= CONVS_CIN_MAX && blas_threads() <= CONVS_TMAX;
}

size_t convs_workspace_floats(int cin, int cout, int hwo) {
    return (size_t)CONVS_TMAX * convs_thread_floats(cin, cout, hwo) + 16;
}

/* p[c][i - i0][q] = x[c][i][s*(q / wo)][s*(q % wo)] for images [i0, i1): the panel of a chunk (ld = columns) */
static void convs_gather(int s, int n, int cin, int h, int w, int ho, int wo, int i0, int i1, const float *x,
                         float *p) {
    const size_t hw = (size_t)h * w, hwo = (size_t)ho * wo, ld = (size_t)(i1 - i0) * hwo;
    for (int c = 0; c < cin; c++)
        for (int i = i0; i < i1; i++) {
            const float *src = x + ((size_t)c * n + i) * hw;
            float *dst = p + (size_t)c * ld + (size_t)(i - i0) * hwo;
            for (int r = 0; r < ho; r++, dst += wo) {
                const float *row = src + (size_t)s * r * w;
                if (s == 2) /* a constant stride: GCC deinterleaves with shuffles */
                    for (int j = 0; j < wo; j++) dst[j] = row[2 * j];
                else
                    for (int j = 0; j < wo; j++) dst[j] = row[(size_t)s * j];
            }
        }
}

/* dx[c][i] for images [i0, i1): the panel's values at (s*r, s*j), add's (or 0) elsewhere; add == dx: only the
 * panel's positions are touched */
static void convs_scatter(int s, int n, int cin, int h, int w, int ho, int wo, int i0, int i1, const float *p,
                          float *dx, const float *add) {
    const size_t hw = (size_t)h * w, hwo = (size_t)ho * wo, ld = (size_t)(i1 - i0) * hwo;
    for (int c = 0; c < cin; c++)
        for (int i = i0; i < i1; i++) {
            const size_t at = ((size_t)c * n + i) * hw;
            float *dst = dx + at;
            const float *src = p + (size_t)c * ld + (size_t)(i - i0) * hwo;
            if (!add) memset(dst, 0, sizeof(float) * hw);
            else if (add != dx) memcpy(dst, add + at, sizeof(float) * hw);
            for (int r = 0; r < ho; r++, src += wo) {
                float *row = dst + (size_t)s * r * w;
                if (s == 2)
                    for (int j = 0; j < wo; j++) row[2 * j] += src[j];
                else
                    for (int j = 0; j < wo; j++) row[(size_t)s * j] += src[j];
            }
        }
}

/* The call's output geometry, its workspace base and its thread count (no more threads than images) */
typedef struct {
    int ho, wo, hwo, nt;
    size_t ncol; /* n * ho * wo: the GEMMs' leading dimension of y and dY */
    float *base;
} convs_geom;

static convs_geom convs_geom_make(int s, int n, int h, int w, float *ws) {
    convs_geom g = {(h - 1) / s + 1, (w - 1) / s + 1, 0, blas_threads(), 0,
                    (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63)};
    g.hwo = g.ho * g.wo;
    g.ncol = (size_t)n * g.hwo;
    if (g.nt > n) g.nt = n;
    SC_CHECK(g.ncol < ((size_t)1 << 31), "conv_sub: %zu columns exceed BLIS's int", g.ncol);
    return g;
}

/* The calling thread's images [i0, i1) and chunk size (images per panel) */
typedef struct {
    int tid, tn, i0, i1, nb;
    float *panel, *dw; /* this thread's panel and private dW [cout][cin] */
} convs_part;

static convs_part convs_part_here(int n, int cin, int cout, const convs_geom *g) {
    int tid = 0, tn = 1;
#if defined(_OPENMP)
    tid = omp_get_thread_num(); tn = omp_get_num_threads();
#endif
    const size_t per = convs_thread_floats(cin, cout, g->hwo), pf = convs_panel_floats(cin, g->hwo);
    convs_part pt = {tid, tn, (int)((long)n * tid / tn), (int)((long)n * (tid + 1) / tn),
                     (int)(pf / ((size_t)cin * g->hwo)), g->base + (size_t)tid * per, g->base + (size_t)tid * per + pf};
    return pt;
}

void convs_forward(int s, int n, int cin, int cout, int h, int w, const float *W, int ldw, const float *x, float *y,
                   float *ws) {
    const convs_geom g = convs_geom_make(s, n, h, w, ws);
#pragma omp parallel num_threads(g.nt) if (g.nt > 1)
    {
        const convs_part pt = convs_part_here(n, cin, cout, &g);
        for (int i = pt.i0; i < pt.i1; i += pt.nb) {
            const int e = i + pt.nb < pt.i1 ? i + pt.nb : pt.i1, cols = (e - i) * g.hwo;
            convs_gather(s, n, cin, h, w, g.ho, g.wo, i, e, x, pt.panel);
            blas_sgemm_1t(false, false, cout, cols, cin, 1.f, W, ldw, pt.panel, cols, 0.f, y + (size_t)i * g.hwo,
                          (int)g.ncol);
        }
    }
}

void convs_backward(int s, int n, int cin, int cout, int h, int w, const float *W, int ldw, const float *x,
                    const float *dy, float *dW, float *dx, const float *add, float *ws) {
    const convs_geom g = convs_geom_make(s, n, h, w, ws);
    const float *priv[CONVS_TMAX];
    /* dW with conv_fused's transposing packs: BLIS's skx context packs both operands of this shape (k contiguous)
     * with reference code */
    const int nt_own = convf_gemm_nt_applies(cout);
#pragma omp parallel num_threads(g.nt) if (g.nt > 1)
    {
        const convs_part pt = convs_part_here(n, cin, cout, &g);
        const int tid = pt.tid, tn = pt.tn;
        for (int i = pt.i0; i < pt.i1; i += pt.nb) {
            const int e = i + pt.nb < pt.i1 ? i + pt.nb : pt.i1, cols = (e - i) * g.hwo;
            const float *dyc = dy + (size_t)i * g.hwo;
            convs_gather(s, n, cin, h, w, g.ho, g.wo, i, e, x, pt.panel);
            /* the thread's dW over its images: the first chunk overwrites the private copy */
            if (nt_own)
                convf_gemm_nt(cout, cin, cols, dyc, (long)g.ncol, pt.panel, cols, i > pt.i0 ? 1.f : 0.f, pt.dw, cin);
            else
                blas_sgemm_1t(false, true, cout, cin, cols, 1.f, dyc, (int)g.ncol, pt.panel, cols,
                              i > pt.i0 ? 1.f : 0.f, pt.dw, cin);
            if (!dx) continue;
            /* the panel is no longer needed: W^T dY of the chunk, scattered into dx */
            blas_sgemm_1t(true, false, cin, cols, cout, 1.f, W, ldw, dyc, (int)g.ncol, 0.f, pt.panel, cols);
            convs_scatter(s, n, cin, h, w, g.ho, g.wo, i, e, pt.panel, dx, add);
        }
        priv[tid] = pt.i1 > pt.i0 ? pt.dw : NULL;
#pragma omp barrier
        /* every thread adds a range of dW's rows over the private copies, in thread order */
        const int r0 = (int)((long)cout * tid / tn), r1 = (int)((long)cout * (tid + 1) / tn);
        for (int r = r0; r < r1; r++)
            for (int t = 0; t < tn; t++) {
                if (!priv[t]) continue;
                const float *in = priv[t] + (size_t)r * cin;
                float *out = dW + (size_t)r * ldw;
#pragma omp simd
                for (int c = 0; c < cin; c++) out[c] += in[c];
            }
    }
}
