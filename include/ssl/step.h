/* ssl/step: one SlimCLR optimizer step (MoCo v2, MoCo v3 or SimCLR in slimmable form, docs/method.md §3, 4, 14).
 *
 * The trainer owns the query encoder (and the MoCo v3 predictor), the momentum/key encoder, their tapes,
 * optimizers, gradient buckets, the MoCo v2 queue and every buffer of the step: nothing is allocated after
 * ssl_create.
 *
 * Width schedule of a micro-batch (the MPI issue's, chosen so the gradient buckets flow out during the
 * largest backward): forward the full width (its detached logits are the distillation teacher), then
 * forward + backward each sub-network on one reused tape, then the full-width backward last, with the
 * bucket hook, so each layer's allreduce starts as soon as that layer's gradient is final.
 *
 * All functions are COLLECTIVE (SyncBN, key gathers, bucket allreduce): every rank calls them in the same
 * order with the same global step. Inputs x are local (this rank's slice of the global batch). */
#ifndef SC_SSL_STEP_H
#define SC_SSL_STEP_H
#include "core/error.h"
#include "io/config.h"
#include "model/model.h"
#include "ssl/objective.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct ssl_trainer ssl_trainer;

/* The encoder's model config (backbone + the method's projection head, docs/method.md §1.2) from the run config. */
model_cfg ssl_encoder_cfg(const sc_config *cfg);

typedef struct {
    double loss;                       /* the combined loss (global mean over ranks) */
    double l_con[OBJ_MAX_WIDTHS];      /* per-width contrastive loss (global mean), 0 for widths not trained */
    double l_kd[OBJ_MAX_WIDTHS];
    bool slim;                         /* slow start over: all widths trained */
    double lr, momentum;
    bool finite;                       /* false: a NaN/Inf in a loss or the gradients, on any rank (no update made) */
    double grad_norm;                  /* L2 norm of the global-mean gradient of the query encoder */
} ssl_step_out;

/* Builds the models from the config (docs/method.md §1, 3), initialises them from run.seed (identical on every rank; the
 * key encoder starts as a copy), plans tapes for `micro_batch` local images. steps_per_epoch/total_steps: the
 * plan of the run (for slow start, LR and momentum schedules). */
sc_err ssl_create(const sc_config *cfg, int micro_batch, long steps_per_epoch, long total_steps, ssl_trainer **out);
void ssl_free(ssl_trainer *t); /* COLLECTIVE (frees the buckets) */

/* Optimizer step T (0-based, global): begin, `accum` micro-batches (two views each, CNHW [c][n][h][w]),
 * then end. The keys of all micro-batches are enqueued at the end (docs/conventions.md "Batches and semantics"). */
void ssl_step_begin(ssl_trainer *t, long T);
void ssl_micro(ssl_trainer *t, const float *x1, const float *x2, int n);
/* method supervised: the labels [n] (local) of the next ssl_micro's x1 (x2 is unused); kept by pointer. */
void ssl_set_labels(ssl_trainer *t, const int32_t *labels);
void ssl_step_end(ssl_trainer *t, ssl_step_out *out);

/* Everything a checkpoint needs, as named float/int64 blobs (see train.c for the section list). */
typedef struct {
    const char *name;
    int is_f32;          /* 1: float data, 0: int64 */
    void *data;
    size_t count;
} ssl_state_blob;
int ssl_state_blobs(ssl_trainer *t, ssl_state_blob *blobs, int max);

model *ssl_query_model(ssl_trainer *t);   /* the online encoder (backbone + projection head) */
model *ssl_predictor_model(ssl_trainer *t); /* the MoCo v3 predictor, NULL for the other methods */
int ssl_nwidths(const ssl_trainer *t);
float ssl_width(const ssl_trainer *t, int wi);
size_t ssl_memory_bytes(const ssl_trainer *t); /* parameters, grads, optimizer state, tapes, queue, buffers */
/* method.schedule: wavefront on P ranks: planned and run only for P > 1 (on one rank every SyncBN reduction
 * completes at once, so the interleaving degenerates to the sequential order: that schedule runs, with its memory);
 * ssl_wavefront: whether this trainer runs it. */
bool ssl_wavefront_planned(const sc_config *cfg, int P);
bool ssl_wavefront(const ssl_trainer *t);
/* Communication statistics for B2, per step, averaged over every ssl_step_end of this process after its first
 * (warm-up); steps == 0 until then. Local values of this rank (the trainer reports rank 0's). */
typedef struct {
    long steps;          /* steps averaged */
    int nbuckets;        /* gradient buckets (query encoder + predictor) */
    double bytes;        /* gradient bytes all-reduced per step by this rank (0 on one rank) */
    double comm_s;       /* bucket allreduce time (comm thread, reduce start -> done) */
    double exposed_s;    /* time the step waited for the buckets (buckets_finish) */
    double overlap;      /* 1 - sum(exposed) / sum(comm), in [0, 1]; 1 without communication */
    double syncbn_s;     /* SyncBN: time the main thread waited for its reductions (exposed; includes waiting for
                          * the slowest rank); the whole call with the sequential schedule */
    double syncbn_inflight_s; /* time with at least one SyncBN reduction in flight (= syncbn_s when blocking) */
    double syncbn_overlap;    /* 1 - syncbn_s / syncbn_inflight_s (0 when blocking or on one rank) */
    double syncbn_calls; /* SyncBN allreduces per step (counted on one rank too, where they are the identity) */
    double syncbn_bytes; /* their payload per step (doubles x 8) */
    double gather_s;     /* key / feature gathers and the SimCLR feature-gradient allreduce */
} ssl_comm_stats;
void ssl_bucket_stats(const ssl_trainer *t, ssl_comm_stats *out);
/* local: the seconds this rank has waited so far in blocking points (the gradient wait, SyncBN, the gathers),
 * a running total: a step's waits are the difference across it */
double ssl_waited_s(const ssl_trainer *t);
#endif
