/* data/: image sets (IDX, CIFAR binary, packed shards), the shard writer and the JPEG packer.
 * The only module that includes zlib.h and jpeglib.h.
 *
 * A data_set holds n images of c x h x w uint8 pixels (CHW, one image contiguous), int32 labels and the
 * class count. Small sets (Fashion-MNIST, CIFAR) live in memory; a packed shard keeps only its labels in
 * memory and reads image i by offset (pread), so a rank's memory grows with the samples it touches, not
 * with the dataset (docs/conventions.md "Batches and semantics"). The shard format: docs/shard-format.md. */
#ifndef SC_DATA_DATA_H
#define SC_DATA_DATA_H
#include "core/error.h"
#include <stddef.h>
#include <stdint.h>

typedef struct data_shard data_shard; /* an open shard file (opaque) */

typedef struct data_set {
    int64_t n;
    int c, h, w;
    int nclasses;
    int32_t *labels;     /* n */
    uint8_t *pixels;     /* n*c*h*w when in memory; NULL when read by offset from `shard` */
    char **class_names;  /* nclasses strings, or NULL when the format has none */
    data_shard *shard;   /* file-backed images; NULL for in-memory sets */
    char source[512];    /* file or folder it came from (for messages) */
} data_set;

static inline int64_t data_image_bytes(const data_set *s) { return (int64_t)s->c * s->h * s->w; }

/* IDX (MNIST / Fashion-MNIST) from `dir`: split "train" -> train-{images-idx3,labels-idx1}-ubyte[.gz],
 * "test" -> t10k-*. gzip or plain files (zlib reads both). c = 1. */
sc_err data_read_idx(const char *dir, const char *split, data_set *out);
/* CIFAR binary from `dir`: kind 10 -> data_batch_1..5.bin / test_batch.bin (label byte + 3072 pixels);
 * kind 100 -> train.bin / test.bin (coarse, fine label bytes + 3072 pixels; the fine label is used). */
sc_err data_read_cifar(const char *dir, int kind, const char *split, data_set *out);
/* Packed shard: header, class names and labels are read and checked (CRC); images stay on disk unless
 * in_memory (then all are read and every per-sample CRC is checked). */
sc_err data_read_shard(const char *path, int in_memory, data_set *out);
/* Dispatch by format name: "idx" | "fmnist" | "mnist" (dir), "cifar10" | "cifar100" (dir), "shard" (file;
 * `split` selects <path> itself, or <path>/<split>.shard when path is a folder). */
sc_err data_open(const char *format, const char *path, const char *split, int in_memory, data_set *out);
void data_set_free(data_set *s);

/* Image i's pixels (c*h*w uint8): a pointer into memory, or `scratch` filled by pread (CRC checked).
 * Thread-safe. Errors (I/O, CRC) name the file and sample. */
sc_err data_get_image(const data_set *s, int64_t i, uint8_t *scratch, const uint8_t **img);

/* Shard writer: n fixed-size images; put() may be called from several threads in any order (pwrite);
 * close() writes labels, CRCs and the header. class_names may be NULL. */
typedef struct data_shard_writer data_shard_writer;
sc_err data_shard_writer_open(const char *path, int64_t n, int c, int h, int w, int nclasses,
                              const char *const *class_names, data_shard_writer **out);
sc_err data_shard_writer_put(data_shard_writer *wr, int64_t i, int32_t label, const uint8_t *pixels);
sc_err data_shard_writer_close(data_shard_writer *wr); /* frees wr even on error */
sc_err data_shard_write(const char *path, const data_set *s); /* a whole set, e.g. IDX -> shard */
/* Reads every image and checks every CRC (streaming, constant memory). */
sc_err data_shard_verify(const char *path);

/* `slimclr pack`: src_dir holds one sub-folder per class (sorted by name = class index) of JPEGs
 * (.jpg/.jpeg, any case; grayscale or RGB, written as 3 channels). Each image: shorter side resized to
 * `size` (antialiased bilinear), centre-cropped to size x size. Decoding runs on `threads` OpenMP
 * threads (<= 0: the default). Prints nothing; returns the number of images in *n_out (may be NULL). */
sc_err data_pack(const char *src_dir, int size, const char *out_path, int threads, int64_t *n_out);
/* Decode one JPEG file into a malloc'd RGB HWC buffer (3 channels whatever the source); for tests. */
sc_err data_jpeg_decode(const char *path, uint8_t **rgb, int *h, int *w);

/* Benchmark input: x[c][b][h][w] ~ N(0,1) and labels in [0, nclasses), from seed (no I/O). */
/* CRC-32 (zlib's polynomial) of n bytes continuing from crc (0 to start); any length. The one CRC of the
 * project: shards and checkpoints. */
uint32_t data_crc32(uint32_t crc, const void *p, size_t n);

void data_random_batch(float *x, int32_t *labels, int c, int b, int h, int w, int nclasses, uint64_t seed);
#endif
