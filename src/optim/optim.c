#include "optim/optim.h"
#include <math.h>
#include <string.h>

typedef struct {
    size_t offset, count;
    param_kind kind;
    int ndim;
    char name[96];
} optim_tensor;

struct optim {
    optim_cfg cfg;
    int nt;
    optim_tensor *t;
    size_t nparams;
    float *state; /* SGD/LARS: mu[nparams]; AdamW: m[nparams] v[nparams] steps[nt] */
    size_t nstate;
    long steps;
};

optim_cfg optim_defaults(optim_kind kind) {
    optim_cfg c = {.kind = kind, .momentum = 0.9f, .wd = 0.0f, .no_decay_bn_bias = false, .trust = 1e-3f,
                   .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    return c;
}

static sc_err optim_check_cfg(const optim_cfg *c) {
    if (c->kind != OPTIM_SGD && c->kind != OPTIM_LARS && c->kind != OPTIM_ADAMW)
        return sc_errorf(SC_ERR_CONFIG, "optimizer: kind %d, expected sgd, lars or adamw", (int)c->kind);
    if (!(c->momentum >= 0.0f && c->momentum < 1.0f))
        return sc_errorf(SC_ERR_CONFIG, "optimizer: momentum = %g, expected in [0, 1)", c->momentum);
    if (!(c->wd >= 0.0f)) return sc_errorf(SC_ERR_CONFIG, "optimizer: weight_decay = %g, expected >= 0", c->wd);
    if (c->kind == OPTIM_LARS && !(c->trust > 0.0f))
        return sc_errorf(SC_ERR_CONFIG, "optimizer: lars trust coefficient = %g, expected > 0", c->trust);
    if (c->kind == OPTIM_ADAMW &&
        !(c->beta1 >= 0.0f && c->beta1 < 1.0f && c->beta2 >= 0.0f && c->beta2 < 1.0f && c->eps > 0.0f))
        return sc_errorf(SC_ERR_CONFIG, "optimizer: adamw betas (%g, %g) / eps %g, expected betas in [0, 1), eps > 0",
                         c->beta1, c->beta2, c->eps);
    return SC_OK;
}

optim *optim_create(const optim_cfg *cfg, const param_info *tensors, int ntensors, size_t nparams, sc_err *err) {
    sc_err e = optim_check_cfg(cfg);
    for (int i = 0; e == SC_OK && i < ntensors; i++) {
        const param_info *p = &tensors[i];
        if (p->offset > nparams || p->count > nparams - p->offset)
            e = sc_errorf(SC_ERR_ARG, "optimizer: tensor %d '%s' [%zu, +%zu) lies outside the %zu-float arena", i,
                          p->name, p->offset, p->count, nparams);
    }
    if (err) *err = e;
    if (e != SC_OK) return NULL;
    optim *o = sc_calloc_n(optim, 1);
    o->cfg = *cfg;
    o->nt = ntensors;
    o->t = sc_calloc_n(optim_tensor, ntensors > 0 ? ntensors : 1);
    for (int i = 0; i < ntensors; i++) {
        o->t[i].offset = tensors[i].offset;
        o->t[i].count = tensors[i].count;
        o->t[i].kind = tensors[i].kind;
        o->t[i].ndim = tensors[i].ndim;
        memcpy(o->t[i].name, tensors[i].name, sizeof o->t[i].name);
        o->t[i].name[sizeof o->t[i].name - 1] = 0;
    }
    o->nparams = nparams;
    o->nstate = cfg->kind == OPTIM_ADAMW ? 2 * nparams + (size_t)ntensors : nparams;
    o->state = sc_calloc_n(float, o->nstate ? o->nstate : 1);
    return o;
}

void optim_free(optim *o) {
    if (!o) return;
    sc_free(o->t);
    sc_free(o->state);
    sc_free(o);
}

const optim_cfg *optim_config(const optim *o) { return &o->cfg; }
float *optim_state(optim *o, size_t *n) { if (n) *n = o->nstate; return o->state; }
long optim_steps(const optim *o) { return o->steps; }
void optim_set_steps(optim *o, long steps) { o->steps = steps; }

sc_err optim_restore(optim *o, const float *state, size_t n, long steps) {
    if (n != o->nstate)
        return sc_errorf(SC_ERR_MISMATCH, "optimizer state: %zu floats in the checkpoint, expected %zu "
                         "(another optimizer kind or model?)", n, o->nstate);
    memcpy(o->state, state, n * sizeof(float));
    o->steps = steps;
    return SC_OK;
}

static bool optim_decays(const optim *o, const optim_tensor *t) {
    return o->cfg.wd != 0.0f && !(o->cfg.no_decay_bn_bias && (t->kind == PARAM_BN || t->kind == PARAM_BIAS));
}

/* PyTorch SGD without dampening/nesterov: buf = m buf + (g + wd p); p -= lr buf (docs/method.md §5.1). */
static void optim_sgd_tensor(float *restrict p, const float *restrict g, float *restrict mu, size_t n, float m,
                             float wd, float lr) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float b = m * mu[i] + (g[i] + wd * p[i]);
        mu[i] = b;
        p[i] -= lr * b;
    }
}

/* LARS (docs/method.md §5.1, MoCo v3): ndim > 1: d = g + wd p scaled by trust |p|/|d| (1 if a norm is 0);
 * ndim <= 1: d = g. Then mu = m mu + d, p -= lr mu. Norms in double: tensors reach millions of floats. */
static void optim_lars_tensor(const optim *o, const optim_tensor *t, float *restrict p, const float *restrict g,
                              float *restrict mu, float lr) {
    size_t n = t->count;
    float m = o->cfg.momentum;
    if (t->ndim <= 1) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            mu[i] = m * mu[i] + g[i];
            p[i] -= lr * mu[i];
        }
        return;
    }
    float wd = o->cfg.wd;
    double pp = 0.0, dd = 0.0;
#pragma omp simd reduction(+ : pp, dd)
    for (size_t i = 0; i < n; i++) {
        double d = (double)g[i] + (double)wd * (double)p[i];
        pp += (double)p[i] * (double)p[i];
        dd += d * d;
    }
    float q = (pp > 0.0 && dd > 0.0) ? (float)(o->cfg.trust * sqrt(pp) / sqrt(dd)) : 1.0f;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        mu[i] = m * mu[i] + q * (g[i] + wd * p[i]);
        p[i] -= lr * mu[i];
    }
}

/* PyTorch AdamW: p *= 1 - lr wd; m,v moments; p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps). The step count is
 * per tensor, since untouched tensors skip steps (as PyTorch's per-parameter state does). */
static void optim_adamw_tensor(const optim *o, const optim_tensor *t, float *restrict p, const float *restrict g,
                               float *restrict mm, float *restrict vv, float *tsteps, float lr) {
    size_t n = t->count;
    float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps;
    float decay = optim_decays(o, t) ? 1.0f - lr * o->cfg.wd : 1.0f;
    double step = (double)*tsteps + 1.0;
    *tsteps = (float)step;
    float step_size = (float)(lr / (1.0 - pow(b1, step)));
    float inv_sqrt_bc2 = (float)(1.0 / sqrt(1.0 - pow(b2, step)));
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = b1 * mm[i] + (1.0f - b1) * gi;
        float vi = b2 * vv[i] + (1.0f - b2) * gi * gi;
        mm[i] = mi;
        vv[i] = vi;
        p[i] = p[i] * decay - step_size * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
    }
}

void optim_step(optim *o, float *params, const float *grads, const uint8_t *touched, float lr) {
    for (int i = 0; i < o->nt; i++) {
        if (touched && !touched[i]) continue;
        const optim_tensor *t = &o->t[i];
        float *p = params + t->offset;
        const float *g = grads + t->offset;
        switch (o->cfg.kind) {
        case OPTIM_SGD:
            optim_sgd_tensor(p, g, o->state + t->offset, t->count, o->cfg.momentum,
                             optim_decays(o, t) ? o->cfg.wd : 0.0f, lr);
            break;
        case OPTIM_LARS: optim_lars_tensor(o, t, p, g, o->state + t->offset, lr); break;
        case OPTIM_ADAMW:
            optim_adamw_tensor(o, t, p, g, o->state + t->offset, o->state + o->nparams + t->offset,
                               o->state + 2 * o->nparams + i, lr);
            break;
        }
    }
    o->steps++;
}

void optim_ema(float *restrict k, const float *restrict q, size_t n, float m) {
    float a = 1.0f - m;
#pragma omp simd
    for (size_t i = 0; i < n; i++) k[i] = m * k[i] + a * q[i];
}
