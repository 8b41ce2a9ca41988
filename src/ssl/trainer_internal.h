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
    sc_config cfg;                  /* the resolved configuration */
    config_method method;           /* cfg.method.name */
    int rank, nranks;               /* this rank, the number of ranks */
    int local_batch;                /* images per rank per micro-batch */
    int accum;                      /* micro-batches per optimizer step */
    int nwidths;                    /* widths trained, widths[0] = 1 the full network */
    float widths[MW];
    long steps_per_epoch, total_steps; /* of the schedules; the run's steps */
    sched_cfg sched;                /* learning-rate (and slow-start) schedule */
    float lambda[MW];               /* loss weight per width (docs/method.md §4c) */
    trained query, predictor;       /* the trained encoder; MoCo v3's predictor (predictor.m NULL otherwise) */
    model *key_enc;                 /* momentum (key) encoder (MoCo v2/v3), NULL otherwise */
    model_tape *tape_q_full[2], *tape_q_sub[2];     /* query tapes per view: full width, any sub-width */
    model_tape *tape_pred_full[2], *tape_pred_sub[2]; /* the same for the predictor */
    model_tape *tape_key;           /* the key encoder's inference tape */
    const nn_reducer *bn_red_q, *bn_red_k; /* SyncBN reducers of the query / key passes (NULL: local BN) */
    int dim;                        /* output feature dimension (128 / 256) */
    float *queue;                   /* MoCo v2 queue [dim][queue_len] of full-width keys */
    int queue_len;
    int64_t queue_ptr;              /* next column of the queue to overwrite */
    /* step state */
    long step;                      /* the optimizer step being computed */
    int micro_done;                 /* micro-batches done in this step */
    obj_weights weights;            /* this step's per-width loss weights (slow start, distillation) */
    float momentum;                 /* this step's EMA momentum of the key encoder */
    double l_con[MW], l_kd[MW];     /* this step's per-width contrastive / distillation losses */
    /* buffers (sizes planned in ssl_create); emb: the L2-normalised outputs, [dim][local_batch] */
    float *emb_full[2], *emb_norm_full[2], *demb_full[2]; /* full width, per view: kept until its backward */
    float *emb_sub[2], *emb_norm_sub[2], *demb_sub[2];    /* a sub-width, per view: reused */
    float *dhead_out, *dpred_in;    /* backward scratch: d(raw output), d(predictor input) */
    float *keys[2], *keys_norm;     /* keys of this micro-batch (normalised), their norms */
    float *gathered[2];             /* gathered keys / features, [dim][global micro-batch] */
    float *gather_buf;              /* allgather landing buffer [nranks][dim][local_batch] */
    float *keys_step;               /* MoCo v2: keys of every micro-batch of the step [accum][dim][local_batch] */
    float *kq_send, *kq_land;       /* their gather in flight: a copy, the landing [nranks][accum][dim][local_batch] */
    int kq_req;                     /* its handle; kq_pending: not yet in the queue */
    bool kq_pending;
    long kq_step;                   /* the step whose keys are in flight */
    bool kq_blocking;               /* SLIMCLR_KEY_GATHER=blocking: the reference, a blocking gather at the step end */
    float *logits_teacher[2], *logits, *dlogits; /* the full width's logits per view, logits, their gradient */
    float *dgathered[2];            /* SimCLR: d loss / d gathered features [dim][N] */
    float *scratch;                 /* SimCLR logits scratch */
    float *x_shuffled, *x_gathered; /* shuffle BN: this rank's shuffled images, every rank's */
    const int32_t *labels;          /* supervised: this micro-batch's labels (ssl_set_labels) */
    size_t logits_len;              /* floats of one logits buffer */
    float *logits_w[MW], *demb_extra; /* full_distill: every sub-width's logits; a demb accumulator */
    float *fd_scratch;              /* feature_distill: 3 dim local_batch floats */
    int64_t *shuffle_perm;          /* shuffle BN: the permutation and its inverse */
    int phase_fwd[MW], phase_bwd[MW], phase_key, phase_loss, phase_opt, phase_wait, phase_gather, phase_wf_fwd,
        phase_wf_bwd;               /* comm/timers ids of the step's phases */
    /* the SyncBN reducer: blocking (sequential) or suspending the pass (wavefront); it times the reductions */
    wavefront *wf;
    /* method.schedule: wavefront: a tape, output buffers and activation scratch per width and view (the full
     * width's tapes and outputs are tape_q_full / emb_full..; pass (0, 0) uses the model's own scratch) */
    bool wave;
    model_tape *tape_q_w[MW][2], *tape_pred_w[MW][2];
    float *emb_w[MW][2], *emb_norm_w[MW][2], *demb_w[MW][2], *dhead_out_w[MW][2], *dpred_in_w[MW][2];
    float *scratch_w[MW][2];        /* activation scratch per pass */
    model_scratch_ref scratch_ref_w[MW][2];
    wf_pass pass[WF_MAX_TASKS];     /* the wavefront's passes of this micro-batch */
    const float *x_micro[2];        /* this micro-batch's views, for the key pass */
    /* B2 statistics (ssl_bucket_stats): sums over the steps after the first, snapshots at its end */
    long stats_steps;
    ssl_comm_stats stats_sum;
    double stats_gather0;
    wf_stats stats_bn0;
};

void ssl_queue_finish(struct ssl_trainer *t); /* step.c: the enqueue of the last step's keys, if pending */
#endif
