/* model/heads: the projection / predictor / classifier heads of docs/method.md §1.2 on feature-major x[d][n].
 * MLP heads: Lin0 -> [BN] -> ReLU -> Lin1 -> [BN]; the hidden size is sliced with the width, the output size
 * never is; the predictor's input (head_in) is not sliced either (plan.c sets in[] accordingly). */
#include "model_internal.h"
#include "nn/ops.h"
#include <string.h>

static inline void hook_range(model_grad_hook hook, void *ctx, size_t off, size_t cnt) {
    if (hook && cnt) hook(ctx, off, cnt);
}

static void lin_fwd(model *m, const mlinear *l, int wi, int n, const float *x, float *y) {
    linear_forward(&l->d, n, l->in[wi], l->out[wi], m->params + l->woff + l->wo[wi],
                   l->d.bias ? m->params + l->boff + l->bo[wi] : NULL, x, y);
}

static void lin_bwd(model *m, const mlinear *l, int wi, int n, const float *x, const float *dy, float *dx) {
    linear_backward(&l->d, n, l->in[wi], l->out[wi], m->params + l->woff + l->wo[wi], x, dy,
                    m->grads + l->woff + l->wo[wi], l->d.bias ? m->grads + l->boff + l->bo[wi] : NULL, dx);
    m->touched[l->tw] = 1;
    if (l->tb >= 0) m->touched[l->tb] = 1;
}

void model_head_forward(model *m, model_tape *t, int wi, int n, const nn_reducer *red) {
    const mhead *H = &m->head;
    const float *f = t->fin;
    switch (H->kind) {
    case HEAD_NONE: t->outp = f; return;
    case HEAD_SLIM_LINEAR: lin_fwd(m, &H->lin[0], wi, n, f, t->out); break;
    case HEAD_SWITCH_LINEAR: lin_fwd(m, &H->sw[wi], wi, n, f, t->out); break;
    default: {
        size_t hid = (size_t)H->hid[wi] * n;
        const mlinear *L0 = H->sw_mlp ? &H->swl[0][wi] : &H->lin[0], *L1 = H->sw_mlp ? &H->swl[1][wi] : &H->lin[1];
        lin_fwd(m, L0, wi, n, f, t->h0);
        if (H->has_bn[0]) {
            model_bn_fwd(m, t, &H->bn[0], wi, (size_t)n, t->h0, t->r, t->hm[0], t->hi[0], true, red);
        } else {
            relu_forward(hid, t->h0, t->r);
        }
        lin_fwd(m, L1, wi, n, t->r, t->h1);
        if (H->has_bn[1]) model_bn_fwd(m, t, &H->bn[1], wi, (size_t)n, t->h1, t->out, t->hm[1], t->hi[1], false, red);
    }
    }
    t->outp = t->out;
}

void model_head_backward(model *m, model_tape *t, const float *dout, const nn_reducer *red, model_grad_hook hook,
                         void *ctx) {
    SC_CHECK(m->grads, "model_head_backward on a model created without gradients (model_create_nograd)");
    const mhead *H = &m->head;
    int wi = t->wi, n = t->nf;
    const float *f = t->fin;
    switch (H->kind) {
    case HEAD_NONE: return;
    case HEAD_SLIM_LINEAR:
        lin_bwd(m, &H->lin[0], wi, n, f, dout, t->df);
        hook_range(hook, ctx, H->lin[0].roff, H->lin[0].rcnt);
        return;
    case HEAD_SWITCH_LINEAR: {
        lin_bwd(m, &H->sw[wi], wi, n, f, dout, t->df);
        /* one range for every width's linear, so that one backward's ranges tile the arena */
        const mlinear *last = &H->sw[m->nw - 1];
        hook_range(hook, ctx, H->sw[0].roff, last->roff + last->rcnt - H->sw[0].roff);
        return;
    }
    default: break;
    }
    if (H->sw_mlp) { /* no BN in the MoCo v2 head; one range for every width's head (they tile the arena) */
        lin_bwd(m, &H->swl[1][wi], wi, n, t->r, dout, t->dr);
        relu_backward((size_t)H->hid[wi] * n, t->r, t->dr, t->dr);
        lin_bwd(m, &H->swl[0][wi], wi, n, f, t->dr, t->df);
        hook_range(hook, ctx, H->sw_roff, H->sw_rcnt);
        return;
    }
    const float *dh1 = dout;
    if (H->has_bn[1]) {
        model_bn_bwd(m, t, &H->bn[1], wi, (size_t)n, t->h1, dout, t->hm[1], t->hi[1], t->dh1, false, red);
        hook_range(hook, ctx, H->bn[1].roff, H->bn[1].rcnt);
        dh1 = t->dh1;
    }
    lin_bwd(m, &H->lin[1], wi, n, t->r, dh1, t->dr);
    hook_range(hook, ctx, H->lin[1].roff, H->lin[1].rcnt);
    relu_backward((size_t)H->hid[wi] * n, t->r, t->dr, t->dr);
    const float *dh0 = t->dr;
    if (H->has_bn[0]) {
        model_bn_bwd(m, t, &H->bn[0], wi, (size_t)n, t->h0, t->dr, t->hm[0], t->hi[0], t->dh0, false, red);
        hook_range(hook, ctx, H->bn[0].roff, H->bn[0].rcnt);
        dh0 = t->dh0;
    }
    lin_bwd(m, &H->lin[0], wi, n, f, dh0, t->df);
    hook_range(hook, ctx, H->lin[0].roff, H->lin[0].rcnt);
}
