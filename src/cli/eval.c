/* cli/eval: `slimclr eval [CONFIG.yaml] --checkpoint PATH | --random-init` (docs/method.md "Linear evaluation"):
 * frozen eval-mode GAP features of every width (rows split contiguously over the ranks), the switchable (or
 * slimmable) SGD linear probe of all widths, and the ScaLAPACK ridge probe of each width.
 * eval.protocol cached: the train and test features of one unaugmented view, extracted once and cached.
 * eval.protocol reference (the paper's): the test features cached, the training features re-extracted every epoch
 * from new random-resized-crop + flip views; no ridge probe (it needs one fixed training set).
 * The table goes to stdout and to <run.dir>/eval/probe[-TAG].csv|md. */
#include "cli/cli.h"
#include "comm/affinity.h"
#include "comm/comm.h"
#include "core/error.h"
#include "core/timer.h"
#include "eval/features.h"
#include "eval/probe.h"
#include "eval/ridge.h"
#include "io/checkpoint.h"
#include "nn/conv.h"
#include "evalcli.h"
#include "ssl/run.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    float width;
    int dim;
    double params, mflops;
    double top1, top5, loss, ridge_top1, ridge_lambda;
    double feat_s, probe_s, ridge_s;
    double best_top1;
    int best_epoch;
} eval_row;

static void write_tables(FILE *out, FILE *csv, FILE *md, const eval_row *r, int nw, const char *probe_name) {
    /* best_top1/best_epoch last, so that readers of columns by position keep working; no ridge probe = nan */
    if (csv) fprintf(csv, "width,features,params_M,mflops_per_image,top1,top5,probe_loss,ridge_top1,ridge_lambda,"
                          "feature_s,probe_s,ridge_s,best_top1,best_epoch\n");
    if (md) {
        fprintf(md, "| width | features | params (M) | MFLOPs/img | top-1 (%s, last epoch) | top-5 | probe loss | "
                    "ridge top-1 | ridge λ | features s | probe s | ridge s | best top-1 (test-selected) | "
                    "best epoch |\n", probe_name);
        fprintf(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    }
    fprintf(out, "%-6s %8s %10s %10s %8s %8s %10s %11s %8s %10s %8s %8s %9s %7s\n", "width", "features", "params M",
            "MFLOPs/img", "top-1", "top-5", "probe loss", "ridge top-1", "lambda", "features s", "probe s", "ridge s",
            "best top-1", "(epoch)");
    for (int i = 0; i < nw; i++) {
        const eval_row *x = &r[i];
        char rt[32] = "-", rl[32] = "-"; /* no ridge probe with the reference protocol */
        if (!isnan(x->ridge_top1)) snprintf(rt, sizeof rt, "%.2f%%", 100 * x->ridge_top1);
        if (!isnan(x->ridge_lambda)) snprintf(rl, sizeof rl, "%.0e", x->ridge_lambda);
        fprintf(out, "%-6.3g %8d %10.3f %10.1f %7.2f%% %7.2f%% %10.4f %11s %8s %10.1f %8.1f %8.1f %8.2f%% %7d\n",
                x->width, x->dim, x->params / 1e6, x->mflops, 100 * x->top1, 100 * x->top5, x->loss, rt, rl,
                x->feat_s, x->probe_s, x->ridge_s, 100 * x->best_top1, x->best_epoch);
        if (csv)
            fprintf(csv, "%g,%d,%.6f,%.3f,%.6f,%.6f,%.6f,%.6f,%g,%.3f,%.3f,%.3f,%.6f,%d\n", x->width, x->dim,
                    x->params / 1e6, x->mflops, x->top1, x->top5, x->loss, x->ridge_top1, x->ridge_lambda, x->feat_s,
                    x->probe_s, x->ridge_s, x->best_top1, x->best_epoch);
        if (md)
            fprintf(md, "| %g | %d | %.3f | %.1f | %.2f | %.2f | %.4f | %.2f | %g | %.1f | %.1f | %.1f | %.2f | %d |\n",
                    x->width, x->dim, x->params / 1e6, x->mflops, 100 * x->top1, 100 * x->top5, x->loss,
                    100 * x->ridge_top1, x->ridge_lambda, x->feat_s, x->probe_s, x->ridge_s, 100 * x->best_top1,
                    x->best_epoch);
    }
}

/* rank 0: <run.dir>/eval/probe[-tag].csv and .md */
static sc_err save_tables(const sc_config *cfg, const char *tag, const evcli_model *m, const eval_row *rows, int nw,
                          int64_t ntr, int64_t nte, const char *probe_name, char *csv_path, size_t n) {
    char dir[CONFIG_PATH_MAX + 16], md_path[CONFIG_PATH_MAX + 96];
    snprintf(dir, sizeof dir, "%s/eval", cfg->run.dir);
    SC_TRY(run_mkdirs(dir));
    snprintf(csv_path, n, "%s/probe%s%s.csv", dir, tag ? "-" : "", tag ? tag : "");
    snprintf(md_path, sizeof md_path, "%s/probe%s%s.md", dir, tag ? "-" : "", tag ? tag : "");
    /* temp files + rename, as checkpoints: a full disk leaves the earlier tables as they were */
    char csv_tmp[CONFIG_PATH_MAX + 112], md_tmp[CONFIG_PATH_MAX + 112];
    snprintf(csv_tmp, sizeof csv_tmp, "%s.tmp", csv_path);
    snprintf(md_tmp, sizeof md_tmp, "%s.tmp", md_path);
    FILE *csv = fopen(csv_tmp, "w"), *md = fopen(md_tmp, "w");
    FILE *null = fopen("/dev/null", "w");
    if (!csv || !md || !null) {
        int err = errno;
        if (csv) fclose(csv);
        if (md) fclose(md);
        if (null) fclose(null);
        unlink(csv_tmp);
        unlink(md_tmp);
        return sc_errorf(SC_ERR_IO, "cannot write %s / %s: %s", csv_path, md_path, strerror(err));
    }
    const bool ref = cfg->eval.protocol == CFG_PROTO_REFERENCE;
    fprintf(md, "# Linear evaluation per width\n\nmodel: %s; source: %s (step %llu)%s%s\n\n"
                "protocol %s: train %lld / test %lld images, frozen eval-mode GAP features (%s), %s; SGD probe: %s, "
                "%d epochs, lr %g %s (time: all widths together); ridge: %s\n\n",
            config_method_name(cfg->method.name), m->source, (unsigned long long)m->step, m->info[0] ? "; " : "",
            m->info, ref ? "reference" : "cached", (long long)ntr, (long long)nte,
            ref ? "training views re-drawn every epoch: random resized crop + flip" : "one unaugmented view",
            cfg->eval.probe_standardize ? "standardised" : "raw", probe_name, cfg->eval.probe_epochs,
            cfg->eval.probe_lr, cfg->eval.probe_schedule == CFG_SCHED_STEP ? "step" : "cosine",
            ref ? "not run (needs one fixed training set)" : "λ chosen on a 10% hold-out");
    write_tables(null, csv, md, rows, nw, probe_name);
    int err = 0;
    if (fflush(csv) != 0 || ferror(csv) || fsync(fileno(csv)) != 0) err = errno ? errno : EIO;
    if (!err && (fflush(md) != 0 || ferror(md) || fsync(fileno(md)) != 0)) err = errno ? errno : EIO;
    if (fclose(csv) != 0 && !err) err = errno;
    if (fclose(md) != 0 && !err) err = errno;
    fclose(null);
    if (!err && rename(csv_tmp, csv_path) != 0) err = errno;
    if (!err && rename(md_tmp, md_path) != 0) err = errno;
    if (err) {
        unlink(csv_tmp);
        unlink(md_tmp);
        return sc_errorf(SC_ERR_IO, "writing %s / %s failed: %s (the previous tables are untouched)", csv_path,
                         md_path, strerror(err));
    }
    return SC_OK;
}

/* COLLECTIVE. `eval --classifier`: a supervised checkpoint's own classifier (the encoder with its head), top-1 per
 * width on the test split; table on stdout and <run.dir>/eval/classifier[-TAG].csv. */
static int eval_classifier(const evcli_model *m, const char *ckpt, const char *tag, const data_set *te, int64_t nte,
                           const aug_cfg *aug) {
    const sc_config *c = &m->cfg;
    sc_err e = SC_OK;
    if (c->method.name != CFG_METHOD_SUPERVISED)
        e = sc_errorf(SC_ERR_ARG, "--classifier needs a checkpoint of method.name supervised (this one is %s: its "
                      "head is a projection, not a classifier)", config_method_name(c->method.name));
    model *enc = e == SC_OK ? model_create(&m->enc, &e) : NULL;
    ckpt_file *f = NULL;
    if (e == SC_OK) e = ckpt_open(ckpt, &f);
    if (e == SC_OK) e = ckpt_read_section(f, "q.params", CKPT_F32, model_nparams(enc), model_params(enc));
    if (e == SC_OK) e = ckpt_read_section(f, "q.bufs", CKPT_F32, model_nbufs(enc), model_bufs(enc));
    if (f) ckpt_close(f);
    int code = evcli_agree("eval", "classifier", e);
    if (code) { if (enc) model_free(enc); return code; }
    int nw = model_nwidths(enc), wis[FEATURES_MAX_WIDTHS];
    for (int k = 0; k < nw; k++) wis[k] = k;
    double top1[FEATURES_MAX_WIDTHS], t0 = sc_now();
    e = features_classify(enc, te, nte, aug, features_batch(c), c->data.workers, nw, wis, top1);
    double secs = sc_now() - t0;
    if (!(code = evcli_agree("eval", "classifier", e)) && comm_rank() == 0) {
        char dir[CONFIG_PATH_MAX + 16], path[CONFIG_PATH_MAX + 96];
        snprintf(dir, sizeof dir, "%s/eval", c->run.dir);
        e = run_mkdirs(dir);
        snprintf(path, sizeof path, "%s/classifier%s%s.csv", dir, tag ? "-" : "", tag ? tag : "");
        FILE *csv = e == SC_OK ? fopen(path, "w") : NULL;
        printf("\nthe supervised network's own classifier, top-1 per width on %lld test images (%.1f s)\n",
               (long long)nte, secs);
        if (csv) fprintf(csv, "width,top1\n");
        for (int k = 0; k < nw; k++) {
            printf("width %-6g top-1 %6.2f%%\n", model_width(enc, k), 100 * top1[k]);
            if (csv) fprintf(csv, "%g,%.6f\n", model_width(enc, k), top1[k]);
        }
        if (!csv || fclose(csv) != 0) e = sc_errorf(SC_ERR_IO, "cannot write %s", path);
        else printf("written: %s\n", path);
    }
    model_free(enc);
    return code ? code : evcli_agree("eval", "tables", e);
}

static probe_opts probe_options(const sc_config *c) {
    probe_opts po = probe_opts_default();
    po.epochs = c->eval.probe_epochs;
    po.batch = c->eval.probe_batch;
    po.lr = (float)c->eval.probe_lr;
    po.wd = (float)c->eval.probe_wd;
    po.distill = c->eval.probe_distill;
    po.slim_linear = c->eval.probe == CFG_PROBE_SLIM;
    po.standardize = c->eval.probe_standardize;
    po.schedule = c->eval.probe_schedule == CFG_SCHED_STEP ? SCHED_STEP : SCHED_COSINE;
    po.nmilestones = c->eval.probe_milestones.n < PROBE_MAX_MILESTONES ? c->eval.probe_milestones.n
                                                                      : PROBE_MAX_MILESTONES;
    for (int i = 0; i < po.nmilestones; i++) po.milestones[i] = (int)c->eval.probe_milestones.v[i];
    po.eval_every = c->eval.probe_eval_every;
    po.seed = (uint64_t)c->run.seed;
    return po;
}

static probe_data probe_view(const features_set *f) {
    probe_data d = {.n = (int)f->n_local, .labels = f->labels};
    for (int k = 0; k < f->nwidths; k++) d.F[k] = f->F[k];
    return d;
}

/* COLLECTIVE. The reference protocol: every epoch, new random views of the training rows through the frozen
 * backbone, then one probe epoch on their features; evaluations every eval_every epochs and at the end (res: the
 * last and the best). feat_s[k]: this rank's forward time of width k over all epochs. */
static sc_err probe_reference(model *bb, const sc_config *c, const data_set *tr, int64_t ntr, const aug_cfg *taug,
                              int nw, const int *wis, const probe_shape *sh, const probe_data *dte,
                              const probe_opts *po, probe_result *res, double *feat_s) {
    memset(res, 0, sizeof *res);
    probe *p = NULL;
    SC_TRY(probe_create(sh, po, ntr, &p));
    sc_err e = SC_OK;
    for (int ep = 0; ep < po->epochs && e == SC_OK; ep++) {
        features_set f;
        e = features_extract_epoch(bb, tr, ntr, taug, (uint64_t)c->run.seed, ep, features_batch(c), c->data.workers,
                                   nw, wis, &f);
        if (comm_allreduce_max_int(e != SC_OK)) { /* the probe's collectives must not start on a failed rank */
            if (e == SC_OK) { features_set_free(&f); e = sc_errorf(SC_ERR_IO, "features: another rank failed"); }
            break;
        }
        for (int k = 0; k < nw; k++) feat_s[k] += f.seconds[k];
        probe_data d = probe_view(&f);
        e = probe_epoch(p, ep, &d, res->train_loss);
        features_set_free(&f);
        bool last = ep + 1 == po->epochs;
        if (e == SC_OK && (last || (po->eval_every > 0 && (ep + 1) % po->eval_every == 0))) {
            e = probe_evaluate(p, dte, res);
            if (e == SC_OK) probe_track_best(res, ep + 1);
            if (e == SC_OK)
                sc_info("probe epoch %d/%d: train CE(full) %.4f, test top-1 full %.2f%%, smallest %.2f%%\n", ep + 1,
                        po->epochs, res->train_loss[0], 100 * res->top1[0], 100 * res->top1[nw - 1]);
        }
    }
    probe_free(p);
    return e;
}

/* the command line of `slimclr eval` */
typedef struct {
    const char *ckpt, *tag;
    bool random_init, classifier;
    long long max_train, max_test;  /* 0: all rows */
} eval_args;

/* 0, or 2 after a usage error */
static int parse_args(int argc, char **argv, cli_common *cc, eval_args *ea) {
    memset(ea, 0, sizeof *ea);
    for (int i = 1; i < argc; i++) {
        int r = cli_take_set(cc, argc, argv, &i);
        if (r < 0) { cli_usage_error("eval", "--set needs key=value"); return 2; }
        if (r) continue;
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--checkpoint") && has) ea->ckpt = argv[++i];
        else if (!strcmp(a, "--random-init")) ea->random_init = true;
        else if (!strcmp(a, "--classifier")) ea->classifier = true;
        else if (!strcmp(a, "--tag") && has) ea->tag = argv[++i];
        else if (!strcmp(a, "--max-train") && has) ea->max_train = atoll(argv[++i]);
        else if (!strcmp(a, "--max-test") && has) ea->max_test = atoll(argv[++i]);
        else if (a[0] == '-') { cli_usage_error("eval", "unknown option %s (or its value is missing)", a); return 2; }
        else if (!cc->config) cc->config = a;
        else { cli_usage_error("eval", "unexpected argument %s", a); return 2; }
    }
    if (!!ea->ckpt == ea->random_init) {
        cli_usage_error("eval", "give exactly one of --checkpoint PATH and --random-init");
        return 2;
    }
    if (ea->random_init && !cc->config) { cli_usage_error("eval", "--random-init needs CONFIG.yaml"); return 2; }
    if (ea->classifier && !ea->ckpt) { cli_usage_error("eval", "--classifier needs --checkpoint PATH"); return 2; }
    if (ea->max_train < 0 || ea->max_test < 0) {
        cli_usage_error("eval", "--max-train/--max-test must be >= 0");
        return 2;
    }
    if (ea->random_init && !ea->tag) ea->tag = "random";
    return 0;
}

/* the train and test splits, the evaluation view and the reference protocol's training view */
static sc_err open_splits(const sc_config *c, data_set *tr, data_set *te, aug_cfg *aug, aug_cfg *taug) {
    sc_err e = features_open_split(c, "train", tr);
    if (e == SC_OK) e = features_open_split(c, "test", te);
    if (e == SC_OK) e = features_eval_aug(c, tr, aug);
    if (e == SC_OK)
        e = features_train_aug(c, tr, c->eval.probe_crop_scale.v[0], c->eval.probe_crop_scale.v[1], taug);
    if (e == SC_OK && tr->nclasses != te->nclasses)
        e = sc_errorf(SC_ERR_FORMAT, "data: %s has %d classes, %s %d", tr->source, tr->nclasses, te->source,
                      te->nclasses);
    return e;
}

/* rank 0: what is evaluated, on how many images */
static void print_start(const evcli_model *m, int nw, int64_t ntr, int64_t nte) {
    const sc_config *c = &m->cfg;
    printf("eval: %s (step %llu)%s%s\n", m->source, (unsigned long long)m->step, m->info[0] ? "; " : "", m->info);
    if (c->eval.protocol == CFG_PROTO_REFERENCE)
        printf("protocol reference: features of %d width(s) of %lld test images, then %d epochs of new training "
               "views of %lld images, over %d rank(s)...\n", nw, (long long)nte, c->eval.probe_epochs,
               (long long)ntr, comm_size());
    else
        printf("features of %d width(s) of %lld train + %lld test images over %d rank(s)...\n", nw,
               (long long)ntr, (long long)nte, comm_size());
    fflush(stdout);
}

/* what eval_probes works on */
typedef struct {
    const evcli_model *m;
    const data_set *tr;
    int64_t ntr;
    const aug_cfg *taug;              /* the reference protocol's training views */
    int nw;
    const int *wis;
    const features_set *ftr, *fte;    /* ftr: not extracted with the reference protocol */
} eval_inputs;

/* COLLECTIVE: the SGD probe, all widths at once (the sub-widths distil from the full width's probe), then the
 * closed-form ridge probe one width at a time (not with the reference protocol), into rows[nw].
 * 0, or the exit code every rank returns. */
static int eval_probes(const eval_inputs *in, eval_row *rows) {
    const sc_config *c = &in->m->cfg;
    const bool ref = c->eval.protocol == CFG_PROTO_REFERENCE;
    int nw = in->nw, code;
    const features_set *ftr = in->ftr, *fte = in->fte;
    probe_opts po = probe_options(c);
    probe_shape sh = {.nwidths = nw, .classes = in->tr->nclasses};
    for (int k = 0; k < nw; k++) sh.dims[k] = fte->dims[k];
    probe_data dte = probe_view(fte);
    probe_result pr;
    double ref_feat_s[FEATURES_MAX_WIDTHS] = {0};
    double t0 = sc_now();
    sc_err e;
    if (ref) {
        e = probe_reference(in->m->bb, c, in->tr, in->ntr, in->taug, nw, in->wis, &sh, &dte, &po, &pr, ref_feat_s);
    } else {
        probe_data dtr = probe_view(ftr);
        e = probe_train(&sh, &dtr, &dte, &po, &pr, NULL, NULL);
    }
    double probe_s = sc_now() - t0;
    if ((code = evcli_agree("eval", "probe", e))) return code;
    for (int k = 0; k < nw; k++) {
        /* the slowest rank's forward time (reference: all its epochs of training views, included in probe_s) */
        rows[k].feat_s = comm_allreduce_max_f64((ref ? ref_feat_s[k] : ftr->seconds[k]) + fte->seconds[k]);
        rows[k].top1 = pr.top1[k];
        rows[k].top5 = pr.top5[k];
        rows[k].loss = pr.test_loss[k];
        rows[k].best_top1 = pr.best_top1[k];
        rows[k].best_epoch = pr.best_epoch;
        rows[k].probe_s = probe_s;
        rows[k].ridge_top1 = rows[k].ridge_lambda = NAN;
    }
    ridge_opts ro = ridge_opts_default();
    ro.nlambdas = c->eval.ridge_lambdas.n < RIDGE_MAX_LAMBDAS ? c->eval.ridge_lambdas.n : RIDGE_MAX_LAMBDAS;
    for (int i = 0; i < ro.nlambdas; i++) ro.lambdas[i] = c->eval.ridge_lambdas.v[i];
    for (int k = 0; k < nw && !ref; k++) {
        ridge_result rr;
        memset(&rr, 0, sizeof rr);
        t0 = sc_now();
        e = ridge_fit((int)ftr->n_local, ftr->dims[k], ftr->F[k], ftr->labels, in->tr->nclasses, &ro, &rr);
        if ((code = evcli_agree("eval", "ridge probe", e))) return code;
        rows[k].ridge_top1 = ridge_accuracy(&rr, (int)fte->n_local, fte->F[k], fte->labels);
        rows[k].ridge_lambda = rr.lambda;
        rows[k].ridge_s = sc_now() - t0;
        ridge_result_free(&rr);
    }
    return 0;
}

int cli_eval(int argc, char **argv) {
    cli_common cc;
    memset(&cc, 0, sizeof cc);
    eval_args ea;
    if (parse_args(argc, argv, &cc, &ea)) return 2;
    int rank = comm_rank();
    evcli_model m;
    int code = evcli_load("eval", cc.config, cc.sets, cc.nsets, ea.ckpt, ea.random_init, &m);
    if (code) return code;
    const sc_config *c = &m.cfg;
    affinity_setup(c->run.threads, rank == 0 ? stdout : NULL);
    conv_set_algo_config((conv_algo)c->run.conv_algo);
    int nw = model_nwidths(m.bb);

    data_set tr, te;
    memset(&tr, 0, sizeof tr);
    memset(&te, 0, sizeof te);
    aug_cfg aug, taug;
    const bool ref = c->eval.protocol == CFG_PROTO_REFERENCE;
    sc_err e = open_splits(c, &tr, &te, &aug, &taug);
    if ((code = evcli_agree("eval", "data", e))) goto out;
    int64_t ntr = ea.max_train > 0 && ea.max_train < tr.n ? ea.max_train : tr.n;
    int64_t nte = ea.max_test > 0 && ea.max_test < te.n ? ea.max_test : te.n;
    if (ea.classifier) {
        code = eval_classifier(&m, ea.ckpt, ea.tag, &te, nte, &aug);
        goto out;
    }
    if (rank == 0) print_start(&m, nw, ntr, nte);

    int wis[FEATURES_MAX_WIDTHS];
    for (int k = 0; k < nw; k++) wis[k] = k;
    features_set ftr, fte;
    memset(&ftr, 0, sizeof ftr);
    memset(&fte, 0, sizeof fte);
    double t0 = sc_now();
    e = ref ? SC_OK : features_extract(m.bb, &tr, ntr, &aug, features_batch(c), c->data.workers, nw, wis, &ftr);
    if (e == SC_OK) e = features_extract(m.bb, &te, nte, &aug, features_batch(c), c->data.workers, nw, wis, &fte);
    if ((code = evcli_agree("eval", "features", e))) goto out_f;
    if (rank == 0) printf("features: %.1f s\n", sc_now() - t0);

    eval_row rows[FEATURES_MAX_WIDTHS];
    memset(rows, 0, sizeof rows);
    for (int k = 0; k < nw; k++) {
        double p, macs;
        model_count_backbone(m.bb, k, &p, &macs);
        rows[k].width = model_width(m.bb, k);
        rows[k].dim = fte.dims[k];
        rows[k].params = p;
        rows[k].mflops = 2.0 * macs / 1e6; /* FLOPs = 2 x MACs */
    }
    eval_inputs in = {&m, &tr, ntr, &taug, nw, wis, &ftr, &fte};
    if ((code = eval_probes(&in, rows))) goto out_f;

    if (rank == 0) {
        const char *probe_name = c->eval.probe == CFG_PROBE_SLIM ? "slimmable linear" : "switchable linear";
        printf("\nlinear evaluation per width (protocol %s, %s probe on %s features, %d epochs; top-1/top-5 of the "
               "last epoch on %lld test images; best: the evaluation with the best full-width top-1, every %d epochs)\n",
               ref ? "reference" : "cached", probe_name, c->eval.probe_standardize ? "standardised" : "raw",
               c->eval.probe_epochs, (long long)nte, c->eval.probe_eval_every);
        write_tables(stdout, NULL, NULL, rows, nw, probe_name);
        char csv_path[CONFIG_PATH_MAX + 96];
        e = save_tables(c, ea.tag, &m, rows, nw, ntr, nte, probe_name, csv_path, sizeof csv_path);
        if (e == SC_OK) printf("written: %s (and .md)\n", csv_path);
    }
    code = evcli_agree_write("eval", "tables", e);
out_f:
    features_set_free(&ftr);
    features_set_free(&fte);
out:
    if (tr.labels) data_set_free(&tr);
    if (te.labels) data_set_free(&te);
    evcli_free(&m);
    return code;
}
