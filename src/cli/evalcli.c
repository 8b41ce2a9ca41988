/* cli/evalcli: shared set-up of eval / features / export / import (see evalcli.h). */
#include "evalcli.h"
#include "comm/comm.h"
#include "eval/features.h"
#include "io/checkpoint.h"
#include "ssl/step.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int evcli_code(sc_err e) {
    switch (e) {
    case SC_OK: return 0;
    case SC_ERR_ARG: case SC_ERR_CONFIG: case SC_ERR_IO: case SC_ERR_FORMAT: case SC_ERR_MISMATCH: return 2;
    default: return 1;
    }
}

int evcli_agree(const char *cmd, const char *what, sc_err e) {
    int P = comm_size(), r = comm_rank();
    /* the lowest failing rank speaks, so that P ranks failing alike print one message */
    int first = P - comm_allreduce_max_int(e != SC_OK ? P - r : 0);
    if (e != SC_OK && r == first) {
        /* messages name their file or key; `what` only says which stage failed on a lone rank */
        if (P > 1 && r > 0) fprintf(stderr, "slimclr %s: error (rank %d, %s): %s\n", cmd, r, what, sc_last_error());
        else fprintf(stderr, "slimclr %s: error: %s\n", cmd, sc_last_error());
    }
    return comm_allreduce_max_int(evcli_code(e));
}

int evcli_agree_write(const char *cmd, const char *what, sc_err e) {
    int P = comm_size(), r = comm_rank();
    int first = P - comm_allreduce_max_int(e != SC_OK ? P - r : 0);
    if (e != SC_OK && r == first) fprintf(stderr, "slimclr %s: error: %s\n", cmd, sc_last_error());
    return comm_allreduce_max_int(e == SC_OK ? 0 : e == SC_ERR_IO ? 1 : evcli_code(e));
}

sc_err evcli_check_out(const char *out, bool refuse_training_ckpt) {
    size_t l = strlen(out);
    struct stat st;
    if (l == 0 || out[l - 1] == '/' || (stat(out, &st) == 0 && S_ISDIR(st.st_mode)))
        return sc_errorf(SC_ERR_ARG, "--out %s: is a directory, expected a file path (e.g. %s%sNAME)", out, out,
                         l && out[l - 1] == '/' ? "" : "/");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", out);
    char *sl = strrchr(dir, '/');
    if (sl && sl != dir) {
        *sl = 0;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
            return sc_errorf(SC_ERR_ARG, "--out %s: the directory %s does not exist", out, dir);
    }
    if (refuse_training_ckpt && stat(out, &st) == 0) {
        ckpt_header h;
        ckpt_file *f = NULL;
        if (ckpt_read_header(out, &h) == SC_OK && ckpt_open(out, &f) == SC_OK) {
            bool export_file = ckpt_find(f, "export.info", NULL, NULL) != NULL;
            ckpt_close(f);
            if (!export_file)
                return sc_errorf(SC_ERR_ARG, "--out %s: is a training checkpoint (step %llu of %s); refusing to "
                                             "overwrite it: choose another path", out, (unsigned long long)h.step,
                                 h.signature);
        }
    }
    return SC_OK;
}

/* Names the model keys that differ between the checkpoint's config and this one (for the mismatch message). */
static void model_diff(const sc_config *a, const sc_config *b, char *buf, size_t n) {
    static const char *keys[] = {"model.depth", "model.base", "model.in_channels", "model.stem", "model.widths",
                                 "method.name", "method.dim", "method.mlp_dim", "slimclr.overlap_weight",
                                 "slimclr.switch_heads"};
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && o < n; i++) {
        int k = config_key_index(keys[i]);
        if (k < 0) continue;
        char va[256], vb[256];
        config_value_text(a, k, va, sizeof va);
        config_value_text(b, k, vb, sizeof vb);
        if (strcmp(va, vb)) o += (size_t)snprintf(buf + o, n - o, "%s%s: %s in the checkpoint, %s here", o ? "; " : "",
                                                  keys[i], va, vb);
    }
}

static sc_err load_ckpt_config(const ckpt_file *f, const char *const *sets, int nsets, sc_config *cfg, bool *found) {
    size_t clen = 0;
    ckpt_dtype dt;
    const char *ctext = ckpt_find(f, "config", &dt, &clen);
    *found = ctext && dt == CKPT_U8;
    if (!*found) return SC_OK;
    char *txt = sc_alloc(clen + 1);
    memcpy(txt, ctext, clen);
    sc_err e = config_load_string(txt, ckpt_path(f), sets, nsets, cfg);
    sc_free(txt);
    return e;
}

static sc_err load_model(const char *config, const char *const *sets, int nsets, const char *ckpt, bool random_init,
                         evcli_model *out) {
    ckpt_file *f = NULL;
    sc_err e = SC_OK;
    if (ckpt) SC_TRY(ckpt_open(ckpt, &f));
    sc_config ccfg;
    bool has_cfg = false;
    if (f) e = load_ckpt_config(f, config ? NULL : sets, config ? 0 : nsets, &ccfg, &has_cfg);
    if (e == SC_OK && config) e = config_load(config, sets, nsets, &out->cfg);
    else if (e == SC_OK && has_cfg) out->cfg = ccfg;
    else if (e == SC_OK)
        e = sc_errorf(SC_ERR_ARG, "checkpoint %s carries no config section: give CONFIG.yaml", ckpt);
    if (e == SC_OK && f) {
        char sig[CKPT_SIG_MAX], hint[768] = "";
        config_model_signature(&out->cfg, sig, sizeof sig);
        if (has_cfg && config) model_diff(&ccfg, &out->cfg, hint, sizeof hint);
        if (strcmp(sig, ckpt_get_header(f)->signature) && ckpt_find(f, "export.info", NULL, NULL)) {
            size_t o = strlen(hint);
            snprintf(hint + o, sizeof hint - o, "%sthis is an export or import: omit CONFIG.yaml to use its own config",
                     o ? "; " : "");
        }
        /* only the model must match: the header's own config hash is passed, so optim/data keys may differ */
        e = ckpt_check(f, sig, ckpt_get_header(f)->config_hash, hint[0] ? hint : NULL);
        if (e != SC_OK && hint[0]) { /* ckpt_check adds the hint to hash mismatches only */
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", sc_last_error());
            if (!strstr(msg, hint)) e = sc_errorf(e, "%s (%s)", msg, hint);
        }
    }
    if (e == SC_OK) {
        out->enc = ssl_encoder_cfg(&out->cfg);
        model_cfg bc = features_backbone_cfg(&out->enc);
        out->bb = model_create(&bc, &e);
    }
    if (e == SC_OK && f) {
        e = features_load(out->bb, &out->enc, f);
        out->step = ckpt_get_header(f)->step;
        snprintf(out->source, sizeof out->source, "%s", ckpt);
        size_t il = 0;
        const char *info = ckpt_find(f, "export.info", NULL, &il);
        if (info) snprintf(out->info, sizeof out->info, "%.*s", (int)(il < sizeof out->info ? il : sizeof out->info - 1), info);
    } else if (e == SC_OK && random_init) {
        e = features_init_random(out->bb, &out->enc, (uint64_t)out->cfg.run.seed);
        snprintf(out->source, sizeof out->source, "random init (seed %lld)", (long long)out->cfg.run.seed);
    }
    if (f) ckpt_close(f);
    return e;
}

int evcli_load(const char *cmd, const char *config, const char *const *sets, int nsets, const char *ckpt,
               bool random_init, evcli_model *out) {
    memset(out, 0, sizeof *out);
    sc_err e = load_model(config, sets, nsets, ckpt, random_init, out);
    int code = evcli_agree(cmd, ckpt ? "checkpoint" : "model", e);
    if (code) evcli_free(out);
    return code;
}

void evcli_free(evcli_model *m) {
    if (m->bb) model_free(m->bb);
    m->bb = NULL;
}

sc_err evcli_width_index(const sc_config *cfg, const char *w, int *wi) {
    char *end = NULL;
    double v = w ? strtod(w, &end) : NAN;
    char list[256];
    size_t o = 0;
    for (int i = 0; i < cfg->model.widths.n; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%g", i ? ", " : "", cfg->model.widths.v[i]);
    if (w && end != w && !*end)
        for (int i = 0; i < cfg->model.widths.n; i++)
            if (fabs(cfg->model.widths.v[i] - v) < 1e-6) { *wi = i; return SC_OK; }
    return sc_errorf(SC_ERR_ARG, "--width %s: expected one of model.widths [%s]", w ? w : "(missing)", list);
}

sc_err evcli_export_config(const sc_config *src, int base, const char *run_dir, sc_config *dst) {
    *dst = *src;
    char a[CONFIG_PATH_MAX + 16];
    snprintf(a, sizeof a, "model.base=%d", base);
    SC_TRY(config_set(dst, a));
    SC_TRY(config_set(dst, "model.widths=[1.0]"));
    snprintf(a, sizeof a, "run.dir=%s", run_dir);
    return config_set(dst, a);
}
