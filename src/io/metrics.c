/* io/metrics: JSON-lines writer with a fixed line buffer (no allocation per line). */
#include "io/metrics.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES 16384

struct metrics {
    FILE *f;
    char path[1024];
    char line[LINE_MAX_BYTES];
    size_t len;
    int nkeys;
    int overflow; /* line too long: the line is dropped with an error rather than written cut */
};

sc_err metrics_open(const char *path, metrics **out) {
    *out = NULL;
    metrics *m = calloc(1, sizeof *m);
    if (!m) return sc_errorf(SC_ERR_NOMEM, "%s: out of memory", path);
    m->f = fopen(path, "a");
    if (!m->f) {
        sc_err e = sc_errorf(SC_ERR_IO, "%s: cannot open the metrics file: %s", path, strerror(errno));
        free(m);
        return e;
    }
    snprintf(m->path, sizeof m->path, "%s", path);
    *out = m;
    return SC_OK;
}

void metrics_close(metrics *m) {
    if (!m) return;
    fclose(m->f);
    free(m);
}

static void append(metrics *m, const char *s, size_t n) {
    if (m->len + n + 2 >= LINE_MAX_BYTES) { m->overflow = 1; return; }
    memcpy(m->line + m->len, s, n);
    m->len += n;
}

static void append_str(metrics *m, const char *s) {
    char b[8];
    append(m, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { b[0] = '\\'; b[1] = (char)c; append(m, b, 2); }
        else if (c == '\n') append(m, "\\n", 2);
        else if (c == '\t') append(m, "\\t", 2);
        else if (c < 0x20) { snprintf(b, sizeof b, "\\u%04x", c); append(m, b, 6); }
        else append(m, (const char *)&c, 1);
    }
    append(m, "\"", 1);
}

static void key(metrics *m, const char *k) {
    if (m->nkeys++) append(m, ",", 1);
    append_str(m, k);
    append(m, ":", 1);
}

void metrics_begin(metrics *m) {
    m->len = 0;
    m->nkeys = 0;
    m->overflow = 0;
    append(m, "{", 1);
}

void metrics_num(metrics *m, const char *k, double v) {
    char b[40];
    int n;
    key(m, k);
    if (!isfinite(v)) n = snprintf(b, sizeof b, "null");
    else if (v == floor(v) && fabs(v) < 1e15) n = snprintf(b, sizeof b, "%.0f", v);
    else n = snprintf(b, sizeof b, "%.9g", v);
    append(m, b, (size_t)n);
}

void metrics_int(metrics *m, const char *k, int64_t v) {
    char b[32];
    key(m, k);
    int n = snprintf(b, sizeof b, "%lld", (long long)v);
    append(m, b, (size_t)n);
}

void metrics_str(metrics *m, const char *k, const char *s) {
    key(m, k);
    append_str(m, s ? s : "");
}

sc_err metrics_end(metrics *m) {
    if (m->overflow)
        return sc_errorf(SC_ERR_ARG, "%s: metrics line longer than %d bytes dropped", m->path, LINE_MAX_BYTES);
    m->line[m->len++] = '}';
    m->line[m->len++] = '\n';
    if (fwrite(m->line, 1, m->len, m->f) != m->len || fflush(m->f) != 0)
        return sc_errorf(SC_ERR_IO, "%s: write failed: %s", m->path, strerror(errno));
    return SC_OK;
}

sc_err metrics_write_kv(metrics *m, const metrics_kv *kv, int n) {
    metrics_begin(m);
    for (int i = 0; i < n; i++) metrics_num(m, kv[i].key, kv[i].val);
    return metrics_end(m);
}
