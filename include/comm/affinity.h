/* comm/affinity: threads per rank and the binding each rank actually got (docs/conventions.md "Threads per rank").
 * threads: auto = SLURM_CPUS_PER_TASK, OMP_NUM_THREADS or BLIS_NUM_THREADS when set (in that order), else the
 * cores in the process's affinity mask. */
#ifndef SC_COMM_AFFINITY_H
#define SC_COMM_AFFINITY_H
#include <stdint.h>
#include <stdio.h>

#define AFFINITY_WORDS 16 /* mask words: cores 0..1023 */

/* What one rank reports at start-up (gathered on rank 0). */
typedef struct {
    char host[64];
    uint64_t mask[AFFINITY_WORDS]; /* its affinity mask */
    int threads;                   /* BLAS threads it runs */
} affinity_rec;

/* Local: the thread count `auto` resolves to, and where it came from ("affinity mask", "SLURM_CPUS_PER_TASK"...). */
int affinity_auto_threads(const char **source);
/* Local: the cores of the affinity mask as a list like "0-3,8" (buf), and their count. */
int affinity_cores(char *buf, int n);
/* Local, pure: prints one line per rank (host, cores of its mask, threads) and a "slimclr: warning:" line for
 * each problem: a rank running more threads than the cores of its mask, and a host where the ranks' threads
 * together exceed the cores their masks cover (ranks bound to the same cores, or unbound ranks with too many
 * threads). Ranks that share cores without exceeding them (mpirun --bind-to none, 1 thread each) are fine.
 * Returns the number of warnings. */
int affinity_report(const affinity_rec *r, int P, FILE *out);
/* COLLECTIVE: resolves `requested` (0 = auto) on every rank, sets the BLAS threads, gathers the records and
 * prints affinity_report on rank 0 (out may be NULL on other ranks). Returns this rank's thread count. */
int affinity_setup(int requested, FILE *out);
#endif
