/* cli/export: `slimclr export --checkpoint PATH --width W --out PATH [--format slimclr|safetensors]` and
 * `slimclr import --from FILE.safetensors --config CONFIG.yaml --out PATH` (docs/export.md).
 * Both are one-process jobs: rank 0 works, the other ranks wait for its exit code. */
#include "cli/cli.h"
#include "comm/comm.h"
#include "core/error.h"
#include "eval/export.h"
#include "eval/features.h"
#include "evalcli.h"
#include "io/checkpoint.h"
#include "ssl/step.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* A backbone checkpoint: q.params / q.bufs in the HEAD_NONE layout, the config and a provenance line. */
static sc_err write_backbone_ckpt(const char *path, const sc_config *cfg, model *bb, uint64_t step, const char *info) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return sc_errorf(SC_ERR_NOMEM, "export: open_memstream failed");
    config_write_yaml(cfg, f);
    fclose(f);
    ckpt_section secs[4] = {
        {"q.params", CKPT_F32, model_nparams(bb), model_params(bb)},
        {"q.bufs", CKPT_F32, model_nbufs(bb), model_bufs(bb)},
        {"config", CKPT_U8, len, text},
        {"export.info", CKPT_U8, strlen(info), info},
    };
    ckpt_header h;
    memset(&h, 0, sizeof h);
    h.config_hash = config_hash(cfg);
    h.step = step;
    config_model_signature(cfg, h.signature, sizeof h.signature);
    sc_err e = ckpt_write(path, &h, secs, 4);
    free(text);
    return e;
}

/* run.dir of an export's / import's own config: the output path without its extension, so that
 * `eval --checkpoint OUT` writes its tables beside OUT, not into the source run */
static void out_run_dir(const char *out, char *rd, size_t n) {
    snprintf(rd, n, "%s", out);
    char *dot = strrchr(rd, '.'), *slash = strrchr(rd, '/');
    if (dot && (!slash || dot > slash) && dot != rd) *dot = 0;
}

static sc_err do_export(const evcli_model *m, int wi, const char *out, bool safetensors, char *msg, size_t nmsg) {
    const sc_config *c = &m->cfg;
    model_cfg bc = features_backbone_cfg(&m->enc), sc;
    SC_TRY(export_slice_cfg(&bc, wi, &sc));
    sc_err e = SC_OK;
    model *dst = model_create(&sc, &e);
    if (!dst) return e;
    e = export_slice(m->bb, wi, dst);
    float w = model_width(m->bb, wi);
    char sig[CKPT_SIG_MAX];
    config_model_signature(c, sig, sizeof sig);
    if (e == SC_OK && safetensors) {
        char wtxt[32], wl[256], depth[16], inch[16], base[16], step[32], img[16];
        size_t o = 0;
        for (int i = 0; i < c->model.widths.n; i++)
            o += (size_t)snprintf(wl + o, sizeof wl - o, "%s%g", i ? "," : "", c->model.widths.v[i]);
        snprintf(wtxt, sizeof wtxt, "%g", (double)w);
        snprintf(depth, sizeof depth, "%d", c->model.depth);
        snprintf(inch, sizeof inch, "%d", c->model.in_channels);
        snprintf(base, sizeof base, "%d", c->model.base);
        snprintf(img, sizeof img, "%d", c->model.image_size);
        snprintf(step, sizeof step, "%llu", (unsigned long long)m->step);
        const char *keys[] = {"format", "width", "widths", "depth", "stem", "in_ch", "base", "image_size", "strides",
                              "head", "source", "step", "signature"};
        const char *vals[] = {"slimclr backbone export (torchvision ResNet names)", wtxt, wl, depth,
                              c->model.stem == CFG_STEM_IMAGENET ? "imagenet" : "small", inch, base, img, "1,2,2,2",
                              "not exported (backbone only; the projection head is dropped)", m->source, step, sig};
        e = export_write_safetensors(dst, out, (int)(sizeof keys / sizeof keys[0]), keys, vals);
    } else if (e == SC_OK) {
        char rd[CONFIG_PATH_MAX];
        out_run_dir(out, rd, sizeof rd);
        sc_config xc;
        e = evcli_export_config(c, sc.base, rd, &xc);
        char info[2048];
        snprintf(info, sizeof info, "export of width %g of %s (%s, step %llu) as a width-1.0 network of base %d",
                 (double)w, sig, m->source, (unsigned long long)m->step, sc.base);
        if (e == SC_OK) e = write_backbone_ckpt(out, &xc, dst, m->step, info);
    }
    if (e == SC_OK) {
        double p, macs;
        model_count_backbone(dst, 0, &p, &macs);
        snprintf(msg, nmsg, "exported width %g (%d features, %.3f M parameters, base %d) of %s to %s (%s)", (double)w,
                 model_feat_dim(dst, 0), p / 1e6, sc.base, m->source, out, safetensors ? "safetensors" : "slimclr");
    }
    model_free(dst);
    return e;
}

int cli_export(int argc, char **argv) {
    cli_common cc;
    memset(&cc, 0, sizeof cc);
    const char *ckpt = NULL, *width = NULL, *out = NULL, *format = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_take_set(&cc, argc, argv, &i);
        if (r < 0) { cli_usage_error("export", "--set needs key=value"); return 2; }
        if (r) continue;
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--checkpoint") && has) ckpt = argv[++i];
        else if (!strcmp(a, "--width") && has) width = argv[++i];
        else if (!strcmp(a, "--out") && has) out = argv[++i];
        else if (!strcmp(a, "--format") && has) format = argv[++i];
        else if (!strcmp(a, "--config") && has) cc.config = argv[++i];
        else { cli_usage_error("export", "unknown option or argument %s", a); return 2; }
    }
    if (!ckpt || !width || !out) {
        cli_usage_error("export", "usage: slimclr export --checkpoint PATH --width W --out PATH "
                                  "[--format slimclr|safetensors]");
        return 2;
    }
    if (format && strcmp(format, "slimclr") && strcmp(format, "safetensors")) {
        cli_usage_error("export", "--format %s: expected slimclr or safetensors", format);
        return 2;
    }
    const char *ext = strrchr(out, '.'), *sl = strrchr(out, '/');
    if (ext && sl && ext < sl) ext = NULL;
    if (!format && ext && strcmp(ext, ".safetensors") && strcmp(ext, ".ckpt")) {
        cli_usage_error("export", "--out %s: export writes a slimclr checkpoint (.ckpt) or safetensors (.safetensors), "
                                  "not %s; name the file so, or pass --format", out, ext);
        return 2;
    }
    bool st = format ? !strcmp(format, "safetensors") : ends_with(out, ".safetensors");
    int code = evcli_agree("export", "--out", comm_rank() == 0 ? evcli_check_out(out, true) : SC_OK);
    if (code) return code;
    evcli_model m;
    code = evcli_load("export", cc.config, cc.sets, cc.nsets, ckpt, false, &m);
    if (code) return code;
    int wi = 0;
    sc_err e = evcli_width_index(&m.cfg, width, &wi);
    char msg[2048] = "";
    if (e == SC_OK && comm_rank() == 0) e = do_export(&m, wi, out, st, msg, sizeof msg);
    code = evcli_agree_write("export", "export", e);
    if (!code && comm_rank() == 0) printf("%s\n", msg);
    evcli_free(&m);
    return code;
}

static sc_err do_import(const sc_config *cfg0, const char *from, const char *out, char *msg, size_t nmsg,
                        bool *wrote) {
    sc_config c2 = *cfg0, *cfg = &c2;
    char rd[CONFIG_PATH_MAX], a[CONFIG_PATH_MAX + 16];
    out_run_dir(out, rd, sizeof rd);
    snprintf(a, sizeof a, "run.dir=%s", rd);
    SC_TRY(config_set(cfg, a));
    model_cfg enc = ssl_encoder_cfg(cfg), bc = features_backbone_cfg(&enc);
    sc_err e = SC_OK;
    model *bb = model_create(&bc, &e);
    if (!bb) return e;
    int ign = 0;
    e = export_import_safetensors(bb, from, &ign);
    char info[1024];
    snprintf(info, sizeof info, "import of %s (torchvision names; sub-width BN = leading channels of width 1.0's)",
             from);
    if (e == SC_OK) {
        *wrote = true;
        e = write_backbone_ckpt(out, cfg, bb, 0, info);
    }
    if (e == SC_OK)
        snprintf(msg, nmsg, "imported %s into %s (%d widths; %d fc/num_batches_tracked entries ignored)", from, out,
                 model_nwidths(bb), ign);
    model_free(bb);
    return e;
}

int cli_import(int argc, char **argv) {
    cli_common cc;
    memset(&cc, 0, sizeof cc);
    const char *from = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_take_set(&cc, argc, argv, &i);
        if (r < 0) { cli_usage_error("import", "--set needs key=value"); return 2; }
        if (r) continue;
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--from") && has) from = argv[++i];
        else if (!strcmp(a, "--config") && has) cc.config = argv[++i];
        else if (!strcmp(a, "--out") && has) out = argv[++i];
        else { cli_usage_error("import", "unknown option or argument %s", a); return 2; }
    }
    if (!from || !cc.config || !out) {
        cli_usage_error("import", "usage: slimclr import --from FILE.safetensors --config CONFIG.yaml --out PATH");
        return 2;
    }
    sc_config cfg;
    sc_err e = config_load(cc.config, cc.sets, cc.nsets, &cfg);
    if (e == SC_OK && comm_rank() == 0) e = evcli_check_out(out, true);
    int code = evcli_agree("import", "import", e);
    if (code) return code;
    char msg[2048] = "";
    bool wrote = false; /* a failure while writing is a runtime error (exit 1), a bad input file exit 2 */
    if (comm_rank() == 0) e = do_import(&cfg, from, out, msg, sizeof msg, &wrote);
    code = wrote ? evcli_agree_write("import", "import", e) : evcli_agree("import", "import", e);
    if (!code && comm_rank() == 0) printf("%s\n", msg);
    return code;
}
