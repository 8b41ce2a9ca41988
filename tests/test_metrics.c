/* tests/test_metrics: io/metrics written and read back: numbers, integers, null for NaN, escaped strings, the
 * reader's answer on torn or malformed lines (what the run directory's resume truncation relies on). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "test_util.h"
#include "io/metrics.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_roundtrip(void **state) {
    (void)state;
    char path[] = "/tmp/slimclr-test-metrics-XXXXXX";
    tu_temp_file(path);
    unlink(path);
    metrics *m = NULL;
    assert_int_equal(metrics_open(path, &m), SC_OK);
    assert_int_equal(metrics_write(m, {"step", 10}, {"loss", 8.125}, {"lr", 1.0 / 3.0}, {"bad", NAN}), SC_OK);
    metrics_begin(m);
    metrics_str(m, "phase", "probe \"x\"\n\\");
    metrics_int(m, "knn_step", 12345678901LL);
    metrics_num(m, "top1_w0.25", 77.5);
    assert_int_equal(metrics_end(m), SC_OK);
    metrics_close(m);

    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    metrics_field fl[8];
    assert_non_null(fgets(line, sizeof line, f));
    assert_int_equal(metrics_parse(line, fl, 8), 4);
    assert_string_equal(fl[0].key, "step");
    assert_true(fl[0].is_num && fl[0].num == 10);
    assert_true(fl[1].num == 8.125);
    assert_true(fabs(fl[2].num - 1.0 / 3.0) < 1e-9); /* 9 significant digits: a float comes back exactly */
    assert_true(fl[3].is_num && isnan(fl[3].num));
    double v;
    assert_true(metrics_get(line, "step", &v) && v == 10);
    assert_false(metrics_get(line, "knn_step", &v));
    assert_non_null(fgets(line, sizeof line, f));
    assert_int_equal(metrics_parse(line, fl, 8), 3);
    assert_string_equal(fl[0].key, "phase");
    assert_false(fl[0].is_num);
    assert_true(metrics_get(line, "knn_step", &v) && v == 12345678901.0);
    assert_false(metrics_get(line, "step", &v)); /* "knn_step" is not "step" */
    assert_null(fgets(line, sizeof line, f));
    fclose(f);
    unlink(path);

    /* malformed: a torn line, a missing colon, not an object; at most max fields stored */
    assert_int_equal(metrics_parse("{\"step\":3,\"loss\":1.2", fl, 8), -1);
    assert_int_equal(metrics_parse("{\"step\" 3}", fl, 8), -1);
    assert_int_equal(metrics_parse("[1,2]", fl, 8), -1);
    assert_false(metrics_get("{\"step\":3,\"lo", "step", &v));
    assert_int_equal(metrics_parse("{\"a\":1,\"b\":true,\"c\":null,\"d\":-2.5e-3}", fl, 2), 2);
    assert_int_equal(metrics_parse(" { } ", fl, 2), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_roundtrip)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
