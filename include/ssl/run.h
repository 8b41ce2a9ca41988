/* ssl/run: the run directory of CONVENTIONS "A run" (config.yaml, metrics.jsonl, checkpoints/, traces, eval/).
 * Rank 0 only (not collective). */
#ifndef SC_SSL_RUN_H
#define SC_SSL_RUN_H
#include "core/error.h"
#include "io/config.h"
#include <stdbool.h>
#include <stddef.h>

/* Creates run.dir (and checkpoints/), refuses an existing run without --resume, finds the checkpoint to resume
 * from (resume_path, or the run's latest complete one; none = fresh start: resume_from = ""), and writes the
 * resolved config.yaml atomically. */
sc_err run_dir_prepare(const sc_config *cfg, bool resume, const char *resume_path, char *resume_from, size_t n);
/* Marks a run stopped by a signal (a STOPPED_BY_SIGNAL file naming the step), for job scripts that requeue. */
void run_dir_mark_stopped(const char *dir, long step);
/* mkdir -p */
sc_err run_mkdirs(const char *path);
#endif
