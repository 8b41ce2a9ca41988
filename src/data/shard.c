/* data/shard: the packed shard file (docs/shard-format.md): writer, reader by offset, verifier.
 * Little-endian on disk; the header and every per-sample record carry a CRC32 (zlib's). */
#include "data/shard_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* zlib's crc32 takes 32-bit lengths */
uint32_t data_crc32(uint32_t crc, const void *p, size_t n) {
    const unsigned char *b = p;
    while (n) {
        uInt c = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, b, c);
        b += c;
        n -= c;
    }
    return crc;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the shard format is little-endian; add byte swaps for this host"
#endif

#define SHARD_MAGIC "SLIMSHRD"
#define SHARD_VERSION 1u
#define SHARD_HEADER 128
#define SHARD_ALIGN 4096

typedef struct {
    char magic[8];
    uint32_t version, header_bytes;
    uint64_t n;
    uint32_t c, h, w, nclasses;
    uint64_t names_offset, names_bytes, pixels_offset, labels_offset, crc_offset;
    uint32_t labels_crc, names_crc;
    uint8_t reserved[36];
    uint32_t header_crc; /* CRC32 of bytes [0, 124) */
} shard_header;
_Static_assert(sizeof(shard_header) == SHARD_HEADER, "shard header is 128 bytes");

struct data_shard {
    int fd;
    int64_t n, img_bytes;
    uint64_t pixels_offset;
    uint32_t *crcs;
    char path[512];
};

struct data_shard_writer {
    int fd;
    shard_header hd;
    int32_t *labels;
    uint32_t *crcs;
    atomic_int_fast64_t written;
    char path[512], tmp[530];
};

static uint32_t crc_sample(int32_t label, const uint8_t *px, int64_t bytes) {
    uint32_t c = (uint32_t)crc32(0L, (const Bytef *)&label, 4);
    /* zlib's length is uInt: feed large images in pieces */
    for (int64_t off = 0; off < bytes; off += 1 << 30) {
        int64_t m = bytes - off < (1 << 30) ? bytes - off : (1 << 30);
        c = (uint32_t)crc32(c, px + off, (uInt)m);
    }
    return c;
}

static sc_err pwrite_all(int fd, const void *buf, size_t len, uint64_t off, const char *path) {
    const uint8_t *p = buf;
    while (len) {
        ssize_t k = pwrite(fd, p, len, (off_t)off);
        if (k < 0) {
            if (errno == EINTR) continue;
            return sc_errorf(SC_ERR_IO, "%s: write failed at offset %llu (%s)", path, (unsigned long long)off,
                             strerror(errno));
        }
        p += k;
        len -= (size_t)k;
        off += (uint64_t)k;
    }
    return SC_OK;
}

/* Reads exactly len bytes; a short read is a truncated file. */
static sc_err pread_all(int fd, void *buf, size_t len, uint64_t off, const char *path, const char *what) {
    uint8_t *p = buf;
    size_t want = len;
    while (len) {
        ssize_t k = pread(fd, p, len, (off_t)off);
        if (k < 0) {
            if (errno == EINTR) continue;
            return sc_errorf(SC_ERR_IO, "%s: read of %s failed (%s)", path, what, strerror(errno));
        }
        if (k == 0)
            return sc_errorf(SC_ERR_FORMAT, "%s: truncated: %s needs %zu bytes at offset %llu, file ends after %zu",
                             path, what, want, (unsigned long long)(off - (want - len)), want - len);
        p += k;
        len -= (size_t)k;
        off += (uint64_t)k;
    }
    return SC_OK;
}

sc_err data_shard_writer_open(const char *path, int64_t n, int c, int h, int w, int nclasses,
                              const char *const *class_names, data_shard_writer **out) {
    *out = NULL;
    if (n <= 0 || c <= 0 || c > 4 || h <= 0 || w <= 0 || nclasses <= 0)
        return sc_errorf(SC_ERR_ARG, "%s: bad shard shape n=%lld c=%d h=%d w=%d nclasses=%d", path, (long long)n, c,
                         h, w, nclasses);
    data_shard_writer *wr = calloc(1, sizeof *wr);
    snprintf(wr->path, sizeof wr->path, "%s", path);
    snprintf(wr->tmp, sizeof wr->tmp, "%s.tmp", path); /* renamed on close: a partial file never looks done */
    wr->fd = open(wr->tmp, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (wr->fd < 0) {
        sc_err e = sc_errorf(SC_ERR_IO, "%s: cannot create (%s)", wr->tmp, strerror(errno));
        free(wr);
        return e;
    }
    shard_header *hd = &wr->hd;
    memcpy(hd->magic, SHARD_MAGIC, 8);
    hd->version = SHARD_VERSION;
    hd->header_bytes = SHARD_HEADER;
    hd->n = (uint64_t)n;
    hd->c = (uint32_t)c;
    hd->h = (uint32_t)h;
    hd->w = (uint32_t)w;
    hd->nclasses = (uint32_t)nclasses;
    /* class names: NUL-terminated strings, one per class */
    size_t nb = 0;
    for (int k = 0; k < nclasses; k++) nb += (class_names ? strlen(class_names[k]) : 0) + 1;
    char *names = calloc(1, nb);
    size_t at = 0;
    for (int k = 0; k < nclasses; k++) {
        size_t l = class_names ? strlen(class_names[k]) : 0;
        if (l) memcpy(names + at, class_names[k], l);
        at += l + 1;
    }
    hd->names_offset = SHARD_HEADER;
    hd->names_bytes = nb;
    hd->names_crc = (uint32_t)crc32(0L, (const Bytef *)names, (uInt)nb);
    hd->pixels_offset = (SHARD_HEADER + nb + SHARD_ALIGN - 1) / SHARD_ALIGN * SHARD_ALIGN;
    uint64_t img = (uint64_t)c * h * w;
    hd->labels_offset = hd->pixels_offset + (uint64_t)n * img;
    hd->crc_offset = hd->labels_offset + 4 * (uint64_t)n;
    sc_err e = pwrite_all(wr->fd, names, nb, SHARD_HEADER, wr->tmp);
    free(names);
    if (e) { close(wr->fd); unlink(wr->tmp); free(wr); return e; }
    wr->labels = calloc((size_t)n, 4);
    wr->crcs = calloc((size_t)n, 4);
    atomic_init(&wr->written, 0);
    *out = wr;
    return SC_OK;
}

sc_err data_shard_writer_put(data_shard_writer *wr, int64_t i, int32_t label, const uint8_t *pixels) {
    const shard_header *hd = &wr->hd;
    if (i < 0 || (uint64_t)i >= hd->n)
        return sc_errorf(SC_ERR_ARG, "%s: sample %lld out of range [0, %llu)", wr->tmp, (long long)i,
                         (unsigned long long)hd->n);
    if (label < 0 || (uint32_t)label >= hd->nclasses)
        return sc_errorf(SC_ERR_ARG, "%s: sample %lld label %d out of range [0, %u)", wr->tmp, (long long)i, label,
                         hd->nclasses);
    int64_t img = (int64_t)hd->c * hd->h * hd->w;
    SC_TRY(pwrite_all(wr->fd, pixels, (size_t)img, hd->pixels_offset + (uint64_t)i * img, wr->tmp));
    wr->labels[i] = label;
    wr->crcs[i] = crc_sample(label, pixels, img);
    atomic_fetch_add(&wr->written, 1);
    return SC_OK;
}

sc_err data_shard_writer_close(data_shard_writer *wr) {
    shard_header *hd = &wr->hd;
    sc_err e = SC_OK;
    int64_t got = atomic_load(&wr->written);
    if ((uint64_t)got != hd->n)
        e = sc_errorf(SC_ERR_ARG, "%s: %lld of %llu samples written", wr->tmp, (long long)got,
                      (unsigned long long)hd->n);
    if (!e) {
        hd->labels_crc = (uint32_t)crc32(0L, (const Bytef *)wr->labels, (uInt)(4 * hd->n));
        hd->header_crc = (uint32_t)crc32(0L, (const Bytef *)hd, offsetof(shard_header, header_crc));
        e = pwrite_all(wr->fd, wr->labels, 4 * hd->n, hd->labels_offset, wr->tmp);
        if (!e) e = pwrite_all(wr->fd, wr->crcs, 4 * hd->n, hd->crc_offset, wr->tmp);
        if (!e) e = pwrite_all(wr->fd, hd, SHARD_HEADER, 0, wr->tmp);
    }
    if (close(wr->fd) != 0 && !e) e = sc_errorf(SC_ERR_IO, "%s: close failed (%s)", wr->tmp, strerror(errno));
    if (!e && rename(wr->tmp, wr->path) != 0)
        e = sc_errorf(SC_ERR_IO, "%s: cannot rename to %s (%s)", wr->tmp, wr->path, strerror(errno));
    if (e) unlink(wr->tmp);
    free(wr->labels);
    free(wr->crcs);
    free(wr);
    return e;
}

sc_err data_shard_write(const char *path, const data_set *s) {
    data_shard_writer *wr;
    SC_TRY(data_shard_writer_open(path, s->n, s->c, s->h, s->w, s->nclasses, (const char *const *)s->class_names,
                                  &wr));
    uint8_t *tmp = malloc((size_t)data_image_bytes(s));
    sc_err e = SC_OK;
    for (int64_t i = 0; i < s->n && !e; i++) {
        const uint8_t *img;
        e = data_get_image(s, i, tmp, &img);
        if (!e) e = data_shard_writer_put(wr, i, s->labels[i], img);
    }
    free(tmp);
    if (e) {
        close(wr->fd);
        unlink(wr->tmp);
        free(wr->labels);
        free(wr->crcs);
        free(wr);
        return e;
    }
    return data_shard_writer_close(wr);
}

/* Header, names, labels, CRC table: read and checked. */
static sc_err shard_open(const char *path, data_shard **out, shard_header *hd, int32_t **labels, char ***names) {
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return sc_errorf(SC_ERR_IO, "%s: cannot open shard (%s)", path, strerror(errno));
    struct stat st;
    fstat(fd, &st);
    sc_err e = SC_OK;
    if (st.st_size < SHARD_HEADER) {
        e = sc_errorf(SC_ERR_FORMAT, "%s: truncated: %lld bytes, a shard header alone is %d", path,
                      (long long)st.st_size, SHARD_HEADER);
        goto fail;
    }
    if ((e = pread_all(fd, hd, SHARD_HEADER, 0, path, "the header"))) goto fail;
    if (memcmp(hd->magic, SHARD_MAGIC, 8) != 0) {
        char m[9];
        for (int k = 0; k < 8; k++) m[k] = (hd->magic[k] >= 32 && hd->magic[k] < 127) ? hd->magic[k] : '?';
        m[8] = 0;
        e = sc_errorf(SC_ERR_FORMAT, "%s: not a slimclr shard: magic '%s', expected '%s'", path, m, SHARD_MAGIC);
        goto fail;
    }
    if (hd->version != SHARD_VERSION) {
        e = sc_errorf(SC_ERR_FORMAT, "%s: shard version %u, expected %u", path, hd->version, SHARD_VERSION);
        goto fail;
    }
    uint32_t hc = (uint32_t)crc32(0L, (const Bytef *)hd, offsetof(shard_header, header_crc));
    if (hc != hd->header_crc) {
        e = sc_errorf(SC_ERR_FORMAT, "%s: header CRC 0x%08x, expected 0x%08x (corrupt header)", path, hc,
                      hd->header_crc);
        goto fail;
    }
    uint64_t img = (uint64_t)hd->c * hd->h * hd->w;
    if (hd->n == 0 || hd->c == 0 || hd->c > 4 || hd->h == 0 || hd->w == 0 || hd->nclasses == 0 ||
        hd->labels_offset != hd->pixels_offset + hd->n * img || hd->crc_offset != hd->labels_offset + 4 * hd->n) {
        e = sc_errorf(SC_ERR_FORMAT, "%s: inconsistent header (n=%llu c=%u h=%u w=%u nclasses=%u)", path,
                      (unsigned long long)hd->n, hd->c, hd->h, hd->w, hd->nclasses);
        goto fail;
    }
    uint64_t expect = hd->crc_offset + 4 * hd->n;
    if ((uint64_t)st.st_size != expect) {
        e = sc_errorf(SC_ERR_FORMAT, "%s: %s: file is %lld bytes, the header (n=%llu, %ux%ux%u) says %llu", path,
                      (uint64_t)st.st_size < expect ? "truncated" : "trailing data", (long long)st.st_size,
                      (unsigned long long)hd->n, hd->c, hd->h, hd->w, (unsigned long long)expect);
        goto fail;
    }
    data_shard *sh = calloc(1, sizeof *sh);
    sh->fd = fd;
    sh->n = (int64_t)hd->n;
    sh->img_bytes = (int64_t)img;
    sh->pixels_offset = hd->pixels_offset;
    snprintf(sh->path, sizeof sh->path, "%s", path);
    sh->crcs = malloc(4 * hd->n);
    int32_t *lab = sc_calloc_n(int32_t, hd->n);
    char *nb = malloc(hd->names_bytes + 1);
    if ((e = pread_all(fd, lab, 4 * hd->n, hd->labels_offset, path, "the labels")) ||
        (e = pread_all(fd, sh->crcs, 4 * hd->n, hd->crc_offset, path, "the CRC table")) ||
        (e = pread_all(fd, nb, hd->names_bytes, hd->names_offset, path, "the class names"))) {
        free(nb);
        sc_free(lab);
        sh->fd = -1;
        data_shard_close(sh);
        goto fail;
    }
    uint32_t lc = (uint32_t)crc32(0L, (const Bytef *)lab, (uInt)(4 * hd->n));
    uint32_t nc = (uint32_t)crc32(0L, (const Bytef *)nb, (uInt)hd->names_bytes);
    int64_t bad = -1;
    for (uint64_t i = 0; i < hd->n && bad < 0; i++)
        if (lab[i] < 0 || (uint32_t)lab[i] >= hd->nclasses) bad = (int64_t)i;
    if (lc != hd->labels_crc || nc != hd->names_crc || bad >= 0) {
        if (bad >= 0)
            e = sc_errorf(SC_ERR_FORMAT, "%s: sample %lld has label %d, expected [0, %u)", path, (long long)bad,
                          lab[bad], hd->nclasses);
        else
            e = sc_errorf(SC_ERR_FORMAT, "%s: %s CRC 0x%08x, expected 0x%08x (corrupt file)", path,
                          lc != hd->labels_crc ? "labels" : "class names", lc != hd->labels_crc ? lc : nc,
                          lc != hd->labels_crc ? hd->labels_crc : hd->names_crc);
        free(nb);
        sc_free(lab);
        sh->fd = -1;
        data_shard_close(sh);
        goto fail;
    }
    nb[hd->names_bytes] = 0;
    char **nm = calloc(hd->nclasses, sizeof *nm);
    size_t at = 0;
    for (uint32_t k = 0; k < hd->nclasses; k++) {
        if (at >= hd->names_bytes) { nm[k] = strdup(""); continue; }
        nm[k] = strdup(nb + at);
        at += strlen(nb + at) + 1;
    }
    free(nb);
    *labels = lab;
    *names = nm;
    *out = sh;
    return SC_OK;
fail:
    close(fd);
    return e;
}

sc_err data_shard_read(const data_shard *sh, int64_t i, int32_t label, uint8_t *dst) {
    char what[64];
    snprintf(what, sizeof what, "sample %lld", (long long)i);
    SC_TRY(pread_all(sh->fd, dst, (size_t)sh->img_bytes, sh->pixels_offset + (uint64_t)i * sh->img_bytes, sh->path,
                     what));
    uint32_t c = crc_sample(label, dst, sh->img_bytes);
    if (c != sh->crcs[i])
        return sc_errorf(SC_ERR_FORMAT, "%s: sample %lld CRC 0x%08x, expected 0x%08x (corrupt data)", sh->path,
                         (long long)i, c, sh->crcs[i]);
    return SC_OK;
}

void data_shard_close(data_shard *sh) {
    if (!sh) return;
    if (sh->fd >= 0) close(sh->fd);
    free(sh->crcs);
    free(sh);
}

sc_err data_read_shard(const char *path, int in_memory, data_set *out) {
    memset(out, 0, sizeof *out);
    shard_header hd;
    data_shard *sh;
    SC_TRY(shard_open(path, &sh, &hd, &out->labels, &out->class_names));
    out->n = (int64_t)hd.n;
    out->c = (int)hd.c;
    out->h = (int)hd.h;
    out->w = (int)hd.w;
    out->nclasses = (int)hd.nclasses;
    out->shard = sh;
    snprintf(out->source, sizeof out->source, "%s", path);
    if (in_memory) {
        uint8_t *px = sc_alloc((size_t)(out->n * sh->img_bytes));
        for (int64_t i = 0; i < out->n; i++) {
            sc_err e = data_shard_read(sh, i, out->labels[i], px + i * sh->img_bytes);
            if (e) { sc_free(px); data_set_free(out); return e; }
        }
        out->pixels = px;
    }
    return SC_OK;
}

sc_err data_shard_verify(const char *path) {
    data_set s;
    SC_TRY(data_read_shard(path, 0, &s));
    uint8_t *tmp = malloc((size_t)data_image_bytes(&s));
    sc_err e = SC_OK;
    for (int64_t i = 0; i < s.n && !e; i++) e = data_shard_read(s.shard, i, s.labels[i], tmp);
    free(tmp);
    data_set_free(&s);
    return e;
}
