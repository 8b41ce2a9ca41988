/* cli/commands: argument parsing shared by the subcommands, and train / pack. */
#include "cli/cli.h"
#include "comm/comm.h"
#include "core/error.h"
#include "data/data.h"
#include "ssl/train.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_usage_error(const char *cmd, const char *fmt, ...) {
    if (comm_rank() > 0) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "slimclr %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see slimclr --help)\n");
    va_end(ap);
}

int cli_take_set(cli_common *c, int argc, char **argv, int *i) {
    const char *a = argv[*i], *v = NULL;
    if (!strcmp(a, "--set")) {
        if (*i + 1 >= argc) return -1;
        v = argv[++*i];
    } else if (!strncmp(a, "--set=", 6)) {
        v = a + 6;
    } else {
        return 0;
    }
    if (c->nsets >= CLI_MAX_SETS) return -1;
    c->sets[c->nsets++] = v;
    return 1;
}

int cli_train(int argc, char **argv) {
    cli_common c;
    memset(&c, 0, sizeof c);
    train_args a;
    memset(&a, 0, sizeof a);
    for (int i = 1; i < argc; i++) {
        int r = cli_take_set(&c, argc, argv, &i);
        if (r < 0) { cli_usage_error("train", "--set needs key=value"); return 2; }
        if (r) continue;
        if (!strcmp(argv[i], "--resume")) {
            a.resume = true;
            /* an optional PATH: the next argument unless it is an option or the config */
            if (i + 1 < argc && argv[i + 1][0] != '-' && !strstr(argv[i + 1], ".yaml") && !strstr(argv[i + 1], ".yml"))
                a.resume_path = argv[++i];
        } else if (!strncmp(argv[i], "--resume=", 9)) {
            a.resume = true;
            a.resume_path = argv[i] + 9;
        } else if (argv[i][0] == '-') {
            cli_usage_error("train", "unknown option %s", argv[i]);
            return 2;
        } else if (!c.config) {
            c.config = argv[i];
        } else {
            cli_usage_error("train", "unexpected argument %s", argv[i]);
            return 2;
        }
    }
    if (!c.config) { cli_usage_error("train", "missing CONFIG.yaml"); return 2; }
    a.config_path = c.config;
    a.sets = c.sets;
    a.nsets = c.nsets;
    return train_run(&a);
}

int cli_pack(int argc, char **argv) {
    const char *src = NULL, *out = NULL;
    int size = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc) size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (argv[i][0] == '-') { cli_usage_error("pack", "unknown option %s", argv[i]); return 2; }
        else src = argv[i];
    }
    if (!src || !out || size < 1) {
        cli_usage_error("pack", "usage: slimclr pack SRC_DIR --size S --out PATH (S >= 1)");
        return 2;
    }
    if (comm_rank() != 0) return 0; /* packing is a one-process job */
    int64_t n = 0;
    sc_err e = data_pack(src, size, out, 0, &n);
    if (e != SC_OK) {
        fprintf(stderr, "slimclr pack: error: %s\n", sc_last_error());
        return 2;
    }
    printf("packed %lld images from %s into %s (%dx%d)\n", (long long)n, src, out, size, size);
    return 0;
}
