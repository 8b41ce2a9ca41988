/* ssl/monitor: the kNN monitor of pre-training (docs/method.md §8.3: weighted kNN, k = eval.knn_k, T = eval.knn_t) per width,
 * every eval.knn_every_epochs epochs. The frozen eval-mode backbone of the query encoder embeds a bank (the first
 * eval.knn_subset training images, 0 = all) and the test images (as many, at most), rows split contiguously over
 * the ranks; each rank classifies its test rows against the whole bank. Runs between steps: its buffers are
 * allocated once at creation. */
#ifndef SC_SSL_MONITOR_H
#define SC_SSL_MONITOR_H
#include "core/error.h"
#include "io/config.h"
#include "model/model.h"

typedef struct mon_knn mon_knn;
/* Local (opens the test split, plans the backbone); q: the query encoder whose backbone is monitored. */
sc_err mon_knn_create(const sc_config *cfg, const model *q, mon_knn **out);
/* COLLECTIVE: top-1 in [0, 1] per width of q (top1[model_nwidths]) and the seconds it took. */
sc_err mon_knn_run(mon_knn *km, const model *q, double *top1, double *seconds);
void mon_knn_free(mon_knn *km);
#endif
