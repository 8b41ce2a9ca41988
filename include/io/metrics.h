/* io/metrics: the append-only JSON-lines file of a run (metrics.jsonl). One object per line, written with
 * one write and flushed, so a crash loses at most the line being written and a resumed run appends.
 * Used by rank 0 only (not collective). No allocation after metrics_open.
 *
 *   metrics_write(m, {"step", 10}, {"epoch", 0.04}, {"loss_w1.0", 8.1});      numbers only
 *   metrics_begin(m); metrics_str(m, "phase", "probe"); metrics_num(m, "top1_w0.25", 77.1); metrics_end(m);
 * Integral values print as integers; NaN/Inf print as null (JSON has no NaN). */
#ifndef SC_IO_METRICS_H
#define SC_IO_METRICS_H
#include "core/error.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct metrics metrics;
typedef struct { const char *key; double val; } metrics_kv;

sc_err metrics_open(const char *path, metrics **out); /* appends; creates the file */
void metrics_close(metrics *m);                       /* accepts NULL */

void metrics_begin(metrics *m);
void metrics_num(metrics *m, const char *key, double v);
void metrics_int(metrics *m, const char *key, int64_t v);
void metrics_str(metrics *m, const char *key, const char *s);
sc_err metrics_end(metrics *m);  /* writes the line, flushes; SC_ERR_IO on a write error */

sc_err metrics_write_kv(metrics *m, const metrics_kv *kv, int n);

/* Reading, the one parser of these lines (the run directory's truncation on resume, tests/mpi/train_cmp):
 * a line is a flat JSON object. Numbers go to num (null: NAN; true/false: 1/0) with is_num; strings set
 * is_num false. Keys longer than 63 bytes are cut. Returns the fields stored (at most max), or -1 when the
 * line is not a flat JSON object (a torn line, say). */
typedef struct {
    char key[64];
    double num;
    bool is_num;
} metrics_field;
int metrics_parse(const char *line, metrics_field *f, int max);
/* The number under key in line (the last one if repeated); false when absent, not a number or malformed. */
bool metrics_get(const char *line, const char *key, double *v);
#define metrics_write(m, ...)                                                                                  \
    metrics_write_kv((m), (const metrics_kv[]){__VA_ARGS__},                                                   \
                     (int)(sizeof((const metrics_kv[]){__VA_ARGS__}) / sizeof(metrics_kv)))
#endif
