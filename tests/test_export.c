/* eval/export + eval/features unit tests (single process): a width sliced into a standalone width-1.0 network
 * gives the features of the slimmable model at that width (ResNet-18 small stem, ResNet-50 ImageNet stem); a
 * width that no integer base reproduces is refused; the safetensors export has torchvision names, the sliced
 * shapes and the values of an independent index-loop slice; import of a width-1.0 export gives the original
 * features; loading an encoder checkpoint by name; the .npy header. */
#include "core/rng.h"
#include "eval/export.h"
#include "eval/features.h"
#include "eval/safetensors.h"
#include "io/checkpoint.h"
#include "model/model.h"
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "test_util.h"

static model_cfg cfg_net(int depth, int base, int img, model_stem stem) {
    model_cfg c;
    memset(&c, 0, sizeof c);
    c.depth = depth;
    c.base = base;
    c.in_ch = depth == 50 ? 3 : 1;
    c.img = img;
    c.stem = stem;
    c.nwidths = 4;
    c.widths[0] = 1.0f; c.widths[1] = 0.75f; c.widths[2] = 0.5f; c.widths[3] = 0.25f;
    c.head = HEAD_NONE;
    c.zero_init_last_bn = false; /* every block must contribute, or a wrong slice of bn2 could go unnoticed */
    return c;
}

static model *create_ok(const model_cfg *c) {
    sc_err e = SC_OK;
    model *m = model_create(c, &e);
    if (!m) fprintf(stderr, "model_create: %s\n", sc_last_error());
    assert_non_null(m);
    return m;
}

/* random weights, and BN parameters / running statistics that differ per width (so that using another width's
 * BN, or a wrong slice, changes the features) */
static void randomize(model *m, uint64_t seed) {
    model_init(m, seed);
    rng_stream s = rng_stream_make(seed, 5, 5, 5);
    for (int i = 0; i < model_ntensors(m); i++) {
        const param_info *t = model_tensor(m, i);
        if (t->kind != PARAM_BN) continue;
        float *p = model_params(m) + t->offset;
        bool gamma = strstr(t->name, ".weight") != NULL;
        for (size_t k = 0; k < t->count; k++) p[k] = gamma ? rng_uniform_range(&s, 0.5f, 1.5f) : rng_uniform_range(&s, -0.3f, 0.3f);
    }
    for (int i = 0; i < model_nbuftensors(m); i++) {
        const param_info *t = model_buftensor(m, i);
        float *p = model_bufs(m) + t->offset;
        bool var = strstr(t->name, "running_var") != NULL;
        for (size_t k = 0; k < t->count; k++) p[k] = var ? rng_uniform_range(&s, 0.5f, 2.0f) : rng_uniform_range(&s, -0.2f, 0.2f);
    }
}

/* features [n][C] of width wi (eval mode) on input x [in_ch][n][img][img] */
static float *feats(model *m, int wi, const float *x, int n) {
    model_tape *t = model_tape_create_infer(m, wi, n);
    model_forward(m, t, wi, x, n, false, NULL);
    int C = model_feat_dim(m, wi);
    float *f = malloc(sizeof(float) * (size_t)C * n);
    memcpy(f, model_features(t), sizeof(float) * (size_t)C * n);
    model_tape_free(t);
    return f;
}

static float *rand_input(const model_cfg *c, int n, uint64_t seed) {
    size_t sz = (size_t)c->in_ch * n * c->img * c->img;
    float *x = malloc(sizeof(float) * sz);
    rng_stream s = rng_stream_make(seed, 1, 1, 1);
    for (size_t i = 0; i < sz; i++) x[i] = rng_normal(&s);
    return x;
}

static double max_rel_diff(const float *a, const float *b, size_t n) {
    double scale = 1e-12, d = 0;
    for (size_t i = 0; i < n; i++) if (fabs(a[i]) > scale) scale = fabs(a[i]);
    for (size_t i = 0; i < n; i++) if (fabs((double)a[i] - b[i]) > d) d = fabs((double)a[i] - b[i]);
    return d / scale;
}

static void check_slice_features(model_cfg c, int n) {
    model *m = create_ok(&c);
    randomize(m, 42);
    float *x = rand_input(&c, n, 7);
    for (int wi = 0; wi < c.nwidths; wi++) {
        model_cfg sc;
        assert_int_equal(export_slice_cfg(&c, wi, &sc), SC_OK);
        assert_int_equal(sc.base, (int)(c.widths[wi] * c.base + 1e-4f));
        model *d = create_ok(&sc);
        assert_int_equal(export_slice(m, wi, d), SC_OK);
        assert_int_equal(model_feat_dim(d, 0), model_feat_dim(m, wi));
        double p0, m0, p1, m1;
        model_count_backbone(m, wi, &p0, &m0);
        model_count_backbone(d, 0, &p1, &m1);
        assert_true(p0 == p1 && m0 == m1);
        float *fa = feats(m, wi, x, n), *fb = feats(d, 0, x, n);
        double r = max_rel_diff(fa, fb, (size_t)model_feat_dim(m, wi) * n);
        if (r > 1e-6) fprintf(stderr, "depth %d width %g: max rel diff %g\n", c.depth, (double)c.widths[wi], r);
        assert_true(r <= 1e-6);
        /* and not trivially: the next width's features differ */
        if (wi + 1 < c.nwidths) {
            float *fc = feats(m, wi + 1, x, n);
            assert_true(model_feat_dim(m, wi + 1) != model_feat_dim(m, wi) || max_rel_diff(fa, fc, 8) > 1e-3);
            free(fc);
        }
        free(fa);
        free(fb);
        model_free(d);
    }
    free(x);
    model_free(m);
}

static void test_slice_r18(void **st) { (void)st; check_slice_features(cfg_net(18, 16, 12, STEM_SMALL), 5); }
static void test_slice_r50(void **st) { (void)st; check_slice_features(cfg_net(50, 8, 32, STEM_IMAGENET), 3); }

static void test_slice_refused(void **st) {
    (void)st;
    model_cfg c = cfg_net(18, 10, 8, STEM_SMALL);
    c.nwidths = 2;
    c.widths[1] = 0.35f; /* stem int(3.5) = 3, but layer2 int(7.0) = 7 != 2*3 */
    model *m = create_ok(&c);
    model_cfg sc;
    assert_int_equal(export_slice_cfg(&c, 1, &sc), SC_OK);
    model *d = create_ok(&sc);
    assert_int_equal(export_slice(m, 1, d), SC_ERR_ARG);
    assert_non_null(strstr(sc_last_error(), "cannot be exported"));
    model_free(d);
    model_free(m);
}

static const param_info *by_name(const model *m, const char *name, bool buf) {
    int n = buf ? model_nbuftensors(m) : model_ntensors(m);
    for (int i = 0; i < n; i++) {
        const param_info *t = buf ? model_buftensor(m, i) : model_tensor(m, i);
        if (!strcmp(t->name, name)) return t;
    }
    return NULL;
}

static void test_safetensors_export(void **st) {
    (void)st;
    model_cfg c = cfg_net(18, 16, 8, STEM_SMALL);
    model *m = create_ok(&c);
    randomize(m, 3);
    int wi = 2; /* width 0.5 */
    model_cfg sc;
    assert_int_equal(export_slice_cfg(&c, wi, &sc), SC_OK);
    model *d = create_ok(&sc);
    assert_int_equal(export_slice(m, wi, d), SC_OK);
    char path[] = "/tmp/test_export_XXXXXX";
    tu_temp_file(path);
    const char *k[] = {"width"}, *v[] = {"0.5"};
    assert_int_equal(export_write_safetensors(d, path, 1, k, v), SC_OK);
    safetensors_file *f = NULL;
    assert_int_equal(safetensors_open(path, &f), SC_OK);
    assert_string_equal(safetensors_meta(f, "width"), "0.5");
    assert_int_equal(safetensors_count(f), model_ntensors(d) + model_nbuftensors(d));
    /* torchvision names with the sliced shapes: stem 8, layer2 16, layer4 64 channels at width 0.5 of base 16 */
    static const struct { const char *name; int ndim; int64_t shape[4]; } want[] = {
        {"conv1.weight", 4, {8, 1, 3, 3}},          {"bn1.weight", 1, {8}},
        {"bn1.bias", 1, {8}},                        {"bn1.running_mean", 1, {8}},
        {"bn1.running_var", 1, {8}},                 {"layer1.0.conv1.weight", 4, {8, 8, 3, 3}},
        {"layer2.0.conv1.weight", 4, {16, 8, 3, 3}}, {"layer2.0.downsample.0.weight", 4, {16, 8, 1, 1}},
        {"layer2.0.downsample.1.running_var", 1, {16}}, {"layer4.1.bn2.bias", 1, {64}},
        {"layer4.1.conv2.weight", 4, {64, 64, 3, 3}},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int j = safetensors_find(f, want[i].name);
        if (j < 0) fprintf(stderr, "missing %s\n", want[i].name);
        assert_true(j >= 0);
        const safetensors_entry *e = safetensors_entry_at(f, j);
        assert_int_equal(e->ndim, want[i].ndim);
        for (int dd = 0; dd < e->ndim; dd++) assert_int_equal(e->shape[dd], want[i].shape[dd]);
    }
    assert_int_equal(safetensors_find(f, "layer1.0.bn1.0.weight"), -1); /* no width index left */
    assert_int_equal(safetensors_find(f, "fc.0.weight"), -1);          /* no head */
    /* values: conv weights against an index-loop slice of the full tensor; BN against width wi's own tensor */
    const param_info *full = by_name(m, "layer2.0.conv1.weight", false);
    float got[16 * 8 * 9];
    int j = safetensors_find(f, "layer2.0.conv1.weight");
    assert_int_equal(safetensors_read_f32(f, j, got, 16 * 8 * 9), SC_OK);
    const float *W = model_params(m) + full->offset;
    for (int o = 0; o < 16; o++)
        for (int i = 0; i < 8; i++)
            for (int q = 0; q < 9; q++)
                assert_true(got[(o * 8 + i) * 9 + q] == W[((size_t)o * full->shape[1] + i) * 9 + q]);
    const param_info *bv = by_name(m, "layer2.0.downsample.1.2.running_var", true);
    assert_non_null(bv);
    j = safetensors_find(f, "layer2.0.downsample.1.running_var");
    assert_int_equal(safetensors_read_f32(f, j, got, 16), SC_OK);
    assert_memory_equal(got, model_bufs(m) + bv->offset, 16 * sizeof(float));
    const param_info *bg = by_name(m, "bn1.2.weight", false);
    j = safetensors_find(f, "bn1.weight");
    assert_int_equal(safetensors_read_f32(f, j, got, 8), SC_OK);
    assert_memory_equal(got, model_params(m) + bg->offset, 8 * sizeof(float));
    safetensors_close(f);

    /* importing a width-0.5 file into the full model is refused, naming the tensor */
    model *full_m = create_ok(&c);
    assert_int_equal(export_import_safetensors(full_m, path, NULL), SC_ERR_MISMATCH);
    assert_non_null(strstr(sc_last_error(), "conv1.weight"));
    model_free(full_m);
    unlink(path);
    model_free(d);
    model_free(m);
}

static void test_import_roundtrip(void **st) {
    (void)st;
    model_cfg c = cfg_net(18, 8, 8, STEM_SMALL);
    model *m = create_ok(&c);
    randomize(m, 9);
    model_cfg sc;
    assert_int_equal(export_slice_cfg(&c, 0, &sc), SC_OK);
    model *d = create_ok(&sc);
    assert_int_equal(export_slice(m, 0, d), SC_OK);
    char path[] = "/tmp/test_import_XXXXXX";
    tu_temp_file(path);
    assert_int_equal(export_write_safetensors(d, path, 0, NULL, NULL), SC_OK);
    model *m2 = create_ok(&c);
    int ign = -1;
    assert_int_equal(export_import_safetensors(m2, path, &ign), SC_OK);
    assert_int_equal(ign, 0);
    unlink(path);
    float *x = rand_input(&c, 4, 11);
    float *fa = feats(m, 0, x, 4), *fb = feats(m2, 0, x, 4);
    assert_memory_equal(fa, fb, sizeof(float) * (size_t)model_feat_dim(m, 0) * 4);
    /* the convolutions are the full tensors; a sub-width's BN is the leading entries of width 1.0's */
    const param_info *a = by_name(m, "layer3.1.conv2.weight", false), *b = by_name(m2, "layer3.1.conv2.weight", false);
    assert_memory_equal(model_params(m) + a->offset, model_params(m2) + b->offset, a->count * sizeof(float));
    const param_info *g0 = by_name(m, "layer3.1.bn2.0.running_mean", true), *g3 = by_name(m2, "layer3.1.bn2.3.running_mean", true);
    assert_memory_equal(model_bufs(m) + g0->offset, model_bufs(m2) + g3->offset, g3->count * sizeof(float));
    free(x); free(fa); free(fb);
    model_free(m2);
    model_free(d);
    model_free(m);
}

/* an encoder checkpoint (backbone + MoCo v2 head) loads into the backbone by name */
static void test_load_encoder_ckpt(void **st) {
    (void)st;
    model_cfg enc = cfg_net(18, 8, 8, STEM_SMALL);
    enc.head = HEAD_MOCOV2;
    enc.head_out = 16;
    model *e = create_ok(&enc);
    randomize(e, 5);
    char path[] = "/tmp/test_featck_XXXXXX";
    tu_temp_file(path);
    ckpt_header h;
    memset(&h, 0, sizeof h);
    snprintf(h.signature, sizeof h.signature, "test");
    ckpt_section secs[2] = {{"q.params", CKPT_F32, model_nparams(e), model_params(e)},
                            {"q.bufs", CKPT_F32, model_nbufs(e), model_bufs(e)}};
    assert_int_equal(ckpt_write(path, &h, secs, 2), SC_OK);
    model_cfg bc = features_backbone_cfg(&enc);
    model *bb = create_ok(&bc);
    assert_true(model_nparams(bb) < model_nparams(e));
    ckpt_file *f = NULL;
    assert_int_equal(ckpt_open(path, &f), SC_OK);
    assert_int_equal(features_load(bb, &enc, f), SC_OK);
    ckpt_close(f);
    for (int i = 0; i < model_ntensors(bb); i++) {
        const param_info *t = model_tensor(bb, i), *u = by_name(e, t->name, false);
        assert_non_null(u);
        assert_memory_equal(model_params(bb) + t->offset, model_params(e) + u->offset, t->count * sizeof(float));
    }
    /* a checkpoint of another model is refused */
    model_cfg other = bc;
    other.base = 16;
    model *bo = create_ok(&other);
    model_cfg enc2 = enc;
    enc2.base = 16;
    assert_int_equal(ckpt_open(path, &f), SC_OK);
    assert_int_equal(features_load(bo, &enc2, f), SC_ERR_MISMATCH);
    ckpt_close(f);
    unlink(path);
    model_free(bo);
    model_free(bb);
    model_free(e);
}

static void test_npy(void **st) {
    (void)st;
    char path[] = "/tmp/test_npy_XXXXXX";
    tu_temp_file(path);
    float data[6] = {1, 2, 3, 4, 5, -6.5f};
    assert_int_equal(features_write_npy(path, 2, 3, data), SC_OK);
    FILE *f = fopen(path, "rb");
    unsigned char buf[256];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    unlink(path);
    assert_memory_equal(buf, "\x93NUMPY\x01\x00", 8);
    int hl = buf[8] | buf[9] << 8;
    assert_int_equal((10 + hl) % 64, 0);
    assert_int_equal(n, (size_t)(10 + hl) + sizeof data);
    assert_int_equal(buf[10 + hl - 1], '\n');
    char hdr[200];
    memcpy(hdr, buf + 10, (size_t)hl);
    hdr[hl] = 0;
    assert_non_null(strstr(hdr, "'descr': '<f4'"));
    assert_non_null(strstr(hdr, "'fortran_order': False"));
    assert_non_null(strstr(hdr, "'shape': (2, 3)"));
    assert_memory_equal(buf + 10 + hl, data, sizeof data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slice_r18),        cmocka_unit_test(test_slice_r50),
        cmocka_unit_test(test_slice_refused),    cmocka_unit_test(test_safetensors_export),
        cmocka_unit_test(test_import_roundtrip), cmocka_unit_test(test_load_encoder_ckpt),
        cmocka_unit_test(test_npy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
