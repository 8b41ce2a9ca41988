/* nn/conv_sub (private to nn/conv.c): 1x1 convolutions with stride s >= 2 and no padding (the ResNet's
 * downsampling shortcuts), which read only x[s*i][s*j]. Each thread takes a range of images, a chunk of them at a
 * time: it subsamples the chunk into an L2-sized panel and runs BLIS's single-thread GEMMs on it (the weight
 * gradient, on a column-preferring kernel, through conv_fused's transposing packs: convf_gemm_nt), and the
 * backward scatters the chunk's W^T dY straight into dx (+ add). No whole-batch panel is written and read back,
 * no GEMM of a few thousand columns shares its threads through barriers, and the weight gradient's long
 * reduction (K = n*ho*wo) is split over the threads (private copies, summed once at the end). */
#ifndef SC_NN_CONV_SUB_H
#define SC_NN_CONV_SUB_H
#include "nn/conv.h"
#include <stddef.h>

#define CONVS_TMAX 8 /* threads the workspace is planned for (more: conv.c's im2col path) */
/* Wider layers keep conv.c's im2col + whole-batch BLIS: B1's 96-512-channel shortcuts measured equal or up to 1.3x
 * slower here, 64 and fewer 1.1-1.9x faster (docs/performance-isa.md, "The strided layers") */
#define CONVS_CIN_MAX 64

/* 1 when this path computes d for cin input channels: k = 1, pad 0, stride >= 2, cin <= CONVS_CIN_MAX, at most
 * CONVS_TMAX threads */
int convs_applies(const conv_desc *d, int cin);
/* floats of workspace for cin -> cout channels with ho*wo output positions per image (any thread count it takes) */
size_t convs_workspace_floats(int cin, int cout, int hwo);
/* y[cout][n][ho][wo] = W[:cout, :cin] (row stride ldw) x x[:, :, ::s, ::s]; overwrites y */
void convs_forward(int s, int n, int cin, int cout, int h, int w, const float *W, int ldw, const float *x, float *y,
                   float *ws);
/* dW[:cout, :cin] += dY x[:, :, ::s, ::s]^T; dx (if non-NULL) = the input gradient, + add when add is non-NULL
 * (add may be dx: then only the positions read by the forward are written) */
void convs_backward(int s, int n, int cin, int cout, int h, int w, const float *W, int ldw, const float *x,
                    const float *dy, float *dW, float *dx, const float *add, float *ws);
#endif
