/* cli/bench: `slimclr bench CONFIG.yaml [--set k=v]... [--label NAME] [--csv FILE] [--commit ID]`
 * docs/benchmarks.md B1: SlimCLR training steps on random input (no data pipeline) after slow start, warm-up steps, then
 * the median of bench.steps timed steps. Prints ms/step, images/s, the analytic model GFLOP/s (the count of
 * `slimclr info`), the BLIS sgemm rate measured in this process with the same threads (2048^3, before and
 * after the steps, the higher one), their ratio, peak resident memory, the per-phase breakdown and the
 * per-layer convolution rates (nn/conv profile) against the sgemm rate. --csv appends the same numbers as
 * rows "date,cpu,commit,label,key,value". COLLECTIVE; rank 0 prints. */
#include "blas/blas.h"
#include "cli/cli.h"
#include "comm/affinity.h"
#include "comm/comm.h"
#include "comm/timers.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "io/config.h"
#include "model/model.h"
#include "nn/conv.h"
#include "ssl/step.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define BENCH_MAX_STEPS 1000
#define BENCH_MAX_PH 24

static int bench_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double bench_median(const double *v, int n) {
    double tmp[BENCH_MAX_STEPS];
    memcpy(tmp, v, sizeof(double) * n);
    qsort(tmp, n, sizeof(double), bench_cmp);
    return n % 2 ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]);
}

static void bench_cpu_model(char *buf, size_t len) {
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10)) continue;
        char *p = strchr(line, ':');
        if (!p) break;
        p++;
        while (*p == ' ') p++;
        p[strcspn(p, "\n")] = 0;
        for (char *q = p; *q; q++) if (*q == ',') *q = ';'; /* CSV-safe */
        snprintf(buf, len, "%s", p);
        break;
    }
    fclose(f);
}

typedef struct {
    FILE *f;
    char prefix[512];
} bench_csv;

static void csv_row(bench_csv *c, const char *key, double v) {
    if (c->f) fprintf(c->f, "%s,%s,%.6g\n", c->prefix, key, v);
}

/* the program's analytic count (same convention as `slimclr info`): FLOPs per image of one step */
static double bench_flops_per_image(const sc_config *cfg, model *m, int nw) {
    double step_macs = 0, key_macs = 0;
    for (int wi = 0; wi < nw; wi++) {
        double p, mm;
        model_count(m, wi, &p, &mm);
        step_macs += mm;
        if (wi == 0) key_macs = mm;
    }
    bool sup = cfg->method.name == CFG_METHOD_SUPERVISED;
    int views = cfg->method.name == CFG_METHOD_MOCOV2 || sup ? 1 : 2;
    double keyf = cfg->method.name == CFG_METHOD_SIMCLR || sup ? 0 : (cfg->method.name == CFG_METHOD_MOCOV3 ? 2 : 1);
    return 2.0 * (3.0 * views * step_macs + keyf * key_macs);
}

static void print_layers(FILE *out, bench_csv *csv, double peak, int steps) {
    fprintf(out, "\n== convolutions per layer shape and width (forward + backward, all calls of the timed steps; "
                 "algo: wino = Winograd F(2x2,3x3), wino4 = F(4x4,3x3), dir = direct; GFLOP/s count the direct convolution's FLOPs)\n");
    fprintf(out, "%-20s %6s %5s %5s %4s %5s %9s %9s %8s %6s\n", "layer", "width", "cin", "cout", "hw", "algo",
            "ms/step", "GFLOP/s", "%sgemm", "calls");
    double tot_s = 0, tot_f = 0;
    for (int i = 0; i < conv_prof_count(); i++) {
        const conv_prof_entry *e = conv_prof_get(i);
        double s = e->fwd_s + e->bwd_s, fl = e->fwd_flop + e->bwd_flop, r = fl / s / 1e9;
        double width = e->cin_max > 3 ? (double)e->cin / e->cin_max : (double)e->cout / e->cout_max;
        char name[64], key[96];
        snprintf(name, sizeof name, "%dx%d/%d %d->%d", e->k, e->k, e->stride, e->cin_max, e->cout_max);
        const char *flag = (width < 0.6 && r < 0.5 * peak) ? "  < 50%" : "";
        fprintf(out, "%-20s %6.3g %5d %5d %4d %5s %9.2f %9.1f %7.0f%% %6ld%s\n", name, width, e->cin, e->cout, e->h,
                e->wino == 4 ? "wino4" : (e->wino ? "wino" : "dir"), 1e3 * s / steps, r, 100 * r / peak, e->fwd_calls + e->bwd_calls, flag);
        snprintf(key, sizeof key, "layer %s h%d w%.3g gflops", name, e->h, width);
        csv_row(csv, key, r);
        snprintf(key, sizeof key, "layer %s h%d w%.3g ms_per_step", name, e->h, width);
        csv_row(csv, key, 1e3 * s / steps);
        tot_s += s;
        tot_f += fl;
    }
    fprintf(out, "all convolutions: %.1f ms/step, %.1f GFLOP/s = %.0f%% of sgemm\n", 1e3 * tot_s / steps,
            tot_f / tot_s / 1e9, 100 * tot_f / tot_s / 1e9 / peak);
    csv_row(csv, "conv ms_per_step", 1e3 * tot_s / steps);
    csv_row(csv, "conv gflops", tot_f / tot_s / 1e9);
}

/* the command line into cc (CONFIG, --set) and the three strings; 0, or 2 after a usage error */
static int parse_args(int argc, char **argv, cli_common *cc, const char **csv_path, const char **label,
                      const char **commit) {
    for (int i = 1; i < argc; i++) {
        int r = cli_take_set(cc, argc, argv, &i);
        if (r < 0) { cli_usage_error("bench", "--set needs key=value"); return 2; }
        if (r) continue;
        if (!strcmp(argv[i], "--csv") && i + 1 < argc) *csv_path = argv[++i];
        else if (!strcmp(argv[i], "--label") && i + 1 < argc) *label = argv[++i];
        else if (!strcmp(argv[i], "--commit") && i + 1 < argc) *commit = argv[++i];
        else if (argv[i][0] == '-') { cli_usage_error("bench", "unknown option %s", argv[i]); return 2; }
        else if (!cc->config) cc->config = argv[i];
        else { cli_usage_error("bench", "unexpected argument %s", argv[i]); return 2; }
    }
    if (!cc->config) { cli_usage_error("bench", "missing CONFIG.yaml"); return 2; }
    return 0;
}

/* the phases of the table: forward/backward per width (the wavefront interleaves them, and the key encoder, in two
 * timed runs), then the rest (names registered by ssl_create). Returns their count. */
static int phase_names(const sc_config *cfg, ssl_trainer *tr, char phn[][COMM_TIMER_NAME_MAX]) {
    const char *fixed[] = {"key encoder", "loss", "gathers", "allreduce exposed", "optimizer"};
    int nph = 0, nw = ssl_nwidths(tr);
    if (ssl_wavefront(tr)) {
        snprintf(phn[nph++], COMM_TIMER_NAME_MAX, "forward wavefront");
        snprintf(phn[nph++], COMM_TIMER_NAME_MAX, "backward wavefront");
    } else {
        for (int i = 0; i < nw; i++) snprintf(phn[nph++], COMM_TIMER_NAME_MAX, "forward w%.3g", ssl_width(tr, i));
        for (int i = 0; i < nw; i++) snprintf(phn[nph++], COMM_TIMER_NAME_MAX, "backward w%.3g", ssl_width(tr, i));
    }
    for (int i = 0; i < 5; i++) snprintf(phn[nph++], COMM_TIMER_NAME_MAX, "%s", fixed[i]);
    return nph;
}

/* what the timed steps gave */
typedef struct {
    int steps, threads, ranks, batch;     /* timed steps; per rank: threads, images per step */
    double med, mn;                       /* seconds per step: median, minimum */
    double img_s, flop_img, model_gf;     /* images/s (all ranks), FLOP per image, model GFLOP/s per rank */
    double peak0, peak1, peak, fma_peak;  /* sgemm GFLOP/s before / after the steps / the higher; FMA peak */
    double rss_mb;                        /* peak resident memory */
    bool slim, finite;                    /* every timed step trained all widths / stayed finite */
} bench_summary;

/* COLLECTIVE: warm-up then timed steps from step T0 on the images x1, x2; dt[steps] their seconds, the phases and the
 * convolution profile counted over the timed ones */
static void timed_steps(ssl_trainer *tr, long T0, int warm, int steps, int accum, const float *x1, const float *x2,
                        int n, double *dt, bench_summary *b) {
    b->slim = b->finite = true;
    for (int s = 0; s < warm + steps; s++) {
        if (s == warm) {
            comm_timers_reset();
            conv_prof_reset();
            conv_prof_enable(1);
        }
        comm_barrier();
        double t0 = sc_now();
        ssl_step_begin(tr, T0 + s);
        for (int a = 0; a < accum; a++) ssl_micro(tr, x1, x2, n);
        ssl_step_out o;
        ssl_step_end(tr, &o);
        double t = sc_now() - t0;
        if (s >= warm) {
            dt[s - warm] = t;
            b->slim = b->slim && o.slim;
            b->finite = b->finite && o.finite;
        }
    }
    conv_prof_enable(0);
}

/* --csv: append (a header first in a new file); the row prefix "date,cpu,commit,label". 0, or 1: cannot open */
static int open_csv(const char *csv_path, const char *commit, const char *label, bench_csv *csv) {
    int rc = 0;
    FILE *probe = fopen(csv_path, "r");
    bool fresh = probe == NULL;
    if (probe) fclose(probe);
    csv->f = fopen(csv_path, "a");
    if (!csv->f) {
        fprintf(stderr, "slimclr bench: --csv %s: cannot open for appending\n", csv_path);
        rc = 1;
    } else if (fresh) {
        fprintf(csv->f, "date,cpu,commit,label,key,value\n");
    }
    char date[32], cpu[256];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", localtime(&now));
    bench_cpu_model(cpu, sizeof cpu);
    snprintf(cpu + strlen(cpu), sizeof cpu - strlen(cpu), " [ISA %s]", sc_isa_name(sc_isa_active()));
    snprintf(csv->prefix, sizeof csv->prefix, "%s,%s,%s,%s", date, cpu, commit, label);
    return rc;
}

static void print_phases(bench_csv *csv, int nph, char phn[][COMM_TIMER_NAME_MAX], const double *ph_tot, int steps,
                         double med) {
    printf("\n== phases (mean per timed step, rank 0)\n");
    double ph_sum = 0;
    for (int i = 0; i < nph; i++) {
        double ms = 1e3 * ph_tot[i] / steps;
        ph_sum += ms;
        printf("  %-20s %9.1f ms %5.1f%%\n", phn[i], ms, 100 * ms / (1e3 * med));
        char key[64];
        snprintf(key, sizeof key, "phase %s ms", phn[i]);
        csv_row(csv, key, ms);
    }
    printf("  %-20s %9.1f ms (step median %.1f ms)\n", "sum of phases", ph_sum, 1e3 * med);
}

static void print_summary(bench_csv *csv, const char *label, const bench_summary *b) {
    printf("\n== %s summary (%s)\n", label, blas_info());
    printf("  CPU: %s; ISA path %s\n", sc_cpu_summary(), sc_isa_name(sc_isa_active()));
    printf("  ms/step (median of %d): %.1f (min %.1f)\n", b->steps, 1e3 * b->med, 1e3 * b->mn);
    printf("  images/s: %.2f\n", b->img_s);
    printf("  model: %.3f GFLOP per image, %.1f GFLOP/s per rank\n", b->flop_img / 1e9, b->model_gf);
    printf("  sgemm 2048^3 (%d threads): %.1f GFLOP/s (before %.1f, after %.1f)\n", b->threads, b->peak, b->peak0,
           b->peak1);
    printf("  FMA peak (%s, %d threads, register-only loop): %.1f GFLOP/s\n", sc_isa_name(sc_isa_detected()),
           b->threads, b->fma_peak);
    printf("  ratio model/sgemm: %.0f%%   model/FMA peak: %.0f%%   sgemm/FMA peak: %.0f%%\n",
           100 * b->model_gf / b->peak, 100 * b->model_gf / b->fma_peak, 100 * b->peak / b->fma_peak);
    printf("  peak resident memory: %.0f MB\n", b->rss_mb);
    if (!b->slim) printf("  WARNING: slow start was not over: not all widths were trained\n");
    if (!b->finite) printf("  WARNING: a non-finite loss or gradient occurred\n");
    csv_row(csv, "ms_per_step", 1e3 * b->med);
    csv_row(csv, "ms_per_step_min", 1e3 * b->mn);
    csv_row(csv, "images_per_s", b->img_s);
    csv_row(csv, "gflop_per_image", b->flop_img / 1e9);
    csv_row(csv, "model_gflops", b->model_gf);
    csv_row(csv, "sgemm_gflops", b->peak);
    csv_row(csv, "ratio", b->model_gf / b->peak);
    csv_row(csv, "fma_peak_gflops", b->fma_peak);
    csv_row(csv, "ratio_fma_peak", b->model_gf / b->fma_peak);
    csv_row(csv, "peak_rss_mb", b->rss_mb);
    csv_row(csv, "threads", b->threads);
    csv_row(csv, "ranks", b->ranks);
    csv_row(csv, "batch_per_rank", b->batch);
}

int cli_bench(int argc, char **argv) {
    cli_common cc;
    memset(&cc, 0, sizeof cc);
    const char *csv_path = NULL, *label = "B1", *commit = "unknown";
    if (parse_args(argc, argv, &cc, &csv_path, &label, &commit)) return 2;
    int rank = comm_rank(), P = comm_size();
    sc_config cfg;
    sc_err e = config_load(cc.config, cc.sets, cc.nsets, &cfg);
    if (e == SC_OK) e = config_check_ranks(&cfg, P);
    if (e != SC_OK) {
        if (rank == 0) fprintf(stderr, "slimclr: error: %s\n", sc_last_error());
        return 2;
    }
    int steps = cfg.bench.steps, warm = cfg.bench.warmup_steps;
    if (steps > BENCH_MAX_STEPS) {
        if (rank == 0) fprintf(stderr, "slimclr bench: bench.steps %d: expected at most %d\n", steps, BENCH_MAX_STEPS);
        return 2;
    }
    FILE *out = rank == 0 ? stdout : NULL;
    bench_summary b = {.steps = steps, .ranks = P};
    b.threads = affinity_setup(cfg.run.threads, out);
    conv_set_algo_config((conv_algo)cfg.run.conv_algo);
    int n = cfg.optim.batch / cfg.optim.accum / P, accum = cfg.optim.accum;
    b.batch = n * accum;

    /* one step per "epoch": any slow start (in epochs) is over after a few steps, so T starts past it */
    long T0 = 1000 + (long)cfg.slimclr.slow_start_epoch + 1;
    ssl_trainer *tr = NULL;
    e = ssl_create(&cfg, n, 1, T0 + warm + steps + 1, &tr);
    if (comm_allreduce_max_int(e != SC_OK)) {
        if (e != SC_OK) fprintf(stderr, "slimclr: error (rank %d): model: %s\n", rank, sc_last_error());
        if (tr) ssl_free(tr);
        return 2;
    }
    model *m = ssl_query_model(tr);
    const model_cfg *mc = model_config(m);
    size_t xlen = (size_t)mc->in_ch * n * mc->img * mc->img;
    float *x1 = sc_calloc_n(float, xlen), *x2 = sc_calloc_n(float, xlen);
    rng_stream rs = rng_stream_make(cfg.run.seed, 0xbe, (uint64_t)rank, 0);
    for (size_t i = 0; i < xlen; i++) { x1[i] = rng_normal(&rs); x2[i] = rng_normal(&rs); }
    int32_t *lab = sc_calloc_n(int32_t, n); /* supervised: class 0 for every random image */
    if (cfg.method.name == CFG_METHOD_SUPERVISED) ssl_set_labels(tr, lab);
    b.flop_img = bench_flops_per_image(&cfg, m, ssl_nwidths(tr));

    b.peak0 = blas_sgemm_rate(2048, 3);
    if (out) {
        fprintf(out, "bench %s: %s, %d rank(s) x %d thread(s), %d images per rank, %d warm-up + %d timed steps\n",
                label, cc.config, P, b.threads, n * accum, warm, steps);
        fflush(out);
    }
    char phn[BENCH_MAX_PH][COMM_TIMER_NAME_MAX];
    int nph = phase_names(&cfg, tr, phn);
    double ph_tot[BENCH_MAX_PH] = {0}, dt[BENCH_MAX_STEPS];
    timed_steps(tr, T0, warm, steps, accum, x1, x2, n, dt, &b);
    for (int i = 0; i < nph; i++) ph_tot[i] = comm_timer_seconds(comm_timer_id(phn[i]));
    b.peak1 = blas_sgemm_rate(2048, 3);
    b.peak = b.peak0 > b.peak1 ? b.peak0 : b.peak1;
    b.fma_peak = blas_fma_peak(b.threads);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    b.rss_mb = ru.ru_maxrss / 1024.0;
    b.med = bench_median(dt, steps);
    b.mn = dt[0];
    for (int i = 1; i < steps; i++) if (dt[i] < b.mn) b.mn = dt[i];
    b.img_s = (double)n * accum * P / b.med;
    b.model_gf = b.flop_img * n * accum / b.med / 1e9;

    int rc = 0;
    if (rank == 0) {
        bench_csv csv = {NULL, ""};
        if (csv_path) rc = open_csv(csv_path, commit, label, &csv);
        print_phases(&csv, nph, phn, ph_tot, steps, b.med);
        print_layers(stdout, &csv, b.peak, steps);
        print_summary(&csv, label, &b);
        if (csv.f) {
            fclose(csv.f);
            printf("  written to %s\n", csv_path);
        }
    }
    sc_free(x1);
    sc_free(lab);
    sc_free(x2);
    ssl_free(tr);
    return rc;
}
