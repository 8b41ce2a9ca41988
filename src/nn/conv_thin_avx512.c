/* nn/conv_thin's kernels for the avx512 path: compiled with AVX512_FLAGS (Makefile), 16 lanes; run only when
 * core/cpu chose that path */
#define CONVT_VW 16
#define CONVT_IMPL convt_impl_avx512
#include "conv_thin_body.inc"
