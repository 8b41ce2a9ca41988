/* nn/conv_thin (private to nn/conv.c): thin 3x3 pad-1 layers, stride 1 (at most 16 -> 16 channels, 32 -> 32 on an
 * AVX-512 CPU) or stride 2 (at most 16 -> 32), positions in the vector lanes. Each thread copies one image at a
 * time into zero-padded planes (one plane at stride 1, four phase planes at stride 2; thread-local, L1/L2-sized),
 * so every tap of an output position is one unaligned load at a fixed offset: no masks, no packed panels, no
 * workspace.
 * - weight gradient: GEMM panels (conv_fused's, or im2col + BLIS) transpose both operands; with 4-32 output
 *   channels the transposes and packing cost as much as the products. Here dW[co][ci,t] accumulates dY x the
 *   planes at tap t's offset, a vector of positions at a time, lanes summed at the end;
 * - forward and dx: 4 output channels (8 on the avx512 path) x 3 vectors of positions per register block; dx of
 *   stride 2 one phase plane at a time, then interleaved. */
#ifndef SC_NN_CONV_THIN_H
#define SC_NN_CONV_THIN_H
#include "nn/conv.h"
#include <stddef.h>

#define CONVT_COUT_MAX 32 /* output channels (stride 2; the thread-private lane accumulators: 32 x 16 x 9 x 8) */
#define CONVT_CIN_MAX 32

/* 1 when conv_thin computes d for cin -> cout channels of h x w (forward, dx and the weight gradient): 3x3 pad
 * 1, AVX2 build; stride 1 with cin, cout <= 16 (<= 32 when the CPU has AVX-512, whichever path is forced), rows
 * of at least 8 and (h+2)(w+2) <= 4096; stride 2 with cin <= 16, cout <= 32 and the phase planes within the
 * thread-local buffers. */
int convt_applies(const conv_desc *d, int cin, int cout, int h, int w);
/* dW[:cout, :cin*9] (row stride ldw) += the weight gradient of d over x [cin][n][h][w] and dy [cout][n][ho][wo]
 * (CNHW); dx[cin][n][h][w] = the input gradient (overwritten; skipped when dx is NULL). Per image, dY's padded
 * planes serve both. add (NULL: none; may be dx): dx = the input gradient + add. blas_threads() threads take
 * chunks of images as they ask; dW sums one partial per chunk in chunk order, so that neither the thread count nor
 * their speeds change a bit of it. */
void convt_backward(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, int ldw,
                    const float *x, const conv_pre *pre, const float *dy, float *dW, float *dx, const float *add);
/* pre (NULL: none): the layer reads conv.h's prologue of x, applied while an image is copied into its planes.
 * y[cout][n][ho][wo] = W[:cout, :cin*9] (row stride ldw) applied to x[cin][n][h][w] (CNHW); overwrites y. */
void convt_forward(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, int ldw,
                   const float *x, const conv_pre *pre, float *y);
#endif
