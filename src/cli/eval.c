/* cli/eval: `slimclr eval [CONFIG.yaml] --checkpoint PATH | --random-init` (docs/method.md §7, docs/benchmarks.md B3): frozen eval-mode
 * GAP features of every width on the train and test splits (no augmentation, rows split contiguously over the
 * ranks, cached in memory), then the switchable (or slimmable) SGD linear probe of all widths and the ScaLAPACK
 * ridge probe of each width. The table goes to stdout and to <run.dir>/eval/probe[-TAG].csv|md. */
#include "cli/cli.h"
#include "comm/affinity.h"
#include "comm/comm.h"
#include "core/error.h"
#include "core/timer.h"
#include "eval/features.h"
#include "eval/probe.h"
#include "eval/ridge.h"
#include "evalcli.h"
#include "ssl/run.h"
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
} eval_row;

static void write_tables(FILE *out, FILE *csv, FILE *md, const eval_row *r, int nw, const char *probe_name) {
    if (csv) fprintf(csv, "width,features,params_M,mflops_per_image,top1,top5,probe_loss,ridge_top1,ridge_lambda,"
                          "feature_s,probe_s,ridge_s\n");
    if (md) {
        fprintf(md, "| width | features | params (M) | MFLOPs/img | top-1 (%s) | top-5 | probe loss | ridge top-1 | "
                    "ridge λ | features s | probe s | ridge s |\n", probe_name);
        fprintf(md, "|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    }
    fprintf(out, "%-6s %8s %10s %10s %8s %8s %10s %11s %8s %10s %8s %8s\n", "width", "features", "params M",
            "MFLOPs/img", "top-1", "top-5", "probe loss", "ridge top-1", "lambda", "features s", "probe s", "ridge s");
    for (int i = 0; i < nw; i++) {
        const eval_row *x = &r[i];
        fprintf(out, "%-6.3g %8d %10.3f %10.1f %7.2f%% %7.2f%% %10.4f %10.2f%% %8.0e %10.1f %8.1f %8.1f\n", x->width,
                x->dim, x->params / 1e6, x->mflops, 100 * x->top1, 100 * x->top5, x->loss, 100 * x->ridge_top1,
                x->ridge_lambda, x->feat_s, x->probe_s, x->ridge_s);
        if (csv)
            fprintf(csv, "%g,%d,%.6f,%.3f,%.6f,%.6f,%.6f,%.6f,%g,%.3f,%.3f,%.3f\n", x->width, x->dim, x->params / 1e6,
                    x->mflops, x->top1, x->top5, x->loss, x->ridge_top1, x->ridge_lambda, x->feat_s, x->probe_s,
                    x->ridge_s);
        if (md)
            fprintf(md, "| %g | %d | %.3f | %.1f | %.2f | %.2f | %.4f | %.2f | %g | %.1f | %.1f | %.1f |\n", x->width,
                    x->dim, x->params / 1e6, x->mflops, 100 * x->top1, 100 * x->top5, x->loss, 100 * x->ridge_top1,
                    x->ridge_lambda, x->feat_s, x->probe_s, x->ridge_s);
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
    fprintf(md, "# Linear evaluation per width\n\nmodel: %s; source: %s (step %llu)%s%s\n\n"
                "train %lld / test %lld images, frozen eval-mode GAP features, standardised; SGD probe: %s, %d epochs "
                "(time: all widths together); ridge: λ chosen on a 10%% hold-out\n\n",
            config_method_name(cfg->method.name), m->source, (unsigned long long)m->step, m->info[0] ? "; " : "",
            m->info, (long long)ntr, (long long)nte, probe_name, cfg->eval.probe_epochs);
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

int cli_eval(int argc, char **argv) {
    cli_common cc;
    memset(&cc, 0, sizeof cc);
    const char *ckpt = NULL, *tag = NULL;
    bool random_init = false;
    long long max_train = 0, max_test = 0;
    for (int i = 1; i < argc; i++) {
        int r = cli_take_set(&cc, argc, argv, &i);
        if (r < 0) { cli_usage_error("eval", "--set needs key=value"); return 2; }
        if (r) continue;
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--checkpoint") && has) ckpt = argv[++i];
        else if (!strcmp(a, "--random-init")) random_init = true;
        else if (!strcmp(a, "--tag") && has) tag = argv[++i];
        else if (!strcmp(a, "--max-train") && has) max_train = atoll(argv[++i]);
        else if (!strcmp(a, "--max-test") && has) max_test = atoll(argv[++i]);
        else if (a[0] == '-') { cli_usage_error("eval", "unknown option %s (or its value is missing)", a); return 2; }
        else if (!cc.config) cc.config = a;
        else { cli_usage_error("eval", "unexpected argument %s", a); return 2; }
    }
    if (!!ckpt == random_init) {
        cli_usage_error("eval", "give exactly one of --checkpoint PATH and --random-init");
        return 2;
    }
    if (random_init && !cc.config) { cli_usage_error("eval", "--random-init needs CONFIG.yaml"); return 2; }
    if (max_train < 0 || max_test < 0) { cli_usage_error("eval", "--max-train/--max-test must be >= 0"); return 2; }
    if (random_init && !tag) tag = "random";

    int rank = comm_rank();
    evcli_model m;
    int code = evcli_load("eval", cc.config, cc.sets, cc.nsets, ckpt, random_init, &m);
    if (code) return code;
    const sc_config *c = &m.cfg;
    affinity_setup(c->run.threads, rank == 0 ? stdout : NULL);
    int nw = model_nwidths(m.bb);

    data_set tr, te;
    memset(&tr, 0, sizeof tr);
    memset(&te, 0, sizeof te);
    aug_cfg aug;
    sc_err e = features_open_split(c, "train", &tr);
    if (e == SC_OK) e = features_open_split(c, "test", &te);
    if (e == SC_OK) e = features_eval_aug(c, &tr, &aug);
    if (e == SC_OK && tr.nclasses != te.nclasses)
        e = sc_errorf(SC_ERR_FORMAT, "data: %s has %d classes, %s %d", tr.source, tr.nclasses, te.source, te.nclasses);
    if ((code = evcli_agree("eval", "data", e))) goto out;
    int64_t ntr = max_train > 0 && max_train < tr.n ? max_train : tr.n;
    int64_t nte = max_test > 0 && max_test < te.n ? max_test : te.n;
    if (rank == 0) {
        printf("eval: %s (step %llu)%s%s\n", m.source, (unsigned long long)m.step, m.info[0] ? "; " : "", m.info);
        printf("features of %d width(s) of %lld train + %lld test images over %d rank(s)...\n", nw, (long long)ntr,
               (long long)nte, comm_size());
        fflush(stdout);
    }

    int wis[FEATURES_MAX_WIDTHS];
    for (int k = 0; k < nw; k++) wis[k] = k;
    features_set ftr, fte;
    memset(&ftr, 0, sizeof ftr);
    memset(&fte, 0, sizeof fte);
    double t0 = sc_now();
    e = features_extract(m.bb, &tr, ntr, &aug, features_batch(c), c->data.workers, nw, wis, &ftr);
    if (e == SC_OK) e = features_extract(m.bb, &te, nte, &aug, features_batch(c), c->data.workers, nw, wis, &fte);
    if ((code = evcli_agree("eval", "features", e))) goto out_f;
    if (rank == 0) printf("features: %.1f s\n", sc_now() - t0);

    eval_row rows[FEATURES_MAX_WIDTHS];
    memset(rows, 0, sizeof rows);
    for (int k = 0; k < nw; k++) {
        double p, macs;
        model_count_backbone(m.bb, k, &p, &macs);
        rows[k].width = model_width(m.bb, k);
        rows[k].dim = ftr.dims[k];
        rows[k].params = p;
        rows[k].mflops = 2.0 * macs / 1e6; /* FLOPs = 2 x MACs */
        /* the slowest rank's forward time */
        rows[k].feat_s = comm_allreduce_max_f64(ftr.seconds[k] + fte.seconds[k]);
    }

    /* the SGD probe, all widths at once (docs/method.md §7: the sub-widths distil from the full width's probe) */
    probe_opts po = probe_opts_default();
    po.epochs = c->eval.probe_epochs;
    po.batch = c->eval.probe_batch;
    po.lr = (float)c->eval.probe_lr;
    po.wd = (float)c->eval.probe_wd;
    po.distill = c->eval.probe_distill;
    po.slim_linear = c->eval.probe == CFG_PROBE_SLIM;
    po.seed = (uint64_t)c->run.seed;
    const char *probe_name = po.slim_linear ? "slimmable linear" : "switchable linear";
    probe_result pr;
    t0 = sc_now();
    e = probe_train(nw, ftr.dims, tr.nclasses, (int)ftr.n_local, (const float *const *)ftr.F, ftr.labels,
                    (int)fte.n_local, (const float *const *)fte.F, fte.labels, &po, &pr, NULL, NULL);
    double probe_s = sc_now() - t0;
    if ((code = evcli_agree("eval", "probe", e))) goto out_f;
    for (int k = 0; k < nw; k++) {
        rows[k].top1 = pr.top1[k];
        rows[k].top5 = pr.top5[k];
        rows[k].loss = pr.test_loss[k];
        rows[k].probe_s = probe_s;
    }

    /* the closed-form ridge probe, one width at a time */
    ridge_opts ro = ridge_opts_default();
    ro.nlambdas = c->eval.ridge_lambdas.n < RIDGE_MAX_LAMBDAS ? c->eval.ridge_lambdas.n : RIDGE_MAX_LAMBDAS;
    for (int i = 0; i < ro.nlambdas; i++) ro.lambdas[i] = c->eval.ridge_lambdas.v[i];
    for (int k = 0; k < nw; k++) {
        ridge_result rr;
        memset(&rr, 0, sizeof rr);
        t0 = sc_now();
        e = ridge_fit((int)ftr.n_local, ftr.dims[k], ftr.F[k], ftr.labels, tr.nclasses, &ro, &rr);
        if ((code = evcli_agree("eval", "ridge probe", e))) goto out_f;
        rows[k].ridge_top1 = ridge_accuracy(&rr, (int)fte.n_local, fte.F[k], fte.labels);
        rows[k].ridge_lambda = rr.lambda;
        rows[k].ridge_s = sc_now() - t0;
        ridge_result_free(&rr);
    }

    if (rank == 0) {
        printf("\nlinear evaluation per width (%s probe, %d epochs; top-1/top-5 on %lld test images)\n", probe_name,
               c->eval.probe_epochs, (long long)nte);
        write_tables(stdout, NULL, NULL, rows, nw, probe_name);
        char csv_path[CONFIG_PATH_MAX + 96];
        e = save_tables(c, tag, &m, rows, nw, ntr, nte, probe_name, csv_path, sizeof csv_path);
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
