/* Unit tests of io/config: every shipped YAML loads; recipe defaults per method; --set overrides and their
 * validation; error messages (malformed YAML, unknown key, wrong type, out of range, bad widths) with
 * file:line:column; write/reload round trip; the resume hash and the diff; plan helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "io/config.h"
#include "io/config_schema.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the tests run from the repository root; also accept build/tests as working directory */
static const char *yaml_path(const char *name, char *buf, size_t n) {
    const char *pre[] = {"", "../", "../../"};
    for (int i = 0; i < 3; i++) {
        snprintf(buf, n, "%syaml/%s", pre[i], name);
        if (access(buf, R_OK) == 0) return buf;
    }
    fail_msg("cannot find yaml/%s (run from the repository root)", name);
    return NULL;
}

static sc_config cfg_of(const char *text, const char *const *sets, int nsets) {
    sc_config c;
    sc_err e = config_load_string(text, "t.yaml", sets, nsets, &c);
    if (e != SC_OK) fail_msg("unexpected error: %s", sc_last_error());
    return c;
}

/* loads and expects failure with every given substring in the message */
static void expect_err(const char *text, const char *const *sets, int nsets, int nsub, ...) {
    sc_config c;
    sc_err e = config_load_string(text, "t.yaml", sets, nsets, &c);
    if (e != SC_ERR_CONFIG) fail_msg("expected SC_ERR_CONFIG for:\n%s\ngot %d", text, e);
    va_list ap;
    va_start(ap, nsub);
    for (int i = 0; i < nsub; i++) {
        const char *s = va_arg(ap, const char *);
        if (!strstr(sc_last_error(), s)) fail_msg("message \"%s\" lacks \"%s\"", sc_last_error(), s);
    }
    va_end(ap);
}

static void test_shipped_yaml_load(void **st) {
    (void)st;
    const char *files[] = {"fmnist-slimclr-mocov2.yaml", "fmnist-slimclr-mocov3.yaml", "fmnist-slimclr-simclr.yaml",
                           "bench-step.yaml", "imagenet-slimclr-mocov2-r50.yaml", "imagenet-slimclr-mocov3-r50.yaml",
                           "reference.yaml", "fmnist-supervised.yaml"};
    char p[512];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        sc_config c;
        if (config_load(yaml_path(files[i], p, sizeof p), NULL, 0, &c) != SC_OK)
            fail_msg("%s: %s", files[i], sc_last_error());
    }
    sc_config c;
    assert_int_equal(config_load(yaml_path("fmnist-slimclr-mocov2.yaml", p, sizeof p), NULL, 0, &c), SC_OK);
    assert_string_equal(c.run.dir, "runs/fmnist-slimclr-mocov2");
    assert_int_equal(c.model.base, 16);
    assert_int_equal(c.method.queue, 4096);
    assert_string_equal(c.data.dir, "/usr/share/datasets/fashion-mnist");
    char sig[160];
    config_model_signature(&c, sig, sizeof sig);
    assert_string_equal(sig, "resnet18-small-b16-in1-w1,0.75,0.5,0.25-mocov2");
    /* the plan of the demo: 60000 / 256 = 234 steps per epoch, 150 steps (max_steps: the 1-epoch schedule is
     * compressed into them), slow start at half of them */
    assert_int_equal(config_steps_per_epoch(&c, 60000), 234);
    assert_int_equal(config_total_steps(&c, 60000), 150);
    assert_int_equal(config_sched_steps_per_epoch(&c, 60000), 150);
    assert_int_equal(config_slow_start_step(&c, 60000), 75);
    /* B1 exactly */
    assert_int_equal(config_load(yaml_path("bench-step.yaml", p, sizeof p), NULL, 0, &c), SC_OK);
    assert_int_equal(c.model.base, 64);
    assert_int_equal(c.optim.batch, 64);
    assert_int_equal(c.method.queue, 4096);
    assert_true(c.method.temperature == 0.2 && c.slimclr.distill && c.slimclr.loss_weights == 5);
    assert_true(!c.slimclr.slow_start && c.bench.random_input && c.optim.name == CFG_OPT_SGD);
    assert_int_equal(config_slow_start_step(&c, 60000), 0);
    assert_int_equal(config_load(yaml_path("imagenet-slimclr-mocov3-r50.yaml", p, sizeof p), NULL, 0, &c), SC_OK);
    assert_true(c.slimclr.slow_start_lr == 3.2 && c.optim.lr == 1.2 && c.model.stem == CFG_STEM_IMAGENET);
    assert_int_equal(c.data.mean.n, 3);
}

static void test_recipe_defaults(void **st) {
    (void)st;
    sc_config c = cfg_of("method:\n  name: mocov2\n", NULL, 0);
    assert_true(c.method.temperature == 0.2 && c.slimclr.distill_tau == 5.0 && c.method.dim == 128);
    assert_true(c.method.queue == 65536 && c.method.momentum == 0.999 && !c.method.momentum_cosine);
    assert_true(c.optim.name == CFG_OPT_SGD && c.optim.lr == 0.2 && c.optim.weight_decay == 1e-4);
    assert_true(c.optim.epochs == 200 && c.slimclr.slow_start_epoch == 100 && c.slimclr.slow_start_lr == 0.2);
    assert_true(c.slimclr.distill_alpha == 0.5 && c.slimclr.loss_weights == 5 && c.method.bn == CFG_BN_SYNC);
    assert_true(c.model.widths.n == 4 && c.model.widths.v[3] == 0.25);
    assert_true(c.data.mean.n == 1 && c.data.mean.v[0] == 0.2860 && c.data.std.v[0] == 0.3530);
    assert_true(c.model.in_channels == 1 && c.model.image_size == 28 && c.model.stem == CFG_STEM_SMALL);
    assert_true(c.data.augment == CFG_AUG_FMNIST && !c.data.blur && c.data.crop_scale.v[0] == 0.2);
    assert_true(c.run.seed == 3407 && c.run.threads == 0 && c.checkpoint.keep_last == 2);
    assert_true(config_is_explicit(&c, "method.name"));
    assert_false(config_is_explicit(&c, "method.temperature"));

    c = cfg_of("method:\n  name: mocov3\n", NULL, 0);
    assert_true(c.method.temperature == 1.0 && c.slimclr.distill_tau == 1.0 && c.method.dim == 256);
    assert_true(c.method.mlp_dim == 4096 && c.method.momentum == 0.99 && c.method.momentum_cosine);
    assert_true(c.optim.name == CFG_OPT_LARS && fabs(c.optim.lr - 1.2) < 1e-12 && c.optim.weight_decay == 1e-6);
    assert_true(fabs(c.slimclr.slow_start_lr - 3.2) < 1e-12 && c.slimclr.slow_start_epoch == 150);

    c = cfg_of("method:\n  name: simclr\n", NULL, 0);
    assert_true(c.method.temperature == 0.1 && c.slimclr.distill_tau == 5.0 && c.method.mlp_dim == 2048);
    assert_true(fabs(c.optim.lr - 2.4) < 1e-12 && c.slimclr.slow_start_lr == c.optim.lr && c.optim.epochs == 100);

    /* derived defaults follow explicit keys; explicit keys are never overridden */
    c = cfg_of("optim:\n  lr: 0.5\n  epochs: 10\nmethod:\n  temperature: 0.3\n", NULL, 0);
    assert_true(c.slimclr.slow_start_lr == 0.5 && c.slimclr.slow_start_epoch == 5 && c.method.temperature == 0.3);
    c = cfg_of("data:\n  dataset: cifar10\n  dir: /tmp/cifar\n", NULL, 0);
    assert_true(c.model.in_channels == 3 && c.model.image_size == 32 && c.data.mean.n == 3);
    assert_true(c.data.mean.v[0] == 0.485 && c.data.augment == CFG_AUG_MOCOV2 && c.data.blur);

    /* the loss weights of these keys: ssl/objective's obj_loss_weights (tests/test_objective.c) */
    c = cfg_of("slimclr:\n  loss_weights: 6\n", NULL, 0);
    assert_int_equal(c.slimclr.loss_weights, 6);
    /* empty file and no file: all defaults */
    c = cfg_of("", NULL, 0);
    sc_config d;
    assert_int_equal(config_load(NULL, NULL, 0, &d), SC_OK);
    assert_string_equal(d.run.dir, "runs/default");
}

static void test_set_overrides(void **st) {
    (void)st;
    const char *sets[] = {"optim.lr=0.1", "model.widths=[1.0, 0.5]", "run.threads=3", "run.dir=/tmp/a: b",
                          "slimclr.distill=false", "optim.lr=0.125"};
    sc_config c = cfg_of("optim:\n  lr: 0.7\n  batch: 256\nmethod:\n  queue: 4096\n", sets, 6);
    assert_true(c.optim.lr == 0.125 && c.model.widths.n == 2 && c.model.widths.v[1] == 0.5);
    assert_true(c.run.threads == 3 && !c.slimclr.distill);
    assert_string_equal(c.run.dir, "/tmp/a: b");
    assert_true(c.slimclr.slow_start_lr == 0.125); /* derived from the final lr */
    assert_true(config_is_explicit(&c, "model.widths"));
    /* config_set on a loaded config, and its validation leaves the config unchanged */
    assert_int_equal(config_set(&c, "model.depth=34"), SC_OK);
    assert_int_equal(c.model.depth, 34);
    assert_int_equal(config_set(&c, "model.depth=19"), SC_ERR_CONFIG);
    assert_non_null(strstr(sc_last_error(), "--set model.depth=19: expected one of 18|34|50|101|152, got \"19\""));
    assert_int_equal(c.model.depth, 34);
    assert_int_equal(config_set(&c, "optim.accum=3"), SC_ERR_CONFIG);
    assert_non_null(strstr(sc_last_error(), "--set optim.accum: optim.accum: 3 does not divide optim.batch 256"));
    assert_int_equal(c.optim.accum, 1);

    const char *bad1[] = {"optim.lrr=0.1"};
    expect_err("", bad1, 1, 2, "--set optim.lrr=0.1: unknown key optim.lrr", "did you mean optim.lr?");
    const char *bad2[] = {"optim.lr"};
    expect_err("", bad2, 1, 1, "--set optim.lr: expected key=value");
    const char *bad3[] = {"model.widths=[1.0, 0.5, 0.75]"};
    expect_err("", bad3, 1, 2, "--set model.widths", "strictly descending");
    const char *bad4[] = {"run.trace=maybe"};
    expect_err("", bad4, 1, 1, "--set run.trace=maybe: expected true or false, got \"maybe\"");
    const char *bad5[] = {"optim.lr=[0.1"};
    expect_err("", bad5, 1, 2, "--set optim.lr=[0.1", "malformed value");
    const char *bad6[] = {"run.threads=0"};
    expect_err("", bad6, 1, 1, "expected auto or an integer in [1, 4096], got \"0\"");
}

static void test_error_messages(void **st) {
    (void)st;
    expect_err("model:\n  depth: [18\n", NULL, 0, 2, "t.yaml:3:1: malformed YAML", "flow sequence");
    expect_err("model:\n\tdepth: 18\n", NULL, 0, 2, "t.yaml:2:1: malformed YAML", "cannot start any token");
    expect_err("model:\n  widht: [1.0]\n", NULL, 0, 1, "t.yaml:2:3: unknown key model.widht (did you mean model.widths?)");
    expect_err("modle:\n  depth: 18\n", NULL, 0, 1, "t.yaml:1:1: unknown key modle (did you mean model?)");
    expect_err("model:\n  batch: 64\n", NULL, 0, 1, "unknown key model.batch (did you mean optim.batch?)");
    expect_err("model:\n  depth: abc\n", NULL, 0, 1, "t.yaml:2:10: model.depth: expected one of 18|34|50|101|152, got \"abc\"");
    expect_err("optim:\n  lr: fast\n", NULL, 0, 1, "t.yaml:2:7: optim.lr: expected a number in (0, 10000], got \"fast\"");
    expect_err("optim:\n  lr: -1\n", NULL, 0, 1, "optim.lr: expected a number in (0, 10000], got \"-1\"");
    expect_err("optim:\n  epochs: 2.5\n", NULL, 0, 1, "optim.epochs: expected an integer in [1, 1000000], got \"2.5\"");
    expect_err("optim:\n  accum: 0\n", NULL, 0, 1, "t.yaml:2:10: optim.accum: expected an integer in [1, 4096]");
    expect_err("slimclr:\n  distill_alpha: 1.5\n", NULL, 0, 1, "slimclr.distill_alpha: expected a number in [0, 1]");
    expect_err("method:\n  name: moco\n", NULL, 0, 1, "method.name: expected one of mocov2|mocov3|simclr|supervised, got \"moco\"");
    expect_err("optim:\n  lr: [0.1]\n", NULL, 0, 1, "optim.lr: expected a number in (0, 10000], got a list");
    expect_err("model: 18\n", NULL, 0, 1, "t.yaml:1:8: model: is a section");
    expect_err("model:\n  depth: 18\n  depth: 34\n", NULL, 0, 1, "t.yaml:3:10: model.depth: duplicate key (first set at line 2)");
    expect_err("- 1\n- 2\n", NULL, 0, 1, "expected a mapping of sections");
    /* bad width lists */
    expect_err("model:\n  widths: [0.5, 0.25]\n", NULL, 0, 1, "t.yaml:2:11: model.widths: the first width must be 1.0");
    expect_err("model:\n  widths: [1.0, 0.25, 0.5]\n", NULL, 0, 1, "t.yaml:2:11: model.widths: widths must be strictly descending");
    expect_err("model:\n  widths: [1.0, 1.5]\n", NULL, 0, 1, "model.widths: expected a list of 1 to 8 numbers in (0, 1], got \"1.5\" at position 2");
    expect_err("model:\n  widths: [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]\n", NULL, 0, 1, "got 9 values");
    expect_err("model:\n  widths: [1.0, 0]\n", NULL, 0, 1, "in (0, 1], got \"0\"");
    expect_err("model:\n  widths: [1.0, 0.01]\n  base: 16\n", NULL, 0, 1, "width 0.01 gives 0 channels at model.base 16");
    expect_err("model:\n  widths: [1.0, 0.5, 0.5]\n", NULL, 0, 1, "strictly descending");
    /* cross-key checks */
    expect_err("optim:\n  batch: 256\nmethod:\n  queue: 1000\n", NULL, 0, 1,
               "t.yaml:4:10: method.queue: 1000 is not a multiple of optim.batch 256");
    expect_err("optim:\n  epochs: 10\nslimclr:\n  slow_start_epoch: 10\n", NULL, 0, 1,
               "slimclr.slow_start_epoch: 10 must be below optim.epochs 10");
    expect_err("method:\n  name: mocov3\n  bn: shuffle\n", NULL, 0, 1, "method.bn: shuffle BN is MoCo v2's");
    expect_err("model:\n  in_channels: 3\n", NULL, 0, 1, "model.in_channels: fmnist images have 1 channel, got 3");
    expect_err("data:\n  mean: [0.1, 0.2]\n", NULL, 0, 1, "data.mean: needs 1 value(s)");
    expect_err("data:\n  dataset: shards\n", NULL, 0, 1, "data.dir (default): required for dataset shards");
    expect_err("data:\n  crop_scale: [0.9, 0.2]\n", NULL, 0, 1, "data.crop_scale: lo 0.9 is above hi 0.2");
    expect_err("optim:\n  epochs: 100\n  milestones: [80, 60]\n", NULL, 0, 1, "optim.milestones: must be ascending");
    expect_err("model:\n  depth: 18\n---\nmodel:\n  depth: 34\n", NULL, 0, 1, "found a second one");
    /* file errors */
    sc_config c;
    assert_int_equal(config_load("/nonexistent/x.yaml", NULL, 0, &c), SC_ERR_IO);
    assert_non_null(strstr(sc_last_error(), "/nonexistent/x.yaml: cannot open"));
}

/* the keys of the paper's experiments: linear-evaluation protocol */
static void test_paper_keys(void **st) {
    (void)st;
    sc_config c = cfg_of("eval:\n  protocol: reference\n", NULL, 0);
    assert_false(c.eval.probe_standardize); /* the reference protocol's defaults: raw features, every 2 epochs */
    assert_int_equal(c.eval.probe_eval_every, 2);
    c = cfg_of("", NULL, 0);
    assert_true(c.eval.probe_standardize);
    assert_int_equal(c.eval.probe_eval_every, 0);
    expect_err("eval:\n  probe_epochs: 50\n  probe_schedule: step\n  probe_milestones: [30, 60]\n", NULL, 0, 1,
               "t.yaml:4:21: eval.probe_milestones: 60 is beyond eval.probe_epochs 50");
    expect_err("eval:\n  probe_lr: 60\n", NULL, 0, 2, "eval.probe_lr: 60 is a raw-feature learning rate",
               "eval.protocol: reference");
    expect_err("eval:\n  protocol: reference\n  probe_standardize: true\n  probe_lr: 30\n", NULL, 0, 1,
               "standardised");
    (void)cfg_of("eval:\n  protocol: reference\n  probe_lr: 60\n", NULL, 0);
    (void)cfg_of("eval:\n  probe_standardize: false\n  probe_lr: 60\n", NULL, 0);
    /* warm-up in epochs: the recipes' 10, the former fraction for short runs, optim.warmup (fraction) still works */
    c = cfg_of("method:\n  name: mocov2\noptim:\n  epochs: 800\n", NULL, 0);
    assert_true(c.optim.warmup_epochs == 10 && fabs(c.optim.warmup - 10.0 / 800) < 1e-15);
    c = cfg_of("method:\n  name: mocov3\n", NULL, 0);
    assert_true(c.optim.warmup_epochs == 10 && fabs(c.optim.warmup - 10.0 / 300) < 1e-15);
    c = cfg_of("method:\n  name: simclr\n", NULL, 0);
    assert_true(c.optim.warmup_epochs == 10 && fabs(c.optim.warmup - 0.1) < 1e-15);
    c = cfg_of("optim:\n  epochs: 20\n", NULL, 0);
    assert_true(fabs(c.optim.warmup - 0.05) < 1e-15 && fabs(c.optim.warmup_epochs - 1.0) < 1e-12);
    c = cfg_of("optim:\n  epochs: 200\n  warmup: 0.1\n", NULL, 0);
    assert_true(c.optim.warmup == 0.1 && fabs(c.optim.warmup_epochs - 20) < 1e-12);
    c = cfg_of("optim:\n  epochs: 200\n  warmup_epochs: 4\n", NULL, 0);
    assert_true(fabs(c.optim.warmup - 0.02) < 1e-15);
    expect_err("optim:\n  epochs: 200\n  warmup_epochs: 4\n  warmup: 0.1\n", NULL, 0, 1,
               "optim.warmup_epochs: 4 disagrees with optim.warmup 0.1");
    expect_err("optim:\n  epochs: 5\n  warmup_epochs: 5\n", NULL, 0, 1, "optim.warmup_epochs: 5 is not below");
    /* method.grad_scale: simclr only; hashed only when not the default (older checkpoints keep their hash) */
    expect_err("method:\n  grad_scale: reference\n", NULL, 0, 1, "method.grad_scale: reference applies to simclr only");
    sc_config s0 = cfg_of("method:\n  name: simclr\n", NULL, 0);
    sc_config s1 = cfg_of("method:\n  name: simclr\n  grad_scale: exact\n", NULL, 0);
    sc_config s2 = cfg_of("method:\n  name: simclr\n  grad_scale: reference\n", NULL, 0);
    assert_true(config_hash(&s0) == config_hash(&s1) && config_hash(&s0) != config_hash(&s2));
    sc_config m;
    char p[512];
    assert_int_equal(config_load(yaml_path("imagenet-slimclr-mocov2-r50.yaml", p, sizeof p), NULL, 0, &m), SC_OK);
    assert_int_equal(m.eval.protocol, CFG_PROTO_REFERENCE);
    assert_int_equal(m.eval.probe_schedule, CFG_SCHED_STEP);
    assert_int_equal(m.eval.probe_milestones.n, 2);
}

static void test_round_trip(void **st) {
    (void)st;
    const char *files[] = {"fmnist-slimclr-mocov2.yaml", "imagenet-slimclr-mocov3-r50.yaml", "bench-step.yaml"};
    char p[512];
    for (int i = 0; i < 3; i++) {
        const char *sets[] = {"optim.lr=0.0612345678901234", "run.dir=/tmp/x \"q\"", "data.mean=[0.1]",
                              "model.widths=[1.0, 0.7, 0.3]"};
        sc_config a, b;
        assert_int_equal(config_load(yaml_path(files[i], p, sizeof p), sets, i == 0 ? 4 : 0, &a), SC_OK);
        char tmp[] = "/tmp/test_config_XXXXXX";
        int fd = mkstemp(tmp);
        assert_true(fd >= 0);
        FILE *f = fdopen(fd, "w");
        config_write_yaml(&a, f);
        fclose(f);
        if (config_load(tmp, NULL, 0, &b) != SC_OK) fail_msg("reload of %s: %s", files[i], sc_last_error());
        unlink(tmp);
        assert_true(config_equal(&a, &b));
        assert_true(config_hash(&a) == config_hash(&b));
        if (i == 0) assert_true(b.optim.lr == 0.0612345678901234 && strcmp(b.run.dir, "/tmp/x \"q\"") == 0);
    }
}

static void test_hash_and_diff(void **st) {
    (void)st;
    sc_config a = cfg_of("optim:\n  batch: 256\nmethod:\n  queue: 4096\n", NULL, 0);
    uint64_t h = config_hash(&a);
    const char *same[] = {"run.dir=/elsewhere", "run.threads=7", "run.seed=1", "run.log_every=3",
                          "checkpoint.every_steps=5", "checkpoint.every_minutes=1", "checkpoint.keep_last=9",
                          "comm.bucket_mb=16", "comm.overlap=false", "data.workers=5", "data.dir=/x",
                          "eval.knn_k=20", "bench.steps=9", "run.trace=true"};
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        sc_config b = a;
        assert_int_equal(config_set(&b, same[i]), SC_OK);
        if (config_hash(&b) != h) fail_msg("hash changed with %s", same[i]);
        char buf[256];
        assert_false(config_diff_key(&a, &b, buf, sizeof buf));
    }
    const char *diff[] = {"model.depth=34", "model.base=32", "model.widths=[1.0,0.5]", "method.temperature=0.3",
                          "optim.batch=512", "optim.lr=0.5", "slimclr.distill=false", "data.subset=100",
                          "optim.max_steps=10", "method.bn=local"};
    const char *key[] = {"model.depth: 18 vs 34", "model.base: 64 vs 32", "model.widths: [1.0, 0.75, 0.5, 0.25] vs [1.0, 0.5]",
                         "method.temperature: 0.2 vs 0.3", "optim.batch: 256 vs 512", "optim.lr: 0.05 vs 0.5",
                         "slimclr.distill: true vs false", "data.subset: 0 vs 100", "optim.max_steps: 0 vs 10",
                         "method.bn: sync vs local"};
    for (size_t i = 0; i < sizeof diff / sizeof *diff; i++) {
        sc_config b = a;
        if (config_set(&b, diff[i]) != SC_OK) fail_msg("%s: %s", diff[i], sc_last_error());
        if (config_hash(&b) == h) fail_msg("hash unchanged with %s", diff[i]);
        char buf[256];
        assert_true(config_diff_key(&a, &b, buf, sizeof buf));
        if (strcmp(buf, key[i]) != 0) fail_msg("diff \"%s\", expected \"%s\"", buf, key[i]);
    }
    /* a checkpoint's resolved config reads back with every key set: the diff still names the key the user
     * changed (optim.lr), not the default derived from it (slimclr.slow_start_lr = lr) */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    config_write_yaml(&a, f);
    fclose(f);
    sc_config old;
    assert_int_equal(config_load_string(text, "ckpt", NULL, 0, &old), SC_OK);
    free(text);
    sc_config b = a;
    assert_int_equal(config_set(&b, "optim.lr=0.5"), SC_OK);
    char buf[256];
    assert_true(config_diff_key(&old, &b, buf, sizeof buf));
    assert_string_equal(buf, "optim.lr: 0.05 vs 0.5");
}

/* docs/config.md and yaml/reference.yaml are generated from the key table: the tracked copies must be what the
 * table generates now (a key added on one branch and documented on another must not drift). */
static void expect_generated(const char *path, void (*gen)(FILE *)) {
    char *want = NULL, *have = NULL;
    size_t wl = 0, hl = 0;
    FILE *f = open_memstream(&want, &wl);
    gen(f);
    fclose(f);
    f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s (tests run from the repository root)", path);
    FILE *m = open_memstream(&have, &hl);
    int c;
    while ((c = fgetc(f)) != EOF) fputc(c, m);
    fclose(f);
    fclose(m);
    if (wl != hl || memcmp(want, have, wl))
        fail_msg("%s is not what src/io/config_schema.c generates: regenerate it (config_write_docs / "
                 "config_write_reference)", path);
    free(want);
    free(have);
}

static void test_generated_files_current(void **st) {
    (void)st;
    expect_generated("docs/config.md", config_write_docs);
    expect_generated("yaml/reference.yaml", config_write_reference);
}

static void test_docs_and_schema(void **st) {
    (void)st;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    config_write_docs(f);
    fclose(f);
    for (int i = 0; i < config_nkeys(); i++)
        if (!strstr(buf, config_key_path(i))) fail_msg("docs lack %s", config_key_path(i));
    free(buf);
    /* the reference file generated from the schema is the default config */
    f = open_memstream(&buf, &len);
    config_write_reference(f);
    fclose(f);
    sc_config a, b;
    assert_int_equal(config_load_string(buf, "ref.yaml", NULL, 0, &a), SC_OK);
    free(buf);
    config_defaults(&b);
    assert_string_equal(a.run.dir, "runs/ref"); /* named after the file; everything else is the default */
    snprintf(a.run.dir, sizeof a.run.dir, "%s", b.run.dir);
    assert_true(config_equal(&a, &b));
    /* the printed table marks defaults */
    f = open_memstream(&buf, &len);
    sc_config c = cfg_of("model:\n  depth: 34\n", NULL, 0);
    config_print_table(&c, f);
    fclose(f);
    assert_non_null(strstr(buf, "model.depth"));
    assert_non_null(strstr(buf, "line 2"));
    assert_non_null(strstr(buf, "default"));
    free(buf);
    /* the subset shortens the epoch, drop_last */
    c = cfg_of("data:\n  subset: 1000\noptim:\n  batch: 256\nmethod:\n  queue: 4096\n", NULL, 0);
    assert_int_equal(config_steps_per_epoch(&c, 60000), 3);
    assert_int_equal(config_total_steps(&c, 60000), 3 * 200);
    /* rank counts: 256 splits over 1, 2, 4 ranks, not 3 */
    assert_int_equal(config_check_ranks(&c, 2), SC_OK);
    assert_int_equal(config_check_ranks(&c, 4), SC_OK);
    assert_int_equal(config_check_ranks(&c, 3), SC_ERR_CONFIG);
    assert_non_null(strstr(sc_last_error(), "t.yaml:4:10: optim.batch: 256 does not split over 3 rank(s)"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_yaml_load), cmocka_unit_test(test_recipe_defaults),
        cmocka_unit_test(test_set_overrides),     cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_round_trip),        cmocka_unit_test(test_hash_and_diff),
        cmocka_unit_test(test_docs_and_schema),   cmocka_unit_test(test_generated_files_current),   cmocka_unit_test(test_paper_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
