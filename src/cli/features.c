/* cli/features: `slimclr features [CONFIG.yaml] --checkpoint PATH --width W --split train|test --out FILE.npy`:
 * the frozen eval-mode GAP features of one width as a float32 .npy [n][C_w] (rows in dataset order), extracted
 * with the rows split over the ranks and gathered on rank 0, which writes the file. */
#include "cli/cli.h"
#include "comm/affinity.h"
#include "comm/comm.h"
#include "core/error.h"
#include "eval/features.h"
#include "nn/conv.h"
#include "evalcli.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_features(int argc, char **argv) {
    cli_common cc;
    memset(&cc, 0, sizeof cc);
    const char *ckpt = NULL, *width = NULL, *split = NULL, *outp = NULL;
    bool random_init = false;
    long long max_rows = 0;
    for (int i = 1; i < argc; i++) {
        int r = cli_take_set(&cc, argc, argv, &i);
        if (r < 0) { cli_usage_error("features", "--set needs key=value"); return 2; }
        if (r) continue;
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--checkpoint") && has) ckpt = argv[++i];
        else if (!strcmp(a, "--random-init")) random_init = true;
        else if (!strcmp(a, "--width") && has) width = argv[++i];
        else if (!strcmp(a, "--split") && has) split = argv[++i];
        else if (!strcmp(a, "--out") && has) outp = argv[++i];
        else if (!strcmp(a, "--max") && has) max_rows = atoll(argv[++i]);
        else if (a[0] == '-') { cli_usage_error("features", "unknown option %s (or its value is missing)", a); return 2; }
        else if (!cc.config) cc.config = a;
        else { cli_usage_error("features", "unexpected argument %s", a); return 2; }
    }
    if (!!ckpt == random_init || !width || !split || !outp || max_rows < 0) {
        cli_usage_error("features", "usage: slimclr features [CONFIG.yaml] --checkpoint PATH|--random-init --width W "
                                    "--split train|test --out FILE.npy [--max N]");
        return 2;
    }
    if (strcmp(split, "train") && strcmp(split, "test")) {
        cli_usage_error("features", "--split %s: expected train or test", split);
        return 2;
    }
    if (random_init && !cc.config) { cli_usage_error("features", "--random-init needs CONFIG.yaml"); return 2; }
    int code = evcli_agree("features", "--out", comm_rank() == 0 ? evcli_check_out(outp, false) : SC_OK);
    if (code) return code;
    evcli_model m;
    code = evcli_load("features", cc.config, cc.sets, cc.nsets, ckpt, random_init, &m);
    if (code) return code;
    int wi = 0;
    if ((code = evcli_agree("features", "width", evcli_width_index(&m.cfg, width, &wi)))) { evcli_free(&m); return code; }
    affinity_setup(m.cfg.run.threads, NULL);
    conv_set_algo_config((conv_algo)m.cfg.run.conv_algo);
    data_set set;
    aug_cfg aug;
    sc_err e = features_open_split(&m.cfg, split, &set);
    if (e == SC_OK) {
        e = features_eval_aug(&m.cfg, &set, &aug);
        if (e != SC_OK) data_set_free(&set);
    }
    if ((code = evcli_agree("features", "data", e))) { evcli_free(&m); return code; }
    int64_t n = max_rows > 0 && max_rows < set.n ? max_rows : set.n;
    features_set fs;
    e = features_extract(m.bb, &set, n, &aug, features_batch(&m.cfg), m.cfg.data.workers, 1, &wi, &fs);
    if ((code = evcli_agree("features", "features", e))) goto out;

    /* gather: each rank sends its rows padded to the largest share; rank 0 unpads with the known split */
    int P = comm_size(), C = fs.dims[0];
    int64_t maxn = (n + P - 1) / P;
    float *send = sc_calloc_n(float, (size_t)(maxn ? maxn : 1) * C);
    memcpy(send, fs.F[0], sizeof(float) * (size_t)fs.n_local * C);
    float *all = comm_rank() == 0 ? sc_calloc_n(float, (size_t)(maxn ? maxn : 1) * C * P) : NULL;
    float *recv = all ? all : sc_calloc_n(float, (size_t)(maxn ? maxn : 1) * C * P);
    comm_allgather_f32(send, (size_t)maxn * C, recv);
    e = SC_OK;
    if (comm_rank() == 0) {
        float *rows = sc_calloc_n(float, (size_t)(n ? n : 1) * C);
        for (int r = 0; r < P; r++) {
            int64_t b = n * r / P, en = n * (r + 1) / P;
            memcpy(rows + (size_t)b * C, recv + (size_t)r * maxn * C, sizeof(float) * (size_t)(en - b) * C);
        }
        e = features_write_npy(outp, n, C, rows);
        if (e == SC_OK)
            printf("features: %s, width %g (%d features), %s split: %lld rows -> %s\n", m.source,
                   model_width(m.bb, wi), C, split, (long long)n, outp);
        sc_free(rows);
    }
    if (recv != all) sc_free(recv);
    sc_free(all);
    sc_free(send);
    code = evcli_agree_write("features", "output", e);
out:
    features_set_free(&fs);
    data_set_free(&set);
    evcli_free(&m);
    return code;
}
