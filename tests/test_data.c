/* Tests for data/: readers on files written here, the real Fashion-MNIST, augmentation ops against hand
 * values and double-precision loops, view determinism across workers and rank splits, the sampler,
 * the eval iterator, and the JPEG pack round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "test_util.h"
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <jpeglib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data/augment.h"
#include "data/data.h"
#include "data/loader.h"

static char tmpdir[256];

static void mk_tmpdir(void) {
    if (tmpdir[0]) return;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_data_XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
}

static void tpath(char *dst, size_t cap, const char *name) {
    mk_tmpdir();
    snprintf(dst, cap, "%s/%s", tmpdir, name);
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static void write_gz(const char *path, const uint8_t *buf, size_t len) {
    gzFile f = gzopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(gzwrite(f, buf, (unsigned)len), (int)len);
    gzclose(f);
}

/* IDX pair in dir/ with n images of h x w; pixel = (i*7 + p) & 255, label = i % 10. drop: bytes cut. */
static void write_idx(const char *dir, const char *prefix, uint32_t n, uint32_t hn, uint32_t h, uint32_t w,
                      uint32_t img_magic, size_t drop) {
    size_t il = 16 + (size_t)n * h * w;
    uint8_t *ib = malloc(il), *lb = malloc(8 + hn);
    put_be32(ib, img_magic); put_be32(ib + 4, n); put_be32(ib + 8, h); put_be32(ib + 12, w);
    for (size_t p = 0; p < (size_t)n * h * w; p++) ib[16 + p] = (uint8_t)((p / (h * w)) * 7 + p % (h * w));
    put_be32(lb, 0x801); put_be32(lb + 4, hn);
    for (uint32_t i = 0; i < hn; i++) lb[8 + i] = (uint8_t)(i % 10);
    char p[512];
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    write_gz(p, ib, il - drop);
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    write_gz(p, lb, 8 + hn);
    free(ib);
    free(lb);
}

static void test_idx(void **st) {
    (void)st;
    char dir[300];
    tpath(dir, sizeof dir, "idx");
    mkdir(dir, 0755);
    write_idx(dir, "train", 5, 5, 4, 3, 0x803, 0);
    data_set s;
    assert_int_equal(data_read_idx(dir, "train", &s), SC_OK);
    assert_int_equal(s.n, 5);
    assert_int_equal(s.c, 1);
    assert_int_equal(s.h, 4);
    assert_int_equal(s.w, 3);
    assert_int_equal(s.nclasses, 5);
    assert_int_equal(s.labels[3], 3);
    assert_int_equal(s.pixels[2 * 12 + 5], 2 * 7 + 5);
    data_set_free(&s);
    /* missing split files */
    assert_int_equal(data_read_idx(dir, "test", &s), SC_ERR_IO);
    assert_non_null(strstr(sc_last_error(), "t10k-images-idx3-ubyte.gz"));
    assert_int_equal(data_read_idx(dir, "val", &s), SC_ERR_ARG);
    /* truncated pixel payload */
    write_idx(dir, "t10k", 5, 5, 4, 3, 0x803, 7);
    assert_int_equal(data_read_idx(dir, "test", &s), SC_ERR_FORMAT);
    assert_non_null(strstr(sc_last_error(), "expected 60 bytes"));
    /* wrong magic */
    write_idx(dir, "t10k", 5, 5, 4, 3, 0x802, 0);
    assert_int_equal(data_read_idx(dir, "test", &s), SC_ERR_FORMAT);
    assert_non_null(strstr(sc_last_error(), "magic"));
    /* label count differs from image count */
    write_idx(dir, "t10k", 5, 4, 4, 3, 0x803, 0);
    assert_int_equal(data_read_idx(dir, "test", &s), SC_ERR_FORMAT);
    assert_non_null(strstr(sc_last_error(), "4 labels"));
    /* a gzip stream cut short */
    char p[512];
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", dir);
    write_idx(dir, "t10k", 50, 50, 8, 8, 0x803, 0);
    struct stat stt;
    stat(p, &stt);
    assert_int_equal(truncate(p, stt.st_size / 2), 0);
    assert_int_equal(data_read_idx(dir, "test", &s), SC_ERR_FORMAT);
    assert_non_null(strstr(sc_last_error(), "t10k-images"));
}


static void test_cifar(void **st) {
    (void)st;
    char dir[300], p[512];
    tpath(dir, sizeof dir, "cifar");
    mkdir(dir, 0755);
    uint8_t rec[3 * 3074];
    for (int b = 1; b <= 5; b++) { /* 3 records per batch file; label = b, pixel[0] = 10*b + r */
        for (int r = 0; r < 3; r++) {
            rec[r * 3073] = (uint8_t)(b % 10);
            for (int q = 0; q < 3072; q++) rec[r * 3073 + 1 + q] = (uint8_t)(10 * b + r + q);
        }
        snprintf(p, sizeof p, "%s/data_batch_%d.bin", dir, b);
        tu_write_file(p, rec, 3 * 3073);
    }
    data_set s;
    assert_int_equal(data_read_cifar(dir, 10, "test", &s), SC_ERR_IO);
    assert_non_null(strstr(sc_last_error(), "test_batch.bin"));
    assert_int_equal(data_read_cifar(dir, 10, "train", &s), SC_OK);
    assert_int_equal(s.n, 15);
    assert_int_equal(s.c, 3);
    assert_int_equal(s.nclasses, 10);
    assert_int_equal(s.labels[7], 3); /* batch 3, record 1 */
    assert_int_equal(s.pixels[7 * 3072 + 5], 31 + 5);
    data_set_free(&s);
    /* truncated batch file */
    snprintf(p, sizeof p, "%s/test_batch.bin", dir);
    tu_write_file(p, rec, 3073 + 100);
    assert_int_equal(data_read_cifar(dir, 10, "test", &s), SC_ERR_FORMAT);
    assert_non_null(strstr(sc_last_error(), "3073-byte"));
    /* CIFAR-100: coarse, fine */
    for (int r = 0; r < 2; r++) {
        rec[r * 3074] = 3;
        rec[r * 3074 + 1] = (uint8_t)(42 + r);
        memset(rec + r * 3074 + 2, r, 3072);
    }
    snprintf(p, sizeof p, "%s/train.bin", dir);
    tu_write_file(p, rec, 2 * 3074);
    assert_int_equal(data_read_cifar(dir, 100, "train", &s), SC_OK);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.nclasses, 100);
    assert_int_equal(s.labels[1], 43);
    assert_int_equal(s.pixels[3072 + 100], 1);
    data_set_free(&s);
}

static void make_set(data_set *s, int64_t n, int c, int h, int w, int ncls, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->n = n; s->c = c; s->h = h; s->w = w; s->nclasses = ncls;
    s->pixels = malloc((size_t)n * c * h * w);
    s->labels = malloc(sizeof(int32_t) * n);
    rng_stream r = rng_stream_make(seed, 1, 2, 3);
    for (int64_t i = 0; i < n * c * h * w; i++) s->pixels[i] = (uint8_t)rng_below(&r, 256);
    for (int64_t i = 0; i < n; i++) s->labels[i] = (int32_t)(i % ncls);
    snprintf(s->source, sizeof s->source, "synthetic");
}

static void free_set(data_set *s) { free(s->pixels); free(s->labels); memset(s, 0, sizeof *s); }

static void test_shard(void **st) {
    (void)st;
    data_set src;
    make_set(&src, 37, 3, 5, 6, 4, 7);
    char *names[4] = {"ant", "bee", "cat", "dog"};
    src.class_names = names;
    char p[300];
    tpath(p, sizeof p, "a.shard");
    assert_int_equal(data_shard_write(p, &src), SC_OK);
    src.class_names = NULL;
    for (int mem = 0; mem < 2; mem++) {
        data_set s;
        assert_int_equal(data_read_shard(p, mem, &s), SC_OK);
        assert_int_equal(s.n, 37);
        assert_int_equal(s.c, 3);
        assert_int_equal(s.h, 5);
        assert_int_equal(s.w, 6);
        assert_int_equal(s.nclasses, 4);
        assert_string_equal(s.class_names[2], "cat");
        assert_true(mem ? s.pixels != NULL : s.pixels == NULL);
        uint8_t scratch[90];
        for (int64_t i = 0; i < 37; i++) {
            const uint8_t *img;
            assert_int_equal(data_get_image(&s, i, scratch, &img), SC_OK);
            assert_memory_equal(img, src.pixels + i * 90, 90);
            assert_int_equal(s.labels[i], src.labels[i]);
        }
        data_set_free(&s);
    }
    assert_int_equal(data_shard_verify(p), SC_OK);
    /* corrupt one pixel of sample 11: the read by offset reports that sample */
    data_set s;
    assert_int_equal(data_read_shard(p, 0, &s), SC_OK);
    FILE *f = fopen(p, "r+b");
    fseek(f, 4096 + 11 * 90 + 3, SEEK_SET);
    fputc(src.pixels[11 * 90 + 3] ^ 0x10, f);
    fclose(f);
    uint8_t scratch[90];
    const uint8_t *img;
    assert_int_equal(data_get_image(&s, 10, scratch, &img), SC_OK);
    assert_int_equal(data_get_image(&s, 11, scratch, &img), SC_ERR_FORMAT);
    assert_non_null(strstr(sc_last_error(), "sample 11 CRC"));
    data_set_free(&s);
    assert_int_equal(data_shard_verify(p), SC_ERR_FORMAT);
    /* truncated file */
    struct stat stt;
    stat(p, &stt);
    assert_int_equal(truncate(p, stt.st_size - 5), 0);
    assert_int_equal(data_read_shard(p, 0, &s), SC_ERR_FORMAT);
    assert_non_null(strstr(sc_last_error(), "truncated"));
    /* wrong magic */
    f = fopen(p, "r+b");
    fputc('X', f);
    fclose(f);
    assert_int_equal(data_read_shard(p, 0, &s), SC_ERR_FORMAT);
    assert_non_null(strstr(sc_last_error(), "magic"));
    char q[300];
    tpath(q, sizeof q, "missing.shard");
    assert_int_equal(data_open("shard", q, "train", 0, &s), SC_ERR_IO);
    assert_non_null(strstr(sc_last_error(), "missing.shard"));
    assert_int_equal(data_open("jpegs", q, "train", 0, &s), SC_ERR_CONFIG);
    free_set(&src);
}

static void test_fashion_mnist(void **st) {
    (void)st;
    const char *dir = "/usr/share/datasets/fashion-mnist";
    struct stat stt;
    if (stat(dir, &stt) != 0) skip();
    data_set tr, te;
    assert_int_equal(data_open("fmnist", dir, "train", 1, &tr), SC_OK);
    assert_int_equal(data_open("fmnist", dir, "test", 1, &te), SC_OK);
    assert_int_equal(tr.n, 60000);
    assert_int_equal(te.n, 10000);
    assert_int_equal(tr.h, 28);
    assert_int_equal(tr.w, 28);
    assert_int_equal(tr.nclasses, 10);
    assert_int_equal(tr.labels[0], 9);
    assert_int_equal(te.labels[0], 9);
    double sum = 0; /* the docs/conventions.md normalisation mean */
    for (int64_t i = 0; i < tr.n * 784; i++) sum += tr.pixels[i];
    assert_true(fabs(sum / (tr.n * 784.0) / 255.0 - 0.2860) < 5e-4);
    data_set_free(&tr);
    data_set_free(&te);
}

/* ---- augmentation ---- */

static void test_aug_geometry(void **st) {
    (void)st;
    const uint8_t src[2 * 6] = {0, 10, 20, 30, 40, 50, 255, 0, 128, 64, 32, 16}; /* 2 channels of 2x3 */
    float out[12];
    aug_resample(src, 2, 2, 3, 0, 0, 2, 3, 0, out, 6, 2, 3); /* identity crop */
    for (int k = 0; k < 12; k++) assert_float_equal(out[k], src[k] / 255.0f, 1e-7);
    aug_resample(src, 2, 2, 3, 0, 0, 2, 3, 1, out, 6, 2, 3); /* flip */
    for (int c = 0; c < 2; c++)
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 3; x++)
                assert_float_equal(out[c * 6 + y * 3 + x], src[c * 6 + y * 3 + 2 - x] / 255.0f, 1e-7);
    /* 2x upscale of a 1x2 row: torchvision bilinear (align_corners=False) gives 0, .25, .75, 1 of the ramp */
    const uint8_t ramp[2] = {0, 200};
    float up[4];
    aug_resample(ramp, 1, 1, 2, 0, 0, 1, 2, 0, up, 4, 1, 4);
    const float want[4] = {0, 50, 150, 200};
    for (int k = 0; k < 4; k++) assert_float_equal(up[k], want[k] / 255.0f, 1e-6);
    /* RRC params: inside the image, area and ratio within range (or the fallback) */
    rng_stream r = rng_stream_make(3, 0, 0, 0);
    for (int t = 0; t < 2000; t++) {
        int i, j, ch, cw;
        aug_rrc_params(&r, 28, 40, 0.2f, 1.0f, 0.75f, 4.0f / 3.0f, &i, &j, &ch, &cw);
        assert_true(i >= 0 && j >= 0 && ch > 0 && cw > 0 && i + ch <= 28 && j + cw <= 40);
        float area = (float)ch * cw / (28 * 40), ar = (float)cw / ch;
        assert_true(area > 0.17f && area <= 1.0f);
        assert_true(ar > 0.65f && ar < 1.5f);
    }
    /* impossible ratio -> the centre fallback of torchvision */
    int i, j, ch, cw;
    aug_rrc_params(&r, 10, 40, 1.0f, 1.0f, 1.0f, 1.0f, &i, &j, &ch, &cw);
    assert_int_equal(ch, 10);
    assert_int_equal(cw, 10);
    assert_int_equal(i, 0);
    assert_int_equal(j, 15);
}

/* torchvision's adjust_hue on one pixel, in double, with the hsv2rgb sector switch */
static void hue_ref(double *rgb, double f) {
    double r = rgb[0], g = rgb[1], b = rgb[2], mx = fmax(r, fmax(g, b)), mn = fmin(r, fmin(g, b)), cr = mx - mn;
    double s = cr / (mx == 0 ? 1 : mx), d = cr == 0 ? 1 : cr, h;
    double rc = (mx - r) / d, gc = (mx - g) / d, bc = (mx - b) / d;
    if (mx == r) h = bc - gc;
    else if (mx == g) h = 2 + rc - bc;
    else h = 4 + gc - rc;
    h = fmod(h / 6 + 1, 1);
    h = fmod(h + f + 1, 1);
    int i = (int)floor(h * 6) % 6;
    double fr = h * 6 - floor(h * 6), p = mx * (1 - s), q = mx * (1 - s * fr), t = mx * (1 - s * (1 - fr));
    const double out[6][3] = {{mx, t, p}, {q, mx, p}, {p, mx, t}, {p, q, mx}, {t, p, mx}, {mx, p, q}};
    for (int c = 0; c < 3; c++) rgb[c] = out[i][c];
}

static void test_aug_hue(void **st) {
    (void)st;
    enum { N = 4000 };
    static float img[3 * N];
    rng_stream r = rng_stream_make(17, 0, 0, 0);
    for (int t = 0; t < 3 * N; t++) img[t] = rng_uniform(&r);
    for (int t = 0; t < 3 * 40; t++) img[t] = (float)(rng_below(&r, 3)) / 2; /* ties between channels */
    const float f = 0.37f - 0.5f;
    float orig[3 * N];
    memcpy(orig, img, sizeof orig);
    aug_hue(img, N, N, f);
    for (int i = 0; i < N; i++) {
        double px[3] = {orig[i], orig[N + i], orig[2 * N + i]};
        hue_ref(px, f);
        for (int c = 0; c < 3; c++) assert_float_equal(img[c * N + i], px[c], 2e-5);
    }
}

static void test_aug_colour(void **st) {
    (void)st;
    float img[3 * 4] = {0.1f, 0.5f, 0.9f, 0.3f, /* R */ 0.2f, 0.4f, 0.6f, 1.0f, /* G */ 0.0f, 0.7f, 0.2f, 0.5f};
    float a[12];
    memcpy(a, img, sizeof a);
    aug_brightness(a, 3, 4, 4, 1.5f);
    for (int k = 0; k < 12; k++) assert_float_equal(a[k], fminf(1.0f, img[k] * 1.5f), 1e-6);
    memcpy(a, img, sizeof a);
    aug_grayscale(a, 4, 4);
    for (int k = 0; k < 4; k++) {
        float g = 0.2989f * img[k] + 0.587f * img[4 + k] + 0.114f * img[8 + k];
        assert_float_equal(a[k], g, 1e-6);
        assert_float_equal(a[4 + k], g, 1e-6);
        assert_float_equal(a[8 + k], g, 1e-6);
    }
    /* contrast against a double-precision reference: blend with the mean grayscale */
    memcpy(a, img, sizeof a);
    aug_contrast(a, 3, 4, 4, 0.6f);
    double m = 0;
    for (int k = 0; k < 4; k++) m += 0.2989 * img[k] + 0.587 * img[4 + k] + 0.114 * img[8 + k];
    m /= 4;
    for (int k = 0; k < 12; k++) assert_float_equal(a[k], fmin(1, fmax(0, 0.6 * img[k] + 0.4 * m)), 1e-6);
    /* saturation 0 = grayscale */
    float b[12];
    memcpy(a, img, sizeof a);
    memcpy(b, img, sizeof b);
    aug_saturation(a, 4, 4, 0.0f);
    aug_grayscale(b, 4, 4);
    for (int k = 0; k < 12; k++) assert_float_equal(a[k], b[k], 1e-6);
    /* hue: 0 is the identity; +1/3 turns pure red into pure green */
    memcpy(a, img, sizeof a);
    aug_hue(a, 4, 4, 0.0f);
    for (int k = 0; k < 12; k++) assert_float_equal(a[k], img[k], 1e-5);
    float red[3] = {0.8f, 0.0f, 0.0f};
    aug_hue(red, 1, 1, 1.0f / 3.0f);
    assert_float_equal(red[0], 0.0f, 1e-5);
    assert_float_equal(red[1], 0.8f, 1e-5);
    assert_float_equal(red[2], 0.0f, 1e-5);
    /* solarize: threshold 128 on the [0,255] scale */
    float sol[4] = {127 / 255.0f, 128 / 255.0f, 0.0f, 1.0f};
    aug_solarize(sol, 1, 4, 4);
    assert_float_equal(sol[0], 127 / 255.0f, 1e-7);
    assert_float_equal(sol[1], 127 / 255.0f, 1e-6);
    assert_float_equal(sol[2], 0.0f, 1e-7);
    assert_float_equal(sol[3], 0.0f, 1e-7);
    /* normalise */
    float nm[2] = {0.2860f, 1.0f};
    const float mean[1] = {0.2860f}, sd[1] = {0.3530f};
    aug_normalize(nm, 1, 2, 2, mean, sd);
    assert_float_equal(nm[0], 0.0f, 1e-6);
    assert_float_equal(nm[1], (1.0f - 0.2860f) / 0.3530f, 1e-5);
}

static void test_aug_blur(void **st) {
    (void)st;
    const int h = 9, w = 11, k = 5;
    const float sigma = 1.3f;
    float img[2 * 99], ref[2 * 99], scratch[99 + 11 + 16 + 8];
    rng_stream r = rng_stream_make(5, 0, 0, 0);
    for (int q = 0; q < 2 * 99; q++) img[q] = rng_uniform(&r);
    /* reference: direct 2D convolution in double with reflect padding */
    double wt[5], s = 0;
    for (int t = 0; t < k; t++) s += wt[t] = exp(-0.5 * pow((t - 2) / sigma, 2));
    for (int c = 0; c < 2; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double acc = 0;
                for (int dy = 0; dy < k; dy++)
                    for (int dx = 0; dx < k; dx++) {
                        int yy = y + dy - 2, xx = x + dx - 2;
                        yy = yy < 0 ? -yy : (yy >= h ? 2 * h - 2 - yy : yy);
                        xx = xx < 0 ? -xx : (xx >= w ? 2 * w - 2 - xx : xx);
                        acc += wt[dy] * wt[dx] / (s * s) * img[c * 99 + yy * w + xx];
                    }
                ref[c * 99 + y * w + x] = (float)acc;
            }
    aug_blur(img, 2, 99, h, w, k, sigma, scratch);
    for (int q = 0; q < 2 * 99; q++) assert_float_equal(img[q], ref[q], 1e-5);
}

static void test_aug_presets(void **st) {
    (void)st;
    aug_cfg c;
    assert_int_equal(aug_preset("fmnist", 0, 1, 28, 28, &c), SC_OK);
    assert_float_equal(c.scale_min, 0.2f, 0);
    assert_float_equal(c.jitter_p, 0.8f, 0);
    assert_float_equal(c.brightness, 0.4f, 0);
    assert_float_equal(c.saturation, 0.0f, 0);
    assert_float_equal(c.blur_p, 0.0f, 0);
    assert_float_equal(c.mean[0], 0.2860f, 0);
    assert_int_equal(aug_check(&c, 1, 28, 28), SC_OK);
    aug_cfg v0, v1;
    assert_int_equal(aug_preset("mocov3", 0, 3, 224, 224, &v0), SC_OK);
    assert_int_equal(aug_preset("mocov3", 1, 3, 224, 224, &v1), SC_OK);
    assert_float_equal(v0.blur_p, 1.0f, 0);
    assert_float_equal(v1.blur_p, 0.1f, 0);
    assert_float_equal(v0.solarize_p, 0.0f, 0);
    assert_float_equal(v1.solarize_p, 0.2f, 0);
    assert_int_equal(aug_preset("simclr", 0, 3, 32, 32, &v0), SC_OK);
    assert_float_equal(v0.scale_min, 0.08f, 0);
    assert_int_equal(aug_preset("byol", 0, 3, 32, 32, &v0), SC_ERR_CONFIG);
    assert_non_null(strstr(sc_last_error(), "byol"));
    /* "none" on a same-size image = normalised pixels; on 256 -> 224 it is the centre crop */
    assert_int_equal(aug_preset("none", 0, 1, 3, 3, &c), SC_OK);
    const uint8_t px[9] = {0, 30, 60, 90, 120, 150, 180, 210, 255};
    float out[9];
    rng_stream r = rng_stream_make(1, 0, 0, 0);
    aug_apply(&c, &r, px, 1, 3, 3, out, 9, NULL);
    for (int k = 0; k < 9; k++) assert_float_equal(out[k], (px[k] / 255.0f - 0.2860f) / 0.3530f, 1e-5);
    assert_int_equal(aug_preset("none", 0, 1, 224, 224, &c), SC_OK);
    uint8_t *big = malloc(256 * 256);
    for (int q = 0; q < 256 * 256; q++) big[q] = (uint8_t)((q % 256) ^ (q / 256));
    float *o = malloc(sizeof(float) * 224 * 224);
    aug_apply(&c, &r, big, 1, 256, 256, o, 224 * 224, NULL);
    for (int y = 0; y < 224; y += 37)
        for (int x = 0; x < 224; x += 29)
            assert_float_equal(o[y * 224 + x], (big[(y + 16) * 256 + x + 16] / 255.0f - 0.2860f) / 0.3530f, 1e-5);
    free(big);
    free(o);
}

/* ---- sampler and loader ---- */

static void test_sampler(void **st) {
    (void)st;
    const int64_t n = 1001;
    int64_t *p = malloc(sizeof(int64_t) * n), *q = malloc(sizeof(int64_t) * n);
    char *seen = calloc(n, 1);
    loader_epoch_perm(42, 3, n, p);
    for (int64_t i = 0; i < n; i++) {
        assert_true(p[i] >= 0 && p[i] < n);
        assert_int_equal(seen[p[i]], 0);
        seen[p[i]] = 1;
    }
    loader_epoch_perm(42, 4, n, q);
    int same = 0;
    for (int64_t i = 0; i < n; i++) same += p[i] == q[i];
    assert_true(same < 20);
    loader_epoch_perm(42, 3, n, q);
    assert_memory_equal(p, q, sizeof(int64_t) * n);
    for (int B = 1; B <= 13; B++)
        for (int P = 1; P <= 4 && P <= B; P++) {
            int at = 0;
            for (int r = 0; r < P; r++) {
                int b0, b1;
                loader_rank_slice(B, r, P, &b0, &b1);
                assert_int_equal(b0, at);
                assert_true(b1 - b0 >= B / P && b1 - b0 <= (B + P - 1) / P);
                at = b1;
            }
            assert_int_equal(at, B);
        }
    free(p);
    free(q);
    free(seen);
}

static loader *make_loader(const data_set *s, int B, int rank, int P, int workers, const char *preset) {
    loader_cfg cfg = {.set = s, .nviews = 2, .global_batch = B, .rank = rank, .nranks = P, .workers = workers,
                      .seed = 1234};
    for (int v = 0; v < 2; v++) assert_int_equal(aug_preset(preset, v, s->c, 24, 24, &cfg.view[v]), SC_OK);
    cfg.view[0].blur_p = 0.5f; /* exercise the blur path too */
    loader *ld;
    assert_int_equal(loader_create(&cfg, &ld), SC_OK);
    return ld;
}

/* Views of (seed, epoch, index, view) do not depend on workers or rank split: a 1-rank, 0-worker loader
 * against 3 ranks with 3 workers each, over an epoch boundary, bit for bit. */
static void test_loader_determinism(void **st) {
    (void)st;
    for (int c = 1; c <= 3; c += 2) {
        data_set s;
        make_set(&s, 50, c, 28, 28, 10, 11);
        const char *preset = c == 1 ? "fmnist" : "mocov3";
        const int B = 10, P = 3; /* rank slices of 3, 3, 4 */
        loader *ref = make_loader(&s, B, 0, 1, 0, preset);
        loader *ranks[3];
        for (int r = 0; r < P; r++) ranks[r] = make_loader(&s, B, r, P, 3, preset);
        assert_int_equal(loader_steps_per_epoch(ref), 5);
        assert_int_equal(loader_max_local_batch(ranks[0]), 4);
        const size_t plane = 24 * 24;
        for (int t = 0; t < 7; t++) {
            loader_batch rb;
            assert_int_equal(loader_next(ref, &rb), SC_OK);
            assert_int_equal(rb.b, B);
            assert_int_equal(rb.epoch, t / 5);
            assert_int_equal(rb.step, t % 5);
            for (int r = 0; r < P; r++) {
                loader_batch b;
                int b0, b1;
                loader_rank_slice(B, r, P, &b0, &b1);
                assert_int_equal(loader_next(ranks[r], &b), SC_OK);
                assert_int_equal(b.b, b1 - b0);
                for (int k = 0; k < b.b; k++) {
                    int g = b0 + k;
                    assert_int_equal(b.index[k], rb.index[g]);
                    assert_int_equal(b.labels[k], s.labels[rb.index[g]]);
                    for (int v = 0; v < 2; v++) /* CNHW with the batch's own b */
                        for (int ch = 0; ch < c; ch++)
                            assert_memory_equal(b.x[v] + (ch * b.b + k) * plane, rb.x[v] + (ch * B + g) * plane,
                                                plane * sizeof(float));
                }
            }
            /* the two views differ */
            assert_true(memcmp(rb.x[0], rb.x[1], plane * sizeof(float)) != 0);
        }
        /* resume: seek to (1, 1) gives the same batch as the 7th above */
        loader_batch b6, again;
        loader_seek(ref, 0, 0);
        for (int t = 0; t < 7; t++) assert_int_equal(loader_next(ref, &b6), SC_OK);
        float *copy = malloc(sizeof(float) * c * B * plane);
        memcpy(copy, b6.x[1], sizeof(float) * c * B * plane);
        loader_seek(ranks[0], 1, 1);
        loader_seek(ref, 1, 1);
        assert_int_equal(loader_next(ref, &again), SC_OK);
        assert_int_equal(again.epoch, 1);
        assert_int_equal(again.step, 1);
        assert_memory_equal(copy, again.x[1], sizeof(float) * c * B * plane);
        free(copy);
        loader_free(ref);
        for (int r = 0; r < P; r++) loader_free(ranks[r]);
        free_set(&s);
    }
}

static void test_loader_eval_and_errors(void **st) {
    (void)st;
    data_set s;
    make_set(&s, 10, 1, 24, 24, 3, 2);
    loader_cfg cfg = {.set = &s, .global_batch = 4, .workers = 2};
    assert_int_equal(aug_preset("none", 0, 1, 24, 24, &cfg.view[0]), SC_OK);
    loader *ld;
    assert_int_equal(loader_create_eval(&cfg, 0, 10, &ld), SC_OK);
    const int want[4] = {4, 4, 2, 0};
    for (int pass = 0; pass < 2; pass++)
        for (int t = 0; t < 4; t++) {
            loader_batch b;
            assert_int_equal(loader_next(ld, &b), SC_OK);
            assert_int_equal(b.b, want[t]);
            assert_null(b.x[1]);
            for (int k = 0; k < b.b; k++) {
                int64_t i = t * 4 + k;
                assert_int_equal(b.index[k], i);
                for (int q = 0; q < 576; q += 17)
                    assert_float_equal(b.x[0][k * 576 + q], (s.pixels[i * 576 + q] / 255.0f - 0.2860f) / 0.3530f,
                                       1e-5);
            }
        }
    loader_free(ld);
    { /* 3 channels: the short last batch is dense CNHW [3][b][h][w] with its own b */
        data_set s3;
        make_set(&s3, 5, 3, 24, 24, 2, 4);
        loader_cfg c3 = {.set = &s3, .global_batch = 4, .workers = 1};
        assert_int_equal(aug_preset("none", 0, 3, 24, 24, &c3.view[0]), SC_OK);
        assert_int_equal(loader_create_eval(&c3, 0, 5, &ld), SC_OK);
        loader_batch b;
        assert_int_equal(loader_next(ld, &b), SC_OK);
        assert_int_equal(loader_next(ld, &b), SC_OK);
        assert_int_equal(b.b, 1);
        for (int ch = 0; ch < 3; ch++)
            assert_float_equal(b.x[0][ch * 576 + 5],
                               (s3.pixels[4 * 1728 + ch * 576 + 5] / 255.0f - c3.view[0].mean[ch]) / c3.view[0].std[ch],
                               1e-5);
        loader_free(ld);
        free_set(&s3);
    }
    /* bad configurations name the problem */
    loader_cfg bad = {.set = &s, .nviews = 2, .global_batch = 16, .rank = 0, .nranks = 1};
    bad.view[0] = bad.view[1] = cfg.view[0];
    assert_int_equal(loader_create(&bad, &ld), SC_ERR_CONFIG);
    assert_non_null(strstr(sc_last_error(), "batch 16"));
    /* a corrupt shard sample surfaces from the worker thread through loader_next */
    char p[300];
    tpath(p, sizeof p, "loader.shard");
    assert_int_equal(data_shard_write(p, &s), SC_OK);
    data_set sh;
    assert_int_equal(data_read_shard(p, 0, &sh), SC_OK);
    FILE *f = fopen(p, "r+b");
    fseek(f, 4096 + 3 * 576, SEEK_SET);
    fputc(s.pixels[3 * 576] ^ 1, f);
    fclose(f);
    cfg.set = &sh;
    assert_int_equal(loader_create_eval(&cfg, 0, 10, &ld), SC_OK);
    loader_batch b;
    assert_int_equal(loader_next(ld, &b), SC_ERR_FORMAT);
    assert_non_null(strstr(sc_last_error(), "sample 3 CRC"));
    loader_free(ld);
    data_set_free(&sh);
    free_set(&s);
}

/* ---- pack ---- */

static void write_jpeg(const char *path, int h, int w, int comps, void (*fill)(uint8_t *, int, int, int)) {
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr em;
    ci.err = jpeg_std_error(&em);
    jpeg_create_compress(&ci);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = comps == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 98, TRUE);
    jpeg_start_compress(&ci, TRUE);
    uint8_t *buf = malloc((size_t)h * w * comps);
    fill(buf, h, w, comps);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = buf + (size_t)ci.next_scanline * w * comps;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    fclose(f);
    free(buf);
}

static void fill_red(uint8_t *b, int h, int w, int c) {
    for (int i = 0; i < h * w; i++) { b[3 * i] = 200; b[3 * i + 1] = 30; b[3 * i + 2] = 40; }
}
static void fill_gray(uint8_t *b, int h, int w, int c) { memset(b, 90, (size_t)h * w); }
/* wide image: left third black, middle white, right third black -> after the centre crop, all white */
static void fill_bars(uint8_t *b, int h, int w, int c) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t v = (x >= w / 3 && x < 2 * w / 3) ? 255 : 0;
            b[3 * (y * w + x)] = b[3 * (y * w + x) + 1] = b[3 * (y * w + x) + 2] = v;
        }
}

static void test_pack(void **st) {
    (void)st;
    char root[300], d[400], p[500], out[300];
    tpath(root, sizeof root, "jpegs");
    mkdir(root, 0755);
    const char *cls[2] = {"zebra", "apple"}; /* sorted: apple = 0, zebra = 1 */
    for (int k = 0; k < 2; k++) {
        snprintf(d, sizeof d, "%s/%s", root, cls[k]);
        mkdir(d, 0755);
    }
    snprintf(p, sizeof p, "%s/apple/b.JPG", root);
    write_jpeg(p, 48, 64, 3, fill_red);
    snprintf(p, sizeof p, "%s/apple/a.jpg", root);
    write_jpeg(p, 40, 30, 1, fill_gray);
    snprintf(p, sizeof p, "%s/zebra/c.jpeg", root);
    write_jpeg(p, 32, 96, 3, fill_bars);
    snprintf(p, sizeof p, "%s/zebra/notes.txt", root);
    tu_write_file(p, (const uint8_t *)"x", 1);
    tpath(out, sizeof out, "packed.shard");
    int64_t n = 0;
    assert_int_equal(data_pack(root, 16, out, 2, &n), SC_OK);
    assert_int_equal(n, 3);
    data_set s;
    assert_int_equal(data_read_shard(out, 1, &s), SC_OK);
    assert_int_equal(s.c, 3);
    assert_int_equal(s.h, 16);
    assert_int_equal(s.w, 16);
    assert_int_equal(s.nclasses, 2);
    assert_string_equal(s.class_names[0], "apple");
    assert_string_equal(s.class_names[1], "zebra");
    assert_int_equal(s.labels[0], 0);
    assert_int_equal(s.labels[1], 0);
    assert_int_equal(s.labels[2], 1);
    const int plane = 256;
    for (int q = 0; q < plane; q++) { /* a.jpg: gray 90 in all three channels */
        for (int c = 0; c < 3; c++) assert_true(abs(s.pixels[c * plane + q] - 90) <= 2);
        assert_true(abs(s.pixels[768 + q] - 200) <= 4); /* b.JPG red */
        assert_true(abs(s.pixels[768 + plane + q] - 30) <= 4);
        assert_true(abs(s.pixels[768 + 2 * plane + q] - 40) <= 4);
    }
    /* c.jpeg: 32x96 -> 16x48 -> centre 16x16 = the white middle bar (edges may blend one pixel) */
    for (int y = 0; y < 16; y++)
        for (int x = 1; x < 15; x++) assert_true(s.pixels[2 * 768 + y * 16 + x] >= 240);
    data_set_free(&s);
    /* a corrupt JPEG: the error names it, and no output file is left */
    snprintf(p, sizeof p, "%s/zebra/broken.jpg", root);
    tu_write_file(p, (const uint8_t *)"\xff\xd8garbage", 9);
    unlink(out);
    assert_int_equal(data_pack(root, 16, out, 1, &n), SC_ERR_FORMAT);
    assert_non_null(strstr(sc_last_error(), "broken.jpg"));
    assert_int_not_equal(access(out, F_OK), 0);
    assert_int_equal(data_pack("/nonexistent-dir", 16, out, 1, &n), SC_ERR_IO);
}

static void test_random_batch(void **st) {
    (void)st;
    float a[2 * 3 * 4 * 4], b[2 * 3 * 4 * 4];
    int32_t la[3], lb[3];
    data_random_batch(a, la, 2, 3, 4, 4, 10, 9);
    data_random_batch(b, lb, 2, 3, 4, 4, 10, 9);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_equal(la, lb, sizeof la);
    double m = 0;
    for (int k = 0; k < 96; k++) m += a[k];
    assert_true(fabs(m / 96) < 0.5);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx),          cmocka_unit_test(test_cifar),
        cmocka_unit_test(test_shard),        cmocka_unit_test(test_fashion_mnist),
        cmocka_unit_test(test_aug_geometry), cmocka_unit_test(test_aug_colour),
        cmocka_unit_test(test_aug_blur),     cmocka_unit_test(test_aug_hue),     cmocka_unit_test(test_aug_presets),
        cmocka_unit_test(test_sampler),      cmocka_unit_test(test_loader_determinism),
        cmocka_unit_test(test_loader_eval_and_errors), cmocka_unit_test(test_pack),
        cmocka_unit_test(test_random_batch),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (tmpdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return rc;
}
