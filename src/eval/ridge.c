/* eval/ridge: ridge-regression probe on the normal equations, ScaLAPACK (distributed) or LAPACK (one rank).
 * See include/eval/ridge.h for the model. The design in one paragraph: rows are streamed in chunks of
 * `chunk_rows` per rank; a chunk is first laid out as a 1-D block distribution (rank r owns global rows
 * [r*CH, (r+1)*CH) of a P*CH x (d+1) matrix, zero-padded), redistributed with pdgemr2d to a 2-D block-cyclic
 * grid, and accumulated into A = XᵀX (pdsyrk, lower triangle) and B = XᵀY (pdgemm). Held-out and fitting rows go
 * into separate accumulators (A_fit + A_ho = A_all), so every λ and the final refit cost one Cholesky each and
 * the features are read only once. Solutions are replicated on every rank by a sum-allreduce of each rank's
 * blocks (W is small: (d+1) x classes). */
#include "eval/ridge.h"
#include "blas/blas.h"
#include "comm/comm.h"
#include <math.h>
#include <string.h>

/* BLACS / ScaLAPACK / LAPACK: no C headers; Fortran convention (pointers, hidden trailing string lengths,
 * harmless for the routines implemented in C). Only eval/ declares these. */
extern void Cblacs_get(int ictxt, int what, int *val);
extern void Cblacs_gridinit(int *ictxt, const char *order, int nprow, int npcol);
extern void Cblacs_gridinfo(int ictxt, int *nprow, int *npcol, int *myrow, int *mycol);
extern void Cblacs_gridexit(int ictxt);
extern void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb, const int *irsrc,
                      const int *icsrc, const int *ictxt, const int *lld, int *info);
extern int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc, const int *nprocs);
extern void pdgemr2d_(const int *m, const int *n, const double *a, const int *ia, const int *ja, const int *desca,
                      double *b, const int *ib, const int *jb, const int *descb, const int *ictxt);
extern void pdsyrk_(const char *uplo, const char *trans, const int *n, const int *k, const double *alpha,
                    const double *a, const int *ia, const int *ja, const int *desca, const double *beta, double *c,
                    const int *ic, const int *jc, const int *descc, size_t, size_t);
extern void pdgemm_(const char *ta, const char *tb, const int *m, const int *n, const int *k, const double *alpha,
                    const double *a, const int *ia, const int *ja, const int *desca, const double *b, const int *ib,
                    const int *jb, const int *descb, const double *beta, double *c, const int *ic, const int *jc,
                    const int *descc, size_t, size_t);
extern void pdposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *ia, const int *ja,
                    const int *desca, double *b, const int *ib, const int *jb, const int *descb, int *info, size_t);
extern void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda, double *b,
                   const int *ldb, int *info, size_t);

ridge_opts ridge_opts_default(void) {
    ridge_opts o;
    memset(&o, 0, sizeof o);
    o.standardize = true;
    o.holdout_frac = 0.1;
    o.block = 64;
    o.chunk_rows = 1024;
    return o;
}

/* The linear system in either backend. Matrices are column-major (Fortran); in the serial backend the
 * "local" pieces are the whole matrices. */
typedef struct {
    bool dist, comm; /* dist: ScaLAPACK; comm: counts/solutions are summed over ranks */
    int D, C, CH, P, rank;
    /* dist only */
    int ctx1, ctx2, nprow, npcol, myrow, mycol, nb;
    int descS[9], descSY[9], descX[9], descY[9], descA[9], descB[9];
    int xr, xc, yc, ar, ac, bc; /* local rows/cols of X, Y (chunk), A, B */
    double *Xd, *Yd;
    /* both */
    double *S, *SY;                 /* chunk source: [CH][D], [CH][C] column-major, lld CH */
    double *Afit, *Aho, *Bfit, *Bho, *M, *R;
    size_t a_len, b_len;
} rsys;

static int grid_rows(int P) {
    int r = (int)sqrt((double)P);
    while (r > 1 && P % r) r--;
    return r;
}

/* global index of local index l in a block-cyclic dimension (source process 0) */
static inline int bc_global(int l, int nb, int iproc, int nprocs) {
    return (l / nb) * nprocs * nb + iproc * nb + l % nb;
}

static void rsys_desc(int *desc, int m, int n, int mb, int nb, int ctx, int lld) {
    int zero = 0, info = 0;
    if (lld < 1) lld = 1;
    descinit_(desc, &m, &n, &mb, &nb, &zero, &zero, &ctx, &lld, &info);
    SC_CHECK(info == 0, "ridge: descinit failed (info %d) for a %d x %d matrix", info, m, n);
}

static void rsys_init(rsys *s, int D, int C, int CH, bool dist, bool comm, int nb) {
    memset(s, 0, sizeof *s);
    s->D = D; s->C = C; s->CH = CH; s->dist = dist; s->comm = comm;
    s->P = comm ? comm_size() : 1;
    s->rank = comm ? comm_rank() : 0;
    s->S = sc_calloc_n(double, (size_t)CH * D);
    s->SY = sc_calloc_n(double, (size_t)CH * C);
    if (!dist) {
        s->a_len = (size_t)D * D; s->b_len = (size_t)D * C;
    } else {
        int P = s->P, zero = 0;
        s->nb = nb;
        Cblacs_get(0, 0, &s->ctx1);
        Cblacs_gridinit(&s->ctx1, "C", P, 1); /* process r = grid row r: owns chunk rows of rank r */
        Cblacs_get(0, 0, &s->ctx2);
        int pr = grid_rows(P);
        Cblacs_gridinit(&s->ctx2, "R", pr, P / pr);
        Cblacs_gridinfo(s->ctx2, &s->nprow, &s->npcol, &s->myrow, &s->mycol);
        SC_CHECK(s->myrow >= 0, "ridge: rank %d is not in the %d x %d BLACS grid", s->rank, pr, P / pr);
        int M = P * CH;
        rsys_desc(s->descS, M, D, CH, D, s->ctx1, CH);
        rsys_desc(s->descSY, M, C, CH, C, s->ctx1, CH);
        s->xr = numroc_(&M, &nb, &s->myrow, &zero, &s->nprow);
        s->xc = numroc_(&D, &nb, &s->mycol, &zero, &s->npcol);
        s->yc = numroc_(&C, &nb, &s->mycol, &zero, &s->npcol);
        s->ar = numroc_(&D, &nb, &s->myrow, &zero, &s->nprow);
        s->ac = s->xc;
        s->bc = s->yc;
        rsys_desc(s->descX, M, D, nb, nb, s->ctx2, s->xr);
        rsys_desc(s->descY, M, C, nb, nb, s->ctx2, s->xr);
        rsys_desc(s->descA, D, D, nb, nb, s->ctx2, s->ar);
        rsys_desc(s->descB, D, C, nb, nb, s->ctx2, s->ar);
        s->Xd = sc_calloc_n(double, (size_t)s->xr * s->xc + 1);
        s->Yd = sc_calloc_n(double, (size_t)s->xr * s->yc + 1);
        s->a_len = (size_t)s->ar * s->ac; s->b_len = (size_t)s->ar * s->bc;
    }
    s->Afit = sc_calloc_n(double, s->a_len + 1); s->Aho = sc_calloc_n(double, s->a_len + 1);
    s->M = sc_calloc_n(double, s->a_len + 1);
    s->Bfit = sc_calloc_n(double, s->b_len + 1); s->Bho = sc_calloc_n(double, s->b_len + 1);
    s->R = sc_calloc_n(double, s->b_len + 1);
}

static void rsys_free(rsys *s) {
    double *bufs[] = {s->S, s->SY, s->Xd, s->Yd, s->Afit, s->Aho, s->Bfit, s->Bho, s->M, s->R};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) sc_free(bufs[i]);
    if (s->dist) { Cblacs_gridexit(s->ctx1); Cblacs_gridexit(s->ctx2); }
}

/* A += SᵀS (lower), B += SᵀSY for the current chunk. COLLECTIVE in the dist backend. */
static void rsys_accumulate(rsys *s, double *A, double *B) {
    const double one = 1.0;
    const int i1 = 1;
    if (!s->dist) {
        blas_dsyrk_tn(s->D, s->CH, 1.0, s->S, s->CH, 1.0, A, s->D);
        blas_dgemm_tn(s->D, s->C, s->CH, 1.0, s->S, s->CH, s->SY, s->CH, 1.0, B, s->D);
        return;
    }
    int M = s->P * s->CH;
    pdgemr2d_(&M, &s->D, s->S, &i1, &i1, s->descS, s->Xd, &i1, &i1, s->descX, &s->ctx2);
    pdgemr2d_(&M, &s->C, s->SY, &i1, &i1, s->descSY, s->Yd, &i1, &i1, s->descY, &s->ctx2);
    pdsyrk_("L", "T", &s->D, &M, &one, s->Xd, &i1, &i1, s->descX, &one, A, &i1, &i1, s->descA, 1, 1);
    pdgemm_("T", "N", &s->D, &s->C, &M, &one, s->Xd, &i1, &i1, s->descX, s->Yd, &i1, &i1, s->descY, &one, B, &i1,
            &i1, s->descB, 1, 1);
}

/* Solve (A + λI')W = B with I' = I except the bias entry (index D-1); result replicated into Wfull
 * [D][C] column-major. Returns the Cholesky info (0 = ok). COLLECTIVE in the dist backend. */
static int rsys_solve(rsys *s, const double *A, const double *B, double lambda, double *Wfull) {
    const int i1 = 1;
    int info = 0;
    memcpy(s->M, A, sizeof(double) * s->a_len);
    memcpy(s->R, B, sizeof(double) * s->b_len);
    if (!s->dist) {
        for (int g = 0; g < s->D - 1; g++) s->M[(size_t)g * s->D + g] += lambda;
        dposv_("L", &s->D, &s->C, s->M, &s->D, s->R, &s->D, &info, 1);
        memcpy(Wfull, s->R, sizeof(double) * s->b_len);
        return info;
    }
    for (int lc = 0; lc < s->ac; lc++) {
        int gc = bc_global(lc, s->nb, s->mycol, s->npcol);
        for (int lr = 0; lr < s->ar; lr++) {
            int gr = bc_global(lr, s->nb, s->myrow, s->nprow);
            if (gr == gc && gr < s->D - 1) s->M[(size_t)lc * s->ar + lr] += lambda;
        }
    }
    pdposv_("L", &s->D, &s->C, s->M, &i1, &i1, s->descA, s->R, &i1, &i1, s->descB, &info, 1);
    memset(Wfull, 0, sizeof(double) * (size_t)s->D * s->C);
    for (int lc = 0; lc < s->bc; lc++) {
        int gc = bc_global(lc, s->nb, s->mycol, s->npcol);
        for (int lr = 0; lr < s->ar; lr++) {
            int gr = bc_global(lr, s->nb, s->myrow, s->nprow);
            Wfull[(size_t)gc * s->D + gr] = s->R[(size_t)lc * s->ar + lr];
        }
    }
    comm_allreduce_sum_f64(Wfull, s->D * s->C);
    /* pdposv's info is global (the same on every rank) */
    return info;
}

/* Standardised-space solution Ws [D][C] col-major -> raw-space W [d][C] row-major and b. */
static void map_back(const double *Ws, int d, int C, const double *mean, const double *inv, double *W, double *b) {
    int D = d + 1;
    for (int c = 0; c < C; c++) {
        double bias = Ws[(size_t)c * D + d];
        for (int j = 0; j < d; j++) {
            double w = Ws[(size_t)c * D + j] * inv[j];
            W[(size_t)j * C + c] = w;
            bias -= mean[j] * w;
        }
        b[c] = bias;
    }
}

int ridge_predict(const ridge_result *res, const float *x) {
    int C = res->classes, best = 0;
    double bs = -INFINITY;
    for (int c = 0; c < C; c++) {
        double sc = res->b[c];
        for (int j = 0; j < res->d; j++) sc += (double)x[j] * res->W[(size_t)j * C + c];
        if (sc > bs) { bs = sc; best = c; }
    }
    return best;
}

static double count_correct(const ridge_result *res, int i0, int i1, const float *X, const int32_t *y) {
    double ok = 0;
    for (int i = i0; i < i1; i++) ok += ridge_predict(res, X + (size_t)i * res->d) == y[i];
    return ok;
}

double ridge_accuracy(const ridge_result *res, int n_local, const float *X, const int32_t *y) {
    double v[2] = {count_correct(res, 0, n_local, X, y), (double)n_local};
    comm_allreduce_sum_f64(v, 2);
    return v[1] > 0 ? v[0] / v[1] : 0.0;
}

void ridge_result_free(ridge_result *res) {
    if (!res) return;
    sc_free(res->W); sc_free(res->b);
    res->W = res->b = NULL;
}

/* Fill the chunk source with local rows [r0, r1) whose global index g = off + i satisfies
 * want_ho == (g >= n_fit); other rows stay zero (they add nothing to XᵀX or XᵀY). */
static void fill_chunk(rsys *s, int d, const float *X, const int32_t *y, int r0, int r1, int64_t off, int64_t n_fit,
                       bool want_ho, const double *mean, const double *inv) {
    int CH = s->CH;
    memset(s->S, 0, sizeof(double) * (size_t)CH * s->D);
    memset(s->SY, 0, sizeof(double) * (size_t)CH * s->C);
    for (int i = r0; i < r1; i++) {
        if ((off + i >= n_fit) != want_ho) continue;
        int k = i - r0;
        const float *x = X + (size_t)i * d;
        for (int j = 0; j < d; j++) s->S[(size_t)j * CH + k] = ((double)x[j] - mean[j]) * inv[j];
        s->S[(size_t)d * CH + k] = 1.0;
        s->SY[(size_t)y[i] * CH + k] = 1.0;
    }
}

/* the options with their defaults filled in, checked */
static sc_err check_opts(ridge_opts *o, int n_local, int d, int classes) {
    if (d < 1 || classes < 2 || n_local < 0)
        return sc_errorf(SC_ERR_ARG, "ridge: bad sizes d=%d classes=%d n=%d (expected d>=1, classes>=2, n>=0)", d,
                         classes, n_local);
    if (o->nlambdas <= 0) {
        static const double def[] = {1e-3, 1e-2, 1e-1, 1, 10, 100, 1e3, 1e4};
        o->nlambdas = (int)(sizeof def / sizeof def[0]);
        memcpy(o->lambdas, def, sizeof def);
    }
    if (o->nlambdas > RIDGE_MAX_LAMBDAS)
        return sc_errorf(SC_ERR_ARG, "ridge: %d lambdas given, at most %d", o->nlambdas, RIDGE_MAX_LAMBDAS);
    for (int i = 0; i < o->nlambdas; i++)
        if (!(o->lambdas[i] > 0))
            return sc_errorf(SC_ERR_ARG, "ridge: lambda[%d] = %g, expected > 0", i, o->lambdas[i]);
    if (o->holdout_frac <= 0) o->holdout_frac = 0.1;
    if (o->holdout_frac >= 1)
        return sc_errorf(SC_ERR_ARG, "ridge: holdout_frac %g, expected in (0, 1)", o->holdout_frac);
    if (o->block <= 0) o->block = 64;
    if (o->chunk_rows <= 0) o->chunk_rows = 1024;
    return SC_OK;
}

/* where this rank's rows sit in the global order (rank order) and which of them are held out */
typedef struct {
    bool comm;         /* counts and sums over ranks */
    int P, rank;
    double *cnt;       /* [P] rows per rank */
    int64_t N, off;    /* global rows; this rank's first global row */
    int64_t maxn;      /* the most rows on one rank */
    int64_t n_fit, n_ho; /* global rows [0, n_fit) fit the λs, [n_fit, N) are held out */
} row_split;

/* COLLECTIVE (unless force_serial): the row counts of every rank; every rank agrees on the labels' validity */
static sc_err split_rows(const ridge_opts *o, int n_local, const int32_t *y, int classes, row_split *r) {
    memset(r, 0, sizeof *r);
    r->comm = !o->force_serial;
    r->P = r->comm ? comm_size() : 1;
    r->rank = r->comm ? comm_rank() : 0;
    int P = r->P, bad = -1;
    for (int i = 0; i < n_local; i++)
        if (y[i] < 0 || y[i] >= classes) { bad = i; break; }
    double *cnt = sc_calloc_n(double, P + 1);
    cnt[r->rank] = n_local;
    cnt[P] = bad >= 0 ? 1 : 0;
    if (r->comm) comm_allreduce_sum_f64(cnt, P + 1);
    if (cnt[P] > 0) {
        sc_free(cnt);
        if (bad >= 0)
            return sc_errorf(SC_ERR_ARG, "ridge: label %d of local row %d (rank %d) outside [0, %d)", (int)y[bad],
                             bad, r->rank, classes);
        return sc_errorf(SC_ERR_ARG, "ridge: another rank has a label outside [0, %d)", classes);
    }
    for (int q = 0; q < P; q++) {
        if (q < r->rank) r->off += (int64_t)cnt[q];
        r->N += (int64_t)cnt[q];
        if ((int64_t)cnt[q] > r->maxn) r->maxn = (int64_t)cnt[q];
    }
    bool select = o->nlambdas > 1;
    r->n_ho = select ? (int64_t)floor(o->holdout_frac * (double)r->N + 0.5) : 0;
    if (select && r->n_ho < 1) r->n_ho = 1;
    r->n_fit = r->N - r->n_ho;
    if (r->n_fit < 2) {
        sc_free(cnt);
        return sc_errorf(SC_ERR_ARG, "ridge: %lld training rows (%lld held out): too few", (long long)r->N,
                         (long long)r->n_ho);
    }
    r->cnt = cnt;
    return SC_OK;
}

/* COLLECTIVE: feature statistics over all training rows (two passes, double): mean[d] and inv[d] = 1/sd
 * (0 for a constant feature; 1 without standardize) */
static void feature_stats(const row_split *r, bool standardize, int n_local, int d, const float *X, double *mean,
                          double *inv) {
    for (int i = 0; i < n_local; i++)
        for (int j = 0; j < d; j++) mean[j] += X[(size_t)i * d + j];
    if (r->comm) comm_allreduce_sum_f64(mean, d);
    for (int j = 0; j < d; j++) mean[j] /= (double)r->N;
    if (standardize) {
        for (int i = 0; i < n_local; i++)
            for (int j = 0; j < d; j++) {
                double t = X[(size_t)i * d + j] - mean[j];
                inv[j] += t * t;
            }
        if (r->comm) comm_allreduce_sum_f64(inv, d);
        for (int j = 0; j < d; j++) {
            double sd = sqrt(inv[j] / (double)r->N);
            /* a constant feature (dead ReLU channel) carries no information: drop it instead of amplifying noise */
            inv[j] = sd > 1e-8 * (fabs(mean[j]) + 1e-30) && sd > 1e-30 ? 1.0 / sd : 0.0;
        }
    } else {
        for (int j = 0; j < d; j++) inv[j] = 1.0; /* centring only: conditioning, same solution (bias free) */
    }
}

/* COLLECTIVE: the fitting rows into A_fit, B_fit and the held-out rows into A_ho, B_ho, chunk by chunk */
static void accumulate_rows(rsys *s, const row_split *r, int n_local, int d, const float *X, const int32_t *y,
                            const double *mean, const double *inv) {
    int CH = s->CH;
    int64_t nchunks = (r->maxn + CH - 1) / CH;
    for (int64_t c = 0; c < nchunks; c++) {
        /* every rank knows every rank's row range, so the two passes are agreed without messages */
        bool any_fit = false, any_ho = false;
        int64_t o_r = 0;
        for (int q = 0; q < r->P; q++) {
            int64_t nr = (int64_t)r->cnt[q], a = c * CH, b = (c + 1) * CH < nr ? (c + 1) * CH : nr;
            if (a < b) {
                if (o_r + a < r->n_fit) any_fit = true;
                if (o_r + b > r->n_fit) any_ho = true;
            }
            o_r += nr;
        }
        int r0 = (int)(c * CH < n_local ? c * CH : n_local);
        int r1 = (int)((c + 1) * CH < n_local ? (c + 1) * CH : n_local);
        if (any_fit) {
            fill_chunk(s, d, X, y, r0, r1, r->off, r->n_fit, false, mean, inv);
            rsys_accumulate(s, s->Afit, s->Bfit);
        }
        if (any_ho) {
            fill_chunk(s, d, X, y, r0, r1, r->off, r->n_fit, true, mean, inv);
            rsys_accumulate(s, s->Aho, s->Bho);
        }
    }
}

/* COLLECTIVE: each λ fitted on the fitting rows and scored on the held-out ones (with more than one λ), then the
 * refit on all rows with the best; res->W, res->b hold it */
static sc_err select_and_refit(rsys *s, const row_split *r, const ridge_opts *o, int n_local, int d, int classes,
                               const float *X, const int32_t *y, const double *mean, const double *inv,
                               ridge_result *res) {
    double *Wfull = sc_calloc_n(double, (size_t)(d + 1) * classes);
    sc_err err = SC_OK;
    int best = 0;
    if (o->nlambdas > 1) {
        /* held-out rows of this rank: global indices >= n_fit */
        int64_t n_fit = r->n_fit, off = r->off;
        int h0 = (int)(n_fit - off < 0 ? 0 : (n_fit - off > n_local ? n_local : n_fit - off));
        double bestacc = -1;
        for (int l = 0; l < o->nlambdas; l++) {
            int info = rsys_solve(s, s->Afit, s->Bfit, o->lambdas[l], Wfull);
            if (info != 0) {
                err = sc_errorf(SC_ERR_NUMERIC, "ridge: Cholesky failed (info %d) for lambda %g", info, o->lambdas[l]);
                goto done;
            }
            map_back(Wfull, d, classes, mean, inv, res->W, res->b);
            double v[1] = {count_correct(res, h0, n_local, X, y)};
            if (r->comm) comm_allreduce_sum_f64(v, 1);
            res->holdout_top1[l] = v[0] / (double)r->n_ho;
            if (res->holdout_top1[l] > bestacc) { bestacc = res->holdout_top1[l]; best = l; }
        }
    } else {
        res->holdout_top1[0] = NAN;
    }
    /* refit on all rows with the chosen λ: A_all = A_fit + A_ho */
    for (size_t i = 0; i < s->a_len; i++) s->Afit[i] += s->Aho[i];
    for (size_t i = 0; i < s->b_len; i++) s->Bfit[i] += s->Bho[i];
    res->lambda = o->lambdas[best];
    int info = rsys_solve(s, s->Afit, s->Bfit, res->lambda, Wfull);
    if (info != 0) {
        err = sc_errorf(SC_ERR_NUMERIC, "ridge: Cholesky failed (info %d) for lambda %g", info, res->lambda);
        goto done;
    }
    map_back(Wfull, d, classes, mean, inv, res->W, res->b);
done:
    sc_free(Wfull);
    return err;
}

sc_err ridge_fit(int n_local, int d, const float *X, const int32_t *y, int classes, const ridge_opts *opts,
                 ridge_result *res) {
    ridge_opts o = opts ? *opts : ridge_opts_default();
    memset(res, 0, sizeof *res);
    sc_err err = check_opts(&o, n_local, d, classes);
    if (err != SC_OK) return err;
    row_split r;
    err = split_rows(&o, n_local, y, classes, &r);
    if (err != SC_OK) return err;
    double *mean = sc_calloc_n(double, d), *inv = sc_calloc_n(double, d);
    feature_stats(&r, o.standardize, n_local, d, X, mean, inv);

    rsys s;
    bool dist = r.comm && (r.P > 1 || o.force_scalapack);
    rsys_init(&s, d + 1, classes, o.chunk_rows, dist, r.comm, o.block);
    accumulate_rows(&s, &r, n_local, d, X, y, mean, inv);
    sc_free(r.cnt);

    res->d = d; res->classes = classes;
    res->W = sc_calloc_n(double, (size_t)d * classes);
    res->b = sc_calloc_n(double, classes);
    res->nlambdas = o.nlambdas;
    memcpy(res->lambdas, o.lambdas, sizeof o.lambdas);
    res->n_train = r.N; res->n_holdout = r.n_ho;
    res->used_scalapack = dist;
    err = select_and_refit(&s, &r, &o, n_local, d, classes, X, y, mean, inv, res);
    sc_free(mean); sc_free(inv);
    rsys_free(&s);
    if (err != SC_OK) ridge_result_free(res);
    return err;
}
