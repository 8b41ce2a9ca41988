/* optim/: each optimizer against a hand-written double-precision reference, the untouched-tensor rule,
 * state save/restore, LR schedules at chosen steps, the MoCo v3 momentum schedule and the EMA. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "test_util.h"
#include <math.h>
#include <string.h>

#include "optim/optim.h"
#include "optim/sched.h"

/* A 10-float arena: a 2x3 weight, a bias of 2, a BN gamma of 2. */
#define NP 10
#define NT 3
static param_info tab[NT];
static void setup_tab(void) {
    memset(tab, 0, sizeof tab);
    strcpy(tab[0].name, "fc.weight"); tab[0].offset = 0; tab[0].count = 6; tab[0].kind = PARAM_WEIGHT; tab[0].ndim = 2;
    strcpy(tab[1].name, "fc.bias");   tab[1].offset = 6; tab[1].count = 2; tab[1].kind = PARAM_BIAS;   tab[1].ndim = 1;
    strcpy(tab[2].name, "bn.0.weight"); tab[2].offset = 8; tab[2].count = 2; tab[2].kind = PARAM_BN; tab[2].ndim = 1;
}
static const float p_init[NP] = {0.5f, -0.25f, 1.0f, 0.75f, -1.5f, 0.125f, 0.2f, -0.1f, 1.0f, 0.9f};
/* gradient of step s: hand-picked base times a step-dependent factor */
static const float g_base[NP] = {0.1f, 0.2f, -0.3f, 0.05f, -0.4f, 0.25f, 0.5f, -0.5f, 0.01f, -0.02f};
static float grad_at(int s, int i) { return g_base[i] * (1.0f + 0.5f * (float)s) - 0.03f * (float)s; }
static int tensor_of(int i) { return i < 6 ? 0 : (i < 8 ? 1 : 2); }

/* this cmocka has no assert_double_equal */
#define assert_double_equal(a, b, tol) assert_near_at((a), (b), (tol), __FILE__, __LINE__)
static void assert_near_at(double a, double b, double tol, const char *file, int line) {
    if (!(fabs(a - b) <= tol)) {
        print_error("%s:%d: got %.17g expected %.17g (tol %g)\n", file, line, a, b, tol);
        fail();
    }
}

/* |a - b| <= tol * (1 + |b|) */
static void check_close(const float *a, const double *b, int n, double tol) {
    tu_check_close("param", (size_t)n, a, b, NULL, tol, tol);
}

static void run_sgd(bool no_decay) {
    setup_tab();
    optim_cfg c = optim_defaults(OPTIM_SGD);
    c.wd = 0.1f; c.no_decay_bn_bias = no_decay;
    sc_err e;
    optim *o = optim_create(&c, tab, NT, NP, &e);
    assert_non_null(o);
    float p[NP], g[NP];
    double rp[NP], rb[NP] = {0};
    for (int i = 0; i < NP; i++) rp[i] = p[i] = p_init[i];
    const double lr[3] = {0.1, 0.05, 0.2};
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < NP; i++) g[i] = grad_at(s, i);
        optim_step(o, p, g, NULL, (float)lr[s]);
        for (int i = 0; i < NP; i++) {
            double wd = (no_decay && tensor_of(i) > 0) ? 0.0 : 0.1;
            rb[i] = 0.9 * rb[i] + ((double)g[i] + wd * rp[i]);
            rp[i] -= lr[s] * rb[i];
        }
    }
    check_close(p, rp, NP, 1e-6);
    assert_int_equal(optim_steps(o), 3);
    optim_free(o);
}
static void test_sgd(void **st) { (void)st; run_sgd(false); run_sgd(true); }

static void test_lars(void **st) {
    (void)st;
    setup_tab();
    optim_cfg c = optim_defaults(OPTIM_LARS);
    c.wd = 0.01f;
    sc_err e;
    optim *o = optim_create(&c, tab, NT, NP, &e);
    assert_non_null(o);
    float p[NP], g[NP];
    double rp[NP], rm[NP] = {0};
    for (int i = 0; i < NP; i++) rp[i] = p[i] = p_init[i];
    const double lr[3] = {1.2, 1.0, 0.5};
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < NP; i++) g[i] = grad_at(s, i);
        optim_step(o, p, g, NULL, (float)lr[s]);
        /* weight (ndim 2): trust scaling; bias and BN: plain momentum, no wd */
        double d[6], pn = 0, dn = 0;
        for (int i = 0; i < 6; i++) { d[i] = g[i] + 0.01 * rp[i]; pn += rp[i] * rp[i]; dn += d[i] * d[i]; }
        double q = 0.001 * sqrt(pn) / sqrt(dn);
        for (int i = 0; i < 6; i++) { rm[i] = 0.9 * rm[i] + q * d[i]; rp[i] -= lr[s] * rm[i]; }
        for (int i = 6; i < NP; i++) { rm[i] = 0.9 * rm[i] + g[i]; rp[i] -= lr[s] * rm[i]; }
    }
    check_close(p, rp, NP, 1e-6);
    optim_free(o);

    /* a zero weight: q = 1, so d = g + wd*0 = g unscaled */
    o = optim_create(&c, tab, NT, NP, &e);
    memset(p, 0, sizeof p);
    for (int i = 0; i < NP; i++) g[i] = g_base[i];
    optim_step(o, p, g, NULL, 0.5f);
    for (int i = 0; i < 6; i++) assert_float_equal(p[i], -0.5f * g_base[i], 1e-7);
    optim_free(o);
}

static void test_adamw(void **st) {
    (void)st;
    setup_tab();
    optim_cfg c = optim_defaults(OPTIM_ADAMW);
    c.wd = 0.05f;
    sc_err e;
    optim *o = optim_create(&c, tab, NT, NP, &e);
    assert_non_null(o);
    float p[NP], g[NP];
    double rp[NP], rm[NP] = {0}, rv[NP] = {0};
    int tsteps[NT] = {0};
    for (int i = 0; i < NP; i++) rp[i] = p[i] = p_init[i];
    const double lr[4] = {1e-2, 2e-2, 5e-3, 1e-2};
    /* step 1 leaves the BN tensor untouched: its own bias correction counts one step fewer */
    uint8_t touched[4][NT] = {{1, 1, 1}, {1, 1, 0}, {1, 1, 1}, {1, 0, 1}};
    for (int s = 0; s < 4; s++) {
        for (int i = 0; i < NP; i++) g[i] = grad_at(s, i);
        optim_step(o, p, g, touched[s], (float)lr[s]);
        for (int t = 0; t < NT; t++) tsteps[t] += touched[s][t];
        for (int i = 0; i < NP; i++) {
            int t = tensor_of(i);
            if (!touched[s][t]) continue;
            rp[i] *= 1.0 - lr[s] * 0.05;
            rm[i] = 0.9 * rm[i] + 0.1 * g[i];
            rv[i] = 0.999 * rv[i] + 0.001 * (double)g[i] * g[i];
            double mh = rm[i] / (1.0 - pow(0.9, tsteps[t])), vh = rv[i] / (1.0 - pow(0.999, tsteps[t]));
            rp[i] -= lr[s] * mh / (sqrt(vh) + 1e-8);
        }
    }
    check_close(p, rp, NP, 2e-6);
    optim_free(o);
}

static void test_untouched(void **st) {
    (void)st;
    setup_tab();
    for (int k = 0; k < 3; k++) {
        optim_cfg c = optim_defaults((optim_kind)k);
        c.wd = 0.1f;
        sc_err e;
        optim *o = optim_create(&c, tab, NT, NP, &e);
        float p[NP], g[NP];
        for (int i = 0; i < NP; i++) { p[i] = p_init[i]; g[i] = g_base[i]; }
        uint8_t all[NT] = {1, 1, 1}, some[NT] = {1, 0, 1};
        optim_step(o, p, g, all, 0.1f);
        size_t ns;
        float *s = optim_state(o, &ns);
        float p_before[NP], s_before[32];
        assert_true(ns <= 32);
        memcpy(p_before, p, sizeof p);
        memcpy(s_before, s, ns * sizeof(float));
        optim_step(o, p, g, some, 0.1f);
        /* the bias (tensor 1, floats 6..7) keeps params and state; the others moved */
        for (int i = 6; i < 8; i++) assert_memory_equal(&p[i], &p_before[i], sizeof(float));
        assert_float_not_equal(p[0], p_before[0], 0.0);
        assert_float_not_equal(p[8], p_before[8], 0.0);
        for (size_t j = 0; j < ns; j++) {
            size_t pi = j % NP; /* momentum / m / v live at the param offset; AdamW step counts after 2*NP */
            bool bias_slot = (j < 2 * NP && pi >= 6 && pi < 8) || (k == OPTIM_ADAMW && j == 2 * NP + 1);
            if (bias_slot) assert_memory_equal(&s[j], &s_before[j], sizeof(float));
        }
        optim_free(o);
    }
}

static void test_save_restore(void **st) {
    (void)st;
    setup_tab();
    for (int k = 0; k < 3; k++) {
        optim_cfg c = optim_defaults((optim_kind)k);
        c.wd = 0.01f;
        sc_err e;
        optim *a = optim_create(&c, tab, NT, NP, &e);
        float p[NP], g[NP];
        for (int i = 0; i < NP; i++) p[i] = p_init[i];
        for (int s = 0; s < 2; s++) {
            for (int i = 0; i < NP; i++) g[i] = grad_at(s, i);
            optim_step(a, p, g, NULL, 0.05f);
        }
        size_t ns;
        const float *sa = optim_state(a, &ns);
        float blob[32], pb[NP];
        memcpy(blob, sa, ns * sizeof(float));
        memcpy(pb, p, sizeof p);
        optim *b = optim_create(&c, tab, NT, NP, &e);
        assert_int_equal(optim_restore(b, blob, ns, optim_steps(a)), SC_OK);
        assert_int_equal(optim_restore(b, blob, ns + 1, 2), SC_ERR_MISMATCH);
        for (int s = 2; s < 4; s++) {
            for (int i = 0; i < NP; i++) g[i] = grad_at(s, i);
            optim_step(a, p, g, NULL, 0.05f);
            optim_step(b, pb, g, NULL, 0.05f);
        }
        assert_memory_equal(p, pb, sizeof p);
        assert_int_equal(optim_steps(b), 4);
        optim_free(a);
        optim_free(b);
    }
}

static void test_create_errors(void **st) {
    (void)st;
    setup_tab();
    optim_cfg c = optim_defaults(OPTIM_SGD);
    sc_err e;
    assert_null(optim_create(&c, tab, NT, 9, &e)); /* BN tensor ends at 10 */
    assert_int_equal(e, SC_ERR_ARG);
    assert_non_null(strstr(sc_last_error(), "bn.0.weight"));
    c.momentum = 1.5f;
    assert_null(optim_create(&c, tab, NT, NP, &e));
    assert_int_equal(e, SC_ERR_CONFIG);
}

static void test_sched_cosine(void **st) {
    (void)st;
    sched_cfg c = {.kind = SCHED_COSINE, .lr0 = 0.1, .steps_per_epoch = 10, .epochs = 10, .warmup_proportion = 0.1};
    assert_int_equal(sched_check(&c), SC_OK);
    assert_int_equal(sched_warmup_steps(&c), 10);
    assert_double_equal(sched_lr(&c, 0), 1e-8, 1e-15);
    assert_double_equal(sched_lr(&c, 5), 1e-8 + 0.5 * (0.1 - 1e-8), 1e-15);
    assert_double_equal(sched_lr(&c, 10), 0.1, 1e-15);
    assert_double_equal(sched_lr(&c, 11), 0.05 * (1 + cos(M_PI / 90)), 1e-15);
    assert_double_equal(sched_lr(&c, 55), 0.05, 1e-12);
    assert_double_equal(sched_lr(&c, 99), 0.05 * (1 + cos(M_PI * 89 / 90)), 1e-15);
    assert_double_equal(sched_lr(&c, 100), 1e-8, 1e-15); /* cosine end hits the floor */
    /* no warm-up: cosine from lr0 */
    c.warmup_proportion = 0;
    assert_double_equal(sched_lr(&c, 0), 0.1, 1e-15);
    assert_double_equal(sched_lr(&c, 50), 0.05, 1e-12);
}

static void test_sched_slow_start(void **st) {
    (void)st;
    sched_cfg c = {.kind = SCHED_COSINE, .lr0 = 0.1, .steps_per_epoch = 10, .epochs = 10, .warmup_proportion = 0.1,
                   .slow_start_epoch = 5.5, .slow_start_lr = 0.2};
    assert_int_equal(sched_check(&c), SC_OK);
    /* epoch_frac(54) = 5.4 < 5.5: old base; from step 55 (5.5) on the base is 0.2, cosine continues at T */
    assert_false(sched_slow_start_over(54, 10, 5.5));
    assert_true(sched_slow_start_over(55, 10, 5.5));
    assert_double_equal(sched_lr(&c, 54), 0.05 * (1 + cos(M_PI * 44 / 90)), 1e-15);
    assert_double_equal(sched_lr(&c, 55), 0.1 * (1 + cos(M_PI * 45 / 90)), 1e-15);
    assert_double_equal(sched_lr(&c, 80), 0.1 * (1 + cos(M_PI * 70 / 90)), 1e-15);
    /* S <= 0: no reset */
    c.slow_start_epoch = -1;
    assert_double_equal(sched_lr(&c, 80), 0.05 * (1 + cos(M_PI * 70 / 90)), 1e-15);
    assert_true(sched_slow_start_over(0, 10, -1));
    c.slow_start_epoch = 5; c.slow_start_lr = 0;
    assert_int_equal(sched_check(&c), SC_ERR_CONFIG);
}

static void test_sched_step(void **st) {
    (void)st;
    sched_cfg c = {.kind = SCHED_STEP, .lr0 = 0.1, .steps_per_epoch = 10, .epochs = 10, .nmilestones = 2,
                   .milestones = {3, 6}};
    assert_double_equal(sched_lr(&c, 0), 0.1, 1e-15);
    assert_double_equal(sched_lr(&c, 29), 0.1, 1e-15);
    assert_double_equal(sched_lr(&c, 30), 0.01, 1e-15);
    assert_double_equal(sched_lr(&c, 59), 0.01, 1e-15);
    assert_double_equal(sched_lr(&c, 60), 0.001, 1e-15);
    c.lr0 = 1e-6; /* 1e-8 floor */
    assert_double_equal(sched_lr(&c, 99), 1e-8, 1e-18);
    c.steps_per_epoch = 0;
    assert_int_equal(sched_check(&c), SC_ERR_CONFIG);
}

static void test_momentum_and_ema(void **st) {
    (void)st;
    assert_double_equal(sched_momentum_cos(0.99, 0, 300), 0.99, 1e-15);
    assert_double_equal(sched_momentum_cos(0.99, 150, 300), 0.995, 1e-15);
    assert_double_equal(sched_momentum_cos(0.99, 300, 300), 1.0, 1e-15);
    assert_double_equal(sched_momentum_cos(0.99, 75, 300), 1 - 0.5 * (1 + cos(M_PI / 4)) * 0.01, 1e-15);
    float k[3] = {1, 2, 3}, q[3] = {3, 2, -1};
    optim_ema(k, q, 3, 0.75f);
    assert_float_equal(k[0], 1.5f, 1e-7);
    assert_float_equal(k[1], 2.0f, 1e-7);
    assert_float_equal(k[2], 2.0f, 1e-7);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd),          cmocka_unit_test(test_lars),
        cmocka_unit_test(test_adamw),        cmocka_unit_test(test_untouched),
        cmocka_unit_test(test_save_restore), cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_sched_cosine), cmocka_unit_test(test_sched_slow_start),
        cmocka_unit_test(test_sched_step),   cmocka_unit_test(test_momentum_and_ema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
