/* ssl/step: the SlimCLR step (see include/ssl/step.h for the width schedule).
 * Gradient convention: every loss is a mean over the local rows; buckets all-reduce SUM / P, which is the
 * global-mean gradient (docs/conventions.md "Batches and semantics"). Feature gradients that cross ranks (SimCLR)
 * are summed over ranks before they enter the local backward. */
#include "trainer_internal.h"
#include "comm/buckets.h"
#include "comm/comm.h"
#include "comm/timers.h"
#include "core/rng.h"
#include "core/timer.h"
#include "core/trace.h"
#include "nn/ops.h"
#include "optim/optim.h"
#include "optim/sched.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

static void check_finite_or_flag(double v, bool *ok) { if (!isfinite(v)) *ok = false; }

/* allgather of a feature-major [D][n] block into [D][P*n] with column = rank*n + j (the global sample order) */
static void gather_cols(ssl_trainer *t, const float *x, float *out) {
    int D = t->dim, n = t->local_batch, P = t->nranks;
    if (P == 1) { memcpy(out, x, sizeof(float) * D * n); return; }
    double t0 = sc_now();
    comm_allgather_f32(x, (size_t)D * n, t->gather_buf);
    for (int r = 0; r < P; r++)
        for (int d = 0; d < D; d++)
            memcpy(out + (size_t)d * n * P + (size_t)r * n, t->gather_buf + ((size_t)r * D + d) * n, sizeof(float) * n);
    comm_timer_add(t->phase_gather, sc_now() - t0);
}

static void keys_final(ssl_trainer *t);

/* ---- MoCo v2 keys, optionally with shuffle BN (docs/method.md §3.1) ---------------------------------------------------- */
static void keys_compute(ssl_trainer *t, const float *x, int view) {
    int n = t->local_batch, D = t->dim, P = t->nranks;
    if (t->shuffle_perm && P > 1) {
        /* shuffle BN: gather the images, forward a permuted slice with local BN, gather the keys back */
        int cin = t->cfg.model.in_channels, hw = t->cfg.model.image_size * t->cfg.model.image_size;
        size_t img = (size_t)cin * hw;
        comm_allgather_f32(x, img * n, t->x_gathered); /* [P][cin][n][hw] */
        int B = n * P;
        int64_t *perm = t->shuffle_perm, *inv = t->shuffle_perm + B;
        rng_stream rs = rng_stream_make((uint64_t)t->cfg.run.seed, 0x5bu, (uint64_t)t->step, (uint64_t)t->micro_done);
        for (int i = 0; i < B; i++) perm[i] = i;
        for (int i = B - 1; i > 0; i--) {
            int j = (int)rng_below(&rs, (uint64_t)i + 1);
            int64_t s = perm[i]; perm[i] = perm[j]; perm[j] = s;
        }
        for (int i = 0; i < B; i++) inv[perm[i]] = i;
        for (int j = 0; j < n; j++) {
            int64_t g = perm[t->rank * n + j];
            int sr = (int)(g / n), sj = (int)(g % n);
            for (int c = 0; c < cin; c++)
                memcpy(t->x_shuffled + ((size_t)c * n + j) * hw, t->x_gathered + (((size_t)sr * cin + c) * n + sj) * hw,
                       sizeof(float) * hw);
        }
        model_forward(t->key_enc, t->tape_key, 0, t->x_shuffled, n, true, NULL);
        l2norm_forward(D, n, model_output(t->tape_key), t->keys[1], t->keys_norm);
        gather_cols(t, t->keys[1], t->gathered[0]); /* keys in shuffled order, [D][B] */
        for (int j = 0; j < n; j++) {
            int64_t p = inv[t->rank * n + j];
            for (int d = 0; d < D; d++) t->keys[view][(size_t)d * n + j] = t->gathered[0][(size_t)d * B + p];
        }
    } else {
        model_forward(t->key_enc, t->tape_key, 0, x, n, true, t->bn_red_k);
        l2norm_forward(D, n, model_output(t->tape_key), t->keys[view], t->keys_norm);
    }
}

static void keys_forward(ssl_trainer *t, const float *x, int view) {
    double t0 = sc_now();
    trace_begin("key encoder");
    keys_compute(t, x, view);
    trace_end();
    comm_timer_add(t->phase_key, sc_now() - t0);
}

void ssl_step_begin(ssl_trainer *t, long T) {
    t->step = T;
    t->micro_done = 0;
    bool slim = t->nwidths > 1 && sched_slow_start_over(T, t->steps_per_epoch, t->cfg.slimclr.slow_start ? t->cfg.slimclr.slow_start_epoch : 0.0);
    obj_step_weights(t->nwidths, t->lambda, slim, t->cfg.slimclr.distill, (float)t->cfg.slimclr.distill_alpha, &t->weights);
    if (t->cfg.slimclr.loss_reduce == 1) obj_weights_mean(&t->weights); /* ablation: the mean of the width losses */
    memset(t->l_con, 0, sizeof t->l_con);
    memset(t->l_kd, 0, sizeof t->l_kd);
    model_zero_grad(t->query.m);
    if (t->predictor.m) model_zero_grad(t->predictor.m);
    if (t->key_enc) {
        double m0 = t->cfg.method.momentum;
        t->momentum = (float)(t->cfg.method.momentum_cosine
                               ? sched_momentum_cos(m0, sched_epoch_frac(T, t->steps_per_epoch), (double)t->total_steps / (double)t->steps_per_epoch)
                               : m0);
        optim_ema(model_params(t->key_enc), model_params(t->query.m), model_nparams(t->query.m), t->momentum);
    }
    buckets_begin_step(t->query.bk);
    if (t->predictor.m) buckets_begin_step(t->predictor.bk);
}

/* mark every tensor owned by a sub-width (its BN, its switch-linear) ready: the full-width backward that
 * carries the hook never writes them, and by now their gradients are final */
static void mark_subwidth_tensors(trained *tr) {
    for (int i = 0; i < tr->nt; i++)
        if (tr->tab[i].width_only > 0) buckets_mark_ready(tr->bk, tr->tab[i].offset, tr->tab[i].count);
}

/* backward of one view through the encoder (and the predictor, MoCo v3) from d(normalised output) */
static void encoder_backward(ssl_trainer *t, model_tape *tq, model_tape *tp, const float *qn, const float *nrm,
                             float *dqn, float *dout, float *dfeat, bool hook) {
    int D = t->dim, n = t->local_batch;
    const float *dq_enc = dqn; /* supervised: the class logits are the output itself */
    if (t->method != CFG_METHOD_SUPERVISED) {
        l2norm_backward(D, n, qn, nrm, dqn, dout);
        dq_enc = dout;
    }
    if (tp) {
        model_backward(t->predictor.m, tp, dout, dfeat, t->bn_red_q, hook ? buckets_model_hook : NULL, t->predictor.bk);
        dq_enc = dfeat;
    }
    model_backward(t->query.m, tq, dq_enc, NULL, t->bn_red_q, hook ? buckets_model_hook : NULL, t->query.bk);
}

static void encoder_forward(ssl_trainer *t, model_tape *tq, model_tape *tp, int wi, const float *x, float *qn,
                            float *nrm) {
    model_forward(t->query.m, tq, wi, x, t->local_batch, true, t->bn_red_q);
    const float *o = model_output(tq);
    if (tp) {
        model_forward(t->predictor.m, tp, wi, o, t->local_batch, true, t->bn_red_q);
        o = model_output(tp);
    }
    if (t->method == CFG_METHOD_SUPERVISED) memcpy(qn, o, sizeof(float) * (size_t)t->dim * t->local_batch);
    else l2norm_forward(t->dim, t->local_batch, o, qn, nrm);
}

/* The loss of width wi for view pair `view` (MoCo v3: (q_view, k_other)); SimCLR couples both views, so its
 * one call takes qn2 and writes dq2. Writes d loss / d qn. teacher: the full width's logits (NULL for it). */
static void width_loss(ssl_trainer *t, int wi, int view, const float *qn, const float *qn2, float *z,
                       const float *teacher, float *dq, float *dq2) {
    int D = t->dim, n = t->local_batch, B = n * t->nranks;
    float inv_acc = 1.0f / (float)t->accum;
    float wc = t->weights.w_con[wi] * inv_acc, wk = t->weights.w_kd[wi] * inv_acc;
    float T = (float)t->cfg.method.temperature, tau = (float)t->cfg.slimclr.distill_tau;
    double lc = 0, lk = 0;
    /* ablations: feature distillation replaces the logits' KD (added below); full distillation averages the KD
     * over the full width (here) and every larger sub-width (below) */
    const obj_feat_mode fmode = (obj_feat_mode)t->cfg.slimclr.feature_distill;
    const float wk_feat = fmode != OBJ_FEAT_NONE ? wk : 0.0f;
    if (fmode != OBJ_FEAT_NONE) wk = 0.0f;
    if (t->logits_w[1] && wi > 0) wk /= (float)wi;
    if (t->method == CFG_METHOD_MOCOV2 && t->kq_step < t->step) ssl_queue_finish(t); /* the last step's keys */
    double t0 = sc_now();
    switch (t->method) {
    case CFG_METHOD_MOCOV2:
        obj_mocov2(&(obj_mocov2_args){.D = D, .n = n, .K = t->queue_len, .q = qn, .k = t->keys[0], .queue = t->queue, .T = T,
                                      .kd = {.teacher = teacher, .tau = tau, .w_con = wc, .w_kd = wk},
                                      .z = z, .dz = t->dlogits, .dq = dq, .l_con = &lc, .l_kd = &lk});
        break;
    case CFG_METHOD_MOCOV3:
        obj_mocov3(&(obj_mocov3_args){.D = D, .n = n, .B = B, .offset = t->rank * n, .q = qn, .kall = t->gathered[1 - view],
                                      .T = T, .kd = {.teacher = teacher, .tau = tau, .w_con = wc, .w_kd = wk},
                                      .z = z, .dz = t->dlogits, .dq = dq, .l_con = &lc, .l_kd = &lk});
        break;
    case CFG_METHOD_SIMCLR: {
        gather_cols(t, qn, t->gathered[0]);
        gather_cols(t, qn2, t->gathered[1]);
        float gs = obj_simclr_grad_scale(t->cfg.method.grad_scale == CFG_GRAD_REFERENCE, t->nranks);
        wc *= gs; /* the reported parts l_con / l_kd are unweighted: only the gradient changes */
        wk *= gs;
        obj_simclr(&(obj_simclr_args){.D = D, .n = n, .N = B, .off = t->rank * n, .z1 = t->gathered[0], .z2 = t->gathered[1],
                                      .T = T, .kd = {.teacher = teacher, .tau = tau, .w_con = wc, .w_kd = wk},
                                      .scratch = t->scratch, .z = z, .dz = t->dlogits, .dz1 = t->dgathered[0],
                                      .dz2 = t->dgathered[1], .l_con = &lc, .l_kd = &lk});
        double g0 = sc_now();
        if (t->nranks > 1) { /* d(sum of every rank's loss) / d(my features) */
            comm_allreduce_sum_f32(t->dgathered[0], (size_t)D * B);
            comm_allreduce_sum_f32(t->dgathered[1], (size_t)D * B);
        }
        comm_timer_add(t->phase_gather, sc_now() - g0);
        for (int d = 0; d < D; d++) {
            memcpy(dq + (size_t)d * n, t->dgathered[0] + (size_t)d * B + (size_t)t->rank * n, sizeof(float) * n);
            memcpy(dq2 + (size_t)d * n, t->dgathered[1] + (size_t)d * B + (size_t)t->rank * n, sizeof(float) * n);
        }
        break;
    }
    case CFG_METHOD_SUPERVISED:
        SC_CHECK(t->labels, "ssl_micro: supervised training needs ssl_set_labels first");
        obj_supervised(&(obj_supervised_args){.K = D, .n = n, .lg = qn, .y = t->labels,
                                              .kd = {.teacher = teacher, .tau = tau, .w_con = wc, .w_kd = wk},
                                              .z = z, .dz = t->dlogits, .dq = dq, .l_con = &lc, .l_kd = &lk});
        break;
    }
    if (t->logits_w[1] && wi > 1 && wk != 0.0f) /* full_distill (MoCo v2): KD-only terms against widths 1..wi-1 */
        for (int j = 1; j < wi; j++) {
            double lkj = 0;
            obj_mocov2(&(obj_mocov2_args){.D = D, .n = n, .K = t->queue_len, .q = qn, .k = t->keys[0], .queue = t->queue, .T = T,
                                          .kd = {.teacher = t->logits_w[j], .tau = tau, .w_con = 0.0f, .w_kd = wk},
                                          .z = t->logits, .dz = t->dlogits, .dq = t->demb_extra, .l_con = NULL, .l_kd = &lkj});
            for (size_t i = 0; i < (size_t)D * n; i++) dq[i] += t->demb_extra[i];
            lk += lkj;
        }
    if (t->logits_w[1] && wi > 0) lk /= wi; /* reported: the average over the teachers */
    if (fmode != OBJ_FEAT_NONE && wi > 0 && wk_feat != 0.0f) { /* against the full width's outputs of this view */
        int views = t->method == CFG_METHOD_SIMCLR ? 2 : 1;
        float wv = wk_feat / (float)views;
        lk = obj_feature_distill(&(obj_feat_args){.mode = fmode, .D = D, .n = n, .q = qn, .t = t->emb_full[view],
                                                  .tau = tau, .w = wv, .dq = dq, .scratch = t->fd_scratch}) / views;
        if (views == 2)
            lk += obj_feature_distill(&(obj_feat_args){.mode = fmode, .D = D, .n = n, .q = qn2, .t = t->emb_full[1],
                                                       .tau = tau, .w = wv, .dq = dq2, .scratch = t->fd_scratch}) / 2;
    }
    /* reported per-width parts: mean over micro-batches (MoCo v3: summed over the two pairs, docs/method.md §3.2) */
    t->l_con[wi] += lc / t->accum;
    t->l_kd[wi] += lk / t->accum;
    comm_timer_add(t->phase_loss, sc_now() - t0);
}

static void width_losses(ssl_trainer *t, int wi, float *const *qn, float *const *dqn, float *const *z);

/* forward of width wi on every view, then its loss; fills qn/nrm/dqn[view] */
static void width_forward_loss(ssl_trainer *t, int wi, const float *const *x, int views, model_tape *const *tq,
                               model_tape *const *tp, float *const *qn, float *const *nrm, float *const *dqn,
                               float *const *z) {
    double t0 = sc_now();
    trace_begin(wi == 0 ? "forward full" : "forward sub");
    for (int v = 0; v < views; v++) encoder_forward(t, tq[v], tp[v], wi, x[v], qn[v], nrm[v]);
    trace_end();
    comm_timer_add(t->phase_fwd[wi], sc_now() - t0);
    width_losses(t, wi, qn, dqn, z);
}

/* the loss(es) of width wi from its normalised outputs qn[view]; writes dqn[view] */
static void width_losses(ssl_trainer *t, int wi, float *const *qn, float *const *dqn, float *const *z) {
    const float *const *teacher = (const float *const *)t->logits_teacher;
    switch (t->method) {
    case CFG_METHOD_MOCOV2: width_loss(t, wi, 0, qn[0], NULL, z[0], wi ? teacher[0] : NULL, dqn[0], NULL); break;
    case CFG_METHOD_MOCOV3:
        for (int p = 0; p < 2; p++) width_loss(t, wi, p, qn[p], NULL, z[p], wi ? teacher[p] : NULL, dqn[p], NULL);
        break;
    case CFG_METHOD_SIMCLR: width_loss(t, wi, 0, qn[0], qn[1], z[0], wi ? teacher[0] : NULL, dqn[0], dqn[1]); break;
    case CFG_METHOD_SUPERVISED: width_loss(t, wi, 0, qn[0], NULL, z[0], wi ? teacher[0] : NULL, dqn[0], NULL); break;
    }
    /* these logits teach the smaller widths from here on: the teacher's temperature (ablation) */
    float tau_t = (float)t->cfg.slimclr.distill_tau_teacher, tau_s = (float)t->cfg.slimclr.distill_tau;
    if (wi == 0 || t->logits_w[wi])
        for (int p = 0; p < (t->method == CFG_METHOD_MOCOV3 ? 2 : 1); p++) obj_teacher_temper(z[p], t->logits_len, tau_s, tau_t);
}

void ssl_set_labels(ssl_trainer *t, const int32_t *labels) { t->labels = labels; }

/* ---- the wavefront schedule (method.schedule: wavefront; ssl/wavefront.h) ----------------------------------
 * The same passes as the sequential schedule, in two interleaved runs: the key encoder and every (width, view)
 * forward; then, after the losses (full width first: its logits are the teacher), every backward, the sub-widths
 * first and the full width's last, in the order the sequential schedule runs them, so that each layer's gradient
 * adds the widths in the same order. The full width's pass carries the bucket hook: it reaches a layer after every
 * other pass has passed it, so the bucket launches when its gradient is final. Planned and run for P > 1 only
 * (ssl_wavefront_planned): on one rank the sequential schedule runs. */
static float *qn_of(ssl_trainer *t, int wi, int v) { return wi ? t->emb_w[wi][v] : t->emb_full[v]; }
static float *nrm_of(ssl_trainer *t, int wi, int v) { return wi ? t->emb_norm_w[wi][v] : t->emb_norm_full[v]; }
static float *dqn_of(ssl_trainer *t, int wi, int v) { return wi ? t->demb_w[wi][v] : t->demb_full[v]; }

static void pass_keys(void *arg) {
    ssl_trainer *t = ((wf_pass *)arg)->t;
    if (t->method == CFG_METHOD_MOCOV2) {
        keys_compute(t, t->x_micro[1], 0);
        keys_final(t); /* the gather starts here, while the other passes run on */
    } else {
        for (int v = 0; v < 2; v++) keys_compute(t, t->x_micro[v], v);
    }
}

static void pass_forward(void *arg) {
    wf_pass *p = arg;
    ssl_trainer *t = p->t;
    encoder_forward(t, t->tape_q_w[p->wi][p->v], t->tape_pred_w[p->wi][p->v], p->wi, t->x_micro[p->v], qn_of(t, p->wi, p->v),
                    nrm_of(t, p->wi, p->v));
}

static void pass_backward(void *arg) {
    wf_pass *p = arg;
    ssl_trainer *t = p->t;
    encoder_backward(t, t->tape_q_w[p->wi][p->v], t->tape_pred_w[p->wi][p->v], qn_of(t, p->wi, p->v), nrm_of(t, p->wi, p->v),
                     dqn_of(t, p->wi, p->v), t->dhead_out_w[p->wi][p->v], t->dpred_in_w[p->wi][p->v], p->hook);
}

static void add_pass(ssl_trainer *t, int *np, void (*fn)(void *), int wi, int v, bool hook, bool q) {
    wf_pass *p = &t->pass[(*np)++];
    *p = (wf_pass){t, wi, v, hook};
    wf_add(t->wf, fn, p, q ? t->query.m : NULL, q ? t->scratch_ref_w[wi][v] : (model_scratch_ref){NULL, 0});
}

static void micro_wavefront(ssl_trainer *t, const float *const *x, bool last) {
    int views = t->method == CFG_METHOD_MOCOV2 || t->method == CFG_METHOD_SUPERVISED ? 1 : 2;
    int np = 0;
    t->x_micro[0] = x[0];
    t->x_micro[1] = x[1];
    double t0 = sc_now();
    trace_begin("forward wavefront");
    if (t->key_enc) add_pass(t, &np, pass_keys, 0, 0, false, false); /* the key model: one pass, its own scratch */
    for (int wi = 0; wi < t->nwidths; wi++)
        if (wi == 0 || t->weights.enable[wi])
            for (int v = 0; v < views; v++) add_pass(t, &np, pass_forward, wi, v, false, true);
    wf_run(t->wf);
    trace_end();
    comm_timer_add(t->phase_wf_fwd, sc_now() - t0);
    if (t->method == CFG_METHOD_MOCOV3)
        for (int v = 0; v < 2; v++) gather_cols(t, t->keys[v], t->gathered[v]);
    width_losses(t, 0, t->emb_full, t->demb_full, t->logits_teacher);
    float *zs[2] = {t->logits, t->logits};
    for (int wi = 1; wi < t->nwidths; wi++) {
        if (!t->weights.enable[wi]) continue;
        if (t->logits_w[wi]) zs[0] = t->logits_w[wi]; /* full_distill: kept as a teacher */
        width_losses(t, wi, t->emb_w[wi], t->demb_w[wi], zs);
    }

    t0 = sc_now();
    trace_begin("backward wavefront");
    np = 0;
    for (int wi = 1; wi < t->nwidths; wi++)
        if (t->weights.enable[wi])
            for (int v = 0; v < views; v++) add_pass(t, &np, pass_backward, wi, v, false, true);
    for (int v = views - 1; v >= 0; v--) add_pass(t, &np, pass_backward, 0, v, last && v == 0, true);
    wf_run(t->wf);
    if (last) { /* the hook covered every width's BN with the full width's; anything else is final now */
        mark_subwidth_tensors(&t->query);
        if (t->predictor.m) mark_subwidth_tensors(&t->predictor);
    }
    trace_end();
    comm_timer_add(t->phase_wf_bwd, sc_now() - t0);
}

void ssl_micro(ssl_trainer *t, const float *x1, const float *x2, int n) {
    SC_CHECK(n == t->local_batch, "ssl_micro: local batch %d, the trainer was planned for %d", n, t->local_batch);
    SC_CHECK(t->micro_done < t->accum, "ssl_micro: %d micro-batches in a step planned for %d", t->micro_done + 1, t->accum);
    bool last = t->micro_done == t->accum - 1;
    const float *x[2] = {x1, x2};
    if (t->wave) {
        micro_wavefront(t, x, last);
        t->micro_done++;
        return;
    }
    /* keys (no grad): MoCo v2 from view 2; MoCo v3 from both views, gathered over ranks */
    if (t->method == CFG_METHOD_MOCOV2) {
        keys_forward(t, x2, 0);
        keys_final(t);
    } else if (t->method == CFG_METHOD_MOCOV3) {
        for (int v = 0; v < 2; v++) {
            keys_forward(t, x[v], v);
            gather_cols(t, t->keys[v], t->gathered[v]);
        }
    }
    int views = t->method == CFG_METHOD_MOCOV2 || t->method == CFG_METHOD_SUPERVISED ? 1 : 2;

    /* full width: forward + loss; its logits stay as the teacher, its d(output) waits for the backward at the end */
    width_forward_loss(t, 0, x, views, t->tape_q_full, t->tape_pred_full, t->emb_full, t->emb_norm_full, t->demb_full, t->logits_teacher);

    /* sub-networks: forward + loss + backward each, on one reused tape per view */
    float *zs[2] = {t->logits, t->logits};
    for (int wi = 1; wi < t->nwidths; wi++) {
        if (!t->weights.enable[wi]) continue;
        if (t->logits_w[wi]) zs[0] = t->logits_w[wi]; /* full_distill: kept as a teacher */
        width_forward_loss(t, wi, x, views, t->tape_q_sub, t->tape_pred_sub, t->emb_sub, t->emb_norm_sub, t->demb_sub, zs);
        double t0 = sc_now();
        trace_begin("backward sub");
        for (int v = 0; v < views; v++)
            encoder_backward(t, t->tape_q_sub[v], t->tape_pred_sub[v], t->emb_sub[v], t->emb_norm_sub[v], t->demb_sub[v], t->dhead_out,
                             t->dpred_in, false);
        trace_end();
        comm_timer_add(t->phase_bwd[wi], sc_now() - t0);
    }

    /* full-width backward last: on the last micro-batch each layer launches its bucket's allreduce when final */
    double t0 = sc_now();
    trace_begin("backward full");
    if (last) {
        mark_subwidth_tensors(&t->query);
        if (t->predictor.m) mark_subwidth_tensors(&t->predictor);
    }
    for (int v = views - 1; v >= 0; v--)
        encoder_backward(t, t->tape_q_full[v], t->tape_pred_full[v], t->emb_full[v], t->emb_norm_full[v], t->demb_full[v], t->dhead_out,
                         t->dpred_in, last && v == 0);
    trace_end();
    comm_timer_add(t->phase_bwd[0], sc_now() - t0);
    t->micro_done++;
}

/* MoCo v2 enqueues the keys of the whole optimizer step (docs/method.md §3.1). They are final once the key
 * encoder has run on the step's last micro-batch, and the queue is next read by the next step's first loss: their
 * allgather starts right after that key forward, non-blocking, into a landing buffer, and is copied into the queue
 * there (ssl_queue_finish): the same queue at every read, the whole step as the gather's window. */
static void queue_start(ssl_trainer *t) {
    size_t cnt = (size_t)t->accum * t->dim * t->local_batch;
    ssl_queue_finish(t); /* the last step's, if no loss of this step has read the queue yet (accum 1): one landing */
    memcpy(t->kq_send, t->keys_step, sizeof(float) * cnt); /* the next step's keys overwrite keys_step meanwhile */
    t->kq_req = comm_iallgather_f32(t->kq_send, cnt, t->kq_land);
    t->kq_pending = true;
    t->kq_step = t->step;
}

/* the keys of this micro-batch are final: kept for the step's enqueue; after the last micro-batch, its gather */
static void keys_final(ssl_trainer *t) {
    int D = t->dim, n = t->local_batch;
    memcpy(t->keys_step + (size_t)t->micro_done * D * n, t->keys[0], sizeof(float) * D * n);
    if (t->micro_done == t->accum - 1 && !t->kq_blocking) queue_start(t);
}

static void queue_enqueue(ssl_trainer *t) {
    int D = t->dim, n = t->local_batch, P = t->nranks, A = t->accum;
    for (int a = 0; a < A; a++) { /* column rank*n + j: the global sample order, as comm_allgather's */
        for (int r = 0; r < P; r++)
            for (int d = 0; d < D; d++)
                memcpy(t->queue + (size_t)d * t->queue_len + t->queue_ptr + (size_t)r * n,
                       t->kq_land + (((size_t)r * A + a) * D + d) * n, sizeof(float) * n);
        t->queue_ptr = (t->queue_ptr + (int64_t)n * P) % t->queue_len;
    }
}

void ssl_queue_finish(ssl_trainer *t) {
    if (!t->kq_pending) return;
    double t0 = sc_now();
    comm_ireq_wait(t->kq_req);
    comm_timer_add(t->phase_gather, sc_now() - t0);
    queue_enqueue(t);
    t->kq_pending = false;
}

/* the step ends: a non-finite step enqueues nothing (its gather completes, unused); the blocking reference
 * gathers and enqueues here */
static void queue_step_end(ssl_trainer *t, bool finite) {
    if (t->kq_pending && t->kq_step == t->step && !finite) {
        comm_ireq_wait(t->kq_req);
        t->kq_pending = false;
    }
    if (t->kq_blocking && finite) {
        double t0 = sc_now();
        comm_allgather_f32(t->keys_step, (size_t)t->accum * t->dim * t->local_batch, t->kq_land);
        comm_timer_add(t->phase_gather, sc_now() - t0);
        queue_enqueue(t);
    }
}

/* B2, at the end of each finite step: the first step of the process is warm-up (the timers are snapshotted after
 * it), later ones are summed */
static void accumulate_stats(ssl_trainer *t) {
    if (t->stats_steps++ == 0) {
        t->stats_bn0 = *wf_get_stats(t->wf);
        t->stats_gather0 = comm_timer_seconds(t->phase_gather);
        return;
    }
    ssl_comm_stats *a = &t->stats_sum;
    buckets *bk[2] = {t->query.bk, t->predictor.bk};
    a->nbuckets = 0;
    for (int i = 0; i < 2; i++) {
        if (!bk[i]) continue;
        const buckets_stats *s = buckets_last_stats(bk[i]);
        a->nbuckets += s->nbuckets;
        a->bytes += s->bytes;
        a->comm_s += s->comm_s;
        a->exposed_s += s->exposed_s;
    }
    a->steps++;
}

void ssl_bucket_stats(const ssl_trainer *t, ssl_comm_stats *out) {
    memset(out, 0, sizeof *out);
    const ssl_comm_stats *a = &t->stats_sum;
    out->steps = a->steps;
    out->nbuckets = a->nbuckets;
    out->overlap = 1.0;
    if (a->steps == 0) return;
    double n = (double)a->steps;
    out->bytes = a->bytes / n;
    out->comm_s = a->comm_s / n;
    out->exposed_s = a->exposed_s / n;
    if (a->comm_s > 0) out->overlap = fmin(1.0, fmax(0.0, 1.0 - a->exposed_s / a->comm_s));
    /* the timers' totals run on until now: the ssl_step_end of the last averaged step (next call not begun) */
    const wf_stats *bn = wf_get_stats(t->wf), *b0 = &t->stats_bn0;
    out->syncbn_s = (bn->exposed_s - b0->exposed_s) / n;
    out->syncbn_inflight_s = (bn->inflight_s - b0->inflight_s) / n;
    out->syncbn_overlap = out->syncbn_inflight_s > 0 ? fmin(1.0, fmax(0.0, 1.0 - out->syncbn_s / out->syncbn_inflight_s)) : 0.0;
    out->syncbn_calls = (double)(bn->calls - b0->calls) / n;
    out->gather_s = (comm_timer_seconds(t->phase_gather) - t->stats_gather0) / n;
    out->syncbn_bytes = 8.0 * (bn->doubles - b0->doubles) / n;
}

double ssl_waited_s(const ssl_trainer *t) {
    return comm_timer_seconds(t->phase_wait) + wf_get_stats(t->wf)->exposed_s + comm_timer_seconds(t->phase_gather);
}

static double grad_sumsq(const float *g, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return s;
}

void ssl_step_end(ssl_trainer *t, ssl_step_out *out) {
    SC_CHECK(t->micro_done == t->accum, "ssl_step_end after %d of %d micro-batches", t->micro_done, t->accum);
    double t0 = sc_now();
    trace_begin("allreduce wait");
    buckets_finish(t->query.bk);
    if (t->predictor.m) buckets_finish(t->predictor.bk);
    trace_end();
    comm_timer_add(t->phase_wait, sc_now() - t0);

    /* losses: global mean over ranks (also the NaN agreement: a NaN anywhere makes every rank's sum NaN) */
    double buf[2 * MW + 1];
    for (int i = 0; i < t->nwidths; i++) { buf[i] = t->l_con[i]; buf[MW + i] = t->l_kd[i]; }
    buf[2 * MW] = grad_sumsq(model_grads(t->query.m), model_nparams(t->query.m)) +
                  (t->predictor.m ? grad_sumsq(model_grads(t->predictor.m), model_nparams(t->predictor.m)) : 0.0);
    double gsq = buf[2 * MW]; /* identical on every rank after the allreduce of the gradients */
    comm_allreduce_sum_f64(buf, 2 * MW);
    memset(out, 0, sizeof *out);
    out->finite = isfinite(gsq);
    for (int i = 0; i < t->nwidths; i++) {
        out->l_con[i] = buf[i] / t->nranks;
        out->l_kd[i] = buf[MW + i] / t->nranks;
        check_finite_or_flag(out->l_con[i], &out->finite);
        check_finite_or_flag(out->l_kd[i], &out->finite);
    }
    out->loss = obj_combine(&t->weights, out->l_con, out->l_kd);
    check_finite_or_flag(out->loss, &out->finite);
    out->slim = t->weights.slim;
    out->momentum = t->momentum;
    out->grad_norm = sqrt(gsq);
    out->lr = sched_lr(&t->sched, t->step);
    if (t->method == CFG_METHOD_MOCOV2) queue_step_end(t, out->finite);
    if (!out->finite) return; /* every rank sees the same values: all stop at this step, no update */

    t0 = sc_now();
    trace_begin("optimizer");
    optim_step(t->query.opt, model_params(t->query.m), model_grads(t->query.m), model_touched(t->query.m), (float)out->lr);
    if (t->predictor.m)
        optim_step(t->predictor.opt, model_params(t->predictor.m), model_grads(t->predictor.m), model_touched(t->predictor.m), (float)out->lr);
    trace_end();
    comm_timer_add(t->phase_opt, sc_now() - t0);
    accumulate_stats(t);
}
