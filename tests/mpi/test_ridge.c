/* Multi-rank check of the ScaLAPACK ridge probe (run by tests/sh/mpi_ridge.sh with 1..4 ranks):
 * every rank builds the same synthetic data set, keeps an unequal contiguous shard, and the distributed fit
 * (ScaLAPACK, small blocks and chunks so that every rank owns blocks and several chunks are streamed) must
 * equal the serial LAPACK fit on the whole set: same λ, same held-out accuracies, W and b within 1e-6
 * relative. Prints PASSED/FAILED; exit status 0 only when passed on every rank. */
#include "comm/comm.h"
#include "core/rng.h"
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

int main(int argc, char **argv) {
    comm_init(&argc, &argv);
    int bad = 0;
    bad |= run_case(503, 7, 4, 2, 16, 1.0, 11);   /* tiny blocks: every rank owns pieces of A */
    bad |= run_case(1200, 40, 10, 8, 64, 2.0, 12); /* several chunks, held-out rows on several ranks */
    bad |= run_case(97, 3, 2, 64, 2048, 0.5, 13);  /* one block: a single rank owns A */
    bad = comm_allreduce_max_int(bad);
    if (comm_rank() == 0) printf("%s\n", bad ? "FAILED" : "PASSED");
    comm_finalize();
    return bad ? 1 : 0;
}
