/* libFuzzer harness: the dataset readers. The first byte picks the format, the rest is the file:
 *   0: IDX images (gzip or plain; written as train-images-idx3-ubyte beside a matching label file),
 *   1: IDX labels (beside a valid 2-image file), 2: CIFAR-10 test_batch.bin, 3: CIFAR-100 test.bin,
 *   4: packed shard (header, names, labels, then every image with its CRC via data_get_image). */
#include "fuzz_common.h"
#include "data/data.h"

static void put_be32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

static void touch_all(const data_set *s) {
    int64_t ib = data_image_bytes(s);
    if (ib <= 0 || ib > (1 << 24)) return;
    uint8_t *scratch = malloc((size_t)ib);
    int64_t n = s->n < 64 ? s->n : 64;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *img;
        if (data_get_image(s, i, scratch, &img) == SC_OK) scratch[0] ^= img[ib - 1];
    }
    free(scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int kind = data[0] % 5;
    data++;
    size--;
    char path[512], other[512];
    data_set s;
    memset(&s, 0, sizeof s);
    sc_err e = SC_OK;
    if (kind == 0 || kind == 1) {
        /* the partner file: 2 images of 2x2, or 2 labels */
        uint8_t img[16 + 8], lab[8 + 2] = {0, 0, 8, 1, 0, 0, 0, 2, 3, 7};
        put_be32(img, 0x803); put_be32(img + 4, 2); put_be32(img + 8, 2); put_be32(img + 12, 2);
        memset(img + 16, 0x55, 8);
        if (kind == 0) {
            fuzz_write("train-images-idx3-ubyte", data, size, path, sizeof path);
            fuzz_write("train-labels-idx1-ubyte", lab, sizeof lab, other, sizeof other);
        } else {
            fuzz_write("train-images-idx3-ubyte", img, sizeof img, other, sizeof other);
            fuzz_write("train-labels-idx1-ubyte", data, size, path, sizeof path);
        }
        e = data_open("idx", fuzz_tmpdir(), "train", 0, &s);
    } else if (kind == 2) {
        fuzz_write("test_batch.bin", data, size, path, sizeof path);
        e = data_open("cifar10", fuzz_tmpdir(), "test", 0, &s);
    } else if (kind == 3) {
        fuzz_write("test.bin", data, size, path, sizeof path);
        e = data_open("cifar100", fuzz_tmpdir(), "test", 0, &s);
    } else {
        fuzz_write("in.shard", data, size, path, sizeof path);
        e = data_open("shard", path, "train", 0, &s);
        if (e == SC_OK) touch_all(&s), data_set_free(&s);
        memset(&s, 0, sizeof s);
        (void)data_shard_verify(path);
        e = data_open("shard", path, "train", 1, &s);
    }
    if (e == SC_OK) {
        touch_all(&s);
        data_set_free(&s);
    }
    return 0;
}
