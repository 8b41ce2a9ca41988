/* core/timer: monotonic wall clock and named phase accumulators (reduced over ranks by comm/). */
#ifndef SC_CORE_TIMER_H
#define SC_CORE_TIMER_H
double sc_now(void); /* seconds, CLOCK_MONOTONIC */
#endif
