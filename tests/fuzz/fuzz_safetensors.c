/* libFuzzer harness: safetensors file -> safetensors_open (JSON header, dtypes, shapes, offsets), then reads of
 * every F32 tensor it accepts. */
#include "fuzz_common.h"
#include "eval/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512];
    fuzz_write("in.safetensors", data, size, path, sizeof path);
    safetensors_file *f = NULL;
    if (safetensors_open(path, &f) != SC_OK) return 0;
    for (int i = 0; i < safetensors_count(f); i++) {
        const safetensors_entry *e = safetensors_entry_at(f, i);
        (void)safetensors_find(f, e->name);
        if (strcmp(e->dtype, "F32") || e->numel < 0 || e->numel > (1 << 20)) continue;
        float *dst = malloc(sizeof(float) * (size_t)(e->numel ? e->numel : 1));
        (void)safetensors_read_f32(f, i, dst, (size_t)e->numel);
        free(dst);
    }
    (void)safetensors_meta(f, "format");
    safetensors_close(f);
    return 0;
}
