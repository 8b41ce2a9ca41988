#include "core/error.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_msg[1024];
static void (*abort_hook)(int) = NULL;
static int cur_rank = -1;

sc_err sc_errorf(sc_err code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    va_end(ap);
    return code;
}

const char *sc_last_error(void) { return last_msg[0] ? last_msg : "(no message)"; }

void sc_set_abort_hook(void (*hook)(int)) { abort_hook = hook; }
void sc_set_rank(int rank) { cur_rank = rank; }
int sc_rank(void) { return cur_rank; }

void sc_fatal_at(const char *file, int line, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cur_rank >= 0)
        fprintf(stderr, "slimclr: error (rank %d, %s:%d): %s\n", cur_rank, file, line, msg);
    else
        fprintf(stderr, "slimclr: error (%s:%d): %s\n", file, line, msg);
    fflush(stderr);
    if (abort_hook) abort_hook(1);
    exit(1);
}

void *sc_alloc_at(size_t bytes, const char *file, int line) {
    if (bytes == 0) bytes = 64;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded);
    if (!p) sc_fatal_at(file, line, "out of memory allocating %zu bytes", bytes);
    memset(p, 0, rounded); /* touch every page now, not inside the step */
    return p;
}

void sc_free(void *p) { free(p); }

void *sc_grow_at(void **buf, size_t *cap, size_t bytes, const char *file, int line) {
    if (bytes > *cap || !*buf) {
        sc_free(*buf);
        *buf = sc_alloc_at(bytes, file, line);
        *cap = bytes;
    }
    return *buf;
}

void sc_info(const char *fmt, ...) {
    if (cur_rank > 0) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fflush(stdout);
}

void sc_warn(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cur_rank >= 0) fprintf(stderr, "slimclr: warning (rank %d): %s\n", cur_rank, msg);
    else fprintf(stderr, "slimclr: warning: %s\n", msg);
}
