/* model/ internals shared by plan.c (layout, init, counts), tape.c, resnet.c and heads.c.
 * Not a public header: other modules use include/model/model.h only. */
#ifndef SC_MODEL_INTERNAL_H
#define SC_MODEL_INTERNAL_H
#include "model/model.h"
#include "nn/bn.h"
#include "nn/conv.h"
#include "nn/linear.h"

#define MW MODEL_MAX_WIDTHS
#define MODEL_MAX_BLOCKS 50 /* ResNet-152: 3+8+36+3 */

typedef struct {
    conv_desc d;
    int cin[MW], cout[MW]; /* channels used at each width */
    int h, ho;             /* input / output spatial size (square) */
    size_t off;            /* weight [cout_max][cin_max*k*k] in params */
    size_t wo[MW];         /* width wi's block starts at off + wo[wi] (0 unless disjoint channels) */
    int tensor;
} mconv;

/* Switchable BN: width wi owns gamma at off[wi], beta at off[wi]+c[wi] (affine), running mean at boff[wi],
 * running var at boff[wi]+c[wi]. All widths' parameters form one contiguous range (the hook range). */
typedef struct {
    int c[MW], cmax;
    bool affine;
    size_t off[MW], boff[MW];
    int tensor0; /* weight/bias tensors of width wi: tensor0 + 2*wi, +1 */
    size_t roff, rcnt;
} mbn;

typedef struct {
    int nconv; /* 2 basic, 3 bottleneck */
    mconv conv[3];
    mbn bn[3];
    bool has_sc;
    mconv sc;
    mbn bnsc;
} mblock;

typedef struct {
    linear_desc d;
    size_t woff, boff; /* boff valid when d.bias */
    size_t wo[MW], bo[MW]; /* width wi's block offsets in the weight / bias (disjoint channels; else 0) */
    int tw, tb;        /* tensor indices (tb = -1 without bias) */
    int in[MW], out[MW];
    size_t roff, rcnt;
} mlinear;

typedef struct {
    model_head kind;
    bool mlp;          /* two linears with ReLU between (MOCOV2, MOCOV3_*, SIMCLR) */
    int in[MW], hid[MW], out;
    mlinear lin[2];    /* MLP: lin[0], lin[1]; SLIM_LINEAR: lin[0] */
    mlinear sw[MW];    /* SWITCH_LINEAR: one per width */
    bool has_bn[2];
    mbn bn[2];         /* after lin[0] (hidden) and after lin[1] (output) */
    bool sw_mlp;       /* head_switch: width wi runs swl[0][wi], swl[1][wi] (its own, unsliced) */
    mlinear swl[2][MW];
    size_t sw_roff, sw_rcnt; /* the one hook range of every width's head */
} mhead;

struct model {
    model_cfg cfg;
    int nw;
    bool backbone;
    mconv stem;
    mbn stem_bn;
    bool pool;
    int stem_ho, pool_ho;   /* after the stem conv / after the max-pool (= pool ? pool_ho : stem_ho) */
    int nblocks;
    mblock blocks[MODEL_MAX_BLOCKS];
    int feat[MW], final_hw;  /* feature dim per width; H*W of the last block */
    mhead head;

    float *params, *grads, *bufs;
    size_t nparams, nbufs;
    param_info *tensors, *btensors;
    int ntensors, nbtensors, tcap, btcap;
    uint8_t *touched;

    /* Per-model scratch shared by all tapes of this model (they never run concurrently): see tape.c. */
    float *scratch;
    size_t unit, nunits;
    float *priv;  /* the units a pass keeps across a SyncBN reduction: scratch's own, or a pass's (model_scratch_use) */
    size_t punit;
    float *ws;
    size_t ws_floats;
    bool ws_shared; /* ws is another model's (model_share_workspace) */
    float pre_s[CONV_PRE_CMAX], pre_h[CONV_PRE_CMAX]; /* the current conv prologue's scale and shift (resnet.c) */
};

typedef struct {
    float *c[3], *csc, *out;         /* conv outputs (BN inputs), block output */
    float *mean[3], *inv[3], *msc, *isc; /* saved BN statistics */
} tblock;

struct model_tape {
    model *m;
    int n, wi_min;
    bool infer;           /* forward-only tape: activations alias, no backward */
    int wi, nf;           /* width and batch of the last forward */
    bool train, ready;    /* ready: a forward happened and its backward has not run yet */
    float *arena;
    size_t floats;
    int32_t *argmax;
    size_t argmax_n;
    float *x;             /* copy of the input (training tapes) */
    float *c0, *s0, *m0, *i0; /* stem conv output, stem output, stem BN stats */
    tblock b[MODEL_MAX_BLOCKS];
    float *f;             /* GAP features [feat][n] (MLP predictor: its input) */
    float *h0, *r, *h1, *out;  /* head: lin0 out, hidden after BN+ReLU, lin1 out, final output */
    float *hm[2], *hi[2]; /* head BN saved statistics */
    float *dh1, *dr, *dh0, *df; /* head backward buffers */
    const float *fin;     /* head input of the last forward: f, or the predictor's input */
    const float *outp;
};

/* scratch buffer k (each `unit` floats). A training pass never keeps SCR_A or SCR_D across a BN reduction (a BN
 * writes its output after the reduction, the next conv consumes it before the next one; the forward keeps the
 * shortcut's BN output in SCR_T), so passes that interleave (ssl/wavefront.c) share them; the others are the
 * pass's own, installed by model_scratch_use. */
enum { SCR_A = 0, SCR_D = 1, SCR_G0 = 2, SCR_G1 = 3, SCR_T = 4, SCR_TRAIN = 5, SCR_INFER = 2, SCR_SHARED = 2 };
static inline float *model_scratch(model *m, int k) {
    return k < SCR_SHARED ? m->scratch + (size_t)k * m->unit : m->priv + (size_t)(k - SCR_SHARED) * m->punit;
}

static inline bn_desc model_bn_desc(const mbn *b, int wi) {
    bn_desc d = {b->c[wi], b->affine, 0.1f, 1e-5f, false, NULL};
    return d;
}
static inline float *mbn_gamma(model *m, const mbn *b, int wi) { return b->affine ? m->params + b->off[wi] : NULL; }
static inline float *mbn_beta(model *m, const mbn *b, int wi) {
    return b->affine ? m->params + b->off[wi] + b->c[wi] : NULL;
}

/* resnet.c / heads.c */
/* y = BN(x), or ReLU(BN(x)) in the same pass when relu; _res: BN(x) + res before the ReLU (a residual sum);
 * y NULL: the statistics alone */
void model_bn_fwd(model *m, model_tape *t, const mbn *b, int wi, size_t mrows, const float *x, float *y,
                  float *mean, float *inv, bool relu, const nn_reducer *red);
void model_bn_fwd_res(model *m, model_tape *t, const mbn *b, int wi, size_t mrows, const float *x, const float *res,
                      float *y, float *mean, float *inv, bool relu, const nn_reducer *red);
/* relu: dy is the gradient of ReLU(BN(x)); the mask is taken from the recompute (model_bn_relu_apply) */
void model_bn_bwd(model *m, model_tape *t, const mbn *b, int wi, size_t mrows, const float *x, const float *dy,
                  const float *mean, const float *inv, float *dx, bool relu, const nn_reducer *red);
void model_bn_relu_apply(const mbn *b, model *m, int wi, size_t mrows, const float *x, float *y,
                         const float *mean, const float *inv);
void model_head_forward(model *m, model_tape *t, int wi, int n, const nn_reducer *red);
/* writes t->df, the gradient w.r.t. the head input (not for HEAD_NONE) */
void model_head_backward(model *m, model_tape *t, const float *dout, const nn_reducer *red, model_grad_hook hook,
                         void *ctx);
#endif
