/* Multi-rank check of the ScaLAPACK ridge probe (run by tests/sh/mpi_ridge.sh with 1..4 ranks):
 * every rank builds the same synthetic data set, keeps an unequal contiguous shard, and the distributed fit
 * (ScaLAPACK, small blocks and chunks so that every rank owns blocks and several chunks are streamed) must
 * equal the serial LAPACK fit on the whole set: same λ, same held-out accuracies, W and b within 1e-6
 * relative. Also the data-parallel linear probe: with full-batch steps, sharded data must give the same probe
 * as every rank holding the whole set (the mean gradient is the same), checking the gradient allreduce.
 * Prints PASSED/FAILED; exit status 0 only when passed on every rank. */
#include "comm/comm.h"
#include "core/rng.h"
#include "eval/probe.h"
#include "eval/ridge.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static double rel_diff(const double *a, const double *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) { num += (a[i] - b[i]) * (a[i] - b[i]); den += b[i] * b[i]; }
    return sqrt(num / (den > 0 ? den : 1));
}

static int run_case(int N, int d, int C, int block, int chunk, double noise, uint64_t seed) {
    int P = comm_size(), rank = comm_rank();
    float *X = malloc(sizeof(float) * (size_t)N * d);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)N);
    rng_stream rs = rng_stream_make(seed, 1, 2, 3);
    float *centres = malloc(sizeof(float) * (size_t)C * d);
    for (int i = 0; i < C * d; i++) centres[i] = rng_normal(&rs);
    for (int i = 0; i < N; i++) {
        y[i] = (int32_t)rng_below(&rs, (uint64_t)C);
        for (int j = 0; j < d; j++)
            X[(size_t)i * d + j] = 3.0f + (float)(j + 1) * (centres[y[i] * d + j] + (float)noise * rng_normal(&rs));
    }
    /* unequal shards: rank r gets a share proportional to r + 1 */
    int tot = P * (P + 1) / 2, start = 0;
    for (int r = 0; r < rank; r++) start += N * (r + 1) / tot;
    int n_loc = rank == P - 1 ? N - start : N * (rank + 1) / tot;

    ridge_opts od = ridge_opts_default();
    od.force_scalapack = true; od.block = block; od.chunk_rows = chunk;
    ridge_result rd, rsr;
    sc_err e = ridge_fit(n_loc, d, X + (size_t)start * d, y + start, C, &od, &rd);
    if (e) { fprintf(stderr, "rank %d: distributed fit: %s\n", rank, sc_last_error()); return 1; }
    ridge_opts os = ridge_opts_default();
    os.force_serial = true;
    e = ridge_fit(N, d, X, y, C, &os, &rsr);
    if (e) { fprintf(stderr, "rank %d: serial fit: %s\n", rank, sc_last_error()); return 1; }
    double dw = rel_diff(rd.W, rsr.W, (size_t)d * C), db = rel_diff(rd.b, rsr.b, (size_t)C);
    int bad = 0;
    if (!(dw < 1e-6 && db < 1e-6)) bad = 1;
    if (rd.lambda != rsr.lambda) bad = 1;
    for (int l = 0; l < rd.nlambdas; l++)
        if (fabs(rd.holdout_top1[l] - rsr.holdout_top1[l]) > 1e-12) bad = 1;
    double acc_d = ridge_accuracy(&rd, n_loc, X + (size_t)start * d, y + start);
    double acc_s = ridge_accuracy(&rsr, n_loc, X + (size_t)start * d, y + start);
    if (fabs(acc_d - acc_s) > 1e-12 || !rd.used_scalapack || rsr.used_scalapack) bad = 1;
    if (rank == 0)
        printf("P=%d N=%d d=%d C=%d block=%d chunk=%d: lambda %g/%g, |dW|/|W| %.2e, |db|/|b| %.2e, holdout top1 "
               "%.4f, train top1 %.4f/%.4f\n",
               P, N, d, C, block, chunk, rd.lambda, rsr.lambda, dw, db, rd.holdout_top1[0], acc_d, acc_s);
    if (bad) fprintf(stderr, "rank %d: distributed and serial fits differ\n", rank);
    ridge_result_free(&rd); ridge_result_free(&rsr);
    free(X); free(y); free(centres);
    return bad;
}

/* full-batch probe: shards vs the replicated whole set (both average the same per-sample gradients) */
static int run_probe(void) {
    int P = comm_size(), rank = comm_rank();
    enum { N = 240, NV = 120, C = 3 };
    const int dims[2] = {10, 4};
    float *tr[2], *te[2];
    int32_t *y = malloc(sizeof(int32_t) * N), *yv = malloc(sizeof(int32_t) * NV);
    rng_stream rs = rng_stream_make(21, 0, 0, 0);
    for (int i = 0; i < N; i++) y[i] = (int32_t)rng_below(&rs, C);
    for (int i = 0; i < NV; i++) yv[i] = (int32_t)rng_below(&rs, C);
    for (int w = 0; w < 2; w++) {
        tr[w] = malloc(sizeof(float) * N * dims[w]);
        te[w] = malloc(sizeof(float) * NV * dims[w]);
        for (int i = 0; i < N * dims[w]; i++) tr[w][i] = (float)(i % dims[w] == y[i / dims[w]]) + 0.8f * rng_normal(&rs);
        for (int i = 0; i < NV * dims[w]; i++) te[w][i] = (float)(i % dims[w] == yv[i / dims[w]]) + 0.8f * rng_normal(&rs);
    }
    int s0 = N * rank / P, s1 = N * (rank + 1) / P, v0 = NV * rank / P, v1 = NV * (rank + 1) / P;
    const float *trs[2] = {tr[0] + (size_t)s0 * dims[0], tr[1] + (size_t)s0 * dims[1]};
    const float *tes[2] = {te[0] + (size_t)v0 * dims[0], te[1] + (size_t)v0 * dims[1]};
    probe_opts o = probe_opts_default();
    o.epochs = 25; o.lr = 0.5f; o.wd = 1e-4f;
    float *Wa[2], *Wb[2];
    for (int w = 0; w < 2; w++) { Wa[w] = malloc(sizeof(float) * C * dims[w]); Wb[w] = malloc(sizeof(float) * C * dims[w]); }
    probe_result ra, rb;
    const probe_shape sh = {.nwidths = 2, .dims = {dims[0], dims[1]}, .classes = C};
    const probe_data all = {.n = N, .F = {tr[0], tr[1]}, .labels = y}, allv = {.n = NV, .F = {te[0], te[1]}, .labels = yv};
    const probe_data part = {.n = s1 - s0, .F = {trs[0], trs[1]}, .labels = y + s0};
    const probe_data partv = {.n = v1 - v0, .F = {tes[0], tes[1]}, .labels = yv + v0};
    o.batch = P * N;
    sc_err e = probe_train(&sh, &all, &allv, &o, &ra, Wa, NULL);
    o.batch = N;
    if (!e) e = probe_train(&sh, &part, &partv, &o, &rb, Wb, NULL);
    if (e) { fprintf(stderr, "rank %d: probe: %s\n", rank, sc_last_error()); return 1; }
    int bad = 0;
    double maxd = 0;
    for (int w = 0; w < 2; w++) {
        for (int i = 0; i < C * dims[w]; i++) {
            double d = fabs(Wa[w][i] - Wb[w][i]) / (fabs(Wa[w][i]) + 1e-2);
            if (d > maxd) maxd = d;
        }
        if (fabs(ra.top1[w] - rb.top1[w]) > 1.5 / NV || fabs(ra.test_loss[w] - rb.test_loss[w]) > 1e-4) bad = 1;
    }
    if (maxd > 1e-3) bad = 1;
    if (rank == 0)
        printf("probe P=%d: top1 full %.4f/%.4f small %.4f/%.4f, test CE %.5f/%.5f, max rel dW %.2e\n", P, ra.top1[0],
               rb.top1[0], ra.top1[1], rb.top1[1], ra.test_loss[0], rb.test_loss[0], maxd);
    for (int w = 0; w < 2; w++) { free(tr[w]); free(te[w]); free(Wa[w]); free(Wb[w]); }
    free(y); free(yv);
    return bad;
}

int main(int argc, char **argv) {
    comm_init(&argc, &argv);
    int bad = 0;
    bad |= run_case(503, 7, 4, 2, 16, 1.0, 11);   /* tiny blocks: every rank owns pieces of A */
    bad |= run_case(1200, 40, 10, 8, 64, 2.0, 12); /* several chunks, held-out rows on several ranks */
    bad |= run_case(97, 3, 2, 64, 2048, 0.5, 13);  /* one block: a single rank owns A */
    bad |= run_probe();
    bad = comm_allreduce_max_int(bad);
    if (comm_rank() == 0) printf("%s\n", bad ? "FAILED" : "PASSED");
    comm_finalize();
    return bad ? 1 : 0;
}
