/* io/metrics: JSON-lines writer with a fixed line buffer (no allocation per line). */
#include "io/metrics.h"
#include "core/json.h"
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
    size_t n = sc_json_quote(NULL, 0, s);
    if (m->len + n + 2 >= LINE_MAX_BYTES) { m->overflow = 1; return; }
    sc_json_quote(m->line + m->len, LINE_MAX_BYTES - m->len, s);
    m->len += n;
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

/* ---- reading -------------------------------------------------------------------------------------------- */
static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

/* a JSON string at p (after its opening quote) into out (cut at cap - 1 bytes); returns the byte after the
 * closing quote, or NULL */
static const char *parse_string(const char *p, char *out, size_t cap) {
    size_t n = 0;
    for (; *p && *p != '"'; p++) {
        char c = *p;
        if (c == '\\') {
            p++;
            switch (*p) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': {
                unsigned v = 0;
                for (int i = 1; i <= 4; i++) {
                    char h = p[i];
                    if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F'))) return NULL;
                    v = v * 16 + (unsigned)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
                }
                p += 4;
                c = v < 0x80 ? (char)v : '?';
                break;
            }
            case '"': case '\\': case '/': c = *p; break;
            default: return NULL;
            }
        }
        if (out && n + 1 < cap) out[n++] = c;
    }
    if (*p != '"') return NULL;
    if (out && cap) out[n] = 0;
    return p + 1;
}

int metrics_parse(const char *line, metrics_field *f, int max) {
    const char *p = skip_ws(line);
    if (*p++ != '{') return -1;
    int n = 0;
    p = skip_ws(p);
    if (*p == '}') return 0;
    for (;;) {
        metrics_field tmp, *o = n < max ? &f[n] : &tmp;
        if (*p++ != '"' || !(p = parse_string(p, o->key, sizeof o->key))) return -1;
        p = skip_ws(p);
        if (*p++ != ':') return -1;
        p = skip_ws(p);
        o->is_num = true;
        if (*p == '"') {
            o->is_num = false;
            o->num = NAN;
            if (!(p = parse_string(p + 1, NULL, 0))) return -1;
        } else if (strncmp(p, "null", 4) == 0) { o->num = NAN; p += 4; }
        else if (strncmp(p, "true", 4) == 0) { o->num = 1; p += 4; }
        else if (strncmp(p, "false", 5) == 0) { o->num = 0; p += 5; }
        else {
            char *end;
            o->num = strtod(p, &end);
            if (end == p) return -1;
            p = end;
        }
        if (n < max) n++;
        p = skip_ws(p);
        if (*p == '}') return n;
        if (*p++ != ',') return -1;
        p = skip_ws(p);
    }
}

bool metrics_get(const char *line, const char *key, double *v) {
    metrics_field f[256];
    int n = metrics_parse(line, f, 256);
    bool found = false;
    for (int i = 0; i < n; i++)
        if (f[i].is_num && strcmp(f[i].key, key) == 0) { *v = f[i].num; found = true; }
    return found;
}
