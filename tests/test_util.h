/* tests/test_util.h: the helpers every cmocka test shares (include after <cmocka.h>): random fills from the
 * project's Philox streams, one closeness check against a double reference, a file writer and a temp file. */
#ifndef SC_TESTS_TEST_UTIL_H
#define SC_TESTS_TEST_UTIL_H
#include "core/rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* x[i] uniform in [lo, hi) */
static inline void tu_fill_uniform(rng_stream *s, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = rng_uniform_range(s, lo, hi);
}

/* x[i] = scale * N(0, 1) */
static inline void tu_fill_normal(rng_stream *s, float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * rng_normal(s);
}

/* |got - ref| <= rtol * scale_i + atol for every i (scale NULL: |ref_i|); NaN fails; prints the first failure */
static inline void tu_check_close(const char *what, size_t n, const float *got, const double *ref,
                                  const double *scale, double rtol, double atol) {
    for (size_t i = 0; i < n; i++) {
        double tol = rtol * (scale ? scale[i] : fabs(ref[i])) + atol;
        if (!(fabs((double)got[i] - ref[i]) <= tol)) {
            print_error("%s[%zu]: got %.9g ref %.9g tol %.3g\n", what, i, (double)got[i], ref[i], tol);
            fail();
        }
    }
}

/* the whole of buf into path (created or truncated) */
static inline void tu_write_file(const char *path, const void *buf, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
}

/* creates an empty file named from the template (its XXXXXX replaced in place); the test fails if it cannot */
static inline void tu_temp_file(char *path_template) {
    int fd = mkstemp(path_template);
    assert_true(fd >= 0);
    close(fd);
}
#endif
