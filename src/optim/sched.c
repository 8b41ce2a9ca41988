#include "optim/sched.h"
#include <math.h>

long sched_total_steps(const sched_cfg *c) { return c->steps_per_epoch * c->epochs; }

long sched_warmup_steps(const sched_cfg *c) {
    return (long)(c->warmup_proportion * (double)sched_total_steps(c));
}

sc_err sched_check(const sched_cfg *c) {
    if (c->steps_per_epoch <= 0)
        return sc_errorf(SC_ERR_CONFIG, "schedule: steps_per_epoch = %ld, expected > 0 (dataset smaller than a batch?)",
                         c->steps_per_epoch);
    if (c->epochs <= 0) return sc_errorf(SC_ERR_CONFIG, "schedule: epochs = %ld, expected > 0", c->epochs);
    if (!(c->lr0 > 0.0)) return sc_errorf(SC_ERR_CONFIG, "schedule: lr = %g, expected > 0", c->lr0);
    if (!(c->warmup_proportion >= 0.0 && c->warmup_proportion < 1.0))
        return sc_errorf(SC_ERR_CONFIG, "schedule: warmup_proportion = %g, expected in [0, 1)", c->warmup_proportion);
    if (c->kind != SCHED_COSINE && c->kind != SCHED_STEP)
        return sc_errorf(SC_ERR_CONFIG, "schedule: mode %d, expected cosine or step", (int)c->kind);
    if (c->nmilestones < 0 || c->nmilestones > SCHED_MAX_MILESTONES)
        return sc_errorf(SC_ERR_CONFIG, "schedule: %d milestones, expected at most %d", c->nmilestones,
                         SCHED_MAX_MILESTONES);
    if (c->slow_start_epoch > 0.0 && !(c->slow_start_lr > 0.0))
        return sc_errorf(SC_ERR_CONFIG, "schedule: slim_start_lr = %g, expected > 0", c->slow_start_lr);
    return SC_OK;
}

double sched_lr(const sched_cfg *c, long T) {
    const double floor = SCHED_LR_FLOOR;
    long spe = c->steps_per_epoch > 0 ? c->steps_per_epoch : 1;
    /* docs/method.md §4a: the reset needs S > 0 (S <= 0 means no slow start at all) */
    double base = (c->slow_start_epoch > 0.0 && sched_slow_start_over(T, spe, c->slow_start_epoch))
                      ? c->slow_start_lr : c->lr0;
    long total = sched_total_steps(c), warm = sched_warmup_steps(c);
    double lr;
    if (warm > 0 && T <= warm) {
        lr = fmin(floor + (double)T / (double)warm * (base - floor), base);
    } else if (c->kind == SCHED_STEP) {
        long epoch = T / spe;
        int j = 0;
        for (int i = 0; i < c->nmilestones; i++) j += c->milestones[i] <= epoch;
        lr = base * pow(0.1, j);
    } else {
        double span = (double)(total - warm);
        double t = span > 0 ? (double)(T - warm) / span : 1.0;
        lr = 0.5 * base * (1.0 + cos(M_PI * t));
    }
    return fmax(lr, floor);
}

double sched_momentum_cos(double m0, double e, double E) {
    return 1.0 - 0.5 * (1.0 + cos(M_PI * e / E)) * (1.0 - m0);
}
