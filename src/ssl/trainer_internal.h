/* ssl/trainer_internal.h: the trainer's state, shared by ssl/trainer.c (its construction, teardown, state
 * blobs and accessors) and ssl/step.c (the step itself). Private to ssl/. */
#ifndef SC_SSL_TRAINER_INTERNAL_H
#define SC_SSL_TRAINER_INTERNAL_H
#include "ssl/step.h"
#include "comm/buckets.h"
#include "comm/comm.h"
#include "comm/timers.h"
#include "core/rng.h"
#include "core/timer.h"
#include "core/trace.h"
#include "nn/ops.h"
#include "optim/optim.h"
#include "optim/sched.h"
#include "ssl/wavefront.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define MW OBJ_MAX_WIDTHS

/* one pass of the wavefront schedule: width wi, view v (see micro_wavefront) */
typedef struct {
    struct ssl_trainer *t;
    int wi, v;
    bool hook;
} wf_pass;

/* one encoder being trained: model + its optimizer + its gradient buckets */
typedef struct {
    model *m;
    optim *opt;
    buckets *bk;
    param_info *tab;
    int nt;
} trained;

struct ssl_trainer {
    sc_config cfg;
    config_method method;
    int rank, P, n, accum, nw;
    float widths[MW];
    long spe, total;
    sched_cfg sched;
    float lambda[MW];
    trained q, pred;            /* pred.m == NULL unless MoCo v3 */
    model *k;                   /* momentum encoder (MoCo v2/v3) */
    model_tape *tq_full[2], *tq_sub[2], *tp_full[2], *tp_sub[2], *tk;
    const nn_reducer *red_q, *red_k;
    int D;                      /* output feature dim (128 / 256) */
    /* MoCo v2 queue [D][K] of full-width keys */
    float *queue;
    int K;
    int64_t qptr;
    /* step state */
    long T;
    int micro;                  /* micro-batches done in this step */
    obj_weights w;
    float m_ema;
    double l_con[MW], l_kd[MW];
    /* buffers (sizes planned in ssl_create) */
    float *qn_full[2], *nrm_full[2], *dqn_full[2];  /* full width, per view: kept until its backward */
    float *qn_sub[2], *nrm_sub[2], *dqn_sub[2];     /* a sub-width, per view: reused */
    float *dout, *dfeat;                            /* backward scratch: d(raw output), d(predictor input) */
    float *kn[2], *knrm;                            /* keys of this micro-batch (normalised) */
    float *kall[2];                                 /* gathered keys / features, [D][B_micro] */
    float *gather;                                  /* allgather landing buffer [P][D][n] */
    float *keys_step;                               /* MoCo v2: keys of every micro-batch of the step [accum][D][n] */
    float *kq_send, *kq_land;                       /* their gather in flight: a copy, the landing [P][accum][D][n] */
    int kq_req;                                     /* its handle; kq_pending: not yet in the queue */
    bool kq_pending;
    float *z_t[2], *z, *dz;                         /* teacher logits, logits, their gradient */
    float *dzall[2];                                /* SimCLR: d loss / d gathered features [D][N] */
    float *scratch;                                 /* SimCLR logits scratch */
    float *x_shuf, *x_all;                          /* shuffle BN */
    const int32_t *labels;                          /* supervised: this micro-batch's labels (ssl_set_labels) */
    size_t zsz;                                     /* floats of one logits buffer */
    float *z_w[MW], *dq_extra;                      /* full_distill: every sub-width's logits; a dq accumulator */
    float *fd_scratch;                              /* feature_distill: 3 D n floats */
    int64_t *perm;
    int ph_fwd[MW], ph_bwd[MW], ph_key, ph_loss, ph_opt, ph_wait, ph_gather, ph_wf_fwd, ph_wf_bwd;
    /* the SyncBN reducer: blocking (sequential) or suspending the pass (wavefront); it times the reductions */
    wavefront *wf;
    /* method.schedule: wavefront: a tape, output buffers and activation scratch per width and view (the full
     * width's tapes and outputs are tq_full / qn_full..; pass (0, 0) uses the model's own scratch) */
    bool wave;
    model_tape *tq_w[MW][2], *tp_w[MW][2];
    float *qn_w[MW][2], *nrm_w[MW][2], *dqn_w[MW][2], *dout_w[MW][2], *dfeat_w[MW][2];
    float *scr_w[MW][2];
    model_scratch_ref scr_ref[MW][2];
    wf_pass pass[WF_MAX_TASKS];
    const float *xcur[2];       /* this micro-batch's views, for the key pass */
    /* B2 statistics (ssl_bucket_stats): sums over the steps after the first, snapshots at its end */
    long st_calls;
    ssl_comm_stats st_sum;
    double st_snap_gather;
    wf_stats st_snap_bn;
};

void ssl_queue_finish(struct ssl_trainer *t); /* step.c: the enqueue of the last step's keys, if pending */
#endif
