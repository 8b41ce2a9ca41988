/* ssl/run: the run directory of docs/conventions.md "A run" (config.yaml, metrics.jsonl, checkpoints/, traces, eval/).
 * Rank 0 only (not collective). */
#ifndef SC_SSL_RUN_H
#define SC_SSL_RUN_H
#include "core/error.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "model/model.h"
#include <stdio.h>
#include <stdbool.h>
#include <stddef.h>

/* Creates run.dir (and checkpoints/, eval/), refuses an existing run without --resume, finds the checkpoint to resume
 * from (resume_path, or the run's latest complete one; none = fresh start: resume_from = ""), and writes the
 * resolved config.yaml atomically. */
sc_err run_dir_prepare(const sc_config *cfg, bool resume, const char *resume_path, char *resume_from, size_t n);
/* SC_ERR_MISMATCH, naming the first differing key (config_diff_key), when the checkpoint at path was written
 * with another model signature or config hash than cfg (docs/conventions.md "What may change on resume"). */
sc_err run_check_resume(const sc_config *cfg, const char *path);
/* The first hashed key in which cfg differs from the resolved config stored in checkpoint f ("" when none or when f
 * carries no config), e.g. "optim.lr: 0.05 vs 0.5". */
void run_ckpt_diff_hint(const ckpt_file *f, const sc_config *cfg, char *hint, size_t n);
/* After a start that failed before its first step: removes what run_dir_prepare created (config.yaml, the empty
 * checkpoints/, eval/ and run directory), so that the corrected `train` starts in the same place. Keeps a run. */
void run_dir_abandon(const sc_config *cfg);
/* Marks a run stopped by a signal (a STOPPED_BY_SIGNAL file naming the step), for job scripts that requeue. */
void run_dir_mark_stopped(const char *dir, long step);
/* A resumed run writes each step once: drops the metrics.jsonl lines (at path) of steps after `step` (logged after
 * the checkpoint the run resumes from) and a torn last line; lines without a "step" key stay. Atomic rewrite;
 * a missing file is fine. *dropped (may be NULL) = lines removed. */
sc_err run_metrics_truncate(const char *path, long step, long *dropped);
/* The memory one rank of `slimclr train` needs for cfg on P ranks (parameters, gradients, optimizer state, BN
 * buffers, tapes, queue, step and loader buffers; not the dataset), itemized to out when non-NULL (`slimclr info`).
 * q: the query encoder (ssl_encoder_cfg). */
double ssl_memory_estimate(const sc_config *cfg, model *q, int P, FILE *out);
/* What one rank may use on its node, in bytes (-1: unknown), and why (a sentence naming the source): the smallest
 * of the cgroup limit (v2 memory.max up the tree, v1 memory.limit_in_bytes) / local_ranks, SLURM_MEM_PER_NODE /
 * local_ranks, SLURM_MEM_PER_CPU x SLURM_CPUS_PER_TASK and MemAvailable / local_ranks. SLIMCLR_MEM_PER_RANK=SIZE
 * (e.g. 64G) replaces it. */
double ssl_memory_allowance(int local_ranks, char *why, size_t n);
/* "123", "64G", "512M" (powers of 1024) -> bytes */
bool ssl_parse_bytes(const char *s, double *v);
/* mkdir -p */
sc_err run_mkdirs(const char *path);
#endif
