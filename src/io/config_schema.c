/* io/config_schema: the key table, typed parsing and formatting of one value, and the generated docs.
 * Everything user-visible about a key (name, type, range, default, doc) is in this one table. */
#include "io/config_schema.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define F(field) offsetof(sc_config, field), sizeof(((sc_config *)0)->field)
#define INF HUGE_VAL
#define BIG 1e12
/* path, type, field, default, recipe doc, lo, hi, lo_open, minn, maxn, choices, hashed, doc */
const config_key config_schema[] = {
    {"run.dir", CFG_T_STRING, F(run.dir), NULL, "runs/<config file name without .yaml>", 0, 0, 0, 0, 0, NULL, false,
     "run directory: config.yaml, metrics.jsonl, checkpoints/, eval/"},
    {"run.seed", CFG_T_I64, F(run.seed), "3407", NULL, 0, 9.2e18, 0, 0, 0, NULL, false,
     "seed of every random stream (init, augmentation, sampling)"},
    {"run.threads", CFG_T_THREADS, F(run.threads), "auto", NULL, 1, 4096, 0, 0, 0, NULL, false,
     "BLIS threads per rank: auto (affinity mask, SLURM_CPUS_PER_TASK, OMP_NUM_THREADS) or a number"},
    {"run.conv_algo", CFG_T_ENUM, F(run.conv_algo), "auto", NULL, 0, 0, 0, 0, 0, "auto|direct|winograd|wino4", false,
     "3x3 stride-1 pad-1 convolutions: auto (Winograd where it was measured faster, docs/performance-isa.md: "
     "F(4x4,3x3) on maps of 4x4 and up from 64 channels and on 28x28 and up from 48; F(2x2,3x3) on maps under "
     "4x4 from 256 channels), direct, or "
     "winograd (F(2x2,3x3)) or wino4 (F(4x4,3x3)) wherever "
     "the shape allows (not the thin layers of conv_thin); the environment variable SLIMCLR_CONV overrides it"},
    {"run.log_every", CFG_T_INT, F(run.log_every), "10", NULL, 1, 1e9, 0, 0, 0, NULL, false,
     "optimizer steps between metrics lines"},
    {"run.trace", CFG_T_BOOL, F(run.trace), "false", NULL, 0, 0, 0, 0, 0, NULL, false,
     "write trace-rank<R>.json (chrome://tracing)"},
    {"run.metrics", CFG_T_BOOL, F(run.metrics), "true", NULL, 0, 0, 0, 0, 0, NULL, false,
     "write metrics.jsonl on rank 0"},

    {"model.depth", CFG_T_INT, F(model.depth), "18", NULL, 18, 152, 0, 0, 0, "18|34|50|101|152", true,
     "ResNet depth (18/34 basic blocks; 50, 101, 152 bottlenecks: 3-4-6-3, 3-4-23-3, 3-8-36-3)"},
    {"model.base", CFG_T_INT, F(model.base), "64", NULL, 1, 4096, 0, 0, 0, NULL, true,
     "stage-0 channels at width 1.0 (64 = standard ResNet)"},
    {"model.stem", CFG_T_ENUM, F(model.stem), NULL, "small if image_size <= 64, else imagenet", 0, 0, 0, 0, 0,
     "small|imagenet", true, "small: 3x3/1 conv, no pool; imagenet: 7x7/2 conv + 3x3/2 max-pool"},
    {"model.in_channels", CFG_T_INT, F(model.in_channels), NULL, "1 for fmnist/mnist, 3 otherwise", 1, 3, 0, 0, 0,
     "1|3", true, "input channels (never sliced)"},
    {"model.image_size", CFG_T_INT, F(model.image_size), NULL, "28 fmnist/mnist, 32 cifar, 224 shards", 8, 4096, 0,
     0, 0, NULL, true, "training crop size (square)"},
    {"model.widths", CFG_T_LIST, F(model.widths), "[1.0, 0.75, 0.5, 0.25]", NULL, 0, 1, 1, 1, CONFIG_MAX_WIDTHS,
     NULL, true, "width multipliers, descending, starting at 1.0 (docs/method.md §2)"},
    {"model.zero_init_residual", CFG_T_BOOL, F(model.zero_init_residual), "true", NULL, 0, 0, 0, 0, 0, NULL, true,
     "gamma of each block's last BN starts at 0"},
    {"model.head_init", CFG_T_ENUM, F(model.head_init), "uniform", NULL, 0, 0, 0, 0, 0, "uniform|normal", true,
     "head init: uniform +-1/sqrt(fan_in) (project default), normal N(0, 0.01^2) (reference)"},

    {"method.name", CFG_T_ENUM, F(method.name), "mocov2", NULL, 0, 0, 0, 0, 0, "mocov2|mocov3|simclr|supervised",
     true, "contrastive framework (docs/method.md §3), or supervised: cross-entropy on the labels, the same slimmable network "
     "with one slimmable linear classifier (the paper's supervised baseline)"},
    {"method.dim", CFG_T_INT, F(method.dim), NULL,
     "128 (mocov2, simclr) / 256 (mocov3) / the classes of data.dataset (supervised: 10, 100 cifar100, 1000 shards)",
     1, 65536, 0, 0, 0, NULL, true, "output dimension of the projection head (supervised: the number of classes)"},
    {"method.mlp_dim", CFG_T_INT, F(method.mlp_dim), NULL, "0 = feature dim (mocov2) / 4096 (mocov3) / 2048 (simclr)",
     0, 1 << 20, 0, 0, 0, NULL, true, "hidden size of the MLP head at width 1.0"},
    {"method.temperature", CFG_T_FLOAT, F(method.temperature), NULL, "0.2 (mocov2) / 1.0 (mocov3) / 0.1 (simclr)",
     0, 100, 1, 0, 0, NULL, true, "contrastive temperature T"},
    {"method.queue", CFG_T_INT, F(method.queue), NULL, "65536 (mocov2) / 0 (others)", 0, 1 << 26, 0, 0, 0, NULL,
     true, "MoCo v2 queue length K (a multiple of optim.batch)"},
    {"method.momentum", CFG_T_FLOAT, F(method.momentum), NULL, "0.999 (mocov2) / 0.99 (mocov3) / 0 (simclr)", 0,
     0.999999, 0, 0, 0, NULL, true, "key-encoder EMA momentum (initial value with momentum_cosine)"},
    {"method.momentum_cosine", CFG_T_BOOL, F(method.momentum_cosine), NULL, "true for mocov3, else false", 0, 0, 0,
     0, 0, NULL, true, "momentum rises to 1 on a cosine over training (MoCo v3)"},
    {"method.bn", CFG_T_ENUM, F(method.bn), "sync", NULL, 0, 0, 0, 0, 0, "sync|local|shuffle", true,
     "batch norm across ranks: synchronized, per rank, or MoCo v2 shuffle BN"},
    {"method.grad_scale", CFG_T_ENUM, F(method.grad_scale), "exact", NULL, 0, 0, 0, 0, 0, "exact|reference", true,
     "simclr: exact (the gradient of the global-mean loss) or reference (the reference's: 1/P of it on P ranks, "
     "its BN parameters and biases take P times smaller steps)"},
    {"method.schedule", CFG_T_ENUM, F(method.schedule), "sequential", NULL, 0, 0, 0, 0, 0, "sequential|wavefront",
     false, "order of the step's passes: one width after another (least memory), or the widths and the key encoder "
     "interleaved layer by layer so that SyncBN reductions are in flight behind the other widths' compute (same "
     "results; more activations alive: `slimclr info`; on one rank, with nothing to hide, the sequential order runs)"},

    {"slimclr.slow_start", CFG_T_BOOL, F(slimclr.slow_start), "true", NULL, 0, 0, 0, 0, 0, NULL, true,
     "train only width 1.0 before slow_start_epoch (docs/method.md §4a)"},
    {"slimclr.slow_start_epoch", CFG_T_FLOAT, F(slimclr.slow_start_epoch), NULL, "optim.epochs / 2", 0, 1e6, 0, 0, 0,
     NULL, true, "fractional epoch at which all widths, distillation and loss weights switch on"},
    {"slimclr.slow_start_lr", CFG_T_FLOAT, F(slimclr.slow_start_lr), NULL,
     "optim.lr (mocov2, simclr) / optim.lr x 3.2/1.2 (mocov3: 3.2 at the recipe's batch 1024, lr 1.2)", 0, 1e4, 1,
     0, 0, NULL, true, "cosine base LR from the slow-start epoch on (no re-warm-up)"},
    {"slimclr.distill", CFG_T_BOOL, F(slimclr.distill), "true", NULL, 0, 0, 0, 0, 0, NULL, true,
     "online distillation from the full network's detached logits (docs/method.md §4b)"},
    {"slimclr.distill_alpha", CFG_T_FLOAT, F(slimclr.distill_alpha), "0.5", NULL, 0, 1, 0, 0, 0, NULL, true,
     "alpha: sub-network loss = (1-alpha) contrastive + alpha KD"},
    {"slimclr.distill_tau", CFG_T_FLOAT, F(slimclr.distill_tau), NULL, "5 (mocov2, simclr) / 1 (mocov3)", 0, 1000, 1,
     0, 0, NULL, true, "distillation temperature tau (teacher = student)"},
    {"slimclr.loss_weights", CFG_T_INT, F(slimclr.loss_weights), "5", NULL, 0, 7, 0, 0, 0, "0|1|2|3|5|6|7", true,
     "loss re-weighting option of docs/method.md §4c (5: full 1 + sum of sub-widths, subs 1)"},
    {"slimclr.loss_reduce", CFG_T_ENUM, F(slimclr.loss_reduce), "sum", NULL, 0, 0, 0, 0, 0, "sum|mean", true,
     "ablation: sum the (weighted) width losses, or average them over the widths trained in the step"},
    {"slimclr.distill_tau_teacher", CFG_T_FLOAT, F(slimclr.distill_tau_teacher), "0", NULL, 0, 1000, 0, 0, 0, NULL,
     true, "ablation: the teacher's distillation temperature (0 = slimclr.distill_tau; the student's stays distill_tau)"},
    {"slimclr.full_distill", CFG_T_BOOL, F(slimclr.full_distill), "false", NULL, 0, 0, 0, 0, 0, NULL, true,
     "ablation (mocov2): each sub-network distils from every larger width, averaged, instead of the full width only"},
    {"slimclr.overlap_weight", CFG_T_BOOL, F(slimclr.overlap_weight), "true", NULL, 0, 0, 0, 0, 0, NULL, true,
     "ablation: false = the sub-networks use disjoint channel blocks (the reference's overlap_weight=False: smallest "
     "width first, then the next; the full width all); needs the sub-widths to sum to <= 1, e.g. [1.0, 0.5, 0.25]"},
    {"slimclr.switch_heads", CFG_T_BOOL, F(slimclr.switch_heads), "false", NULL, 0, 0, 0, 0, 0, NULL, true,
     "ablation (mocov2): one independent projection head per width (the reference's mocov2_switch) instead of one "
     "slimmable head"},
    {"slimclr.feature_distill", CFG_T_ENUM, F(slimclr.feature_distill), "none", NULL, 0, 0, 0, 0, 0, "none|mse|kl",
     true, "ablation: distil the full width's normalised outputs (MSE, or KL over the features at distill_tau) "
     "instead of its contrastive logits"},

    {"data.dataset", CFG_T_ENUM, F(data.dataset), "fmnist", NULL, 0, 0, 0, 0, 0,
     "fmnist|mnist|cifar10|cifar100|shards", true, "training data"},
    {"data.dir", CFG_T_STRING, F(data.dir), NULL, "/usr/share/datasets/fashion-mnist for fmnist; required otherwise", 0,
     0, 0, 0, 0, NULL, false, "folder of the dataset files (or packed shards)"},
    {"data.workers", CFG_T_INT, F(data.workers), "2", NULL, 0, 256, 0, 0, 0, NULL, false,
     "loader threads per rank (0 = load in the training thread)"},
    {"data.augment", CFG_T_ENUM, F(data.augment), NULL, "fmnist for fmnist/mnist, else method.name", 0, 0, 0, 0, 0,
     "fmnist|mocov2|mocov3|simclr|none", true, "augmentation recipe (docs/method.md §6, docs/conventions.md Fashion-MNIST)"},
    {"data.mean", CFG_T_LIST, F(data.mean), NULL, "0.2860 (fmnist), 0.1307 (mnist), ImageNet values (rgb)", -1e3, 1e3,
     0, 1, 3, NULL, true, "normalisation mean per input channel"},
    {"data.std", CFG_T_LIST, F(data.std), NULL, "0.3530 (fmnist), 0.3081 (mnist), ImageNet values (rgb)", 0, 1e3, 1, 1,
     3, NULL, true, "normalisation std per input channel"},
    {"data.crop_scale", CFG_T_LIST, F(data.crop_scale), NULL, "[0.08, 1.0] for augment simclr, else [0.2, 1.0]", 0, 1,
     1, 2, 2, NULL, true, "RandomResizedCrop area range [lo, hi]"},
    {"data.blur", CFG_T_BOOL, F(data.blur), NULL, "false for fmnist/none, true for the rgb recipes", 0, 0, 0, 0, 0,
     NULL, true, "Gaussian blur as in the recipe"},
    {"data.subset", CFG_T_I64, F(data.subset), "0", NULL, 0, BIG, 0, 0, 0, NULL, true,
     "use only the first N training samples (0 = all; quick runs and tests)"},

    {"optim.name", CFG_T_ENUM, F(optim.name), NULL, "sgd (mocov2) / lars (mocov3, simclr)", 0, 0, 0, 0, 0,
     "sgd|lars|adamw", true, "optimizer (docs/method.md §5.1)"},
    {"optim.lr", CFG_T_FLOAT, F(optim.lr), NULL, "0.2 x batch/1024 (mocov2) / 0.3 x batch/256 (mocov3) / 0.075 x "
     "sqrt(batch) (simclr)", 0, 1e4, 1, 0, 0, NULL, true, "base learning rate"},
    {"optim.momentum", CFG_T_FLOAT, F(optim.momentum), "0.9", NULL, 0, 0.999999, 0, 0, 0, NULL, true,
     "SGD/LARS momentum (AdamW beta1)"},
    {"optim.weight_decay", CFG_T_FLOAT, F(optim.weight_decay), NULL, "1e-4 (mocov2) / 1e-6 (mocov3, simclr)", 0, 1,
     0, 0, 0, NULL, true, "weight decay"},
    {"optim.decay_bn_bias", CFG_T_BOOL, F(optim.decay_bn_bias), "true", NULL, 0, 0, 0, 0, 0, NULL, true,
     "SGD decays BN parameters and biases too (as the reference, docs/method.md §5.1)"},
    {"optim.schedule", CFG_T_ENUM, F(optim.schedule), "cosine", NULL, 0, 0, 0, 0, 0, "cosine|step", true,
     "LR schedule after warm-up"},
    {"optim.warmup", CFG_T_FLOAT, F(optim.warmup), NULL, "optim.warmup_epochs / optim.epochs", 0, 0.99, 0, 0, 0, NULL,
     true, "linear warm-up as a fraction of the total steps (setting it overrides optim.warmup_epochs)"},
    {"optim.warmup_epochs", CFG_T_FLOAT, F(optim.warmup_epochs), NULL,
     "10 when optim.epochs >= 100 (the recipes: MoCo v2 200/800, MoCo v3 300, SimCLR 100 epochs); shorter runs keep "
     "the former fraction of optim.epochs: 5% (mocov2), 10/300 (mocov3), 10% (simclr)", 0, 1e6, 0, 0, 0, NULL, false,
     "linear warm-up in (fractional) epochs; below optim.epochs"},
    {"optim.milestones", CFG_T_LIST, F(optim.milestones), "[]", NULL, 0, 1e6, 0, 0, CONFIG_MAX_LIST, NULL, true,
     "epochs at which schedule: step multiplies the LR by 0.1"},
    {"optim.epochs", CFG_T_INT, F(optim.epochs), NULL, "200 (mocov2) / 300 (mocov3) / 100 (simclr)", 1, 1e6, 0, 0, 0,
     NULL, true, "training epochs"},
    {"optim.batch", CFG_T_INT, F(optim.batch), "1024", NULL, 1, 1 << 24, 0, 0, 0, NULL, true,
     "global batch per optimizer step (all ranks, all micro-batches)"},
    {"optim.accum", CFG_T_INT, F(optim.accum), "1", NULL, 1, 4096, 0, 0, 0, NULL, true,
     "micro-batches per optimizer step (each with its own BN statistics)"},
    {"optim.max_steps", CFG_T_I64, F(optim.max_steps), "0", NULL, 0, BIG, 0, 0, 0, NULL, true,
     "> 0: the run's total optimizer steps (schedules compressed to it); 0 = epochs x steps per epoch"},

    {"comm.bucket_mb", CFG_T_FLOAT, F(comm.bucket_mb), "4.0", NULL, 0, 4096, 1, 0, 0, NULL, false,
     "gradient all-reduce bucket size in MiB"},
    {"comm.overlap", CFG_T_BOOL, F(comm.overlap), "true", NULL, 0, 0, 0, 0, 0, NULL, false,
     "overlap the gradient all-reduce with the backward pass"},

    {"checkpoint.every_steps", CFG_T_I64, F(checkpoint.every_steps), "0", NULL, 0, BIG, 0, 0, 0, NULL, false,
     "checkpoint every N optimizer steps (0 = off)"},
    {"checkpoint.every_minutes", CFG_T_FLOAT, F(checkpoint.every_minutes), "30", NULL, 0, 1e6, 0, 0, 0, NULL, false,
     "checkpoint every N minutes of wall-clock (0 = off)"},
    {"checkpoint.keep_last", CFG_T_INT, F(checkpoint.keep_last), "2", NULL, 1, 1e6, 0, 0, 0, NULL, false,
     "checkpoints kept besides snapshots"},
    {"checkpoint.snapshot_epochs", CFG_T_INT, F(checkpoint.snapshot_epochs), "0", NULL, 0, 1e6, 0, 0, 0, NULL, false,
     "also keep the first checkpoint at or after every multiple of N epochs (0 = none)"},

    {"eval.protocol", CFG_T_ENUM, F(eval.protocol), "cached", NULL, 0, 0, 0, 0, 0, "cached|reference", false,
     "linear evaluation: cached (one unaugmented view's features extracted once, standardised: fast) or reference "
     "(the paper's: random-resized-crop + flip views re-drawn every epoch, raw features, best and last reported)"},
    {"eval.probe", CFG_T_ENUM, F(eval.probe), "switch", NULL, 0, 0, 0, 0, 0, "switch|slim", false,
     "linear probe: one linear layer per width (switch) or one shared slimmable layer"},
    {"eval.probe_lr", CFG_T_FLOAT, F(eval.probe_lr), "0.1", NULL, 0, 1e4, 1, 0, 0, NULL, false,
     "probe SGD learning rate (a standardised-feature value unless probe_standardize is false; above 5 it must be)"},
    {"eval.probe_schedule", CFG_T_ENUM, F(eval.probe_schedule), "cosine", NULL, 0, 0, 0, 0, 0, "cosine|step", false,
     "probe LR schedule per step, no warm-up: cosine, or x0.1 at each of eval.probe_milestones"},
    {"eval.probe_milestones", CFG_T_LIST, F(eval.probe_milestones), "[]", NULL, 0, 1e6, 0, 0, CONFIG_MAX_LIST, NULL,
     false, "epochs at which probe_schedule: step multiplies the LR by 0.1 (ascending, <= eval.probe_epochs)"},
    {"eval.probe_standardize", CFG_T_BOOL, F(eval.probe_standardize), NULL,
     "true with protocol cached, false with reference", 0, 0, 0, 0, 0, NULL, false,
     "standardise each feature with the training set's mean/std (false: raw features, as the reference)"},
    {"eval.probe_eval_every", CFG_T_INT, F(eval.probe_eval_every), NULL, "2 with protocol reference, 0 with cached", 0,
     1e6, 0, 0, 0, NULL, false, "evaluate the test set every N probe epochs and report the best too (0 = last only)"},
    {"eval.probe_crop_scale", CFG_T_LIST, F(eval.probe_crop_scale), "[0.08, 1.0]", NULL, 0, 1, 1, 2, 2, NULL, false,
     "protocol reference: RandomResizedCrop area range [lo, hi] of the probe's training views"},
    {"eval.probe_epochs", CFG_T_INT, F(eval.probe_epochs), "100", NULL, 1, 1e6, 0, 0, 0, NULL, false, "probe epochs"},
    {"eval.probe_batch", CFG_T_INT, F(eval.probe_batch), "256", NULL, 1, 1 << 24, 0, 0, 0, NULL, false, "probe batch"},
    {"eval.probe_wd", CFG_T_FLOAT, F(eval.probe_wd), "0", NULL, 0, 1, 0, 0, 0, NULL, false, "probe weight decay"},
    {"eval.probe_distill", CFG_T_BOOL, F(eval.probe_distill), "true", NULL, 0, 0, 0, 0, 0, NULL, false,
     "sub-width probes also distil the full-width probe (docs/method.md §7)"},
    {"eval.ridge_lambdas", CFG_T_LIST, F(eval.ridge_lambdas), "[0.0001, 0.001, 0.01, 0.1, 1]", NULL, 0, 1e9, 1, 0,
     CONFIG_MAX_LIST, NULL, false, "ridge-probe regularisation values tried (ScaLAPACK)"},
    {"eval.knn_every_epochs", CFG_T_INT, F(eval.knn_every_epochs), "0", NULL, 0, 1e6, 0, 0, 0, NULL, false,
     "kNN monitor every N epochs (0 = off)"},
    {"eval.knn_k", CFG_T_INT, F(eval.knn_k), "200", NULL, 1, 1e6, 0, 0, 0, NULL, false, "kNN neighbours"},
    {"eval.knn_t", CFG_T_FLOAT, F(eval.knn_t), "0.1", NULL, 0, 100, 1, 0, 0, NULL, false, "kNN temperature"},
    {"eval.knn_subset", CFG_T_I64, F(eval.knn_subset), "0", NULL, 0, BIG, 0, 0, 0, NULL, false,
     "kNN bank size (0 = whole training set)"},
    {"eval.grad_diag_every", CFG_T_INT, F(eval.grad_diag_every), "0", NULL, 0, 1e9, 0, 0, 0, NULL, false,
     "gradient diagnostics of docs/method.md §8 every N steps (0 = off); also appends the last projection layer's "
     "gradient to <run.dir>/grad_direction.bin (§8.2, for `slimclr graddir`)"},

    {"bench.warmup_steps", CFG_T_INT, F(bench.warmup_steps), "1", NULL, 0, 1e6, 0, 0, 0, NULL, false,
     "untimed steps before measuring"},
    {"bench.steps", CFG_T_INT, F(bench.steps), "5", NULL, 1, 1e6, 0, 0, 0, NULL, false, "timed steps (median)"},
    {"bench.random_input", CFG_T_BOOL, F(bench.random_input), "false", NULL, 0, 0, 0, 0, 0, NULL, false,
     "feed random images instead of the data pipeline"},
};
const int config_schema_n = (int)(sizeof config_schema / sizeof config_schema[0]);
_Static_assert(sizeof config_schema / sizeof config_schema[0] <= CONFIG_MAX_KEYS, "raise CONFIG_MAX_KEYS");
_Static_assert(sizeof(config_method) == sizeof(int), "enums are stored as int");

static void *field(const config_key *k, sc_config *cfg) { return (char *)cfg + k->off; }
static const void *cfield(const config_key *k, const sc_config *cfg) { return (const char *)cfg + k->off; }

/* index of `word` in "a|b|c", -1 if absent */
static int choice_index(const char *choices, const char *word) {
    int i = 0;
    size_t wl = strlen(word);
    for (const char *p = choices; *p; i++) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == wl && strncmp(p, word, l) == 0) return i;
        if (!e) break;
        p = e + 1;
    }
    return -1;
}

static void choice_name(const char *choices, int idx, char *buf, size_t n) {
    const char *p = choices;
    for (int i = 0; i < idx && p; i++) {
        p = strchr(p, '|');
        if (p) p++;
    }
    if (!p) { snprintf(buf, n, "%d", idx); return; }
    const char *e = strchr(p, '|');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    snprintf(buf, n, "%.*s", (int)l, p);
}

static void fmt_range(const config_key *k, char *buf, size_t n) {
    if (k->hi >= BIG) snprintf(buf, n, "%s %.15g", k->lo_open ? ">" : ">=", k->lo);
    else snprintf(buf, n, "in %c%.15g, %.15g]", k->lo_open ? '(' : '[', k->lo, k->hi);
}

void config_expected(const config_key *k, char *buf, size_t n) {
    char r[96];
    fmt_range(k, r, sizeof r);
    switch (k->type) {
    case CFG_T_BOOL: snprintf(buf, n, "true or false"); break;
    case CFG_T_INT:
    case CFG_T_I64:
        if (k->choices) snprintf(buf, n, "one of %s", k->choices);
        else snprintf(buf, n, "an integer %s", r);
        break;
    case CFG_T_FLOAT: snprintf(buf, n, "a number %s", r); break;
    case CFG_T_STRING: snprintf(buf, n, "a string"); break;
    case CFG_T_ENUM: snprintf(buf, n, "one of %s", k->choices); break;
    case CFG_T_THREADS: snprintf(buf, n, "auto or an integer in [1, %.0f]", k->hi); break;
    case CFG_T_LIST:
        if (k->minn == k->maxn) snprintf(buf, n, "a list of %d numbers %s", k->minn, r);
        else snprintf(buf, n, "a list of %d to %d numbers %s", k->minn, k->maxn, r);
        break;
    }
}

static bool parse_i64(const char *s, long long *v) {
    char *end;
    errno = 0;
    while (isspace((unsigned char)*s)) s++;
    if (!*s) return false;
    long long x = strtoll(s, &end, 10);
    while (isspace((unsigned char)*end)) end++;
    if (errno || *end) return false;
    *v = x;
    return true;
}

static bool parse_f64(const char *s, double *v) {
    char *end;
    errno = 0;
    while (isspace((unsigned char)*s)) s++;
    if (!*s) return false;
    double x = strtod(s, &end);
    while (isspace((unsigned char)*end)) end++;
    if (errno == ERANGE || *end || !isfinite(x)) return false;
    *v = x;
    return true;
}

static bool in_range(const config_key *k, double x) {
    if (k->lo_open ? !(x > k->lo) : !(x >= k->lo)) return false;
    return x <= k->hi;
}

static bool fail(const config_key *k, const char *text, char *why, size_t n) {
    char e[160];
    config_expected(k, e, sizeof e);
    snprintf(why, n, "expected %s, got \"%s\"", e, text);
    return false;
}

bool config_parse_scalar(const config_key *k, const char *text, sc_config *cfg, char *why, size_t n) {
    void *p = field(k, cfg);
    long long iv;
    double dv;
    switch (k->type) {
    case CFG_T_BOOL: {
        static const char *yes[] = {"true", "yes", "on"}, *no[] = {"false", "no", "off"};
        for (int i = 0; i < 3; i++) {
            if (strcasecmp(text, yes[i]) == 0) { *(bool *)p = true; return true; }
            if (strcasecmp(text, no[i]) == 0) { *(bool *)p = false; return true; }
        }
        return fail(k, text, why, n);
    }
    case CFG_T_INT:
    case CFG_T_I64:
        if (!parse_i64(text, &iv)) return fail(k, text, why, n);
        if (k->choices) {
            char w[32];
            snprintf(w, sizeof w, "%lld", iv);
            if (choice_index(k->choices, w) < 0) return fail(k, text, why, n);
        } else if (!in_range(k, (double)iv)) return fail(k, text, why, n);
        if (k->type == CFG_T_INT) *(int *)p = (int)iv;
        else *(int64_t *)p = iv;
        return true;
    case CFG_T_FLOAT:
        if (!parse_f64(text, &dv) || !in_range(k, dv)) return fail(k, text, why, n);
        *(double *)p = dv;
        return true;
    case CFG_T_STRING:
        if (strlen(text) >= k->size) {
            snprintf(why, n, "expected a string of at most %zu characters", k->size - 1);
            return false;
        }
        snprintf((char *)p, k->size, "%s", text);
        return true;
    case CFG_T_ENUM: {
        int i = choice_index(k->choices, text);
        if (i < 0) return fail(k, text, why, n);
        *(int *)p = i;
        return true;
    }
    case CFG_T_THREADS:
        if (strcasecmp(text, "auto") == 0) { *(int *)p = 0; return true; }
        if (!parse_i64(text, &iv) || !in_range(k, (double)iv)) return fail(k, text, why, n);
        *(int *)p = (int)iv;
        return true;
    case CFG_T_LIST: {
        const char *items[1] = {text};
        return config_parse_list(k, items, 1, cfg, why, n);
    }
    }
    return fail(k, text, why, n);
}

bool config_parse_list(const config_key *k, const char *const *items, int nitems, sc_config *cfg, char *why,
                       size_t n) {
    if (k->type != CFG_T_LIST) {
        char e[160];
        config_expected(k, e, sizeof e);
        snprintf(why, n, "expected %s, got a list", e);
        return false;
    }
    if (nitems < k->minn || nitems > k->maxn) {
        char e[160];
        config_expected(k, e, sizeof e);
        snprintf(why, n, "expected %s, got %d value%s", e, nitems, nitems == 1 ? "" : "s");
        return false;
    }
    config_list tmp = {0};
    for (int i = 0; i < nitems; i++) {
        double v;
        if (!parse_f64(items[i], &v) || !in_range(k, v)) {
            char e[160];
            config_expected(k, e, sizeof e);
            snprintf(why, n, "expected %s, got \"%s\" at position %d", e, items[i], i + 1);
            return false;
        }
        tmp.v[tmp.n++] = v;
    }
    *(config_list *)field(k, cfg) = tmp;
    return true;
}

/* shortest text that strtod maps back to the same double */
static void fmt_double(double x, char *buf, size_t n) {
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    /* keep floats recognisable as floats for readers */
    if (!strpbrk(buf, ".eEni")) {
        size_t l = strlen(buf);
        if (l + 2 < n) memcpy(buf + l, ".0", 3);
    }
}

void config_format_value(const config_key *k, const sc_config *cfg, char *buf, size_t n) {
    const void *p = cfield(k, cfg);
    switch (k->type) {
    case CFG_T_BOOL: snprintf(buf, n, "%s", *(const bool *)p ? "true" : "false"); break;
    case CFG_T_INT: snprintf(buf, n, "%d", *(const int *)p); break;
    case CFG_T_I64: snprintf(buf, n, "%lld", (long long)*(const int64_t *)p); break;
    case CFG_T_FLOAT: fmt_double(*(const double *)p, buf, n); break;
    case CFG_T_STRING: {
        /* double-quoted YAML with escapes */
        size_t o = 0;
        const char *s = (const char *)p;
        if (n < 3) { if (n) buf[0] = 0; break; }
        buf[o++] = '"';
        for (; *s && o + 3 < n; s++) {
            if (*s == '"' || *s == '\\') buf[o++] = '\\';
            buf[o++] = *s;
        }
        buf[o++] = '"';
        buf[o] = 0;
        break;
    }
    case CFG_T_ENUM: choice_name(k->choices, *(const int *)p, buf, n); break;
    case CFG_T_THREADS:
        if (*(const int *)p == 0) snprintf(buf, n, "auto");
        else snprintf(buf, n, "%d", *(const int *)p);
        break;
    case CFG_T_LIST: {
        const config_list *l = (const config_list *)p;
        size_t o = 0;
        o += (size_t)snprintf(buf + o, n - o, "[");
        for (int i = 0; i < l->n && o < n; i++) {
            char t[40];
            fmt_double(l->v[i], t, sizeof t);
            o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? ", " : "", t);
        }
        if (o < n) snprintf(buf + o, n - o, "]");
        break;
    }
    }
}

static const char *type_name(const config_key *k) {
    switch (k->type) {
    case CFG_T_BOOL: return "bool";
    case CFG_T_INT: case CFG_T_I64: return "int";
    case CFG_T_FLOAT: return "float";
    case CFG_T_STRING: return "string";
    case CFG_T_ENUM: return "enum";
    case CFG_T_LIST: return "list";
    case CFG_T_THREADS: return "auto|int";
    }
    return "?";
}

void config_write_docs(FILE *f) {
    fprintf(f, "# Configuration keys\n\n"
               "Generated from the schema table in `src/io/config_schema.c` (do not edit by hand; regenerate with\n"
               "`config_write_docs`). A config file is YAML with one mapping per section; every key can also be given\n"
               "on the command line as `--set section.key=value` (lists as `--set model.widths=[1.0,0.5]`), validated\n"
               "exactly like the file. A key that is omitted gets its *recipe* default (docs/method.md \"Choices\", §4, §5.2,\n"
               "§6): several defaults depend on `method.name`, `data.dataset`, `optim.batch` or `optim.epochs`, as the\n"
               "Default column says. The resolved config (`run.dir`/config.yaml) marks which values were defaults.\n\n"
               "Resume: keys marked **R** must match the checkpoint (they make up the config hash); the others\n"
               "(run directory, threads, logging, checkpoint cadence, communication, evaluation, bench) may change.\n\n"
               "Cross-key rules: `model.widths` descending, starting at 1.0, each in (0, 1], at most %d, and\n"
               "`int(model.base * w) >= 1`; `optim.batch %% optim.accum == 0`; MoCo v2: `method.queue > 0` and a\n"
               "multiple of `optim.batch`; `method.bn: shuffle` only with mocov2; mocov3/simclr need `method.mlp_dim > 0`;\n"
               "with slow start, `slimclr.slow_start_epoch < optim.epochs`; `data.mean`/`data.std` have\n"
               "`model.in_channels` entries; fmnist/mnist have 1 channel, cifar 3; `data.dir` is required for every\n"
               "dataset except fmnist; `data.crop_scale` lo <= hi; `optim.milestones` ascending and <= epochs;\n"
               "`optim.warmup_epochs` below `optim.epochs` (and equal to `optim.warmup` x epochs when both are set);\n"
               "`eval.probe_milestones` ascending and <= `eval.probe_epochs`; `eval.probe_lr` <= 5 with standardised\n"
               "features (a larger value is a raw-feature rate: use `eval.protocol: reference`); the ablation keys only\n"
               "with the methods they apply to (`full_distill`, `switch_heads`: mocov2; `feature_distill`: not\n"
               "supervised; `method.grad_scale: reference`: simclr; distillation ablations need `slimclr.distill`;\n"
               "`overlap_weight: false` needs the sub-widths to sum to <= 1). Which key reproduces which experiment of\n"
               "the paper: docs/paper-map.md.\n\n"
               "Run length: steps per epoch = floor(samples / optim.batch) (drop_last, samples = data.subset when\n"
               "set); total steps = `optim.max_steps` when > 0, else epochs x steps per epoch; the LR and momentum\n"
               "schedules run over the total steps.\n\n",
            CONFIG_MAX_WIDTHS);
    fprintf(f, "| key | type | default | allowed | R | description |\n|---|---|---|---|---|---|\n");
    for (int i = 0; i < config_schema_n; i++) {
        const config_key *k = &config_schema[i];
        char e[160];
        config_expected(k, e, sizeof e);
        fprintf(f, "| `%s` | %s | %s%s%s | %s | %s | %s |\n", k->path, type_name(k), k->def ? "`" : "",
                k->def ? k->def : k->def_doc, k->def ? "`" : "", e, k->hashed ? "R" : "", k->doc);
    }
}

void config_write_reference(FILE *f) {
    fprintf(f, "# Every configuration key with its default (generated from src/io/config_schema.c).\n"
               "# Keys whose default depends on other keys (recipe defaults) are commented out here;\n"
               "# see docs/config.md. This file loads as is: it is the default configuration.\n");
    const char *sec = "";
    size_t seclen = 0;
    for (int i = 0; i < config_schema_n; i++) {
        const config_key *k = &config_schema[i];
        const char *dot = strchr(k->path, '.');
        size_t l = (size_t)(dot - k->path);
        if (l != seclen || strncmp(sec, k->path, l) != 0) {
            fprintf(f, "\n%.*s:\n", (int)l, k->path);
            sec = k->path;
            seclen = l;
        }
        char e[160];
        config_expected(k, e, sizeof e);
        fprintf(f, "  # %s (%s)%s\n", k->doc, e, k->hashed ? "; must match on resume" : "");
        if (k->def) fprintf(f, "  %s: %s\n", dot + 1, k->def);
        else fprintf(f, "  # %s: default %s\n", dot + 1, k->def_doc);
    }
}
