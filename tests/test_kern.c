/* tests/test_kern: nn/kern's per-ISA kernels (batch-norm rows, element-wise passes, the loss's softmax rows) on
 * every vector-ISA path the CPU has, against double-precision loops written from the definitions. The lengths
 * cover no full vector, one, several, the 256-float chunks of the masked BN sums and every tail of 8 and 16 lanes.
 * Tolerances: BN's row sums add 16 float terms per lane before double (error <= ~16 x 6e-8 of the sum of
 * magnitudes: 2e-6 used; a wrong or lost element moves them by ~1/m of it, >= 5e-4 here); the float element
 * expressions round once or twice (~1.2e-7 relative each: 1e-6 used); kern's exp is ~2 ulp, so the softmax
 * quantities get 1e-5 relative (a lane-order or wrong-element bug moves them by far more). */
#include "nn/bn.h"
#include "nn/kern.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/rng.h"
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "test_util.h"
#include "isa_each.h"

static rng_stream g_rng;
static const int lens[] = {1, 2, 7, 8, 15, 16, 17, 31, 33, 100, 255, 256, 257, 513, 1037};
#define NLENS ((int)(sizeof lens / sizeof lens[0]))
#define LMAX 1037

/* the table under test is the active path's: a dispatch bug would test one table twice */
static const nn_kern *kern(void) {
    const nn_kern *k = nn_kern_active();
    assert_string_equal(k->name, sc_isa_name(sc_isa_active()));
    assert_int_equal(k->lanes, sc_isa_active() == SC_ISA_AVX512 ? 16 : 8);
    return k;
}

static void fill(float *x, int n, float scale, float shift) {
    tu_fill_normal(&g_rng, x, (size_t)n, scale);
    for (int i = 0; i < n; i++) x[i] += shift;
}

static void near(double got, double ref, double scale, double tol) {
    if (fabs(got - ref) > tol * scale + 1e-30) fail_msg("got %.12g, expected %.12g (tolerance %.3g x %.3g)", got, ref, tol, scale);
}

static void test_bn_rows(void **st) {
    (void)st;
    const nn_kern *k = kern();
    float x[LMAX], dy[LMAX], y[LMAX], res[LMAX], dx[LMAX];
    for (int li = 0; li < NLENS; li++) {
        const int m = lens[li];
        fill(x, m, 1.5f, 0.7f); fill(dy, m, 1.f, 0.f); fill(res, m, 1.f, 0.f);
        double s1, s2, r1 = 0, r2 = 0, a1 = 0;
        for (int i = 0; i < m; i++) { r1 += x[i]; r2 += (double)x[i] * x[i]; a1 += fabs(x[i]); }
        k->bn_row_sums(x, m, &s1, &s2);
        near(s1, r1, a1, 2e-6); near(s2, r2, r2, 2e-6);
        const double mean = (float)(r1 / m); /* callers pass the saved float mean */
        const float s = 0.9f, mu = 0.6f, h = -0.1f;
        for (int relu = 0; relu < 2; relu++) {
            double g1 = 0, g2 = 0, sc = 0;
            for (int i = 0; i < m; i++) {
                const double g = !relu || bn_saved_affine(x[i], s, mu, h) > 0.f ? dy[i] : 0.0;
                g1 += g; g2 += g * ((double)x[i] - mean); sc += fabs(g) * (1 + fabs(x[i] - mean));
            }
            k->bn_row_bwd_sums(x, dy, m, mean, relu, s, mu, h, &s1, &s2);
            near(s1, g1, sc, 2e-6); near(s2, g2, sc, 2e-6);
            for (int wres = 0; wres < 2; wres++) {
                const float scale = 1.3f, shift = -0.4f;
                k->bn_affine_row(x, y, m, scale, shift, relu, wres ? res : NULL);
                for (int i = 0; i < m; i++) {
                    double v = (double)x[i] * scale + shift + (wres ? res[i] : 0.0);
                    const double mag = fabs((double)x[i] * scale) + fabs(shift) + (wres ? fabs(res[i]) : 0.0);
                    if (relu && v <= 0) { assert_true(y[i] <= 1e-6 * mag && y[i] >= 0.f); continue; }
                    near(y[i], v, mag, 1e-6);
                }
            }
            const float a = 0.8f, p = -0.3f, q = 0.05f, ms = 1.1f, mh = 0.2f;
            k->bn_bwd_row(x, dy, dx, m, a, p, q, mu, relu, ms, mh);
            for (int i = 0; i < m; i++) {
                const double g = !relu || bn_saved_affine(x[i], ms, mu, mh) > 0.f ? dy[i] : 0.0;
                const double v = a * g + p * ((double)x[i] - mu) + q;
                near(dx[i], v, fabs(a * g) + fabs(p * (x[i] - mu)) + fabs(q), 1e-6);
            }
            float dyc[LMAX]; /* in place: dx over dy, the same values */
            memcpy(dyc, dy, sizeof(float) * m);
            k->bn_bwd_row(x, dyc, dyc, m, a, p, q, mu, relu, ms, mh);
            assert_memory_equal(dyc, dx, sizeof(float) * m);
        }
        /* masked by a ReLU's output (res as y: about half <= 0), written back: the masked row's plain sums */
        float gm[LMAX], gr[LMAX];
        double t1, t2;
        memcpy(gm, dy, sizeof(float) * m);
        k->bn_row_bwd_sums_ymask(x, res, gm, m, mean, &s1, &s2);
        for (int i = 0; i < m; i++) gr[i] = res[i] > 0.f ? dy[i] : 0.f;
        assert_memory_equal(gm, gr, sizeof(float) * m);
        k->bn_row_bwd_sums(x, gr, m, mean, false, 0.f, 0.f, 0.f, &t1, &t2);
        assert_memory_equal(&s1, &t1, sizeof s1);
        assert_memory_equal(&s2, &t2, sizeof s2);
    }
}

/* The variance BN takes from the sums, sum x^2 / m - mean^2, on rows whose mean is far from zero (1000 std):
 * the float blocks must not carry that offset, or sum x^2's float rounding (~1e-7 of 1e6 per element) swamps
 * the variance of 1. Against a two-pass double reference: 1e-4 relative. */
static void test_bn_row_sums_offset(void **st) {
    (void)st;
    const nn_kern *k = kern();
    enum { M = 20000 };
    static float x[M];
    const float offs[] = {1e3f, -3e3f, 0.f};
    for (int oi = 0; oi < 3; oi++) {
        fill(x, M, 1.f, offs[oi]);
        double mean = 0, var = 0, s1, s2;
        for (int i = 0; i < M; i++) mean += x[i];
        mean /= M;
        for (int i = 0; i < M; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
        var /= M;
        k->bn_row_sums(x, M, &s1, &s2);
        near(s1 / M, mean, fabs(mean) + 1, 1e-6);
        near(s2 / M - (s1 / M) * (s1 / M), var, var, 1e-4);
    }
}

static void test_elementwise(void **st) {
    (void)st;
    const nn_kern *k = kern();
    enum { N = 200003 }; /* above ops' 2-thread threshold */
    float *x = sc_calloc_n(float, N), *y = sc_calloc_n(float, N + 1), *g = sc_calloc_n(float, N), *d = sc_calloc_n(float, N);
    fill(x, N, 1.f, 0.f); fill(g, N, 1.f, 0.f);
    x[5] = 0.f; x[N - 1] = -0.f;
    for (int li = 0; li <= NLENS; li++) {
        const size_t n = li < NLENS ? (size_t)lens[li] : N;
        for (int nt = 1; nt <= 2; nt++) {
            memset(y, 0xff, sizeof(float) * (N + 1));
            k->relu_forward(n, x, y, nt);
            for (size_t i = 0; i < n; i++) assert_true(y[i] == (x[i] > 0 ? x[i] : 0.f) && !signbit(y[i]));
            assert_true(isnan(y[n])); /* nothing past len */
            k->relu_backward(n, y, g, d, nt);
            for (size_t i = 0; i < n; i++) assert_true(d[i] == (x[i] > 0 ? g[i] : 0.f));
            memcpy(d, x, sizeof(float) * n);
            k->add_inplace(n, d, g, nt);
            for (size_t i = 0; i < n; i++) assert_true(d[i] == (float)((double)x[i] + g[i])); /* one rounding */
        }
    }
    sc_free(x); sc_free(y); sc_free(g); sc_free(d);
}

/* log sum_j exp(s z_j), the softmax and the teacher-weighted sum, in double from the definitions */
static double ref_lse(const float *z, int c, double s) {
    double mx = -INFINITY, sum = 0;
    for (int j = 0; j < c; j++) mx = fmax(mx, s * z[j]);
    for (int j = 0; j < c; j++) sum += exp(s * z[j] - mx);
    return mx + log(sum);
}

static void test_softmax_rows(void **st) {
    (void)st;
    const nn_kern *k = kern();
    float z[LMAX], t[LMAX], dr[LMAX];
    for (int li = 0; li < NLENS; li++) {
        const int c = lens[li];
        fill(z, c, 3.f, 0.5f); fill(t, c, 2.f, -0.2f);
        float mx = z[0];
        for (int j = 1; j < c; j++) mx = z[j] > mx ? z[j] : mx;
        z[c / 2] = mx = mx + 1.f; /* the maximum in the middle, not at a vector start */
        assert_true(k->row_max(z, c) == mx);
        const float a = 2.5f, inv_tau = 1.f / 0.7f;
        const double lse_c = ref_lse(z, c, a), lse_s = ref_lse(z, c, inv_tau), lse_t = ref_lse(t, c, inv_tau);
        near(k->row_lse(z, c, mx, a), lse_c, fabs(lse_c) + 1, 1e-6);
        near(k->row_lse(z, c, mx, inv_tau), lse_s, fabs(lse_s) + 1, 1e-6);
        double ptz = 0, pts = 0;
        for (int j = 0; j < c; j++) { ptz += exp(t[j] * (double)inv_tau - lse_t) * z[j]; pts += exp(t[j] * (double)inv_tau - lse_t) * fabs(z[j]); }
        near(k->row_ptz(z, t, c, inv_tau, (float)lse_t), ptz, pts, 1e-5);
        const float gc = 0.37f, gk = 0.21f;
        for (int kd = 0; kd < 2; kd++) {
            k->row_grad(z, kd ? t : NULL, dr, c, a, (float)lse_c, gc, inv_tau, (float)lse_s, (float)lse_t, kd ? gk : 0.f);
            for (int j = 0; j < c; j++) {
                const double pc = exp(a * (double)z[j] - lse_c), ps = exp(z[j] * (double)inv_tau - lse_s),
                             pt = exp(t[j] * (double)inv_tau - lse_t);
                const double v = gc * pc + (kd ? gk * (ps - pt) : 0.0);
                near(dr[j], v, gc * pc + (kd ? gk * (ps + pt) : 0.0) + 1e-30, 1e-5);
            }
        }
    }
}

int main(void) {
    g_rng = rng_stream_make(19, 7, 0, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bn_rows), cmocka_unit_test(test_bn_row_sums_offset), cmocka_unit_test(test_elementwise), cmocka_unit_test(test_softmax_rows),
    };
    return isa_each_run_group(tests); /* every ISA path the CPU has */
}
