/* io/config: the defaults (static and derived from the recipe), the cross-key checks, the output (YAML, table),
 * hash/diff for resume and the plan's step counts. The YAML + --set reader is config_yaml.c, the key table
 * config_schema.c. */
#include "io/config.h"
#include "io/config_schema.h"
#include "config_internal.h"
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const config_key *key_at(int i) { return &config_schema[i]; }

int config_nkeys(void) { return config_schema_n; }
const char *config_key_path(int i) { return (i >= 0 && i < config_schema_n) ? config_schema[i].path : NULL; }

int config_key_index(const char *path) {
    for (int i = 0; i < config_schema_n; i++)
        if (strcmp(config_schema[i].path, path) == 0) return i;
    return -1;
}

static int kidx(const char *path) {
    int i = config_key_index(path);
    if (i < 0) sc_fatal("config: no key %s in the schema", path);
    return i;
}

void config_value_text(const sc_config *cfg, int i, char *buf, size_t n) {
    config_format_value(key_at(i), cfg, buf, n);
}

bool config_is_explicit(const sc_config *cfg, const char *path) {
    int i = config_key_index(path);
    return i >= 0 && cfg->origin[i] != CFG_ORIGIN_DEFAULT;
}

const char *config_method_name(config_method m) {
    static const char *n[] = {"mocov2", "mocov3", "simclr", "supervised"};
    return (m >= 0 && m <= CFG_METHOD_SUPERVISED) ? n[m] : "?";
}
const char *config_dataset_name(config_dataset d) {
    static const char *n[] = {"fmnist", "mnist", "cifar10", "cifar100", "shards"};
    return (d >= 0 && d <= CFG_DATA_SHARDS) ? n[d] : "?";
}

/* ---------- locations and messages ---------- */

static void where(const sc_config *cfg, int i, char *buf, size_t n) {
    if (cfg->origin[i] == CFG_ORIGIN_FILE) snprintf(buf, n, "%s:%d:%d", cfg->source, cfg->line[i], cfg->col[i]);
    else if (cfg->origin[i] == CFG_ORIGIN_SET) snprintf(buf, n, "--set %s", config_schema[i].path);
    else snprintf(buf, n, "%s", cfg->source[0] ? cfg->source : "(defaults)");
}

/* A cross-key error, located at key i (the one the user most likely has to change). */
static sc_err xerr(const sc_config *cfg, int i, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static sc_err xerr(const sc_config *cfg, int i, const char *fmt, ...) {
    char loc[CONFIG_PATH_MAX + 64], msg[CONFIG_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    where(cfg, i, loc, sizeof loc);
    return sc_errorf(SC_ERR_CONFIG, "%s: %s%s: %s", loc, config_schema[i].path,
                     cfg->origin[i] == CFG_ORIGIN_DEFAULT ? " (default)" : "", msg);
}

/* ---------- defaults ---------- */

void config_static_defaults(sc_config *cfg) {
    char why[256];
    for (int i = 0; i < config_schema_n; i++) {
        const config_key *k = key_at(i);
        if (!k->def) continue;
        bool ok;
        if (k->type == CFG_T_LIST) {
            /* "[a, b]" -> items */
            char tmp[256], *items[CONFIG_MAX_LIST];
            int n = 0;
            snprintf(tmp, sizeof tmp, "%s", k->def);
            for (char *t = strtok(tmp, "[], "); t && n < CONFIG_MAX_LIST; t = strtok(NULL, "[], ")) items[n++] = t;
            ok = config_parse_list(k, (const char *const *)items, n, cfg, why, sizeof why);
        } else {
            ok = config_parse_scalar(k, k->def, cfg, why, sizeof why);
        }
        if (!ok) sc_fatal("config schema: bad default of %s: %s", k->path, why);
    }
}

static bool dflt(const sc_config *cfg, const char *path) { return cfg->origin[kidx(path)] == CFG_ORIGIN_DEFAULT; }
static void set_list(config_list *l, int n, const double *v) {
    l->n = n;
    for (int i = 0; i < n; i++) l->v[i] = v[i];
}

/* Recipe defaults (docs/method.md "Choices", §3-§6) for every key not set explicitly. Order: what others depend on first. */
static void resolve_recipes(sc_config *c) {
    const config_method m = c->method.name;
    const bool gray = c->data.dataset == CFG_DATA_FMNIST || c->data.dataset == CFG_DATA_MNIST;
    if (dflt(c, "run.dir")) {
        const char *base = c->source[0] ? c->source : "default";
        const char *s = strrchr(base, '/');
        s = s ? s + 1 : base;
        size_t l = strlen(s);
        if (l > 5 && strcmp(s + l - 5, ".yaml") == 0) l -= 5;
        else if (l > 4 && strcmp(s + l - 4, ".yml") == 0) l -= 4;
        snprintf(c->run.dir, sizeof c->run.dir, "runs/%.*s", (int)l, s);
    }
    if (dflt(c, "model.in_channels")) c->model.in_channels = gray ? 1 : 3;
    if (dflt(c, "model.image_size"))
        c->model.image_size = gray ? 28 : (c->data.dataset == CFG_DATA_SHARDS ? 224 : 32);
    if (dflt(c, "model.stem")) c->model.stem = c->model.image_size <= 64 ? CFG_STEM_SMALL : CFG_STEM_IMAGENET;

    const bool sup = m == CFG_METHOD_SUPERVISED;
    if (dflt(c, "method.dim"))
        c->method.dim = sup ? (c->data.dataset == CFG_DATA_CIFAR100 ? 100 : c->data.dataset == CFG_DATA_SHARDS ? 1000 : 10)
                            : m == CFG_METHOD_MOCOV3 ? 256 : 128;
    if (dflt(c, "method.mlp_dim"))
        c->method.mlp_dim = m == CFG_METHOD_MOCOV3 ? 4096 : m == CFG_METHOD_SIMCLR ? 2048 : 0;
    if (dflt(c, "method.temperature"))
        c->method.temperature = m == CFG_METHOD_MOCOV2 ? 0.2 : m == CFG_METHOD_MOCOV3 || sup ? 1.0 : 0.1;
    if (dflt(c, "method.queue")) c->method.queue = m == CFG_METHOD_MOCOV2 ? 65536 : 0;
    if (dflt(c, "method.momentum"))
        c->method.momentum = m == CFG_METHOD_MOCOV2 ? 0.999 : m == CFG_METHOD_MOCOV3 ? 0.99 : 0.0;
    if (dflt(c, "method.momentum_cosine")) c->method.momentum_cosine = m == CFG_METHOD_MOCOV3;

    if (dflt(c, "optim.name")) c->optim.name = m == CFG_METHOD_MOCOV2 || sup ? CFG_OPT_SGD : CFG_OPT_LARS;
    if (dflt(c, "optim.epochs")) c->optim.epochs = m == CFG_METHOD_MOCOV2 ? 200 : m == CFG_METHOD_MOCOV3 ? 300 : 100;
    if (dflt(c, "optim.lr")) {
        double b = c->optim.batch;
        c->optim.lr = m == CFG_METHOD_MOCOV2 ? 0.2 * b / 1024 : m == CFG_METHOD_MOCOV3 ? 0.3 * b / 256
                    : sup ? 0.1 * b / 256 : 0.075 * sqrt(b);
    }
    if (dflt(c, "optim.weight_decay")) c->optim.weight_decay = m == CFG_METHOD_MOCOV2 || sup ? 1e-4 : 1e-6;
    /* warm-up: the recipes give 10 epochs (docs/method.md "Recipes"); a run shorter than the recipes keeps the
     * former fraction, so that short runs do not become all warm-up. optim.warmup (a fraction) wins when set. */
    if (!dflt(c, "optim.warmup") && dflt(c, "optim.warmup_epochs")) {
        c->optim.warmup_epochs = c->optim.warmup * c->optim.epochs;
    } else if (dflt(c, "optim.warmup_epochs")) {
        double frac = m == CFG_METHOD_MOCOV2 || sup ? 0.05 : m == CFG_METHOD_MOCOV3 ? 10.0 / 300.0 : 0.1;
        c->optim.warmup_epochs = c->optim.epochs >= 100 ? 10.0 : frac * c->optim.epochs;
    }
    if (dflt(c, "optim.warmup")) c->optim.warmup = c->optim.warmup_epochs / c->optim.epochs;

    if (dflt(c, "slimclr.slow_start_epoch")) c->slimclr.slow_start_epoch = c->optim.epochs / 2.0;
    if (dflt(c, "slimclr.slow_start_lr"))
        c->slimclr.slow_start_lr = m == CFG_METHOD_MOCOV3 ? c->optim.lr * (3.2 / 1.2) : c->optim.lr;
    if (dflt(c, "slimclr.distill_tau")) c->slimclr.distill_tau = m == CFG_METHOD_MOCOV3 || sup ? 1.0 : 5.0;

    const bool ref = c->eval.protocol == CFG_PROTO_REFERENCE;
    if (dflt(c, "eval.probe_standardize")) c->eval.probe_standardize = !ref;
    if (dflt(c, "eval.probe_eval_every")) c->eval.probe_eval_every = ref ? 2 : 0;

    if (dflt(c, "data.dir"))
        snprintf(c->data.dir, sizeof c->data.dir, "%s",
                 c->data.dataset == CFG_DATA_FMNIST ? "/usr/share/datasets/fashion-mnist" : "");
    if (dflt(c, "data.augment"))
        c->data.augment = gray ? CFG_AUG_FMNIST
                               : m == CFG_METHOD_MOCOV2 || sup ? CFG_AUG_MOCOV2
                               : m == CFG_METHOD_MOCOV3 ? CFG_AUG_MOCOV3 : CFG_AUG_SIMCLR;
    static const double inet_mean[3] = {0.485, 0.456, 0.406}, inet_std[3] = {0.229, 0.224, 0.225};
    const bool mnist = c->data.dataset == CFG_DATA_MNIST;
    if (dflt(c, "data.mean")) {
        if (c->model.in_channels == 1) set_list(&c->data.mean, 1, (double[]){mnist ? 0.1307 : 0.2860});
        else set_list(&c->data.mean, 3, inet_mean);
    }
    if (dflt(c, "data.std")) {
        if (c->model.in_channels == 1) set_list(&c->data.std, 1, (double[]){mnist ? 0.3081 : 0.3530});
        else set_list(&c->data.std, 3, inet_std);
    }
    if (dflt(c, "data.crop_scale"))
        set_list(&c->data.crop_scale, 2, (double[]){c->data.augment == CFG_AUG_SIMCLR ? 0.08 : 0.2, 1.0});
    if (dflt(c, "data.blur"))
        c->data.blur = c->data.augment == CFG_AUG_MOCOV2 || c->data.augment == CFG_AUG_MOCOV3 ||
                       c->data.augment == CFG_AUG_SIMCLR;
}

/* cross-key checks, in the order the errors are reported: the model, the method and the batch */
static sc_err check_model(const sc_config *c) {
    const config_list *w = &c->model.widths;
    int iw = kidx("model.widths");
    if (w->v[0] != 1.0) return xerr(c, iw, "the first width must be 1.0 (the full network), got %g", w->v[0]);
    for (int i = 1; i < w->n; i++)
        if (!(w->v[i] < w->v[i - 1]))
            return xerr(c, iw, "widths must be strictly descending, got %g after %g", w->v[i], w->v[i - 1]);
    for (int i = 0; i < w->n; i++)
        if ((int)(c->model.base * w->v[i]) < 1)
            return xerr(c, iw, "width %g gives 0 channels at model.base %d (need int(base*w) >= 1)", w->v[i],
                        c->model.base);
    if (c->optim.batch % c->optim.accum)
        return xerr(c, kidx("optim.accum"), "%d does not divide optim.batch %d (batch = accum x micro-batch)",
                    c->optim.accum, c->optim.batch);
    if (c->method.name == CFG_METHOD_MOCOV2) {
        if (c->method.queue <= 0) return xerr(c, kidx("method.queue"), "MoCo v2 needs a queue > 0");
        if (c->method.queue % c->optim.batch)
            return xerr(c, kidx("method.queue"), "%d is not a multiple of optim.batch %d (MoCo v2 enqueues whole "
                        "global batches)", c->method.queue, c->optim.batch);
    } else if (c->method.name == CFG_METHOD_SUPERVISED) {
        if (c->method.bn == CFG_BN_SHUFFLE)
            return xerr(c, kidx("method.bn"), "shuffle BN is MoCo v2's (it needs a key encoder); use sync or local "
                        "with supervised");
        if (c->data.augment == CFG_AUG_MOCOV3)
            return xerr(c, kidx("data.augment"), "mocov3's two views differ; supervised trains on one view: use "
                        "fmnist, mocov2, simclr or none");
    } else {
        if (c->method.bn == CFG_BN_SHUFFLE)
            return xerr(c, kidx("method.bn"), "shuffle BN is MoCo v2's; use sync or local with %s",
                        config_method_name(c->method.name));
        if (c->method.mlp_dim <= 0)
            return xerr(c, kidx("method.mlp_dim"), "%s needs an MLP hidden size > 0",
                        config_method_name(c->method.name));
    }
    if (c->slimclr.slow_start && !(c->slimclr.slow_start_epoch < c->optim.epochs))
        return xerr(c, kidx("slimclr.slow_start_epoch"), "%g must be below optim.epochs %d (or set "
                    "slimclr.slow_start: false)", c->slimclr.slow_start_epoch, c->optim.epochs);
    return SC_OK;
}

/* the data and the run directory */
static sc_err check_data(const sc_config *c) {
    const bool gray = c->data.dataset == CFG_DATA_FMNIST || c->data.dataset == CFG_DATA_MNIST;
    if (c->data.dataset != CFG_DATA_SHARDS && c->model.in_channels != (gray ? 1 : 3))
        return xerr(c, kidx("model.in_channels"), "%s images have %d channel%s, got %d",
                    config_dataset_name(c->data.dataset), gray ? 1 : 3, gray ? "" : "s", c->model.in_channels);
    if (c->data.mean.n != c->model.in_channels)
        return xerr(c, kidx("data.mean"), "needs %d value(s), one per input channel (model.in_channels), got %d",
                    c->model.in_channels, c->data.mean.n);
    if (c->data.std.n != c->model.in_channels)
        return xerr(c, kidx("data.std"), "needs %d value(s), one per input channel (model.in_channels), got %d",
                    c->model.in_channels, c->data.std.n);
    if (c->data.crop_scale.v[0] > c->data.crop_scale.v[1])
        return xerr(c, kidx("data.crop_scale"), "lo %g is above hi %g", c->data.crop_scale.v[0],
                    c->data.crop_scale.v[1]);
    if (c->data.dataset != CFG_DATA_FMNIST && !c->data.dir[0])
        return xerr(c, kidx("data.dir"), "required for dataset %s (the folder of its files)",
                    config_dataset_name(c->data.dataset));
    if (!c->run.dir[0]) return xerr(c, kidx("run.dir"), "must not be empty");
    return SC_OK;
}

/* the training's milestones and gradient scale, then the ablations: a key that does not apply is refused, never
 * ignored */
static sc_err check_training(const sc_config *c) {
    const config_list *ms = &c->optim.milestones;
    for (int i = 0; i < ms->n; i++) {
        if (i && !(ms->v[i] > ms->v[i - 1]))
            return xerr(c, kidx("optim.milestones"), "must be ascending, got %g after %g", ms->v[i], ms->v[i - 1]);
        if (ms->v[i] > c->optim.epochs)
            return xerr(c, kidx("optim.milestones"), "%g is beyond optim.epochs %d", ms->v[i], c->optim.epochs);
    }
    if (c->method.grad_scale == CFG_GRAD_REFERENCE && c->method.name != CFG_METHOD_SIMCLR)
        return xerr(c, kidx("method.grad_scale"), "reference applies to simclr only (only SimCLR's loss couples the "
                    "ranks' features), got method.name %s",
                    config_method_name(c->method.name));
    const config_slimclr *sl = &c->slimclr;
    if (sl->full_distill && c->method.name != CFG_METHOD_MOCOV2)
        return xerr(c, kidx("slimclr.full_distill"), "applies to mocov2 only (the reference's full_distill), got "
                    "method.name %s", config_method_name(c->method.name));
    if (!sl->overlap_weight) {
        double sub = 0;
        for (int i = 1; i < c->model.widths.n; i++) sub += c->model.widths.v[i];
        if (sub > 1.0 + 1e-9)
            return xerr(c, kidx("slimclr.overlap_weight"), "false needs the sub-widths side by side in the full width, "
                        "but model.widths' sub-widths sum to %g > 1 (e.g. widths [1.0, 0.5, 0.25])", sub);
    }
    if (sl->switch_heads && c->method.name != CFG_METHOD_MOCOV2)
        return xerr(c, kidx("slimclr.switch_heads"), "applies to mocov2 only (the reference's mocov2_switch head), "
                    "got method.name %s", config_method_name(c->method.name));
    if (sl->feature_distill && c->method.name == CFG_METHOD_SUPERVISED)
        return xerr(c, kidx("slimclr.feature_distill"), "applies to the contrastive methods; supervised distils its "
                    "class probabilities");
    if (sl->full_distill && sl->feature_distill)
        return xerr(c, kidx("slimclr.feature_distill"), "replaces the logits' distillation, which "
                    "slimclr.full_distill extends: set one of them");
    if ((sl->full_distill || sl->feature_distill || sl->distill_tau_teacher > 0) && !sl->distill)
        return xerr(c, kidx(sl->full_distill ? "slimclr.full_distill" : sl->feature_distill
                                ? "slimclr.feature_distill" : "slimclr.distill_tau_teacher"),
                    "changes the distillation, which is off (slimclr.distill: false)");
    if (sl->distill_tau_teacher > 0 && sl->feature_distill)
        return xerr(c, kidx("slimclr.distill_tau_teacher"), "applies to the logits' distillation, not to "
                    "slimclr.feature_distill");
    return SC_OK;
}

/* the warm-up and the probe */
static sc_err check_schedules(const sc_config *c) {
    /* both set: only when they agree (a resolved config.yaml lists both) */
    if (!dflt(c, "optim.warmup") && !dflt(c, "optim.warmup_epochs") &&
        fabs(c->optim.warmup * c->optim.epochs - c->optim.warmup_epochs) > 1e-9 * (1 + c->optim.warmup_epochs))
        return xerr(c, kidx("optim.warmup_epochs"), "%g disagrees with optim.warmup %g x optim.epochs %d: give one of "
                    "optim.warmup (a fraction of the steps) and optim.warmup_epochs", c->optim.warmup_epochs,
                    c->optim.warmup, c->optim.epochs);
    if (!(c->optim.warmup_epochs < c->optim.epochs) && c->optim.warmup_epochs > 0)
        return xerr(c, kidx("optim.warmup_epochs"), "%g is not below optim.epochs %d (set a shorter warm-up, or 0)",
                    c->optim.warmup_epochs, c->optim.epochs);
    const config_list *pm = &c->eval.probe_milestones;
    for (int i = 0; i < pm->n; i++) {
        if (i && !(pm->v[i] > pm->v[i - 1]))
            return xerr(c, kidx("eval.probe_milestones"), "must be ascending, got %g after %g", pm->v[i], pm->v[i - 1]);
        if (pm->v[i] > c->eval.probe_epochs)
            return xerr(c, kidx("eval.probe_milestones"), "%g is beyond eval.probe_epochs %d", pm->v[i],
                        c->eval.probe_epochs);
    }
    /* lr 60 (the reference's MoCo v2 probe) is a raw-feature value: on standardised features each step would move
     * a logit by about lr x sqrt(features), and the probe diverges */
    if (c->eval.probe_standardize && c->eval.probe_lr > 5.0)
        return xerr(c, kidx("eval.probe_lr"), "%g is a raw-feature learning rate, but the features are standardised "
                    "(eval.probe_standardize true%s): use eval.protocol: reference (raw features) or "
                    "eval.probe_standardize: false, or an lr near 0.1", c->eval.probe_lr,
                    c->eval.protocol == CFG_PROTO_CACHED ? ", the cached protocol's default" : "");
    if (c->eval.probe_crop_scale.v[0] > c->eval.probe_crop_scale.v[1])
        return xerr(c, kidx("eval.probe_crop_scale"), "lo %g is above hi %g", c->eval.probe_crop_scale.v[0],
                    c->eval.probe_crop_scale.v[1]);
    return SC_OK;
}

static sc_err check_cross(const sc_config *c) {
    SC_TRY(check_model(c));
    SC_TRY(check_data(c));
    SC_TRY(check_training(c));
    return check_schedules(c);
}

sc_err config_resolve(sc_config *cfg) {
    resolve_recipes(cfg);
    return check_cross(cfg);
}

void config_defaults(sc_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    config_static_defaults(cfg);
    resolve_recipes(cfg);
}

/* ---------- output ---------- */

void config_write_yaml(const sc_config *cfg, FILE *f) {
    fprintf(f, "# resolved slimclr configuration%s%s; \"# default\" marks values not set explicitly\n",
            cfg->source[0] ? " from " : "", cfg->source);
    char val[1024];
    size_t seclen = 0;
    const char *sec = "";
    for (int i = 0; i < config_schema_n; i++) {
        const config_key *k = key_at(i);
        const char *dot = strchr(k->path, '.');
        size_t l = (size_t)(dot - k->path);
        if (l != seclen || strncmp(sec, k->path, l) != 0) {
            fprintf(f, "%.*s:\n", (int)l, k->path);
            sec = k->path;
            seclen = l;
        }
        config_format_value(k, cfg, val, sizeof val);
        fprintf(f, "  %s: %s%s\n", dot + 1, val, cfg->origin[i] == CFG_ORIGIN_DEFAULT ? "  # default" : "");
    }
}

void config_print_table(const sc_config *cfg, FILE *f) {
    char val[1024], loc[CONFIG_PATH_MAX + 64];
    fprintf(f, "%-28s %-34s %s\n", "key", "value", "from");
    for (int i = 0; i < config_schema_n; i++) {
        config_format_value(key_at(i), cfg, val, sizeof val);
        if (cfg->origin[i] == CFG_ORIGIN_DEFAULT) snprintf(loc, sizeof loc, "default");
        else if (cfg->origin[i] == CFG_ORIGIN_SET) snprintf(loc, sizeof loc, "--set");
        else snprintf(loc, sizeof loc, "line %d", cfg->line[i]);
        fprintf(f, "%-28s %-34s %s\n", config_schema[i].path, val, loc);
    }
}

/* ---------- hash, diff, equality ---------- */

/* Keys added after checkpoints were written: hashed only when they differ from their static default, so that the
 * hash of a config that does not use them (every older checkpoint's) stays what it was. */
static const char *const hash_when_set[] = {"method.grad_scale", "slimclr.overlap_weight", "slimclr.switch_heads",
                                            "slimclr.loss_reduce", "slimclr.full_distill", "slimclr.feature_distill",
                                            "slimclr.distill_tau_teacher"};

static bool hash_skip(const sc_config *cfg, int i) {
    const config_key *k = key_at(i);
    bool listed = false;
    for (size_t j = 0; j < sizeof hash_when_set / sizeof hash_when_set[0]; j++) listed |= !strcmp(hash_when_set[j], k->path);
    if (!listed || !k->def) return false;
    static sc_config d; /* the static defaults, formatted like the value */
    static bool have;
    if (!have) { memset(&d, 0, sizeof d); config_static_defaults(&d); have = true; }
    char a[256], b[256];
    config_format_value(k, cfg, a, sizeof a);
    config_format_value(k, &d, b, sizeof b);
    return !strcmp(a, b);
}

uint64_t config_hash(const sc_config *cfg) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a over "key=value\n" of the hashed keys */
    char val[1024];
    for (int i = 0; i < config_schema_n; i++) {
        if (!config_schema[i].hashed || hash_skip(cfg, i)) continue;
        config_format_value(key_at(i), cfg, val, sizeof val);
        for (const char *s = config_schema[i].path; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
        h = (h ^ '=') * 0x100000001b3ull;
        for (const char *s = val; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
        h = (h ^ '\n') * 0x100000001b3ull;
    }
    return h;
}

bool config_diff_key(const sc_config *a, const sc_config *b, char *buf, size_t n) {
    char va[1024], vb[1024];
    /* a key set explicitly explains the difference better than the defaults derived from it (optim.batch rather
     * than the optim.lr computed from it). b's explicit keys first: a is usually a checkpoint's resolved config,
     * where every key reads as set (the YAML lists them all), so b (the user's) tells what was changed. */
    for (int pass = 0; pass < 3; pass++)
        for (int i = 0; i < config_schema_n; i++) {
            if (!config_schema[i].hashed) continue;
            if (pass == 0 && b->origin[i] == CFG_ORIGIN_DEFAULT) continue;
            if (pass == 1 && a->origin[i] == CFG_ORIGIN_DEFAULT) continue;
            config_format_value(key_at(i), a, va, sizeof va);
            config_format_value(key_at(i), b, vb, sizeof vb);
            if (strcmp(va, vb) != 0) {
                snprintf(buf, n, "%s: %s vs %s", config_schema[i].path, va, vb);
                return true;
            }
        }
    if (n) buf[0] = 0;
    return false;
}

bool config_equal(const sc_config *a, const sc_config *b) {
    char va[1024], vb[1024];
    for (int i = 0; i < config_schema_n; i++) {
        config_format_value(key_at(i), a, va, sizeof va);
        config_format_value(key_at(i), b, vb, sizeof vb);
        if (strcmp(va, vb) != 0) return false;
    }
    return true;
}

void config_model_signature(const sc_config *cfg, char *buf, size_t n) {
    char w[256];
    size_t o = 0;
    w[0] = 0;
    for (int i = 0; i < cfg->model.widths.n && o < sizeof w; i++)
        o += (size_t)snprintf(w + o, sizeof w - o, "%s%g", i ? "," : "", cfg->model.widths.v[i]);
    snprintf(buf, n, "resnet%d-%s-b%d-in%d-w%s-%s", cfg->model.depth,
             cfg->model.stem == CFG_STEM_SMALL ? "small" : "imagenet", cfg->model.base, cfg->model.in_channels, w,
             config_method_name(cfg->method.name));
}

/* ---------- plan helpers ---------- */

int64_t config_train_samples(const sc_config *cfg, int64_t n_train) {
    return (cfg->data.subset > 0 && cfg->data.subset < n_train) ? cfg->data.subset : n_train;
}

int64_t config_steps_per_epoch(const sc_config *cfg, int64_t n_train) {
    return config_train_samples(cfg, n_train) / cfg->optim.batch;
}

int64_t config_total_steps(const sc_config *cfg, int64_t n_train) {
    if (cfg->optim.max_steps > 0) return cfg->optim.max_steps;
    return config_steps_per_epoch(cfg, n_train) * cfg->optim.epochs;
}

int64_t config_sched_steps_per_epoch(const sc_config *cfg, int64_t n_train) {
    if (cfg->optim.max_steps <= 0) return config_steps_per_epoch(cfg, n_train);
    int64_t e = cfg->optim.epochs > 0 ? cfg->optim.epochs : 1;
    int64_t spe = (cfg->optim.max_steps + e - 1) / e;
    return spe > 0 ? spe : 1;
}

int64_t config_slow_start_step(const sc_config *cfg, int64_t n_train) {
    if (!cfg->slimclr.slow_start) return 0;
    int64_t spe = config_sched_steps_per_epoch(cfg, n_train);
    /* smallest step with step/spe >= S; the small slack absorbs S given as a decimal fraction */
    return (int64_t)ceil(cfg->slimclr.slow_start_epoch * (double)spe - 1e-9);
}

sc_err config_check_ranks(const sc_config *cfg, int nranks) {
    int parts = nranks * cfg->optim.accum;
    if (nranks < 1 || cfg->optim.batch % parts)
        return xerr(cfg, kidx("optim.batch"), "%d does not split over %d rank(s) x optim.accum %d micro-batches; "
                    "use a batch that is a multiple of %d", cfg->optim.batch, nranks, cfg->optim.accum, parts);
    return SC_OK;
}
