/* Writes the small seed inputs of tests/fuzz/corpus/{ckpt,data,safetensors}/ with the project's own writers
 * (the config seeds are copies of yaml/*.yaml). Regenerate: build this against libslimclr.a and run it with the
 * corpus root as argument (see tests/README.md). */
#include "data/data.h"
#include "eval/safetensors.h"
#include "io/checkpoint.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) { perror(path); exit(1); }
    fclose(f);
}

/* data seeds carry the format selector byte of fuzz_data.c in front */
static void write_data_seed(const char *root, const char *name, int kind, const void *p, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/data/%s", root, name);
    unsigned char *b = malloc(n + 1);
    b[0] = (unsigned char)kind;
    memcpy(b + 1, p, n);
    write_file(path, b, n + 1);
    free(b);
}

static void slurp(const char *path, unsigned char **b, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *b = malloc(*n);
    if (fread(*b, 1, *n, f) != *n) exit(1);
    fclose(f);
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: make_seeds CORPUS_ROOT\n"); return 2; }
    const char *root = argv[1];
    char path[1024];
    /* checkpoint: three small sections */
    float w[6] = {1, 2, 3, 4, 5, 6};
    int64_t st[2] = {7, 2};
    const char cfg[] = "model:\n  depth: 18\n";
    ckpt_section secs[3] = {{"q.params", CKPT_F32, 6, w}, {"train.state", CKPT_I64, 2, st},
                            {"config", CKPT_U8, sizeof cfg - 1, cfg}};
    ckpt_header h = {0x1234, 7, 0.5, "resnet18-b16"};
    snprintf(path, sizeof path, "%s/ckpt/small.ckpt", root);
    if (ckpt_write(path, &h, secs, 3) != SC_OK) { fprintf(stderr, "%s\n", sc_last_error()); return 1; }
    snprintf(path, sizeof path, "%s/ckpt/empty.ckpt", root);
    if (ckpt_write(path, &h, NULL, 0) != SC_OK) return 1;
    /* safetensors */
    safetensors_tensor t[2] = {{"conv1.weight", 2, {2, 3}, w}, {"fc.bias", 1, {2}, w}};
    const char *mk[1] = {"format"}, *mv[1] = {"pt"};
    snprintf(path, sizeof path, "%s/safetensors/small.safetensors", root);
    if (safetensors_write(path, 2, t, 1, mk, mv) != SC_OK) return 1;
    /* IDX: 3 images of 4x4, plain and gzip */
    unsigned char idx[16 + 48] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 4};
    for (int i = 0; i < 48; i++) idx[16 + i] = (unsigned char)(i * 5);
    write_data_seed(root, "idx-images", 0, idx, sizeof idx);
    unsigned char lab[8 + 2] = {0, 0, 8, 1, 0, 0, 0, 2, 1, 9};
    write_data_seed(root, "idx-labels", 1, lab, sizeof lab);
    char gzp[1024];
    snprintf(gzp, sizeof gzp, "%s/tmp.gz", root);
    gzFile g = gzopen(gzp, "wb");
    gzwrite(g, idx, sizeof idx);
    gzclose(g);
    unsigned char *b;
    size_t n;
    slurp(gzp, &b, &n);
    write_data_seed(root, "idx-images-gz", 0, b, n);
    free(b);
    remove(gzp);
    /* CIFAR-10: two records; CIFAR-100: one */
    unsigned char *c10 = calloc(2, 3073);
    c10[0] = 3; c10[3073] = 9;
    write_data_seed(root, "cifar10", 2, c10, 2 * 3073);
    unsigned char *c100 = calloc(1, 3074);
    c100[0] = 4; c100[1] = 42;
    write_data_seed(root, "cifar100", 3, c100, 3074);
    free(c10); free(c100);
    /* packed shard: 3 images of 1x4x4, 2 classes */
    data_set s;
    memset(&s, 0, sizeof s);
    s.n = 3; s.c = 1; s.h = 4; s.w = 4; s.nclasses = 2;
    int32_t labels[3] = {0, 1, 1};
    s.labels = labels;
    s.pixels = idx + 16;
    snprintf(s.source, sizeof s.source, "seed");
    char sp[1024];
    snprintf(sp, sizeof sp, "%s/tmp.shard", root);
    if (data_shard_write(sp, &s) != SC_OK) { fprintf(stderr, "%s\n", sc_last_error()); return 1; }
    slurp(sp, &b, &n);
    write_data_seed(root, "shard", 4, b, n);
    free(b);
    remove(sp);
    return 0;
}
