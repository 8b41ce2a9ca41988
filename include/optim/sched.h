/* optim/sched: learning-rate schedules (docs/method.md §5.1) with the slow-start LR reset (docs/method.md §4a), and the MoCo v3
 * momentum schedule (docs/method.md §3.2). Pure functions of the global optimizer step T (0-based; the LR is evaluated
 * before step T's update, as the reference calls its scheduler before every step). */
#ifndef SC_OPTIM_SCHED_H
#define SC_OPTIM_SCHED_H
#include "core/error.h"
#include <stdbool.h>

#define SCHED_MAX_MILESTONES 16
#define SCHED_LR_FLOOR 1e-8 /* warm-up start and lower bound (docs/method.md §5.1) */

typedef enum { SCHED_COSINE = 0, SCHED_STEP = 1 } sched_kind;

typedef struct {
    sched_kind kind;
    double lr0;
    long steps_per_epoch;    /* optimizer steps per epoch (drop_last) */
    long epochs;
    double warmup_proportion; /* warm = (long)(warmup_proportion * total) steps; 0 = none */
    int nmilestones;          /* step mode: lr0 * 0.1^(#milestones <= epoch) */
    int milestones[SCHED_MAX_MILESTONES];
    double slow_start_epoch;  /* S (may be fractional); <= 0 = no LR reset */
    double slow_start_lr;     /* the base LR once epoch + step/spe >= S */
} sched_cfg;

/* Checks the config: SC_ERR_CONFIG with a message naming the field and the expected range. */
sc_err sched_check(const sched_cfg *c);
long sched_total_steps(const sched_cfg *c);
long sched_warmup_steps(const sched_cfg *c);

/* Fractional epoch of global step T: epoch + step/spe (the one predicate of slow start, docs/method.md §4a). */
static inline double sched_epoch_frac(long T, long spe) {
    return (double)(T / spe) + (double)(T % spe) / (double)spe;
}
/* Slow start is over (sub-widths train, LR base reset) at step T: epoch_frac >= S. S <= 0: from the start. */
static inline bool sched_slow_start_over(long T, long spe, double S) {
    return S <= 0.0 || sched_epoch_frac(T, spe) >= S;
}

/* LR at global step T. Warm-up: min(1e-8 + T/warm (base - 1e-8), base) for T <= warm; then cosine
 * 0.5 base (1 + cos(pi (T - warm)/(total - warm))), or step mode; floor 1e-8. base = lr0, or slow_start_lr
 * from the slow-start step on (S > 0): the schedule continues from T, no re-warm-up. */
double sched_lr(const sched_cfg *c, long T);

/* MoCo v3 momentum at fractional epoch e of E: 1 - 0.5 (1 + cos(pi e/E)) (1 - m0). */
double sched_momentum_cos(double m0, double e, double E);
#endif
