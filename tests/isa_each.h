/* Runs a cmocka group once per vector-ISA path the CPU has (core/cpu: sc_isa_force), saying which it skipped;
 * SLIMCLR_ISA narrows it to that one. Returns the failures of all runs. */
#ifndef SC_TESTS_ISA_EACH_H
#define SC_TESTS_ISA_EACH_H
#include "core/cpu.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define isa_each_run_group(tests) isa_each_run(#tests, tests, sizeof(tests) / sizeof((tests)[0]))

static inline int isa_each_run(const char *name, const struct CMUnitTest *tests, size_t n) {
    const char *env = getenv("SLIMCLR_ISA");
    const sc_isa det = sc_isa_detected();
    int fails = 0;
    for (int isa = SC_ISA_AVX2; isa <= SC_ISA_AVX512; isa++) {
        if (isa > (int)det) {
            printf("[ SKIPPED  ] ISA path %s: this CPU (%s) lacks it\n", sc_isa_name(isa), sc_cpu_summary());
            continue;
        }
        if (env && *env && strcmp(env, sc_isa_name(isa))) {
            printf("[ SKIPPED  ] ISA path %s: SLIMCLR_ISA=%s\n", sc_isa_name(isa), env);
            continue;
        }
        sc_isa_force(isa);
        printf("[ ISA PATH ] %s\n", sc_isa_name(isa));
        fails += _cmocka_run_group_tests(name, tests, n, NULL, NULL);
    }
    return fails;
}
#endif
