/* bench_data: images/s of read + augment (2 views) + batch assembly through the threaded loader, with the
 * caller doing no compute (the loader's ceiling), for
 *   fmnist : Fashion-MNIST train (28x28x1, in memory; synthetic if the files are absent), preset fmnist;
 *   imagenet: a shard of synthetic 256x256x3 images read by offset, MoCo v2 recipe to 224x224.
 * Usage: bench_data [--workers 1,2] [--seconds S] [--out FILE]. Prints a table; full numbers go to FILE. */
#include "core/timer.h"
#include "data/augment.h"
#include "data/data.h"
#include "data/loader.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *name;
    double img_per_s, ms_per_batch;
    int workers, batch, steps;
} row;

/* Runs batches for about `seconds` after one warm-up batch; returns images/s (each image = 2 views). */
static row run(const char *name, const data_set *set, const char *preset, int out, int batch, int workers,
               double seconds) {
    loader_cfg cfg = {.set = set, .nviews = 2, .global_batch = batch, .rank = 0, .nranks = 1, .workers = workers,
                      .seed = 1};
    for (int v = 0; v < 2; v++)
        if (aug_preset(preset, v, set->c, out, out, &cfg.view[v])) sc_fatal("%s", sc_last_error());
    loader *ld;
    if (loader_create(&cfg, &ld)) sc_fatal("%s", sc_last_error());
    loader_batch b;
    if (loader_next(ld, &b)) sc_fatal("%s", sc_last_error());
    int steps = 0;
    double t0 = sc_now(), t;
    do {
        if (loader_next(ld, &b)) sc_fatal("%s", sc_last_error());
        steps++;
        t = sc_now();
    } while (t - t0 < seconds);
    loader_free(ld);
    row r = {name, (double)steps * batch / (t - t0), 1e3 * (t - t0) / steps, workers, batch, steps};
    return r;
}

int main(int argc, char **argv) {
    int workers[8] = {1, 2}, nw = 2;
    double seconds = 3;
    const char *out = "bench_data.txt";
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--workers") && a + 1 < argc) {
            nw = 0;
            for (char *tok = strtok(argv[++a], ","); tok && nw < 8; tok = strtok(NULL, ",")) workers[nw++] = atoi(tok);
        } else if (!strcmp(argv[a], "--seconds") && a + 1 < argc) {
            seconds = atof(argv[++a]);
        } else if (!strcmp(argv[a], "--out") && a + 1 < argc) {
            out = argv[++a];
        } else {
            fprintf(stderr, "usage: %s [--workers 1,2] [--seconds S] [--out FILE]\n", argv[0]);
            return 2;
        }
    }
    row rows[32];
    int nr = 0;

    data_set fm;
    const char *fm_src = "/usr/share/datasets/fashion-mnist";
    if (data_read_idx(fm_src, "train", &fm) != SC_OK) {
        fm_src = "synthetic";
        fm.n = 60000, fm.c = 1, fm.h = fm.w = 28, fm.nclasses = 10;
        fm.pixels = sc_alloc((size_t)fm.n * 784);
        fm.labels = sc_calloc_n(int32_t, fm.n);
        rng_stream r = rng_stream_make(7, 0, 0, 0);
        for (int64_t i = 0; i < fm.n * 784; i++) fm.pixels[i] = (uint8_t)rng_below(&r, 256);
    }
    for (int k = 0; k < nw; k++) rows[nr++] = run("fmnist 28x28x1", &fm, "fmnist", 28, 256, workers[k], seconds);
    data_set_free(&fm);

    /* synthetic ImageNet-like shard: smooth gradients + noise, 256x256x3, read by offset */
    char path[256];
    snprintf(path, sizeof path, "/tmp/bench_data_%d.shard", (int)getpid());
    const int64_t n = 256;
    data_shard_writer *wr;
    if (data_shard_writer_open(path, n, 3, 256, 256, 10, NULL, &wr)) sc_fatal("%s", sc_last_error());
    uint8_t *img = malloc(3 * 256 * 256);
    rng_stream r = rng_stream_make(8, 0, 0, 0);
    for (int64_t i = 0; i < n; i++) {
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 256; y++)
                for (int x = 0; x < 256; x++)
                    img[(c * 256 + y) * 256 + x] = (uint8_t)((x * (c + 1) + y * (3 - c) + (int)i * 9 +
                                                              (int)rng_below(&r, 32)) & 255);
        if (data_shard_writer_put(wr, i, (int32_t)(i % 10), img)) sc_fatal("%s", sc_last_error());
    }
    free(img);
    if (data_shard_writer_close(wr)) sc_fatal("%s", sc_last_error());
    data_set in;
    if (data_read_shard(path, 0, &in)) sc_fatal("%s", sc_last_error());
    for (int k = 0; k < nw; k++)
        rows[nr++] = run("mocov2 256->224x224x3 (shard)", &in, "mocov2", 224, 32, workers[k], seconds);
    data_set_free(&in);
    unlink(path);

    FILE *f = fopen(out, "w");
    printf("data pipeline (read + 2 augmented views + CNHW batch), caller idle; fmnist source: %s\n", fm_src);
    printf("%-32s %8s %6s %8s %12s %12s\n", "recipe", "workers", "batch", "batches", "ms/batch", "images/s");
    for (int k = 0; k < nr; k++) {
        printf("%-32s %8d %6d %8d %12.2f %12.1f\n", rows[k].name, rows[k].workers, rows[k].batch, rows[k].steps,
               rows[k].ms_per_batch, rows[k].img_per_s);
        if (f)
            fprintf(f, "%s\tworkers=%d\tbatch=%d\tbatches=%d\tms_per_batch=%.3f\timages_per_s=%.2f\n", rows[k].name,
                    rows[k].workers, rows[k].batch, rows[k].steps, rows[k].ms_per_batch, rows[k].img_per_s);
    }
    if (f) {
        fclose(f);
        printf("full numbers: %s\n", out);
    }
    return 0;
}
