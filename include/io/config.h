/* io/config: the run configuration. One typed struct, filled from a YAML file plus repeated
 * `--set a.b=value` overrides, both validated by one schema table (src/io/config_schema.c) from which the
 * documentation (docs/config.md), yaml/reference.yaml and the resolved printout are also generated.
 *
 * Order of resolution: static defaults -> file -> --set (in order) -> recipe defaults for every key that
 * was NOT set explicitly (they depend on method.name, data.dataset, optim.batch...: docs/method.md "Choices", §4,
 * §5.2, §6) -> cross-key checks. Errors come back as SC_ERR_CONFIG with sc_errorf() messages of the form
 * `file:line:column: key.path: what was expected` (or `--set key=value: ...`).
 * Only io/ includes yaml.h: the struct is plain C. Nothing here is collective; every rank may load the
 * same file, the result is identical. */
#ifndef SC_IO_CONFIG_H
#define SC_IO_CONFIG_H
#include "core/error.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_MAX_WIDTHS 8
#define CONFIG_MAX_LIST 16
#define CONFIG_MAX_KEYS 128
#define CONFIG_PATH_MAX 512

typedef struct { int n; double v[CONFIG_MAX_LIST]; } config_list;

typedef enum { CFG_STEM_SMALL = 0, CFG_STEM_IMAGENET } config_stem;
typedef enum { CFG_HEAD_INIT_UNIFORM = 0, CFG_HEAD_INIT_NORMAL } config_head_init;
typedef enum { CFG_METHOD_MOCOV2 = 0, CFG_METHOD_MOCOV3, CFG_METHOD_SIMCLR, CFG_METHOD_SUPERVISED } config_method;
typedef enum { CFG_BN_SYNC = 0, CFG_BN_LOCAL, CFG_BN_SHUFFLE } config_bn;
typedef enum { CFG_GRAD_EXACT = 0, CFG_GRAD_REFERENCE } config_grad_scale;
typedef enum { CFG_STEP_SEQUENTIAL = 0, CFG_STEP_WAVEFRONT } config_step_schedule;
typedef enum { CFG_DATA_FMNIST = 0, CFG_DATA_MNIST, CFG_DATA_CIFAR10, CFG_DATA_CIFAR100, CFG_DATA_SHARDS } config_dataset;
typedef enum { CFG_AUG_FMNIST = 0, CFG_AUG_MOCOV2, CFG_AUG_MOCOV3, CFG_AUG_SIMCLR, CFG_AUG_NONE } config_augment;
typedef enum { CFG_OPT_SGD = 0, CFG_OPT_LARS, CFG_OPT_ADAMW } config_optimizer;
typedef enum { CFG_SCHED_COSINE = 0, CFG_SCHED_STEP } config_schedule;
typedef enum { CFG_PROBE_SWITCH = 0, CFG_PROBE_SLIM } config_probe;
typedef enum { CFG_PROTO_CACHED = 0, CFG_PROTO_REFERENCE } config_protocol;
typedef enum { CFG_CONV_AUTO = 0, CFG_CONV_DIRECT, CFG_CONV_WINOGRAD, CFG_CONV_WINO4 } config_conv_algo; /* = nn/conv's conv_algo */

typedef struct {
    char dir[CONFIG_PATH_MAX]; /* default runs/<config basename without .yaml> */
    int64_t seed;              /* 3407 */
    int threads;               /* 0 = auto (affinity mask / SLURM_CPUS_PER_TASK / OMP_NUM_THREADS) */
    config_conv_algo conv_algo; /* 3x3 stride-1 convolutions (changes rounding only: not hashed) */
    int log_every;             /* optimizer steps between metrics lines */
    bool trace, metrics;
} config_run;

typedef struct {
    int depth, base, in_channels, image_size;
    config_stem stem;
    config_list widths;        /* descending, widths.v[0] = 1.0 */
    bool zero_init_residual;
    config_head_init head_init;
} config_model;

typedef struct {
    config_method name;
    int dim, mlp_dim;          /* mlp_dim 0 = the backbone feature dim (MoCo v2 head) */
    double temperature;
    int queue;                 /* MoCo v2 only; 0 otherwise */
    double momentum;           /* EMA of the key encoder (initial value when momentum_cosine) */
    bool momentum_cosine;      /* MoCo v3: m(e) = 1 - (1 - m0)(1 + cos(pi e / E)) / 2 */
    config_bn bn;
    config_grad_scale grad_scale; /* SimCLR: exact global-mean gradient, or the reference's (1/P of it) */
    config_step_schedule schedule; /* order of the step's passes (changes no result: not hashed) */
} config_method_sec;

typedef struct {
    bool slow_start;
    double slow_start_epoch;   /* fractional; compared with epoch + step/steps_per_epoch */
    double slow_start_lr;
    bool distill;
    double distill_alpha, distill_tau;
    int loss_weights;          /* docs/method.md §4c option: 0|1|2|3|5|6|7 */
    /* ablations (docs/paper-map.md) */
    int loss_reduce;           /* 0 sum, 1 mean of the width losses */
    double distill_tau_teacher; /* 0 = distill_tau */
    bool full_distill;         /* MoCo v2: KD from every larger width, averaged */
    bool switch_heads;         /* MoCo v2: one projection head per width */
    bool overlap_weight;       /* false: the sub-widths use disjoint channel blocks (model_cfg.disjoint) */
    int feature_distill;       /* 0 none, 1 mse, 2 kl (obj_feat_mode): on the normalised outputs instead of logits */
} config_slimclr;

typedef struct {
    config_dataset dataset;
    char dir[CONFIG_PATH_MAX];
    int workers;
    config_augment augment;
    config_list mean, std;     /* one value per input channel */
    config_list crop_scale;    /* [lo, hi] of RandomResizedCrop */
    bool blur;
    int64_t subset;            /* 0 = all training samples */
} config_data;

typedef struct {
    config_optimizer name;
    double lr, momentum, weight_decay;
    bool decay_bn_bias;
    config_schedule schedule;
    double warmup;             /* fraction of the total steps (what the schedule uses) */
    double warmup_epochs;      /* the same in epochs (the recipe's unit) */
    config_list milestones;    /* epochs, for schedule: step */
    int epochs;
    int batch;                 /* global, per optimizer step */
    int accum;                 /* micro-batches per optimizer step */
    int64_t max_steps;         /* > 0: the run's total steps (schedules are compressed to it) */
} config_optim;

typedef struct { double bucket_mb; bool overlap; } config_comm;

typedef struct {
    int64_t every_steps;       /* 0 = off */
    double every_minutes;      /* 0 = off */
    int keep_last;
    int snapshot_epochs;       /* 0 = none */
} config_checkpoint;

typedef struct {
    config_protocol protocol;  /* cached: one unaugmented view, standardised; reference: the paper's */
    config_probe probe;
    double probe_lr;
    config_schedule probe_schedule;
    config_list probe_milestones; /* epochs, for probe_schedule: step */
    bool probe_standardize;
    int probe_eval_every;      /* epochs between test evaluations (0 = the last epoch only) */
    config_list probe_crop_scale; /* reference protocol: RandomResizedCrop area range of the training view */
    int probe_epochs, probe_batch;
    double probe_wd;
    bool probe_distill;
    config_list ridge_lambdas;
    int knn_every_epochs, knn_k;
    double knn_t;
    int64_t knn_subset;        /* 0 = all */
    int grad_diag_every;       /* optimizer steps; 0 = off */
} config_eval;

typedef struct { int warmup_steps, steps; bool random_input; } config_bench;

typedef struct sc_config {
    config_run run;
    config_model model;
    config_method_sec method;
    config_slimclr slimclr;
    config_data data;
    config_optim optim;
    config_comm comm;
    config_checkpoint checkpoint;
    config_eval eval;
    config_bench bench;
    /* provenance, indexed like the schema table */
    char source[CONFIG_PATH_MAX];      /* the YAML file ("" = none) */
    uint8_t origin[CONFIG_MAX_KEYS];   /* config_origin */
    int line[CONFIG_MAX_KEYS], col[CONFIG_MAX_KEYS];
} sc_config;

typedef enum { CFG_ORIGIN_DEFAULT = 0, CFG_ORIGIN_FILE = 1, CFG_ORIGIN_SET = 2 } config_origin;

/* Static defaults + recipe defaults for the default method; no file. Always succeeds. */
void config_defaults(sc_config *cfg);
/* Loads `path` (NULL = defaults only), applies the `--set` strings in order, resolves and validates. */
sc_err config_load(const char *path, const char *const *sets, int nsets, sc_config *out);
/* Same from YAML text in memory; `name` is used in messages and for the run.dir default. */
sc_err config_load_string(const char *text, const char *name, const char *const *sets, int nsets, sc_config *out);
/* One "a.b=value" override on a loaded config, then re-resolve and re-validate. On error *cfg is unchanged. */
sc_err config_set(sc_config *cfg, const char *assignment);
/* Recompute recipe defaults for keys not set explicitly, then run the cross-key checks. */
sc_err config_resolve(sc_config *cfg);

/* The resolved config as YAML (every key; defaults commented as such); config_load of it gives an equal config. */
void config_write_yaml(const sc_config *cfg, FILE *f);
/* Table printed at start-up: key, value, origin (default / file:line / --set). */
void config_print_table(const sc_config *cfg, FILE *f);
/* docs/config.md (markdown table of every key) and yaml/reference.yaml (every key, commented). */
void config_write_docs(FILE *f);
void config_write_reference(FILE *f);

/* 64-bit hash over ONLY the keys that must match on resume (model, method, slimclr, data except dir/workers,
 * optim); not run.*, comm, checkpoint cadence, eval, bench. */
uint64_t config_hash(const sc_config *cfg);
/* Names the first hashed key that differs, e.g. "model.depth: 18 vs 34"; returns false when none differs. */
bool config_diff_key(const sc_config *a, const sc_config *b, char *buf, size_t n);
/* true when two configs are equal in every key (provenance ignored). */
bool config_equal(const sc_config *a, const sc_config *b);

/* "resnet18-small-b64-in1-w1,0.75,0.5,0.25-mocov2": what a checkpoint's weights fit. */
void config_model_signature(const sc_config *cfg, char *buf, size_t n);

/* Plan helpers (n_train = samples in the training set before data.subset). drop_last as docs/method.md §5.1. */
int64_t config_train_samples(const sc_config *cfg, int64_t n_train);
int64_t config_steps_per_epoch(const sc_config *cfg, int64_t n_train);
int64_t config_total_steps(const sc_config *cfg, int64_t n_train);
/* Steps per epoch of the schedules (LR, momentum, slow start): the data's, or with optim.max_steps > 0 the run's
 * steps spread over optim.epochs "schedule epochs" (ceil(max_steps / epochs)), so the whole recipe is compressed. */
int64_t config_sched_steps_per_epoch(const sc_config *cfg, int64_t n_train);
/* First optimizer step at which epoch + step/steps_per_epoch >= slow_start_epoch (0 when slow start is off). */
int64_t config_slow_start_step(const sc_config *cfg, int64_t n_train);
/* The global batch splits evenly over `nranks` x optim.accum micro-batches; SC_ERR_CONFIG naming the keys if not
 * (for `info` and for train before anything is allocated). nranks is global (the same on every rank). */
sc_err config_check_ranks(const sc_config *cfg, int nranks);

/* Schema access (for tools): number of keys, key path, value as text, origin. */
int config_nkeys(void);
const char *config_key_path(int i);
int config_key_index(const char *path);   /* -1 if unknown */
void config_value_text(const sc_config *cfg, int i, char *buf, size_t n);
bool config_is_explicit(const sc_config *cfg, const char *path);

const char *config_method_name(config_method m);
const char *config_dataset_name(config_dataset d);
#endif
