/* comm/timers: see include/comm/timers.h. */
#include "comm/timers.h"
#include "comm/comm.h"
#include "comm_internal.h"
#include "core/timer.h"
#include <string.h>

static char names[COMM_TIMERS_MAX][COMM_TIMER_NAME_MAX];
static double total[COMM_TIMERS_MAX], started[COMM_TIMERS_MAX];
static long calls[COMM_TIMERS_MAX];
static int ntimers;

int comm_timer_id(const char *name) {
    for (int i = 0; i < ntimers; i++)
        if (strncmp(names[i], name, COMM_TIMER_NAME_MAX - 1) == 0) return i;
    SC_CHECK(ntimers < COMM_TIMERS_MAX, "comm_timer_id(\"%s\"): more than %d timers", name, COMM_TIMERS_MAX);
    strncpy(names[ntimers], name, COMM_TIMER_NAME_MAX - 1);
    return ntimers++;
}

static void check_id(int id) { SC_CHECK(id >= 0 && id < ntimers, "timer id %d not registered (%d timers)", id, ntimers); }

void comm_timer_add(int id, double seconds) {
    check_id(id);
    total[id] += seconds;
    calls[id]++;
}
void comm_timer_start(int id) { check_id(id); started[id] = sc_now(); }
void comm_timer_stop(int id) { comm_timer_add(id, sc_now() - started[id]); }
double comm_timer_seconds(int id) { check_id(id); return total[id]; }
long comm_timer_calls(int id) { check_id(id); return calls[id]; }

void comm_timers_reset(void) {
    memset(total, 0, sizeof total);
    memset(calls, 0, sizeof calls);
}

void comm_timers_report(FILE *f) {
    int P = comm_size(), rank = comm_rank();
    /* rank 0's names decide the rows, so ranks that registered in another order still line up */
    char root_names[COMM_TIMERS_MAX][COMM_TIMER_NAME_MAX];
    int n = ntimers;
    memcpy(root_names, names, sizeof root_names);
    if (P > 1) {
        MPI_CHECK(MPI_Bcast(&n, 1, MPI_INT, 0, comm_world_dup()));
        MPI_CHECK(MPI_Bcast(root_names, (int)sizeof root_names, MPI_CHAR, 0, comm_world_dup()));
    }
    double mine[COMM_TIMERS_MAX], mn[COMM_TIMERS_MAX], mx[COMM_TIMERS_MAX], sum[COMM_TIMERS_MAX];
    double ncalls[COMM_TIMERS_MAX];
    for (int i = 0; i < n; i++) {
        mine[i] = 0;
        ncalls[i] = 0;
        for (int j = 0; j < ntimers; j++)
            if (strcmp(names[j], root_names[i]) == 0) {
                mine[i] = total[j];
                ncalls[i] = (double)calls[j];
            }
    }
    memcpy(mn, mine, sizeof(double) * (size_t)n);
    memcpy(mx, mine, sizeof(double) * (size_t)n);
    memcpy(sum, mine, sizeof(double) * (size_t)n);
    if (P > 1 && n > 0) {
        MPI_CHECK(MPI_Allreduce(mine, mn, n, MPI_DOUBLE, MPI_MIN, comm_world_dup()));
        MPI_CHECK(MPI_Allreduce(mine, mx, n, MPI_DOUBLE, MPI_MAX, comm_world_dup()));
        MPI_CHECK(MPI_Allreduce(mine, sum, n, MPI_DOUBLE, MPI_SUM, comm_world_dup()));
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, ncalls, n, MPI_DOUBLE, MPI_SUM, comm_world_dup()));
    }
    if (rank != 0 || !f) return;
    fprintf(f, "================================================================================\n");
    fprintf(f, "%-*s %10s %10s %10s %10s %8s\n", COMM_TIMER_NAME_MAX - 8, "phase (seconds, over ranks)", "calls",
            "min", "avg", "max", "max/avg");
    fprintf(f, "--------------------------------------------------------------------------------\n");
    for (int i = 0; i < n; i++) {
        double avg = sum[i] / P;
        fprintf(f, "%-*s %10.0f %10.4f %10.4f %10.4f %8.3f\n", COMM_TIMER_NAME_MAX - 8, root_names[i], ncalls[i] / P,
                mn[i], avg, mx[i], avg > 0 ? mx[i] / avg : 1.0);
    }
    fprintf(f, "================================================================================\n");
    fflush(f);
}
