/* core/signals: SIGUSR1 (the wall-time warning in job files, see docs/method.md "Communication and signals"), SIGUSR2
 * and SIGTERM only set a flag here. The training loop asks every rank at each step boundary with
 * comm_allreduce_max_int(signals_pending()) so all ranks checkpoint and stop at the same step. */
#ifndef SC_CORE_SIGNALS_H
#define SC_CORE_SIGNALS_H

void signals_install(void);   /* idempotent; SA_RESTART so interrupted I/O resumes */
int signals_pending(void);    /* the last caught signal number (SIGUSR1/SIGUSR2/SIGTERM), 0 if none */
void signals_clear(void);
const char *signals_name(int sig); /* "SIGUSR1", ... */
#endif
