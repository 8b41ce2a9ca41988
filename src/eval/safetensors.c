/* eval/safetensors: see the header. The JSON reader is a small recursive-descent parser that accepts exactly
 * what the format allows (an object of objects, strings, non-negative integers, arrays of them) and says why
 * it refuses anything else. */
#include "eval/safetensors.h"
#include "core/json.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader/writer assumes a little-endian host"
#endif

#define ST_MAX_HEADER (100u << 20) /* the reference implementation's limit */

/* ---------- writer ---------- */

typedef struct { char *s; size_t len, cap; } sbuf;

static void sb_put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_put(sbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        SC_CHECK(n >= 0, "safetensors: formatting failed");
        if (b->s && b->len + (size_t)n < b->cap) { b->len += (size_t)n; return; }
        size_t cap = (b->cap ? b->cap * 2 : 1024) + (size_t)n;
        char *p = realloc(b->s, cap);
        SC_CHECK(p, "safetensors: out of memory (%zu bytes of header)", cap);
        b->s = p; b->cap = cap;
    }
}

static void sb_json_string(sbuf *b, const char *s) {
    size_t n = sc_json_quote(NULL, 0, s);
    char *q = malloc(n + 1);
    SC_CHECK(q, "safetensors: out of memory");
    sc_json_quote(q, n + 1, s);
    sb_put(b, "%s", q);
    free(q);
}

static int64_t numel_of(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

sc_err safetensors_write(const char *path, int n, const safetensors_tensor *t, int nmeta, const char *const *meta_keys,
                         const char *const *meta_values) {
    if (n < 0 || (n > 0 && !t) || nmeta < 0 || (nmeta > 0 && (!meta_keys || !meta_values)))
        return sc_errorf(SC_ERR_ARG, "safetensors_write %s: bad tensor or metadata list", path);
    sbuf h = {0};
    sb_put(&h, "{");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (!t[i].name || !t[i].name[0] || strcmp(t[i].name, "__metadata__") == 0 || t[i].ndim < 0 ||
            t[i].ndim > SAFETENSORS_MAX_DIM) {
            free(h.s);
            return sc_errorf(SC_ERR_ARG, "safetensors_write %s: tensor %d has a bad name or ndim %d (0..%d)", path, i,
                             t[i].ndim, SAFETENSORS_MAX_DIM);
        }
        for (int j = 0; j < i; j++)
            if (strcmp(t[i].name, t[j].name) == 0) {
                free(h.s);
                return sc_errorf(SC_ERR_ARG, "safetensors_write %s: tensor name '%s' used twice", path, t[i].name);
            }
        for (int k = 0; k < t[i].ndim; k++)
            if (t[i].shape[k] < 0) {
                free(h.s);
                return sc_errorf(SC_ERR_ARG, "safetensors_write %s: '%s' has a negative dimension", path, t[i].name);
            }
        uint64_t bytes = (uint64_t)numel_of(t[i].ndim, t[i].shape) * 4u;
        if (i) sb_put(&h, ",");
        sb_json_string(&h, t[i].name);
        sb_put(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int k = 0; k < t[i].ndim; k++) sb_put(&h, "%s%lld", k ? "," : "", (long long)t[i].shape[k]);
        sb_put(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + bytes));
        off += bytes;
    }
    if (nmeta > 0) {
        sb_put(&h, "%s\"__metadata__\":{", n ? "," : "");
        for (int i = 0; i < nmeta; i++) {
            if (i) sb_put(&h, ",");
            sb_json_string(&h, meta_keys[i]);
            sb_put(&h, ":");
            sb_json_string(&h, meta_values[i]);
        }
        sb_put(&h, "}");
    }
    sb_put(&h, "}");
    while (h.len % 8) sb_put(&h, " "); /* 8 + len is then a multiple of 8: aligned data */

    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(h.s);
        return sc_errorf(SC_ERR_ARG, "safetensors_write: path too long: %s", path);
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(h.s);
        return sc_errorf(SC_ERR_IO, "safetensors_write: cannot create %s: %s", tmp, strerror(errno));
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h.s, 1, h.len, f) == h.len;
    for (int i = 0; ok && i < n; i++) {
        size_t cnt = (size_t)numel_of(t[i].ndim, t[i].shape);
        ok = cnt == 0 || fwrite(t[i].data, sizeof(float), cnt, f) == cnt;
    }
    free(h.s);
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return sc_errorf(SC_ERR_IO, "safetensors_write: writing %s failed: %s", path, strerror(e));
    }
    return SC_OK;
}

/* ---------- reader ---------- */

struct safetensors_file {
    FILE *fp;
    char *path;
    uint64_t data_start, data_len;
    int n, cap;
    safetensors_entry *e;
    int nmeta;
    char **mkey, **mval;
};

typedef struct {
    const char *s, *end, *file;
    char why[200];
} jp;

static int jfail(jp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int jfail(jp *p, const char *fmt, ...) {
    if (!p->why[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->why, sizeof p->why, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static void jws(jp *p) {
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')) p->s++;
}

static int jexpect(jp *p, char c, const char *what) {
    jws(p);
    if (p->s >= p->end) return jfail(p, "header ends where %s ('%c') was expected", what, c);
    if (*p->s != c) return jfail(p, "'%c' found where %s ('%c') was expected", *p->s, what, c);
    p->s++;
    return 0;
}

static void put_utf8(char *o, size_t *k, unsigned cp) {
    if (cp < 0x80) o[(*k)++] = (char)cp;
    else if (cp < 0x800) { o[(*k)++] = (char)(0xC0 | cp >> 6); o[(*k)++] = (char)(0x80 | (cp & 63)); }
    else if (cp < 0x10000) {
        o[(*k)++] = (char)(0xE0 | cp >> 12); o[(*k)++] = (char)(0x80 | ((cp >> 6) & 63));
        o[(*k)++] = (char)(0x80 | (cp & 63));
    } else {
        o[(*k)++] = (char)(0xF0 | cp >> 18); o[(*k)++] = (char)(0x80 | ((cp >> 12) & 63));
        o[(*k)++] = (char)(0x80 | ((cp >> 6) & 63)); o[(*k)++] = (char)(0x80 | (cp & 63));
    }
}

static int hex4(const char *s, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                   : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 99u;
        if (d > 15) return -1;
        *v = *v * 16 + d;
    }
    return 0;
}

/* string -> malloc'd UTF-8 (escapes decoded) */
static int jstring(jp *p, char **out) {
    *out = NULL;
    if (jexpect(p, '"', "a string") < 0) return -1;
    const char *q = p->s;
    size_t cap = 0;
    while (q < p->end && *q != '"') { if (*q == '\\') q++; q++; cap++; }
    if (q >= p->end) return jfail(p, "unterminated string");
    char *o = malloc(cap * 4 + 1);
    SC_CHECK(o, "safetensors: out of memory");
    size_t k = 0;
    while (*p->s != '"') {
        unsigned char c = (unsigned char)*p->s++;
        if (c < 0x20) { free(o); return jfail(p, "control character 0x%02x inside a string", c); }
        if (c != '\\') { o[k++] = (char)c; continue; }
        char e = *p->s++;
        switch (e) {
        case '"': o[k++] = '"'; break;
        case '\\': o[k++] = '\\'; break;
        case '/': o[k++] = '/'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'n': o[k++] = '\n'; break;
        case 'r': o[k++] = '\r'; break;
        case 't': o[k++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (p->end - p->s < 4 || hex4(p->s, &cp) < 0) { free(o); return jfail(p, "bad \\u escape"); }
            p->s += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && p->end - p->s >= 6 && p->s[0] == '\\' && p->s[1] == 'u' &&
                hex4(p->s + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p->s += 6;
            }
            put_utf8(o, &k, cp);
            break;
        }
        default: free(o); return jfail(p, "unknown escape '\\%c' in a string", e);
        }
    }
    p->s++;
    o[k] = 0;
    *out = o;
    return 0;
}

static int juint(jp *p, uint64_t *v) {
    jws(p);
    if (p->s >= p->end || *p->s < '0' || *p->s > '9')
        return jfail(p, "a non-negative integer was expected, found '%c'", p->s < p->end ? *p->s : '?');
    uint64_t x = 0;
    while (p->s < p->end && *p->s >= '0' && *p->s <= '9') {
        if (x > (UINT64_MAX - 9) / 10) return jfail(p, "integer too large");
        x = x * 10 + (uint64_t)(*p->s++ - '0');
    }
    if (p->s < p->end && (*p->s == '.' || *p->s == 'e' || *p->s == 'E')) return jfail(p, "non-integer number");
    *v = x;
    return 0;
}

/* [u, u, ...] with at most maxn elements */
static int juint_array(jp *p, uint64_t *v, int maxn, int *n, const char *what) {
    *n = 0;
    if (jexpect(p, '[', what) < 0) return -1;
    jws(p);
    if (p->s < p->end && *p->s == ']') { p->s++; return 0; }
    for (;;) {
        if (*n >= maxn) return jfail(p, "%s has more than %d elements", what, maxn);
        if (juint(p, &v[(*n)++]) < 0) return -1;
        jws(p);
        if (p->s < p->end && *p->s == ',') { p->s++; continue; }
        return jexpect(p, ']', "the end of an array");
    }
}

static int dtype_size(const char *d) {
    static const struct { const char *n; int s; } t[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2},
        {"I64", 8}, {"U64", 8}, {"I32", 4}, {"U32", 4}, {"I16", 2}, {"U16", 2}, {"I8", 1}, {"U8", 1}, {"BOOL", 1}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(d, t[i].n) == 0) return t[i].s;
    return 0;
}

static int parse_entry(jp *p, safetensors_entry *e) {
    if (jexpect(p, '{', "a tensor entry") < 0) return -1;
    int have_dtype = 0, have_shape = 0, have_off = 0;
    for (;;) {
        char *key;
        if (jstring(p, &key) < 0) return -1;
        if (jexpect(p, ':', "':' after a key") < 0) { free(key); return -1; }
        int rc = 0;
        if (strcmp(key, "dtype") == 0) {
            char *d;
            rc = jstring(p, &d);
            if (rc == 0) {
                if (!dtype_size(d)) rc = jfail(p, "tensor '%s': unknown dtype \"%.20s\"", e->name, d);
                else snprintf(e->dtype, sizeof e->dtype, "%s", d);
                free(d);
            }
            have_dtype = 1;
        } else if (strcmp(key, "shape") == 0) {
            uint64_t v[SAFETENSORS_MAX_DIM];
            rc = juint_array(p, v, SAFETENSORS_MAX_DIM, &e->ndim, "shape");
            for (int i = 0; rc == 0 && i < e->ndim; i++) {
                if (v[i] > (1ull << 40)) rc = jfail(p, "tensor '%s': dimension %llu too large", e->name,
                                                    (unsigned long long)v[i]);
                e->shape[i] = (int64_t)v[i];
            }
            have_shape = 1;
        } else if (strcmp(key, "data_offsets") == 0) {
            uint64_t v[2];
            int n;
            rc = juint_array(p, v, 2, &n, "data_offsets");
            if (rc == 0 && n != 2) rc = jfail(p, "tensor '%s': data_offsets needs 2 numbers, got %d", e->name, n);
            e->begin = v[0]; e->end = v[1];
            have_off = 1;
        } else {
            rc = jfail(p, "tensor '%s': unexpected key '%.40s' (dtype, shape, data_offsets)", e->name, key);
        }
        free(key);
        if (rc < 0) return -1;
        jws(p);
        if (p->s < p->end && *p->s == ',') { p->s++; continue; }
        if (jexpect(p, '}', "the end of a tensor entry") < 0) return -1;
        break;
    }
    if (!have_dtype || !have_shape || !have_off)
        return jfail(p, "tensor '%s': missing %s", e->name, !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
    return 0;
}

static int parse_header(jp *p, safetensors_file *f) {
    if (jexpect(p, '{', "the header object") < 0) return -1;
    jws(p);
    if (p->s < p->end && *p->s == '}') { p->s++; goto tail; }
    for (;;) {
        char *key;
        if (jstring(p, &key) < 0) return -1;
        if (jexpect(p, ':', "':' after a key") < 0) { free(key); return -1; }
        if (strcmp(key, "__metadata__") == 0) {
            free(key);
            if (jexpect(p, '{', "the __metadata__ object") < 0) return -1;
            jws(p);
            if (p->s < p->end && *p->s == '}') p->s++;
            else for (;;) {
                char *k, *v;
                if (jstring(p, &k) < 0) return -1;
                if (jexpect(p, ':', "':' in __metadata__") < 0) { free(k); return -1; }
                jws(p);
                if (p->s >= p->end || *p->s != '"') {
                    jfail(p, "__metadata__ values must be strings ('%.40s' is not)", k);
                    free(k);
                    return -1;
                }
                if (jstring(p, &v) < 0) { free(k); return -1; }
                char **nk = realloc(f->mkey, sizeof(char *) * (size_t)(f->nmeta + 1));
                char **nv = nk ? realloc(f->mval, sizeof(char *) * (size_t)(f->nmeta + 1)) : NULL;
                SC_CHECK(nk && nv, "safetensors: out of memory");
                f->mkey = nk; f->mval = nv;
                f->mkey[f->nmeta] = k; f->mval[f->nmeta] = v; f->nmeta++;
                jws(p);
                if (p->s < p->end && *p->s == ',') { p->s++; continue; }
                if (jexpect(p, '}', "the end of __metadata__") < 0) return -1;
                break;
            }
        } else {
            for (int i = 0; i < f->n; i++)
                if (strcmp(f->e[i].name, key) == 0) { jfail(p, "tensor '%s' appears twice", key); free(key); return -1; }
            if (f->n == f->cap) {
                f->cap = f->cap ? 2 * f->cap : 64;
                f->e = realloc(f->e, sizeof(safetensors_entry) * (size_t)f->cap);
                SC_CHECK(f->e, "safetensors: out of memory");
            }
            safetensors_entry *e = &f->e[f->n++];
            memset(e, 0, sizeof *e);
            e->name = key;
            if (parse_entry(p, e) < 0) return -1;
        }
        jws(p);
        if (p->s < p->end && *p->s == ',') { p->s++; continue; }
        if (jexpect(p, '}', "',' or the end of the header object") < 0) return -1;
        break;
    }
tail:
    jws(p);
    if (p->s != p->end) return jfail(p, "unexpected content after the header object");
    return 0;
}

static int cmp_begin(const void *a, const void *b) {
    const safetensors_entry *x = *(safetensors_entry *const *)a, *y = *(safetensors_entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

sc_err safetensors_open(const char *path, safetensors_file **out) {
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return sc_errorf(SC_ERR_IO, "safetensors: cannot open %s: %s", path, strerror(errno));
    safetensors_file *f = calloc(1, sizeof *f);
    SC_CHECK(f, "safetensors: out of memory");
    f->fp = fp;
    f->path = strdup(path);
    char *hdr = NULL;
    sc_err err = SC_OK;
    unsigned char len8[8];
    if (fseeko(fp, 0, SEEK_END) != 0) { err = sc_errorf(SC_ERR_IO, "safetensors: cannot seek %s", path); goto fail; }
    uint64_t fsize = (uint64_t)ftello(fp);
    rewind(fp);
    if (fsize < 8 || fread(len8, 1, 8, fp) != 8) {
        err = sc_errorf(SC_ERR_FORMAT, "safetensors %s: file of %llu bytes is too short for the 8-byte header length",
                        path, (unsigned long long)fsize);
        goto fail;
    }
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)len8[i] << (8 * i);
    if (hl < 2 || hl > ST_MAX_HEADER || hl > fsize - 8) {
        err = sc_errorf(SC_ERR_FORMAT, "safetensors %s: header length %llu is impossible (file %llu bytes, limit %u)",
                        path, (unsigned long long)hl, (unsigned long long)fsize, ST_MAX_HEADER);
        goto fail;
    }
    hdr = malloc(hl + 1);
    SC_CHECK(hdr, "safetensors: out of memory (%llu bytes)", (unsigned long long)hl);
    if (fread(hdr, 1, hl, fp) != hl) {
        err = sc_errorf(SC_ERR_FORMAT, "safetensors %s: header truncated", path);
        goto fail;
    }
    hdr[hl] = 0;
    f->data_start = 8 + hl;
    f->data_len = fsize - f->data_start;
    jp p = {.s = hdr, .end = hdr + hl, .file = path, .why = {0}};
    if (parse_header(&p, f) < 0) {
        err = sc_errorf(SC_ERR_FORMAT, "safetensors %s: bad header at byte %ld: %s", path, (long)(p.s - hdr) + 8,
                        p.why);
        goto fail;
    }
    /* sizes and offsets: each tensor's bytes = numel * dtype size, inside the data section, no overlaps */
    safetensors_entry **by = malloc(sizeof(*by) * (size_t)(f->n + 1));
    SC_CHECK(by, "safetensors: out of memory");
    for (int i = 0; i < f->n && err == SC_OK; i++) {
        safetensors_entry *e = &f->e[i];
        by[i] = e;
        e->numel = numel_of(e->ndim, e->shape);
        uint64_t want = (uint64_t)e->numel * (uint64_t)dtype_size(e->dtype);
        if (e->end < e->begin || e->end - e->begin != want)
            err = sc_errorf(SC_ERR_FORMAT, "safetensors %s: tensor '%s' has data_offsets [%llu, %llu] but %s x %lld "
                            "elements need %llu bytes", path, e->name, (unsigned long long)e->begin,
                            (unsigned long long)e->end, e->dtype, (long long)e->numel, (unsigned long long)want);
        else if (e->end > f->data_len)
            err = sc_errorf(SC_ERR_FORMAT, "safetensors %s: tensor '%s' ends at byte %llu of a %llu-byte data section "
                            "(truncated file?)", path, e->name, (unsigned long long)e->end,
                            (unsigned long long)f->data_len);
    }
    if (err == SC_OK && f->n > 1) {
        qsort(by, (size_t)f->n, sizeof *by, cmp_begin);
        for (int i = 1; i < f->n && err == SC_OK; i++)
            if (by[i]->begin < by[i - 1]->end && by[i]->end > by[i]->begin)
                err = sc_errorf(SC_ERR_FORMAT, "safetensors %s: tensors '%s' and '%s' overlap", path, by[i - 1]->name,
                                by[i]->name);
    }
    free(by);
    if (err != SC_OK) goto fail;
    free(hdr);
    *out = f;
    return SC_OK;
fail:
    free(hdr);
    safetensors_close(f);
    return err;
}

void safetensors_close(safetensors_file *f) {
    if (!f) return;
    if (f->fp) fclose(f->fp);
    for (int i = 0; i < f->n; i++) free(f->e[i].name);
    for (int i = 0; i < f->nmeta; i++) { free(f->mkey[i]); free(f->mval[i]); }
    free(f->e); free(f->mkey); free(f->mval); free(f->path);
    free(f);
}

int safetensors_count(const safetensors_file *f) { return f->n; }
const safetensors_entry *safetensors_entry_at(const safetensors_file *f, int i) {
    return i >= 0 && i < f->n ? &f->e[i] : NULL;
}

int safetensors_find(const safetensors_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->e[i].name, name) == 0) return i;
    return -1;
}

const char *safetensors_meta(const safetensors_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->mkey[i], key) == 0) return f->mval[i];
    return NULL;
}

sc_err safetensors_read_f32(safetensors_file *f, int i, float *dst, size_t count) {
    if (i < 0 || i >= f->n) return sc_errorf(SC_ERR_ARG, "safetensors %s: no tensor number %d", f->path, i);
    const safetensors_entry *e = &f->e[i];
    if (strcmp(e->dtype, "F32") != 0)
        return sc_errorf(SC_ERR_FORMAT, "safetensors %s: tensor '%s' is %s, expected F32", f->path, e->name, e->dtype);
    if ((uint64_t)count != (uint64_t)e->numel)
        return sc_errorf(SC_ERR_MISMATCH, "safetensors %s: tensor '%s' has %lld elements, expected %zu", f->path,
                         e->name, (long long)e->numel, count);
    if (count == 0) return SC_OK;
    if (fseeko(f->fp, (off_t)(f->data_start + e->begin), SEEK_SET) != 0 || fread(dst, sizeof(float), count, f->fp) != count)
        return sc_errorf(SC_ERR_IO, "safetensors %s: reading tensor '%s' failed", f->path, e->name);
    return SC_OK;
}
