/* slimclr graddir: the gradient-direction analysis of docs/method.md §8.2 over a finished (or running) training
 * run: the 2-component PCA of the last projection layer's gradient snapshots (eval/graddir.h), printed as a table
 * over the steps (tools/plot_grad_direction.sh plots it). One process does the work. */
#include "cli/cli.h"
#include "comm/comm.h"
#include "eval/graddir.h"
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int graddir_report(const char *path) {
    graddir_series s;
    if (graddir_read(path, &s) != SC_OK) {
        fprintf(stderr, "slimclr graddir: error: %s\n", sc_last_error());
        return 2;
    }
    if (s.T < 3) {
        fprintf(stderr, "slimclr graddir: error: %s holds %d gradient snapshot(s); the 2-component PCA needs >= 3 "
                        "(one per eval.grad_diag_every steps)\n", path, s.T);
        graddir_series_free(&s);
        return 2;
    }
    int D = s.rows * s.cols;
    graddir_pca p;
    if (graddir_pca2(s.T, D, s.X, &p) != SC_OK) {
        fprintf(stderr, "slimclr graddir: error: %s\n", sc_last_error());
        graddir_series_free(&s);
        return 1;
    }
    printf("# docs/method.md §8.2: the last projection layer's gradient (%d x %d) at %d diagnostics steps of %s%s\n",
           s.rows, s.cols, s.T, path, s.torn ? " (a torn last record ignored)" : "");
    printf("# PCA of the stacked snapshots (centred fit, uncentred projections): explained variance ratio pc1 %.4f "
           "pc2 %.4f\n", p.evr[0], p.evr[1]);
    printf("# step\tpc1\tpc2\tcos_prev\tnorm\n");
    for (int t = 0; t < s.T; t++) {
        const float *x = s.X + (size_t)t * D, *y = x - D;
        double dot = 0, a2 = 0, b2 = 0;
        for (int d = 0; d < D; d++) {
            a2 += (double)x[d] * x[d];
            if (t > 0) { dot += (double)x[d] * y[d]; b2 += (double)y[d] * y[d]; }
        }
        double c = t > 0 && a2 > 0 && b2 > 0 ? dot / sqrt(a2 * b2) : NAN;
        printf("%ld\t%.6g\t%.6g\t%.6g\t%.6g\n", s.step[t], p.proj[t * 2], p.proj[t * 2 + 1], c, sqrt(a2));
    }
    graddir_pca_free(&p);
    graddir_series_free(&s);
    return 0;
}

int cli_graddir(int argc, char **argv) {
    const char *run = NULL;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') { cli_usage_error("graddir", "unknown option %s", argv[i]); return 2; }
        if (run) { cli_usage_error("graddir", "unexpected argument %s", argv[i]); return 2; }
        run = argv[i];
    }
    if (!run) { cli_usage_error("graddir", "usage: slimclr graddir RUN_DIR|grad_direction.bin"); return 2; }
    if (comm_rank() != 0) return 0;
    char path[4096];
    struct stat st;
    if (stat(run, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(path, sizeof path, "%s/grad_direction.bin", run);
    else snprintf(path, sizeof path, "%s", run);
    return graddir_report(path);
}
