/* nn/conv_wino: Winograd F(2x2,3x3) for 3x3 stride-1 pad-1 convolutions over CNHW activations (nn/layout.h).
 * 2.25x fewer multiplies than the direct convolution: each 4x4 input tile (stride 2) is transformed (V = B^T d B),
 * each weight (U = G g G^T), and the 16 transform points are 16 GEMMs M[xi] = U[xi] (cout x cin) x V[xi] (cin x T)
 * on BLIS's micro-kernel (blas_ukr, panels packed here, dU = dM V^T included); the output tile is A^T M A (2x2,
 * cropped at an odd edge). The backward is the transpose of each of these linear maps. The forward runs on blocks of tiles within each thread's L2 (transform, products,
 * output transform fused); the backward takes images in chunks so that V and M stay within a budget of floats. */
#ifndef SC_NN_CONV_WINO_H
#define SC_NN_CONV_WINO_H
#include <stddef.h>
#include "nn/conv.h"

/* 3x3, stride 1, pad 1, rows no wider than the transforms' stack buffers */
int wino_shape_ok(const conv_desc *d, int h, int w);

/* Floats of workspace for a batch of n (U and dU: 32*cin*cout, plus V and M for the images of one chunk, which
 * take at most `budget` floats unless one image needs more, plus two threads' forward block buffers, ~1 MB each;
 * more threads take their buffers from the chunk space where it is large enough). Monotone in n, cin and cout. */
size_t wino_workspace_floats(int n, int cin, int cout, int h, int w, size_t budget);

/* m: the output tile, 2 (F(2x2,3x3)) or 4 (F(4x4,3x3), nn/conv_wino4); the workspace serves both.
 * y[cout][n][h][w] = conv3x3(W[:cout,:cin] (row stride ldw), x[cin][n][h][w]). */
void wino_forward(int m, int n, int cin, int cout, int h, int w, const float *W, int ldw, const float *x, float *y,
                  float *ws, size_t budget);
/* dW[:cout,:cin] += dL/dW; dx (if non-NULL) = dL/dx (overwritten). */
void wino_backward(int m, int n, int cin, int cout, int h, int w, const float *W, int ldw, const float *x,
                   const float *dy, float *dW, float *dx, float *ws, size_t budget);
#endif
