/* nn/conv_thin (private to nn/conv.c): thin stride-1 3x3 layers (at most 16 channels), positions in the
 * vector lanes. Each thread copies its images of x into zero-padded planes (thread-local, L1/L2-sized), so every
 * tap of a row is a plain unaligned load: no masks, no packed panels.
 * - weight gradient: the panel-based convf_dw transposes both operands into GEMM panels; with 4-16 output
 *   channels the transposes cost as much as the products. Here dW[co][ci,t] accumulates dY_row x the padded
 *   row shifted by t, 8 positions at a time, lanes summed at the end;
 * - forward (and dx, a forward with flipped weights): convf_ker's 6-row tiles compute 12 rows for 8 channels
 *   and wait on masked loads; here 4 output channels x 16 positions, the 3 taps of a kernel row 3 plain loads. */
#ifndef SC_NN_CONV_THIN_H
#define SC_NN_CONV_THIN_H
#include "nn/conv.h"
#include <stddef.h>

#define CONVT_COUT_MAX 16 /* output channels (the thread-private lane accumulators: 16 x 16 x 9 x 8 floats) */
#define CONVT_CIN_MAX 16

/* 1 when conv_thin computes d for cin -> cout channels of h x w (forward, dx as a forward with cin and cout
 * swapped, and the weight gradient): stride-1 3x3 pad 1, AVX2 build, cin and cout <= 16, rows of at least 8
 * positions, (h+2)(w+2) <= 4096. */
int convt_applies(const conv_desc *d, int cin, int cout, int h, int w);
/* dW[:cout, :cin*9] (row stride ldw) += sum over n*h*w positions of dY[co] x (tap t of x[ci]), i.e. the weight
 * gradient of a 3x3/1 pad-1 convolution; x [cin][n][h][w], dy [cout][n][h][w] (CNHW). No workspace (thread-local
 * buffers); blas_threads() threads, each over a range of images, the lanes summed in thread order. */
void convt_dw(int n, int cin, int cout, int h, int w, const float *x, const float *dy, float *dW, int ldw);
/* y[cout][n][h][w] = W[:cout, :cin*9] (row stride ldw) applied to x[cin][n][h][w], 3x3 stride 1 pad 1 (CNHW);
 * overwrites y. Positions in the vector lanes, output channels 4 per tile, x read from thread-local padded
 * planes (no masked loads). */
void convt_forward(int n, int cin, int cout, int h, int w, const float *W, int ldw, const float *x, float *y);
#endif
