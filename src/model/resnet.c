/* model/resnet: forward and backward of the slimmable ResNet backbone (docs/method.md §1.1 and "Slimmable ResNet-18/34"),
 * the switchable-BN glue, and the public model_forward / model_backward.
 *
 * Width wi uses the leading channel slices of every activation (nn/layout.h) and its own BN (m->*.bn, index wi).
 * Backward order per block: the main branch from the last conv back to the first, then the shortcut, so
 * parameter ranges complete in descending arena order (plan.c) and the hook can launch their allreduce. */
#include "model_internal.h"
#include "blas/blas.h"
#include "nn/ops.h"
#include <math.h>
#include <string.h>

static inline void hook_range(model_grad_hook hook, void *ctx, size_t off, size_t cnt) {
    if (hook && cnt) hook(ctx, off, cnt);
}

/* ---------- switchable BN ---------- */

void model_bn_fwd_res(model *m, model_tape *t, const mbn *b, int wi, size_t mrows, const float *x, const float *res,
                      float *y, float *mean, float *inv, bool relu, const nn_reducer *red) {
    bn_desc d = model_bn_desc(b, wi);
    d.relu = relu;
    d.res = res;
    float *rm = m->bufs + b->boff[wi], *rv = rm + b->c[wi];
    if (t->train) {
        bn_forward_train(&d, (int)mrows, x, y, mbn_gamma(m, b, wi), mbn_beta(m, b, wi), rm, rv, mean, inv, red);
    } else {
        bn_forward_eval(&d, (int)mrows, x, y, mbn_gamma(m, b, wi), mbn_beta(m, b, wi), rm, rv);
        for (int c = 0; c < d.c; c++) { /* saved so that backward (and the recompute) see the same affine map */
            mean[c] = rm[c];
            inv[c] = 1.0f / sqrtf(rv[c] + d.eps);
        }
    }
}

void model_bn_fwd(model *m, model_tape *t, const mbn *b, int wi, size_t mrows, const float *x, float *y,
                  float *mean, float *inv, bool relu, const nn_reducer *red) {
    model_bn_fwd_res(m, t, b, wi, mrows, x, NULL, y, mean, inv, relu, red);
}

/* Eval-mode BN is y = s*x + h with s, h fixed by the running statistics: its backward is a per-channel scale.
 * With d->relu, dy is masked as bn_backward does (ReLU's backward on the recomputed activation). */
static void bn_backward_fixed(const bn_desc *d, size_t mr, const float *x, const float *dy, const float *gamma,
                              const float *beta, const float *mean, const float *inv, float *dx, float *dgamma,
                              float *dbeta) {
    for (int c = 0; c < d->c; c++) {
        const float *xc = x + (size_t)c * mr, *dyc = dy + (size_t)c * mr;
        float *dxc = dx + (size_t)c * mr;
        float s = gamma ? gamma[c] * inv[c] : inv[c], h = beta ? beta[c] : 0.f;
        double sdy = 0, sdyx = 0;
        for (size_t i = 0; i < mr; i++) {
            const float g = !d->relu || bn_saved_affine(xc[i], s, mean[c], h) > 0.f ? dyc[i] : 0.f;
            dxc[i] = s * g;
            sdy += g;
            sdyx += (double)g * (xc[i] - mean[c]);
        }
        if (gamma) {
            dgamma[c] += (float)(sdyx * inv[c]);
            dbeta[c] += (float)sdy;
        }
    }
}

void model_bn_bwd(model *m, model_tape *t, const mbn *b, int wi, size_t mrows, const float *x, const float *dy,
                  const float *mean, const float *inv, float *dx, bool relu, const nn_reducer *red) {
    bn_desc d = model_bn_desc(b, wi);
    d.relu = relu;
    float *dg = b->affine ? m->grads + b->off[wi] : NULL, *db = b->affine ? dg + b->c[wi] : NULL;
    if (t->train)
        bn_backward(&d, (int)mrows, x, dy, mbn_gamma(m, b, wi), mbn_beta(m, b, wi), mean, inv, dx, dg, db, red);
    else
        bn_backward_fixed(&d, mrows, x, dy, mbn_gamma(m, b, wi), mbn_beta(m, b, wi), mean, inv, dx, dg, db);
    if (b->affine) m->touched[b->tensor0 + 2 * wi] = m->touched[b->tensor0 + 2 * wi + 1] = 1;
}

/* model_bn_bwd of a block's last BN, whose output went through the residual add and the block's ReLU (output
 * y): g, the gradient of y, is masked by y > 0 in place (the residual branch takes it too), in BN's sums pass */
static void model_bn_bwd_relu_out(model *m, model_tape *t, const mbn *b, int wi, size_t mrows, const float *x,
                                  const float *y, float *g, const float *mean, const float *inv, float *dx,
                                  const nn_reducer *red) {
    if (!t->train) { /* the fixed-statistics backward: the ReLU's pass apart */
        relu_backward((size_t)b->c[wi] * mrows, y, g, g);
        model_bn_bwd(m, t, b, wi, mrows, x, g, mean, inv, dx, false, red);
        return;
    }
    bn_desc d = model_bn_desc(b, wi);
    float *dg = b->affine ? m->grads + b->off[wi] : NULL, *db = b->affine ? dg + b->c[wi] : NULL;
    bn_backward_relu_out(&d, (int)mrows, x, y, g, mbn_gamma(m, b, wi), mbn_beta(m, b, wi), mean, inv, dx, dg, db,
                         red);
    if (b->affine) m->touched[b->tensor0 + 2 * wi] = m->touched[b->tensor0 + 2 * wi + 1] = 1;
}

/* relu(BN(x)) from the saved statistics: what backward recomputes instead of storing it */
void model_bn_relu_apply(const mbn *b, model *m, int wi, size_t mr, const float *x, float *y, const float *mean,
                         const float *inv) {
    const float *g = mbn_gamma(m, b, wi), *be = mbn_beta(m, b, wi);
    const int nt = (size_t)b->c[wi] * mr >= ((size_t)1 << 17) ? blas_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int c = 0; c < b->c[wi]; c++) {
        /* (x - mean) first, as the forward does: folding mean into the shift cancels badly when |mean| >> std */
        float s = g ? g[c] * inv[c] : inv[c], h = be ? be[c] : 0.0f, mu = mean[c];
        const float *xc = x + (size_t)c * mr;
        float *yc = y + (size_t)c * mr;
        for (size_t i = 0; i < mr; i++) {
            float v = bn_saved_affine(xc[i], s, mu, h);
            yc[i] = v > 0.0f ? v : 0.0f;
        }
    }
}

/* ---------- convolutions ---------- */

static void conv_fwd_pre(model *m, const mconv *c, int wi, int n, const float *x, const conv_pre *pre, float *y) {
    conv_forward_pre(&c->d, n, c->cin[wi], c->cout[wi], c->h, c->h, m->params + c->off + c->wo[wi], x, pre, y, m->ws);
}
static void conv_fwd(model *m, const mconv *c, int wi, int n, const float *x, float *y) {
    conv_fwd_pre(m, c, wi, n, x, NULL, y);
}

/* dx = the input gradient (+ add when add is non-NULL; see conv_dx_add_applies) */
static void conv_bwd_add(model *m, const mconv *c, int wi, int n, const float *x, const conv_pre *pre,
                         const float *dy, float *dx, const float *add) {
    conv_backward_add(&c->d, n, c->cin[wi], c->cout[wi], c->h, c->h, m->params + c->off + c->wo[wi], x, pre, dy,
                      m->grads + c->off + c->wo[wi], dx, add, m->ws);
    m->touched[c->tensor] = 1;
}
static void conv_bwd(model *m, const mconv *c, int wi, int n, const float *x, const float *dy, float *dx) {
    conv_bwd_add(m, c, wi, n, x, NULL, dy, dx, NULL);
}
static bool dx_add_ok(const mconv *c, int wi) { return conv_dx_add_applies(&c->d, c->cin[wi], c->cout[wi], c->h, c->h); }
static bool pre_ok(const mconv *c, int wi) { return conv_pre_applies(&c->d, c->cin[wi], c->cout[wi], c->h, c->h); }

static inline size_t rows(const mconv *c, int n) { return (size_t)n * c->ho * c->ho; }

/* The prologue of a conv (pre_ok) whose input is relu(BN b(x)) with b's saved statistics: the convolution applies
 * it while it copies x (conv.h), so that activation is neither written in the forward nor recomputed in the
 * backward. Returns the prologue, its scale and shift in m->pre_s / pre_h. */
static conv_pre model_pre(model *m, const mbn *b, int wi, const float *mean, const float *inv) {
    const float *g = mbn_gamma(m, b, wi), *be = mbn_beta(m, b, wi);
    for (int k = 0; k < b->c[wi]; k++) { /* model_bn_relu_apply's s and h */
        m->pre_s[k] = g ? g[k] * inv[k] : inv[k];
        m->pre_h[k] = be ? be[k] : 0.0f;
    }
    return (conv_pre){m->pre_s, mean, m->pre_h};
}

/* ---------- forward ---------- */

static void block_forward(model *m, model_tape *t, const mblock *B, tblock *tb, int wi, int n, const float *x,
                          const nn_reducer *red) {
    /* S holds BN(shortcut) until the add, across the main branch's reductions: a pass's own unit (T, unused in
     * the forward) on a training tape; the main branch only uses A */
    float *A = model_scratch(m, SCR_A), *S = model_scratch(m, t->infer ? SCR_D : SCR_T);
    if (B->has_sc) {
        conv_fwd(m, &B->sc, wi, n, x, tb->csc);
        model_bn_fwd(m, t, &B->bnsc, wi, rows(&B->sc, n), tb->csc, S, tb->msc, tb->isc, false, red);
    }
    const float *in = x;
    conv_pre pre;
    bool use_pre = false;
    for (int j = 0; j < B->nconv; j++) {
        const mconv *c = &B->conv[j];
        conv_fwd_pre(m, c, wi, n, in, use_pre ? &pre : NULL, tb->c[j]);
        const bool last = j == B->nconv - 1;
        /* the next conv's prologue applies BN j + ReLU itself: the statistics alone here */
        const bool next_pre = !last && pre_ok(&B->conv[j + 1], wi);
        float *y = last ? tb->out : next_pre ? NULL : A; /* A is free again: conv j has consumed it */
        /* the last BN adds the shortcut and applies the block's ReLU in the same pass */
        model_bn_fwd_res(m, t, &B->bn[j], wi, rows(c, n), tb->c[j], last ? (B->has_sc ? S : x) : NULL, y, tb->mean[j],
                         tb->inv[j], true, red);
        use_pre = next_pre;
        if (use_pre) pre = model_pre(m, &B->bn[j], wi, tb->mean[j], tb->inv[j]);
        in = use_pre ? tb->c[j] : A;
    }
}

static void backbone_forward(model *m, model_tape *t, int wi, const float *x, int n, const nn_reducer *red) {
    const mconv *s = &m->stem;
    const float *in = x;
    if (!t->infer) { /* the stem's weight gradient needs the input: keep a copy, the caller may reuse x */
        memcpy(t->x, x, sizeof(float) * (size_t)m->cfg.in_ch * n * m->cfg.img * m->cfg.img);
        in = t->x;
    }
    conv_fwd(m, s, wi, n, in, t->c0);
    float *y = m->pool ? model_scratch(m, SCR_A) : t->s0;
    model_bn_fwd(m, t, &m->stem_bn, wi, rows(s, n), t->c0, y, t->m0, t->i0, true, red);
    if (m->pool) maxpool_forward(s->cout[wi], n, s->ho, s->ho, y, t->s0, t->argmax);
    const float *xin = t->s0;
    for (int i = 0; i < m->nblocks; i++) {
        block_forward(m, t, &m->blocks[i], &t->b[i], wi, n, xin, red);
        xin = t->b[i].out;
    }
    gap_forward(m->feat[wi], n, m->final_hw, xin, t->f);
}

/* ---------- backward ---------- */

/* g: gradient w.r.t. the block output (made the gradient of the residual sum; the shortcut's BN then writes its
 * input gradient over it);
 * gx: receives the gradient w.r.t. the block input x. The main branch alternates D (BN input grads) and T (conv
 * input grads); the first BN writes its input gradient over its dy in T instead (no separate output stream; D is
 * shared by interleaved passes, so only a pass's own T can hold a gradient across the next BN's reduction). A
 * holds the recomputed ReLU(BN) activation that a conv's weight gradient needs. */
static void block_backward(model *m, model_tape *t, const mblock *B, const tblock *tb, int wi, int n,
                           const float *x, float *g, float *gx, const nn_reducer *red, model_grad_hook hook,
                           void *ctx) {
    float *A = model_scratch(m, SCR_A), *D = model_scratch(m, SCR_D), *T = model_scratch(m, SCR_T);
    const float *dy = g;
    /* the residual sum's gradient: the identity's g, or the shortcut conv's dx, added by a conv's backward
     * where it can (no temporary, no add pass), else by add_inplace at the end */
    const bool id_add = !B->has_sc && dx_add_ok(&B->conv[0], wi), sc_add = B->has_sc && dx_add_ok(&B->sc, wi);
    for (int j = B->nconv - 1; j >= 0; j--) {
        const mconv *c = &B->conv[j];
        /* BN j < last is followed by a ReLU: its backward masks dy on the fly (no relu_backward pass); the last
         * one masks g by the block's output first (the block's ReLU, also for the residual branch) */
        float *bx = j == 0 && dy == T ? T : D, *cx = j == 0 ? gx : T; /* BN j's and conv j's input grads */
        if (j == B->nconv - 1)
            model_bn_bwd_relu_out(m, t, &B->bn[j], wi, rows(c, n), tb->c[j], tb->out, g, tb->mean[j], tb->inv[j], bx,
                                  red);
        else
            model_bn_bwd(m, t, &B->bn[j], wi, rows(c, n), tb->c[j], dy, tb->mean[j], tb->inv[j], bx, true, red);
        hook_range(hook, ctx, B->bn[j].roff, B->bn[j].rcnt);
        const float *in = x;
        conv_pre pre;
        bool use_pre = false;
        if (j > 0) {
            const mconv *p = &B->conv[j - 1];
            use_pre = pre_ok(c, wi);
            if (use_pre) {
                pre = model_pre(m, &B->bn[j - 1], wi, tb->mean[j - 1], tb->inv[j - 1]);
                in = tb->c[j - 1];
            } else {
                model_bn_relu_apply(&B->bn[j - 1], m, wi, rows(p, n), tb->c[j - 1], A, tb->mean[j - 1], tb->inv[j - 1]);
                in = A;
            }
        }
        conv_bwd_add(m, c, wi, n, in, use_pre ? &pre : NULL, bx, cx, j == 0 && id_add ? g : NULL);
        hook_range(hook, ctx, c->off, m->tensors[c->tensor].count);
        dy = cx;
    }
    size_t lin = (size_t)B->conv[0].cin[wi] * n * B->conv[0].h * B->conv[0].h;
    if (B->has_sc) {
        /* the last use of g: its BN's input gradient over it */
        model_bn_bwd(m, t, &B->bnsc, wi, rows(&B->sc, n), tb->csc, g, tb->msc, tb->isc, g, false, red);
        hook_range(hook, ctx, B->bnsc.roff, B->bnsc.rcnt);
        conv_bwd_add(m, &B->sc, wi, n, x, NULL, g, sc_add ? gx : T, sc_add ? gx : NULL);
        hook_range(hook, ctx, B->sc.off, m->tensors[B->sc.tensor].count);
        if (!sc_add) add_inplace(lin, gx, T);
    } else if (!id_add) {
        add_inplace(lin, gx, g);
    }
}

static void backbone_backward(model *m, model_tape *t, const float *df, float *dx, const nn_reducer *red,
                              model_grad_hook hook, void *ctx) {
    int wi = t->wi, n = t->nf;
    float *g = model_scratch(m, SCR_G0), *gx = model_scratch(m, SCR_G1);
    gap_backward(m->feat[wi], n, m->final_hw, df, g);
    for (int i = m->nblocks - 1; i >= 0; i--) {
        const float *xin = i ? t->b[i - 1].out : t->s0;
        block_backward(m, t, &m->blocks[i], &t->b[i], wi, n, xin, g, gx, red, hook, ctx);
        float *tmp = g;
        g = gx;
        gx = tmp;
    }
    /* g: gradient w.r.t. the stem output */
    const mconv *s = &m->stem;
    float *dpre = g;
    if (m->pool) { /* the ReLU's mask from the recomputed activation, in BN's passes; then in place */
        float *T = model_scratch(m, SCR_T);
        maxpool_backward(s->cout[wi], n, s->ho, s->ho, g, t->argmax, T);
        dpre = T;
        model_bn_bwd(m, t, &m->stem_bn, wi, rows(s, n), t->c0, dpre, t->m0, t->i0, dpre, true, red);
    } else { /* the stem's ReLU masks g by its output in its BN's sums pass; then in place */
        model_bn_bwd_relu_out(m, t, &m->stem_bn, wi, rows(s, n), t->c0, t->s0, g, t->m0, t->i0, g, red);
    }
    hook_range(hook, ctx, m->stem_bn.roff, m->stem_bn.rcnt);
    conv_bwd(m, s, wi, n, t->x, dpre, dx);
    hook_range(hook, ctx, s->off, m->tensors[s->tensor].count);
}

/* ---------- public entry points ---------- */

void model_forward(model *m, model_tape *t, int wi, const float *x, int n, bool train, const nn_reducer *red) {
    SC_CHECK(t && t->m == m, "model_forward: tape of another model");
    SC_CHECK(wi >= t->wi_min && wi < m->nw, "model_forward: width index %d, the tape serves %d..%d", wi, t->wi_min,
             m->nw - 1);
    SC_CHECK(n >= 1 && n <= t->n, "model_forward: batch %d, the tape was planned for <= %d", n, t->n);
    t->wi = wi;
    t->nf = n;
    t->train = train;
    if (m->backbone) {
        backbone_forward(m, t, wi, x, n, red);
        t->fin = t->f;
    } else if (t->infer) {
        t->fin = x;
    } else {
        memcpy(t->f, x, sizeof(float) * (size_t)m->head.in[wi] * n);
        t->fin = t->f;
    }
    model_head_forward(m, t, wi, n, red);
    t->ready = !t->infer;
}

void model_backward(model *m, model_tape *t, const float *dout, float *dx, const nn_reducer *red,
                    model_grad_hook hook, void *hook_ctx) {
    SC_CHECK(t && t->m == m, "model_backward: tape of another model");
    SC_CHECK(m->grads, "model_backward on a model created without gradients (model_create_nograd)");
    SC_CHECK(!t->infer, "model_backward on a forward-only (inference) tape");
    SC_CHECK(t->ready, "model_backward: no forward on this tape");
    const float *df = dout;
    if (m->head.kind != HEAD_NONE) {
        model_head_backward(m, t, dout, red, hook, hook_ctx);
        df = t->df;
    }
    if (m->backbone)
        backbone_backward(m, t, df, dx, red, hook, hook_ctx);
    else if (dx)
        memcpy(dx, df, sizeof(float) * (size_t)m->head.in[t->wi] * t->nf);
}
