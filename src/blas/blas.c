#include "blas/blas.h"
#include "core/error.h"
#include "core/timer.h"
#include <blis.h>
#include <stdio.h>

static int g_threads = 1;

void blas_set_threads(int nt) { g_threads = nt > 0 ? nt : 1; }
int blas_threads(void) { return g_threads; }

void blas_sgemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *A, int lda, const float *B,
                int ldb, float beta, float *C, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) { /* C = beta*C */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) C[(long)i * ldc + j] = beta == 0.f ? 0.f : beta * C[(long)i * ldc + j];
        return;
    }
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(g_threads, &rntm);
    /* BLIS's small/unpacked ("sup") path only where it wins (BLIS 0.9.0): it was slower on the loss's wide
     * products (256 x 4096 x 128 with A transposed, 64 x 4096 x 128, 512 x 512 x 64) and faster on the thin ones
     * (32 x 50176 x 16, 32 x 16 x 50176, 512 x 64 x 512; docs/performance.md, eighth pass). m >= 64 and n >= 256
     * takes the packed path. */
    if (m >= 64 && n >= 256) bli_rntm_disable_l3_sup(&rntm);
    /* row-major: element (i,j) of stored A at A[i*lda + j] -> rs = lda, cs = 1 */
    bli_sgemm_ex(ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, m, n, k,
                 &alpha, (float *)A, lda, 1, (float *)B, ldb, 1, &beta, C, ldc, 1, NULL, &rntm);
}

void blas_dsyrk_tn(int n, int k, double alpha, const double *A, int lda, double beta, double *C, int ldc) {
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(g_threads, &rntm);
    bli_dsyrk_ex(BLIS_LOWER, BLIS_TRANSPOSE, n, k, &alpha, (double *)A, 1, lda, &beta, C, 1, ldc, NULL, &rntm);
}

void blas_dgemm_tn(int m, int n, int k, double alpha, const double *A, int lda, const double *B, int ldb,
                   double beta, double *C, int ldc) {
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(g_threads, &rntm);
    bli_dgemm_ex(BLIS_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &alpha, (double *)A, 1, lda, (double *)B, 1, ldb, &beta,
                 C, 1, ldc, NULL, &rntm);
}

double blas_sgemm_rate(int n, int reps) {
    float *a = sc_calloc_n(float, (size_t)n * n), *b = sc_calloc_n(float, (size_t)n * n),
          *c = sc_calloc_n(float, (size_t)n * n);
    for (long i = 0; i < (long)n * n; i++) { a[i] = 1e-3f * (float)(i % 7); b[i] = 1e-3f * (float)(i % 5); }
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t = sc_now();
        blas_sgemm(false, false, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
        t = sc_now() - t;
        if (r > 0 && t < best) best = t; /* first call warms up packing buffers */
    }
    sc_free(a); sc_free(b); sc_free(c);
    return 2.0 * n * (double)n * n / best / 1e9;
}

const char *blas_info(void) {
    static char buf[256];
    snprintf(buf, sizeof buf, "BLIS %s (config %s, threading %s)", bli_info_get_version_str(),
             bli_arch_string(bli_arch_query_id()),
             bli_info_get_enable_openmp() ? "openmp" : (bli_info_get_enable_pthreads() ? "pthreads" : "none"));
    return buf;
}

/* ---- micro-kernel access: the native kernel of the running architecture, looked up once ---- */
typedef void (*blas_ukr_fn)(dim_t, dim_t, dim_t, float *, float *, float *, float *, float *, inc_t, inc_t,
                            auxinfo_t *, cntx_t *);
static blas_ukr_fn g_ukr;
static cntx_t *g_cntx;
static int g_mr, g_nr;

static void blas_ukr_init(void) {
    if (g_ukr) return;
    g_cntx = bli_gks_query_cntx();
    g_mr = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_MR, g_cntx);
    g_nr = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_NR, g_cntx);
    g_ukr = (blas_ukr_fn)bli_cntx_get_l3_nat_ukr_dt(BLIS_FLOAT, BLIS_GEMM_UKR, g_cntx);
}

int blas_ukr_mr(void) { blas_ukr_init(); return g_mr; }
int blas_ukr_nr(void) { blas_ukr_init(); return g_nr; }

void blas_ukr(int m, int n, int k, const float *Ap, const float *Bp, float beta, float *C, long rs, long cs) {
    float one = 1.f;
    auxinfo_t aux = {0}; /* next-panel prefetch hints left NULL: prefetching NULL is harmless */
    g_ukr(m, n, k, &one, (float *)Ap, (float *)Bp, &beta, C, rs, cs, &aux, g_cntx);
}
