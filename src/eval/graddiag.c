/* eval/graddiag: see the header for the slicing rule. Norms are accumulated in double over the prefix
 * sub-block of each row-major weight; per-width slices are nested prefixes, so one pass per width is simple
 * and cheap (this runs every ~100 steps, on the averaged gradient). */
#include "eval/graddiag.h"
#include <math.h>
#include <string.h>

extern void dgesvd_(const char *jobu, const char *jobvt, const int *m, const int *n, double *a, const int *lda,
                    double *s, double *u, const int *ldu, double *vt, const int *ldvt, double *work, const int *lwork,
                    int *info, size_t, size_t);

#define GD_CLAMP 1000.0

static bool starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }
static bool is_head(const char *name) { return starts_with(name, "fc") || starts_with(name, "predictor"); }

static bool candidate(const param_info *t) {
    return t->kind == PARAM_WEIGHT && (t->ndim == 2 || t->ndim == 4) && t->width_only == -1 && !strstr(t->name, "bn");
}

graddiag_rule graddiag_rule_for(const param_info *tab, int n, int i) {
    graddiag_rule r = {.used = candidate(&tab[i]), .slice_out = true, .slice_in = true};
    if (!r.used) return r;
    const param_info *t = &tab[i];
    if (t->ndim == 4) {
        int first4 = -1;
        for (int j = 0; j < n && first4 < 0; j++)
            if (candidate(&tab[j]) && tab[j].ndim == 4) first4 = j;
        if (first4 == i) r.slice_in = false; /* the stem sees the image's 1 or 3 channels at every width */
    } else if (is_head(t->name)) {
        int last = -1, firstpred = -1;
        for (int j = 0; j < n; j++)
            if (candidate(&tab[j]) && tab[j].ndim == 2 && is_head(tab[j].name)) {
                last = j;
                if (firstpred < 0 && starts_with(tab[j].name, "predictor")) firstpred = j;
            }
        if (last == i) r.slice_out = false;
        if (firstpred == i) r.slice_in = false;
    }
    return r;
}

/* ||prefix block rows x cols|| of a row-major [R][ld] matrix */
static double block_norm2(const float *g, int rows, int cols, int ld) {
    double s = 0;
    for (int r = 0; r < rows; r++) {
        const float *row = g + (size_t)r * ld;
        float acc = 0; /* float partial per row vectorizes; rows are short enough for fp32 */
        for (int c = 0; c < cols; c++) acc += row[c] * row[c];
        s += acc;
    }
    return s;
}

sc_err graddiag_compute(const param_info *tab, int n, const float *grads, int nwidths, const float *widths,
                        const graddiag_rule *override, graddiag_result *out) {
    memset(out, 0, sizeof *out);
    if (nwidths < 1 || nwidths > MODEL_MAX_WIDTHS)
        return sc_errorf(SC_ERR_ARG, "graddiag: %d widths, expected 1..%d", nwidths, MODEL_MAX_WIDTHS);
    for (int w = 1; w < nwidths; w++)
        if (!(widths[w] < widths[w - 1]))
            return sc_errorf(SC_ERR_ARG, "graddiag: widths must be descending (width %d = %g after %g)", w,
                             (double)widths[w], (double)widths[w - 1]);
    out->nwidths = nwidths;
    memcpy(out->widths, widths, sizeof(float) * (size_t)nwidths);
    out->layer_tensor = sc_calloc_n(int, n + 1);
    out->s = sc_calloc_n(double, (size_t)(n + 1) * nwidths);
    int wl = nwidths - 1;
    double r2sum = 0;
    int r2n = 0;
    for (int i = 0; i < n; i++) {
        graddiag_rule r = override ? override[i] : graddiag_rule_for(tab, n, i);
        if (!r.used) continue;
        const param_info *t = &tab[i];
        int out_full = t->shape[0], in_full = t->shape[1], kk = t->ndim == 4 ? t->shape[2] * t->shape[3] : 1;
        int ld = in_full * kk;
        double *s = out->s + (size_t)out->nlayers * nwidths;
        bool keep = true;
        for (int w = 0; w < nwidths; w++) {
            int ro = r.slice_out ? nn_width_channels(out_full, widths[w]) : out_full;
            int ci = r.slice_in ? nn_width_channels(in_full, widths[w]) : in_full;
            double v = sqrt(block_norm2(grads + t->offset, ro, ci * kk, ld));
            if (!(v < GD_CLAMP)) { v = GD_CLAMP; keep = false; } /* also catches NaN */
            s[w] = v;
        }
        if (!keep) { out->nskipped++; continue; }
        out->layer_tensor[out->nlayers++] = i;
        if (s[wl] > 0) {
            double outside = s[0] * s[0] - s[wl] * s[wl];
            r2sum += sqrt(outside > 0 ? outside : 0) / s[wl];
            r2n++;
        }
    }
    if (out->nlayers == 0)
        return sc_errorf(SC_ERR_ARG, "graddiag: no weight tensor to measure among %d tensors (all clamped or none "
                         "matched the rule)", n);
    for (int w = 0; w < nwidths; w++) {
        double sum = 0;
        for (int l = 0; l < out->nlayers; l++) sum += out->s[(size_t)l * nwidths + w];
        out->N[w] = sum / out->nlayers;
    }
    double Nf = out->N[0], Nm = out->N[wl];
    out->R1 = Nm > 0 ? Nf / Nm : NAN;
    out->R2_approx = Nm > 0 ? sqrt(Nf * Nf - Nm * Nm > 0 ? Nf * Nf - Nm * Nm : 0) / Nm : NAN;
    out->R2_exact = r2n > 0 ? r2sum / r2n : NAN;
    return SC_OK;
}

void graddiag_free(graddiag_result *r) {
    if (!r) return;
    sc_free(r->layer_tensor); sc_free(r->s);
    r->layer_tensor = NULL; r->s = NULL;
}

sc_err graddiag_top2_sv(int m, int n, const float *G, int ldg, double sv[2]) {
    if (m < 1 || n < 1 || ldg < n)
        return sc_errorf(SC_ERR_ARG, "graddiag_top2_sv: bad matrix %d x %d (ld %d)", m, n, ldg);
    /* row-major m x n = column-major n x m (the transpose): same singular values */
    int M = n, N = m, lda = n, k = m < n ? m : n, one = 1, lwork = -1, info = 0;
    double *a = sc_calloc_n(double, (size_t)m * n);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) a[(size_t)i * n + j] = G[(size_t)i * ldg + j];
    double *s = sc_calloc_n(double, k), wq = 0, dummy = 0;
    dgesvd_("N", "N", &M, &N, a, &lda, s, &dummy, &one, &dummy, &one, &wq, &lwork, &info, 1, 1);
    lwork = (int)wq + 1;
    double *work = sc_calloc_n(double, lwork);
    dgesvd_("N", "N", &M, &N, a, &lda, s, &dummy, &one, &dummy, &one, work, &lwork, &info, 1, 1);
    sv[0] = s[0];
    sv[1] = k > 1 ? s[1] : 0.0;
    sc_free(a); sc_free(s); sc_free(work);
    if (info != 0) return sc_errorf(SC_ERR_NUMERIC, "graddiag_top2_sv: dgesvd did not converge (info %d)", info);
    return SC_OK;
}
