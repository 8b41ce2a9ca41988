/* ssl/estimate: the memory one rank of `slimclr train` needs (shared by `slimclr info` and train's start-up check),
 * and what a rank may use on its node (ssl_memory_allowance, see include/ssl/run.h). */
#include "comm/comm.h"
#include "io/config.h"
#include "model/model.h"
#include "ssl/run.h"
#include "ssl/step.h"
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P_(...) do { if (out) fprintf(out, __VA_ARGS__); } while (0)

static double mb(double bytes) { return bytes / 1e6; }

bool ssl_wavefront_planned(const sc_config *cfg, int P) { return cfg->method.schedule == CFG_STEP_WAVEFRONT && P > 1; }

/* The activations: the tapes (with the wavefront's extra ones when configured) and the per-model scratch, printed;
 * bytes in *tapes and *scratch. key: a momentum encoder (its inference tape); pred: MoCo v3's predictor or NULL. */
static void activations_estimate(const sc_config *cfg, model *q, model *pred, int n, int P, bool key, FILE *out,
                                 double *tapes_out, double *scratch_out) {
    bool sup = cfg->method.name == CFG_METHOD_SUPERVISED;
    int nw = cfg->model.widths.n, views = cfg->method.name == CFG_METHOD_MOCOV2 || sup ? 1 : 2;
    P_("  training tape of one view, per width served (model_tape_estimate_bytes):\n");
    for (int wi = 0; wi < nw; wi++)
        P_("    width %-5.3g %10.1f MB\n", cfg->model.widths.v[wi], mb((double)model_tape_estimate_bytes(q, wi, n, true)));
    /* ssl_create: per view one tape for the full width and one reused by every sub-width */
    double tapes = views * ((double)model_tape_estimate_bytes(q, 0, n, true) +
                            (nw > 1 ? (double)model_tape_estimate_bytes(q, 1, n, true) : 0));
    double scratch = (double)model_scratch_estimate_bytes(q, 0, n, true);
    if (pred) {
        tapes += views * ((double)model_tape_estimate_bytes(pred, 0, n, true) +
                          (nw > 1 ? (double)model_tape_estimate_bytes(pred, 1, n, true) : 0));
        scratch += (double)model_scratch_estimate_bytes(pred, 0, n, true);
    }
    /* method.schedule: wavefront keeps every pass alive at once: a tape per sub-width and view (instead of the one
     * reused) and activation scratch per pass but the first (per-pass output buffers: with the step buffers) */
    double wave = 0;
    for (int wi = 1; wi < nw; wi++) {
        wave += views * (double)model_tape_estimate_bytes(q, wi, n, true);
        if (pred) wave += views * (double)model_tape_estimate_bytes(pred, wi, n, true);
    }
    if (nw > 1) {
        wave -= views * (double)model_tape_estimate_bytes(q, 1, n, true);
        if (pred) wave -= views * (double)model_tape_estimate_bytes(pred, 1, n, true);
    }
    for (int wi = 0; wi < nw; wi++)
        for (int v = wi ? 0 : 1; v < views; v++)
            wave += 4.0 * (double)model_scratch_unit(q, wi, n) * MODEL_SCRATCH_PRIVATE;
    bool wf = ssl_wavefront_planned(cfg, P);
    if (wf) tapes += wave;
    if (key) {
        tapes += (double)model_tape_estimate_bytes(q, 0, n, false);
        scratch += (double)model_scratch_estimate_bytes(q, 0, n, false) - (double)model_workspace_estimate_bytes(q, 0, n);
    }
    P_("  %-52s %10.1f MB\n", views == 2 ? "activations (2 views x full + sub-width tapes, key)"
                                             : "activations (full + sub-width tape, key tape)", mb(tapes));
    P_("  %-52s %10.1f MB\n", "per-model scratch + conv workspace", mb(scratch));
    P_("  %-52s %10.1f MB  (%s)\n", "method.schedule: wavefront: extra activations", mb(wave),
       wf ? "configured, in the activations above; sequential is the low-memory choice"
       : cfg->method.schedule == CFG_STEP_WAVEFRONT ? "not counted: one rank runs the sequential schedule"
                                                    : "not counted: sequential is configured");
    *tapes_out = tapes;
    *scratch_out = scratch;
}

/* the step's buffers (ssl_create): embeddings, gathers, logits; counted as floats */
static double step_buffer_floats(const sc_config *cfg, int n, int P, int Bm, int D) {
    bool sup = cfg->method.name == CFG_METHOD_SUPERVISED;
    int nw = cfg->model.widths.n, views = cfg->method.name == CFG_METHOD_MOCOV2 || sup ? 1 : 2;
    bool wf = ssl_wavefront_planned(cfg, P);
    double z = cfg->method.name == CFG_METHOD_MOCOV2 ? (double)n * (1 + cfg->method.queue)
               : cfg->method.name == CFG_METHOD_MOCOV3 ? (double)n * Bm
               : sup ? (double)n * D : 2.0 * n * (2.0 * Bm - 1);
    double buf = 2 * (7.0 * D * n + D * Bm) + 2.0 * D * n + D * (double)Bm + 4 * z;
    if (cfg->method.name == CFG_METHOD_MOCOV2) {
        buf += (double)cfg->optim.accum * D * n * (2 + P); /* keys of the step, their gather in flight */
        if (cfg->method.bn == CFG_BN_SHUFFLE) {
            double hw = (double)cfg->model.in_channels * cfg->model.image_size * cfg->model.image_size;
            buf += (Bm + n) * hw + 4.0 * Bm;
        }
    }
    if (cfg->method.name == CFG_METHOD_SIMCLR) buf += 2.0 * D * Bm + 2 * z;
    if (wf) buf += (double)views * ((nw - 1) * (2.0 * D * n + n) + nw * 2.0 * D * n);
    return buf;
}

/* Memory per rank of `slimclr train` (what ssl_create and the loader allocate), from the plans: parameters,
 * gradients, optimizer state, BN buffers, tapes (model_tape_estimate_bytes), queue and step buffers. */
double ssl_memory_estimate(const sc_config *cfg, model *q, int P, FILE *out) {
    bool sup = cfg->method.name == CFG_METHOD_SUPERVISED;
    int n = cfg->optim.batch / cfg->optim.accum / P, Bm = n * P, D = cfg->method.dim;
    bool key = cfg->method.name != CFG_METHOD_SIMCLR && !sup;
    double np = (double)model_nparams(q), nb = (double)model_nbufs(q);
    int opt_copies = cfg->optim.name == CFG_OPT_ADAMW ? 2 : 1;
    P_("\n== memory per rank (estimate, %d image(s) per micro-batch per rank)\n", n);
    double enc = (np * (2 + opt_copies) + nb) * 4;
    P_("  %-52s %10.1f MB  (%.0f parameters, %.0f BN buffers)\n", "query encoder: params+grads+optimizer+BN", mb(enc),
           np, nb);
    double total = enc;
    /* the MoCo v3 predictor (a small MLP) is built like the encoder's head */
    model *pred = NULL;
    if (cfg->method.name == CFG_METHOD_MOCOV3) {
        model_cfg pc = ssl_encoder_cfg(cfg);
        pc.depth = 0;
        pc.head = HEAD_MOCOV3_PRED;
        pc.head_in = cfg->method.dim;
        pc.head_hidden = cfg->method.mlp_dim;
        pc.head_out = cfg->method.dim;
        sc_err e;
        pred = model_create(&pc, &e);
        if (pred) {
            double pe = ((double)model_nparams(pred) * (2 + opt_copies) + (double)model_nbufs(pred)) * 4;
            P_("  %-52s %10.1f MB\n", "predictor: params+grads+optimizer+BN", mb(pe));
            total += pe;
        }
    }
    if (key) {
        double ke = (np + nb) * 4; /* model_create_nograd: no gradient array */
        P_("  %-52s %10.1f MB\n", "momentum encoder (params+BN)", mb(ke));
        total += ke;
    }
    double tapes, scratch;
    activations_estimate(cfg, q, pred, n, P, key, out, &tapes, &scratch);
    total += tapes + scratch;
    double queue = cfg->method.name == CFG_METHOD_MOCOV2 ? (double)cfg->method.queue * D * 4 : 0;
    if (queue > 0) P_("  %-52s %10.1f MB  (%d x %d)\n", "queue", mb(queue), D, cfg->method.queue);
    total += queue;
    double buf = step_buffer_floats(cfg, n, P, Bm, D);
    P_("  %-52s %10.1f MB\n", "step buffers (embeddings, gathers, logits)", mb(buf * 4));
    total += buf * 4;
    double img = (double)cfg->model.in_channels * cfg->model.image_size * cfg->model.image_size;
    double batches = 2.0 * 2 * n * img * 4; /* two slots x two views */
    P_("  %-52s %10.1f MB\n", "loader batches (2 slots x 2 views)", mb(batches));
    total += batches;
    P_("  %-52s %10.1f MB  (+ the dataset when held in memory: Fashion-MNIST/CIFAR whole, shards by offset)\n",
           "total", mb(total));
    /* what `train` reports at start-up as "MB of state per rank" (ssl_memory_bytes: every model's params, grads,
     * one optimizer-state copy and BN buffers, scratch, tapes and the queue), for checking this estimate */
    double state = (np * 3 + nb + (key ? np + nb : 0)) * 4 + tapes + scratch + queue;
    if (pred) state += ((double)model_nparams(pred) * 3 + (double)model_nbufs(pred)) * 4;
    P_("  %-52s %10.2f MB\n", "of which train's start-up 'MB of state per rank'", mb(state));
    model_free(pred);
    return total;
}


/* ---- what a rank may use ------------------------------------------------------------------------------------ */

/* "123", "64G", "512M", "1.5T", "800K" (powers of 1024) -> bytes; false when not a size */
bool ssl_parse_bytes(const char *s, double *v) {
    char *end = NULL;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || errno || x < 0) return false;
    double m = 1;
    switch (*end) {
    case 'k': case 'K': m = 1024.0; end++; break;
    case 'm': case 'M': m = 1024.0 * 1024; end++; break;
    case 'g': case 'G': m = 1024.0 * 1024 * 1024; end++; break;
    case 't': case 'T': m = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (*end == 'B' || *end == 'b') end++;
    if (*end) return false;
    *v = x * m;
    return true;
}

/* a cgroup limit file: bytes, or -1 for "max", a missing file or a "no limit" value (cgroup v1 uses ~2^63) */
static double read_limit(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char buf[64] = "";
    bool ok = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    if (!ok || !strncmp(buf, "max", 3)) return -1;
    double v = strtod(buf, NULL);
    return v > 0 && v < 1e18 ? v : -1;
}

/* the memory limit of this process's cgroup (v2: memory.max of it and its ancestors; v1: memory.limit_in_bytes) */
static double cgroup_limit(char *src, size_t n) {
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return -1;
    char line[1024], v2[1024] = "", v1[1024] = "";
    bool have_v2 = false, have_v1 = false;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c2 = 0;
        if (!strncmp(line, "0::", 3) || (c1[1] == 0 && !strcmp(line, "0:"))) {
            snprintf(v2, sizeof v2, "%s", c2 + 1);
            have_v2 = true;
        } else if (strstr(c1 + 1, "memory")) {
            snprintf(v1, sizeof v1, "%s", c2 + 1);
            have_v1 = true;
        }
    }
    fclose(f);
    double best = -1;
    char p[1200];
    if (have_v2) {
        for (;;) { /* the tightest memory.max from the process's cgroup up to the root */
            snprintf(p, sizeof p, "/sys/fs/cgroup%s/memory.max", strcmp(v2, "/") ? v2 : "");
            double v = read_limit(p);
            if (v > 0 && (best < 0 || v < best)) {
                best = v;
                snprintf(src, n, "cgroup %.900s", p);
            }
            char *sl = strrchr(v2, '/');
            if (!sl || sl == v2) {
                if (!strcmp(v2, "/") || !v2[0]) break;
                snprintf(v2, sizeof v2, "/");
                continue;
            }
            *sl = 0;
        }
    }
    if (have_v1) {
        snprintf(p, sizeof p, "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", strcmp(v1, "/") ? v1 : "");
        double v = read_limit(p);
        if (v > 0 && (best < 0 || v < best)) {
            best = v;
            snprintf(src, n, "cgroup %.900s", p);
        }
    }
    return best;
}

static double mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    double v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "MemAvailable:", 13)) v = strtod(line + 13, NULL) * 1024.0;
    fclose(f);
    return v;
}

double ssl_memory_allowance(int local_ranks, char *why, size_t n) {
    if (local_ranks < 1) local_ranks = 1;
    double best = -1;
    char tmp[1300], src[1200];
    why[0] = 0;
    const char *e = getenv("SLIMCLR_MEM_PER_RANK");
    double v;
    if (e && *e && ssl_parse_bytes(e, &v)) {
        snprintf(why, n, "SLIMCLR_MEM_PER_RANK=%s", e);
        return v;
    }
#define TAKE(val, ...)                                                                                                 \
    do {                                                                                                               \
        double x_ = (val);                                                                                             \
        if (x_ > 0 && (best < 0 || x_ < best)) {                                                                       \
            best = x_;                                                                                                 \
            snprintf(tmp, sizeof tmp, __VA_ARGS__);                                                                    \
            snprintf(why, n, "%s", tmp);                                                                               \
        }                                                                                                              \
    } while (0)
    double cg = cgroup_limit(src, sizeof src);
    TAKE(cg / local_ranks, "%s = %.1f GB / %d rank(s) on this node", src, cg / 1e9, local_ranks);
    const char *node = getenv("SLURM_MEM_PER_NODE"), *cpu = getenv("SLURM_MEM_PER_CPU");
    const char *cpt = getenv("SLURM_CPUS_PER_TASK");
    int cpus = cpt && atoi(cpt) > 0 ? atoi(cpt) : 1;
    if (node && *node) { /* SLURM gives megabytes */
        double mbv = strtod(node, NULL) * 1024 * 1024;
        TAKE(mbv / local_ranks, "SLURM_MEM_PER_NODE=%s MB / %d rank(s) on this node", node, local_ranks);
    }
    if (cpu && *cpu) {
        double mbv = strtod(cpu, NULL) * 1024 * 1024;
        TAKE(mbv * cpus, "SLURM_MEM_PER_CPU=%s MB x %d CPU(s) per task", cpu, cpus);
    }
    double av = mem_available();
    TAKE(av / local_ranks, "MemAvailable %.1f GB / %d rank(s) on this node", av / 1e9, local_ranks);
#undef TAKE
    return best;
}
