/* nn/conv_thin: thin 3x3 layers, stride 1 or 2, with positions in the vector lanes (see the header).
 * Each thread takes whole images (in chunks, as it asks). It copies one image of x into zero-padded phase planes:
 * stride 1 has one phase, the padded image ((h+2) rows of w+1: one zero column between rows); stride 2 has four,
 * P(a,b)[i][j] = x[2i+a-1][2j+b-1], each (ho+1) x (wo+1). An output position q = oh*wq + ow in padded-row order
 * (wq = the planes' row stride) reads tap (kh, kw) at q + off[tap] (off = the tap's phase plane, row and column
 * shift): one unaligned load, no row ends inside the loops, no masks. The wq - wo columns past each output row
 * are computed and dropped.
 * - forward: 4 output channels (avx2; 8 on avx512) x 3 vectors of positions = 12 (24) accumulators, per tap 3 x
 *   loads and 4 (8) weight broadcasts (weights packed per channel block) for 12 (24) FMAs; avx2 into thread-local
 *   rows, each row's wo outputs then copied; avx512 straight into y (a compress drops the dropped column's lanes);
 * - dx: the same kernel over dY's padded planes, with the flipped transposed weights (stride 1 on avx512 straight
 *   into dx); stride 2 one phase plane of dx at a time (its 1, 2 or 4 taps), the phases interleaved at the end;
 * - dW: 4 (8) output channels x the 3 taps of one kernel row = 12 (24) accumulators, per vector of positions 4
 *   (8) dY loads (dY copied into padded-row order, zero in the dropped columns, rows cache-line aligned) and 3 x
 *   loads; lanes summed at the end.
 * While an image computes, the next image's input rows are prefetched into L2 and this image's output rows with
 * write intent. The kernels are conv_thin_body.inc, compiled per vector ISA (8 lanes: conv_thin_avx2.c; 16:
 * conv_thin_avx512.c) and chosen from core/cpu's active path; which layers apply depends on the CPU (17-32
 * channels at stride 1 with AVX-512), never on the forced path. */
#include "conv_thin_internal.h"
#include "blas/blas.h"
#include "core/cpu.h"
#include "core/error.h"

/* Padded-row order with 12 accumulators beat the first version's per-row loops (9 dW accumulators, 4 x 16
 * forward tiles, masked row tails) on every layer but the 1-channel stem's dW (16 dY planes copied for 3 kernel
 * rows of work), a minor layer; both beat conv_fused on these layers (docs/performance.md, sixth and seventh
 * passes). Stride-1 rows shorter than 8 stay on conv_fused (7x7: not faster there). */

int convt_applies(const conv_desc *d, int cin, int cout, int h, int w) {
#if defined(__AVX2__)
    if (d->k != 3 || d->pad != 1 || (d->stride != 1 && d->stride != 2) || cin < 1 || cin > CONVT_CIN_MAX ||
        cout < 1 || blas_threads() > CONVT_TMAX || h < 2 || w < 2)
        return 0;
    convt_geom g;
    convt_geom_make(d->stride, h, w, &g);
    /* stride 1: at most 16 -> 16 channels; 32 -> 32 on an AVX-512 CPU, where the 8-channel register blocks beat
     * conv_fused there (docs/performance-isa.md; on AVX2 the two are even); rows of 7: conv_fused. The CPU's
     * widest path, not the forced one, so that a forced path computes the same layers. */
    if (d->stride == 1) {
        const int cmax = sc_isa_detected() >= SC_ISA_AVX512 ? 32 : 16;
        return cin <= cmax && cout <= cmax && w >= 8 && g.pph <= CONVT_PADMAX;
    }
    if (cin > 16)
        return 0;
    /* the output rows and dx's 4 phase planes fit a channel's rows (CONVT_PADMAX + one register block) */
    return cout <= CONVT_COUT_MAX && (size_t)cin * g.cs <= CONVT_XMAX && g.nq <= CONVT_PADMAX &&
           4 * convt_dx_phase_floats(&g) <= CONVT_PADMAX && (size_t)(cout + 3) / 4 * 4 * convt_dx_cs(&g) <= CONVT_XMAX;
#else
    (void)d; (void)cin; (void)cout; (void)h; (void)w;
    return 0;
#endif
}

static const convt_impl *convt_active(void) {
    return sc_isa_active() == SC_ISA_AVX512 ? &convt_impl_avx512 : &convt_impl_avx2;
}

void convt_forward(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, int ldw,
                   const float *x, const conv_pre *pre, float *y) {
    SC_CHECK(convt_applies(d, cin, cout, h, w), "conv_thin: %d -> %d channels of %dx%d, stride %d: not a thin layer",
             cin, cout, h, w, d->stride);
    convt_active()->forward(d, n, cin, cout, h, w, W, ldw, x, pre, y);
}

void convt_backward(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, int ldw,
                    const float *x, const conv_pre *pre, const float *dy, float *dW, float *dx, const float *add) {
    SC_CHECK(convt_applies(d, cin, cout, h, w), "conv_thin: %d -> %d channels of %dx%d, stride %d: not a thin layer",
             cin, cout, h, w, d->stride);
    convt_active()->backward(d, n, cin, cout, h, w, W, ldw, x, pre, dy, dW, dx, add);
}
