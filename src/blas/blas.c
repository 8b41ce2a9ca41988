#include "blas/blas.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/timer.h"
#include <blis.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static int g_threads = 1;

void blas_set_threads(int nt) { g_threads = nt > 0 ? nt : 1; }
int blas_threads(void) { return g_threads; }

/* ---- the context every GEMM runs on ----
 * BLIS 0.9 picks its configuration from cpuid once; on an Intel CPU it does not know (a VM's "Intel(R) Xeon(R)
 * Processor", anything newer than its table) it cannot tell the AVX-512 FMA-unit count and takes haswell (AVX2),
 * and it has no AVX-512 configuration for AMD Zen 4/5 at all. Its skx context then runs the same GEMMs about 2x
 * faster (docs/performance-isa.md). bli_cntx_init_skx is exported by Debian's static libblis.a but hidden in its
 * libblis.so and absent from BLIS builds without the skx configuration: weak references keep every build linking,
 * and a missing one leaves BLIS's own choice. bli_cntx_init_haswell serves SLIMCLR_ISA=avx2 on a CPU BLIS ran as
 * skx. One context per ISA, so tests can switch paths (sc_isa_force) within a process. */
void bli_cntx_init_skx(cntx_t *cntx) __attribute__((weak));
void bli_cntx_init_haswell(cntx_t *cntx) __attribute__((weak));

static cntx_t g_alt[3];         /* replacement contexts, by sc_isa */
static cntx_t *g_isa_cntx[3];   /* the context of each ISA path */
static char g_isa_note[3][200]; /* what runs on it, for --version / bench / info / the run summary */
static pthread_once_t g_cntx_once = PTHREAD_ONCE_INIT;

static int blas_arch_avx512(arch_t a) { return a == BLIS_ARCH_SKX || a == BLIS_ARCH_KNL; }

static void blas_cntx_setup(void) {
    cntx_t *native = bli_gks_query_cntx();
    const arch_t arch = bli_arch_query_id();
    const char *name = bli_arch_string(arch);
    const sc_isa det = sc_isa_detected();
    const int intel = !strncmp(sc_cpu()->brand, "Intel", 5);
    for (int isa = SC_ISA_AVX2; isa <= (int)det; isa++) {
        char *note = g_isa_note[isa];
        g_isa_cntx[isa] = native;
        if (isa == SC_ISA_AVX512 && !blas_arch_avx512(arch)) {
            if (bli_cntx_init_skx) {
                bli_cntx_init_skx(&g_alt[isa]);
                g_isa_cntx[isa] = &g_alt[isa];
                snprintf(note, sizeof g_isa_note[0], "BLIS %s context replaced by skx: AVX-512 CPU, %s", name,
                         intel ? "unknown FMA-unit count" : "no AVX-512 configuration for it in this BLIS");
            } else
                snprintf(note, sizeof g_isa_note[0], "BLIS %s context on an AVX-512 CPU: this BLIS has no "
                         "bli_cntx_init_skx (link Debian's libblis.a)", name);
        } else if (isa == SC_ISA_AVX2 && blas_arch_avx512(arch)) {
            if (bli_cntx_init_haswell) {
                bli_cntx_init_haswell(&g_alt[isa]);
                g_isa_cntx[isa] = &g_alt[isa];
                snprintf(note, sizeof g_isa_note[0], "BLIS %s context replaced by haswell: SLIMCLR_ISA=avx2", name);
            } else
                snprintf(note, sizeof g_isa_note[0], "BLIS %s context (AVX-512 kernels even on the avx2 path)", name);
        } else
            snprintf(note, sizeof g_isa_note[0], "BLIS %s context", name);
    }
}

static cntx_t *blas_cntx(void) {
    const sc_isa isa = sc_isa_active(); /* sc_fatal on a bad SLIMCLR_ISA in programs that did not check it */
    pthread_once(&g_cntx_once, blas_cntx_setup);
    return g_isa_cntx[isa];
}

const char *blas_kernels(void) {
    const sc_isa isa = sc_isa_active();
    pthread_once(&g_cntx_once, blas_cntx_setup);
    return g_isa_note[isa];
}

static void blas_sgemm_nt(int nt, bool ta, bool tb, int m, int n, int k, float alpha, const float *A, int lda,
                          const float *B, int ldb, float beta, float *C, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) { /* C = beta*C */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) C[(long)i * ldc + j] = beta == 0.f ? 0.f : beta * C[(long)i * ldc + j];
        return;
    }
    cntx_t *cntx = blas_cntx();
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(nt, &rntm);
    /* BLIS's small/unpacked ("sup") path only where it wins (BLIS 0.9.0): it was slower on the loss's wide
     * products (256 x 4096 x 128 with A transposed, 64 x 4096 x 128, 512 x 512 x 64) and faster on the thin ones
     * (32 x 50176 x 16, 32 x 16 x 50176, 512 x 64 x 512; docs/performance.md, eighth pass). m >= 64 and n >= 256
     * takes the packed path. */
    if (m >= 64 && n >= 256) bli_rntm_disable_l3_sup(&rntm);
    /* row-major: element (i,j) of stored A at A[i*lda + j] -> rs = lda, cs = 1 */
    bli_sgemm_ex(ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, m, n, k,
                 &alpha, (float *)A, lda, 1, (float *)B, ldb, 1, &beta, C, ldc, 1, cntx, &rntm);
}

void blas_sgemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *A, int lda, const float *B,
                int ldb, float beta, float *C, int ldc) {
    blas_sgemm_nt(g_threads, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

void blas_sgemm_1t(bool ta, bool tb, int m, int n, int k, float alpha, const float *A, int lda, const float *B,
                   int ldb, float beta, float *C, int ldc) {
    blas_sgemm_nt(1, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
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
    snprintf(buf, sizeof buf, "BLIS %s (config %s, threading %s; %s path: %s, sgemm micro-kernel %dx%d)",
             bli_info_get_version_str(), bli_arch_string(bli_arch_query_id()),
             bli_info_get_enable_openmp() ? "openmp" : (bli_info_get_enable_pthreads() ? "pthreads" : "none"),
             sc_isa_name(sc_isa_active()), blas_kernels(), blas_ukr_mr(), blas_ukr_nr());
    return buf;
}

/* ---- micro-kernel access: the sgemm micro-kernel of the active ISA's context ---- */
typedef void (*blas_ukr_fn)(dim_t, dim_t, dim_t, float *, float *, float *, float *, float *, inc_t, inc_t,
                            auxinfo_t *, cntx_t *);

int blas_ukr_mr(void) { return (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_MR, blas_cntx()); }
int blas_ukr_nr(void) { return (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_NR, blas_cntx()); }
int blas_ukr_kc(void) { return (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_KC, blas_cntx()); }
bool blas_ukr_prefers_rows(void) { return bli_cntx_l3_nat_ukr_prefers_rows_dt(BLIS_FLOAT, BLIS_GEMM_UKR, blas_cntx()); }

void blas_ukr(int m, int n, int k, const float *Ap, const float *Bp, float beta, float *C, long rs, long cs) {
    cntx_t *cntx = blas_cntx();
    const blas_ukr_fn ukr = (blas_ukr_fn)bli_cntx_get_l3_nat_ukr_dt(BLIS_FLOAT, BLIS_GEMM_UKR, cntx);
    float one = 1.f;
    auxinfo_t aux = {0}; /* next-panel prefetch hints left NULL: prefetching NULL is harmless */
    ukr(m, n, k, &one, (float *)Ap, (float *)Bp, &beta, C, rs, cs, &aux, cntx);
}
