/* eval/graddir: see the header. The PCA goes through the T x T Gram matrix of the centred snapshots (T is the
 * number of diagnostics steps, D = rows * cols can be 262k for ResNet-50's 128 x 2048 layer), accumulated in double
 * over column chunks so that no T x D double copy is ever held. */
#include "eval/graddir.h"
#include "blas/blas.h"
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

extern void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                   double *work, const int *lwork, int *info, size_t, size_t);

static const char MAGIC[4] = {'G', 'D', 'R', '1'};

struct graddir_log {
    FILE *f;
    char path[1024];
    int rows, cols;     /* shape of prev (0: none yet) */
    float *prev;
    bool have_prev;
};

sc_err graddir_open(const char *path, graddir_log **out) {
    *out = NULL;
    FILE *f = fopen(path, "ab");
    if (!f) return sc_errorf(SC_ERR_IO, "%s: cannot open for appending the gradient snapshots", path);
    graddir_log *g = sc_calloc_n(graddir_log, 1);
    g->f = f;
    snprintf(g->path, sizeof g->path, "%s", path);
    *out = g;
    return SC_OK;
}

sc_err graddir_record(graddir_log *g, long step, int rows, int cols, const float *G, int ldg, double *cos_prev) {
    *cos_prev = NAN;
    if (rows < 1 || cols < 1 || ldg < cols)
        return sc_errorf(SC_ERR_ARG, "graddir_record: bad matrix %d x %d (ld %d)", rows, cols, ldg);
    if (rows != g->rows || cols != g->cols) {
        sc_free(g->prev);
        g->prev = sc_calloc_n(float, (size_t)rows * cols);
        g->rows = rows;
        g->cols = cols;
        g->have_prev = false;
    }
    double dot = 0, a2 = 0, b2 = 0;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            double a = G[(size_t)i * ldg + j], b = g->prev[(size_t)i * cols + j];
            dot += a * b; a2 += a * a; b2 += b * b;
        }
    if (g->have_prev && a2 > 0 && b2 > 0) *cos_prev = dot / sqrt(a2 * b2);
    int32_t hdr[2] = {rows, cols};
    int64_t st = step;
    bool ok = fwrite(MAGIC, 1, 4, g->f) == 4 && fwrite(hdr, sizeof hdr, 1, g->f) == 1 && fwrite(&st, sizeof st, 1, g->f) == 1;
    for (int i = 0; i < rows && ok; i++) {
        memcpy(g->prev + (size_t)i * cols, G + (size_t)i * ldg, sizeof(float) * (size_t)cols);
        ok = fwrite(G + (size_t)i * ldg, sizeof(float), (size_t)cols, g->f) == (size_t)cols;
    }
    g->have_prev = true;
    if (!ok || fflush(g->f) != 0) return sc_errorf(SC_ERR_IO, "%s: writing the snapshot of step %ld failed", g->path, step);
    return SC_OK;
}

void graddir_close(graddir_log *g) {
    if (!g) return;
    if (g->f) fclose(g->f);
    sc_free(g->prev);
    sc_free(g);
}

void graddir_series_free(graddir_series *s) {
    if (!s) return;
    sc_free(s->step);
    sc_free(s->X);
    memset(s, 0, sizeof *s);
}

sc_err graddir_read(const char *path, graddir_series *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return sc_errorf(SC_ERR_IO, "%s: cannot open (the gradient snapshots of a run with eval.grad_diag_every > 0)", path);
    int cap = 0;
    sc_err e = SC_OK;
    for (int rec = 0;; rec++) {
        char mg[4];
        int32_t hdr[2];
        int64_t st;
        size_t got = fread(mg, 1, 4, f);
        if (got == 0) break;
        if (got != 4 || fread(hdr, sizeof hdr, 1, f) != 1 || fread(&st, sizeof st, 1, f) != 1) { out->torn = 1; break; }
        if (memcmp(mg, MAGIC, 4) != 0 || hdr[0] < 1 || hdr[1] < 1 || (int64_t)hdr[0] * hdr[1] > (1 << 28)) {
            e = sc_errorf(SC_ERR_FORMAT, "%s: record %d is not a gradient snapshot (expected \"GDR1\", rows, cols)", path, rec);
            break;
        }
        if (out->T == 0) { out->rows = hdr[0]; out->cols = hdr[1]; }
        if (hdr[0] != out->rows || hdr[1] != out->cols) {
            e = sc_errorf(SC_ERR_FORMAT, "%s: record %d is %d x %d, the earlier ones %d x %d", path, rec, hdr[0], hdr[1],
                          out->rows, out->cols);
            break;
        }
        while (out->T > 0 && out->step[out->T - 1] >= st) out->T--; /* a resumed run rewrote these steps */
        size_t D = (size_t)out->rows * out->cols;
        if (out->T == cap) {
            int nc = cap ? 2 * cap : 64;
            long *ns = sc_calloc_n(long, nc);
            float *nx = sc_calloc_n(float, (size_t)nc * D);
            if (out->T) {
                memcpy(ns, out->step, sizeof(long) * (size_t)out->T);
                memcpy(nx, out->X, sizeof(float) * (size_t)out->T * D);
            }
            sc_free(out->step); sc_free(out->X);
            out->step = ns; out->X = nx; cap = nc;
        }
        if (fread(out->X + (size_t)out->T * D, sizeof(float), D, f) != D) { out->torn = 1; break; }
        out->step[out->T++] = (long)st;
    }
    fclose(f);
    if (e != SC_OK) graddir_series_free(out);
    return e;
}

void graddir_pca_free(graddir_pca *p) {
    if (!p) return;
    sc_free(p->pc);
    sc_free(p->proj);
    p->pc = p->proj = NULL;
}

#define CHUNK 2048

sc_err graddir_pca2(int T, int D, const float *X, graddir_pca *out) {
    memset(out, 0, sizeof *out);
    if (T < 3 || D < 2) return sc_errorf(SC_ERR_ARG, "graddir_pca2: %d snapshots of %d values; a 2-component PCA "
                                         "needs >= 3 snapshots of >= 2 values", T, D);
    out->T = T;
    out->D = D;
    double *mean = sc_calloc_n(double, D), *K = sc_calloc_n(double, (size_t)T * T);
    for (int t = 0; t < T; t++)
        for (int d = 0; d < D; d++) mean[d] += X[(size_t)t * D + d];
    for (int d = 0; d < D; d++) mean[d] /= T;
    /* K = Xc Xc^T: a chunk stored [T][c] is, column-major, the c x T matrix whose Gram A^T A we accumulate */
    double *A = sc_calloc_n(double, (size_t)T * CHUNK);
    for (int d0 = 0; d0 < D; d0 += CHUNK) {
        int c = D - d0 < CHUNK ? D - d0 : CHUNK;
        for (int t = 0; t < T; t++)
            for (int j = 0; j < c; j++) A[(size_t)t * c + j] = X[(size_t)t * D + d0 + j] - mean[d0 + j];
        blas_dsyrk_tn(T, c, 1.0, A, c, d0 == 0 ? 0.0 : 1.0, K, T);
    }
    sc_free(A);
    double *w = sc_calloc_n(double, T), wq = 0;
    int n = T, lwork = -1, info = 0;
    dsyev_("V", "L", &n, K, &n, w, &wq, &lwork, &info, 1, 1);
    lwork = (int)wq + 1;
    double *work = sc_calloc_n(double, lwork);
    if (info == 0) dsyev_("V", "L", &n, K, &n, w, work, &lwork, &info, 1, 1);
    sc_free(work);
    if (info != 0) {
        sc_free(mean); sc_free(K); sc_free(w);
        return sc_errorf(SC_ERR_NUMERIC, "graddir_pca2: dsyev did not converge (info %d)", info);
    }
    double total = 0;
    for (int t = 0; t < T; t++) total += w[t] > 0 ? w[t] : 0;
    out->pc = sc_calloc_n(double, (size_t)2 * D);
    out->proj = sc_calloc_n(double, (size_t)2 * T);
    for (int k = 0; k < 2; k++) {
        double lam = w[T - 1 - k], *u = K + (size_t)(T - 1 - k) * T, *pc = out->pc + (size_t)k * D;
        if (!(lam > 1e-12 * total)) continue; /* no variance left along a second direction */
        out->evr[k] = lam / total;
        int im = 0;
        for (int t = 1; t < T; t++)
            if (fabs(u[t]) > fabs(u[im])) im = t;
        double sg = u[im] < 0 ? -1.0 : 1.0, inv = sg / sqrt(lam);
        for (int t = 0; t < T; t++)
            for (int d = 0; d < D; d++) pc[d] += (X[(size_t)t * D + d] - mean[d]) * u[t] * inv;
        for (int t = 0; t < T; t++) {
            double s = 0;
            for (int d = 0; d < D; d++) s += X[(size_t)t * D + d] * pc[d];
            out->proj[(size_t)t * 2 + k] = s;
        }
    }
    sc_free(mean); sc_free(K); sc_free(w);
    return SC_OK;
}
