/* ssl/train: `slimclr train` (see include/ssl/train.h).
 * Checkpoint sections (io/checkpoint.h container): the trainer's blobs (q.params, q.bufs, q.optim, k.*,
 * pred.*, queue, queue.ptr), "config" (the resolved YAML, for the resume diff) and "train.state"
 * (int64: optimizer steps done, P at writing). The data order and the augmentation randomness are pure
 * functions of (seed, epoch, sample, view), so the step count is all the RNG state there is. */
#include "ssl/train.h"
#include "blas/blas.h"
#include "comm/affinity.h"
#include "comm/balance.h"
#include "comm/buckets.h"
#include "comm/comm.h"
#include "comm/timers.h"
#include "core/error.h"
#include "core/signals.h"
#include "core/timer.h"
#include "core/trace.h"
#include "data/data.h"
#include "data/loader.h"
#include "eval/graddiag.h"
#include "eval/graddir.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "io/metrics.h"
#include "model/model.h"
#include "nn/conv.h"
#include "ssl/monitor.h"
#include "ssl/run.h"
#include "ssl/step.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void ssl_set_step_count(ssl_trainer *t, long steps); /* step.c */

#define MAX_SECTIONS 24

typedef struct {
    sc_config cfg;
    data_set set;
    loader *ld;
    ssl_trainer *tr;
    metrics *mx;
    long spe_data;   /* optimizer steps per data epoch (drop_last) */
    long spe_sched;  /* steps per epoch of the schedules (= spe_data unless optim.max_steps compresses them) */
    long total;
    int micro;       /* local images per micro-batch */
    char ckpt_dir[CONFIG_PATH_MAX + 32];
    char last_ckpt[CONFIG_PATH_MAX + 64];
    int ph_data;
    mon_knn *knn;  /* eval.knn_every_epochs > 0 */
    double sv[2];      /* top-2 singular values of the last projection layer's gradient (with grad_diag) */
    graddir_log *gdir; /* its snapshots over time (docs/method.md §8.2), opened at the first diagnostics step */
    double gcos;       /* cosine of its snapshot with the previous one */
    balance bal;       /* per-step compute and off-CPU time of this rank, for the summary's balance line */
} run_state;

/* ---- checkpoints ------------------------------------------------------------------------------------------ */

static sc_err save_checkpoint(run_state *s, long steps_done) {
    sc_err e = SC_OK;
    if (comm_rank() == 0) {
        ssl_state_blob blobs[MAX_SECTIONS];
        int nb = ssl_state_blobs(s->tr, blobs, MAX_SECTIONS);
        ckpt_section secs[MAX_SECTIONS + 2];
        for (int i = 0; i < nb; i++) {
            secs[i].name = blobs[i].name;
            secs[i].dtype = blobs[i].is_f32 ? CKPT_F32 : CKPT_I64;
            secs[i].count = blobs[i].count;
            secs[i].data = blobs[i].data;
        }
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        config_write_yaml(&s->cfg, f);
        fclose(f);
        int64_t state[2] = {steps_done, comm_size()};
        secs[nb++] = (ckpt_section){"config", CKPT_U8, len, text};
        secs[nb++] = (ckpt_section){"train.state", CKPT_I64, 2, state};
        ckpt_header h;
        memset(&h, 0, sizeof h);
        h.config_hash = config_hash(&s->cfg);
        h.step = (uint64_t)steps_done;
        h.epoch = (double)steps_done / (double)s->spe_data;
        config_model_signature(&s->cfg, h.signature, sizeof h.signature);
        e = ckpt_save(s->ckpt_dir, &h, secs, nb, s->cfg.checkpoint.keep_last, s->cfg.checkpoint.snapshot_epochs);
        free(text);
        if (e == SC_OK) ckpt_step_path(s->ckpt_dir, (uint64_t)steps_done, s->last_ckpt, sizeof s->last_ckpt);
        else fprintf(stderr, "slimclr: error: checkpoint at step %ld: %s\n", steps_done, sc_last_error());
    }
    /* every rank learns whether the write worked: a failed checkpoint stops the run on all ranks */
    int bad = comm_allreduce_max_int(e != SC_OK);
    return bad ? SC_ERR_IO : SC_OK;
}

/* Restores a checkpoint into the trainer; checks model signature and config hash. Every rank reads the file. */
static sc_err load_checkpoint(run_state *s, const char *path, long *steps_done) {
    ckpt_file *f = NULL;
    sc_err oe = ckpt_open(path, &f);
    if (oe == SC_ERR_FORMAT) { /* a damaged file stays a hard error; name the previous good one to go back to */
        char msg[1024], dir[CONFIG_PATH_MAX + 64], prev[CONFIG_PATH_MAX + 128];
        snprintf(msg, sizeof msg, "%s", sc_last_error());
        snprintf(dir, sizeof dir, "%s", path);
        char *sl = strrchr(dir, '/');
        if (sl) *sl = 0;
        else snprintf(dir, sizeof dir, ".");
        ckpt_header h;
        bool found = false;
        uint64_t step = ckpt_read_header(path, &h) == SC_OK ? h.step : UINT64_MAX;
        ckpt_find_good_before(dir, step, prev, sizeof prev, &found);
        if (found)
            return sc_errorf(oe, "%s. The previous good checkpoint is %s: resume from it with --resume %s", msg, prev,
                             prev);
        return sc_errorf(oe, "%s. No earlier good checkpoint in %s", msg, dir);
    }
    if (oe != SC_OK) return oe;
    if (ckpt_find(f, "export.info", NULL, NULL)) {
        ckpt_close(f);
        return sc_errorf(SC_ERR_MISMATCH, "cannot resume a backbone-only checkpoint: %s is an export or import "
                                          "(weights without optimizer state, queue or head); use it with eval or "
                                          "features, or start a new run", path);
    }
    char sig[CKPT_SIG_MAX], hint[256];
    config_model_signature(&s->cfg, sig, sizeof sig);
    run_ckpt_diff_hint(f, &s->cfg, hint, sizeof hint);
    sc_err e = ckpt_check(f, sig, config_hash(&s->cfg), hint[0] ? hint : NULL);
    ssl_state_blob blobs[MAX_SECTIONS];
    int nb = ssl_state_blobs(s->tr, blobs, MAX_SECTIONS);
    for (int i = 0; i < nb && e == SC_OK; i++)
        e = ckpt_read_section(f, blobs[i].name, blobs[i].is_f32 ? CKPT_F32 : CKPT_I64, blobs[i].count, blobs[i].data);
    int64_t state[2] = {0, 0};
    if (e == SC_OK) e = ckpt_read_section(f, "train.state", CKPT_I64, 2, state);
    ckpt_close(f);
    if (e != SC_OK) return e;
    *steps_done = (long)state[0];
    ssl_set_step_count(s->tr, *steps_done);
    return SC_OK;
}

/* ---- progress --------------------------------------------------------------------------------------------- */

static void fmt_duration(double s, char *buf, size_t n) {
    if (!isfinite(s) || s < 0) { snprintf(buf, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
}

static void log_step(run_state *s, long T, const ssl_step_out *o, double img_s, double elapsed, long done_this_run,
                     const graddiag_result *gd) {
    if (comm_rank() != 0) return;
    int nw = ssl_nwidths(s->tr);
    double epoch = (double)(T + 1) / (double)s->spe_data;
    char eta[32];
    fmt_duration(elapsed / (double)done_this_run * (double)(s->total - T - 1), eta, sizeof eta);
    char widths[256];
    int len = 0;
    for (int i = 0; i < nw && len < 200; i++) {
        if (i > 0 && !o->slim) len += snprintf(widths + len, sizeof widths - len, " %.2f:-", ssl_width(s->tr, i));
        else len += snprintf(widths + len, sizeof widths - len, " %.2f:%.4f", ssl_width(s->tr, i), o->l_con[i]);
    }
    printf("epoch %.2f step %ld/%ld eta %s | %.1f img/s | lr %.4g | loss %.4f |%s%s\n", epoch, T + 1, s->total, eta,
           img_s, o->lr, o->loss, widths, o->slim || nw == 1 ? "" : " (slow start: full width only)");
    fflush(stdout);
    if (s->mx) {
        metrics_begin(s->mx);
        metrics_int(s->mx, "step", T + 1);
        metrics_num(s->mx, "epoch", epoch);
        metrics_num(s->mx, "lr", o->lr);
        metrics_num(s->mx, "loss", o->loss);
        char key[48];
        for (int i = 0; i < nw; i++) {
            bool trained = i == 0 || o->slim; /* widths not trained this step are logged as null */
            snprintf(key, sizeof key, "loss_con_w%g", ssl_width(s->tr, i));
            metrics_num(s->mx, key, trained ? o->l_con[i] : NAN);
            if (i == 0) continue; /* the full width has no distillation term */
            snprintf(key, sizeof key, "loss_kd_w%g", ssl_width(s->tr, i));
            metrics_num(s->mx, key, trained ? o->l_kd[i] : NAN);
        }
        metrics_int(s->mx, "slim", o->slim);
        metrics_num(s->mx, "momentum", o->momentum);
        metrics_num(s->mx, "grad_norm", o->grad_norm);
        metrics_num(s->mx, "img_s", img_s);
        metrics_num(s->mx, "elapsed_s", elapsed);
        if (gd) { /* docs/method.md §8.1: R1 = N(1)/N(w_min), R2 = sqrt(N(1)^2 - N(w_min)^2)/N(w_min), N(w) per width */
            metrics_num(s->mx, "r1", gd->R1);
            metrics_num(s->mx, "r2", gd->R2_approx);
            metrics_num(s->mx, "r2_exact", gd->R2_exact);
            metrics_num(s->mx, "sv1_last", s->sv[0]);
            metrics_num(s->mx, "sv2_last", s->sv[1]);
            metrics_num(s->mx, "gdir_cos", s->gcos);
            for (int i = 0; i < gd->nwidths; i++) {
                snprintf(key, sizeof key, "gn_w%g", gd->widths[i]);
                metrics_num(s->mx, key, gd->N[i]);
            }
        }
        if (metrics_end(s->mx) != SC_OK) sc_warn("metrics: %s", sc_last_error());
    }
}

/* docs/method.md §8.1 on the global-mean gradient of the query encoder (and MoCo v3 predictor), read after the update
 * and before the next zeroing (as the reference does); rank 0 only (every rank holds the same averaged gradient).
 * Runs between steps, every eval.grad_diag_every steps, so its small allocations are not in the step. false: not
 * measured. §8.2: the last projection layer's singular values, and its snapshot appended for `slimclr graddir`. */
static bool grad_diag(run_state *s, long T, graddiag_result *r) {
    if (comm_rank() != 0 || !s->mx) return false;
    model *m = ssl_query_model(s->tr), *ms[2] = {m, ssl_predictor_model(s->tr)};
    if (model_nwidths(m) < 2) return false; /* R1/R2 compare the full width with the smallest one */
    if (graddiag_compute_models(ms, ms[1] ? 2 : 1, r) != SC_OK) {
        sc_warn("grad_diag at step %ld: %s", T + 1, sc_last_error());
        graddiag_free(r);
        return false;
    }
    /* docs/method.md §8.2: the last projection layer = the last 2-D weight of the head */
    s->sv[0] = s->sv[1] = s->gcos = NAN;
    for (int i = model_ntensors(m) - 1; i >= 0; i--) {
        const param_info *p = model_tensor(m, i);
        if (p->kind != PARAM_WEIGHT || p->ndim != 2 || strncmp(p->name, "fc.", 3) != 0) continue;
        if (graddiag_top2_sv(p->shape[0], p->shape[1], model_grads(m) + p->offset, p->shape[1], s->sv) != SC_OK)
            sc_warn("grad_diag singular values at step %ld: %s", T + 1, sc_last_error());
        char path[CONFIG_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/grad_direction.bin", s->cfg.run.dir);
        if ((!s->gdir && graddir_open(path, &s->gdir) != SC_OK) ||
            graddir_record(s->gdir, T + 1, p->shape[0], p->shape[1], model_grads(m) + p->offset, p->shape[1],
                           &s->gcos) != SC_OK)
            sc_warn("grad_diag snapshot at step %ld: %s", T + 1, sc_last_error());
        break;
    }
    return true;
}

/* B2 summary (rank 0's values): the steps of this run after its first (warm-up). Printed and logged as one
 * metrics line with "summary":1 (it has no "step" key, so resume truncation and per-step readers skip it). */
static void log_summary(run_state *s, int threads, long n, double step_s, double data_s) {
    ssl_comm_stats cs;
    ssl_bucket_stats(s->tr, &cs);
    balance_result bal;
    balance_reduce(&s->bal, &bal);
    if (comm_rank() != 0 || n <= 0 || cs.steps <= 0) return;
    step_s /= (double)n;
    data_s /= (double)n;
    double img_s = s->cfg.optim.batch / step_s;
    /* what is left of the step when data, the exposed gradient wait and the blocking collectives are taken out */
    double compute_s = step_s - data_s - cs.exposed_s - cs.syncbn_s - cs.gather_s;
    int P = comm_size();
    printf("summary over %ld step(s) after the first (rank 0 of %d, %d thread(s) each): %.3f s/step, %.2f img/s, "
           "compute %.3f s, data %.3f s\n", n, P, threads, step_s, img_s, compute_s, data_s);
    printf("  gradient allreduce: %.2f MB/step in %d bucket(s), comm %.3f s, exposed %.3f s, overlap %.1f%%\n",
           cs.bytes / 1e6, cs.nbuckets, cs.comm_s, cs.exposed_s, 100.0 * cs.overlap);
    printf("  syncbn: %.3f s/step exposed, %.3f s in flight, overlap %.1f%%, %.0f allreduce(s) of %.1f kB in all (%s)\n",
           cs.syncbn_s, cs.syncbn_inflight_s, 100.0 * cs.syncbn_overlap, cs.syncbn_calls, cs.syncbn_bytes / 1e3,
           ssl_wavefront(s->tr) ? "wavefront" : "sequential: blocking");
    printf("  gathers: %.3f s/step\n", cs.gather_s);
    if (bal.steps > 0)
        printf("  balance: compute per step min/avg/max over ranks %.3f / %.3f / %.3f s; waits %.3f s/step (avg over "
               "ranks), %.3f s of it imbalance (the slowest rank's compute above the mean: no schedule hides it); main "
               "thread off-CPU min/avg/max %.1f / %.1f / %.1f ms/step\n", bal.compute_min, bal.compute_avg, bal.compute_max,
               bal.waited, bal.excess, 1e3 * bal.offcpu_min, 1e3 * bal.offcpu_avg, 1e3 * bal.offcpu_max);
    printf("  kernels: %s\n", blas_kernels());
    fflush(stdout);
    if (!s->mx) return;
    metrics_begin(s->mx);
    metrics_int(s->mx, "summary", 1);
    metrics_int(s->mx, "steps", n);
    metrics_int(s->mx, "ranks", P);
    metrics_int(s->mx, "threads", threads);
    metrics_int(s->mx, "batch", s->cfg.optim.batch);
    metrics_int(s->mx, "buckets", cs.nbuckets);
    /* the balance keys last: left out when no step was recorded */
    const struct { const char *key; double v; } num[] = {
        {"step_s", step_s}, {"img_s", img_s}, {"compute_s", compute_s}, {"data_s", data_s},
        {"allreduce_bytes", cs.bytes}, {"comm_s", cs.comm_s}, {"exposed_s", cs.exposed_s}, {"overlap", cs.overlap},
        {"syncbn_s", cs.syncbn_s}, {"syncbn_calls", cs.syncbn_calls}, {"syncbn_bytes", cs.syncbn_bytes},
        {"syncbn_inflight_s", cs.syncbn_inflight_s}, {"syncbn_overlap", cs.syncbn_overlap}, {"gather_s", cs.gather_s},
        {"compute_min_s", bal.compute_min}, {"compute_max_s", bal.compute_max}, {"imbalance_s", bal.excess},
        {"waited_s", bal.waited}, {"offcpu_s", bal.offcpu_avg}, {"offcpu_max_s", bal.offcpu_max}};
    size_t nnum = sizeof num / sizeof *num - (bal.steps > 0 ? 0 : 6);
    for (size_t i = 0; i < nnum; i++) metrics_num(s->mx, num[i].key, num[i].v);
    if (metrics_end(s->mx) != SC_OK) sc_warn("metrics: %s", sc_last_error());
}

/* ---- set-up ----------------------------------------------------------------------------------------------- */

static sc_err open_data(run_state *s) {
    const sc_config *c = &s->cfg;
    const char *fmt = config_dataset_name(c->data.dataset);
    if (c->data.dataset == CFG_DATA_SHARDS) fmt = "shard";
    SC_TRY(data_open(fmt, c->data.dir, "train", 0, &s->set));
    if (s->set.c != c->model.in_channels)
        return sc_errorf(SC_ERR_CONFIG, "data: %s has %d channel(s), model.in_channels is %d", s->set.source, s->set.c,
                         c->model.in_channels);
    if (c->data.subset > 0 && c->data.subset < s->set.n) s->set.n = c->data.subset;
    if (c->method.name == CFG_METHOD_SUPERVISED && s->set.nclasses < 2)
        return sc_errorf(SC_ERR_CONFIG, "method.name: supervised needs labelled data: %s has %d class(es)",
                         s->set.source, s->set.nclasses);
    if (c->method.name == CFG_METHOD_SUPERVISED && s->set.nclasses != c->method.dim)
        return sc_errorf(SC_ERR_CONFIG, "method.dim: %d classifier outputs, but %s has %d classes (supervised)",
                         c->method.dim, s->set.source, s->set.nclasses);
    if (s->set.n < c->optim.batch)
        return sc_errorf(SC_ERR_CONFIG, "optim.batch: %d is larger than the %lld training images of %s", c->optim.batch,
                         (long long)s->set.n, s->set.source);
    return SC_OK;
}

static sc_err make_loader(run_state *s) {
    const sc_config *c = &s->cfg;
    static const char *aug_names[] = {"fmnist", "mocov2", "mocov3", "simclr", "none"};
    loader_cfg lc;
    memset(&lc, 0, sizeof lc);
    lc.set = &s->set;
    lc.nviews = c->method.name == CFG_METHOD_SUPERVISED ? 1 : 2; /* supervised: one view with its label */
    for (int v = 0; v < lc.nviews; v++) {
        aug_cfg *a = &lc.view[v];
        SC_TRY(aug_preset(aug_names[c->data.augment], v, c->model.in_channels, c->model.image_size,
                          c->model.image_size, a));
        if (c->data.augment != CFG_AUG_NONE) {
            a->scale_min = (float)c->data.crop_scale.v[0];
            a->scale_max = (float)c->data.crop_scale.v[1];
        }
        if (c->data.augment == CFG_AUG_FMNIST) a->blur_p = c->data.blur ? 0.5f : 0.0f;
        for (int ch = 0; ch < c->model.in_channels && ch < 3; ch++) {
            a->mean[ch] = (float)c->data.mean.v[ch < c->data.mean.n ? ch : 0];
            a->std[ch] = (float)c->data.std.v[ch < c->data.std.n ? ch : 0];
        }
        SC_TRY(aug_check(a, s->set.c, s->set.h, s->set.w));
    }
    lc.global_batch = c->optim.batch / c->optim.accum;
    lc.rank = comm_rank();
    lc.nranks = comm_size();
    lc.workers = c->data.workers;
    lc.seed = (uint64_t)c->run.seed;
    return loader_create(&lc, &s->ld);
}

static void free_run(run_state *s) {
    mon_knn_free(s->knn);
    graddir_close(s->gdir);
    if (s->tr) ssl_free(s->tr);
    if (s->ld) loader_free(s->ld);
    if (s->set.labels) data_set_free(&s->set);
    metrics_close(s->mx);
    balance_free(&s->bal);
}

/* COLLECTIVE: the kNN monitor at the end of an epoch (docs/method.md §8.3), in the progress output and as a metrics line of
 * its own ("knn_step": not a step line, so per-step readers skip it). A failure is reported, not fatal. */
static void knn_report(run_state *s, long T) {
    double top1[MODEL_MAX_WIDTHS], secs = 0;
    model *q = ssl_query_model(s->tr);
    if (mon_knn_run(s->knn, q, top1, &secs) != SC_OK) {
        sc_warn("kNN monitor at step %ld: %s", T + 1, sc_last_error());
        return;
    }
    if (comm_rank() != 0) return;
    int nw = model_nwidths(q);
    printf("kNN monitor (k %d, T %g) after epoch %ld:", s->cfg.eval.knn_k, s->cfg.eval.knn_t, (T + 1) / s->spe_data);
    for (int i = 0; i < nw; i++) printf(" %.2f:%.2f%%", model_width(q, i), 100.0 * top1[i]);
    printf(" (%.1f s)\n", secs);
    fflush(stdout);
    if (!s->mx) return;
    metrics_begin(s->mx);
    metrics_int(s->mx, "knn_step", T + 1);
    metrics_num(s->mx, "epoch", (double)(T + 1) / (double)s->spe_data);
    char key[48];
    for (int i = 0; i < nw; i++) {
        snprintf(key, sizeof key, "knn_top1_w%g", model_width(q, i));
        metrics_num(s->mx, key, top1[i]);
    }
    metrics_num(s->mx, "knn_seconds", secs);
    if (metrics_end(s->mx) != SC_OK) sc_warn("metrics: %s", sc_last_error());
}

/* a start that failed before its first step leaves no run behind (the corrected `train` reuses the directory) */
static int fail_start(run_state *s) {
    free_run(s);
    if (comm_rank() == 0) run_dir_abandon(&s->cfg);
    return 2;
}

/* Rank 0, inside a SLURM allocation: what runs against what SLURM granted (a job file that starts half the tasks,
 * or more ranks than tasks, would otherwise go unnoticed). local: ranks on rank 0's node. */
static void slurm_check(int P, int local, int threads) {
    if (!getenv("SLURM_JOB_ID")) return;
    const char *nt = getenv("SLURM_NTASKS"), *ppn = getenv("SLURM_NTASKS_PER_NODE"), *cpt = getenv("SLURM_CPUS_PER_TASK");
    if (nt && atoi(nt) > 0 && atoi(nt) != P)
        fprintf(stderr, "slimclr: warning: SLURM granted %s task(s) (SLURM_NTASKS) but %d rank(s) run: %s; start one "
                        "rank per task (mpirun -np $SLURM_NTASKS, or srun)\n",
                nt, P, atoi(nt) > P ? "part of the allocation stays idle" : "ranks share the cores of fewer tasks");
    char *end = NULL;
    long v = ppn ? strtol(ppn, &end, 10) : 0;
    if (ppn && end != ppn && *end == 0 && v > 0 && v != local)
        fprintf(stderr, "slimclr: warning: SLURM granted %ld task(s) per node (SLURM_NTASKS_PER_NODE) but %d rank(s) "
                        "run on this node\n", v, local);
    v = cpt ? strtol(cpt, &end, 10) : 0;
    if (cpt && end != cpt && *end == 0 && v > 0 && v != threads)
        fprintf(stderr, "slimclr: warning: SLURM granted %ld CPU(s) per task (SLURM_CPUS_PER_TASK) but each rank runs "
                        "%d thread(s) (run.threads)\n", v, threads);
}

/* COLLECTIVE: the estimate of one rank's memory against what the rank may use on its node (ssl_memory_allowance);
 * refuses with both numbers on the lowest failing rank. SLIMCLR_MEM_CHECK=off skips it. Non-zero: refused. */
static int memory_check(const sc_config *c, int P, int local) {
    const char *off = getenv("SLIMCLR_MEM_CHECK");
    if (off && (!strcmp(off, "off") || !strcmp(off, "0"))) return 0;
    model_cfg mc = ssl_encoder_cfg(c);
    sc_err e = SC_OK;
    model *q = model_create(&mc, &e);
    double need = q ? ssl_memory_estimate(c, q, P, NULL) : 0;
    if (q) model_free(q);
    char why[1400];
    double may = ssl_memory_allowance(local, why, sizeof why);
    int bad = may > 0 && need > may;
    int r = comm_rank(), first = P - comm_allreduce_max_int(bad ? P - r : 0);
    char a[32], b[32];
    snprintf(a, sizeof a, need >= 1e9 ? "%.2f GB" : "%.1f MB", need >= 1e9 ? need / 1e9 : need / 1e6);
    snprintf(b, sizeof b, may >= 1e9 ? "%.2f GB" : "%.1f MB", may >= 1e9 ? may / 1e9 : may / 1e6);
    if (bad && r == first)
        fprintf(stderr,
                "slimclr: error: memory: this run needs about %s per rank (slimclr info CONFIG --ranks %d "
                "itemizes it), but a rank may use %s here (%s). Lower optim.batch (or raise optim.accum), "
                "method.queue or model.base, or run on more nodes; for experts: SLIMCLR_MEM_PER_RANK=SIZE sets what a "
                "rank may use, SLIMCLR_MEM_CHECK=off skips this check\n",
                a, P, b, why);
    return first < P;
}

/* every rank returns the same code: a local failure is shared with an allreduce before anyone proceeds */
static int agree(sc_err e, const char *what) {
    if (e != SC_OK) fprintf(stderr, "slimclr: error (rank %d): %s: %s\n", comm_rank(), what, sc_last_error());
    return comm_allreduce_max_int(e != SC_OK);
}

/* The run directory and the checkpoint to resume from (rank 0 decides, every rank reads the file).
 * 0, or the exit code every rank returns. */
static int prepare_dir(run_state *s, const train_args *a, char *resume_from, size_t cap) {
    int code = 0;
    if (comm_rank() == 0) {
        sc_err e = run_dir_prepare(&s->cfg, a->resume, a->resume_path, resume_from, cap);
        if (e != SC_OK) {
            fprintf(stderr, "slimclr: error: %s\n", sc_last_error());
            run_dir_abandon(&s->cfg);
            code = e == SC_ERR_CONFIG || e == SC_ERR_ARG || e == SC_ERR_MISMATCH || e == SC_ERR_FORMAT ? 2 : 1;
        }
    }
    comm_bcast(&code, sizeof code, 0);
    if (code) return code;
    comm_bcast(resume_from, cap, 0);
    snprintf(s->ckpt_dir, sizeof s->ckpt_dir, "%s/checkpoints", s->cfg.run.dir);
    return 0;
}

/* COLLECTIVE: the loader, the trainer, the kNN monitor and the resumed state (*start: steps done).
 * Non-zero: a rank failed (every rank agrees). */
static int create_trainer(run_state *s, const char *resume_from, long *start) {
    const sc_config *c = &s->cfg;
    /* s->set.n already honours data.subset */
    s->spe_data = config_steps_per_epoch(c, s->set.n);
    s->total = config_total_steps(c, s->set.n);
    s->spe_sched = config_sched_steps_per_epoch(c, s->set.n);
    s->micro = c->optim.batch / c->optim.accum / comm_size();
    if (agree(make_loader(s), "data loader")) return 1;
    sc_err e = ssl_create(c, s->micro, s->spe_sched, s->total, &s->tr);
    if (agree(e, "model")) return 1;
    if (c->eval.knn_every_epochs > 0 &&
        agree(mon_knn_create(c, ssl_query_model(s->tr), &s->knn), "kNN monitor (eval.knn_every_epochs)"))
        return 1;
    *start = 0;
    if (resume_from[0]) {
        e = load_checkpoint(s, resume_from, start);
        if (agree(e, "resume")) return 1;
        if (comm_rank() == 0) printf("resumed from %s at step %ld\n", resume_from, *start);
        snprintf(s->last_ckpt, sizeof s->last_ckpt, "%s", resume_from);
    }
    return 0;
}

/* Rank 0: metrics.jsonl (continued after the resumed step) and the run's banner. */
static void open_metrics(run_state *s, long start) {
    const sc_config *c = &s->cfg;
    char mpath[CONFIG_PATH_MAX + 32];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", c->run.dir);
    /* each step is logged once: lines past the resumed checkpoint (written before a crash) are dropped */
    long dropped = 0;
    if (c->run.metrics && run_metrics_truncate(mpath, start, &dropped) != SC_OK) sc_warn("metrics: %s", sc_last_error());
    if (dropped) printf("metrics.jsonl: dropped %ld line(s) logged after step %ld\n", dropped, start);
    if (c->run.metrics && metrics_open(mpath, &s->mx) != SC_OK) sc_warn("metrics: %s", sc_last_error());
    printf("run %s: %s, %d rank(s), global batch %d (%d per rank x %d micro-batches), %ld steps "
           "(%ld per epoch), model %.2f MB of state per rank\n",
           c->run.dir, config_method_name(c->method.name), comm_size(), c->optim.batch, s->micro, c->optim.accum,
           s->total, s->spe_data, (double)ssl_memory_bytes(s->tr) / 1e6);
    fflush(stdout);
}

/* the clocks of the training loop */
typedef struct {
    long start;                   /* the first step of this run (the resumed one) */
    double t_start, t_last_log, t_last_ckpt;
    long since_log;               /* steps since the last logged one */
    long sum_n;                   /* B2 summary: steps after the first of this run, their wall and data time */
    double sum_step, sum_data;
} loop_clock;

/* COLLECTIVE: a stop signal on some rank: every rank checkpoints at this same step boundary. The exit code. */
static int stop_on_signal(run_state *s, long T) {
    if (comm_rank() == 0) printf("signal received: checkpointing at step %ld and stopping\n", T);
    /* a failed checkpoint ends the run here: no second try at the loop's end, no "done", no marker */
    if (save_checkpoint(s, T) != SC_OK) return 1;
    if (comm_rank() == 0) run_dir_mark_stopped(s->cfg.run.dir, T);
    return 0;
}

/* COLLECTIVE: optimizer step T: its micro-batches, the update, then the log line, the checkpoint cadence, the kNN
 * monitor. 0: go on; otherwise the run's exit code (1: data or checkpoint failure, 3: a non-finite loss). */
static int train_step(run_state *s, long T, loop_clock *k) {
    const sc_config *c = &s->cfg;
    int rank = comm_rank();
    double t_step = sc_now(), t_data = 0, waited0 = ssl_waited_s(s->tr);
    bool timed = T > k->start; /* the first step of a run is warm-up */
    if (timed) balance_begin(&s->bal);
    ssl_step_begin(s->tr, T);
    for (int m = 0; m < c->optim.accum; m++) {
        loader_batch b;
        double t0 = sc_now();
        trace_begin("data wait");
        sc_err e = loader_next(s->ld, &b);
        trace_end();
        t_data += sc_now() - t0;
        comm_timer_add(s->ph_data, sc_now() - t0);
        if (agree(e, "data")) return 1;
        if (c->method.name == CFG_METHOD_SUPERVISED) ssl_set_labels(s->tr, b.labels);
        ssl_micro(s->tr, b.x[0], b.x[1], b.b);
    }
    ssl_step_out o;
    ssl_step_end(s->tr, &o);
    if (!o.finite) {
        if (rank == 0)
            fprintf(stderr, "slimclr: error: non-finite loss or gradient at step %ld (loss %g); every rank stopped "
                            "before updating. Last good checkpoint: %s\n",
                    T + 1, o.loss, s->last_ckpt[0] ? s->last_ckpt : "(none yet)");
        return 3;
    }
    if (timed) {
        balance_end(&s->bal, ssl_waited_s(s->tr) - waited0); /* a slow loader delays the others too: data counts as work */
        k->sum_step += sc_now() - t_step;
        k->sum_data += t_data;
        k->sum_n++;
    }
    k->since_log++;
    bool last = T + 1 == s->total;
    /* a diagnostics step is always logged, so r1/r2 share the step's one metrics line */
    bool diag = c->eval.grad_diag_every > 0 && ((T + 1) % c->eval.grad_diag_every == 0 || last);
    graddiag_result gd;
    bool have_gd = diag && grad_diag(s, T, &gd);
    if ((c->run.log_every > 0 && ((T + 1) % c->run.log_every == 0 || last || T == k->start)) || diag) {
        double now = sc_now();
        double img_s = (double)k->since_log * c->optim.batch / (now - k->t_last_log);
        log_step(s, T, &o, img_s, now - k->t_start, T + 1 - k->start, have_gd ? &gd : NULL);
        k->t_last_log = now;
        k->since_log = 0;
    }
    if (have_gd) graddiag_free(&gd);
    /* the cadence: steps, or minutes (decided by rank 0's clock and shared) */
    int want = c->checkpoint.every_steps > 0 && (T + 1) % c->checkpoint.every_steps == 0;
    if (c->checkpoint.every_minutes > 0 && rank == 0 && sc_now() - k->t_last_ckpt >= 60.0 * c->checkpoint.every_minutes)
        want = 1;
    if (c->checkpoint.every_minutes > 0) want = comm_allreduce_max_int(want);
    if (want && !last) {
        if (save_checkpoint(s, T + 1) != SC_OK) return 1;
        k->t_last_ckpt = sc_now();
    }
    if (s->knn && (T + 1) % s->spe_data == 0 && ((T + 1) / s->spe_data) % c->eval.knn_every_epochs == 0)
        knn_report(s, T);
    /* accumulation may leave micro-batches at the end of a data epoch: start the next epoch cleanly */
    long micro_per_epoch = s->spe_data * c->optim.accum;
    if (c->optim.accum > 1 && (T + 1) % s->spe_data == 0 && micro_per_epoch != loader_steps_per_epoch(s->ld))
        loader_seek(s->ld, (T + 1) / s->spe_data, 0);
    return 0;
}

int train_run(const train_args *a) {
    run_state s;
    memset(&s, 0, sizeof s);
    int rank = comm_rank(), P = comm_size();
    sc_err e = config_load(a->config_path, a->sets, a->nsets, &s.cfg);
    if (e == SC_OK) e = config_check_ranks(&s.cfg, P);
    if (e != SC_OK) {
        if (rank == 0) fprintf(stderr, "slimclr: error: %s\n", sc_last_error());
        return 2;
    }
    sc_config *c = &s.cfg;
    int nthreads = affinity_setup(c->run.threads, rank == 0 ? stdout : NULL);
    conv_set_algo_config((conv_algo)c->run.conv_algo);
    signals_install();

    /* before anything is created: a run that cannot fit is refused here, not by the OOM killer mid-step */
    int local = comm_local_size();
    if (memory_check(c, P, local)) return 2;
    if (rank == 0) slurm_check(P, local, nthreads);

    /* the data first: a dataset the config cannot train on stops the run before a run directory exists */
    if (agree(open_data(&s), "data")) { free_run(&s); return 2; }
    char resume_from[CONFIG_PATH_MAX + 64] = "";
    int code = prepare_dir(&s, a, resume_from, sizeof resume_from);
    if (code) { free_run(&s); return code; }
    long start = 0;
    if (create_trainer(&s, resume_from, &start)) return fail_start(&s);
    if (rank == 0) open_metrics(&s, start);
    if (c->run.trace) trace_enable(1 << 20);
    s.ph_data = comm_timer_id("data wait");

    /* the loader continues the global order exactly where the checkpoint stopped */
    loader_seek(s.ld, start / s.spe_data, (start % s.spe_data) * c->optim.accum);
    /* room for this run's timed steps (capped: a longer run's balance line covers its first 2^20) */
    long timed_steps = s.total - start - 1;
    if (balance_init(&s.bal, timed_steps < (1L << 20) ? timed_steps : (1L << 20)) != SC_OK)
        sc_warn("%s: the summary has no balance line", sc_last_error());
    loop_clock k = {.start = start, .t_start = sc_now()};
    k.t_last_log = k.t_last_ckpt = k.t_start;
    long T = start;
    int rc = 0;
    bool ended = false;  /* by a signal or a failure: no final checkpoint */
    for (; T < s.total; T++) {
        if (comm_allreduce_max_int(signals_pending() != 0)) { rc = stop_on_signal(&s, T); ended = true; break; }
        if ((rc = train_step(&s, T, &k)) != 0) { ended = true; break; }
    }
    if (!ended) {
        if (save_checkpoint(&s, T) != SC_OK) rc = 1;
        else if (rank == 0) printf("done: %ld steps in %.1f s; checkpoint %s\n", T - start, sc_now() - k.t_start, s.last_ckpt);
    }
    if (rc == 0) log_summary(&s, nthreads, k.sum_n, k.sum_step, k.sum_data);
    if (rank == 0) printf("phase times over %ld steps (seconds per rank):\n", T - start);
    comm_timers_report(rank == 0 ? stdout : NULL);
    if (c->run.trace) {
        if (trace_write(c->run.dir) != SC_OK) sc_warn("trace: %s", sc_last_error());
        trace_disable();
    }
    free_run(&s);
    return rc;
}
