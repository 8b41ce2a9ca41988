/* model/estimate: activation memory of a tape, computed from the model's plan without allocating anything
 * (for `slimclr info` and memory planning). It mirrors the sizing pass of tape.c's layout(); tests/test_iface.c
 * compares it with model_tape_bytes()/model_scratch_bytes() of real tapes, so a change of the tape layout that
 * is not carried over here fails that test instead of silently misreporting memory. */
#include "model_internal.h"

#define EST_ALIGN 16 /* floats: tape.c rounds every sub-buffer up to 64 bytes */

static size_t est_take(size_t floats) { return (floats + EST_ALIGN - 1) / EST_ALIGN * EST_ALIGN; }

static size_t est_act(const mconv *c, int wi, int n) { return (size_t)c->cout[wi] * n * c->ho * c->ho; }

/* the largest backbone activation at width wi: the unit of the rotating / scratch buffers */
static size_t est_max_act(const model *m, int wi, int n) {
    if (!m->backbone) return 16;
    size_t u = est_act(&m->stem, wi, n);
    size_t in = (size_t)m->cfg.in_ch * n * m->cfg.img * m->cfg.img;
    if (in > u) u = in;
    for (int i = 0; i < m->nblocks; i++)
        for (int j = 0; j < m->blocks[i].nconv; j++)
            if (est_act(&m->blocks[i].conv[j], wi, n) > u) u = est_act(&m->blocks[i].conv[j], wi, n);
    return u;
}

static size_t est_conv_ws(const mconv *c, int wi, int n) {
    return conv_workspace_floats(&c->d, n, c->cin[wi], c->cout[wi], c->h, c->h);
}

static size_t est_max_ws(const model *m, int wi_min, int n) {
    size_t w = 0;
    if (!m->backbone) return 0;
    for (int wi = wi_min; wi < m->nw; wi++) {
        size_t s = est_conv_ws(&m->stem, wi, n);
        if (s > w) w = s;
        for (int i = 0; i < m->nblocks; i++) {
            const mblock *B = &m->blocks[i];
            for (int j = 0; j < B->nconv; j++)
                if ((s = est_conv_ws(&B->conv[j], wi, n)) > w) w = s;
            if (B->has_sc && (s = est_conv_ws(&B->sc, wi, n)) > w) w = s;
        }
    }
    return w;
}

static size_t est_stats(int ch) { return 2 * est_take((size_t)ch); }

size_t model_tape_estimate_bytes(const model *m, int wi_min, int n, bool train) {
    if (wi_min < 0 || wi_min >= m->nw || n < 1) return 0;
    const int w = wi_min;
    const bool infer = !train;
    size_t f = 0;
    if (infer) f += 3 * est_take(est_max_act(m, w, n)); /* three rotating buffers */
    if (m->backbone) {
        size_t pooled = (size_t)m->stem.cout[w] * n * m->pool_ho * m->pool_ho;
        if (!infer) f += est_take((size_t)m->cfg.in_ch * n * m->cfg.img * m->cfg.img); /* input copy */
        if (!infer) f += est_take(est_act(&m->stem, w, n)) + est_take(pooled);
        if (m->pool) f += est_take(pooled); /* max-pool argmax (int32) */
        f += est_stats(m->stem_bn.c[w]);
        for (int i = 0; i < m->nblocks; i++) {
            const mblock *B = &m->blocks[i];
            for (int j = 0; j < B->nconv; j++) {
                if (!infer) f += est_take(est_act(&B->conv[j], w, n));
                f += est_stats(B->bn[j].c[w]);
            }
            if (B->has_sc) {
                if (!infer) f += est_take(est_act(&B->sc, w, n));
                f += est_stats(B->bnsc.c[w]);
            }
            if (!infer) f += est_take(est_act(&B->conv[B->nconv - 1], w, n)); /* block output */
        }
    }
    const mhead *H = &m->head;
    size_t in = (size_t)H->in[w] * n, out = (size_t)(H->kind == HEAD_NONE ? 0 : H->out) * n;
    if (m->backbone || !infer) f += est_take(in); /* GAP features (the predictor reads its input in place) */
    if (H->kind != HEAD_NONE) {
        if (!infer) f += est_take(in); /* gradient w.r.t. the head input */
        if (H->mlp) {
            size_t hid = (size_t)H->hid[w] * n;
            f += 2 * est_take(hid) + est_take(out);
            if (H->has_bn[1]) f += est_take(out);
            for (int j = 0; j < 2; j++)
                if (H->has_bn[j]) f += est_stats(H->bn[j].c[w]);
            if (!infer) f += est_take(out) + 2 * est_take(hid);
        } else {
            f += est_take(out);
        }
    }
    return f * sizeof(float) + sizeof(struct model_tape);
}

size_t model_workspace_estimate_bytes(const model *m, int wi_min, int n) {
    if (wi_min < 0 || wi_min >= m->nw || n < 1) return 0;
    return est_max_ws(m, wi_min, n) * sizeof(float);
}

size_t model_scratch_estimate_bytes(const model *m, int wi_min, int n, bool train) {
    if (wi_min < 0 || wi_min >= m->nw || n < 1) return 0;
    size_t unit = est_max_act(m, wi_min, n), hunit = (size_t)m->head.in[wi_min] * n;
    if (hunit > unit) unit = hunit;
    unit = est_take(unit);
    size_t nunits = train ? SCR_TRAIN : SCR_INFER;
    return (unit * nunits + est_max_ws(m, wi_min, n)) * sizeof(float);
}
