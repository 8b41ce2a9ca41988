/* eval/ unit tests (single process): ridge (serial path vs hand-solved normal equations), the switchable probe
 * on separable data, kNN vs a brute-force double reference, gradient diagnostics vs a direct index loop,
 * singular values of known matrices, safetensors round trip and malformed headers. */
#include "core/rng.h"
#include "eval/graddiag.h"
#include "eval/graddir.h"
#include "eval/knn.h"
#include "eval/probe.h"
#include "eval/ridge.h"
#include "eval/safetensors.h"
#include <math.h>
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "test_util.h"

/* ---------- ridge ---------- */

/* Gaussian elimination with partial pivoting on a small dense system (n <= 8), in place. */
static void solve_small(int n, double *A, double *b, int nrhs) {
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(A[r * n + c]) > fabs(A[p * n + c])) p = r;
        for (int k = 0; k < n; k++) { double t = A[c * n + k]; A[c * n + k] = A[p * n + k]; A[p * n + k] = t; }
        for (int k = 0; k < nrhs; k++) { double t = b[c * nrhs + k]; b[c * nrhs + k] = b[p * nrhs + k]; b[p * nrhs + k] = t; }
        for (int r = 0; r < n; r++) {
            if (r == c) continue;
            double f = A[r * n + c] / A[c * n + c];
            for (int k = 0; k < n; k++) A[r * n + k] -= f * A[c * n + k];
            for (int k = 0; k < nrhs; k++) b[r * nrhs + k] -= f * b[c * nrhs + k];
        }
    }
    for (int r = 0; r < n; r++)
        for (int k = 0; k < nrhs; k++) b[r * nrhs + k] /= A[r * n + r];
}

static void test_ridge_vs_hand(void **state) {
    (void)state;
    enum { N = 9, d = 2, C = 3 };
    const float X[N][d] = {{1, 2}, {2, 1}, {3, 5}, {-1, 0}, {0, 4}, {2, 2}, {5, -1}, {1, 1}, {-2, 3}};
    const int32_t y[N] = {0, 1, 2, 0, 2, 1, 1, 0, 2};
    for (int stdz = 0; stdz < 2; stdz++) {
        const double lam = 0.7;
        ridge_opts o = ridge_opts_default();
        o.nlambdas = 1; o.lambdas[0] = lam; o.standardize = stdz; o.chunk_rows = 4; /* 3 chunks */
        ridge_result r;
        assert_int_equal(ridge_fit(N, d, &X[0][0], y, C, &o, &r), SC_OK);
        /* reference: z = (x - mean)/sd (or x - mean), normal equations [zᵀz + λ diag(1,1,0)] w = zᵀY */
        double mean[d] = {0}, sd[d] = {0};
        for (int i = 0; i < N; i++) for (int j = 0; j < d; j++) mean[j] += X[i][j] / (double)N;
        for (int i = 0; i < N; i++) for (int j = 0; j < d; j++) sd[j] += pow(X[i][j] - mean[j], 2) / N;
        for (int j = 0; j < d; j++) sd[j] = stdz ? sqrt(sd[j]) : 1.0;
        double A[3 * 3] = {0}, B[3 * C] = {0};
        for (int i = 0; i < N; i++) {
            double z[3] = {(X[i][0] - mean[0]) / sd[0], (X[i][1] - mean[1]) / sd[1], 1.0};
            for (int a = 0; a < 3; a++) {
                for (int b = 0; b < 3; b++) A[a * 3 + b] += z[a] * z[b];
                B[a * C + y[i]] += z[a];
            }
        }
        A[0] += lam; A[4] += lam;
        solve_small(3, A, B, C);
        for (int c = 0; c < C; c++) {
            double bias = B[2 * C + c];
            for (int j = 0; j < d; j++) {
                double w = B[j * C + c] / sd[j];
                assert_true(fabs(r.W[j * C + c] - w) < 1e-10 * (1 + fabs(w)));
                bias -= w * mean[j];
            }
            assert_true(fabs(r.b[c] - bias) < 1e-10 * (1 + fabs(bias)));
        }
        assert_false(r.used_scalapack);
        ridge_result_free(&r);
    }
}

static void make_blobs(int n, int d, int C, float noise, uint64_t seed, float *X, int32_t *y) {
    rng_stream rs = rng_stream_make(seed, 7, 7, 7);
    rng_stream rc = rng_stream_make(99, 1, 1, 1); /* the same class centres for every call */
    float *cen = malloc(sizeof(float) * (size_t)C * d);
    for (int i = 0; i < C * d; i++) cen[i] = 2.0f * rng_normal(&rc);
    rng_stream ry = rng_stream_make(seed, 8, 8, 8); /* labels depend on (seed, n) only, not on d */
    for (int i = 0; i < n; i++) {
        y[i] = (int32_t)rng_below(&ry, (uint64_t)C);
        for (int j = 0; j < d; j++) X[(size_t)i * d + j] = cen[y[i] * d + j] + noise * rng_normal(&rs) + 10.0f;
    }
    free(cen);
}

static void test_ridge_select_and_errors(void **state) {
    (void)state;
    enum { N = 600, d = 12, C = 5 };
    float *X = malloc(sizeof(float) * N * d);
    int32_t *y = malloc(sizeof(int32_t) * N);
    make_blobs(N, d, C, 1.0f, 3, X, y);
    ridge_opts o = ridge_opts_default();
    ridge_result r;
    assert_int_equal(ridge_fit(N, d, X, y, C, &o, &r), SC_OK);
    assert_int_equal(r.n_holdout, 60);
    int best = 0;
    for (int l = 0; l < r.nlambdas; l++)
        if (r.holdout_top1[l] > r.holdout_top1[best]) best = l;
    assert_true(r.lambda == r.lambdas[best]);
    assert_true(ridge_accuracy(&r, N, X, y) > 0.95);
    ridge_result_free(&r);
    y[5] = C; /* a bad label is refused with its row */
    assert_int_equal(ridge_fit(N, d, X, y, C, &o, &r), SC_ERR_ARG);
    assert_non_null(strstr(sc_last_error(), "row 5"));
    y[5] = 0;
    o.nlambdas = 2; o.lambdas[0] = 1; o.lambdas[1] = 0;
    assert_int_equal(ridge_fit(N, d, X, y, C, &o, &r), SC_ERR_ARG);
    free(X); free(y);
}

/* ---------- probe ---------- */

static void test_probe_separable(void **state) {
    (void)state;
    enum { NT = 1200, NV = 400, C = 4 };
    const int dims[2] = {16, 6};
    float *tr[2], *te[2];
    int32_t *ytr = malloc(sizeof(int32_t) * NT), *yte = malloc(sizeof(int32_t) * NV);
    for (int w = 0; w < 2; w++) {
        tr[w] = malloc(sizeof(float) * NT * dims[w]);
        te[w] = malloc(sizeof(float) * NV * dims[w]);
        make_blobs(NT, dims[w], C, w ? 0.6f : 0.8f, 11, tr[w], ytr); /* same seed: same labels per width */
        make_blobs(NV, dims[w], C, w ? 0.6f : 0.8f, 12, te[w], yte);
    }
    const probe_shape sh = {.nwidths = 2, .dims = {dims[0], dims[1]}, .classes = C};
    const probe_data dtr = {.n = NT, .F = {tr[0], tr[1]}, .labels = ytr}, dte = {.n = NV, .F = {te[0], te[1]}, .labels = yte};
    for (int mode = 0; mode < 4; mode++) {
        probe_opts o = probe_opts_default();
        o.epochs = 15; o.batch = 64; o.lr = 0.1f;
        o.distill = mode != 1;
        o.slim_linear = mode == 2;
        o.standardize = mode != 3; /* raw features (the reference protocol) */
        o.eval_every = 5;
        if (mode == 1) { o.schedule = SCHED_STEP; o.nmilestones = 1; o.milestones[0] = 10; }
        float *W[2] = {malloc(sizeof(float) * C * dims[0]), malloc(sizeof(float) * C * dims[1])};
        float *b[2] = {malloc(sizeof(float) * C), malloc(sizeof(float) * C)};
        probe_result r;
        assert_int_equal(probe_train(&sh, &dtr, &dte, &o, &r, W, b), SC_OK);
        assert_true(r.best_epoch == 5 || r.best_epoch == 10 || r.best_epoch == 15);
        assert_true(r.best_top1[0] >= r.top1[0]);
        for (int w = 0; w < 2; w++) {
            printf("probe mode %d width %d: top1 %.4f top5 %.4f test CE %.4f train CE %.4f\n", mode, w, r.top1[w],
                   r.top5[w], r.test_loss[w], r.train_loss[w]);
            assert_true(r.top1[w] > 0.97);
            assert_true(r.top5[w] == 1.0); /* 4 classes: top-5 = top-4 covers everything */
            assert_true(r.test_loss[w] < 0.3);
            /* the exported raw-space probe reproduces the accuracy on raw features */
            int ok = 0;
            for (int i = 0; i < NV; i++) {
                int best = 0; double bs = -1e30;
                for (int k = 0; k < C; k++) {
                    double s = b[w][k];
                    for (int j = 0; j < dims[w]; j++) s += (double)W[w][k * dims[w] + j] * te[w][i * dims[w] + j];
                    if (s > bs) { bs = s; best = k; }
                }
                ok += best == yte[i];
            }
            assert_true(fabs(ok / (double)NV - r.top1[w]) < 0.006);
        }
        for (int w = 0; w < 2; w++) { free(W[w]); free(b[w]); }
    }
    /* bad label / bad lr refused */
    probe_opts o = probe_opts_default();
    probe_result r;
    o.lr = 0;
    assert_int_equal(probe_train(&sh, &dtr, &dte, &o, &r, NULL, NULL), SC_ERR_ARG);
    o = probe_opts_default(); /* a milestone beyond the epochs */
    o.epochs = 10; o.schedule = SCHED_STEP; o.nmilestones = 1; o.milestones[0] = 11;
    assert_int_equal(probe_train(&sh, &dtr, &dte, &o, &r, NULL, NULL), SC_ERR_ARG);
    assert_non_null(strstr(sc_last_error(), "milestone 11"));
    for (int w = 0; w < 2; w++) { free(tr[w]); free(te[w]); }
    free(ytr); free(yte);
}

/* ---------- kNN ---------- */

static int knn_ref(int nb, int d, const float *bank, const int32_t *bl, const float *q, int C, int k, double T) {
    double *sim = malloc(sizeof(double) * nb), qn = 0;
    int *used = calloc((size_t)nb, sizeof(int));
    for (int j = 0; j < d; j++) qn += (double)q[j] * q[j];
    for (int i = 0; i < nb; i++) {
        double s = 0, bn = 0;
        for (int j = 0; j < d; j++) { s += (double)q[j] * bank[i * d + j]; bn += (double)bank[i * d + j] * bank[i * d + j]; }
        sim[i] = s / sqrt(qn * bn);
    }
    double score[16] = {0};
    for (int t = 0; t < k && t < nb; t++) {
        int m = -1;
        for (int i = 0; i < nb; i++)
            if (!used[i] && (m < 0 || sim[i] > sim[m])) m = i;
        used[m] = 1;
        score[bl[m]] += exp(sim[m] / T);
    }
    int best = 0;
    for (int c = 1; c < C; c++)
        if (score[c] > score[best]) best = c;
    free(sim); free(used);
    return best;
}

static void test_knn(void **state) {
    (void)state;
    /* hand case: k = 1 is the nearest direction (the norm does not matter) */
    const float bank[4 * 2] = {1, 0, 0, 1, -1, 0, 0, -5};
    const int32_t bl[4] = {0, 1, 2, 3};
    const float q[3 * 2] = {10, 1, 0.1f, 3, -1, -10};
    const int32_t ql[3] = {0, 1, 3};
    int32_t pred[3];
    int64_t ok = 0;
    assert_int_equal(knn_classify(4, 2, bank, bl, 3, q, ql, 4, 1, 0.1f, pred, &ok), SC_OK);
    assert_int_equal(ok, 3);
    assert_int_equal(pred[0], 0); assert_int_equal(pred[1], 1); assert_int_equal(pred[2], 3);
    /* random case vs the brute-force reference, k = 20 (> the query block: several blocks) */
    enum { NB = 300, NQ = 150, D = 8, C = 6 };
    float *B = malloc(sizeof(float) * NB * D), *Q = malloc(sizeof(float) * NQ * D);
    int32_t *by = malloc(sizeof(int32_t) * NB), *qy = malloc(sizeof(int32_t) * NQ), *pr = malloc(sizeof(int32_t) * NQ);
    make_blobs(NB, D, C, 3.0f, 5, B, by);
    make_blobs(NQ, D, C, 3.0f, 6, Q, qy);
    for (int i = 0; i < NB * D; i++) B[i] -= 10.0f; /* centre the blobs so that directions differ */
    for (int i = 0; i < NQ * D; i++) Q[i] -= 10.0f;
    assert_int_equal(knn_classify(NB, D, B, by, NQ, Q, qy, C, 20, 0.1f, pr, &ok), SC_OK);
    int agree = 0, ok_ref = 0;
    for (int i = 0; i < NQ; i++) {
        int p = knn_ref(NB, D, B, by, Q + i * D, C, 20, 0.1);
        agree += p == pr[i];
        ok_ref += p == qy[i];
    }
    assert_true(agree >= NQ - 1); /* fp32 vs double similarity ties may flip at most one borderline vote */
    assert_true(labs((long)ok - ok_ref) <= 1);
    double acc = knn_top1(NB, D, B, by, NQ, Q, qy, C, 200, 0.1f); /* k clamped to the bank */
    assert_true(acc > 0.3);
    assert_int_equal(knn_classify(NB, D, B, by, NQ, Q, qy, C, 20, 0.0f, NULL, &ok), SC_ERR_ARG);
    free(B); free(Q); free(by); free(qy); free(pr);
}

/* ---------- gradient diagnostics ---------- */

static param_info mk(const char *name, size_t *off, param_kind kind, int ndim, int s0, int s1, int s2, int s3,
                     int wonly) {
    param_info p;
    memset(&p, 0, sizeof p);
    snprintf(p.name, sizeof p.name, "%s", name);
    p.kind = kind; p.ndim = ndim;
    p.shape[0] = s0; p.shape[1] = s1; p.shape[2] = s2; p.shape[3] = s3;
    p.count = (size_t)s0 * (s1 ? s1 : 1) * (s2 ? s2 : 1) * (s3 ? s3 : 1);
    p.offset = *off; *off += p.count;
    p.width_only = wonly;
    return p;
}

/* The reference's get_grad_norm, written out for one tensor: element (o, i) belongs to width w's slice iff
 * o - r0 < dim1 and i - c0 < dim2 with dim1 = out if 'fc' in the name else int(w*out), dim2 = in if the tensor is
 * the stem (3 input channels, or this table's 1-channel stem) else int(w*in); r0/c0 the block starts (0: prefixes). */
static double ref_norm(const param_info *p, const float *g, float w, bool stem, int r0, int c0) {
    int kk = p->ndim == 4 ? p->shape[2] * p->shape[3] : 1;
    int d1 = strstr(p->name, "fc") ? p->shape[0] : (int)(w * p->shape[0] + 1e-4f);
    int d2 = stem || p->shape[1] == 3 ? p->shape[1] : (int)(w * p->shape[1] + 1e-4f);
    if (strstr(p->name, "fc")) r0 = 0;
    if (stem || p->shape[1] == 3) c0 = 0;
    double acc = 0;
    for (int o = 0; o < p->shape[0]; o++)
        for (int i = 0; i < p->shape[1]; i++)
            for (int k = 0; k < kk; k++) {
                double v = g[p->offset + ((size_t)o * p->shape[1] + i) * kk + k];
                if (o >= r0 && o < r0 + d1 && i >= c0 && i < c0 + d2) acc += v * v;
            }
    return sqrt(acc);
}

static void test_graddiag(void **state) {
    (void)state;
    size_t off = 0;
    param_info t[9], pr[3];
    t[0] = mk("conv1.weight", &off, PARAM_WEIGHT, 4, 4, 3, 3, 3, -1);
    t[1] = mk("bn1.0.weight", &off, PARAM_BN, 1, 4, 0, 0, 0, 0);
    t[2] = mk("layer1.0.conv1.weight", &off, PARAM_WEIGHT, 4, 8, 4, 3, 3, -1);
    t[3] = mk("layer1.0.downsample.0.weight", &off, PARAM_WEIGHT, 4, 8, 4, 1, 1, -1);
    t[4] = mk("fc.0.weight", &off, PARAM_WEIGHT, 2, 8, 8, 0, 0, -1);
    t[5] = mk("fc.0.bias", &off, PARAM_BIAS, 1, 8, 0, 0, 0, -1);
    t[6] = mk("fc.2.weight", &off, PARAM_WEIGHT, 2, 5, 8, 0, 0, -1);
    t[7] = mk("fc.linears.1.weight", &off, PARAM_WEIGHT, 2, 5, 4, 0, 0, 1);
    t[8] = mk("layer1.0.conv2.weight", &off, PARAM_WEIGHT, 4, 8, 8, 3, 3, -1); /* huge: clamped, dropped */
    size_t off2 = 0; /* a second source: the MoCo v3 predictor, sliced on both axes (no "fc" in its names) */
    pr[0] = mk("predictor.0.weight", &off2, PARAM_WEIGHT, 2, 16, 8, 0, 0, -1);
    pr[1] = mk("predictor.1.0.weight", &off2, PARAM_BN, 1, 16, 0, 0, 0, 0);
    pr[2] = mk("predictor.3.weight", &off2, PARAM_WEIGHT, 2, 8, 16, 0, 0, -1);
    float *g = malloc(sizeof(float) * off), *g2 = malloc(sizeof(float) * off2);
    rng_stream rs = rng_stream_make(4, 0, 0, 0);
    for (size_t i = 0; i < off; i++) g[i] = rng_normal(&rs);
    for (size_t i = 0; i < off2; i++) g2[i] = rng_normal(&rs);
    for (size_t i = 0; i < t[8].count; i++) g[t[8].offset + i] *= 1e3f;
    const float widths[3] = {1.0f, 0.5f, 0.25f};
    graddiag_src src[2] = {{.tab = t, .n = 9, .grads = g}, {.tab = pr, .n = 3, .grads = g2}};
    graddiag_result r;
    assert_int_equal(graddiag_compute(src, 2, 3, widths, &r), SC_OK);
    assert_int_equal(r.nlayers, 8);
    assert_int_equal(r.nskipped, 1);
    const int used[8][2] = {{0, 0}, {0, 2}, {0, 3}, {0, 4}, {0, 6}, {0, 7}, {1, 0}, {1, 2}};
    double N[3] = {0}, r2 = 0;
    for (int l = 0; l < 8; l++) {
        const param_info *p = used[l][0] ? &pr[used[l][1]] : &t[used[l][1]];
        double s[3];
        for (int w = 0; w < 3; w++) {
            s[w] = ref_norm(p, used[l][0] ? g2 : g, widths[w], false, 0, 0);
            assert_true(fabs(r.s[l * 3 + w] - s[w]) < 1e-5 * s[w]);
            N[w] += s[w] / 8;
        }
        assert_int_equal(r.layer_src[l], used[l][0]);
        assert_int_equal(r.layer_tensor[l], used[l][1]);
        r2 += sqrt(s[0] * s[0] - s[2] * s[2]) / s[2] / 8;
    }
    for (int w = 0; w < 3; w++) assert_true(fabs(r.N[w] - N[w]) < 1e-5 * N[w]);
    assert_true(fabs(r.R1 - N[0] / N[2]) < 1e-5 * r.R1);
    assert_true(fabs(r.R2_approx - sqrt(N[0] * N[0] - N[2] * N[2]) / N[2]) < 1e-5 * r.R2_approx);
    assert_true(fabs(r.R2_exact - r2) < 1e-5 * r2);
    graddiag_free(&r);
    /* the rule: every fc weight keeps its rows (the hidden fc.0 too), the RGB stem its inputs */
    graddiag_rule rule = graddiag_rule_for(t, 9, 4);
    assert_true(rule.used && !rule.slice_out && rule.slice_in);
    rule = graddiag_rule_for(t, 9, 0);
    assert_true(rule.used && rule.slice_out && !rule.slice_in);
    assert_true(graddiag_rule_for(t, 9, 7).used);
    assert_false(graddiag_rule_for(t, 9, 5).used || graddiag_rule_for(pr, 3, 1).used);
    rule = graddiag_rule_for(pr, 3, 0);
    assert_true(rule.slice_out && rule.slice_in);
    t[0].shape[1] = 1; /* a 1-channel stem keeps its input too (int(w*1) would be 0) */
    rule = graddiag_rule_for(t, 9, 0);
    assert_true(rule.used && rule.slice_out && !rule.slice_in);
    free(g); free(g2);
}

/* the reference's get_nonoverlap_channels: widths ascending side by side from 0, the largest at 0; all equal: 0 */
static int ref_block_start(int full, const float *widths, int nw, int w) {
    int c[MODEL_MAX_WIDTHS];
    bool equal = true;
    for (int i = 0; i < nw; i++) {
        c[i] = (int)(widths[i] * full + 1e-4f);
        equal = equal && c[i] == c[0];
    }
    if (equal || w == 0) return 0;
    int acc = 0;
    for (int i = nw - 1; i > w; i--) acc += c[i];
    return acc;
}

/* slimclr.overlap_weight false: each width's N(w) over its own block (an independent loop over the reference's
 * layout); R1 and R2 equal the prefix ones (width 1.0 and the smallest width start at 0); width 0.5's N moves */
static void test_graddiag_disjoint(void **state) {
    (void)state;
    model_cfg c = {.depth = 18, .base = 8, .in_ch = 1, .img = 16, .stem = STEM_SMALL, .nwidths = 3,
                   .widths = {1.0f, 0.5f, 0.25f}, .head = HEAD_MOCOV2, .head_out = 8, .disjoint = true};
    sc_err e = SC_OK;
    model *m = model_create(&c, &e);
    assert_non_null(m);
    rng_stream rs = rng_stream_make(5, 0, 0, 0);
    for (size_t i = 0; i < model_nparams(m); i++) model_grads(m)[i] = rng_normal(&rs);
    for (int i = 0; i < model_ntensors(m); i++) { /* rows of growing size: blocks of one size differ in norm */
        const param_info *p = model_tensor(m, i);
        for (size_t k = 0; k < p->count; k++) model_grads(m)[p->offset + k] *= 1.0f + (float)(k / (p->count / p->shape[0])) / (float)p->shape[0];
    }
    graddiag_result r, rp;
    model *ms[1] = {m};
    assert_int_equal(graddiag_compute_models(ms, 1, &r), SC_OK);
    graddiag_src prefix = {.tab = model_tensor(m, 0), .n = model_ntensors(m), .grads = model_grads(m)};
    assert_int_equal(graddiag_compute(&prefix, 1, 3, c.widths, &rp), SC_OK);
    assert_int_equal(r.nlayers, rp.nlayers);
    double N[3] = {0};
    int nl = 0;
    for (int i = 0; i < model_ntensors(m); i++) {
        const param_info *p = model_tensor(m, i);
        if (p->kind != PARAM_WEIGHT || (p->ndim != 2 && p->ndim != 4)) continue;
        for (int w = 0; w < 3; w++)
            N[w] += ref_norm(p, model_grads(m), c.widths[w], i == 0, ref_block_start(p->shape[0], c.widths, 3, w),
                             ref_block_start(p->shape[1], c.widths, 3, w));
        nl++;
    }
    assert_int_equal(nl, r.nlayers);
    for (int w = 0; w < 3; w++) assert_true(fabs(r.N[w] - N[w] / nl) < 1e-5 * r.N[w]);
    assert_true(fabs(r.R1 - rp.R1) < 1e-9 * rp.R1 && fabs(r.R2_exact - rp.R2_exact) < 1e-9 * rp.R2_exact);
    assert_true(fabs(r.N[1] - rp.N[1]) > 1e-3 * rp.N[1]);
    int r0, c0; /* layer1.0.conv1 (8 -> 8): width 0.5's block starts at row 2, column 2; 0.25's at 0 */
    for (int i = 0; i < model_ntensors(m); i++)
        if (!strcmp(model_tensor(m, i)->name, "layer1.0.conv1.weight")) {
            model_weight_block(m, i, 1, &r0, &c0);
            assert_true(r0 == 2 && c0 == 2);
            model_weight_block(m, i, 2, &r0, &c0);
            assert_true(r0 == 0 && c0 == 0);
        }
    graddiag_free(&r);
    graddiag_free(&rp);
    model_free(m);
}

static void test_top2_sv(void **state) {
    (void)state;
    /* a permuted diagonal: singular values are |entries| */
    const float A[4 * 3] = {0, 3, 0, -5, 0, 0, 0, 0, 1, 0, 0, 0};
    double sv[2];
    assert_int_equal(graddiag_top2_sv(4, 3, A, 3, sv), SC_OK);
    assert_true(fabs(sv[0] - 5) < 1e-6 && fabs(sv[1] - 3) < 1e-6);
    /* rotated: G = R(a) diag(7, 2) R(b)ᵀ, stored in a 2 x 4 buffer (ld 4) */
    double a = 0.3, b = 1.1;
    double Ra[2][2] = {{cos(a), -sin(a)}, {sin(a), cos(a)}}, Rb[2][2] = {{cos(b), -sin(b)}, {sin(b), cos(b)}};
    float G[2 * 4] = {0};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) G[i * 4 + j] = (float)(Ra[i][0] * 7 * Rb[j][0] + Ra[i][1] * 2 * Rb[j][1]);
    assert_int_equal(graddiag_top2_sv(2, 2, G, 4, sv), SC_OK);
    assert_true(fabs(sv[0] - 7) < 1e-5 && fabs(sv[1] - 2) < 1e-5);
    const float row[3] = {3, 4, 0};
    assert_int_equal(graddiag_top2_sv(1, 3, row, 3, sv), SC_OK);
    assert_true(fabs(sv[0] - 5) < 1e-6 && sv[1] == 0);
}

/* ---------- gradient direction over time (docs/method.md §8.2) ---------- */

static double dotd(const double *a, const double *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* top-2 eigenvectors of C = Xcᵀ Xc (D x D, built explicitly) by power iteration with deflation: independent of
 * the Gram matrix / dsyev path */
static void power_pca2(int T, int D, const float *X, double *v, double *lam, double *trace) {
    double *mu = calloc(D, sizeof(double)), *C = calloc((size_t)D * D, sizeof(double)), *y = calloc(D, sizeof(double));
    for (int t = 0; t < T; t++)
        for (int d = 0; d < D; d++) mu[d] += X[t * D + d] / (double)T;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) C[i * D + j] += (X[t * D + i] - mu[i]) * (X[t * D + j] - mu[j]);
    *trace = 0;
    for (int i = 0; i < D; i++) *trace += C[i * D + i];
    for (int k = 0; k < 2; k++) {
        double *x = v + k * D;
        for (int d = 0; d < D; d++) x[d] = 1.0 + 0.1 * d;
        for (int it = 0; it < 3000; it++) {
            for (int i = 0; i < D; i++) y[i] = dotd(C + i * D, x, D);
            if (k == 1) { double a = dotd(y, v, D); for (int d = 0; d < D; d++) y[d] -= a * v[d]; }
            double nrm = sqrt(dotd(y, y, D));
            for (int d = 0; d < D; d++) x[d] = y[d] / nrm;
        }
        for (int i = 0; i < D; i++) y[i] = dotd(C + i * D, x, D);
        lam[k] = dotd(x, y, D);
    }
    free(mu); free(C); free(y);
}

static void test_graddir_pca(void **state) {
    (void)state;
    /* hand-built: X_t = mu + a_t u + b_t v, u ⟂ v unit, a and b centred and uncorrelated with variances 9 : 1 */
    enum { T = 11, D = 40 }; /* T odd: no two rows tie for the largest |a_t| */
    double u[D], v[D], mu[D];
    rng_stream rs = rng_stream_make(8, 0, 0, 0);
    for (int d = 0; d < D; d++) { u[d] = rng_normal(&rs); v[d] = rng_normal(&rs); mu[d] = rng_normal(&rs); }
    double nu = sqrt(dotd(u, u, D));
    for (int d = 0; d < D; d++) u[d] /= nu;
    double uv = dotd(u, v, D);
    for (int d = 0; d < D; d++) v[d] -= uv * u[d];
    double nv = sqrt(dotd(v, v, D));
    for (int d = 0; d < D; d++) v[d] /= nv;
    float X[T * D];
    double a[T], b[T];
    for (int t = 0; t < T; t++) {
        a[t] = 3.0 * cos(2 * M_PI * t / T + 0.3);
        b[t] = sin(2 * M_PI * t / T + 0.3);
        for (int d = 0; d < D; d++) X[t * D + d] = (float)(mu[d] + a[t] * u[d] + b[t] * v[d]);
    }
    graddir_pca p;
    assert_int_equal(graddir_pca2(T, D, X, &p), SC_OK);
    assert_true(fabs(p.evr[0] - 0.9) < 1e-5 && fabs(p.evr[1] - 0.1) < 1e-5);
    double s1 = dotd(p.pc, u, D), s2 = dotd(p.pc + D, v, D);
    assert_true(fabs(fabs(s1) - 1) < 1e-5 && fabs(fabs(s2) - 1) < 1e-5);
    int tmax = 0; /* sign: the largest centred coefficient along pc1 is positive */
    for (int t = 1; t < T; t++)
        if (fabs(a[t]) > fabs(a[tmax])) tmax = t;
    assert_true(s1 * a[tmax] > 0);
    double mu_u = dotd(mu, u, D), mu_v = dotd(mu, v, D);
    for (int t = 0; t < T; t++) { /* uncentred projections */
        assert_true(fabs(p.proj[t * 2] - s1 * (mu_u + a[t])) < 1e-4);
        assert_true(fabs(p.proj[t * 2 + 1] - s2 * (mu_v + b[t])) < 1e-4);
    }
    graddir_pca_free(&p);
    /* random data against power iteration on the explicit covariance */
    enum { T2 = 9, D2 = 30 };
    float Y[T2 * D2];
    for (int i = 0; i < T2 * D2; i++) Y[i] = rng_normal(&rs) * (float)(1 + i % 5);
    double vv[2 * D2], lam[2], tr;
    power_pca2(T2, D2, Y, vv, lam, &tr);
    assert_int_equal(graddir_pca2(T2, D2, Y, &p), SC_OK);
    for (int k = 0; k < 2; k++) {
        assert_true(fabs(p.evr[k] - lam[k] / tr) < 1e-6);
        assert_true(fabs(fabs(dotd(p.pc + k * D2, vv + k * D2, D2)) - 1) < 1e-6);
        for (int t = 0; t < T2; t++) {
            double x = 0;
            for (int d = 0; d < D2; d++) x += Y[t * D2 + d] * p.pc[k * D2 + d];
            assert_true(fabs(p.proj[t * 2 + k] - x) < 1e-9 * (1 + fabs(x)));
        }
    }
    graddir_pca_free(&p);
    assert_int_equal(graddir_pca2(2, D2, Y, &p), SC_ERR_ARG); /* two snapshots: no 2-component PCA */
}

static void test_graddir_file(void **state) {
    (void)state;
    char path[] = "/tmp/sc_graddir_XXXXXX";
    tu_temp_file(path);
    graddir_log *g;
    assert_int_equal(graddir_open(path, &g), SC_OK);
    float G[2 * 4] = {1, 2, 0, 0, 3, 4, 0, 0}, H[2 * 4] = {2, 4, 0, 0, 6, 8, 0, 0}, O[2 * 4] = {0, 0, 0, 0, 0, 0, 0, 0};
    O[0] = -2; O[1] = 1; /* orthogonal to G's 2 x 2 block */
    double c;
    assert_int_equal(graddir_record(g, 2, 2, 2, G, 4, &c), SC_OK);
    assert_true(isnan(c));
    assert_int_equal(graddir_record(g, 4, 2, 2, H, 4, &c), SC_OK);
    assert_true(fabs(c - 1) < 1e-12);
    assert_int_equal(graddir_record(g, 6, 2, 2, O, 4, &c), SC_OK);
    assert_true(fabs(c) < 1e-12);
    assert_int_equal(graddir_record(g, 4, 2, 2, O, 4, &c), SC_OK); /* a resumed run rewrites step 4 */
    graddir_close(g);
    FILE *f = fopen(path, "ab"); /* a torn record at the end */
    fwrite("GDR1", 1, 4, f);
    fclose(f);
    graddir_series s;
    assert_int_equal(graddir_read(path, &s), SC_OK);
    assert_true(s.T == 2 && s.rows == 2 && s.cols == 2 && s.torn == 1);
    assert_true(s.step[0] == 2 && s.step[1] == 4);
    assert_true(s.X[0] == 1 && s.X[1] == 2 && s.X[2] == 3 && s.X[3] == 4 && s.X[4] == -2 && s.X[5] == 1);
    graddir_series_free(&s);
    f = fopen(path, "wb");
    fwrite("XXXX", 1, 4, f);
    const int64_t zeros[2] = {0, 0};
    fwrite(zeros, 8, 2, f);
    fclose(f);
    assert_int_equal(graddir_read(path, &s), SC_ERR_FORMAT);
    assert_non_null(strstr(sc_last_error(), "not a gradient snapshot"));
    unlink(path);
}

/* ---------- safetensors ---------- */

static void write_raw(const char *path, const char *hdr, uint64_t hl, size_t data_bytes) {
    FILE *f = fopen(path, "wb");
    unsigned char l8[8];
    for (int i = 0; i < 8; i++) l8[i] = (unsigned char)(hl >> (8 * i));
    fwrite(l8, 1, 8, f);
    fwrite(hdr, 1, strlen(hdr), f);
    for (size_t i = 0; i < data_bytes; i++) fputc(0, f);
    fclose(f);
}

static void test_safetensors_roundtrip(void **state) {
    (void)state;
    char path[] = "/tmp/slimclr_test_eval_st_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    float a[2 * 3] = {1, 2, 3, 4, 5, 6}, b[5] = {-1, 0.5f, 1e-30f, 3e30f, -0.0f}, s = 42;
    safetensors_tensor t[3] = {
        {.name = "conv1.weight", .ndim = 2, .shape = {2, 3}, .data = a},
        {.name = "we\"ird\\name\xc3\xa9", .ndim = 1, .shape = {5}, .data = b},
        {.name = "scalar", .ndim = 0, .data = &s},
    };
    const char *mk[2] = {"format", "width"}, *mv[2] = {"pt", "0.5"};
    assert_int_equal(safetensors_write(path, 3, t, 2, mk, mv), SC_OK);
    FILE *f = fopen(path, "rb");
    unsigned char l8[8];
    assert_int_equal(fread(l8, 1, 8, f), 8);
    fclose(f);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)l8[i] << (8 * i);
    assert_int_equal((8 + hl) % 8, 0);
    safetensors_file *sf;
    assert_int_equal(safetensors_open(path, &sf), SC_OK);
    assert_int_equal(safetensors_count(sf), 3);
    assert_string_equal(safetensors_meta(sf, "width"), "0.5");
    assert_null(safetensors_meta(sf, "nope"));
    int i1 = safetensors_find(sf, t[1].name);
    assert_int_equal(i1, 1);
    const safetensors_entry *e = safetensors_entry_at(sf, 0);
    assert_int_equal(e->ndim, 2); assert_int_equal(e->shape[0], 2); assert_int_equal(e->shape[1], 3);
    assert_int_equal(e->begin, 0); assert_int_equal(e->end, 24);
    float ra[6], rb[5], rs;
    assert_int_equal(safetensors_read_f32(sf, 0, ra, 6), SC_OK);
    assert_int_equal(safetensors_read_f32(sf, i1, rb, 5), SC_OK);
    assert_int_equal(safetensors_read_f32(sf, 2, &rs, 1), SC_OK);
    assert_memory_equal(ra, a, sizeof a);
    assert_memory_equal(rb, b, sizeof b);
    assert_true(rs == 42);
    assert_int_equal(safetensors_read_f32(sf, 0, ra, 5), SC_ERR_MISMATCH);
    safetensors_close(sf);
    /* duplicate names refused at write time */
    t[2].name = "scalar"; t[1].name = "scalar";
    assert_int_equal(safetensors_write(path, 3, t, 0, NULL, NULL), SC_ERR_ARG);
    close(fd);
    remove(path);
}

static void test_safetensors_malformed(void **state) {
    (void)state;
    const char *path = "/tmp/slimclr_test_eval_bad.safetensors";
    struct { const char *hdr; size_t data; const char *why; } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, "header ends"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12, "need 8 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "truncated"},
        {"{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,8]}}", 8, "non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "missing data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, "twice"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 16, "overlap"},
        {"{\"__metadata__\":{\"k\":3}}", 0, "must be strings"},
        {"{} x", 0, "after the header"},
        {"[1]", 0, "'{'"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        write_raw(path, cases[c].hdr, strlen(cases[c].hdr), cases[c].data);
        safetensors_file *sf = NULL;
        sc_err e = safetensors_open(path, &sf);
        if (e != SC_ERR_FORMAT || !strstr(sc_last_error(), cases[c].why))
            fail_msg("case %zu: got %d '%s', expected format error with '%s'", c, e, sc_last_error(), cases[c].why);
        assert_null(sf);
    }
    /* header length beyond the file */
    write_raw(path, "{}", 1000, 0);
    safetensors_file *sf = NULL;
    assert_int_equal(safetensors_open(path, &sf), SC_ERR_FORMAT);
    assert_non_null(strstr(sc_last_error(), "impossible"));
    /* a valid F16 tensor opens but is not read as F32 */
    const char *h16 = "{\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}";
    write_raw(path, h16, strlen(h16), 4);
    assert_int_equal(safetensors_open(path, &sf), SC_OK);
    float x[2];
    assert_int_equal(safetensors_read_f32(sf, 0, x, 2), SC_ERR_FORMAT);
    safetensors_close(sf);
    assert_int_equal(safetensors_open("/nonexistent/x.safetensors", &sf), SC_ERR_IO);
    remove(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ridge_vs_hand),
        cmocka_unit_test(test_ridge_select_and_errors),
        cmocka_unit_test(test_probe_separable),
        cmocka_unit_test(test_knn),
        cmocka_unit_test(test_graddiag),
        cmocka_unit_test(test_graddiag_disjoint),
        cmocka_unit_test(test_graddir_pca),
        cmocka_unit_test(test_graddir_file),
        cmocka_unit_test(test_top2_sv),
        cmocka_unit_test(test_safetensors_roundtrip),
        cmocka_unit_test(test_safetensors_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
