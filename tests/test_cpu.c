/* core/cpu: the ISA choice from features and SLIMCLR_ISA (synthetic CPUs: every refusal is reachable on any
 * machine), the detected features' consistency, and the forced switch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>
#include "core/cpu.h"

static const sc_cpu_features cpu_avx512 = {true, true, true, true, true, true, false, "test AVX-512 CPU"};
static const sc_cpu_features cpu_avx2 = {true, true, false, false, false, false, false, "test AVX2 CPU"};
static const sc_cpu_features cpu_old = {false, false, false, false, false, false, false, "test SSE CPU"};

static void test_choose(void **state) {
    (void)state;
    char msg[256];
    sc_isa isa = SC_ISA_NONE;
    assert_int_equal(sc_isa_choose(&cpu_avx512, NULL, &isa, msg, sizeof msg), SC_OK);
    assert_int_equal(isa, SC_ISA_AVX512);
    assert_int_equal(sc_isa_choose(&cpu_avx512, "", &isa, msg, sizeof msg), SC_OK);
    assert_int_equal(isa, SC_ISA_AVX512);
    assert_int_equal(sc_isa_choose(&cpu_avx512, "avx2", &isa, msg, sizeof msg), SC_OK);
    assert_int_equal(isa, SC_ISA_AVX2);
    assert_int_equal(sc_isa_choose(&cpu_avx2, NULL, &isa, msg, sizeof msg), SC_OK);
    assert_int_equal(isa, SC_ISA_AVX2);
    /* forcing what the CPU lacks names the feature */
    assert_int_equal(sc_isa_choose(&cpu_avx2, "avx512", &isa, msg, sizeof msg), SC_ERR_ARG);
    assert_non_null(strstr(msg, "lacks AVX512F"));
    sc_cpu_features no_bw = cpu_avx512;
    no_bw.avx512bw = false;
    assert_int_equal(sc_isa_of(&no_bw), SC_ISA_AVX2);
    assert_int_equal(sc_isa_choose(&no_bw, "avx512", &isa, msg, sizeof msg), SC_ERR_ARG);
    assert_non_null(strstr(msg, "lacks AVX512BW"));
    /* an unknown value lists the accepted ones */
    assert_int_equal(sc_isa_choose(&cpu_avx512, "AVX512", &isa, msg, sizeof msg), SC_ERR_ARG);
    assert_non_null(strstr(msg, "expected avx2 or avx512"));
    assert_int_equal(sc_isa_choose(&cpu_avx512, "sse", &isa, msg, sizeof msg), SC_ERR_ARG);
    /* no AVX2: a message, whatever was asked */
    assert_int_equal(sc_isa_choose(&cpu_old, NULL, &isa, msg, sizeof msg), SC_ERR_ARG);
    assert_non_null(strstr(msg, "lacks AVX2"));
    sc_cpu_features no_fma = cpu_avx2;
    no_fma.fma = false;
    assert_int_equal(sc_isa_choose(&no_fma, "avx2", &isa, msg, sizeof msg), SC_ERR_ARG);
    assert_non_null(strstr(msg, "lacks FMA"));
}

/* this machine: AVX-512 implies AVX2 + FMA; the active path is at most the detected one and can be switched */
static void test_this_cpu(void **state) {
    (void)state;
    const sc_cpu_features *f = sc_cpu();
    if (f->avx512f) assert_true(f->avx2 && f->fma);
    if (f->avx512bf16) assert_true(f->avx512f);
    assert_true(f->brand[0] != 0);
    const sc_isa det = sc_isa_detected();
    assert_true(det >= SC_ISA_AVX2); /* the test binaries themselves are built for x86-64-v3 */
    assert_true(sc_isa_active() <= det);
    sc_isa prev = sc_isa_force(SC_ISA_AVX2);
    assert_int_equal(sc_isa_active(), SC_ISA_AVX2);
    sc_isa_force(prev);
    assert_int_equal(sc_isa_active(), prev);
    print_message("CPU: %s; detected %s, active %s\n", sc_cpu_summary(), sc_isa_name(det), sc_isa_name(sc_isa_active()));
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_choose), cmocka_unit_test(test_this_cpu)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
