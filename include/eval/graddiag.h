/* eval/graddiag: gradient diagnostics of docs/method.md §8.1 (magnitude imbalance) and 8.2 (top singular values).
 *
 * Which tensors, and which slice each width uses (the rule, decided from the tensor table):
 *  - used: kind PARAM_WEIGHT, ndim 2 (linear [out][in]) or 4 (conv [out][in][k][k]), shared by all widths
 *    (width_only == -1: switchable per-width linears are not slimmable), name without "bn". Biases and BN are
 *    never used (docs/method.md §8.1 step 2: "weight" and not "bn").
 *  - the slice of width w is rows [0, int(w*out)) x input channels [0, int(w*in)) (nn_width_channels, the
 *    project's channel rule), times k*k for a conv, i.e. a prefix sub-block of the row-major tensor, except:
 *      * input channels are not sliced for the stem: the FIRST 4-D weight of the table (conv1.weight; its in
 *        channels are the image's 1 or 3);
 *      * output rows are not sliced for the LAST head layer: the last 2-D weight of the table whose name starts
 *        with "fc" or "predictor" (the projection output 128/256 and the class logits are shared by all widths);
 *      * input is not sliced for the first "predictor" weight (the MoCo v3 predictor's input 256, docs/method.md §1.1).
 *    Channel counts use nn_width_channels(full, w) = int(w*full), which matches the model's per-width plan for
 *    the prefix rule of docs/method.md §1.1. Any other choice can be set per tensor with `override`.
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

typedef struct {
    int nwidths;
    float widths[MODEL_MAX_WIDTHS];  /* descending; widths[0] is the full network (1.0) */
    int nlayers;                     /* tensors used and kept (all widths below the clamp) */
    int nskipped;                    /* used tensors dropped because some s_l(w) reached 1000 */
    double N[MODEL_MAX_WIDTHS];      /* N(w) = mean_l s_l(w) */
    double R1;                       /* N(w_0) / N(w_min) */
    double R2_approx;                /* sqrt(N(w_0)^2 - N(w_min)^2) / N(w_min)  (docs/method.md §8.1 step 6-7) */
    double R2_exact;                 /* mean_l sqrt(s_l(w_0)^2 - s_l(w_min)^2) / s_l(w_min), layers with s_l(w_min) > 0 */
    /* per kept layer: tensor index and s_l(w) [nlayers][nwidths] (allocated; graddiag_free) */
    int *layer_tensor;
    double *s;
} graddiag_result;

/* The rule above for tensor i of the table (tab[0..n)). */
graddiag_rule graddiag_rule_for(const param_info *tab, int n, int i);

/* grads: the gradient arena (offsets from the table). override: NULL, or n rules replacing the default.
 * Not collective (read the averaged gradient on any rank). */
sc_err graddiag_compute(const param_info *tab, int n, const float *grads, int nwidths, const float *widths,
                        const graddiag_rule *override, graddiag_result *out);
void graddiag_free(graddiag_result *r);

/* Top-2 singular values (sv[0] >= sv[1]) of a row-major m x n matrix (e.g. the last projection layer's
 * gradient, docs/method.md §8.2), in double with LAPACK dgesvd. sv[1] = 0 when min(m, n) == 1. */
sc_err graddiag_top2_sv(int m, int n, const float *G, int ldg, double sv[2]);
#endif
