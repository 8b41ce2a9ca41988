#include "comm/affinity.h"
#include "blas/blas.h"
#include "comm/comm.h"
#include "comm_internal.h"
#include "core/error.h"
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static int env_threads(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    char *end;
    long n = strtol(v, &end, 10);
    return (*end == 0 && n > 0 && n < 100000) ? (int)n : 0;
}

int affinity_auto_threads(const char **source) {
    static const char *vars[] = {"SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS", "BLIS_NUM_THREADS"};
    for (int i = 0; i < 3; i++) {
        int n = env_threads(vars[i]);
        if (n > 0) {
            if (source) *source = vars[i];
            return n;
        }
    }
    if (source) *source = "affinity mask";
    int c = affinity_cores(NULL, 0);
    return c > 0 ? c : 1;
}

int affinity_cores(char *buf, int n) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        if (buf && n) snprintf(buf, n, "?");
        return (int)sysconf(_SC_NPROCESSORS_ONLN);
    }
    int count = CPU_COUNT(&set);
    if (buf && n) {
        buf[0] = 0;
        int len = 0;
        for (int c = 0; c < CPU_SETSIZE && len < n - 16; c++) {
            if (!CPU_ISSET(c, &set)) continue;
            int e = c;
            while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, &set)) e++;
            len += snprintf(buf + len, n - len, len ? ",%d" : "%d", c);
            if (e > c) len += snprintf(buf + len, n - len, "-%d", e);
            c = e;
        }
    }
    return count;
}

static void mask_words(uint64_t *w) {
    cpu_set_t set;
    CPU_ZERO(&set);
    memset(w, 0, sizeof(uint64_t) * AFFINITY_WORDS);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return;
    for (int c = 0; c < AFFINITY_WORDS * 64 && c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) w[c / 64] |= 1ull << (c % 64);
}

static int mask_count(const uint64_t *w) {
    int n = 0;
    for (int i = 0; i < AFFINITY_WORDS; i++) n += __builtin_popcountll(w[i]);
    return n;
}

static void mask_list(const uint64_t *w, char *buf, int n) {
    int len = 0;
    buf[0] = 0;
    for (int c = 0; c < AFFINITY_WORDS * 64 && len < n - 24; c++) {
        if (!(w[c / 64] >> (c % 64) & 1)) continue;
        int e = c;
        while (e + 1 < AFFINITY_WORDS * 64 && (w[(e + 1) / 64] >> ((e + 1) % 64) & 1)) e++;
        len += snprintf(buf + len, n - len, len ? ",%d" : "%d", c);
        if (e > c) len += snprintf(buf + len, n - len, "-%d", e);
        c = e;
    }
}

int affinity_report(const affinity_rec *r, int P, FILE *out) {
    int warnings = 0;
    char list[256];
    for (int i = 0; i < P; i++) {
        int nc = mask_count(r[i].mask);
        mask_list(r[i].mask, list, sizeof list);
        if (out) fprintf(out, "  rank %d on %s: cores %s (%d), %d thread(s)\n", i, r[i].host, list, nc, r[i].threads);
        if (r[i].threads > nc) {
            warnings++;
            if (out)
                fprintf(out, "slimclr: warning: rank %d runs %d threads on the %d core(s) of its mask (oversubscribed: "
                             "bind it to more cores, e.g. mpirun --map-by ppr:1:socket:PE=%d --bind-to core, or set "
                             "run.threads)\n", i, r[i].threads, nc, r[i].threads);
        }
    }
    /* per host: all threads of its ranks against the cores their masks cover together */
    for (int i = 0; i < P; i++) {
        bool first = true;
        for (int s = 0; s < i; s++)
            if (!strcmp(r[s].host, r[i].host)) first = false;
        if (!first) continue;
        uint64_t uni[AFFINITY_WORDS];
        memset(uni, 0, sizeof uni);
        int threads = 0, ranks = 0, overlap = 0;
        for (int s = i; s < P; s++) {
            if (strcmp(r[s].host, r[i].host)) continue;
            for (int w = 0; w < AFFINITY_WORDS; w++) {
                overlap |= (uni[w] & r[s].mask[w]) != 0;
                uni[w] |= r[s].mask[w];
            }
            threads += r[s].threads;
            ranks++;
        }
        int nc = mask_count(uni);
        if (threads > nc) {
            warnings++;
            if (out)
                fprintf(out, "slimclr: warning: host %s: %d rank(s) run %d threads on %d core(s)%s; expect a large "
                             "slow-down (give each rank its own cores, or fewer threads)\n", r[i].host, ranks, threads,
                        nc, overlap ? " (their masks share cores)" : "");
        }
    }
    if (out) fflush(out);
    return warnings;
}

int affinity_setup(int requested, FILE *out) {
    const char *src = "run.threads";
    int threads = requested > 0 ? requested : affinity_auto_threads(&src);
    blas_set_threads(threads);
    int P = comm_size(), rank = comm_rank();
    affinity_rec me, *all = NULL;
    memset(&me, 0, sizeof me);
    gethostname(me.host, sizeof me.host - 1);
    mask_words(me.mask);
    me.threads = threads;
    if (rank == 0) all = sc_calloc_n(affinity_rec, P);
    if (P > 1)
        MPI_CHECK(MPI_Gather(&me, sizeof me, MPI_BYTE, all, sizeof me, MPI_BYTE, 0, comm_world_dup()));
    else
        all[0] = me;
    if (rank == 0 && out) {
        fprintf(out, "threads: %d per rank (%s); %s\n", threads, src, blas_info());
        affinity_report(all, P, out);
    }
    sc_free(all);
    return threads;
}
