/* nn/kern: the hand-vectorised element and row kernels (batch norm's rows, the element-wise passes, the loss's
 * softmax rows), one table per vector ISA. src/nn/kern_body.inc is compiled twice: kern_avx2.c for the baseline
 * (x86-64-v3, 256-bit vectors) and kern_avx512.c with AVX-512 F/BW/DQ/VL at 512 bits (Makefile AVX512_FLAGS);
 * nn_kern() picks the table of core/cpu's active path (SLIMCLR_ISA, docs/performance-isa.md). The two tables
 * compute the same expressions per element; only the order of the in-row sums (lanes) differs. */
#ifndef SC_NN_KERN_H
#define SC_NN_KERN_H
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *name; /* "avx2", "avx512" */
    int lanes;        /* floats per vector */
    /* batch norm (nn/bn): sum x and sum x^2 of a row, float blocks of 16 terms per lane of x - x[0] added in
     * double, the pivot moved back in double (the variance keeps its digits when the mean is far from 0) */
    void (*bn_row_sums)(const float *x, int m, double *s1, double *s2);
    /* sum g and sum g (x - mean), the same way (mean: a float's value); g = dy, with relu masked where
     * bn_saved_affine(x, s, mu, h) <= 0 */
    void (*bn_row_bwd_sums)(const float *x, const float *dy, int m, double mean, bool relu, float s, float mu,
                            float h, double *s1, double *s2);
    /* the same sums with g = dy masked where a ReLU's output y <= 0, the masked g written back over dy (in
     * the same pass: bitwise relu_backward(y, dy, dy) then the unmasked sums) */
    void (*bn_row_bwd_sums_ymask)(const float *x, const float *y, float *dy, int m, double mean, double *s1,
                                  double *s2);
    /* y = x scale + shift (+ res), then ReLU when relu: the float expressions of a separate add and relu pass */
    void (*bn_affine_row)(const float *x, float *y, int m, float scale, float shift, bool relu, const float *res);
    /* dx = a g + p (x - mu) + q, g = dy (relu: masked by bn_saved_affine(x, ms, mu, mh) > 0) */
    void (*bn_bwd_row)(const float *x, const float *dy, float *dx, int m, float a, float p, float q, float mu,
                       bool relu, float ms, float mh);
    /* element-wise passes (nn/ops), nt threads */
    void (*relu_forward)(size_t len, const float *x, float *y, int nt);
    void (*relu_backward)(size_t len, const float *y, const float *dy, float *dx, int nt);
    void (*add_inplace)(size_t len, float *restrict y, const float *restrict x, int nt);
    /* softmax rows of the loss (ssl/objective): max; log sum_j exp(s x_j) shifted by mx (s > 0);
     * sum_j exp(t_j inv_tau - lse_t) z_j in double; the row gradient
     * dr = gc softmax(a z) + gk (softmax(z/tau) - softmax(t/tau)) from the log-sum-exps (gk = 0: t unused) */
    float (*row_max)(const float *x, int c);
    double (*row_lse)(const float *x, int c, float mx, float s);
    double (*row_ptz)(const float *z, const float *t, int c, float inv_tau, float lse_t);
    void (*row_grad)(const float *restrict zr, const float *restrict tr, float *restrict dr, int c, float a,
                     float lse_c, float gc, float inv_tau, float lse_s, float lse_t, float gk);
} nn_kern;

extern const nn_kern nn_kern_avx2, nn_kern_avx512;
const nn_kern *nn_kern_active(void); /* the table of core/cpu's active ISA path (sc_isa_active) */
#endif
