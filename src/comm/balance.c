/* comm/balance: see include/comm/balance.h. */
#include "comm/balance.h"
#include "comm/comm.h"
#include "comm_internal.h"
#include "core/timer.h"
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double thread_cpu_s(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0.0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

sc_err balance_init(balance *b, long cap) {
    memset(b, 0, sizeof *b);
    if (cap <= 0) return SC_OK;
    b->compute = malloc(sizeof(double) * (size_t)cap);
    b->offcpu = malloc(sizeof(double) * (size_t)cap);
    if (!b->compute || !b->offcpu) {
        balance_free(b);
        return sc_errorf(SC_ERR_NOMEM, "balance: %ld steps of per-step times", cap);
    }
    b->cap = cap;
    return SC_OK;
}

void balance_free(balance *b) {
    free(b->compute);
    free(b->offcpu);
    memset(b, 0, sizeof *b);
}

void balance_begin(balance *b) {
    b->open = b->n < b->cap;
    if (!b->open) return;
    b->t0 = sc_now();
    b->cpu0 = thread_cpu_s();
}

void balance_record(balance *b, double compute_s, double offcpu_s, double waited_s) {
    if (b->n >= b->cap) return;
    b->compute[b->n] = compute_s;
    b->offcpu[b->n] = offcpu_s;
    b->waited += waited_s;
    b->n++;
}

void balance_end(balance *b, double waited_s) {
    if (!b->open) return;
    b->open = false;
    double wall = sc_now() - b->t0, cpu = thread_cpu_s() - b->cpu0;
    balance_record(b, wall - waited_s, cpu > 0 && cpu < wall ? wall - cpu : 0.0, waited_s);
}

/* the per-step min, sum and max over ranks, in chunks so that the scratch stays small */
void balance_reduce(const balance *b, balance_result *r) {
    memset(r, 0, sizeof *r);
    int P = comm_size();
    long n = b->n;
    if (P > 1) n = (long)(-comm_allreduce_max_f64(-(double)n)); /* the steps every rank recorded */
    r->steps = n;
    if (n <= 0) return;
    enum { CH = 512 };
    double mn[CH], sum[CH], mx[CH];
    for (long i0 = 0; i0 < n; i0 += CH) {
        int m = (int)(n - i0 < CH ? n - i0 : CH);
        memcpy(mn, b->compute + i0, sizeof(double) * (size_t)m);
        memcpy(sum, mn, sizeof(double) * (size_t)m);
        memcpy(mx, mn, sizeof(double) * (size_t)m);
        if (P > 1) {
            MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, mn, m, MPI_DOUBLE, MPI_MIN, comm_world_dup()));
            MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, sum, m, MPI_DOUBLE, MPI_SUM, comm_world_dup()));
            MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, mx, m, MPI_DOUBLE, MPI_MAX, comm_world_dup()));
        }
        for (int i = 0; i < m; i++) {
            double avg = sum[i] / P;
            r->compute_min += mn[i];
            r->compute_avg += avg;
            r->compute_max += mx[i];
            r->excess += mx[i] - avg;
        }
    }
    r->compute_min /= (double)n;
    r->compute_avg /= (double)n;
    r->compute_max /= (double)n;
    r->excess /= (double)n;
    double off = 0;
    for (long i = 0; i < n; i++) off += b->offcpu[i];
    off /= (double)n;
    double v[2] = {-off, off};
    if (P > 1) MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_DOUBLE, MPI_MAX, comm_world_dup()));
    r->offcpu_min = -v[0];
    r->offcpu_max = v[1];
    double s[2] = {off, b->waited / (double)b->n};
    if (P > 1) comm_allreduce_sum_f64(s, 2);
    r->offcpu_avg = s[0] / P;
    r->waited = s[1] / P;
}
