/* nn/kern for the avx2 path: the baseline build (x86-64-v3), 256-bit vectors */
#define KERN_TABLE nn_kern_avx2
#define KERN_NAME "avx2"
#define KERN_VW 8
#include "kern_body.inc"
