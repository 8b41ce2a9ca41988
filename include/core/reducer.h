/* core/reducer: the hook through which a layer synchronizes over ranks without knowing MPI. comm/ provides
 * one (comm_bn_reducer); nn/ calls it (nn_reducer is the same type). */
#ifndef SC_CORE_REDUCER_H
#define SC_CORE_REDUCER_H
#include <stdbool.h>

/* NULL (or fn NULL) = identity (one rank / local BN). Collective: every rank must call it in the same order. */
typedef struct sc_reducer {
    void (*sum_f64)(double *buf, int n, void *ctx); /* in-place allreduce(sum) of n doubles */
    void *ctx;
    /* optional: the buffer for the call's n doubles, NULL = the layer's own scratch. A reducer that suspends the
     * caller inside sum_f64 (ssl/wavefront.c) gives each suspended caller its own. */
    double *(*buf)(int n, void *ctx);
    /* true: sum_f64 is the identity (one rank). A layer may then use its local sums before the call (BN finishes
     * each channel's passes back to back, while its row is in cache); it still makes the call. */
    bool local;
} sc_reducer;
#endif
