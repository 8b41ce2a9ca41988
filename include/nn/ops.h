/* nn/ops: the element-wise and pooling layers, CNHW (see nn/layout.h). Every *_backward overwrites its dx
 * unless the name says "accumulate". */
#ifndef SC_NN_OPS_H
#define SC_NN_OPS_H
#include <stddef.h>
#include <stdint.h>

void relu_forward(size_t len, const float *x, float *y);        /* y may alias x */
void relu_backward(size_t len, const float *y, const float *dy, float *dx); /* uses the output y; dx may alias dy */

/* y += x (a residual or gradient sum), on the rank's threads for large arrays. */
void add_inplace(size_t len, float *restrict y, const float *restrict x);

/* 3x3 stride-2 pad-1 max pool (the ImageNet stem). argmax[c][n][ho][wo] = flat h*w index within its plane. */
void maxpool_forward(int c, int n, int h, int w, const float *x, float *y, int32_t *argmax);
void maxpool_backward(int c, int n, int h, int w, const float *dy, const int32_t *argmax, float *dx);

/* global average pool [c][n][h][w] -> [c][n] */
void gap_forward(int c, int n, int hw, const float *x, float *y);
void gap_backward(int c, int n, int hw, const float *dy, float *dx);

/* L2 normalisation of each column of feature-major x[d][n] (eps 1e-12 like F.normalize);
 * norms[n] saved for backward. */
void l2norm_forward(int d, int n, const float *x, float *y, float *norms);
void l2norm_backward(int d, int n, const float *y, const float *norms, const float *dy, float *dx);

/* transpose a [rows][cols] matrix into [cols][rows] */
void transpose(int rows, int cols, const float *x, float *y);
#endif
