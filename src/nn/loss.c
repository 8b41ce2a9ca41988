/* nn/loss: numerically stable losses over sample-major logits (see nn/loss.h). Softmaxes subtract the row
 * maximum; the row sums and the returned loss accumulate in double; dz first holds the exponentials so each is
 * computed once. */
#include "nn/loss.h"
#include "core/error.h"
#include <math.h>

static float loss_row_max(int c, const float *z) {
    float m = z[0];
    for (int j = 1; j < c; j++) m = z[j] > m ? z[j] : m;
    return m;
}

double loss_softmax_ce(int n, int c, const float *z, const int32_t *labels, double denom, float scale, float *dz) {
    SC_CHECK(n > 0 && c > 0 && denom > 0, "loss_softmax_ce: n=%d c=%d denom=%g", n, c, denom);
    const float k = (float)(scale / denom);
    double total = 0;
    for (int i = 0; i < n; i++) {
        const float *zr = z + (size_t)i * c;
        const int y = labels[i];
        SC_CHECK(y >= 0 && y < c, "loss_softmax_ce: label %d of row %d outside [0, %d)", y, i, c);
        const float mx = loss_row_max(c, zr);
        double s = 0;
        if (dz) {
            float *g = dz + (size_t)i * c;
            for (int j = 0; j < c; j++) { g[j] = expf(zr[j] - mx); s += g[j]; }
            const float f = (float)(k / s);
            for (int j = 0; j < c; j++) g[j] *= f;
            g[y] -= k;
        } else {
            for (int j = 0; j < c; j++) s += expf(zr[j] - mx);
        }
        total += (double)mx + log(s) - (double)zr[y];
    }
    return total / denom;
}

double loss_soft_ce(int n, int c, const float *z, const float *t, float tau_s, float tau_t, double denom, float scale,
                    float *dz) {
    SC_CHECK(n > 0 && c > 0 && denom > 0 && tau_s > 0 && tau_t > 0, "loss_soft_ce: n=%d c=%d denom=%g tau_s=%g tau_t=%g",
             n, c, denom, tau_s, tau_t);
    const float its = 1.f / tau_s, itt = 1.f / tau_t;
    /* d/dz_j of tau_s^2 * CE(p, softmax(z/tau_s)) = tau_s * (q_j - p_j) */
    const float k = (float)(scale / denom * tau_s);
    double total = 0;
    for (int i = 0; i < n; i++) {
        const float *zr = z + (size_t)i * c, *tr = t + (size_t)i * c;
        const float mz = loss_row_max(c, zr), mt = loss_row_max(c, tr);
        double sz = 0, st = 0;
        for (int j = 0; j < c; j++) st += expf((tr[j] - mt) * itt);
        float *g = dz ? dz + (size_t)i * c : NULL;
        for (int j = 0; j < c; j++) {
            float e = expf((zr[j] - mz) * its);
            sz += e;
            if (g) g[j] = e;
        }
        const double lsz = log(sz);
        const float ist = (float)(1.0 / st), isz = (float)(1.0 / sz);
        double row = 0;
        for (int j = 0; j < c; j++) {
            float p = expf((tr[j] - mt) * itt) * ist;
            row -= (double)p * ((double)((zr[j] - mz) * its) - lsz);
            if (g) g[j] = k * (g[j] * isz - p);
        }
        total += row;
    }
    return total * (double)tau_s * (double)tau_s / denom;
}

double loss_mse(int n, int c, const float *a, const float *b, double denom, float scale, float *da) {
    SC_CHECK(n > 0 && c > 0 && denom > 0, "loss_mse: n=%d c=%d denom=%g", n, c, denom);
    const size_t len = (size_t)n * c;
    const float k = (float)(2.0 * scale / (denom * c));
    double total = 0;
    for (size_t i = 0; i < len; i++) {
        float e = a[i] - b[i];
        total += (double)e * e;
        if (da) da[i] = k * e;
    }
    return total / (denom * c);
}
