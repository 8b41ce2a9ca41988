/* ssl/train: the pre-training run (`slimclr train`): run directory, resume, the step loop, progress line,
 * metrics, checkpoint cadence, signals, NaN stop, timers and trace. COLLECTIVE: every rank calls it. */
#ifndef SC_SSL_TRAIN_H
#define SC_SSL_TRAIN_H
#include <stdbool.h>

typedef struct {
    const char *config_path;
    const char *const *sets; /* --set key=value, in order */
    int nsets;
    bool resume;             /* --resume */
    const char *resume_path; /* --resume PATH (NULL: the run's latest checkpoint, or fresh when none) */
} train_args;

/* Returns the process exit code: 0 done (or stopped cleanly on a signal, with a checkpoint), 2 bad
 * configuration / usage, 3 non-finite loss, 1 other errors. The message has been printed. */
int train_run(const train_args *a);
#endif
