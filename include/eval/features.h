/* eval/features: the frozen backbone of an evaluation (docs/method.md §7): its weights from a checkpoint, and its
 * eval-mode GAP features per width, cached in memory for the probes.
 *
 * A checkpoint's "q.params"/"q.bufs" hold either the training encoder (backbone + projection head, the layout of
 * the model built from the encoder config) or a backbone alone (exports and imports, layout of the HEAD_NONE
 * model): the section sizes tell which. Either way tensors are copied by name into a backbone-only model, so the
 * head is never run during evaluation. */
#ifndef SC_EVAL_FEATURES_H
#define SC_EVAL_FEATURES_H
#include "core/error.h"
#include "data/augment.h"
#include "data/data.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "model/model.h"
#include <stdint.h>

#define FEATURES_MAX_WIDTHS MODEL_MAX_WIDTHS

/* The encoder config with the head removed (HEAD_NONE): what evaluation runs. */
model_cfg features_backbone_cfg(const model_cfg *enc);

/* Local. Copies every parameter and BN buffer tensor of dst from the tensor of the same name in src (shapes must
 * be equal): SC_ERR_MISMATCH naming the first tensor that is missing or has another shape. */
sc_err features_copy_by_name(model *dst, const model *src);

/* Local. Loads the backbone bb from checkpoint f (encoder layout of `enc`, or bb's own layout). The caller has
 * checked the model signature (ckpt_check); a size that fits neither layout is SC_ERR_MISMATCH naming the file. */
sc_err features_load(model *bb, const model_cfg *enc, const ckpt_file *f);

/* Local. The network a training run starts from (model_init of the encoder with `seed`), backbone part. */
sc_err features_init_random(model *bb, const model_cfg *enc, uint64_t seed);

typedef struct {
    int nwidths;                              /* widths extracted */
    int wi[FEATURES_MAX_WIDTHS];              /* their model width indices */
    int dims[FEATURES_MAX_WIDTHS];            /* feature dims C_w */
    float *F[FEATURES_MAX_WIDTHS];            /* [n_local][dims[k]] row-major */
    int32_t *labels;                          /* [n_local] */
    int64_t n_local, row0, n_global;          /* this rank's rows are [row0, row0 + n_local) of n_global */
    double seconds[FEATURES_MAX_WIDTHS];      /* forward time per width on this rank */
} features_set;

/* Not collective (no communication), but rank-aware: rows [0, n) of `set` are split contiguously over the ranks
 * (rank r: [r*n/P, (r+1)*n/P)). Each batch of `batch` local images is read once (view = aug, which should be the
 * "none" preset with the run's normalisation) and run through bb in eval mode (each width's running statistics)
 * at every width of wis; the GAP features are transposed into row-major F. `workers` loader threads. */
sc_err features_extract(model *bb, const data_set *set, int64_t n, const aug_cfg *aug, int batch, int workers,
                        int nwi, const int *wis, features_set *out);
/* The same with a random view (aug with a random crop / flip): sample i's view is drawn from (seed, epoch, i), so
 * each epoch gives new crops, whatever the rank split (the reference's linear-probe training pass). */
sc_err features_extract_epoch(model *bb, const data_set *set, int64_t n, const aug_cfg *aug, uint64_t seed,
                              int64_t epoch, int batch, int workers, int nwi, const int *wis, features_set *out);
/* Local. The reference's probe-training view: random resized crop (area scale [smin, smax], ratio 3/4..4/3) to the
 * model's size and a horizontal flip, the run's normalisation (data.mean/std), checked against set. */
sc_err features_train_aug(const sc_config *cfg, const data_set *set, double smin, double smax, aug_cfg *a);
void features_set_free(features_set *s);
/* COLLECTIVE. Top-1 per width (top1[k] for width index wis[k], in [0, 1]) of a classifier's own outputs: enc is
 * a whole model whose head ends in class logits (method supervised), run in eval mode over rows [0, n) of set
 * (split over the ranks like features_extract); labels must be < the head's outputs. */
sc_err features_classify(model *enc, const data_set *set, int64_t n, const aug_cfg *aug, int batch, int workers,
                         int nwi, const int *wis, double *top1);

/* Local. A float32 .npy file (NumPy format v1.0, C order, shape (rows, cols)), written to path.tmp then renamed. */
sc_err features_write_npy(const char *path, int64_t rows, int cols, const float *data);
/* Local. The configured dataset's split ("train"/"test") for evaluation: refuses a channel count or image size the
 * model does not take (shards may be larger: they are centre-cropped). */
sc_err features_open_split(const sc_config *cfg, const char *split, data_set *set);
/* Local. The evaluation view: no augmentation, the run's normalisation (data.mean/std), checked against set. */
sc_err features_eval_aug(const sc_config *cfg, const data_set *set, aug_cfg *a);
/* Images per feature-extraction batch for the configured image size. */
int features_batch(const sc_config *cfg);
#endif
