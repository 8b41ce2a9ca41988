/* eval/graddir: the gradient-direction analysis of docs/method.md §8.2 over time, as the reference takes it
 * (save the last projection layer's gradient every diagnostics step; stack the T saved gradients as a T x D
 * matrix; fit a 2-component PCA; project each gradient on the two components, uncentred; plot against the step).
 *
 * The training run appends each snapshot to <run.dir>/grad_direction.bin (rank 0, every eval.grad_diag_every
 * steps) and logs the cosine with the previous snapshot (gdir_cos) in metrics.jsonl; `slimclr graddir RUN_DIR`
 * reads the file back and prints the PCA projection over time (tools/plot_grad_direction.sh plots it).
 *
 * File: records of  "GDR1" | int32 rows | int32 cols | int64 step | rows*cols float32 (row-major), native byte
 * order, appended. A record torn by a crash ends the file (ignored); a step at or below an earlier one (a resumed
 * run rewriting its steps) replaces the records from that step on. */
#ifndef SC_EVAL_GRADDIR_H
#define SC_EVAL_GRADDIR_H
#include "core/error.h"

typedef struct graddir_log graddir_log;
/* Opens path for appending (created when missing). */
sc_err graddir_open(const char *path, graddir_log **out);
/* Appends G (row-major rows x cols, leading dimension ldg) as the snapshot of `step`; *cos_prev = cosine between G
 * and the previous snapshot recorded through this log (NaN for the first one, or when a norm is 0 or the shape
 * changed). Allocates only when the shape first appears. */
sc_err graddir_record(graddir_log *g, long step, int rows, int cols, const float *G, int ldg, double *cos_prev);
void graddir_close(graddir_log *g);

typedef struct {
    int T, rows, cols;  /* snapshots; each one rows x cols (D = rows * cols) */
    long *step;         /* [T], ascending */
    float *X;           /* [T][D] */
    int torn;           /* 1 when a torn record ended the file */
} graddir_series;
sc_err graddir_read(const char *path, graddir_series *out);
void graddir_series_free(graddir_series *s);

/* The reference's PCA (sklearn PCA(n_components=2) fit on the T x D matrix, i.e. centred): components pc[k] (unit
 * D-vectors, the eigenvectors of the covariance with the two largest eigenvalues, computed in double through the
 * T x T Gram matrix of the centred rows and LAPACK dsyev), explained variance ratio evr[k] = lambda_k / sum lambda,
 * and the projections proj[t][k] = X_t . pc[k] (NOT centred, as the reference's plot takes them). Sign: each
 * component's largest |coefficient| over the T centred rows is positive (sklearn's u-based svd_flip). Needs T >= 3;
 * a component with zero variance is left 0 (and its projections 0). */
typedef struct {
    int T, D;
    double evr[2];
    double *pc;    /* [2][D] */
    double *proj;  /* [T][2] */
} graddir_pca;
sc_err graddir_pca2(int T, int D, const float *X, graddir_pca *out);
void graddir_pca_free(graddir_pca *p);
#endif
