/* eval/knn: see the header. Similarities of a block of queries against the whole (normalised) bank are one
 * sgemm; the k largest per query are kept in a min-heap (O(n log k)), then vote. */
#include "eval/knn.h"
#include "blas/blas.h"
#include <math.h>
#include <string.h>

#define KNN_QBLOCK 64

static void normalize_rows(int n, int d, const float *x, float *out) {
    for (int i = 0; i < n; i++) {
        const float *r = x + (size_t)i * d;
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)r[j] * r[j];
        float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f; /* F.normalize: a zero row stays zero */
        for (int j = 0; j < d; j++) out[(size_t)i * d + j] = r[j] * inv;
    }
}

/* min-heap on (sim) of size k holding bank indices */
static void heap_down(float *hv, int *hi, int k, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < k && hv[l] < hv[m]) m = l;
        if (r < k && hv[r] < hv[m]) m = r;
        if (m == i) return;
        float tv = hv[i]; hv[i] = hv[m]; hv[m] = tv;
        int ti = hi[i]; hi[i] = hi[m]; hi[m] = ti;
        i = m;
    }
}

sc_err knn_classify(int n_bank, int d, const float *bank, const int32_t *blabels, int n_query, const float *queries,
                    const int32_t *qlabels, int classes, int k, float T, int32_t *pred, int64_t *correct) {
    if (n_bank < 1 || d < 1 || n_query < 0 || classes < 1 || k < 1 || !(T > 0))
        return sc_errorf(SC_ERR_ARG, "knn: bad arguments (bank %d, d %d, queries %d, classes %d, k %d, T %g): "
                         "expected bank >= 1, d >= 1, k >= 1, T > 0", n_bank, d, n_query, classes, k, (double)T);
    for (int i = 0; i < n_bank; i++)
        if (blabels[i] < 0 || blabels[i] >= classes)
            return sc_errorf(SC_ERR_ARG, "knn: bank label %d of row %d outside [0, %d)", (int)blabels[i], i, classes);
    if (k > n_bank) k = n_bank;
    float *nb = sc_calloc_n(float, (size_t)n_bank * d);
    float *nq = sc_calloc_n(float, (size_t)KNN_QBLOCK * d);
    float *sim = sc_calloc_n(float, (size_t)KNN_QBLOCK * n_bank);
    float *hv = sc_calloc_n(float, k);
    int *hi = sc_calloc_n(int, k);
    double *score = sc_calloc_n(double, classes);
    normalize_rows(n_bank, d, bank, nb);
    int64_t ok = 0;
    for (int q0 = 0; q0 < n_query; q0 += KNN_QBLOCK) {
        int nq_b = n_query - q0 < KNN_QBLOCK ? n_query - q0 : KNN_QBLOCK;
        normalize_rows(nq_b, d, queries + (size_t)q0 * d, nq);
        blas_sgemm(false, true, nq_b, n_bank, d, 1.0f, nq, d, nb, d, 0.0f, sim, n_bank);
        for (int q = 0; q < nq_b; q++) {
            const float *s = sim + (size_t)q * n_bank;
            for (int j = 0; j < k; j++) { hv[j] = s[j]; hi[j] = j; }
            for (int j = k / 2 - 1; j >= 0; j--) heap_down(hv, hi, k, j);
            for (int j = k; j < n_bank; j++)
                if (s[j] > hv[0]) { hv[0] = s[j]; hi[0] = j; heap_down(hv, hi, k, 0); }
            memset(score, 0, sizeof(double) * (size_t)classes);
            for (int j = 0; j < k; j++) score[blabels[hi[j]]] += exp((double)hv[j] / T);
            int best = 0;
            for (int c = 1; c < classes; c++)
                if (score[c] > score[best]) best = c;
            if (pred) pred[q0 + q] = best;
            if (qlabels && best == qlabels[q0 + q]) ok++;
        }
    }
    sc_free(nb); sc_free(nq); sc_free(sim); sc_free(hv); sc_free(hi); sc_free(score);
    if (correct) *correct = ok;
    return SC_OK;
}

double knn_top1(int n_bank, int d, const float *bank, const int32_t *blabels, int n_query, const float *queries,
                const int32_t *qlabels, int classes, int k, float T) {
    int64_t ok = 0;
    sc_err e = knn_classify(n_bank, d, bank, blabels, n_query, queries, qlabels, classes, k, T, NULL, &ok);
    if (e != SC_OK) sc_fatal("%s", sc_last_error());
    return n_query > 0 ? (double)ok / n_query : 0.0;
}
