/* ssl/trainer: building the SlimCLR trainer from a config (models, optimizers, buckets, tapes and buffers planned
 * once for the micro-batch), freeing it, its checkpointed state (ssl_state_blobs) and accessors. The step itself
 * is ssl/step.c. */
#include "trainer_internal.h"
#include "optim/sched.h"
#include <stdlib.h>
#include <string.h>

/* the largest BN of a model (running statistics: every BN has them, affine or not) */
static int max_bn_channels(const model *m) {
    int c = 0;
    for (int i = 0; m && i < model_nbuftensors(m); i++)
        if ((int)model_buftensor(m, i)->count > c) c = (int)model_buftensor(m, i)->count;
    return c;
}

static sc_err make_trained(trained *t, const model_cfg *mc, const sc_config *cfg, uint64_t seed) {
    sc_err e = SC_OK;
    t->m = model_create(mc, &e);
    if (!t->m) return e;
    model_init(t->m, seed);
    t->nt = model_ntensors(t->m);
    t->tab = sc_calloc_n(param_info, t->nt);
    size_t *off = sc_calloc_n(size_t, t->nt), *cnt = sc_calloc_n(size_t, t->nt);
    for (int i = 0; i < t->nt; i++) {
        t->tab[i] = *model_tensor(t->m, i);
        off[i] = t->tab[i].offset;
        cnt[i] = t->tab[i].count;
    }
    optim_kind kind = cfg->optim.name == CFG_OPT_LARS ? OPTIM_LARS : cfg->optim.name == CFG_OPT_ADAMW ? OPTIM_ADAMW : OPTIM_SGD;
    optim_cfg oc = optim_defaults(kind);
    oc.momentum = (float)cfg->optim.momentum;
    oc.wd = (float)cfg->optim.weight_decay;
    oc.no_decay_bn_bias = !cfg->optim.decay_bn_bias;
    t->opt = optim_create(&oc, t->tab, t->nt, model_nparams(t->m), &e);
    if (t->opt) {
        t->bk = buckets_create(model_grads(t->m), model_nparams(t->m), off, cnt, t->nt, cfg->comm.bucket_mb);
        buckets_set_overlap(t->bk, cfg->comm.overlap);
    }
    sc_free(off);
    sc_free(cnt);
    return t->opt ? SC_OK : e;
}

static void free_trained(trained *t) {
    if (t->bk) buckets_free(t->bk);
    if (t->opt) optim_free(t->opt);
    if (t->m) model_free(t->m);
    sc_free(t->tab);
    memset(t, 0, sizeof *t);
}

/* The model config of the encoder from the run config (docs/method.md §1.2: the head per method). */
model_cfg ssl_encoder_cfg(const sc_config *c) {
    model_cfg mc;
    memset(&mc, 0, sizeof mc);
    mc.depth = c->model.depth;
    mc.base = c->model.base;
    mc.in_ch = c->model.in_channels;
    mc.img = c->model.image_size;
    mc.stem = c->model.stem == CFG_STEM_IMAGENET ? STEM_IMAGENET : STEM_SMALL;
    mc.nwidths = c->model.widths.n;
    for (int i = 0; i < mc.nwidths; i++) mc.widths[i] = (float)c->model.widths.v[i];
    mc.head_out = c->method.dim;
    mc.head_init_normal = c->model.head_init == CFG_HEAD_INIT_NORMAL;
    mc.zero_init_last_bn = c->model.zero_init_residual;
    mc.disjoint = !c->slimclr.overlap_weight; /* ablation: disjoint channel blocks */
    switch (c->method.name) {
    case CFG_METHOD_MOCOV2: mc.head = HEAD_MOCOV2; mc.head_hidden = 0; mc.head_switch = c->slimclr.switch_heads; break;
    case CFG_METHOD_MOCOV3: mc.head = HEAD_MOCOV3_PROJ; mc.head_hidden = c->method.mlp_dim; break;
    case CFG_METHOD_SIMCLR: mc.head = HEAD_SIMCLR; mc.head_hidden = c->method.mlp_dim; break;
    case CFG_METHOD_SUPERVISED: mc.head = HEAD_SLIM_LINEAR; break; /* head_out = method.dim = the classes */
    }
    return mc;
}

static sched_cfg make_sched(const sc_config *c, long spe) {
    sched_cfg s;
    memset(&s, 0, sizeof s);
    s.kind = c->optim.schedule == CFG_SCHED_STEP ? SCHED_STEP : SCHED_COSINE;
    s.lr0 = c->optim.lr;
    s.steps_per_epoch = spe;
    s.epochs = c->optim.epochs;
    s.warmup_proportion = c->optim.warmup;
    s.nmilestones = c->optim.milestones.n < SCHED_MAX_MILESTONES ? c->optim.milestones.n : SCHED_MAX_MILESTONES;
    for (int i = 0; i < s.nmilestones; i++) s.milestones[i] = (int)c->optim.milestones.v[i];
    s.slow_start_epoch = c->slimclr.slow_start ? c->slimclr.slow_start_epoch : 0.0;
    s.slow_start_lr = c->slimclr.slow_start_lr;
    return s;
}

/* The query encoder (with MoCo v3's predictor) and the momentum key encoder, identical on every rank. */
static sc_err create_models(ssl_trainer *t, const sc_config *cfg, const model_cfg *mc, uint64_t seed) {
    sc_err e = make_trained(&t->query, mc, cfg, seed);
    if (e != SC_OK) return e;
    if (t->method == CFG_METHOD_MOCOV3) {
        model_cfg pc = *mc;
        pc.depth = 0;
        pc.head = HEAD_MOCOV3_PRED;
        pc.head_in = cfg->method.dim;
        pc.head_hidden = cfg->method.mlp_dim;
        pc.head_out = cfg->method.dim;
        pc.head_init_normal = false; /* the predictor keeps PyTorch's default init (docs/method.md §1.1) */
        e = make_trained(&t->predictor, &pc, cfg, seed + 1);
        if (e != SC_OK) return e;
    }
    if (t->method != CFG_METHOD_SIMCLR && t->method != CFG_METHOD_SUPERVISED) {
        t->key_enc = model_create_nograd(mc, &e); /* forward only: no gradient array */
        if (!t->key_enc) return e;
        memcpy(model_params(t->key_enc), model_params(t->query.m), model_nparams(t->query.m) * sizeof(float));
        memcpy(model_bufs(t->key_enc), model_bufs(t->query.m), model_nbufs(t->query.m) * sizeof(float));
    }
    /* identical start on every rank: broadcast rank 0's weights (same seed already; this makes it certain) */
    comm_bcast(model_params(t->query.m), model_nparams(t->query.m) * sizeof(float), 0);
    if (t->key_enc) comm_bcast(model_params(t->key_enc), model_nparams(t->key_enc) * sizeof(float), 0);
    if (t->predictor.m) comm_bcast(model_params(t->predictor.m), model_nparams(t->predictor.m) * sizeof(float), 0);
    return SC_OK;
}

/* The tapes of the forward passes (full width and one reused for the sub-widths; the wavefront keeps every pass
 * of the step alive at the same time) and the embedding buffers of each view. */
static void create_tapes(ssl_trainer *t, int views) {
    int n = t->local_batch, D = t->dim, Bm = n * t->nranks;
    for (int v = 0; v < views; v++) {
        t->tape_q_full[v] = model_tape_create(t->query.m, 0, n);
        if (t->nwidths > 1 && !t->wave) t->tape_q_sub[v] = model_tape_create(t->query.m, 1, n);
        if (t->predictor.m) {
            t->tape_pred_full[v] = model_tape_create(t->predictor.m, 0, n);
            if (t->nwidths > 1 && !t->wave) t->tape_pred_sub[v] = model_tape_create(t->predictor.m, 1, n);
        }
    }
    if (t->wave) { /* planned once: every pass of the step alive at the same time */
        for (int wi = 0; wi < t->nwidths; wi++)
            for (int v = 0; v < views; v++) {
                if (wi > 0) {
                    t->tape_q_w[wi][v] = model_tape_create(t->query.m, wi, n);
                    if (t->predictor.m) t->tape_pred_w[wi][v] = model_tape_create(t->predictor.m, wi, n);
                    t->emb_w[wi][v] = sc_calloc_n(float, (size_t)D * n);
                    t->emb_norm_w[wi][v] = sc_calloc_n(float, n);
                    t->demb_w[wi][v] = sc_calloc_n(float, (size_t)D * n);
                } else {
                    t->tape_q_w[0][v] = t->tape_q_full[v];
                    t->tape_pred_w[0][v] = t->tape_pred_full[v];
                }
                t->dhead_out_w[wi][v] = sc_calloc_n(float, (size_t)D * n);
                t->dpred_in_w[wi][v] = sc_calloc_n(float, (size_t)D * n);
            }
        /* after every tape: the model's own scratch has its final size */
        for (int wi = 0; wi < t->nwidths; wi++)
            for (int v = 0; v < views; v++) {
                if (wi == 0 && v == 0) continue; /* ref {NULL}: the model's own */
                size_t unit = model_scratch_unit(t->query.m, wi, n);
                t->scratch_w[wi][v] = sc_calloc_n(float, unit * MODEL_SCRATCH_PRIVATE);
                t->scratch_ref_w[wi][v] = (model_scratch_ref){t->scratch_w[wi][v], unit};
            }
    }
    for (int v = 0; v < 2; v++) {
        t->emb_full[v] = sc_calloc_n(float, (size_t)D * n);
        t->emb_norm_full[v] = sc_calloc_n(float, n);
        t->demb_full[v] = sc_calloc_n(float, (size_t)D * n);
        t->emb_sub[v] = sc_calloc_n(float, (size_t)D * n);
        t->emb_norm_sub[v] = sc_calloc_n(float, n);
        t->demb_sub[v] = sc_calloc_n(float, (size_t)D * n);
        t->keys[v] = sc_calloc_n(float, (size_t)D * n);
        t->gathered[v] = sc_calloc_n(float, (size_t)D * Bm);
    }
    if (t->key_enc) {
        t->tape_key = model_tape_create_infer(t->key_enc, 0, n);
        model_share_workspace(t->key_enc, t->query.m); /* the two never run a layer at the same time */
    }
    t->dhead_out = sc_calloc_n(float, (size_t)D * n);
    t->dpred_in = sc_calloc_n(float, (size_t)D * n);
    t->keys_norm = sc_calloc_n(float, n);
    t->gather_buf = sc_calloc_n(float, (size_t)D * Bm);
}

/* The objective's buffers: the logits (their size per method), MoCo v2's queue and shuffle buffers, SimCLR's
 * scratch, the ablations' teachers. */
static sc_err create_objective_buffers(ssl_trainer *t, const sc_config *cfg, uint64_t seed) {
    int n = t->local_batch, D = t->dim, Bm = n * t->nranks;
    size_t zsz = 0;
    if (t->method == CFG_METHOD_MOCOV2) {
        t->queue_len = cfg->method.queue;
        if (t->queue_len % (Bm * t->accum) != 0)
            return sc_errorf(SC_ERR_CONFIG, "method.queue: %d is not a multiple of the global batch %d (docs/method.md §3.1)",
                             t->queue_len, Bm * t->accum);
        t->queue = sc_calloc_n(float, (size_t)D * t->queue_len);
        /* randn, L2-normalised per column (docs/method.md §3.1), from the run seed: identical on every rank */
        rng_stream rs = rng_stream_make(seed, 0x9e3779b9ull, 1, 2);
        for (size_t i = 0; i < (size_t)D * t->queue_len; i++) t->queue[i] = rng_normal(&rs);
        float *qnrm = sc_calloc_n(float, t->queue_len);
        l2norm_forward(D, t->queue_len, t->queue, t->queue, qnrm);
        sc_free(qnrm);
        t->keys_step = sc_calloc_n(float, (size_t)t->accum * D * n);
        t->kq_send = sc_calloc_n(float, (size_t)t->accum * D * n);
        t->kq_land = sc_calloc_n(float, (size_t)t->nranks * t->accum * D * n);
        const char *kg = getenv("SLIMCLR_KEY_GATHER"); /* tests only: the reference placement of the key gather */
        if (kg && *kg && strcmp(kg, "blocking") != 0)
            return sc_errorf(SC_ERR_CONFIG, "SLIMCLR_KEY_GATHER: '%s'; expected 'blocking' or unset", kg);
        t->kq_blocking = kg && *kg;
        zsz = (size_t)n * (1 + t->queue_len);
        if (cfg->method.bn == CFG_BN_SHUFFLE) {
            int cin = cfg->model.in_channels, hw = cfg->model.image_size * cfg->model.image_size;
            t->x_gathered = sc_calloc_n(float, (size_t)Bm * cin * hw);
            t->x_shuffled = sc_calloc_n(float, (size_t)n * cin * hw);
            t->shuffle_perm = sc_calloc_n(int64_t, 2 * Bm);
            t->bn_red_q = NULL;
            t->bn_red_k = NULL;
        }
    } else if (t->method == CFG_METHOD_MOCOV3) {
        zsz = (size_t)n * Bm;
    } else if (t->method == CFG_METHOD_SUPERVISED) {
        zsz = (size_t)n * D;
    } else {
        zsz = (size_t)(2 * n) * (2 * Bm - 1);
        t->scratch = sc_calloc_n(float, (size_t)obj_simclr_scratch(n, Bm));
        for (int v = 0; v < 2; v++) t->dgathered[v] = sc_calloc_n(float, (size_t)D * Bm);
    }
    t->logits = sc_calloc_n(float, zsz);
    t->dlogits = sc_calloc_n(float, zsz);
    t->logits_len = zsz;
    if (cfg->slimclr.full_distill) { /* ablation: the sub-widths' logits stay as teachers of the smaller ones */
        for (int i = 1; i < t->nwidths; i++) t->logits_w[i] = sc_calloc_n(float, zsz);
        t->demb_extra = sc_calloc_n(float, (size_t)D * n);
    }
    if (cfg->slimclr.feature_distill) t->fd_scratch = sc_calloc_n(float, 3 * (size_t)D * n);
    for (int v = 0; v < 2; v++) t->logits_teacher[v] = sc_calloc_n(float, zsz);
    return SC_OK;
}

/* the phase timers the step adds to (bench and train report them) */
static void register_phases(ssl_trainer *t) {
    char nm[32];
    for (int i = 0; i < t->nwidths; i++) {
        snprintf(nm, sizeof nm, "forward w%.3g", t->widths[i]);
        t->phase_fwd[i] = comm_timer_id(nm);
        snprintf(nm, sizeof nm, "backward w%.3g", t->widths[i]);
        t->phase_bwd[i] = comm_timer_id(nm);
    }
    t->phase_key = comm_timer_id("key encoder");
    t->phase_loss = comm_timer_id("loss");
    t->phase_gather = comm_timer_id("gathers");
    t->phase_wait = comm_timer_id("allreduce exposed");
    t->phase_opt = comm_timer_id("optimizer");
    t->phase_wf_fwd = comm_timer_id("forward wavefront");
    t->phase_wf_bwd = comm_timer_id("backward wavefront");
}

sc_err ssl_create(const sc_config *cfg, int micro_batch, long steps_per_epoch, long total_steps, ssl_trainer **out) {
    *out = NULL;
    ssl_trainer *t = sc_calloc_n(ssl_trainer, 1);
    t->cfg = *cfg;
    t->method = cfg->method.name;
    t->rank = comm_rank();
    t->nranks = comm_size();
    t->local_batch = micro_batch;
    t->accum = cfg->optim.accum;
    t->nwidths = cfg->model.widths.n;
    for (int i = 0; i < t->nwidths; i++) t->widths[i] = (float)cfg->model.widths.v[i];
    t->steps_per_epoch = steps_per_epoch > 0 ? steps_per_epoch : 1;
    t->total_steps = total_steps;
    t->sched = make_sched(cfg, t->steps_per_epoch);
    sc_err e = sched_check(&t->sched);
    if (e != SC_OK) goto fail;
    e = obj_loss_weights(cfg->slimclr.loss_weights, t->nwidths, t->widths, t->lambda);
    if (e != SC_OK) goto fail;
    t->dim = cfg->method.dim;
    t->wave = ssl_wavefront_planned(cfg, t->nranks); /* one rank: the sequential schedule (nothing to hide) */

    uint64_t seed = (uint64_t)cfg->run.seed;
    model_cfg mc = ssl_encoder_cfg(cfg);
    e = create_models(t, cfg, &mc, seed);
    if (e != SC_OK) goto fail;
    int cmax = max_bn_channels(t->query.m);
    if (max_bn_channels(t->predictor.m) > cmax) cmax = max_bn_channels(t->predictor.m);
    t->wf = wf_create(2 * cmax + 1, t->wave);
    t->bn_red_q = cfg->method.bn == CFG_BN_SYNC ? wf_reducer(t->wf) : NULL;
    t->bn_red_k = t->bn_red_q;

    int views = t->method == CFG_METHOD_MOCOV2 || t->method == CFG_METHOD_SUPERVISED ? 1 : 2;
    create_tapes(t, views);
    e = create_objective_buffers(t, cfg, seed);
    if (e != SC_OK) goto fail;
    register_phases(t);
    *out = t;
    return SC_OK;
fail:
    ssl_free(t);
    return e;
}

void ssl_free(ssl_trainer *t) {
    if (!t) return;
    if (t->kq_pending) comm_ireq_wait(t->kq_req);
    for (int v = 0; v < 2; v++) {
        if (t->tape_q_full[v]) model_tape_free(t->tape_q_full[v]);
        if (t->tape_q_sub[v]) model_tape_free(t->tape_q_sub[v]);
        if (t->tape_pred_full[v]) model_tape_free(t->tape_pred_full[v]);
        if (t->tape_pred_sub[v]) model_tape_free(t->tape_pred_sub[v]);
        sc_free(t->emb_full[v]); sc_free(t->emb_norm_full[v]); sc_free(t->demb_full[v]);
        sc_free(t->emb_sub[v]); sc_free(t->emb_norm_sub[v]); sc_free(t->demb_sub[v]);
        sc_free(t->keys[v]); sc_free(t->gathered[v]); sc_free(t->logits_teacher[v]); sc_free(t->dgathered[v]);
    }
    for (int wi = 1; wi < MW; wi++)
        for (int v = 0; v < 2; v++) {
            if (t->tape_q_w[wi][v]) model_tape_free(t->tape_q_w[wi][v]);
            if (t->tape_pred_w[wi][v]) model_tape_free(t->tape_pred_w[wi][v]);
            sc_free(t->emb_w[wi][v]); sc_free(t->emb_norm_w[wi][v]); sc_free(t->demb_w[wi][v]);
        }
    for (int wi = 0; wi < MW; wi++)
        for (int v = 0; v < 2; v++) { sc_free(t->dhead_out_w[wi][v]); sc_free(t->dpred_in_w[wi][v]); sc_free(t->scratch_w[wi][v]); }
    wf_free(t->wf);
    if (t->tape_key) model_tape_free(t->tape_key);
    free_trained(&t->query);
    free_trained(&t->predictor);
    if (t->key_enc) model_free(t->key_enc);
    sc_free(t->dhead_out); sc_free(t->dpred_in);
    sc_free(t->keys_norm); sc_free(t->gather_buf); sc_free(t->keys_step); sc_free(t->queue);
    sc_free(t->kq_send); sc_free(t->kq_land);
    sc_free(t->logits); sc_free(t->dlogits); sc_free(t->scratch);
    for (int i = 0; i < MW; i++) sc_free(t->logits_w[i]);
    sc_free(t->demb_extra); sc_free(t->fd_scratch); sc_free(t->x_gathered); sc_free(t->x_shuffled); sc_free(t->shuffle_perm);
    sc_free(t);
}

int ssl_state_blobs(ssl_trainer *t, ssl_state_blob *b, int max) {
    ssl_queue_finish(t); /* the queue as the next step reads it (a local wait: rank 0 alone may call this) */
    int k = 0;
#define BLOB(nm, f, p, c) do { if (k < max) { b[k].name = nm; b[k].is_f32 = f; b[k].data = p; b[k].count = c; } k++; } while (0)
    BLOB("q.params", 1, model_params(t->query.m), model_nparams(t->query.m));
    BLOB("q.bufs", 1, model_bufs(t->query.m), model_nbufs(t->query.m));
    size_t n;
    float *st = optim_state(t->query.opt, &n);
    BLOB("q.optim", 1, st, n);
    if (t->predictor.m) {
        BLOB("pred.params", 1, model_params(t->predictor.m), model_nparams(t->predictor.m));
        BLOB("pred.bufs", 1, model_bufs(t->predictor.m), model_nbufs(t->predictor.m));
        st = optim_state(t->predictor.opt, &n);
        BLOB("pred.optim", 1, st, n);
    }
    if (t->key_enc) {
        BLOB("k.params", 1, model_params(t->key_enc), model_nparams(t->key_enc));
        BLOB("k.bufs", 1, model_bufs(t->key_enc), model_nbufs(t->key_enc));
    }
    if (t->queue) {
        BLOB("queue", 1, t->queue, (size_t)t->dim * t->queue_len);
        BLOB("queue.ptr", 0, &t->queue_ptr, 1);
    }
#undef BLOB
    return k;
}

/* after a restore of the blobs: the optimizers' step counts follow the global step */
void ssl_set_step_count(ssl_trainer *t, long steps);
void ssl_set_step_count(ssl_trainer *t, long steps) {
    optim_set_steps(t->query.opt, steps);
    if (t->predictor.opt) optim_set_steps(t->predictor.opt, steps);
}

model *ssl_query_model(ssl_trainer *t) { return t->query.m; }
model *ssl_predictor_model(ssl_trainer *t) { return t->predictor.m; }
int ssl_nwidths(const ssl_trainer *t) { return t->nwidths; }
bool ssl_wavefront(const ssl_trainer *t) { return t->wave; }
float ssl_width(const ssl_trainer *t, int wi) { return t->widths[wi]; }

size_t ssl_memory_bytes(const ssl_trainer *t) {
    size_t b = 0;
    const model *ms[3] = {t->query.m, t->predictor.m, t->key_enc};
    for (int i = 0; i < 3; i++)
        if (ms[i]) b += (model_nparams(ms[i]) * (model_has_grads(ms[i]) ? 3 : 1) + model_nbufs(ms[i])) * sizeof(float) +
                        model_scratch_bytes(ms[i]);
    for (int v = 0; v < 2; v++) {
        model_tape *tp[4] = {t->tape_q_full[v], t->tape_q_sub[v], t->tape_pred_full[v], t->tape_pred_sub[v]};
        for (int i = 0; i < 4; i++)
            if (tp[i]) b += model_tape_bytes(tp[i]);
    }
    if (t->tape_key) b += model_tape_bytes(t->tape_key);
    for (int wi = 1; wi < MW; wi++)
        for (int v = 0; v < 2; v++) {
            if (t->tape_q_w[wi][v]) b += model_tape_bytes(t->tape_q_w[wi][v]);
            if (t->tape_pred_w[wi][v]) b += model_tape_bytes(t->tape_pred_w[wi][v]);
        }
    for (int wi = 0; wi < MW; wi++)
        for (int v = 0; v < 2; v++)
            if (t->scratch_w[wi][v]) b += t->scratch_ref_w[wi][v].unit * MODEL_SCRATCH_PRIVATE * sizeof(float);
    if (t->queue) b += (size_t)t->dim * t->queue_len * sizeof(float);
    return b;
}
