/* libFuzzer harness: checkpoint container -> ckpt_open (verifying mmap reader), then every accessor on what it
 * accepts, and ckpt_read_header on the same bytes. */
#include "fuzz_common.h"
#include "io/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512];
    fuzz_write("in.ckpt", data, size, path, sizeof path);
    ckpt_header h;
    (void)ckpt_read_header(path, &h);
    ckpt_file *f = NULL;
    if (ckpt_open(path, &f) != SC_OK) return 0;
    const ckpt_header *hh = ckpt_get_header(f);
    volatile size_t sink = strlen(hh->signature);
    for (int i = 0; i < ckpt_nsections(f); i++) {
        const char *name = ckpt_section_name(f, i);
        char nm[CKPT_NAME_MAX + 1];
        snprintf(nm, sizeof nm, "%.*s", CKPT_NAME_MAX, name);
        ckpt_dtype t;
        size_t count = 0;
        const uint8_t *p = ckpt_find(f, nm, &t, &count);
        /* touch the first and last byte the reader vouched for */
        size_t nb = count * ckpt_dtype_size(t);
        if (p && nb) sink += p[0] + p[nb - 1];
        if (p && nb && nb <= (1u << 20)) {
            void *dst = malloc(nb);
            (void)ckpt_read_section(f, nm, t, count, dst);
            free(dst);
        }
    }
    (void)ckpt_check(f, "sig", 0, NULL);
    (void)sink;
    ckpt_close(f);
    return 0;
}
