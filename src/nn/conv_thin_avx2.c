/* nn/conv_thin's kernels for the avx2 path: the baseline build (x86-64-v3), 8 lanes */
#define CONVT_VW 8
#define CONVT_IMPL convt_impl_avx2
#include "conv_thin_body.inc"
