/* io/checkpoint: atomic writer, verifying reader, latest pointer and retention (docs/checkpoint-format.md). */
#include "io/checkpoint.h"
#include "data/data.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HDR_BYTES 256
#define DESC_BYTES 128
#define TRAILER_BYTES 16
#define ALIGN 64
#define BYTE_ORDER_MARK 0x01020304u
static const char MAGIC[8] = {'S', 'L', 'I', 'M', 'C', 'L', 'R', 0};
static const char END_MAGIC[8] = {'S', 'C', 'E', 'N', 'D', 0, 0, 0};

/* On-disk records (little-endian, as x86-64 and aarch64 store them natively). */
typedef struct {
    char magic[8];
    uint32_t version, byte_order;
    uint64_t file_size, config_hash, step;
    double epoch;
    uint32_t nsections, header_bytes;
    char signature[CKPT_SIG_MAX];
    uint8_t reserved[36];
    uint32_t crc; /* of the 252 bytes before it */
} disk_header;
typedef struct {
    char name[CKPT_NAME_MAX];
    uint32_t dtype, reserved0;
    uint64_t count, offset, nbytes;
    uint32_t data_crc;
    uint8_t reserved[24];
    uint32_t crc; /* of the 124 bytes before it */
} disk_desc;
typedef struct {
    char magic[8];
    uint32_t file_crc; /* of every byte before the trailer */
    uint32_t reserved;
} disk_trailer;
_Static_assert(sizeof(disk_header) == HDR_BYTES, "header layout");
_Static_assert(sizeof(disk_desc) == DESC_BYTES, "section descriptor layout");
_Static_assert(sizeof(disk_trailer) == TRAILER_BYTES, "trailer layout");

size_t ckpt_dtype_size(ckpt_dtype t) {
    static const size_t s[] = {1, 4, 8, 4, 8, 4, 8};
    return (t >= CKPT_U8 && t <= CKPT_F64) ? s[t] : 0;
}
const char *ckpt_dtype_name(ckpt_dtype t) {
    static const char *s[] = {"u8", "i32", "i64", "u32", "u64", "f32", "f64"};
    return (t >= CKPT_U8 && t <= CKPT_F64) ? s[t] : "?";
}

static uint32_t crc_update(uint32_t crc, const void *p, size_t n) { return data_crc32(crc, p, n); }

static uint64_t align_up(uint64_t x) { return (x + ALIGN - 1) & ~(uint64_t)(ALIGN - 1); }

/* ---------------- writer ---------------- */

typedef struct { int fd; uint32_t crc; uint64_t pos; } out_stream;

static int put(out_stream *o, const void *p, size_t n) {
    const char *b = p;
    o->crc = crc_update(o->crc, p, n);
    o->pos += n;
    while (n) {
        ssize_t w = write(o->fd, b, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (w == 0) { errno = EIO; return -1; }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int put_zeros(out_stream *o, size_t n) {
    static const char z[ALIGN];
    return put(o, z, n);
}

static void dir_of(const char *path, char *buf, size_t n) {
    const char *s = strrchr(path, '/');
    if (!s) snprintf(buf, n, ".");
    else if (s == path) snprintf(buf, n, "/");
    else snprintf(buf, n, "%.*s", (int)(s - path), path);
}

static int fsync_dir(const char *path) {
    char d[4096];
    dir_of(path, d, sizeof d);
    int fd = open(d, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int r = fsync(fd);
    /* some file systems refuse fsync on directories; the rename itself is still atomic there */
    if (r < 0 && (errno == EINVAL || errno == ENOTSUP)) r = 0;
    close(fd);
    return r;
}

/* Writes `bytes` (pieces) to path via path.tmp + rename. */
static sc_err atomic_write(const char *path, int (*emit)(out_stream *, void *), void *arg) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return sc_errorf(SC_ERR_ARG, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return sc_errorf(SC_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    out_stream o = {fd, 0, 0};
    const char *what = "write";
    int r = emit(&o, arg);
    if (r == 0) { what = "fsync"; r = fsync(fd); }
    int saved = errno;
    if (close(fd) < 0 && r == 0) { what = "close"; r = -1; saved = errno; }
    if (r == 0) {
        what = "rename";
        r = rename(tmp, path);
        saved = errno;
    }
    if (r != 0) {
        unlink(tmp);
        return sc_errorf(SC_ERR_IO, "%s: %s failed: %s (the previous files are untouched)", path, what,
                         strerror(saved));
    }
    if (fsync_dir(path) != 0) return sc_errorf(SC_ERR_IO, "%s: fsync of its directory failed: %s", path, strerror(errno));
    return SC_OK;
}

typedef struct {
    disk_header hdr;
    disk_desc *desc;
    const ckpt_section *secs;
    int n;
} ckpt_plan;

static int emit_ckpt(out_stream *o, void *arg) {
    ckpt_plan *p = arg;
    if (put(o, &p->hdr, sizeof p->hdr) || put(o, p->desc, sizeof(disk_desc) * (size_t)p->n)) return -1;
    for (int i = 0; i < p->n; i++) {
        if (put_zeros(o, (size_t)(p->desc[i].offset - o->pos))) return -1;
        if (put(o, p->secs[i].data, p->desc[i].nbytes)) return -1;
    }
    disk_trailer t = {{0}, 0, 0};
    memcpy(t.magic, END_MAGIC, 8);
    if (put_zeros(o, (size_t)(p->hdr.file_size - TRAILER_BYTES - o->pos))) return -1;
    t.file_crc = o->crc;
    return put(o, &t, sizeof t);
}

sc_err ckpt_write(const char *path, const ckpt_header *h, const ckpt_section *secs, int nsecs) {
    if (nsecs < 0 || (nsecs > 0 && !secs)) return sc_errorf(SC_ERR_ARG, "%s: bad section list", path);
    ckpt_plan p;
    memset(&p, 0, sizeof p);
    p.secs = secs;
    p.n = nsecs;
    p.desc = calloc((size_t)(nsecs ? nsecs : 1), sizeof(disk_desc));
    if (!p.desc) return sc_errorf(SC_ERR_NOMEM, "%s: out of memory", path);
    uint64_t off = HDR_BYTES + (uint64_t)nsecs * DESC_BYTES;
    for (int i = 0; i < nsecs; i++) {
        const ckpt_section *s = &secs[i];
        size_t es = ckpt_dtype_size(s->dtype);
        if (!s->name || !s->name[0] || strlen(s->name) >= CKPT_NAME_MAX || es == 0 || (s->count && !s->data)) {
            free(p.desc);
            return sc_errorf(SC_ERR_ARG, "%s: section %d (%s): bad name, dtype or data", path, i,
                             s->name ? s->name : "(null)");
        }
        for (int j = 0; j < i; j++)
            if (strcmp(secs[j].name, s->name) == 0) {
                free(p.desc);
                return sc_errorf(SC_ERR_ARG, "%s: section name %s used twice", path, s->name);
            }
        disk_desc *d = &p.desc[i];
        snprintf(d->name, sizeof d->name, "%s", s->name);
        d->dtype = (uint32_t)s->dtype;
        d->count = s->count;
        d->nbytes = (uint64_t)s->count * es;
        d->offset = align_up(off);
        d->data_crc = crc_update(0, s->data, d->nbytes);
        d->crc = crc_update(0, d, offsetof(disk_desc, crc));
        off = d->offset + d->nbytes;
    }
    disk_header *hd = &p.hdr;
    memcpy(hd->magic, MAGIC, 8);
    hd->version = CKPT_VERSION;
    hd->byte_order = BYTE_ORDER_MARK;
    hd->file_size = align_up(off) + TRAILER_BYTES;
    hd->config_hash = h->config_hash;
    hd->step = h->step;
    hd->epoch = h->epoch;
    hd->nsections = (uint32_t)nsecs;
    hd->header_bytes = HDR_BYTES;
    snprintf(hd->signature, sizeof hd->signature, "%s", h->signature);
    hd->crc = crc_update(0, hd, offsetof(disk_header, crc));
    sc_err e = atomic_write(path, emit_ckpt, &p);
    free(p.desc);
    return e;
}

/* ---------------- reader ---------------- */

struct ckpt_file {
    char path[4096];
    const uint8_t *map;
    size_t size;
    ckpt_header hdr;
    int n;
    const disk_desc *desc;
};

static sc_err bad(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static sc_err bad(const char *path, const char *fmt, ...) {
    char m[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    return sc_errorf(SC_ERR_FORMAT, "checkpoint %s: %s", path, m);
}

/* magic, byte order, version, header CRC, size: shared by ckpt_open and ckpt_read_header */
static sc_err check_header(const char *path, const disk_header *h, uint64_t actual) {
    if (actual < HDR_BYTES || memcmp(h->magic, MAGIC, 8) != 0) {
        if (actual < 8 || memcmp(h->magic, MAGIC, 8) != 0)
            return bad(path, "not a slimclr checkpoint (bad magic; expected \"SLIMCLR\")");
        return bad(path, "truncated: %llu bytes, shorter than the %d-byte header", (unsigned long long)actual,
                   HDR_BYTES);
    }
    if (h->byte_order != BYTE_ORDER_MARK) return bad(path, "written on a machine of the other byte order");
    if (h->version != CKPT_VERSION)
        return bad(path, "format version %u, this program reads version %d", h->version, CKPT_VERSION);
    if (crc_update(0, h, offsetof(disk_header, crc)) != h->crc)
        return bad(path, "header checksum mismatch: the file is corrupted");
    if (actual < h->file_size)
        return bad(path, "truncated: %llu bytes, the header says %llu (an interrupted copy?)",
                   (unsigned long long)actual, (unsigned long long)h->file_size);
    if (actual > h->file_size)
        return bad(path, "%llu bytes, the header says %llu (trailing data)", (unsigned long long)actual,
                   (unsigned long long)h->file_size);
    if (h->header_bytes != HDR_BYTES ||
        (uint64_t)h->nsections * DESC_BYTES + HDR_BYTES + TRAILER_BYTES > h->file_size)
        return bad(path, "inconsistent header (%u sections in %llu bytes)", h->nsections,
                   (unsigned long long)h->file_size);
    return SC_OK;
}

static void to_header(const disk_header *d, ckpt_header *h) {
    memset(h, 0, sizeof *h);
    h->config_hash = d->config_hash;
    h->step = d->step;
    h->epoch = d->epoch;
    memcpy(h->signature, d->signature, CKPT_SIG_MAX);
    h->signature[CKPT_SIG_MAX - 1] = 0;
}

sc_err ckpt_read_header(const char *path, ckpt_header *h) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sc_errorf(SC_ERR_IO, "checkpoint %s: cannot open: %s", path, strerror(errno));
    struct stat st;
    disk_header d;
    memset(&d, 0, sizeof d);
    if (fstat(fd, &st) < 0) { close(fd); return sc_errorf(SC_ERR_IO, "checkpoint %s: %s", path, strerror(errno)); }
    ssize_t r = pread(fd, &d, sizeof d, 0);
    close(fd);
    if (r < 0) return sc_errorf(SC_ERR_IO, "checkpoint %s: read failed: %s", path, strerror(errno));
    SC_TRY(check_header(path, &d, (uint64_t)st.st_size));
    to_header(&d, h);
    return SC_OK;
}

sc_err ckpt_find_latest_noted(const char *dir, char *path, size_t n, bool *found, char *note, size_t nn);

/* A user names a checkpoint the way the run directory shows it: a step-N.ckpt file, the `latest` pointer, the
 * checkpoints/ directory or the run directory. The last three resolve to the newest complete checkpoint. */
sc_err ckpt_resolve(const char *path, char *buf, size_t n) {
    struct stat st;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char dir[4096];
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(dir, sizeof dir, "%s/checkpoints", path);
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) snprintf(dir, sizeof dir, "%s", path);
    } else if (!strcmp(base, "latest")) {
        snprintf(dir, sizeof dir, "%.*s", base == path ? 1 : (int)(base - path - 1), base == path ? "." : path);
    } else {
        snprintf(buf, n, "%s", path);
        return SC_OK;
    }
    bool found = false;
    char note[1024];
    SC_TRY(ckpt_find_latest_noted(dir, buf, n, &found, note, sizeof note));
    if (!found) return sc_errorf(SC_ERR_IO, "checkpoint %s: no complete checkpoint in %s%s%s", path, dir,
                                 note[0] ? ": " : "", note);
    if (note[0]) sc_warn("checkpoint %s: %s", path, note);
    return SC_OK;
}

sc_err ckpt_open(const char *path_in, ckpt_file **out) {
    *out = NULL;
    char path[4096];
    SC_TRY(ckpt_resolve(path_in, path, sizeof path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sc_errorf(SC_ERR_IO, "checkpoint %s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) { close(fd); return sc_errorf(SC_ERR_IO, "checkpoint %s: %s", path, strerror(errno)); }
    size_t size = (size_t)st.st_size;
    if (size < HDR_BYTES) {
        disk_header d;
        memset(&d, 0, sizeof d);
        ssize_t r = pread(fd, &d, size, 0);
        close(fd);
        if (r < 0) return sc_errorf(SC_ERR_IO, "checkpoint %s: read failed: %s", path, strerror(errno));
        return check_header(path, &d, size);
    }
    const uint8_t *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return sc_errorf(SC_ERR_IO, "checkpoint %s: mmap failed: %s", path, strerror(errno));
    const disk_header *h = (const disk_header *)map;
    sc_err e = check_header(path, h, size);
    const disk_desc *desc = (const disk_desc *)(map + HDR_BYTES);
    const uint64_t data_lo = HDR_BYTES + (uint64_t)h->nsections * DESC_BYTES, data_hi = size - TRAILER_BYTES;
    for (uint32_t i = 0; e == SC_OK && i < h->nsections; i++) {
        const disk_desc *d = &desc[i];
        if (crc_update(0, d, offsetof(disk_desc, crc)) != d->crc) {
            e = bad(path, "section descriptor %u checksum mismatch: the file is corrupted", i);
            break;
        }
        char name[CKPT_NAME_MAX];
        snprintf(name, sizeof name, "%.*s", CKPT_NAME_MAX - 1, d->name);
        size_t es = ckpt_dtype_size((ckpt_dtype)d->dtype);
        if (es == 0 || d->nbytes != d->count * es || d->offset < data_lo || d->offset > data_hi ||
            d->nbytes > data_hi - d->offset)
            e = bad(path, "section %s: inconsistent dtype/size/offset", name);
        else if (crc_update(0, map + d->offset, d->nbytes) != d->data_crc)
            e = bad(path, "section %s: checksum mismatch (%llu bytes at offset %llu): the file is corrupted", name,
                    (unsigned long long)d->nbytes, (unsigned long long)d->offset);
    }
    if (e == SC_OK) {
        const disk_trailer *t = (const disk_trailer *)(map + size - TRAILER_BYTES);
        if (memcmp(t->magic, END_MAGIC, 8) != 0) e = bad(path, "missing end marker: the file is truncated or corrupted");
        else if (crc_update(0, map, size - TRAILER_BYTES) != t->file_crc)
            e = bad(path, "whole-file checksum mismatch: the file is corrupted");
    }
    if (e != SC_OK) {
        munmap((void *)map, size);
        return e;
    }
    ckpt_file *f = calloc(1, sizeof *f);
    if (!f) { munmap((void *)map, size); return sc_errorf(SC_ERR_NOMEM, "checkpoint %s: out of memory", path); }
    snprintf(f->path, sizeof f->path, "%s", path);
    f->map = map;
    f->size = size;
    to_header(h, &f->hdr);
    f->n = (int)h->nsections;
    f->desc = desc;
    *out = f;
    return SC_OK;
}

void ckpt_close(ckpt_file *f) {
    if (!f) return;
    munmap((void *)f->map, f->size);
    free(f);
}

const ckpt_header *ckpt_get_header(const ckpt_file *f) { return &f->hdr; }
const char *ckpt_path(const ckpt_file *f) { return f->path; }
int ckpt_nsections(const ckpt_file *f) { return f->n; }
const char *ckpt_section_name(const ckpt_file *f, int i) { return (i >= 0 && i < f->n) ? f->desc[i].name : NULL; }

const void *ckpt_find(const ckpt_file *f, const char *name, ckpt_dtype *dtype, size_t *count) {
    for (int i = 0; i < f->n; i++) {
        const disk_desc *d = &f->desc[i];
        if (strncmp(d->name, name, CKPT_NAME_MAX) != 0) continue;
        if (dtype) *dtype = (ckpt_dtype)d->dtype;
        if (count) *count = (size_t)d->count;
        return f->map + d->offset;
    }
    return NULL;
}

sc_err ckpt_read_section(const ckpt_file *f, const char *name, ckpt_dtype dtype, size_t count, void *dst) {
    ckpt_dtype t;
    size_t n;
    const void *p = ckpt_find(f, name, &t, &n);
    if (!p) return sc_errorf(SC_ERR_FORMAT, "checkpoint %s: no section %s", f->path, name);
    if (t != dtype || n != count)
        return sc_errorf(SC_ERR_FORMAT, "checkpoint %s: section %s holds %zu %s, expected %zu %s", f->path, name, n,
                         ckpt_dtype_name(t), count, ckpt_dtype_name(dtype));
    memcpy(dst, p, n * ckpt_dtype_size(t));
    return SC_OK;
}

sc_err ckpt_check(const ckpt_file *f, const char *signature, uint64_t config_hash, const char *diff_hint) {
    if (strcmp(f->hdr.signature, signature) != 0)
        return sc_errorf(SC_ERR_MISMATCH, "checkpoint %s was written for %s, this config is %s", f->path,
                         f->hdr.signature, signature);
    if (f->hdr.config_hash != config_hash)
        return sc_errorf(SC_ERR_MISMATCH, "checkpoint %s was written with another configuration (config hash "
                         "%016llx, this config %016llx)%s%s", f->path, (unsigned long long)f->hdr.config_hash,
                         (unsigned long long)config_hash, diff_hint && diff_hint[0] ? ": " : "",
                         diff_hint ? diff_hint : "");
    return SC_OK;
}

/* ---------------- directory: latest, retention ---------------- */

void ckpt_step_path(const char *dir, uint64_t step, char *buf, size_t n) {
    snprintf(buf, n, "%s/step-%llu.ckpt", dir, (unsigned long long)step);
}

static int emit_text(out_stream *o, void *arg) { return put(o, arg, strlen(arg)); }

sc_err ckpt_set_latest(const char *dir, const char *ckpt_path) {
    const char *base = strrchr(ckpt_path, '/');
    base = base ? base + 1 : ckpt_path;
    char path[4096], text[1024];
    size_t blen = strlen(base);
    /* read_latest_name reads at most 256 bytes back: a longer name could never be found again */
    if (blen == 0 || blen >= 255) return sc_errorf(SC_ERR_ARG, "%s: checkpoint file name too long", ckpt_path);
    snprintf(path, sizeof path, "%s/latest", dir);
    memcpy(text, base, blen);
    text[blen] = '\n';
    text[blen + 1] = 0;
    return atomic_write(path, emit_text, text);
}

/* step number of "step-<N>.ckpt", or -1 */
static long long step_of(const char *name) {
    unsigned long long s;
    int len = 0;
    if (sscanf(name, "step-%llu.ckpt%n", &s, &len) == 1 && name[len] == 0 && strncmp(name, "step-", 5) == 0)
        return (long long)s;
    return -1;
}

typedef struct { char name[256]; ckpt_entry e; bool ok; } dir_item;

static int list_dir(const char *dir, dir_item **items, int *n) {
    *items = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return -1;
    int cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        long long s = step_of(de->d_name);
        if (s < 0) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            dir_item *ni = realloc(*items, sizeof **items * (size_t)cap);
            if (!ni) break;
            *items = ni;
        }
        dir_item *it = &(*items)[(*n)++];
        snprintf(it->name, sizeof it->name, "%s", de->d_name);
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        ckpt_header h;
        it->ok = ckpt_read_header(p, &h) == SC_OK;
        it->e.step = it->ok ? h.step : (uint64_t)s;
        it->e.epoch = it->ok ? h.epoch : 0;
    }
    closedir(d);
    return 0;
}

static bool read_latest_name(const char *dir, char *name, size_t n) {
    char p[4096];
    snprintf(p, sizeof p, "%s/latest", dir);
    FILE *f = fopen(p, "r");
    if (!f) return false;
    bool ok = fgets(name, (int)n, f) != NULL;
    fclose(f);
    if (!ok) return false;
    name[strcspn(name, "\r\n")] = 0;
    return name[0] != 0 && !strchr(name, '/');
}

static void note_add(char *note, size_t nn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note_add(char *note, size_t nn, const char *fmt, ...) {
    if (!note || nn == 0) return;
    size_t o = strlen(note);
    if (o + 1 >= nn) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(note + o, nn - o, fmt, ap);
    va_end(ap);
}

sc_err ckpt_find_latest_noted(const char *dir, char *path, size_t n, bool *found, char *note, size_t nn) {
    *found = false;
    if (note && nn) note[0] = 0;
    char name[256], lp[4096];
    ckpt_header h;
    snprintf(lp, sizeof lp, "%s/latest", dir);
    struct stat st;
    bool has_latest = stat(lp, &st) == 0;
    if (read_latest_name(dir, name, sizeof name)) {
        snprintf(path, n, "%s/%s", dir, name);
        if (ckpt_read_header(path, &h) == SC_OK) { *found = true; return SC_OK; }
        note_add(note, nn, "skipped %s, which `latest` names: %s", name, sc_last_error());
    } else {
        name[0] = 0;
        if (has_latest) note_add(note, nn, "%s is empty or cut (no checkpoint name in it)", lp);
    }
    dir_item *items;
    int cnt;
    if (list_dir(dir, &items, &cnt) != 0) return SC_OK; /* no directory: nothing to resume */
    long long best = -1;
    for (int i = 0; i < cnt; i++)
        if (items[i].ok && (long long)items[i].e.step > best) {
            best = (long long)items[i].e.step;
            snprintf(path, n, "%s/%s", dir, items[i].name);
        }
    /* unreadable files newer than the one taken: each is named (a cut copy, a crash during a copy) */
    for (int i = 0; i < cnt; i++)
        if (!items[i].ok && (long long)items[i].e.step > best && strcmp(items[i].name, name) != 0)
            note_add(note, nn, "%sskipped %s (unreadable header or cut)", note && note[0] ? "; " : "", items[i].name);
    free(items);
    *found = best >= 0;
    if (note && note[0]) {
        if (*found)
            note_add(note, nn, "; taking %s (step %lld), the newest complete checkpoint: the steps after it are "
                               "trained again and the damaged file is replaced", path, best);
        else
            note_add(note, nn, "; no complete checkpoint is left in %s", dir);
    }
    return SC_OK;
}

sc_err ckpt_find_latest(const char *dir, char *path, size_t n, bool *found) {
    return ckpt_find_latest_noted(dir, path, n, found, NULL, 0);
}

sc_err ckpt_find_good_before(const char *dir, uint64_t step, char *path, size_t n, bool *found) {
    *found = false;
    dir_item *items;
    int cnt;
    if (list_dir(dir, &items, &cnt) != 0) return SC_OK;
    for (;;) { /* newest first: each candidate is verified in full (every checksum) */
        int bi = -1;
        for (int i = 0; i < cnt; i++)
            if (items[i].ok && items[i].e.step < step && (bi < 0 || items[i].e.step > items[bi].e.step)) bi = i;
        if (bi < 0) break;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, items[bi].name);
        ckpt_file *f = NULL;
        if (ckpt_open(p, &f) == SC_OK) {
            ckpt_close(f);
            snprintf(path, n, "%s", p);
            *found = true;
            break;
        }
        items[bi].ok = false;
    }
    free(items);
    return SC_OK;
}

void ckpt_retention(const ckpt_entry *e, int n, int keep_last, int snapshot_epochs, bool *keep) {
    for (int i = 0; i < n; i++) {
        int newer = 0;
        for (int j = 0; j < n; j++) newer += e[j].step > e[i].step;
        keep[i] = newer < keep_last;
        if (snapshot_epochs <= 0 || keep[i]) continue;
        /* i is the snapshot of k = floor(epoch/S) when no other entry lies in [k*S, epoch_i) */
        double S = snapshot_epochs;
        double k = (double)(long long)(e[i].epoch / S + 1e-9);
        if (k < 1) continue;
        bool first = true;
        for (int j = 0; j < n && first; j++) {
            if (j == i) continue;
            bool earlier = e[j].epoch < e[i].epoch || (e[j].epoch == e[i].epoch && e[j].step < e[i].step);
            if (earlier && e[j].epoch >= k * S - 1e-9 * S) first = false;
        }
        keep[i] = first;
    }
}

sc_err ckpt_prune(const char *dir, int keep_last, int snapshot_epochs) {
    dir_item *items;
    int cnt;
    if (list_dir(dir, &items, &cnt) != 0)
        return sc_errorf(SC_ERR_IO, "%s: cannot list checkpoints: %s", dir, strerror(errno));
    char latest[256] = "";
    read_latest_name(dir, latest, sizeof latest);
    /* unreadable files take no part in retention and are left alone */
    ckpt_entry *e = malloc(sizeof *e * (size_t)(cnt ? cnt : 1));
    bool *keep = malloc(sizeof *keep * (size_t)(cnt ? cnt : 1));
    int *map = malloc(sizeof *map * (size_t)(cnt ? cnt : 1));
    int m = 0;
    for (int i = 0; i < cnt; i++)
        if (items[i].ok) { map[m] = i; e[m++] = items[i].e; }
    ckpt_retention(e, m, keep_last, snapshot_epochs, keep);
    sc_err rc = SC_OK;
    for (int j = 0; j < m; j++) {
        const dir_item *it = &items[map[j]];
        if (keep[j] || strcmp(it->name, latest) == 0) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, it->name);
        if (unlink(p) != 0 && errno != ENOENT)
            rc = sc_errorf(SC_ERR_IO, "%s: cannot remove an old checkpoint: %s", p, strerror(errno));
    }
    free(e); free(keep); free(map); free(items);
    return rc;
}

static int mkdir_p(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) return -1;
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

sc_err ckpt_save(const char *dir, const ckpt_header *h, const ckpt_section *secs, int nsecs, int keep_last,
                 int snapshot_epochs) {
    if (mkdir_p(dir) != 0) return sc_errorf(SC_ERR_IO, "%s: cannot create the checkpoint directory: %s", dir,
                                            strerror(errno));
    char path[4096];
    ckpt_step_path(dir, h->step, path, sizeof path);
    SC_TRY(ckpt_write(path, h, secs, nsecs));
    SC_TRY(ckpt_set_latest(dir, path));
    return ckpt_prune(dir, keep_last, snapshot_epochs);
}
