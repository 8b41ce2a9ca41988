/* nn/conv_fused (private to nn/conv.c): convolutions as one GEMM over the whole batch that builds BLIS's packed
 * B panels straight from CNHW planes (no im2col panel, no second packing pass) and calls BLIS's sgemm
 * micro-kernel. A convolution is described to it as a list of taps: each tap reads a source block of planes at
 * a shift (dh, dw) on the output grid, 0 outside it. "Same" stride-1 layers read x itself; strided layers read
 * the stride x stride phase planes of x (convf_phase_split), where every tap is a plain shift again. */
#ifndef SC_NN_CONV_FUSED_H
#define SC_NN_CONV_FUSED_H
#include "nn/conv.h"
#include <stddef.h>

#define CONVF_TMAX 49 /* taps: k <= 7 */

typedef struct {
    int ntaps;
    int dh[CONVF_TMAX], dw[CONVF_TMAX]; /* shift on the output grid */
    int phase[CONVF_TMAX];              /* which phase plane block the tap reads (0 for stride 1) */
    size_t src[CONVF_TMAX];             /* float offset of that block from the source pointer */
} convf_taps;

/* 1 when the stride-1 path handles d: stride 1, odd k <= 7, pad = (k-1)/2, AVX2 build, BLIS micro-kernel 6 x 16. */
int convf_applies(const conv_desc *d);
/* 1 when the phase path handles d on an h x w input: stride >= 2, k <= 7, no tap reaches past the output grid
 * (k-1-pad < stride, e.g. 3x3/2 pad 1; 1x1/2 pad 0 takes nn/conv_sub), every input row/column lands in a phase plane. */
int convf_phase_applies(const conv_desc *d, int h, int w);
/* taps of a same stride-1 convolution (row r = ci*k*k + kh*k + kw of the weight) */
void convf_taps_same(const conv_desc *d, convf_taps *tp);
/* taps of a phase-path convolution over convf_phase_split planes of cin channels, plane_floats = n*ho*wo */
void convf_taps_phase(const conv_desc *d, int cin, size_t plane_floats, convf_taps *tp);
/* xp[(a*s+b)][c][n][i][j] = x[c][n][s*i+a][s*j+b] (0 past h or w); xp holds s*s*c*n*ho*wo floats */
void convf_phase_split(int s, int n, int c, int h, int w, int ho, int wo, const float *x, float *xp);
/* the inverse: x[c][n][y][x] = xp[(y%s)*s + x%s][c][n][y/s][x/s] for every y < h, x < w */
void convf_phase_merge(int s, int n, int c, int h, int w, int ho, int wo, const float *xp, float *x);

/* Floats of workspace for the packed weights of a cout x K slice (64-byte alignment slack included). */
size_t convf_workspace_floats(int K, int cout);
/* y[cout][n*h*w] = W[:cout, :cin*ntaps] (row stride ldw) x B, B row (ci, t) = tap t of channel ci of x (planes
 * n*h*w floats apart) on the h x w output grid; overwrites y. */
void convf_forward(const convf_taps *tp, int n, int cin, int cout, int h, int w, const float *W, int ldw,
                   const float *x, float *y, float *ws);
/* 1 when convf_dw is worth it for K = cin*ntaps rows of dW (enough panels of 16 for the threads). */
int convf_dw_applies(int K, int cout);
/* dW[:cout, :cin*ntaps] (row stride ldw) += dY[cout][n*h*w] x B^T, B as in convf_forward, without a panel. */
void convf_dw(const convf_taps *tp, int n, int cin, int cout, int h, int w, const float *x, const float *dy,
              float *dW, int ldw);
/* 1 when convf_gemm_nt is used for m rows of C: a column-preferring kernel (skx) and the packed A block fits the
 * thread's panel. */
int convf_gemm_nt_applies(int m);
/* C[m][n] = A[m][k] x B[n][k]^T + beta C (row strides lda, ldb, ldc; k contiguous in both), on the calling
 * thread: the weight-gradient shape, whose operands BLIS's skx context packs with reference code. */
void convf_gemm_nt(int m, int n, int k, const float *A, long lda, const float *B, long ldb, float beta, float *C,
                   long ldc);
#endif
