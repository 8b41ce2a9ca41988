/* tests/conv_ref.h: the convolution's reference in double (the definition's loops), shared by test_conv_fused and
 * test_conv_wino. CNHW activations, W the slice [:cout, :cin] of a [cout_max][cin_max*k*k] weight. */
#ifndef SC_TESTS_CONV_REF_H
#define SC_TESTS_CONV_REF_H
#include "nn/conv.h"
#include <math.h>
#include <stddef.h>

/* y = conv(W slice, x), dx = conv^T(W slice, g) and dW += g x im2col(x)^T, all in double; |terms| sums for the tolerance */
static void conv_ref(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, const float *x,
                     const float *g, double *y, double *ya, double *dx, double *dxa, double *dw, double *dwa) {
    int k = d->k, s = d->stride, ldw = d->cin_max * k * k;
    int ho = conv_out_size(h, k, s, d->pad), wo = conv_out_size(w, k, s, d->pad);
    size_t hw = (size_t)h * w, howo = (size_t)ho * wo;
    for (int co = 0; co < cout; co++)
        for (int b = 0; b < n; b++)
            for (int oh = 0; oh < ho; oh++)
                for (int ow = 0; ow < wo; ow++) {
                    size_t o = ((size_t)co * n + b) * howo + (size_t)oh * wo + ow;
                    for (int ci = 0; ci < cin; ci++)
                        for (int kh = 0; kh < k; kh++)
                            for (int kw = 0; kw < k; kw++) {
                                int ih = oh * s - d->pad + kh, iw = ow * s - d->pad + kw;
                                if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                                size_t xi = ((size_t)ci * n + b) * hw + (size_t)ih * w + iw;
                                size_t wi = (size_t)co * ldw + (ci * k + kh) * k + kw;
                                double wv = W[wi];
                                y[o] += wv * x[xi]; ya[o] += fabs(wv * x[xi]);
                                dx[xi] += wv * g[o]; dxa[xi] += fabs(wv * g[o]);
                                dw[wi] += (double)g[o] * x[xi]; dwa[wi] += fabs((double)g[o] * x[xi]);
                            }
                }
}
#endif
