/* eval/export: one width of a slimmable backbone as a standalone width-1.0 network, its torchvision-named
 * safetensors form, and the way back (docs/export.md).
 *
 * Slicing: width wi of a model of base B is the width-1.0 model of base int(w*B) (same depth, stem, input) when
 * every layer's channel count agrees, which holds for the usual widths and bases (int(w*B*2^s) = int(w*B)*2^s);
 * export_slice checks every BN layer and refuses a width where it does not. Conv weights are the leading
 * [C_out(w)][C_in(w)] block of the full tensor; BN parameters and running statistics are width wi's own.
 *
 * Torchvision names: the model's per-width BN tensors are `<layer>.<wi>.<weight|bias|running_mean|running_var>`;
 * a single-width export drops the `.<wi>` (`layer1.0.bn1.weight`); conv names are torchvision's already. No
 * projection head is exported. Not collective. */
#ifndef SC_EVAL_EXPORT_H
#define SC_EVAL_EXPORT_H
#include "core/error.h"
#include "model/model.h"
#include <stddef.h>

/* The standalone config of width wi: HEAD_NONE, widths {1.0}, base int(w*base). */
sc_err export_slice_cfg(const model_cfg *src, int wi, model_cfg *dst);
/* Copies width wi of src (a backbone or an encoder) into dst (built from export_slice_cfg). SC_ERR_ARG naming the
 * first BN layer whose channels differ (a width that no width-1.0 ResNet of integer base reproduces). */
sc_err export_slice(const model *src, int wi, model *dst);

/* "<prefix>.<k>.<suffix>" -> "<prefix>.<suffix>" for a width-indexed tensor name; other names unchanged. */
void export_tv_name(const param_info *t, char *buf, size_t n);

/* Writes a single-width model (nwidths == 1) as safetensors: every parameter and BN running statistic under its
 * torchvision name, in arena order; nmeta string pairs of metadata. */
sc_err export_write_safetensors(const model *m, const char *path, int nmeta, const char *const *keys,
                                const char *const *values);

/* Fills every width of bb (a backbone of any width list) from a torchvision-named file of its full-width network:
 * conv weights and width 1.0's BN from the file (shapes must match exactly); each sub-width's BN (gamma, beta,
 * running mean and variance) = the leading C_w entries of width 1.0's. fc.* and num_batches_tracked entries are
 * ignored; any other missing or extra tensor is SC_ERR_MISMATCH naming it. *nignored: the ignored entries. */
sc_err export_import_safetensors(model *bb, const char *path, int *nignored);
#endif
