/* core/cpu: what the CPU can run, and which vector ISA the program uses. Detected once with cpuid + xgetbv
 * (a feature counts only when the OS saves its registers); SLIMCLR_ISA=avx2|avx512 forces a path.
 * This file and its .c are compiled for baseline x86-64 (no AVX): main checks the CPU before any AVX2 code runs. */
#ifndef SC_CORE_CPU_H
#define SC_CORE_CPU_H
#include "core/error.h"
#include <stdbool.h>
#include <stddef.h>

typedef enum { SC_ISA_NONE = 0, SC_ISA_AVX2 = 1, SC_ISA_AVX512 = 2 } sc_isa;

typedef struct {
    bool avx2, fma, avx512f, avx512bw, avx512dq, avx512vl, avx512bf16;
    char brand[49]; /* cpuid brand string, trimmed */
} sc_cpu_features;

const sc_cpu_features *sc_cpu(void); /* detected on the first call */
sc_isa sc_isa_detected(void);        /* the widest path the CPU runs: AVX-512 needs F, BW, DQ, VL; AVX2 needs FMA */
/* Selects the ISA: SLIMCLR_ISA (avx2 | avx512; unset or empty = the detected one). SC_ERR_ARG, with the reason in
 * sc_isa_error() (not sc_errorf: that code may use AVX2), for an unknown value (lists the accepted ones), a forced
 * ISA the CPU lacks (names the missing feature), a CPU without AVX2+FMA. Idempotent; the first call decides. */
sc_err sc_isa_init(void);
/* the choice itself, for tests: features f, the SLIMCLR_ISA value env (NULL: unset); msg gets the reason */
sc_err sc_isa_choose(const sc_cpu_features *f, const char *env, sc_isa *isa, char *msg, size_t len);
sc_isa sc_isa_of(const sc_cpu_features *f);
const char *sc_isa_error(void);
sc_isa sc_isa_active(void);      /* the selected ISA; sc_fatal with sc_isa_init's message if that failed */
const char *sc_isa_name(sc_isa isa); /* "avx2", "avx512", "none" */
const char *sc_cpu_summary(void);    /* e.g. "Intel(R) Xeon(R) Processor: AVX2 FMA AVX512F/BW/DQ/VL AVX512-BF16" */
/* For tests: run the ISA path isa (must be <= detected) until the next call. Returns the previous one. */
sc_isa sc_isa_force(sc_isa isa);
#endif
