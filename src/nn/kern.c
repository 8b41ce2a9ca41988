/* nn/kern: the table of the active vector-ISA path (see nn/kern.h) */
#include "nn/kern.h"
#include "core/cpu.h"

/* read per call, not cached: tests switch paths with sc_isa_force, and the check is one load and compare */
const nn_kern *nn_kern_active(void) { return sc_isa_active() == SC_ISA_AVX512 ? &nn_kern_avx512 : &nn_kern_avx2; }
