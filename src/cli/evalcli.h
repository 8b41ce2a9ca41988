/* cli/evalcli: what eval, features, export and import share: the config (from CONFIG.yaml, or the one a
 * checkpoint carries), the signature check, the frozen backbone, the data splits and their eval view.
 * Private to src/cli. */
#ifndef SC_CLI_EVALCLI_H
#define SC_CLI_EVALCLI_H
#include "core/error.h"
#include "data/augment.h"
#include "data/data.h"
#include "io/config.h"
#include "model/model.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    sc_config cfg;      /* resolved: CONFIG.yaml (or the checkpoint's own config) + --set */
    model_cfg enc;      /* the training encoder's model config (layout of training checkpoints) */
    model *bb;          /* the backbone (HEAD_NONE), weights loaded */
    char info[512];     /* the checkpoint's export.info text (exports and imports), else "" */
    char source[1024];  /* the checkpoint path, or "random init (seed N)" */
    uint64_t step;      /* optimizer steps of the checkpoint */
} evcli_model;

/* Exit code of an error: 2 for bad input (config, file, mismatch, argument), 1 otherwise. */
int evcli_code(sc_err e);
/* COLLECTIVE. Shares a (possibly rank-local) error: the lowest failing rank prints "slimclr <cmd>: error: <what>:
 * <message>"; every rank returns the same exit code (0 when no rank failed). */
int evcli_agree(const char *cmd, const char *what, sc_err e);
/* The same for writing an output: a failed write (SC_ERR_IO: full disk, permissions) is a runtime error, exit 1;
 * a refused --out (SC_ERR_ARG) stays exit 2. */
int evcli_agree_write(const char *cmd, const char *what, sc_err e);
/* Local. --out PATH names a file that can be created: not a directory, not ending in '/', its directory exists;
 * with refuse_training_ckpt, not an existing training checkpoint (exports and imports may be replaced). */
sc_err evcli_check_out(const char *out, bool refuse_training_ckpt);

/* COLLECTIVE. config (may be NULL: the checkpoint's "config" section is used), ckpt (NULL with random_init).
 * Refuses a checkpoint whose model signature differs from the config's, naming the differing keys. Returns the
 * exit code (0 = ok; the message has been printed). */
int evcli_load(const char *cmd, const char *config, const char *const *sets, int nsets, const char *ckpt,
               bool random_init, evcli_model *out);
void evcli_free(evcli_model *m);

/* Local. The index of width text `w` in model.widths (within 1e-6); SC_ERR_ARG listing the widths otherwise. */
sc_err evcli_width_index(const sc_config *cfg, const char *w, int *wi);

/* Opening a split, the evaluation view and the batch: features_open_split / features_eval_aug / features_batch
 * (eval/features.h), shared with the kNN monitor of training. */

/* Local. A copy of cfg with the model keys of a single-width standalone network (base, widths [1.0]) and run.dir. */
sc_err evcli_export_config(const sc_config *src, int base, const char *run_dir, sc_config *dst);
#endif
