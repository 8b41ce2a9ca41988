/* Runs a libFuzzer harness over files or directories of inputs without libFuzzer (any compiler): the corpus
 * replay of `make test` (tests/sh/faults_fuzz_replay.sh). Prints one line per input; a crash is the failure. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return 1; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) { perror(path); fclose(f); free(b); return 1; }
    fclose(f);
    LLVMFuzzerTestOneInput(b, (size_t)(n > 0 ? n : 0));
    free(b);
    return 0;
}

int main(int argc, char **argv) {
    int count = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) { perror(argv[i]); return 2; }
        if (!S_ISDIR(st.st_mode)) { bad += run_file(argv[i]); count++; continue; }
        DIR *d = opendir(argv[i]);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", argv[i], de->d_name);
            bad += run_file(p);
            count++;
        }
        if (d) closedir(d);
    }
    printf("replayed %d inputs, %d unreadable\n", count, bad);
    return bad ? 1 : 0;
}
