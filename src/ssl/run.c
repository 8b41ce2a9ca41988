#include "ssl/run.h"
#include "io/checkpoint.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

sc_err run_mkdirs(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0775) != 0 && errno != EEXIST)
            return sc_errorf(SC_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0775) != 0 && errno != EEXIST)
        return sc_errorf(SC_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
    return SC_OK;
}

static bool exists(const char *dir, const char *name) {
    char p[1100];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}

static sc_err write_config(const sc_config *cfg) {
    char path[1100], tmp[1110];
    snprintf(path, sizeof path, "%s/config.yaml", cfg->run.dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return sc_errorf(SC_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    config_write_yaml(cfg, f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        unlink(tmp);
        return sc_errorf(SC_ERR_IO, "cannot write %s", tmp);
    }
    if (rename(tmp, path) != 0) return sc_errorf(SC_ERR_IO, "cannot rename %s: %s", tmp, strerror(errno));
    return SC_OK;
}

sc_err run_dir_prepare(const sc_config *cfg, bool resume, const char *resume_path, char *resume_from, size_t n) {
    const char *dir = cfg->run.dir;
    resume_from[0] = 0;
    bool has_run = exists(dir, "config.yaml") || exists(dir, "checkpoints/latest") || exists(dir, "metrics.jsonl");
    if (has_run && !resume)
        return sc_errorf(SC_ERR_ARG,
                         "run directory %s already holds a run (config.yaml, metrics.jsonl or checkpoints/); pass "
                         "--resume to continue it, or choose another directory with --set run.dir=PATH",
                         dir);
    char ckdir[1100];
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", dir);
    SC_TRY(run_mkdirs(ckdir));
    if (resume_path) {
        if (access(resume_path, R_OK) != 0)
            return sc_errorf(SC_ERR_IO, "--resume %s: %s", resume_path, strerror(errno));
        snprintf(resume_from, n, "%s", resume_path);
    } else if (resume) {
        bool found = false;
        SC_TRY(ckpt_find_latest(ckdir, resume_from, n, &found));
        if (!found) {
            resume_from[0] = 0;
            printf("--resume: no checkpoint in %s yet, starting fresh\n", ckdir);
        }
    }
    char marker[1100];
    snprintf(marker, sizeof marker, "%s/STOPPED_BY_SIGNAL", dir);
    unlink(marker);
    return write_config(cfg);
}

void run_dir_mark_stopped(const char *dir, long step) {
    char marker[1100];
    snprintf(marker, sizeof marker, "%s/STOPPED_BY_SIGNAL", dir);
    FILE *f = fopen(marker, "w");
    if (f) {
        fprintf(f, "%ld\n", step);
        fclose(f);
    }
}
