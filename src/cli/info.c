/* cli/info: `slimclr info CONFIG.yaml [--ranks P]`: resolved config, size table per width, per-step FLOPs,
 * memory per rank and the run plan; refuses what cannot run. */
#include "blas/blas.h"
#include "cli/cli.h"
#include "comm/comm.h"
#include "core/cpu.h"
#include "core/error.h"
#include "data/data.h"
#include "io/config.h"
#include "model/model.h"
#include "ssl/run.h"
#include "ssl/step.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* training images of the configured dataset without reading it (known sizes), or from the files */
static int64_t train_size(const sc_config *c) {
    switch (c->data.dataset) {
    case CFG_DATA_FMNIST: case CFG_DATA_MNIST: return 60000;
    case CFG_DATA_CIFAR10: case CFG_DATA_CIFAR100: return 50000;
    default: break;
    }
    data_set s;
    memset(&s, 0, sizeof s);
    if (data_open("shard", c->data.dir, "train", 0, &s) != SC_OK) return -1;
    int64_t n = s.n;
    data_set_free(&s);
    return n;
}

/* classes of the configured dataset (from a shard's header; 1000 when it cannot be read, as for ImageNet) */
static int info_classes(const sc_config *c) {
    switch (c->data.dataset) {
    case CFG_DATA_FMNIST: case CFG_DATA_MNIST: case CFG_DATA_CIFAR10: return 10;
    case CFG_DATA_CIFAR100: return 100;
    default: break;
    }
    data_set s;
    memset(&s, 0, sizeof s);
    if (data_open("shard", c->data.dir, "train", 0, &s) != SC_OK) return 1000;
    int k = s.nclasses;
    data_set_free(&s);
    return k > 0 ? k : 1000;
}

/* the command line into cc and *P (--ranks); 0, or 2 after a usage error */
static int parse_args(int argc, char **argv, cli_common *cc, int *P) {
    for (int i = 1; i < argc; i++) {
        int r = cli_take_set(cc, argc, argv, &i);
        if (r < 0) { cli_usage_error("info", "--set needs key=value"); return 2; }
        if (r) continue;
        if (!strcmp(argv[i], "--ranks")) {
            char *end = NULL;
            long v = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= argc || *end || v < 1 || v > 1000000) {
                cli_usage_error("info", "--ranks needs a rank count >= 1 (got %s)", i + 1 < argc ? argv[i + 1] : "nothing");
                return 2;
            }
            *P = (int)v;
            i++;
        } else if (argv[i][0] == '-') { cli_usage_error("info", "unknown option %s", argv[i]); return 2; }
        else if (!cc->config) cc->config = argv[i];
        else { cli_usage_error("info", "unexpected argument %s", argv[i]); return 2; }
    }
    if (!cc->config) { cli_usage_error("info", "missing CONFIG.yaml"); return 2; }
    return 0;
}

/* the model table: parameters and MACs per width, then the FLOPs of one image in one step */
static void print_model(const sc_config *cfg, model *m) {
    int nw = cfg->model.widths.n;
    printf("\n== model: slimmable ResNet-%d, %s stem, base %d, %d input channel(s), %dx%d input\n", cfg->model.depth,
           cfg->model.stem == CFG_STEM_IMAGENET ? "ImageNet" : "small-image", cfg->model.base, cfg->model.in_channels,
           cfg->model.image_size, cfg->model.image_size);
    /* the deployed sub-network: backbone + a linear classifier over the dataset's classes (docs/method.md §1.3 counts it with
     * fc-1000 for ImageNet; shards report their own class count) */
    int classes = info_classes(cfg);
    char fc_m[24], fc_mac[24];
    snprintf(fc_m, sizeof fc_m, "+fc-%d M", classes);
    snprintf(fc_mac, sizeof fc_mac, "+fc-%d MMAC", classes);
    printf("%-7s %8s %11s %13s %10s %11s %11s %13s\n", "width", "features", "backbone M", "backbone MMAC", "+head M",
           "+head MMAC", fc_m, fc_mac);
    double step_macs = 0, key_macs = 0;
    for (int wi = 0; wi < nw; wi++) {
        double bp, bm, p, mm;
        model_count_backbone(m, wi, &bp, &bm);
        model_count(m, wi, &p, &mm);
        double C = model_feat_dim(m, wi);
        printf("%-7.3g %8d %11.3f %13.1f %10.3f %11.1f %11.3f %13.1f\n", cfg->model.widths.v[wi], (int)C, bp / 1e6,
               bm / 1e6, p / 1e6, mm / 1e6, (bp + C * classes + classes) / 1e6, (bm + C * classes) / 1e6);
        step_macs += mm;
        if (wi == 0) key_macs = mm;
    }
    /* the counting convention of docs/method.md "Choices": 3 x forward of each query width (+ MoCo v3: both views and the predictor is
     * small; counted in model_count of the encoder only) + 1 x key encoder forward; FLOPs = 2 x MACs */
    bool sup = cfg->method.name == CFG_METHOD_SUPERVISED;
    int views = cfg->method.name == CFG_METHOD_MOCOV2 || sup ? 1 : 2;
    double keyf = cfg->method.name == CFG_METHOD_SIMCLR || sup ? 0 : (cfg->method.name == CFG_METHOD_MOCOV3 ? 2 : 1);
    double flops_img = 2.0 * (3.0 * views * step_macs + keyf * key_macs);
    double flops_img_slow = 2.0 * (3.0 * views * key_macs + keyf * key_macs);
    printf("per image per step: %.3f GFLOP with all widths, %.3f GFLOP during slow start (contrastive logits not "
           "counted)\n", flops_img / 1e9, flops_img_slow / 1e9);
}

/* the run plan on P ranks: batches, steps (n training images; n < 0: unknown here, data_err says why),
 * slow start, checkpoints */
static void print_plan(const sc_config *cfg, int P, int64_t n, const char *data_err) {
    int nw = cfg->model.widths.n;
    int micro = cfg->optim.batch / cfg->optim.accum / P;
    printf("\n== run plan for %d rank(s)\n", P);
    if (n < 0) {
        printf("  global batch %d = %d rank(s) x %d images x %d micro-batch(es)\n", cfg->optim.batch, P, micro,
               cfg->optim.accum);
        printf("  steps: unknown here, the training data cannot be read (%s)\n", data_err);
        fprintf(stderr, "slimclr info: warning: %s; the run plan lacks the step counts\n", data_err);
        return;
    }
    int64_t spe = config_steps_per_epoch(cfg, n), total = config_total_steps(cfg, n);
    printf("  %lld training images, global batch %d = %d rank(s) x %d images x %d micro-batch(es)\n",
           (long long)config_train_samples(cfg, n), cfg->optim.batch, P, micro, cfg->optim.accum);
    printf("  %lld steps per epoch, %lld steps in all", (long long)spe, (long long)total);
    if (cfg->optim.max_steps > 0) printf(" (optim.max_steps; schedules compressed into them)");
    printf("\n");
    if (cfg->slimclr.slow_start && nw > 1) {
        long s0 = (long)config_slow_start_step(cfg, n);
        printf("  slow start: full width only until step %ld (epoch %.3g), then all %d widths with lr base %.4g\n", s0,
               cfg->slimclr.slow_start_epoch, nw, cfg->slimclr.slow_start_lr);
    } else {
        printf("  no slow start: all %d widths from the first step\n", nw);
    }
    printf("  checkpoints: every %lld step(s) and every %g minute(s), keeping the last %d",
           (long long)cfg->checkpoint.every_steps, cfg->checkpoint.every_minutes, cfg->checkpoint.keep_last);
    if (cfg->checkpoint.snapshot_epochs > 0) printf(" plus one every %d epoch(s)", cfg->checkpoint.snapshot_epochs);
    printf("; run directory %s\n", cfg->run.dir);
}

int cli_info(int argc, char **argv) {
    cli_common cc;
    memset(&cc, 0, sizeof cc);
    int P = comm_size();
    if (parse_args(argc, argv, &cc, &P)) return 2;
    if (comm_rank() != 0) return 0;
    sc_config cfg;
    sc_err e = config_load(cc.config, cc.sets, cc.nsets, &cfg);
    if (e != SC_OK) { fprintf(stderr, "slimclr: error: %s\n", sc_last_error()); return 2; }
    /* refuse what cannot run before any work (config_load checked the queue against the batch already) */
    e = config_check_ranks(&cfg, P);
    if (e != SC_OK) { fprintf(stderr, "slimclr: error: %s\n", sc_last_error()); return 2; }
    if (cfg.method.name == CFG_METHOD_MOCOV2 && cfg.method.queue % cfg.optim.batch != 0) {
        fprintf(stderr, "slimclr: error: method.queue %d is not a multiple of optim.batch %d (docs/method.md §3.1)\n",
                cfg.method.queue, cfg.optim.batch);
        return 2;
    }
    /* planning may happen where the data is not (a login node): then the plan lacks the step counts */
    int64_t n = train_size(&cfg);
    char data_err[512] = "";
    if (n < 0) snprintf(data_err, sizeof data_err, "%s", sc_last_error());
    if (n >= 0 && config_train_samples(&cfg, n) < cfg.optim.batch) {
        fprintf(stderr, "slimclr: error: optim.batch: %d is larger than the %lld training images\n", cfg.optim.batch,
                (long long)config_train_samples(&cfg, n));
        return 2;
    }
    printf("== kernels: ISA path %s (%s); %s\n", sc_isa_name(sc_isa_active()), sc_cpu_summary(), blas_kernels());
    printf("== configuration (%s)\n", cc.config);
    config_print_table(&cfg, stdout);

    model_cfg mc = ssl_encoder_cfg(&cfg);
    model *m = model_create(&mc, &e);
    if (!m) { fprintf(stderr, "slimclr: error: %s\n", sc_last_error()); return 2; }
    print_model(&cfg, m);
    ssl_memory_estimate(&cfg, m, P, stdout);
    model_free(m);
    print_plan(&cfg, P, n, data_err);
    return 0;
}
