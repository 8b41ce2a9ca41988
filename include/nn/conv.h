/* nn/conv: 2-D convolution without bias, CNHW activations (see nn/layout.h), any k, stride, padding. */
#ifndef SC_NN_CONV_H
#define SC_NN_CONV_H
#include <stddef.h>

typedef struct {
    int cin_max, cout_max; /* full-size weight is [cout_max][cin_max*k*k] */
    int k, stride, pad;
} conv_desc;

static inline int conv_out_size(int h, int k, int stride, int pad) { return (h + 2 * pad - k) / stride + 1; }

/* Floats of scratch that conv_forward/conv_backward need for this slice and batch (im2col panels; may be 0
 * for 1x1 stride-1 convolutions). Callers plan it once per model and batch; the step never allocates. */
size_t conv_workspace_floats(const conv_desc *d, int n, int cin, int cout, int h, int w);

/* Bound on the im2col panel in floats (default 4M; at least one image is always used). Changing it changes
 * conv_workspace_floats, so set it before planning (tests use it to force several chunks). 0 = default. */
void conv_set_workspace_budget(size_t floats);

/* Which algorithm the non-thin 3x3 stride-1 pad-1 layers use: auto (Winograd F(2x2,3x3), nn/conv_wino, where
 * conv.c's measured rule holds; the direct path elsewhere), direct, or winograd (F(2x2,3x3)) / wino4 (F(4x4,3x3))
 * wherever the shape allows. The process-wide default is auto (run.conv_algo); SLIMCLR_CONV=auto|direct|winograd|wino4
 * (conv_algo_init) overrides it. */
typedef enum { CONV_ALGO_AUTO, CONV_ALGO_DIRECT, CONV_ALGO_WINOGRAD, CONV_ALGO_WINO4 } conv_algo;
void conv_set_algo(conv_algo a);
/* the config's choice (run.conv_algo): conv_set_algo unless SLIMCLR_CONV chose (conv_algo_init) */
void conv_set_algo_config(conv_algo a);
conv_algo conv_get_algo(void);
/* "auto" | "direct" | "winograd" | "wino4" -> *a, 1; anything else 0 */
int conv_algo_parse(const char *s, conv_algo *a);
/* applies SLIMCLR_CONV when set and non-empty: 0, or -1 with the reason in msg (a value not accepted) */
int conv_algo_init(char *msg, size_t len);
/* whether conv_forward / conv_backward take the Winograd path for this slice (the current algorithm): 0 (no), or
 * its output tile size, 2 (F(2x2,3x3)) or 4 (F(4x4,3x3)) */
int conv_uses_winograd(const conv_desc *d, int cin, int cout, int h, int w);

/* y[cout][n][ho][wo] = conv(W[:cout,:cin], x[cin][n][h][w]). */
void conv_forward(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, const float *x,
                  float *y, float *ws);
/* dW[:cout,:cin] += dL/dW; dx (if non-NULL) = dL/dx (overwritten). */
void conv_backward(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, const float *x,
                   const float *dy, float *dW, float *dx, float *ws);

/* An input prologue: the convolution reads relu(s[c] * (x - mu[c]) + h[c]) (one fmaf, bn_saved_affine's
 * expression) instead of x[c], i.e. a BN + ReLU applied on the fly from saved statistics, so the activation is
 * neither written nor re-read. Only where conv_pre_applies (thin layers, at most CONV_PRE_CMAX input channels). */
#define CONV_PRE_CMAX 32
typedef struct {
    const float *s, *mu, *h; /* [cin] each */
} conv_pre;
int conv_pre_applies(const conv_desc *d, int cin, int cout, int h, int w);
/* conv_forward / conv_backward of the prologue's output (x is the prologue's input; dx, if requested, is the
 * gradient w.r.t. the prologue's output). pre NULL: the plain calls. */
void conv_forward_pre(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, const float *x,
                      const conv_pre *pre, float *y, float *ws);
void conv_backward_pre(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, const float *x,
                       const conv_pre *pre, const float *dy, float *dW, float *dx, float *ws);

/* dx = dL/dx + add instead of dL/dx alone (add may be dx itself: dx +=), for a residual sum without a temporary
 * and an add pass over memory. Only where conv_dx_add_applies: 1x1 stride-1, 1x1 stride >= 2 (the shortcuts,
 * nn/conv_sub), the im2col + col2im path and thin layers. For a 1x1 convolution (one term per element) the result is bitwise dL/dx + add. */
int conv_dx_add_applies(const conv_desc *d, int cin, int cout, int h, int w);
void conv_backward_add(const conv_desc *d, int n, int cin, int cout, int h, int w, const float *W, const float *x,
                       const conv_pre *pre, const float *dy, float *dW, float *dx, const float *add, float *ws);

/* Per-layer profile for the benchmark (off by default: one branch per call when off). Calls are grouped by
 * (full shape, slice, batch); seconds and FLOPs accumulate until conv_prof_reset. Main thread only. */
typedef struct {
    int cin_max, cout_max, k, stride, h, cin, cout, n;
    int wino; /* the calls took nn/conv_wino: its tile size (2 or 4), else 0 (FLOPs are still the direct convolution's) */
    double fwd_s, bwd_s, fwd_flop, bwd_flop;
    long fwd_calls, bwd_calls;
} conv_prof_entry;
void conv_prof_enable(int on);
void conv_prof_reset(void);
int conv_prof_count(void);
const conv_prof_entry *conv_prof_get(int i);
#endif
