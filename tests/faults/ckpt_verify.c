/* ckpt_verify: checks checkpoint files with the real loader (ckpt_open: magic, version, sizes, every CRC).
 *   ckpt_verify FILE...        each file must load
 *   ckpt_verify --dir DIR      every step-*.ckpt in DIR must load and `latest` must name one of them
 * Prints one line per file ("ok PATH step N" or "BAD PATH: reason"); exit 0 when all load, 1 otherwise.
 * Used by the kill -9 test (tests/faults/kill_resume.sh) to show that no half-written checkpoint is ever left
 * under a final name. */
#include "io/checkpoint.h"
#include <dirent.h>
#include <stdio.h>
#include <string.h>

static int verify(const char *path) {
    ckpt_file *f = NULL;
    if (ckpt_open(path, &f) != SC_OK) {
        printf("BAD %s: %s\n", path, sc_last_error());
        return 1;
    }
    printf("ok %s step %llu, %d sections\n", path, (unsigned long long)ckpt_get_header(f)->step, ckpt_nsections(f));
    ckpt_close(f);
    return 0;
}

static int verify_dir(const char *dir) {
    int bad = 0, n = 0;
    DIR *d = opendir(dir);
    if (!d) { printf("BAD %s: cannot open the directory\n", dir); return 1; }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        /* final names only: <name>.tmp files are the writer's scratch, never read */
        if (strncmp(de->d_name, "step-", 5) || len < 6 || strcmp(de->d_name + len - 5, ".ckpt")) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        bad += verify(p);
        n++;
    }
    closedir(d);
    char lp[4096], name[512] = "";
    snprintf(lp, sizeof lp, "%s/latest", dir);
    FILE *f = fopen(lp, "r");
    if (f) {
        if (!fgets(name, sizeof name, f)) name[0] = 0;
        fclose(f);
        name[strcspn(name, "\r\n")] = 0;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, name);
        if (!name[0]) { printf("BAD %s: empty\n", lp); bad++; }
        else if (verify(p)) { printf("BAD %s names %s, which does not load\n", lp, name); bad++; }
        else printf("ok latest -> %s\n", name);
    } else if (n > 0) {
        printf("BAD %s: missing while %d checkpoint(s) exist\n", lp, n);
        bad++;
    }
    return bad;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: ckpt_verify FILE... | --dir DIR\n"); return 2; }
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc) bad += verify_dir(argv[++i]);
        else bad += verify(argv[i]);
    }
    return bad ? 1 : 0;
}
