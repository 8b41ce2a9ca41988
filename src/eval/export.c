/* eval/export: width slicing, torchvision names, safetensors export and import (see include/eval/export.h). */
#include "eval/export.h"
#include "eval/safetensors.h"
#include "nn/layout.h"
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Splits "<prefix>.<k>.<suffix>" (suffix without dots) at the width index k; false when the name has none. */
static bool split_width(const char *name, char *prefix, size_t np, const char **suffix, int *k) {
    const char *last = strrchr(name, '.');
    if (!last || last == name) return false;
    const char *p = last - 1;
    while (p > name && isdigit((unsigned char)*p)) p--;
    if (*p != '.' || p + 1 == last) return false;
    size_t len = (size_t)(p - name);
    if (len + 1 > np) return false;
    memcpy(prefix, name, len);
    prefix[len] = 0;
    *suffix = last + 1;
    *k = atoi(p + 1);
    return true;
}

void export_tv_name(const param_info *t, char *buf, size_t n) {
    char prefix[96];
    const char *suffix;
    int k;
    if (t->width_only >= 0 && split_width(t->name, prefix, sizeof prefix, &suffix, &k))
        snprintf(buf, n, "%s.%s", prefix, suffix);
    else
        snprintf(buf, n, "%s", t->name);
}

sc_err export_slice_cfg(const model_cfg *src, int wi, model_cfg *dst) {
    if (src->disjoint && wi > 0) /* the slicing below copies leading blocks */
        return sc_errorf(SC_ERR_ARG, "export: width index %d of a model with disjoint channels (slimclr.overlap_weight: "
                         "false) is not a leading block; only width 1.0 exports", wi);
    if (wi < 0 || wi >= src->nwidths)
        return sc_errorf(SC_ERR_ARG, "export: width index %d, the model has %d widths", wi, src->nwidths);
    *dst = *src;
    dst->head = HEAD_NONE;
    dst->head_hidden = dst->head_in = dst->head_out = 0;
    dst->base = nn_width_channels(src->base, src->widths[wi]);
    dst->nwidths = 1;
    memset(dst->widths, 0, sizeof dst->widths);
    dst->widths[0] = 1.0f;
    if (dst->base < 1)
        return sc_errorf(SC_ERR_ARG, "export: width %g of base %d gives 0 stem channels", (double)src->widths[wi],
                         src->base);
    return SC_OK;
}

static const param_info *find(const model *m, const char *name, bool buf) {
    int n = buf ? model_nbuftensors(m) : model_ntensors(m);
    for (int i = 0; i < n; i++) {
        const param_info *t = buf ? model_buftensor(m, i) : model_tensor(m, i);
        if (!strcmp(t->name, name)) return t;
    }
    return NULL;
}

sc_err export_slice(const model *src, int wi, model *dst) {
    model *s = (model *)src; /* read only */
    float w = model_width(src, wi);
    if (model_nwidths(dst) != 1 || model_config(dst)->head != HEAD_NONE)
        return sc_errorf(SC_ERR_ARG, "export: the destination must be a single-width backbone");
    /* two passes: check every shape first so that a refused width leaves dst untouched */
    for (int pass = 0; pass < 2; pass++)
        for (int buf = 0; buf < 2; buf++) {
            int n = buf ? model_nbuftensors(dst) : model_ntensors(dst);
            float *D = buf ? model_bufs(dst) : model_params(dst);
            const float *S = buf ? model_bufs(s) : model_params(s);
            for (int i = 0; i < n; i++) {
                const param_info *t = buf ? model_buftensor(dst, i) : model_tensor(dst, i);
                char name[128], prefix[96];
                const char *suffix;
                int k;
                bool per_width = t->width_only >= 0;
                if (per_width) {
                    if (!split_width(t->name, prefix, sizeof prefix, &suffix, &k))
                        return sc_errorf(SC_ERR_ARG, "export: tensor name %s has no width index", t->name);
                    snprintf(name, sizeof name, "%s.%d.%s", prefix, wi, suffix);
                } else {
                    snprintf(name, sizeof name, "%s", t->name);
                }
                const param_info *u = find(src, name, buf);
                if (!u) return sc_errorf(SC_ERR_ARG, "export: the source model has no tensor %s", name);
                if (per_width) {
                    if (u->count != t->count)
                        return sc_errorf(SC_ERR_ARG,
                                         "export: width %g has %zu channels at %s, a width-1.0 ResNet of base %d has "
                                         "%zu there: this width cannot be exported as a standalone network",
                                         (double)w, u->count, name, model_config(dst)->base, t->count);
                    if (pass) memcpy(D + t->offset, S + u->offset, t->count * sizeof(float));
                    continue;
                }
                if (t->ndim != 4 || u->ndim != 4 || t->shape[0] > u->shape[0] || t->shape[1] > u->shape[1] ||
                    t->shape[2] != u->shape[2] || t->shape[3] != u->shape[3])
                    return sc_errorf(SC_ERR_ARG, "export: tensor %s: slice [%d][%d][%d][%d] does not fit [%d][%d][%d][%d]",
                                     name, t->shape[0], t->shape[1], t->shape[2], t->shape[3], u->shape[0], u->shape[1],
                                     u->shape[2], u->shape[3]);
                if (!pass) continue;
                /* the leading [C_out(w)][C_in(w)] block of a [C_out][C_in*k*k] weight: a prefix of each row */
                size_t row = (size_t)t->shape[1] * t->shape[2] * t->shape[3];
                size_t srow = (size_t)u->shape[1] * u->shape[2] * u->shape[3];
                for (int o = 0; o < t->shape[0]; o++)
                    memcpy(D + t->offset + o * row, S + u->offset + o * srow, row * sizeof(float));
            }
        }
    return SC_OK;
}

sc_err export_write_safetensors(const model *m, const char *path, int nmeta, const char *const *keys,
                                const char *const *values) {
    model *mm = (model *)m;
    if (model_nwidths(m) != 1)
        return sc_errorf(SC_ERR_ARG, "export: safetensors needs a single-width model (slice it first)");
    int np = model_ntensors(m), nb = model_nbuftensors(m), n = np + nb;
    safetensors_tensor *ts = sc_calloc_n(safetensors_tensor, n);
    char (*names)[128] = sc_alloc(sizeof(*names) * (size_t)n);
    for (int i = 0; i < n; i++) {
        bool buf = i >= np;
        const param_info *t = buf ? model_buftensor(m, i - np) : model_tensor(m, i);
        export_tv_name(t, names[i], sizeof names[i]);
        ts[i].name = names[i];
        ts[i].ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++) ts[i].shape[d] = t->shape[d];
        ts[i].data = (buf ? model_bufs(mm) : model_params(mm)) + t->offset;
    }
    sc_err e = safetensors_write(path, n, ts, nmeta, keys, values);
    sc_free(names);
    sc_free(ts);
    return e;
}

static bool ignorable(const char *name) {
    size_t l = strlen(name);
    const char *nbt = "num_batches_tracked";
    return !strncmp(name, "fc.", 3) || (l >= strlen(nbt) && !strcmp(name + l - strlen(nbt), nbt));
}

sc_err export_import_safetensors(model *bb, const char *path, int *nignored) {
    safetensors_file *f = NULL;
    SC_TRY(safetensors_open(path, &f));
    int nf = safetensors_count(f);
    char *used = calloc((size_t)nf, 1);
    sc_err e = SC_OK;
    float *tmp = NULL;
    size_t tmpn = 0;
    for (int buf = 0; buf < 2 && e == SC_OK; buf++) {
        int n = buf ? model_nbuftensors(bb) : model_ntensors(bb);
        float *D = buf ? model_bufs(bb) : model_params(bb);
        for (int i = 0; i < n && e == SC_OK; i++) {
            const param_info *t = buf ? model_buftensor(bb, i) : model_tensor(bb, i);
            char tv[128];
            export_tv_name(t, tv, sizeof tv);
            int j = safetensors_find(f, tv);
            if (j < 0) {
                e = sc_errorf(SC_ERR_MISMATCH, "%s: no tensor %s (the config's model needs it)", path, tv);
                break;
            }
            const safetensors_entry *en = safetensors_entry_at(f, j);
            used[j] = 1;
            if (t->width_only <= 0) { /* shared weights and width 1.0's BN: exactly the file's tensor */
                bool ok = en->ndim == t->ndim;
                for (int d = 0; ok && d < t->ndim; d++) ok = en->shape[d] == t->shape[d];
                if (!ok) {
                    char want[64], got[64];
                    int o = 0;
                    for (int d = 0; d < t->ndim; d++) o += snprintf(want + o, sizeof want - o, "[%d]", t->shape[d]);
                    o = 0;
                    for (int d = 0; d < en->ndim && o < 50; d++)
                        o += snprintf(got + o, sizeof got - o, "[%lld]", (long long)en->shape[d]);
                    e = sc_errorf(SC_ERR_MISMATCH, "%s: tensor %s has shape %s, the config's model expects %s", path,
                                  tv, en->ndim ? got : "()", want);
                    break;
                }
                e = safetensors_read_f32(f, j, D + t->offset, t->count);
                continue;
            }
            /* a sub-width's BN: the leading C_w entries of width 1.0's (docs/export.md) */
            if (en->ndim != 1 || en->numel < (int64_t)t->count) {
                e = sc_errorf(SC_ERR_MISMATCH, "%s: tensor %s has %lld values, fewer than width %g's %zu", path, tv,
                              (long long)en->numel, (double)model_width(bb, t->width_only), t->count);
                break;
            }
            if ((size_t)en->numel > tmpn) {
                sc_free(tmp);
                tmpn = (size_t)en->numel;
                tmp = sc_calloc_n(float, tmpn);
            }
            e = safetensors_read_f32(f, j, tmp, (size_t)en->numel);
            if (e == SC_OK) memcpy(D + t->offset, tmp, t->count * sizeof(float));
        }
    }
    /* a NaN or Inf weight would poison every later step or feature: refuse it, naming the tensor */
    for (int buf = 0; buf < 2 && e == SC_OK; buf++) {
        int n = buf ? model_nbuftensors(bb) : model_ntensors(bb);
        const float *D = buf ? model_bufs(bb) : model_params(bb);
        for (int i = 0; i < n && e == SC_OK; i++) {
            const param_info *t = buf ? model_buftensor(bb, i) : model_tensor(bb, i);
            for (size_t k = 0; k < t->count; k++)
                if (!isfinite(D[t->offset + k])) {
                    char tv[128];
                    export_tv_name(t, tv, sizeof tv);
                    e = sc_errorf(SC_ERR_FORMAT, "%s: tensor %s holds %s at index %zu: not importable", path, tv,
                                  isnan(D[t->offset + k]) ? "NaN" : "Inf", k);
                    break;
                }
        }
    }
    int ign = 0;
    for (int j = 0; j < nf && e == SC_OK; j++) {
        if (used[j]) continue;
        const char *name = safetensors_entry_at(f, j)->name;
        if (ignorable(name)) { ign++; continue; }
        e = sc_errorf(SC_ERR_MISMATCH, "%s: tensor %s has no place in the config's model (another depth or stem?)",
                      path, name);
    }
    if (nignored) *nignored = ign;
    sc_free(tmp);
    free(used);
    safetensors_close(f);
    return e;
}
