/* comm/balance: how evenly the ranks computed each step, and how long each main thread was off its core.
 * Every blocking point of a step (a SyncBN reduction, the gradient wait, a gather) ends when the slowest rank
 * arrives. What a rank waits because another rank computed longer in the same step is load imbalance: no schedule
 * inside the step hides it, it only moves the wait. Each rank records per step its compute (the step's wall time
 * less its own waits) and its main thread's off-CPU time (wall less CLOCK_THREAD_CPUTIME_ID: preemption by other
 * threads, the OS, the hypervisor's accounted steal); the reduction at the end gives min/avg/max over ranks, as
 * comm/timers does for phases. Recording is local and does not allocate. */
#ifndef SC_COMM_BALANCE_H
#define SC_COMM_BALANCE_H
#include "core/error.h"
#include <stdbool.h>

typedef struct {
    double *compute, *offcpu; /* local: per recorded step, seconds */
    long cap, n;              /* room, steps recorded */
    double t0, cpu0;          /* the open step's start: wall, thread CPU time */
    double waited;            /* local: the recorded steps' waits, summed */
    bool open;
} balance;

typedef struct {
    long steps;                                   /* recorded on every rank */
    double compute_min, compute_avg, compute_max; /* per step over ranks, averaged over the steps (s) */
    double excess;    /* mean over steps of (max - mean over ranks) of compute: the wait imbalance costs a rank (s) */
    double waited;    /* the waits per step, averaged over ranks and steps (s): excess of it is imbalance */
    double offcpu_min, offcpu_avg, offcpu_max; /* each rank's mean off-CPU time per step, min/avg/max over ranks (s) */
} balance_result;

sc_err balance_init(balance *b, long cap); /* local: room for cap steps (later ones are not recorded) */
void balance_free(balance *b);
void balance_begin(balance *b);                 /* local: at a step's start (main thread) */
void balance_end(balance *b, double waited_s);  /* local: at its end; waited_s = its collective waits in the step */
void balance_record(balance *b, double compute_s, double offcpu_s, double waited_s); /* local: one step's values */
void balance_reduce(const balance *b, balance_result *r); /* COLLECTIVE: every rank gets the result */
#endif
