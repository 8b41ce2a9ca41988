/* SyncBN: bn_forward_train / bn_backward on each rank's slice of a batch (unequal slices), with
 * comm_bn_reducer(), must equal single-process BN over the union batch: output, running statistics, dx,
 * and dgamma/dbeta once the ranks' local shares are summed (the gradient allreduce does that in training).
 * Tolerance: 1e-5 relative to the largest reference value of each tensor.
 * Then the wavefront's non-blocking reducer (ssl/wavefront.h): two interleaved tasks (each suspended inside its
 * reductions while the other runs) give bitwise what the blocking reducer gives for each alone. */
#include "comm/comm.h"
#include "core/rng.h"
#include "mpi_check.h"
#include "nn/bn.h"
#include "ssl/wavefront.h"
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

/* one BN forward + backward on a rank's slice, the input scaled by k (a second, different layer) */
typedef struct {
    const float *x, *dy;
    const float *gamma, *beta;
    const nn_reducer *red;
    int m;
    float k;
    float xs[C * 16 * HW], y[C * 16 * HW], dx[C * 16 * HW], rm[C], rv[C], sm[C], si[C], dg[C], db[C];
} bn_job;

static void bn_job_run(void *arg) {
    bn_job *j = arg;
    bn_desc d = {.c = C, .affine = true, .momentum = 0.1f, .eps = 1e-5f};
    for (int i = 0; i < C * j->m; i++) j->xs[i] = j->k * j->x[i] + 1.0f;
    for (int c = 0; c < C; c++) j->rm[c] = 0, j->rv[c] = 1, j->dg[c] = 0, j->db[c] = 0;
    bn_forward_train(&d, j->m, j->xs, j->y, j->gamma, j->beta, j->rm, j->rv, j->sm, j->si, j->red);
    bn_backward(&d, j->m, j->xs, j->dy, j->gamma, NULL, j->sm, j->si, j->dx, j->dg, j->db, j->red);
}

static bool same(const bn_job *a, const bn_job *b) {
    size_t n = (size_t)C * a->m * sizeof(float);
    return !memcmp(a->y, b->y, n) && !memcmp(a->dx, b->dx, n) && !memcmp(a->rm, b->rm, sizeof a->rm) &&
           !memcmp(a->rv, b->rv, sizeof a->rv) && !memcmp(a->dg, b->dg, sizeof a->dg) &&
           !memcmp(a->db, b->db, sizeof a->db);
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
    /* the wavefront: jobs A (k 1) and B (k -2) interleaved vs each alone with the blocking reducer */
    static bn_job ref[2], wav[2];
    wavefront *wf = wf_create(2 * C + 1, true);
    for (int i = 0; i < 2; i++) {
        ref[i] = (bn_job){.x = x, .dy = dy, .gamma = gamma, .beta = beta, .red = red, .m = m, .k = i ? -2.0f : 1.0f};
        bn_job_run(&ref[i]);
        wav[i] = (bn_job){.x = x, .dy = dy, .gamma = gamma, .beta = beta, .red = wf_reducer(wf), .m = m, .k = ref[i].k};
        wf_add(wf, bn_job_run, &wav[i], NULL, (model_scratch_ref){NULL, 0});
    }
    wf_run(wf);
    for (int i = 0; i < 2; i++) CHECK(same(&ref[i], &wav[i]), "wavefront job %d differs from the blocking reducer", i);
    CHECK(!same(&wav[0], &wav[1]), "the two jobs agree: the interleaving check proves nothing");
    const wf_stats *ws = wf_get_stats(wf);
    CHECK(ws->calls == 4 && ws->doubles == 4 * (2 * C + 1), "wavefront counted %ld reductions of %g doubles, expected 4 "
          "of %d", ws->calls, ws->doubles, 4 * (2 * C + 1));
    CHECK(ws->exposed_s <= ws->inflight_s + 1e-9, "exposed %g s > in flight %g s", ws->exposed_s, ws->inflight_s);
    wf_free(wf);
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
