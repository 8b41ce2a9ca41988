/* nn/conv_thin's private parts: the limits and geometry shared by conv_thin.c (which layers apply, the dispatch)
 * and conv_thin_body.inc (the kernels, compiled once per vector ISA: conv_thin_avx2.c, conv_thin_avx512.c). */
#ifndef SC_NN_CONV_THIN_INTERNAL_H
#define SC_NN_CONV_THIN_INTERNAL_H
#include "nn/conv_thin.h"
#include <stddef.h>

#define CONVT_TMAX 256 /* threads */
#define CONVT_SLACK 64 /* floats after the planes: the last block's loads read up to 3 vectors + 2 past them */
#define CONVT_PADMAX 4096 /* floats of one channel's padded image (stride 1) */
#define CONVT_XMAX (CONVT_CIN_MAX * CONVT_PADMAX) /* floats of one image's planes, all channels */
#define CONVT_GROUP 16 /* channels of rows held at once (the forward's outputs, dW's dY) */

/* The planes of one layer: x's (or dY's, for dx) phase planes of one image, and the output positions. */
typedef struct {
    int s, h, w, ho, wo;
    int wq, rq;    /* row stride and rows of a phase plane: wo + 1 and ho + 2 (stride 1), wo + 1, ho + 1 (2) */
    size_t pph;    /* floats of a phase plane */
    size_t cs;     /* floats of one channel's planes (s*s phase planes) */
    size_t nq;     /* output positions in padded-row order: ho * wq */
    int off[9];    /* tap kh*3+kw of output position q reads the channel's planes at q + off */
} convt_geom;

static inline void convt_geom_make(int s, int h, int w, convt_geom *g) {
    g->s = s; g->h = h; g->w = w;
    g->ho = conv_out_size(h, 3, s, 1); g->wo = conv_out_size(w, 3, s, 1);
    const int D = 2 / s; /* the taps' largest shift in phase-plane rows and columns */
    /* one zero column between rows: a row's right border is the next row's left one */
    g->wq = g->wo + 1; g->rq = g->ho + D;
    g->pph = (size_t)g->rq * g->wq;
    g->cs = (size_t)s * s * g->pph;
    g->nq = (size_t)g->ho * g->wq;
    for (int kh = 0; kh < 3; kh++)
        for (int kw = 0; kw < 3; kw++)
            g->off[kh * 3 + kw] = (int)(((kh % s) * s + kw % s) * g->pph) + kh / s * g->wq + kw / s;
}

/* dx of stride 2 by phases: the rows of one dx channel hold its 4 phase planes, each rounded up to 8 floats,
 * with room for the last block's overrun; dY's planes are padded by one row and column before and after */
static inline size_t convt_dx_phase_floats(const convt_geom *g) { return ((g->pph + 7) & ~(size_t)7); }
static inline size_t convt_dx_cs(const convt_geom *g) { return (size_t)(g->ho + 2) * g->wq; }

/* one vector ISA's kernels (convt_forward / convt_backward of conv_thin.h) */
typedef struct {
    void (*forward)(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, int ldw,
                    const float *x, const conv_pre *pre, float *y);
    void (*backward)(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, int ldw,
                     const float *x, const conv_pre *pre, const float *dy, float *dW, float *dx, const float *add);
} convt_impl;
extern const convt_impl convt_impl_avx2, convt_impl_avx512;
#endif
