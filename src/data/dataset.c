/* data/dataset: IDX and CIFAR readers, the format dispatch, image access and benchmark input. */
#include "data/data.h"
#include "core/rng.h"
#include "data/shard_internal.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Whole (optionally gzip'd) file into a malloc'd buffer. */
static sc_err read_gz_file(const char *path, uint8_t **buf, size_t *len) {
    gzFile f = gzopen(path, "rb");
    if (!f) return sc_errorf(SC_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    size_t cap = 1 << 20, n = 0;
    uint8_t *b = malloc(cap);
    if (!b) { gzclose(f); return sc_errorf(SC_ERR_NOMEM, "%s: out of memory", path); }
    for (;;) {
        if (n == cap) {
            cap *= 2;
            uint8_t *nb = realloc(b, cap);
            if (!nb) { free(b); gzclose(f); return sc_errorf(SC_ERR_NOMEM, "%s: out of memory", path); }
            b = nb;
        }
        int got = gzread(f, b + n, (unsigned)((cap - n) > (1u << 30) ? (1u << 30) : (cap - n)));
        if (got < 0) {
            int code;
            const char *msg = gzerror(f, &code);
            sc_err e = sc_errorf(SC_ERR_FORMAT, "%s: corrupt or truncated gzip data after %zu bytes (%s)", path,
                                 n, msg);
            free(b);
            gzclose(f);
            return e;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    /* zlib reports a gzip stream cut short only through gzerror (Z_BUF_ERROR) at the end */
    int code = Z_OK;
    const char *msg = gzerror(f, &code);
    if (code != Z_OK && code != Z_STREAM_END) {
        sc_err e = sc_errorf(SC_ERR_FORMAT, "%s: truncated gzip stream after %zu bytes (%s)", path, n, msg);
        free(b);
        gzclose(f);
        return e;
    }
    gzclose(f);
    *buf = b;
    *len = n;
    return SC_OK;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* path.gz if present, else path (plain IDX); the error names the .gz form. */
static void idx_path(char *dst, size_t cap, const char *dir, const char *prefix, const char *kind) {
    snprintf(dst, cap, "%s/%s-%s-ubyte.gz", dir, prefix, kind);
    if (!file_exists(dst)) {
        char plain[600];
        snprintf(plain, sizeof plain, "%s/%s-%s-ubyte", dir, prefix, kind);
        struct stat st; /* a directory of that name is named in the error, not a missing .gz */
        if (file_exists(plain) || (stat(plain, &st) == 0 && stat(dst, &st) != 0)) snprintf(dst, cap, "%s", plain);
    }
}

sc_err data_read_idx(const char *dir, const char *split, data_set *out) {
    memset(out, 0, sizeof *out);
    const char *prefix;
    if (!strcmp(split, "train")) prefix = "train";
    else if (!strcmp(split, "test")) prefix = "t10k";
    else return sc_errorf(SC_ERR_ARG, "IDX split '%s': expected train or test", split);
    char ip[600], lp[600];
    idx_path(ip, sizeof ip, dir, prefix, "images-idx3");
    idx_path(lp, sizeof lp, dir, prefix, "labels-idx1");
    const char *pp[2] = {ip, lp}, *what[2] = {"images", "labels"};
    for (int k = 0; k < 2; k++) {
        struct stat st;
        if (file_exists(pp[k])) continue;
        if (stat(pp[k], &st) == 0)
            return sc_errorf(SC_ERR_IO, "%s: is a %s, expected the IDX %s file of split %s", pp[k],
                             S_ISDIR(st.st_mode) ? "directory" : "special file", what[k], split);
        return sc_errorf(SC_ERR_IO, "%s: no such file (IDX %s for split %s)", pp[k], what[k], split);
    }
    uint8_t *ib = NULL, *lb = NULL;
    size_t il = 0, ll = 0;
    sc_err e = read_gz_file(ip, &ib, &il);
    if (e) return e;
    if ((e = read_gz_file(lp, &lb, &ll))) { free(ib); return e; }
    if (il < 16 || ll < 8) { /* an empty or cut file: say that, not "bad magic 0x00000000" */
        e = sc_errorf(SC_ERR_FORMAT, "%s: %s (%zu bytes), shorter than an IDX header", il < 16 ? ip : lp,
                      (il < 16 ? il : ll) == 0 ? "empty file" : "file too short", il < 16 ? il : ll);
        goto fail;
    }
    if (be32(ib) != 0x00000803u) {
        e = sc_errorf(SC_ERR_FORMAT, "%s: bad IDX magic: expected 0x00000803 (ubyte, 3 dims), found 0x%08x", ip,
                      il >= 4 ? be32(ib) : 0);
        goto fail;
    }
    if (ll < 8 || be32(lb) != 0x00000801u) {
        e = sc_errorf(SC_ERR_FORMAT, "%s: bad IDX magic: expected 0x00000801 (ubyte, 1 dim), found 0x%08x", lp,
                      ll >= 4 ? be32(lb) : 0);
        goto fail;
    }
    uint32_t n = be32(ib + 4), h = be32(ib + 8), w = be32(ib + 12), nl = be32(lb + 4);
    if (n != nl) {
        e = sc_errorf(SC_ERR_FORMAT, "%s: %u labels, but %s holds %u images", lp, nl, ip, n);
        goto fail;
    }
    if (h == 0 || w == 0 || h > 4096 || w > 4096) {
        e = sc_errorf(SC_ERR_FORMAT, "%s: image size %ux%u out of range", ip, h, w);
        goto fail;
    }
    size_t need = (size_t)n * h * w;
    if (il - 16 != need) {
        e = sc_errorf(SC_ERR_FORMAT, "%s: expected %zu bytes of pixels (%u images of %ux%u), found %zu", ip, need, n,
                      h, w, il - 16);
        goto fail;
    }
    if (ll - 8 != n) {
        e = sc_errorf(SC_ERR_FORMAT, "%s: expected %u label bytes, found %zu", lp, n, ll - 8);
        goto fail;
    }
    out->n = n;
    out->c = 1;
    out->h = (int)h;
    out->w = (int)w;
    out->pixels = sc_alloc(need);
    memcpy(out->pixels, ib + 16, need);
    out->labels = sc_calloc_n(int32_t, n);
    int maxl = 0;
    for (uint32_t i = 0; i < n; i++) {
        out->labels[i] = lb[8 + i];
        if (lb[8 + i] > maxl) maxl = lb[8 + i];
    }
    out->nclasses = maxl + 1;
    snprintf(out->source, sizeof out->source, "%.500s", ip);
    free(ib);
    free(lb);
    return SC_OK;
fail:
    free(ib);
    free(lb);
    return e;
}

sc_err data_read_cifar(const char *dir, int kind, const char *split, data_set *out) {
    memset(out, 0, sizeof *out);
    if (kind != 10 && kind != 100) return sc_errorf(SC_ERR_ARG, "CIFAR kind %d: expected 10 or 100", kind);
    int train = !strcmp(split, "train");
    if (!train && strcmp(split, "test"))
        return sc_errorf(SC_ERR_ARG, "CIFAR split '%s': expected train or test", split);
    char files[5][600];
    int nf = 0;
    if (kind == 10) {
        if (train)
            for (int k = 1; k <= 5; k++) snprintf(files[nf++], 600, "%s/data_batch_%d.bin", dir, k);
        else
            snprintf(files[nf++], 600, "%s/test_batch.bin", dir);
    } else {
        snprintf(files[nf++], 600, "%s/%s.bin", dir, train ? "train" : "test");
    }
    const int lab_bytes = kind == 10 ? 1 : 2, rec = lab_bytes + 3072;
    int64_t sizes[5], total = 0;
    for (int k = 0; k < nf; k++) {
        struct stat st;
        if (stat(files[k], &st) != 0)
            return sc_errorf(SC_ERR_IO, "%s: no such file (CIFAR-%d %s split)", files[k], kind, split);
        if (st.st_size == 0 || st.st_size % rec != 0)
            return sc_errorf(SC_ERR_FORMAT,
                             "%s: %lld bytes is not a whole number of %d-byte CIFAR-%d records (truncated?)",
                             files[k], (long long)st.st_size, rec, kind);
        sizes[k] = st.st_size / rec;
        total += sizes[k];
    }
    out->n = total;
    out->c = 3;
    out->h = out->w = 32;
    out->nclasses = kind;
    out->pixels = sc_alloc((size_t)total * 3072);
    out->labels = sc_calloc_n(int32_t, total);
    uint8_t *recbuf = malloc((size_t)rec * 1000);
    int64_t at = 0;
    for (int k = 0; k < nf; k++) {
        FILE *f = fopen(files[k], "rb");
        if (!f) { free(recbuf); data_set_free(out); return sc_errorf(SC_ERR_IO, "%s: cannot open (%s)", files[k], strerror(errno)); }
        for (int64_t done = 0; done < sizes[k];) {
            int64_t m = sizes[k] - done < 1000 ? sizes[k] - done : 1000;
            if (fread(recbuf, (size_t)rec, (size_t)m, f) != (size_t)m) {
                fclose(f);
                free(recbuf);
                data_set_free(out);
                return sc_errorf(SC_ERR_IO, "%s: short read at record %lld", files[k], (long long)done);
            }
            for (int64_t r = 0; r < m; r++) {
                const uint8_t *p = recbuf + r * rec;
                int lab = p[lab_bytes - 1]; /* CIFAR-100: fine label is the second byte */
                if (lab >= kind) {
                    fclose(f);
                    free(recbuf);
                    data_set_free(out);
                    return sc_errorf(SC_ERR_FORMAT, "%s: record %lld has label %d, expected < %d", files[k],
                                     (long long)(done + r), lab, kind);
                }
                out->labels[at] = lab;
                memcpy(out->pixels + at * 3072, p + lab_bytes, 3072);
                at++;
            }
            done += m;
        }
        fclose(f);
    }
    free(recbuf);
    snprintf(out->source, sizeof out->source, "%s", dir);
    return SC_OK;
}

sc_err data_open(const char *format, const char *path, const char *split, int in_memory, data_set *out) {
    if (!strcmp(format, "idx") || !strcmp(format, "fmnist") || !strcmp(format, "mnist") ||
        !strcmp(format, "fashion-mnist"))
        return data_read_idx(path, split, out);
    if (!strcmp(format, "cifar10")) return data_read_cifar(path, 10, split, out);
    if (!strcmp(format, "cifar100")) return data_read_cifar(path, 100, split, out);
    if (!strcmp(format, "shard")) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            char p[700];
            snprintf(p, sizeof p, "%s/%s.shard", path, split);
            return data_read_shard(p, in_memory, out);
        }
        return data_read_shard(path, in_memory, out);
    }
    memset(out, 0, sizeof *out);
    return sc_errorf(SC_ERR_CONFIG, "data format '%s': expected fmnist, mnist, idx, cifar10, cifar100 or shard",
                     format);
}

void data_set_free(data_set *s) {
    if (!s) return;
    sc_free(s->pixels);
    sc_free(s->labels);
    if (s->class_names) {
        for (int k = 0; k < s->nclasses; k++) free(s->class_names[k]);
        free(s->class_names);
    }
    if (s->shard) data_shard_close(s->shard);
    memset(s, 0, sizeof *s);
}

sc_err data_get_image(const data_set *s, int64_t i, uint8_t *scratch, const uint8_t **img) {
    if (i < 0 || i >= s->n)
        return sc_errorf(SC_ERR_ARG, "%s: sample %lld out of range [0, %lld)", s->source, (long long)i,
                         (long long)s->n);
    if (s->pixels) {
        *img = s->pixels + i * data_image_bytes(s);
        return SC_OK;
    }
    SC_TRY(data_shard_read(s->shard, i, s->labels[i], scratch));
    *img = scratch;
    return SC_OK;
}

void data_random_batch(float *x, int32_t *labels, int c, int b, int h, int w, int nclasses, uint64_t seed) {
    rng_stream r = rng_stream_make(seed, 0x5eed, 0, 0);
    size_t n = (size_t)c * b * h * w;
    for (size_t k = 0; k < n; k++) x[k] = rng_normal(&r);
    if (labels)
        for (int k = 0; k < b; k++) labels[k] = (int32_t)rng_below(&r, (uint64_t)(nclasses > 0 ? nclasses : 1));
}
