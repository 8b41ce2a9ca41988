/* tests/test_blas: blas_sgemm against a double-precision triple loop written from its definition, for every
 * transpose pair, leading dimensions larger than the rows (sub-blocks of wider matrices, as the width slices
 * are), alpha/beta including beta = 0 over NaN garbage (C must be overwritten, not scaled), k = 0, sizes on both
 * sides of the sup / packed switch, and 1 and 2 threads; then the double-precision wrappers eval/ridge uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "test_util.h"
#include "blas/blas.h"
#include "core/error.h"
#include <string.h>

static rng_stream g_rng;

/* C = alpha op(A) op(B) + beta C, row-major, stored A [m][lda] (ta: [k][lda]), B [k][ldb] (tb: [n][ldb]) */
static void ref_sgemm(int ta, int tb, int m, int n, int k, double alpha, const float *A, int lda, const float *B,
                      int ldb, double beta, const float *C0, int ldc, double *C, double *scale) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0, a = 0;
            for (int p = 0; p < k; p++) {
                double x = ta ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p];
                double y = tb ? B[(size_t)j * ldb + p] : B[(size_t)p * ldb + j];
                s += x * y;
                a += fabs(x * y);
            }
            double c0 = beta == 0 ? 0 : beta * C0[(size_t)i * ldc + j];
            C[(size_t)i * n + j] = alpha * s + c0;
            scale[(size_t)i * n + j] = fabs(alpha) * a + fabs(c0);
        }
}

static void one(int ta, int tb, int m, int n, int k, int pad, float alpha, float beta, int threads) {
    int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
    size_t na = (size_t)(ta ? k : m) * lda + 1, nb = (size_t)(tb ? n : k) * ldb + 1, nc = (size_t)m * ldc + 1;
    float *A = sc_calloc_n(float, na), *B = sc_calloc_n(float, nb), *C = sc_calloc_n(float, nc),
          *C0 = sc_calloc_n(float, nc), *got = sc_calloc_n(float, (size_t)m * n + 1);
    double *ref = sc_calloc_n(double, (size_t)m * n + 1), *scale = sc_calloc_n(double, (size_t)m * n + 1);
    tu_fill_uniform(&g_rng, A, na, -1.f, 1.f);
    tu_fill_uniform(&g_rng, B, nb, -1.f, 1.f);
    tu_fill_uniform(&g_rng, C0, nc, -1.f, 1.f);
    if (beta == 0.f)
        for (size_t i = 0; i < nc; i++) C0[i] = NAN; /* beta 0 must overwrite, never read */
    memcpy(C, C0, nc * sizeof(float));
    blas_set_threads(threads);
    blas_sgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
    ref_sgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C0, ldc, ref, scale);
    for (int i = 0; i < m; i++) {
        memcpy(got + (size_t)i * n, C + (size_t)i * ldc, (size_t)n * sizeof(float));
        for (int j = n; j < ldc && (size_t)i * ldc + j < nc; j++) /* the padding of C is not touched */
            if (memcmp(&C[(size_t)i * ldc + j], &C0[(size_t)i * ldc + j], sizeof(float)) != 0)
                fail_msg("ta %d tb %d %dx%dx%d: C[%d][%d] outside n written", ta, tb, m, n, k, i, j);
    }
    char what[96];
    snprintf(what, sizeof what, "sgemm ta %d tb %d %dx%dx%d pad %d threads %d", ta, tb, m, n, k, pad, threads);
    /* fp32 products of k terms: ~sqrt(k) * 6e-8 of the |terms| sum; 1e-5 leaves a wide margin */
    tu_check_close(what, (size_t)m * n, got, ref, scale, 1e-5, 1e-7);
    sc_free(A); sc_free(B); sc_free(C); sc_free(C0); sc_free(got); sc_free(ref); sc_free(scale);
}

static void test_sgemm(void **state) {
    (void)state;
    static const int sz[][3] = {{1, 1, 1}, {5, 7, 3}, {17, 33, 65}, {64, 256, 40}, {70, 300, 129}, {3, 200, 1000}};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (size_t s = 0; s < sizeof sz / sizeof sz[0]; s++)
                for (int pad = 0; pad <= 5; pad += 5) {
                    one(ta, tb, sz[s][0], sz[s][1], sz[s][2], pad, 1.f, 0.f, 1);
                    one(ta, tb, sz[s][0], sz[s][1], sz[s][2], pad, -0.5f, 1.f, 2);
                    one(ta, tb, sz[s][0], sz[s][1], sz[s][2], pad, 2.f, 0.25f, 2);
                }
    one(0, 0, 4, 6, 0, 2, 1.f, 0.5f, 1); /* k = 0: C = beta C */
    one(1, 1, 4, 6, 0, 0, 1.f, 0.f, 2);  /* k = 0, beta 0: C = 0 */
    blas_set_threads(1);
}

/* column-major doubles: C = alpha AᵀA + beta C (lower triangle), C = alpha AᵀB + beta C */
static void test_double_wrappers(void **state) {
    (void)state;
    const int n = 13, m = 9, k = 37, lda = k + 3, ldb = k + 1, ldc = n + 2;
    double *A = sc_calloc_n(double, (size_t)lda * n), *B = sc_calloc_n(double, (size_t)ldb * m),
           *C = sc_calloc_n(double, (size_t)ldc * n), *G = sc_calloc_n(double, (size_t)ldc * m);
    for (size_t i = 0; i < (size_t)lda * n; i++) A[i] = rng_uniform_range(&g_rng, -1.f, 1.f);
    for (size_t i = 0; i < (size_t)ldb * m; i++) B[i] = rng_uniform_range(&g_rng, -1.f, 1.f);
    for (size_t i = 0; i < (size_t)ldc * n; i++) C[i] = 0.5;
    for (size_t i = 0; i < (size_t)ldc * m; i++) G[i] = 0.25;
    for (int t = 1; t <= 2; t++) {
        blas_set_threads(t);
        double *Ct = sc_calloc_n(double, (size_t)ldc * n), *Gt = sc_calloc_n(double, (size_t)ldc * m);
        memcpy(Ct, C, sizeof(double) * ldc * n);
        memcpy(Gt, G, sizeof(double) * ldc * m);
        blas_dsyrk_tn(n, k, 2.0, A, lda, 3.0, Ct, ldc);
        blas_dgemm_tn(n, m, k, -1.0, A, lda, B, ldb, 2.0, Gt, ldc);
        for (int j = 0; j < n; j++)
            for (int i = j; i < n; i++) { /* lower triangle, column-major: C[i + j ldc] */
                double s = 0;
                for (int p = 0; p < k; p++) s += A[p + (size_t)i * lda] * A[p + (size_t)j * lda];
                assert_true(fabs(Ct[i + (size_t)j * ldc] - (2 * s + 1.5)) < 1e-12 * (1 + fabs(s)));
            }
        for (int j = 0; j < m; j++)
            for (int i = 0; i < n; i++) {
                double s = 0;
                for (int p = 0; p < k; p++) s += A[p + (size_t)i * lda] * B[p + (size_t)j * ldb];
                assert_true(fabs(Gt[i + (size_t)j * ldc] - (-s + 0.5)) < 1e-12 * (1 + fabs(s)));
            }
        sc_free(Ct); sc_free(Gt);
    }
    blas_set_threads(1);
    sc_free(A); sc_free(B); sc_free(C); sc_free(G);
}

int main(void) {
    g_rng = rng_stream_make(11, 0, 0, 0);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_sgemm), cmocka_unit_test(test_double_wrappers)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
