#include "ssl/run.h"
#include "io/checkpoint.h"
#include "io/metrics.h"
#include <errno.h>
#include <stdlib.h>
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

void run_ckpt_diff_hint(const ckpt_file *f, const sc_config *cfg, char *hint, size_t n) {
    hint[0] = 0;
    size_t clen = 0;
    ckpt_dtype dt;
    const char *text = ckpt_find(f, "config", &dt, &clen);
    if (!text || dt != CKPT_U8) return;
    char *txt = sc_alloc(clen + 1);
    memcpy(txt, text, clen);
    txt[clen] = 0;
    sc_config old;
    if (config_load_string(txt, ckpt_path(f), NULL, 0, &old) == SC_OK) config_diff_key(&old, cfg, hint, n);
    sc_free(txt);
}

sc_err run_check_resume(const sc_config *cfg, const char *path) {
    ckpt_header h;
    SC_TRY(ckpt_read_header(path, &h));
    char sig[CKPT_SIG_MAX];
    config_model_signature(cfg, sig, sizeof sig);
    if (h.config_hash == config_hash(cfg) && !strcmp(sig, h.signature)) return SC_OK;
    /* name the first differing key from the config the checkpoint carries */
    char hint[256] = "";
    ckpt_file *f = NULL;
    /* a corrupted file is the reason to report, not the (then meaningless) config difference */
    SC_TRY(ckpt_open(path, &f));
    if (ckpt_find(f, "export.info", NULL, NULL)) {
        ckpt_close(f);
        return sc_errorf(SC_ERR_MISMATCH, "cannot resume a backbone-only checkpoint: %s is an export or import "
                                          "(weights without optimizer state, queue or head); use it with eval or "
                                          "features, or start a new run", path);
    }
    run_ckpt_diff_hint(f, cfg, hint, sizeof hint);
    ckpt_close(f);
    return sc_errorf(SC_ERR_MISMATCH,
                     "cannot resume from %s: %s differs from the checkpoint's run (written for %s). The model, method, "
                     "data, batch and schedule keys must match on resume; ranks, threads, logging, checkpoint cadence "
                     "and run.dir may change. Start a new run with another run.dir to change it",
                     path, hint[0] ? hint : "the configuration", h.signature);
}

/* A run is a directory where at least one step was recorded: a checkpoint, or a non-empty metrics.jsonl. A
 * config.yaml alone is what a failed start left behind (a missing data file, an out-of-memory refusal): not a run. */
static bool holds_run(const char *dir) {
    if (exists(dir, "checkpoints/latest")) return true;
    char p[1100];
    snprintf(p, sizeof p, "%s/checkpoints", dir);
    bool found = false;
    char ck[1200];
    if (ckpt_find_latest(p, ck, sizeof ck, &found) == SC_OK && found) return true;
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    struct stat st;
    return stat(p, &st) == 0 && st.st_size > 0;
}

/* what run_dir_prepare created (rank 0), so that run_dir_abandon removes exactly that */
static struct { bool dir, ckdir, evdir, config; } made;

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

sc_err run_dir_prepare(const sc_config *cfg, bool resume, const char *resume_path, char *resume_from, size_t n) {
    const char *dir = cfg->run.dir;
    resume_from[0] = 0;
    memset(&made, 0, sizeof made);
    /* first of all: a start that fails below must not leave an old marker that makes a job file requeue forever */
    char marker[1100];
    snprintf(marker, sizeof marker, "%s/STOPPED_BY_SIGNAL", dir);
    unlink(marker);
    if (holds_run(dir) && !resume)
        return sc_errorf(SC_ERR_ARG,
                         "run directory %s already holds a run (metrics.jsonl or checkpoints/); pass "
                         "--resume to continue it, or choose another directory with --set run.dir=PATH",
                         dir);
    char ckdir[1100];
    made.dir = !is_dir(dir);
    made.config = !exists(dir, "config.yaml");
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", dir);
    made.ckdir = !is_dir(ckdir);
    SC_TRY(run_mkdirs(ckdir));
    snprintf(ckdir + strlen(dir), sizeof ckdir - strlen(dir), "/eval");
    made.evdir = !is_dir(ckdir);
    SC_TRY(run_mkdirs(ckdir));
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", dir);
    if (resume_path) {
        if (access(resume_path, R_OK) != 0)
            return sc_errorf(SC_ERR_ARG, "--resume %s: %s", resume_path, strerror(errno)); /* usage: exit 2 */
        /* a run directory, its checkpoints/ or `latest` stand for the newest complete checkpoint there */
        if (ckpt_resolve(resume_path, resume_from, n) != SC_OK)
            return sc_errorf(SC_ERR_ARG, "--resume %s: %s", resume_path, sc_last_error());
    } else if (resume) {
        bool found = false;
        char note[1024];
        SC_TRY(ckpt_find_latest_noted(ckdir, resume_from, n, &found, note, sizeof note));
        if (note[0]) fprintf(stderr, "slimclr: warning: --resume: %s\n", note);
        if (!found && note[0]) /* starting fresh would overwrite what may still be rescued */
            return sc_errorf(SC_ERR_FORMAT, "--resume: %s; move the damaged files away to start fresh", note);
        if (!found) {
            resume_from[0] = 0;
            printf("--resume: no checkpoint in %s yet, starting fresh\n", ckdir);
        }
    }
    /* refuse an incompatible checkpoint before anything in the run directory changes */
    if (resume_from[0]) SC_TRY(run_check_resume(cfg, resume_from));
    return write_config(cfg);
}

void run_dir_abandon(const sc_config *cfg) {
    const char *dir = cfg->run.dir;
    if (holds_run(dir)) return; /* a resumed run that failed to restart keeps everything */
    char p[1100];
    if (made.config) {
        snprintf(p, sizeof p, "%s/config.yaml", dir);
        unlink(p);
    }
    /* rmdir: only what is still empty goes */
    snprintf(p, sizeof p, "%s/eval", dir);
    if (made.evdir) rmdir(p);
    snprintf(p, sizeof p, "%s/checkpoints", dir);
    if (made.ckdir) rmdir(p);
    if (made.dir) rmdir(dir);
    memset(&made, 0, sizeof made);
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

/* the "step" of a metrics line, or -1 for lines without one (epoch or probe records) */
static long line_step(const char *line) {
    double s;
    return metrics_get(line, "step", &s) ? (long)s : -1;
}

sc_err run_metrics_truncate(const char *path, long step, long *dropped) {
    if (dropped) *dropped = 0;
    FILE *in = fopen(path, "r");
    if (!in) return errno == ENOENT ? SC_OK : sc_errorf(SC_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *out = fopen(tmp, "w");
    if (!out) {
        fclose(in);
        return sc_errorf(SC_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long drop = 0;
    while ((len = getline(&line, &cap, in)) > 0) {
        /* a torn last line (a crash mid-write) has no newline: drop it too */
        if (line[len - 1] != '\n' || line_step(line) > step) {
            drop++;
            continue;
        }
        fwrite(line, 1, (size_t)len, out);
    }
    free(line);
    fclose(in);
    int bad = ferror(out);
    if (fclose(out) != 0 || bad) {
        unlink(tmp);
        return sc_errorf(SC_ERR_IO, "cannot write %s", tmp);
    }
    if (drop == 0) {
        unlink(tmp);
        return SC_OK;
    }
    if (rename(tmp, path) != 0) return sc_errorf(SC_ERR_IO, "cannot rename %s: %s", tmp, strerror(errno));
    if (dropped) *dropped = drop;
    return SC_OK;
}
