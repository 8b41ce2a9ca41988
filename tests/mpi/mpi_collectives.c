/* Multi-rank checks of comm/: every collective against values each rank can compute on its own, the SyncBN
 * reducer, the stop-signal agreement, the timer report, the balance reduction and the trace file (parsed by the
 * calling script).
 * Usage: mpi_collectives [trace_dir] */
#include "comm/balance.h"
#include "comm/comm.h"
#include "comm/timers.h"
#include "core/signals.h"
#include "core/timer.h"
#include "core/trace.h"
#include "mpi_check.h"
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* comm/balance against closed forms: rank q's compute in step i is 1 + 0.01 i + 0.1 q^2 (so the max is the last rank's
 * and the mean is not the middle one's), off-CPU 0.001 q, waits 0.002 (q + 1); the last rank records 7 steps fewer
 * (its room is full: 3 more are not recorded; only the steps common to all ranks count); 1100 steps cross the
 * reduction's chunks of 512 */
static void check_balance(int r, int P) {
    long n = 1100, nr = r == P - 1 && P > 1 ? n - 7 : n, ns = P > 1 ? n - 7 : n;
    balance b;
    CHECK(balance_init(&b, nr) == SC_OK, "balance_init: %s", sc_last_error());
    for (long i = 0; i < nr + 3; i++) balance_record(&b, 1 + 0.01 * i + 0.1 * r * r, 0.001 * r, 0.002 * (r + 1));
    CHECK(b.n == nr, "balance: %ld steps recorded past its room (%ld)", b.n, nr);
    balance_result res;
    balance_reduce(&b, &res);
    double base = 1 + 0.01 * (ns - 1) / 2, sq = 0;
    for (int q = 0; q < P; q++) sq += 0.1 * q * q;
    double mean = base + sq / P, mx = base + 0.1 * (P - 1) * (P - 1);
    CHECK(res.steps == ns, "balance steps %ld, want %ld", res.steps, ns);
    CHECK(fabs(res.compute_min - base) < 1e-9 && fabs(res.compute_avg - mean) < 1e-9 && fabs(res.compute_max - mx) < 1e-9,
          "balance compute %.9f / %.9f / %.9f, want %.9f / %.9f / %.9f", res.compute_min, res.compute_avg, res.compute_max,
          base, mean, mx);
    CHECK(fabs(res.excess - (mx - mean)) < 1e-9, "balance excess %.9f, want %.9f", res.excess, mx - mean);
    CHECK(fabs(res.offcpu_min) < 1e-12 && fabs(res.offcpu_max - 0.001 * (P - 1)) < 1e-12 &&
              fabs(res.offcpu_avg - 0.0005 * (P - 1)) < 1e-12,
          "balance off-CPU %g / %g / %g", res.offcpu_min, res.offcpu_avg, res.offcpu_max);
    CHECK(fabs(res.waited - 0.001 * (P + 1)) < 1e-12, "balance waits %g, want %g", res.waited, 0.001 * (P + 1));
    balance_free(&b);
}

int main(int argc, char **argv) {
    comm_init(&argc, &argv);
    int r = comm_rank(), P = comm_size();
    trace_enable(1024);
    trace_begin("collectives");

    /* allreduce f64: sum of (rank+1)*(i+1) */
    double d[5];
    for (int i = 0; i < 5; i++) d[i] = (r + 1.0) * (i + 1.0);
    comm_allreduce_sum_f64(d, 5);
    for (int i = 0; i < 5; i++) CHECK(d[i] == (i + 1.0) * P * (P + 1) / 2.0, "allreduce_sum_f64[%d] = %g", i, d[i]);

    /* allreduce f32 on a buffer bigger than one eager message */
    size_t n = 300001;
    float *f = malloc(n * sizeof *f);
    for (size_t i = 0; i < n; i++) f[i] = (float)(r + 1) * (float)(i % 7);
    comm_allreduce_sum_f32(f, n);
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad += f[i] != (float)(P * (P + 1) / 2) * (float)(i % 7);
    CHECK(bad == 0, "allreduce_sum_f32: %d wrong values", bad);

    CHECK(comm_allreduce_max_int(r * 3) == (P - 1) * 3, "allreduce_max_int");
    CHECK(comm_allreduce_max_f64(-r - 0.5) == -0.5, "allreduce_max_f64");
    CHECK(comm_allreduce_min_f64(r + 0.25) == 0.25, "allreduce_min_f64");

    /* bcast of an odd-sized byte buffer from the last rank */
    char buf[37];
    for (int i = 0; i < 37; i++) buf[i] = (char)(r == P - 1 ? i * 3 + 1 : 0);
    comm_bcast(buf, sizeof buf, P - 1);
    for (int i = 0; i < 37; i++) CHECK(buf[i] == (char)(i * 3 + 1), "bcast byte %d = %d", i, buf[i]);

    /* allgather: rank order */
    float send[3] = {r * 10.f, r * 10.f + 1, r * 10.f + 2};
    float *recv = malloc(sizeof(float) * 3 * P);
    comm_allgather_f32(send, 3, recv);
    for (int q = 0; q < P; q++)
        for (int i = 0; i < 3; i++) CHECK(recv[q * 3 + i] == q * 10.f + i, "allgather[%d][%d]", q, i);

    /* gather f64 to root 0 */
    double gs[2] = {r, -r}, *gr = malloc(sizeof(double) * 2 * P);
    comm_gather_f64(gs, 2, gr, 0);
    if (r == 0)
        for (int q = 0; q < P; q++) CHECK(gr[2 * q] == q && gr[2 * q + 1] == -q, "gather from rank %d", q);

    /* the SyncBN reducer: a sum of doubles over ranks, identity on one rank */
    const sc_reducer *red = comm_bn_reducer();
    CHECK(red && red->sum_f64, "comm_bn_reducer is NULL");
    double s[3] = {1.0, r, 0.125};
    red->sum_f64(s, 3, red->ctx);
    CHECK(s[0] == P && s[1] == P * (P - 1) / 2.0 && s[2] == 0.125 * P, "bn reducer sums %g %g %g", s[0], s[1], s[2]);

    /* non-blocking: three sums and a gather in flight at once, driven by comm_ireq_testsome until each is seen
     * complete (the last rank starts late: the others' tests find them incomplete first), then waited */
    double a3[3][4];
    float gsend[2] = {r + 0.5f, -r - 0.5f}, *grecv = malloc(sizeof(float) * 2 * P);
    int h[4];
    bool dn[4] = {false, false, false, false};
    if (r == P - 1 && P > 1) nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
    for (int j = 0; j < 3; j++) {
        for (int i = 0; i < 4; i++) a3[j][i] = (j + 1.0) * (r + 1.0) + i;
        h[j] = comm_iallreduce_sum_f64(a3[j], 4);
    }
    h[3] = comm_iallgather_f32(gsend, 2, grecv);
    CHECK(P > 1 || (h[0] == -1 && h[3] == -1), "one rank: the handles are not -1");
    int polls = 0, ndone = 0;
    while (ndone < 4 && polls < 10000000) {
        bool d4[4];
        comm_ireq_testsome(h, 4, d4);
        ndone = 0;
        for (int j = 0; j < 4; j++) {
            CHECK(!dn[j] || d4[j], "testsome: request %d seen complete, then not", j);
            dn[j] = dn[j] || d4[j];
            ndone += dn[j];
        }
        polls++;
    }
    CHECK(ndone == 4, "testsome: %d of 4 requests complete after %d polls", ndone, polls);
    for (int j = 0; j < 4; j++) comm_ireq_wait(h[j]);
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 4; i++)
            CHECK(a3[j][i] == (j + 1.0) * P * (P + 1) / 2.0 + P * i, "iallreduce %d [%d] = %g", j, i, a3[j][i]);
    for (int q = 0; q < P; q++) CHECK(grecv[2 * q] == q + 0.5f && grecv[2 * q + 1] == -q - 0.5f, "iallgather from %d", q);
    free(grecv);

    /* signals: only the last rank gets SIGUSR1; every rank must agree at the step boundary */
    signals_install();
    CHECK(signals_pending() == 0, "signal pending before any was sent");
    if (r == P - 1) raise(SIGUSR1);
    int stop = comm_allreduce_max_int(signals_pending());
    CHECK(stop == SIGUSR1, "agreed stop signal %d (%s), expected SIGUSR1", stop, signals_name(stop));
    signals_clear();
    CHECK(signals_pending() == 0, "signals_clear");

    /* timers: rank r spends (r+1) ms in "work"; report prints min/avg/max */
    int tw = comm_timer_id("work"), tx = comm_timer_id("other");
    CHECK(comm_timer_id("work") == tw, "timer id not stable");
    comm_timer_add(tw, 0.001 * (r + 1));
    comm_timer_add(tw, 0.001 * (r + 1));
    comm_timer_start(tx);
    comm_timer_stop(tx);
    CHECK(fabs(comm_timer_seconds(tw) - 0.002 * (r + 1)) < 1e-12 && comm_timer_calls(tw) == 2, "timer totals");
    comm_timers_report(stdout);

    check_balance(r, P);

    comm_barrier();
    trace_end();
    double t0 = sc_now();
    trace_event("comm-thread-like", t0, t0 + 1e-4, TRACE_TID_COMM);
    if (argc > 1) {
        sc_err e = trace_write(argv[1]);
        CHECK(e == SC_OK, "trace_write: %s", sc_last_error());
    }
    CHECK(trace_count() == 2 && trace_dropped() == 0, "trace count %zu", trace_count());
    trace_disable();
    free(f);
    free(recv);
    free(gr);
    int rc = mpi_check_verdict("mpi_collectives");
    comm_finalize();
    return rc;
}
