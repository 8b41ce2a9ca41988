/* model/tape: activation planning. A training tape keeps what backward cannot cheaply recompute (see
 * model.h); an inference tape aliases every backbone activation onto three rotating buffers.
 * Per-model scratch (5 activation-sized buffers for a training tape, 2 for an inference tape, plus the conv
 * workspace) is shared by all tapes of a model and grown here, at planning time, never inside a step. */
#include "model_internal.h"
#include <string.h>

#define ALIGN_F 16 /* floats: keep every sub-buffer 64-byte aligned */

typedef struct {
    size_t used;
    float *base; /* NULL in the sizing pass */
} carve;

static float *take(carve *c, size_t floats) {
    float *p = c->base ? c->base + c->used : NULL;
    c->used += (floats + ALIGN_F - 1) / ALIGN_F * ALIGN_F;
    return p;
}

static size_t act(const mconv *c, int wi, int n) { return (size_t)c->cout[wi] * n * c->ho * c->ho; }

/* the largest backbone activation at width wi (conv outputs, block inputs/outputs, the stem before pooling) */
static size_t max_act(const model *m, int wi, int n) {
    size_t u = 16;
    if (!m->backbone) return u;
    u = act(&m->stem, wi, n);
    size_t in = (size_t)m->cfg.in_ch * n * m->cfg.img * m->cfg.img;
    if (in > u) u = in;
    for (int i = 0; i < m->nblocks; i++) {
        const mblock *B = &m->blocks[i];
        for (int j = 0; j < B->nconv; j++)
            if (act(&B->conv[j], wi, n) > u) u = act(&B->conv[j], wi, n);
    }
    return u;
}

static size_t max_ws(const model *m, int wi_min, int n) {
    size_t w = 0;
    if (!m->backbone) return 0;
    for (int wi = wi_min; wi < m->nw; wi++) {
        const mconv *c = &m->stem;
        size_t s = conv_workspace_floats(&c->d, n, c->cin[wi], c->cout[wi], c->h, c->h);
        if (s > w) w = s;
        for (int i = 0; i < m->nblocks; i++) {
            const mblock *B = &m->blocks[i];
            for (int j = 0; j <= B->nconv; j++) {
                if (j == B->nconv && !B->has_sc) break;
                c = j < B->nconv ? &B->conv[j] : &B->sc;
                s = conv_workspace_floats(&c->d, n, c->cin[wi], c->cout[wi], c->h, c->h);
                if (s > w) w = s;
            }
        }
    }
    return w;
}

static void grow_scratch(model *m, size_t unit, size_t nunits, size_t ws) {
    if (unit > m->unit || nunits > m->nunits) {
        if (unit < m->unit) unit = m->unit;
        if (nunits < m->nunits) nunits = m->nunits;
        sc_free(m->scratch);
        m->scratch = sc_calloc_n(float, unit * nunits);
        m->unit = unit;
        m->nunits = nunits;
        m->priv = nunits > SCR_SHARED ? m->scratch + SCR_SHARED * unit : NULL;
        m->punit = unit;
    }
    if (ws > m->ws_floats) {
        SC_CHECK(!m->ws_shared, "model: a tape needs a conv workspace of %zu floats, the shared one has %zu", ws,
                 m->ws_floats);
        sc_free(m->ws);
        m->ws = sc_calloc_n(float, ws);
        m->ws_floats = ws;
    }
}

static void carve_stats(carve *c, int ch, float **mean, float **inv) {
    *mean = take(c, (size_t)ch);
    *inv = take(c, (size_t)ch);
}

/* One pass lays out the tape over `c` (sizing when c->base is NULL). */
static void layout(model *m, model_tape *t, carve *c) {
    int w = t->wi_min, n = t->n;
    size_t unit = max_act(m, w, n);
    float *C = NULL, *P = NULL, *Q = NULL;
    if (t->infer) {
        C = take(c, unit);
        P = take(c, unit);
        Q = take(c, unit);
    }
    if (m->backbone) {
        size_t pooled = (size_t)m->stem.cout[w] * n * m->pool_ho * m->pool_ho;
        if (!t->infer) t->x = take(c, (size_t)m->cfg.in_ch * n * m->cfg.img * m->cfg.img);
        t->c0 = t->infer ? C : take(c, act(&m->stem, w, n));
        t->s0 = t->infer ? P : take(c, pooled);
        t->argmax = NULL;
        if (m->pool) {
            t->argmax = (int32_t *)take(c, pooled); /* int32 and float have the same size */
            t->argmax_n = pooled;
        }
        carve_stats(c, m->stem_bn.c[w], &t->m0, &t->i0);
        float *prev = t->s0;
        for (int i = 0; i < m->nblocks; i++) {
            mblock *B = &m->blocks[i];
            tblock *tb = &t->b[i];
            for (int j = 0; j < B->nconv; j++) {
                tb->c[j] = t->infer ? C : take(c, act(&B->conv[j], w, n));
                carve_stats(c, B->bn[j].c[w], &tb->mean[j], &tb->inv[j]);
            }
            tb->csc = tb->msc = tb->isc = NULL;
            if (B->has_sc) {
                tb->csc = t->infer ? C : take(c, act(&B->sc, w, n));
                carve_stats(c, B->bnsc.c[w], &tb->msc, &tb->isc);
            }
            tb->out = t->infer ? (prev == P ? Q : P) : take(c, act(&B->conv[B->nconv - 1], w, n));
            prev = tb->out;
        }
    }
    const mhead *H = &m->head;
    size_t in = (size_t)H->in[w] * n, out = (size_t)(H->kind == HEAD_NONE ? 0 : H->out) * n;
    t->f = (m->backbone || !t->infer) ? take(c, in) : NULL; /* the predictor reads its input in place */
    t->h0 = t->r = t->h1 = t->out = t->dh1 = t->dr = t->dh0 = t->df = NULL;
    if (H->kind == HEAD_NONE) return;
    if (!t->infer) t->df = take(c, in);
    if (H->mlp) {
        size_t hid = (size_t)H->hid[w] * n;
        t->h0 = take(c, hid);
        t->r = take(c, hid);
        t->h1 = take(c, out);
        t->out = H->has_bn[1] ? take(c, out) : t->h1;
        for (int j = 0; j < 2; j++)
            if (H->has_bn[j]) carve_stats(c, H->bn[j].c[w], &t->hm[j], &t->hi[j]);
        if (!t->infer) {
            t->dh1 = take(c, out);
            t->dr = take(c, hid);
            t->dh0 = take(c, hid);
        }
    } else {
        t->out = take(c, out);
    }
}

_Static_assert(SCR_TRAIN == MODEL_SCRATCH_UNITS, "model.h states the training scratch size");
_Static_assert(SCR_TRAIN - SCR_SHARED == MODEL_SCRATCH_PRIVATE, "model.h states a pass's own scratch");

size_t model_scratch_unit(const model *m, int wi_min, int n) {
    size_t unit = max_act(m, wi_min, n), hunit = (size_t)m->head.in[wi_min] * n;
    if (hunit > unit) unit = hunit;
    return (unit + ALIGN_F - 1) / ALIGN_F * ALIGN_F;
}

model_scratch_ref model_scratch_current(const model *m) { return (model_scratch_ref){m->priv, m->punit}; }

void model_scratch_use(model *m, model_scratch_ref r) {
    m->priv = r.buf;
    m->punit = r.unit;
}

static model_tape *tape_create(model *m, int wi_min, int n, bool infer) {
    SC_CHECK(wi_min >= 0 && wi_min < m->nw, "model_tape_create: width index %d outside [0, %d)", wi_min, m->nw);
    SC_CHECK(n >= 1, "model_tape_create: batch %d, expected >= 1", n);
    model_tape *t = sc_calloc_n(model_tape, 1);
    t->m = m;
    t->n = n;
    t->wi_min = wi_min;
    t->infer = infer;
    carve c = {0, NULL};
    layout(m, t, &c);
    t->floats = c.used;
    t->arena = sc_calloc_n(float, c.used);
    c = (carve){0, t->arena};
    layout(m, t, &c);
    grow_scratch(m, model_scratch_unit(m, wi_min, n), infer ? SCR_INFER : SCR_TRAIN, max_ws(m, wi_min, n));
    return t;
}

model_tape *model_tape_create(model *m, int wi_min, int n) { return tape_create(m, wi_min, n, false); }
model_tape *model_tape_create_infer(model *m, int wi_min, int n) { return tape_create(m, wi_min, n, true); }

void model_tape_free(model_tape *t) {
    if (!t) return;
    sc_free(t->arena);
    sc_free(t);
}

size_t model_tape_bytes(const model_tape *t) { return t->floats * sizeof(float) + sizeof *t; }
size_t model_scratch_bytes(const model *m) {
    return (m->unit * m->nunits + (m->ws_shared ? 0 : m->ws_floats)) * sizeof(float);
}

void model_share_workspace(model *m, model *src) {
    SC_CHECK(src != m && !src->ws_shared && src->ws_floats >= m->ws_floats,
             "model_share_workspace: the source's conv workspace (%zu floats) must be its own and >= %zu", src->ws_floats,
             m->ws_floats);
    if (!m->ws_shared) sc_free(m->ws);
    m->ws = src->ws;
    m->ws_floats = src->ws_floats;
    m->ws_shared = true;
}
const float *model_output(const model_tape *t) { return t->outp; }
const float *model_features(const model_tape *t) { return t->f; }
