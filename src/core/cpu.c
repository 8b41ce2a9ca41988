/* core/cpu: cpuid/xgetbv feature detection and the SLIMCLR_ISA switch. Compiled without AVX (Makefile
 * BASE_FLAGS) so that it runs, and says why it cannot go on, on any x86-64 CPU. */
#include "core/cpu.h"
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sc_cpu_features g_cpu;
static int g_cpu_done;
static sc_isa g_isa = SC_ISA_NONE;
static int g_isa_state; /* 0 not chosen, 1 ok, -1 failed */
static char g_isa_msg[256];

static uint64_t sc_xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

const sc_cpu_features *sc_cpu(void) {
    if (g_cpu_done) return &g_cpu;
    sc_cpu_features f = {0};
    unsigned a, b, c, d, max = __get_cpuid_max(0, NULL);
    if (max >= 1 && __get_cpuid(1, &a, &b, &c, &d)) {
        const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12);
        const uint64_t xcr0 = osxsave ? sc_xgetbv0() : 0;
        const bool ymm = (xcr0 & 0x6) == 0x6, zmm = ymm && (xcr0 & 0xe0) == 0xe0; /* SSE+AVX; opmask+ZMM */
        if (max >= 7 && avx && ymm) {
            __cpuid_count(7, 0, a, b, c, d);
            f.avx2 = b & (1u << 5);
            f.fma = fma;
            if (zmm) {
                f.avx512f = b & (1u << 16);
                f.avx512dq = b & (1u << 17);
                f.avx512bw = b & (1u << 30);
                f.avx512vl = b & (1u << 31);
                unsigned a1, b1, c1, d1;
                __cpuid_count(7, 1, a1, b1, c1, d1);
                (void)b1; (void)c1; (void)d1;
                f.avx512bf16 = f.avx512f && (a1 & (1u << 5));
            }
        }
    }
    if (__get_cpuid_max(0x80000000, NULL) >= 0x80000004) {
        unsigned r[12];
        for (unsigned i = 0; i < 3; i++) __get_cpuid(0x80000002 + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
        memcpy(f.brand, r, 48);
        f.brand[48] = 0;
        char *s = f.brand;
        while (*s == ' ') s++;
        memmove(f.brand, s, strlen(s) + 1);
        for (size_t n = strlen(f.brand); n > 0 && f.brand[n - 1] == ' '; n--) f.brand[n - 1] = 0;
    }
    if (!f.brand[0]) snprintf(f.brand, sizeof f.brand, "unknown x86-64 CPU");
    g_cpu = f;
    g_cpu_done = 1;
    return &g_cpu;
}

sc_isa sc_isa_of(const sc_cpu_features *f) {
    if (!f->avx2 || !f->fma) return SC_ISA_NONE;
    if (f->avx512f && f->avx512bw && f->avx512dq && f->avx512vl) return SC_ISA_AVX512;
    return SC_ISA_AVX2;
}

sc_isa sc_isa_detected(void) { return sc_isa_of(sc_cpu()); }

const char *sc_isa_name(sc_isa isa) { return isa == SC_ISA_AVX512 ? "avx512" : isa == SC_ISA_AVX2 ? "avx2" : "none"; }

/* the first feature of the AVX-512 set this path needs that the CPU lacks */
static const char *sc_avx512_missing(const sc_cpu_features *f) {
    if (!f->avx2 || !f->fma) return !f->avx2 ? "AVX2" : "FMA";
    return !f->avx512f ? "AVX512F" : !f->avx512bw ? "AVX512BW" : !f->avx512dq ? "AVX512DQ" : !f->avx512vl ? "AVX512VL" : NULL;
}

sc_err sc_isa_choose(const sc_cpu_features *f, const char *env, sc_isa *isa, char *msg, size_t len) {
    const sc_isa det = sc_isa_of(f);
    sc_isa want = det;
    if (env && *env) {
        if (!strcmp(env, "avx2")) want = SC_ISA_AVX2;
        else if (!strcmp(env, "avx512")) want = SC_ISA_AVX512;
        else {
            snprintf(msg, len, "SLIMCLR_ISA='%.40s' is not a vector ISA: expected avx2 or avx512 (or unset: the "
                     "widest the CPU has)", env);
            return SC_ERR_ARG;
        }
    }
    if (det == SC_ISA_NONE) {
        snprintf(msg, len, "this CPU (%s) lacks %s: slimclr's default build needs x86-64-v3 (AVX2 + FMA); build "
                 "with `make ARCH=<your CPU>` for an older one", f->brand, !f->avx2 ? "AVX2" : "FMA");
        return SC_ERR_ARG;
    }
    if (want == SC_ISA_AVX512 && det < SC_ISA_AVX512) {
        snprintf(msg, len, "SLIMCLR_ISA=avx512, but this CPU (%s) lacks %s", f->brand, sc_avx512_missing(f));
        return SC_ERR_ARG;
    }
    *isa = want;
    return SC_OK;
}

sc_err sc_isa_init(void) {
    if (g_isa_state) return g_isa_state > 0 ? SC_OK : SC_ERR_ARG;
    sc_err e = sc_isa_choose(sc_cpu(), getenv("SLIMCLR_ISA"), &g_isa, g_isa_msg, sizeof g_isa_msg);
    g_isa_state = e == SC_OK ? 1 : -1;
    return e;
}

const char *sc_isa_error(void) { return g_isa_msg; }

sc_isa sc_isa_active(void) {
    if (g_isa_state == 0) sc_isa_init();
    if (g_isa_state < 0) sc_fatal("%s", g_isa_msg);
    return g_isa;
}

sc_isa sc_isa_force(sc_isa isa) {
    sc_isa prev = sc_isa_active();
    SC_CHECK(isa != SC_ISA_NONE && isa <= sc_isa_detected(), "sc_isa_force: %s is not available on this CPU",
             sc_isa_name(isa));
    g_isa = isa;
    return prev;
}

const char *sc_cpu_summary(void) {
    static char buf[160];
    const sc_cpu_features *f = sc_cpu();
    snprintf(buf, sizeof buf, "%s:%s%s%s%s", f->brand, f->avx2 ? " AVX2" : "", f->fma ? " FMA" : "",
             f->avx512f ? (sc_avx512_missing(f) ? " AVX512F (partial)" : " AVX512F/BW/DQ/VL") : "",
             f->avx512bf16 ? " AVX512-BF16" : "");
    return buf;
}
