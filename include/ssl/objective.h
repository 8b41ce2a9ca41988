/* ssl/objective: the SlimCLR objectives as pure math over small matrices (no model, no MPI).
 *
 * Inputs are feature-major (nn/layout.h): normalised queries q[D][n], keys k[D][n], queue[D][K], gathered
 * keys K_all[D][B]. Logits are sample-major z[rows][C]. Every loss is a mean over the LOCAL rows; the caller
 * all-reduces parameter gradients with sum/P, which gives the global mean.
 *
 * One width's loss (docs/method.md §4): w_con * L_con(z) + w_kd * L_kd(z, t), where z are the framework's KD logits
 * (v2: raw cosines, v3: q K^T / T, SimCLR: raw cosines) and t the full width's z (detached). The backward
 * writes dz of that weighted sum (one pass), then one GEMM takes it to dq. obj_weights gives w_con / w_kd
 * per width for a step (loss weights, slow start, alpha). No function allocates: buffers are the caller's. */
#ifndef SC_SSL_OBJECTIVE_H
#define SC_SSL_OBJECTIVE_H
#include "core/error.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OBJ_MAX_WIDTHS 8

/* ---- generic: CE with integer labels + soft-target KD over logits rows ------------------------------------
 * Row r of z (stride ldz >= c) has label label0 + r*label_step.
 * L_con = con_lscale * sum_r CE(con_zscale * z_r, label_r) / denom
 * L_kd  = tau^2 * sum_r -sum_j softmax(t_r/tau)_j log softmax(z_r/tau)_j / denom   (t: teacher, same stride
 * ldz as z, no gradient). Logits must be finite (no -inf masking: SimCLR removes its diagonal instead).
 * dz (overwritten, stride ldz; may be NULL) = w_con dL_con/dz + w_kd dL_kd/dz. KD is skipped (l_kd = 0) when
 * t is NULL or w_kd == 0. Accumulates are in double; exp in float. */
/* The distillation side of one loss and the weights of its two parts (named fields: adjacent floats cannot be
 * swapped silently). */
typedef struct {
    const float *teacher;  /* t: the teacher's KD logits (detached; same layout as z), NULL: no KD */
    float tau;             /* KD temperature */
    float w_con, w_kd;     /* scales of L_con and L_kd (obj_weights) */
} obj_kd;

typedef struct {
    int rows, c;                   /* logit rows and columns */
    const float *z;                /* [rows] rows of stride ldz >= c */
    int ldz;
    int label0, label_step;        /* row r's label: label0 + r * label_step */
    double denom;                  /* the losses: sums over the rows / denom */
    float con_zscale, con_lscale;  /* L_con's scale inside and outside the CE */
    obj_kd kd;                     /* kd.teacher: stride ldz */
    float *dz;                     /* written (stride ldz); NULL: no gradient */
    double *l_con, *l_kd;          /* the unweighted parts (each may be NULL) */
} obj_logits_args;
void obj_logits_loss(const obj_logits_args *a);

/* ---- MoCo v2 (docs/method.md §3.1): z[n][1+K] = [q.k, q.queue] raw cosines; L_con = CE(z/T, 0); KD on z/tau ---------- */
void obj_mocov2_logits(int D, int n, int K, const float *q, const float *k, const float *queue, float *z);
/* dq[D][n] (overwritten) from dz[n][1+K] */
void obj_mocov2_backward(int D, int n, int K, const float *dz, const float *k, const float *queue, float *dq);
/* Forward + backward of one width: fills z (keep width 0's as the teacher of the others) and dq (if dz and
 * dq are non-NULL; dz is scratch [n][1+K]). Returns w_con L_con + w_kd L_kd; the parts in l_con / l_kd. */
typedef struct {
    int D, n, K;                   /* feature dimension, local samples, queue length */
    const float *q, *k, *queue;    /* q, k [D][n] normalised; queue [D][K] */
    float T;                       /* L_con's temperature */
    obj_kd kd;
    float *z, *dz, *dq;            /* z [n][1+K]; dz scratch [n][1+K], dq [D][n] (both NULL: no backward) */
    double *l_con, *l_kd;          /* the unweighted parts (each may be NULL) */
} obj_mocov2_args;
double obj_mocov2(const obj_mocov2_args *a);

/* ---- MoCo v3 (docs/method.md §3.2): z[n][B] = q^T K_all / T; labels arange(n) + offset (= rank*n); L = 2T CE(z) ---- */
void obj_mocov3_logits(int D, int n, int B, float T, const float *q, const float *kall, float *z);
void obj_mocov3_backward(int D, int n, int B, float T, const float *dz, const float *kall, float *dq);
typedef struct {
    int D, n, B;                   /* feature dimension, local samples, global batch */
    int offset;                    /* the label of local row 0 (rank * n) */
    const float *q, *kall;         /* q [D][n], kall [D][B] normalised */
    float T;
    obj_kd kd;
    float *z, *dz, *dq;            /* z [n][B]; dz scratch [n][B], dq [D][n] (both NULL: no backward) */
    double *l_con, *l_kd;
} obj_mocov3_args;
double obj_mocov3(const obj_mocov3_args *a);

/* ---- SimCLR NT-Xent (docs/method.md §3.3) ------------------------------------------------------------------------------
 * z1, z2[D][N]: the gathered normalised features of the two views (global N); this rank's rows are columns
 * [off, off+n). Logits of the 2n local rows (view-1 rows, then view-2 rows) against all 2N features with the
 * row's own column removed: z[2n][2N-1] raw cosines (the KD logits); L = CE(z/T) with label (row of view-1
 * sample i) N+i-1, (view-2 sample i) i, mean over the 2n local rows.
 * scratch: obj_simclr_scratch(n, N) floats. */
long obj_simclr_scratch(int n, int N);
void obj_simclr_logits(int D, int n, int N, int off, const float *z1, const float *z2, float *scratch, float *z);
/* dz[2n][2N-1] -> gradients w.r.t. ALL gathered features dz1, dz2[D][N] (overwritten). The caller sums them
 * over ranks (allreduce) and back-propagates its own columns [off, off+n). */
void obj_simclr_backward(int D, int n, int N, int off, const float *z1, const float *z2, const float *dz,
                         float *scratch, float *dz1, float *dz2);
typedef struct {
    int D, n, N;                   /* feature dimension, local samples, global samples */
    int off;                       /* this rank's first column (rank * n) */
    const float *z1, *z2;          /* [D][N] the gathered features of the two views */
    float T;
    obj_kd kd;
    float *scratch;                /* obj_simclr_scratch(n, N) floats */
    float *z, *dz;                 /* z [2n][2N-1]; dz scratch of the same size (NULL: no backward) */
    float *dz1, *dz2;              /* [D][N] overwritten (NULL: no backward) */
    double *l_con, *l_kd;
} obj_simclr_args;
double obj_simclr(const obj_simclr_args *a);

/* ---- supervised slimmable training (the paper's Figure 1 baseline) ---------------------------------------
 * lg[K][n] feature-major class logits of the n local samples, labels y[n] in [0, K). z[n][K] (sample-major copy:
 * keep width 0's as the teacher of the others). L_con = mean_r CE(z_r, y_r); L_kd = tau^2 soft CE against the
 * teacher's softmax(t/tau) (inplace distillation). dq[K][n] (overwritten; NULL: no backward; dz scratch [n][K]) =
 * d(w_con L_con + w_kd L_kd)/d lg. Returns w_con L_con + w_kd L_kd; the parts in l_con / l_kd. */
typedef struct {
    int K, n;                      /* classes, local samples */
    const float *lg;               /* [K][n] class logits */
    const int32_t *y;              /* [n] labels */
    obj_kd kd;
    float *z, *dz, *dq;            /* z [n][K]; dz scratch [n][K], dq [K][n] (dq NULL: no backward) */
    double *l_con, *l_kd;
} obj_supervised_args;
double obj_supervised(const obj_supervised_args *a);

/* The scale of SimCLR's loss gradient on P ranks. The program's gradient is exact: each rank's loss is the mean
 * over its 2n local rows, the feature gradients are summed over ranks and the parameter gradients averaged, which
 * gives the gradient of the global mean over all 2N rows. The reference computes the loss of all 2N rows on every
 * rank but keeps the gradient only through its own features (the gathered copies of the others carry none), and
 * DDP averages over ranks: 1/P of the exact gradient. reference = true returns that 1/P (method.grad_scale:
 * reference), to be applied to the loss weights; the loss values do not change. */
float obj_simclr_grad_scale(bool reference, int P);

/* ---- loss weights, slow start and the per-step combination (docs/method.md §4) ---------------------------------------- */
/* lambda[nwidths] for option 0,1,2,3,5,6,7 over the descending width list (docs/method.md §4c; options 1, 3, 6 rounded
 * to 3 decimals as the reference does). SC_ERR_CONFIG naming the key for another option or a bad list. */
sc_err obj_loss_weights(int option, int nwidths, const float *widths, float *lambda);

/* Slow start is over at epoch + step/steps_per_epoch >= S (S <= 0: never active). Same predicate as the
 * LR schedule's (optim/sched.h). */
bool obj_slow_start_over(long epoch, long step, long steps_per_epoch, double S);

typedef struct {
    int nwidths;
    bool slim;                        /* slow start over: all widths, lambda, distillation */
    float alpha;                      /* 0 when distillation is off or before slow start */
    bool enable[OBJ_MAX_WIDTHS];      /* width trained this step (only width 0 before slow start) */
    float lambda[OBJ_MAX_WIDTHS];     /* effective weight of width i this step (1, 0, 0.. before slow start) */
    float w_con[OBJ_MAX_WIDTHS];      /* scale of L_con(w_i): lambda_0, or lambda_i (1 - alpha) */
    float w_kd[OBJ_MAX_WIDTHS];       /* scale of L_kd(w_i): lambda_i alpha (0 for width 0) */
} obj_weights;

/* The step's weights: before slow start L = L_con(w0) (weight 1, not lambda_0); after,
 * L = lambda_0 L_con(w0) + sum_i lambda_i [(1 - alpha) L_con(w_i) + alpha L_kd(w_i)]; alpha = 0 without
 * distillation. lambda from obj_loss_weights. */
void obj_step_weights(int nwidths, const float *lambda, bool slim, bool distill, float alpha, obj_weights *w);
/* Ablation slimclr.loss_reduce: mean: the step's weights divided by the number of widths trained this step (the
 * mean of the width losses instead of their sum; one width before slow start: unchanged). */
void obj_weights_mean(obj_weights *w);

/* Ablation slimclr.distill_tau_teacher: separate teacher and student temperatures through the teacher's logits,
 * t *= tau_s / tau_t (n values): softmax(t' / tau_s) = softmax(t / tau_t), so the KD above with tau = tau_s is
 * tau_s^2 H(softmax(t / tau_t), softmax(z / tau_s)). tau_t <= 0 or = tau_s: unchanged. */
void obj_teacher_temper(float *t, size_t n, float tau_s, float tau_t);

typedef enum { OBJ_FEAT_NONE = 0, OBJ_FEAT_MSE = 1, OBJ_FEAT_KL = 2 } obj_feat_mode;
/* Ablation slimclr.feature_distill (in place of the logits' KD): q, t [D][n] the width's and the full width's
 * normalised outputs (t detached). MSE: mean over the D n entries of (q - t)^2; KL: tau^2 soft CE of
 * softmax(q_r / tau) against softmax(t_r / tau) over each sample's D features, mean over samples. Adds
 * w d(L)/dq into dq; scratch: 3 D n floats. Returns L. */
typedef struct {
    obj_feat_mode mode;
    int D, n;
    const float *q, *t;            /* [D][n] the width's and the full width's outputs */
    float tau, w;                  /* KL temperature; the loss's weight */
    float *dq;                     /* [D][n], added into */
    float *scratch;                /* 3 D n floats */
} obj_feat_args;
double obj_feature_distill(const obj_feat_args *a);

/* The combined loss from per-width parts (entries of disabled widths ignored). */
double obj_combine(const obj_weights *w, const double *l_con, const double *l_kd);
#endif
