/* core/error: errors as values, and the one fatal path.
 * Library-style functions return sc_err (0 = ok, negative = a code below) and fill a message with
 * sc_errorf(); programs (the CLI, tests) turn a non-zero code into a message and an exit code.
 * sc_fatal() is for invariants and resource failures inside a step: it prints file:line, rank and the
 * reason, then ends *every* rank through the abort hook that comm/ installs (MPI_Abort), so that no
 * rank is left waiting in a collective. */
#ifndef SC_CORE_ERROR_H
#define SC_CORE_ERROR_H
#include <stddef.h>
#include <stdio.h>

typedef enum {
    SC_OK = 0,
    SC_ERR_ARG = -1,      /* bad argument / shape / width */
    SC_ERR_CONFIG = -2,   /* configuration file or --set */
    SC_ERR_IO = -3,       /* open/read/write failure */
    SC_ERR_FORMAT = -4,   /* malformed or truncated file, bad magic, checksum */
    SC_ERR_MISMATCH = -5, /* checkpoint from another model/config */
    SC_ERR_NOMEM = -6,
    SC_ERR_MPI = -7,
    SC_ERR_NUMERIC = -8,  /* NaN/Inf */
    SC_ERR_INTERRUPTED = -9,
} sc_err;


/* The last error message of this thread (set by sc_errorf). */
sc_err sc_errorf(sc_err code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *sc_last_error(void);

/* Fatal path: message with location, then the abort hook (default: exit(1)). */
void sc_fatal_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
#define sc_fatal(...) sc_fatal_at(__FILE__, __LINE__, __VA_ARGS__)
void sc_set_abort_hook(void (*hook)(int code));
void sc_set_rank(int rank); /* rank shown in messages; -1 = not in MPI */
int sc_rank(void);

/* Checks that carry file and line (llm.c style). */
#define SC_CHECK(cond, ...) do { if (!(cond)) sc_fatal(__VA_ARGS__); } while (0)
#define SC_TRY(expr) do { sc_err _e = (expr); if (_e != SC_OK) return _e; } while (0)

/* Allocation: 64-byte aligned, zeroed, fatal on failure. sc_free accepts NULL. */
void *sc_alloc_at(size_t bytes, const char *file, int line);
#define sc_alloc(bytes) sc_alloc_at((bytes), __FILE__, __LINE__)
#define sc_calloc_n(type, n) ((type *)sc_alloc_at(sizeof(type) * (size_t)(n), __FILE__, __LINE__))
void sc_free(void *p);
/* A reusable scratch buffer (*buf, *cap bytes): grown to at least `bytes` (contents not kept), fatal on failure;
 * callers keep one per site (thread-local where layers may run in threads), so a step allocates only on its
 * first call of a size. Returns *buf. */
void *sc_grow_at(void **buf, size_t *cap, size_t bytes, const char *file, int line);
#define sc_grow(buf, cap, bytes) sc_grow_at((buf), (cap), (bytes), __FILE__, __LINE__)

/* Logging: sc_info prints on rank 0 only (or when not in MPI); sc_warn on every rank with its number. */
void sc_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sc_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#endif
