/* tests/fuzz: shared helpers of the libFuzzer harnesses (also built without libFuzzer by replay_main.c, so the
 * seed and crash corpora replay inside `make test`). Readers take paths, so each input goes to a temp file. */
#ifndef SC_FUZZ_COMMON_H
#define SC_FUZZ_COMMON_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A per-process scratch directory (mkdtemp), created once; removed at exit. */
static char fuzz_dir[256];
static void fuzz_cleanup(void) {
    if (!fuzz_dir[0]) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir);
    if (system(cmd) != 0) { /* best effort */ }
}
static const char *fuzz_tmpdir(void) {
    if (!fuzz_dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/slimclr-fuzz-XXXXXX", t && t[0] ? t : "/tmp");
        if (!mkdtemp(fuzz_dir)) { perror("mkdtemp"); abort(); }
        atexit(fuzz_cleanup);
    }
    return fuzz_dir;
}

/* Writes data to <tmpdir>/<name>; returns the path in buf. */
static const char *fuzz_write(const char *name, const uint8_t *data, size_t size, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", fuzz_tmpdir(), name);
    FILE *f = fopen(buf, "wb");
    if (!f) { perror(buf); abort(); }
    if (size && fwrite(data, 1, size, f) != size) { perror(buf); abort(); }
    fclose(f);
    return buf;
}
#endif
