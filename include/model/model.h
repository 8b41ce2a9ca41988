/* model/model: a slimmable network (backbone ResNet-18/34/50/101/152 + a head), its parameter arena and the
 * per-width plan (channels, buffers, parameter and MAC counts).
 *
 * Memory: parameters, their gradients and BN running statistics each live in ONE allocation per model
 * (params/grads/bufs); every layer holds offsets into them. Activations live in a model_tape planned once
 * for a batch size and the largest width it serves; forward/backward never allocate.
 *
 * Widths are indices wi into cfg.widths (descending, widths[0] = 1.0 is the full network). */
#ifndef SC_MODEL_MODEL_H
#define SC_MODEL_MODEL_H
#include "core/param.h"
#include "core/error.h"
#include "nn/layout.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MODEL_MAX_WIDTHS 8

typedef enum { STEM_SMALL = 0, STEM_IMAGENET = 1 } model_stem;
typedef enum {
    HEAD_NONE = 0,      /* backbone only: output = GAP features [C_w][n] */
    HEAD_MOCOV2,        /* SlimmableLinear(C_w->C_w, bias) -> ReLU -> SlimmableLinear(C_w->out, bias) */
    HEAD_MOCOV3_PROJ,   /* Lin(C_w->hid_w) BN1d ReLU Lin(hid_w->out) BN1d(affine=false), no biases */
    HEAD_SIMCLR,        /* Lin(C_w->hid_w, bias) BN1d ReLU Lin(hid_w->out) BN1d(out, affine) */
    HEAD_SWITCH_LINEAR, /* one independent Linear(C_w -> classes) per width */
    HEAD_SLIM_LINEAR,   /* one SlimmableLinear(C_max -> classes), width uses the first C_w inputs */
    HEAD_MOCOV3_PRED,   /* MLP-only model (no backbone): Lin(in->hid_w) BN1d ReLU Lin(hid_w->out), in not sliced */
} model_head;

typedef struct {
    int depth;        /* 18, 34, 50, 101, 152 (0 with HEAD_MOCOV3_PRED) */
    int base;         /* stage-0 channels, 64 as in ResNet */
    int in_ch;        /* 1 or 3, never sliced */
    int img;          /* input height = width */
    model_stem stem;
    int nwidths;
    float widths[MODEL_MAX_WIDTHS]; /* descending */
    model_head head;
    int head_hidden;  /* full-width hidden size of MLP heads (v3 4096, SimCLR 2048; v2: = feature dim) */
    int head_in;      /* HEAD_MOCOV3_PRED only: input dim (256) */
    int head_out;     /* 128 / 256, or the number of classes for the linear heads */
    bool head_init_normal; /* N(0, 0.01^2) (reference) instead of the uniform +-1/sqrt(fan_in) default */
    bool zero_init_last_bn; /* gamma of each block's last BN = 0 (default true) */
    bool head_switch;       /* HEAD_MOCOV2 only: one independent head per width, fc.<wi>.0 / fc.<wi>.2 (ablation) */
    bool disjoint;          /* the reference's overlap_weight=False (ablation): the sub-widths use disjoint channel
                               blocks of every sliced weight, the smallest first: [0, c_min), then the next one...;
                               the full width all. Needs the sub-widths to sum to <= 1 */
} model_cfg;

/* param_kind, param_info: core/param.h */

typedef struct model model;     /* opaque */
typedef struct model_tape model_tape;

/* Validates the config (depth, widths that give zero channels, head sizes) before allocating:
 * returns NULL and sets *err + sc_last_error() with a message naming the layer and the values. */
model *model_create(const model_cfg *cfg, sc_err *err);
/* The same without a gradient array (model_grads NULL, model_backward refused): a network that only runs
 * forward passes, e.g. the momentum encoder, whose gradients would be nparams floats never written. */
model *model_create_nograd(const model_cfg *cfg, sc_err *err);
bool model_has_grads(const model *m);
void model_free(model *m);
const model_cfg *model_config(const model *m);
void model_init(model *m, uint64_t seed);     /* docs/method.md §1.1 initialisation, deterministic from seed */

float *model_params(model *m);  size_t model_nparams(const model *m);
float *model_grads(model *m);
float *model_bufs(model *m);    size_t model_nbufs(const model *m); /* BN running mean/var of every width */
int model_ntensors(const model *m);
const param_info *model_tensor(const model *m, int i);
/* per-tensor flag set by backward when the tensor received gradient this step; cleared by model_zero_grad */
uint8_t *model_touched(model *m);
void model_zero_grad(model *m);
/* BN running statistics as named tensors (`layer1.0.bn1.<wi>.running_mean|running_var`), offsets into bufs */
int model_nbuftensors(const model *m);
const param_info *model_buftensor(const model *m, int i);
int model_nwidths(const model *m);
float model_width(const model *m, int wi);

/* Output dimension (rows of the feature-major output) and backbone feature dim at width wi. */
int model_out_dim(const model *m, int wi);
int model_feat_dim(const model *m, int wi);

/* Activations for batch n at widths wi >= wi_min (0 = can serve the full width).
 * Stored per training tape (everything else is recomputed in backward): a copy of the input, every conv output
 * (= BN input), every block output (post-ReLU), the stem output (and max-pool argmax), BN mean/invstd per layer,
 * GAP features and all head activations. BN+ReLU outputs are recomputed from the conv output and the saved
 * statistics when backward needs them. Forward may run with any n' <= n. A tape may be reused for another
 * width or batch after its backward (or instead of it: a new forward simply replaces the old one).
 * The model also holds scratch shared by all its tapes (5 activation-sized buffers + the conv workspace, grown
 * when a tape is created): forward/backward calls on one model must not run concurrently. */
model_tape *model_tape_create(model *m, int wi_min, int n);
/* Forward-only tape (key encoder, feature extraction): activations alias 3 rotating buffers;
 * model_backward on it is a fatal error. */
model_tape *model_tape_create_infer(model *m, int wi_min, int n);
void model_tape_free(model_tape *t);
size_t model_tape_bytes(const model_tape *t);
size_t model_scratch_bytes(const model *m); /* the model's shared scratch + conv workspace (when its own) */
/* m uses src's conv workspace from now on (its own is freed): for models whose layers never run at the same time
 * (the key and query encoders of the step, one after the other on one thread). src's must be at least as large;
 * src must outlive m's use, and m takes no tape that needs a larger one. */
void model_share_workspace(model *m, model *src);
size_t model_workspace_estimate_bytes(const model *m, int wi_min, int n); /* its part of model_scratch_estimate_bytes */
/* The activation scratch a training pass keeps across a SyncBN reduction, swappable for passes that interleave
 * (ssl/wavefront.c: a pass suspended inside a reduction keeps it while another pass of the same model runs). A
 * buffer of unit * MODEL_SCRATCH_PRIVATE floats, unit = model_scratch_unit(m, wi, n), serves training passes of
 * widths >= wi and batch <= n; model_scratch_use installs one (a ref from model_scratch_current gives the model's
 * own back). The other MODEL_SCRATCH_UNITS - MODEL_SCRATCH_PRIVATE units and the conv workspace stay shared: a
 * pass holds nothing there across a reduction. */
#define MODEL_SCRATCH_UNITS 5
#define MODEL_SCRATCH_PRIVATE 3
typedef struct {
    float *buf;
    size_t unit;
} model_scratch_ref;
size_t model_scratch_unit(const model *m, int wi_min, int n);
model_scratch_ref model_scratch_current(const model *m);
void model_scratch_use(model *m, model_scratch_ref r);
/* Estimates without allocating (model/estimate.c, from the plan): the bytes model_tape_bytes() would report for a
 * training (train) or forward-only tape of batch n serving widths >= wi_min, and the scratch a model holding such
 * tapes grows to (model_scratch_bytes(); a model's scratch is the largest of its tapes'). 0 for bad arguments. */
size_t model_tape_estimate_bytes(const model *m, int wi_min, int n, bool train);
size_t model_scratch_estimate_bytes(const model *m, int wi_min, int n, bool train);

/* x: [in_ch][n][img][img] (CNHW, see nn/layout.h; for HEAD_MOCOV3_PRED: [head_in][n]). x is copied into
 * training tapes, so the caller may reuse it before backward.
 * train: batch statistics (+ running update) vs running statistics. red: SyncBN reducer or NULL (collective
 * through red when given: every rank runs the same layers in the same order). */
void model_forward(model *m, model_tape *t, int wi, const float *x, int n, bool train, const nn_reducer *red);
const float *model_output(const model_tape *t);   /* [out_dim][n] */
const float *model_features(const model_tape *t); /* GAP features [feat_dim][n] (backbone models) */

/* Called when a parameter range's gradient is final, for overlapped allreduce. Ranges are one layer's parameters
 * (a conv weight; a linear's weight+bias; a switchable BN's gamma/beta of ALL widths; every width's linear of
 * HEAD_SWITCH_LINEAR), reported in strictly descending offset order; one backward reports ranges that tile
 * [0, nparams) exactly, whatever its width (ranges a sub-width does not touch hold unchanged gradients). */
typedef void (*model_grad_hook)(void *ctx, size_t offset, size_t count);
/* dout: [out_dim][n]. Gradients accumulate (+=) into model_grads. dx (optional): gradient w.r.t. the input.
 * Uses the tape's last forward (its width, batch and train/eval mode; after an eval-mode forward BN is the fixed
 * affine map of the running statistics). */
void model_backward(model *m, model_tape *t, const float *dout, float *dx, const nn_reducer *red,
                    model_grad_hook hook, void *hook_ctx);

/* Where width wi's block of the shared conv / linear weight tensor `tensor` starts: its first output row
 * (row0) and first input channel (col0). 0, 0 with slimmable prefixes (and for tensors that are not shared
 * weights); the disjoint channels' blocks with cfg.disjoint. The block's size is that width's channel counts. */
void model_weight_block(const model *m, int tensor, int wi, int *row0, int *col0);

/* Parameters and forward MACs of width wi at input size img (docs/method.md §1.3 counting: conv + linear MACs). */
void model_count(const model *m, int wi, double *params, double *macs);
/* the same for the backbone alone (no head) */
void model_count_backbone(const model *m, int wi, double *params, double *macs);
#endif
