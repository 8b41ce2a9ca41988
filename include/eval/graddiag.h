/* eval/graddiag: gradient diagnostics of docs/method.md §8.1 (magnitude imbalance) and 8.2 (top singular values).
 *
 * Which tensors, and which slice each width uses: the reference's get_grad_norm rule, decided from each tensor's
 * name and shape alone (graddiag_rule_for):
 *  - used: kind PARAM_WEIGHT with ndim 2 (linear [out][in]) or 4 (conv [out][in][k][k]) and no "bn" in the name
 *    (the reference: "weight" in the name and not "bn"). Biases and BN are never used. Switchable per-width
 *    linears (width_only >= 0: `fc.linears.<w>`, `fc.<w>.0|2`) are used too, as the reference's SwitchableLinear
 *    weights are.
 *  - the slice of width w is rows [0, int(w*out)) x input channels [0, int(w*in)) (times k*k for a conv), except:
 *      * every tensor with "fc" in its name keeps ALL its rows (every head / classifier linear: fc.0, fc.2, fc.3,
 *        fc, fc.linears.<w>, ...); its input channels are sliced;
 *      * the stem keeps all its input channels: a tensor with 3 input channels (the reference's test) or the
 *        first 4-D weight of the table (the stem of a 1-channel model, where int(w*1) would be 0);
 *      * nothing else is special: the MoCo v3 predictor (`predictor.0|3`, no "fc") is sliced on both axes, as
 *        the reference does (it measures the whole MoCo v3 module: base encoder + predictor).
 *    Channel counts use nn_width_channels(full, w) = int(w*full) (the project's channel rule).
 *  - disjoint channels (slimclr.overlap_weight: false): the same counts, placed where the width's block starts
 *    (model_weight_block: the smallest width at 0, the next ones side by side); rows / columns kept whole
 *    start at 0. Width 1.0 and the smallest width start at 0 in that layout, so R1 / R2 are the prefix ones;
 *    the intermediate widths' N(w) move to their own blocks.
 * s_l(w) = ||g_l(w)||_2 clamped at 1000; a layer is kept only when s_l(w) < 1000 for every width. */
#ifndef SC_EVAL_GRADDIAG_H
#define SC_EVAL_GRADDIAG_H
#include "core/error.h"
#include "model/model.h"
#include <stdbool.h>

typedef struct {
    bool used;
    bool slice_out, slice_in;
} graddiag_rule;

/* One parameter table and its gradient (a model: the query encoder; the MoCo v3 predictor). */
typedef struct {
    const param_info *tab;
    int n;
    const float *grads;
    /* NULL (slimmable prefixes), or [n][MODEL_MAX_WIDTHS]: where width w's block of tensor i starts, its first
     * row (row0) and input channel (col0) */
    const int *row0, *col0;
    const graddiag_rule *override; /* NULL, or n rules replacing graddiag_rule_for */
} graddiag_src;

typedef struct {
    int nwidths;
    float widths[MODEL_MAX_WIDTHS];  /* descending; widths[0] is the full network (1.0) */
    int nlayers;                     /* tensors used and kept (all widths below the clamp) */
    int nskipped;                    /* used tensors dropped because some s_l(w) reached 1000 */
    double N[MODEL_MAX_WIDTHS];      /* N(w) = mean_l s_l(w) */
    double R1;                       /* N(w_0) / N(w_min) */
    double R2_approx;                /* sqrt(N(w_0)^2 - N(w_min)^2) / N(w_min)  (docs/method.md §8.1 step 6-7) */
    double R2_exact;                 /* mean_l sqrt(s_l(w_0)^2 - s_l(w_min)^2) / s_l(w_min), layers with s_l(w_min) > 0 */
    /* per kept layer: its source, tensor index and s_l(w) [nlayers][nwidths] (allocated; graddiag_free) */
    int *layer_src, *layer_tensor;
    double *s;
} graddiag_result;

/* The rule above for tensor i of the table (tab[0..n)). */
graddiag_rule graddiag_rule_for(const param_info *tab, int n, int i);

/* Over the tensors of every source, in order. Not collective (read the averaged gradient on any rank). */
sc_err graddiag_compute(const graddiag_src *src, int nsrc, int nwidths, const float *widths, graddiag_result *out);
/* The same over models (their gradients, widths and, with disjoint channels, model_weight_block); all models
 * must have the same widths. */
sc_err graddiag_compute_models(model *const *models, int nmodels, graddiag_result *out);
void graddiag_free(graddiag_result *r);

/* Top-2 singular values (sv[0] >= sv[1]) of a row-major m x n matrix (e.g. the last projection layer's
 * gradient, docs/method.md §8.2), in double with LAPACK dgesvd. sv[1] = 0 when min(m, n) == 1. */
sc_err graddiag_top2_sv(int m, int n, const float *G, int ldg, double sv[2]);
#endif
