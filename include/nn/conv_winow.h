/* nn/conv_winow: the weight side of nn/conv_wino (internal to it), for F(2x2,3x3) (m = 2, 16 points) and F(4x4,3x3)
 * (m = 4, 36 points): U = G g G^T packed for the micro-kernel, and dW += G^T dU G. Both run vectorized across 8
 * weights at a time, with the same expression per element as one weight at a time (bitwise equal results). */
#ifndef SC_NN_CONV_WINOW_H
#define SC_NN_CONV_WINOW_H
#include <stddef.h>

/* U = G g G^T for g = W[co][ci*9 .. +9] (row stride ldw): point xi at P + xi*pxs, panels of ww <= 32 rows of U[xi]
 * (cout x cin; tr: of U[xi]^T, cin x cout) at stride ps, each k-major (row r of panel wb, column kk at
 * [wb*ps + kk*ww + r]), rows past the end zero. Threads over the panels. */
void winow_pack(int m, int cin, int cout, const float *W, int ldw, int ww, int tr, float *P, size_t pxs, size_t ps);
/* dW[co][ci*9 ..] += G^T dU G, dU[xi][co][ci] (point stride cin*cout). Threads over co. */
void winow_grad(int m, int cin, int cout, const float *dU, float *dW, int ldw);
/* dst[t*p + r] = src[r*ld + t] for r < m, t < kc; rows m .. p-1 zero: an operand of the dU = dM V^T products
 * (k = the tile index, along which both operands' rows run) packed as a panel of p rows, k-major */
void winow_tpack(const float *src, size_t ld, int m, int kc, int p, float *restrict dst);
#endif
