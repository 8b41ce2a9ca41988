/* eval/probe: the linear probe of docs/method.md "Linear evaluation", one set of features per width.
 *
 * Features: F_w [n][C_w] row-major per width (any row order; the caller's split between ranks).
 * Standardisation (opts.standardize): each feature is standardised with the mean/std of the training rows of all
 * ranks, fixed once by probe_fit_stats (the cached protocol); without it the probe trains on the raw features, as
 * the reference does (its learning rates, 60 for MoCo v2, assume raw features).
 * Heads: switchable (default) = one independent Linear(C_w -> classes) per width, N(0, 0.01^2) weights, zero
 * bias; or slim_linear = one Linear(C_max -> classes) shared by all widths, width w using its first C_w inputs
 * (the "single slimmable linear layer" baseline; then dims must be descending with dims[0] = C_max).
 * Loss per step, summed over widths: width 0 (full): CE(z_0, y); each other width:
 *     distill ? ½[CE(z_w, y) + H(softmax(z_0).detach(), z_w)] : CE(z_w, y).
 * Optimiser and schedule come from optim/: SGD with momentum, weight decay on weights and biases (PyTorch SGD),
 * the LR per step from sched_lr (cosine over all steps, or ×0.1 at each milestone epoch; no warm-up).
 * Data parallel: each rank steps through its own shuffled rows, with a local batch proportional to its share of
 * the global batch; gradients are summed over ranks and divided by the global number of samples of the step. */
#ifndef SC_EVAL_PROBE_H
#define SC_EVAL_PROBE_H
#include "core/error.h"
#include "optim/sched.h"
#include <stdbool.h>
#include <stdint.h>

#define PROBE_MAX_WIDTHS 8
#define PROBE_MAX_MILESTONES SCHED_MAX_MILESTONES

/* What is probed: global (equal on every rank). */
typedef struct {
    int nwidths;
    int dims[PROBE_MAX_WIDTHS];
    int classes;
} probe_shape;

/* One split on this rank: n rows, F[w] [n][dims[w]], labels in [0, classes). Local. */
typedef struct {
    int n;
    const float *F[PROBE_MAX_WIDTHS];
    const int32_t *labels;
} probe_data;

typedef struct {
    int epochs;              /* default 100 */
    int batch;               /* global batch, default 256 */
    float lr;                /* default 0.1 (standardised features) */
    float momentum;          /* default 0.9 */
    float wd;                /* default 0 */
    sched_kind schedule;     /* default SCHED_COSINE; SCHED_STEP: lr x 0.1 at each milestone */
    int nmilestones;
    int milestones[PROBE_MAX_MILESTONES]; /* epochs, <= epochs */
    bool distill;            /* the switchable loss above (default true); false = CE only */
    bool slim_linear;        /* one shared slimmable layer instead of one per width */
    bool standardize;        /* default true */
    uint64_t seed;           /* init and shuffling */
    int eval_every;          /* > 0: probe_train evaluates the test set every this many epochs (and keeps the best) */
    bool verbose;            /* per-epoch training loss via sc_info */
} probe_opts;

typedef struct {
    int nwidths;
    double top1[PROBE_MAX_WIDTHS], top5[PROBE_MAX_WIDTHS]; /* on the test set, in [0, 1] */
    double test_loss[PROBE_MAX_WIDTHS];                    /* mean CE on the test set */
    double train_loss[PROBE_MAX_WIDTHS];                   /* mean CE of the last epoch (running, training mode) */
    /* the best of the evaluations (every eval_every epochs and the last), chosen on the full width's top-1 as the
     * reference chooses its "best" checkpoint: a test-set selection, reported as such */
    double best_top1[PROBE_MAX_WIDTHS];
    int best_epoch;                                        /* 1-based epoch of that evaluation */
} probe_result;

probe_opts probe_opts_default(void);

typedef struct probe probe;

/* COLLECTIVE (shape and opts global). Checks them and creates the probe: N(0, 0.01^2) weights, zero biases, the
 * same on every rank. steps_per_epoch = ceil(global training rows / batch): the schedule's length. */
sc_err probe_create(const probe_shape *shape, const probe_opts *opts, int64_t global_train_rows, probe **out);
void probe_free(probe *p);
/* COLLECTIVE. With opts.standardize: the per-feature mean and std of `train` over all ranks (call once, before
 * the first epoch; the cached protocol). A no-op otherwise. */
void probe_fit_stats(probe *p, const probe_data *train);
/* COLLECTIVE. One epoch (0-based `epoch`, which sets the LR and the shuffle) over this rank's rows of train (the
 * same global row count every epoch). Labels outside [0, classes) or a non-finite loss: an error on every rank.
 * train_loss (may be NULL): the epoch's mean CE per width. */
sc_err probe_epoch(probe *p, int epoch, const probe_data *train, double *train_loss);
/* COLLECTIVE. Top-1/top-5/CE per width on `test` into res (other fields untouched). */
sc_err probe_evaluate(const probe *p, const probe_data *test, probe_result *res);
/* Local. Per width, the weight [classes][dims[w]] and bias [classes] in raw-feature space (standardisation folded
 * in): W_out[w] (classes*dims[w] floats), b_out[w] (classes); NULL entries are skipped. */
void probe_export(const probe *p, float *const *W_out, float *const *b_out);

/* COLLECTIVE. The cached protocol in one call: fit_stats, opts.epochs epochs on the same train rows, evaluations
 * every opts.eval_every epochs and at the end (res: the last one, and the best), export (W_out/b_out may be NULL). */
sc_err probe_train(const probe_shape *shape, const probe_data *train, const probe_data *test, const probe_opts *opts,
                   probe_result *res, float *const *W_out, float *const *b_out);
/* Folds one evaluation of epoch `epoch` (1-based) into res's best (chosen on width 0's top-1). */
void probe_track_best(probe_result *res, int epoch);
#endif
