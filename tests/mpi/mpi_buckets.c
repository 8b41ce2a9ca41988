/* Gradient buckets against a plain allreduce of the whole arena divided by P, over several steps, with
 * ranges marked in reverse order, in a rank-dependent random order, in multi-tensor and partial pieces, not
 * at all (finish launches them), with overlap off and with the polling comm thread; the main thread
 * meanwhile calls collectives on the main communicator (the SyncBN pattern). Dyadic values make every
 * sum exact, so those steps must match bitwise; random values must match within 1e-6 relative. */
#include "comm/buckets.h"
#include "comm/comm.h"
#include "core/rng.h"
#include "mpi_check.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NT 48

static void shuffle(int *a, int n, rng_stream *s) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(s, (uint64_t)i + 1), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

int main(int argc, char **argv) {
    comm_init(&argc, &argv);
    int r = comm_rank(), P = comm_size();
    size_t off[NT], cnt[NT], n = 0;
    rng_stream layout = rng_stream_make(7, 0, 0, 0); /* same layout on every rank */
    for (int i = 0; i < NT; i++) {
        n += rng_below(&layout, 3) * 16; /* gaps between some tensors, as alignment would leave */
        off[i] = n;
        cnt[i] = i % 9 == 4 ? 150000 + rng_below(&layout, 1000) : 1 + rng_below(&layout, 20000);
        n += cnt[i];
    }
    n += 32;
    float *g = malloc(n * sizeof *g), *ref = malloc(n * sizeof *ref), *scale = malloc(n * sizeof *scale);
    buckets *b = buckets_create(g, n, off, cnt, NT, 0.25);
    int nb = buckets_count(b);
    CHECK(nb > 3, "only %d buckets", nb);
    /* buckets tile the tensors in reverse order: bucket 0 holds the last tensor */
    size_t o0, c0;
    buckets_info(b, 0, &o0, &c0, NULL);
    CHECK(o0 + c0 == off[NT - 1] + cnt[NT - 1], "bucket 0 does not end at the last tensor");
    buckets_info(b, nb - 1, &o0, &c0, NULL);
    CHECK(o0 == off[0], "last bucket does not start at the first tensor");

    const char *modes[] = {"reverse", "random", "pieces", "unmarked", "no-overlap", "poll", "reverse"};
    int nmodes = (int)(sizeof modes / sizeof modes[0]);
    int order[NT];
    for (int step = 0; step < 2 * nmodes; step++) {
        int mode = step % nmodes;
        bool dyadic = step < nmodes;
        rng_stream vs = rng_stream_make(11, (uint64_t)step, (uint64_t)r, 0);
        for (size_t i = 0; i < n; i++)
            g[i] = dyadic ? (float)((int)rng_below(&vs, 64) - 32) / 8.0f : rng_normal(&vs) * (1.0f + (float)r);
        memcpy(ref, g, n * sizeof *g);
        comm_allreduce_sum_f32(ref, n);
        for (size_t i = 0; i < n; i++) ref[i] /= (float)P;
        /* another summation order may differ by a few ulp of the summands (not of a cancelled sum): the
         * tolerance is relative to the mean |g| over ranks */
        for (size_t i = 0; i < n; i++) scale[i] = fabsf(g[i]);
        comm_allreduce_sum_f32(scale, n);

        buckets_set_overlap(b, strcmp(modes[mode], "no-overlap") != 0);
        buckets_set_poll_us(b, strcmp(modes[mode], "poll") == 0 ? 50 : 0);
        buckets_begin_step(b);
        for (int i = 0; i < NT; i++) order[i] = NT - 1 - i;
        rng_stream os = rng_stream_make(13, (uint64_t)step, (uint64_t)r, 1); /* differs per rank */
        if (strcmp(modes[mode], "random") == 0) shuffle(order, NT, &os);
        for (int k = 0; k < NT; k++) {
            int t = order[k];
            if (strcmp(modes[mode], "unmarked") == 0 && t % 3 == 0) continue;
            if (strcmp(modes[mode], "pieces") == 0) {
                /* the tensor in two halves, the second half first, plus a repeated mark */
                size_t h = cnt[t] / 2;
                buckets_mark_ready(b, off[t] + h, cnt[t] - h);
                if (h) buckets_mark_ready(b, off[t], h);
                buckets_mark_ready(b, off[t], cnt[t]);
            } else {
                buckets_mark_ready(b, off[t], cnt[t]);
            }
            if (k % 7 == 3) { /* main-thread collective while buckets are in flight */
                double s[2] = {1.0, (double)r};
                comm_allreduce_sum_f64(s, 2);
                CHECK(s[0] == P && s[1] == P * (P - 1) / 2.0, "concurrent allreduce gave %g %g", s[0], s[1]);
            }
        }
        buckets_finish(b);
        long nbit = 0, nbad = 0;
        double maxrel = 0;
        for (int t = 0; t < NT; t++)
            for (size_t i = off[t]; i < off[t] + cnt[t]; i++) {
                nbit += g[i] != ref[i];
                double rel = fabs((double)g[i] - ref[i]) / ((double)scale[i] / P + 1e-30);
                if (rel > maxrel) maxrel = rel;
                nbad += rel > 1e-6;
            }
        if (dyadic) CHECK(nbit == 0, "step %d (%s, exact values): %ld elements differ bitwise", step, modes[mode], nbit);
        CHECK(nbad == 0, "step %d (%s): %ld elements off by more than 1e-6 (max rel %.3g)", step, modes[mode], nbad,
              maxrel);
        const buckets_stats *st = buckets_last_stats(b);
        double want = 0;
        for (int i = 0; i < nb; i++) {
            size_t c;
            buckets_info(b, i, NULL, &c, NULL);
            want += (double)c * 4;
        }
        CHECK(st->nbuckets == nb && st->bytes == (P > 1 ? want : 0), "stats bytes %g", st->bytes);
        CHECK(st->overlap >= 0 && st->overlap <= 1, "overlap %g", st->overlap);
        if (r == 0)
            printf("step %2d %-10s %s: %ld bitwise diffs, max rel %.2e, %.2f MB in %d buckets, comm %.2f ms, "
                   "exposed %.2f ms\n", step, modes[mode], dyadic ? "exact " : "random", nbit, maxrel,
                   st->bytes / 1048576.0, nb, st->comm_s * 1e3, st->exposed_s * 1e3);
    }
    buckets_free(b);
    free(g);
    free(ref);
    free(scale);
    int rc = mpi_check_verdict("mpi_buckets");
    comm_finalize();
    return rc;
}
