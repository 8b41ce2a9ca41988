/* SyncBN: bn_forward_train / bn_backward on each rank's slice of a batch (unequal slices), with
 * comm_bn_reducer(), must equal single-process BN over the union batch: output, running statistics, dx,
 * and dgamma/dbeta once the ranks' local shares are summed (the gradient allreduce does that in training).
 * Tolerance: 1e-5 relative to the largest reference value of each tensor. */
#include "comm/comm.h"
#include "core/rng.h"
#include "mpi_check.h"
#include "nn/bn.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define C 5
#define HW 9

static double rel_err(const float *a, const float *ref, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - ref[i]));
        mr = fmax(mr, fabs((double)ref[i]));
    }
    return md / (mr > 0 ? mr : 1);
}

int main(int argc, char **argv) {
    comm_init(&argc, &argv);
    int r = comm_rank(), P = comm_size();
    int N = 0, n0 = 0, nl = 2 + r; /* rank r holds samples [n0, n0+nl) */
    for (int q = 0; q < P; q++) {
        if (q == r) n0 = N;
        N += 2 + q;
    }
    const int M = N * HW, m = nl * HW;
    /* global tensors, the same on every rank (generated from the global index) */
    float *X = malloc(sizeof(float) * C * M), *DY = malloc(sizeof(float) * C * M);
    rng_stream s = rng_stream_make(21, 0, 0, 0);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < M; i++) {
            X[c * M + i] = 3.0f * (float)c - 4.0f + (0.5f + (float)c) * rng_normal(&s);
            DY[c * M + i] = rng_normal(&s);
        }
    float gamma[C], beta[C];
    for (int c = 0; c < C; c++) {
        gamma[c] = 0.5f + 0.25f * (float)c;
        beta[c] = 0.1f * (float)c - 0.2f;
    }
    bn_desc d = {.c = C, .affine = true, .momentum = 0.1f, .eps = 1e-5f};

    /* reference: one process, the whole batch, no reducer */
    float *Y = malloc(sizeof(float) * C * M), *DX = malloc(sizeof(float) * C * M);
    float rm_ref[C], rv_ref[C], sm_ref[C], si_ref[C], dg_ref[C] = {0}, db_ref[C] = {0};
    for (int c = 0; c < C; c++) rm_ref[c] = 0, rv_ref[c] = 1;
    for (int it = 0; it < 2; it++)
        bn_forward_train(&d, M, X, Y, gamma, beta, rm_ref, rv_ref, sm_ref, si_ref, NULL);
    bn_backward(&d, M, X, DY, gamma, NULL, sm_ref, si_ref, DX, dg_ref, db_ref, NULL);

    /* this rank's slice: channel c's rows are samples [n0, n0+nl) of the global row */
    float *x = malloc(sizeof(float) * C * m), *dy = malloc(sizeof(float) * C * m);
    float *y = malloc(sizeof(float) * C * m), *dx = malloc(sizeof(float) * C * m);
    float *yref = malloc(sizeof(float) * C * m), *dxref = malloc(sizeof(float) * C * m);
    for (int c = 0; c < C; c++) {
        memcpy(x + c * m, X + c * M + n0 * HW, sizeof(float) * m);
        memcpy(dy + c * m, DY + c * M + n0 * HW, sizeof(float) * m);
        memcpy(yref + c * m, Y + c * M + n0 * HW, sizeof(float) * m);
        memcpy(dxref + c * m, DX + c * M + n0 * HW, sizeof(float) * m);
    }
    const nn_reducer *red = comm_bn_reducer();
    float rm[C], rv[C], sm[C], si[C], dg[C] = {0}, db[C] = {0};
    for (int c = 0; c < C; c++) rm[c] = 0, rv[c] = 1;
    for (int it = 0; it < 2; it++) bn_forward_train(&d, m, x, y, gamma, beta, rm, rv, sm, si, red);
    bn_backward(&d, m, x, dy, gamma, NULL, sm, si, dx, dg, db, red);
    double dgd[2 * C];
    for (int c = 0; c < C; c++) dgd[c] = dg[c], dgd[C + c] = db[c];
    comm_allreduce_sum_f64(dgd, 2 * C); /* the gradient allreduce's sum of local shares */
    for (int c = 0; c < C; c++) dg[c] = (float)dgd[c], db[c] = (float)dgd[C + c];

    double e[6] = {rel_err(y, yref, (size_t)C * m), rel_err(rm, rm_ref, C), rel_err(rv, rv_ref, C),
                   rel_err(dx, dxref, (size_t)C * m), rel_err(dg, dg_ref, C), rel_err(db, db_ref, C)};
    const char *what[6] = {"y", "running mean", "running var", "dx", "dgamma", "dbeta"};
    for (int i = 0; i < 6; i++) CHECK(e[i] <= 1e-5, "%s differs from the union-batch BN: rel %.3g", what[i], e[i]);
    /* and the statistics really were global: local-only BN would differ from the reference */
    if (P > 1) {
        float yl[C * 16 * HW], rml[C], rvl[C], sml[C], sil[C];
        for (int c = 0; c < C; c++) rml[c] = 0, rvl[c] = 1;
        bn_forward_train(&d, m, x, yl, gamma, beta, rml, rvl, sml, sil, NULL);
        CHECK(rel_err(yl, yref, (size_t)C * m) > 1e-4, "local BN matches the union batch: the test proves nothing");
    }
    double emax = 0;
    for (int i = 0; i < 6; i++) emax = fmax(emax, e[i]);
    emax = comm_allreduce_max_f64(emax);
    if (r == 0) printf("syncbn with %d ranks (batch %d): max rel error %.3g over y, running stats, dx, dgamma, dbeta\n",
                       P, N, emax);
    free(X), free(DY), free(Y), free(DX), free(x), free(dy), free(y), free(dx), free(yref), free(dxref);
    int rc = mpi_check_verdict("mpi_syncbn");
    comm_finalize();
    return rc;
}
