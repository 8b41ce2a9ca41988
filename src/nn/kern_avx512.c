/* nn/kern for the avx512 path: compiled with AVX512_FLAGS (Makefile: F/BW/DQ/VL, 512-bit vectors preferred);
 * runs only when core/cpu chose that path */
#define KERN_TABLE nn_kern_avx512
#define KERN_NAME "avx512"
#define KERN_VW 16
#include "kern_body.inc"
