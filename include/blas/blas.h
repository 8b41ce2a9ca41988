/* blas/: the only module that includes blis.h. Row-major single-precision GEMM with explicit leading
 * dimensions (so width slices of a full-size weight are plain sub-blocks), and the thread count. */
#ifndef SC_BLAS_H
#define SC_BLAS_H
#include <stdbool.h>

/* C[m][n] = alpha * op(A)[m][k] * op(B)[k][n] + beta * C. Row-major; lda/ldb/ldc are row strides of the
 * stored (untransposed) matrices. ta: A stored as [k][m] (lda >= m); tb: B stored as [n][k] (ldb >= k). */
void blas_sgemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *A, int lda, const float *B,
                int ldb, float beta, float *C, int ldc);
/* The same on one thread, for callers that run independent products on their own threads (nn/conv_wino's 16) */
void blas_sgemm_1t(bool ta, bool tb, int m, int n, int k, float alpha, const float *A, int lda, const float *B,
                   int ldb, float beta, float *C, int ldc);

/* Double precision, column-major (the LAPACK / ScaLAPACK layout eval/ridge works in), with the same thread
 * count: C[n][n] (lower triangle) = alpha * AᵀA + beta * C, A stored k x n (lda >= k); and
 * C[m][n] = alpha * AᵀB + beta * C, A stored k x m (lda >= k), B stored k x n (ldb >= k). */
void blas_dsyrk_tn(int n, int k, double alpha, const double *A, int lda, double beta, double *C, int ldc);
void blas_dgemm_tn(int m, int n, int k, double alpha, const double *A, int lda, const double *B, int ldb,
                   double beta, double *C, int ldc);

void blas_set_threads(int nt); /* threads every later blas_ call uses (per-call rntm, not global state) */
int blas_threads(void);
double blas_sgemm_rate(int n, int reps); /* measured GFLOP/s of an n^3 sgemm with the current threads */
/* GFLOP/s of a register-only loop of independent FMAs at the CPU's widest vector width on `threads` threads
 * at once (blas/peak.c): the most the cores can compute, the denominator beside the sgemm rate */
double blas_fma_peak(int threads);
const char *blas_info(void);             /* BLIS version, configuration, threading, the kernels in use */
/* Which context the active ISA path's GEMMs run on, e.g. "BLIS haswell context replaced by skx: AVX-512 CPU,
 * unknown FMA-unit count" (blas/ swaps in BLIS's AVX-512 context when BLIS chose a narrower one). */
const char *blas_kernels(void);

/* The active context's sgemm micro-kernel, for callers that build packed panels themselves (nn/conv_fused).
 * Ap: k columns of MR floats (row i of the tile at Ap[p*MR + i]); Bp: k rows of NR floats; both 64-byte
 * aligned. C[i*rs + j*cs] = Ap x Bp + beta * C for i < m <= MR, j < n <= NR. The kernel is fastest with C
 * stored as it prefers (rows: cs = 1, e.g. haswell 6 x 16; columns: rs = 1, e.g. skx 32 x 12); KC is the
 * context's depth of a packed panel. */
int blas_ukr_mr(void);
int blas_ukr_nr(void);
int blas_ukr_kc(void);
bool blas_ukr_prefers_rows(void);
void blas_ukr(int m, int n, int k, const float *Ap, const float *Bp, float beta, float *C, long rs, long cs);
#endif
