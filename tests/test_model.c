/* tests/test_model: the slimmable ResNet (model/): counts against docs/method.md §1.3 and docs/benchmarks.md B1, gradient accumulation
 * over widths, eval-mode BN per width, the hook's ranges, deep forward passes, config errors, deterministic init
 * and B1's memory. The finite-difference checks against a double reference are in test_model_fd.c.
 * White-box where needed: it includes src/model/model_internal.h to know each layer's slice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "isa_each.h"

#include "model_fixtures.h"
#include "blas/blas.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- counts ---------- */

static void test_counts_resnet50(void **state) {
    (void)state;
    model_cfg c = cfg_r18(64, 224, HEAD_SLIM_LINEAR);
    c.depth = 50;
    c.stem = STEM_IMAGENET;
    c.head_out = 1000;
    model *m = create_ok(&c);
    /* docs/method.md §1.3 */
    const double bp[4] = {23.51, 13.23, 5.89, 1.48}, bm[4] = {4.087, 2.321, 1.051, 0.278};
    const double tp[4] = {25.56, 14.77, 6.92, 1.99}, tm[4] = {4.089, 2.323, 1.052, 0.278};
    for (int wi = 0; wi < 4; wi++) {
        double p, mac;
        model_count_backbone(m, wi, &p, &mac);
        printf("R50 w=%.2f backbone %.4f M / %.5f G", (double)c.widths[wi], p / 1e6, mac / 1e9);
        assert_true(fabs(p / 1e6 - bp[wi]) <= 0.005 + 1e-9);
        assert_true(fabs(mac / 1e9 - bm[wi]) <= 0.0005 + 1e-9);
        model_count(m, wi, &p, &mac);
        printf("   +fc %.4f M / %.5f G\n", p / 1e6, mac / 1e9);
        assert_true(fabs(p / 1e6 - tp[wi]) <= 0.005 + 1e-9);
        assert_true(fabs(mac / 1e9 - tm[wi]) <= 0.0005 + 1e-9);
    }
    double p0;
    model_count(m, 0, &p0, &(double){0});
    assert_true(fabs(p0 - 25557032.0) < 0.5); /* torchvision resnet50: 25,557,032 */
    assert_int_equal(model_feat_dim(m, 0), 2048);
    assert_int_equal(model_feat_dim(m, 3), 512);
    model_free(m);
}

/* ResNet-101/152 (bottlenecks 3-4-23-3 and 3-8-36-3): the full width with fc-1000 has torchvision's parameter
 * counts exactly (the numbers slimclr info prints); the sub-widths shrink */
static void test_counts_resnet101_152(void **state) {
    (void)state;
    const int depth[2] = {101, 152};
    const double tv[2] = {44549160.0, 60192808.0}; /* torchvision resnet101 / resnet152 */
    for (int k = 0; k < 2; k++) {
        model_cfg c = cfg_r18(64, 64, HEAD_SLIM_LINEAR);
        c.depth = depth[k];
        c.stem = STEM_IMAGENET;
        c.head_out = 1000;
        model *m = create_ok(&c);
        double p[4];
        for (int wi = 0; wi < 4; wi++) model_count(m, wi, &p[wi], &(double){0});
        printf("R%d: %.0f parameters at width 1 (torchvision %.0f), %.2f M at 0.25\n", depth[k], p[0], tv[k], p[3] / 1e6);
        assert_true(fabs(p[0] - tv[k]) < 0.5);
        assert_true(p[1] < p[0] && p[2] < p[1] && p[3] < p[2]);
        assert_int_equal(model_feat_dim(m, 0), 2048);
        model_free(m);
    }
    model_cfg c = cfg_r18(64, 64, HEAD_NONE);
    c.depth = 77;
    sc_err e = SC_OK;
    assert_null(model_create(&c, &e));
    assert_non_null(strstr(sc_last_error(), "18, 34, 50, 101 or 152"));
}

/* slimclr.switch_heads (model head_switch): width wi runs its own MoCo v2 head: the backward of width 0.25 gives
 * gradient to its head and the backbone, none to the other widths' heads; the head's size is width 0.25's own */
static void test_switch_heads(void **state) {
    (void)state;
    model_cfg c = cfg_r18(8, 16, HEAD_MOCOV2);
    c.in_ch = 1;
    c.head_out = 16;
    c.head_switch = true;
    model *m = create_ok(&c);
    model_init(m, 5);
    int wi = 3, n = 4, C = model_feat_dim(m, wi);
    float *x = calloc((size_t)n * 16 * 16, sizeof(float)), *dout = calloc((size_t)16 * n, sizeof(float));
    for (int i = 0; i < n * 16 * 16; i++) x[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
    for (int i = 0; i < 16 * n; i++) dout[i] = (float)((i * 7) % 5) - 2.0f;
    model_tape *t = model_tape_create(m, wi, n);
    model_zero_grad(m);
    model_forward(m, t, wi, x, n, true, NULL);
    model_backward(m, t, dout, NULL, NULL, NULL, NULL);
    const float *g = model_grads(m);
    int seen = 0;
    for (int i = 0; i < model_ntensors(m); i++) {
        const param_info *p = model_tensor(m, i);
        int hw = -1;
        if (sscanf(p->name, "fc.%d.", &hw) != 1) continue;
        double s = 0;
        for (size_t j = 0; j < p->count; j++) s += fabs(g[p->offset + j]);
        if (hw == wi) { assert_true(s > 0); seen++; }
        else assert_true(s == 0.0);
        if (hw == wi && !strcmp(p->name + strlen(p->name) - 8, "0.weight")) assert_int_equal((int)p->count, C * C);
    }
    assert_int_equal(seen, 4); /* fc.3.0.weight/bias, fc.3.2.weight/bias */
    double pb, pt, mac;
    model_count_backbone(m, wi, &pb, &mac);
    model_count(m, wi, &pt, &mac);
    assert_true(fabs(pt - pb - (C * C + C + C * 16 + 16)) < 0.5);
    model_tape_free(t);
    model_free(m);
    free(x); free(dout);
    c.head = HEAD_SIMCLR; /* a head per width exists for MoCo v2 only */
    c.head_hidden = 32;
    sc_err e = SC_OK;
    assert_null(model_create(&c, &e));
}

/* slimclr.overlap_weight false (model disjoint): widths [1.0, 0.5, 0.25] at base 8 use the channel blocks
 * [0, 8), [2, 6) and [0, 2) of layer1.0.conv1 (8 -> 8, 3x3): the gradient of width 0.5's loss is zero on the leading
 * channels (width 0.25's) and outside its block; with overlapping (slimmable) weights it covers the leading 4 */
static void grad_support(bool disjoint, int wi, int *r0, int *r1, int *c0, int *c1) {
    model_cfg c = cfg_r18(8, 16, HEAD_MOCOV2);
    c.in_ch = 1;
    c.head_out = 8;
    c.nwidths = 3;
    c.widths[0] = 1.0f; c.widths[1] = 0.5f; c.widths[2] = 0.25f;
    c.disjoint = disjoint;
    c.zero_init_last_bn = false; /* else no gradient reaches a block's conv1 at init */
    model *m = create_ok(&c);
    model_init(m, 9);
    int n = 4;
    float *x = calloc((size_t)n * 16 * 16, sizeof(float)), *dout = calloc((size_t)8 * n, sizeof(float));
    for (int i = 0; i < n * 16 * 16; i++) x[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
    for (int i = 0; i < 8 * n; i++) dout[i] = (float)((i * 7) % 5) - 2.0f;
    model_tape *t = model_tape_create(m, wi, n);
    model_zero_grad(m);
    model_forward(m, t, wi, x, n, true, NULL);
    model_backward(m, t, dout, NULL, NULL, NULL, NULL);
    const param_info *p = NULL;
    for (int i = 0; i < model_ntensors(m); i++)
        if (!strcmp(model_tensor(m, i)->name, "layer1.0.conv1.weight")) p = model_tensor(m, i);
    assert_non_null(p);
    const float *g = model_grads(m) + p->offset;
    *r0 = *c0 = 1 << 30; *r1 = *c1 = -1;
    for (int r = 0; r < 8; r++)
        for (int k = 0; k < 8 * 9; k++)
            if (g[r * 72 + k] != 0.0f) {
                if (r < *r0) *r0 = r;
                if (r > *r1) *r1 = r;
                if (k / 9 < *c0) *c0 = k / 9;
                if (k / 9 > *c1) *c1 = k / 9;
            }
    model_tape_free(t);
    model_free(m);
    free(x); free(dout);
}
static void test_disjoint_channels(void **state) {
    (void)state;
    int r0, r1, c0, c1;
    grad_support(true, 1, &r0, &r1, &c0, &c1); /* width 0.5: rows and input channels [2, 6) */
    assert_true(r0 == 2 && r1 == 5 && c0 == 2 && c1 == 5);
    grad_support(true, 2, &r0, &r1, &c0, &c1); /* width 0.25: [0, 2) */
    assert_true(r0 == 0 && r1 == 1 && c0 == 0 && c1 == 1);
    grad_support(true, 0, &r0, &r1, &c0, &c1); /* width 1.0: everything */
    assert_true(r0 == 0 && r1 == 7 && c0 == 0 && c1 == 7);
    grad_support(false, 1, &r0, &r1, &c0, &c1); /* slimmable: width 0.5 is the leading [0, 4) */
    assert_true(r0 == 0 && r1 == 3 && c0 == 0 && c1 == 3);
    model_cfg c = cfg_r18(8, 16, HEAD_NONE); /* 0.75 + 0.5 + 0.25 > 1: no room side by side */
    c.disjoint = true;
    sc_err e = SC_OK;
    assert_null(model_create(&c, &e));
    assert_non_null(strstr(sc_last_error(), "sum to 1.5 > 1"));
}

static void test_counts_b1(void **state) {
    (void)state;
    model_cfg c = cfg_r18(64, 28, HEAD_MOCOV2);
    c.in_ch = 1;
    c.head_out = 128;
    model *m = create_ok(&c);
    /* docs/benchmarks.md B1 quotes the query network's forward MMAC: they include the MoCo v2 head (0.33 MMAC at w 1) */
    const double ref[4] = {456.1, 256.7, 114.2, 28.6};
    double sum = 0;
    for (int wi = 0; wi < 4; wi++) {
        double p, mac, pt, mact;
        model_count_backbone(m, wi, &p, &mac);
        model_count(m, wi, &pt, &mact);
        printf("R18-small w=%.2f backbone %.3f M params %.2f MMAC; MoCo v2 head adds %.4f M params %.4f MMAC\n",
               (double)c.widths[wi], p / 1e6, mac / 1e6, (pt - p) / 1e6, (mact - mac) / 1e6);
        assert_true(fabs(mact / 1e6 - ref[wi]) <= 0.05 + 1e-9);
        int cw = model_feat_dim(m, wi);
        assert_true(fabs((mact - mac) - ((double)cw * cw + (double)cw * 128)) < 0.5);
        sum += mact;
    }
    /* B1 work per image: 3 x queries + 1 x key forward, 2 FLOP per MAC = 6.05 GFLOP */
    double m0;
    model_count(m, 0, &(double){0}, &m0);
    double gflop = 2.0 * (3.0 * sum + m0) / 1e9;
    printf("B1 GFLOP/image %.4f\n", gflop);
    assert_true(fabs(gflop - 6.05) < 0.005);
    model_free(m);
}

/* ---------- accumulation, eval mode, hook, deeper nets ---------- */

static void test_accumulate_widths(void **state) {
    (void)state;
    model_cfg c = cfg_r18(8, 8, HEAD_MOCOV2);
    model *m = create_ok(&c);
    model_init(m, 1);
    randomize_bn(m, 1);
    int n = 4;
    size_t P = model_nparams(m), xlen = (size_t)3 * n * 64;
    float *x = malloc(xlen * 4), *R = malloc((size_t)6 * n * 4), *g[4], *acc = malloc(P * 4);
    rng_stream s = rng_stream_make(1, 0, 0, 0);
    tu_fill_uniform(&s, x, xlen, -1, 1);
    tu_fill_uniform(&s, R, (size_t)6 * n, -1, 1);
    model_tape *full = model_tape_create(m, 0, n), *sub = model_tape_create(m, 1, n);
    for (int wi = 0; wi < 4; wi++) { /* each width alone */
        model_tape *t = wi ? sub : full;
        model_zero_grad(m);
        model_forward(m, t, wi, x, n, true, NULL);
        model_backward(m, t, R, NULL, NULL, NULL, NULL);
        g[wi] = malloc(P * 4);
        memcpy(g[wi], model_grads(m), P * 4);
    }
    /* the docs/method.md §14.3 schedule: full forward, then each sub-width forward+backward, the full backward last */
    model_zero_grad(m);
    model_forward(m, full, 0, x, n, true, NULL);
    for (int wi = 1; wi < 4; wi++) {
        model_forward(m, sub, wi, x, n, true, NULL);
        model_backward(m, sub, R, NULL, NULL, NULL, NULL);
    }
    model_backward(m, full, R, NULL, NULL, NULL, NULL);
    memcpy(acc, model_grads(m), P * 4);
    size_t inexact = 0;
    double maxd = 0;
    for (size_t i = 0; i < P; i++) {
        float ref = ((g[1][i] + g[2][i]) + g[3][i]) + g[0][i]; /* the accumulation order of the schedule */
        if (acc[i] != ref) inexact++;
        double d = fabs((double)acc[i] - ref);
        if (d > maxd) maxd = d;
    }
    printf("accumulated vs summed separate passes: %zu of %zu entries differ, max |diff| %.3g\n", inexact, P, maxd);
    assert_true(maxd <= 1e-6);
    for (int i = 0; i < model_ntensors(m); i++) assert_int_equal(model_touched(m)[i], 1);
    for (int wi = 0; wi < 4; wi++) free(g[wi]);
    free(acc);
    free(x);
    free(R);
    model_tape_free(full);
    model_tape_free(sub);
    model_free(m);
}

/* model_create_nograd (the momentum encoder): no gradient array, and the same forward as a model with one */
static void test_nograd(void **state) {
    (void)state;
    model_cfg c = cfg_r18(8, 8, HEAD_MOCOV2);
    model *m = create_ok(&c);
    sc_err e = SC_ERR_ARG;
    model *k = model_create_nograd(&c, &e);
    assert_non_null(k);
    assert_int_equal(e, SC_OK);
    assert_true(model_has_grads(m));
    assert_false(model_has_grads(k));
    assert_null(model_grads(k));
    model_zero_grad(k); /* nothing to clear: must not touch a NULL array */
    model_init(m, 3);
    randomize_bn(m, 3);
    memcpy(model_params(k), model_params(m), model_nparams(m) * 4);
    memcpy(model_bufs(k), model_bufs(m), model_nbufs(m) * 4);
    int n = 3;
    size_t xlen = (size_t)3 * n * 64, out = (size_t)6 * n;
    float *x = malloc(xlen * 4);
    rng_stream s = rng_stream_make(3, 0, 0, 0);
    tu_fill_uniform(&s, x, xlen, -1, 1);
    model_tape *tm = model_tape_create(m, 0, n), *tk = model_tape_create(k, 0, n);
    for (int wi = 0; wi < 4; wi++) {
        model_forward(m, tm, wi, x, n, true, NULL);
        model_forward(k, tk, wi, x, n, true, NULL);
        assert_memory_equal(model_output(tm), model_output(tk), out * 4);
    }
    free(x);
    model_tape_free(tm);
    model_tape_free(tk);
    model_free(k);
    model_free(m);
}

static void test_eval_running_stats(void **state) {
    (void)state;
    model_cfg c = cfg_r18(4, 8, HEAD_SIMCLR);
    c.head_hidden = 16;
    model *m = create_ok(&c);
    model_init(m, 2);
    randomize_bn(m, 2);
    int n = 3;
    size_t xlen = (size_t)3 * n * 64;
    float *x = malloc(xlen * 4);
    rng_stream s = rng_stream_make(2, 0, 0, 0);
    tu_fill_uniform(&s, x, xlen, -1, 1);
    model_tape *t = model_tape_create(m, 0, n), *t1 = model_tape_create_infer(m, 0, 1);
    /* train-mode forwards move width wi's running stats only */
    float *b0 = malloc(model_nbufs(m) * 4);
    memcpy(b0, model_bufs(m), model_nbufs(m) * 4);
    model_forward(m, t, 2, x, n, true, NULL);
    for (int i = 0; i < model_nbuftensors(m); i++) {
        const param_info *p = model_buftensor(m, i);
        bool changed = memcmp(b0 + p->offset, model_bufs(m) + p->offset, p->count * 4) != 0;
        assert_true(changed == (p->width_only == 2));
    }
    for (int k = 0; k < 3; k++)
        for (int wi = 0; wi < 4; wi++) model_forward(m, t, wi, x, n, true, NULL);
    for (int wi = 0; wi < 4; wi++) {
        int d = model_out_dim(m, wi);
        float *o3 = malloc((size_t)d * n * 4), *o1 = malloc((size_t)d * 4);
        model_forward(m, t, wi, x, n, false, NULL);
        memcpy(o3, model_output(t), (size_t)d * n * 4);
        /* eval mode is per-sample: the first sample alone (inference tape) gives the same column */
        /* x is CNHW: sample 0 is x[c][0][..] */
        float *x1 = malloc((size_t)3 * 64 * 4);
        for (int ch = 0; ch < 3; ch++) memcpy(x1 + ch * 64, x + (size_t)ch * n * 64, 64 * 4);
        model_forward(m, t1, wi, x1, 1, false, NULL);
        memcpy(o1, model_output(t1), (size_t)d * 4);
        for (int j = 0; j < d; j++) assert_true(fabsf(o1[j] - o3[(size_t)j * n]) <= 1e-5f * (1 + fabsf(o1[j])));
        /* other widths' running stats do not matter; this width's do */
        float *bk = malloc(model_nbufs(m) * 4);
        memcpy(bk, model_bufs(m), model_nbufs(m) * 4);
        for (int i = 0; i < model_nbuftensors(m); i++) {
            const param_info *p = model_buftensor(m, i);
            if (p->width_only != wi)
                for (size_t q = 0; q < p->count; q++) model_bufs(m)[p->offset + q] += 0.5f;
        }
        model_forward(m, t1, wi, x1, 1, false, NULL);
        for (int j = 0; j < d; j++) assert_true(model_output(t1)[j] == o1[j]);
        for (int i = 0; i < model_nbuftensors(m); i++) {
            const param_info *p = model_buftensor(m, i);
            if (p->width_only == wi && strstr(p->name, "running_mean"))
                for (size_t q = 0; q < p->count; q++) model_bufs(m)[p->offset + q] += 0.5f;
        }
        model_forward(m, t1, wi, x1, 1, false, NULL);
        double diff = 0;
        for (int j = 0; j < d; j++) diff += fabs(model_output(t1)[j] - o1[j]);
        assert_true(diff > 1e-3);
        memcpy(model_bufs(m), bk, model_nbufs(m) * 4);
        free(bk);
        free(x1);
        free(o1);
        free(o3);
    }
    free(b0);
    free(x);
    model_tape_free(t);
    model_tape_free(t1);
    model_free(m);
}

typedef struct {
    size_t next, calls;
    bool ok;
} hook_rec;

static void rec_hook(void *ctx, size_t off, size_t cnt) {
    hook_rec *h = ctx;
    if (off + cnt != h->next) h->ok = false; /* strictly descending and contiguous */
    h->next = off;
    h->calls++;
}

static void test_hook_ranges(void **state) {
    (void)state;
    const model_head heads[] = {HEAD_MOCOV2, HEAD_MOCOV3_PROJ, HEAD_SWITCH_LINEAR, HEAD_NONE};
    for (int h = 0; h < 4; h++) {
        model_cfg c = cfg_r18(4, 8, heads[h]);
        c.head_hidden = heads[h] == HEAD_MOCOV3_PROJ ? 16 : 0;
        for (int d = 0; d < 2; d++) {
            c.depth = d ? 50 : 18;
            model *m = create_ok(&c);
            int n = 2;
            float *x = calloc((size_t)3 * n * 64, 4), *R = calloc((size_t)model_out_dim(m, 0) * n, 4);
            for (size_t i = 0; i < (size_t)3 * n * 64; i++) x[i] = (float)((i * 37) % 11) / 11.f - 0.5f;
            for (size_t i = 0; i < (size_t)model_out_dim(m, 0) * n; i++) R[i] = (float)(i % 3) - 1.f;
            model_tape *t = model_tape_create(m, 0, n);
            for (int wi = 0; wi < 4; wi += 3) {
                hook_rec r = {model_nparams(m), 0, true};
                model_forward(m, t, wi, x, n, true, NULL);
                model_backward(m, t, R, NULL, NULL, rec_hook, &r);
                assert_true(r.ok);
                assert_int_equal(r.next, 0); /* the ranges tile [0, nparams) */
                assert_true(r.calls > 10);
            }
            /* arena order = tensor order, contiguous */
            size_t off = 0;
            for (int i = 0; i < model_ntensors(m); i++) {
                assert_int_equal(model_tensor(m, i)->offset, off);
                off += model_tensor(m, i)->count;
            }
            assert_int_equal(off, model_nparams(m));
            model_tape_free(t);
            free(x);
            free(R);
            model_free(m);
        }
    }
}

static void test_deep_forward(void **state) {
    (void)state;
    const int depths[2] = {34, 50};
    for (int d = 0; d < 2; d++) {
        model_cfg c = cfg_r18(8, 32, HEAD_MOCOV3_PROJ);
        c.depth = depths[d];
        c.stem = STEM_IMAGENET;
        c.head_hidden = 32;
        c.head_out = 16;
        model *m = create_ok(&c);
        assert_int_equal(m->nblocks, 16);
        int n = 2;
        size_t xlen = (size_t)3 * n * 32 * 32;
        float *x = malloc(xlen * 4);
        rng_stream s = rng_stream_make(3, 0, 0, 0);
        tu_fill_uniform(&s, x, xlen, -1, 1);
        model_tape *t = model_tape_create(m, 0, n), *ti = model_tape_create_infer(m, 0, n);
        for (int wi = 0; wi < 4; wi++) {
            model_forward(m, t, wi, x, n, true, NULL);
            int fd = model_feat_dim(m, wi), od = model_out_dim(m, wi);
            assert_int_equal(fd, nn_width_channels(8 * 8 * (d ? 4 : 1), c.widths[wi]));
            assert_int_equal(od, 16);
            float *o = malloc((size_t)od * n * 4);
            memcpy(o, model_output(t), (size_t)od * n * 4);
            for (int i = 0; i < od * n; i++) assert_true(isfinite(o[i]));
            for (int i = 0; i < fd * n; i++) assert_true(isfinite(model_features(t)[i]));
            /* the forward-only tape gives the same result */
            model_forward(m, ti, wi, x, n, true, NULL);
            for (int i = 0; i < od * n; i++) assert_true(fabsf(model_output(ti)[i] - o[i]) <= 1e-5f);
            free(o);
        }
        printf("resnet-%d base 8 img 32 n 2: tape %zu B, infer tape %zu B, scratch %zu B\n", c.depth,
               model_tape_bytes(t), model_tape_bytes(ti), model_scratch_bytes(m));
        model_tape_free(t);
        model_tape_free(ti);
        free(x);
        model_free(m);
    }
}

/* ---------- config errors and init ---------- */

static void expect_bad(model_cfg c, const char *needle) {
    sc_err e = SC_OK;
    model *m = model_create(&c, &e);
    assert_null(m);
    assert_int_not_equal(e, SC_OK);
    printf("  bad config -> %s\n", sc_last_error());
    assert_non_null(strstr(sc_last_error(), needle));
}

static void test_bad_configs(void **state) {
    (void)state;
    model_cfg c = cfg_r18(64, 28, HEAD_MOCOV2);
    model_cfg b = c;
    b.depth = 20;
    expect_bad(b, "depth 20");
    b = c;
    b.widths[2] = 0.8f;
    expect_bad(b, "descending");
    b = c;
    b.widths[0] = 0.9f;
    expect_bad(b, "1.0");
    b = c;
    b.nwidths = 9;
    expect_bad(b, "9 widths");
    b = c;
    b.base = 4;
    b.widths[3] = 0.2f; /* int(0.2*4) = 0 at the stem */
    expect_bad(b, "conv1");
    b = c;
    b.base = 2;
    b.widths[3] = 0.25f; /* stem int(0.5) = 0 */
    expect_bad(b, "conv1 (stem)");
    b = c;
    b.depth = 50;
    b.base = 1;
    b.widths[1] = 0.75f;
    b.widths[2] = 0.5f;
    b.widths[3] = 0.3f; /* stem int(.3)=0 */
    expect_bad(b, "0 channels");
    b = c;
    b.head_out = 0;
    expect_bad(b, "head_out");
    b = c;
    b.head_hidden = 100;
    expect_bad(b, "fc.0");
    b = c;
    b.head = HEAD_SIMCLR;
    b.head_hidden = 6; /* int(0.25*6) = 1, int(0.5*6)=3: fine; 3 gives 0 */
    b.head_hidden = 3;
    expect_bad(b, "fc.0 (hidden)");
    b = c;
    b.head = HEAD_MOCOV3_PRED;
    b.head_in = 256;
    b.head_hidden = 64;
    expect_bad(b, "depth 0");
    b.depth = 0;
    b.head_in = 0;
    expect_bad(b, "head_in");
}

static void test_init(void **state) {
    (void)state;
    model_cfg c = cfg_r18(16, 8, HEAD_MOCOV2);
    model *a = create_ok(&c), *b = create_ok(&c);
    model_init(a, 123);
    model_init(b, 123);
    assert_memory_equal(model_params(a), model_params(b), model_nparams(a) * 4);
    assert_memory_equal(model_bufs(a), model_bufs(b), model_nbufs(a) * 4);
    model_init(b, 124);
    assert_true(memcmp(model_params(a), model_params(b), model_nparams(a) * 4) != 0);
    const float *p = model_params(a);
    for (int i = 0; i < model_ntensors(a); i++) {
        const param_info *t = model_tensor(a, i);
        const float *v = p + t->offset;
        if (t->kind == PARAM_WEIGHT && t->ndim == 4) { /* Kaiming normal, fan_out */
            double s2 = 0;
            for (size_t j = 0; j < t->count; j++) s2 += (double)v[j] * v[j];
            double want = 2.0 / (t->shape[0] * t->shape[2] * t->shape[3]), got = s2 / t->count;
            double se = want * sqrt(2.0 / t->count) * 5; /* 5 standard errors of the sample variance */
            assert_true(fabs(got - want) <= se);
        } else if (strncmp(t->name, "fc.", 3) == 0) { /* uniform +-1/sqrt(fan_in), fan_in = full input */
            float bound = 1.0f / sqrtf((float)(t->kind == PARAM_WEIGHT ? t->shape[1] : model_feat_dim(a, 0)));
            float mx = 0;
            for (size_t j = 0; j < t->count; j++) mx = fmaxf(mx, fabsf(v[j]));
            assert_true(mx <= bound && mx > 0.8f * bound);
        } else if (t->kind == PARAM_BN) {
            bool last = strstr(t->name, ".bn2.") != NULL && strstr(t->name, "layer") != NULL;
            float want = strstr(t->name, ".weight") ? (last ? 0.f : 1.f) : 0.f;
            for (size_t j = 0; j < t->count; j++) assert_true(v[j] == want);
        }
    }
    /* names */
    assert_string_equal(model_tensor(a, 0)->name, "conv1.weight");
    assert_string_equal(model_tensor(a, 1)->name, "bn1.0.weight");
    assert_string_equal(model_tensor(a, 2)->name, "bn1.0.bias");
    assert_string_equal(model_buftensor(a, 0)->name, "bn1.0.running_mean");
    assert_string_equal(model_buftensor(a, 1)->name, "bn1.0.running_var");
    bool seen_ds = false, seen_fc = false;
    for (int i = 0; i < model_ntensors(a); i++) {
        if (!strcmp(model_tensor(a, i)->name, "layer2.0.downsample.1.3.weight")) seen_ds = true;
        if (!strcmp(model_tensor(a, i)->name, "fc.2.bias")) seen_fc = true;
    }
    assert_true(seen_ds && seen_fc);
    model_free(a);
    model_free(b);
}

/* B1 memory: one full tape + one sub-width tape + the key encoder's forward-only tape (docs/benchmarks.md B1) */
static void test_b1_memory(void **state) {
    (void)state;
    model_cfg c = cfg_r18(64, 28, HEAD_MOCOV2);
    c.in_ch = 1;
    c.head_out = 128;
    model *q = create_ok(&c), *k = create_ok(&c);
    model_tape *tf = model_tape_create(q, 0, 64), *ts = model_tape_create(q, 1, 64),
               *tk = model_tape_create_infer(k, 0, 64);
    double mb = 1.0 / (1 << 20);
    size_t params = model_nparams(q) * 4 * 4 + model_nparams(k) * 4; /* q: params, grads, momentum, (spare) */
    size_t total = model_tape_bytes(tf) + model_tape_bytes(ts) + model_tape_bytes(tk) + model_scratch_bytes(q) +
                   model_scratch_bytes(k) + params;
    printf("B1 memory: full tape %.1f MB, sub tape %.1f MB, key tape %.1f MB, scratch q %.1f MB k %.1f MB, "
           "params+grads+state %.1f MB, total %.1f MB\n",
           model_tape_bytes(tf) * mb, model_tape_bytes(ts) * mb, model_tape_bytes(tk) * mb,
           model_scratch_bytes(q) * mb, model_scratch_bytes(k) * mb, params * mb, total * mb);
    assert_true(total < (size_t)900 << 20);
    model_tape_free(tf);
    model_tape_free(ts);
    model_tape_free(tk);
    model_free(q);
    model_free(k);
}

int main(void) {
    blas_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_resnet101_152), cmocka_unit_test(test_switch_heads), cmocka_unit_test(test_disjoint_channels), cmocka_unit_test(test_counts_resnet50), cmocka_unit_test(test_counts_b1),
        cmocka_unit_test(test_bad_configs),     cmocka_unit_test(test_init),
        cmocka_unit_test(test_accumulate_widths), cmocka_unit_test(test_eval_running_stats),
        cmocka_unit_test(test_hook_ranges),     cmocka_unit_test(test_deep_forward),
        cmocka_unit_test(test_b1_memory),       cmocka_unit_test(test_nograd),
    };
    return isa_each_run_group(tests); /* every ISA path the CPU has */
}
