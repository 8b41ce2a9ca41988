/* data/augment: docs/method.md §6 view recipes. Float ops on [0,1] follow torchvision's tensor transforms. */
#include "data/augment.h"
#include <math.h>
#include <string.h>

#define AUG_MAX_SIDE 4096
#define AUG_MAX_KERNEL 255

static void set_common(aug_cfg *c, int channels, int oh, int ow) {
    memset(c, 0, sizeof *c);
    c->out_h = oh;
    c->out_w = ow;
    c->rrc = 1;
    c->scale_min = 0.2f;
    c->scale_max = 1.0f;
    c->ratio_min = 3.0f / 4.0f;
    c->ratio_max = 4.0f / 3.0f;
    c->eval_crop = (oh <= 64 && ow <= 64) ? 1.0f : 0.875f;
    c->flip_p = 0.5f;
    c->blur_sigma_min = 0.1f;
    c->blur_sigma_max = 2.0f;
    if (channels == 1) {
        c->mean[0] = 0.2860f; /* Fashion-MNIST training set (docs/conventions.md) */
        c->std[0] = 0.3530f;
    } else {
        const float m[3] = {0.485f, 0.456f, 0.406f}, s[3] = {0.229f, 0.224f, 0.225f};
        memcpy(c->mean, m, sizeof m);
        memcpy(c->std, s, sizeof s);
    }
}

static void set_jitter(aug_cfg *c, float p, float b, float ct, float s, float h) {
    c->jitter_p = p;
    c->brightness = b;
    c->contrast = ct;
    c->saturation = s;
    c->hue = h;
}

sc_err aug_preset(const char *name, int view, int channels, int out_h, int out_w, aug_cfg *cfg) {
    if (channels != 1 && channels != 3)
        return sc_errorf(SC_ERR_CONFIG, "augmentation '%s': %d channels, expected 1 or 3", name, channels);
    if (view != 0 && view != 1) return sc_errorf(SC_ERR_ARG, "augmentation view %d: expected 0 or 1", view);
    set_common(cfg, channels, out_h, out_w);
    if (!strcmp(name, "fmnist")) {
        set_jitter(cfg, 0.8f, 0.4f, 0.4f, 0, 0);
    } else if (!strcmp(name, "mocov2")) {
        set_jitter(cfg, 0.8f, 0.4f, 0.4f, 0.4f, 0.1f);
        cfg->gray_p = 0.2f;
        cfg->blur_p = 0.5f;
    } else if (!strcmp(name, "mocov3")) {
        set_jitter(cfg, 0.8f, 0.4f, 0.4f, 0.2f, 0.1f);
        cfg->gray_p = 0.2f;
        cfg->blur_p = view == 0 ? 1.0f : 0.1f; /* asymmetric views (BYOL recipe) */
        cfg->solarize_p = view == 0 ? 0.0f : 0.2f;
    } else if (!strcmp(name, "simclr")) {
        cfg->scale_min = 0.08f;
        set_jitter(cfg, 0.8f, 0.8f, 0.8f, 0.8f, 0.2f);
        cfg->gray_p = 0.2f;
        cfg->blur_p = 0.5f;
    } else if (!strcmp(name, "none")) {
        cfg->rrc = 0;
        cfg->flip_p = 0;
    } else {
        return sc_errorf(SC_ERR_CONFIG, "augmentation '%s': expected fmnist, mocov2, mocov3, simclr or none", name);
    }
    if (channels == 1) { /* no colour to jitter */
        cfg->saturation = cfg->hue = 0;
        cfg->gray_p = 0;
    }
    return SC_OK;
}

static int blur_kernel(const aug_cfg *cfg) {
    if (cfg->blur_kernel > 0) return cfg->blur_kernel;
    int s = cfg->out_h < cfg->out_w ? cfg->out_h : cfg->out_w;
    int k = (int)(0.1f * (float)s);
    if (k % 2 == 0) k++;
    return k < 3 ? 3 : k;
}

sc_err aug_check(const aug_cfg *cfg, int c, int in_h, int in_w) {
    if (cfg->out_h <= 0 || cfg->out_w <= 0 || cfg->out_h > AUG_MAX_SIDE || cfg->out_w > AUG_MAX_SIDE)
        return sc_errorf(SC_ERR_CONFIG, "augmentation output %dx%d: expected sides in [1, %d]", cfg->out_h,
                         cfg->out_w, AUG_MAX_SIDE);
    if (in_h <= 0 || in_w <= 0) return sc_errorf(SC_ERR_ARG, "augmentation input %dx%d is empty", in_h, in_w);
    if (cfg->rrc && !(cfg->scale_min > 0 && cfg->scale_min <= cfg->scale_max && cfg->scale_max <= 1.0f))
        return sc_errorf(SC_ERR_CONFIG, "crop scale (%g, %g): expected 0 < min <= max <= 1", cfg->scale_min,
                         cfg->scale_max);
    if (cfg->rrc && !(cfg->ratio_min > 0 && cfg->ratio_min <= cfg->ratio_max))
        return sc_errorf(SC_ERR_CONFIG, "crop ratio (%g, %g): expected 0 < min <= max", cfg->ratio_min,
                         cfg->ratio_max);
    if (!cfg->rrc && !(cfg->eval_crop > 0 && cfg->eval_crop <= 1))
        return sc_errorf(SC_ERR_CONFIG, "eval crop fraction %g: expected (0, 1]", cfg->eval_crop);
    const float ps[5] = {cfg->flip_p, cfg->jitter_p, cfg->gray_p, cfg->blur_p, cfg->solarize_p};
    for (int k = 0; k < 5; k++)
        if (!(ps[k] >= 0 && ps[k] <= 1)) return sc_errorf(SC_ERR_CONFIG, "augmentation probability %g: expected [0, 1]", ps[k]);
    if (cfg->hue < 0 || cfg->hue > 0.5f) return sc_errorf(SC_ERR_CONFIG, "hue jitter %g: expected [0, 0.5]", cfg->hue);
    if (cfg->brightness < 0 || cfg->contrast < 0 || cfg->saturation < 0)
        return sc_errorf(SC_ERR_CONFIG, "colour jitter strengths must be >= 0");
    int k = blur_kernel(cfg);
    if (cfg->blur_p > 0 && (k % 2 == 0 || k > AUG_MAX_KERNEL))
        return sc_errorf(SC_ERR_CONFIG, "blur kernel %d: expected an odd size <= %d", k, AUG_MAX_KERNEL);
    if (cfg->blur_p > 0 && !(cfg->blur_sigma_min > 0 && cfg->blur_sigma_min <= cfg->blur_sigma_max))
        return sc_errorf(SC_ERR_CONFIG, "blur sigma (%g, %g): expected 0 < min <= max", cfg->blur_sigma_min,
                         cfg->blur_sigma_max);
    for (int ch = 0; ch < c && ch < 3; ch++)
        if (!(cfg->std[ch] > 0)) return sc_errorf(SC_ERR_CONFIG, "normalisation std[%d] = %g: expected > 0", ch, cfg->std[ch]);
    if (c != 1 && c != 3) return sc_errorf(SC_ERR_ARG, "augmentation of %d-channel images: expected 1 or 3", c);
    return SC_OK;
}

size_t aug_scratch_floats(const aug_cfg *cfg, int c) {
    (void)c;
    return (size_t)cfg->out_h * cfg->out_w + 4 * (size_t)(cfg->out_w + cfg->out_h) + AUG_MAX_KERNEL + 64;
}

void aug_rrc_params(rng_stream *rng, int h, int w, float smin, float smax, float rmin, float rmax, int *i, int *j,
                    int *ch, int *cw) {
    const float area = (float)h * (float)w, lr0 = logf(rmin), lr1 = logf(rmax);
    for (int t = 0; t < 10; t++) { /* torchvision RandomResizedCrop.get_params */
        float ta = area * rng_uniform_range(rng, smin, smax);
        float ar = expf(rng_uniform_range(rng, lr0, lr1));
        int ww = (int)lrintf(sqrtf(ta * ar)), hh = (int)lrintf(sqrtf(ta / ar));
        if (ww > 0 && ww <= w && hh > 0 && hh <= h) {
            *i = (int)rng_below(rng, (uint64_t)(h - hh + 1));
            *j = (int)rng_below(rng, (uint64_t)(w - ww + 1));
            *ch = hh;
            *cw = ww;
            return;
        }
    }
    float in_ratio = (float)w / (float)h; /* fallback: the central crop of the allowed ratio */
    int ww, hh;
    if (in_ratio < rmin) { ww = w; hh = (int)lrintf((float)ww / rmin); }
    else if (in_ratio > rmax) { hh = h; ww = (int)lrintf((float)hh * rmax); }
    else { ww = w; hh = h; }
    *ch = hh;
    *cw = ww;
    *i = (h - hh) / 2;
    *j = (w - ww) / 2;
}

void aug_resample(const uint8_t *src, int c, int h, int w, float y0, float x0, float rh, float rw, int flip,
                  float *dst, int64_t cs, int out_h, int out_w) {
    int xi0[out_w], xi1[out_w];
    float fx[out_w];
    const float sy = rh / (float)out_h, sx = rw / (float)out_w;
    float xlo = floorf(x0), xhi = ceilf(x0 + rw) - 1, ylo = floorf(y0), yhi = ceilf(y0 + rh) - 1;
    if (xlo < 0) xlo = 0;
    if (ylo < 0) ylo = 0;
    if (xhi > w - 1) xhi = (float)(w - 1);
    if (yhi > h - 1) yhi = (float)(h - 1);
    for (int ox = 0; ox < out_w; ox++) {
        float x = x0 + ((float)ox + 0.5f) * sx - 0.5f;
        if (x < xlo) x = xlo;
        if (x > xhi) x = xhi;
        int a = (int)x;
        int o = flip ? out_w - 1 - ox : ox;
        xi0[o] = a;
        xi1[o] = a + 1 <= (int)xhi ? a + 1 : a;
        fx[o] = x - (float)a;
    }
    const float inv = 1.0f / 255.0f;
    for (int k = 0; k < c; k++) {
        const uint8_t *s = src + (size_t)k * h * w;
        float *d = dst + k * cs;
        for (int oy = 0; oy < out_h; oy++) {
            float y = y0 + ((float)oy + 0.5f) * sy - 0.5f;
            if (y < ylo) y = ylo;
            if (y > yhi) y = yhi;
            int a = (int)y, b = a + 1 <= (int)yhi ? a + 1 : a;
            float fy = y - (float)a;
            const uint8_t *r0 = s + (size_t)a * w, *r1 = s + (size_t)b * w;
            float *drow = d + (size_t)oy * out_w;
            for (int ox = 0; ox < out_w; ox++) {
                float t0 = (float)r0[xi0[ox]] + fx[ox] * (float)(r0[xi1[ox]] - r0[xi0[ox]]);
                float t1 = (float)r1[xi0[ox]] + fx[ox] * (float)(r1[xi1[ox]] - r1[xi0[ox]]);
                drow[ox] = (t0 + fy * (t1 - t0)) * inv;
            }
        }
    }
}

static inline float clamp01(float v) { return v < 0 ? 0 : (v > 1 ? 1 : v); }

void aug_brightness(float *img, int c, int64_t cs, int hw, float f) {
    for (int k = 0; k < c; k++) {
        float *p = img + k * cs;
        for (int i = 0; i < hw; i++) p[i] = clamp01(p[i] * f);
    }
}

/* torchvision rgb_to_grayscale weights */
#define GR 0.2989f
#define GG 0.587f
#define GB 0.114f

void aug_contrast(float *img, int c, int64_t cs, int hw, float f) {
    double sum = 0; /* mean of the grayscale image */
    if (c == 3) {
        const float *r = img, *g = img + cs, *b = img + 2 * cs;
        for (int i = 0; i < hw; i++) sum += GR * r[i] + GG * g[i] + GB * b[i];
    } else {
        for (int i = 0; i < hw; i++) sum += img[i];
    }
    float m = (float)(sum / hw), off = (1.0f - f) * m;
    for (int k = 0; k < c; k++) {
        float *p = img + k * cs;
        for (int i = 0; i < hw; i++) p[i] = clamp01(f * p[i] + off);
    }
}

void aug_saturation(float *img, int64_t cs, int hw, float f) {
    float *r = img, *g = img + cs, *b = img + 2 * cs;
    for (int i = 0; i < hw; i++) {
        float gray = (1.0f - f) * (GR * r[i] + GG * g[i] + GB * b[i]);
        r[i] = clamp01(f * r[i] + gray);
        g[i] = clamp01(f * g[i] + gray);
        b[i] = clamp01(f * b[i] + gray);
    }
}

/* torchvision's _rgb2hsv, hue shift, _hsv2rgb; the sector switch of hsv2rgb written in its closed form
 * c_n = v - v*s*clamp(min(k, 4-k), 0, 1), k = (n + 6h) mod 6, n = 5, 3, 1, so the loop has no branches and
 * vectorizes (this op dominated the ImageNet recipe's cost with the switch). */
/* plain selects (maxps/minps); fmaxf's NaN rules keep GCC from vectorizing */
static inline float vmax(float a, float b) { return a > b ? a : b; }
static inline float vmin(float a, float b) { return a < b ? a : b; }

void aug_hue(float *img, int64_t cs, int hw, float f) {
    float *R = img, *G = img + cs, *B = img + 2 * cs;
    for (int i = 0; i < hw; i++) {
        float r = R[i], g = G[i], b = B[i];
        float mx = vmax(r, vmax(g, b)), mn = vmin(r, vmin(g, b)), cr = mx - mn;
        /* selects as 0/1 arithmetic: GCC will not if-convert FP ?: under the default -ftrapping-math */
        float s = cr / (mx + (float)(mx == 0));
        float icr = 1.0f / (cr + (float)(cr == 0));
        float rc = (mx - r) * icr, gc = (mx - g) * icr, bc = (mx - b) * icr;
        float h0 = bc - gc, h1 = 2.0f + rc - bc, h2 = 4.0f + gc - rc;
        float is_r = (float)(mx == r), is_g = (float)(mx == g);
        float h = is_r * h0 + (1.0f - is_r) * (is_g * h1 + (1.0f - is_g) * h2);
        h = h * (1.0f / 6.0f) + 1.0f;
        h -= (float)(int)h; /* h > 0: truncation = floor, and it vectorizes */
        h += f + 1.0f;
        h -= (float)(int)h; /* h > 0: truncation = floor, and it vectorizes */
        float h6 = h * 6.0f, vs = mx * s;
        float kr = 5.0f + h6, kg = 3.0f + h6, kb = 1.0f + h6;
        kr -= 6.0f * (float)(kr >= 6.0f);
        kg -= 6.0f * (float)(kg >= 6.0f);
        kb -= 6.0f * (float)(kb >= 6.0f);
        R[i] = mx - vs * vmax(0.0f, vmin(1.0f, vmin(kr, 4.0f - kr)));
        G[i] = mx - vs * vmax(0.0f, vmin(1.0f, vmin(kg, 4.0f - kg)));
        B[i] = mx - vs * vmax(0.0f, vmin(1.0f, vmin(kb, 4.0f - kb)));
    }
}

void aug_grayscale(float *img, int64_t cs, int hw) {
    float *r = img, *g = img + cs, *b = img + 2 * cs;
    for (int i = 0; i < hw; i++) {
        float v = GR * r[i] + GG * g[i] + GB * b[i];
        r[i] = g[i] = b[i] = v;
    }
}

static inline int reflect(int i, int n) { /* torch "reflect" padding (edge not repeated) */
    if (i < 0) i = -i;
    if (i >= n) i = 2 * n - 2 - i;
    return i;
}

/* Separable Gaussian, torchvision's kernel (linspace over +-k/2, normalised); scratch >= h*w + w + 2r + k. */
void aug_blur(float *img, int c, int64_t cs, int h, int w, int k, float sigma, float *scratch) {
    int r = k / 2;
    int rmax = (h < w ? h : w) - 1;
    if (r > rmax) r = rmax; /* reflect padding needs r < side */
    if (r <= 0) return;
    k = 2 * r + 1;
    float *tmp = scratch, *row = scratch + (size_t)h * w, *wt = row + w + 2 * r;
    double sum = 0;
    for (int t = 0; t < k; t++) {
        float x = (float)(t - r);
        wt[t] = expf(-0.5f * (x / sigma) * (x / sigma));
        sum += wt[t];
    }
    for (int t = 0; t < k; t++) wt[t] = (float)(wt[t] / sum);
    /* taps below 1e-7 of the total change no output by more than that: drop them (small sigma = few taps) */
    int lo = 0;
    while (lo < r && wt[lo] < 1e-7f) lo++;
    wt += lo;
    k -= 2 * lo;
    r -= lo;
    for (int ch = 0; ch < c; ch++) {
        float *p = img + ch * cs;
        for (int y = 0; y < h; y++) {
            const float *src = p + (size_t)y * w;
            for (int x = -r; x < w + r; x++) row[x + r] = src[reflect(x, w)];
            float *o = tmp + (size_t)y * w;
            for (int x = 0; x < w; x++) o[x] = 0;
            for (int t = 0; t < k; t++) {
                const float wv = wt[t], *s = row + t;
                for (int x = 0; x < w; x++) o[x] += wv * s[x];
            }
        }
        for (int y = 0; y < h; y++) {
            float *o = p + (size_t)y * w;
            for (int x = 0; x < w; x++) o[x] = 0;
            for (int t = 0; t < k; t++) {
                const float wv = wt[t], *s = tmp + (size_t)reflect(y + t - r, h) * w;
                for (int x = 0; x < w; x++) o[x] += wv * s[x];
            }
        }
    }
}

void aug_solarize(float *img, int c, int64_t cs, int hw) {
    const float thr = 128.0f / 255.0f; /* PIL threshold 128 on [0,255]: v >= 128 -> 255 - v */
    for (int k = 0; k < c; k++) {
        float *p = img + k * cs;
        for (int i = 0; i < hw; i++) p[i] = p[i] >= thr - 1e-6f ? 1.0f - p[i] : p[i];
    }
}

void aug_normalize(float *img, int c, int64_t cs, int hw, const float *mean, const float *std) {
    for (int k = 0; k < c; k++) {
        float *p = img + k * cs, m = mean[k], is = 1.0f / std[k];
        for (int i = 0; i < hw; i++) p[i] = (p[i] - m) * is;
    }
}

void aug_apply(const aug_cfg *cfg, rng_stream *rng, const uint8_t *src, int c, int in_h, int in_w, float *dst,
               int64_t cs, float *scratch) {
    const int H = cfg->out_h, W = cfg->out_w, hw = H * W;
    if (cfg->rrc) {
        int i, j, ch, cw;
        aug_rrc_params(rng, in_h, in_w, cfg->scale_min, cfg->scale_max, cfg->ratio_min, cfg->ratio_max, &i, &j, &ch,
                       &cw);
        int flip = cfg->flip_p > 0 && rng_uniform(rng) < cfg->flip_p;
        aug_resample(src, c, in_h, in_w, (float)i, (float)j, (float)ch, (float)cw, flip, dst, cs, H, W);
    } else {
        /* Resize(shorter side -> out/eval_crop) then CenterCrop(out), as one resampling */
        float side = (float)(in_h < in_w ? in_h : in_w);
        float target = (float)(H < W ? H : W) / cfg->eval_crop;
        float s = target / side; /* resized = source * s */
        float rh_res = roundf((float)in_h * s), rw_res = roundf((float)in_w * s);
        float top = roundf((rh_res - (float)H) / 2), left = roundf((rw_res - (float)W) / 2);
        if (in_h == H && in_w == W) s = 1, top = left = 0;
        int flip = cfg->flip_p > 0 && rng_uniform(rng) < cfg->flip_p;
        aug_resample(src, c, in_h, in_w, top / s, left / s, (float)H / s, (float)W / s, flip, dst, cs, H, W);
    }
    if (cfg->jitter_p > 0 && rng_uniform(rng) < cfg->jitter_p) {
        int order[4] = {0, 1, 2, 3};
        for (int k = 3; k > 0; k--) { /* random order, like torchvision's randperm(4) */
            int m = (int)rng_below(rng, (uint64_t)(k + 1)), t = order[k];
            order[k] = order[m];
            order[m] = t;
        }
        float bf = rng_uniform_range(rng, fmaxf(0, 1 - cfg->brightness), 1 + cfg->brightness);
        float cf = rng_uniform_range(rng, fmaxf(0, 1 - cfg->contrast), 1 + cfg->contrast);
        float sf = rng_uniform_range(rng, fmaxf(0, 1 - cfg->saturation), 1 + cfg->saturation);
        float hf = rng_uniform_range(rng, -cfg->hue, cfg->hue);
        for (int k = 0; k < 4; k++) {
            switch (order[k]) {
            case 0: if (cfg->brightness > 0) aug_brightness(dst, c, cs, hw, bf); break;
            case 1: if (cfg->contrast > 0) aug_contrast(dst, c, cs, hw, cf); break;
            case 2: if (cfg->saturation > 0 && c == 3) aug_saturation(dst, cs, hw, sf); break;
            default: if (cfg->hue > 0 && c == 3) aug_hue(dst, cs, hw, hf); break;
            }
        }
    }
    if (cfg->gray_p > 0 && rng_uniform(rng) < cfg->gray_p && c == 3) aug_grayscale(dst, cs, hw);
    if (cfg->blur_p > 0 && rng_uniform(rng) < cfg->blur_p) {
        float sigma = rng_uniform_range(rng, cfg->blur_sigma_min, cfg->blur_sigma_max);
        aug_blur(dst, c, cs, H, W, blur_kernel(cfg), sigma, scratch);
    }
    if (cfg->solarize_p > 0 && rng_uniform(rng) < cfg->solarize_p) aug_solarize(dst, c, cs, hw);
    aug_normalize(dst, c, cs, hw, cfg->mean, cfg->std);
}
