/* eval/probe: the linear probe of docs/method.md §7 on cached (frozen, eval-mode) features, one set per width.
 *
 * Features: F_w [n][C_w] row-major per width (any row order; the caller's split between ranks). Each feature is
 * standardised with the mean/std of the training set of all ranks (applied to the test set too), unless
 * opts.standardize is false.
 * Heads: switchable (default) = one independent Linear(C_w -> classes) per width, N(0, 0.01^2) weights, zero
 * bias; or slim_linear = one Linear(C_max -> classes) shared by all widths, width w using its first C_w inputs
 * (the "single slimmable linear layer" baseline; then dims must be descending with dims[0] = C_max).
 * Loss per step, summed over widths (docs/method.md §7): width 0 (full): CE(z_0, y); each other width:
 *     distill ? ½[CE(z_w, y) + H(softmax(z_0).detach(), z_w)] : CE(z_w, y).
 * SGD: momentum, weight decay on weights and biases (PyTorch SGD), lr per epoch: cosine lr·½(1+cos(π e/E)) or
 * step (×gamma at each milestone). Data parallel: each rank steps through its own shuffled rows, with a local
 * batch proportional to its share of the global batch; gradients are summed over ranks and divided by the
 * global number of samples of the step. */
#ifndef SC_EVAL_PROBE_H
#define SC_EVAL_PROBE_H
#include "core/error.h"
#include <stdbool.h>
#include <stdint.h>

#define PROBE_MAX_WIDTHS 8
#define PROBE_MAX_MILESTONES 8

typedef enum { PROBE_COSINE = 0, PROBE_STEP = 1 } probe_schedule;

typedef struct {
    int epochs;              /* default 100 */
    int batch;               /* global batch, default 256 */
    float lr;                /* default 0.1 (standardised features) */
    float momentum;          /* default 0.9 */
    float wd;                /* default 0 */
    probe_schedule schedule; /* default cosine */
    int nmilestones;         /* step schedule: epochs at which lr *= gamma */
    int milestones[PROBE_MAX_MILESTONES];
    float gamma;             /* default 0.1 */
    bool distill;            /* docs/method.md §7 switchable loss (default true); false = CE only */
    bool slim_linear;        /* one shared slimmable layer instead of one per width */
    bool standardize;        /* default true */
    uint64_t seed;           /* init and shuffling */
    int eval_every;          /* > 0: evaluate the test set every this many epochs (logged with sc_info) */
    bool verbose;            /* per-epoch training loss via sc_info */
} probe_opts;

typedef struct {
    int nwidths;
    double top1[PROBE_MAX_WIDTHS], top5[PROBE_MAX_WIDTHS]; /* on the test set, in [0, 1] */
    double test_loss[PROBE_MAX_WIDTHS];                    /* mean CE on the test set */
    double train_loss[PROBE_MAX_WIDTHS];                   /* mean CE of the last epoch (running, training mode) */
} probe_result;

probe_opts probe_opts_default(void);

/* COLLECTIVE. Global: nwidths, dims, classes, opts. Local: n_train/n_test and the arrays. train[w], test[w]:
 * [n][dims[w]] (not modified). Labels in [0, classes). W_out (optional): per width, the trained weight
 * [classes][dims[w]] and bias [classes] in raw-feature space are written to W_out[w] (classes*dims[w] floats)
 * and b_out[w] (may be NULL). Top-5 uses min(5, classes). */
sc_err probe_train(int nwidths, const int *dims, int classes, int n_train, const float *const *train,
                   const int32_t *train_labels, int n_test, const float *const *test, const int32_t *test_labels,
                   const probe_opts *opts, probe_result *res, float *const *W_out, float *const *b_out);
#endif
