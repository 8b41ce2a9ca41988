/* train_cmp: the comparisons behind tests/sh/train_*.sh (no MPI needed; built with the multi-rank programs).
 *   train_cmp metrics A.jsonl B.jsonl RELTOL [FROM TO]
 *       per step, every loss key of A (loss, loss_con_w*, loss_kd_w*), and grad_norm
 *       when TRAIN_CMP_GRAD=1, against B: |a-b| <= RELTOL * max(|a|,|b|,1e-3)
 *       (the 1e-3 floor: a KD loss that is ~0 has no meaningful relative error). A step logged twice (a run
 *       killed after its last checkpoint and resumed) counts with its last line. Steps FROM..TO (default all of
 *       A) must be present in both. Prints the worst relative difference.
 *   train_cmp ckpt A.ckpt B.ckpt SECTION TOL
 *       TOL 0: the section's bytes must be identical. TOL > 0: max|a-b| <= TOL * max|a| (the largest parameter
 *       sets the scale: SGD moves all parameters by lr-sized steps, so small ones carry no finer precision).
 *   train_cmp verify PATH      the checkpoint opens (every CRC verified); prints its step
 * Exit 0 = within tolerance, 1 = not, 2 = usage or unreadable input. */
#include "io/checkpoint.h"
#include "io/metrics.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STEPS 100000
#define MAX_KEYS 24
#define NULLV INFINITY /* a null value (the writer never writes Inf: it writes null) */
#define KEY_MAX 40

typedef struct {
    int nkeys;
    char key[MAX_KEYS][KEY_MAX];
    double *val; /* [step][key], NAN = absent, NULLV = null */
    int maxstep;
} series;

/* every "loss*" key of the lines with a "step" (io/metrics.h parses them) */
static int with_grad; /* TRAIN_CMP_GRAD=1: grad_norm too (the gradient, not only the loss it came from) */

static int load_metrics(const char *path, series *s) {
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "train_cmp: cannot open %s\n", path); return -1; }
    s->val = malloc(sizeof(double) * MAX_STEPS * MAX_KEYS);
    for (size_t i = 0; i < (size_t)MAX_STEPS * MAX_KEYS; i++) s->val[i] = NAN;
    char line[8192];
    metrics_field fl[256];
    while (fgets(line, sizeof line, f)) {
        double sv;
        if (!metrics_get(line, "step", &sv)) continue;
        long step = (long)sv;
        if (step < 0 || step >= MAX_STEPS) continue;
        if (step > s->maxstep) s->maxstep = (int)step;
        int nf = metrics_parse(line, fl, 256);
        for (int i = 0; i < nf; i++) {
            const char *name = fl[i].key;
            if (!fl[i].is_num || (strncmp(name, "loss", 4) != 0 && (!with_grad || strcmp(name, "grad_norm") != 0)))
                continue;
            if (strlen(name) >= KEY_MAX) continue;
            int k = 0;
            while (k < s->nkeys && strcmp(s->key[k], name) != 0) k++;
            if (k == s->nkeys && k < MAX_KEYS) strcpy(s->key[s->nkeys++], name);
            /* JSON null (a loss that does not exist yet, e.g. a sub-width during slow start): NULLV */
            if (k < MAX_KEYS) s->val[(size_t)step * MAX_KEYS + k] = isnan(fl[i].num) ? NULLV : fl[i].num;
        }
    }
    fclose(f);
    return 0;
}

static double get(const series *s, int step, const char *key) {
    for (int k = 0; k < s->nkeys; k++)
        if (strcmp(s->key[k], key) == 0) return s->val[(size_t)step * MAX_KEYS + k];
    return NAN;
}

static int cmd_metrics(int argc, char **argv) {
    series a = {0}, b = {0};
    with_grad = getenv("TRAIN_CMP_GRAD") && atoi(getenv("TRAIN_CMP_GRAD"));
    if (load_metrics(argv[2], &a) || load_metrics(argv[3], &b)) return 2;
    double tol = atof(argv[4]);
    int from = argc > 6 ? atoi(argv[5]) : 1, to = argc > 6 ? atoi(argv[6]) : a.maxstep;
    if (a.nkeys == 0 || to < from) { fprintf(stderr, "train_cmp: no loss values in %s\n", argv[2]); return 2; }
    double worst = 0;
    int wstep = 0, bad = 0, compared = 0;
    const char *wkey = "";
    for (int st = from; st <= to; st++)
        for (int k = 0; k < a.nkeys; k++) {
            double x = get(&a, st, a.key[k]), y = get(&b, st, a.key[k]);
            if (isnan(x) || isnan(y)) {
                fprintf(stderr, "train_cmp: step %d key %s missing (%s: %g, %s: %g)\n", st, a.key[k], argv[2], x,
                        argv[3], y);
                return 1;
            }
            if (isinf(x) || isinf(y)) { /* null on one side must be null on the other */
                compared++;
                if (!(isinf(x) && isinf(y)) && bad++ < 5)
                    fprintf(stderr, "step %d %s: %s vs %s\n", st, a.key[k], isinf(x) ? "null" : "a number",
                            isinf(y) ? "null" : "a number");
                continue;
            }
            double scale = fmax(fmax(fabs(x), fabs(y)), 1e-3), r = fabs(x - y) / scale;
            compared++;
            if (r > worst) { worst = r; wstep = st; wkey = a.key[k]; }
            if (r > tol && bad++ < 5) fprintf(stderr, "step %d %s: %.9g vs %.9g (rel %.3g)\n", st, a.key[k], x, y, r);
        }
    printf("metrics: %d values over steps %d..%d, worst relative difference %.3g (step %d, %s), tolerance %g: %s\n",
           compared, from, to, worst, wstep, wkey, tol, bad ? "FAIL" : "ok");
    return bad ? 1 : 0;
}

static int cmd_ckpt(char **argv) {
    ckpt_file *fa = NULL, *fb = NULL;
    if (ckpt_open(argv[2], &fa) != SC_OK || ckpt_open(argv[3], &fb) != SC_OK) {
        fprintf(stderr, "train_cmp: %s\n", sc_last_error());
        return 2;
    }
    const char *sec = argv[4];
    double tol = atof(argv[5]);
    ckpt_dtype da, db;
    size_t na = 0, nb = 0;
    const void *pa = ckpt_find(fa, sec, &da, &na), *pb = ckpt_find(fb, sec, &db, &nb);
    if (!pa || !pb || da != db || na != nb) {
        fprintf(stderr, "train_cmp: section %s missing or differing in shape\n", sec);
        return 1;
    }
    int rc;
    if (tol == 0) {
        size_t bytes = na * ckpt_dtype_size(da), diff = 0;
        for (size_t i = 0; i < bytes; i++) diff += ((const unsigned char *)pa)[i] != ((const unsigned char *)pb)[i];
        printf("ckpt %s: %zu bytes, %zu differ: %s\n", sec, bytes, diff, diff ? "FAIL" : "bitwise identical");
        rc = diff ? 1 : 0;
    } else if (da == CKPT_F32) {
        const float *x = pa, *y = pb;
        double amax = 0, dmax = 0;
        for (size_t i = 0; i < na; i++) {
            amax = fmax(amax, fabs(x[i]));
            dmax = fmax(dmax, fabs((double)x[i] - y[i]));
            if (x[i] != x[i] || y[i] != y[i]) dmax = INFINITY;
        }
        double rel = amax > 0 ? dmax / amax : dmax;
        rc = rel <= tol ? 0 : 1;
        printf("ckpt %s: %zu values, max|a-b| %.3g, max|a| %.3g, relative %.3g, tolerance %g: %s\n", sec, na, dmax, amax,
               rel, tol, rc ? "FAIL" : "ok");
    } else {
        fprintf(stderr, "train_cmp: section %s is not f32; use tolerance 0\n", sec);
        rc = 2;
    }
    ckpt_close(fa);
    ckpt_close(fb);
    return rc;
}

int main(int argc, char **argv) {
    if (argc >= 5 && strcmp(argv[1], "metrics") == 0) return cmd_metrics(argc, argv);
    if (argc == 6 && strcmp(argv[1], "ckpt") == 0) return cmd_ckpt(argv);
    if (argc == 3 && strcmp(argv[1], "verify") == 0) {
        ckpt_file *f = NULL;
        if (ckpt_open(argv[2], &f) != SC_OK) { fprintf(stderr, "train_cmp: %s\n", sc_last_error()); return 1; }
        printf("verify: %s ok, step %llu\n", argv[2], (unsigned long long)ckpt_get_header(f)->step);
        ckpt_close(f);
        return 0;
    }
    fprintf(stderr, "usage: train_cmp metrics A.jsonl B.jsonl RELTOL [FROM TO] | ckpt A B SECTION TOL | verify PATH\n");
    return 2;
}
