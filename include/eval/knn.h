/* eval/knn: the weighted kNN monitor (docs/method.md §8.3; InstDisc / MoCo-demo style). Features are L2-normalised,
 * sim = cosine; the k nearest bank rows vote for their labels with weight exp(sim / T); the class with the
 * largest total wins (ties: the smaller class index). Defaults k = 200, T = 0.1. Not collective: pass the
 * whole bank (e.g. comm_allgather_f32 of each rank's rows) and any subset of queries; sum the counts over
 * ranks when the queries are split. */
#ifndef SC_EVAL_KNN_H
#define SC_EVAL_KNN_H
#include "core/error.h"
#include <stdint.h>

/* bank [n_bank][d], queries [n_query][d], row-major fp32 (not modified). pred (optional): [n_query] predicted
 * classes. *correct: number of queries whose prediction equals qlabels (qlabels may be NULL with pred given).
 * k is clamped to n_bank. Errors: bad sizes, labels outside [0, classes), T <= 0. */
sc_err knn_classify(int n_bank, int d, const float *bank, const int32_t *blabels, int n_query, const float *queries,
                    const int32_t *qlabels, int classes, int k, float T, int32_t *pred, int64_t *correct);
/* top-1 accuracy in [0, 1] (convenience; fatal on bad arguments, which are programming errors here) */
double knn_top1(int n_bank, int d, const float *bank, const int32_t *blabels, int n_query, const float *queries,
                const int32_t *qlabels, int classes, int k, float T);
#endif
