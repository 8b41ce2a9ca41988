/* eval/safetensors: write and read the safetensors format (huggingface), fp32 tensors only.
 * File: u64 little-endian header length N, N bytes of JSON
 *   {"name": {"dtype":"F32","shape":[..],"data_offsets":[begin,end]}, ..., "__metadata__": {"k":"v",...}}
 * padded with spaces so that the data section starts at a multiple of 8, then the data section (offsets are
 * relative to its start, tensors in offset order, little-endian fp32, row-major). Not collective. */
#ifndef SC_EVAL_SAFETENSORS_H
#define SC_EVAL_SAFETENSORS_H
#include "core/error.h"
#include <stddef.h>
#include <stdint.h>

#define SAFETENSORS_MAX_DIM 8

typedef struct {
    const char *name;
    int ndim;                            /* 0 = scalar */
    int64_t shape[SAFETENSORS_MAX_DIM];
    const float *data;                   /* prod(shape) floats */
} safetensors_tensor;

/* Writes the tensors in the given order; meta: nmeta (key, value) string pairs (may be 0/NULL).
 * Names must be unique and non-empty. Written to path.tmp, then renamed (no half-written file). */
sc_err safetensors_write(const char *path, int n, const safetensors_tensor *t, int nmeta, const char *const *meta_keys,
                         const char *const *meta_values);

typedef struct {
    char *name;
    char dtype[8];                       /* "F32" is the only one read_f32 accepts */
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIM];
    int64_t numel;
    uint64_t begin, end;                 /* byte offsets in the data section */
} safetensors_entry;

typedef struct safetensors_file safetensors_file;

/* Opens and validates the header: JSON syntax, dtypes, shapes, offsets inside the file and consistent with
 * dtype x shape. Any problem -> SC_ERR_FORMAT with the file name and the reason. */
sc_err safetensors_open(const char *path, safetensors_file **out);
void safetensors_close(safetensors_file *f);
int safetensors_count(const safetensors_file *f);
const safetensors_entry *safetensors_entry_at(const safetensors_file *f, int i); /* in header order */
int safetensors_find(const safetensors_file *f, const char *name);                /* index or -1 */
const char *safetensors_meta(const safetensors_file *f, const char *key);        /* NULL if absent */
/* Reads tensor i (dtype F32) into dst[count]; count must equal its numel. */
sc_err safetensors_read_f32(safetensors_file *f, int i, float *dst, size_t count);
#endif
