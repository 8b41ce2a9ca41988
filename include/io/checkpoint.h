/* io/checkpoint: the binary checkpoint container (format: docs/checkpoint-format.md).
 * A file = header (magic "SLIMCLR\0", version, config hash, step, epoch, model signature) + named sections
 * (opaque blobs: name, dtype, count, bytes, CRC32 each) + a trailer with a whole-file CRC32.
 * Writing is atomic: <path>.tmp, checked writes, fsync, rename, fsync of the directory; on any failure the
 * tmp file is removed and the previous files are untouched. Reading verifies magic, version, sizes and every
 * CRC, and says which file and why when it refuses one.
 * Nothing here is collective: rank 0 writes; every rank may read. */
#ifndef SC_IO_CHECKPOINT_H
#define SC_IO_CHECKPOINT_H
#include "core/error.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CKPT_VERSION 1
#define CKPT_NAME_MAX 64       /* section name incl. NUL */
#define CKPT_SIG_MAX 160       /* model signature incl. NUL */

typedef enum { CKPT_U8 = 0, CKPT_I32, CKPT_I64, CKPT_U32, CKPT_U64, CKPT_F32, CKPT_F64 } ckpt_dtype;
size_t ckpt_dtype_size(ckpt_dtype t);
const char *ckpt_dtype_name(ckpt_dtype t);

typedef struct {
    uint64_t config_hash;               /* config_hash() of the run */
    uint64_t step;                      /* optimizer steps done */
    double epoch;                       /* fractional epochs done (step / steps_per_epoch) */
    char signature[CKPT_SIG_MAX];       /* config_model_signature() */
} ckpt_header;

typedef struct {
    const char *name;                   /* < CKPT_NAME_MAX chars, unique in a file */
    ckpt_dtype dtype;
    size_t count;                       /* elements */
    const void *data;
} ckpt_section;

/* Writes `path` atomically. SC_ERR_IO (names the path and the errno text) on failure: no file is left
 * under `path` that was not there before, and <path>.tmp is removed. SC_ERR_ARG for bad sections. */
sc_err ckpt_write(const char *path, const ckpt_header *h, const ckpt_section *secs, int nsecs);

/* A verified checkpoint, memory-mapped read-only; section data pointers stay valid until ckpt_close. */
typedef struct ckpt_file ckpt_file;
/* path: a checkpoint file, or the run's `latest` pointer, checkpoints/ directory or run directory (then the newest
 * complete checkpoint there); ckpt_path() gives the file opened. */
sc_err ckpt_open(const char *path, ckpt_file **out);    /* SC_ERR_IO / SC_ERR_FORMAT with the reason */
void ckpt_close(ckpt_file *f);
const ckpt_header *ckpt_get_header(const ckpt_file *f);
const char *ckpt_path(const ckpt_file *f);
int ckpt_nsections(const ckpt_file *f);
const char *ckpt_section_name(const ckpt_file *f, int i);
/* The section's data (64-byte aligned) or NULL when absent; *dtype / *count if non-NULL. */
const void *ckpt_find(const ckpt_file *f, const char *name, ckpt_dtype *dtype, size_t *count);
/* Copies a section that must exist with this dtype and count; SC_ERR_FORMAT naming file/section otherwise. */
sc_err ckpt_read_section(const ckpt_file *f, const char *name, ckpt_dtype dtype, size_t count, void *dst);
/* SC_ERR_MISMATCH "checkpoint X was written for <sig>, this config is <sig>" (or the config hash, with
 * `diff_hint` (e.g. from config_diff_key) appended when non-NULL) when either differs. */
sc_err ckpt_check(const ckpt_file *f, const char *signature, uint64_t config_hash, const char *diff_hint);

/* Only the header (magic, version, header CRC, file size checked; sections not verified): cheap, for listings. */
sc_err ckpt_read_header(const char *path, ckpt_header *h);

/* ---- the run's checkpoints/ directory ---- */
/* "<dir>/step-<N>.ckpt" */
void ckpt_step_path(const char *dir, uint64_t step, char *buf, size_t n);
/* Replaces <dir>/latest (atomically) with the file name of `ckpt_path` (which must lie in dir). */
sc_err ckpt_set_latest(const char *dir, const char *ckpt_path);
/* The newest complete checkpoint: the one `latest` names if it opens; else the highest step-*.ckpt whose
 * header and size check out. *found = false (SC_OK) when there is none. */
sc_err ckpt_find_latest(const char *dir, char *path, size_t n, bool *found);
/* The same; `note` (nn bytes) receives "" or what was skipped and why (a `latest` naming a cut file, an empty
 * `latest`, newer unreadable step files) and which checkpoint was taken instead: callers print it loudly. */
sc_err ckpt_find_latest_noted(const char *dir, char *path, size_t n, bool *found, char *note, size_t nn);
/* The newest step-*.ckpt of dir below `step` that verifies in full (every checksum): the previous good one. */
sc_err ckpt_find_good_before(const char *dir, uint64_t step, char *path, size_t n, bool *found);
/* A checkpoint file, or `latest` / checkpoints/ / a run directory resolved to the newest complete checkpoint
 * (as ckpt_open does; what it skipped is printed as a warning). */
sc_err ckpt_resolve(const char *path, char *buf, size_t n);
/* write step-<step>.ckpt, point latest at it, then apply retention. Creates dir if missing. */
sc_err ckpt_save(const char *dir, const ckpt_header *h, const ckpt_section *secs, int nsecs, int keep_last,
                 int snapshot_epochs);

/* Retention (pure): keep[i] for each entry = one of the `keep_last` highest steps, or a snapshot: for every
 * multiple k*snapshot_epochs (k >= 1), the entry with the smallest epoch >= k*snapshot_epochs. Stable: an entry
 * chosen as a snapshot stays chosen as newer checkpoints arrive. */
typedef struct { uint64_t step; double epoch; } ckpt_entry;
void ckpt_retention(const ckpt_entry *e, int n, int keep_last, int snapshot_epochs, bool *keep);
/* Applies ckpt_retention to the step-*.ckpt files of dir (never removes the one `latest` names). */
sc_err ckpt_prune(const char *dir, int keep_last, int snapshot_epochs);
#endif
