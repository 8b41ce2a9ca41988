/* tests/test_iface: the everyday interface's pure parts.
 * - model_tape_estimate_bytes / model_scratch_estimate_bytes (model/estimate.c, no allocation) against the bytes
 *   real tapes allocate (model_tape_bytes, model_scratch_bytes) for every head, both stems, train and infer tapes.
 * - affinity_report's warnings on fabricated rank records (bound, unbound, shared, oversubscribed, two hosts).
 * - run_metrics_truncate (resume writes each step once) and run_check_resume's message naming the key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "test_util.h"

#include "comm/affinity.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "model/model.h"
#include "ssl/run.h"
#include "model_fixtures.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- estimate vs real tapes ---- */

static model_cfg mk(int depth, int base, int img, model_stem stem, model_head head) {
    model_cfg c = cfg_slim(depth, base, img, stem, head);
    c.head_hidden = head == HEAD_MOCOV2 ? 0 : 48;
    c.head_out = 16;
    c.head_in = 16;
    if (head == HEAD_MOCOV3_PRED) c.depth = 0;
    return c;
}

static void check_model(const model_cfg *c, int n) {
    sc_err e = SC_OK;
    model *m = model_create(c, &e);
    assert_non_null(m);
    for (int wi = 0; wi < model_nwidths(m); wi++) {
        for (int train = 0; train < 2; train++) {
            /* a fresh model per tape: its scratch is then exactly what this one tape needs */
            model *m1 = model_create(c, &e);
            assert_non_null(m1);
            size_t est = model_tape_estimate_bytes(m1, wi, n, train);
            size_t est_s = model_scratch_estimate_bytes(m1, wi, n, train);
            model_tape *t = train ? model_tape_create(m1, wi, n) : model_tape_create_infer(m1, wi, n);
            size_t real = model_tape_bytes(t), real_s = model_scratch_bytes(m1);
            if (est != real || est_s != real_s)
                fprintf(stderr, "depth %d head %d wi %d n %d train %d: tape est %zu real %zu, scratch est %zu real %zu\n",
                        c->depth, (int)c->head, wi, n, train, est, real, est_s, real_s);
            assert_int_equal(est, real);
            assert_int_equal(est_s, real_s);
            model_tape_free(t);
            model_free(m1);
        }
    }
    assert_int_equal(model_tape_estimate_bytes(m, -1, n, true), 0);
    assert_int_equal(model_tape_estimate_bytes(m, 0, 0, true), 0);
    model_free(m);
}

static void test_estimate_small_stem(void **st) {
    (void)st;
    model_head heads[] = {HEAD_NONE, HEAD_MOCOV2, HEAD_MOCOV3_PROJ, HEAD_SIMCLR, HEAD_SWITCH_LINEAR, HEAD_SLIM_LINEAR};
    for (size_t h = 0; h < sizeof heads / sizeof heads[0]; h++) {
        model_cfg c = mk(18, 8, 12, STEM_SMALL, heads[h]);
        check_model(&c, 3);
    }
    model_cfg p = mk(0, 8, 12, STEM_SMALL, HEAD_MOCOV3_PRED);
    check_model(&p, 5);
}

static void test_estimate_imagenet_stem(void **st) {
    (void)st;
    model_cfg c = mk(50, 8, 32, STEM_IMAGENET, HEAD_MOCOV2);
    check_model(&c, 2);
    c = mk(34, 8, 32, STEM_IMAGENET, HEAD_SIMCLR);
    check_model(&c, 2);
}

/* the estimate scales with the batch: the tape is dominated by per-image activations */
static void test_estimate_grows_with_batch(void **st) {
    (void)st;
    model_cfg c = mk(18, 8, 16, STEM_SMALL, HEAD_MOCOV2);
    sc_err e;
    model *m = model_create(&c, &e);
    size_t a = model_tape_estimate_bytes(m, 0, 4, true), b = model_tape_estimate_bytes(m, 0, 8, true);
    assert_true(b > a && b < 2 * a + 4096);
    /* sub-width tapes are smaller; forward-only tapes are much smaller */
    assert_true(model_tape_estimate_bytes(m, 1, 4, true) < a);
    assert_true(model_tape_estimate_bytes(m, 0, 4, false) < a / 2);
    model_free(m);
}

/* ---- affinity_report ---- */

static affinity_rec rec(const char *host, int first, int count, int threads) {
    affinity_rec r;
    memset(&r, 0, sizeof r);
    snprintf(r.host, sizeof r.host, "%s", host);
    for (int c = first; c < first + count; c++) r.mask[c / 64] |= 1ull << (c % 64);
    r.threads = threads;
    return r;
}

static int report(const affinity_rec *r, int P, const char *must_contain) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    int w = affinity_report(r, P, f);
    fclose(f);
    if (must_contain && !strstr(text, must_contain)) {
        fprintf(stderr, "missing \"%s\" in:\n%s", must_contain, text);
        fail();
    }
    free(text);
    return w;
}

static void test_affinity_report(void **st) {
    (void)st;
    /* 1 rank per socket, bound: 2 x 4 cores, 4 threads each: clean */
    affinity_rec a[4] = {rec("n0", 0, 4, 4), rec("n0", 4, 4, 4), rec("n1", 0, 4, 4), rec("n1", 4, 4, 4)};
    assert_int_equal(report(a, 4, "rank 1 on n0: cores 4-7 (4), 4 thread(s)"), 0);
    /* unbound ranks sharing 2 cores with 1 thread each (mpirun --bind-to none -np 2): fine */
    affinity_rec b[2] = {rec("vm", 0, 2, 1), rec("vm", 0, 2, 1)};
    assert_int_equal(report(b, 2, "cores 0-1 (2)"), 0);
    /* the same with SLURM_CPUS_PER_TASK=3: each rank over its mask, and the host over its cores */
    b[0].threads = b[1].threads = 3;
    assert_int_equal(report(b, 2, "rank 1 runs 3 threads on the 2 core(s)"), 3);
    assert_int_equal(report(b, 2, "host vm: 2 rank(s) run 6 threads on 2 core(s) (their masks share cores)"), 3);
    /* two ranks bound to the same core: each fits its mask, the host does not */
    affinity_rec c[2] = {rec("vm", 0, 1, 1), rec("vm", 0, 1, 1)};
    assert_int_equal(report(c, 2, "host vm: 2 rank(s) run 2 threads on 1 core(s)"), 1);
    /* same core numbers on two hosts do not clash */
    affinity_rec d[2] = {rec("n0", 0, 1, 1), rec("n1", 0, 1, 1)};
    assert_int_equal(report(d, 2, NULL), 0);
    /* masks listing: non-contiguous cores */
    affinity_rec e[1] = {rec("n0", 0, 2, 2)};
    e[0].mask[0] |= 1ull << 5;
    e[0].mask[1] |= 1ull << 1; /* core 65 */
    assert_int_equal(report(e, 1, "cores 0-1,5,65 (4), 2 thread(s)"), 0);
}

/* ---- run directory helpers ---- */

static void write_file(const char *path, const char *text) { tu_write_file(path, text, strlen(text)); }

static char *read_all(const char *path) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void test_metrics_truncate(void **st) {
    (void)st;
    char path[] = "/tmp/test_iface_metrics_XXXXXX";
    tu_temp_file(path);
    write_file(path, "{\"step\":1,\"loss\":3}\n{\"phase\":\"probe\",\"top1\":50}\n{\"step\":2,\"loss\":2}\n"
                     "{\"step\":3,\"loss\":1}\n{\"step\":4,\"lo");
    long dropped = -1;
    assert_int_equal(run_metrics_truncate(path, 2, &dropped), SC_OK);
    assert_int_equal(dropped, 2); /* step 3 and the torn line */
    char *t = read_all(path);
    assert_string_equal(t, "{\"step\":1,\"loss\":3}\n{\"phase\":\"probe\",\"top1\":50}\n{\"step\":2,\"loss\":2}\n");
    free(t);
    assert_int_equal(run_metrics_truncate(path, 2, &dropped), SC_OK);
    assert_int_equal(dropped, 0);
    unlink(path);
    /* no file yet: nothing to do */
    assert_int_equal(run_metrics_truncate(path, 0, &dropped), SC_OK);
    assert_int_equal(access(path, F_OK), -1);
}

static void test_check_resume_names_key(void **st) {
    (void)st;
    const char *sets_a[] = {"model.base=16", "method.queue=960", "optim.batch=48"};
    const char *sets_b[] = {"model.base=8", "method.queue=960", "optim.batch=48"};
    const char *sets_c[] = {"model.base=16", "method.queue=960", "optim.batch=48", "checkpoint.every_steps=7",
                            "run.log_every=3", "run.threads=2"};
    sc_config a, b, c;
    assert_int_equal(config_load_string("method: {name: mocov2}\n", "a.yaml", sets_a, 3, &a), SC_OK);
    assert_int_equal(config_load_string("method: {name: mocov2}\n", "b.yaml", sets_b, 3, &b), SC_OK);
    assert_int_equal(config_load_string("method: {name: mocov2}\n", "c.yaml", sets_c, 6, &c), SC_OK);
    char dir[] = "/tmp/test_iface_ckpt_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    config_write_yaml(&a, f);
    fclose(f);
    float w[4] = {1, 2, 3, 4};
    ckpt_section secs[2] = {{"config", CKPT_U8, len, text}, {"q.params", CKPT_F32, 4, w}};
    ckpt_header h;
    memset(&h, 0, sizeof h);
    h.config_hash = config_hash(&a);
    h.step = 5;
    config_model_signature(&a, h.signature, sizeof h.signature);
    assert_int_equal(ckpt_save(dir, &h, secs, 2, 2, 0), SC_OK);
    free(text);
    char path[512];
    ckpt_step_path(dir, 5, path, sizeof path);
    assert_int_equal(run_check_resume(&a, path), SC_OK);
    assert_int_equal(run_check_resume(&c, path), SC_OK); /* cadence, logging, threads may change */
    assert_int_equal(run_check_resume(&b, path), SC_ERR_MISMATCH);
    assert_non_null(strstr(sc_last_error(), "model.base"));
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_estimate_small_stem),
        cmocka_unit_test(test_estimate_imagenet_stem),
        cmocka_unit_test(test_estimate_grows_with_batch),
        cmocka_unit_test(test_affinity_report),
        cmocka_unit_test(test_metrics_truncate),
        cmocka_unit_test(test_check_resume_names_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
