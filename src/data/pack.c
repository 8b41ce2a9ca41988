/* data/pack: `slimclr pack` — a folder of class folders of JPEGs into one packed shard. */
#include "data/data.h"
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jpeglib.h>
#include <math.h>
#include <omp.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    struct jpeg_error_mgr mgr;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_error_exit(j_common_ptr ci) {
    jpeg_err *e = (jpeg_err *)ci->err;
    (*ci->err->format_message)(ci, e->msg);
    longjmp(e->jb, 1);
}
static void jpeg_quiet(j_common_ptr ci) { (void)ci; } /* warnings (e.g. extraneous bytes) are not fatal */

sc_err data_jpeg_decode(const char *path, uint8_t **rgb, int *h, int *w) {
    *rgb = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return sc_errorf(SC_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    struct jpeg_decompress_struct ci;
    jpeg_err je;
    ci.err = jpeg_std_error(&je.mgr);
    je.mgr.error_exit = jpeg_error_exit;
    je.mgr.output_message = jpeg_quiet;
    uint8_t *volatile buf = NULL;
    if (setjmp(je.jb)) {
        jpeg_destroy_decompress(&ci);
        fclose(f);
        free(buf);
        return sc_errorf(SC_ERR_FORMAT, "%s: not a decodable JPEG (%s)", path, je.msg);
    }
    jpeg_create_decompress(&ci);
    jpeg_stdio_src(&ci, f);
    jpeg_read_header(&ci, TRUE);
    ci.out_color_space = JCS_RGB; /* libjpeg-turbo expands grayscale to RGB */
    jpeg_start_decompress(&ci);
    if (ci.output_components != 3) {
        snprintf(je.msg, sizeof je.msg, "%d output components, expected 3 (CMYK is not supported)",
                 ci.output_components);
        longjmp(je.jb, 1);
    }
    int H = (int)ci.output_height, W = (int)ci.output_width;
    buf = malloc((size_t)H * W * 3);
    while (ci.output_scanline < ci.output_height) {
        JSAMPROW row = buf + (size_t)ci.output_scanline * W * 3;
        jpeg_read_scanlines(&ci, &row, 1);
    }
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    fclose(f);
    *rgb = buf;
    *h = H;
    *w = W;
    return SC_OK;
}

/* Antialiased bilinear taps (PIL's resample: triangle filter widened by the downscale factor) for
 * output pixels [0, out) at offset `off` in a resized axis of length `full` from `in` source pixels. */
typedef struct {
    int *start, *count, maxk;
    float *wt;
} taps;

static void make_taps(int in, int full, int off, int out, taps *t) {
    double scale = (double)in / full, fs = scale > 1 ? scale : 1, support = fs;
    t->maxk = (int)ceil(support) * 2 + 2;
    t->start = malloc(sizeof(int) * out);
    t->count = malloc(sizeof(int) * out);
    t->wt = calloc((size_t)out * t->maxk, sizeof(float));
    for (int o = 0; o < out; o++) {
        double center = (o + off + 0.5) * scale;
        int lo = (int)floor(center - support), hi = (int)ceil(center + support);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        if (hi - lo > t->maxk) hi = lo + t->maxk;
        double sum = 0;
        float *w = t->wt + (size_t)o * t->maxk;
        for (int x = lo; x < hi; x++) {
            double v = 1.0 - fabs((x + 0.5 - center) / fs);
            w[x - lo] = (float)(v > 0 ? v : 0);
            sum += w[x - lo];
        }
        if (sum <= 0) { /* cannot happen for in >= 1, but keep a valid tap */
            int x = (int)center < in ? (int)center : in - 1;
            lo = x;
            hi = x + 1;
            w[0] = 1;
            sum = 1;
        }
        for (int x = 0; x < hi - lo; x++) w[x] = (float)(w[x] / sum);
        t->start[o] = lo;
        t->count[o] = hi - lo;
    }
}

static void free_taps(taps *t) {
    free(t->start);
    free(t->count);
    free(t->wt);
}

/* RGB HWC (h x w) -> CHW S x S: shorter side to S, centre crop (torchvision Resize + CenterCrop). */
static void resize_crop(const uint8_t *rgb, int h, int w, int S, uint8_t *out) {
    int rh, rw;
    if (h <= w) { rh = S; rw = (int)((double)w * S / h + 0.5); }
    else { rw = S; rh = (int)((double)h * S / w + 0.5); }
    if (rw < S) rw = S;
    if (rh < S) rh = S;
    int top = (int)lround((rh - S) / 2.0), left = (int)lround((rw - S) / 2.0);
    taps ty, tx;
    make_taps(h, rh, top, S, &ty);
    make_taps(w, rw, left, S, &tx);
    float *tmp = calloc((size_t)S * w * 3, sizeof(float)); /* vertical pass: S rows of w*3 */
    for (int oy = 0; oy < S; oy++) {
        float *d = tmp + (size_t)oy * w * 3;
        const float *wy = ty.wt + (size_t)oy * ty.maxk;
        for (int k = 0; k < ty.count[oy]; k++) {
            const uint8_t *s = rgb + (size_t)(ty.start[oy] + k) * w * 3;
            float wv = wy[k];
            for (int x = 0; x < w * 3; x++) d[x] += wv * (float)s[x];
        }
    }
    for (int oy = 0; oy < S; oy++) {
        const float *srow = tmp + (size_t)oy * w * 3;
        for (int ox = 0; ox < S; ox++) {
            const float *wx = tx.wt + (size_t)ox * tx.maxk;
            float acc[3] = {0, 0, 0};
            for (int k = 0; k < tx.count[ox]; k++) {
                const float *p = srow + (size_t)(tx.start[ox] + k) * 3;
                acc[0] += wx[k] * p[0];
                acc[1] += wx[k] * p[1];
                acc[2] += wx[k] * p[2];
            }
            for (int c = 0; c < 3; c++) {
                float v = acc[c] + 0.5f;
                out[(size_t)c * S * S + (size_t)oy * S + ox] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
            }
        }
    }
    free(tmp);
    free_taps(&ty);
    free_taps(&tx);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int is_jpeg_name(const char *n) {
    const char *dot = strrchr(n, '.');
    if (!dot) return 0;
    char ext[8] = {0};
    for (int k = 0; k < 7 && dot[1 + k]; k++) ext[k] = (char)tolower((unsigned char)dot[1 + k]);
    return !strcmp(ext, "jpg") || !strcmp(ext, "jpeg");
}

/* Sorted names in `dir` that are directories (want_dir) or JPEG files. */
static sc_err list_dir(const char *dir, int want_dir, char ***names, int *count) {
    DIR *d = opendir(dir);
    if (!d) return sc_errorf(SC_ERR_IO, "%s: cannot open folder (%s)", dir, strerror(errno));
    int cap = 64, n = 0;
    char **v = malloc(sizeof(char *) * cap);
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) != 0) continue;
        if (want_dir ? !S_ISDIR(st.st_mode) : !(S_ISREG(st.st_mode) && is_jpeg_name(e->d_name))) continue;
        if (n == cap) v = realloc(v, sizeof(char *) * (cap *= 2));
        v[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(v, (size_t)n, sizeof(char *), cmp_str);
    *names = v;
    *count = n;
    return SC_OK;
}

static void free_names(char **v, int n) {
    for (int k = 0; k < n; k++) free(v[k]);
    free(v);
}

sc_err data_pack(const char *src_dir, int size, const char *out_path, int threads, int64_t *n_out) {
    if (size < 8 || size > 4096) return sc_errorf(SC_ERR_ARG, "pack --size %d: expected 8..4096", size);
    char **classes;
    int nc;
    SC_TRY(list_dir(src_dir, 1, &classes, &nc));
    if (nc == 0) {
        free(classes);
        return sc_errorf(SC_ERR_ARG, "%s: no class sub-folders (expected SRC_DIR/<class>/*.jpg)", src_dir);
    }
    int64_t n = 0, cap = 1024;
    char **paths = malloc(sizeof(char *) * cap);
    int32_t *labels = malloc(sizeof(int32_t) * cap);
    sc_err e = SC_OK;
    for (int k = 0; k < nc && !e; k++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", src_dir, classes[k]);
        char **files;
        int nf;
        if ((e = list_dir(dir, 0, &files, &nf))) break;
        for (int f = 0; f < nf; f++) {
            if (n == cap) {
                cap *= 2;
                paths = realloc(paths, sizeof(char *) * cap);
                labels = realloc(labels, sizeof(int32_t) * cap);
            }
            char p[8192];
            snprintf(p, sizeof p, "%s/%s", dir, files[f]);
            paths[n] = strdup(p);
            labels[n++] = k;
        }
        free_names(files, nf);
    }
    if (!e && n == 0) e = sc_errorf(SC_ERR_ARG, "%s: no .jpg/.jpeg files in its %d class folders", src_dir, nc);
    data_shard_writer *wr = NULL;
    if (!e) e = data_shard_writer_open(out_path, n, 3, size, size, nc, (const char *const *)classes, &wr);
    if (!e) {
        sc_err first = SC_OK;
        int stop = 0;
        char first_msg[1024] = "";
        if (threads <= 0) threads = omp_get_max_threads();
#pragma omp parallel num_threads(threads)
        {
            uint8_t *img = malloc((size_t)3 * size * size);
#pragma omp for schedule(dynamic, 4)
            for (int64_t i = 0; i < n; i++) {
                if (__atomic_load_n(&stop, __ATOMIC_RELAXED)) continue; /* skip the rest after an error */
                uint8_t *rgb;
                int h, w;
                sc_err ie = data_jpeg_decode(paths[i], &rgb, &h, &w);
                if (!ie) {
                    resize_crop(rgb, h, w, size, img);
                    free(rgb);
                    ie = data_shard_writer_put(wr, i, labels[i], img);
                }
                if (ie) {
#pragma omp critical(pack_err)
                    if (!first) {
                        first = ie;
                        __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
                        snprintf(first_msg, sizeof first_msg, "%s", sc_last_error());
                    }
                }
            }
            free(img);
        }
        if (first) {
            /* close() sees the missing samples, removes the partial file; report the real cause */
            data_shard_writer_close(wr);
            e = sc_errorf(first, "%s", first_msg);
        } else {
            e = data_shard_writer_close(wr);
        }
    }
    for (int64_t i = 0; i < n; i++) free(paths[i]);
    free(paths);
    free(labels);
    free_names(classes, nc);
    if (!e && n_out) *n_out = n;
    return e;
}
