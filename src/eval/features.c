/* eval/features: backbone loading and per-width feature extraction (see include/eval/features.h). */
#include "eval/features.h"
#include "comm/comm.h"
#include "core/timer.h"
#include "data/loader.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

model_cfg features_backbone_cfg(const model_cfg *enc) {
    model_cfg c = *enc;
    c.head = HEAD_NONE;
    c.head_hidden = c.head_in = c.head_out = 0;
    return c;
}

static const param_info *find_tensor(const model *m, const char *name, bool buf) {
    int n = buf ? model_nbuftensors(m) : model_ntensors(m);
    for (int i = 0; i < n; i++) {
        const param_info *t = buf ? model_buftensor(m, i) : model_tensor(m, i);
        if (!strcmp(t->name, name)) return t;
    }
    return NULL;
}

static bool same_shape(const param_info *a, const param_info *b) {
    if (a->ndim != b->ndim || a->count != b->count) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

sc_err features_copy_by_name(model *dst, const model *src) {
    for (int buf = 0; buf < 2; buf++) {
        int n = buf ? model_nbuftensors(dst) : model_ntensors(dst);
        float *d = buf ? model_bufs(dst) : model_params(dst);
        const float *s = buf ? model_bufs((model *)src) : model_params((model *)src);
        for (int i = 0; i < n; i++) {
            const param_info *t = buf ? model_buftensor(dst, i) : model_tensor(dst, i);
            const param_info *u = find_tensor(src, t->name, buf);
            if (!u)
                return sc_errorf(SC_ERR_MISMATCH, "tensor %s of the backbone is missing from the source model", t->name);
            if (!same_shape(t, u))
                return sc_errorf(SC_ERR_MISMATCH, "tensor %s: %zu values in the source model, %zu expected", t->name,
                                 u->count, t->count);
            memcpy(d + t->offset, s + u->offset, t->count * sizeof(float));
        }
    }
    return SC_OK;
}

sc_err features_load(model *bb, const model_cfg *enc, const ckpt_file *f) {
    ckpt_dtype dt;
    size_t np = 0, nb = 0;
    const void *p = ckpt_find(f, "q.params", &dt, &np);
    const void *b = ckpt_find(f, "q.bufs", NULL, &nb);
    if (!p || !b)
        return sc_errorf(SC_ERR_FORMAT, "checkpoint %s: no q.params/q.bufs sections (not a slimclr training "
                                        "checkpoint, export or import)", ckpt_path(f));
    if (np == model_nparams(bb) && nb == model_nbufs(bb)) {
        SC_TRY(ckpt_read_section(f, "q.params", CKPT_F32, np, model_params(bb)));
        return ckpt_read_section(f, "q.bufs", CKPT_F32, nb, model_bufs(bb));
    }
    sc_err e = SC_OK;
    model *m = model_create(enc, &e);
    if (!m) return e;
    if (np != model_nparams(m) || nb != model_nbufs(m)) {
        e = sc_errorf(SC_ERR_MISMATCH,
                      "checkpoint %s: q.params holds %zu values and q.bufs %zu; this config's encoder has %zu/%zu and "
                      "its backbone %zu/%zu: the checkpoint was written for another model",
                      ckpt_path(f), np, nb, model_nparams(m), model_nbufs(m), model_nparams(bb), model_nbufs(bb));
    }
    if (e == SC_OK) e = ckpt_read_section(f, "q.params", CKPT_F32, np, model_params(m));
    if (e == SC_OK) e = ckpt_read_section(f, "q.bufs", CKPT_F32, nb, model_bufs(m));
    if (e == SC_OK) e = features_copy_by_name(bb, m);
    model_free(m);
    return e;
}

sc_err features_init_random(model *bb, const model_cfg *enc, uint64_t seed) {
    sc_err e = SC_OK;
    model *m = model_create(enc, &e);
    if (!m) return e;
    model_init(m, seed);
    e = features_copy_by_name(bb, m);
    model_free(m);
    return e;
}

void features_set_free(features_set *s) {
    for (int k = 0; k < s->nwidths; k++) sc_free(s->F[k]);
    sc_free(s->labels);
    memset(s, 0, sizeof *s);
}

sc_err features_extract(model *bb, const data_set *set, int64_t n, const aug_cfg *aug, int batch, int workers,
                        int nwi, const int *wis, features_set *out) {
    return features_extract_epoch(bb, set, n, aug, 0, 0, batch, workers, nwi, wis, out);
}

sc_err features_extract_epoch(model *bb, const data_set *set, int64_t n, const aug_cfg *aug, uint64_t seed,
                              int64_t epoch, int batch, int workers, int nwi, const int *wis, features_set *out) {
    memset(out, 0, sizeof *out);
    const model_cfg *mc = model_config(bb);
    if (nwi < 1 || nwi > FEATURES_MAX_WIDTHS || batch < 1 || n < 0 || n > set->n)
        return sc_errorf(SC_ERR_ARG, "features: %d widths, batch %d, %lld of %lld rows", nwi, batch, (long long)n,
                         (long long)set->n);
    if (set->c != mc->in_ch)
        return sc_errorf(SC_ERR_CONFIG, "data: %s has %d channel(s), the model takes %d (model.in_channels)",
                         set->source, set->c, mc->in_ch);
    int P = comm_size(), r = comm_rank();
    int64_t begin = n * r / P, end = n * (r + 1) / P;
    out->nwidths = nwi;
    out->row0 = begin;
    out->n_local = end - begin;
    out->n_global = n;
    int wi_min = nwi ? wis[0] : 0;
    for (int k = 0; k < nwi; k++) {
        if (wis[k] < 0 || wis[k] >= model_nwidths(bb)) {
            features_set_free(out);
            return sc_errorf(SC_ERR_ARG, "features: width index %d, the model has %d widths", wis[k],
                             model_nwidths(bb));
        }
        if (wis[k] < wi_min) wi_min = wis[k];
        out->wi[k] = wis[k];
        out->dims[k] = model_feat_dim(bb, wis[k]);
        out->F[k] = sc_calloc_n(float, (size_t)(out->n_local ? out->n_local : 1) * out->dims[k]);
    }
    out->labels = sc_calloc_n(int32_t, out->n_local ? out->n_local : 1);
    if (out->n_local == 0) return SC_OK;

    int nb = batch < out->n_local ? batch : (int)out->n_local;
    loader_cfg lc;
    memset(&lc, 0, sizeof lc);
    lc.set = set;
    lc.view[0] = *aug;
    lc.nviews = 1;
    lc.global_batch = nb; /* an eval loader's batch is local */
    lc.workers = workers;
    lc.seed = seed;
    loader *ld = NULL;
    sc_err e = aug_check(aug, set->c, set->h, set->w);
    if (e == SC_OK) e = loader_create_eval(&lc, begin, end, &ld);
    if (e != SC_OK) { features_set_free(out); return e; }
    if (epoch > 0) loader_seek(ld, epoch, 0); /* an eval pass of epoch e draws views from (seed, e, i) */
    model_tape *tape = model_tape_create_infer(bb, wi_min, nb);
    int64_t row = 0;
    for (;;) {
        loader_batch b;
        e = loader_next(ld, &b);
        if (e != SC_OK || b.b == 0) break;
        if (row + b.b > out->n_local) { e = sc_errorf(SC_ERR_ARG, "features: loader gave more rows than asked"); break; }
        memcpy(out->labels + row, b.labels, sizeof(int32_t) * (size_t)b.b);
        for (int k = 0; k < nwi; k++) {
            double t0 = sc_now();
            model_forward(bb, tape, wis[k], b.x[0], b.b, false, NULL);
            const float *f = model_features(tape); /* [C][b] */
            int C = out->dims[k];
            float *dst = out->F[k] + (size_t)row * C;
            for (int j = 0; j < b.b; j++)
                for (int c = 0; c < C; c++) dst[(size_t)j * C + c] = f[(size_t)c * b.b + j];
            out->seconds[k] += sc_now() - t0;
        }
        row += b.b;
    }
    model_tape_free(tape);
    loader_free(ld);
    if (e == SC_OK && row != out->n_local)
        e = sc_errorf(SC_ERR_IO, "features: %lld of %lld rows read from %s", (long long)row, (long long)out->n_local,
                      set->source);
    if (e != SC_OK) features_set_free(out);
    return e;
}

sc_err features_classify(model *enc, const data_set *set, int64_t n, const aug_cfg *aug, int batch, int workers,
                         int nwi, const int *wis, double *top1) {
    const model_cfg *mc = model_config(enc);
    int P = comm_size(), r = comm_rank(), K = mc->head_out;
    int64_t begin = n * r / P, end = n * (r + 1) / P, nl = end - begin;
    double *acc = sc_calloc_n(double, (size_t)nwi + 1);
    sc_err e = SC_OK;
    if (nwi < 1 || nwi > FEATURES_MAX_WIDTHS || batch < 1 || n < 0 || n > set->n)
        e = sc_errorf(SC_ERR_ARG, "classify: %d widths, batch %d, %lld of %lld rows", nwi, batch, (long long)n,
                      (long long)set->n);
    loader *ld = NULL;
    model_tape *tape = NULL;
    int nb = nl < batch ? (int)(nl > 0 ? nl : 1) : batch;
    if (e == SC_OK && nl > 0) {
        loader_cfg lc;
        memset(&lc, 0, sizeof lc);
        lc.set = set;
        lc.view[0] = *aug;
        lc.nviews = 1;
        lc.global_batch = nb;
        lc.workers = workers;
        e = aug_check(aug, set->c, set->h, set->w);
        if (e == SC_OK) e = loader_create_eval(&lc, begin, end, &ld);
        int wmin = wis[0];
        for (int k = 0; k < nwi; k++) wmin = wis[k] < wmin ? wis[k] : wmin;
        if (e == SC_OK) tape = model_tape_create_infer(enc, wmin, nb);
    }
    int64_t row = 0;
    while (e == SC_OK && nl > 0) {
        loader_batch b;
        e = loader_next(ld, &b);
        if (e != SC_OK || b.b == 0) break;
        for (int k = 0; k < nwi; k++) {
            model_forward(enc, tape, wis[k], b.x[0], b.b, false, NULL);
            const float *o = model_output(tape); /* [K][b] */
            for (int j = 0; j < b.b; j++) {
                int y = b.labels[j], above = 0;
                if (y < 0 || y >= K) { e = sc_errorf(SC_ERR_FORMAT, "classify: label %d of %s outside the %d "
                                                     "classifier outputs", y, set->source, K); break; }
                float zy = o[(size_t)y * b.b + j];
                for (int c = 0; c < K; c++) {
                    float zc = o[(size_t)c * b.b + j];
                    above += zc > zy || (zc == zy && c < y);
                }
                acc[k] += above == 0;
            }
        }
        row += b.b;
    }
    if (tape) model_tape_free(tape);
    if (ld) loader_free(ld);
    acc[nwi] = (double)row;
    if (comm_allreduce_max_int(e != SC_OK)) {
        sc_free(acc);
        return e != SC_OK ? e : sc_errorf(SC_ERR_IO, "classify: another rank failed");
    }
    comm_allreduce_sum_f64(acc, nwi + 1);
    for (int k = 0; k < nwi; k++) top1[k] = acc[nwi] > 0 ? acc[k] / acc[nwi] : 0.0;
    sc_free(acc);
    return SC_OK;
}

sc_err features_write_npy(const char *path, int64_t rows, int cols, const float *data) {
    char hdr[256];
    int len = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %d), }",
                       (long long)rows, cols);
    /* magic(6) + version(2) + header length(2) + header, padded with spaces and ending in \n to a multiple of 64 */
    int total = 10 + len + 1;
    int pad = (64 - total % 64) % 64;
    memset(hdr + len, ' ', (size_t)pad);
    len += pad;
    hdr[len++] = '\n';
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return sc_errorf(SC_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(len & 0xff),
                             (unsigned char)(len >> 8)};
    size_t count = (size_t)rows * (size_t)cols;
    bool ok = fwrite(pre, 1, 10, f) == 10 && fwrite(hdr, 1, (size_t)len, f) == (size_t)len &&
              (count == 0 || fwrite(data, sizeof(float), count, f) == count); /* the host is little-endian (x86) */
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int err = errno;
        remove(tmp);
        return sc_errorf(SC_ERR_IO, "%s: write failed: %s", path, strerror(err));
    }
    return SC_OK;
}

sc_err features_open_split(const sc_config *cfg, const char *split, data_set *set) {
    memset(set, 0, sizeof *set);
    const char *fmt = cfg->data.dataset == CFG_DATA_SHARDS ? "shard" : config_dataset_name(cfg->data.dataset);
    SC_TRY(data_open(fmt, cfg->data.dir, split, 0, set));
    int img = cfg->model.image_size;
    sc_err e = SC_OK;
    if (set->c != cfg->model.in_channels)
        e = sc_errorf(SC_ERR_CONFIG, "data: %s has %d channel(s), the model takes %d (model.in_channels)", set->source,
                      set->c, cfg->model.in_channels);
    else if (cfg->data.dataset == CFG_DATA_SHARDS ? (set->h < img || set->w < img) : (set->h != img || set->w != img))
        e = sc_errorf(SC_ERR_CONFIG, "data: %s has %dx%d images, the model takes %dx%d (model.image_size)%s",
                      set->source, set->h, set->w, img, img,
                      cfg->data.dataset == CFG_DATA_SHARDS ? "; shards may be larger, never smaller" : "");
    if (e != SC_OK) data_set_free(set);
    return e;
}

sc_err features_eval_aug(const sc_config *cfg, const data_set *set, aug_cfg *a) {
    int img = cfg->model.image_size;
    SC_TRY(aug_preset("none", 0, cfg->model.in_channels, img, img, a));
    for (int ch = 0; ch < cfg->model.in_channels && ch < 3; ch++) {
        a->mean[ch] = (float)cfg->data.mean.v[ch < cfg->data.mean.n ? ch : 0];
        a->std[ch] = (float)cfg->data.std.v[ch < cfg->data.std.n ? ch : 0];
    }
    return aug_check(a, set->c, set->h, set->w);
}

sc_err features_train_aug(const sc_config *cfg, const data_set *set, double smin, double smax, aug_cfg *a) {
    SC_TRY(features_eval_aug(cfg, set, a));
    a->rrc = 1;
    a->scale_min = (float)smin;
    a->scale_max = (float)smax;
    a->ratio_min = 3.0f / 4.0f;
    a->ratio_max = 4.0f / 3.0f;
    a->flip_p = 0.5f;
    return aug_check(a, set->c, set->h, set->w);
}

int features_batch(const sc_config *cfg) { return cfg->model.image_size <= 64 ? 256 : 32; }
