/* Overlap demo (docs/benchmarks.md B2): a fake backward computes (sgemm) tensor by tensor in reverse order and marks each
 * gradient range ready, while the bucket comm thread all-reduces the finished buckets; the same steps are
 * run with overlap off (everything reduced in buckets_finish) to compare. Run over loopback TCP so the
 * communication is visible:
 *   mpirun -np 2 --mca btl self,tcp build/profiling/overlap_demo [--mb 24] [--bucket-mb 4] [--steps 3]
 *          [--compute-ms 400] [--poll-us 0] [--trace DIR]
 * Prints per mode: step, compute, communication, exposed wait and overlap % = 1 - exposed/communication;
 * with --trace, DIR/trace-rank<R>.json shows compute spans (main) against allreduce spans (comm thread). */
#include "blas/blas.h"
#include "comm/buckets.h"
#include "comm/comm.h"
#include "core/timer.h"
#include "core/trace.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GN 128 /* sgemm size of one compute quantum */

int main(int argc, char **argv) {
    comm_init(&argc, &argv);
    double mb = 24, bucket_mb = 4, compute_ms = 400;
    int steps = 3, poll_us = 0, nt = 24;
    const char *trace_dir = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mb")) mb = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--bucket-mb")) bucket_mb = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--compute-ms")) compute_ms = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--poll-us")) poll_us = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--trace")) trace_dir = argv[i + 1];
        else if (!strcmp(argv[i], "--tensors")) nt = atoi(argv[i + 1]);
        else sc_fatal("overlap_demo: unknown option %s", argv[i]);
    }
    blas_set_threads(1);
    size_t n = (size_t)(mb * 1048576.0 / sizeof(float));
    float *g = sc_alloc(n * sizeof(float));
    size_t *off = malloc(sizeof(size_t) * nt), *cnt = malloc(sizeof(size_t) * nt);
    for (int t = 0; t < nt; t++) {
        off[t] = n / nt * t;
        cnt[t] = t == nt - 1 ? n - off[t] : n / nt;
    }
    buckets *b = buckets_create(g, n, off, cnt, nt, bucket_mb);
    buckets_set_poll_us(b, poll_us);
    float *A = sc_alloc(sizeof(float) * GN * GN), *B = sc_alloc(sizeof(float) * GN * GN),
          *C = sc_alloc(sizeof(float) * GN * GN);
    for (int i = 0; i < GN * GN; i++) A[i] = B[i] = 1e-3f * (float)(i % 17);
    /* calibrate the quanta per tensor so one step computes about compute_ms (same on every rank) */
    double t0 = sc_now();
    for (int i = 0; i < 20; i++) blas_sgemm(false, false, GN, GN, GN, 1, A, GN, B, GN, 0, C, GN);
    double per = comm_allreduce_max_f64((sc_now() - t0) / 20);
    int quanta = (int)(compute_ms * 1e-3 / per / nt) + 1;
    if (trace_dir) trace_enable(1 << 16);
    if (comm_rank() == 0)
        printf("overlap_demo: %d ranks, %.1f MB of gradients in %d tensors, %d buckets of ~%.1f MB, %d sgemm(%d) "
               "per tensor, comm thread %s\n", comm_size(), mb, nt, buckets_count(b), bucket_mb, quanta, GN,
               poll_us ? "polling" : "blocking");
    double stat[2][5] = {{0}};
    for (int mode = 0; mode < 2; mode++) {
        buckets_set_overlap(b, mode == 1);
        for (int s = 0; s < steps + 1; s++) { /* step 0 warms up (connections, buffers) */
            comm_barrier();
            double ts = sc_now(), tc = 0;
            buckets_begin_step(b);
            for (int t = nt - 1; t >= 0; t--) {
                double c0 = sc_now();
                for (int q = 0; q < quanta; q++) blas_sgemm(false, false, GN, GN, GN, 1, A, GN, B, GN, 0, C, GN);
                float v = C[t % (GN * GN)] + (float)comm_rank();
                for (size_t i = off[t]; i < off[t] + cnt[t]; i++) g[i] = v;
                double c1 = sc_now();
                trace_event("compute", c0, c1, TRACE_TID_MAIN);
                tc += c1 - c0;
                buckets_mark_ready(b, off[t], cnt[t]);
            }
            buckets_finish(b);
            double step = sc_now() - ts;
            const buckets_stats *st = buckets_last_stats(b);
            if (s == 0) continue;
            stat[mode][0] += step / steps;
            stat[mode][1] += tc / steps;
            stat[mode][2] += st->comm_s / steps;
            stat[mode][3] += st->exposed_s / steps;
            stat[mode][4] = st->bytes;
        }
    }
    for (int mode = 0; mode < 2; mode++)
        for (int k = 0; k < 4; k++) stat[mode][k] = comm_allreduce_max_f64(stat[mode][k]);
    if (comm_rank() == 0)
        for (int mode = 0; mode < 2; mode++) {
            double ov = stat[mode][2] > 0 ? 1 - stat[mode][3] / stat[mode][2] : 1;
            printf("%-11s step %7.1f ms  compute %7.1f ms  comm %7.1f ms  exposed %7.1f ms  overlap %5.1f%%  "
                   "(%.1f MB allreduced/step, max over ranks)\n", mode ? "overlap on" : "overlap off",
                   stat[mode][0] * 1e3, stat[mode][1] * 1e3, stat[mode][2] * 1e3, stat[mode][3] * 1e3,
                   100 * (ov < 0 ? 0 : ov), stat[mode][4] / 1048576.0);
        }
    if (trace_dir) {
        if (trace_write(trace_dir) != SC_OK) sc_fatal("%s", sc_last_error());
        trace_disable();
    }
    buckets_free(b);
    sc_free(g), sc_free(A), sc_free(B), sc_free(C);
    free(off), free(cnt);
    comm_finalize();
    return 0;
}
