/* nn/bn: one batch-norm instance (a switchable BN is an array of these, one per width: nothing shared).
 * Works on CNHW rows: channel c is x[c*m .. c*m+m), m = N*H*W (m = N for 1-D BN on features [d][n]).
 * PyTorch semantics: eps 1e-5, momentum 0.1, normalise with the biased variance, running variance
 * updated with the unbiased one (count/(count-1)). Statistics are accumulated in double
 * (from float partial sums of 16 terms per lane: nn/kern.h).
 * With a reducer (SyncBN) the count, sums and the two backward sums are reduced over ranks. */
#ifndef SC_NN_BN_H
#define SC_NN_BN_H
#include "nn/layout.h"
#include <stdbool.h>

typedef struct {
    int c;           /* channels of this width */
    bool affine;     /* gamma/beta present */
    float momentum;  /* 0.1 */
    float eps;       /* 1e-5 */
    bool relu;       /* forward writes max(0, BN(x)): the following ReLU in the same pass over memory */
    const float *res; /* forward only, NULL: none; else y = BN(x) + res (then the ReLU): a residual sum in the
                       * same pass, bitwise the BN output plus res in float */
} bn_desc;

/* Per-call saved state for backward: mean[c], invstd[c] (float), planned by the caller. */
/* Train mode: y = gamma*(x-mean)*invstd + beta with batch stats (then ReLU when d->relu); updates running stats
 * (if rmean != NULL). y NULL: the statistics alone (a consumer applies them, e.g. conv.h's prologue).
 * bn_backward is the BN's alone: the caller applies ReLU's backward first. */
void bn_forward_train(const bn_desc *d, int m, const float *x, float *y, const float *gamma, const float *beta,
                      float *rmean, float *rvar, float *save_mean, float *save_invstd, const nn_reducer *red);
/* Eval mode: running statistics (then ReLU when d->relu); y NULL: nothing to do. */
void bn_forward_eval(const bn_desc *d, int m, const float *x, float *y, const float *gamma, const float *beta,
                     const float *rmean, const float *rvar);
/* dx overwritten (it may be dy: in place); dgamma/dbeta accumulated (+=) when affine. Needs x (the BN input)
 * and the saved stats.
 * With d->relu, dy is the gradient of relu(BN(x)): ReLU's backward is applied on the fly with the mask
 * bn_saved_affine(x, ...) > 0 (the recompute of the activation, see below; beta needed when affine), bitwise
 * what relu_backward on that recompute followed by the plain bn_backward gives, without that pass over memory. */
void bn_backward(const bn_desc *d, int m, const float *x, const float *dy, const float *gamma, const float *beta,
                 const float *save_mean, const float *save_invstd, float *dx, float *dgamma, float *dbeta,
                 const nn_reducer *red);
/* bn_backward of a BN whose output went (through a residual add) into a ReLU of output y, dy the gradient of y
 * (d->relu false): dy is masked where y <= 0, in place (the residual branch takes it too), in the sums' pass over
 * memory: bitwise relu_backward(y, dy, dy) then bn_backward. dx may be dy. */
void bn_backward_relu_out(const bn_desc *d, int m, const float *x, const float *y, float *dy, const float *gamma,
                          const float *beta, const float *save_mean, const float *save_invstd, float *dx,
                          float *dgamma, float *dbeta, const nn_reducer *red);

/* BN(x) from the saved float statistics (s = gamma * invstd, mu = mean, h = beta), one rounding: what backward
 * recomputes instead of storing the activation, and what bn_backward's ReLU mask is taken from */
static inline float bn_saved_affine(float x, float s, float mu, float h) { return __builtin_fmaf(s, x - mu, h); }
#endif
