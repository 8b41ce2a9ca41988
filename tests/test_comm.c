/* Single-process unit tests of comm/ (without comm_init: the one-rank identity), core/trace, core/signals
 * and the timers: bucket layout from tensor ranges, readiness bookkeeping, trace JSON content. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "comm/buckets.h"
#include "comm/comm.h"
#include "comm/timers.h"
#include "core/signals.h"
#include "core/timer.h"
#include "core/trace.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_collectives_identity(void **st) {
    (void)st;
    assert_int_equal(comm_size(), 1);
    assert_int_equal(comm_rank(), 0);
    double d[2] = {1.5, -2};
    comm_allreduce_sum_f64(d, 2);
    assert_true(d[0] == 1.5 && d[1] == -2);
    float f[3] = {1, 2, 3}, g[3];
    comm_allreduce_sum_f32(f, 3);
    assert_true(f[2] == 3);
    comm_allgather_f32(f, 3, g);
    assert_memory_equal(f, g, sizeof f);
    assert_int_equal(comm_allreduce_max_int(7), 7);
    const sc_reducer *red = comm_bn_reducer();
    assert_non_null(red);
    red->sum_f64(d, 2, red->ctx);
    assert_true(d[0] == 1.5);
    comm_barrier();
}

/* tensors of 100, 200, 300, 400 floats with a gap of 4 after the second; 1600-byte target */
static void test_bucket_layout(void **st) {
    (void)st;
    size_t off[4] = {0, 100, 304, 604}, cnt[4] = {100, 200, 300, 400};
    float *g = calloc(1004, sizeof(float));
    buckets *b = buckets_create(g, 1004, off, cnt, 4, 1600.0 / 1048576.0);
    /* reverse order, cut once a bucket reaches 400 floats: [604,1004); 300+200 (gap included); 100 */
    assert_int_equal(buckets_count(b), 3);
    size_t o, c;
    buckets_info(b, 0, &o, &c, NULL);
    assert_true(o == 604 && c == 400);
    buckets_info(b, 1, &o, &c, NULL);
    assert_true(o == 100 && c == 504);
    buckets_info(b, 2, &o, &c, NULL);
    assert_true(o == 0 && c == 100);
    buckets_free(b);
    /* tensors given out of order, a target of 0 = one bucket */
    size_t off2[3] = {50, 0, 20}, cnt2[3] = {10, 20, 30};
    b = buckets_create(g, 60, off2, cnt2, 3, 0);
    assert_int_equal(buckets_count(b), 1);
    buckets_info(b, 0, &o, &c, NULL);
    assert_true(o == 0 && c == 60);
    buckets_free(b);
    free(g);
}

static void test_bucket_single_rank_step(void **st) {
    (void)st;
    size_t off[3] = {0, 10, 20}, cnt[3] = {10, 10, 10};
    float g[30];
    for (int i = 0; i < 30; i++) g[i] = (float)i * 0.5f;
    buckets *b = buckets_create(g, 30, off, cnt, 3, 1e-9);
    assert_int_equal(buckets_count(b), 3);
    for (int step = 0; step < 3; step++) {
        buckets_begin_step(b);
        buckets_mark_ready(b, 25, 5); /* partial pieces and a multi-tensor range */
        buckets_mark_ready(b, 20, 5);
        buckets_model_hook(b, 0, 20);
        buckets_mark_ready(b, 0, 30); /* repeated: harmless */
        buckets_finish(b);
        const buckets_stats *s = buckets_last_stats(b);
        assert_int_equal(s->nbuckets, 3);
        assert_true(s->bytes == 0 && s->exposed_s == 0 && s->overlap == 1.0);
    }
    for (int i = 0; i < 30; i++) assert_true(g[i] == (float)i * 0.5f); /* mean over one rank = itself */
    buckets_free(b);
}

static void test_trace_json(void **st) {
    (void)st;
    trace_begin("off"); /* tracing off: nothing recorded, no crash */
    trace_end();
    trace_enable(3);
    trace_begin("outer");
    trace_begin("in\"ner");
    trace_end();
    trace_end();
    double t = sc_now();
    trace_event("comm", t, t + 0.001, TRACE_TID_COMM);
    trace_event("dropped", t, t, TRACE_TID_COMM);
    assert_int_equal(trace_count(), 3);
    assert_int_equal(trace_dropped(), 1);
    char dir[] = "/tmp/test_comm_XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(trace_write(dir), SC_OK);
    char path[256], cmd[512];
    snprintf(path, sizeof path, "%s/trace-rank0.json", dir);
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); e=[x for x in t[\"traceEvents\"] if "
             "x[\"ph\"]==\"X\"]; assert [x[\"name\"] for x in e]==[\"in\\\"ner\",\"outer\",\"comm\"], e; "
             "assert abs(e[2][\"dur\"]-1000)<1 and e[2][\"tid\"]==1' %s",
             path);
    assert_int_equal(system(cmd), 0);
    unlink(path);
    rmdir(dir);
    trace_disable();
    assert_int_equal(trace_write("/nonexistent/dir"), SC_ERR_IO);
}

static void test_signals(void **st) {
    (void)st;
    signals_install();
    signals_clear();
    assert_int_equal(signals_pending(), 0);
    raise(SIGUSR2);
    assert_int_equal(signals_pending(), SIGUSR2);
    raise(SIGTERM); /* handled: the process goes on */
    assert_int_equal(signals_pending(), SIGTERM);
    assert_string_equal(signals_name(SIGTERM), "SIGTERM");
    signals_clear();
    assert_int_equal(signals_pending(), 0);
}

static void test_timers(void **st) {
    (void)st;
    int a = comm_timer_id("forward w1.0"), b = comm_timer_id("backward w1.0");
    assert_int_not_equal(a, b);
    assert_int_equal(comm_timer_id("forward w1.0"), a);
    comm_timer_add(a, 0.25);
    comm_timer_add(a, 0.5);
    comm_timer_start(b);
    usleep(2000);
    comm_timer_stop(b);
    assert_true(comm_timer_seconds(a) == 0.75 && comm_timer_calls(a) == 2);
    assert_true(comm_timer_seconds(b) >= 0.0019 && comm_timer_seconds(b) < 0.5);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    comm_timers_report(f);
    fclose(f);
    assert_non_null(strstr(buf, "forward w1.0"));
    assert_non_null(strstr(buf, "0.7500"));
    free(buf);
    comm_timers_reset();
    assert_true(comm_timer_seconds(a) == 0 && comm_timer_calls(a) == 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collectives_identity), cmocka_unit_test(test_bucket_layout),
        cmocka_unit_test(test_bucket_single_rank_step), cmocka_unit_test(test_trace_json),
        cmocka_unit_test(test_signals), cmocka_unit_test(test_timers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
