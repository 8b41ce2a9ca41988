/* comm/affinity: threads per rank and the binding each rank actually got (CONVENTIONS "Threads per rank").
 * threads: auto = SLURM_CPUS_PER_TASK, OMP_NUM_THREADS or BLIS_NUM_THREADS when set (in that order), else the
 * cores in the process's affinity mask. */
#ifndef SC_COMM_AFFINITY_H
#define SC_COMM_AFFINITY_H
#include <stdio.h>

/* Local: the thread count `auto` resolves to, and where it came from ("affinity mask", "SLURM_CPUS_PER_TASK"...). */
int affinity_auto_threads(const char **source);
/* Local: the cores of the affinity mask as a list like "0-3,8" (buf), and their count. */
int affinity_cores(char *buf, int n);
/* COLLECTIVE: resolves `requested` (0 = auto) on every rank, sets the BLAS threads, prints on rank 0 one line per
 * rank with host, cores and threads, and warns when two ranks of one host share a core or a rank has more
 * threads than cores. Returns this rank's thread count. */
int affinity_setup(int requested, FILE *out);
#endif
