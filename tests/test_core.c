/* tests/test_core: core/ against published or hand-checked answers: Philox-4x32-10 against Random123's
 * known-answer vectors (kat_vectors, the three philox4x32 10 lines), the JSON string writer, the error
 * message path and sc_grow's grow-once scratch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "test_util.h"
#include "core/error.h"
#include "core/json.h"
#include "core/rng.h"
#include <string.h>

/* rng_philox(key, ctr_hi, ctr_lo) packs Random123's counter words c0..c3 as ctr_lo = c1:c0, ctr_hi = c3:c2 and
 * its key words as key = k1:k0; the four output words come back in order. */
static void test_philox_known_answers(void **state) {
    (void)state;
    static const uint32_t kat[3][10] = {
        /* counter c0..c3, key k0 k1, expected output */
        {0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
         0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
         0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
         0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        const uint32_t *v = kat[i];
        uint64_t lo = (uint64_t)v[1] << 32 | v[0], hi = (uint64_t)v[3] << 32 | v[2], key = (uint64_t)v[5] << 32 | v[4];
        rng_block b = rng_philox(key, hi, lo);
        for (int j = 0; j < 4; j++) {
            if (b.v[j] != v[6 + j]) fail_msg("vector %d word %d: got %08x, want %08x", i, j, b.v[j], v[6 + j]);
        }
    }
}

/* a stream is a pure function of its seed and position: two copies agree, another seed differs */
static void test_stream_reproducible(void **state) {
    (void)state;
    rng_stream a = rng_stream_make(42, 1, 2, 3), b = rng_stream_make(42, 1, 2, 3), c = rng_stream_make(43, 1, 2, 3);
    int same_c = 0;
    for (int i = 0; i < 100; i++) {
        uint32_t x = rng_u32(&a);
        assert_int_equal(x, rng_u32(&b));
        same_c += x == rng_u32(&c);
    }
    assert_true(same_c < 3);
    for (int i = 0; i < 1000; i++) {
        float u = rng_uniform(&a);
        assert_true(u >= 0.f && u < 1.f);
        assert_true(rng_below(&a, 7) < 7);
    }
}

static void test_json_quote(void **state) {
    (void)state;
    char b[64];
    assert_int_equal(sc_json_quote(b, sizeof b, "plain"), 7);
    assert_string_equal(b, "\"plain\"");
    sc_json_quote(b, sizeof b, "a\"b\\c\nd\te\x01" "f\xc3\xa9");
    assert_string_equal(b, "\"a\\\"b\\\\c\\nd\\te\\u0001f\xc3\xa9\"");
    /* snprintf semantics: the length needed, a truncated and terminated copy */
    size_t need = sc_json_quote(NULL, 0, "0123456789");
    assert_int_equal(need, 12);
    char small[5];
    assert_int_equal(sc_json_quote(small, sizeof small, "0123456789"), 12);
    assert_string_equal(small, "\"012");
}

static void test_errors_and_grow(void **state) {
    (void)state;
    sc_err e = sc_errorf(SC_ERR_CONFIG, "config.yaml: key %s: expected %d", "optim.lr", 3);
    assert_int_equal(e, SC_ERR_CONFIG);
    assert_string_equal(sc_last_error(), "config.yaml: key optim.lr: expected 3");
    void *buf = NULL;
    size_t cap = 0;
    void *p = sc_grow(&buf, &cap, 400);
    assert_non_null(p);
    assert_true(cap >= 400);
    assert_ptr_equal(sc_grow(&buf, &cap, 200), p); /* smaller: the same buffer, no allocation */
    size_t cap0 = cap;
    sc_grow(&buf, &cap, 4000);
    assert_true(cap >= 4000 && cap > cap0);
    sc_free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_known_answers), cmocka_unit_test(test_stream_reproducible),
        cmocka_unit_test(test_json_quote), cmocka_unit_test(test_errors_and_grow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
