/* nn/layout: the one tensor convention of the engine.
 *
 * Activations are fp32 "CNHW": x[c][n][h][w], channel slowest. A width-w activation is simply the first
 * C_w channels, i.e. the first C_w*N*H*W floats of the full-width buffer, so slicing never copies, BN
 * works on contiguous rows, and a convolution over the whole batch is one GEMM:
 *     Y[C_out][N*Ho*Wo] = W[C_out][C_in*k*k] x col[C_in*k*k][N*Ho*Wo].
 * Feature vectors (after global average pooling, in the heads) are the same with H=W=1: x[d][n].
 *
 * Weights are one full-size tensor per layer, row-major [C_out_max][C_in_max*k*k]; width w uses the
 * sub-block rows [0, out_w) x cols [0, in_w*k*k) with leading dimension C_in_max*k*k. Every backward
 * ADDS into the full-size gradient (+=), so the widths of one step accumulate; it never touches the
 * gradient outside its slice.
 *
 * Logits for losses are sample-major [N][C] row-major (rows are softmax rows).
 */
#ifndef SC_NN_LAYOUT_H
#define SC_NN_LAYOUT_H
#include <stddef.h>

/* Reduction hook through which a layer synchronizes over ranks without knowing MPI (comm/ provides it).
 * NULL (or fn NULL) = identity (one rank / local BN). Collective: every rank must call it in the same order. */
typedef struct nn_reducer {
    void (*sum_f64)(double *buf, int n, void *ctx); /* in-place allreduce(sum) of n doubles */
    void *ctx;
    /* optional: the buffer for the call's n doubles, NULL = the layer's own scratch. A reducer that suspends the
     * caller inside sum_f64 (ssl/wavefront.c) gives each suspended caller its own. */
    double *(*buf)(int n, void *ctx);
} nn_reducer;

static inline int nn_width_channels(int c_full, float w) { return (int)(w * (float)c_full + 1e-4f); }
#endif
