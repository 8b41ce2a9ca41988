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

static double mb(double bytes) { return bytes / 1e6; }

/* Memory per rank of `slimclr train` (what ssl_create and the loader allocate), from the plans: parameters,
 * gradients, optimizer state, BN buffers, tapes (model_tape_estimate_bytes), queue and step buffers. */
static void print_memory(const sc_config *cfg, model *q, int P) {
    int nw = cfg->model.widths.n, views = cfg->method.name == CFG_METHOD_MOCOV2 ? 1 : 2;
    int n = cfg->optim.batch / cfg->optim.accum / P, Bm = n * P, D = cfg->method.dim;
    bool key = cfg->method.name != CFG_METHOD_SIMCLR;
    double np = (double)model_nparams(q), nb = (double)model_nbufs(q);
    int opt_copies = cfg->optim.name == CFG_OPT_ADAMW ? 2 : 1;
    printf("\n== memory per rank (estimate, %d image(s) per micro-batch per rank)\n", n);
    double enc = (np * (2 + opt_copies) + nb) * 4;
    printf("  %-52s %10.1f MB  (%.0f parameters, %.0f BN buffers)\n", "query encoder: params+grads+optimizer+BN", mb(enc),
           np, nb);
    double total = enc;
    /* the MoCo v3 predictor (a small MLP) is built like the encoder's head */
    model *pred = NULL;
    if (cfg->method.name == CFG_METHOD_MOCOV3) {
        model_cfg pc = ssl_encoder_cfg(cfg);
        pc.depth = 0;
        pc.head = HEAD_MOCOV3_PRED;
        pc.head_in = cfg->method.dim;
        pc.head_hidden = cfg->method.mlp_dim;
        pc.head_out = cfg->method.dim;
        sc_err e;
        pred = model_create(&pc, &e);
        if (pred) {
            double pe = ((double)model_nparams(pred) * (2 + opt_copies) + (double)model_nbufs(pred)) * 4;
            printf("  %-52s %10.1f MB\n", "predictor: params+grads+optimizer+BN", mb(pe));
            total += pe;
        }
    }
    if (key) {
        double ke = (np * 2 + nb) * 4; /* model_create allocates a gradient array the key never touches */
        printf("  %-52s %10.1f MB\n", "momentum encoder (params+BN; +unused grads)", mb(ke));
        total += ke;
    }
    printf("  training tape of one view, per width served (model_tape_estimate_bytes):\n");
    for (int wi = 0; wi < nw; wi++)
        printf("    width %-5.3g %10.1f MB\n", cfg->model.widths.v[wi], mb((double)model_tape_estimate_bytes(q, wi, n, true)));
    /* ssl_create: per view one tape for the full width and one reused by every sub-width */
    double tapes = views * ((double)model_tape_estimate_bytes(q, 0, n, true) +
                            (nw > 1 ? (double)model_tape_estimate_bytes(q, 1, n, true) : 0));
    double scratch = (double)model_scratch_estimate_bytes(q, 0, n, true);
    if (pred) {
        tapes += views * ((double)model_tape_estimate_bytes(pred, 0, n, true) +
                          (nw > 1 ? (double)model_tape_estimate_bytes(pred, 1, n, true) : 0));
        scratch += (double)model_scratch_estimate_bytes(pred, 0, n, true);
    }
    if (key) {
        tapes += (double)model_tape_estimate_bytes(q, 0, n, false);
        scratch += (double)model_scratch_estimate_bytes(q, 0, n, false);
    }
    printf("  %-52s %10.1f MB\n", views == 2 ? "activations (2 views x full + sub-width tapes, key)"
                                             : "activations (full + sub-width tape, key tape)", mb(tapes));
    printf("  %-52s %10.1f MB\n", "per-model scratch + conv workspace", mb(scratch));
    total += tapes + scratch;
    double queue = cfg->method.name == CFG_METHOD_MOCOV2 ? (double)cfg->method.queue * D * 4 : 0;
    if (queue > 0) printf("  %-52s %10.1f MB  (%d x %d)\n", "queue", mb(queue), D, cfg->method.queue);
    total += queue;
    /* the step's buffers (ssl_create): embeddings, gathers, logits; counted as floats */
    double z = cfg->method.name == CFG_METHOD_MOCOV2 ? (double)n * (1 + cfg->method.queue)
               : cfg->method.name == CFG_METHOD_MOCOV3 ? (double)n * Bm : 2.0 * n * (2.0 * Bm - 1);
    double buf = 2 * (7.0 * D * n + D * Bm) + 2.0 * D * n + D * (double)Bm + 4 * z;
    if (cfg->method.name == CFG_METHOD_MOCOV2) {
        buf += (double)cfg->optim.accum * D * n;
        if (cfg->method.bn == CFG_BN_SHUFFLE) {
            double hw = (double)cfg->model.in_channels * cfg->model.image_size * cfg->model.image_size;
            buf += (Bm + n) * hw + 4.0 * Bm;
        }
    }
    if (cfg->method.name == CFG_METHOD_SIMCLR) buf += 2.0 * D * Bm + 2 * z;
    printf("  %-52s %10.1f MB\n", "step buffers (embeddings, gathers, logits)", mb(buf * 4));
    total += buf * 4;
    double img = (double)cfg->model.in_channels * cfg->model.image_size * cfg->model.image_size;
    double batches = 2.0 * 2 * n * img * 4; /* two slots x two views */
    printf("  %-52s %10.1f MB\n", "loader batches (2 slots x 2 views)", mb(batches));
    total += batches;
    printf("  %-52s %10.1f MB  (+ the dataset when held in memory: Fashion-MNIST/CIFAR whole, shards by offset)\n",
           "total", mb(total));
    /* what `train` reports at start-up as "MB of state per rank" (ssl_memory_bytes: every model's params, grads,
     * one optimizer-state copy and BN buffers, scratch, tapes and the queue), for checking this estimate */
    double state = ((np * 3 + nb) * (key ? 2 : 1)) * 4 + tapes + scratch + queue;
    if (pred) state += ((double)model_nparams(pred) * 3 + (double)model_nbufs(pred)) * 4;
    printf("  %-52s %10.2f MB\n", "of which train's start-up 'MB of state per rank'", mb(state));
    model_free(pred);
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

int cli_info(int argc, char **argv) {
    cli_common cc;
    memset(&cc, 0, sizeof cc);
    int P = comm_size();
    for (int i = 1; i < argc; i++) {
        int r = cli_take_set(&cc, argc, argv, &i);
        if (r < 0) { cli_usage_error("info", "--set needs key=value"); return 2; }
        if (r) continue;
        if (!strcmp(argv[i], "--ranks")) {
            char *end = NULL;
            long v = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= argc || *end || v < 1 || v > 1000000) {
                cli_usage_error("info", "--ranks needs a rank count >= 1 (got %s)", i + 1 < argc ? argv[i + 1] : "nothing");
                return 2;
            }
            P = (int)v;
            i++;
        } else if (argv[i][0] == '-') { cli_usage_error("info", "unknown option %s", argv[i]); return 2; }
        else if (!cc.config) cc.config = argv[i];
        else { cli_usage_error("info", "unexpected argument %s", argv[i]); return 2; }
    }
    if (!cc.config) { cli_usage_error("info", "missing CONFIG.yaml"); return 2; }
    if (comm_rank() != 0) return 0;
    sc_config cfg;
    sc_err e = config_load(cc.config, cc.sets, cc.nsets, &cfg);
    if (e != SC_OK) { fprintf(stderr, "slimclr: error: %s\n", sc_last_error()); return 2; }
    /* refuse what cannot run before any work (config_load checked the queue against the batch already) */
    e = config_check_ranks(&cfg, P);
    if (e != SC_OK) { fprintf(stderr, "slimclr: error: %s\n", sc_last_error()); return 2; }
    if (cfg.method.name == CFG_METHOD_MOCOV2 && cfg.method.queue % cfg.optim.batch != 0) {
        fprintf(stderr, "slimclr: error: method.queue %d is not a multiple of optim.batch %d (SPEC 3.1)\n",
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
    int nw = cfg.model.widths.n;
    printf("\n== model: slimmable ResNet-%d, %s stem, base %d, %d input channel(s), %dx%d input\n", cfg.model.depth,
           cfg.model.stem == CFG_STEM_IMAGENET ? "ImageNet" : "small-image", cfg.model.base, cfg.model.in_channels,
           cfg.model.image_size, cfg.model.image_size);
    /* the deployed sub-network: backbone + a linear classifier over the dataset's classes (SPEC 1.3 counts it with
     * fc-1000 for ImageNet; shards report their own class count) */
    int classes = info_classes(&cfg);
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
        printf("%-7.3g %8d %11.3f %13.1f %10.3f %11.1f %11.3f %13.1f\n", cfg.model.widths.v[wi], (int)C, bp / 1e6,
               bm / 1e6, p / 1e6, mm / 1e6, (bp + C * classes + classes) / 1e6, (bm + C * classes) / 1e6);
        step_macs += mm;
        if (wi == 0) key_macs = mm;
    }
    /* SPEC counting convention: 3 x forward of each query width (+ MoCo v3: both views and the predictor is
     * small; counted in model_count of the encoder only) + 1 x key encoder forward; FLOPs = 2 x MACs */
    int views = cfg.method.name == CFG_METHOD_MOCOV2 ? 1 : 2;
    double keyf = cfg.method.name == CFG_METHOD_SIMCLR ? 0 : (cfg.method.name == CFG_METHOD_MOCOV3 ? 2 : 1);
    double flops_img = 2.0 * (3.0 * views * step_macs + keyf * key_macs);
    double flops_img_slow = 2.0 * (3.0 * views * key_macs + keyf * key_macs);
    printf("per image per step: %.3f GFLOP with all widths, %.3f GFLOP during slow start (contrastive logits not "
           "counted)\n", flops_img / 1e9, flops_img_slow / 1e9);

    print_memory(&cfg, m, P);
    model_free(m);

    int micro = cfg.optim.batch / cfg.optim.accum / P;
    printf("\n== run plan for %d rank(s)\n", P);
    if (n < 0) {
        printf("  global batch %d = %d rank(s) x %d images x %d micro-batch(es)\n", cfg.optim.batch, P, micro,
               cfg.optim.accum);
        printf("  steps: unknown here, the training data cannot be read (%s)\n", data_err);
        fprintf(stderr, "slimclr info: warning: %s; the run plan lacks the step counts\n", data_err);
        return 0;
    }
    int64_t spe = config_steps_per_epoch(&cfg, n), total = config_total_steps(&cfg, n);
    printf("  %lld training images, global batch %d = %d rank(s) x %d images x %d micro-batch(es)\n",
           (long long)config_train_samples(&cfg, n), cfg.optim.batch, P, micro, cfg.optim.accum);
    printf("  %lld steps per epoch, %lld steps in all", (long long)spe, (long long)total);
    if (cfg.optim.max_steps > 0) printf(" (optim.max_steps; schedules compressed into them)");
    printf("\n");
    if (cfg.slimclr.slow_start && nw > 1) {
        long s0 = (long)config_slow_start_step(&cfg, n);
        printf("  slow start: full width only until step %ld (epoch %.3g), then all %d widths with lr base %.4g\n", s0,
               cfg.slimclr.slow_start_epoch, nw, cfg.slimclr.slow_start_lr);
    } else {
        printf("  no slow start: all %d widths from the first step\n", nw);
    }
    printf("  checkpoints: every %lld step(s) and every %g minute(s), keeping the last %d", (long long)cfg.checkpoint.every_steps,
           cfg.checkpoint.every_minutes, cfg.checkpoint.keep_last);
    if (cfg.checkpoint.snapshot_epochs > 0) printf(" plus one every %d epoch(s)", cfg.checkpoint.snapshot_epochs);
    printf("; run directory %s\n", cfg.run.dir);
    return 0;
}
