/* optim/optim: SGD (momentum + L2), LARS and AdamW over a model's parameter arena (docs/method.md §5.1).
 *
 * The optimizer sees the arena through the tensor table (param_info: offset, count, kind, ndim), copied at
 * creation; it never calls into model/. All state lives in ONE float arena (optim_state) so that a checkpoint
 * stores it as a blob, plus the step count (optim_steps / optim_set_steps).
 *
 * A tensor whose touched flag is 0 in a step is left completely untouched: no decay, no momentum update, no
 * LARS scaling, no AdamW step count (docs/method.md "Choices"; PyTorch skips grad=None). Nothing here allocates after
 * optim_create; a step is a few contiguous passes over the arena. */
#ifndef SC_OPTIM_OPTIM_H
#define SC_OPTIM_OPTIM_H
#include "core/error.h"
#include "core/param.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { OPTIM_SGD = 0, OPTIM_LARS = 1, OPTIM_ADAMW = 2 } optim_kind;

typedef struct {
    optim_kind kind;
    float momentum;      /* SGD / LARS (0.9) */
    float wd;            /* SGD: L2 added to g; LARS: added to g for ndim > 1 only; AdamW: decoupled */
    bool no_decay_bn_bias; /* SGD/AdamW: exclude PARAM_BN and PARAM_BIAS from decay (default false: decay all) */
    float trust;         /* LARS trust coefficient (0.001) */
    float beta1, beta2, eps; /* AdamW (0.9, 0.999, 1e-8) */
} optim_cfg;

/* Defaults of docs/method.md §5.1 for the given kind (momentum 0.9, trust 1e-3, Adam betas 0.9/0.999, eps 1e-8, wd 0). */
optim_cfg optim_defaults(optim_kind kind);

typedef struct optim optim;

/* tensors[0..ntensors) describe the parameter arena of nparams floats (copied). Returns NULL and sets *err
 * (message names the tensor) when a tensor lies outside the arena or the config is out of range. */
optim *optim_create(const optim_cfg *cfg, const param_info *tensors, int ntensors, size_t nparams, sc_err *err);
void optim_free(optim *o);
const optim_cfg *optim_config(const optim *o);

/* One update of params with grads at learning rate lr. touched[i] != 0: tensor i received gradient this
 * step (NULL = all touched). Increments the step count. */
void optim_step(optim *o, float *params, const float *grads, const uint8_t *touched, float lr);

/* The state arena: SGD/LARS momentum buffer [nparams]; AdamW m [nparams], v [nparams], then one per-tensor
 * step count [ntensors] (floats, exact below 2^24 steps). Writable: restoring = copying a blob into it. */
float *optim_state(optim *o, size_t *n);
long optim_steps(const optim *o);
void optim_set_steps(optim *o, long steps);
/* Restores state + step count; SC_ERR_MISMATCH (message gives both sizes) when n differs. */
sc_err optim_restore(optim *o, const float *state, size_t n, long steps);

/* EMA of a key encoder over ALL params (docs/method.md §3.1): k = m*k + (1-m)*q. */
void optim_ema(float *k, const float *q, size_t n, float m);
#endif
