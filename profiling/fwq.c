/* Fixed work quantum (FWQ): the OS noise a rank sees, measured for jobs/perfmodel.py's blocking points.
 *   mpirun -np <ranks per node> build/profiling/fwq [--quanta-us 10,30,100,300,1000,3000,10000] [--seconds 1]
 *          [--out FWQ.csv]
 * Each rank (one per core: the ranks of a real job share the node, so a sibling's interference counts) times the
 * same calibrated compute loop, a quantum of about Q us, again and again; anything longer than the loop's own time
 * is the OS (interrupts, daemons, the hypervisor) taking the core away. The samples of every rank are pooled.
 * Per quantum it writes the distribution (min, mean, std, percentiles, max) and, for P ranks, the expected excess
 * of the slowest rank over the mean, E[max of P draws] - mean, from the empirical CDF (F^P): what one blocking
 * point costs in noise alone. With fewer samples than P ranks that estimate is the sample's maximum (low).
 * Bad options: a message naming the option and exit 2. */
#include "comm/comm.h"
#include "core/error.h"
#include "core/timer.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FWQ_MAXQ 16
#define FWQ_MAX_SAMPLES 200000
static const int fwq_ps[] = {2, 16, 64, 256, 1024, 4096};
#define FWQ_NP ((int)(sizeof fwq_ps / sizeof fwq_ps[0]))

static volatile double fwq_sink, fwq_seed = 1.0;

/* a dependent multiply-add chain: its time does not depend on caches or memory, only on the core being ours
 * (the volatile seed keeps the compiler from computing it once for every sample) */
__attribute__((noinline)) static void fwq_work(long iters) {
    double x = fwq_seed;
    for (long i = 0; i < iters; i++) x = x * 0.9999999 + 1e-7;
    fwq_sink = x;
}

/* iterations for about q seconds: the best of a few timings, so that noise during calibration does not shrink it */
static long fwq_calibrate(double q) {
    long it = 1000;
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = sc_now();
        fwq_work(it);
        double t = sc_now() - t0;
        if (t < best) best = t;
    }
    long n = (long)(it * q / best);
    return n < 1 ? 1 : n;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* E[max of P draws] from the sorted sample s[0..n): sum_i s_i ((i+1)/n)^P - (i/n)^P */
static double fwq_emax(const double *s, long n, int P) {
    double e = 0, prev = 0;
    for (long i = 0; i < n; i++) {
        double c = pow((double)(i + 1) / n, P);
        e += s[i] * (c - prev);
        prev = c;
    }
    return e;
}

static int fwq_usage(int rank, const char *msg, const char *arg) {
    if (rank == 0)
        fprintf(stderr, "fwq: %s%s%s\nusage: fwq [--quanta-us 10,30,100,...] [--seconds S] [--out FWQ.csv]\n", msg,
                arg ? ": " : "", arg ? arg : "");
    comm_finalize();
    return 2;
}

int main(int argc, char **argv) {
    int rank = comm_init(&argc, &argv), nr = comm_size();
    double quanta[FWQ_MAXQ] = {10, 30, 100, 300, 1000, 3000, 10000}, seconds = 1.0;
    int nq = 7;
    const char *out = NULL;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) return fwq_usage(rank, "option needs a value", argv[i]);
        const char *v = argv[i + 1];
        char *end;
        if (!strcmp(argv[i], "--quanta-us")) {
            nq = 0;
            for (const char *p = v; *p; p = end + (*end == ',')) {
                if (nq == FWQ_MAXQ) return fwq_usage(rank, "--quanta-us: more than 16 values", v);
                quanta[nq] = strtod(p, &end);
                if (end == p || (*end && *end != ',') || !(quanta[nq] >= 1 && quanta[nq] <= 1e6))
                    return fwq_usage(rank, "--quanta-us: expected comma-separated microseconds in [1, 1e6]", v);
                nq++;
            }
            if (nq == 0) return fwq_usage(rank, "--quanta-us: empty", v);
        } else if (!strcmp(argv[i], "--seconds")) {
            seconds = strtod(v, &end);
            if (*end || !(seconds > 0 && seconds <= 3600))
                return fwq_usage(rank, "--seconds: expected a number of seconds in (0, 3600]", v);
        } else if (!strcmp(argv[i], "--out")) {
            out = v;
        } else {
            return fwq_usage(rank, "unknown option", argv[i]);
        }
    }
    /* written to OUT.tmp and renamed at the end: an interrupted run leaves no half-written table */
    FILE *f = NULL;
    char tmp[4096];
    if (rank == 0 && out) {
        snprintf(tmp, sizeof tmp, "%s.tmp", out);
        if (!(f = fopen(tmp, "w"))) {
            fprintf(stderr, "fwq: --out: cannot write %s\n", tmp);
            comm_abort(2);
        }
    }
    long cap = FWQ_MAX_SAMPLES;
    double *loc = sc_alloc(sizeof(double) * cap), *all = rank == 0 ? sc_alloc(sizeof(double) * cap * nr) : NULL;
    if (rank == 0) {
        printf("fwq: %d rank(s), %g s per quantum; OS noise = a quantum's time beyond the loop's own (pooled over ranks)\n",
               nr, seconds);
        printf("%9s %8s %9s %9s %8s %9s %9s %9s %9s  E[max over P] - mean (us): P =", "quantum", "samples", "min",
               "mean", "std", "p99", "p99.9", "max", "");
        for (int j = 0; j < FWQ_NP; j++) printf(" %d", fwq_ps[j]);
        printf("\n");
    }
    if (f) {
        fprintf(f, "quantum_us,samples,ranks,min_us,mean_us,std_us,p50_us,p99_us,p999_us,max_us");
        for (int j = 0; j < FWQ_NP; j++) fprintf(f, ",excess_p%d_us", fwq_ps[j]);
        fprintf(f, "\n");
    }
    for (int q = 0; q < nq; q++) {
        double qs = quanta[q] * 1e-6;
        long n = (long)(seconds / qs);
        n = n < 200 ? 200 : n > cap ? cap : n;
        long it = fwq_calibrate(qs);
        comm_barrier();
        for (long s = 0; s < n; s++) {
            double t0 = sc_now();
            fwq_work(it);
            loc[s] = (sc_now() - t0) * 1e6;
        }
        comm_gather_f64(loc, (int)n, all, 0);
        if (rank) continue;
        long m = n * nr;
        qsort(all, (size_t)m, sizeof(double), cmp_double);
        double mean = 0, var = 0;
        for (long s = 0; s < m; s++) mean += all[s];
        mean /= m;
        for (long s = 0; s < m; s++) var += (all[s] - mean) * (all[s] - mean);
        double sd = sqrt(var / (m > 1 ? m - 1 : 1)), ex[FWQ_NP];
        double p50 = all[m / 2], p99 = all[(long)(0.99 * (m - 1))], p999 = all[(long)(0.999 * (m - 1))];
        for (int j = 0; j < FWQ_NP; j++) ex[j] = fwq_emax(all, m, fwq_ps[j]) - mean;
        printf("%7.0fus %8ld %9.2f %9.2f %8.2f %9.2f %9.2f %9.2f %9s ", quanta[q], m, all[0], mean, sd, p99, p999,
               all[m - 1], "");
        for (int j = 0; j < FWQ_NP; j++) printf(" %.2f", ex[j]);
        printf("\n");
        if (f) {
            fprintf(f, "%g,%ld,%d,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f", quanta[q], m, nr, all[0], mean, sd, p50, p99,
                    p999, all[m - 1]);
            for (int j = 0; j < FWQ_NP; j++) fprintf(f, ",%.4f", ex[j]);
            fprintf(f, "\n");
        }
    }
    if (f && (fclose(f) != 0 || rename(tmp, out) != 0)) {
        fprintf(stderr, "fwq: --out: error writing %s\n", out);
        remove(tmp);
        comm_abort(2);
    }
    if (rank == 0 && out) printf("wrote %s\n", out);
    free(loc);
    free(all);
    comm_finalize();
    return 0;
}
