/* eval/graddiag: see the header for the slicing rule (the reference's). Norms are accumulated in double over each
 * width's sub-block of the row-major weight; one pass per width is simple and cheap (this runs every ~100 steps,
 * on the averaged gradient). */
#include "eval/graddiag.h"
#include <math.h>
#include <string.h>

extern void dgesvd_(const char *jobu, const char *jobvt, const int *m, const int *n, double *a, const int *lda,
                    double *s, double *u, const int *ldu, double *vt, const int *ldvt, double *work, const int *lwork,
                    int *info, size_t, size_t);

#define GD_CLAMP 1000.0

static bool candidate(const param_info *t) {
    return t->kind == PARAM_WEIGHT && (t->ndim == 2 || t->ndim == 4) && !strstr(t->name, "bn");
}

graddiag_rule graddiag_rule_for(const param_info *tab, int n, int i) {
    graddiag_rule r = {.used = candidate(&tab[i]), .slice_out = true, .slice_in = true};
    if (!r.used) return r;
    const param_info *t = &tab[i];
    if (strstr(t->name, "fc")) r.slice_out = false; /* the reference: `if 'fc' in n: dim1 = p.shape[0]` */
    if (t->shape[1] == 3) r.slice_in = false;       /* the reference: `if p.shape[1] == 3: dim2 = p.shape[1]` */
    if (t->ndim == 4) {                             /* ... which is its RGB stem; the stem of a 1-channel model too */
        int first4 = -1;
        for (int j = 0; j < n && first4 < 0; j++)
            if (candidate(&tab[j]) && tab[j].ndim == 4) first4 = j;
        if (first4 == i) r.slice_in = false;
    }
    return r;
}

/* ||block rows [r0, r0+rows) x cols [c0, c0+cols)|| of a row-major [R][ld] matrix */
static double block_norm2(const float *g, int r0, int rows, int c0, int cols, int ld) {
    double s = 0;
    for (int r = r0; r < r0 + rows; r++) {
        const float *row = g + (size_t)r * ld + c0;
        float acc = 0; /* float partial per row vectorizes; rows are short enough for fp32 */
        for (int c = 0; c < cols; c++) acc += row[c] * row[c];
        s += acc;
    }
    return s;
}

/* s_l(w) of tensor i of src for every width; false when a block falls outside the tensor (a bad layout) */
static bool layer_norms(const graddiag_src *src, int i, graddiag_rule r, int nwidths, const float *widths,
                        double *s) {
    const param_info *t = &src->tab[i];
    int out_full = t->shape[0], in_full = t->shape[1], kk = t->ndim == 4 ? t->shape[2] * t->shape[3] : 1;
    for (int w = 0; w < nwidths; w++) {
        int ro = r.slice_out ? nn_width_channels(out_full, widths[w]) : out_full;
        int ci = r.slice_in ? nn_width_channels(in_full, widths[w]) : in_full;
        int r0 = r.slice_out && src->row0 ? src->row0[(size_t)i * MODEL_MAX_WIDTHS + w] : 0;
        int c0 = r.slice_in && src->col0 ? src->col0[(size_t)i * MODEL_MAX_WIDTHS + w] : 0;
        if (r0 < 0 || c0 < 0 || r0 + ro > out_full || c0 + ci > in_full) return false;
        double v = sqrt(block_norm2(src->grads + t->offset, r0, ro, c0 * kk, ci * kk, in_full * kk));
        s[w] = v < GD_CLAMP ? v : GD_CLAMP; /* also catches NaN */
    }
    return true;
}

sc_err graddiag_compute(const graddiag_src *src, int nsrc, int nwidths, const float *widths, graddiag_result *out) {
    memset(out, 0, sizeof *out);
    if (nwidths < 1 || nwidths > MODEL_MAX_WIDTHS)
        return sc_errorf(SC_ERR_ARG, "graddiag: %d widths, expected 1..%d", nwidths, MODEL_MAX_WIDTHS);
    for (int w = 1; w < nwidths; w++)
        if (!(widths[w] < widths[w - 1]))
            return sc_errorf(SC_ERR_ARG, "graddiag: widths must be descending (width %d = %g after %g)", w,
                             (double)widths[w], (double)widths[w - 1]);
    out->nwidths = nwidths;
    memcpy(out->widths, widths, sizeof(float) * (size_t)nwidths);
    int ntot = 0;
    for (int k = 0; k < nsrc; k++) ntot += src[k].n;
    out->layer_src = sc_calloc_n(int, ntot + 1);
    out->layer_tensor = sc_calloc_n(int, ntot + 1);
    out->s = sc_calloc_n(double, (size_t)(ntot + 1) * nwidths);
    int wl = nwidths - 1;
    double r2sum = 0;
    int r2n = 0;
    for (int k = 0; k < nsrc; k++)
        for (int i = 0; i < src[k].n; i++) {
            graddiag_rule r = src[k].override ? src[k].override[i] : graddiag_rule_for(src[k].tab, src[k].n, i);
            if (!r.used) continue;
            double *s = out->s + (size_t)out->nlayers * nwidths;
            if (!layer_norms(&src[k], i, r, nwidths, widths, s)) {
                sc_err e = sc_errorf(SC_ERR_ARG, "graddiag: %s: a width's block lies outside the %d x %d tensor",
                                     src[k].tab[i].name, src[k].tab[i].shape[0], src[k].tab[i].shape[1]);
                graddiag_free(out);
                return e;
            }
            bool keep = true;
            for (int w = 0; w < nwidths; w++) keep = keep && s[w] < GD_CLAMP;
            if (!keep) { out->nskipped++; continue; }
            out->layer_src[out->nlayers] = k;
            out->layer_tensor[out->nlayers++] = i;
            if (s[wl] > 0) {
                double outside = s[0] * s[0] - s[wl] * s[wl];
                r2sum += sqrt(outside > 0 ? outside : 0) / s[wl];
                r2n++;
            }
        }
    if (out->nlayers == 0)
        return sc_errorf(SC_ERR_ARG, "graddiag: no weight tensor to measure among %d tensors (all clamped or none "
                         "matched the rule)", ntot);
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

sc_err graddiag_compute_models(model *const *models, int nmodels, graddiag_result *out) {
    memset(out, 0, sizeof *out);
    if (nmodels < 1 || nmodels > 4) return sc_errorf(SC_ERR_ARG, "graddiag: %d models, expected 1..4", nmodels);
    int nw = model_nwidths(models[0]);
    float ws[MODEL_MAX_WIDTHS];
    for (int w = 0; w < nw; w++) ws[w] = model_width(models[0], w);
    for (int k = 1; k < nmodels; k++)
        if (model_nwidths(models[k]) != nw) return sc_errorf(SC_ERR_ARG, "graddiag: models with different widths");
    graddiag_src src[4];
    for (int k = 0; k < nmodels; k++) {
        model *m = models[k];
        int n = model_ntensors(m);
        src[k] = (graddiag_src){.tab = model_tensor(m, 0), .n = n, .grads = model_grads(m)};
        if (!model_config(m)->disjoint) continue;
        int *r0 = sc_calloc_n(int, (size_t)n * MODEL_MAX_WIDTHS), *c0 = sc_calloc_n(int, (size_t)n * MODEL_MAX_WIDTHS);
        for (int i = 0; i < n; i++)
            for (int w = 0; w < nw; w++)
                model_weight_block(m, i, w, &r0[(size_t)i * MODEL_MAX_WIDTHS + w], &c0[(size_t)i * MODEL_MAX_WIDTHS + w]);
        src[k].row0 = r0;
        src[k].col0 = c0;
    }
    sc_err e = graddiag_compute(src, nmodels, nw, ws, out);
    for (int k = 0; k < nmodels; k++) {
        sc_free((void *)src[k].row0);
        sc_free((void *)src[k].col0);
    }
    return e;
}

void graddiag_free(graddiag_result *r) {
    if (!r) return;
    sc_free(r->layer_src); sc_free(r->layer_tensor); sc_free(r->s);
    r->layer_src = r->layer_tensor = NULL; r->s = NULL;
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
