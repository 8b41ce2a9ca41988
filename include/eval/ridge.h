/* eval/ridge: the closed-form ridge-regression probe (docs/benchmarks.md B3), distributed with ScaLAPACK.
 *
 * Model: scores = x·W + b, trained as least squares on one-hot targets:
 *     min_W ||X'W - Y||² + λ||W||²     (the bias row of W is not regularised)
 * where X' = [standardised features | 1]. Standardisation (mean/std of every feature over the whole training
 * set) makes λ comparable across feature scales; the returned W/b are mapped back to raw features.
 * The normal equations (X'ᵀX' + λI')W = X'ᵀY are formed in double with PBLAS (pdsyrk, pdgemm) on a block-cyclic
 * 2-D grid of all ranks and solved with pdposv; one rank may use the serial LAPACK path (dsyrk, dposv).
 *
 * Data layout: rank r holds local rows X_r[n_r][d] (row-major, fp32) and labels; the global row order is the
 * rank order (rank 0's rows first). λ is chosen on a held-out part of the training set: the last
 * `holdout_frac` of the rows in that global order, then the fit is redone on all rows with the chosen λ. */
#ifndef SC_EVAL_RIDGE_H
#define SC_EVAL_RIDGE_H
#include "core/error.h"
#include <stdbool.h>
#include <stdint.h>

#define RIDGE_MAX_LAMBDAS 16

typedef struct {
    int nlambdas;                       /* 0 = the default list 1e-3 .. 1e4 (decades) */
    double lambdas[RIDGE_MAX_LAMBDAS];  /* each > 0 */
    double holdout_frac;                /* 0 = default 0.1; the held-out rows are the last ones globally */
    bool standardize;                   /* (x - mean)/std per feature before the fit (true in ridge_opts_default) */
    int block;                          /* ScaLAPACK block size (default 64) */
    bool force_scalapack;               /* use ScaLAPACK even on one rank (tests) */
    bool force_serial;                  /* use the LAPACK path on every rank: each rank must then hold ALL rows */
    int chunk_rows;                     /* rows per rank formed at a time (memory bound, default 1024) */
} ridge_opts;

typedef struct {
    int d, classes;
    double *W;       /* [d][classes], raw-feature space: scores = x·W + b */
    double *b;       /* [classes] */
    double lambda;   /* the chosen one */
    int nlambdas;
    double lambdas[RIDGE_MAX_LAMBDAS];
    double holdout_top1[RIDGE_MAX_LAMBDAS]; /* accuracy on the held-out rows, per λ */
    int64_t n_train, n_holdout;
    bool used_scalapack;
} ridge_result;

ridge_opts ridge_opts_default(void);

/* COLLECTIVE (unless opts->force_serial). n_local, X, y: local; d, classes, opts: global.
 * Labels must lie in [0, classes). Fills *res (free with ridge_result_free). Errors: bad sizes/labels/λ,
 * a too-small training set, a failed Cholesky (SC_ERR_NUMERIC). */
sc_err ridge_fit(int n_local, int d, const float *X, const int32_t *y, int classes, const ridge_opts *opts,
                 ridge_result *res);
void ridge_result_free(ridge_result *res);

/* COLLECTIVE: top-1 accuracy of the probe over the rows of every rank (counts are summed over ranks). */
double ridge_accuracy(const ridge_result *res, int n_local, const float *X, const int32_t *y);
/* local: predicted class of one row */
int ridge_predict(const ridge_result *res, const float *x);
#endif
