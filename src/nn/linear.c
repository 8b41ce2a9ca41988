/* nn/linear: y[out][n] = W[:out, :in] x[in][n] + b, feature-major, one GEMM per call (see nn/linear.h). */
#include "nn/linear.h"
#include "blas/blas.h"
#include "core/error.h"

static void linear_check(const linear_desc *d, int n, int in, int out) {
    SC_CHECK(n > 0 && in > 0 && in <= d->in_max && out > 0 && out <= d->out_max,
             "linear: slice %dx%d (n=%d) outside the full weight %dx%d", out, in, n, d->out_max, d->in_max);
}

void linear_forward(const linear_desc *d, int n, int in, int out, const float *W, const float *b, const float *x,
                    float *y) {
    linear_check(d, n, in, out);
    float beta = 0.f;
    if (d->bias && b) {
        /* seed y with the bias and let the GEMM add on top (beta = 1) */
        for (int o = 0; o < out; o++) {
            float *yr = y + (size_t)o * n;
            const float bo = b[o];
            for (int j = 0; j < n; j++) yr[j] = bo;
        }
        beta = 1.f;
    }
    blas_sgemm(false, false, out, n, in, 1.f, W, d->in_max, x, n, beta, y, n);
}

void linear_backward(const linear_desc *d, int n, int in, int out, const float *W, const float *x, const float *dy,
                     float *dW, float *db, float *dx) {
    linear_check(d, n, in, out);
    blas_sgemm(false, true, out, in, n, 1.f, dy, n, x, n, 1.f, dW, d->in_max);
    if (d->bias && db) {
        for (int o = 0; o < out; o++) {
            const float *g = dy + (size_t)o * n;
            float s = 0.f;
            for (int j = 0; j < n; j++) s += g[j];
            db[o] += s;
        }
    }
    if (dx) blas_sgemm(true, false, in, n, out, 1.f, W, d->in_max, dy, n, 0.f, dx, n);
}
