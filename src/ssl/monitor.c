#include "ssl/monitor.h"
#include "comm/comm.h"
#include "core/timer.h"
#include "eval/features.h"
#include "eval/knn.h"
#include <string.h>

struct mon_knn {
    sc_config cfg;
    data_set train, test;
    int64_t n_bank, n_query;
    aug_cfg aug;
    model *bb;            /* backbone-only copy of the query encoder */
    float *bank;          /* [n_bank][dmax], gathered over ranks */
    int32_t *bank_labels; /* [n_bank] */
};

sc_err mon_knn_create(const sc_config *cfg, const model *q, mon_knn **out) {
    *out = NULL;
    mon_knn *km = sc_calloc_n(mon_knn, 1);
    km->cfg = *cfg;
    sc_err e = features_open_split(cfg, "train", &km->train);
    if (e == SC_OK) e = features_open_split(cfg, "test", &km->test);
    if (e == SC_OK) e = features_eval_aug(cfg, &km->train, &km->aug);
    if (e != SC_OK) {
        mon_knn_free(km);
        return e;
    }
    int64_t sub = cfg->eval.knn_subset;
    km->n_bank = sub > 0 && sub < km->train.n ? sub : km->train.n;
    km->n_query = sub > 0 && sub < km->test.n ? sub : km->test.n;
    model_cfg bc = features_backbone_cfg(model_config(q));
    km->bb = model_create(&bc, &e);
    if (!km->bb) {
        mon_knn_free(km);
        return e;
    }
    km->bank = sc_calloc_n(float, (size_t)km->n_bank * model_feat_dim(km->bb, 0));
    km->bank_labels = sc_calloc_n(int32_t, km->n_bank);
    *out = km;
    return SC_OK;
}

void mon_knn_free(mon_knn *km) {
    if (!km) return;
    if (km->train.labels) data_set_free(&km->train);
    if (km->test.labels) data_set_free(&km->test);
    if (km->bb) model_free(km->bb);
    sc_free(km->bank);
    sc_free(km->bank_labels);
    sc_free(km);
}

sc_err mon_knn_run(mon_knn *km, const model *q, double *top1, double *seconds) {
    double t0 = sc_now();
    sc_err e = features_copy_by_name(km->bb, q);
    int nw = model_nwidths(km->bb), wis[FEATURES_MAX_WIDTHS];
    for (int i = 0; i < nw; i++) wis[i] = i;
    features_set fb, fq;
    memset(&fb, 0, sizeof fb);
    memset(&fq, 0, sizeof fq);
    int batch = features_batch(&km->cfg);
    if (e == SC_OK)
        e = features_extract(km->bb, &km->train, km->n_bank, &km->aug, batch, km->cfg.data.workers, nw, wis, &fb);
    if (e == SC_OK)
        e = features_extract(km->bb, &km->test, km->n_query, &km->aug, batch, km->cfg.data.workers, nw, wis, &fq);
    /* a failure on one rank must not leave the others in the gathers below */
    if (comm_allreduce_max_int(e != SC_OK)) {
        features_set_free(&fb);
        features_set_free(&fq);
        return e != SC_OK ? e : sc_errorf(SC_ERR_IO, "kNN monitor: feature extraction failed on another rank");
    }
    /* labels of the bank: every rank's rows into place, summed (each row written by exactly one rank) */
    float *lab = sc_calloc_n(float, km->n_bank); /* labels are small integers: exact in float */
    for (int64_t i = 0; i < fb.n_local; i++) lab[fb.row0 + i] = (float)fb.labels[i];
    comm_allreduce_sum_f32(lab, (size_t)km->n_bank);
    for (int64_t i = 0; i < km->n_bank; i++) km->bank_labels[i] = (int32_t)lab[i];
    sc_free(lab);
    double correct[FEATURES_MAX_WIDTHS] = {0};
    int classes = km->train.nclasses;
    for (int k = 0; k < nw; k++) {
        int d = fb.dims[k];
        memset(km->bank, 0, sizeof(float) * (size_t)km->n_bank * d);
        memcpy(km->bank + (size_t)fb.row0 * d, fb.F[k], sizeof(float) * (size_t)fb.n_local * d);
        comm_allreduce_sum_f32(km->bank, (size_t)km->n_bank * d);
        int64_t c = 0;
        if (fq.n_local > 0) {
            e = knn_classify((int)km->n_bank, d, km->bank, km->bank_labels, (int)fq.n_local, fq.F[k], fq.labels,
                             classes, km->cfg.eval.knn_k, (float)km->cfg.eval.knn_t, NULL, &c);
            if (e != SC_OK) break;
        }
        correct[k] = (double)c;
    }
    int bad = comm_allreduce_max_int(e != SC_OK);
    comm_allreduce_sum_f64(correct, nw);
    for (int k = 0; k < nw; k++) top1[k] = correct[k] / (double)km->n_query;
    features_set_free(&fb);
    features_set_free(&fq);
    *seconds = sc_now() - t0;
    return bad ? (e != SC_OK ? e : sc_errorf(SC_ERR_ARG, "kNN monitor failed on another rank")) : SC_OK;
}
