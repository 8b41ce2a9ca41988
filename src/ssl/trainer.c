/* ssl/trainer: building the SlimCLR trainer from a config (models, optimizers, buckets, tapes and buffers planned
 * once for the micro-batch), freeing it, its checkpointed state (ssl_state_blobs) and accessors. The step itself
 * is ssl/step.c. */
#include "trainer_internal.h"
#include "optim/sched.h"
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
    sc_err e = make_trained(&t->q, mc, cfg, seed);
    if (e != SC_OK) return e;
    if (t->method == CFG_METHOD_MOCOV3) {
        model_cfg pc = *mc;
        pc.depth = 0;
        pc.head = HEAD_MOCOV3_PRED;
        pc.head_in = cfg->method.dim;
        pc.head_hidden = cfg->method.mlp_dim;
        pc.head_out = cfg->method.dim;
        pc.head_init_normal = false; /* the predictor keeps PyTorch's default init (docs/method.md §1.1) */
        e = make_trained(&t->pred, &pc, cfg, seed + 1);
        if (e != SC_OK) return e;
    }
    if (t->method != CFG_METHOD_SIMCLR && t->method != CFG_METHOD_SUPERVISED) {
        t->k = model_create(mc, &e);
        if (!t->k) return e;
        memcpy(model_params(t->k), model_params(t->q.m), model_nparams(t->q.m) * sizeof(float));
        memcpy(model_bufs(t->k), model_bufs(t->q.m), model_nbufs(t->q.m) * sizeof(float));
    }
    /* identical start on every rank: broadcast rank 0's weights (same seed already; this makes it certain) */
    comm_bcast(model_params(t->q.m), model_nparams(t->q.m) * sizeof(float), 0);
    if (t->k) comm_bcast(model_params(t->k), model_nparams(t->k) * sizeof(float), 0);
    if (t->pred.m) comm_bcast(model_params(t->pred.m), model_nparams(t->pred.m) * sizeof(float), 0);
    return SC_OK;
}

/* The tapes of the forward passes (full width and one reused for the sub-widths; the wavefront keeps every pass
 * of the step alive at the same time) and the embedding buffers of each view. */
static void create_tapes(ssl_trainer *t, int views) {
    int n = t->n, D = t->D, Bm = n * t->P;
    for (int v = 0; v < views; v++) {
        t->tq_full[v] = model_tape_create(t->q.m, 0, n);
        if (t->nw > 1 && !t->wave) t->tq_sub[v] = model_tape_create(t->q.m, 1, n);
        if (t->pred.m) {
            t->tp_full[v] = model_tape_create(t->pred.m, 0, n);
            if (t->nw > 1 && !t->wave) t->tp_sub[v] = model_tape_create(t->pred.m, 1, n);
        }
    }
    if (t->wave) { /* planned once: every pass of the step alive at the same time */
        for (int wi = 0; wi < t->nw; wi++)
            for (int v = 0; v < views; v++) {
                if (wi > 0) {
                    t->tq_w[wi][v] = model_tape_create(t->q.m, wi, n);
                    if (t->pred.m) t->tp_w[wi][v] = model_tape_create(t->pred.m, wi, n);
                    t->qn_w[wi][v] = sc_calloc_n(float, (size_t)D * n);
                    t->nrm_w[wi][v] = sc_calloc_n(float, n);
                    t->dqn_w[wi][v] = sc_calloc_n(float, (size_t)D * n);
                } else {
                    t->tq_w[0][v] = t->tq_full[v];
                    t->tp_w[0][v] = t->tp_full[v];
                }
                t->dout_w[wi][v] = sc_calloc_n(float, (size_t)D * n);
                t->dfeat_w[wi][v] = sc_calloc_n(float, (size_t)D * n);
            }
        /* after every tape: the model's own scratch has its final size */
        for (int wi = 0; wi < t->nw; wi++)
            for (int v = 0; v < views; v++) {
                if (wi == 0 && v == 0) continue; /* ref {NULL}: the model's own */
                size_t unit = model_scratch_unit(t->q.m, wi, n);
                t->scr_w[wi][v] = sc_calloc_n(float, unit * MODEL_SCRATCH_PRIVATE);
                t->scr_ref[wi][v] = (model_scratch_ref){t->scr_w[wi][v], unit};
            }
    }
    for (int v = 0; v < 2; v++) {
        t->qn_full[v] = sc_calloc_n(float, (size_t)D * n);
        t->nrm_full[v] = sc_calloc_n(float, n);
        t->dqn_full[v] = sc_calloc_n(float, (size_t)D * n);
        t->qn_sub[v] = sc_calloc_n(float, (size_t)D * n);
        t->nrm_sub[v] = sc_calloc_n(float, n);
        t->dqn_sub[v] = sc_calloc_n(float, (size_t)D * n);
        t->kn[v] = sc_calloc_n(float, (size_t)D * n);
        t->kall[v] = sc_calloc_n(float, (size_t)D * Bm);
    }
    if (t->k) {
        t->tk = model_tape_create_infer(t->k, 0, n);
        model_share_workspace(t->k, t->q.m); /* the two never run a layer at the same time */
    }
    t->dout = sc_calloc_n(float, (size_t)D * n);
    t->dfeat = sc_calloc_n(float, (size_t)D * n);
    t->knrm = sc_calloc_n(float, n);
    t->gather = sc_calloc_n(float, (size_t)D * Bm);
}

/* The objective's buffers: the logits (their size per method), MoCo v2's queue and shuffle buffers, SimCLR's
 * scratch, the ablations' teachers. */
static sc_err create_objective_buffers(ssl_trainer *t, const sc_config *cfg, uint64_t seed) {
    int n = t->n, D = t->D, Bm = n * t->P;
    size_t zsz = 0;
    if (t->method == CFG_METHOD_MOCOV2) {
        t->K = cfg->method.queue;
        if (t->K % (Bm * t->accum) != 0)
            return sc_errorf(SC_ERR_CONFIG, "method.queue: %d is not a multiple of the global batch %d (docs/method.md §3.1)",
                             t->K, Bm * t->accum);
        t->queue = sc_calloc_n(float, (size_t)D * t->K);
        /* randn, L2-normalised per column (docs/method.md §3.1), from the run seed: identical on every rank */
        rng_stream rs = rng_stream_make(seed, 0x9e3779b9ull, 1, 2);
        for (size_t i = 0; i < (size_t)D * t->K; i++) t->queue[i] = rng_normal(&rs);
        float *qnrm = sc_calloc_n(float, t->K);
        l2norm_forward(D, t->K, t->queue, t->queue, qnrm);
        sc_free(qnrm);
        t->keys_step = sc_calloc_n(float, (size_t)t->accum * D * n);
        t->kq_send = sc_calloc_n(float, (size_t)t->accum * D * n);
        t->kq_land = sc_calloc_n(float, (size_t)t->P * t->accum * D * n);
        zsz = (size_t)n * (1 + t->K);
        if (cfg->method.bn == CFG_BN_SHUFFLE) {
            int cin = cfg->model.in_channels, hw = cfg->model.image_size * cfg->model.image_size;
            t->x_all = sc_calloc_n(float, (size_t)Bm * cin * hw);
            t->x_shuf = sc_calloc_n(float, (size_t)n * cin * hw);
            t->perm = sc_calloc_n(int64_t, 2 * Bm);
            t->red_q = NULL;
            t->red_k = NULL;
        }
    } else if (t->method == CFG_METHOD_MOCOV3) {
        zsz = (size_t)n * Bm;
    } else if (t->method == CFG_METHOD_SUPERVISED) {
        zsz = (size_t)n * D;
    } else {
        zsz = (size_t)(2 * n) * (2 * Bm - 1);
        t->scratch = sc_calloc_n(float, (size_t)obj_simclr_scratch(n, Bm));
        for (int v = 0; v < 2; v++) t->dzall[v] = sc_calloc_n(float, (size_t)D * Bm);
    }
    t->z = sc_calloc_n(float, zsz);
    t->dz = sc_calloc_n(float, zsz);
    t->zsz = zsz;
    if (cfg->slimclr.full_distill) { /* ablation: the sub-widths' logits stay as teachers of the smaller ones */
        for (int i = 1; i < t->nw; i++) t->z_w[i] = sc_calloc_n(float, zsz);
        t->dq_extra = sc_calloc_n(float, (size_t)D * n);
    }
    if (cfg->slimclr.feature_distill) t->fd_scratch = sc_calloc_n(float, 3 * (size_t)D * n);
    for (int v = 0; v < 2; v++) t->z_t[v] = sc_calloc_n(float, zsz);
    return SC_OK;
}

/* the phase timers the step adds to (bench and train report them) */
static void register_phases(ssl_trainer *t) {
    char nm[32];
    for (int i = 0; i < t->nw; i++) {
        snprintf(nm, sizeof nm, "forward w%.3g", t->widths[i]);
        t->ph_fwd[i] = comm_timer_id(nm);
        snprintf(nm, sizeof nm, "backward w%.3g", t->widths[i]);
        t->ph_bwd[i] = comm_timer_id(nm);
    }
    t->ph_key = comm_timer_id("key encoder");
    t->ph_loss = comm_timer_id("loss");
    t->ph_gather = comm_timer_id("gathers");
    t->ph_wait = comm_timer_id("allreduce exposed");
    t->ph_opt = comm_timer_id("optimizer");
    t->ph_wf_fwd = comm_timer_id("forward wavefront");
    t->ph_wf_bwd = comm_timer_id("backward wavefront");
}

sc_err ssl_create(const sc_config *cfg, int micro_batch, long steps_per_epoch, long total_steps, ssl_trainer **out) {
    *out = NULL;
    ssl_trainer *t = sc_calloc_n(ssl_trainer, 1);
    t->cfg = *cfg;
    t->method = cfg->method.name;
    t->rank = comm_rank();
    t->P = comm_size();
    t->n = micro_batch;
    t->accum = cfg->optim.accum;
    t->nw = cfg->model.widths.n;
    for (int i = 0; i < t->nw; i++) t->widths[i] = (float)cfg->model.widths.v[i];
    t->spe = steps_per_epoch > 0 ? steps_per_epoch : 1;
    t->total = total_steps;
    t->sched = make_sched(cfg, t->spe);
    sc_err e = sched_check(&t->sched);
    if (e != SC_OK) goto fail;
    e = obj_loss_weights(cfg->slimclr.loss_weights, t->nw, t->widths, t->lambda);
    if (e != SC_OK) goto fail;
    t->D = cfg->method.dim;
    t->wave = ssl_wavefront_planned(cfg, t->P); /* one rank: the sequential schedule (nothing to hide) */

    uint64_t seed = (uint64_t)cfg->run.seed;
    model_cfg mc = ssl_encoder_cfg(cfg);
    e = create_models(t, cfg, &mc, seed);
    if (e != SC_OK) goto fail;
    int cmax = max_bn_channels(t->q.m);
    if (max_bn_channels(t->pred.m) > cmax) cmax = max_bn_channels(t->pred.m);
    t->wf = wf_create(2 * cmax + 1, t->wave);
    t->red_q = cfg->method.bn == CFG_BN_SYNC ? wf_reducer(t->wf) : NULL;
    t->red_k = t->red_q;

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
        if (t->tq_full[v]) model_tape_free(t->tq_full[v]);
        if (t->tq_sub[v]) model_tape_free(t->tq_sub[v]);
        if (t->tp_full[v]) model_tape_free(t->tp_full[v]);
        if (t->tp_sub[v]) model_tape_free(t->tp_sub[v]);
        sc_free(t->qn_full[v]); sc_free(t->nrm_full[v]); sc_free(t->dqn_full[v]);
        sc_free(t->qn_sub[v]); sc_free(t->nrm_sub[v]); sc_free(t->dqn_sub[v]);
        sc_free(t->kn[v]); sc_free(t->kall[v]); sc_free(t->z_t[v]); sc_free(t->dzall[v]);
    }
    for (int wi = 1; wi < MW; wi++)
        for (int v = 0; v < 2; v++) {
            if (t->tq_w[wi][v]) model_tape_free(t->tq_w[wi][v]);
            if (t->tp_w[wi][v]) model_tape_free(t->tp_w[wi][v]);
            sc_free(t->qn_w[wi][v]); sc_free(t->nrm_w[wi][v]); sc_free(t->dqn_w[wi][v]);
        }
    for (int wi = 0; wi < MW; wi++)
        for (int v = 0; v < 2; v++) { sc_free(t->dout_w[wi][v]); sc_free(t->dfeat_w[wi][v]); sc_free(t->scr_w[wi][v]); }
    wf_free(t->wf);
    if (t->tk) model_tape_free(t->tk);
    free_trained(&t->q);
    free_trained(&t->pred);
    if (t->k) model_free(t->k);
    sc_free(t->dout); sc_free(t->dfeat);
    sc_free(t->knrm); sc_free(t->gather); sc_free(t->keys_step); sc_free(t->queue);
    sc_free(t->kq_send); sc_free(t->kq_land);
    sc_free(t->z); sc_free(t->dz); sc_free(t->scratch);
    for (int i = 0; i < MW; i++) sc_free(t->z_w[i]);
    sc_free(t->dq_extra); sc_free(t->fd_scratch); sc_free(t->x_all); sc_free(t->x_shuf); sc_free(t->perm);
    sc_free(t);
}

int ssl_state_blobs(ssl_trainer *t, ssl_state_blob *b, int max) {
    ssl_queue_finish(t); /* the queue as the next step reads it (a local wait: rank 0 alone may call this) */
    int k = 0;
#define BLOB(nm, f, p, c) do { if (k < max) { b[k].name = nm; b[k].is_f32 = f; b[k].data = p; b[k].count = c; } k++; } while (0)
    BLOB("q.params", 1, model_params(t->q.m), model_nparams(t->q.m));
    BLOB("q.bufs", 1, model_bufs(t->q.m), model_nbufs(t->q.m));
    size_t n;
    float *st = optim_state(t->q.opt, &n);
    BLOB("q.optim", 1, st, n);
    if (t->pred.m) {
        BLOB("pred.params", 1, model_params(t->pred.m), model_nparams(t->pred.m));
        BLOB("pred.bufs", 1, model_bufs(t->pred.m), model_nbufs(t->pred.m));
        st = optim_state(t->pred.opt, &n);
        BLOB("pred.optim", 1, st, n);
    }
    if (t->k) {
        BLOB("k.params", 1, model_params(t->k), model_nparams(t->k));
        BLOB("k.bufs", 1, model_bufs(t->k), model_nbufs(t->k));
    }
    if (t->queue) {
        BLOB("queue", 1, t->queue, (size_t)t->D * t->K);
        BLOB("queue.ptr", 0, &t->qptr, 1);
    }
#undef BLOB
    return k;
}

/* after a restore of the blobs: the optimizers' step counts follow the global step */
void ssl_set_step_count(ssl_trainer *t, long steps);
void ssl_set_step_count(ssl_trainer *t, long steps) {
    optim_set_steps(t->q.opt, steps);
    if (t->pred.opt) optim_set_steps(t->pred.opt, steps);
}

model *ssl_query_model(ssl_trainer *t) { return t->q.m; }
model *ssl_predictor_model(ssl_trainer *t) { return t->pred.m; }
int ssl_nwidths(const ssl_trainer *t) { return t->nw; }
bool ssl_wavefront(const ssl_trainer *t) { return t->wave; }
float ssl_width(const ssl_trainer *t, int wi) { return t->widths[wi]; }

size_t ssl_memory_bytes(const ssl_trainer *t) {
    size_t b = 0;
    const model *ms[3] = {t->q.m, t->pred.m, t->k};
    for (int i = 0; i < 3; i++)
        if (ms[i]) b += (model_nparams(ms[i]) * 3 + model_nbufs(ms[i])) * sizeof(float) + model_scratch_bytes(ms[i]);
    for (int v = 0; v < 2; v++) {
        model_tape *tp[4] = {t->tq_full[v], t->tq_sub[v], t->tp_full[v], t->tp_sub[v]};
        for (int i = 0; i < 4; i++)
            if (tp[i]) b += model_tape_bytes(tp[i]);
    }
    if (t->tk) b += model_tape_bytes(t->tk);
    for (int wi = 1; wi < MW; wi++)
        for (int v = 0; v < 2; v++) {
            if (t->tq_w[wi][v]) b += model_tape_bytes(t->tq_w[wi][v]);
            if (t->tp_w[wi][v]) b += model_tape_bytes(t->tp_w[wi][v]);
        }
    for (int wi = 0; wi < MW; wi++)
        for (int v = 0; v < 2; v++)
            if (t->scr_w[wi][v]) b += t->scr_ref[wi][v].unit * MODEL_SCRATCH_PRIVATE * sizeof(float);
    if (t->queue) b += (size_t)t->D * t->K * sizeof(float);
    return b;
}
