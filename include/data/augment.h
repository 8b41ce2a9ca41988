/* data/augment: the SSL view recipes of docs/method.md §6 on one image, uint8 CHW -> normalised float CHW.
 * Operations follow torchvision's tensor transforms on [0,1] floats (each op clamps to [0,1]):
 * RandomResizedCrop (10 attempts + centre fallback, bilinear, align_corners=False) with the horizontal flip
 * folded into the resampling, ColorJitter (brightness, contrast, saturation, hue in a random order,
 * applied with probability jitter_p; saturation/hue skipped for one channel), RandomGrayscale
 * (0.2989, 0.587, 0.114), Gaussian blur (sigma ~ U[0.1, 2], reflect padding), Solarize (x >= 128/255 ->
 * 1 - x), Normalize. All draws come from one rng_stream that the caller derives from
 * (seed, epoch, sample index, view), so an image's views do not depend on ranks or threads. */
#ifndef SC_DATA_AUGMENT_H
#define SC_DATA_AUGMENT_H
#include "core/error.h"
#include "core/rng.h"
#include <stdint.h>

typedef struct aug_cfg {
    int out_h, out_w;
    int rrc;                           /* 1: random resized crop; 0: eval resize + centre crop */
    float scale_min, scale_max;        /* RRC area fraction */
    float ratio_min, ratio_max;        /* RRC aspect ratio (3/4, 4/3) */
    float eval_crop;                   /* rrc=0: shorter side resized to out/eval_crop, then the centre
                                          out x out (0.875 = Resize(256)+CenterCrop(224); 1 = whole image) */
    float flip_p;
    float jitter_p, brightness, contrast, saturation, hue;
    float gray_p;
    float blur_p;
    int blur_kernel;                   /* odd; 0 = ~10% of the output size, made odd (>= 3) */
    float blur_sigma_min, blur_sigma_max;
    float solarize_p;
    float mean[3], std[3];
} aug_cfg;

/* Recipes: "fmnist", "mocov2", "mocov3" (view 0 / 1 differ), "simclr", "none" (eval). `channels` picks
 * the normalisation (1: Fashion-MNIST 0.2860/0.3530, 3: ImageNet) and disables colour ops for 1. */
sc_err aug_preset(const char *name, int view, int channels, int out_h, int out_w, aug_cfg *cfg);
sc_err aug_check(const aug_cfg *cfg, int c, int in_h, int in_w); /* sizes, probabilities, kernel */

/* Floats of scratch aug_apply needs for an image of c channels (plan once per worker). */
size_t aug_scratch_floats(const aug_cfg *cfg, int c);

/* One view: src uint8 [c][in_h][in_w] -> dst float, channel k at dst + k*dst_cstride (out_h*out_w
 * contiguous), so a worker writes straight into a CNHW batch (dst_cstride = b*out_h*out_w). */
void aug_apply(const aug_cfg *cfg, rng_stream *rng, const uint8_t *src, int c, int in_h, int in_w,
               float *dst, int64_t dst_cstride, float *scratch);

/* The single operations, exposed for tests (img: float [c][hw] in [0,1], channel stride cs). */
void aug_rrc_params(rng_stream *rng, int h, int w, float smin, float smax, float rmin, float rmax,
                    int *i, int *j, int *ch, int *cw);
/* Bilinear (align_corners=False) resampling of the source region [y0, y0+rh) x [x0, x0+rw) to out_h x out_w,
 * samples clamped to the region (and the image), mirrored when flip; values scaled to [0,1]. */
void aug_resample(const uint8_t *src, int c, int h, int w, float y0, float x0, float rh, float rw, int flip,
                  float *dst, int64_t cs, int out_h, int out_w);
void aug_brightness(float *img, int c, int64_t cs, int hw, float f);
void aug_contrast(float *img, int c, int64_t cs, int hw, float f);
void aug_saturation(float *img, int64_t cs, int hw, float f); /* 3 channels */
void aug_hue(float *img, int64_t cs, int hw, float f);        /* 3 channels, f in [-0.5, 0.5] */
void aug_grayscale(float *img, int64_t cs, int hw);           /* 3 channels -> 3 equal channels */
void aug_blur(float *img, int c, int64_t cs, int h, int w, int k, float sigma, float *scratch);
void aug_solarize(float *img, int c, int64_t cs, int hw);
void aug_normalize(float *img, int c, int64_t cs, int hw, const float *mean, const float *std);
#endif
