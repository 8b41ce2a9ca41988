/* comm/timers: named phase accumulators (data wait, forward per width, backward per width, key encoder,
 * SyncBN, optimizer, allreduce exposed, ...) and an HPL-style report of min/avg/max over ranks.
 * Register names once at set-up (comm_timer_id), then only add in the step: no allocation, no lookups.
 * Main thread only. */
#ifndef SC_COMM_TIMERS_H
#define SC_COMM_TIMERS_H
#include <stdio.h>

#define COMM_TIMERS_MAX 64
#define COMM_TIMER_NAME_MAX 32

int comm_timer_id(const char *name);        /* local: the id of name, registering it on first use */
void comm_timer_add(int id, double seconds); /* local: accumulate (and count one call) */
void comm_timer_start(int id);               /* local: start / stop pair (not nested per id) */
void comm_timer_stop(int id);
double comm_timer_seconds(int id);           /* local total */
long comm_timer_calls(int id);
void comm_timers_reset(void);                /* local: zero every total, keep the names */

/* COLLECTIVE: for each phase of rank 0 (a phase another rank lacks counts 0 there), the min/avg/max over
 * ranks of its total seconds, the calls and the imbalance max/avg; printed by rank 0 to f (f may be NULL
 * on other ranks). */
void comm_timers_report(FILE *f);
#endif
