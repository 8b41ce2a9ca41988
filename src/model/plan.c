/* model/plan: config validation, the layer plan (channels per width, spatial sizes), the parameter and
 * buffer arenas with their torchvision-style names, initialisation (docs/method.md §1.1) and the per-width
 * parameter / MAC counts (docs/method.md §1.3).
 *
 * Arena order is forward order: inside a block downsample.0, downsample.1, conv1, bn1, conv2, bn2, [conv3, bn3]
 * (the names are torchvision's, the shortcut simply runs first). Backward runs the main branch in reverse and
 * the shortcut last, so gradient ranges complete in strictly descending offset order (model_backward's hook). */
#include "core/rng.h"
#include "model_internal.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- arena builders (creation time only) ---------- */

static int add_entry(param_info **arr, int *n, int *cap, size_t *total, size_t count, param_kind kind, int ndim,
                     const int *shape, int width_only, const char *fmt, ...) __attribute__((format(printf, 10, 11)));
static int add_entry(param_info **arr, int *n, int *cap, size_t *total, size_t count, param_kind kind, int ndim,
                     const int *shape, int width_only, const char *fmt, ...) {
    if (*n == *cap) {
        int nc = *cap ? 2 * *cap : 64;
        param_info *p = sc_calloc_n(param_info, nc);
        if (*arr) memcpy(p, *arr, sizeof(param_info) * (size_t)*n);
        sc_free(*arr);
        *arr = p;
        *cap = nc;
    }
    param_info *t = &(*arr)[*n];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->offset = *total;
    t->count = count;
    t->kind = kind;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->width_only = width_only;
    *total += count;
    return (*n)++;
}

#define ADD_PARAM(m, ...) add_entry(&(m)->tensors, &(m)->ntensors, &(m)->tcap, &(m)->nparams, __VA_ARGS__)
#define ADD_BUF(m, ...) add_entry(&(m)->btensors, &(m)->nbtensors, &(m)->btcap, &(m)->nbufs, __VA_ARGS__)

/* channels of a full size `full` at every width; 0 anywhere is a config error naming the layer */
static sc_err width_channels(const model *m, int full, const char *layer, int *out) {
    for (int wi = 0; wi < m->nw; wi++) {
        out[wi] = nn_width_channels(full, m->cfg.widths[wi]);
        if (out[wi] < 1)
            return sc_errorf(SC_ERR_CONFIG, "model: width %g (widths[%d]) gives 0 channels at %s (int(%g*%d) = 0)",
                             (double)m->cfg.widths[wi], wi, layer, (double)m->cfg.widths[wi], full);
    }
    return SC_OK;
}

/* First channel of each width's block: 0 for all (slimmable prefixes), or with disjoint channels the reference's
 * non-overlapping blocks: the widths in ascending order side by side from 0, the full width [0, c_max); a list of
 * equal counts (an input that is not sliced) starts at 0 everywhere. */
static void chan_starts(const model *m, const int *c, int *start) {
    memset(start, 0, sizeof(int) * MW);
    if (!m->cfg.disjoint) return;
    bool equal = true;
    for (int wi = 1; wi < m->nw; wi++) equal = equal && c[wi] == c[0];
    if (equal) return;
    int acc = 0;
    for (int wi = m->nw - 1; wi >= 1; wi--) { start[wi] = acc; acc += c[wi]; }
}

static void make_conv(model *m, mconv *c, const char *name, int cin_max, int cout_max, const int *cin,
                      const int *cout, int k, int stride, int pad, int h) {
    c->d = (conv_desc){cin_max, cout_max, k, stride, pad};
    memcpy(c->cin, cin, sizeof c->cin);
    memcpy(c->cout, cout, sizeof c->cout);
    c->h = h;
    c->ho = conv_out_size(h, k, stride, pad);
    int shape[4] = {cout_max, cin_max, k, k};
    c->tensor = ADD_PARAM(m, (size_t)cout_max * cin_max * k * k, PARAM_WEIGHT, 4, shape, -1, "%s.weight", name);
    c->off = m->tensors[c->tensor].offset;
    int is[MW], os[MW];
    chan_starts(m, cin, is);
    chan_starts(m, cout, os);
    for (int wi = 0; wi < MW; wi++) c->wo[wi] = ((size_t)os[wi] * cin_max + (size_t)is[wi]) * k * k;
}

static void make_bn(model *m, mbn *b, const char *name, const int *c, bool affine) {
    memcpy(b->c, c, sizeof b->c);
    b->cmax = c[0];
    b->affine = affine;
    b->roff = m->nparams;
    b->tensor0 = m->ntensors;
    for (int wi = 0; wi < m->nw; wi++) {
        int shape[1] = {c[wi]};
        if (affine) {
            int t = ADD_PARAM(m, (size_t)c[wi], PARAM_BN, 1, shape, wi, "%s.%d.weight", name, wi);
            ADD_PARAM(m, (size_t)c[wi], PARAM_BN, 1, shape, wi, "%s.%d.bias", name, wi);
            b->off[wi] = m->tensors[t].offset;
        }
        int bt = ADD_BUF(m, (size_t)c[wi], PARAM_BN, 1, shape, wi, "%s.%d.running_mean", name, wi);
        ADD_BUF(m, (size_t)c[wi], PARAM_BN, 1, shape, wi, "%s.%d.running_var", name, wi);
        b->boff[wi] = m->btensors[bt].offset;
    }
    b->rcnt = m->nparams - b->roff;
}

static void make_linear(model *m, mlinear *l, const char *name, int in_max, int out_max, const int *in,
                        const int *out, bool bias, int width_only) {
    l->d = (linear_desc){in_max, out_max, bias};
    memcpy(l->in, in, sizeof l->in);
    memcpy(l->out, out, sizeof l->out);
    int shape[2] = {out_max, in_max};
    l->roff = m->nparams;
    l->tw = ADD_PARAM(m, (size_t)out_max * in_max, PARAM_WEIGHT, 2, shape, width_only, "%s.weight", name);
    l->woff = m->tensors[l->tw].offset;
    int is[MW], os[MW];
    chan_starts(m, in, is);
    chan_starts(m, out, os);
    for (int wi = 0; wi < MW; wi++) {
        l->wo[wi] = (size_t)os[wi] * in_max + (size_t)is[wi];
        l->bo[wi] = (size_t)os[wi];
    }
    l->tb = -1;
    if (bias) {
        l->tb = ADD_PARAM(m, (size_t)out_max, PARAM_BIAS, 1, shape, width_only, "%s.bias", name);
        l->boff = m->tensors[l->tb].offset;
    }
    l->rcnt = m->nparams - l->roff;
}

/* ---------- validation and plan ---------- */

static sc_err check_cfg(const model_cfg *c) {
    if (c->nwidths < 1 || c->nwidths > MODEL_MAX_WIDTHS)
        return sc_errorf(SC_ERR_CONFIG, "model: %d widths given, expected 1..%d", c->nwidths, MODEL_MAX_WIDTHS);
    if (fabsf(c->widths[0] - 1.0f) > 1e-6f)
        return sc_errorf(SC_ERR_CONFIG, "model: widths must start at 1.0 (the full network), got widths[0] = %g",
                         (double)c->widths[0]);
    for (int i = 1; i < c->nwidths; i++)
        if (!(c->widths[i] < c->widths[i - 1]) || !(c->widths[i] > 0.0f))
            return sc_errorf(SC_ERR_CONFIG,
                             "model: widths must be positive and strictly descending, got widths[%d] = %g after %g", i,
                             (double)c->widths[i], (double)c->widths[i - 1]);
    if (c->head == HEAD_MOCOV3_PRED) {
        if (c->depth != 0)
            return sc_errorf(SC_ERR_CONFIG, "model: HEAD_MOCOV3_PRED is an MLP-only model, expected depth 0, got %d",
                             c->depth);
        if (c->head_in < 1)
            return sc_errorf(SC_ERR_CONFIG, "model: predictor input size head_in = %d, expected >= 1", c->head_in);
    } else {
        if (c->depth != 18 && c->depth != 34 && c->depth != 50 && c->depth != 101 && c->depth != 152)
            return sc_errorf(SC_ERR_CONFIG, "model: unknown ResNet depth %d, expected 18, 34, 50, 101 or 152", c->depth);
        if (c->base < 1) return sc_errorf(SC_ERR_CONFIG, "model: base channels %d, expected >= 1", c->base);
        if (c->in_ch < 1) return sc_errorf(SC_ERR_CONFIG, "model: input channels %d, expected 1 or 3", c->in_ch);
        if (c->img < 1) return sc_errorf(SC_ERR_CONFIG, "model: image size %d, expected >= 1", c->img);
        if (c->stem != STEM_SMALL && c->stem != STEM_IMAGENET)
            return sc_errorf(SC_ERR_CONFIG, "model: unknown stem %d", (int)c->stem);
    }
    if ((int)c->head < HEAD_NONE || c->head > HEAD_MOCOV3_PRED)
        return sc_errorf(SC_ERR_CONFIG, "model: unknown head kind %d", (int)c->head);
    if (c->disjoint) {
        double sub = 0;
        for (int i = 1; i < c->nwidths; i++) sub += c->widths[i];
        if (sub > 1.0 + 1e-6)
            return sc_errorf(SC_ERR_CONFIG, "model: disjoint channels need the sub-widths side by side in the full "
                             "width, but they sum to %g > 1 (e.g. widths [1.0, 0.5, 0.25])", sub);
    }
    if (c->head_switch && c->head != HEAD_MOCOV2)
        return sc_errorf(SC_ERR_CONFIG, "model: a head per width (head_switch) is built for the MoCo v2 head only");
    if (c->head != HEAD_NONE && c->head_out < 1)
        return sc_errorf(SC_ERR_CONFIG, "model: head output size head_out = %d, expected >= 1", c->head_out);
    if ((c->head == HEAD_MOCOV3_PROJ || c->head == HEAD_SIMCLR || c->head == HEAD_MOCOV3_PRED) && c->head_hidden < 1)
        return sc_errorf(SC_ERR_CONFIG, "model: head hidden size head_hidden = %d, expected >= 1", c->head_hidden);
    return SC_OK;
}

static sc_err plan_backbone(model *m) {
    const model_cfg *c = &m->cfg;
    int ones[MW], stem_c[MW];
    for (int wi = 0; wi < MW; wi++) ones[wi] = c->in_ch;
    SC_TRY(width_channels(m, c->base, "conv1 (stem)", stem_c));
    int h = c->img;
    if (c->stem == STEM_SMALL)
        make_conv(m, &m->stem, "conv1", c->in_ch, c->base, ones, stem_c, 3, 1, 1, h);
    else
        make_conv(m, &m->stem, "conv1", c->in_ch, c->base, ones, stem_c, 7, 2, 3, h);
    make_bn(m, &m->stem_bn, "bn1", stem_c, true);
    m->stem_ho = m->stem.ho;
    m->pool = c->stem == STEM_IMAGENET;
    m->pool_ho = m->pool ? conv_out_size(m->stem_ho, 3, 2, 1) : m->stem_ho;
    h = m->pool_ho;

    /* blocks per stage: basic blocks for 18/34, bottlenecks for 50 (as 34), 101 and 152 */
    static const int nb18[4] = {2, 2, 2, 2}, nb34[4] = {3, 4, 6, 3}, nb101[4] = {3, 4, 23, 3}, nb152[4] = {3, 8, 36, 3};
    const int *nb = c->depth == 18 ? nb18 : c->depth == 101 ? nb101 : c->depth == 152 ? nb152 : nb34;
    bool bottle = c->depth >= 50;
    int cin_max = c->base, cin[MW];
    memcpy(cin, stem_c, sizeof cin);
    m->nblocks = 0;
    char name[64], lname[96];
    for (int s = 0; s < 4; s++) {
        int planes = c->base << s, out_max = bottle ? planes * 4 : planes;
        int out[MW], mid[MW];
        snprintf(lname, sizeof lname, "layer%d (stage output)", s + 1);
        SC_TRY(width_channels(m, out_max, lname, out));
        /* docs/method.md §1.1: the bottleneck mid is outp // 4 (no separate truncation) */
        for (int wi = 0; wi < m->nw; wi++) mid[wi] = bottle ? out[wi] / 4 : out[wi];
        for (int wi = 0; wi < m->nw; wi++)
            if (mid[wi] < 1)
                return sc_errorf(SC_ERR_CONFIG, "model: width %g gives 0 channels at layer%d bottleneck mid (%d // 4)",
                                 (double)c->widths[wi], s + 1, out[wi]);
        int mid_max = bottle ? planes : planes;
        for (int b = 0; b < nb[s]; b++) {
            mblock *B = &m->blocks[m->nblocks++];
            int stride = (s > 0 && b == 0) ? 2 : 1;
            snprintf(name, sizeof name, "layer%d.%d", s + 1, b);
            char cn[96];
            /* the shortcut runs first in forward (and last in backward), so it comes first in the arena */
            B->has_sc = stride != 1 || cin_max != out_max;
            if (B->has_sc) {
                snprintf(cn, sizeof cn, "%s.downsample.0", name);
                make_conv(m, &B->sc, cn, cin_max, out_max, cin, out, 1, stride, 0, h);
                snprintf(cn, sizeof cn, "%s.downsample.1", name);
                make_bn(m, &B->bnsc, cn, out, true);
            }
            if (!bottle) {
                B->nconv = 2;
                snprintf(cn, sizeof cn, "%s.conv1", name);
                make_conv(m, &B->conv[0], cn, cin_max, out_max, cin, out, 3, stride, 1, h);
                snprintf(cn, sizeof cn, "%s.bn1", name);
                make_bn(m, &B->bn[0], cn, out, true);
                snprintf(cn, sizeof cn, "%s.conv2", name);
                make_conv(m, &B->conv[1], cn, out_max, out_max, out, out, 3, 1, 1, B->conv[0].ho);
                snprintf(cn, sizeof cn, "%s.bn2", name);
                make_bn(m, &B->bn[1], cn, out, true);
            } else { /* v1.5: stride on the 3x3 conv2 */
                B->nconv = 3;
                snprintf(cn, sizeof cn, "%s.conv1", name);
                make_conv(m, &B->conv[0], cn, cin_max, mid_max, cin, mid, 1, 1, 0, h);
                snprintf(cn, sizeof cn, "%s.bn1", name);
                make_bn(m, &B->bn[0], cn, mid, true);
                snprintf(cn, sizeof cn, "%s.conv2", name);
                make_conv(m, &B->conv[1], cn, mid_max, mid_max, mid, mid, 3, stride, 1, h);
                snprintf(cn, sizeof cn, "%s.bn2", name);
                make_bn(m, &B->bn[1], cn, mid, true);
                snprintf(cn, sizeof cn, "%s.conv3", name);
                make_conv(m, &B->conv[2], cn, mid_max, out_max, mid, out, 1, 1, 0, B->conv[1].ho);
                snprintf(cn, sizeof cn, "%s.bn3", name);
                make_bn(m, &B->bn[2], cn, out, true);
            }
            h = B->conv[B->nconv - 1].ho;
            cin_max = out_max;
            memcpy(cin, out, sizeof cin);
        }
    }
    memcpy(m->feat, cin, sizeof m->feat);
    m->final_hw = h * h;
    return SC_OK;
}

static sc_err plan_head(model *m) {
    const model_cfg *c = &m->cfg;
    mhead *H = &m->head;
    H->kind = c->head;
    int in_max = m->backbone ? m->feat[0] : c->head_in;
    for (int wi = 0; wi < m->nw; wi++) H->in[wi] = m->backbone ? m->feat[wi] : c->head_in;
    H->out = c->head_out;
    int outs[MW];
    for (int wi = 0; wi < MW; wi++) outs[wi] = c->head_out;
    switch (c->head) {
    case HEAD_NONE: return SC_OK;
    case HEAD_SLIM_LINEAR: make_linear(m, &H->lin[0], "fc", in_max, c->head_out, H->in, outs, true, -1); return SC_OK;
    case HEAD_SWITCH_LINEAR:
        for (int wi = 0; wi < m->nw; wi++) {
            char nm[48];
            int in1[MW];
            for (int j = 0; j < MW; j++) in1[j] = H->in[wi];
            snprintf(nm, sizeof nm, "fc.linears.%d", wi);
            make_linear(m, &H->sw[wi], nm, H->in[wi], c->head_out, in1, outs, true, wi);
        }
        return SC_OK;
    default: break;
    }
    H->mlp = true;
    int hid_max;
    if (c->head == HEAD_MOCOV2) {
        if (c->head_hidden != 0 && c->head_hidden != in_max)
            return sc_errorf(SC_ERR_CONFIG,
                             "model: the MoCo v2 head (fc.0) is feature->feature: head_hidden must be 0 or %d, got %d",
                             in_max, c->head_hidden);
        hid_max = in_max;
        memcpy(H->hid, H->in, sizeof H->hid);
        if (c->head_switch) { /* ablation: width wi's own Lin(C_w->C_w) ReLU Lin(C_w->out), nothing shared */
            H->mlp = H->sw_mlp = true;
            H->sw_roff = m->nparams;
            for (int wi = 0; wi < m->nw; wi++) {
                char nm[48];
                int d[MW];
                for (int j = 0; j < MW; j++) d[j] = H->in[wi];
                snprintf(nm, sizeof nm, "fc.%d.0", wi);
                make_linear(m, &H->swl[0][wi], nm, H->in[wi], H->in[wi], d, d, true, wi);
                snprintf(nm, sizeof nm, "fc.%d.2", wi);
                make_linear(m, &H->swl[1][wi], nm, H->in[wi], c->head_out, d, outs, true, wi);
            }
            H->sw_rcnt = m->nparams - H->sw_roff;
            return SC_OK;
        }
    } else {
        hid_max = c->head_hidden;
        SC_TRY(width_channels(m, hid_max, c->head == HEAD_MOCOV3_PRED ? "predictor.0 (hidden)" : "fc.0 (hidden)",
                              H->hid));
    }
    const char *pre = c->head == HEAD_MOCOV3_PRED ? "predictor" : "fc";
    char nm[48];
    bool bias0 = c->head == HEAD_MOCOV2 || c->head == HEAD_SIMCLR, bias1 = c->head == HEAD_MOCOV2;
    H->has_bn[0] = c->head != HEAD_MOCOV2;
    H->has_bn[1] = c->head == HEAD_MOCOV3_PROJ || c->head == HEAD_SIMCLR;
    snprintf(nm, sizeof nm, "%s.0", pre);
    make_linear(m, &H->lin[0], nm, in_max, hid_max, H->in, H->hid, bias0, -1);
    if (H->has_bn[0]) {
        snprintf(nm, sizeof nm, "%s.1", pre);
        make_bn(m, &H->bn[0], nm, H->hid, true);
    }
    /* torchvision-style Sequential indices: ReLU is fc.1 without BN, fc.2 with it */
    snprintf(nm, sizeof nm, "%s.%d", pre, H->has_bn[0] ? 3 : 2);
    make_linear(m, &H->lin[1], nm, hid_max, c->head_out, H->hid, outs, bias1, -1);
    if (H->has_bn[1]) {
        snprintf(nm, sizeof nm, "%s.4", pre);
        make_bn(m, &H->bn[1], nm, outs, c->head == HEAD_SIMCLR); /* MoCo v3: affine=false */
    }
    return SC_OK;
}

static model *create(const model_cfg *cfg, bool grads, sc_err *err) {
    sc_err e = cfg ? check_cfg(cfg) : sc_errorf(SC_ERR_ARG, "model: NULL config");
    if (e != SC_OK) {
        if (err) *err = e;
        return NULL;
    }
    model *m = sc_calloc_n(model, 1);
    m->cfg = *cfg;
    m->nw = cfg->nwidths;
    m->backbone = cfg->head != HEAD_MOCOV3_PRED;
    if (m->backbone) e = plan_backbone(m);
    if (e == SC_OK) e = plan_head(m);
    if (e != SC_OK) {
        model_free(m);
        if (err) *err = e;
        return NULL;
    }
    m->params = sc_calloc_n(float, m->nparams);
    m->grads = grads ? sc_calloc_n(float, m->nparams) : NULL;
    m->bufs = sc_calloc_n(float, m->nbufs);
    m->touched = sc_calloc_n(uint8_t, m->ntensors);
    if (err) *err = SC_OK;
    model_init(m, 0);
    return m;
}

model *model_create(const model_cfg *cfg, sc_err *err) { return create(cfg, true, err); }
model *model_create_nograd(const model_cfg *cfg, sc_err *err) { return create(cfg, false, err); }
bool model_has_grads(const model *m) { return m->grads != NULL; }

void model_free(model *m) {
    if (!m) return;
    sc_free(m->params);
    sc_free(m->grads);
    sc_free(m->bufs);
    sc_free(m->touched);
    sc_free(m->tensors);
    sc_free(m->btensors);
    sc_free(m->scratch);
    if (!m->ws_shared) sc_free(m->ws);
    sc_free(m);
}

/* ---------- initialisation (docs/method.md §1.1 + "Choices": uniform head init by default) ---------- */

static uint64_t name_key(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a: a tensor's stream depends on its name, not its position */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static void init_conv(model *m, const mconv *c, uint64_t seed) {
    rng_stream s = rng_stream_make(seed, name_key(m->tensors[c->tensor].name), 0, 0);
    float std = sqrtf(2.0f / (float)(c->d.cout_max * c->d.k * c->d.k)); /* Kaiming normal, fan_out, ReLU gain */
    float *w = m->params + c->off;
    size_t cnt = m->tensors[c->tensor].count;
    for (size_t i = 0; i < cnt; i++) w[i] = std * rng_normal(&s);
}

static void init_bn(model *m, const mbn *b, float gamma) {
    for (int wi = 0; wi < m->nw; wi++) {
        if (b->affine)
            for (int i = 0; i < b->c[wi]; i++) {
                m->params[b->off[wi] + i] = gamma;
                m->params[b->off[wi] + b->c[wi] + i] = 0.0f;
            }
        for (int i = 0; i < b->c[wi]; i++) {
            m->bufs[b->boff[wi] + i] = 0.0f;
            m->bufs[b->boff[wi] + b->c[wi] + i] = 1.0f;
        }
    }
}

static void init_linear(model *m, const mlinear *l, uint64_t seed) {
    rng_stream s = rng_stream_make(seed, name_key(m->tensors[l->tw].name), 0, 0);
    size_t nw = (size_t)l->d.out_max * l->d.in_max;
    float *w = m->params + l->woff, *b = l->d.bias ? m->params + l->boff : NULL;
    if (m->cfg.head_init_normal) {
        for (size_t i = 0; i < nw; i++) w[i] = 0.01f * rng_normal(&s);
        if (b) memset(b, 0, sizeof(float) * (size_t)l->d.out_max);
    } else {
        float bound = 1.0f / sqrtf((float)l->d.in_max); /* PyTorch's default Linear init */
        for (size_t i = 0; i < nw; i++) w[i] = rng_uniform_range(&s, -bound, bound);
        if (b)
            for (int i = 0; i < l->d.out_max; i++) b[i] = rng_uniform_range(&s, -bound, bound);
    }
}

void model_init(model *m, uint64_t seed) {
    if (m->backbone) {
        init_conv(m, &m->stem, seed);
        init_bn(m, &m->stem_bn, 1.0f);
        for (int i = 0; i < m->nblocks; i++) {
            mblock *B = &m->blocks[i];
            for (int j = 0; j < B->nconv; j++) {
                init_conv(m, &B->conv[j], seed);
                init_bn(m, &B->bn[j], (j == B->nconv - 1 && m->cfg.zero_init_last_bn) ? 0.0f : 1.0f);
            }
            if (B->has_sc) {
                init_conv(m, &B->sc, seed);
                init_bn(m, &B->bnsc, 1.0f);
            }
        }
    }
    mhead *H = &m->head;
    if (H->kind == HEAD_SWITCH_LINEAR)
        for (int wi = 0; wi < m->nw; wi++) init_linear(m, &H->sw[wi], seed);
    else if (H->kind == HEAD_SLIM_LINEAR)
        init_linear(m, &H->lin[0], seed);
    else if (H->sw_mlp)
        for (int wi = 0; wi < m->nw; wi++)
            for (int j = 0; j < 2; j++) init_linear(m, &H->swl[j][wi], seed);
    else if (H->mlp)
        for (int j = 0; j < 2; j++) {
            init_linear(m, &H->lin[j], seed);
            if (H->has_bn[j]) init_bn(m, &H->bn[j], 1.0f);
        }
    model_zero_grad(m);
}

/* ---------- accessors ---------- */

const model_cfg *model_config(const model *m) { return &m->cfg; }
float *model_params(model *m) { return m->params; }
size_t model_nparams(const model *m) { return m->nparams; }
float *model_grads(model *m) { return m->grads; }
float *model_bufs(model *m) { return m->bufs; }
size_t model_nbufs(const model *m) { return m->nbufs; }
int model_ntensors(const model *m) { return m->ntensors; }
const param_info *model_tensor(const model *m, int i) {
    return (i >= 0 && i < m->ntensors) ? &m->tensors[i] : NULL;
}
int model_nbuftensors(const model *m) { return m->nbtensors; }
const param_info *model_buftensor(const model *m, int i) {
    return (i >= 0 && i < m->nbtensors) ? &m->btensors[i] : NULL;
}
uint8_t *model_touched(model *m) { return m->touched; }
void model_zero_grad(model *m) {
    if (m->grads) memset(m->grads, 0, sizeof(float) * m->nparams);
    memset(m->touched, 0, (size_t)m->ntensors);
}
int model_nwidths(const model *m) { return m->nw; }
float model_width(const model *m, int wi) { return m->cfg.widths[wi]; }
int model_feat_dim(const model *m, int wi) { return m->head.in[wi]; }
int model_out_dim(const model *m, int wi) {
    return m->cfg.head == HEAD_NONE ? m->head.in[wi] : m->head.out;
}

/* ---------- counts (docs/method.md §1.3: parameters of the width's slices + its own BN; conv + linear MACs) ---------- */

static void count_conv(const mconv *c, int wi, double *p, double *mac) {
    double w = (double)c->cout[wi] * c->cin[wi] * c->d.k * c->d.k;
    *p += w;
    *mac += w * c->ho * c->ho;
}
static void count_bn(const mbn *b, int wi, double *p) {
    if (b->affine) *p += 2.0 * b->c[wi];
}
static void count_linear(const mlinear *l, int wi, double *p, double *mac) {
    double w = (double)l->in[wi] * l->out[wi];
    *p += w + (l->d.bias ? l->out[wi] : 0);
    *mac += w;
}

void model_count_backbone(const model *m, int wi, double *params, double *macs) {
    double p = 0, mac = 0;
    if (m->backbone) {
        count_conv(&m->stem, wi, &p, &mac);
        count_bn(&m->stem_bn, wi, &p);
        for (int i = 0; i < m->nblocks; i++) {
            const mblock *B = &m->blocks[i];
            for (int j = 0; j < B->nconv; j++) {
                count_conv(&B->conv[j], wi, &p, &mac);
                count_bn(&B->bn[j], wi, &p);
            }
            if (B->has_sc) {
                count_conv(&B->sc, wi, &p, &mac);
                count_bn(&B->bnsc, wi, &p);
            }
        }
    }
    *params = p;
    *macs = mac;
}

void model_count(const model *m, int wi, double *params, double *macs) {
    double p, mac;
    model_count_backbone(m, wi, &p, &mac);
    const mhead *H = &m->head;
    if (H->kind == HEAD_SWITCH_LINEAR)
        count_linear(&H->sw[wi], wi, &p, &mac);
    else if (H->kind == HEAD_SLIM_LINEAR)
        count_linear(&H->lin[0], wi, &p, &mac);
    else if (H->sw_mlp)
        for (int j = 0; j < 2; j++) count_linear(&H->swl[j][wi], wi, &p, &mac);
    else if (H->mlp)
        for (int j = 0; j < 2; j++) {
            count_linear(&H->lin[j], wi, &p, &mac);
            if (H->has_bn[j]) count_bn(&H->bn[j], wi, &p);
        }
    *params = p;
    *macs = mac;
}

/* ---------- where a width's block lies in a shared weight (eval/graddiag with disjoint channels) ---------- */

static bool conv_start(const mconv *c, int tensor, int wi, int *r0, int *c0) {
    if (c->tensor != tensor) return false;
    size_t s = c->wo[wi] / ((size_t)c->d.k * c->d.k);
    *r0 = (int)(s / (size_t)c->d.cin_max);
    *c0 = (int)(s % (size_t)c->d.cin_max);
    return true;
}

static bool linear_start(const mlinear *l, int tensor, int wi, int *r0, int *c0) {
    if (l->tw != tensor) return false;
    *r0 = (int)(l->wo[wi] / (size_t)l->d.in_max);
    *c0 = (int)(l->wo[wi] % (size_t)l->d.in_max);
    return true;
}

void model_weight_block(const model *m, int tensor, int wi, int *row0, int *col0) {
    *row0 = *col0 = 0;
    if (!m->cfg.disjoint || wi < 0 || wi >= m->nw) return; /* slimmable prefixes: every block starts at 0 */
    if (m->backbone) {
        if (conv_start(&m->stem, tensor, wi, row0, col0)) return;
        for (int b = 0; b < m->nblocks; b++) {
            const mblock *B = &m->blocks[b];
            for (int j = 0; j < B->nconv; j++)
                if (conv_start(&B->conv[j], tensor, wi, row0, col0)) return;
            if (B->has_sc && conv_start(&B->sc, tensor, wi, row0, col0)) return;
        }
    }
    const mhead *H = &m->head;
    if (H->kind == HEAD_SLIM_LINEAR || (H->mlp && !H->sw_mlp))
        for (int j = 0; j < (H->mlp ? 2 : 1); j++)
            if (linear_start(&H->lin[j], tensor, wi, row0, col0)) return;
    /* per-width linears (switch heads) are their width's own tensors: their blocks start at 0 */
}
