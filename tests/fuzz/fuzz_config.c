/* libFuzzer harness: YAML configuration text -> config_load_string (parser, schema, cross-key checks). The first
 * byte selects whether a --set override rides along (exercising config_set on fuzzed text too). */
#include "io/config.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    /* a fuzzed override: the text after the last newline, when the first byte is odd */
    const char *sets[1];
    int nsets = 0;
    char *nl = strrchr(text, '\n');
    if (size && (data[0] & 1) && nl && nl[1]) { *nl = 0; sets[0] = nl + 1; nsets = 1; }
    sc_config cfg;
    (void)config_load_string(text, "fuzz.yaml", sets, nsets, &cfg);
    free(text);
    return 0;
}
