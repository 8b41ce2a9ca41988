#include "comm/affinity.h"
#include "blas/blas.h"
#include "comm/comm.h"
#include "comm_internal.h"
#include "core/error.h"
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AFF_WORDS 16 /* cores 0..1023 */

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
    memset(w, 0, sizeof(uint64_t) * AFF_WORDS);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return;
    for (int c = 0; c < AFF_WORDS * 64 && c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) w[c / 64] |= 1ull << (c % 64);
}

int affinity_setup(int requested, FILE *out) {
    const char *src = "run.threads";
    int threads = requested > 0 ? requested : affinity_auto_threads(&src);
    blas_set_threads(threads);
    int P = comm_size(), rank = comm_rank();
    /* one record per rank: host name, mask words, thread count */
    struct rec { char host[64]; uint64_t mask[AFF_WORDS]; int threads, cores; } me, *all = NULL;
    memset(&me, 0, sizeof me);
    gethostname(me.host, sizeof me.host - 1);
    mask_words(me.mask);
    me.threads = threads;
    char cores[256];
    me.cores = affinity_cores(cores, sizeof cores);
    if (rank == 0) all = sc_calloc_n(struct rec, P);
    if (P > 1)
        MPI_CHECK(MPI_Gather(&me, sizeof me, MPI_BYTE, all, sizeof me, MPI_BYTE, 0, comm_world_dup()));
    else
        all[0] = me;
    if (rank == 0 && out) {
        fprintf(out, "threads: %d per rank (%s); %s\n", threads, src, blas_info());
        for (int r = 0; r < P; r++) {
            int nc = 0;
            for (int w = 0; w < AFF_WORDS; w++) nc += __builtin_popcountll(all[r].mask[w]);
            fprintf(out, "  rank %d on %s: %d cores in its mask, %d threads\n", r, all[r].host, nc, all[r].threads);
            if (all[r].threads > nc)
                fprintf(out, "slimclr: warning: rank %d runs %d threads on %d cores (oversubscribed; under mpirun "
                             "use --bind-to none or --map-by slot:PE=%d)\n", r, all[r].threads, nc, all[r].threads);
            for (int s = 0; s < r; s++) {
                if (strcmp(all[s].host, all[r].host) != 0) continue;
                int shared = 0;
                for (int w = 0; w < AFF_WORDS; w++) shared += __builtin_popcountll(all[s].mask[w] & all[r].mask[w]);
                if (shared)
                    fprintf(out, "slimclr: warning: ranks %d and %d on %s share %d core(s)\n", s, r, all[r].host,
                            shared);
            }
        }
        fflush(out);
    }
    sc_free(all);
    return threads;
}
