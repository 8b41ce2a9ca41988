/* nn/conv_fused (private to nn/conv.c): "same" stride-1 convolutions as one GEMM over the whole batch that
 * builds BLIS's packed B panels straight from the CNHW input (no im2col panel, no second packing pass) and
 * calls BLIS's sgemm micro-kernel. See conv_fused.c. */
#ifndef SC_NN_CONV_FUSED_H
#define SC_NN_CONV_FUSED_H
#include "nn/conv.h"
#include <stddef.h>

/* 1 when the fused path handles d: stride 1, odd k <= 7, pad = (k-1)/2, AVX2 build, micro-kernel NR = 16. */
int convf_applies(const conv_desc *d);
/* Floats of workspace for the packed weights of a cout x (cin*k*k) slice (64-byte alignment slack included). */
size_t convf_workspace_floats(const conv_desc *d, int cin, int cout);
/* y[cout][n*h*w] = W[:cout, :cin*k*k] (row stride ldw) x im2col(x[cin][n][h][w]); overwrites y. */
void convf_forward(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, int ldw,
                   const float *x, float *y, float *ws);
/* 1 when convf_dw handles this slice (convf_applies, and enough (ci, tap) panels for the threads). */
int convf_dw_applies(const conv_desc *d, int cin, int cout);
/* dW[:cout, :cin*k*k] (row stride ldw) += dY[cout][n*h*w] x im2col(x)^T, without the im2col panel. */
void convf_dw(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *x, const float *dy,
              float *dW, int ldw);
#endif
